//! The host's control path: task management functions on the control queue, one at a
//! time (virtio 1.2, 5.6.6.2), and the SCSI error handler's escalation that uses them for a
//! command that timed out.

use std::time::{Duration, Instant};

use super::{ControlError, ScsiHostError, VirtioScsiHost};
use crate::dma::DmaRegion;
use crate::scsi::encoder::wire_tag;
use crate::scsi::wire::{self, response, tmf};
use crate::scsi_proto::lun::virtio_lun;
use crate::virtio::pci::QueueNotifier;
use crate::virtio::queue::{Segment, Virtqueue};
use crate::virtio::ring::Ring;

/// The step of the error handler's escalation that recovered a timed-out command
/// ([`VirtioScsiHost::escalate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escalation {
    Aborted,
    LunReset,
    NexusReset,
    /// No task management function succeeded: reset the host.
    NeedsHostReset,
}

impl std::fmt::Display for Escalation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Escalation::Aborted => "ABORT TASK",
            Escalation::LunReset => "LOGICAL UNIT RESET",
            Escalation::NexusReset => "I_T NEXUS RESET",
            Escalation::NeedsHostReset => "host reset",
        })
    }
}

/// The control queue: task management functions, one at a time.
#[derive(Debug)]
pub(super) struct ControlQueue {
    pub(super) queue: Ring,
    pub(super) notifier: QueueNotifier,
    pub(super) memory: DmaRegion,
    /// A TMF went unanswered: its buffer may still be written by the device.
    pub(super) stuck: bool,
}

impl VirtioScsiHost {
    /// Recovers a command that timed out on request queue `queue_index` under `tag`, for
    /// LUN 0:`target`:`lun`, as the SCSI midlayer's error handler does: ABORT TASK for the
    /// command, then LOGICAL UNIT RESET, then I_T NEXUS RESET, each waiting at most the
    /// task-management timeout. Returns the step the device answered with success; after
    /// `NeedsHostReset` only a device reset (closing the host) recovers.
    pub fn escalate(&mut self, target: u16, lun: u16, queue_index: u16, tag: u16) -> Escalation {
        let Some(linux_lun) = self.find_lun(target, lun).map(|l| l.linux_lun) else {
            return Escalation::NeedsHostReset;
        };
        let steps = [
            (
                tmf::ABORT_TASK,
                wire_tag(queue_index, tag),
                Escalation::Aborted,
            ),
            (tmf::LOGICAL_UNIT_RESET, 0, Escalation::LunReset),
            (tmf::I_T_NEXUS_RESET, 0, Escalation::NexusReset),
        ];
        for (subtype, wire, done) in steps {
            match self.task_management(subtype, target, linux_lun, wire) {
                Ok(response::OK | response::FUNCTION_SUCCEEDED) => return done,
                Ok(code) => log::warn!(
                    "{}: {done} for 0:{target}:{lun}: {}",
                    self.bdf,
                    response::name(code)
                ),
                Err(e) => log::warn!("{}: {done} for 0:{target}:{lun}: {e}", self.bdf),
            }
        }
        Escalation::NeedsHostReset
    }

    /// Sends a task management function and returns the device's response code. For
    /// ABORT TASK, `tag` is the request's wire tag ([`super::encoder::wire_tag`]).
    pub fn task_management(
        &mut self,
        subtype: u32,
        target: u16,
        linux_lun: u64,
        tag: u64,
    ) -> Result<u8, ScsiHostError> {
        if self.control.stuck {
            // The device still owns the buffer of an unanswered TMF: reusing it is unsafe.
            return Err(ControlError::Stuck.into());
        }
        let lun = virtio_lun(target as u8, linux_lun).map_err(ControlError::from)?;
        let request = wire::tmf_req(subtype, &lun, tag);
        let base = self.control.memory.as_ptr();
        for (i, b) in request.iter().enumerate() {
            // SAFETY: 24 request bytes at the start of the 4 KiB control region, which the
            // device does not access until the chain is published below.
            unsafe { base.add(i).write_volatile(*b) };
        }
        // SAFETY: the response byte at offset 64 of the same region.
        unsafe { base.add(64).write_volatile(0xff) };
        let iova = self.control.memory.iova();
        self.control
            .queue
            .add(
                &[
                    Segment::readable(iova, wire::tmf::REQ_LEN as u32),
                    Segment::writable(iova + 64, 1),
                ],
                0,
            )
            .map_err(ControlError::from)?;
        if self.control.queue.publish() {
            self.control.notifier.notify();
        }
        let start = Instant::now();
        loop {
            match self.control.queue.pop_used() {
                Some(Ok(_)) => {
                    // SAFETY: as above; the device has completed the chain.
                    return Ok(unsafe { base.add(64).read_volatile() });
                }
                Some(Err(fault)) => return Err(ControlError::from(fault).into()),
                None if start.elapsed() > self.control_timeout => {
                    self.control.stuck = true;
                    return Err(ControlError::NoAnswer.into());
                }
                // A device answers a TMF at once, or when the command it aborts ends
                // (seconds, on a slow backend). Past the first millisecond the wait sleeps:
                // it runs beside busy-polling I/O threads (`uvio bench` recovers on a thread
                // of its own while the other jobs go on), and a spinning wait would take a
                // CPU from them and from the status line.
                None if start.elapsed() > TMF_SPIN => std::thread::sleep(TMF_NAP),
                None => std::hint::spin_loop(),
            }
        }
    }
}

/// How long a TMF's wait spins before it sleeps between polls, and for how long it sleeps.
const TMF_SPIN: Duration = Duration::from_millis(1);
const TMF_NAP: Duration = Duration::from_micros(200);
