//! Test fixtures of the scan's output modules.

use uvio::scsi_proto::reply::Inquiry;

/// QEMU's standard INQUIRY reply (scsi-hd type 0, or scsi-cd type 5, removable; SPC-3,
/// version 2.5+).
pub fn qemu_inquiry(pdt: u8, product: &str) -> Inquiry {
    let mut b = vec![0u8; 36];
    b[0] = pdt;
    b[1] = if pdt == 5 { 0x80 } else { 0 };
    b[2] = 5;
    b[3] = 0x12;
    b[4] = 31;
    b[7] = 0x12;
    b[8..16].copy_from_slice(b"QEMU    ");
    b[16..32].copy_from_slice(format!("{product:<16}").as_bytes());
    b[32..36].copy_from_slice(b"2.5+");
    Inquiry::parse(&b).unwrap()
}
