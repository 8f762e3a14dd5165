//! One hardware queue as C drives it: requests named by address and cookie, and completions
//! handed out in batches with a minimum, a maximum and a timeout (`uvio_poll`).

use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_void, CString};
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use driver::block::{Data, Done, IoError, Op, Request, Unit};
use driver::device::AnyQueue;
use driver::dma::DmaBuf;

use crate::error::{c_message, io_errno, CapiError};
use crate::memory::{RegionView, Regions};

/// Most iovec entries one vectored request takes (Linux's IOV_MAX).
pub const MAX_IOVCNT: usize = 1024;

/// A finished request, as `uvio_poll` hands it to C.
#[repr(C)]
#[derive(Debug)]
#[allow(non_camel_case_types)]
pub struct uvio_completion {
    pub user_data: *mut c_void,
    pub error_msg: *const c_char,
    pub ret: c_int,
    pub reserved: u32,
}

/// What each request keeps with it: the caller's cookie, and its offset for messages.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cookie {
    user_data: usize,
    offset: u64,
}

/// A completion reaped from the ring and not yet handed to C.
#[derive(Debug)]
struct Finished {
    user_data: usize,
    /// 0, or the negative errno and the message.
    failure: Option<(c_int, CString)>,
}

/// The queue and what C's use of it needs besides.
#[derive(Debug)]
pub struct QueueState {
    queue: AnyQueue<Cookie>,
    /// The device's name, for messages.
    device: String,
    unit: Unit,
    regions: RegionView,
    /// Requests submitted and not yet reaped.
    outstanding: usize,
    /// Reaped and not yet handed out (a poll that timed out, or more than its maximum).
    finished: VecDeque<Finished>,
    /// Messages of the completions the last poll handed out, alive until the next poll.
    handed_messages: Vec<CString>,
}

impl QueueState {
    pub fn new(queue: AnyQueue<Cookie>, device: String, unit: Unit) -> Self {
        let depth = usize::from(queue.depth());
        QueueState {
            queue,
            device,
            unit,
            regions: RegionView::default(),
            outstanding: 0,
            finished: VecDeque::with_capacity(depth),
            handed_messages: Vec::new(),
        }
    }

    pub fn depth(&self) -> u16 {
        self.queue.depth()
    }

    pub fn packed(&self) -> bool {
        self.queue.ring_format() == "packed"
    }

    pub fn index(&self) -> u16 {
        self.queue.index()
    }

    fn buf(
        &mut self,
        regions: &Regions,
        op: Op,
        addr: usize,
        len: usize,
    ) -> Result<DmaBuf, CapiError> {
        if len == 0 {
            return Err(CapiError::BadValue {
                what: "the buffer length",
                value: 0,
                expected: "a positive multiple of the logical block size",
            });
        }
        self.regions.buf(regions, op.name(), addr, len)
    }

    /// A read or write of one buffer.
    pub fn transfer(
        &mut self,
        regions: &Regions,
        op: Op,
        offset: u64,
        (addr, len): (usize, usize),
        user_data: usize,
    ) -> Result<i32, CapiError> {
        let buf = self.buf(regions, op, addr, len)?;
        let request = match op {
            Op::Write => Request::write(offset, buf),
            _ => Request::read(offset, buf),
        };
        self.submit(request, user_data)
    }

    /// A read or write of several buffers, given as `(address, length)` pairs.
    pub fn transfer_vectored(
        &mut self,
        regions: &Regions,
        op: Op,
        offset: u64,
        pieces: impl ExactSizeIterator<Item = (usize, usize)>,
        user_data: usize,
    ) -> Result<i32, CapiError> {
        let count = pieces.len();
        if count == 0 || count > MAX_IOVCNT {
            return Err(CapiError::BadValue {
                what: "iovcnt",
                value: count as i64,
                expected: "1 to 1024 (IOV_MAX)",
            });
        }
        let mut bufs = Vec::with_capacity(count);
        for (addr, len) in pieces {
            bufs.push(self.buf(regions, op, addr, len)?);
        }
        let request = match op {
            Op::Write => Request::writev(offset, bufs),
            _ => Request::readv(offset, bufs),
        };
        self.submit(request, user_data)
    }

    /// A request without data: flush, discard, write-zeroes.
    pub fn ranged(
        &mut self,
        op: Op,
        offset: u64,
        len: u64,
        user_data: usize,
    ) -> Result<i32, CapiError> {
        let request = match op {
            Op::Flush => Request::flush(),
            Op::Discard => Request::discard(offset, len),
            _ => Request::write_zeroes(offset, len),
        };
        self.submit(request, user_data)
    }

    fn submit(&mut self, request: Request, user_data: usize) -> Result<i32, CapiError> {
        let cookie = Cookie {
            user_data,
            offset: request.offset,
        };
        match self.queue.submit(self.unit, request, cookie) {
            Ok(_) => {
                self.outstanding += 1;
                Ok(0)
            }
            Err(rejected) => Err(CapiError::Io {
                device: self.device.clone(),
                source: rejected.error,
            }),
        }
    }

    /// Hands the device what was submitted, then fills `out` (at most its length) with
    /// finished requests, waiting for `min` of them up to `timeout`. Returns how many.
    pub fn poll(
        &mut self,
        out: &mut [MaybeUninit<uvio_completion>],
        min: usize,
        timeout: Option<Duration>,
    ) -> Result<usize, CapiError> {
        self.handed_messages.clear();
        let max = out.len();
        let available = self.finished.len() + self.outstanding;
        if min > available {
            return Err(CapiError::WaitingForNothing {
                wanted: min,
                available,
            });
        }
        self.queue.kick();
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut spins: u32 = 0;
        loop {
            self.reap(max);
            if self.finished.len() >= min {
                break;
            }
            if let Some(deadline) = deadline {
                // The clock is read every 64 spins: in a guest whose clocksource traps,
                // reading it costs more than a poll that finds nothing.
                if spins.is_multiple_of(64) && Instant::now() >= deadline {
                    return Err(CapiError::PollTimedOut {
                        got: self.finished.len(),
                        wanted: min,
                        timeout_ns: timeout.map_or(0, |t| t.as_nanos() as i64),
                    });
                }
            }
            spins = spins.wrapping_add(1);
            std::hint::spin_loop();
        }
        let count = self.finished.len().min(max);
        for (slot, done) in out.iter_mut().zip(self.finished.drain(..count)) {
            let (ret, error_msg) = match done.failure {
                None => (0, std::ptr::null()),
                Some((errno, message)) => {
                    // The message moves into the list that keeps it alive; its heap buffer,
                    // which the pointer names, does not move with it.
                    let ptr = message.as_ptr();
                    self.handed_messages.push(message);
                    (-errno, ptr)
                }
            };
            slot.write(uvio_completion {
                user_data: done.user_data as *mut c_void,
                error_msg,
                ret,
                reserved: 0,
            });
        }
        Ok(count)
    }

    /// Takes finished requests off the ring until `max` wait to be handed out.
    fn reap(&mut self, max: usize) {
        let room = max.saturating_sub(self.finished.len());
        if room == 0 {
            return;
        }
        let (finished, device) = (&mut self.finished, &self.device);
        let reaped = self.queue.poll_up_to(room, |done: Done<'_, Cookie>| {
            finished.push_back(Finished {
                user_data: done.ctx.user_data,
                failure: done
                    .result
                    .err()
                    .map(|e| failure(device, done.op, done.ctx.offset, &done.data, &e)),
            });
        });
        self.outstanding = self.outstanding.saturating_sub(reaped);
    }
}

/// The errno and message of a failed request.
fn failure(device: &str, op: Op, offset: u64, data: &Data, error: &IoError) -> (c_int, CString) {
    let at = match op {
        Op::Flush => String::new(),
        _ if data.is_empty() => format!(" at offset {offset}"),
        _ => format!(" of {} bytes at offset {offset}", data.len()),
    };
    let message = format!("{device}: {}{at}: {error}", op.name());
    (io_errno(error), c_message(&message))
}
