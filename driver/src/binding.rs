//! Handing PCI functions to vfio-pci and back to their kernel driver, through sysfs
//! (`driver_override`, `unbind`, `drivers_probe`), with the checks that keep a user from
//! pulling a disk out from under a mounted file system.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::pci::{PciAddress, PciError, PciFunction, Sysfs};
use crate::virtio::DeviceType;

pub const VFIO_PCI_DRIVER: &str = "vfio-pci";

/// Errors from binding and unbinding.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("binding PCI functions needs root: run uvio as root (or with sudo)")]
    NotRoot,
    #[error(transparent)]
    Pci(#[from] PciError),
    #[error("{bdf} is not a virtio function (vendor {vendor:04x}, device {device:04x}); uvio drives only virtio-blk and virtio-scsi")]
    NotVirtio {
        bdf: PciAddress,
        vendor: u16,
        device: u16,
    },
    #[error(
        "{0} has no IOMMU group, so VFIO cannot take it: the guest needs a vIOMMU. In QEMU use \
         `-M q35 -device intel-iommu,caching-mode=on`, boot the guest kernel with `intel_iommu=on`, \
         and give each virtio device `iommu_platform=on,disable-legacy=on`"
    )]
    NoIommuGroup(PciAddress),
    #[error("the vfio-pci driver is not loaded: run `modprobe vfio-pci` and try again")]
    VfioPciNotLoaded,
    #[error(
        "{bdf} is in use: {what}. Release it first (umount, swapoff, or remove the \
         device-mapper/md device that holds it)"
    )]
    InUse { bdf: PciAddress, what: String },
    #[error("writing `{value}` to {path}: {source}")]
    Sysfs {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
    #[error("{bdf} did not bind to {wanted}: it is now bound to {now}")]
    DidNotBind {
        bdf: PciAddress,
        wanted: String,
        now: String,
    },
}

/// What a bind or unbind did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindOutcome {
    /// The function moved from `from` (or no driver) to `to`.
    Moved { from: Option<String>, to: String },
    /// It was already where it was asked to go.
    AlreadyBound(String),
}

fn write_attr(path: &Path, value: &str) -> Result<(), BindError> {
    fs::write(path, value).map_err(|source| BindError::Sysfs {
        path: path.to_path_buf(),
        value: value.trim().to_string(),
        source,
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Checks that `function` is a virtio function with an IOMMU group.
fn check_virtio_with_group(function: &PciFunction) -> Result<(), BindError> {
    if DeviceType::of(function).is_none() {
        return Err(BindError::NotVirtio {
            bdf: function.address,
            vendor: function.vendor_id,
            device: function.device_id,
        });
    }
    if function.iommu_group().is_none() {
        return Err(BindError::NoIommuGroup(function.address));
    }
    Ok(())
}

/// Hands `address` to vfio-pci.
pub fn bind_to_vfio(sysfs: &Sysfs, address: PciAddress) -> Result<BindOutcome, BindError> {
    let function = sysfs.pci_function(address)?;
    check_virtio_with_group(&function)?;
    let current = function.driver();
    if current.as_deref() == Some(VFIO_PCI_DRIVER) {
        return Ok(BindOutcome::AlreadyBound(VFIO_PCI_DRIVER.into()));
    }
    if !is_root() {
        return Err(BindError::NotRoot);
    }
    if !sysfs.pci_drivers_dir().join(VFIO_PCI_DRIVER).exists() {
        return Err(BindError::VfioPciNotLoaded);
    }
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let swaps = fs::read_to_string("/proc/swaps").unwrap_or_default();
    if let Some(what) = block_devices_in_use(&function, &mounts, &swaps)
        .into_iter()
        .next()
    {
        return Err(BindError::InUse { bdf: address, what });
    }
    write_attr(
        &function.sysfs_path.join("driver_override"),
        VFIO_PCI_DRIVER,
    )?;
    if current.is_some() {
        write_attr(
            &function.sysfs_path.join("driver/unbind"),
            &address.to_string(),
        )?;
    }
    probe(sysfs, &function, VFIO_PCI_DRIVER)?;
    Ok(BindOutcome::Moved {
        from: current,
        to: VFIO_PCI_DRIVER.into(),
    })
}

/// Gives `address` back from vfio-pci to whichever kernel driver claims it (virtio-pci).
pub fn unbind_from_vfio(sysfs: &Sysfs, address: PciAddress) -> Result<BindOutcome, BindError> {
    let function = sysfs.pci_function(address)?;
    if DeviceType::of(&function).is_none() {
        return Err(BindError::NotVirtio {
            bdf: address,
            vendor: function.vendor_id,
            device: function.device_id,
        });
    }
    let current = function.driver();
    let overridden = function.driver_override().is_some();
    if current.as_deref() != Some(VFIO_PCI_DRIVER) && !overridden {
        if let Some(driver) = current {
            return Ok(BindOutcome::AlreadyBound(driver));
        }
    }
    if !is_root() {
        return Err(BindError::NotRoot);
    }
    if current.is_some() {
        write_attr(
            &function.sysfs_path.join("driver/unbind"),
            &address.to_string(),
        )?;
    }
    // An empty line clears the override, so the ID tables decide again.
    write_attr(&function.sysfs_path.join("driver_override"), "\n")?;
    write_attr(
        &sysfs.root().join("bus/pci/drivers_probe"),
        &address.to_string(),
    )?;
    match function.driver() {
        Some(now) => Ok(BindOutcome::Moved {
            from: current,
            to: now,
        }),
        None => Err(BindError::DidNotBind {
            bdf: address,
            wanted: "its kernel driver (virtio-pci; is the module loaded?)".into(),
            now: "no driver".into(),
        }),
    }
}

/// Asks the kernel to probe `function` and waits briefly for `wanted` to bind it.
fn probe(sysfs: &Sysfs, function: &PciFunction, wanted: &str) -> Result<(), BindError> {
    let address = function.address;
    write_attr(
        &sysfs.root().join("bus/pci/drivers_probe"),
        &address.to_string(),
    )?;
    // drivers_probe binds synchronously, but give a slow guest a moment for the sysfs link.
    let start = Instant::now();
    loop {
        let now = function.driver();
        if now.as_deref() == Some(wanted) {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(2) {
            return Err(BindError::DidNotBind {
                bdf: address,
                wanted: wanted.into(),
                now: now.unwrap_or_else(|| "no driver".into()),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The kernel block devices (and their partitions) that hang below `function` in sysfs:
/// `virtioN/block/vda` for virtio-blk, `virtioN/hostH/target*/H:C:T:L/block/sdX` for
/// virtio-scsi.
pub fn block_devices_below(function: &PciFunction) -> Vec<String> {
    let mut names: Vec<String> = block_device_dirs(function)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    names.sort();
    names
}

/// Each block device below `function` with its sysfs directory.
fn block_device_dirs(function: &PciFunction) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    collect_block_devices(&function.sysfs_path, 0, &mut out);
    out
}

fn collect_block_devices(dir: &Path, depth: usize, out: &mut Vec<(String, PathBuf)>) {
    // sysfs device trees are shallow; the depth bound keeps a strange tree from running away.
    if depth > 8 {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        // Symlinks (driver, subsystem, ...) lead out of this device's subtree: never follow.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if !kind.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "block" {
            for disk in fs::read_dir(entry.path()).into_iter().flatten().flatten() {
                let disk_name = disk.file_name().to_string_lossy().into_owned();
                for part in fs::read_dir(disk.path()).into_iter().flatten().flatten() {
                    let part_name = part.file_name().to_string_lossy().into_owned();
                    if part_name.starts_with(&disk_name) && part.path().join("partition").exists() {
                        out.push((part_name, part.path()));
                    }
                }
                out.push((disk_name, disk.path()));
            }
        } else {
            collect_block_devices(&entry.path(), depth + 1, out);
        }
    }
}

/// Describes each block device below `function` that is mounted (per `mounts`, in
/// /proc/mounts format), used as swap (per `swaps`, in /proc/swaps format), or held by a
/// stacked device (device-mapper, LVM, md: its sysfs `holders` directory is not empty).
pub fn block_devices_in_use(function: &PciFunction, mounts: &str, swaps: &str) -> Vec<String> {
    let mut devices = block_device_dirs(function);
    devices.sort();
    let below = |name: &str| devices.iter().any(|(d, _)| d == name);
    let mut used = Vec::new();
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        if let (Some(source), Some(target)) = (fields.next(), fields.next()) {
            if let Some(name) = source.strip_prefix("/dev/") {
                if below(name) {
                    used.push(format!("{source} is mounted on {target}"));
                }
            }
        }
    }
    for line in swaps.lines().skip(1) {
        if let Some(name) = line
            .split_whitespace()
            .next()
            .and_then(|s| s.strip_prefix("/dev/"))
        {
            if below(name) {
                used.push(format!("/dev/{name} is in use as swap"));
            }
        }
    }
    for (name, dir) in &devices {
        let mut holders: Vec<String> = fs::read_dir(dir.join("holders"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|h| h.file_name().to_string_lossy().into_owned())
            .collect();
        holders.sort();
        if !holders.is_empty() {
            used.push(format!("/dev/{name} is held by {}", holders.join(", ")));
        }
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_mounted_disks_and_partitions_below_a_function() {
        let root = std::env::temp_dir().join(format!("uvio-bind-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let dev = root.join("bus/pci/devices/0000:00:05.0");
        fs::create_dir_all(dev.join("virtio2/block/vda/vda1")).unwrap();
        fs::write(dev.join("virtio2/block/vda/vda1/partition"), "1\n").unwrap();
        fs::create_dir_all(dev.join("virtio2/block/vda/queue")).unwrap();
        for (name, value) in [
            ("vendor", "0x1af4"),
            ("device", "0x1042"),
            ("class", "0x010000"),
        ] {
            fs::write(dev.join(name), value).unwrap();
        }
        let function = Sysfs::at(&root)
            .pci_function("0000:00:05.0".parse().unwrap())
            .unwrap();
        assert_eq!(block_devices_below(&function), ["vda", "vda1"]);
        let mounts =
            "/dev/root / ext4 rw 0 0\n/dev/vda1 /mnt ext4 rw 0 0\n/dev/vdb /data xfs rw 0 0\n";
        let swaps = "Filename Type Size Used Priority\n/dev/vda partition 1024 0 -2\n";
        assert_eq!(
            block_devices_in_use(&function, mounts, swaps),
            ["/dev/vda1 is mounted on /mnt", "/dev/vda is in use as swap"]
        );
        assert!(block_devices_in_use(&function, "/dev/vdb /data xfs rw 0 0\n", "").is_empty());
        // An LVM physical volume on the partition: device-mapper holds it.
        fs::create_dir_all(dev.join("virtio2/block/vda/vda1/holders/dm-0")).unwrap();
        fs::create_dir_all(dev.join("virtio2/block/vda/holders")).unwrap();
        assert_eq!(
            block_devices_in_use(&function, "", ""),
            ["/dev/vda1 is held by dm-0"]
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
