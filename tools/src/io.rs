//! dd-like tools on the block API: read, write, flush, discard, write-zeroes.
//!
//! Transfers longer than one request allows are split into chunks of the device's maximum
//! transfer size and kept several in flight; output is written in order.

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use uvio::block::{Data, Op, Request};
use uvio::dma::DmaBuf;

use crate::finished::{poll_into, Finished};
use crate::open::{open, Opened, Target};
use crate::CmdResult;

/// Requests kept in flight by the copy tools.
const WINDOW: usize = 8;

fn report(verb: &str, bytes: u64, target: Target, offset: u64, start: Instant) {
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{verb} {bytes} bytes at offset {offset} of {target} in {secs:.3} s ({:.1} MiB/s)",
        bytes as f64 / (1 << 20) as f64 / secs.max(1e-9)
    );
}

fn buffers(
    dev: &Opened,
    count: usize,
    size: u64,
) -> Result<Vec<DmaBuf>, Box<dyn std::error::Error>> {
    let size = size as usize;
    Ok(dev.dma.alloc(size * count)?.into_bufs(size))
}

/// The chunk a completion's cookie names; a cookie the tool never gave is an error, not a
/// panic.
fn chunk_of(chunks: &[(u64, u64)], cookie: u64) -> Result<(u64, u64), String> {
    usize::try_from(cookie)
        .ok()
        .and_then(|i| chunks.get(i).copied())
        .ok_or_else(|| format!("a completion with unknown cookie {cookie}"))
}

fn wait_one(
    dev: &mut Opened,
    done: &mut Vec<Finished>,
) -> Result<Finished, Box<dyn std::error::Error>> {
    loop {
        if let Some(c) = done.pop() {
            return Ok(c);
        }
        poll_into(&mut dev.queue, done);
        std::hint::spin_loop();
    }
}

pub fn read(target: Target, offset: u64, length: u64, output: Option<PathBuf>) -> CmdResult {
    let mut dev = open(target, WINDOW as u16)?;
    let limits = dev.device.limits.clone();
    limits.check_extent(Op::Read, offset, length, dev.device.capacity())?;
    let mut out: Box<dyn Write> = match &output {
        Some(path) => {
            Box::new(File::create(path).map_err(|e| format!("creating {}: {e}", path.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let chunk = limits.max_transfer_bytes;
    let chunks: Vec<(u64, u64)> = limits.chunks(offset, length, chunk).collect();
    let mut free = buffers(&dev, WINDOW, chunk)?;
    // Completed chunks wait here (by sequence number) until every earlier one is written.
    let mut parked: Vec<Option<DmaBuf>> = (0..chunks.len()).map(|_| None).collect();
    let mut done = Vec::with_capacity(WINDOW);
    let (mut next_submit, mut next_write) = (0usize, 0usize);
    let start = Instant::now();
    while next_write < chunks.len() {
        while next_submit < chunks.len() && !free.is_empty() {
            let (at, len) = chunks[next_submit];
            let mut buf = free.pop().ok_or("no buffer")?;
            buf.truncate(len as usize);
            dev.queue
                .submit(dev.unit, Request::read(at, buf), next_submit as u64)
                .map_err(|r| r.error)?;
            next_submit += 1;
        }
        dev.queue.kick();
        let c = wait_one(&mut dev, &mut done)?;
        let (at, _) = chunk_of(&chunks, c.cookie)?;
        c.result.map_err(|e| format!("read at offset {at}: {e}"))?;
        let Data::One(buf) = c.data else {
            return Err("completion without its buffer".into());
        };
        parked[c.cookie as usize] = Some(buf);
        while let Some(buf) = parked.get_mut(next_write).and_then(Option::take) {
            out.write_all(buf.as_slice())?;
            free.push(buf);
            next_write += 1;
        }
    }
    out.flush()?;
    report("read", length, target, offset, start);
    Ok(())
}

pub fn write(
    target: Target,
    offset: u64,
    input: Option<PathBuf>,
    length: Option<u64>,
) -> CmdResult {
    let mut dev = open(target, WINDOW as u16)?;
    let limits = dev.device.limits.clone();
    // Know the length before any I/O, so a bad length is refused up front.
    let (mut source, length): (Box<dyn Read>, u64) = match (&input, length) {
        (Some(path), len) => {
            let file = File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
            let size = file.metadata()?.len();
            let len = len.unwrap_or(size);
            if len > size {
                return Err(format!(
                    "{} holds {size} bytes, fewer than --length {len}",
                    path.display()
                )
                .into());
            }
            (Box::new(file), len)
        }
        (None, Some(len)) => (Box::new(std::io::stdin().lock()), len),
        (None, None) => {
            let mut all = Vec::new();
            std::io::stdin().lock().read_to_end(&mut all)?;
            let len = all.len() as u64;
            (Box::new(std::io::Cursor::new(all)), len)
        }
    };
    limits.check_extent(Op::Write, offset, length, dev.device.capacity())?;
    let chunk = limits.max_transfer_bytes;
    let chunks: Vec<(u64, u64)> = limits.chunks(offset, length, chunk).collect();
    let mut free = buffers(&dev, WINDOW, chunk)?;
    let mut done = Vec::with_capacity(WINDOW);
    let mut completed = 0;
    let mut next = 0;
    let start = Instant::now();
    while completed < chunks.len() {
        while next < chunks.len() && !free.is_empty() {
            let (at, len) = chunks[next];
            let mut buf = free.pop().ok_or("no buffer")?;
            buf.truncate(len as usize);
            source
                .read_exact(buf.as_mut_slice())
                .map_err(|e| format!("input ended before {length} bytes: {e}"))?;
            dev.queue
                .submit(dev.unit, Request::write(at, buf), next as u64)
                .map_err(|r| r.error)?;
            next += 1;
        }
        dev.queue.kick();
        let c = wait_one(&mut dev, &mut done)?;
        let (at, _) = chunk_of(&chunks, c.cookie)?;
        c.result.map_err(|e| format!("write at offset {at}: {e}"))?;
        if let Data::One(buf) = c.data {
            free.push(buf);
        }
        completed += 1;
    }
    report("wrote", length, target, offset, start);
    Ok(())
}

pub fn flush(target: Target) -> CmdResult {
    let mut dev = open(target, 1)?;
    let (result, _) = dev.queue.run_one(dev.unit, Request::flush());
    result?;
    eprintln!("flushed {target}");
    Ok(())
}

/// Discard or write zeroes over a range, split at the device's limit for the operation.
pub fn range_op(target: Target, op: Op, offset: u64, length: u64) -> CmdResult {
    let mut dev = open(target, 1)?;
    let limits = dev.device.limits.clone();
    let op_limits = match op {
        Op::Discard => limits.discard,
        _ => limits.write_zeroes,
    }
    .ok_or_else(|| format!("{} does not support {}", target.bdf, op.name()))?;
    limits.check_extent(op, offset, length, dev.device.capacity())?;
    let start = Instant::now();
    for (at, len) in limits.chunks(offset, length, op_limits.max_bytes) {
        let request = match op {
            Op::Discard => Request::discard(at, len),
            _ => Request::write_zeroes(at, len),
        };
        dev.queue
            .run_one(dev.unit, request)
            .0
            .map_err(|e| format!("{} at offset {at}: {e}", op.name()))?;
    }
    report(
        if op == Op::Discard {
            "discarded"
        } else {
            "zeroed"
        },
        length,
        target,
        offset,
        start,
    );
    Ok(())
}
