//! Ctrl-C (SIGINT) and SIGTERM end a `--watch` or a benchmark early: the loop sees the
//! request, stops, prints what it has (as fio does on Ctrl-C) and the device is reset on the
//! way out, instead of the process dying with the device still running.
//!
//! A hot-unplug stops them the same way: when the kernel asks for a device uvio holds
//! (VFIO's device request, see [`uvio::vfio::RemovalWatch`]), the driver's listener calls
//! [`device_removed`], every loop sees [`requested`], fails what it has in flight with
//! "device removed" and lets go of the device, so the removal completes. Such a command exits
//! with status 1 and says "the device BDF was removed (hot-unplug)".

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use uvio::pci::PciAddress;

/// The signal that arrived, 0 while none has.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// The first device the kernel asked back.
static REMOVED: OnceLock<PciAddress> = OnceLock::new();

extern "C" fn on_signal(signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    RECEIVED.store(signal, Ordering::Relaxed);
}

/// From now on SIGINT and SIGTERM set the flag [`requested`] reads instead of killing, and
/// so does the removal of any device this process opens through VFIO.
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
    uvio::vfio::set_removal_listener(device_removed);
}

/// The kernel asked for `bdf` back (hot-unplug): every loop stops as on a signal.
pub fn device_removed(bdf: PciAddress) {
    let _ = REMOVED.set(bdf);
}

/// The device that was removed, once one was.
pub fn removed() -> Option<PciAddress> {
    REMOVED.get().copied()
}

/// True once SIGINT or SIGTERM arrived after [`catch`], or a device was removed.
pub fn requested() -> bool {
    RECEIVED.load(Ordering::Relaxed) != 0 || removed().is_some()
}

/// The signal that arrived after [`catch`], if one did.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::Relaxed) {
        0 => None,
        signal => Some(signal),
    }
}

/// Why a command stops early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// SIGINT or SIGTERM.
    Signal(i32),
    /// The kernel asked for the device back (hot-unplug).
    Removed(PciAddress),
}

/// Why the loops were asked to stop, if they were: a removal wins over a signal (the
/// device is gone either way, and that is what the user must hear).
pub fn cause() -> Option<Cause> {
    removed()
        .map(Cause::Removed)
        .or_else(|| received().map(Cause::Signal))
}

/// A command stopped by SIGINT or SIGTERM, or by the removal of its device. On a signal the
/// process exits with 128 + the signal, as a shell reports a process the signal killed; on a
/// removal with 1.
#[derive(Debug)]
pub struct Interrupted {
    pub cause: Cause,
    /// What was still in flight when it stopped (failed with "device removed" on a removal).
    pub in_flight: u64,
}

impl Interrupted {
    /// The error of a command whose device `bdf` was removed with nothing of its in flight.
    pub fn removed(bdf: PciAddress) -> Self {
        Interrupted {
            cause: Cause::Removed(bdf),
            in_flight: 0,
        }
    }
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.cause {
            Cause::Signal(signal) => write!(
                f,
                "interrupted by signal {signal} with {} requests in flight; the device is reset \
                 on exit",
                self.in_flight
            ),
            Cause::Removed(bdf) => {
                write!(f, "the device {bdf} was removed (hot-unplug)")?;
                if self.in_flight > 0 {
                    write!(
                        f,
                        "; {} requests in flight failed: device removed",
                        self.in_flight
                    )?;
                }
                write!(f, "; uvio let go of it")
            }
        }
    }
}

impl std::error::Error for Interrupted {}

/// A command's result, made to say so when a device was removed meanwhile: a command that
/// finished anyway (its last request done before it looked) still fails, and another error
/// (of a device going away) gets the reason added.
pub fn account_for_removal(
    result: Result<(), Box<dyn std::error::Error>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let Some(bdf) = removed() else {
        return result;
    };
    match result {
        Ok(()) => Err(Interrupted::removed(bdf).into()),
        Err(e) if e.to_string().contains("was removed") => Err(e),
        Err(e) => Err(format!("{e}\n{}", Interrupted::removed(bdf)).into()),
    }
}

/// The exit status for an error a command ended with: 128 + the signal for an
/// interruption by a signal, 1 otherwise (a removed device included).
pub fn exit_status(error: &(dyn std::error::Error + 'static)) -> u8 {
    // The interruption may be wrapped (an error that holds its device open, say).
    let interrupted = std::iter::successors(Some(error), |e| e.source())
        .find_map(|e| e.downcast_ref::<Interrupted>());
    match interrupted {
        Some(Interrupted {
            cause: Cause::Signal(signal),
            ..
        }) => 128u8.saturating_add((*signal).clamp(0, 127) as u8),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bdf() -> PciAddress {
        "0000:01:00.0".parse().unwrap()
    }

    #[test]
    fn a_removal_says_so_and_exits_1() {
        let e = Interrupted {
            cause: Cause::Removed(bdf()),
            in_flight: 3,
        };
        assert_eq!(
            e.to_string(),
            "the device 0000:01:00.0 was removed (hot-unplug); 3 requests in flight failed: \
             device removed; uvio let go of it"
        );
        assert_eq!(exit_status(&e), 1);
        assert_eq!(
            Interrupted::removed(bdf()).to_string(),
            "the device 0000:01:00.0 was removed (hot-unplug); uvio let go of it"
        );
    }

    #[test]
    fn a_signal_exits_128_plus_it() {
        let e = Interrupted {
            cause: Cause::Signal(2),
            in_flight: 1,
        };
        assert!(e
            .to_string()
            .starts_with("interrupted by signal 2 with 1 requests"));
        assert_eq!(exit_status(&e), 130);
        let other: Box<dyn std::error::Error> = "boom".into();
        assert_eq!(exit_status(&*other), 1);
    }
}
