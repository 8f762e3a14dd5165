//! VPD page 0x86, Extended INQUIRY data (SPC-5 7.7.7), as `sg_vpd --page=ei` (sg3_utils
//! 1.46) decodes it: every field on the lines and in the words sg_vpd uses, whatever the
//! device type. Bytes past the page's end read as zero, as in sg_vpd's zeroed buffer.

use std::fmt::Write;

/// sg_vpd's shortest page it decodes (page header included).
const MIN_LEN: usize = 7;

/// The fields of page `b` (its 4-byte header included) after the title line.
pub fn decode_extended_inquiry(s: &mut String, b: &[u8]) {
    if b.len() < MIN_LEN {
        // sg_vpd says so on stderr and prints the title alone.
        eprintln!(
            "Extended INQUIRY data VPD page length too short={}",
            b.len()
        );
        return;
    }
    let byte = |i: usize| b.get(i).copied().unwrap_or(0);
    let bit = |i: usize, n: u8| (byte(i) >> n) & 1;
    let be16 = |i: usize| u16::from_be_bytes([byte(i), byte(i + 1)]);
    let _ = writeln!(
        s,
        "  ACTIVATE_MICROCODE={} SPT={} GRD_CHK={} APP_CHK={} REF_CHK={}",
        byte(4) >> 6,
        (byte(4) >> 3) & 7,
        bit(4, 2),
        bit(4, 1),
        bit(4, 0)
    );
    let _ = writeln!(
        s,
        "  UASK_SUP={} GROUP_SUP={} PRIOR_SUP={} HEADSUP={} ORDSUP={} SIMPSUP={}",
        bit(5, 5),
        bit(5, 4),
        bit(5, 3),
        bit(5, 2),
        bit(5, 1),
        bit(5, 0)
    );
    let _ = writeln!(
        s,
        "  WU_SUP={} [CRD_SUP={}] NV_SUP={} V_SUP={}",
        bit(6, 3),
        bit(6, 2),
        bit(6, 1),
        bit(6, 0)
    );
    let _ = writeln!(
        s,
        "  NO_PI_CHK={} P_I_I_SUP={} LUICLR={}",
        bit(7, 5),
        bit(7, 4),
        bit(7, 0)
    );
    let _ = writeln!(
        s,
        "  LU_COLL_TYPE={} R_SUP={} RTD_SUP={} HSSRELEF={} [CBCS={}]",
        byte(8) >> 5,
        bit(8, 4),
        bit(8, 3),
        bit(8, 1),
        bit(8, 0)
    );
    let _ = writeln!(s, "  Multi I_T nexus microcode download={}", byte(9) & 0xf);
    let _ = writeln!(s, "  Extended self-test completion minutes={}", be16(10));
    let _ = writeln!(
        s,
        "  POA_SUP={} HRA_SUP={} VSA_SUP={} DMS_VALID={}",
        bit(12, 7),
        bit(12, 6),
        bit(12, 5),
        bit(12, 4)
    );
    let _ = writeln!(s, "  Maximum supported sense data length={}", byte(13));
    let _ = writeln!(
        s,
        "  IBS={} IAS={} SAC={} NRD1={} NRD0={}",
        bit(14, 7),
        bit(14, 6),
        bit(14, 2),
        bit(14, 1),
        bit(14, 0)
    );
    let _ = writeln!(s, "  Maximum inquiry change logs={}", be16(15));
    let _ = writeln!(s, "  Maximum mode page change logs={}", be16(17));
    let _ = writeln!(
        s,
        "  DM_MD_4={} DM_MD_5={} DM_MD_6={} DM_MD_7={}",
        bit(19, 7),
        bit(19, 6),
        bit(19, 5),
        bit(19, 4)
    );
    let _ = writeln!(
        s,
        "  DM_MD_D={} DM_MD_E={} DM_MD_F={}",
        bit(19, 3),
        bit(19, 2),
        bit(19, 1)
    );
}

#[cfg(test)]
mod tests {
    use super::super::vpd::format_vpd;

    fn page(body: &[u8]) -> Vec<u8> {
        let mut p = vec![0, 0x86];
        p.extend_from_slice(&(body.len() as u16).to_be_bytes());
        p.extend_from_slice(body);
        p
    }

    /// What Debian's `sg_vpd --inhex=FILE --raw -p ei` (sg3_utils 1.46) printed for the
    /// same bytes: every field set to a distinct value, then every bit set.
    #[test]
    fn extended_inquiry_as_sg_vpd_decodes_it() {
        let mut body = [0u8; 60];
        body[..10].copy_from_slice(&[
            0b0110_1111,
            0b0011_1111,
            0b0000_1111,
            0b0011_0001,
            0b1011_1011,
            0x0a,
            0x04,
            0xd2,
            0xf0,
            0xfc,
        ]);
        body[10] = 0xff;
        assert_eq!(
            format_vpd(&page(&body), false),
            "extended INQUIRY data VPD page:
  ACTIVATE_MICROCODE=1 SPT=5 GRD_CHK=1 APP_CHK=1 REF_CHK=1
  UASK_SUP=1 GROUP_SUP=1 PRIOR_SUP=1 HEADSUP=1 ORDSUP=1 SIMPSUP=1
  WU_SUP=1 [CRD_SUP=1] NV_SUP=1 V_SUP=1
  NO_PI_CHK=1 P_I_I_SUP=1 LUICLR=1
  LU_COLL_TYPE=5 R_SUP=1 RTD_SUP=1 HSSRELEF=1 [CBCS=1]
  Multi I_T nexus microcode download=10
  Extended self-test completion minutes=1234
  POA_SUP=1 HRA_SUP=1 VSA_SUP=1 DMS_VALID=1
  Maximum supported sense data length=252
  IBS=1 IAS=1 SAC=1 NRD1=1 NRD0=1
  Maximum inquiry change logs=0
  Maximum mode page change logs=0
  DM_MD_4=0 DM_MD_5=0 DM_MD_6=0 DM_MD_7=0
  DM_MD_D=0 DM_MD_E=0 DM_MD_F=0
"
        );
        assert_eq!(
            format_vpd(&page(&[0xff; 60]), false),
            "extended INQUIRY data VPD page:
  ACTIVATE_MICROCODE=3 SPT=7 GRD_CHK=1 APP_CHK=1 REF_CHK=1
  UASK_SUP=1 GROUP_SUP=1 PRIOR_SUP=1 HEADSUP=1 ORDSUP=1 SIMPSUP=1
  WU_SUP=1 [CRD_SUP=1] NV_SUP=1 V_SUP=1
  NO_PI_CHK=1 P_I_I_SUP=1 LUICLR=1
  LU_COLL_TYPE=7 R_SUP=1 RTD_SUP=1 HSSRELEF=1 [CBCS=1]
  Multi I_T nexus microcode download=15
  Extended self-test completion minutes=65535
  POA_SUP=1 HRA_SUP=1 VSA_SUP=1 DMS_VALID=1
  Maximum supported sense data length=255
  IBS=1 IAS=1 SAC=1 NRD1=1 NRD0=1
  Maximum inquiry change logs=65535
  Maximum mode page change logs=65535
  DM_MD_4=1 DM_MD_5=1 DM_MD_6=1 DM_MD_7=1
  DM_MD_D=1 DM_MD_E=1 DM_MD_F=1
"
        );
    }

    /// A page cut short: what is missing reads as zero (a 12-byte page ends in the middle
    /// of the inquiry change logs field: 0xff00); under 7 bytes only the title is left.
    #[test]
    fn short_pages_as_sg_vpd_reads_them() {
        let text = format_vpd(&page(&[0xff; 12]), false);
        assert!(
            text.contains("  Maximum inquiry change logs=65280\n"),
            "{text}"
        );
        assert!(text.contains("  DM_MD_D=0 DM_MD_E=0 DM_MD_F=0\n"), "{text}");
        assert_eq!(
            format_vpd(&page(&[0xff; 2]), false),
            "extended INQUIRY data VPD page:\n"
        );
        // --hex: the title, then the page in hex.
        let hex = format_vpd(&page(&[0; 60]), true);
        assert!(hex.starts_with("extended INQUIRY data VPD page:\n 00     00 86 00 3c"));
    }
}
