/*
 * uvio_test: libuvio's C API against a real device, run in the guest by tests/tests/vm_capi.rs.
 *
 *   uvio_test DEVICE RING SEED IMAGE_BYTES
 *
 * DEVICE is bound to vfio-pci; RING is auto, split or packed; the device's image holds
 * seeded_bytes(SEED, IMAGE_BYTES) (tests/src/data.rs, regenerated here). It reads the whole
 * image on two queues from two threads and compares every byte, writes, writev's, discards
 * and zeroes known ranges (which the host then finds in the image file), and checks that every
 * bad input fails with its errno and message. Prints "ok NAME" / "FAIL NAME" per check and
 * exits non-zero on any failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uvio.h"

/* The ranges the host checks in the image afterwards (vm_capi.rs has the same numbers). */
#define W1_OFFSET (1u << 20)
#define W1_LEN (256u << 10)
#define WV_OFFSET (2u << 20)
#define DISCARD_OFFSET (3u << 20)
#define DISCARD_LEN (64u << 10)
#define ZERO_OFFSET (4u << 20)
#define ZERO_LEN ((128u << 10) + 4096)
#define CHUNK (64u << 10)
#define DEPTH 16

static int failures;
static int passed;

static void check(int ok, const char *name, const char *detail)
{
    if (ok) {
        passed++;
        printf("ok %s%s%s\n", name, detail ? ": " : "", detail ? detail : "");
    } else {
        failures++;
        printf("FAIL %s%s%s\n", name, detail ? ": " : "", detail ? detail : "");
    }
    fflush(stdout);
}

/* A call that must succeed. */
static int must(int rc, const char *name)
{
    if (rc < 0) {
        char detail[512];
        snprintf(detail, sizeof detail, "rc %d (%s): %s", rc, strerror(-rc), uvio_get_error_msg());
        check(0, name, detail);
    }
    return rc;
}

/* A call that must fail with -errno_expected and a message containing `words`. */
static void expect_error(int rc, int errno_expected, const char *words, const char *name)
{
    const char *msg = uvio_get_error_msg();
    char detail[600];
    snprintf(detail, sizeof detail, "rc %d (want %d), message: %s", rc, -errno_expected, msg);
    check(rc == -errno_expected && strstr(msg, words) != NULL, name, detail);
}

/* seeded_bytes of tests/src/data.rs: xorshift64*, little-endian words. */
static void seeded_bytes(uint64_t seed, uint8_t *out, size_t len)
{
    uint64_t x = seed ? seed : 1;
    for (size_t i = 0; i < len; i += 8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        uint64_t v = x * 0x2545f4914f6cdd1dull;
        for (size_t b = 0; b < 8 && i + b < len; b++)
            out[i + b] = (uint8_t)(v >> (8 * b));
    }
}

static int same(const uint8_t *got, const uint8_t *want, size_t len, const char *name)
{
    for (size_t i = 0; i < len; i++) {
        if (got[i] != want[i]) {
            char detail[128];
            snprintf(detail, sizeof detail, "byte %zu is %#x, want %#x", i, got[i], want[i]);
            check(0, name, detail);
            return 0;
        }
    }
    check(1, name, NULL);
    return 1;
}

static uint8_t *image;        /* the expected image */
static uint64_t image_bytes;

/* Waits for exactly one completion and returns its ret, checking its cookie. */
static int complete_one(struct uvio_queue *q, void *cookie, const char *name)
{
    struct uvio_completion c;
    int n = must(uvio_poll(q, &c, 1, 1, -1), name);
    if (n != 1)
        return -1000;
    if (c.user_data != cookie) {
        check(0, name, "completion carries another cookie");
        return -1000;
    }
    if (c.ret != 0)
        printf("  %s: completion ret %d: %s\n", name, c.ret, c.error_msg ? c.error_msg : "(no message)");
    return c.ret;
}

/* Reads [start, end) of the device in CHUNK requests, DEPTH in flight, into buf. */
struct reader {
    struct uvio_queue *q;
    uint8_t *buf; /* in DMA memory, end - start bytes */
    uint64_t start, end;
    int ok;
};

static void *read_range(void *arg)
{
    struct reader *r = arg;
    uint64_t next = r->start, done = 0, total = (r->end - r->start) / CHUNK;
    int in_flight = 0;
    char *seen = calloc(total, 1);
    r->ok = seen != NULL;
    while (r->ok && done < total) {
        while (in_flight < DEPTH && next < r->end) {
            uint64_t i = (next - r->start) / CHUNK;
            if (uvio_read(r->q, next, r->buf + (next - r->start), CHUNK, (void *)(uintptr_t)(i + 1), 0) < 0) {
                printf("  read at %" PRIu64 ": %s\n", next, uvio_get_error_msg());
                r->ok = 0;
                break;
            }
            next += CHUNK;
            in_flight++;
        }
        struct uvio_completion c[DEPTH];
        int n = uvio_poll(r->q, c, 1, DEPTH, -1);
        if (n < 0) {
            printf("  poll: %s\n", uvio_get_error_msg());
            r->ok = 0;
            break;
        }
        for (int k = 0; k < n; k++) {
            uint64_t i = (uintptr_t)c[k].user_data - 1;
            if (c[k].ret != 0 || i >= total || seen[i]) {
                printf("  completion %d: cookie %" PRIu64 " ret %d %s\n", k, i + 1, c[k].ret,
                       c[k].error_msg ? c[k].error_msg : "");
                r->ok = 0;
            } else {
                seen[i] = 1;
            }
        }
        in_flight -= n;
        done += (uint64_t)n;
    }
    free(seen);
    return NULL;
}

/* Handles and properties, before and around uvio_start. */
static struct uvio_dev *open_and_start(const char *device, const char *ring_name)
{
    struct uvio_dev *dev = NULL;
    int ring = !strcmp(ring_name, "split") ? UVIO_RING_SPLIT
               : !strcmp(ring_name, "packed") ? UVIO_RING_PACKED : UVIO_RING_AUTO;

    expect_error(uvio_start(NULL), EBADF, "NULL", "null_device_handle");
    expect_error(uvio_get_info((struct uvio_dev *)(uintptr_t)0x12345670, NULL), EBADF, "not open",
                 "garbage_device_handle");
    expect_error(uvio_read(NULL, 0, NULL, 512, NULL, 0), EBADF, "NULL", "null_queue_handle");
    expect_error(uvio_open("0000:00:zz.0", &dev), EINVAL, "0000:00:zz.0", "bad_device_string");
    check(dev == NULL, "failed_open_leaves_null", NULL);
    expect_error(uvio_open(device, NULL), EFAULT, "devp is NULL", "null_devp");

    if (must(uvio_open(device, &dev), "open") < 0)
        return NULL;
    expect_error(uvio_set_num_queues(dev, 0), EINVAL, "num_queues is 0", "zero_queues");
    expect_error(uvio_set_ring(dev, 7), EINVAL, "ring is 7", "bad_ring");
    expect_error(uvio_get_info(dev, &(struct uvio_info){0}), ENOTCONN, "uvio_start first",
                 "info_before_start");
    must(uvio_set_num_queues(dev, 2), "set_num_queues");
    must(uvio_set_queue_depth(dev, DEPTH), "set_queue_depth");
    must(uvio_set_ring(dev, ring), "set_ring");
    must(uvio_set_request_timeout_ns(dev, 10ull * 1000 * 1000 * 1000), "set_request_timeout");
    if (must(uvio_start(dev), "start") < 0)
        return NULL;
    check(1, "start", NULL);
    expect_error(uvio_set_queue_depth(dev, 8), EBUSY, "before uvio_start", "property_after_start");
    expect_error(uvio_start(dev), EBUSY, "started already", "start_twice");
    /* One process opens a function once; the refusal leaves the first device working. */
    struct uvio_dev *again = NULL;
    must(uvio_open(device, &again), "open_again");
    expect_error(uvio_start(again), EBUSY, "is open already in this process", "second_start_refused");
    must(uvio_close(again), "close_again");
    return dev;
}

static void print_info(const struct uvio_info *i)
{
    printf("info capacity=%" PRIu64 " logical_block_size=%u physical_block_size=%u "
           "max_transfer=%" PRIu64 " max_segments=%u max_segment_size=%u request_alignment=%u "
           "buf_alignment=%u discard_max=%" PRIu64 " discard_alignment=%u write_zeroes_max=%" PRIu64
           " write_zeroes_alignment=%u read_only=%u flush=%u num_queues=%u queue_depth=%u ring=%s\n",
           i->capacity, i->logical_block_size, i->physical_block_size, i->max_transfer,
           i->max_segments, i->max_segment_size, i->request_alignment, i->buf_alignment,
           i->discard_max, i->discard_alignment, i->write_zeroes_max, i->write_zeroes_alignment,
           i->read_only, i->flush, i->num_queues, i->queue_depth,
           i->ring == UVIO_RING_PACKED ? "packed" : "split");
}

/* The whole image, half on each queue from its own thread, byte-exact. */
static void read_whole_image(struct uvio_queue *q0, struct uvio_queue *q1, uint8_t *buf)
{
    uint64_t half = image_bytes / 2;
    struct reader a = { q0, buf, 0, half, 0 };
    struct reader b = { q1, buf + half, half, image_bytes, 0 };
    pthread_t t;
    if (pthread_create(&t, NULL, read_range, &b) != 0) {
        check(0, "read_thread", "pthread_create failed");
        return;
    }
    read_range(&a);
    pthread_join(t, NULL);
    check(a.ok && b.ok, "read_two_queues", NULL);
    same(buf, image, image_bytes, "read_whole_image");
}

/*
 * uvio_open_lun. On a virtio-scsi LUN: the same LUN opened again from the host is a device on
 * its queues (a read submitted through its queue handle is polled through dev's) and memory,
 * with the host's properties; a LUN the host lacks and another function are refused, and
 * dev outlives it. On virtio-blk there is no other LUN.
 */
static void check_open_lun(struct uvio_dev *dev, const char *device, struct uvio_queue *dev_q1,
                           uint8_t *buf)
{
    char bdf[32], name[64];
    struct uvio_dev *lun = NULL;
    snprintf(bdf, sizeof bdf, "%.*s", (int)strcspn(device, "/"), device);
    if (!strchr(device, '/')) {
        snprintf(name, sizeof name, "%s/0:0:0", bdf);
        expect_error(uvio_open_lun(dev, name, &lun), ENODEV, "virtio-blk", "open_lun_of_blk");
        return;
    }
    snprintf(name, sizeof name, "%s/0:0:9", bdf);
    expect_error(uvio_open_lun(dev, name, &lun), ENODEV, "0:0:9", "open_lun_no_such_lun");
    expect_error(uvio_open_lun(dev, "0000:00:1f.7/0:0:0", &lun), EINVAL, "is not on",
                 "open_lun_other_function");
    if (must(uvio_open_lun(dev, device, &lun), "open_lun_same") < 0)
        return;
    check(1, "open_lun_same", NULL);
    struct uvio_info li;
    must(uvio_get_info(lun, &li), "open_lun_info");
    check(li.capacity == image_bytes && li.num_queues == 2, "open_lun_info", NULL);
    expect_error(uvio_set_queue_depth(lun, 8), EBUSY, "before uvio_start", "open_lun_property");
    struct uvio_queue *lun_q1 = NULL;
    must(uvio_get_queue(lun, 1, &lun_q1), "open_lun_queue");
    memset(buf, 0, CHUNK);
    must(uvio_read(lun_q1, CHUNK, buf, CHUNK, (void *)0x1d, 0), "open_lun_read_submit");
    /* The host's queue 1: dev's handle polls the LUN device's request. */
    check(complete_one(dev_q1, (void *)0x1d, "open_lun_shared_queue") == 0,
          "open_lun_shared_queue", NULL);
    same(buf, image + CHUNK, CHUNK, "open_lun_bytes");
    must(uvio_close(lun), "open_lun_close");
    must(uvio_read(dev_q1, 0, buf, CHUNK, (void *)0x1e, 0), "open_lun_after_close_submit");
    check(complete_one(dev_q1, (void *)0x1e, "open_lun_after_close") == 0,
          "open_lun_dev_outlives_it", NULL);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: uvio_test DEVICE auto|split|packed SEED IMAGE_BYTES\n");
        return 2;
    }
    const char *device = argv[1];
    uint64_t seed = strtoull(argv[3], NULL, 0);
    image_bytes = strtoull(argv[4], NULL, 0);
    image = malloc(image_bytes);
    if (!image)
        return 2;
    seeded_bytes(seed, image, image_bytes);

    struct uvio_info info;
    struct uvio_queue *q0 = NULL, *q1 = NULL, *qx = NULL;
    uint8_t *buf = NULL;
    struct uvio_dev *dev = open_and_start(device, argv[2]);
    if (!dev)
        goto out;

    must(uvio_get_info(dev, &info), "info");
    print_info(&info);
    check(info.capacity == image_bytes, "capacity", NULL);

    must(uvio_get_queue(dev, 0, &q0), "queue0");
    must(uvio_get_queue(dev, 1, &q1), "queue1");
    expect_error(uvio_get_queue(dev, 2, &qx), EINVAL, "does not exist", "queue_out_of_range");
    expect_error(uvio_get_queue(dev, 0, NULL), EFAULT, "qp is NULL", "null_qp");
    expect_error(uvio_get_info((struct uvio_dev *)q0, &info), EBADF, "is a queue handle",
                 "queue_handle_as_device");

    struct uvio_mem_region big, small, freed;
    if (must(uvio_alloc_mem(dev, image_bytes, &big), "alloc_big") < 0 ||
        must(uvio_alloc_mem(dev, 1 << 20, &small), "alloc_small") < 0 ||
        must(uvio_alloc_mem(dev, 4096, &freed), "alloc_freed") < 0)
        goto close;
    check(big.len >= image_bytes && big.iova != 0, "region", NULL);
    buf = big.addr;
    uint8_t *scratch = small.addr;

    read_whole_image(q0, q1, buf);

    /* The last block alone, into the middle of a region. */
    uint32_t lbs = info.logical_block_size;
    uint64_t last = image_bytes - lbs;
    must(uvio_read(q0, last, scratch + 8192, lbs, (void *)0x1a57, 0), "read_last_submit");
    check(complete_one(q0, (void *)0x1a57, "read_last") == 0, "read_last", NULL);
    same(scratch + 8192, image + last, lbs, "read_last_bytes");

    /* readv: three pieces, one at an odd address (buf_alignment 1). */
    memset(scratch, 0, 1 << 20);
    struct iovec rv[3] = {
        { scratch, 4096 }, { scratch + 65536 + 1, 8192 }, { scratch + 200000, 512 },
    };
    uint64_t rv_off = 5u << 20;
    must(uvio_readv(q0, rv_off, rv, 3, (void *)0xabc, 0), "readv_submit");
    check(complete_one(q0, (void *)0xabc, "readv") == 0, "readv", NULL);
    int rv_ok = same(rv[0].iov_base, image + rv_off, 4096, "readv_piece0") &
                same(rv[1].iov_base, image + rv_off + 4096, 8192, "readv_piece1") &
                same(rv[2].iov_base, image + rv_off + 12288, 512, "readv_piece2");
    (void)rv_ok;

    /* write, writev, flush, discard, write-zeroes: the host finds them in the image. */
    uint8_t *w1 = malloc(W1_LEN), *wv = malloc(12800);
    if (!w1 || !wv)
        goto close;
    seeded_bytes(seed ^ 0x1111, w1, W1_LEN);
    seeded_bytes(seed ^ 0x2222, wv, 12800);
    memcpy(buf, w1, W1_LEN);
    must(uvio_write(q1, W1_OFFSET, buf, W1_LEN, (void *)1, 0), "write_submit");
    check(complete_one(q1, (void *)1, "write") == 0, "write", NULL);
    struct iovec wvv[3] = {
        { scratch + 1, 4096 }, { scratch + 300000, 8192 }, { scratch + 600000 + 3, 512 },
    };
    memcpy(wvv[0].iov_base, wv, 4096);
    memcpy(wvv[1].iov_base, wv + 4096, 8192);
    memcpy(wvv[2].iov_base, wv + 12288, 512);
    must(uvio_writev(q1, WV_OFFSET, wvv, 3, (void *)2, 0), "writev_submit");
    check(complete_one(q1, (void *)2, "writev") == 0, "writev", NULL);
    must(uvio_flush(q1, (void *)3, 0), "flush_submit");
    check(complete_one(q1, (void *)3, "flush") == 0, "flush", NULL);
    must(uvio_discard(q0, DISCARD_OFFSET, DISCARD_LEN, (void *)4, 0), "discard_submit");
    check(complete_one(q0, (void *)4, "discard") == 0, "discard", NULL);
    must(uvio_write_zeroes(q0, ZERO_OFFSET, ZERO_LEN, (void *)5, 0), "write_zeroes_submit");
    check(complete_one(q0, (void *)5, "write_zeroes") == 0, "write_zeroes", NULL);

    /* Read back what was written, through the other queue. */
    memset(buf, 0xee, W1_LEN);
    must(uvio_read(q0, W1_OFFSET, buf, W1_LEN, (void *)6, 0), "readback_submit");
    check(complete_one(q0, (void *)6, "readback") == 0, "readback", NULL);
    same(buf, w1, W1_LEN, "readback_write");
    must(uvio_read(q0, WV_OFFSET, buf, 12800, (void *)7, 0), "readback_writev_submit");
    check(complete_one(q0, (void *)7, "readback_writev") == 0, "readback_writev", NULL);
    same(buf, wv, 12800, "readback_writev_bytes");
    uint8_t *zeroes = calloc(1, ZERO_LEN);
    memset(buf, 0xee, ZERO_LEN);
    must(uvio_read(q1, ZERO_OFFSET, buf, ZERO_LEN, (void *)8, 0), "readback_zeroes_submit");
    check(complete_one(q1, (void *)8, "readback_zeroes") == 0, "readback_zeroes", NULL);
    if (zeroes)
        same(buf, zeroes, ZERO_LEN, "readback_zeroes_bytes");
    free(zeroes);

    /* Bad requests: each refused with its errno and message, nothing submitted. */
    uint8_t stack_buf[4096];
    expect_error(uvio_read(q0, 100, buf, lbs, NULL, 0), EINVAL, "not aligned", "misaligned_offset");
    expect_error(uvio_read(q0, 0, buf, lbs + 1, NULL, 0), EINVAL, "not aligned", "misaligned_length");
    expect_error(uvio_read(q0, 0, buf, 0, NULL, 0), EINVAL, "buffer length is 0", "empty_read");
    expect_error(uvio_read(q0, image_bytes, buf, lbs, NULL, 0), ERANGE, "past the end", "past_the_end");
    expect_error(uvio_write(q0, image_bytes - lbs, buf, 2 * lbs, NULL, 0), ERANGE, "past the end",
                 "straddles_the_end");
    expect_error(uvio_discard(q0, image_bytes, 4096, NULL, 0), ERANGE, "past the end",
                 "discard_past_the_end");
    expect_error(uvio_read(q0, 0, stack_buf, sizeof stack_buf, NULL, 0), EFAULT,
                 "not inside one DMA memory region", "buffer_on_the_stack");
    expect_error(uvio_write(q0, 0, w1, 4096, NULL, 0), EFAULT, "uvio_alloc_mem", "buffer_from_malloc");
    expect_error(uvio_read(q0, 0, scratch + small.len - 512, 1024, NULL, 0), EFAULT,
                 "not inside one DMA memory region", "buffer_past_region_end");
    struct iovec mixed[2] = { { scratch, 512 }, { stack_buf, 512 } };
    expect_error(uvio_writev(q0, 0, mixed, 2, NULL, 0), EFAULT, "not inside", "iovec_outside_dma");
    expect_error(uvio_readv(q0, 0, mixed, 0, NULL, 0), EINVAL, "iovcnt is 0", "iovcnt_zero");
    expect_error(uvio_readv(q0, 0, NULL, 1, NULL, 0), EFAULT, "iov is NULL", "iov_null");
    expect_error(uvio_read(q0, 0, buf, lbs, NULL, 1), EINVAL, "flags 0x1", "unknown_flags");
    struct uvio_completion c[4];
    expect_error(uvio_poll(q0, c, 1, 4, -1), EINVAL, "only 0 requests are in flight",
                 "poll_for_nothing");
    expect_error(uvio_poll(q0, c, 3, 2, -1), EINVAL, "max_completions is 2", "poll_max_below_min");
    expect_error(uvio_poll(q0, NULL, 0, 4, 0), EFAULT, "completions is NULL", "poll_null_array");
    check(uvio_poll(q0, c, 0, 4, 0) == 0, "poll_nonblocking_empty", NULL);

    /* Every tag in use: one more request is refused until a poll frees a tag. */
    int filled = 0;
    for (uint32_t i = 0; i < info.queue_depth; i++)
        filled += must(uvio_read(q0, (uint64_t)i * 4096, buf + i * 4096, 4096,
                                 (void *)(uintptr_t)(100 + i), 0), "fill_queue") == 0;
    expect_error(uvio_read(q0, 0, buf, 4096, NULL, 0), EAGAIN, "poll for completions first",
                 "queue_full");
    struct uvio_completion all[DEPTH];
    int got = filled == DEPTH ? uvio_poll(q0, all, DEPTH, DEPTH, -1) : -1;
    int cookies_ok = got == DEPTH;
    unsigned seen_mask = 0;
    for (int k = 0; cookies_ok && k < got; k++) {
        uintptr_t i = (uintptr_t)all[k].user_data - 100;
        cookies_ok = all[k].ret == 0 && i < DEPTH && !(seen_mask & (1u << i));
        seen_mask |= 1u << (i % DEPTH);
    }
    check(cookies_ok && seen_mask == (1u << DEPTH) - 1, "full_queue_drains", NULL);
    same(buf, image, (size_t)DEPTH * 4096, "full_queue_bytes");

    /* A poll that times out keeps what finished for the next one. */
    must(uvio_read(q0, 0, buf, CHUNK, (void *)9, 0), "timeout_read_submit");
    int rc = uvio_poll(q0, c, 1, 4, 0);
    if (rc == -ETIME) {
        expect_error(rc, ETIME, "timeout", "poll_timeout");
        check(complete_one(q0, (void *)9, "after_timeout") == 0, "completion_after_timeout", NULL);
    } else {
        check(rc == 1 && c[0].user_data == (void *)9 && c[0].ret == 0, "poll_timeout_zero_found_it", NULL);
    }

    check_open_lun(dev, device, q1, buf);

    /* Memory: a freed region is no longer DMA memory; a double free is refused. */
    must(uvio_free_mem(dev, &freed), "free");
    expect_error(uvio_free_mem(dev, &freed), EINVAL, "not a live DMA region", "double_free");
    expect_error(uvio_read(q0, 0, freed.addr, 512, NULL, 0), EFAULT, "not inside", "freed_buffer");
    expect_error(uvio_alloc_mem(dev, 0, &freed), EINVAL, "len is 0", "alloc_zero");

close:
    must(uvio_close(dev), "close");
    check(1, "close", NULL);
    expect_error(uvio_close(dev), EBADF, "not open", "double_close");
    expect_error(uvio_read(q0, 0, buf, 512, NULL, 0), EBADF, "not open", "queue_after_close");
    expect_error(uvio_get_info(dev, &info), EBADF, "not open", "info_after_close");

    /* The packed ring asked of a device that has only the split ring. */
    if (!strcmp(argv[2], "split")) {
        struct uvio_dev *packed = NULL;
        must(uvio_open(device, &packed), "open_packed");
        must(uvio_set_ring(packed, UVIO_RING_PACKED), "set_ring_packed");
        expect_error(uvio_start(packed), EOPNOTSUPP, "does not offer the packed ring",
                     "packed_ring_refused");
        must(uvio_close(packed), "close_packed");
    }
out:
    printf("uvio_test: %d checks passed, %d failed\n", passed, failures);
    return failures ? 1 : 0;
}
