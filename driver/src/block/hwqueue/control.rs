//! The control path of a hardware queue: one request submitted and waited for (the scan,
//! the serial number, flush and the range operations of the tools), over the same calls as
//! the hot path. Completions of other requests that arrive meanwhile are parked in their
//! records for the next `poll`.

use std::time::Instant;

use super::{HwQueue, Reaped, TagState};
use crate::block::deadline::EPOCH;
use crate::block::encoder::RequestEncoder;
use crate::block::request::{Data, IoError, Request, Unit};
use crate::virtio::queue::{QueueFault, Virtqueue};

impl<E: RequestEncoder, Ctx: Default> HwQueue<E, Ctx> {
    /// Submits one request, kicks, and busy-polls until it completes: for the control path
    /// (serial number, the SCSI scan), never for I/O loops. Other requests that complete
    /// meanwhile are parked for the next [`poll`](Self::poll). Gives up after
    /// [`CONTROL_TIMEOUT`] (or [`set_control_timeout`](Self::set_control_timeout)); a request
    /// given up on keeps its buffers until it completes, and its completion is dropped.
    pub fn run_one(&mut self, unit: Unit, request: Request) -> (Result<u64, IoError>, Data) {
        self.run_with(unit, request, None)
    }

    /// Sends a device command as given (a SCSI CDB), with `request` holding its data, and
    /// waits for it as [`run_one`](Self::run_one) does (the SCSI layer's passthrough path).
    pub fn run_command(
        &mut self,
        command: E::Command,
        request: Request,
    ) -> (Result<u64, IoError>, Data) {
        // Addressed by the command itself: the unit is not used.
        self.run_with(Unit::ONLY, request, Some(command))
    }

    fn run_with(
        &mut self,
        unit: Unit,
        request: Request,
        command: Option<E::Command>,
    ) -> (Result<u64, IoError>, Data) {
        let op = request.op;
        let tag = match self.submit_with(unit, request, command, Ctx::default()) {
            Ok(tag) => tag,
            Err(rejected) => return (Err(rejected.error), rejected.request.data),
        };
        self.records[usize::from(tag)].state = TagState::Awaited;
        // Never held back: this loop does not go through `poll`.
        let asked = self.ring.publish();
        self.notify_if(asked, false);
        let start = Instant::now();
        let mut looked = start;
        loop {
            match self.reap_next() {
                Reaped::Done(done, result) if done == tag => {
                    let record = &mut self.records[usize::from(tag)];
                    record.state = TagState::Idle;
                    self.tags.free(tag);
                    return (result, std::mem::take(&mut record.request.data));
                }
                Reaped::Done(other, result) => {
                    let record = &mut self.records[usize::from(other)];
                    record.result = result;
                    record.state = TagState::Parked;
                    self.parked.push(other);
                }
                Reaped::Nothing => {
                    if let Some(i) = self.parked.iter().position(|&t| t == tag) {
                        // The queue broke: our request was parked with the fault.
                        self.parked.remove(i);
                        let record = &mut self.records[usize::from(tag)];
                        record.state = TagState::Idle;
                        self.tags.free(tag);
                        let result = std::mem::replace(&mut record.result, Ok(0));
                        return (result, Data::None);
                    }
                    if looked.elapsed() >= EPOCH {
                        // A device that needs a reset will not answer: fail now, not at
                        // the timeout (the request is parked with the fault).
                        looked = Instant::now();
                        if self.device_needs_reset() {
                            continue;
                        }
                        self.kick_if_stalled();
                    }
                    if self.drained {
                        // Broken and held until the device is reset: ours included. It
                        // stays with the queue (orphaned) until then.
                        self.records[usize::from(tag)].state = TagState::Orphaned;
                        self.stats.completed += 1;
                        self.stats.errors += 1;
                        let fault = self.ring.fault().unwrap_or(QueueFault::DeviceNeedsReset);
                        return (Err(IoError::QueueBroken(fault)), Data::None);
                    }
                    if start.elapsed() > self.control_timeout {
                        let record = &mut self.records[usize::from(tag)];
                        record.state = TagState::Orphaned;
                        self.stats.completed += 1;
                        self.stats.errors += 1;
                        let error = IoError::TimedOut {
                            op: op.name(),
                            offset: record.request.offset,
                            len: record.request.len,
                            after: self.control_timeout,
                        };
                        return (Err(error), Data::None);
                    }
                    std::hint::spin_loop();
                }
            }
        }
    }
}
