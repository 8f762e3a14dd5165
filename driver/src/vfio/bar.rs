//! A device BAR mapped into this process.

use std::ptr::NonNull;

/// A BAR mapped into this process. Every access is volatile and bounds-checked: this is
/// device memory, and a register offset the device gave us (through a capability) could be
/// wrong.
#[derive(Debug)]
pub struct MappedBar {
    pub(super) ptr: NonNull<u8>,
    pub(super) len: usize,
}

// SAFETY: the mapping is plain shared memory; every access goes through volatile reads and
// writes of whole registers, which any thread may issue.
unsafe impl Send for MappedBar {}
// SAFETY: as above; no method hands out references into the mapping.
unsafe impl Sync for MappedBar {}

macro_rules! bar_access {
    ($read:ident, $write:ident, $t:ty) => {
        #[doc = concat!("Volatile read of a `", stringify!($t), "` at `offset`, or `None` when it does not fit or is misaligned.")]
        pub fn $read(&self, offset: usize) -> Option<$t> {
            let p = self.checked::<$t>(offset)?;
            // SAFETY: `checked` proved `offset..offset+size` lies inside the live mapping and
            // is aligned for the type.
            Some(unsafe { std::ptr::read_volatile(p) })
        }

        #[doc = concat!("Volatile write of a `", stringify!($t), "` at `offset`; `false` when it does not fit or is misaligned.")]
        pub fn $write(&self, offset: usize, value: $t) -> bool {
            match self.checked::<$t>(offset) {
                Some(p) => {
                    // SAFETY: as for the read.
                    unsafe { std::ptr::write_volatile(p, value) };
                    true
                }
                None => false,
            }
        }
    };
}

impl MappedBar {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn checked<T>(&self, offset: usize) -> Option<*mut T> {
        let end = offset.checked_add(size_of::<T>())?;
        if end > self.len || !offset.is_multiple_of(size_of::<T>()) {
            return None;
        }
        // SAFETY: offset + size <= len, so the result stays inside the mapping.
        Some(unsafe { self.ptr.as_ptr().add(offset) }.cast::<T>())
    }

    bar_access!(read_u8, write_u8, u8);
    bar_access!(read_u16, write_u16, u16);
    bar_access!(read_u32, write_u32, u32);
}

impl Drop for MappedBar {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `map_bar`, unmapped once here.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
