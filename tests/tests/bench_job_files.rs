//! `uvio bench --parse-only` on fio's own example job files, on the host (no guest): the
//! job files of Debian's `fio-examples` 3.33 that target a block device or a file with a
//! standard engine, copied unchanged into `tests/data/fio-examples/` (see its README).
//!
//! Each file is run with only `filename=` changed, to a uvio device address: every
//! `filename=` line is replaced, and a `[global]` section at the top gives the files that
//! have none (`zipf.fio`) one. Each file is either accepted, with the notes uvio prints about
//! what it replaced and the reporting group of every job (so `stonewall` shows), or refused
//! on the option [`EXPECTED`] names, for the reason it names. A file in the directory that
//! the table does not list, or the other way round, fails the test.
//!
//! The binary is `$UVIO_HOST_BIN` if set, otherwise built once with `cargo build -p
//! uvio-tools --bin uvio` in this test's profile.

use std::path::{Path, PathBuf};
use std::process::Command;
use uvio_tests::host_bin::uvio;

/// The device address every job file is pointed at (a syntactically valid BDF: with
/// `--parse-only` no device is opened).
const DEVICE: &str = "0000:00:05.0";

/// What uvio does with one example.
enum Expect {
    /// Accepted: the notes printed (in order), and each job's reporting group (`g=`) as its
    /// start line shows it, one per job section.
    Accepted {
        notes: &'static [&'static str],
        groups: &'static [usize],
    },
    /// Refused on `option` (as the error names it), saying `why`.
    Refused {
        option: &'static str,
        why: &'static str,
    },
}

use Expect::{Accepted, Refused};

const LIBAIO: &str = "ioengine=libaio replaced by uvio";
const DIRECT: &str =
    "uvio I/O is always direct: there is no page cache (direct=0 and buffered=1 are ignored)";
const OFFLOAD: &str = "io_submit_mode=offload: the job's own polling thread submits on schedule \
                       without waiting for completions (uvio's inline mode does what offload is \
                       for)";
const NOT_SUPPORTED: &str = "is not supported by uvio bench: ";

/// Every example, and what uvio does with it.
const EXPECTED: &[(&str, Expect)] = &[
    // The files the issue names first.
    (
        "ssd-test.fio",
        Accepted {
            notes: &[
                LIBAIO,
                "directory=/mount-point-of-ssd ignored: filename= names a uvio device",
            ],
            // Four jobs, each behind a stonewall: four reporting groups.
            groups: &[0, 1, 2, 3],
        },
    ),
    (
        "fio-rand-read.fio",
        Accepted {
            notes: &[DIRECT, LIBAIO],
            groups: &[0],
        },
    ),
    (
        "fio-rand-RW.fio",
        Accepted {
            notes: &[DIRECT, LIBAIO],
            groups: &[0],
        },
    ),
    (
        "basic-verify.fio",
        Accepted {
            notes: &[LIBAIO],
            groups: &[0],
        },
    ),
    (
        // verify=meta with a header every 512 bytes and verify_pattern in between; the
        // write phase fills the device, the verify phase (behind a stonewall) reads it back.
        "surface-scan.fio",
        Accepted {
            notes: &["ioengine=sync replaced by uvio"],
            groups: &[0, 1],
        },
    ),
    (
        "fixed-rate-submission.fio",
        Accepted {
            notes: &[LIBAIO, OFFLOAD],
            groups: &[0],
        },
    ),
    (
        "poisson-rate-submission.fio",
        Accepted {
            notes: &[LIBAIO, OFFLOAD],
            groups: &[0],
        },
    ),
    (
        // `numjobs=4\t; 4 simultaneous threads for each job`: the inline comment goes.
        "tiobench-example.fio",
        Accepted {
            notes: &[],
            groups: &[0, 1, 2, 3],
        },
    ),
    (
        // random_distribution=zipf:0.5, on fio's null engine.
        "zipf.fio",
        Accepted {
            notes: &["ioengine=null replaced by uvio"],
            groups: &[0],
        },
    ),
    // The other examples on a file or block device with a standard engine.
    (
        // rate=1250 and ratemin=1024 for 32 clients, started 4 s apart (startdelay).
        "1mbs_clients.fio",
        Accepted {
            notes: &["directory=tmp ignored: filename= names a uvio device"],
            groups: &[0; 32],
        },
    ),
    (
        "aio-read.fio",
        Accepted {
            notes: &[
                LIBAIO,
                "directory=/data1 ignored: filename= names a uvio device",
            ],
            groups: &[0, 0, 0, 0],
        },
    ),
    (
        // rw=read:-8k: 4 KiB reads going backwards.
        "backwards-read.fio",
        Accepted {
            notes: &[],
            groups: &[0],
        },
    ),
    (
        "butterfly.fio",
        Refused {
            option: "flow",
            why: "flow control between jobs is not implemented",
        },
    ),
    (
        // write_lat_log is written; its priority column (log_prio) is not.
        "cmdprio-bssplit.fio",
        Refused {
            option: "log_prio",
            why: "uvio gives I/Os no priority, so there is none to log",
        },
    ),
    (
        // write_lat_log is written; its priority column (log_prio) is not.
        "cmdprio-percentage.fio",
        Refused {
            option: "log_prio",
            why: "uvio gives I/Os no priority, so there is none to log",
        },
    ),
    (
        // rw=write:112k (holes) is read; verify_backlog is not.
        "cross-stripe-verify.fio",
        Refused {
            option: "verify_backlog",
            why: "verification runs after the write phase",
        },
    ),
    (
        "dedupe-global.fio",
        Refused {
            option: "dedupe_mode",
            why: "write buffers are always random data",
        },
    ),
    (
        "disk-zone-profile.fio",
        Refused {
            option: "zonemode",
            why: "zonemode=strided: strided zones (zonesize, zoneskip) are not implemented",
        },
    ),
    (
        "enospc-pressure.fio",
        Refused {
            option: "filesize",
            why: "use size",
        },
    ),
    (
        "exitwhat.fio",
        Refused {
            option: "filesize",
            why: "use size",
        },
    ),
    (
        "fio-rand-write.fio",
        Accepted {
            notes: &[DIRECT, LIBAIO],
            groups: &[0],
        },
    ),
    (
        "fio-seq-RW.fio",
        Accepted {
            notes: &[DIRECT, LIBAIO],
            groups: &[0],
        },
    ),
    (
        "fio-seq-read.fio",
        Accepted {
            notes: &[LIBAIO],
            groups: &[0],
        },
    ),
    (
        "fio-seq-write.fio",
        Accepted {
            notes: &[DIRECT, LIBAIO],
            groups: &[0],
        },
    ),
    (
        "flow.fio",
        Refused {
            option: "flow_sleep",
            why: "flow control between jobs is not implemented",
        },
    ),
    (
        "fsx.fio",
        Accepted {
            notes: &[LIBAIO],
            groups: &[0],
        },
    ),
    (
        "iometer-file-access-server.fio",
        Accepted {
            notes: &[LIBAIO],
            groups: &[0],
        },
    ),
    (
        // bssplit from 512 B, blockalign=4k, zoned distribution, group_reporting.
        "jesd219.fio",
        Accepted {
            notes: &[LIBAIO],
            groups: &[0],
        },
    ),
    (
        // random_generator=lfsr is replaced (the random map does its part); then
        // latency_target.
        "latency-profile.fio",
        Refused {
            option: "latency_target",
            why: "the search for the depth that meets a latency target is not implemented",
        },
    ),
    (
        "null.fio",
        Refused {
            option: "gtod_reduce",
            why: "latencies are always measured",
        },
    ),
    (
        "numa.fio",
        Refused {
            option: "numa_cpu_nodes",
            why: "NUMA placement is not implemented (use cpus_allowed)",
        },
    ),
    (
        // random_distribution=zoned:50/5:30/15:20/
        "rand-zones.fio",
        Accepted {
            notes: &[],
            groups: &[0],
        },
    ),
    (
        // write_bw_log=fioa-steady-state: fioa-steady-state_bw.N.log.
        "ssd-steadystate.fio",
        Accepted {
            notes: &[LIBAIO],
            groups: &[0, 1],
        },
    ),
    (
        // `threads=1`: not an option of fio's (it is `thread`), which fio lets pass.
        "steadystate.fio",
        Refused {
            option: "threads",
            why: "(did you mean `thread`?)",
        },
    ),
    (
        "waitfor.fio",
        Refused {
            option: "threads",
            why: "(did you mean `thread`?)",
        },
    ),
    (
        "zbd-rand-write.fio",
        Refused {
            option: "zonemode",
            why: "zonemode=zbd: zoned block devices are not supported",
        },
    ),
    (
        "zbd-seq-read.fio",
        Refused {
            option: "zonemode",
            why: "zonemode=zbd: zoned block devices are not supported",
        },
    ),
];

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fio-examples")
}

/// The job file with only `filename=` changed: every `filename=` line names [`DEVICE`], and
/// a `[global]` section at the top gives it to jobs that had none.
fn with_uvio_filename(text: &str) -> String {
    let mut out = format!("[global]\nfilename={DEVICE}\n");
    for line in text.lines() {
        let key = line.split('=').next().unwrap_or_default().trim();
        if key == "filename" {
            out += &format!("filename={DEVICE}\n");
        } else {
            out += line;
            out.push('\n');
        }
    }
    out
}

#[test]
fn every_example_is_listed_once() {
    let mut on_disk: Vec<String> = std::fs::read_dir(examples_dir())
        .expect("tests/data/fio-examples")
        .map(|e| e.expect("a directory entry").file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".fio"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = EXPECTED.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn fio_examples_parse_with_only_the_filename_changed() {
    let scratch = std::env::temp_dir().join(format!("uvio-bench-job-files-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("a scratch directory");
    let mut failures = Vec::new();
    for (name, expect) in EXPECTED {
        let text = std::fs::read_to_string(examples_dir().join(name)).expect("an example");
        let path = scratch.join(name);
        std::fs::write(&path, with_uvio_filename(&text)).expect("writing the changed copy");
        let out = Command::new(uvio())
            .args(["bench", "--parse-only"])
            .arg(&path)
            .output()
            .expect("running uvio");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        let problem = match expect {
            Accepted { notes, groups } => {
                let said: Vec<&str> = stderr.lines().collect();
                let wanted: Vec<String> = notes
                    .iter()
                    .map(|n| format!("uvio bench: note: {n}"))
                    .collect();
                // Each start line: `JOB: (g=N): rw=...`.
                let seen: Vec<Option<usize>> = stdout
                    .lines()
                    .map(|l| {
                        let g = l.split_once("(g=")?.1.split_once(')')?.0;
                        g.parse().ok()
                    })
                    .collect();
                let want_groups: Vec<Option<usize>> = groups.iter().map(|g| Some(*g)).collect();
                if code != Some(0) || said != wanted || seen != want_groups {
                    Some(format!(
                        "expected acceptance with notes {wanted:?} and groups {groups:?}"
                    ))
                } else {
                    None
                }
            }
            Refused { option, why } => {
                // An option fio has and uvio does not: "option `X` is not supported by uvio
                // bench: WHY"; a name fio does not have either: "unknown option `X` (hint)".
                let says = if why.starts_with('(') {
                    format!("unknown option `{option}` {why}")
                } else {
                    format!("option `{option}` {NOT_SUPPORTED}{why}")
                };
                let refused = code == Some(1) && stdout.is_empty() && stderr.contains(&says);
                (!refused).then(|| format!("expected refusal on `{option}`: {why}"))
            }
        };
        if let Some(p) = problem {
            failures.push(format!(
                "{name}: {p}\n  exit {code:?}\n  stdout: {stdout}\n  stderr: {stderr}"
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
