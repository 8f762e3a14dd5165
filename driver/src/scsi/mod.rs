//! virtio-scsi.

pub mod config;
pub mod encoder;
pub mod error;
pub mod host;
pub mod passthrough;
pub mod scan;
pub mod units;
pub mod wire;

pub use config::ScsiConfig;
