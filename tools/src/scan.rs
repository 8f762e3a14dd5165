//! `uvio scan`: the LUNs of virtio-scsi hosts, found the way the kernel finds them, printed
//! in lsscsi's layout or as JSON.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uvio::binding::VFIO_PCI_DRIVER;
use uvio::block::{Data, Request, Unit};
use uvio::pci::{PciAddress, Sysfs};
use uvio::scsi::host::HostEvent;
use uvio::scsi::host::{ScsiOptions, VirtioScsiHost};
use uvio::scsi::scan::ScannedLun;
use uvio::virtio::DeviceType;

use crate::command::CmdResult;

/// A size as lsscsi -s prints it: SI units, three significant figures, truncated (not
/// rounded: 16 MiB is `16.7MB`).
pub fn si_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut unit = 0;
    let mut scale = 1u64;
    while bytes / scale >= 1000 && unit + 1 < UNITS.len() {
        scale *= 1000;
        unit += 1;
    }
    let whole = bytes / scale;
    let decimals = if unit == 0 || whole >= 100 {
        0
    } else if whole >= 10 {
        1
    } else {
        2
    };
    let factor = 10u64.pow(decimals);
    // Integer arithmetic, so truncation is exact.
    let scaled = u128::from(bytes) * u128::from(factor) / u128::from(scale);
    let (int, frac) = (scaled / u128::from(factor), scaled % u128::from(factor));
    if decimals == 0 {
        format!("{int}{}", UNITS[unit])
    } else {
        format!(
            "{int}.{frac:0width$}{}",
            UNITS[unit],
            width = decimals as usize
        )
    }
}

fn lun_json(bdf: PciAddress, l: &ScannedLun) -> Value {
    let inq = &l.inquiry;
    let mut v = json!({
        "channel": l.channel,
        "target": l.target,
        "lun": l.lun,
        "linux_lun": l.linux_lun,
        "type": inq.device_type.short_name(),
        "pdt": inq.device_type.0,
        "pq": inq.peripheral_qualifier,
        "vendor": inq.vendor_trimmed(),
        "model": inq.product_trimmed(),
        "revision": inq.revision_trimmed(),
        "scsi_level": inq.scsi_level,
        "removable": inq.removable,
    });
    if let Some(d) = &l.disk {
        let obj = v.as_object_mut().expect("an object");
        obj.insert(
            "device".into(),
            json!(format!("{bdf}/{}:{}:{}", l.channel, l.target, l.lun)),
        );
        for (key, value) in [
            ("blocks", json!(d.blocks)),
            ("block_size", json!(d.block_size)),
            ("physical_block_size", json!(d.physical_block_size)),
            ("size_bytes", json!(d.size_bytes)),
            ("write_protect", json!(d.write_protect)),
            ("write_cache", json!(d.write_cache)),
            ("fua", json!(d.fua)),
            ("serial", json!(d.serial)),
            ("identifiers", json!(d.identifiers)),
            ("rotation_rate", json!(d.rotation_rate)),
            ("max_transfer_blocks", json!(d.max_transfer_blocks)),
            ("optimal_transfer_blocks", json!(d.optimal_transfer_blocks)),
            ("unmap", json!(d.unmap)),
            (
                "vpd_pages",
                json!(d
                    .vpd_pages
                    .iter()
                    .map(|p| format!("0x{p:02x}"))
                    .collect::<Vec<_>>()),
            ),
            ("not_ready", json!(d.not_ready)),
        ] {
            obj.insert(key.into(), value);
        }
    }
    v
}

/// One lsscsi-style line: `[H:C:T:L]  type  vendor  model  rev  device  [size]`.
fn lun_line(host: usize, bdf: PciAddress, l: &ScannedLun, sizes: bool) -> String {
    let inq = &l.inquiry;
    // The LUN in the tuple is Linux's integer, as lsscsi shows it (16684 for flat 300).
    let tuple = format!("[{host}:{}:{}:{}]", l.channel, l.target, l.linux_lun);
    let tuple = if tuple.len() >= 13 {
        format!("{tuple} ")
    } else {
        format!("{tuple:<13}")
    };
    let device = match &l.disk {
        Some(_) => format!("{bdf}/{}:{}:{}", l.channel, l.target, l.lun),
        None => "-".to_string(),
    };
    let (type_name, vendor, model, rev) = (
        inq.device_type.short_name(),
        &inq.vendor,
        &inq.product,
        &inq.revision,
    );
    if sizes {
        // lsscsi pads the device column to 9 when a size column follows.
        let size = l
            .disk
            .as_ref()
            .map_or("-".to_string(), |d| si_size(d.size_bytes));
        format!("{tuple}{type_name:<8}{vendor:<8} {model:<16} {rev:<4}  {device:<9}  {size:>6}")
    } else {
        format!("{tuple}{type_name:<8}{vendor:<8} {model:<16} {rev:<4}  {device}")
    }
}

/// The virtio-scsi functions to scan: those named, or every one bound to vfio-pci.
fn hosts_to_scan(named: &[PciAddress]) -> Result<Vec<PciAddress>, Box<dyn std::error::Error>> {
    if !named.is_empty() {
        return Ok(named.to_vec());
    }
    let all = Sysfs::system().pci_functions()?;
    let found: Vec<PciAddress> = all
        .iter()
        .filter(|f| {
            DeviceType::of(f) == Some(DeviceType::Scsi)
                && f.driver().as_deref() == Some(VFIO_PCI_DRIVER)
        })
        .map(|f| f.address)
        .collect();
    if found.is_empty() {
        return Err("no virtio-scsi function is bound to vfio-pci: `uvio list` shows them, `uvio bind BDF` hands one over".into());
    }
    Ok(found)
}

pub fn run(named: &[PciAddress], json_output: bool, sizes: bool) -> CmdResult {
    let mut hosts = Vec::new();
    let mut failed = 0;
    for (index, bdf) in hosts_to_scan(named)?.into_iter().enumerate() {
        let function = Sysfs::system().pci_function(bdf)?;
        if DeviceType::of(&function) != Some(DeviceType::Scsi) {
            return Err(format!("{bdf} is not a virtio-scsi function").into());
        }
        let host = match VirtioScsiHost::open(
            &function,
            &ScsiOptions {
                queues: Some(1),
                ring: crate::open::ring(),
                ..Default::default()
            },
        ) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("uvio: error: {bdf}: {e}");
                failed += 1;
                continue;
            }
        };
        let report = host.scan_report().clone();
        for w in &report.warnings {
            eprintln!("uvio: warning: {bdf}: {w}");
        }
        if json_output {
            hosts.push(json!({
                "pci": bdf.to_string(),
                "host": index,
                "luns": report.luns.iter().map(|l| lun_json(bdf, l)).collect::<Vec<_>>(),
                "warnings": report.warnings,
            }));
        } else {
            // lsscsi's order: by channel, target and (Linux) LUN.
            let mut luns: Vec<&ScannedLun> = report.luns.iter().collect();
            luns.sort_by_key(|l| (l.channel, l.target, l.linux_lun));
            for l in luns {
                println!("{}", lun_line(index, bdf, l, sizes));
            }
        }
    }
    if json_output {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "hosts": hosts }))?
        );
    }
    if failed > 0 {
        return Err(format!("{failed} hosts could not be scanned").into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_lsscsi() {
        assert_eq!(si_size(1 << 30), "1.07GB");
        assert_eq!(si_size(512 << 20), "536MB");
        assert_eq!(si_size(64 << 20), "67.1MB");
        assert_eq!(si_size(2 << 40), "2.19TB");
        assert_eq!(si_size(512), "512B");
        assert_eq!(si_size(16 << 20), "16.7MB");
        assert_eq!(si_size(128 << 20), "134MB");
        assert_eq!(si_size(999), "999B");
        assert_eq!(si_size(1000), "1.00kB");
    }
}

/// Reads of one LUN during `--watch`.
#[derive(Default)]
struct Liveness {
    ok: u64,
    failed: u64,
    last_error: Option<String>,
}

/// `uvio scan --watch`: scan, then follow the event queue for `duration`, applying
/// hot-plug, hot-unplug and capacity changes as they come, and keep reading the first block
/// of every disk LUN meanwhile, to show the others keep being served.
pub fn watch(bdf: PciAddress, duration: Duration) -> CmdResult {
    let mut host = crate::open::open_scsi_host(bdf)?;
    let mut luns: Vec<ScannedLun> = host.scan_report().luns.clone();
    for l in &luns {
        println!("{}", lun_line(0, bdf, l, true));
    }
    crate::interrupt::catch();
    println!("watching {bdf} for {} s", duration.as_secs());
    let mut queue = host.tag_set().take_queue(0).ok_or("no request queue")?;
    let mut buffer = Some(host.dma().alloc(64 << 10)?.into_buf());
    let mut liveness: std::collections::BTreeMap<(u16, u64), Liveness> = Default::default();
    let mut units: std::collections::BTreeMap<(u16, u16), Unit> = Default::default();
    let start = Instant::now();
    while start.elapsed() < duration && !crate::interrupt::requested() {
        for event in host.process_events(&mut queue)? {
            match event {
                HostEvent::Added(l) => {
                    println!("added {}", lun_line(0, bdf, &l, true));
                    luns.push(l);
                }
                HostEvent::Removed { target, lun } => {
                    println!("removed [0:0:{target}:{lun}]");
                    luns.retain(|l| !(l.target == target && l.lun == lun));
                    // Its unit stays known but refuses I/O at once: show that.
                    if let (Some(&unit), Some(mut buf)) = (units.get(&(target, lun)), buffer.take())
                    {
                        buf.set_len(512);
                        let (result, data) = queue.run_one(unit, Request::read(0, buf));
                        match &result {
                            Ok(_) => println!("  I/O to [0:0:{target}:{lun}] still succeeds"),
                            Err(e) => println!("  I/O to [0:0:{target}:{lun}] now fails: {e}"),
                        }
                        if let Data::One(b) = data {
                            buffer = Some(b);
                        }
                    }
                }
                HostEvent::Changed(l) => println!("changed {}", lun_line(0, bdf, &l, true)),
                HostEvent::Rescanned => println!("events were lost: rescanned"),
            }
        }
        // One read of block 0 of each disk LUN, one at a time.
        for l in luns.iter().filter(|l| l.disk.is_some()) {
            let Ok(device) = host.disk(l.target, l.lun) else {
                continue;
            };
            units.insert((l.target, l.lun), device.unit());
            let Some(mut buf) = buffer.take() else { break };
            buf.set_len(device.limits.logical_block_size as usize);
            let (result, data) = queue.run_one(device.unit(), Request::read(0, buf));
            let entry = liveness.entry((l.target, l.linux_lun)).or_default();
            match result {
                Ok(_) => entry.ok += 1,
                Err(e) => {
                    entry.failed += 1;
                    entry.last_error = Some(e.to_string());
                }
            }
            if let Data::One(b) = data {
                buffer = Some(b);
            }
        }
        // Nothing else is submitted here; anything late (an orphaned read) is dropped.
        queue.poll(|_| {});
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("reads while watching:");
    for ((target, lun), l) in &liveness {
        let error = l
            .last_error
            .as_deref()
            .map(|e| format!(" (last error: {e})"))
            .unwrap_or_default();
        println!(
            "  read [0:0:{target}:{lun}] ok={} failed={}{error}",
            l.ok, l.failed
        );
    }
    host.tag_set().return_queue(queue);
    // The loop stopped for the removal: fail (the host is released on return).
    match crate::interrupt::removed() {
        Some(removed) => Err(crate::interrupt::Interrupted::removed(removed).into()),
        None => Ok(()),
    }
}
