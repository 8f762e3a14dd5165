//! What lsscsi's options read of a LUN beyond the scan: the kernel keeps these in sysfs
//! (`vpd_pg83`, `vpd_pg80`, the block device's size, `protection_type`, the I/O counters);
//! uvio asks the LUN, or gives its own equivalent.

use std::time::Duration;

use uvio::scsi::host::{LunIoCounts, VirtioScsiHost};
use uvio::scsi::scan::ScannedLun;
use uvio::scsi_proto::cdb::{self, Cdb};
use uvio::scsi_proto::reply::{ReadCapacity10, ReadCapacity16};

/// The kernel's upper-level driver for a peripheral device type, which decides which
/// sysfs attributes lsscsi finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpperDriver {
    /// sd: disks, optical memory (7), RBC (0xe), host-managed zoned (0x14).
    Sd,
    /// sr: CD/DVD (5) and write-once (4).
    Sr,
    None,
}

impl UpperDriver {
    pub fn of(pdt: u8) -> Self {
        match pdt {
            0 | 7 | 0xe | 0x14 => UpperDriver::Sd,
            4 | 5 => UpperDriver::Sr,
            _ => UpperDriver::None,
        }
    }
}

/// A block device's size as the kernel sets it: 512-byte sectors and the logical block
/// size (lsscsi reads `size` and `queue/logical_block_size`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockSize {
    pub sectors: u64,
    pub logical_block_size: u32,
}

/// sr's capacity when the drive is not ready or READ CAPACITY fails: `sr_probe` sets
/// 0x1fffff sectors, and `sr_revalidate_disk` leaves it so when TEST UNIT READY fails (no
/// medium); the logical block size stays the queue's default, 512.
const SR_DEFAULT_SECTORS: u64 = 0x1f_ffff;

/// What lsscsi's options need of one LUN.
#[derive(Debug, Clone, Default)]
pub struct LunFacts {
    /// VPD page 0x83 as the LUN returned it.
    pub device_id: Option<Vec<u8>>,
    /// VPD page 0x80.
    pub unit_serial: Option<Vec<u8>>,
    /// The size its block device would have (sd's or sr's rule), if it would have one.
    pub size: Option<BlockSize>,
    /// sd's `protection_type`: P_TYPE + 1 when READ CAPACITY (16) says PROT_EN, else 0.
    pub protection_type: u8,
    /// Commands uvio sent to the LUN (the kernel's iorequest/iodone/ioerr counters).
    pub counts: LunIoCounts,
    /// Commands uvio keeps in flight to the LUN at most (the kernel's queue_depth).
    pub queue_depth: u16,
    /// How long one of its commands may take (the kernel's `timeout`).
    pub timeout: Duration,
}

/// Which facts to ask the LUN for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wanted {
    pub device_id: bool,
    pub unit_serial: bool,
    pub size: bool,
    pub protection: bool,
}

fn ask(host: &mut VirtioScsiHost, l: &ScannedLun, cdb: Cdb, alloc: usize) -> Option<Vec<u8>> {
    match host.command(l.target, l.linux_lun, cdb, alloc) {
        Ok(Ok(data)) => Some(data),
        _ => None,
    }
}

/// The size sr gives a CD/DVD LUN (`get_sectorsize` in drivers/scsi/sr.c): nothing
/// changes the probe's default unless TEST UNIT READY succeeds and READ CAPACITY answers;
/// then the last LBA + 1 blocks, a 2048-byte block counted as four 512-byte sectors (0,
/// 2340 and 2352 are taken as 2048), and no capacity for other block sizes. A failed
/// READ CAPACITY after a good TEST UNIT READY keeps the default sectors with 2048-byte
/// blocks.
fn sr_size(host: &mut VirtioScsiHost, l: &ScannedLun) -> BlockSize {
    let default = BlockSize {
        sectors: SR_DEFAULT_SECTORS,
        logical_block_size: 512,
    };
    if ask(host, l, cdb::test_unit_ready(), 0).is_none() {
        return default;
    }
    let Some(reply) = ask(host, l, cdb::read_capacity_10(), 8) else {
        return BlockSize {
            logical_block_size: 2048,
            ..default
        };
    };
    let Ok(rc) = ReadCapacity10::parse(&reply) else {
        return default;
    };
    let blocks = u64::from(rc.returned_lba) + 1;
    match rc.block_length {
        0 | 2048 | 2340 | 2352 => BlockSize {
            sectors: blocks * 4,
            logical_block_size: 2048,
        },
        512 => BlockSize {
            sectors: blocks,
            logical_block_size: 512,
        },
        other => BlockSize {
            sectors: 0,
            logical_block_size: other,
        },
    }
}

/// The size sd gives a disk LUN, from the scan's READ CAPACITY.
pub fn disk_size(l: &ScannedLun) -> Option<BlockSize> {
    let d = l.disk.as_ref()?;
    (UpperDriver::of(l.inquiry.device_type.0) == UpperDriver::Sd).then_some(BlockSize {
        sectors: d.size_bytes / 512,
        logical_block_size: d.block_size,
    })
}

/// Gathers what `wanted` asks for (and always the counts, depth and timeout).
pub fn gather(
    host: &mut VirtioScsiHost,
    l: &ScannedLun,
    wanted: Wanted,
    timeout: Duration,
) -> LunFacts {
    let mut facts = LunFacts {
        timeout,
        queue_depth: host.lun_queue_depth(),
        ..LunFacts::default()
    };
    if wanted.device_id {
        facts.device_id = ask(host, l, cdb::inquiry_vpd(0x83, 512), 512);
    }
    if wanted.unit_serial {
        facts.unit_serial = ask(host, l, cdb::inquiry_vpd(0x80, 255), 255);
    }
    let driver = UpperDriver::of(l.inquiry.device_type.0);
    if wanted.size {
        facts.size = match driver {
            UpperDriver::Sr => Some(sr_size(host, l)),
            _ => disk_size(l),
        };
    }
    if wanted.protection && driver == UpperDriver::Sd {
        let rc16 = ask(host, l, cdb::read_capacity_16(32), 32)
            .and_then(|r| ReadCapacity16::parse(&r).ok());
        // sd_read_protection_type: types above 3 are refused (and count as 0).
        if let Some(rc) = rc16.filter(|rc| rc.prot_en && rc.p_type <= 2) {
            facts.protection_type = rc.p_type + 1;
        }
    }
    facts.counts = host.lun_io_counts(l.target, l.linux_lun);
    facts
}
