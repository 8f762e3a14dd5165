//! The tag set of a device: its hardware queues, each taken by the thread that drives it.

use std::sync::Arc;
use std::time::Duration;

use super::encoder::RequestEncoder;
use super::hwqueue::HwQueue;
use crate::dma::{DmaError, DmaSpace};
use crate::virtio::plan::{QueuePlan, QueueSetupError};
use crate::virtio::VirtioPciTransport;

/// The hardware queues of one device (a virtio-blk disk, or a virtio-scsi host whose LUNs
/// all share it): `nr_hw_queues` queues of `queue_depth` tags each. Each queue is taken by
/// the thread that will drive it.
#[derive(Debug)]
pub struct TagSet<E: RequestEncoder> {
    queue_depth: u16,
    queues: Vec<Option<HwQueue<E>>>,
}

impl<E: RequestEncoder> TagSet<E> {
    pub fn new(queues: Vec<HwQueue<E>>) -> Self {
        let queue_depth = queues.iter().map(HwQueue::depth).min().unwrap_or(0);
        TagSet {
            queue_depth,
            queues: queues.into_iter().map(Some).collect(),
        }
    }

    /// Sets up the request queues `plan` describes, each with `plan.depth` tags, DMA slots
    /// of its encoder's size and the encoder `encoder(index)` makes. `clamp_used_len`
    /// clamps used lengths beyond a chain's writable buffers instead of breaking the
    /// queue (virtio-scsi: QEMU counts a WRITE's data in the used length).
    pub fn build(
        plan: &QueuePlan,
        transport: &VirtioPciTransport,
        dma: &Arc<DmaSpace>,
        max_segments: usize,
        clamp_used_len: bool,
        mut encoder: impl FnMut(u16) -> Result<E, DmaError>,
    ) -> Result<Self, QueueSetupError> {
        let mut queues = Vec::new();
        for index in 0..plan.sizes.len() as u16 {
            let (ring, notifier) = plan.build(transport, dma, index, max_segments)?;
            let ring = if clamp_used_len {
                ring.clamp_used_len()
            } else {
                ring
            };
            let encoder = encoder(index)?;
            let slots = dma.alloc(usize::from(plan.depth) * encoder.slot_size())?;
            let mut queue = HwQueue::new(index, ring, notifier, plan.depth, slots, encoder);
            queue.set_status_probe(transport.status_probe()?);
            queues.push(queue);
        }
        Ok(Self::new(queues))
    }

    /// Gives every queue still here `timeout` as its request deadline and control-path
    /// bound.
    pub fn set_timeouts(&mut self, timeout: Duration) {
        for queue in self.queues.iter_mut().flatten() {
            queue.set_request_timeout(Some(timeout));
            queue.set_control_timeout(timeout);
        }
    }

    pub fn nr_hw_queues(&self) -> u16 {
        self.queues.len() as u16
    }

    pub fn queue_depth(&self) -> u16 {
        self.queue_depth
    }

    /// Takes hardware queue `index` for the calling thread; `None` if taken already.
    pub fn take_queue(&mut self, index: u16) -> Option<HwQueue<E>> {
        self.queues.get_mut(usize::from(index))?.take()
    }

    /// Gives a queue back (for example when a worker thread ends), whatever context type its
    /// user gave it.
    pub fn return_queue<C>(&mut self, queue: HwQueue<E, C>) {
        let index = usize::from(queue.index());
        if let Some(slot) = self.queues.get_mut(index) {
            *slot = Some(queue.with_context());
        }
    }

    /// Takes every queue still here.
    pub fn take_all(&mut self) -> Vec<HwQueue<E>> {
        self.queues.iter_mut().filter_map(Option::take).collect()
    }
}
