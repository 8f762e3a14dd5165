//! Additional sense code texts.
//!
//! The codes a disk, a CD-ROM or QEMU's SCSI emulation actually report, with the
//! wording sg3_utils uses (`lib/sg_lib_data.c`, which follows T10's `asc-num.txt`), so
//! our messages read like `sg_decode_sense`'s. Not the full T10 list.

/// `(asc, ascq, text)`, sorted by `(asc, ascq)` for binary search.
static ASC_ASCQ: &[(u8, u8, &str)] = &[
    (0x00, 0x00, "No additional sense information"),
    (0x00, 0x06, "I/O process terminated"),
    (0x00, 0x16, "operation in progress"),
    (0x00, 0x17, "Cleaning requested"),
    (0x00, 0x1d, "ATA pass through information available"),
    (0x01, 0x00, "No index/sector signal"),
    (0x02, 0x00, "No seek complete"),
    (0x03, 0x00, "Peripheral device write fault"),
    (0x04, 0x00, "Logical unit not ready, cause not reportable"),
    (0x04, 0x01, "Logical unit is in process of becoming ready"),
    (
        0x04,
        0x02,
        "Logical unit not ready, initializing command required",
    ),
    (
        0x04,
        0x03,
        "Logical unit not ready, manual intervention required",
    ),
    (0x04, 0x04, "Logical unit not ready, format in progress"),
    (0x04, 0x05, "Logical unit not ready, rebuild in progress"),
    (
        0x04,
        0x06,
        "Logical unit not ready, recalculation in progress",
    ),
    (0x04, 0x07, "Logical unit not ready, operation in progress"),
    (0x04, 0x08, "Logical unit not ready, long write in progress"),
    (0x04, 0x09, "Logical unit not ready, self-test in progress"),
    (
        0x04,
        0x0a,
        "Logical unit not accessible, asymmetric access state transition",
    ),
    (
        0x04,
        0x0b,
        "Logical unit not accessible, target port in standby state",
    ),
    (
        0x04,
        0x0c,
        "Logical unit not accessible, target port in unavailable state",
    ),
    (
        0x04,
        0x11,
        "Logical unit not ready, notify (enable spinup) required",
    ),
    (0x04, 0x12, "Logical unit not ready, offline"),
    (
        0x04,
        0x14,
        "Logical unit not ready, space allocation in progress",
    ),
    (
        0x04,
        0x1a,
        "Logical unit not ready, start stop unit command in progress",
    ),
    (0x04, 0x1b, "Logical unit not ready, sanitize in progress"),
    (0x04, 0x22, "Logical unit not ready, power cycle required"),
    (0x04, 0x24, "Depopulation in progress"),
    (0x04, 0x25, "Depopulation restoration in progress"),
    (0x05, 0x00, "Logical unit does not respond to selection"),
    (0x08, 0x00, "Logical unit communication failure"),
    (0x08, 0x01, "Logical unit communication time-out"),
    (0x08, 0x02, "Logical unit communication parity error"),
    (0x0b, 0x00, "Warning"),
    (0x0b, 0x01, "Warning - specified temperature exceeded"),
    (0x0c, 0x00, "Write error"),
    (0x0c, 0x01, "Write error - recovered with auto reallocation"),
    (0x0c, 0x02, "Write error - auto reallocation failed"),
    (0x0c, 0x03, "Write error - recommend reassignment"),
    (0x10, 0x00, "Id CRC or ECC error"),
    (0x10, 0x01, "Logical block guard check failed"),
    (0x10, 0x02, "Logical block application tag check failed"),
    (0x10, 0x03, "Logical block reference tag check failed"),
    (0x11, 0x00, "Unrecovered read error"),
    (0x11, 0x01, "Read retries exhausted"),
    (0x11, 0x02, "Error too long to correct"),
    (0x11, 0x03, "Multiple read errors"),
    (
        0x11,
        0x04,
        "Unrecovered read error - auto reallocate failed",
    ),
    (
        0x11,
        0x0b,
        "Unrecovered read error - recommend reassignment",
    ),
    (
        0x11,
        0x0c,
        "Unrecovered read error - recommend rewrite the data",
    ),
    (0x14, 0x00, "Recorded entity not found"),
    (0x14, 0x01, "Record not found"),
    (0x15, 0x00, "Random positioning error"),
    (
        0x17,
        0x00,
        "Recovered data with no error correction applied",
    ),
    (0x17, 0x01, "Recovered data with retries"),
    (0x18, 0x00, "Recovered data with error correction applied"),
    (0x1a, 0x00, "Parameter list length error"),
    (0x1d, 0x00, "Miscompare during verify operation"),
    (0x20, 0x00, "Invalid command operation code"),
    (0x20, 0x02, "Access denied - no access rights"),
    (0x20, 0x09, "Access denied - invalid LU identifier"),
    (0x21, 0x00, "Logical block address out of range"),
    (0x21, 0x01, "Invalid element address"),
    (0x21, 0x02, "Invalid address for write"),
    (0x21, 0x04, "Unaligned write command"),
    (0x21, 0x05, "Write boundary violation"),
    (0x21, 0x06, "Attempt to read invalid data"),
    (0x21, 0x07, "Read boundary violation"),
    (0x24, 0x00, "Invalid field in cdb"),
    (0x25, 0x00, "Logical unit not supported"),
    (0x26, 0x00, "Invalid field in parameter list"),
    (0x26, 0x01, "Parameter not supported"),
    (0x26, 0x02, "Parameter value invalid"),
    (0x26, 0x04, "Invalid release of persistent reservation"),
    (0x27, 0x00, "Write protected"),
    (0x27, 0x01, "Hardware write protected"),
    (0x27, 0x02, "Logical unit software write protected"),
    (0x27, 0x03, "Associated write protect"),
    (0x27, 0x04, "Persistent write protect"),
    (0x27, 0x05, "Permanent write protect"),
    (0x27, 0x06, "Conditional write protect"),
    (0x27, 0x07, "Space allocation failed write protect"),
    (
        0x28,
        0x00,
        "Not ready to ready change, medium may have changed",
    ),
    (0x28, 0x01, "Import or export element accessed"),
    (0x29, 0x00, "Power on, reset, or bus device reset occurred"),
    (0x29, 0x01, "Power on occurred"),
    (0x29, 0x02, "SCSI bus reset occurred"),
    (0x29, 0x03, "Bus device reset function occurred"),
    (0x29, 0x04, "Device internal reset"),
    (0x29, 0x05, "Transceiver mode changed to single-ended"),
    (0x29, 0x06, "Transceiver mode changed to lvd"),
    (0x29, 0x07, "I_T nexus loss occurred"),
    (0x2a, 0x00, "Parameters changed"),
    (0x2a, 0x01, "Mode parameters changed"),
    (0x2a, 0x02, "Log parameters changed"),
    (0x2a, 0x03, "Reservations preempted"),
    (0x2a, 0x04, "Reservations released"),
    (0x2a, 0x05, "Registrations preempted"),
    (0x2a, 0x06, "Asymmetric access state changed"),
    (
        0x2a,
        0x07,
        "Implicit asymmetric access state transition failed",
    ),
    (0x2a, 0x08, "Priority changed"),
    (0x2a, 0x09, "Capacity data has changed"),
    (0x2a, 0x10, "Timestamp changed"),
    (0x2c, 0x00, "Command sequence error"),
    (0x2f, 0x00, "Commands cleared by another initiator"),
    (0x2f, 0x01, "Commands cleared by power loss notification"),
    (0x2f, 0x02, "Commands cleared by device server"),
    (0x30, 0x00, "Incompatible medium installed"),
    (0x30, 0x01, "Cannot read medium - unknown format"),
    (0x30, 0x02, "Cannot read medium - incompatible format"),
    (0x31, 0x00, "Medium format corrupted"),
    (0x31, 0x01, "Format command failed"),
    (0x32, 0x00, "No defect spare location available"),
    (0x38, 0x07, "Thin provisioning soft threshold reached"),
    (0x39, 0x00, "Saving parameters not supported"),
    (0x3a, 0x00, "Medium not present"),
    (0x3a, 0x01, "Medium not present - tray closed"),
    (0x3a, 0x02, "Medium not present - tray open"),
    (0x3a, 0x03, "Medium not present - loadable"),
    (0x3e, 0x00, "Logical unit has not self-configured yet"),
    (0x3e, 0x01, "Logical unit failure"),
    (0x3e, 0x02, "Timeout on logical unit"),
    (0x3e, 0x03, "Logical unit failed self-test"),
    (0x3f, 0x00, "Target operating conditions have changed"),
    (0x3f, 0x01, "Microcode has been changed"),
    (0x3f, 0x02, "Changed operating definition"),
    (0x3f, 0x03, "Inquiry data has changed"),
    (0x3f, 0x04, "Component device attached"),
    (0x3f, 0x05, "Device identifier changed"),
    (0x3f, 0x0e, "Reported luns data has changed"),
    (0x3f, 0x0f, "Echo buffer overwritten"),
    (0x3f, 0x10, "Medium loadable"),
    (0x43, 0x00, "Message error"),
    (0x44, 0x00, "Internal target failure"),
    (0x44, 0x01, "Persistent reservation information lost"),
    (0x45, 0x00, "Select or reselect failure"),
    (0x46, 0x00, "Unsuccessful soft reset"),
    (0x47, 0x00, "SCSI parity error"),
    (0x47, 0x01, "Data phase CRC error detected"),
    (0x48, 0x00, "Initiator detected error message received"),
    (0x49, 0x00, "Invalid message error"),
    (0x4a, 0x00, "Command phase error"),
    (0x4b, 0x00, "Data phase error"),
    (0x4b, 0x02, "Too much write data"),
];

/// The text for `asc`/`ascq`, if it is in the table (sg3_utils wording, without its
/// "Additional sense: " prefix).
pub fn asc_ascq_text(asc: u8, ascq: u8) -> Option<&'static str> {
    ASC_ASCQ
        .binary_search_by_key(&(asc, ascq), |&(a, q, _)| (a, q))
        .ok()
        .map(|i| ASC_ASCQ[i].2)
}

/// What sg3_utils prints for a code it has no text for (`sg_get_asc_ascq_str`):
/// `vendor specific ASC=80, ASCQ=00 (hex)`, `ASC=29, vendor specific qualification
/// ASCQ=81 (hex)` or `ASC=5d, ASCQ=00 (hex)`.
pub fn unknown_asc_ascq_text(asc: u8, ascq: u8) -> String {
    if asc >= 0x80 {
        format!("vendor specific ASC={asc:02x}, ASCQ={ascq:02x} (hex)")
    } else if ascq >= 0x80 {
        format!("ASC={asc:02x}, vendor specific qualification ASCQ={ascq:02x} (hex)")
    } else {
        format!("ASC={asc:02x}, ASCQ={ascq:02x} (hex)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        assert!(ASC_ASCQ
            .windows(2)
            .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
    }

    #[test]
    fn lookups() {
        assert_eq!(asc_ascq_text(0x25, 0), Some("Logical unit not supported"));
        assert_eq!(asc_ascq_text(0x2a, 0x09), Some("Capacity data has changed"));
        assert_eq!(
            asc_ascq_text(0x3f, 0x0e),
            Some("Reported luns data has changed")
        );
        assert_eq!(asc_ascq_text(0x29, 0x99), None);
        assert_eq!(
            unknown_asc_ascq_text(0x80, 1),
            "vendor specific ASC=80, ASCQ=01 (hex)"
        );
        assert_eq!(
            unknown_asc_ascq_text(0x29, 0x81),
            "ASC=29, vendor specific qualification ASCQ=81 (hex)"
        );
        assert_eq!(unknown_asc_ascq_text(0x5d, 0), "ASC=5d, ASCQ=00 (hex)");
    }
}
