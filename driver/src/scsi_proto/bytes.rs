//! Bounds-checked reads of device bytes: the one set of big-endian readers the SCSI
//! parsers use.
//!
//! Every read takes the slice and a byte offset and returns `None` (or, for
//! [`byte`], zero) when the field does not lie wholly inside the slice, offsets near
//! `usize::MAX` included. Nothing here indexes, so nothing here panics, whatever the
//! device sent. Multi-byte fields are big-endian, as everywhere in SCSI.

/// The `N` bytes at `at..at + N`, or `None` if the slice ends before them.
pub fn array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// The byte at `at`, 0 past the end (missing fields read as zero, as in a zero-filled
/// buffer).
pub fn byte(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

/// The big-endian 16-bit field at `at..at + 2`.
pub fn be16(b: &[u8], at: usize) -> Option<u16> {
    array(b, at).map(u16::from_be_bytes)
}

/// The big-endian 24-bit field at `at..at + 3` (a block descriptor's NUMBER OF BLOCKS
/// and BLOCK LENGTH).
pub fn be24(b: &[u8], at: usize) -> Option<u32> {
    array(b, at).map(|[hi, mid, lo]| u32::from_be_bytes([0, hi, mid, lo]))
}

/// The big-endian 32-bit field at `at..at + 4`.
pub fn be32(b: &[u8], at: usize) -> Option<u32> {
    array(b, at).map(u32::from_be_bytes)
}

/// The big-endian 64-bit field at `at..at + 8`.
pub fn be64(b: &[u8], at: usize) -> Option<u64> {
    array(b, at).map(u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: [u8; 9] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09];

    #[test]
    fn reads_in_range() {
        assert_eq!(array::<3>(&B, 6), Some([7, 8, 9]));
        assert_eq!(array::<0>(&B, 9), Some([]));
        assert_eq!(byte(&B, 8), 9);
        assert_eq!(be16(&B, 0), Some(0x0102));
        assert_eq!(be24(&B, 1), Some(0x02_0304));
        assert_eq!(be32(&B, 5), Some(0x0607_0809));
        assert_eq!(be64(&B, 1), Some(0x0203_0405_0607_0809));
    }

    #[test]
    fn reads_past_the_end_are_none_or_zero() {
        assert_eq!(byte(&B, 9), 0);
        assert_eq!(byte(&[], 0), 0);
        assert_eq!(be16(&B, 8), None);
        assert_eq!(be24(&B, 7), None);
        assert_eq!(be32(&B, 6), None);
        assert_eq!(be64(&B, 2), None);
        assert_eq!(be64(&[], 0), None);
        assert_eq!(array::<1>(&B, 10), None);
        // Offsets that would overflow `at + N` are out of range too, not a panic.
        for at in [usize::MAX, usize::MAX - 1, usize::MAX - 7] {
            assert_eq!(byte(&B, at), 0);
            assert_eq!(be16(&B, at), None);
            assert_eq!(be24(&B, at), None);
            assert_eq!(be32(&B, at), None);
            assert_eq!(be64(&B, at), None);
        }
    }
}
