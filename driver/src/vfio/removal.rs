//! Surprise removal: VFIO's device request notifier.
//!
//! When the kernel wants a vfio-pci function back (a hot-unplug such as QEMU's `device_del`,
//! or an unbind through sysfs), vfio-pci signals the eventfd registered for
//! `VFIO_PCI_REQ_IRQ_INDEX` and then blocks the removal until the process closes the device,
//! asking again every 10 s. Without a registered eventfd it only logs "blocked until released
//! by user" and waits for as long as the process runs.
//!
//! [`VfioDevice::watch_removal`](super::VfioDevice::watch_removal) registers such an eventfd
//! and starts a [`RemovalWatch`]: one thread blocked in `poll(2)` on it (no busy loop). When
//! the request comes it sets the [`RemovalSignal`] flag, logs a warning and calls the
//! process-wide listener set with [`set_removal_listener`], so the program can stop, fail what
//! is in flight and let go of the device.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use super::VfioError;
use crate::pci::PciAddress;

/// What the program does when the kernel asks for a device back: called once per device,
/// from the device's watch thread.
pub type RemovalListener = Arc<dyn Fn(PciAddress) + Send + Sync>;

static LISTENER: RwLock<Option<RemovalListener>> = RwLock::new(None);

/// Sets the process-wide removal listener (replacing any earlier one): every
/// [`RemovalWatch`] calls it, with the function's address, when the kernel asks for that
/// function back. Like a signal handler it belongs to the program, not to one device: set it
/// before opening devices. It runs on the watch thread; keep it short (set a flag).
pub fn set_removal_listener(listener: impl Fn(PciAddress) + Send + Sync + 'static) {
    let mut slot = LISTENER.write().unwrap_or_else(|p| p.into_inner());
    *slot = Some(Arc::new(listener));
}

fn listener() -> Option<RemovalListener> {
    LISTENER.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Whether the kernel has asked for a device back; cheap to clone and to check (one atomic
/// load), from any thread.
#[derive(Debug, Clone)]
pub struct RemovalSignal {
    inner: Arc<SignalState>,
}

#[derive(Debug)]
struct SignalState {
    address: PciAddress,
    removed: AtomicBool,
}

impl RemovalSignal {
    fn new(address: PciAddress) -> Self {
        RemovalSignal {
            inner: Arc::new(SignalState {
                address,
                removed: AtomicBool::new(false),
            }),
        }
    }

    /// The function being watched.
    pub fn address(&self) -> PciAddress {
        self.inner.address
    }

    /// True once the kernel asked for the device back: stop using it and close it.
    pub fn is_removed(&self) -> bool {
        self.inner.removed.load(Ordering::Acquire)
    }

    /// Marks the device removed; true the first time.
    fn raise(&self) -> bool {
        !self.inner.removed.swap(true, Ordering::AcqRel)
    }
}

/// A thread waiting for the kernel's device request on one function. Dropping it stops the
/// thread; the eventfd stays registered with VFIO until the device is closed (closing the
/// device releases it), where a later request finds nobody listening, which is harmless.
#[derive(Debug)]
pub struct RemovalWatch {
    signal: RemovalSignal,
    /// Written to stop the thread.
    stop: Arc<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl RemovalWatch {
    /// Starts the thread that waits on `request` (an eventfd VFIO signals) for `address`.
    pub(super) fn spawn(address: PciAddress, request: OwnedFd) -> Result<Self, VfioError> {
        let signal = RemovalSignal::new(address);
        let stop = Arc::new(eventfd()?);
        let thread = std::thread::Builder::new()
            .name(format!("uvio-removal-{address}"))
            .spawn({
                let (signal, stop) = (signal.clone(), Arc::clone(&stop));
                move || wait_for_requests(&signal, request.as_fd(), stop.as_fd())
            })
            .map_err(|source| VfioError::Ioctl {
                op: "spawning the removal watch thread",
                source,
            })?;
        Ok(RemovalWatch {
            signal,
            stop,
            thread: Some(thread),
        })
    }

    /// The flag the thread raises.
    pub fn signal(&self) -> &RemovalSignal {
        &self.signal
    }

    /// True once the kernel asked for the device back.
    pub fn is_removed(&self) -> bool {
        self.signal.is_removed()
    }
}

impl Drop for RemovalWatch {
    fn drop(&mut self) {
        if signal_eventfd(self.stop.as_fd()).is_err() {
            // The thread cannot be told to stop: leave it blocked rather than hang here.
            log::warn!(
                "{}: could not stop the removal watch thread",
                self.signal.address()
            );
            return;
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The watch thread: blocks until VFIO signals `request` or `stop` is written.
fn wait_for_requests(signal: &RemovalSignal, request: BorrowedFd<'_>, stop: BorrowedFd<'_>) {
    let address = signal.address();
    let mut requests: u64 = 0;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: request.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is an array of two initialised pollfd structs that outlives the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            log::error!(
                "{address}: waiting for device requests failed ({e}); removal goes unnoticed"
            );
            return;
        }
        if fds[1].revents != 0 {
            return;
        }
        if fds[0].revents & libc::POLLIN == 0 {
            if fds[0].revents != 0 {
                log::error!(
                    "{address}: the device request eventfd failed (poll revents {:#x})",
                    fds[0].revents
                );
                return;
            }
            continue;
        }
        // The count of requests since the last read; VFIO repeats one every 10 s.
        requests += read_eventfd(request).unwrap_or(1);
        if signal.raise() {
            log::warn!(
                "{address}: the kernel asks for the device back (hot-unplug or unbind); \
                 stopping and releasing it"
            );
            if let Some(listener) = listener() {
                listener(address);
            }
        } else {
            log::debug!("{address}: device request #{requests}: still waiting for the release");
        }
    }
}

/// A new eventfd (close-on-exec, blocking, counter 0).
pub(super) fn eventfd() -> Result<OwnedFd, VfioError> {
    // SAFETY: eventfd takes two integers and shares no memory with the caller.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(VfioError::Ioctl {
            op: "eventfd",
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: eventfd just returned `fd` as a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to an eventfd's counter, waking whoever polls it.
fn signal_eventfd(fd: BorrowedFd<'_>) -> io::Result<()> {
    let one = 1u64.to_ne_bytes();
    // SAFETY: writes the 8 bytes of `one`, which live across the call.
    let n = unsafe { libc::write(fd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    if n == 8 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads (and so resets) an eventfd's counter.
fn read_eventfd(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut count = [0u8; 8];
    // SAFETY: reads at most 8 bytes into `count`, which lives across the call.
    let n = unsafe { libc::read(fd.as_raw_fd(), count.as_mut_ptr().cast(), count.len()) };
    if n == 8 {
        Ok(u64::from_ne_bytes(count))
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    fn address() -> PciAddress {
        "0000:01:00.0".parse().unwrap()
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < Duration::from_secs(10), "{what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// What VFIO does on a hot-unplug, played by writing the eventfd: the flag goes up once,
    /// the listener hears the address once, and later requests (VFIO repeats them) change
    /// nothing. Dropping the watch stops its thread.
    #[test]
    fn a_device_request_raises_the_flag_and_calls_the_listener_once() {
        static HEARD: Mutex<Vec<PciAddress>> = Mutex::new(Vec::new());
        set_removal_listener(|a| HEARD.lock().unwrap().push(a));

        let request = eventfd().unwrap();
        let kernel_side = request.try_clone().unwrap();
        let watch = RemovalWatch::spawn(address(), request).unwrap();
        let signal = watch.signal().clone();
        std::thread::sleep(Duration::from_millis(20));
        assert!(!watch.is_removed(), "nothing asked yet");

        signal_eventfd(kernel_side.as_fd()).unwrap();
        wait_until("the flag goes up", || signal.is_removed());
        wait_until("the listener hears it", || {
            !HEARD.lock().unwrap().is_empty()
        });
        signal_eventfd(kernel_side.as_fd()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(*HEARD.lock().unwrap(), vec![address()]);
        assert_eq!(signal.address(), address());

        let start = Instant::now();
        drop(watch);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the thread stops at once"
        );
        assert!(signal.is_removed(), "the flag outlives the watch");
    }

    #[test]
    fn dropping_an_idle_watch_stops_its_thread() {
        let watch = RemovalWatch::spawn(address(), eventfd().unwrap()).unwrap();
        let start = Instant::now();
        drop(watch);
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
