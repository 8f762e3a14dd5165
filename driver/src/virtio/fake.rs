//! In-process fake devices: the device's side of a virtqueue, played by this process on
//! memory from an identity [`DmaSpace`](crate::dma::DmaSpace) (IOVA = virtual address).
//!
//! They are the test seam below the ring: `HwQueue` and encoder unit tests check the exact
//! bytes a request puts on the wire and answer with any status, and the host-side hot-path
//! benchmark runs the whole submit/complete path with no guest. Like a device programmed
//! through the transport, a fake learns where the rings are from [`QueueAddresses`] only.
//! Available only with the `fake-device` feature (and in the crate's own tests).

use std::sync::atomic::{AtomicU16, Ordering};

use super::queue::{
    QueueAddresses, Segment, DESC_F_AVAIL, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_USED, DESC_F_WRITE,
};

/// Reads a `T` at device address `iova` (identity-mapped).
///
/// # Safety
/// `iova..iova+size_of::<T>()` must be memory the driver handed to the device (a ring or a
/// buffer of a published chain), live and aligned for `T`.
unsafe fn load<T: Copy>(iova: u64) -> T {
    // SAFETY: per the caller.
    unsafe { (iova as *const T).read_volatile() }
}

/// Writes a `T` at device address `iova` (identity-mapped).
///
/// # Safety
/// As for [`load`], and the driver must not be reading it concurrently (it is not: the
/// chain is in flight).
unsafe fn store<T: Copy>(iova: u64, value: T) {
    // SAFETY: per the caller.
    unsafe { (iova as *mut T).write_volatile(value) }
}

/// One chain the driver made available: its head id and its buffers in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeChain {
    pub head: u16,
    pub segments: Vec<Segment>,
    pub indirect: bool,
}

impl FakeChain {
    /// Copies `bytes` into the chain's device-readable/-writable space at byte `offset` of
    /// segment `index` (as a device writes a status or data).
    pub fn write(&self, index: usize, offset: usize, bytes: &[u8]) {
        let s = self.segments[index];
        assert!(
            offset + bytes.len() <= s.len as usize,
            "fake device overrun"
        );
        for (i, b) in bytes.iter().enumerate() {
            // SAFETY: inside a buffer of a chain in flight (checked above).
            unsafe { store(s.iova + (offset + i) as u64, *b) }
        }
    }

    /// Writes a virtio-blk status byte where QEMU's virtio-blk puts it: the last byte of the
    /// last buffer (a one-byte status buffer, or the end of a read's data buffer).
    pub fn write_blk_status(&self, status: u8) {
        let last = self.segments.len() - 1;
        let len = self.segments[last].len as usize;
        assert!(len > 0, "a virtio-blk chain ends in a status byte");
        self.write(last, len - 1, &[status]);
    }

    /// The bytes of segment `index` (the header a driver wrote, or data).
    pub fn read(&self, index: usize) -> Vec<u8> {
        let s = self.segments[index];
        (0..u64::from(s.len))
            // SAFETY: inside a buffer of a chain in flight.
            .map(|i| unsafe { load::<u8>(s.iova + i) })
            .collect()
    }

    /// Appends the buffer of a descriptor with `flags`; whether the chain goes on (NEXT).
    fn push(&mut self, iova: u64, len: u32, flags: u16) -> bool {
        self.segments.push(Segment {
            iova,
            len,
            device_writes: flags & DESC_F_WRITE != 0,
        });
        flags & DESC_F_NEXT != 0
    }

    /// Bytes the device may write into the chain (the used length of a full transfer).
    pub fn writable(&self) -> u32 {
        self.segments
            .iter()
            .filter(|s| s.device_writes)
            .map(|s| s.len)
            .sum()
    }
}

/// The device's side of a split virtqueue.
#[derive(Debug)]
pub struct FakeSplitDevice {
    desc: u64,
    avail: u64,
    used: u64,
    size: u16,
    last_avail: u16,
    used_idx: u16,
}

impl FakeSplitDevice {
    /// A device for the queue whose areas are at `addresses`, with `size` entries.
    pub fn new(addresses: QueueAddresses, size: u16) -> Self {
        FakeSplitDevice {
            desc: addresses.descriptors,
            avail: addresses.driver,
            used: addresses.device,
            size,
            last_avail: 0,
            used_idx: 0,
        }
    }

    fn avail_idx(&self) -> &AtomicU16 {
        // SAFETY: the avail index of a live ring, 2-aligned; shared with the driver, hence
        // atomic.
        unsafe { AtomicU16::from_ptr((self.avail + 2) as *mut u16) }
    }

    fn used_idx_atomic(&self) -> &AtomicU16 {
        // SAFETY: as above, the used index.
        unsafe { AtomicU16::from_ptr((self.used + 2) as *mut u16) }
    }

    fn descriptor(&self, table: u64, i: u16) -> (u64, u32, u16, u16) {
        let p = table + u64::from(i) * 16;
        // SAFETY: a descriptor of a published chain: inside the table the driver named.
        unsafe { (load(p), load(p + 8), load(p + 12), load(p + 14)) }
    }

    /// The next chain the driver made available, read into `out` (reused, so serving a
    /// chain allocates nothing once `out` has grown); `false` when there is none.
    pub fn next_chain(&mut self, out: &mut FakeChain) -> bool {
        let idx = self.avail_idx().load(Ordering::Acquire);
        if idx == self.last_avail {
            return false;
        }
        let slot = u64::from(self.last_avail % self.size);
        // SAFETY: an avail ring entry, inside the ring.
        let head: u16 = unsafe { load(self.avail + 4 + 2 * slot) };
        self.last_avail = self.last_avail.wrapping_add(1);
        out.head = head;
        out.segments.clear();
        let (addr, len, flags, _) = self.descriptor(self.desc, head);
        out.indirect = flags & DESC_F_INDIRECT != 0;
        let (table, mut i, count) = if out.indirect {
            (addr, 0, len / 16)
        } else {
            (self.desc, head, u32::from(self.size))
        };
        for _ in 0..count {
            let (addr, len, flags, next) = self.descriptor(table, i);
            if !out.push(addr, len, flags) {
                break;
            }
            i = next;
        }
        true
    }

    /// Writes a used element (any id and length, hostile or not) without publishing it.
    pub fn put_used(&mut self, id: u32, len: u32) {
        let slot = u64::from(self.used_idx % self.size);
        let p = self.used + 4 + 8 * slot;
        // SAFETY: a used ring element, inside the ring.
        unsafe {
            store(p, id);
            store(p + 4, len);
        }
        self.used_idx = self.used_idx.wrapping_add(1);
    }

    /// Publishes every used element put so far.
    pub fn publish_used(&mut self) {
        self.used_idx_atomic()
            .store(self.used_idx, Ordering::Release);
    }

    /// The used index the device has reached (put, whether published or not).
    pub fn used_idx(&self) -> u16 {
        self.used_idx
    }

    /// Sets the used index to any value (a hostile device).
    pub fn set_used_idx(&mut self, idx: u16) {
        self.used_idx = idx;
        self.publish_used();
    }

    /// Sets `avail_event` (EVENT_IDX): the device wants a notification once the driver's
    /// avail index passes it.
    pub fn set_avail_event(&self, value: u16) {
        let at = self.used + 4 + 8 * u64::from(self.size);
        // SAFETY: the avail_event field after the used ring.
        unsafe { store(at, value) }
    }

    /// The driver's `used_event` (EVENT_IDX).
    pub fn used_event(&self) -> u16 {
        // SAFETY: the used_event field after the avail ring.
        unsafe { load(self.avail + 4 + 2 * u64::from(self.size)) }
    }

    /// Every chain made available since the last call (for tests, which may allocate).
    pub fn take_available(&mut self) -> Vec<FakeChain> {
        let mut all = Vec::new();
        let mut chain = FakeChain::default();
        while self.next_chain(&mut chain) {
            all.push(chain.clone());
        }
        all
    }

    /// Completes chain `id` with `len` bytes written (any values, hostile or not) and
    /// publishes it.
    pub fn complete(&mut self, id: u32, len: u32) {
        self.put_used(id, len);
        self.publish_used();
    }
}

/// Answers every available chain of a virtio-blk queue with `status` (0: OK): writes the
/// status byte as the chain's last byte and reports every writable byte written.
/// Returns how many chains it completed.
pub fn serve_blk(device: &mut FakeSplitDevice, scratch: &mut FakeChain, status: u8) -> usize {
    let mut n = 0;
    while device.next_chain(scratch) {
        scratch.write_blk_status(status);
        device.put_used(u32::from(scratch.head), scratch.writable());
        n += 1;
    }
    device.publish_used();
    n
}

/// Answers every available chain of a virtio-scsi request queue with GOOD status and the
/// response OK: zeroes the 12-byte response head (the first device-writable buffer) and
/// reports every writable byte written. Returns how many chains it completed.
pub fn serve_scsi(device: &mut FakeSplitDevice, scratch: &mut FakeChain) -> usize {
    let mut n = 0;
    while device.next_chain(scratch) {
        if let Some(resp) = scratch.segments.iter().position(|s| s.device_writes) {
            scratch.write(resp, 0, &[0; 12]);
        }
        device.put_used(u32::from(scratch.head), scratch.writable());
        n += 1;
    }
    device.publish_used();
    n
}

/// The device's side of a packed virtqueue of `size` entries.
#[derive(Debug)]
pub struct FakePackedDevice {
    ring: u64,
    size: u16,
    next_avail: u16,
    avail_wrap: bool,
    next_used: u16,
    used_wrap: bool,
    /// Ring descriptors each taken chain held, by the id it was taken under (to advance the
    /// used position when it completes, as a device that completes in order does).
    held: Vec<(u16, u16)>,
}

impl FakePackedDevice {
    pub fn new(addresses: QueueAddresses, size: u16) -> Self {
        FakePackedDevice {
            ring: addresses.descriptors,
            size,
            next_avail: 0,
            avail_wrap: true,
            next_used: 0,
            used_wrap: true,
            held: Vec::new(),
        }
    }

    fn flags(&self, slot: u16) -> &AtomicU16 {
        // SAFETY: the flags of a descriptor inside the ring, 2-aligned; shared with the
        // driver, hence atomic.
        unsafe { AtomicU16::from_ptr((self.ring + u64::from(slot) * 16 + 14) as *mut u16) }
    }

    fn advance(pos: &mut u16, wrap: &mut bool, size: u16) {
        *pos += 1;
        if *pos == size {
            *pos = 0;
            *wrap = !*wrap;
        }
    }

    /// The next chain the driver made available (into `out`); `false` when there is none.
    pub fn next_chain(&mut self, out: &mut FakeChain) -> bool {
        let avail = |flags: u16, wrap: bool| {
            (flags & DESC_F_AVAIL != 0) == wrap && (flags & DESC_F_USED != 0) != wrap
        };
        if !avail(
            self.flags(self.next_avail).load(Ordering::Acquire),
            self.avail_wrap,
        ) {
            return false;
        }
        out.segments.clear();
        out.indirect = false;
        let mut descriptors = 0u16;
        loop {
            let p = self.ring + u64::from(self.next_avail) * 16;
            // SAFETY: a descriptor inside the ring, made available by the driver.
            let (addr, len, id, flags): (u64, u32, u16, u16) =
                unsafe { (load(p), load(p + 8), load(p + 12), load(p + 14)) };
            out.head = id;
            descriptors += 1;
            Self::advance(&mut self.next_avail, &mut self.avail_wrap, self.size);
            let more = if flags & DESC_F_INDIRECT != 0 {
                out.indirect = true;
                for i in 0..u64::from(len / 16) {
                    let q = addr + i * 16;
                    // SAFETY: a descriptor of the chain's indirect table.
                    let (a, l, f): (u64, u32, u16) =
                        unsafe { (load(q), load(q + 8), load(q + 14)) };
                    // A packed ring's table is the whole chain: its entries need no NEXT.
                    out.push(a, l, f);
                }
                flags & DESC_F_NEXT != 0
            } else {
                out.push(addr, len, flags)
            };
            // A chain never holds more descriptors than the ring has (whatever flags a
            // hostile test wrote into it).
            if !more || descriptors == self.size {
                break;
            }
        }
        self.held.push((out.head, descriptors));
        true
    }

    /// Completes the oldest chain taken (in order) with `len` bytes written.
    pub fn complete_next(&mut self, len: u32) {
        if !self.held.is_empty() {
            let (id, descriptors) = self.held.remove(0);
            self.put_used(id, len, None, descriptors);
        }
    }

    /// Completes the chain taken under `id` (in any order) with `len` bytes written; `false`
    /// when no chain taken is held under `id`.
    pub fn complete(&mut self, id: u16, len: u32) -> bool {
        let Some(at) = self.held.iter().position(|&(held, _)| held == id) else {
            return false;
        };
        let (_, descriptors) = self.held.remove(at);
        self.put_used(id, len, None, descriptors);
        true
    }

    /// Chains taken and not yet completed.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Writes a used descriptor at the device's next-used position with any id and length,
    /// hostile or not, and `flags` (`None`: the right AVAIL/USED bits for the pass), then
    /// moves the position on by `skip` descriptors (a chain holds as many as it took; a
    /// hostile device may skip more or fewer).
    pub fn put_used(&mut self, id: u16, len: u32, flags: Option<u16>, skip: u16) {
        let bits = flags.unwrap_or(if self.used_wrap {
            DESC_F_AVAIL | DESC_F_USED
        } else {
            0
        });
        self.write_at(self.next_used, id, len, bits);
        for _ in 0..skip {
            Self::advance(&mut self.next_used, &mut self.used_wrap, self.size);
        }
    }

    /// Overwrites the id, length and flags of ring descriptor `slot` (`% size`), anywhere in
    /// the ring: a hostile device.
    pub fn write_at(&self, slot: u16, id: u16, len: u32, flags: u16) {
        let slot = slot % self.size;
        let p = self.ring + u64::from(slot) * 16;
        // SAFETY: a descriptor inside the ring.
        unsafe {
            store(p + 8, len);
            store(p + 12, id);
        }
        self.flags(slot).store(flags, Ordering::Release);
    }
}

/// [`serve_blk`] for a packed ring: every available chain answered with `status`, in order.
pub fn serve_blk_packed(
    device: &mut FakePackedDevice,
    scratch: &mut FakeChain,
    status: u8,
) -> usize {
    let mut n = 0;
    while device.next_chain(scratch) {
        scratch.write_blk_status(status);
        device.complete_next(scratch.writable());
        n += 1;
    }
    n
}

/// [`serve_scsi`] for a packed ring.
pub fn serve_scsi_packed(device: &mut FakePackedDevice, scratch: &mut FakeChain) -> usize {
    let mut n = 0;
    while device.next_chain(scratch) {
        if let Some(resp) = scratch.segments.iter().position(|s| s.device_writes) {
            scratch.write(resp, 0, &[0; 12]);
        }
        device.complete_next(scratch.writable());
        n += 1;
    }
    n
}

/// Helpers for the ring formats' own unit tests.
#[cfg(test)]
pub(crate) mod ring_tests {
    use crate::dma::DmaSpace;
    use crate::virtio::layout::RingLayout;
    use crate::virtio::queue::{QueueFault, Segment, UsedChain, Virtqueue};
    use crate::virtio::ring_core::RingCore;

    /// A ring core in identity-mapped memory (IOVA = address), where a fake device can
    /// follow the driver's IOVAs.
    pub fn identity_core(layout: RingLayout) -> RingCore {
        let memory = DmaSpace::identity().alloc(layout.total).unwrap();
        RingCore::new(Box::new(memory), layout).unwrap()
    }

    /// A virtio-blk-like chain (header, data, status) with addresses of its own per `i`.
    pub fn blk_chain(i: u64) -> [Segment; 3] {
        [
            Segment::readable(0x1000 + i * 16, 16),
            Segment::writable(0x10_0000 + i * 4096, 4096),
            Segment::writable(0x2000 + i, 1),
        ]
    }

    /// Everything `pop_used` has now, in order.
    pub fn drain(q: &mut impl Virtqueue) -> Vec<Result<UsedChain, QueueFault>> {
        std::iter::from_fn(|| q.pop_used()).collect()
    }

    /// The tokens of everything completed now; a fault fails the test.
    pub fn tokens(q: &mut impl Virtqueue) -> Vec<u64> {
        drain(q).into_iter().map(|r| r.unwrap().token).collect()
    }

    /// What `pop_used` gives for a good completion.
    pub fn used(token: u64, written: u32) -> Option<Result<UsedChain, QueueFault>> {
        Some(Ok(UsedChain { token, written }))
    }

    /// A fixed-seed xorshift64 generator for the hostile-device property tests.
    pub struct XorShift(pub u64);

    impl XorShift {
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// Uniform-ish in `0..n` (`0` when `n` is 0).
        pub fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }

        /// True one time in `n`.
        pub fn one_in(&mut self, n: u64) -> bool {
            self.below(n) == 0
        }
    }
}
