//! virtio-blk requests on the wire (virtio 1.2, 5.2.6): a 16-byte header the device reads,
//! the data, and a status byte the device writes; discard and write-zeroes carry one range
//! segment instead of data.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::block::request::data_segments;
use crate::block::{Data, IoError, Limits, Op, Request, RequestEncoder, TagRequest, Unit};
use crate::dma::DmaBuf;
use crate::virtio::queue::{ChainSink, Segment};

const VIRTIO_BLK_T_IN: u32 = 0;
const VIRTIO_BLK_T_OUT: u32 = 1;
const VIRTIO_BLK_T_FLUSH: u32 = 4;
const VIRTIO_BLK_T_GET_ID: u32 = 8;
const VIRTIO_BLK_T_DISCARD: u32 = 11;
const VIRTIO_BLK_T_WRITE_ZEROES: u32 = 13;

const VIRTIO_BLK_S_OK: u8 = 0;
const VIRTIO_BLK_S_IOERR: u8 = 1;
const VIRTIO_BLK_S_UNSUPP: u8 = 2;

/// Length of the serial a GET_ID returns.
pub const BLK_ID_BYTES: usize = 20;

// Per-tag slot layout.
const HEADER: usize = 0;
const RANGE: usize = 16;
const STATUS: usize = 32;
/// Bytes of DMA memory per tag.
pub const BLK_SLOT_SIZE: usize = 64;
/// Descriptors of every virtio-blk chain besides its data: the header and the status.
pub const BLK_CHAIN_OVERHEAD: usize = 2;

/// Encodes block requests for one virtio-blk queue.
#[derive(Debug, Clone)]
pub struct BlkEncoder {
    limits: Limits,
    capacity: Arc<AtomicU64>,
}

impl BlkEncoder {
    pub fn new(limits: Limits, capacity: Arc<AtomicU64>) -> Self {
        BlkEncoder { limits, capacity }
    }
}

/// `struct virtio_blk_outhdr` (type, ioprio, sector) as two little-endian words.
fn header(kind: u32, sector: u64) -> [u64; 2] {
    [u64::from(kind).to_le(), sector.to_le()]
}

/// `struct virtio_blk_discard_write_zeroes` (sector, num_sectors, flags) as two words.
fn range(sector: u64, sectors: u32, flags: u32) -> [u64; 2] {
    [
        sector.to_le(),
        (u64::from(sectors) | u64::from(flags) << 32).to_le(),
    ]
}

impl BlkEncoder {
    /// The buffer of a read whose status byte goes right after its data, in the data's own
    /// descriptor: a read into one buffer with status room ([`DmaBuf::has_status_room`])
    /// that fits one segment with the byte. Its chain is two descriptors instead of three,
    /// so the device fetches, maps and unmaps one fewer per request. Framing is free for a
    /// virtio 1.x device (virtio 1.2, 2.6.4: no assumption about the arrangement of
    /// descriptors); QEMU takes the status from the last byte of the last device-writable
    /// buffer. Decided from the request alone, so `encode` and `decode` agree.
    #[inline]
    fn status_after_data<'r>(&self, request: &'r Request) -> Option<&'r DmaBuf> {
        match (request.op, &request.data) {
            (Op::Read, Data::One(buf))
                if buf.has_status_room() && buf.len() < self.limits.max_segment_size as usize =>
            {
                Some(buf)
            }
            _ => None,
        }
    }
}

impl RequestEncoder for BlkEncoder {
    /// virtio-blk has no passthrough path.
    type Command = Infallible;

    fn slot_size(&self) -> usize {
        BLK_SLOT_SIZE
    }

    fn max_chain(&self) -> usize {
        self.limits.max_segments + BLK_CHAIN_OVERHEAD
    }

    #[inline]
    fn encode(
        &mut self,
        at: TagRequest<'_, Infallible>,
        segments: &mut impl ChainSink,
    ) -> Result<(), IoError> {
        let TagRequest {
            slot,
            unit,
            request,
            ..
        } = at;
        self.limits
            .check(request, self.capacity.load(Ordering::Acquire))?;
        // A virtio-blk disk is its only unit.
        if unit != Unit::ONLY {
            return Err(IoError::NoSuchUnit(unit.index()));
        }
        if request.fua {
            // virtio-blk has no FUA bit; refuse rather than silently weaken the guarantee.
            return Err(IoError::NotSupported {
                op: "write with FUA (follow the write with a flush)",
            });
        }
        let sector = request.offset / 512;
        let kind = match request.op {
            Op::Read => VIRTIO_BLK_T_IN,
            Op::Write => VIRTIO_BLK_T_OUT,
            Op::Flush => VIRTIO_BLK_T_FLUSH,
            Op::GetId => VIRTIO_BLK_T_GET_ID,
            Op::Discard => VIRTIO_BLK_T_DISCARD,
            Op::WriteZeroes => VIRTIO_BLK_T_WRITE_ZEROES,
        };
        let sector = if matches!(request.op, Op::Read | Op::Write) {
            sector
        } else {
            0
        };
        slot.put(HEADER, header(kind, sector));
        segments.push(Segment::readable(slot.iova(HEADER), 16));
        if let Some(buf) = self.status_after_data(request) {
            // A stale status byte must never read as success.
            buf.set_status_byte(0xff);
            segments.push(Segment::writable(buf.iova(), buf.len() as u32 + 1));
            return Ok(());
        }
        slot.put(STATUS, 0xffu8);
        match request.op {
            Op::Read => data_segments(&request.data, true, self.limits.max_segment_size, segments),
            Op::Write => {
                data_segments(&request.data, false, self.limits.max_segment_size, segments)
            }
            Op::Flush => {}
            Op::GetId => {
                let buf = &request.data.bufs()[0];
                segments.push(Segment::writable(buf.iova(), BLK_ID_BYTES as u32));
            }
            Op::Discard | Op::WriteZeroes => {
                // `check` bounded len by the device's max sectors, which fit in 32 bits.
                // Flags: bit 0 "unmap" lets write-zeroes deallocate, as Linux asks by default.
                let unmap = u32::from(request.op == Op::WriteZeroes);
                slot.put(
                    RANGE,
                    range(request.offset / 512, (request.len / 512) as u32, unmap),
                );
                segments.push(Segment::readable(slot.iova(RANGE), 16));
            }
        }
        segments.push(Segment::writable(slot.iova(STATUS), 1));
        Ok(())
    }

    #[inline]
    fn decode(&mut self, at: TagRequest<'_, Infallible>, written: u32) -> Result<u64, IoError> {
        let TagRequest { slot, request, .. } = at;
        let status = match self.status_after_data(request) {
            Some(buf) => buf.status_byte(),
            None => slot.get::<u8>(STATUS),
        };
        match status {
            VIRTIO_BLK_S_OK => {}
            VIRTIO_BLK_S_IOERR => return Err(IoError::DeviceIo),
            VIRTIO_BLK_S_UNSUPP => return Err(IoError::DeviceUnsupported),
            other => return Err(IoError::BadStatus(other)),
        }
        match request.op {
            Op::Read => {
                // The device counts every byte it wrote: the data and the status byte.
                let expected = request.data.len() + 1;
                if u64::from(written) != expected {
                    return Err(IoError::ShortTransfer { written, expected });
                }
                Ok(request.data.len())
            }
            Op::Write => Ok(request.data.len()),
            Op::GetId => Ok(BLK_ID_BYTES as u64),
            Op::Discard | Op::WriteZeroes => Ok(request.len),
            Op::Flush => Ok(0),
        }
    }
}
