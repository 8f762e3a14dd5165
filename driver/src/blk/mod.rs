//! virtio-blk: configuration, request encoding, and the disk itself.

pub mod config;
pub mod device;
pub mod encoder;

pub use config::BlkConfig;
pub use device::{BlkError, BlkOptions, VirtioBlk};
