//! virtio: device types, feature bits, the modern PCI transport, the open sequence every
//! device type shares, and virtqueues (split and packed).

pub(crate) mod config;
#[cfg(any(test, feature = "fake-device"))]
pub mod fake;
pub mod features;
pub mod layout;
pub mod open;
pub mod packed;
pub mod pci;
pub mod plan;
pub mod queue;
pub mod ring;
pub mod ring_core;
pub mod split;

pub use features::Features;
pub use pci::{DeviceStatus, VirtioPciTransport};

use crate::pci::PciFunction;

/// A virtio device type (virtio 1.2, section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceType {
    Net,
    Block,
    Console,
    Entropy,
    Balloon,
    Scsi,
    NineP,
    Gpu,
    Input,
    Vsock,
    Crypto,
    Iommu,
    Memory,
    Fs,
    Pmem,
    Other(u32),
}

/// Red Hat / Qumranet: the PCI vendor of every virtio function.
pub const VIRTIO_VENDOR_ID: u16 = 0x1af4;

impl DeviceType {
    /// The virtio device type of a PCI function, or `None` when it is not a virtio function.
    ///
    /// Modern functions (0x1040..=0x107f) carry the type in the device ID; transitional ones
    /// (0x1000..=0x103f) carry it in the subsystem device ID (virtio 1.2, 4.1.2.1).
    pub fn of(function: &PciFunction) -> Option<DeviceType> {
        if function.vendor_id != VIRTIO_VENDOR_ID {
            return None;
        }
        match function.device_id {
            0x1040..=0x107f => Some(DeviceType::from_id(u32::from(function.device_id - 0x1040))),
            0x1000..=0x103f => Some(DeviceType::from_id(u32::from(function.subsystem_device_id))),
            _ => None,
        }
    }

    /// True for a modern-only (non-transitional) virtio function.
    pub fn is_modern(function: &PciFunction) -> bool {
        function.vendor_id == VIRTIO_VENDOR_ID && (0x1040..=0x107f).contains(&function.device_id)
    }

    pub fn from_id(id: u32) -> Self {
        match id {
            1 => DeviceType::Net,
            2 => DeviceType::Block,
            3 => DeviceType::Console,
            4 => DeviceType::Entropy,
            5 => DeviceType::Balloon,
            8 => DeviceType::Scsi,
            9 => DeviceType::NineP,
            16 => DeviceType::Gpu,
            18 => DeviceType::Input,
            19 => DeviceType::Vsock,
            20 => DeviceType::Crypto,
            23 => DeviceType::Iommu,
            24 => DeviceType::Memory,
            26 => DeviceType::Fs,
            27 => DeviceType::Pmem,
            other => DeviceType::Other(other),
        }
    }

    /// Short name, as the Linux drivers name the types (`blk`, `scsi`, `net`, ...).
    pub fn name(&self) -> String {
        match self {
            DeviceType::Net => "net".into(),
            DeviceType::Block => "blk".into(),
            DeviceType::Console => "console".into(),
            DeviceType::Entropy => "rng".into(),
            DeviceType::Balloon => "balloon".into(),
            DeviceType::Scsi => "scsi".into(),
            DeviceType::NineP => "9p".into(),
            DeviceType::Gpu => "gpu".into(),
            DeviceType::Input => "input".into(),
            DeviceType::Vsock => "vsock".into(),
            DeviceType::Crypto => "crypto".into(),
            DeviceType::Iommu => "iommu".into(),
            DeviceType::Memory => "mem".into(),
            DeviceType::Fs => "fs".into(),
            DeviceType::Pmem => "pmem".into(),
            DeviceType::Other(id) => format!("type-{id}"),
        }
    }
}
