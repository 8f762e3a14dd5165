//! virtio-blk.

pub mod config;

pub use config::BlkConfig;
