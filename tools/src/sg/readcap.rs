//! `uvio readcap DEVICE [--long]`: READ CAPACITY (10), or (16) with `--long` (and when
//! (10) says the capacity does not fit), printed as sg_readcap prints it.

use std::fmt::Write;

use uvio::scsi_proto::cdb;

use super::{status, SgFailure, SgLun};
use crate::command::CmdResult;
use crate::open::Target;

const RCAP10_LEN: usize = 8;
const RCAP16_LEN: usize = 32;

pub fn run(device: Target, long: bool) -> CmdResult {
    let mut lun = SgLun::open(device)?;
    let mut long = long;
    if !long {
        match lun.run(cdb::read_capacity_10(), RCAP10_LEN) {
            Ok(data) => match format_rc10(&data) {
                Some(text) => {
                    print!("{text}");
                    return Ok(());
                }
                None => {
                    println!(
                        "READ CAPACITY (10) indicates device capacity too large\n  \
                         now trying 16 byte cdb variant"
                    );
                    long = true;
                }
            },
            // sg_readcap goes on with (16) when (10) is not supported.
            Err(e) if e.status == status::INVALID_OP => long = true,
            Err(e) => return Err(e.failure("READ CAPACITY (10)").into()),
        }
    }
    debug_assert!(long);
    match lun.run(cdb::read_capacity_16(RCAP16_LEN as u32), RCAP16_LEN) {
        Ok(data) => {
            print!("{}", format_rc16(&data)?);
            Ok(())
        }
        Err(e) => Err(e.failure("READ CAPACITY (16)").into()),
    }
}

fn short_reply(what: &str, got: usize, need: usize) -> SgFailure {
    SgFailure {
        status: status::OTHER,
        message: format!("{what}: the reply has {got} bytes, {need} expected"),
    }
}

/// `Hence:` and the device size, as sg_readcap words it.
fn hence(blocks: u64, block_size: u32) -> String {
    let bytes = u128::from(blocks) * u128::from(block_size);
    let fbytes = blocks as f64 * f64::from(block_size);
    let mib = fbytes / 1_048_576.0;
    let gb = fbytes / 1_000_000_000.0;
    let mut s = format!("Hence:\n   Device size: {bytes} bytes, {mib:.1} MiB, {gb:.2} GB");
    if gb > 2000.0 {
        let _ = write!(s, ", {:.2} TB", gb / 1000.0);
    }
    s.push('\n');
    s
}

/// READ CAPACITY (10) parameter data as sg_readcap prints it; `None` when the last LBA is
/// 0xffffffff (the capacity needs READ CAPACITY (16)).
pub fn format_rc10(data: &[u8]) -> Option<String> {
    let b = data.get(..RCAP10_LEN)?;
    let last = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    if last == u32::MAX {
        return None;
    }
    let block_size = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    let blocks = u64::from(last) + 1;
    Some(format!(
        "Read Capacity results:\n   Last LBA={last} (0x{last:x}), Number of logical blocks={blocks}\n   \
         Logical block length={block_size} bytes\n{}",
        hence(blocks, block_size)
    ))
}

/// READ CAPACITY (16) parameter data as sg_readcap prints it.
pub fn format_rc16(data: &[u8]) -> Result<String, SgFailure> {
    let b = data
        .get(..16)
        .ok_or_else(|| short_reply("READ CAPACITY (16)", data.len(), 16))?;
    let last = u64::from_be_bytes(b[..8].try_into().unwrap_or_default());
    let block_size = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
    let prot_en = b[12] & 1;
    let p_type = (b[12] >> 1) & 7;
    let mut s = String::from("Read Capacity results:\n");
    let _ = write!(
        s,
        "   Protection: prot_en={prot_en}, p_type={p_type}, p_i_exponent={}",
        b[13] >> 4
    );
    if prot_en != 0 {
        let _ = write!(s, " [type {} protection]", p_type + 1);
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "   Logical block provisioning: lbpme={}, lbprz={}",
        (b[14] >> 7) & 1,
        (b[14] >> 6) & 1
    );
    let blocks = last.wrapping_add(1);
    let _ = writeln!(
        s,
        "   Last LBA={last} (0x{last:x}), Number of logical blocks={blocks}"
    );
    let _ = writeln!(s, "   Logical block length={block_size} bytes");
    let lbppbe = b[13] & 0xf;
    let _ = write!(s, "   Logical blocks per physical block exponent={lbppbe}");
    if lbppbe > 0 {
        let _ = write!(
            s,
            " [so physical block length={} bytes]",
            block_size.wrapping_mul(1 << lbppbe)
        );
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "   Lowest aligned LBA={}",
        (u32::from(b[14] & 0x3f) << 8) + u32::from(b[15])
    );
    s.push_str(&hence(blocks, block_size));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_capacity_10_of_a_1_gib_disk() {
        // QEMU's reply for a 1 GiB scsi-hd: last LBA 0x1fffff, 512-byte blocks.
        let text = format_rc10(&[0x00, 0x1f, 0xff, 0xff, 0, 0, 2, 0]).unwrap();
        assert_eq!(
            text,
            "Read Capacity results:\n   Last LBA=2097151 (0x1fffff), Number of logical blocks=2097152\n   \
             Logical block length=512 bytes\nHence:\n   Device size: 1073741824 bytes, 1024.0 MiB, 1.07 GB\n"
        );
        assert_eq!(format_rc10(&[0xff; 8]), None);
    }

    #[test]
    fn read_capacity_16_of_a_4k_physical_disk() {
        let mut r = [0u8; 32];
        r[..8].copy_from_slice(&(196_607u64).to_be_bytes());
        r[8..12].copy_from_slice(&512u32.to_be_bytes());
        r[13] = 3;
        r[14] = 0x80;
        let text = format_rc16(&r).unwrap();
        assert_eq!(
            text,
            "Read Capacity results:\n   Protection: prot_en=0, p_type=0, p_i_exponent=0\n   \
             Logical block provisioning: lbpme=1, lbprz=0\n   \
             Last LBA=196607 (0x2ffff), Number of logical blocks=196608\n   \
             Logical block length=512 bytes\n   \
             Logical blocks per physical block exponent=3 [so physical block length=4096 bytes]\n   \
             Lowest aligned LBA=0\nHence:\n   Device size: 100663296 bytes, 96.0 MiB, 0.10 GB\n"
        );
    }

    #[test]
    fn sizes_past_2000_gb_add_terabytes() {
        assert!(hence(5_000_000_000, 512).ends_with(", 2.56 TB\n"));
    }
}
