//! Feature bits and their spec names.

use super::ring::RingKind;
use super::DeviceType;

bitflags::bitflags! {
    /// A 64-bit virtio feature set. Bits 0..24 are device-specific (so one bit has a name
    /// per device type), 24..41 transport/ring bits.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
    pub struct Features: u64 {
        const INDIRECT_DESC = 1 << 28;
        const EVENT_IDX = 1 << 29;
        const VERSION_1 = 1 << 32;
        const ACCESS_PLATFORM = 1 << 33;
        const RING_PACKED = 1 << 34;

        const BLK_SIZE_MAX = 1 << 1;
        const BLK_SEG_MAX = 1 << 2;
        const BLK_GEOMETRY = 1 << 4;
        const BLK_RO = 1 << 5;
        const BLK_BLK_SIZE = 1 << 6;
        const BLK_FLUSH = 1 << 9;
        const BLK_TOPOLOGY = 1 << 10;
        const BLK_CONFIG_WCE = 1 << 11;
        const BLK_MQ = 1 << 12;
        const BLK_DISCARD = 1 << 13;
        const BLK_WRITE_ZEROES = 1 << 14;

        const SCSI_INOUT = 1 << 0;
        const SCSI_HOTPLUG = 1 << 1;
        const SCSI_CHANGE = 1 << 2;

        // Every bit is kept, known or not: a device's offer is shown whole.
        const _ = !0;
    }
}

impl Features {
    /// The spec names of the set bits, for a device of `device_type`; unknown bits print as
    /// `bit N` so nothing the device offers is hidden.
    pub fn names(self, device_type: DeviceType) -> Vec<String> {
        (0..64)
            .filter(|bit| self.bits() & (1u64 << bit) != 0)
            .map(|bit| feature_name(device_type, bit))
            .collect()
    }
}

/// The spec name of feature `bit` for `device_type` (virtio 1.2, sections 5.2.3, 5.6.3, 6).
pub fn feature_name(device_type: DeviceType, bit: u32) -> String {
    let device_specific = match (device_type, bit) {
        (DeviceType::Block, 0) => Some("VIRTIO_BLK_F_BARRIER"),
        (DeviceType::Block, 1) => Some("VIRTIO_BLK_F_SIZE_MAX"),
        (DeviceType::Block, 2) => Some("VIRTIO_BLK_F_SEG_MAX"),
        (DeviceType::Block, 4) => Some("VIRTIO_BLK_F_GEOMETRY"),
        (DeviceType::Block, 5) => Some("VIRTIO_BLK_F_RO"),
        (DeviceType::Block, 6) => Some("VIRTIO_BLK_F_BLK_SIZE"),
        (DeviceType::Block, 7) => Some("VIRTIO_BLK_F_SCSI"),
        (DeviceType::Block, 9) => Some("VIRTIO_BLK_F_FLUSH"),
        (DeviceType::Block, 10) => Some("VIRTIO_BLK_F_TOPOLOGY"),
        (DeviceType::Block, 11) => Some("VIRTIO_BLK_F_CONFIG_WCE"),
        (DeviceType::Block, 12) => Some("VIRTIO_BLK_F_MQ"),
        (DeviceType::Block, 13) => Some("VIRTIO_BLK_F_DISCARD"),
        (DeviceType::Block, 14) => Some("VIRTIO_BLK_F_WRITE_ZEROES"),
        (DeviceType::Block, 15) => Some("VIRTIO_BLK_F_LIFETIME"),
        (DeviceType::Block, 16) => Some("VIRTIO_BLK_F_SECURE_ERASE"),
        (DeviceType::Block, 17) => Some("VIRTIO_BLK_F_ZONED"),
        (DeviceType::Scsi, 0) => Some("VIRTIO_SCSI_F_INOUT"),
        (DeviceType::Scsi, 1) => Some("VIRTIO_SCSI_F_HOTPLUG"),
        (DeviceType::Scsi, 2) => Some("VIRTIO_SCSI_F_CHANGE"),
        (DeviceType::Scsi, 3) => Some("VIRTIO_SCSI_F_T10_PI"),
        _ => None,
    };
    let transport = match bit {
        24 => Some("VIRTIO_F_NOTIFY_ON_EMPTY"),
        27 => Some("VIRTIO_F_ANY_LAYOUT"),
        28 => Some("VIRTIO_F_INDIRECT_DESC"),
        29 => Some("VIRTIO_F_EVENT_IDX"),
        32 => Some("VIRTIO_F_VERSION_1"),
        33 => Some("VIRTIO_F_ACCESS_PLATFORM"),
        34 => Some("VIRTIO_F_RING_PACKED"),
        35 => Some("VIRTIO_F_IN_ORDER"),
        36 => Some("VIRTIO_F_ORDER_PLATFORM"),
        37 => Some("VIRTIO_F_SR_IOV"),
        38 => Some("VIRTIO_F_NOTIFICATION_DATA"),
        39 => Some("VIRTIO_F_NOTIF_CONFIG_DATA"),
        40 => Some("VIRTIO_F_RING_RESET"),
        41 => Some("VIRTIO_F_ADMIN_VQ"),
        _ => None,
    };
    device_specific
        .or(transport)
        .map(str::to_string)
        .unwrap_or_else(|| format!("bit {bit}"))
}

/// The features uvio's driver for `device_type` knows how to use, offered back to the device.
pub fn driver_features(device_type: DeviceType, ring_kind: RingKind) -> Features {
    let ring = Features::VERSION_1
        | Features::ACCESS_PLATFORM
        | Features::INDIRECT_DESC
        | Features::EVENT_IDX;
    let ring = match ring_kind {
        RingKind::Auto => ring | Features::RING_PACKED,
        RingKind::Split => ring,
    };
    let device = match device_type {
        DeviceType::Block => {
            Features::BLK_SIZE_MAX
                | Features::BLK_SEG_MAX
                | Features::BLK_GEOMETRY
                | Features::BLK_RO
                | Features::BLK_BLK_SIZE
                | Features::BLK_FLUSH
                | Features::BLK_TOPOLOGY
                | Features::BLK_CONFIG_WCE
                | Features::BLK_MQ
                | Features::BLK_DISCARD
                | Features::BLK_WRITE_ZEROES
        }
        DeviceType::Scsi => Features::SCSI_INOUT | Features::SCSI_HOTPLUG | Features::SCSI_CHANGE,
        _ => Features::default(),
    };
    ring | device
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_features_qemu_offers_for_virtio_blk() {
        // Device features QEMU 7.2 offered for virtio-blk in the test guest (guest-testbed.md).
        let offered = Features::from_bits_retain(0x0000_0103_3000_7e54);
        let names = offered.names(DeviceType::Block);
        for expected in [
            "VIRTIO_BLK_F_SEG_MAX",
            "VIRTIO_BLK_F_MQ",
            "VIRTIO_BLK_F_WRITE_ZEROES",
            "VIRTIO_F_INDIRECT_DESC",
            "VIRTIO_F_EVENT_IDX",
            "VIRTIO_F_VERSION_1",
            "VIRTIO_F_ACCESS_PLATFORM",
            "VIRTIO_F_RING_RESET",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} missing from {names:?}"
            );
        }
        assert_eq!(names.len(), offered.bits().count_ones() as usize);
        assert_eq!(feature_name(DeviceType::Scsi, 1), "VIRTIO_SCSI_F_HOTPLUG");
        assert_eq!(feature_name(DeviceType::Scsi, 20), "bit 20");
    }

    #[test]
    fn driver_features_always_include_the_required_bits() {
        for t in [DeviceType::Block, DeviceType::Scsi] {
            let auto = driver_features(t, RingKind::Auto);
            assert!(auto.contains(Features::VERSION_1 | Features::ACCESS_PLATFORM));
            assert!(
                auto.contains(Features::RING_PACKED),
                "packed whenever offered"
            );
            let split = driver_features(t, RingKind::Split);
            assert!(!split.contains(Features::RING_PACKED));
            assert!(split.contains(Features::VERSION_1 | Features::ACCESS_PLATFORM));
        }
    }
}
