//! A hardware queue across a reset of its device: what was in flight fails (its buffers come
//! back, since the reset device holds none), the ring starts over in the same memory, and
//! the queue is programmed into the device again. The tags, the records and the callers'
//! contexts carry on: the owner keeps the same queue, as blk-mq keeps its tag set across a
//! controller reset.

use super::{HwQueue, TagState};
use crate::block::encoder::RequestEncoder;
use crate::block::request::{Data, IoError};
use crate::virtio::pci::{StatusProbe, TransportError, VirtioPciTransport};
use crate::virtio::queue::{QueueFault, Virtqueue};

impl<E: RequestEncoder, Ctx> HwQueue<E, Ctx> {
    /// Lets the queue read its device's status once per deadline epoch of idle polling, so
    /// that a device that set DEVICE_NEEDS_RESET fails what is in flight at once with
    /// [`QueueFault::DeviceNeedsReset`](crate::virtio::queue::QueueFault::DeviceNeedsReset)
    /// instead of at each request's deadline.
    pub fn set_status_probe(&mut self, probe: StatusProbe) {
        self.status = Some(probe);
    }

    /// Chooses what a broken queue does with the requests in flight (a device that broke
    /// the ring or set DEVICE_NEEDS_RESET). By default they fail at once with
    /// [`IoError::QueueBroken`] and their buffers stay quarantined until the queue is dropped
    /// or the device reset. Held (`true`), they stay in flight with their buffers, and
    /// [`poll`](Self::poll) finds nothing, until the owner, seeing
    /// [`needs_device_reset`](Self::needs_device_reset), resets the device: they then come
    /// back as [`IoError::DeviceReset`] with their buffers, ready to be sent again. For an
    /// owner that recovers in place.
    pub fn set_hold_until_reset(&mut self, hold: bool) {
        self.hold_until_reset = hold;
    }

    /// What broke the queue, if something did.
    pub fn fault(&self) -> Option<QueueFault> {
        self.ring.fault()
    }

    /// True once the queue can take no more requests until its device is reset: the device
    /// broke the ring or set DEVICE_NEEDS_RESET.
    pub fn needs_device_reset(&self) -> bool {
        self.drained
    }

    /// Takes the queue past a reset of its device, which the caller has just done (status 0
    /// read back: the device holds no request and writes no buffer any more). Every request
    /// still in flight, published or prepared, is parked for the next
    /// [`poll`](Self::poll) as [`IoError::DeviceReset`], with its buffers; a request handed out
    /// as timed out earlier gives its tag back now; buffers quarantined when the ring broke
    /// are released. The ring starts over, empty, in the same memory. Returns how many
    /// requests were failed.
    ///
    /// The queue must then be programmed into the device again
    /// ([`reattach`](Self::reattach)) before the device is set live.
    pub fn after_device_reset(&mut self) -> usize {
        let mut failed = 0;
        for tag in 0..self.tags.depth() {
            let record = &mut self.records[usize::from(tag)];
            match record.state {
                TagState::InFlight | TagState::Awaited => {
                    let request = &record.request;
                    let error = IoError::DeviceReset {
                        op: request.op.name(),
                        offset: request.offset,
                        len: request.len,
                    };
                    self.park_unanswered(tag, error);
                    failed += 1;
                }
                // Its timeout is its result; now it can go out with its buffers.
                TagState::Expired => record.state = TagState::Parked,
                TagState::Orphaned => {
                    record.state = TagState::Idle;
                    record.request.data = Data::None;
                    self.tags.free(tag);
                }
                TagState::Idle | TagState::Parked => {}
            }
        }
        self.quarantine.clear();
        self.ring.restart();
        self.drained = false;
        self.notify_owed = false;
        self.notified_upto = self.stats.submitted;
        failed
    }

    /// Fault injection for tests of device error recovery: makes the first buffer (the
    /// request header) of submitted request `tag` `len` bytes long, before it is kicked. A
    /// virtio-blk header shorter than 16 bytes makes QEMU set DEVICE_NEEDS_RESET. Split
    /// rings only; false when it could not be done.
    #[doc(hidden)]
    pub fn inject_short_header(&mut self, tag: u16, len: u32) -> bool {
        self.records
            .get(usize::from(tag))
            .is_some_and(|r| r.state == TagState::InFlight)
            && self.ring.set_head_len(tag, len)
    }

    /// Programs the (restarted) ring into the device again as the same virtqueue and takes
    /// its new doorbell. Call between the device's feature negotiation and DRIVER_OK.
    pub fn reattach(&mut self, transport: &VirtioPciTransport) -> Result<(), TransportError> {
        self.notifier = transport.setup_queue(self.notifier.queue_index(), &self.ring)?;
        Ok(())
    }
}
