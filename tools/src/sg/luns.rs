//! `uvio luns BDF/C:T [--select N] [--decode]`: REPORT LUNS to the target (its LUN 0
//! address, as the kernel's scan sends it), printed as sg_luns prints it.

use std::fmt::Write;
use std::str::FromStr;

use uvio::pci::PciAddress;
use uvio::scsi_proto::cdb;

use super::{status, SgFailure, SgLun};
use crate::command::CmdResult;

/// sg_luns' default allocation length.
const ALLOC: usize = 8192;

/// What `uvio luns` names: `BDF/C:T`.
#[derive(Debug, Clone, Copy)]
pub struct TargetAddress {
    pub bdf: PciAddress,
    pub channel: u16,
    pub target: u16,
}

impl FromStr for TargetAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (bdf, ct) = s.split_once('/').ok_or_else(|| {
            format!("`{s}` is not a target: expected BDF/C:T, for example 0000:00:04.0/0:2")
        })?;
        let bdf: PciAddress = bdf.parse().map_err(|e| format!("{e}"))?;
        let bad = || format!("`{ct}` is not a target address: expected C:T, for example 0:2");
        let (c, t) = ct.split_once(':').ok_or_else(bad)?;
        let num = |x: &str| {
            if x.is_empty() || !x.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            x.parse::<u16>().map_err(|_| bad())
        };
        let (channel, target) = (num(c)?, num(t)?);
        if target > 255 {
            return Err(format!("target {target} is out of range: 0 to 255"));
        }
        Ok(TargetAddress {
            bdf,
            channel,
            target,
        })
    }
}

pub fn run(address: TargetAddress, select: u32, decode: bool) -> CmdResult {
    let select = u8::try_from(select).map_err(|_| SgFailure {
        status: 1,
        message: format!("--select {select} is out of range: 0 to 255"),
    })?;
    let mut lun = SgLun::open_target(address.bdf, address.channel, address.target)?;
    let lu_cong = if decode {
        let inq = lun
            .run(cdb::inquiry(36), 36)
            .map_err(|e| e.failure("fetching standard INQUIRY response"))?;
        inq.get(1).is_some_and(|b| b & 0x40 != 0)
    } else {
        false
    };
    let data = lun
        .run(cdb::report_luns(select, ALLOC as u32), ALLOC)
        .map_err(|e| match e.status {
            status::INVALID_OP => SgFailure {
                status: e.status,
                message: "Report Luns command not supported (support mandatory in SPC-3)".into(),
            },
            _ => e.failure("Report Luns command"),
        })?;
    print!("{}", format_luns(&data, select, decode, lu_cong));
    Ok(())
}

/// A REPORT LUNS reply as sg_luns prints it (Debian's 1.46 keeps its "imples").
pub fn format_luns(data: &[u8], select: u8, decode: bool, lu_cong: bool) -> String {
    let mut s = String::new();
    let list_len = data
        .get(..4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])) as usize;
    let luns = list_len / 8;
    let _ = writeln!(
        s,
        "Lun list length = {list_len} which imples {luns} lun entr{}",
        if luns == 1 { "y" } else { "ies" }
    );
    let shown = luns.min(data.len().saturating_sub(8) / 8);
    for k in 0..shown {
        if k == 0 {
            let _ = writeln!(s, "Report luns [select_report=0x{select:x}]:");
        }
        let lun = &data[8 + 8 * k..16 + 8 * k];
        s.push_str("    ");
        for b in lun {
            let _ = write!(s, "{b:02x}");
        }
        s.push('\n');
        if decode {
            decode_lun(&mut s, "      ", lun, lu_cong);
        }
    }
    s
}

/// sg_luns' `decode_lun` (decimal form, not verbose).
fn decode_lun(s: &mut String, leadin: &str, lun: &[u8], lu_cong: bool) {
    if lun[0] == 0xff {
        let _ = writeln!(s, "{leadin}Logical unit _not_ specified");
        return;
    }
    let mut admin_lu_cong = lu_cong;
    for k in 0..4 {
        let p = &lun[2 * k..];
        let mut l = leadin.to_string();
        if k > 0 {
            if lu_cong {
                admin_lu_cong = false;
                if p[0] == 0 && p[1] == 0 {
                    let _ = writeln!(s, "{l}>>>> Administrative LU");
                    break;
                }
                let _ = writeln!(s, "{l}>>Subsidiary element:");
            } else {
                let which = ["", "Second", "Third", "Fourth"][k];
                let _ = writeln!(s, "{l}>>{which} level addressing:");
            }
            l.push_str("  ");
        } else if lu_cong {
            let _ = writeln!(s, "{l}>>Administrative element:");
            l.push_str("  ");
        }
        let be16 = (u32::from(p[0]) << 8) | u32::from(p[1]);
        let method = p[0] >> 6;
        let mut next_level = false;
        match method {
            0 => {
                if lu_cong {
                    let _ = writeln!(s, "{l}Simple lu addressing: {}", be16 & 0x3fff);
                    next_level = admin_lu_cong;
                } else {
                    let bus_id = p[0] & 0x3f;
                    if bus_id == 0 {
                        let _ = writeln!(s, "{l}Peripheral device addressing: lun={}", p[1]);
                    } else {
                        let _ = writeln!(
                            s,
                            "{l}Peripheral device addressing: bus_id={bus_id}, target={}",
                            p[1]
                        );
                        next_level = true;
                    }
                }
            }
            1 => {
                let n = be16 & 0x3fff;
                if lu_cong {
                    let _ = writeln!(
                        s,
                        "{l}Since LU_CONG=1, unexpected Flat space addressing: lun=0x{n:04x}"
                    );
                } else {
                    let _ = writeln!(s, "{l}Flat space addressing: lun={n}");
                }
            }
            2 => {
                let (target, bus_id, n) = (p[0] & 0x3f, (p[1] >> 5) & 7, p[1] & 0x1f);
                if lu_cong {
                    let _ = writeln!(s, "{l}Since LU_CONG=1, unexpected lu addressing: bus_id=0x{bus_id:x}, target=0x{target:02x}, lun=0x{n:02x}");
                } else {
                    let _ = writeln!(
                        s,
                        "{l}Logical unit addressing: bus_id={bus_id}, target={target}, lun={n}"
                    );
                }
            }
            _ => decode_extended(s, &l, p),
        }
        if next_level {
            continue;
        }
        if method == 2 && k < 3 && (p[2] != 0 || p[3] != 0) {
            let _ = writeln!(s, "{l}<<unexpected data at next level, continue>>");
        }
        break;
    }
}

/// Extended logical unit addressing (address method 3).
fn decode_extended(s: &mut String, l: &str, p: &[u8]) {
    let len_fld = (p[0] & 0x30) >> 4;
    let eam = p[0] & 0xf;
    let be = |n: usize| {
        p[1..1 + n]
            .iter()
            .fold(0u64, |a, &b| (a << 8) | u64::from(b))
    };
    match (len_fld, eam) {
        (0, 1) => {
            let wk = "well known logical unit";
            let name = match p[1] {
                1 => "REPORT LUNS",
                2 => "ACCESS CONTROLS",
                3 => "TARGET LOG PAGES",
                4 => "SECURITY PROTOCOL",
                5 => "MANAGEMENT PROTOCOL",
                6 => "TARGET COMMANDS",
                x => {
                    let _ = writeln!(s, "{l}{wk} {x}");
                    return;
                }
            };
            let _ = writeln!(s, "{l}{name} {wk}");
        }
        (1, 2) => {
            let _ = writeln!(s, "{l}Extended flat space addressing: lun={}", be(3));
        }
        (2, 2) => {
            let _ = writeln!(s, "{l}Long extended flat space addressing: lun={}", be(5));
        }
        (3, 0xf) => {
            let _ = writeln!(s, "{l}Logical unit _not_ specified addressing");
        }
        (0 | 1, _) => {
            let x = if len_fld == 1 { be(3) } else { u64::from(p[1]) };
            let _ = writeln!(
                s,
                "{l}Extended logical unit addressing: length={len_fld}, e.a. method={eam}, value={x}"
            );
        }
        _ => {
            let x = be(if len_fld == 2 { 5 } else { 7 });
            let _ = writeln!(
                s,
                "{l}Extended logical unit addressing: length={len_fld}, e. a. method={eam}, value={x}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU's REPORT LUNS reply for a target with LUNs 5 and 300 (flat addressing).
    fn reply() -> Vec<u8> {
        let mut r = vec![0, 0, 0, 16, 0, 0, 0, 0];
        r.extend_from_slice(&[0, 5, 0, 0, 0, 0, 0, 0]);
        r.extend_from_slice(&[0x41, 0x2c, 0, 0, 0, 0, 0, 0]);
        r
    }

    #[test]
    fn lists_as_sg_luns() {
        assert_eq!(
            format_luns(&reply(), 0, false, false),
            "Lun list length = 16 which imples 2 lun entries\nReport luns [select_report=0x0]:\n    \
             0005000000000000\n    412c000000000000\n"
        );
    }

    #[test]
    fn decodes_as_sg_luns() {
        assert_eq!(
            format_luns(&reply(), 2, true, false),
            "Lun list length = 16 which imples 2 lun entries\nReport luns [select_report=0x2]:\n    \
             0005000000000000\n      Peripheral device addressing: lun=5\n    \
             412c000000000000\n      Flat space addressing: lun=300\n"
        );
        let mut wlun = vec![0, 0, 0, 8, 0, 0, 0, 0];
        wlun.extend_from_slice(&[0xc1, 0x01, 0, 0, 0, 0, 0, 0]);
        assert!(format_luns(&wlun, 1, true, false)
            .ends_with("      REPORT LUNS well known logical unit\n"));
        assert!(format_luns(&wlun, 1, true, false).contains("imples 1 lun entry\n"));
    }

    #[test]
    fn target_addresses() {
        let t: TargetAddress = "0000:00:04.0/0:2".parse().unwrap();
        assert_eq!((t.channel, t.target), (0, 2));
        assert!("0000:00:04.0/0:x".parse::<TargetAddress>().is_err());
        assert!("0000:00:04.0/0:256".parse::<TargetAddress>().is_err());
        assert!("0000:00:04.0".parse::<TargetAddress>().is_err());
    }
}
