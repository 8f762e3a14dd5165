//! `cargo run --release -p uvio-tests --bin uvio-demo`: boots a TCG guest with an emulated
//! virtio-blk disk and a virtio-scsi HBA with a few LUNs, and shows uvio at work inside it.
//! Everything it needs is installed on first use (Debian, as root).

use std::fs;
use std::path::Path;

use uvio_tests::vm::VmSpec;

const STEPS: &[(&str, &str)] = &[
    ("uvio list", "uvio list"),
    ("uvio bind", "uvio bind 0000:00:05.0 0000:00:04.0"),
    ("uvio info (virtio-blk)", "uvio info 0000:00:05.0"),
    ("uvio info (virtio-scsi)", "uvio info 0000:00:04.0"),
    ("write 1 MiB, read it back", "sh -c 'head -c 1048576 /dev/urandom > /tmp/a && uvio write 0000:00:05.0 --offset 4096 --input /tmp/a && uvio read 0000:00:05.0 --offset 4096 --length 1m --output /tmp/b && cmp /tmp/a /tmp/b && echo identical'"),
    ("uvio verify: 2 queues, 64 in flight each", "uvio verify 0000:00:05.0 --depth 64 --ios 20000"),
    ("uvio unbind", "uvio unbind 0000:00:05.0 0000:00:04.0"),
];

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/vm-cache/demo");
    fs::create_dir_all(&dir).expect("creating target/vm-cache/demo");
    let image = dir.join("disk.img");
    fs::write(&image, vec![0u8; 256 << 20]).expect("creating the demo disk image");

    let mut script = String::new();
    for (i, (_, command)) in STEPS.iter().enumerate() {
        script += &format!("check step{i} {command}\n");
    }
    script += "true\n";
    eprintln!("booting a TCG guest (q35, intel-iommu, virtio-blk at 00:05.0, virtio-scsi at 00:04.0 with 3 LUNs)...");
    let out = VmSpec::new()
        .virtio_blk_file("05.0", &image, "num-queues=2")
        .virtio_scsi("s0", "04.0", 2, "")
        .scsi_hd_null("s0", 0, 0, 1 << 30, "")
        .scsi_hd_null("s0", 1, 0, 512 << 20, "serial=demo-1")
        .scsi_hd_null("s0", 2, 5, 2 << 30, "")
        .script(script)
        .run();
    let mut failed = false;
    for (i, (title, command)) in STEPS.iter().enumerate() {
        let section = out.section(&format!("step{i}"));
        println!("\n### {title}\n$ {command}");
        print!("{}", section.output);
        if section.rc != 0 {
            println!("(exit status {})", section.rc);
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
