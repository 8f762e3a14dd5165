//! What a block device is, as the tools see it: capacity, block sizes, limits, features.
//! A virtio-blk disk and a SCSI disk LUN both fill one in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;

use super::request::{Data, IoError, Op, Request, Unit};

/// Limits of a range operation (discard, write zeroes).
/// Largest read or write uvio puts in one request unless the device or the caller says
/// less; larger transfers are split (the kernel's default max_sectors_kb is in the same
/// range).
pub const DEFAULT_MAX_TRANSFER: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RangeOpLimits {
    /// Most bytes one request may cover.
    pub max_bytes: u64,
    /// Required alignment of offset and length, in bytes.
    pub alignment: u32,
}

/// What one request may be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub logical_block_size: u32,
    pub physical_block_size: u32,
    /// Largest read or write in one request; larger transfers are split by the caller
    /// ([`Limits::chunks`]).
    pub max_transfer_bytes: u64,
    /// Most data segments (descriptors) per request.
    pub max_segments: usize,
    /// Largest single data segment.
    pub max_segment_size: u32,
    pub read_only: bool,
    /// The device has a flush command (a volatile write cache may exist).
    pub flush: bool,
    pub discard: Option<RangeOpLimits>,
    pub write_zeroes: Option<RangeOpLimits>,
}

impl Limits {
    /// Segments `len` bytes of one buffer take.
    pub fn segments_for(&self, len: usize) -> usize {
        len.div_ceil(self.max_segment_size as usize).max(1)
    }

    /// Whether `request` is the common case, a read or write of one buffer in one segment,
    /// and passes every check [`check`](Self::check) makes: a few instructions instead of the
    /// general walk. `false` says nothing (the caller asks `check` for the verdict).
    #[inline]
    pub fn quick_check(&self, request: &Request, capacity: u64) -> bool {
        let Data::One(buf) = &request.data else {
            return false;
        };
        let len = buf.len() as u64;
        let bs = self.logical_block_size;
        let op_ok = match request.op {
            Op::Read => true,
            Op::Write => !self.read_only,
            _ => false,
        };
        // One segment, within the transfer limit, and not empty (len - 1 wraps for 0).
        let max_len = self
            .max_transfer_bytes
            .min(u64::from(self.max_segment_size));
        op_ok
            && bs.is_power_of_two()
            && (request.offset | len) & u64::from(bs - 1) == 0
            && len.wrapping_sub(1) < max_len
            && self.max_segments != 0
            && capacity
                .checked_sub(request.offset)
                .is_some_and(|room| len <= room)
    }

    /// Checks a request against these limits and a device of `capacity` bytes, before any
    /// I/O: alignment, range, size, segments, read-only, support.
    #[inline]
    pub fn check(&self, request: &Request, capacity: u64) -> Result<(), IoError> {
        if self.quick_check(request, capacity) {
            return Ok(());
        }
        self.check_slow(request, capacity)
    }

    #[inline(never)]
    fn check_slow(&self, request: &Request, capacity: u64) -> Result<(), IoError> {
        let op = request.op.name();
        if request.op.writes() && self.read_only {
            return Err(IoError::ReadOnly { op });
        }
        let in_range = |offset: u64, len: u64| self.check_extent(request.op, offset, len, capacity);
        match request.op {
            Op::Read | Op::Write => {
                let len = request.data.len();
                in_range(request.offset, len)?;
                if len > self.max_transfer_bytes {
                    return Err(IoError::TooLarge {
                        op,
                        len,
                        max: self.max_transfer_bytes,
                    });
                }
                self.check_segments(request)?;
            }
            Op::Discard | Op::WriteZeroes => {
                let limits = if request.op == Op::Discard {
                    self.discard
                } else {
                    self.write_zeroes
                };
                let limits = limits.ok_or(IoError::NotSupported { op })?;
                in_range(request.offset, request.len)?;
                if request.len > limits.max_bytes {
                    return Err(IoError::TooLarge {
                        op,
                        len: request.len,
                        max: limits.max_bytes,
                    });
                }
            }
            Op::Flush => {
                if !self.flush {
                    return Err(IoError::NotSupported { op });
                }
            }
            Op::GetId => {
                if request.data.bufs().first().map_or(0, |b| b.len()) < 20 {
                    return Err(IoError::BadRequest {
                        op,
                        what: "a buffer of at least 20 bytes",
                    });
                }
            }
        }
        Ok(())
    }

    /// Checks that the request's buffers fit in the device's segment limits.
    pub fn check_segments(&self, request: &Request) -> Result<(), IoError> {
        let segments: usize = request
            .data
            .bufs()
            .iter()
            .map(|b| self.segments_for(b.len()))
            .sum();
        if segments > self.max_segments {
            return Err(IoError::TooManySegments {
                op: request.op.name(),
                segments,
                max: self.max_segments,
            });
        }
        Ok(())
    }

    /// Checks that `offset..offset+len` is block-aligned, non-empty and inside `capacity`.
    pub fn check_extent(
        &self,
        op: Op,
        offset: u64,
        len: u64,
        capacity: u64,
    ) -> Result<(), IoError> {
        let op = op.name();
        let bs = u64::from(self.logical_block_size);
        if !offset.is_multiple_of(bs) || !len.is_multiple_of(bs) || len == 0 {
            return Err(IoError::Misaligned {
                op,
                offset,
                len,
                block_size: self.logical_block_size,
            });
        }
        if offset.checked_add(len).is_none_or(|end| end > capacity) {
            return Err(IoError::OutOfRange {
                op,
                offset,
                len,
                capacity,
            });
        }
        Ok(())
    }

    /// Splits `offset..offset+len` into pieces no larger than `max` bytes (a multiple of the
    /// logical block size), as the block layer splits a bio that exceeds the queue limits.
    pub fn chunks(&self, offset: u64, len: u64, max: u64) -> impl Iterator<Item = (u64, u64)> {
        let bs = u64::from(self.logical_block_size.max(1));
        let step = (max / bs * bs).max(bs);
        let end = offset.saturating_add(len);
        (0..)
            .map(move |i| offset + i * step)
            .take_while(move |&o| o < end)
            .map(move |o| (o, step.min(end - o)))
    }
}

/// A block device: a virtio-blk disk or a SCSI disk LUN.
#[derive(Debug, Clone, Serialize)]
pub struct BlockDevice {
    /// How the tools name it: a BDF, or `BDF/C:T:L` for a LUN.
    pub name: String,
    #[serde(serialize_with = "serialize_capacity")]
    capacity: Arc<AtomicU64>,
    pub limits: Limits,
    /// A volatile write cache is enabled (writes need a flush to be durable).
    pub write_cache: bool,
    pub serial: Option<String>,
    pub nr_hw_queues: u16,
    pub queue_depth: u16,
    /// The unit every request to this device is submitted for.
    #[serde(skip)]
    unit: Unit,
}

fn serialize_capacity<S: serde::Serializer>(c: &Arc<AtomicU64>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(c.load(Ordering::Relaxed))
}

impl BlockDevice {
    pub fn new(name: String, capacity_bytes: u64, limits: Limits) -> Self {
        BlockDevice {
            name,
            capacity: Arc::new(AtomicU64::new(capacity_bytes)),
            limits,
            write_cache: false,
            serial: None,
            nr_hw_queues: 1,
            queue_depth: 1,
            unit: Unit::ONLY,
        }
    }

    /// The same device as unit `unit` of its host (a SCSI LUN).
    pub(crate) fn for_unit(mut self, unit: Unit) -> Self {
        self.unit = unit;
        self
    }

    /// The unit to submit this device's requests for ([`HwQueue::submit`]).
    ///
    /// [`HwQueue::submit`]: super::HwQueue::submit
    pub fn unit(&self) -> Unit {
        self.unit
    }

    /// Capacity in bytes (it changes when the device is resized).
    pub fn capacity(&self) -> u64 {
        self.capacity.load(Ordering::Acquire)
    }

    pub fn set_capacity(&self, bytes: u64) {
        self.capacity.store(bytes, Ordering::Release);
    }

    /// A shared handle on the capacity, for the queues that check requests against it.
    pub fn capacity_handle(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            logical_block_size: 512,
            physical_block_size: 4096,
            max_transfer_bytes: 1 << 20,
            max_segments: 4,
            max_segment_size: 65536,
            read_only: false,
            flush: true,
            discard: Some(RangeOpLimits {
                max_bytes: 1 << 30,
                alignment: 512,
            }),
            write_zeroes: None,
        }
    }

    fn ranged(op: Op, offset: u64, len: u64) -> Request {
        Request {
            op,
            offset,
            len,
            data: Data::None,
            fua: false,
        }
    }

    #[test]
    fn checks_alignment_range_support_and_read_only() {
        let l = limits();
        let cap = 1 << 30;
        assert!(l.check(&ranged(Op::Discard, 4096, 8192), cap).is_ok());
        assert!(matches!(
            l.check(&ranged(Op::Discard, 100, 512), cap),
            Err(IoError::Misaligned { .. })
        ));
        assert!(matches!(
            l.check(&ranged(Op::Discard, cap - 512, 1024), cap),
            Err(IoError::OutOfRange { .. })
        ));
        assert!(matches!(
            l.check(&ranged(Op::Discard, u64::MAX - 511, 512), cap),
            Err(IoError::Misaligned { .. } | IoError::OutOfRange { .. })
        ));
        assert!(matches!(
            l.check(&ranged(Op::WriteZeroes, 0, 512), cap),
            Err(IoError::NotSupported { .. })
        ));
        assert!(matches!(
            l.check(&ranged(Op::Discard, 0, 0), cap),
            Err(IoError::Misaligned { .. })
        ));
        let ro = Limits {
            read_only: true,
            ..limits()
        };
        assert!(matches!(
            ro.check(&ranged(Op::Discard, 0, 512), cap),
            Err(IoError::ReadOnly { .. })
        ));
        assert!(ro.check(&Request::flush(), cap).is_ok());
    }

    #[test]
    fn splits_a_long_range_into_block_aligned_pieces() {
        let l = limits();
        let pieces: Vec<(u64, u64)> = l.chunks(512, 3 << 20, 1 << 20).collect();
        assert_eq!(
            pieces,
            [
                (512, 1 << 20),
                (512 + (1 << 20), 1 << 20),
                (512 + (2 << 20), 1 << 20)
            ]
        );
        let odd: Vec<(u64, u64)> = l.chunks(0, 1536, 1000).collect();
        assert_eq!(odd, [(0, 512), (512, 512), (1024, 512)]);
        assert_eq!(l.chunks(0, 0, 4096).count(), 0);
        assert_eq!(l.segments_for(65536 * 2 + 1), 3);
    }
}
