//! Parsers for the data-in replies of the scan and revalidation commands: standard
//! INQUIRY, the VPD pages Linux caches (0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2), READ
//! CAPACITY(10)/(16), MODE SENSE(6)/(10) with the caching page, and REPORT LUNS.
//!
//! Every parser takes the bytes the device actually transferred (the buffer cut to
//! `allocation length - residual`) and never indexes past them. A reply too short for
//! the fields that make it useful is a [`ReplyError`]; anything else that is missing
//! reads as absent (`None`, an empty list, a `truncated` flag), so a short or
//! over-long reply degrades instead of failing the scan. Offsets and rules follow
//! SPC-4/SBC-3 and, where Linux interprets a field, `drivers/scsi/scsi_scan.c`,
//! `scsi_lib.c` and `sd.c`.

use std::fmt;

use serde::Serialize;

use super::lun::ScsiLun;

/// A reply that does not carry what its parser needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// Fewer bytes than the fixed part of the reply.
    #[error("{what} reply is {got} bytes, shorter than the {needed} bytes that hold {fields}")]
    TooShort {
        /// Which reply.
        what: &'static str,
        /// The fields that did not fit.
        fields: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes received.
        got: usize,
    },
    /// A VPD reply for another page than the one asked for (Linux's `scsi_vpd_inquiry`
    /// rejects these too).
    #[error("asked for VPD page 0x{expected:02x} but byte 1 of the reply says page 0x{got:02x}")]
    WrongVpdPage {
        /// Page asked for.
        expected: u8,
        /// Page code in byte 1 of the reply.
        got: u8,
    },
}

fn need(
    buf: &[u8],
    needed: usize,
    what: &'static str,
    fields: &'static str,
) -> Result<(), ReplyError> {
    if buf.len() < needed {
        Err(ReplyError::TooShort {
            what,
            fields,
            needed,
            got: buf.len(),
        })
    } else {
        Ok(())
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn byte(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

// ------------------------------------------------------------------------------------
// Peripheral device type
// ------------------------------------------------------------------------------------

/// A peripheral device type (INQUIRY byte 0 bits 4..0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct PeripheralType(pub u8);

/// lsscsi's 7-character type column (`scsi_short_device_types`, trailing padding
/// removed).
const SHORT_TYPE_NAMES: [&str; 32] = [
    "disk", "tape", "printer", "process", "worm", "cd/dvd", "scanner", "optical", "mediumx",
    "comms", "(0xa)", "(0xb)", "storage", "enclosu", "sim dsk", "opti rd", "bridge", "osd", "adi",
    "sec man", "zbc", "(0x15)", "(0x16)", "(0x17)", "(0x18)", "(0x19)", "(0x1a)", "(0x1b)",
    "(0x1c)", "(0x1d)", "wlun", "no dev",
];

/// lsscsi's `--classic` type names (`scsi_device_types`).
const CLASSIC_TYPE_NAMES: [&str; 32] = [
    "Direct-Access",
    "Sequential-Access",
    "Printer",
    "Processor",
    "Write-once",
    "CD-ROM",
    "Scanner",
    "Optical memory",
    "Medium Changer",
    "Communications",
    "Unknown (0xa)",
    "Unknown (0xb)",
    "Storage array",
    "Enclosure",
    "Simplified direct-access",
    "Optical card read/writer",
    "Bridge controller",
    "Object based storage",
    "Automation Drive interface",
    "Security manager",
    "Zoned Block",
    "Reserved (0x15)",
    "Reserved (0x16)",
    "Reserved (0x17)",
    "Reserved (0x18)",
    "Reserved (0x19)",
    "Reserved (0x1a)",
    "Reserved (0x1b)",
    "Reserved (0x1c)",
    "Reserved (0x1d)",
    "Well known LU",
    "No device",
];

impl PeripheralType {
    /// Direct access block device (SBC).
    pub const DISK: PeripheralType = PeripheralType(0x00);
    /// Sequential access (tape).
    pub const TAPE: PeripheralType = PeripheralType(0x01);
    /// CD/DVD (MMC); QEMU's scsi-cd.
    pub const CD_DVD: PeripheralType = PeripheralType(0x05);
    /// Optical memory device.
    pub const OPTICAL: PeripheralType = PeripheralType(0x07);
    /// Medium changer.
    pub const MEDIUM_CHANGER: PeripheralType = PeripheralType(0x08);
    /// Storage array controller.
    pub const STORAGE_ARRAY: PeripheralType = PeripheralType(0x0c);
    /// Enclosure services.
    pub const ENCLOSURE: PeripheralType = PeripheralType(0x0d);
    /// Simplified direct access (RBC).
    pub const RBC: PeripheralType = PeripheralType(0x0e);
    /// Host managed zoned block device (ZBC).
    pub const ZBC: PeripheralType = PeripheralType(0x14);
    /// Well known logical unit.
    pub const WELL_KNOWN_LU: PeripheralType = PeripheralType(0x1e);
    /// Unknown or no device type.
    pub const NO_DEVICE: PeripheralType = PeripheralType(0x1f);

    /// The name in lsscsi's type column: `disk`, `tape`, `cd/dvd`, `enclosu`, `zbc`,
    /// `wlun`, `no dev`, `(0xa)`, ... (lsscsi pads it to 7 characters plus a space; this
    /// is the unpadded text). Values above 0x1f read `type???`, as lsscsi prints for an
    /// out-of-range sysfs type.
    pub fn short_name(self) -> &'static str {
        SHORT_TYPE_NAMES
            .get(self.0 as usize)
            .copied()
            .unwrap_or("type???")
    }

    /// The name `lsscsi --classic` prints after `Type:`: `Direct-Access`, `CD-ROM`, ...
    pub fn classic_name(self) -> &'static str {
        CLASSIC_TYPE_NAMES
            .get(self.0 as usize)
            .copied()
            .unwrap_or("???")
    }

    /// Whether Linux's sd would drive it (`sd_probe` accepts TYPE_DISK, TYPE_MOD,
    /// TYPE_RBC and TYPE_ZBC).
    pub const fn is_sd_type(self) -> bool {
        matches!(self.0, 0x00 | 0x07 | 0x0e | 0x14)
    }
}

impl fmt::Display for PeripheralType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

// ------------------------------------------------------------------------------------
// Standard INQUIRY
// ------------------------------------------------------------------------------------

/// What Linux's scanner makes of a LUN's INQUIRY answer (`scsi_probe_and_add_lun`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LunPresence {
    /// A logical unit is there: Linux creates a `scsi_device` (and binds a driver only
    /// if the peripheral qualifier is 0).
    Present,
    /// The target answered but no LU is at this LUN (PQ 3, or PQ 1 with type 0x1f on a
    /// LUN that is not well-known): `SCSI_SCAN_TARGET_PRESENT`, REPORT LUNS still goes
    /// to it.
    TargetOnly,
}

/// A standard INQUIRY reply.
///
/// `vendor`, `product` and `revision` are kept at their full 8/16/4 characters, padded
/// with spaces: that is what the kernel exposes in sysfs (`%.8s` of the INQUIRY bytes
/// after `scsi_sanitize_inquiry_string`) and what lsscsi prints (it does not trim, it
/// pads with `%-8s`/`%-16s`/`%-4s`), also in its JSON. Use the `*_trimmed` methods for
/// messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inquiry {
    /// Bytes the reply had.
    pub len: usize,
    /// PERIPHERAL QUALIFIER (byte 0 bits 7..5): 0 connected, 1 not connected now, 3 no LU
    /// possible at this LUN.
    pub peripheral_qualifier: u8,
    /// PERIPHERAL DEVICE TYPE (byte 0 bits 4..0).
    pub device_type: PeripheralType,
    /// RMB (byte 1 bit 7): removable medium.
    pub removable: bool,
    /// LU_CONG (byte 1 bit 6).
    pub lu_cong: bool,
    /// VERSION (byte 2): 0 none claimed, 3 SPC, 4 SPC-2, 5 SPC-3, 6 SPC-4, 7 SPC-5.
    pub version: u8,
    /// Linux's `scsi_level` (see [`linux_scsi_level`]); QEMU's version 5 gives 6
    /// (SCSI_SPC_3).
    pub scsi_level: u8,
    /// NORMACA (byte 3 bit 5).
    pub normaca: bool,
    /// HISUP (byte 3 bit 4): hierarchical LUNs.
    pub hisup: bool,
    /// RESPONSE DATA FORMAT (byte 3 bits 3..0), 2 for anything modern.
    pub response_data_format: u8,
    /// ADDITIONAL LENGTH (byte 4): bytes after byte 4 the device has.
    pub additional_length: u8,
    /// SCCS (byte 5 bit 7): embedded storage array controller.
    pub sccs: bool,
    /// TPGS (byte 5 bits 5..4): ALUA support.
    pub tpgs: u8,
    /// 3PC (byte 5 bit 3): third-party copy.
    pub third_party_copy: bool,
    /// PROTECT (byte 5 bit 0): protection information supported.
    pub protect: bool,
    /// ENCSERV (byte 6 bit 6).
    pub encserv: bool,
    /// MULTIP (byte 6 bit 4).
    pub multip: bool,
    /// CMDQUE (byte 7 bit 1): command queuing; Linux enables tagged queuing on it.
    pub cmdque: bool,
    /// T10 VENDOR IDENTIFICATION (bytes 8..16), sanitized, space padded to 8.
    pub vendor: String,
    /// PRODUCT IDENTIFICATION (bytes 16..32), sanitized, space padded to 16.
    pub product: String,
    /// PRODUCT REVISION LEVEL (bytes 32..36), sanitized, space padded to 4.
    pub revision: String,
}

/// Linux's `scsi_level` from INQUIRY bytes 2 and 3 (`scsi_probe_lun`, modern kernels):
/// `level = version & 0x0f`, then `level + 1` if `level >= 2`, or if `level == 1` and
/// the response data format is 1 (CCS). So 0 stays SCSI_UNKNOWN, 1 is SCSI_1 (or 2,
/// SCSI_1_CCS), version 3 (SPC) is 4, version 5 (SPC-3) is 6, 0x0d (SPC-6) is 14.
/// Kernels before the SPC-5 change (~v6.5) masked with 0x07.
pub const fn linux_scsi_level(byte2: u8, byte3: u8) -> u8 {
    let level = byte2 & 0x0f;
    if level >= 2 || (level == 1 && (byte3 & 0x0f) == 1) {
        level + 1
    } else {
        level
    }
}

/// `scsi_sanitize_inquiry_string`: a NUL ends the string (everything from it on becomes
/// a space), other bytes outside 0x20..=0x7e become spaces. Missing bytes count as NUL,
/// as in the kernel's zeroed buffer.
fn sanitized(buf: &[u8], start: usize, len: usize) -> String {
    let mut terminated = false;
    (start..start + len)
        .map(|i| {
            let c = byte(buf, i);
            if c == 0 {
                terminated = true;
            }
            if terminated || !(0x20..=0x7e).contains(&c) {
                ' '
            } else {
                c as char
            }
        })
        .collect()
}

impl Inquiry {
    /// Bytes through ADDITIONAL LENGTH; anything shorter is an error.
    pub const MIN_LEN: usize = 5;
    /// The standard 36 bytes that hold the identification strings.
    pub const STANDARD_LEN: usize = 36;

    /// Parses a standard INQUIRY reply. Needs 5 bytes; fields past the end of a shorter
    /// than 36-byte reply read as zero/spaces (the kernel pads a short reply the same
    /// way: "INQUIRY result too short, using 36").
    pub fn parse(buf: &[u8]) -> Result<Inquiry, ReplyError> {
        need(
            buf,
            Self::MIN_LEN,
            "standard INQUIRY",
            "the header through ADDITIONAL LENGTH",
        )?;
        let b = |i| byte(buf, i);
        Ok(Inquiry {
            len: buf.len(),
            peripheral_qualifier: b(0) >> 5,
            device_type: PeripheralType(b(0) & 0x1f),
            removable: b(1) & 0x80 != 0,
            lu_cong: b(1) & 0x40 != 0,
            version: b(2),
            scsi_level: linux_scsi_level(b(2), b(3)),
            normaca: b(3) & 0x20 != 0,
            hisup: b(3) & 0x10 != 0,
            response_data_format: b(3) & 0x0f,
            additional_length: b(4),
            sccs: b(5) & 0x80 != 0,
            tpgs: (b(5) >> 4) & 0x03,
            third_party_copy: b(5) & 0x08 != 0,
            protect: b(5) & 0x01 != 0,
            encserv: b(6) & 0x40 != 0,
            multip: b(6) & 0x10 != 0,
            cmdque: b(7) & 0x02 != 0,
            vendor: sanitized(buf, 8, 8),
            product: sanitized(buf, 16, 16),
            revision: sanitized(buf, 32, 4),
        })
    }

    /// Total bytes the device says it has: ADDITIONAL LENGTH + 5 (Linux's
    /// `response_len`, the length of its second INQUIRY).
    pub const fn response_len(&self) -> usize {
        self.additional_length as usize + 5
    }

    /// Vendor without trailing spaces.
    pub fn vendor_trimmed(&self) -> &str {
        self.vendor.trim_end()
    }

    /// Product without trailing spaces.
    pub fn product_trimmed(&self) -> &str {
        self.product.trim_end()
    }

    /// Revision without trailing spaces.
    pub fn revision_trimmed(&self) -> &str {
        self.revision.trim_end()
    }

    /// Linux's presence rule for the LUN whose Linux integer is `linux_lun`: PQ 3, or
    /// PQ 1 with device type 0x1f on a non-well-known LUN, is "target only" (QEMU answers
    /// 0x7f for a missing LUN and 0x3f for a missing LUN 0 on a populated target).
    pub const fn linux_presence(&self, linux_lun: u64) -> LunPresence {
        if self.peripheral_qualifier == 3
            || (self.peripheral_qualifier == 1
                && self.device_type.0 == 0x1f
                && !super::lun::is_wlun(linux_lun))
        {
            LunPresence::TargetOnly
        } else {
            LunPresence::Present
        }
    }

    /// A present, connected LU of a type Linux's sd drives: PQ 0 and device type disk,
    /// optical memory, RBC or ZBC.
    pub const fn is_sd_disk(&self) -> bool {
        self.peripheral_qualifier == 0 && self.device_type.is_sd_type()
    }
}

// ------------------------------------------------------------------------------------
// VPD pages
// ------------------------------------------------------------------------------------

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
        need(buf, 4, "VPD", "the page header")?;
        if buf[1] != expected_page {
            return Err(ReplyError::WrongVpdPage {
                expected: expected_page,
                got: buf[1],
            });
        }
        let page_length = u16::from_be_bytes([buf[2], buf[3]]);
        let end = buf.len().min(4 + page_length as usize);
        Ok(VpdPage {
            peripheral_qualifier: buf[0] >> 5,
            device_type: PeripheralType(buf[0] & 0x1f),
            page_code: buf[1],
            page_length,
            payload: &buf[4..end],
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
        &buf[..4 + self.payload.len()]
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
            let (Some(hdr), Some(&len)) = (d.get(..2), d.get(3)) else {
                truncated = true;
                break;
            };
            let Some(identifier) = d.get(4..4 + len as usize) else {
                truncated = true;
                break;
            };
            designators.push(Designator {
                protocol_identifier: hdr[0] >> 4,
                code_set: hdr[0] & 0x0f,
                piv: hdr[1] & 0x80 != 0,
                association: (hdr[1] >> 4) & 0x03,
                designator_type: hdr[1] & 0x0f,
                identifier: identifier.to_vec(),
            });
            d = &d[4 + len as usize..];
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
        need(page, 6, "VPD page 0xB2", "the LBPU/LBPWS flags (byte 5)")?;
        Ok(LogicalBlockProvisioning {
            threshold_exponent: page[4],
            lbpu: page[5] & 0x80 != 0,
            lbpws: page[5] & 0x40 != 0,
            lbpws10: page[5] & 0x20 != 0,
            lbprz: (page[5] >> 2) & 0x07,
            anc_sup: page[5] & 0x02 != 0,
            dp: page[5] & 0x01 != 0,
            provisioning_type: page.get(6).map(|b| b & 0x07),
        })
    }
}

// ------------------------------------------------------------------------------------
// READ CAPACITY
// ------------------------------------------------------------------------------------

/// A READ CAPACITY(10) reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReadCapacity10 {
    /// RETURNED LOGICAL BLOCK ADDRESS: the *last* LBA (0xffffffff: too big, use (16)).
    pub returned_lba: u32,
    /// LOGICAL BLOCK LENGTH IN BYTES.
    pub block_length: u32,
}

impl ReadCapacity10 {
    /// Parses the 8-byte reply.
    pub fn parse(buf: &[u8]) -> Result<Self, ReplyError> {
        need(buf, 8, "READ CAPACITY(10)", "the last LBA and block length")?;
        Ok(ReadCapacity10 {
            returned_lba: u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]),
            block_length: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        })
    }

    /// Number of logical blocks: last LBA + 1.
    pub const fn block_count(&self) -> u64 {
        self.returned_lba as u64 + 1
    }

    /// Whether the capacity does not fit and READ CAPACITY(16) must be asked (Linux:
    /// "Very big device. Trying to use READ CAPACITY(16)").
    pub const fn needs_16(&self) -> bool {
        self.returned_lba == u32::MAX
    }

    /// Capacity in bytes.
    pub const fn capacity_bytes(&self) -> u64 {
        self.block_count() * self.block_length as u64
    }
}

/// A READ CAPACITY(16) reply (SBC-3 5.16.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReadCapacity16 {
    /// RETURNED LOGICAL BLOCK ADDRESS (bytes 0..8): the last LBA.
    pub returned_lba: u64,
    /// LOGICAL BLOCK LENGTH IN BYTES (bytes 8..12).
    pub block_length: u32,
    /// RC BASIS (byte 12 bits 5..4).
    pub rc_basis: u8,
    /// P_TYPE (byte 12 bits 3..1).
    pub p_type: u8,
    /// PROT_EN (byte 12 bit 0).
    pub prot_en: bool,
    /// P_I_EXPONENT (byte 13 bits 7..4).
    pub p_i_exponent: u8,
    /// LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT (byte 13 bits 3..0).
    pub lbppbe: u8,
    /// LBPME (byte 14 bit 7): logical block provisioning (UNMAP) enabled.
    pub lbpme: bool,
    /// LBPRZ (byte 14 bit 6): unmapped blocks read as zeroes.
    pub lbprz: bool,
    /// LOWEST ALIGNED LOGICAL BLOCK ADDRESS (byte 14 bits 5..0, byte 15).
    pub lowest_aligned_lba: u16,
}

impl ReadCapacity16 {
    /// Parses the reply. Needs the 12 bytes of last LBA and block length; bytes 12..16
    /// read as zero when missing (Linux asks for 32 and zero-fills).
    pub fn parse(buf: &[u8]) -> Result<Self, ReplyError> {
        need(
            buf,
            12,
            "READ CAPACITY(16)",
            "the last LBA and block length",
        )?;
        let b12 = byte(buf, 12);
        let b13 = byte(buf, 13);
        let b14 = byte(buf, 14);
        Ok(ReadCapacity16 {
            returned_lba: be64(buf, 0).unwrap_or(0),
            block_length: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
            rc_basis: (b12 >> 4) & 0x03,
            p_type: (b12 >> 1) & 0x07,
            prot_en: b12 & 0x01 != 0,
            p_i_exponent: b13 >> 4,
            lbppbe: b13 & 0x0f,
            lbpme: b14 & 0x80 != 0,
            lbprz: b14 & 0x40 != 0,
            lowest_aligned_lba: (((b14 & 0x3f) as u16) << 8) | byte(buf, 15) as u16,
        })
    }

    /// Number of logical blocks: last LBA + 1 (saturating at `u64::MAX`).
    pub const fn block_count(&self) -> u64 {
        self.returned_lba.saturating_add(1)
    }

    /// Physical block size in bytes: `block_length << lbppbe` (sd:
    /// `(1 << (buf[13] & 0xf)) * sector_size`).
    pub const fn physical_block_size(&self) -> u64 {
        (self.block_length as u64) << self.lbppbe
    }

    /// Byte offset of the first physically aligned block (sd's `alignment_offset`:
    /// lowest aligned LBA times the logical block length).
    pub const fn alignment_offset_bytes(&self) -> u64 {
        self.lowest_aligned_lba as u64 * self.block_length as u64
    }

    /// Capacity in bytes, `None` on overflow.
    pub const fn capacity_bytes(&self) -> Option<u64> {
        self.block_count().checked_mul(self.block_length as u64)
    }
}

// ------------------------------------------------------------------------------------
// MODE SENSE
// ------------------------------------------------------------------------------------

/// The mode parameter header of a MODE SENSE(6) or (10) reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModeParameterHeader {
    /// 4 for MODE SENSE(6), 8 for (10).
    pub header_len: usize,
    /// MODE DATA LENGTH: bytes after this field the device has.
    pub mode_data_length: u16,
    /// MEDIUM TYPE.
    pub medium_type: u8,
    /// DEVICE-SPECIFIC PARAMETER (byte 2 of (6), byte 3 of (10)).
    pub device_specific: u8,
    /// WP: bit 7 of the device-specific parameter (sd sets the disk read-only on it).
    pub write_protect: bool,
    /// DPOFUA: bit 4 of the device-specific parameter (FUA honoured).
    pub dpofua: bool,
    /// LONGLBA ((10) only): 16-byte block descriptors.
    pub long_lba: bool,
    /// BLOCK DESCRIPTOR LENGTH.
    pub block_descriptor_length: u16,
}

impl ModeParameterHeader {
    /// Total bytes of mode data the device has (header included): MODE DATA LENGTH
    /// + 1 for (6), + 2 for (10).
    pub const fn total_len(&self) -> usize {
        self.mode_data_length as usize + if self.header_len == 4 { 1 } else { 2 }
    }
}

/// A parsed MODE SENSE reply: header plus the mode pages after the block descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeSense<'a> {
    /// The header.
    pub header: ModeParameterHeader,
    /// Block descriptor bytes (cut to what arrived).
    pub block_descriptors: &'a [u8],
    /// Mode page bytes after the block descriptors (cut to MODE DATA LENGTH and to what
    /// arrived).
    pub pages: &'a [u8],
    /// Fewer bytes arrived than the header announced.
    pub truncated: bool,
}

impl<'a> ModeSense<'a> {
    /// Parses a MODE SENSE(6) reply (4-byte header; Linux's first "is it write
    /// protected" probe asks for exactly these 4 bytes).
    pub fn parse_6(buf: &'a [u8]) -> Result<Self, ReplyError> {
        need(buf, 4, "MODE SENSE(6)", "the mode parameter header")?;
        let header = ModeParameterHeader {
            header_len: 4,
            mode_data_length: buf[0] as u16,
            medium_type: buf[1],
            device_specific: buf[2],
            write_protect: buf[2] & 0x80 != 0,
            dpofua: buf[2] & 0x10 != 0,
            long_lba: false,
            block_descriptor_length: buf[3] as u16,
        };
        Ok(Self::split(buf, header))
    }

    /// Parses a MODE SENSE(10) reply (8-byte header).
    pub fn parse_10(buf: &'a [u8]) -> Result<Self, ReplyError> {
        need(buf, 8, "MODE SENSE(10)", "the mode parameter header")?;
        let header = ModeParameterHeader {
            header_len: 8,
            mode_data_length: u16::from_be_bytes([buf[0], buf[1]]),
            medium_type: buf[2],
            device_specific: buf[3],
            write_protect: buf[3] & 0x80 != 0,
            dpofua: buf[3] & 0x10 != 0,
            long_lba: buf[4] & 0x01 != 0,
            block_descriptor_length: u16::from_be_bytes([buf[6], buf[7]]),
        };
        Ok(Self::split(buf, header))
    }

    fn split(buf: &'a [u8], header: ModeParameterHeader) -> Self {
        let total = header.total_len();
        let data = &buf[..buf.len().min(total)];
        let bd_end = data
            .len()
            .min(header.header_len + header.block_descriptor_length as usize);
        ModeSense {
            header,
            block_descriptors: &data[header.header_len.min(bd_end)..bd_end],
            pages: &data[bd_end..],
            truncated: buf.len() < total,
        }
    }

    /// The mode pages, in order.
    pub fn iter_pages(&self) -> ModePages<'a> {
        ModePages { rest: self.pages }
    }

    /// The first page with this code and subpage.
    pub fn find_page(&self, page_code: u8, subpage: u8) -> Option<ModePage<'a>> {
        self.iter_pages()
            .find(|p| p.page_code == page_code && p.subpage == subpage)
    }

    /// The caching mode page (0x08), if present and long enough to hold WCE/RCD.
    pub fn caching(&self) -> Option<CachingPage> {
        CachingPage::from_page(&self.find_page(0x08, 0)?)
    }

    /// The first short-form block descriptor's (number of blocks, block length), as a
    /// disk reports them (QEMU: blocks clamped to 24 bits, 0 if larger).
    pub fn block_descriptor(&self) -> Option<(u32, u32)> {
        if self.header.long_lba {
            return None;
        }
        let d = self.block_descriptors.get(..8)?;
        Some((
            u32::from_be_bytes([0, d[1], d[2], d[3]]),
            u32::from_be_bytes([0, d[5], d[6], d[7]]),
        ))
    }
}

/// One mode page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModePage<'a> {
    /// PAGE CODE (bits 5..0 of byte 0).
    pub page_code: u8,
    /// SUBPAGE CODE (0 for page_0 format).
    pub subpage: u8,
    /// PS: the page is savable.
    pub ps: bool,
    /// SPF: sub_page format (4-byte page header).
    pub spf: bool,
    /// PAGE LENGTH as the device wrote it.
    pub page_length: u16,
    /// Parameter bytes after the page header, cut to what arrived.
    pub data: &'a [u8],
    /// Fewer bytes than PAGE LENGTH arrived.
    pub truncated: bool,
}

/// Iterator over mode pages (sd's walk in `sd_read_cache_type`: 2-byte header, or 4
/// bytes when SPF is set).
#[derive(Debug, Clone)]
pub struct ModePages<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for ModePages<'a> {
    type Item = ModePage<'a>;

    fn next(&mut self) -> Option<ModePage<'a>> {
        let b = self.rest;
        let first = *b.first()?;
        let spf = first & 0x40 != 0;
        let (hdr, page_length, subpage) = if spf {
            (4, be16(b, 2), byte(b, 1))
        } else {
            (2, b.get(1).map(|&l| l as u16), 0)
        };
        let Some(page_length) = page_length else {
            self.rest = &[];
            return None;
        };
        let end = hdr + page_length as usize;
        let data = &b[hdr.min(b.len())..end.min(b.len())];
        self.rest = &b[end.min(b.len())..];
        Some(ModePage {
            page_code: first & 0x3f,
            subpage,
            ps: first & 0x80 != 0,
            spf,
            page_length,
            data,
            truncated: end > b.len(),
        })
    }
}

/// The caching mode page (0x08) fields sd uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CachingPage {
    /// WCE (page byte 2 bit 2): write-back cache enabled.
    pub wce: bool,
    /// RCD (page byte 2 bit 0): read cache disabled.
    pub rcd: bool,
}

impl CachingPage {
    /// Reads WCE/RCD from a caching page; `None` if it is not page 0x08 or lacks byte 2.
    pub fn from_page(page: &ModePage<'_>) -> Option<Self> {
        if page.page_code != 0x08 || page.spf {
            return None;
        }
        let b2 = *page.data.first()?;
        Some(CachingPage {
            wce: b2 & 0x04 != 0,
            rcd: b2 & 0x01 != 0,
        })
    }
}

// ------------------------------------------------------------------------------------
// REPORT LUNS
// ------------------------------------------------------------------------------------

/// A REPORT LUNS reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportLuns {
    /// LUN LIST LENGTH (bytes 0..4): bytes of LUN entries the device has.
    pub list_length: u32,
    /// The entries that arrived whole, in the device's order (QEMU: LUN 0 first).
    pub luns: Vec<ScsiLun>,
}

impl ReportLuns {
    /// Parses the reply; needs the 4-byte LUN LIST LENGTH. Only complete 8-byte entries
    /// inside both the buffer and LUN LIST LENGTH are taken.
    pub fn parse(buf: &[u8]) -> Result<Self, ReplyError> {
        need(buf, 4, "REPORT LUNS", "the LUN LIST LENGTH")?;
        let list_length = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let end = buf.len().min(8usize.saturating_add(list_length as usize));
        let luns = buf
            .get(8..end)
            .unwrap_or(&[])
            .chunks_exact(8)
            .filter_map(|c| ScsiLun::from_slice(c).ok())
            .collect();
        Ok(ReportLuns { list_length, luns })
    }

    /// How many LUNs the device has (LUN LIST LENGTH / 8), even if they did not all fit.
    pub const fn total_luns(&self) -> usize {
        self.list_length as usize / 8
    }

    /// Whether every LUN the device has arrived.
    pub fn is_complete(&self) -> bool {
        self.luns.len() >= self.total_luns()
    }

    /// The allocation length that holds the whole list (LUN LIST LENGTH + 8); Linux
    /// re-issues REPORT LUNS with it when its buffer was too small.
    pub const fn required_alloc_len(&self) -> u64 {
        self.list_length as u64 + 8
    }

    /// The LUNs as Linux integers.
    pub fn linux_luns(&self) -> impl Iterator<Item = u64> + '_ {
        self.luns.iter().map(ScsiLun::to_linux)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a standard INQUIRY reply the way QEMU's `scsi_disk_emulate_inquiry` does
    /// for an allocation length of `alloc` (scsi_version 5, virtio-scsi bus with TCQ).
    fn qemu_inquiry(ty: u8, removable: bool, product: &str, alloc: usize) -> Vec<u8> {
        let len = alloc.min(256);
        let mut b = vec![0u8; len.max(36)];
        b[0] = ty;
        b[1] = if removable { 0x80 } else { 0 };
        b[2] = 5;
        b[3] = 0x12;
        b[4] = if len > 36 { (len - 5) as u8 } else { 31 };
        b[7] = 0x12;
        b[8..16].copy_from_slice(b"QEMU    ");
        let mut p = [b' '; 16];
        p[..product.len()].copy_from_slice(product.as_bytes());
        b[16..32].copy_from_slice(&p);
        b[32..36].copy_from_slice(b"2.5+");
        b.truncate(len);
        b
    }

    fn every_prefix<T>(sample: &[u8], parse: impl Fn(&[u8]) -> Result<T, ReplyError>) {
        for n in 0..=sample.len() {
            let _ = parse(&sample[..n]);
        }
    }

    #[test]
    fn qemu_scsi_hd_inquiry() {
        let raw = qemu_inquiry(0x00, false, "QEMU HARDDISK", 36);
        assert_eq!(raw.len(), 36);
        assert_eq!(&raw[..8], &[0x00, 0x00, 0x05, 0x12, 0x1f, 0x00, 0x00, 0x12]);
        let inq = Inquiry::parse(&raw).unwrap();
        assert_eq!(inq.peripheral_qualifier, 0);
        assert_eq!(inq.device_type, PeripheralType::DISK);
        assert_eq!(inq.device_type.short_name(), "disk");
        assert_eq!(inq.device_type.classic_name(), "Direct-Access");
        assert!(!inq.removable);
        assert_eq!(inq.version, 5);
        assert_eq!(inq.scsi_level, 6); // SCSI_SPC_3, "ANSI: 5" in dmesg
        assert_eq!(inq.response_data_format, 2);
        assert!(inq.hisup);
        assert!(inq.cmdque);
        assert_eq!(inq.response_len(), 36);
        assert_eq!(inq.vendor, "QEMU    ");
        assert_eq!(inq.product, "QEMU HARDDISK   ");
        assert_eq!(inq.revision, "2.5+");
        assert_eq!(inq.vendor_trimmed(), "QEMU");
        assert_eq!(inq.product_trimmed(), "QEMU HARDDISK");
        assert_eq!(inq.linux_presence(0), LunPresence::Present);
        assert!(inq.is_sd_disk());
        // The lsscsi line body: "%-8s %-16s %-4s  ".
        assert_eq!(
            format!(
                "{:<8} {:<16} {:<4}  ",
                inq.vendor, inq.product, inq.revision
            ),
            "QEMU     QEMU HARDDISK    2.5+  "
        );
        // A longer allocation: ADDITIONAL LENGTH follows the buffer.
        let long = Inquiry::parse(&qemu_inquiry(0, false, "QEMU HARDDISK", 96)).unwrap();
        assert_eq!(long.additional_length, 91);
        assert_eq!(long.response_len(), 96);
        every_prefix(&raw, Inquiry::parse);
    }

    #[test]
    fn qemu_scsi_cd_inquiry() {
        let raw = qemu_inquiry(0x05, true, "QEMU CD-ROM", 36);
        let inq = Inquiry::parse(&raw).unwrap();
        assert_eq!(inq.device_type, PeripheralType::CD_DVD);
        assert_eq!(inq.device_type.to_string(), "cd/dvd");
        assert!(inq.removable);
        assert_eq!(inq.product, "QEMU CD-ROM     ");
        assert!(!inq.is_sd_disk());
        assert_eq!(inq.linux_presence(0), LunPresence::Present);
    }

    #[test]
    fn qemu_missing_luns() {
        // Missing LUN != 0: min(alloc, 36) zero bytes but byte 0 = 0x7f.
        let mut raw = [0u8; 36];
        raw[0] = 0x7f;
        let inq = Inquiry::parse(&raw).unwrap();
        assert_eq!(inq.peripheral_qualifier, 3);
        assert_eq!(inq.device_type, PeripheralType::NO_DEVICE);
        assert_eq!(inq.device_type.short_name(), "no dev");
        assert_eq!(inq.linux_presence(5), LunPresence::TargetOnly);
        assert_eq!(inq.scsi_level, 0);
        assert_eq!(inq.vendor, "        ");
        // Missing LUN 0 on a populated target: 0x3f, QEMU TARGET, SPC-3.
        let mut t = qemu_inquiry(0x3f, false, "QEMU TARGET", 36);
        t[0] = 0x3f;
        let inq = Inquiry::parse(&t).unwrap();
        assert_eq!((inq.peripheral_qualifier, inq.device_type.0), (1, 0x1f));
        assert_eq!(inq.linux_presence(0), LunPresence::TargetOnly);
        assert_eq!(inq.linux_presence(0xc101), LunPresence::Present); // W-LUN exception
        assert_eq!(inq.scsi_level, 6);
    }

    #[test]
    fn scsi_level_rule() {
        assert_eq!(linux_scsi_level(0, 0), 0);
        assert_eq!(linux_scsi_level(1, 0), 1);
        assert_eq!(linux_scsi_level(1, 1), 2); // SCSI-1 CCS
        assert_eq!(linux_scsi_level(2, 2), 3);
        assert_eq!(linux_scsi_level(3, 2), 4);
        assert_eq!(linux_scsi_level(6, 2), 7);
        assert_eq!(linux_scsi_level(7, 2), 8);
        assert_eq!(linux_scsi_level(0x0d, 2), 14); // SPC-6
        assert_eq!(linux_scsi_level(0x85, 2), 6); // upper nibble ignored
    }

    #[test]
    fn inquiry_sanitizing_and_truncation() {
        let mut raw = qemu_inquiry(0, false, "QEMU HARDDISK", 36);
        raw[9] = 0x01; // control character
        raw[20] = 0x00; // NUL terminates the product
        raw[33] = 0xff;
        let inq = Inquiry::parse(&raw).unwrap();
        assert_eq!(inq.vendor, "Q MU    ");
        assert_eq!(inq.product, "QEMU            ");
        assert_eq!(inq.revision, "2 5+");
        let short = Inquiry::parse(&raw[..20]).unwrap();
        assert_eq!(short.len, 20);
        assert_eq!(short.product, "QEMU            ");
        assert_eq!(short.revision, "    ");
        let e = Inquiry::parse(&raw[..4]).unwrap_err();
        assert_eq!(
            e,
            ReplyError::TooShort {
                what: "standard INQUIRY",
                fields: "the header through ADDITIONAL LENGTH",
                needed: 5,
                got: 4
            }
        );
        assert!(e.to_string().contains("4 bytes, shorter than the 5 bytes"));
    }

    #[test]
    fn peripheral_type_names() {
        let names: Vec<&str> = (0..32).map(|t| PeripheralType(t).short_name()).collect();
        assert_eq!(
            names[..21],
            [
                "disk", "tape", "printer", "process", "worm", "cd/dvd", "scanner", "optical",
                "mediumx", "comms", "(0xa)", "(0xb)", "storage", "enclosu", "sim dsk", "opti rd",
                "bridge", "osd", "adi", "sec man", "zbc"
            ]
        );
        assert_eq!(names[0x15], "(0x15)");
        assert_eq!(names[0x1d], "(0x1d)");
        assert_eq!(names[0x1e], "wlun");
        assert_eq!(names[0x1f], "no dev");
        assert!(names.iter().all(|n| n.len() <= 7));
        assert_eq!(PeripheralType(0x20).short_name(), "type???");
        assert_eq!(PeripheralType::ZBC.classic_name(), "Zoned Block");
        assert!(PeripheralType::RBC.is_sd_type());
        assert!(!PeripheralType::TAPE.is_sd_type());
    }

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

    #[test]
    fn read_capacity_10() {
        // 1 GiB of 512-byte blocks.
        let raw = [0x00, 0x1f, 0xff, 0xff, 0x00, 0x00, 0x02, 0x00];
        let rc = ReadCapacity10::parse(&raw).unwrap();
        assert_eq!(rc.returned_lba, 2_097_151);
        assert_eq!(rc.block_count(), 2_097_152);
        assert_eq!(rc.block_length, 512);
        assert_eq!(rc.capacity_bytes(), 1 << 30);
        assert!(!rc.needs_16());
        let big = ReadCapacity10::parse(&[0xff, 0xff, 0xff, 0xff, 0, 0, 2, 0]).unwrap();
        assert!(big.needs_16());
        assert_eq!(big.block_count(), 1 << 32);
        every_prefix(&raw, ReadCapacity10::parse);
    }

    fn rc16(last_lba: u64, block_len: u32, b13: u8, b14: u8) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[0..8].copy_from_slice(&last_lba.to_be_bytes());
        b[8..12].copy_from_slice(&block_len.to_be_bytes());
        b[13] = b13;
        b[14] = b14;
        b
    }

    #[test]
    fn read_capacity_16_qemu_disks() {
        // 1 GiB, 512-byte blocks, discard on (LBPME).
        let raw = rc16(2_097_151, 512, 0, 0x80);
        assert_eq!(
            &raw[..16],
            &[0, 0, 0, 0, 0, 0x1f, 0xff, 0xff, 0, 0, 2, 0, 0, 0, 0x80, 0]
        );
        let rc = ReadCapacity16::parse(&raw).unwrap();
        assert_eq!(rc.block_count(), 2_097_152);
        assert_eq!(rc.block_length, 512);
        assert_eq!(rc.physical_block_size(), 512);
        assert!(rc.lbpme && !rc.lbprz);
        assert!(!rc.prot_en);
        assert_eq!(rc.lowest_aligned_lba, 0);
        assert_eq!(rc.capacity_bytes(), Some(1 << 30));

        // 4 KiB native: logical_block_size=4096.
        let rc = ReadCapacity16::parse(&rc16(262_143, 4096, 0, 0x80)).unwrap();
        assert_eq!(rc.block_count(), 262_144);
        assert_eq!(rc.physical_block_size(), 4096);
        assert_eq!(rc.capacity_bytes(), Some(1 << 30));

        // 512e: logical 512, physical 4096 -> exponent 3; lowest aligned LBA 7, LBPRZ.
        let rc = ReadCapacity16::parse(&rc16(2_097_151, 512, 3, 0xc0)).unwrap();
        assert_eq!(rc.lbppbe, 3);
        assert_eq!(rc.physical_block_size(), 4096);
        assert!(rc.lbprz);
        let mut raw = rc16(2_097_151, 512, 0x13, 0x00);
        raw[12] = 0x05; // P_TYPE 2, PROT_EN
        raw[15] = 7;
        let rc = ReadCapacity16::parse(&raw).unwrap();
        assert_eq!((rc.p_type, rc.prot_en, rc.p_i_exponent), (2, true, 1));
        assert_eq!(rc.lowest_aligned_lba, 7);
        assert_eq!(rc.alignment_offset_bytes(), 7 * 512);

        // Truncation: 12 bytes are enough, 11 are not.
        let rc = ReadCapacity16::parse(&raw[..12]).unwrap();
        assert_eq!((rc.lbppbe, rc.lbpme, rc.lowest_aligned_lba), (0, false, 0));
        assert!(ReadCapacity16::parse(&raw[..11]).is_err());
        assert_eq!(
            ReadCapacity16::parse(&rc16(u64::MAX, 512, 0, 0))
                .unwrap()
                .capacity_bytes(),
            None
        );
        every_prefix(&raw, ReadCapacity16::parse);
    }

    /// QEMU MODE SENSE(6) for page 8 on a read-only 1 GiB 512-byte disk: header (WP and
    /// DPOFUA set, 8-byte block descriptor), block descriptor, 20-byte caching page with
    /// WCE.
    fn qemu_mode_sense_6_caching_wp() -> Vec<u8> {
        let mut b = vec![0u8, 0x00, 0x90, 0x08];
        b.extend_from_slice(&[0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00]);
        let mut page = vec![0u8; 20];
        page[0] = 0x08;
        page[1] = 0x12;
        page[2] = 0x04;
        b.extend(page);
        b[0] = (b.len() - 1) as u8;
        b
    }

    #[test]
    fn mode_sense_6_write_protect_and_caching() {
        let raw = qemu_mode_sense_6_caching_wp();
        assert_eq!(raw.len(), 32);
        let ms = ModeSense::parse_6(&raw).unwrap();
        assert!(ms.header.write_protect);
        assert!(ms.header.dpofua);
        assert_eq!(ms.header.block_descriptor_length, 8);
        assert_eq!(ms.header.total_len(), 32);
        assert!(!ms.truncated);
        assert_eq!(ms.block_descriptor(), Some((0x20_0000, 512)));
        let pages: Vec<_> = ms.iter_pages().collect();
        assert_eq!(pages.len(), 1);
        assert_eq!((pages[0].page_code, pages[0].page_length), (8, 0x12));
        assert_eq!(
            ms.caching(),
            Some(CachingPage {
                wce: true,
                rcd: false
            })
        );
        // sd's first probe: just the 4-byte header.
        let hdr = ModeSense::parse_6(&raw[..4]).unwrap();
        assert!(hdr.header.write_protect);
        assert!(hdr.truncated);
        assert_eq!(hdr.caching(), None);
        // Caching page cut after its byte 2 still yields WCE.
        assert!(ModeSense::parse_6(&raw[..15]).unwrap().caching().is_some());
        assert_eq!(ModeSense::parse_6(&raw[..14]).unwrap().caching(), None);
        every_prefix(&raw, |b| ModeSense::parse_6(b).map(|m| m.caching()));
    }

    #[test]
    fn mode_sense_10_walks_pages() {
        // Writable, DBD (no block descriptors), pages 0x01 (10 bytes) then 0x08 with RCD,
        // then an SPF subpage.
        let mut b = vec![0u8, 0, 0x00, 0x00, 0, 0, 0, 0];
        b.extend_from_slice(&[0x01, 0x0a, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&[0x88, 0x12, 0x01]);
        b.extend_from_slice(&[0u8; 17]);
        b.extend_from_slice(&[0x4a, 0x01, 0x00, 0x02, 0xaa, 0xbb]);
        let len = (b.len() - 2) as u16;
        b[0..2].copy_from_slice(&len.to_be_bytes());
        let ms = ModeSense::parse_10(&b).unwrap();
        assert!(!ms.header.write_protect);
        assert_eq!(ms.header.block_descriptor_length, 0);
        assert_eq!(ms.block_descriptor(), None);
        let pages: Vec<_> = ms.iter_pages().collect();
        assert_eq!(pages.len(), 3);
        assert_eq!(pages[0].page_code, 0x01);
        assert!(pages[1].ps);
        assert_eq!(
            (pages[2].page_code, pages[2].subpage, pages[2].spf),
            (0x0a, 1, true)
        );
        assert_eq!(pages[2].data, &[0xaa, 0xbb]);
        assert_eq!(
            ms.caching(),
            Some(CachingPage {
                wce: false,
                rcd: true
            })
        );
        assert!(ms.find_page(0x0a, 1).is_some());
        // A MODE DATA LENGTH shorter than the buffer hides the trailing bytes.
        let mut cut = b.clone();
        cut[0..2].copy_from_slice(&10u16.to_be_bytes());
        let ms = ModeSense::parse_10(&cut).unwrap();
        assert_eq!(ms.pages.len(), 4);
        assert!(ms.iter_pages().next().unwrap().truncated);
        assert_eq!(ms.caching(), None);
        every_prefix(&b, |x| {
            ModeSense::parse_10(x).map(|m| m.iter_pages().count())
        });
        // Garbage lengths do not panic.
        let mut g = b.clone();
        g[6] = 0xff;
        g[7] = 0xff;
        let _ = ModeSense::parse_10(&g).unwrap().iter_pages().count();
        let mut g = vec![0xffu8; 40];
        g[0] = 0xff;
        let _ = ModeSense::parse_6(&g).unwrap().iter_pages().count();
    }

    /// QEMU REPORT LUNS for a target with LUNs 0, 1 and 300 (LUN 0 first, then bus
    /// order; LUN >= 256 in flat format).
    fn qemu_report_luns() -> Vec<u8> {
        let mut b = vec![0, 0, 0, 24, 0, 0, 0, 0];
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&[0x41, 0x2c, 0, 0, 0, 0, 0, 0]);
        b
    }

    #[test]
    fn report_luns() {
        let raw = qemu_report_luns();
        let r = ReportLuns::parse(&raw).unwrap();
        assert_eq!(r.list_length, 24);
        assert_eq!(r.total_luns(), 3);
        assert!(r.is_complete());
        assert_eq!(r.linux_luns().collect::<Vec<_>>(), [0, 1, 16684]);
        assert_eq!(r.luns[2].number(), Some(300));
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({
                "list_length": 24,
                "luns": ["0000000000000000", "0001000000000000", "412c000000000000"]
            })
        );
        // Allocation length 16: QEMU sends 16 bytes, the count still says 3.
        let r = ReportLuns::parse(&raw[..16]).unwrap();
        assert_eq!(r.luns.len(), 1);
        assert_eq!(r.total_luns(), 3);
        assert!(!r.is_complete());
        assert_eq!(r.required_alloc_len(), 32);
        // A partial entry is dropped; LUN LIST LENGTH bounds the entries.
        assert_eq!(ReportLuns::parse(&raw[..29]).unwrap().luns.len(), 2);
        let mut short_len = raw.clone();
        short_len[3] = 8;
        assert_eq!(ReportLuns::parse(&short_len).unwrap().luns.len(), 1);
        let mut huge = raw.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        let r = ReportLuns::parse(&huge).unwrap();
        assert_eq!(r.luns.len(), 3);
        assert_eq!(r.required_alloc_len(), u32::MAX as u64 + 8);
        assert!(ReportLuns::parse(&raw[..3]).is_err());
        every_prefix(&raw, ReportLuns::parse);
    }

    #[test]
    fn malformed_vpd_never_panics() {
        for page in [0x00u8, 0x80, 0x83, 0xb0, 0xb1, 0xb2] {
            for fill in [0x00u8, 0x7f, 0xff] {
                for len in 0..80 {
                    let mut b = vec![fill; len];
                    if len > 1 {
                        b[1] = page;
                    }
                    let _ = SupportedVpdPages::parse(&b);
                    let _ = UnitSerialNumber::parse(&b);
                    if let Ok(d) = DeviceIdentification::parse(&b) {
                        let _ = d.lun_name();
                        for x in &d.designators {
                            let _ = (x.text(), x.name());
                        }
                    }
                    let _ = BlockLimits::parse(&b);
                    let _ = BlockDeviceCharacteristics::parse(&b);
                    let _ = LogicalBlockProvisioning::parse(&b);
                    let _ = Inquiry::parse(&b);
                    let _ = ReadCapacity16::parse(&b);
                    let _ = ReportLuns::parse(&b);
                }
            }
        }
    }
}
