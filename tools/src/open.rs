//! Opening what a tool names as DEVICE: a virtio-blk function by its BDF.

use std::str::FromStr;
use std::sync::Arc;

use uvio::blk::{BlkOptions, VirtioBlk};
use uvio::block::{BlockDevice, HwQueue};
use uvio::dma::DmaSpace;
use uvio::pci::{PciAddress, Sysfs};
use uvio::virtio::DeviceType;

/// A device argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub bdf: PciAddress,
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bdf = s.parse::<PciAddress>().map_err(|e| e.to_string())?;
        Ok(Target { bdf })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.bdf.fmt(f)
    }
}

/// How many hardware queues and tags a tool wants.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueRequest {
    /// Hardware queues; `None`: all the device has.
    pub queues: Option<u16>,
    /// Tags per queue; `None`: the device's default.
    pub depth: Option<u16>,
}

/// An opened block device with its hardware queues, ready to be handed to threads.
pub struct OpenedDevice {
    pub device: BlockDevice,
    pub queues: Vec<HwQueue>,
    pub dma: Arc<DmaSpace>,
    /// Keeps the device open (and resets it when dropped, after the queues are done).
    _disk: VirtioBlk,
}

/// Opens `target` with the queues asked for.
pub fn open_device(
    target: Target,
    request: QueueRequest,
) -> Result<OpenedDevice, Box<dyn std::error::Error>> {
    let function = Sysfs::system().pci_function(target.bdf)?;
    match function.virtio_device_type() {
        Some(DeviceType::Block) => {}
        Some(other) => {
            return Err(format!(
                "{} is a virtio-{} function; block I/O needs virtio-blk",
                target.bdf,
                other.name()
            )
            .into())
        }
        None => return Err(format!("{} is not a virtio function", target.bdf).into()),
    }
    let options = BlkOptions {
        queues: request.queues,
        depth: request.depth,
        ..Default::default()
    };
    let mut disk = VirtioBlk::open(&function, &options)?;
    let queues = disk.tag_set().take_all();
    Ok(OpenedDevice {
        device: disk.block_device().clone(),
        queues,
        dma: Arc::clone(disk.dma()),
        _disk: disk,
    })
}

/// An opened block device with one hardware queue for the calling thread.
pub struct Opened {
    pub device: BlockDevice,
    pub queue: HwQueue,
    pub dma: Arc<DmaSpace>,
    _device: OpenedDevice,
}

pub fn open(target: Target, depth: u16) -> Result<Opened, Box<dyn std::error::Error>> {
    let mut opened = open_device(
        target,
        QueueRequest {
            queues: Some(1),
            depth: Some(depth),
        },
    )?;
    let queue = opened.queues.pop().ok_or("the device has no queue")?;
    Ok(Opened {
        device: opened.device.clone(),
        queue,
        dma: Arc::clone(&opened.dma),
        _device: opened,
    })
}
