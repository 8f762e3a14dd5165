//! The DMA memory regions C allocated for a device, and how a data buffer C names by
//! address becomes a driver buffer: it must lie inside one region, since only those
//! addresses are mapped for the device.
//!
//! Each queue keeps its own copy of the region list and refreshes it when the list's
//! generation moves, so a request looks its buffer up without taking a lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use driver::dma::{DmaBuf, DmaError, DmaRegion, DmaSpace};

use crate::error::CapiError;

/// The live regions of one device, sorted by address.
#[derive(Debug, Default)]
pub struct Regions {
    list: RwLock<Vec<Arc<DmaRegion>>>,
    /// Moves on every change of `list`.
    generation: AtomicU64,
}

impl Regions {
    /// Allocates a region of at least `len` bytes (whole pages) for the device.
    pub fn alloc(&self, dma: &Arc<DmaSpace>, len: usize) -> Result<Arc<DmaRegion>, DmaError> {
        let region = Arc::new(dma.alloc(len)?);
        let mut list = self.list.write().unwrap_or_else(|e| e.into_inner());
        let at = list.partition_point(|r| (r.as_ptr() as usize) < region.as_ptr() as usize);
        list.insert(at, Arc::clone(&region));
        self.generation.fetch_add(1, Ordering::Release);
        Ok(region)
    }

    /// Frees the region at `addr` of `len` bytes. Requests in flight on it keep its memory
    /// mapped until they complete.
    pub fn free(&self, addr: usize, len: usize) -> Result<(), CapiError> {
        let mut list = self.list.write().unwrap_or_else(|e| e.into_inner());
        let at = list
            .iter()
            .position(|r| r.as_ptr() as usize == addr && r.len() == len)
            .ok_or(CapiError::NotARegion { addr, len })?;
        list.remove(at);
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }
}

/// A queue's copy of the region list.
#[derive(Debug, Default)]
pub struct RegionView {
    generation: u64,
    list: Vec<Arc<DmaRegion>>,
}

impl RegionView {
    /// The driver buffer for `addr..addr + len`, which must lie inside one of `regions`.
    pub fn buf(
        &mut self,
        regions: &Regions,
        op: &'static str,
        addr: usize,
        len: usize,
    ) -> Result<DmaBuf, CapiError> {
        let current = regions.generation.load(Ordering::Acquire);
        if current != self.generation {
            let list = regions.list.read().unwrap_or_else(|e| e.into_inner());
            self.list.clone_from(&list);
            self.generation = current;
        }
        let outside = CapiError::NotDmaMemory { op, addr, len };
        // The last region starting at or below `addr` is the only one that can hold it.
        let at = self.list.partition_point(|r| r.as_ptr() as usize <= addr);
        let region = at
            .checked_sub(1)
            .and_then(|i| self.list.get(i))
            .ok_or_else(|| CapiError::NotDmaMemory { op, addr, len })?;
        let offset = addr - region.as_ptr() as usize;
        // SAFETY: libuvio never reads or writes a buffer's bytes through the driver's slice
        // accessors; the bytes belong to the C program, which (as the header says) must not
        // touch a buffer while its request is in flight.
        unsafe { region.buf_at(offset, len) }.ok_or(outside)
    }
}
