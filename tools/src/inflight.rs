//! The tools' one in-flight loop (`read`, `write`, `verify`): one hardware queue, a pool of
//! buffers and up to one request in flight per buffer. The tool says, through [`Job`], what
//! the next request is for a free buffer and what becomes of a finished one; buffers that
//! must go out in order (`read` to its output) wait until every earlier one has.
//!
//! Each round tops the queue up, kicks it, then waits and hands out completions as the tool's
//! [`Round`] says, until every request was submitted and handed back (and every buffer held
//! for the order went out).

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use uvio::block::{Data, IoError, Request, Unit};
use uvio::device::AnyQueue;

use crate::finished::{poll_into, Finished};
use crate::interrupt::Interrupted;

/// Where the loop's requests go: a hardware queue and the unit they are for. A trait so that
/// the loop's tests can play the device.
pub trait Lane {
    /// Submits `request` with `cookie` as its context; a refusal comes before any I/O.
    fn submit(&mut self, request: Request, cookie: u64) -> Result<(), IoError>;
    fn kick(&mut self);
    /// Polls once and appends what finished to `out`.
    fn poll_into(&mut self, out: &mut Vec<Finished>);
    /// True when nothing more completes until the device is reset (a broken queue that
    /// holds its requests for it).
    fn needs_reset(&self) -> bool {
        false
    }
    /// Resets the device and brings it back: what was in flight comes back cut short
    /// ([`IoError::DeviceReset`]) with its buffers, appended to `out`. Says what was done,
    /// or why it failed.
    fn restart(&mut self, _out: &mut Vec<Finished>) -> Result<String, String> {
        Err("this queue cannot reset its device".into())
    }
}

/// How often one run of the loop resets its device before it gives up: a device that keeps
/// needing a reset is not recovering.
const MAX_RESETS: u32 = 3;

impl Lane for (&mut AnyQueue<u64>, Unit) {
    fn submit(&mut self, request: Request, cookie: u64) -> Result<(), IoError> {
        // A refused request takes its buffer with it: the tool stops at a refusal.
        self.0
            .submit(self.1, request, cookie)
            .map(drop)
            .map_err(|r| r.error)
    }

    fn kick(&mut self) {
        self.0.kick();
    }

    fn poll_into(&mut self, out: &mut Vec<Finished>) {
        poll_into(self.0, out);
    }
}

/// What becomes of a finished request's buffer.
pub enum Freed<B> {
    /// Free for the next request.
    Now(B),
    /// Handed to [`Job::in_order`] once every request before sequence number `seq` has
    /// been, then free.
    InOrder(u64, B),
    /// Gone: the completion brought none back, or the tool does not trust it.
    Lost,
}

/// A tool's side of the loop.
pub trait Job {
    /// What a request is made over: a DMA buffer (with whatever the tool pairs it with).
    type Buf;
    type Error;

    /// The request with sequence number `seq` (0, 1, ... in submission order) over `buf`,
    /// and the cookie its completion comes back with.
    fn request(&mut self, seq: u64, buf: Self::Buf) -> Result<(Request, u64), Self::Error>;

    /// A finished request, in the order the [`Round`] hands them out.
    fn finished(&mut self, done: Finished) -> Result<Freed<Self::Buf>, Self::Error>;

    /// A buffer [`finished`](Self::finished) gave back as [`Freed::InOrder`], in sequence
    /// order, before it is used again.
    fn in_order(&mut self, _buf: &Self::Buf) -> Result<(), Self::Error> {
        Ok(())
    }

    /// The request with cookie `cookie` again, over the buffers it came back with, after a
    /// device reset cut it short; `None` if it is not to be sent again (it then goes to
    /// [`finished`](Self::finished) with its error).
    fn resend(&mut self, _cookie: u64, _data: &mut Data) -> Option<Request> {
        None
    }
}

/// How a round waits for completions and which it hands out.
#[derive(Debug, Clone, Copy)]
pub enum Round {
    /// Spin until something has completed and hand out one completion, the last one polled
    /// (the rest wait, newest first, for the next rounds), topping up after each. No time
    /// limit. For the tools that stop at the first failure (`read`, `write`), in the order
    /// they always took completions: of several failures polled at once, the newest is the
    /// one reported.
    One,
    /// Poll once and hand out everything polled, oldest first; stop when nothing has
    /// completed for `stall`. For `verify`, which checks every completion and counts the
    /// lost.
    All { stall: Duration },
}

/// Why the loop stopped before every request was handed back.
#[derive(Debug)]
pub enum Stop<E> {
    /// The tool's own error, from [`Job`].
    Job(E),
    /// The queue refused a request (before any I/O for it).
    Refused(IoError),
    /// Nothing completed for the [`Round::All`] limit: this many requests are lost.
    Stalled(u64),
    /// SIGINT or SIGTERM arrived, or the device was removed (see [`crate::interrupt`]).
    Interrupted(Interrupted),
    /// The device needed a reset and could not be brought back, or needed too many.
    Reset(String),
}

impl<E: fmt::Display> fmt::Display for Stop<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Job(e) => e.fmt(f),
            Stop::Refused(e) => e.fmt(f),
            Stop::Stalled(lost) => write!(f, "{lost} requests never completed (lost)"),
            Stop::Interrupted(i) => i.fmt(f),
            Stop::Reset(e) => f.write_str(e),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for Stop<E> {}

impl Stop<Box<dyn std::error::Error>> {
    /// The error a tool exits with: its own as it made it, the queue's as the queue said it.
    pub fn into_error(self) -> Box<dyn std::error::Error> {
        match self {
            Stop::Job(e) => e,
            Stop::Refused(e) => e.into(),
            stalled @ Stop::Stalled(_) => Box::new(stalled),
            Stop::Interrupted(i) => Box::new(i),
            reset @ Stop::Reset(_) => Box::new(reset),
        }
    }
}

/// Up to one request in flight per buffer of a pool, on one lane.
pub struct InFlight<L, B> {
    lane: L,
    /// Buffers no request holds (the last one pushed is used first).
    free: Vec<B>,
    /// Buffers waiting for every earlier sequence number ([`Freed::InOrder`]).
    parked: BTreeMap<u64, B>,
    /// The sequence number the next buffer in order must have.
    next_in_order: u64,
    /// Completions polled and not yet handed out.
    done: Vec<Finished>,
    submitted: u64,
    handed_out: u64,
    /// Device resets so far.
    resets: u32,
}

impl<L: Lane, B> InFlight<L, B> {
    pub fn new(lane: L, buffers: Vec<B>) -> Self {
        let depth = buffers.len();
        InFlight {
            lane,
            free: buffers,
            parked: BTreeMap::new(),
            next_in_order: 0,
            done: Vec::with_capacity(depth),
            submitted: 0,
            handed_out: 0,
            resets: 0,
        }
    }

    /// Submits `total` requests made by `job` and hands every completion back to it.
    pub fn run<J: Job<Buf = B>>(
        mut self,
        job: &mut J,
        total: u64,
        round: Round,
    ) -> Result<(), Stop<J::Error>> {
        let mut last_progress = Instant::now();
        // Every request is handed out once, so nothing stays parked once all are; the check
        // only makes "done" mean "every buffer in order went out" too.
        while self.handed_out < total || !self.parked.is_empty() {
            self.top_up(job, total)?;
            match round {
                Round::One => {
                    let done = self.wait_one()?;
                    self.hand_out(job, done)?;
                }
                Round::All { stall } => {
                    self.check_signal()?;
                    self.lane.poll_into(&mut self.done);
                    if !self.done.is_empty() {
                        last_progress = Instant::now();
                    } else if self.lane.needs_reset() {
                        self.restart()?;
                        last_progress = Instant::now();
                    } else if last_progress.elapsed() > stall {
                        return Err(Stop::Stalled(self.submitted - self.handed_out));
                    }
                    let mut batch = std::mem::take(&mut self.done);
                    for done in batch.drain(..) {
                        self.hand_out(job, done)?;
                    }
                    // The vector goes back for the next poll, with its capacity.
                    self.done = batch;
                }
            }
        }
        Ok(())
    }

    /// Submits requests while some are left and a buffer is free, then kicks.
    fn top_up<J: Job<Buf = B>>(&mut self, job: &mut J, total: u64) -> Result<(), Stop<J::Error>> {
        while self.submitted < total {
            let Some(buf) = self.free.pop() else { break };
            let (request, cookie) = job.request(self.submitted, buf).map_err(Stop::Job)?;
            self.lane.submit(request, cookie).map_err(Stop::Refused)?;
            self.submitted += 1;
        }
        self.lane.kick();
        Ok(())
    }

    /// The last completion polled, polling until there is one.
    /// Waits for a completion. The queue's request deadline bounds the wait: a request past
    /// it comes back timed out.
    fn wait_one<E>(&mut self) -> Result<Finished, Stop<E>> {
        loop {
            if let Some(done) = self.done.pop() {
                return Ok(done);
            }
            self.check_signal()?;
            self.lane.poll_into(&mut self.done);
            if self.done.is_empty() && self.lane.needs_reset() {
                self.restart()?;
            }
            std::hint::spin_loop();
        }
    }

    /// Resets the device (see [`Lane::restart`]) and says so on stderr: what was in flight
    /// comes back from the next polls, cut short, to be sent again.
    fn restart<E>(&mut self) -> Result<(), Stop<E>> {
        self.resets += 1;
        if self.resets > MAX_RESETS {
            return Err(Stop::Reset(format!(
                "the device needed a reset {MAX_RESETS} times in one run: giving up"
            )));
        }
        let done = self.lane.restart(&mut self.done).map_err(Stop::Reset)?;
        eprintln!("uvio: {done}");
        Ok(())
    }

    /// Stops the loop once SIGINT or SIGTERM arrived or the device was removed (two atomic
    /// loads). On a removal, what is in flight fails with "device removed".
    fn check_signal<E>(&self) -> Result<(), Stop<E>> {
        if !crate::interrupt::requested() {
            return Ok(());
        }
        match crate::interrupt::cause() {
            Some(cause) => Err(Stop::Interrupted(Interrupted {
                cause,
                in_flight: self.submitted - self.handed_out,
            })),
            None => Ok(()),
        }
    }

    fn hand_out<J: Job<Buf = B>>(
        &mut self,
        job: &mut J,
        mut done: Finished,
    ) -> Result<(), Stop<J::Error>> {
        if matches!(done.result, Err(IoError::DeviceReset { .. })) {
            if let Some(request) = job.resend(done.cookie, &mut done.data) {
                // Not handed out: it is in flight again.
                return self
                    .lane
                    .submit(request, done.cookie)
                    .map_err(Stop::Refused);
            }
        }
        self.handed_out += 1;
        match job.finished(done).map_err(Stop::Job)? {
            Freed::Now(buf) => self.free.push(buf),
            Freed::InOrder(seq, buf) => {
                self.parked.insert(seq, buf);
                while let Some(buf) = self.parked.remove(&self.next_in_order) {
                    job.in_order(&buf).map_err(Stop::Job)?;
                    self.free.push(buf);
                    self.next_in_order += 1;
                }
            }
            Freed::Lost => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A device that completes what was kicked when polled, `per_poll` at a time, oldest
    /// first, failing the cookies in `fail`; it refuses the cookies in `refuse`, and never
    /// completes anything when `stuck`.
    #[derive(Default)]
    struct Fake {
        queued: Vec<u64>,
        visible: Vec<u64>,
        per_poll: usize,
        fail: Vec<u64>,
        refuse: Vec<u64>,
        stuck: bool,
        most_in_flight: usize,
    }

    impl Lane for &mut Fake {
        fn submit(&mut self, _request: Request, cookie: u64) -> Result<(), IoError> {
            if self.refuse.contains(&cookie) {
                return Err(IoError::QueueFull(1));
            }
            self.queued.push(cookie);
            let in_flight = self.queued.len() + self.visible.len();
            self.most_in_flight = self.most_in_flight.max(in_flight);
            Ok(())
        }

        fn kick(&mut self) {
            self.visible.append(&mut self.queued);
        }

        fn poll_into(&mut self, out: &mut Vec<Finished>) {
            if self.stuck {
                return;
            }
            for _ in 0..self.per_poll {
                if self.visible.is_empty() {
                    break;
                }
                let cookie = self.visible.remove(0);
                let result = if self.fail.contains(&cookie) {
                    // The cookie in the error tells the failures apart.
                    Err(IoError::ShortTransfer {
                        written: cookie as u32,
                        expected: 4096,
                    })
                } else {
                    Ok(0)
                };
                out.push(Finished {
                    cookie,
                    tag: cookie as u16,
                    result,
                    data: Data::None,
                });
            }
        }
    }

    /// Numbered buffers; records what it saw. Its cookie is the sequence number plus 100.
    #[derive(Default)]
    struct Record {
        ordered: bool,
        lent: HashMap<u64, u32>,
        finished: Vec<u64>,
        in_order: Vec<u32>,
    }

    impl Job for Record {
        type Buf = u32;
        type Error = String;

        fn request(&mut self, seq: u64, buf: u32) -> Result<(Request, u64), String> {
            self.lent.insert(seq + 100, buf);
            Ok((Request::flush(), seq + 100))
        }

        fn finished(&mut self, done: Finished) -> Result<Freed<u32>, String> {
            self.finished.push(done.cookie);
            done.result.map_err(|e| e.to_string())?;
            let buf = self.lent.remove(&done.cookie).ok_or("unknown cookie")?;
            Ok(if self.ordered {
                Freed::InOrder(done.cookie - 100, buf)
            } else {
                Freed::Now(buf)
            })
        }

        fn in_order(&mut self, buf: &u32) -> Result<(), String> {
            self.in_order.push(*buf);
            Ok(())
        }
    }

    fn run(fake: &mut Fake, job: &mut Record, total: u64, round: Round) -> Result<(), String> {
        InFlight::new(fake, vec![0, 1, 2])
            .run(job, total, round)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn keeps_the_pool_in_flight_and_hands_out_in_order() {
        let mut fake = Fake {
            per_poll: 2,
            ..Default::default()
        };
        let mut job = Record {
            ordered: true,
            ..Default::default()
        };
        run(&mut fake, &mut job, 7, Round::One).unwrap();
        assert_eq!(fake.most_in_flight, 3);
        // One per round, the last polled first: the poll found 100 and 101.
        assert_eq!(&job.finished[..2], &[101, 100]);
        let mut all = job.finished.clone();
        all.sort_unstable();
        assert_eq!(all, (100..107).collect::<Vec<_>>());
        // Buffers 2, 1, 0 went out first (the pool is a stack), in sequence order.
        assert_eq!(job.in_order.len(), 7);
        assert_eq!(&job.in_order[..3], &[2, 1, 0]);
    }

    #[test]
    fn round_all_hands_out_a_whole_poll_oldest_first() {
        let mut fake = Fake {
            per_poll: 3,
            ..Default::default()
        };
        let mut job = Record::default();
        run(
            &mut fake,
            &mut job,
            5,
            Round::All {
                stall: Duration::from_secs(5),
            },
        )
        .unwrap();
        assert_eq!(job.finished, [100, 101, 102, 103, 104]);
    }

    #[test]
    fn the_first_failure_handed_out_stops_the_loop() {
        let mut fake = Fake {
            per_poll: 3,
            fail: vec![100, 101],
            ..Default::default()
        };
        let mut job = Record::default();
        let error = run(&mut fake, &mut job, 9, Round::One).unwrap_err();
        // The poll found all three; 102 went out first and the round topped up.
        assert_eq!(
            error,
            "the device reported 101 bytes written, expected 4096"
        );
        assert_eq!(job.finished, [102, 101]);
    }

    #[test]
    fn refusals_and_stalls_stop_the_loop() {
        let mut fake = Fake {
            per_poll: 1,
            refuse: vec![104],
            ..Default::default()
        };
        let mut job = Record::default();
        let error = run(&mut fake, &mut job, 9, Round::One).unwrap_err();
        assert_eq!(error, IoError::QueueFull(1).to_string());

        let mut fake = Fake {
            stuck: true,
            ..Default::default()
        };
        let error = run(
            &mut fake,
            &mut Record::default(),
            9,
            Round::All {
                stall: Duration::ZERO,
            },
        )
        .unwrap_err();
        assert_eq!(error, "3 requests never completed (lost)");
    }
}
