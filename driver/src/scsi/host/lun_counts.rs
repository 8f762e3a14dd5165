//! How many commands the host sent to each LUN, and how they ended: uvio's equivalent of
//! the kernel's per-device counters (`iorequest_cnt`, `iodone_cnt`, `ioerr_cnt` in sysfs,
//! which `lsscsi -L` lists). The kernel counts every command its midlayer dispatches to a
//! device, the scan's included; these count every command this host sent through
//! [`super::VirtioScsiHost`]'s command path (the scan, revalidation, sg-style commands).
//! Block I/O of a disk LUN goes through the unit's queues and is not counted here.

use std::collections::BTreeMap;

use crate::block::IoError;
use crate::scsi::error::ScsiError;

/// One LUN's command counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LunIoCounts {
    /// Commands sent (`iorequest_cnt`).
    pub requests: u32,
    /// Commands the device answered, well or not (`iodone_cnt`).
    pub done: u32,
    /// Commands that ended with an error (`ioerr_cnt`: a non-zero result).
    pub errors: u32,
}

/// The counts of every LUN, by target and Linux LUN integer.
#[derive(Debug, Default)]
pub(super) struct LunCounts(BTreeMap<(u16, u64), LunIoCounts>);

impl LunCounts {
    /// Counts one command and how it ended. Like the kernel's counters these wrap at 2^32.
    pub(super) fn record(&mut self, target: u16, linux_lun: u64, result: &Result<u64, IoError>) {
        let c = self.0.entry((target, linux_lun)).or_default();
        c.requests = c.requests.wrapping_add(1);
        let answered = match result {
            Ok(_) => true,
            // A SCSI status or a virtio-scsi response came back; a timeout did not.
            Err(e) => matches!(
                ScsiError::of(e),
                Some(ScsiError::Status { .. } | ScsiError::Response { .. })
            ),
        };
        if answered {
            c.done = c.done.wrapping_add(1);
        }
        if result.is_err() {
            c.errors = c.errors.wrapping_add(1);
        }
    }

    fn get(&self, target: u16, linux_lun: u64) -> LunIoCounts {
        self.0
            .get(&(target, linux_lun))
            .copied()
            .unwrap_or_default()
    }
}

impl super::VirtioScsiHost {
    /// The commands this host sent to Linux LUN `linux_lun` of `target` so far.
    pub fn lun_io_counts(&self, target: u16, linux_lun: u64) -> LunIoCounts {
        self.counts.get(target, linux_lun)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_requests_answers_and_errors_per_lun() {
        let mut counts = LunCounts::default();
        counts.record(2, 5, &Ok(36));
        counts.record(2, 5, &Ok(0));
        let timed_out = IoError::TimedOut {
            op: "read",
            offset: 0,
            len: 36,
            after: Duration::from_secs(30),
        };
        counts.record(2, 5, &Err(timed_out));
        assert_eq!(
            counts.get(2, 5),
            LunIoCounts {
                requests: 3,
                done: 2,
                errors: 1
            }
        );
        assert_eq!(counts.get(2, 6), LunIoCounts::default());
    }
}
