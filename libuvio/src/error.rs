//! What a C API call can fail with, as one typed error that knows its errno, and the
//! thread's last message (`uvio_get_error_msg`).

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use driver::block::IoError;
use driver::device::{AddressError, DeviceError};
use driver::dma::DmaError;

/// Why a call failed. The message says what happened and what to do; [`CapiError::errno`]
/// is the code C sees.
#[derive(Debug, thiserror::Error)]
pub enum CapiError {
    #[error("the {kind} handle is NULL")]
    NullHandle { kind: &'static str },
    #[error(
        "{kind} handle {value:#x} is not open: it was closed already (a double close or a use \
         after close) or never came from uvio"
    )]
    StaleHandle { kind: &'static str, value: usize },
    #[error("handle {value:#x} is a {actual} handle, passed where a {kind} handle belongs")]
    WrongKind {
        kind: &'static str,
        actual: &'static str,
        value: usize,
    },
    #[error("the device is started already: uvio_start is called once")]
    StartedTwice,
    #[error(
        "{device}: PCI function {bdf} is open already in this process (as {open_as}): one \
         process opens a function once; close that device first, or open another LUN of a \
         virtio-scsi host from it with uvio_open_lun"
    )]
    FunctionOpenHere {
        device: String,
        bdf: String,
        open_as: String,
    },
    #[error(
        "{lun} is not on {device}'s PCI function: uvio_open_lun opens another LUN of the same \
         virtio-scsi host (BDF/C:T:L with the same BDF)"
    )]
    OtherHost { device: String, lun: String },
    #[error(
        "{lun}: {device} is virtio-blk, a single disk: uvio_open_lun opens another LUN of a \
         virtio-scsi host"
    )]
    NotAHost { device: String, lun: String },
    #[error("{0} is NULL")]
    NullArgument(&'static str),
    #[error(
        "{} devices are open already: close one first",
        crate::handle::MAX_SLOTS
    )]
    TooManyDevices,
    #[error("the device string is not UTF-8")]
    DeviceNotUtf8,
    #[error("{}", address_message(device, source))]
    Address {
        device: String,
        source: AddressError,
    },
    #[error("{what} is {value}: {expected}")]
    BadValue {
        what: &'static str,
        value: i64,
        expected: &'static str,
    },
    #[error("{0}: properties are set before uvio_start")]
    AlreadyStarted(&'static str),
    #[error("{0} needs a started device: call uvio_start first")]
    NotStarted(&'static str),
    #[error("{device}: {source}")]
    Open { device: String, source: DeviceError },
    #[error("{0} does not offer the packed ring (VIRTIO_F_RING_PACKED): use UVIO_RING_AUTO or UVIO_RING_SPLIT")]
    NoPackedRing(String),
    #[error("{device}: {source}")]
    Dma { device: String, source: DmaError },
    #[error("region at {addr:#x} ({len} bytes) is not a live DMA region of this device (freed already, or not from uvio_alloc_mem)")]
    NotARegion { addr: usize, len: usize },
    #[error(
        "{op}: buffer {addr:#x} of {len} bytes is not inside one DMA memory region of this \
         device: allocate data buffers with uvio_alloc_mem"
    )]
    NotDmaMemory {
        op: &'static str,
        addr: usize,
        len: usize,
    },
    #[error("flags {0:#x}: no request flag is defined yet, pass 0")]
    BadFlags(u32),
    #[error("queue {index} does not exist: the device has {count} queue(s) started")]
    NoSuchQueue { index: i64, count: usize },
    #[error("queue {0} is in use by another thread: a queue is single-threaded")]
    QueueBusy(u16),
    #[error(
        "waiting for {wanted} completions, but only {available} requests are in flight or \
         finished on this queue"
    )]
    WaitingForNothing { wanted: usize, available: usize },
    #[error("{got} of {wanted} completions after the {timeout_ns} ns timeout; the rest stay for the next uvio_poll")]
    PollTimedOut {
        got: usize,
        wanted: usize,
        timeout_ns: i64,
    },
    #[error("{device}: {source}")]
    Io { device: String, source: IoError },
    #[error("internal error (a bug in libuvio, please report it): {0}")]
    Panic(String),
}

impl CapiError {
    /// The positive errno C sees negated.
    pub fn errno(&self) -> i32 {
        match self {
            CapiError::NullHandle { .. }
            | CapiError::StaleHandle { .. }
            | CapiError::WrongKind { .. } => libc::EBADF,
            CapiError::NullArgument(_) | CapiError::NotDmaMemory { .. } => libc::EFAULT,
            CapiError::DeviceNotUtf8
            | CapiError::Address { .. }
            | CapiError::BadValue { .. }
            | CapiError::OtherHost { .. }
            | CapiError::NotARegion { .. }
            | CapiError::BadFlags(_)
            | CapiError::NoSuchQueue { .. }
            | CapiError::WaitingForNothing { .. } => libc::EINVAL,
            CapiError::AlreadyStarted(_)
            | CapiError::StartedTwice
            | CapiError::FunctionOpenHere { .. }
            | CapiError::QueueBusy(_) => libc::EBUSY,
            CapiError::NotStarted(_) => libc::ENOTCONN,
            CapiError::Open { .. } | CapiError::NotAHost { .. } => libc::ENODEV,
            CapiError::TooManyDevices => libc::EMFILE,
            CapiError::NoPackedRing(_) => libc::EOPNOTSUPP,
            CapiError::Dma { .. } => libc::ENOMEM,
            CapiError::PollTimedOut { .. } => libc::ETIME,
            CapiError::Io { source, .. } => io_errno(source),
            CapiError::Panic(_) => libc::EIO,
        }
    }
}

/// A bad DEVICE string's message, naming the string once.
fn address_message(device: &str, source: &AddressError) -> String {
    match source {
        // The PCI error names the address already.
        AddressError::Pci(e) => e.to_string(),
        other => format!("`{device}`: {other}"),
    }
}

/// The errno of a request's error, before submission or in its completion.
pub fn io_errno(error: &IoError) -> i32 {
    match error {
        IoError::Misaligned { .. } | IoError::BadRequest { .. } | IoError::NoSuchUnit(_) => {
            libc::EINVAL
        }
        IoError::OutOfRange { .. } => libc::ERANGE,
        IoError::TooLarge { .. } | IoError::TooManySegments { .. } => libc::E2BIG,
        IoError::ReadOnly { .. } => libc::EROFS,
        IoError::NotSupported { .. } | IoError::DeviceUnsupported => libc::EOPNOTSUPP,
        IoError::QueueFull(_) | IoError::UnitBusy { .. } => libc::EAGAIN,
        // Cut short by a device reset that recovered from a timeout or a device error: fio's
        // ETIMEDOUT, as the kernel fails requests its error handler gave up on.
        IoError::TimedOut { .. } | IoError::DeviceReset { .. } => libc::ETIMEDOUT,
        IoError::QueueBroken(_) | IoError::BadStatus(_) | IoError::ShortTransfer { .. } => {
            libc::EPROTO
        }
        // A SCSI status with its sense, or a virtio-scsi response: the device failed it.
        IoError::DeviceIo | IoError::Protocol(_) => libc::EIO,
    }
}

thread_local! {
    /// The message of this thread's last failed call.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// `message` as a C string (an interior NUL, which no message has, is cut there).
pub fn c_message(message: &str) -> CString {
    let bytes = message.split('\0').next().unwrap_or_default();
    CString::new(bytes).unwrap_or_default()
}

fn remember(error: &CapiError) {
    let message = c_message(&error.to_string());
    LAST_ERROR.with(|last| *last.borrow_mut() = message);
}

/// This thread's last message; valid until its next failure replaces it.
pub fn last_message() -> *const c_char {
    LAST_ERROR.with(|last| last.borrow().as_ptr())
}

/// Runs the body of an exported call: its error becomes a negative errno and the thread's
/// message, and a panic (a bug) an `-EIO` instead of unwinding into C.
pub fn guard(body: impl FnOnce() -> Result<i32, CapiError>) -> i32 {
    let outcome = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_string());
        Err(CapiError::Panic(what))
    });
    match outcome {
        Ok(value) => value,
        Err(error) => {
            remember(&error);
            -error.errno()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn message() -> String {
        // SAFETY: the pointer is this thread's message, alive until its next failure.
        unsafe { CStr::from_ptr(last_message()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_failure_gives_its_negative_errno_and_leaves_its_message() {
        assert_eq!(guard(|| Ok(7)), 7);
        let rc = guard(|| Err(CapiError::NullArgument("devp")));
        assert_eq!(rc, -libc::EFAULT);
        assert_eq!(message(), "devp is NULL");
        // A success leaves the last failure's message alone.
        assert_eq!(guard(|| Ok(0)), 0);
        assert_eq!(message(), "devp is NULL");
    }

    #[test]
    fn a_panic_becomes_eio_with_its_message() {
        let rc = guard(|| panic!("boom"));
        assert_eq!(rc, -libc::EIO);
        assert!(message().contains("internal error") && message().contains("boom"));
    }

    #[test]
    fn request_errors_map_to_the_errno_the_header_names() {
        let misaligned = IoError::Misaligned {
            op: "read",
            offset: 1,
            len: 512,
            block_size: 512,
        };
        assert_eq!(io_errno(&misaligned), libc::EINVAL);
        let past = IoError::OutOfRange {
            op: "read",
            offset: 0,
            len: 1024,
            capacity: 512,
        };
        assert_eq!(io_errno(&past), libc::ERANGE);
        assert_eq!(io_errno(&IoError::ReadOnly { op: "write" }), libc::EROFS);
        assert_eq!(io_errno(&IoError::QueueFull(8)), libc::EAGAIN);
        assert_eq!(io_errno(&IoError::DeviceIo), libc::EIO);
    }
}
