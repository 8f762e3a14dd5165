//! DMA memory: IOVA allocation inside the ranges the IOMMU reports, memory the device may
//! read and write (2 MiB huge pages when the system has them), and the buffers I/O uses.
//!
//! The IOVA of a region is not its virtual address: QEMU's vIOMMU is 39 bits wide, and user
//! addresses are not. Every address handed to a device comes from here.

use std::ops::Range;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use memmap2::{MmapMut, MmapOptions};

use crate::vfio::{VfioDevice, VfioError};

const HUGE_PAGE: usize = 2 << 20;

/// Errors from DMA memory.
#[derive(Debug, thiserror::Error)]
pub enum DmaError {
    #[error(transparent)]
    Vfio(#[from] VfioError),
    #[error("allocating {len} bytes of DMA memory: {source}")]
    Alloc { len: usize, source: std::io::Error },
    #[error("no free IOVA range of {0} bytes left inside the IOMMU's ranges")]
    IovaExhausted(u64),
    #[error("a registered region must be page-aligned ({page} bytes): address {addr:#x}, length {len:#x}")]
    Unaligned { addr: usize, len: usize, page: u64 },
    #[error("zero-length DMA region")]
    Empty,
}

/// First-fit allocator of IOVA space over the ranges the IOMMU accepts.
#[derive(Debug, Clone)]
pub struct IovaAllocator {
    /// Free ranges, sorted and never adjacent (adjacent ones are merged).
    free: Vec<Range<u64>>,
}

impl IovaAllocator {
    pub fn new(ranges: &[Range<u64>]) -> Self {
        let mut free: Vec<Range<u64>> =
            ranges.iter().filter(|r| r.start < r.end).cloned().collect();
        free.sort_by_key(|r| r.start);
        IovaAllocator { free }
    }

    /// `size` bytes aligned to `align` (a power of two), or `None` when nothing fits.
    pub fn alloc(&mut self, size: u64, align: u64) -> Option<u64> {
        debug_assert!(align.is_power_of_two());
        if size == 0 {
            return None;
        }
        for i in 0..self.free.len() {
            let range = self.free[i].clone();
            let start = range.start.checked_add(align - 1)? & !(align - 1);
            let Some(end) = start.checked_add(size) else {
                continue;
            };
            if end > range.end {
                continue;
            }
            // Split the free range into what is left before and after the allocation.
            let mut rest = Vec::with_capacity(2);
            if range.start < start {
                rest.push(range.start..start);
            }
            if end < range.end {
                rest.push(end..range.end);
            }
            self.free.splice(i..=i, rest);
            return Some(start);
        }
        None
    }

    /// Returns `iova..iova+size` to the free list.
    pub fn free(&mut self, iova: u64, size: u64) {
        let at = self.free.partition_point(|r| r.start < iova);
        self.free.insert(at, iova..iova + size);
        // Merge with the neighbours it touches.
        if at + 1 < self.free.len() && self.free[at].end == self.free[at + 1].start {
            self.free[at].end = self.free[at + 1].end;
            self.free.remove(at + 1);
        }
        if at > 0 && self.free[at - 1].end == self.free[at].start {
            self.free[at - 1].end = self.free[at].end;
            self.free.remove(at);
        }
    }

    pub fn free_ranges(&self) -> &[Range<u64>] {
        &self.free
    }
}

/// Who translates a region's IOVA for the device.
#[derive(Debug)]
enum Mapper {
    /// The device's VFIO container (the IOMMU).
    Vfio(Arc<VfioDevice>),
    /// No IOMMU: each region's IOVA is its virtual address, for the in-process fake devices
    /// of unit tests and the host-side hot-path benchmark (`fake-device` feature).
    #[cfg(any(test, feature = "fake-device"))]
    Identity,
}

/// The DMA address space of one opened device: maps memory through its container.
#[derive(Debug)]
pub struct DmaSpace {
    mapper: Mapper,
    iova: Mutex<IovaAllocator>,
    page_size: u64,
    /// Regions dropped while the device may still be running: kept mapped (and their
    /// memory alive) until [`DmaSpace::quiesce`], so a late DMA never lands in memory that
    /// was given back. Only touched on drop and quiesce, never on the I/O path.
    deferred: Mutex<Option<Vec<DeferredRegion>>>,
}

/// A region whose release waits for the device to stop.
#[derive(Debug)]
struct DeferredRegion {
    iova: u64,
    len: usize,
    _memory: Option<MmapMut>,
}

impl DmaSpace {
    pub fn new(device: Arc<VfioDevice>) -> Result<Arc<Self>, DmaError> {
        let info = device.iommu_info()?;
        log::debug!(
            "{}: IOVA ranges {:x?}, page size {}",
            device.address(),
            info.iova_ranges,
            info.page_size()
        );
        Ok(Arc::new(DmaSpace {
            iova: Mutex::new(IovaAllocator::new(&info.iova_ranges)),
            page_size: info.page_size(),
            mapper: Mapper::Vfio(device),
            deferred: Mutex::new(Some(Vec::new())),
        }))
    }

    /// A space without an IOMMU whose IOVAs are virtual addresses, for devices simulated in
    /// this process (see [`crate::virtio::fake`]). Never used with real hardware.
    #[cfg(any(test, feature = "fake-device"))]
    pub fn identity() -> Arc<Self> {
        Arc::new(DmaSpace {
            mapper: Mapper::Identity,
            iova: Mutex::new(IovaAllocator::new(&[])),
            page_size: 4096,
            deferred: Mutex::new(None),
        })
    }

    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// Maps `vaddr..vaddr+len` for the device at a fresh IOVA inside the IOMMU's ranges.
    ///
    /// # Safety
    /// The memory must stay allocated until it is unmapped (`release`).
    unsafe fn map(&self, vaddr: *mut u8, len: u64, align: u64) -> Result<u64, DmaError> {
        match &self.mapper {
            Mapper::Vfio(device) => {
                let iova = self.alloc_iova(len, align)?;
                // SAFETY: the caller keeps the memory alive until it is unmapped.
                if let Err(e) = unsafe { device.map_dma(vaddr, iova, len) } {
                    self.free_iova(iova, len);
                    return Err(e.into());
                }
                Ok(iova)
            }
            #[cfg(any(test, feature = "fake-device"))]
            Mapper::Identity => Ok(vaddr as u64),
        }
    }

    fn alloc_iova(&self, len: u64, align: u64) -> Result<u64, DmaError> {
        let mut iova = self.iova.lock().unwrap_or_else(|e| e.into_inner());
        iova.alloc(len, align.max(self.page_size))
            .ok_or(DmaError::IovaExhausted(len))
    }

    /// Call once the device has been reset (it no longer touches memory): releases every
    /// region dropped while it ran, and from now on releases regions at once.
    pub fn quiesce(&self) {
        let deferred = self
            .deferred
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        for region in deferred.into_iter().flatten() {
            self.release(region.iova, region.len);
        }
    }

    /// Unmaps `iova..iova+len` and returns the IOVA range. A failure leaves the IOVA
    /// allocated (leaked) rather than reusing it.
    fn release(&self, iova: u64, len: usize) {
        match &self.mapper {
            Mapper::Vfio(device) => match device.unmap_dma(iova, len as u64) {
                Ok(()) => self.free_iova(iova, len as u64),
                Err(e) => log::error!("unmapping DMA region at IOVA {iova:#x}: {e}"),
            },
            #[cfg(any(test, feature = "fake-device"))]
            Mapper::Identity => {}
        }
    }

    fn free_iova(&self, iova: u64, len: u64) {
        self.iova
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .free(iova, len);
    }

    /// `count` buffers of `size` bytes with status room, carved from one new region
    /// ([`DmaRegion::into_bufs_with_status_room`]).
    pub fn alloc_bufs_with_status_room(
        self: &Arc<Self>,
        count: usize,
        size: usize,
    ) -> Result<Vec<DmaBuf>, DmaError> {
        Ok(self
            .alloc(count * status_room_stride(size))?
            .into_bufs_with_status_room(size))
    }

    /// Allocates `len` bytes (rounded up to whole pages) of zeroed memory and maps it for the
    /// device. Regions of 2 MiB or more use huge pages when the system has them free.
    pub fn alloc(self: &Arc<Self>, len: usize) -> Result<DmaRegion, DmaError> {
        if len == 0 {
            return Err(DmaError::Empty);
        }
        let page = self.page_size as usize;
        let (mut mem, mapped_len) = if len >= HUGE_PAGE {
            let huge_len = len.div_ceil(HUGE_PAGE) * HUGE_PAGE;
            match MmapOptions::new().len(huge_len).huge(Some(21)).map_anon() {
                Ok(m) => (m, huge_len),
                // No huge pages reserved: ordinary pages work, just with more IOTLB misses.
                Err(_) => {
                    let l = len.div_ceil(page) * page;
                    (
                        MmapOptions::new()
                            .len(l)
                            .map_anon()
                            .map_err(|source| DmaError::Alloc { len, source })?,
                        l,
                    )
                }
            }
        } else {
            let l = len.div_ceil(page) * page;
            (
                MmapOptions::new()
                    .len(l)
                    .map_anon()
                    .map_err(|source| DmaError::Alloc { len, source })?,
                l,
            )
        };
        let align = if mapped_len >= HUGE_PAGE {
            HUGE_PAGE as u64
        } else {
            self.page_size
        };
        let ptr = NonNull::new(mem.as_mut_ptr()).ok_or(DmaError::Empty)?;
        // SAFETY: `mem` is owned by the region created below and stays mapped until its Drop,
        // which unmaps the DMA mapping first.
        let iova = unsafe { self.map(ptr.as_ptr(), mapped_len as u64, align)? };
        Ok(DmaRegion {
            space: Arc::clone(self),
            ptr,
            len: mapped_len,
            iova,
            _memory: Some(mem),
            status_room: false,
        })
    }

    /// Maps memory the caller owns for zero-copy I/O.
    ///
    /// # Safety
    /// `ptr..ptr+len` must stay allocated and must not be unmapped or remapped until the
    /// returned region is dropped, and the caller must not access it through references while
    /// the device may be writing it (only while no request using it is in flight).
    pub unsafe fn register(
        self: &Arc<Self>,
        ptr: NonNull<u8>,
        len: usize,
    ) -> Result<DmaRegion, DmaError> {
        let page = self.page_size as usize;
        if len == 0 {
            return Err(DmaError::Empty);
        }
        if !(ptr.as_ptr() as usize).is_multiple_of(page) || !len.is_multiple_of(page) {
            return Err(DmaError::Unaligned {
                addr: ptr.as_ptr() as usize,
                len,
                page: self.page_size,
            });
        }
        // SAFETY: the caller keeps the memory alive for the region's lifetime.
        let iova = unsafe { self.map(ptr.as_ptr(), len as u64, self.page_size)? };
        Ok(DmaRegion {
            space: Arc::clone(self),
            ptr,
            len,
            iova,
            _memory: None,
            status_room: false,
        })
    }
}

/// Memory mapped for the device at [`iova`](Self::iova). It is shared with the device, so the
/// driver reads and writes it only through raw pointers (volatile or atomic for ring fields).
#[derive(Debug)]
pub struct DmaRegion {
    space: Arc<DmaSpace>,
    ptr: NonNull<u8>,
    len: usize,
    iova: u64,
    /// The anonymous mapping, when the region owns its memory; dropped after the DMA unmap.
    _memory: Option<MmapMut>,
    /// Carved into buffers with status room ([`DmaRegion::into_bufs_with_status_room`]).
    status_room: bool,
}

// SAFETY: the region is plain memory plus an IOVA; who may touch which bytes when is governed
// by the queues that use it, which are themselves owned by one thread at a time.
unsafe impl Send for DmaRegion {}
// SAFETY: as above; shared references only give out raw pointers and IOVAs.
unsafe impl Sync for DmaRegion {}

impl DmaRegion {
    pub fn iova(&self) -> u64 {
        self.iova
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The DMA space (device) the region is mapped for.
    pub fn space(&self) -> &Arc<DmaSpace> {
        &self.space
    }

    /// Names the region's DMA space: equal for regions of one space, different otherwise.
    pub fn space_id(&self) -> usize {
        Arc::as_ptr(&self.space) as usize
    }

    /// Splits the region into as many buffers of `size` bytes as fit (a pool for I/O).
    pub fn into_bufs(self, size: usize) -> Vec<DmaBuf> {
        self.carve(size, size, false)
    }

    /// Splits the region into buffers of `size` bytes, each followed by room for the
    /// device's status byte, so that a read takes its data and its status in one
    /// descriptor (see [`DmaBuf::has_status_room`]). Buffers start every
    /// [`status_room_stride(size)`](status_room_stride) bytes, each aligned to
    /// [`STATUS_ROOM_ALIGN`].
    pub fn into_bufs_with_status_room(self, size: usize) -> Vec<DmaBuf> {
        self.carve(size, status_room_stride(size), true)
    }

    fn carve(mut self, size: usize, stride: usize, status_room: bool) -> Vec<DmaBuf> {
        self.status_room = status_room;
        let region = Arc::new(self);
        // The last buffer needs only its own bytes and, with status room, one more.
        let need = size + usize::from(status_room);
        let count = match region.len.checked_sub(need) {
            Some(rest) if size > 0 => rest / stride + 1,
            _ => 0,
        };
        (0..count)
            .map(|i| DmaBuf {
                space_id: region.space_id(),
                region: Arc::clone(&region),
                offset: i * stride,
                len: size,
                capacity: size,
            })
            .collect()
    }

    /// A buffer over `offset..offset + len` of a shared region, for a caller that names its
    /// buffers by address inside memory it allocated (the C API) instead of carving a pool.
    /// `None` when the range is empty or leaves the region.
    ///
    /// # Safety
    /// Buffers made this way may overlap each other and the region's other buffers. While
    /// one is in flight, no buffer over any of its bytes may be read or written through
    /// [`DmaBuf::as_slice`] / [`DmaBuf::as_mut_slice`]; the caller answers for that.
    pub unsafe fn buf_at(self: &Arc<Self>, offset: usize, len: usize) -> Option<DmaBuf> {
        let end = offset.checked_add(len)?;
        if len == 0 || end > self.len {
            return None;
        }
        Some(DmaBuf {
            space_id: self.space_id(),
            region: Arc::clone(self),
            offset,
            len,
            capacity: len,
        })
    }

    /// The whole region as one buffer.
    pub fn into_buf(self) -> DmaBuf {
        let len = self.len;
        DmaBuf {
            space_id: self.space_id(),
            region: Arc::new(self),
            offset: 0,
            len,
            capacity: len,
        }
    }
}

impl Drop for DmaRegion {
    fn drop(&mut self) {
        // While the device may run, the region stays mapped and alive until `quiesce`;
        // afterwards it is unmapped before the memory goes back to the system.
        let mut deferred = self
            .space
            .deferred
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(list) = deferred.as_mut() {
            list.push(DeferredRegion {
                iova: self.iova,
                len: self.len,
                _memory: self._memory.take(),
            });
            return;
        }
        drop(deferred);
        self.space.release(self.iova, self.len);
    }
}

impl Drop for DmaSpace {
    fn drop(&mut self) {
        // The last handle is gone, so no device object is left to run the device: release
        // what was deferred.
        self.quiesce();
    }
}

/// A buffer for I/O data: a range of a [`DmaRegion`], owned by whoever holds it. A request
/// takes the buffer when it is submitted and gives it back with its completion, so the
/// slice accessors never alias memory the device is using.
///
/// Why plain slices are sound here, unlike the rings (which are only touched with volatile
/// and atomic accesses): the device may touch a buffer only between the release fence that
/// publishes its descriptor and the acquire load of the used index that reports it done,
/// and during that span the buffer is inside the in-flight request, out of every caller's
/// reach. A request that never completes (a broken queue, an abandoned control command)
/// does not give its buffer back: the queue keeps it until the device is reset.
#[derive(Debug)]
pub struct DmaBuf {
    region: Arc<DmaRegion>,
    /// The region's [`DmaRegion::space_id`], noted when the buffer is carved so that a queue
    /// checks a buffer's space with one compare.
    space_id: usize,
    offset: usize,
    len: usize,
    /// The length it was carved with; `len` may be shortened and restored up to it.
    capacity: usize,
}

/// Alignment of each buffer carved with [`DmaRegion::into_bufs_with_status_room`]: one
/// 512-byte block. A device that hands the data to an `O_DIRECT` host file (QEMU with
/// `cache=none`) bounces buffers below the host's alignment; 512 avoids that where the host
/// asks for 512 (not on 4Kn disks). Page alignment would cost a whole page per buffer, and
/// in the guest it measured no faster than 64- or 512-byte alignment (docs/benchmarks.md,
/// tenth session), though a 4 KiB buffer then spans two pages.
pub const STATUS_ROOM_ALIGN: usize = 512;

/// Distance between the starts of buffers of `size` bytes carved with status room: the data,
/// one byte, rounded up to [`STATUS_ROOM_ALIGN`].
pub fn status_room_stride(size: usize) -> usize {
    (size + 1).next_multiple_of(STATUS_ROOM_ALIGN)
}

impl DmaBuf {
    #[inline]
    pub fn iova(&self) -> u64 {
        self.region.iova + self.offset as u64
    }

    /// The [`DmaRegion::space_id`] of the space the buffer is mapped in.
    #[inline]
    pub fn space_id(&self) -> usize {
        self.space_id
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes, for reading the data a completed read brought in.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the range lies in the live region; this buffer is the only handle on it
        // (buffers are carved disjointly), and it is not in flight while the caller holds it.
        unsafe { std::slice::from_raw_parts(self.region.ptr.as_ptr().add(self.offset), self.len) }
    }

    /// The bytes, for filling a buffer before a write.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as for `as_slice`, and `&mut self` makes the access exclusive.
        unsafe {
            std::slice::from_raw_parts_mut(self.region.ptr.as_ptr().add(self.offset), self.len)
        }
    }

    /// Shortens the buffer to its first `len` bytes (for a short final transfer).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Sets the length anywhere up to the length the buffer was made with.
    #[inline]
    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(self.capacity);
    }

    /// Whether the byte just after the data belongs to the driver: true for buffers carved
    /// with [`DmaRegion::into_bufs_with_status_room`]. A virtio-blk read into such a buffer
    /// alone (not a vectored read, a write or any other op, and never on virtio-scsi) has
    /// the device write its status byte there, data and status in one descriptor. So such a
    /// read overwrites the byte after `len`, even when `len` is below the capacity and even
    /// when the read fails; bytes past `len` are unspecified afterwards.
    #[inline]
    pub fn has_status_room(&self) -> bool {
        // Kept in the region, not in each buffer: a `DmaBuf` moves with every request, and
        // a larger one costs the hot path more stores.
        self.region.status_room
    }

    /// The byte after the data, for a buffer with status room only.
    #[inline]
    fn status_byte_ptr(&self) -> *mut u8 {
        assert!(self.has_status_room(), "a buffer without status room");
        // SAFETY: len <= capacity, and a buffer with status room was carved with at least
        // one byte of the region after capacity (`carve`), which no other buffer covers.
        unsafe { self.region.ptr.as_ptr().add(self.offset + self.len) }
    }

    /// Stores `value` in the byte after the data (only for a buffer with status room).
    #[inline]
    pub(crate) fn set_status_byte(&self, value: u8) {
        // SAFETY: the byte is this buffer's (`status_byte_ptr`); it is shared with the
        // device while the request is in flight, hence volatile.
        unsafe { self.status_byte_ptr().write_volatile(value) }
    }

    /// The byte after the data (only for a buffer with status room).
    #[inline]
    pub(crate) fn status_byte(&self) -> u8 {
        // SAFETY: as for `set_status_byte`.
        unsafe { self.status_byte_ptr().read_volatile() }
    }

    /// The length the buffer was made with.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_inside_the_ranges_with_alignment() {
        let mut a = IovaAllocator::new(&[4096..0xfee0_0000, 0xfef0_0000..(1 << 39)]);
        let x = a.alloc(4096, 4096).unwrap();
        assert_eq!(x, 4096);
        let huge = a.alloc(2 << 20, 2 << 20).unwrap();
        assert_eq!(huge % (2 << 20), 0);
        assert!(huge >= 8192);
        // Too big for the low range: lands above the MSI window.
        let big = a.alloc(0x1_0000_0000, 4096).unwrap();
        assert!(big >= 0xfef0_0000 && big + 0x1_0000_0000 <= 1 << 39);
        assert!(a.alloc(1 << 40, 4096).is_none());
        assert!(a.alloc(0, 4096).is_none());
    }

    #[test]
    fn buffers_with_status_room_keep_a_byte_after_each_inside_the_region() {
        assert_eq!(status_room_stride(4096), 4608);
        assert_eq!(status_room_stride(511), 512);
        assert_eq!(status_room_stride(512), 1024);
        let space = DmaSpace::identity();
        // 12 KiB: two 4608-byte strides leave 3072 bytes, too few for a third 4096 + 1.
        let bufs = space
            .alloc(3 * 4096)
            .unwrap()
            .into_bufs_with_status_room(4096);
        assert_eq!(bufs.len(), 2);
        // 16 KiB: a third one whose data and status byte end 3071 bytes before the end.
        let bufs = space
            .alloc(4 * 4096)
            .unwrap()
            .into_bufs_with_status_room(4096);
        assert_eq!(bufs.len(), 3);
        for (i, b) in bufs.iter().enumerate() {
            assert!(b.has_status_room());
            assert_eq!((b.len(), b.capacity()), (4096, 4096));
            assert_eq!(b.iova() - bufs[0].iova(), 4608 * i as u64);
            assert_eq!(b.iova() % STATUS_ROOM_ALIGN as u64, 0);
        }
        // The status byte is its own: writing it leaves the next buffer's data alone.
        let mut bufs = bufs;
        bufs[1].as_mut_slice().fill(0x5a);
        bufs[0].set_status_byte(0xff);
        assert_eq!(bufs[0].status_byte(), 0xff);
        assert!(bufs[1].as_slice().iter().all(|&x| x == 0x5a));
        // 40 KiB = 8 strides + 4096 bytes: the ninth buffer's data would fit, but not its
        // status byte.
        assert_eq!(
            space
                .alloc(10 * 4096)
                .unwrap()
                .into_bufs_with_status_room(4096)
                .len(),
            8
        );
        // Plain buffers have none.
        let plain = space.alloc(8192).unwrap().into_bufs(4096);
        assert_eq!(plain.len(), 2);
        assert!(!plain[0].has_status_room());
    }

    #[test]
    fn buffers_at_an_offset_stay_inside_their_region() {
        let space = DmaSpace::identity();
        let region = Arc::new(space.alloc(8192).unwrap());
        // SAFETY: no buffer made here is in flight; only lengths and addresses are read.
        let (inside, whole, past, empty, wraps) = unsafe {
            (
                region.buf_at(512, 1024),
                region.buf_at(0, 8192),
                region.buf_at(4096, 4097),
                region.buf_at(100, 0),
                region.buf_at(usize::MAX, 2),
            )
        };
        let inside = inside.unwrap();
        assert_eq!(inside.len(), 1024);
        assert_eq!(inside.iova(), region.iova() + 512);
        assert_eq!(inside.space_id(), region.space_id());
        assert_eq!(whole.unwrap().len(), 8192);
        assert!(past.is_none() && empty.is_none() && wraps.is_none());
    }

    #[test]
    fn freeing_merges_neighbours_back_into_one_range() {
        let whole = 0x1000..0x10_0000;
        let mut a = IovaAllocator::new(std::slice::from_ref(&whole));
        let blocks: Vec<u64> = (0..8).map(|_| a.alloc(0x2000, 0x1000).unwrap()).collect();
        assert_eq!(blocks[1], blocks[0] + 0x2000);
        for &b in blocks.iter().rev().step_by(2) {
            a.free(b, 0x2000);
        }
        for &b in blocks.iter().step_by(2) {
            a.free(b, 0x2000);
        }
        assert_eq!(a.free_ranges(), std::slice::from_ref(&whole));
    }
}
