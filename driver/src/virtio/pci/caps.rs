//! Finding a virtio function's structures: the walk of its PCI capability list for the
//! virtio-pci vendor capabilities (virtio 1.2, 4.1.4), each naming a BAR window.

use super::TransportError;
use crate::pci::PciAddress;
use crate::vfio::VfioError;

/// virtio-pci capability types (virtio 1.2, 4.1.4).
pub(super) mod cap {
    pub const COMMON: u8 = 1;
    pub const NOTIFY: u8 = 2;
    pub const ISR: u8 = 3;
    pub const DEVICE: u8 = 4;
    pub const PCI_CFG: u8 = 5;
}

const PCI_STATUS: u64 = 0x06;
const PCI_STATUS_CAP_LIST: u16 = 0x10;
const PCI_CAPABILITY_LIST: u64 = 0x34;
pub(super) const PCI_CAP_ID_VNDR: u8 = 0x09;

/// Reads PCI config space: `(offset, buffer)`.
pub type ConfigReader<'a> = &'a dyn Fn(u64, &mut [u8]) -> Result<(), VfioError>;

/// Where one virtio structure lives: a window into a BAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StructureWindow {
    pub bar: u8,
    pub offset: u32,
    pub length: u32,
}

/// The virtio-pci capabilities of a function, as the capability walk found them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioCapabilities {
    pub common: StructureWindow,
    pub notify: StructureWindow,
    pub notify_off_multiplier: u32,
    pub isr: StructureWindow,
    pub device: Option<StructureWindow>,
}

/// Walks the PCI capability list with `read` (config-space reads) and returns the first
/// virtio structure of each type. The PCI-config-access capability is skipped: with BARs
/// mapped it is never needed.
pub fn walk_capabilities(
    bdf: PciAddress,
    read: ConfigReader<'_>,
) -> Result<VirtioCapabilities, TransportError> {
    let bad = |what: String| TransportError::BadCapability { bdf, what };
    let mut word = [0u8; 2];
    read(PCI_STATUS, &mut word)?;
    if u16::from_le_bytes(word) & PCI_STATUS_CAP_LIST == 0 {
        return Err(TransportError::NotModern(bdf));
    }
    let mut byte = [0u8; 1];
    read(PCI_CAPABILITY_LIST, &mut byte)?;
    let mut pointer = byte[0] & 0xfc;
    let (mut common, mut notify, mut isr, mut device) = (None, None, None, None);
    let mut multiplier = 0;
    // A config space of 256 bytes holds at most 48 capabilities; more means a loop.
    let mut seen = 0;
    while pointer != 0 {
        seen += 1;
        if seen > 48 || pointer < 0x40 {
            return Err(bad(format!(
                "capability pointer {pointer:#x} loops or points into the header"
            )));
        }
        let mut raw = [0u8; 16];
        read(u64::from(pointer), &mut raw)?;
        let (id, next) = (raw[0], raw[1] & 0xfc);
        if id == PCI_CAP_ID_VNDR {
            let (cap_len, cfg_type, bar) = (raw[2], raw[3], raw[4]);
            let window = StructureWindow {
                bar,
                offset: u32::from_le_bytes([raw[8], raw[9], raw[10], raw[11]]),
                length: u32::from_le_bytes([raw[12], raw[13], raw[14], raw[15]]),
            };
            // Spec: ignore structures in reserved BARs (> 5) and types we do not know.
            let usable = bar <= 5 && cap_len >= 16;
            match cfg_type {
                cap::COMMON if usable && common.is_none() => common = Some(window),
                cap::NOTIFY if usable && notify.is_none() && cap_len >= 20 => {
                    let mut m = [0u8; 4];
                    read(u64::from(pointer) + 16, &mut m)?;
                    multiplier = u32::from_le_bytes(m);
                    notify = Some(window);
                }
                cap::ISR if usable && isr.is_none() => isr = Some(window),
                cap::DEVICE if usable && device.is_none() => device = Some(window),
                cap::PCI_CFG => {}
                _ => {}
            }
        }
        pointer = next;
    }
    match (common, notify, isr) {
        (Some(common), Some(notify), Some(isr)) => Ok(VirtioCapabilities {
            common,
            notify,
            notify_off_multiplier: multiplier,
            isr,
            device,
        }),
        _ => Err(TransportError::NotModern(bdf)),
    }
}
