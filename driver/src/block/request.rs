//! Requests, their completions, and the errors a request can end with.

use crate::dma::DmaBuf;
use crate::scsi::cdb::Cdb;
use crate::scsi::sense::{ScsiStatus, SenseData};
use crate::virtio::queue::QueueFault;

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    Flush,
    Discard,
    WriteZeroes,
    /// Read the device's serial (virtio-blk GET_ID) into a 20-byte buffer.
    GetId,
    /// A SCSI command given as a CDB (the scan and revalidation use it).
    Scsi,
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
            Op::Scsi => "scsi command",
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

    pub fn bufs(&self) -> &[DmaBuf] {
        match self {
            Data::None => &[],
            Data::One(b) => std::slice::from_ref(b),
            Data::Many(v) => v,
        }
    }
}

/// A block request. `offset` and lengths are in bytes and must be multiples of the device's
/// logical block size. `cookie` comes back untouched in the completion.
#[derive(Debug)]
pub struct Request {
    pub op: Op,
    pub offset: u64,
    /// Bytes to discard / zero; for reads and writes the data's length is used.
    pub len: u64,
    pub data: Data,
    pub cookie: u64,
    /// Force unit access: the write is on stable media when it completes.
    pub fua: bool,
    /// The logical unit, for devices with several (a SCSI host; see [`Request::on_unit`]).
    /// [`Request::NO_UNIT`] until set: a SCSI host refuses such a request rather than guess
    /// a LUN. A virtio-blk disk has one unit and ignores it.
    pub unit: u32,
    /// For [`Op::Scsi`]: the command, and whether the data moves from the device.
    pub command: Option<ScsiCommand>,
    /// Times the queue sent it again after a retryable error.
    pub retries: u8,
}

/// A SCSI command to pass through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScsiCommand {
    pub cdb: Cdb,
    /// Data flows from the device into the buffer (INQUIRY, READ); otherwise out of it.
    pub data_in: bool,
    /// The virtio-scsi LUN field to send it to, for LUNs that are not units yet (the
    /// scan); `None` sends it to the request's unit.
    pub address: Option<[u8; 8]>,
}

impl Request {
    /// The unit of a request that names none.
    pub const NO_UNIT: u32 = u32::MAX;

    fn new(op: Op, offset: u64, len: u64, data: Data, cookie: u64) -> Self {
        Request {
            op,
            offset,
            len,
            data,
            cookie,
            fua: false,
            unit: Self::NO_UNIT,
            command: None,
            retries: 0,
        }
    }

    pub fn read(offset: u64, buf: DmaBuf, cookie: u64) -> Self {
        Self::new(Op::Read, offset, buf.len() as u64, Data::One(buf), cookie)
    }

    pub fn write(offset: u64, buf: DmaBuf, cookie: u64) -> Self {
        Self::new(Op::Write, offset, buf.len() as u64, Data::One(buf), cookie)
    }

    pub fn readv(offset: u64, bufs: Vec<DmaBuf>, cookie: u64) -> Self {
        let data = Data::Many(bufs);
        Self::new(Op::Read, offset, data.len(), data, cookie)
    }

    pub fn writev(offset: u64, bufs: Vec<DmaBuf>, cookie: u64) -> Self {
        let data = Data::Many(bufs);
        Self::new(Op::Write, offset, data.len(), data, cookie)
    }

    pub fn flush(cookie: u64) -> Self {
        Self::new(Op::Flush, 0, 0, Data::None, cookie)
    }

    pub fn discard(offset: u64, len: u64, cookie: u64) -> Self {
        Self::new(Op::Discard, offset, len, Data::None, cookie)
    }

    pub fn write_zeroes(offset: u64, len: u64, cookie: u64) -> Self {
        Self::new(Op::WriteZeroes, offset, len, Data::None, cookie)
    }

    pub fn get_id(buf: DmaBuf, cookie: u64) -> Self {
        Self::new(Op::GetId, 0, buf.len() as u64, Data::One(buf), cookie)
    }

    /// A SCSI command for `unit`, with an optional data buffer.
    pub fn scsi(unit: u32, cdb: Cdb, data_in: bool, data: Data, cookie: u64) -> Self {
        let len = data.len();
        Request {
            unit,
            command: Some(ScsiCommand {
                cdb,
                data_in,
                address: None,
            }),
            ..Self::new(Op::Scsi, 0, len, data, cookie)
        }
    }

    /// A SCSI command to the LUN whose virtio-scsi LUN field is `address`.
    pub fn scsi_to(address: [u8; 8], cdb: Cdb, data_in: bool, data: Data, cookie: u64) -> Self {
        let len = data.len();
        Request {
            command: Some(ScsiCommand {
                cdb,
                data_in,
                address: Some(address),
            }),
            ..Self::new(Op::Scsi, 0, len, data, cookie)
        }
    }

    pub fn on_unit(mut self, unit: u32) -> Self {
        self.unit = unit;
        self
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
    #[error(
        "the request names no logical unit: a SCSI host needs the LUN's unit on every request \
         (Request::on_unit with the unit its disk was opened with)"
    )]
    NoUnit,
    #[error("all {0} tags of the hardware queue are in use: poll for completions first")]
    QueueFull(u16),
    #[error("the LUN already has {budget} requests in flight on this queue (its cmd_per_lun): poll for completions first")]
    LunBusy { budget: u16 },
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
    #[error("{0}")]
    Device(String),
    #[error("SCSI status {status}{}", sense.as_ref().map(|s| format!(": {s}")).unwrap_or_default())]
    Scsi {
        status: ScsiStatus,
        sense: Option<SenseData>,
    },
    #[error("virtio-scsi response {name} ({code})")]
    Transport { code: u8, name: &'static str },
}

impl IoError {
    /// The sense data of a CHECK CONDITION, if this is one.
    pub fn sense(&self) -> Option<&SenseData> {
        match self {
            IoError::Scsi { sense, .. } => sense.as_ref(),
            _ => None,
        }
    }
}

/// A finished request: the caller's cookie, the outcome, and the buffers back.
#[derive(Debug)]
pub struct Completion {
    pub cookie: u64,
    pub op: Op,
    /// Bytes transferred, or why the request failed.
    pub result: Result<u64, IoError>,
    pub data: Data,
}

/// A request refused before it reached the device, handed back with the reason.
#[derive(Debug)]
pub struct Rejected {
    pub error: IoError,
    pub request: Request,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Rejected {}
