//! virtio-scsi.

pub mod asc_text;
pub mod cdb;
pub mod config;
pub mod lun;
pub mod reply;
pub mod sense;

pub use config::ScsiConfig;
