//! Disk revalidation as `sd_revalidate_disk` does it: TEST UNIT READY (START STOP UNIT
//! when not ready), READ CAPACITY(16) with fallback to (10), the VPD pages the LUN offers,
//! and MODE SENSE for write protect and the write cache.

use super::link::ScanLink;
use super::{run_retry, DiskInfo, LunCommand, UnmapLimits, SCSI_3, SCSI_SPC_2, SPIN_UP_POLL};
use crate::scsi::error::ScsiError;
use crate::scsi_proto::cdb::{self, PageControl};
use crate::scsi_proto::reply::{
    BlockDeviceCharacteristics, BlockLimits, DeviceIdentification, Inquiry,
    LogicalBlockProvisioning, ModeSense, ReadCapacity10, ReadCapacity16, SupportedVpdPages,
    UnitSerialNumber,
};
use crate::scsi_proto::sense::SenseKey;

pub(super) async fn revalidate_disk<L: ScanLink>(
    runner: &mut L,
    target: u16,
    lun: u64,
    inq: &Inquiry,
) -> DiskInfo {
    let not_ready = spin_up(runner, target, lun).await;
    // Capacity: READ CAPACITY(16) first for SPC-3 and later, (10) otherwise or as fallback.
    let mut capacity: Option<(u64, u32, u32, bool)> = None;
    let mut try16 = inq.scsi_level > SCSI_SPC_2;
    if !try16 {
        if let Ok(rc) = run_retry(runner, target, lun, cdb::read_capacity_10(), 8)
            .await
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
            .await
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
                if let Ok(rc) = run_retry(runner, target, lun, cdb::read_capacity_10(), 8)
                    .await
                    .and_then(|d| {
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
        read_vpd(runner, target, lun, &mut info).await;
    }
    mode_sense(runner, target, lun, &mut info).await;
    info
}

/// TEST UNIT READY; on NOT READY (other than no medium) START STOP UNIT and poll.
async fn spin_up<L: ScanLink>(runner: &mut L, target: u16, lun: u64) -> Option<String> {
    let mut started = false;
    for _ in 0..50 {
        match run_retry(runner, target, lun, cdb::test_unit_ready(), 0).await {
            Ok(_) => return None,
            Err(e) => {
                let Some(sense) = ScsiError::sense_of(&e) else {
                    return Some(e.to_string());
                };
                if sense.key != SenseKey::NOT_READY || sense.asc == 0x3a {
                    return Some(e.to_string());
                }
                if !started {
                    let _ = runner
                        .run(LunCommand {
                            target,
                            linux_lun: lun,
                            cdb: cdb::start_stop_unit(true, true),
                            alloc: 0,
                            data_in: false,
                        })
                        .await;
                    started = true;
                }
                runner.sleep(SPIN_UP_POLL).await;
            }
        }
    }
    Some("the LUN did not become ready".into())
}

/// VPD page `code` of a LUN, `None` when it could not be read.
async fn vpd_page<L: ScanLink>(
    runner: &mut L,
    target: u16,
    lun: u64,
    code: u8,
    alloc: usize,
) -> Option<Vec<u8>> {
    run_retry(
        runner,
        target,
        lun,
        cdb::inquiry_vpd(code, alloc as u16),
        alloc,
    )
    .await
    .ok()
}

async fn read_vpd<L: ScanLink>(runner: &mut L, target: u16, lun: u64, info: &mut DiskInfo) {
    let Some(supported) = vpd_page(runner, target, lun, 0x00, 255)
        .await
        .and_then(|d| SupportedVpdPages::parse(&d).ok())
    else {
        return;
    };
    info.vpd_pages = supported.pages.clone();
    if supported.supports(0x80) {
        info.serial = vpd_page(runner, target, lun, 0x80, 255)
            .await
            .and_then(|d| UnitSerialNumber::parse(&d).ok())
            .map(|s| s.serial.trim().to_string());
    }
    if supported.supports(0x83) {
        if let Some(ids) = vpd_page(runner, target, lun, 0x83, 1024)
            .await
            .and_then(|d| DeviceIdentification::parse(&d).ok())
        {
            info.identifiers = ids
                .designators
                .iter()
                .map(|d| d.name().unwrap_or_else(|| d.text()))
                .collect();
        }
    }
    if supported.supports(0xb0) {
        if let Some(bl) = vpd_page(runner, target, lun, 0xb0, 64)
            .await
            .and_then(|d| BlockLimits::parse(&d).ok())
        {
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
        info.rotation_rate = vpd_page(runner, target, lun, 0xb1, 64)
            .await
            .and_then(|d| BlockDeviceCharacteristics::parse(&d).ok())
            .and_then(|c| c.medium_rotation_rate);
    }
    if supported.supports(0xb2) && info.unmap.lbpme {
        if let Some(lbp) = vpd_page(runner, target, lun, 0xb2, 64)
            .await
            .and_then(|d| LogicalBlockProvisioning::parse(&d).ok())
        {
            info.unmap.lbpu = lbp.lbpu;
            info.unmap.lbpws = lbp.lbpws;
        }
    }
}

/// MODE SENSE(6): page 0x3F for write protect, then the caching page for WCE and DPOFUA.
/// MODE SENSE(6) of `page` (current values), `None` when refused.
async fn mode_page<L: ScanLink>(
    runner: &mut L,
    target: u16,
    lun: u64,
    page: u8,
    alloc: u8,
) -> Option<Vec<u8>> {
    run_retry(
        runner,
        target,
        lun,
        cdb::mode_sense_6(page, 0, PageControl::Current, false, alloc),
        usize::from(alloc),
    )
    .await
    .ok()
}

async fn mode_sense<L: ScanLink>(runner: &mut L, target: u16, lun: u64, info: &mut DiskInfo) {
    let all = match mode_page(runner, target, lun, 0x3f, 4).await {
        Some(d) => Some(d),
        None => mode_page(runner, target, lun, 0x00, 4).await,
    };
    if let Some(d) = all {
        if let Ok(m) = ModeSense::parse_6(&d) {
            info.write_protect = m.header.write_protect;
        }
    }
    let Some(head) = mode_page(runner, target, lun, 0x08, 4).await else {
        return;
    };
    let Ok(m) = ModeSense::parse_6(&head) else {
        return;
    };
    info.fua = m.header.dpofua;
    let full = (usize::from(m.header.mode_data_length) + 1).clamp(4, 255) as u8;
    if let Some(d) = mode_page(runner, target, lun, 0x08, full).await {
        if let Ok(m) = ModeSense::parse_6(&d) {
            info.write_cache = m.caching().is_some_and(|c| c.wce) && !info.write_protect;
        }
    }
}
