//! How a SCSI request fails short of success: a status with sense data, a virtio-scsi
//! response, or a reply the scan could not use. The block layer carries these as an opaque
//! [`IoError::Protocol`]; the SCSI layer (and its callers) ask for them back with
//! [`ScsiError::of`].

use crate::block::{IoError, ProtocolError};
use crate::dma::DmaError;
use crate::scsi_proto::lun::LunError;
use crate::scsi_proto::reply::ReplyError;
use crate::scsi_proto::sense::{ScsiStatus, SenseData};
use crate::virtio::queue::AddError;

#[derive(Debug, thiserror::Error)]
pub enum ScsiError {
    /// The command completed with a status other than GOOD (CHECK CONDITION with its
    /// decoded sense, BUSY, TASK SET FULL, ...).
    #[error("SCSI status {status}{}", sense.as_ref().map(|s| format!(": {s}")).unwrap_or_default())]
    Status {
        status: ScsiStatus,
        sense: Option<SenseData>,
    },
    /// virtio-scsi did not deliver the command (a response other than VIRTIO_SCSI_S_OK).
    #[error("virtio-scsi response {name} ({code})")]
    Response { code: u8, name: &'static str },
    #[error("posting an event buffer: {0}")]
    EventBuffer(AddError),
    #[error(transparent)]
    Lun(#[from] LunError),
    #[error(transparent)]
    Dma(#[from] DmaError),
    #[error("INQUIRY reply: {0}")]
    InquiryReply(ReplyError),
    #[error(transparent)]
    CapacityReply(ReplyError),
}

impl ScsiError {
    /// The SCSI error a block request ended with, if it ended with one.
    pub fn of(error: &IoError) -> Option<&ScsiError> {
        error.protocol()
    }

    /// The sense data of a CHECK CONDITION, if `error` is one.
    pub fn sense_of(error: &IoError) -> Option<&SenseData> {
        match Self::of(error)? {
            ScsiError::Status { sense, .. } => sense.as_ref(),
            _ => None,
        }
    }
}

impl From<ScsiError> for IoError {
    fn from(error: ScsiError) -> Self {
        IoError::Protocol(ProtocolError::new(error))
    }
}
