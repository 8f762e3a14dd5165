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
//!
//! The loop of a phase is in `phase`; `submit` makes requests of the phase's I/O source,
//! `staging` prepares requests ahead and releases them, and `complete` handles completions
//! and keeps the statistics. The methods they share are `#[inline]`: they were one module
//! (one codegen unit) before the split, and the hint keeps them inlinable into the loop.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uvio::block::Unit;
use uvio::dma::DmaBuf;

use super::clock::Clock;
use super::logs::JobLogs;
use super::options::{Ddir, JobOptions, RwMode};
use super::queue::QueueHandle;
use super::stats::{CpuUsage, JobStats};
use super::verify::Verifier;
use super::workload::{NextIo, Workload};

mod complete;
mod pacing;
mod phase;
mod staging;
mod submit;

use submit::Source;

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
    /// Requests the job keeps issued beyond its tags (0: none; see [`Engine`]).
    pub backlog: u32,
    pub seed: u64,
    /// `depth + stage` buffers, each as large as the job's largest block.
    pub buffers: Vec<DmaBuf>,
    pub queue: QueueHandle,
    /// The unit every request is for (the LUN on a SCSI host that several LUNs share).
    pub unit: Unit,
    pub progress: Arc<Progress>,
    /// Where the thread waits until the group starts (or is called off).
    pub start: super::start::StartTicket,
    /// Where the thread runs (see [`Placement`]).
    pub placement: super::placement::Placement,
    /// Where a request that timed out goes to be recovered (see [`RecoverRequest`]).
    pub recovery: Option<RecoveryLink>,
    /// When the job may start (`startdelay`, counted from the benchmark's start); it sleeps
    /// until then after the group's start line.
    pub start_at: Option<std::time::Instant>,
    /// The time-series logs the job writes, their buffers allocated (see [`JobLogs`]).
    pub logs: Option<JobLogs>,
    /// Where `--status-interval` snapshots go, if asked for.
    pub snapshot: Option<SnapshotLink>,
}

/// A request that timed out, for the group's recovery thread, which runs the SCSI error
/// handler's escalation (ABORT TASK first) on the control queue while the job threads go
/// on: a job on another LUN of the host keeps running through it.
#[derive(Debug)]
pub struct RecoverRequest {
    /// The PCI function (the key of the group's opened devices).
    pub function: String,
    /// The LUN (0:target:lun) on a SCSI host; `None` on virtio-blk.
    pub lun: Option<(u16, u16)>,
    pub queue: u16,
    pub tag: u16,
    /// The error, for the message.
    pub what: String,
}

/// A job clone's way to its group's recovery thread.
#[derive(Debug, Clone)]
pub struct RecoveryLink {
    pub tx: std::sync::mpsc::Sender<RecoverRequest>,
    pub function: String,
    pub lun: Option<(u16, u16)>,
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
    /// After a refill's kicks: latency histograms and progress counters.
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

/// A job clone's loop state. Its queue is kept apart (passed to [`Engine::run_phase`]), so
/// that the queue's completion callback can update the engine.
///
/// With spare tags on its own queue, the engine prepares up to `stage_max` requests ahead
/// while the device works: submitted into the ring (header, descriptors) but not yet visible
/// to the device. When a completion frees room, the next request costs only the kick that
/// releases it ([`HwQueue::kick_up_to`](uvio::block::HwQueue::kick_up_to)), so the device
/// waits less for the guest. It is released as soon as the device has finished an earlier one,
/// before that completion is handled, so at most `depth` requests the device can see are
/// unfinished; a prepared request's slat and clat start when it is released.
///
/// An iodepth beyond the queue's tags is kept as fio keeps it over libblkio: the job has
/// `outstanding` I/Os issued, those without a tag in a backlog. The backlog holds only when
/// each was issued (a completion issues the next at once); the I/O itself is chosen when it
/// gets a tag, and its latency counts from its issue.
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
    /// Requests the device can see and the engine has not seen complete (at most `depth`
    /// unfinished, plus those released early for completions not yet handled).
    in_flight: u32,
    /// How many requests may be prepared ahead, and the tags of those prepared, oldest first.
    stage_max: u32,
    staged: VecDeque<u16>,
    /// The iodepth kept with a backlog (0: no backlog), and the issue times (ticks) of the
    /// I/Os waiting for a tag, oldest first.
    outstanding: u32,
    backlog: VecDeque<u64>,
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
    /// `rate`/`rate_iops`/`thinktime`, when the job asks for any.
    pacer: Option<pacing::Pacer>,
    /// What pacing said about the I/O it holds back (`pending`), if it holds one.
    held: Option<pacing::Hold>,
    /// Latencies of completed I/Os not yet in the histograms: recorded after the next kick,
    /// so the bookkeeping overlaps the device's work instead of delaying the next request.
    /// Never grows past the tags (`depth + stage_max`).
    unrecorded: Vec<Unrecorded>,
    /// The job's time-series logs, if it writes any, and the tick their time counts from
    /// (the start of the measured I/O, after the ramp).
    logs: Option<Box<JobLogs>>,
    log_epoch: u64,
    /// `--status-interval` snapshots; the running phase's start (ticks), the directions its
    /// time counts for, the measured time of the phases before it, and the CPU use at the
    /// measured start (what a snapshot adds up).
    snapshot: Option<SnapshotLink>,
    phase_t0: u64,
    phase_dirs: [bool; 3],
    runtime_before: Duration,
    cpu0: CpuUsage,
    /// Where timed-out requests go to be recovered, and this clone's hardware queue.
    recovery: Option<RecoveryLink>,
    hw_queue: u16,
}

/// A job clone's latest figures, for `--status-interval`: the status printer raises the
/// shared request number, and the job thread copies its statistics here between reaps (into
/// histograms allocated at set-up: no allocation) and answers with that number.
#[derive(Debug)]
pub struct Snapshot {
    /// The request last answered; [`Snapshot::FINAL`] once the job has ended.
    pub answered: AtomicU64,
    pub stats: Mutex<JobStats>,
}

impl Snapshot {
    pub const FINAL: u64 = u64::MAX;

    pub fn new() -> Self {
        Snapshot {
            answered: AtomicU64::new(0),
            stats: Mutex::new(JobStats::default()),
        }
    }
}

/// A job clone's side of the status-interval snapshots.
#[derive(Debug, Clone)]
pub struct SnapshotLink {
    /// The request number, shared by the group's job threads.
    pub request: Arc<AtomicU64>,
    pub slot: Arc<Snapshot>,
}

/// A completed I/O whose latencies are not yet recorded (see `Engine::unrecorded`).
#[derive(Debug, Clone, Copy)]
struct Unrecorded {
    ddir: Ddir,
    bytes: u64,
    offset: u64,
    /// Clock ticks: submit latency, completion latency, and when it completed.
    slat: u64,
    clat: u64,
    done_at: u64,
}

/// What a job clone leaves: its statistics, and its logs to be written.
pub struct CloneResult {
    pub stats: JobStats,
    pub logs: Option<Box<JobLogs>>,
}

/// Runs one job clone to the end and returns what it measured.
pub fn run_clone(setup: CloneSetup) -> CloneResult {
    let opts = setup.opts;
    let depth = setup.depth.max(1);
    let mut buffers = setup.buffers;
    buffers.truncate((depth + setup.stage) as usize);
    let depth = depth.min(buffers.len() as u32);
    let stage_max = setup.stage.min(buffers.len() as u32 - depth);
    let outstanding = if setup.backlog > 0 {
        depth + stage_max + setup.backlog
    } else {
        0
    };
    let verifier = opts.verify.map(|kind| {
        Verifier::new(
            kind,
            opts.verify_pattern.clone(),
            setup.thread,
            opts.verify_interval,
        )
    });
    let hw_queue = setup.queue.index();
    let shared = setup.queue.is_shared();
    let mut queue = setup.queue;
    // A doorbell the device asks for mid-burst waits for the burst's end (see
    // `HwQueue::set_notify_batching`). `UVIO_BENCH_NOTIFY_BATCH=0` turns that off, to
    // measure what it gains.
    queue.set_notify_batching(std::env::var("UVIO_BENCH_NOTIFY_BATCH").map_or(true, |v| v != "0"));
    // Pinned first, so the TSC the clock reads is always this CPU's (TCG guests do not keep
    // the CPUs' TSCs in step).
    let pinned_to = setup.placement.apply();
    let pinned = pinned_to.is_some();
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
        unrecorded: Vec::with_capacity((depth + stage_max) as usize),
        logs: setup.logs.map(Box::new),
        log_epoch: 0,
        snapshot: setup.snapshot,
        phase_t0: 0,
        phase_dirs: [false; 3],
        runtime_before: Duration::ZERO,
        cpu0: CpuUsage::default(),
        stages: std::env::var("UVIO_BENCH_STAGES")
            .is_ok_and(|v| v == "1")
            .then(StageTicks::default),
        in_flight: 0,
        pacer: pacing::Pacer::new(&opts, &clock, setup.seed),
        held: None,
        stage_max,
        staged: VecDeque::with_capacity(stage_max as usize),
        outstanding,
        backlog: VecDeque::with_capacity(outstanding as usize),
        pending: None,
        stats: JobStats {
            clock: clock.name(),
            ring: queue.ring_format(),
            cpu_pinned: pinned_to,
            hw_queue,
            shared_queue: shared,
            depth,
            prepared: stage_max,
            waiting: setup.backlog,
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
        recovery: setup.recovery,
        hw_queue,
    };
    // SAFETY: gettid has no preconditions.
    engine.stats.tid = unsafe { libc::gettid() };
    let loop_seed = |round: u32| {
        if round == 0 {
            setup.seed
        } else {
            super::workload::mix(setup.seed ^ u64::from(round).rotate_left(40))
        }
    };
    let make_workload = |seed: u64| {
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
            seed,
        )
        .with_block_align(opts.random_block_align())
        .with_distribution(&opts.random_distribution, seed)
        .with_sequence_step(opts.rw_seq_add)
    };
    let mut source = Source::Workload(make_workload(setup.seed));

    if !setup.start.wait() {
        // Another job thread could not be started: the group does not run.
        return CloneResult {
            stats: engine.stats,
            logs: None,
        };
    }
    if let Some(at) = setup.start_at {
        // Asleep, not polling: a waiting job takes no CPU from the running ones. Woken in
        // slices so that Ctrl-C is noticed.
        loop {
            let now = std::time::Instant::now();
            if now >= at || crate::interrupt::requested() {
                break;
            }
            std::thread::sleep((at - now).min(Duration::from_millis(100)));
        }
    }
    engine.stats.start_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut cpu0 = CpuUsage::this_thread();
    engine.cpu0 = cpu0;
    let mut queue0 = queue.stats();
    let set_phase = |e: &Engine, p: Phase| e.progress.phase.store(p as u8, Ordering::Relaxed);

    if !opts.ramp_time.is_zero() {
        set_phase(&engine, Phase::Ramp);
        let end = clock.now() + clock.ticks(opts.ramp_time);
        engine.run_phase(&mut queue, &mut source, None, Some(end), false);
        engine.stats.reset();
        engine.stages = engine.stages.map(|_| StageTicks::default());
        cpu0 = CpuUsage::this_thread();
        engine.cpu0 = cpu0;
        queue0 = queue.stats();
    }
    // The logs' time 0, as fio's epoch after the ramp.
    engine.log_epoch = clock.now();
    if let Some(l) = &mut engine.logs {
        l.start(&engine.total_bytes, &engine.total_ios);
    }
    let deadline = opts.runtime.map(|r| clock.now() + clock.ticks(r));
    let limit = (!opts.time_based).then_some(setup.io_size);
    let write_verify = opts.verify.is_some()
        && opts.do_verify
        && matches!(opts.rw, RwMode::Write | RwMode::RandWrite);
    // `loops`: the job's I/O (and its verify pass) again, from the region's start, with the
    // random offsets of a fresh seed, as fio's next loop is; time_based runs to its end once.
    let loops = if opts.time_based {
        1
    } else {
        opts.loops.max(1)
    };
    let mut total = Duration::ZERO;
    for round in 0..loops {
        if round > 0 {
            if engine.stopped
                || crate::interrupt::requested()
                || deadline.is_some_and(|d| clock.now() >= d)
            {
                break;
            }
            source = Source::Workload(make_workload(loop_seed(round)));
        }
        set_phase(&engine, Phase::Running);
        engine.phase_dirs = Ddir::ALL.map(|d| opts.rw.has(d));
        engine.runtime_before = total;
        let writes_before = engine.writes;
        let main = engine.run_phase(&mut queue, &mut source, limit, deadline, true);
        for d in Ddir::ALL {
            if opts.rw.has(d) {
                engine.stats.dirs[d.index()].runtime += main;
            }
        }
        total += main;
        engine.runtime_before = total;
        let written = engine.writes - writes_before;
        if write_verify && !engine.stopped && !crate::interrupt::requested() && written > 0 {
            set_phase(&engine, Phase::Verifying);
            let probe = make_workload(loop_seed(round));
            let blocks = probe.blocks();
            let bs = opts.bs[Ddir::Write.index()];
            // A sweep reads every block: only when every block was written (the random map,
            // or sequential I/O, visits each before any twice).
            let covers = if opts.rw.is_random() {
                !opts.norandommap && opts.random_distribution.is_uniform()
            } else {
                opts.rw_seq_add == 0
            };
            let mut verify_source = if covers && written >= blocks {
                // Every block was written at least once: read the whole region back.
                Source::Sweep {
                    next: setup.region_start,
                    end: setup.region_start + setup.region_len,
                    bs,
                }
            } else {
                Source::Replay {
                    workload: probe,
                    remaining: written,
                    sequence: writes_before,
                    // Each block was written once, so its writer's seed is known.
                    check_seed: covers,
                }
            };
            engine.phase_dirs = [true, false, false];
            let t = engine.run_phase(&mut queue, &mut verify_source, None, None, true);
            engine.stats.dirs[Ddir::Read.index()].runtime += t;
            total += t;
            engine.runtime_before = total;
        }
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
    engine.stats.queue_stalls = queue1.stalls - queue0.stalls;
    engine.publish();
    let end_ms = engine.log_ms(clock.now());
    if let Some(l) = &mut engine.logs {
        l.finish(end_ms);
    }
    if let Some(link) = &engine.snapshot {
        if let Ok(mut s) = link.slot.stats.lock() {
            s.copy_from(&engine.stats);
        }
        link.slot.answered.store(Snapshot::FINAL, Ordering::Release);
    }
    set_phase(&engine, Phase::Done);
    engine.progress.done.store(true, Ordering::Release);
    CloneResult {
        stats: engine.stats,
        logs: engine.logs,
    }
}
