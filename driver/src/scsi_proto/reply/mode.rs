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
}
