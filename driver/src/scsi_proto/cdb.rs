//! Command descriptor block builders.
//!
//! Every builder returns a [`Cdb`]: up to 16 bytes inline plus a length, no heap
//! allocation, so the READ/WRITE builders can sit on the I/O path. Field layouts follow
//! SPC-4/SBC-3; the choices that matter for interoperability (what Linux sends during a
//! scan and revalidation, what QEMU accepts) are noted on each function. Multi-byte
//! fields are big-endian.

use std::fmt;

/// Operation codes used by this module.
pub mod opcode {
    /// TEST UNIT READY (6).
    pub const TEST_UNIT_READY: u8 = 0x00;
    /// REQUEST SENSE (6).
    pub const REQUEST_SENSE: u8 = 0x03;
    /// INQUIRY (6).
    pub const INQUIRY: u8 = 0x12;
    /// MODE SENSE(6).
    pub const MODE_SENSE_6: u8 = 0x1a;
    /// START STOP UNIT (6).
    pub const START_STOP_UNIT: u8 = 0x1b;
    /// READ CAPACITY(10).
    pub const READ_CAPACITY_10: u8 = 0x25;
    /// READ(10).
    pub const READ_10: u8 = 0x28;
    /// WRITE(10).
    pub const WRITE_10: u8 = 0x2a;
    /// SYNCHRONIZE CACHE(10).
    pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
    /// UNMAP (10).
    pub const UNMAP: u8 = 0x42;
    /// MODE SENSE(10).
    pub const MODE_SENSE_10: u8 = 0x5a;
    /// READ(16).
    pub const READ_16: u8 = 0x88;
    /// WRITE(16).
    pub const WRITE_16: u8 = 0x8a;
    /// SYNCHRONIZE CACHE(16).
    pub const SYNCHRONIZE_CACHE_16: u8 = 0x91;
    /// WRITE SAME(16).
    pub const WRITE_SAME_16: u8 = 0x93;
    /// SERVICE ACTION IN(16); READ CAPACITY(16) is its service action 0x10.
    pub const SERVICE_ACTION_IN_16: u8 = 0x9e;
    /// REPORT LUNS (12).
    pub const REPORT_LUNS: u8 = 0xa0;
    /// Service action of SERVICE ACTION IN(16) that means READ CAPACITY(16).
    pub const SAI_READ_CAPACITY_16: u8 = 0x10;
}

/// Mode page codes used by the disk revalidation path.
pub mod mode_page {
    /// Read-write error recovery page.
    pub const RW_ERROR_RECOVERY: u8 = 0x01;
    /// Caching page (WCE, RCD).
    pub const CACHING: u8 = 0x08;
    /// Control page.
    pub const CONTROL: u8 = 0x0a;
    /// "Return all pages".
    pub const ALL: u8 = 0x3f;
}

/// VPD page codes.
pub mod vpd_page {
    /// Supported VPD pages.
    pub const SUPPORTED_PAGES: u8 = 0x00;
    /// Unit serial number.
    pub const UNIT_SERIAL_NUMBER: u8 = 0x80;
    /// Device identification.
    pub const DEVICE_IDENTIFICATION: u8 = 0x83;
    /// Block limits (SBC).
    pub const BLOCK_LIMITS: u8 = 0xb0;
    /// Block device characteristics (SBC).
    pub const BLOCK_DEVICE_CHARACTERISTICS: u8 = 0xb1;
    /// Logical block provisioning (SBC).
    pub const LOGICAL_BLOCK_PROVISIONING: u8 = 0xb2;
}

/// A CDB of up to 16 bytes, stored inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Cdb {
    bytes: [u8; 16],
    len: u8,
}

impl Cdb {
    /// Largest CDB this type holds.
    pub const MAX_LEN: usize = 16;

    /// A CDB from raw bytes; `None` if longer than 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > Self::MAX_LEN {
            return None;
        }
        let mut c = Cdb {
            bytes: [0; 16],
            len: bytes.len() as u8,
        };
        c.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(c)
    }

    const fn zeroed(opcode: u8, len: u8) -> Self {
        let mut bytes = [0u8; 16];
        bytes[0] = opcode;
        Cdb { bytes, len }
    }

    /// The CDB bytes (6, 10, 12 or 16 of them).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// The CDB length in bytes.
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the CDB is empty (only possible through [`Cdb::from_slice`]).
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The operation code (byte 0; 0 for an empty CDB).
    pub const fn opcode(&self) -> u8 {
        self.bytes[0]
    }

    fn put_be16(&mut self, at: usize, v: u16) {
        self.bytes[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }

    fn put_be32(&mut self, at: usize, v: u32) {
        self.bytes[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    fn put_be64(&mut self, at: usize, v: u64) {
        self.bytes[at..at + 8].copy_from_slice(&v.to_be_bytes());
    }
}

impl fmt::Debug for Cdb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cdb[")?;
        for (i, b) in self.as_bytes().iter().enumerate() {
            if i > 0 {
                write!(f, " ")?;
            }
            write!(f, "{b:02x}")?;
        }
        write!(f, "]")
    }
}

impl AsRef<[u8]> for Cdb {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// A request a CDB (or a parameter list) cannot express.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CdbError {
    /// The LBA needs more bits than the CDB's LBA field has.
    #[error("LBA {lba} does not fit the {bits}-bit LBA field of a {cdb_len}-byte CDB")]
    LbaTooLarge {
        /// The LBA asked for.
        lba: u64,
        /// Width of the field.
        bits: u8,
        /// The CDB size.
        cdb_len: u8,
    },
    /// The block count needs more bits than the CDB's length field has.
    #[error("{blocks} blocks do not fit the {bits}-bit transfer length of a {cdb_len}-byte CDB")]
    TooManyBlocks {
        /// The count asked for.
        blocks: u64,
        /// Width of the field.
        bits: u8,
        /// The CDB size.
        cdb_len: u8,
    },
    /// The caller's buffer is too small for the parameter list.
    #[error("the UNMAP parameter list needs {needed} bytes, the buffer has {got}")]
    BufferTooSmall {
        /// Bytes the parameter list needs.
        needed: usize,
        /// Bytes in the buffer.
        got: usize,
    },
    /// More descriptors than the 16-bit UNMAP length fields can describe.
    #[error("{0} UNMAP block descriptors exceed the 16-bit parameter list length (at most 4095)")]
    TooManyDescriptors(usize),
}

/// Page control of MODE SENSE: which values to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PageControl {
    /// Current values (`00b`).
    #[default]
    Current = 0,
    /// Changeable values mask (`01b`).
    Changeable = 1,
    /// Default values (`10b`).
    Default = 2,
    /// Saved values (`11b`); QEMU answers SAVING PARAMETERS NOT SUPPORTED.
    Saved = 3,
}

/// TEST UNIT READY: `00 00 00 00 00 00`.
pub const fn test_unit_ready() -> Cdb {
    Cdb::zeroed(opcode::TEST_UNIT_READY, 6)
}

/// REQUEST SENSE with descriptor-format sense disabled (DESC=0).
pub const fn request_sense(alloc_len: u8) -> Cdb {
    let mut c = Cdb::zeroed(opcode::REQUEST_SENSE, 6);
    c.bytes[4] = alloc_len;
    c
}

/// Standard INQUIRY (EVPD=0, page code 0) with a 16-bit allocation length in bytes
/// 3..5. Linux's scanner asks for 36 bytes first, then `additional length + 5`.
pub fn inquiry(alloc_len: u16) -> Cdb {
    let mut c = Cdb::zeroed(opcode::INQUIRY, 6);
    c.put_be16(3, alloc_len);
    c
}

/// INQUIRY for VPD page `page` (EVPD=1). Linux first asks for the 4-byte header to learn
/// the page length, then for `page length + 4`.
pub fn inquiry_vpd(page: u8, alloc_len: u16) -> Cdb {
    let mut c = Cdb::zeroed(opcode::INQUIRY, 6);
    c.bytes[1] = 0x01;
    c.bytes[2] = page;
    c.put_be16(3, alloc_len);
    c
}

/// REPORT LUNS with SELECT REPORT `select_report` (0: LUs except well-known ones; 1:
/// well-known only; 2: all) and a 32-bit allocation length in bytes 6..10. QEMU needs
/// at least 16 and `select_report <= 2`; Linux starts with 4096 (= 511 LUNs + header).
pub fn report_luns(select_report: u8, alloc_len: u32) -> Cdb {
    let mut c = Cdb::zeroed(opcode::REPORT_LUNS, 12);
    c.bytes[2] = select_report;
    c.put_be32(6, alloc_len);
    c
}

/// START STOP UNIT with power condition 0 and LOEJ=0: byte 1 bit 0 IMMED, byte 4 bit 0
/// START. Linux's `sd_spinup_disk` sends `1b 01 00 00 01 00` (immediate start).
pub const fn start_stop_unit(immed: bool, start: bool) -> Cdb {
    let mut c = Cdb::zeroed(opcode::START_STOP_UNIT, 6);
    c.bytes[1] = immed as u8;
    c.bytes[4] = start as u8;
    c
}

/// READ CAPACITY(10): 10 bytes, all zero but the opcode; 8-byte reply.
pub const fn read_capacity_10() -> Cdb {
    Cdb::zeroed(opcode::READ_CAPACITY_10, 10)
}

/// READ CAPACITY(16): SERVICE ACTION IN(16) 0x9e, service action 0x10, allocation length
/// in bytes 10..14. Linux asks for 32 bytes (`RC16_LEN`).
pub fn read_capacity_16(alloc_len: u32) -> Cdb {
    let mut c = Cdb::zeroed(opcode::SERVICE_ACTION_IN_16, 16);
    c.bytes[1] = opcode::SAI_READ_CAPACITY_16;
    c.put_be32(10, alloc_len);
    c
}

/// MODE SENSE(6): byte 1 bit 3 DBD, byte 2 `PC << 6 | page`, byte 3 subpage, byte 4
/// allocation length. `page` is masked to 6 bits.
pub const fn mode_sense_6(page: u8, subpage: u8, pc: PageControl, dbd: bool, alloc_len: u8) -> Cdb {
    let mut c = Cdb::zeroed(opcode::MODE_SENSE_6, 6);
    c.bytes[1] = if dbd { 0x08 } else { 0 };
    c.bytes[2] = ((pc as u8) << 6) | (page & 0x3f);
    c.bytes[3] = subpage;
    c.bytes[4] = alloc_len;
    c
}

/// MODE SENSE(10): as MODE SENSE(6) but with a 16-bit allocation length in bytes 7..9
/// and an 8-byte parameter header in the reply (LLBAA is left 0).
pub fn mode_sense_10(page: u8, subpage: u8, pc: PageControl, dbd: bool, alloc_len: u16) -> Cdb {
    let mut c = Cdb::zeroed(opcode::MODE_SENSE_10, 10);
    c.bytes[1] = if dbd { 0x08 } else { 0 };
    c.bytes[2] = ((pc as u8) << 6) | (page & 0x3f);
    c.bytes[3] = subpage;
    c.put_be16(7, alloc_len);
    c
}

const FUA: u8 = 0x08;

fn rw10(op: u8, lba: u64, blocks: u32, fua: bool) -> Result<Cdb, CdbError> {
    let lba32 = u32::try_from(lba).map_err(|_| CdbError::LbaTooLarge {
        lba,
        bits: 32,
        cdb_len: 10,
    })?;
    let n = u16::try_from(blocks).map_err(|_| CdbError::TooManyBlocks {
        blocks: blocks as u64,
        bits: 16,
        cdb_len: 10,
    })?;
    let mut c = Cdb::zeroed(op, 10);
    if fua {
        c.bytes[1] = FUA;
    }
    c.put_be32(2, lba32);
    c.put_be16(7, n);
    Ok(c)
}

fn rw16(op: u8, lba: u64, blocks: u32, fua: bool) -> Cdb {
    let mut c = Cdb::zeroed(op, 16);
    if fua {
        c.bytes[1] = FUA;
    }
    c.put_be64(2, lba);
    c.put_be32(10, blocks);
    c
}

/// READ(10): LBA in bytes 2..6 (32 bits), transfer length in blocks in bytes 7..9 (16
/// bits), FUA is byte 1 bit 3. An error if the LBA or count do not fit. A count of 0
/// transfers nothing (not an error in SBC).
pub fn read_10(lba: u64, blocks: u32, fua: bool) -> Result<Cdb, CdbError> {
    rw10(opcode::READ_10, lba, blocks, fua)
}

/// WRITE(10): layout as [`read_10`].
pub fn write_10(lba: u64, blocks: u32, fua: bool) -> Result<Cdb, CdbError> {
    rw10(opcode::WRITE_10, lba, blocks, fua)
}

/// READ(16): LBA in bytes 2..10 (64 bits), transfer length in bytes 10..14 (32 bits),
/// FUA is byte 1 bit 3.
pub fn read_16(lba: u64, blocks: u32, fua: bool) -> Cdb {
    rw16(opcode::READ_16, lba, blocks, fua)
}

/// WRITE(16): layout as [`read_16`].
pub fn write_16(lba: u64, blocks: u32, fua: bool) -> Cdb {
    rw16(opcode::WRITE_16, lba, blocks, fua)
}

/// READ(10) when the LBA and count fit it, else READ(16) (the choice Linux's sd makes
/// per command once it knows the capacity; a caller that has decided on 16-byte
/// commands for the whole disk calls [`read_16`] directly).
pub fn read(lba: u64, blocks: u32, fua: bool) -> Cdb {
    rw10(opcode::READ_10, lba, blocks, fua)
        .unwrap_or_else(|_| rw16(opcode::READ_16, lba, blocks, fua))
}

/// WRITE(10) when the LBA and count fit it, else WRITE(16).
pub fn write(lba: u64, blocks: u32, fua: bool) -> Cdb {
    rw10(opcode::WRITE_10, lba, blocks, fua)
        .unwrap_or_else(|_| rw16(opcode::WRITE_16, lba, blocks, fua))
}

/// SYNCHRONIZE CACHE(10): byte 1 bit 1 IMMED, LBA bytes 2..6, block count bytes 7..9.
/// `(0, 0)` means the whole medium, which is what Linux sends for a flush.
pub fn synchronize_cache_10(lba: u32, blocks: u16, immed: bool) -> Cdb {
    let mut c = Cdb::zeroed(opcode::SYNCHRONIZE_CACHE_10, 10);
    c.bytes[1] = if immed { 0x02 } else { 0 };
    c.put_be32(2, lba);
    c.put_be16(7, blocks);
    c
}

/// SYNCHRONIZE CACHE(16): byte 1 bit 1 IMMED, LBA bytes 2..10, block count bytes 10..14.
pub fn synchronize_cache_16(lba: u64, blocks: u32, immed: bool) -> Cdb {
    let mut c = Cdb::zeroed(opcode::SYNCHRONIZE_CACHE_16, 16);
    c.bytes[1] = if immed { 0x02 } else { 0 };
    c.put_be64(2, lba);
    c.put_be32(10, blocks);
    c
}

/// UNMAP with a parameter list of `param_len` bytes (bytes 7..9), ANCHOR=0. Build the
/// list with [`unmap_parameter_list`].
pub fn unmap(param_len: u16) -> Cdb {
    let mut c = Cdb::zeroed(opcode::UNMAP, 10);
    c.put_be16(7, param_len);
    c
}

/// One UNMAP block descriptor: `blocks` logical blocks from `lba`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnmapDescriptor {
    /// First LBA to unmap.
    pub lba: u64,
    /// Number of logical blocks.
    pub blocks: u32,
}

/// Bytes of the UNMAP parameter list header.
pub const UNMAP_HEADER_LEN: usize = 8;
/// Bytes of one UNMAP block descriptor.
pub const UNMAP_DESCRIPTOR_LEN: usize = 16;

/// Writes the UNMAP parameter list for `descriptors` into the start of `buf` and
/// returns its length (the value for [`unmap`]).
///
/// Layout (SBC-3 5.28.2): bytes 0..2 UNMAP DATA LENGTH (`n - 2`), bytes 2..4 UNMAP BLOCK
/// DESCRIPTOR DATA LENGTH (`16 * N`), 4 reserved bytes, then per descriptor an 8-byte
/// LBA, a 4-byte block count and 4 reserved bytes. Check the count against the device's
/// MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT (VPD 0xB0; QEMU: 255) before sending.
pub fn unmap_parameter_list(
    buf: &mut [u8],
    descriptors: &[UnmapDescriptor],
) -> Result<usize, CdbError> {
    let desc_len = descriptors
        .len()
        .checked_mul(UNMAP_DESCRIPTOR_LEN)
        .filter(|&l| l + UNMAP_HEADER_LEN <= u16::MAX as usize)
        .ok_or(CdbError::TooManyDescriptors(descriptors.len()))?;
    let total = UNMAP_HEADER_LEN + desc_len;
    if buf.len() < total {
        return Err(CdbError::BufferTooSmall {
            needed: total,
            got: buf.len(),
        });
    }
    buf[0..2].copy_from_slice(&((total - 2) as u16).to_be_bytes());
    buf[2..4].copy_from_slice(&(desc_len as u16).to_be_bytes());
    buf[4..8].fill(0);
    for (d, chunk) in descriptors
        .iter()
        .zip(buf[UNMAP_HEADER_LEN..total].chunks_exact_mut(UNMAP_DESCRIPTOR_LEN))
    {
        chunk[0..8].copy_from_slice(&d.lba.to_be_bytes());
        chunk[8..12].copy_from_slice(&d.blocks.to_be_bytes());
        chunk[12..16].fill(0);
    }
    Ok(total)
}

/// WRITE SAME(16): byte 1 bit 3 UNMAP, bit 0 NDOB (no data-out buffer: the device writes
/// zeroes and no block is sent), LBA bytes 2..10, block count bytes 10..14. With
/// `unmap` Linux uses it as a discard (`sd_setup_write_same16_cmnd`, one zeroed block of
/// data-out unless NDOB).
pub fn write_same_16(lba: u64, blocks: u32, unmap: bool, ndob: bool) -> Cdb {
    let mut c = Cdb::zeroed(opcode::WRITE_SAME_16, 16);
    c.bytes[1] = (if unmap { 0x08 } else { 0 }) | ndob as u8;
    c.put_be64(2, lba);
    c.put_be32(10, blocks);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_commands_match_linux() {
        assert_eq!(test_unit_ready().as_bytes(), &[0; 6]);
        assert_eq!(inquiry(36).as_bytes(), &[0x12, 0, 0, 0, 36, 0]);
        assert_eq!(inquiry(0x1234).as_bytes(), &[0x12, 0, 0, 0x12, 0x34, 0]);
        assert_eq!(inquiry_vpd(0x83, 4).as_bytes(), &[0x12, 1, 0x83, 0, 4, 0]);
        assert_eq!(
            report_luns(0, 4096).as_bytes(),
            &[0xa0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]
        );
        assert_eq!(report_luns(2, 16).as_bytes()[2], 2);
        assert_eq!(
            start_stop_unit(true, true).as_bytes(),
            &[0x1b, 1, 0, 0, 1, 0]
        );
        assert_eq!(
            read_capacity_10().as_bytes(),
            &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        let rc16 = read_capacity_16(32);
        assert_eq!(rc16.len(), 16);
        assert_eq!(
            rc16.as_bytes(),
            &[0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]
        );
        assert_eq!(request_sense(96).as_bytes(), &[3, 0, 0, 0, 96, 0]);
    }

    #[test]
    fn mode_sense_fields() {
        assert_eq!(
            mode_sense_6(mode_page::ALL, 0, PageControl::Current, false, 4).as_bytes(),
            &[0x1a, 0, 0x3f, 0, 4, 0]
        );
        assert_eq!(
            mode_sense_6(mode_page::CACHING, 0, PageControl::Changeable, true, 255).as_bytes(),
            &[0x1a, 0x08, 0x48, 0, 255, 0]
        );
        assert_eq!(
            mode_sense_10(mode_page::CACHING, 0, PageControl::Saved, false, 512).as_bytes(),
            &[0x5a, 0, 0xc8, 0, 0, 0, 0, 0x02, 0x00, 0]
        );
    }

    #[test]
    fn rw10_and_limits() {
        assert_eq!(
            read_10(0x1234_5678, 8, false).unwrap().as_bytes(),
            &[0x28, 0, 0x12, 0x34, 0x56, 0x78, 0, 0, 8, 0]
        );
        assert_eq!(
            write_10(1, 0xffff, true).unwrap().as_bytes()[..2],
            [0x2a, 0x08]
        );
        assert_eq!(
            read_10(1 << 32, 1, false),
            Err(CdbError::LbaTooLarge {
                lba: 1 << 32,
                bits: 32,
                cdb_len: 10
            })
        );
        assert_eq!(
            write_10(0, 0x1_0000, false),
            Err(CdbError::TooManyBlocks {
                blocks: 0x1_0000,
                bits: 16,
                cdb_len: 10
            })
        );
        assert_eq!(
            read_10(u32::MAX as u64, 0, false).unwrap().as_bytes()[2..6],
            [0xff; 4]
        );
        let e = read_10(1 << 40, 1, false).unwrap_err();
        assert!(e.to_string().contains("does not fit the 32-bit LBA field"));
    }

    #[test]
    fn rw16_layout_and_auto_choice() {
        let c = write_16(0x0102_0304_0506_0708, 0x0a0b_0c0d, true);
        assert_eq!(
            c.as_bytes(),
            &[0x8a, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x0b, 0x0c, 0x0d, 0, 0]
        );
        assert_eq!(read_16(0, 1, false).opcode(), opcode::READ_16);
        assert_eq!(read(100, 8, false).opcode(), opcode::READ_10);
        assert_eq!(read(1 << 32, 8, false).opcode(), opcode::READ_16);
        assert_eq!(write(0, 1 << 16, false).opcode(), opcode::WRITE_16);
        assert_eq!(write(0, 8, true).as_bytes()[1], 0x08);
    }

    #[test]
    fn sync_cache() {
        assert_eq!(
            synchronize_cache_10(0, 0, false).as_bytes(),
            &[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            synchronize_cache_10(5, 2, true).as_bytes()[..9],
            [0x35, 2, 0, 0, 0, 5, 0, 0, 2]
        );
        let c = synchronize_cache_16(1 << 33, 7, false);
        assert_eq!(
            c.as_bytes()[..14],
            [0x91, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 7]
        );
    }

    #[test]
    fn unmap_list() {
        let mut buf = [0xaau8; 64];
        let d = [
            UnmapDescriptor {
                lba: 0x10,
                blocks: 8,
            },
            UnmapDescriptor {
                lba: 1 << 40,
                blocks: 0xffff_ffff,
            },
        ];
        let n = unmap_parameter_list(&mut buf, &d).unwrap();
        assert_eq!(n, 40);
        assert_eq!(buf[..8], [0, 38, 0, 32, 0, 0, 0, 0]);
        assert_eq!(
            buf[8..24],
            [0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 8, 0, 0, 0, 0]
        );
        assert_eq!(
            buf[24..40],
            [0, 0, 1, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]
        );
        assert_eq!(buf[40], 0xaa); // untouched past the list
        assert_eq!(
            unmap(n as u16).as_bytes(),
            &[0x42, 0, 0, 0, 0, 0, 0, 0, 40, 0]
        );
        assert_eq!(
            unmap_parameter_list(&mut buf[..39], &d),
            Err(CdbError::BufferTooSmall {
                needed: 40,
                got: 39
            })
        );
        let many = [UnmapDescriptor { lba: 0, blocks: 1 }; 4096];
        let mut big = [0u8; 70000];
        assert_eq!(unmap_parameter_list(&mut big, &many[..4095]), Ok(65528));
        assert_eq!(
            unmap_parameter_list(&mut big, &many),
            Err(CdbError::TooManyDescriptors(4096))
        );
        assert_eq!(unmap_parameter_list(&mut buf[..8], &[]), Ok(8));
        assert_eq!(buf[..4], [0, 6, 0, 0]);
    }

    #[test]
    fn write_same() {
        let c = write_same_16(0x20, 0x40, true, false);
        assert_eq!(
            c.as_bytes(),
            &[0x93, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0x40, 0, 0]
        );
        assert_eq!(write_same_16(0, 1, true, true).as_bytes()[1], 0x09);
        assert_eq!(write_same_16(0, 1, false, true).as_bytes()[1], 0x01);
    }

    #[test]
    fn cdb_type() {
        assert_eq!(Cdb::from_slice(&[0u8; 17]), None);
        let c = Cdb::from_slice(&[0x12, 1]).unwrap();
        assert_eq!(c.len(), 2);
        assert!(!c.is_empty());
        assert_eq!(format!("{c:?}"), "Cdb[12 01]");
        assert!(Cdb::from_slice(&[]).unwrap().is_empty());
    }
}
