//! `blkio-bench`: random reads through libblkio's virtio-blk-vfio-pci driver (the crates.io
//! `blkio` crate), for the libblkio column of `uvio-compare`.
//!
//! ```text
//! blkio-bench [--iodepth N] [--runtime SECONDS] [--ramp SECONDS] [--bs BYTES] [--cpu N]
//!             [--queue-size N] /sys/bus/pci/devices/0000:00:07.0
//! ```
//!
//! Opens the PCI function (bound to vfio-pci) with driver `virtio-blk-vfio-pci`, one queue
//! (`num-queues` 1, libblkio's default `queue-size` unless `--queue-size`), one mapped memory
//! region with a buffer per request, and keeps `iodepth` reads of `bs` bytes at random
//! `bs`-aligned offsets over the whole capacity in flight. Completions are busy-polled with
//! `do_io(min_completions = 0)` in a loop: no eventfd wait and no PAUSE, like `uvio bench`
//! (libblkio's own poll-queue wait loop executes PAUSE, which QEMU's TCG makes expensive). The
//! thread is pinned to `--cpu` (default 0) and reads the TSC when two calibration windows agree
//! on its rate, as `uvio bench` does; the guest's HPET would cost a system call and an emulated
//! MMIO read per timestamp.
//!
//! After the ramp (not recorded), every successful completion within the run counts. Latency is from the
//! `Blkioq::read` call (the request enters libblkio) until `do_io` hands back its completion,
//! so it includes the doorbell write (fio's `lat`, not `clat`). Prints one JSON line:
//! `{"iops":..,"bw_bytes":..,"p50_ns":..,"p99_ns":..,"p999_ns":..,"ios":..,"errors":..,...}`.
//! A failed request counts in `errors` (the first few are described on stderr); the exit status
//! is 1 if any request failed, 2 for bad arguments, 3 if the device could not be set up or
//! `do_io` failed.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::time::Duration;

use blkio::{Blkio, Completion, ReqFlags};

// The same clock, CPU pinning and random source as `uvio bench` and `uvio verify`: the tools
// crate is a binary, so its self-contained modules are included by path.
#[allow(dead_code)]
#[path = "../../tools/src/bench/clock.rs"]
mod clock;
#[allow(dead_code)]
#[path = "../../tools/src/cpu.rs"]
mod cpu;
#[path = "../../tools/src/xorshift.rs"]
mod xorshift;

use clock::Clock;
use cpu::pin_to;
use xorshift::XorShift;

/// How long requests in flight may go without any completion before the run is called lost.
const LOST_AFTER: Duration = Duration::from_secs(30);
/// Failed requests described on stderr (the rest are only counted).
const ERRORS_SHOWN: u64 = 5;

struct Args {
    path: String,
    iodepth: usize,
    runtime: f64,
    ramp: f64,
    bs: u64,
    cpu: usize,
    queue_size: Option<i32>,
}

fn usage(why: &str) -> ! {
    eprintln!(
        "blkio-bench: {why}\nusage: blkio-bench [--iodepth N] [--runtime SECONDS] [--ramp SECONDS] \
         [--bs BYTES] [--cpu N] [--queue-size N] /sys/bus/pci/devices/DDDD:BB:DD.F"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        path: String::new(),
        iodepth: 1,
        runtime: 5.0,
        ramp: 1.0,
        bs: 4096,
        cpu: 0,
        queue_size: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> String {
            it.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        fn num<T: std::str::FromStr>(name: &str, v: String) -> T {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{name}: not a number: {v}")))
        }
        match arg.as_str() {
            "--iodepth" => a.iodepth = num("--iodepth", value("--iodepth")),
            "--runtime" => a.runtime = num("--runtime", value("--runtime")),
            "--ramp" => a.ramp = num("--ramp", value("--ramp")),
            "--bs" => a.bs = num("--bs", value("--bs")),
            "--cpu" => a.cpu = num("--cpu", value("--cpu")),
            "--queue-size" => a.queue_size = Some(num("--queue-size", value("--queue-size"))),
            s if s.starts_with('-') => usage(&format!("unknown option {s}")),
            s if a.path.is_empty() => a.path = s.to_string(),
            s => usage(&format!("unexpected argument {s}")),
        }
    }
    if a.path.is_empty() {
        usage("no PCI function given");
    }
    if a.iodepth == 0 || a.bs == 0 || !a.bs.is_multiple_of(512) {
        usage("--iodepth must be at least 1 and --bs a multiple of 512");
    }
    if !(a.runtime > 0.0 && a.ramp >= 0.0) {
        usage("--runtime must be positive and --ramp not negative");
    }
    a
}

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("blkio-bench: {what}: {e}");
    std::process::exit(3)
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    let args = parse_args();
    let pinned = pin_to(args.cpu);
    let clock = Clock::calibrate(pinned);

    let mut blkio = Blkio::new("virtio-blk-vfio-pci").unwrap_or_else(|e| fail("Blkio::new", e));
    blkio
        .set_str("path", &args.path)
        .unwrap_or_else(|e| fail("setting path", e));
    blkio
        .connect()
        .unwrap_or_else(|e| fail(&format!("connecting to {}", args.path), e));
    blkio
        .set_i32("num-queues", 1)
        .unwrap_or_else(|e| fail("setting num-queues", e));
    if let Some(qs) = args.queue_size {
        blkio
            .set_i32("queue-size", qs)
            .unwrap_or_else(|e| fail("setting queue-size", e));
    }
    let capacity = blkio
        .get_u64("capacity")
        .unwrap_or_else(|e| fail("reading capacity", e));
    let queue_size = blkio
        .get_i32("queue-size")
        .unwrap_or_else(|e| fail("reading queue-size", e));
    let align = blkio
        .get_u64("mem-region-alignment")
        .unwrap_or_else(|e| fail("reading mem-region-alignment", e))
        .max(1);
    let blocks = capacity / args.bs;
    if blocks == 0 {
        fail(
            "device too small",
            format!("capacity {capacity} bytes < bs {}", args.bs),
        );
    }
    let mut started = blkio.start().unwrap_or_else(|e| fail("starting", e));
    let Some(mut q) = started.queues.pop() else {
        fail("starting", "libblkio returned no queue")
    };

    let depth = args.iodepth;
    let len = (depth as u64 * args.bs).div_ceil(align) * align;
    let region = blkio
        .alloc_mem_region(len as usize)
        .unwrap_or_else(|e| fail("alloc_mem_region", e));
    blkio
        .map_mem_region(&region)
        .unwrap_or_else(|e| fail("map_mem_region", e));
    let buf = |slot: usize| (region.addr + slot * args.bs as usize) as *mut u8;

    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
    let mut submitted_at = vec![0u64; depth];
    let mut completions: Vec<MaybeUninit<Completion>> =
        (0..depth).map(|_| MaybeUninit::uninit()).collect();
    let secs = |s: f64| (s * 1e9) as u64;
    let expected = (args.runtime * 500_000.0) as usize;
    let mut lat: Vec<u64> = Vec::with_capacity(expected.min(64 << 20));
    let (mut ios, mut errors) = (0u64, 0u64);

    let t_start = clock.ns(clock.now());
    let ramp_end = t_start + secs(args.ramp);
    let run_end = ramp_end + secs(args.runtime);
    let mut in_flight = 0usize;
    let mut recording = args.ramp == 0.0;
    let mut issuing = true;
    let mut last_progress = t_start;
    let mut now = t_start;
    let bs = args.bs;
    let mut submit = |q: &mut blkio::Blkioq, slot: usize, now: u64, at: &mut [u64]| {
        let offset = (rng.next() % blocks) * bs;
        at[slot] = now;
        q.read(offset, buf(slot), bs as usize, slot, ReqFlags::empty());
    };
    for slot in 0..depth {
        submit(&mut q, slot, now, &mut submitted_at);
        in_flight += 1;
    }
    while in_flight > 0 {
        // Submits what `read` queued (one doorbell if the device asks for one) and reaps
        // whatever has completed, without waiting.
        let n = match q.do_io(&mut completions, 0, None, None) {
            Ok(n) => n,
            Err(e) => fail("do_io", e),
        };
        now = clock.ns(clock.now());
        if !recording && now >= ramp_end {
            recording = true;
        }
        if now >= run_end {
            issuing = false;
        }
        if n == 0 {
            if now.saturating_sub(last_progress) > LOST_AFTER.as_nanos() as u64 {
                fail(
                    "lost requests",
                    format!(
                        "{in_flight} requests never completed within {} s",
                        LOST_AFTER.as_secs()
                    ),
                );
            }
            continue;
        }
        last_progress = now;
        for c in &completions[..n] {
            // SAFETY: do_io initialised the first `n` entries.
            let c = unsafe { c.assume_init_ref() };
            let slot = c.user_data;
            if slot >= depth {
                fail("completion", format!("unknown user_data {slot}"));
            }
            in_flight -= 1;
            if c.ret != 0 {
                // Counted whether in the ramp, the run or the drain: any failure fails the run.
                errors += 1;
                if errors <= ERRORS_SHOWN {
                    let msg = if c.error_msg.is_null() {
                        String::new()
                    } else {
                        // SAFETY: libblkio's error messages are static NUL-terminated strings.
                        unsafe { CStr::from_ptr(c.error_msg) }
                            .to_string_lossy()
                            .into_owned()
                    };
                    eprintln!(
                        "blkio-bench: read of slot {slot} failed: {} {msg}",
                        std::io::Error::from_raw_os_error(c.ret.saturating_neg())
                    );
                }
            } else if recording && now <= run_end {
                ios += 1;
                lat.push(now.saturating_sub(submitted_at[slot]));
            }
            if issuing {
                submit(&mut q, slot, now, &mut submitted_at);
                in_flight += 1;
            }
        }
    }

    let runtime_ns = run_end.min(now).saturating_sub(ramp_end).max(1);
    lat.sort_unstable();
    let runtime_s = runtime_ns as f64 / 1e9;
    let doc = serde_json::json!({
        "iops": ios as f64 / runtime_s,
        "bw_bytes": (ios * args.bs) as f64 / runtime_s,
        "p50_ns": percentile(&lat, 50.0),
        "p99_ns": percentile(&lat, 99.0),
        "p999_ns": percentile(&lat, 99.9),
        "ios": ios,
        "errors": errors,
        "runtime_ns": runtime_ns,
        "iodepth": depth,
        "bs": args.bs,
        "queue_size": queue_size,
        "capacity": capacity,
        "clock": clock.name(),
        "cpu": if pinned { Some(args.cpu) } else { None },
    });
    println!("{doc}");
    drop(q);
    blkio.unmap_mem_region(&region);
    if errors > 0 {
        std::process::exit(1);
    }
}
