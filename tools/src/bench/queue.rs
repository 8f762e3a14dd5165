//! The hardware queue a job thread drives: its own (the normal case: no lock), or, only when
//! a device has fewer queues than the group has threads, one shared behind a mutex. A shared
//! queue hands each completion to the thread whose cookie it carries (the thread's slot in
//! the high 32 bits), through per-thread mailboxes sized up front.

use std::sync::{Arc, Mutex};

use uvio::block::{Completion, HwQueue, QueueStats, Rejected, Request};

/// A queue shared by several job threads (the reported fallback).
#[derive(Debug)]
pub struct Shared {
    queue: HwQueue,
    scratch: Vec<Completion>,
    mailboxes: Vec<Vec<Completion>>,
}

impl Shared {
    /// Wraps `queue` for `threads` users.
    pub fn new(queue: HwQueue, threads: usize) -> Arc<Mutex<Shared>> {
        let depth = usize::from(queue.depth());
        Arc::new(Mutex::new(Shared {
            queue,
            scratch: Vec::with_capacity(depth),
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
    Owned(HwQueue),
    /// A shared queue and this thread's mailbox index.
    Shared(Arc<Mutex<Shared>>, usize),
}

impl QueueHandle {
    /// The cookie bits that route completions to this thread.
    pub fn cookie_base(&self) -> u64 {
        match self {
            QueueHandle::Owned(_) => 0,
            QueueHandle::Shared(_, me) => (*me as u64) << 32,
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

    pub fn is_shared(&self) -> bool {
        matches!(self, QueueHandle::Shared(..))
    }

    // why: the same signature as `HwQueue::submit`, which hands a refused request back.
    #[allow(clippy::result_large_err)]
    #[inline]
    pub fn submit(&mut self, request: Request) -> Result<u16, Rejected> {
        match self {
            QueueHandle::Owned(q) => q.submit(request),
            QueueHandle::Shared(s, _) => lock(s).queue.submit(request),
        }
    }

    #[inline]
    pub fn kick(&mut self) {
        match self {
            QueueHandle::Owned(q) => q.kick(),
            QueueHandle::Shared(s, _) => lock(s).queue.kick(),
        }
    }

    /// Appends this thread's completions to `out` (room for the thread's depth).
    #[inline]
    pub fn poll(&mut self, out: &mut Vec<Completion>) -> usize {
        match self {
            QueueHandle::Owned(q) => q.poll(out),
            QueueHandle::Shared(s, me) => {
                let mut guard = lock(s);
                let Shared {
                    queue,
                    scratch,
                    mailboxes,
                } = &mut *guard;
                queue.poll(scratch);
                for c in scratch.drain(..) {
                    let owner = (c.cookie >> 32) as usize;
                    if let Some(mailbox) = mailboxes.get_mut(owner) {
                        mailbox.push(c);
                    }
                }
                let mine = &mut mailboxes[*me];
                let n = mine.len();
                out.append(mine);
                n
            }
        }
    }
}

fn lock(s: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}
