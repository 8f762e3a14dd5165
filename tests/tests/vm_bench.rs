//! Issue 5: `uvio bench` in a guest. fio-compatible JSON with self-consistent figures, the
//! normal layout, a job file with `[global]` and two jobs, queue sharing said out loud,
//! verification that catches a block corrupted behind its back and says where, and an I/O
//! error (injected by QEMU's blkdebug) that fails the run.
//!
//! Issue 11: a job file written for fio on the kernel (libaio, buffered, inline comments,
//! `$ncpus` and fio's arithmetic) runs; `stonewall`, `new_group`, `startdelay` and `loops`
//! order and repeat the jobs (the per-job `job_start` times in the JSON show it); and
//! `slat_percentiles`/`clat_percentiles`/`lat_percentiles` give the percentile blocks fio
//! gives with the same options on the kernel's twin (a null virtio-blk device of the same
//! size, driven by the guest kernel). Pacing: `rate_iops=2000` holds within 2% over 10 s,
//! linear and Poisson; at 500 a second uvio and fio on the twin both hold it; a write rate
//! on a mix leaves the reads free; `thinktime` adds its pause to every I/O's cost.

use serde_json::Value;
use uvio_tests::vm::{VmOutput, VmSpec};

/// null-co, two queues: pure driver cost.
const NULL: &str = "0000:00:05.0";
/// A raw image: data survives between runs, for verify.
const DISK: &str = "0000:00:06.0";
const BS: u64 = 4096;
/// Reads of sector 2048 (1 MiB) fail with EIO (blkdebug).
const ERR_DISK: &str = "0000:00:07.0";
const BLKDEBUG_RULES: &str = "[inject-error]\nevent = \"none\"\niotype = \"read\"\nerrno = \"5\"\nsector = \"2048\"\nonce = \"off\"\n";
/// The block the test corrupts, and where in it.
const BAD_BLOCK: u64 = 777;
const BAD_AT: u64 = BAD_BLOCK * BS + 1024;

const JOB_FILE: &str = "\
; two jobs sharing [global]
[global]
filename=0000:00:05.0
bs=4k
size=16m
io_size=8m
iodepth=4

[seqread]
rw=read

[randwriter]
rw=randwrite
bs=8k
iodepth=2
";

/// Written for fio on the kernel: uvio runs it with notes about what it replaced.
const FOREIGN_JOB_FILE: &str = "\
[global]
ioengine=libaio\t; as written for the kernel
direct=0
bs=4k
iodepth=$ncpus*2
[foreign]
filename=0000:00:05.0   # uvio's null device
rw=randread
size=(2*4m)
";

/// Jobs in order: `first` and `delayed` (1 s after the start) together; `second` after
/// both (stonewall) with `alongside` in a reporting group of its own; then `looped`, three
/// passes over 4 MiB.
const ORDER_JOB_FILE: &str = "\
[global]
filename=0000:00:05.0
rw=randread
bs=4k
iodepth=2
time_based
runtime=1
[first]
[delayed]
startdelay=1
[second]
stonewall
[alongside]
new_group
[looped]
wait_for_previous
time_based=0
runtime=0
size=4m
loops=3
";

/// The kernel's twin of the null device (its own virtio_blk disk), for fio.
const TWIN: &str = "0000:00:08.0";

/// 2000 reads a second for 10 s.
const RATE_OPTIONS: &str =
    "--rw=randread --bs=4k --iodepth=4 --rate_iops=2000 --runtime=10 --time_based";

/// 500 reads a second for 6 s, the same for uvio and for fio on the kernel's twin (which
/// does not hold 2000 a second in a TCG guest: it got about 1730).
const SLOW_RATE_OPTIONS: &str =
    "--rw=randread --bs=4k --iodepth=4 --rate_iops=500 --runtime=6 --time_based";

/// The percentile switches, the same for uvio and fio.
const PERCENTILE_OPTIONS: &str =
    "--rw=randread --bs=4k --iodepth=4 --size=16m --slat_percentiles=1 --clat_percentiles=0 \
     --lat_percentiles=1 --percentile_list=50:99";

/// One of fio's own example job files (tests/data/fio-examples) with only `filename=`
/// changed.
fn example_on(name: &str, device: &str) -> String {
    let path = format!("{}/data/fio-examples/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .map(|l| {
            if l.split('=').next().unwrap_or_default().trim() == "filename" {
                format!("filename={device}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

fn json_of(out: &VmOutput, section: &str) -> Value {
    let s = out.section(section);
    let start = s
        .output
        .find('{')
        .unwrap_or_else(|| panic!("no JSON in {section}\n{out}"));
    let end = s.output.rfind('}').map_or(s.output.len(), |e| e + 1);
    serde_json::from_str(&s.output[start..end])
        .unwrap_or_else(|e| panic!("{section}: bad JSON: {e}\n{s}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// The keys the issue names, on every job and direction.
fn check_fio_keys(doc: &Value) {
    assert!(doc["uvio version"].is_string(), "{doc}");
    assert!(doc["fio version"].is_string(), "{doc}");
    let jobs = doc["jobs"].as_array().expect("jobs[]");
    assert!(!jobs.is_empty());
    for job in jobs {
        assert!(job["jobname"].is_string(), "{job}");
        for k in ["rw", "bs", "iodepth", "numjobs"] {
            assert!(
                job["job options"][k].is_string(),
                "job options lacks {k}: {job}"
            );
        }
        for d in ["read", "write", "trim"] {
            let o = &job[d];
            for k in ["io_bytes", "bw", "bw_bytes", "runtime", "total_ios"] {
                assert!(o[k].is_u64(), "{d}.{k} missing: {o}");
            }
            assert!(o["iops"].is_number(), "{d}.iops: {o}");
            for lat in ["clat_ns", "lat_ns"] {
                for k in ["min", "max", "N"] {
                    assert!(o[lat][k].is_u64(), "{d}.{lat}.{k}: {o}");
                }
                for k in ["mean", "stddev"] {
                    assert!(o[lat][k].is_number(), "{d}.{lat}.{k}: {o}");
                }
            }
            if u(&o["total_ios"]) > 0 {
                assert!(o["clat_ns"]["percentile"]["99.000000"].is_u64(), "{o}");
            }
        }
    }
}

#[test]
fn bench_reports_like_fio_and_verify_finds_a_corrupted_block() {
    let junk: Vec<u8> = (0..512u32).map(|i| (i * 7 + 3) as u8).collect();
    let randread = format!(
        "uvio bench --output-format=json+ --name=rr --filename={NULL} --rw=randread --bs=4k \
         --iodepth=8 --size=64m --io_size=32m"
    );
    let script = format!(
        r#"
check bind uvio bind {NULL} {DISK} {ERR_DISK}
check json {randread}
check normal uvio bench --name=tb --filename={NULL} --rw=randread --bs=4k --iodepth=4 --runtime=2 --time_based --ramp_time=500ms
check deep uvio bench --output-format=json --name=d --filename={NULL} --rw=randread --bs=4k --iodepth=128 --size=1g --io_size=256m
check jobfile uvio bench --output-format=json /data/two.fio
check shared uvio bench --name=many --filename={NULL} --rw=randread --bs=4k --iodepth=2 --numjobs=3 --io_size=4m --group_reporting
check write_verify uvio bench --output-format=json --name=wv --filename={DISK} --rw=randwrite --bs=4k --size=8m --iodepth=16 --verify=crc32c
check verify_clean uvio bench --output-format=json --name=vc --filename={DISK} --rw=read --bs=4k --size=8m --iodepth=8 --verify=crc32c
check corrupt uvio write {DISK} --offset {BAD_AT} --input /data/junk.bin
check verify_bad uvio bench --output-format=json --name=vb --filename={DISK} --rw=read --bs=4k --size=8m --iodepth=8 --verify=crc32c
check unsupported uvio bench --name=x --filename={NULL} --zonemode=zbd
check interrupted sh -c 'uvio bench --output-format=normal,json --name=int --filename={NULL} --rw=randread --bs=4k --iodepth=4 --runtime=600 --time_based > /tmp/int.out 2>&1 & p=$!; until grep -q Starting /tmp/int.out; do sleep 1; done; sleep 1; kill -INT $p; wait $p; rc=$?; cat /tmp/int.out; exit $rc'
check io_error uvio bench --output-format=json --name=e --filename={ERR_DISK} --rw=read --bs=4k --size=4m --iodepth=4
check ncpus nproc
check foreign uvio bench --output-format=json /data/foreign.fio
check order uvio bench --output-format=json /data/order.fio
check rate_uvio uvio bench --output-format=json --name=r --filename={NULL} {RATE_OPTIONS}
check poisson uvio bench --output-format=json --name=p --filename={NULL} {RATE_OPTIONS} --rate_process=poisson
check slow_uvio uvio bench --output-format=json --name=s --filename={NULL} {SLOW_RATE_OPTIONS}
check slow_fio sh -c 'fio --output-format=json --name=s --filename=/dev/$(basename /sys/bus/pci/devices/{TWIN}/virtio*/block/*) --ioengine=libaio --direct=1 {SLOW_RATE_OPTIONS}'
check mixed_rate uvio bench --output-format=json --name=m --filename={NULL} --rw=randrw --bs=4k --iodepth=4 --rate=,1m --runtime=4 --time_based
check think uvio bench --output-format=json --name=t --filename={NULL} --rw=randread --bs=4k --iodepth=1 --thinktime=1ms --runtime=3 --time_based
check zipf uvio bench --output-format=json --name=z --filename={NULL} --rw=randread --bs=4k --iodepth=4 --size=64m --io_size=16m --random_distribution=zipf:1.2
check zoned uvio bench --output-format=json --name=zn --filename={NULL} --rw=randread --bs=4k --iodepth=4 --size=64m --io_size=16m --random_distribution=zoned:50/5:30/15:20/
check loops_verify uvio bench --output-format=json --name=lv --filename={DISK} --rw=randwrite --bs=4k --size=4m --iodepth=8 --verify=crc32c --loops=2
check zipf_verify uvio bench --output-format=json --name=zv --filename={DISK} --rw=randwrite --bs=4k --size=4m --io_size=2m --iodepth=8 --verify=crc32c --random_distribution=zipf:1.2
check surface uvio bench --output-format=json /data/surface-scan.fio
check corrupt_again uvio write {DISK} --offset {BAD_AT} --input /data/junk.bin
check surface_bad uvio bench --output-format=json --section=verify-phase /data/surface-scan.fio
check backwards uvio bench --output-format=json /data/backwards-read.fio
check pct_uvio uvio bench --output-format=normal,json --name=p --filename={NULL} {PERCENTILE_OPTIONS}
check pct_fio sh -c 'fio --output-format=normal,json --name=p --filename=/dev/$(basename /sys/bus/pci/devices/{TWIN}/virtio*/block/*) --ioengine=libaio --direct=1 {PERCENTILE_OPTIONS}'
true
"#
    );
    let dir = std::env::temp_dir().join(format!("uvio-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let image = dir.join("disk.img");
    std::fs::write(&image, vec![0u8; 16 << 20]).expect("image");
    let err_image = dir.join("err.img");
    std::fs::write(&err_image, vec![0u8; 8 << 20]).expect("image");
    let rules = dir.join("rules.conf");
    std::fs::write(&rules, BLKDEBUG_RULES).expect("blkdebug rules");
    let out = VmSpec::new()
        .virtio_blk_null("05.0", 1 << 30, "num-queues=2")
        .virtio_blk_file("06.0", &image, "num-queues=1")
        .blockdev(format!(
            "driver=file,filename={},node-name=errfile",
            err_image.display()
        ))
        .blockdev(format!(
            "driver=blkdebug,config={},image=errfile,node-name=errdbg",
            rules.display()
        ))
        // why request-merging=off: QEMU merges adjacent queued reads, and blkdebug then fails
        // the whole merged request, so a neighbour of the bad sector would fail first.
        .virtio_blk(
            "07.0",
            "errdbg",
            "werror=report,rerror=report,request-merging=off",
        )
        .file_bytes("/data/junk.bin", junk, 0o644)
        .file_bytes("/data/two.fio", JOB_FILE, 0o644)
        .file_bytes("/data/foreign.fio", FOREIGN_JOB_FILE, 0o644)
        .file_bytes("/data/order.fio", ORDER_JOB_FILE, 0o644)
        .file_bytes(
            "/data/surface-scan.fio",
            example_on("surface-scan.fio", DISK),
            0o644,
        )
        .file_bytes(
            "/data/backwards-read.fio",
            example_on("backwards-read.fio", NULL),
            0o644,
        )
        // The kernel's twin of the null device, for fio.
        .virtio_blk_null(&TWIN[8..], 1 << 30, "num-queues=2")
        .reference_tools()
        .script(script)
        .run();
    let _ = std::fs::remove_dir_all(&dir);
    out.assert_success();

    // JSON: the keys, and figures that agree with each other.
    let s = out.section("json");
    assert_eq!(s.rc, 0, "{s}");
    let doc = json_of(&out, "json");
    check_fio_keys(&doc);
    let read = &doc["jobs"][0]["read"];
    let ios = u(&read["total_ios"]);
    assert_eq!(ios, (32 << 20) / BS, "io_size / bs I/Os: {read}");
    assert_eq!(u(&read["io_bytes"]), ios * BS, "{read}");
    assert_eq!(u(&read["io_kbytes"]), ios * BS / 1024, "{read}");
    let iops = read["iops"].as_f64().expect("iops");
    let runtime_s = u(&read["runtime"]) as f64 / 1000.0;
    let est = iops * runtime_s;
    assert!(
        (est - ios as f64).abs() <= ios as f64 * 0.01 + 1.0,
        "iops x runtime = {est}, total_ios = {ios}"
    );
    assert_eq!(
        u(&read["bw_bytes"]),
        ios * BS * 1000 / u(&read["runtime"]),
        "{read}"
    );
    assert_eq!(u(&read["clat_ns"]["N"]), ios, "{read}");
    assert!(
        read["clat_ns"]["bins"].is_object(),
        "json+ has bins: {read}"
    );
    assert_eq!(u(&doc["jobs"][0]["write"]["total_ios"]), 0);
    assert_eq!(doc["jobs"][0]["job options"]["iodepth"], "8");

    // Normal output: fio's layout.
    let n = out.section("normal");
    assert_eq!(n.rc, 0, "{n}");
    for needle in [
        "tb: (g=0): rw=randread, bs=(R) 4096B-4096B, (W) 4096B-4096B, (T) 4096B-4096B, ioengine=uvio, iodepth=4",
        "Starting 1 thread",
        "tb: (groupid=0, jobs=1): err= 0: pid=",
        "  read: IOPS=",
        "    clat percentiles (",
        "     | 99.00th=[",
        "   iops        : min=",
        "  IO depths    : 1=",
        "     issued rwts: total=",
        "Run status group 0 (all jobs):",
        "   READ: bw=",
    ] {
        assert!(n.output.contains(needle), "missing {needle:?}\n{n}");
    }
    // fio scales the bandwidth line's unit to its figures: KiB/s, or MiB/s once the
    // job is fast enough (a 2 s run of 4 KiB reads at iodepth 4 goes either way here).
    assert!(
        ["   bw (  KiB/s): min=", "   bw (  MiB/s): min="]
            .iter()
            .any(|needle| n.output.contains(needle)),
        "no bandwidth line\n{n}"
    );
    assert!(!n.output.contains("Disk stats"), "{n}");

    // The uvio line: what the device saw, and what waited.
    assert!(
        n.output.contains("in flight=4 (+4 prepared ahead)"),
        "no layout on the uvio line\n{n}"
    );
    check_deep_iodepth(&out);

    // The job file: two jobs, each with its own options over [global].
    let doc = json_of(&out, "jobfile");
    check_fio_keys(&doc);
    let jobs = doc["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 2, "{doc}");
    assert_eq!(jobs[0]["jobname"], "seqread");
    assert_eq!(u(&jobs[0]["read"]["total_ios"]), (8 << 20) / 4096);
    assert_eq!(jobs[1]["jobname"], "randwriter");
    assert_eq!(u(&jobs[1]["write"]["total_ios"]), (8 << 20) / 8192);
    assert_eq!(u(&jobs[1]["write"]["io_bytes"]), 8 << 20);
    assert_eq!(doc["global options"]["iodepth"], "4");

    // More threads than queues: shared, and said so; group_reporting merges the clones.
    let sh = out.section("shared");
    assert_eq!(sh.rc, 0, "{sh}");
    assert!(sh.output.contains("queues are shared"), "{sh}");
    assert!(sh.output.contains("many: (groupid=0, jobs=3)"), "{sh}");

    // Verify: clean after the write, then the corrupted block is found, with its offset.
    let wv = json_of(&out, "write_verify");
    assert_eq!(out.section("write_verify").rc, 0, "{out}");
    let v = &wv["jobs"][0]["uvio"]["verify"];
    assert_eq!(u(&v["blocks_verified"]), (8 << 20) / BS, "{wv}");
    assert_eq!(u(&wv["jobs"][0]["write"]["total_ios"]), (8 << 20) / BS);
    assert_eq!(u(&wv["jobs"][0]["read"]["total_ios"]), (8 << 20) / BS);
    assert_eq!(out.section("verify_clean").rc, 0, "{out}");
    assert_eq!(out.section("corrupt").rc, 0, "{out}");
    let bad = out.section("verify_bad");
    assert_ne!(bad.rc, 0, "a corrupted block must fail the run\n{bad}");
    let doc = json_of(&out, "verify_bad");
    let v = &doc["jobs"][0]["uvio"]["verify"];
    assert_eq!(u(&v["bad_blocks"]), 1, "{doc}");
    assert_eq!(u(&v["first_bad_block"]["offset"]), BAD_BLOCK * BS, "{doc}");
    assert_eq!(v["first_bad_block"]["what"], "crc32c", "{doc}");
    assert_ne!(
        v["first_bad_block"]["expected"],
        v["first_bad_block"]["found"]
    );
    assert_eq!(doc["jobs"][0]["error"], 84, "EILSEQ as fio: {doc}");
    assert!(
        bad.output
            .contains(&format!("bad crc32c at offset {}", BAD_BLOCK * BS)),
        "stderr names the block\n{bad}"
    );

    // Ctrl-C: the jobs stop, the report covers the run so far, the exit status says so.
    let int = out.section("interrupted");
    assert_eq!(int.rc, 1, "{int}");
    assert!(int.output.contains("terminated on signal 2"), "{int}");
    assert!(int.output.contains("Run status group 0"), "{int}");
    let doc = json_of(&out, "interrupted");
    let read = &doc["jobs"][0]["read"];
    assert!(u(&read["total_ios"]) > 0, "{doc}");
    assert!(u(&read["runtime"]) < 600_000, "stopped early: {doc}");
    assert_eq!(doc["jobs"][0]["error"], 0, "{doc}");

    let un = out.section("unsupported");
    assert_ne!(un.rc, 0, "{un}");
    assert!(un.output.contains("zonemode"), "{un}");

    // An I/O error stops the job, shows as fio's err=5, and fails the run.
    let e = out.section("io_error");
    assert_ne!(e.rc, 0, "an I/O error must fail the run\n{e}");
    let doc = json_of(&out, "io_error");
    assert_eq!(doc["jobs"][0]["error"], 5, "{doc}");
    // Exactly the read at 1 MiB fails (request merging is off on this device).
    let first = doc["jobs"][0]["uvio"]["first_error"].as_str().unwrap_or("");
    assert!(first.contains("offset 1048576"), "{doc}");
    assert!(u(&doc["jobs"][0]["read"]["errors"]) >= 1, "{doc}");
    assert!(e.output.contains("I/O error"), "{e}");

    check_foreign_job_file(&out);
    check_order(&out);
    check_percentiles_as_fio(&out);
    check_pacing(&out);
    // loops=2 with verify: each pass writes the region and reads it back, clean.
    let doc = json_of(&out, "loops_verify");
    assert_eq!(out.section("loops_verify").rc, 0, "{doc}");
    let job = &doc["jobs"][0];
    assert_eq!(u(&job["write"]["total_ios"]), 2 * (4 << 20) / BS, "{doc}");
    assert_eq!(u(&job["read"]["total_ios"]), 2 * (4 << 20) / BS, "{doc}");
    assert_eq!(u(&job["uvio"]["verify"]["bad_blocks"]), 0, "{doc}");
    // A skewed distribution writes some blocks many times and some never: the read-back
    // replays the writes (a sweep would find blocks never written), and finds them good.
    let doc = json_of(&out, "zipf_verify");
    assert_eq!(out.section("zipf_verify").rc, 0, "{doc}");
    let job = &doc["jobs"][0];
    assert_eq!(u(&job["write"]["total_ios"]), (2 << 20) / BS, "{doc}");
    assert_eq!(u(&job["read"]["total_ios"]), (2 << 20) / BS, "{doc}");
    assert_eq!(u(&job["uvio"]["verify"]["bad_blocks"]), 0, "{doc}");
    check_surface_scan(&out);
    // fio's backwards-read.fio (rw=read:-8k): 128 MiB in 4 KiB reads, end to start.
    let doc = json_of(&out, "backwards");
    assert_eq!(out.section("backwards").rc, 0, "{doc}");
    assert_eq!(
        u(&doc["jobs"][0]["read"]["total_ios"]),
        (128 << 20) / BS,
        "{doc}"
    );
    // Non-uniform random distributions run their I/O (where it goes is unit-tested).
    for section in ["zipf", "zoned"] {
        let s = out.section(section);
        assert_eq!(s.rc, 0, "{s}");
        let doc = json_of(&out, section);
        assert_eq!(
            u(&doc["jobs"][0]["read"]["total_ios"]),
            (16 << 20) / BS,
            "{doc}"
        );
    }
}

/// An iodepth beyond the queue's tags (85 direct chains on the 256-entry ring) stays the job's
/// iodepth, as fio's over libblkio: the rest of it waits for a tag, and its latency counts
/// from its issue. By Little's law the mean latency times the completion rate is the number
/// of I/Os outstanding: about 128, not the 85 the ring holds. The wait for a tag is
/// completion latency, as fio counts libblkio's queue: submission latency stays the
/// release's own cost.
fn check_deep_iodepth(out: &VmOutput) {
    let s = out.section("deep");
    assert_eq!(s.rc, 0, "{s}");
    let doc = json_of(out, "deep");
    let job = &doc["jobs"][0];
    assert_eq!(job["job options"]["iodepth"], "128", "{job}");
    let layout = &job["uvio"];
    let (visible, prepared, waiting) = (
        u(&layout["in_flight"]),
        u(&layout["prepared"]),
        u(&layout["waiting"]),
    );
    assert_eq!(visible + prepared + waiting, 128, "{layout}");
    assert!(waiting > 0 && visible <= 85, "{layout}");
    let read = &job["read"];
    let ios = u(&read["total_ios"]);
    assert_eq!(ios, (256 << 20) / BS, "{read}");
    let mean_lat_s = read["lat_ns"]["mean"].as_f64().expect("lat mean") / 1e9;
    let runtime_s = u(&read["runtime"]) as f64 / 1000.0;
    let outstanding = mean_lat_s * ios as f64 / runtime_s;
    assert!(
        (110.0..=140.0).contains(&outstanding),
        "mean latency x IOPS = {outstanding:.1} I/Os outstanding, not about 128: {read}"
    );
    let slat = read["slat_ns"]["mean"].as_f64().expect("slat mean");
    let clat = read["clat_ns"]["mean"].as_f64().expect("clat mean");
    assert!(
        slat < clat / 10.0,
        "the wait for a tag counted as submission latency: slat {slat} ns, clat {clat} ns"
    );
}

/// `rate_iops=2000` holds within 2% over 10 s (linear and Poisson); `rate_iops=500` holds
/// within 2% over 6 s for uvio and for fio on the kernel's twin alike; `thinktime=1ms` after
/// every I/O makes each one cost its latency plus 1 ms.
fn check_pacing(out: &VmOutput) {
    let rate_of = |section: &str, want_iops: f64, want_secs: f64| {
        let s = out.section(section);
        assert_eq!(s.rc, 0, "{s}");
        let doc = json_of(out, section);
        let read = &doc["jobs"][0]["read"];
        let ios = u(&read["total_ios"]) as f64;
        let secs = u(&read["runtime"]) as f64 / 1000.0;
        assert!(
            (want_secs - 0.1..want_secs + 0.5).contains(&secs),
            "{section}: {secs} s\n{doc}"
        );
        let iops = ios / secs;
        assert!(
            (iops - want_iops).abs() <= want_iops * 0.02
                && (ios - want_iops * want_secs).abs() <= want_iops * want_secs * 0.02,
            "{section}: {iops} IOPS, {ios} I/Os\n{doc}"
        );
    };
    rate_of("rate_uvio", 2000.0, 10.0);
    rate_of("poisson", 2000.0, 10.0);
    rate_of("slow_uvio", 500.0, 6.0);
    rate_of("slow_fio", 500.0, 6.0);
    // rate=,1m on a mix: writes at 1 MiB/s (256 a second), reads free, as fio switches to
    // the direction its rate lets go.
    let doc = json_of(out, "mixed_rate");
    assert_eq!(out.section("mixed_rate").rc, 0, "{doc}");
    let (read, write) = (&doc["jobs"][0]["read"], &doc["jobs"][0]["write"]);
    let secs = u(&write["runtime"]) as f64 / 1000.0;
    let write_bps = u(&write["io_bytes"]) as f64 / secs;
    assert!(
        (write_bps - 1048576.0).abs() <= 1048576.0 * 0.02,
        "writes at {write_bps} B/s\n{doc}"
    );
    assert!(
        u(&read["total_ios"]) > 3 * u(&write["total_ios"]),
        "reads are not held back by the writes' rate\n{doc}"
    );
    let doc = json_of(out, "think");
    let read = &doc["jobs"][0]["read"];
    let iops = read["iops"].as_f64().expect("iops");
    let lat_ms = read["lat_ns"]["mean"].as_f64().expect("lat mean") / 1e6;
    // One I/O per (latency + 1 ms), less what the loop itself takes.
    let cycle = iops * (lat_ms + 1.0) / 1000.0;
    assert!(
        (0.85..=1.01).contains(&cycle),
        "iops {iops}, lat {lat_ms} ms\n{doc}"
    );
}

/// fio's surface-scan.fio: the write phase fills the disk (16 MiB in 64 KiB blocks, a
/// `meta` header every 512 bytes, the pattern between), the verify phase reads it back after
/// it; then, with one 512-byte piece overwritten, `--section=verify-phase` alone finds it.
fn check_surface_scan(out: &VmOutput) {
    let s = out.section("surface");
    assert_eq!(s.rc, 0, "{s}");
    assert!(
        s.output.contains("note: ioengine=sync replaced by uvio"),
        "{s}"
    );
    let doc = json_of(out, "surface");
    let jobs = doc["jobs"].as_array().expect("jobs");
    let blocks = (16u64 << 20) / 65536;
    assert_eq!(jobs.len(), 2, "{doc}");
    assert_eq!(u(&jobs[0]["write"]["total_ios"]), blocks, "{doc}");
    assert_eq!(u(&jobs[0]["read"]["total_ios"]), 0, "do_verify=0: {doc}");
    assert_eq!(u(&jobs[1]["read"]["total_ios"]), blocks, "{doc}");
    assert_eq!(
        u(&jobs[1]["uvio"]["verify"]["blocks_verified"]),
        blocks,
        "{doc}"
    );
    assert_eq!(u(&jobs[1]["uvio"]["verify"]["bad_blocks"]), 0, "{doc}");
    assert_eq!((u(&jobs[0]["groupid"]), u(&jobs[1]["groupid"])), (0, 1));
    assert!(
        u(&jobs[1]["job_start"]) >= u(&jobs[0]["job_start"]) + u(&jobs[0]["job_runtime"]),
        "{doc}"
    );
    assert_eq!(out.section("corrupt_again").rc, 0, "{out}");
    let bad = out.section("surface_bad");
    assert_ne!(bad.rc, 0, "{bad}");
    let doc = json_of(out, "surface_bad");
    let jobs = doc["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 1, "only the verify phase: {doc}");
    assert_eq!(jobs[0]["jobname"], "verify-phase");
    let first = &jobs[0]["uvio"]["verify"]["first_bad_block"];
    assert_eq!(u(&first["offset"]), BAD_AT, "the 512-byte piece: {doc}");
    assert_eq!(u(&first["length"]), 512, "{doc}");
}

/// The job file for the kernel runs on uvio's device, saying what it replaced.
fn check_foreign_job_file(out: &VmOutput) {
    let f = out.section("foreign");
    assert_eq!(f.rc, 0, "{f}");
    for note in [
        "uvio bench: note: ioengine=libaio replaced by uvio",
        "uvio bench: note: uvio I/O is always direct",
    ] {
        assert!(f.output.contains(note), "missing {note:?}\n{f}");
    }
    let doc = json_of(out, "foreign");
    let job = &doc["jobs"][0];
    assert_eq!(job["jobname"], "foreign", "{doc}");
    // size=(2*4m): 8 MiB of 4 KiB reads.
    assert_eq!(u(&job["read"]["total_ios"]), (8 << 20) / BS, "{doc}");
    // iodepth=$ncpus*2, worked out as fio does with the guest's CPUs.
    let ncpus: u64 = out.section("ncpus").output.trim().parse().expect("nproc");
    assert_eq!(
        doc["global options"]["iodepth"],
        (ncpus * 2).to_string(),
        "{doc}"
    );
}

/// `stonewall`, `new_group`, `startdelay` and `loops`, from the reporting groups and the
/// per-job start times (fio's `job_start`, ms since the epoch).
fn check_order(out: &VmOutput) {
    let o = out.section("order");
    assert_eq!(o.rc, 0, "{o}");
    let doc = json_of(out, "order");
    let jobs = doc["jobs"].as_array().expect("jobs");
    let names: Vec<&str> = jobs.iter().filter_map(|j| j["jobname"].as_str()).collect();
    assert_eq!(
        names,
        ["first", "delayed", "second", "alongside", "looped"],
        "{doc}"
    );
    let groups: Vec<u64> = jobs.iter().map(|j| u(&j["groupid"])).collect();
    assert_eq!(groups, [0, 0, 1, 2, 3], "{doc}");
    let start = |i: usize| u(&jobs[i]["job_start"]);
    let end = |i: usize| start(i) + u(&jobs[i]["job_runtime"]);
    let t0 = u(&doc["timestamp_ms"]);
    // `startdelay=1`: one second after the benchmark's start (not before; the slack is the
    // guest's scheduling); `first` did not wait for it.
    assert!(start(0) < t0 + 1000, "{doc}");
    assert!(
        (t0 + 1000..t0 + 1500).contains(&start(1)),
        "delayed started at +{} ms\n{doc}",
        start(1) - t0
    );
    // The stonewall: `second` started after both jobs before it ended, `alongside` with it.
    assert!(start(2) >= end(0).max(end(1)), "{doc}");
    assert!(start(2).abs_diff(start(3)) < 500, "{doc}");
    // `wait_for_previous` (stonewall's other name): after `second` and `alongside`.
    assert!(start(4) >= end(2).max(end(3)), "{doc}");
    // loops=3: three passes over 4 MiB.
    assert_eq!(
        u(&jobs[4]["read"]["total_ios"]),
        3 * (4 << 20) / BS,
        "{doc}"
    );
    for (i, job) in jobs.iter().enumerate().take(4) {
        assert!(u(&job["read"]["total_ios"]) > 0, "job {i}: {doc}");
    }
}

/// The percentile blocks of the normal output (their labels, in order) and the JSON
/// latencies that carry percentiles, for uvio and for fio on the kernel's twin.
fn check_percentiles_as_fio(out: &VmOutput) {
    let shape = |section: &str| {
        let s = out.section(section);
        assert_eq!(s.rc, 0, "{s}");
        let labels: Vec<String> = s
            .output
            .lines()
            .filter(|l| l.contains(" percentiles ("))
            .map(|l| l.trim().split(' ').next().unwrap_or_default().to_string())
            .collect();
        let doc = json_of(out, section);
        let read = &doc["jobs"][0]["read"];
        let with_percentiles: Vec<(&str, Vec<String>)> = ["slat_ns", "clat_ns", "lat_ns"]
            .into_iter()
            .filter_map(|l| {
                let p = read[l]["percentile"].as_object()?;
                Some((l, p.keys().cloned().collect()))
            })
            .collect();
        (labels, with_percentiles)
    };
    let (uvio_labels, uvio_json) = shape("pct_uvio");
    let (fio_labels, fio_json) = shape("pct_fio");
    assert_eq!(uvio_labels, ["slat", "lat"], "{out}");
    assert_eq!(uvio_labels, fio_labels, "{out}");
    assert_eq!(uvio_json, fio_json, "{out}");
}
