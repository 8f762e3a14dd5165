//! The packed virtqueue (virtio 1.2, 2.8), driven by polling.
//!
//! One ring of 16-byte descriptors is shared both ways: the driver writes available
//! descriptors at its next-avail position, the device overwrites them with used descriptors
//! at its next-used position. Ownership of a slot is told by the AVAIL (bit 7) and USED
//! (bit 15) flags against a wrap counter each side keeps, which flips every pass around the
//! ring.
//!
//! As in the split ring, driver-private state (buffer-id free list, chain bookkeeping,
//! positions, wrap counters) never lives in shared memory. Of what the device writes only a
//! used descriptor's flags, id and length are read back, and the id and length are checked.
//! Shared fields are accessed with volatile or atomic operations only.
//!
//! Faults, mapped onto [`QueueFault`]:
//! - a used id `>= size`: [`QueueFault::IdOutOfRange`];
//! - a used id that names no published chain in flight (never added, completed twice, or
//!   added but not yet published): [`QueueFault::NotInFlight`];
//! - a used length beyond the chain's writable bytes: [`QueueFault::LengthTooLong`] (unless
//!   [`PackedQueue::clamp_used_len`]);
//! - a descriptor marked used at the driver's next-used position while no published chain is
//!   in flight: [`QueueFault::IndexJump`], with `last` the next-used position and `now` the
//!   position one past it, both in the event-suppression `off_wrap` form (offset in bits
//!   0..=14, used wrap counter in bit 15), and `in_flight` the published chains in flight (0).
//!
//! Used flags with the wrong wrap counter (AVAIL != USED, or both equal to the other pass's
//! counter) are not a fault: per the spec the descriptor is simply not used yet.

use std::sync::atomic::{fence, AtomicU16, Ordering};

use super::queue::{
    AddError, QueueFault, Segment, UsedChain, Virtqueue, DESC_F_AVAIL, DESC_F_INDIRECT,
    DESC_F_NEXT, DESC_F_USED, DESC_F_WRITE, DESC_SIZE,
};
use super::ring_core::RingCore;

const RING_EVENT_FLAGS_ENABLE: u16 = 0;
const RING_EVENT_FLAGS_DISABLE: u16 = 1;
const RING_EVENT_FLAGS_DESC: u16 = 2;
const EVENT_WRAP: u16 = 1 << 15;

/// Per-buffer-id bookkeeping of a chain in flight.
#[derive(Debug, Clone, Copy, Default)]
struct Chain {
    token: u64,
    /// Ring descriptors the chain holds; 0 when the id is not in flight.
    descriptors: u16,
    /// Total length of its device-writable buffers: the most the device may report written.
    writable: u32,
    /// Whether its head flags have been written, so the device may have seen it.
    published: bool,
    /// Its id came from the private free list (`Virtqueue::add`) and goes back to it.
    pooled: bool,
}

/// A chain added but not yet published: its head descriptor's flags are still to be written.
#[derive(Debug, Clone, Copy, Default)]
struct Pending {
    slot: u16,
    flags: u16,
    id: u16,
    /// Ring descriptors the chain takes (for the event suppression test of a partial publish).
    descriptors: u16,
}

/// A packed virtqueue in shared memory.
#[derive(Debug)]
pub struct PackedQueue {
    pub(super) core: RingCore,
    event_idx: bool,
    /// Chains allowed in flight at once (the tag depth of the queue's owner). With indirect
    /// descriptors, direct chains are used only while one descriptor stays for each of them.
    depth: u16,
    /// Private free list of buffer ids: `id_next[i]` follows id i on the list.
    id_next: Vec<u16>,
    free_id: u16,
    num_free_ids: u16,
    chains: Vec<Chain>,
    /// Free ring slots (the ring is a FIFO of descriptors: free = size - held).
    num_free: u16,
    /// Next ring slot to write an available descriptor into, and the driver's avail wrap
    /// counter for it.
    next_avail: u16,
    avail_wrap: bool,
    /// Next ring slot the device writes a used descriptor into, and the used wrap counter.
    last_used: u16,
    used_wrap: bool,
    /// Chains added since the last publish (fixed capacity `size`, allocated in `new`).
    pending: Vec<Pending>,
    pending_len: u16,
    /// Ring descriptors added since the last publish, for the event suppression test.
    pending_descriptors: u16,
    /// Whether `newest` and `notified` are kept (see [`Self::track_notified`]).
    track: bool,
    /// The newest published chain (its head as it was pending), while it is in flight.
    newest: Option<Pending>,
    /// What `newest` was when the device was last notified (see [`Self::notified_all_used`]).
    notified: Option<Pending>,
}

/// The AVAIL/USED bits of a descriptor the driver makes available with wrap counter `wrap`.
fn avail_bits(wrap: bool) -> u16 {
    if wrap {
        DESC_F_AVAIL
    } else {
        DESC_F_USED
    }
}

/// The flags a head holds between `add` and `publish`: its AVAIL/USED bits flipped. The
/// device reads them as not available (AVAIL differs from its wrap counter) and the driver as
/// not used (AVAIL differs from USED), whatever the pass.
fn held_bits(bits: u16) -> u16 {
    bits ^ (DESC_F_AVAIL | DESC_F_USED)
}

/// Whether `flags` mark a descriptor used in the pass with used wrap counter `wrap`.
fn is_used(flags: u16, wrap: bool) -> bool {
    let avail = flags & DESC_F_AVAIL != 0;
    let used = flags & DESC_F_USED != 0;
    avail == used && used == wrap
}

/// `pos` advanced by `by` (at most `size`) slots around a ring of `size`, flipping `wrap`
/// when it passes the end.
#[inline]
fn advance(pos: u16, wrap: bool, by: u16, size: u16) -> (u16, bool) {
    let next = u32::from(pos) + u32::from(by);
    if next >= u32::from(size) {
        ((next - u32::from(size)) as u16, !wrap)
    } else {
        (next as u16, wrap)
    }
}

/// A ring position in the event-suppression form: offset in bits 0..=14, wrap in bit 15.
fn off_wrap(pos: u16, wrap: bool) -> u16 {
    (pos & !EVENT_WRAP) | if wrap { EVENT_WRAP } else { 0 }
}

impl PackedQueue {
    /// Builds an empty queue in `memory`, which must be zeroed and at least `layout.total`
    /// bytes, at a 16-aligned IOVA. `event_idx` is whether VIRTIO_F_EVENT_IDX was
    /// negotiated. `depth` is the most chains in flight the owner will have.
    pub fn new(core: RingCore, event_idx: bool, depth: u16) -> Self {
        let layout = core.layout;
        let n = layout.size;
        let mut queue = PackedQueue {
            core,
            event_idx,
            depth: depth.clamp(1, n),
            id_next: (1..=n).map(|i| if i == n { 0 } else { i }).collect(),
            free_id: 0,
            num_free_ids: n,
            chains: vec![Chain::default(); usize::from(n)],
            num_free: n,
            next_avail: 0,
            avail_wrap: true,
            last_used: 0,
            used_wrap: true,
            pending: vec![Pending::default(); usize::from(n)],
            pending_len: 0,
            pending_descriptors: 0,
            track: false,
            newest: None,
            notified: None,
        };
        queue.arm();
        queue
    }

    /// Clears the ring and event areas, even if the memory was recycled (a stale descriptor
    /// must not look available to the device), and turns used buffer notifications off:
    /// completions are polled.
    fn arm(&mut self) {
        self.core.clear();
        self.core
            .write_u16(self.core.layout.driver + 2, RING_EVENT_FLAGS_DISABLE);
    }

    /// Starts over with an empty ring, as new, in the same memory: for a queue whose device
    /// was reset, before the queue is programmed into it again. Every chain is forgotten
    /// (the reset device holds none) and any fault with it.
    pub fn restart(&mut self) {
        let n = self.core.layout.size;
        for (i, next) in self.id_next.iter_mut().enumerate() {
            *next = if i + 1 == usize::from(n) {
                0
            } else {
                i as u16 + 1
            };
        }
        self.free_id = 0;
        self.num_free_ids = n;
        self.chains.fill(Chain::default());
        self.num_free = n;
        self.next_avail = 0;
        self.avail_wrap = true;
        self.last_used = 0;
        self.used_wrap = true;
        self.pending_len = 0;
        self.pending_descriptors = 0;
        self.newest = None;
        self.notified = None;
        self.arm();
    }

    /// The flags of ring descriptor `slot`, which the device writes concurrently.
    fn flags_atomic(&self, slot: u16) -> &AtomicU16 {
        self.core.atomic_u16(usize::from(slot) * DESC_SIZE + 14)
    }

    /// Writes the descriptor at byte `offset` with two 8-byte stores: addr, then len, id and
    /// flags. A head goes in with [`held_bits`], which neither side reads as available or
    /// used; `publish` writes its real flags.
    #[inline]
    fn write_desc(&self, offset: usize, segment: &Segment, id: u16, flags: u16) {
        let tail = u64::from(segment.len) | u64::from(id) << 32 | u64::from(flags) << 48;
        self.core.write_descriptor(offset, segment.iova, tail);
    }

    fn take_id(&mut self) -> u16 {
        let id = self.free_id;
        self.free_id = self.id_next[usize::from(id)];
        self.num_free_ids -= 1;
        id
    }

    fn put_id(&mut self, id: u16) {
        self.id_next[usize::from(id)] = self.free_id;
        self.free_id = id;
        self.num_free_ids += 1;
    }

    /// Takes the next ring slot for an available descriptor: (slot, AVAIL/USED bits).
    #[inline]
    fn take_slot(&mut self) -> (u16, u16) {
        let slot = self.next_avail;
        let bits = avail_bits(self.avail_wrap);
        self.next_avail += 1;
        if self.next_avail == self.core.layout.size {
            self.next_avail = 0;
            self.avail_wrap = !self.avail_wrap;
        }
        (slot, bits)
    }
}

impl PackedQueue {
    /// Writes a chain under buffer id `id` (a tag of the queue's owner, below the ring size)
    /// without making it visible yet; `token` comes back with its completion. The id must not
    /// be in flight: a queue is driven either by tags through this or by tokens through
    /// [`Virtqueue::add`], never both.
    #[inline]
    pub fn add_at(&mut self, id: u16, segments: &[Segment], token: u64) -> Result<(), AddError> {
        // A broken queue says so first: its chains stay marked in flight for ever.
        if let Some(fault) = self.core.fault {
            return Err(AddError::Broken(fault));
        }
        match self.chains.get(usize::from(id)) {
            Some(c) if c.descriptors == 0 => {}
            _ => return Err(AddError::Full(segments.len())),
        }
        self.place(Some(id), segments, token)
    }

    /// Writes a chain under `id`, or (`None`) under an id from the private free list, taken
    /// once the chain is known to fit.
    #[inline]
    fn place(&mut self, id: Option<u16>, segments: &[Segment], token: u64) -> Result<(), AddError> {
        if let Some(fault) = self.core.fault {
            return Err(AddError::Broken(fault));
        }
        let n = segments.len();
        if n == 0 {
            return Err(AddError::Empty);
        }
        let free = usize::from(self.num_free);
        let others = usize::from(self.depth.saturating_sub(self.core.in_flight + 1));
        let indirect_ok = self.core.layout.indirect_max > 0 && n > 1;
        // Direct when the chain fits and, if indirect tables exist, enough descriptors remain
        // for every other chain the owner may still add; indirect otherwise.
        let direct = n <= free && (!indirect_ok || free - n >= others);
        if !direct {
            if indirect_ok {
                let max = usize::from(self.core.layout.indirect_max);
                if n > max {
                    return Err(AddError::TooManySegments { segments: n, max });
                }
                if free == 0 {
                    return Err(AddError::Full(n));
                }
            } else if n > usize::from(self.core.layout.size) {
                return Err(AddError::TooManySegments {
                    segments: n,
                    max: usize::from(self.core.layout.size),
                });
            } else {
                return Err(AddError::Full(n));
            }
        }
        let pooled = id.is_none();
        let id = match id {
            Some(id) => id,
            // Each chain holds at least one slot, so a free slot implies a free id; checked
            // anyway.
            None if self.num_free_ids == 0 => return Err(AddError::Full(n)),
            None => self.take_id(),
        };
        let writable: u32 = segments
            .iter()
            .filter(|s| s.device_writes)
            .fold(0u32, |a, s| a.saturating_add(s.len));
        let write_flag = |s: &Segment| if s.device_writes { DESC_F_WRITE } else { 0 };
        let head;
        let head_flags;
        let descriptors;
        if direct {
            // Consecutive slots, the same id in each, NEXT on all but the last; the wrap
            // counter may flip mid-chain, and each descriptor carries its own slot's bits.
            let (slot, bits) = self.take_slot();
            head = slot;
            let next = if n > 1 { DESC_F_NEXT } else { 0 };
            head_flags = bits | write_flag(&segments[0]) | next;
            self.write_desc(
                usize::from(slot) * DESC_SIZE,
                &segments[0],
                id,
                held_bits(bits),
            );
            for (i, segment) in segments.iter().enumerate().skip(1) {
                let (slot, bits) = self.take_slot();
                let next = if i + 1 < n { DESC_F_NEXT } else { 0 };
                let flags = bits | write_flag(segment) | next;
                self.write_desc(usize::from(slot) * DESC_SIZE, segment, id, flags);
            }
            descriptors = n as u16;
        } else {
            // The id's table holds the chain in order: no NEXT, no AVAIL/USED, WRITE only.
            let max = usize::from(self.core.layout.indirect_max);
            let table = self.core.layout.indirect + usize::from(id) * max * DESC_SIZE;
            for (i, segment) in segments.iter().enumerate() {
                self.write_desc(table + i * DESC_SIZE, segment, 0, write_flag(segment));
            }
            let (slot, bits) = self.take_slot();
            head = slot;
            head_flags = bits | DESC_F_INDIRECT;
            let table_iova = self.core.iova() + table as u64;
            self.write_desc(
                usize::from(slot) * DESC_SIZE,
                &Segment::readable(table_iova, (n * DESC_SIZE) as u32),
                id,
                held_bits(bits),
            );
            descriptors = 1;
        }
        self.chains[usize::from(id)] = Chain {
            token,
            descriptors,
            writable,
            published: false,
            pooled,
        };
        // At most `size` chains are in flight, so the pending list never overflows.
        self.pending[usize::from(self.pending_len)] = Pending {
            slot: head,
            flags: head_flags,
            id,
            descriptors,
        };
        self.pending_len += 1;
        self.pending_descriptors += descriptors;
        self.num_free -= descriptors;
        self.core.in_flight += 1;
        Ok(())
    }
}

impl PackedQueue {
    /// Keeps track (or stops) of the newest published chain and the newest one the device
    /// was notified of, for [`Self::notified_all_used`].
    pub fn track_notified(&mut self, on: bool) {
        self.track = on;
        self.newest = None;
        self.notified = None;
    }

    /// Records that the device was just notified of every published chain.
    #[inline]
    pub fn mark_notified(&mut self) {
        self.notified = self.newest;
    }

    /// How many of the next used descriptors are there, up to `max`: a walk over their
    /// flags that skips each chain's slots, as reaping does. Nothing is consumed or checked:
    /// the walk stops at the chains the device can see, and at the first id that names no
    /// chain in flight (counted, so that reaping reports it).
    #[inline]
    pub fn used_ready(&self, max: u16) -> u16 {
        let size = self.core.layout.size;
        let limit = max.min(self.core.in_flight - self.pending_len);
        let (mut slot, mut wrap) = (self.last_used, self.used_wrap);
        let mut n = 0;
        while n < limit {
            let flags = u16::from_le(self.flags_atomic(slot).load(Ordering::Acquire));
            if !is_used(flags, wrap) {
                break;
            }
            n += 1;
            let id = self.core.read_u16(usize::from(slot) * DESC_SIZE + 12);
            let Some(chain) = self.chains.get(usize::from(id)) else {
                break;
            };
            if chain.descriptors == 0 || !chain.published {
                break;
            }
            (slot, wrap) = advance(slot, wrap, chain.descriptors, size);
        }
        n
    }

    /// Whether the device has put every chain it was last notified of in the ring, as far as
    /// one look tells (nothing is consumed or checked). Used descriptors fill the ring
    /// contiguously in completion order, each skipping as many slots as its chain took, so
    /// the chains published up to the newest notified one cover exactly the slots before
    /// its head plus its own. If the used descriptor at that head, in that pass, carries its
    /// id, the chains completed before it fill every slot before the head: they are all the
    /// older ones. False when the newest notified chain was reaped already (the caller's
    /// count then says enough). A device that takes a later chain before an older one can
    /// make this true early, which only makes a held doorbell ring early.
    #[inline]
    pub fn notified_all_used(&self) -> bool {
        let Some(head) = self.notified else {
            return false;
        };
        // A head's AVAIL bit is its pass's wrap counter.
        let wrap = head.flags & DESC_F_AVAIL != 0;
        let flags = u16::from_le(self.flags_atomic(head.slot).load(Ordering::Acquire));
        is_used(flags, wrap)
            && self.core.read_u16(usize::from(head.slot) * DESC_SIZE + 12) == head.id
    }

    /// Drops the first `count` (published) chains from the pending list, keeping the rest in
    /// order; returns the ring descriptors the dropped ones take.
    #[cold]
    fn split_pending(&mut self, count: u16) -> u16 {
        let (count, len) = (usize::from(count), usize::from(self.pending_len));
        let descriptors = self.pending[..count]
            .iter()
            .fold(0u16, |n, p| n.wrapping_add(p.descriptors));
        self.pending.copy_within(count..len, 0);
        descriptors
    }
}

impl Virtqueue for PackedQueue {
    fn core(&self) -> &RingCore {
        &self.core
    }

    fn add(&mut self, segments: &[Segment], token: u64) -> Result<(), AddError> {
        self.place(None, segments, token)
    }

    #[inline]
    fn publish_up_to(&mut self, max: u16) -> bool {
        if self.pending_len == 0 || self.core.fault.is_some() || max == 0 {
            return false;
        }
        // Release: every descriptor written by `add` is visible before any head's flags.
        fence(Ordering::Release);
        let count = self.pending_len.min(max);
        // The first head last: the device, reading in ring order, sees the batch at once.
        // Later chains keep their held heads, so the device stops at the first of them.
        for i in (0..usize::from(count)).rev() {
            let p = self.pending[i];
            let order = if i == 0 {
                Ordering::Release
            } else {
                Ordering::Relaxed
            };
            self.flags_atomic(p.slot).store(p.flags.to_le(), order);
            self.chains[usize::from(p.id)].published = true;
        }
        if self.track {
            self.newest = Some(self.pending[usize::from(count) - 1]);
        }
        // Ring positions modulo 2^16, counted back from `next_avail` (the end of everything
        // added): the published batch runs from `old` to `new`.
        let old = self.next_avail.wrapping_sub(self.pending_descriptors);
        let descriptors = if count == self.pending_len {
            self.pending_descriptors
        } else {
            self.split_pending(count)
        };
        let new = old.wrapping_add(descriptors);
        self.pending_len -= count;
        self.pending_descriptors -= descriptors;
        // Full barrier between publishing the heads and reading the device's suppression
        // state, or a notification can be lost (the kernel's virtqueue_kick_prepare_packed).
        fence(Ordering::SeqCst);
        // One read, so offset and flags are a consistent pair.
        let event = self.core.read_u32(self.core.layout.device);
        let event_off_wrap = event as u16;
        match (event >> 16) as u16 {
            RING_EVENT_FLAGS_ENABLE => true,
            RING_EVENT_FLAGS_DISABLE => false,
            RING_EVENT_FLAGS_DESC if self.event_idx => {
                // Positions are taken modulo 2^16 as in vring_need_event; an event offset in
                // the other pass than the current avail wrap counter lies one ring earlier.
                let mut event_idx = event_off_wrap & !EVENT_WRAP;
                if (event_off_wrap & EVENT_WRAP != 0) != self.avail_wrap {
                    event_idx = event_idx.wrapping_sub(self.core.layout.size);
                }
                new.wrapping_sub(event_idx).wrapping_sub(1) < new.wrapping_sub(old)
            }
            // DESC without EVENT_IDX (illegal: taken as ENABLE) and reserved values: notify.
            _ => true,
        }
    }

    #[inline]
    fn next_used(&mut self) -> Option<Result<UsedChain, QueueFault>> {
        let slot = self.last_used;
        let flags = u16::from_le(self.flags_atomic(slot).load(Ordering::Acquire));
        if !is_used(flags, self.used_wrap) {
            return None;
        }
        let published = self.core.in_flight - self.pending_len;
        if published == 0 {
            let (now, now_wrap) = advance(slot, self.used_wrap, 1, self.core.layout.size);
            return Some(Err(self.core.break_queue(QueueFault::IndexJump {
                last: off_wrap(slot, self.used_wrap),
                now: off_wrap(now, now_wrap),
                in_flight: published,
            })));
        }
        // The Acquire load above orders these reads after the device's flag write.
        let offset = usize::from(slot) * DESC_SIZE;
        let written = self.core.read_u32(offset + 8);
        let id = self.core.read_u16(offset + 12);
        if id >= self.core.layout.size {
            return Some(Err(self.core.break_queue(QueueFault::IdOutOfRange {
                id: u32::from(id),
                size: self.core.layout.size,
            })));
        }
        let chain = self.chains[usize::from(id)];
        if chain.descriptors == 0 || !chain.published {
            return Some(Err(self
                .core
                .break_queue(QueueFault::NotInFlight { id: u32::from(id) })));
        }
        let written = match self
            .core
            .check_written(u32::from(id), written, chain.writable)
        {
            Ok(written) => written,
            Err(fault) => return Some(Err(fault)),
        };
        // The device skips the rest of the chain's slots: its next used descriptor goes
        // `descriptors` slots on.
        (self.last_used, self.used_wrap) = advance(
            slot,
            self.used_wrap,
            chain.descriptors,
            self.core.layout.size,
        );
        self.num_free += chain.descriptors;
        if self.track {
            // A mark on a chain that is gone could match its stale used descriptor later.
            if self.newest.is_some_and(|h| h.id == id) {
                self.newest = None;
            }
            if self.notified.is_some_and(|h| h.id == id) {
                self.notified = None;
            }
        }
        self.chains[usize::from(id)].descriptors = 0;
        self.chains[usize::from(id)].published = false;
        if chain.pooled {
            self.put_id(id);
        }
        Some(Ok(self.core.completed(chain.token, written)))
    }

    #[inline]
    fn unpublished(&self) -> u16 {
        self.pending_len
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::virtio::fake::ring_tests::{
        blk_chain, drain, identity_core, tokens, used, XorShift,
    };
    use crate::virtio::layout::RingLayout;

    /// A chain the fake device found available.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct AvailChain {
        /// The buffer id of the chain's last ring descriptor.
        pub id: u16,
        pub segments: Vec<Segment>,
        pub indirect: bool,
        /// Ring slots the chain took.
        pub descriptors: u16,
        /// Every ring descriptor had the avail bits of its own slot's pass and the chain's
        /// id, and indirect table entries had neither NEXT, AVAIL, USED nor INDIRECT.
        pub flags_ok: bool,
    }

    /// The device's side of a packed ring, reading and writing the same memory the driver
    /// uses, with its own wrap counters. Tests make it complete chains in any order, or
    /// misbehave.
    pub struct FakePackedDevice {
        base: *mut u8,
        iova: u64,
        len: usize,
        layout: RingLayout,
        next_avail: u16,
        avail_wrap: bool,
        pub next_used: u16,
        pub used_wrap: bool,
    }

    fn is_avail(flags: u16, wrap: bool) -> bool {
        (flags & DESC_F_AVAIL != 0) == wrap && (flags & DESC_F_USED != 0) != wrap
    }

    // The fake device plays the hardware: like a real device it reads and writes the queue's
    // memory behind the driver's back, at offsets from the same layout, all in bounds.
    #[allow(clippy::undocumented_unsafe_blocks)]
    impl FakePackedDevice {
        pub fn new(queue: &PackedQueue) -> Self {
            FakePackedDevice {
                base: queue.core().memory().ptr().as_ptr(),
                iova: queue.core().memory().iova(),
                len: queue.core().memory().len(),
                layout: *queue.core().layout(),
                next_avail: 0,
                avail_wrap: true,
                next_used: 0,
                used_wrap: true,
            }
        }

        fn flags(&self, slot: u16) -> &AtomicU16 {
            unsafe { AtomicU16::from_ptr(self.base.add(usize::from(slot) * 16 + 14).cast()) }
        }

        fn desc(&self, offset: usize) -> (u64, u32, u16, u16) {
            let p = unsafe { self.base.add(offset) };
            unsafe {
                (
                    p.cast::<u64>().read_volatile(),
                    p.add(8).cast::<u32>().read_volatile(),
                    p.add(12).cast::<u16>().read_volatile(),
                    p.add(14).cast::<u16>().read_volatile(),
                )
            }
        }

        fn wr16(&self, off: usize, v: u16) {
            unsafe { self.base.add(off).cast::<u16>().write_volatile(v) }
        }

        fn rd16(&self, off: usize) -> u16 {
            unsafe { self.base.add(off).cast::<u16>().read_volatile() }
        }

        /// Every newly available chain, following NEXT and INDIRECT. Never panics on garbage.
        pub fn take_available(&mut self) -> Vec<AvailChain> {
            let size = self.layout.size;
            let mut out = Vec::new();
            let mut consumed = 0u32;
            while consumed < u32::from(size)
                && is_avail(
                    self.flags(self.next_avail).load(Ordering::Acquire),
                    self.avail_wrap,
                )
            {
                let mut chain = AvailChain {
                    id: 0,
                    segments: Vec::new(),
                    indirect: false,
                    descriptors: 0,
                    flags_ok: true,
                };
                let mut first_id = None;
                loop {
                    let (addr, len, id, flags) =
                        self.desc(usize::from(self.next_avail) * DESC_SIZE);
                    chain.flags_ok &= is_avail(flags, self.avail_wrap);
                    chain.flags_ok &= *first_id.get_or_insert(id) == id;
                    chain.id = id;
                    chain.descriptors += 1;
                    consumed += 1;
                    (self.next_avail, self.avail_wrap) =
                        advance(self.next_avail, self.avail_wrap, 1, size);
                    if flags & DESC_F_INDIRECT != 0 {
                        chain.indirect = true;
                        let table = addr.wrapping_sub(self.iova) as usize;
                        let count = len as usize / DESC_SIZE;
                        if table < self.len && count <= (self.len - table) / DESC_SIZE {
                            for i in 0..count {
                                let (addr, len, _, flags) = self.desc(table + i * DESC_SIZE);
                                chain.flags_ok &= flags & !DESC_F_WRITE == 0;
                                chain.segments.push(Segment {
                                    iova: addr,
                                    len,
                                    device_writes: flags & DESC_F_WRITE != 0,
                                });
                            }
                        } else {
                            chain.flags_ok = false;
                        }
                    } else {
                        chain.segments.push(Segment {
                            iova: addr,
                            len,
                            device_writes: flags & DESC_F_WRITE != 0,
                        });
                    }
                    if flags & DESC_F_NEXT == 0 || consumed >= u32::from(size) {
                        break;
                    }
                }
                out.push(chain);
            }
            out
        }

        /// Writes a used descriptor (any id and length, hostile or not) at the device's
        /// next-used slot with the right wrap bits, and skips `descriptors` slots.
        pub fn complete(&mut self, id: u16, len: u32, descriptors: u16) {
            let bits = if self.used_wrap {
                DESC_F_AVAIL | DESC_F_USED
            } else {
                0
            };
            self.write_used_at(self.next_used, id, len, bits);
            (self.next_used, self.used_wrap) = advance(
                self.next_used,
                self.used_wrap,
                descriptors.min(self.layout.size),
                self.layout.size,
            );
        }

        /// Writes id and len, then (Release) flags, at ring slot `slot`.
        pub fn write_used_at(&self, slot: u16, id: u16, len: u32, flags: u16) {
            let p = unsafe { self.base.add(usize::from(slot) * DESC_SIZE) };
            unsafe {
                p.add(8).cast::<u32>().write_volatile(len);
                p.add(12).cast::<u16>().write_volatile(id);
            }
            self.flags(slot).store(flags, Ordering::Release);
        }

        /// Scribbles on the address and length of ring slot `slot`.
        pub fn write_addr_len(&self, slot: u16, addr: u64, len: u32) {
            let p = unsafe { self.base.add(usize::from(slot) * DESC_SIZE) };
            unsafe {
                p.cast::<u64>().write_volatile(addr);
                p.add(8).cast::<u32>().write_volatile(len);
            }
        }

        pub fn set_device_event(&self, off_wrap: u16, flags: u16) {
            self.wr16(self.layout.device, off_wrap);
            self.wr16(self.layout.device + 2, flags);
        }

        /// The driver event suppression area: (desc_event_off_wrap, desc_event_flags).
        pub fn driver_event(&self) -> (u16, u16) {
            (
                self.rd16(self.layout.driver),
                self.rd16(self.layout.driver + 2),
            )
        }
    }

    pub fn queue(size: u16, indirect_max: u16, event_idx: bool, depth: u16) -> PackedQueue {
        let layout = RingLayout::packed(size, indirect_max).unwrap();
        PackedQueue::new(identity_core(layout), event_idx, depth)
    }

    fn one(t: u64) -> [Segment; 1] {
        [Segment::readable(0x1000 + t, 512)]
    }

    #[test]
    fn a_read_chain_round_trips() {
        let mut q = queue(8, 0, false, 4);
        let mut dev = FakePackedDevice::new(&q);
        assert_eq!(dev.driver_event(), (0, RING_EVENT_FLAGS_DISABLE));
        let a = q.addresses();
        let base = q.core().iova();
        assert_eq!(a.descriptors, base);
        assert_eq!(a.driver, base + 128);
        assert_eq!(a.device, base + 132);
        q.add(&blk_chain(0), 77).unwrap();
        assert!(
            dev.take_available().is_empty(),
            "added but not published: the head is not available yet"
        );
        assert!(q.pop_used().is_none());
        assert!(q.publish());
        let avail = dev.take_available();
        assert_eq!(avail.len(), 1);
        let c = &avail[0];
        assert!(c.flags_ok && !c.indirect);
        assert_eq!(
            (c.descriptors, c.segments.as_slice()),
            (3, &blk_chain(0)[..])
        );
        assert_eq!(q.in_flight(), 1);
        assert!(q.pop_used().is_none(), "nothing used yet");
        dev.complete(c.id, 4097, c.descriptors);
        assert_eq!(q.pop_used(), used(77, 4097));
        assert!(q.pop_used().is_none());
        assert_eq!((q.in_flight(), q.num_free, q.last_used), (0, 8, 3));
        assert_eq!(q.fault(), None);
    }

    #[test]
    fn the_ring_wraps_mid_chain_many_times() {
        // Chains of 3 on a ring of 8: positions wrap inside chains; two in flight, completed
        // sometimes out of order.
        let mut q = queue(8, 0, true, 2);
        let mut dev = FakePackedDevice::new(&q);
        let mut held: Vec<(AvailChain, u64)> = Vec::new();
        let mut done = 0u64;
        let mut wraps = 0u32;
        let mut last_wrap = q.avail_wrap;
        for i in 0..70_000u64 {
            q.add(&blk_chain(i % 5), i).unwrap();
            q.publish();
            if q.avail_wrap != last_wrap {
                wraps += 1;
                last_wrap = q.avail_wrap;
            }
            let avail = dev.take_available();
            assert_eq!(avail.len(), 1);
            let c = avail.into_iter().next().unwrap();
            assert!(c.flags_ok && !c.indirect, "chain {i}: {c:?}");
            assert_eq!(c.segments, blk_chain(i % 5));
            held.push((c, i));
            if held.len() == 2 {
                let (c, token) = held.remove(if i % 3 == 0 { 1 } else { 0 });
                dev.complete(c.id, 4097, c.descriptors);
                assert_eq!(
                    q.pop_used(),
                    Some(Ok(UsedChain {
                        token,
                        written: 4097
                    }))
                );
                assert!(q.pop_used().is_none());
                done += 1;
            }
        }
        let (c, _) = held.pop().unwrap();
        dev.complete(c.id, 0, c.descriptors);
        assert!(q.pop_used().unwrap().is_ok());
        done += 1;
        assert_eq!(done, 70_000);
        assert_eq!(q.in_flight(), 0);
        assert_eq!(q.num_free, 8);
        // 210,000 descriptors on a ring of 8: 26,250 passes, back at slot 0, counter as new.
        assert_eq!(wraps, 26_250);
        assert_eq!((q.next_avail, q.avail_wrap), (0, true));
        assert_eq!((q.last_used, q.used_wrap), (0, true));
    }

    #[test]
    fn a_ring_of_odd_size_serves_mixed_chains() {
        let mut q = queue(5, 0, false, 5);
        let mut dev = FakePackedDevice::new(&q);
        let mut rng = XorShift(0x5eed);
        let mut held: Vec<(AvailChain, u64)> = Vec::new();
        let mut outstanding = Vec::new();
        for t in 0..20_000u64 {
            let n = 1 + (rng.next() % 3) as usize;
            let segs = &blk_chain(t % 7)[..n];
            match q.add(segs, t) {
                Ok(()) => outstanding.push(t),
                Err(AddError::Full(_)) => {}
                Err(e) => panic!("{e}"),
            }
            q.publish();
            for c in dev.take_available() {
                assert!(c.flags_ok);
                held.push((c, 0));
            }
            while !held.is_empty() && rng.next().is_multiple_of(2) {
                let (c, _) = held.remove((rng.next() % held.len() as u64) as usize);
                dev.complete(c.id, 0, c.descriptors);
                let used = q.pop_used().unwrap().unwrap();
                let at = outstanding.iter().position(|&x| x == used.token).unwrap();
                outstanding.swap_remove(at);
            }
            assert_eq!(usize::from(q.in_flight()), outstanding.len());
        }
    }

    #[test]
    fn out_of_order_completion_frees_slots_and_reuses_ids() {
        let mut q = queue(8, 0, false, 8);
        let mut dev = FakePackedDevice::new(&q);
        q.add(&blk_chain(0), 10).unwrap();
        q.add(&blk_chain(1), 11).unwrap();
        // 6 of 8 slots used: a third 3-descriptor chain does not fit.
        assert_eq!(q.add(&blk_chain(2), 12), Err(AddError::Full(3)));
        q.add(&one(0), 13).unwrap();
        assert!(q.publish(), "device flags ENABLE: it wants a notification");
        let avail = dev.take_available();
        assert_eq!(avail.len(), 3);
        let ids: Vec<u16> = avail.iter().map(|c| c.id).collect();
        assert_eq!(ids, [0, 1, 2]);
        // Complete in reverse order; the used descriptors go to slots 0, 1 and 4.
        for c in avail.iter().rev() {
            dev.complete(c.id, 0, c.descriptors);
        }
        assert_eq!(tokens(&mut q), [13, 11, 10]);
        assert_eq!((q.last_used, q.num_free), (7, 8));
        // All 8 slots free again: two 3-chains and a 2-chain fit, wrapping at slot 8; the
        // ids freed last are reused first.
        q.add(&blk_chain(3), 1).unwrap();
        q.add(&blk_chain(4), 2).unwrap();
        q.add(&blk_chain(5)[..2], 3).unwrap();
        assert_eq!(q.add(&one(0), 4), Err(AddError::Full(1)));
        q.publish();
        let avail = dev.take_available();
        assert_eq!(avail.iter().map(|c| c.id).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(avail.iter().all(|c| c.flags_ok));
        // Free id 1 alone: the next chain gets id 1.
        dev.complete(avail[1].id, 0, avail[1].descriptors);
        assert_eq!(q.pop_used().unwrap().unwrap().token, 2);
        q.add(&one(1), 5).unwrap();
        q.publish();
        let again = dev.take_available();
        assert_eq!((again.len(), again[0].id), (1, 1));
        for c in [&avail[0], &avail[2], &again[0]] {
            dev.complete(c.id, 0, c.descriptors);
        }
        assert_eq!(tokens(&mut q), [1, 3, 5]);
        assert_eq!(q.in_flight(), 0);
    }

    #[test]
    fn a_batch_becomes_visible_with_its_first_head() {
        let mut q = queue(8, 0, false, 8);
        let mut dev = FakePackedDevice::new(&q);
        q.add(&blk_chain(0), 0).unwrap();
        q.add(&one(1), 1).unwrap();
        // Non-head descriptors are written; heads hold their bits flipped (first pass: USED
        // without AVAIL), which is neither available to the device nor used to the driver.
        assert!(dev.take_available().is_empty());
        for head in [0, 3] {
            let flags = q.flags_atomic(head).load(Ordering::Relaxed);
            assert_eq!(flags & (DESC_F_AVAIL | DESC_F_USED), DESC_F_USED);
            assert!(!is_used(flags, true) && !is_used(flags, false));
        }
        assert!(q.pop_used().is_none());
        q.publish();
        assert_eq!(dev.take_available().len(), 2);
    }

    #[test]
    fn indirect_chains_take_one_ring_slot() {
        // depth 8 on a ring of 8: no room for direct chains, so multi-buffer chains go indirect.
        let mut q = queue(8, 16, true, 8);
        let mut dev = FakePackedDevice::new(&q);
        let long: Vec<Segment> = (0..12)
            .map(|i| {
                if i == 0 {
                    Segment::readable(0x3000, 16)
                } else {
                    Segment::writable(0x40_0000 + i * 4096, 4096)
                }
            })
            .collect();
        for t in 0..8 {
            q.add(&long, t).unwrap();
        }
        assert_eq!(q.num_free, 0);
        assert_eq!(q.add(&long, 9), Err(AddError::Full(12)));
        let too_long: Vec<Segment> = (0..17).map(|i| Segment::readable(i * 512, 512)).collect();
        assert_eq!(
            q.add(&too_long, 0),
            Err(AddError::TooManySegments {
                segments: 17,
                max: 16
            })
        );
        q.publish();
        let avail = dev.take_available();
        assert_eq!(avail.len(), 8);
        for c in &avail {
            assert!(c.indirect && c.flags_ok);
            assert_eq!(c.descriptors, 1);
            assert_eq!(c.segments, long);
            dev.complete(c.id, 11 * 4096, 1);
        }
        assert_eq!(drain(&mut q).iter().filter(|r| r.is_ok()).count(), 8);
        // Single-buffer chains never need a table.
        q.add(&one(0), 0).unwrap();
        q.publish();
        assert!(!dev.take_available()[0].indirect);
        // Without tables, a chain longer than the ring can never fit.
        let mut q = queue(4, 0, false, 4);
        assert_eq!(
            q.add(&too_long[..5], 0),
            Err(AddError::TooManySegments {
                segments: 5,
                max: 4
            })
        );
        assert_eq!(q.add(&[], 0), Err(AddError::Empty));
    }

    #[test]
    fn direct_while_room_remains_for_the_others() {
        // Ring 8, depth 2: a 3-chain is direct while 8 - 3 >= 1 other.
        let mut q = queue(8, 4, false, 2);
        let mut dev = FakePackedDevice::new(&q);
        q.add(&blk_chain(0), 0).unwrap();
        q.add(&blk_chain(1), 1).unwrap();
        q.publish();
        let avail = dev.take_available();
        assert!(avail.iter().all(|c| !c.indirect && c.flags_ok));
        // Ring 4, depth 4: a 3-chain leaves 1 < 3 slots for the others, so it goes indirect.
        let mut q = queue(4, 4, false, 4);
        let mut dev = FakePackedDevice::new(&q);
        q.add(&blk_chain(0), 0).unwrap();
        q.publish();
        let avail = dev.take_available();
        assert!(avail[0].indirect && avail[0].flags_ok);
        assert_eq!(avail[0].segments, blk_chain(0));
    }

    #[test]
    fn a_partial_publish_shows_the_oldest_chains_and_holds_the_rest() {
        let mut q = queue(16, 0, true, 16);
        let mut dev = FakePackedDevice::new(&q);
        // Slots 0..=12 go through as one-descriptor chains.
        for t in 0..13 {
            q.add(&one(t), t).unwrap();
        }
        q.publish();
        for c in dev.take_available() {
            dev.complete(c.id, 0, c.descriptors);
        }
        while let Some(r) = q.pop_used() {
            r.unwrap();
        }
        // Three blk chains from slot 13: 13..=15, then 0..=2 and 3..=5 of the next pass.
        for t in 0..3 {
            q.add(&blk_chain(t), 10 + t).unwrap();
        }
        assert_eq!(q.unpublished(), 3);
        // The device wants to hear about slot 1 of the second pass (wrap 0): the second chain.
        dev.set_device_event(1, RING_EVENT_FLAGS_DESC);
        assert!(!q.publish_up_to(1), "slots 13..=15 do not reach slot 1");
        let seen = dev.take_available();
        assert_eq!(seen.len(), 1, "the second head is still held");
        assert!(seen[0].flags_ok);
        assert_eq!(seen[0].segments, blk_chain(0));
        assert!(q.publish_up_to(1), "slots 0..=2 pass slot 1");
        assert!(!q.publish_up_to(0));
        let seen = dev.take_available();
        assert_eq!(seen.len(), 1);
        assert!(seen[0].flags_ok);
        assert_eq!(seen[0].segments, blk_chain(1));
        assert_eq!(q.unpublished(), 1);
        assert!(!q.publish_up_to(5), "slots 3..=5 lie past the event");
        assert_eq!(q.unpublished(), 0);
        let seen = dev.take_available();
        assert_eq!(seen[0].segments, blk_chain(2));
        for c in seen {
            dev.complete(c.id, 4097, c.descriptors);
        }
        assert_eq!(q.pop_used().map(|r| r.map(|u| u.token)), Some(Ok(12)));
    }

    #[test]
    fn event_suppression_enable_disable_and_desc() {
        let mut q = queue(8, 0, false, 8);
        let mut dev = FakePackedDevice::new(&q);
        let cycle = |q: &mut PackedQueue, dev: &mut FakePackedDevice, n: u64| {
            for t in 0..n {
                q.add(&one(t), t).unwrap();
            }
            let notify = q.publish();
            for c in dev.take_available() {
                dev.complete(c.id, 0, c.descriptors);
            }
            while let Some(r) = q.pop_used() {
                r.unwrap();
            }
            notify
        };
        dev.set_device_event(0, RING_EVENT_FLAGS_ENABLE);
        assert!(cycle(&mut q, &mut dev, 1));
        dev.set_device_event(0, RING_EVENT_FLAGS_DISABLE);
        assert!(!cycle(&mut q, &mut dev, 1));
        // DESC without EVENT_IDX is illegal: taken as ENABLE.
        dev.set_device_event(5, RING_EVENT_FLAGS_DESC);
        assert!(cycle(&mut q, &mut dev, 1));
        assert!(!q.publish(), "nothing new");
        assert_eq!(dev.driver_event(), (0, RING_EVENT_FLAGS_DISABLE));

        let mut q = queue(8, 0, true, 8);
        let mut dev = FakePackedDevice::new(&q);
        // The device wants to hear when slot 5 of the first pass (wrap 1) is made available.
        dev.set_device_event(5 | EVENT_WRAP, RING_EVENT_FLAGS_DESC);
        assert!(!cycle(&mut q, &mut dev, 1), "slot 0");
        assert!(!cycle(&mut q, &mut dev, 3), "slots 1..=3");
        assert!(!cycle(&mut q, &mut dev, 1), "slot 4");
        assert!(cycle(&mut q, &mut dev, 1), "slot 5 passed");
        assert!(!cycle(&mut q, &mut dev, 1), "slot 6: already passed");
        // Slot 1 of the second pass (wrap 0), reached by a batch crossing the ring's end.
        dev.set_device_event(1, RING_EVENT_FLAGS_DESC);
        assert!(!cycle(&mut q, &mut dev, 2), "slots 7, 0");
        assert!(cycle(&mut q, &mut dev, 3), "slots 1..=3 pass slot 1");
        // An event slot inside a batch that wraps: slot 6 of pass 2 and slot 0 of pass 3.
        dev.set_device_event(6, RING_EVENT_FLAGS_DESC);
        assert!(!cycle(&mut q, &mut dev, 2), "slots 4, 5");
        assert!(cycle(&mut q, &mut dev, 4), "slots 6, 7, 0, 1");
        assert_eq!((q.next_avail, q.avail_wrap), (2, true));
        dev.set_device_event(7, RING_EVENT_FLAGS_DESC);
        // Slot 7 of pass 2 lies before this batch (slots 2, 3 of pass 3).
        assert!(!cycle(&mut q, &mut dev, 2));
        // An event inside a multi-descriptor chain counts too (slot 5 is its 2nd).
        dev.set_device_event(5 | EVENT_WRAP, RING_EVENT_FLAGS_DESC);
        assert!(q.add(&blk_chain(0), 0).is_ok());
        assert!(q.publish());
        assert_eq!(dev.driver_event(), (0, RING_EVENT_FLAGS_DISABLE));
    }

    fn assert_broken(q: &mut PackedQueue, fault: QueueFault) {
        assert_eq!(q.fault(), Some(fault));
        assert_eq!(q.pop_used(), Some(Err(fault)));
        assert_eq!(q.add(&one(0), 0), Err(AddError::Broken(fault)));
        assert!(!q.publish());
        assert_eq!(q.pop_used(), Some(Err(fault)));
    }

    #[test]
    fn an_out_of_range_id_breaks_the_queue() {
        for bad in [8u16, 0xffff] {
            let mut q = queue(8, 0, true, 8);
            let mut dev = FakePackedDevice::new(&q);
            q.add(&blk_chain(0), 1).unwrap();
            q.publish();
            dev.take_available();
            dev.complete(bad, 0, 3);
            let fault = QueueFault::IdOutOfRange {
                id: u32::from(bad),
                size: 8,
            };
            assert_eq!(q.pop_used(), Some(Err(fault)));
            assert_broken(&mut q, fault);
        }
    }

    #[test]
    fn an_id_never_added_breaks_the_queue() {
        let mut q = queue(8, 0, true, 8);
        let mut dev = FakePackedDevice::new(&q);
        q.add(&blk_chain(0), 1).unwrap();
        q.publish();
        dev.take_available();
        dev.complete(5, 0, 3);
        let fault = QueueFault::NotInFlight { id: 5 };
        assert_eq!(q.pop_used(), Some(Err(fault)));
        assert_broken(&mut q, fault);
    }

    #[test]
    fn the_same_id_twice_breaks_the_queue() {
        let mut q = queue(8, 0, true, 8);
        let mut dev = FakePackedDevice::new(&q);
        q.add(&blk_chain(0), 1).unwrap();
        q.add(&blk_chain(1), 2).unwrap();
        q.publish();
        let ids: Vec<u16> = dev.take_available().iter().map(|c| c.id).collect();
        dev.complete(ids[0], 1, 3);
        dev.complete(ids[0], 1, 3);
        assert_eq!(q.pop_used().unwrap().unwrap().token, 1);
        let fault = QueueFault::NotInFlight {
            id: u32::from(ids[0]),
        };
        assert_eq!(q.pop_used(), Some(Err(fault)));
        assert_broken(&mut q, fault);
    }

    #[test]
    fn a_length_beyond_the_writable_buffers_breaks_the_queue() {
        let mut q = queue(8, 0, true, 8);
        let mut dev = FakePackedDevice::new(&q);
        q.add(&blk_chain(0), 1).unwrap();
        q.publish();
        let id = dev.take_available()[0].id;
        dev.complete(id, 4098, 3);
        let fault = QueueFault::LengthTooLong {
            id: u32::from(id),
            written: 4098,
            capacity: 4097,
        };
        assert_eq!(q.pop_used(), Some(Err(fault)));
        assert_broken(&mut q, fault);
    }

    #[test]
    fn a_clamping_queue_tolerates_an_overlong_length_but_not_a_bad_id() {
        let mut q = queue(8, 0, true, 8);
        q.core.clamp_used_len = true;
        let mut dev = FakePackedDevice::new(&q);
        q.add(&blk_chain(0), 1).unwrap();
        q.add(&blk_chain(1), 2).unwrap();
        q.publish();
        let ids: Vec<u16> = dev.take_available().iter().map(|c| c.id).collect();
        dev.complete(ids[0], u32::MAX, 3);
        assert_eq!(q.pop_used(), used(1, 4097));
        dev.complete(ids[0], 0, 3);
        let fault = QueueFault::NotInFlight {
            id: u32::from(ids[0]),
        };
        assert_eq!(q.pop_used(), Some(Err(fault)));
        assert_broken(&mut q, fault);
    }

    #[test]
    fn used_bits_of_the_wrong_pass_are_not_used_yet() {
        let mut q = queue(4, 0, true, 4);
        let mut dev = FakePackedDevice::new(&q);
        q.add(&one(0), 1).unwrap();
        q.publish();
        let id = dev.take_available()[0].id;
        // Pass 1: used means AVAIL = USED = 1. Anything else at slot 0 is not used yet.
        for flags in [0, DESC_F_AVAIL, DESC_F_USED, DESC_F_USED | DESC_F_NEXT] {
            dev.write_used_at(0, id, 0, flags);
            assert_eq!(q.pop_used(), None, "flags {flags:#x}");
        }
        dev.complete(id, 0, 1);
        assert_eq!(q.pop_used().unwrap().unwrap().token, 1);
        // Go round once so the used wrap counter is 0, then stale pass-1 bits are not used.
        for t in 0..3 {
            q.add(&one(t), t).unwrap();
            q.publish();
            let c = dev.take_available().pop().unwrap();
            dev.complete(c.id, 0, 1);
            assert!(q.pop_used().unwrap().is_ok());
        }
        assert_eq!((q.last_used, q.used_wrap), (0, false));
        q.add(&one(9), 9).unwrap();
        q.publish();
        let c = dev.take_available().pop().unwrap();
        dev.write_used_at(0, c.id, 0, DESC_F_AVAIL | DESC_F_USED);
        assert_eq!(q.pop_used(), None);
        dev.complete(c.id, 0, 1);
        assert_eq!(q.pop_used().unwrap().unwrap().token, 9);
        assert_eq!(q.fault(), None);
    }

    #[test]
    fn a_used_descriptor_with_nothing_in_flight_breaks_the_queue() {
        let mut q = queue(8, 0, true, 8);
        let dev = FakePackedDevice::new(&q);
        dev.write_used_at(0, 0, 0, DESC_F_AVAIL | DESC_F_USED);
        let fault = QueueFault::IndexJump {
            last: EVENT_WRAP,
            now: 1 | EVENT_WRAP,
            in_flight: 0,
        };
        assert_eq!(q.pop_used(), Some(Err(fault)));
        assert_broken(&mut q, fault);

        // Added but not published is not in the device's hands either.
        let mut q = queue(8, 0, true, 8);
        let dev = FakePackedDevice::new(&q);
        q.add(&one(0), 0).unwrap();
        dev.write_used_at(0, 0, 0, DESC_F_AVAIL | DESC_F_USED);
        assert!(matches!(
            q.pop_used(),
            Some(Err(QueueFault::IndexJump { in_flight: 0, .. }))
        ));

        // One chain published, another only added: completing the latter is NotInFlight.
        let mut q = queue(8, 0, true, 8);
        let mut dev = FakePackedDevice::new(&q);
        q.add(&one(0), 0).unwrap();
        q.publish();
        dev.take_available();
        q.add(&one(1), 1).unwrap();
        dev.complete(1, 0, 1);
        assert_eq!(q.pop_used(), Some(Err(QueueFault::NotInFlight { id: 1 })));
    }

    #[test]
    fn a_hostile_device_never_panics_and_faults_stick() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut faults = 0;
        for round in 0..4000u32 {
            let honest = round.is_multiple_of(4);
            let size = 1 + (rng.next() % 16) as u16;
            let indirect_max = if rng.next().is_multiple_of(2) { 0 } else { 4 };
            let event_idx = rng.next().is_multiple_of(2);
            let depth = 1 + (rng.next() % u64::from(size)) as u16;
            let mut q = queue(size, indirect_max, event_idx, depth);
            if rng.next().is_multiple_of(2) {
                q.core.clamp_used_len = true;
            }
            let mut dev = FakePackedDevice::new(&q);
            let mut outstanding: Vec<u64> = Vec::new();
            let mut held: Vec<(AvailChain, u32)> = Vec::new();
            let mut seen: Option<QueueFault> = None;
            let mut token = 0u64;
            let on_pop = |r: Option<Result<UsedChain, QueueFault>>,
                          outstanding: &mut Vec<u64>,
                          seen: &mut Option<QueueFault>| {
                match (r, *seen) {
                    (None, None) => {}
                    (None, Some(f)) => panic!("broken by {f} yet pop_used gave None"),
                    (Some(Ok(used)), None) => {
                        let at = outstanding
                            .iter()
                            .position(|&t| t == used.token)
                            .expect("a token not in flight came back");
                        outstanding.swap_remove(at);
                    }
                    (Some(Ok(used)), Some(f)) => panic!("broken by {f} yet popped {used:?}"),
                    (Some(Err(f)), None) => *seen = Some(f),
                    (Some(Err(f)), Some(g)) => assert_eq!(f, g),
                }
            };
            for _ in 0..64 {
                let action = rng.next() % if honest { 5 } else { 8 };
                match action {
                    0 | 1 => {
                        if q.in_flight() < depth {
                            let n = 1 + (rng.next() % 5) as usize;
                            let segs: Vec<Segment> = (0..n)
                                .map(|i| Segment {
                                    iova: rng.next(),
                                    len: (rng.next() % 8192) as u32,
                                    device_writes: i > 0 && rng.next().is_multiple_of(2),
                                })
                                .collect();
                            token += 1;
                            match q.add(&segs, token) {
                                Ok(()) => outstanding.push(token),
                                Err(AddError::Broken(f)) => assert_eq!(Some(f), seen),
                                Err(AddError::Full(_) | AddError::TooManySegments { .. }) => {
                                    assert!(seen.is_none())
                                }
                                Err(AddError::Empty) => unreachable!(),
                            }
                        }
                    }
                    2 => {
                        let notify = q.publish();
                        assert!(!(notify && seen.is_some()));
                        if rng.next().is_multiple_of(4) {
                            let flags = (rng.next() % 4) as u16;
                            dev.set_device_event(rng.next() as u16, flags);
                        }
                    }
                    3 => {
                        for c in dev.take_available() {
                            if honest {
                                assert!(c.flags_ok, "{c:?}");
                            }
                            let writable = c
                                .segments
                                .iter()
                                .filter(|s| s.device_writes)
                                .fold(0u32, |a, s| a.saturating_add(s.len));
                            held.push((c, writable));
                        }
                    }
                    4 => {
                        if !held.is_empty() {
                            let (c, writable) =
                                held.swap_remove((rng.next() % held.len() as u64) as usize);
                            let len = if honest {
                                (rng.next() % (u64::from(writable) + 1)) as u32
                            } else {
                                (rng.next() % (u64::from(writable) + 3)) as u32
                            };
                            dev.complete(c.id, len, c.descriptors);
                        }
                    }
                    5 => {
                        // Garbage anywhere in the ring.
                        let slot = (rng.next() % u64::from(size)) as u16;
                        dev.write_used_at(
                            slot,
                            rng.next() as u16 % (size + 2),
                            rng.next() as u32,
                            rng.next() as u16,
                        );
                        if rng.next().is_multiple_of(2) {
                            dev.write_addr_len(slot, rng.next(), rng.next() as u32);
                        }
                    }
                    6 => {
                        // Garbage at the driver's next-used slot, with right or wrong bits.
                        let bits = match rng.next() % 3 {
                            0 if q.used_wrap => DESC_F_AVAIL | DESC_F_USED,
                            0 => 0,
                            1 => rng.next() as u16,
                            _ => !0,
                        };
                        dev.write_used_at(
                            q.last_used,
                            rng.next() as u16 % (size + 1),
                            rng.next() as u32 % 9000,
                            bits,
                        );
                    }
                    _ => {
                        // A device that completes without being asked, with a random count.
                        let id = (rng.next() % u64::from(size)) as u16;
                        let n = 1 + (rng.next() % u64::from(size)) as u16;
                        dev.complete(id, rng.next() as u32 % 9000, n);
                    }
                }
                for _ in 0..(rng.next() % 3) {
                    let r = q.pop_used();
                    on_pop(r, &mut outstanding, &mut seen);
                }
                // Counting what is ready never panics and never counts past `max` or what
                // the device can see, whatever the ring holds.
                let max = (rng.next() % 20) as u16;
                let ready = q.used_ready(max);
                assert!(ready <= max && ready <= q.in_flight(), "{ready} of {max}");
                if ready > 0 && seen.is_none() && rng.next().is_multiple_of(2) {
                    // Reaping finds what was counted ready first (or breaks the queue on it).
                    let r = q.pop_used();
                    assert!(r.is_some(), "{ready} counted ready, none reaped");
                    on_pop(r, &mut outstanding, &mut seen);
                }
                assert!(q.in_flight() <= depth);
                assert_eq!(usize::from(q.in_flight()), outstanding.len());
                assert_eq!(q.fault(), seen);
                if let Some(f) = seen {
                    assert_eq!(q.pop_used(), Some(Err(f)));
                    assert!(!q.publish());
                    assert_eq!(q.add(&one(0), 0), Err(AddError::Broken(f)));
                }
            }
            if honest {
                // An honest device leaves the queue whole and gives every token back.
                q.publish();
                held.extend(dev.take_available().into_iter().map(|c| (c, 0)));
                for (c, _) in held.drain(..) {
                    dev.complete(c.id, 0, c.descriptors);
                }
                while let Some(r) = q.pop_used() {
                    on_pop(Some(r), &mut outstanding, &mut seen);
                }
                assert_eq!(seen, None, "round {round}");
                assert!(outstanding.is_empty(), "round {round}");
                assert_eq!(q.num_free, size);
            }
            faults += usize::from(seen.is_some());
        }
        // Most hostile queues break; the test would prove little if none did.
        assert!(faults > 1000, "{faults} faults");
    }
}
