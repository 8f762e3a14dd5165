//! `cargo run --release -p uvio-tests --bin uvio-demo`: boots a TCG guest with emulated
//! virtio-blk disks and a virtio-scsi HBA with a few LUNs, shows uvio at work inside it, and
//! ends with `uvio scan` and a short benchmark next to the guest kernel's own driver on a
//! twin disk. Everything it needs is installed on first use (Debian, as root).

use std::fs;
use std::path::Path;

use serde_json::Value;
use uvio_tests::vm::VmSpec;

/// The same fio job for both sides: 4 KiB random reads, 32 in flight, 3 seconds.
const JOB: &str =
    "--rw=randread --bs=4k --iodepth=32 --time_based --runtime=3 --ramp_time=1 --size=1g";

const STEPS: &[(&str, &str)] = &[
    ("uvio list", "uvio list"),
    ("uvio bind", "uvio bind 0000:00:05.0 0000:00:07.0 0000:00:04.0"),
    ("uvio info (virtio-scsi)", "uvio info 0000:00:04.0"),
    (
        "write 1 MiB, read it back",
        "sh -c 'head -c 1048576 /dev/urandom > /tmp/a && uvio write 0000:00:05.0 --offset 4096 --input /tmp/a && uvio read 0000:00:05.0 --offset 4096 --length 1m --output /tmp/b && cmp /tmp/a /tmp/b && echo identical'",
    ),
    ("uvio verify: 2 queues, 64 in flight each", "uvio verify 0000:00:05.0 --depth 64 --ios 20000"),
    ("uvio scan -s", "uvio scan -s"),
];

fn iops_and_p99(report: &str) -> Option<(f64, f64)> {
    let v: Value = serde_json::from_str(report.get(report.find('{')?..)?).ok()?;
    let read = &v["jobs"][0]["read"];
    let p99 = read["clat_ns"]["percentile"]["99.000000"].as_f64()? / 1000.0;
    Some((read["iops"].as_f64()?, p99))
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/vm-cache/demo");
    fs::create_dir_all(&dir).expect("creating target/vm-cache/demo");
    let image = dir.join("disk.img");
    fs::write(&image, vec![0u8; 256 << 20]).expect("creating the demo disk image");

    let mut script = String::new();
    for (i, (_, command)) in STEPS.iter().enumerate() {
        script += &format!("check step{i} {command}\n");
    }
    script += &format!(
        "check bench_uvio uvio bench --name=uvio --filename=0000:00:07.0 {JOB}\n\
         check bench_uvio_json uvio bench --output-format=json --name=uvio --filename=0000:00:07.0 {JOB}\n\
         check bench_kernel_json sh -c 'fio --output-format=json --name=kernel --direct=1 --thread --ioengine=io_uring --filename=/dev/$(ls /sys/bus/pci/devices/0000:00:08.0/virtio*/block) {JOB}'\n\
         check unbind uvio unbind 0000:00:05.0 0000:00:07.0 0000:00:04.0\ntrue\n"
    );
    eprintln!(
        "booting a TCG guest (q35, intel-iommu; virtio-blk at 00:05.0 (a file), 00:07.0 and its \
         kernel-driven twin 00:08.0 (null-co); virtio-scsi at 00:04.0 with 4 LUNs)..."
    );
    let out = VmSpec::new()
        .reference_tools()
        .virtio_blk_file("05.0", &image, "num-queues=2")
        .virtio_blk_null("07.0", 1 << 30, "")
        .virtio_blk_null("08.0", 1 << 30, "")
        .virtio_scsi("s0", "04.0", 2, "")
        .scsi_hd_null("s0", 0, 0, 1 << 30, "serial=demo-0,rotation_rate=1")
        .scsi_hd_null("s0", 1, 0, 512 << 20, "")
        .scsi_hd_null(
            "s0",
            2,
            5,
            2 << 30,
            "logical_block_size=4096,physical_block_size=4096",
        )
        .scsi_cd("s0", 3, 0, None, "")
        .script(script)
        .run();
    let mut failed = false;
    let mut show = |title: &str, command: &str, section: &str| {
        let s = out.section(section);
        println!("\n### {title}\n$ {command}");
        print!("{}", s.output);
        if s.rc != 0 {
            println!("(exit status {})", s.rc);
            failed = true;
        }
    };
    for (i, (title, command)) in STEPS.iter().enumerate() {
        show(title, command, &format!("step{i}"));
    }
    show(
        "uvio bench (fio's options and output)",
        &format!("uvio bench --name=uvio --filename=0000:00:07.0 {JOB}"),
        "bench_uvio",
    );

    let uvio = iops_and_p99(&out.section("bench_uvio_json").output);
    let kernel = iops_and_p99(&out.section("bench_kernel_json").output);
    println!("\n### The same job next to the guest kernel (virtio_blk + fio io_uring on the twin 00:08.0)");
    match (uvio, kernel) {
        (Some((ui, up)), Some((ki, kp))) => {
            println!("{:<28} {:>10} {:>12}", "", "IOPS", "clat p99");
            println!(
                "{:<28} {:>10.0} {:>10.0}us",
                "uvio (polled, userspace)", ui, up
            );
            println!(
                "{:<28} {:>10.0} {:>10.0}us",
                "kernel virtio_blk + fio", ki, kp
            );
            println!(
                "uvio/kernel: {:.1}x IOPS (docs/benchmarks.md has the full matrix)",
                ui / ki.max(1.0)
            );
        }
        _ => {
            println!("(a benchmark report could not be read)");
            failed = true;
        }
    }
    println!("\nguest run took {:.1} s", out.elapsed.as_secs_f64());
    let _ = fs::remove_file(&image);
    if failed || out.exit_code != Some(0) {
        eprintln!("the demo failed; the whole guest console follows\n{out}");
        std::process::exit(1);
    }
}
