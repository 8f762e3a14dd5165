//! One phase of a job clone's loop (ramp, measured run, or verify read-back): keep the
//! queue at its depth, release and prepare staged requests, reap completions, sample
//! bandwidth and IOPS, and notice requests that never complete.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::pacing::Hold;
use super::submit::{Budget, Feed, Source};
use super::{Engine, LOST_TIMEOUT, SAMPLE_INTERVAL};
use crate::bench::queue::QueueHandle;
use crate::bench::stats::{batch_bucket, CpuUsage};

impl Engine {
    /// Runs one phase until `limit_bytes` are issued, `deadline` passes or the source ends,
    /// then drains. Returns the phase's wall time.
    pub(super) fn run_phase(
        &mut self,
        queue: &mut QueueHandle,
        source: &mut Source,
        limit_bytes: Option<u64>,
        deadline: Option<u64>,
        record: bool,
    ) -> Duration {
        let clock = self.clock;
        let t0 = clock.now();
        let interval = clock.ticks(SAMPLE_INTERVAL);
        let lost_after = clock.ticks(LOST_TIMEOUT);
        let mut budget = Budget {
            limit: limit_bytes,
            issued: 0,
        };
        let paced = self.pacer.is_some() && matches!(source, Source::Workload(_));
        self.held = None;
        let mut feed = Feed {
            queue,
            source,
            budget: &mut budget,
            now: t0,
            record,
            paced,
        };
        self.fill_backlog(t0);
        let mut issuing = true;
        let mut next_sample = t0 + interval;
        let mut sample_at = t0;
        let mut sample_base = (self.total_ios, self.total_bytes);
        let mut last_progress = t0;
        let mut now = t0;
        self.phase_t0 = t0;
        loop {
            if let Some(link) = &self.snapshot {
                let wanted = link.request.load(Ordering::Relaxed);
                if wanted != link.slot.answered.load(Ordering::Relaxed) {
                    self.take_snapshot(now, wanted);
                }
            }
            if deadline.is_some_and(|d| now >= d) || self.stopped || crate::interrupt::requested() {
                issuing = false;
                // A removed device is not drained: the job fails with fio's ENODEV, what
                // it has in the ring (in flight or prepared ahead) with it, and it lets go of
                // the device (the kernel's removal waits for that).
                if let Some(bdf) = crate::interrupt::removed() {
                    let n = self.in_flight as usize + self.staged.len();
                    self.fail(
                        format!(
                            "device removed: {bdf} was hot-unplugged; {n} requests in flight \
                             failed"
                        ),
                        libc::ENODEV,
                    );
                    break;
                }
            }
            // Release what was prepared ahead, as room allows (see `release_staged`).
            if let Some(issued) = self.release_staged(feed.queue, record, 0) {
                now = issued;
            }
            // Submit: fill to the depth, one kick per batch.
            let mut kicked = false;
            while issuing && self.in_flight < self.depth && self.staged.is_empty() {
                let t_a = if self.stages.is_some() {
                    clock.now()
                } else {
                    0
                };
                let want = self.batch_submit.min(self.depth - self.in_flight);
                feed.now = now;
                let (n, source_done) = self.submit_up_to(&mut feed, want, false);
                issuing = !source_done;
                if n > 0 {
                    let t_b = if self.stages.is_some() {
                        clock.now()
                    } else {
                        0
                    };
                    feed.queue.kick();
                    let issued = clock.now();
                    feed.queue
                        .stamp_issued(&self.batch, self.issue_stamp(now, issued, false));
                    self.batch.clear();
                    kicked = true;
                    if record {
                        self.stats.submit[batch_bucket(n)] += 1;
                        self.stats.submit_calls += 1;
                    }
                    now = issued;
                    if let Some(st) = &mut self.stages {
                        st.submit += t_b.saturating_sub(t_a);
                        st.kick += issued.saturating_sub(t_b);
                        st.requests += u64::from(n);
                    }
                }
                if n < want || self.pending.is_some() {
                    break;
                }
            }
            if kicked {
                // The device is busy with the refill: now do the last round's bookkeeping.
                // Not between the refill's kicks: at iodepth 128, 85 latencies recorded after
                // the first kick held the other 84 requests back while the device was idle
                // (UVIO_BENCH_STAGES: the doorbell's share per request fell from 1.6-2.3k
                // ticks to 0.6-1.0k and the wait from 1.4-2.2k to 0.9-1.4k once it moved
                // here; see docs/benchmarks.md).
                self.bookkeeping();
            }
            // Prepare the next requests while the device works on these.
            if issuing && !self.stopped {
                feed.now = now;
                issuing = self.prepare_staged(&mut feed);
            }
            if self.in_flight == 0 {
                if !self.staged.is_empty() {
                    continue;
                }
                if !issuing || self.stopped {
                    break;
                }
                if self.pending.is_some() {
                    // Pacing holds the next I/O back with nothing in flight: sleep towards
                    // its time (never past the deadline). Else a shared queue is full of
                    // other threads' requests.
                    if let Some(Hold::Sleep { until }) = self.held {
                        self.sleep_towards(until.min(deadline.unwrap_or(u64::MAX)));
                    } else {
                        std::hint::spin_loop();
                    }
                    now = clock.now();
                    continue;
                }
            }
            // Reap: busy-poll for at least `complete_min` (0: look once), handling at most
            // `complete_max`. Completions are handled as the queue hands them over, all
            // stamped with one clock reading taken at the first of them.
            // While pacing holds an I/O back, look once and go back to it.
            let min = if self.held.is_some() {
                0
            } else {
                self.complete_min.min(self.in_flight) as usize
            };
            let max = self.complete_max as usize;
            let mut got = 0usize;
            let mut stamp: Option<u64> = None;
            let mut spins = 0u32;
            let t_e = if self.stages.is_some() {
                clock.now()
            } else {
                0
            };
            // Finished requests wait to be handled: release what was prepared ahead first, so
            // that the device works while they are handled (they keep the time they were
            // seen). At iodepth 1 this takes the completion's handling off the turnaround.
            if !self.staged.is_empty() {
                let staged = u16::try_from(self.staged.len()).unwrap_or(u16::MAX);
                let ready = u32::from(feed.queue.ready(staged));
                if ready > 0 {
                    stamp = Some(clock.now());
                    self.release_staged(feed.queue, record, ready);
                }
            }
            loop {
                got += feed.queue.poll(max - got, |io, result, data, tag| {
                    let at = *stamp.get_or_insert_with(|| clock.now());
                    let t_engine = if self.stages.is_some() {
                        clock.now()
                    } else {
                        0
                    };
                    self.complete(io, result, data, at, record, tag);
                    if let Some(st) = &mut self.stages {
                        st.engine_complete += clock.now().saturating_sub(t_engine);
                    }
                });
                if got >= min.max(1) || min == 0 || got >= max {
                    break;
                }
                if self.pause {
                    std::hint::spin_loop();
                }
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(256)
                    && clock.now().saturating_sub(last_progress) > lost_after
                {
                    break;
                }
            }
            now = stamp.unwrap_or_else(|| clock.now());
            if let (Some(st), Some(first)) = (&mut self.stages, stamp) {
                st.wait += first.saturating_sub(t_e);
                st.complete += clock.now().saturating_sub(first);
            }
            if got == 0 {
                if now.saturating_sub(last_progress) > lost_after && self.in_flight > 0 {
                    let lost = self.in_flight;
                    self.fail(
                        format!(
                            "{lost} requests never completed within {}s (lost)",
                            LOST_TIMEOUT.as_secs()
                        ),
                        110,
                    );
                    break;
                }
                continue;
            }
            last_progress = now;
            if record {
                self.stats.complete[batch_bucket(got as u32)] += 1;
                self.stats.complete_calls += 1;
            }
            if !issuing || self.verifier.is_some() {
                // No kick will follow to overlap with (or verify made this path slow anyway).
                self.record_latencies();
                self.publish();
            }
            if record {
                if let Some(p) = &mut self.pacer {
                    let failed =
                        p.check_min_rate(now, &self.total_bytes, &self.total_ios, &self.clock);
                    if let Some(why) = failed {
                        // fio's `check_min_rate` ends the job with EIO.
                        self.fail(why, 5);
                    }
                }
            }
            if record && self.logs.is_some() {
                let ms = self.log_ms(now);
                if let Some(logs) = &mut self.logs {
                    logs.tick(ms, &self.total_bytes, &self.total_ios);
                }
            }
            if record && now >= next_sample {
                let secs = clock.between(sample_at, now).as_secs_f64().max(1e-9);
                for d in 0..3 {
                    let ios = self.total_ios[d] - sample_base.0[d];
                    let bytes = self.total_bytes[d] - sample_base.1[d];
                    if ios > 0 || self.stats.dirs[d].ios > 0 {
                        self.stats.dirs[d]
                            .bw_samples
                            .add(bytes as f64 / 1024.0 / secs);
                        self.stats.dirs[d].iops_samples.add(ios as f64 / secs);
                    }
                }
                sample_base = (self.total_ios, self.total_bytes);
                sample_at = now;
                next_sample = now + interval;
            }
        }
        self.record_latencies();
        self.publish();
        clock.between(t0, now)
    }

    /// Copies the figures so far into the status-interval slot (the running phase's time
    /// included) and answers request `wanted`.
    #[cold]
    fn take_snapshot(&mut self, now: u64, wanted: u64) {
        self.record_latencies();
        let Some(link) = &self.snapshot else { return };
        let phase = self.clock.between(self.phase_t0, now);
        // A polling thread never waits on the printer: while it reads the last snapshot, the
        // answer comes on a later pass.
        let stats = match link.slot.stats.try_lock() {
            Ok(stats) => Some(stats),
            Err(std::sync::TryLockError::WouldBlock) => return,
            Err(std::sync::TryLockError::Poisoned(_)) => None,
        };
        if let Some(mut s) = stats {
            s.copy_from(&self.stats);
            for (d, counts) in s.dirs.iter_mut().zip(self.phase_dirs) {
                if counts {
                    d.runtime += phase;
                }
            }
            s.job_runtime = self.runtime_before + phase;
            s.cpu = CpuUsage::this_thread().since(self.cpu0);
        }
        link.slot.answered.store(wanted, Ordering::Release);
    }

    /// Sleeps until about 1 ms before `until` (ticks), in slices of at most 100 ms so that a
    /// signal is noticed; the rest is left to the polling loop, for a precise start.
    fn sleep_towards(&self, until: u64) {
        let left = self.clock.between(self.clock.now(), until);
        let margin = Duration::from_millis(1);
        if left > margin * 2 && !crate::interrupt::requested() {
            std::thread::sleep((left - margin).min(Duration::from_millis(100)));
        }
    }
}
