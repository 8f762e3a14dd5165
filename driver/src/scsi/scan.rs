//! The host scan, as Linux's `scsi_scan.c` does it, and the disk revalidation `sd` does.
//!
//! Per target: INQUIRY to LUN 0 (a BAD_TARGET response means no target); the peripheral
//! qualifier and type decide whether LUN 0 is a logical unit or only proves the target
//! exists; REPORT LUNS for SCSI-3 and later (re-issued with a larger buffer when the list is
//! longer), else a sequential scan; INQUIRY of each listed LUN. Each disk LUN then gets TEST
//! UNIT READY (START STOP UNIT when not ready), READ CAPACITY(16) with fallback to (10), the
//! VPD pages it offers, and MODE SENSE for write protect and the write cache.
//!
//! The logic runs against [`CommandRunner`], so it is tested here against a simulated
//! target that answers as QEMU's SCSI emulation does.

use std::time::Duration;

use serde::Serialize;

use super::error::ScsiError;
use super::wire::response;
use crate::block::IoError;
use crate::scsi_proto::cdb::{self, Cdb, PageControl};
use crate::scsi_proto::lun::{virtio_lun, ScsiLun};
use crate::scsi_proto::reply::{
    BlockDeviceCharacteristics, BlockLimits, DeviceIdentification, Inquiry,
    LogicalBlockProvisioning, LunPresence, ModeSense, ReadCapacity10, ReadCapacity16, ReportLuns,
    SupportedVpdPages, UnitSerialNumber,
};
use crate::scsi_proto::sense::{ScsiStatus, SenseKey};

/// One SCSI command for (target, LUN) as the scan sends it.
#[derive(Debug, Clone, Copy)]
pub struct LunCommand {
    pub target: u16,
    pub linux_lun: u64,
    pub cdb: Cdb,
    /// The data length: the buffer for data-in, zero-filled data for data-out.
    pub alloc: usize,
    pub data_in: bool,
}

/// Sends one SCSI command and returns the data the device sent back.
pub trait CommandRunner {
    fn run(&mut self, command: LunCommand) -> Result<Vec<u8>, IoError>;

    /// Waits `pause` before a command is sent again (a back-off); tests skip the wait.
    fn sleep(&mut self, pause: Duration) {
        std::thread::sleep(pause);
    }
}

/// SCSI levels as Linux numbers them (`scsi_level`).
const SCSI_3: u8 = 4;
const SCSI_SPC_2: u8 = 5;
/// REPORT LUNS starts with room for 511 LUNs, as Linux does.
const REPORT_LUNS_ALLOC: usize = 4096;
/// The most LUNs taken from one REPORT LUNS reply: 16,384, the upper bound Linux allowed
/// for its `max_report_luns` parameter ("in practice, the maximum number of LUNs supported
/// by any device is about 16k", scsi_scan.c), and as many as flat addressing numbers. A
/// longer list is cut there, with one warning.
pub const REPORT_LUNS_MAX: usize = 16_384;
/// Tries of a command that meets a UNIT ATTENTION (Linux's scan allows 3).
const UA_RETRIES: usize = 3;
/// Tries of a command the LUN answers BUSY or TASK SET FULL (or virtio-scsi BUSY).
const BUSY_RETRIES: usize = 9;
/// The back-off before a command is sent again: the midlayer's `SCSI_QUEUE_DELAY` (3 ms)
/// first, doubling each time, at most [`BACKOFF_MAX`]. Linux requeues a BUSY command and
/// runs the queue again after `SCSI_QUEUE_DELAY` once the device's `device_blocked` count
/// has run down, until the command's time is up; here the 8 resends of a busy command wait
/// 3, 6, 12, 24, 48, 96, 100 and 100 ms, 389 ms in all.
const BACKOFF_FIRST: Duration = Duration::from_millis(3);
const BACKOFF_MAX: Duration = Duration::from_millis(100);
/// How long TEST UNIT READY waits between polls of a LUN that is becoming ready.
const SPIN_UP_POLL: Duration = Duration::from_millis(100);

/// Unmap (discard) support of a disk LUN.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UnmapLimits {
    /// LBPME in READ CAPACITY(16): the LUN is thin-provisioned.
    pub lbpme: bool,
    /// UNMAP supported (VPD 0xB2 LBPU).
    pub lbpu: bool,
    /// WRITE SAME(16) with UNMAP supported (LBPWS).
    pub lbpws: bool,
    pub max_unmap_blocks: Option<u32>,
    pub max_unmap_descriptors: Option<u32>,
    pub granularity_blocks: Option<u32>,
}

/// What revalidation learned of a disk LUN.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DiskInfo {
    pub blocks: u64,
    pub block_size: u32,
    pub physical_block_size: u32,
    pub size_bytes: u64,
    pub write_protect: bool,
    pub write_cache: bool,
    /// DPOFUA: the LUN honours FUA.
    pub fua: bool,
    pub serial: Option<String>,
    /// Designators of VPD page 0x83, as names (`naa.…`) or their text.
    pub identifiers: Vec<String>,
    pub rotation_rate: Option<u16>,
    pub max_transfer_blocks: Option<u32>,
    pub optimal_transfer_blocks: Option<u32>,
    pub unmap: UnmapLimits,
    pub vpd_pages: Vec<u8>,
    /// READ/WRITE(16) are needed (more than 2^32 blocks).
    pub use_16: bool,
    /// Why the LUN is not ready, if TEST UNIT READY kept failing.
    pub not_ready: Option<String>,
}

/// A logical unit the scan found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScannedLun {
    pub channel: u16,
    pub target: u16,
    /// The LUN as addressed (e.g. 300).
    pub lun: u16,
    /// Linux's integer for it (e.g. 16684 for flat-addressed 300).
    pub linux_lun: u64,
    #[serde(skip)]
    pub lun_field: [u8; 8],
    #[serde(skip)]
    pub inquiry: Inquiry,
    pub disk: Option<DiskInfo>,
}

/// Everything a host scan found, and what went wrong on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScanReport {
    pub luns: Vec<ScannedLun>,
    pub warnings: Vec<String>,
}

fn is_unit_attention(e: &IoError) -> bool {
    ScsiError::sense_of(e).is_some_and(|s| s.key == SenseKey::UNIT_ATTENTION)
}

/// The LUN asks for the command again later: BUSY, TASK SET FULL, or virtio-scsi's BUSY.
fn is_busy(e: &IoError) -> bool {
    match ScsiError::of(e) {
        Some(ScsiError::Status { status, .. }) => {
            *status == ScsiStatus::BUSY || *status == ScsiStatus::TASK_SET_FULL
        }
        Some(ScsiError::Response { code, .. }) => *code == response::BUSY,
        _ => false,
    }
}

/// The back-off before resend number `resend` (0 for the first).
fn backoff(resend: usize) -> Duration {
    let factor = 1u32 << resend.min(16);
    BACKOFF_FIRST.saturating_mul(factor).min(BACKOFF_MAX)
}

/// Runs a command, sending it again after a growing back-off ([`backoff`]) while the LUN
/// reports a UNIT ATTENTION (power on, reset, REPORTED LUNS DATA HAS CHANGED; QEMU raises
/// one on the first command after those), up to [`UA_RETRIES`] tries, or BUSY or TASK SET
/// FULL, up to [`BUSY_RETRIES`] tries.
fn run_retry(
    runner: &mut dyn CommandRunner,
    target: u16,
    lun: u64,
    cdb: Cdb,
    alloc: usize,
) -> Result<Vec<u8>, IoError> {
    let (mut attentions, mut busy) = (0, 0);
    loop {
        let command = LunCommand {
            target,
            linux_lun: lun,
            cdb,
            alloc,
            data_in: true,
        };
        match runner.run(command) {
            Err(e) if is_unit_attention(&e) && attentions + 1 < UA_RETRIES => attentions += 1,
            Err(e) if is_busy(&e) && busy + 1 < BUSY_RETRIES => busy += 1,
            other => return other,
        }
        runner.sleep(backoff(attentions + busy - 1));
    }
}

/// The LUN number as addressed, from Linux's integer.
fn lun_number(linux_lun: u64) -> u16 {
    ScsiLun::from_linux(linux_lun)
        .number()
        .unwrap_or((linux_lun & 0x3fff) as u16)
}

/// INQUIRY as Linux's `scsi_probe_lun` sends it: 36 bytes, then again with the length the
/// device says it has.
fn inquiry(runner: &mut dyn CommandRunner, target: u16, lun: u64) -> Result<Inquiry, IoError> {
    let first = run_retry(runner, target, lun, cdb::inquiry(36), 36)?;
    let parsed = Inquiry::parse(&first).map_err(ScsiError::InquiryReply)?;
    let wanted = usize::from(parsed.additional_length) + 5;
    if wanted > first.len() && wanted <= 255 {
        if let Ok(longer) = run_retry(runner, target, lun, cdb::inquiry(wanted as u16), wanted) {
            if let Ok(p) = Inquiry::parse(&longer) {
                return Ok(p);
            }
        }
    }
    Ok(parsed)
}

/// Probes one LUN: `Ok(Some)` when a logical unit is there (PQ/PDT rules), `Ok(None)` when
/// only the target answered, `Err` when nothing answered.
pub fn probe_lun(
    runner: &mut dyn CommandRunner,
    target: u16,
    linux_lun: u64,
) -> Result<Option<ScannedLun>, IoError> {
    let inq = inquiry(runner, target, linux_lun)?;
    Ok(add_lun(runner, target, linux_lun, inq))
}

/// Builds the scanned LUN from its INQUIRY data (revalidating a disk), like
/// `scsi_add_lun`; `None` when only the target answered.
fn add_lun(
    runner: &mut dyn CommandRunner,
    target: u16,
    linux_lun: u64,
    inq: Inquiry,
) -> Option<ScannedLun> {
    if inq.linux_presence(linux_lun) == LunPresence::TargetOnly {
        return None;
    }
    // The INQUIRY that brought `inq` was sent with this same field, so it encodes; a LUN
    // that could not be addressed never gets here.
    let lun_field = virtio_lun(target as u8, linux_lun).ok()?;
    let disk = inq
        .is_sd_disk()
        .then(|| revalidate(runner, target, linux_lun, &inq));
    Some(ScannedLun {
        channel: 0,
        target,
        lun: lun_number(linux_lun),
        linux_lun,
        lun_field,
        inquiry: inq,
        disk,
    })
}

fn no_target(e: &IoError) -> bool {
    matches!(ScsiError::of(e), Some(ScsiError::Response { code, .. }) if *code == response::BAD_TARGET || *code == response::INCORRECT_LUN)
}

/// Scans one target like `__scsi_scan_target`. `max_lun` is the largest Linux LUN integer
/// the host accepts.
pub fn scan_target(
    runner: &mut dyn CommandRunner,
    target: u16,
    max_lun: u64,
    report: &mut ScanReport,
) {
    let lun0 = match inquiry(runner, target, 0) {
        Ok(inq) => inq,
        Err(e) if no_target(&e) => return,
        Err(e) => {
            report
                .warnings
                .push(format!("target {target}: INQUIRY of LUN 0 failed: {e}"));
            return;
        }
    };
    let mut found = std::collections::HashSet::new();
    let lun0_level = lun0.scsi_level;
    // LUN 0's INQUIRY is not sent again: like the kernel, the data just read is used.
    if let Some(l) = add_lun(runner, target, 0, lun0) {
        found.insert(0);
        report.luns.push(l);
    }
    let listed = if lun0_level >= SCSI_3 {
        report_luns(runner, target, report)
    } else {
        None
    };
    match listed {
        Some(luns) => {
            // One warning for every LUN beyond the host's limit, naming the first.
            let too_large: Vec<u64> = luns.iter().copied().filter(|&l| l > max_lun).collect();
            if let Some(first) = too_large.first() {
                report.warnings.push(format!(
                    "0:{target}: {} LUN(s) larger than the host allows ({max_lun}) skipped, \
                     the first LUN {first}",
                    too_large.len()
                ));
            }
            for lun in luns {
                if found.contains(&lun) || lun > max_lun {
                    continue;
                }
                match probe_lun(runner, target, lun) {
                    Ok(Some(l)) => {
                        found.insert(lun);
                        report.luns.push(l);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        report.warnings.push(format!(
                            "0:{target}:{}: no response ({e}); scan of the target aborted",
                            lun_number(lun)
                        ));
                        break;
                    }
                }
            }
        }
        None => {
            // Sequential scan: up to 8 LUNs for SCSI-2, 256 otherwise, stopping at a hole.
            let last = if lun0_level < SCSI_3 { 8 } else { 256 }.min(max_lun + 1);
            for lun in 1..last {
                match probe_lun(runner, target, lun) {
                    Ok(Some(l)) => report.luns.push(l),
                    _ => break,
                }
            }
        }
    }
}

/// REPORT LUNS to LUN 0, re-issued with room for the whole list (up to
/// [`REPORT_LUNS_MAX`] LUNs); `None` when refused. See [`unique_luns`] for what is kept.
fn report_luns(
    runner: &mut dyn CommandRunner,
    target: u16,
    report: &mut ScanReport,
) -> Option<Vec<u64>> {
    let max_alloc = (REPORT_LUNS_MAX + 1) * 8;
    let mut alloc = REPORT_LUNS_ALLOC;
    loop {
        let data = match run_retry(runner, target, 0, cdb::report_luns(0, alloc as u32), alloc) {
            Ok(d) => d,
            Err(e) => {
                report.warnings.push(format!(
                    "target {target}: REPORT LUNS failed ({e}); scanning LUNs sequentially"
                ));
                return None;
            }
        };
        let parsed = ReportLuns::parse(&data).ok()?;
        let wanted = usize::try_from(parsed.required_alloc_len())
            .unwrap_or(usize::MAX)
            .min(max_alloc);
        // Longer than the buffer: once more with room for it all. `alloc` only grows, to
        // at most `max_alloc`; a list still cut short (or growing) is used as it came, as
        // Linux does when it cannot get a larger buffer.
        if !parsed.is_complete() && alloc < wanted {
            alloc = wanted;
            continue;
        }
        return Some(unique_luns(target, &parsed, report));
    }
}

/// The LUNs of a REPORT LUNS reply as Linux integers, in the device's order: each once, at
/// most [`REPORT_LUNS_MAX`], and one warning for the reply if anything was dropped.
fn unique_luns(target: u16, parsed: &ReportLuns, report: &mut ScanReport) -> Vec<u64> {
    let mut seen = std::collections::HashSet::new();
    let mut luns = Vec::new();
    let mut duplicates = 0usize;
    for lun in parsed.linux_luns() {
        if !seen.insert(lun) {
            duplicates += 1;
        } else if luns.len() < REPORT_LUNS_MAX {
            luns.push(lun);
        }
    }
    let listed = parsed.total_luns().max(parsed.luns.len());
    let mut dropped = Vec::new();
    if duplicates > 0 {
        dropped.push(format!("{duplicates} duplicate entries ignored"));
    }
    if seen.len() > REPORT_LUNS_MAX || listed > REPORT_LUNS_MAX {
        dropped.push(format!(
            "{listed} LUNs listed, only the first {REPORT_LUNS_MAX} scanned"
        ));
    }
    if !dropped.is_empty() {
        report.warnings.push(format!(
            "target {target}: REPORT LUNS reply: {}",
            dropped.join("; ")
        ));
    }
    luns
}

/// Scans targets 0..=`max_target` of channel 0.
pub fn scan_host(runner: &mut dyn CommandRunner, max_target: u16, max_lun: u64) -> ScanReport {
    let mut report = ScanReport::default();
    // The virtio-scsi LUN field has one byte for the target.
    for target in 0..=max_target.min(255) {
        scan_target(runner, target, max_lun, &mut report);
    }
    report
}

/// Revalidates a disk LUN the way `sd_revalidate_disk` does.
pub fn revalidate(
    runner: &mut dyn CommandRunner,
    target: u16,
    lun: u64,
    inq: &Inquiry,
) -> DiskInfo {
    let not_ready = spin_up(runner, target, lun);
    // Capacity: READ CAPACITY(16) first for SPC-3 and later, (10) otherwise or as fallback.
    let mut capacity: Option<(u64, u32, u32, bool)> = None;
    let mut try16 = inq.scsi_level > SCSI_SPC_2;
    if !try16 {
        if let Ok(rc) = run_retry(runner, target, lun, cdb::read_capacity_10(), 8)
            .and_then(|d| ReadCapacity10::parse(&d).map_err(|e| ScsiError::CapacityReply(e).into()))
        {
            if rc.needs_16() {
                try16 = true;
            } else {
                capacity = Some((rc.block_count(), rc.block_length, rc.block_length, false));
            }
        }
    }
    if try16 {
        match run_retry(runner, target, lun, cdb::read_capacity_16(32), 32)
            .and_then(|d| ReadCapacity16::parse(&d).map_err(|e| ScsiError::CapacityReply(e).into()))
        {
            Ok(rc) => {
                capacity = Some((
                    rc.block_count(),
                    rc.block_length,
                    rc.physical_block_size() as u32,
                    rc.lbpme,
                ))
            }
            Err(_) => {
                if let Ok(rc) =
                    run_retry(runner, target, lun, cdb::read_capacity_10(), 8).and_then(|d| {
                        ReadCapacity10::parse(&d).map_err(|e| ScsiError::CapacityReply(e).into())
                    })
                {
                    capacity = Some((rc.block_count(), rc.block_length, rc.block_length, false));
                }
            }
        }
    }
    let (blocks, block_size, physical, lbpme) = capacity.unwrap_or((0, 512, 512, false));
    // Linux treats a block size of 0 as 512 and refuses sizes it cannot handle.
    let block_size = if block_size == 0 { 512 } else { block_size };
    let blocks = if matches!(block_size, 512 | 1024 | 2048 | 4096) {
        blocks
    } else {
        0
    };
    let mut info = DiskInfo {
        blocks,
        block_size,
        physical_block_size: physical.max(block_size),
        size_bytes: blocks.saturating_mul(u64::from(block_size)),
        unmap: UnmapLimits {
            lbpme,
            ..UnmapLimits::default()
        },
        use_16: blocks > u64::from(u32::MAX),
        not_ready,
        // Filled by VPD and MODE SENSE below.
        ..DiskInfo::default()
    };
    // virtio_scsi asks for VPD pages from every SCSI-3 device (BLIST_TRY_VPD_PAGES).
    if inq.scsi_level >= SCSI_3 {
        read_vpd(runner, target, lun, &mut info);
    }
    mode_sense(runner, target, lun, &mut info);
    info
}

/// TEST UNIT READY; on NOT READY (other than no medium) START STOP UNIT and poll.
fn spin_up(runner: &mut dyn CommandRunner, target: u16, lun: u64) -> Option<String> {
    let mut started = false;
    for _ in 0..50 {
        match run_retry(runner, target, lun, cdb::test_unit_ready(), 0) {
            Ok(_) => return None,
            Err(e) => {
                let Some(sense) = ScsiError::sense_of(&e) else {
                    return Some(e.to_string());
                };
                if sense.key != SenseKey::NOT_READY || sense.asc == 0x3a {
                    return Some(e.to_string());
                }
                if !started {
                    let _ = runner.run(LunCommand {
                        target,
                        linux_lun: lun,
                        cdb: cdb::start_stop_unit(true, true),
                        alloc: 0,
                        data_in: false,
                    });
                    started = true;
                }
                runner.sleep(SPIN_UP_POLL);
            }
        }
    }
    Some("the LUN did not become ready".into())
}

fn read_vpd(runner: &mut dyn CommandRunner, target: u16, lun: u64, info: &mut DiskInfo) {
    let page = |runner: &mut dyn CommandRunner, code: u8, alloc: usize| {
        run_retry(
            runner,
            target,
            lun,
            cdb::inquiry_vpd(code, alloc as u16),
            alloc,
        )
        .ok()
    };
    let Some(supported) = page(runner, 0x00, 255).and_then(|d| SupportedVpdPages::parse(&d).ok())
    else {
        return;
    };
    info.vpd_pages = supported.pages.clone();
    if supported.supports(0x80) {
        info.serial = page(runner, 0x80, 255)
            .and_then(|d| UnitSerialNumber::parse(&d).ok())
            .map(|s| s.serial.trim().to_string());
    }
    if supported.supports(0x83) {
        if let Some(ids) =
            page(runner, 0x83, 1024).and_then(|d| DeviceIdentification::parse(&d).ok())
        {
            info.identifiers = ids
                .designators
                .iter()
                .map(|d| d.name().unwrap_or_else(|| d.text()))
                .collect();
        }
    }
    if supported.supports(0xb0) {
        if let Some(bl) = page(runner, 0xb0, 64).and_then(|d| BlockLimits::parse(&d).ok()) {
            info.max_transfer_blocks = bl.max_transfer_length.filter(|&n| n > 0);
            info.optimal_transfer_blocks = bl.optimal_transfer_length.filter(|&n| n > 0);
            if info.unmap.lbpme {
                info.unmap.max_unmap_descriptors = bl.max_unmap_block_descriptor_count;
                info.unmap.max_unmap_blocks = bl
                    .max_unmap_lba_count
                    .filter(|_| bl.max_unmap_block_descriptor_count.unwrap_or(0) > 0);
                info.unmap.granularity_blocks = bl.optimal_unmap_granularity;
            }
        }
    }
    if supported.supports(0xb1) {
        info.rotation_rate = page(runner, 0xb1, 64)
            .and_then(|d| BlockDeviceCharacteristics::parse(&d).ok())
            .and_then(|c| c.medium_rotation_rate);
    }
    if supported.supports(0xb2) && info.unmap.lbpme {
        if let Some(lbp) =
            page(runner, 0xb2, 64).and_then(|d| LogicalBlockProvisioning::parse(&d).ok())
        {
            info.unmap.lbpu = lbp.lbpu;
            info.unmap.lbpws = lbp.lbpws;
        }
    }
}

/// MODE SENSE(6): page 0x3F for write protect, then the caching page for WCE and DPOFUA.
fn mode_sense(runner: &mut dyn CommandRunner, target: u16, lun: u64, info: &mut DiskInfo) {
    let ms = |runner: &mut dyn CommandRunner, page: u8, alloc: u8| {
        run_retry(
            runner,
            target,
            lun,
            cdb::mode_sense_6(page, 0, PageControl::Current, false, alloc),
            usize::from(alloc),
        )
        .ok()
    };
    if let Some(d) = ms(runner, 0x3f, 4).or_else(|| ms(runner, 0x00, 4)) {
        if let Ok(m) = ModeSense::parse_6(&d) {
            info.write_protect = m.header.write_protect;
        }
    }
    let Some(head) = ms(runner, 0x08, 4) else {
        return;
    };
    let Ok(m) = ModeSense::parse_6(&head) else {
        return;
    };
    info.fua = m.header.dpofua;
    let full = (usize::from(m.header.mode_data_length) + 1).clamp(4, 255) as u8;
    if let Some(d) = ms(runner, 0x08, full) {
        if let Ok(m) = ModeSense::parse_6(&d) {
            info.write_cache = m.caching().is_some_and(|c| c.wce) && !info.write_protect;
        }
    }
}

#[cfg(test)]
mod tests;
