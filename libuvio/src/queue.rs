//! One hardware queue as C drives it: requests named by address and cookie, and completions
//! handed out in batches with a minimum, a maximum and a timeout (`uvio_poll`).
//!
//! The queue is its host's: each request names the disk it is for ([`Disk`]), so the LUNs
//! of a virtio-scsi host share it, and a poll hands out the completions of all of them.

use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_void, CString};
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use driver::block::{Data, Done, IoError, Op, Request, Unit};
use driver::device::AnyQueue;
use driver::dma::DmaBuf;

use crate::error::{c_message, io_errno, CapiError};
use crate::memory::{RegionView, Regions};

/// Most iovec entries one vectored request takes (Linux's IOV_MAX).
pub const MAX_IOVCNT: usize = 1024;

/// A finished request, as `uvio_poll` hands it to C.
#[repr(C)]
#[derive(Debug)]
#[allow(non_camel_case_types)]
pub struct uvio_completion {
    pub user_data: *mut c_void,
    pub error_msg: *const c_char,
    pub ret: c_int,
    pub reserved: u32,
}

/// What each request keeps with it: the caller's cookie, and its offset and disk (the
/// index in [`QueueState::names`]) for messages.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cookie {
    user_data: usize,
    offset: u64,
    disk: u32,
}

/// The disk a request is for: its unit on the host, and its name for messages.
#[derive(Debug, Clone, Copy)]
pub struct Disk<'a> {
    pub unit: Unit,
    pub name: &'a str,
}

/// A completion reaped from the ring and not yet handed to C.
#[derive(Debug)]
struct Finished {
    user_data: usize,
    /// 0, or the negative errno and the message.
    failure: Option<(c_int, CString)>,
}

/// The queue and what C's use of it needs besides.
#[derive(Debug)]
pub struct QueueState {
    queue: AnyQueue<Cookie>,
    /// The name of each disk that submitted on this queue, by unit index, for messages.
    names: Vec<String>,
    regions: RegionView,
    /// Requests submitted and not yet reaped.
    outstanding: usize,
    /// Reaped and not yet handed out (a poll that timed out, or more than its maximum).
    finished: VecDeque<Finished>,
    /// Messages of the completions the last poll handed out, alive until the next poll.
    handed_messages: Vec<CString>,
    /// The buffer lists of finished vectored requests, emptied, for the next ones: a
    /// vectored request allocates only while the queue is young (at most `depth` lists are
    /// ever in use at once, and the pool has room for all of them).
    spare_lists: Vec<Vec<DmaBuf>>,
}

impl QueueState {
    pub fn new(queue: AnyQueue<Cookie>) -> Self {
        let depth = usize::from(queue.depth());
        QueueState {
            queue,
            names: Vec::new(),
            regions: RegionView::default(),
            outstanding: 0,
            finished: VecDeque::with_capacity(depth),
            handed_messages: Vec::new(),
            spare_lists: Vec::with_capacity(depth),
        }
    }

    pub fn depth(&self) -> u16 {
        self.queue.depth()
    }

    pub fn packed(&self) -> bool {
        self.queue.ring_format() == "packed"
    }

    fn buf(
        &mut self,
        regions: &Regions,
        op: Op,
        addr: usize,
        len: usize,
    ) -> Result<DmaBuf, CapiError> {
        if len == 0 {
            return Err(CapiError::BadValue {
                what: "the buffer length",
                value: 0,
                expected: "a positive multiple of the logical block size",
            });
        }
        self.regions.buf(regions, op.name(), addr, len)
    }

    /// A read or write of one buffer.
    pub fn transfer(
        &mut self,
        disk: Disk<'_>,
        regions: &Regions,
        op: Op,
        offset: u64,
        (addr, len): (usize, usize),
        user_data: usize,
    ) -> Result<i32, CapiError> {
        let buf = self.buf(regions, op, addr, len)?;
        let request = match op {
            Op::Write => Request::write(offset, buf),
            _ => Request::read(offset, buf),
        };
        self.submit(disk, request, user_data)
    }

    /// A read or write of several buffers, given as `(address, length)` pairs.
    pub fn transfer_vectored(
        &mut self,
        disk: Disk<'_>,
        regions: &Regions,
        op: Op,
        offset: u64,
        pieces: impl ExactSizeIterator<Item = (usize, usize)>,
        user_data: usize,
    ) -> Result<i32, CapiError> {
        let count = pieces.len();
        if count == 0 || count > MAX_IOVCNT {
            return Err(CapiError::BadValue {
                what: "iovcnt",
                value: count as i64,
                expected: "1 to 1024 (IOV_MAX)",
            });
        }
        let mut bufs = self
            .spare_lists
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(count));
        for (addr, len) in pieces {
            match self.buf(regions, op, addr, len) {
                Ok(buf) => bufs.push(buf),
                Err(e) => {
                    self.recycle(Data::Many(bufs));
                    return Err(e);
                }
            }
        }
        let request = match op {
            Op::Write => Request::writev(offset, bufs),
            _ => Request::readv(offset, bufs),
        };
        self.submit(disk, request, user_data)
    }

    /// A request without data: flush, discard, write-zeroes.
    pub fn ranged(
        &mut self,
        disk: Disk<'_>,
        op: Op,
        offset: u64,
        len: u64,
        user_data: usize,
    ) -> Result<i32, CapiError> {
        let request = match op {
            Op::Flush => Request::flush(),
            Op::Discard => Request::discard(offset, len),
            _ => Request::write_zeroes(offset, len),
        };
        self.submit(disk, request, user_data)
    }

    fn submit(
        &mut self,
        disk: Disk<'_>,
        request: Request,
        user_data: usize,
    ) -> Result<i32, CapiError> {
        let index = disk.unit.index();
        // Units are small indexes into the host's LUN table; the name is kept once per unit.
        let at = index as usize;
        if self.names.len() <= at {
            self.names.resize(at + 1, String::new());
        }
        if self.names[at].is_empty() {
            self.names[at] = disk.name.to_string();
        }
        let cookie = Cookie {
            user_data,
            offset: request.offset,
            disk: index,
        };
        match self.queue.submit(disk.unit, request, cookie) {
            Ok(_) => {
                self.outstanding += 1;
                Ok(0)
            }
            Err(rejected) => {
                self.recycle(rejected.request.data);
                Err(CapiError::Io {
                    device: disk.name.to_string(),
                    source: rejected.error,
                })
            }
        }
    }

    /// Keeps a vectored request's buffer list, emptied, for the next one.
    fn recycle(&mut self, data: Data) {
        recycle_list(&mut self.spare_lists, data);
    }

    /// Hands the device what was submitted, then fills `out` (at most its length) with
    /// finished requests, waiting for `min` of them up to `timeout`. Returns how many.
    pub fn poll(
        &mut self,
        out: &mut [MaybeUninit<uvio_completion>],
        min: usize,
        timeout: Option<Duration>,
    ) -> Result<usize, CapiError> {
        self.handed_messages.clear();
        let max = out.len();
        let available = self.finished.len() + self.outstanding;
        if min > available {
            return Err(CapiError::WaitingForNothing {
                wanted: min,
                available,
            });
        }
        self.queue.kick();
        // The clock is read only once a wait begins, and then every 64 spins: in a guest whose
        // clocksource traps (the HPET), one read costs more than a whole request, and a poll
        // that has what it wants (or waits for nothing, or for no time) never needs it.
        let mut deadline: Option<Instant> = None;
        let mut spins: u32 = 0;
        loop {
            self.reap(max);
            if self.finished.len() >= min {
                break;
            }
            if let Some(timeout) = timeout {
                let expired = timeout.is_zero()
                    || match deadline {
                        None => {
                            deadline = Some(Instant::now() + timeout);
                            false
                        }
                        Some(at) => spins.is_multiple_of(64) && Instant::now() >= at,
                    };
                if expired {
                    return Err(CapiError::PollTimedOut {
                        got: self.finished.len(),
                        wanted: min,
                        timeout_ns: timeout.as_nanos() as i64,
                    });
                }
            }
            spins = spins.wrapping_add(1);
            std::hint::spin_loop();
        }
        let count = self.finished.len().min(max);
        for (slot, done) in out.iter_mut().zip(self.finished.drain(..count)) {
            let (ret, error_msg) = match done.failure {
                None => (0, std::ptr::null()),
                Some((errno, message)) => {
                    // The message moves into the list that keeps it alive; its heap buffer,
                    // which the pointer names, does not move with it.
                    let ptr = message.as_ptr();
                    self.handed_messages.push(message);
                    (-errno, ptr)
                }
            };
            slot.write(uvio_completion {
                user_data: done.user_data as *mut c_void,
                error_msg,
                ret,
                reserved: 0,
            });
        }
        Ok(count)
    }

    /// Makes submitted requests visible to the device without polling (the unit tests' fake
    /// device takes them before the first poll).
    #[cfg(test)]
    fn kick_for_test(&mut self) {
        self.queue.kick();
    }

    /// Takes finished requests off the ring until `max` wait to be handed out.
    fn reap(&mut self, max: usize) {
        let room = max.saturating_sub(self.finished.len());
        if room == 0 {
            return;
        }
        let (finished, names, spare) = (&mut self.finished, &self.names, &mut self.spare_lists);
        let reaped = self.queue.poll_up_to(room, |done: Done<'_, Cookie>| {
            let device = names.get(done.ctx.disk as usize).map_or("", String::as_str);
            finished.push_back(Finished {
                user_data: done.ctx.user_data,
                failure: done
                    .result
                    .err()
                    .map(|e| failure(device, done.op, done.ctx.offset, &done.data, &e)),
            });
            recycle_list(spare, done.data);
        });
        self.outstanding = self.outstanding.saturating_sub(reaped);
    }
}

/// Keeps `data`'s buffer list, if it has one, emptied in `spare` (whose capacity is the
/// queue's depth, so the push never allocates).
fn recycle_list(spare: &mut Vec<Vec<DmaBuf>>, data: Data) {
    if let Data::Many(mut list) = data {
        if spare.len() < spare.capacity() {
            list.clear();
            spare.push(list);
        }
    }
}

/// The errno and message of a failed request.
fn failure(device: &str, op: Op, offset: u64, data: &Data, error: &IoError) -> (c_int, CString) {
    let at = match op {
        Op::Flush => String::new(),
        _ if data.is_empty() => format!(" at offset {offset}"),
        _ => format!(" of {} bytes at offset {offset}", data.len()),
    };
    let message = format!("{device}: {}{at}: {error}", op.name());
    (io_errno(error), c_message(&message))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    use driver::blk::encoder::{BlkEncoder, BLK_CHAIN_OVERHEAD, BLK_SLOT_SIZE};
    use driver::block::{HwQueue, Limits};
    use driver::device::AnyEncoder;
    use driver::dma::{DmaRegion, DmaSpace};
    use driver::virtio::fake::{serve_blk, FakeChain, FakeSplitDevice};
    use driver::virtio::pci::QueueNotifier;
    use driver::virtio::plan::{new_ring, RingShape};
    use driver::virtio::queue::Virtqueue;

    use std::ffi::CStr;

    use super::*;

    const RING: u16 = 64;

    /// The fake device's one disk.
    fn fake() -> Disk<'static> {
        Disk {
            unit: Unit::of_fake_device(0),
            name: "fake",
        }
    }
    const DEPTH: u16 = 8;
    /// virtio-blk's VIRTIO_BLK_S_IOERR.
    const IOERR: u8 = 1;

    struct Setup {
        queue: QueueState,
        device: FakeSplitDevice,
        regions: Regions,
        region: Arc<DmaRegion>,
        scratch: FakeChain,
    }

    /// A queue over an in-process virtio-blk of 1 MiB, and one 64 KiB region.
    fn setup() -> Setup {
        let dma = DmaSpace::identity();
        let shape = RingShape {
            packed: false,
            size: RING,
            indirect_max: 0,
            event_idx: true,
            depth: DEPTH,
            direct_chain: BLK_CHAIN_OVERHEAD as u16 + 1,
        };
        let ring = new_ring(&dma, 0, shape).unwrap();
        let device = FakeSplitDevice::new(ring.addresses(), RING);
        let limits = Limits {
            logical_block_size: 512,
            physical_block_size: 512,
            max_transfer_bytes: 1 << 20,
            max_segments: 8,
            max_segment_size: 1 << 20,
            read_only: false,
            flush: true,
            discard: None,
            write_zeroes: None,
        };
        let encoder = BlkEncoder::new(limits, Arc::new(AtomicU64::new(1 << 20)));
        let slots = dma.alloc(usize::from(DEPTH) * BLK_SLOT_SIZE).unwrap();
        let hw = HwQueue::new(
            0,
            ring,
            QueueNotifier::detached(0),
            DEPTH,
            slots,
            AnyEncoder::Blk(encoder),
        );
        let regions = Regions::default();
        let region = regions.alloc(&dma, 64 << 10).unwrap();
        Setup {
            queue: QueueState::new(hw.with_context()),
            device,
            regions,
            region,
            scratch: FakeChain::default(),
        }
    }

    fn completions(n: usize) -> Vec<MaybeUninit<uvio_completion>> {
        (0..n).map(|_| MaybeUninit::uninit()).collect()
    }

    /// The cookies and results of the first `count` entries.
    fn handed(out: &[MaybeUninit<uvio_completion>], count: usize) -> Vec<(usize, c_int)> {
        out[..count]
            .iter()
            // SAFETY: `poll` wrote the first `count` entries.
            .map(|c| unsafe { c.assume_init_ref() })
            .map(|c| (c.user_data as usize, c.ret))
            .collect()
    }

    fn read(s: &mut Setup, offset: u64, at: usize, len: usize, cookie: usize) -> i32 {
        let addr = s.region.as_ptr() as usize + at;
        s.queue
            .transfer(fake(), &s.regions, Op::Read, offset, (addr, len), cookie)
            .unwrap_or_else(|e| panic!("read: {e}"))
    }

    #[test]
    fn a_poll_hands_out_at_most_its_maximum_and_keeps_the_rest() {
        let mut s = setup();
        for i in 0..3 {
            read(&mut s, i * 512, i as usize * 512, 512, 10 + i as usize);
        }
        let mut out = completions(2);
        // Nothing served yet: a zero timeout fails, and nothing is lost.
        let err = s.queue.poll(&mut out, 1, Some(Duration::ZERO)).unwrap_err();
        assert!(
            matches!(err, CapiError::PollTimedOut { got: 0, .. }),
            "{err}"
        );
        assert_eq!(serve_blk(&mut s.device, &mut s.scratch, 0), 3);
        assert_eq!(s.queue.poll(&mut out, 1, None).unwrap(), 2);
        assert_eq!(handed(&out, 2), [(10, 0), (11, 0)]);
        assert_eq!(s.queue.poll(&mut out, 1, None).unwrap(), 1);
        assert_eq!(handed(&out, 1), [(12, 0)]);
        // Nothing in flight: waiting for one is refused instead of spinning forever.
        let err = s.queue.poll(&mut out, 1, None).unwrap_err();
        assert!(
            matches!(
                err,
                CapiError::WaitingForNothing {
                    wanted: 1,
                    available: 0
                }
            ),
            "{err}"
        );
        assert_eq!(s.queue.poll(&mut out, 0, Some(Duration::ZERO)).unwrap(), 0);
    }

    #[test]
    fn a_timed_out_poll_keeps_what_did_finish_for_the_next_one() {
        let mut s = setup();
        read(&mut s, 0, 0, 512, 1);
        read(&mut s, 512, 512, 512, 2);
        let mut out = completions(4);
        s.queue.kick_for_test();
        serve_blk(&mut s.device, &mut s.scratch, 0);
        read(&mut s, 1024, 1024, 512, 3);
        // Two finished, three wanted: a timeout, with both kept.
        let err = s.queue.poll(&mut out, 3, Some(Duration::ZERO)).unwrap_err();
        assert!(
            matches!(
                err,
                CapiError::PollTimedOut {
                    got: 2,
                    wanted: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.errno(), libc::ETIME);
        serve_blk(&mut s.device, &mut s.scratch, 0);
        assert_eq!(s.queue.poll(&mut out, 3, None).unwrap(), 3);
        assert_eq!(handed(&out, 3), [(1, 0), (2, 0), (3, 0)]);
    }

    #[test]
    fn a_failed_request_completes_with_eio_and_a_message_naming_it() {
        let mut s = setup();
        read(&mut s, 4096, 0, 1024, 7);
        s.queue.kick_for_test();
        serve_blk(&mut s.device, &mut s.scratch, IOERR);
        let mut out = completions(1);
        assert_eq!(s.queue.poll(&mut out, 1, None).unwrap(), 1);
        assert_eq!(handed(&out, 1), [(7, -libc::EIO)]);
        // SAFETY: written by the poll; the message lives until the next poll.
        let message = unsafe { CStr::from_ptr(out[0].assume_init_ref().error_msg) };
        assert_eq!(
            message.to_str().unwrap(),
            "fake: read of 1024 bytes at offset 4096: the device reported an I/O error \
             (VIRTIO_BLK_S_IOERR)"
        );
    }

    #[test]
    fn buffers_outside_the_regions_are_refused_before_submission() {
        let mut s = setup();
        let base = s.region.as_ptr() as usize;
        let len = s.region.len();
        let refused = |s: &mut Setup, addr: usize, n: usize| {
            let e = s
                .queue
                .transfer(fake(), &s.regions, Op::Write, 0, (addr, n), 0)
                .unwrap_err();
            assert!(matches!(e, CapiError::NotDmaMemory { .. }), "{e}");
            assert_eq!(e.errno(), libc::EFAULT);
        };
        refused(&mut s, base - 512, 512);
        refused(&mut s, base + len - 512, 1024);
        refused(&mut s, usize::MAX - 100, 512);
        let stack = [0u8; 512];
        refused(&mut s, stack.as_ptr() as usize, 512);
        // Inside, at any byte address.
        assert_eq!(read(&mut s, 0, 1, 512, 1), 0);
        // A freed region is no longer DMA memory for the queue.
        s.regions.free(base, len).unwrap();
        refused(&mut s, base, 512);
        let e = s.regions.free(base, len).unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL);
    }

    #[test]
    fn vectored_requests_allocate_nothing_once_the_queue_is_warm() {
        let mut s = setup();
        let base = s.region.as_ptr() as usize;
        let mut out = completions(usize::from(DEPTH));
        let round = |s: &mut Setup, out: &mut [MaybeUninit<uvio_completion>]| {
            for i in 0..usize::from(DEPTH) {
                // Three pieces of 512 bytes per request, from a different place each time.
                let at = base + i * 2048;
                let pieces = [(at, 512), (at + 512, 512), (at + 1024, 512)];
                let cookie = 100 + i;
                let r = s.queue.transfer_vectored(
                    fake(),
                    &s.regions,
                    Op::Read,
                    i as u64 * 1536,
                    pieces.into_iter(),
                    cookie,
                );
                assert_eq!(r.unwrap_or_else(|e| panic!("readv: {e}")), 0);
            }
            s.queue.kick_for_test();
            serve_blk(&mut s.device, &mut s.scratch, 0);
            let got = s.queue.poll(out, usize::from(DEPTH), None).unwrap();
            assert_eq!(got, usize::from(DEPTH));
        };
        // The first round makes the buffer lists; later rounds reuse them.
        round(&mut s, &mut out);
        round(&mut s, &mut out);
        let before = crate::alloc_count::allocations();
        for _ in 0..10 {
            round(&mut s, &mut out);
        }
        assert_eq!(crate::alloc_count::allocations(), before);
    }
}
