//! Requests, their completions, and the errors a request can end with.

use std::sync::Arc;
use std::time::Duration;

use crate::dma::DmaBuf;
use crate::virtio::queue::{ChainSink, QueueFault, Segment};

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Op {
    #[default]
    Read,
    Write,
    Flush,
    Discard,
    WriteZeroes,
    /// Read the device's serial (virtio-blk GET_ID) into a 20-byte buffer.
    GetId,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
            Op::Flush => "flush",
            Op::Discard => "discard",
            Op::WriteZeroes => "write-zeroes",
            Op::GetId => "get-id",
        }
    }

    /// Whether the op changes the medium (refused on a read-only device).
    pub fn writes(self) -> bool {
        matches!(self, Op::Write | Op::Discard | Op::WriteZeroes)
    }
}

/// The data buffers of a request.
#[derive(Debug, Default)]
pub enum Data {
    #[default]
    None,
    One(DmaBuf),
    /// A vectored request: the buffers in order (allocated by the caller, not the driver).
    Many(Vec<DmaBuf>),
}

impl Data {
    #[inline]
    pub fn len(&self) -> u64 {
        match self {
            Data::None => 0,
            Data::One(b) => b.len() as u64,
            Data::Many(v) => v.iter().map(|b| b.len() as u64).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn bufs(&self) -> &[DmaBuf] {
        match self {
            Data::None => &[],
            Data::One(b) => std::slice::from_ref(b),
            Data::Many(v) => v,
        }
    }
}

/// A logical unit of a device: what a request is sent to. A virtio-blk disk has one, a
/// virtio-scsi host one per disk LUN. Only the library makes them, binding each into the
/// [`BlockDevice`](super::BlockDevice) it opens (`BlockDevice::unit`), so a request can never
/// name a LUN that the caller did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Unit(u32);

impl Unit {
    /// The one unit of a single-unit device (a virtio-blk disk).
    pub(crate) const ONLY: Unit = Unit(0);

    pub(crate) fn new(index: u32) -> Self {
        Unit(index)
    }

    /// Unit `index` of a device simulated in this process (the `fake-device` test seam only:
    /// real devices hand out their units through the block devices they open).
    #[cfg(any(test, feature = "fake-device"))]
    pub fn of_fake_device(index: u32) -> Self {
        Unit(index)
    }

    /// Its index in the device's unit table.
    pub fn index(self) -> u32 {
        self.0
    }
}

/// A block request. `offset` and lengths are in bytes and must be multiples of the device's
/// logical block size.
#[derive(Debug, Default)]
pub struct Request {
    pub op: Op,
    pub offset: u64,
    /// Bytes to discard / zero; for reads and writes the data's length is used.
    pub len: u64,
    pub data: Data,
    /// Force unit access: the write is on stable media when it completes.
    pub fua: bool,
}

impl Request {
    fn new(op: Op, offset: u64, len: u64, data: Data) -> Self {
        Request {
            op,
            offset,
            len,
            data,
            fua: false,
        }
    }

    pub fn read(offset: u64, buf: DmaBuf) -> Self {
        Self::new(Op::Read, offset, buf.len() as u64, Data::One(buf))
    }

    pub fn write(offset: u64, buf: DmaBuf) -> Self {
        Self::new(Op::Write, offset, buf.len() as u64, Data::One(buf))
    }

    pub fn readv(offset: u64, bufs: Vec<DmaBuf>) -> Self {
        let data = Data::Many(bufs);
        Self::new(Op::Read, offset, data.len(), data)
    }

    pub fn writev(offset: u64, bufs: Vec<DmaBuf>) -> Self {
        let data = Data::Many(bufs);
        Self::new(Op::Write, offset, data.len(), data)
    }

    pub fn flush() -> Self {
        Self::new(Op::Flush, 0, 0, Data::None)
    }

    pub fn discard(offset: u64, len: u64) -> Self {
        Self::new(Op::Discard, offset, len, Data::None)
    }

    pub fn write_zeroes(offset: u64, len: u64) -> Self {
        Self::new(Op::WriteZeroes, offset, len, Data::None)
    }

    pub fn get_id(buf: DmaBuf) -> Self {
        Self::new(Op::GetId, 0, buf.len() as u64, Data::One(buf))
    }
}

/// Why a request failed, before or after it reached the device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IoError {
    #[error("{op} of {len} bytes at offset {offset} is not aligned to the {block_size}-byte logical block size")]
    Misaligned {
        op: &'static str,
        offset: u64,
        len: u64,
        block_size: u32,
    },
    #[error(
        "{op} of {len} bytes at offset {offset} goes past the end of the device ({capacity} bytes)"
    )]
    OutOfRange {
        op: &'static str,
        offset: u64,
        len: u64,
        capacity: u64,
    },
    #[error("{op} of {len} bytes exceeds the {max}-byte limit of one request: split it")]
    TooLarge {
        op: &'static str,
        len: u64,
        max: u64,
    },
    #[error("{op} needs {segments} buffer segments, more than the device's limit of {max}")]
    TooManySegments {
        op: &'static str,
        segments: usize,
        max: usize,
    },
    #[error("the device is read-only: {op} refused")]
    ReadOnly { op: &'static str },
    #[error("the device does not support {op}")]
    NotSupported { op: &'static str },
    #[error("{op} needs {what}")]
    BadRequest {
        op: &'static str,
        what: &'static str,
    },
    #[error("no such logical unit {0}")]
    NoSuchUnit(u32),
    #[error("all {0} tags of the hardware queue are in use: poll for completions first")]
    QueueFull(u16),
    /// The unit's own budget of requests in flight on this queue is spent (a SCSI LUN's
    /// `cmd_per_lun`), although the queue has free tags.
    #[error("the LUN already has {budget} requests in flight on this queue (its cmd_per_lun): poll for completions first")]
    UnitBusy { budget: u16 },
    #[error("the device reported an I/O error (VIRTIO_BLK_S_IOERR)")]
    DeviceIo,
    #[error("the device reported the request unsupported (VIRTIO_BLK_S_UNSUPP)")]
    DeviceUnsupported,
    #[error("the device wrote status byte {0:#04x}, which no virtio-blk status has")]
    BadStatus(u8),
    #[error("the device reported {written} bytes written, expected {expected}")]
    ShortTransfer { written: u32, expected: u64 },
    #[error("the hardware queue is broken and needs a device reset: {0}")]
    QueueBroken(QueueFault),
    /// The request was in flight longer than the queue's request timeout (or, through
    /// [`HwQueue::run_one`](super::HwQueue::run_one), its control timeout). Its buffers stay
    /// with the queue (the device may still write them) until the device completes it or
    /// is reset.
    #[error("{op} of {len} bytes at offset {offset} timed out after {after:?}")]
    TimedOut {
        op: &'static str,
        offset: u64,
        len: u64,
        after: Duration,
    },
    /// The device was reset while the request was in flight (to recover from a timeout or
    /// a device error): it may or may not have reached the medium. Its buffers came back
    /// after the reset completed. Sending it again is safe for reads and writes.
    #[error("{op} of {len} bytes at offset {offset} was cut short by a reset of the device")]
    DeviceReset {
        op: &'static str,
        offset: u64,
        len: u64,
    },
    #[error(transparent)]
    Protocol(ProtocolError),
}

impl IoError {
    /// The device protocol's own error, if this is one and of type `T`.
    pub fn protocol<T: std::error::Error + 'static>(&self) -> Option<&T> {
        match self {
            IoError::Protocol(e) => e.downcast_ref(),
            _ => None,
        }
    }
}

/// An error of a device's own protocol (a SCSI status with its sense data, a virtio-scsi
/// response), carried through the block layer, which does not know what it is: callers
/// that do ask for it with [`IoError::protocol`]. Shared, so that a completion's result can
/// be cloned; made only when a request fails, never on the hot path.
#[derive(Debug, Clone)]
pub struct ProtocolError(Arc<dyn std::error::Error + Send + Sync>);

impl ProtocolError {
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        ProtocolError(Arc::new(error))
    }

    pub fn downcast_ref<T: std::error::Error + 'static>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

/// Two protocol errors are equal when they are one error or say the same thing: the block
/// layer cannot look inside them.
impl PartialEq for ProtocolError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for ProtocolError {}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ProtocolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// A finished request, as [`HwQueue::poll`](super::HwQueue::poll) hands it to its callback:
/// the tag it ran under, the outcome, its buffers back, and the caller's context, which lives
/// in the tag's record and is lent, not moved.
#[derive(Debug)]
pub struct Done<'a, Ctx> {
    pub tag: u16,
    pub op: Op,
    /// Bytes transferred, or why the request failed.
    pub result: Result<u64, IoError>,
    pub data: Data,
    pub ctx: &'a mut Ctx,
}

/// A request refused before it reached the device, handed back with its context and the
/// reason.
#[derive(Debug)]
pub struct Rejected<Ctx = ()> {
    pub error: IoError,
    pub request: Request,
    pub ctx: Ctx,
}

impl<Ctx> std::fmt::Display for Rejected<Ctx> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl<Ctx: std::fmt::Debug> std::error::Error for Rejected<Ctx> {}

/// Data of a request as chain segments, each buffer split at `max_segment` bytes.
#[inline(always)]
pub fn data_segments(data: &Data, device_writes: bool, max_segment: u32, out: &mut impl ChainSink) {
    if let Data::One(buf) = data {
        if buf.len() <= max_segment as usize {
            out.push(Segment {
                iova: buf.iova(),
                len: buf.len() as u32,
                device_writes,
            });
            return;
        }
    }
    split_segments(data, device_writes, max_segment, out);
}

/// [`data_segments`] for several buffers or one larger than a segment.
#[inline(never)]
fn split_segments(data: &Data, device_writes: bool, max_segment: u32, out: &mut impl ChainSink) {
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
