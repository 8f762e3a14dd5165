//! A hardware queue: one virtqueue, its tags, and one record per tag, owned by one thread.
//!
//! The record is the one place that holds a request's state while it is in flight, like
//! blk-mq's per-request data: the request (op, range, buffers), its unit, its retry count and
//! a caller's context `Ctx`. Submission fills the record of a free tag; completion lends the
//! context back through a callback ([`HwQueue::poll`]), so nothing is rebuilt or pushed into a
//! vector on the way out. The hot path (submit, kick, poll) takes no lock and allocates
//! nothing: records, the scratch segment list and the parked list are sized at creation.
//!
//! The control path ([`HwQueue::run_one`], for the scan and the serial number) is a small
//! synchronous wrapper over the same calls: completions of other requests that arrive while
//! it waits are parked in their records and handed out by the next `poll`.

use std::time::Duration;

use super::deadline::{Deadlines, DEFAULT_TIMEOUT};
use super::encoder::{RequestEncoder, TagRequest};
use super::request::{Data, Done, IoError, Rejected, Request, Unit};
use super::slot::SlotArea;
use super::tags::FreeTags;
use crate::dma::DmaRegion;
use crate::virtio::pci::{QueueNotifier, StatusProbe};
use crate::virtio::queue::{AddError, QueueFault, Segment, Virtqueue};
use crate::virtio::ring::Ring;

mod control;
mod restart;

/// How often one request is sent again after retryable errors.
const MAX_RETRIES: u8 = 5;

/// How long [`HwQueue::run_one`] waits for a control-path request.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);

/// Counters of one hardware queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub submitted: u64,
    pub completed: u64,
    pub errors: u64,
    pub notifications: u64,
    pub bytes: u64,
    /// Requests sent again after a retryable error (a SCSI UNIT ATTENTION).
    pub retries: u64,
    /// Deadline epochs (100 ms) that ended with requests in the device's hands and not one
    /// completion: each one a stall that a second doorbell ended (a missed notification) or a
    /// device that is slow or stuck. A throughput collapse with stalls counted is the
    /// queue's; without, it is elsewhere (the host, the device model).
    pub stalls: u64,
}

/// Where a tag's request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TagState {
    Idle,
    InFlight,
    /// The request `run_one` waits for.
    Awaited,
    /// Completed (or failed by a broken queue) and not yet handed out: the result is in the
    /// record, the tag is in `parked`.
    Parked,
    /// `run_one` stopped waiting for it, or it was handed out as timed out: the device may
    /// still write its buffers, so the tag and buffers stay held until its completion
    /// arrives, which is then dropped.
    Orphaned,
    /// Past its deadline and not yet handed out: the tag is in `parked`, the result
    /// (timed out) in the record.
    Expired,
}

/// Everything about one tag's request.
#[derive(Debug)]
struct TagRecord<C, Ctx> {
    request: Request,
    /// A device command sent as given, whose data `request` holds (a SCSI CDB of the scan).
    command: Option<C>,
    unit: Unit,
    retries: u8,
    state: TagState,
    /// The deadline epoch it was submitted in (see [`Deadlines`]).
    stamp: u32,
    /// The outcome of a parked request.
    result: Result<u64, IoError>,
    ctx: Ctx,
}

impl<C, Ctx: Default> Default for TagRecord<C, Ctx> {
    fn default() -> Self {
        TagRecord {
            request: Request::default(),
            command: None,
            unit: Unit::ONLY,
            retries: 0,
            state: TagState::Idle,
            stamp: 0,
            result: Ok(0),
            ctx: Ctx::default(),
        }
    }
}

/// What one step of reaping found.
enum Reaped {
    /// A request finished (or could not be retried): its tag and outcome.
    Done(u16, Result<u64, IoError>),
    /// Nothing (more) has completed.
    Nothing,
}

/// One hardware queue. `Send` (move it to the thread that drives it), not `Sync`. `Ctx` is
/// what the caller keeps with each request (a cookie, its timestamps); the library's own
/// queues use `()` and a caller re-types its queue with [`HwQueue::with_context`].
#[derive(Debug)]
pub struct HwQueue<E: RequestEncoder, Ctx = ()> {
    index: u16,
    ring: Ring,
    notifier: QueueNotifier,
    encoder: E,
    tags: FreeTags,
    records: Box<[TagRecord<E::Command, Ctx>]>,
    slots: SlotArea,
    /// The DMA space the queue's device uses (the address of its `DmaSpace`): a buffer from
    /// any other space is refused, since its IOVA means nothing to this device.
    space_id: usize,
    segments: Vec<Segment>,
    stats: QueueStats,
    /// Set once every request was failed after the queue broke.
    drained: bool,
    /// Request deadlines.
    deadlines: Deadlines,
    /// Tags whose results wait for the next `poll` (see [`TagState::Parked`]).
    parked: Vec<u16>,
    /// Buffers of requests failed because the queue broke: the device was not reset and may
    /// still write them, so they are released only with the queue (after the device reset).
    quarantine: Vec<Data>,
    /// How long [`HwQueue::run_one`] waits ([`CONTROL_TIMEOUT`] unless set).
    control_timeout: Duration,
    /// Doorbell batching (see [`HwQueue::set_notify_batching`]).
    notify_batching: bool,
    /// A notification is held back, due at the next poll that finds nothing new.
    notify_owed: bool,
    /// Requests published as of the last notification (to tell what the device holds).
    notified_upto: u64,
    /// Completions as of the last look at the device (once per idle epoch), and whether it
    /// held requests then: a stall is an epoch from look to look with requests held
    /// throughout and nothing completed.
    completed_at_look: u64,
    held_at_look: bool,
    /// The device's status register, looked at once per deadline epoch of polls that find
    /// nothing: a device that set DEVICE_NEEDS_RESET completes nothing more.
    status: Option<StatusProbe>,
    /// When the queue breaks, keep what is in flight (buffers and all) for
    /// [`after_device_reset`](Self::after_device_reset) instead of failing it at once (see
    /// [`set_hold_until_reset`](Self::set_hold_until_reset)).
    hold_until_reset: bool,
}

impl<E: RequestEncoder> HwQueue<E> {
    /// Builds a queue from its parts. `slots` must hold `depth` slots of the encoder's size.
    pub fn new(
        index: u16,
        ring: Ring,
        notifier: QueueNotifier,
        depth: u16,
        slots: DmaRegion,
        encoder: E,
    ) -> Self {
        let slots = SlotArea::new(slots, encoder.slot_size(), depth)
            .expect("slot memory too small for the depth");
        let space_id = slots.region().space_id();
        let max_chain = encoder.max_chain();
        HwQueue {
            index,
            ring,
            notifier,
            encoder,
            tags: FreeTags::new(depth),
            records: (0..depth).map(|_| TagRecord::default()).collect(),
            slots,
            space_id,
            segments: Vec::with_capacity(max_chain),
            stats: QueueStats::default(),
            drained: false,
            parked: Vec::with_capacity(usize::from(depth)),
            deadlines: Deadlines::new(Some(DEFAULT_TIMEOUT)),
            quarantine: Vec::new(),
            control_timeout: CONTROL_TIMEOUT,
            notify_batching: false,
            notify_owed: false,
            notified_upto: 0,
            completed_at_look: 0,
            held_at_look: false,
            status: None,
            hold_until_reset: false,
        }
    }
}

impl<E: RequestEncoder, Ctx> HwQueue<E, Ctx> {
    pub fn index(&self) -> u16 {
        self.index
    }

    pub fn depth(&self) -> u16 {
        self.tags.depth()
    }

    /// Requests submitted and not yet handed back.
    pub fn in_flight(&self) -> u16 {
        self.tags.in_use()
    }

    pub fn stats(&self) -> QueueStats {
        self.stats
    }

    /// The ring's format (`split` or `packed`).
    pub fn ring_format(&self) -> &'static str {
        self.ring.format()
    }

    /// The same queue with a context of type `C` in every record. Requests in flight keep
    /// running; their contexts start as `C::default()`.
    pub fn with_context<C: Default>(self) -> HwQueue<E, C> {
        self.rebuild(|e| e, |c| c)
    }

    /// The same queue driven through another encoder type that wraps this one (a caller's
    /// enum over device kinds), with `command` mapping the commands of requests in flight.
    pub fn with_encoder<F: RequestEncoder, C: Default>(
        self,
        encoder: impl FnOnce(E) -> F,
        command: impl Fn(E::Command) -> F::Command,
    ) -> HwQueue<F, C> {
        self.rebuild(encoder, command)
    }

    fn rebuild<F: RequestEncoder, C: Default>(
        self,
        encoder: impl FnOnce(E) -> F,
        command: impl Fn(E::Command) -> F::Command,
    ) -> HwQueue<F, C> {
        let records = Vec::from(self.records)
            .into_iter()
            .map(|r| TagRecord {
                request: r.request,
                command: r.command.map(&command),
                unit: r.unit,
                retries: r.retries,
                state: r.state,
                stamp: r.stamp,
                result: r.result,
                ctx: C::default(),
            })
            .collect();
        HwQueue {
            index: self.index,
            ring: self.ring,
            notifier: self.notifier,
            encoder: encoder(self.encoder),
            tags: self.tags,
            records,
            slots: self.slots,
            space_id: self.space_id,
            segments: self.segments,
            stats: self.stats,
            drained: self.drained,
            parked: self.parked,
            deadlines: self.deadlines,
            quarantine: self.quarantine,
            control_timeout: self.control_timeout,
            notify_batching: self.notify_batching,
            notify_owed: self.notify_owed,
            notified_upto: self.notified_upto,
            completed_at_look: self.completed_at_look,
            held_at_look: self.held_at_look,
            status: self.status,
            hold_until_reset: self.hold_until_reset,
        }
    }

    /// Batches doorbells. When the device asks for a notification (it has caught up with
    /// the ring) while it still holds requests, the notification waits for the first
    /// [`poll`](Self::poll) that finds no new completion, or for the first poll or kick that
    /// finds the device holding nothing (everything it was told about is in the used ring,
    /// reaped or not: a split ring's used index says so, a packed ring's used descriptor in
    /// the newest notified chain's head slot): the device's burst of completions is over.
    /// Meanwhile it works on what it holds, and the notification then brings it every
    /// request submitted since, in one pass.
    ///
    /// Why: every notification costs the device a pass over the ring, and under QEMU it costs
    /// the vCPU an MMIO exit that often sleeps (in a TCG guest at iodepth 128, 10-100 µs:
    /// the store waits for QEMU's big lock, which the device's pass holds). Fewer,
    /// fuller passes measured faster: in a TCG guest at iodepth 8, 184k IOPS against 164k
    /// for a hold at a quarter of the depth and 151k without batching (docs/benchmarks.md).
    /// Counting the used ring's unreaped completions as done measured faster again (medians
    /// of alternating rounds: 198k against 156k at iodepth 8, 354k against 322k at 128): a
    /// caller still handling a large reap no longer leaves the device idle meanwhile (on
    /// packed rings too: medians 207k against 190k at iodepth 128, 204k against 199k at 32).
    /// Off by default: every notification the device asks for goes out at once.
    ///
    /// Only for a caller that keeps polling while requests are in flight, as a polled driver
    /// must: a held notification goes out from `poll`. [`run_one`](Self::run_one) never holds
    /// one back.
    pub fn set_notify_batching(&mut self, on: bool) {
        self.notify_batching = on;
        self.ring.track_notified(on);
    }

    /// Sets how long a request may stay in flight before [`poll`](Self::poll) hands it out
    /// as [`IoError::TimedOut`] (`None`: forever). The default is 30 s, as sd's. Checked at
    /// a 100 ms grain while the queue is polled; a timed-out request's tag and buffers stay
    /// with the queue until the device completes it or is reset.
    pub fn set_request_timeout(&mut self, timeout: Option<Duration>) {
        self.deadlines.set_timeout(timeout);
    }

    /// Sets how long [`run_one`](Self::run_one) waits before it gives up on a request.
    pub fn set_control_timeout(&mut self, timeout: Duration) {
        self.control_timeout = timeout;
    }

    /// Puts `request` for `unit` on the queue with the caller's `ctx` (not yet visible to
    /// the device: call [`kick`](Self::kick) after a batch). Returns its tag, or hands the
    /// request and context back with the reason, before any I/O.
    // The rejected request comes back by value, not boxed: refusing one (a full queue) must
    // not allocate either.
    #[allow(clippy::result_large_err)]
    #[inline]
    pub fn submit(&mut self, unit: Unit, request: Request, ctx: Ctx) -> Result<u16, Rejected<Ctx>> {
        self.submit_with(unit, request, None, ctx)
    }

    /// Puts a device command sent as given (a SCSI CDB) on the queue, with `request`
    /// holding its data and the caller's `ctx`, without waiting (as [`submit`](Self::submit);
    /// [`run_command`](Self::run_command) is the waiting form). Addressed by the command
    /// itself: no unit. For the SCSI layer's concurrent scan.
    #[allow(clippy::result_large_err)]
    pub fn submit_command(
        &mut self,
        command: E::Command,
        request: Request,
        ctx: Ctx,
    ) -> Result<u16, Rejected<Ctx>> {
        self.submit_with(Unit::ONLY, request, Some(command), ctx)
    }

    #[allow(clippy::result_large_err)]
    #[inline]
    fn submit_with(
        &mut self,
        unit: Unit,
        request: Request,
        command: Option<E::Command>,
        ctx: Ctx,
    ) -> Result<u16, Rejected<Ctx>> {
        // A broken ring refuses the chain in `place` (AddError::Broken).
        let Some(tag) = self.tags.alloc() else {
            let error = match self.ring.fault() {
                Some(fault) => IoError::QueueBroken(fault),
                None => IoError::QueueFull(self.depth()),
            };
            return Err(Rejected {
                error,
                request,
                ctx,
            });
        };
        if let Err(error) = self.place(tag, unit, &request, command.as_ref()) {
            self.tags.free(tag);
            return Err(Rejected {
                error,
                request,
                ctx,
            });
        }
        let record = &mut self.records[usize::from(tag)];
        record.request = request;
        record.command = command;
        record.unit = unit;
        record.retries = 0;
        record.state = TagState::InFlight;
        record.stamp = self.deadlines.stamp();
        record.ctx = ctx;
        self.stats.submitted += 1;
        Ok(tag)
    }

    /// Makes submitted requests visible to the device and notifies it if it asked to be.
    #[inline]
    pub fn kick(&mut self) {
        let asked = self.ring.publish();
        self.notify_if(asked, self.notify_batching);
    }

    /// Makes the `max` oldest submitted requests that the device cannot see yet visible (all
    /// of them if fewer) and notifies it if it asked; returns how many. The rest stay
    /// prepared in the ring: a caller can submit requests ahead, while the device works, and
    /// release each as an earlier one completes, so that the next request costs only this
    /// call when the queue frees up.
    #[inline]
    pub fn kick_up_to(&mut self, max: u16) -> u16 {
        let count = self.ring.unpublished().min(max);
        let asked = self.ring.publish_up_to(count);
        self.notify_if(asked, self.notify_batching);
        count
    }

    /// Requests submitted but not yet made visible by a kick.
    #[inline]
    pub fn unpublished(&self) -> u16 {
        self.ring.unpublished()
    }

    /// Notifies the device if it asked (or a held notification is due), unless `may_hold`
    /// and it still holds requests: then the notification is owed to a later poll.
    #[inline]
    fn notify_if(&mut self, asked: bool, may_hold: bool) {
        if asked || self.notify_owed {
            if may_hold && self.device_holds() > 0 {
                self.notify_owed = true;
                return;
            }
            self.notify();
        }
    }

    /// Requests the device was told about and has not completed. Completions it has put in
    /// the ring count as done before they are reaped, as far as the ring can tell cheaply
    /// ([`Ring::still_held`]): a caller still busy with the last reap's requests rings as
    /// soon as the device has run dry, not once it has caught up with it.
    #[inline]
    fn device_holds(&self) -> u64 {
        let held = self.notified_upto.saturating_sub(self.stats.completed);
        if held == 0 {
            return 0;
        }
        self.ring.still_held(held)
    }

    fn notify(&mut self) {
        self.notifier.notify();
        self.stats.notifications += 1;
        self.notify_owed = false;
        self.notified_upto = self.stats.submitted - u64::from(self.ring.unpublished());
        if self.notify_batching {
            self.ring.mark_notified();
        }
    }

    /// Hands every finished request to `each`, in completion order, and returns how many.
    /// The callback gets the request's buffers back and its context by reference; the tag is
    /// free again once the callback returns.
    #[inline]
    pub fn poll(&mut self, each: impl FnMut(Done<'_, Ctx>)) -> usize {
        self.poll_up_to(usize::MAX, each)
    }

    /// As [`poll`](Self::poll), handing out at most `max` requests (fio's
    /// `iodepth_batch_complete_max`); the rest stay on the ring for the next call.
    #[inline]
    pub fn poll_up_to(&mut self, max: usize, mut each: impl FnMut(Done<'_, Ctx>)) -> usize {
        let mut n = 0;
        if !self.parked.is_empty() {
            n += self.hand_out_parked(max, &mut each);
        }
        while n < max {
            let Reaped::Done(tag, result) = self.reap_next() else {
                break;
            };
            n += 1;
            self.hand_out(tag, result, &mut each);
        }
        if !self.parked.is_empty() && n < max {
            // The queue broke while reaping: everything in flight was parked with the fault.
            n += self.hand_out_parked(max - n, &mut each);
        }
        if self.notify_owed && (n == 0 || self.device_holds() == 0) {
            self.notify();
        }
        // Deadlines are looked at on polls that find nothing: a stuck request among flowing
        // ones is noticed as soon as the flow pauses, and a flowing queue pays nothing.
        if n == 0 && self.deadlines.poll() {
            self.look_at_device();
        }
        n
    }

    /// Completions waiting for [`poll`](Self::poll), counted up to `max` (a load on a
    /// split ring, a load per completion on a packed one). Nothing is consumed and the
    /// queue is not checked (`poll` is). A caller with requests prepared ahead can release
    /// them as soon as the device has finished earlier ones, before it handles those
    /// completions.
    #[inline]
    pub fn ready(&self, max: u16) -> u16 {
        if !self.parked.is_empty() {
            return u16::try_from(self.parked.len())
                .unwrap_or(u16::MAX)
                .min(max);
        }
        self.ring.used_ready(max)
    }

    /// The context of request `tag` while it is in flight (to stamp a batch's issue time
    /// after the kick, say).
    #[inline]
    pub fn context_mut(&mut self, tag: u16) -> Option<&mut Ctx> {
        self.records
            .get_mut(usize::from(tag))
            .filter(|r| r.state == TagState::InFlight)
            .map(|r| &mut r.ctx)
    }

    fn hand_out_parked(&mut self, max: usize, each: &mut impl FnMut(Done<'_, Ctx>)) -> usize {
        let count = self.parked.len().min(max);
        let mut n = 0;
        for i in 0..count {
            let tag = self.parked[i];
            let record = &mut self.records[usize::from(tag)];
            let result = std::mem::replace(&mut record.result, Ok(0));
            n += 1;
            if record.state == TagState::Expired {
                // Timed out: handed out without its buffers, which the device may still
                // write; the tag stays held (orphaned) until the device answers or is reset.
                record.state = TagState::Orphaned;
                self.stats.completed += 1;
                self.stats.errors += 1;
                each(Done {
                    tag,
                    op: record.request.op,
                    result,
                    data: Data::None,
                    ctx: &mut record.ctx,
                });
                continue;
            }
            self.hand_out(tag, result, each);
        }
        self.parked.drain(..count);
        n
    }

    /// Hands request `tag` out with `result`, its buffers and its context; its tag is free
    /// again for the callback's own submissions.
    #[inline(always)]
    fn hand_out(
        &mut self,
        tag: u16,
        result: Result<u64, IoError>,
        each: &mut impl FnMut(Done<'_, Ctx>),
    ) {
        let record = &mut self.records[usize::from(tag)];
        record.state = TagState::Idle;
        self.tags.free(tag);
        each(Done {
            tag,
            op: record.request.op,
            result,
            data: std::mem::take(&mut record.request.data),
            ctx: &mut record.ctx,
        });
    }

    /// Takes the next completion off the ring, decodes it into its record and retries it if
    /// the encoder says so. A completion of an orphaned request is dropped here; a broken
    /// ring parks every request in flight with the fault.
    #[inline]
    fn reap_next(&mut self) -> Reaped {
        if self.drained {
            return Reaped::Nothing;
        }
        loop {
            let used = match self.ring.pop_used() {
                None => return Reaped::Nothing,
                Some(Ok(used)) => used,
                Some(Err(fault)) => {
                    self.fail_all(fault);
                    return Reaped::Nothing;
                }
            };
            // The ring only returns tokens it was given, and it was given tags.
            let tag = used.token as u16;
            let Some(record) = self.records.get_mut(usize::from(tag)) else {
                continue;
            };
            let slot = self.slots.slot(tag);
            let at = TagRequest {
                tag,
                slot: &slot,
                unit: record.unit,
                request: &record.request,
                command: record.command.as_ref(),
            };
            let result = self.encoder.decode(at, used.written);
            if let Err(error) = &result {
                if record.retries < MAX_RETRIES
                    && self.encoder.retryable(error)
                    && self.resubmit(tag).is_ok()
                {
                    continue;
                }
            }
            let record = &mut self.records[usize::from(tag)];
            if record.state == TagState::Orphaned {
                // Its caller gave up waiting (and counted it then); the device is done with
                // the buffers now.
                record.state = TagState::Idle;
                record.request.data = Data::None;
                self.tags.free(tag);
                continue;
            }
            if record.state == TagState::Expired {
                // It made it after all, before being handed out as timed out.
                self.parked.retain(|&t| t != tag);
            }
            self.stats.completed += 1;
            match &result {
                Ok(bytes) => self.stats.bytes += bytes,
                Err(_) => self.stats.errors += 1,
            }
            return Reaped::Done(tag, result);
        }
    }

    /// Once per deadline epoch of polls that find nothing: a device that set
    /// DEVICE_NEEDS_RESET breaks the queue (everything in flight fails at once rather than at
    /// its deadline); otherwise requests past their deadline expire.
    #[cold]
    fn look_at_device(&mut self) {
        if self.device_needs_reset() {
            return;
        }
        self.kick_if_stalled();
        self.expire();
    }

    /// After a whole epoch without a completion while the device holds requests: rings the
    /// doorbell again. A notification the device missed would otherwise stall the queue
    /// until the deadline. Seen after a device reset under QEMU 10: the device took one of
    /// four requests published in a row and never moved `avail_event`, so EVENT_IDX asked
    /// for no notification for the other three.
    #[cold]
    fn kick_if_stalled(&mut self) {
        let held = self.ring.core().in_flight > self.ring.unpublished();
        if held {
            if self.held_at_look && self.stats.completed == self.completed_at_look {
                self.stats.stalls += 1;
            }
            self.notify();
        }
        self.completed_at_look = self.stats.completed;
        self.held_at_look = held;
    }

    /// True (and the queue broken, its requests parked with the fault) when the device has
    /// set DEVICE_NEEDS_RESET.
    #[cold]
    fn device_needs_reset(&mut self) -> bool {
        if self.drained || !self.status.as_ref().is_some_and(StatusProbe::needs_reset) {
            return false;
        }
        let fault = QueueFault::DeviceNeedsReset;
        log::error!("hardware queue {}: {fault}", self.index);
        self.ring.break_with(fault);
        self.fail_all(fault);
        true
    }

    /// Marks every request in flight past its deadline as expired, for the next hand-out.
    #[cold]
    fn expire(&mut self) {
        for tag in 0..self.tags.depth() {
            let record = &mut self.records[usize::from(tag)];
            if record.state == TagState::InFlight && self.deadlines.expired(record.stamp) {
                let request = &record.request;
                record.result = Err(IoError::TimedOut {
                    op: request.op.name(),
                    offset: request.offset,
                    len: request.len,
                    after: self.deadlines.timeout().unwrap_or_default(),
                });
                record.state = TagState::Expired;
                self.parked.push(tag);
            }
        }
    }

    /// The ring broke: nothing more will complete. Parks every request in flight with the
    /// fault, once; their buffers go to quarantine (the device may still write them).
    fn fail_all(&mut self, fault: QueueFault) {
        if self.hold_until_reset {
            // Held, buffers and all, until the owner resets the device (the requests then
            // fail as cut short by the reset, with their buffers, to be sent again).
            self.drained = true;
            return;
        }
        for tag in 0..self.tags.depth() {
            let record = &mut self.records[usize::from(tag)];
            match record.state {
                TagState::InFlight | TagState::Awaited => {
                    self.quarantine
                        .push(std::mem::take(&mut record.request.data));
                    self.park_unanswered(tag, IoError::QueueBroken(fault));
                }
                TagState::Orphaned => {
                    self.quarantine
                        .push(std::mem::take(&mut record.request.data));
                    record.state = TagState::Idle;
                    self.tags.free(tag);
                }
                // Already parked, with its result.
                TagState::Idle | TagState::Parked | TagState::Expired => {}
            }
        }
        self.drained = true;
    }

    /// Parks request `tag`, which the device will not answer, with `error` for the next
    /// hand-out, and gives back what encoding took (a LUN's budget), as a completion would
    /// have. (A broken queue, or a device reset.)
    #[cold]
    fn park_unanswered(&mut self, tag: u16, error: IoError) {
        let record = &mut self.records[usize::from(tag)];
        self.encoder.abort(record.unit, record.command.as_ref());
        record.result = Err(error);
        record.state = TagState::Parked;
        self.parked.push(tag);
        self.stats.completed += 1;
        self.stats.errors += 1;
    }

    /// Sends a completed request again under the same tag.
    fn resubmit(&mut self, tag: u16) -> Result<(), IoError> {
        let record = &mut self.records[usize::from(tag)];
        let (unit, command) = (record.unit, record.command);
        let request = std::mem::take(&mut record.request);
        let placed = self.place(tag, unit, &request, command.as_ref());
        let record = &mut self.records[usize::from(tag)];
        record.request = request;
        placed?;
        record.retries += 1;
        // A new attempt, with a deadline of its own (as the midlayer times each attempt).
        record.stamp = self.deadlines.stamp();
        self.stats.retries += 1;
        let asked = self.ring.publish();
        self.notify_if(asked, false);
        Ok(())
    }

    /// Encodes `request` under `tag` and adds its chain to the ring; on failure the encoder
    /// gives back whatever it took for the tag (a LUN's budget).
    #[inline]
    fn place(
        &mut self,
        tag: u16,
        unit: Unit,
        request: &Request,
        command: Option<&E::Command>,
    ) -> Result<(), IoError> {
        // An IOVA only means something in the DMA space it was mapped in.
        if request
            .data
            .bufs()
            .iter()
            .any(|b| b.space_id() != self.space_id)
        {
            return Err(IoError::BadRequest {
                op: request.op.name(),
                what: "buffers allocated from this device's DMA space",
            });
        }
        let slot = self.slots.slot(tag);
        let at = TagRequest {
            tag,
            slot: &slot,
            unit,
            request,
            command,
        };
        let depth = self.tags.depth();
        let added = match &mut self.ring {
            Ring::Split(q) => {
                // Straight into the tag's slot of the ring: no intermediate list.
                let mut chain = q.chain_at(tag).map_err(|e| add_error(depth, request, e))?;
                self.encoder.encode(at, &mut chain)?;
                chain.finish(u64::from(tag))
            }
            Ring::Packed(q) => {
                self.segments.clear();
                self.encoder.encode(at, &mut self.segments)?;
                q.add_at(tag, &self.segments, u64::from(tag))
            }
        };
        if let Err(e) = added {
            self.encoder.abort(unit, command);
            return Err(add_error(depth, request, e));
        }
        Ok(())
    }
}

/// Why a chain could not be queued, as the request's error.
#[cold]
fn add_error(depth: u16, request: &Request, e: AddError) -> IoError {
    let op = request.op.name();
    match e {
        AddError::Broken(fault) => IoError::QueueBroken(fault),
        AddError::Full(_) => IoError::QueueFull(depth),
        AddError::TooManySegments { segments, max } => {
            IoError::TooManySegments { op, segments, max }
        }
        AddError::Empty => IoError::BadRequest {
            op,
            what: "at least one buffer",
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::blk::encoder::{BlkEncoder, BLK_CHAIN_OVERHEAD, BLK_SLOT_SIZE};
    /// A one-buffer virtio-blk chain: header, data, status.
    const BLK_DIRECT_CHAIN: u16 = BLK_CHAIN_OVERHEAD as u16 + 1;
    // The block layer's tests drive real device encoders, through the device module's
    // common queue type (a test-only import from above).
    use crate::block::Limits;
    use crate::device::{AnyEncoder, AnyQueue};
    use crate::dma::{DmaBuf, DmaSpace};
    use crate::scsi::encoder::{wire_tag, ScsiEncoder, SCSI_SLOT_SIZE};
    use crate::scsi::units::{UnitInfo, UnitTable};
    use crate::virtio::fake::{
        serve_blk, serve_blk_packed, FakeChain, FakePackedDevice, FakeSplitDevice,
    };
    use crate::virtio::layout::RingLayout;
    use crate::virtio::plan::{new_ring, RingShape};
    use crate::virtio::queue::Virtqueue;
    use crate::virtio::ring_core::RingCore;
    use crate::virtio::split::SplitQueue;

    const RING: u16 = 16;

    fn limits() -> Limits {
        Limits {
            logical_block_size: 512,
            physical_block_size: 4096,
            max_transfer_bytes: 1 << 20,
            max_segments: 8,
            max_segment_size: 1 << 20,
            read_only: false,
            flush: true,
            discard: None,
            write_zeroes: None,
        }
    }

    fn ring(dma: &Arc<DmaSpace>, depth: u16) -> (SplitQueue, FakeSplitDevice) {
        let layout = RingLayout::split(RING, 0).unwrap();
        let memory = Box::new(dma.alloc(layout.total).unwrap());
        let q = SplitQueue::new(
            RingCore::new(memory, layout).unwrap(),
            true,
            depth,
            BLK_DIRECT_CHAIN,
        );
        let dev = FakeSplitDevice::new(q.addresses(), RING);
        (q, dev)
    }

    fn blk_queue(depth: u16) -> (AnyQueue<u64>, FakeSplitDevice, Arc<DmaSpace>) {
        let dma = DmaSpace::identity();
        let (q, dev) = ring(&dma, depth);
        (blk_queue_on(&dma, q.into(), depth), dev, dma)
    }

    /// A virtio-blk queue of `depth` tags over a packed ring of direct chains (EVENT_IDX
    /// negotiated; the fake device's event area asks for every notification).
    fn packed_blk_queue(depth: u16) -> (AnyQueue<u64>, FakePackedDevice, Arc<DmaSpace>) {
        let dma = DmaSpace::identity();
        let shape = RingShape {
            packed: true,
            size: RING,
            indirect_max: 0,
            event_idx: true,
            depth,
            direct_chain: BLK_DIRECT_CHAIN,
        };
        let ring = new_ring(&dma, 0, shape).unwrap();
        let dev = FakePackedDevice::new(ring.addresses(), RING);
        (blk_queue_on(&dma, ring, depth), dev, dma)
    }

    /// A virtio-blk queue of `depth` tags over `ring`.
    fn blk_queue_on(dma: &Arc<DmaSpace>, ring: Ring, depth: u16) -> AnyQueue<u64> {
        let encoder = BlkEncoder::new(limits(), Arc::new(AtomicU64::new(1 << 30)));
        let slots = dma.alloc(usize::from(depth) * BLK_SLOT_SIZE).unwrap();
        HwQueue::new(
            0,
            ring,
            QueueNotifier::detached(0),
            depth,
            slots,
            AnyEncoder::Blk(encoder),
        )
        .with_context()
    }

    fn scsi_queue(depth: u16) -> (AnyQueue<u64>, FakeSplitDevice, Arc<DmaSpace>, Unit) {
        let dma = DmaSpace::identity();
        let (q, dev) = ring(&dma, depth);
        let table = Arc::new(UnitTable::default());
        let unit = table.add(UnitInfo {
            lun_field: [1, 2, 0x40, 5, 0, 0, 0, 0],
            limits: limits(),
            capacity: 1 << 30,
            use_16: false,
            fua: false,
            budget: depth,
            removed: false,
        });
        let zeroes = dma.alloc(4096).unwrap().into_buf();
        let encoder = ScsiEncoder::new(table, 3, zeroes, 8);
        let slots = dma.alloc(usize::from(depth) * SCSI_SLOT_SIZE).unwrap();
        let queue = HwQueue::new(
            3,
            Ring::from(q).clamp_used_len(),
            QueueNotifier::detached(3),
            depth,
            slots,
            AnyEncoder::Scsi(encoder),
        );
        (queue.with_context(), dev, dma, Unit::new(unit))
    }

    fn bufs(dma: &Arc<DmaSpace>, n: usize) -> Vec<DmaBuf> {
        dma.alloc(n * 4096).unwrap().into_bufs(4096)
    }

    fn one_buf(dma: &Arc<DmaSpace>) -> DmaBuf {
        bufs(dma, 1).remove(0)
    }

    /// Submits `n` reads (contexts 0..n) with buffers from `bufs`, then kicks once.
    fn read_and_kick(q: &mut AnyQueue<u64>, bufs: &mut Vec<DmaBuf>, n: u64) {
        for i in 0..n {
            let buf = bufs.pop().expect("a buffer per read");
            q.submit(Unit::ONLY, Request::read(0, buf), i).unwrap();
        }
        q.kick();
    }

    /// Doorbells rung so far.
    fn notified(q: &AnyQueue<u64>) -> u64 {
        q.stats().notifications
    }

    /// A virtio-scsi response head (12 bytes) with CHECK CONDITION and 18 bytes of fixed
    /// sense: sense key `key`, additional sense code `asc`.
    fn check_condition(key: u8, asc: u8) -> [u8; 12 + 18] {
        let mut resp = [0u8; 12 + 18];
        resp[0..4].copy_from_slice(&18u32.to_le_bytes());
        resp[10] = 2;
        resp[12] = 0x70;
        resp[14] = key;
        resp[19] = 10;
        resp[24] = asc;
        resp
    }

    /// Everything `poll` hands out: (tag, ctx, result, got a buffer back).
    fn reap(q: &mut AnyQueue<u64>) -> Vec<(u16, u64, Result<u64, IoError>, bool)> {
        let mut out = Vec::new();
        q.poll(|d| out.push((d.tag, *d.ctx, d.result, matches!(d.data, Data::One(_)))));
        out
    }

    /// The sector of a virtio-blk chain's header.
    fn sector(chain: &FakeChain) -> u64 {
        let header = chain.read(0);
        u64::from_le_bytes(header[8..16].try_into().unwrap())
    }

    /// A device that breaks the ring while requests are in flight, with the queue holding
    /// them until the device is reset: nothing comes back and submissions are refused until
    /// then; after the reset every request comes back cut short by it, with its buffer and
    /// context, and the restarted ring serves a new request from index 0, its header
    /// written as for a new queue.
    #[test]
    fn a_held_broken_queue_gives_everything_back_after_a_device_reset() {
        let dma = DmaSpace::identity();
        let (ring, mut dev) = ring(&dma, 4);
        let addresses = ring.addresses();
        let mut q = blk_queue_on(&dma, ring.into(), 4);
        q.set_hold_until_reset(true);
        for (i, buf) in bufs(&dma, 3).into_iter().enumerate() {
            q.submit(
                Unit::ONLY,
                Request::read(4096 * i as u64, buf),
                10 + i as u64,
            )
            .unwrap();
        }
        q.kick();
        assert_eq!(dev.take_available().len(), 3);
        // A used id outside the ring breaks it.
        dev.complete(99, 0);
        assert!(reap(&mut q).is_empty(), "held, not failed");
        assert!(q.needs_device_reset());
        assert_eq!(q.in_flight(), 3);
        let refused = q
            .submit(Unit::ONLY, Request::read(0, one_buf(&dma)), 7)
            .unwrap_err();
        assert!(
            matches!(refused.error, IoError::QueueBroken(_)),
            "{refused:?}"
        );

        assert_eq!(q.after_device_reset(), 3);
        assert!(!q.needs_device_reset());
        let mut back = reap(&mut q);
        back.sort_by_key(|r| r.1);
        assert_eq!(back.len(), 3);
        for (i, (_, cookie, result, had_buf)) in back.into_iter().enumerate() {
            assert_eq!(cookie, 10 + i as u64);
            assert!(had_buf, "the buffer comes back after the reset");
            match result {
                Err(IoError::DeviceReset { op, offset, len }) => {
                    assert_eq!((op, offset, len), ("read", 4096 * i as u64, 4096));
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(q.in_flight(), 0);

        // The device starts over too: a new one on the same rings.
        let mut dev = FakeSplitDevice::new(addresses, RING);
        q.submit(Unit::ONLY, Request::read(8192, one_buf(&dma)), 42)
            .unwrap();
        q.kick();
        let mut chain = FakeChain::default();
        assert_eq!(serve_blk(&mut dev, &mut chain, 0), 1);
        assert_eq!(sector(&chain), 16);
        let done = reap(&mut q);
        assert_eq!(done.len(), 1);
        assert_eq!((done[0].1, done[0].2.as_ref().ok()), (42, Some(&4096)));
    }

    /// The same on a packed ring: after the reset the wrap counters and ids start over, so
    /// a new device on the same memory finds the next request at descriptor 0.
    #[test]
    fn a_packed_queue_starts_over_after_a_device_reset() {
        let (mut q, mut dev, dma) = packed_blk_queue(4);
        let addresses = q.ring.addresses();
        q.set_hold_until_reset(true);
        let mut chain = FakeChain::default();
        // Serve a few first, so that the rings' positions are not at 0 any more.
        for round in 0..3u64 {
            for (i, buf) in bufs(&dma, 3).into_iter().enumerate() {
                q.submit(Unit::ONLY, Request::read(4096 * i as u64, buf), round)
                    .unwrap();
            }
            q.kick();
            assert_eq!(serve_blk_packed(&mut dev, &mut chain, 0), 3);
            assert_eq!(reap(&mut q).len(), 3);
        }
        for (i, buf) in bufs(&dma, 2).into_iter().enumerate() {
            q.submit(
                Unit::ONLY,
                Request::read(4096 * i as u64, buf),
                20 + i as u64,
            )
            .unwrap();
        }
        q.kick();
        assert!(dev.next_chain(&mut chain));
        // An id the driver never gave out breaks the ring.
        dev.put_used(999, 0, None, 1);
        assert!(reap(&mut q).is_empty(), "held, not failed");
        assert!(q.needs_device_reset());

        assert_eq!(q.after_device_reset(), 2);
        let back = reap(&mut q);
        assert_eq!(back.len(), 2);
        assert!(back
            .iter()
            .all(|b| matches!(b.2, Err(IoError::DeviceReset { .. })) && b.3));

        let mut dev = FakePackedDevice::new(addresses, RING);
        q.submit(Unit::ONLY, Request::read(8192, one_buf(&dma)), 42)
            .unwrap();
        q.kick();
        assert_eq!(serve_blk_packed(&mut dev, &mut chain, 0), 1);
        assert_eq!(sector(&chain), 16);
        let done = reap(&mut q);
        assert_eq!((done.len(), done[0].1), (1, 42));
        assert!(done[0].2.is_ok(), "{done:?}");
    }

    /// Without holding, a broken queue fails everything at once and quarantines the
    /// buffers; a device reset then releases the quarantine and the tags.
    #[test]
    fn a_device_reset_releases_a_broken_queues_quarantine() {
        let (mut q, mut dev, dma) = blk_queue(4);
        for (i, buf) in bufs(&dma, 2).into_iter().enumerate() {
            q.submit(Unit::ONLY, Request::read(4096 * i as u64, buf), i as u64)
                .unwrap();
        }
        q.kick();
        dev.take_available();
        dev.complete(99, 0);
        let failed = reap(&mut q);
        assert_eq!(failed.len(), 2);
        assert!(failed
            .iter()
            .all(|f| matches!(f.2, Err(IoError::QueueBroken(_))) && !f.3));
        assert_eq!(q.after_device_reset(), 0, "nothing was left in flight");
        assert!(q.quarantine.is_empty());
        assert_eq!(q.in_flight(), 0);
        assert!(q
            .submit(Unit::ONLY, Request::read(0, one_buf(&dma)), 9)
            .is_ok());
    }

    #[test]
    fn prepared_requests_wait_until_released_oldest_first() {
        let (mut q, mut dev, dma) = blk_queue(4);
        for (i, buf) in bufs(&dma, 3).into_iter().enumerate() {
            q.submit(Unit::ONLY, Request::read(4096 * i as u64, buf), i as u64)
                .unwrap();
        }
        assert_eq!(q.unpublished(), 3);
        let mut chain = FakeChain::default();
        assert!(!dev.next_chain(&mut chain), "nothing visible before a kick");
        assert_eq!(q.kick_up_to(1), 1);
        assert!(dev.next_chain(&mut chain));
        assert_eq!(sector(&chain), 0);
        assert!(!dev.next_chain(&mut chain), "the other two are held");
        assert_eq!(q.kick_up_to(5), 2);
        assert_eq!(q.kick_up_to(5), 0);
        assert!(dev.next_chain(&mut chain));
        assert_eq!(sector(&chain), 8);
        assert!(dev.next_chain(&mut chain));
        assert_eq!(sector(&chain), 16);
        // Serve them again from the start of the ring.
        let (mut q, mut dev, dma) = blk_queue(4);
        for (i, buf) in bufs(&dma, 3).into_iter().enumerate() {
            q.submit(
                Unit::ONLY,
                Request::read(4096 * i as u64, buf),
                10 + i as u64,
            )
            .unwrap();
        }
        q.kick_up_to(2);
        assert_eq!(serve_blk(&mut dev, &mut chain, 0), 2);
        let done: Vec<u64> = reap(&mut q).iter().map(|d| d.1).collect();
        assert_eq!(done, vec![10, 11]);
        q.kick();
        assert_eq!(serve_blk(&mut dev, &mut chain, 0), 1);
        assert_eq!(reap(&mut q)[0].1, 12);
    }

    #[test]
    fn a_held_notification_goes_out_when_a_poll_finds_nothing_new() {
        let (mut q, mut dev, dma) = blk_queue(4);
        q.set_notify_batching(true);
        let mut b = bufs(&dma, 6);
        let mut read = |q: &mut AnyQueue<u64>, n: u64| read_and_kick(q, &mut b, n);
        // The device asks for entry 0 and holds nothing: notified at once.
        dev.set_avail_event(0);
        read(&mut q, 3);
        assert_eq!(notified(&q), 1);
        let mut heads: Vec<u16> = dev.take_available().iter().map(|c| c.head).collect();
        // It caught up and asks again while it holds 3: the notification waits.
        dev.set_avail_event(3);
        read(&mut q, 1);
        assert_eq!(notified(&q), 1);
        dev.complete(u32::from(heads[0]), 1);
        assert_eq!(reap(&mut q).len(), 1);
        assert_eq!(notified(&q), 1, "mid-burst: still held");
        dev.complete(u32::from(heads[1]), 1);
        assert_eq!(reap(&mut q).len(), 1);
        assert_eq!(notified(&q), 1, "mid-burst: still held");
        assert!(reap(&mut q).is_empty());
        assert_eq!(
            notified(&q),
            2,
            "the burst ended: the held notification goes out"
        );
        // Held again; the device finishing everything it held sends it at once.
        heads.extend(dev.take_available().iter().map(|c| c.head));
        dev.set_avail_event(4);
        read(&mut q, 1);
        assert_eq!(notified(&q), 2);
        dev.complete(u32::from(heads[2]), 1);
        dev.complete(u32::from(heads[3]), 1);
        assert_eq!(reap(&mut q).len(), 2);
        assert_eq!(
            notified(&q),
            3,
            "the device holds nothing it was told about"
        );
        // Without batching, every notification the device asks for goes out at once.
        q.set_notify_batching(false);
        dev.take_available();
        dev.set_avail_event(5);
        read(&mut q, 1);
        assert_eq!(notified(&q), 4);
    }

    #[test]
    fn a_held_notification_counts_completions_the_caller_has_not_reaped_yet() {
        let (mut q, mut dev, dma) = blk_queue(4);
        q.set_notify_batching(true);
        let mut b = bufs(&dma, 4);
        let mut read = |q: &mut AnyQueue<u64>, n: u64| read_and_kick(q, &mut b, n);
        dev.set_avail_event(0);
        read(&mut q, 2);
        assert_eq!(notified(&q), 1);
        let heads: Vec<u16> = dev.take_available().iter().map(|c| c.head).collect();
        // The device caught up and asks again. It completes both, one at a time, and the
        // caller, still busy, has reaped neither when it submits its next requests.
        dev.set_avail_event(2);
        dev.complete(u32::from(heads[0]), 1);
        read(&mut q, 1);
        assert_eq!(notified(&q), 1, "the device still holds one: held");
        dev.complete(u32::from(heads[1]), 1);
        read(&mut q, 1);
        assert_eq!(
            notified(&q),
            2,
            "everything it was told about is in the used ring: it ran dry, ring now"
        );
        assert_eq!(reap(&mut q).len(), 2);
        assert_eq!(notified(&q), 2, "nothing more owed");
    }

    /// The same on a packed ring, which has no used index: the used descriptor in the newest
    /// notified chain's head slot tells that everything notified is done.
    #[test]
    fn a_held_notification_on_a_packed_ring_rings_once_the_newest_notified_chain_is_used() {
        let (mut q, mut dev, dma) = packed_blk_queue(4);
        q.set_notify_batching(true);
        let mut b = bufs(&dma, 8);
        let mut read = |q: &mut AnyQueue<u64>, n: u64| read_and_kick(q, &mut b, n);
        let mut chain = FakeChain::default();
        let mut take = |dev: &mut FakePackedDevice| {
            assert!(dev.next_chain(&mut chain));
            chain.head
        };
        // In order: the older chain's used descriptor lands in slot 0, not in the newer
        // chain's head slot; the newer one's lands there.
        read(&mut q, 2);
        assert_eq!(notified(&q), 1);
        let (older, newer) = (take(&mut dev), take(&mut dev));
        assert!(dev.complete(older, 1));
        read(&mut q, 1);
        assert_eq!(notified(&q), 1, "the device still holds one: held");
        assert!(dev.complete(newer, 1));
        read(&mut q, 1);
        assert_eq!(
            notified(&q),
            2,
            "everything it was told about is used: ring now"
        );
        assert_eq!(reap(&mut q).len(), 2);
        // Out of order the look cannot tell (another chain's id sits in the head slot), and
        // the count decides, as before: held until the caller has reaped them.
        let (q2, q3) = (take(&mut dev), take(&mut dev));
        assert!(dev.complete(q3, 1));
        assert!(dev.complete(q2, 1));
        read(&mut q, 1);
        assert_eq!(notified(&q), 2, "no proof the device ran dry: held");
        assert_eq!(reap(&mut q).len(), 2);
        assert!(reap(&mut q).is_empty());
        assert_eq!(
            notified(&q),
            3,
            "all reaped: the held notification goes out"
        );
    }

    #[test]
    fn a_blk_read_puts_the_exact_header_on_the_wire_and_comes_back_with_its_context() {
        let (mut q, mut dev, dma) = blk_queue(4);
        let mut b = bufs(&dma, 1);
        let buf = b.pop().unwrap();
        let data_iova = buf.iova();
        let tag = q.submit(Unit::ONLY, Request::read(8192, buf), 77).unwrap();
        q.kick();
        let mut chain = FakeChain::default();
        assert!(dev.next_chain(&mut chain));
        assert_eq!(chain.segments.len(), 3);
        // struct virtio_blk_outhdr: type IN (0), ioprio 0, sector 16.
        assert_eq!(
            chain.read(0),
            [0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0]
        );
        assert!(!chain.segments[0].device_writes);
        assert_eq!(
            (chain.segments[1].iova, chain.segments[1].len),
            (data_iova, 4096)
        );
        assert!(chain.segments[1].device_writes && chain.segments[2].device_writes);
        assert_eq!(chain.read(2), [0xff], "a stale status never reads as OK");
        chain.write(2, 0, &[0]);
        dev.put_used(u32::from(chain.head), 4097);
        dev.publish_used();
        assert_eq!(reap(&mut q), [(tag, 77, Ok(4096), true)]);
        assert_eq!(q.in_flight(), 0);
        let s = q.stats();
        assert_eq!(
            (s.submitted, s.completed, s.bytes, s.errors),
            (1, 1, 4096, 0)
        );
    }

    /// Buffers of 4 KiB carved with room for the status byte after each.
    fn bufs_with_status_room(dma: &Arc<DmaSpace>, n: usize) -> Vec<DmaBuf> {
        dma.alloc_bufs_with_status_room(n, 4096).unwrap()
    }

    #[test]
    fn a_read_into_a_buffer_with_status_room_is_two_descriptors_with_the_status_after_the_data() {
        let (mut q, mut dev, dma) = blk_queue(4);
        let mut b = bufs_with_status_room(&dma, 4);
        assert_eq!(b.len(), 4);
        assert_eq!(
            b[1].iova() - b[0].iova(),
            4608,
            "4096 + 1 rounded up to 512"
        );
        let (read_ok, read_err, write) = (b.pop().unwrap(), b.pop().unwrap(), b.pop().unwrap());
        let mut short = b.pop().unwrap();
        short.set_len(2048);
        let (ok_iova, short_iova) = (read_ok.iova(), short.iova());
        let t_ok = q
            .submit(Unit::ONLY, Request::read(8192, read_ok), 1)
            .unwrap();
        let t_err = q.submit(Unit::ONLY, Request::read(0, read_err), 2).unwrap();
        let t_write = q.submit(Unit::ONLY, Request::write(0, write), 3).unwrap();
        let t_short = q.submit(Unit::ONLY, Request::read(512, short), 4).unwrap();
        q.kick();
        let mut chains = Vec::new();
        let mut chain = FakeChain::default();
        while dev.next_chain(&mut chain) {
            chains.push(chain.clone());
        }
        assert_eq!(chains.len(), 4);
        // The read: header, then data and status in one device-writable buffer.
        let c = &chains[0];
        assert_eq!(c.segments.len(), 2);
        assert_eq!(c.read(0), [0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0]);
        assert!(!c.segments[0].device_writes && c.segments[1].device_writes);
        assert_eq!((c.segments[1].iova, c.segments[1].len), (ok_iova, 4097));
        assert_eq!(c.read(1)[4096], 0xff, "a stale status never reads as OK");
        // A write keeps the status byte in its own buffer: the data is device-readable.
        let w = &chains[2];
        assert_eq!(w.segments.len(), 3);
        assert!(!w.segments[1].device_writes && w.segments[2].device_writes);
        assert_eq!((w.segments[2].len, w.read(2)), (1, vec![0xff]));
        // A read shorter than the buffer takes the byte right after its data.
        let s = &chains[3];
        assert_eq!((s.segments[1].iova, s.segments[1].len), (short_iova, 2049));
        // OK, IOERR, OK, OK, each where QEMU writes it: the chain's last byte.
        for (c, status) in chains.iter().zip([0u8, 1, 0, 0]) {
            c.write_blk_status(status);
            dev.put_used(u32::from(c.head), c.writable());
        }
        dev.publish_used();
        let mut got = reap(&mut q);
        got.sort_by_key(|g| g.1);
        assert_eq!(
            got,
            [
                (t_ok, 1, Ok(4096), true),
                (t_err, 2, Err(IoError::DeviceIo), true),
                (t_write, 3, Ok(4096), true),
                (t_short, 4, Ok(2048), true),
            ]
        );
    }

    /// Only a one-buffer read that fits a segment with its status byte takes it after the
    /// data; every other request with such buffers keeps the status in its slot.
    #[test]
    fn the_status_stays_in_the_slot_unless_a_one_buffer_read_fits_a_segment_with_it() {
        let (mut q, mut dev, dma) = blk_queue(4);
        // A read of exactly the device's segment size (1 MiB): with the byte it would not fit.
        let whole = dma
            .alloc_bufs_with_status_room(1, 1 << 20)
            .unwrap()
            .remove(0);
        let mut b = bufs_with_status_room(&dma, 3);
        let (v1, v2, id) = (b.pop().unwrap(), b.pop().unwrap(), b.pop().unwrap());
        let mut id = id;
        id.set_len(20);
        q.submit(Unit::ONLY, Request::read(0, whole), 1).unwrap();
        q.submit(Unit::ONLY, Request::readv(0, vec![v1, v2]), 2)
            .unwrap();
        q.submit(Unit::ONLY, Request::get_id(id), 3).unwrap();
        q.kick();
        let mut chain = FakeChain::default();
        let mut shapes = Vec::new();
        while dev.next_chain(&mut chain) {
            let last = chain.segments[chain.segments.len() - 1];
            shapes.push((chain.segments.len(), last.len));
            chain.write_blk_status(0);
            dev.put_used(u32::from(chain.head), chain.writable());
        }
        // Header, data, a one-byte status of its own, each time.
        assert_eq!(shapes, [(3, 1), (4, 1), (3, 1)]);
        dev.publish_used();
        let mut got: Vec<_> = reap(&mut q).into_iter().map(|g| (g.1, g.2)).collect();
        got.sort_by_key(|g| g.0);
        assert_eq!(got, [(1, Ok(1 << 20)), (2, Ok(8192)), (3, Ok(20))]);
    }

    /// The status byte after the data is preset to 0xff: a device that reports the read
    /// done without writing it has not said OK.
    #[test]
    fn an_unwritten_status_after_the_data_is_not_success() {
        let (mut q, mut dev, dma) = blk_queue(4);
        let mut buf = bufs_with_status_room(&dma, 1).remove(0);
        buf.as_mut_slice().fill(0);
        buf.set_len(2048);
        let tag = q.submit(Unit::ONLY, Request::read(0, buf), 7).unwrap();
        q.kick();
        let mut chain = FakeChain::default();
        assert!(dev.next_chain(&mut chain));
        assert_eq!(chain.segments[1].len, 2049);
        assert_eq!(chain.read(1)[2048], 0xff, "preset right after the data");
        dev.put_used(u32::from(chain.head), 2049);
        dev.publish_used();
        assert_eq!(
            reap(&mut q),
            [(tag, 7, Err(IoError::BadStatus(0xff)), true)]
        );
    }

    #[test]
    fn a_packed_ring_takes_the_status_after_the_data_too() {
        let (mut q, mut dev, dma) = packed_blk_queue(4);
        let mut b = bufs_with_status_room(&dma, 2);
        for (i, buf) in b.drain(..).enumerate() {
            q.submit(Unit::ONLY, Request::read(4096 * i as u64, buf), i as u64)
                .unwrap();
        }
        q.kick();
        let mut chain = FakeChain::default();
        assert!(dev.next_chain(&mut chain));
        assert_eq!(chain.segments.len(), 2);
        assert_eq!(chain.segments[1].len, 4097);
        chain.write_blk_status(0);
        dev.complete_next(chain.writable());
        // The second: the device reports the data but not the status byte written.
        assert!(dev.next_chain(&mut chain));
        chain.write_blk_status(0);
        dev.complete_next(4096);
        let mut got = reap(&mut q);
        got.sort_by_key(|g| g.1);
        assert_eq!(got[0].2, Ok(4096));
        assert_eq!(
            got[1].2,
            Err(IoError::ShortTransfer {
                written: 4096,
                expected: 4097
            })
        );
    }

    #[test]
    fn device_errors_and_short_reads_come_back_as_typed_errors() {
        let (mut q, mut dev, dma) = blk_queue(4);
        for (i, buf) in bufs(&dma, 2).into_iter().enumerate() {
            q.submit(Unit::ONLY, Request::read(0, buf), i as u64)
                .unwrap();
        }
        q.kick();
        let mut chain = FakeChain::default();
        assert!(dev.next_chain(&mut chain));
        chain.write(2, 0, &[1]); // VIRTIO_BLK_S_IOERR
        dev.put_used(u32::from(chain.head), 1);
        assert!(dev.next_chain(&mut chain));
        chain.write(2, 0, &[0]);
        dev.put_used(u32::from(chain.head), 100); // fewer bytes than the read asked for
        dev.publish_used();
        let got = reap(&mut q);
        assert_eq!(got[0].2, Err(IoError::DeviceIo));
        assert!(matches!(
            got[1].2,
            Err(IoError::ShortTransfer { written: 100, .. })
        ));
        assert_eq!(q.stats().errors, 2);
    }

    #[test]
    fn bad_requests_are_refused_before_the_ring_and_hand_everything_back() {
        let (mut q, _dev, dma) = blk_queue(2);
        let mut b = bufs(&dma, 1);
        let misaligned = q
            .submit(Unit::ONLY, Request::read(100, b.pop().unwrap()), 5)
            .unwrap_err();
        assert!(matches!(misaligned.error, IoError::Misaligned { .. }));
        assert_eq!(misaligned.ctx, 5);
        assert!(matches!(misaligned.request.data, Data::One(_)));
        let other_space = DmaSpace::identity();
        let foreign = q
            .submit(Unit::ONLY, Request::read(0, one_buf(&other_space)), 6)
            .unwrap_err();
        assert!(matches!(foreign.error, IoError::BadRequest { .. }));
        let wrong_unit = q
            .submit(Unit::new(1), Request::read(0, one_buf(&dma)), 7)
            .unwrap_err();
        assert_eq!(wrong_unit.error, IoError::NoSuchUnit(1));
        assert_eq!(q.in_flight(), 0, "refusals take no tag");
    }

    #[test]
    fn a_scsi_read_puts_the_exact_command_on_the_wire() {
        let (mut q, mut dev, dma, unit) = scsi_queue(4);
        let tag = q
            .submit(unit, Request::read(4096, one_buf(&dma)), 1)
            .unwrap();
        q.kick();
        let mut chain = FakeChain::default();
        assert!(dev.next_chain(&mut chain));
        // Request header, response, then the data the device writes.
        assert_eq!(chain.segments.len(), 3);
        assert_eq!(chain.segments[0].len, 51);
        assert_eq!(chain.segments[1].len, 108);
        let req = chain.read(0);
        assert_eq!(&req[0..8], &[1, 2, 0x40, 5, 0, 0, 0, 0], "LUN field");
        assert_eq!(
            &req[8..16],
            &wire_tag(3, tag).to_le_bytes(),
            "queue and tag"
        );
        assert_eq!(&req[16..19], &[0, 0, 0], "SIMPLE, no priority, no CRN");
        // READ(10), LBA 8, 8 blocks.
        assert_eq!(&req[19..29], &[0x28, 0, 0, 0, 0, 8, 0, 0, 8, 0]);
        assert!(req[29..].iter().all(|&b| b == 0));
        assert_eq!(
            chain.read(1)[11],
            0xff,
            "an unwritten response never reads as OK"
        );
        chain.write(1, 0, &[0; 12]);
        dev.put_used(u32::from(chain.head), 108 + 4096);
        dev.publish_used();
        assert_eq!(reap(&mut q), [(tag, 1, Ok(4096), true)]);
    }

    #[test]
    fn a_scsi_read_keeps_its_response_in_the_slot_with_status_room_too() {
        use crate::scsi::error::ScsiError;
        use crate::scsi::passthrough::ScsiPassthrough;
        use crate::scsi_proto::cdb;
        use crate::scsi_proto::sense::SenseKey;
        let (mut q, mut dev, dma, unit) = scsi_queue(4);
        let mut b = bufs_with_status_room(&dma, 4);
        let (ok, failed, short, inquiry) = (b.remove(0), b.remove(0), b.remove(0), b.remove(0));
        let ok_iova = ok.iova();
        let t_ok = q.submit(unit, Request::read(8 * 512, ok), 1).unwrap();
        let t_failed = q.submit(unit, Request::read(0, failed), 2).unwrap();
        let t_short = q.submit(unit, Request::read(0, short), 3).unwrap();
        let command = ScsiPassthrough {
            address: [1, 2, 0x40, 5, 0, 0, 0, 0],
            cdb: cdb::inquiry(96),
            data_in: true,
        };
        let mut inquiry = inquiry;
        inquiry.set_len(96);
        let t_inq = q
            .submit_command(command, command.request(Data::One(inquiry)), 4)
            .unwrap();
        q.kick();
        let mut chains = Vec::new();
        let mut chain = FakeChain::default();
        while dev.next_chain(&mut chain) {
            chains.push(chain.clone());
        }
        // The request header, the response, then the data: QEMU's virtio-scsi takes the
        // whole first device-writable buffer as the response (no ANY_LAYOUT on a modern
        // device), so the response never shares the data's descriptor.
        for c in &chains {
            assert_eq!(c.segments.len(), 3);
            assert_eq!(c.segments[0].len, 51);
            assert!(c.segments[1].device_writes && c.segments[2].device_writes);
            assert_eq!(c.segments[1].len, 108);
            assert_eq!(
                c.read(1)[11],
                0xff,
                "an unwritten response never reads as OK"
            );
        }
        assert_eq!(
            &chains[0].read(0)[19..29],
            &[0x28, 0, 0, 0, 0, 8, 0, 0, 8, 0]
        );
        assert_eq!(
            (chains[0].segments[2].iova, chains[0].segments[2].len),
            (ok_iova, 4096)
        );
        // GOOD; CHECK CONDITION, MEDIUM ERROR (fixed sense, 18 bytes); GOOD but the data
        // cut short; GOOD.
        let medium = check_condition(3, 0x11);
        for (i, c) in chains.iter().enumerate() {
            let resp = c.segments.iter().position(|s| s.device_writes).unwrap();
            if i == 1 {
                c.write(resp, 0, &medium);
            } else {
                c.write(resp, 0, &[0; 12]);
            }
            let written = if i == 2 { 108 + 2048 } else { c.writable() };
            dev.put_used(u32::from(c.head), written);
        }
        dev.publish_used();
        let mut got = reap(&mut q);
        got.sort_by_key(|g| g.1);
        assert_eq!(got[0], (t_ok, 1, Ok(4096), true));
        assert_eq!((got[1].0, got[1].1), (t_failed, 2));
        let error = got[1].2.as_ref().unwrap_err();
        assert!(matches!(
            ScsiError::of(error),
            Some(ScsiError::Status { .. })
        ));
        let sense = ScsiError::sense_of(error).expect("the sense");
        assert_eq!((sense.key, sense.asc), (SenseKey::MEDIUM_ERROR, 0x11));
        assert_eq!(
            got[2],
            (
                t_short,
                3,
                Err(IoError::ShortTransfer {
                    written: 108 + 2048,
                    expected: 108 + 4096
                }),
                true
            )
        );
        assert_eq!(got[3], (t_inq, 4, Ok(96), true));
    }

    #[test]
    fn a_unit_attention_is_retried_under_the_same_tag_and_completes_once() {
        let (mut q, mut dev, dma, unit) = scsi_queue(4);
        let tag = q.submit(unit, Request::read(0, one_buf(&dma)), 9).unwrap();
        q.kick();
        let mut chain = FakeChain::default();
        assert!(dev.next_chain(&mut chain));
        // CHECK CONDITION with fixed sense: UNIT ATTENTION, POWER ON OR RESET (29h).
        let resp = check_condition(6, 0x29);
        chain.write(1, 0, &resp);
        dev.put_used(u32::from(chain.head), 108);
        dev.publish_used();
        assert!(reap(&mut q).is_empty(), "retried, not handed out");
        assert_eq!(q.stats().retries, 1);
        assert!(dev.next_chain(&mut chain), "sent again");
        assert_eq!(&chain.read(0)[8..16], &wire_tag(3, tag).to_le_bytes());
        chain.write(1, 0, &[0; 12]);
        dev.put_used(u32::from(chain.head), 108 + 4096);
        dev.publish_used();
        assert_eq!(reap(&mut q), [(tag, 9, Ok(4096), true)]);
    }

    #[test]
    fn ready_counts_completions_before_poll_takes_them() {
        let (mut q, mut dev, dma) = blk_queue(4);
        let mut b = bufs(&dma, 3);
        read_and_kick(&mut q, &mut b, 3);
        assert_eq!(q.ready(8), 0);
        let mut chain = FakeChain::default();
        assert!(dev.next_chain(&mut chain));
        chain.write_blk_status(0);
        dev.complete(u32::from(chain.head), chain.writable());
        assert_eq!(q.ready(8), 1, "one in the used ring");
        assert_eq!(q.ready(8), 1, "looking consumes nothing");
        assert_eq!(serve_blk(&mut dev, &mut chain, 0), 2);
        assert_eq!(q.ready(8), 3);
        assert_eq!(q.ready(2), 2, "counted up to max");
        assert_eq!(reap(&mut q).len(), 3);
        assert_eq!(q.ready(8), 0);

        // A used index beyond what the device was given reads as at most that; poll then
        // breaks the queue.
        read_and_kick(&mut q, &mut b, 0);
        let mut b = bufs(&dma, 1);
        read_and_kick(&mut q, &mut b, 1);
        dev.put_used(0, 0);
        dev.put_used(0, 0);
        dev.put_used(0, 0);
        dev.publish_used();
        assert_eq!(q.ready(8), 1);
        let got = reap(&mut q);
        assert_eq!(got.len(), 1);
        assert!(matches!(got[0].2, Err(IoError::QueueBroken(_))), "{got:?}");
    }

    #[test]
    fn ready_on_a_packed_ring_walks_the_used_descriptors() {
        let (mut q, mut dev, dma) = packed_blk_queue(4);
        let mut b = bufs(&dma, 3);
        read_and_kick(&mut q, &mut b, 3);
        assert_eq!(q.ready(8), 0);
        let mut chain = FakeChain::default();
        assert_eq!(serve_blk_packed(&mut dev, &mut chain, 0), 3);
        assert_eq!(q.ready(8), 3, "each chain's slots skipped");
        assert_eq!(q.ready(1), 1);
        assert_eq!(reap(&mut q).len(), 3);
        assert_eq!(q.ready(8), 0);
    }

    #[test]
    fn a_broken_ring_fails_everything_in_flight_once_and_keeps_the_buffers() {
        let (mut q, mut dev, dma) = blk_queue(4);
        for (i, buf) in bufs(&dma, 3).into_iter().enumerate() {
            q.submit(Unit::ONLY, Request::read(0, buf), i as u64)
                .unwrap();
        }
        q.kick();
        dev.put_used(999, 0);
        dev.publish_used();
        let got = reap(&mut q);
        assert_eq!(got.len(), 3);
        for (_, _, result, buffer_back) in &got {
            assert!(matches!(result, Err(IoError::QueueBroken(_))));
            assert!(!buffer_back, "the device may still write it: quarantined");
        }
        assert_eq!(q.quarantine.len(), 3);
        assert!(reap(&mut q).is_empty(), "failed once");
        let again = q
            .submit(Unit::ONLY, Request::read(0, one_buf(&dma)), 0)
            .unwrap_err();
        assert!(matches!(again.error, IoError::QueueBroken(_)));
    }

    #[test]
    fn run_one_parks_other_completions_for_the_next_poll() {
        let (mut q, dev, dma) = blk_queue(4);
        let mut b = bufs(&dma, 3);
        let first = q
            .submit(Unit::ONLY, Request::read(0, b.pop().unwrap()), 41)
            .unwrap();
        let second = q
            .submit(Unit::ONLY, Request::read(512, b.pop().unwrap()), 42)
            .unwrap();
        q.kick();
        // The device answers from another thread, as hardware does.
        let stop = Arc::new(AtomicBool::new(false));
        let device = {
            let stop = Arc::clone(&stop);
            let mut dev = dev;
            std::thread::spawn(move || {
                let mut chain = FakeChain::default();
                while !stop.load(Ordering::Acquire) {
                    serve_blk(&mut dev, &mut chain, 0);
                    std::thread::yield_now();
                }
            })
        };
        let (result, data) = q.run_one(Unit::ONLY, Request::read(1024, b.pop().unwrap()));
        assert_eq!(result, Ok(4096));
        assert!(matches!(data, Data::One(_)));
        // The two earlier reads completed meanwhile (the device serves in order): parked.
        let mut got = Vec::new();
        while got.len() < 2 {
            got.extend(reap(&mut q));
        }
        stop.store(true, Ordering::Release);
        device.join().unwrap();
        got.sort_by_key(|g| g.1);
        assert_eq!(
            got,
            [(first, 41, Ok(4096), true), (second, 42, Ok(4096), true)]
        );
        assert_eq!(q.in_flight(), 0);
    }

    #[test]
    fn poll_up_to_leaves_the_rest_for_later() {
        let (mut q, mut dev, dma) = blk_queue(4);
        for (i, buf) in bufs(&dma, 4).into_iter().enumerate() {
            q.submit(Unit::ONLY, Request::read(0, buf), i as u64)
                .unwrap();
        }
        q.kick();
        assert_eq!(serve_blk(&mut dev, &mut FakeChain::default(), 0), 4);
        let mut ctxs = Vec::new();
        assert_eq!(q.poll_up_to(3, |d| ctxs.push(*d.ctx)), 3);
        assert_eq!(q.poll_up_to(3, |d| ctxs.push(*d.ctx)), 1);
        assert_eq!(ctxs, [0, 1, 2, 3]);
    }

    #[test]
    fn a_request_run_one_gave_up_on_is_dropped_when_it_completes_late() {
        let (mut q, mut dev, dma) = blk_queue(4);
        q.set_control_timeout(Duration::from_millis(20));
        let (result, data) = q.run_one(Unit::ONLY, Request::read(0, one_buf(&dma)));
        assert!(
            matches!(&result, Err(e @ IoError::TimedOut { op: "read", .. })
                if e.to_string() == "read of 4096 bytes at offset 0 timed out after 20ms"),
            "{result:?}"
        );
        assert!(
            matches!(data, Data::None),
            "the device may still write the buffer"
        );
        assert_eq!(
            q.in_flight(),
            1,
            "the tag stays taken until the device answers"
        );
        // An ordinary request meanwhile, then the device answers both.
        let tag = q
            .submit(Unit::ONLY, Request::read(512, one_buf(&dma)), 8)
            .unwrap();
        q.kick();
        assert_eq!(serve_blk(&mut dev, &mut FakeChain::default(), 0), 2);
        assert_eq!(
            reap(&mut q),
            [(tag, 8, Ok(4096), true)],
            "only the live one"
        );
        assert_eq!(q.in_flight(), 0);
        assert_eq!(q.stats().completed, 2);
    }

    #[test]
    fn a_request_past_its_deadline_is_handed_out_as_timed_out_and_its_late_completion_dropped() {
        let (mut q, mut dev, dma) = blk_queue(4);
        q.set_request_timeout(Some(Duration::from_millis(150)));
        let slow = q
            .submit(Unit::ONLY, Request::read(4096, one_buf(&dma)), 7)
            .unwrap();
        q.kick();
        let started = std::time::Instant::now();
        let mut got = Vec::new();
        while got.is_empty() && started.elapsed() < Duration::from_secs(5) {
            got = reap(&mut q);
        }
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(150) && waited < Duration::from_millis(800),
            "{waited:?}"
        );
        let (tag, ctx, result, had_data) = got[0].clone();
        assert_eq!((tag, ctx, had_data), (slow, 7, false), "no buffers back");
        let error = result.unwrap_err();
        assert!(
            matches!(
                error,
                IoError::TimedOut {
                    op: "read",
                    offset: 4096,
                    len: 4096,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("timed out"), "{error}");
        assert_eq!(
            q.in_flight(),
            1,
            "the tag stays held until the device answers"
        );
        // Another request completes normally; the late answer to the slow one is dropped.
        let live = q
            .submit(Unit::ONLY, Request::read(0, one_buf(&dma)), 8)
            .unwrap();
        q.kick();
        assert_eq!(serve_blk(&mut dev, &mut FakeChain::default(), 0), 2);
        assert_eq!(reap(&mut q), [(live, 8, Ok(4096), true)]);
        assert_eq!(q.in_flight(), 0);
        assert_eq!((q.stats().completed, q.stats().errors), (2, 1));
    }

    #[test]
    fn without_a_timeout_a_request_waits_as_long_as_it_takes() {
        let (mut q, _dev, dma) = blk_queue(4);
        q.set_request_timeout(None);
        q.submit(Unit::ONLY, Request::read(0, one_buf(&dma)), 1)
            .unwrap();
        q.kick();
        let started = std::time::Instant::now();
        let kicks = q.stats().notifications;
        while started.elapsed() < Duration::from_millis(300) {
            assert!(reap(&mut q).is_empty());
        }
        assert_eq!(q.in_flight(), 1);
        // Epochs end with the request held and nothing completed: from the second look on,
        // each counts as a stall, and every look rings the doorbell again.
        while q.stats().stalls < 2 && started.elapsed() < Duration::from_secs(5) {
            assert!(reap(&mut q).is_empty());
        }
        let stats = q.stats();
        assert!(stats.stalls >= 2, "{stats:?}");
        assert_eq!(stats.notifications - kicks, stats.stalls + 1, "{stats:?}");
    }
}
