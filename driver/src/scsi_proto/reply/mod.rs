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

mod capacity;
mod inquiry;
mod mode;
mod report_luns;
mod vpd;

pub use capacity::{ReadCapacity10, ReadCapacity16};
pub use inquiry::{linux_scsi_level, Inquiry, LunPresence, PeripheralType};
pub use mode::{CachingPage, ModePage, ModePages, ModeParameterHeader, ModeSense};
pub use report_luns::ReportLuns;
pub use vpd::{
    BlockDeviceCharacteristics, BlockLimits, Designator, DeviceIdentification,
    LogicalBlockProvisioning, SupportedVpdPages, UnitSerialNumber, VpdPage,
};

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

/// The error for a reply of `buf.len()` bytes when `needed` hold `fields`.
fn too_short(buf: &[u8], needed: usize, what: &'static str, fields: &'static str) -> ReplyError {
    ReplyError::TooShort {
        what,
        fields,
        needed,
        got: buf.len(),
    }
}

/// `Ok` if `buf` has at least `needed` bytes, else [`ReplyError::TooShort`].
fn need(
    buf: &[u8],
    needed: usize,
    what: &'static str,
    fields: &'static str,
) -> Result<(), ReplyError> {
    if buf.len() < needed {
        Err(too_short(buf, needed, what, fields))
    } else {
        Ok(())
    }
}

/// Feeds every prefix of `sample` to `parse`: a reply cut anywhere must not panic.
#[cfg(test)]
fn every_prefix<T>(sample: &[u8], parse: impl Fn(&[u8]) -> Result<T, ReplyError>) {
    for n in 0..=sample.len() {
        let _ = parse(&sample[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
