//! Where a phase's I/Os come from ([`Source`]: the workload, or a read-back of what it
//! wrote) and how each becomes a request in the queue, within the phase's [`Budget`].

use uvio::block::{Data, IoError, Request};

use super::{Engine, Inflight};
use crate::bench::options::Ddir;
use crate::bench::queue::QueueHandle;
use crate::bench::stats::depth_bucket;
use crate::bench::verify::Stamp;
use crate::bench::workload::{mix, NextIo, Workload};

/// The bytes a phase may issue (`None`: no limit) and has issued.
pub(super) struct Budget {
    pub(super) limit: Option<u64>,
    pub(super) issued: u64,
}

/// One pass of submissions: where its I/Os come from and go.
pub(super) struct Feed<'a> {
    pub(super) queue: &'a mut QueueHandle,
    pub(super) source: &'a mut Source,
    pub(super) budget: &'a mut Budget,
    /// The time the pass's requests are stamped with.
    pub(super) now: u64,
    /// Whether they count in the statistics (false while ramping up).
    pub(super) record: bool,
    /// Whether the job's pacing applies (its own workload, not a verify read-back).
    pub(super) paced: bool,
}

/// What [`Engine::submit_next`] did.
pub(super) enum Submitted {
    Yes,
    /// The queue had no room: the I/O is kept for the next try.
    NoRoom,
    /// The source ran out or the phase's byte limit was reached: stop issuing.
    SourceDone,
}

/// Where the I/Os of a phase come from.
pub(super) enum Source {
    /// The job's workload; writes are stamped with a sequence number when verifying.
    Workload(Workload),
    /// Re-reading the first `remaining` writes of a workload, in the order written.
    Replay {
        workload: Workload,
        remaining: u64,
        sequence: u64,
        check_seed: bool,
    },
    /// Reading `next..end` in blocks of `bs`.
    Sweep { next: u64, end: u64, bs: u64 },
}

impl Engine {
    #[inline]
    fn next_io(&mut self, source: &mut Source) -> Option<(NextIo, Option<u64>)> {
        if let Some(p) = self.pending.take() {
            return Some(p);
        }
        match source {
            Source::Workload(w) => Some((w.next_io(), None)),
            Source::Replay {
                workload,
                remaining,
                sequence,
                check_seed,
            } => {
                if *remaining == 0 {
                    return None;
                }
                *remaining -= 1;
                let mut io = workload.next_io();
                io.ddir = Ddir::Read;
                let expect = check_seed.then(|| mix(self.seed ^ *sequence));
                *sequence += 1;
                Some((io, expect))
            }
            Source::Sweep { next, end, bs } => {
                if *next + *bs > *end {
                    return None;
                }
                let io = NextIo {
                    ddir: Ddir::Read,
                    offset: *next,
                    len: *bs,
                };
                *next += *bs;
                Some((io, None))
            }
        }
    }

    /// Submits up to `want` I/Os of the feed (`stage`: prepared ahead, released later);
    /// how many, and whether the source is done.
    #[inline]
    pub(super) fn submit_up_to(
        &mut self,
        feed: &mut Feed<'_>,
        want: u32,
        stage: bool,
    ) -> (u32, bool) {
        let mut n = 0;
        while n < want {
            match self.submit_next(feed, stage) {
                Submitted::Yes => n += 1,
                Submitted::NoRoom => break,
                Submitted::SourceDone => return (n, true),
            }
        }
        (n, false)
    }

    /// Takes the next I/O of the feed's source within its budget and submits it.
    #[inline]
    fn submit_next(&mut self, feed: &mut Feed<'_>, stage: bool) -> Submitted {
        let budget = &mut *feed.budget;
        if budget.limit.is_some_and(|l| budget.issued >= l) {
            return Submitted::SourceDone;
        }
        let Some((io, expect)) = self.next_io(feed.source) else {
            return Submitted::SourceDone;
        };
        let (mut io, mut expect) = (io, expect);
        if feed.paced {
            if let Some(p) = &mut self.pacer {
                let now = self.clock.now();
                if let Err(hold) = p.ready(io.ddir, now, self.in_flight) {
                    // fio's `rate_ddir`: a mix's other direction goes instead if its rate
                    // lets it (the held I/O is drawn again later).
                    let other = match io.ddir {
                        Ddir::Read => Ddir::Write,
                        Ddir::Write => Ddir::Read,
                        Ddir::Trim => Ddir::Trim,
                    };
                    match feed.source {
                        Source::Workload(w)
                            if w.mixed()
                                && other != io.ddir
                                && p.ready(other, now, self.in_flight).is_ok() =>
                        {
                            io = w.next_io_in(other);
                            expect = None;
                        }
                        _ => {
                            // Not yet: kept for the next try, as a queue without room keeps it.
                            self.pending = Some((io, expect));
                            self.held = Some(hold);
                            return Submitted::NoRoom;
                        }
                    }
                }
                self.held = None;
            }
        }
        if !self.submit_one(feed.queue, io, expect, feed.now, feed.record, stage) {
            return Submitted::NoRoom;
        }
        if feed.paced {
            if let Some(p) = &mut self.pacer {
                p.issued(io.ddir, io.len);
            }
        }
        feed.budget.issued += io.len;
        Submitted::Yes
    }

    /// Builds and submits one request (`stage`: prepared ahead, released later); false if the
    /// queue had no room (retry later).
    #[inline]
    fn submit_one(
        &mut self,
        queue: &mut QueueHandle,
        io: NextIo,
        expect: Option<u64>,
        now: u64,
        record: bool,
        stage: bool,
    ) -> bool {
        let request = match io.ddir {
            Ddir::Trim => Request::discard(io.offset, io.len),
            Ddir::Read | Ddir::Write => {
                let Some(mut buf) = self.free.pop() else {
                    self.pending = Some((io, expect));
                    return false;
                };
                buf.set_len(io.len as usize);
                if io.ddir == Ddir::Read {
                    Request::read(io.offset, buf)
                } else {
                    if let Some(v) = &self.verifier {
                        let stamp = Stamp {
                            offset: io.offset,
                            seed: mix(self.seed ^ self.writes),
                            sequence: self.writes,
                        };
                        v.fill(buf.as_mut_slice(), stamp);
                    }
                    Request::write(io.offset, buf)
                }
            }
        };
        // Issued when it entered the backlog, if it waited in one.
        let start = self.backlog.front().copied().unwrap_or(now);
        let ctx = Inflight {
            start,
            issued: now,
            ddir: io.ddir,
            offset: io.offset,
            len: io.len,
            expect,
            owner: self.owner,
        };
        let t_submit = if self.stages.is_some() {
            self.clock.now()
        } else {
            0
        };
        let submitted = queue.submit(self.unit, request, ctx);
        if let Some(st) = &mut self.stages {
            st.driver_submit += self.clock.now().saturating_sub(t_submit);
        }
        match submitted {
            Ok(tag) => {
                self.backlog.pop_front();
                if io.ddir == Ddir::Write && self.verifier.is_some() {
                    self.writes += 1;
                }
                if stage {
                    self.staged.push_back(tag);
                    return true;
                }
                self.in_flight += 1;
                self.batch.push(tag);
                if record {
                    self.stats.io_depth[depth_bucket(self.job_depth(0))] += 1;
                }
                true
            }
            Err(rejected) => {
                if let Data::One(b) = rejected.request.data {
                    self.free.push(b);
                }
                if matches!(rejected.error, IoError::QueueFull(_)) {
                    self.pending = Some((io, expect));
                } else {
                    self.fail(
                        format!(
                            "{} of {} bytes at offset {} refused: {}",
                            io.ddir.name(),
                            io.len,
                            io.offset,
                            rejected.error
                        ),
                        5,
                    );
                }
                false
            }
        }
    }
}
