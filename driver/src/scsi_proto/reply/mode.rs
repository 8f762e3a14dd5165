//! MODE SENSE(6) and MODE SENSE(10) replies: the mode parameter header, the block
//! descriptors and the mode pages after them, with the caching page sd reads.

use serde::Serialize;

use super::{too_short, ReplyError};
use crate::scsi_proto::bytes::{array, be16, be24, byte};

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
        let Some([mode_data_length, medium_type, device_specific, block_descriptor_length]) =
            array(buf, 0)
        else {
            return Err(too_short(
                buf,
                4,
                "MODE SENSE(6)",
                "the mode parameter header",
            ));
        };
        let header = ModeParameterHeader {
            header_len: 4,
            mode_data_length: mode_data_length as u16,
            medium_type,
            device_specific,
            write_protect: device_specific & 0x80 != 0,
            dpofua: device_specific & 0x10 != 0,
            long_lba: false,
            block_descriptor_length: block_descriptor_length as u16,
        };
        Ok(Self::split(buf, header))
    }

    /// Parses a MODE SENSE(10) reply (8-byte header).
    pub fn parse_10(buf: &'a [u8]) -> Result<Self, ReplyError> {
        // MODE DATA LENGTH (0..2), MEDIUM TYPE, DEVICE-SPECIFIC PARAMETER, LONGLBA (byte
        // 4 bit 0), reserved, BLOCK DESCRIPTOR LENGTH (6..8).
        let (
            Some(mode_data_length),
            Some([medium_type, device_specific, flags]),
            Some(block_descriptor_length),
        ) = (be16(buf, 0), array(buf, 2), be16(buf, 6))
        else {
            return Err(too_short(
                buf,
                8,
                "MODE SENSE(10)",
                "the mode parameter header",
            ));
        };
        let header = ModeParameterHeader {
            header_len: 8,
            mode_data_length,
            medium_type,
            device_specific,
            write_protect: device_specific & 0x80 != 0,
            dpofua: device_specific & 0x10 != 0,
            long_lba: flags & 0x01 != 0,
            block_descriptor_length,
        };
        Ok(Self::split(buf, header))
    }

    fn split(buf: &'a [u8], header: ModeParameterHeader) -> Self {
        let total = header.total_len();
        // MODE DATA LENGTH bounds everything after the header, and so does what arrived.
        let data = buf.get(..total).unwrap_or(buf);
        let bd_end = data
            .len()
            .min(header.header_len + header.block_descriptor_length as usize);
        ModeSense {
            header,
            block_descriptors: data.get(header.header_len..bd_end).unwrap_or(&[]),
            pages: data.get(bd_end..).unwrap_or(&[]),
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
        // DENSITY CODE, NUMBER OF BLOCKS (1..4), reserved, BLOCK LENGTH (5..8).
        let d = self.block_descriptors;
        Some((be24(d, 1)?, be24(d, 5)?))
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
        // The parameters up to PAGE LENGTH, or as many as there are.
        let data = b.get(hdr..end).or_else(|| b.get(hdr..)).unwrap_or(&[]);
        self.rest = b.get(end..).unwrap_or(&[]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi_proto::reply::every_prefix;

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

    // ---------------------------------------------------------------------------------
    // Byte-exact QEMU replies. QEMU's scsi-disk (`scsi_disk_emulate_mode_sense`) writes a
    // 4- or 8-byte header whose device-specific parameter is 0x80 for a read-only disk |
    // 0x10 with `dpofua=on`; unless DBD is set, one 8-byte block descriptor (NUMBER OF
    // BLOCKS, 0 if it does not fit 24 bits, and BLOCK LENGTH as `blocksize >> 8` in byte
    // 6); then the pages `mode_sense_page` knows for a disk: 0x01 R/W error recovery
    // (AWRE), 0x04 rigid disk geometry, 0x05 flexible disk geometry and 0x08 caching (WCE
    // when the write cache is on, or in the changeable mask), in that order for 0x3F.
    // There is no control page (0x0A): asking for it is INVALID FIELD IN CDB. The reply
    // is cut to the allocation length; MODE DATA LENGTH still counts all of it.
    // ---------------------------------------------------------------------------------

    /// Block descriptor of a 1 GiB disk with 512-byte blocks: 0x200000 blocks.
    const BD_1GIB_512: [u8; 8] = [0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00];

    /// QEMU's pages for MODE SENSE page 0x3F on a writable 1 GiB scsi-hd with 512-byte
    /// blocks and the write cache on; the geometry is QEMU's guess for an unpartitioned
    /// image of that size (2080 cylinders, 16 heads, 63 sectors).
    #[rustfmt::skip]
    const QEMU_DISK_PAGES: [u8; 88] = [
        // 0x01 read-write error recovery, 10 bytes: AWRE.
        0x01, 0x0a, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        // 0x04 rigid disk geometry, 22 bytes: cylinders, heads, write precomp and
        // reduced current cylinders, step rate 200 ns, landing zone ffffff, 5400 rpm.
        0x04, 0x16,
        0x00, 0x08, 0x20, 0x10, 0x00, 0x08, 0x20, 0x00, 0x08, 0x20, 0x00, 0xc8,
        0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x15, 0x18, 0x00, 0x00,
        // 0x05 flexible disk geometry, 30 bytes: 5000 kbit/s, heads, sectors, 512 bytes
        // per sector, cylinders (x3), step rate, pulse width, head settle, motor on and
        // off delays, 5400 rpm.
        0x05, 0x1e,
        0x13, 0x88, 0x10, 0x3f, 0x02, 0x00, 0x08, 0x20, 0x08, 0x20, 0x08, 0x20,
        0x00, 0x01, 0x01, 0x00, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x15, 0x18, 0x00, 0x00,
        // 0x08 caching, 18 bytes: WCE.
        0x08, 0x12,
        0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// MODE SENSE(6), page 0x3F, DBD=0 on that disk: 100 bytes, MODE DATA LENGTH 99.
    fn qemu_ms6_all_pages() -> Vec<u8> {
        cat(&[&[0x63, 0x00, 0x00, 0x08], &BD_1GIB_512, &QEMU_DISK_PAGES])
    }

    /// Checks what every page of `QEMU_DISK_PAGES` parses to.
    fn check_qemu_disk_pages(ms: &ModeSense<'_>) {
        let pages: Vec<ModePage<'_>> = ms.iter_pages().collect();
        let expect = [
            (0x01, 10, 2),
            (0x04, 0x16, 14),
            (0x05, 0x1e, 38),
            (0x08, 0x12, 70),
        ];
        assert_eq!(pages.len(), expect.len());
        for (page, (code, len, data_at)) in pages.iter().zip(expect) {
            assert_eq!(
                *page,
                ModePage {
                    page_code: code,
                    subpage: 0,
                    ps: false,
                    spf: false,
                    page_length: len,
                    data: &QEMU_DISK_PAGES[data_at..data_at + len as usize],
                    truncated: false,
                }
            );
        }
        assert_eq!(pages[0].data[0], 0x80); // AWRE
        assert_eq!(be24(pages[1].data, 0), Some(2080)); // cylinders
        assert_eq!(pages[1].data[3], 16); // heads
        assert_eq!(be16(pages[1].data, 18), Some(5400)); // rpm
        assert_eq!((pages[2].data[2], pages[2].data[3]), (16, 63)); // heads, sectors
        assert_eq!(be16(pages[2].data, 4), Some(512)); // bytes per sector
        assert_eq!(
            ms.caching(),
            Some(CachingPage {
                wce: true,
                rcd: false
            })
        );
        assert_eq!(ms.find_page(0x08, 0), Some(pages[3]));
        // QEMU has no control page.
        assert_eq!(ms.find_page(0x0a, 0), None);
    }

    #[test]
    fn qemu_mode_sense_6_all_pages() {
        let raw = qemu_ms6_all_pages();
        assert_eq!(raw.len(), 100);
        let ms = ModeSense::parse_6(&raw).unwrap();
        assert_eq!(
            ms.header,
            ModeParameterHeader {
                header_len: 4,
                mode_data_length: 99,
                medium_type: 0,
                device_specific: 0x00,
                write_protect: false,
                dpofua: false,
                long_lba: false,
                block_descriptor_length: 8,
            }
        );
        assert_eq!(ms.header.total_len(), 100);
        assert!(!ms.truncated);
        assert_eq!(ms.block_descriptors, &BD_1GIB_512);
        assert_eq!(ms.block_descriptor(), Some((0x20_0000, 512)));
        assert_eq!(ms.pages, &QEMU_DISK_PAGES);
        check_qemu_disk_pages(&ms);
    }

    #[test]
    fn qemu_mode_sense_10_all_pages_dbd() {
        // MODE SENSE(10), page 0x3F, DBD=1: no block descriptor, 96 bytes.
        let raw = cat(&[
            &[0x00, 0x5e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
            &QEMU_DISK_PAGES,
        ]);
        let ms = ModeSense::parse_10(&raw).unwrap();
        assert_eq!(
            ms.header,
            ModeParameterHeader {
                header_len: 8,
                mode_data_length: 94,
                medium_type: 0,
                device_specific: 0x00,
                write_protect: false,
                dpofua: false,
                long_lba: false,
                block_descriptor_length: 0,
            }
        );
        assert_eq!(ms.header.total_len(), 96);
        assert!(!ms.truncated);
        assert!(ms.block_descriptors.is_empty());
        assert_eq!(ms.block_descriptor(), None);
        check_qemu_disk_pages(&ms);
    }

    #[test]
    fn qemu_mode_sense_10_caching_read_only_dpofua_4k() {
        // MODE SENSE(10), page 0x08, DBD=0 on a 4 GiB scsi-hd with readonly=on,
        // dpofua=on, logical_block_size=4096 and the write cache off.
        let raw: [u8; 36] = [
            0x00, 0x22, 0x00, 0x90, 0x00, 0x00, 0x00, 0x08, // header, WP|DPOFUA
            0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, // 0x100000 blocks of 4096
            0x08, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // caching page, WCE clear
        ];
        let ms = ModeSense::parse_10(&raw).unwrap();
        assert_eq!(
            ms.header,
            ModeParameterHeader {
                header_len: 8,
                mode_data_length: 34,
                medium_type: 0,
                device_specific: 0x90,
                write_protect: true,
                dpofua: true,
                long_lba: false,
                block_descriptor_length: 8,
            }
        );
        assert_eq!(ms.header.total_len(), 36);
        assert!(!ms.truncated);
        assert_eq!(ms.block_descriptors, &raw[8..16]);
        assert_eq!(ms.block_descriptor(), Some((0x10_0000, 4096)));
        assert_eq!(ms.pages, &raw[16..]);
        assert_eq!(ms.iter_pages().count(), 1);
        assert_eq!(
            ms.caching(),
            Some(CachingPage {
                wce: false,
                rcd: false
            })
        );
        // The same disk through MODE SENSE(6): the header moves, the fields do not.
        let raw6 = cat(&[&[0x1f, 0x00, 0x90, 0x08], &raw[8..]]);
        let ms6 = ModeSense::parse_6(&raw6).unwrap();
        assert_eq!(
            (
                ms6.header.write_protect,
                ms6.header.dpofua,
                ms6.header.total_len()
            ),
            (true, true, 32)
        );
        assert_eq!(ms6.block_descriptor(), ms.block_descriptor());
        assert_eq!(ms6.caching(), ms.caching());
    }

    #[test]
    fn qemu_block_descriptor_of_a_huge_disk_reads_zero_blocks() {
        // 16 TiB of 512-byte blocks: 2^35 blocks do not fit 24 bits, QEMU sends 0.
        let mut raw = cat(&[&[0x1f, 0x00, 0x00, 0x08], &[0, 0, 0, 0, 0, 0, 0x02, 0]]);
        raw.extend_from_slice(&QEMU_DISK_PAGES[68..]); // the caching page
        let ms = ModeSense::parse_6(&raw).unwrap();
        assert_eq!(ms.block_descriptor(), Some((0, 512)));
        assert!(ms.caching().unwrap().wce);
    }

    #[test]
    fn qemu_changeable_caching_mask() {
        // PC=1 (changeable values), page 0x08, DBD=1: WCE is the one changeable bit.
        let raw = cat(&[&[0x17, 0x00, 0x00, 0x00], &QEMU_DISK_PAGES[68..]]);
        let ms = ModeSense::parse_6(&raw).unwrap();
        assert_eq!(ms.header.total_len(), 24);
        assert!(!ms.truncated);
        assert_eq!(ms.block_descriptor(), None);
        assert_eq!(
            ms.caching(),
            Some(CachingPage {
                wce: true,
                rcd: false
            })
        );
    }

    #[test]
    fn qemu_replies_cut_to_the_allocation_length() {
        let raw = qemu_ms6_all_pages();
        for alloc in 4..=raw.len() {
            let ms = ModeSense::parse_6(&raw[..alloc]).unwrap();
            // The header is whole from 4 bytes on (sd's write-protect probe).
            assert_eq!(ms.header.mode_data_length, 99);
            assert_eq!(ms.header.total_len(), 100);
            assert_eq!(ms.truncated, alloc < 100);
            // The block descriptor needs all 8 of its bytes.
            assert_eq!(ms.block_descriptor().is_some(), alloc >= 12);
            assert_eq!(ms.block_descriptors.len(), alloc.clamp(4, 12) - 4);
            assert_eq!(ms.pages.len(), alloc.max(12) - 12);
            // Pages up to the cut come whole, the one it falls in comes truncated.
            let pages: Vec<_> = ms.iter_pages().collect();
            let starts = [12, 24, 48, 80];
            // A page cut inside its 2-byte header has no PAGE LENGTH: it ends the walk.
            let begun = starts.iter().filter(|&&s| alloc >= s + 2).count();
            assert_eq!(pages.len(), begun, "alloc {alloc}");
            for (i, p) in pages.iter().enumerate() {
                let end = starts.get(i + 1).copied().unwrap_or(100);
                assert_eq!(p.truncated, alloc < end, "alloc {alloc} page {i}");
            }
            // WCE is page byte 2, the 83rd byte of the reply.
            assert_eq!(ms.caching().is_some(), alloc >= 83, "alloc {alloc}");
        }
    }

    #[test]
    fn short_headers_are_errors() {
        let raw = qemu_ms6_all_pages();
        for n in 0..4 {
            assert_eq!(
                ModeSense::parse_6(&raw[..n]),
                Err(ReplyError::TooShort {
                    what: "MODE SENSE(6)",
                    fields: "the mode parameter header",
                    needed: 4,
                    got: n
                })
            );
        }
        for n in 0..8 {
            assert_eq!(
                ModeSense::parse_10(&raw[..n]),
                Err(ReplyError::TooShort {
                    what: "MODE SENSE(10)",
                    fields: "the mode parameter header",
                    needed: 8,
                    got: n
                })
            );
        }
        assert!(ModeSense::parse_10(&raw[..8]).is_ok());
    }

    #[test]
    fn hostile_lengths_give_partial_results() {
        let raw = qemu_ms6_all_pages();

        // MODE DATA LENGTH past the end: everything that arrived is used, truncated.
        let mut over = raw.clone();
        over[0] = 0xff;
        let ms = ModeSense::parse_6(&over).unwrap();
        assert!(ms.truncated);
        assert_eq!(ms.header.total_len(), 256);
        check_qemu_disk_pages(&ms);

        // MODE DATA LENGTH 0 (smaller than the header): no descriptors, no pages.
        let mut under = raw.clone();
        under[0] = 0;
        let ms = ModeSense::parse_6(&under).unwrap();
        assert!(!ms.truncated);
        assert!(ms.block_descriptors.is_empty() && ms.pages.is_empty());
        assert_eq!((ms.block_descriptor(), ms.caching()), (None, None));
        let ms = ModeSense::parse_10(&[0; 8]).unwrap();
        assert_eq!(ms.header.total_len(), 2);
        assert!(ms.block_descriptors.is_empty() && ms.pages.is_empty());

        // BLOCK DESCRIPTOR LENGTH past the end: the descriptors swallow the pages.
        let mut bd = raw.clone();
        bd[3] = 0xff;
        let ms = ModeSense::parse_6(&bd).unwrap();
        assert_eq!(ms.block_descriptors.len(), 96);
        assert!(ms.pages.is_empty());
        assert_eq!(ms.block_descriptor(), Some((0x20_0000, 512)));
        assert_eq!(ms.caching(), None);
        let mut bd10 = cat(&[&[0x00, 0x66, 0, 0, 0, 0, 0xff, 0xff], &raw[4..]]);
        let ms = ModeSense::parse_10(&bd10).unwrap();
        assert_eq!(ms.block_descriptors.len(), 96);
        assert!(ms.pages.is_empty());
        // LONGLBA: 16-byte descriptors, which block_descriptor() does not decode.
        bd10[4] = 0x01;
        bd10[6..8].copy_from_slice(&16u16.to_be_bytes());
        let ms = ModeSense::parse_10(&bd10).unwrap();
        assert!(ms.header.long_lba);
        assert_eq!(ms.block_descriptors.len(), 16);
        assert_eq!(ms.block_descriptor(), None);

        // A descriptor shorter than 8 bytes is not a block descriptor.
        let mut short_bd = raw.clone();
        short_bd[3] = 4;
        let ms = ModeSense::parse_6(&short_bd).unwrap();
        assert_eq!(ms.block_descriptor(), None);
        let _ = ms.iter_pages().count();

        // PAGE LENGTH past the end: the page comes truncated with what there is, and a
        // caching page still yields WCE from its byte 2.
        let mut page = cat(&[&[0x17, 0x00, 0x00, 0x00], &QEMU_DISK_PAGES[68..]]);
        page[5] = 0xff;
        let ms = ModeSense::parse_6(&page).unwrap();
        let pages: Vec<_> = ms.iter_pages().collect();
        assert_eq!(pages.len(), 1);
        assert!(pages[0].truncated);
        assert_eq!((pages[0].page_length, pages[0].data.len()), (0xff, 18));
        assert!(ms.caching().unwrap().wce);

        // A page header cut short ends the walk: 1 byte of a page_0 header, 3 of a
        // sub_page header.
        for tail in [&[0x08u8][..], &[0x48, 0x01, 0x00]] {
            let b = cat(&[
                &[(15 + tail.len()) as u8, 0, 0, 0],
                &QEMU_DISK_PAGES[..12],
                tail,
            ]);
            let ms = ModeSense::parse_6(&b).unwrap();
            assert_eq!(ms.iter_pages().count(), 1, "{b:02x?}");
            assert!(!ms.truncated);
        }

        // Zero-length pages: each is one 2-byte page without data, and the walk ends.
        let zeros = cat(&[&[0x0b, 0, 0, 0], &[0x08, 0x00].repeat(4)]);
        let ms = ModeSense::parse_6(&zeros).unwrap();
        assert_eq!(ms.iter_pages().count(), 4);
        assert!(ms.iter_pages().all(|p| p.data.is_empty() && !p.truncated));
        assert_eq!(ms.caching(), None);
    }

    #[test]
    fn corrupted_qemu_replies_never_panic() {
        let six = qemu_ms6_all_pages();
        let ten = cat(&[&[0x00, 0x66, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08], &six[4..]]);
        fn parse(header_len: usize, b: &[u8]) -> Result<ModeSense<'_>, ReplyError> {
            if header_len == 4 {
                ModeSense::parse_6(b)
            } else {
                ModeSense::parse_10(b)
            }
        }
        for (raw, header_len) in [(&six, 4), (&ten, 8)] {
            for at in 0..raw.len() {
                for v in [0x00u8, 0x01, 0x3f, 0x40, 0x7f, 0x80, 0xc8, 0xff] {
                    let mut b = raw.clone();
                    b[at] = v;
                    for n in [b.len(), at + 1, at.saturating_sub(1)] {
                        let b = &b[..n];
                        let Ok(ms) = parse(header_len, b) else {
                            assert!(n < header_len);
                            continue;
                        };
                        assert_eq!(ms.truncated, b.len() < ms.header.total_len());
                        assert!(
                            ms.header.header_len + ms.block_descriptors.len() + ms.pages.len()
                                <= b.len()
                        );
                        let bdl = usize::from(ms.header.block_descriptor_length);
                        assert!(ms.block_descriptors.len() <= bdl);
                        let mut seen = 0;
                        for p in ms.iter_pages() {
                            assert!(p.data.len() <= usize::from(p.page_length));
                            seen += p.data.len() + if p.spf { 4 } else { 2 };
                        }
                        assert!(seen <= ms.pages.len());
                        let _ = (ms.caching(), ms.block_descriptor());
                    }
                }
            }
        }
    }
}
