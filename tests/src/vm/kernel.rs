//! The guest kernel: Debian's own `linux-image-6.1.0-N-amd64`, downloaded (never installed) into
//! `target/vm-cache/kernel-*`, with just the modules the tests need, decompressed and listed in
//! dependency order.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::host::{
    apt_install, apt_update, cache_dir, find_program, fnv1a, require_program, run_checked,
    run_unchecked, unique_suffix, CacheLock,
};

/// Modules the guest loads at boot (dependencies are added from modules.dep).
/// why vfio_iommu_type1 is explicit: vfio only names it as a soft dependency, which
/// modules.dep does not carry.
const WANTED_MODULES: &[&str] = &[
    "vfio",
    "vfio_iommu_type1",
    "vfio_pci",
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "sd_mod",
    "sr_mod",
    "sg",
    // md's sysfs interface makes a holder of a disk without mdadm (bind refuses held disks).
    "md_mod",
];

/// Bump when the layout of a cached kernel directory changes.
const CACHE_FORMAT: &str = "kernel-v1";

/// A cached guest kernel.
#[derive(Debug, Clone)]
pub struct GuestKernel {
    /// `uname -r` of the guest, e.g. `6.1.0-56-amd64`.
    pub version: String,
    /// The bzImage to pass to `-kernel`.
    pub vmlinuz: PathBuf,
    /// Directory laid out like the guest's `/lib/modules/<version>`.
    pub modules_dir: PathBuf,
    /// Module files relative to `modules_dir`, in the order to `insmod` them.
    pub load_order: Vec<String>,
}

/// The guest kernel, downloaded and prepared on first use (once per process; the on-disk cache
/// is shared by all processes and reused across runs).
pub fn guest_kernel() -> &'static GuestKernel {
    static KERNEL: OnceLock<GuestKernel> = OnceLock::new();
    KERNEL.get_or_init(prepare_kernel)
}

fn cache_key() -> String {
    let wanted = WANTED_MODULES.join(",");
    format!(
        "{:012x}",
        fnv1a(&[CACHE_FORMAT.as_bytes(), wanted.as_bytes()]) & 0xffff_ffff_ffff
    )
}

/// `linux-image-6.1.0-N-amd64`, from the metapackage's dependency; `$UVIO_GUEST_KERNEL_PKG`
/// overrides it.
fn resolve_package_name() -> Option<String> {
    if let Ok(p) = std::env::var("UVIO_GUEST_KERNEL_PKG") {
        return Some(p);
    }
    let out = run_unchecked(
        Command::new("apt-cache").args(["depends", "linux-image-amd64"]),
        "apt-cache depends linux-image-amd64",
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|d| d.starts_with("linux-image-") && d != &"linux-image-amd64")
        .map(str::to_string)
}

fn load_cached(dir: &Path) -> Option<GuestKernel> {
    let version = fs::read_to_string(dir.join("version"))
        .ok()?
        .trim()
        .to_string();
    let order = fs::read_to_string(dir.join("load-order")).ok()?;
    let k = GuestKernel {
        vmlinuz: dir.join("vmlinuz"),
        modules_dir: dir.join("modules"),
        load_order: order.lines().map(str::to_string).collect(),
        version,
    };
    k.vmlinuz.is_file().then_some(k)
}

fn prepare_kernel() -> GuestKernel {
    let cache = cache_dir();
    let key = cache_key();
    let mut pkg = resolve_package_name();
    if pkg.is_none() {
        // why: offline or before `apt-get update`, apt-cache knows nothing; a kernel cached by
        // an earlier run is good enough then.
        if let Some(k) = newest_cached(&cache, &key) {
            return k;
        }
        apt_update();
        pkg = resolve_package_name();
    }
    let pkg = pkg.unwrap_or_else(|| {
        panic!("cannot resolve the guest kernel: `apt-cache depends linux-image-amd64` names no linux-image-* package")
    });
    let final_dir = cache.join(format!("kernel-{pkg}-{key}"));
    if let Some(k) = load_cached(&final_dir) {
        return k;
    }
    let _lock = CacheLock::acquire("kernel");
    // Another process may have finished it while we waited for the lock.
    if let Some(k) = load_cached(&final_dir) {
        return k;
    }
    build_kernel_dir(&pkg, &final_dir);
    load_cached(&final_dir).unwrap_or_else(|| {
        panic!(
            "kernel cache {} incomplete after building",
            final_dir.display()
        )
    })
}

fn newest_cached(cache: &Path, key: &str) -> Option<GuestKernel> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(cache)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("kernel-") && n.ends_with(key))
        })
        .collect();
    dirs.sort();
    dirs.iter().rev().find_map(|d| load_cached(d))
}

fn build_kernel_dir(pkg: &str, final_dir: &Path) {
    let tmp = cache_dir().join(format!("tmp-kernel-{}", unique_suffix()));
    fs::create_dir_all(&tmp).unwrap_or_else(|e| panic!("create {}: {e}", tmp.display()));
    // Guard so a panic below does not leave 400 MB of extracted package behind.
    struct RemoveOnDrop(PathBuf);
    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = RemoveOnDrop(tmp.clone());

    eprintln!("[uvio-vm] downloading guest kernel package {pkg}");
    let download = |what: &str| {
        run_unchecked(
            Command::new("apt-get")
                .current_dir(&tmp)
                .args(["download", "-q", pkg]),
            what,
        )
    };
    let mut out = download("apt-get download");
    if !out.status.success() {
        // why: stale package lists name a version the mirror no longer has.
        apt_update();
        out = download("apt-get download (after update)");
    }
    if !out.status.success() {
        panic!(
            "apt-get download {pkg} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let deb = fs::read_dir(&tmp)
        .expect("read kernel temp dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .unwrap_or_else(|| panic!("apt-get download {pkg} left no .deb in {}", tmp.display()));

    let root = tmp.join("root");
    run_checked(
        Command::new("dpkg").arg("-x").arg(&deb).arg(&root),
        "dpkg -x (extract guest kernel package)",
    );
    let _ = fs::remove_file(&deb);

    let modules_root = root.join("lib").join("modules");
    let version = fs::read_dir(&modules_root)
        .unwrap_or_else(|e| panic!("{pkg} has no lib/modules ({}): {e}", modules_root.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .unwrap_or_else(|| panic!("{pkg}: lib/modules is empty"));
    let src_mods = modules_root.join(&version);
    let vmlinuz = root.join("boot").join(format!("vmlinuz-{version}"));
    assert!(vmlinuz.is_file(), "{pkg}: {} missing", vmlinuz.display());

    if !src_mods.join("modules.dep").is_file() {
        // why: Debian ships no modules.dep; its postinst runs depmod, and we never install.
        run_checked(
            Command::new(require_program("depmod"))
                .arg("-b")
                .arg(&root)
                .arg(&version),
            "depmod -b (guest kernel modules)",
        );
    }
    let dep = fs::read_to_string(src_mods.join("modules.dep"))
        .unwrap_or_else(|e| panic!("read modules.dep: {e}"));
    let builtin = fs::read_to_string(src_mods.join("modules.builtin")).unwrap_or_default();
    let order = load_order(&dep, &builtin, WANTED_MODULES)
        .unwrap_or_else(|e| panic!("guest kernel {version}: {e}"));

    let staging = tmp.join("out");
    let staged_mods = staging.join("modules");
    let mut plain = Vec::new();
    for rel in &order {
        let (plain_rel, dst) = {
            let p = strip_compression(rel);
            (p.to_string(), staged_mods.join(p))
        };
        fs::create_dir_all(dst.parent().expect("module path has a parent"))
            .expect("create staged module dir");
        decompress_module(&src_mods.join(rel), &dst);
        plain.push(plain_rel);
    }
    fs::copy(&vmlinuz, staging.join("vmlinuz")).expect("copy vmlinuz into kernel cache");
    fs::write(staging.join("load-order"), plain.join("\n") + "\n").expect("write load-order");
    fs::write(staging.join("package"), format!("{pkg}\n")).expect("write package");
    // `version` last: its presence marks a complete directory (see load_cached).
    fs::write(staging.join("version"), format!("{version}\n")).expect("write version");
    match fs::rename(&staging, final_dir) {
        Ok(()) => {}
        // Someone else renamed an equivalent directory into place first: keep theirs.
        Err(_) if final_dir.join("version").is_file() => {}
        Err(e) => panic!(
            "rename {} -> {}: {e}",
            staging.display(),
            final_dir.display()
        ),
    }
    eprintln!(
        "[uvio-vm] guest kernel {version} cached in {}",
        final_dir.display()
    );
}

fn strip_compression(rel: &str) -> &str {
    for ext in [".xz", ".zst", ".gz"] {
        if let Some(s) = rel.strip_suffix(ext) {
            return s;
        }
    }
    rel
}

/// busybox `insmod` wants a plain `.ko`: decompress `.ko.xz` / `.ko.zst` / `.ko.gz` here.
fn decompress_module(src: &Path, dst: &Path) {
    let name = src.display().to_string();
    let (tool, package) = if name.ends_with(".xz") {
        ("xz", "xz-utils")
    } else if name.ends_with(".zst") {
        ("zstd", "zstd")
    } else if name.ends_with(".gz") {
        ("gzip", "gzip")
    } else {
        fs::copy(src, dst).unwrap_or_else(|e| panic!("copy {name}: {e}"));
        return;
    };
    if find_program(tool).is_none() {
        apt_install(&[package]);
    }
    let out = run_checked(
        Command::new(require_program(tool)).arg("-dc").arg(src),
        "decompress kernel module",
    );
    fs::write(dst, out.stdout).unwrap_or_else(|e| panic!("write {}: {e}", dst.display()));
}

/// Module name as the kernel sees it: basename without `.ko*`, `-` folded to `_`.
fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let base = base.split(".ko").next().unwrap_or(base);
    base.replace('-', "_")
}

/// Dependency-ordered list of module paths (relative, as in modules.dep) for `wanted`, skipping
/// built-in ones. Errors name modules that are neither loadable nor built in.
pub(crate) fn load_order(dep: &str, builtin: &str, wanted: &[&str]) -> Result<Vec<String>, String> {
    let mut deps: HashMap<String, (String, Vec<String>)> = HashMap::new();
    for line in dep.lines() {
        let Some((path, rest)) = line.split_once(':') else {
            continue;
        };
        let list = rest.split_whitespace().map(str::to_string).collect();
        deps.insert(module_name(path), (path.to_string(), list));
    }
    let builtin: HashSet<String> = builtin.lines().map(module_name).collect();

    fn visit(
        name: &str,
        deps: &HashMap<String, (String, Vec<String>)>,
        done: &mut HashSet<String>,
        out: &mut Vec<String>,
        stack: &mut Vec<String>,
    ) -> Result<(), String> {
        if done.contains(name) {
            return Ok(());
        }
        if stack.iter().any(|s| s == name) {
            return Err(format!("dependency cycle through {name}"));
        }
        let (path, list) = deps
            .get(name)
            .ok_or_else(|| format!("module {name} is listed in modules.dep by no path"))?;
        stack.push(name.to_string());
        for d in list {
            visit(&module_name(d), deps, done, out, stack)?;
        }
        stack.pop();
        done.insert(name.to_string());
        out.push(path.clone());
        Ok(())
    }

    let mut done = HashSet::new();
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for w in wanted {
        let name = w.replace('-', "_");
        if builtin.contains(&name) {
            continue;
        }
        if !deps.contains_key(&name) {
            missing.push(name);
            continue;
        }
        visit(&name, &deps, &mut done, &mut out, &mut Vec::new())?;
    }
    if !missing.is_empty() {
        return Err(format!(
            "modules neither in modules.dep nor modules.builtin: {}",
            missing.join(", ")
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_puts_dependencies_first_and_skips_builtins() {
        let dep = "kernel/b/vfio-pci.ko: kernel/b/vfio-pci-core.ko kernel/a/vfio.ko\n\
                   kernel/b/vfio-pci-core.ko: kernel/a/vfio.ko kernel/c/irqbypass.ko.xz\n\
                   kernel/a/vfio.ko:\n\
                   kernel/c/irqbypass.ko.xz:\n\
                   kernel/d/sg.ko: kernel/d/scsi_mod.ko\n\
                   kernel/d/scsi_mod.ko:\n";
        let builtin = "kernel/e/virtio_pci.ko\n";
        let order = load_order(dep, builtin, &["vfio_pci", "virtio-pci", "sg", "vfio"]).unwrap();
        assert_eq!(
            order,
            [
                "kernel/a/vfio.ko",
                "kernel/c/irqbypass.ko.xz",
                "kernel/b/vfio-pci-core.ko",
                "kernel/b/vfio-pci.ko",
                "kernel/d/scsi_mod.ko",
                "kernel/d/sg.ko",
            ]
        );
        assert!(load_order(dep, builtin, &["nope"])
            .unwrap_err()
            .contains("nope"));
    }
}
