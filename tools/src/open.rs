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

/// An opened block device with one hardware queue for the calling thread.
pub struct Opened {
    pub device: BlockDevice,
    pub queue: HwQueue,
    pub dma: Arc<DmaSpace>,
    /// Keeps the device open (and resets it when dropped, after the queue).
    _disk: VirtioBlk,
}

pub fn open(target: Target, depth: u16) -> Result<Opened, Box<dyn std::error::Error>> {
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
        queues: Some(1),
        depth: Some(depth),
        ..Default::default()
    };
    let mut disk = VirtioBlk::open(&function, &options)?;
    let queue = disk
        .tag_set()
        .take_queue(0)
        .ok_or("the device has no queue")?;
    Ok(Opened {
        device: disk.block_device().clone(),
        queue,
        dma: Arc::clone(disk.dma()),
        _disk: disk,
    })
}
