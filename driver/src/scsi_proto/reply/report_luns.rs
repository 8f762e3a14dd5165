//! REPORT LUNS replies.

use serde::Serialize;

use super::{too_short, ReplyError};
use crate::scsi_proto::bytes::be32;
use crate::scsi_proto::lun::ScsiLun;

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
        let Some(list_length) = be32(buf, 0) else {
            return Err(too_short(buf, 4, "REPORT LUNS", "the LUN LIST LENGTH"));
        };
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
    use crate::scsi_proto::reply::every_prefix;

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
}
