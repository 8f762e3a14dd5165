//! Issue 12: the concurrent scan. On a topology of 44 targets and well over a hundred LUNs
//! (sparse LUNs, a LUN >= 256, a CD-ROM, a read-only LUN, 4 KiB blocks), built twice, uvio's
//! concurrent scan of one HBA returns exactly what `--sequential` returns, in the same order,
//! and both match the guest kernel's scan of the twin (sysfs and lsscsi); and the whole
//! `uvio scan` process takes at most a tenth of the kernel's scan of the twin, timed in the
//! same guest.

use std::collections::BTreeMap;

use serde_json::Value;
use uvio_tests::lsscsi_compare::{compare_line, line_pairs};
use uvio_tests::vm::{VmOutput, VmSpec};

const UVIO_HBA: &str = "0000:00:04.0";
const KERNEL_HBA: &str = "0000:00:06.0";
const TARGETS: u32 = 44;

/// What one target holds: (LUN, kind) pairs.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Disk,
    ReadOnly,
    FourK,
    CdRom,
}

/// The layout of one HBA: target 3 a CD-ROM (LUN 0) and a disk (LUN 1); target 5 a
/// read-only disk; target 7 no LUN 0, sparse LUNs 5 and 300 (4 KiB blocks); target 9 a
/// 4 KiB-block disk; every target ending in 8 sparse LUNs 0, 3 and 6; the others LUNs 0-2.
fn layout() -> Vec<(u32, u32, Kind)> {
    let mut luns = Vec::new();
    for t in 0..TARGETS {
        let these: Vec<(u32, Kind)> = match t {
            3 => vec![(0, Kind::CdRom), (1, Kind::Disk)],
            5 => vec![(0, Kind::ReadOnly), (1, Kind::Disk)],
            7 => vec![(5, Kind::Disk), (300, Kind::FourK)],
            9 => vec![(0, Kind::FourK), (1, Kind::Disk)],
            t if t % 10 == 8 => vec![(0, Kind::Disk), (3, Kind::Disk), (6, Kind::Disk)],
            _ => vec![(0, Kind::Disk), (1, Kind::Disk), (2, Kind::Disk)],
        };
        luns.extend(these.into_iter().map(|(l, k)| (t, l, k)));
    }
    luns
}

fn topology(mut spec: VmSpec, bus: &str, addr: &str) -> VmSpec {
    spec = spec.virtio_scsi(bus, addr, 1, "");
    for (t, l, kind) in layout() {
        let size = (u64::from(t) * 4 + u64::from(l % 16) + 8) << 20;
        spec = match kind {
            Kind::Disk => spec.scsi_hd_null(bus, t, l, size, ""),
            Kind::FourK => spec.scsi_hd_null(
                bus,
                t,
                l,
                size,
                "logical_block_size=4096,physical_block_size=4096",
            ),
            Kind::CdRom => spec.scsi_cd(bus, t, l, None, ""),
            Kind::ReadOnly => {
                let node = format!("{bus}ro{t}x{l}");
                spec.blockdev(format!(
                    "driver=null-co,node-name={node},size={size},read-zeroes=on,read-only=on"
                ))
                .scsi_hd(bus, t, l, &node, "")
            }
        };
    }
    spec
}

/// uvio's timed concurrent scans: the first runs between `first` and `sequential`, the rest
/// after it; the timing assertion takes their median.
const CONCURRENT: [&str; 5] = [
    "concurrent",
    "concurrent2",
    "concurrent3",
    "concurrent4",
    "concurrent5",
];

/// The guest script: the kernel's view of the twin at boot, uvio's timed scans (a first run,
/// then concurrent, sequential, concurrent four times more), then the kernel's timed scan of
/// the twin (unbound from virtio-pci, bound again, until its last sd device is there) and
/// lsscsi.
/// Each timed run is framed by markers written to /dev/kmsg, so both are timed on the
/// kernel's clock with no process started for it.
///
/// Both sides are timed on a second run of their code. Under TCG the first run of any code
/// pays for its translation, which QEMU keeps for later runs at the same address: the
/// kernel's scan code ran at boot (the twin's first scan), and uvio's `first` run, timed
/// but held to a looser bound, does the same for its binary (a non-PIE, so it loads at the
/// same address each run: see `tests/src/vm/host.rs`).
fn script(disks: usize) -> String {
    let uvio_timed = |name: &str, args: &str| {
        format!(
            "check {name} sh -c 'echo uvio-{name}-start > /dev/kmsg; UVIO_LOG=info uvio scan {UVIO_HBA} {args} > /tmp/{name}.out 2> /tmp/{name}.err; rc=$?; echo uvio-{name}-end > /dev/kmsg; cat /tmp/{name}.out; exit $rc'\ncheck {name}_log cat /tmp/{name}.err\n"
        )
    };
    let blocks = format!("/sys/bus/pci/devices/{KERNEL_HBA}/virtio*/host*/target*/*:*:*:*/block/*");
    format!(
        r#"check kernel_sysfs sh -c 'for d in /sys/bus/pci/devices/{KERNEL_HBA}/virtio*/host*/target*/*:*:*:*; do n=$(basename $d); b=$(ls $d/block 2>/dev/null | head -1); if [ -n "$b" ]; then s="$(cat $d/block/$b/size)|$(cat $d/block/$b/queue/logical_block_size)|$(cat $d/block/$b/ro)"; else s="-|-|-"; fi; echo "$n|$(cat $d/type)|$(cat $d/vendor)|$(cat $d/model)|$(cat $d/rev)|$s"; done'
check bind uvio bind {UVIO_HBA}
{first}{c1}{seq}{more}{text}check kernel_timed sh -c 'echo {KERNEL_HBA} > /sys/bus/pci/drivers/virtio-pci/unbind; echo kernel-bind-start > /dev/kmsg; echo {KERNEL_HBA} > /sys/bus/pci/drivers/virtio-pci/bind; n=0; while [ $n -lt 1200 ]; do set -- {blocks}; if [ -e "$1" ] && [ $# -ge {disks} ]; then break; fi; sleep 0.05; n=$((n+1)); done; echo "sd devices: $#"'
check kernel_lsscsi /usr/bin/lsscsi
{options}check dmesg dmesg
"#,
        first = uvio_timed("first", "--json"),
        c1 = uvio_timed(CONCURRENT[0], "--json"),
        seq = uvio_timed("sequential", "--json --sequential"),
        more = CONCURRENT[1..]
            .iter()
            .map(|name| uvio_timed(name, "--json"))
            .collect::<String>(),
        text = uvio_timed("text", ""),
        options = LSSCSI_OPTIONS
            .iter()
            .map(|(name, args)| {
                format!(
                    "check kernel_lsscsi_{name} /usr/bin/lsscsi {args}\ncheck scan_{name} uvio scan {args}\n"
                )
            })
            .collect::<String>(),
    )
}

/// lsscsi's options the issue names, `uvio scan OPTS` against `lsscsi OPTS` on this
/// topology: (check name, arguments). The filter names every host (`*`): the rebound twin
/// has a kernel host number of its own, uvio numbers its host 0.
const LSSCSI_OPTIONS: &[(&str, &str)] = &[
    ("b", "-b"),
    ("c", "-c"),
    ("D", "-D"),
    ("H", "-H"),
    ("l", "-l"),
    ("L", "-L"),
    ("t", "-t"),
    ("u", "-u"),
    ("UU", "-UU"),
    ("s", "-s"),
    ("ss", "-ss"),
    ("sss", "-sss"),
    ("SS", "-SS"),
    ("x", "-x"),
    ("xx", "-xx"),
    ("filter", "-s '*:0:7'"),
];

/// The kernel log's timestamp (seconds) of the first line containing `text` after `from`
/// (a line number), and that line's number.
fn log_time(dmesg: &str, text: &str, from: usize) -> Option<(f64, usize)> {
    dmesg
        .lines()
        .enumerate()
        .skip(from)
        .find(|(_, l)| l.contains(text))
        .and_then(|(at, l)| {
            let stamp = l.strip_prefix('[')?.split(']').next()?.trim();
            Some((stamp.parse().ok()?, at))
        })
}

/// Seconds between the markers of uvio's timed run `name`.
fn uvio_seconds(out: &VmOutput, name: &str) -> f64 {
    let dmesg = &out.section("dmesg").output;
    let (start, at) = log_time(dmesg, &format!("uvio-{name}-start"), 0)
        .unwrap_or_else(|| panic!("no start marker of {name}\n{dmesg}"));
    let (end, _) = log_time(dmesg, &format!("uvio-{name}-end"), at)
        .unwrap_or_else(|| panic!("no end marker of {name}\n{dmesg}"));
    end - start
}

/// Seconds uvio's scan itself took in timed run `name` (its `UVIO_LOG=info` line), from the
/// first command to the last answer.
fn scan_phase_seconds(out: &VmOutput, name: &str) -> f64 {
    let log = &out.section(&format!("{name}_log")).output;
    log.lines()
        .find_map(|l| {
            let (_, rest) = l.split_once(" LUNs in ")?;
            rest.split(" ms").next()?.parse::<f64>().ok()
        })
        .map(|ms| ms / 1e3)
        .unwrap_or_else(|| panic!("no scan time in the log of {name}\n{log}"))
}

/// Seconds from binding the twin to virtio-pci until its last sd device was attached.
fn kernel_seconds(out: &VmOutput, disks: usize) -> f64 {
    let dmesg = &out.section("dmesg").output;
    let (start, at) = log_time(dmesg, "kernel-bind-start", 0)
        .unwrap_or_else(|| panic!("no kernel-bind-start marker\n{dmesg}"));
    let attached: Vec<f64> = dmesg
        .lines()
        .skip(at)
        .filter(|l| l.contains("Attached SCSI disk"))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.trim().parse().ok())
        .collect();
    assert_eq!(
        attached.len(),
        disks,
        "the kernel should attach {disks} sd devices after the bind\n{dmesg}"
    );
    attached.iter().fold(start, |a, &b| a.max(b)) - start
}

/// The order the kernel's scan of the twin (after its rebind) added LUNs in: "C:T:L" of
/// each `scsi H:C:T:L: <type> ... ANSI:` line the scan logs as it adds a device.
fn kernel_order(out: &VmOutput) -> Vec<String> {
    let dmesg = &out.section("dmesg").output;
    let (_, at) = log_time(dmesg, "kernel-bind-start", 0)
        .unwrap_or_else(|| panic!("no kernel-bind-start marker\n{dmesg}"));
    dmesg
        .lines()
        .skip(at)
        .filter(|l| l.contains(" ANSI: "))
        .filter_map(|l| {
            let hctl = l.split("scsi ").nth(1)?.split(": ").next()?;
            Some(hctl.split(':').skip(1).collect::<Vec<_>>().join(":"))
        })
        .collect()
}

/// The kernel's view of the twin at boot, from sysfs: "C:T:L" -> type, vendor, model,
/// revision, and for disks size (512-byte sectors), logical block size, read-only.
fn kernel_view(out: &VmOutput) -> BTreeMap<String, Vec<String>> {
    let mut view = BTreeMap::new();
    for line in out.section("kernel_sysfs").output.lines() {
        let fields: Vec<&str> = line.split('|').collect();
        if fields.len() < 8 {
            continue;
        }
        let ctl = fields[0].split(':').skip(1).collect::<Vec<_>>().join(":");
        let mut fields: Vec<String> = fields[1..].iter().map(|f| f.trim().to_string()).collect();
        if fields[0] != "0" {
            // Not a disk (sr's block device of the CD-ROM): uvio has no disk fields for it.
            for f in &mut fields[4..] {
                *f = "-".into();
            }
        }
        view.insert(ctl, fields);
    }
    view
}

/// uvio's JSON LUNs as the same fields as [`kernel_view`], in the order uvio reported them.
fn uvio_view(json: &Value) -> Vec<(String, Vec<String>)> {
    let luns = json["hosts"][0]["luns"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    luns.iter()
        .map(|l| {
            let ctl = format!("{}:{}:{}", l["channel"], l["target"], l["linux_lun"]);
            let text = |k: &str| l[k].as_str().unwrap_or("").to_string();
            let disk = l.get("size_bytes").and_then(Value::as_u64).map(|bytes| {
                let ro = if l["write_protect"] == true { "1" } else { "0" };
                [
                    (bytes / 512).to_string(),
                    l["block_size"].to_string(),
                    ro.to_string(),
                ]
            });
            let [size, lbs, ro] = disk.unwrap_or_else(|| ["-".into(), "-".into(), "-".into()]);
            let fields = vec![
                l["pdt"].to_string(),
                text("vendor"),
                text("model"),
                text("revision"),
                size,
                lbs,
                ro,
            ];
            (ctl, fields)
        })
        .collect()
}

/// "C:T:L" -> the columns between the tuple and the device node of an lsscsi-layout line.
fn lsscsi_columns(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| l.starts_with('['))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let hctl = words.first()?.trim_matches(|c| c == '[' || c == ']');
            let ctl = hctl.split(':').skip(1).collect::<Vec<_>>().join(":");
            Some((ctl, words[1..words.len() - 1].join(" ")))
        })
        .collect()
}

#[test]
fn the_concurrent_scan_matches_the_sequential_scan_and_the_kernel_and_is_timed() {
    let luns = layout();
    let disks = luns.iter().filter(|(_, _, k)| *k != Kind::CdRom).count();
    let spec = VmSpec::new()
        .reference_tools()
        .timeout(std::time::Duration::from_secs(600));
    let spec = topology(spec, "s0", "04.0");
    let out = topology(spec, "s1", "06.0").script(script(disks)).run();
    out.assert_success();

    // Same result, same order: the JSON of the concurrent and sequential scans is identical.
    let concurrent = &out.section(CONCURRENT[0]).output;
    assert_eq!(concurrent, &out.section("sequential").output, "{out}");
    for name in &CONCURRENT[1..] {
        assert_eq!(concurrent, &out.section(name).output, "{out}");
    }
    assert_eq!(concurrent, &out.section("first").output, "{out}");
    let json: Value =
        serde_json::from_str(concurrent).unwrap_or_else(|e| panic!("scan JSON: {e}\n{concurrent}"));
    assert_eq!(json["hosts"][0]["warnings"], Value::Array(vec![]), "{out}");

    // Against the kernel's scan of the twin: the same LUNs and their fields, and uvio's
    // order is the kernel's (target, then LUN as REPORT LUNS lists it).
    let kernel = kernel_view(&out);
    assert_eq!(kernel.len(), luns.len(), "the kernel's LUNs\n{out}");
    let uvio = uvio_view(&json);
    assert_eq!(uvio.len(), luns.len(), "uvio's LUNs\n{out}");
    for (ctl, fields) in &uvio {
        assert_eq!(Some(fields), kernel.get(ctl), "{ctl}\n{out}");
    }
    let order: Vec<String> = uvio.iter().map(|(ctl, _)| ctl.clone()).collect();
    assert_eq!(
        order,
        kernel_order(&out),
        "uvio's order against the kernel's\n{out}"
    );
    let wp: Vec<&(String, Vec<String>)> = uvio.iter().filter(|(_, f)| f[6] == "1").collect();
    assert_eq!(wp.len(), 1, "one read-only LUN: {wp:?}");
    assert!(uvio
        .iter()
        .any(|(ctl, f)| ctl == "0:7:16684" && f[5] == "4096"));
    assert!(uvio.iter().any(|(ctl, f)| ctl == "0:3:0" && f[0] == "5"));

    // uvio's lsscsi layout against lsscsi on the twin after its rebind (every LUN again).
    let kernel_lsscsi = lsscsi_columns(&out.section("kernel_lsscsi").output);
    let uvio_lsscsi = lsscsi_columns(&out.section("text").output);
    assert_eq!(kernel_lsscsi.len(), luns.len(), "{out}");
    assert_eq!(uvio_lsscsi, kernel_lsscsi, "{out}");

    // Each of lsscsi's options the issue names, line for line, the host number aside.
    let host = out
        .section("kernel_lsscsi")
        .output
        .lines()
        .find_map(|l| l.strip_prefix('[')?.split(':').next()?.parse::<u32>().ok())
        .unwrap_or_else(|| panic!("no kernel SCSI host in lsscsi's output\n{out}"));
    for (name, args) in LSSCSI_OPTIONS {
        let kernel = out.section(&format!("kernel_lsscsi_{name}"));
        let uvio = out.section(&format!("scan_{name}"));
        assert_eq!((kernel.rc, uvio.rc), (0, 0), "{args}\n{kernel}\n{uvio}");
        let pairs = line_pairs(&uvio.output, &kernel.output, host, args);
        assert!(!pairs.is_empty(), "{args}\n{kernel}");
        for (u, k) in &pairs {
            compare_line(u, k, args, UVIO_HBA);
        }
    }

    // The time: uvio's whole process (start, argument parsing, device setup, scan, output,
    // device reset and close, exit) and its scan alone, against the kernel's scan of the
    // twin. The issue's criterion: the whole concurrent process in at most a tenth of the
    // kernel's time. It is held to the median of five runs: the host running this guest
    // may be busy with other work, and a stall of a few tens of milliseconds is a large part
    // of a 0.1 s process but a small one of the kernel's 1-1.5 s scan (seen: one run of
    // 0.35 s between two of 0.08 s; and two runs of 0.21 and 0.25 s with one of 0.09 s,
    // where the next boot on the same host gave 0.098, 0.093 and 0.099 s).
    let kernel = kernel_seconds(&out, disks);
    let whole = |name| uvio_seconds(&out, name);
    let scan = |name| scan_phase_seconds(&out, name);
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let runs: Vec<f64> = CONCURRENT.iter().map(|&n| whole(n)).collect();
    let scans: Vec<f64> = CONCURRENT.iter().map(|&n| scan(n)).collect();
    let (first, seq, sseq) = (whole("first"), whole("sequential"), scan("sequential"));
    let (c, s) = (median(runs.clone()), median(scans.clone()));
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "scan of {TARGETS} targets, {} LUNs: the kernel {kernel:.3} s; uvio's whole process \
         concurrent {} s (median {c:.3} s, {:.3}x the kernel's), sequential {seq:.3} s \
         ({:.3}x), first run (code not yet translated) {first:.3} s ({:.3}x); uvio's scan \
         alone concurrent {} s (median {s:.3} s, {:.3}x), sequential {sseq:.3} s ({:.3}x)",
        luns.len(),
        list(&runs),
        c / kernel,
        seq / kernel,
        first / kernel,
        list(&scans),
        s / kernel,
        sseq / kernel
    );
    assert!(
        s < sseq,
        "the concurrent scan is not faster than the sequential one\n{out}"
    );
    assert!(
        c <= kernel / 10.0,
        "uvio's whole concurrent process over a tenth of the kernel's scan\n{out}"
    );
    assert!(
        first <= kernel / 2.0,
        "uvio's first run over half the kernel's scan\n{out}"
    );
}
