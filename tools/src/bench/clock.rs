//! The benchmark's clock: the CPU's time-stamp counter, calibrated against the OS clock, or
//! the OS clock itself.
//!
//! Latency needs timestamps per I/O. Where the kernel's clocksource is not the TSC (a TCG
//! guest uses the HPET), every `clock_gettime` is a system call plus an emulated MMIO read
//! (about 3 us there, against 0.05 us for RDTSC), which costs more than the I/O being
//! measured: at iodepth 32 a run on the OS clock there does less than half the IOPS, and rings
//! the doorbell for 40-60% of its requests instead of 15-25%, because the device keeps
//! catching up with the slowed driver. fio has the same problem and the same answer
//! (`clocksource=cpu`).
//!
//! The TSC is used by a thread pinned to one CPU (a TCG guest does not keep the CPUs' counters
//! in step). Calibration takes OS clock readings about 10 ms apart, each bracketed by two TSC
//! reads and kept from the tightest of several tries, so a reading that was preempted or
//! interrupted shows as a wide bracket and is not believed; windows whose brackets leave the
//! rate uncertain by more than [`MAX_UNCERTAINTY`] are skipped and more are taken. The TSC is
//! refused only when the clean windows disagree about its rate (beyond their brackets plus
//! [`TOLERANCE`]), when it does not advance, or when no clean window can be had at all. The OS
//! clock is then used and a note says so on stderr (once per process).
//!
//! `UVIO_BENCH_CLOCK=os` forces the OS clock, `=tsc` the TSC (with whatever rate was measured).
//! `UVIO_BENCH_CLOCK_DEBUG=1` prints every calibration's windows on stderr.
//!
//! Self-contained (std only): `tests/examples/blkio-bench.rs` includes this same file, so that
//! libblkio is timed exactly as uvio is.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Converts raw ticks to nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Nanoseconds per tick, as a 32.32 fixed-point number.
    ns_per_tick_q32: u64,
    source: Source,
    origin: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Tsc,
    Os,
}

/// The spacing of the calibration's OS clock readings.
const WINDOW: Duration = Duration::from_millis(10);
/// Clean windows wanted; calibration takes about `WINDOWS` x `WINDOW` when nothing disturbs it.
const WINDOWS: usize = 5;
/// Windows taken at most, clean or not, before giving up (about 300 ms).
const MAX_WINDOWS: usize = 30;
/// Tries per OS clock reading; the tightest TSC bracket is kept.
const TRIES: usize = 5;
/// A window whose brackets leave its rate uncertain by more than this is skipped.
const MAX_UNCERTAINTY: f64 = 0.002;
/// How far a clean window's rate may stray from the median, beyond its brackets' uncertainty.
const TOLERANCE: f64 = 0.005;

/// Why the last calibration in this process did not pick the TSC (for the reports).
static NOT_TSC: Mutex<Option<String>> = Mutex::new(None);

#[cfg(target_arch = "x86_64")]
#[inline]
fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no preconditions on x86_64.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn rdtsc() -> u64 {
    0
}

/// RDTSC kept in program order with the loads around it (LFENCE on both sides), for brackets.
#[cfg(target_arch = "x86_64")]
fn rdtsc_ordered() -> u64 {
    // SAFETY: LFENCE (SSE2, part of x86_64) and RDTSC have no preconditions.
    unsafe {
        core::arch::x86_64::_mm_lfence();
        let t = core::arch::x86_64::_rdtsc();
        core::arch::x86_64::_mm_lfence();
        t
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn rdtsc_ordered() -> u64 {
    0
}

/// One OS clock reading and the TSC at that moment, to within `width` ticks.
#[derive(Debug, Clone, Copy)]
struct Reading {
    /// The middle of the bracket.
    tsc: u64,
    /// Nanoseconds since the calibration's origin.
    ns: u64,
    /// The bracket: ticks between the TSC reads on either side of the OS clock read.
    width: u64,
}

/// The OS clock read `TRIES` times, each between two TSC reads; the tightest bracket wins.
fn reading(origin: Instant) -> Reading {
    let mut best: Option<Reading> = None;
    for _ in 0..TRIES {
        let c0 = rdtsc_ordered();
        let ns = origin.elapsed().as_nanos() as u64;
        let c1 = rdtsc_ordered();
        // A TSC that runs backwards gives a huge width: never the best, and caught below.
        let width = c1.wrapping_sub(c0);
        if best.is_none_or(|b| width < b.width) {
            best = Some(Reading {
                tsc: c0.wrapping_add(width / 2),
                ns,
                width,
            });
        }
    }
    best.expect("TRIES > 0")
}

/// The TSC's rate between two readings.
#[derive(Debug, Clone, Copy)]
struct Window {
    ticks: u64,
    ns: u64,
    /// Ticks per nanosecond.
    rate: f64,
    /// Relative uncertainty of `rate` from the two brackets.
    uncertainty: f64,
}

impl Window {
    fn between(a: Reading, b: Reading) -> Window {
        let ticks = b.tsc.wrapping_sub(a.tsc);
        let ns = b.ns.saturating_sub(a.ns).max(1);
        let backwards = ticks > u64::MAX / 2;
        Window {
            ticks,
            ns,
            rate: if backwards {
                0.0
            } else {
                ticks as f64 / ns as f64
            },
            uncertainty: if backwards || ticks == 0 {
                f64::INFINITY
            } else {
                // Half of each bracket, plus a nanosecond of OS clock resolution at each end.
                (a.width / 2 + b.width / 2) as f64 / ticks as f64 + 2.0 / ns as f64
            },
        }
    }

    fn clean(&self) -> bool {
        self.uncertainty <= MAX_UNCERTAINTY
    }
}

/// Takes readings [`WINDOW`] apart until [`WINDOWS`] clean windows (or [`MAX_WINDOWS`] in
/// all) were measured.
fn measure_windows(debug: bool) -> Vec<Window> {
    let origin = Instant::now();
    let mut windows: Vec<Window> = Vec::with_capacity(MAX_WINDOWS);
    // A throw-away reading first: in a fresh process the first OS clock read and the code
    // around it run for the first time (page faults, and under TCG code translation), which
    // once delayed the old calibration's first TSC read by 370 us.
    reading(origin);
    let mut last = reading(origin);
    let first_width = last.width;
    while windows.len() < MAX_WINDOWS && windows.iter().filter(|w| w.clean()).count() < WINDOWS {
        // Spin rather than sleep: the TSC is then measured as the benchmark uses it, on a
        // busy CPU (an idle CPU might stop a TSC that is not invariant).
        let until = last.ns + WINDOW.as_nanos() as u64;
        while (origin.elapsed().as_nanos() as u64) < until {
            std::hint::spin_loop();
        }
        let next = reading(origin);
        windows.push(Window::between(last, next));
        last = next;
    }
    if debug {
        let shown: Vec<String> = windows
            .iter()
            .map(|w| {
                format!(
                    "{:.5}~{:.3}%{}",
                    w.rate,
                    w.uncertainty * 100.0,
                    if w.clean() { "" } else { "(skipped)" }
                )
            })
            .collect();
        eprintln!(
            "uvio bench: clock calibration: first bracket {first_width} ticks; windows \
             (ticks/ns ~ uncertainty): {}",
            shown.join(" ")
        );
    }
    windows
}

/// The TSC's rate in ticks per nanosecond from `windows`, or why it is not usable (with the
/// best rate measured, for `UVIO_BENCH_CLOCK=tsc`).
fn judge(windows: &[Window]) -> Result<f64, (String, f64)> {
    let mut clean: Vec<Window> = windows.iter().copied().filter(Window::clean).collect();
    if clean.len() < 3 {
        let (ticks, ns) = windows
            .iter()
            .filter(|w| w.rate > 0.0)
            .fold((0u64, 0u64), |(t, n), w| (t + w.ticks, n + w.ns));
        return Err((
            format!(
                "only {} of {} windows had their OS clock reads bracketed within {:.1}% \
                 (the OS clock is too slow to read or too often interrupted)",
                clean.len(),
                windows.len(),
                MAX_UNCERTAINTY * 100.0
            ),
            ticks as f64 / ns.max(1) as f64,
        ));
    }
    clean.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    let median = clean[clean.len() / 2].rate;
    if median < 0.01 {
        return Err((
            format!("the TSC does not advance ({median:.5} ticks/ns)"),
            median,
        ));
    }
    let off = |w: &Window| ((w.rate - median) / median).abs();
    let (agree, disagree): (Vec<Window>, Vec<Window>) = clean
        .iter()
        .partition(|w| off(w) <= TOLERANCE + w.uncertainty);
    // One stray window in four or more (a TSC stepped once, a clock adjustment) is tolerated
    // and left out; more means the TSC's rate is not steady.
    if disagree.len() * 4 > clean.len() {
        let spread = clean.iter().map(off).fold(0.0, f64::max);
        return Err((
            format!(
                "{} of {} windows disagree with the median rate by up to {:.2}%",
                disagree.len(),
                clean.len(),
                spread * 100.0
            ),
            median,
        ));
    }
    let ticks: u64 = agree.iter().map(|w| w.ticks).sum();
    let ns: u64 = agree.iter().map(|w| w.ns).sum();
    Ok(ticks as f64 / ns as f64)
}

impl Clock {
    /// Picks and calibrates the clock (about 50 ms when the TSC is tried). The TSC is only
    /// considered for a thread `pinned` to one CPU, unless `UVIO_BENCH_CLOCK=tsc`.
    pub fn calibrate(pinned: bool) -> Clock {
        let os = Clock {
            ns_per_tick_q32: 1 << 32,
            source: Source::Os,
            origin: Instant::now(),
        };
        let wanted = std::env::var("UVIO_BENCH_CLOCK").unwrap_or_default();
        let debug = std::env::var("UVIO_BENCH_CLOCK_DEBUG").is_ok_and(|v| v == "1");
        let why_not = if !cfg!(target_arch = "x86_64") {
            Some("no TSC on this architecture".to_string())
        } else if wanted == "os" {
            Some("UVIO_BENCH_CLOCK=os".to_string())
        } else if !pinned && wanted != "tsc" {
            Some("the thread is not pinned to one CPU".to_string())
        } else {
            None
        };
        if let Some(why) = why_not {
            return os.not_tsc(why);
        }
        let rate = match judge(&measure_windows(debug)) {
            Ok(rate) => rate,
            Err((why, rate)) if wanted == "tsc" => {
                eprintln!(
                    "uvio bench: warning: UVIO_BENCH_CLOCK=tsc although TSC calibration \
                     failed ({why}); latencies may be wrong"
                );
                rate
            }
            Err((why, _)) => return os.not_tsc(format!("TSC calibration failed: {why}")),
        };
        if debug {
            eprintln!("uvio bench: clock: tsc at {rate:.5} ticks/ns");
        }
        Clock {
            ns_per_tick_q32: ((1u64 << 32) as f64 / rate.max(1e-9)) as u64,
            source: Source::Tsc,
            origin: os.origin,
        }
    }

    /// Records why the clock is not the TSC and says so on stderr, once per process.
    fn not_tsc(self, why: String) -> Clock {
        let mut note = NOT_TSC.lock().unwrap_or_else(|p| p.into_inner());
        if note.is_none() {
            eprintln!("uvio bench: note: {}", os_clock_note(&why));
        }
        *note = Some(why);
        self
    }

    /// The current time in ticks.
    #[inline]
    pub fn now(&self) -> u64 {
        match self.source {
            Source::Tsc => rdtsc(),
            Source::Os => self.origin.elapsed().as_nanos() as u64,
        }
    }

    /// Nanoseconds in `ticks`.
    #[inline]
    pub fn ns(&self, ticks: u64) -> u64 {
        ((u128::from(ticks) * u128::from(self.ns_per_tick_q32)) >> 32) as u64
    }

    /// Ticks in `d`.
    pub fn ticks(&self, d: Duration) -> u64 {
        ((d.as_nanos() << 32) / u128::from(self.ns_per_tick_q32.max(1))) as u64
    }

    /// The duration between two readings.
    #[inline]
    pub fn between(&self, earlier: u64, later: u64) -> Duration {
        Duration::from_nanos(self.ns(later.saturating_sub(earlier)))
    }

    /// `tsc` or `os`, for the report.
    pub fn name(&self) -> &'static str {
        match self.source {
            Source::Tsc => "tsc",
            Source::Os => "os",
        }
    }
}

fn os_clock_note(why: &str) -> String {
    format!(
        "clock is the OS clock ({why}); where the OS clock is not the TSC (e.g. the HPET in a \
         TCG guest) every latency stamp costs a system call, which lowers IOPS"
    )
}

/// The note for a report whose clock is `os`: why calibration did not pick the TSC (the last
/// reason seen in this process).
pub fn not_tsc_note() -> String {
    let why = NOT_TSC.lock().unwrap_or_else(|p| p.into_inner()).clone();
    os_clock_note(why.as_deref().unwrap_or("reason unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_measures_wall_time() {
        let c = Clock::calibrate(false);
        let t0 = c.now();
        let i0 = Instant::now();
        std::thread::sleep(Duration::from_millis(30));
        let measured = c.between(t0, c.now()).as_secs_f64();
        let real = i0.elapsed().as_secs_f64();
        assert!(
            (measured - real).abs() < real * 0.05 + 0.002,
            "{measured} vs {real}"
        );
        let round_trip = c.ns(c.ticks(Duration::from_millis(5))) as i64;
        assert!((round_trip - 5_000_000).abs() < 1000, "{round_trip}");
    }

    /// A 10 ms window at `rate` ticks/ns, its brackets `uncertainty` wide (relative).
    fn window(rate: f64, uncertainty: f64) -> Window {
        let ns = WINDOW.as_nanos() as u64;
        Window {
            ticks: (rate * ns as f64) as u64,
            ns,
            rate,
            uncertainty,
        }
    }

    #[test]
    fn steady_windows_give_their_rate() {
        let w: Vec<Window> = [2.7, 2.7003, 2.6998, 2.7001, 2.6999]
            .iter()
            .map(|&r| window(r, 0.0005))
            .collect();
        let rate = judge(&w).unwrap();
        assert!((rate - 2.7).abs() < 0.001, "{rate}");
    }

    #[test]
    fn a_preempted_window_is_skipped_not_fatal() {
        // The old two-window check failed here: one window 3% off because a reading was
        // delayed, which its wide bracket shows.
        let mut w = vec![window(2.7, 0.0005), window(2.78, 0.04)];
        w.extend((0..4).map(|_| window(2.7, 0.0005)));
        assert!(!w[1].clean());
        let rate = judge(&w).unwrap();
        assert!((rate - 2.7).abs() < 0.001, "{rate}");
    }

    #[test]
    fn one_stray_clean_window_is_left_out() {
        let mut w: Vec<Window> = (0..4).map(|_| window(2.7, 0.0005)).collect();
        w.push(window(2.8, 0.0005));
        let rate = judge(&w).unwrap();
        assert!((rate - 2.7).abs() < 0.001, "{rate}");
    }

    #[test]
    fn an_unsteady_tsc_is_refused() {
        let w: Vec<Window> = [2.7, 2.9, 2.7, 2.9, 2.6, 3.0]
            .iter()
            .map(|&r| window(r, 0.0005))
            .collect();
        let (why, _) = judge(&w).unwrap_err();
        assert!(why.contains("disagree"), "{why}");
    }

    #[test]
    fn a_stopped_tsc_is_refused() {
        let w: Vec<Window> = (0..5).map(|_| window(0.0, 0.0)).collect();
        let (why, _) = judge(&w).unwrap_err();
        assert!(why.contains("does not advance"), "{why}");
    }

    #[test]
    fn no_clean_window_is_refused() {
        let w: Vec<Window> = (0..MAX_WINDOWS).map(|_| window(2.7, 0.01)).collect();
        let (why, rate) = judge(&w).unwrap_err();
        assert!(why.contains("bracketed"), "{why}");
        assert!((rate - 2.7).abs() < 0.001, "{rate}");
    }

    #[test]
    fn readings_bracket_the_os_clock() {
        let origin = Instant::now();
        let (a, b) = (reading(origin), reading(origin));
        assert!(b.ns >= a.ns);
        let w = Window::between(a, b);
        if cfg!(target_arch = "x86_64") {
            assert!(w.ticks > 0 && w.ticks < u64::MAX / 2, "{w:?}");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_calibrated_tsc_measures_wall_time() {
        // Not pinned: a host whose CPUs' TSCs are not in step may refuse it, which is fine.
        let Ok(rate) = judge(&measure_windows(false)) else {
            return;
        };
        let c = Clock {
            ns_per_tick_q32: ((1u64 << 32) as f64 / rate) as u64,
            source: Source::Tsc,
            origin: Instant::now(),
        };
        let (t0, i0) = (c.now(), Instant::now());
        std::thread::sleep(Duration::from_millis(30));
        let measured = c.between(t0, c.now()).as_secs_f64();
        let real = i0.elapsed().as_secs_f64();
        assert!(
            (measured - real).abs() < real * 0.02 + 0.001,
            "{measured} vs {real}"
        );
    }
}
