//! Where a virtqueue's areas lie in its memory (virtio 1.2, 2.6 and 2.8): the descriptor
//! area at offset 0, the driver area, the device area, then uvio's indirect tables. Both ring
//! formats use the same three areas, under different names and sizes.

use super::queue::DESC_SIZE;

/// The largest split ring (virtio 1.2, 2.6: "Queue Size ... maximum 32768", and uvio's
/// 16-bit free-running indices need a power of two no larger than this).
const MAX_SPLIT_SIZE: u16 = 16384;
/// The largest packed ring (virtio 1.2, 2.8: "up to 2^15 entries").
const MAX_PACKED_SIZE: u16 = 32768;
/// A packed ring's event suppression structure: offset/wrap and flags.
pub(crate) const EVENT_SIZE: usize = 4;

/// Byte offsets of a queue's areas inside its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLayout {
    pub size: u16,
    /// The driver area, written by the driver: the split ring's available ring, or the
    /// packed ring's driver event suppression structure.
    pub driver: usize,
    /// The device area, written by the device: the used ring, or the device event
    /// suppression structure.
    pub device: usize,
    /// The indirect tables: one of `indirect_max` descriptors per ring entry (split) or per
    /// buffer id (packed).
    pub indirect: usize,
    /// Descriptors per indirect table (0: no indirect tables).
    pub indirect_max: u16,
    pub total: usize,
}

impl RingLayout {
    /// A split ring of `size` entries (a power of two, at most 16384).
    pub fn split(size: u16, indirect_max: u16) -> Option<Self> {
        if !size.is_power_of_two() || size > MAX_SPLIT_SIZE {
            return None;
        }
        let n = usize::from(size);
        // flags, idx, the ring, used_event; the used ring is 4-aligned.
        let avail = DESC_SIZE * n;
        let used = (avail + 6 + 2 * n).next_multiple_of(4);
        // flags, idx, the elements, avail_event.
        Self::with_tables(size, avail, used, used + 6 + 8 * n, indirect_max)
    }

    /// A packed ring of `size` entries (1..=32768, any value: packed rings need not be
    /// powers of two).
    pub fn packed(size: u16, indirect_max: u16) -> Option<Self> {
        if size == 0 || size > MAX_PACKED_SIZE {
            return None;
        }
        // The ring is 16-aligned at offset 0 and a multiple of 16 long, so the event areas
        // after it are 4-aligned.
        let driver_event = DESC_SIZE * usize::from(size);
        let device_event = driver_event + EVENT_SIZE;
        Self::with_tables(
            size,
            driver_event,
            device_event,
            device_event + EVENT_SIZE,
            indirect_max,
        )
    }

    /// The layout with its indirect tables from the first 16-aligned offset at or after
    /// `end`; `None` if it overflows.
    fn with_tables(
        size: u16,
        driver: usize,
        device: usize,
        end: usize,
        indirect_max: u16,
    ) -> Option<Self> {
        let indirect = end.next_multiple_of(DESC_SIZE);
        let tables = usize::from(size)
            .checked_mul(usize::from(indirect_max))?
            .checked_mul(DESC_SIZE)?;
        Some(RingLayout {
            size,
            driver,
            device,
            indirect,
            indirect_max,
            total: indirect.checked_add(tables)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_layout_follows_the_spec_alignment() {
        let l = RingLayout::split(256, 0).unwrap();
        assert_eq!((l.driver, l.device), (4096, 4096 + 6 + 512 + 2));
        assert_eq!(l.device % 4, 0);
        assert_eq!(l.indirect, (l.device + 6 + 8 * 256).next_multiple_of(16));
        assert_eq!(RingLayout::split(8, 4).unwrap().total % 16, 0);
        assert!(RingLayout::split(100, 0).is_none());
        assert!(RingLayout::split(32768, 0).is_none());
    }

    #[test]
    fn a_packed_layout_follows_the_spec_alignment() {
        let l = RingLayout::packed(256, 0).unwrap();
        assert_eq!((l.driver, l.device), (4096, 4100));
        assert_eq!((l.indirect, l.total), (4112, 4112));
        let l = RingLayout::packed(100, 8).unwrap();
        assert_eq!((l.driver, l.device, l.indirect), (1600, 1604, 1616));
        assert_eq!(l.total, 1616 + 100 * 8 * 16);
        assert!(RingLayout::packed(1, 0).is_some());
        assert!(RingLayout::packed(32768, 4).is_some());
        assert!(RingLayout::packed(0, 0).is_none());
        assert!(RingLayout::packed(32769, 0).is_none());
    }
}
