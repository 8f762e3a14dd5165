//! The names a LUN gets from its identifiers, without udev: what `lsscsi -u/-U` reads
//! from VPD page 0x83 (lsscsi's `get_lu_name`), and what `lsscsi -i`/`-w` read from the
//! `/dev/disk/by-id` links udev makes (`scsi-ID_SERIAL`, `wwn-ID_WWN_WITH_EXTENSION`).
//!
//! The guest uvio runs in has no udev, and uvio's LUNs have no kernel block device for it
//! to name, so uvio derives those names itself by the rules of Debian 12's udev:
//! sg3_utils 1.46's `55-scsi-sg3_id.rules` runs `sg_inq --export` over the `inquiry`,
//! `vpd_pg80` and `vpd_pg83` attributes and sets, the first that exists winning:
//!
//! * `ID_SERIAL` (the `scsi-` link; lsscsi -i): `3` + NAA IEEE Registered Extended, NAA
//!   IEEE Registered, NAA IEEE Extended; `2` + EUI-64; `8` + SCSI name string; `1` + T10
//!   vendor ID; `3` + NAA locally assigned; `0` + VENDOR_MODEL_ + vendor-specific
//!   designator; `S` + VENDOR_MODEL_ + the unit serial number (VPD 0x80). Only
//!   designators of the logical unit count (association 0).
//! * `ID_WWN_WITH_EXTENSION` (the `wwn-` link; lsscsi -w): `0x` + NAA Registered Extended,
//!   Registered, Extended or locally assigned, in that order.
//!
//! Values are written as `sg_inq --export` writes them: NAA and EUI-64 in lower-case hex;
//! the SCSI name string up to its first NUL; text fields trimmed, each run of blanks made
//! one `_`, characters outside `[0-9A-Za-z#+-.:=@_]` written `\xNN` and unprintable ones
//! `.`; when a designator kind occurs twice, the last one counts (udev's import keeps the
//! last value of a key).

/// One identification descriptor of VPD page 0x83.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Designator<'a> {
    /// Offset of its header in the descriptor list.
    offset: usize,
    code_set: u8,
    association: u8,
    kind: u8,
    data: &'a [u8],
}

const ASSOC_LU: u8 = 0;
const ASSOC_TARGET_PORT: u8 = 1;
const KIND_VENDOR: u8 = 0;
const KIND_T10: u8 = 1;
const KIND_EUI64: u8 = 2;
const KIND_NAA: u8 = 3;
const KIND_UUID: u8 = 0xa;
const KIND_NAME: u8 = 8;

/// The descriptor list of a VPD 0x83 reply, cut at the page length; `None` if the bytes
/// are not such a page.
fn descriptor_list(page: &[u8]) -> Option<&[u8]> {
    if page.len() < 4 || page[1] != 0x83 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([page[2], page[3]]));
    page.get(4..4 + len)
}

fn designators(list: &[u8]) -> Vec<Designator<'_>> {
    let mut out = Vec::new();
    let mut k = 0;
    while k + 4 <= list.len() {
        let len = usize::from(list[k + 3]);
        let end = (k + 4 + len).min(list.len());
        out.push(Designator {
            offset: k,
            code_set: list[k] & 0x0f,
            association: (list[k + 1] >> 4) & 0x3,
            kind: list[k + 1] & 0x0f,
            data: &list[k + 4..end],
        });
        k += 4 + len;
    }
    out
}

/// sg3_utils' `sg_vpd_dev_id_iter`: the first designator after offset `after` (any when
/// `None`) of this association, kind and code set (`None`: any code set).
fn find<'a>(
    all: &[Designator<'a>],
    after: Option<usize>,
    association: u8,
    kind: u8,
    code_set: Option<u8>,
) -> Option<Designator<'a>> {
    all.iter()
        .filter(|d| after.is_none_or(|a| d.offset > a))
        .find(|d| {
            d.association == association
                && d.kind == kind
                && code_set.is_none_or(|c| c == d.code_set)
        })
        .copied()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The logical unit name lsscsi 0.31's `-u`/`-U` print (its `get_lu_name`): the first NAA
/// (8 or 16 bytes), else EUI-64, else UUID, else SCSI name string, else T10 vendor ID of
/// the logical unit; a SCSI name string first when the LUN is reached over iSCSI. With
/// `prefix` (`-UU`) the kind leads: `naa.`, `eui.`, `uuid.`, `t10.`. Empty: none.
pub fn lu_name(page: &[u8], prefix: bool) -> String {
    let Some(list) = descriptor_list(page) else {
        return String::new();
    };
    let all = designators(list);
    let mut after = None;
    let mut name_string = None;
    if let Some(sns) = find(&all, None, ASSOC_LU, KIND_NAME, Some(3)) {
        name_string = Some(String::from_utf8_lossy(sns.data).into_owned());
        after = Some(sns.offset);
        if let Some(port) = find(&all, after, ASSOC_TARGET_PORT, KIND_NAME, Some(3)) {
            after = Some(port.offset);
            // lsscsi reads PIV and the protocol from the list's first descriptor.
            let iscsi = list[1] & 0x80 != 0 && list[0] >> 4 == 5;
            if iscsi {
                return name_string.unwrap_or_default();
            }
        }
    }
    let tag = |t: &str| if prefix { t.to_string() } else { String::new() };
    if let Some(naa) = find(&all, after, ASSOC_LU, KIND_NAA, Some(1)) {
        if !matches!(naa.data.len(), 8 | 16) {
            return String::new();
        }
        return tag("naa.") + &hex(naa.data);
    }
    if let Some(eui) = find(&all, after, ASSOC_LU, KIND_EUI64, Some(1)) {
        if !matches!(eui.data.len(), 8 | 12 | 16) {
            return String::new();
        }
        return tag("eui.") + &hex(eui.data);
    }
    if let Some(uuid) = find(&all, after, ASSOC_LU, KIND_UUID, Some(1)) {
        if uuid.data.len() != 18 || uuid.data[0] >> 4 != 1 {
            return "??".into();
        }
        let mut s = tag("uuid.");
        for (k, b) in uuid.data[2..].iter().enumerate() {
            if matches!(k, 4 | 6 | 8 | 10) {
                s.push('-');
            }
            s.push_str(&format!("{b:02x}"));
        }
        return s;
    }
    if let Some(name) = name_string {
        return name;
    }
    match find(&all, after, ASSOC_LU, KIND_T10, None) {
        Some(t10) if t10.code_set > 1 && t10.data.len() >= 8 => {
            tag("t10.") + &String::from_utf8_lossy(t10.data)
        }
        _ => String::new(),
    }
}

/// A text field as `sg_inq --export` writes it (see the module's description).
pub fn export_text(bytes: &[u8]) -> String {
    let text = bytes.trim_ascii();
    let mut out = String::new();
    let mut blank = false;
    for &b in text {
        if b == b' ' || b == b'\t' {
            blank = true;
            continue;
        }
        if blank {
            out.push('_');
            blank = false;
        }
        match b {
            b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z' | b'#' | b'+' | b'-' | b'.' | b':' => {
                out.push(char::from(b))
            }
            b'=' | b'@' | b'_' => out.push(char::from(b)),
            0x21..=0x7e => out.push_str(&format!("\\x{b:02x}")),
            _ => out.push('.'),
        }
    }
    out
}

/// The `SCSI_IDENT_LUN_*` values `sg_inq --export` gives for a VPD 0x83 page, by key
/// suffix (`NAA_REG`, `EUI64`, ...), the last of each kind winning.
fn lun_idents(page: &[u8]) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let Some(list) = descriptor_list(page) else {
        return out;
    };
    for d in designators(list) {
        if d.association != ASSOC_LU {
            continue;
        }
        let entry = match d.kind {
            KIND_NAA => match d.data.first().map(|b| b >> 4) {
                Some(2) => Some(("NAA_EXT", hex(d.data))),
                Some(3) => Some(("NAA_LOCAL", hex(d.data))),
                Some(5) => Some(("NAA_REG", hex(d.data))),
                Some(6) => Some(("NAA_REGEXT", hex(d.data))),
                _ => None,
            },
            KIND_EUI64 => Some(("EUI64", hex(d.data))),
            KIND_NAME => {
                let end = d.data.iter().position(|&b| b == 0).unwrap_or(d.data.len());
                Some(("NAME", String::from_utf8_lossy(&d.data[..end]).into_owned()))
            }
            KIND_T10 => Some(("T10", export_text(d.data))),
            KIND_VENDOR if d.code_set == 1 => Some(("VENDOR", hex(d.data))),
            KIND_VENDOR => Some(("VENDOR", export_text(d.data))),
            _ => None,
        };
        if let Some((key, value)) = entry {
            out.retain(|(k, _)| *k != key);
            out.push((key, value));
        }
    }
    out
}

/// What udev needs of one LUN: its INQUIRY vendor and product and VPD pages 0x80, 0x83.
pub struct UdevInput<'a> {
    pub vendor: &'a [u8],
    pub product: &'a [u8],
    pub unit_serial: Option<&'a [u8]>,
    pub device_id: Option<&'a [u8]>,
}

/// `ID_SERIAL`, the name after `scsi-` in `/dev/disk/by-id` (see the module's rule).
pub fn id_serial(input: &UdevInput) -> Option<String> {
    let idents = input.device_id.map(lun_idents).unwrap_or_default();
    let get = |key: &str| {
        idents
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    };
    let vendor_model = || {
        format!(
            "{}_{}",
            export_text(input.vendor),
            export_text(input.product)
        )
    };
    for (key, lead) in [
        ("NAA_REGEXT", "3"),
        ("NAA_REG", "3"),
        ("NAA_EXT", "3"),
        ("EUI64", "2"),
        ("NAME", "8"),
        ("T10", "1"),
        ("NAA_LOCAL", "3"),
    ] {
        if let Some(v) = get(key).filter(|v| !v.is_empty()) {
            return Some(format!("{lead}{v}"));
        }
    }
    if let Some(v) = get("VENDOR").filter(|v| !v.is_empty()) {
        return Some(format!("0{}_{v}", vendor_model()));
    }
    let serial = input
        .unit_serial
        .filter(|p| p.len() >= 4 && p[1] == 0x80)
        .map(|p| {
            let len = usize::from(u16::from_be_bytes([p[2], p[3]]));
            export_text(&p[4..(4 + len).min(p.len())])
        })
        .filter(|s| !s.is_empty())?;
    Some(format!("S{}_{serial}", vendor_model()))
}

/// `ID_WWN_WITH_EXTENSION`, the name after `wwn-` in `/dev/disk/by-id`.
pub fn id_wwn(device_id: Option<&[u8]>) -> Option<String> {
    let idents = device_id.map(lun_idents).unwrap_or_default();
    ["NAA_REGEXT", "NAA_REG", "NAA_EXT", "NAA_LOCAL"]
        .iter()
        .find_map(|key| idents.iter().find(|(k, _)| k == key))
        .map(|(_, v)| format!("0x{v}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(descriptors: &[(u8, u8, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (code_set, assoc_kind, data) in descriptors {
            body.extend_from_slice(&[*code_set, *assoc_kind, 0, data.len() as u8]);
            body.extend_from_slice(data);
        }
        let mut p = vec![0, 0x83];
        p.extend_from_slice(&(body.len() as u16).to_be_bytes());
        p.extend_from_slice(&body);
        p
    }

    const NAA: [u8; 8] = [0x50, 0x00, 0xc5, 0x00, 0x15, 0xea, 0x71, 0xac];

    /// QEMU's scsi-hd with `serial=UVIO-SER-0` (a vendor-specific designator) and
    /// `wwn=0x5000c50015ea71ac`, `port_wwn=...ad` (a target port NAA).
    #[test]
    fn names_as_lsscsi_and_udev_derive_them() {
        let port = [0x50, 0x00, 0xc5, 0x00, 0x15, 0xea, 0x71, 0xad];
        let p = page(&[(2, 0, b"UVIO-SER-0"), (1, 3, &NAA), (1, 0x93, &port)]);
        assert_eq!(lu_name(&p, false), "5000c50015ea71ac");
        assert_eq!(lu_name(&p, true), "naa.5000c50015ea71ac");
        let input = UdevInput {
            vendor: b"QEMU    ",
            product: b"QEMU HARDDISK   ",
            unit_serial: None,
            device_id: Some(&p),
        };
        assert_eq!(id_serial(&input).as_deref(), Some("35000c50015ea71ac"));
        assert_eq!(id_wwn(Some(&p)).as_deref(), Some("0x5000c50015ea71ac"));
        // Only the vendor-specific designator: no LU name, no WWN, the "0" ID_SERIAL.
        let vendor_only = page(&[(2, 0, b"UVIO-SER-0")]);
        assert_eq!(lu_name(&vendor_only, false), "");
        let input = UdevInput {
            device_id: Some(&vendor_only),
            ..input
        };
        assert_eq!(
            id_serial(&input).as_deref(),
            Some("0QEMU_QEMU_HARDDISK_UVIO-SER-0")
        );
        assert_eq!(id_wwn(Some(&vendor_only)), None);
        // No designator at all: the unit serial number, else nothing.
        let serial = [0, 0x80, 0, 5, b'S', b'N', b' ', b'1', b' '];
        let input = UdevInput {
            device_id: Some(&page(&[])),
            unit_serial: Some(&serial),
            ..input
        };
        assert_eq!(
            id_serial(&input).as_deref(),
            Some("SQEMU_QEMU_HARDDISK_SN_1")
        );
        let input = UdevInput {
            unit_serial: None,
            ..input
        };
        assert_eq!(id_serial(&input), None);
    }

    /// What Debian's `sg_inq --export` (sg3_utils 1.46) wrote for the same bytes.
    #[test]
    fn text_is_exported_as_sg_inq_does() {
        assert_eq!(export_text(b"  a  b/c\x01d,e   "), "a_b\\x2fc.d\\x2ce");
        assert_eq!(export_text(b"a\tb\x7fc\xe9d  \t e"), "a_b.c.d_e");
        assert_eq!(export_text(b"QEMU HARDDISK   "), "QEMU_HARDDISK");
        assert_eq!(export_text(b"#+-.:=@_!"), "#+-.:=@_\\x21");
        let t10 = page(&[(2, 1, b"QEMU    some thing  here")]);
        assert_eq!(
            lun_idents(&t10),
            [("T10", "QEMU_some_thing_here".to_string())]
        );
        assert_eq!(lu_name(&t10, true), "t10.QEMU    some thing  here");
        let two = page(&[(1, 3, &NAA), (1, 3, &[0x50, 0, 0, 0, 0, 0, 0, 0xbb])]);
        assert_eq!(id_wwn(Some(&two)).as_deref(), Some("0x50000000000000bb"));
        let regext = [
            0x60u8, 0, 0xc5, 0, 0x15, 0xea, 0x71, 0xac, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        let p = page(&[(1, 3, &regext), (1, 2, &[1, 2, 3, 4, 5, 6, 7, 8])]);
        assert_eq!(
            id_wwn(Some(&p)).as_deref(),
            Some("0x6000c50015ea71ac0102030405060708")
        );
        assert_eq!(lu_name(&p, false), "6000c50015ea71ac0102030405060708");
    }
}
