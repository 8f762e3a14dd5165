//! The exported functions of `uvio.h`. Each checks its pointers and handles, runs under
//! [`guard`] (errors become a negative errno and the thread's message, a panic `-EIO`), and
//! leaves the work to the device and queue modules. The raw pointers C passes are read or
//! written here only, each after a NULL check.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::Arc;
use std::time::Duration;

use driver::block::Op;

use crate::device::{self, Device, Started, RING_AUTO, RING_PACKED, RING_SPLIT};
use crate::error::{guard, last_message, CapiError};
use crate::handle::Kind;
use crate::queue::{uvio_completion, Disk, QueueState, MAX_IOVCNT};

/// `struct uvio_dev`: opaque; its pointers are handles ([`crate::handle`]), never addresses.
#[allow(non_camel_case_types)]
pub enum uvio_dev {}

/// `struct uvio_queue`: opaque, as `uvio_dev`.
#[allow(non_camel_case_types)]
pub enum uvio_queue {}

/// `struct uvio_info`, field for field.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct uvio_info {
    pub capacity: u64,
    pub logical_block_size: u32,
    pub physical_block_size: u32,
    pub max_transfer: u64,
    pub max_segments: u32,
    pub max_segment_size: u32,
    pub request_alignment: u32,
    pub buf_alignment: u32,
    pub discard_max: u64,
    pub discard_alignment: u32,
    pub write_zeroes_alignment: u32,
    pub write_zeroes_max: u64,
    pub read_only: u32,
    pub flush: u32,
    pub num_queues: u32,
    pub queue_depth: u32,
    pub ring: u32,
    pub reserved: u32,
}

/// `struct uvio_mem_region`.
#[repr(C)]
#[derive(Debug)]
#[allow(non_camel_case_types)]
pub struct uvio_mem_region {
    pub addr: *mut c_void,
    pub len: usize,
    pub iova: u64,
}

fn device_of(dev: *mut uvio_dev) -> Result<Arc<Device>, CapiError> {
    device::lookup(dev as usize, Kind::Device).map(|(device, _)| device)
}

/// Runs `body` on the queue `q` names (a queue of its device's host) for that device's
/// disk, refusing it while another thread uses the queue.
fn with_queue(
    q: *mut uvio_queue,
    body: impl FnOnce(&Started, Disk<'_>, &mut QueueState) -> Result<i32, CapiError>,
) -> Result<i32, CapiError> {
    let (device, index) = device::lookup(q as usize, Kind::Queue)?;
    let started = device.started("a queue")?;
    let cell = started
        .host
        .queues
        .get(usize::from(index))
        .ok_or(CapiError::StaleHandle {
            kind: "queue",
            value: q as usize,
        })?;
    let mut queue = match cell.try_lock() {
        Ok(queue) => queue,
        Err(std::sync::TryLockError::WouldBlock) => return Err(CapiError::QueueBusy(index)),
        // A panic inside a call on it was reported as -EIO; the queue's own state is whole.
        Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
    };
    let disk = Disk {
        unit: started.block.unit(),
        name: &device.name,
    };
    body(started, disk, &mut queue)
}

fn no_flags(flags: u32) -> Result<(), CapiError> {
    match flags {
        0 => Ok(()),
        other => Err(CapiError::BadFlags(other)),
    }
}

/// # Safety
/// `device` is NULL or a NUL-terminated string; `devp` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn uvio_open(device: *const c_char, devp: *mut *mut uvio_dev) -> c_int {
    guard(|| {
        if devp.is_null() {
            return Err(CapiError::NullArgument("devp"));
        }
        // SAFETY: checked non-NULL; the caller passes a writable pointer.
        unsafe { devp.write(std::ptr::null_mut()) };
        if device.is_null() {
            return Err(CapiError::NullArgument("device"));
        }
        // SAFETY: checked non-NULL; the caller passes a NUL-terminated string.
        let name = unsafe { CStr::from_ptr(device) }
            .to_str()
            .map_err(|_| CapiError::DeviceNotUtf8)?;
        let handle = device::register(Device::new(name)?)?;
        // SAFETY: as above.
        unsafe { devp.write(handle as *mut uvio_dev) };
        Ok(0)
    })
}

fn positive_u16(what: &'static str, value: c_int) -> Result<u16, CapiError> {
    u16::try_from(value)
        .ok()
        .filter(|&v| v > 0)
        .ok_or(CapiError::BadValue {
            what,
            value: i64::from(value),
            expected: "1 to 65535",
        })
}

#[no_mangle]
pub extern "C" fn uvio_set_num_queues(dev: *mut uvio_dev, num_queues: c_int) -> c_int {
    guard(|| {
        let queues = positive_u16("num_queues", num_queues)?;
        device_of(dev)?.set("uvio_set_num_queues", |p| p.queues = Some(queues))
    })
}

#[no_mangle]
pub extern "C" fn uvio_set_queue_depth(dev: *mut uvio_dev, queue_depth: c_int) -> c_int {
    guard(|| {
        let depth = positive_u16("queue_depth", queue_depth)?;
        device_of(dev)?.set("uvio_set_queue_depth", |p| p.depth = Some(depth))
    })
}

#[no_mangle]
pub extern "C" fn uvio_set_ring(dev: *mut uvio_dev, ring: c_int) -> c_int {
    guard(|| {
        if !(RING_AUTO..=RING_PACKED).contains(&ring) {
            return Err(CapiError::BadValue {
                what: "ring",
                value: i64::from(ring),
                expected: "UVIO_RING_AUTO, UVIO_RING_SPLIT or UVIO_RING_PACKED",
            });
        }
        device_of(dev)?.set("uvio_set_ring", |p| p.ring = ring)
    })
}

#[no_mangle]
pub extern "C" fn uvio_set_request_timeout_ns(dev: *mut uvio_dev, timeout_ns: u64) -> c_int {
    guard(|| {
        let timeout = (timeout_ns != 0).then(|| Duration::from_nanos(timeout_ns));
        device_of(dev)?.set("uvio_set_request_timeout_ns", |p| p.timeout = timeout)
    })
}

#[no_mangle]
pub extern "C" fn uvio_start(dev: *mut uvio_dev) -> c_int {
    guard(|| device_of(dev)?.start())
}

/// # Safety
/// `device` is NULL or a NUL-terminated string; `devp` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn uvio_open_lun(
    dev: *mut uvio_dev,
    device: *const c_char,
    devp: *mut *mut uvio_dev,
) -> c_int {
    guard(|| {
        if devp.is_null() {
            return Err(CapiError::NullArgument("devp"));
        }
        // SAFETY: checked non-NULL; the caller passes a writable pointer.
        unsafe { devp.write(std::ptr::null_mut()) };
        let host = device_of(dev)?;
        if device.is_null() {
            return Err(CapiError::NullArgument("device"));
        }
        // SAFETY: checked non-NULL; the caller passes a NUL-terminated string.
        let name = unsafe { CStr::from_ptr(device) }
            .to_str()
            .map_err(|_| CapiError::DeviceNotUtf8)?;
        let handle = device::register(host.open_lun(name)?)?;
        // SAFETY: as above.
        unsafe { devp.write(handle as *mut uvio_dev) };
        Ok(0)
    })
}

/// # Safety
/// `info` is NULL or points to a writable `struct uvio_info`.
#[no_mangle]
pub unsafe extern "C" fn uvio_get_info(dev: *mut uvio_dev, info: *mut uvio_info) -> c_int {
    guard(|| {
        let device = device_of(dev)?;
        if info.is_null() {
            return Err(CapiError::NullArgument("info"));
        }
        let started = device.started("uvio_get_info")?;
        let limits = &started.block.limits;
        let filled = uvio_info {
            capacity: started.block.capacity(),
            logical_block_size: limits.logical_block_size,
            physical_block_size: limits.physical_block_size,
            max_transfer: limits.max_transfer_bytes,
            max_segments: u32::try_from(limits.max_segments).unwrap_or(u32::MAX),
            max_segment_size: limits.max_segment_size,
            request_alignment: limits.logical_block_size,
            // A descriptor takes any byte address.
            buf_alignment: 1,
            discard_max: limits.discard.map_or(0, |d| d.max_bytes),
            discard_alignment: limits.discard.map_or(0, |d| d.alignment),
            write_zeroes_alignment: limits.write_zeroes.map_or(0, |d| d.alignment),
            write_zeroes_max: limits.write_zeroes.map_or(0, |d| d.max_bytes),
            read_only: u32::from(limits.read_only),
            flush: u32::from(limits.flush),
            num_queues: started.host.queues.len() as u32,
            queue_depth: u32::from(started.host.queue_depth),
            ring: if started.host.packed {
                RING_PACKED
            } else {
                RING_SPLIT
            } as u32,
            reserved: 0,
        };
        // SAFETY: checked non-NULL; the caller passes a writable struct.
        unsafe { info.write(filled) };
        Ok(0)
    })
}

/// # Safety
/// `region` is NULL or points to a writable `struct uvio_mem_region`.
#[no_mangle]
pub unsafe extern "C" fn uvio_alloc_mem(
    dev: *mut uvio_dev,
    len: usize,
    region: *mut uvio_mem_region,
) -> c_int {
    guard(|| {
        let device = device_of(dev)?;
        if region.is_null() {
            return Err(CapiError::NullArgument("region"));
        }
        let allocated = device.alloc(len)?;
        let filled = uvio_mem_region {
            addr: allocated.as_ptr().cast(),
            len: allocated.len(),
            iova: allocated.iova(),
        };
        // SAFETY: checked non-NULL; the caller passes a writable struct.
        unsafe { region.write(filled) };
        Ok(0)
    })
}

/// # Safety
/// `region` is NULL or points to a `struct uvio_mem_region`.
#[no_mangle]
pub unsafe extern "C" fn uvio_free_mem(
    dev: *mut uvio_dev,
    region: *const uvio_mem_region,
) -> c_int {
    guard(|| {
        let device = device_of(dev)?;
        // SAFETY: NULL or a readable struct, as the caller promises.
        let region = unsafe { region.as_ref() }.ok_or(CapiError::NullArgument("region"))?;
        let started = device.started("uvio_free_mem")?;
        started
            .host
            .regions
            .free(region.addr as usize, region.len)?;
        Ok(0)
    })
}

/// # Safety
/// `qp` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn uvio_get_queue(
    dev: *mut uvio_dev,
    index: c_int,
    qp: *mut *mut uvio_queue,
) -> c_int {
    guard(|| {
        let device = device_of(dev)?;
        if qp.is_null() {
            return Err(CapiError::NullArgument("qp"));
        }
        let count = device.started("uvio_get_queue")?.host.queues.len();
        let index =
            usize::try_from(index)
                .ok()
                .filter(|&i| i < count)
                .ok_or(CapiError::NoSuchQueue {
                    index: i64::from(index),
                    count,
                })?;
        let handle =
            device::queue_handle(dev as usize, index as u16).ok_or(CapiError::StaleHandle {
                kind: "device",
                value: dev as usize,
            })?;
        // SAFETY: checked non-NULL; the caller passes a writable pointer.
        unsafe { qp.write(handle as *mut uvio_queue) };
        Ok(0)
    })
}

#[no_mangle]
pub extern "C" fn uvio_read(
    q: *mut uvio_queue,
    offset: u64,
    buf: *mut c_void,
    len: usize,
    user_data: *mut c_void,
    flags: u32,
) -> c_int {
    guard(|| {
        no_flags(flags)?;
        with_queue(q, |started, disk, queue| {
            let data = (buf as usize, len);
            let regions = &started.host.regions;
            queue.transfer(disk, regions, Op::Read, offset, data, user_data as usize)
        })
    })
}

#[no_mangle]
pub extern "C" fn uvio_write(
    q: *mut uvio_queue,
    offset: u64,
    buf: *const c_void,
    len: usize,
    user_data: *mut c_void,
    flags: u32,
) -> c_int {
    guard(|| {
        no_flags(flags)?;
        with_queue(q, |started, disk, queue| {
            let data = (buf as usize, len);
            let regions = &started.host.regions;
            queue.transfer(disk, regions, Op::Write, offset, data, user_data as usize)
        })
    })
}

/// The `(address, length)` pairs of an iovec array.
///
/// # Safety
/// `iov` is NULL or points to `iovcnt` iovecs.
unsafe fn iovecs<'a>(
    iov: *const libc::iovec,
    iovcnt: c_int,
) -> Result<&'a [libc::iovec], CapiError> {
    let count = usize::try_from(iovcnt)
        .ok()
        .filter(|&n| (1..=MAX_IOVCNT).contains(&n))
        .ok_or(CapiError::BadValue {
            what: "iovcnt",
            value: i64::from(iovcnt),
            expected: "1 to 1024 (IOV_MAX)",
        })?;
    if iov.is_null() {
        return Err(CapiError::NullArgument("iov"));
    }
    // SAFETY: non-NULL, and the caller promises `iovcnt` entries.
    Ok(unsafe { std::slice::from_raw_parts(iov, count) })
}

fn vectored(
    q: *mut uvio_queue,
    op: Op,
    offset: u64,
    iov: &[libc::iovec],
    user_data: *mut c_void,
    flags: u32,
) -> c_int {
    guard(|| {
        no_flags(flags)?;
        with_queue(q, |started, disk, queue| {
            let pieces = iov.iter().map(|v| (v.iov_base as usize, v.iov_len));
            let regions = &started.host.regions;
            queue.transfer_vectored(disk, regions, op, offset, pieces, user_data as usize)
        })
    })
}

/// # Safety
/// `iov` is NULL or points to `iovcnt` iovecs.
#[no_mangle]
pub unsafe extern "C" fn uvio_readv(
    q: *mut uvio_queue,
    offset: u64,
    iov: *const libc::iovec,
    iovcnt: c_int,
    user_data: *mut c_void,
    flags: u32,
) -> c_int {
    // SAFETY: as the caller promises.
    match unsafe { iovecs(iov, iovcnt) } {
        Ok(iov) => vectored(q, Op::Read, offset, iov, user_data, flags),
        Err(e) => guard(|| Err(e)),
    }
}

/// # Safety
/// `iov` is NULL or points to `iovcnt` iovecs.
#[no_mangle]
pub unsafe extern "C" fn uvio_writev(
    q: *mut uvio_queue,
    offset: u64,
    iov: *const libc::iovec,
    iovcnt: c_int,
    user_data: *mut c_void,
    flags: u32,
) -> c_int {
    // SAFETY: as the caller promises.
    match unsafe { iovecs(iov, iovcnt) } {
        Ok(iov) => vectored(q, Op::Write, offset, iov, user_data, flags),
        Err(e) => guard(|| Err(e)),
    }
}

fn ranged(
    q: *mut uvio_queue,
    op: Op,
    offset: u64,
    len: u64,
    user_data: *mut c_void,
    flags: u32,
) -> c_int {
    guard(|| {
        no_flags(flags)?;
        with_queue(q, |_, disk, queue| {
            queue.ranged(disk, op, offset, len, user_data as usize)
        })
    })
}

#[no_mangle]
pub extern "C" fn uvio_flush(q: *mut uvio_queue, user_data: *mut c_void, flags: u32) -> c_int {
    ranged(q, Op::Flush, 0, 0, user_data, flags)
}

#[no_mangle]
pub extern "C" fn uvio_discard(
    q: *mut uvio_queue,
    offset: u64,
    len: u64,
    user_data: *mut c_void,
    flags: u32,
) -> c_int {
    ranged(q, Op::Discard, offset, len, user_data, flags)
}

#[no_mangle]
pub extern "C" fn uvio_write_zeroes(
    q: *mut uvio_queue,
    offset: u64,
    len: u64,
    user_data: *mut c_void,
    flags: u32,
) -> c_int {
    ranged(q, Op::WriteZeroes, offset, len, user_data, flags)
}

/// # Safety
/// `completions` is NULL or points to `max_completions` writable entries.
#[no_mangle]
pub unsafe extern "C" fn uvio_poll(
    q: *mut uvio_queue,
    completions: *mut uvio_completion,
    min_completions: c_int,
    max_completions: c_int,
    timeout_ns: i64,
) -> c_int {
    guard(|| {
        let bad = |what, value: c_int, expected| CapiError::BadValue {
            what,
            value: i64::from(value),
            expected,
        };
        let min = usize::try_from(min_completions)
            .map_err(|_| bad("min_completions", min_completions, "0 or more"))?;
        let max = usize::try_from(max_completions)
            .ok()
            .filter(|&m| m >= min && m > 0)
            .ok_or(bad(
                "max_completions",
                max_completions,
                "at least 1 and at least min_completions",
            ))?;
        if completions.is_null() {
            return Err(CapiError::NullArgument("completions"));
        }
        let timeout = u64::try_from(timeout_ns).ok().map(Duration::from_nanos);
        with_queue(q, |_, _, queue| {
            // SAFETY: non-NULL, and the caller promises `max_completions` entries; only this
            // call uses them.
            let out = unsafe { std::slice::from_raw_parts_mut(completions.cast(), max) };
            let count = queue.poll(out, min, timeout)?;
            Ok(count as i32)
        })
    })
}

#[no_mangle]
pub extern "C" fn uvio_get_error_msg() -> *const c_char {
    last_message()
}

#[no_mangle]
pub extern "C" fn uvio_close(dev: *mut uvio_dev) -> c_int {
    guard(|| {
        let device = device::unregister(dev as usize)?;
        // The last reference resets the device; a call another thread is inside keeps it
        // until that call returns.
        drop(device);
        Ok(0)
    })
}
