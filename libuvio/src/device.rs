//! A device as C holds it: named and given properties by `uvio_open` and the setters,
//! opened through VFIO by `uvio_start`, and kept in the handle table until `uvio_close`.
//!
//! What `uvio_start` opens is the PCI function, a [`Host`]: its hardware queues, tags and
//! DMA memory. Another disk LUN of the same virtio-scsi host is a device of its own
//! (`uvio_open_lun`) on that same host, as the kernel's SCSI disks share their host's
//! queues: a request names its LUN, and a queue's completions are those of every LUN of the
//! host. The host lives until the last device on it is closed.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Duration;

use driver::block::BlockDevice;
use driver::device::{DeviceAddress, DeviceError, OpenOptions, OpenedDevice};
use driver::dma::{DmaRegion, DmaSpace};
use driver::virtio::plan::DepthRequest;
use driver::virtio::ring::RingKind;

use crate::error::CapiError;
use crate::handle::{Key, Kind, Table};
use crate::memory::Regions;
use crate::queue::QueueState;

/// Ring choices, as the header's `UVIO_RING_*`.
pub const RING_AUTO: i32 = 0;
pub const RING_SPLIT: i32 = 1;
pub const RING_PACKED: i32 = 2;

/// What is set between `uvio_open` and `uvio_start`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Properties {
    pub queues: Option<u16>,
    pub depth: Option<u16>,
    pub ring: i32,
    pub timeout: Option<Duration>,
}

/// The PCI function `uvio_start` opened, shared by every device on it. Fields drop in
/// order: the queues, then the regions, then the function itself, whose drop resets it (the
/// driver's rule: queues before the device).
#[derive(Debug)]
pub struct Host {
    pub queues: Box<[Mutex<QueueState>]>,
    pub regions: Regions,
    /// Tags per queue, and whether the rings are packed (the same for every queue).
    pub queue_depth: u16,
    pub packed: bool,
    pub dma: Arc<DmaSpace>,
    opened: Mutex<OpenedDevice>,
}

/// A started device: the disk it is (a virtio-blk function, or one LUN) on its host.
#[derive(Debug)]
pub struct Started {
    pub host: Arc<Host>,
    pub block: BlockDevice,
}

/// One device C opened.
#[derive(Debug)]
pub struct Device {
    /// The DEVICE string as given, for messages.
    pub name: String,
    address: DeviceAddress,
    properties: Mutex<Properties>,
    started: OnceLock<Started>,
}

/// Every open device; handles name their slots.
static DEVICES: RwLock<Table<Device>> = RwLock::new(Table::new());

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while it was held was caught and reported by `guard`; the data is still whole.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Device {
    /// Names a device; nothing is touched yet.
    pub fn new(name: &str) -> Result<Self, CapiError> {
        let address = name.parse().map_err(|source| CapiError::Address {
            device: name.to_string(),
            source,
        })?;
        Ok(Device {
            name: name.to_string(),
            address,
            properties: Mutex::new(Properties::default()),
            started: OnceLock::new(),
        })
    }

    /// Changes a property before `uvio_start`.
    pub fn set(
        &self,
        what: &'static str,
        change: impl FnOnce(&mut Properties),
    ) -> Result<i32, CapiError> {
        let mut properties = lock(&self.properties);
        if self.started.get().is_some() {
            return Err(CapiError::AlreadyStarted(what));
        }
        change(&mut properties);
        Ok(0)
    }

    /// Opens the device through VFIO with the properties set.
    pub fn start(&self) -> Result<i32, CapiError> {
        // Held throughout, so two threads cannot start one device twice.
        let properties = lock(&self.properties);
        if self.started.get().is_some() {
            return Err(CapiError::StartedTwice);
        }
        // VFIO would refuse the group as held by "another process"; say what holds it.
        if let Some(open_as) = started_with_function(self.address) {
            return Err(CapiError::FunctionOpenHere {
                device: self.name.clone(),
                bdf: self.address.bdf.to_string(),
                open_as,
            });
        }
        let options = OpenOptions {
            queues: properties.queues,
            depth: DepthRequest {
                depth: properties.depth,
                ..Default::default()
            },
            ring: if properties.ring == RING_SPLIT {
                RingKind::Split
            } else {
                RingKind::Auto
            },
            timeout: properties.timeout,
        };
        let mut opened =
            driver::device::open(self.address, &options).map_err(|source| CapiError::Open {
                device: self.name.clone(),
                source,
            })?;
        let block = opened.device.clone();
        let queues: Box<[Mutex<QueueState>]> = std::mem::take(&mut opened.queues)
            .into_iter()
            .map(|mut q| {
                // Doorbells batched as `uvio bench` does (HwQueue::set_notify_batching): a
                // notification the device asks for while it still works on earlier requests
                // goes out with the first poll that finds no new completion. C drives the
                // queue by polling, so it always goes out; each one saved is an MMIO exit.
                q.set_notify_batching(true);
                Mutex::new(QueueState::new(q.with_context()))
            })
            .collect();
        let (queue_depth, packed) = queues.first().map_or((0, false), |q| {
            let q = lock(q);
            (q.depth(), q.packed())
        });
        if properties.ring == RING_PACKED && !packed {
            // Dropping what was opened resets the device again.
            return Err(CapiError::NoPackedRing(self.name.clone()));
        }
        let host = Host {
            queues,
            regions: Regions::default(),
            queue_depth,
            packed,
            dma: Arc::clone(&opened.dma),
            opened: Mutex::new(opened),
        };
        let started = Started {
            host: Arc::new(host),
            block,
        };
        // The properties lock is held and `started` was empty: this is the only set.
        let _ = self.started.set(started);
        Ok(0)
    }

    /// Another disk LUN, `name` (`BDF/C:T:L` on this device's PCI function), of the started
    /// virtio-scsi host this device is on: a started device sharing its queues and memory.
    pub fn open_lun(&self, name: &str) -> Result<Device, CapiError> {
        let started = self.started("uvio_open_lun")?;
        let lun = Device::new(name)?;
        if lun.address.bdf != self.address.bdf {
            return Err(CapiError::OtherHost {
                device: self.name.clone(),
                lun: name.to_string(),
            });
        }
        let block =
            lock(&started.host.opened)
                .other_lun(lun.address)
                .map_err(|source| match source {
                    // Its message would name the LUN twice; say what uvio_open_lun is for.
                    DeviceError::OtherLunOfBlk { .. } => CapiError::NotAHost {
                        device: self.name.clone(),
                        lun: name.to_string(),
                    },
                    source => CapiError::Open {
                        device: name.to_string(),
                        source,
                    },
                })?;
        let shared = Started {
            host: Arc::clone(&started.host),
            block,
        };
        // A fresh cell: this is its only set.
        let _ = lun.started.set(shared);
        Ok(lun)
    }

    /// What `uvio_start` opened, or why there is nothing.
    pub fn started(&self, call: &'static str) -> Result<&Started, CapiError> {
        self.started.get().ok_or(CapiError::NotStarted(call))
    }

    /// Allocates DMA memory for data buffers.
    pub fn alloc(&self, len: usize) -> Result<Arc<DmaRegion>, CapiError> {
        let started = self.started("uvio_alloc_mem")?;
        if len == 0 {
            return Err(CapiError::BadValue {
                what: "len",
                value: 0,
                expected: "a positive number of bytes",
            });
        }
        started
            .host
            .regions
            .alloc(&started.host.dma, len)
            .map_err(|source| CapiError::Dma {
                device: self.name.clone(),
                source,
            })
    }
}

/// The name of a started device of this process on the PCI function `address` names.
fn started_with_function(address: DeviceAddress) -> Option<String> {
    let table = DEVICES.read().unwrap_or_else(|e| e.into_inner());
    let name = table
        .values()
        .find(|d| d.address.bdf == address.bdf && d.started.get().is_some())
        .map(|d| d.name.clone());
    name
}

/// Puts a named device in the table and returns its handle.
pub fn register(device: Device) -> Result<usize, CapiError> {
    let mut table = DEVICES.write().unwrap_or_else(|e| e.into_inner());
    let key = table
        .insert(Arc::new(device))
        .ok_or(CapiError::TooManyDevices)?;
    Ok(key.handle(Kind::Device, 0))
}

/// The device a handle of `kind` names, and the queue index it carries.
pub fn lookup(handle: usize, kind: Kind) -> Result<(Arc<Device>, u16), CapiError> {
    if handle == 0 {
        return Err(CapiError::NullHandle { kind: kind.name() });
    }
    let stale = CapiError::StaleHandle {
        kind: kind.name(),
        value: handle,
    };
    let other = match kind {
        Kind::Device => Kind::Queue,
        Kind::Queue => Kind::Device,
    };
    let Some((key, queue)) = Key::decode(handle, kind) else {
        return Err(match Key::decode(handle, other) {
            Some(_) => CapiError::WrongKind {
                kind: kind.name(),
                actual: other.name(),
                value: handle,
            },
            None => stale,
        });
    };
    let table = DEVICES.read().unwrap_or_else(|e| e.into_inner());
    let device = table.get(key).ok_or(stale)?;
    Ok((device, queue))
}

/// Takes a device out of the table: its handles are dead from now on. The caller drops it
/// (resetting the device) once no other thread is inside a call on it.
pub fn unregister(handle: usize) -> Result<Arc<Device>, CapiError> {
    // Checked first for the message; removal decides under the write lock.
    lookup(handle, Kind::Device)?;
    let (key, _) = Key::decode(handle, Kind::Device).ok_or(CapiError::StaleHandle {
        kind: "device",
        value: handle,
    })?;
    let mut table = DEVICES.write().unwrap_or_else(|e| e.into_inner());
    table.remove(key).ok_or(CapiError::StaleHandle {
        kind: "device",
        value: handle,
    })
}

/// The handle of queue `index` of the device `device` names.
pub fn queue_handle(device: usize, index: u16) -> Option<usize> {
    let (key, _) = Key::decode(device, Kind::Device)?;
    Some(key.handle(Kind::Queue, index))
}
