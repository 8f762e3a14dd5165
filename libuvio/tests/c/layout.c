/*
 * Prints the size and field offsets of every struct in uvio.h, one "name value" per line,
 * for tests/header.rs to compare with the Rust side. Compiled with gcc -Werror.
 */
#include <stddef.h>
#include <stdio.h>

#include "uvio.h"

#define FIELD(type, field) printf(#type "." #field " %zu\n", offsetof(struct type, field))
#define SIZE(type) printf(#type " %zu\n", sizeof(struct type))

int main(void)
{
    SIZE(uvio_info);
    FIELD(uvio_info, capacity);
    FIELD(uvio_info, logical_block_size);
    FIELD(uvio_info, physical_block_size);
    FIELD(uvio_info, max_transfer);
    FIELD(uvio_info, max_segments);
    FIELD(uvio_info, max_segment_size);
    FIELD(uvio_info, request_alignment);
    FIELD(uvio_info, buf_alignment);
    FIELD(uvio_info, discard_max);
    FIELD(uvio_info, discard_alignment);
    FIELD(uvio_info, write_zeroes_alignment);
    FIELD(uvio_info, write_zeroes_max);
    FIELD(uvio_info, read_only);
    FIELD(uvio_info, flush);
    FIELD(uvio_info, num_queues);
    FIELD(uvio_info, queue_depth);
    FIELD(uvio_info, ring);
    FIELD(uvio_info, reserved);
    SIZE(uvio_mem_region);
    FIELD(uvio_mem_region, addr);
    FIELD(uvio_mem_region, len);
    FIELD(uvio_mem_region, iova);
    SIZE(uvio_completion);
    FIELD(uvio_completion, user_data);
    FIELD(uvio_completion, error_msg);
    FIELD(uvio_completion, ret);
    FIELD(uvio_completion, reserved);
    printf("UVIO_RING_AUTO %d\nUVIO_RING_SPLIT %d\nUVIO_RING_PACKED %d\n", UVIO_RING_AUTO,
           UVIO_RING_SPLIT, UVIO_RING_PACKED);
    return 0;
}
