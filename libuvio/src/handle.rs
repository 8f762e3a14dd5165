//! Generation-checked handles: what C holds as `struct uvio_dev *` and `struct uvio_queue *`
//! is not an address but a number naming a slot of a table and the generation of the object
//! in it, so a closed, stale or mistyped handle is looked up and refused, never dereferenced.
//!
//! A handle's bits, low to high: 4 bits of kind (device or queue, so one is never taken for
//! the other), 12 bits of slot + 1 (so no handle is NULL), 16 bits of queue index, and 32
//! bits of generation, which counts every object ever put in the table: a slot reused after
//! a close gets a new generation, and the old handle no longer matches.

use std::sync::Arc;

#[cfg(not(target_pointer_width = "64"))]
compile_error!("libuvio's handles need 64-bit pointers");

const KIND_BITS: u32 = 4;
const SLOT_BITS: u32 = 12;
const QUEUE_SHIFT: u32 = KIND_BITS + SLOT_BITS;
const GENERATION_SHIFT: u32 = 32;

/// Most objects a table holds at once.
pub const MAX_SLOTS: usize = (1 << SLOT_BITS) - 1;

/// What a handle names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Device = 1,
    Queue = 2,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Device => "device",
            Kind::Queue => "queue",
        }
    }
}

/// An object's place in its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    slot: usize,
    generation: u32,
}

impl Key {
    /// The handle C holds for this object, or for its queue `queue`.
    pub fn handle(self, kind: Kind, queue: u16) -> usize {
        ((self.generation as usize) << GENERATION_SHIFT)
            | (usize::from(queue) << QUEUE_SHIFT)
            | ((self.slot + 1) << KIND_BITS)
            | kind as usize
    }

    /// The key and queue index a handle of `kind` encodes, if it can be one (whether its
    /// object is still there is the table's to say).
    pub fn decode(handle: usize, kind: Kind) -> Option<(Key, u16)> {
        if handle & ((1 << KIND_BITS) - 1) != kind as usize {
            return None;
        }
        let slot = (handle >> KIND_BITS) & MAX_SLOTS;
        let queue = (handle >> QUEUE_SHIFT) as u16;
        let generation = (handle >> GENERATION_SHIFT) as u32;
        if slot == 0 || generation == 0 || (kind == Kind::Device && queue != 0) {
            return None;
        }
        Some((
            Key {
                slot: slot - 1,
                generation,
            },
            queue,
        ))
    }
}

#[derive(Debug)]
struct Entry<T> {
    generation: u32,
    value: Option<Arc<T>>,
}

/// Objects C holds handles to.
#[derive(Debug)]
pub struct Table<T> {
    entries: Vec<Entry<T>>,
    /// The generation the next object gets (never 0).
    next_generation: u32,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Table<T> {
    pub const fn new() -> Self {
        Table {
            entries: Vec::new(),
            next_generation: 1,
        }
    }

    /// Puts `value` in a free slot; `None` when all [`MAX_SLOTS`] are taken.
    pub fn insert(&mut self, value: Arc<T>) -> Option<Key> {
        let slot = match self.entries.iter().position(|e| e.value.is_none()) {
            Some(slot) => slot,
            None if self.entries.len() < MAX_SLOTS => {
                self.entries.push(Entry {
                    generation: 0,
                    value: None,
                });
                self.entries.len() - 1
            }
            None => return None,
        };
        let generation = self.next_generation;
        self.next_generation = self.next_generation.checked_add(1).unwrap_or(1);
        self.entries[slot] = Entry {
            generation,
            value: Some(value),
        };
        Some(Key { slot, generation })
    }

    fn entry(&self, key: Key) -> Option<&Arc<T>> {
        self.entries
            .get(key.slot)
            .filter(|e| e.generation == key.generation)
            .and_then(|e| e.value.as_ref())
    }

    pub fn get(&self, key: Key) -> Option<Arc<T>> {
        self.entry(key).cloned()
    }

    /// Every object in the table.
    pub fn values(&self) -> impl Iterator<Item = &Arc<T>> {
        self.entries.iter().filter_map(|e| e.value.as_ref())
    }

    /// Takes the object out; its handles die with it.
    pub fn remove(&mut self, key: Key) -> Option<Arc<T>> {
        self.entry(key)?;
        self.entries[key.slot].value.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_object_handle_no_longer_resolves_even_when_its_slot_is_reused() {
        let mut table = Table::new();
        let a = table.insert(Arc::new("a")).unwrap();
        let handle = a.handle(Kind::Device, 0);
        assert_ne!(handle, 0);
        assert_eq!(Key::decode(handle, Kind::Device), Some((a, 0)));
        assert_eq!(table.remove(a).as_deref(), Some(&"a"));
        assert!(table.remove(a).is_none(), "a second remove finds nothing");
        let b = table.insert(Arc::new("b")).unwrap();
        // Same slot, new generation: the old handle is stale.
        assert_ne!(a, b);
        let (stale, _) = Key::decode(handle, Kind::Device).unwrap();
        assert!(table.get(stale).is_none());
        assert_eq!(table.get(b).as_deref(), Some(&"b"));
    }

    #[test]
    fn kinds_and_queue_indexes_are_part_of_the_handle() {
        let mut table = Table::new();
        let key = table.insert(Arc::new(1)).unwrap();
        let queue = key.handle(Kind::Queue, 513);
        assert_eq!(Key::decode(queue, Kind::Queue), Some((key, 513)));
        assert_eq!(Key::decode(queue, Kind::Device), None);
        assert_eq!(Key::decode(key.handle(Kind::Device, 0), Kind::Queue), None);
        for junk in [0usize, 1, 0x10, 0xdead_beef_0000, usize::MAX] {
            let device = Key::decode(junk, Kind::Device);
            assert!(
                device.is_none_or(|(k, _)| table.get(k).is_none()),
                "{junk:#x}"
            );
        }
    }

    #[test]
    fn the_table_refuses_past_its_slots() {
        let mut table = Table::new();
        for i in 0..MAX_SLOTS {
            assert!(table.insert(Arc::new(i)).is_some());
        }
        assert!(table.insert(Arc::new(0)).is_none());
    }
}
