//! Hostile-device property tests of [`HwQueue`]: thousands of fixed-seed random rounds of
//! submissions, kicks, polls and control-path requests against a fake device of either ring
//! format that answers honestly or writes whatever it likes into the used ring (ids out of
//! range or never in flight, lengths beyond the chain, used-index jumps, wrong wrap bits,
//! descriptors skipped), with the virtio-blk and the virtio-scsi encoders.
//!
//! Properties, checked after every step:
//! - no panic;
//! - a request's context comes back at most once, and only one that was submitted (a
//!   control-path request given up on never comes back through `poll`);
//! - nothing is lost: every request is in flight or came back;
//! - a fault is surfaced: once one request comes back with [`IoError::QueueBroken`], every
//!   request in flight comes back with the same fault, later submissions are refused with it,
//!   and nothing is in flight any more;
//! - with an honest device the queue never breaks and every request completes exactly once
//!   (through retries of UNIT ATTENTION and BUSY), leaving no tag and no LUN budget taken.
//!
//! The file is named `tests.rs` so that the layering check lets it build real encoders, as
//! `hwqueue`'s own tests do.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use super::{Data, Done, HwQueue, IoError, Limits, Request, Unit};
use crate::blk::encoder::{BlkEncoder, BLK_SLOT_SIZE};
use crate::device::{AnyEncoder, AnyQueue};
use crate::dma::{status_room_stride, DmaBuf, DmaSpace};
use crate::scsi::encoder::{ScsiEncoder, SCSI_SLOT_SIZE};
use crate::scsi::units::{UnitInfo, UnitTable};
use crate::virtio::fake::ring_tests::XorShift;
use crate::virtio::fake::{FakeChain, FakePackedDevice, FakeSplitDevice};
use crate::virtio::pci::QueueNotifier;
use crate::virtio::plan::{new_ring, RingShape};
use crate::virtio::queue::{QueueFault, Virtqueue, DESC_F_AVAIL, DESC_F_USED};

/// Rounds per (ring format, device kind); a quarter of them honest.
const ROUNDS: u32 = 2000;
/// Steps per round.
const STEPS: u32 = 64;
const BUF: usize = 4096;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Blk,
    Scsi,
}

/// The device side of either ring format.
enum Device {
    Split(FakeSplitDevice),
    Packed(FakePackedDevice),
}

impl Device {
    fn take(&mut self, out: &mut FakeChain) -> bool {
        match self {
            Device::Split(d) => d.next_chain(out),
            Device::Packed(d) => d.next_chain(out),
        }
    }

    /// Reports chain `head` done with `len` bytes written, in any order.
    fn complete(&mut self, head: u16, len: u32) {
        match self {
            Device::Split(d) => d.complete(u32::from(head), len),
            Device::Packed(d) => {
                assert!(d.complete(head, len), "the fake holds chain {head}");
            }
        }
    }

    /// Writes something no correct device writes (or, for the packed ring, something that
    /// is not a used descriptor yet); returns the id it named, if any.
    fn garbage(&mut self, rng: &mut XorShift, size: u16) -> Option<u16> {
        let id = rng.below(u64::from(size) * 2 + 1) as u16;
        let len = match rng.below(3) {
            0 => rng.next() as u32,
            _ => rng.below(2 * BUF as u64) as u32,
        };
        match self {
            Device::Split(d) => match rng.below(4) {
                0 => d.set_used_idx(rng.next() as u16),
                1 => {
                    // A small jump: stale entries of an earlier lap, or one too many.
                    let now = d.used_idx().wrapping_add(1 + rng.below(3) as u16);
                    d.set_used_idx(now);
                }
                _ => {
                    d.complete(u32::from(id), len);
                    return Some(id);
                }
            },
            Device::Packed(d) => {
                // Used bits of this pass or the other (AVAIL = USED), with any other bits but
                // NEXT, WRITE and INDIRECT: never a descriptor the fake itself would take
                // as made available, whose buffers it would then write.
                let both = if rng.one_in(2) {
                    DESC_F_AVAIL | DESC_F_USED
                } else {
                    0
                };
                let others = rng.next() as u16 & !(DESC_F_AVAIL | DESC_F_USED | 0x7);
                let flags = match rng.below(3) {
                    0 => None,
                    1 => Some(both),
                    _ => Some(both | others),
                };
                if rng.one_in(3) {
                    d.write_at(rng.next() as u16, id, len, flags.unwrap_or(0));
                } else {
                    d.put_used(id, len, flags, rng.below(u64::from(size) + 1) as u16);
                }
                return Some(id);
            }
        }
        None
    }
}

/// What an honest device answers a chain with.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Good,
    /// virtio-blk: a status byte (IOERR, UNSUPP or none at all).
    BlkStatus(u8),
    /// virtio-scsi: CHECK CONDITION, UNIT ATTENTION (retried).
    UnitAttention,
    /// virtio-scsi: a SCSI status (BUSY, TASK SET FULL: retried).
    ScsiStatus(u8),
    /// virtio-scsi: a response other than OK.
    Response(u8),
    /// Random bytes where the status goes.
    Noise(u64),
}

fn answer(rng: &mut XorShift, kind: Kind) -> Answer {
    if rng.below(3) != 0 {
        return Answer::Good;
    }
    match (kind, rng.below(4)) {
        (Kind::Blk, 0 | 1) => Answer::BlkStatus(1 + rng.below(2) as u8),
        (Kind::Scsi, 0) => Answer::UnitAttention,
        (Kind::Scsi, 1) => Answer::ScsiStatus([0x08, 0x28][rng.below(2) as usize]),
        (Kind::Scsi, 2) => Answer::Response(rng.below(13) as u8),
        _ => Answer::Noise(rng.next()),
    }
}

/// Writes `answer` into `chain` as its device would, where the chain has room for it.
fn write_answer(kind: Kind, chain: &FakeChain, answer: Answer, pool: &Range<u64>) {
    match kind {
        Kind::Blk => {
            let Some(last) = chain.segments.len().checked_sub(1) else {
                return;
            };
            let status = match answer {
                Answer::BlkStatus(s) => s,
                Answer::Noise(n) => n as u8,
                _ => 0,
            };
            // The status goes in the chain's last byte: a one-byte status buffer, or the
            // end of a read's data buffer with status room. A length the hostile device
            // itself scribbled over a descriptor could reach past its buffer, so only a
            // segment inside the buffer pool is written at its end.
            let seg = chain.segments[last];
            let end = seg.iova + u64::from(seg.len);
            if seg.len == 1 || (seg.len > 1 && pool.contains(&seg.iova) && end <= pool.end) {
                chain.write_blk_status(status);
            }
        }
        Kind::Scsi => {
            let Some(resp) = chain.segments.iter().position(|s| s.device_writes) else {
                return;
            };
            let mut head = [0u8; 12 + 18];
            match answer {
                Answer::Good | Answer::BlkStatus(_) => {}
                Answer::UnitAttention => {
                    head[0] = 18;
                    head[10] = 2;
                    head[12] = 0x70;
                    head[14] = 6;
                    head[19] = 10;
                    head[24] = 0x29;
                }
                Answer::ScsiStatus(s) => head[10] = s,
                Answer::Response(r) => head[11] = r,
                Answer::Noise(n) => head[..8].copy_from_slice(&n.to_le_bytes()),
            }
            let room = (chain.segments[resp].len as usize).min(head.len());
            chain.write(resp, 0, &head[..room]);
        }
    }
}

/// One round's queue, device and bookkeeping.
struct Round {
    kind: Kind,
    q: AnyQueue<u64>,
    dev: Device,
    unit: Unit,
    size: u16,
    depth: u16,
    /// Buffers not in a request. `_keeper` keeps their region mapped whatever the queue
    /// drops, since a hostile device may name any chain's buffers.
    pool: Vec<DmaBuf>,
    /// The IOVAs of the pool's region.
    pool_range: Range<u64>,
    _keeper: DmaBuf,
    /// Chains the device took and has not answered.
    held: Vec<FakeChain>,
    scratch: FakeChain,
    next_ctx: u64,
    /// Contexts submitted and not handed back.
    outstanding: BTreeSet<u64>,
    submitted: u64,
    handed_back: u64,
    /// Control-path requests given up on (their completions are dropped, never handed out).
    orphans: u16,
    fault: Option<QueueFault>,
    /// A request came back failed by the fault.
    failed_by_fault: bool,
}

impl Round {
    fn new(kind: Kind, packed: bool, honest: bool, rng: &mut XorShift) -> Self {
        let dma = DmaSpace::identity();
        let size = if packed {
            1 + rng.below(24) as u16
        } else {
            1 << (1 + rng.below(5))
        };
        let depth = 1 + rng.below(u64::from(size)) as u16;
        // A hostile packed device may overwrite the length of a descriptor the driver then
        // publishes; the fake would read an indirect table that long. So indirect tables
        // only against an honest packed device (the ring's own tests cover the rest).
        let indirect_max = if rng.one_in(2) || (packed && !honest) {
            0
        } else {
            8
        };
        let shape = RingShape {
            packed,
            size,
            indirect_max,
            event_idx: rng.one_in(2),
            depth,
            direct_chain: 4,
        };
        let ring = new_ring(&dma, 0, shape).unwrap();
        let dev = if packed {
            Device::Packed(FakePackedDevice::new(ring.addresses(), size))
        } else {
            Device::Split(FakeSplitDevice::new(ring.addresses(), size))
        };
        let limits = Limits {
            logical_block_size: 512,
            physical_block_size: 4096,
            max_transfer_bytes: 1 << 20,
            max_segments: 4,
            max_segment_size: 1 << 20,
            read_only: false,
            flush: true,
            discard: None,
            write_zeroes: None,
        };
        let notifier = QueueNotifier::detached(0);
        let (q, unit) = match kind {
            Kind::Blk => {
                let encoder = BlkEncoder::new(limits, Arc::new(AtomicU64::new(1 << 21)));
                let slots = dma.alloc(usize::from(depth) * BLK_SLOT_SIZE).unwrap();
                let q = HwQueue::new(0, ring, notifier, depth, slots, AnyEncoder::Blk(encoder));
                (q, Unit::ONLY)
            }
            Kind::Scsi => {
                let table = Arc::new(UnitTable::default());
                let unit = table.add(UnitInfo {
                    lun_field: [1, 0, 0x40, 0, 0, 0, 0, 0],
                    limits,
                    capacity: 1 << 30,
                    use_16: false,
                    fua: false,
                    budget: depth,
                    removed: false,
                });
                let zeroes = dma.alloc(BUF).unwrap().into_buf();
                let encoder = ScsiEncoder::new(table, 0, zeroes, 4);
                let slots = dma.alloc(usize::from(depth) * SCSI_SLOT_SIZE).unwrap();
                // As the host opens it: virtio-scsi lengths are clamped, not trusted.
                let ring = if rng.one_in(4) {
                    ring
                } else {
                    ring.clamp_used_len()
                };
                let q = HwQueue::new(0, ring, notifier, depth, slots, AnyEncoder::Scsi(encoder));
                (q, Unit::new(unit))
            }
        };
        // Half the rounds use buffers with status room: virtio-blk reads then take their
        // status byte after the data, in a two-descriptor chain.
        let region = dma
            .alloc(status_room_stride(BUF) * (2 * usize::from(depth) + 3))
            .unwrap();
        let pool_range = region.iova()..region.iova() + region.len() as u64;
        let mut pool = if rng.one_in(2) {
            region.into_bufs_with_status_room(BUF)
        } else {
            region.into_bufs(BUF)
        };
        let keeper = pool.pop().unwrap();
        Round {
            kind,
            q: q.with_context(),
            dev,
            unit,
            size,
            depth,
            pool,
            pool_range,
            _keeper: keeper,
            held: Vec::new(),
            scratch: FakeChain::default(),
            next_ctx: 1,
            outstanding: BTreeSet::new(),
            submitted: 0,
            handed_back: 0,
            orphans: 0,
            fault: None,
            failed_by_fault: false,
        }
    }

    /// A fault now seen: the same as any seen before.
    fn saw_fault(&mut self, f: QueueFault) {
        if let Some(old) = self.fault {
            assert_eq!(old, f, "the fault changed");
        }
        self.fault = Some(f);
    }

    /// A submission refused with `QueueFull` or `UnitBusy`: only before a fault. After one,
    /// every refusal is `QueueBroken` (a caller that polls and retries on a full queue would
    /// otherwise spin for ever): the packed ring checks its fault before the tag's chain, and
    /// `HwQueue::fail_all` gives back the LUN budget of the requests it fails.
    fn check_refusal_after_fault(&self) {
        assert!(
            self.fault.is_none(),
            "QueueFull or UnitBusy after {:?}",
            self.fault
        );
    }

    /// Buffers back in the pool, whole again (a misaligned request had one cut short).
    fn give_back(&mut self, data: Data) {
        let bufs = match data {
            Data::None => Vec::new(),
            Data::One(b) => vec![b],
            Data::Many(v) => v,
        };
        for mut b in bufs {
            b.set_len(BUF);
            self.pool.push(b);
        }
    }

    /// A random request (reads, writes of one or more buffers, flushes; some refused).
    fn request(&mut self, rng: &mut XorShift) -> Request {
        let offset = 512 * rng.below(64);
        let bufs = (1 + rng.below(3) as usize).min(self.pool.len());
        if bufs == 0 || rng.one_in(6) {
            return Request::flush();
        }
        let mut data: Vec<DmaBuf> = self.pool.drain(self.pool.len() - bufs..).collect();
        if rng.one_in(8) {
            // Misaligned: refused before the ring.
            data[0].truncate(100);
        }
        let write = rng.one_in(2);
        match (data.len(), write) {
            (1, false) => Request::read(offset, data.pop().unwrap()),
            (1, true) => Request::write(offset, data.pop().unwrap()),
            (_, false) => Request::readv(offset, data),
            (_, true) => Request::writev(offset, data),
        }
    }

    fn submit(&mut self, rng: &mut XorShift) {
        let request = self.request(rng);
        let ctx = self.next_ctx;
        self.next_ctx += 1;
        match self.q.submit(self.unit, request, ctx) {
            Ok(_) => {
                assert!(self.outstanding.insert(ctx));
                self.submitted += 1;
            }
            Err(rejected) => {
                assert_eq!(rejected.ctx, ctx, "the rejection hands the context back");
                self.give_back(rejected.request.data);
                match rejected.error {
                    // Requests failed by the fault may still wait for a poll.
                    IoError::QueueBroken(f) => self.saw_fault(f),
                    IoError::QueueFull(_) | IoError::UnitBusy { .. } => {
                        self.check_refusal_after_fault()
                    }
                    IoError::Misaligned { .. } | IoError::TooManySegments { .. } => {}
                    e => assert!(self.fault.is_none(), "{e} after {:?}", self.fault),
                }
            }
        }
    }

    /// Polls (all, or up to a few) and checks what comes back.
    fn poll(&mut self, rng: &mut XorShift) -> usize {
        let max = if rng.one_in(3) {
            1 + rng.below(3) as usize
        } else {
            usize::MAX
        };
        let mut back: Vec<(u64, Result<u64, IoError>, Data)> = Vec::new();
        let n = self.q.poll_up_to(max, |d: Done<'_, u64>| {
            back.push((*d.ctx, d.result, d.data));
        });
        assert_eq!(n, back.len());
        assert!(n <= max);

        for (ctx, result, data) in back {
            assert_ne!(ctx, 0, "a request given up on came back through poll");
            assert!(
                self.outstanding.remove(&ctx),
                "context {ctx} came back twice or was never submitted"
            );
            self.handed_back += 1;
            match result {
                Err(IoError::QueueBroken(f)) => {
                    self.saw_fault(f);
                    self.failed_by_fault = true;
                    assert!(matches!(data, Data::None), "the device may still write it");
                }
                // Results parked by `run_one` before the fault may come out after it was
                // seen elsewhere, but never after a request failed by it.
                other => assert!(
                    !self.failed_by_fault,
                    "{other:?} handed out after requests failed with {:?}",
                    self.fault
                ),
            }
            self.give_back(data);
        }
        n
    }

    /// The device takes what was made available.
    fn take_all(&mut self) {
        while self.dev.take(&mut self.scratch) {
            self.held.push(self.scratch.clone());
        }
    }

    /// The device answers one chain it holds, honestly; `excess` claims more bytes than it has.
    fn answer_one(&mut self, rng: &mut XorShift, excess: bool) {
        if self.held.is_empty() {
            return;
        }
        let chain = self
            .held
            .swap_remove(rng.below(self.held.len() as u64) as usize);
        let a = answer(rng, self.kind);
        write_answer(self.kind, &chain, a, &self.pool_range);
        let writable = chain.writable();
        let len = if excess {
            writable.saturating_add(1 + rng.below(4096) as u32)
        } else if rng.one_in(4) {
            rng.below(u64::from(writable) + 1) as u32
        } else {
            writable
        };
        self.dev.complete(chain.head, len);
    }

    /// A control-path request that is given up on at once (a zero timeout): it stays in
    /// flight as an orphan whose completion is dropped.
    fn run_one(&mut self) {
        let Some(buf) = self.pool.pop() else {
            return;
        };
        self.q.set_control_timeout(Duration::ZERO);
        let (result, data) = self.q.run_one(self.unit, Request::read(0, buf));
        match &result {
            Err(IoError::TimedOut { .. }) => {
                assert!(matches!(data, Data::None));
                self.orphans += 1;
            }
            Err(IoError::QueueBroken(f)) => self.saw_fault(*f),
            _ => {}
        }
        self.give_back(data);
    }

    /// Nothing is lost: what is in flight is what was submitted and not handed back (plus
    /// orphans the device has not answered yet).
    fn check_accounting(&self) {
        let in_flight = self.q.in_flight();
        let outstanding = self.outstanding.len() as u16;
        assert!(
            in_flight >= outstanding && in_flight <= outstanding + self.orphans,
            "in flight {in_flight}, outstanding {outstanding}, orphans {}",
            self.orphans
        );
        assert!(in_flight <= self.depth);
        assert_eq!(self.submitted, self.handed_back + u64::from(outstanding));
    }

    /// Polls until nothing more comes back; after a fault, nothing may stay in flight.
    fn settle(&mut self, rng: &mut XorShift) {
        for _ in 0..=self.depth {
            if self.poll(rng) == 0 && self.poll(rng) == 0 {
                break;
            }
        }
        if self.fault.is_some() {
            assert!(self.outstanding.is_empty(), "lost after the fault");
            assert_eq!(self.q.in_flight(), 0, "tags kept after the fault");
        }
        self.check_accounting();
    }

    /// A submission after the round: refused with the fault if the queue is broken, which
    /// must leave nothing in flight.
    fn probe(&mut self) {
        let ctx = self.next_ctx;
        match self.q.submit(self.unit, Request::flush(), ctx) {
            Ok(_) => {
                assert!(self.fault.is_none(), "accepted after {:?}", self.fault);
                self.outstanding.insert(ctx);
                self.submitted += 1;
            }
            Err(r) => match r.error {
                IoError::QueueBroken(f) => {
                    self.saw_fault(f);
                    assert!(self.outstanding.is_empty());
                    assert_eq!(self.q.in_flight(), 0);
                }
                // A ring too small for a flush's chain.
                IoError::TooManySegments { .. } => assert!(self.fault.is_none()),
                IoError::QueueFull(_) | IoError::UnitBusy { .. } => {
                    self.check_refusal_after_fault()
                }
                e => panic!("the probe was refused: {e}"),
            },
        }
    }

    /// An honest device answers everything, including retries, until nothing is in flight.
    fn drain(&mut self, rng: &mut XorShift) {
        for _ in 0..64 {
            self.q.kick();
            self.take_all();
            while let Some(chain) = self.held.pop() {
                write_answer(self.kind, &chain, Answer::Good, &self.pool_range);
                self.dev.complete(chain.head, chain.writable());
            }
            self.poll(rng);
            if self.outstanding.is_empty() && self.q.in_flight() == 0 {
                return;
            }
        }
        panic!(
            "an honest device left {:?} in flight ({} tags)",
            self.outstanding,
            self.q.in_flight()
        );
    }
}

/// Runs the rounds for one ring format and device kind; returns (faults, completions).
fn hostile_rounds(kind: Kind, packed: bool, seed: u64) -> (u32, u64) {
    let mut rng = XorShift(seed);
    let mut faults = 0;
    let mut completions = 0;
    for round in 0..ROUNDS {
        let honest = round.is_multiple_of(4);
        let mut r = Round::new(kind, packed, honest, &mut rng);
        for _ in 0..STEPS {
            match rng.below(if honest { 8 } else { 9 }) {
                0 | 1 => {
                    for _ in 0..1 + rng.below(3) {
                        r.submit(&mut rng);
                    }
                }
                2 => r.q.kick(),
                3 => {
                    r.q.kick_up_to(rng.below(3) as u16);
                }
                4 => r.take_all(),
                5 | 6 => {
                    for _ in 0..1 + rng.below(3) {
                        r.answer_one(&mut rng, false);
                    }
                }
                7 => {
                    if rng.one_in(4) {
                        r.run_one();
                    }
                }
                // Hostile: now and then, so that most rounds get work done first.
                _ if !rng.one_in(4) => r.answer_one(&mut rng, false),
                _ if rng.one_in(3) => r.answer_one(&mut rng, true),
                _ => {
                    if let Some(id) = r.dev.garbage(&mut rng, r.size) {
                        // The device said it finished that chain: it holds it no more.
                        r.held.retain(|c| c.head != id);
                    }
                }
            }
            if rng.one_in(2) {
                r.poll(&mut rng);
            }
            r.check_accounting();
        }
        r.settle(&mut rng);
        r.probe();
        if honest {
            assert_eq!(
                r.fault, None,
                "round {round}: an honest device broke the queue"
            );
            r.drain(&mut rng);
            assert_eq!(r.submitted, r.handed_back, "round {round}");
            // No LUN budget is left taken: requests are accepted until the tags or the
            // ring run out, never refused for the LUN's budget.
            for i in 0..r.depth {
                if let Err(e) =
                    r.q.submit(r.unit, Request::flush(), 1_000_000 + u64::from(i))
                {
                    assert!(
                        !matches!(e.error, IoError::UnitBusy { .. }),
                        "round {round}: the LUN budget leaked ({} of {} taken)",
                        i,
                        r.depth
                    );
                    break;
                }
            }
        }
        faults += u32::from(r.fault.is_some());
        completions += r.handed_back;
    }
    (faults, completions)
}

fn check(kind: Kind, packed: bool, seed: u64) {
    let (faults, completions) = hostile_rounds(kind, packed, seed);
    // The test proves little unless many hostile rounds broke their queue and many requests
    // came back.
    assert!(
        faults > ROUNDS / 5,
        "only {faults} of {ROUNDS} rounds faulted"
    );
    assert!(
        completions > u64::from(ROUNDS) * 3,
        "only {completions} completions"
    );
}

#[test]
fn a_hostile_split_device_never_loses_or_repeats_a_blk_request() {
    check(Kind::Blk, false, 0x5eed_b1c0_5b17_0001);
}

#[test]
fn a_hostile_split_device_never_loses_or_repeats_a_scsi_request() {
    check(Kind::Scsi, false, 0x5eed_5c51_5b17_0002);
}

#[test]
fn a_hostile_packed_device_never_loses_or_repeats_a_blk_request() {
    check(Kind::Blk, true, 0x5eed_b1c0_9ac4_0003);
}

#[test]
fn a_hostile_packed_device_never_loses_or_repeats_a_scsi_request() {
    check(Kind::Scsi, true, 0x5eed_5c51_9ac4_0004);
}
