//! The scan against a simulated target that answers as QEMU's SCSI emulation does
//! (hw/scsi/scsi-bus.c, scsi-disk.c; see shared/notes/scsi-scan.md §5).

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::scsi::error::ScsiError;
use crate::scsi_proto::sense::{fixed_sense, ScsiStatus, SenseData};

#[derive(Clone)]
struct FakeLun {
    pdt: u8,
    blocks: u64,
    block_size: u32,
    physical_exp: u8,
    serial: Option<&'static str>,
    read_only: bool,
    rotation: u16,
    /// A UNIT ATTENTION is pending (as after a reset).
    unit_attention: bool,
}

fn disk(blocks: u64) -> FakeLun {
    FakeLun {
        pdt: 0,
        blocks,
        block_size: 512,
        physical_exp: 0,
        serial: None,
        read_only: false,
        rotation: 0,
        unit_attention: true,
    }
}

struct FakeHost {
    targets: BTreeMap<u16, BTreeMap<u16, FakeLun>>,
    commands: usize,
    /// (target, Linux LUN) of every standard INQUIRY, in order.
    inquiries: Vec<(u16, u64)>,
    /// The next this many commands are answered with this error (BUSY, say).
    failing: usize,
    failure: Option<fn() -> IoError>,
    /// Every back-off the scan asked for (none is slept).
    sleeps: Vec<Duration>,
    /// A target's REPORT LUNS reply, sent as is (cut to the allocation length).
    report_luns: Option<(u16, Vec<u8>)>,
}

impl FakeHost {
    fn new(targets: BTreeMap<u16, BTreeMap<u16, FakeLun>>) -> Self {
        FakeHost {
            targets,
            commands: 0,
            inquiries: Vec::new(),
            failing: 0,
            failure: None,
            sleeps: Vec::new(),
            report_luns: None,
        }
    }
}

fn busy() -> IoError {
    ScsiError::Status {
        status: ScsiStatus::BUSY,
        sense: None,
    }
    .into()
}

fn check(key: SenseKey, asc: u8, ascq: u8) -> IoError {
    ScsiError::Status {
        status: ScsiStatus(2),
        sense: SenseData::parse(&fixed_sense(key, asc, ascq)).ok(),
    }
    .into()
}

fn inquiry_reply(pdt_byte: u8, product: &str, alloc: usize) -> Vec<u8> {
    let mut r = vec![0u8; 36];
    r[0] = pdt_byte;
    r[2] = 5;
    r[3] = 0x12;
    r[4] = 31;
    r[7] = 0x12;
    r[8..16].copy_from_slice(b"QEMU    ");
    r[16..32].copy_from_slice(format!("{product:<16}").as_bytes());
    r[32..36].copy_from_slice(b"2.5+");
    r.truncate(alloc);
    r
}

impl CommandRunner for FakeHost {
    fn run(&mut self, command: LunCommand) -> Result<Vec<u8>, IoError> {
        let (target, linux_lun) = (command.target, command.linux_lun);
        let (cdb, alloc) = (command.cdb, command.alloc);
        self.commands += 1;
        if let Some(failure) = self.failure.filter(|_| self.failing > 0) {
            self.failing -= 1;
            return Err(failure());
        }
        let c = cdb.as_bytes();
        if let (0xa0, Some((t, raw))) = (c[0], &self.report_luns) {
            if *t == target {
                return Ok(raw[..raw.len().min(alloc)].to_vec());
            }
        }
        if c[0] == 0x12 && c[1] & 1 == 0 {
            self.inquiries.push((target, linux_lun));
        }
        let luns = self.targets.get_mut(&target).ok_or_else(|| {
            IoError::from(ScsiError::Response {
                code: response::BAD_TARGET,
                name: "BAD_TARGET",
            })
        })?;
        let number = lun_number(linux_lun);
        let op = c[0];
        if !luns.contains_key(&number) {
            // Target emulation: LUN 0 missing answers 0x3f, others 0x7f; REPORT LUNS lists.
            return match op {
                0x12 if number == 0 => Ok(inquiry_reply(0x3f, "QEMU TARGET", alloc)),
                0x12 => Ok({
                    let mut r = vec![0u8; 36.min(alloc)];
                    r[0] = 0x7f;
                    r
                }),
                0xa0 if number == 0 => Ok(report_luns(luns, alloc)),
                _ if number != 0 => Err(check(SenseKey::ILLEGAL_REQUEST, 0x25, 0)),
                0x00 => Ok(vec![]),
                _ => Err(check(SenseKey::ILLEGAL_REQUEST, 0x20, 0)),
            };
        }
        if op == 0xa0 {
            return Ok(report_luns(luns, alloc));
        }
        let lun = luns.get_mut(&number).expect("present");
        if op != 0x12 && lun.unit_attention {
            lun.unit_attention = false;
            return Err(check(SenseKey::UNIT_ATTENTION, 0x29, 0));
        }
        let mut r = match op {
            0x12 if c[1] & 1 == 0 => inquiry_reply(
                lun.pdt,
                if lun.pdt == 5 {
                    "QEMU CD-ROM"
                } else {
                    "QEMU HARDDISK"
                },
                36,
            ),
            0x12 => match c[2] {
                0x00 => {
                    let mut pages = vec![0x00];
                    if lun.serial.is_some() {
                        pages.push(0x80);
                    }
                    pages.extend([0x83, 0xb0, 0xb1, 0xb2]);
                    let mut r = vec![lun.pdt, 0, 0, pages.len() as u8];
                    r.extend(pages);
                    r
                }
                0x80 => match lun.serial {
                    Some(s) => {
                        let mut r = vec![lun.pdt, 0x80, 0, s.len() as u8];
                        r.extend(s.as_bytes());
                        r
                    }
                    None => return Err(check(SenseKey::ILLEGAL_REQUEST, 0x24, 0)),
                },
                0x83 => {
                    let id = b"drive-scsi0-0-0-0";
                    let mut r = vec![
                        lun.pdt,
                        0x83,
                        0,
                        (4 + id.len()) as u8,
                        0x02,
                        0x00,
                        0,
                        id.len() as u8,
                    ];
                    r.extend(id);
                    r
                }
                0xb0 => {
                    let mut r = vec![0u8; 64];
                    r[1] = 0xb0;
                    r[3] = 0x3c;
                    r[8..12].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
                    r[20..24].copy_from_slice(&(1u32 << 21).to_be_bytes());
                    r[24..28].copy_from_slice(&255u32.to_be_bytes());
                    r[28..32].copy_from_slice(&8u32.to_be_bytes());
                    r
                }
                0xb1 => {
                    let mut r = vec![0u8; 64];
                    r[1] = 0xb1;
                    r[3] = 0x3c;
                    r[4..6].copy_from_slice(&lun.rotation.to_be_bytes());
                    r
                }
                0xb2 => vec![0, 0xb2, 0, 4, 0, 0xe0, 2, 0],
                _ => return Err(check(SenseKey::ILLEGAL_REQUEST, 0x24, 0)),
            },
            0x00 => vec![],
            0x9e => {
                let mut r = vec![0u8; 32];
                r[0..8].copy_from_slice(&(lun.blocks - 1).to_be_bytes());
                r[8..12].copy_from_slice(&lun.block_size.to_be_bytes());
                r[13] = lun.physical_exp;
                r[14] = 0x80;
                r
            }
            0x25 => {
                let mut r = vec![0u8; 8];
                r[0..4].copy_from_slice(&((lun.blocks - 1).min(0xffff_ffff) as u32).to_be_bytes());
                r[4..8].copy_from_slice(&lun.block_size.to_be_bytes());
                r
            }
            0x1a => {
                let wp = if lun.read_only { 0x80 } else { 0 };
                let mut r = vec![0u8, 0, 0x10 | wp, 8, 0, 0, 0, 0, 0, 0, 2, 0];
                if c[2] & 0x3f == 0x08 || c[2] & 0x3f == 0x3f {
                    r.extend([
                        0x08, 0x12, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                    ]);
                }
                r[0] = (r.len() - 1) as u8;
                r
            }
            _ => return Err(check(SenseKey::ILLEGAL_REQUEST, 0x20, 0)),
        };
        r.truncate(alloc);
        Ok(r)
    }

    fn sleep(&mut self, pause: Duration) {
        self.sleeps.push(pause);
    }
}

fn report_luns(luns: &BTreeMap<u16, FakeLun>, alloc: usize) -> Vec<u8> {
    let mut entries = vec![[0u8; 8]];
    for &n in luns.keys().filter(|&&n| n != 0) {
        entries.push(ScsiLun::for_number(n).expect("valid").0);
    }
    let mut r = ((entries.len() * 8) as u32).to_be_bytes().to_vec();
    r.extend([0u8; 4]);
    for e in entries {
        r.extend(e);
    }
    r.truncate(alloc & !7);
    r
}

fn host() -> FakeHost {
    let mut targets = BTreeMap::new();
    // Target 0: LUN 0 disk with a serial and 4 KiB physical blocks.
    targets.insert(
        0,
        BTreeMap::from([(
            0,
            FakeLun {
                serial: Some("SER-0"),
                physical_exp: 3,
                rotation: 1,
                ..disk(2_097_152)
            },
        )]),
    );
    // Target 2: no LUN 0, sparse LUNs 5 and 300 (flat addressing), LUN 5 read-only.
    targets.insert(
        2,
        BTreeMap::from([
            (
                5,
                FakeLun {
                    read_only: true,
                    ..disk(1000)
                },
            ),
            (
                300,
                FakeLun {
                    block_size: 4096,
                    ..disk(256)
                },
            ),
        ]),
    );
    // Target 3: a CD-ROM at LUN 0.
    targets.insert(3, BTreeMap::from([(0, FakeLun { pdt: 5, ..disk(1) })]));
    FakeHost::new(targets)
}

#[test]
fn finds_every_lun_the_way_linux_does() {
    let mut h = host();
    let report = scan_host(&mut h, 255, 16383 + 1 + 0x4000);
    let found: Vec<(u16, u16, u64)> = report
        .luns
        .iter()
        .map(|l| (l.target, l.lun, l.linux_lun))
        .collect();
    assert_eq!(
        found,
        [(0, 0, 0), (2, 5, 5), (2, 300, 16684), (3, 0, 0)],
        "{report:?}"
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);

    let d0 = report.luns[0].disk.as_ref().expect("LUN 0:0:0 is a disk");
    assert_eq!(
        (d0.blocks, d0.block_size, d0.physical_block_size),
        (2_097_152, 512, 4096)
    );
    assert_eq!(d0.size_bytes, 1 << 30);
    assert_eq!(d0.serial.as_deref(), Some("SER-0"));
    assert_eq!(d0.rotation_rate, Some(1));
    assert!(d0.write_cache && !d0.write_protect && d0.fua);
    assert_eq!(d0.identifiers, ["drive-scsi0-0-0-0"]);
    assert!(d0.unmap.lbpme && d0.unmap.lbpu);
    assert_eq!(d0.unmap.max_unmap_blocks, Some(1 << 21));
    assert_eq!(d0.vpd_pages, [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2]);
    assert_eq!(
        d0.not_ready, None,
        "the UNIT ATTENTION after reset is retried"
    );

    let ro = report.luns[1].disk.as_ref().expect("disk");
    assert!(ro.write_protect && !ro.write_cache);
    let big = report.luns[2].disk.as_ref().expect("disk");
    assert_eq!((big.blocks, big.block_size), (256, 4096));
    assert_eq!(report.luns[2].lun_field, [1, 2, 0x41, 0x2c, 0, 0, 0, 0]);
    assert_eq!(report.luns[3].inquiry.device_type.short_name(), "cd/dvd");
    assert!(report.luns[3].disk.is_none());

    // One INQUIRY per LUN (QEMU's 36 bytes are the whole reply): a present LUN 0 is not
    // asked again. Target 2 has no LUN 0 (PQ 1) but REPORT LUNS lists it, as QEMU's does, so
    // it is probed again from the list, as the kernel's scsi_report_lun_scan does.
    assert_eq!(
        h.inquiries
            .iter()
            .filter(|(t, _)| [0, 2, 3].contains(t))
            .copied()
            .collect::<Vec<_>>(),
        [(0, 0), (2, 0), (2, 0), (2, 5), (2, 16684), (3, 0)]
    );
}

#[test]
fn lists_longer_than_the_buffer_are_fetched_again() {
    let mut h = FakeHost::new(BTreeMap::new());
    let many: BTreeMap<u16, FakeLun> = (0..600)
        .map(|n| {
            (
                n,
                FakeLun {
                    unit_attention: false,
                    ..disk(8)
                },
            )
        })
        .collect();
    h.targets.insert(1, many);
    let report = scan_host(&mut h, 3, 16383 + 1 + 0x4000);
    assert_eq!(report.luns.len(), 600, "{:?}", report.warnings);
}

#[test]
fn luns_beyond_the_host_limit_are_skipped_with_a_warning() {
    let mut h = host();
    let report = scan_host(&mut h, 2, 255);
    assert!(report.luns.iter().all(|l| l.linux_lun <= 255));
    assert!(
        report.warnings.iter().any(|w| w.contains("16684")),
        "{:?}",
        report.warnings
    );
}

#[test]
fn an_empty_host_costs_one_command_per_target() {
    let mut h = FakeHost::new(BTreeMap::new());
    let report = scan_host(&mut h, 255, 16383);
    assert!(report.luns.is_empty());
    assert_eq!(h.commands, 256);
}

#[test]
fn a_busy_lun_is_asked_again_after_a_growing_back_off() {
    // Three BUSY answers, then the LUN answers: the scan waits 3, 6 and 12 ms between.
    let mut h = host();
    h.failure = Some(busy);
    h.failing = 3;
    let report = scan_host(&mut h, 0, 255);
    assert_eq!(report.luns.len(), 1, "{:?}", report.warnings);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let ms = |n: u64| Duration::from_millis(n);
    assert_eq!(h.sleeps[..3], [ms(3), ms(6), ms(12)]);
}

#[test]
fn a_lun_that_stays_busy_is_given_up_on_within_a_bounded_time() {
    let mut h = host();
    h.failure = Some(busy);
    h.failing = usize::MAX;
    let report = scan_host(&mut h, 0, 255);
    assert!(report.luns.is_empty());
    assert_eq!(h.commands, 9, "9 tries of the INQUIRY of LUN 0");
    let ms: Vec<u128> = h.sleeps.iter().map(Duration::as_millis).collect();
    assert_eq!(ms, [3, 6, 12, 24, 48, 96, 100, 100]);
    assert_eq!(
        h.sleeps.iter().sum::<Duration>(),
        Duration::from_millis(389)
    );
    assert!(
        report.warnings[0].contains("INQUIRY of LUN 0 failed")
            && report.warnings[0].contains("BUSY"),
        "{:?}",
        report.warnings
    );
}

#[test]
fn a_unit_attention_is_retried_after_a_back_off_three_tries_at_most() {
    // virtio-scsi BUSY and UNIT ATTENTION count apart; UNIT ATTENTION gets 3 tries.
    let mut h = host();
    h.failure = Some(|| check(SenseKey::UNIT_ATTENTION, 0x3f, 0x0e));
    h.failing = usize::MAX;
    let report = scan_host(&mut h, 0, 255);
    assert!(report.luns.is_empty());
    assert_eq!(h.commands, 3);
    assert_eq!(
        h.sleeps,
        [Duration::from_millis(3), Duration::from_millis(6)]
    );
    // The ordinary UNIT ATTENTION after a reset costs one short back-off per LUN.
    let mut h = host();
    let report = scan_host(&mut h, 255, 16383 + 1 + 0x4000);
    assert_eq!(report.luns.len(), 4);
    assert!(h.sleeps.iter().all(|&s| s == Duration::from_millis(3)));
    assert!(!h.sleeps.is_empty());
}

/// The scan's warnings that contain `text`.
fn warnings_with<'a>(report: &'a ScanReport, text: &str) -> Vec<&'a String> {
    report
        .warnings
        .iter()
        .filter(|w| w.contains(text))
        .collect()
}

/// A REPORT LUNS reply with these 8-byte entries and this LUN LIST LENGTH.
fn report_luns_reply(list_length: u32, entries: &[[u8; 8]]) -> Vec<u8> {
    let mut r = list_length.to_be_bytes().to_vec();
    r.extend([0u8; 4]);
    for e in entries {
        r.extend(e);
    }
    r
}

#[test]
fn report_luns_duplicates_are_scanned_once_with_one_warning() {
    let mut h = host();
    // Target 2 lists LUN 5 three times and LUN 300 twice.
    let five = ScsiLun::for_number(5).unwrap().0;
    let flat = ScsiLun::for_number(300).unwrap().0;
    let entries = [[0u8; 8], five, flat, five, flat, five];
    h.report_luns = Some((2, report_luns_reply(48, &entries)));
    let report = scan_host(&mut h, 2, 16383 + 1 + 0x4000);
    let found: Vec<(u16, u16)> = report.luns.iter().map(|l| (l.target, l.lun)).collect();
    assert_eq!(found, [(0, 0), (2, 5), (2, 300)]);
    let about = warnings_with(&report, "REPORT LUNS");
    assert_eq!(
        about,
        ["target 2: REPORT LUNS reply: 3 duplicate entries ignored"]
    );
    // Each LUN of target 2 got one INQUIRY (LUN 0 twice: once for the target, once listed).
    let t2: Vec<u64> = h
        .inquiries
        .iter()
        .filter(|(t, _)| *t == 2)
        .map(|(_, l)| *l)
        .collect();
    assert_eq!(t2, [0, 0, 5, 16684]);
}

#[test]
fn a_huge_report_luns_list_is_cut_at_the_bound_with_one_warning() {
    // A hostile reply: a LUN LIST LENGTH of 16 MiB (2,097,152 LUNs), 20,000 distinct
    // entries, then one repeated. The scan asks once more with room for 16,384 LUNs (not
    // 16 MiB), keeps that many, and says so once; none fits the host's limit, which is
    // said once too.
    let mut h = FakeHost::new(BTreeMap::from([(0, BTreeMap::from([(0, disk(8))]))]));
    let mut entries: Vec<[u8; 8]> = (0..20_000u64)
        .map(|n| ScsiLun::from_linux(0x4000 | (n & 0x3fff) | ((n >> 14) << 16)).0)
        .collect();
    entries.extend(std::iter::repeat_n([0xff; 8], 1 << 14));
    h.report_luns = Some((0, report_luns_reply(1 << 24, &entries)));
    let report = scan_host(&mut h, 0, 0);
    let report_luns = warnings_with(&report, "REPORT LUNS");
    assert_eq!(
        report_luns,
        ["target 0: REPORT LUNS reply: 2097152 LUNs listed, only the first 16384 scanned"]
    );
    let too_large = warnings_with(&report, "larger than the host allows");
    assert_eq!(too_large.len(), 1, "one warning, not one per LUN");
    assert!(
        too_large[0].starts_with("0:0: 16384 LUN(s)"),
        "{too_large:?}"
    );
    assert!(report.warnings.len() <= 3, "{:?}", report.warnings.len());
    assert_eq!(report.luns.len(), 1);
}

mod concurrent;
