//! Issue 9, surprise removal: QMP `device_del` of a function uvio holds, behind a
//! `pcie-root-port`. The guest kernel asks vfio-pci for it back, which signals uvio's device
//! request eventfd; uvio stops, fails what is in flight, says the device was removed, exits
//! non-zero and lets go, so the unplug completes (DEVICE_DELETED) within seconds instead of
//! waiting for the tool's runtime. Once during `uvio bench` on virtio-blk, once during
//! `uvio scan --watch` on virtio-scsi, once during `uvio verify` (the in-flight loop of the
//! dd-like tools); a bench on a function that stays finishes normally.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uvio_tests::data::work_dir;
use uvio_tests::vm::{Qmp, RunningVm, VmSpec};

/// virtio-blk behind root port rp1: the first port's secondary bus.
const BLK: &str = "0000:01:00.0";
/// virtio-scsi behind root port rp2.
const HBA: &str = "0000:02:00.0";
/// virtio-blk behind root port rp3, for `uvio verify` (the dd-like tools' in-flight loop).
const VERIFIED: &str = "0000:03:00.0";
/// virtio-blk on the root complex, never removed.
const STAYS: &str = "0000:00:05.0";

/// How long QEMU may take from `device_del` to DEVICE_DELETED (the issue's bound).
const DELETED_WITHIN: Duration = Duration::from_secs(5);

/// Sends `device_del` for QEMU id `id` and waits for the DEVICE_DELETED of that device (QEMU
/// also reports its virtio backend child, without a `device` field). Returns the time from
/// the command to the event.
fn unplug(vm: &mut RunningVm, qmp: &mut Qmp, id: &str) -> Duration {
    let sent = Instant::now();
    qmp.execute("device_del", json!({ "id": id }))
        .unwrap_or_else(|e| panic!("QMP device_del {id}: {e}\n{}", vm.console()));
    loop {
        let left = (sent + Duration::from_secs(60)).saturating_duration_since(Instant::now());
        let event: Value = qmp.wait_event("DEVICE_DELETED", left).unwrap_or_else(|e| {
            panic!(
                "{e} after device_del {id} ({:?})\n{}",
                sent.elapsed(),
                vm.console()
            )
        });
        if event["data"]["device"] == id {
            return sent.elapsed();
        }
    }
}

/// The guest's uptime (seconds) on the first kernel log line holding both `a` and `b`.
fn logged_at(dmesg: &str, a: &str, b: &str) -> Option<f64> {
    let line = dmesg.lines().find(|l| l.contains(a) && l.contains(b))?;
    let stamp = line.split_once('[')?.1.split_once(']')?.0;
    stamp.trim().parse().ok()
}

/// The uptime the script printed when the tool of a section exited.
fn exit_uptime(output: &str) -> f64 {
    output
        .lines()
        .find_map(|l| l.strip_prefix("exit_uptime="))
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(|| panic!("no exit_uptime= in\n{output}"))
}

#[test]
fn device_del_of_a_held_function_stops_the_tool_and_completes() {
    let bench = |name: &str, bdf: &str, runtime: u32| {
        format!(
            "uvio bench --name={name} --filename={bdf} --rw=randread --bs=4k --iodepth=8 \
             --size=16m --runtime={runtime} --time_based --eta=never"
        )
    };
    // The tool's exit, on the guest's clock, to hold against the kernel's log of the request.
    let timed = |command: &str| {
        format!(
            "sh -c '{command}; rc=$?; echo exit_uptime=$(cut -d\" \" -f1 /proc/uptime); exit $rc'"
        )
    };
    let script = format!(
        r#"
check bind uvio bind {BLK} {HBA} {VERIFIED} {STAYS}
marker BENCH
check bench_removed {bench_removed}
host_wait 600
check blk_gone sh -c 'test ! -e /sys/bus/pci/devices/{BLK} && echo gone'
marker SCAN
check scan_removed {scan_removed}
host_wait 600
check hba_gone sh -c 'test ! -e /sys/bus/pci/devices/{HBA} && echo gone'
marker VERIFY
check verify_removed {verify_removed}
host_wait 600
check bench_stays {bench_stays}
check dmesg sh -c 'dmesg | grep -E "{BLK}|{HBA}|{VERIFIED}"'
"#,
        bench_removed = timed(&bench("gone", BLK, 60)),
        scan_removed = timed(&format!("uvio scan {HBA} --watch 60")),
        verify_removed = timed(&format!(
            "uvio verify {VERIFIED} --queues 1 --depth 8 --ios 100000000"
        )),
        bench_stays = bench("stays", STAYS, 3),
    );
    // verify reads back what it wrote: a file, not null-co.
    let dir = work_dir("removal");
    let image = dir.join("verified.img");
    std::fs::write(&image, vec![0u8; 32 << 20]).unwrap();
    let mut vm = VmSpec::new()
        .qmp(true)
        .pcie_root_port("rp1", 1, "09.0")
        .pcie_root_port("rp2", 2, "0a.0")
        .blockdev("driver=null-co,node-name=gone,size=67108864,read-zeroes=on")
        .virtio_blk("0", "gone", "bus=rp1,id=blk0")
        .pcie_root_port("rp3", 3, "0b.0")
        .virtio_scsi("s1", "0", 1, "bus=rp2")
        .scsi_hd_null("s1", 0, 0, 16 << 20, "")
        .virtio_blk_file("0", &image, "bus=rp3,id=blk1")
        .blockdev("driver=null-co,node-name=stays,size=67108864,read-zeroes=on")
        .virtio_blk("05.0", "stays", "")
        .script(script)
        .spawn();
    let minute = Duration::from_secs(180);
    let mut qmp = vm.qmp();

    // The bench runs (its start-up lines are out, then a moment of I/O), then the unplug.
    vm.wait_for_console("@@BENCH@@", minute);
    vm.wait_for_console("Starting 1 thread", minute);
    std::thread::sleep(Duration::from_secs(2));
    let blk_deleted = unplug(&mut vm, &mut qmp, "blk0");
    vm.send_line("next");

    vm.wait_for_console("@@SCAN@@", minute);
    vm.wait_for_console(&format!("watching {HBA}"), minute);
    std::thread::sleep(Duration::from_secs(1));
    let hba_deleted = unplug(&mut vm, &mut qmp, "s1");
    vm.send_line("next");

    // verify prints nothing until it ends: give it time to open the function and start.
    vm.wait_for_console("@@VERIFY@@", minute);
    std::thread::sleep(Duration::from_secs(4));
    let verify_deleted = unplug(&mut vm, &mut qmp, "blk1");
    vm.send_line("next");

    let out = vm.wait(Duration::from_secs(300));
    eprintln!("{out}");
    assert_eq!(out.exit_code, Some(0), "{out}");
    assert_eq!(out.section("bind").rc, 0, "{out}");

    let dmesg = out.section("dmesg").output.clone();
    for (what, section, bdf, deleted) in [
        ("bench", "bench_removed", BLK, blk_deleted),
        ("scan --watch", "scan_removed", HBA, hba_deleted),
        ("verify", "verify_removed", VERIFIED, verify_deleted),
    ] {
        let s = out.section(section);
        // vfio-pci logs its first request to the process ("#0"); the tool's exit follows.
        let asked = logged_at(&dmesg, bdf, "Relaying device request to user")
            .unwrap_or_else(|| panic!("no device request for {bdf} in the kernel log\n{out}"));
        let exited = exit_uptime(&s.output) - asked;
        eprintln!(
            "{what} on {bdf}: device_del to DEVICE_DELETED {deleted:?}; kernel request to \
             tool exit {exited:.3} s"
        );
        assert!(
            exited < 1.0,
            "{what}: exited {exited:.3} s after the kernel asked\n{out}"
        );
        assert_ne!(s.rc, 0, "{what} exits non-zero when its device goes\n{out}");
        assert!(
            s.output.contains("was removed (hot-unplug)"),
            "{what} says the device was removed\n{out}"
        );
        assert!(
            !s.output.contains("interrupted by signal"),
            "a removal is not a signal\n{out}"
        );
        assert!(
            deleted < DELETED_WITHIN,
            "{what}: DEVICE_DELETED after {deleted:?}\n{out}"
        );
    }
    let bench = &out.section("bench_removed").output;
    assert!(
        bench.contains(&format!("the device {BLK} was removed")),
        "it names the function\n{out}"
    );
    assert!(
        bench.contains("device removed") && bench.contains("err=19"),
        "in-flight requests fail as removed (ENODEV)\n{out}"
    );
    assert!(
        out.section("scan_removed")
            .output
            .contains(&format!("the device {HBA} was removed")),
        "{out}"
    );
    assert!(
        out.section("verify_removed")
            .output
            .contains("requests in flight failed: device removed"),
        "verify fails what it had in flight as removed\n{out}"
    );
    for gone in ["blk_gone", "hba_gone"] {
        assert_eq!(
            out.section(gone).output.trim(),
            "gone",
            "the guest let go of it\n{out}"
        );
    }
    let s = out.section("bench_stays");
    assert_eq!(
        s.rc, 0,
        "a bench on a function that stays is unaffected\n{out}"
    );
    assert!(s.output.contains("read: IOPS="), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
