//! virtio-scsi.

pub mod config;

pub use config::ScsiConfig;
