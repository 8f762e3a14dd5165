//! Verified blocks: what a write puts in each block and how a read checks it.
//!
//! With a checksum (`verify=crc32c|md5|xxhash`) every block starts with a 64-byte header,
//! modelled on fio's `struct verify_header`:
//!
//! | bytes | field |
//! |---|---|
//! | 0..2 | magic `0xacca` |
//! | 2 | format version (1) |
//! | 3 | checksum type (1 crc32c, 2 md5, 3 xxhash) |
//! | 4..8 | block length |
//! | 8..16 | seed of the payload |
//! | 16..24 | offset of the block on the device |
//! | 24..32 | write sequence number |
//! | 32..36 | writing thread |
//! | 36..40 | crc32c of bytes 0..36 |
//! | 40..56 | checksum of the payload (4, 16 or 8 bytes used) |
//!
//! and the payload (bytes 64..len) is `verify_pattern` repeated, or pseudo-random bytes from
//! the seed. A read checks the magic, the header's own CRC, the length, the offset (a
//! misdirected block), the seed when the expected one is known (a stale block), then the
//! payload checksum. `verify=meta` (type 4) is the header alone, as fio's: no payload
//! checksum, but the payload must be `verify_pattern` when one is given. `verify=pattern` has
//! no header: every byte is the pattern. With `verify_interval=N` a block is N-byte pieces,
//! each with a header of its own (its own offset and length), as fio writes them.

use md5::{Digest, Md5};

use super::options::VerifyKind;
use super::stats::BadBlock;
use super::workload::Rng;

pub const HEADER_LEN: usize = 64;
const MAGIC: u16 = 0xacca;
const VERSION: u8 = 1;
const SUM_AT: usize = 40;

fn type_code(kind: VerifyKind) -> u8 {
    match kind {
        VerifyKind::Crc32c => 1,
        VerifyKind::Md5 => 2,
        VerifyKind::Xxhash => 3,
        VerifyKind::Meta => 4,
        VerifyKind::Pattern => 0,
    }
}

/// The payload checksum, `N` bytes of it stored in the header.
fn checksum(kind: VerifyKind, data: &[u8], out: &mut [u8; 16]) -> usize {
    match kind {
        VerifyKind::Crc32c => {
            out[..4].copy_from_slice(&crc32c::crc32c(data).to_le_bytes());
            4
        }
        VerifyKind::Md5 => {
            out.copy_from_slice(&Md5::digest(data));
            16
        }
        VerifyKind::Xxhash => {
            out[..8].copy_from_slice(&xxhash_rust::xxh64::xxh64(data, 0).to_le_bytes());
            8
        }
        VerifyKind::Meta | VerifyKind::Pattern => 0,
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::from("0x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// How blocks of one job are written and checked.
#[derive(Debug, Clone)]
pub struct Verifier {
    pub kind: VerifyKind,
    pattern: Option<Vec<u8>>,
    thread: u32,
    /// `verify_interval`: bytes per header (a whole block when `None`).
    interval: Option<usize>,
}

/// What a write stamps into a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub offset: u64,
    pub seed: u64,
    pub sequence: u64,
}

fn fill_payload(pattern: Option<&[u8]>, seed: u64, out: &mut [u8]) {
    match pattern {
        Some(p) => {
            for (i, b) in out.iter_mut().enumerate() {
                *b = p[i % p.len()];
            }
        }
        None => {
            let mut rng = Rng::new(seed);
            for chunk in out.chunks_mut(8) {
                let v = rng.next_u64().to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
        }
    }
}

impl Verifier {
    pub fn new(
        kind: VerifyKind,
        pattern: Option<Vec<u8>>,
        thread: u32,
        interval: Option<u32>,
    ) -> Self {
        Verifier {
            kind,
            pattern,
            thread,
            interval: interval.map(|i| i as usize),
        }
    }

    /// The bytes each header covers in a block of `len` (fio: the interval, when it is no
    /// larger than the block).
    fn piece(&self, len: usize) -> usize {
        self.interval.filter(|i| *i <= len && *i > 0).unwrap_or(len)
    }

    /// Fills `block` for a write at `stamp.offset`.
    pub fn fill(&self, block: &mut [u8], stamp: Stamp) {
        if self.kind == VerifyKind::Pattern {
            fill_payload(self.pattern.as_deref(), 0, block);
            return;
        }
        let piece = self.piece(block.len());
        for (i, part) in block.chunks_mut(piece).enumerate() {
            let offset = stamp.offset + (i * piece) as u64;
            self.fill_one(part, Stamp { offset, ..stamp });
        }
    }

    /// Fills one piece: its header, then its payload.
    fn fill_one(&self, block: &mut [u8], stamp: Stamp) {
        let (head, payload) = block.split_at_mut(HEADER_LEN);
        fill_payload(self.pattern.as_deref(), stamp.seed, payload);
        head.fill(0);
        head[0..2].copy_from_slice(&MAGIC.to_le_bytes());
        head[2] = VERSION;
        head[3] = type_code(self.kind);
        head[4..8].copy_from_slice(&(block_len(payload.len())).to_le_bytes());
        head[8..16].copy_from_slice(&stamp.seed.to_le_bytes());
        head[16..24].copy_from_slice(&stamp.offset.to_le_bytes());
        head[24..32].copy_from_slice(&stamp.sequence.to_le_bytes());
        head[32..36].copy_from_slice(&self.thread.to_le_bytes());
        let hcrc = crc32c::crc32c(&head[0..36]);
        head[36..40].copy_from_slice(&hcrc.to_le_bytes());
        let mut sum = [0u8; 16];
        let n = checksum(self.kind, payload, &mut sum);
        head[SUM_AT..SUM_AT + n].copy_from_slice(&sum[..n]);
    }

    /// Checks a block read from `offset`; `expected_seed` when the writer's seed is known.
    /// A bad piece (with `verify_interval`) is reported at its own offset and length.
    pub fn check(
        &self,
        block: &[u8],
        offset: u64,
        expected_seed: Option<u64>,
    ) -> Result<(), BadBlock> {
        if self.kind == VerifyKind::Pattern {
            return self.check_one(block, offset, expected_seed);
        }
        let piece = self.piece(block.len());
        for (i, part) in block.chunks(piece).enumerate() {
            self.check_one(part, offset + (i * piece) as u64, expected_seed)?;
        }
        Ok(())
    }

    fn check_one(
        &self,
        block: &[u8],
        offset: u64,
        expected_seed: Option<u64>,
    ) -> Result<(), BadBlock> {
        let len = block.len() as u64;
        let bad = |what: &str, expected: String, found: String| BadBlock {
            offset,
            len,
            what: what.to_string(),
            expected,
            found,
        };
        if self.kind == VerifyKind::Pattern {
            let p = self.pattern.as_deref().unwrap_or(&[0]);
            if let Some(i) = block
                .iter()
                .enumerate()
                .position(|(i, b)| *b != p[i % p.len()])
            {
                return Err(bad(
                    &format!("pattern byte {i} (device offset {})", offset + i as u64),
                    format!("{:#04x}", p[i % p.len()]),
                    format!("{:#04x}", block[i]),
                ));
            }
            return Ok(());
        }
        let (head, payload) = block.split_at(HEADER_LEN);
        let u16_at = |at: usize| u16::from_le_bytes([head[at], head[at + 1]]);
        let u32_at = |at: usize| u32::from_le_bytes(head[at..at + 4].try_into().expect("4"));
        let u64_at = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().expect("8"));
        if u16_at(0) != MAGIC {
            return Err(bad(
                "header magic",
                format!("{MAGIC:#06x}"),
                format!("{:#06x}", u16_at(0)),
            ));
        }
        let hcrc = crc32c::crc32c(&head[0..36]);
        if u32_at(36) != hcrc {
            return Err(bad(
                "header crc32c",
                format!("{hcrc:#010x}"),
                format!("{:#010x}", u32_at(36)),
            ));
        }
        if head[3] != type_code(self.kind) {
            return Err(bad(
                "header checksum type",
                format!("{} ({})", type_code(self.kind), self.kind.name()),
                head[3].to_string(),
            ));
        }
        if u64::from(u32_at(4)) != len {
            return Err(bad("header length", len.to_string(), u32_at(4).to_string()));
        }
        if u64_at(16) != offset {
            return Err(bad(
                "header offset (misdirected block)",
                offset.to_string(),
                u64_at(16).to_string(),
            ));
        }
        if let Some(seed) = expected_seed {
            if u64_at(8) != seed {
                return Err(bad(
                    "header seed (stale block)",
                    format!("{seed:#018x}"),
                    format!("{:#018x}", u64_at(8)),
                ));
            }
        }
        let mut sum = [0u8; 16];
        let n = checksum(self.kind, payload, &mut sum);
        if head[SUM_AT..SUM_AT + n] != sum[..n] {
            return Err(bad(
                self.kind.name(),
                hex(&head[SUM_AT..SUM_AT + n]),
                hex(&sum[..n]),
            ));
        }
        // meta: no checksum, but a given pattern must be in the payload (as fio checks it).
        if let (VerifyKind::Meta, Some(p)) = (self.kind, self.pattern.as_deref()) {
            if let Some(i) = payload
                .iter()
                .enumerate()
                .position(|(i, b)| *b != p[i % p.len()])
            {
                let at = HEADER_LEN + i;
                return Err(bad(
                    &format!("pattern byte {at} (device offset {})", offset + at as u64),
                    format!("{:#04x}", p[i % p.len()]),
                    format!("{:#04x}", payload[i]),
                ));
            }
        }
        Ok(())
    }
}

fn block_len(payload: usize) -> u32 {
    (payload + HEADER_LEN) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(kind: VerifyKind, pattern: Option<Vec<u8>>) {
        let v = Verifier::new(kind, pattern, 3, None);
        let mut block = vec![0u8; 4096];
        let stamp = Stamp {
            offset: 8192,
            seed: 99,
            sequence: 1,
        };
        v.fill(&mut block, stamp);
        assert_eq!(v.check(&block, 8192, Some(99)), Ok(()));
        // Misdirected: the same block read at another offset.
        if kind != VerifyKind::Pattern {
            let e = v.check(&block, 4096, None).unwrap_err();
            assert!(e.what.contains("offset"), "{e}");
            assert_eq!((e.expected.as_str(), e.found.as_str()), ("4096", "8192"));
            let e = v.check(&block, 8192, Some(98)).unwrap_err();
            assert!(e.what.contains("stale"), "{e}");
        }
        // One byte of payload flipped.
        block[3000] ^= 0x40;
        let e = v.check(&block, 8192, None).unwrap_err();
        assert_eq!(e.offset, 8192);
        assert_ne!(e.expected, e.found);
        if kind != VerifyKind::Pattern {
            assert_eq!(e.what, kind.name());
        } else {
            assert!(e.what.contains("byte 3000"), "{e}");
        }
        // Zeroes (a never-written or trimmed block).
        let zero = vec![0u8; 4096];
        assert!(v.check(&zero, 8192, None).is_err());
    }

    #[test]
    fn every_kind_catches_corruption_and_reports_where() {
        roundtrip(VerifyKind::Crc32c, None);
        roundtrip(VerifyKind::Md5, None);
        roundtrip(VerifyKind::Xxhash, Some(vec![0xde, 0xad]));
        roundtrip(VerifyKind::Pattern, Some(vec![0xde, 0xad, 0xbe, 0xef]));
        let v = Verifier::new(VerifyKind::Crc32c, None, 0, None);
        let e = v.check(&[0u8; 512], 0, None).unwrap_err();
        assert_eq!(e.what, "header magic");
        assert_eq!(
            (e.expected.as_str(), e.found.as_str()),
            ("0xacca", "0x0000")
        );
    }

    #[test]
    fn meta_checks_the_header_and_the_pattern_only() {
        // Without a pattern, the payload is not checked: a flipped payload byte passes,
        // a flipped header byte does not.
        let v = Verifier::new(VerifyKind::Meta, None, 1, None);
        let mut block = vec![0u8; 4096];
        let stamp = Stamp {
            offset: 0,
            seed: 5,
            sequence: 0,
        };
        v.fill(&mut block, stamp);
        block[2000] ^= 1;
        assert_eq!(v.check(&block, 0, None), Ok(()));
        block[20] ^= 1;
        assert!(v.check(&block, 0, None).is_err());
        // surface-scan.fio's verify_pattern=0xaa555aa5: the payload must hold it.
        let v = Verifier::new(
            VerifyKind::Meta,
            Some(vec![0xaa, 0x55, 0x5a, 0xa5]),
            1,
            None,
        );
        v.fill(&mut block, stamp);
        assert_eq!(v.check(&block, 0, None), Ok(()));
        block[2000] ^= 1;
        let e = v.check(&block, 0, None).unwrap_err();
        assert!(e.what.starts_with("pattern byte 2000"), "{e}");
    }

    #[test]
    fn an_interval_puts_a_header_on_every_piece() {
        // surface-scan.fio: 64 KiB blocks, a header every 512 bytes.
        let v = Verifier::new(VerifyKind::Meta, Some(vec![0xaa, 0x55]), 0, Some(512));
        let mut block = vec![0u8; 65536];
        let stamp = Stamp {
            offset: 1 << 20,
            seed: 9,
            sequence: 3,
        };
        v.fill(&mut block, stamp);
        for i in 0..128 {
            let head = &block[i * 512..i * 512 + 64];
            assert_eq!(&head[0..2], &MAGIC.to_le_bytes());
            let offset = u64::from_le_bytes(head[16..24].try_into().unwrap());
            assert_eq!(offset, (1 << 20) + i as u64 * 512);
            assert_eq!(u32::from_le_bytes(head[4..8].try_into().unwrap()), 512);
        }
        assert_eq!(v.check(&block, 1 << 20, Some(9)), Ok(()));
        // A bad piece is reported at its own offset and length.
        block[77 * 512 + 100] ^= 0xff;
        let e = v.check(&block, 1 << 20, None).unwrap_err();
        assert_eq!((e.offset, e.len), ((1 << 20) + 77 * 512, 512), "{e}");
        // With a checksum too.
        let v = Verifier::new(VerifyKind::Crc32c, None, 0, Some(1024));
        v.fill(&mut block, stamp);
        assert_eq!(v.check(&block, 1 << 20, None), Ok(()));
        block[5 * 1024 + 700] ^= 1;
        let e = v.check(&block, 1 << 20, None).unwrap_err();
        assert_eq!(
            (e.offset, e.what.as_str()),
            ((1 << 20) + 5 * 1024, "crc32c")
        );
    }
}
