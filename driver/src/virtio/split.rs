//! The split virtqueue (virtio 1.2, 2.7), driven by polling.
//!
//! Driver-private state (free list, chain bookkeeping, indices) never lives in shared memory:
//! the device can scribble on the rings, so nothing read back from them is trusted beyond the
//! used ring's id and length, and those are checked. Shared fields are accessed with volatile
//! or atomic operations only.

use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU16, Ordering};

use super::queue::{
    AddError, QueueAddresses, QueueFault, Segment, SharedMemory, UsedChain, Virtqueue,
};

const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
const DESC_F_INDIRECT: u16 = 4;
const AVAIL_F_NO_INTERRUPT: u16 = 1;
const USED_F_NO_NOTIFY: u16 = 1;
const DESC_SIZE: usize = 16;

/// Byte offsets of the areas of a split queue inside its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitLayout {
    pub size: u16,
    pub avail: usize,
    pub used: usize,
    pub indirect: usize,
    /// Descriptors per indirect table (0: no indirect tables).
    pub indirect_max: u16,
    pub total: usize,
}

impl SplitLayout {
    /// The layout for a ring of `size` entries (a power of two, at most 16384) with one
    /// indirect table of `indirect_max` descriptors per ring entry.
    pub fn new(size: u16, indirect_max: u16) -> Option<Self> {
        if !size.is_power_of_two() || size > 16384 {
            return None;
        }
        let n = usize::from(size);
        let avail = DESC_SIZE * n;
        let used = (avail + 6 + 2 * n).next_multiple_of(4);
        let indirect = (used + 6 + 8 * n).next_multiple_of(16);
        let total = indirect + n * usize::from(indirect_max) * DESC_SIZE;
        Some(SplitLayout {
            size,
            avail,
            used,
            indirect,
            indirect_max,
            total,
        })
    }
}

/// Per-head bookkeeping of a chain in flight.
#[derive(Debug, Clone, Copy, Default)]
struct Chain {
    token: u64,
    /// Ring descriptors the chain holds; 0 when the head is not in flight.
    descriptors: u16,
    /// Total length of its device-writable buffers: the most the device may report written.
    writable: u32,
}

/// A split virtqueue in shared memory.
#[derive(Debug)]
pub struct SplitQueue {
    memory: Box<dyn SharedMemory>,
    base: NonNull<u8>,
    iova: u64,
    layout: SplitLayout,
    event_idx: bool,
    /// Chains allowed in flight at once (the tag depth of the queue's owner). With indirect
    /// descriptors, direct chains are used only while one descriptor stays for each of them.
    depth: u16,
    /// Private free-list links; `next[i]` is also the chain link written into descriptor i.
    next: Vec<u16>,
    free_head: u16,
    num_free: u16,
    chains: Vec<Chain>,
    /// Next free slot in the avail ring (free-running).
    avail_idx: u16,
    /// avail idx at the last publish, for the EVENT_IDX test.
    published_idx: u16,
    /// Next used slot to read (free-running).
    last_used: u16,
    in_flight: u16,
    fault: Option<QueueFault>,
    /// Used lengths beyond a chain's writable buffers: a fault, or clamped (see
    /// [`SplitQueue::clamp_used_len`]).
    clamp_used_len: bool,
}

// SAFETY: the queue owns its memory handle; the raw pointer only points into it. A queue is
// used by one thread at a time (`&mut self` on every operation that touches the rings).
unsafe impl Send for SplitQueue {}

impl SplitQueue {
    /// Builds an empty queue in `memory`, which must be zeroed and at least `layout.total`
    /// bytes. `event_idx` is whether VIRTIO_F_EVENT_IDX was negotiated.
    pub fn new(
        memory: Box<dyn SharedMemory>,
        layout: SplitLayout,
        event_idx: bool,
        depth: u16,
    ) -> Option<Self> {
        if memory.len() < layout.total || !memory.iova().is_multiple_of(16) {
            return None;
        }
        let n = layout.size;
        let base = memory.ptr();
        let iova = memory.iova();
        let queue = SplitQueue {
            memory,
            base,
            iova,
            layout,
            event_idx,
            depth: depth.clamp(1, n),
            next: (1..=n).map(|i| i % n).collect(),
            free_head: 0,
            num_free: n,
            chains: vec![Chain::default(); usize::from(n)],
            avail_idx: 0,
            published_idx: 0,
            last_used: 0,
            in_flight: 0,
            fault: None,
            clamp_used_len: false,
        };
        if event_idx {
            queue.push_used_event();
        } else {
            // Polled: the device need not interrupt. (With EVENT_IDX, used_event does this.)
            queue.write_u16(layout.avail, AVAIL_F_NO_INTERRUPT);
        }
        Some(queue)
    }

    /// Clamps a used length beyond the chain's writable buffers instead of breaking the
    /// queue. QEMU's virtio-scsi counts the data of a WRITE in the used length (it adds the
    /// data-out size to the response size), so for virtio-scsi the length is a hint only;
    /// ids are still checked strictly.
    pub fn clamp_used_len(mut self) -> Self {
        self.clamp_used_len = true;
        self
    }

    pub fn layout(&self) -> &SplitLayout {
        &self.layout
    }

    pub fn memory(&self) -> &dyn SharedMemory {
        self.memory.as_ref()
    }

    fn at(&self, offset: usize) -> *mut u8 {
        debug_assert!(offset < self.layout.total);
        // SAFETY: every offset used is inside the layout, which fits in the memory.
        unsafe { self.base.as_ptr().add(offset) }
    }

    fn write_u16(&self, offset: usize, value: u16) {
        // SAFETY: in bounds (see `at`) and 2-aligned: all ring fields are.
        unsafe { self.at(offset).cast::<u16>().write_volatile(value.to_le()) }
    }

    fn read_u16(&self, offset: usize) -> u16 {
        // SAFETY: as for `write_u16`.
        u16::from_le(unsafe { self.at(offset).cast::<u16>().read_volatile() })
    }

    fn read_u32(&self, offset: usize) -> u32 {
        // SAFETY: in bounds and 4-aligned (used ring elements).
        u32::from_le(unsafe { self.at(offset).cast::<u32>().read_volatile() })
    }

    fn atomic_u16(&self, offset: usize) -> &AtomicU16 {
        // SAFETY: in bounds and 2-aligned; the device accesses this index concurrently, which
        // is what atomics are for, and the memory lives as long as `self`.
        unsafe { AtomicU16::from_ptr(self.at(offset).cast::<u16>()) }
    }

    fn write_desc(&self, table: usize, index: u16, segment: &Segment, flags: u16, next: u16) {
        let p = self.at(table + usize::from(index) * DESC_SIZE);
        let flags = flags
            | if segment.device_writes {
                DESC_F_WRITE
            } else {
                0
            };
        // len, flags and next in one little-endian word: two stores per descriptor, not four
        // (each guest store costs a softmmu lookup under TCG).
        let tail = u64::from(segment.len) | u64::from(flags) << 32 | u64::from(next) << 48;
        // SAFETY: the descriptor lies in the table (index < table size by construction) and
        // is 16-aligned; the device does not read it until the chain is published.
        unsafe {
            p.cast::<u64>().write_volatile(segment.iova.to_le());
            p.add(8).cast::<u64>().write_volatile(tail.to_le());
        }
    }

    /// Keeps `used_event` half the index space ahead, so the device never decides that an
    /// interrupt is due: completions are polled.
    fn push_used_event(&self) {
        let used_event = self.layout.avail + 4 + 2 * usize::from(self.layout.size);
        self.write_u16(used_event, self.avail_idx.wrapping_add(0x8000));
    }

    fn take_free(&mut self) -> u16 {
        let head = self.free_head;
        self.free_head = self.next[usize::from(head)];
        self.num_free -= 1;
        head
    }

    fn break_queue(&mut self, fault: QueueFault) -> QueueFault {
        log::error!("virtqueue broken: {fault}");
        self.fault = Some(fault);
        fault
    }
}

impl Virtqueue for SplitQueue {
    fn add(&mut self, segments: &[Segment], token: u64) -> Result<(), AddError> {
        if let Some(fault) = self.fault {
            return Err(AddError::Broken(fault));
        }
        let n = segments.len();
        if n == 0 {
            return Err(AddError::Empty);
        }
        let free = usize::from(self.num_free);
        let others = usize::from(self.depth.saturating_sub(self.in_flight + 1));
        let indirect_ok = self.layout.indirect_max > 0 && n > 1;
        // Direct when the chain fits and, if indirect tables exist, enough descriptors remain
        // for every other chain the owner may still add; indirect otherwise.
        let direct = n <= free && (!indirect_ok || free - n >= others);
        let writable: u32 = segments
            .iter()
            .filter(|s| s.device_writes)
            .fold(0u32, |a, s| a.saturating_add(s.len));
        let head;
        let descriptors;
        if direct {
            head = self.free_head;
            let mut index = head;
            for (i, segment) in segments.iter().enumerate() {
                let taken = self.take_free();
                debug_assert_eq!(taken, index);
                let last = i + 1 == n;
                let next = self.next[usize::from(index)];
                self.write_desc(
                    0,
                    index,
                    segment,
                    if last { 0 } else { DESC_F_NEXT },
                    if last { 0 } else { next },
                );
                index = next;
            }
            descriptors = n as u16;
        } else if indirect_ok {
            let max = usize::from(self.layout.indirect_max);
            if n > max {
                return Err(AddError::TooManySegments { segments: n, max });
            }
            if free == 0 {
                return Err(AddError::Full(n));
            }
            head = self.take_free();
            let table = self.layout.indirect + usize::from(head) * max * DESC_SIZE;
            for (i, segment) in segments.iter().enumerate() {
                let last = i + 1 == n;
                self.write_desc(
                    table,
                    i as u16,
                    segment,
                    if last { 0 } else { DESC_F_NEXT },
                    if last { 0 } else { i as u16 + 1 },
                );
            }
            let table_iova = self.iova + table as u64;
            self.write_desc(
                0,
                head,
                &Segment::readable(table_iova, (n * DESC_SIZE) as u32),
                DESC_F_INDIRECT,
                0,
            );
            descriptors = 1;
        } else if n > usize::from(self.layout.size) {
            return Err(AddError::TooManySegments {
                segments: n,
                max: usize::from(self.layout.size),
            });
        } else {
            return Err(AddError::Full(n));
        }
        self.chains[usize::from(head)] = Chain {
            token,
            descriptors,
            writable,
        };
        let slot = usize::from(self.avail_idx & (self.layout.size - 1));
        self.write_u16(self.layout.avail + 4 + 2 * slot, head);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.in_flight += 1;
        Ok(())
    }

    fn publish(&mut self) -> bool {
        let new = self.avail_idx;
        let old = self.published_idx;
        if new == old || self.fault.is_some() {
            return false;
        }
        if self.event_idx {
            self.push_used_event();
        }
        // Release: the descriptors and ring entries above are visible before the index.
        self.atomic_u16(self.layout.avail + 2)
            .store(new.to_le(), Ordering::Release);
        self.published_idx = new;
        // Full barrier between publishing the index and reading the device's suppression
        // state, or a notification can be lost (the kernel's virtqueue_kick_prepare).
        fence(Ordering::SeqCst);
        if self.event_idx {
            let avail_event =
                self.read_u16(self.layout.used + 4 + 8 * usize::from(self.layout.size));
            // vring_need_event: did `new` pass `avail_event` since `old`?
            new.wrapping_sub(avail_event).wrapping_sub(1) < new.wrapping_sub(old)
        } else {
            self.read_u16(self.layout.used) & USED_F_NO_NOTIFY == 0
        }
    }

    fn pop_used(&mut self) -> Option<Result<UsedChain, QueueFault>> {
        if let Some(fault) = self.fault {
            return Some(Err(fault));
        }
        let now = u16::from_le(
            self.atomic_u16(self.layout.used + 2)
                .load(Ordering::Acquire),
        );
        if now == self.last_used {
            return None;
        }
        let pending = now.wrapping_sub(self.last_used);
        if pending > self.in_flight {
            return Some(Err(self.break_queue(QueueFault::IndexJump {
                last: self.last_used,
                now,
                in_flight: self.in_flight,
            })));
        }
        let slot = usize::from(self.last_used & (self.layout.size - 1));
        let element = self.layout.used + 4 + 8 * slot;
        let id = self.read_u32(element);
        let written = self.read_u32(element + 4);
        if id >= u32::from(self.layout.size) {
            return Some(Err(self.break_queue(QueueFault::IdOutOfRange {
                id,
                size: self.layout.size,
            })));
        }
        let head = id as u16;
        let chain = self.chains[usize::from(head)];
        if chain.descriptors == 0 {
            return Some(Err(self.break_queue(QueueFault::NotInFlight { id })));
        }
        let written = if self.clamp_used_len {
            written.min(chain.writable)
        } else {
            written
        };
        if written > chain.writable {
            return Some(Err(self.break_queue(QueueFault::LengthTooLong {
                id,
                written,
                capacity: chain.writable,
            })));
        }
        // Return the chain's descriptors to the free list, following the private links.
        let mut last = head;
        for _ in 1..chain.descriptors {
            last = self.next[usize::from(last)];
        }
        self.next[usize::from(last)] = self.free_head;
        self.free_head = head;
        self.num_free += chain.descriptors;
        self.chains[usize::from(head)].descriptors = 0;
        self.in_flight -= 1;
        self.last_used = self.last_used.wrapping_add(1);
        Some(Ok(UsedChain {
            token: chain.token,
            written,
        }))
    }

    fn in_flight(&self) -> u16 {
        self.in_flight
    }

    fn fault(&self) -> Option<QueueFault> {
        self.fault
    }

    fn size(&self) -> u16 {
        self.layout.size
    }

    fn addresses(&self) -> QueueAddresses {
        QueueAddresses {
            descriptors: self.iova,
            driver: self.iova + self.layout.avail as u64,
            device: self.iova + self.layout.used as u64,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::alloc::{alloc_zeroed, dealloc, Layout};

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

    /// The device's side of a split ring, reading and writing the same memory the driver
    /// uses. Tests make it complete chains in any order, or misbehave.
    pub struct FakeDevice {
        base: *mut u8,
        iova: u64,
        layout: SplitLayout,
        last_avail: u16,
        used_idx: u16,
    }

    // The fake device plays the hardware: like a real device it reads and writes the queue's
    // memory behind the driver's back, at offsets from the same layout, all in bounds.
    #[allow(clippy::undocumented_unsafe_blocks)]
    impl FakeDevice {
        pub fn new(queue: &SplitQueue) -> Self {
            FakeDevice {
                base: queue.base.as_ptr(),
                iova: queue.iova,
                layout: queue.layout,
                last_avail: 0,
                used_idx: 0,
            }
        }

        fn rd16(&self, off: usize) -> u16 {
            unsafe { self.base.add(off).cast::<u16>().read_volatile() }
        }
        fn wr16(&self, off: usize, v: u16) {
            unsafe { self.base.add(off).cast::<u16>().write_volatile(v) }
        }

        fn desc(&self, table: usize, i: u16) -> (u64, u32, u16, u16) {
            let p = unsafe { self.base.add(table + usize::from(i) * 16) };
            unsafe {
                (
                    p.cast::<u64>().read_volatile(),
                    p.add(8).cast::<u32>().read_volatile(),
                    p.add(12).cast::<u16>().read_volatile(),
                    p.add(14).cast::<u16>().read_volatile(),
                )
            }
        }

        /// Every newly available chain: (head, segments, was indirect).
        pub fn take_available(&mut self) -> Vec<(u16, Vec<Segment>, bool)> {
            let idx = unsafe { AtomicU16::from_ptr(self.base.add(self.layout.avail + 2).cast()) }
                .load(Ordering::Acquire);
            let mut out = Vec::new();
            while self.last_avail != idx {
                let slot = usize::from(self.last_avail & (self.layout.size - 1));
                let head = self.rd16(self.layout.avail + 4 + 2 * slot);
                let mut segs = Vec::new();
                let (addr, len, flags, _) = self.desc(0, head);
                let indirect = flags & DESC_F_INDIRECT != 0;
                let (table, mut i) = if indirect {
                    ((addr - self.iova) as usize, 0)
                } else {
                    (0, head)
                };
                let count = if indirect {
                    len as usize / 16
                } else {
                    usize::from(self.layout.size)
                };
                for _ in 0..count {
                    let (addr, len, flags, next) = self.desc(table, i);
                    segs.push(Segment {
                        iova: addr,
                        len,
                        device_writes: flags & DESC_F_WRITE != 0,
                    });
                    if flags & DESC_F_NEXT == 0 {
                        break;
                    }
                    i = next;
                }
                out.push((head, segs, indirect));
                self.last_avail = self.last_avail.wrapping_add(1);
            }
            out
        }

        /// Writes a used element (any id and length, hostile or not) and bumps used.idx.
        pub fn complete(&mut self, id: u32, len: u32) {
            let slot = usize::from(self.used_idx & (self.layout.size - 1));
            let p = unsafe { self.base.add(self.layout.used + 4 + 8 * slot) };
            unsafe {
                p.cast::<u32>().write_volatile(id);
                p.add(4).cast::<u32>().write_volatile(len);
            }
            self.used_idx = self.used_idx.wrapping_add(1);
            unsafe { AtomicU16::from_ptr(self.base.add(self.layout.used + 2).cast()) }
                .store(self.used_idx, Ordering::Release);
        }

        pub fn set_used_idx(&mut self, idx: u16) {
            self.used_idx = idx;
            self.wr16(self.layout.used + 2, idx);
        }

        pub fn set_avail_event(&self, v: u16) {
            self.wr16(self.layout.used + 4 + 8 * usize::from(self.layout.size), v);
        }

        pub fn used_event(&self) -> u16 {
            self.rd16(self.layout.avail + 4 + 2 * usize::from(self.layout.size))
        }
    }

    pub fn queue(size: u16, indirect_max: u16, event_idx: bool, depth: u16) -> SplitQueue {
        let layout = SplitLayout::new(size, indirect_max).unwrap();
        let mem = HeapMemory::new(layout.total.next_multiple_of(4096), 0x7_0000_0000);
        SplitQueue::new(Box::new(mem), layout, event_idx, depth).unwrap()
    }

    fn blk_chain(i: u64) -> [Segment; 3] {
        [
            Segment::readable(0x1000 + i * 16, 16),
            Segment::writable(0x10_0000 + i * 4096, 4096),
            Segment::writable(0x2000 + i, 1),
        ]
    }

    #[test]
    fn layout_matches_the_spec_alignment() {
        let l = SplitLayout::new(256, 0).unwrap();
        assert_eq!((l.avail, l.used), (4096, 4096 + 6 + 512 + 2));
        assert_eq!(l.used % 4, 0);
        assert!(SplitLayout::new(100, 0).is_none());
    }

    #[test]
    fn index_wraps_past_65535_without_losing_a_completion() {
        let mut q = queue(8, 0, true, 2);
        let mut dev = FakeDevice::new(&q);
        for i in 0..70_000u64 {
            q.add(&blk_chain(i % 2), i).unwrap();
            q.publish();
            let avail = dev.take_available();
            assert_eq!(avail.len(), 1);
            let (head, segs, indirect) = &avail[0];
            assert!(!indirect);
            assert_eq!(segs, &blk_chain(i % 2));
            dev.complete(u32::from(*head), 4097);
            let used = q.pop_used().unwrap().unwrap();
            assert_eq!(
                used,
                UsedChain {
                    token: i,
                    written: 4097
                }
            );
            assert!(q.pop_used().is_none());
        }
        assert_eq!(q.avail_idx, (70_000u32 % 65536) as u16);
        assert_eq!(q.in_flight(), 0);
    }

    #[test]
    fn ring_full_then_out_of_order_completion_frees_descriptors() {
        let mut q = queue(8, 0, false, 8);
        let mut dev = FakeDevice::new(&q);
        q.add(&blk_chain(0), 10).unwrap();
        q.add(&blk_chain(1), 11).unwrap();
        // 6 of 8 descriptors used: a third 3-descriptor chain does not fit.
        assert_eq!(q.add(&blk_chain(2), 12), Err(AddError::Full(3)));
        q.add(&[Segment::writable(0x9000, 512)], 13).unwrap();
        assert!(
            q.publish(),
            "no NO_NOTIFY flag: the device wants a notification"
        );
        let avail = dev.take_available();
        assert_eq!(avail.len(), 3);
        // Complete in reverse order.
        for (head, _, _) in avail.iter().rev() {
            dev.complete(u32::from(*head), 1);
        }
        let tokens: Vec<u64> = std::iter::from_fn(|| q.pop_used())
            .map(|r| r.unwrap().token)
            .collect();
        assert_eq!(tokens, [13, 11, 10]);
        // All 8 descriptors are free again: two 3-chains and a 2-chain fit.
        q.add(&blk_chain(3), 1).unwrap();
        q.add(&blk_chain(4), 2).unwrap();
        q.add(&blk_chain(5)[..2], 3).unwrap();
        assert_eq!(q.num_free, 0);
    }

    #[test]
    fn indirect_chains_take_one_ring_descriptor() {
        // depth 8 on a ring of 8: no room for direct chains, so multi-buffer chains go indirect.
        let mut q = queue(8, 16, true, 8);
        let mut dev = FakeDevice::new(&q);
        let long: Vec<Segment> = (0..12)
            .map(|i| Segment::writable(0x40_0000 + i * 4096, 4096))
            .collect();
        for t in 0..8 {
            q.add(&long, t).unwrap();
        }
        assert_eq!(q.add(&long, 9), Err(AddError::Full(12)));
        let too_long: Vec<Segment> = (0..17).map(|i| Segment::readable(i * 512, 512)).collect();
        assert!(matches!(
            q.add(&too_long, 0),
            Err(AddError::TooManySegments {
                segments: 17,
                max: 16
            })
        ));
        q.publish();
        let avail = dev.take_available();
        assert_eq!(avail.len(), 8);
        for (head, segs, indirect) in &avail {
            assert!(indirect);
            assert_eq!(segs, &long);
            dev.complete(u32::from(*head), 12 * 4096);
        }
        assert_eq!(
            std::iter::from_fn(|| q.pop_used())
                .filter(|r| r.is_ok())
                .count(),
            8
        );
        // Single-buffer chains never need a table.
        q.add(&[Segment::readable(0x1000, 512)], 0).unwrap();
        q.publish();
        assert!(!dev.take_available()[0].2);
    }

    #[test]
    fn event_idx_notifies_only_when_the_device_asks() {
        let mut q = queue(16, 0, true, 16);
        let dev = FakeDevice::new(&q);
        // The device wants to hear when entry 0 is made available.
        dev.set_avail_event(0);
        q.add(&[Segment::readable(0x1000, 512)], 0).unwrap();
        assert!(q.publish());
        // It now waits for entry 5: adding entries 1..=3 needs no notification.
        dev.set_avail_event(5);
        for t in 1..4 {
            q.add(&[Segment::readable(0x1000, 512)], t).unwrap();
        }
        assert!(!q.publish());
        for t in 4..7 {
            q.add(&[Segment::readable(0x1000, 512)], t).unwrap();
        }
        assert!(q.publish(), "entry 5 was passed");
        assert!(!q.publish(), "nothing new");
        // used_event stays far ahead so the device never interrupts.
        assert_eq!(dev.used_event(), 7u16.wrapping_add(0x8000));
    }

    #[test]
    fn an_out_of_range_id_breaks_the_queue() {
        let mut q = queue(8, 0, true, 8);
        let mut dev = FakeDevice::new(&q);
        q.add(&blk_chain(0), 1).unwrap();
        q.publish();
        dev.take_available();
        dev.complete(8, 0);
        assert_eq!(
            q.pop_used(),
            Some(Err(QueueFault::IdOutOfRange { id: 8, size: 8 }))
        );
        // Broken for good: later calls report the same fault.
        assert!(matches!(q.add(&blk_chain(1), 2), Err(AddError::Broken(_))));
        assert!(matches!(
            q.pop_used(),
            Some(Err(QueueFault::IdOutOfRange { .. }))
        ));
        assert!(!q.publish());
    }

    #[test]
    fn a_length_beyond_the_writable_buffers_breaks_the_queue() {
        let mut q = queue(8, 0, true, 8);
        let mut dev = FakeDevice::new(&q);
        q.add(&blk_chain(0), 1).unwrap();
        q.publish();
        let head = dev.take_available()[0].0;
        dev.complete(u32::from(head), 4098);
        assert_eq!(
            q.pop_used(),
            Some(Err(QueueFault::LengthTooLong {
                id: u32::from(head),
                written: 4098,
                capacity: 4097
            }))
        );
    }

    #[test]
    fn a_clamping_queue_tolerates_an_overlong_length_but_not_a_bad_id() {
        let mut q = queue(8, 0, true, 8).clamp_used_len();
        let mut dev = FakeDevice::new(&q);
        q.add(&blk_chain(0), 1).unwrap();
        q.add(&blk_chain(1), 2).unwrap();
        q.publish();
        let heads: Vec<u16> = dev.take_available().iter().map(|a| a.0).collect();
        dev.complete(u32::from(heads[0]), 1 << 20);
        assert_eq!(
            q.pop_used(),
            Some(Ok(UsedChain {
                token: 1,
                written: 4097
            }))
        );
        dev.complete(u32::from(heads[0]), 0);
        assert!(matches!(
            q.pop_used(),
            Some(Err(QueueFault::NotInFlight { .. }))
        ));
    }

    #[test]
    fn the_same_id_twice_breaks_the_queue() {
        let mut q = queue(8, 0, true, 8);
        let mut dev = FakeDevice::new(&q);
        q.add(&blk_chain(0), 1).unwrap();
        q.add(&blk_chain(1), 2).unwrap();
        q.publish();
        let heads: Vec<u16> = dev.take_available().iter().map(|a| a.0).collect();
        dev.complete(u32::from(heads[0]), 1);
        dev.complete(u32::from(heads[0]), 1);
        assert_eq!(q.pop_used().unwrap().unwrap().token, 1);
        assert_eq!(
            q.pop_used(),
            Some(Err(QueueFault::NotInFlight {
                id: u32::from(heads[0])
            }))
        );
    }

    #[test]
    fn a_used_index_jump_breaks_the_queue() {
        let mut q = queue(8, 0, true, 8);
        let mut dev = FakeDevice::new(&q);
        q.add(&blk_chain(0), 1).unwrap();
        q.publish();
        dev.take_available();
        dev.set_used_idx(5);
        assert_eq!(
            q.pop_used(),
            Some(Err(QueueFault::IndexJump {
                last: 0,
                now: 5,
                in_flight: 1
            }))
        );
    }

    #[test]
    fn a_never_completed_id_is_rejected_even_in_range() {
        let mut q = queue(8, 0, true, 8);
        let mut dev = FakeDevice::new(&q);
        q.add(&blk_chain(0), 1).unwrap();
        q.publish();
        let head = dev.take_available()[0].0;
        // Descriptor head+1 is inside the chain but not a head.
        dev.complete(u32::from(head) + 1, 0);
        assert!(matches!(
            q.pop_used(),
            Some(Err(QueueFault::NotInFlight { .. }))
        ));
    }
}
