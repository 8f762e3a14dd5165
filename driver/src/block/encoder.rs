//! The seam between the block layer and a kind of device: what turns a block request into a
//! descriptor chain, and the device's status back into a result. A hardware queue is generic
//! over its encoder (static dispatch, no vtable on the hot path); the block layer knows no
//! device protocol, only this trait.

use super::request::{IoError, Request, Unit};
use super::slot::Slot;
use crate::virtio::queue::ChainSink;

/// One tag's request as its encoder sees it, going out and coming back: the tag, its slot
/// of DMA memory, the unit addressed, the request, and a command sent as given, if any.
#[derive(Debug)]
pub struct TagRequest<'a, C> {
    pub tag: u16,
    pub slot: &'a Slot<'a>,
    pub unit: Unit,
    pub request: &'a Request,
    pub command: Option<&'a C>,
}

// By hand: a derive would ask `C: Copy`, and only references to `C` are held.
impl<C> Clone for TagRequest<'_, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for TagRequest<'_, C> {}

impl<'a, C> TagRequest<'a, C> {
    /// The same request with another command type's command (for an encoder that wraps
    /// another).
    pub fn with_command<D>(self, command: Option<&'a D>) -> TagRequest<'a, D> {
        TagRequest {
            tag: self.tag,
            slot: self.slot,
            unit: self.unit,
            request: self.request,
            command,
        }
    }
}

/// Turns requests into descriptor chains for one kind of device, and device status into
/// results. virtio-blk and virtio-scsi each have one.
pub trait RequestEncoder: Send + std::fmt::Debug {
    /// A device command sent as given instead of being encoded from the request (a SCSI
    /// CDB), which the tag's record keeps next to the request that holds its data. Devices
    /// with no such path use [`std::convert::Infallible`].
    type Command: Copy + Send + std::fmt::Debug;

    /// Bytes of per-tag DMA memory the encoder needs (headers, status, sense).
    fn slot_size(&self) -> usize;
    /// Checks the request for its unit (or, with a command, the command whose data the
    /// request holds), writes its headers into the tag's slot and appends its chain to
    /// `segments`.
    fn encode(
        &mut self,
        at: TagRequest<'_, Self::Command>,
        segments: &mut impl ChainSink,
    ) -> Result<(), IoError>;
    /// The outcome of a completed request, from the tag's slot and the bytes the device
    /// wrote.
    fn decode(&mut self, at: TagRequest<'_, Self::Command>, written: u32) -> Result<u64, IoError>;
    /// Most descriptors one request may need (for sizing the scratch list).
    fn max_chain(&self) -> usize;
    /// Whether a request that ended with `error` should be sent again as it is (a SCSI
    /// UNIT ATTENTION, as the SCSI midlayer retries it). Retries are bounded.
    fn retryable(&self, _error: &IoError) -> bool {
        false
    }
    /// `encode` succeeded for `request` but the chain could not be queued: undo what
    /// `encode` accounted for it.
    fn abort(&mut self, _unit: Unit, _command: Option<&Self::Command>) {}
}
