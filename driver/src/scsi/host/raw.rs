//! Any SCSI command, as a user gives it (`uvio raw`, as sg3_utils' `sg_raw`): the CDB as
//! is, with data in, data out or none, through request queue 0. The scan's command path
//! only reads; this one also sends data.

use super::{ControlError, VirtioScsiHost};
use crate::block::{Data, HwQueue, IoError};
use crate::scsi::encoder::ScsiEncoder;
use crate::scsi::error::ScsiError;
use crate::scsi::passthrough::ScsiPassthrough;
use crate::scsi_proto::cdb::Cdb;
use crate::scsi_proto::lun::virtio_lun;

/// The data phase of a raw command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawData {
    None,
    /// Data-in: a buffer of this many bytes.
    In(usize),
    /// Data-out: these bytes.
    Out(Vec<u8>),
}

impl VirtioScsiHost {
    /// Sends `cdb` to Linux LUN `linux_lun` of `target` with `data`, and returns the bytes
    /// the device sent back (data-in: the buffer less the residual; otherwise none). A
    /// CHECK CONDITION comes back as [`ScsiError::Status`] with its sense. Fails with
    /// [`ControlError::QueueInUse`] while a thread holds queue 0.
    pub fn raw_command(
        &mut self,
        target: u16,
        linux_lun: u64,
        cdb: Cdb,
        data: RawData,
    ) -> Result<Result<Vec<u8>, IoError>, ControlError> {
        let mut queue = self.tag_set.take_queue(0).ok_or(ControlError::QueueInUse)?;
        let result = self.raw_through(&mut queue, target, linux_lun, cdb, data);
        self.tag_set.return_queue(queue);
        Ok(result)
    }

    fn raw_through(
        &mut self,
        queue: &mut HwQueue<ScsiEncoder>,
        target: u16,
        linux_lun: u64,
        cdb: Cdb,
        data: RawData,
    ) -> Result<Vec<u8>, IoError> {
        let address = virtio_lun(target as u8, linux_lun).map_err(ScsiError::from)?;
        let data_in = !matches!(data, RawData::Out(_));
        let buffer = match &data {
            RawData::None | RawData::In(0) => Data::None,
            RawData::In(len) => {
                let mut buf = self.dma.alloc(*len).map_err(ScsiError::from)?.into_buf();
                buf.set_len(*len);
                Data::One(buf)
            }
            RawData::Out(bytes) if bytes.is_empty() => Data::None,
            RawData::Out(bytes) => {
                let mut buf = self
                    .dma
                    .alloc(bytes.len())
                    .map_err(ScsiError::from)?
                    .into_buf();
                buf.set_len(bytes.len());
                buf.as_mut_slice().copy_from_slice(bytes);
                Data::One(buf)
            }
        };
        let command = ScsiPassthrough {
            address,
            cdb,
            data_in,
        };
        let request = command.request(buffer);
        let (result, returned) = queue.run_command(command, request);
        self.counts.record(target, linux_lun, &result);
        let moved = result?;
        Ok(match (data_in, returned) {
            (true, Data::One(buf)) => {
                let n = (moved as usize).min(buf.len());
                buf.as_slice()[..n].to_vec()
            }
            _ => Vec::new(),
        })
    }
}
