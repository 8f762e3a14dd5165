//! `uvio inq DEVICE [--page PG] [--hex]`: the standard INQUIRY as `sg_inq DEVICE` prints
//! it, or VPD page PG as `sg_vpd --page=PG DEVICE` prints it (pages 0x00, 0x80, 0x83,
//! 0xb0, 0xb1 and 0xb2 decoded; any page in hex with `--hex`), from sg3_utils 1.46.

use std::fmt::Write;

use uvio::scsi_proto::cdb;

use super::vpd::format_vpd;
use super::{SgFailure, SgLun};
use crate::command::CmdResult;
use crate::open::Target;

/// sg_inq's first allocation length for the standard INQUIRY.
const SAFE_STD_INQ_LEN: usize = 36;
/// The first allocation length of a VPD page (longer pages are fetched again in full).
const VPD_ALLOC: usize = 252;
/// The pages decoded here.
pub const DECODED_PAGES: [u8; 7] = [0x00, 0x80, 0x83, 0x86, 0xb0, 0xb1, 0xb2];
/// sg_vpd's exit status for a page the LUN does not list in page 0x00:
/// `sg_convert_errno(EDOM)`, 50 + 33.
pub const NOT_SUPPORTED_STATUS: u8 = 83;

/// A VPD page as `--page` names it: a number (`0x83`, `131`, `83h`) or sg_vpd's
/// abbreviation (`sv`, `sn`, `di`, `bl`, `bdc`, `lbpv`).
pub fn parse_page(text: &str) -> Result<u8, String> {
    let page = match text {
        "sv" => 0x00,
        "sn" => 0x80,
        "di" => 0x83,
        "bl" => 0xb0,
        "bdc" => 0xb1,
        "lbpv" => 0xb2,
        _ => super::parse_num(text)?,
    };
    u8::try_from(page).map_err(|_| format!("VPD page `{text}` is out of range: 0 to 0xff"))
}

pub fn run(device: Target, page: Option<u8>, hex: bool) -> CmdResult {
    if let Some(pg) = page {
        if !hex && !DECODED_PAGES.contains(&pg) {
            return Err(SgFailure {
                status: 1,
                message: format!(
                    "VPD page 0x{pg:02x} is not decoded (uvio decodes 0x00, 0x80, 0x83, 0x86, \
                     0xb0, 0xb1 and 0xb2): add --hex to see it in hex"
                ),
            }
            .into());
        }
    }
    let mut lun = SgLun::open(device)?;
    match page {
        None => standard(&mut lun, hex),
        Some(pg) => vpd(&mut lun, pg, hex),
    }
}

/// A VPD page, fetched again in full when it is longer than the first allocation.
fn fetch_vpd(lun: &mut SgLun, page: u8) -> Result<Vec<u8>, SgFailure> {
    let what = "fetching VPD page";
    let mut data = lun
        .run(cdb::inquiry_vpd(page, VPD_ALLOC as u16), VPD_ALLOC)
        .map_err(|e| e.failure(what))?;
    let full = data
        .get(2..4)
        .map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])) + 4);
    if full > VPD_ALLOC {
        data = lun
            .run(cdb::inquiry_vpd(page, full as u16), full)
            .map_err(|e| e.failure(what))?;
    }
    if data.len() < 4 || data[1] != page {
        return Err(SgFailure {
            status: super::status::OTHER,
            message: format!(
                "{what} 0x{page:02x}: malformed reply ({} bytes)",
                data.len()
            ),
        });
    }
    data.truncate(full.min(data.len()));
    Ok(data)
}

/// Whether page 0x00 lists `page`.
fn lists(supported: &[u8], page: u8) -> bool {
    let n = usize::from(supported[3]).min(supported.len() - 4);
    supported[4..4 + n].contains(&page)
}

fn standard(lun: &mut SgLun, hex: bool) -> CmdResult {
    let what = "standard INQUIRY";
    let mut data = lun
        .run(cdb::inquiry(SAFE_STD_INQ_LEN as u16), SAFE_STD_INQ_LEN)
        .map_err(|e| e.failure(what))?;
    let len = data.get(4).map_or(0, |&b| usize::from(b) + 5);
    if len > SAFE_STD_INQ_LEN && len < 256 {
        data = lun
            .run(cdb::inquiry(len as u16), len)
            .map_err(|e| e.failure(what))?;
    }
    data.truncate(len.min(data.len()));
    if hex {
        print!("{}", hex_dump(&data));
        return Ok(());
    }
    // sg_inq adds the unit serial number when page 0x00 lists page 0x80.
    let serial = match fetch_vpd(lun, 0x00) {
        Ok(sv) if lists(&sv, 0x80) => fetch_vpd(lun, 0x80).ok().map(|sn| serial_text(&sn)),
        _ => None,
    };
    print!("{}", format_standard(&data, serial.as_deref()));
    Ok(())
}

fn vpd(lun: &mut SgLun, page: u8, hex: bool) -> CmdResult {
    if page != 0x00 {
        let supported = fetch_vpd(lun, 0x00)?;
        if !lists(&supported, page) {
            return Err(SgFailure {
                status: NOT_SUPPORTED_STATUS,
                message: format!(
                    "VPD page 0x{page:02x} is not in the LUN's supported VPD pages (page 0x00)"
                ),
            }
            .into());
        }
    }
    let data = fetch_vpd(lun, page)?;
    print!("{}", format_vpd(&data, hex));
    Ok(())
}

/// sg3_utils' `hex2stdout(.., 0)`: offset, 16 bytes in two groups of 8, ASCII.
pub fn hex_dump(data: &[u8]) -> String {
    let mut out = String::new();
    for (line, chunk) in data.chunks(16).enumerate() {
        let mut buf = vec![b' '; 80];
        let addr = format!("{:02x}", line * 16);
        buf[1..1 + addr.len()].copy_from_slice(addr.as_bytes());
        for (i, &c) in chunk.iter().enumerate() {
            let pos = 8 + 3 * i + usize::from(i >= 8);
            buf[pos..pos + 2].copy_from_slice(format!("{c:02x}").as_bytes());
            buf[60 + i] = if (0x20..0x7f).contains(&c) { c } else { b'.' };
        }
        buf.truncate(60 + chunk.len());
        out.push_str(&String::from_utf8_lossy(&buf));
        out.push('\n');
    }
    out
}

/// sg3_utils' peripheral device type names (`sg_lib_pdt_strs`).
pub fn pdt_name(pdt: u8) -> String {
    const NAMES: [&str; 21] = [
        "disk",
        "tape",
        "printer",
        "processor",
        "write once optical disk",
        "cd/dvd",
        "scanner",
        "optical memory device",
        "medium changer",
        "communications",
        "graphics [0xa]",
        "graphics [0xb]",
        "storage array controller",
        "enclosure services device",
        "simplified direct access device",
        "optical card reader/writer device",
        "bridge controller commands",
        "object based storage",
        "automation/driver interface",
        "security manager device",
        "host managed zoned block",
    ];
    match pdt {
        0x1e => "well known logical unit".into(),
        0x1f => "unknown or no device type".into(),
        p if usize::from(p) < NAMES.len() => NAMES[usize::from(p)].into(),
        p => format!("0x{p:x}"),
    }
}

const ANSI_VERSIONS: [&str; 16] = [
    "no conformance claimed",
    "SCSI-1",
    "SCSI-2",
    "SPC",
    "SPC-2",
    "SPC-3",
    "SPC-4",
    "SPC-5",
    "ecma=1, [8h]",
    "ecma=1, [9h]",
    "ecma=1, [Ah]",
    "ecma=1, [Bh]",
    "reserved [Ch]",
    "reserved [Dh]",
    "reserved [Eh]",
    "reserved [Fh]",
];

/// Bytes as C's `%s` prints a NUL-terminated copy of them.
pub(super) fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The unit serial number as sg_inq shows it: up to the first NUL, unprintable bytes as
/// spaces.
fn serial_text(page: &[u8]) -> String {
    page.get(4..)
        .unwrap_or_default()
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| {
            if (0x20..0x7f).contains(&c) {
                c as char
            } else {
                ' '
            }
        })
        .collect()
}

/// The standard INQUIRY data (`act_len` bytes) as sg_inq prints it.
pub fn format_standard(rp: &[u8], serial: Option<&str>) -> String {
    let mut s = String::new();
    let bit = |byte: usize, mask: u8| u8::from(rp.get(byte).is_some_and(|b| b & mask != 0));
    let byte = |i: usize| rp.get(i).copied().unwrap_or(0);
    let pqual = byte(0) >> 5;
    s.push_str("standard INQUIRY:");
    s.push_str(match pqual {
        0 => "\n",
        1 => " [PQ indicates LU temporarily unavailable]\n",
        3 => " [PQ indicates LU not accessible via this port]\n",
        _ => "",
    });
    if pqual == 2 || pqual > 3 {
        let _ = writeln!(s, " [reserved or vendor specific qualifier [{pqual}]]");
    }
    let act_len = rp.len();
    let len = usize::from(byte(4)) + 5;
    let ansi = byte(2) & 7;
    let pdt = byte(0) & 0x1f;
    let _ = writeln!(
        s,
        "  PQual={pqual}  PDT={pdt}  RMB={}  LU_CONG={}  hot_pluggable={}  version=0x{:02x}  [{}]",
        bit(1, 0x80),
        bit(1, 0x40),
        (byte(1) >> 4) & 3,
        byte(2),
        ANSI_VERSIONS[usize::from(ansi)]
    );
    let _ = writeln!(
        s,
        "  [AERC={}]  [TrmTsk={}]  NormACA={}  HiSUP={}  Resp_data_format={}",
        bit(3, 0x80),
        bit(3, 0x40),
        bit(3, 0x20),
        bit(3, 0x10),
        byte(3) & 0xf
    );
    let _ = writeln!(
        s,
        "  SCCS={}  ACC={}  TPGS={}  3PC={}  Protect={}  [BQue={}]",
        bit(5, 0x80),
        bit(5, 0x40),
        (byte(5) >> 4) & 3,
        bit(5, 0x08),
        bit(5, 0x01),
        bit(6, 0x80)
    );
    let multip = if byte(6) & 0x10 != 0 {
        format!("MultiP=1 (VS={})", bit(6, 0x20))
    } else {
        "MultiP=0".to_string()
    };
    let _ = writeln!(
        s,
        "  EncServ={}  {multip}  [MChngr={}]  [ACKREQQ={}]  Addr16={}",
        bit(6, 0x40),
        bit(6, 0x08),
        bit(6, 0x04),
        bit(6, 0x01)
    );
    let _ = writeln!(
        s,
        "  [RelAdr={}]  WBus16={}  Sync={}  [Linked={}]  [TranDis={}]  CmdQue={}",
        bit(7, 0x80),
        bit(7, 0x20),
        bit(7, 0x10),
        bit(7, 0x08),
        bit(7, 0x04),
        bit(7, 0x02)
    );
    if act_len > 56 {
        let _ = writeln!(
            s,
            "  [SPI: Clocking=0x{:x}  QAS={}  IUS={}]",
            (byte(56) & 0x0c) >> 2,
            bit(56, 2),
            bit(56, 1)
        );
    }
    if act_len >= len {
        let _ = write!(s, "    length={len} (0x{len:x})");
    } else {
        let _ = write!(
            s,
            "    length={len} (0x{len:x}), but only fetched {act_len} bytes"
        );
    }
    if ansi >= 2 && len < SAFE_STD_INQ_LEN {
        s.push_str("\n  [for SCSI>=2, len>=36 is expected]");
    }
    let _ = writeln!(s, "   Peripheral device type: {}", pdt_name(pdt));
    if act_len <= 8 {
        let _ = writeln!(
            s,
            " Inquiry response length={act_len}, no vendor, product or revision data"
        );
    } else {
        let vendor: Vec<u8> = rp[8..act_len.min(16)]
            .iter()
            .map(|&c| if c == 9 { b' ' } else { c })
            .collect();
        let _ = writeln!(s, " Vendor identification: {}", c_str(&vendor));
        if act_len <= 16 {
            s.push_str(" Product identification: <none>\n");
        } else {
            let _ = writeln!(
                s,
                " Product identification: {}",
                c_str(&rp[16..act_len.min(32)])
            );
        }
        if act_len <= 32 {
            s.push_str(" Product revision level: <none>\n");
        } else {
            let _ = writeln!(
                s,
                " Product revision level: {}",
                c_str(&rp[32..act_len.min(36)])
            );
        }
    }
    if let Some(sn) = serial.filter(|sn| !sn.is_empty()) {
        let _ = writeln!(s, " Unit serial number: {sn}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU's standard INQUIRY reply for a scsi-hd (captured in the guest with `sg_inq -H`).
    const QEMU_HD: [u8; 36] = *b"\x00\x00\x05\x12\x1f\x00\x00\x12QEMU    QEMU HARDDISK   2.5+";

    #[test]
    fn standard_inquiry_as_sg_inq() {
        assert_eq!(
            format_standard(&QEMU_HD, Some("UVIO-SER-0")),
            "standard INQUIRY:\n  \
             PQual=0  PDT=0  RMB=0  LU_CONG=0  hot_pluggable=0  version=0x05  [SPC-3]\n  \
             [AERC=0]  [TrmTsk=0]  NormACA=0  HiSUP=1  Resp_data_format=2\n  \
             SCCS=0  ACC=0  TPGS=0  3PC=0  Protect=0  [BQue=0]\n  \
             EncServ=0  MultiP=0  [MChngr=0]  [ACKREQQ=0]  Addr16=0\n  \
             [RelAdr=0]  WBus16=0  Sync=1  [Linked=0]  [TranDis=0]  CmdQue=1\n    \
             length=36 (0x24)   Peripheral device type: disk\n \
             Vendor identification: QEMU    \n \
             Product identification: QEMU HARDDISK   \n \
             Product revision level: 2.5+\n \
             Unit serial number: UVIO-SER-0\n"
        );
    }

    #[test]
    fn hex_as_sg3_utils_prints_it() {
        assert_eq!(
            hex_dump(&QEMU_HD),
            " 00     00 00 05 12 1f 00 00 12  51 45 4d 55 20 20 20 20    ........QEMU    \n \
             10     51 45 4d 55 20 48 41 52  44 44 49 53 4b 20 20 20    QEMU HARDDISK   \n \
             20     32 2e 35 2b                                         2.5+\n"
        );
    }

    #[test]
    fn vpd_pages_as_sg_vpd() {
        let sv = [0, 0, 0, 6, 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2];
        assert_eq!(
            format_vpd(&sv, false),
            "Supported VPD pages VPD page:\n  Supported VPD pages [sv]\n  \
             Unit serial number [sn]\n  Device identification [di]\n  \
             Block limits (SBC) [bl]\n  Block device characteristics (SBC) [bdc]\n  \
             Logical block provisioning (SBC) [lbpv]\n"
        );
        let di = *b"\x00\x83\x00\x0e\x02\x00\x00\x0aUVIO-SER-0";
        assert_eq!(
            format_vpd(&di, false),
            "Device Identification VPD page:\n  Addressed logical unit:\n    \
             designator type: vendor specific [0x0],  code set: ASCII\n      \
             vendor specific: UVIO-SER-0\n"
        );
        assert_eq!(
            format_vpd(&di, true),
            "Device Identification VPD page:\n \
             00     00 83 00 0e 02 00 00 0a  55 56 49 4f 2d 53 45 52    ........UVIO-SER\n \
             10     2d 30                                               -0\n"
        );
        let mut lbp = [0u8; 8];
        lbp[1] = 0xb2;
        lbp[3] = 4;
        lbp[5] = 0xe0;
        lbp[6] = 2;
        assert!(format_vpd(&lbp, false).ends_with(
            "  Provisioning type: 2 (thin provisioned)\n  \
             Threshold percentage: 0 [percentages not supported]\n"
        ));
    }

    #[test]
    fn pages_by_number_or_acronym() {
        assert_eq!(parse_page("0x83"), Ok(0x83));
        assert_eq!(parse_page("di"), Ok(0x83));
        assert_eq!(parse_page("178"), Ok(0xb2));
        assert!(parse_page("0x100").is_err());
        assert!(parse_page("xyz").is_err());
    }
}
