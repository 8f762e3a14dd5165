//! SCSI requests on a virtio-scsi request queue: block requests become READ/WRITE(10/16),
//! SYNCHRONIZE CACHE, UNMAP and WRITE SAME(16) CDBs for a LUN; passthrough commands go as
//! given. CHECK CONDITION comes back as an error carrying the decoded sense.

use std::sync::Arc;

use super::error::ScsiError;
use super::passthrough::ScsiPassthrough;
use super::units::{UnitInfo, UnitTable};
use super::wire::{self, CmdResp, CMD_REQ_LEN, CMD_RESP_LEN, SENSE_SIZE};
use crate::block::request::data_segments;
use crate::block::{IoError, Op, RequestEncoder, Slot, TagRequest, Unit};
use crate::dma::DmaBuf;
use crate::scsi_proto::cdb::{self, UnmapDescriptor};
use crate::scsi_proto::sense::{ScsiStatus, SenseData, SenseKey};
use crate::virtio::queue::{ChainSink, Segment};

// Per-tag slot layout.
const REQ: usize = 0;
const RESP: usize = 64;
const UNMAP_PARAMS: usize = RESP + CMD_RESP_LEN + 4;
const UNMAP_PARAMS_LEN: usize = cdb::UNMAP_HEADER_LEN + cdb::UNMAP_DESCRIPTOR_LEN;
/// Bytes of DMA memory per tag.
pub const SCSI_SLOT_SIZE: usize = 256;
/// Descriptors of every virtio-scsi chain besides its data: the request header, the response
/// and room for an UNMAP parameter list.
pub const SCSI_CHAIN_OVERHEAD: usize = 3;
const _: () = assert!(UNMAP_PARAMS + UNMAP_PARAMS_LEN <= SCSI_SLOT_SIZE);

/// Encodes requests for one virtio-scsi request queue.
#[derive(Debug)]
pub struct ScsiEncoder {
    table: Arc<UnitTable>,
    generation: u64,
    units: Vec<UnitInfo>,
    /// Requests in flight per unit on this queue, against each unit's budget.
    in_flight: Vec<u16>,
    /// One logical block of zeroes, the data of WRITE SAME for write-zeroes.
    zeroes: DmaBuf,
    max_segments: usize,
    max_segment_size: u32,
    queue_index: u16,
}

/// The tag a request carries on the wire: the hardware queue in the high bits, the tag in
/// the low 16, unique across the host's queues.
pub fn wire_tag(queue_index: u16, tag: u16) -> u64 {
    (u64::from(queue_index) << 16) | u64::from(tag)
}

impl ScsiEncoder {
    pub fn new(
        table: Arc<UnitTable>,
        queue_index: u16,
        zeroes: DmaBuf,
        max_segments: usize,
    ) -> Self {
        ScsiEncoder {
            table,
            generation: u64::MAX,
            units: Vec::new(),
            in_flight: Vec::new(),
            zeroes,
            max_segments,
            max_segment_size: 0xffff_f000,
            queue_index,
        }
    }

    /// Takes a fresh copy of the unit table when it changed; free otherwise.
    fn refresh(&mut self) {
        if self.table.generation() != self.generation {
            let (generation, units) = self.table.snapshot();
            self.generation = generation;
            self.in_flight.resize(units.len(), 0);
            self.units = units;
        }
    }
}

/// The residual count of the response the device wrote in `slot`, or the error it reports.
/// A GOOD response needs two loads: the status word (qualifier, status, response) and the
/// residual.
#[inline]
fn check_response(slot: &Slot<'_>) -> Result<u32, IoError> {
    let [_, _, status, response] = slot.get::<u32>(RESP + 8).to_ne_bytes();
    if response != wire::response::OK || status != 0 {
        return Err(response_error(slot));
    }
    Ok(u32::from_le(slot.get::<u32>(RESP + 4)))
}

/// The error of a response other than OK with GOOD, with the sense of a CHECK CONDITION
/// (off the hot path).
#[cold]
fn response_error(slot: &Slot<'_>) -> IoError {
    let resp = CmdResp::from_words(slot.get::<u64>(RESP), slot.get::<u32>(RESP + 8));
    if resp.response != wire::response::OK {
        return ScsiError::Response {
            code: resp.response,
            name: wire::response::name(resp.response),
        }
        .into();
    }
    let sense = (resp.sense_len > 0).then(|| {
        let mut sense = [0u8; SENSE_SIZE];
        let n = (resp.sense_len as usize).min(SENSE_SIZE);
        slot.get_bytes(RESP + 12, &mut sense[..n]);
        SenseData::parse(&sense[..n]).ok()
    });
    ScsiError::Status {
        status: ScsiStatus(resp.status),
        sense: sense.flatten(),
    }
    .into()
}

impl ScsiEncoder {
    /// Gives back the LUN budget a request took from `unit` (a passthrough command, which is
    /// addressed by LUN field, took none).
    fn release(&mut self, unit: Unit, command: Option<&ScsiPassthrough>) {
        if command.is_some() {
            return;
        }
        if let Some(n) = self.in_flight.get_mut(unit.index() as usize) {
            *n = n.saturating_sub(1);
        }
    }
}

impl RequestEncoder for ScsiEncoder {
    /// The scan's and revalidation's commands, sent as given.
    type Command = ScsiPassthrough;

    fn slot_size(&self) -> usize {
        SCSI_SLOT_SIZE
    }

    fn max_chain(&self) -> usize {
        self.max_segments + SCSI_CHAIN_OVERHEAD
    }

    #[inline]
    fn encode(
        &mut self,
        at: TagRequest<'_, ScsiPassthrough>,
        segments: &mut impl ChainSink,
    ) -> Result<(), IoError> {
        let TagRequest {
            tag,
            slot,
            unit,
            request,
            command: passthrough,
        } = at;
        let op = request.op.name();
        let (lun_field, command, data_in, budgeted) = if let Some(command) = passthrough {
            // Passthrough to a LUN addressed directly (the scan): no unit, no budget.
            (command.address, command.cdb, command.data_in, None)
        } else {
            self.refresh();
            let index = unit.index() as usize;
            let info = self
                .units
                .get(index)
                .ok_or(IoError::NoSuchUnit(unit.index()))?;
            if info.removed {
                return Err(ScsiError::Response {
                    code: wire::response::BAD_TARGET,
                    name: "BAD_TARGET (the LUN was removed)",
                }
                .into());
            }
            if self.in_flight[index] >= info.budget {
                return Err(IoError::UnitBusy {
                    budget: info.budget,
                });
            }
            let limits = &info.limits;
            let bs = u64::from(limits.logical_block_size);
            let (command, data_in) = {
                {
                    limits.check(request, info.capacity)?;
                    if request.fua && !info.fua {
                        return Err(IoError::NotSupported {
                            op: "FUA on this LUN",
                        });
                    }
                    let lba = request.offset / bs;
                    // Reads and writes move exactly their data (which `check` validated).
                    let len = match request.op {
                        Op::Read | Op::Write => request.data.len(),
                        _ => request.len,
                    };
                    let blocks = u32::try_from(len / bs).map_err(|_| IoError::TooLarge {
                        op,
                        len,
                        max: limits.max_transfer_bytes,
                    })?;
                    match request.op {
                        Op::Read if info.use_16 => (cdb::read_16(lba, blocks, request.fua), true),
                        Op::Read => (cdb::read(lba, blocks, request.fua), true),
                        Op::Write if info.use_16 => {
                            (cdb::write_16(lba, blocks, request.fua), false)
                        }
                        Op::Write => (cdb::write(lba, blocks, request.fua), false),
                        Op::Flush if info.use_16 => (cdb::synchronize_cache_16(0, 0, false), false),
                        Op::Flush => (cdb::synchronize_cache_10(0, 0, false), false),
                        Op::Discard => {
                            let mut params = [0u8; UNMAP_PARAMS_LEN];
                            let n = cdb::unmap_parameter_list(
                                &mut params,
                                &[UnmapDescriptor { lba, blocks }],
                            )
                            .map_err(|_| IoError::BadRequest {
                                op,
                                what: "one UNMAP descriptor",
                            })?;
                            slot.put_bytes(UNMAP_PARAMS, &params[..n]);
                            (cdb::unmap(n as u16), false)
                        }
                        Op::WriteZeroes => (cdb::write_same_16(lba, blocks, false, false), false),
                        Op::GetId => return Err(IoError::NotSupported { op }),
                    }
                }
            };
            (info.lun_field, command, data_in, Some(index))
        };
        slot.put(
            REQ,
            // The wire tag names the queue too, so ABORT TASK is unambiguous.
            wire::cmd_req_words(
                &lun_field,
                wire_tag(self.queue_index, tag),
                command.as_bytes(),
            ),
        );
        // A response the device never wrote must not read as success: response byte 0xff
        // (the last of the status word: qualifier, status, response).
        slot.put(RESP + 8, u32::from_ne_bytes([0, 0, 0, 0xff]));
        // The request header and the response each in a descriptor of its own, never
        // merged with the data as a virtio-blk read merges its status: QEMU's virtio-scsi
        // (7.2) takes the first device-readable and the first device-writable buffer's
        // whole length as the header and the response unless VIRTIO_F_ANY_LAYOUT was
        // negotiated, which it offers only to legacy drivers (docs/benchmarks.md, eleventh
        // session: a merged read came back OVERRUN).
        segments.push(Segment::readable(slot.iova(REQ), CMD_REQ_LEN as u32));
        // Device-readable buffers first, then device-writable ones (virtio 1.2, 2.7.4.2).
        match request.op {
            Op::Discard => segments.push(Segment::readable(
                slot.iova(UNMAP_PARAMS),
                UNMAP_PARAMS_LEN as u32,
            )),
            Op::WriteZeroes => {
                let bs = budgeted.map_or(0, |i| {
                    request
                        .len
                        .min(u64::from(self.units[i].limits.logical_block_size))
                });
                segments.push(Segment::readable(self.zeroes.iova(), bs as u32));
            }
            _ if !data_in => data_segments(&request.data, false, self.max_segment_size, segments),
            _ => {}
        }
        segments.push(Segment::writable(slot.iova(RESP), CMD_RESP_LEN as u32));
        if data_in {
            data_segments(&request.data, true, self.max_segment_size, segments);
        }
        if let Some(i) = budgeted {
            self.in_flight[i] += 1;
        }
        Ok(())
    }

    fn abort(&mut self, unit: Unit, command: Option<&ScsiPassthrough>) {
        self.release(unit, command);
    }

    fn retryable(&self, error: &IoError) -> bool {
        let Some(error) = ScsiError::of(error) else {
            return false;
        };
        match error {
            // The midlayer's disposition: a UNIT ATTENTION (reset, LUN inventory or capacity
            // changed) only reports an event; BUSY and TASK SET FULL ask to come back.
            ScsiError::Status { status, sense } => {
                sense
                    .as_ref()
                    .is_some_and(|s| s.key == SenseKey::UNIT_ATTENTION)
                    || *status == ScsiStatus::BUSY
                    || *status == ScsiStatus::TASK_SET_FULL
            }
            ScsiError::Response { code, .. } => *code == wire::response::BUSY,
            _ => false,
        }
    }

    #[inline]
    fn decode(
        &mut self,
        at: TagRequest<'_, ScsiPassthrough>,
        written: u32,
    ) -> Result<u64, IoError> {
        let TagRequest {
            slot,
            unit,
            request,
            command,
            ..
        } = at;
        self.release(unit, command);
        let resid = check_response(slot)?;
        let data = request.data.len();
        let moved = data.saturating_sub(u64::from(resid));
        if command.is_some() {
            return Ok(moved);
        }
        match request.op {
            Op::Read => {
                if resid != 0 || u64::from(written) < CMD_RESP_LEN as u64 + data {
                    return Err(IoError::ShortTransfer {
                        written,
                        expected: CMD_RESP_LEN as u64 + data,
                    });
                }
                Ok(data)
            }
            Op::Write => {
                if resid != 0 {
                    return Err(IoError::ShortTransfer {
                        written: moved as u32,
                        expected: data,
                    });
                }
                Ok(data)
            }
            Op::Discard | Op::WriteZeroes => Ok(request.len),
            Op::Flush | Op::GetId => Ok(0),
        }
    }
}
