//! Requests prepared ahead in spare tags (see [`Engine`]): submitted into the ring while the
//! device works, then released by a kick when a completion makes room. And the backlog of an
//! iodepth beyond the tags: I/Os issued that wait for a tag.

use super::submit::Feed;
use super::Engine;
use crate::bench::queue::{IssueStamp, QueueHandle};
use crate::bench::stats::{batch_bucket, depth_bucket};

impl Engine {
    /// Releases what was prepared ahead, as room allows: it costs only the kick. (Even when
    /// no longer issuing: a prepared request is in the ring and must complete.) `done`
    /// requests in flight are known finished and not yet handled: their room counts.
    /// Returns when the last release was issued, if any was.
    #[inline]
    pub(super) fn release_staged(
        &mut self,
        queue: &mut QueueHandle,
        record: bool,
        done: u32,
    ) -> Option<u64> {
        let clock = self.clock;
        let mut released = None;
        while !self.staged.is_empty() && self.in_flight < self.depth + done {
            let want = (self.staged.len() as u32)
                .min(self.depth + done - self.in_flight)
                .min(self.batch_submit);
            let t_a = clock.now();
            let n = u32::from(queue.kick_up_to(want as u16));
            let issued = clock.now();
            if n == 0 {
                break;
            }
            // Empty: a batch is cleared once its kick stamped it.
            debug_assert!(self.batch.is_empty());
            self.batch.extend(self.staged.drain(..n as usize));
            queue.stamp_issued(&self.batch, self.issue_stamp(t_a, issued, true));
            self.batch.clear();
            if record {
                for _ in 0..n {
                    self.in_flight += 1;
                    self.stats.io_depth[depth_bucket(self.job_depth(done))] += 1;
                }
                self.stats.submit[batch_bucket(n)] += 1;
                self.stats.submit_calls += 1;
            } else {
                self.in_flight += n;
            }
            if let Some(st) = &mut self.stages {
                st.kick += issued.saturating_sub(t_a);
                st.requests += u64::from(n);
            }
            released = Some(issued);
        }
        if released.is_some() {
            // The device is busy with them: now do the last round's bookkeeping.
            self.bookkeeping();
        }
        released
    }

    /// Prepares the next requests while the device works on those in flight, up to
    /// `stage_max`; false when the source is done.
    #[inline]
    pub(super) fn prepare_staged(&mut self, feed: &mut Feed<'_>) -> bool {
        let clock = self.clock;
        let t_s = if self.stages.is_some() {
            clock.now()
        } else {
            0
        };
        let room = self.stage_max.saturating_sub(self.staged.len() as u32);
        let (_, source_done) = self.submit_up_to(feed, room, true);
        if let Some(st) = &mut self.stages {
            st.submit += clock.now().saturating_sub(t_s);
        }
        !source_done
    }

    /// At a phase's start: the job issues its whole iodepth at `now`; what the queue does not
    /// already hold waits in the backlog (nothing without one).
    pub(super) fn fill_backlog(&mut self, now: u64) {
        self.backlog.clear();
        let held = self.in_flight + self.staged.len() as u32;
        for _ in held..self.outstanding {
            self.backlog.push_back(now);
        }
    }

    /// A completion at `now`: the job issues its next I/O, which waits in the backlog (when
    /// the job keeps one) until a tag takes it.
    #[inline]
    pub(super) fn issue_into_backlog(&mut self, now: u64) {
        let held = self.in_flight + (self.staged.len() + self.backlog.len()) as u32;
        if held < self.outstanding {
            self.backlog.push_back(now);
        }
    }

    /// How a batch put in the ring from `since` and visible from `issued` is stamped: with a
    /// backlog, each was issued when it entered it and keeps that time, the wait being
    /// completion latency; without, a prepared request is issued when released.
    #[inline]
    pub(super) fn issue_stamp(&self, since: u64, issued: u64, prepared: bool) -> IssueStamp {
        if self.outstanding > 0 {
            IssueStamp::AfterWaiting {
                cost: issued.saturating_sub(since),
            }
        } else if prepared {
            IssueStamp::Released {
                start: since,
                issued,
            }
        } else {
            IssueStamp::At(issued)
        }
    }

    /// The I/Os the job holds, for fio's depth histogram (its `cur_depth`): those the device
    /// can see and has not finished (`done` of them have finished), or with a backlog, the
    /// whole iodepth, which the job always holds.
    #[inline]
    pub(super) fn job_depth(&self, done: u32) -> u32 {
        if self.outstanding > 0 {
            self.outstanding
        } else {
            self.in_flight.saturating_sub(done)
        }
    }
}
