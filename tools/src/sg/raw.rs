//! `uvio raw DEVICE CDB-HEX... [--request N] [--send N] [--infile F] [--outfile F]`: any
//! SCSI command, reported as sg3_utils' `sg_raw` (0.4.34, sg3_utils 1.46) reports it, all
//! on stderr: `SCSI Status: ...`, the sense decoded for a CHECK CONDITION, then the data
//! received as a hex dump (or written to `--outfile`), with sg_raw's exit statuses (0, the
//! sense category, 1 for bad arguments, 15 for a LUN that cannot be opened).
//!
//! Where sg_raw takes 6 to 260 CDB bytes, uvio takes 6 to 16: its CDB type carries 16
//! bytes into virtio-scsi's request header. Bidirectional commands (both `--request` and
//! `--send`) need virtio-scsi's INOUT feature, which uvio does not negotiate: refused.

use std::io::{Read, Write};

use uvio::block::IoError;
use uvio::scsi::error::ScsiError;
use uvio::scsi::host::RawData;
use uvio::scsi_proto::cdb::Cdb;
use uvio::scsi_proto::sense::ScsiStatus;

use super::inq::hex_dump;
use super::{sense_category, status, SgFailure, SgLun};
use crate::command::CmdResult;
use crate::open::Target;

/// sg_raw's largest data transfer (`MAX_SCSI_DXLEN`, 1 MiB).
pub const MAX_TRANSFER: u32 = 1 << 20;
/// sg_raw's smallest CDB.
const MIN_CDB: usize = 6;

/// `uvio raw`'s arguments (sg_raw's option names).
#[derive(clap::Args, Debug)]
pub struct RawArgs {
    #[arg(value_name = "BDF/C:T:L")]
    pub device: Target,
    /// The CDB, one byte per argument in hex (one or two digits each): `12 00 00 00 60 00`.
    #[arg(value_name = "CDB-HEX", required = true, allow_hyphen_values = true)]
    pub cdb: Vec<String>,
    /// Data-in: request up to RLEN bytes (at most 1 MiB; `0x` hex, `k`/`m` suffixes).
    #[arg(short = 'r', long, value_name = "RLEN")]
    pub request: Option<String>,
    /// Data-out: send SLEN bytes, read from --infile (default: stdin).
    #[arg(short = 's', long, value_name = "SLEN")]
    pub send: Option<String>,
    /// Where the data to send comes from (default: stdin).
    #[arg(short = 'i', long, value_name = "IFILE")]
    pub infile: Option<std::path::PathBuf>,
    /// Write the data received to OFILE (`-` for stdout) instead of a hex dump.
    #[arg(short = 'o', long, value_name = "OFILE")]
    pub outfile: Option<String>,
    /// Do not print the sense of a CHECK CONDITION.
    #[arg(short = 'n', long)]
    pub nosense: bool,
}

/// A syntax error: sg_raw's message and its exit status 1 (SG_LIB_SYNTAX_ERROR).
fn syntax(message: String) -> SgFailure {
    SgFailure { status: 1, message }
}

/// A length as sg3_utils' `sg_get_num` reads one: decimal, `0x` hex or an `h` suffix, or
/// decimal with `k` (1024) or `m` (1048576).
fn parse_len(text: &str) -> Option<u32> {
    let t = text.trim();
    let (digits, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1024),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        _ => (t, 1),
    };
    let n = if mult == 1 {
        super::parse_num(digits).ok()?
    } else {
        digits.parse::<u32>().ok()?
    };
    n.checked_mul(mult)
}

/// The CDB bytes as sg_raw reads them: each argument one hex byte (`strtol(.., 16)`, so
/// `0x12` and `c` pass).
pub fn parse_cdb(args: &[String]) -> Result<Cdb, SgFailure> {
    let mut bytes = Vec::new();
    for a in args {
        let digits = a
            .strip_prefix("0x")
            .or_else(|| a.strip_prefix("0X"))
            .unwrap_or(a);
        match u8::from_str_radix(digits, 16) {
            Ok(b) if !digits.is_empty() && !digits.starts_with('+') => bytes.push(b),
            _ => return Err(syntax(format!("Invalid command byte '{a}'"))),
        }
    }
    if bytes.len() < MIN_CDB {
        return Err(syntax(format!("CDB too short (min. {MIN_CDB} bytes)")));
    }
    Cdb::from_slice(&bytes).ok_or_else(|| {
        syntax(format!(
            "CDB too long: {} bytes (uvio sends CDBs of {MIN_CDB} to {} bytes)",
            bytes.len(),
            Cdb::MAX_LEN
        ))
    })
}

/// `--request`/`--send` checked as sg_raw checks them.
fn transfer_len(text: &Option<String>, option: &str) -> Result<Option<u32>, SgFailure> {
    text.as_deref()
        .map(|t| {
            parse_len(t)
                .filter(|&n| n <= MAX_TRANSFER)
                .ok_or_else(|| syntax(format!("Invalid argument to '--{option}'")))
        })
        .transpose()
}

/// The data to send: `len` bytes of `--infile` or stdin (sg_raw's `fetch_dataout`).
fn data_out(infile: Option<&std::path::Path>, len: usize) -> Result<Vec<u8>, SgFailure> {
    let mut buf = vec![0u8; len];
    let (name, result) = match infile {
        Some(path) => (
            path.display().to_string(),
            std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut buf)),
        ),
        None => ("stdin".into(), std::io::stdin().read_exact(&mut buf)),
    };
    result.map_err(|e| SgFailure {
        status: status::FILE_ERROR,
        message: format!("{name}: {e} (--send {len} wants that many bytes)"),
    })?;
    Ok(buf)
}

/// sg3_utils' name of a SCSI status (`sg_get_scsi_status_str`).
fn status_name(s: ScsiStatus) -> String {
    match s.0 {
        0x00 => "Good".into(),
        0x02 => "Check Condition".into(),
        0x04 => "Condition Met".into(),
        0x08 => "Busy".into(),
        0x10 => "Intermediate (obsolete)".into(),
        0x14 => "Intermediate-Condition Met (obsolete)".into(),
        0x18 => "Reservation Conflict".into(),
        0x22 => "Command terminated (obsolete)".into(),
        0x28 => "Task set full".into(),
        0x30 => "ACA active".into(),
        0x40 => "Task aborted".into(),
        n => format!("Unknown status [0x{n:x}]"),
    }
}

/// What sg_raw prints for a command that ended (on stderr), and its exit status.
fn report(result: &Result<Vec<u8>, IoError>, nosense: bool) -> (String, u8) {
    let mut text = String::new();
    let (scsi_status, exit) = match result {
        Ok(_) => (ScsiStatus::GOOD, 0),
        Err(e) => match ScsiError::of(e) {
            Some(ScsiError::Status { status, sense }) => {
                let exit = match (sense, *status) {
                    (Some(s), _) => sense_category(s),
                    (None, ScsiStatus::RESERVATION_CONFLICT) => status::RES_CONFLICT,
                    (None, _) => status::OTHER,
                };
                (*status, exit)
            }
            _ => {
                text.push_str(&format!(">>> transport error: {e}\n"));
                (ScsiStatus::GOOD, status::OTHER)
            }
        },
    };
    text.push_str(&format!("SCSI Status: {} \n\n", status_name(scsi_status)));
    if scsi_status == ScsiStatus::CHECK_CONDITION && !nosense {
        match result.as_ref().err().and_then(ScsiError::sense_of) {
            Some(sense) => {
                text.push_str("Sense Information:\n");
                text.push_str(&sense.to_sg_string());
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push('\n');
            }
            None => {
                text.push_str(">>> Strange: status is CHECK CONDITION but no Sense Information\n")
            }
        }
    }
    (text, exit)
}

/// Runs `uvio raw`: arguments first (as sg_raw parses them before opening the device),
/// then the command.
pub fn run(a: RawArgs) -> CmdResult {
    let cdb = parse_cdb(&a.cdb)?;
    let request = transfer_len(&a.request, "request")?;
    let send = transfer_len(&a.send, "send")?;
    if request.is_some() && send.is_some() {
        return Err(syntax(
            "uvio raw takes --request or --send, not both: bidirectional commands need \
             virtio-scsi's INOUT feature, which uvio does not use"
                .into(),
        )
        .into());
    }
    let mut lun = SgLun::open(a.device)?;
    let data = match (request, send) {
        (Some(n), _) => RawData::In(n as usize),
        (_, Some(n)) => RawData::Out(data_out(a.infile.as_deref(), n as usize)?),
        _ => RawData::None,
    };
    let result = lun.raw(cdb, data)?;
    let (mut text, mut exit) = report(&result, a.nosense);
    if let Some(asked) = request {
        let received = result.as_ref().map(|d| d.as_slice()).unwrap_or_default();
        let recovered = matches!(exit, status::RECOVERED | status::NO_SENSE);
        if exit != 0 && !recovered {
            text.push_str(&format!("Error {exit} occurred, no data received\n"));
        } else if received.is_empty() || asked == 0 {
            text.push_str("No data received\n");
        } else {
            match a.outfile.as_deref() {
                None => {
                    text.push_str(&format!("Received {} bytes of data:\n", received.len()));
                    text.push_str(&hex_dump(received));
                }
                Some(out) => {
                    let name = if out == "-" { "stdout" } else { out };
                    text.push_str(&format!(
                        "Writing {} bytes of data to {name}\n",
                        received.len()
                    ));
                    eprint!("{text}");
                    text.clear();
                    let written = if out == "-" {
                        std::io::stdout().write_all(received)
                    } else {
                        std::fs::write(out, received)
                    };
                    if let Err(e) = written {
                        eprintln!("{name}: {e}");
                        if exit == 0 {
                            exit = status::FILE_ERROR;
                        }
                    }
                }
            }
        }
    }
    eprint!("{text}");
    match exit {
        0 => Ok(()),
        // Already reported, as sg_raw reports it: nothing more to print.
        n => Err(SgFailure {
            status: n,
            message: String::new(),
        }
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uvio::scsi_proto::sense::{fixed_sense, SenseData, SenseKey};

    fn args(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn cdb_bytes_as_sg_raw_reads_them() {
        let cdb = parse_cdb(&args("12 0 0 0x0 60 00")).unwrap();
        assert_eq!(cdb.as_bytes(), [0x12, 0, 0, 0, 0x60, 0]);
        for (bad, says) in [
            ("zz 00 00 00 00 00", "Invalid command byte 'zz'"),
            ("123 00 00 00 00 00", "Invalid command byte '123'"),
            ("120000006000", "Invalid command byte '120000006000'"),
            ("12 00", "CDB too short (min. 6 bytes)"),
            (
                "00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10",
                "CDB too long: 17 bytes",
            ),
        ] {
            let e = parse_cdb(&args(bad)).unwrap_err();
            assert_eq!(e.status, 1, "{bad}");
            assert!(e.message.starts_with(says), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn lengths_as_sg_get_num_reads_them() {
        assert_eq!(parse_len("96"), Some(96));
        assert_eq!(parse_len("0x60"), Some(96));
        assert_eq!(parse_len("1k"), Some(1024));
        assert_eq!(parse_len("1m"), Some(1 << 20));
        assert_eq!(parse_len("x"), None);
        let over = transfer_len(&Some("1048577".into()), "request").unwrap_err();
        assert_eq!(
            (over.status, over.message.as_str()),
            (1, "Invalid argument to '--request'")
        );
        assert_eq!(
            transfer_len(&Some("1m".into()), "request").unwrap(),
            Some(1 << 20)
        );
    }

    /// What sg_raw printed on the twin for TEST UNIT READY to the empty CD-ROM.
    #[test]
    fn a_check_condition_is_reported_with_its_sense() {
        let sense = SenseData::parse(&fixed_sense(SenseKey::NOT_READY, 0x3a, 0)).unwrap();
        let error: IoError = ScsiError::Status {
            status: ScsiStatus::CHECK_CONDITION,
            sense: Some(sense),
        }
        .into();
        let (text, exit) = report(&Err(error), false);
        assert_eq!(exit, 2);
        assert_eq!(
            text,
            "SCSI Status: Check Condition \n\nSense Information:\n\
             Fixed format, current; Sense key: Not Ready\n\
             Additional sense: Medium not present\n\n"
        );
        let (text, exit) = report(&Ok(vec![0; 4]), false);
        assert_eq!((text.as_str(), exit), ("SCSI Status: Good \n\n", 0));
    }
}
