//! Issue 3: data through the virtio-blk driver, proven against the host's image files.

use std::fs;

use uvio_tests::data::{guest_hash, seeded_bytes, sha256, work_dir};
use uvio_tests::vm::VmSpec;

const DISK: &str = "0000:00:05.0";
const RO_DISK: &str = "0000:00:06.0";
/// Two queues, indirect descriptors and EVENT_IDX (QEMU's defaults).
const STRESS: &str = "0000:00:07.0";
/// One queue with neither indirect descriptors nor EVENT_IDX: the other ring paths.
const PLAIN: &str = "0000:00:08.0";
/// The packed virtqueue (`packed=on`), two queues, on a file image.
const PACKED: &str = "0000:00:09.0";
const PACKED_BYTES: usize = 16 << 20;
const IMAGE_BYTES: usize = 32 << 20;
const VERIFY_IOS: u64 = 20000;

#[test]
fn reads_writes_flushes_discards_and_zeroes_byte_exact() {
    let dir = work_dir("blk-data");
    let image = seeded_bytes(0x5eed_0001, IMAGE_BYTES);
    let ro_image = seeded_bytes(0x5eed_0002, 4 << 20);
    fs::write(dir.join("disk.img"), &image).unwrap();
    fs::write(dir.join("ro.img"), &ro_image).unwrap();
    for name in ["stress.img", "plain.img"] {
        fs::write(dir.join(name), vec![0u8; 64 << 20]).unwrap();
    }
    let packed_image = seeded_bytes(0x5eed_0005, PACKED_BYTES);
    fs::write(dir.join("packed.img"), &packed_image).unwrap();
    let w1 = seeded_bytes(0x5eed_0003, (3 << 20) + 4096); // crosses request boundaries
    let w2 = seeded_bytes(0x5eed_0004, 8192);
    fs::write(dir.join("w1.bin"), &w1).unwrap();
    fs::write(dir.join("w2.bin"), &w2).unwrap();

    // Ranges to read: (name, offset, length).
    let big_off = (1 << 20) + 512;
    let big_len = (9 << 20) + 3 * 512; // 9+ MiB: nine 1 MiB requests and a short one
    let reads = [
        ("first", 0usize, 512usize),
        ("last", IMAGE_BYTES - 512, 512),
        ("big", big_off, big_len),
    ];
    let (w1_off, w2_off) = (20 << 20, 4096 * 3);
    let (discard_off, discard_len) = (24 << 20, 1 << 20);
    let (zero_off, zero_len) = (26 << 20, (2 << 20) + 4096);

    let (packed_off, packed_w_off) = (3 << 20, 5 << 20);
    let mut script = format!("check bind uvio bind {DISK} {RO_DISK} {STRESS} {PLAIN} {PACKED}\n");
    // The packed ring: negotiated whenever offered, refused on request, byte-exact, verified.
    script += &format!(
        r#"check packed_info uvio info {PACKED} --json
check packed_info_split uvio --ring split info {PACKED} --json
check packed_read sh -c 'uvio read {PACKED} --offset {packed_off} --length 4m | sha256sum'
check packed_verify uvio verify {PACKED} --ios {VERIFY_IOS} --json
check packed_write uvio write {PACKED} --offset {packed_w_off} --input /data/w1.bin
check packed_readback sh -c 'uvio read {PACKED} --offset {packed_w_off} --length {w1_len} | sha256sum'
check packed_bench uvio bench --name=p --filename={PACKED} --rw=randread --bs=4k --iodepth=8 --runtime=1 --time_based --size=4m --eta=never
check packed_bench_verify uvio bench --output-format=json --name=pv --filename={PACKED} --rw=randwrite --bs=4k --iodepth=16 --size=4m --verify=crc32c
check split_on_packed_bench uvio --ring split bench --name=s --filename={PACKED} --rw=randread --bs=4k --iodepth=8 --runtime=1 --time_based --size=4m --eta=never
"#,
        w1_len = w1.len()
    );
    script += &format!("check verify uvio verify {STRESS} --ios {VERIFY_IOS} --json\n");
    script +=
        &format!("check verify_plain uvio verify {PLAIN} --ios {VERIFY_IOS} --depth 16 --json\n");
    // Depth 1: its one buffer keeps status room (verify carves half and half, rounding up).
    script +=
        &format!("check verify_depth1 uvio verify {PLAIN} --ios {VERIFY_IOS} --depth 1 --json\n");
    for (name, off, len) in reads {
        script += &format!("check read_{name} sh -c 'uvio read {DISK} --offset {off} --length {len} | sha256sum'\n");
    }
    script += &format!(
        r#"
check read_to_file uvio read {DISK} --offset 0 --length 1m --output /tmp/head.bin
check head_hash sha256sum /tmp/head.bin
check write_file uvio write {DISK} --offset {w1_off} --input /data/w1.bin
check write_stdin sh -c 'cat /data/w2.bin | uvio write {DISK} --offset {w2_off}'
check readback sh -c 'uvio read {DISK} --offset {w1_off} --length {} | sha256sum'
check flush uvio flush {DISK}
check discard uvio discard {DISK} --offset {discard_off} --length {discard_len}
check write_zeroes uvio write-zeroes {DISK} --offset {zero_off} --length {zero_len}
check misaligned uvio read {DISK} --offset 100 --length 512
check misaligned_len uvio write {DISK} --offset 0 --input /data/w1.bin --length 1000
check beyond_end uvio read {DISK} --offset {IMAGE_BYTES} --length 512
check ro_write uvio write {RO_DISK} --offset 0 --input /data/w2.bin
check ro_read sh -c 'uvio read {RO_DISK} --offset 0 --length 4m | sha256sum'
true
"#,
        w1.len()
    );
    let out = VmSpec::new()
        .blockdev(format!(
            "driver=file,filename={},node-name=disk,discard=unmap",
            dir.join("disk.img").display()
        ))
        .virtio_blk("05.0", "disk", "num-queues=2")
        .blockdev(format!(
            "driver=file,filename={},node-name=ro,read-only=on",
            dir.join("ro.img").display()
        ))
        .virtio_blk("06.0", "ro", "")
        .blockdev(format!(
            "driver=file,filename={},node-name=stress",
            dir.join("stress.img").display()
        ))
        .virtio_blk("07.0", "stress", "num-queues=2")
        .blockdev(format!(
            "driver=file,filename={},node-name=plain",
            dir.join("plain.img").display()
        ))
        .virtio_blk(
            "08.0",
            "plain",
            "num-queues=1,indirect_desc=off,event_idx=off",
        )
        .blockdev(format!(
            "driver=file,filename={},node-name=packed",
            dir.join("packed.img").display()
        ))
        .virtio_blk("09.0", "packed", "num-queues=2,packed=on")
        .file(dir.join("w1.bin"), "/data/w1.bin")
        .file(dir.join("w2.bin"), "/data/w2.bin")
        .script(script)
        .run();
    out.assert_success();

    for (name, off, len) in reads {
        assert_eq!(
            guest_hash(&out, &format!("read_{name}")),
            sha256(&image[off..off + len]),
            "read {name}\n{out}"
        );
    }
    assert_eq!(
        guest_hash(&out, "head_hash"),
        sha256(&image[..1 << 20]),
        "{out}"
    );
    assert_eq!(guest_hash(&out, "readback"), sha256(&w1), "{out}");
    for s in [
        "write_file",
        "write_stdin",
        "flush",
        "discard",
        "write_zeroes",
    ] {
        assert_eq!(out.section(s).rc, 0, "{s} failed\n{out}");
    }

    // The host image after power-off: the writes landed, discard and write-zeroes zeroed,
    // and nothing else changed.
    let after = fs::read(dir.join("disk.img")).unwrap();
    assert_eq!(after.len(), IMAGE_BYTES);
    let mut expected = image.clone();
    expected[w1_off..w1_off + w1.len()].copy_from_slice(&w1);
    expected[w2_off..w2_off + w2.len()].copy_from_slice(&w2);
    expected[discard_off..discard_off + discard_len].fill(0);
    expected[zero_off..zero_off + zero_len].fill(0);
    let first_diff = after.iter().zip(&expected).position(|(a, b)| a != b);
    assert_eq!(
        first_diff, None,
        "host image differs from the expected bytes at that offset\n{out}"
    );

    // The packed ring: negotiated (and only when not refused), byte-exact both ways.
    let negotiated = |section: &str| -> Vec<String> {
        let s = out.section(section);
        assert_eq!(s.rc, 0, "{section} failed\n{out}");
        let info: serde_json::Value =
            serde_json::from_str(&s.output).unwrap_or_else(|e| panic!("{section}: {e}\n{s}"));
        info["features"]["negotiated"]
            .as_array()
            .expect("negotiated features")
            .iter()
            .filter_map(|f| f.as_str().map(String::from))
            .collect()
    };
    assert!(
        negotiated("packed_info").contains(&"VIRTIO_F_RING_PACKED".to_string()),
        "{out}"
    );
    assert!(
        !negotiated("packed_info_split").contains(&"VIRTIO_F_RING_PACKED".to_string()),
        "{out}"
    );
    assert_eq!(
        guest_hash(&out, "packed_read"),
        sha256(&packed_image[packed_off..packed_off + (4 << 20)]),
        "{out}"
    );
    assert_eq!(out.section("packed_write").rc, 0, "{out}");
    // Writes, then reads checked against their crc32c, the reads in two-descriptor chains
    // (the bench's buffers keep room for the status byte after the data).
    assert_eq!(out.section("packed_bench_verify").rc, 0, "{out}");
    assert_eq!(guest_hash(&out, "packed_readback"), sha256(&w1), "{out}");
    // (`uvio verify` wrote blocks all over the disk before; the last write is on top.)
    let packed_after = fs::read(dir.join("packed.img")).unwrap();
    assert!(
        packed_after[packed_w_off..packed_w_off + w1.len()] == w1[..],
        "the packed device's host image differs from what was written\n{out}"
    );
    for (section, ring) in [
        ("packed_bench", "packed"),
        ("split_on_packed_bench", "split"),
    ] {
        let s = out.section(section);
        assert_eq!(s.rc, 0, "{section} failed\n{out}");
        assert!(
            s.output.contains(&format!("ring={ring},")),
            "{section}: ring={ring}?\n{s}"
        );
    }

    // Refusals happen before any I/O and say why.
    let refused = |section: &str, needle: &str| {
        let s = out.section(section);
        assert_ne!(s.rc, 0, "{section} should fail\n{out}");
        assert!(
            s.output.contains(needle),
            "{section} does not say {needle:?}\n{s}"
        );
    };
    refused(
        "misaligned",
        "not aligned to the 512-byte logical block size",
    );
    refused("misaligned_len", "not aligned");
    refused("beyond_end", "past the end of the device");
    refused("ro_write", "read-only");
    assert_eq!(guest_hash(&out, "ro_read"), sha256(&ro_image), "{out}");
    assert_eq!(
        fs::read(dir.join("ro.img")).unwrap(),
        ro_image,
        "the read-only image changed"
    );

    // Concurrency: every queue used, every request completed once and verified.
    for (section, queues, depth) in [
        ("verify", 2, 256),
        ("verify_plain", 1, 16),
        ("verify_depth1", 1, 1),
        ("packed_verify", 2, 256),
    ] {
        let s = out.section(section);
        assert_eq!(s.rc, 0, "{section} failed\n{out}");
        let report: serde_json::Value =
            serde_json::from_str(&s.output).unwrap_or_else(|e| panic!("{section}: {e}\n{s}"));
        assert_eq!(report["ok"], true, "{s}");
        assert_eq!(report["depth"], depth, "{s}");
        let per_queue = report["queues"].as_array().expect("queues array");
        assert_eq!(per_queue.len(), queues, "{s}");
        for q in per_queue {
            assert_eq!(q["submitted"], VERIFY_IOS, "{s}");
            assert_eq!(q["completed"], VERIFY_IOS, "{s}");
            assert!(
                q["reads_verified"].as_u64().unwrap_or(0) > VERIFY_IOS / 10,
                "{s}"
            );
            assert!(q["failures"].as_array().is_some_and(Vec::is_empty), "{s}");
        }
    }
    let _ = fs::remove_dir_all(&dir);
}

/// A resize while uvio drives the disk: QEMU raises a configuration change and uvio re-reads
/// the capacity (the config generation moves).
#[test]
fn a_resized_disk_reports_its_new_capacity() {
    let dir = work_dir("blk-resize");
    let image = dir.join("grow.img");
    fs::write(&image, vec![0u8; 32 << 20]).unwrap();
    let mut vm = VmSpec::new()
        .qmp(true)
        .blockdev(format!(
            "driver=file,filename={},node-name=grow",
            image.display()
        ))
        .virtio_blk("05.0", "grow", "serial=UVIO-BLK-SER")
        .script(format!(
            "check bind uvio bind {DISK}\n( host_wait 900; killall -INT uvio ) </dev/console &\n\
             check watch uvio info {DISK} --watch 900\ntrue\n"
        ))
        .spawn();
    // Generous: the wait ends as soon as the text appears, and fails at once if QEMU exits.
    let minute = std::time::Duration::from_secs(180);
    vm.wait_for_console("watching for", minute);
    vm.qmp()
        .execute(
            "block_resize",
            serde_json::json!({"node-name": "grow", "size": 48u64 << 20}),
        )
        .unwrap_or_else(|e| panic!("QMP resize: {e}\n{}", vm.console()));
    vm.wait_for_console(&format!("to {} bytes", 48u64 << 20), minute);
    // Ctrl-C ends the watch (uvio catches it and resets the device on the way out).
    vm.send_line("stop");
    let out = vm.wait(std::time::Duration::from_secs(240));
    out.assert_success();
    let watch = &out.section("watch").output;
    // GET_ID at open: the serial QEMU was given.
    assert!(
        watch.contains(&format!(
            "capacity {} bytes, serial UVIO-BLK-SER",
            32u64 << 20
        )),
        "{out}"
    );
    assert!(
        watch.contains(&format!(
            "capacity changed from {} to {} bytes",
            32u64 << 20,
            48u64 << 20
        )),
        "{out}"
    );
    let _ = fs::remove_dir_all(&dir);
}
