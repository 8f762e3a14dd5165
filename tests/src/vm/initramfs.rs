//! The guest's initramfs, as up to three concatenated segments (the kernel unpacks each in turn
//! over the same rootfs):
//!
//! 1. base (cached, gzip'd): busybox and its applet links, `/dev/console`, the kernel modules and
//!    their load order;
//! 2. host tools (cached per set of binaries, uncompressed): binaries such as `fio` with every
//!    shared library `ldd` names and the dynamic loader;
//! 3. per run (gzip'd): `/init`, `/test.sh`, the shell helpers, `/bin/uvio` and extra files.
//!
//! Every segment file is a multiple of 4 bytes long: the kernel only looks for an uncompressed
//! cpio header at 4-byte aligned offsets, and skips zero padding between segments.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use super::cpio::CpioWriter;
use super::host::{
    binary_with_libraries, cache_dir, file_identity, fnv1a, require_program, run_checked,
    unique_suffix, CacheLock,
};
use super::kernel::GuestKernel;

/// Bump when the base segment's content or layout changes.
const BASE_FORMAT: &str = "base-v1";
/// Bump when the tools segment's layout changes.
const TOOLS_FORMAT: &str = "tools-v1";

/// Directories every guest has, besides those created for files.
const BASE_DIRS: &[&str] = &[
    "/bin",
    "/sbin",
    "/usr/bin",
    "/usr/sbin",
    "/usr/local/bin",
    "/usr/lib",
    "/lib",
    "/lib64",
    "/dev",
    "/proc",
    "/sys",
    "/run",
    "/mnt",
    "/root",
    "/var",
    "/etc/uvio",
];

/// Guest path of the module list read by `/init`.
const MODULE_LIST: &str = "/etc/uvio/modules";
/// Guest path listing host binaries whose busybox applet links `/init` removes.
const HOST_BIN_LIST: &str = "/etc/uvio/host-bins";

/// `/init`: runs as PID 1 under busybox sh. Markers are on lines of their own so the host can
/// parse them; `@@UVIO-EXIT=<rc>@@` is always printed unless the guest hangs or crashes.
const INIT_SCRIPT: &str = r#"#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
# why: the console is a tty, so tools would colour their output; host-side parsing wants plain text.
export TERM=dumb NO_COLOR=1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# why no tmpfs on /tmp: the initramfs root is writable already, and a mount there would hide
# host binaries copied in at their own paths from a checkout under /tmp (a CI clone).
mkdir -p /dev/hugepages && mount -t hugetlbfs hugetlbfs /dev/hugepages 2>/dev/null
# why: kernel messages printed on the console would land in the middle of tool output.
dmesg -n 1
# why: the host can type lines into the console (RunningVm::send_line); do not echo them back.
stty -echo 2>/dev/null
echo "@@UVIO-BOOTED uptime=$(cut -d' ' -f1 /proc/uptime)@@"
while read -r mod; do
    name=$(basename "$mod" .ko | tr - _)
    params=$(sed -n "s/^$name //p" /etc/uvio/modparams 2>/dev/null)
    insmod "$mod" $params || echo "@@UVIO-INSMOD-FAILED $mod@@"
done < /etc/uvio/modules
# why: busybox has applets (lsscsi, ...) named like host tools we ship; a link earlier in PATH
# would shadow the real binary.
if [ -f /etc/uvio/host-bins ]; then
    while read -r bin; do
        for d in /bin /sbin /usr/bin /usr/sbin; do
            if [ -L "$d/$bin" ] && [ "$(readlink "$d/$bin")" = /bin/busybox ]; then
                rm -f "$d/$bin"
            fi
        done
    done < /etc/uvio/host-bins
fi
echo "@@UVIO-SCRIPT-START uptime=$(cut -d' ' -f1 /proc/uptime)@@"
cd /tmp
sh /test.sh
rc=$?
echo "@@UVIO-EXIT=$rc@@"
sync
poweroff -f
"#;

/// Sourced at the top of every `/test.sh`.
const HELPERS: &str = r#"# uvio guest helpers (sourced by /test.sh).

# check NAME CMD [ARGS...]: run CMD with stdout and stderr between markers the host parses into
# a section NAME with the command's exit status. Returns that status.
# The newline before @@END keeps the marker on its own line; the host strips it again.
check() {
    _uvio_name=$1
    shift
    echo "@@BEGIN $_uvio_name@@"
    "$@" </dev/null 2>&1
    _uvio_rc=$?
    printf '\n@@END %s rc=%d@@\n' "$_uvio_name" "$_uvio_rc"
    return $_uvio_rc
}

# marker TEXT: print @@TEXT@@ on a line of its own (for RunningVm::wait_for_console).
marker() {
    echo "@@$*@@"
}

# host_wait [SECONDS]: read one line the host sends with RunningVm::send_line into
# $UVIO_HOST_LINE. Fails after SECONDS (default 600) without one.
host_wait() {
    UVIO_HOST_LINE=
    read -r -t "${1:-600}" UVIO_HOST_LINE
}
"#;

/// `bind_vfio BDF`: hand a PCI function to vfio-pci; prints its `/dev/vfio/<group>`.
/// A script of its own (not a helper function) so it also works under `sh -c`.
const BIND_VFIO: &str = r#"#!/bin/sh
d=/sys/bus/pci/devices/$1
[ -e "$d" ] || { echo "bind_vfio: no PCI function $1" >&2; exit 1; }
[ -e "$d/driver" ] && echo "$1" > "$d/driver/unbind"
echo vfio-pci > "$d/driver_override" || exit 1
echo "$1" > /sys/bus/pci/drivers_probe
g=$(basename "$(readlink "$d/iommu_group")") || exit 1
[ -c "/dev/vfio/$g" ] || { echo "bind_vfio: /dev/vfio/$g did not appear" >&2; exit 1; }
echo "/dev/vfio/$g"
"#;

/// `unbind_vfio BDF`: give a PCI function back to its kernel driver.
const UNBIND_VFIO: &str = r#"#!/bin/sh
d=/sys/bus/pci/devices/$1
[ -e "$d" ] || { echo "unbind_vfio: no PCI function $1" >&2; exit 1; }
[ -e "$d/driver" ] && echo "$1" > "$d/driver/unbind"
echo > "$d/driver_override"
echo "$1" > /sys/bus/pci/drivers_probe
"#;

/// What goes into the per-run segment besides `/init`.
pub(crate) struct RunFiles<'a> {
    pub script: &'a str,
    pub uvio: Option<&'a Path>,
    pub files: &'a [(String, FileSource)],
    pub module_params: &'a [(String, String)],
}

/// Content of an extra guest file.
#[derive(Debug, Clone)]
pub(crate) enum FileSource {
    Host(PathBuf, u32),
    Bytes(Vec<u8>, u32),
}

/// Builds `<run_dir>/initrd` from the cached segments plus a fresh per-run one.
pub(crate) fn build_initrd(
    run_dir: &Path,
    kernel: &GuestKernel,
    host_bins: &[PathBuf],
    run: &RunFiles<'_>,
) -> PathBuf {
    let base = base_segment(kernel);
    let tools = (!host_bins.is_empty()).then(|| tools_segment(host_bins));
    let per_run = run_segment(run_dir, run);

    let initrd = run_dir.join("initrd");
    let mut out = BufWriter::new(
        File::create(&initrd).unwrap_or_else(|e| panic!("create {}: {e}", initrd.display())),
    );
    for seg in [Some(base), tools, Some(per_run.clone())]
        .into_iter()
        .flatten()
    {
        let mut f = File::open(&seg).unwrap_or_else(|e| panic!("open {}: {e}", seg.display()));
        std::io::copy(&mut f, &mut out)
            .unwrap_or_else(|e| panic!("append {} to initrd: {e}", seg.display()));
    }
    out.flush().expect("flush initrd");
    let _ = fs::remove_file(per_run);
    initrd
}

/// gzip's a finished archive in place, then pads the result to a multiple of 4 bytes.
fn gzip_segment(raw: &Path) -> PathBuf {
    run_checked(
        Command::new(require_program("gzip"))
            .args(["-n", "-1", "-f"])
            .arg(raw),
        "gzip initramfs segment",
    );
    let gz = PathBuf::from(format!("{}.gz", raw.display()));
    let len = fs::metadata(&gz).expect("stat gzip'd segment").len();
    let pad = (4 - len % 4) % 4;
    if pad > 0 {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&gz)
            .expect("open gzip'd segment for padding");
        f.write_all(&vec![0u8; pad as usize])
            .expect("pad gzip'd segment");
    }
    gz
}

/// Writes a cached segment with `fill` unless it already exists; temp file then rename, under a
/// lock, so racing test processes build it once and never see half a file.
fn cached_segment(
    name: &str,
    compress: bool,
    fill: impl FnOnce(&mut CpioWriter<BufWriter<File>>),
) -> PathBuf {
    // Serialise within the process as well: the flock is per open file, so this is belt and
    // braces, but it also avoids two threads gzip'ing the same thing.
    static IN_PROCESS: Mutex<()> = Mutex::new(());
    let _g = IN_PROCESS.lock().unwrap_or_else(|p| p.into_inner());
    let final_path = cache_dir().join(name);
    if final_path.is_file() {
        return final_path;
    }
    let _lock = CacheLock::acquire("initramfs");
    if final_path.is_file() {
        return final_path;
    }
    let tmp = cache_dir().join(format!("tmp-{}.cpio", unique_suffix()));
    let file = File::create(&tmp).unwrap_or_else(|e| panic!("create {}: {e}", tmp.display()));
    let mut w = CpioWriter::new(BufWriter::new(file));
    fill(&mut w);
    w.finish()
        .unwrap_or_else(|e| panic!("finish {}: {e}", tmp.display()));
    let built = if compress { gzip_segment(&tmp) } else { tmp };
    fs::rename(&built, &final_path).unwrap_or_else(|e| {
        panic!(
            "rename {} -> {}: {e}",
            built.display(),
            final_path.display()
        )
    });
    final_path
}

fn base_segment(kernel: &GuestKernel) -> PathBuf {
    let busybox = Path::new("/bin/busybox");
    let key = fnv1a(&[
        BASE_FORMAT.as_bytes(),
        file_identity(busybox).as_bytes(),
        kernel.modules_dir.display().to_string().as_bytes(),
        kernel.load_order.join("\n").as_bytes(),
    ]);
    let name = format!("base-{}-{key:016x}.cpio.gz", kernel.version);
    cached_segment(&name, true, |w| {
        let ctx = |e: std::io::Error| panic!("writing base initramfs: {e}");
        for d in BASE_DIRS {
            w.dir(d, 0o755).unwrap_or_else(ctx);
        }
        w.dir("/tmp", 0o1777).unwrap_or_else(ctx);
        // why: the kernel opens /dev/console for PID 1's stdio before /init can mount devtmpfs.
        w.char_dev("/dev/console", 0o600, 5, 1).unwrap_or_else(ctx);
        w.char_dev("/dev/null", 0o666, 1, 3).unwrap_or_else(ctx);
        w.file_from_host("/bin/busybox", 0o755, busybox)
            .unwrap_or_else(ctx);
        let list = run_checked(
            Command::new(busybox).arg("--list-full"),
            "busybox --list-full",
        );
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            let path = format!("/{}", applet.trim());
            if path != "/bin/busybox" && path.len() > 1 {
                w.symlink(&path, "/bin/busybox").unwrap_or_else(ctx);
            }
        }
        let guest_mods = format!("/lib/modules/{}", kernel.version);
        let mut list = String::new();
        for rel in &kernel.load_order {
            let guest = format!("{guest_mods}/{rel}");
            w.file_from_host(&guest, 0o644, &kernel.modules_dir.join(rel))
                .unwrap_or_else(ctx);
            list.push_str(&guest);
            list.push('\n');
        }
        w.file_bytes(MODULE_LIST, 0o644, list.as_bytes())
            .unwrap_or_else(ctx);
    })
}

fn tools_segment(host_bins: &[PathBuf]) -> PathBuf {
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for bin in host_bins {
        for f in binary_with_libraries(bin) {
            if !files.iter().any(|(g, _)| *g == f.0) {
                files.push(f);
            }
        }
    }
    let ids: Vec<String> = files
        .iter()
        .map(|(g, h)| format!("{g}={}", file_identity(h)))
        .collect();
    let key = fnv1a(&[TOOLS_FORMAT.as_bytes(), ids.join("\n").as_bytes()]);
    let names: Vec<String> = host_bins
        .iter()
        .filter_map(|b| b.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    // why uncompressed: fio drags in ~80 MB of libraries; gunzip under TCG costs seconds per
    // boot, while copying an uncompressed archive into the rootfs is cheap.
    cached_segment(&format!("tools-{key:016x}.cpio"), false, |w| {
        for (guest, host) in &files {
            w.file_from_host(guest, 0o755, host)
                .unwrap_or_else(|e| panic!("writing host tools initramfs: {e}"));
        }
        w.file_bytes(HOST_BIN_LIST, 0o644, (names.join("\n") + "\n").as_bytes())
            .unwrap_or_else(|e| panic!("writing host tools initramfs: {e}"));
    })
}

fn run_segment(run_dir: &Path, run: &RunFiles<'_>) -> PathBuf {
    let raw = run_dir.join(format!("run-{}.cpio", unique_suffix()));
    let file = File::create(&raw).unwrap_or_else(|e| panic!("create {}: {e}", raw.display()));
    let mut w = CpioWriter::new(BufWriter::new(file));
    let ctx = |e: std::io::Error| panic!("writing per-run initramfs: {e}");
    w.file_bytes("/init", 0o755, INIT_SCRIPT.as_bytes())
        .unwrap_or_else(ctx);
    w.file_bytes("/etc/uvio/helpers.sh", 0o644, HELPERS.as_bytes())
        .unwrap_or_else(ctx);
    w.file_bytes("/usr/local/bin/bind_vfio", 0o755, BIND_VFIO.as_bytes())
        .unwrap_or_else(ctx);
    w.file_bytes("/usr/local/bin/unbind_vfio", 0o755, UNBIND_VFIO.as_bytes())
        .unwrap_or_else(ctx);
    let script = format!(". /etc/uvio/helpers.sh\n{}\n", run.script);
    w.file_bytes("/test.sh", 0o755, script.as_bytes())
        .unwrap_or_else(ctx);
    let params: String = run
        .module_params
        .iter()
        .map(|(m, p)| format!("{} {p}\n", m.replace('-', "_")))
        .collect();
    w.file_bytes("/etc/uvio/modparams", 0o644, params.as_bytes())
        .unwrap_or_else(ctx);
    if let Some(uvio) = run.uvio {
        w.file_from_host("/bin/uvio", 0o755, uvio)
            .unwrap_or_else(ctx);
    }
    for (guest, src) in run.files {
        match src {
            FileSource::Host(host, mode) => w.file_from_host(guest, *mode, host),
            FileSource::Bytes(data, mode) => w.file_bytes(guest, *mode, data),
        }
        .unwrap_or_else(ctx);
    }
    if let Err(e) = w.finish() {
        panic!("writing per-run initramfs: {e}");
    }
    gzip_segment(&raw)
}
