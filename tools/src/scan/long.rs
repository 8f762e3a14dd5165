//! lsscsi's `-l`, `-ll` and `-L` lines of a LUN: the kernel's sysfs attributes of the SCSI
//! device, each given uvio's own value.
//!
//! * `state=running`: a LUN uvio's scan found is served (the kernel's SDEV_RUNNING).
//! * `queue_depth`: how many commands uvio keeps in flight to the LUN at most (the
//!   device's cmd_per_lun within the host's queue depth, as virtio_scsi sets it).
//! * `scsi_level`, `type`: from INQUIRY, as the kernel numbers them.
//! * `device_blocked=0`: uvio holds no LUN blocked between commands (a BUSY LUN is
//!   retried within the one command, with a back-off).
//! * `timeout`: uvio's request deadline in seconds (`--timeout`, 30 by default, as sd's).
//! * `iocounterbits=32`, `iorequest_cnt`, `iodone_cnt`, `ioerr_cnt`: the commands uvio sent
//!   to the LUN (its scan's and this listing's), answered, and failed; 32-bit counters.
//! * `queue_type=simple`: uvio tags every command SIMPLE.

use super::lun_facts::LunFacts;
use uvio::scsi::scan::ScannedLun;

/// The attributes in the order `-L` lists them (alphabetical, as sysfs lists them).
fn attributes(l: &ScannedLun, facts: &LunFacts) -> Vec<(&'static str, String)> {
    vec![
        ("device_blocked", "0".into()),
        ("iocounterbits", "32".into()),
        ("iodone_cnt", format!("0x{:x}", facts.counts.done)),
        ("ioerr_cnt", format!("0x{:x}", facts.counts.errors)),
        ("iorequest_cnt", format!("0x{:x}", facts.counts.requests)),
        ("queue_depth", facts.queue_depth.to_string()),
        ("queue_type", "simple".into()),
        ("scsi_level", l.inquiry.scsi_level.to_string()),
        ("state", "running".into()),
        ("timeout", facts.timeout.as_secs().to_string()),
        ("type", l.inquiry.device_type.0.to_string()),
    ]
}

/// The lines lsscsi prints under a LUN for `long` (-l once: 1, twice: 2, -L: 3 or more).
pub fn long_lines(l: &ScannedLun, facts: &LunFacts, long: u8) -> Vec<String> {
    let attrs = attributes(l, facts);
    let get = |name: &str| {
        attrs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| format!("{name}={v}"))
            .unwrap_or_default()
    };
    let join = |names: &[&str]| {
        let fields: Vec<String> = names.iter().map(|n| get(n)).collect();
        format!("  {}", fields.join(" "))
    };
    match long {
        0 => Vec::new(),
        1 | 2 => {
            let mut lines = vec![join(&[
                "state",
                "queue_depth",
                "scsi_level",
                "type",
                "device_blocked",
                "timeout",
            ])];
            if long == 2 {
                lines.push(join(&[
                    "iocounterbits",
                    "iodone_cnt",
                    "ioerr_cnt",
                    "iorequest_cnt",
                ]));
                lines.push(join(&["queue_type"]));
            }
            lines
        }
        _ => attrs
            .iter()
            .map(|(name, value)| format!("  {name}={value}"))
            .collect(),
    }
}
