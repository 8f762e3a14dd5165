//! The benchmark's clock: the CPU's time-stamp counter, calibrated against the OS clock, or
//! the OS clock itself.
//!
//! Latency needs three timestamps per I/O. Where the kernel's clocksource is not the TSC
//! (a TCG guest uses the HPET), every `clock_gettime` is a system call plus an emulated MMIO
//! read, which costs more than the I/O being measured. fio has the same problem and the same
//! answer (`clocksource=cpu`). The TSC is used by a thread pinned to one CPU (a TCG guest does
//! not keep the CPUs' counters in step) when two calibration windows agree on its rate within
//! 1%; `UVIO_BENCH_CLOCK=os` forces the OS clock, `=tsc` the TSC.
//!
//! Self-contained (std only): `tests/examples/blkio-bench.rs` includes this same file, so that
//! libblkio is timed exactly as uvio is.

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

/// Ticks per nanosecond of the TSC over a window of `window`.
fn measure(window: Duration) -> f64 {
    let (t0, c0) = (Instant::now(), rdtsc());
    while t0.elapsed() < window {
        std::hint::spin_loop();
    }
    let (t1, c1) = (Instant::now(), rdtsc());
    let ns = t1.duration_since(t0).as_nanos() as f64;
    c1.wrapping_sub(c0) as f64 / ns
}

impl Clock {
    /// Picks and calibrates the clock (about 40 ms when the TSC is tried). The TSC is only
    /// considered for a thread `pinned` to one CPU, unless `UVIO_BENCH_CLOCK=tsc`.
    pub fn calibrate(pinned: bool) -> Clock {
        let os = Clock {
            ns_per_tick_q32: 1 << 32,
            source: Source::Os,
            origin: Instant::now(),
        };
        let wanted = std::env::var("UVIO_BENCH_CLOCK").unwrap_or_default();
        if !cfg!(target_arch = "x86_64") || wanted == "os" || (!pinned && wanted != "tsc") {
            return os;
        }
        let a = measure(Duration::from_millis(20));
        let b = measure(Duration::from_millis(20));
        let agree = a > 0.01 && b > 0.01 && ((a - b) / a).abs() < 0.01;
        if !agree && wanted != "tsc" {
            return os;
        }
        let rate = (a + b) / 2.0;
        Clock {
            ns_per_tick_q32: ((1u64 << 32) as f64 / rate) as u64,
            source: Source::Tsc,
            origin: os.origin,
        }
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
}
