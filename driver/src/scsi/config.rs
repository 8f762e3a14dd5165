//! The virtio-scsi device configuration (virtio 1.2, 5.6.4).

use serde::Serialize;

use crate::virtio::config::ConfigBytes;

use crate::virtio::pci::{field, ConfigField};

/// The virtio-scsi configuration fields with their natural widths.
pub const SCSI_CONFIG_FIELDS: [ConfigField; 10] = [
    field(0, 4),
    field(4, 4),
    field(8, 4),
    field(12, 4),
    field(16, 4),
    field(20, 4),
    field(24, 4),
    field(28, 2),
    field(30, 2),
    field(32, 4),
];

/// The virtio-scsi configuration, fields named as in the spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScsiConfig {
    /// Request queues (the control and event queues come on top).
    pub num_queues: u32,
    pub seg_max: u32,
    pub max_sectors: u32,
    pub cmd_per_lun: u32,
    pub event_info_size: u32,
    pub sense_size: u32,
    pub cdb_size: u32,
    pub max_channel: u16,
    pub max_target: u16,
    pub max_lun: u32,
}

/// The configuration is shorter than the spec's 36 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the virtio-scsi configuration is {0} bytes, shorter than the spec's 36")]
pub struct ShortScsiConfig(pub usize);

impl ScsiConfig {
    pub fn parse(bytes: &[u8]) -> Result<Self, ShortScsiConfig> {
        let b = ConfigBytes(bytes);
        let short = ShortScsiConfig(bytes.len());
        Ok(ScsiConfig {
            num_queues: b.u32(0).ok_or(short)?,
            seg_max: b.u32(4).ok_or(short)?,
            max_sectors: b.u32(8).ok_or(short)?,
            cmd_per_lun: b.u32(12).ok_or(short)?,
            event_info_size: b.u32(16).ok_or(short)?,
            sense_size: b.u32(20).ok_or(short)?,
            cdb_size: b.u32(24).ok_or(short)?,
            max_channel: b.u16(28).ok_or(short)?,
            max_target: b.u16(30).ok_or(short)?,
            max_lun: b.u32(32).ok_or(short)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qemus_defaults() {
        // QEMU 7.2 virtio-scsi-pci with num_queues=2: seg_max 126 (queue 128 - 2),
        // max_sectors 0xFFFF, cmd_per_lun 128, event_info_size 16, sense 96, cdb 32,
        // max_channel 0, max_target 255, max_lun 16383.
        let words: [u32; 7] = [2, 126, 0xffff, 128, 16, 96, 32];
        let mut c: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        c.extend_from_slice(&0u16.to_le_bytes());
        c.extend_from_slice(&255u16.to_le_bytes());
        c.extend_from_slice(&16383u32.to_le_bytes());
        let cfg = ScsiConfig::parse(&c).unwrap();
        assert_eq!(cfg.num_queues, 2);
        assert_eq!(cfg.seg_max, 126);
        assert_eq!(cfg.max_target, 255);
        assert_eq!(cfg.max_lun, 16383);
        assert_eq!(ScsiConfig::parse(&c[..35]), Err(ShortScsiConfig(35)));
    }
}
