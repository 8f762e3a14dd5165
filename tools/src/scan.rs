//! `uvio scan`: the LUNs of virtio-scsi hosts, found the way the kernel finds them, printed
//! in lsscsi's layout or as JSON.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use uvio::binding::VFIO_PCI_DRIVER;
use uvio::block::{Data, Request, Unit};
use uvio::pci::{PciAddress, Sysfs};
use uvio::scsi::host::HostEvent;
use uvio::scsi::host::{ScanOptions, ScsiOptions, VirtioScsiHost};
use uvio::scsi::scan::ScanProgress;
use uvio::scsi::scan::ScannedLun;
use uvio::virtio::DeviceType;

use crate::command::CmdResult;

pub mod filter;
#[cfg(test)]
mod fixtures;
pub mod json;
pub mod long;
pub mod lsscsi;
pub mod lun_facts;
pub mod udev_id;

use filter::Filter;
use json::HostJson;
use lsscsi::Layout;
use lun_facts::{LunFacts, Wanted};

/// `uvio scan`'s arguments: lsscsi's options, with lsscsi's meanings and output.
#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// Hosts to scan (virtio-scsi functions bound to vfio-pci; all of them when none is
    /// named), then lsscsi's filter: `H`, `H:C:T:L` or `H C T L`, each part a number or
    /// `-`/`*` (any). H is the host's position among those scanned, from 0; L is Linux's
    /// LUN number (16684 for flat LUN 300), or hex with `0x` (`-x`'s form).
    #[arg(value_name = "BDF|H:C:T:L")]
    pub args: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show disk sizes: once in SI units (`1.07GB`), twice in binary units (`1.00GiB`),
    /// three times as logical blocks, four times with the block size (as lsscsi -s).
    #[arg(short = 's', long = "size", action = clap::ArgAction::Count)]
    pub size: u8,
    /// Sizes as logical blocks; twice with the block size (lsscsi -S, `-sss`).
    #[arg(short = 'S', long = "sz-lbs", action = clap::ArgAction::Count)]
    pub sz_lbs: u8,
    /// More of each LUN's attributes: once on one line, twice on three (lsscsi -l).
    #[arg(short = 'l', long, action = clap::ArgAction::Count)]
    pub long: u8,
    /// Each LUN's attributes one per line (lsscsi -L, `-lll`).
    #[arg(short = 'L', long, action = clap::ArgAction::Count)]
    pub list: u8,
    /// The logical unit name from VPD page 0x83 instead of vendor, model and revision:
    /// cut to 32 characters, twice its end, three times in full (lsscsi -u).
    #[arg(short = 'u', long, action = clap::ArgAction::Count)]
    pub unit: u8,
    /// The logical unit name in full; twice with its kind (`naa.`) in front (lsscsi -U).
    #[arg(short = 'U', long = "long-unit", action = clap::ArgAction::Count)]
    pub long_unit: u8,
    /// The protection type (READ CAPACITY 16) and integrity format (lsscsi -p).
    #[arg(short = 'p', long)]
    pub protection: bool,
    /// The protection mode (lsscsi -P).
    #[arg(short = 'P', long)]
    pub protmode: bool,
    /// The sysfs directory of the PCI function each LUN is reached through (lsscsi -v).
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// The udev SCSI id (`/dev/disk/by-id/scsi-*`) the LUN's VPD pages give, by
    /// udev's sg3_utils rule (lsscsi -i).
    #[arg(short = 'i', long = "scsi_id")]
    pub scsi_id: bool,
    /// The WWN (`/dev/disk/by-id/wwn-*`) the LUN's VPD page 0x83 gives (lsscsi -w).
    #[arg(short = 'w', long)]
    pub wwn: bool,
    /// The tuple and the device only (lsscsi -b).
    #[arg(short = 'b', long)]
    pub brief: bool,
    /// `cat /proc/scsi/scsi`'s layout (lsscsi -c).
    #[arg(short = 'c', long)]
    pub classic: bool,
    /// The peripheral device type in hex (lsscsi -D).
    #[arg(short = 'D', long)]
    pub pdt: bool,
    /// Transport information instead of vendor, model and revision (lsscsi -t);
    /// virtio-scsi has no SCSI transport class, so the column is blank, as lsscsi shows it.
    #[arg(short = 't', long)]
    pub transport: bool,
    /// The LUN in T10 hex (`0x412c`); twice, as 16 hex digits (lsscsi -x).
    #[arg(short = 'x', long, action = clap::ArgAction::Count)]
    pub lunhex: u8,
    /// List the hosts instead of their LUNs (lsscsi -H).
    #[arg(short = 'H', long)]
    pub hosts: bool,
    /// Then follow the host's events (hot-plug, removal, resize) for SECONDS (or until
    /// Ctrl-C / SIGTERM), reading every disk LUN meanwhile; needs exactly one BDF.
    #[arg(long, value_name = "SECONDS")]
    pub watch: Option<u64>,
    /// Probe one target at a time, one command at a time, as the kernel does (by default
    /// targets, and the LUNs a target lists, are probed side by side; the result is the same).
    #[arg(long)]
    pub sequential: bool,
}

/// Splits the positional arguments into BDFs (they have a `.`: `0000:00:04.0`) and the
/// lsscsi filter after them.
fn split_args(args: &[String]) -> Result<(Vec<PciAddress>, Filter), String> {
    let mut bdfs = Vec::new();
    let mut filter = Vec::new();
    for a in args {
        if a.contains('.') {
            if !filter.is_empty() {
                return Err(format!(
                    "{a}: name the hosts (BDF) before the filter ({})",
                    filter.join(" ")
                ));
            }
            bdfs.push(a.parse::<PciAddress>().map_err(|e| e.to_string())?);
        } else {
            filter.push(a.as_str());
        }
    }
    Ok((bdfs, Filter::parse(&filter)?))
}

/// Runs `uvio scan` as its arguments ask; `timeout` is each command's deadline.
pub fn main(a: ScanArgs, timeout: Duration) -> CmdResult {
    let (bdfs, filter) = split_args(&a.args)?;
    if let Some(seconds) = a.watch {
        return match bdfs.as_slice() {
            [bdf] => watch(*bdf, Duration::from_secs(seconds)),
            _ => Err("--watch follows one host: name exactly one BDF".into()),
        };
    }
    let layout = Layout {
        brief: a.brief,
        classic: a.classic,
        pdt: a.pdt,
        transport: a.transport,
        lunhex: a.lunhex,
        size: a.size.saturating_add(a.sz_lbs.saturating_mul(3)),
        long: a.long.saturating_add(a.list.saturating_mul(3)),
        unit: a.unit.saturating_add(a.long_unit.saturating_mul(3)),
        protection: a.protection,
        protmode: a.protmode,
        verbose: a.verbose,
        scsi_id: a.scsi_id,
        wwn: a.wwn,
    };
    layout.check()?;
    if a.hosts && (layout.long > 0 || layout.verbose) {
        return Err("uvio scan -H lists hosts without -l, -L or -v".into());
    }
    run(
        &bdfs,
        a.json,
        &layout,
        &filter,
        a.hosts,
        timeout,
        a.sequential,
    )
}

/// What `layout` needs to ask each LUN.
fn wanted(layout: &Layout) -> Wanted {
    Wanted {
        device_id: layout.unit > 0 || layout.scsi_id || layout.wwn,
        unit_serial: layout.scsi_id,
        size: layout.size > 0,
        protection: layout.protection,
    }
}

/// One lsscsi-style line with sizes (`--watch`'s events).
fn lun_line(host: usize, bdf: PciAddress, l: &ScannedLun, sizes: bool) -> String {
    let layout = Layout {
        size: u8::from(sizes),
        ..Layout::default()
    };
    let facts = LunFacts {
        size: lun_facts::disk_size(l),
        ..LunFacts::default()
    };
    lsscsi::lun_lines(host, bdf, l, &layout, &facts).join("\n")
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

pub fn run(
    named: &[PciAddress],
    json_output: bool,
    layout: &Layout,
    filter: &Filter,
    list_hosts: bool,
    timeout: Duration,
    sequential: bool,
) -> CmdResult {
    // lsscsi -c heads its list, with "none" when it is empty.
    let mut lines: Vec<String> = Vec::new();
    // --json: each host stays open until the document, which borrows its report, is out.
    let mut scanned: Vec<(usize, PciAddress, VirtioScsiHost)> = Vec::new();
    let mut failed = 0;
    for (index, bdf) in hosts_to_scan(named)?.into_iter().enumerate() {
        if !filter.matches_host(index) {
            continue;
        }
        if list_hosts && !json_output {
            lines.push(lsscsi::host_line(index, layout));
            continue;
        }
        let function = Sysfs::system().pci_function(bdf)?;
        if DeviceType::of(&function) != Some(DeviceType::Scsi) {
            return Err(format!("{bdf} is not a virtio-scsi function").into());
        }
        let progress = ProgressLine::start(bdf);
        let opened = VirtioScsiHost::open_with_scan(
            &function,
            &ScsiOptions {
                queues: Some(1),
                ring: crate::open::ring(),
                timeout: Some(timeout),
                ..Default::default()
            },
            ScanOptions {
                sequential,
                progress: Some(Arc::clone(&progress.progress)),
            },
        );
        drop(progress);
        let mut host = match opened {
            Ok(h) => h,
            Err(e) => {
                eprintln!("uvio: error: {bdf}: {e}");
                failed += 1;
                continue;
            }
        };
        for w in &host.scan_report().warnings {
            eprintln!("uvio: warning: {bdf}: {w}");
        }
        if json_output {
            scanned.push((index, bdf, host));
        } else {
            // lsscsi's order: by channel, target and (Linux) LUN. (A copy of the report:
            // gathering a LUN's facts asks the host, which needs it mutably.)
            let report = host.scan_report().clone();
            let mut luns: Vec<&ScannedLun> = report
                .luns
                .iter()
                .filter(|l| filter.matches(index, l))
                .collect();
            luns.sort_by_key(|l| (l.channel, l.target, l.linux_lun));
            for l in luns {
                let facts = lun_facts::gather(&mut host, l, wanted(layout), timeout);
                lines.extend(lsscsi::lun_lines(index, bdf, l, layout, &facts));
            }
        }
    }
    // The whole output in one buffer and one write (stdout is line-buffered: a write per
    // line otherwise).
    let output = if json_output {
        let hosts: Vec<HostJson> = scanned
            .iter()
            .map(|(index, bdf, host)| HostJson {
                bdf: *bdf,
                index: *index,
                report: host.scan_report(),
                filter,
            })
            .collect();
        json::document(&hosts)?
    } else {
        let mut text = String::new();
        if layout.classic {
            let what = if list_hosts { "hosts" } else { "devices" };
            let none = if lines.is_empty() { "none" } else { "" };
            text.push_str(&format!("Attached {what}: {none}\n"));
        }
        for line in &lines {
            text.push_str(line);
            text.push('\n');
        }
        text.into_bytes()
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&output)?;
    stdout.flush()?;
    if failed > 0 {
        return Err(format!("{failed} hosts could not be scanned").into());
    }
    Ok(())
}

/// A scan's progress on stderr, when stderr is a terminal and the scan takes more than a
/// second: one line, updated in place ("scanning BDF: target 37/256, 41 LUNs found"), and
/// cleared when the scan is over (the value is dropped).
struct ProgressLine {
    progress: Arc<ScanProgress>,
    stop: Arc<AtomicBool>,
    shower: Option<std::thread::JoinHandle<()>>,
}

impl ProgressLine {
    const AFTER: Duration = Duration::from_secs(1);
    const EVERY: Duration = Duration::from_millis(100);

    fn start(bdf: PciAddress) -> Self {
        let progress = Arc::new(ScanProgress::default());
        let stop = Arc::new(AtomicBool::new(false));
        let shower = std::io::stderr().is_terminal().then(|| {
            let (progress, stop) = (Arc::clone(&progress), Arc::clone(&stop));
            std::thread::spawn(move || {
                let begun = Instant::now();
                let mut shown = false;
                while !stop.load(Ordering::Acquire) && !progress.finished() {
                    if begun.elapsed() >= Self::AFTER {
                        eprint!(
                            "\rscanning {bdf}: target {}/{}, {} LUNs found\x1b[K",
                            progress.targets_done(),
                            progress.targets(),
                            progress.luns_found()
                        );
                        shown = true;
                    }
                    // Woken at once when the scan is over (see `drop`).
                    std::thread::park_timeout(Self::EVERY);
                }
                if shown {
                    eprint!("\r\x1b[K");
                }
            })
        });
        ProgressLine {
            progress,
            stop,
            shower,
        }
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(shower) = self.shower.take() {
            shower.thread().unpark();
            let _ = shower.join();
        }
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
