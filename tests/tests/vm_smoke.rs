//! Smoke tests for the VM harness itself: the guest boots, sees the devices the test asked for,
//! has VFIO behind a vIOMMU (or not, when asked), and can be driven over QMP and the console.

use std::time::Duration;

use serde_json::json;
use uvio_tests::vm::VmSpec;

const GIB: u64 = 1 << 30;

/// One virtio-blk function at 00:05.0 and one virtio-scsi HBA at 00:04.0 with two LUNs.
fn topology() -> VmSpec {
    VmSpec::new()
        .virtio_blk_null("05.0", GIB, "")
        .virtio_scsi("s0", "04.0", 2, "")
        .scsi_hd_null("s0", 0, 0, GIB, "")
        .scsi_hd_null("s0", 2, 5, 512 << 20, "serial=second")
}

fn report(name: &str, out: &uvio_tests::vm::VmOutput) {
    let (booted, script) = out.guest_uptimes();
    eprintln!(
        "[{name}] elapsed {:.1?}, guest uptime at /init {booted:?} s, at script {script:?} s",
        out.elapsed
    );
}

#[test]
fn guest_sees_devices_and_vfio() {
    let out = topology()
        .script(
            r#"
check pci ls /sys/bus/pci/devices
check vendor cat /sys/bus/pci/devices/0000:00:05.0/vendor
check vfio-node ls -l /dev/vfio/vfio
check iommu-group ls -l /sys/bus/pci/devices/0000:00:05.0/iommu_group
check scsi ls /sys/class/scsi_device
check modules cat /proc/modules
check uvio-help uvio --help
true
"#,
        )
        .run();
    report("devices", &out);
    out.assert_success();
    let pci = out.section("pci");
    assert!(pci.output.contains("0000:00:05.0"), "no 00:05.0\n{out}");
    assert!(pci.output.contains("0000:00:04.0"), "no 00:04.0\n{out}");
    assert_eq!(out.section("vendor").output.trim(), "0x1af4", "{out}");
    assert_eq!(out.section("vfio-node").rc, 0, "{out}");
    let group = out.section("iommu-group");
    assert_eq!(group.rc, 0, "{out}");
    assert!(group.output.contains("iommu_groups/"), "{out}");
    let scsi = out.section("scsi");
    for hctl in ["0:0:0:0", "0:0:2:5"] {
        assert!(scsi.output.contains(hctl), "LUN {hctl} missing\n{out}");
    }
    // The tool is still being written: record what it did, do not judge it.
    let help = out.section("uvio-help");
    eprintln!("[devices] uvio --help rc={}:\n{}", help.rc, help.output);
}

#[test]
fn without_viommu_there_is_no_iommu_group() {
    let out = topology()
        .viommu(false)
        .uvio(false)
        .script(
            r#"
check pci ls /sys/bus/pci/devices
check iommu-group ls -l /sys/bus/pci/devices/0000:00:05.0/iommu_group
check vfio ls /dev/vfio
true
"#,
        )
        .run();
    report("no-viommu", &out);
    out.assert_success();
    assert!(out.section("pci").output.contains("0000:00:05.0"), "{out}");
    assert_ne!(
        out.section("iommu-group").rc,
        0,
        "iommu_group exists without a vIOMMU\n{out}"
    );
    assert_eq!(out.section("vfio").output.trim(), "vfio", "{out}");
}

#[test]
fn qmp_and_console_interaction() {
    let mut vm = VmSpec::new()
        .virtio_blk_null("05.0", GIB, "")
        .uvio(false)
        .qmp(true)
        .script(
            r#"
marker READY
host_wait 120 || exit 3
echo "host said: $UVIO_HOST_LINE"
"#,
        )
        .spawn();
    vm.wait_for_console("@@READY@@", Duration::from_secs(120));
    let mut qmp = vm.qmp();
    let status = qmp
        .execute("query-status", json!({}))
        .unwrap_or_else(|e| panic!("query-status: {e}\n{}", vm.console()));
    assert_eq!(status["status"], "running", "{status}");
    let err = qmp
        .execute("no-such-command", serde_json::Value::Null)
        .expect_err("an unknown command must fail");
    assert!(err.contains("CommandNotFound"), "{err}");
    vm.send_line("go");
    let out = vm.wait(Duration::from_secs(120));
    report("qmp", &out);
    out.assert_success();
    assert!(out.console.contains("host said: go"), "{out}");
}

#[test]
fn reference_tools_run_in_the_guest() {
    let out = topology()
        .uvio(false)
        .reference_tools()
        .script(
            r#"
check lsscsi lsscsi
check which-lsscsi sh -c 'command -v lsscsi; ls -l "$(command -v lsscsi)"'
check busybox-ok busybox true
check readcap sg_readcap /dev/sg1
check fio fio --name=t --filename=/dev/vda --rw=randread --bs=4k --size=16m --runtime=2 --time_based --ioengine=psync --output-format=terse
true
"#,
        )
        .run();
    report("reference-tools", &out);
    out.assert_success();
    let lsscsi = out.section("lsscsi");
    assert_eq!(lsscsi.rc, 0, "{out}");
    for hctl in ["[0:0:0:0]", "[0:0:2:5]"] {
        assert!(lsscsi.output.contains(hctl), "lsscsi misses {hctl}\n{out}");
    }
    // The real lsscsi, not busybox's applet.
    assert!(
        !out.section("which-lsscsi").output.contains("busybox"),
        "{out}"
    );
    assert_eq!(
        out.section("busybox-ok").rc,
        0,
        "busybox was overwritten\n{out}"
    );
    assert_eq!(out.section("readcap").rc, 0, "{out}");
    assert_eq!(out.section("fio").rc, 0, "{out}");
}
