//! fio's time-series logs (`write_bw_log`, `write_iops_log`, `write_lat_log`,
//! `write_hist_log`), sampled as fio 3.33 samples them (stat.c: `add_log_sample`,
//! `__add_samples`, `add_clat_sample`) and written in its layout (iolog.c: `flush_samples`,
//! `flush_hist_samples`), so that fio2gnuplot, fio_generate_plots and fiologparser_hist read
//! them unchanged.
//!
//! A line is `time, value, ddir, bs, prio` (`time, value, ddir, bs, offset, prio` with
//! `log_offset=1`): the time in ms since the job's I/O began (after `ramp_time`), the ddir
//! 0/1/2 for read/write/trim, and the priority column 0 (uvio sets no I/O priority, and fio
//! prints whether the priority class is real-time). Values: latencies in ns; bandwidth in
//! fio's per-I/O unit (bytes x 10^6 / clat ns, that is KB/s) or, averaged, KiB/s; IOPS 1 per
//! I/O or, averaged, I/Os per second. With `log_avg_msec=N` a line holds the mean (or, with
//! `log_max_value`, the largest value) of a window of N ms, with bs 0. A histogram line is
//! `time, ddir, bs, ` and the counts of fio's 1856 completion-latency bins that landed since
//! the direction's previous line (summed by 2^`log_hist_coarseness`), one line per
//! `log_hist_msec`.
//!
//! Samples go into buffers allocated when the job is set up and are written when it ends, as
//! fio writes them: the I/O loop allocates nothing for them. A buffer that fills keeps its
//! first samples and counts the rest, which the end of the run reports (`log_avg_msec` makes
//! far fewer lines).
//!
//! Files are named as fio names them: `PREFIX_TYPE.N.log`, N the job thread's number over
//! the whole run (from 1), or `PREFIX_TYPE.log` with `per_job_logs=0`, every thread then
//! appending to the one file. PREFIX is the option's value, or the job's name.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use super::options::{Ddir, JobOptions, LogOptions};
use super::output::json::{fio_plat_index, FIO_PLAT_NR};

/// fio's slack when a rate window is almost over (`LOG_MSEC_SLACK`).
const LOG_MSEC_SLACK: u64 = 1;
/// The most lines a log keeps: 32 MiB of samples (a line per I/O: 10 s at 100k IOPS).
const MAX_SAMPLES: usize = 1 << 20;
/// The most lines a histogram log keeps (1856 counts each: 14.5 KiB a line).
const MAX_HIST_LINES: usize = 2048;
/// fio's latency bins.
const PLAT_NR: usize = FIO_PLAT_NR as usize;

/// One line of a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sample {
    pub time_ms: u64,
    pub value: u64,
    pub ddir: u8,
    pub bs: u64,
    pub offset: u64,
}

/// What a log holds, which names its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    Bw,
    Iops,
    Lat,
    Slat,
    Clat,
}

impl LogKind {
    pub fn name(self) -> &'static str {
        match self {
            LogKind::Bw => "bw",
            LogKind::Iops => "iops",
            LogKind::Lat => "lat",
            LogKind::Slat => "slat",
            LogKind::Clat => "clat",
        }
    }

    /// Latency logs are fed per I/O even when averaged (fio's `inline_log`): their window
    /// closes at the first I/O past it; rate logs get one sample per window.
    fn inline(self) -> bool {
        matches!(self, LogKind::Lat | LogKind::Slat | LogKind::Clat)
    }
}

/// fio's `io_stat` over an averaging window: count, running mean, largest.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    samples: u64,
    mean: f64,
    max: u64,
}

impl Window {
    fn add(&mut self, v: u64) {
        self.samples += 1;
        self.mean += (v as f64 - self.mean) / self.samples as f64;
        self.max = self.max.max(v);
    }
}

/// One log's lines, in a buffer sized at set-up.
#[derive(Debug)]
pub struct SampleLog {
    pub kind: LogKind,
    /// The file name prefix.
    prefix: String,
    pub samples: Vec<Sample>,
    /// Lines that did not fit.
    pub dropped: u64,
    window: [Window; 3],
    /// Where each direction's current window began (fio's `avg_last`).
    avg_last: [u64; 3],
}

impl SampleLog {
    fn new(kind: LogKind, prefix: &str, capacity: usize) -> Self {
        SampleLog {
            kind,
            prefix: prefix.to_string(),
            samples: Vec::with_capacity(capacity),
            dropped: 0,
            window: [Window::default(); 3],
            avg_last: [0; 3],
        }
    }

    #[inline]
    fn push(&mut self, s: Sample) {
        if self.samples.len() < self.samples.capacity() {
            self.samples.push(s);
        } else {
            self.dropped += 1;
        }
    }

    /// fio's `add_log_sample`: the line itself, or (averaged) into the window, closing it
    /// when `avg_msec` have passed since it began.
    #[inline]
    fn add(&mut self, avg_msec: u64, max_value: bool, s: Sample) {
        if avg_msec == 0 {
            self.push(s);
            return;
        }
        let d = usize::from(s.ddir);
        self.window[d].add(s.value);
        let elapsed = s.time_ms;
        if elapsed < self.avg_last[d] {
            return;
        }
        let this_window = elapsed - self.avg_last[d];
        if this_window < avg_msec && (self.kind.inline() || avg_msec - this_window > LOG_MSEC_SLACK)
        {
            return;
        }
        self.close_window(d, elapsed, max_value);
        self.avg_last[d] = elapsed - elapsed % avg_msec;
    }

    /// fio's `__add_stat_to_log`: a line for the window if it holds samples, and a new one.
    fn close_window(&mut self, d: usize, elapsed: u64, max_value: bool) {
        let w = self.window[d];
        if w.samples > 0 {
            let value = if max_value {
                w.max
            } else {
                (w.mean + 0.5) as u64
            };
            self.push(Sample {
                time_ms: elapsed,
                value,
                ddir: d as u8,
                bs: 0,
                offset: 0,
            });
        }
        self.window[d] = Window::default();
    }
}

/// The completion-latency histogram log.
#[derive(Debug)]
pub struct HistLog {
    prefix: String,
    hist_msec: u64,
    coarseness: u32,
    /// Per direction: every clat so far in fio's bins, and as they were at the last line.
    plat: [Vec<u64>; 3],
    last: [Vec<u64>; 3],
    hist_last: [u64; 3],
    /// Each line's time, direction and block size, and its counts (`columns()` each).
    pub heads: Vec<(u64, u8, u64)>,
    pub counts: Vec<u64>,
    pub dropped: u64,
}

impl HistLog {
    fn new(prefix: &str, hist_msec: u64, coarseness: u32) -> Self {
        let columns = PLAT_NR >> coarseness;
        HistLog {
            prefix: prefix.to_string(),
            hist_msec,
            coarseness,
            plat: std::array::from_fn(|_| vec![0; PLAT_NR]),
            last: std::array::from_fn(|_| vec![0; PLAT_NR]),
            hist_last: [0; 3],
            heads: Vec::with_capacity(if hist_msec > 0 { MAX_HIST_LINES } else { 0 }),
            counts: Vec::with_capacity(if hist_msec > 0 {
                MAX_HIST_LINES * columns
            } else {
                0
            }),
            dropped: 0,
        }
    }

    pub fn columns(&self) -> usize {
        PLAT_NR >> self.coarseness
    }

    /// fio's `add_clat_sample`, histogram part: counts the latency, and every `hist_msec`
    /// writes what came since the direction's last line.
    #[inline]
    fn clat(&mut self, d: usize, clat_ns: u64, bs: u64, elapsed: u64) {
        self.plat[d][fio_plat_index(clat_ns) as usize] += 1;
        if self.hist_msec == 0 {
            return;
        }
        if self.hist_last[d] == 0 {
            self.hist_last[d] = elapsed;
        }
        let this_window = elapsed.saturating_sub(self.hist_last[d]);
        if this_window < self.hist_msec {
            return;
        }
        if self.heads.len() < self.heads.capacity() {
            self.heads.push((elapsed, d as u8, bs));
            let stride = 1usize << self.coarseness;
            let (plat, last) = (&self.plat[d], &self.last[d]);
            for j in (0..PLAT_NR).step_by(stride) {
                let sum = (j..j + stride).map(|k| plat[k] - last[k]).sum();
                self.counts.push(sum);
            }
        } else {
            self.dropped += 1;
        }
        let (plat, last) = (&self.plat[d], &mut self.last[d]);
        last.copy_from_slice(plat);
        self.hist_last[d] = elapsed - (this_window - self.hist_msec);
    }
}

/// Where the averaged rate logs' current window began: when, and the totals then.
#[derive(Debug, Clone, Copy, Default)]
struct RateBase {
    at_ms: u64,
    bytes: [u64; 3],
    ios: [u64; 3],
}

/// Every log of one job thread.
#[derive(Debug)]
pub struct JobLogs {
    avg_msec: u64,
    max_value: bool,
    offset: bool,
    per_job: bool,
    pub bw: Option<SampleLog>,
    pub iops: Option<SampleLog>,
    pub lat: Option<SampleLog>,
    pub slat: Option<SampleLog>,
    pub clat: Option<SampleLog>,
    pub hist: Option<HistLog>,
    rate_base: RateBase,
}

impl JobLogs {
    /// The logs `opts` asks for, each with room for the lines a job of at most `max_ios`
    /// I/Os (when known) lasting `runtime_ms` (when known) can make; `None` if it asks for
    /// none.
    pub fn new(opts: &JobOptions, max_ios: Option<u64>, runtime_ms: Option<u64>) -> Option<Self> {
        let l: &LogOptions = &opts.logs;
        if !l.any() {
            return None;
        }
        let per_io = max_ios.map_or(MAX_SAMPLES, |n| (n as usize).min(MAX_SAMPLES));
        let capacity = match (l.avg_msec, runtime_ms) {
            (0, _) => per_io,
            // Three directions, a window each per avg_msec, and the windows closed at the end.
            (avg, Some(ms)) => usize::try_from((ms / avg).saturating_add(2).saturating_mul(3))
                .unwrap_or(usize::MAX),
            (_, None) => per_io.min(1 << 16),
        }
        .min(MAX_SAMPLES);
        let prefix = |p: &Option<String>| match p.as_deref() {
            Some("") => Some(opts.name.clone()),
            other => other.map(str::to_string),
        };
        let log = |kind, p: &Option<String>| prefix(p).map(|p| SampleLog::new(kind, &p, capacity));
        Some(JobLogs {
            avg_msec: l.avg_msec,
            max_value: l.max_value,
            offset: l.offset,
            per_job: l.per_job,
            bw: log(LogKind::Bw, &l.bw),
            iops: log(LogKind::Iops, &l.iops),
            lat: log(LogKind::Lat, &l.lat),
            slat: log(LogKind::Slat, &l.lat),
            clat: log(LogKind::Clat, &l.lat),
            hist: prefix(&l.hist).map(|p| HistLog::new(&p, l.hist_msec, l.hist_coarseness)),
            rate_base: RateBase::default(),
        })
    }

    /// The job's I/O begins (the logs' time 0), with these totals so far.
    pub fn start(&mut self, bytes: &[u64; 3], ios: &[u64; 3]) {
        self.rate_base = RateBase {
            at_ms: 0,
            bytes: *bytes,
            ios: *ios,
        };
    }

    /// One completed I/O, `elapsed` ms into the job (fio's `account_io_completion`).
    #[inline]
    pub fn io(&mut self, elapsed: u64, ddir: Ddir, bytes: u64, offset: u64, slat: u64, clat: u64) {
        let (avg, max) = (self.avg_msec, self.max_value);
        let line = |value| Sample {
            time_ms: elapsed,
            value,
            ddir: ddir as u8,
            bs: bytes,
            offset,
        };
        if let Some(l) = &mut self.lat {
            l.add(avg, max, line(slat + clat));
        }
        if let Some(l) = &mut self.slat {
            l.add(avg, max, line(slat));
        }
        if let Some(l) = &mut self.clat {
            l.add(avg, max, line(clat));
        }
        if let Some(h) = &mut self.hist {
            h.clat(ddir.index(), clat, bytes, elapsed);
        }
        if avg == 0 {
            // fio's `add_bw_sample` and `add_iops_sample`: a line per I/O.
            if let Some(l) = &mut self.bw {
                let rate = (bytes * 1_000_000).checked_div(clat).unwrap_or(0);
                l.push(line(rate));
            }
            if let Some(l) = &mut self.iops {
                l.push(line(1));
            }
        }
    }

    /// With `log_avg_msec`: at `elapsed` ms, the rate lines of a window that has passed, from
    /// the job's totals (fio's `__add_samples`, run by its helper thread; here by the job's
    /// own, between reaps).
    #[inline]
    pub fn tick(&mut self, elapsed: u64, bytes: &[u64; 3], ios: &[u64; 3]) {
        let avg = self.avg_msec;
        if avg == 0 || (self.bw.is_none() && self.iops.is_none()) {
            return;
        }
        let spent = elapsed.saturating_sub(self.rate_base.at_ms);
        // Not within the slack of the window's end yet; and never a window of no time (with
        // log_avg_msec=1 the slack would let one through, as a rate of 0 losing its bytes).
        if spent == 0 || (spent < avg && avg - spent > LOG_MSEC_SLACK) {
            return;
        }
        let max = self.max_value;
        for d in 0..3 {
            let line = |log: &mut Option<SampleLog>, delta: u64, per_kib: bool| {
                if let (Some(l), true) = (log, delta > 0) {
                    let rate = match (spent, per_kib) {
                        (0, _) => 0,
                        (s, true) => delta * 1000 / s / 1024,
                        (s, false) => delta * 1000 / s,
                    };
                    l.add(
                        avg,
                        max,
                        Sample {
                            time_ms: elapsed,
                            value: rate,
                            ddir: d as u8,
                            // fio passes the fixed block size, and the window's line
                            // (`__add_stat_to_log`) then carries 0.
                            bs: 0,
                            offset: 0,
                        },
                    );
                }
            };
            line(&mut self.bw, bytes[d] - self.rate_base.bytes[d], true);
            line(&mut self.iops, ios[d] - self.rate_base.ios[d], false);
        }
        self.rate_base = RateBase {
            at_ms: elapsed,
            bytes: *bytes,
            ios: *ios,
        };
    }

    /// The job's end, `elapsed` ms in: averaged windows that hold samples get their line
    /// (fio's `finalize_logs`).
    pub fn finish(&mut self, elapsed: u64) {
        let max = self.max_value;
        if self.avg_msec == 0 {
            return;
        }
        for log in [
            &mut self.clat,
            &mut self.slat,
            &mut self.lat,
            &mut self.bw,
            &mut self.iops,
        ]
        .into_iter()
        .flatten()
        {
            for d in 0..3 {
                log.close_window(d, elapsed, max);
            }
        }
    }

    /// The file a log of this job thread (`thread_number` from 1) goes to.
    fn path(&self, prefix: &str, kind: &str, thread_number: usize) -> PathBuf {
        if self.per_job {
            PathBuf::from(format!("{prefix}_{kind}.{thread_number}.log"))
        } else {
            PathBuf::from(format!("{prefix}_{kind}.log"))
        }
    }

    /// Writes every log to its file (appending with `per_job_logs=0`, as fio does), and
    /// returns what was written and what did not fit.
    pub fn write(&self, thread_number: usize) -> io::Result<Written> {
        let mut done = Written::default();
        let open = |path: &PathBuf| -> io::Result<BufWriter<std::fs::File>> {
            let mut o = OpenOptions::new();
            if self.per_job {
                o.write(true).create(true).truncate(true);
            } else {
                o.append(true).create(true);
            }
            o.open(path)
                .map(|f| BufWriter::with_capacity(1 << 20, f))
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
        };
        for log in [&self.bw, &self.iops, &self.lat, &self.slat, &self.clat]
            .into_iter()
            .flatten()
        {
            let path = self.path(&log.prefix, log.kind.name(), thread_number);
            let mut out = open(&path)?;
            for s in &log.samples {
                write_sample(&mut out, s, self.offset)?;
            }
            out.flush()?;
            if log.dropped > 0 {
                done.dropped
                    .push((path.clone(), log.samples.len(), log.dropped));
            }
            done.files.push(path);
        }
        if let Some(h) = &self.hist {
            let path = self.path(&h.prefix, "clat_hist", thread_number);
            let mut out = open(&path)?;
            for (i, head) in h.heads.iter().enumerate() {
                let columns = h.columns();
                write_hist_line(&mut out, *head, &h.counts[i * columns..(i + 1) * columns])?;
            }
            out.flush()?;
            if h.dropped > 0 {
                done.dropped.push((path.clone(), h.heads.len(), h.dropped));
            }
            done.files.push(path);
        }
        Ok(done)
    }
}

/// What [`JobLogs::write`] wrote: the files, and per file that lost lines, how many it
/// kept and how many it dropped.
#[derive(Debug, Default)]
pub struct Written {
    pub files: Vec<PathBuf>,
    pub dropped: Vec<(PathBuf, usize, u64)>,
}

/// fio's `flush_samples` line (the priority column: not real-time, 0).
pub fn write_sample(out: &mut impl Write, s: &Sample, offset: bool) -> io::Result<()> {
    if offset {
        writeln!(
            out,
            "{}, {}, {}, {}, {}, 0",
            s.time_ms, s.value, s.ddir, s.bs, s.offset
        )
    } else {
        writeln!(out, "{}, {}, {}, {}, 0", s.time_ms, s.value, s.ddir, s.bs)
    }
}

/// fio's `flush_hist_samples` line: `time, ddir, bs, ` and the counts.
pub fn write_hist_line(
    out: &mut impl Write,
    head: (u64, u8, u64),
    counts: &[u64],
) -> io::Result<()> {
    write!(out, "{}, {}, {}, ", head.0, head.1, head.2)?;
    for (i, c) in counts.iter().enumerate() {
        if i + 1 < counts.len() {
            write!(out, "{c}, ")?;
        } else {
            writeln!(out, "{c}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(set: &[(&str, &str)]) -> JobOptions {
        let mut o = JobOptions::default();
        o.set("name", Some("job")).unwrap();
        for (k, v) in set {
            o.set(k, (!v.is_empty()).then_some(*v)).unwrap();
        }
        o
    }

    fn text(log: &SampleLog, offset: bool) -> String {
        let mut out = Vec::new();
        for s in &log.samples {
            write_sample(&mut out, s, offset).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn per_io_lines_have_fios_layout() {
        let o = opts(&[
            ("write_lat_log", ""),
            ("write_bw_log", "x"),
            ("write_iops_log", ""),
        ]);
        let mut l = JobLogs::new(&o, Some(10), None).unwrap();
        l.io(3, Ddir::Read, 4096, 8192, 1_500, 40_000);
        l.io(7, Ddir::Write, 8192, 0, 2_000, 100_000);
        assert_eq!(
            text(l.clat.as_ref().unwrap(), false),
            "3, 40000, 0, 4096, 0\n7, 100000, 1, 8192, 0\n"
        );
        assert_eq!(
            text(l.slat.as_ref().unwrap(), false),
            "3, 1500, 0, 4096, 0\n7, 2000, 1, 8192, 0\n"
        );
        assert_eq!(
            text(l.lat.as_ref().unwrap(), false),
            "3, 41500, 0, 4096, 0\n7, 102000, 1, 8192, 0\n"
        );
        // fio's per-I/O bandwidth: bytes x 10^6 / clat ns.
        assert_eq!(
            text(l.bw.as_ref().unwrap(), false),
            "3, 102400, 0, 4096, 0\n7, 81920, 1, 8192, 0\n"
        );
        assert_eq!(
            text(l.iops.as_ref().unwrap(), false),
            "3, 1, 0, 4096, 0\n7, 1, 1, 8192, 0\n"
        );
        // log_offset adds the offset before the priority.
        assert_eq!(
            text(l.clat.as_ref().unwrap(), true).lines().next(),
            Some("3, 40000, 0, 4096, 8192, 0")
        );
        // Names: the option's value, else the job's; the thread number unless per_job_logs=0.
        assert_eq!(l.path("x", "bw", 2), PathBuf::from("x_bw.2.log"));
        assert_eq!(l.clat.as_ref().unwrap().prefix, "job");
        l.per_job = false;
        assert_eq!(l.path("job", "clat", 2), PathBuf::from("job_clat.log"));
    }

    #[test]
    fn averaged_latency_windows_close_at_the_first_io_past_them() {
        let o = opts(&[("write_lat_log", ""), ("log_avg_msec", "100")]);
        let mut l = JobLogs::new(&o, None, Some(1000)).unwrap();
        // Window [0, 100): 10, 20, 31 us; closed by the I/O at 105 ms (which it includes, as
        // fio adds the sample before looking at the time).
        for (t, v) in [(10, 10_000), (50, 20_000), (99, 31_000), (105, 1_000)] {
            l.io(t, Ddir::Read, 4096, 0, 0, v);
        }
        l.io(150, Ddir::Read, 4096, 0, 0, 7_000);
        l.finish(180);
        // Mean of 10000, 20000, 31000, 1000 = 15500; the next window starts at 100 ms.
        assert_eq!(
            text(l.clat.as_ref().unwrap(), false),
            "105, 15500, 0, 0, 0\n180, 7000, 0, 0, 0\n"
        );
        let o = opts(&[
            ("write_lat_log", ""),
            ("log_avg_msec", "100"),
            ("log_max_value", "1"),
        ]);
        let mut l = JobLogs::new(&o, None, Some(1000)).unwrap();
        for (t, v) in [(10, 10_000), (50, 20_000), (101, 3)] {
            l.io(t, Ddir::Write, 4096, 0, 0, v);
        }
        assert_eq!(
            text(l.clat.as_ref().unwrap(), false),
            "101, 20000, 1, 0, 0\n"
        );
    }

    #[test]
    fn averaged_rates_are_per_window_in_kib_and_ios_per_second() {
        let o = opts(&[
            ("write_bw_log", ""),
            ("write_iops_log", ""),
            ("log_avg_msec", "500"),
            ("bs", "4k"),
        ]);
        let mut l = JobLogs::new(&o, None, Some(2000)).unwrap();
        l.start(&[0; 3], &[0; 3]);
        // Not yet: 498 ms of a 500 ms window (2 ms short is past fio's 1 ms slack).
        l.tick(498, &[4096 * 100, 0, 0], &[100, 0, 0]);
        assert!(l.bw.as_ref().unwrap().samples.is_empty());
        l.tick(500, &[4096 * 1000, 0, 0], &[1000, 0, 0]);
        // A window 1 ms short is taken (the slack).
        l.tick(999, &[4096 * 1500, 0, 0], &[1500, 0, 0]);
        // 1000 I/Os of 4 KiB in 500 ms: 8000 KiB/s, 2000 IOPS; then 500 in 499 ms.
        assert_eq!(
            text(l.bw.as_ref().unwrap(), false),
            "500, 8000, 0, 0, 0\n999, 4008, 0, 0, 0\n"
        );
        assert_eq!(
            text(l.iops.as_ref().unwrap(), false),
            "500, 2000, 0, 0, 0\n999, 1002, 0, 0, 0\n"
        );
        // A direction without I/O in the window gets no line.
        let o = opts(&[
            ("write_bw_log", ""),
            ("log_avg_msec", "500"),
            ("bsrange", "4k-16k"),
        ]);
        let mut l = JobLogs::new(&o, None, Some(2000)).unwrap();
        l.start(&[0; 3], &[0; 3]);
        l.tick(500, &[0, 1 << 20, 0], &[0, 100, 0]);
        assert_eq!(text(l.bw.as_ref().unwrap(), false), "500, 2048, 1, 0, 0\n");
        // log_avg_msec=1: a tick in the same millisecond as the window's start logs nothing
        // and keeps its I/Os for the next line (not a rate of 0 that loses them).
        let o = opts(&[("write_iops_log", ""), ("log_avg_msec", "1")]);
        let mut l = JobLogs::new(&o, None, Some(2000)).unwrap();
        l.start(&[0; 3], &[0; 3]);
        l.tick(0, &[4096 * 5, 0, 0], &[5, 0, 0]);
        l.tick(1, &[4096 * 10, 0, 0], &[10, 0, 0]);
        assert_eq!(text(l.iops.as_ref().unwrap(), false), "1, 10000, 0, 0, 0\n");
    }

    #[test]
    fn histogram_lines_hold_the_bins_since_the_last_line() {
        let o = opts(&[("write_hist_log", "h"), ("log_hist_msec", "100")]);
        let mut l = JobLogs::new(&o, None, None).unwrap();
        // Bins: below 128 ns a bin per ns; 1000 ns is bin 64 + 2*... as fio's plat_val_to_idx.
        l.io(1, Ddir::Read, 4096, 0, 0, 100);
        l.io(50, Ddir::Read, 4096, 0, 0, 100);
        l.io(101, Ddir::Read, 4096, 0, 0, 5);
        l.io(150, Ddir::Read, 4096, 0, 0, 5);
        l.io(230, Ddir::Read, 4096, 0, 0, 100);
        let h = l.hist.as_ref().unwrap();
        assert_eq!(h.heads, vec![(101, 0, 4096), (230, 0, 4096)]);
        let line = |i: usize| {
            let mut out = Vec::new();
            write_hist_line(
                &mut out,
                h.heads[i],
                &h.counts[i * PLAT_NR..(i + 1) * PLAT_NR],
            )
            .unwrap();
            String::from_utf8(out).unwrap()
        };
        let first = line(0);
        let cols: Vec<&str> = first.trim_end().split(", ").collect();
        assert_eq!(cols.len(), 3 + 1856, "time, ddir, bs and fio's 1856 bins");
        assert_eq!(&cols[..3], ["101", "0", "4096"]);
        assert_eq!((cols[3 + 100], cols[3 + 5]), ("2", "1"));
        assert_eq!(cols[3..].iter().filter(|c| **c != "0").count(), 2);
        // The second line: what came after the first (5 at 150 ms, 100 at 230 ms).
        let second = line(1);
        let cols: Vec<&str> = second.trim_end().split(", ").collect();
        assert_eq!((cols[3 + 100], cols[3 + 5]), ("1", "1"));
        // Coarseness 2 sums 4 bins a column.
        let o = opts(&[
            ("write_hist_log", ""),
            ("log_hist_msec", "10"),
            ("log_hist_coarseness", "2"),
        ]);
        let mut l = JobLogs::new(&o, None, None).unwrap();
        l.io(1, Ddir::Write, 4096, 0, 0, 4);
        l.io(12, Ddir::Write, 4096, 0, 0, 7);
        let h = l.hist.as_ref().unwrap();
        assert_eq!(h.columns(), 464);
        assert_eq!(h.heads, vec![(12, 1, 4096)]);
        assert_eq!(&h.counts[..3], [0, 2, 0]);
    }

    #[test]
    fn a_full_buffer_keeps_its_first_lines_and_counts_the_rest() {
        let o = opts(&[("write_iops_log", "")]);
        let mut l = JobLogs::new(&o, Some(2), None).unwrap();
        for t in 0..5 {
            l.io(t, Ddir::Read, 512, 0, 0, 1000);
        }
        let log = l.iops.as_ref().unwrap();
        assert_eq!((log.samples.len(), log.dropped), (2, 3));
        assert_eq!(log.samples[1].time_ms, 1);
    }
}
