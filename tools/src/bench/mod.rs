//! `uvio bench`: a fio-like benchmark on the block API.
//!
//! Jobs come from fio-style options or job files ([`jobfile`], [`options`], fio's numbers in
//! [`crate::units`], its reserved words in [`keywords`]). Groups run one after the other, as
//! fio's `stonewall` orders them; each group of jobs opens its devices once, lays out its
//! clones ([`plan`]), gives every clone a thread and a hardware queue (sharing queues,
//! behind a lock, only when clones outnumber queues, and saying so), runs them together
//! ([`engine`]; where each thread runs: [`placement`]), writes the jobs' time-series logs in
//! fio's formats ([`logs`]), and reports in fio's normal, JSON or terse layout ([`output`]),
//! one report per reporting group (`new_group`); `--status-interval` reports while it runs.
//! The exit status is non-zero when any I/O or verification failed, or Ctrl-C / SIGTERM cut
//! the run short (the report then covers the run until the signal).

pub mod clock;
pub mod distribution;
pub mod engine;
pub mod jobfile;
pub mod keywords;
mod layout;
pub mod logs;
pub mod options;
pub mod output;
pub mod placement;
mod plan;
pub mod queue;
pub mod start;
pub mod stats;
pub mod verify;
pub mod workload;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use uvio::block::BlockDevice;
use uvio::dma::DmaBuf;
use uvio::virtio::plan::DepthRequest;

use crate::command::CmdResult;
use crate::open::{open_device, QueueRequest, Target};
use engine::{CloneSetup, Progress};
use jobfile::{Eta, Group, Invocation};
use layout::Layout;
use options::{Ddir, JobOptions};
use output::status::{StatusLine, Watched};
use output::{GroupReport, JobReport};
use plan::{plan_job, start_time};
use queue::{QueueHandle, Shared};
use stats::JobStats;
use uvio::device::OpenedDevice;
use workload::Rng;

/// fio's default random seed (`randseed`).
const DEFAULT_SEED: u64 = 0x89;

/// `uvio bench --help`: this, the option list from the table ([`options::help_listing`]),
/// then [`HELP_TAIL`].
const HELP_HEAD: &str = "\
usage: uvio bench [--output-format=normal|json|json+|terse] [--minimal] [--output=FILE]
                  [--eta=auto|always|never] [--eta-newline=T] [--status-interval=T]
                  [--parse-only] [GLOBAL OPTIONS] --name=JOB [JOB OPTIONS] [--name=JOB ...]
       uvio bench [--output-format=...] [--section=NAME]... JOBFILE...

fio's option names and semantics; options before the first --name are global. A job file is
fio's INI format ([global] and one section per job); each file is a group run after the one
before it. filename= names the device: a PCI BDF (0000:00:05.0), or BDF/C:T:L for a SCSI LUN.
Job files written for fio's other engines run on uvio's, with a note of what was replaced.

--status-interval=T prints the whole report every T while jobs run, then the final one; with
JSON each report is one object on one line (newline-delimited JSON: read it line by line).
--minimal (or --output-format=terse) prints fio's terse lines, version 3.

";
const HELP_TAIL: &str = "
Job threads busy-poll. A job with cpus_allowed= or cpumask= runs as fio places it
(cpus_allowed_policy=shared: any CPU of the set; split: one each, by thread number); any
other is pinned to one CPU, round robin over those the process may use (UVIO_BENCH_PIN=0:
not pinned). A thread pinned to one CPU times I/O with the TSC.

write_bw_log, write_iops_log, write_lat_log and write_hist_log write fio's log files when the
job ends (PREFIX_bw.N.log ..., N the thread's number; PREFIX_bw.log with per_job_logs=0), in
fio's line layout: fio2gnuplot, fio_generate_plots and fiologparser_hist read them. A log
keeps at most 1048576 lines (a line per I/O unless log_avg_msec=N) and says so if it drops
any.
";

/// Entry point: `args` are what follows `uvio bench`.
pub fn run(args: &[String]) -> CmdResult {
    let inv = jobfile::parse_args(args)?;
    if inv.show_help {
        print!("{HELP_HEAD}{}{HELP_TAIL}", options::help_listing());
        return Ok(());
    }
    if inv.show_version {
        println!("uvio-{}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    for g in &inv.groups {
        for j in &g.jobs {
            j.validate()
                .map_err(|e| format!("job `{}`: {e}", display_name(j)))?;
            let Some(filename) = &j.filename else {
                return Err(format!(
                    "job `{}`: filename= is required (a PCI BDF such as 0000:00:05.0, or \
                     BDF/C:T:L for a SCSI LUN)",
                    display_name(j)
                )
                .into());
            };
            // The address is checked here too, so --parse-only catches a bad one.
            Target::from_str(filename)
                .map_err(|e| format!("job `{}`: filename={filename}: {e}", display_name(j)))?;
        }
    }
    for note in &inv.notes {
        eprintln!("uvio bench: note: {note}");
    }
    if inv.parse_only {
        for g in &inv.groups {
            for (j, report) in g.jobs.iter().zip(&g.reporting) {
                print!("{}", output::normal::job_start_line(j, *report, j.iodepth));
            }
        }
        return Ok(());
    }
    let mut out: Box<dyn Write> = match &inv.output {
        Some(path) => Box::new(
            std::fs::File::create(path).map_err(|e| format!("--output={}: {e}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // Ctrl-C stops the jobs (in-flight I/O drains) and the report covers the run so far.
    crate::interrupt::catch();
    // fio counts `startdelay` from its own start.
    let genesis = Instant::now();
    let mut reports = Vec::new();
    // fio numbers job threads over the whole run, from 1 (log file names, split CPUs).
    let mut threads_before = 0;
    for (index, group) in inv.groups.iter().enumerate() {
        if crate::interrupt::requested() {
            break;
        }
        let more = run_group(
            index,
            group,
            &inv,
            genesis,
            &mut threads_before,
            &reports,
            &mut out,
        )?;
        reports.extend(more);
    }
    write_reports(
        &mut out,
        &reports,
        &inv,
        (wall.as_secs() as i64, wall.as_millis() as u64),
    )?;
    // Failures: on stderr too, whatever the output format, and in the exit status.
    let mut failures = Vec::new();
    match crate::interrupt::cause() {
        Some(crate::interrupt::Cause::Removed(bdf)) => failures.push(format!(
            "the device {bdf} was removed (hot-unplug): the report covers the run until then"
        )),
        Some(crate::interrupt::Cause::Signal(signal)) => failures.push(format!(
            "terminated on signal {signal}: the report covers the run until then"
        )),
        None => {}
    }
    for g in &reports {
        for j in &g.jobs {
            if let Some(e) = &j.stats.first_error {
                failures.push(format!("job `{}`: I/O error: {e}", j.name));
            }
            if let Some(e) = &j.stats.log_error {
                failures.push(format!("job `{}`: writing its log: {e}", j.name));
            }
            if let Some(bad) = &j.stats.first_bad_block {
                failures.push(format!(
                    "job `{}`: {} bad block(s); first: {bad}",
                    j.name, j.stats.verify_failures
                ));
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n").into())
    }
}

fn display_name(j: &JobOptions) -> &str {
    if j.name.is_empty() {
        "(unnamed)"
    } else {
        &j.name
    }
}

/// Whether jobs prepare requests ahead in spare tags (`UVIO_BENCH_STAGE=0` turns it off, to
/// measure what it gains).
fn staging_enabled() -> bool {
    std::env::var("UVIO_BENCH_STAGE").map_or(true, |v| v != "0")
}

/// A disk a job names (a virtio-blk function or a LUN of a SCSI host) and the PCI function
/// whose queues carry its requests.
struct GroupDisk {
    device: BlockDevice,
    function: String,
}

/// Random bytes for the write buffers of jobs without verification (fio's default).
fn scramble(bufs: &mut [DmaBuf], seed: u64) {
    let mut rng = Rng::new(seed);
    for b in bufs {
        for chunk in b.as_mut_slice().chunks_mut(8) {
            let v = rng.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// The most I/Os a job clone can complete (its log buffers' size), when that is known: a job
/// bounded by size, not by time; its verify pass reads back what it wrote.
fn max_ios(opts: &JobOptions, io_size: u64) -> Option<u64> {
    if opts.time_based || opts.runtime.is_some() {
        return None;
    }
    let smallest = Ddir::ALL
        .into_iter()
        .filter(|d| opts.rw.has(*d))
        .map(|d| opts.block_sizes(d).min())
        .min()
        .unwrap_or(1)
        .max(1);
    let passes = if opts.verify.is_some() && opts.do_verify {
        2
    } else {
        1
    };
    Some(
        (io_size / smallest)
            .saturating_add(1)
            .saturating_mul(u64::from(opts.loops.max(1)))
            .saturating_mul(passes),
    )
}

fn now_ms() -> (i64, u64) {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (t.as_secs() as i64, t.as_millis() as u64)
}

/// Opens the devices of one group (`index`: the how-manieth of the invocation), runs its
/// jobs together, writes their logs, and returns the reports of its reporting groups.
/// `threads_before`: job threads of the groups before (counted on by this one's);
/// `earlier`: their reports (which a `--status-interval` report shows too).
#[allow(clippy::too_many_arguments)]
fn run_group(
    index: usize,
    group: &Group,
    inv: &Invocation,
    genesis: Instant,
    threads_before: &mut usize,
    earlier: &[GroupReport],
    out: &mut Box<dyn Write>,
) -> Result<Vec<GroupReport>, Box<dyn std::error::Error>> {
    let jobs: Vec<Arc<JobOptions>> = group.jobs.iter().cloned().map(Arc::new).collect();
    // Each PCI function is opened once, with all its queues, for every job that names it
    // or one of its LUNs: the LUNs of a SCSI host share its queues and tags, as blk-mq's
    // shared tag set does, each request naming its LUN's unit.
    let mut functions: BTreeMap<String, OpenedDevice> = BTreeMap::new();
    let mut disks: BTreeMap<String, GroupDisk> = BTreeMap::new();
    // Tags per hardware queue: as many as the group can have in flight on the function (every
    // clone's iodepth, whichever queue it lands on), not the whole ring. Spare ring
    // descriptors let requests go in direct chains: an indirect table costs the device an
    // extra translated mapping per request (see `SplitQueue::add`).
    let targets: Vec<(String, Target)> = jobs
        .iter()
        .map(|j| {
            let name = j.filename.clone().unwrap_or_default();
            Target::from_str(&name)
                .map(|target| (name.clone(), target))
                .map_err(|e| format!("job `{}`: filename={name}: {e}", display_name(j)))
        })
        .collect::<Result<_, _>>()?;
    let mut wanted_depth: BTreeMap<String, u64> = BTreeMap::new();
    // A function's queues take the shortest request deadline its jobs ask for.
    let mut timeout: BTreeMap<String, Duration> = BTreeMap::new();
    for (j, (_, target)) in jobs.iter().zip(&targets) {
        let function = target.bdf.to_string();
        if let Some(t) = j.io_timeout {
            let shortest = timeout.entry(function.clone()).or_insert(t);
            *shortest = (*shortest).min(t);
        }
        *wanted_depth.entry(function).or_default() +=
            u64::from(j.iodepth.max(1)) * u64::from(j.numjobs.max(1));
    }
    for (j, (name, target)) in jobs.iter().zip(&targets) {
        if disks.contains_key(name) {
            continue;
        }
        let target = *target;
        let function = target.bdf.to_string();
        let device = match functions.get(&function) {
            Some(opened) => opened
                .other_lun(target)
                .map_err(|e| format!("job `{}`: opening {name}: {e}", display_name(j)))?,
            None => {
                let depth = wanted_depth
                    .get(&function)
                    .map(|&d| u16::try_from(d).unwrap_or(u16::MAX));
                // As many spare tags again, where the ring has direct slots for them: a job
                // prepares its next requests in them while the device works (see the engine).
                let spare = if staging_enabled() {
                    depth.unwrap_or(0)
                } else {
                    0
                };
                // Only tags whose chains fit the ring directly (see `DepthRequest`): a
                // deeper iodepth runs at that depth, with the note below.
                let opened = open_device(
                    target,
                    QueueRequest {
                        queues: None,
                        depth: DepthRequest {
                            depth,
                            spare,
                            direct_only: true,
                        },
                        timeout: timeout.get(&function).copied(),
                    },
                )
                .map_err(|e| format!("job `{}`: opening {name}: {e}", display_name(j)))?;
                let device = opened.device.clone();
                functions.insert(function.clone(), opened);
                device
            }
        };
        disks.insert(name.clone(), GroupDisk { device, function });
    }
    let mut planned = Vec::new();
    for (i, (j, (name, _))) in jobs.iter().zip(&targets).enumerate() {
        planned.extend(plan_job(i, j, name, &disks[name].device)?);
    }

    // Queues: one per clone while they last; beyond that clones share, round robin.
    let mut handles: Vec<Option<QueueHandle>> = (0..planned.len()).map(|_| None).collect();
    let mut notes = Vec::new();
    for (function, dev) in functions.iter_mut() {
        let users: Vec<usize> = (0..planned.len())
            .filter(|&i| disks[&planned[i].target].function == *function)
            .collect();
        let queues = std::mem::take(&mut dev.queues);
        let nq = queues.len();
        if nq == 0 {
            return Err(format!("{function} has no hardware queue").into());
        }
        if users.len() > nq {
            notes.push(format!(
                "uvio: {} threads on {function}, which has {nq} hardware queue(s): queues are \
                 shared (behind a lock) by up to {} threads each",
                users.len(),
                users.len().div_ceil(nq)
            ));
        }
        for (q, queue) in queues.into_iter().enumerate() {
            let mine: Vec<usize> = users.iter().copied().skip(q).step_by(nq).collect();
            match mine.len() {
                0 => {}
                1 => handles[mine[0]] = Some(QueueHandle::Owned(queue.with_context())),
                n => {
                    let shared = Shared::new(queue, n);
                    for (slot, &u) in mine.iter().enumerate() {
                        handles[u] = Some(QueueHandle::Shared(Arc::clone(&shared), slot));
                    }
                }
            }
        }
    }

    let layouts: Vec<Layout> = planned
        .iter()
        .zip(&handles)
        .map(|(p, h)| Layout::of(p, h.as_ref()))
        .collect();
    for (p, l) in planned.iter().zip(&layouts) {
        // Once a job, as its clones have the same layout.
        if p.clone == 0 && l.outstanding() < p.opts.iodepth {
            notes.push(format!(
                "uvio bench: job `{}`: iodepth={} exceeds the {} tags of {}'s queue; running at \
                 iodepth={}",
                display_name(&p.opts),
                p.opts.iodepth,
                l.depth,
                p.target,
                l.depth
            ));
        }
    }

    // Start-up lines, as fio prints them.
    if inv.formats.normal {
        let mut head = String::new();
        let mut last_job = usize::MAX;
        for (i, p) in planned.iter().enumerate() {
            if p.job != last_job {
                head += &output::normal::job_start_line(
                    &p.opts,
                    group.reporting[p.job],
                    layouts[i].outstanding(),
                );
                last_job = p.job;
            } else if p.clone == 1 {
                head += "...\n";
            }
        }
        if index == 0 {
            head += &format!("uvio-{}\n", env!("CARGO_PKG_VERSION"));
        }
        let n = planned.len();
        head += &format!("Starting {n} thread{}\n", if n == 1 { "" } else { "s" });
        for note in &notes {
            head += note;
            head.push('\n');
        }
        out.write_all(head.as_bytes())?;
        out.flush()?;
    } else {
        for note in &notes {
            eprintln!("{note}");
        }
    }

    // Buffers and threads.
    let cpus = crate::cpu::allowed_cpus();
    let pin = std::env::var("UVIO_BENCH_PIN").map_or(true, |v| v != "0");
    let gate = start::StartGate::new();
    // `--status-interval`: a slot per clone for its figures, and the request number.
    let snapshot_request = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let snapshots: Vec<Arc<engine::Snapshot>> = match inv.status_interval {
        Some(_) => planned
            .iter()
            .map(|_| Arc::new(engine::Snapshot::new()))
            .collect(),
        None => Vec::new(),
    };
    let (recover_tx, recover_rx) = std::sync::mpsc::channel::<engine::RecoverRequest>();
    let mut setups = Vec::new();
    let mut watched = Vec::new();
    for (thread, (p, handle)) in planned.iter().zip(handles).enumerate() {
        let disk = &disks[&p.target];
        let dma = &functions[&disk.function].dma;
        let max_bs = Ddir::ALL
            .into_iter()
            .filter(|x| p.opts.rw.has(*x))
            .map(|x| p.opts.block_sizes(x).max())
            .max()
            .unwrap_or(4096) as usize;
        let Layout {
            depth,
            stage,
            backlog,
        } = layouts[thread];
        // Room for the status byte after each buffer: a virtio-blk read is then two
        // descriptors (header; data and status) instead of three, one fewer for the device
        // to fetch, map and unmap (docs/benchmarks.md, tenth session).
        let mut buffers = dma.alloc_bufs_with_status_room((depth + stage) as usize, max_bs)?;
        if p.opts.verify.is_none() && p.opts.rw.has(Ddir::Write) {
            scramble(&mut buffers, p.seed);
        }
        let progress = Arc::new(Progress::default());
        watched.push(Watched {
            opts: Arc::clone(&p.opts),
            progress: Arc::clone(&progress),
            io_size: if p.opts.time_based { 0 } else { p.io_size },
        });
        setups.push(CloneSetup {
            opts: Arc::clone(&p.opts),
            thread: thread as u32,
            region_start: p.region_start,
            region_len: p.region_len,
            io_size: p.io_size,
            depth,
            stage,
            backlog,
            seed: p.seed,
            buffers,
            queue: handle.ok_or("a job clone got no hardware queue")?,
            unit: disk.device.unit(),
            progress,
            start: gate.ticket(),
            start_at: start_time(&p.opts, p.seed, genesis),
            placement: placement::Placement::of(
                &p.opts,
                *threads_before + thread + 1,
                thread,
                &cpus,
                pin,
            ),
            snapshot: snapshots.get(thread).map(|slot| engine::SnapshotLink {
                request: Arc::clone(&snapshot_request),
                slot: Arc::clone(slot),
            }),
            logs: logs::JobLogs::new(
                &p.opts,
                max_ios(&p.opts, p.io_size),
                p.opts.runtime.map(|r| r.as_millis() as u64),
            ),
            recovery: Some(engine::RecoveryLink {
                tx: recover_tx.clone(),
                function: disk.function.clone(),
                lun: Target::from_str(&p.target)
                    .ok()
                    .and_then(|t| t.lun)
                    .map(|(_, t, l)| (t, l)),
            }),
        });
    }
    let show_status = match inv.eta {
        Eta::Always => true,
        Eta::Never => false,
        Eta::Auto => std::io::stderr().is_terminal(),
    };
    let (start_secs, start_ms) = now_ms();
    let started = Instant::now();
    // Job threads hold the only senders from here: the recovery thread ends with them.
    drop(recover_tx);
    let mut results: Vec<engine::CloneResult> = std::thread::scope(|scope| {
        // Timed-out requests are recovered here, off the job threads and the status line:
        // ABORT TASK waits for the device to answer (QEMU answers when the aborted request
        // ends), and the other jobs of the group must not wait with it.
        let opened = &mut functions;
        std::thread::Builder::new()
            .name("bench-recovery".into())
            .spawn_scoped(scope, move || {
                for r in recover_rx {
                    if let Some(device) = opened.get_mut(&r.function) {
                        let how = device.recover_lun(r.lun, r.queue, r.tag);
                        let lun = r
                            .lun
                            .map(|(t, l)| format!("/0:{t}:{l}"))
                            .unwrap_or_default();
                        eprintln!("uvio: {}{lun}: {}; {how}", r.function, r.what);
                    }
                }
            })?;
        // Each job thread says when it is done. The main thread blocks on that (waking only
        // for the once-a-second status line): a thread that woke every few milliseconds
        // would cost the polling threads dearly, as every guest vCPU that wakes takes a host
        // core from the emulator that completes the I/O (measured: a 20 Hz sleeper on the
        // other vCPU took libblkio's iodepth-1 IOPS from 92k to 72k).
        let (finished_tx, finished_rx) = std::sync::mpsc::channel::<()>();
        // All threads are spawned before any starts: if one cannot be, none runs, and the
        // ones started return at the start line (see `start`).
        let handles = start::start_threads(&gate, setups, |s| {
            let finished = finished_tx.clone();
            std::thread::Builder::new()
                .name(format!("bench-{}", s.opts.name))
                .spawn_scoped(scope, move || {
                    let stats = engine::run_clone(s);
                    let _ = finished.send(());
                    stats
                })
        })
        .map_err(std::io::Error::other)?;
        drop(finished_tx);
        let mut status = StatusLine::new(Instant::now());
        let second = Duration::from_secs(1);
        let mut next_line = Instant::now() + second;
        let mut next_report = inv.status_interval.map(|t| Instant::now() + t);
        let mut next_newline = inv.eta_newline.map(|t| Instant::now() + t);
        let mut running = handles.len();
        while running > 0 {
            let mut wake = Instant::now() + Duration::from_secs(3600);
            if show_status {
                wake = wake.min(next_line);
            }
            if let Some(t) = next_report {
                wake = wake.min(t);
            }
            match finished_rx.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(()) => running -= 1,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            if let (Some(at), Some(every)) = (next_report, inv.status_interval) {
                if now >= at {
                    let stats = snapshot_stats(&snapshot_request, &snapshots);
                    let mut all = earlier.to_vec();
                    all.extend(group_reports(
                        &planned,
                        stats,
                        group,
                        (start_secs, start_ms),
                        started.elapsed(),
                    ));
                    if let Err(e) = write_reports(&mut **out, &all, inv, now_ms()) {
                        eprintln!("uvio bench: --status-interval report: {e}");
                    }
                    next_report = Some(at + every);
                }
            }
            if show_status && now >= next_line {
                let line = status.render(&watched);
                let mut text = status.overwrite(&line);
                // `--eta-newline`: the line stays, and the next starts below it.
                if let (Some(at), Some(every)) = (next_newline, inv.eta_newline) {
                    if now >= at {
                        text.push('\n');
                        status.newline();
                        next_newline = Some(at + every);
                    }
                }
                let _ = std::io::stderr().write_all(text.as_bytes());
                next_line += second;
            }
        }
        if show_status {
            let _ = std::io::stderr().write_all(status.clear().as_bytes());
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| std::io::Error::other("a job thread panicked"))
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    let elapsed = started.elapsed();
    drop(functions);
    // The logs, thread by thread, as fio writes them when its jobs end. One that cannot be
    // written fails the run's exit status, not its report.
    for (thread, r) in results.iter_mut().enumerate() {
        let Some(logs) = &r.logs else { continue };
        let number = *threads_before + thread + 1;
        let written = match logs.write(number) {
            Ok(written) => written,
            Err(e) => {
                r.stats.log_error = Some(e.to_string());
                continue;
            }
        };
        for (path, kept, dropped) in written.dropped {
            eprintln!(
                "uvio bench: {}: kept the first {kept} lines, {dropped} more did not fit in \
                 its buffer (log_avg_msec=N averages them into far fewer)",
                path.display()
            );
        }
    }
    *threads_before += planned.len();
    let results: Vec<JobStats> = results.into_iter().map(|r| r.stats).collect();

    Ok(group_reports(
        &planned,
        results,
        group,
        (start_secs, start_ms),
        elapsed,
    ))
}

/// Asks every job thread of the group for its figures so far and collects them: a thread
/// answers between two reaps; one that does not within 200 ms (asleep before its
/// `startdelay`, or ended) is shown as it last answered.
fn snapshot_stats(
    request: &std::sync::atomic::AtomicU64,
    slots: &[Arc<engine::Snapshot>],
) -> Vec<JobStats> {
    use std::sync::atomic::Ordering;
    let wanted = request.fetch_add(1, Ordering::Relaxed) + 1;
    let give_up = Instant::now() + Duration::from_millis(200);
    while Instant::now() < give_up
        && slots.iter().any(|s| {
            let a = s.answered.load(Ordering::Acquire);
            a != wanted && a != engine::Snapshot::FINAL
        })
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    slots
        .iter()
        .map(|s| s.stats.lock().map(|g| g.clone()).unwrap_or_default())
        .collect()
}

/// The reports of a group's reporting groups, from its clones' figures (`new_group` splits
/// a group that runs together; `group_reporting` merges one's jobs). `start`: the group's
/// start (s, ms since the epoch), for jobs that never began.
fn group_reports(
    planned: &[plan::Planned],
    results: Vec<JobStats>,
    group: &Group,
    start: (i64, u64),
    elapsed: Duration,
) -> Vec<GroupReport> {
    let reports: Vec<(usize, JobReport)> = planned
        .iter()
        .zip(results)
        .map(|(p, stats)| {
            // A job's own start (after a startdelay); the group's for one that never began.
            let (secs, ms) = match stats.start_ms {
                0 => start,
                ms => ((ms / 1000) as i64, ms),
            };
            let report = JobReport {
                name: p.opts.name.clone(),
                opts: Arc::clone(&p.opts),
                filename: p.target.clone(),
                stats,
                start_secs: secs,
                start_ms: ms,
            };
            (group.reporting[p.job], report)
        })
        .collect();
    let mut ids: Vec<usize> = group.reporting.clone();
    ids.dedup();
    let mut out = Vec::new();
    for id in ids {
        let mut jobs: Vec<JobReport> = reports
            .iter()
            .filter(|(r, _)| *r == id)
            .map(|(_, j)| j.clone())
            .collect();
        let merge = jobs.iter().any(|j| j.opts.group_reporting);
        if merge && jobs.len() > 1 {
            let mut merged = jobs.remove(0);
            for r in &jobs {
                merged.stats.merge(&r.stats);
            }
            // The merged group started when its first job did.
            if merged.stats.start_ms != 0 {
                merged.start_ms = merged.stats.start_ms;
                merged.start_secs = (merged.start_ms / 1000) as i64;
            }
            jobs = vec![merged];
        }
        out.push(GroupReport {
            id,
            jobs,
            global: group.global.clone(),
            elapsed,
        });
    }
    out
}

/// Writes the reports in the invocation's formats, `time` (s, ms since the epoch) being the
/// JSON's `time`: at the end of the run, and every `--status-interval`. With
/// `--status-interval` each JSON object is one line (newline-delimited JSON), so that a
/// script reads one report per line; without, the one object is indented as fio's.
fn write_reports(
    out: &mut dyn Write,
    reports: &[GroupReport],
    inv: &Invocation,
    time: (i64, u64),
) -> std::io::Result<()> {
    // fio's order: terse, JSON, normal... but uvio has always put normal before JSON.
    if inv.formats.terse {
        out.write_all(output::terse::render(reports).as_bytes())?;
    }
    if inv.formats.normal {
        out.write_all(output::normal::render(reports).as_bytes())?;
    }
    if inv.formats.json {
        let doc = output::json::render(reports, inv.formats.json_plus, time.0, time.1);
        let text = if inv.status_interval.is_some() {
            serde_json::to_string(&doc)
        } else {
            serde_json::to_string_pretty(&doc)
        }
        .map_err(std::io::Error::other)?;
        writeln!(out, "{text}")?;
    }
    out.flush()
}
