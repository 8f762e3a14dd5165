//! The VPD pages Linux caches: 0x00 (supported pages), 0x80 (unit serial number), 0x83
//! (device identification), 0xB0 (block limits), 0xB1 (block device characteristics)
//! and 0xB2 (logical block provisioning).

use serde::Serialize;

use super::inquiry::PeripheralType;
use super::{too_short, ReplyError};
use crate::scsi_proto::bytes::{array, be16, be32, be64};

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
/// The 4-byte header of a VPD page and its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VpdPage<'a> {
    /// PERIPHERAL QUALIFIER.
    pub peripheral_qualifier: u8,
    /// PERIPHERAL DEVICE TYPE.
    pub device_type: PeripheralType,
    /// PAGE CODE (byte 1).
    pub page_code: u8,
    /// PAGE LENGTH (bytes 2..4): payload bytes the device has.
    pub page_length: u16,
    /// The payload: bytes from 4, cut to PAGE LENGTH and to what was transferred.
    pub payload: &'a [u8],
    /// Whether fewer payload bytes arrived than PAGE LENGTH announced (re-issue the
    /// INQUIRY with `page_length + 4` bytes).
    pub truncated: bool,
}

impl<'a> VpdPage<'a> {
    /// Splits a VPD reply; an error if shorter than the 4-byte header or if byte 1 is not
    /// `expected_page`.
    ///
    /// Note QEMU's target-level emulation (a LUN with no device behind it) answers page
    /// 0x00 with `00 00 01 00`: the page count in byte 2 instead of a big-endian length.
    /// That reads as PAGE LENGTH 256 with no payload, i.e. `truncated`.
    pub fn parse(buf: &'a [u8], expected_page: u8) -> Result<Self, ReplyError> {
        let (Some(&b0), Some(&page_code), Some(page_length)) =
            (buf.first(), buf.get(1), be16(buf, 2))
        else {
            return Err(too_short(buf, 4, "VPD", "the page header"));
        };
        if page_code != expected_page {
            return Err(ReplyError::WrongVpdPage {
                expected: expected_page,
                got: page_code,
            });
        }
        let end = buf.len().min(4 + page_length as usize);
        Ok(VpdPage {
            peripheral_qualifier: b0 >> 5,
            device_type: PeripheralType(b0 & 0x1f),
            page_code,
            page_length,
            payload: buf.get(4..end).unwrap_or(&[]),
            truncated: end < 4 + page_length as usize,
        })
    }

    /// Bytes the whole page takes: PAGE LENGTH + 4 (the allocation length for a re-read).
    pub const fn full_len(&self) -> usize {
        self.page_length as usize + 4
    }

    /// The page bytes including the header, cut like `payload`; page offsets as SPC/SBC
    /// number them index this directly.
    fn page(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(..4 + self.payload.len()).unwrap_or(&[])
    }
}

/// VPD page 0x00: the pages the device supports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SupportedVpdPages {
    /// Page codes, in the device's order.
    pub pages: Vec<u8>,
    /// The list was cut short.
    pub truncated: bool,
}

impl SupportedVpdPages {
    /// Parses page 0x00.
    pub fn parse(buf: &[u8]) -> Result<Self, ReplyError> {
        let p = VpdPage::parse(buf, 0x00)?;
        Ok(SupportedVpdPages {
            pages: p.payload.to_vec(),
            truncated: p.truncated,
        })
    }

    /// Whether `page` is listed.
    pub fn supports(&self, page: u8) -> bool {
        self.pages.contains(&page)
    }
}

/// VPD page 0x80: unit serial number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitSerialNumber {
    /// The serial with leading and trailing whitespace (and trailing NULs) removed, as
    /// the kernel's `scsi_vpd_lun_serial` and udev do; non-ASCII bytes become U+FFFD.
    pub serial: String,
    /// The page was cut short.
    pub truncated: bool,
}

impl UnitSerialNumber {
    /// Parses page 0x80.
    pub fn parse(buf: &[u8]) -> Result<Self, ReplyError> {
        let p = VpdPage::parse(buf, 0x80)?;
        let text = String::from_utf8_lossy(p.payload);
        Ok(UnitSerialNumber {
            serial: text
                .trim_end_matches('\0')
                .trim_matches(|c: char| c.is_ascii_whitespace())
                .to_owned(),
            truncated: p.truncated,
        })
    }
}

/// One designation descriptor of VPD page 0x83.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Designator {
    /// PROTOCOL IDENTIFIER (byte 0 bits 7..4), meaningful only with `piv`.
    pub protocol_identifier: u8,
    /// CODE SET (byte 0 bits 3..0): 1 binary, 2 ASCII, 3 UTF-8.
    pub code_set: u8,
    /// PIV (byte 1 bit 7).
    pub piv: bool,
    /// ASSOCIATION (byte 1 bits 5..4): 0 the addressed LU, 1 the target port, 2 the
    /// target device.
    pub association: u8,
    /// DESIGNATOR TYPE (byte 1 bits 3..0): 0 vendor specific, 1 T10 vendor ID, 2 EUI-64,
    /// 3 NAA, 4 relative target port, 5 target port group, 6 LU group, 7 MD5, 8 SCSI name
    /// string, 9 protocol specific port, 0xa UUID.
    pub designator_type: u8,
    /// The DESIGNATOR bytes.
    pub identifier: Vec<u8>,
}

/// Escapes like the kernel's `%pE` (ESCAPE_ANY_NP): printable ASCII as is, `\n \r \t
/// \v \f \a \e \0` short forms, other bytes as `\ooo` octal.
fn kernel_escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &c in bytes {
        match c {
            0x20..=0x7e => s.push(c as char),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x0b => s.push_str("\\v"),
            0x0c => s.push_str("\\f"),
            0x07 => s.push_str("\\a"),
            0x1b => s.push_str("\\e"),
            0 => s.push_str("\\0"),
            _ => s.push_str(&format!("\\{c:03o}")),
        }
    }
    s
}

impl Designator {
    /// Name of the designator type.
    pub const fn type_name(&self) -> &'static str {
        match self.designator_type {
            0x0 => "vendor specific",
            0x1 => "T10 vendor identification",
            0x2 => "EUI-64 based",
            0x3 => "NAA",
            0x4 => "Relative target port",
            0x5 => "Target port group",
            0x6 => "Logical unit group",
            0x7 => "MD5 logical unit identifier",
            0x8 => "SCSI name string",
            0x9 => "Protocol specific port identifier",
            0xa => "UUID identifier",
            _ => "reserved",
        }
    }

    /// Name of the code set.
    pub const fn code_set_name(&self) -> &'static str {
        match self.code_set {
            0x1 => "Binary",
            0x2 => "ASCII",
            0x3 => "UTF-8",
            _ => "reserved",
        }
    }

    /// Name of the association.
    pub const fn association_name(&self) -> &'static str {
        match self.association {
            0 => "Addressed logical unit",
            1 => "Target port",
            2 => "Target device that contains addressed lu",
            _ => "reserved",
        }
    }

    /// The identifier as text: the bytes themselves for ASCII/UTF-8 code sets (trailing
    /// NULs dropped), lowercase hex otherwise.
    pub fn text(&self) -> String {
        match self.code_set {
            2 | 3 => String::from_utf8_lossy(&self.identifier)
                .trim_end_matches('\0')
                .to_owned(),
            _ => hex(&self.identifier),
        }
    }

    /// The kernel's name for this designator as `scsi_vpd_lun_id` formats it (the
    /// `wwid` sysfs attribute): `naa.` + 16 or 32 hex digits for 8- or 16-byte NAA,
    /// `eui.` + hex for 8/12/16-byte EUI-64, `t10.` + the escaped T10 vendor ID, or the
    /// SCSI name string as is (it carries its own `iqn.`/`naa.`/`eui.` prefix). `None`
    /// for other types and lengths.
    pub fn name(&self) -> Option<String> {
        let id = &self.identifier;
        match self.designator_type {
            0x1 => Some(format!("t10.{}", kernel_escape(id))),
            0x2 if matches!(id.len(), 8 | 12 | 16) => Some(format!("eui.{}", hex(id))),
            0x3 if matches!(id.len(), 8 | 16) => Some(format!("naa.{}", hex(id))),
            // A C string: it ends at the first NUL.
            0x8 => Some(
                String::from_utf8_lossy(id.split(|&b| b == 0).next().unwrap_or(&[])).into_owned(),
            ),
            _ => None,
        }
    }
}

/// VPD page 0x83: device identification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceIdentification {
    /// Designators in page order; a descriptor cut off by the end of the data is left
    /// out.
    pub designators: Vec<Designator>,
    /// The page or its last descriptor was cut short.
    pub truncated: bool,
}

impl DeviceIdentification {
    /// Parses page 0x83.
    pub fn parse(buf: &[u8]) -> Result<Self, ReplyError> {
        let p = VpdPage::parse(buf, 0x83)?;
        let mut truncated = p.truncated;
        let mut designators = Vec::new();
        let mut d = p.payload;
        while !d.is_empty() {
            // Header: PROTOCOL ID/CODE SET, PIV/ASSOCIATION/TYPE, reserved, LENGTH.
            let Some([b0, b1, _, len]) = array(d, 0) else {
                truncated = true;
                break;
            };
            let end = 4 + len as usize;
            let Some(identifier) = d.get(4..end) else {
                truncated = true;
                break;
            };
            designators.push(Designator {
                protocol_identifier: b0 >> 4,
                code_set: b0 & 0x0f,
                piv: b1 & 0x80 != 0,
                association: (b1 >> 4) & 0x03,
                designator_type: b1 & 0x0f,
                identifier: identifier.to_vec(),
            });
            d = d.get(end..).unwrap_or(&[]);
        }
        Ok(DeviceIdentification {
            designators,
            truncated,
        })
    }

    /// The LU name Linux derives from this page (`scsi_vpd_lun_id`, shown as the `wwid`
    /// sysfs attribute and by `lsscsi -U`), replaying the kernel's selection loop over
    /// the designators associated with the LU: a later designator replaces the current
    /// one unless it is shorter; an EUI-64 does not replace an NAA of equal length; a T10
    /// vendor ID replaces nothing but another T10 ID; a SCSI name string needs to be 4
    /// bytes longer. QEMU's default designator is vendor specific (type 0), so a QEMU
    /// disk has a name only with `wwn=` (NAA) set.
    pub fn lun_name(&self) -> Option<String> {
        let mut cur_type = 0xffu8;
        let mut cur_size = 0usize;
        let mut name = None;
        for d in self.designators.iter().filter(|d| d.association == 0) {
            let len = d.identifier.len();
            match d.designator_type {
                0x1 => {
                    if cur_size > len || (cur_type > 0x01 && cur_type != 0xff) {
                        continue;
                    }
                }
                0x2 => {
                    if cur_size > len || (cur_type == 0x3 && cur_size == len) {
                        continue;
                    }
                    if !matches!(len, 8 | 12 | 16) {
                        // The kernel records the type, then zeroes the size and keeps
                        // the previous string.
                        cur_type = 0x2;
                        cur_size = 0;
                        continue;
                    }
                }
                0x3 => {
                    if cur_size > len {
                        continue;
                    }
                    if !matches!(len, 8 | 16) {
                        cur_type = 0x3;
                        cur_size = 0;
                        continue;
                    }
                }
                0x8 => {
                    if cur_size + 4 > len {
                        continue;
                    }
                }
                _ => continue,
            }
            cur_size = len;
            cur_type = d.designator_type;
            name = d.name();
        }
        name
    }
}

/// VPD page 0xB0: block limits (SBC-3 6.5.3). A field is `None` when the page the
/// device returned does not reach it (SBC-2 devices return 16 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct BlockLimits {
    /// WSNZ (byte 4 bit 0): WRITE SAME with 0 blocks is not allowed.
    pub wsnz: Option<bool>,
    /// MAXIMUM COMPARE AND WRITE LENGTH (byte 5), blocks.
    pub max_compare_and_write_length: Option<u8>,
    /// OPTIMAL TRANSFER LENGTH GRANULARITY (bytes 6..8), blocks.
    pub optimal_transfer_length_granularity: Option<u16>,
    /// MAXIMUM TRANSFER LENGTH (bytes 8..12), blocks; 0 = no limit reported.
    pub max_transfer_length: Option<u32>,
    /// OPTIMAL TRANSFER LENGTH (bytes 12..16), blocks.
    pub optimal_transfer_length: Option<u32>,
    /// MAXIMUM PREFETCH LENGTH (bytes 16..20), blocks.
    pub max_prefetch_length: Option<u32>,
    /// MAXIMUM UNMAP LBA COUNT (bytes 20..24).
    pub max_unmap_lba_count: Option<u32>,
    /// MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT (bytes 24..28); QEMU says 255.
    pub max_unmap_block_descriptor_count: Option<u32>,
    /// OPTIMAL UNMAP GRANULARITY (bytes 28..32), blocks.
    pub optimal_unmap_granularity: Option<u32>,
    /// UNMAP GRANULARITY ALIGNMENT (bytes 32..36 without bit 31), only when UGAVALID
    /// (byte 32 bit 7) is set.
    pub unmap_granularity_alignment: Option<u32>,
    /// MAXIMUM WRITE SAME LENGTH (bytes 36..44), blocks.
    pub max_write_same_length: Option<u64>,
}

impl BlockLimits {
    /// Parses page 0xB0 (a header-only page gives all `None`).
    pub fn parse(buf: &[u8]) -> Result<Self, ReplyError> {
        let p = VpdPage::parse(buf, 0xb0)?;
        let page = p.page(buf);
        Ok(BlockLimits {
            wsnz: page.get(4).map(|b| b & 1 != 0),
            max_compare_and_write_length: page.get(5).copied(),
            optimal_transfer_length_granularity: be16(page, 6),
            max_transfer_length: be32(page, 8),
            optimal_transfer_length: be32(page, 12),
            max_prefetch_length: be32(page, 16),
            max_unmap_lba_count: be32(page, 20),
            max_unmap_block_descriptor_count: be32(page, 24),
            optimal_unmap_granularity: be32(page, 28),
            unmap_granularity_alignment: be32(page, 32)
                .filter(|v| v & 0x8000_0000 != 0)
                .map(|v| v & 0x7fff_ffff),
            max_write_same_length: be64(page, 36),
        })
    }
}

/// VPD page 0xB1: block device characteristics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct BlockDeviceCharacteristics {
    /// MEDIUM ROTATION RATE (bytes 4..6): 0 not reported, 1 non-rotating (SSD),
    /// 0x0401..=0xfffe revolutions per minute. QEMU reports its `rotation_rate` property.
    pub medium_rotation_rate: Option<u16>,
    /// PRODUCT TYPE (byte 6).
    pub product_type: Option<u8>,
    /// NOMINAL FORM FACTOR (byte 7 bits 3..0).
    pub nominal_form_factor: Option<u8>,
    /// ZONED (byte 8 bits 5..4), as Linux reads it for host-aware zoning.
    pub zoned: Option<u8>,
}

impl BlockDeviceCharacteristics {
    /// Parses page 0xB1.
    pub fn parse(buf: &[u8]) -> Result<Self, ReplyError> {
        let p = VpdPage::parse(buf, 0xb1)?;
        let page = p.page(buf);
        Ok(BlockDeviceCharacteristics {
            medium_rotation_rate: be16(page, 4),
            product_type: page.get(6).copied(),
            nominal_form_factor: page.get(7).map(|b| b & 0x0f),
            zoned: page.get(8).map(|b| (b >> 4) & 0x03),
        })
    }

    /// Rotation rate 1: Linux clears the queue's rotational flag.
    pub fn is_non_rotational(&self) -> bool {
        self.medium_rotation_rate == Some(1)
    }
}

/// VPD page 0xB2: logical block provisioning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogicalBlockProvisioning {
    /// THRESHOLD EXPONENT (byte 4).
    pub threshold_exponent: u8,
    /// LBPU (byte 5 bit 7): UNMAP supported.
    pub lbpu: bool,
    /// LBPWS (byte 5 bit 6): WRITE SAME(16) with UNMAP supported.
    pub lbpws: bool,
    /// LBPWS10 (byte 5 bit 5): WRITE SAME(10) with UNMAP supported.
    pub lbpws10: bool,
    /// LBPRZ (byte 5 bits 4..2; SBC-3 had only bit 2): what unmapped blocks read as.
    pub lbprz: u8,
    /// ANC_SUP (byte 5 bit 1): anchored LBAs supported.
    pub anc_sup: bool,
    /// DP (byte 5 bit 0): a provisioning group descriptor follows.
    pub dp: bool,
    /// PROVISIONING TYPE (byte 6 bits 2..0): 0 fully provisioned (or not reported),
    /// 1 resource provisioned, 2 thin provisioned. QEMU reports 2 when discard is on.
    pub provisioning_type: Option<u8>,
}

impl LogicalBlockProvisioning {
    /// Parses page 0xB2; needs the page to reach byte 5 (the LBP flags).
    pub fn parse(buf: &[u8]) -> Result<Self, ReplyError> {
        let p = VpdPage::parse(buf, 0xb2)?;
        let page = p.page(buf);
        let Some([threshold_exponent, flags]) = array(page, 4) else {
            return Err(too_short(
                page,
                6,
                "VPD page 0xB2",
                "the LBPU/LBPWS flags (byte 5)",
            ));
        };
        Ok(LogicalBlockProvisioning {
            threshold_exponent,
            lbpu: flags & 0x80 != 0,
            lbpws: flags & 0x40 != 0,
            lbpws10: flags & 0x20 != 0,
            lbprz: (flags >> 2) & 0x07,
            anc_sup: flags & 0x02 != 0,
            dp: flags & 0x01 != 0,
            provisioning_type: page.get(6).map(|b| b & 0x07),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi_proto::reply::every_prefix;

    /// QEMU scsi-hd VPD page 0x00 (serial set): 00 80 83 b0 b1 b2.
    const QEMU_VPD_00: [u8; 10] = [0x00, 0x00, 0x00, 0x06, 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2];

    #[test]
    fn vpd_supported_pages() {
        let p = SupportedVpdPages::parse(&QEMU_VPD_00).unwrap();
        assert_eq!(p.pages, [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2]);
        assert!(p.supports(0xb2));
        assert!(!p.supports(0xb7));
        assert!(!p.truncated);
        let cut = SupportedVpdPages::parse(&QEMU_VPD_00[..7]).unwrap();
        assert_eq!(cut.pages, [0x00, 0x80, 0x83]);
        assert!(cut.truncated);
        // QEMU's target emulation quirk: count in byte 2.
        let q = SupportedVpdPages::parse(&[0x00, 0x00, 0x01, 0x00]).unwrap();
        assert!(q.pages.is_empty() && q.truncated);
        assert_eq!(
            SupportedVpdPages::parse(&[0, 0x80, 0, 0]),
            Err(ReplyError::WrongVpdPage {
                expected: 0,
                got: 0x80
            })
        );
        let v = VpdPage::parse(&QEMU_VPD_00[..6], 0).unwrap();
        assert_eq!(v.full_len(), 10);
        every_prefix(&QEMU_VPD_00, SupportedVpdPages::parse);
    }

    #[test]
    fn vpd_serial() {
        let mut raw = vec![0x00, 0x80, 0x00, 0x0c];
        raw.extend_from_slice(b"  SN-1234   \0");
        raw[3] = 13;
        let s = UnitSerialNumber::parse(&raw).unwrap();
        assert_eq!(s.serial, "SN-1234");
        every_prefix(&raw, UnitSerialNumber::parse);
    }

    /// QEMU scsi-hd VPD page 0x83 with `-drive id=drive0` (vendor-specific ASCII
    /// designator = the drive name) and `wwn=0x5000c50015ea71ac` (NAA binary).
    fn qemu_vpd_83() -> Vec<u8> {
        let mut b = vec![0x00, 0x83, 0x00, 0x00];
        b.extend_from_slice(&[0x02, 0x00, 0x00, 6]);
        b.extend_from_slice(b"drive0");
        b.extend_from_slice(&[0x01, 0x03, 0x00, 8]);
        b.extend_from_slice(&0x5000_c500_15ea_71acu64.to_be_bytes());
        b[3] = (b.len() - 4) as u8;
        b
    }

    #[test]
    fn vpd_device_identification_qemu() {
        let raw = qemu_vpd_83();
        let id = DeviceIdentification::parse(&raw).unwrap();
        assert_eq!(id.designators.len(), 2);
        let vs = &id.designators[0];
        assert_eq!((vs.code_set, vs.designator_type, vs.association), (2, 0, 0));
        assert_eq!(vs.type_name(), "vendor specific");
        assert_eq!(vs.code_set_name(), "ASCII");
        assert_eq!(vs.text(), "drive0");
        assert_eq!(vs.name(), None);
        let naa = &id.designators[1];
        assert_eq!(naa.type_name(), "NAA");
        assert_eq!(naa.association_name(), "Addressed logical unit");
        assert_eq!(naa.text(), "5000c50015ea71ac");
        assert_eq!(naa.name().as_deref(), Some("naa.5000c50015ea71ac"));
        assert_eq!(id.lun_name().as_deref(), Some("naa.5000c50015ea71ac"));
        // Without wwn= only the vendor-specific designator: no LU name.
        let no_wwn = DeviceIdentification::parse(&raw[..14]).unwrap();
        assert_eq!(no_wwn.designators.len(), 1);
        assert!(no_wwn.truncated);
        assert_eq!(no_wwn.lun_name(), None);
        for n in 0..=raw.len() {
            if let Ok(d) = DeviceIdentification::parse(&raw[..n]) {
                let _ = d.lun_name();
            }
        }
    }

    #[test]
    fn lun_name_preference_follows_the_kernel() {
        fn desig(code_set: u8, b1: u8, id: &[u8]) -> Vec<u8> {
            let mut v = vec![code_set, b1, 0, id.len() as u8];
            v.extend_from_slice(id);
            v
        }
        fn page(ds: &[Vec<u8>]) -> Vec<u8> {
            let body: Vec<u8> = ds.concat();
            let mut v = vec![0, 0x83, 0, body.len() as u8];
            v.extend(body);
            v
        }
        let t10 = desig(2, 0x01, b"ATA     VBOX 123");
        let eui8 = desig(1, 0x02, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let naa8 = desig(1, 0x03, &[0x60, 2, 3, 4, 5, 6, 7, 8]);
        let naa16 = desig(1, 0x03, &[0x6a; 16]);
        let port_naa = desig(0x61, 0x93, &[0x50; 8]); // target port association: skipped
        let name = desig(3, 0x08, b"iqn.2001-04.com.example:disk1\0\0\0");
        let lun = |ds: &[Vec<u8>]| DeviceIdentification::parse(&page(ds)).unwrap().lun_name();
        assert_eq!(
            lun(std::slice::from_ref(&t10)).as_deref(),
            Some("t10.ATA     VBOX 123")
        );
        // A 16-byte T10 ID is not replaced by a shorter EUI-64 ...
        assert_eq!(
            lun(&[t10.clone(), eui8.clone()]).as_deref(),
            Some("t10.ATA     VBOX 123")
        );
        // ... and never replaces another type.
        assert_eq!(
            lun(&[eui8.clone(), t10.clone()]).as_deref(),
            Some("eui.0102030405060708")
        );
        assert_eq!(
            lun(&[naa8.clone(), eui8.clone()]).as_deref(),
            Some("naa.6002030405060708")
        );
        assert_eq!(
            lun(&[eui8.clone(), naa8.clone()]).as_deref(),
            Some("naa.6002030405060708")
        );
        assert_eq!(
            lun(&[naa16.clone(), naa8.clone()]).as_deref(),
            Some("naa.6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a")
        );
        assert_eq!(lun(&[port_naa]), None);
        assert_eq!(
            lun(&[naa16, name]).as_deref(),
            Some("iqn.2001-04.com.example:disk1")
        );
        let escaped = desig(2, 0x01, b"AB\x01\n");
        assert_eq!(lun(&[escaped]).as_deref(), Some("t10.AB\\001\\n"));
        // An odd-length EUI after an NAA: the kernel keeps the NAA string but lets any
        // later designator replace it.
        let eui10 = desig(1, 0x02, &[9; 10]);
        assert_eq!(
            lun(&[naa8.clone(), eui10.clone()]).as_deref(),
            Some("naa.6002030405060708")
        );
        assert_eq!(
            lun(&[naa8.clone(), eui10.clone(), t10]).as_deref(),
            Some("naa.6002030405060708")
        );
        assert_eq!(
            lun(&[naa8, eui10, eui8]).as_deref(),
            Some("eui.0102030405060708")
        );
    }

    /// QEMU scsi-hd block limits for a 512-byte-block disk with defaults: WSNZ, max
    /// transfer INT_MAX/512, max unmap 1 GiB, 255 descriptors, unmap granularity
    /// 4 KiB/512 = 8, max write same = max transfer (low half of bytes 36..44).
    fn qemu_vpd_b0() -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[1] = 0xb0;
        b[3] = 0x3c;
        b[4] = 1;
        b[8..12].copy_from_slice(&0x003f_ffffu32.to_be_bytes());
        b[20..24].copy_from_slice(&0x0020_0000u32.to_be_bytes());
        b[24..28].copy_from_slice(&255u32.to_be_bytes());
        b[28..32].copy_from_slice(&8u32.to_be_bytes());
        b[40..44].copy_from_slice(&0x003f_ffffu32.to_be_bytes());
        b
    }

    #[test]
    fn vpd_block_limits() {
        let raw = qemu_vpd_b0();
        let bl = BlockLimits::parse(&raw).unwrap();
        assert_eq!(bl.wsnz, Some(true));
        assert_eq!(bl.optimal_transfer_length_granularity, Some(0));
        assert_eq!(bl.max_transfer_length, Some(0x3f_ffff));
        assert_eq!(bl.optimal_transfer_length, Some(0));
        assert_eq!(bl.max_unmap_lba_count, Some(2 * 1024 * 1024));
        assert_eq!(bl.max_unmap_block_descriptor_count, Some(255));
        assert_eq!(bl.optimal_unmap_granularity, Some(8));
        assert_eq!(bl.unmap_granularity_alignment, None); // UGAVALID clear
        assert_eq!(bl.max_write_same_length, Some(0x3f_ffff));
        let mut aligned = raw.clone();
        aligned[32..36].copy_from_slice(&0x8000_0004u32.to_be_bytes());
        assert_eq!(
            BlockLimits::parse(&aligned)
                .unwrap()
                .unmap_granularity_alignment,
            Some(4)
        );
        // An SBC-2 device's 16-byte page: transfer limits only.
        let mut sbc2 = raw[..16].to_vec();
        sbc2[3] = 0x0c;
        let bl = BlockLimits::parse(&sbc2).unwrap();
        assert_eq!(bl.max_transfer_length, Some(0x3f_ffff));
        assert_eq!(bl.max_unmap_lba_count, None);
        assert_eq!(bl.max_write_same_length, None);
        // PAGE LENGTH bounds the fields even if more bytes arrived.
        let mut short_len = raw.clone();
        short_len[3] = 8;
        assert_eq!(
            BlockLimits::parse(&short_len)
                .unwrap()
                .optimal_transfer_length,
            None
        );
        every_prefix(&raw, BlockLimits::parse);
    }

    #[test]
    fn vpd_b1_and_b2() {
        let mut b1 = vec![0u8; 64];
        b1[1] = 0xb1;
        b1[3] = 0x3c;
        b1[5] = 1; // rotation_rate=1 (SSD)
        let c = BlockDeviceCharacteristics::parse(&b1).unwrap();
        assert_eq!(c.medium_rotation_rate, Some(1));
        assert!(c.is_non_rotational());
        b1[4..6].copy_from_slice(&7200u16.to_be_bytes());
        assert!(!BlockDeviceCharacteristics::parse(&b1)
            .unwrap()
            .is_non_rotational());
        assert_eq!(
            BlockDeviceCharacteristics::parse(&b1[..5]).unwrap(),
            BlockDeviceCharacteristics::default()
        );
        every_prefix(&b1, BlockDeviceCharacteristics::parse);

        // QEMU: length 4, byte 5 = 0xe0 (LBPU|LBPWS|LBPWS10), byte 6 = 2 (thin).
        let b2 = [0x00, 0xb2, 0x00, 0x04, 0x00, 0xe0, 0x02, 0x00];
        let p = LogicalBlockProvisioning::parse(&b2).unwrap();
        assert!(p.lbpu && p.lbpws && p.lbpws10);
        assert_eq!((p.lbprz, p.anc_sup, p.dp), (0, false, false));
        assert_eq!(p.provisioning_type, Some(2));
        assert_eq!(
            LogicalBlockProvisioning::parse(&b2[..6])
                .unwrap()
                .provisioning_type,
            None
        );
        assert!(matches!(
            LogicalBlockProvisioning::parse(&b2[..5]),
            Err(ReplyError::TooShort {
                needed: 6,
                got: 5,
                ..
            })
        ));
        every_prefix(&b2, LogicalBlockProvisioning::parse);
    }
}
