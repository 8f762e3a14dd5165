//! The per-thread I/O loop. Each job clone runs [`run_clone`] on its own thread with its own
//! hardware queue, buffers and statistics: it keeps `iodepth` requests in flight, submits in
//! batches of `iodepth_batch_submit` with one kick per batch, busy-polls for at least
//! `iodepth_batch_complete_min` completions and handles at most `..._max` per reap, and
//! records slat/clat/lat per I/O. Phases: ramp (not recorded), the measured run, then for a
//! write job with `verify`, a read-back of what it wrote.
//!
//! Each request's own state ([`Inflight`]: timestamps, direction, range) lives in its tag's
//! record in the hardware queue and comes back with the completion, so the engine keeps no
//! slot table of its own: only the free buffers. The loop allocates nothing and takes no
//! lock (a shared queue, the reported fallback, excepted): buffers and the batch list are
//! sized before the start barrier, and progress is published with relaxed atomic stores.
//!
//! The completion poll spins without a PAUSE instruction: QEMU's TCG implements PAUSE by
//! leaving translated code, which halved IOPS at iodepth 1 in a TCG guest (measured: 22k
//! with it, 44k without). `UVIO_BENCH_PAUSE=1` puts it back.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use uvio::block::{Data, IoError, Request, Unit};
use uvio::dma::DmaBuf;

use super::clock::Clock;
use super::options::{Ddir, JobOptions, RwMode};
use super::queue::QueueHandle;
use super::stats::{batch_bucket, depth_bucket, CpuUsage, JobStats};
use super::verify::{Stamp, Verifier};
use super::workload::{mix, NextIo, Workload};

/// How long in-flight requests may go without any completing before they count as lost.
const LOST_TIMEOUT: Duration = Duration::from_secs(30);
/// fio's bandwidth/IOPS sampling interval (`bwavgtime`, `iopsavgtime`).
const SAMPLE_INTERVAL: Duration = Duration::from_millis(500);

/// What a running job shows the status line (written by its thread only).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Progress {
    /// [`Phase`] as a number.
    pub phase: AtomicU8,
    pub ios: [AtomicU64; 3],
    pub bytes: [AtomicU64; 3],
    pub done: AtomicBool,
}

/// What a job thread is doing, for the status line's run string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Setup = 0,
    Ramp = 1,
    Running = 2,
    Verifying = 3,
    Done = 4,
}

impl Phase {
    pub fn from_u8(v: u8) -> Phase {
        match v {
            1 => Phase::Ramp,
            2 => Phase::Running,
            3 => Phase::Verifying,
            4 => Phase::Done,
            _ => Phase::Setup,
        }
    }
}

/// Everything one job clone needs, prepared before its thread starts.
pub struct CloneSetup {
    pub opts: Arc<JobOptions>,
    /// Thread number within the group, stamped into verify headers.
    pub thread: u32,
    pub region_start: u64,
    pub region_len: u64,
    /// Bytes to transfer in the measured phase (ignored when time_based).
    pub io_size: u64,
    pub depth: u32,
    /// Requests to prepare ahead in spare tags of the queue (0: none; see [`Engine`]).
    pub stage: u32,
    pub seed: u64,
    /// `depth + stage` buffers, each as large as the job's largest block.
    pub buffers: Vec<DmaBuf>,
    pub queue: QueueHandle,
    /// The unit every request is for (the LUN on a SCSI host that several LUNs share).
    pub unit: Unit,
    pub progress: Arc<Progress>,
    pub start: Arc<Barrier>,
    /// The CPU to pin the thread to (a polling thread should not wander), if any.
    pub cpu: Option<usize>,
}

/// One request in flight: the context the hardware queue keeps in its tag's record.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inflight {
    /// Clock ticks when the request was prepared, and when the device could see it.
    pub start: u64,
    pub issued: u64,
    pub ddir: Ddir,
    pub offset: u64,
    pub len: u64,
    /// The writer's payload seed a verified read must find, when known.
    pub expect: Option<u64>,
    /// The job thread that submitted it (its mailbox on a shared queue).
    pub owner: u32,
}

/// Clock ticks spent in each stage of the loop, summed (a diagnostic: `UVIO_BENCH_STAGES=1`
/// prints them per request at the end; the stamps themselves cost two clock reads per stage).
#[derive(Debug, Default, Clone, Copy)]
struct StageTicks {
    /// Choosing the next I/Os and submitting them (`HwQueue::submit`).
    submit: u64,
    /// Publishing and the doorbell (`HwQueue::kick`: an MMIO write that exits to QEMU).
    kick: u64,
    /// After the kick: issue stamps, latency histograms, progress counters.
    bookkeeping: u64,
    /// Polling until the first completion of a reap shows up.
    wait: u64,
    /// Handling the completions of a reap.
    complete: u64,
    /// Of `submit`: inside `HwQueue::submit` (the driver).
    driver_submit: u64,
    /// Of `complete`: inside the engine's own handling (the rest is the driver's poll).
    engine_complete: u64,
    requests: u64,
}

impl StageTicks {
    fn report(&self, clock: &Clock) -> String {
        let n = self.requests.max(1);
        let per = |t: u64| format!("{} ticks ({} ns)", t / n, clock.ns(t / n));
        format!(
            "stages per request over {} requests: submit {} (driver {}), kick {}, bookkeeping {}, \
             wait {}, complete {} (engine {})",
            self.requests,
            per(self.submit),
            per(self.driver_submit),
            per(self.kick),
            per(self.bookkeeping),
            per(self.wait),
            per(self.complete),
            per(self.engine_complete)
        )
    }
}

/// The bytes a phase may issue (`None`: no limit) and has issued.
struct Budget {
    limit: Option<u64>,
    issued: u64,
}

/// What [`Engine::submit_next`] did.
enum Submitted {
    Yes,
    /// The queue had no room: the I/O is kept for the next try.
    NoRoom,
    /// The source ran out or the phase's byte limit was reached: stop issuing.
    SourceDone,
}

/// Where the I/Os of a phase come from.
enum Source {
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

/// A job clone's loop state. Its queue is kept apart (passed to [`Engine::run_phase`]), so
/// that the queue's completion callback can update the engine.
///
/// With spare tags on its own queue, the engine prepares up to `stage_max` requests ahead
/// while the device works: submitted into the ring (header, descriptors) but not yet visible
/// to the device. When a completion frees room, the next request costs only the kick that
/// releases it ([`HwQueue::kick_up_to`](uvio::block::HwQueue::kick_up_to)), so the device
/// waits less for the guest. At most `depth` requests are ever visible to the device; a
/// prepared request's slat and clat start when it is released.
struct Engine {
    clock: Clock,
    /// Execute PAUSE while spinning for completions (`UVIO_BENCH_PAUSE=1`).
    pause: bool,
    depth: u32,
    batch_submit: u32,
    complete_min: u32,
    complete_max: u32,
    unit: Unit,
    /// This thread's mailbox on a shared queue.
    owner: u32,
    /// Buffers not in flight.
    free: Vec<DmaBuf>,
    /// Tags submitted in the current batch (their issue time is set at the kick).
    batch: Vec<u16>,
    /// Requests the device can see (at most `depth`).
    in_flight: u32,
    /// How many requests may be prepared ahead, and the tags of those prepared, oldest first.
    stage_max: u32,
    staged: VecDeque<u16>,
    /// An I/O the queue refused for lack of tags (a shared queue), retried first.
    pending: Option<(NextIo, Option<u64>)>,
    stats: JobStats,
    verifier: Option<Verifier>,
    verify_fatal: bool,
    seed: u64,
    /// Writes stamped so far (the verify sequence number).
    writes: u64,
    stopped: bool,
    progress: Arc<Progress>,
    total_ios: [u64; 3],
    total_bytes: [u64; 3],
    /// Per-stage tick totals (`UVIO_BENCH_STAGES=1`): where the thread's time goes.
    stages: Option<StageTicks>,
    /// Latencies of completed I/Os not yet in the histograms: recorded after the next kick,
    /// so the bookkeeping overlaps the device's work instead of delaying the next request.
    /// (ddir index, bytes, slat ticks, clat ticks); never grows past the depth.
    unrecorded: Vec<(usize, u64, u64, u64)>,
}

impl Engine {
    /// Puts the latencies held back by `complete` into the histograms.
    fn record_latencies(&mut self) {
        for (d, bytes, slat, clat) in self.unrecorded.drain(..) {
            let (slat, clat) = (self.clock.ns(slat), self.clock.ns(clat));
            self.stats.dirs[d].record(bytes, slat, clat);
        }
    }

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

    /// Takes the next I/O of `source` within `budget` and submits it (`stage`: prepared
    /// ahead, released later).
    fn submit_next(
        &mut self,
        queue: &mut QueueHandle,
        source: &mut Source,
        budget: &mut Budget,
        now: u64,
        record: bool,
        stage: bool,
    ) -> Submitted {
        if budget.limit.is_some_and(|l| budget.issued >= l) {
            return Submitted::SourceDone;
        }
        let Some((io, expect)) = self.next_io(source) else {
            return Submitted::SourceDone;
        };
        if !self.submit_one(queue, io, expect, now, record, stage) {
            return Submitted::NoRoom;
        }
        budget.issued += io.len;
        Submitted::Yes
    }

    /// Builds and submits one request (`stage`: prepared ahead, released later); false if the
    /// queue had no room (retry later).
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
        let ctx = Inflight {
            start: now,
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
                    self.stats.io_depth[depth_bucket(self.in_flight)] += 1;
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

    fn fail(&mut self, what: String, errno: i32) {
        if self.stats.first_error.is_none() {
            self.stats.first_error = Some(what);
            self.stats.error = errno;
        }
        self.stopped = true;
    }

    /// Handles one completion: latency, errors, verification; takes its buffer back.
    fn complete(
        &mut self,
        io: &Inflight,
        result: Result<u64, IoError>,
        data: Data,
        now: u64,
        record: bool,
    ) {
        self.in_flight -= 1;
        let buf = match data {
            Data::One(b) => Some(b),
            _ => None,
        };
        let d = io.ddir.index();
        match result {
            Err(e) => {
                self.stats.dirs[d].errors += 1;
                self.fail(
                    format!(
                        "{} of {} bytes at offset {}: {e}",
                        io.ddir.name(),
                        io.len,
                        io.offset
                    ),
                    5,
                );
            }
            Ok(_) => {
                self.total_ios[d] += 1;
                self.total_bytes[d] += io.len;
                if record {
                    self.unrecorded.push((
                        d,
                        io.len,
                        io.issued.saturating_sub(io.start),
                        now.saturating_sub(io.issued),
                    ));
                }
                if io.ddir == Ddir::Read {
                    if let (Some(v), Some(buf)) = (&self.verifier, &buf) {
                        match v.check(buf.as_slice(), io.offset, io.expect) {
                            Ok(()) => self.stats.verified += 1,
                            Err(bad) => {
                                self.stats.verify_failures += 1;
                                if self.stats.first_bad_block.is_none() {
                                    self.stats.first_bad_block = Some(bad);
                                }
                                if self.stats.error == 0 {
                                    self.stats.error = 84; // EILSEQ, as fio
                                }
                                if self.verify_fatal {
                                    self.stopped = true;
                                }
                            }
                        }
                    }
                }
            }
        }
        if let Some(b) = buf {
            self.free.push(b);
        }
    }

    fn publish(&self) {
        for d in 0..3 {
            self.progress.ios[d].store(self.total_ios[d], Ordering::Relaxed);
            self.progress.bytes[d].store(self.total_bytes[d], Ordering::Relaxed);
        }
    }

    /// Runs one phase until `limit_bytes` are issued, `deadline` passes or the source ends,
    /// then drains. Returns the phase's wall time.
    fn run_phase(
        &mut self,
        queue: &mut QueueHandle,
        source: &mut Source,
        limit_bytes: Option<u64>,
        deadline: Option<u64>,
        record: bool,
    ) -> Duration {
        let clock = self.clock;
        let t0 = clock.now();
        let interval = clock.ticks(SAMPLE_INTERVAL);
        let lost_after = clock.ticks(LOST_TIMEOUT);
        let mut budget = Budget {
            limit: limit_bytes,
            issued: 0,
        };
        let mut issuing = true;
        let mut next_sample = t0 + interval;
        let mut sample_at = t0;
        let mut sample_base = (self.total_ios, self.total_bytes);
        let mut last_progress = t0;
        let mut now = t0;
        loop {
            if deadline.is_some_and(|d| now >= d) || self.stopped || crate::interrupt::requested() {
                issuing = false;
            }
            // Release what was prepared ahead, as room allows: it costs only the kick. (Even
            // when no longer issuing: a prepared request is in the ring and must complete.)
            let mut released = false;
            while !self.staged.is_empty() && self.in_flight < self.depth {
                let want = (self.staged.len() as u32)
                    .min(self.depth - self.in_flight)
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
                queue.stamp_issued(&self.batch, Some(t_a), issued);
                self.batch.clear();
                if record {
                    for _ in 0..n {
                        self.in_flight += 1;
                        self.stats.io_depth[depth_bucket(self.in_flight)] += 1;
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
                now = issued;
                released = true;
            }
            if released {
                // The device is busy with them: now do the last round's bookkeeping.
                let t_c = if self.stages.is_some() {
                    clock.now()
                } else {
                    0
                };
                self.record_latencies();
                self.publish();
                if let Some(st) = &mut self.stages {
                    st.bookkeeping += clock.now().saturating_sub(t_c);
                }
            }
            // Submit: fill to the depth, one kick per batch.
            while issuing && self.in_flight < self.depth && self.staged.is_empty() {
                let t_a = if self.stages.is_some() {
                    clock.now()
                } else {
                    0
                };
                let want = self.batch_submit.min(self.depth - self.in_flight);
                let mut n = 0;
                while n < want {
                    match self.submit_next(queue, source, &mut budget, now, record, false) {
                        Submitted::Yes => n += 1,
                        Submitted::NoRoom => break,
                        Submitted::SourceDone => {
                            issuing = false;
                            break;
                        }
                    }
                }
                if n > 0 {
                    let t_b = if self.stages.is_some() {
                        clock.now()
                    } else {
                        0
                    };
                    queue.kick();
                    let issued = clock.now();
                    queue.stamp_issued(&self.batch, None, issued);
                    self.batch.clear();
                    // The device is busy with the batch: now do the last round's bookkeeping.
                    self.record_latencies();
                    self.publish();
                    if record {
                        self.stats.submit[batch_bucket(n)] += 1;
                        self.stats.submit_calls += 1;
                    }
                    now = issued;
                    if let Some(st) = &mut self.stages {
                        let t_d = clock.now();
                        st.submit += t_b.saturating_sub(t_a);
                        st.kick += issued.saturating_sub(t_b);
                        st.bookkeeping += t_d.saturating_sub(issued);
                        st.requests += u64::from(n);
                    }
                }
                if n < want || self.pending.is_some() {
                    break;
                }
            }
            // Prepare the next requests while the device works on these.
            if issuing && !self.stopped {
                let t_s = if self.stages.is_some() {
                    clock.now()
                } else {
                    0
                };
                while (self.staged.len() as u32) < self.stage_max {
                    match self.submit_next(queue, source, &mut budget, now, record, true) {
                        Submitted::Yes => {}
                        Submitted::NoRoom => break,
                        Submitted::SourceDone => {
                            issuing = false;
                            break;
                        }
                    }
                }
                if let Some(st) = &mut self.stages {
                    st.submit += clock.now().saturating_sub(t_s);
                }
            }
            if self.in_flight == 0 {
                if !self.staged.is_empty() {
                    continue;
                }
                if !issuing || self.stopped {
                    break;
                }
                if self.pending.is_some() {
                    // A shared queue is full of other threads' requests.
                    std::hint::spin_loop();
                    now = clock.now();
                    continue;
                }
            }
            // Reap: busy-poll for at least `complete_min` (0: look once), handling at most
            // `complete_max`. Completions are handled as the queue hands them over, all
            // stamped with one clock reading taken at the first of them.
            let min = self.complete_min.min(self.in_flight) as usize;
            let max = self.complete_max as usize;
            let mut got = 0usize;
            let mut stamp: Option<u64> = None;
            let mut spins = 0u32;
            let t_e = if self.stages.is_some() {
                clock.now()
            } else {
                0
            };
            loop {
                got += queue.poll(max - got, |io, result, data| {
                    let at = *stamp.get_or_insert_with(|| clock.now());
                    let t_engine = if self.stages.is_some() {
                        clock.now()
                    } else {
                        0
                    };
                    self.complete(io, result, data, at, record);
                    if let Some(st) = &mut self.stages {
                        st.engine_complete += clock.now().saturating_sub(t_engine);
                    }
                });
                if got >= min.max(1) || min == 0 || got >= max {
                    break;
                }
                if self.pause {
                    std::hint::spin_loop();
                }
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(256)
                    && clock.now().saturating_sub(last_progress) > lost_after
                {
                    break;
                }
            }
            now = stamp.unwrap_or_else(|| clock.now());
            if let (Some(st), Some(first)) = (&mut self.stages, stamp) {
                st.wait += first.saturating_sub(t_e);
                st.complete += clock.now().saturating_sub(first);
            }
            if got == 0 {
                if now.saturating_sub(last_progress) > lost_after && self.in_flight > 0 {
                    let lost = self.in_flight;
                    self.fail(
                        format!(
                            "{lost} requests never completed within {}s (lost)",
                            LOST_TIMEOUT.as_secs()
                        ),
                        110,
                    );
                    break;
                }
                continue;
            }
            last_progress = now;
            if record {
                self.stats.complete[batch_bucket(got as u32)] += 1;
                self.stats.complete_calls += 1;
            }
            if !issuing || self.verifier.is_some() {
                // No kick will follow to overlap with (or verify made this path slow anyway).
                self.record_latencies();
                self.publish();
            }
            if record && now >= next_sample {
                let secs = clock.between(sample_at, now).as_secs_f64().max(1e-9);
                for d in 0..3 {
                    let ios = self.total_ios[d] - sample_base.0[d];
                    let bytes = self.total_bytes[d] - sample_base.1[d];
                    if ios > 0 || self.stats.dirs[d].ios > 0 {
                        self.stats.dirs[d]
                            .bw_samples
                            .add(bytes as f64 / 1024.0 / secs);
                        self.stats.dirs[d].iops_samples.add(ios as f64 / secs);
                    }
                }
                sample_base = (self.total_ios, self.total_bytes);
                sample_at = now;
                next_sample = now + interval;
            }
        }
        self.record_latencies();
        self.publish();
        clock.between(t0, now)
    }
}

/// Runs one job clone to the end and returns what it measured.
pub fn run_clone(setup: CloneSetup) -> JobStats {
    let opts = setup.opts;
    let depth = setup.depth.max(1);
    let mut buffers = setup.buffers;
    buffers.truncate((depth + setup.stage) as usize);
    let depth = depth.min(buffers.len() as u32);
    let stage_max = setup.stage.min(buffers.len() as u32 - depth);
    let verifier = opts
        .verify
        .map(|kind| Verifier::new(kind, opts.verify_pattern.clone(), setup.thread));
    let hw_queue = setup.queue.index();
    let shared = setup.queue.is_shared();
    let mut queue = setup.queue;
    // A doorbell the device asks for mid-burst waits for the burst's end (see
    // `HwQueue::set_notify_batching`). `UVIO_BENCH_NOTIFY_BATCH=0` turns that off, to
    // measure what it gains.
    queue.set_notify_batching(std::env::var("UVIO_BENCH_NOTIFY_BATCH").map_or(true, |v| v != "0"));
    // Pinned first, so the TSC the clock reads is always this CPU's (TCG guests do not keep
    // the CPUs' TSCs in step).
    let pinned = setup.cpu.is_some_and(crate::cpu::pin_to);
    let clock = Clock::calibrate(pinned);
    let mut engine = Engine {
        clock,
        pause: std::env::var("UVIO_BENCH_PAUSE").is_ok_and(|v| v == "1"),
        unit: setup.unit,
        owner: queue.owner(),
        depth,
        batch_submit: opts.batch_submit().max(1),
        complete_min: opts.iodepth_batch_complete_min,
        complete_max: match opts.iodepth_batch_complete_max {
            None | Some(0) => depth,
            Some(m) => m.max(1),
        },
        free: buffers,
        batch: Vec::with_capacity(depth as usize),
        unrecorded: Vec::with_capacity(depth as usize),
        stages: std::env::var("UVIO_BENCH_STAGES")
            .is_ok_and(|v| v == "1")
            .then(StageTicks::default),
        in_flight: 0,
        stage_max,
        staged: VecDeque::with_capacity(stage_max as usize),
        pending: None,
        stats: JobStats {
            clock: clock.name(),
            ring: queue.ring_format(),
            cpu_pinned: setup.cpu.filter(|_| pinned),
            hw_queue,
            shared_queue: shared,
            depth,
            ..JobStats::default()
        },
        verifier,
        verify_fatal: opts.verify_fatal,
        seed: setup.seed,
        writes: 0,
        stopped: false,
        progress: setup.progress,
        total_ios: [0; 3],
        total_bytes: [0; 3],
    };
    // SAFETY: gettid has no preconditions.
    engine.stats.tid = unsafe { libc::gettid() };
    let make_workload = || {
        Workload::new(
            opts.rw,
            opts.rwmixread,
            [
                opts.block_sizes(Ddir::Read),
                opts.block_sizes(Ddir::Write),
                opts.block_sizes(Ddir::Trim),
            ],
            setup.region_start,
            setup.region_len,
            opts.norandommap,
            setup.seed,
        )
    };
    let mut source = Source::Workload(make_workload());

    setup.start.wait();
    let mut cpu0 = CpuUsage::this_thread();
    let mut queue0 = queue.stats();
    let set_phase = |e: &Engine, p: Phase| e.progress.phase.store(p as u8, Ordering::Relaxed);

    if !opts.ramp_time.is_zero() {
        set_phase(&engine, Phase::Ramp);
        let end = clock.now() + clock.ticks(opts.ramp_time);
        engine.run_phase(&mut queue, &mut source, None, Some(end), false);
        engine.stats.reset();
        engine.stages = engine.stages.map(|_| StageTicks::default());
        cpu0 = CpuUsage::this_thread();
        queue0 = queue.stats();
    }
    set_phase(&engine, Phase::Running);
    let deadline = opts.runtime.map(|r| clock.now() + clock.ticks(r));
    let limit = (!opts.time_based).then_some(setup.io_size);
    let main = engine.run_phase(&mut queue, &mut source, limit, deadline, true);
    for d in Ddir::ALL {
        if opts.rw.has(d) {
            engine.stats.dirs[d.index()].runtime = main;
        }
    }
    let mut total = main;

    let write_verify = opts.verify.is_some()
        && opts.do_verify
        && matches!(opts.rw, RwMode::Write | RwMode::RandWrite);
    if write_verify && !engine.stopped && !crate::interrupt::requested() && engine.writes > 0 {
        set_phase(&engine, Phase::Verifying);
        let probe = make_workload();
        let blocks = probe.blocks();
        let bs = opts.bs[Ddir::Write.index()];
        let mut verify_source = if engine.writes >= blocks {
            // Every block was written at least once: read the whole region back.
            Source::Sweep {
                next: setup.region_start,
                end: setup.region_start + setup.region_len,
                bs,
            }
        } else {
            Source::Replay {
                workload: probe,
                remaining: engine.writes,
                sequence: 0,
                // Each block was written once, so its writer's seed is known.
                check_seed: !opts.norandommap || !opts.rw.is_random(),
            }
        };
        let t = engine.run_phase(&mut queue, &mut verify_source, None, None, true);
        engine.stats.dirs[Ddir::Read.index()].runtime += t;
        total += t;
    }
    engine.stats.job_runtime = total;
    engine.stats.cpu = CpuUsage::this_thread().since(cpu0);
    if let Some(st) = &engine.stages {
        eprintln!(
            "uvio bench: thread {} (clock {}): {}",
            setup.thread,
            clock.name(),
            st.report(&clock)
        );
    }
    let queue1 = queue.stats();
    engine.stats.queue_requests = queue1.submitted - queue0.submitted;
    engine.stats.queue_notifications = queue1.notifications - queue0.notifications;
    engine.publish();
    set_phase(&engine, Phase::Done);
    engine.progress.done.store(true, Ordering::Release);
    engine.stats
}
