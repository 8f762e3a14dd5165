//! The split virtqueue (virtio 1.2, 2.7), driven by polling.
//!
//! The ring is cut into chain slots of `stride` descriptors: slot `s` owns descriptors
//! `s * stride ..` and indirect table `s`. A hardware queue uses its tags as slots
//! ([`SplitQueue::add_at`]), so there is no descriptor free list to walk on either side: a
//! chain that fits its slot goes in direct, a longer one in the slot's indirect table, and a
//! completion names its slot by its head (a table from head descriptor to slot). Queues without tags (control,
//! events) take slots from a private stack ([`Virtqueue::add`]).
//!
//! Driver-private state (slot bookkeeping, indices) never lives in shared memory:
//! the device can scribble on the rings, so nothing read back from them is trusted beyond the
//! used ring's id and length, and those are checked. Shared fields are accessed with volatile
//! or atomic operations only.

use std::sync::atomic::{fence, Ordering};

use super::queue::{
    AddError, ChainSink, QueueFault, Segment, UsedChain, Virtqueue, DESC_F_INDIRECT, DESC_F_NEXT,
    DESC_F_WRITE, DESC_SIZE,
};
use super::ring_core::RingCore;

const AVAIL_F_NO_INTERRUPT: u16 = 1;
const USED_F_NO_NOTIFY: u16 = 1;

/// A descriptor's len, flags and next as one little-endian word.
#[inline(always)]
fn desc_tail(len: u32, flags: u16, next: u16) -> u64 {
    u64::from(len) | u64::from(flags) << 32 | u64::from(next) << 48
}

/// Bookkeeping of one chain slot.
#[derive(Debug, Clone, Copy, Default)]
struct Chain {
    token: u64,
    /// The slot's first ring descriptor, and how many it has.
    head: u16,
    room: u16,
    /// Total length of its device-writable buffers: the most the device may report written.
    writable: u32,
    /// A chain is in flight in this slot.
    busy: bool,
    /// The slot came from the private stack (`Virtqueue::add`) and goes back to it.
    pooled: bool,
}

/// A split virtqueue in shared memory.
#[derive(Debug)]
pub struct SplitQueue {
    pub(super) core: RingCore,
    event_idx: bool,
    /// The slot each ring descriptor heads (`u16::MAX`: none), for completions.
    slot_at: Vec<u16>,
    chains: Vec<Chain>,
    /// Free slots for `Virtqueue::add` (queues driven by tokens, not tags).
    free_slots: Vec<u16>,
    /// Next free slot in the avail ring (free-running).
    avail_idx: u16,
    /// avail idx at the last publish, for the EVENT_IDX test.
    published_idx: u16,
    /// Next used slot to read (free-running).
    last_used: u16,
}

/// Descriptors per chain slot for a ring of `size` entries and `depth` chains in flight: the
/// most that gives every chain a slot of its own. Not rounded to a power of two: a virtio-blk
/// chain of header, one buffer and status takes 3, and 85 slots of 3 keep 85 requests direct
/// on a 256-entry ring where slots of 4 kept 64 (completions find their slot through
/// `slot_at`, not by shifting the head).
pub fn slot_stride(size: u16, depth: u16) -> u16 {
    (size / depth.clamp(1, size.max(1))).max(1)
}

impl SplitQueue {
    /// Chains the device has put in the used ring that were not taken off yet (a peek at the
    /// used index: nothing is consumed or checked; a bad index reads as at most what the
    /// device could have completed, and `next_used` reports it).
    #[inline]
    pub fn used_unreaped(&self) -> u16 {
        self.used_idx()
            .wrapping_sub(self.last_used)
            .min(self.published())
    }

    /// The device's used index (Acquire: the used elements before it are visible after it).
    #[inline]
    fn used_idx(&self) -> u16 {
        u16::from_le(
            self.core
                .atomic_u16(self.core.layout.device + 2)
                .load(Ordering::Acquire),
        )
    }

    /// Chains in flight that the device can see; only they can complete.
    #[inline]
    fn published(&self) -> u16 {
        self.core.in_flight - self.unpublished()
    }

    /// Builds an empty queue in `memory`, which must be zeroed and at least `layout.total`
    /// bytes. `event_idx` is whether VIRTIO_F_EVENT_IDX was negotiated; `depth` is how many
    /// chains its owner keeps in flight at most (the tag depth), which sets the slot stride;
    /// `direct_chain` is the descriptors of the owner's usual chain (a one-buffer request: 3
    /// for virtio-blk, 4 with virtio-scsi's room for an UNMAP list).
    pub fn new(core: RingCore, event_idx: bool, depth: u16, direct_chain: u16) -> Self {
        let layout = core.layout;
        // Uniform slots give every chain `stride` descriptors. When that is fewer than the
        // usual chain needs and tables exist, the first slots get `direct_chain` and the rest
        // one (each chain in its table): as many requests as the ring holds go direct (QEMU
        // maps no table for them), the others indirect.
        let wide = direct_chain.clamp(2, layout.size.max(2));
        let uniform = slot_stride(layout.size, depth);
        let depth = depth.clamp(1, layout.size);
        let (wide, wide_slots, stride) = if uniform < wide && layout.indirect_max > 1 {
            let spare = layout.size - depth;
            (wide, (spare / (wide - 1)).min(depth), 1)
        } else {
            (uniform, layout.size / uniform, uniform)
        };
        let slots = wide_slots + (layout.size - wide_slots * wide) / stride;
        let layout_chains: Vec<Chain> = (0..slots)
            .map(|slot| {
                let (head, room) = if slot < wide_slots {
                    (slot * wide, wide)
                } else {
                    (wide_slots * wide + (slot - wide_slots) * stride, stride)
                };
                Chain {
                    head,
                    room,
                    ..Chain::default()
                }
            })
            .collect();
        let queue = SplitQueue {
            core,
            event_idx,
            slot_at: {
                let mut at = vec![u16::MAX; usize::from(layout.size)];
                for (slot, c) in layout_chains.iter().enumerate() {
                    at[usize::from(c.head)] = slot as u16;
                }
                at
            },
            chains: layout_chains,
            free_slots: (0..slots).rev().collect(),
            avail_idx: 0,
            published_idx: 0,
            last_used: 0,
        };
        queue.arm();
        queue
    }

    /// Tells the device not to interrupt: completions are polled.
    fn arm(&self) {
        if self.event_idx {
            self.push_used_event();
        } else {
            // (With EVENT_IDX, used_event does this.)
            self.core
                .write_u16(self.core.layout.driver, AVAIL_F_NO_INTERRUPT);
        }
    }

    /// Fault injection for tests of device error recovery: sets the length of the first
    /// buffer of the direct chain in slot `slot` (added, not yet completed) to `len`, as a
    /// driver bug would. False when the slot holds no direct chain.
    #[doc(hidden)]
    pub fn set_head_len(&mut self, slot: u16, len: u32) -> bool {
        let Some(chain) = self.chains.get(usize::from(slot)).filter(|c| c.busy) else {
            return false;
        };
        let at = usize::from(chain.head) * DESC_SIZE;
        if self.core.read_u16(at + 12) & DESC_F_INDIRECT != 0 {
            return false;
        }
        self.core.write_u32(at + 8, len);
        true
    }

    /// Starts over with an empty ring, as new, in the same memory: for a queue whose device
    /// was reset, before the queue is programmed into it again. Every chain is forgotten
    /// (the reset device holds none) and any fault with it.
    pub fn restart(&mut self) {
        self.core.clear();
        for chain in &mut self.chains {
            *chain = Chain {
                head: chain.head,
                room: chain.room,
                ..Chain::default()
            };
        }
        self.free_slots.clear();
        self.free_slots.extend((0..self.chains.len() as u16).rev());
        self.avail_idx = 0;
        self.published_idx = 0;
        self.last_used = 0;
        self.arm();
    }

    /// Chain slots (at least the depth given to `new`).
    pub fn slots(&self) -> u16 {
        self.chains.len() as u16
    }

    /// Descriptors a chain may take in slot 0 before it needs an indirect table.
    pub fn stride(&self) -> u16 {
        self.chains.first().map_or(0, |c| c.room)
    }

    #[inline]
    fn write_desc(&self, table: usize, index: u16, segment: &Segment, flags: u16, next: u16) {
        let flags = flags
            | if segment.device_writes {
                DESC_F_WRITE
            } else {
                0
            };
        let offset = table + usize::from(index) * DESC_SIZE;
        self.core
            .write_descriptor(offset, segment.iova, desc_tail(segment.len, flags, next));
    }

    /// Keeps `used_event` half the index space ahead, so the device never decides that an
    /// interrupt is due: completions are polled.
    fn push_used_event(&self) {
        let used_event = self.core.layout.driver + 4 + 2 * usize::from(self.core.layout.size);
        self.core
            .write_u16(used_event, self.avail_idx.wrapping_add(0x8000));
    }

    /// Writes a chain into slot `slot` (a tag of the queue's owner, below [`slots`]) without
    /// making it visible yet; `token` comes back with its completion. The slot must not be in
    /// flight: a queue is driven either by tags through this or by tokens through
    /// [`Virtqueue::add`], never both.
    ///
    /// [`slots`]: Self::slots
    #[inline]
    pub fn add_at(&mut self, slot: u16, segments: &[Segment], token: u64) -> Result<(), AddError> {
        let mut chain = self.chain_at(slot)?;
        for s in segments {
            chain.push(*s);
        }
        chain.finish(token)
    }

    /// Starts a chain in slot `slot`: its buffers are written straight into the ring as they
    /// are pushed, and [`SplitChain::finish`] queues it (not yet visible to the device).
    #[inline]
    pub fn chain_at(&mut self, slot: u16) -> Result<SplitChain<'_>, AddError> {
        if let Some(fault) = self.core.fault {
            return Err(AddError::Broken(fault));
        }
        let (head, stride) = match self.chains.get(usize::from(slot)) {
            Some(c) if !c.busy => (c.head, c.room),
            _ => return Err(AddError::Full(0)),
        };
        let at = usize::from(head) * DESC_SIZE;
        Ok(SplitChain {
            queue: self,
            slot,
            head,
            at,
            link_base: head,
            room: stride,
            count: 0,
            indirect: false,
            last_tail: 0,
            writable: 0,
            pooled: false,
        })
    }
}

/// A chain being written into its slot (see [`SplitQueue::chain_at`]). Descriptors go into
/// the slot's ring descriptors while they fit, then (all of them, moved once) into the
/// slot's indirect table. Dropped without [`finish`](Self::finish), it leaves nothing queued.
#[derive(Debug)]
pub struct SplitChain<'q> {
    queue: &'q mut SplitQueue,
    slot: u16,
    head: u16,
    /// Byte offset of the first descriptor of the area being written (the slot's, or its
    /// table's).
    at: usize,
    /// Index of that first descriptor in its table (`next` links count from it).
    link_base: u16,
    /// Descriptors the area holds.
    room: u16,
    /// Buffers pushed so far (past `room` when they did not fit, for the error).
    count: u16,
    indirect: bool,
    /// The len/flags/next word of the last descriptor written.
    last_tail: u64,
    writable: u32,
    pooled: bool,
}

impl SplitChain<'_> {
    fn table(&self) -> usize {
        let q = &*self.queue;
        q.core.layout.indirect
            + usize::from(self.slot) * usize::from(q.core.layout.indirect_max) * DESC_SIZE
    }

    /// The chain outgrew its slot: move what was written into the slot's indirect table, if
    /// it has one larger than the slot. `false` when there is no more room anywhere.
    #[cold]
    fn make_room(&mut self) -> bool {
        let max = self.queue.core.layout.indirect_max;
        if self.indirect || max <= self.room {
            return false;
        }
        let table = self.table();
        let core = &self.queue.core;
        for i in 0..self.count {
            // Descriptors of this slot, written above and not yet published, move into the
            // slot's table (count <= stride < indirect_max).
            let from = usize::from(self.head + i) * DESC_SIZE;
            let addr = core.read_u64(from);
            // Same len and flags; `next` becomes the table's own index.
            let tail = (core.read_u64(from + 8) & 0x0000_ffff_ffff_ffff) | u64::from(i + 1) << 48;
            core.write_descriptor(table + usize::from(i) * DESC_SIZE, addr, tail);
        }
        self.last_tail = (self.last_tail & 0x0000_ffff_ffff_ffff) | u64::from(self.count) << 48;
        self.at = table;
        self.link_base = 0;
        self.room = max;
        self.indirect = true;
        true
    }

    /// Checks the chain and queues it in its slot, with `token` for its completion.
    #[inline]
    pub fn finish(self, token: u64) -> Result<(), AddError> {
        let n = usize::from(self.count);
        if n == 0 {
            return Err(AddError::Empty);
        }
        if self.count > self.room {
            let q = &*self.queue;
            let max = usize::from(q.chains[usize::from(self.slot)].room)
                .max(usize::from(q.core.layout.indirect_max));
            return Err(AddError::TooManySegments { segments: n, max });
        }
        // The last descriptor ends the chain: no NEXT flag, no link.
        let last_tail = self.last_tail & !(u64::from(DESC_F_NEXT) << 32) & 0x0000_ffff_ffff_ffff;
        // The tail word of the chain's last descriptor (count <= room), written by `push`,
        // not yet published.
        let q = self.queue;
        q.core
            .write_u64(self.at + (n - 1) * DESC_SIZE + 8, last_tail);
        if self.indirect {
            let table_iova = q.core.iova() + self.at as u64;
            q.write_desc(
                0,
                self.head,
                &Segment::readable(table_iova, (n * DESC_SIZE) as u32),
                DESC_F_INDIRECT,
                0,
            );
        }
        let chain = &mut q.chains[usize::from(self.slot)];
        chain.token = token;
        chain.writable = self.writable;
        chain.busy = true;
        chain.pooled = self.pooled;
        let entry = usize::from(q.avail_idx & (q.core.layout.size - 1));
        q.core
            .write_u16(q.core.layout.driver + 4 + 2 * entry, self.head);
        q.avail_idx = q.avail_idx.wrapping_add(1);
        q.core.in_flight += 1;
        Ok(())
    }
}

impl ChainSink for SplitChain<'_> {
    // Always: a call per buffer would cost more than the two stores it makes.
    #[inline(always)]
    fn push(&mut self, segment: Segment) {
        if self.count >= self.room && !self.make_room() {
            // Counted only: `finish` reports the chain too long.
            self.count = self.count.saturating_add(1);
            return;
        }
        let flags = DESC_F_NEXT
            | if segment.device_writes {
                DESC_F_WRITE
            } else {
                0
            };
        let next = self.link_base + self.count + 1;
        let tail = desc_tail(segment.len, flags, next);
        // count < room: the descriptor lies in the slot's ring descriptors or its table.
        let offset = self.at + usize::from(self.count) * DESC_SIZE;
        self.queue.core.write_descriptor(offset, segment.iova, tail);
        self.last_tail = tail;
        if segment.device_writes {
            self.writable = self.writable.saturating_add(segment.len);
        }
        self.count += 1;
    }
}

impl Virtqueue for SplitQueue {
    fn core(&self) -> &RingCore {
        &self.core
    }

    fn add(&mut self, segments: &[Segment], token: u64) -> Result<(), AddError> {
        let Some(slot) = self.free_slots.pop() else {
            if let Some(fault) = self.core.fault {
                return Err(AddError::Broken(fault));
            }
            return Err(AddError::Full(segments.len()));
        };
        let placed = self.chain_at(slot).and_then(|mut chain| {
            chain.pooled = true;
            for s in segments {
                chain.push(*s);
            }
            chain.finish(token)
        });
        if placed.is_err() {
            self.free_slots.push(slot);
        }
        placed
    }

    #[inline]
    fn publish_up_to(&mut self, max: u16) -> bool {
        let old = self.published_idx;
        let new = old.wrapping_add(self.avail_idx.wrapping_sub(old).min(max));
        if new == old || self.core.fault.is_some() {
            return false;
        }
        if self.event_idx {
            self.push_used_event();
        }
        // Release: the descriptors and ring entries above are visible before the index.
        self.core
            .atomic_u16(self.core.layout.driver + 2)
            .store(new.to_le(), Ordering::Release);
        self.published_idx = new;
        // Full barrier between publishing the index and reading the device's suppression
        // state, or a notification can be lost (the kernel's virtqueue_kick_prepare).
        fence(Ordering::SeqCst);
        if self.event_idx {
            let avail_event = self
                .core
                .read_u16(self.core.layout.device + 4 + 8 * usize::from(self.core.layout.size));
            // vring_need_event: did `new` pass `avail_event` since `old`?
            new.wrapping_sub(avail_event).wrapping_sub(1) < new.wrapping_sub(old)
        } else {
            self.core.read_u16(self.core.layout.device) & USED_F_NO_NOTIFY == 0
        }
    }

    #[inline]
    fn next_used(&mut self) -> Option<Result<UsedChain, QueueFault>> {
        let now = self.used_idx();
        if now == self.last_used {
            return None;
        }
        let pending = now.wrapping_sub(self.last_used);
        // Only published chains can complete: the device never saw the others.
        let published = self.published();
        if pending > published {
            return Some(Err(self.core.break_queue(QueueFault::IndexJump {
                last: self.last_used,
                now,
                in_flight: published,
            })));
        }
        let entry = usize::from(self.last_used & (self.core.layout.size - 1));
        let element = self.core.layout.device + 4 + 8 * entry;
        let id = self.core.read_u32(element);
        let written = self.core.read_u32(element + 4);
        if id >= u32::from(self.core.layout.size) {
            return Some(Err(self.core.break_queue(QueueFault::IdOutOfRange {
                id,
                size: self.core.layout.size,
            })));
        }
        // Only a slot's first descriptor is ever a head.
        let slot = usize::from(self.slot_at[id as usize]);
        let chain = match self.chains.get(slot) {
            Some(c) if c.busy => *c,
            _ => return Some(Err(self.core.break_queue(QueueFault::NotInFlight { id }))),
        };
        let written = match self.core.check_written(id, written, chain.writable) {
            Ok(written) => written,
            Err(fault) => return Some(Err(fault)),
        };
        self.chains[slot].busy = false;
        if chain.pooled {
            self.free_slots.push(slot as u16);
        }
        self.last_used = self.last_used.wrapping_add(1);
        Some(Ok(self.core.completed(chain.token, written)))
    }

    #[inline]
    fn unpublished(&self) -> u16 {
        self.avail_idx.wrapping_sub(self.published_idx)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::virtio::fake::ring_tests::{
        blk_chain, drain, identity_core, tokens, used, XorShift,
    };
    use crate::virtio::fake::{FakeChain, FakeSplitDevice};
    use crate::virtio::layout::RingLayout;

    pub fn queue(size: u16, indirect_max: u16, event_idx: bool, depth: u16) -> SplitQueue {
        let layout = RingLayout::split(size, indirect_max).unwrap();
        SplitQueue::new(identity_core(layout), event_idx, depth, 4)
    }

    /// The device's side of `q`.
    fn device(q: &SplitQueue) -> FakeSplitDevice {
        FakeSplitDevice::new(q.addresses(), q.size())
    }

    #[test]
    fn index_wraps_past_65535_without_losing_a_completion() {
        let mut q = queue(8, 0, true, 2);
        let mut dev = device(&q);
        for i in 0..70_000u64 {
            q.add(&blk_chain(i % 2), i).unwrap();
            q.publish();
            let avail = dev.take_available();
            assert_eq!(avail.len(), 1);
            let FakeChain {
                head,
                segments: segs,
                indirect,
            } = &avail[0];
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
    fn slots_fill_then_out_of_order_completion_frees_them() {
        // Depth 3 on a ring of 8: two descriptors per slot, four slots.
        let mut q = queue(8, 0, false, 3);
        assert_eq!((q.stride(), q.slots()), (2, 4));
        let mut dev = device(&q);
        // A 3-descriptor chain does not fit a 2-descriptor slot, and there are no tables.
        assert!(matches!(
            q.add(&blk_chain(0), 9),
            Err(AddError::TooManySegments {
                segments: 3,
                max: 2
            })
        ));
        for t in 10..14 {
            q.add(&blk_chain(t)[..2], t).unwrap();
        }
        assert_eq!(q.add(&blk_chain(0)[..2], 14), Err(AddError::Full(2)));
        assert!(
            q.publish(),
            "no NO_NOTIFY flag: the device wants a notification"
        );
        let avail = dev.take_available();
        let heads: Vec<u16> = avail.iter().map(|a| a.head).collect();
        assert_eq!(heads, [0, 2, 4, 6], "each chain heads its own slot");
        // Complete in reverse order.
        for FakeChain { head, .. } in avail.iter().rev() {
            dev.complete(u32::from(*head), 1);
        }
        assert_eq!(tokens(&mut q), [13, 12, 11, 10]);
        // Every slot is free again.
        for t in 0..4 {
            q.add(&[Segment::writable(0x9000, 512)], t).unwrap();
        }
        assert_eq!(q.in_flight(), 4);
    }

    #[test]
    fn a_tagged_chain_goes_into_its_own_slot() {
        let mut q = queue(16, 0, true, 4);
        let mut dev = device(&q);
        q.add_at(3, &blk_chain(1), 3).unwrap();
        q.add_at(0, &blk_chain(2), 0).unwrap();
        assert_eq!(
            q.add_at(3, &blk_chain(3), 3),
            Err(AddError::Full(0)),
            "busy"
        );
        assert_eq!(
            q.add_at(4, &blk_chain(3), 4),
            Err(AddError::Full(0)),
            "no slot 4"
        );
        q.publish();
        let avail = dev.take_available();
        assert_eq!((avail[0].head, avail[1].head), (12, 0));
        assert_eq!(avail[0].segments, blk_chain(1));
        dev.complete(12, 4097);
        assert_eq!(q.pop_used(), used(3, 4097));
        // Descriptor 13 lies inside slot 3: never a head.
        dev.complete(13, 0);
        assert_eq!(q.pop_used(), Some(Err(QueueFault::NotInFlight { id: 13 })));
    }

    #[test]
    fn indirect_chains_take_one_ring_descriptor() {
        // depth 8 on a ring of 8: no room for direct chains, so multi-buffer chains go indirect.
        let mut q = queue(8, 16, true, 8);
        let mut dev = device(&q);
        let long: Vec<Segment> = (0..12)
            .map(|i| Segment::writable(0x40_0000 + i * 4096, 4096))
            .collect();
        let too_long: Vec<Segment> = (0..17).map(|i| Segment::readable(i * 512, 512)).collect();
        assert!(matches!(
            q.add(&too_long, 0),
            Err(AddError::TooManySegments {
                segments: 17,
                max: 16
            })
        ));
        for t in 0..8 {
            q.add(&long, t).unwrap();
        }
        assert_eq!(q.add(&long, 9), Err(AddError::Full(12)));
        q.publish();
        let avail = dev.take_available();
        assert_eq!(avail.len(), 8);
        for FakeChain {
            head,
            segments: segs,
            indirect,
        } in &avail
        {
            assert!(indirect);
            assert_eq!(segs, &long);
            dev.complete(u32::from(*head), 12 * 4096);
        }
        assert_eq!(drain(&mut q).iter().filter(|r| r.is_ok()).count(), 8);
        // Single-buffer chains never need a table.
        q.add(&[Segment::readable(0x1000, 512)], 0).unwrap();
        q.publish();
        assert!(!dev.take_available()[0].indirect);
    }

    #[test]
    fn event_idx_notifies_only_when_the_device_asks() {
        let mut q = queue(16, 0, true, 16);
        let dev = device(&q);
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
    fn a_partial_publish_shows_the_oldest_chains_and_keeps_the_rest() {
        let mut q = queue(16, 0, true, 4);
        let mut dev = device(&q);
        // The device wants to hear when entry 1 is made available.
        dev.set_avail_event(1);
        for t in 0..3 {
            q.add(&blk_chain(t), t).unwrap();
        }
        assert_eq!(q.unpublished(), 3);
        assert!(!q.publish_up_to(1), "entry 0 alone does not pass the event");
        assert_eq!(q.unpublished(), 2);
        let seen = dev.take_available();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].segments, blk_chain(0).to_vec());
        assert!(q.publish_up_to(1), "entry 1 is the event");
        assert!(!q.publish_up_to(0), "nothing released");
        assert_eq!(dev.take_available()[0].segments, blk_chain(1).to_vec());
        // Chains added later queue up behind the one still held, in order.
        q.add(&blk_chain(3), 3).unwrap();
        q.publish_up_to(u16::MAX);
        assert_eq!(q.unpublished(), 0);
        let rest: Vec<_> = dev
            .take_available()
            .into_iter()
            .map(|c| c.segments)
            .collect();
        assert_eq!(rest, vec![blk_chain(2).to_vec(), blk_chain(3).to_vec()]);
    }

    #[test]
    fn a_device_completing_a_chain_it_was_not_shown_breaks_the_queue() {
        let mut q = queue(8, 0, true, 2);
        let mut dev = device(&q);
        q.add(&blk_chain(0), 1).unwrap();
        q.add(&blk_chain(1), 2).unwrap();
        q.publish_up_to(1);
        let head = dev.take_available()[0].head;
        // Two completions where one chain was published: the device never saw another.
        dev.complete(u32::from(head), 4097);
        dev.complete(u32::from(head) + 1, 4097);
        assert_eq!(
            q.pop_used(),
            Some(Err(QueueFault::IndexJump {
                last: 0,
                now: 2,
                in_flight: 1
            }))
        );
    }

    #[test]
    fn an_out_of_range_id_breaks_the_queue() {
        let mut q = queue(8, 0, true, 2);
        let mut dev = device(&q);
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
        let mut q = queue(8, 0, true, 2);
        let mut dev = device(&q);
        q.add(&blk_chain(0), 1).unwrap();
        q.publish();
        let head = dev.take_available()[0].head;
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
        let mut q = queue(8, 0, true, 2);
        q.core.clamp_used_len = true;
        let mut dev = device(&q);
        q.add(&blk_chain(0), 1).unwrap();
        q.add(&blk_chain(1), 2).unwrap();
        q.publish();
        let heads: Vec<u16> = dev.take_available().iter().map(|a| a.head).collect();
        dev.complete(u32::from(heads[0]), 1 << 20);
        assert_eq!(q.pop_used(), used(1, 4097));
        dev.complete(u32::from(heads[0]), 0);
        assert!(matches!(
            q.pop_used(),
            Some(Err(QueueFault::NotInFlight { .. }))
        ));
    }

    #[test]
    fn the_same_id_twice_breaks_the_queue() {
        let mut q = queue(8, 0, true, 2);
        let mut dev = device(&q);
        q.add(&blk_chain(0), 1).unwrap();
        q.add(&blk_chain(1), 2).unwrap();
        q.publish();
        let heads: Vec<u16> = dev.take_available().iter().map(|a| a.head).collect();
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
        let mut q = queue(8, 0, true, 2);
        let mut dev = device(&q);
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
        let mut q = queue(8, 0, true, 2);
        let mut dev = device(&q);
        q.add(&blk_chain(0), 1).unwrap();
        q.publish();
        let head = dev.take_available()[0].head;
        // Descriptor head+1 is inside the chain but not a head.
        dev.complete(u32::from(head) + 1, 0);
        assert!(matches!(
            q.pop_used(),
            Some(Err(QueueFault::NotInFlight { .. }))
        ));
    }

    /// Thousands of queues against a device that mixes honest completions with garbage ids,
    /// lengths and used indices: never a panic, a fault once seen stays, in-flight never
    /// exceeds the slots, and no token comes back that was not in flight.
    #[test]
    fn a_hostile_device_never_panics_the_queue_and_faults_stick() {
        let mut rng = XorShift(0x5eed_0517_0001);
        let mut faults = 0;
        for round in 0..4000u32 {
            let size = 1u16 << (1 + rng.below(6)); // 2..=64
            let depth = 1 + rng.below(u64::from(size)) as u16;
            let indirect_max = if rng.below(2) == 0 {
                0
            } else {
                1 + rng.below(8) as u16
            };
            let mut q = queue(size, indirect_max, rng.below(2) == 0, depth);
            if rng.below(3) == 0 {
                q.core.clamp_used_len = true;
            }
            let mut dev = device(&q);
            let honest = round % 4 == 0;
            let mut outstanding: Vec<(u16, u64, u32)> = Vec::new(); // head, token, writable
            let mut token = 0u64;
            let mut fault: Option<QueueFault> = None;
            for _ in 0..64 {
                // Add a few chains of random shape.
                for _ in 0..rng.below(4) {
                    let n = 1 + rng.below(6) as usize;
                    let segs: Vec<Segment> = (0..n)
                        .map(|i| Segment {
                            iova: 0x1000 * (i as u64 + 1),
                            len: 1 + rng.below(4096) as u32,
                            device_writes: rng.below(2) == 0,
                        })
                        .collect();
                    match q.add(&segs, token) {
                        Ok(()) => token += 1,
                        Err(AddError::Broken(f)) => assert_eq!(Some(f), fault),
                        Err(_) => {}
                    }
                }
                q.publish();
                for FakeChain {
                    head,
                    segments: segs,
                    ..
                } in dev.take_available()
                {
                    let writable = segs
                        .iter()
                        .filter(|s| s.device_writes)
                        .fold(0u32, |a, s| a.saturating_add(s.len));
                    outstanding.push((head, 0, writable));
                }
                assert!(q.in_flight() <= q.slots(), "in flight beyond the slots");
                // The device answers.
                for _ in 0..rng.below(4) {
                    if honest || rng.below(4) != 0 {
                        if outstanding.is_empty() {
                            break;
                        }
                        let i = rng.below(outstanding.len() as u64) as usize;
                        let (head, _, writable) = outstanding.swap_remove(i);
                        dev.complete(u32::from(head), rng.below(u64::from(writable) + 1) as u32);
                    } else {
                        match rng.below(3) {
                            0 => dev.complete(
                                rng.next() as u32 % (u32::from(size) * 2),
                                rng.next() as u32,
                            ),
                            1 => dev.set_used_idx(rng.next() as u16),
                            _ => dev.complete(rng.below(u64::from(size)) as u32, rng.next() as u32),
                        }
                    }
                }
                while let Some(r) = q.pop_used() {
                    match r {
                        Ok(used) => {
                            assert!(fault.is_none(), "a completion after the fault");
                            assert!(used.token < token, "a token never given");
                        }
                        Err(f) => {
                            if let Some(old) = fault {
                                assert_eq!(old, f, "the fault changed");
                            }
                            fault = Some(f);
                            break;
                        }
                    }
                }
                if fault.is_some() {
                    assert!(matches!(q.pop_used(), Some(Err(_))), "the fault must stick");
                    assert!(!q.publish());
                    break;
                }
            }
            if honest {
                assert!(
                    fault.is_none(),
                    "an honest device broke the queue: {fault:?}"
                );
            }
            faults += usize::from(fault.is_some());
        }
        assert!(
            faults > 500,
            "the hostile rounds found only {faults} faults"
        );
    }

    #[test]
    fn a_deep_queue_keeps_direct_slots_for_as_many_chains_as_fit() {
        // 12 chains on a ring of 16 with tables: slots of 1 would send every 3-buffer chain
        // to a table. Instead (16 - 12) / 3 = 1 slot of 4, then 12 slots of 1.
        let mut q = queue(16, 8, true, 12);
        assert_eq!((q.stride(), q.slots()), (4, 13));
        let mut dev = device(&q);
        for t in 0..12u16 {
            q.add_at(t, &blk_chain(u64::from(t)), u64::from(t)).unwrap();
        }
        q.publish();
        let avail = dev.take_available();
        assert_eq!(avail[0].head, 0);
        assert!(!avail[0].indirect, "slot 0 is wide: direct");
        assert_eq!(avail[0].segments, blk_chain(0));
        for (
            i,
            FakeChain {
                head,
                segments: segs,
                indirect,
            },
        ) in avail.iter().enumerate().skip(1)
        {
            assert_eq!(*head, 4 + i as u16 - 1, "narrow slots follow the wide one");
            assert!(*indirect);
            assert_eq!(segs, &blk_chain(i as u64));
        }
        // Completions name their slots by head; a descriptor inside the wide slot is none.
        dev.complete(5, 4097);
        assert_eq!(q.pop_used(), used(2, 4097));
        dev.complete(2, 0);
        assert_eq!(q.pop_used(), Some(Err(QueueFault::NotInFlight { id: 2 })));
    }

    #[test]
    fn slots_of_three_keep_85_blk_chains_direct_on_256_entries() {
        // virtio-blk's one-buffer chain is 3 descriptors: 85 tags fit a 256-entry ring
        // directly even with indirect tables on offer (slots of 4 kept 64).
        let layout = RingLayout::split(256, 8).unwrap();
        let mut q = SplitQueue::new(identity_core(layout), true, 85, 3);
        assert_eq!((q.stride(), q.slots()), (3, 85));
        let mut dev = device(&q);
        for t in 0..85u16 {
            q.add_at(t, &blk_chain(u64::from(t)), u64::from(t)).unwrap();
        }
        q.publish();
        let avail = dev.take_available();
        assert_eq!(avail.len(), 85);
        for (i, chain) in avail.iter().enumerate() {
            assert_eq!(chain.head, 3 * i as u16);
            assert!(!chain.indirect, "slot {i} went indirect");
            assert_eq!(chain.segments, blk_chain(i as u64));
        }
        // A completion names its slot by its head, not by a power-of-two shift.
        dev.complete(3 * 84, 4097);
        assert_eq!(q.pop_used(), used(84, 4097));
    }
}
