//! The block API, modelled on blk-mq: a [`TagSet`] of hardware queues per device (shared by
//! every LUN of a SCSI host), a [`HwQueue`] owned by one thread that submits requests and
//! polls completions without locks or allocation, one record per tag holding each request's
//! state and the caller's context, and a [`BlockDevice`] description.

pub mod deadline;
pub mod device;
pub mod encoder;
pub mod hwqueue;
pub mod request;
pub mod restart;
pub mod slot;
pub mod tag_set;
pub mod tags;
#[cfg(test)]
mod tests;

pub use device::{BlockDevice, Limits};
pub use encoder::{RequestEncoder, TagRequest};
pub use hwqueue::{HwQueue, QueueStats, CONTROL_TIMEOUT};
pub use request::{Data, Done, IoError, Op, ProtocolError, Rejected, Request, Unit};
pub use restart::{restart_device, RestartError, RestartQueue, Restarted};
pub use slot::Slot;
pub use tag_set::TagSet;
pub use tags::FreeTags;
