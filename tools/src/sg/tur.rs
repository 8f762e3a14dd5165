//! `uvio tur DEVICE`: one TEST UNIT READY, as `sg_turs DEVICE` reports it: nothing when the
//! LUN is ready, `device not ready` (exit 2) when not, else the sense category.

use uvio::scsi_proto::cdb;

use super::{category_text, status, SgFailure, SgLun};
use crate::command::CmdResult;
use crate::open::Target;

pub fn run(device: Target) -> CmdResult {
    let mut lun = SgLun::open(device)?;
    match lun.run(cdb::test_unit_ready(), 0) {
        Ok(_) => Ok(()),
        Err(e) => {
            // sg_turs prints its verdict on stdout; the decoded sense goes to stderr.
            // A NOT READY verdict is followed by the count line (sg_turs 1.46 does so).
            let verdict = if e.status == status::NOT_READY {
                let first = match e.sense.as_ref().and_then(becoming_ready_ms) {
                    Some(ms) => {
                        format!("device not ready, estimated to be ready in {ms} milliseconds")
                    }
                    None => "device not ready".to_string(),
                };
                format!("{first}\nCompleted 1 Test Unit Ready commands with 1 errors")
            } else {
                category_text(e.status)
            };
            println!("{verdict}");
            let failure = e.failure("TEST UNIT READY");
            Err(SgFailure {
                status: failure.status,
                message: failure.message,
            }
            .into())
        }
    }
}

/// "LU is in process of becoming ready" with an estimate in the INFORMATION field.
fn becoming_ready_ms(sense: &uvio::scsi_proto::sense::SenseData) -> Option<u64> {
    (sense.asc == 4 && sense.ascq == 1)
        .then_some(sense.information)
        .flatten()
        .filter(|&ms| ms > 0 && ms < 0x100_0000)
}
