//! `uvio reset BDF/C:T:L [--nexus]`: a task management function through the virtio-scsi
//! control queue (LOGICAL UNIT RESET, or I_T NEXUS RESET for the whole target), then one
//! read to show the LUN serves I/O again (its UNIT ATTENTION is retried as the midlayer
//! does).

use uvio::block::Request;
use uvio::scsi::wire::{response, tmf};

use crate::command::CmdResult;
use crate::open::{open_scsi_host, Target};

pub fn run(target: Target, nexus: bool) -> CmdResult {
    let (_, t, l) = target.lun.ok_or("name a LUN as BDF/C:T:L")?;
    let mut host = open_scsi_host(target.bdf)?;
    let lun = host
        .find_lun(t, l)
        .map(|x| x.linux_lun)
        .ok_or_else(|| format!("{} has no LUN 0:{t}:{l}", target.bdf))?;
    let (subtype, name) = if nexus {
        (tmf::I_T_NEXUS_RESET, "I_T NEXUS RESET")
    } else {
        (tmf::LOGICAL_UNIT_RESET, "LOGICAL UNIT RESET")
    };
    let code = host.task_management(subtype, t, lun, 0)?;
    println!("{target}: {name}: {}", response::name(code));
    if code != response::OK && code != response::FUNCTION_SUCCEEDED {
        return Err(format!("{name} was refused ({})", response::name(code)).into());
    }
    let device = host.disk(t, l)?;
    let mut queue = host.tag_set().take_queue(0).ok_or("no request queue")?;
    let mut buf = host.dma().alloc(4096)?.into_buf();
    buf.set_len(device.limits.logical_block_size as usize);
    let (result, _) = queue.run_one(device.unit(), Request::read(0, buf));
    result.map_err(|e| format!("read after the reset: {e}"))?;
    let stats = queue.stats();
    println!(
        "{target}: read after the reset: ok ({} retried after UNIT ATTENTION)",
        stats.retries
    );
    host.tag_set().return_queue(queue);
    Ok(())
}
