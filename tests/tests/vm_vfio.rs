//! Issue 2: first contact through VFIO — `uvio list | bind | unbind | info` in a real guest,
//! and the errors users meet (unknown BDF, non-virtio function, not bound, no vIOMMU).

use serde_json::Value;
use uvio_tests::vm::{VmOutput, VmSpec};

const BLK: &str = "0000:00:05.0";
const SCSI: &str = "0000:00:04.0";
/// QEMU's q35 AHCI controller: a PCI function that is not virtio.
const AHCI: &str = "0000:00:1f.2";
/// A second virtio-blk disk the guest kernel keeps, to mount and swap on.
const SPARE: &str = "0000:00:07.0";

// Values given on QEMU's command line and asserted back from `uvio info`.
const BLK_BYTES: u64 = 768 << 20;
const BLK_QUEUES: u64 = 3;
const SCSI_QUEUES: u64 = 4;

fn json(out: &VmOutput, section: &str) -> Value {
    let s = out.section(section);
    assert_eq!(s.rc, 0, "section {section} failed\n{out}");
    serde_json::from_str(&s.output)
        .unwrap_or_else(|e| panic!("section {section} is not JSON ({e})\n{out}"))
}

fn names(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn failed_with(out: &VmOutput, section: &str, needles: &[&str]) {
    let s = out.section(section);
    assert_ne!(s.rc, 0, "section {section} should have failed\n{out}");
    for needle in needles {
        assert!(
            s.output.contains(needle),
            "section {section} does not say {needle:?}:\n{s}"
        );
    }
}

#[test]
fn list_bind_info_unbind_with_a_viommu() {
    let dir = uvio_tests::data::work_dir("vfio");
    let spare = dir.join("spare.img");
    std::fs::write(&spare, vec![0u8; 64 << 20]).expect("writing the spare disk image");
    let out = VmSpec::new()
        .virtio_blk_null("05.0", BLK_BYTES, &format!("num-queues={BLK_QUEUES}"))
        .virtio_scsi("s0", "04.0", SCSI_QUEUES as u32, "")
        .scsi_hd_null("s0", 0, 0, 64 << 20, "")
        // File-backed: swap needs its header to stick (null-co drops writes).
        .virtio_blk_file("07.0", &spare, "")
        .script(format!(
            r#"
check sysblock_before ls /sys/block
check list uvio list
check list_json uvio list --json
check bind uvio bind {BLK} {SCSI}
check sysblock_bound ls /sys/block
check list_bound uvio list --json
check info_blk uvio info {BLK} --json
check info_blk_again uvio info {BLK} --json
check info_scsi uvio info {SCSI} --json
check info_text uvio info {BLK}
check bind_again uvio bind {BLK}
check unbind uvio unbind {BLK}
check sysblock_after ls /sys/block
check not_bound uvio info {BLK}
check unknown uvio info 0000:00:09.0
check unknown_bind uvio bind 0000:00:09.0
check not_virtio uvio bind {AHCI}
check not_virtio_info uvio info {AHCI}
check bad_address uvio info 00:zz.0
check swap sh -c 'mkswap /dev/vdb && swapon /dev/vdb'
check swapped uvio bind {SPARE}
check swapoff swapoff /dev/vdb
check md sh -c 'echo md0 > /sys/module/md_mod/parameters/new_array && echo none > /sys/block/md0/md/metadata_version && cat /sys/block/vdb/dev > /sys/block/md0/md/new_dev && ls /sys/block/vdb/holders'
check held uvio bind {SPARE}
check md_stop sh -c 'echo clear > /sys/block/md0/md/array_state && ls /sys/block/vdb/holders'
check passwd sh -c 'echo nobody:x:65534:65534::/:/bin/sh >> /etc/passwd'
check not_root su nobody -c 'uvio bind {SPARE}'
check rmmod rmmod vfio_pci
check no_vfio_pci uvio bind {SPARE}
true
"#
        ))
        .run();
    out.assert_success();

    // list: both functions, typed, with their groups, usable only after bind.
    let listed = json(&out, "list_json");
    let find = |v: &Value, bdf: &str| -> Value {
        v.as_array()
            .and_then(|a| a.iter().find(|f| f["bdf"] == bdf).cloned())
            .unwrap_or_else(|| panic!("{bdf} missing from uvio list\n{out}"))
    };
    let blk = find(&listed, BLK);
    assert_eq!(blk["device_type"], "blk");
    assert_eq!(blk["vendor_id"], "0x1af4");
    assert_eq!(blk["device_id"], "0x1042");
    assert_eq!(blk["driver"], "virtio-pci");
    assert!(blk["iommu_group"].is_u64(), "{blk}");
    assert_eq!(blk["usable"], false);
    let scsi = find(&listed, SCSI);
    assert_eq!(scsi["device_type"], "scsi");
    assert_eq!(scsi["device_id"], "0x1048");
    assert!(
        out.section("list")
            .output
            .contains(&format!("run `uvio bind {BLK}`")),
        "{out}"
    );
    assert!(
        !listed.as_array().unwrap().iter().any(|f| f["bdf"] == AHCI),
        "non-virtio listed\n{out}"
    );

    // bind: both on vfio-pci, usable, and the kernel's disk is gone.
    assert_eq!(out.section("bind").rc, 0, "{out}");
    let bound = json(&out, "list_bound");
    for bdf in [BLK, SCSI] {
        let f = find(&bound, bdf);
        assert_eq!(f["driver"], "vfio-pci", "{f}");
        assert_eq!(f["usable"], true, "{f}");
    }
    assert!(
        out.section("sysblock_before").output.contains("vda"),
        "{out}"
    );
    assert!(
        !out.section("sysblock_bound").output.contains("vda"),
        "{out}"
    );
    assert!(
        out.section("bind_again")
            .output
            .contains("already bound to vfio-pci"),
        "{out}"
    );

    // info: the values from QEMU's command line, and the required features negotiated.
    for section in ["info_blk", "info_blk_again"] {
        let info = json(&out, section);
        assert_eq!(info["device_type"], "blk");
        assert_eq!(info["config"]["capacity"], BLK_BYTES / 512, "{info}");
        assert_eq!(info["config"]["num_queues"], BLK_QUEUES, "{info}");
        assert_eq!(info["virtqueues"], BLK_QUEUES, "{info}");
        let negotiated = names(&info["features"]["negotiated"]);
        for f in [
            "VIRTIO_F_VERSION_1",
            "VIRTIO_F_ACCESS_PLATFORM",
            "VIRTIO_BLK_F_MQ",
        ] {
            assert!(negotiated.contains(&f), "{f} not negotiated: {info}");
        }
        assert!(
            names(&info["features"]["offered"]).contains(&"VIRTIO_F_EVENT_IDX"),
            "{info}"
        );
    }
    let info = json(&out, "info_scsi");
    assert_eq!(info["device_type"], "scsi");
    assert_eq!(info["config"]["num_queues"], SCSI_QUEUES, "{info}");
    // Control and event queues come on top of the request queues.
    assert_eq!(info["virtqueues"], SCSI_QUEUES + 2, "{info}");
    for field in [
        "seg_max",
        "max_sectors",
        "cmd_per_lun",
        "event_info_size",
        "sense_size",
        "cdb_size",
        "max_channel",
        "max_target",
        "max_lun",
    ] {
        assert!(
            info["config"][field].is_u64(),
            "config lacks {field}: {info}"
        );
    }
    assert!(
        names(&info["features"]["negotiated"]).contains(&"VIRTIO_F_ACCESS_PLATFORM"),
        "{info}"
    );
    let text = &out.section("info_text").output;
    assert!(
        text.contains(&format!("capacity: {}", BLK_BYTES / 512))
            && text.contains("VIRTIO_F_VERSION_1"),
        "{out}"
    );

    // unbind: back to virtio-pci, and the kernel's disk is back in /sys/block.
    assert!(
        out.section("unbind")
            .output
            .contains("vfio-pci -> virtio-pci"),
        "{out}"
    );
    assert!(
        out.section("sysblock_after").output.contains("vda"),
        "{out}"
    );

    // Errors name the problem and the way out.
    failed_with(
        &out,
        "not_bound",
        &["bound to virtio-pci", &format!("uvio bind {BLK}")],
    );
    failed_with(&out, "unknown", &["no PCI function 0000:00:09.0"]);
    failed_with(&out, "unknown_bind", &["no PCI function 0000:00:09.0"]);
    failed_with(&out, "not_virtio", &["not a virtio function"]);
    failed_with(&out, "not_virtio_info", &["not a virtio function"]);
    failed_with(&out, "bad_address", &["not a PCI address"]);

    // A disk in use stays with the kernel; so does everything without root or vfio-pci.
    // (The guest has no file system module for a block-device mount; the unit test of
    // binding::block_devices_in_use covers /proc/mounts on real bytes.)
    for s in ["swap", "swapoff", "md", "md_stop", "passwd", "rmmod"] {
        assert_eq!(out.section(s).rc, 0, "guest setup step {s} failed\n{out}");
    }
    failed_with(&out, "swapped", &["/dev/vdb is in use as swap", "swapoff"]);
    // A member of an md array (as LVM or dm-crypt would hold it): held, so refused.
    assert!(out.section("md").output.contains("md0"), "{out}");
    failed_with(&out, "held", &["/dev/vdb is held by md0", "md device"]);
    assert!(!out.section("md_stop").output.contains("md0"), "{out}");
    failed_with(&out, "not_root", &["needs root"]);
    failed_with(
        &out,
        "no_vfio_pci",
        &["vfio-pci driver is not loaded", "modprobe vfio-pci"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_guest_without_a_viommu_gets_told_how_to_get_one() {
    let out = VmSpec::new()
        .viommu(false)
        .virtio_blk_null("05.0", 64 << 20, "")
        .script(format!(
            r#"
check list uvio list --json
check bind uvio bind {BLK}
check info uvio info {BLK}
true
"#
        ))
        .run();
    out.assert_success();
    let listed = json(&out, "list");
    let blk = &listed[0];
    assert_eq!(blk["bdf"], BLK, "{out}");
    assert!(blk["iommu_group"].is_null(), "{out}");
    assert_eq!(blk["usable"], false);
    assert!(
        blk["reason"].as_str().unwrap_or("").contains("vIOMMU"),
        "{out}"
    );
    failed_with(
        &out,
        "bind",
        &["no IOMMU group", "intel-iommu", "intel_iommu=on"],
    );
    failed_with(&out, "info", &["no IOMMU group", "intel_iommu=on"]);
}
