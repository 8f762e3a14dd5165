//! The virtio-blk device configuration (virtio 1.2, 5.2.4), parsed from its little-endian bytes.

use serde::Serialize;

use crate::virtio::config::ConfigBytes;
use crate::virtio::pci::{field, ConfigField};
use crate::virtio::Features;

/// The fields of the configuration every virtio-blk device has (through `num_queues`), and
/// those the discard and write-zeroes features add, with their natural widths.
const BASE_FIELDS: [ConfigField; 13] = [
    field(0, 8),
    field(8, 4),
    field(12, 4),
    field(16, 2),
    field(18, 1),
    field(19, 1),
    field(20, 4),
    field(24, 1),
    field(25, 1),
    field(26, 2),
    field(28, 4),
    field(32, 1),
    field(34, 2),
];
const DISCARD_FIELDS: [ConfigField; 3] = [field(36, 4), field(40, 4), field(44, 4)];
const WRITE_ZEROES_FIELDS: [ConfigField; 3] = [field(48, 4), field(52, 4), field(56, 1)];

/// The configuration fields to read for a device with `features` negotiated.
pub fn blk_config_fields(features: Features) -> Vec<ConfigField> {
    let mut fields: Vec<ConfigField> = BASE_FIELDS.to_vec();
    if features.contains(Features::BLK_DISCARD) {
        fields.extend(DISCARD_FIELDS);
    }
    if features.contains(Features::BLK_WRITE_ZEROES) {
        fields.extend(WRITE_ZEROES_FIELDS);
    }
    fields
}

/// Disk geometry, a legacy hint (VIRTIO_BLK_F_GEOMETRY).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Geometry {
    pub cylinders: u16,
    pub heads: u8,
    pub sectors: u8,
}

/// The virtio-blk configuration. Fields are named as the spec names them; a field is `None`
/// when the device's configuration structure ends before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlkConfig {
    /// In 512-byte sectors, whatever the logical block size.
    pub capacity: u64,
    pub size_max: u32,
    pub seg_max: u32,
    pub geometry: Geometry,
    pub blk_size: u32,
    pub physical_block_exp: u8,
    pub alignment_offset: u8,
    pub min_io_size: u16,
    pub opt_io_size: u32,
    pub writeback: u8,
    pub num_queues: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_discard_sectors: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_discard_seg: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discard_sector_alignment: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_write_zeroes_sectors: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_write_zeroes_seg: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_zeroes_may_unmap: Option<u8>,
}

/// The configuration is shorter than the fields every virtio-blk device has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the virtio-blk configuration is {0} bytes, shorter than the 36 bytes up to num_queues")]
pub struct ShortBlkConfig(pub usize);

impl BlkConfig {
    /// Parses the configuration bytes (as [`blk_config_fields`] read them). The first 36
    /// bytes (through `num_queues`) must be there; discard and write-zeroes fields are
    /// reported only when their feature was negotiated.
    pub fn parse(bytes: &[u8], features: Features) -> Result<Self, ShortBlkConfig> {
        let discard = features.contains(Features::BLK_DISCARD);
        let write_zeroes = features.contains(Features::BLK_WRITE_ZEROES);
        let b = ConfigBytes(bytes);
        let short = ShortBlkConfig(bytes.len());
        Ok(BlkConfig {
            capacity: b.u64(0).ok_or(short)?,
            size_max: b.u32(8).ok_or(short)?,
            seg_max: b.u32(12).ok_or(short)?,
            geometry: Geometry {
                cylinders: b.u16(16).ok_or(short)?,
                heads: b.u8(18).ok_or(short)?,
                sectors: b.u8(19).ok_or(short)?,
            },
            blk_size: b.u32(20).ok_or(short)?,
            physical_block_exp: b.u8(24).ok_or(short)?,
            alignment_offset: b.u8(25).ok_or(short)?,
            min_io_size: b.u16(26).ok_or(short)?,
            opt_io_size: b.u32(28).ok_or(short)?,
            writeback: b.u8(32).ok_or(short)?,
            num_queues: b.u16(34).ok_or(short)?,
            max_discard_sectors: b.u32(36).filter(|_| discard),
            max_discard_seg: b.u32(40).filter(|_| discard),
            discard_sector_alignment: b.u32(44).filter(|_| discard),
            max_write_zeroes_sectors: b.u32(48).filter(|_| write_zeroes),
            max_write_zeroes_seg: b.u32(52).filter(|_| write_zeroes),
            write_zeroes_may_unmap: b.u8(56).filter(|_| write_zeroes),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_qemu_like_config() {
        let mut c = vec![0u8; 60];
        c[0..8].copy_from_slice(&2_097_152u64.to_le_bytes()); // 1 GiB
        c[8..12].copy_from_slice(&0u32.to_le_bytes());
        c[12..16].copy_from_slice(&254u32.to_le_bytes());
        c[16..18].copy_from_slice(&2080u16.to_le_bytes());
        c[18] = 16;
        c[19] = 63;
        c[20..24].copy_from_slice(&512u32.to_le_bytes());
        c[24] = 3;
        c[32] = 1;
        c[34..36].copy_from_slice(&2u16.to_le_bytes());
        c[36..40].copy_from_slice(&4_194_303u32.to_le_bytes());
        c[40..44].copy_from_slice(&1u32.to_le_bytes());
        c[56] = 1;
        let cfg = BlkConfig::parse(&c, Features::BLK_DISCARD | Features::BLK_WRITE_ZEROES).unwrap();
        assert_eq!(cfg.capacity, 2_097_152);
        assert_eq!(cfg.seg_max, 254);
        assert_eq!(
            cfg.geometry,
            Geometry {
                cylinders: 2080,
                heads: 16,
                sectors: 63
            }
        );
        assert_eq!(cfg.blk_size, 512);
        assert_eq!(cfg.physical_block_exp, 3);
        assert_eq!(cfg.writeback, 1);
        assert_eq!(cfg.num_queues, 2);
        assert_eq!(cfg.max_discard_sectors, Some(4_194_303));
        assert_eq!(cfg.write_zeroes_may_unmap, Some(1));
        let json = serde_json::to_value(&cfg).unwrap();
        assert_eq!(json["capacity"], 2_097_152);
        // Without the features, their fields are not reported even when bytes are there.
        let plain = BlkConfig::parse(&c, Features::default()).unwrap();
        assert_eq!(plain.max_discard_sectors, None);
        assert_eq!(plain.write_zeroes_may_unmap, None);
        assert!(serde_json::to_value(&plain)
            .unwrap()
            .get("max_discard_sectors")
            .is_none());
    }

    #[test]
    fn field_table_covers_the_struct_with_natural_widths() {
        let fields = blk_config_fields(Features::BLK_DISCARD | Features::BLK_WRITE_ZEROES);
        let mut covered = [false; 57];
        for f in &fields {
            assert_eq!(f.offset % f.width, 0, "{f:?} misaligned");
            for (b, seen) in covered.iter_mut().enumerate().skip(f.offset).take(f.width) {
                assert!(!*seen, "byte {b} read twice");
                *seen = true;
            }
        }
        // Only padding (byte 33) is never read.
        let unread: Vec<usize> = (0..57).filter(|&b| !covered[b]).collect();
        assert_eq!(unread, [33]);
        assert_eq!(blk_config_fields(Features::default()).len(), 13);
    }

    #[test]
    fn refuses_a_truncated_config() {
        let all = Features::BLK_DISCARD | Features::BLK_WRITE_ZEROES;
        assert_eq!(BlkConfig::parse(&[0u8; 35], all), Err(ShortBlkConfig(35)));
        assert!(BlkConfig::parse(&[0u8; 36], all)
            .unwrap()
            .max_discard_sectors
            .is_none());
    }
}
