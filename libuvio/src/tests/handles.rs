//! The C API's handle and argument checks, called as C calls them, without a device: NULL
//! and stale handles, a double close, properties, and a start that cannot open anything.

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use crate::*;

fn message() -> String {
    // SAFETY: this thread's last message, valid until its next failure.
    unsafe { CStr::from_ptr(uvio_get_error_msg()) }
        .to_string_lossy()
        .into_owned()
}

fn open(device: &str) -> (i32, *mut uvio_dev) {
    let name = CString::new(device).unwrap();
    let mut dev = ptr::null_mut();
    // SAFETY: a NUL-terminated string and a writable pointer.
    let rc = unsafe { uvio_open(name.as_ptr(), &mut dev) };
    (rc, dev)
}

#[test]
fn a_double_close_and_every_use_after_close_are_refused() {
    let (rc, dev) = open("0000:00:05.0/0:1:2");
    assert_eq!(rc, 0, "{}", message());
    assert!(!dev.is_null());
    assert_eq!(uvio_set_num_queues(dev, 2), 0);
    assert_eq!(uvio_close(dev), 0);
    assert_eq!(uvio_close(dev), -libc::EBADF);
    assert!(message().contains("is not open"), "{}", message());
    assert_eq!(uvio_set_queue_depth(dev, 4), -libc::EBADF);
    assert_eq!(uvio_start(dev), -libc::EBADF);

    // The slot is reused by the next device: the old handle still does not resolve.
    let (rc, other) = open("0000:00:05.0");
    assert_eq!(rc, 0);
    assert_ne!(other, dev);
    assert_eq!(uvio_close(dev), -libc::EBADF);
    assert_eq!(uvio_close(other), 0);
}

#[test]
fn null_and_invented_handles_are_refused() {
    assert_eq!(uvio_start(ptr::null_mut()), -libc::EBADF);
    assert_eq!(message(), "the device handle is NULL");
    assert_eq!(uvio_close(0x7000 as *mut uvio_dev), -libc::EBADF);
    assert!(message().contains("0x7000 is not open"), "{}", message());
    assert_eq!(
        uvio_flush(ptr::null_mut(), ptr::null_mut(), 0),
        -libc::EBADF
    );
    assert_eq!(message(), "the queue handle is NULL");
    // A device handle passed as a queue.
    let (_, dev) = open("0000:00:05.0");
    assert_eq!(uvio_flush(dev.cast(), ptr::null_mut(), 0), -libc::EBADF);
    assert!(
        message().contains("is a device handle, passed where a queue handle belongs"),
        "{}",
        message()
    );
    assert_eq!(uvio_close(dev), 0);
}

#[test]
fn bad_strings_properties_and_calls_before_start_say_what_is_wrong() {
    let (rc, dev) = open("0000:00:04.0/0:x:1");
    assert_eq!((rc, dev), (-libc::EINVAL, ptr::null_mut()));
    assert!(message().contains("is not a LUN address"), "{}", message());
    // SAFETY: NULL pointers are what is being checked.
    let rc = unsafe { uvio_open(ptr::null::<c_char>(), ptr::null_mut()) };
    assert_eq!(rc, -libc::EFAULT);

    let (_, dev) = open("0000:00:05.0");
    assert_eq!(uvio_set_ring(dev, 3), -libc::EINVAL);
    assert_eq!(uvio_set_queue_depth(dev, 70000), -libc::EINVAL);
    assert!(message().contains("queue_depth is 70000"), "{}", message());
    let mut info = uvio_info::default();
    // SAFETY: a writable struct.
    assert_eq!(unsafe { uvio_get_info(dev, &mut info) }, -libc::ENOTCONN);
    let mut q = ptr::null_mut();
    // SAFETY: a writable pointer.
    assert_eq!(unsafe { uvio_get_queue(dev, 0, &mut q) }, -libc::ENOTCONN);
    assert_eq!(uvio_close(dev), 0);
}

#[test]
fn a_start_that_cannot_open_the_device_fails_with_enodev_and_why() {
    // No such function on any machine that runs the tests.
    let (_, dev) = open("0000:7f:1f.7");
    assert_eq!(uvio_start(dev), -libc::ENODEV);
    assert!(message().contains("0000:7f:1f.7"), "{}", message());
    // Nothing was started: properties may still be set, and the device closes.
    assert_eq!(uvio_set_num_queues(dev, 1), 0);
    assert_eq!(uvio_close(dev), 0);
}

fn open_lun(dev: *mut uvio_dev, device: &str) -> (i32, *mut uvio_dev) {
    let name = CString::new(device).unwrap();
    let mut lun = ptr::null_mut();
    // SAFETY: a NUL-terminated string and a writable pointer.
    let rc = unsafe { uvio_open_lun(dev, name.as_ptr(), &mut lun) };
    (rc, lun)
}

#[test]
fn another_lun_is_opened_from_a_started_host_only() {
    let (_, dev) = open("0000:00:07.0/0:0:0");
    assert_eq!(
        open_lun(ptr::null_mut(), "0000:00:07.0/0:0:1"),
        (-libc::EBADF, ptr::null_mut())
    );
    assert_eq!(
        open_lun(dev, "0000:00:07.0/0:0:1"),
        (-libc::ENOTCONN, ptr::null_mut())
    );
    assert!(
        message().contains("uvio_open_lun needs a started device"),
        "{}",
        message()
    );
    assert_eq!(open_lun(dev, "0000:00:07.0/0:z:1").0, -libc::ENOTCONN);
    // SAFETY: NULL pointers are what is being checked.
    let rc = unsafe { uvio_open_lun(dev, ptr::null(), ptr::null_mut()) };
    assert_eq!(rc, -libc::EFAULT);
    assert_eq!(uvio_close(dev), 0);
    assert_eq!(open_lun(dev, "0000:00:07.0/0:0:1").0, -libc::EBADF);
}
