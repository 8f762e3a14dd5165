//! Laying out a device's request queues: ring sizes, tags per queue, and how many data
//! segments one request may carry, then building and programming each queue.

use std::sync::Arc;

use super::features::Features;
use super::pci::{QueueNotifier, TransportError, VirtioPciTransport};
use super::split::{SplitLayout, SplitQueue};
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
    /// With indirect descriptors each request takes one ring entry, so the whole ring is
    /// usable as tags; without them each request's chain must fit in its share of the ring,
    /// so the depth also bounds the segments per request.
    pub fn new(
        transport: &VirtioPciTransport,
        first: u16,
        count: u16,
        queue_size: Option<u16>,
        depth: Option<u16>,
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
        let per_chain = (overhead + 1) as u16;
        let depth = if indirect {
            depth.unwrap_or(ring).clamp(1, ring)
        } else {
            depth.unwrap_or(ring / 4).clamp(1, ring / per_chain)
        };
        let segment_budget = if indirect {
            usize::from(ring) - overhead
        } else {
            usize::from(ring / depth) - overhead
        };
        Ok(QueuePlan {
            first,
            sizes,
            depth,
            segment_budget: segment_budget.max(1),
            overhead,
            indirect,
            event_idx: features.contains(Features::EVENT_IDX),
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
    ) -> Result<(SplitQueue, QueueNotifier), QueueSetupError> {
        let index = self.first + i;
        let size = self.sizes[usize::from(i)];
        let indirect_max = if self.indirect {
            (max_segments + self.overhead).min(usize::from(size)) as u16
        } else {
            0
        };
        let layout = SplitLayout::new(size, indirect_max)
            .ok_or(QueueSetupError::TooSmall { index, max: size })?;
        let queue = SplitQueue::new(
            Box::new(dma.alloc(layout.total)?),
            layout,
            self.event_idx,
            self.depth,
        )
        .ok_or(QueueSetupError::TooSmall { index, max: size })?;
        let notifier = transport.setup_queue(index, &queue)?;
        Ok((queue, notifier))
    }
}
