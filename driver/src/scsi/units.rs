//! The table of disk LUNs a host serves I/O to. Queues keep a private copy and refresh it
//! only when the table's generation changes (a hot-plug, a resize), so the I/O path reads
//! no lock in the steady state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::block::Limits;

/// What a queue needs to address and check I/O to one LUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitInfo {
    /// The virtio-scsi LUN field.
    pub lun_field: [u8; 8],
    pub limits: Limits,
    /// Capacity in bytes.
    pub capacity: u64,
    /// READ/WRITE(16) needed (more than 2^32 blocks).
    pub use_16: bool,
    /// The device honours FUA (DPOFUA in MODE SENSE).
    pub fua: bool,
    /// Most requests in flight to this LUN per queue (`cmd_per_lun`).
    pub budget: u16,
    /// Gone (hot-unplugged): I/O to it fails at once.
    pub removed: bool,
}

/// Units by index; an index, once given, always names the same LUN.
#[derive(Debug, Default)]
pub struct UnitTable {
    generation: AtomicU64,
    units: Mutex<Vec<UnitInfo>>,
}

impl UnitTable {
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A copy of every unit and the generation it belongs to.
    pub fn snapshot(&self) -> (u64, Vec<UnitInfo>) {
        let units = self.units.lock().unwrap_or_else(|e| e.into_inner());
        (self.generation(), units.clone())
    }

    /// Adds a unit and returns its index.
    pub fn add(&self, info: UnitInfo) -> u32 {
        let mut units = self.units.lock().unwrap_or_else(|e| e.into_inner());
        units.push(info);
        self.generation.fetch_add(1, Ordering::AcqRel);
        (units.len() - 1) as u32
    }

    /// Changes unit `index` (resize, removal).
    pub fn update(&self, index: u32, change: impl FnOnce(&mut UnitInfo)) {
        let mut units = self.units.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(unit) = units.get_mut(index as usize) {
            change(unit);
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    pub fn get(&self, index: u32) -> Option<UnitInfo> {
        self.units
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(index as usize)
            .cloned()
    }

    /// The index of the unit with LUN field `lun_field`, if any (removed ones too).
    pub fn find(&self, lun_field: &[u8; 8]) -> Option<u32> {
        let units = self.units.lock().unwrap_or_else(|e| e.into_inner());
        units
            .iter()
            .position(|u| &u.lun_field == lun_field)
            .map(|i| i as u32)
    }
}
