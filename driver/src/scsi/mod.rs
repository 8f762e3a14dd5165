//! virtio-scsi.

pub mod asc_text;
pub mod cdb;
pub mod config;
pub mod encoder;
pub mod error;
pub mod host;
pub mod lun;
pub mod passthrough;
pub mod reply;
pub mod scan;
pub mod sense;
pub mod units;
pub mod wire;

pub use config::ScsiConfig;
