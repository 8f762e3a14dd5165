//! `uvio scan --json`: the document, serialized straight from the scan reports into one
//! buffer (no `serde_json::Value` tree in between: building one costs a map and a few
//! allocations per field, which a guest without hardware virtualisation pays for dearly).

use serde::ser::{Serialize, SerializeMap, Serializer};
use uvio::pci::PciAddress;
use uvio::scsi::scan::{ScanReport, ScannedLun};

use super::filter::Filter;

/// One scanned host as `--json` prints it: `pci`, `host`, its LUNs that pass the filter,
/// and the scan's warnings.
pub struct HostJson<'a> {
    pub bdf: PciAddress,
    /// The host's position among those scanned (lsscsi's H).
    pub index: usize,
    pub report: &'a ScanReport,
    pub filter: &'a Filter,
}

/// The whole document: `{"hosts": [...]}`, pretty-printed, with a final newline.
pub fn document(hosts: &[HostJson<'_>]) -> serde_json::Result<Vec<u8>> {
    struct Doc<'a, 'b>(&'a [HostJson<'b>]);
    impl Serialize for Doc<'_, '_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(1))?;
            m.serialize_entry("hosts", self.0)?;
            m.end()
        }
    }
    // Room for the whole document at once: a disk LUN takes about 1.2 KB of it.
    let luns: usize = hosts.iter().map(|h| h.report.luns.len()).sum();
    let mut out = Vec::with_capacity(4096 + luns * 1200);
    serde_json::to_writer_pretty(&mut out, &Doc(hosts))?;
    out.push(b'\n');
    Ok(out)
}

impl Serialize for HostJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Luns<'a>(&'a HostJson<'a>);
        impl Serialize for Luns<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let h = self.0;
                s.collect_seq(
                    h.report
                        .luns
                        .iter()
                        .filter(|l| h.filter.matches(h.index, l))
                        .map(|l| LunJson { bdf: h.bdf, lun: l }),
                )
            }
        }
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("pci", &format_args!("{}", self.bdf))?;
        m.serialize_entry("host", &self.index)?;
        m.serialize_entry("luns", &Luns(self))?;
        m.serialize_entry("warnings", &self.report.warnings)?;
        m.end()
    }
}

/// One LUN: what INQUIRY said, and for a disk what sd would know of it.
struct LunJson<'a> {
    bdf: PciAddress,
    lun: &'a ScannedLun,
}

/// A VPD page code as `"0x83"`.
struct PageCode(u8);

impl Serialize for PageCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("0x{:02x}", self.0))
    }
}

impl Serialize for LunJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let l = self.lun;
        let inq = &l.inquiry;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("channel", &l.channel)?;
        m.serialize_entry("target", &l.target)?;
        m.serialize_entry("lun", &l.lun)?;
        m.serialize_entry("linux_lun", &l.linux_lun)?;
        m.serialize_entry("type", inq.device_type.short_name())?;
        m.serialize_entry("pdt", &inq.device_type.0)?;
        m.serialize_entry("pq", &inq.peripheral_qualifier)?;
        m.serialize_entry("vendor", inq.vendor_trimmed())?;
        m.serialize_entry("model", inq.product_trimmed())?;
        m.serialize_entry("revision", inq.revision_trimmed())?;
        m.serialize_entry("scsi_level", &inq.scsi_level)?;
        m.serialize_entry("removable", &inq.removable)?;
        if let Some(d) = &l.disk {
            m.serialize_entry(
                "device",
                &format_args!("{}/{}:{}:{}", self.bdf, l.channel, l.target, l.lun),
            )?;
            m.serialize_entry("blocks", &d.blocks)?;
            m.serialize_entry("block_size", &d.block_size)?;
            m.serialize_entry("physical_block_size", &d.physical_block_size)?;
            m.serialize_entry("size_bytes", &d.size_bytes)?;
            m.serialize_entry("write_protect", &d.write_protect)?;
            m.serialize_entry("write_cache", &d.write_cache)?;
            m.serialize_entry("fua", &d.fua)?;
            m.serialize_entry("serial", &d.serial)?;
            m.serialize_entry("identifiers", &d.identifiers)?;
            m.serialize_entry("rotation_rate", &d.rotation_rate)?;
            m.serialize_entry("max_transfer_blocks", &d.max_transfer_blocks)?;
            m.serialize_entry("optimal_transfer_blocks", &d.optimal_transfer_blocks)?;
            m.serialize_entry("unmap", &d.unmap)?;
            let pages: Vec<PageCode> = d.vpd_pages.iter().map(|&p| PageCode(p)).collect();
            m.serialize_entry("vpd_pages", &pages)?;
            m.serialize_entry("not_ready", &d.not_ready)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::fixtures::qemu_inquiry as inquiry;
    use uvio::scsi::scan::{DiskInfo, UnmapLimits};

    fn report() -> ScanReport {
        let disk = DiskInfo {
            blocks: 2048,
            block_size: 4096,
            physical_block_size: 4096,
            size_bytes: 2048 * 4096,
            write_protect: true,
            write_cache: true,
            fua: false,
            serial: Some("s-7".into()),
            identifiers: vec!["naa.6001405abcdef012".into(), "t10.QEMU".into()],
            rotation_rate: Some(1),
            max_transfer_blocks: Some(256),
            optimal_transfer_blocks: None,
            unmap: UnmapLimits {
                lbpme: true,
                lbpu: true,
                lbpws: false,
                max_unmap_blocks: Some(4096),
                max_unmap_descriptors: None,
                granularity_blocks: Some(1),
            },
            vpd_pages: vec![0x00, 0x80, 0x83, 0xb0],
            use_16: false,
            not_ready: None,
        };
        let lun = |target: u16, lun: u16, linux_lun: u64, inquiry, disk| ScannedLun {
            channel: 0,
            target,
            lun,
            linux_lun,
            lun_field: [1, target as u8, 0, 0, 0, 0, 0, 0],
            inquiry,
            disk,
        };
        ScanReport {
            luns: vec![
                lun(3, 0, 0, inquiry(5, "QEMU CD-ROM"), None),
                lun(7, 300, 16684, inquiry(0, "QEMU HARDDISK"), Some(disk)),
            ],
            warnings: vec!["target 9: BUSY".into()],
        }
    }

    #[test]
    fn prints_each_lun_with_its_disk_fields_in_order() {
        let report = report();
        let filter = Filter::parse(&[]).unwrap();
        let bdf: PciAddress = "0000:00:04.0".parse().unwrap();
        let host = HostJson {
            bdf,
            index: 0,
            report: &report,
            filter: &filter,
        };
        let text = String::from_utf8(document(&[host]).unwrap()).unwrap();
        let expected = r#"{
  "hosts": [
    {
      "pci": "0000:00:04.0",
      "host": 0,
      "luns": [
        {
          "channel": 0,
          "target": 3,
          "lun": 0,
          "linux_lun": 0,
          "type": "cd/dvd",
          "pdt": 5,
          "pq": 0,
          "vendor": "QEMU",
          "model": "QEMU CD-ROM",
          "revision": "2.5+",
          "scsi_level": 6,
          "removable": true
        },
        {
          "channel": 0,
          "target": 7,
          "lun": 300,
          "linux_lun": 16684,
          "type": "disk",
          "pdt": 0,
          "pq": 0,
          "vendor": "QEMU",
          "model": "QEMU HARDDISK",
          "revision": "2.5+",
          "scsi_level": 6,
          "removable": false,
          "device": "0000:00:04.0/0:7:300",
          "blocks": 2048,
          "block_size": 4096,
          "physical_block_size": 4096,
          "size_bytes": 8388608,
          "write_protect": true,
          "write_cache": true,
          "fua": false,
          "serial": "s-7",
          "identifiers": [
            "naa.6001405abcdef012",
            "t10.QEMU"
          ],
          "rotation_rate": 1,
          "max_transfer_blocks": 256,
          "optimal_transfer_blocks": null,
          "unmap": {
            "lbpme": true,
            "lbpu": true,
            "lbpws": false,
            "max_unmap_blocks": 4096,
            "max_unmap_descriptors": null,
            "granularity_blocks": 1
          },
          "vpd_pages": [
            "0x00",
            "0x80",
            "0x83",
            "0xb0"
          ],
          "not_ready": null
        }
      ],
      "warnings": [
        "target 9: BUSY"
      ]
    }
  ]
}
"#;
        assert_eq!(text, expected);
    }

    #[test]
    fn the_filter_picks_luns_and_no_host_is_an_empty_list() {
        let report = report();
        let filter = Filter::parse(&["0:0:7:-"]).unwrap();
        let bdf: PciAddress = "0000:00:04.0".parse().unwrap();
        let host = HostJson {
            bdf,
            index: 0,
            report: &report,
            filter: &filter,
        };
        let doc: serde_json::Value = serde_json::from_slice(&document(&[host]).unwrap()).unwrap();
        let luns = doc["hosts"][0]["luns"].as_array().unwrap();
        assert_eq!(luns.len(), 1);
        assert_eq!(luns[0]["target"], 7);
        assert_eq!(document(&[]).unwrap(), b"{\n  \"hosts\": []\n}\n");
    }
}
