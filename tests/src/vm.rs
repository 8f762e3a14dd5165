//! Boots throw-away Linux guests under QEMU (TCG) to test uvio against real virtio devices.
//!
//! A test describes the machine with [`VmSpec`] (devices, a shell script to run as the guest's
//! test, extra files), then either [`VmSpec::run`]s it to completion or [`VmSpec::spawn`]s it to
//! interact over the console and QMP while it runs. The guest is Debian's own kernel with a
//! busybox initramfs; `/init` loads the VFIO, virtio and SCSI modules, runs the script under
//! `sh` and powers off. Everything the host needs is installed on first use (Debian 12, root),
//! and a test that cannot run fails rather than skips.
//!
//! ```no_run
//! use uvio_tests::vm::VmSpec;
//! let out = VmSpec::new()
//!     .virtio_blk_null("05.0", 1 << 30, "")
//!     .script("check pci ls /sys/bus/pci/devices")
//!     .run();
//! assert_eq!(out.exit_code, Some(0), "{out}");
//! assert!(out.section("pci").output.contains("0000:00:05.0"), "{out}");
//! ```
//!
//! Guest script helpers (from `/etc/uvio/helpers.sh`, already sourced):
//! - `check NAME CMD...` runs CMD with stdout+stderr between `@@BEGIN NAME@@` and
//!   `@@END NAME rc=<rc>@@`, parsed into [`VmOutput::section`]; returns CMD's status.
//! - `marker TEXT` prints `@@TEXT@@` (for [`RunningVm::wait_for_console`]).
//! - `host_wait [SECONDS]` reads a line sent by [`RunningVm::send_line`] into `$UVIO_HOST_LINE`.
//! - `bind_vfio BDF` / `unbind_vfio BDF` (commands in `/usr/local/bin`) move a PCI function to
//!   vfio-pci (printing its `/dev/vfio/<group>`) and back.
//!
//! Environment knobs: `UVIO_GUEST_BIN` (use this static `uvio` instead of building one),
//! `UVIO_GUEST_KERNEL_PKG` (another `linux-image-*` package), `UVIO_VM_JOBS` (guests run at once
//! per test process; default half the CPUs, at least 1), `UVIO_VM_KVM=1` (try KVM; it does not
//! work on the build machines), `UVIO_VM_ECHO=1` (copy the guest console to stderr live).

mod cpio;
mod host;
mod initramfs;
mod kernel;
mod output;
mod qemu_args;
mod qmp;
mod run_dir;
mod running;
mod slots;
mod spec;
mod stream_buf;

pub use host::{
    ensure_host_tools, ensure_reference_tools, ensure_valgrind, guest_uvio_binary, hot_path_binary,
};
pub use kernel::{guest_kernel, GuestKernel};
pub use output::{Section, VmOutput};
pub use qmp::Qmp;
pub use running::RunningVm;
pub use spec::{VmSpec, DEFAULT_TIMEOUT};
