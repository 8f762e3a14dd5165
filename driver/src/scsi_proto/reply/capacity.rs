//! READ CAPACITY(10) and READ CAPACITY(16) replies.

use serde::Serialize;

use super::{too_short, ReplyError};
use crate::scsi_proto::bytes::{be32, be64, byte};

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
        let (Some(returned_lba), Some(block_length)) = (be32(buf, 0), be32(buf, 4)) else {
            return Err(too_short(
                buf,
                8,
                "READ CAPACITY(10)",
                "the last LBA and block length",
            ));
        };
        Ok(ReadCapacity10 {
            returned_lba,
            block_length,
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
        let (Some(returned_lba), Some(block_length)) = (be64(buf, 0), be32(buf, 8)) else {
            return Err(too_short(
                buf,
                12,
                "READ CAPACITY(16)",
                "the last LBA and block length",
            ));
        };
        let b12 = byte(buf, 12);
        let b13 = byte(buf, 13);
        let b14 = byte(buf, 14);
        Ok(ReadCapacity16 {
            returned_lba,
            block_length,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi_proto::reply::every_prefix;

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
}
