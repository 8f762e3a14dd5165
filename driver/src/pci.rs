//! PCI functions as the kernel's sysfs shows them: addresses, IDs, the bound driver and the
//! IOMMU group. Nothing here touches the device itself; that is the `vfio` module's job.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Errors from reading PCI functions out of sysfs.
#[derive(Debug, thiserror::Error)]
pub enum PciError {
    #[error(
        "`{0}` is not a PCI address: expected DDDD:BB:DD.F (for example 0000:00:05.0) or BB:DD.F"
    )]
    BadAddress(String),
    #[error("no PCI function {0} in {1}: check the address with `uvio list` or `lspci -D`")]
    NoSuchFunction(PciAddress, PathBuf),
    #[error("reading {path}: {source}")]
    Sysfs { path: PathBuf, source: io::Error },
    #[error("{path} holds `{value}`, which is not a hexadecimal number")]
    BadAttribute { path: PathBuf, value: String },
}

/// A PCI function address (domain:bus:device.function), printed as `0000:00:05.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    pub domain: u16,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl FromStr for PciAddress {
    type Err = PciError;

    /// Accepts `DDDD:BB:DD.F` and the domain-less `BB:DD.F` (domain 0), as lspci prints them.
    fn from_str(s: &str) -> Result<Self, PciError> {
        let bad = || PciError::BadAddress(s.to_string());
        let parts: Vec<&str> = s.split(':').collect();
        let (domain, bus, devfn) = match parts.as_slice() {
            [d, b, df] => (*d, *b, *df),
            [b, df] => ("0", *b, *df),
            _ => return Err(bad()),
        };
        let (dev, func) = devfn.split_once('.').ok_or_else(bad)?;
        let hex = |t: &str, max_len: usize| -> Result<u32, PciError> {
            if t.is_empty() || t.len() > max_len {
                return Err(bad());
            }
            u32::from_str_radix(t, 16).map_err(|_| bad())
        };
        let (domain, bus, device, function) =
            (hex(domain, 4)?, hex(bus, 2)?, hex(dev, 2)?, hex(func, 1)?);
        if device > 0x1f || function > 7 {
            return Err(bad());
        }
        Ok(PciAddress {
            domain: domain as u16,
            bus: bus as u8,
            device: device as u8,
            function: function as u8,
        })
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

/// Where sysfs lives. Tests point it at a fake tree; everything else uses [`Sysfs::system`].
#[derive(Debug, Clone)]
pub struct Sysfs {
    root: PathBuf,
}

impl Sysfs {
    pub fn system() -> Self {
        Sysfs::at("/sys")
    }

    pub fn at(root: impl Into<PathBuf>) -> Self {
        Sysfs { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn pci_devices_dir(&self) -> PathBuf {
        self.root.join("bus/pci/devices")
    }

    pub fn pci_drivers_dir(&self) -> PathBuf {
        self.root.join("bus/pci/drivers")
    }

    /// Every PCI function in the system, sorted by address.
    pub fn pci_functions(&self) -> Result<Vec<PciFunction>, PciError> {
        let dir = self.pci_devices_dir();
        let entries = fs::read_dir(&dir).map_err(|source| PciError::Sysfs {
            path: dir.clone(),
            source,
        })?;
        let mut functions = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| PciError::Sysfs {
                path: dir.clone(),
                source,
            })?;
            // Entries that do not parse as an address are not PCI functions; skip them.
            if let Ok(address) = entry.file_name().to_string_lossy().parse::<PciAddress>() {
                functions.push(self.pci_function(address)?);
            }
        }
        functions.sort_by_key(|f| f.address);
        Ok(functions)
    }

    /// One PCI function, or [`PciError::NoSuchFunction`].
    pub fn pci_function(&self, address: PciAddress) -> Result<PciFunction, PciError> {
        let path = self.pci_devices_dir().join(address.to_string());
        if !path.exists() {
            return Err(PciError::NoSuchFunction(address, self.pci_devices_dir()));
        }
        let read_hex = |name: &str| -> Result<u32, PciError> {
            let p = path.join(name);
            let text = fs::read_to_string(&p).map_err(|source| PciError::Sysfs {
                path: p.clone(),
                source,
            })?;
            let value = text.trim();
            u32::from_str_radix(value.trim_start_matches("0x"), 16).map_err(|_| {
                PciError::BadAttribute {
                    path: p.clone(),
                    value: value.to_string(),
                }
            })
        };
        Ok(PciFunction {
            address,
            vendor_id: read_hex("vendor")? as u16,
            device_id: read_hex("device")? as u16,
            subsystem_device_id: read_hex("subsystem_device").unwrap_or(0) as u16,
            class: read_hex("class")?,
            sysfs_path: path,
        })
    }
}

/// A PCI function as sysfs describes it.
#[derive(Debug, Clone)]
pub struct PciFunction {
    pub address: PciAddress,
    pub vendor_id: u16,
    pub device_id: u16,
    pub subsystem_device_id: u16,
    pub class: u32,
    pub sysfs_path: PathBuf,
}

impl PciFunction {
    /// The name of the driver bound now (`virtio-pci`, `vfio-pci`, ...), if any.
    pub fn driver(&self) -> Option<String> {
        link_basename(&self.sysfs_path.join("driver"))
    }

    /// The IOMMU group number, or `None` when the system has no (v)IOMMU for this function.
    pub fn iommu_group(&self) -> Option<u32> {
        link_basename(&self.sysfs_path.join("iommu_group"))?
            .parse()
            .ok()
    }

    /// The value of `driver_override`, if set.
    pub fn driver_override(&self) -> Option<String> {
        let text = fs::read_to_string(self.sysfs_path.join("driver_override")).ok()?;
        let text = text.trim();
        (!text.is_empty() && text != "(null)").then(|| text.to_string())
    }
}

fn link_basename(link: &Path) -> Option<String> {
    let target = fs::read_link(link).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    // The fake sysfs tree is read back as virtio functions (a test-only look upward).
    use crate::virtio::DeviceType;

    #[test]
    fn parses_and_prints_addresses() {
        let a: PciAddress = "0000:00:05.0".parse().unwrap();
        assert_eq!(
            a,
            PciAddress {
                domain: 0,
                bus: 0,
                device: 5,
                function: 0
            }
        );
        assert_eq!(a.to_string(), "0000:00:05.0");
        let b: PciAddress = "3a:1f.7".parse().unwrap();
        assert_eq!(b.to_string(), "0000:3a:1f.7");
        let c: PciAddress = "abcd:ff:00.3".parse().unwrap();
        assert_eq!(c.domain, 0xabcd);
        for bad in [
            "",
            "00:05",
            "0000:00:05.8",
            "0000:00:20.0",
            "x:00:05.0",
            "00000:00:05.0",
            "0:0:0:0.0",
        ] {
            assert!(bad.parse::<PciAddress>().is_err(), "{bad} parsed");
        }
    }

    fn fake_function(root: &Path, bdf: &str, vendor: &str, device: &str, subsys: &str) {
        let dir = root.join("bus/pci/devices").join(bdf);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("vendor"), format!("{vendor}\n")).unwrap();
        fs::write(dir.join("device"), format!("{device}\n")).unwrap();
        fs::write(dir.join("subsystem_device"), format!("{subsys}\n")).unwrap();
        fs::write(dir.join("class"), "0x010000\n").unwrap();
    }

    #[test]
    fn reads_functions_from_a_sysfs_tree() {
        let root = std::env::temp_dir().join(format!("uvio-sysfs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fake_function(&root, "0000:00:05.0", "0x1af4", "0x1042", "0x1100");
        fake_function(&root, "0000:00:04.0", "0x1af4", "0x1004", "0x0008");
        fake_function(&root, "0000:00:1f.2", "0x8086", "0x2922", "0x1100");
        let groups = root.join("kernel/iommu_groups/3");
        fs::create_dir_all(&groups).unwrap();
        std::os::unix::fs::symlink(
            &groups,
            root.join("bus/pci/devices/0000:00:05.0/iommu_group"),
        )
        .unwrap();
        let sysfs = Sysfs::at(&root);
        let all = sysfs.pci_functions().unwrap();
        let names: Vec<String> = all.iter().map(|f| f.address.to_string()).collect();
        assert_eq!(names, ["0000:00:04.0", "0000:00:05.0", "0000:00:1f.2"]);
        assert_eq!(DeviceType::of(&all[0]), Some(DeviceType::Scsi));
        assert!(!DeviceType::is_modern(&all[0]));
        assert_eq!(DeviceType::of(&all[1]), Some(DeviceType::Block));
        assert_eq!(all[1].iommu_group(), Some(3));
        assert_eq!(all[0].iommu_group(), None);
        assert_eq!(DeviceType::of(&all[2]), None);
        assert!(matches!(
            sysfs.pci_function("0000:00:06.0".parse().unwrap()),
            Err(PciError::NoSuchFunction(..))
        ));
        fs::remove_dir_all(&root).unwrap();
    }
}
