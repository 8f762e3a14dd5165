//! `uvio list`: the virtio PCI functions of this system.

use std::path::Path;

use serde::Serialize;
use uvio::binding::VFIO_PCI_DRIVER;
use uvio::pci::{PciFunction, Sysfs};
use uvio::virtio::DeviceType;

use crate::command::CmdResult;

#[derive(Serialize)]
struct Listed {
    bdf: String,
    device_type: String,
    vendor_id: String,
    device_id: String,
    modern: bool,
    driver: Option<String>,
    iommu_group: Option<u32>,
    /// Whether `uvio info` / the driver can open it now.
    usable: bool,
    /// Why not, and what to do, when it is not usable.
    reason: Option<String>,
}

fn describe(function: &PciFunction) -> Option<Listed> {
    let device_type = DeviceType::of(function)?;
    let driver = function.driver();
    let group = function.iommu_group();
    let bdf = function.address.to_string();
    let reason = match (&group, driver.as_deref()) {
        (None, _) => Some("no IOMMU group: the guest needs a vIOMMU (intel_iommu=on)".to_string()),
        (Some(_), Some(VFIO_PCI_DRIVER)) => None,
        (Some(_), Some(other)) => Some(format!("bound to {other}: run `uvio bind {bdf}`")),
        (Some(_), None) => Some(format!("no driver bound: run `uvio bind {bdf}`")),
    };
    let reason = reason.or_else(|| {
        let node = format!("/dev/vfio/{}", group.unwrap_or_default());
        (!Path::new(&node).exists()).then(|| format!("{node} is missing"))
    });
    Some(Listed {
        bdf,
        device_type: device_type.name(),
        vendor_id: format!("0x{:04x}", function.vendor_id),
        device_id: format!("0x{:04x}", function.device_id),
        modern: DeviceType::is_modern(function),
        driver,
        iommu_group: group,
        usable: reason.is_none(),
        reason,
    })
}

pub fn run(json: bool) -> CmdResult {
    let functions = Sysfs::system().pci_functions()?;
    let listed: Vec<Listed> = functions.iter().filter_map(describe).collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(());
    }
    if listed.is_empty() {
        println!("no virtio PCI functions found");
        return Ok(());
    }
    println!(
        "{:<13} {:<6} {:<10} {:<11} {:>5}  UVIO",
        "BDF", "TYPE", "ID", "DRIVER", "GROUP"
    );
    for l in &listed {
        println!(
            "{:<13} {:<6} {:<10} {:<11} {:>5}  {}",
            l.bdf,
            l.device_type,
            format!("{}:{}", &l.vendor_id[2..], &l.device_id[2..]),
            l.driver.as_deref().unwrap_or("-"),
            l.iommu_group.map_or("-".to_string(), |g| g.to_string()),
            l.reason
                .as_deref()
                .map_or("yes".to_string(), |r| format!("no: {r}")),
        );
    }
    Ok(())
}
