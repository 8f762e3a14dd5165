//! [`VmSpec`]: what a test asks for (machine, guest files, the script) and how a run starts.
//! The devices a spec attaches and the QEMU command line built from it are in `qemu_args`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::host::{
    ensure_host_tools, ensure_reference_tools, guest_uvio_binary, resolve_binary,
    REFERENCE_BINARIES,
};
use super::initramfs::{build_initrd, FileSource, RunFiles};
use super::kernel::guest_kernel;
use super::output::VmOutput;
use super::run_dir::{qmp_socket_path, RunDir};
use super::running::RunningVm;

/// Default for [`VmSpec::timeout`]: TCG guests are slow, and fio runs inside them take a while.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(240);

/// Describes one guest: machine, devices, files and the test script. Build it with the chained
/// methods, then call [`VmSpec::run`] or [`VmSpec::spawn`] (as often as you like).
#[derive(Debug, Clone)]
pub struct VmSpec {
    pub(super) memory_mb: u32,
    pub(super) smp: u32,
    pub(super) viommu: bool,
    pub(super) kvm: bool,
    timeout: Duration,
    script: String,
    qmp: bool,
    uvio: bool,
    reference_tools: bool,
    host_bins: Vec<String>,
    files: Vec<(String, FileSource)>,
    module_params: Vec<(String, String)>,
    pub(super) kernel_args: Vec<String>,
    pub(super) qemu: Vec<String>,
    pub(super) next_node: u32,
}

impl Default for VmSpec {
    fn default() -> Self {
        Self::new()
    }
}

impl VmSpec {
    /// q35, 2 vCPUs, 2 GiB, vIOMMU on, `/bin/uvio` included, empty script, 240 s timeout.
    pub fn new() -> Self {
        VmSpec {
            memory_mb: 2048,
            smp: 2,
            viommu: true,
            kvm: std::env::var("UVIO_VM_KVM").is_ok_and(|v| v == "1"),
            timeout: DEFAULT_TIMEOUT,
            script: String::new(),
            qmp: false,
            uvio: true,
            reference_tools: false,
            host_bins: Vec::new(),
            files: Vec::new(),
            module_params: Vec::new(),
            kernel_args: Vec::new(),
            qemu: Vec::new(),
            next_node: 0,
        }
    }

    /// Guest RAM in MiB.
    pub fn memory_mb(mut self, mb: u32) -> Self {
        self.memory_mb = mb;
        self
    }

    /// Number of vCPUs.
    pub fn smp(mut self, cpus: u32) -> Self {
        self.smp = cpus;
        self
    }

    /// The Intel vIOMMU (`-device intel-iommu,caching-mode=on` and `intel_iommu=on`); on by
    /// default. Turn it off to test how uvio copes without one (no `iommu_group`, no VFIO).
    pub fn viommu(mut self, on: bool) -> Self {
        self.viommu = on;
        self
    }

    /// Use KVM instead of TCG. Off by default: nested KVM hangs the guest on the build machines.
    pub fn kvm(mut self, on: bool) -> Self {
        self.kvm = on;
        self
    }

    /// How long [`VmSpec::run`] lets the guest run before killing it and panicking.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// The test script, run as `sh /test.sh` after the helpers are sourced. Its exit status
    /// becomes [`VmOutput::exit_code`]. Calling this again replaces the script.
    pub fn script(mut self, script: impl Into<String>) -> Self {
        self.script = script.into();
        self
    }

    /// Expose a QMP socket for [`RunningVm::qmp`].
    pub fn qmp(mut self, on: bool) -> Self {
        self.qmp = on;
        self
    }

    /// Whether to build and include `/bin/uvio` (default true). Turning it off saves the build
    /// in tests that only look at the guest kernel's view.
    pub fn uvio(mut self, on: bool) -> Self {
        self.uvio = on;
        self
    }

    /// Copy fio, lsscsi and sg3-utils (sg_inq, sg_readcap, sg_luns, ...) into the guest, with
    /// their libraries, installing the Debian packages on the host if needed.
    pub fn reference_tools(mut self) -> Self {
        self.reference_tools = true;
        self
    }

    /// Copy a host binary (a name looked up in PATH, or a path) into the guest at the same path,
    /// with every shared library `ldd` lists and the dynamic loader.
    pub fn host_binary(mut self, name_or_path: impl Into<String>) -> Self {
        self.host_bins.push(name_or_path.into());
        self
    }

    /// Copy a host file into the guest at `guest_path` (mode 0755 if the host file is
    /// executable, else 0644).
    pub fn file(mut self, host: impl AsRef<Path>, guest_path: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let host = host.as_ref().to_path_buf();
        let mode = fs::metadata(&host)
            .map(|m| {
                if m.permissions().mode() & 0o111 != 0 {
                    0o755
                } else {
                    0o644
                }
            })
            .unwrap_or_else(|e| panic!("VmSpec::file: stat {}: {e}", host.display()));
        self.files
            .push((guest_path.to_string(), FileSource::Host(host, mode)));
        self
    }

    /// Put `data` into the guest at `guest_path` with permission bits `mode`.
    pub fn file_bytes(mut self, guest_path: &str, data: impl Into<Vec<u8>>, mode: u32) -> Self {
        self.files
            .push((guest_path.to_string(), FileSource::Bytes(data.into(), mode)));
        self
    }

    /// Parameters for a module `/init` loads, e.g. `("vfio_iommu_type1",
    /// "allow_unsafe_interrupts=1")`.
    pub fn module_param(mut self, module: &str, params: &str) -> Self {
        self.module_params
            .push((module.to_string(), params.to_string()));
        self
    }

    /// Extra guest kernel command line arguments.
    pub fn kernel_arg(mut self, arg: &str) -> Self {
        self.kernel_args.push(arg.to_string());
        self
    }

    /// Boots the guest, waits (up to [`VmSpec::timeout`]) for it to power off and returns what
    /// it printed. Panics, with the console, if it times out; QEMU is always gone on return.
    pub fn run(&self) -> VmOutput {
        self.spawn().wait(self.timeout)
    }

    /// Boots the guest and returns at once, for tests that interact with it while it runs.
    pub fn spawn(&self) -> RunningVm {
        ensure_host_tools();
        let mut bins: Vec<PathBuf> = Vec::new();
        if self.reference_tools {
            ensure_reference_tools();
            bins.extend(REFERENCE_BINARIES.iter().map(|b| resolve_binary(b)));
        }
        bins.extend(self.host_bins.iter().map(|b| resolve_binary(b)));
        let kernel = guest_kernel();
        let uvio = self.uvio.then(guest_uvio_binary);

        let run_dir = RunDir::new();
        let initrd = build_initrd(
            run_dir.path(),
            kernel,
            &bins,
            &RunFiles {
                script: &self.script,
                uvio,
                files: &self.files,
                module_params: &self.module_params,
            },
        );
        let qmp_path = self.qmp.then(|| qmp_socket_path(run_dir.path()));
        let cmd = self.qemu_command(kernel, &initrd, qmp_path.as_deref());
        RunningVm::start(cmd, qmp_path, run_dir)
    }
}
