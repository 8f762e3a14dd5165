//! sg3_utils-style inspection of one LUN (`uvio readcap`, `uvio tur`, `uvio luns`): one SCSI
//! command through the host's request queue 0, its reply printed as Debian's sg3_utils
//! (1.46) prints it, and sg3_utils' exit status meanings (`sg3_utils(8)`, EXIT STATUS): 0
//! ok, 2 not ready, 3 medium or hardware error, 5 illegal request, 6 unit attention, 15
//! the LUN cannot be opened, 99 a transport or other error.

pub mod inq;
pub mod luns;
pub mod raw;
pub mod readcap;
pub mod tur;
pub mod vpd;
pub mod vpd_ei;

use std::fmt;

use uvio::block::IoError;
use uvio::pci::PciAddress;
use uvio::scsi::error::ScsiError;
use uvio::scsi::host::VirtioScsiHost;
use uvio::scsi_proto::cdb::Cdb;
use uvio::scsi_proto::sense::{ScsiStatus, SenseData, SenseKey};

use crate::open::{open_scsi_host, Target};

/// sg3_utils' exit statuses (`SG_LIB_*` in sg_lib.h) that these commands use.
pub mod status {
    pub const NOT_READY: u8 = 2;
    pub const MEDIUM_HARD: u8 = 3;
    pub const ILLEGAL_REQ: u8 = 5;
    pub const UNIT_ATTENTION: u8 = 6;
    pub const DATA_PROTECT: u8 = 7;
    pub const INVALID_OP: u8 = 9;
    pub const COPY_ABORTED: u8 = 10;
    pub const ABORTED_COMMAND: u8 = 11;
    pub const MISCOMPARE: u8 = 14;
    pub const FILE_ERROR: u8 = 15;
    pub const NO_SENSE: u8 = 20;
    pub const RECOVERED: u8 = 21;
    pub const LBA_OUT_OF_RANGE: u8 = 22;
    pub const RES_CONFLICT: u8 = 24;
    pub const BUSY: u8 = 26;
    pub const TS_FULL: u8 = 27;
    pub const ACA_ACTIVE: u8 = 28;
    pub const TASK_ABORTED: u8 = 29;
    pub const SENSE: u8 = 98;
    pub const OTHER: u8 = 99;
}

/// A failed sg-style command: what to print on stderr and the exit status to leave with.
#[derive(Debug)]
pub struct SgFailure {
    pub status: u8,
    pub message: String,
}

impl fmt::Display for SgFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SgFailure {}

/// The exit status an sg-style command asked for, if `error` is one of theirs.
pub fn exit_status(error: &(dyn std::error::Error + 'static)) -> Option<u8> {
    error.downcast_ref::<SgFailure>().map(|f| f.status)
}

/// sg3_utils' sense category of a sense (`sg_err_category_sense`).
pub fn sense_category(sense: &SenseData) -> u8 {
    match sense.key {
        SenseKey::NO_SENSE => status::NO_SENSE,
        SenseKey::RECOVERED_ERROR => status::RECOVERED,
        SenseKey::NOT_READY => status::NOT_READY,
        SenseKey::MEDIUM_ERROR | SenseKey::HARDWARE_ERROR | SenseKey::BLANK_CHECK => {
            status::MEDIUM_HARD
        }
        SenseKey::UNIT_ATTENTION => status::UNIT_ATTENTION,
        SenseKey::ILLEGAL_REQUEST => match (sense.asc, sense.ascq) {
            (0x20, 0) => status::INVALID_OP,
            (0x21, 0) => status::LBA_OUT_OF_RANGE,
            _ => status::ILLEGAL_REQ,
        },
        SenseKey::DATA_PROTECT => status::DATA_PROTECT,
        SenseKey::COPY_ABORTED => status::COPY_ABORTED,
        SenseKey::ABORTED_COMMAND => status::ABORTED_COMMAND,
        SenseKey::MISCOMPARE => status::MISCOMPARE,
        _ => status::SENSE,
    }
}

/// sg3_utils' words for an exit status (`sg_exit2str`).
pub fn category_text(status: u8) -> String {
    match status {
        0 => "No errors".into(),
        2 => "Device not ready".into(),
        3 => "Medium or hardware error".into(),
        5 => "Illegal request".into(),
        6 => "Unit attention".into(),
        7 => "Data protect".into(),
        9 => "Illegal request, Invalid opcode".into(),
        10 => "Copy aborted".into(),
        11 => "Aborted command".into(),
        14 => "Miscompare".into(),
        15 => "File error".into(),
        20 => "No sense key".into(),
        21 => "Recovered error (warning)".into(),
        22 => "LBA out of range".into(),
        24 => "Reservation conflict".into(),
        26 => "Busy".into(),
        27 => "Task set full".into(),
        28 => "ACA aactive".into(),
        29 => "Task aborted".into(),
        98 => "Some other sense error".into(),
        99 => "Some other error".into(),
        n => format!("Sense category: {n}"),
    }
}

/// How a command failed, sg3_utils' way: its exit status and sense, if any.
#[derive(Debug)]
pub struct CommandError {
    pub status: u8,
    pub sense: Option<SenseData>,
    pub detail: String,
}

impl CommandError {
    fn of(error: &IoError) -> Self {
        let (status, sense) = match ScsiError::of(error) {
            Some(ScsiError::Status { status, sense }) => match sense {
                Some(s) => (sense_category(s), Some(s.clone())),
                None => (status_category(*status), None),
            },
            _ => (status::OTHER, None),
        };
        CommandError {
            status,
            sense,
            detail: error.to_string(),
        }
    }

    /// `WHAT failed: CATEGORY`, then the decoded sense as sg3_utils prints it.
    pub fn failure(&self, what: &str) -> SgFailure {
        let mut message = format!("{what} failed: {}", category_text(self.status));
        match &self.sense {
            Some(sense) => {
                for line in sense.to_sg_string().lines() {
                    message.push_str("\n  ");
                    message.push_str(line.trim_start());
                }
            }
            None => {
                message.push_str(": ");
                message.push_str(&self.detail);
            }
        }
        SgFailure {
            status: self.status,
            message,
        }
    }
}

/// The category of a SCSI status without sense.
fn status_category(status: ScsiStatus) -> u8 {
    match status {
        ScsiStatus::RESERVATION_CONFLICT => status::RES_CONFLICT,
        ScsiStatus::BUSY => status::BUSY,
        ScsiStatus::TASK_SET_FULL => status::TS_FULL,
        ScsiStatus::ACA_ACTIVE => status::ACA_ACTIVE,
        ScsiStatus::TASK_ABORTED => status::TASK_ABORTED,
        _ => status::OTHER,
    }
}

/// An open host and one of its LUNs (or a target's LUN 0 address, for REPORT LUNS).
pub struct SgLun {
    host: VirtioScsiHost,
    target: u16,
    linux_lun: u64,
}

fn file_error(message: String) -> SgFailure {
    SgFailure {
        status: status::FILE_ERROR,
        message,
    }
}

fn open_host(bdf: PciAddress) -> Result<VirtioScsiHost, SgFailure> {
    open_scsi_host(bdf).map_err(|e| file_error(format!("cannot open {bdf}: {e}")))
}

impl SgLun {
    /// Opens DEVICE (`BDF/C:T:L`), a LUN the host's scan found.
    pub fn open(device: Target) -> Result<Self, SgFailure> {
        let Some((c, t, l)) = device.lun else {
            return Err(file_error(format!(
                "{}: name a LUN as BDF/C:T:L, for example {}/0:0:0",
                device.bdf, device.bdf
            )));
        };
        let host = open_host(device.bdf)?;
        let found = (c == 0).then(|| host.find_lun(t, l)).flatten();
        let Some(linux_lun) = found.map(|lun| lun.linux_lun) else {
            return Err(file_error(format!(
                "{} has no LUN {c}:{t}:{l} (`uvio scan {}` lists them)",
                device.bdf, device.bdf
            )));
        };
        Ok(SgLun {
            host,
            target: t,
            linux_lun,
        })
    }

    /// Opens LUN 0 of target `C:T` of host `bdf`, a target the scan found.
    pub fn open_target(bdf: PciAddress, channel: u16, target: u16) -> Result<Self, SgFailure> {
        let host = open_host(bdf)?;
        let exists = channel == 0
            && host
                .scan_report()
                .luns
                .iter()
                .any(|l| l.channel == channel && l.target == target);
        if !exists {
            return Err(file_error(format!(
                "{bdf} has no target {channel}:{target} (`uvio scan {bdf}` lists them)"
            )));
        }
        Ok(SgLun {
            host,
            target,
            linux_lun: 0,
        })
    }

    /// Sends a data-in command with `alloc` bytes of buffer; the data the device returned.
    /// Opening the host resets it, so a LUN may answer the first command with UNIT
    /// ATTENTION "power on, reset" (ASC 0x29) that uvio itself caused and the kernel's scan
    /// has long consumed on its twin: that one is retried, as the kernel's scan retries it.
    pub fn run(&mut self, cdb: Cdb, alloc: usize) -> Result<Vec<u8>, CommandError> {
        let mut result = self.run_once(cdb, alloc);
        for _ in 0..3 {
            match &result {
                Err(CommandError { sense: Some(s), .. })
                    if s.key == SenseKey::UNIT_ATTENTION && s.asc == 0x29 =>
                {
                    result = self.run_once(cdb, alloc);
                }
                _ => break,
            }
        }
        result
    }

    /// Sends `cdb` with `data` in or out, as given (`uvio raw`). Only the UNIT ATTENTION
    /// "power on, reset" that opening the host caused is consumed first, as [`SgLun::run`]
    /// does; what else the LUN answers, the user sees.
    pub fn raw(
        &mut self,
        cdb: Cdb,
        data: uvio::scsi::host::RawData,
    ) -> Result<Result<Vec<u8>, IoError>, SgFailure> {
        let mut tries = 0;
        loop {
            let result = self
                .host
                .raw_command(self.target, self.linux_lun, cdb, data.clone())
                .map_err(|e| SgFailure {
                    status: status::OTHER,
                    message: e.to_string(),
                })?;
            let reset = result
                .as_ref()
                .err()
                .and_then(ScsiError::sense_of)
                .is_some_and(|s| s.key == SenseKey::UNIT_ATTENTION && s.asc == 0x29);
            tries += 1;
            if !reset || tries > 3 {
                return Ok(result);
            }
        }
    }

    fn run_once(&mut self, cdb: Cdb, alloc: usize) -> Result<Vec<u8>, CommandError> {
        match self.host.command(self.target, self.linux_lun, cdb, alloc) {
            Ok(Ok(data)) => Ok(data),
            Ok(Err(e)) => Err(CommandError::of(&e)),
            Err(e) => Err(CommandError {
                status: status::OTHER,
                sense: None,
                detail: e.to_string(),
            }),
        }
    }
}

/// A number as sg3_utils takes one (`sg_get_num`): decimal, `0x` hex or an `h` suffix.
pub fn parse_num(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let parsed = if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16)
    } else if let Some(hex) = t.strip_suffix('h').or_else(|| t.strip_suffix('H')) {
        u32::from_str_radix(hex, 16)
    } else {
        t.parse::<u32>()
    };
    parsed.map_err(|_| format!("`{text}` is not a number (decimal, 0x hex or hex with h suffix)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uvio::scsi_proto::sense::fixed_sense;

    #[test]
    fn sense_maps_to_sg3_utils_exit_statuses() {
        let cat = |key, asc, ascq| {
            sense_category(&SenseData::parse(&fixed_sense(key, asc, ascq)).unwrap())
        };
        assert_eq!(cat(SenseKey::NOT_READY, 0x3a, 0), 2);
        assert_eq!(cat(SenseKey::ILLEGAL_REQUEST, 0x24, 0), 5);
        assert_eq!(cat(SenseKey::ILLEGAL_REQUEST, 0x20, 0), 9);
        assert_eq!(cat(SenseKey::UNIT_ATTENTION, 0x29, 0), 6);
        assert_eq!(cat(SenseKey::MEDIUM_ERROR, 0x11, 0), 3);
    }

    #[test]
    fn a_failure_names_the_command_and_decodes_the_sense() {
        let sense = SenseData::parse(&fixed_sense(SenseKey::NOT_READY, 0x3a, 0)).unwrap();
        let e = CommandError {
            status: sense_category(&sense),
            sense: Some(sense),
            detail: String::new(),
        };
        let f = e.failure("READ CAPACITY (10)");
        assert_eq!(f.status, 2);
        assert_eq!(
            f.message,
            "READ CAPACITY (10) failed: Device not ready\n  \
             Fixed format, current; Sense key: Not Ready\n  \
             Additional sense: Medium not present"
        );
    }

    #[test]
    fn numbers_as_sg3_utils_takes_them() {
        assert_eq!(parse_num("0x83"), Ok(0x83));
        assert_eq!(parse_num("83h"), Ok(0x83));
        assert_eq!(parse_num("131"), Ok(131));
        assert!(parse_num("zz").is_err());
    }
}
