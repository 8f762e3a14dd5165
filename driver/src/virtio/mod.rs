//! virtio: device types, feature bits, the modern PCI transport and (later) virtqueues.

#[cfg(any(test, feature = "fake-device"))]
pub mod fake;
pub mod features;
pub mod packed;
pub mod pci;
pub mod plan;
pub mod queue;
pub mod ring;
pub mod split;

pub use features::Features;
pub use pci::{DeviceStatus, VirtioPciTransport};

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

impl DeviceType {
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
