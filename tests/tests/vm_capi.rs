//! Issue 10: libuvio's C API, driven by a C program (libuvio/tests/c/uvio_test.c) compiled
//! here with gcc -Werror against libuvio.a and run in the guest on QEMU's virtio-blk (packed
//! and split rings) and on a virtio-scsi LUN, all file-backed. The program checks every read
//! byte against the image and every bad input's errno and message itself, and exits
//! non-zero on any mismatch; this test then checks what it wrote in the host's image files.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use uvio_tests::data::{seeded_bytes, work_dir};
use uvio_tests::vm::{VmOutput, VmSpec};

const IMAGE_BYTES: usize = 8 << 20;
const BLK_PACKED: &str = "0000:00:05.0";
const BLK_SPLIT: &str = "0000:00:06.0";
const SCSI_HBA: &str = "0000:00:07.0";
const SCSI_LUN: &str = "0000:00:07.0/0:0:0";

// The ranges uvio_test.c writes (the same numbers as its defines).
const W1_OFFSET: usize = 1 << 20;
const W1_LEN: usize = 256 << 10;
const WV_OFFSET: usize = 2 << 20;
const WV_LEN: usize = 12800;
const DISCARD_OFFSET: usize = 3 << 20;
const DISCARD_LEN: usize = 64 << 10;
const ZERO_OFFSET: usize = 4 << 20;
const ZERO_LEN: usize = (128 << 10) + 4096;

/// Checks every run must pass, by the names uvio_test.c prints.
const REQUIRED_CHECKS: &[&str] = &[
    "null_device_handle",
    "garbage_device_handle",
    "null_queue_handle",
    "bad_device_string",
    "info_before_start",
    "start",
    "property_after_start",
    "start_twice",
    "capacity",
    "queue_out_of_range",
    "queue_handle_as_device",
    "read_two_queues",
    "read_whole_image",
    "read_last_bytes",
    "readv_piece0",
    "readv_piece1",
    "readv_piece2",
    "write",
    "writev",
    "flush",
    "discard",
    "write_zeroes",
    "readback_write",
    "readback_writev_bytes",
    "readback_zeroes_bytes",
    "misaligned_offset",
    "misaligned_length",
    "empty_read",
    "past_the_end",
    "straddles_the_end",
    "discard_past_the_end",
    "buffer_on_the_stack",
    "buffer_from_malloc",
    "buffer_past_region_end",
    "iovec_outside_dma",
    "iovcnt_zero",
    "unknown_flags",
    "poll_for_nothing",
    "poll_max_below_min",
    "poll_nonblocking_empty",
    "queue_full",
    "full_queue_drains",
    "full_queue_bytes",
    "double_free",
    "freed_buffer",
    "close",
    "double_close",
    "queue_after_close",
    "info_after_close",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({})\n--- stderr ---\n{}\n--- stdout ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Builds libuvio.a (release, into the guest build's target directory, whose driver build it
/// shares) and links uvio_test.c against it statically with gcc -Werror.
fn build_uvio_test(dir: &Path) -> PathBuf {
    let root = workspace_root();
    let target_dir = root.join("target").join("guest");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(&root)
        .args(["build", "--release", "-p", "libuvio"])
        .args(["--target", "x86_64-unknown-linux-gnu"])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    run(&mut build, "cargo build -p libuvio");
    let lib = target_dir.join("x86_64-unknown-linux-gnu/release/libuvio.a");
    let exe = dir.join("uvio_test");
    let mut gcc = Command::new("gcc");
    gcc.args([
        "-std=c11",
        "-O2",
        "-Wall",
        "-Wextra",
        "-Wpedantic",
        "-Werror",
        "-I",
    ])
    .arg(root.join("libuvio/include"))
    .arg(root.join("libuvio/tests/c/uvio_test.c"))
    .arg(&lib)
    .args([
        "-static",
        "-lpthread",
        "-ldl",
        "-lm",
        "-lrt",
        "-lutil",
        "-o",
    ])
    .arg(&exe);
    run(&mut gcc, "gcc uvio_test.c");
    exe
}

/// The `info` line uvio_test printed, as key -> value.
fn info(out: &VmOutput, section: &str) -> std::collections::BTreeMap<String, String> {
    let s = out.section(section);
    let line = s
        .output
        .lines()
        .find(|l| l.starts_with("info "))
        .unwrap_or_else(|| panic!("no info line in {section}\n{out}"));
    line.split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The image `seed` started as, with what uvio_test writes in it.
fn expected_image(seed: u64) -> Vec<u8> {
    let mut image = seeded_bytes(seed, IMAGE_BYTES);
    image[W1_OFFSET..W1_OFFSET + W1_LEN].copy_from_slice(&seeded_bytes(seed ^ 0x1111, W1_LEN));
    image[WV_OFFSET..WV_OFFSET + WV_LEN].copy_from_slice(&seeded_bytes(seed ^ 0x2222, WV_LEN));
    image[DISCARD_OFFSET..DISCARD_OFFSET + DISCARD_LEN].fill(0);
    image[ZERO_OFFSET..ZERO_OFFSET + ZERO_LEN].fill(0);
    image
}

#[test]
fn the_c_api_moves_exact_bytes_and_refuses_bad_input_on_blk_and_scsi() {
    let dir = work_dir("capi");
    let exe = build_uvio_test(&dir);
    // (section, device, ring, seed, image file)
    let runs = [
        (
            "capi_blk_packed",
            BLK_PACKED,
            "packed",
            0xc0de_0001u64,
            "blk_packed.img",
        ),
        (
            "capi_blk_split",
            BLK_SPLIT,
            "split",
            0xc0de_0002,
            "blk_split.img",
        ),
        ("capi_scsi", SCSI_LUN, "auto", 0xc0de_0003, "scsi.img"),
    ];
    for (_, _, _, seed, file) in runs {
        fs::write(dir.join(file), seeded_bytes(seed, IMAGE_BYTES)).unwrap();
    }
    let mut script = format!("check bind uvio bind {BLK_PACKED} {BLK_SPLIT} {SCSI_HBA}\n");
    for (section, device, ring, seed, _) in runs {
        script += &format!("check {section} /bin/uvio_test {device} {ring} {seed} {IMAGE_BYTES}\n");
    }
    script += "true\n";
    let file_node = |node: &str, file: &str| {
        format!(
            "driver=file,filename={},node-name={node},discard=unmap",
            dir.join(file).display()
        )
    };
    let out = VmSpec::new()
        .blockdev(file_node("packed", "blk_packed.img"))
        .virtio_blk("05.0", "packed", "num-queues=2,packed=on")
        .blockdev(file_node("split", "blk_split.img"))
        .virtio_blk("06.0", "split", "num-queues=2")
        .blockdev(file_node("scsi", "scsi.img"))
        .virtio_scsi("hba", "07.0", 2, "")
        .scsi_hd("hba", 0, 0, "scsi", "")
        .file(&exe, "/bin/uvio_test")
        .script(script)
        .run();
    out.assert_success();
    assert_eq!(out.section("bind").rc, 0, "{out}");

    for (section, _, ring, seed, file) in runs {
        let s = out.section(section);
        assert_eq!(s.rc, 0, "uvio_test failed on {section}\n{out}");
        assert!(
            s.output.contains(" checks passed, 0 failed"),
            "{section}: no summary\n{out}"
        );
        for check in REQUIRED_CHECKS {
            assert!(
                s.output
                    .lines()
                    .any(|l| l == format!("ok {check}") || l.starts_with(&format!("ok {check}:"))),
                "{section}: check {check} did not pass\n{out}"
            );
        }
        let info = info(&out, section);
        let field = |k: &str| info.get(k).map(String::as_str).unwrap_or("");
        assert_eq!(
            field("capacity"),
            IMAGE_BYTES.to_string(),
            "{section}\n{out}"
        );
        assert_eq!(field("logical_block_size"), "512", "{section}\n{out}");
        assert_eq!(field("request_alignment"), "512", "{section}\n{out}");
        assert_eq!(field("num_queues"), "2", "{section}\n{out}");
        assert_eq!(field("queue_depth"), "16", "{section}\n{out}");
        assert_eq!(field("read_only"), "0", "{section}\n{out}");
        let expected_ring = if ring == "packed" { "packed" } else { "split" };
        assert_eq!(field("ring"), expected_ring, "{section}\n{out}");
        for limit in [
            "max_transfer",
            "max_segments",
            "discard_max",
            "write_zeroes_max",
        ] {
            let value: u64 = field(limit).parse().unwrap_or(0);
            assert!(value > 0, "{section}: {limit} is {value}\n{out}");
        }
        if ring == "split" {
            assert!(
                s.output.contains("ok packed_ring_refused"),
                "{section}: packed ring on a split-only device\n{out}"
            );
        }

        // The writes, discard and write-zeroes landed in the host's image, and nothing else
        // changed.
        let after = fs::read(dir.join(file)).unwrap();
        let expected = expected_image(seed);
        assert_eq!(after.len(), expected.len(), "{section}: image size");
        let first_diff = after.iter().zip(&expected).position(|(a, b)| a != b);
        assert_eq!(
            first_diff, None,
            "{section}: the host image differs from the expected bytes at that offset\n{out}"
        );
    }
}
