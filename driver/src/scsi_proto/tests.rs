//! Random-bytes property tests of every parser of device data in this module: INQUIRY, the
//! VPD pages, READ CAPACITY(10)/(16), MODE SENSE(6)/(10), REPORT LUNS, sense data, LUN
//! fields and CDBs. Each gets thousands of fixed-seed buffers, random and mutated from a
//! valid reply, and must not panic; what it parses must lie inside the buffer.

use super::cdb::Cdb;
use super::lun::{parse_virtio_lun, virtio_lun, ScsiLun};
use super::reply::{
    BlockDeviceCharacteristics, BlockLimits, DeviceIdentification, Inquiry,
    LogicalBlockProvisioning, ModeSense, ReadCapacity10, ReadCapacity16, ReportLuns,
    SupportedVpdPages, UnitSerialNumber, VpdPage,
};
use super::sense::{descriptor_sense, fixed_sense, SenseData, SenseKey};
use crate::virtio::fake::ring_tests::XorShift;

/// Buffers per parser: half random, half mutated valid replies.
const CASES: usize = 4000;

/// Valid replies to mutate, as QEMU's SCSI emulation sends them (and one of each other
/// shape the parsers know).
fn samples() -> Vec<Vec<u8>> {
    let mut inquiry = vec![0u8; 36];
    inquiry[2] = 5;
    inquiry[3] = 0x12;
    inquiry[4] = 31;
    inquiry[8..16].copy_from_slice(b"QEMU    ");
    inquiry[16..32].copy_from_slice(b"QEMU HARDDISK   ");
    inquiry[32..36].copy_from_slice(b"2.5+");
    let mut block_limits = vec![0u8; 64];
    block_limits[1] = 0xb0;
    block_limits[3] = 0x3c;
    block_limits[8..12].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    let mut rc16 = vec![0u8; 32];
    rc16[7] = 0xff;
    rc16[10] = 2;
    rc16[13] = 3;
    rc16[14] = 0x80;
    vec![
        inquiry,
        vec![0, 0x00, 0, 6, 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2],
        vec![0, 0x80, 0, 5, b'S', b'E', b'R', b'-', b'0'],
        vec![
            0, 0x83, 0, 24, 0x02, 0x00, 0, 4, b'd', b'i', b's', b'k', 0x01, 0x03, 0, 8, 0x60, 1, 2,
            3, 4, 5, 6, 7,
        ],
        block_limits,
        vec![0, 0xb1, 0, 0x3c, 0, 1, 0, 0],
        vec![0, 0xb2, 0, 4, 0, 0xe0, 2, 0],
        vec![0, 0, 0xff, 0xff, 0, 0, 2, 0],
        rc16,
        // MODE SENSE(6) with a block descriptor and the caching page.
        vec![
            31, 0, 0x10, 8, 0, 0, 0, 0, 0, 0, 2, 0, 0x08, 0x12, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0,
        ],
        // MODE SENSE(10), long LBA descriptor.
        vec![
            0, 30, 0, 0x10, 1, 0, 0, 16, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0x08,
            0x02, 0x04, 0,
        ],
        // REPORT LUNS: 0, 1, flat 300.
        vec![
            0, 0, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x41, 0x2c, 0,
            0, 0, 0, 0, 0,
        ],
        fixed_sense(SenseKey::UNIT_ATTENTION, 0x29, 0).to_vec(),
        descriptor_sense(SenseKey::MEDIUM_ERROR, 0x11, 0).to_vec(),
    ]
}

/// The next test buffer: random bytes of a random length, or a sample with a few bytes
/// changed, cut short or extended.
fn buffer(rng: &mut XorShift, samples: &[Vec<u8>], i: usize) -> Vec<u8> {
    if i.is_multiple_of(2) {
        let max = if rng.one_in(8) { 600 } else { 72 };
        let len = rng.below(max) as usize;
        let fill = rng.next() as u8;
        return (0..len)
            .map(|_| {
                if rng.one_in(3) {
                    fill
                } else {
                    rng.next() as u8
                }
            })
            .collect();
    }
    let mut b = samples[rng.below(samples.len() as u64) as usize].clone();
    for _ in 0..1 + rng.below(4) {
        if let Some(at) = (!b.is_empty()).then(|| rng.below(b.len() as u64) as usize) {
            b[at] = match rng.below(3) {
                0 => 0xff,
                1 => 0,
                _ => rng.next() as u8,
            };
        }
    }
    match rng.below(4) {
        0 => b.truncate(rng.below(b.len() as u64 + 1) as usize),
        1 => b.extend((0..rng.below(40)).map(|_| rng.next() as u8)),
        _ => {}
    }
    b
}

/// Runs `check` on [`CASES`] buffers from `seed`.
fn each_buffer(seed: u64, mut check: impl FnMut(&[u8])) {
    let mut rng = XorShift(seed);
    let samples = samples();
    for i in 0..CASES {
        let b = buffer(&mut rng, &samples, i);
        check(&b);
    }
}

#[test]
fn inquiry_and_capacity_replies_never_panic() {
    each_buffer(0x5eed_0001, |b| {
        if let Ok(inq) = Inquiry::parse(b) {
            let _ = (inq.vendor_trimmed(), inq.product_trimmed());
            let _ = (inq.revision_trimmed(), inq.is_sd_disk(), inq.response_len());
            let _ = (inq.linux_presence(0), inq.linux_presence(0x4123));
            let _ = inq.device_type.short_name();
        }
        if let Ok(rc) = ReadCapacity10::parse(b) {
            let _ = (rc.block_count(), rc.needs_16(), rc.capacity_bytes());
        }
        if let Ok(rc) = ReadCapacity16::parse(b) {
            let _ = (rc.block_count(), rc.physical_block_size());
            let _ = (rc.alignment_offset_bytes(), rc.capacity_bytes());
        }
    });
}

#[test]
fn vpd_pages_never_panic_and_stay_inside_the_reply() {
    each_buffer(0x5eed_0002, |b| {
        let code = b.get(1).copied().unwrap_or(0);
        if let Ok(page) = VpdPage::parse(b, code) {
            assert!(page.payload.len() <= b.len() - 4);
            assert!(page.payload.len() <= usize::from(page.page_length));
            assert_eq!(
                page.truncated,
                page.payload.len() < usize::from(page.page_length)
            );
        }
        if let Ok(p) = SupportedVpdPages::parse(b) {
            assert!(p.pages.len() <= b.len());
            let _ = p.supports(0x83);
        }
        let _ = UnitSerialNumber::parse(b);
        if let Ok(ids) = DeviceIdentification::parse(b) {
            let bytes: usize = ids.designators.iter().map(|d| d.identifier.len()).sum();
            assert!(
                bytes <= b.len(),
                "{bytes} identifier bytes from {}",
                b.len()
            );
            let _ = ids.lun_name();
            for d in &ids.designators {
                let _ = (d.text(), d.name());
            }
        }
        let _ = BlockLimits::parse(b);
        if let Ok(c) = BlockDeviceCharacteristics::parse(b) {
            let _ = c.is_non_rotational();
        }
        let _ = LogicalBlockProvisioning::parse(b);
    });
}

#[test]
fn mode_sense_replies_never_panic_and_stay_inside_the_reply() {
    each_buffer(0x5eed_0003, |b| {
        for parsed in [ModeSense::parse_6(b), ModeSense::parse_10(b)] {
            let Ok(m) = parsed else { continue };
            assert!(m.block_descriptors.len() + m.pages.len() <= b.len());
            let mut total = 0;
            for page in m.iter_pages() {
                assert!(page.data.len() <= m.pages.len());
                total += page.data.len();
                assert!(total <= m.pages.len(), "pages overlap");
            }
            let _ = (m.caching(), m.block_descriptor(), m.find_page(0x08, 0));
        }
    });
}

#[test]
fn report_luns_replies_never_panic_and_stay_inside_the_reply() {
    each_buffer(0x5eed_0004, |b| {
        let Ok(r) = ReportLuns::parse(b) else {
            assert!(b.len() < 4);
            return;
        };
        assert!(r.luns.len() * 8 <= b.len().saturating_sub(8));
        assert!(r.luns.len() <= r.total_luns());
        for (lun, linux) in r.luns.iter().zip(r.linux_luns()) {
            assert_eq!(ScsiLun::from_linux(linux), *lun);
            let _ = (lun.number(), lun.is_well_known(), lun.address_method());
        }
    });
}

#[test]
fn sense_data_never_panics() {
    each_buffer(0x5eed_0005, |b| {
        if let Ok(s) = SenseData::parse(b) {
            let _ = (s.to_sg_string(), s.asc_description(), s.to_string());
        }
    });
}

#[test]
fn lun_fields_and_cdbs_never_panic_and_round_trip() {
    let mut rng = XorShift(0x5eed_0006);
    for _ in 0..CASES * 4 {
        let linux = match rng.below(3) {
            0 => rng.next(),
            1 => rng.below(0x10000),
            _ => 0x4000 | rng.below(0x4000),
        };
        let lun = ScsiLun::from_linux(linux);
        assert_eq!(lun.to_linux(), linux);
        let _ = (lun.number(), lun.is_single_level(), lun.is_well_known());
        let target = rng.next() as u8;
        if let Ok(field) = virtio_lun(target, linux) {
            let back = parse_virtio_lun(&field).expect("byte 0 is 1");
            assert_eq!((back.target, back.linux_lun), (target, linux | 0x4000));
        }
        let raw = rng.next().to_le_bytes();
        let _ = parse_virtio_lun(&raw);
        let _ = ScsiLun::from_slice(&raw[..rng.below(9) as usize]);
        let cdb: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
        if let Some(c) = Cdb::from_slice(&cdb) {
            assert_eq!(c.as_bytes(), &cdb[..]);
        }
    }
}
