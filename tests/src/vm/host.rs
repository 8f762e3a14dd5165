//! Host-side plumbing: running commands with useful panics, installing Debian packages, the
//! cache directory and its locks, and building the static `uvio` binary for the guest.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Packages that make a fresh Debian 12 able to boot test guests.
const HOST_PACKAGES: &[&str] = &["qemu-system-x86", "busybox-static", "cpio", "kmod"];

/// Packages whose binaries tests may copy into the guest as a reference (the guest kernel's own
/// drivers driven by tools nobody on this project wrote).
const REFERENCE_PACKAGES: &[&str] = &["fio", "lsscsi", "sg3-utils"];

/// Binaries copied into the guest by [`crate::vm::VmSpec::reference_tools`].
pub(crate) const REFERENCE_BINARIES: &[&str] = &[
    "fio",
    "lsscsi",
    "sg_inq",
    "sg_readcap",
    "sg_luns",
    "sg_turs",
    "sg_vpd",
    "sg_raw",
    "sg_map",
];

/// Root of the Cargo workspace (the parent of this crate's manifest directory).
pub(crate) fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .expect("tests/ crate has a parent directory")
        .to_path_buf()
}

/// `<workspace>/target/vm-cache`, created on first use.
pub(crate) fn cache_dir() -> PathBuf {
    let dir = workspace_root().join("target").join("vm-cache");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// A name unlikely to collide between processes and threads, for temporary files and dirs.
pub(crate) fn unique_suffix() -> String {
    static COUNTER: Mutex<u64> = Mutex::new(0);
    let n = {
        let mut c = COUNTER.lock().unwrap_or_else(|p| p.into_inner());
        *c += 1;
        *c
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{n}-{nanos:08x}", std::process::id())
}

/// FNV-1a: a stable hash for cache keys (std's `DefaultHasher` is not guaranteed stable across
/// Rust releases, and a cache key must not change under a toolchain update).
pub(crate) fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separator so ["ab","c"] and ["a","bc"] differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Identity of a host file for cache keys: path, size and mtime.
pub(crate) fn file_identity(path: &Path) -> String {
    let md = fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    let mtime = md
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}:{}:{}", path.display(), md.len(), mtime)
}

/// An exclusive `flock` on a file in the cache, released on drop. Serialises cache builds and
/// apt runs between test processes; temp-dir-then-rename keeps a crash from leaving half a cache.
pub(crate) struct CacheLock {
    _file: File,
}

impl CacheLock {
    pub(crate) fn acquire(name: &str) -> CacheLock {
        let path = cache_dir().join(format!(".{name}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open lock file {}: {e}", path.display()));
        // SAFETY: flock on a valid, owned descriptor; blocks until the lock is ours.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            panic!(
                "flock {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        CacheLock { _file: file }
    }
}

/// Runs a command to completion, panicking with its stderr (and stdout) when it cannot be
/// started or exits non-zero. `what` names the step for the panic message.
pub(crate) fn run_checked(cmd: &mut Command, what: &str) -> Output {
    let out = run_unchecked(cmd, what);
    if !out.status.success() {
        panic!(
            "{what} failed ({}): {:?}\n--- stderr ---\n{}\n--- stdout ---\n{}",
            out.status,
            cmd,
            tail(&String::from_utf8_lossy(&out.stderr), 6000),
            tail(&String::from_utf8_lossy(&out.stdout), 3000),
        );
    }
    out
}

/// Runs a command and returns its output whatever the exit status; panics only if it cannot
/// be started at all.
pub(crate) fn run_unchecked(cmd: &mut Command, what: &str) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"))
}

/// The last `max` bytes of `s` (on a char boundary), so panics stay readable.
pub(crate) fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Looks a program up in PATH, plus the sbin directories (depmod lives there and a non-root
/// PATH often lacks them).
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for extra in ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        dirs.push(PathBuf::from(extra));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Like [`find_program`] but panics with a clear message.
pub(crate) fn require_program(name: &str) -> PathBuf {
    find_program(name).unwrap_or_else(|| panic!("required host program `{name}` not found in PATH"))
}

/// A binary to copy into the guest: a path as given (it must exist), or a name looked up like
/// [`find_program`].
pub(crate) fn resolve_binary(name: &str) -> PathBuf {
    if name.contains('/') {
        let p = PathBuf::from(name);
        assert!(p.is_file(), "host binary {name} does not exist");
        return p;
    }
    find_program(name).unwrap_or_else(|| panic!("host binary `{name}` not found in PATH"))
}

/// True if the ELF file has no program interpreter (static or static-pie).
pub(crate) fn elf_is_static(path: &Path) -> Result<bool, String> {
    let mut f = File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let mut hdr = [0u8; 64];
    f.read_exact(&mut hdr)
        .map_err(|e| format!("read ELF header of {}: {e}", path.display()))?;
    if &hdr[..4] != b"\x7fELF" || hdr[4] != 2 || hdr[5] != 1 {
        return Err(format!(
            "{} is not a 64-bit little-endian ELF file",
            path.display()
        ));
    }
    let phoff = u64::from_le_bytes(hdr[0x20..0x28].try_into().expect("8 bytes")) as usize;
    let phentsize = u16::from_le_bytes([hdr[0x36], hdr[0x37]]) as usize;
    let phnum = u16::from_le_bytes([hdr[0x38], hdr[0x39]]) as usize;
    let data = fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    for i in 0..phnum {
        let off = phoff + i * phentsize;
        let p_type = data
            .get(off..off + 4)
            .ok_or_else(|| format!("{}: truncated program headers", path.display()))?;
        const PT_INTERP: u32 = 3;
        if u32::from_le_bytes(p_type.try_into().expect("4 bytes")) == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

/// True if the ELF file is position-independent (`e_type` ET_DYN: a static-pie or a shared
/// object) rather than an executable linked at a fixed address (ET_EXEC).
pub(crate) fn elf_is_pie(path: &Path) -> Result<bool, String> {
    let mut hdr = [0u8; 18];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut hdr))
        .map_err(|e| format!("read ELF header of {}: {e}", path.display()))?;
    const ET_DYN: u16 = 3;
    Ok(u16::from_le_bytes([hdr[16], hdr[17]]) == ET_DYN)
}

/// `apt-get update` at most once per process (it is slow and the lists do not change within a
/// test run).
pub(crate) fn apt_update() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let _lock = CacheLock::acquire("apt");
        eprintln!("[uvio-vm] apt-get update");
        run_checked(apt_command().arg("update"), "apt-get update");
    });
}

fn apt_command() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        // why: another process (a second test binary, unattended upgrades) may hold the dpkg
        // lock; wait for it instead of failing at once.
        .args(["-o", "DPkg::Lock::Timeout=600", "-q"]);
    cmd
}

/// Installs Debian packages (never recommends), running `apt-get update` first.
pub(crate) fn apt_install(packages: &[&str]) {
    apt_update();
    let _lock = CacheLock::acquire("apt");
    eprintln!("[uvio-vm] apt-get install {}", packages.join(" "));
    let out = run_unchecked(
        apt_command()
            .args(["install", "-y", "--no-install-recommends"])
            .args(packages),
        "apt-get install",
    );
    if !out.status.success() {
        panic!(
            "apt-get install {} failed ({}); the VM tests need these packages (run as root on \
             Debian 12, or install them by hand)\n--- stderr ---\n{}\n--- stdout ---\n{}",
            packages.join(" "),
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 6000),
            tail(&String::from_utf8_lossy(&out.stdout), 3000),
        );
    }
}

fn static_busybox_present() -> bool {
    Path::new("/bin/busybox").is_file() && elf_is_static(Path::new("/bin/busybox")).unwrap_or(false)
}

/// Makes sure QEMU, a static busybox, cpio and depmod are on the host, installing the Debian
/// packages if anything is missing. Panics (so the test fails, never skips) if that fails.
pub fn ensure_host_tools() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let missing = |p: &str| find_program(p).is_none();
        // why: Debian's dynamic `busybox` package also installs /bin/busybox, but it needs
        // libc in the guest; only the static build works as the initramfs' only binary.
        if missing("qemu-system-x86_64")
            || !static_busybox_present()
            || missing("cpio")
            || missing("depmod")
        {
            apt_install(HOST_PACKAGES);
        }
        for p in [
            "qemu-system-x86_64",
            "cpio",
            "depmod",
            "gzip",
            "dpkg",
            "apt-get",
        ] {
            require_program(p);
        }
        assert!(
            static_busybox_present(),
            "/bin/busybox is missing or not statically linked even after installing busybox-static"
        );
    });
}

/// Makes sure valgrind is on the host (for the hot-path instruction counts), installing
/// Debian's package if it is missing. Panics (the test fails, never skips) if that fails.
pub fn ensure_valgrind() -> PathBuf {
    if find_program("valgrind").is_none() {
        apt_install(&["valgrind"]);
    }
    require_program("valgrind")
}

/// Builds `cargo build --release -p uvio --features fake-device --example hot_path` and
/// returns the binary.
pub fn hot_path_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let target_dir = nested_release_build(
            "hot-path",
            &[
                "-p",
                "uvio",
                "--features",
                "fake-device",
                "--example",
                "hot_path",
            ],
            &[],
            "building examples/hot_path",
        );
        built(target_dir.join("release").join("examples").join("hot_path"))
    })
    .clone()
}

/// Runs `cargo build --release ARGS` from the workspace root with `env`, into its own target
/// directory `target/SUBDIR` (so this nested cargo never waits on the build lock held by the
/// `cargo test` that is running us), and returns that directory.
fn nested_release_build(subdir: &str, args: &[&str], env: &[(&str, &str)], what: &str) -> PathBuf {
    let root = workspace_root();
    let target_dir = root.join("target").join(subdir);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--release"])
        .args(args)
        .env("CARGO_TARGET_DIR", &target_dir)
        .envs(env.iter().copied());
    if env.iter().any(|(k, _)| *k == "RUSTFLAGS") {
        // why: if set, this would win over the RUSTFLAGS given (the guest's +crt-static).
        cmd.env_remove("CARGO_ENCODED_RUSTFLAGS");
    }
    eprintln!("[uvio-vm] {what} into {}", target_dir.display());
    run_checked(&mut cmd, what);
    target_dir
}

/// `bin`, after checking the build that should have made it did.
fn built(bin: PathBuf) -> PathBuf {
    assert!(
        bin.is_file(),
        "cargo build succeeded but {} is missing",
        bin.display()
    );
    bin
}

/// Installs fio, lsscsi and sg3-utils on the host if any of their binaries is missing; the
/// harness copies them (with their shared libraries) into guests that ask for reference tools.
pub fn ensure_reference_tools() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if REFERENCE_BINARIES.iter().any(|b| find_program(b).is_none()) {
            apt_install(REFERENCE_PACKAGES);
        }
        for b in REFERENCE_BINARIES {
            require_program(b);
        }
    });
}

/// How the guest `uvio` is built: static (the guest has no libc) and not position-independent.
/// Why not static-pie: QEMU's TCG (7.2) caches the code it translates by virtual address, and
/// a PIE loads at a new random address each run, so every run translates the whole program
/// again: a whole `uvio scan` of 128 LUNs took 150-540 ms a run as static-pie and 43-94 ms
/// as non-PIE, side by side on one host.
const GUEST_RUSTFLAGS: &str = "-C target-feature=+crt-static -C relocation-model=static";

/// The static `uvio` binary to run in the guest: `$UVIO_GUEST_BIN` if set, otherwise built once
/// per test process with [`GUEST_RUSTFLAGS`] into `<workspace>/target/guest`.
pub fn guest_uvio_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = match std::env::var_os("UVIO_GUEST_BIN") {
            Some(p) => {
                let p = PathBuf::from(p);
                assert!(p.is_file(), "UVIO_GUEST_BIN={} is not a file", p.display());
                p
            }
            None => build_guest_uvio(),
        };
        match elf_is_static(&bin) {
            Ok(true) => {}
            Ok(false) => panic!(
                "{} is dynamically linked; the guest has no libc. Build it with \
                 RUSTFLAGS='{GUEST_RUSTFLAGS}' --target x86_64-unknown-linux-gnu",
                bin.display()
            ),
            Err(e) => panic!("guest uvio binary: {e}"),
        }
        // A static-pie loads at a new address each run, so TCG translates its code again
        // every time: timings (vm_scan_speed) would measure QEMU, not uvio.
        match elf_is_pie(&bin) {
            Ok(false) => {}
            Ok(true) => panic!(
                "{} is position-independent (a static-pie); build it with \
                 RUSTFLAGS='{GUEST_RUSTFLAGS}' --target x86_64-unknown-linux-gnu",
                bin.display()
            ),
            Err(e) => panic!("guest uvio binary: {e}"),
        }
        bin
    })
}

fn build_guest_uvio() -> PathBuf {
    let target_dir = nested_release_build(
        "guest",
        &["-p", "uvio-tools", "--target", "x86_64-unknown-linux-gnu"],
        &[("RUSTFLAGS", GUEST_RUSTFLAGS)],
        "building the static guest `uvio` (cargo build -p uvio-tools)",
    );
    built(
        target_dir
            .join("x86_64-unknown-linux-gnu")
            .join("release")
            .join("uvio"),
    )
}

/// A binary and every file the dynamic loader needs for it, as (guest path, host file) pairs.
/// Paths are kept as `ldd` prints them (e.g. `/lib/x86_64-linux-gnu/libc.so.6`), which are
/// directories the guest's loader searches by default.
pub(crate) fn binary_with_libraries(bin: &Path) -> Vec<(String, PathBuf)> {
    let mut files = vec![(bin.display().to_string(), bin.to_path_buf())];
    if elf_is_static(bin).unwrap_or_else(|e| panic!("{e}")) {
        return files;
    }
    let out = run_checked(Command::new("ldd").arg(bin), "ldd");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // Forms: "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)",
        //        "/lib64/ld-linux-x86-64.so.2 (0x...)", "linux-vdso.so.1 (0x...)".
        let path = match line.split_once("=>") {
            Some((_, rhs)) => rhs.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        let Some(path) = path.filter(|p| p.starts_with('/')) else {
            if line.contains("not found") {
                panic!("ldd {}: a library is missing: {line}", bin.display());
            }
            continue;
        };
        files.push((path.to_string(), PathBuf::from(path)));
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pie_is_told_from_an_executable_at_a_fixed_address() {
        // Rust links test binaries position-independent on this target (ET_DYN).
        let me = std::env::current_exe().expect("the test binary's path");
        assert_eq!(elf_is_pie(&me), Ok(true));
        // The same header with e_type ET_EXEC (2), as `-C relocation-model=static` links.
        let mut header = fs::read(&me).expect("the test binary")[..64].to_vec();
        header[16..18].copy_from_slice(&2u16.to_le_bytes());
        let path = std::env::temp_dir().join(format!("uvio-elf-exec-{}", std::process::id()));
        fs::write(&path, &header).expect("a scratch file");
        assert_eq!(elf_is_pie(&path), Ok(false));
        fs::remove_file(&path).ok();
    }
}
