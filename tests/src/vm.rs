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
mod qmp;

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

pub use host::{
    ensure_host_tools, ensure_reference_tools, ensure_valgrind, guest_uvio_binary, hot_path_binary,
};
pub use kernel::{guest_kernel, GuestKernel};
pub use qmp::Qmp;

use host::{cache_dir, find_program, tail, unique_suffix, REFERENCE_BINARIES};
use initramfs::{build_initrd, FileSource, RunFiles};

/// Default for [`VmSpec::timeout`]: TCG guests are slow, and fio runs inside them take a while.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(240);

/// Describes one guest: machine, devices, files and the test script. Build it with the chained
/// methods, then call [`VmSpec::run`] or [`VmSpec::spawn`] (as often as you like).
#[derive(Debug, Clone)]
pub struct VmSpec {
    memory_mb: u32,
    smp: u32,
    viommu: bool,
    kvm: bool,
    timeout: Duration,
    script: String,
    qmp: bool,
    uvio: bool,
    reference_tools: bool,
    host_bins: Vec<String>,
    files: Vec<(String, FileSource)>,
    module_params: Vec<(String, String)>,
    kernel_args: Vec<String>,
    qemu: Vec<String>,
    next_node: u32,
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

    /// Raw QEMU arguments, appended after everything else (escape hatch).
    pub fn qemu_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.qemu.extend(args.into_iter().map(Into::into));
        self
    }

    /// A raw `-blockdev` (e.g. `driver=null-co,node-name=mine,size=4096`), for devices attached
    /// with [`VmSpec::virtio_blk`] / [`VmSpec::scsi_hd`].
    pub fn blockdev(self, spec: impl Into<String>) -> Self {
        self.qemu_args(["-blockdev".to_string(), spec.into()])
    }

    fn new_node(&mut self) -> String {
        self.next_node += 1;
        format!("uvio-n{}", self.next_node)
    }

    /// A virtio-blk-pci function at PCI address `addr` (`"05.0"`) on blockdev node `node`.
    /// `iommu_platform=on,disable-legacy=on` are added unless `extra` sets them.
    pub fn virtio_blk(self, addr: &str, node: &str, extra: &str) -> Self {
        let dev = virtio_device("virtio-blk-pci", addr, &format!("drive={node}"), extra);
        self.qemu_args(["-device".to_string(), dev])
    }

    /// virtio-blk on a `null-co` backend of `size` bytes (reads return zeroes, writes vanish).
    pub fn virtio_blk_null(mut self, addr: &str, size: u64, extra: &str) -> Self {
        let node = self.new_node();
        self.blockdev(null_blockdev(&node, size))
            .virtio_blk(addr, &node, extra)
    }

    /// virtio-blk on a raw image file.
    pub fn virtio_blk_file(mut self, addr: &str, path: impl AsRef<Path>, extra: &str) -> Self {
        let node = self.new_node();
        self.blockdev(file_blockdev(&node, path.as_ref(), false))
            .virtio_blk(addr, &node, extra)
    }

    /// A virtio-scsi-pci HBA with QEMU id `id` (its bus is `<id>.0`) at `addr`.
    pub fn virtio_scsi(self, id: &str, addr: &str, num_queues: u32, extra: &str) -> Self {
        let own = format!("id={id},num_queues={num_queues}");
        let dev = virtio_device("virtio-scsi-pci", addr, &own, extra);
        self.qemu_args(["-device".to_string(), dev])
    }

    /// A scsi-hd LUN on HBA `bus_id`, target (`scsi-id`) `target`, LUN `lun`, on blockdev `node`.
    pub fn scsi_hd(self, bus_id: &str, target: u32, lun: u32, node: &str, extra: &str) -> Self {
        let dev = format!(
            "scsi-hd,drive={node},bus={bus_id}.0,channel=0,scsi-id={target},lun={lun}{}",
            comma(extra)
        );
        self.qemu_args(["-device".to_string(), dev])
    }

    /// A scsi-hd LUN on a `null-co` backend of `size` bytes.
    pub fn scsi_hd_null(
        mut self,
        bus_id: &str,
        target: u32,
        lun: u32,
        size: u64,
        extra: &str,
    ) -> Self {
        let node = self.new_node();
        self.blockdev(null_blockdev(&node, size))
            .scsi_hd(bus_id, target, lun, &node, extra)
    }

    /// A scsi-hd LUN on a raw image file.
    pub fn scsi_hd_file(
        mut self,
        bus_id: &str,
        target: u32,
        lun: u32,
        path: impl AsRef<Path>,
        extra: &str,
    ) -> Self {
        let node = self.new_node();
        self.blockdev(file_blockdev(&node, path.as_ref(), false))
            .scsi_hd(bus_id, target, lun, &node, extra)
    }

    /// A scsi-cd LUN, with `media` (a read-only image) or with an empty tray.
    pub fn scsi_cd(
        mut self,
        bus_id: &str,
        target: u32,
        lun: u32,
        media: Option<&Path>,
        extra: &str,
    ) -> Self {
        let drive = match media {
            Some(path) => {
                let node = self.new_node();
                self = self.blockdev(file_blockdev(&node, path, true));
                format!("drive={node},")
            }
            None => String::new(),
        };
        let dev = format!(
            "scsi-cd,{drive}bus={bus_id}.0,channel=0,scsi-id={target},lun={lun}{}",
            comma(extra)
        );
        self.qemu_args(["-device".to_string(), dev])
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
            &run_dir.0,
            kernel,
            &bins,
            &RunFiles {
                script: &self.script,
                uvio,
                files: &self.files,
                module_params: &self.module_params,
            },
        );
        let qmp_path = self.qmp.then(|| qmp_socket_path(&run_dir.0));
        let mut cmd = self.qemu_command(kernel, &initrd, qmp_path.as_deref());

        // Waiting for a slot happens before the clock starts, so queued guests do not time out.
        let slot = SlotGuard::acquire();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                // why: if the test process dies (SIGKILL from a CI timeout), a TCG guest would
                // otherwise spin on a core forever.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start QEMU {cmd:?}: {e}"));
        let console = Arc::new(StreamBuf::default());
        let stderr = Arc::new(StreamBuf::default());
        let echo = std::env::var("UVIO_VM_ECHO").is_ok_and(|v| v == "1");
        let readers = vec![
            spawn_reader(
                child.stdout.take().expect("piped stdout"),
                console.clone(),
                echo,
            ),
            spawn_reader(
                child.stderr.take().expect("piped stderr"),
                stderr.clone(),
                echo,
            ),
        ];
        RunningVm {
            stdin: child.stdin.take(),
            child: Some(child),
            console,
            stderr,
            readers,
            qmp_path,
            cursor: 0,
            started,
            command: format!("{cmd:?}"),
            _slot: slot,
            _run_dir: run_dir,
        }
    }

    fn qemu_command(&self, kernel: &GuestKernel, initrd: &Path, qmp: Option<&Path>) -> Command {
        let mut cmd = Command::new(host::require_program("qemu-system-x86_64"));
        // why -nodefaults: no default NIC, VGA or monitor, so the PCI topology is exactly what
        // the test asked for. The serial port is the console, on our stdin/stdout pipes (stdin
        // must be open: QEMU refuses to start with a closed stdin).
        cmd.args(["-nodefaults", "-no-user-config", "-display", "none"])
            .args(["-serial", "stdio", "-no-reboot"]);
        if self.kvm {
            // why split irqchip: KVM's in-kernel irqchip cannot do vIOMMU interrupt remapping.
            cmd.args([
                "-accel",
                "kvm",
                "-cpu",
                "host",
                "-M",
                "q35,kernel-irqchip=split",
            ]);
        } else {
            cmd.args(["-accel", "tcg", "-cpu", "max", "-M", "q35"]);
        }
        cmd.args(["-smp", &self.smp.to_string()])
            .args(["-m", &format!("{}M", self.memory_mb)])
            .arg("-kernel")
            .arg(&kernel.vmlinuz)
            .arg("-initrd")
            .arg(initrd);
        let mut append = vec!["console=ttyS0", "quiet", "panic=-1"];
        if self.viommu {
            append.push("intel_iommu=on");
            // The vIOMMU must exist before the PCI devices that translate through it.
            let dev = if self.kvm {
                "intel-iommu,caching-mode=on,intremap=on"
            } else {
                "intel-iommu,caching-mode=on"
            };
            cmd.args(["-device", dev]);
        }
        append.extend(self.kernel_args.iter().map(String::as_str));
        cmd.arg("-append").arg(append.join(" "));
        if let Some(sock) = qmp {
            cmd.arg("-qmp")
                .arg(format!("unix:{},server=on,wait=off", sock.display()));
        }
        cmd.args(&self.qemu);
        cmd
    }
}

fn resolve_binary(name: &str) -> PathBuf {
    if name.contains('/') {
        let p = PathBuf::from(name);
        assert!(p.is_file(), "host binary {name} does not exist");
        return p;
    }
    find_program(name).unwrap_or_else(|| panic!("host binary `{name}` not found in PATH"))
}

fn comma(extra: &str) -> String {
    let extra = extra.trim_matches(',');
    if extra.is_empty() {
        String::new()
    } else {
        format!(",{extra}")
    }
}

/// `-device` value for a virtio PCI function with the harness defaults (modern-only, DMA through
/// the vIOMMU) unless `extra` overrides them.
fn virtio_device(driver: &str, addr: &str, own: &str, extra: &str) -> String {
    let keys: Vec<String> = extra
        .split(',')
        .map(|kv| kv.split('=').next().unwrap_or("").trim().replace('_', "-"))
        .collect();
    let mut dev = format!("{driver},addr={addr},{own}");
    for (key, default) in [
        ("iommu-platform", "iommu_platform=on"),
        ("disable-legacy", "disable-legacy=on"),
    ] {
        if !keys.iter().any(|k| k == key) {
            dev.push(',');
            dev.push_str(default);
        }
    }
    dev + &comma(extra)
}

fn null_blockdev(node: &str, size: u64) -> String {
    format!("driver=null-co,node-name={node},size={size},read-zeroes=on")
}

/// QEMU option values use `,` as a separator; a literal comma is written `,,`.
fn file_blockdev(node: &str, path: &Path, read_only: bool) -> String {
    let path = path.display().to_string().replace(',', ",,");
    let ro = if read_only { ",read-only=on" } else { "" };
    format!("driver=file,filename={path},node-name={node}{ro}")
}

/// Unix socket paths are limited to 108 bytes; fall back to /tmp for deep workspaces.
fn qmp_socket_path(run_dir: &Path) -> PathBuf {
    let p = run_dir.join("qmp.sock");
    if p.as_os_str().len() < 100 {
        p
    } else {
        std::env::temp_dir().join(format!("uvio-qmp-{}.sock", unique_suffix()))
    }
}

/// Per-run directory under `target/vm-cache/runs/`, removed on drop. Directories left by
/// processes that no longer exist are removed when the next one is created.
struct RunDir(PathBuf);

impl RunDir {
    fn new() -> RunDir {
        let runs = cache_dir().join("runs");
        fs::create_dir_all(&runs).unwrap_or_else(|e| panic!("create {}: {e}", runs.display()));
        if let Ok(entries) = fs::read_dir(&runs) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let pid = name.split('-').next().unwrap_or("");
                if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = runs.join(unique_suffix());
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        RunDir(dir)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Limits how many guests one test process runs at once: TCG guests on a 2-core machine only
/// slow each other down, and a starved guest hits its timeout. A thread that already holds a
/// slot is not limited again (so a test may run two guests side by side without deadlock).
struct SlotGuard {
    owner: Option<ThreadId>,
}

struct SlotState {
    used: usize,
    holders: Vec<ThreadId>,
}

static SLOTS: Mutex<SlotState> = Mutex::new(SlotState {
    used: 0,
    holders: Vec::new(),
});
static SLOTS_FREED: Condvar = Condvar::new();

impl SlotGuard {
    fn limit() -> usize {
        std::env::var("UVIO_VM_JOBS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() / 2))
            .max(1)
    }

    fn acquire() -> SlotGuard {
        let me = std::thread::current().id();
        let limit = Self::limit();
        let mut st = SLOTS.lock().unwrap_or_else(|p| p.into_inner());
        if st.holders.contains(&me) {
            return SlotGuard { owner: None };
        }
        while st.used >= limit {
            st = SLOTS_FREED.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.used += 1;
        st.holders.push(me);
        SlotGuard { owner: Some(me) }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Some(owner) = self.owner {
            let mut st = SLOTS.lock().unwrap_or_else(|p| p.into_inner());
            st.used -= 1;
            if let Some(i) = st.holders.iter().position(|t| *t == owner) {
                st.holders.swap_remove(i);
            }
            SLOTS_FREED.notify_all();
        }
    }
}

/// Bytes read from one of QEMU's output pipes, with a condition variable for waiters.
#[derive(Default)]
struct StreamBuf {
    state: Mutex<(Vec<u8>, bool)>,
    changed: Condvar,
}

impl StreamBuf {
    fn text(&self) -> String {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        clean_text(&st.0)
    }
}

fn clean_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\r', "")
}

fn spawn_reader(
    mut pipe: impl Read + Send + 'static,
    buf: Arc<StreamBuf>,
    echo: bool,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            let n = match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if echo {
                let _ = std::io::stderr().write_all(&chunk[..n]);
            }
            let mut st = buf.state.lock().unwrap_or_else(|p| p.into_inner());
            st.0.extend_from_slice(&chunk[..n]);
            buf.changed.notify_all();
        }
        let mut st = buf.state.lock().unwrap_or_else(|p| p.into_inner());
        st.1 = true;
        buf.changed.notify_all();
    })
}

/// A guest that is running. Dropping it kills QEMU (also on panic), so a failing test never
/// leaves a guest behind. QEMU is also killed if the thread that spawned it exits
/// (`PR_SET_PDEATHSIG`), so keep a `RunningVm` on the thread that created it.
pub struct RunningVm {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    console: Arc<StreamBuf>,
    stderr: Arc<StreamBuf>,
    readers: Vec<JoinHandle<()>>,
    qmp_path: Option<PathBuf>,
    cursor: usize,
    started: Instant,
    command: String,
    _slot: SlotGuard,
    _run_dir: RunDir,
}

impl RunningVm {
    /// The console so far (CRs removed).
    pub fn console(&self) -> String {
        self.console.text()
    }

    /// Waits until `pattern` appears in console output after the previous match (each call
    /// consumes output up to the end of its match, so the same marker can be awaited twice).
    /// Returns the whole console line that contains the match. Panics, with the console, if
    /// QEMU exits first or `timeout` passes.
    pub fn wait_for_console(&mut self, pattern: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut st = self.console.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let text = clean_text(&st.0);
            // why: lossy UTF-8 decoding of a half-received character can shift offsets; keep
            // the cursor on a char boundary.
            let mut cursor = self.cursor.min(text.len());
            while !text.is_char_boundary(cursor) {
                cursor -= 1;
            }
            self.cursor = cursor;
            if let Some(i) = text[cursor..].find(pattern) {
                let start = self.cursor + i;
                let end = start + pattern.len();
                self.cursor = end;
                let line_start = text[..start].rfind('\n').map_or(0, |p| p + 1);
                let line_end = text[end..].find('\n').map_or(text.len(), |p| end + p);
                return text[line_start..line_end].to_string();
            }
            let eof = st.1;
            let now = Instant::now();
            if eof || now >= deadline {
                drop(st);
                let why = if eof { "QEMU exited" } else { "timed out" };
                panic!(
                    "waiting for {pattern:?} on the guest console: {why} after {:?}\n\
                     --- qemu stderr ---\n{}\n--- console ---\n{}\n--- end of console ---",
                    self.started.elapsed(),
                    self.stderr.text(),
                    text
                );
            }
            st = self
                .console
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Types `line` (plus a newline) on the guest console; the guest reads it with `host_wait`.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self
            .stdin
            .as_mut()
            .expect("QEMU stdin is open while the VM runs");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("send {line:?} to the guest console: {e}"));
    }

    /// Connects to the VM's QMP socket (the spec needs `.qmp(true)`). Keep one connection:
    /// QEMU serves one QMP client at a time.
    pub fn qmp(&self) -> Qmp {
        let path = self
            .qmp_path
            .as_ref()
            .expect("RunningVm::qmp needs VmSpec::qmp(true)");
        Qmp::connect(path, Duration::from_secs(30)).unwrap_or_else(|e| {
            panic!(
                "QMP: {e}\n--- qemu stderr ---\n{}\n--- console ---\n{}",
                self.stderr.text(),
                self.console.text()
            )
        })
    }

    /// Waits up to `timeout` for the guest to power off and returns its output. On timeout,
    /// kills QEMU and panics with the console.
    pub fn wait(mut self, timeout: Duration) -> VmOutput {
        let deadline = Instant::now() + timeout;
        let mut child = self.child.take().expect("VM not yet waited for");
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => panic!("waiting for QEMU: {e}"),
            }
        };
        let out = self.collect(status);
        if out.timed_out {
            panic!("guest did not power off within {timeout:?}\n{out}");
        }
        out
    }

    /// Kills QEMU at once and returns what the guest printed so far.
    pub fn kill(mut self) -> VmOutput {
        let mut child = self.child.take().expect("VM not yet waited for");
        let _ = child.kill();
        let status = child.wait().ok();
        self.collect(status)
    }

    fn collect(&mut self, status: Option<ExitStatus>) -> VmOutput {
        self.stdin = None;
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let console = self.console.text();
        let (sections, unfinished) = parse_sections(&console);
        VmOutput {
            exit_code: parse_exit_code(&console),
            sections,
            unfinished,
            qemu_stderr: self.stderr.text(),
            qemu_status: status,
            timed_out: status.is_none(),
            elapsed: self.started.elapsed(),
            command: self.command.clone(),
            console,
        }
    }
}

impl Drop for RunningVm {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One `check NAME CMD...` from the guest script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The NAME given to `check`.
    pub name: String,
    /// Everything the command printed (stdout and stderr interleaved), CRs removed.
    pub output: String,
    /// The command's exit status.
    pub rc: i32,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "--- section {} (rc={}) ---", self.name, self.rc)?;
        f.write_str(&self.output)?;
        if !self.output.ends_with('\n') && !self.output.is_empty() {
            writeln!(f)?;
        }
        Ok(())
    }
}

/// What a guest run produced. `Display` (and `Debug`) print everything, console included, so
/// `assert!(cond, "{out}")` gives a useful failure message.
#[derive(Clone)]
pub struct VmOutput {
    /// The serial console, CRs removed.
    pub console: String,
    /// The test script's exit status, from `@@UVIO-EXIT=<rc>@@`; `None` if the guest crashed
    /// or was killed before the script ended.
    pub exit_code: Option<i32>,
    /// Sections from `check`, in order.
    pub sections: Vec<Section>,
    /// QEMU's exit status (`None` if it was killed on timeout).
    pub qemu_status: Option<ExitStatus>,
    /// What QEMU printed on stderr.
    pub qemu_stderr: String,
    /// True if the guest was killed because it ran out of time.
    pub timed_out: bool,
    /// Wall time from starting QEMU to its exit.
    pub elapsed: Duration,
    /// The QEMU command line, for reproducing a run by hand.
    pub command: String,
    unfinished: Vec<String>,
}

impl VmOutput {
    /// The section `check NAME ...` produced. Panics with the whole console if there is none.
    pub fn section(&self, name: &str) -> &Section {
        if let Some(s) = self.try_section(name) {
            return s;
        }
        let why = if self.unfinished.iter().any(|n| n == name) {
            "started but never ended (the guest hung, crashed or was killed inside it)"
        } else {
            "was never started"
        };
        panic!("guest section {name:?} {why}\n{self}");
    }

    /// The first section named `name`, if any.
    pub fn try_section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Modules `/init` failed to load (guest paths).
    pub fn insmod_failures(&self) -> Vec<String> {
        self.console
            .lines()
            .filter_map(|l| l.strip_prefix("@@UVIO-INSMOD-FAILED "))
            .filter_map(|l| l.strip_suffix("@@"))
            .map(str::to_string)
            .collect()
    }

    /// Guest uptime in seconds when `/init` started, and when the test script started (after
    /// module loading), if the guest got that far.
    pub fn guest_uptimes(&self) -> (Option<f64>, Option<f64>) {
        let find = |prefix: &str| {
            self.console
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .and_then(|r| r.strip_suffix("@@"))
                .and_then(|v| v.parse().ok())
        };
        (
            find("@@UVIO-BOOTED uptime="),
            find("@@UVIO-SCRIPT-START uptime="),
        )
    }

    /// Panics with everything unless the script exited 0 and every module loaded.
    pub fn assert_success(&self) {
        assert!(
            self.exit_code == Some(0) && self.insmod_failures().is_empty(),
            "guest run failed (exit code {:?}, insmod failures {:?})\n{self}",
            self.exit_code,
            self.insmod_failures()
        );
    }
}

impl fmt::Display for VmOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "=== uvio guest: exit_code={:?} timed_out={} qemu={} elapsed={:.1?} ===",
            self.exit_code,
            self.timed_out,
            self.qemu_status
                .map_or_else(|| "killed".to_string(), |s| s.to_string()),
            self.elapsed
        )?;
        writeln!(f, "--- qemu command ---\n{}", self.command)?;
        if !self.qemu_stderr.trim().is_empty() {
            writeln!(
                f,
                "--- qemu stderr ---\n{}",
                tail(&self.qemu_stderr, 20_000)
            )?;
        }
        writeln!(f, "--- console ---")?;
        f.write_str(&self.console)?;
        if !self.console.ends_with('\n') {
            writeln!(f)?;
        }
        writeln!(f, "=== end of guest console ===")
    }
}

impl fmt::Debug for VmOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn parse_exit_code(console: &str) -> Option<i32> {
    console
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("@@UVIO-EXIT="))
        .and_then(|r| r.strip_suffix("@@"))
        .and_then(|v| v.parse().ok())
}

/// Finds `@@BEGIN NAME@@` lines and their `\n@@END NAME rc=N@@`; returns the finished sections
/// and the names of those that never ended.
fn parse_sections(console: &str) -> (Vec<Section>, Vec<String>) {
    let mut done = Vec::new();
    let mut unfinished = Vec::new();
    let mut pos = 0;
    while let Some(i) = console[pos..].find("@@BEGIN ") {
        let begin = pos + i;
        // Only markers at the start of a line count.
        let at_line_start = begin == 0 || console.as_bytes()[begin - 1] == b'\n';
        let line_end = console[begin..]
            .find('\n')
            .map_or(console.len(), |p| begin + p);
        let line = &console[begin..line_end];
        pos = line_end;
        let Some(name) = line
            .strip_prefix("@@BEGIN ")
            .and_then(|r| r.strip_suffix("@@"))
        else {
            continue;
        };
        if !at_line_start {
            continue;
        }
        let body_start = (line_end + 1).min(console.len());
        // The helper prints "\n@@END ..." so the newline before the marker is its own.
        let end_marker = format!("\n@@END {name} rc=");
        let search_from = body_start.saturating_sub(1);
        let Some(j) = console[search_from..].find(&end_marker) else {
            unfinished.push(name.to_string());
            continue;
        };
        let end = search_from + j;
        let rc_start = end + end_marker.len();
        let rc_end = console[rc_start..]
            .find("@@")
            .map_or(console.len(), |p| rc_start + p);
        let rc = console[rc_start..rc_end].trim().parse().unwrap_or(-1);
        done.push(Section {
            name: name.to_string(),
            output: console[body_start.min(end)..end].to_string(),
            rc,
        });
        pos = rc_end;
    }
    (done, unfinished)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_exit_code_are_parsed() {
        let console = "noise\n@@BEGIN a@@\nline1\nline2\n\n@@END a rc=0@@\n\
                       @@BEGIN empty@@\n\n@@END empty rc=3@@\n\
                       @@BEGIN nonl@@\nabc\n@@END nonl rc=1@@\n\
                       @@BEGIN hung@@\npartial\n@@UVIO-EXIT=7@@\n";
        let (s, unfinished) = parse_sections(console);
        assert_eq!(s.len(), 3);
        assert_eq!(
            (s[0].name.as_str(), s[0].output.as_str(), s[0].rc),
            ("a", "line1\nline2\n", 0)
        );
        assert_eq!((s[1].output.as_str(), s[1].rc), ("", 3));
        assert_eq!((s[2].output.as_str(), s[2].rc), ("abc", 1));
        assert_eq!(unfinished, ["hung"]);
        assert_eq!(parse_exit_code(console), Some(7));
    }

    #[test]
    fn virtio_defaults_can_be_overridden() {
        let d = virtio_device("virtio-blk-pci", "05.0", "drive=x", "");
        assert_eq!(
            d,
            "virtio-blk-pci,addr=05.0,drive=x,iommu_platform=on,disable-legacy=on"
        );
        let d = virtio_device(
            "virtio-blk-pci",
            "05.0",
            "drive=x",
            "iommu_platform=off,packed=on",
        );
        assert_eq!(
            d,
            "virtio-blk-pci,addr=05.0,drive=x,disable-legacy=on,iommu_platform=off,packed=on"
        );
    }

    #[test]
    fn commas_in_paths_are_escaped() {
        assert_eq!(
            file_blockdev("n", Path::new("/a,b.img"), true),
            "driver=file,filename=/a,,b.img,node-name=n,read-only=on"
        );
    }
}
