/*
 * fio's external ioengine "uvio": fio jobs on uvio devices through libuvio (uvio.h).
 *
 *   fio --thread --ioengine=external:PATH/uvio.so --filename=0000\:00\:05.0 ...
 *
 * filename is a uvio DEVICE with fio's escaped colons: a virtio-blk BDF, or BDF/C:T:L for a
 * virtio-scsi LUN. One process owns a VFIO device, so jobs must be threads (--thread); the
 * device is opened once per process and the job threads take its hardware queues in turn,
 * sharing them when there are more threads than queues (as `uvio bench` does): a queue's
 * calls are serialized by its lock, and each completion goes to the job that submitted it.
 * io_u buffers are uvio DMA memory (zero-copy). Built against the fio tree it is loaded by
 * (fio/build.sh): fio's engine ABI is internal.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fio.h"
#include "optgroup.h"

#include "uvio.h"

struct uvio_engine_options {
	void *pad; /* fio's option parser needs the first field unused */
	char *ring;
	unsigned int io_timeout_ms;
	unsigned int hipri;
};

static struct fio_option options[] = {
	{
		.name = "uvio_ring",
		.lname = "uvio ring format",
		.type = FIO_OPT_STR_STORE,
		.off1 = offsetof(struct uvio_engine_options, ring),
		.help = "auto (packed when the device offers it), split or packed",
		.def = "auto",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "uvio_io_timeout_ms",
		.lname = "uvio request deadline",
		.type = FIO_OPT_INT,
		.off1 = offsetof(struct uvio_engine_options, io_timeout_ms),
		.help = "milliseconds a request may take before it fails with ETIMEDOUT (0: 30 s)",
		.def = "0",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{
		.name = "hipri",
		.lname = "High Priority",
		.type = FIO_OPT_STR_SET,
		.off1 = offsetof(struct uvio_engine_options, hipri),
		.help = "accepted: uvio always polls",
		.category = FIO_OPT_C_ENGINE,
		.group = FIO_OPT_G_INVALID,
	},
	{ .name = NULL },
};

/* A hardware queue and the jobs that drive it. libuvio's queue is single-threaded, so every
 * call on it is made under `lock`; completions are handed to their jobs' ready lists. */
struct shared_queue {
	pthread_mutex_t lock;
	struct uvio_queue *q;
	struct uvio_completion *reaped; /* queue_depth entries */
};

/* One device opened for this process, shared by the jobs that name it. */
struct shared_device {
	struct shared_device *next;
	char *name;
	struct uvio_dev *dev;
	struct uvio_info info;
	struct shared_queue *queues; /* info.num_queues */
	int users;                   /* jobs on it */
	unsigned int next_queue;     /* the queue the next job takes */
};

static pthread_mutex_t devices_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shared_device *devices;

/* What one job thread drives. */
struct uvio_job {
	struct shared_device *device;
	struct shared_queue *queue;
	struct uvio_mem_region mem;
	int have_mem;
	unsigned int depth;
	/* Finished io_us of this job, oldest first; filled under the queue's lock. */
	struct io_u **ready;
	unsigned int nr_ready;
	/* What the last getevents handed to fio. */
	struct io_u **events;
};

static int ring_of(const char *name, int *ring)
{
	if (!name || !strcmp(name, "auto"))
		*ring = UVIO_RING_AUTO;
	else if (!strcmp(name, "split"))
		*ring = UVIO_RING_SPLIT;
	else if (!strcmp(name, "packed"))
		*ring = UVIO_RING_PACKED;
	else
		return 1;
	return 0;
}

static void free_queues(struct shared_device *d)
{
	for (unsigned int i = 0; d->queues && i < d->info.num_queues; i++)
		free(d->queues[i].reaped);
	free(d->queues);
}

/* The device `name` names, opened and started on first use; devices_lock is held. */
static struct shared_device *device_for(struct thread_data *td, const char *name)
{
	struct uvio_engine_options *o = td->eo;
	struct shared_device *d;
	int ring, rc;

	for (d = devices; d; d = d->next) {
		size_t function = strcspn(name, "/");

		if (!strcmp(d->name, name))
			return d;
		if (strcspn(d->name, "/") == function && !strncmp(d->name, name, function)) {
			log_err("uvio: %s and %s are LUNs of one virtio-scsi host, which one process "
				"opens once: several LUNs of a host in one run are not supported yet\n",
				d->name, name);
			return NULL;
		}
	}
	if (ring_of(o->ring, &ring)) {
		log_err("uvio: uvio_ring=%s: use auto, split or packed\n", o->ring);
		return NULL;
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->name = strdup(name);
	rc = uvio_open(name, &d->dev);
	if (!rc)
		rc = uvio_set_ring(d->dev, ring);
	if (!rc && o->io_timeout_ms)
		rc = uvio_set_request_timeout_ns(d->dev, o->io_timeout_ms * 1000000ull);
	if (!rc)
		rc = uvio_start(d->dev);
	if (!rc)
		rc = uvio_get_info(d->dev, &d->info);
	if (!rc) {
		d->queues = calloc(d->info.num_queues, sizeof(*d->queues));
		rc = d->queues ? 0 : -ENOMEM;
	}
	for (unsigned int i = 0; !rc && i < d->info.num_queues; i++) {
		struct shared_queue *sq = &d->queues[i];

		pthread_mutex_init(&sq->lock, NULL);
		sq->reaped = calloc(d->info.queue_depth, sizeof(*sq->reaped));
		rc = sq->reaped ? uvio_get_queue(d->dev, (int)i, &sq->q) : -ENOMEM;
	}
	if (rc) {
		log_err("uvio: %s\n", uvio_get_error_msg());
		if (d->dev)
			uvio_close(d->dev);
		free_queues(d);
		free(d->name);
		free(d);
		return NULL;
	}
	d->next = devices;
	devices = d;
	return d;
}

static void put_device(struct shared_device *d)
{
	struct shared_device **p;

	if (--d->users > 0)
		return;
	for (p = &devices; *p; p = &(*p)->next) {
		if (*p == d) {
			*p = d->next;
			break;
		}
	}
	uvio_close(d->dev);
	free_queues(d);
	free(d->name);
	free(d);
}

/*
 * Runs in the job's thread, before fio allocates its buffers: opens the device (once per
 * process), sizes the job's file and takes the next hardware queue in turn.
 */
static int fio_uvio_init(struct thread_data *td)
{
	struct uvio_job *job;
	struct shared_device *d;
	struct fio_file *f;

	if (!td->o.use_thread) {
		log_err("uvio: one process owns a VFIO device, so uvio jobs run as threads: add "
			"--thread (or thread=1 in the job file)\n");
		return 1;
	}
	if (td->files_index != 1) {
		log_err("uvio: name exactly one uvio DEVICE as filename (BDF, or BDF/C:T:L with "
			"fio's escaped colons: 0000\\:00\\:05.0)\n");
		return 1;
	}
	f = td->files[0];
	job = calloc(1, sizeof(*job));
	if (!job)
		return 1;
	td->io_ops_data = job;
	pthread_mutex_lock(&devices_lock);
	d = device_for(td, f->file_name);
	if (d) {
		d->users++;
		job->queue = &d->queues[d->next_queue++ % d->info.num_queues];
	}
	pthread_mutex_unlock(&devices_lock);
	job->device = d;
	if (!d)
		return 1;
	if (td->o.iodepth > d->info.queue_depth) {
		log_err("uvio: iodepth=%u is deeper than %s's queue depth %u\n", td->o.iodepth,
			d->name, d->info.queue_depth);
		return 1;
	}
	f->real_file_size = d->info.capacity;
	fio_file_set_size_known(f);
	job->depth = td->o.iodepth;
	job->ready = calloc(job->depth, sizeof(*job->ready));
	job->events = calloc(job->depth, sizeof(*job->events));
	return job->ready && job->events ? 0 : 1;
}

static void fio_uvio_cleanup(struct thread_data *td)
{
	struct uvio_job *job = td->io_ops_data;

	if (!job)
		return;
	free(job->ready);
	free(job->events);
	if (job->device) {
		pthread_mutex_lock(&devices_lock);
		put_device(job->device);
		pthread_mutex_unlock(&devices_lock);
	}
	free(job);
	td->io_ops_data = NULL;
}

/* io_u buffers in the device's DMA memory, so requests need no copy. */
static int fio_uvio_iomem_alloc(struct thread_data *td, size_t total)
{
	struct uvio_job *job = td->io_ops_data;

	if (uvio_alloc_mem(job->device->dev, total, &job->mem)) {
		log_err("uvio: %s\n", uvio_get_error_msg());
		return 1;
	}
	job->have_mem = 1;
	td->orig_buffer = job->mem.addr;
	return 0;
}

static void fio_uvio_iomem_free(struct thread_data *td)
{
	struct uvio_job *job = td->io_ops_data;

	if (job && job->have_mem) {
		uvio_free_mem(job->device->dev, &job->mem);
		job->have_mem = 0;
	}
}

static enum fio_q_status fio_uvio_queue(struct thread_data *td, struct io_u *io_u)
{
	struct uvio_job *job = td->io_ops_data;
	int rc;

	fio_ro_check(td, io_u);
	io_u->engine_data = job;
	pthread_mutex_lock(&job->queue->lock);
	switch (io_u->ddir) {
	case DDIR_READ:
		rc = uvio_read(job->queue->q, io_u->offset, io_u->xfer_buf, io_u->xfer_buflen, io_u, 0);
		break;
	case DDIR_WRITE:
		rc = uvio_write(job->queue->q, io_u->offset, io_u->xfer_buf, io_u->xfer_buflen, io_u, 0);
		break;
	case DDIR_TRIM:
		rc = uvio_discard(job->queue->q, io_u->offset, io_u->xfer_buflen, io_u, 0);
		break;
	case DDIR_SYNC:
	case DDIR_DATASYNC:
		rc = uvio_flush(job->queue->q, io_u, 0);
		break;
	default:
		rc = -EINVAL;
		break;
	}
	if (rc < 0 && rc != -EAGAIN)
		log_err("uvio: %s\n", uvio_get_error_msg());
	pthread_mutex_unlock(&job->queue->lock);
	if (rc == -EAGAIN)
		return FIO_Q_BUSY;
	if (rc < 0) {
		io_u->error = -rc;
		return FIO_Q_COMPLETED;
	}
	return FIO_Q_QUEUED;
}

/* Takes what finished off the queue and hands each io_u to its job; the queue's lock is held. */
static int reap(struct shared_device *d, struct shared_queue *sq)
{
	int n = uvio_poll(sq->q, sq->reaped, 0, (int)d->info.queue_depth, 0);

	if (n < 0) {
		log_err("uvio: %s\n", uvio_get_error_msg());
		return n;
	}
	for (int i = 0; i < n; i++) {
		struct io_u *io_u = sq->reaped[i].user_data;
		struct uvio_job *owner = io_u->engine_data;

		io_u->error = -sq->reaped[i].ret;
		if (sq->reaped[i].ret)
			log_err("uvio: %s\n", sq->reaped[i].error_msg);
		owner->ready[owner->nr_ready++] = io_u;
	}
	return n;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int fio_uvio_getevents(struct thread_data *td, unsigned int min, unsigned int max,
			      const struct timespec *t)
{
	struct uvio_job *job = td->io_ops_data;
	struct shared_queue *sq = job->queue;
	int64_t deadline = t ? now_ns() + (int64_t)t->tv_sec * 1000000000 + t->tv_nsec : 0;
	unsigned int got = 0;

	if (max > job->depth)
		max = job->depth;
	for (;;) {
		unsigned int take;

		pthread_mutex_lock(&sq->lock);
		if (reap(job->device, sq) < 0) {
			pthread_mutex_unlock(&sq->lock);
			return -EIO;
		}
		take = job->nr_ready < max - got ? job->nr_ready : max - got;
		memcpy(job->events + got, job->ready, take * sizeof(*job->ready));
		memmove(job->ready, job->ready + take, (job->nr_ready - take) * sizeof(*job->ready));
		job->nr_ready -= take;
		got += take;
		pthread_mutex_unlock(&sq->lock);
		if (got >= min || (t && now_ns() >= deadline))
			return (int)got;
	}
}

/* Hands the device what was queued (uvio_poll publishes and notifies before it reaps); what
 * finished meanwhile waits in its job's ready list for getevents. */
static int fio_uvio_commit(struct thread_data *td)
{
	struct uvio_job *job = td->io_ops_data;
	int rc;

	pthread_mutex_lock(&job->queue->lock);
	rc = reap(job->device, job->queue);
	pthread_mutex_unlock(&job->queue->lock);
	return rc < 0 ? -EIO : 0;
}

static struct io_u *fio_uvio_event(struct thread_data *td, int event)
{
	struct uvio_job *job = td->io_ops_data;

	return job->events[event];
}

static int fio_uvio_open_file(struct thread_data *td, struct fio_file *f)
{
	return 0;
}

static int fio_uvio_close_file(struct thread_data *td, struct fio_file *f)
{
	return 0;
}

static int fio_uvio_get_file_size(struct thread_data *td, struct fio_file *f)
{
	struct uvio_job *job = td->io_ops_data;

	if (job && job->device) {
		f->real_file_size = job->device->info.capacity;
		fio_file_set_size_known(f);
	}
	return 0;
}

struct ioengine_ops ioengine = {
	.name = "uvio",
	.version = FIO_IOOPS_VERSION,
	.flags = FIO_DISKLESSIO | FIO_NOEXTEND | FIO_NODISKUTIL | FIO_RAWIO,
	.init = fio_uvio_init,
	.cleanup = fio_uvio_cleanup,
	.queue = fio_uvio_queue,
	.commit = fio_uvio_commit,
	.getevents = fio_uvio_getevents,
	.event = fio_uvio_event,
	.open_file = fio_uvio_open_file,
	.close_file = fio_uvio_close_file,
	.get_file_size = fio_uvio_get_file_size,
	.iomem_alloc = fio_uvio_iomem_alloc,
	.iomem_free = fio_uvio_iomem_free,
	.options = options,
	.option_struct_size = sizeof(struct uvio_engine_options),
};
