//! Opening what a tool names as DEVICE: a virtio-blk function by its BDF, or a disk LUN of
//! a virtio-scsi host as `BDF/C:T:L` (for example `0000:00:04.0/0:2:5`).

use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use uvio::blk::{BlkOptions, VirtioBlk};
use uvio::block::{BlockDevice, HwQueue, Unit};
use uvio::dma::DmaSpace;
use uvio::pci::{PciAddress, Sysfs};
use uvio::scsi::host::{ScsiOptions, VirtioScsiHost};
use uvio::virtio::plan::DepthRequest;
use uvio::virtio::ring::RingKind;
use uvio::virtio::DeviceType;

/// A device argument: a function, and for a SCSI host the LUN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub bdf: PciAddress,
    /// channel, target, LUN
    pub lun: Option<(u16, u16, u16)>,
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (bdf, lun) = match s.split_once('/') {
            Some((bdf, ctl)) => {
                let parts: Vec<&str> = ctl.split(':').collect();
                let bad =
                    || format!("`{ctl}` is not a LUN address: expected C:T:L, for example 0:2:5");
                let [c, t, l] = parts.as_slice() else {
                    return Err(bad());
                };
                let n = |x: &str| x.parse::<u16>().map_err(|_| bad());
                (bdf, Some((n(c)?, n(t)?, n(l)?)))
            }
            None => (s, None),
        };
        let bdf = bdf.parse::<PciAddress>().map_err(|e| e.to_string())?;
        Ok(Target { bdf, lun })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.lun {
            Some((c, t, l)) => write!(f, "{}/{c}:{t}:{l}", self.bdf),
            None => self.bdf.fmt(f),
        }
    }
}

/// How many hardware queues and tags a tool wants.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueRequest {
    /// Hardware queues; `None`: all the device has.
    pub queues: Option<u16>,
    /// Tags per queue (`depth: None`: the device's default).
    pub depth: DepthRequest,
}

/// The ring format every device is opened with (`uvio --ring`), set once by `main`.
static RING: OnceLock<RingKind> = OnceLock::new();

/// Sets the ring format for every device this process opens.
pub fn set_ring(kind: RingKind) {
    let _ = RING.set(kind);
}

/// The ring format to open devices with: packed when offered, unless `--ring split`.
pub fn ring() -> RingKind {
    RING.get().copied().unwrap_or_default()
}

/// What keeps the device open.
enum Keep {
    Blk(#[allow(dead_code)] Box<VirtioBlk>),
    Scsi(Box<VirtioScsiHost>),
}

/// An opened block device with its hardware queues, ready to be handed to threads. Every
/// request is submitted for the device's unit (`device.unit()`): it names the LUN on a
/// SCSI host.
pub struct OpenedDevice {
    pub device: BlockDevice,
    pub queues: Vec<HwQueue>,
    pub dma: Arc<DmaSpace>,
    /// Keeps the device open (and resets it when dropped, after the queues are done).
    _keep: Keep,
}

impl OpenedDevice {
    /// Another disk LUN of the same virtio-scsi host, bound to its unit. Its requests go
    /// through this device's queues, which all the host's LUNs share.
    pub fn other_lun(&self, target: Target) -> Result<BlockDevice, Box<dyn std::error::Error>> {
        match (&self._keep, target.lun) {
            (Keep::Scsi(host), Some((0, t, l))) => Ok(host.disk(t, l)?),
            (Keep::Scsi(_), Some((channel, _, _))) => {
                Err(format!("virtio-scsi has only channel 0, not {channel}").into())
            }
            (Keep::Scsi(_), None) => Err(format!(
                "{} is a virtio-scsi host: name a LUN as {}/C:T:L",
                target.bdf, target.bdf
            )
            .into()),
            (Keep::Blk(_), _) => Err(format!(
                "{target}: {} is virtio-blk, a single disk: name it once, without a LUN",
                target.bdf
            )
            .into()),
        }
    }
}

/// A virtio-scsi host with one request queue, for the control-path tools (`uvio reset`,
/// `uvio scan --watch`).
pub fn open_scsi_host(bdf: PciAddress) -> Result<VirtioScsiHost, Box<dyn std::error::Error>> {
    let function = Sysfs::system().pci_function(bdf)?;
    let options = ScsiOptions {
        queues: Some(1),
        ring: ring(),
        ..Default::default()
    };
    Ok(VirtioScsiHost::open(&function, &options)?)
}

/// Opens `target` with the queues asked for.
pub fn open_device(
    target: Target,
    request: QueueRequest,
) -> Result<OpenedDevice, Box<dyn std::error::Error>> {
    let function = Sysfs::system().pci_function(target.bdf)?;
    match (function.virtio_device_type(), target.lun) {
        (Some(DeviceType::Block), None) => {
            let options = BlkOptions {
                queues: request.queues,
                depth: request.depth,
                ring: ring(),
                ..Default::default()
            };
            let mut disk = VirtioBlk::open(&function, &options)?;
            let queues = disk.tag_set().take_all();
            Ok(OpenedDevice {
                device: disk.block_device().clone(),
                queues,
                dma: Arc::clone(disk.dma()),
                _keep: Keep::Blk(Box::new(disk)),
            })
        }
        (Some(DeviceType::Block), Some(_)) => {
            Err(format!("{} is virtio-blk: name it without a LUN", target.bdf).into())
        }
        (Some(DeviceType::Scsi), Some((channel, t, l))) => {
            if channel != 0 {
                return Err(format!("virtio-scsi has only channel 0, not {channel}").into());
            }
            let options = ScsiOptions {
                queues: request.queues,
                depth: request.depth,
                ring: ring(),
                ..Default::default()
            };
            let mut host = VirtioScsiHost::open(&function, &options)?;
            let device = host.disk(t, l)?;
            let queues = host.tag_set().take_all();
            Ok(OpenedDevice {
                device,
                queues,
                dma: Arc::clone(host.dma()),
                _keep: Keep::Scsi(Box::new(host)),
            })
        }
        (Some(DeviceType::Scsi), None) => Err(format!(
            "{} is a virtio-scsi host: name a LUN as {}/C:T:L (see `uvio scan {}`)",
            target.bdf, target.bdf, target.bdf
        )
        .into()),
        (Some(other), _) => Err(format!(
            "{} is a virtio-{} function; block I/O needs virtio-blk or virtio-scsi",
            target.bdf,
            other.name()
        )
        .into()),
        (None, _) => Err(format!("{} is not a virtio function", target.bdf).into()),
    }
}

/// An opened block device with one hardware queue for the calling thread.
pub struct Opened {
    pub device: BlockDevice,
    pub unit: Unit,
    /// The queue, each request's context a number the tool chooses (a chunk's index).
    pub queue: HwQueue<u64>,
    pub dma: Arc<DmaSpace>,
    _device: OpenedDevice,
}

pub fn open(target: Target, depth: u16) -> Result<Opened, Box<dyn std::error::Error>> {
    let mut opened = open_device(
        target,
        QueueRequest {
            queues: Some(1),
            depth: DepthRequest {
                depth: Some(depth),
                ..Default::default()
            },
        },
    )?;
    let queue = opened
        .queues
        .pop()
        .ok_or("the device has no queue")?
        .with_context();
    Ok(Opened {
        device: opened.device.clone(),
        unit: opened.device.unit(),
        queue,
        dma: Arc::clone(&opened.dma),
        _device: opened,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_functions_and_luns() {
        let t: Target = "0000:00:04.0/0:2:5".parse().unwrap();
        assert_eq!(t.lun, Some((0, 2, 5)));
        assert_eq!(t.to_string(), "0000:00:04.0/0:2:5");
        let b: Target = "00:05.0".parse().unwrap();
        assert_eq!(b.lun, None);
        assert_eq!(b.to_string(), "0000:00:05.0");
        assert!("0000:00:04.0/0:2".parse::<Target>().is_err());
        assert!("0000:00:04.0/0:x:1".parse::<Target>().is_err());
    }
}
