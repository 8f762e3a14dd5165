//! The virtio-pci modern transport (virtio 1.2, section 4.1) over a VFIO device: the
//! capability walk, the common configuration registers, the status handshake with feature
//! negotiation, and the device configuration read with the generation retry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::features::Features;
use super::queue::Virtqueue;
use super::DeviceType;
use crate::pci::{PciAddress, PciFunction};
use crate::vfio::{MappedBar, RemovalSignal, RemovalWatch, VfioDevice, VfioError};

/// Errors from the virtio-pci transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(transparent)]
    Vfio(#[from] VfioError),
    #[error("{0} is not a virtio function")]
    NotVirtio(PciAddress),
    #[error(
        "{0} has no virtio-pci modern capabilities (is it a legacy-only device? give QEMU's \
         device `disable-legacy=on`)"
    )]
    NotModern(PciAddress),
    #[error("{bdf}: malformed PCI capability list: {what}")]
    BadCapability { bdf: PciAddress, what: String },
    #[error(
        "{bdf}: the device did not finish its reset within {0:?}",
        RESET_TIMEOUT
    )]
    ResetTimeout { bdf: PciAddress },
    #[error("{bdf} was removed (hot-unplug): the device no longer answers")]
    Removed { bdf: PciAddress },
    #[error(
        "{bdf} does not offer {missing:?}, which uvio requires (VFIO in a guest needs \
         VIRTIO_F_ACCESS_PLATFORM: give QEMU's device `iommu_platform=on`)"
    )]
    MissingFeatures {
        bdf: PciAddress,
        missing: Vec<String>,
    },
    #[error("{bdf} refused the negotiated features (FEATURES_OK did not stick)")]
    FeaturesRejected { bdf: PciAddress },
    #[error("{bdf}: the device configuration kept changing while being read")]
    ConfigUnstable { bdf: PciAddress },
    #[error("{bdf}: virtqueue {index} does not exist (the device has {available})")]
    NoSuchQueue {
        bdf: PciAddress,
        index: u16,
        available: u16,
    },
    #[error("{bdf}: virtqueue {index} takes at most {max} entries, not {wanted}")]
    QueueTooLarge {
        bdf: PciAddress,
        index: u16,
        max: u16,
        wanted: u16,
    },
    #[error("{bdf}: the device needs a reset (DEVICE_NEEDS_RESET is set)")]
    NeedsReset { bdf: PciAddress },
    #[error("{bdf}: after a reset the device no longer accepts the features it had ({before}); it now takes {now}: close and open it again")]
    FeaturesChanged {
        bdf: PciAddress,
        before: String,
        now: String,
    },
    #[error("{bdf}: register access at {offset:#x} falls outside the {area} structure")]
    Register {
        bdf: PciAddress,
        area: &'static str,
        offset: usize,
    },
}

const RESET_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a reset may take once the kernel asked for the device back: the release must not
/// wait out [`RESET_TIMEOUT`] for a device that may be gone already.
const REMOVED_RESET_TIMEOUT: Duration = Duration::from_millis(100);

bitflags::bitflags! {
    /// Device status bits (virtio 1.2, 2.1).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct DeviceStatus: u8 {
        const ACKNOWLEDGE = 1;
        const DRIVER = 2;
        const DRIVER_OK = 4;
        const FEATURES_OK = 8;
        const DEVICE_NEEDS_RESET = 64;
        const FAILED = 128;
        // A device may set bits this driver does not know; they are kept as read.
        const _ = !0;
    }
}

/// Common configuration register offsets (virtio 1.2, 4.1.4.3).
mod caps;

#[cfg(test)]
use caps::{cap, PCI_CAP_ID_VNDR};
pub use caps::{walk_capabilities, ConfigReader, StructureWindow, VirtioCapabilities};

mod common {
    pub const DEVICE_FEATURE_SELECT: usize = 0;
    pub const DEVICE_FEATURE: usize = 4;
    pub const DRIVER_FEATURE_SELECT: usize = 8;
    pub const DRIVER_FEATURE: usize = 12;
    pub const CONFIG_MSIX_VECTOR: usize = 16;
    pub const NUM_QUEUES: usize = 18;
    pub const DEVICE_STATUS: usize = 20;
    pub const CONFIG_GENERATION: usize = 21;
    pub const QUEUE_SELECT: usize = 22;
    pub const QUEUE_SIZE: usize = 24;
    pub const QUEUE_MSIX_VECTOR: usize = 26;
    pub const QUEUE_ENABLE: usize = 28;
    pub const QUEUE_NOTIFY_OFF: usize = 30;
    pub const QUEUE_DESC: usize = 32;
    pub const QUEUE_DRIVER: usize = 40;
    pub const QUEUE_DEVICE: usize = 48;
}

/// "No MSI-X vector": polled queues raise no interrupt at all.
const NO_VECTOR: u16 = 0xffff;
const PCI_COMMAND: u64 = 0x04;
const PCI_COMMAND_MEMORY: u16 = 0x2;
const PCI_COMMAND_MASTER: u16 = 0x4;

/// One field of a device configuration structure: where it is and how wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigField {
    pub offset: usize,
    pub width: usize,
}

/// Shorthand for a table of fields: `(offset, width)` pairs.
pub const fn field(offset: usize, width: usize) -> ConfigField {
    ConfigField { offset, width }
}

/// A virtio function driven through the modern PCI transport over VFIO. Dropping it resets
/// the device, so nothing is left running behind the process.
pub struct VirtioPciTransport {
    bdf: PciAddress,
    device_type: DeviceType,
    capabilities: VirtioCapabilities,
    bars: Vec<Option<Arc<MappedBar>>>,
    negotiated: Features,
    /// VFIO's device request notifier: raised when the kernel asks for the function back
    /// (`None` when the kernel offers no request interrupt).
    removal: Option<RemovalWatch>,
    // Declared last so the BAR mappings are gone before the device fd closes.
    vfio: Arc<VfioDevice>,
}

impl std::fmt::Debug for VirtioPciTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtioPciTransport")
            .field("bdf", &self.bdf)
            .field("device_type", &self.device_type)
            .field("capabilities", &self.capabilities)
            .finish()
    }
}

impl VirtioPciTransport {
    /// Opens `function` through VFIO, maps the BARs holding its virtio structures and
    /// watches for the kernel asking for the function back (see [`removal`](Self::removal)).
    pub fn open(function: &PciFunction) -> Result<Self, TransportError> {
        let bdf = function.address;
        let device_type = DeviceType::of(function).ok_or(TransportError::NotVirtio(bdf))?;
        let vfio = Arc::new(VfioDevice::open(function)?);
        let removal = vfio
            .watch_removal()
            .inspect_err(|e| log::warn!("{bdf}: hot-unplug will go unnoticed: {e}"))
            .ok();
        let capabilities = walk_capabilities(bdf, &|offset, buf| vfio.read_config(offset, buf))?;
        let mut windows = vec![capabilities.common, capabilities.notify, capabilities.isr];
        windows.extend(capabilities.device);
        let mut bars: Vec<Option<Arc<MappedBar>>> = (0..6).map(|_| None).collect();
        for window in windows {
            let slot = &mut bars[usize::from(window.bar)];
            if slot.is_none() {
                *slot = Some(Arc::new(vfio.map_bar(u32::from(window.bar))?));
            }
            let bar_len = slot.as_ref().map_or(0, |b| b.len()) as u64;
            if u64::from(window.offset) + u64::from(window.length) > bar_len {
                return Err(TransportError::BadCapability {
                    bdf,
                    what: format!(
                        "structure at BAR{} {:#x}+{:#x} exceeds the BAR's {bar_len:#x} bytes",
                        window.bar, window.offset, window.length
                    ),
                });
            }
        }
        Ok(VirtioPciTransport {
            bdf,
            device_type,
            capabilities,
            bars,
            negotiated: Features::default(),
            removal,
            vfio,
        })
    }

    /// The flag VFIO's device request raises when the kernel asks for the function back
    /// (hot-unplug): once it is up, stop, fail what is in flight and drop the device, whose
    /// removal waits for that. `None` when the kernel offers no request interrupt.
    pub fn removal(&self) -> Option<&RemovalSignal> {
        self.removal.as_ref().map(RemovalWatch::signal)
    }

    /// True once the kernel asked for the function back (see [`removal`](Self::removal)).
    pub fn removed(&self) -> bool {
        self.removal.as_ref().is_some_and(RemovalWatch::is_removed)
    }

    pub fn bdf(&self) -> PciAddress {
        self.bdf
    }

    pub fn device_type(&self) -> DeviceType {
        self.device_type
    }

    pub fn capabilities(&self) -> &VirtioCapabilities {
        &self.capabilities
    }

    pub fn vfio(&self) -> &Arc<VfioDevice> {
        &self.vfio
    }

    /// The features accepted in the last successful [`negotiate`](Self::negotiate).
    pub fn negotiated_features(&self) -> Features {
        self.negotiated
    }

    fn window_bar(
        &self,
        window: StructureWindow,
        area: &'static str,
        offset: usize,
        size: usize,
    ) -> Result<(&MappedBar, usize), TransportError> {
        let err = TransportError::Register {
            bdf: self.bdf,
            area,
            offset,
        };
        if offset + size > window.length as usize {
            return Err(err);
        }
        let bar = self.bars[usize::from(window.bar)].as_deref().ok_or(err)?;
        Ok((bar, window.offset as usize + offset))
    }

    fn common_read_u8(&self, offset: usize) -> Result<u8, TransportError> {
        let (bar, at) = self.window_bar(self.capabilities.common, "common", offset, 1)?;
        bar.read_u8(at).ok_or(TransportError::Register {
            bdf: self.bdf,
            area: "common",
            offset,
        })
    }

    fn common_write_u8(&self, offset: usize, value: u8) -> Result<(), TransportError> {
        let (bar, at) = self.window_bar(self.capabilities.common, "common", offset, 1)?;
        bar.write_u8(at, value)
            .then_some(())
            .ok_or(TransportError::Register {
                bdf: self.bdf,
                area: "common",
                offset,
            })
    }

    fn common_read_u16(&self, offset: usize) -> Result<u16, TransportError> {
        let (bar, at) = self.window_bar(self.capabilities.common, "common", offset, 2)?;
        bar.read_u16(at).ok_or(TransportError::Register {
            bdf: self.bdf,
            area: "common",
            offset,
        })
    }

    fn common_read_u32(&self, offset: usize) -> Result<u32, TransportError> {
        let (bar, at) = self.window_bar(self.capabilities.common, "common", offset, 4)?;
        bar.read_u32(at).ok_or(TransportError::Register {
            bdf: self.bdf,
            area: "common",
            offset,
        })
    }

    fn common_write_u32(&self, offset: usize, value: u32) -> Result<(), TransportError> {
        let (bar, at) = self.window_bar(self.capabilities.common, "common", offset, 4)?;
        bar.write_u32(at, value)
            .then_some(())
            .ok_or(TransportError::Register {
                bdf: self.bdf,
                area: "common",
                offset,
            })
    }

    pub fn status(&self) -> Result<DeviceStatus, TransportError> {
        self.common_read_u8(common::DEVICE_STATUS)
            .map(DeviceStatus::from_bits_retain)
    }

    fn add_status(&self, bits: DeviceStatus) -> Result<(), TransportError> {
        let now = self.status()?;
        self.common_write_u8(common::DEVICE_STATUS, (now | bits).bits())
    }

    /// Resets the device and waits until it reads back status 0 (virtio 1.2, 4.1.4.3.2).
    /// Once the function is [`removed`](Self::removed) the wait is short, and a status of
    /// all ones (what reads of a function no longer there return) ends it at once.
    pub fn reset(&mut self) -> Result<(), TransportError> {
        self.common_write_u8(common::DEVICE_STATUS, 0)?;
        let start = Instant::now();
        loop {
            let status = self.status()?;
            if status.is_empty() {
                break;
            }
            if status.bits() == 0xff {
                return Err(TransportError::Removed { bdf: self.bdf });
            }
            let removed = self.removed();
            let limit = if removed {
                REMOVED_RESET_TIMEOUT
            } else {
                RESET_TIMEOUT
            };
            if start.elapsed() > limit {
                return Err(if removed {
                    TransportError::Removed { bdf: self.bdf }
                } else {
                    TransportError::ResetTimeout { bdf: self.bdf }
                });
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        self.negotiated = Features::default();
        Ok(())
    }

    /// Stops the device (reset) and only then lets `dma` release the memory the device
    /// could reach. If the reset fails the memory stays mapped: a leak, never a stray write.
    pub fn stop(&mut self, dma: &crate::dma::DmaSpace) {
        match self.reset() {
            Ok(()) => dma.quiesce(),
            Err(e) => log::error!(
                "{}: reset failed ({e}); its DMA memory stays mapped",
                self.bdf
            ),
        }
    }

    /// The features the device offers.
    pub fn device_features(&self) -> Result<Features, TransportError> {
        let mut value = 0u64;
        for select in 0..2u32 {
            self.common_write_u32(common::DEVICE_FEATURE_SELECT, select)?;
            value |= u64::from(self.common_read_u32(common::DEVICE_FEATURE)?) << (32 * select);
        }
        Ok(Features::from_bits_retain(value))
    }

    /// Runs the initialisation handshake up to FEATURES_OK (virtio 1.2, 3.1.1): reset,
    /// ACKNOWLEDGE, DRIVER, offer `wanted` ∩ device features, FEATURES_OK and read it back.
    /// Fails (leaving the device FAILED) when the device lacks any of `required`.
    pub fn negotiate(
        &mut self,
        wanted: Features,
        required: Features,
    ) -> Result<Features, TransportError> {
        self.reset()?;
        self.add_status(DeviceStatus::ACKNOWLEDGE)?;
        self.add_status(DeviceStatus::DRIVER)?;
        let offered = self.device_features()?;
        let missing = required.difference(offered);
        if !missing.is_empty() {
            self.add_status(DeviceStatus::FAILED)?;
            return Err(TransportError::MissingFeatures {
                bdf: self.bdf,
                missing: missing.names(self.device_type),
            });
        }
        let accepted = offered.intersection(wanted.union(required));
        for select in 0..2u32 {
            self.common_write_u32(common::DRIVER_FEATURE_SELECT, select)?;
            self.common_write_u32(
                common::DRIVER_FEATURE,
                (accepted.bits() >> (32 * select)) as u32,
            )?;
        }
        self.add_status(DeviceStatus::FEATURES_OK)?;
        if !self.status()?.contains(DeviceStatus::FEATURES_OK) {
            self.add_status(DeviceStatus::FAILED)?;
            return Err(TransportError::FeaturesRejected { bdf: self.bdf });
        }
        self.negotiated = accepted;
        Ok(accepted)
    }

    fn common_write_u16(&self, offset: usize, value: u16) -> Result<(), TransportError> {
        let (bar, at) = self.window_bar(self.capabilities.common, "common", offset, 2)?;
        bar.write_u16(at, value)
            .then_some(())
            .ok_or(TransportError::Register {
                bdf: self.bdf,
                area: "common",
                offset,
            })
    }

    fn common_write_u64(&self, offset: usize, value: u64) -> Result<(), TransportError> {
        // Two 32-bit halves, low first: what every virtio-pci device accepts.
        self.common_write_u32(offset, value as u32)?;
        self.common_write_u32(offset + 4, (value >> 32) as u32)
    }

    /// Turns on memory decoding and bus mastering, without which the function cannot DMA.
    pub fn enable_bus_master(&self) -> Result<(), TransportError> {
        let command = self.vfio.read_config_u16(PCI_COMMAND)?;
        let wanted = command | PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY;
        if wanted != command {
            self.vfio.write_config(PCI_COMMAND, &wanted.to_le_bytes())?;
        }
        Ok(())
    }

    /// The largest ring the device accepts for queue `index`.
    pub fn queue_max_size(&self, index: u16) -> Result<u16, TransportError> {
        let available = self.num_queues()?;
        if index >= available {
            return Err(TransportError::NoSuchQueue {
                bdf: self.bdf,
                index,
                available,
            });
        }
        self.common_write_u16(common::QUEUE_SELECT, index)?;
        self.common_read_u16(common::QUEUE_SIZE)
    }

    /// Programs `queue` as virtqueue `index` with no interrupt vector, enables it, and returns
    /// the doorbell to ring for it. Call between [`negotiate`](Self::negotiate) and
    /// [`driver_ok`](Self::driver_ok).
    pub fn setup_queue(
        &self,
        index: u16,
        queue: &dyn Virtqueue,
    ) -> Result<QueueNotifier, TransportError> {
        let max = self.queue_max_size(index)?;
        if queue.size() > max {
            return Err(TransportError::QueueTooLarge {
                bdf: self.bdf,
                index,
                max,
                wanted: queue.size(),
            });
        }
        let addresses = queue.addresses();
        self.common_write_u16(common::QUEUE_SIZE, queue.size())?;
        self.common_write_u16(common::QUEUE_MSIX_VECTOR, NO_VECTOR)?;
        self.common_write_u64(common::QUEUE_DESC, addresses.descriptors)?;
        self.common_write_u64(common::QUEUE_DRIVER, addresses.driver)?;
        self.common_write_u64(common::QUEUE_DEVICE, addresses.device)?;
        let notify_off = self.common_read_u16(common::QUEUE_NOTIFY_OFF)?;
        self.common_write_u16(common::QUEUE_ENABLE, 1)?;
        let window = self.capabilities.notify;
        let offset = usize::from(notify_off) * self.capabilities.notify_off_multiplier as usize;
        let (_, at) = self.window_bar(window, "notify", offset, 2)?;
        if at % 2 != 0 {
            // A 16-bit doorbell at an odd address could never be written.
            return Err(TransportError::Register {
                bdf: self.bdf,
                area: "notify (misaligned)",
                offset,
            });
        }
        let bar = Arc::clone(self.bars[usize::from(window.bar)].as_ref().ok_or(
            TransportError::Register {
                bdf: self.bdf,
                area: "notify",
                offset,
            },
        )?);
        Ok(QueueNotifier {
            bar: Some(bar),
            offset: at,
            index,
        })
    }

    /// A probe of the device status register for a queue's owner, which holds no transport:
    /// how a polled queue notices DEVICE_NEEDS_RESET (see [`StatusProbe`]).
    pub fn status_probe(&self) -> Result<StatusProbe, TransportError> {
        let offset = common::DEVICE_STATUS;
        let (_, at) = self.window_bar(self.capabilities.common, "common", offset, 1)?;
        let bar = self.bars[usize::from(self.capabilities.common.bar)]
            .as_ref()
            .map(Arc::clone)
            .ok_or(TransportError::Register {
                bdf: self.bdf,
                area: "common",
                offset,
            })?;
        Ok(StatusProbe { bar, offset: at })
    }

    /// Resets the device and brings it up again with the features it had (virtio 1.2,
    /// 3.1.1), up to FEATURES_OK: the caller then programs its queues again and sets
    /// DRIVER_OK. Fails if the device no longer accepts the same features.
    pub fn renegotiate(&mut self) -> Result<(), TransportError> {
        let before = self.negotiated;
        let now = self.negotiate(before, before)?;
        if now != before {
            self.add_status(DeviceStatus::FAILED)?;
            return Err(TransportError::FeaturesChanged {
                bdf: self.bdf,
                before: before.names(self.device_type).join(" "),
                now: now.names(self.device_type).join(" "),
            });
        }
        Ok(())
    }

    /// Sets DRIVER_OK: the device may now use the queues.
    pub fn driver_ok(&self) -> Result<(), TransportError> {
        self.common_write_u16(common::CONFIG_MSIX_VECTOR, NO_VECTOR)?;
        self.add_status(DeviceStatus::DRIVER_OK)?;
        self.check_status()
    }

    /// Fails when the device has flagged DEVICE_NEEDS_RESET.
    pub fn check_status(&self) -> Result<(), TransportError> {
        if self.status()?.contains(DeviceStatus::DEVICE_NEEDS_RESET) {
            return Err(TransportError::NeedsReset { bdf: self.bdf });
        }
        Ok(())
    }

    /// The configuration generation: it changes whenever the device configuration does.
    pub fn config_generation(&self) -> Result<u8, TransportError> {
        self.common_read_u8(common::CONFIG_GENERATION)
    }

    /// The number of virtqueues the device has.
    pub fn num_queues(&self) -> Result<u16, TransportError> {
        self.common_read_u16(common::NUM_QUEUES)
    }

    /// Length of the device-specific configuration structure (0 if the device has none).
    pub fn device_config_len(&self) -> usize {
        self.capabilities.device.map_or(0, |w| w.length as usize)
    }

    /// Reads the device configuration fields `fields` into a little-endian image of the
    /// structure (bytes of fields not asked for stay zero), each field with its natural width
    /// as the spec requires (64-bit ones as two 32-bit halves), retrying until
    /// `config_generation` is the same before and after so no value is torn (virtio 1.2, 2.5.1
    /// and 4.1.3.1). Fields past the end of the structure are not read.
    pub fn read_device_config(&self, fields: &[ConfigField]) -> Result<Vec<u8>, TransportError> {
        let Some(window) = self.capabilities.device else {
            return Ok(Vec::new());
        };
        let fields: Vec<ConfigField> = fields
            .iter()
            .copied()
            .filter(|f| f.offset + f.width <= window.length as usize)
            .collect();
        let len = fields.iter().map(|f| f.offset + f.width).max().unwrap_or(0);
        let register = |offset| TransportError::Register {
            bdf: self.bdf,
            area: "device config",
            offset,
        };
        for _ in 0..1000 {
            let before = self.common_read_u8(common::CONFIG_GENERATION)?;
            let mut bytes = vec![0u8; len];
            for field in &fields {
                let (bar, at) =
                    self.window_bar(window, "device config", field.offset, field.width)?;
                let out = &mut bytes[field.offset..field.offset + field.width];
                match field.width {
                    1 => out[0] = bar.read_u8(at).ok_or(register(field.offset))?,
                    2 => out.copy_from_slice(
                        &bar.read_u16(at)
                            .ok_or(register(field.offset))?
                            .to_le_bytes(),
                    ),
                    4 => out.copy_from_slice(
                        &bar.read_u32(at)
                            .ok_or(register(field.offset))?
                            .to_le_bytes(),
                    ),
                    8 => {
                        let low = bar.read_u32(at).ok_or(register(field.offset))?;
                        let high = bar.read_u32(at + 4).ok_or(register(field.offset + 4))?;
                        out[..4].copy_from_slice(&low.to_le_bytes());
                        out[4..].copy_from_slice(&high.to_le_bytes());
                    }
                    _ => return Err(register(field.offset)),
                }
            }
            if self.common_read_u8(common::CONFIG_GENERATION)? == before {
                return Ok(bytes);
            }
        }
        Err(TransportError::ConfigUnstable { bdf: self.bdf })
    }
}

/// A read of one device's status register, cheap enough to make every 100 ms from a queue's
/// poll loop (one MMIO read).
#[derive(Debug, Clone)]
pub struct StatusProbe {
    bar: Arc<MappedBar>,
    offset: usize,
}

impl StatusProbe {
    /// True once the device has set DEVICE_NEEDS_RESET. A read that fails, or returns all
    /// ones (a function no longer there), says nothing: removal is noticed elsewhere.
    pub fn needs_reset(&self) -> bool {
        match self.bar.read_u8(self.offset) {
            None | Some(0xff) => false,
            Some(status) => {
                DeviceStatus::from_bits_retain(status).contains(DeviceStatus::DEVICE_NEEDS_RESET)
            }
        }
    }
}

/// The doorbell of one virtqueue: a 16-bit write of the queue index into the notify area.
/// Owned by the thread that owns the queue; the write is the only cost of a notification.
#[derive(Debug)]
pub struct QueueNotifier {
    /// `None` for a queue whose device lives in this process (tests, the host benchmark).
    bar: Option<Arc<MappedBar>>,
    offset: usize,
    index: u16,
}

impl QueueNotifier {
    #[inline]
    pub fn notify(&self) {
        if let Some(bar) = &self.bar {
            // The offset was bounds-checked against the notify window at queue setup.
            let written = bar.write_u16(self.offset, self.index);
            debug_assert!(written);
        }
    }

    /// A doorbell that rings nothing, for a device simulated in this process: it polls.
    #[cfg(any(test, feature = "fake-device"))]
    pub fn detached(index: u16) -> Self {
        QueueNotifier {
            bar: None,
            offset: 0,
            index,
        }
    }

    pub fn queue_index(&self) -> u16 {
        self.index
    }
}

impl Drop for VirtioPciTransport {
    fn drop(&mut self) {
        // Leave the device reset so it stops touching memory that is about to be unmapped.
        if let Err(e) = self.reset() {
            log::warn!("{}: reset on close failed: {e}", self.bdf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Config space of QEMU 7.2's virtio-blk-pci (disable-legacy=on) as a guest reads it:
    /// MSI-X cap at 0x98, then the vendor caps common/ISR/device/notify/pci-cfg at 0x84..0x40.
    fn qemu_config_space() -> Vec<u8> {
        let mut c = vec![0u8; 256];
        c[0x06] = 0x10; // status: capability list
        c[0x34] = 0x98;
        c[0x98] = 0x11; // MSI-X
        c[0x99] = 0x84;
        let mut vndr = |at: usize, next: u8, len: u8, ty: u8, bar: u8, off: u32, length: u32| {
            c[at] = PCI_CAP_ID_VNDR;
            c[at + 1] = next;
            c[at + 2] = len;
            c[at + 3] = ty;
            c[at + 4] = bar;
            c[at + 8..at + 12].copy_from_slice(&off.to_le_bytes());
            c[at + 12..at + 16].copy_from_slice(&length.to_le_bytes());
        };
        vndr(0x84, 0x70, 20, cap::PCI_CFG, 0, 0, 0);
        vndr(0x70, 0x60, 20, cap::NOTIFY, 4, 0x3000, 0x1000);
        vndr(0x60, 0x50, 16, cap::DEVICE, 4, 0x2000, 0x1000);
        vndr(0x50, 0x40, 16, cap::ISR, 4, 0x1000, 0x1000);
        vndr(0x40, 0x00, 16, cap::COMMON, 4, 0x0000, 0x1000);
        c[0x70 + 16..0x70 + 20].copy_from_slice(&4u32.to_le_bytes());
        c
    }

    fn reader(space: Vec<u8>) -> impl Fn(u64, &mut [u8]) -> Result<(), VfioError> {
        move |offset, buf| {
            let o = offset as usize;
            buf.copy_from_slice(&space[o..o + buf.len()]);
            Ok(())
        }
    }

    fn bdf() -> PciAddress {
        "0000:00:05.0".parse().unwrap()
    }

    #[test]
    fn finds_the_modern_structures() {
        let caps = walk_capabilities(bdf(), &reader(qemu_config_space())).unwrap();
        assert_eq!(
            caps.common,
            StructureWindow {
                bar: 4,
                offset: 0,
                length: 0x1000
            }
        );
        assert_eq!(caps.isr.offset, 0x1000);
        assert_eq!(caps.device.unwrap().offset, 0x2000);
        assert_eq!(caps.notify.offset, 0x3000);
        assert_eq!(caps.notify_off_multiplier, 4);
    }

    #[test]
    fn refuses_a_legacy_device_and_a_looping_list() {
        let mut legacy = qemu_config_space();
        legacy[0x34] = 0x98;
        legacy[0x99] = 0; // only the MSI-X cap
        assert!(matches!(
            walk_capabilities(bdf(), &reader(legacy)),
            Err(TransportError::NotModern(_))
        ));
        let mut looping = qemu_config_space();
        looping[0x41] = 0x98; // common -> MSI-X -> ... forever
        assert!(matches!(
            walk_capabilities(bdf(), &reader(looping)),
            Err(TransportError::BadCapability { .. })
        ));
        let mut no_caps = qemu_config_space();
        no_caps[0x06] = 0;
        assert!(matches!(
            walk_capabilities(bdf(), &reader(no_caps)),
            Err(TransportError::NotModern(_))
        ));
    }
}
