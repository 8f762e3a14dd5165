//! Ctrl-C (SIGINT) and SIGTERM end a `--watch` or a benchmark early: the loop sees the
//! request, stops, prints what it has (as fio does on Ctrl-C) and the device is reset on the
//! way out, instead of the process dying with the device still running.

use std::sync::atomic::{AtomicI32, Ordering};

/// The signal that arrived, 0 while none has.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    RECEIVED.store(signal, Ordering::Relaxed);
}

/// From now on SIGINT and SIGTERM set the flag [`requested`] reads instead of killing.
pub fn catch() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a plain handler and an empty mask is valid; the
        // handler only stores to an atomic.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// True once SIGINT or SIGTERM arrived after [`catch`].
pub fn requested() -> bool {
    received().is_some()
}

/// The signal that arrived after [`catch`], if one did.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::Relaxed) {
        0 => None,
        signal => Some(signal),
    }
}

/// A command stopped by SIGINT or SIGTERM; the process exits with 128 + the signal, as a
/// shell reports a process the signal killed.
#[derive(Debug)]
pub struct Interrupted {
    pub signal: i32,
    /// What was still in flight when it stopped.
    pub in_flight: u64,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "interrupted by signal {} with {} requests in flight; the device is reset on exit",
            self.signal, self.in_flight
        )
    }
}

impl std::error::Error for Interrupted {}

/// The exit status for an error a command ended with: 128 + the signal for an
/// interruption, 1 otherwise.
pub fn exit_status(error: &(dyn std::error::Error + 'static)) -> u8 {
    error
        .downcast_ref::<Interrupted>()
        .map_or(1, |i| 128u8.saturating_add(i.signal.clamp(0, 127) as u8))
}
