//! Issue 10: libuvio's C API, driven by a C program (libuvio/tests/c/uvio_test.c) compiled
//! here with gcc -Werror against libuvio.a and run in the guest on QEMU's virtio-blk (packed
//! and split rings) and on a virtio-scsi LUN, all file-backed. The program checks every read
//! byte against the image and every bad input's errno and message itself, and exits
//! non-zero on any mismatch; this test then checks what it wrote in the host's image files.
//!
//! Then fio itself (3.33, built from Debian's source by fio/build.sh) with the `uvio` external
//! ioengine, on job files: fio's own verify, pattern reads and writes against the host image,
//! trim, a blkdebug EIO reaching fio as err=5, more job threads than queues, a SCSI LUN, two
//! LUNs of one host in one run (jobs on each, and one job on both) byte-exact against the host
//! images, iodepth_batch_* with verify, Debian's fio-examples job files with only their
//! `ioengine`, `filename` and `thread` lines changed (stopped by SIGINT: they are time_based
//! for 15 minutes), the engine's options, and fork mode refused.

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
/// A null device of 16 GiB for fio-examples' size=10G, and a file for basic-verify.fio.
const EXAMPLES_BLK: &str = "0000:00:08.0";
const VERIFY_BLK: &str = "0000:00:09.0";
/// How long each time_based example runs before SIGINT ends it.
const EXAMPLE_SECONDS: u32 = 10;
const VERIFY_IMAGE_BYTES: usize = 16 << 20;

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
    "second_start_refused",
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
        let lun_checks: &[&str] = if section == "capi_scsi" {
            &[
                "open_lun_no_such_lun",
                "open_lun_other_function",
                "open_lun_same",
                "open_lun_info",
                "open_lun_property",
                "open_lun_shared_queue",
                "open_lun_bytes",
                "open_lun_dev_outlives_it",
            ]
        } else {
            &["open_lun_of_blk"]
        };
        for check in lun_checks {
            assert!(
                s.output
                    .lines()
                    .any(|l| l == format!("ok {check}") || l.starts_with(&format!("ok {check}:"))),
                "{section}: check {check} did not pass\n{out}"
            );
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

/// Builds fio 3.33 and the uvio engine (fio/build.sh); returns (fio, uvio.so).
fn build_fio_engine() -> (PathBuf, PathBuf) {
    let root = workspace_root();
    run(
        Command::new("bash").arg(root.join("fio/build.sh")),
        "bash fio/build.sh",
    );
    let out = root.join("target/fio");
    (out.join("bin/fio"), out.join("uvio.so"))
}

/// The JSON a fio run printed into its section (after any log lines).
fn fio_json(out: &VmOutput, section: &str) -> serde_json::Value {
    let s = out.section(section);
    let start = s
        .output
        .find("{\n")
        .unwrap_or_else(|| panic!("no JSON in {section}\n{out}"));
    let end = s.output.rfind('}').map_or(s.output.len(), |e| e + 1);
    serde_json::from_str(&s.output[start..end])
        .unwrap_or_else(|e| panic!("{section}: fio JSON does not parse: {e}\n{out}"))
}

/// One job of a fio run: (error, read bytes, write bytes, trim bytes).
type FioJob = (i64, u64, u64, u64);

/// Every job of a fio run.
fn fio_jobs(json: &serde_json::Value) -> Vec<FioJob> {
    json["jobs"]
        .as_array()
        .expect("fio JSON has jobs")
        .iter()
        .map(|j| {
            let bytes = |d: &str| j[d]["io_bytes"].as_u64().unwrap_or(0);
            (
                j["error"].as_i64().unwrap_or(-1),
                bytes("read"),
                bytes("write"),
                bytes("trim"),
            )
        })
        .collect()
}

/// Debian's fio-examples job files run here, each with the device its jobs need and its
/// (rw, numjobs).
const EXAMPLES: &[(&str, &str, &str, usize)] = &[
    ("fio-rand-read", EXAMPLES_BLK, "randread", 1),
    ("fio-rand-write", EXAMPLES_BLK, "randwrite", 4),
    ("fio-rand-RW", EXAMPLES_BLK, "randrw", 4),
    ("fio-seq-read", EXAMPLES_BLK, "read", 1),
    ("basic-verify", VERIFY_BLK, "randwrite", 1),
];

/// The example job files as run: only the `ioengine` line (the uvio engine, with `thread`
/// after it) and the `filename` line (the device, colons escaped) changed.
fn example_jobs(engine: &Path) -> Vec<(String, String)> {
    let data = workspace_root().join("tests/data/fio-examples");
    EXAMPLES
        .iter()
        .map(|&(name, device, _, _)| {
            let original = fs::read_to_string(data.join(format!("{name}.fio")))
                .unwrap_or_else(|e| panic!("{name}.fio: {e}"));
            let (mut engines, mut filenames) = (0, 0);
            let text: String = original
                .lines()
                .map(|line| {
                    if line.starts_with("ioengine=") {
                        engines += 1;
                        format!("ioengine=external:{}\nthread\n", engine.display())
                    } else if line.starts_with("filename=") {
                        filenames += 1;
                        format!("filename={}\n", device.replace(':', "\\:"))
                    } else {
                        format!("{line}\n")
                    }
                })
                .collect();
            assert_eq!((engines, filenames), (1, 1), "{name}.fio");
            (name.to_string(), text)
        })
        .collect()
}

/// Each example's JSON parses, every job is there, did I/O of its kind and saw no error.
fn check_examples(out: &VmOutput, examples: &[(String, String)]) {
    for (&(name, _, rw, numjobs), (ran, text)) in EXAMPLES.iter().zip(examples) {
        assert_eq!(name, ran);
        let section = format!("ex_{name}");
        let json = fio_json(out, &section);
        let jobs = fio_jobs(&json);
        assert_eq!(
            jobs.len(),
            numjobs,
            "{name}: jobs in the JSON\n{text}\n{out}"
        );
        for (i, &(error, read, write, _)) in jobs.iter().enumerate() {
            assert_eq!(error, 0, "{name}: job {i} failed\n{out}");
            let (reads, writes) = match rw {
                "randread" | "read" => (true, false),
                "randwrite" => (false, true),
                _ => (true, true),
            };
            assert!(
                (!reads || read > 0) && (!writes || write > 0),
                "{name}: job {i} read {read} and wrote {write} bytes\n{out}"
            );
            let options = &json["jobs"][i]["job options"];
            assert!(
                options["ioengine"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("external:")),
                "{name}: {options}\n{out}"
            );
        }
        if name == "basic-verify" {
            // It ends by itself: the whole device written, then read back and verified.
            let whole = VERIFY_IMAGE_BYTES as u64;
            assert_eq!(jobs[0].1, whole, "{name}: verified bytes\n{out}");
            assert_eq!(jobs[0].2, whole, "{name}: written bytes\n{out}");
            assert_eq!(out.section(&section).rc, 0, "{name}\n{out}");
        } else {
            // Stopped by SIGINT well before its 900 s; fio's status after SIGINT is 128
            // (backend.c sig_int).
            assert_eq!(out.section(&section).rc, 128, "{name}\n{out}");
            let runtime_ms = json["jobs"][0]["job_runtime"].as_u64().unwrap_or(0);
            assert!(
                runtime_ms > 0 && runtime_ms < 60_000,
                "{name}: job_runtime {runtime_ms} ms\n{out}"
            );
        }
    }
}

#[test]
fn fio_runs_jobs_through_the_uvio_engine_on_blk_and_scsi() {
    let dir = work_dir("capi-fio");
    let (fio, engine) = build_fio_engine();
    const FIO_IMAGE: usize = 16 << 20;
    const PATTERN_AT: usize = 4 << 20;
    const PATTERN_LEN: usize = 2 << 20;
    const WRITE_AT: usize = 8 << 20;
    const WRITE_LEN: usize = 1 << 20;
    const TRIM_AT: usize = 12 << 20;
    const TRIM_LEN: usize = 256 << 10;
    const SHARED_AT: usize = 13 << 20;
    // Written with verify headers, then 512 bytes of one block overwritten behind fio's back.
    const CORRUPT_AT: usize = 6 << 20;
    const CORRUPT_LEN: usize = 1 << 20;
    const BAD_BLOCK: usize = CORRUPT_AT + 77 * 4096;
    // On both LUNs of the host: a pattern per LUN, fio's verify on LUN 1, and one job on both.
    const LUN_PATTERN_AT: usize = 4 << 20;
    const LUN_PATTERN_LEN: usize = 2 << 20;
    const LUN_VERIFY_AT: usize = 8 << 20;
    const LUN_VERIFY_LEN: usize = 2 << 20;
    const BOTH_AT: usize = 12 << 20;
    // The job's size, split between its two files.
    const BOTH_LEN: usize = 2 << 20;
    const VERIFY_IMAGE: usize = VERIFY_IMAGE_BYTES;
    let junk = seeded_bytes(0xbad, 512);
    let mut blk = seeded_bytes(0xf10_0001, FIO_IMAGE);
    for chunk in blk[PATTERN_AT..PATTERN_AT + PATTERN_LEN].chunks_mut(4) {
        chunk.copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    }
    fs::write(dir.join("blk.img"), &blk).unwrap();
    let scsi = seeded_bytes(0xf10_0002, FIO_IMAGE);
    let lun1 = seeded_bytes(0xf10_0003, FIO_IMAGE);
    fs::write(dir.join("scsi.img"), &scsi).unwrap();
    fs::write(dir.join("lun1.img"), &lun1).unwrap();
    // basic-verify.fio writes and verifies the whole device.
    fs::write(
        dir.join("verify.img"),
        seeded_bytes(0xf10_0004, VERIFY_IMAGE),
    )
    .unwrap();
    fs::write(dir.join("err.img"), vec![0u8; 4 << 20]).unwrap();
    fs::write(
        dir.join("rules.conf"),
        "[inject-error]\nevent = \"none\"\niotype = \"read\"\nerrno = \"5\"\n\
         sector = \"2048\"\nonce = \"off\"\n",
    )
    .unwrap();

    // Each run is a job file, as fio users write them: the DEVICE with fio's escaped colons.
    let blk_dev = r"0000\:00\:05.0";
    let scsi_dev = r"0000\:00\:07.0/0\:0\:0";
    let lun1_dev = r"0000\:00\:07.0/0\:0\:1";
    let job = |device: &str, body: &str| {
        format!(
            "[global]\nthread=1\nioengine=external:{}\nfilename={device}\n\n[job]\n{}\n",
            engine.display(),
            body.replace(' ', "\n")
        )
    };
    let jobs = [
        (
            "verify_write",
            job(
                blk_dev,
                &format!(
                    "rw=write bs=4k iodepth=8 offset={CORRUPT_AT} size={CORRUPT_LEN} \
                     verify=crc32c do_verify=0"
                ),
            ),
        ),
        (
            "verify_only",
            job(
                blk_dev,
                &format!(
                    "rw=write bs=4k iodepth=8 offset={CORRUPT_AT} size={CORRUPT_LEN} \
                     verify=crc32c verify_only=1"
                ),
            ),
        ),
        (
            "randwrite_verify",
            job(
                blk_dev,
                "rw=randwrite bs=4k iodepth=8 offset=0 size=4m verify=crc32c",
            ),
        ),
        (
            "read_pattern",
            job(
                blk_dev,
                &format!(
                    "rw=read bs=64k iodepth=4 offset={PATTERN_AT} size={PATTERN_LEN} \
                     verify=pattern verify_pattern=0xdeadbeef"
                ),
            ),
        ),
        // The control: the same check on bytes that are not the pattern must fail.
        (
            "read_pattern_mismatch",
            job(
                blk_dev,
                &format!(
                    "rw=read bs=64k iodepth=4 offset={} size=128k verify=pattern \
                     verify_pattern=0xdeadbeef",
                    PATTERN_AT + PATTERN_LEN
                ),
            ),
        ),
        (
            "write_pattern",
            job(
                blk_dev,
                &format!(
                    "rw=write bs=128k iodepth=4 offset={WRITE_AT} size={WRITE_LEN} \
                     buffer_pattern=0x0badcafe"
                ),
            ),
        ),
        (
            "trim",
            job(
                blk_dev,
                &format!("rw=trim bs=64k offset={TRIM_AT} size={TRIM_LEN}"),
            ),
        ),
        (
            "two_jobs",
            job(
                blk_dev,
                "rw=randread bs=4k iodepth=4 size=2m numjobs=2 hipri",
            ),
        ),
        // Three threads on two queues: two share one, each verifying its own slice.
        (
            "three_jobs",
            job(
                blk_dev,
                &format!(
                    "rw=randwrite bs=4k iodepth=8 offset={SHARED_AT} size=1m \
                     offset_increment=1m numjobs=3 verify=crc32c"
                ),
            ),
        ),
        (
            "packed_refused",
            job(scsi_dev, "rw=read size=1m uvio_ring=packed"),
        ),
        ("bad_ring", job(blk_dev, "rw=read size=1m uvio_ring=ring")),
        // Two LUNs of one host in one run, sharing its two queues: a pattern written on each,
        // and a third job verifying on LUN 1 (it shares a queue with the LUN 0 job).
        (
            "two_luns",
            format!(
                "[global]\nthread=1\nioengine=external:{}\nbs=64k\niodepth=4\n\n\
                 [lun0]\nfilename={scsi_dev}\nrw=write\noffset={LUN_PATTERN_AT}\n\
                 size={LUN_PATTERN_LEN}\nbuffer_pattern=0x1111aaaa\n\n\
                 [lun1]\nfilename={lun1_dev}\nrw=write\noffset={LUN_PATTERN_AT}\n\
                 size={LUN_PATTERN_LEN}\nbuffer_pattern=0x2222bbbb\n\n\
                 [lun1_verify]\nfilename={lun1_dev}\nrw=randwrite\nbs=4k\niodepth=8\n\
                 offset={LUN_VERIFY_AT}\nsize={LUN_VERIFY_LEN}\nverify=crc32c\n",
                engine.display(),
            ),
        ),
        // One job on both LUNs (fio's `:`-separated filename list): each file gets half the
        // size at the offset, written and verified.
        (
            "luns_in_one_job",
            job(
                &format!("{scsi_dev}:{lun1_dev}"),
                &format!(
                    "rw=randwrite bs=4k iodepth=8 offset={BOTH_AT} size={BOTH_LEN} \
                     verify=crc32c"
                ),
            ),
        ),
        // Two functions in one job: refused (one job's buffers are one DMA region).
        (
            "two_functions",
            job(&format!("{blk_dev}:{scsi_dev}"), "rw=read size=1m"),
        ),
        // iodepth_batch_*: 8 requests go to the device together, fio reaps 4 to 16 at a time;
        // and the =0 forms (fio's polling mode: reap at least one, as often as it can).
        (
            "batch",
            job(
                blk_dev,
                "rw=randwrite bs=4k iodepth=16 offset=0 size=2m verify=crc32c \
                 iodepth_batch_submit=8 iodepth_batch_complete_min=4 \
                 iodepth_batch_complete_max=16",
            ),
        ),
        (
            "batch_zero",
            job(
                blk_dev,
                "rw=randwrite bs=4k iodepth=16 offset=2m size=2m verify=crc32c \
                 iodepth_batch_submit=0 iodepth_batch_complete_min=0 \
                 iodepth_batch_complete_max=0",
            ),
        ),
        // Reads of sector 2048 fail with EIO (QEMU's blkdebug): fio reports err=5.
        (
            "device_error",
            job(
                r"0000\:00\:06.0",
                "rw=read bs=4k iodepth=4 offset=1m size=64k",
            ),
        ),
        (
            "scsi_verify",
            job(
                scsi_dev,
                "rw=randwrite bs=8k iodepth=8 size=2m verify=crc32c fsync=16",
            ),
        ),
        (
            "fork",
            job(blk_dev, "rw=read size=1m").replace("thread=1\n", ""),
        ),
    ];
    let fio_path = fio.display();
    let mut script = format!(
        "check bind uvio bind {BLK_PACKED} {BLK_SPLIT} {SCSI_HBA} {EXAMPLES_BLK} {VERIFY_BLK}\n"
    );
    for (section, _) in &jobs {
        // One run says where each job's time per I/O went.
        let stages = if *section == "two_jobs" {
            "UVIO_FIO_STAGES=1 "
        } else {
            ""
        };
        script += &format!(
            "check {section} sh -c '{stages}{fio_path} --output-format=json --output=/tmp/{section}.json \
             /jobs/{section}.fio; rc=$?; cat /tmp/{section}.json; exit $rc'\n"
        );
        if *section == "verify_write" {
            script += &format!(
                "check corrupt uvio write {BLK_PACKED} --offset {} --input /data/junk.bin\n",
                BAD_BLOCK + 1024
            );
        }
    }
    let examples = example_jobs(&engine);
    for (name, _) in &examples {
        // They run for 15 minutes (time_based, runtime=900): SIGINT ends them early, and fio
        // still finishes its jobs cleanly and writes its whole report.
        script += &format!(
            "check ex_{name} sh -c 'timeout -s INT {EXAMPLE_SECONDS} {fio_path} \
             --output-format=json --output=/tmp/ex_{name}.json /jobs/ex_{name}.fio; rc=$?; \
             cat /tmp/ex_{name}.json; exit $rc'\n"
        );
    }
    script += "true\n";

    let spec = VmSpec::new()
        .timeout(std::time::Duration::from_secs(600))
        .blockdev(format!(
            "driver=file,filename={},node-name=blk,discard=unmap",
            dir.join("blk.img").display()
        ))
        .virtio_blk("05.0", "blk", "num-queues=2,packed=on")
        .blockdev(format!(
            "driver=file,filename={},node-name=scsi,discard=unmap",
            dir.join("scsi.img").display()
        ))
        .blockdev(format!(
            "driver=file,filename={},node-name=errfile",
            dir.join("err.img").display()
        ))
        .blockdev(format!(
            "driver=blkdebug,config={},image=errfile,node-name=errdbg",
            dir.join("rules.conf").display()
        ))
        // why request-merging=off: blkdebug fails a merged request whole, neighbours too.
        .virtio_blk(
            "06.0",
            "errdbg",
            "werror=report,rerror=report,request-merging=off",
        )
        .virtio_scsi("hba", "07.0", 2, "")
        .scsi_hd("hba", 0, 0, "scsi", "")
        .scsi_hd_file("hba", 0, 1, dir.join("lun1.img"), "")
        // fio-examples: size=10G on a null device (reads are zeroes, writes vanish), and
        // basic-verify.fio on a file it writes whole and reads back.
        .virtio_blk_null("08.0", 16 << 30, "num-queues=2")
        .virtio_blk_file("09.0", dir.join("verify.img"), "")
        .host_binary(fio.display().to_string())
        .host_binary(engine.display().to_string());
    let spec = examples.iter().fold(spec, |spec, (name, text)| {
        spec.file_bytes(&format!("/jobs/ex_{name}.fio"), text.as_bytes(), 0o644)
    });
    let out = jobs
        .iter()
        .fold(spec, |spec, (section, text)| {
            spec.file_bytes(&format!("/jobs/{section}.fio"), text.as_bytes(), 0o644)
        })
        .file_bytes("/data/junk.bin", junk.clone(), 0o644)
        .script(script)
        .run();
    out.assert_success();
    assert_eq!(out.section("bind").rc, 0, "{out}");

    let mib = 1u64 << 20;
    // (section, jobs' (error, read, write, trim) bytes)
    let succeeded: [(&str, &[FioJob]); 10] = [
        // Written, then read back by fio's own verify.
        ("randwrite_verify", &[(0, 4 * mib, 4 * mib, 0)]),
        ("read_pattern", &[(0, PATTERN_LEN as u64, 0, 0)]),
        ("write_pattern", &[(0, 0, WRITE_LEN as u64, 0)]),
        ("trim", &[(0, 0, 0, TRIM_LEN as u64)]),
        // Two job threads, one hardware queue each; hipri accepted.
        ("two_jobs", &[(0, 2 * mib, 0, 0), (0, 2 * mib, 0, 0)]),
        ("scsi_verify", &[(0, 2 * mib, 2 * mib, 0)]),
        (
            "two_luns",
            &[
                (0, 0, 2 * mib, 0),
                (0, 0, 2 * mib, 0),
                (0, 2 * mib, 2 * mib, 0),
            ],
        ),
        ("luns_in_one_job", &[(0, 2 * mib, 2 * mib, 0)]),
        ("batch", &[(0, 2 * mib, 2 * mib, 0)]),
        ("batch_zero", &[(0, 2 * mib, 2 * mib, 0)]),
    ];
    for (section, expected) in succeeded {
        assert_eq!(out.section(section).rc, 0, "{section} failed\n{out}");
        assert_eq!(
            fio_jobs(&fio_json(&out, section)),
            expected,
            "{section}\n{out}"
        );
    }
    // fio's pattern verify reads what is there: on other bytes it fails, as fio reports it.
    let mismatch = out.section("read_pattern_mismatch");
    assert_ne!(mismatch.rc, 0, "{out}");
    assert!(
        mismatch.output.contains("bad pattern block offset"),
        "{out}"
    );
    let jobs = fio_jobs(&fio_json(&out, "read_pattern_mismatch"));
    assert_eq!(jobs[0].0, i64::from(libc::EILSEQ), "{out}");
    // Three threads on two queues: every completion reached its own job.
    assert_eq!(out.section("three_jobs").rc, 0, "{out}");
    assert_eq!(
        fio_jobs(&fio_json(&out, "three_jobs")),
        [(0, mib, mib, 0); 3],
        "{out}"
    );
    for (section, says) in [
        ("packed_refused", "does not offer the packed ring"),
        ("bad_ring", "uvio_ring=ring: use auto, split or packed"),
        (
            "two_functions",
            "are on different PCI functions: the files of one job are disks of one function",
        ),
    ] {
        let s = out.section(section);
        assert!(s.rc != 0 && s.output.contains(says), "{section}\n{out}");
    }
    // fio's crc32c verify finds the block changed behind its back, and only that one.
    assert_eq!(out.section("verify_write").rc, 0, "{out}");
    assert_eq!(out.section("corrupt").rc, 0, "{out}");
    let verify = out.section("verify_only");
    assert_ne!(verify.rc, 0, "{out}");
    assert_eq!(
        fio_jobs(&fio_json(&out, "verify_only"))[0].0,
        i64::from(libc::EILSEQ),
        "{out}"
    );
    let failures: Vec<&str> = verify
        .output
        .lines()
        .filter(|l| l.contains("verify failed at file"))
        .collect();
    assert!(
        !failures.is_empty()
            && failures
                .iter()
                .all(|l| l.contains(&format!("offset {BAD_BLOCK}, length 4096"))),
        "verify_only should fail at offset {BAD_BLOCK} only\n{out}"
    );
    // A device error reaches fio as err=5 (EIO), with the request named.
    let error = out.section("device_error");
    assert_ne!(error.rc, 0, "{out}");
    assert_eq!(fio_jobs(&fio_json(&out, "device_error"))[0].0, 5, "{out}");
    assert!(
        error
            .output
            .contains("read of 4096 bytes at offset 1048576: the device reported an I/O error"),
        "{out}"
    );
    // Fork mode is refused with what to do.
    let fork = out.section("fork");
    assert_ne!(fork.rc, 0, "{out}");
    assert!(
        fork.output
            .contains("uvio jobs run as threads: add --thread"),
        "{out}"
    );

    // UVIO_FIO_STAGES=1: each job's line, counting its I/Os (2 MiB of 4 KiB reads).
    // (fio's progress line may precede it on the same line: it ends in no newline.)
    let stage_lines: Vec<&str> = out
        .section("two_jobs")
        .output
        .lines()
        .filter(|l| l.contains("uvio stages: job job: 512 I/Os, ns per I/O: total "))
        .collect();
    assert_eq!(stage_lines.len(), 2, "two_jobs: stage lines\n{out}");
    // iodepth_batch_submit=8: the device got fio's requests in the batches fio committed:
    // mostly 8 (fewer when the queue filled first), never more.
    let batch = fio_json(&out, "batch");
    let submit = &batch["jobs"][0]["iodepth_submit"];
    let share = |bucket: &str| submit[bucket].as_f64().unwrap_or(-1.0);
    assert!(
        share("8") > 50.0 && ["16", "32", "64", ">=64"].iter().all(|b| share(b) == 0.0),
        "batch: submissions {submit}\n{out}"
    );
    check_examples(&out, &examples);

    // Both LUNs, byte-exact: each its own pattern; fio's verify on LUN 1 and on both wrote
    // there; nothing else changed.
    let lun0_after = fs::read(dir.join("scsi.img")).unwrap();
    let lun1_after = fs::read(dir.join("lun1.img")).unwrap();
    for (name, after, before, pattern) in [
        ("LUN 0", &lun0_after, &scsi, [0x11, 0x11, 0xaa, 0xaa]),
        ("LUN 1", &lun1_after, &lun1, [0x22, 0x22, 0xbb, 0xbb]),
    ] {
        let expected = pattern.repeat(LUN_PATTERN_LEN / 4);
        assert!(
            after[LUN_PATTERN_AT..LUN_PATTERN_AT + LUN_PATTERN_LEN] == expected[..],
            "{name}: its pattern is not at {LUN_PATTERN_AT}\n{out}"
        );
        let half = BOTH_LEN / 2;
        assert!(
            after[BOTH_AT..BOTH_AT + half] != before[BOTH_AT..BOTH_AT + half],
            "{name}: the job on both LUNs did not write it\n{out}"
        );
        for range in [
            2 << 20..LUN_PATTERN_AT,
            LUN_PATTERN_AT + LUN_PATTERN_LEN..LUN_VERIFY_AT,
            LUN_VERIFY_AT + LUN_VERIFY_LEN..BOTH_AT,
            BOTH_AT + half..FIO_IMAGE,
        ] {
            assert!(
                after[range.clone()] == before[range.clone()],
                "{name}: bytes in {range:?} changed\n{out}"
            );
        }
    }
    assert!(
        lun1_after[LUN_VERIFY_AT..LUN_VERIFY_AT + LUN_VERIFY_LEN]
            != lun1[LUN_VERIFY_AT..LUN_VERIFY_AT + LUN_VERIFY_LEN],
        "lun1_verify did not write LUN 1\n{out}"
    );
    assert!(
        lun0_after[LUN_VERIFY_AT..LUN_VERIFY_AT + LUN_VERIFY_LEN]
            == scsi[LUN_VERIFY_AT..LUN_VERIFY_AT + LUN_VERIFY_LEN],
        "lun1_verify wrote LUN 0\n{out}"
    );

    // In the host's image: the written pattern, the trimmed range zeroed, and the ranges
    // only read unchanged.
    let after = fs::read(dir.join("blk.img")).unwrap();
    assert!(
        after[BAD_BLOCK + 1024..BAD_BLOCK + 1536] == junk[..],
        "corrupt\n{out}"
    );
    let pattern: Vec<u8> = [0x0b, 0xad, 0xca, 0xfe].repeat(WRITE_LEN / 4);
    assert!(
        after[WRITE_AT..WRITE_AT + WRITE_LEN] == pattern[..],
        "write_pattern\n{out}"
    );
    assert!(
        after[TRIM_AT..TRIM_AT + TRIM_LEN].iter().all(|&b| b == 0),
        "trim\n{out}"
    );
    for range in [
        PATTERN_AT..PATTERN_AT + PATTERN_LEN,
        CORRUPT_AT + CORRUPT_LEN..WRITE_AT,
        WRITE_AT + WRITE_LEN..TRIM_AT,
        TRIM_AT + TRIM_LEN..SHARED_AT,
    ] {
        assert!(
            after[range.clone()] == blk[range.clone()],
            "bytes in {range:?} changed\n{out}"
        );
    }
}
