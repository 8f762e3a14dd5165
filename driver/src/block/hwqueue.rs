//! A hardware queue: one virtqueue, its tags and per-tag request memory, owned by one thread.
//!
//! The hot path (submit, kick, poll) takes no lock and allocates nothing: per-tag state and
//! the segment scratch list are sized once, and completions go into a caller's vector that
//! has room for `depth` entries.

use std::sync::Arc;

use super::request::{Completion, Data, IoError, Rejected, Request};
use super::tags::TagBitmap;
use crate::dma::DmaRegion;
use crate::virtio::pci::QueueNotifier;
use crate::virtio::queue::{AddError, Segment, Virtqueue};

/// The per-tag slice of DMA memory where a request's device header and status live.
#[derive(Debug, Clone, Copy)]
pub struct SlotMemory {
    ptr: *mut u8,
    iova: u64,
    len: usize,
}

impl SlotMemory {
    pub fn iova(&self, offset: usize) -> u64 {
        self.iova + offset as u64
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `bytes` into the slot at `offset` (volatile: the device reads it).
    pub fn write(&self, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= self.len, "slot write out of bounds");
        for (i, b) in bytes.iter().enumerate() {
            // SAFETY: in bounds (checked above) of the slot, which lies in a live DMA region
            // owned by the queue; the device does not access it until the chain is published.
            unsafe { self.ptr.add(offset + i).write_volatile(*b) }
        }
    }

    /// Reads `out.len()` bytes the device wrote at `offset` (volatile).
    pub fn read(&self, offset: usize, out: &mut [u8]) {
        assert!(offset + out.len() <= self.len, "slot read out of bounds");
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: as for `write`; the chain has completed, so the device is done with it.
            *b = unsafe { self.ptr.add(offset + i).read_volatile() };
        }
    }

    pub fn read_u8(&self, offset: usize) -> u8 {
        let mut b = [0u8];
        self.read(offset, &mut b);
        b[0]
    }
}

/// Turns requests into descriptor chains for one kind of device, and device status into
/// results. virtio-blk and virtio-scsi each have one.
pub trait RequestEncoder: Send + std::fmt::Debug {
    /// Bytes of per-tag DMA memory the encoder needs (headers, status, sense).
    fn slot_size(&self) -> usize;
    /// Checks `request`, writes its headers into `slot` and appends its chain to `segments`.
    fn encode(
        &mut self,
        tag: u16,
        slot: &SlotMemory,
        request: &Request,
        segments: &mut Vec<Segment>,
    ) -> Result<(), IoError>;
    /// The outcome of a completed request, from `slot` and the bytes the device wrote.
    fn decode(
        &mut self,
        tag: u16,
        slot: &SlotMemory,
        request: &Request,
        written: u32,
    ) -> Result<u64, IoError>;
    /// Most descriptors one request may need (for sizing the scratch list).
    fn max_chain(&self) -> usize;
    /// Whether a request that ended with `error` should be sent again as it is (a SCSI
    /// UNIT ATTENTION, as the SCSI midlayer retries it). Retries are bounded.
    fn retryable(&self, _error: &IoError) -> bool {
        false
    }
    /// `encode` succeeded for `tag` but the chain could not be queued: undo what `encode`
    /// accounted for it.
    fn abort(&mut self, _tag: u16) {}
}

/// How often one request is sent again after retryable errors.
const MAX_RETRIES: u8 = 5;

/// Counters of one hardware queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub submitted: u64,
    pub completed: u64,
    pub errors: u64,
    pub notifications: u64,
    pub bytes: u64,
    /// Requests sent again after a retryable error (a SCSI UNIT ATTENTION).
    pub retries: u64,
}

/// How long [`HwQueue::run_one`] waits for a control-path request.
const CONTROL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One hardware queue. `Send` (move it to the thread that drives it), not `Sync`.
#[derive(Debug)]
pub struct HwQueue {
    index: u16,
    virtqueue: Box<dyn Virtqueue>,
    notifier: QueueNotifier,
    tags: TagBitmap,
    in_flight: Vec<Option<Request>>,
    slots: Arc<DmaRegion>,
    slot_size: usize,
    encoder: Box<dyn RequestEncoder>,
    segments: Vec<Segment>,
    stats: QueueStats,
    /// Set once every request was failed after the queue broke.
    drained: bool,
    /// Completions of other requests that arrived during [`run_one`](Self::run_one), handed
    /// out by the next [`poll`](Self::poll).
    deferred: Vec<Completion>,
    /// The tag [`run_one`](Self::run_one) waits for, and its completion once it came.
    awaited: Option<u16>,
    awaited_done: Option<Completion>,
    /// Buffers of requests failed because the queue broke (see `reap`).
    quarantine: Vec<Data>,
    /// Tags whose `run_one` caller stopped waiting: their completions are dropped.
    orphaned: Vec<bool>,
}

impl HwQueue {
    /// Builds a queue from its parts. `slots` must hold `depth` slots of the encoder's size.
    pub fn new(
        index: u16,
        virtqueue: Box<dyn Virtqueue>,
        notifier: QueueNotifier,
        depth: u16,
        slots: DmaRegion,
        encoder: Box<dyn RequestEncoder>,
    ) -> Self {
        let slot_size = encoder.slot_size().next_multiple_of(64);
        assert!(
            slots.len() >= slot_size * usize::from(depth),
            "slot memory too small for the depth"
        );
        let max_chain = encoder.max_chain();
        HwQueue {
            index,
            virtqueue,
            notifier,
            tags: TagBitmap::new(depth),
            in_flight: (0..depth).map(|_| None).collect(),
            slots: Arc::new(slots),
            slot_size,
            encoder,
            segments: Vec::with_capacity(max_chain),
            stats: QueueStats::default(),
            drained: false,
            deferred: Vec::with_capacity(usize::from(depth)),
            awaited: None,
            awaited_done: None,
            quarantine: Vec::new(),
            orphaned: vec![false; usize::from(depth)],
        }
    }

    pub fn index(&self) -> u16 {
        self.index
    }

    pub fn depth(&self) -> u16 {
        self.tags.depth()
    }

    /// Requests submitted and not yet completed.
    pub fn in_flight(&self) -> u16 {
        self.tags.in_use()
    }

    pub fn stats(&self) -> QueueStats {
        self.stats
    }

    fn slot(&self, tag: u16) -> SlotMemory {
        let offset = usize::from(tag) * self.slot_size;
        SlotMemory {
            // SAFETY: tag < depth, and the region holds depth slots (checked in `new`).
            ptr: unsafe { self.slots.as_ptr().add(offset) },
            iova: self.slots.iova() + offset as u64,
            len: self.slot_size,
        }
    }

    /// Puts `request` on the queue (not yet visible to the device: call [`kick`](Self::kick)
    /// after a batch). Returns its tag, or hands the request back with the reason.
    // The rejected request comes back by value, not boxed: refusing one (a full queue) must
    // not allocate either.
    #[allow(clippy::result_large_err)]
    pub fn submit(&mut self, request: Request) -> Result<u16, Rejected> {
        if let Some(fault) = self.virtqueue.fault() {
            return Err(Rejected {
                error: IoError::QueueBroken(fault),
                request,
            });
        }
        let Some(tag) = self.tags.alloc() else {
            return Err(Rejected {
                error: IoError::QueueFull(self.depth()),
                request,
            });
        };
        let added = self.place(tag, &request);
        if let Err(error) = added {
            self.tags.free(tag);
            return Err(Rejected { error, request });
        }
        self.in_flight[usize::from(tag)] = Some(request);
        self.stats.submitted += 1;
        Ok(tag)
    }

    /// Makes submitted requests visible to the device and notifies it if it asked to be.
    pub fn kick(&mut self) {
        if self.virtqueue.publish() {
            self.notifier.notify();
            self.stats.notifications += 1;
        }
    }

    /// Moves finished requests into `out` (which should have room for `depth` entries, so
    /// nothing is allocated here) and returns how many.
    pub fn poll(&mut self, out: &mut Vec<Completion>) -> usize {
        let before = out.len();
        out.append(&mut self.deferred);
        if !self.drained {
            self.reap(out);
        }
        out.len() - before
    }

    fn reap(&mut self, out: &mut Vec<Completion>) {
        while let Some(used) = self.virtqueue.pop_used() {
            match used {
                Ok(used) => {
                    let tag = used.token as u16;
                    // The virtqueue only returns tokens it was given, so the tag is ours.
                    let Some(request) = self
                        .in_flight
                        .get_mut(usize::from(tag))
                        .and_then(Option::take)
                    else {
                        continue;
                    };
                    let slot = self.slot(tag);
                    let result = self.encoder.decode(tag, &slot, &request, used.written);
                    let request = match result {
                        Err(ref e)
                            if request.retries < MAX_RETRIES && self.encoder.retryable(e) =>
                        {
                            match self.resubmit(tag, request) {
                                Ok(()) => continue,
                                Err(request) => request,
                            }
                        }
                        _ => request,
                    };
                    self.tags.free(tag);
                    self.finish(tag, request, result, out);
                }
                Err(fault) => {
                    // Nothing more will complete: fail everything in flight, once.
                    for tag in 0..self.tags.depth() {
                        if let Some(mut request) = self.in_flight[usize::from(tag)].take() {
                            // The device was not reset and may still write these buffers:
                            // keep them here (they are released only once it is quiesced)
                            // rather than hand them back to the caller.
                            self.quarantine.push(std::mem::take(&mut request.data));
                            self.tags.free(tag);
                            self.finish(tag, request, Err(IoError::QueueBroken(fault)), out);
                        }
                    }
                    self.drained = true;
                    break;
                }
            }
        }
    }

    /// Sends a completed request again under the same tag; hands it back if that fails.
    fn resubmit(&mut self, tag: u16, mut request: Request) -> Result<(), Request> {
        request.retries += 1;
        if self.place(tag, &request).is_err() {
            return Err(request);
        }
        self.in_flight[usize::from(tag)] = Some(request);
        self.stats.retries += 1;
        self.kick();
        Ok(())
    }

    /// Encodes `request` under `tag` and adds its chain to the ring; on failure the encoder
    /// gives back whatever it took for the tag (a LUN's budget).
    fn place(&mut self, tag: u16, request: &Request) -> Result<(), IoError> {
        let op = request.op.name();
        // An IOVA only means something in the DMA space it was mapped in.
        let space = self.slots.space();
        if request.data.bufs().iter().any(|b| !b.is_mapped_in(space)) {
            return Err(IoError::BadRequest {
                op,
                what: "buffers allocated from this device's DMA space",
            });
        }
        let slot = self.slot(tag);
        self.segments.clear();
        self.encoder
            .encode(tag, &slot, request, &mut self.segments)?;
        let added = self
            .virtqueue
            .add(&self.segments, u64::from(tag))
            .map_err(|e| match e {
                AddError::Broken(fault) => IoError::QueueBroken(fault),
                AddError::Full(_) => IoError::QueueFull(self.tags.depth()),
                AddError::TooManySegments { segments, max } => {
                    IoError::TooManySegments { op, segments, max }
                }
                AddError::Empty => IoError::BadRequest {
                    op,
                    what: "at least one buffer",
                },
            });
        if added.is_err() {
            self.encoder.abort(tag);
        }
        added
    }

    fn finish(
        &mut self,
        tag: u16,
        request: Request,
        result: Result<u64, IoError>,
        out: &mut Vec<Completion>,
    ) {
        self.stats.completed += 1;
        match &result {
            Ok(bytes) => self.stats.bytes += bytes,
            Err(_) => self.stats.errors += 1,
        }
        let completion = Completion {
            cookie: request.cookie,
            op: request.op,
            result,
            data: request.data,
        };
        if self.awaited == Some(tag) {
            self.awaited = None;
            self.awaited_done = Some(completion);
        } else if std::mem::take(&mut self.orphaned[usize::from(tag)]) {
            // A control request its caller gave up on: nobody expects this completion.
            drop(completion);
        } else {
            out.push(completion);
        }
    }

    /// Submits one request, kicks, and busy-polls until it completes: for the control path
    /// (serial number, the SCSI scan), never for I/O loops. Other requests that complete
    /// meanwhile are kept for the next [`poll`](Self::poll).
    pub fn run_one(&mut self, request: Request) -> Completion {
        let (cookie, op) = (request.cookie, request.op);
        let tag = match self.submit(request) {
            Ok(tag) => tag,
            Err(rejected) => {
                return Completion {
                    cookie,
                    op,
                    result: Err(rejected.error),
                    data: rejected.request.data,
                };
            }
        };
        self.awaited = Some(tag);
        self.kick();
        let mut others = std::mem::take(&mut self.deferred);
        let start = std::time::Instant::now();
        loop {
            self.reap(&mut others);
            if let Some(done) = self.awaited_done.take() {
                self.deferred = others;
                return done;
            }
            if start.elapsed() > CONTROL_TIMEOUT {
                // Stop waiting; if it completes later, its completion is dropped.
                self.awaited = None;
                self.orphaned[usize::from(tag)] = true;
                self.deferred = others;
                let what = format!("{} did not complete within {CONTROL_TIMEOUT:?}", op.name());
                return Completion {
                    cookie,
                    op,
                    result: Err(IoError::Device(what)),
                    data: Data::None,
                };
            }
            std::hint::spin_loop();
        }
    }
}

/// Data of a request as chain segments, each buffer split at `max_segment` bytes.
pub fn data_segments(data: &Data, device_writes: bool, max_segment: u32, out: &mut Vec<Segment>) {
    for buf in data.bufs() {
        let mut offset = 0u64;
        let len = buf.len() as u64;
        while offset < len {
            let piece = (len - offset).min(u64::from(max_segment)) as u32;
            out.push(Segment {
                iova: buf.iova() + offset,
                len: piece,
                device_writes,
            });
            offset += u64::from(piece);
        }
    }
}
