//! Completions: each one's latencies, errors and verification, the statistics they go into,
//! and the progress counters the status line reads.

use std::sync::atomic::Ordering;

use uvio::block::{Data, IoError};

use super::{Engine, Inflight, Unrecorded};
use crate::bench::options::Ddir;

impl Engine {
    /// Handles one completion (of request `tag`): latency, errors, verification; takes its
    /// buffer back.
    #[inline]
    pub(super) fn complete(
        &mut self,
        io: &Inflight,
        result: Result<u64, IoError>,
        data: Data,
        now: u64,
        record: bool,
        tag: u16,
    ) {
        self.in_flight -= 1;
        self.issue_into_backlog(now);
        if let Some(p) = &mut self.pacer {
            p.completed();
        }
        let buf = match data {
            Data::One(b) => Some(b),
            _ => None,
        };
        let d = io.ddir.index();
        match result {
            Err(e) => {
                self.stats.dirs[d].errors += 1;
                // fio's errnos: ETIMEDOUT for a request past its deadline or cut short by
                // a device reset, EIO otherwise.
                let errno = if matches!(e, IoError::TimedOut { .. } | IoError::DeviceReset { .. }) {
                    110
                } else {
                    5
                };
                let what = format!(
                    "{} of {} bytes at offset {}: {e}",
                    io.ddir.name(),
                    io.len,
                    io.offset
                );
                if let IoError::TimedOut { .. } = e {
                    self.recover(tag, e.to_string());
                }
                self.fail(what, errno);
            }
            Ok(_) => {
                self.total_ios[d] += 1;
                self.total_bytes[d] += io.len;
                if record {
                    self.unrecorded.push(Unrecorded {
                        ddir: io.ddir,
                        bytes: io.len,
                        offset: io.offset,
                        slat: io.issued.saturating_sub(io.start),
                        clat: now.saturating_sub(io.issued),
                        done_at: now,
                    });
                }
                if io.ddir == Ddir::Read {
                    if let (Some(v), Some(buf)) = (&self.verifier, &buf) {
                        match v.check(buf.as_slice(), io.offset, io.expect) {
                            Ok(()) => self.stats.verified += 1,
                            Err(bad) => {
                                self.stats.verify_failures += 1;
                                if self.stats.first_bad_block.is_none() {
                                    self.stats.first_bad_block = Some(bad);
                                }
                                if self.stats.error == 0 {
                                    self.stats.error = 84; // EILSEQ, as fio
                                }
                                if self.verify_fatal {
                                    self.stopped = true;
                                }
                            }
                        }
                    }
                }
            }
        }
        if let Some(b) = buf {
            self.free.push(b);
        }
    }

    /// Hands request `tag`, which timed out, to the group's recovery thread (once per
    /// request: its tag stays held until the device answers).
    #[cold]
    fn recover(&mut self, tag: u16, what: String) {
        if let Some(link) = &self.recovery {
            let _ = link.tx.send(super::RecoverRequest {
                function: link.function.clone(),
                lun: link.lun,
                queue: self.hw_queue,
                tag,
                what,
            });
        }
    }

    pub(super) fn fail(&mut self, what: String, errno: i32) {
        if self.stats.first_error.is_none() {
            self.stats.first_error = Some(what);
            self.stats.error = errno;
        }
        self.stopped = true;
    }

    /// Puts the latencies held back by `complete` into the histograms (and the logs).
    #[inline]
    pub(super) fn record_latencies(&mut self) {
        for u in self.unrecorded.drain(..) {
            let (slat, clat) = (self.clock.ns(u.slat), self.clock.ns(u.clat));
            self.stats.dirs[u.ddir.index()].record(u.bytes, slat, clat);
            if let Some(logs) = &mut self.logs {
                let ms = self.clock.ns(u.done_at.saturating_sub(self.log_epoch)) / 1_000_000;
                logs.io(ms, u.ddir, u.bytes, u.offset, slat, clat);
            }
        }
    }

    /// The last round's latencies and the progress counters, once a refill's kicks are done
    /// (timed as the bookkeeping stage with `UVIO_BENCH_STAGES=1`).
    #[inline]
    pub(super) fn bookkeeping(&mut self) {
        let t_c = if self.stages.is_some() {
            self.clock.now()
        } else {
            0
        };
        self.record_latencies();
        self.publish();
        if let Some(st) = &mut self.stages {
            st.bookkeeping += self.clock.now().saturating_sub(t_c);
        }
    }

    /// Milliseconds from the logs' time 0 to `tick`.
    #[inline]
    pub(super) fn log_ms(&self, tick: u64) -> u64 {
        self.clock.ns(tick.saturating_sub(self.log_epoch)) / 1_000_000
    }

    #[inline]
    pub(super) fn publish(&self) {
        for d in 0..3 {
            self.progress.ios[d].store(self.total_ios[d], Ordering::Relaxed);
            self.progress.bytes[d].store(self.total_bytes[d], Ordering::Relaxed);
        }
    }
}
