//! The scan's two ways through a request queue: [`QueueRunner`] sends one command and
//! waits (the sequential entry points, event handling), [`QueuePort`] keeps many in flight
//! for the concurrent scan (`HwQueue::submit_command`).

use std::sync::Arc;

use super::lun_counts::LunCounts;
use crate::block::{Data, HwQueue, IoError, Rejected, RequestEncoder};
use crate::dma::{DmaBuf, DmaError, DmaSpace};
use crate::scsi::encoder::ScsiEncoder;
use crate::scsi::error::ScsiError;
use crate::scsi::passthrough::ScsiPassthrough;
use crate::scsi::scan::{CommandPort, CommandRunner, LunCommand, PortRefusal};
use crate::scsi_proto::lun::virtio_lun;

/// The smallest data buffer the scan allocates (most commands want 4 KiB or less), and the
/// one the waiting path keeps.
const MIN_BUFFER: usize = 4096;
const RUNNER_BUFFER: usize = 64 << 10;

/// Small buffers are carved this many at a time from one DMA region: each region is a
/// mapping the IOMMU (a virtual one traps to the hypervisor) sets up and tears down.
const POOL: usize = 64;

/// The data buffer for `alloc` bytes: a spare one if large enough, else a new one (with
/// `POOL - 1` spares beside it when it is small).
fn data_for(
    spare: &mut Vec<DmaBuf>,
    dma: &Arc<DmaSpace>,
    alloc: usize,
    data_in: bool,
    min: usize,
) -> Result<Data, IoError> {
    if alloc == 0 {
        return Ok(Data::None);
    }
    let mut buf = match spare.iter().position(|b| b.capacity() >= alloc) {
        Some(at) => spare.swap_remove(at),
        None if alloc <= MIN_BUFFER && min == MIN_BUFFER => {
            let mut pool = dma
                .alloc(MIN_BUFFER * POOL)
                .map_err(ScsiError::from)?
                .into_bufs(MIN_BUFFER);
            let buf = pool.pop().ok_or(ScsiError::from(DmaError::Empty))?;
            spare.extend(pool);
            buf
        }
        None => dma
            .alloc(alloc.max(min))
            .map_err(ScsiError::from)?
            .into_buf(),
    };
    buf.set_len(alloc);
    if !data_in {
        buf.as_mut_slice().fill(0);
    }
    Ok(Data::One(buf))
}

/// The bytes a command moved, and its buffer kept for the next one.
fn answer(result: &Result<u64, IoError>, data: Data, spare: &mut Vec<DmaBuf>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Data::One(buf) = data {
        if let Ok(moved) = result {
            out.extend_from_slice(&buf.as_slice()[..(*moved as usize).min(buf.len())]);
        }
        spare.push(buf);
    }
    out
}

/// The passthrough command of one scan command.
fn passthrough(command: &LunCommand) -> Result<ScsiPassthrough, IoError> {
    let address = virtio_lun(command.target as u8, command.linux_lun).map_err(ScsiError::from)?;
    Ok(ScsiPassthrough {
        address,
        cdb: command.cdb,
        data_in: command.data_in,
    })
}

/// Runs scan commands through one request queue, one at a time.
pub(super) struct QueueRunner<'a, E: RequestEncoder, C> {
    pub(super) queue: &'a mut HwQueue<E, C>,
    pub(super) buffer: Option<DmaBuf>,
    pub(super) dma: &'a Arc<DmaSpace>,
    pub(super) counts: &'a mut LunCounts,
}

impl<E: RequestEncoder<Command = ScsiPassthrough>, C: Default> CommandRunner
    for QueueRunner<'_, E, C>
{
    fn run(&mut self, command: LunCommand) -> Result<Vec<u8>, IoError> {
        let passthrough = passthrough(&command)?;
        let mut spare: Vec<DmaBuf> = self.buffer.take().into_iter().collect();
        let data = data_for(
            &mut spare,
            self.dma,
            command.alloc,
            command.data_in,
            RUNNER_BUFFER,
        )?;
        let request = passthrough.request(data);
        let (result, data) = self.queue.run_command(passthrough, request);
        self.counts
            .record(command.target, command.linux_lun, &result);
        let out = answer(&result, data, &mut spare);
        self.buffer = spare.pop();
        result.map(|_| out)
    }
}

/// A request queue driven by the concurrent scan (see the module's comment).
pub(super) struct QueuePort<'a> {
    /// The request's key in each tag's context.
    queue: HwQueue<ScsiEncoder, usize>,
    dma: &'a Arc<DmaSpace>,
    counts: &'a mut LunCounts,
    spare: Vec<DmaBuf>,
    /// (target, Linux LUN) of each key, for the per-LUN counters.
    addressed: Vec<(u16, u64)>,
    in_flight: usize,
}

impl<'a> QueuePort<'a> {
    pub(super) fn new(
        queue: HwQueue<ScsiEncoder>,
        dma: &'a Arc<DmaSpace>,
        counts: &'a mut LunCounts,
    ) -> Self {
        let queue = queue.with_context();
        QueuePort {
            queue,
            dma,
            counts,
            spare: Vec::new(),
            addressed: Vec::new(),
            in_flight: 0,
        }
    }

    /// The queue, for the host to keep.
    pub(super) fn into_queue(self) -> HwQueue<ScsiEncoder> {
        self.queue.with_context()
    }

    /// Tags of the queue (what may be in flight at once).
    pub(super) fn depth(&self) -> u16 {
        self.queue.depth()
    }
}

impl CommandPort for QueuePort<'_> {
    fn room(&self) -> usize {
        usize::from(self.queue.depth().saturating_sub(self.queue.in_flight()))
    }

    fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn submit(&mut self, key: usize, command: LunCommand) -> Result<(), PortRefusal> {
        let passthrough = passthrough(&command).map_err(PortRefusal::Failed)?;
        let data = data_for(
            &mut self.spare,
            self.dma,
            command.alloc,
            command.data_in,
            MIN_BUFFER,
        )
        .map_err(PortRefusal::Failed)?;
        if self.addressed.len() <= key {
            self.addressed.resize(key + 1, (0, 0));
        }
        self.addressed[key] = (command.target, command.linux_lun);
        match self
            .queue
            .submit_command(passthrough, passthrough.request(data), key)
        {
            Ok(_) => {
                self.in_flight += 1;
                Ok(())
            }
            Err(Rejected { error, request, .. }) => {
                if let Data::One(buf) = request.data {
                    self.spare.push(buf);
                }
                match error {
                    IoError::QueueFull(_) => Err(PortRefusal::Full),
                    error => Err(PortRefusal::Failed(error)),
                }
            }
        }
    }

    fn kick(&mut self) {
        self.queue.kick();
    }

    fn poll(&mut self, done: &mut dyn FnMut(usize, Result<Vec<u8>, IoError>)) {
        let QueuePort {
            queue,
            counts,
            spare,
            addressed,
            in_flight,
            ..
        } = self;
        queue.poll(|finished| {
            let key = *finished.ctx;
            *in_flight = in_flight.saturating_sub(1);
            if let Some(&(target, linux_lun)) = addressed.get(key) {
                counts.record(target, linux_lun, &finished.result);
            }
            let out = answer(&finished.result, finished.data, spare);
            done(key, finished.result.map(|_| out));
        });
    }
}
