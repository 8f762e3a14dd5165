/*
 * fio's external ioengine "uvio": fio jobs on uvio devices through libuvio (uvio.h).
 *
 *   fio --thread --ioengine=external:PATH/uvio.so --filename=0000\:00\:05.0 ...
 *
 * filename is a uvio DEVICE with fio's escaped colons: a virtio-blk BDF, or BDF/C:T:L for a
 * virtio-scsi LUN; a job may name several (fio's `:`-separated list), all disks of one PCI
 * function. One process owns a VFIO device, so jobs must be threads (--thread); each PCI
 * function is opened once per process, the other LUNs of a virtio-scsi host from it
 * (uvio_open_lun), and the job threads take the host's hardware queues in turn, whichever
 * of its LUNs they name, sharing them when there are more threads than queues (as `uvio
 * bench` and blk-mq's shared tag set do): a queue's calls are serialized by its lock, and
 * each completion goes to the job that submitted it. io_u buffers are uvio DMA memory
 * (zero-copy). Built against the fio tree it is loaded by (fio/build.sh): fio's engine ABI
 * is internal. UVIO_FIO_STAGES=1 prints, per job, where its time per I/O went.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* A hardware queue of a host and the jobs that drive it. libuvio's queue is single-threaded,
 * so every call on it (through any LUN's handle) is made under `lock`; completions are
 * handed to their jobs' ready lists. */
struct shared_queue {
	pthread_mutex_t lock;
	struct uvio_queue *q; /* the first disk's handle: its polls reap every disk's requests */
	struct uvio_completion *reaped; /* queue_depth entries */
};

/* One disk the jobs name: a virtio-blk function, or one LUN of a virtio-scsi host. */
struct shared_device {
	struct shared_device *next;
	char *name;
	struct uvio_dev *dev;
	struct uvio_info info;
	struct uvio_queue **queues; /* this disk's handle on each of its host's queues */
};

/* One PCI function opened for this process (once: one process owns a VFIO device), with
 * the disks on it: the first was started, the other LUNs of a virtio-scsi host were opened
 * from it with uvio_open_lun and share its hardware queues, tags and DMA memory, as the
 * kernel's SCSI disks share their host's queues. */
struct shared_host {
	struct shared_host *next;
	char *bdf;
	struct shared_device *devices; /* the last is the one uvio_start opened */
	struct shared_queue *queues;   /* num_queues */
	unsigned int num_queues;
	unsigned int queue_depth;
	int users;               /* jobs on it */
	unsigned int next_queue; /* the queue the next job takes */
};

static pthread_mutex_t hosts_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shared_host *hosts;

/* Where a job thread's time goes (UVIO_FIO_STAGES=1): TSC cycles in each engine call, in
 * fio's issue accounting (issue_pending, part of commit or getevents), and in getevents'
 * polls that found nothing for the job (waiting for the device). */
struct stage_clock {
	unsigned long long queue, commit, getevents, issue, waiting, first, last;
	unsigned long long ios;
};

/* What one job thread drives: one hardware queue of one host, for all its files (each a
 * disk on that host, FILE_ENG_DATA). */
struct uvio_job {
	struct shared_host *host;
	struct shared_queue *queue;
	unsigned int queue_index;
	struct shared_device *mem_device; /* the disk its io_u memory was allocated through */
	struct uvio_mem_region mem;
	int have_mem;
	unsigned int depth;
	/* Finished io_us of this job, oldest first; filled under the queue's lock. */
	struct io_u **ready;
	unsigned int nr_ready;
	/* What the last getevents handed to fio. */
	struct io_u **events;
	/* Queued since the last commit: not yet issued to the device. */
	struct io_u **pending;
	unsigned int nr_pending;
	struct stage_clock *clock; /* NULL unless UVIO_FIO_STAGES=1 */
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

static void free_device(struct shared_device *d)
{
	if (d->dev)
		uvio_close(d->dev);
	free(d->queues);
	free(d->name);
	free(d);
}

/* Closes every disk of the host (the host itself is reset with the last) and frees it. */
static void free_host(struct shared_host *h)
{
	while (h->devices) {
		struct shared_device *d = h->devices;

		h->devices = d->next;
		free_device(d);
	}
	for (unsigned int i = 0; h->queues && i < h->num_queues; i++) {
		pthread_mutex_destroy(&h->queues[i].lock);
		free(h->queues[i].reaped);
	}
	free(h->queues);
	free(h->bdf);
	free(h);
}

/* A disk's info and its handles on the host's queues. */
static int describe(struct shared_device *d)
{
	int rc = uvio_get_info(d->dev, &d->info);

	if (!rc) {
		d->queues = calloc(d->info.num_queues, sizeof(*d->queues));
		rc = d->queues ? 0 : -ENOMEM;
	}
	for (unsigned int i = 0; !rc && i < d->info.num_queues; i++)
		rc = uvio_get_queue(d->dev, (int)i, &d->queues[i]);
	return rc;
}

/* Opens and starts the PCI function `name` is on, with the job's engine options. */
static struct shared_host *open_host(struct thread_data *td, const char *name, size_t bdf_len)
{
	struct uvio_engine_options *o = td->eo;
	struct shared_host *h;
	struct shared_device *d;
	int ring, rc;

	if (ring_of(o->ring, &ring)) {
		log_err("uvio: uvio_ring=%s: use auto, split or packed\n", o->ring);
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	d = calloc(1, sizeof(*d));
	if (!h || !d) {
		free(h);
		free(d);
		return NULL;
	}
	h->bdf = strndup(name, bdf_len);
	h->devices = d;
	d->name = strdup(name);
	rc = uvio_open(name, &d->dev);
	if (!rc)
		rc = uvio_set_ring(d->dev, ring);
	if (!rc && o->io_timeout_ms)
		rc = uvio_set_request_timeout_ns(d->dev, o->io_timeout_ms * 1000000ull);
	if (!rc)
		rc = uvio_start(d->dev);
	if (!rc)
		rc = describe(d);
	if (!rc) {
		h->num_queues = d->info.num_queues;
		h->queue_depth = d->info.queue_depth;
		h->queues = calloc(h->num_queues, sizeof(*h->queues));
		rc = h->queues ? 0 : -ENOMEM;
	}
	for (unsigned int i = 0; !rc && i < h->num_queues; i++) {
		pthread_mutex_init(&h->queues[i].lock, NULL);
		h->queues[i].q = d->queues[i];
		h->queues[i].reaped = calloc(h->queue_depth, sizeof(*h->queues[i].reaped));
		rc = h->queues[i].reaped ? 0 : -ENOMEM;
	}
	if (rc) {
		log_err("uvio: %s\n", rc == -ENOMEM ? "out of memory" : uvio_get_error_msg());
		free_host(h);
		return NULL;
	}
	h->next = hosts;
	hosts = h;
	return h;
}

/* The disk `name` names on host `h`: opened already, or another LUN opened now. */
static struct shared_device *device_on(struct shared_host *h, const char *name)
{
	struct shared_device *d, *first = h->devices;
	int rc;

	for (d = h->devices; d; d = d->next) {
		if (!strcmp(d->name, name))
			return d;
		first = d;
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->name = strdup(name);
	rc = uvio_open_lun(first->dev, name, &d->dev);
	if (!rc)
		rc = describe(d);
	if (rc) {
		log_err("uvio: %s\n", uvio_get_error_msg());
		free_device(d);
		return NULL;
	}
	d->next = h->devices;
	h->devices = d;
	return d;
}

/* The host of the PCI function `name` is on, opened on first use; hosts_lock is held. */
static struct shared_host *host_for(struct thread_data *td, const char *name)
{
	size_t bdf_len = strcspn(name, "/");
	struct shared_host *h;

	for (h = hosts; h; h = h->next)
		if (strlen(h->bdf) == bdf_len && !strncmp(h->bdf, name, bdf_len))
			return h;
	return open_host(td, name, bdf_len);
}

static void put_host(struct shared_host *h)
{
	struct shared_host **p;

	if (--h->users > 0)
		return;
	for (p = &hosts; *p; p = &(*p)->next) {
		if (*p == h) {
			*p = h->next;
			break;
		}
	}
	free_host(h);
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double tsc_rate; /* TSC cycles per microsecond */
static pthread_once_t tsc_once = PTHREAD_ONCE_INIT;

static void measure_tsc(void)
{
	int64_t t0 = now_ns();
	unsigned long long c0 = get_cpu_clock();

	usleep(20000);
	tsc_rate = (double)(get_cpu_clock() - c0) * 1000.0 / (double)(now_ns() - t0);
}

/* TSC cycles per microsecond, measured once over 20 ms. */
static double tsc_per_us(void)
{
	pthread_once(&tsc_once, measure_tsc);
	return tsc_rate;
}

/* One process owns a VFIO device: jobs are threads. */
static int refuse_fork_mode(struct thread_data *td)
{
	if (td->o.use_thread)
		return 0;
	log_err("uvio: one process owns a VFIO device, so uvio jobs run as threads: add "
		"--thread (or thread=1 in the job file)\n");
	return 1;
}

/* The job's state, made by whichever of setup and init comes first. */
static struct uvio_job *job_of(struct thread_data *td)
{
	if (!td->io_ops_data)
		td->io_ops_data = calloc(1, sizeof(struct uvio_job));
	return td->io_ops_data;
}

/*
 * Opens each file's disk (a PCI function once per process, another LUN of an open host from
 * it) and sizes the files, once per job. fio's setup_files asks for the sizes before the job
 * thread starts (create_serialize, the default), so this runs from setup, in fio's main
 * thread; and from init when setup ran later or not at all.
 */
static int open_files(struct thread_data *td, struct uvio_job *job)
{
	struct shared_host *h = NULL;
	struct fio_file *f;
	unsigned int i;

	if (job->host)
		return 0;
	if (!td->files_index) {
		log_err("uvio: name a uvio DEVICE as filename (BDF, or BDF/C:T:L with fio's escaped "
			"colons: 0000\\:00\\:05.0)\n");
		return 1;
	}
	pthread_mutex_lock(&hosts_lock);
	for_each_file(td, f, i) {
		struct shared_host *of = host_for(td, f->file_name);
		struct shared_device *d;

		if (!of)
			break;
		if (h && of != h) {
			/* Its io_u buffers are one DMA region, which only one function maps. */
			log_err("uvio: %s and %s are on different PCI functions: the files of one job "
				"are disks of one function (LUNs of one virtio-scsi host)\n",
				td->files[0]->file_name, f->file_name);
			if (!of->users)
				put_host(of); /* opened for this file only: closed again */
			h = NULL;
			break;
		}
		if (!h) {
			h = of;
			h->users++;
			job->host = h;
		}
		d = device_on(h, f->file_name);
		if (!d) {
			h = NULL;
			break;
		}
		FILE_SET_ENG_DATA(f, d);
		f->real_file_size = d->info.capacity;
		fio_file_set_size_known(f);
		job->mem_device = d;
	}
	pthread_mutex_unlock(&hosts_lock);
	return h ? 0 : 1;
}

static int fio_uvio_setup(struct thread_data *td)
{
	struct uvio_job *job;

	if (refuse_fork_mode(td))
		return 1;
	job = job_of(td);
	return job ? open_files(td, job) : 1;
}

/* Runs in the job's thread, before fio allocates its buffers: takes the host's next hardware
 * queue in turn. */
static int fio_uvio_init(struct thread_data *td)
{
	struct uvio_job *job;
	struct shared_host *h;
	const char *stages = getenv("UVIO_FIO_STAGES");

	if (refuse_fork_mode(td))
		return 1;
	job = job_of(td);
	if (!job || open_files(td, job))
		return 1;
	h = job->host;
	pthread_mutex_lock(&hosts_lock);
	job->queue_index = h->next_queue++ % h->num_queues;
	job->queue = &h->queues[job->queue_index];
	pthread_mutex_unlock(&hosts_lock);
	if (td->o.iodepth > h->queue_depth) {
		log_err("uvio: iodepth=%u is deeper than %s's queue depth %u\n", td->o.iodepth,
			h->bdf, h->queue_depth);
		return 1;
	}
	job->depth = td->o.iodepth;
	job->ready = calloc(job->depth, sizeof(*job->ready));
	job->events = calloc(job->depth, sizeof(*job->events));
	job->pending = calloc(job->depth, sizeof(*job->pending));
	if (stages && !strcmp(stages, "1")) {
		tsc_per_us();
		job->clock = calloc(1, sizeof(*job->clock));
	}
	return job->ready && job->events && job->pending ? 0 : 1;
}

/* Prints where the job's time went, per I/O (UVIO_FIO_STAGES=1). */
static void print_stages(struct thread_data *td, const struct stage_clock *c)
{
	double per_io = c->ios ? tsc_per_us() * (double)c->ios / 1000.0 : 0;
	double total, engine;

	if (!per_io)
		return;
	total = (double)(c->last - c->first) / per_io;
	engine = (double)(c->queue + c->commit + c->getevents) / per_io;
	/* On stderr, apart from fio's report (which --output may send to a file). */
	fprintf(stderr,
		"uvio stages: job %s: %llu I/Os, ns per I/O: total %.0f, queue %.0f, commit %.0f, "
		"getevents %.0f (waiting %.0f), of those two fio's issue accounting %.0f, outside "
		"the engine (fio) %.0f\n",
		td->o.name, c->ios, total, (double)c->queue / per_io, (double)c->commit / per_io,
		(double)c->getevents / per_io, (double)c->waiting / per_io, (double)c->issue / per_io,
		total - engine);
}

static void fio_uvio_cleanup(struct thread_data *td)
{
	struct uvio_job *job = td->io_ops_data;

	if (!job)
		return;
	if (job->clock) {
		print_stages(td, job->clock);
		free(job->clock);
	}
	free(job->ready);
	free(job->events);
	free(job->pending);
	if (job->host) {
		pthread_mutex_lock(&hosts_lock);
		put_host(job->host);
		pthread_mutex_unlock(&hosts_lock);
	}
	free(job);
	td->io_ops_data = NULL;
}

/* io_u buffers in the host's DMA memory, so requests need no copy (every disk of the host
 * reaches it). */
static int fio_uvio_iomem_alloc(struct thread_data *td, size_t total)
{
	struct uvio_job *job = td->io_ops_data;

	if (uvio_alloc_mem(job->mem_device->dev, total, &job->mem)) {
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
		uvio_free_mem(job->mem_device->dev, &job->mem);
		job->have_mem = 0;
	}
}

/* Puts the request on the ring; the device hears of it at commit (or at any poll of the
 * queue), so iodepth_batch_submit requests go to the device together. */
static enum fio_q_status fio_uvio_queue(struct thread_data *td, struct io_u *io_u)
{
	struct uvio_job *job = td->io_ops_data;
	struct shared_device *d = FILE_ENG_DATA(io_u->file);
	struct uvio_queue *q = d->queues[job->queue_index];
	unsigned long long t0 = job->clock ? get_cpu_clock() : 0;
	int rc;

	fio_ro_check(td, io_u);
	io_u->engine_data = job;
	pthread_mutex_lock(&job->queue->lock);
	switch (io_u->ddir) {
	case DDIR_READ:
		rc = uvio_read(q, io_u->offset, io_u->xfer_buf, io_u->xfer_buflen, io_u, 0);
		break;
	case DDIR_WRITE:
		rc = uvio_write(q, io_u->offset, io_u->xfer_buf, io_u->xfer_buflen, io_u, 0);
		break;
	case DDIR_TRIM:
		rc = uvio_discard(q, io_u->offset, io_u->xfer_buflen, io_u, 0);
		break;
	case DDIR_SYNC:
	case DDIR_DATASYNC:
		rc = uvio_flush(q, io_u, 0);
		break;
	default:
		rc = -EINVAL;
		break;
	}
	if (rc < 0 && rc != -EAGAIN)
		log_err("uvio: %s\n", uvio_get_error_msg());
	pthread_mutex_unlock(&job->queue->lock);
	if (job->clock) {
		unsigned long long t1 = get_cpu_clock();

		if (!job->clock->first)
			job->clock->first = t0;
		job->clock->queue += t1 - t0;
		job->clock->ios++;
	}
	if (rc == -EAGAIN)
		return FIO_Q_BUSY;
	if (rc < 0) {
		io_u->error = -rc;
		return FIO_Q_COMPLETED;
	}
	job->pending[job->nr_pending++] = io_u;
	return FIO_Q_QUEUED;
}

/* What was queued since the last commit goes to the device now (the reap that follows
 * notifies it): fio's issue time, its submission latency sample and its submit histogram, as
 * libaio's commit records them (FIO_ASYNCIO_SETS_ISSUE_TIME). */
static void issue_pending(struct thread_data *td, struct uvio_job *job)
{
	unsigned long long t0;

	if (!job->nr_pending)
		return;
	t0 = job->clock ? get_cpu_clock() : 0;
	if (fio_fill_issue_time(td)) {
		struct timespec now;

		fio_gettime(&now, NULL);
		for (unsigned int i = 0; i < job->nr_pending; i++) {
			job->pending[i]->issue_time = now;
			io_u_queued(td, job->pending[i]);
		}
	}
	io_u_mark_submit(td, job->nr_pending);
	job->nr_pending = 0;
	if (job->clock)
		job->clock->issue += get_cpu_clock() - t0;
}

/* Hands the device what the queue holds and takes what finished off it, giving each io_u to
 * its job (jobs sharing a hardware queue reap each other's completions); the queue's lock is
 * held. Any disk's handle on the queue polls all of its requests. */
static int reap(struct uvio_job *job)
{
	struct shared_queue *sq = job->queue;
	int n = uvio_poll(sq->q, sq->reaped, 0, (int)job->host->queue_depth, 0);

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

/*
 * fio's contract (ioengines.c td_io_getevents, io_u.c io_u_queued_complete, backend.c
 * wait_for_completions): return between min and max finished io_us, waiting for min when
 * t is NULL; with t, return what there is once t has passed (fio passes a zero t with
 * min 0: one look, no wait). min is iodepth_batch_complete_min (at least 1 when fio must
 * reap), max iodepth_batch_complete_max, both capped at what is in flight. What finished
 * beyond max stays in the job's ready list for the next call.
 */
static int fio_uvio_getevents(struct thread_data *td, unsigned int min, unsigned int max,
			      const struct timespec *t)
{
	struct uvio_job *job = td->io_ops_data;
	struct shared_queue *sq = job->queue;
	/* A zero t (fio's min 0) is one look: no clock read, which traps in a guest on the HPET. */
	int once = t && !t->tv_sec && !t->tv_nsec;
	int64_t deadline = t && !once ? now_ns() + (int64_t)t->tv_sec * 1000000000 + t->tv_nsec : 0;
	unsigned long long t0 = job->clock ? get_cpu_clock() : 0;
	unsigned int got = 0;

	if (max > job->depth)
		max = job->depth;
	issue_pending(td, job);
	for (;;) {
		unsigned long long p0 = job->clock ? get_cpu_clock() : 0;
		unsigned int take;

		pthread_mutex_lock(&sq->lock);
		/* The device is polled only when what already finished does not make min (or,
		 * for one look, when nothing has): see commit. */
		if ((min > got ? job->nr_ready < min - got : !job->nr_ready) && reap(job) < 0) {
			pthread_mutex_unlock(&sq->lock);
			return -EIO;
		}
		take = job->nr_ready < max - got ? job->nr_ready : max - got;
		memcpy(job->events + got, job->ready, take * sizeof(*job->ready));
		memmove(job->ready, job->ready + take, (job->nr_ready - take) * sizeof(*job->ready));
		job->nr_ready -= take;
		got += take;
		pthread_mutex_unlock(&sq->lock);
		if (job->clock && !take)
			job->clock->waiting += get_cpu_clock() - p0;
		if (got >= min || once || (t && now_ns() >= deadline))
			break;
	}
	if (job->clock) {
		job->clock->last = get_cpu_clock();
		job->clock->getevents += job->clock->last - t0;
	}
	return (int)got;
}

/*
 * Hands the device what was queued: uvio_poll publishes it, notifying the device if it asked,
 * and reaps; what finished waits in its job's ready list for getevents. While completions the
 * job has not taken yet wait there, the device is not polled: fio is working through a burst
 * of them, queueing and committing one request per completion (with the queue full it
 * commits whatever is queued), and the requests it commits meanwhile go to the device
 * together with the first poll after the burst, in one notification instead of one each (an
 * MMIO exit apiece, the costliest step of a request in a TCG guest).
 */
static int fio_uvio_commit(struct thread_data *td)
{
	struct uvio_job *job = td->io_ops_data;
	unsigned long long t0 = job->clock ? get_cpu_clock() : 0;
	int rc = 0;

	issue_pending(td, job);
	pthread_mutex_lock(&job->queue->lock);
	if (!job->nr_ready)
		rc = reap(job);
	pthread_mutex_unlock(&job->queue->lock);
	if (job->clock)
		job->clock->commit += get_cpu_clock() - t0;
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

/* Sized in setup; fio asks again when a file is reopened. */
static int fio_uvio_get_file_size(struct thread_data *td, struct fio_file *f)
{
	struct shared_device *d = FILE_ENG_DATA(f);

	if (td->io_ops_data && d) {
		f->real_file_size = d->info.capacity;
		fio_file_set_size_known(f);
	}
	return 0;
}

struct ioengine_ops ioengine = {
	.name = "uvio",
	.version = FIO_IOOPS_VERSION,
	.flags = FIO_DISKLESSIO | FIO_NOEXTEND | FIO_NODISKUTIL | FIO_RAWIO |
		 FIO_ASYNCIO_SETS_ISSUE_TIME,
	.setup = fio_uvio_setup,
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
