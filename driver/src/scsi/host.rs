//! A virtio-scsi host adapter driven from userspace: negotiation, the control, event and
//! request queues, the initial scan, and the disk LUNs it serves as block devices.

use std::sync::Arc;
use std::time::Duration;

use super::config::{ScsiConfig, ShortScsiConfig, SCSI_CONFIG_FIELDS};
use super::encoder::{ScsiEncoder, SCSI_CHAIN_OVERHEAD};
use super::error::ScsiError;
use super::scan::{
    self, CommandRunner, DiskInfo, LunCommand, ScanProgress, ScanReport, ScannedLun,
};
use super::units::{UnitInfo, UnitTable};
use super::wire::{self, Event, EVENT_LEN};
use crate::block::device::{RangeOpLimits, DEFAULT_MAX_TRANSFER};
use crate::block::{
    BlockDevice, HwQueue, IoError, Limits, RestartError, TagSet, Unit, CONTROL_TIMEOUT,
};
use crate::dma::{DmaError, DmaRegion, DmaSpace};
use crate::pci::{PciAddress, PciFunction};
use crate::scsi_proto::cdb::Cdb;
use crate::scsi_proto::lun::LunError;
use crate::virtio::open::{open_virtio, OpenError, OpenedVirtio};
use crate::virtio::pci::{QueueNotifier, TransportError};
use crate::virtio::plan::{new_ring, DepthRequest, QueuePlan, QueueSetupError, RingShape};
use crate::virtio::queue::{AddError, QueueFault, Segment, Virtqueue};
use crate::virtio::ring::{Ring, RingKind};
use crate::virtio::{DeviceType, Features, VirtioPciTransport};

mod control;
mod lun_counts;
mod raw;
mod rescan;
mod restart;
mod scan_port;

use control::ControlQueue;
pub use control::Escalation;
use lun_counts::LunCounts;
pub use lun_counts::LunIoCounts;
pub use raw::RawData;
use scan_port::QueueRunner;

const CONTROL_QUEUE: u16 = 0;
const EVENT_QUEUE: u16 = 1;
const FIRST_REQUEST_QUEUE: u16 = 2;
/// Event buffers kept posted (Linux posts 8).
const EVENT_BUFFERS: u16 = 16;
/// The kernel's default SCSI error-handling timeout (`SCSI_DEFAULT_EH_TIMEOUT`).
const EH_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors from opening or managing a virtio-scsi host.
#[derive(Debug, thiserror::Error)]
pub enum ScsiHostError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Dma(#[from] DmaError),
    #[error(transparent)]
    Config(#[from] ShortScsiConfig),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("virtqueue {index}: {source}")]
    Queue { index: u16, source: HostQueueError },
    #[error(transparent)]
    QueueSetup(#[from] QueueSetupError),
    #[error("{bdf} has no LUN 0:{target}:{lun}: `uvio scan {bdf}` lists what it has")]
    NoSuchLun {
        bdf: PciAddress,
        target: u16,
        lun: u16,
    },
    #[error("{bdf} LUN 0:{target}:{lun} is a {kind}, not a disk: it has no block device")]
    NotADisk {
        bdf: PciAddress,
        target: u16,
        lun: u16,
        kind: String,
    },
    #[error("the control queue: {0}")]
    Control(#[from] ControlError),
    #[error(transparent)]
    Restart(#[from] RestartError),
}

/// Why the control or event queue could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HostQueueError {
    #[error(transparent)]
    Setup(#[from] QueueSetupError),
    #[error(transparent)]
    Post(#[from] IoError),
}

/// What went wrong on the host's control path (task management, events).
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("request queue 0 is in use by another thread")]
    QueueInUse,
    #[error("an earlier task management function never completed; reset the device (reopen it)")]
    Stuck,
    #[error("no answer to the task management function")]
    NoAnswer,
    #[error(transparent)]
    Lun(#[from] LunError),
    #[error(transparent)]
    Add(#[from] AddError),
    #[error(transparent)]
    Fault(#[from] QueueFault),
    #[error(transparent)]
    Events(IoError),
}

/// How to set up the host.
#[derive(Debug, Clone, Default)]
pub struct ScsiOptions {
    pub queues: Option<u16>,
    pub queue_size: Option<u16>,
    /// How long one command may take, on the request queues and the control queue;
    /// default 30 s (sd's and the scan's).
    pub timeout: Option<Duration>,
    /// Tags per queue (see [`DepthRequest`]); default: the ring size.
    pub depth: DepthRequest,
    /// The ring format: packed when the device offers it (the default), or split.
    pub ring: RingKind,
}

/// How the host's scan runs.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// One command at a time, target after target, as the kernel scans (otherwise targets,
    /// and the LUNs of a REPORT LUNS list, are probed side by side over queue 0's tags).
    pub sequential: bool,
    /// Updated as targets are scanned, for a progress line.
    pub progress: Option<Arc<ScanProgress>>,
}

/// A change the event queue reported, after uvio applied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEvent {
    /// A LUN appeared (and was scanned).
    Added(ScannedLun),
    /// A LUN went away; I/O to its unit now fails at once.
    Removed { target: u16, lun: u16 },
    /// A LUN's capacity or parameters changed (and it was revalidated).
    Changed(ScannedLun),
    /// Events were lost; the host was rescanned.
    Rescanned,
}

/// The event queue with its buffers.
#[derive(Debug)]
struct EventQueue {
    queue: Ring,
    notifier: QueueNotifier,
    buffers: DmaRegion,
}

impl EventQueue {
    fn post(&mut self, index: u16) -> Result<(), IoError> {
        let iova = self.buffers.iova() + u64::from(index) * EVENT_LEN as u64;
        self.queue
            .add(
                &[Segment::writable(iova, EVENT_LEN as u32)],
                u64::from(index),
            )
            .map_err(|e| ScsiError::EventBuffer(e).into())
    }

    /// Events the device reported since the last call; their buffers are posted again.
    fn take(&mut self) -> Result<Vec<Event>, IoError> {
        let mut events = Vec::new();
        while let Some(used) = self.queue.pop_used() {
            let used = used.map_err(IoError::QueueBroken)?;
            let index = used.token as u16;
            let base = usize::from(index) * EVENT_LEN;
            let mut raw = [0u8; EVENT_LEN];
            for (i, b) in raw.iter_mut().enumerate() {
                // SAFETY: the buffer index came back from the queue, which only returns tokens
                // it was given (< EVENT_BUFFERS), so the bytes lie in the region; the device
                // is done with the buffer until it is posted again below. Each byte is read,
                // then cleared, so a short event can never replay an old one.
                unsafe {
                    let p = self.buffers.as_ptr().add(base + i);
                    *b = p.read_volatile();
                    p.write_volatile(0);
                }
            }
            // A completion that wrote less than a whole event carries none.
            if used.written as usize >= EVENT_LEN {
                events.push(Event::parse(&raw));
            }
            self.post(index)?;
        }
        if !events.is_empty() && self.queue.publish() {
            self.notifier.notify();
        }
        Ok(events)
    }
}

/// An open virtio-scsi host. Its request queues live in [`tag_set`](Self::tag_set) until
/// threads take them; every disk LUN shares them. Dropping the host resets the device.
#[derive(Debug)]
pub struct VirtioScsiHost {
    // Dropped first: the device is reset before any queue memory is unmapped.
    transport: VirtioPciTransport,
    bdf: PciAddress,
    tag_set: TagSet<ScsiEncoder>,
    dma: Arc<DmaSpace>,
    features: Features,
    config: ScsiConfig,
    units: Arc<UnitTable>,
    report: ScanReport,
    /// Unit index of each scanned disk LUN, parallel to `report.luns`.
    unit_of: Vec<Option<u32>>,
    control: ControlQueue,
    events: EventQueue,
    depth: u16,
    max_segments: usize,
    /// How long a task management function may take.
    control_timeout: Duration,
    /// Commands sent to each LUN, as the kernel's per-device I/O counters count them.
    counts: LunCounts,
    scan: ScanOptions,
}

impl VirtioScsiHost {
    /// Opens the host, sets up its queues and scans it (concurrently).
    pub fn open(function: &PciFunction, options: &ScsiOptions) -> Result<Self, ScsiHostError> {
        Self::open_with_scan(function, options, ScanOptions::default())
    }

    /// Opens the host, sets up its queues and scans it as `scan` says.
    pub fn open_with_scan(
        function: &PciFunction,
        options: &ScsiOptions,
        scan: ScanOptions,
    ) -> Result<Self, ScsiHostError> {
        let bdf = function.address;
        let OpenedVirtio {
            transport,
            features,
            dma,
        } = open_virtio(function, DeviceType::Scsi, options.ring)?;
        let config = ScsiConfig::parse(&transport.read_device_config(&SCSI_CONFIG_FIELDS)?)?;
        let event_idx = features.contains(Features::EVENT_IDX);

        // `depth`: chains in flight at most, which sets the descriptors each may take.
        let packed = features.contains(Features::RING_PACKED);
        let small_queue = |index: u16, size: u16, depth: u16| -> Result<Ring, ScsiHostError> {
            let size = size.min(transport.queue_max_size(index)?);
            let size = 1 << (15 - size.max(1).leading_zeros());
            let shape = RingShape {
                packed,
                size,
                indirect_max: 0,
                event_idx,
                depth,
                direct_chain: 1,
            };
            new_ring(&dma, index, shape).map_err(|e| ScsiHostError::Queue {
                index,
                source: e.into(),
            })
        };
        // One TMF at a time, two descriptors each.
        let control_queue = small_queue(CONTROL_QUEUE, 16, 4)?;
        let control = ControlQueue {
            notifier: transport.setup_queue(CONTROL_QUEUE, &control_queue)?,
            queue: control_queue,
            memory: dma.alloc(4096)?,
            stuck: false,
        };
        let event_queue = small_queue(EVENT_QUEUE, EVENT_BUFFERS, EVENT_BUFFERS)?;
        let mut events = EventQueue {
            notifier: transport.setup_queue(EVENT_QUEUE, &event_queue)?,
            queue: event_queue,
            buffers: dma.alloc(usize::from(EVENT_BUFFERS) * EVENT_LEN)?,
        };
        let posted = EVENT_BUFFERS.min(events.queue.size());
        for i in 0..posted {
            events.post(i).map_err(|e| ScsiHostError::Queue {
                index: EVENT_QUEUE,
                source: e.into(),
            })?;
        }

        let device_queues = (config.num_queues.max(1) as u16)
            .min(transport.num_queues()?.saturating_sub(FIRST_REQUEST_QUEUE));
        let nr_queues = options
            .queues
            .unwrap_or(device_queues)
            .clamp(1, device_queues.max(1));
        let plan = QueuePlan::new(
            &transport,
            FIRST_REQUEST_QUEUE,
            nr_queues,
            options.queue_size,
            options.depth,
            SCSI_CHAIN_OVERHEAD,
        )?;
        let depth = plan.depth;
        let max_segments = (config.seg_max.max(1) as usize).min(plan.segment_budget);
        let units = Arc::new(UnitTable::default());
        let mut tag_set = TagSet::build(&plan, &transport, &dma, max_segments, true, |i| {
            let zeroes = dma.alloc(64 << 10)?.into_buf();
            Ok(ScsiEncoder::new(
                Arc::clone(&units),
                i,
                zeroes,
                max_segments,
            ))
        })?;
        // Task management waits as long as the kernel's error handler does (sd's eh_timeout,
        // 10 s) even under a shorter request deadline: a device answers ABORT TASK only when
        // the aborted command ends (QEMU's virtio-scsi does).
        let control_timeout = options
            .timeout
            .map_or(CONTROL_TIMEOUT, |t| t.max(EH_TIMEOUT));
        if let Some(timeout) = options.timeout {
            tag_set.set_timeouts(timeout);
        }
        transport.driver_ok()?;
        if events.queue.publish() {
            events.notifier.notify();
        }
        let mut host = VirtioScsiHost {
            transport,
            bdf,
            tag_set,
            dma,
            features,
            config,
            units,
            report: ScanReport::default(),
            unit_of: Vec::new(),
            control,
            events,
            depth,
            max_segments,
            control_timeout,
            counts: LunCounts::default(),
            scan,
        };
        host.rescan()?;
        Ok(host)
    }

    /// The largest Linux LUN integer the host takes (virtio_scsi's `max_lun`).
    fn max_linux_lun(&self) -> u64 {
        u64::from(self.config.max_lun) + 1 + 0x4000
    }

    /// The unit for a disk LUN: an existing one (updated) or a new one.
    fn register(&self, lun: &ScannedLun, disk: &DiskInfo) -> u32 {
        let info = self.unit_info(disk, lun.lun_field);
        match self.units.find(&lun.lun_field) {
            Some(index) => {
                self.units.update(index, |u| *u = info);
                index
            }
            None => self.units.add(info),
        }
    }

    fn unit_info(&self, disk: &DiskInfo, lun_field: [u8; 8]) -> UnitInfo {
        UnitInfo {
            lun_field,
            limits: self.limits(disk),
            capacity: disk.size_bytes,
            use_16: disk.use_16,
            fua: disk.fua,
            budget: (self.config.cmd_per_lun.max(1).min(u32::from(self.depth))) as u16,
            removed: false,
        }
    }

    fn limits(&self, disk: &DiskInfo) -> Limits {
        let bs = u64::from(disk.block_size);
        let mut max_transfer =
            DEFAULT_MAX_TRANSFER.min(u64::from(self.config.max_sectors.max(1)) * 512);
        if let Some(blocks) = disk.max_transfer_blocks {
            max_transfer = max_transfer.min(u64::from(blocks) * bs);
        }
        let max_transfer = (max_transfer / bs * bs).max(bs);
        let discard = (disk.unmap.lbpme && disk.unmap.lbpu).then(|| RangeOpLimits {
            max_bytes: u64::from(disk.unmap.max_unmap_blocks.unwrap_or(u32::MAX)) * bs,
            alignment: disk.block_size,
        });
        Limits {
            logical_block_size: disk.block_size,
            physical_block_size: disk.physical_block_size,
            max_transfer_bytes: max_transfer,
            max_segments: self.max_segments,
            max_segment_size: 0xffff_f000,
            read_only: disk.write_protect,
            flush: true,
            discard,
            // WRITE SAME(16) with a block of zeroes, in pieces no larger than a transfer.
            write_zeroes: Some(RangeOpLimits {
                max_bytes: max_transfer.max(32 << 20) / bs * bs,
                alignment: disk.block_size,
            }),
        }
    }

    pub fn bdf(&self) -> PciAddress {
        self.bdf
    }

    /// How many commands uvio keeps in flight to one LUN at most: the device's
    /// `cmd_per_lun` within the queue depth (the kernel's `queue_depth` of a SCSI device).
    pub fn lun_queue_depth(&self) -> u16 {
        (self.config.cmd_per_lun.max(1).min(u32::from(self.depth))) as u16
    }

    pub fn config(&self) -> &ScsiConfig {
        &self.config
    }

    pub fn features(&self) -> Features {
        self.features
    }

    pub fn scan_report(&self) -> &ScanReport {
        &self.report
    }

    pub fn tag_set(&mut self) -> &mut TagSet<ScsiEncoder> {
        &mut self.tag_set
    }

    pub fn dma(&self) -> &Arc<DmaSpace> {
        &self.dma
    }

    /// The unit and block device of disk LUN `0:target:lun`.
    /// Where the scan found `target`/`lun`, the LUN given either as addressed (300) or as
    /// Linux's integer for it (16684).
    fn lun_index(&self, target: u16, lun: u16) -> Option<usize> {
        self.report
            .luns
            .iter()
            .position(|l| l.target == target && (l.lun == lun || l.linux_lun == u64::from(lun)))
    }

    /// The scanned LUN `target`/`lun` (as addressed, or as Linux's integer), of any type.
    pub fn find_lun(&self, target: u16, lun: u16) -> Option<&ScannedLun> {
        self.lun_index(target, lun).map(|at| &self.report.luns[at])
    }

    /// Sends one data-in (or no-data, `alloc` 0) SCSI command to Linux LUN `linux_lun` of
    /// `target` through request queue 0 and returns the data the device sent back; a
    /// CHECK CONDITION comes back as [`ScsiError::Status`] with its sense (see
    /// [`ScsiError::sense_of`]). For sg3_utils-style tools (`uvio readcap`, `uvio inq`).
    /// Fails with [`ControlError::QueueInUse`] while a thread holds queue 0.
    pub fn command(
        &mut self,
        target: u16,
        linux_lun: u64,
        cdb: Cdb,
        alloc: usize,
    ) -> Result<Result<Vec<u8>, IoError>, ControlError> {
        let mut queue = self.tag_set.take_queue(0).ok_or(ControlError::QueueInUse)?;
        let result = QueueRunner {
            queue: &mut queue,
            buffer: None,
            dma: &self.dma,
            counts: &mut self.counts,
        }
        .run(LunCommand {
            target,
            linux_lun,
            cdb,
            alloc,
            data_in: true,
        });
        self.tag_set.return_queue(queue);
        Ok(result)
    }

    /// The disk LUN `0:target:lun` as a block device, bound to its unit.
    pub fn disk(&self, target: u16, lun: u16) -> Result<BlockDevice, ScsiHostError> {
        let bdf = self.bdf;
        let at = self
            .lun_index(target, lun)
            .ok_or(ScsiHostError::NoSuchLun { bdf, target, lun })?;
        let scanned = &self.report.luns[at];
        let (Some(unit), Some(disk)) = (self.unit_of[at], scanned.disk.as_ref()) else {
            let kind = scanned.inquiry.device_type.short_name().to_string();
            return Err(ScsiHostError::NotADisk {
                bdf,
                target,
                lun,
                kind,
            });
        };
        let info = self
            .units
            .get(unit)
            .ok_or(ScsiHostError::NoSuchLun { bdf, target, lun })?;
        let mut device = BlockDevice::new(
            format!("{bdf}/0:{target}:{lun}"),
            info.capacity,
            info.limits,
        );
        device.write_cache = disk.write_cache;
        device.serial = disk.serial.clone();
        device.nr_hw_queues = self.tag_set.nr_hw_queues();
        device.queue_depth = info.budget.min(self.depth);
        Ok(device.for_unit(Unit::new(unit)))
    }

    /// Applies what the event queue reported: scans LUNs that appeared, fails and forgets
    /// removed ones, revalidates changed ones, rescans after lost events. Scan commands go
    /// through `queue` (a request queue the caller owns; its other completions are kept).
    pub fn process_events(
        &mut self,
        queue: &mut HwQueue<ScsiEncoder>,
    ) -> Result<Vec<HostEvent>, ScsiHostError> {
        self.transport.check_status()?;
        let events = self.events.take().map_err(ControlError::Events)?;
        let mut changes = Vec::new();
        for event in events {
            if event.missed {
                // Events were lost: learn the whole truth again, as Linux does.
                changes.extend(self.rescan_through(queue));
                changes.push(HostEvent::Rescanned);
                continue;
            }
            let (target, lun) = event.target_lun();
            let linux_lun = crate::scsi_proto::lun::ScsiLun::for_number(lun)
                .map(|l| l.to_linux())
                .unwrap_or(u64::from(lun));
            match (event.kind, event.reason) {
                (wire::event::TRANSPORT_RESET, wire::event::RESET_RESCAN) => {
                    let mut report = ScanReport::default();
                    let max_lun = self.max_linux_lun();
                    {
                        let mut runner = QueueRunner {
                            queue,
                            buffer: None,
                            dma: &self.dma,
                            counts: &mut self.counts,
                        };
                        if lun == 0 {
                            scan::scan_target(&mut runner, target, max_lun, &mut report);
                        } else if let Ok(Some(l)) = scan::probe_lun(&mut runner, target, linux_lun)
                        {
                            report.luns.push(l);
                        }
                    }
                    for l in report.luns {
                        if self
                            .report
                            .luns
                            .iter()
                            .any(|k| k.target == l.target && k.lun == l.lun)
                        {
                            continue;
                        }
                        let unit = l.disk.as_ref().map(|d| self.register(&l, d));
                        self.unit_of.push(unit);
                        self.report.luns.push(l.clone());
                        changes.push(HostEvent::Added(l));
                    }
                }
                (wire::event::TRANSPORT_RESET, wire::event::RESET_REMOVED) => {
                    if let Some(at) = self
                        .report
                        .luns
                        .iter()
                        .position(|l| l.target == target && l.lun == lun)
                    {
                        if let Some(unit) = self.unit_of[at] {
                            self.units.update(unit, |u| u.removed = true);
                        }
                        self.report.luns.remove(at);
                        self.unit_of.remove(at);
                        changes.push(HostEvent::Removed { target, lun });
                    }
                }
                // Parameters, mode parameters or capacity changed (ASC 0x2A, ASCQ 0, 1, 9):
                // revalidate the disk, as Linux's virtscsi_handle_param_change does.
                (wire::event::PARAM_CHANGE, reason)
                    if reason & 0xff == 0x2a
                        && matches!((reason >> 8) & 0xff, 0x00 | 0x01 | 0x09) =>
                {
                    if let Some(at) = self
                        .report
                        .luns
                        .iter()
                        .position(|l| l.target == target && l.lun == lun && l.disk.is_some())
                    {
                        let mut runner = QueueRunner {
                            queue,
                            buffer: None,
                            dma: &self.dma,
                            counts: &mut self.counts,
                        };
                        let inquiry = self.report.luns[at].inquiry.clone();
                        let disk = scan::revalidate(&mut runner, target, linux_lun, &inquiry);
                        self.report.luns[at].disk = Some(disk.clone());
                        if let Some(unit) = self.unit_of[at] {
                            let info = self.unit_info(&disk, self.report.luns[at].lun_field);
                            self.units.update(unit, |u| *u = info);
                        }
                        changes.push(HostEvent::Changed(self.report.luns[at].clone()));
                    }
                }
                _ => {}
            }
        }
        Ok(changes)
    }
}

impl Drop for VirtioScsiHost {
    fn drop(&mut self) {
        self.transport.stop(&self.dma);
    }
}
