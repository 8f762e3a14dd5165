//! `uvio verify`: a data-integrity stress test. One thread per hardware queue, each keeping
//! `depth` reads and writes in flight over random blocks of its own slice of the disk, and
//! checking every completion: the cookie must name a request in flight (nothing duplicated
//! or invented), a read must return the block last written there (nothing misdirected or
//! stale), and everything submitted must complete (nothing lost).

use std::convert::Infallible;
use std::time::{Duration, Instant};

use serde::Serialize;
use uvio::block::{Data, Op, Request, Unit};
use uvio::device::AnyQueue;
use uvio::dma::DmaBuf;
use uvio::virtio::plan::DepthRequest;

use crate::command::CmdResult;
use crate::finished::Finished;
use crate::inflight::{Freed, InFlight, Job, Round, Stop};
use crate::interrupt::Interrupted;
use crate::open::{open_device, QueueRequest, Target};
use crate::xorshift::XorShift;

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
    /// The worker stopped on SIGINT or SIGTERM, or because the device was removed.
    #[serde(skip)]
    interrupted: Option<Interrupted>,
}

impl QueueReport {
    /// Records a failure; the first 20 are kept.
    fn fail(&mut self, what: String) {
        if self.failures.len() < 20 {
            self.failures.push(what);
        }
    }
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

/// One worker's side of the in-flight loop: random reads and writes over its region, each
/// completion checked. A request's cookie is its slot (the index paired with its buffer).
struct Verifier {
    first_block: u64,
    bs: usize,
    rng: XorShift,
    /// Generation last written to each block (0: never written by us, so not checked).
    written: Vec<u64>,
    busy: Vec<bool>,
    slots: Vec<Option<Slot>>,
    next_generation: u64,
    report: QueueReport,
}

impl Verifier {
    fn offset(&self, block: usize) -> u64 {
        (self.first_block + block as u64) * self.bs as u64
    }

    /// Checks a read of `slot` that completed with `data`.
    fn check_read(&mut self, slot: &Slot, data: &[u8]) {
        let offset = self.offset(slot.block);
        // Blocks are at least 64 bytes (checked in `run`): the header is there.
        let at = u64::from_le_bytes(data[8..16].try_into().expect("8 bytes"));
        let generation = u64::from_le_bytes(data[16..24].try_into().expect("8 bytes"));
        if at != offset {
            self.report.fail(format!(
                "read at {offset} returned the block written at {at} (misdirected)"
            ));
        } else if generation != slot.generation {
            self.report.fail(format!(
                "read at {offset} returned generation {generation}, expected {} (stale)",
                slot.generation
            ));
        } else {
            let mut expected = vec![0u8; self.bs];
            fill(&mut expected, offset, slot.generation);
            if expected != data {
                self.report.fail(format!(
                    "read at {offset}: payload differs from what was written"
                ));
            } else {
                self.report.reads_verified += 1;
            }
        }
    }
}

impl Job for Verifier {
    type Buf = (usize, DmaBuf);
    /// Failures are counted in the report, never the end of the loop.
    type Error = Infallible;

    fn request(
        &mut self,
        _seq: u64,
        (slot, mut buf): Self::Buf,
    ) -> Result<(Request, u64), Infallible> {
        let blocks = self.busy.len();
        let block = loop {
            let b = (self.rng.next() % blocks as u64) as usize;
            if !self.busy[b] {
                break b;
            }
        };
        let offset = self.offset(block);
        let write = self.written[block] == 0 || self.rng.next().is_multiple_of(2);
        let (op, generation) = if write {
            let g = self.next_generation;
            self.next_generation += 1;
            fill(buf.as_mut_slice(), offset, g);
            (Op::Write, g)
        } else {
            buf.as_mut_slice().fill(0xa5);
            (Op::Read, self.written[block])
        };
        let request = if write {
            Request::write(offset, buf)
        } else {
            Request::read(offset, buf)
        };
        // Marked before the submission: a refused one ends the worker.
        self.busy[block] = true;
        self.slots[slot] = Some(Slot {
            block,
            op,
            generation,
        });
        Ok((request, slot as u64))
    }

    fn finished(&mut self, c: Finished) -> Result<Freed<Self::Buf>, Infallible> {
        self.report.completed += 1;
        let index = c.cookie as usize;
        let Some(slot) = self.slots.get_mut(index).and_then(Option::take) else {
            self.report.fail(format!(
                "completion for cookie {} which is not in flight (duplicated or invented)",
                c.cookie
            ));
            return Ok(Freed::Lost);
        };
        self.busy[slot.block] = false;
        let Data::One(buf) = c.data else {
            self.report.fail("completion without its buffer".into());
            return Ok(Freed::Lost);
        };
        match (&c.result, slot.op) {
            (Err(e), _) => {
                let offset = self.offset(slot.block);
                self.report
                    .fail(format!("{} at {offset}: {e}", slot.op.name()));
            }
            (Ok(_), Op::Write) => {
                self.written[slot.block] = slot.generation;
                self.report.writes += 1;
            }
            (Ok(_), _) => self.check_read(&slot, buf.as_slice()),
        }
        Ok(Freed::Now((index, buf)))
    }
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
    // The queue may have served requests before (the serial number at open).
    let before = queue.stats();
    let mut job = Verifier {
        first_block,
        bs,
        rng: XorShift(seed ^ (u64::from(queue.index()) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        written: vec![0u64; blocks],
        busy: vec![false; blocks],
        slots: (0..depth).map(|_| None).collect(),
        next_generation: 1,
        report: QueueReport {
            queue: queue.index(),
            ..Default::default()
        },
    };
    // Slot 0 goes with the last buffer, the first to be used.
    let pool = (0..depth).rev().zip(buffers).collect();
    let round = Round::All {
        stall: DRAIN_TIMEOUT,
    };
    let ran = InFlight::new((&mut queue, unit), pool).run(&mut job, ios, round);
    let mut report = job.report;
    match ran {
        Ok(()) => {}
        Err(Stop::Job(never)) => match never {},
        Err(Stop::Refused(e)) => {
            report.fail(format!("submit refused: {e}"));
            return report;
        }
        Err(stop @ (Stop::Stalled(_) | Stop::Reset(_))) => report.fail(stop.to_string()),
        Err(Stop::Interrupted(i)) => {
            report.interrupted = Some(i);
            return report;
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
            ..Default::default()
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
            // Half the buffers plain, half with room for the status byte after the data, so
            // that virtio-blk reads are checked in both framings (three descriptors, or two
            // with the status after the data). At depth 1, its one buffer has room.
            let bs = bs as usize;
            let plain = depth / 2;
            let mut buffers = opened.dma.alloc_bufs_with_status_room(depth - plain, bs)?;
            if plain > 0 {
                buffers.extend(opened.dma.alloc(plain * bs)?.into_bufs(bs));
            }
            let first = i as u64 * per_queue;
            handles.push(scope.spawn(move || {
                let region = Region {
                    unit,
                    first_block: first,
                    blocks: per_queue as usize,
                    bs,
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
    if let Some(cause) = reports
        .iter()
        .find_map(|r| r.interrupted.as_ref().map(|i| i.cause))
    {
        let in_flight = reports
            .iter()
            .filter_map(|r| r.interrupted.as_ref())
            .map(|i| i.in_flight)
            .sum();
        return Err(Interrupted { cause, in_flight }.into());
    }
    if failures > 0 {
        return Err(format!("{failures} verification failures").into());
    }
    Ok(())
}
