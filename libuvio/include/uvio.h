/*
 * uvio.h: the C API of uvio, a userspace polled virtio-blk / virtio-scsi driver over VFIO.
 *
 * Link with -luvio (libuvio.so, or libuvio.a plus -lpthread -ldl -lm). Kept by hand; the
 * test suite compiles it with gcc -Werror and checks that the functions declared here are
 * exactly the ones libuvio.so exports.
 *
 * Life of a device:
 *
 *   struct uvio_dev *dev;
 *   uvio_open("0000:00:05.0", &dev);          // BDF, or BDF/C:T:L for a virtio-scsi LUN
 *   uvio_set_num_queues(dev, 2);              // optional properties, before uvio_start
 *   uvio_start(dev);                          // takes the function through VFIO
 *   uvio_get_info(dev, &info);                // capacity, block sizes, limits
 *   uvio_alloc_mem(dev, 1 << 20, &region);    // DMA memory: every data buffer lives here
 *   uvio_get_queue(dev, 0, &q);               // one queue per thread
 *   uvio_read(q, 0, region.addr, 4096, cookie, 0);
 *   uvio_poll(q, completions, 1, 16, -1);     // the completion carries the cookie back
 *   uvio_close(dev);                          // resets the device, frees regions and queues
 *
 * Errors: every function that can fail returns 0 (or a count) on success and a negative
 * errno on failure, and leaves a message saying what happened in uvio_get_error_msg().
 *
 *   -EBADF       a NULL handle, or one that is closed (a double close) or was never returned
 *   -EFAULT      a NULL pointer argument, or a data buffer not inside a region of this
 *                device's DMA memory (uvio_alloc_mem)
 *   -EINVAL      a bad argument: device string, property value, flags, a request not aligned
 *                to the logical block size or empty, waiting for more completions than are
 *                in flight
 *   -ERANGE      a request past the end of the device
 *   -E2BIG       a request over max_transfer or needing more than max_segments buffers
 *   -EROFS       a write, discard or write-zeroes on a read-only device
 *   -EOPNOTSUPP  an operation the device does not support (discard, write-zeroes, flush),
 *                or the packed ring on a device without it
 *   -EAGAIN      every tag of the queue is in use: poll first
 *   -EBUSY       a property set after uvio_start, uvio_start twice, a PCI function that a
 *                started device of this process holds already, or a queue used by two
 *                threads at the same time
 *   -ENOTCONN    a query, memory or queue call before uvio_start
 *   -ENODEV      the device cannot be opened (not virtio, not bound to vfio-pci, no such LUN)
 *   -ENOMEM      no DMA memory or IOVA space left
 *   -EMFILE      4095 devices are open already
 *   -ETIME       uvio_poll's timeout passed before min_completions were ready
 *   completions: 0, or -EIO (the device failed it), -ETIMEDOUT (past the request deadline),
 *                -EOPNOTSUPP (the device refused it), -EPROTO (the device misbehaved and the
 *                queue is broken: close the device)
 *
 * What the handle checks catch: handles are not pointers to memory but encode a slot and a
 * generation, so NULL, a closed handle (double close, use after close) and a device handle
 * passed as a queue (or the reverse) are refused with -EBADF, never dereferenced. A handle
 * stays dead after its close even when a later uvio_open reuses its slot. An
 * arbitrary value is refused unless it happens to equal a live handle. Not caught: a data
 * buffer freed (uvio_free_mem) or reused by the program while its request is in flight
 * (the memory itself stays mapped until the request completes, so the device never writes
 * memory given back to the system), and overlapping buffers of requests in flight.
 */
#ifndef UVIO_H
#define UVIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An opened device (a virtio-blk function or one virtio-scsi LUN). */
struct uvio_dev;

/*
 * One hardware queue of a started device. A queue is single-threaded: use each from one
 * thread at a time (different queues from different threads freely). A call on a queue that
 * another thread is using fails with -EBUSY instead of corrupting it.
 */
struct uvio_queue;

/* Ring format, for uvio_set_ring. */
#define UVIO_RING_AUTO 0   /* packed when the device offers it, else split (the default) */
#define UVIO_RING_SPLIT 1  /* always the split ring */
#define UVIO_RING_PACKED 2 /* the packed ring, or uvio_start fails with -EOPNOTSUPP */

/* What uvio_get_info reports of a started device. Sizes are in bytes. */
struct uvio_info {
    uint64_t capacity;            /* current size of the device */
    uint32_t logical_block_size;  /* offsets and lengths are multiples of this */
    uint32_t physical_block_size;
    uint64_t max_transfer;        /* largest read or write in one request */
    uint32_t max_segments;        /* most buffers (iovec entries, after splitting) per request */
    uint32_t max_segment_size;    /* a longer buffer counts as several segments */
    uint32_t request_alignment;   /* alignment of offsets and lengths (the logical block size) */
    uint32_t buf_alignment;       /* alignment data buffers need in memory (1: none) */
    uint64_t discard_max;         /* largest discard; 0: discard is not supported */
    uint32_t discard_alignment;
    uint32_t write_zeroes_alignment;
    uint64_t write_zeroes_max;    /* largest write-zeroes; 0: not supported */
    uint32_t read_only;           /* 1: writes, discards and write-zeroes are refused */
    uint32_t flush;               /* 1: the device has a flush command */
    uint32_t num_queues;          /* queues started (uvio_get_queue's index is below this) */
    uint32_t queue_depth;         /* requests in flight per queue */
    uint32_t ring;                /* UVIO_RING_SPLIT or UVIO_RING_PACKED: the ring in use */
    uint32_t reserved;
};

/* DMA memory from uvio_alloc_mem: zeroed, page-aligned, mapped for the device at iova. */
struct uvio_mem_region {
    void *addr;
    size_t len;
    uint64_t iova;
};

/* One finished request, from uvio_poll. */
struct uvio_completion {
    void *user_data;       /* as given at submission */
    const char *error_msg; /* NULL on success; else why, valid until the next uvio_poll of the queue */
    int ret;               /* 0, or a negative errno (see above) */
    uint32_t reserved;
};

/*
 * Names the device to open: "BDF" for virtio-blk ("0000:00:05.0") or "BDF/C:T:L" for a
 * disk LUN of a virtio-scsi host ("0000:00:04.0/0:0:1"). Nothing is touched until
 * uvio_start; the function must be bound to vfio-pci by then (`uvio bind BDF`). One process
 * opens a PCI function once: starting a second device on it fails with -EBUSY; open the
 * other LUNs of a virtio-scsi host with uvio_open_lun instead.
 */
int uvio_open(const char *device, struct uvio_dev **devp);

/*
 * Another disk LUN of the virtio-scsi host that the started device `dev` is a LUN of:
 * `device` is "BDF/C:T:L" with dev's BDF (-EINVAL otherwise; -ENODEV for a LUN the host does
 * not have or that is not a disk, or when dev is virtio-blk). The new device is started
 * already and is on the same host, as the kernel's SCSI disks are:
 *   - its queues are the host's: uvio_get_queue(lun, i) is hardware queue i of every LUN
 *     of the host, and uvio_poll on any of them returns the completions of requests of all
 *     the LUNs submitted on queue i (their user_data tells them apart). The single-thread
 *     rule is per hardware queue: queue i of two LUNs is one queue.
 *   - its DMA memory is the host's: a region allocated through any of them serves all.
 *   - properties are the host's (setting one fails with -EBUSY), and uvio_get_info reports
 *     this LUN's capacity and limits with the host's queues.
 * Each device is closed on its own; the host is reset and freed with the last of them.
 */
int uvio_open_lun(struct uvio_dev *dev, const char *device, struct uvio_dev **devp);

/* Properties, set between uvio_open and uvio_start. */
int uvio_set_num_queues(struct uvio_dev *dev, int num_queues);   /* default: all the device has */
int uvio_set_queue_depth(struct uvio_dev *dev, int queue_depth); /* default: the ring size */
int uvio_set_ring(struct uvio_dev *dev, int ring);               /* UVIO_RING_* */
/* How long one request may be in flight before it completes with -ETIMEDOUT; 0: 30 s. */
int uvio_set_request_timeout_ns(struct uvio_dev *dev, uint64_t timeout_ns);

/* Opens the device through VFIO and starts its queues. */
int uvio_start(struct uvio_dev *dev);

int uvio_get_info(struct uvio_dev *dev, struct uvio_info *info);

/* DMA memory for data buffers. len is rounded up to whole pages. */
int uvio_alloc_mem(struct uvio_dev *dev, size_t len, struct uvio_mem_region *region);
/* Gives a region back; -EINVAL if it is not a live region of this device (a double free). */
int uvio_free_mem(struct uvio_dev *dev, const struct uvio_mem_region *region);

/* Queue `index` (0 <= index < num_queues); the same handle every time. */
int uvio_get_queue(struct uvio_dev *dev, int index, struct uvio_queue **qp);

/*
 * Requests. Each is checked (alignment, range, limits, buffers inside DMA memory) and put on
 * the queue, or refused with a negative errno and nothing submitted; uvio_poll hands the
 * device what was submitted and returns what finished. flags is reserved and must be 0.
 * A buffer may lie anywhere inside one region; it is not copied.
 */
int uvio_read(struct uvio_queue *q, uint64_t offset, void *buf, size_t len, void *user_data,
              uint32_t flags);
int uvio_write(struct uvio_queue *q, uint64_t offset, const void *buf, size_t len,
               void *user_data, uint32_t flags);
int uvio_readv(struct uvio_queue *q, uint64_t offset, const struct iovec *iov, int iovcnt,
               void *user_data, uint32_t flags);
int uvio_writev(struct uvio_queue *q, uint64_t offset, const struct iovec *iov, int iovcnt,
                void *user_data, uint32_t flags);
int uvio_flush(struct uvio_queue *q, void *user_data, uint32_t flags);
int uvio_discard(struct uvio_queue *q, uint64_t offset, uint64_t len, void *user_data,
                 uint32_t flags);
int uvio_write_zeroes(struct uvio_queue *q, uint64_t offset, uint64_t len, void *user_data,
                      uint32_t flags);

/*
 * Submits what is queued and polls for completions: fills up to max_completions entries and
 * returns how many, waiting (busy-polling) for at least min_completions. min_completions 0
 * never waits. timeout_ns < 0 waits as long as it takes (every request has a deadline, see
 * uvio_set_request_timeout_ns); otherwise fewer than min_completions after timeout_ns fails
 * with -ETIME, and what did finish stays for the next call. Waiting for more requests than
 * are in flight fails with -EINVAL. Doorbells are batched: while the device still works on
 * earlier requests of the queue, the notification for new ones goes out with the first poll
 * that finds no new completion (each saved notification is an exit to the hypervisor).
 */
int uvio_poll(struct uvio_queue *q, struct uvio_completion *completions, int min_completions,
              int max_completions, int64_t timeout_ns);

/* The message of this thread's last failed call ("" if none). Valid until its next failure. */
const char *uvio_get_error_msg(void);

/* Resets the device and frees its queues and DMA memory; the handles are dead afterwards. */
int uvio_close(struct uvio_dev *dev);

#ifdef __cplusplus
}
#endif

#endif /* UVIO_H */
