//! Opening what a tool names as DEVICE (see [`uvio::device`]): the tools' ring choice and
//! queue request, and a single-queue shorthand for the dd-like commands.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use uvio::block::{BlockDevice, Unit};
use uvio::device::{AnyQueue, DeviceAddress, DeviceError, OpenOptions, OpenedDevice};
use uvio::dma::DmaSpace;
use uvio::pci::{PciAddress, Sysfs};
use uvio::scsi::host::{ScsiOptions, VirtioScsiHost};
use uvio::virtio::plan::DepthRequest;
use uvio::virtio::ring::RingKind;

/// What a tool names as DEVICE.
pub type Target = DeviceAddress;

#[derive(Debug, Clone, Copy, Default)]
pub struct QueueRequest {
    pub queues: Option<u16>,
    pub depth: DepthRequest,
    /// The request deadline; default: the tool's `--timeout`, else 30 s.
    pub timeout: Option<Duration>,
}

static RING: OnceLock<RingKind> = OnceLock::new();

pub fn set_ring(kind: RingKind) {
    let _ = RING.set(kind);
}

pub fn ring() -> RingKind {
    RING.get().copied().unwrap_or_default()
}

static REQUEST_TIMEOUT: OnceLock<Duration> = OnceLock::new();

/// The request deadline every queue opened from now on gets (`--timeout`).
pub fn set_request_timeout(timeout: Duration) {
    let _ = REQUEST_TIMEOUT.set(timeout);
}

/// The request deadline a tool asked for, if it asked.
fn request_timeout() -> Option<Duration> {
    REQUEST_TIMEOUT.get().copied()
}

pub fn open_scsi_host(bdf: PciAddress) -> Result<VirtioScsiHost, Box<dyn std::error::Error>> {
    let function = Sysfs::system().pci_function(bdf)?;
    let options = ScsiOptions {
        queues: Some(1),
        ring: ring(),
        timeout: request_timeout(),
        ..Default::default()
    };
    Ok(VirtioScsiHost::open(&function, &options)?)
}

pub fn open_device(target: Target, request: QueueRequest) -> Result<OpenedDevice, DeviceError> {
    let options = OpenOptions {
        queues: request.queues,
        depth: request.depth,
        ring: ring(),
        timeout: request.timeout.or_else(request_timeout),
    };
    uvio::device::open(target, &options)
}

pub struct Opened {
    pub device: BlockDevice,
    pub unit: Unit,
    pub queue: AnyQueue<u64>,
    pub dma: Arc<DmaSpace>,
    _device: OpenedDevice,
}

impl Opened {
    /// Recovers request `tag` of the queue after it timed out (see
    /// [`OpenedDevice::recover`]).
    pub fn recover(&mut self, tag: u16) -> uvio::device::Recovery {
        self._device.recover(self.queue.index(), tag)
    }
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
            ..Default::default()
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
