//! The hardware queue a job thread drives: its own (the normal case: no lock), or, only when
//! a device has fewer queues than the group has threads, one shared behind a mutex. A shared
//! queue hands each completion to the thread that submitted it (the `owner` in the request's
//! context), through per-thread mailboxes sized up front.

use std::sync::{Arc, Mutex};

use uvio::block::{Data, IoError, QueueStats, Rejected, Request, Unit};
use uvio::device::AnyQueue;

use super::engine::Inflight;

/// How a batch's issue time (where submission latency ends and completion latency begins)
/// is set once its kick has made it visible.
#[derive(Debug, Clone, Copy)]
pub enum IssueStamp {
    /// Issued at this tick (submitted when the job issued it).
    At(u64),
    /// Prepared ahead and released now: the job issues it at `start` (the release), and the
    /// device could see it from `issued`.
    Released { start: u64, issued: u64 },
    /// Waited for a tag after the job issued it (its start): as fio counts a request that
    /// waits in libblkio's queue, the wait is completion latency, and submission latency is
    /// only the `cost` (ticks) of putting it in the ring.
    AfterWaiting { cost: u64 },
}

/// A completion parked in a mailbox of a shared queue for the thread that submitted it.
#[derive(Debug)]
pub struct Mailed {
    ctx: Inflight,
    tag: u16,
    result: Result<u64, IoError>,
    data: Data,
}

/// A queue shared by several job threads (the reported fallback).
#[derive(Debug)]
pub struct Shared {
    queue: AnyQueue<Inflight>,
    mailboxes: Vec<Vec<Mailed>>,
}

impl Shared {
    /// Wraps `queue` for `threads` users.
    pub fn new(queue: AnyQueue, threads: usize) -> Arc<Mutex<Shared>> {
        let depth = usize::from(queue.depth());
        Arc::new(Mutex::new(Shared {
            queue: queue.with_context(),
            mailboxes: (0..threads).map(|_| Vec::with_capacity(depth)).collect(),
        }))
    }
}

/// The queue of one job thread.
// why: one per thread, moved once into it; boxing the common case would add an indirection
// to every submit and poll for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum QueueHandle {
    Owned(AnyQueue<Inflight>),
    /// A shared queue and this thread's mailbox index.
    Shared(Arc<Mutex<Shared>>, usize),
}

impl QueueHandle {
    /// The mailbox that completions of this thread's requests go to (0 for an own queue).
    pub fn owner(&self) -> u32 {
        match self {
            QueueHandle::Owned(_) => 0,
            QueueHandle::Shared(_, me) => *me as u32,
        }
    }

    pub fn index(&self) -> u16 {
        match self {
            QueueHandle::Owned(q) => q.index(),
            QueueHandle::Shared(s, _) => lock(s).queue.index(),
        }
    }

    /// The hardware queue's counters (the whole queue's when shared).
    pub fn stats(&self) -> QueueStats {
        match self {
            QueueHandle::Owned(q) => q.stats(),
            QueueHandle::Shared(s, _) => lock(s).queue.stats(),
        }
    }

    /// The ring format of the hardware queue (`split` or `packed`).
    pub fn ring_format(&self) -> &'static str {
        match self {
            QueueHandle::Owned(q) => q.ring_format(),
            QueueHandle::Shared(s, _) => lock(s).queue.ring_format(),
        }
    }

    pub fn is_shared(&self) -> bool {
        matches!(self, QueueHandle::Shared(..))
    }

    // why: the same signature as `HwQueue::submit`, which hands a refused request back.
    #[allow(clippy::result_large_err)]
    #[inline]
    pub fn submit(
        &mut self,
        unit: Unit,
        request: Request,
        ctx: Inflight,
    ) -> Result<u16, Rejected<Inflight>> {
        match self {
            QueueHandle::Owned(q) => q.submit(unit, request, ctx),
            QueueHandle::Shared(s, _) => lock(s).queue.submit(unit, request, ctx),
        }
    }

    #[inline]
    pub fn kick(&mut self) {
        match self {
            QueueHandle::Owned(q) => q.kick(),
            QueueHandle::Shared(s, _) => lock(s).queue.kick(),
        }
    }

    /// Makes the `max` oldest staged requests visible (see [`HwQueue::kick_up_to`]); returns
    /// how many.
    #[inline]
    pub fn kick_up_to(&mut self, max: u16) -> u16 {
        match self {
            QueueHandle::Owned(q) => q.kick_up_to(max),
            QueueHandle::Shared(s, _) => lock(s).queue.kick_up_to(max),
        }
    }

    /// Completions waiting to be polled, up to `max` (see [`HwQueue::ready`]).
    #[inline]
    pub fn ready(&self, max: u16) -> u16 {
        match self {
            QueueHandle::Owned(q) => q.ready(max),
            QueueHandle::Shared(s, _) => lock(s).queue.ready(max),
        }
    }

    /// Doorbell batching on an own queue (see [`HwQueue::set_notify_batching`]); a shared
    /// queue notifies whenever asked, as its other users may not be polling.
    pub fn set_notify_batching(&mut self, on: bool) {
        if let QueueHandle::Owned(q) = self {
            q.set_notify_batching(on);
        }
    }

    /// Tags per hardware queue.
    pub fn depth(&self) -> u16 {
        match self {
            QueueHandle::Owned(q) => q.depth(),
            QueueHandle::Shared(s, _) => lock(s).queue.depth(),
        }
    }

    /// Sets the issue time of the requests under `tags`, after the kick that made them
    /// visible (see [`IssueStamp`]).
    #[inline]
    pub fn stamp_issued(&mut self, tags: &[u16], how: IssueStamp) {
        let stamp = |q: &mut AnyQueue<Inflight>| {
            for &t in tags {
                if let Some(ctx) = q.context_mut(t) {
                    match how {
                        IssueStamp::At(issued) => ctx.issued = issued,
                        IssueStamp::Released { start, issued } => {
                            ctx.start = start;
                            ctx.issued = issued;
                        }
                        IssueStamp::AfterWaiting { cost } => {
                            ctx.issued = ctx.start.saturating_add(cost)
                        }
                    }
                }
            }
        };
        match self {
            QueueHandle::Owned(q) => stamp(q),
            QueueHandle::Shared(s, _) => stamp(&mut lock(s).queue),
        }
    }

    /// Hands at most `max` of this thread's completions to `each` (context, result, buffers
    /// and the tag it ran under); returns how many.
    #[inline]
    pub fn poll(
        &mut self,
        max: usize,
        mut each: impl FnMut(&Inflight, Result<u64, IoError>, Data, u16),
    ) -> usize {
        match self {
            QueueHandle::Owned(q) => q.poll_up_to(max, |d| each(d.ctx, d.result, d.data, d.tag)),
            QueueHandle::Shared(s, me) => {
                let mut guard = lock(s);
                let Shared { queue, mailboxes } = &mut *guard;
                queue.poll(|d| {
                    if let Some(mailbox) = mailboxes.get_mut(d.ctx.owner as usize) {
                        mailbox.push(Mailed {
                            ctx: *d.ctx,
                            tag: d.tag,
                            result: d.result,
                            data: d.data,
                        });
                    }
                });
                let mine = &mut mailboxes[*me];
                let n = mine.len().min(max);
                for m in mine.drain(..n) {
                    each(&m.ctx, m.result, m.data, m.tag);
                }
                n
            }
        }
    }
}

fn lock(s: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}
