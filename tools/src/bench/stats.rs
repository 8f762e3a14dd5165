//! What a job measures: per direction, I/O counts and bytes, slat/clat/lat latency histograms
//! (hdrhistogram, nanoseconds) and bandwidth/IOPS samples; per job, the I/O depth, submit and
//! complete distributions, CPU use and the first error. Everything is allocated when a job
//! is set up, so recording on the hot path never allocates.
//!
//! fio's definitions: `slat` is the time from preparing a request to the device being able
//! to see it (submit + kick), `clat` from then to the completion being reaped, and `lat` the
//! whole of it (`slat + clat`).

use std::time::Duration;

use hdrhistogram::Histogram;

use super::options::Ddir;

/// Largest latency tracked exactly (larger ones are clamped): 100 s.
const MAX_TRACKED_NS: u64 = 100_000_000_000;
/// Three significant figures: 0.1% resolution.
const SIGFIG: u8 = 3;

/// A latency histogram in nanoseconds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_NS, SIGFIG).expect("valid histogram bounds")
}

/// Count, min, max, mean and variance of a series, mergeable (Chan et al.).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Running {
    pub n: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    m2: f64,
}

impl Running {
    pub fn add(&mut self, x: f64) {
        if self.n == 0 {
            self.min = x;
            self.max = x;
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    pub fn merge(&mut self, o: &Running) {
        if o.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *o;
            return;
        }
        let n = self.n + o.n;
        let d = o.mean - self.mean;
        self.m2 += o.m2 + d * d * (self.n as f64) * (o.n as f64) / n as f64;
        self.mean += d * o.n as f64 / n as f64;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.n = n;
    }

    /// Sample standard deviation (n-1), 0 with fewer than two samples.
    pub fn stddev(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            (self.m2 / (self.n - 1) as f64).sqrt()
        }
    }
}

/// Statistics of one direction of one job.
#[derive(Debug, Clone)]
pub struct DirStats {
    pub ios: u64,
    pub bytes: u64,
    /// I/Os that failed (device or transport error).
    pub errors: u64,
    pub slat: Histogram<u64>,
    pub clat: Histogram<u64>,
    pub lat: Histogram<u64>,
    /// Time this direction was being exercised (the measured phase it ran in).
    pub runtime: Duration,
    /// Bandwidth samples in KiB/s, one per sampling interval.
    pub bw_samples: Running,
    pub iops_samples: Running,
}

impl Default for DirStats {
    fn default() -> Self {
        DirStats {
            ios: 0,
            bytes: 0,
            errors: 0,
            slat: new_histogram(),
            clat: new_histogram(),
            lat: new_histogram(),
            runtime: Duration::ZERO,
            bw_samples: Running::default(),
            iops_samples: Running::default(),
        }
    }
}

impl DirStats {
    /// Records one completed I/O (hot path: no allocation).
    #[inline]
    pub fn record(&mut self, bytes: u64, slat_ns: u64, clat_ns: u64) {
        self.ios += 1;
        self.bytes += bytes;
        self.slat.saturating_record(slat_ns.max(1));
        self.clat.saturating_record(clat_ns.max(1));
        self.lat.saturating_record((slat_ns + clat_ns).max(1));
    }

    pub fn reset(&mut self) {
        self.ios = 0;
        self.bytes = 0;
        self.errors = 0;
        self.slat.reset();
        self.clat.reset();
        self.lat.reset();
        self.bw_samples = Running::default();
        self.iops_samples = Running::default();
    }

    /// Becomes a copy of `o` in place: the histograms keep their memory (a status-interval
    /// snapshot taken on a job thread allocates nothing).
    pub fn copy_from(&mut self, o: &DirStats) {
        for (mine, theirs) in [
            (&mut self.slat, &o.slat),
            (&mut self.clat, &o.clat),
            (&mut self.lat, &o.lat),
        ] {
            mine.reset();
            // Same bounds on both sides: adding cannot fail.
            let _ = mine.add(theirs);
        }
        self.ios = o.ios;
        self.bytes = o.bytes;
        self.errors = o.errors;
        self.runtime = o.runtime;
        self.bw_samples = o.bw_samples;
        self.iops_samples = o.iops_samples;
    }

    pub fn merge(&mut self, o: &DirStats) {
        self.ios += o.ios;
        self.bytes += o.bytes;
        self.errors += o.errors;
        // Same bounds on both sides: adding cannot fail.
        let _ = self.slat.add(&o.slat);
        let _ = self.clat.add(&o.clat);
        let _ = self.lat.add(&o.lat);
        self.runtime = self.runtime.max(o.runtime);
        self.bw_samples.merge(&o.bw_samples);
        self.iops_samples.merge(&o.iops_samples);
    }

    pub fn runtime_ms(&self) -> u64 {
        self.runtime.as_millis() as u64
    }

    /// Bytes per second over the runtime (fio: `1000 * bytes / runtime_ms`).
    pub fn bw_bytes(&self) -> u64 {
        match self.runtime_ms() {
            0 => 0,
            ms => self.bytes.saturating_mul(1000) / ms,
        }
    }

    /// I/Os per second over the runtime in whole milliseconds, as fio computes its JSON
    /// `iops` (`1000 * ios / runtime_ms`), so that `iops x runtime = total_ios` holds exactly.
    pub fn iops(&self) -> f64 {
        match self.runtime_ms() {
            0 => 0.0,
            ms => self.ios as f64 * 1000.0 / ms as f64,
        }
    }
}

/// fio's bucket maps: I/O depth ("1".."32", ">=64"), and I/Os per submit / per reap
/// ("0", "4".."64", ">=64").
pub const DEPTH_KEYS: [&str; 7] = ["1", "2", "4", "8", "16", "32", ">=64"];
pub const BATCH_KEYS: [&str; 7] = ["0", "4", "8", "16", "32", "64", ">=64"];

/// The depth bucket of `depth` I/Os in flight (fio's `io_u_mark_depth`).
#[inline]
pub fn depth_bucket(depth: u32) -> usize {
    match depth {
        0..=1 => 0,
        2..=3 => 1,
        4..=7 => 2,
        8..=15 => 3,
        16..=31 => 4,
        32..=63 => 5,
        _ => 6,
    }
}

/// The bucket of a batch of `n` (fio's `__io_u_mark_map`).
#[inline]
pub fn batch_bucket(n: u32) -> usize {
    match n {
        0 => 0,
        1..=4 => 1,
        5..=8 => 2,
        9..=16 => 3,
        17..=32 => 4,
        33..=64 => 5,
        _ => 6,
    }
}

/// CPU use of a job's thread.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuUsage {
    pub user: Duration,
    pub system: Duration,
    pub ctx: u64,
    pub majflt: u64,
    pub minflt: u64,
}

impl CpuUsage {
    /// The calling thread's usage so far (`getrusage(RUSAGE_THREAD)`).
    pub fn this_thread() -> CpuUsage {
        // SAFETY: getrusage only writes the struct it is given.
        let ru = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            if libc::getrusage(libc::RUSAGE_THREAD, &mut ru) != 0 {
                return CpuUsage::default();
            }
            ru
        };
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec.max(0) as u64)
                + Duration::from_micros(t.tv_usec.max(0) as u64)
        };
        CpuUsage {
            user: tv(ru.ru_utime),
            system: tv(ru.ru_stime),
            ctx: (ru.ru_nvcsw + ru.ru_nivcsw).max(0) as u64,
            majflt: ru.ru_majflt.max(0) as u64,
            minflt: ru.ru_minflt.max(0) as u64,
        }
    }

    pub fn since(self, earlier: CpuUsage) -> CpuUsage {
        CpuUsage {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
            ctx: self.ctx.saturating_sub(earlier.ctx),
            majflt: self.majflt.saturating_sub(earlier.majflt),
            minflt: self.minflt.saturating_sub(earlier.minflt),
        }
    }

    pub fn merge(&mut self, o: &CpuUsage) {
        self.user += o.user;
        self.system += o.system;
        self.ctx += o.ctx;
        self.majflt += o.majflt;
        self.minflt += o.minflt;
    }
}

/// The first block a verification found bad.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadBlock {
    pub offset: u64,
    pub len: u64,
    /// What was checked (`crc32c`, `header magic`, `header offset`, `pattern byte 17`...).
    pub what: String,
    pub expected: String,
    pub found: String,
}

impl std::fmt::Display for BadBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "verify: bad {} at offset {} (block of {} bytes): expected {}, found {}",
            self.what, self.offset, self.len, self.expected, self.found
        )
    }
}

/// Everything one job thread (or a reporting group of them) measured.
#[derive(Debug, Clone)]
pub struct JobStats {
    pub dirs: [DirStats; 3],
    /// Requests dropped because the job stopped on an error before issuing them.
    pub io_depth: [u64; 7],
    pub submit: [u64; 7],
    pub complete: [u64; 7],
    /// Total submit calls (kicks) and reaps with completions, for the percentages.
    pub submit_calls: u64,
    pub complete_calls: u64,
    pub cpu: CpuUsage,
    /// The job's wall time in the measured phases (ms in reports).
    pub job_runtime: Duration,
    /// The first I/O error, with where it happened.
    pub first_error: Option<String>,
    /// fio-style errno of the job (0: fine; 5 EIO; 84 EILSEQ for a verify failure).
    pub error: i32,
    pub verify_failures: u64,
    pub first_bad_block: Option<BadBlock>,
    /// Blocks checked by verification.
    pub verified: u64,
    pub clones: u32,
    /// The hardware queue the thread used and whether it was shared.
    pub hw_queue: u16,
    pub shared_queue: bool,
    pub tid: i32,
    /// The clock latencies were measured with (`tsc` or `os`).
    pub clock: &'static str,
    /// The hardware queue's ring format (`split` or `packed`).
    pub ring: &'static str,
    /// The CPU the thread was pinned to.
    pub cpu_pinned: Option<usize>,
    /// Requests the hardware queue took and device notifications it sent during the run
    /// (the whole queue's when shared): notifications per request is the batching achieved.
    pub queue_requests: u64,
    pub queue_notifications: u64,
    /// 100 ms epochs that ended with the device holding requests and completing none (see
    /// `QueueStats::stalls`): nonzero in a run that collapsed means the queue stalled.
    pub queue_stalls: u64,
    /// The depth the job actually ran at (iodepth, clamped to the queue): requests visible
    /// to the device at most.
    pub depth: u32,
    /// Requests prepared ahead at most, and the I/Os that waited for a tag at most (an
    /// iodepth beyond the queue's tags: `depth + prepared + waiting` is the iodepth).
    pub prepared: u32,
    pub waiting: u32,
    /// When the job began its I/O, in ms since the epoch (after its `startdelay`, and after
    /// the jobs before a `stonewall`): fio's JSON `job_start`. 0: it never started.
    pub start_ms: u64,
    /// Its log files could not be written (the figures stand; the exit status says so).
    pub log_error: Option<String>,
}

impl Default for JobStats {
    fn default() -> Self {
        JobStats {
            dirs: Default::default(),
            io_depth: [0; 7],
            submit: [0; 7],
            complete: [0; 7],
            submit_calls: 0,
            complete_calls: 0,
            cpu: CpuUsage::default(),
            job_runtime: Duration::ZERO,
            first_error: None,
            error: 0,
            verify_failures: 0,
            first_bad_block: None,
            verified: 0,
            clones: 1,
            hw_queue: 0,
            shared_queue: false,
            tid: 0,
            clock: "os",
            ring: "split",
            cpu_pinned: None,
            queue_requests: 0,
            queue_notifications: 0,
            queue_stalls: 0,
            depth: 1,
            prepared: 0,
            waiting: 0,
            start_ms: 0,
            log_error: None,
        }
    }
}

impl JobStats {
    pub fn dir(&self, d: Ddir) -> &DirStats {
        &self.dirs[d.index()]
    }

    /// Forgets what was measured (the end of the ramp).
    pub fn reset(&mut self) {
        for d in &mut self.dirs {
            d.reset();
        }
        self.io_depth = [0; 7];
        self.submit = [0; 7];
        self.complete = [0; 7];
        self.submit_calls = 0;
        self.complete_calls = 0;
    }

    /// Becomes a copy of `o` in place, reusing the histograms' memory (see
    /// [`DirStats::copy_from`]).
    pub fn copy_from(&mut self, o: &JobStats) {
        // Every field named, so that a new one cannot be left out of the snapshots.
        let JobStats {
            dirs,
            io_depth,
            submit,
            complete,
            submit_calls,
            complete_calls,
            cpu,
            job_runtime,
            first_error,
            error,
            verify_failures,
            first_bad_block,
            verified,
            clones,
            hw_queue,
            shared_queue,
            tid,
            clock,
            ring,
            cpu_pinned,
            queue_requests,
            queue_notifications,
            queue_stalls,
            depth,
            prepared,
            waiting,
            start_ms,
            log_error,
        } = o;
        for (mine, theirs) in self.dirs.iter_mut().zip(dirs) {
            mine.copy_from(theirs);
        }
        self.io_depth = *io_depth;
        self.submit = *submit;
        self.complete = *complete;
        self.submit_calls = *submit_calls;
        self.complete_calls = *complete_calls;
        self.cpu = *cpu;
        self.job_runtime = *job_runtime;
        self.first_error.clone_from(first_error);
        self.error = *error;
        self.verify_failures = *verify_failures;
        self.first_bad_block.clone_from(first_bad_block);
        self.verified = *verified;
        self.clones = *clones;
        self.hw_queue = *hw_queue;
        self.shared_queue = *shared_queue;
        self.tid = *tid;
        self.clock = *clock;
        self.ring = *ring;
        self.cpu_pinned = *cpu_pinned;
        self.queue_requests = *queue_requests;
        self.queue_notifications = *queue_notifications;
        self.queue_stalls = *queue_stalls;
        self.depth = *depth;
        self.prepared = *prepared;
        self.waiting = *waiting;
        self.start_ms = *start_ms;
        self.log_error.clone_from(log_error);
    }

    /// Adds another job's figures (group_reporting).
    pub fn merge(&mut self, o: &JobStats) {
        for (a, b) in self.dirs.iter_mut().zip(&o.dirs) {
            a.merge(b);
        }
        for i in 0..7 {
            self.io_depth[i] += o.io_depth[i];
            self.submit[i] += o.submit[i];
            self.complete[i] += o.complete[i];
        }
        self.submit_calls += o.submit_calls;
        self.complete_calls += o.complete_calls;
        self.cpu.merge(&o.cpu);
        self.job_runtime = self.job_runtime.max(o.job_runtime);
        if self.first_error.is_none() {
            self.first_error.clone_from(&o.first_error);
        }
        if self.error == 0 {
            self.error = o.error;
        }
        self.verify_failures += o.verify_failures;
        if self.first_bad_block.is_none() {
            self.first_bad_block.clone_from(&o.first_bad_block);
        }
        self.verified += o.verified;
        self.queue_requests += o.queue_requests;
        self.queue_notifications += o.queue_notifications;
        self.queue_stalls += o.queue_stalls;
        self.clones += o.clones;
        self.shared_queue |= o.shared_queue;
        self.depth = self.depth.max(o.depth);
        self.prepared = self.prepared.max(o.prepared);
        self.waiting = self.waiting.max(o.waiting);
        // The group started when its first job did.
        if o.start_ms != 0 && (self.start_ms == 0 || o.start_ms < self.start_ms) {
            self.start_ms = o.start_ms;
        }
    }

    /// The merged total-latency histogram of every direction (for the `lat (usec)` lines).
    pub fn all_lat(&self) -> Histogram<u64> {
        let mut h = new_histogram();
        for d in &self.dirs {
            let _ = h.add(&d.lat);
        }
        h
    }
}

/// Percent of `part` in `whole`, 0 when `whole` is 0.
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_stats_merge_like_one_series() {
        let xs = [3.0, 7.0, 1.0, 9.0, 4.0, 4.0];
        let mut all = Running::default();
        xs.iter().for_each(|&x| all.add(x));
        let (mut a, mut b) = (Running::default(), Running::default());
        xs[..2].iter().for_each(|&x| a.add(x));
        xs[2..].iter().for_each(|&x| b.add(x));
        a.merge(&b);
        assert_eq!((a.n, a.min, a.max), (6, 1.0, 9.0));
        assert!((a.mean - all.mean).abs() < 1e-9);
        assert!((a.stddev() - all.stddev()).abs() < 1e-9);
        assert!((all.stddev() - (124.0f64 / 3.0 / 5.0).sqrt()).abs() < 1e-9);
    }

    #[test]
    fn buckets_follow_fio() {
        assert_eq!(depth_bucket(1), 0);
        assert_eq!(depth_bucket(3), 1);
        assert_eq!(depth_bucket(32), 5);
        assert_eq!(depth_bucket(63), 5);
        assert_eq!(depth_bucket(64), 6);
        assert_eq!(batch_bucket(0), 0);
        assert_eq!(batch_bucket(1), 1);
        assert_eq!(batch_bucket(4), 1);
        assert_eq!(batch_bucket(5), 2);
        assert_eq!(batch_bucket(65), 6);
    }

    #[test]
    fn a_copy_in_place_equals_the_original() {
        let mut a = JobStats::default();
        a.dirs[1].record(8192, 1500, 70_000);
        a.dirs[1].record(8192, 900, 20_000);
        a.io_depth[3] = 9;
        a.error = 5;
        a.first_error = Some("x".into());
        let mut b = JobStats::default();
        b.dirs[0].record(512, 1, 1);
        b.copy_from(&a);
        assert_eq!(b.dirs[0].ios, 0);
        assert!(b.dirs[0].clat.is_empty());
        assert_eq!((b.dirs[1].ios, b.dirs[1].bytes), (2, 16384));
        assert_eq!(b.dirs[1].clat.max(), a.dirs[1].clat.max());
        assert_eq!(b.dirs[1].slat.len(), 2);
        assert_eq!((b.io_depth, b.error), (a.io_depth, 5));
        assert_eq!(b.first_error.as_deref(), Some("x"));
    }

    #[test]
    fn recording_keeps_the_three_latencies_consistent() {
        let mut d = DirStats::default();
        d.record(4096, 1000, 9000);
        d.record(4096, 2000, 18000);
        assert_eq!((d.ios, d.bytes), (2, 8192));
        assert_eq!(d.lat.max(), d.lat.highest_equivalent(20000));
        assert_eq!(d.slat.min(), 1000);
        d.runtime = Duration::from_millis(500);
        assert_eq!(d.bw_bytes(), 16384);
        assert!((d.iops() - 4.0).abs() < 1e-9);
    }
}
