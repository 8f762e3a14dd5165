//! The live status line, as fio's ETA line:
//! `Jobs: 2 (f=2): [r(2)][45.0%][r=1234MiB/s][r=316k IOPS][eta 00m:05s]`, rewritten in
//! place with `\r` on stderr once a second while the jobs run.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::format::{num2str, Unit};
use crate::bench::engine::{Phase, Progress};
use crate::bench::options::{JobOptions, RwMode};

/// One job thread as the status line sees it.
pub struct Watched {
    pub opts: Arc<JobOptions>,
    pub progress: Arc<Progress>,
    /// Bytes the measured phase moves (for the percentage when not time based).
    pub io_size: u64,
}

/// Tracks rates between two status updates.
pub struct StatusLine {
    started: Instant,
    last: Instant,
    last_ios: [u64; 3],
    last_bytes: [u64; 3],
    last_len: usize,
}

fn state_char(rw: RwMode, phase: Phase) -> char {
    match phase {
        Phase::Setup => 'P',
        Phase::Ramp => '/',
        Phase::Verifying => 'V',
        Phase::Done => '_',
        Phase::Running => match rw {
            RwMode::Read => 'R',
            RwMode::RandRead => 'r',
            RwMode::Write => 'W',
            RwMode::RandWrite => 'w',
            RwMode::ReadWrite => 'M',
            RwMode::RandRw => 'm',
            RwMode::Trim => 'D',
            RwMode::RandTrim => 'd',
        },
    }
}

/// fio's `eta_to_str`: days and hours only when non-zero, always minutes and seconds.
fn eta_str(d: Duration) -> String {
    let s = d.as_secs();
    let (days, h, m, sec) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    let mut out = String::new();
    if days > 0 {
        let _ = write!(out, "{days}d:");
    }
    if h > 0 || days > 0 {
        let _ = write!(out, "{h:02}h:");
    }
    let _ = write!(out, "{m:02}m:{sec:02}s");
    out
}

impl StatusLine {
    pub fn new(started: Instant) -> Self {
        StatusLine {
            started,
            last: started,
            last_ios: [0; 3],
            last_bytes: [0; 3],
            last_len: 0,
        }
    }

    /// The line for the jobs' current state (without `\r`).
    pub fn render(&mut self, jobs: &[Watched]) -> String {
        let now = Instant::now();
        let secs = now.duration_since(self.last).as_secs_f64().max(1e-3);
        let mut ios = [0u64; 3];
        let mut bytes = [0u64; 3];
        let mut running = 0;
        let mut runstr = String::new();
        let mut prev: Option<(char, usize)> = None;
        let mut fraction_sum = 0.0;
        let mut eta = Duration::ZERO;
        let elapsed = now.duration_since(self.started);
        for j in jobs {
            let phase = Phase::from_u8(j.progress.phase.load(Ordering::Relaxed));
            if phase != Phase::Done {
                running += 1;
            }
            let c = state_char(j.opts.rw, phase);
            prev = match prev {
                Some((p, n)) if p == c => Some((p, n + 1)),
                Some((p, n)) => {
                    let _ = write!(runstr, "{p}({n}),");
                    Some((c, 1))
                }
                None => Some((c, 1)),
            };
            let mut done_bytes = 0;
            for d in 0..3 {
                ios[d] += j.progress.ios[d].load(Ordering::Relaxed);
                let b = j.progress.bytes[d].load(Ordering::Relaxed);
                bytes[d] += b;
                done_bytes += b;
            }
            // Progress of this job: by time when time-limited, else by bytes.
            let total_time = j.opts.ramp_time + j.opts.runtime.unwrap_or_default();
            let (fraction, left) = if phase == Phase::Done {
                (1.0, Duration::ZERO)
            } else if j.opts.time_based || (j.opts.runtime.is_some() && j.io_size == 0) {
                let f = elapsed.as_secs_f64() / total_time.as_secs_f64().max(1e-3);
                (f.min(1.0), total_time.saturating_sub(elapsed))
            } else {
                let f = done_bytes as f64 / j.io_size.max(1) as f64;
                let f = f.min(1.0);
                let left = if f > 0.0 {
                    Duration::from_secs_f64(elapsed.as_secs_f64() * (1.0 - f) / f)
                } else {
                    Duration::ZERO
                };
                (f, left)
            };
            fraction_sum += fraction;
            eta = eta.max(left);
        }
        if let Some((p, n)) = prev {
            let _ = write!(runstr, "{p}({n})");
        }
        let pct = fraction_sum * 100.0 / jobs.len().max(1) as f64;
        let mut line = format!("Jobs: {running} (f={running}): [{runstr}][{pct:3.1}%]");
        let names = ['r', 'w', 't'];
        let mut bw_parts = Vec::new();
        let mut iops_parts = Vec::new();
        for d in 0..3 {
            let di = ios[d].saturating_sub(self.last_ios[d]);
            let db = bytes[d].saturating_sub(self.last_bytes[d]);
            if di > 0 {
                let bw = (db as f64 / secs) as u64;
                bw_parts.push(format!(
                    "{}={}",
                    names[d],
                    num2str(bw, 4, true, Unit::BytePerSec)
                ));
                iops_parts.push(format!(
                    "{}={}",
                    names[d],
                    num2str((di as f64 / secs) as u64, 4, false, Unit::None)
                ));
            }
        }
        if !bw_parts.is_empty() {
            let _ = write!(
                line,
                "[{}][{} IOPS]",
                bw_parts.join(","),
                iops_parts.join(",")
            );
        }
        let _ = write!(line, "[eta {}]", eta_str(eta));
        self.last = now;
        self.last_ios = ios;
        self.last_bytes = bytes;
        line
    }

    /// `\r` + the line, padded to erase a longer previous one.
    pub fn overwrite(&mut self, line: &str) -> String {
        let pad = self.last_len.saturating_sub(line.len());
        self.last_len = line.len();
        format!("\r{line}{}", " ".repeat(pad))
    }

    /// The line just written stays (`--eta-newline`): the next one starts on a new line.
    pub fn newline(&mut self) {
        self.last_len = 0;
    }

    /// Erases the line.
    pub fn clear(&mut self) -> String {
        let s = format!("\r{}\r", " ".repeat(self.last_len));
        self.last_len = 0;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_and_line_follow_fio() {
        assert_eq!(eta_str(Duration::from_secs(91)), "01m:31s");
        assert_eq!(eta_str(Duration::from_secs(3723)), "01h:02m:03s");
        assert_eq!(
            eta_str(Duration::from_secs(2 * 86400 + 5)),
            "2d:00h:00m:05s"
        );
        let opts = Arc::new(JobOptions {
            rw: RwMode::RandRead,
            runtime: Some(Duration::from_secs(10)),
            time_based: true,
            ..JobOptions::default()
        });
        let jobs: Vec<Watched> = (0..2)
            .map(|_| Watched {
                opts: Arc::clone(&opts),
                progress: Arc::new(Progress::default()),
                io_size: 0,
            })
            .collect();
        for j in &jobs {
            j.progress
                .phase
                .store(Phase::Running as u8, Ordering::Relaxed);
            j.progress.ios[0].store(1000, Ordering::Relaxed);
            j.progress.bytes[0].store(4096 * 1000, Ordering::Relaxed);
        }
        let mut s = StatusLine::new(Instant::now());
        let line = s.render(&jobs);
        assert!(line.starts_with("Jobs: 2 (f=2): [r(2)]["), "{line}");
        assert!(line.contains("[r="), "{line}");
        assert!(line.contains(" IOPS][eta "), "{line}");
    }
}
