//! SCSI status codes and sense data.
//!
//! [`SenseData::parse`] reads fixed (0x70/0x71) and descriptor (0x72/0x73) format sense
//! the way Linux's `scsi_normalize_sense` and sg3_utils' `sg_scsi_normalize_sense` do:
//! whatever fits in the buffer (and, for fixed format, inside ADDITIONAL SENSE LENGTH)
//! is used, missing fields read as zero. Names and texts follow sg3_utils
//! (`lib/sg_lib_data.c`, `lib/sg_lib.c`).

use std::fmt;

use serde::Serialize;

use super::asc_text::{asc_ascq_text, unknown_asc_ascq_text};
use super::bytes::{array, be32, be64, byte};

/// A SAM status byte, as the virtio-scsi response carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ScsiStatus(pub u8);

impl ScsiStatus {
    /// GOOD.
    pub const GOOD: ScsiStatus = ScsiStatus(0x00);
    /// CHECK CONDITION: sense data describes the error.
    pub const CHECK_CONDITION: ScsiStatus = ScsiStatus(0x02);
    /// CONDITION MET (PRE-FETCH).
    pub const CONDITION_MET: ScsiStatus = ScsiStatus(0x04);
    /// BUSY.
    pub const BUSY: ScsiStatus = ScsiStatus(0x08);
    /// INTERMEDIATE (obsolete).
    pub const INTERMEDIATE: ScsiStatus = ScsiStatus(0x10);
    /// INTERMEDIATE-CONDITION MET (obsolete).
    pub const INTERMEDIATE_CONDITION_MET: ScsiStatus = ScsiStatus(0x14);
    /// RESERVATION CONFLICT.
    pub const RESERVATION_CONFLICT: ScsiStatus = ScsiStatus(0x18);
    /// COMMAND TERMINATED (obsolete).
    pub const COMMAND_TERMINATED: ScsiStatus = ScsiStatus(0x22);
    /// TASK SET FULL (formerly QUEUE FULL).
    pub const TASK_SET_FULL: ScsiStatus = ScsiStatus(0x28);
    /// ACA ACTIVE.
    pub const ACA_ACTIVE: ScsiStatus = ScsiStatus(0x30);
    /// TASK ABORTED.
    pub const TASK_ABORTED: ScsiStatus = ScsiStatus(0x40);

    /// The SAM name, `None` for a reserved value.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x00 => "GOOD",
            0x02 => "CHECK CONDITION",
            0x04 => "CONDITION MET",
            0x08 => "BUSY",
            0x10 => "INTERMEDIATE",
            0x14 => "INTERMEDIATE-CONDITION MET",
            0x18 => "RESERVATION CONFLICT",
            0x22 => "COMMAND TERMINATED",
            0x28 => "TASK SET FULL",
            0x30 => "ACA ACTIVE",
            0x40 => "TASK ABORTED",
            _ => return None,
        })
    }

    /// GOOD (and only GOOD; CONDITION MET is also success for PRE-FETCH, see
    /// [`ScsiStatus::is_success`]).
    pub const fn is_good(self) -> bool {
        self.0 == 0
    }

    /// GOOD or CONDITION MET, the statuses Linux's `scsi_status_is_good` accepts
    /// besides the obsolete intermediate ones.
    pub const fn is_success(self) -> bool {
        matches!(self.0, 0x00 | 0x04 | 0x10 | 0x14)
    }
}

impl fmt::Display for ScsiStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "reserved status 0x{:02x}", self.0),
        }
    }
}

/// A sense key (4 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct SenseKey(pub u8);

impl SenseKey {
    /// NO SENSE.
    pub const NO_SENSE: SenseKey = SenseKey(0x0);
    /// RECOVERED ERROR.
    pub const RECOVERED_ERROR: SenseKey = SenseKey(0x1);
    /// NOT READY.
    pub const NOT_READY: SenseKey = SenseKey(0x2);
    /// MEDIUM ERROR.
    pub const MEDIUM_ERROR: SenseKey = SenseKey(0x3);
    /// HARDWARE ERROR.
    pub const HARDWARE_ERROR: SenseKey = SenseKey(0x4);
    /// ILLEGAL REQUEST.
    pub const ILLEGAL_REQUEST: SenseKey = SenseKey(0x5);
    /// UNIT ATTENTION.
    pub const UNIT_ATTENTION: SenseKey = SenseKey(0x6);
    /// DATA PROTECT.
    pub const DATA_PROTECT: SenseKey = SenseKey(0x7);
    /// BLANK CHECK.
    pub const BLANK_CHECK: SenseKey = SenseKey(0x8);
    /// VENDOR SPECIFIC.
    pub const VENDOR_SPECIFIC: SenseKey = SenseKey(0x9);
    /// COPY ABORTED.
    pub const COPY_ABORTED: SenseKey = SenseKey(0xa);
    /// ABORTED COMMAND.
    pub const ABORTED_COMMAND: SenseKey = SenseKey(0xb);
    /// EQUAL (obsolete).
    pub const EQUAL: SenseKey = SenseKey(0xc);
    /// VOLUME OVERFLOW.
    pub const VOLUME_OVERFLOW: SenseKey = SenseKey(0xd);
    /// MISCOMPARE.
    pub const MISCOMPARE: SenseKey = SenseKey(0xe);
    /// COMPLETED.
    pub const COMPLETED: SenseKey = SenseKey(0xf);

    /// The name as sg3_utils prints it (`sg_lib_sense_key_desc`): "No Sense",
    /// "Illegal Request", "Unit Attention", ...
    pub const fn name(self) -> &'static str {
        match self.0 & 0xf {
            0x0 => "No Sense",
            0x1 => "Recovered Error",
            0x2 => "Not Ready",
            0x3 => "Medium Error",
            0x4 => "Hardware Error",
            0x5 => "Illegal Request",
            0x6 => "Unit Attention",
            0x7 => "Data Protect",
            0x8 => "Blank Check",
            0x9 => "Vendor specific(9)",
            0xa => "Copy Aborted",
            0xb => "Aborted Command",
            0xc => "Equal",
            0xd => "Volume Overflow",
            0xe => "Miscompare",
            _ => "Completed",
        }
    }
}

impl fmt::Display for SenseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Fixed or descriptor format sense data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SenseFormat {
    /// Response code 0x70 (current) or 0x71 (deferred).
    Fixed,
    /// Response code 0x72 (current) or 0x73 (deferred).
    Descriptor,
}

/// The sense-key-specific FIELD POINTER of an ILLEGAL REQUEST: which CDB or parameter
/// byte (and bit) the device objected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FieldPointer {
    /// C/D: the error is in the CDB (`true`) or in the data-out parameters.
    pub in_cdb: bool,
    /// The byte number.
    pub byte: u16,
    /// The bit number, when BPV says it is valid.
    pub bit: Option<u8>,
}

/// Sense data that could not be decoded at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SenseError {
    /// No bytes.
    #[error("the sense buffer is empty")]
    Empty,
    /// Byte 0 is not 0x70..=0x73 (0x7f is vendor-specific sense, anything else
    /// uninitialised data or pre-SCSI-2 sense).
    #[error("sense response code 0x{0:02x} is neither fixed (0x70/0x71) nor descriptor (0x72/0x73) format")]
    UnknownResponseCode(u8),
}

/// Decoded sense data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SenseData {
    /// Response code (byte 0 without the VALID bit): 0x70..=0x73.
    pub response_code: u8,
    /// Fixed or descriptor format.
    pub format: SenseFormat,
    /// Deferred error (0x71/0x73): about an earlier command, not this one.
    pub deferred: bool,
    /// The sense key.
    pub key: SenseKey,
    /// ADDITIONAL SENSE CODE (0 if it was not in the buffer).
    pub asc: u8,
    /// ADDITIONAL SENSE CODE QUALIFIER (0 if it was not in the buffer).
    pub ascq: u8,
    /// Whether ASC and ASCQ were actually present (the buffer or, for fixed format,
    /// ADDITIONAL SENSE LENGTH reached them).
    pub asc_present: bool,
    /// The INFORMATION field when marked valid: fixed format bytes 3..7 with the VALID
    /// bit, or a descriptor-format Information descriptor (type 0) with its VALID bit.
    /// For medium errors this is the failing LBA.
    pub information: Option<u64>,
    /// The field pointer of an ILLEGAL REQUEST, when SKSV is set.
    pub field_pointer: Option<FieldPointer>,
}

/// Decodes the 3 sense-key-specific bytes (SKSV in bit 7 of the first) as a field
/// pointer, for ILLEGAL REQUEST only.
fn field_pointer(key: SenseKey, sks: Option<[u8; 3]>) -> Option<FieldPointer> {
    let [flags, hi, lo] = sks?;
    if key != SenseKey::ILLEGAL_REQUEST || flags & 0x80 == 0 {
        return None;
    }
    Some(FieldPointer {
        in_cdb: flags & 0x40 != 0,
        byte: u16::from_be_bytes([hi, lo]),
        bit: (flags & 0x08 != 0).then_some(flags & 0x07),
    })
}

impl SenseData {
    /// Decodes sense data. Truncated sense yields what fits (missing fields are zero,
    /// [`SenseData::asc_present`] says whether ASC/ASCQ made it); only an empty buffer
    /// or an unknown response code is an error.
    pub fn parse(buf: &[u8]) -> Result<SenseData, SenseError> {
        let first = *buf.first().ok_or(SenseError::Empty)?;
        let response_code = first & 0x7f;
        match response_code {
            0x70 | 0x71 => {
                // ADDITIONAL SENSE LENGTH bounds the data, as in scsi_normalize_sense.
                let len = match buf.get(7) {
                    Some(&additional) => buf.len().min(additional as usize + 8),
                    None => buf.len(),
                };
                let b = buf.get(..len).unwrap_or(buf);
                let key = SenseKey(byte(b, 2) & 0xf);
                let information = if first & 0x80 != 0 {
                    be32(b, 3).map(u64::from)
                } else {
                    None
                };
                Ok(SenseData {
                    response_code,
                    format: SenseFormat::Fixed,
                    deferred: response_code == 0x71,
                    key,
                    asc: byte(b, 12),
                    ascq: byte(b, 13),
                    asc_present: len > 13,
                    information,
                    field_pointer: field_pointer(key, array(b, 15)),
                })
            }
            0x72 | 0x73 => {
                let key = SenseKey(byte(buf, 1) & 0xf);
                let mut information = None;
                let mut fp = None;
                if buf.len() > 8 {
                    let end = buf.len().min(byte(buf, 7) as usize + 8);
                    let mut off = 8;
                    // Each descriptor: type, ADDITIONAL LENGTH, then that many bytes
                    // (cut to the end of the sense data).
                    while off + 2 <= end {
                        let Some([kind, dlen]) = array(buf, off) else {
                            break;
                        };
                        let dlen = dlen as usize;
                        let d = buf.get(off..end.min(off + 2 + dlen)).unwrap_or(&[]);
                        match kind {
                            // Information: type, 0x0a, VALID|rsvd, rsvd, 8-byte field.
                            0x00 if byte(d, 2) & 0x80 != 0 => {
                                information = information.or(be64(d, 4));
                            }
                            // Sense key specific: type, 0x06, rsvd, rsvd, 3 bytes, rsvd.
                            0x02 => fp = fp.or(field_pointer(key, array(d, 4))),
                            _ => {}
                        }
                        off += 2 + dlen;
                    }
                }
                Ok(SenseData {
                    response_code,
                    format: SenseFormat::Descriptor,
                    deferred: response_code == 0x73,
                    key,
                    asc: byte(buf, 2),
                    ascq: byte(buf, 3),
                    asc_present: buf.len() > 3,
                    information,
                    field_pointer: fp,
                })
            }
            other => Err(SenseError::UnknownResponseCode(other)),
        }
    }

    /// The ASC/ASCQ text, if known.
    pub fn asc_text(&self) -> Option<&'static str> {
        asc_ascq_text(self.asc, self.ascq)
    }

    /// The ASC/ASCQ as sg3_utils would word it: the known text, or its
    /// `ASC=xx, ASCQ=yy (hex)` fallback.
    pub fn asc_description(&self) -> String {
        match self.asc_text() {
            Some(t) => t.to_owned(),
            None => unknown_asc_ascq_text(self.asc, self.ascq),
        }
    }

    /// Whether key, ASC and ASCQ are exactly these.
    pub fn is(&self, key: SenseKey, asc: u8, ascq: u8) -> bool {
        self.key == key && self.asc == asc && self.ascq == ascq
    }

    /// The multi-line form of sg3_utils' `sg_get_sense_str` for the fields decoded here:
    ///
    /// ```text
    /// Fixed format, current; Sense key: Illegal Request
    /// Additional sense: Logical unit not supported
    /// ```
    ///
    /// plus `  Info fld=0x.. [..] ` and `  Sense Key Specific: Error in Command: byte N`
    /// lines when present. Descriptor lists are not itemised as sg3_utils does.
    pub fn to_sg_string(&self) -> String {
        use std::fmt::Write;
        let fmt_name = match (self.format, self.deferred) {
            (SenseFormat::Fixed, false) => "Fixed format, current",
            (SenseFormat::Fixed, true) => "Fixed format, <<<deferred>>>",
            (SenseFormat::Descriptor, false) => "Descriptor format, current",
            (SenseFormat::Descriptor, true) => "Descriptor format, <<<deferred>>>",
        };
        let mut s = format!("{fmt_name}; Sense key: {}\n", self.key);
        if self.asc_present {
            let text = match self.asc_text() {
                Some(t) => format!("Additional sense: {t}"),
                None => unknown_asc_ascq_text(self.asc, self.ascq),
            };
            let _ = writeln!(s, "{text}");
        }
        if let Some(info) = self.information {
            let _ = writeln!(s, "  Info fld=0x{info:x} [{info}] ");
        }
        if let Some(fp) = self.field_pointer {
            let _ = write!(
                s,
                "  Sense Key Specific: Error in {}: byte {}",
                if fp.in_cdb {
                    "Command"
                } else {
                    "Data parameters"
                },
                fp.byte
            );
            match fp.bit {
                Some(bit) => {
                    let _ = writeln!(s, " bit {bit}");
                }
                None => s.push('\n'),
            }
        }
        s
    }
}

/// One line: `Illegal Request: Logical unit not supported (asc=0x25, ascq=0x00)`, with
/// sg3_utils' sense key names and ASC texts; an unknown code reads `Illegal Request:
/// ASC=5d, ASCQ=00 (hex)`. A deferred error gets a `[deferred] ` prefix and a valid
/// INFORMATION field an ` Info fld=0x.. [..]` suffix.
impl fmt::Display for SenseData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.deferred {
            f.write_str("[deferred] ")?;
        }
        match self.asc_text() {
            Some(t) => write!(
                f,
                "{}: {t} (asc=0x{:02x}, ascq=0x{:02x})",
                self.key, self.asc, self.ascq
            )?,
            None => write!(
                f,
                "{}: {}",
                self.key,
                unknown_asc_ascq_text(self.asc, self.ascq)
            )?,
        }
        if let Some(info) = self.information {
            write!(f, " Info fld=0x{info:x} [{info}]")?;
        }
        Ok(())
    }
}

/// Builds fixed-format sense data (18 bytes) the way QEMU's `scsi_build_sense` does:
/// `70 00 key 00 00 00 00 0a 00 00 00 00 asc ascq 00 00 00 00`. Handy for tests and for
/// synthesising sense for errors detected on the driver side.
pub const fn fixed_sense(key: SenseKey, asc: u8, ascq: u8) -> [u8; 18] {
    let mut b = [0u8; 18];
    b[0] = 0x70;
    b[2] = key.0 & 0xf;
    b[7] = 10;
    b[12] = asc;
    b[13] = ascq;
    b
}

/// Builds descriptor-format sense data (8 bytes, no descriptors), as QEMU does when the
/// initiator asked for descriptor sense: `72 key asc ascq 00 00 00 00`.
pub const fn descriptor_sense(key: SenseKey, asc: u8, ascq: u8) -> [u8; 8] {
    [0x72, key.0 & 0xf, asc, ascq, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU's answer to a command for a missing LUN: CHECK CONDITION, ILLEGAL REQUEST,
    /// LOGICAL UNIT NOT SUPPORTED, fixed format.
    const LUN_NOT_SUPPORTED_FIXED: [u8; 18] = [
        0x70, 0, 0x05, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x25, 0x00, 0, 0, 0, 0,
    ];
    /// The same, descriptor format.
    const LUN_NOT_SUPPORTED_DESC: [u8; 8] = [0x72, 0x05, 0x25, 0x00, 0, 0, 0, 0];
    /// Unit attention after a capacity change (QEMU `scsi_device_report_change`).
    const UA_CAPACITY_CHANGED: [u8; 18] = [
        0x70, 0, 0x06, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x2a, 0x09, 0, 0, 0, 0,
    ];
    /// Unit attention, power on / reset, descriptor format.
    const UA_RESET_DESC: [u8; 8] = [0x72, 0x06, 0x29, 0x00, 0, 0, 0, 0];
    /// Medium error with a valid INFORMATION field (LBA 0x12345) and ILI clear.
    const MEDIUM_ERROR_INFO: [u8; 18] = [
        0xf0, 0, 0x03, 0x00, 0x01, 0x23, 0x45, 0x0a, 0, 0, 0, 0, 0x11, 0x00, 0, 0, 0, 0,
    ];
    /// Descriptor-format ILLEGAL REQUEST / INVALID FIELD IN CDB with an information
    /// descriptor and a sense-key-specific descriptor pointing at CDB byte 1 bit 4.
    const DESC_WITH_DESCRIPTORS: [u8; 28] = [
        0x72, 0x05, 0x24, 0x00, 0, 0, 0, 20, // header, 20 bytes of descriptors
        0x00, 0x0a, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x00, // information 0x1000
        0x02, 0x06, 0, 0, 0xcc, 0x00, 0x01, 0, // SKSV|C/D|BPV|bit 4, byte 1
    ];

    #[test]
    fn status_names() {
        assert_eq!(ScsiStatus::CHECK_CONDITION.to_string(), "CHECK CONDITION");
        assert_eq!(ScsiStatus(0x28).to_string(), "TASK SET FULL");
        assert_eq!(ScsiStatus(0x40).name(), Some("TASK ABORTED"));
        assert_eq!(ScsiStatus(0x30).name(), Some("ACA ACTIVE"));
        assert_eq!(ScsiStatus(0x18).name(), Some("RESERVATION CONFLICT"));
        assert_eq!(ScsiStatus(0x01).to_string(), "reserved status 0x01");
        assert!(ScsiStatus::GOOD.is_good());
        assert!(ScsiStatus::CONDITION_MET.is_success());
        assert!(!ScsiStatus::BUSY.is_success());
    }

    #[test]
    fn fixed_lun_not_supported() {
        let s = SenseData::parse(&LUN_NOT_SUPPORTED_FIXED).unwrap();
        assert_eq!(s.format, SenseFormat::Fixed);
        assert!(!s.deferred);
        assert!(s.is(SenseKey::ILLEGAL_REQUEST, 0x25, 0));
        assert!(s.asc_present);
        assert_eq!(s.information, None);
        assert_eq!(
            s.to_string(),
            "Illegal Request: Logical unit not supported (asc=0x25, ascq=0x00)"
        );
        assert_eq!(
            s.to_sg_string(),
            "Fixed format, current; Sense key: Illegal Request\n\
             Additional sense: Logical unit not supported\n"
        );
        assert_eq!(
            fixed_sense(SenseKey::ILLEGAL_REQUEST, 0x25, 0),
            LUN_NOT_SUPPORTED_FIXED
        );
    }

    #[test]
    fn descriptor_lun_not_supported() {
        let s = SenseData::parse(&LUN_NOT_SUPPORTED_DESC).unwrap();
        assert_eq!(s.format, SenseFormat::Descriptor);
        assert!(s.is(SenseKey::ILLEGAL_REQUEST, 0x25, 0));
        assert_eq!(
            s.to_sg_string(),
            "Descriptor format, current; Sense key: Illegal Request\n\
             Additional sense: Logical unit not supported\n"
        );
        assert_eq!(
            descriptor_sense(SenseKey::ILLEGAL_REQUEST, 0x25, 0),
            LUN_NOT_SUPPORTED_DESC
        );
    }

    #[test]
    fn unit_attentions() {
        let s = SenseData::parse(&UA_CAPACITY_CHANGED).unwrap();
        assert!(s.is(SenseKey::UNIT_ATTENTION, 0x2a, 0x09));
        assert_eq!(
            s.to_string(),
            "Unit Attention: Capacity data has changed (asc=0x2a, ascq=0x09)"
        );
        let s = SenseData::parse(&UA_RESET_DESC).unwrap();
        assert_eq!(s.key, SenseKey::UNIT_ATTENTION);
        assert_eq!(
            s.asc_text(),
            Some("Power on, reset, or bus device reset occurred")
        );
        let s = SenseData::parse(&fixed_sense(SenseKey::UNIT_ATTENTION, 0x3f, 0x0e)).unwrap();
        assert_eq!(s.asc_text(), Some("Reported luns data has changed"));
    }

    #[test]
    fn information_and_deferred() {
        let s = SenseData::parse(&MEDIUM_ERROR_INFO).unwrap();
        assert_eq!(s.key, SenseKey::MEDIUM_ERROR);
        assert_eq!(s.information, Some(0x12345));
        assert_eq!(
            s.to_string(),
            "Medium Error: Unrecovered read error (asc=0x11, ascq=0x00) Info fld=0x12345 [74565]"
        );
        assert!(s.to_sg_string().contains("  Info fld=0x12345 [74565] \n"));
        // Without VALID the field is ignored.
        let mut b = MEDIUM_ERROR_INFO;
        b[0] = 0x71;
        let s = SenseData::parse(&b).unwrap();
        assert_eq!(s.information, None);
        assert!(s.deferred);
        assert!(s.to_string().starts_with("[deferred] Medium Error"));
        assert!(s
            .to_sg_string()
            .starts_with("Fixed format, <<<deferred>>>;"));
    }

    #[test]
    fn descriptors() {
        let s = SenseData::parse(&DESC_WITH_DESCRIPTORS).unwrap();
        assert_eq!(s.information, Some(0x1000));
        assert_eq!(
            s.field_pointer,
            Some(FieldPointer {
                in_cdb: true,
                byte: 1,
                bit: Some(4)
            })
        );
        assert!(s
            .to_sg_string()
            .ends_with("  Sense Key Specific: Error in Command: byte 1 bit 4\n"));
        let mut fixed = fixed_sense(SenseKey::ILLEGAL_REQUEST, 0x24, 0);
        fixed[15] = 0xc0; // SKSV, C/D, no BPV
        fixed[17] = 2;
        let s = SenseData::parse(&fixed).unwrap();
        assert_eq!(
            s.field_pointer,
            Some(FieldPointer {
                in_cdb: true,
                byte: 2,
                bit: None
            })
        );
    }

    #[test]
    fn unknown_codes_and_errors() {
        let s = SenseData::parse(&fixed_sense(SenseKey::HARDWARE_ERROR, 0x80, 0x01)).unwrap();
        assert_eq!(
            s.to_string(),
            "Hardware Error: vendor specific ASC=80, ASCQ=01 (hex)"
        );
        assert_eq!(SenseData::parse(&[]), Err(SenseError::Empty));
        assert_eq!(
            SenseData::parse(&[0x7f, 1, 2]),
            Err(SenseError::UnknownResponseCode(0x7f))
        );
        assert_eq!(
            SenseData::parse(&[0x00; 18]),
            Err(SenseError::UnknownResponseCode(0))
        );
        assert!(SenseError::UnknownResponseCode(0x7f)
            .to_string()
            .contains("0x7f"));
    }

    #[test]
    fn short_additional_length_hides_asc() {
        // ADDITIONAL SENSE LENGTH 4: bytes 12/13 are beyond the sense data.
        let mut b = LUN_NOT_SUPPORTED_FIXED;
        b[7] = 4;
        let s = SenseData::parse(&b).unwrap();
        assert_eq!((s.asc, s.ascq, s.asc_present), (0, 0, false));
        assert_eq!(s.key, SenseKey::ILLEGAL_REQUEST);
    }

    #[test]
    fn every_prefix_parses_without_panic() {
        let samples: [&[u8]; 6] = [
            &LUN_NOT_SUPPORTED_FIXED,
            &LUN_NOT_SUPPORTED_DESC,
            &UA_CAPACITY_CHANGED,
            &UA_RESET_DESC,
            &MEDIUM_ERROR_INFO,
            &DESC_WITH_DESCRIPTORS,
        ];
        for sample in samples {
            for n in 0..=sample.len() {
                match SenseData::parse(&sample[..n]) {
                    Ok(s) => {
                        let _ = (s.to_string(), s.to_sg_string());
                        if n < 14 && s.format == SenseFormat::Fixed {
                            assert!(!s.asc_present);
                        }
                    }
                    Err(e) => assert_eq!((n, e), (0, SenseError::Empty)),
                }
            }
        }
        // A fixed sense truncated to 3 bytes still gives the key.
        let s = SenseData::parse(&UA_CAPACITY_CHANGED[..3]).unwrap();
        assert_eq!(s.key, SenseKey::UNIT_ATTENTION);
        // Descriptor lengths pointing past the end, and garbage, are tolerated.
        let mut garbage = DESC_WITH_DESCRIPTORS;
        garbage[7] = 0xff;
        garbage[9] = 0xff;
        assert!(SenseData::parse(&garbage).is_ok());
        for fill in [0x00u8, 0x80, 0xff] {
            let mut b = [fill; 40];
            b[0] = 0x72;
            assert!(SenseData::parse(&b).is_ok());
            b[0] = 0xf0;
            assert!(SenseData::parse(&b).is_ok());
        }
    }
}
