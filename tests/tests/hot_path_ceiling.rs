//! Instructions per request of the hot path, counted by callgrind on the host (no guest):
//! `HwQueue` + encoder + split ring against the in-process fake device
//! (`driver/examples/hot_path.rs`). Instruction counts are deterministic for one binary, so a
//! ceiling is a regression test that timing could never be. Each figure is the difference
//! between two runs of different lengths, divided by the difference in requests, so setup
//! costs cancel; only the driver's two functions are counted, not the fake device.

use std::process::Command;

use uvio_tests::vm::{ensure_valgrind, hot_path_binary};

/// Driver instructions for `requests` 4 KiB reads at `depth` on `device` (blk or scsi).
fn collected(device: &str, depth: u16, requests: u64) -> u64 {
    let valgrind = ensure_valgrind();
    let out = Command::new(valgrind)
        .args([
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            "--toggle-collect=*hot_submit*",
            "--toggle-collect=*hot_reap*",
        ])
        .arg(hot_path_binary())
        .args(["--device", device, "--depth", &depth.to_string()])
        .args(["--requests", &requests.to_string()])
        .output()
        .expect("running valgrind");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "hot_path under callgrind failed:\n{stderr}"
    );
    stderr
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `Collected` line from callgrind:\n{stderr}"))
}

fn per_request(device: &str, depth: u16) -> u64 {
    let (a, b) = (4_000, 8_000);
    (collected(device, depth, b) - collected(device, depth, a)) / (b - a)
}

/// (device, depth, ceiling). Before the per-tag record reshape (commit 8dc976b) the same
/// benchmark counted blk 1299 / 1073 and scsi 1603 / 1376 at depth 1 / 32.
const CEILINGS: [(&str, u16, u64); 4] = [
    ("blk", 1, 650),
    ("blk", 32, 540),
    ("scsi", 1, 870),
    ("scsi", 32, 750),
];

#[test]
fn instructions_per_request_stay_under_their_ceilings() {
    let mut report = Vec::new();
    for (device, depth, ceiling) in CEILINGS {
        let n = per_request(device, depth);
        eprintln!(
            "hot path: {device} depth {depth}: {n} instructions per request (ceiling {ceiling})"
        );
        report.push((device, depth, n, ceiling));
    }
    let over: Vec<_> = report.iter().filter(|r| r.2 > r.3).collect();
    assert!(
        over.is_empty(),
        "instructions per request over the ceiling (device, depth, counted, ceiling): {over:?}"
    );
}
