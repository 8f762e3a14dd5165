//! The host's scan: the whole host at open and on request (concurrently over request queue
//! 0's tags, or one command at a time), or through a queue a caller owns (after lost
//! events), and what a new scan's report changes.

use super::scan_port::{QueuePort, QueueRunner};
use super::{ControlError, HostEvent, ScsiHostError, VirtioScsiHost};
use crate::block::{HwQueue, RequestEncoder};
use crate::scsi::passthrough::ScsiPassthrough;
use crate::scsi::scan::{self, ScanReport};

impl VirtioScsiHost {
    /// Scans the whole host again, concurrently over request queue 0's tags unless the
    /// host was opened for a sequential scan, and applies the differences as
    /// [`rescan_through`](Self::rescan_through) does.
    pub fn rescan(&mut self) -> Result<(), ScsiHostError> {
        let queue = self.tag_set.take_queue(0).ok_or(ControlError::QueueInUse)?;
        let (max_target, max_lun) = (self.config.max_target, self.max_linux_lun());
        // The virtio-scsi LUN field has one byte for the target.
        let targets: Vec<u16> = (0..=max_target.min(255)).collect();
        let started = std::time::Instant::now();
        let mut port = QueuePort::new(queue, &self.dma, &mut self.counts);
        // As many targets in flight as the queue has tags; each LUN has one command in
        // flight at a time, within `cmd_per_lun`.
        let width = if self.scan.sequential {
            1
        } else {
            usize::from(port.depth())
        };
        let report = scan::scan_targets(
            &mut port,
            &targets,
            max_lun,
            width,
            self.scan.progress.as_deref(),
        );
        self.tag_set.return_queue(port.into_queue());
        log::info!(
            "{}: scanned {} targets, {} LUNs in {:.1} ms ({})",
            self.bdf,
            targets.len(),
            report.luns.len(),
            started.elapsed().as_secs_f64() * 1e3,
            if width == 1 {
                "sequential".to_string()
            } else {
                format!("up to {width} targets at once")
            }
        );
        self.apply(report);
        Ok(())
    }

    /// Scans the whole host again through `queue` (one the caller owns) and applies the
    /// differences: LUNs that appeared are registered, LUNs that are gone have their units
    /// marked removed so their I/O fails at once.
    pub fn rescan_through<E: RequestEncoder<Command = ScsiPassthrough>, C: Default>(
        &mut self,
        queue: &mut HwQueue<E, C>,
    ) -> Vec<HostEvent> {
        let (max_target, max_lun) = (self.config.max_target, self.max_linux_lun());
        let report = {
            let mut runner = QueueRunner {
                queue,
                buffer: None,
                dma: &self.dma,
                counts: &mut self.counts,
            };
            scan::scan_host(&mut runner, max_target, max_lun)
        };
        self.apply(report)
    }

    /// Takes a new scan's report: LUNs that appeared are registered, LUNs that are gone
    /// have their units marked removed.
    fn apply(&mut self, report: ScanReport) -> Vec<HostEvent> {
        let mut changes = Vec::new();
        for (at, old) in self.report.luns.iter().enumerate() {
            if !report.luns.iter().any(|l| l.lun_field == old.lun_field) {
                if let Some(unit) = self.unit_of[at] {
                    self.units.update(unit, |u| u.removed = true);
                }
                changes.push(HostEvent::Removed {
                    target: old.target,
                    lun: old.lun,
                });
            }
        }
        let mut unit_of = Vec::with_capacity(report.luns.len());
        for l in &report.luns {
            // A LUN seen before keeps its unit (re-registered with what the scan learned).
            unit_of.push(l.disk.as_ref().map(|d| self.register(l, d)));
            if !self.report.luns.iter().any(|o| o.lun_field == l.lun_field) {
                changes.push(HostEvent::Added(l.clone()));
            }
        }
        self.unit_of = unit_of;
        self.report = report;
        changes
    }
}
