//! `cargo run --release -p uvio-tests --bin uvio-compare`: uvio next to the guest kernel, in
//! one TCG guest, on identical null-co devices.
//!
//! The guest gets two virtio-blk functions and two virtio-scsi HBAs (one null-co disk LUN
//! each). uvio drives one of each pair through VFIO (`uvio bench`); the guest kernel drives
//! the other (virtio_blk / virtio_scsi + sd) under Debian's fio with io_uring, and pvsync2
//! at iodepth 1. Both run the same fio job options, one after the other, and the harness
//! prints one Markdown table: IOPS, bandwidth, clat p50/p99/p99.9 and the uvio/kernel ratio
//! (against the better kernel engine).
//!
//! A third identical virtio-blk function is driven by libblkio's virtio-blk-vfio-pci driver (the
//! crates.io `blkio` crate) through `examples/blkio-bench.rs`, which this program builds on the
//! host (`cargo build --release -p uvio-tests --example blkio-bench`) and copies into the guest
//! with its libraries. It runs in the virtio-blk 4 KiB random-read rows (iodepth 1, 8, 32, 128),
//! right after uvio's run of the same row, and fills the libblkio and uvio/libblkio columns;
//! other rows show "-" there.
//!
//! In those same virtio-blk rows, fio 3.33 itself (built by fio/build.sh) runs the same job on
//! uvio's device through the uvio ioengine (`--ioengine=external:uvio.so --thread`), and then
//! with fio's `null` ioengine (no device: fio's own cost per I/O), both with
//! `--clocksource=cpu` and pinned to vCPU 0: the "fio+uvio", "fio null" and "fio+uvio/null"
//! columns. `--fio-stages` runs the fio+uvio jobs with UVIO_FIO_STAGES=1 and lists where the
//! engine's time per I/O went; `--no-fio` leaves fio out.
//!
//! Every device also has a `packed=on` twin (the packed virtqueue): uvio, the kernel and
//! libblkio each run the same rows on it, in rows marked "packed".
//!
//! Each peer runs in its strongest setup: uvio and libblkio busy-polled and pinned to vCPU 0;
//! the kernel's virtio_blk with a poll queue (`poll_queues=1`, two device queues) under fio's
//! io_uring and pvsync2 with `--hipri`, so completions are polled too (virtio_scsi has no poll
//! queues: interrupts); fio with `--clocksource=cpu`, since the guest's clocksource is the HPET
//! and fio's default clock costs it most of its IOPS.
//!
//! Before the measured rounds, every peer runs the first row once for 1 s on every device
//! kind, unmeasured, so that no measured run is a program's first in the guest (TCG
//! translates its code then). It did not remove every slow first round (docs/benchmarks.md,
//! sixth session): runs here move by 20-40% whichever peer runs.
//!
//! Every measured run is gated on a quiet host (`tests/src/quiet_gate.rs`): the harness reads
//! the steal time of this machine's own hypervisor around each run and has the guest run it
//! again when more than `--max-steal PERCENT` (default 2) of the host's CPU time was stolen,
//! up to `--tries N` (default 4) times; the least disturbed try is kept. The steal share of every
//! try goes into `--raw DIR/gate.json`.
//!
//! Options: `--runtime SECONDS` per run (default 5, after a 1 s ramp), `--repeat N` (every row
//! N times in the same guest, rounds interleaved; the table shows medians and each uvio run),
//! `--no-scsi`, `--no-packed`,
//! `--rows a,b,...` (row keys: qd1 qd8 qd32 qd128 randwrite seqread 2jobs 2jobs1cpu), `--raw DIR`
//! (save every JSON report there), `--no-blkio` (no libblkio column), `--blkio-bench PATH` (use
//! this blkio-bench binary instead of building it), `--plot DIR` (the table as SVG bar charts
//! there: IOPS and p99 of every peer per row, `tests/src/compare_plot.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use uvio_tests::quiet_gate::{self, Gate};
use uvio_tests::vm::{VmOutput, VmSpec};

const UVIO_BLK: &str = "0000:00:05.0";
const KERNEL_BLK: &str = "0000:00:06.0";
const UVIO_SCSI: &str = "0000:00:04.0";
const KERNEL_SCSI: &str = "0000:00:03.0";
const BLKIO_BLK: &str = "0000:00:07.0";
const UVIO_BLK_PACKED: &str = "0000:00:08.0";
const KERNEL_BLK_PACKED: &str = "0000:00:09.0";
const BLKIO_BLK_PACKED: &str = "0000:00:0a.0";
const UVIO_SCSI_PACKED: &str = "0000:00:0b.0";
const KERNEL_SCSI_PACKED: &str = "0000:00:0c.0";

/// The virtio-blk rows that get a libblkio run: (row key, iodepth). All are 4 KiB random reads.
const BLKIO_ROWS: &[(&str, u32)] = &[("qd1", 1), ("qd8", 8), ("qd32", 32), ("qd128", 128)];

/// (key, label, fio job options). The 4 KiB random-read rows are run as libblkio's load
/// generator runs them, for every peer: offsets drawn at random without fio's random map
/// (`--norandommap`), and every request the reap freed resubmitted with one notification
/// check (`--iodepth_batch_submit` = iodepth; fio's default submits, and uvio kicks, per I/O).
const ROWS: &[(&str, &str, &str)] = &[
    (
        "qd1",
        "4k randread qd1",
        "--rw=randread --bs=4k --iodepth=1 --norandommap",
    ),
    (
        "qd8",
        "4k randread qd8",
        "--rw=randread --bs=4k --iodepth=8 --norandommap --iodepth_batch_submit=8",
    ),
    (
        "qd32",
        "4k randread qd32",
        "--rw=randread --bs=4k --iodepth=32 --norandommap --iodepth_batch_submit=32",
    ),
    (
        "qd128",
        "4k randread qd128",
        "--rw=randread --bs=4k --iodepth=128 --norandommap --iodepth_batch_submit=128",
    ),
    (
        "randwrite",
        "4k randwrite qd32",
        "--rw=randwrite --bs=4k --iodepth=32",
    ),
    (
        "seqread",
        "128k seq read qd8",
        "--rw=read --bs=128k --iodepth=8",
    ),
    (
        "2jobs",
        "4k randread 2 jobs x qd32",
        "--rw=randread --bs=4k --iodepth=32 --numjobs=2",
    ),
    (
        "2jobs1cpu",
        "4k randread 2 jobs x qd32 on vCPU 0",
        "--rw=randread --bs=4k --iodepth=32 --numjobs=2 --cpus_allowed=0",
    ),
];

struct Args {
    runtime: u32,
    repeat: usize,
    scsi: bool,
    packed: bool,
    rows: Vec<&'static str>,
    raw: Option<PathBuf>,
    blkio: bool,
    blkio_bench: Option<PathBuf>,
    plot: Option<PathBuf>,
    fio: bool,
    fio_stages: bool,
    gate: Gate,
}

fn parse_args() -> Args {
    let mut a = Args {
        runtime: 5,
        repeat: 1,
        scsi: true,
        packed: true,
        rows: ROWS.iter().map(|r| r.0).collect(),
        raw: None,
        blkio: true,
        blkio_bench: None,
        plot: None,
        fio: true,
        fio_stages: false,
        gate: Gate {
            max_steal: 0.02,
            max_tries: 4,
        },
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--runtime" => {
                a.runtime = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage("--runtime needs seconds"))
            }
            "--repeat" => {
                a.repeat = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n: &usize| n > 0)
                    .unwrap_or_else(|| usage("--repeat needs a count"))
            }
            "--no-scsi" => a.scsi = false,
            "--no-packed" => a.packed = false,
            "--rows" => {
                let list = it.next().unwrap_or_else(|| usage("--rows needs keys"));
                a.rows = ROWS
                    .iter()
                    .map(|r| r.0)
                    .filter(|k| list.split(',').any(|x| x == *k))
                    .collect();
            }
            "--raw" => {
                a.raw = Some(
                    it.next()
                        .unwrap_or_else(|| usage("--raw needs a dir"))
                        .into(),
                )
            }
            "--max-steal" => {
                a.gate.max_steal = it
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|p| (0.0..=100.0).contains(p))
                    .unwrap_or_else(|| usage("--max-steal needs a percentage (0-100)"))
                    / 100.0
            }
            "--tries" => {
                a.gate.max_tries = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n: &u32| n > 0)
                    .unwrap_or_else(|| usage("--tries needs a count"))
            }
            "--no-blkio" => a.blkio = false,
            "--no-fio" => a.fio = false,
            "--fio-stages" => a.fio_stages = true,
            "--blkio-bench" => {
                a.blkio_bench = Some(
                    it.next()
                        .unwrap_or_else(|| usage("--blkio-bench needs a path"))
                        .into(),
                )
            }
            "--plot" => {
                a.plot = Some(
                    it.next()
                        .unwrap_or_else(|| usage("--plot needs a dir"))
                        .into(),
                )
            }
            _ => usage(&format!("unknown argument {arg}")),
        }
    }
    a
}

fn usage(why: &str) -> ! {
    eprintln!(
        "uvio-compare: {why}\nusage: uvio-compare [--runtime SECONDS] [--repeat N] [--no-scsi] [--no-packed]\n       [--rows qd1,qd32,...] [--raw DIR] [--no-blkio] [--blkio-bench PATH] [--plot DIR]\n       [--no-fio] [--fio-stages] [--max-steal PERCENT] [--tries N]"
    );
    std::process::exit(2)
}

/// One measured run.
#[derive(Debug, Clone, Default)]
struct Figures {
    iops: f64,
    bw: f64,
    p50: f64,
    p99: f64,
    p999: f64,
}

fn figures(out: &VmOutput, section: &str) -> Result<(Figures, Value), String> {
    let s = out
        .try_section(section)
        .ok_or_else(|| format!("{section}: never ran"))?;
    let start = s
        .output
        .find('{')
        .ok_or_else(|| format!("{section} (rc={}): no JSON:\n{}", s.rc, s.output))?;
    let end = s.output.rfind('}').map_or(s.output.len(), |e| e + 1);
    let doc: Value = serde_json::from_str(&s.output[start..end])
        .map_err(|e| format!("{section}: bad JSON ({e}):\n{}", s.output))?;
    if s.rc != 0 {
        return Err(format!("{section}: exit status {}:\n{}", s.rc, s.output));
    }
    let mut f = Figures::default();
    let jobs = doc["jobs"].as_array().cloned().unwrap_or_default();
    let mut best_n = 0;
    for job in &jobs {
        for d in ["read", "write"] {
            let o = &job[d];
            f.iops += o["iops"].as_f64().unwrap_or(0.0);
            f.bw += o["bw_bytes"].as_f64().unwrap_or(0.0);
            let n = o["clat_ns"]["N"].as_u64().unwrap_or(0);
            if n > best_n {
                best_n = n;
                let p = |k: &str| o["clat_ns"]["percentile"][k].as_f64().unwrap_or(0.0) / 1000.0;
                f.p50 = p("50.000000");
                f.p99 = p("99.000000");
                f.p999 = p("99.900000");
            }
        }
    }
    Ok((f, doc))
}

/// A blkio-bench run: its one JSON line (`iops`, `bw_bytes`, `p50_ns`, ...; see the example).
fn blkio_figures(out: &VmOutput, section: &str) -> Result<(Figures, Value), String> {
    let s = out
        .try_section(section)
        .ok_or_else(|| format!("{section}: never ran"))?;
    let doc: Value = s
        .output
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| format!("{section} (rc={}): no JSON:\n{}", s.rc, s.output))
        .and_then(|l| {
            serde_json::from_str(l).map_err(|e| format!("{section}: bad JSON ({e}):\n{}", s.output))
        })?;
    if s.rc != 0 || doc["errors"].as_u64() != Some(0) {
        return Err(format!("{section}: exit status {}:\n{}", s.rc, s.output));
    }
    let n = |k: &str| doc[k].as_f64().unwrap_or(0.0);
    let f = Figures {
        iops: n("iops"),
        bw: n("bw_bytes"),
        p50: n("p50_ns") / 1000.0,
        p99: n("p99_ns") / 1000.0,
        p999: n("p999_ns") / 1000.0,
    };
    Ok((f, doc))
}

/// Builds `examples/blkio-bench.rs` (release) in the workspace's target directory and returns
/// the executable cargo reports.
fn build_blkio_bench() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    eprintln!(
        "building blkio-bench (cargo build --release -p uvio-tests --example blkio-bench)..."
    );
    let out = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--manifest-path",
            manifest,
            "-p",
            "uvio-tests",
            "--example",
            "blkio-bench",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| {
            eprintln!("uvio-compare: cannot run cargo: {e}");
            std::process::exit(1)
        });
    if !out.status.success() {
        eprintln!("uvio-compare: building blkio-bench failed ({})", out.status);
        std::process::exit(1);
    }
    let exe = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "blkio-bench")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from));
    exe.unwrap_or_else(|| {
        eprintln!("uvio-compare: cargo built blkio-bench but named no executable");
        std::process::exit(1)
    })
}

/// Builds fio 3.33 and the uvio ioengine (`bash fio/build.sh`); returns (fio, uvio.so).
fn build_fio_engine() -> (PathBuf, PathBuf) {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    eprintln!("building fio and the uvio ioengine (bash fio/build.sh)...");
    let status = Command::new("bash")
        .arg(root.join("fio/build.sh"))
        .stdout(Stdio::inherit())
        .status();
    if !status.as_ref().is_ok_and(|s| s.success()) {
        eprintln!("uvio-compare: bash fio/build.sh failed ({status:?})");
        std::process::exit(1);
    }
    let out = root.join("target/fio");
    (out.join("bin/fio"), out.join("uvio.so"))
}

/// One kind of device measured: uvio's target, the kernel's twin, libblkio's twin.
struct System {
    key: &'static str,
    label: &'static str,
    uvio: String,
    kernel_fn: &'static str,
    kernel_var: &'static str,
    blkio: Option<&'static str>,
    /// The kernel's driver has a poll queue: fio runs with `--hipri`.
    hipri: bool,
}

/// What every run of one pass shares: the peers' programs and the timing.
struct Pass<'a> {
    args: &'a Args,
    blkio_bin: &'a Option<PathBuf>,
    fio_engine: &'a Option<(PathBuf, PathBuf)>,
    /// Seconds measured, and seconds run before measuring (libblkio's `--runtime`/`--ramp`).
    rt: u32,
    ramp: u32,
    /// fio's and uvio bench's timing options, the same two figures.
    common: String,
    /// `check` (run once) or `gated` (run again while the host was disturbed).
    verb: &'static str,
}

/// The guest commands of one row on one device kind: `uvio bench`, libblkio, fio with the
/// uvio engine and with fio's `null` engine, and the kernel through fio; each a `check`
/// section named `{tag}_{peer}`.
fn row_commands(pass: &Pass, sys: &System, row: &(&str, &str, &str), tag: &str) -> String {
    let Pass {
        args,
        blkio_bin,
        fio_engine,
        rt,
        ramp,
        ref common,
        verb,
    } = *pass;
    let (key, _, opts) = *row;
    let fio = "fio --output-format=json --name=k --direct=1 --thread --clocksource=cpu";
    let mut script = String::new();
    script += &format!(
        "{verb} {tag}_uvio uvio bench --output-format=json --name=u --filename={} {opts} {common}\n",
        sys.uvio
    );
    let blkio_depth = BLKIO_ROWS.iter().find(|r| r.0 == key).map(|r| r.1);
    if let (Some(bin), Some(depth), Some(f)) = (&blkio_bin, blkio_depth, sys.blkio) {
        script += &format!(
            "{verb} {tag}_blkio {} --iodepth {depth} --runtime {rt} --ramp {ramp} /sys/bus/pci/devices/{f}\n",
            bin.display()
        );
    }
    if let (Some((fio_bin, so)), Some(_), true) =
        (&fio_engine, blkio_depth, sys.key.starts_with("blk"))
    {
        // fio itself on uvio's device, then with fio's null engine: same job, its
        // thread pinned to vCPU 0 as uvio bench and blkio-bench pin theirs.
        let (fio_bin, so) = (fio_bin.display(), so.display());
        let fio = format!(
            "{fio_bin} --output-format=json --name=f --thread --clocksource=cpu \
             --cpus_allowed=0"
        );
        let stages = if args.fio_stages {
            "env UVIO_FIO_STAGES=1 "
        } else {
            ""
        };
        let dev = sys.uvio.replace(':', "\\:");
        script += &format!(
            "{verb} {tag}_fio {stages}{fio} --ioengine=external:{so} '--filename={dev}' {opts} {common}\n"
        );
        script += &format!(
            "{verb} {tag}_fionull {fio} --ioengine=null --filename=null {opts} {common}\n"
        );
    }
    let kdev = format!("${}", sys.kernel_var);
    let hipri = if sys.hipri { " --hipri" } else { "" };
    script += &format!(
        "{verb} {tag}_uring {fio} --filename={kdev} --ioengine=io_uring{hipri} {opts} {common}\n"
    );
    if opts.contains("--iodepth=1 ") || opts.ends_with("--iodepth=1") {
        script += &format!(
            "{verb} {tag}_psync {fio} --filename={kdev} --ioengine=pvsync2{hipri} {opts} {common}\n"
        );
    }
    script
}

/// The run with the median IOPS (the lower middle one for an even count).
fn median(runs: &[Figures]) -> Option<Figures> {
    let mut sorted: Vec<&Figures> = runs.iter().collect();
    sorted.sort_by(|a, b| a.iops.total_cmp(&b.iops));
    sorted
        .get((sorted.len().max(1) - 1) / 2)
        .map(|f| (*f).clone())
}

fn kiops(x: f64) -> String {
    if x >= 1000.0 {
        format!("{:.1}k", x / 1000.0)
    } else {
        format!("{x:.0}")
    }
}

fn mibs(bytes: f64) -> String {
    format!("{:.0} MiB/s", bytes / (1 << 20) as f64)
}

fn lat(f: &Figures) -> String {
    format!("{:.0} / {:.0} / {:.0}", f.p50, f.p99, f.p999)
}

/// The host's 1-minute load average: the table is only as good as the host was quiet.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn main() {
    let args = parse_args();
    let blkio_bin = args.blkio.then(|| {
        let bin = args.blkio_bench.clone().unwrap_or_else(build_blkio_bench);
        if !bin.is_file() {
            usage(&format!("blkio-bench {} is not a file", bin.display()));
        }
        // The guest finds it at the host's path: a relative one would name nothing there.
        std::fs::canonicalize(&bin)
            .unwrap_or_else(|e| usage(&format!("blkio-bench {}: {e}", bin.display())))
    });
    let fio_engine = args.fio.then(build_fio_engine);
    let load_before = loadavg();
    let rt = args.runtime;
    let common = format!("--time_based --runtime={rt} --ramp_time=1 --size=1g --group_reporting");
    let mut script = String::from(
        "echo clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)\n",
    );
    // (key, label, uvio target, kernel device variable, kernel PCI function, libblkio
    // function, kernel polls): every device kind measured.
    let mut systems: Vec<System> = vec![System {
        key: "blk",
        label: "virtio-blk",
        uvio: UVIO_BLK.into(),
        kernel_fn: KERNEL_BLK,
        kernel_var: "KBLK",
        blkio: Some(BLKIO_BLK),
        hipri: true,
    }];
    if args.packed {
        systems.push(System {
            key: "blkp",
            label: "virtio-blk packed",
            uvio: UVIO_BLK_PACKED.into(),
            kernel_fn: KERNEL_BLK_PACKED,
            kernel_var: "KBLKP",
            blkio: Some(BLKIO_BLK_PACKED),
            hipri: true,
        });
    }
    if args.scsi {
        systems.push(System {
            key: "scsi",
            label: "virtio-scsi",
            uvio: format!("{UVIO_SCSI}/0:0:0"),
            kernel_fn: KERNEL_SCSI,
            kernel_var: "KSCSI",
            blkio: None,
            hipri: false,
        });
        if args.packed {
            systems.push(System {
                key: "scsip",
                label: "virtio-scsi packed",
                uvio: format!("{UVIO_SCSI_PACKED}/0:0:0"),
                kernel_fn: KERNEL_SCSI_PACKED,
                kernel_var: "KSCSIP",
                blkio: None,
                hipri: false,
            });
        }
    }
    let mut binds: Vec<String> = systems
        .iter()
        .map(|s| s.uvio.split('/').next().unwrap_or_default().to_string())
        .collect();
    if blkio_bin.is_some() {
        binds.extend(systems.iter().filter_map(|s| s.blkio.map(String::from)));
    }
    script += &format!("check bind uvio bind {}\n", binds.join(" "));
    // The kernel's block devices of the twin functions.
    for sys in &systems {
        let (var, f) = (sys.kernel_var, sys.kernel_fn);
        let path = if sys.key.starts_with("blk") {
            format!("/sys/bus/pci/devices/{f}/virtio*/block/")
        } else {
            format!("/sys/bus/pci/devices/{f}/virtio*/host*/target*/*/block/")
        };
        script += &format!(
            "{var}=/dev/$(ls {path} | head -n1)\necho kernel {}: ${var} $(cat /sys/block/$(basename ${var})/mq/*/nr_tags 2>/dev/null | tr '\\n' ' ')\n",
            sys.label
        );
    }
    let rows: Vec<&(&str, &str, &str)> = ROWS.iter().filter(|r| args.rows.contains(&r.0)).collect();
    // One untimed pass of every peer on every device kind first, at the first row's depth:
    // the first run in a fresh guest pays for TCG translating each program's code and for
    // cold caches, which would otherwise land on whichever peer happens to run first.
    let warm = Pass {
        args: &args,
        blkio_bin: &blkio_bin,
        fio_engine: &fio_engine,
        rt: 1,
        ramp: 0,
        common: "--time_based --runtime=1 --size=1g --group_reporting".into(),
        verb: "check",
    };
    for sys in &systems {
        if let Some(row) = rows.first() {
            script += &row_commands(&warm, sys, row, &format!("warm_{}", sys.key));
        }
    }
    let measured = Pass {
        rt,
        ramp: 1,
        common,
        verb: "gated",
        ..warm
    };
    for round in 0..args.repeat {
        for sys in &systems {
            for row in &rows {
                let tag = format!("{}_{}_r{round}", sys.key, row.0);
                script += &row_commands(&measured, sys, row, &tag);
            }
        }
    }
    script += quiet_gate::GATE_DONE;
    script += "true\n";

    let runs: usize = script.matches("\ncheck ").count() + script.matches("\ngated ").count();
    // The whole guest's budget, from boot to its last gated run: 180 s to boot and bind, and
    // room for every run to be run twice (the gate repeats disturbed ones). `spawn` is used,
    // not `run`, so the spec's own timeout does not apply.
    let guest_time = Duration::from_secs(2 * u64::from(rt + 4) * runs as u64 + 180);
    let script = format!("{}{script}", quiet_gate::GATED_SH);
    eprintln!(
        "booting a TCG guest (2 vCPUs; {} device kinds, uvio, the kernel{} on twins); {runs} runs of {rt} s...",
        systems.len(),
        if blkio_bin.is_some() { " and libblkio" } else { "" },
    );
    // The kernel's virtio_blk polls one of the two queues (io_uring --hipri uses it).
    let mut spec = VmSpec::new()
        .reference_tools()
        .module_param("virtio_blk", "poll_queues=1")
        .virtio_blk_null("05.0", 1 << 30, "num-queues=2")
        .virtio_blk_null("06.0", 1 << 30, "num-queues=2");
    if args.packed {
        spec = spec
            .virtio_blk_null("08.0", 1 << 30, "num-queues=2,packed=on")
            .virtio_blk_null("09.0", 1 << 30, "num-queues=2,packed=on");
    }
    if let Some((fio_bin, so)) = &fio_engine {
        spec = spec
            .host_binary(fio_bin.display().to_string())
            .host_binary(so.display().to_string());
    }
    if let Some(bin) = &blkio_bin {
        spec = spec
            .virtio_blk_null("07.0", 1 << 30, "num-queues=2")
            .host_binary(bin.display().to_string());
        if args.packed {
            spec = spec.virtio_blk_null("0a.0", 1 << 30, "num-queues=2,packed=on");
        }
    }
    if args.scsi {
        spec = spec
            .virtio_scsi("s0", "04.0", 2, "")
            .scsi_hd_null("s0", 0, 0, 1 << 30, "")
            .virtio_scsi("s1", "03.0", 2, "")
            .scsi_hd_null("s1", 0, 0, 1 << 30, "");
        if args.packed {
            spec = spec
                .virtio_scsi("s2", "0b.0", 2, "packed=on")
                .scsi_hd_null("s2", 0, 0, 1 << 30, "")
                .virtio_scsi("s3", "0c.0", 2, "packed=on")
                .scsi_hd_null("s3", 0, 0, 1 << 30, "");
        }
    }
    let mut vm = spec.script(script).spawn();
    let gate = quiet_gate::drive(&mut vm, args.gate, std::time::Instant::now() + guest_time);
    let out = vm.wait(Duration::from_secs(120));
    if out.exit_code != Some(0) {
        eprintln!("{out}");
        std::process::exit(1);
    }
    for line in out.console.lines() {
        if line.starts_with("clocksource:") || line.starts_with("kernel virtio-") {
            eprintln!("guest {line}");
        }
    }

    let mut failed = false;
    let mut raw: BTreeMap<String, Value> = BTreeMap::new();
    println!(
        "| device | workload | uvio IOPS | kernel IOPS (engine) | uvio/kernel | libblkio IOPS | uvio/libblkio | fio+uvio IOPS | fio null IOPS | fio+uvio/null | uvio runs (min/median) | uvio BW | kernel BW | uvio clat p50 / p99 / p99.9 (µs) | kernel clat p50 / p99 / p99.9 (µs) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut fio_stages: Vec<String> = Vec::new();
    let mut blkio_notes: Vec<String> = Vec::new();
    let mut unsteady: Vec<String> = Vec::new();
    let mut chart = uvio_tests::compare_plot::Comparison::default();
    for sys in &systems {
        for (key, label, _) in ROWS.iter().filter(|r| args.rows.contains(&r.0)) {
            // Every round of this row: uvio, the kernel's engines, libblkio.
            let mut uvio_runs: Vec<Figures> = Vec::new();
            let mut kernel_runs: BTreeMap<&str, Vec<Figures>> = BTreeMap::new();
            let mut blkio_runs: Vec<Figures> = Vec::new();
            // fio with the uvio engine, and with its null engine.
            let mut fio_runs: [Vec<Figures>; 2] = Default::default();
            for round in 0..args.repeat {
                let tag = format!("{}_{key}_r{round}", sys.key);
                match figures(&out, &gate.section(&format!("{tag}_uvio"))) {
                    Ok((f, doc)) => {
                        uvio_runs.push(f);
                        raw.insert(format!("{tag}_uvio"), doc);
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        failed = true;
                    }
                }
                for (engine, name) in [("uring", "io_uring"), ("psync", "pvsync2")] {
                    match figures(&out, &gate.section(&format!("{tag}_{engine}"))) {
                        Ok((f, doc)) => {
                            kernel_runs.entry(name).or_default().push(f);
                            raw.insert(format!("{tag}_{engine}"), doc);
                        }
                        Err(e) if e.ends_with("never ran") => {}
                        Err(e) => {
                            eprintln!("{e}");
                            failed = true;
                        }
                    }
                }
                for (runs, engine) in fio_runs.iter_mut().zip(["fio", "fionull"]) {
                    let name = format!("{tag}_{engine}");
                    let section = gate.section(&name);
                    match figures(&out, &section) {
                        Ok((f, doc)) => {
                            runs.push(f);
                            raw.insert(name, doc);
                            // (after fio's progress line, if any: it ends in no newline)
                            let said = out.section(&section).output.lines();
                            let stages =
                                said.filter_map(|l| l.find("uvio stages:").map(|at| &l[at..]));
                            fio_stages
                                .extend(stages.map(|l| {
                                    format!("{} {label} (round {round}): {l}", sys.label)
                                }));
                        }
                        Err(e) if e.ends_with("never ran") => {}
                        Err(e) => {
                            eprintln!("{e}");
                            failed = true;
                        }
                    }
                }
                match blkio_figures(&out, &gate.section(&format!("{tag}_blkio"))) {
                    Ok((b, doc)) => {
                        if round == 0 {
                            blkio_notes.push(format!(
                                "{} {label}: p50 / p99 / p99.9 {} µs, queue-size {}, clock {}",
                                sys.label,
                                lat(&b),
                                doc["queue_size"],
                                doc["clock"].as_str().unwrap_or("?")
                            ));
                        }
                        blkio_runs.push(b);
                        raw.insert(format!("{tag}_blkio"), doc);
                    }
                    Err(e) if e.ends_with("never ran") => {}
                    Err(e) => {
                        eprintln!("{e}");
                        failed = true;
                    }
                }
            }
            let Some(u) = median(&uvio_runs) else {
                continue;
            };
            let Some((engine, k)) = kernel_runs
                .iter()
                .filter_map(|(name, runs)| median(runs).map(|m| (*name, m)))
                .max_by(|a, b| a.1.iops.total_cmp(&b.1.iops))
            else {
                continue;
            };
            let (blkio_iops, blkio_ratio) = match median(&blkio_runs) {
                Some(b) if b.iops > 0.0 => (kiops(b.iops), format!("{:.2}x", u.iops / b.iops)),
                Some(b) => (kiops(b.iops), "-".into()),
                None => ("-".into(), "-".into()),
            };
            let [fio_uvio, fio_null] = fio_runs.map(|runs| median(&runs));
            let (fio_iops, null_iops, fio_ratio) = match (fio_uvio.as_ref(), fio_null.as_ref()) {
                (Some(f), Some(n)) if n.iops > 0.0 => (
                    kiops(f.iops),
                    kiops(n.iops),
                    format!("{:.2}", f.iops / n.iops),
                ),
                (f, n) => (
                    f.map_or("-".into(), |f| kiops(f.iops)),
                    n.map_or("-".into(), |n| kiops(n.iops)),
                    "-".into(),
                ),
            };
            let low = uvio_runs.iter().map(|f| f.iops).fold(f64::MAX, f64::min);
            if low < 0.8 * u.iops {
                unsteady.push(format!(
                    "{} {label}: a uvio run gave {} against the median {}",
                    sys.label,
                    kiops(low),
                    kiops(u.iops)
                ));
            }
            chart.add(sys.label, label, "uvio", u.iops, u.p99);
            chart.add(sys.label, label, "kernel", k.iops, k.p99);
            if let Some(b) = median(&blkio_runs) {
                chart.add(sys.label, label, "libblkio", b.iops, b.p99);
            }
            if let Some(f) = fio_uvio {
                chart.add(sys.label, label, "fio+uvio", f.iops, f.p99);
            }
            let runs_list: Vec<String> = uvio_runs.iter().map(|f| kiops(f.iops)).collect();
            let ratio = if k.iops > 0.0 { u.iops / k.iops } else { 0.0 };
            println!(
                "| {} | {label} | {} | {} ({engine}) | {ratio:.1}x | {blkio_iops} | {blkio_ratio} | {fio_iops} | {null_iops} | {fio_ratio} | {} ({:.2}) | {} | {} | {} | {} |",
                sys.label,
                kiops(u.iops),
                kiops(k.iops),
                runs_list.join(", "),
                low / u.iops.max(1e-9),
                mibs(u.bw),
                mibs(k.bw),
                lat(&u),
                lat(&k)
            );
        }
    }
    if !blkio_notes.is_empty() {
        println!(
            "\nlibblkio (crates.io `blkio`, virtio-blk-vfio-pci on {BLKIO_BLK} and, packed, {BLKIO_BLK_PACKED}; \
             one queue, busy-polled and pinned by examples/blkio-bench.rs; latency from submission to \
             completion):"
        );
        for n in &blkio_notes {
            println!("- {n}");
        }
    }
    if !fio_stages.is_empty() {
        println!(
            "\nWhere fio+uvio's time per I/O went (UVIO_FIO_STAGES=1, TSC-stamped in the engine):"
        );
        for n in &fio_stages {
            println!("- {n}");
        }
    }
    if unsteady.is_empty() {
        println!("\nNo uvio run fell below 0.8x its row's median.");
    } else {
        println!("\nuvio runs below 0.8x their row's median:");
        for n in &unsteady {
            println!("- {n}");
        }
    }
    let disturbed = gate.disturbed(args.gate.max_steal);
    println!(
        "\nQuiet host: {} measured runs; {} tries run again because the hypervisor stole more than \
         {:.0}% of the host's CPU time during them (at most {} tries a run, the least disturbed kept); \
         highest steal share of a kept run {:.1}%.",
        gate.runs.len(),
        gate.repeats(),
        args.gate.max_steal * 100.0,
        args.gate.max_tries,
        gate.runs
            .values()
            .map(|r| r.kept_steal())
            .fold(0.0, f64::max)
            * 100.0
    );
    for (name, steal) in &disturbed {
        println!(
            "- {name}: every try disturbed, kept one with {:.1}% stolen",
            steal * 100.0
        );
    }
    println!(
        "\n{} s per run after a 1 s ramp, {} round(s), one TCG guest (2 vCPUs), null-co backends, guest run {:.0} s, \
         host load average {load_before} before and {} after.",
        rt,
        args.repeat,
        out.elapsed.as_secs_f64(),
        loadavg()
    );
    if let Some(dir) = args.raw {
        std::fs::create_dir_all(&dir).expect("creating the --raw directory");
        let steal: serde_json::Map<String, Value> = gate
            .runs
            .iter()
            .map(|(name, r)| {
                let run = serde_json::json!({ "steal_share": r.steal, "kept": r.kept() });
                (name.clone(), run)
            })
            .collect();
        raw.insert("gate".into(), Value::Object(steal));
        for (name, doc) in raw {
            let path = dir.join(format!("{name}.json"));
            std::fs::write(
                &path,
                serde_json::to_string_pretty(&doc).unwrap_or_default(),
            )
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        }
    }
    if let Some(dir) = &args.plot {
        match uvio_tests::compare_plot::write_charts(dir, &chart) {
            Ok(paths) => paths
                .iter()
                .for_each(|p| eprintln!("chart: {}", p.display())),
            Err(e) => {
                eprintln!("uvio-compare: {e}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
