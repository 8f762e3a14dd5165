//! SCSI commands passed through as given (the scan, revalidation): a path of the SCSI layer,
//! not of the generic block request. The block layer's `Request` knows nothing of CDBs; a
//! hardware queue carries a passthrough command in the tag's record next to the request
//! that holds its data.

use crate::block::{Data, Op, Request};
use crate::scsi_proto::cdb::Cdb;

/// A SCSI command for the LUN whose virtio-scsi LUN field is `address` (a LUN that need not
/// be a unit yet: the scan sends INQUIRY to LUNs it has not met).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScsiPassthrough {
    pub address: [u8; 8],
    pub cdb: Cdb,
    /// Data flows from the device into the buffer (INQUIRY, READ); otherwise out of it.
    pub data_in: bool,
}

impl ScsiPassthrough {
    /// The block request that carries this command's data through a hardware queue.
    pub fn request(&self, data: Data) -> Request {
        Request {
            // Names the direction in errors; the encoder sends the CDB, not a read or write.
            op: if self.data_in { Op::Read } else { Op::Write },
            offset: 0,
            len: data.len(),
            data,
            fua: false,
        }
    }
}
