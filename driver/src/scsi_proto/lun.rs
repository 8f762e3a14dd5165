//! Logical unit numbers: the SAM 8-byte form, Linux's integer form, and the
//! virtio-scsi request LUN field.
//!
//! Three encodings meet in a virtio-scsi scan:
//!
//! * the **SAM 8-byte LUN** ([`ScsiLun`]): four levels of two bytes, the top two bits
//!   of each level's first byte naming the address method. REPORT LUNS returns these.
//! * **Linux's integer LUN** (`scsilun_to_int` in `drivers/scsi/scsi_common.c`): the
//!   8 bytes taken two at a time, the first pair becoming the *least* significant 16
//!   bits, each pair big-endian, address-method bits kept. LUN 5 in peripheral form
//!   (`00 05 ...`) is 5; LUN 300 in flat form (`41 2c ...`) is `0x412c` = 16684. This
//!   is the number lsscsi shows in `[H:C:T:L]` and `sg_luns --linux` prints.
//! * the **virtio-scsi request LUN** ([`virtio_lun`]): `{1, target, 0x40 | (lun >> 8),
//!   lun & 0xff, 0, 0, 0, 0}`, built by Linux's `virtio_scsi_init_hdr` from the
//!   integer LUN, always with the flat-space bit, even for LUN 0.

use std::fmt;

use serde::{Serialize, Serializer};

/// The Linux integer of the REPORT LUNS well-known logical unit (`c1 01 00 ...`),
/// `SCSI_W_LUN_REPORT_LUNS` in `include/scsi/scsi.h`.
pub const WLUN_REPORT_LUNS: u64 = 0xc101;

/// Largest LUN number the flat-space address method can carry (14 bits).
pub const MAX_FLAT_LUN: u16 = 0x3fff;

/// A LUN that cannot be encoded the way it was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LunError {
    /// Flat-space addressing has 14 bits for the LUN.
    #[error("LUN {0} does not fit flat-space addressing (at most 16383)")]
    TooLargeForFlat(u64),
    /// The virtio-scsi request header carries one level; a Linux LUN above 0x7fff would
    /// need more (or a different address method) and Linux's encoding would mangle it.
    #[error(
        "Linux LUN {0:#x} cannot go in a virtio-scsi request: only single-level LUNs \
         up to 0x7fff (peripheral 0..255 or flat 0x4000|n) fit"
    )]
    NotVirtioAddressable(u64),
    /// A LUN needs exactly 8 bytes.
    #[error("a SAM LUN is 8 bytes, got {0}")]
    WrongLength(usize),
}

/// The address method of one LUN level: the top two bits of the level's first byte
/// (SAM-5 4.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressMethod {
    /// `00b`: peripheral device addressing (bus id in the low 6 bits, LUN in byte 2).
    Peripheral,
    /// `01b`: flat space addressing (14-bit LUN).
    Flat,
    /// `10b`: logical unit addressing (target, bus, LUN).
    LogicalUnit,
    /// `11b`: extended logical unit addressing (well-known LUs and longer forms).
    Extended,
}

impl AddressMethod {
    /// The address method encoded in the top two bits of `byte`.
    pub const fn from_byte(byte: u8) -> Self {
        match byte >> 6 {
            0 => AddressMethod::Peripheral,
            1 => AddressMethod::Flat,
            2 => AddressMethod::LogicalUnit,
            _ => AddressMethod::Extended,
        }
    }
}

/// A SAM 8-byte logical unit number, as REPORT LUNS lists it.
///
/// `Display` prints the 16 hex digits as `sg_luns` does (`0001000000000000`); JSON
/// gets the same string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ScsiLun(pub [u8; 8]);

impl ScsiLun {
    /// LUN 0 (all zero bytes).
    pub const ZERO: ScsiLun = ScsiLun([0; 8]);

    /// Takes the first 8 bytes of `bytes`; an error if there are not exactly 8.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, LunError> {
        let arr: [u8; 8] = bytes
            .try_into()
            .map_err(|_| LunError::WrongLength(bytes.len()))?;
        Ok(ScsiLun(arr))
    }

    /// The 8 bytes.
    pub const fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }

    /// Linux's integer for this LUN (`scsilun_to_int`): byte pairs become 16-bit words,
    /// first pair least significant, address-method bits kept.
    pub const fn to_linux(&self) -> u64 {
        let b = &self.0;
        let mut lun = 0u64;
        let mut i = 0;
        while i < 8 {
            lun |= ((b[i] as u64) << ((i + 1) * 8)) | ((b[i + 1] as u64) << (i * 8));
            i += 2;
        }
        lun
    }

    /// The 8-byte LUN for a Linux integer (`int_to_scsilun`), the exact inverse of
    /// [`ScsiLun::to_linux`].
    pub const fn from_linux(mut lun: u64) -> Self {
        let mut b = [0u8; 8];
        let mut i = 0;
        while i < 8 {
            b[i] = (lun >> 8) as u8;
            b[i + 1] = lun as u8;
            lun >>= 16;
            i += 2;
        }
        ScsiLun(b)
    }

    /// LUN `lun` with peripheral device addressing, bus 0: `00 lun 00 ...`.
    pub const fn peripheral(lun: u8) -> Self {
        ScsiLun([0, lun, 0, 0, 0, 0, 0, 0])
    }

    /// LUN `lun` with flat-space addressing: `40|hi lo 00 ...`.
    pub const fn flat(lun: u16) -> Result<Self, LunError> {
        if lun > MAX_FLAT_LUN {
            return Err(LunError::TooLargeForFlat(lun as u64));
        }
        Ok(ScsiLun([
            0x40 | (lun >> 8) as u8,
            lun as u8,
            0,
            0,
            0,
            0,
            0,
            0,
        ]))
    }

    /// LUN `lun` encoded as QEMU's REPORT LUNS does (`store_lun` in
    /// `hw/scsi/scsi-bus.c`): peripheral below 256, flat from 256 on.
    pub const fn for_number(lun: u16) -> Result<Self, LunError> {
        if lun < 256 {
            Ok(ScsiLun::peripheral(lun as u8))
        } else {
            ScsiLun::flat(lun)
        }
    }

    /// The address method of the first level.
    pub const fn address_method(&self) -> AddressMethod {
        AddressMethod::from_byte(self.0[0])
    }

    /// Whether levels two to four are all zero.
    pub const fn is_single_level(&self) -> bool {
        let b = &self.0;
        b[2] == 0 && b[3] == 0 && b[4] == 0 && b[5] == 0 && b[6] == 0 && b[7] == 0
    }

    /// The LUN number when this is a plain single-level LUN: peripheral addressing on
    /// bus 0 (`00 nn`) gives `nn`, flat addressing gives the 14-bit number. `None` for
    /// anything else (multi-level, bus id != 0, logical unit or extended addressing).
    pub const fn number(&self) -> Option<u16> {
        if !self.is_single_level() {
            return None;
        }
        match self.address_method() {
            AddressMethod::Peripheral if self.0[0] == 0 => Some(self.0[1] as u16),
            AddressMethod::Flat => Some((((self.0[0] & 0x3f) as u16) << 8) | self.0[1] as u16),
            _ => None,
        }
    }

    /// Whether this is a well-known logical unit (extended addressing, first byte
    /// `0xc1`), the condition Linux's `scsi_is_wlun` tests on the integer form.
    pub const fn is_well_known(&self) -> bool {
        self.0[0] == 0xc1
    }
}

impl fmt::Display for ScsiLun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Serialize for ScsiLun {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl From<[u8; 8]> for ScsiLun {
    fn from(b: [u8; 8]) -> Self {
        ScsiLun(b)
    }
}

/// Whether a Linux integer LUN is a well-known LUN: `(lun & 0xff00) == 0xc100`
/// (`scsi_is_wlun`, `include/scsi/scsi.h`).
pub const fn is_wlun(linux_lun: u64) -> bool {
    (linux_lun & 0xff00) == 0xc100
}

/// The 8-byte LUN field of a virtio-scsi request or task-management header for
/// `target` and the Linux integer LUN `linux_lun`, exactly as Linux's
/// `virtio_scsi_init_hdr` builds it: `{1, target, (lun >> 8) | 0x40, lun & 0xff, 0, 0,
/// 0, 0}`.
///
/// Linux sets the flat-space bit for every LUN, LUN 0 included, and since its integer
/// for a flat REPORT LUNS entry already is `0x4000 | n`, OR-ing 0x40 again changes
/// nothing. QEMU accepts byte 2 equal to 0 or in 0x40..=0x7f and masks the LUN with
/// 0x3fff. Linux integers above 0x7fff (multi-level, logical unit or extended
/// addressing, well-known LUs) would be silently mangled by that formula, so they are
/// an error here.
pub const fn virtio_lun(target: u8, linux_lun: u64) -> Result<[u8; 8], LunError> {
    if linux_lun > 0x7fff {
        return Err(LunError::NotVirtioAddressable(linux_lun));
    }
    Ok([
        1,
        target,
        ((linux_lun >> 8) as u8) | 0x40,
        linux_lun as u8,
        0,
        0,
        0,
        0,
    ])
}

/// A target and LUN as carried in a virtio-scsi event's LUN field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VirtioLunAddr {
    /// Byte 1: the target id.
    pub target: u8,
    /// `(byte2 << 8) | byte3`, which is how Linux's event handler reads it (a flat
    /// entry stays `0x4000 | n`, QEMU's events send LUNs below 256 as `00 nn`).
    pub linux_lun: u64,
    /// The LUN number as QEMU decodes it: `((byte2 << 8) | byte3) & 0x3fff`.
    pub number: u16,
}

/// Decodes the LUN field of a virtio-scsi event (or a request header). Returns `None`
/// if byte 0 is not 1, which QEMU uses for "not addressed to a LUN" (for instance an
/// `EVENTS_MISSED` event with an all-zero LUN).
pub const fn parse_virtio_lun(lun: &[u8; 8]) -> Option<VirtioLunAddr> {
    if lun[0] != 1 {
        return None;
    }
    let word = ((lun[2] as u16) << 8) | lun[3] as u16;
    Some(VirtioLunAddr {
        target: lun[1],
        linux_lun: word as u64,
        number: word & 0x3fff,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lun_300_flat_is_linux_16684_both_ways() {
        let lun = ScsiLun::flat(300).unwrap();
        assert_eq!(lun.0, [0x41, 0x2c, 0, 0, 0, 0, 0, 0]);
        assert_eq!(lun.to_linux(), 16684);
        assert_eq!(ScsiLun::from_linux(16684), lun);
        assert_eq!(lun.number(), Some(300));
        assert_eq!(lun.address_method(), AddressMethod::Flat);
        assert_eq!(lun.to_string(), "412c000000000000");
    }

    #[test]
    fn kernel_comment_example() {
        // scsi_common.c documents d2 04 0b 03 00 00 00 00 -> 0x0b03d204.
        let lun = ScsiLun([0xd2, 0x04, 0x0b, 0x03, 0, 0, 0, 0]);
        assert_eq!(lun.to_linux(), 0x0b03_d204);
        assert_eq!(ScsiLun::from_linux(0x0b03_d204), lun);
        assert_eq!(lun.number(), None);
    }

    #[test]
    fn round_trip_is_exact_for_every_shape() {
        for v in [
            0u64,
            1,
            255,
            0x4000,
            0x7fff,
            0xc101,
            0x0123_4567_89ab_cdef,
            u64::MAX,
        ] {
            assert_eq!(ScsiLun::from_linux(v).to_linux(), v);
        }
        let raw = [1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(ScsiLun::from_linux(ScsiLun(raw).to_linux()).0, raw);
    }

    #[test]
    fn peripheral_and_qemu_forms() {
        assert_eq!(ScsiLun::peripheral(5).to_linux(), 5);
        assert_eq!(ScsiLun::for_number(255).unwrap(), ScsiLun::peripheral(255));
        assert_eq!(
            ScsiLun::for_number(256).unwrap().0,
            [0x41, 0x00, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(ScsiLun::for_number(16383).unwrap().to_linux(), 0x7fff);
        assert_eq!(
            ScsiLun::for_number(16384),
            Err(LunError::TooLargeForFlat(16384))
        );
        assert_eq!(ScsiLun::peripheral(7).number(), Some(7));
        assert_eq!(ScsiLun([0x01, 7, 0, 0, 0, 0, 0, 0]).number(), None); // bus 1
    }

    #[test]
    fn well_known_luns() {
        let w = ScsiLun([0xc1, 0x01, 0, 0, 0, 0, 0, 0]);
        assert!(w.is_well_known());
        assert_eq!(w.to_linux(), WLUN_REPORT_LUNS);
        assert!(is_wlun(w.to_linux()));
        assert!(!is_wlun(16684));
        assert_eq!(w.address_method(), AddressMethod::Extended);
    }

    #[test]
    fn virtio_field_mirrors_linux() {
        assert_eq!(virtio_lun(0, 0).unwrap(), [1, 0, 0x40, 0, 0, 0, 0, 0]);
        assert_eq!(virtio_lun(3, 5).unwrap(), [1, 3, 0x40, 5, 0, 0, 0, 0]);
        assert_eq!(
            virtio_lun(0, 16684).unwrap(),
            [1, 0, 0x41, 0x2c, 0, 0, 0, 0]
        );
        assert_eq!(
            virtio_lun(0, 0xc101),
            Err(LunError::NotVirtioAddressable(0xc101))
        );
        let a = parse_virtio_lun(&virtio_lun(2, 16684).unwrap()).unwrap();
        assert_eq!(
            a,
            VirtioLunAddr {
                target: 2,
                linux_lun: 16684,
                number: 300
            }
        );
        // QEMU events use 00 nn below 256.
        let e = parse_virtio_lun(&[1, 0, 0, 7, 0, 0, 0, 0]).unwrap();
        assert_eq!((e.linux_lun, e.number), (7, 7));
        assert_eq!(parse_virtio_lun(&[0; 8]), None);
    }

    #[test]
    fn from_slice_checks_length() {
        assert_eq!(ScsiLun::from_slice(&[0; 7]), Err(LunError::WrongLength(7)));
        assert_eq!(ScsiLun::from_slice(&[0; 8]), Ok(ScsiLun::ZERO));
        assert_eq!(
            serde_json::to_string(&ScsiLun::peripheral(1)).unwrap(),
            "\"0001000000000000\""
        );
    }
}
