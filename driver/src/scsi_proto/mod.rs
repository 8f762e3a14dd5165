//! The SCSI protocol, independent of any transport: CDB builders, sense data, ASC/ASCQ
//! texts, LUN encodings and the parsers of command replies.
//!
//! A leaf module: it imports nothing else from this crate, so the virtio-scsi host
//! (`crate::scsi`) and anything else that speaks SCSI can build on it. Every parser
//! reads device bytes through the bounds-checked readers of `bytes`, so no reply, however
//! short or malformed, makes it panic.

pub mod asc_text;
mod bytes;
pub mod cdb;
pub mod lun;
pub mod reply;
pub mod sense;

#[cfg(test)]
mod tests;
