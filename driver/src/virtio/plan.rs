//! Laying out a device's request queues: ring sizes, tags per queue, and how many data
//! segments one request may carry, then building and programming each queue.

use std::sync::Arc;

use super::features::Features;
use super::layout::RingLayout;
use super::packed::PackedQueue;
use super::pci::{QueueNotifier, TransportError, VirtioPciTransport};
use super::ring::Ring;
use super::ring_core::RingCore;
use super::split::{slot_stride, SplitQueue};
use crate::dma::{DmaError, DmaSpace};

/// Ring entries per queue unless asked otherwise (QEMU's default too).
pub const DEFAULT_QUEUE_SIZE: u16 = 256;

/// Errors from setting up queues.
#[derive(Debug, thiserror::Error)]
pub enum QueueSetupError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Dma(#[from] DmaError),
    #[error("virtqueue {index}: the device allows only {max} entries, too few to use")]
    TooSmall { index: u16, max: u16 },
}

/// The request queues `first..first + sizes.len()` of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePlan {
    pub first: u16,
    /// Ring entries of each queue (powers of two).
    pub sizes: Vec<u16>,
    /// Tags (requests in flight) per queue.
    pub depth: u16,
    /// Most data segments one request may have, given the ring.
    pub segment_budget: usize,
    /// Descriptors every chain needs besides its data (headers, status).
    pub overhead: usize,
    pub indirect: bool,
    pub event_idx: bool,
    /// VIRTIO_F_RING_PACKED was negotiated: every queue of the device is packed.
    pub packed: bool,
}

/// How many tags a device's queues should have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DepthRequest {
    /// Tags (requests in flight) per queue; default: the ring size (without indirect
    /// descriptors, a quarter of it: slots of 4, room for a second buffer in a virtio-blk
    /// request). Asked for, at most the one-buffer chains that fit the ring directly: 85 of
    /// virtio-blk's 3 descriptors, 64 of virtio-scsi's 4, on a 256-entry ring.
    pub depth: Option<u16>,
    /// Tags added to `depth` only as far as every tag keeps a slot for a direct chain (a
    /// third of the ring for virtio-blk's chains of three descriptors): for a caller that prepares
    /// requests ahead of those in flight (the block layer's `HwQueue::kick_up_to`), where a spare tag
    /// that cost requests indirect tables would lose more than it gains.
    ///
    pub spare: u16,
    /// Cap the depth at the tags whose chains fit the ring directly. An indirect table costs
    /// the device an extra translated mapping per request; behind a vIOMMU, QEMU's
    /// virtio-blk did 150k-165k 4 KiB reads per second with 128 tags (86 of them indirect)
    /// against 210k-260k with 64 direct ones (docs/benchmarks.md).
    pub direct_only: bool,
}

impl DepthRequest {
    /// Tags per queue on rings of `ring` entries whose direct chains take `per_chain`
    /// descriptors each, with or without indirect descriptors.
    fn resolve(self, ring: u16, per_chain: u16, indirect: bool) -> u16 {
        let direct = (ring / per_chain).max(1);
        let depth = if indirect && !self.direct_only {
            self.depth.unwrap_or(ring).clamp(1, ring)
        } else {
            // Unasked, a depth whose slots (a power of two) leave room for a second buffer
            // where a one-buffer chain would leave none: without indirect tables, a vectored
            // request of two buffers would otherwise be refused.
            let unasked = (ring / per_chain.next_power_of_two()).max(1);
            self.depth.unwrap_or(unasked).clamp(1, direct)
        };
        depth.max(depth.saturating_add(self.spare).min(direct))
    }
}

fn floor_pow2(x: u16) -> u16 {
    if x == 0 {
        0
    } else {
        1 << (15 - x.leading_zeros())
    }
}

impl QueuePlan {
    /// Plans `count` queues from index `first` for a device whose features are negotiated.
    /// Each tag owns a slot of the ring (`ring / depth` descriptors, see
    /// [`slot_stride`]). With indirect descriptors a chain longer than its slot goes into an
    /// indirect table, so the whole ring is usable as tags; without them each request's chain
    /// must fit in its slot, so the depth also bounds the segments per request.
    pub fn new(
        transport: &VirtioPciTransport,
        first: u16,
        count: u16,
        queue_size: Option<u16>,
        depth: DepthRequest,
        overhead: usize,
    ) -> Result<Self, QueueSetupError> {
        let features = transport.negotiated_features();
        let indirect = features.contains(Features::INDIRECT_DESC);
        let mut sizes = Vec::new();
        for index in first..first + count {
            let max = transport.queue_max_size(index)?;
            let size = floor_pow2(queue_size.unwrap_or(DEFAULT_QUEUE_SIZE).min(max));
            if usize::from(size) < 2 * (overhead + 1) {
                return Err(QueueSetupError::TooSmall { index, max });
            }
            sizes.push(size);
        }
        let ring = sizes.iter().copied().min().unwrap_or(DEFAULT_QUEUE_SIZE);
        // The smallest slot that holds a chain with one data segment.
        let per_chain = (overhead + 1) as u16;
        let depth = depth.resolve(ring, per_chain, indirect);
        let segment_budget = if indirect {
            usize::from(ring) - overhead
        } else {
            usize::from(slot_stride(ring, depth)) - overhead
        };
        Ok(QueuePlan {
            first,
            sizes,
            depth,
            segment_budget: segment_budget.max(1),
            overhead,
            indirect,
            event_idx: features.contains(Features::EVENT_IDX),
            packed: features.contains(Features::RING_PACKED),
        })
    }

    /// Builds queue `i` of the plan (indirect tables sized for `max_segments` data segments)
    /// and programs it into the device.
    pub fn build(
        &self,
        transport: &VirtioPciTransport,
        dma: &Arc<DmaSpace>,
        i: u16,
        max_segments: usize,
    ) -> Result<(Ring, QueueNotifier), QueueSetupError> {
        let index = self.first + i;
        let size = self.sizes[usize::from(i)];
        let indirect_max = if self.indirect {
            (max_segments + self.overhead).min(usize::from(size)) as u16
        } else {
            0
        };
        let queue = new_ring(
            dma,
            index,
            RingShape {
                packed: self.packed,
                size,
                indirect_max,
                event_idx: self.event_idx,
                depth: self.depth,
                direct_chain: (self.overhead + 1) as u16,
            },
        )?;
        let notifier = transport.setup_queue(index, &queue)?;
        Ok((queue, notifier))
    }
}

/// What a ring holds, for [`new_ring`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingShape {
    pub packed: bool,
    /// Ring entries (a power of two).
    pub size: u16,
    /// Descriptors per indirect table (0: none).
    pub indirect_max: u16,
    pub event_idx: bool,
    /// Chains in flight at most.
    pub depth: u16,
    /// Descriptors of the owner's usual chain (a one-buffer request), which a split ring
    /// keeps direct for as many chains as fit (see [`SplitQueue::new`]).
    pub direct_chain: u16,
}

/// A zeroed ring for queue `index`, packed or split, in fresh DMA memory.
pub fn new_ring(
    dma: &Arc<DmaSpace>,
    index: u16,
    shape: RingShape,
) -> Result<Ring, QueueSetupError> {
    let RingShape {
        packed,
        size,
        indirect_max,
        event_idx,
        depth,
        direct_chain,
    } = shape;
    let too_small = || QueueSetupError::TooSmall { index, max: size };
    if packed {
        let layout = RingLayout::packed(size, indirect_max).ok_or_else(too_small)?;
        let core =
            RingCore::new(Box::new(dma.alloc(layout.total)?), layout).ok_or_else(too_small)?;
        Ok(PackedQueue::new(core, event_idx, depth).into())
    } else {
        let layout = RingLayout::split(size, indirect_max).ok_or_else(too_small)?;
        let core =
            RingCore::new(Box::new(dma.alloc(layout.total)?), layout).ok_or_else(too_small)?;
        Ok(SplitQueue::new(core, event_idx, depth, direct_chain).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(depth: Option<u16>, spare: u16, direct_only: bool) -> DepthRequest {
        DepthRequest {
            depth,
            spare,
            direct_only,
        }
    }

    #[test]
    fn depth_defaults_caps_and_spare_tags() {
        // A 256-entry ring, chains of up to four descriptors: 64 direct slots.
        assert_eq!(req(None, 0, false).resolve(256, 4, true), 256);
        assert_eq!(req(None, 0, false).resolve(256, 4, false), 64);
        assert_eq!(req(Some(128), 0, false).resolve(256, 4, true), 128);
        assert_eq!(req(Some(128), 0, true).resolve(256, 4, true), 64);
        assert_eq!(req(Some(0), 0, false).resolve(256, 4, true), 1);
        // Spare tags only as far as direct slots reach, never below the depth asked for.
        assert_eq!(req(Some(1), 1, true).resolve(256, 4, true), 2);
        assert_eq!(req(Some(32), 32, true).resolve(256, 4, true), 64);
        assert_eq!(req(Some(48), 48, true).resolve(256, 4, true), 64);
        assert_eq!(req(Some(100), 100, false).resolve(256, 4, true), 100);
        assert_eq!(req(Some(8), 8, false).resolve(16, 4, true), 8);
        // virtio-blk: a header, one buffer and a status are 3 descriptors, 85 direct slots.
        assert_eq!(req(Some(128), 0, true).resolve(256, 3, true), 85);
        assert_eq!(req(Some(32), 32, true).resolve(256, 3, true), 64);
        assert_eq!(req(Some(64), 64, true).resolve(256, 3, true), 85);
        assert_eq!(req(Some(128), 0, false).resolve(256, 3, false), 85);
        // Unasked, without tables: slots of 4, so a request may carry two buffers.
        assert_eq!(req(None, 0, false).resolve(256, 3, false), 64);
    }
}
