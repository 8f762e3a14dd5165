//! A virtio-scsi host across a reset of its device: the control, event and request queues
//! brought back with the same features, then every disk LUN revalidated, as the SCSI
//! midlayer's error handler does after a host reset.

use super::{
    scan, HostEvent, QueueRunner, ScsiHostError, VirtioScsiHost, CONTROL_QUEUE, EVENT_BUFFERS,
    EVENT_QUEUE,
};
use crate::block::{restart_device, HwQueue, RequestEncoder, RestartQueue, Restarted};
use crate::scsi::passthrough::ScsiPassthrough;
use crate::virtio::queue::Virtqueue;

impl VirtioScsiHost {
    /// Resets the host (the device) and brings it back with the same features, its control
    /// and event queues and every request queue (all of them in `queues`): what was in
    /// flight fails as cut short by the reset (see [`restart_device`]). The last step of
    /// the SCSI error handler's escalation, and the answer to DEVICE_NEEDS_RESET or a broken
    /// queue. Then [`revalidate_through`](Self::revalidate_through) the LUNs.
    pub fn restart(
        &mut self,
        queues: &mut [&mut dyn RestartQueue],
    ) -> Result<Restarted, ScsiHostError> {
        let nr = self.tag_set.nr_hw_queues();
        let (control, events) = (&mut self.control, &mut self.events);
        let restarted = restart_device(&mut self.transport, queues, nr, |transport| {
            control.queue.restart();
            control.notifier = transport.setup_queue(CONTROL_QUEUE, &control.queue)?;
            // The reset device holds no TMF: its buffer is free again.
            control.stuck = false;
            events.queue.restart();
            events.notifier = transport.setup_queue(EVENT_QUEUE, &events.queue)?;
            for i in 0..EVENT_BUFFERS.min(events.queue.size()) {
                events.post(i).map_err(|e| ScsiHostError::Queue {
                    index: EVENT_QUEUE,
                    source: e.into(),
                })?;
            }
            Ok::<(), ScsiHostError>(())
        })?;
        if self.events.queue.publish() {
            self.events.notifier.notify();
        }
        Ok(restarted)
    }

    /// Revalidates every disk LUN after a reset, as sd does after the error handler's host
    /// reset (READ CAPACITY and the rest, through `queue`, a request queue the caller owns):
    /// the units learn any new capacity or limits. Returns the LUNs that changed.
    pub fn revalidate_through<E: RequestEncoder<Command = ScsiPassthrough>, C: Default>(
        &mut self,
        queue: &mut HwQueue<E, C>,
    ) -> Vec<HostEvent> {
        let mut changes = Vec::new();
        for at in 0..self.report.luns.len() {
            let lun = &self.report.luns[at];
            let Some(old) = lun.disk.clone() else {
                continue;
            };
            let (target, inquiry) = (lun.target, lun.inquiry.clone());
            let linux_lun = crate::scsi_proto::lun::ScsiLun::for_number(lun.lun)
                .map(|l| l.to_linux())
                .unwrap_or(u64::from(lun.lun));
            let disk = {
                let mut runner = QueueRunner {
                    queue: &mut *queue,
                    buffer: None,
                    dma: &self.dma,
                    counts: &mut self.counts,
                };
                scan::revalidate(&mut runner, target, linux_lun, &inquiry)
            };
            if disk == old {
                continue;
            }
            self.report.luns[at].disk = Some(disk.clone());
            if let Some(unit) = self.unit_of[at] {
                let info = self.unit_info(&disk, self.report.luns[at].lun_field);
                self.units.update(unit, |u| *u = info);
            }
            changes.push(HostEvent::Changed(self.report.luns[at].clone()));
        }
        changes
    }
}
