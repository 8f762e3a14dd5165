//! `uvio info BDF`: open a function through VFIO, negotiate, and print what it offers.

use serde_json::{json, Value};
use uvio::blk::config::{blk_config_fields, BlkConfig};
use uvio::pci::{PciAddress, Sysfs};
use uvio::scsi::config::{ScsiConfig, SCSI_CONFIG_FIELDS};
use uvio::virtio::features::driver_features;
use uvio::virtio::{DeviceType, Features, VirtioPciTransport};

use crate::command::CmdResult;

pub fn run(bdf: PciAddress, json_output: bool) -> CmdResult {
    let function = Sysfs::system().pci_function(bdf)?;
    let mut transport = VirtioPciTransport::open(&function)?;
    let device_type = transport.device_type();
    let required = Features::VERSION_1 | Features::ACCESS_PLATFORM;
    let negotiated =
        transport.negotiate(driver_features(device_type, crate::open::ring()), required)?;
    let offered = transport.device_features()?;
    let virtqueues = transport.num_queues()?;
    let config: Value = match device_type {
        DeviceType::Block => serde_json::to_value(BlkConfig::parse(
            &transport.read_device_config(&blk_config_fields(negotiated))?,
            negotiated,
        )?)?,
        DeviceType::Scsi => serde_json::to_value(ScsiConfig::parse(
            &transport.read_device_config(&SCSI_CONFIG_FIELDS)?,
        )?)?,
        // uvio drives only block and SCSI devices; other configurations are not decoded.
        _ => Value::Null,
    };
    let caps = transport.capabilities();
    let window = |w: uvio::virtio::pci::StructureWindow| json!({ "bar": w.bar, "offset": w.offset, "length": w.length });
    let report = json!({
        "bdf": bdf.to_string(),
        "device_type": device_type.name(),
        "vendor_id": format!("0x{:04x}", function.vendor_id),
        "device_id": format!("0x{:04x}", function.device_id),
        "iommu_group": transport.vfio().group_number(),
        "virtqueues": virtqueues,
        "features": {
            "offered_bits": format!("0x{offered:016x}"),
            "negotiated_bits": format!("0x{negotiated:016x}"),
            "offered": offered.names(device_type),
            "negotiated": negotiated.names(device_type),
        },
        "config": config,
        "capabilities": {
            "common": window(caps.common),
            "notify": window(caps.notify),
            "notify_off_multiplier": caps.notify_off_multiplier,
            "isr": window(caps.isr),
            "device": caps.device.map(window),
        },
    });
    // Dropping the transport resets the device: nothing is left negotiated behind us.
    drop(transport);

    if json_output {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{bdf}: virtio-{} ({}:{}), IOMMU group {}, {virtqueues} virtqueues",
        report["device_type"].as_str().unwrap_or("?"),
        &report["vendor_id"].as_str().unwrap_or("0x????")[2..],
        &report["device_id"].as_str().unwrap_or("0x????")[2..],
        report["iommu_group"],
    );
    for (label, bits, list) in [
        ("offered features", offered, offered.names(device_type)),
        (
            "negotiated features",
            negotiated,
            negotiated.names(device_type),
        ),
    ] {
        println!("{label} (0x{bits:016x}):");
        for name in list {
            println!("  {name}");
        }
    }
    println!("config:");
    print_fields(&report["config"], "  ");
    if device_type == DeviceType::Block {
        if let Some(sectors) = report["config"]["capacity"].as_u64() {
            println!("  (capacity: {} bytes)", sectors * 512);
        }
    }
    Ok(())
}

fn print_fields(value: &Value, indent: &str) {
    let Some(map) = value.as_object() else { return };
    for (key, field) in map {
        if field.is_object() {
            println!("{indent}{key}:");
            print_fields(field, &format!("{indent}  "));
        } else {
            println!("{indent}{key}: {field}");
        }
    }
}

/// `uvio info BDF --watch SECONDS` on a virtio-blk disk: drive it (DRIVER_OK) and follow
/// configuration changes, printing each new capacity as the driver re-reads it.
pub fn watch_blk(bdf: PciAddress, duration: std::time::Duration) -> CmdResult {
    let function = Sysfs::system().pci_function(bdf)?;
    let options = uvio::blk::BlkOptions {
        queues: Some(1),
        ring: crate::open::ring(),
        ..Default::default()
    };
    let mut disk = uvio::blk::VirtioBlk::open(&function, &options)?;
    let mut capacity = disk.block_device().capacity();
    crate::interrupt::catch();
    let serial = disk
        .block_device()
        .serial
        .as_deref()
        .unwrap_or("-")
        .to_string();
    println!(
        "{bdf}: capacity {capacity} bytes, serial {serial}; watching for {} s",
        duration.as_secs()
    );
    let start = std::time::Instant::now();
    while start.elapsed() < duration && !crate::interrupt::requested() {
        if disk.refresh_config()? {
            let now = disk.block_device().capacity();
            if now != capacity {
                println!("{bdf}: capacity changed from {capacity} to {now} bytes");
                capacity = now;
            } else {
                println!("{bdf}: configuration changed");
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    match crate::interrupt::removed() {
        Some(removed) => Err(crate::interrupt::Interrupted::removed(removed).into()),
        None => Ok(()),
    }
}
