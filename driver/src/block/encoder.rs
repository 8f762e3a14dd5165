//! Device encoders: what turns a block request into a descriptor chain for one kind of
//! device, and the device's status back into a result. A hardware queue holds one
//! [`Encoder`], dispatched by `match` (no vtable on the hot path).

use super::request::{IoError, Request, Unit};
use super::slot::Slot;
use crate::blk::encoder::BlkEncoder;
use crate::scsi::encoder::ScsiEncoder;
use crate::scsi::passthrough::ScsiPassthrough;
use crate::virtio::queue::ChainSink;

/// Turns requests into descriptor chains for one kind of device, and device status into
/// results. virtio-blk and virtio-scsi each have one.
pub trait RequestEncoder: Send + std::fmt::Debug {
    /// Bytes of per-tag DMA memory the encoder needs (headers, status, sense).
    fn slot_size(&self) -> usize;
    /// Checks `request` for `unit` (or, with `command`, the passthrough command whose data
    /// `request` holds), writes its headers into `slot` and appends its chain to `segments`.
    fn encode(
        &mut self,
        tag: u16,
        slot: &Slot<'_>,
        unit: Unit,
        request: &Request,
        command: Option<&ScsiPassthrough>,
        segments: &mut impl ChainSink,
    ) -> Result<(), IoError>;
    /// The outcome of a completed request for `unit`, from `slot` and the bytes the device
    /// wrote.
    fn decode(
        &mut self,
        tag: u16,
        slot: &Slot<'_>,
        unit: Unit,
        request: &Request,
        command: Option<&ScsiPassthrough>,
        written: u32,
    ) -> Result<u64, IoError>;
    /// Most descriptors one request may need (for sizing the scratch list).
    fn max_chain(&self) -> usize;
    /// Whether a request that ended with `error` should be sent again as it is (a SCSI
    /// UNIT ATTENTION, as the SCSI midlayer retries it). Retries are bounded.
    fn retryable(&self, _error: &IoError) -> bool {
        false
    }
    /// `encode` succeeded for `request` but the chain could not be queued: undo what
    /// `encode` accounted for it.
    fn abort(&mut self, _unit: Unit, _command: Option<&ScsiPassthrough>) {}
}

/// The encoder of a hardware queue.
#[derive(Debug)]
pub enum Encoder {
    Blk(BlkEncoder),
    Scsi(ScsiEncoder),
}

impl From<BlkEncoder> for Encoder {
    fn from(e: BlkEncoder) -> Self {
        Encoder::Blk(e)
    }
}

impl From<ScsiEncoder> for Encoder {
    fn from(e: ScsiEncoder) -> Self {
        Encoder::Scsi(e)
    }
}

macro_rules! each_encoder {
    ($self:expr, $e:ident => $body:expr) => {
        match $self {
            Encoder::Blk($e) => $body,
            Encoder::Scsi($e) => $body,
        }
    };
}

impl Encoder {
    pub fn slot_size(&self) -> usize {
        each_encoder!(self, e => e.slot_size())
    }

    pub fn max_chain(&self) -> usize {
        each_encoder!(self, e => e.max_chain())
    }

    #[inline]
    pub(crate) fn encode(
        &mut self,
        tag: u16,
        slot: &Slot<'_>,
        unit: Unit,
        request: &Request,
        command: Option<&ScsiPassthrough>,
        segments: &mut impl ChainSink,
    ) -> Result<(), IoError> {
        each_encoder!(self, e => e.encode(tag, slot, unit, request, command, segments))
    }

    #[inline]
    pub(crate) fn decode(
        &mut self,
        tag: u16,
        slot: &Slot<'_>,
        unit: Unit,
        request: &Request,
        command: Option<&ScsiPassthrough>,
        written: u32,
    ) -> Result<u64, IoError> {
        each_encoder!(self, e => e.decode(tag, slot, unit, request, command, written))
    }

    pub(crate) fn retryable(&self, error: &IoError) -> bool {
        each_encoder!(self, e => e.retryable(error))
    }

    pub(crate) fn abort(&mut self, unit: Unit, command: Option<&ScsiPassthrough>) {
        each_encoder!(self, e => e.abort(unit, command))
    }
}
