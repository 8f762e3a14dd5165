//! Per-tag DMA memory: where a request's device header, status and sense live.
//!
//! Headers are plain little-endian values ([`Wire`]) copied in with one volatile store each
//! (a 16-byte virtio-blk header is two 8-byte stores, not sixteen 1-byte ones): under TCG
//! every guest store costs a softmmu lookup, so the store count is the cost.

use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::dma::DmaRegion;

/// Plain data that may be copied into or out of device-shared memory as it is.
///
/// # Safety
/// Every bit pattern must be a valid value (the device may write anything), and the type
/// must have no references or pointers. Multi-byte fields are stored little-endian by
/// whoever builds the value.
pub unsafe trait Wire: Copy {}

// SAFETY: integers and arrays of them accept every bit pattern.
unsafe impl Wire for u8 {}
// SAFETY: as above.
unsafe impl Wire for u16 {}
// SAFETY: as above.
unsafe impl Wire for u32 {}
// SAFETY: as above.
unsafe impl Wire for u64 {}
// SAFETY: as above.
unsafe impl<const N: usize> Wire for [u64; N] {}

/// The slots of one queue: `depth` slots of `slot_size` bytes in one DMA region.
#[derive(Debug)]
pub(crate) struct SlotArea {
    region: DmaRegion,
    slot_size: usize,
    depth: u16,
}

/// Every slot is at least this long (sizes are rounded up to it), so an access whose offset
/// and size are constants below it needs no bounds check at run time.
const MIN_SLOT: usize = 64;

impl SlotArea {
    /// Slot sizes are rounded up to 64 bytes, so every slot is 64-aligned (regions are
    /// page-aligned) and any [`Wire`] value at an aligned offset is aligned.
    pub(crate) fn new(region: DmaRegion, slot_size: usize, depth: u16) -> Option<Self> {
        let slot_size = slot_size.max(1).next_multiple_of(MIN_SLOT);
        if region.len() < slot_size * usize::from(depth) {
            return None;
        }
        Some(SlotArea {
            region,
            slot_size,
            depth,
        })
    }

    pub(crate) fn region(&self) -> &DmaRegion {
        &self.region
    }

    /// The slot of `tag` (< depth), lent for as long as the area is borrowed.
    #[inline]
    pub(crate) fn slot(&self, tag: u16) -> Slot<'_> {
        assert!(tag < self.depth, "tag {tag} beyond the queue depth");
        let offset = usize::from(tag) * self.slot_size;
        Slot {
            // SAFETY: tag < depth and the region holds depth slots (checked in `new`).
            ptr: unsafe { NonNull::new_unchecked(self.region.as_ptr().add(offset)) },
            iova: self.region.iova() + offset as u64,
            len: self.slot_size,
            _area: PhantomData,
        }
    }
}

/// One tag's slot, lent by its queue for one encode or decode. It cannot outlive the queue's
/// borrow, and it is neither `Copy` nor `Clone`.
#[derive(Debug)]
pub struct Slot<'q> {
    ptr: NonNull<u8>,
    iova: u64,
    len: usize,
    _area: PhantomData<&'q SlotArea>,
}

impl Slot<'_> {
    /// The device's address of byte `offset` of the slot.
    #[inline]
    pub fn iova(&self, offset: usize) -> u64 {
        self.iova + offset as u64
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn at<T: Wire>(&self, offset: usize) -> *mut T {
        let end = offset + size_of::<T>();
        assert!(
            (end <= MIN_SLOT || end <= self.len) && offset.is_multiple_of(align_of::<T>()),
            "slot access out of bounds or misaligned"
        );
        // SAFETY: in bounds (checked above).
        unsafe { self.ptr.as_ptr().add(offset).cast::<T>() }
    }

    /// Stores `value` at `offset` (volatile: the device reads it once the chain is published).
    #[inline]
    pub fn put<T: Wire>(&self, offset: usize, value: T) {
        let p = self.at::<T>(offset);
        // SAFETY: in bounds and aligned (`at`); the slot belongs to a tag that is not in
        // flight while it is encoded, so the device is not reading it.
        unsafe { p.write_volatile(value) }
    }

    /// Loads the value the device wrote at `offset` (volatile).
    #[inline]
    pub fn get<T: Wire>(&self, offset: usize) -> T {
        let p = self.at::<T>(offset);
        // SAFETY: in bounds and aligned (`at`); the chain completed, so the device is done
        // with the slot. Any bit pattern is a valid `T` (`Wire`).
        unsafe { p.read_volatile() }
    }

    /// Copies `bytes` in at `offset` (for variable-length parameter lists, off the hot path).
    pub fn put_bytes(&self, offset: usize, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            self.put::<u8>(offset + i, *b);
        }
    }

    /// Copies `out.len()` bytes the device wrote at `offset` (sense data, off the hot path).
    pub fn get_bytes(&self, offset: usize, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            *b = self.get::<u8>(offset + i);
        }
    }
}
