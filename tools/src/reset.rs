//! `uvio reset BDF/C:T:L [--nexus]`: a task management function through the virtio-scsi
//! control queue (LOGICAL UNIT RESET, or I_T NEXUS RESET for the whole target), then one
//! read to show the LUN serves I/O again (its UNIT ATTENTION is retried as the midlayer
//! does).

use uvio::block::Request;
use uvio::device::DeviceError;
use uvio::scsi::wire::{response, tmf};

use crate::command::CmdResult;
use crate::open::{open_scsi_host, Target};

pub fn run(target: Target, nexus: bool) -> CmdResult {
    let (c, t, l) = target.lun.ok_or("name a LUN as BDF/C:T:L")?;
    if c != 0 {
        // Refused before opening anything: the control queue has no channel field, so a
        // reset "of channel 1" would reset channel 0's LUN.
        return Err(DeviceError::NoSuchChannel(c).into());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_other_than_0_is_refused_before_anything_is_opened() {
        // A BDF no host has: reaching sysfs would give another error.
        let target: Target = "ffff:ff:1f.7/1:0:0".parse().unwrap();
        let e = run(target, false).unwrap_err().to_string();
        assert_eq!(e, "virtio-scsi has only channel 0, not 1");
        let target: Target = "ffff:ff:1f.7".parse().unwrap();
        let e = run(target, true).unwrap_err().to_string();
        assert!(e.contains("name a LUN"), "{e}");
    }
}
