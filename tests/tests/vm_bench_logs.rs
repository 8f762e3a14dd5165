//! Issue 11, items 4 and 5, in one guest: `uvio bench`'s time-series logs, terse output,
//! `--status-interval`, `--eta-newline` and CPU placement.
//!
//! The logs of one run have fio's line layout: the same jobs run through uvio on a null
//! device and through Debian's fio (libaio) on the kernel's twin of it, in the same guest,
//! and every file fio writes, uvio writes under the same name with lines of the same shape
//! (per I/O with `log_offset=1`; averaged with `log_avg_msec`; the clat histograms). The logs
//! are copied out of the guest and Debian's `fio2gnuplot` and `fiologparser_hist` process
//! uvio's (and fio's) on the host without error; they are installed (with python3-numpy and
//! python3-pandas) on first use as the harness installs QEMU.
//!
//! Terse output has version 3's 121 fields (fio's, less the 9 disk fields fio adds for a
//! kernel disk), checked against the JSON of the same run; `--status-interval` prints one
//! JSON object per line per interval; `cpus_allowed_policy=split` and `cpumask` pin job
//! threads where fio would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use uvio_tests::vm::{ensure_reference_tools, VmOutput, VmSpec};

/// null-co, two queues.
const NULL: &str = "0000:00:05.0";
/// The kernel's twin of the null device, for fio.
const TWIN: &str = "0000:00:08.0";

/// A log line per I/O, with offsets: 256 reads and writes of 4 KiB.
const PER_IO: &str = "--rw=randrw --bs=4k --iodepth=4 --size=16m --io_size=1m \
                      --write_bw_log=lg --write_iops_log=lg --write_lat_log=lg --log_offset=1";
/// Averaged over 500 ms, and the clat histograms every 500 ms, for 2 s.
const AVERAGED: &str = "--rw=randrw --bs=4k --iodepth=4 --runtime=2 --time_based \
                        --write_bw_log=av --write_iops_log=av --write_lat_log=av \
                        --write_hist_log=av --log_avg_msec=500 --log_hist_msec=500";
/// What fio's terse line and JSON are compared on.
const TERSE: &str = "--rw=randread --bs=4k --iodepth=4 --size=16m --io_size=4m";
/// A short timed run.
const TIMED: &str = "--rw=randread --bs=4k --iodepth=2 --runtime=3 --time_based";

/// fio's terse version 3 fields, less the disk ones (HOWTO, "Terse output").
const TERSE_FIELDS: usize = 121;
/// What fio adds per kernel disk.
const DISK_FIELDS: usize = 9;

/// Debian's Python, for which python3-numpy and python3-pandas are installed (a `python3`
/// earlier on the PATH, such as pyenv's, would not see them).
const PYTHON: &str = "/usr/bin/python3";

/// Installs what reads the logs on the host: Debian's fio (fio2gnuplot, and
/// fiologparser_hist among its documents) and the Python libraries fiologparser_hist needs.
fn ensure_log_tools() {
    ensure_reference_tools();
    let have_python_libs = || {
        Command::new(PYTHON)
            .args(["-c", "import numpy, pandas"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if have_python_libs() {
        return;
    }
    eprintln!("[vm_bench_logs] apt-get install python3-numpy python3-pandas");
    let apt = |args: &[&str]| {
        let out = Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["-o", "DPkg::Lock::Timeout=600", "-q"])
            .args(args)
            .output()
            .expect("running apt-get");
        assert!(
            out.status.success(),
            "apt-get {args:?} failed (fiologparser_hist needs python3-numpy and \
             python3-pandas: run as root on Debian 12, or install them by hand)\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    apt(&["update"]);
    apt(&[
        "install",
        "-y",
        "--no-install-recommends",
        "python3-numpy",
        "python3-pandas",
    ]);
    assert!(
        have_python_libs(),
        "numpy and pandas still cannot be imported"
    );
}

/// The files a `dump DIR` section printed: `== NAME` then the file's lines.
fn files_of(out: &VmOutput, section: &str) -> BTreeMap<String, String> {
    let s = out.section(section);
    assert_eq!(s.rc, 0, "{s}");
    let mut files = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in s.output.lines() {
        if let Some(name) = line.strip_prefix("== ") {
            if let Some((n, t)) = current.take() {
                files.insert(n, t);
            }
            current = Some((name.to_string(), String::new()));
        } else if let Some((_, t)) = &mut current {
            if !line.is_empty() {
                t.push_str(line);
                t.push('\n');
            }
        }
    }
    if let Some((n, t)) = current {
        files.insert(n, t);
    }
    files
}

/// A log's lines as numbers (every field must be one).
fn rows(name: &str, text: &str) -> Vec<Vec<u64>> {
    text.lines()
        .map(|l| {
            l.split(", ")
                .map(|f| {
                    f.trim()
                        .parse::<u64>()
                        .unwrap_or_else(|_| panic!("{name}: `{f}` in `{l}` is not a number"))
                })
                .collect()
        })
        .collect()
}

fn json_of(out: &VmOutput, section: &str) -> Value {
    let s = out.section(section);
    assert_eq!(s.rc, 0, "{s}");
    let start = s
        .output
        .find('{')
        .unwrap_or_else(|| panic!("no JSON in {s}"));
    let end = s.output.rfind('}').map_or(s.output.len(), |e| e + 1);
    serde_json::from_str(&s.output[start..end]).unwrap_or_else(|e| panic!("bad JSON: {e}\n{s}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

#[test]
fn logs_terse_status_and_cpus_as_fio() {
    ensure_log_tools();
    let kdev = format!("/dev/$(basename /sys/bus/pci/devices/{TWIN}/virtio*/block/*)");
    let fio = format!("fio --ioengine=libaio --direct=1 --filename={kdev}");
    let script = format!(
        r#"
dump() {{ for f in "$1"/*; do echo "== $(basename $f)"; cat "$f"; done; }}
mkdir -p /tmp/u1 /tmp/k1 /tmp/u2 /tmp/k2 /tmp/u3
check bind uvio bind {NULL}
check per_io_uvio sh -c 'cd /tmp/u1 && uvio bench --output-format=json --name=lg --filename={NULL} {PER_IO}'
check per_io_fio sh -c 'cd /tmp/k1 && {fio} --output-format=json --name=lg {PER_IO}'
check averaged_uvio sh -c 'cd /tmp/u2 && uvio bench --output-format=json --name=av --filename={NULL} {AVERAGED}'
check averaged_fio sh -c 'cd /tmp/k2 && {fio} --output-format=json --name=av {AVERAGED}'
check one_file sh -c 'cd /tmp/u3 && uvio bench --name=pj --filename={NULL} --rw=randread --bs=4k --numjobs=2 --io_size=256k --write_iops_log=pj --per_job_logs=0 >/dev/null && ls'
check u1 dump /tmp/u1
check k1 dump /tmp/k1
check u2 dump /tmp/u2
check k2 dump /tmp/k2
check u3 dump /tmp/u3
check terse_uvio uvio bench --output-format=terse,json --name=t --filename={NULL} {TERSE}
check terse_fio {fio} --minimal --name=t {TERSE}
check minimal uvio bench --minimal --name=m --filename={NULL} {TERSE}
check status_json sh -c 'uvio bench --output-format=json --status-interval=1 --name=s --filename={NULL} {TIMED} 2>/dev/null'
check status_normal sh -c 'uvio bench --status-interval=1 --name=s --filename={NULL} {TIMED} 2>/dev/null'
check eta_newline sh -c 'uvio bench --eta=always --eta-newline=1 --output-format=json --name=e --filename={NULL} {TIMED} 2>&1 >/dev/null'
check split uvio bench --output-format=json --name=c --filename={NULL} --rw=randread --bs=4k --io_size=1m --numjobs=2 --cpus_allowed=0-1 --cpus_allowed_policy=split
check shared uvio bench --output-format=json --name=c --filename={NULL} --rw=randread --bs=4k --io_size=1m --numjobs=2 --cpus_allowed=0-1
check cpumask uvio bench --output-format=json --name=c --filename={NULL} --rw=randread --bs=4k --io_size=1m --cpumask=2
true
"#
    );
    let out = VmSpec::new()
        .virtio_blk_null("05.0", 1 << 30, "num-queues=2")
        .virtio_blk_null(&TWIN[8..], 1 << 30, "num-queues=2")
        .reference_tools()
        .script(script)
        .run();
    out.assert_success();

    check_per_io_logs(&out);
    let host_dir = std::env::temp_dir().join(format!("uvio-bench-logs-{}", std::process::id()));
    check_averaged_logs(&out, &host_dir);
    let _ = std::fs::remove_dir_all(&host_dir);
    check_one_file_for_every_thread(&out);
    check_terse(&out);
    check_status_interval(&out);
    check_cpus(&out);
}

/// A line per I/O: the same files as fio's, each line `time, value, ddir, bs, offset, 0`.
fn check_per_io_logs(out: &VmOutput) {
    let (uvio, fio) = (files_of(out, "u1"), files_of(out, "k1"));
    let names: Vec<&String> = uvio.keys().collect();
    assert_eq!(names, fio.keys().collect::<Vec<_>>(), "{out}");
    assert_eq!(
        names,
        [
            "lg_bw.1.log",
            "lg_clat.1.log",
            "lg_iops.1.log",
            "lg_lat.1.log",
            "lg_slat.1.log"
        ]
    );
    let doc = json_of(out, "per_io_uvio");
    let ios = u(&doc["jobs"][0]["read"]["total_ios"]) + u(&doc["jobs"][0]["write"]["total_ios"]);
    assert_eq!(ios, 256, "1 MiB in 4 KiB I/Os");
    let runtime = u(&doc["jobs"][0]["job_runtime"]);
    for (name, text) in &uvio {
        let first = |t: &str| t.lines().next().unwrap_or_default().to_string();
        eprintln!(
            "[vm_bench_logs] {name}: uvio `{}`, fio `{}`",
            first(text),
            first(&fio[name])
        );
        for (who, rows) in [("uvio", rows(name, text)), ("fio", rows(name, &fio[name]))] {
            assert_eq!(rows.len(), 256, "{who} {name}: a line per I/O");
            for r in &rows {
                assert_eq!(r.len(), 6, "{who} {name}: {r:?}");
                assert!(r[2] <= 1, "{who} {name}: ddir {r:?}");
                assert_eq!(r[3], 4096, "{who} {name}: bs {r:?}");
                assert_eq!(r[4] % 4096, 0, "{who} {name}: offset {r:?}");
                assert!(r[4] < 16 << 20, "{who} {name}: offset {r:?}");
                assert_eq!(r[5], 0, "{who} {name}: priority {r:?}");
                if name.contains("iops") {
                    assert_eq!(r[1], 1, "{who} {name}: {r:?}");
                }
            }
        }
        for r in rows(name, text) {
            assert!(r[0] <= runtime + 1, "{name}: time {r:?} past {runtime} ms");
        }
    }
    // uvio's lines of one I/O line up: lat = slat + clat, bw = bytes x 10^6 / clat.
    let get = |n: &str| rows(n, &uvio[n]);
    let (lat, slat, clat, bw) = (
        get("lg_lat.1.log"),
        get("lg_slat.1.log"),
        get("lg_clat.1.log"),
        get("lg_bw.1.log"),
    );
    for i in 0..256 {
        assert_eq!(lat[i][1], slat[i][1] + clat[i][1], "line {i}");
        assert_eq!(bw[i][1], 4096 * 1_000_000 / clat[i][1], "line {i}");
        assert_eq!(lat[i][4], clat[i][4], "line {i}: the same I/O");
    }
}

/// Averaged lines (`bs` 0) and histogram lines (time, ddir, bs and 1856 bins), as fio's; and
/// Debian's fio2gnuplot and fiologparser_hist read them.
fn check_averaged_logs(out: &VmOutput, host_dir: &Path) {
    let (uvio, fio) = (files_of(out, "u2"), files_of(out, "k2"));
    assert_eq!(
        uvio.keys().collect::<Vec<_>>(),
        fio.keys().collect::<Vec<_>>(),
        "{out}"
    );
    assert!(uvio.contains_key("av_clat_hist.1.log"), "{uvio:?}");
    for (name, text) in &uvio {
        if !name.contains("hist") {
            eprintln!(
                "[vm_bench_logs] {name}: uvio {:?}, fio {:?}",
                text.lines().collect::<Vec<_>>(),
                fio[name].lines().collect::<Vec<_>>()
            );
        }
        for (who, text) in [("uvio", text), ("fio", &fio[name])] {
            let rows = rows(name, text);
            assert!(!rows.is_empty(), "{who} {name} is empty");
            for r in &rows {
                if name.contains("hist") {
                    assert_eq!(r.len(), 3 + 1856, "{who} {name}: time, ddir, bs, bins");
                    assert!(r[1] <= 1, "{who} {name}: ddir {:?}", &r[..3]);
                    assert_eq!(r[2], 4096, "{who} {name}: bs");
                } else {
                    assert_eq!(r.len(), 5, "{who} {name}: {r:?}");
                    assert!(r[2] <= 1, "{who} {name}: ddir {r:?}");
                    assert_eq!((r[3], r[4]), (0, 0), "{who} {name}: bs and priority {r:?}");
                }
            }
        }
    }
    // uvio: windows of 500 ms; 4 KiB I/Os make KiB/s four times IOPS.
    let rows_of = |n: &str| rows(n, &uvio[n]);
    let (bw, iops) = (rows_of("av_bw.1.log"), rows_of("av_iops.1.log"));
    assert!(
        bw.len() >= 4,
        "two directions, at least two windows: {bw:?}"
    );
    for (b, i) in bw.iter().zip(&iops) {
        assert_eq!(
            (b[0], b[2]),
            (i[0], i[2]),
            "same window and direction: {b:?} {i:?}"
        );
        assert!(b[1].abs_diff(i[1] * 4) <= 4, "KiB/s {b:?}, IOPS {i:?}");
    }
    // Windows of 500 ms: as in fio, each starts where the last one was logged, so a pause
    // of the guest carries into the next window but never shortens one much.
    let mut ends: Vec<u64> = bw.iter().map(|b| b[0]).collect();
    ends.dedup();
    assert!((480..=700).contains(&ends[0]), "first window end {ends:?}");
    // (The last line may close a short window at the end of the run, as fio's does.)
    for pair in ends[..ends.len() - 1].windows(2) {
        assert!(
            (480..=700).contains(&(pair[1] - pair[0])),
            "window ends {ends:?}"
        );
    }
    // The histogram lines count each I/O once at most.
    let doc = json_of(out, "averaged_uvio");
    let ios = u(&doc["jobs"][0]["read"]["total_ios"]) + u(&doc["jobs"][0]["write"]["total_ios"]);
    let counted: u64 = rows_of("av_clat_hist.1.log")
        .iter()
        .map(|r| r[3..].iter().sum::<u64>())
        .sum();
    assert!(counted > 0 && counted <= ios, "{counted} of {ios}");

    for (who, files) in [("uvio", &uvio), ("fio", &fio)] {
        let dir = host_dir.join(who);
        std::fs::create_dir_all(&dir).expect("a host directory for the logs");
        for (name, text) in files.iter() {
            std::fs::write(dir.join(name), text).expect("writing a log");
        }
        // fio2gnuplot is a Python script of Debian's (`#!/usr/bin/env python3`): run by
        // Debian's Python, which has the python3-six it imports.
        for what in ["-b", "-i"] {
            run_tool(&dir, PYTHON, &["/usr/bin/fio2gnuplot", what], who);
        }
        let parser = fiologparser_hist(host_dir);
        let hist = dir.join("av_clat_hist.1.log");
        let stdout = run_tool(
            &dir,
            PYTHON,
            &[
                parser.to_str().expect("a path"),
                hist.to_str().expect("a path"),
            ],
            who,
        );
        eprintln!("[vm_bench_logs] fiologparser_hist on {who}'s clat_hist:\n{stdout}");
        // Its table: a header, then a row per interval.
        let mut lines = stdout.lines();
        assert!(
            lines
                .next()
                .is_some_and(|h| h.starts_with("end-time, samples")),
            "{who}: {stdout}"
        );
        assert!(lines.count() >= 1, "{who}: {stdout}");
    }
}

/// fiologparser_hist.py, unpacked from Debian's fio documents.
fn fiologparser_hist(dir: &Path) -> PathBuf {
    let packed = "/usr/share/doc/fio/fiologparser_hist.py.gz";
    let out = Command::new("gzip")
        .args(["-dc", packed])
        .output()
        .expect("running gzip");
    assert!(out.status.success(), "{packed}: {out:?}");
    let path = dir.join("fiologparser_hist.py");
    std::fs::write(&path, out.stdout).expect("writing fiologparser_hist.py");
    path
}

/// Runs a host tool in `dir`; it must succeed and say nothing on stderr but warnings.
fn run_tool(dir: &Path, program: &str, args: &[&str], who: &str) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("Traceback") && !stderr.contains("Error"),
        "{program} {args:?} on {who}'s logs: {}\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

/// per_job_logs=0: both threads append to one file without a number.
fn check_one_file_for_every_thread(out: &VmOutput) {
    let files = files_of(out, "u3");
    assert_eq!(files.keys().collect::<Vec<_>>(), ["pj_iops.log"], "{out}");
    let rows = rows("pj_iops.log", &files["pj_iops.log"]);
    assert_eq!(rows.len(), 2 * 64, "two threads of 64 I/Os");
}

/// Terse version 3: fio's fields, checked against the JSON of the same run.
fn check_terse(out: &VmOutput) {
    let s = out.section("terse_uvio");
    assert_eq!(s.rc, 0, "{s}");
    let line = s
        .output
        .lines()
        .find(|l| l.starts_with("3;"))
        .unwrap_or_else(|| panic!("no terse line: {s}"));
    let f: Vec<&str> = line.split(';').collect();
    assert_eq!(f.len(), TERSE_FIELDS, "{line}");
    let fio_line = out
        .section("terse_fio")
        .output
        .lines()
        .find(|l| l.starts_with("3;"))
        .unwrap_or_else(|| panic!("no fio terse line: {out}"))
        .to_string();
    let fio_fields: Vec<&str> = fio_line.split(';').collect();
    eprintln!(
        "[vm_bench_logs] terse fields: uvio {}, fio {} (disk: {:?})",
        f.len(),
        fio_fields.len(),
        &fio_fields[TERSE_FIELDS.min(fio_fields.len())..]
    );
    assert_eq!(
        fio_fields.len(),
        TERSE_FIELDS + DISK_FIELDS,
        "fio's terse line: its fields and one disk's: {fio_line}"
    );
    // The same kind of value in each of the 121 places: numbers, `P%=V` percentiles,
    // `N%` percentages.
    let kind = |v: &str| {
        if v.contains("%=") {
            "percentile"
        } else if v.ends_with('%') {
            "percent"
        } else if v.parse::<f64>().is_ok() {
            "number"
        } else {
            "text"
        }
    };
    for i in 0..TERSE_FIELDS {
        assert_eq!(
            kind(f[i]),
            kind(fio_fields[i]),
            "field {i}: uvio `{}`, fio `{}`",
            f[i],
            fio_fields[i]
        );
    }
    let doc = json_of(out, "terse_uvio");
    let read = &doc["jobs"][0]["read"];
    assert_eq!(f[2], "t");
    assert_eq!(
        f[5].parse::<u64>().ok(),
        read["io_kbytes"].as_u64(),
        "{line}"
    );
    let runtime = u(&read["runtime"]);
    assert_eq!(f[8].parse::<u64>().ok(), Some(runtime), "{line}");
    assert_eq!(
        f[7].parse::<u64>().ok(),
        Some(1000 * u(&read["total_ios"]) / runtime),
        "{line}"
    );
    assert_eq!(
        f[13].parse::<u64>().ok(),
        Some(u(&read["clat_ns"]["min"]) / 1000),
        "clat min us: {line}"
    );
    assert_eq!(
        f[17 + 12],
        format!(
            "99.000000%={}",
            u(&read["clat_ns"]["percentile"]["99.000000"]) / 1000
        )
    );
    // --minimal is terse alone.
    let m = out.section("minimal");
    assert_eq!(m.rc, 0, "{m}");
    let lines: Vec<&str> = m.output.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1, "{m}");
    assert_eq!(lines[0].split(';').count(), TERSE_FIELDS, "{m}");
}

/// `--status-interval=1` on a 3 s run: a JSON object per line per second, then the final
/// one; the normal report each second too; `--eta-newline=1` keeps status lines.
fn check_status_interval(out: &VmOutput) {
    let s = out.section("status_json");
    assert_eq!(s.rc, 0, "{s}");
    let docs: Vec<Value> = s
        .output
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(docs.len() >= 3, "two intervals and the end: {s}");
    eprintln!(
        "[vm_bench_logs] --status-interval=1 over 3 s: {} JSON lines",
        docs.len()
    );
    let bytes: Vec<u64> = docs
        .iter()
        .map(|d| u(&d["jobs"][0]["read"]["io_bytes"]))
        .collect();
    assert!(bytes.windows(2).all(|w| w[0] <= w[1]), "{bytes:?}");
    assert!(bytes[0] > 0, "the first interval saw I/O: {bytes:?}");
    let n = s.output.matches("Run status group").count();
    assert_eq!(n, 0, "JSON only: {s}");
    let normal = out.section("status_normal");
    assert_eq!(normal.rc, 0, "{normal}");
    let n = normal
        .output
        .matches("Run status group 0 (all jobs):")
        .count();
    assert!(n >= 3, "{n} reports: {normal}");
    let eta = out.section("eta_newline");
    let lines = eta.output.lines().filter(|l| l.contains("Jobs: 1")).count();
    assert!(lines >= 2, "status lines kept: {eta}");
}

/// split: one CPU each, by thread number; shared: the set (not pinned to one); cpumask=2:
/// CPU 1.
fn check_cpus(out: &VmOutput) {
    let cpus = |section: &str| -> Vec<Value> {
        let doc = json_of(out, section);
        doc["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .map(|j| j["uvio"]["cpu"].clone())
            .collect()
    };
    assert_eq!(cpus("split"), [Value::from(0), Value::from(1)], "{out}");
    assert_eq!(cpus("shared"), [Value::Null, Value::Null], "{out}");
    assert_eq!(cpus("cpumask"), [Value::from(1)], "{out}");
}
