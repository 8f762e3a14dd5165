//! `cargo run -p uvio-tests --bin uvio-guest -- 'SCRIPT'`: runs a shell script in the
//! benchmark guest (virtio-blk null-co at 00:05.0 and 00:06.0, two queues each; fio and the
//! other reference tools included) and prints its console. For trying things by hand.
//! `UVIO_GUEST_BINS=perf,strace` copies more host binaries (with their libraries) in;
//! `UVIO_GUEST_BLK=...` replaces the devices' extra options (default `num-queues=2`);
//! `UVIO_GUEST_QEMU_ARGS="-trace virtqueue_pop -D /tmp/trace.log"` adds QEMU arguments;
//! `UVIO_GUEST_MODULE_PARAMS="vfio_pci:ids=1af4:1042;virtio_blk:poll_queues=1"` gives parameters
//! to the modules `/init` loads (`MODULE:PARAMS`, `;`-separated);
//! `UVIO_GUEST_GATE=0.02` gates the script's `gated NAME CMD...` runs on the host's steal
//! share (as `uvio-compare` does) and ends the console with `@@KEPT NAME_tN ...@@` per name;
//! `UVIO_GUEST_SCSI=1` adds a virtio-scsi HBA at 00:07.0 (two queues) with a null-co scsi-hd
//! at 0:0:0 (`1af4:1048` in `vfio_pci:ids=` puts it on vfio-pci from boot).

use std::time::{Duration, Instant};

use uvio_tests::quiet_gate;
use uvio_tests::vm::VmSpec;

fn main() {
    let script: String = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    if script.trim().is_empty() {
        eprintln!(
            "usage: uvio-guest 'SCRIPT' (run in the guest with sh; `check NAME CMD` helpers)"
        );
        std::process::exit(2);
    }
    let blk = std::env::var("UVIO_GUEST_BLK").unwrap_or_else(|_| "num-queues=2".into());
    let mut spec = VmSpec::new();
    for bin in std::env::var("UVIO_GUEST_BINS")
        .unwrap_or_default()
        .split(',')
    {
        if !bin.is_empty() {
            spec = spec.host_binary(bin);
        }
    }
    for item in std::env::var("UVIO_GUEST_MODULE_PARAMS")
        .unwrap_or_default()
        .split(';')
    {
        if let Some((module, params)) = item.split_once(':') {
            spec = spec.module_param(module, params);
        }
    }
    if std::env::var("UVIO_GUEST_SCSI").is_ok_and(|v| v == "1") {
        spec = spec
            .virtio_scsi("s0", "07.0", 2, "")
            .scsi_hd_null("s0", 0, 0, 1 << 30, "");
    }
    let extra = std::env::var("UVIO_GUEST_QEMU_ARGS").unwrap_or_default();
    let spec = spec
        .qemu_args(extra.split_whitespace())
        .reference_tools()
        .timeout(Duration::from_secs(900))
        .virtio_blk_null("05.0", 1 << 30, &blk)
        .virtio_blk_null("06.0", 1 << 30, &blk);
    let Some(max_steal) = std::env::var("UVIO_GUEST_GATE").ok() else {
        let out = spec.script(format!("{script}\ntrue\n")).run();
        print!("{}", out.console);
        if out.exit_code != Some(0) {
            std::process::exit(1);
        }
        return;
    };
    // Gated: `gated NAME CMD...` runs CMD again while the host's steal share around it is
    // over the gate; the console ends with the try kept of each name.
    let Ok(max_steal) = max_steal.parse::<f64>() else {
        eprintln!("UVIO_GUEST_GATE={max_steal}: a steal share such as 0.02");
        std::process::exit(2);
    };
    let gate = quiet_gate::Gate {
        max_steal,
        max_tries: 5,
    };
    let mut vm = spec
        .script(format!(
            "{}{script}\n{}true\n",
            quiet_gate::GATED_SH,
            quiet_gate::GATE_DONE
        ))
        .spawn();
    let log = quiet_gate::drive(&mut vm, gate, Instant::now() + Duration::from_secs(3600));
    let out = vm.wait(Duration::from_secs(120));
    print!("{}", out.console);
    for (name, run) in &log.runs {
        println!(
            "@@KEPT {} steal={:.4} tries={}@@",
            log.section(name),
            run.kept_steal(),
            run.steal.len()
        );
    }
    if out.exit_code != Some(0) {
        std::process::exit(1);
    }
}
