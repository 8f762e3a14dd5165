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
