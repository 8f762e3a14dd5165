//! Completions kept past the poll callback, for the tools whose loop is not the hot path (the
//! in-flight loop of `read`, `write` and `verify`, [`crate::inflight`]): each request's
//! context is a number the tool chose (a chunk or slot index), handed back with the outcome
//! and the buffers.

use uvio::block::{Data, IoError};
use uvio::device::AnyQueue;

/// One finished request.
#[derive(Debug)]
pub struct Finished {
    /// The context the request was submitted with.
    pub cookie: u64,
    /// The tag it ran under (to recover it if it timed out).
    pub tag: u16,
    pub result: Result<u64, IoError>,
    pub data: Data,
}

/// Polls `queue` once and appends what finished to `out`; returns how many.
pub fn poll_into(queue: &mut AnyQueue<u64>, out: &mut Vec<Finished>) -> usize {
    queue.poll(|d| {
        out.push(Finished {
            cookie: *d.ctx,
            tag: d.tag,
            result: d.result,
            data: d.data,
        })
    })
}
