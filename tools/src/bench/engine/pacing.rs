//! Pacing a job's I/O as fio does: `rate`/`rate_iops` per direction, on fio's linear
//! schedule or as a Poisson process (`rate_process`), `thinktime` after every
//! `thinktime_blocks` I/Os, and the `rate_min`/`rate_iops_min` check.
//!
//! The linear schedule is fio's `usec_for_io`: after `bytes` issued in a direction, the next
//! I/O may go at `bytes / bps` after the first one, so a job that fell behind catches up
//! and a late wake-up does not drift the rate. `rate_iops` is `rate_iops x` the smallest
//! block size in bytes per second, as fio converts it. Poisson gaps are exponential with
//! a mean of one I/O's share of a second. Thinking, as fio's `handle_thinktime`: wait for
//! the requests in flight, spin `thinktime_spin`, then sleep what is left of `thinktime`.
//! The minimum rate, as fio's `check_min_rate`: after two seconds to settle, each
//! `rate_cycle` must move at least `rate_min` bytes (or `rate_iops_min` I/Os) a second in each
//! direction that has one, or the job fails with EIO.
//!
//! Everything is sized when the job is set up: the checks on the I/O path are arithmetic on
//! a few integers (no allocation, no lock), and a job without pacing has no [`Pacer`].

use std::time::Duration;

use super::super::clock::Clock;
use super::super::options::{Ddir, JobOptions, RateProcess, ThinkBlocks};
use super::super::workload::Rng;

/// The schedule of one direction.
#[derive(Debug, Clone, Copy, Default)]
struct DirRate {
    /// Bytes per second; 0: this direction is not paced.
    bps: u64,
    /// The smallest block size, for Poisson's I/Os per second.
    min_bs: u64,
    /// Bytes issued so far.
    issued: u64,
    /// When the next I/O may go (ticks).
    next: u64,
}

/// Where a job is in its thinking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Thinking {
    No,
    /// Waiting for the requests in flight to complete.
    Quiescing,
    /// Spinning until `spin_end`, then idle until `end` (ticks).
    Until {
        spin_end: u64,
        end: u64,
    },
}

#[derive(Debug, Clone, Copy)]
struct Think {
    /// `thinktime_blocks`: I/Os between pauses.
    every: u64,
    /// Count issued I/Os (`thinktime_blocks_type=issue`) rather than completed ones.
    on_issue: bool,
    spin: u64,
    total: u64,
    /// I/Os counted, and the count at the last pause.
    counted: u64,
    last: u64,
    state: Thinking,
}

/// fio's settle time before the minimum rate is checked.
const MIN_RATE_SETTLE: Duration = Duration::from_secs(2);

/// The `rate_min` / `rate_iops_min` check.
#[derive(Debug, Clone, Copy)]
struct MinRate {
    bps: [u64; 3],
    iops: [u64; 3],
    cycle: u64,
    settle: u64,
    /// When the check began (the first completion it saw), and the current cycle's start
    /// with the counts then; `None` until the settle time is over.
    first: Option<u64>,
    cycle_start: Option<(u64, [u64; 3], [u64; 3])>,
}

/// A job clone's pacing state.
#[derive(Debug)]
pub(super) struct Pacer {
    ticks_per_sec: u64,
    dirs: [DirRate; 3],
    poisson: bool,
    rng: Rng,
    /// When the first paced I/O went: the schedule's origin.
    start: Option<u64>,
    think: Option<Think>,
    min: Option<MinRate>,
}

/// What the caller should do about an I/O the pacer holds back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hold {
    /// Keep polling (completions, or the spin part of a think).
    Poll,
    /// Nothing is in flight and nothing may go before `until` (ticks): the thread may sleep.
    Sleep { until: u64 },
}

impl Pacer {
    /// The pacing `opts` ask for, or `None` when they ask for none.
    pub(super) fn new(opts: &JobOptions, clock: &Clock, seed: u64) -> Option<Pacer> {
        let mut dirs = [DirRate::default(); 3];
        for d in Ddir::ALL {
            let i = d.index();
            let min_bs = opts.block_sizes(d).min().max(1);
            let bps = if opts.rate[i] > 0 {
                opts.rate[i]
            } else {
                opts.rate_iops[i].saturating_mul(min_bs)
            };
            dirs[i] = DirRate {
                bps,
                min_bs,
                issued: 0,
                next: 0,
            };
        }
        let think = opts.thinktime.filter(|t| !t.is_zero()).map(|t| Think {
            every: u64::from(opts.thinktime_blocks.max(1)),
            on_issue: opts.thinktime_blocks_type == ThinkBlocks::Issue,
            spin: clock.ticks(opts.thinktime_spin.min(t)),
            total: clock.ticks(t),
            counted: 0,
            last: 0,
            state: Thinking::No,
        });
        let wants_min = opts
            .rate_min
            .iter()
            .chain(&opts.rate_iops_min)
            .any(|r| *r > 0);
        let min = wants_min.then(|| MinRate {
            bps: opts.rate_min,
            iops: opts.rate_iops_min,
            cycle: clock.ticks(opts.rate_cycle),
            settle: clock.ticks(MIN_RATE_SETTLE),
            first: None,
            cycle_start: None,
        });
        if dirs.iter().all(|d| d.bps == 0) && think.is_none() && min.is_none() {
            return None;
        }
        Some(Pacer {
            ticks_per_sec: clock.ticks(Duration::from_secs(1)).max(1),
            dirs,
            poisson: opts.rate_process == RateProcess::Poisson,
            rng: Rng::new(seed ^ 0x7261_7465),
            start: None,
            think,
            min,
        })
    }

    /// fio's `check_min_rate` at `now`, with the job's running totals: why the job fails, if
    /// a cycle went by below a minimum rate. Cheap between cycles (two comparisons).
    #[inline]
    pub(super) fn check_min_rate(
        &mut self,
        now: u64,
        bytes: &[u64; 3],
        ios: &[u64; 3],
        clock: &Clock,
    ) -> Option<String> {
        let m = self.min.as_mut()?;
        let first = *m.first.get_or_insert(now);
        if now < first + m.settle {
            return None;
        }
        let Some((at, base_bytes, base_ios)) = m.cycle_start else {
            m.cycle_start = Some((now, *bytes, *ios));
            return None;
        };
        if now < at + m.cycle {
            return None;
        }
        let secs = clock.between(at, now).as_secs_f64().max(1e-9);
        for d in Ddir::ALL {
            let i = d.index();
            // As fio, only the directions the job has done I/O in (a per-direction value
            // without commas sets all three).
            if ios[i] == 0 {
                continue;
            }
            if m.bps[i] > 0 {
                let rate = ((bytes[i] - base_bytes[i]) as f64 / secs) as u64;
                if rate < m.bps[i] {
                    return Some(format!(
                        "{}: rate_min={}B/s not met, got {rate}B/s",
                        d.name(),
                        m.bps[i]
                    ));
                }
            } else if m.iops[i] > 0 {
                let rate = ((ios[i] - base_ios[i]) as f64 / secs) as u64;
                if rate < m.iops[i] {
                    return Some(format!(
                        "{}: rate_iops_min={} not met, got {rate} IOPS",
                        d.name(),
                        m.iops[i]
                    ));
                }
            }
        }
        m.cycle_start = Some((now, *bytes, *ios));
        None
    }

    /// Whether an I/O in `ddir` may be issued at `now`, with `in_flight` requests out;
    /// if not, what to do meanwhile.
    #[inline]
    pub(super) fn ready(&mut self, ddir: Ddir, now: u64, in_flight: u32) -> Result<(), Hold> {
        if let Some(t) = &mut self.think {
            match t.state {
                Thinking::No => {}
                Thinking::Quiescing => {
                    if in_flight > 0 {
                        return Err(Hold::Poll);
                    }
                    let spin_end = now + t.spin;
                    t.state = Thinking::Until {
                        spin_end,
                        end: now + t.total,
                    };
                    return Err(if t.spin > 0 {
                        Hold::Poll
                    } else {
                        Hold::Sleep {
                            until: now + t.total,
                        }
                    });
                }
                Thinking::Until { spin_end, end } => {
                    if now < spin_end {
                        return Err(Hold::Poll);
                    }
                    if now < end {
                        return Err(Hold::Sleep { until: end });
                    }
                    t.state = Thinking::No;
                    t.last = t.counted;
                }
            }
        }
        let d = &self.dirs[ddir.index()];
        if d.bps == 0 {
            return Ok(());
        }
        let start = *self.start.get_or_insert(now);
        let next = start + d.next;
        if now >= next {
            Ok(())
        } else if in_flight == 0 {
            Err(Hold::Sleep { until: next })
        } else {
            Err(Hold::Poll)
        }
    }

    /// Counts an I/O of `bytes` in `ddir` issued, and schedules the next one.
    #[inline]
    pub(super) fn issued(&mut self, ddir: Ddir, bytes: u64) {
        let tps = self.ticks_per_sec;
        let d = &mut self.dirs[ddir.index()];
        if d.bps > 0 {
            d.issued += bytes;
            d.next = if self.poisson {
                // fio: (1e6 / iops) x -ln(U), U uniform in (0, 1].
                let iops = (d.bps / d.min_bs).max(1);
                let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                let gap = -(1.0 - u).ln() * tps as f64 / iops as f64;
                d.next + gap as u64
            } else {
                (u128::from(d.issued) * u128::from(tps) / u128::from(d.bps)) as u64
            };
        }
        if let Some(t) = &mut self.think {
            if t.on_issue {
                t.counted += 1;
                t.check();
            }
        }
    }

    /// Counts a completion (for `thinktime_blocks_type=complete`, fio's default).
    #[inline]
    pub(super) fn completed(&mut self) {
        if let Some(t) = &mut self.think {
            if !t.on_issue {
                t.counted += 1;
                t.check();
            }
        }
    }
}

impl Think {
    #[inline]
    fn check(&mut self) {
        if self.state == Thinking::No && self.counted >= self.last + self.every {
            self.state = Thinking::Quiescing;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacer(args: &[(&str, &str)]) -> (Pacer, Clock) {
        let mut o = JobOptions::default();
        for (k, v) in args {
            o.set(k, Some(v)).unwrap();
        }
        let clock = Clock::calibrate(false);
        (Pacer::new(&o, &clock, 1).expect("paced"), clock)
    }

    #[test]
    fn no_pacing_options_no_pacer() {
        let clock = Clock::calibrate(false);
        assert!(Pacer::new(&JobOptions::default(), &clock, 1).is_none());
    }

    #[test]
    fn linear_rate_iops_follows_the_schedule_and_catches_up() {
        let (mut p, clock) = pacer(&[("rate_iops", "1000"), ("bs", "4k")]);
        let ms = clock.ticks(Duration::from_millis(1));
        let t0 = 1_000_000;
        assert_eq!(p.ready(Ddir::Read, t0, 0), Ok(()));
        p.issued(Ddir::Read, 4096);
        // The next one is due 1 ms after the first.
        assert!(matches!(
            p.ready(Ddir::Read, t0 + ms / 2, 1),
            Err(Hold::Poll)
        ));
        assert_eq!(
            p.ready(Ddir::Read, t0 + ms / 2, 0),
            Err(Hold::Sleep { until: t0 + ms })
        );
        assert_eq!(p.ready(Ddir::Read, t0 + ms, 0), Ok(()));
        p.issued(Ddir::Read, 4096);
        // Late: the six I/Os due by 7 ms go at once, then the schedule holds again.
        let late = t0 + 7 * ms;
        for _ in 0..6 {
            assert_eq!(p.ready(Ddir::Read, late, 3), Ok(()));
            p.issued(Ddir::Read, 4096);
        }
        assert!(p.ready(Ddir::Read, late, 3).is_err());
        // Writes are not paced when only reads are.
        assert_eq!(p.ready(Ddir::Write, late, 3), Ok(()));
    }

    #[test]
    fn rate_in_bytes_per_direction() {
        // rate=,1m: writes at 1 MiB/s, reads free; 256 KiB is a quarter of a second.
        let (mut p, clock) = pacer(&[("rate", ",1m"), ("rw", "randrw")]);
        let t0 = 5;
        assert_eq!(p.ready(Ddir::Read, t0, 0), Ok(()));
        assert_eq!(p.ready(Ddir::Write, t0, 0), Ok(()));
        p.issued(Ddir::Write, 256 << 10);
        let quarter = clock.ticks(Duration::from_millis(250));
        assert!(p.ready(Ddir::Write, t0 + quarter - 10, 0).is_err());
        assert_eq!(p.ready(Ddir::Write, t0 + quarter, 0), Ok(()));
    }

    #[test]
    fn poisson_gaps_average_the_rate() {
        let (mut p, clock) = pacer(&[("rate_iops", "1000"), ("rate_process", "poisson")]);
        let n = 20_000u64;
        for _ in 0..n {
            p.issued(Ddir::Read, 4096);
        }
        let mean_ms = clock.between(0, p.dirs[0].next).as_secs_f64() * 1000.0 / n as f64;
        assert!((mean_ms - 1.0).abs() < 0.03, "mean gap {mean_ms} ms");
    }

    #[test]
    fn a_minimum_rate_is_checked_each_cycle_after_the_settle_time() {
        let (mut p, clock) = pacer(&[("rate_iops_min", "100"), ("rate_cycle", "500")]);
        let ms = |n| clock.ticks(Duration::from_millis(n));
        let check =
            |p: &mut Pacer, at: u64, ios: u64| p.check_min_rate(at, &[0; 3], &[ios, 0, 0], &clock);
        // Nothing during the first two seconds, however slow.
        assert_eq!(check(&mut p, 1, 0), None);
        assert_eq!(check(&mut p, ms(1999), 0), None);
        // The first cycle starts at 2 s: 60 reads in 500 ms is 120 IOPS, fine.
        assert_eq!(check(&mut p, ms(2000) + 1, 1000), None);
        assert_eq!(check(&mut p, ms(2400), 1040), None);
        assert_eq!(check(&mut p, ms(2500) + 1, 1060), None);
        // The next: 40 in 500 ms is 80 IOPS.
        let e = check(&mut p, ms(3000) + 1, 1100).expect("below the minimum");
        let got: u64 = e
            .strip_prefix("read: rate_iops_min=100 not met, got ")
            .and_then(|r| r.strip_suffix(" IOPS"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{e}"));
        assert!((79..=80).contains(&got), "{e}");
        // A rate_min in bytes, for writes only.
        let (mut p, clock) = pacer(&[("rate_min", ",1m")]);
        let ms = |n| clock.ticks(Duration::from_millis(n));
        assert_eq!(p.check_min_rate(1, &[0; 3], &[0; 3], &clock), None);
        assert_eq!(
            p.check_min_rate(ms(2000) + 1, &[0; 3], &[0; 3], &clock),
            None
        );
        let e = p
            .check_min_rate(ms(3000) + 1, &[0, 512 << 10, 0], &[0, 128, 0], &clock)
            .expect("half of 1 MiB/s");
        assert!(e.starts_with("write: rate_min=1048576B/s not met"), "{e}");
    }

    #[test]
    fn thinktime_waits_for_the_queue_then_spins_then_sleeps() {
        let (mut p, clock) = pacer(&[
            ("thinktime", "1000"),
            ("thinktime_spin", "200"),
            ("thinktime_blocks", "2"),
        ]);
        let us = |n| clock.ticks(Duration::from_micros(n));
        let t = 1000;
        assert_eq!(p.ready(Ddir::Read, t, 0), Ok(()));
        p.issued(Ddir::Read, 4096);
        p.issued(Ddir::Read, 4096);
        p.completed();
        assert_eq!(p.ready(Ddir::Read, t, 1), Ok(()));
        // The second completion makes two: think, once the queue is empty.
        p.completed();
        assert_eq!(p.ready(Ddir::Read, t, 1), Err(Hold::Poll));
        assert_eq!(p.ready(Ddir::Read, t, 0), Err(Hold::Poll));
        assert_eq!(p.ready(Ddir::Read, t + us(100), 0), Err(Hold::Poll));
        assert_eq!(
            p.ready(Ddir::Read, t + us(300), 0),
            Err(Hold::Sleep {
                until: t + us(1000)
            })
        );
        assert_eq!(p.ready(Ddir::Read, t + us(1000), 0), Ok(()));
        // Counting starts again from there.
        p.completed();
        assert_eq!(p.ready(Ddir::Read, t + us(1000), 0), Ok(()));
    }
}
