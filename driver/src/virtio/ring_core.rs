//! What a split and a packed virtqueue both keep: the ring's memory shared with the device
//! and its accesses, the chains in flight, the fault that broke the queue, and the check of
//! the lengths the device reports.
//!
//! Every access to the ring goes through here: little-endian, volatile (or atomic where the
//! device writes concurrently), at a byte offset inside the ring's layout.

use std::ptr::NonNull;
use std::sync::atomic::AtomicU16;

use super::layout::RingLayout;
use super::queue::{QueueFault, SharedMemory, UsedChain};

#[derive(Debug)]
pub struct RingCore {
    memory: Box<dyn SharedMemory>,
    base: NonNull<u8>,
    /// Where the ring's areas lie: every access stays below `layout.total`.
    pub(crate) layout: RingLayout,
    /// Chains added and not yet completed.
    pub(crate) in_flight: u16,
    /// Set when the device broke the queue; every later operation reports it.
    pub(crate) fault: Option<QueueFault>,
    /// Used lengths beyond a chain's writable buffers: a fault, or clamped (see
    /// [`RingCore::check_written`]).
    pub(crate) clamp_used_len: bool,
}

// SAFETY: the core owns its memory handle; the raw pointer only points into it. A queue is
// used by one thread at a time (`&mut self` on every operation that touches the ring).
unsafe impl Send for RingCore {}

impl RingCore {
    /// `None` unless `memory` holds `total` bytes at a 16-aligned IOVA and address (ring
    /// descriptors are 16-aligned, which every access's alignment relies on).
    pub(crate) fn new(memory: Box<dyn SharedMemory>, layout: RingLayout) -> Option<Self> {
        if memory.len() < layout.total
            || !memory.iova().is_multiple_of(16)
            || !(memory.ptr().as_ptr() as usize).is_multiple_of(16)
        {
            return None;
        }
        Some(RingCore {
            base: memory.ptr(),
            memory,
            layout,
            in_flight: 0,
            fault: None,
            clamp_used_len: false,
        })
    }

    /// The memory the ring lives in.
    pub fn memory(&self) -> &dyn SharedMemory {
        self.memory.as_ref()
    }

    pub fn iova(&self) -> u64 {
        self.memory.iova()
    }

    pub fn layout(&self) -> &RingLayout {
        &self.layout
    }

    pub fn size(&self) -> u16 {
        self.layout.size
    }

    #[inline]
    fn at(&self, offset: usize) -> *mut u8 {
        debug_assert!(offset < self.layout.total);
        // SAFETY: every offset used is inside the layout, which fits in the memory.
        unsafe { self.base.as_ptr().add(offset) }
    }

    #[inline]
    pub(crate) fn write_u16(&self, offset: usize, value: u16) {
        // SAFETY: in bounds (see `at`) and 2-aligned: all ring fields are.
        unsafe { self.at(offset).cast::<u16>().write_volatile(value.to_le()) }
    }

    #[inline]
    pub(crate) fn write_u32(&self, offset: usize, value: u32) {
        // SAFETY: in bounds and 4-aligned (callers pass descriptor fields, used elements or
        // event areas).
        unsafe { self.at(offset).cast::<u32>().write_volatile(value.to_le()) }
    }

    #[inline]
    pub(crate) fn read_u16(&self, offset: usize) -> u16 {
        // SAFETY: as for `write_u16`.
        u16::from_le(unsafe { self.at(offset).cast::<u16>().read_volatile() })
    }

    #[inline]
    pub(crate) fn read_u32(&self, offset: usize) -> u32 {
        // SAFETY: as for `write_u32`.
        u32::from_le(unsafe { self.at(offset).cast::<u32>().read_volatile() })
    }

    #[inline]
    pub(crate) fn read_u64(&self, offset: usize) -> u64 {
        // SAFETY: in bounds and 8-aligned (callers pass descriptor words).
        u64::from_le(unsafe { self.at(offset).cast::<u64>().read_volatile() })
    }

    #[inline]
    pub(crate) fn write_u64(&self, offset: usize, value: u64) {
        // SAFETY: as for `read_u64`.
        unsafe { self.at(offset).cast::<u64>().write_volatile(value.to_le()) }
    }

    /// A 16-bit field the device writes concurrently (an index, a descriptor's flags).
    #[inline]
    pub(crate) fn atomic_u16(&self, offset: usize) -> &AtomicU16 {
        // SAFETY: in bounds and 2-aligned; the device accesses the field concurrently, which
        // is what atomics are for, and the memory lives as long as `self`.
        unsafe { AtomicU16::from_ptr(self.at(offset).cast::<u16>()) }
    }

    /// Writes the 16-byte descriptor at `offset` with two 8-byte stores, the address and
    /// then `tail` (length, flags and next or id, in the ring format's order), not four:
    /// under TCG each guest store costs a softmmu lookup.
    #[inline]
    pub(crate) fn write_descriptor(&self, offset: usize, iova: u64, tail: u64) {
        // The descriptor lies in the ring or in an indirect table of the layout and is
        // 16-aligned; the device does not read it until its chain is published.
        debug_assert!(offset + 16 <= self.layout.total && offset.is_multiple_of(16));
        self.write_u64(offset, iova);
        self.write_u64(offset + 8, tail);
    }

    /// Clears the whole ring (every area and indirect table) and forgets the chains in
    /// flight and any fault, for a queue that starts over after its device was reset: the
    /// device must find it as it found it new, or it would take stale descriptors as
    /// available.
    pub(crate) fn clear(&mut self) {
        // Every layout area is 4-aligned and the total a multiple of 4.
        for offset in (0..self.layout.total & !3).step_by(4) {
            self.write_u32(offset, 0);
        }
        self.in_flight = 0;
        self.fault = None;
    }

    /// A chain completed: it leaves the count in flight.
    #[inline]
    pub(crate) fn completed(&mut self, token: u64, written: u32) -> UsedChain {
        self.in_flight -= 1;
        UsedChain { token, written }
    }

    /// Breaks the queue: every later operation reports `fault`.
    #[cold]
    pub(crate) fn break_queue(&mut self, fault: QueueFault) -> QueueFault {
        log::error!("virtqueue broken: {fault}");
        self.fault = Some(fault);
        fault
    }

    /// The bytes the device says it wrote into chain `id`, whose device-writable buffers
    /// hold `writable`: more breaks the queue, unless lengths are clamped. QEMU's
    /// virtio-scsi counts the data of a WRITE in the used length (it adds the data-out size
    /// to the response size), so for virtio-scsi the length is a hint only; ids are still
    /// checked strictly.
    #[inline]
    pub(crate) fn check_written(
        &mut self,
        id: u32,
        written: u32,
        writable: u32,
    ) -> Result<u32, QueueFault> {
        if written <= writable {
            return Ok(written);
        }
        if self.clamp_used_len {
            return Ok(writable);
        }
        Err(self.break_queue(QueueFault::LengthTooLong {
            id,
            written,
            capacity: writable,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::{alloc_zeroed, dealloc, Layout};

    use super::*;

    /// Zeroed heap memory posing as DMA memory at a fake IOVA.
    #[derive(Debug)]
    pub struct HeapMemory {
        ptr: NonNull<u8>,
        len: usize,
        iova: u64,
    }

    // SAFETY: plain heap memory.
    unsafe impl Send for HeapMemory {}
    // SAFETY: plain heap memory.
    unsafe impl Sync for HeapMemory {}

    impl HeapMemory {
        pub fn new(len: usize, iova: u64) -> Self {
            let layout = Layout::from_size_align(len, 4096).unwrap();
            // SAFETY: non-zero size.
            let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).unwrap();
            HeapMemory { ptr, len, iova }
        }
    }

    impl Drop for HeapMemory {
        fn drop(&mut self) {
            // SAFETY: allocated in `new` with this layout.
            unsafe {
                dealloc(
                    self.ptr.as_ptr(),
                    Layout::from_size_align(self.len, 4096).unwrap(),
                )
            }
        }
    }

    // SAFETY: the allocation lives as long as the object and never moves.
    unsafe impl SharedMemory for HeapMemory {
        fn ptr(&self) -> NonNull<u8> {
            self.ptr
        }
        fn iova(&self) -> u64 {
            self.iova
        }
        fn len(&self) -> usize {
            self.len
        }
    }

    #[test]
    fn a_core_refuses_short_or_misaligned_memory() {
        let layout = RingLayout::packed(8, 4).unwrap();
        let short = HeapMemory::new(layout.total - 1, 0x1000);
        assert!(RingCore::new(Box::new(short), layout).is_none());
        let odd = HeapMemory::new(layout.total, 0x1008);
        assert!(RingCore::new(Box::new(odd), layout).is_none());
        let fine = HeapMemory::new(layout.total, 0x1000);
        assert!(RingCore::new(Box::new(fine), layout).is_some());
    }
}
