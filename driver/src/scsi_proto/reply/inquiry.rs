//! Standard INQUIRY and the peripheral device type it (and every VPD page) carries.

use std::fmt;

use serde::Serialize;

use super::{need, ReplyError};
use crate::scsi_proto::bytes::byte;
use crate::scsi_proto::lun::is_wlun;

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
            || (self.peripheral_qualifier == 1 && self.device_type.0 == 0x1f && !is_wlun(linux_lun))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi_proto::reply::every_prefix;

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
}
