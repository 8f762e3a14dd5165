//! Opening what a tool names as DEVICE (see [`uvio::device`]): the tools' ring choice and
//! queue request, and a single-queue shorthand for the dd-like commands.

use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Fault injection asked for (see [`inject_short_header`]).
    pub inject_short_header: bool,
    _device: OpenedDevice,
}

impl Opened {
    /// Recovers request `tag` of the queue after it timed out (see
    /// [`OpenedDevice::recover`]).
    pub fn recover(&mut self, tag: u16) -> uvio::device::Recovery {
        self._device.recover(self.queue.index(), tag)
    }

    /// Resets the device and brings it back with the same queue (see
    /// [`OpenedDevice::restart`]): what was in flight comes back cut short by the reset, with
    /// its buffers, to be sent again. The message says why and what was done.
    pub fn restart(&mut self) -> Result<String, String> {
        let why = self
            .queue
            .fault()
            .map_or_else(|| "the queue broke".to_string(), |f| f.to_string());
        let name = self.device.name.clone();
        match self._device.restart(&mut [&mut self.queue]) {
            Ok(done) => Ok(format!("{name}: {why}; {done}")),
            Err(e) => Err(format!(
                "{name}: {why}; the device could not be restarted: {e}"
            )),
        }
    }

    /// Revalidates the device after [`restart`](Self::restart), once the requests it cut
    /// short are out of the queue; returns how many LUNs changed.
    pub fn revalidate(&mut self) -> usize {
        self._device.revalidate(&mut self.queue).len()
    }
}

static SHORT_HEADER: AtomicBool = AtomicBool::new(false);

/// Fault injection for the recovery tests (`--inject-fault short-header`): the first request
/// of the next device opened goes out with an 8-byte header, which makes QEMU's virtio-blk
/// set DEVICE_NEEDS_RESET (split rings only).
pub fn inject_short_header() {
    SHORT_HEADER.store(true, Ordering::Relaxed);
}

/// Takes the pending fault injection, once.
fn take_short_header() -> bool {
    SHORT_HEADER.swap(false, Ordering::Relaxed)
}

pub fn open(target: Target, depth: u16) -> Result<Opened, Box<dyn std::error::Error>> {
    let inject_short_header = take_short_header();
    let mut opened = open_device(
        target,
        QueueRequest {
            queues: Some(1),
            depth: DepthRequest {
                // The injected request takes a tag of its own.
                depth: Some(depth + u16::from(inject_short_header)),
                ..Default::default()
            },
            ..Default::default()
        },
    )?;
    let mut queue: AnyQueue<u64> = opened
        .queues
        .pop()
        .ok_or("the device has no queue")?
        .with_context();
    // The dd-like tools recover in place (see `Opened::restart`): a broken queue keeps its
    // requests, buffers and all, for the reset.
    queue.set_hold_until_reset(true);
    Ok(Opened {
        device: opened.device.clone(),
        unit: opened.device.unit(),
        queue,
        dma: Arc::clone(&opened.dma),
        inject_short_header,
        _device: opened,
    })
}
