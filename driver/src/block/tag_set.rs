//! The tag set of a device: its hardware queues, each taken by the thread that drives it.

use super::hwqueue::HwQueue;

/// The hardware queues of one device (a virtio-blk disk, or a virtio-scsi host whose LUNs
/// all share it): `nr_hw_queues` queues of `queue_depth` tags each. Each queue is taken by
/// the thread that will drive it.
#[derive(Debug)]
pub struct TagSet {
    queue_depth: u16,
    queues: Vec<Option<HwQueue>>,
}

impl TagSet {
    pub fn new(queues: Vec<HwQueue>) -> Self {
        let queue_depth = queues.iter().map(HwQueue::depth).min().unwrap_or(0);
        TagSet {
            queue_depth,
            queues: queues.into_iter().map(Some).collect(),
        }
    }

    pub fn nr_hw_queues(&self) -> u16 {
        self.queues.len() as u16
    }

    pub fn queue_depth(&self) -> u16 {
        self.queue_depth
    }

    /// Takes hardware queue `index` for the calling thread; `None` if taken already.
    pub fn take_queue(&mut self, index: u16) -> Option<HwQueue> {
        self.queues.get_mut(usize::from(index))?.take()
    }

    /// Gives a queue back (for example when a worker thread ends), whatever context type its
    /// user gave it.
    pub fn return_queue<C>(&mut self, queue: HwQueue<C>) {
        let index = usize::from(queue.index());
        if let Some(slot) = self.queues.get_mut(index) {
            *slot = Some(queue.with_context());
        }
    }

    /// Takes every queue still here.
    pub fn take_all(&mut self) -> Vec<HwQueue> {
        self.queues.iter_mut().filter_map(Option::take).collect()
    }
}
