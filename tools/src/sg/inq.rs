//! `uvio inq DEVICE [--page PG] [--hex]`: the standard INQUIRY as `sg_inq DEVICE` prints
//! it, or VPD page PG as `sg_vpd --page=PG DEVICE` prints it (pages 0x00, 0x80, 0x83,
//! 0xb0, 0xb1 and 0xb2 decoded; any page in hex with `--hex`), from sg3_utils 1.46.

use std::fmt::Write;

use uvio::scsi_proto::cdb;

use super::{SgFailure, SgLun};
use crate::command::CmdResult;
use crate::open::Target;

/// sg_inq's first allocation length for the standard INQUIRY.
const SAFE_STD_INQ_LEN: usize = 36;
/// The first allocation length of a VPD page (longer pages are fetched again in full).
const VPD_ALLOC: usize = 252;
/// The pages decoded here.
pub const DECODED_PAGES: [u8; 6] = [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2];
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
                    "VPD page 0x{pg:02x} is not decoded (uvio decodes 0x00, 0x80, 0x83, 0xb0, \
                     0xb1 and 0xb2): add --hex to see it in hex"
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
fn c_str(bytes: &[u8]) -> String {
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

/// The name and sg_vpd acronym of a VPD page, as page 0x00 lists it.
fn page_name(page: u8) -> Option<(&'static str, &'static str)> {
    Some(match page {
        0x00 => ("Supported VPD pages", "sv"),
        0x80 => ("Unit serial number", "sn"),
        0x81 => ("Implemented operating definition (obsolete)", "iod"),
        0x82 => ("ASCII implemented operating definition (obsolete)", "aod"),
        0x83 => ("Device identification", "di"),
        0x84 => ("Software interface identification", "sii"),
        0x85 => ("Management network addresses", "mna"),
        0x86 => ("Extended inquiry data", "ei"),
        0x87 => ("Mode page policy", "mpp"),
        0x88 => ("SCSI ports", "sp"),
        0x89 => ("ATA information (SAT)", "ai"),
        0x8a => ("Power condition", "pc"),
        0x8b => ("Device constituents", "dc"),
        0x8c => ("CFA profile information", "cfa"),
        0x8d => ("Power consumption", "psm"),
        0x8f => ("Third party copy", "tpc"),
        0x90 => ("Protocol-specific logical unit information", "pslu"),
        0x91 => ("Protocol-specific port information", "pspo"),
        0x92 => ("SCSI feature sets", "sfs"),
        0xb0 => ("Block limits (SBC)", "bl"),
        0xb1 => ("Block device characteristics (SBC)", "bdc"),
        0xb2 => ("Logical block provisioning (SBC)", "lbpv"),
        0xb3 => ("Referrals (SBC)", "ref"),
        0xb4 => ("Supported block lengths and protection types (SBC)", "sbl"),
        0xb5 => ("Block device characteristics extension (SBC)", "bdce"),
        0xb6 => ("Zoned block device characteristics", "zbdch"),
        0xb7 => ("Block limits extension (SBC)", "ble"),
        _ => return None,
    })
}

/// A VPD page as `sg_vpd --page=PG` prints it (`hex`: as `sg_vpd --hex` does).
pub fn format_vpd(b: &[u8], hex: bool) -> String {
    let page = b[1];
    let pdt = b[0] & 0x1f;
    let sbc = matches!(pdt, 0 | 4 | 7 | 0x14);
    let title = match page {
        0x00 => Some("Supported VPD pages VPD page:"),
        0x80 => Some("Unit serial number VPD page:"),
        0x83 => Some("Device Identification VPD page:"),
        0xb0 if sbc => Some("Block limits VPD page (SBC):"),
        0xb1 if sbc => Some("Block device characteristics VPD page (SBC):"),
        0xb2 if sbc => Some("Logical block provisioning VPD page (SBC):"),
        _ => None,
    };
    let mut s = match title {
        Some(t) => format!("{t}\n"),
        None if [0xb0, 0xb1, 0xb2].contains(&page) => {
            format!("VPD page=0x{page:x}, pdt=0x{pdt:x}:\n")
        }
        None => String::new(),
    };
    if hex || title.is_none() {
        s.push_str(&hex_dump(b));
        return s;
    }
    match page {
        0x00 => {
            let n = usize::from(b[3]).min(b.len() - 4);
            for &pn in &b[4..4 + n] {
                match page_name(pn) {
                    Some((name, acron)) => {
                        let _ = writeln!(s, "  {name} [{acron}]");
                    }
                    None => {
                        let _ = writeln!(s, "  0x{pn:x}");
                    }
                }
            }
        }
        0x80 => {
            let _ = writeln!(s, "  Unit serial number: {}", c_str(&b[4..]));
        }
        0x83 => decode_id_vpd(&mut s, &b[4..]),
        0xb0 => decode_block_limits(&mut s, b),
        0xb1 => decode_block_dev_chars(&mut s, b),
        _ => decode_lb_provisioning(&mut s, b),
    }
    s
}

const ASSOC: [&str; 4] = [
    "Addressed logical unit",
    "Target port",
    "Target device that contains addressed lu",
    "Reserved [0x3]",
];

fn desig_type_name(t: u8) -> String {
    const NAMES: [&str; 11] = [
        "vendor specific [0x0]",
        "T10 vendor identification",
        "EUI-64 based",
        "NAA",
        "Relative target port",
        "Target port group",
        "Logical unit group",
        "MD5 logical unit identifier",
        "SCSI name string",
        "Protocol specific port identifier",
        "UUID identifier",
    ];
    NAMES
        .get(usize::from(t))
        .map_or_else(|| format!("Reserved [0x{t:x}]"), |n| n.to_string())
}

fn code_set_name(c: u8) -> String {
    match c {
        1 => "Binary".into(),
        2 => "ASCII".into(),
        3 => "UTF-8".into(),
        c => format!("Reserved [0x{c:x}]"),
    }
}

fn hex_bytes(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The designation descriptors of page 0x83, grouped by association as sg_vpd does.
fn decode_id_vpd(s: &mut String, descs: &[u8]) {
    for assoc in 0..3u8 {
        let mut printed = false;
        let mut off = 0;
        while off + 4 <= descs.len() {
            let d = &descs[off..];
            let dlen = usize::from(d[3]);
            off += 4 + dlen;
            if (d[1] >> 4) & 3 != assoc || 4 + dlen > d.len() {
                continue;
            }
            if !printed {
                printed = true;
                let _ = writeln!(s, "  {}:", ASSOC[usize::from(assoc)]);
            }
            designator(s, &d[..4 + dlen]);
        }
    }
}

/// `sg_get_designation_descriptor_str` for one descriptor (not `--long`).
fn designator(s: &mut String, d: &[u8]) {
    let ip = &d[4..];
    let c_set = d[0] & 0xf;
    let piv = d[1] & 0x80 != 0;
    let assoc = (d[1] >> 4) & 3;
    let kind = d[1] & 0xf;
    let _ = writeln!(
        s,
        "    designator type: {},  code set: {}",
        desig_type_name(kind),
        code_set_name(c_set)
    );
    if piv && (assoc == 1 || assoc == 2) {
        let _ = writeln!(s, "     transport: 0x{:x}", d[0] >> 4);
    }
    let printable = |b: &[u8]| b.iter().all(|c| (0x20..0x7f).contains(c));
    match kind {
        0 if (c_set == 1 || c_set == 2) && printable(ip) => {
            let _ = writeln!(s, "      vendor specific: {}", String::from_utf8_lossy(ip));
        }
        1 => {
            let _ = writeln!(s, "      vendor id: {}", c_str(&ip[..ip.len().min(8)]));
            if ip.len() > 8 {
                if c_set == 2 || c_set == 3 {
                    let _ = writeln!(
                        s,
                        "      vendor specific: {}",
                        String::from_utf8_lossy(&ip[8..])
                    );
                } else {
                    let _ = writeln!(s, "      vendor specific: 0x{}", hex_bytes(&ip[8..]));
                }
            }
        }
        2 if [8, 12, 16].contains(&ip.len()) => {
            let _ = writeln!(s, "      0x{}", hex_bytes(ip));
        }
        3 if c_set == 1
            && matches!(
                (ip.first().map(|b| b >> 4), ip.len()),
                (Some(2 | 3 | 5), 8) | (Some(6), 16)
            ) =>
        {
            let _ = writeln!(s, "      0x{}", hex_bytes(ip));
        }
        4..=6 if c_set == 1 && ip.len() == 4 => {
            let label = match kind {
                4 => "Relative target port",
                5 => "Target port group",
                _ => "Logical unit group",
            };
            let _ = writeln!(
                s,
                "      {label}: 0x{:x}",
                u16::from_be_bytes([ip[2], ip[3]])
            );
        }
        8 if c_set == 2 || c_set == 3 => {
            let _ = writeln!(s, "      SCSI name string:");
            let _ = writeln!(s, "      {}", c_str(ip));
        }
        _ => {
            // Forms sg3_utils words in ways not reproduced here: the bytes in hex.
            for line in hex_dump(ip).lines() {
                let _ = writeln!(s, "{line}");
            }
        }
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn blocks_or(s: &mut String, label: &str, v: u32, zero: &str) {
    if v == 0 {
        let _ = writeln!(s, "  {label}: 0 blocks [{zero}]");
    } else {
        let _ = writeln!(s, "  {label}: {v} blocks");
    }
}

/// Block limits (0xb0), as sg_vpd's `decode_b0_vpd` prints it for SBC devices.
fn decode_block_limits(s: &mut String, b: &[u8]) {
    let len = b.len();
    if len < 16 {
        return;
    }
    let _ = writeln!(s, "  Write same non-zero (WSNZ): {}", b[4] & 1);
    if b[5] == 0 {
        s.push_str("  Maximum compare and write length: 0 blocks [Command not implemented]\n");
    } else {
        let _ = writeln!(s, "  Maximum compare and write length: {} blocks", b[5]);
    }
    let otlg = u32::from(u16::from_be_bytes([b[6], b[7]]));
    blocks_or(
        s,
        "Optimal transfer length granularity",
        otlg,
        "not reported",
    );
    blocks_or(s, "Maximum transfer length", be32(b, 8), "not reported");
    blocks_or(s, "Optimal transfer length", be32(b, 12), "not reported");
    if len > 19 {
        blocks_or(
            s,
            "Maximum prefetch transfer length",
            be32(b, 16),
            "ignored",
        );
    }
    if len > 27 {
        for (label, at) in [
            ("Maximum unmap LBA count", 20),
            ("Maximum unmap block descriptor count", 24),
        ] {
            match be32(b, at) {
                0 => {
                    let _ = writeln!(s, "  {label}: 0 [Unmap command not implemented]");
                }
                u32::MAX => {
                    let _ = writeln!(s, "  {label}: -1 [unbounded]");
                }
                v => {
                    let _ = writeln!(s, "  {label}: {v}");
                }
            }
        }
    }
    if len > 35 {
        blocks_or(s, "Optimal unmap granularity", be32(b, 28), "not reported");
        let valid = b[32] & 0x80 != 0;
        let _ = writeln!(s, "  Unmap granularity alignment valid: {valid}");
        let _ = writeln!(
            s,
            "  Unmap granularity alignment: {}{}",
            be32(b, 32) & 0x7fff_ffff,
            if valid { "" } else { " [invalid]" }
        );
    }
    if len > 43 {
        let v = u64::from_be_bytes(b[36..44].try_into().unwrap_or_default());
        if v == 0 {
            s.push_str("  Maximum write same length: 0 blocks [not reported]\n");
        } else {
            let _ = writeln!(s, "  Maximum write same length: 0x{v:x} blocks");
        }
    }
    if len >= 56 {
        blocks_or(
            s,
            "Maximum atomic transfer length",
            be32(b, 44),
            "not reported",
        );
        match be32(b, 48) {
            0 => s.push_str("  Atomic alignment: 0 [unaligned atomic writes permitted]\n"),
            v => {
                let _ = writeln!(s, "  Atomic alignment: {v}");
            }
        }
        // sg_vpd 1.46 leaves this bracket open.
        match be32(b, 52) {
            0 => {
                s.push_str("  Atomic transfer length granularity: 0 [no granularity requirement\n")
            }
            v => {
                let _ = writeln!(s, "  Atomic transfer length granularity: {v}");
            }
        }
    }
    if len >= 64 {
        blocks_or(
            s,
            "Maximum atomic transfer length with atomic boundary",
            be32(b, 56),
            "not reported",
        );
        blocks_or(
            s,
            "Maximum atomic boundary size",
            be32(b, 60),
            "can only write atomic 1 block",
        );
    }
}

/// Block device characteristics (0xb1), as sg_vpd's `decode_b1_vpd` prints it.
fn decode_block_dev_chars(s: &mut String, b: &[u8]) {
    if b.len() < 64 {
        return;
    }
    match u16::from_be_bytes([b[4], b[5]]) {
        0 => s.push_str("  Medium rotation rate is not reported\n"),
        1 => s.push_str("  Non-rotating medium (e.g. solid state)\n"),
        u if u < 0x401 || u == 0xffff => {
            let _ = writeln!(s, "  Reserved [0x{u:x}]");
        }
        u => {
            let _ = writeln!(s, "  Nominal rotation rate: {u} rpm");
        }
    }
    const PRODUCT: [&str; 8] = [
        "Not specified",
        "CFast",
        "CompactFlash",
        "MemoryStick",
        "MultiMediaCard",
        "Secure Digital Card (SD)",
        "XQD",
        "Universal Flash Storage Card (UFS)",
    ];
    match b[6] {
        u if usize::from(u) < PRODUCT.len() => {
            let _ = writeln!(s, "  Product type: {}", PRODUCT[usize::from(u)]);
        }
        u if u < 0xf0 => {
            let _ = writeln!(s, "  Product type: Reserved [0x{u:x}]");
        }
        u => {
            let _ = writeln!(s, "  Product type: Vendor specific [0x{u:x}]");
        }
    }
    let _ = writeln!(s, "  WABEREQ={}", (b[7] >> 6) & 3);
    let _ = writeln!(s, "  WACEREQ={}", (b[7] >> 4) & 3);
    s.push_str(match b[7] & 0xf {
        0 => "  Nominal form factor not reported\n",
        1 => "  Nominal form factor: 5.25 inch\n",
        2 => "  Nominal form factor: 3.5 inch\n",
        3 => "  Nominal form factor: 2.5 inch\n",
        4 => "  Nominal form factor: 1.8 inch\n",
        5 => "  Nominal form factor: less then 1.8 inch\n",
        _ => "  Nominal form factor: reserved\n",
    });
    let zoned = (b[8] >> 4) & 3;
    let _ = writeln!(
        s,
        "  ZONED={zoned}{}",
        ["", "  [host-aware]", "  [host-managed]", ""][usize::from(zoned)]
    );
    let _ = writeln!(s, "  RBWZ={}", (b[8] >> 3) & 1);
    let _ = writeln!(s, "  BOCS={}", (b[8] >> 2) & 1);
    let _ = writeln!(s, "  FUAB={}", (b[8] >> 1) & 1);
    let _ = writeln!(s, "  VBULS={}", b[8] & 1);
    let _ = writeln!(s, "  DEPOPULATION_TIME={} (seconds)", be32(b, 12));
}

/// Logical block provisioning (0xb2), as sg_vpd's `decode_block_lb_prov_vpd` prints it
/// (a provisioning group descriptor, when present, in hex).
fn decode_lb_provisioning(s: &mut String, b: &[u8]) {
    if b.len() < 8 {
        return;
    }
    let pt = b[6] & 7;
    let _ = writeln!(s, "  Unmap command supported (LBPU): {}", b[5] >> 7);
    let _ = writeln!(
        s,
        "  Write same (16) with unmap bit supported (LBPWS): {}",
        (b[5] >> 6) & 1
    );
    let _ = writeln!(
        s,
        "  Write same (10) with unmap bit supported (LBPWS10): {}",
        (b[5] >> 5) & 1
    );
    let _ = writeln!(
        s,
        "  Logical block provisioning read zeros (LBPRZ): {}",
        (b[5] >> 2) & 7
    );
    let _ = writeln!(
        s,
        "  Anchored LBAs supported (ANC_SUP): {}",
        (b[5] >> 1) & 1
    );
    let dp = b[5] & 1;
    match b[4] {
        0 => s.push_str("  Threshold exponent: 0 [threshold sets not supported]\n"),
        u => {
            let _ = writeln!(s, "  Threshold exponent: {u}");
        }
    }
    let _ = writeln!(s, "  Descriptor present (DP): {dp}");
    match (b[6] >> 3) & 0x1f {
        0 => s.push_str("  Minimum percentage: 0 [not reported]\n"),
        u => {
            let _ = writeln!(s, "  Minimum percentage: {u}");
        }
    }
    const PROV: [&str; 8] = [
        "not known or fully provisioned",
        "resource provisioned",
        "thin provisioned",
        "reserved [0x3]",
        "reserved [0x4]",
        "reserved [0x5]",
        "reserved [0x6]",
        "reserved [0x7]",
    ];
    let _ = writeln!(s, "  Provisioning type: {pt} ({})", PROV[usize::from(pt)]);
    match b[7] {
        0 => s.push_str("  Threshold percentage: 0 [percentages not supported]\n"),
        u => {
            let _ = writeln!(s, "  Threshold percentage: {u}");
        }
    }
    if dp != 0 && b.len() > 11 && b[11] != 0 {
        s.push_str("  Provisioning group descriptor:\n");
        let end = (12 + usize::from(b[11])).min(b.len());
        designator(s, &b[8..end]);
    }
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
