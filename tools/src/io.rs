//! dd-like tools on the block API: read, write, flush, discard, write-zeroes.
//!
//! Transfers longer than one request allows are split into chunks of the device's maximum
//! transfer size and kept several in flight; output is written in order.

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use uvio::block::{Data, IoError, Op, Request};
use uvio::dma::DmaBuf;

use crate::command::CmdResult;
use crate::finished::poll_into;
use crate::finished::Finished;
use crate::inflight::{Freed, InFlight, Job, Lane, Round, Stop};
use crate::open::{open, Opened, Target};

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

/// A transfer split into chunks of at most one request each: request `seq` moves chunk
/// `seq`, and its cookie is `seq`.
struct Chunks {
    op: Op,
    /// The device, as errors name it (a BDF, or `BDF/C:T:L` for a LUN).
    device: String,
    /// (offset, length) of each chunk.
    chunks: Vec<(u64, u64)>,
}

impl Chunks {
    fn new(dev: &Opened, op: Op, offset: u64, length: u64) -> Self {
        let limits = &dev.device.limits;
        let chunks = limits
            .chunks(offset, length, limits.max_transfer_bytes)
            .collect();
        Chunks {
            op,
            device: dev.device.name.clone(),
            chunks,
        }
    }

    fn count(&self) -> u64 {
        self.chunks.len() as u64
    }

    /// Chunk `seq`'s offset, and `buf` cut to its length.
    fn cut(&self, seq: u64, mut buf: DmaBuf) -> (u64, DmaBuf) {
        // The loop makes requests 0 to `count() - 1` only.
        let (at, len) = self.chunks[seq as usize];
        buf.truncate(len as usize);
        (at, buf)
    }

    /// The data of a finished chunk, or the error it ends the tool with. A cookie the tool
    /// never gave is an error, not a panic.
    fn check(&self, done: Finished) -> Result<Data, Box<dyn std::error::Error>> {
        let at = usize::try_from(done.cookie)
            .ok()
            .and_then(|i| self.chunks.get(i))
            .map(|&(at, _)| at)
            .ok_or_else(|| format!("a completion with unknown cookie {}", done.cookie))?;
        let what =
            |e: &IoError| format!("{} at offset {at} of {}: {e}", self.op.name(), self.device);
        match done.result {
            Ok(_) => Ok(done.data),
            Err(e @ IoError::TimedOut { .. }) => Err(Box::new(TimedOutChunk {
                tag: done.tag,
                message: what(&e),
            })),
            Err(e) => Err(what(&e).into()),
        }
    }

    /// Chunk `cookie` again over `data` (its buffer, back from a device reset).
    fn resend(&self, cookie: u64, data: &mut Data) -> Option<Request> {
        let &(at, _) = self.chunks.get(usize::try_from(cookie).ok()?)?;
        let Data::One(buf) = std::mem::take(data) else {
            return None;
        };
        Some(match self.op {
            Op::Read => Request::read(at, buf),
            _ => Request::write(at, buf),
        })
    }

    /// Runs the transfer with `job` over `dev`'s queue, a chunk in flight per buffer.
    fn run<J>(&self, dev: &mut Opened, free: Vec<DmaBuf>, job: &mut J) -> CmdResult
    where
        J: Job<Buf = DmaBuf, Error = Box<dyn std::error::Error>>,
    {
        let inject = dev.inject_short_header;
        let ran = InFlight::new(
            DeviceLane {
                dev: &mut *dev,
                inject,
            },
            free,
        )
        .run(job, self.count(), Round::One)
        .map_err(Stop::into_error);
        ran.map_err(|e| match e.downcast::<TimedOutChunk>() {
            // Recovered before it is reported, as the SCSI midlayer does: the message says how.
            Ok(chunk) => format!("{}; {}", chunk.message, dev.recover(chunk.tag)).into(),
            Err(e) => e,
        })
    }
}

/// The dd-like tools' lane: the opened device's one queue, recovered in place when the
/// device needs a reset (see [`Opened::restart`]).
struct DeviceLane<'a> {
    dev: &'a mut Opened,
    /// Fault injection: a malformed request goes out ahead of the first one.
    inject: bool,
}

/// The cookie of the injected malformed request, whose completion is the lane's own.
const POISON: u64 = u64::MAX;

impl DeviceLane<'_> {
    /// Fault injection (`--inject-short-header`): a one-block read whose header is 8 bytes
    /// long. With nothing else readable in its chain the device cannot parse it (QEMU:
    /// virtio-blk "outhdr too short", virtio-scsi "wrong size for virtio-scsi headers") and
    /// sets DEVICE_NEEDS_RESET, with the tool's real requests behind it in the ring.
    fn submit_poison(&mut self) -> Result<(), IoError> {
        let dev = &mut *self.dev;
        let block = dev.device.limits.logical_block_size as usize;
        let buf = dev
            .dma
            .alloc(block)
            .map_err(|_| IoError::BadRequest {
                op: "fault injection",
                what: "a DMA buffer",
            })?
            .into_buf();
        let tag = dev
            .queue
            .submit(dev.unit, Request::read(0, buf), POISON)
            .map_err(|r| r.error)?;
        if !dev.queue.inject_short_header(tag, 8) {
            return Err(IoError::NotSupported {
                op: "fault injection on a packed ring (use --ring split)",
            });
        }
        Ok(())
    }
}

impl Lane for DeviceLane<'_> {
    fn submit(&mut self, request: Request, cookie: u64) -> Result<(), IoError> {
        if std::mem::take(&mut self.inject) {
            self.submit_poison()?;
        }
        let dev = &mut *self.dev;
        dev.queue
            .submit(dev.unit, request, cookie)
            .map(drop)
            .map_err(|r| r.error)
    }

    fn kick(&mut self) {
        self.dev.queue.kick();
    }

    fn poll_into(&mut self, out: &mut Vec<Finished>) {
        let before = out.len();
        if poll_into(&mut self.dev.queue, out) > 0 {
            // The injected request is not the tool's: it ends with the reset.
            let mut i = before;
            while i < out.len() {
                if out[i].cookie == POISON {
                    out.swap_remove(i);
                } else {
                    i += 1;
                }
            }
        }
    }

    fn needs_reset(&self) -> bool {
        self.dev.queue.needs_device_reset()
    }

    fn restart(&mut self, out: &mut Vec<Finished>) -> Result<String, String> {
        let restarted = self.dev.restart()?;
        // The requests cut short hold their tags: out first, then the LUNs are revalidated
        // (their commands need tags) before any of them is sent again.
        self.poll_into(out);
        let changed = self.dev.revalidate();
        Ok(if changed == 0 {
            format!("{restarted}; sending them again")
        } else {
            format!("{restarted}; {changed} LUN(s) changed on revalidation; sending them again")
        })
    }
}

/// An error that keeps its device open until it has been reported. The device is reset as
/// it closes, and the reset waits for whatever the device still holds (QEMU drains a slow
/// backend first): the user hears of a timeout when it happens, not after that wait.
struct ReportedBeforeClose {
    error: Box<dyn std::error::Error>,
    _device: Opened,
}

impl ReportedBeforeClose {
    fn boxed(error: Box<dyn std::error::Error>, device: Opened) -> Box<dyn std::error::Error> {
        Box::new(ReportedBeforeClose {
            error,
            _device: device,
        })
    }
}

impl std::fmt::Debug for ReportedBeforeClose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::fmt::Display for ReportedBeforeClose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for ReportedBeforeClose {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.error)
    }
}

/// A chunk whose request timed out, with the tag it ran under.
#[derive(Debug)]
struct TimedOutChunk {
    tag: u16,
    message: String,
}

impl std::fmt::Display for TimedOutChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TimedOutChunk {}

/// `uvio read`: each chunk into a buffer, the buffers to the output in order.
struct ReadJob<'a> {
    chunks: &'a Chunks,
    out: Box<dyn Write>,
}

impl Job for ReadJob<'_> {
    type Buf = DmaBuf;
    type Error = Box<dyn std::error::Error>;

    fn request(&mut self, seq: u64, buf: DmaBuf) -> Result<(Request, u64), Self::Error> {
        let (at, buf) = self.chunks.cut(seq, buf);
        Ok((Request::read(at, buf), seq))
    }

    fn finished(&mut self, done: Finished) -> Result<Freed<DmaBuf>, Self::Error> {
        let seq = done.cookie;
        let Data::One(buf) = self.chunks.check(done)? else {
            return Err("completion without its buffer".into());
        };
        Ok(Freed::InOrder(seq, buf))
    }

    fn in_order(&mut self, buf: &DmaBuf) -> Result<(), Self::Error> {
        Ok(self.out.write_all(buf.as_slice())?)
    }

    fn resend(&mut self, cookie: u64, data: &mut Data) -> Option<Request> {
        self.chunks.resend(cookie, data)
    }
}

/// `uvio write`: each chunk read from the input into a buffer, then written.
struct WriteJob<'a> {
    chunks: &'a Chunks,
    source: Box<dyn Read>,
    length: u64,
}

impl Job for WriteJob<'_> {
    type Buf = DmaBuf;
    type Error = Box<dyn std::error::Error>;

    fn request(&mut self, seq: u64, buf: DmaBuf) -> Result<(Request, u64), Self::Error> {
        let (at, mut buf) = self.chunks.cut(seq, buf);
        self.source
            .read_exact(buf.as_mut_slice())
            .map_err(|e| format!("input ended before {} bytes: {e}", self.length))?;
        Ok((Request::write(at, buf), seq))
    }

    fn finished(&mut self, done: Finished) -> Result<Freed<DmaBuf>, Self::Error> {
        Ok(match self.chunks.check(done)? {
            Data::One(buf) => Freed::Now(buf),
            _ => Freed::Lost,
        })
    }

    fn resend(&mut self, cookie: u64, data: &mut Data) -> Option<Request> {
        self.chunks.resend(cookie, data)
    }
}

pub fn read(target: Target, offset: u64, length: u64, output: Option<PathBuf>) -> CmdResult {
    let mut dev = open(target, WINDOW as u16)?;
    let limits = dev.device.limits.clone();
    limits.check_extent(Op::Read, offset, length, dev.device.capacity())?;
    let out: Box<dyn Write> = match &output {
        Some(path) => {
            Box::new(File::create(path).map_err(|e| format!("creating {}: {e}", path.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let chunks = Chunks::new(&dev, Op::Read, offset, length);
    let free = buffers(&dev, WINDOW, limits.max_transfer_bytes)?;
    let mut job = ReadJob {
        chunks: &chunks,
        out,
    };
    let start = Instant::now();
    if let Err(error) = chunks.run(&mut dev, free, &mut job) {
        return Err(ReportedBeforeClose::boxed(error, dev));
    }
    job.out.flush()?;
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
    let (source, length): (Box<dyn Read>, u64) = match (&input, length) {
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
    let chunks = Chunks::new(&dev, Op::Write, offset, length);
    let free = buffers(&dev, WINDOW, limits.max_transfer_bytes)?;
    let mut job = WriteJob {
        chunks: &chunks,
        source,
        length,
    };
    let start = Instant::now();
    if let Err(error) = chunks.run(&mut dev, free, &mut job) {
        return Err(ReportedBeforeClose::boxed(error, dev));
    }
    report("wrote", length, target, offset, start);
    Ok(())
}

pub fn flush(target: Target) -> CmdResult {
    let mut dev = open(target, 1)?;
    let (result, _) = dev.queue.run_one(dev.unit, Request::flush());
    result.map_err(|e| format!("flush of {}: {e}", dev.device.name))?;
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
            .map_err(|e| format!("{} at offset {at} of {}: {e}", op.name(), dev.device.name))?;
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
