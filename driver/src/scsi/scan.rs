//! The host scan, as Linux's `scsi_scan.c` does it, and the disk revalidation `sd` does.
//!
//! Per target: INQUIRY to LUN 0 (a BAD_TARGET response means no target); the peripheral
//! qualifier and type decide whether LUN 0 is a logical unit or only proves the target
//! exists; REPORT LUNS for SCSI-3 and later (re-issued with a larger buffer when the list is
//! longer), else a sequential scan; INQUIRY of each listed LUN. Each disk LUN then gets TEST
//! UNIT READY (START STOP UNIT when not ready), READ CAPACITY(16) with fallback to (10), the
//! VPD pages it offers, and MODE SENSE for write protect and the write cache.
//!
//! The logic is written once, as `async` functions over a [`ScanLink`]: each `await` is a
//! command sent or a back-off, so a target's scan is a state machine that says what to send
//! next given the last answer. [`scan_host`] and the other synchronous entry points run it
//! one command at a time through a [`CommandRunner`], as the kernel does;
//! [`concurrent::scan_targets`] runs up to N targets (and the LUNs of a REPORT LUNS list)
//! side by side over a queue of the host's tags, and with N = 1 sends exactly the commands
//! of the sequential scan, in its order. Both are tested here against a simulated target that
//! answers as QEMU's SCSI emulation does.

use std::time::Duration;

use serde::Serialize;

pub mod concurrent;
mod link;
mod revalidate;

pub use concurrent::{scan_targets, CommandPort, PortRefusal, ScanProgress};
use link::{block_on, join_ordered, Immediate, ScanLink};
use revalidate::revalidate_disk;

use super::error::ScsiError;
use super::wire::response;
use crate::block::IoError;
use crate::scsi_proto::cdb::{self, Cdb};
use crate::scsi_proto::lun::{virtio_lun, ScsiLun};
use crate::scsi_proto::reply::{Inquiry, LunPresence, ReportLuns};
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
async fn run_retry<L: ScanLink>(
    runner: &mut L,
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
        match runner.run(command).await {
            Err(e) if is_unit_attention(&e) && attentions + 1 < UA_RETRIES => attentions += 1,
            Err(e) if is_busy(&e) && busy + 1 < BUSY_RETRIES => busy += 1,
            other => return other,
        }
        runner.sleep(backoff(attentions + busy - 1)).await;
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
async fn inquiry<L: ScanLink>(runner: &mut L, target: u16, lun: u64) -> Result<Inquiry, IoError> {
    let first = run_retry(runner, target, lun, cdb::inquiry(36), 36).await?;
    let parsed = Inquiry::parse(&first).map_err(ScsiError::InquiryReply)?;
    let wanted = usize::from(parsed.additional_length) + 5;
    if wanted > first.len() && wanted <= 255 {
        if let Ok(longer) =
            run_retry(runner, target, lun, cdb::inquiry(wanted as u16), wanted).await
        {
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
    block_on(probe(&mut Immediate(runner), target, linux_lun))
}

async fn probe<L: ScanLink>(
    runner: &mut L,
    target: u16,
    linux_lun: u64,
) -> Result<Option<ScannedLun>, IoError> {
    let inq = inquiry(runner, target, linux_lun).await?;
    Ok(add_lun(runner, target, linux_lun, inq).await)
}

/// Builds the scanned LUN from its INQUIRY data (revalidating a disk), like
/// `scsi_add_lun`; `None` when only the target answered.
async fn add_lun<L: ScanLink>(
    runner: &mut L,
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
    let disk = if inq.is_sd_disk() {
        Some(revalidate_disk(runner, target, linux_lun, &inq).await)
    } else {
        None
    };
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
    let found = block_on(target_scan(&mut Immediate(runner), target, max_lun));
    report.luns.extend(found.luns);
    report.warnings.extend(found.warnings);
}

/// How many LUNs of one REPORT LUNS list are probed side by side at most (when the link
/// can fork): each has one command in flight at a time, well within `cmd_per_lun`.
const LUN_WINDOW: usize = 16;

/// One target's scan (see [`scan_target`]): what it found and what went wrong.
async fn target_scan<L: ScanLink>(runner: &mut L, target: u16, max_lun: u64) -> ScanReport {
    let mut report = ScanReport::default();
    target_scan_into(runner, target, max_lun, &mut report).await;
    report
}

async fn target_scan_into<L: ScanLink>(
    runner: &mut L,
    target: u16,
    max_lun: u64,
    report: &mut ScanReport,
) {
    let lun0 = match inquiry(runner, target, 0).await {
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
    if let Some(l) = add_lun(runner, target, 0, lun0).await {
        found.insert(0);
        report.luns.push(l);
    }
    let listed = if lun0_level >= SCSI_3 {
        report_luns(runner, target, report).await
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
            // The list holds each LUN once (`unique_luns`), so only LUN 0 can be known.
            let wanted: Vec<u64> = luns
                .into_iter()
                .filter(|lun| !found.contains(lun) && *lun <= max_lun)
                .collect();
            'windows: for window in wanted.chunks(LUN_WINDOW) {
                // Answers are taken in the list's order, whatever order they came in.
                for (&lun, outcome) in window
                    .iter()
                    .zip(probe_together(runner, target, window).await)
                {
                    match outcome {
                        Ok(Some(l)) => report.luns.push(l),
                        Ok(None) => {}
                        Err(e) => {
                            // Probes of later LUNs that ran alongside are dropped: the
                            // result is the sequential scan's.
                            report.warnings.push(format!(
                                "0:{target}:{}: no response ({e}); scan of the target aborted",
                                lun_number(lun)
                            ));
                            break 'windows;
                        }
                    }
                }
            }
        }
        None => {
            // Sequential scan: up to 8 LUNs for SCSI-2, 256 otherwise, stopping at a hole.
            let last = if lun0_level < SCSI_3 { 8 } else { 256 }.min(max_lun + 1);
            // One at a time: where it stops depends on each answer.
            for lun in 1..last {
                match probe(runner, target, lun).await {
                    Ok(Some(l)) => report.luns.push(l),
                    _ => break,
                }
            }
        }
    }
}

/// Probes `luns` of `target` (a window of a REPORT LUNS list): side by side when the link
/// forks, one after another otherwise, stopping at the first that does not answer (as the
/// kernel does). The outcomes are in the order of `luns`.
async fn probe_together<L: ScanLink>(
    runner: &mut L,
    target: u16,
    luns: &[u64],
) -> Vec<Result<Option<ScannedLun>, IoError>> {
    let mut forks = Vec::new();
    while forks.len() + 1 < luns.len() {
        match runner.fork() {
            Some(fork) => forks.push(fork),
            None => break,
        }
    }
    if forks.len() + 1 < luns.len() {
        let mut outcomes = Vec::with_capacity(luns.len());
        for &lun in luns {
            let outcome = probe(runner, target, lun).await;
            let stop = outcome.is_err();
            outcomes.push(outcome);
            if stop {
                break;
            }
        }
        return outcomes;
    }
    let Some((&first, rest)) = luns.split_first() else {
        return Vec::new();
    };
    let mut probes: Vec<link::LocalFuture<'_, _>> = Vec::with_capacity(luns.len());
    probes.push(Box::pin(probe(runner, target, first)));
    for (mut fork, &lun) in forks.into_iter().zip(rest) {
        probes.push(Box::pin(async move { probe(&mut fork, target, lun).await }));
    }
    join_ordered(probes).await
}

/// REPORT LUNS to LUN 0, re-issued with room for the whole list (up to
/// [`REPORT_LUNS_MAX`] LUNs); `None` when refused. See [`unique_luns`] for what is kept.
async fn report_luns<L: ScanLink>(
    runner: &mut L,
    target: u16,
    report: &mut ScanReport,
) -> Option<Vec<u64>> {
    let max_alloc = (REPORT_LUNS_MAX + 1) * 8;
    let mut alloc = REPORT_LUNS_ALLOC;
    loop {
        let data =
            match run_retry(runner, target, 0, cdb::report_luns(0, alloc as u32), alloc).await {
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
    block_on(revalidate_disk(&mut Immediate(runner), target, lun, inq))
}

#[cfg(test)]
mod tests;
