//! `uvio verify`: a data-integrity stress test. One thread per hardware queue, each keeping
//! `depth` reads and writes in flight over random blocks of its own slice of the disk, and
//! checking every completion: the cookie must name a request in flight (nothing duplicated
//! or invented), a read must return the block last written there (nothing misdirected or
//! stale), and everything submitted must complete (nothing lost).

use std::time::{Duration, Instant};

use serde::Serialize;
use uvio::block::{Data, Op, Request, Unit};
use uvio::device::AnyQueue;
use uvio::dma::DmaBuf;
use uvio::virtio::plan::DepthRequest;

use crate::finished::{poll_into, Finished};
use crate::open::{open_device, QueueRequest, Target};
use crate::xorshift::XorShift;
use crate::CmdResult;

const MAGIC: u64 = 0x7576_696f_7665_7269; // "uvioveri"
/// How long the last completions may take before they count as lost.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Fills a block with its header (magic, offset, generation) and bytes derived from both.
fn fill(buf: &mut [u8], offset: u64, generation: u64) {
    buf[0..8].copy_from_slice(&MAGIC.to_le_bytes());
    buf[8..16].copy_from_slice(&offset.to_le_bytes());
    buf[16..24].copy_from_slice(&generation.to_le_bytes());
    let mut rng = XorShift(offset ^ generation.rotate_left(32) ^ MAGIC);
    for chunk in buf[24..].chunks_mut(8) {
        let v = rng.next().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

#[derive(Debug, Default, Serialize)]
struct QueueReport {
    queue: u16,
    submitted: u64,
    completed: u64,
    notifications: u64,
    reads_verified: u64,
    writes: u64,
    failures: Vec<String>,
}

struct Slot {
    block: usize,
    op: Op,
    generation: u64,
}

/// Where one worker does its I/O.
struct Region {
    unit: Unit,
    first_block: u64,
    blocks: usize,
    bs: usize,
}

fn worker(
    mut queue: AnyQueue<u64>,
    buffers: Vec<DmaBuf>,
    region: Region,
    ios: u64,
    seed: u64,
) -> QueueReport {
    let Region {
        unit,
        first_block,
        blocks,
        bs,
    } = region;
    let depth = buffers.len();
    let mut report = QueueReport {
        queue: queue.index(),
        ..Default::default()
    };
    // The queue may have served requests before (the serial number at open).
    let before = queue.stats();
    let mut rng =
        XorShift(seed ^ (u64::from(queue.index()) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    // Generation last written to each block (0: never written by us, so not checked).
    let mut written = vec![0u64; blocks];
    let mut busy = vec![false; blocks];
    let mut slots: Vec<Option<Slot>> = (0..depth).map(|_| None).collect();
    let mut free: Vec<DmaBuf> = buffers;
    let mut free_slots: Vec<usize> = (0..depth).rev().collect();
    let mut done: Vec<Finished> = Vec::with_capacity(depth);
    let mut next_generation = 1u64;
    let mut issued = 0u64;
    let fail = |report: &mut QueueReport, what: String| {
        if report.failures.len() < 20 {
            report.failures.push(what);
        }
    };
    let mut last_progress = Instant::now();
    while report.completed < issued || issued < ios {
        // Top up to `depth` in flight.
        while issued < ios {
            let Some(slot) = free_slots.pop() else { break };
            let block = loop {
                let b = (rng.next() % blocks as u64) as usize;
                if !busy[b] {
                    break b;
                }
            };
            let mut buf = free.pop().expect("one buffer per free slot");
            let offset = (first_block + block as u64) * bs as u64;
            let write = written[block] == 0 || rng.next().is_multiple_of(2);
            let (op, generation) = if write {
                let g = next_generation;
                next_generation += 1;
                fill(buf.as_mut_slice(), offset, g);
                (Op::Write, g)
            } else {
                buf.as_mut_slice().fill(0xa5);
                (Op::Read, written[block])
            };
            let request = if write {
                Request::write(offset, buf)
            } else {
                Request::read(offset, buf)
            };
            match queue.submit(unit, request, slot as u64) {
                Ok(_) => {
                    busy[block] = true;
                    slots[slot] = Some(Slot {
                        block,
                        op,
                        generation,
                    });
                    issued += 1;
                }
                Err(rejected) => {
                    fail(&mut report, format!("submit refused: {}", rejected.error));
                    return report;
                }
            }
        }
        queue.kick();
        poll_into(&mut queue, &mut done);
        if !done.is_empty() {
            last_progress = Instant::now();
        } else if last_progress.elapsed() > DRAIN_TIMEOUT {
            let lost = issued - report.completed;
            fail(
                &mut report,
                format!("{lost} requests never completed (lost)"),
            );
            break;
        }
        for c in done.drain(..) {
            report.completed += 1;
            let Some(slot) = slots.get_mut(c.cookie as usize).and_then(Option::take) else {
                fail(
                    &mut report,
                    format!(
                        "completion for cookie {} which is not in flight (duplicated or invented)",
                        c.cookie
                    ),
                );
                continue;
            };
            free_slots.push(c.cookie as usize);
            busy[slot.block] = false;
            let Data::One(buf) = c.data else {
                fail(&mut report, "completion without its buffer".into());
                continue;
            };
            let offset = (first_block + slot.block as u64) * bs as u64;
            match (&c.result, slot.op) {
                (Err(e), _) => fail(&mut report, format!("{} at {offset}: {e}", slot.op.name())),
                (Ok(_), Op::Write) => {
                    written[slot.block] = slot.generation;
                    report.writes += 1;
                }
                (Ok(_), _) => {
                    let data = buf.as_slice();
                    let at = u64::from_le_bytes(data[8..16].try_into().expect("8 bytes"));
                    let generation = u64::from_le_bytes(data[16..24].try_into().expect("8 bytes"));
                    if at != offset {
                        fail(
                            &mut report,
                            format!(
                                "read at {offset} returned the block written at {at} (misdirected)"
                            ),
                        );
                    } else if generation != slot.generation {
                        fail(&mut report, format!("read at {offset} returned generation {generation}, expected {} (stale)", slot.generation));
                    } else {
                        let mut expected = vec![0u8; bs];
                        fill(&mut expected, offset, slot.generation);
                        if expected != data {
                            fail(
                                &mut report,
                                format!("read at {offset}: payload differs from what was written"),
                            );
                        } else {
                            report.reads_verified += 1;
                        }
                    }
                }
            }
            free.push(buf);
        }
    }
    let stats = queue.stats();
    report.submitted = stats.submitted - before.submitted;
    report.notifications = stats.notifications - before.notifications;
    report
}

pub fn run(
    target: Target,
    queues: Option<u16>,
    depth: Option<u16>,
    ios: u64,
    bs: u64,
    seed: u64,
    json: bool,
) -> CmdResult {
    let opened = open_device(
        target,
        QueueRequest {
            queues,
            depth: DepthRequest {
                depth,
                ..Default::default()
            },
        },
    )?;
    let device = opened.device.clone();
    let bs = bs.max(u64::from(device.limits.logical_block_size));
    if !bs.is_multiple_of(u64::from(device.limits.logical_block_size)) || bs < 64 {
        return Err(format!(
            "--bs {bs} is not a multiple of the {}-byte block size",
            device.limits.logical_block_size
        )
        .into());
    }
    let hw_queues = opened.queues;
    let unit = opened.device.unit();
    let nr = hw_queues.len() as u64;
    let total_blocks = device.capacity() / bs;
    let per_queue = total_blocks / nr;
    let depth = usize::from(device.queue_depth);
    if per_queue < depth as u64 * 2 {
        return Err(format!(
            "the disk is too small for {nr} queues of depth {depth} at {bs}-byte blocks"
        )
        .into());
    }
    let start = Instant::now();
    let mut reports = Vec::new();
    std::thread::scope(|scope| -> CmdResult {
        let mut handles = Vec::new();
        for (i, queue) in hw_queues.into_iter().enumerate() {
            let buffers = opened
                .dma
                .alloc(depth * bs as usize)?
                .into_bufs(bs as usize);
            let first = i as u64 * per_queue;
            handles.push(scope.spawn(move || {
                let region = Region {
                    unit,
                    first_block: first,
                    blocks: per_queue as usize,
                    bs: bs as usize,
                };
                worker(queue.with_context(), buffers, region, ios, seed)
            }));
        }
        for h in handles {
            reports.push(h.join().map_err(|_| "a verify thread panicked")?);
        }
        Ok(())
    })?;
    let failures: usize = reports.iter().map(|r| r.failures.len()).sum();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "device": target.bdf.to_string(),
                "queues": reports,
                "block_size": bs,
                "depth": depth,
                "seconds": start.elapsed().as_secs_f64(),
                "ok": failures == 0,
            }))?
        );
    } else {
        println!(
            "{:>5} {:>10} {:>10} {:>10} {:>10} {:>8}",
            "queue", "submitted", "completed", "writes", "verified", "notifies"
        );
        for r in &reports {
            println!(
                "{:>5} {:>10} {:>10} {:>10} {:>10} {:>8}",
                r.queue, r.submitted, r.completed, r.writes, r.reads_verified, r.notifications
            );
            for f in &r.failures {
                println!("  FAIL: {f}");
            }
        }
    }
    if failures > 0 {
        return Err(format!("{failures} verification failures").into());
    }
    Ok(())
}
