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
//! Options: `--runtime SECONDS` per run (default 5, after a 1 s ramp), `--no-scsi`,
//! `--rows a,b,...` (row keys: qd1 qd8 qd32 qd128 randwrite seqread 2jobs 2jobs1cpu), `--raw DIR`
//! (save every JSON report there), `--no-blkio` (no libblkio column), `--blkio-bench PATH` (use
//! this blkio-bench binary instead of building it).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use uvio_tests::vm::{VmOutput, VmSpec};

const UVIO_BLK: &str = "0000:00:05.0";
const KERNEL_BLK: &str = "0000:00:06.0";
const UVIO_SCSI: &str = "0000:00:04.0";
const KERNEL_SCSI: &str = "0000:00:03.0";
const BLKIO_BLK: &str = "0000:00:07.0";

/// The virtio-blk rows that get a libblkio run: (row key, iodepth). All are 4 KiB random reads.
const BLKIO_ROWS: &[(&str, u32)] = &[("qd1", 1), ("qd8", 8), ("qd32", 32), ("qd128", 128)];

/// (key, label, fio job options).
const ROWS: &[(&str, &str, &str)] = &[
    (
        "qd1",
        "4k randread qd1",
        "--rw=randread --bs=4k --iodepth=1",
    ),
    (
        "qd8",
        "4k randread qd8",
        "--rw=randread --bs=4k --iodepth=8",
    ),
    (
        "qd32",
        "4k randread qd32",
        "--rw=randread --bs=4k --iodepth=32",
    ),
    (
        "qd128",
        "4k randread qd128",
        "--rw=randread --bs=4k --iodepth=128",
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
    scsi: bool,
    rows: Vec<&'static str>,
    raw: Option<PathBuf>,
    blkio: bool,
    blkio_bench: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut a = Args {
        runtime: 5,
        scsi: true,
        rows: ROWS.iter().map(|r| r.0).collect(),
        raw: None,
        blkio: true,
        blkio_bench: None,
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
            "--no-scsi" => a.scsi = false,
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
            "--no-blkio" => a.blkio = false,
            "--blkio-bench" => {
                a.blkio_bench = Some(
                    it.next()
                        .unwrap_or_else(|| usage("--blkio-bench needs a path"))
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
        "uvio-compare: {why}\nusage: uvio-compare [--runtime SECONDS] [--no-scsi] [--rows qd1,qd32,...] [--raw DIR]\n       [--no-blkio] [--blkio-bench PATH]"
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
        bin
    });
    let load_before = loadavg();
    let rt = args.runtime;
    let common = format!("--time_based --runtime={rt} --ramp_time=1 --size=1g --group_reporting");
    let mut script = String::from(
        "echo clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)\n",
    );
    let mut binds = vec![UVIO_BLK];
    if args.scsi {
        binds.push(UVIO_SCSI);
    }
    if blkio_bin.is_some() {
        binds.push(BLKIO_BLK);
    }
    script += &format!("check bind uvio bind {}\n", binds.join(" "));
    // The kernel's block devices of the twin functions.
    script += &format!(
        "KBLK=/dev/$(ls /sys/bus/pci/devices/{KERNEL_BLK}/virtio*/block/ | head -n1)\n\
         echo kernel virtio-blk: $KBLK\n"
    );
    if args.scsi {
        script += &format!(
            "KSCSI=/dev/$(ls /sys/bus/pci/devices/{KERNEL_SCSI}/virtio*/host*/target*/*/block/ | head -n1)\n\
             echo kernel virtio-scsi: $KSCSI\n"
        );
    }
    let mut systems: Vec<(&str, String, String)> =
        vec![("blk", UVIO_BLK.to_string(), "$KBLK".into())];
    if args.scsi {
        systems.push(("scsi", format!("{UVIO_SCSI}/0:0:0"), "$KSCSI".into()));
    }
    let fio = "fio --output-format=json --name=k --direct=1 --thread";
    for (sys, uvio_target, kdev) in &systems {
        for (key, _, opts) in ROWS.iter().filter(|r| args.rows.contains(&r.0)) {
            script += &format!(
                "check {sys}_{key}_uvio uvio bench --output-format=json --name=u --filename={uvio_target} {opts} {common}\n"
            );
            let blkio_depth = BLKIO_ROWS.iter().find(|r| r.0 == *key).map(|r| r.1);
            if let (Some(bin), Some(depth), "blk") = (&blkio_bin, blkio_depth, *sys) {
                script += &format!(
                    "check {sys}_{key}_blkio {} --iodepth {depth} --runtime {rt} --ramp 1 /sys/bus/pci/devices/{BLKIO_BLK}\n",
                    bin.display()
                );
            }
            script += &format!(
                "check {sys}_{key}_uring {fio} --filename={kdev} --ioengine=io_uring {opts} {common}\n"
            );
            if opts.contains("--iodepth=1 ") || opts.ends_with("--iodepth=1") {
                script += &format!(
                    "check {sys}_{key}_psync {fio} --filename={kdev} --ioengine=pvsync2 {opts} {common}\n"
                );
            }
        }
    }
    script += "true\n";

    let runs: usize = script.matches("\ncheck ").count();
    let guest_time = Duration::from_secs(u64::from(rt + 4) * runs as u64 + 120);
    eprintln!(
        "booting a TCG guest (2 vCPUs; virtio-blk {UVIO_BLK} for uvio, {KERNEL_BLK} for the kernel{}{}); {runs} runs of {rt} s...",
        if blkio_bin.is_some() {
            format!(", {BLKIO_BLK} for libblkio")
        } else {
            String::new()
        },
        if args.scsi {
            format!("; virtio-scsi {UVIO_SCSI} for uvio, {KERNEL_SCSI} for the kernel")
        } else {
            String::new()
        }
    );
    let mut spec = VmSpec::new()
        .reference_tools()
        .timeout(guest_time)
        .virtio_blk_null("05.0", 1 << 30, "num-queues=2")
        .virtio_blk_null("06.0", 1 << 30, "num-queues=2");
    if let Some(bin) = &blkio_bin {
        spec = spec
            .virtio_blk_null("07.0", 1 << 30, "num-queues=2")
            .host_binary(bin.display().to_string());
    }
    if args.scsi {
        spec = spec
            .virtio_scsi("s0", "04.0", 2, "")
            .scsi_hd_null("s0", 0, 0, 1 << 30, "")
            .virtio_scsi("s1", "03.0", 2, "")
            .scsi_hd_null("s1", 0, 0, 1 << 30, "");
    }
    let out = spec.script(script).run();
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
        "| device | workload | uvio IOPS | kernel IOPS (engine) | uvio/kernel | libblkio IOPS | uvio/libblkio | uvio BW | kernel BW | uvio clat p50 / p99 / p99.9 (µs) | kernel clat p50 / p99 / p99.9 (µs) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut blkio_notes: Vec<String> = Vec::new();
    for (sys, _, _) in &systems {
        for (key, label, _) in ROWS.iter().filter(|r| args.rows.contains(&r.0)) {
            let get = |engine: &str| {
                let name = format!("{sys}_{key}_{engine}");
                figures(&out, &name).map(|(f, doc)| (name, f, doc))
            };
            let u = match get("uvio") {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("{e}");
                    failed = true;
                    continue;
                }
            };
            let mut kernel: Vec<(&str, Figures)> = Vec::new();
            for engine in ["uring", "psync"] {
                match get(engine) {
                    Ok((name, f, doc)) => {
                        kernel.push((
                            if engine == "uring" {
                                "io_uring"
                            } else {
                                "pvsync2"
                            },
                            f,
                        ));
                        raw.insert(name, doc);
                    }
                    Err(e) if e.ends_with("never ran") => {}
                    Err(e) => {
                        eprintln!("{e}");
                        failed = true;
                    }
                }
            }
            raw.insert(u.0.clone(), u.2.clone());
            let (mut blkio_iops, mut blkio_ratio) = ("-".to_string(), "-".to_string());
            let blkio_name = format!("{sys}_{key}_blkio");
            match blkio_figures(&out, &blkio_name) {
                Ok((b, doc)) => {
                    blkio_iops = kiops(b.iops);
                    if b.iops > 0.0 {
                        blkio_ratio = format!("{:.2}x", u.1.iops / b.iops);
                    }
                    blkio_notes.push(format!(
                        "{label}: p50 / p99 / p99.9 {} µs, queue-size {}, clock {}",
                        lat(&b),
                        doc["queue_size"],
                        doc["clock"].as_str().unwrap_or("?")
                    ));
                    raw.insert(blkio_name, doc);
                }
                Err(e) if e.ends_with("never ran") => {}
                Err(e) => {
                    eprintln!("{e}");
                    blkio_iops = "failed".into();
                    failed = true;
                }
            }
            let Some((engine, k)) = kernel
                .iter()
                .max_by(|a, b| a.1.iops.total_cmp(&b.1.iops))
                .cloned()
            else {
                continue;
            };
            let ratio = if k.iops > 0.0 { u.1.iops / k.iops } else { 0.0 };
            println!(
                "| virtio-{sys} | {label} | {} | {} ({engine}) | {ratio:.1}x | {blkio_iops} | {blkio_ratio} | {} | {} | {} | {} |",
                kiops(u.1.iops),
                kiops(k.iops),
                mibs(u.1.bw),
                mibs(k.bw),
                lat(&u.1),
                lat(&k)
            );
        }
    }
    if !blkio_notes.is_empty() {
        println!(
            "\nlibblkio (crates.io `blkio`, virtio-blk-vfio-pci on {BLKIO_BLK}, one queue, busy-polled by \
             examples/blkio-bench.rs; latency from submission to completion):"
        );
        for n in &blkio_notes {
            println!("- {n}");
        }
    }
    println!(
        "\n{} s per run after a 1 s ramp, one TCG guest (2 vCPUs), null-co backends, guest run {:.0} s, \
         host load average {load_before} before and {} after.",
        rt,
        out.elapsed.as_secs_f64(),
        loadavg()
    );
    if let Some(dir) = args.raw {
        std::fs::create_dir_all(&dir).expect("creating the --raw directory");
        for (name, doc) in raw {
            let path = dir.join(format!("{name}.json"));
            std::fs::write(
                &path,
                serde_json::to_string_pretty(&doc).unwrap_or_default(),
            )
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        }
    }
    if failed {
        std::process::exit(1);
    }
}
