//! Request deadlines, like blk-mq's tag-set timeout, kept at the grain of an epoch so that
//! the hot path never reads a clock.
//!
//! A request is stamped with the queue's current epoch when it is submitted (a copy of a
//! counter). The poll path counts the polls that find nothing and reads the coarse monotonic
//! clock (`CLOCK_MONOTONIC_COARSE`, a vDSO read, no system call) once every
//! [`POLLS_PER_LOOK`] of them; each time an [`EPOCH`] has passed the epoch advances and the queue looks for
//! requests older than the timeout. Time is counted only while the queue is polled, so a
//! deadline can come late when nobody polls (nobody waits then) but never early: a request
//! expires between `timeout` and `timeout` + two epochs after it was submitted.

use std::time::Duration;

/// The grain of deadlines.
pub const EPOCH: Duration = Duration::from_millis(100);
/// How long a request may take unless the caller says otherwise (sd's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Polls between two looks at the clock: a busy poller looks thousands of times per epoch.
const POLLS_PER_LOOK: u32 = 64;

/// The coarse monotonic clock, in nanoseconds.
fn coarse_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill; CLOCK_MONOTONIC_COARSE exists on
    // every Linux uvio runs on (since 2.6.32).
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

#[derive(Debug)]
pub(crate) struct Deadlines {
    timeout: Option<Duration>,
    /// Whole epochs a request may stay in flight.
    epochs: u32,
    /// Advances by one every [`EPOCH`] of polled time.
    epoch: u32,
    /// When (coarse clock) the next epoch begins.
    next_epoch_at: u64,
    polls: u32,
}

impl Deadlines {
    pub(crate) fn new(timeout: Option<Duration>) -> Self {
        let mut deadlines = Deadlines {
            timeout: None,
            epochs: 0,
            epoch: 0,
            next_epoch_at: coarse_now().saturating_add(EPOCH.as_nanos() as u64),
            polls: 0,
        };
        deadlines.set_timeout(timeout);
        deadlines
    }

    /// `None`: requests never expire.
    pub(crate) fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
        let per_epoch = EPOCH.as_nanos();
        self.epochs = timeout.map_or(u32::MAX, |t| {
            u32::try_from(t.as_nanos().div_ceil(per_epoch)).unwrap_or(u32::MAX)
        });
    }

    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The stamp of a request submitted now.
    #[inline(always)]
    pub(crate) fn stamp(&self) -> u32 {
        self.epoch
    }

    /// Counts a poll; true when an epoch just began and requests stamped `epochs` or more
    /// epochs ago should be looked for.
    #[inline(always)]
    pub(crate) fn poll(&mut self) -> bool {
        self.polls = self.polls.wrapping_add(1);
        self.polls.is_multiple_of(POLLS_PER_LOOK) && self.look_now()
    }

    /// Epochs pass with or without a timeout: the queue's other once-an-epoch looks (a
    /// doorbell the device missed, DEVICE_NEEDS_RESET) matter to a queue whose requests may
    /// take forever too.
    #[cold]
    fn look_now(&mut self) -> bool {
        self.look(coarse_now())
    }

    /// Advances the epoch if the clock (`now`, in coarse nanoseconds) has reached the next.
    fn look(&mut self, now: u64) -> bool {
        if now < self.next_epoch_at {
            return false;
        }
        self.epoch = self.epoch.wrapping_add(1);
        // After a long pause (nobody polled) the clock jumps ahead; the epoch still advances
        // by one, so a pause never expires requests early.
        self.next_epoch_at = now.saturating_add(EPOCH.as_nanos() as u64);
        true
    }

    /// Whether a request stamped `stamp` is past its deadline.
    #[inline]
    pub(crate) fn expired(&self, stamp: u32) -> bool {
        self.epoch.wrapping_sub(stamp) > self.epochs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(deadlines: &mut Deadlines, now: u64) -> bool {
        deadlines.look(now)
    }

    #[test]
    fn a_request_expires_after_its_timeout_and_not_before() {
        let mut d = Deadlines::new(Some(Duration::from_millis(250)));
        let epoch = EPOCH.as_nanos() as u64;
        let start = d.next_epoch_at;
        let stamp = d.stamp();
        // 250 ms is 3 epochs: the request expires once more than 3 have passed.
        for i in 0..3 {
            assert!(at(&mut d, start + i * epoch));
            assert!(!d.expired(stamp), "early after {} epochs", i + 1);
        }
        assert!(at(&mut d, start + 3 * epoch));
        assert!(d.expired(stamp));
    }

    #[test]
    fn the_epoch_advances_only_when_its_time_has_come() {
        let mut d = Deadlines::new(Some(Duration::from_secs(1)));
        let start = d.next_epoch_at;
        assert!(!at(&mut d, start - 1));
        assert!(at(&mut d, start));
        assert!(!at(&mut d, start + 1));
        // A long pause moves the epoch by one only.
        assert!(at(&mut d, start + 3_600_000_000_000));
        assert_eq!(d.epoch, 2);
    }

    #[test]
    fn no_timeout_never_expires_but_epochs_still_pass() {
        let mut d = Deadlines::new(None);
        let start = d.next_epoch_at;
        let stamp = d.stamp();
        assert!(at(&mut d, start));
        assert!(at(&mut d, start + 3_600_000_000_000));
        assert!(!d.expired(stamp));
        d.epoch = u32::MAX - 1;
        assert!(!d.expired(0));
    }

    #[test]
    fn the_coarse_clock_moves_forward() {
        let a = coarse_now();
        std::thread::sleep(Duration::from_millis(30));
        assert!(coarse_now() > a);
    }
}
