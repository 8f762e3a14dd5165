//! The block API, modelled on blk-mq: a [`TagSet`] of hardware queues per device (shared by
//! every LUN of a SCSI host), a [`HwQueue`] owned by one thread that submits requests and
//! polls completions without locks or allocation, and a [`BlockDevice`] description.

pub mod device;
pub mod hwqueue;
pub mod request;
pub mod tags;

pub use device::{BlockDevice, Limits};
pub use hwqueue::{HwQueue, QueueStats, RequestEncoder, SlotMemory};
pub use request::{Completion, Data, IoError, Op, Rejected, Request};
pub use tags::{TagBitmap, TagSet};
