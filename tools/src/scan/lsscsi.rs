//! lsscsi's output layouts for `uvio scan`, as Debian's lsscsi 0.31 prints them.
//!
//! Where lsscsi reads sysfs, uvio has the scan's own data ([`ScannedLun`]). Where lsscsi
//! prints a kernel device node (`/dev/sda`), uvio prints its DEVICE address
//! (`BDF/C:T:L`) in the same column, and `-` for a LUN it does not drive as a disk. The
//! host number is uvio's: the position of the host among those scanned, from 0.

use uvio::pci::PciAddress;
use uvio::scsi::scan::ScannedLun;

use super::long::long_lines;
use super::lun_facts::{LunFacts, UpperDriver};
use super::udev_id::{id_serial, id_wwn, lu_name, UdevInput};

/// The lsscsi options `uvio scan` takes, with lsscsi's meanings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// `-b`: the tuple and the device only.
    pub brief: bool,
    /// `-c`: `cat /proc/scsi/scsi`'s layout.
    pub classic: bool,
    /// `-D`: the peripheral device type in hex instead of its name.
    pub pdt: bool,
    /// `-t`: transport information instead of vendor, model and revision.
    pub transport: bool,
    /// `-x` (1) the LUN in T10 hex, `-xx` (2) as 16 hex digits.
    pub lunhex: u8,
    /// `-s` (1) SI units, `-ss` (2) binary units, `-sss` (3) logical blocks, 4 and more
    /// logical blocks and the block size (`-S` counts 3).
    pub size: u8,
    /// `-l` (1, 2) more attributes on one line or three, `-L` (3 and more) one per line.
    pub long: u8,
    /// `-u` (1 short, 2 its end, 3 in full) the logical unit name; `-U` counts 3, with a
    /// `naa.`-style prefix from 4.
    pub unit: u8,
    /// `-p`: the protection type and the integrity format.
    pub protection: bool,
    /// `-P`: the protection mode.
    pub protmode: bool,
    /// `-v`: the directory of the device in sysfs.
    pub verbose: bool,
    /// `-i`: the udev SCSI id (`ID_SERIAL`).
    pub scsi_id: bool,
    /// `-w`: the WWN (`ID_WWN_WITH_EXTENSION`).
    pub wwn: bool,
}

impl Layout {
    /// lsscsi's refusals of option pairs it does not combine (its exit status 1).
    pub fn check(&self) -> Result<(), String> {
        if self.transport && self.unit > 0 {
            return Err("use '--transport' or '--unit' but not both".into());
        }
        if (self.transport || self.unit > 0) && matches!(self.long, 1 | 2) {
            let what = if self.transport {
                "--transport"
            } else {
                "--unit"
            };
            return Err(format!(
                "please use '--list' (rather than '--long') with {what}"
            ));
        }
        Ok(())
    }
}

/// A size as lsscsi's `size2string` prints it: three significant figures, truncated
/// (not rounded), in SI units (`binary` false: `1.07GB`) or binary ones (`1.00GiB`).
/// The fraction comes from the remainder of the last division only, as lsscsi does.
pub fn size_string(bytes: u64, binary: bool) -> String {
    const SI: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    const BIN: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let (units, divisor) = if binary { (BIN, 1024) } else { (SI, 1000) };
    let (mut size, mut remainder, mut unit) = (bytes, 0u64, 0);
    let mut fraction = String::new();
    if size >= divisor {
        while size >= divisor && unit < units.len() {
            remainder = size % divisor;
            size /= divisor;
            unit += 1;
        }
        let mut digits = 0;
        let mut sf = size;
        while sf * 10 < 1000 {
            sf *= 10;
            digits += 1;
        }
        if digits > 0 {
            let thousandths = remainder * 1000 / divisor;
            fraction = format!(".{thousandths:03}");
            fraction.truncate(digits + 1);
        }
    }
    format!("{size}{fraction}{}", units[unit.min(units.len() - 1)])
}

/// The LUN as lsscsi's `-x` prints it: the 8-byte LUN field in hex, each addressing
/// level after the first set off by `_` (SAM-5's tagging, lsscsi's `tag_lun`).
pub fn lun_t10_hex(field: &[u8; 8]) -> String {
    let mut tags = [0u8; 8];
    if field[0] == 0xff && field[1] == 0xff {
        tags[0] = 1;
        tags[1] = 1;
    } else {
        fn tag(tags: &mut [u8; 8], level: usize, count: usize) {
            for j in 0..count {
                if 2 * level + j < 8 {
                    tags[2 * level + j] = if level > 0 && j == 0 { 2 } else { 1 };
                }
            }
        }
        for level in 0..4 {
            let b = field[2 * level];
            let mut next = false;
            match b >> 6 {
                0 => {
                    next = b & 0x3f != 0;
                    tag(&mut tags, level, 2);
                }
                3 => {
                    let (len, method) = ((b & 0x30) >> 4, b & 0x0f);
                    match (len, method) {
                        (0, 1) => tag(&mut tags, level, 2),
                        (1, 2) => tag(&mut tags, level, 4),
                        (2, 2) => tag(&mut tags, level, 6),
                        (3, 0xf) => tags[2 * level] = if level > 0 { 2 } else { 1 },
                        _ if len < 2 => tag(&mut tags, level, 4),
                        _ => {
                            tag(&mut tags, level, 6);
                            if len == 3 {
                                for i in [2 * level + 6, 2 * level + 7] {
                                    if i < 8 {
                                        tags[i] = 1;
                                    }
                                }
                            }
                        }
                    }
                }
                _ => tag(&mut tags, level, 2),
            }
            if !next {
                break;
            }
        }
    }
    let mut s = "0x".to_string();
    for (byte, tag) in field.iter().zip(tags) {
        if tag == 0 {
            break;
        }
        if tag > 1 {
            s.push('_');
        }
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

/// The 8-byte T10 LUN of Linux's LUN integer (the kernel's `int_to_scsilun`; the scan's
/// `lun_field` is virtio's address, which also carries the target).
fn t10_lun(linux_lun: u64) -> [u8; 8] {
    let mut field = [0u8; 8];
    for (level, word) in field.chunks_mut(2).enumerate() {
        let w = (linux_lun >> (16 * level)) as u16;
        word.copy_from_slice(&w.to_be_bytes());
    }
    field
}

/// Linux's LUN integer with its 16-bit words in T10 order (lsscsi's `lun_word_flip`).
fn lun_word_flip(linux_lun: u64) -> u64 {
    let mut input = linux_lun;
    let mut out = 0u64;
    for k in 0..4 {
        out |= input & 0xffff;
        if k == 3 {
            break;
        }
        out <<= 16;
        input >>= 16;
    }
    out
}

/// The `[H:C:T:L]` tuple, with the LUN as `-x`/`-xx` ask.
pub fn tuple(host: usize, l: &ScannedLun, lunhex: u8) -> String {
    let lun = match lunhex {
        0 => l.linux_lun.to_string(),
        1 => lun_t10_hex(&t10_lun(l.linux_lun)),
        _ => format!("0x{:016x}", lun_word_flip(l.linux_lun)),
    };
    format!("[{host}:{}:{}:{lun}]", l.channel, l.target)
}

/// uvio's DEVICE address of a disk LUN, or `-`.
fn device(bdf: PciAddress, l: &ScannedLun) -> String {
    match &l.disk {
        Some(_) => format!("{bdf}/{}:{}:{}", l.channel, l.target, l.lun),
        None => "-".to_string(),
    }
}

/// The size column of `-s`..`-ssss` and `-S`, with its two leading spaces, from the
/// size the LUN's block device has (sd's or sr's).
fn size_column(facts: &LunFacts, size: u8) -> String {
    let Some(b) = facts.size else {
        return format!("  {:>6}", "-");
    };
    if size > 2 {
        let lbs = b.logical_block_size.max(1);
        let blocks = b.sectors * 512 / u64::from(lbs);
        return if size > 3 {
            format!("  {blocks:>12},{lbs}")
        } else {
            format!("  {blocks:>12}")
        };
    }
    match b.sectors * 512 {
        0 => format!("  {:>6}", "-"),
        bytes => format!("  {:>6}", size_string(bytes, size == 2)),
    }
}

/// The logical unit name column of `-u`/`-U` (lsscsi's widths and cuts).
fn unit_column(facts: &LunFacts, unit: u8) -> String {
    let name = facts
        .device_id
        .as_deref()
        .map(|p| lu_name(p, unit > 3))
        .unwrap_or_default();
    let n = name.chars().count();
    if name.is_empty() {
        format!("{:<32}  ", "none")
    } else if n < 33 || unit > 2 {
        if unit > 2 {
            format!("{name}  ")
        } else {
            format!("{name:<32}  ")
        }
    } else if unit == 1 {
        format!("{}_ ", &name[..32])
    } else {
        format!("_{}  ", &name[n - 31..])
    }
}

/// The lines lsscsi prints for one LUN (one line, or four with `-c`, and `-l`'s below).
pub fn lun_lines(
    host: usize,
    bdf: PciAddress,
    l: &ScannedLun,
    layout: &Layout,
    facts: &LunFacts,
) -> Vec<String> {
    let mut lines = lun_head_lines(host, bdf, l, layout, facts);
    lines.extend(long_lines(l, facts, layout.long));
    if layout.verbose && !layout.classic {
        // Where lsscsi names the SCSI device's sysfs directory, uvio names the PCI
        // function it drives the LUN through (it has no SCSI device in sysfs).
        let dir = format!("/sys/bus/pci/devices/{bdf}");
        let real = std::fs::canonicalize(&dir)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "?".into());
        lines.push(format!("  dir: {dir}  [{real}]"));
    }
    lines
}

fn lun_head_lines(
    host: usize,
    bdf: PciAddress,
    l: &ScannedLun,
    layout: &Layout,
    facts: &LunFacts,
) -> Vec<String> {
    let inq = &l.inquiry;
    if layout.classic {
        let level = match inq.scsi_level {
            0 => "none".to_string(),
            1 => "01".to_string(),
            n => format!("{:02x}", n - 1),
        };
        return vec![
            format!(
                "Host: scsi{host} Channel: {:02} Target: {:02} Lun: {:02}",
                l.channel, l.target, l.linux_lun
            ),
            format!(
                "  Vendor: {:<8} Model: {:<16} Rev: {:<4}",
                inq.vendor, inq.product, inq.revision
            ),
            format!(
                "  Type:   {:<33}ANSI SCSI revision: {level}",
                inq.device_type.classic_name()
            ),
        ];
    }
    let tuple = tuple(host, l, layout.lunhex);
    let width = if layout.lunhex > 0 { 28 } else { 13 };
    let mut line = if tuple.len() >= width {
        format!("{tuple} ")
    } else {
        format!("{tuple:<width$}")
    };
    if layout.pdt {
        line.push_str(&format!("{:<8}", format!("0x{:x}", inq.device_type.0)));
    } else if !layout.brief {
        line.push_str(&format!("{:<7} ", inq.device_type.short_name()));
    }
    if layout.transport {
        // virtio-scsi has no SCSI transport class: lsscsi leaves the column blank.
        line.push_str(&" ".repeat(32));
    } else if layout.unit > 0 {
        line.push_str(&unit_column(facts, layout.unit));
    } else if !layout.brief {
        line.push_str(&format!(
            "{:<8} {:<16} {:<4}  ",
            inq.vendor, inq.product, inq.revision
        ));
    }
    // The names udev would give the LUN's block device (sd or sr), by its rule.
    let upper = UpperDriver::of(inq.device_type.0);
    let udev = UdevInput {
        vendor: inq.vendor.as_bytes(),
        product: inq.product.as_bytes(),
        unit_serial: facts.unit_serial.as_deref(),
        device_id: facts.device_id.as_deref(),
    };
    if layout.wwn {
        match id_wwn(udev.device_id).filter(|_| upper != UpperDriver::None) {
            Some(wwn) => line.push_str(&format!("{wwn:<34}  ")),
            None => line.push_str(&" ".repeat(32)),
        }
    }
    line.push_str(&format!("{:<9}", device(bdf, l)));
    if layout.scsi_id {
        let id = id_serial(&udev).filter(|_| upper != UpperDriver::None);
        line.push_str(&format!("  {}", id.as_deref().unwrap_or("-")));
    }
    if layout.protection {
        // sd's protection_type from READ CAPACITY (16); the integrity format of a block
        // device is "none": uvio registers no integrity profile (it does not negotiate
        // VIRTIO_SCSI_F_T10_PI).
        match facts.protection_type {
            0 => line.push_str(&format!("  {:<9}", "-")),
            t => line.push_str(&format!("  DIF/Type{t}")),
        }
        let format = if upper == UpperDriver::None {
            "-"
        } else {
            "none"
        };
        line.push_str(&format!("  {format:<16}"));
    }
    if layout.protmode {
        // sd's protection_mode names the host's DIF/DIX capability: none for uvio.
        line.push_str(&format!("  {:<4}", "-"));
    }
    if layout.size > 0 {
        line.push_str(&size_column(facts, layout.size));
    }
    vec![line]
}

/// One host as `lsscsi -H` lists it: `[H]` and the driver's name (lsscsi 0.31 has no
/// classic layout for hosts and says so, once per host).
pub fn host_line(host: usize, layout: &Layout) -> String {
    if layout.classic {
        return "  <'--classic' not supported for hosts>".to_string();
    }
    format!("{:<7}{:<14}", format!("[{host}]"), "virtio_scsi")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::fixtures::qemu_inquiry;
    use uvio::scsi::scan::DiskInfo;

    /// A LUN as the scan reports it: a disk of `bytes` in `block_size` blocks, or (None)
    /// QEMU's CD-ROM.
    fn lun(target: u16, lun: u16, disk: Option<(u64, u32)>) -> ScannedLun {
        let linux_lun = if lun < 256 {
            u64::from(lun)
        } else {
            0x4000 | u64::from(lun)
        };
        // virtio-scsi's LUN address: 1, the target, then the LUN (flat from 256).
        let mut lun_field = [1, target as u8, 0, 0, 0, 0, 0, 0];
        lun_field[2..4].copy_from_slice(&(linux_lun as u16).to_be_bytes());
        ScannedLun {
            channel: 0,
            target,
            lun,
            linux_lun,
            lun_field,
            inquiry: match disk {
                Some(_) => qemu_inquiry(0, "QEMU HARDDISK"),
                None => qemu_inquiry(5, "QEMU CD-ROM"),
            },
            disk: disk.map(|(bytes, block_size)| DiskInfo {
                blocks: bytes / u64::from(block_size),
                block_size,
                physical_block_size: block_size,
                size_bytes: bytes,
                write_cache: true,
                fua: true,
                ..DiskInfo::default()
            }),
        }
    }

    fn classic_hosts() -> Layout {
        Layout {
            classic: true,
            ..Layout::default()
        }
    }

    fn lines(l: &ScannedLun, layout: Layout) -> Vec<String> {
        let facts = LunFacts {
            size: super::super::lun_facts::disk_size(l),
            ..LunFacts::default()
        };
        lun_lines(0, "0000:00:04.0".parse().unwrap(), l, &layout, &facts)
    }

    /// The lines lsscsi 0.31 printed for the same LUNs of the kernel-driven twin in
    /// vm_scsi, with uvio's DEVICE address where it has /dev/sdX.
    #[test]
    fn layouts_as_lsscsi_prints_them() {
        let gib = lun(0, 0, Some((1 << 30, 512)));
        let flat = lun(2, 300, Some((128 << 20, 4096)));
        let cd = lun(3, 0, None);
        let d = "0000:00:04.0/0:0:0";
        let f = "0000:00:04.0/0:2:300";
        let size = |n| Layout {
            size: n,
            ..Layout::default()
        };
        assert_eq!(
            lines(&gib, size(1)),
            [format!(
                "[0:0:0:0]    disk    QEMU     QEMU HARDDISK    2.5+  {d}  1.07GB"
            )]
        );
        assert_eq!(
            lines(&flat, size(2)),
            [format!(
                "[0:0:2:16684] disk    QEMU     QEMU HARDDISK    2.5+  {f}  128MiB"
            )]
        );
        assert_eq!(
            lines(&flat, size(3)),
            [format!(
                "[0:0:2:16684] disk    QEMU     QEMU HARDDISK    2.5+  {f}         32768"
            )]
        );
        assert_eq!(
            lines(&gib, size(4)),
            [format!(
                "[0:0:0:0]    disk    QEMU     QEMU HARDDISK    2.5+  {d}       2097152,512"
            )]
        );
        assert_eq!(
            lines(&cd, Layout::default()),
            ["[0:0:3:0]    cd/dvd  QEMU     QEMU CD-ROM      2.5+  -        "]
        );
        let brief = Layout {
            brief: true,
            ..Layout::default()
        };
        assert_eq!(lines(&flat, brief), [format!("[0:0:2:16684] {f}")]);
        let pdt = Layout {
            pdt: true,
            ..Layout::default()
        };
        assert_eq!(
            lines(&cd, pdt),
            ["[0:0:3:0]    0x5     QEMU     QEMU CD-ROM      2.5+  -        "]
        );
        let transport = Layout {
            transport: true,
            ..Layout::default()
        };
        assert_eq!(
            lines(&gib, transport),
            [format!(
                "[0:0:0:0]    disk                                    {d}"
            )]
        );
        let hex = |n| Layout {
            lunhex: n,
            ..Layout::default()
        };
        assert_eq!(
            lines(&flat, hex(1)),
            [format!(
                "[0:0:2:0x412c]              disk    QEMU     QEMU HARDDISK    2.5+  {f}"
            )]
        );
        assert_eq!(
            lines(&flat, hex(2)),
            [format!(
                "[0:0:2:0x412c000000000000]  disk    QEMU     QEMU HARDDISK    2.5+  {f}"
            )]
        );
        let classic = Layout {
            classic: true,
            ..Layout::default()
        };
        assert_eq!(
            lines(&cd, classic.clone()),
            [
                "Host: scsi0 Channel: 00 Target: 03 Lun: 00",
                "  Vendor: QEMU     Model: QEMU CD-ROM      Rev: 2.5+",
                "  Type:   CD-ROM                           ANSI SCSI revision: 05",
            ]
        );
        assert_eq!(
            lines(&flat, classic)[0],
            "Host: scsi0 Channel: 00 Target: 02 Lun: 16684"
        );
        assert_eq!(host_line(0, &Layout::default()), "[0]    virtio_scsi   ");
        assert_eq!(
            host_line(0, &classic_hosts()),
            "  <'--classic' not supported for hosts>"
        );
    }

    /// The columns and lines lsscsi 0.31 printed on the twin for `-u`, `-pPs`, `-S`, `-l`
    /// (the empty CD-ROM with sr's default capacity; a LUN with an NAA designator).
    #[test]
    fn more_columns_as_lsscsi_prints_them() {
        use super::super::lun_facts::BlockSize;
        let cd = lun(3, 0, None);
        let cd_facts = LunFacts {
            size: Some(BlockSize {
                sectors: 0x1f_ffff,
                logical_block_size: 512,
            }),
            queue_depth: 128,
            timeout: std::time::Duration::from_secs(30),
            ..LunFacts::default()
        };
        let bdf = "0000:00:04.0".parse().unwrap();
        let with = |layout: Layout, facts: &LunFacts| lun_lines(0, bdf, &cd, &layout, facts);
        assert_eq!(
            with(
                Layout {
                    protection: true,
                    protmode: true,
                    size: 1,
                    ..Layout::default()
                },
                &cd_facts
            ),
            ["[0:0:3:0]    cd/dvd  QEMU     QEMU CD-ROM      2.5+  -          -          none              -     1.07GB"]
        );
        assert_eq!(
            with(
                Layout {
                    size: 3,
                    long: 1,
                    ..Layout::default()
                },
                &cd_facts
            ),
            [
                "[0:0:3:0]    cd/dvd  QEMU     QEMU CD-ROM      2.5+  -               2097151",
                "  state=running queue_depth=128 scsi_level=6 type=5 device_blocked=0 timeout=30",
            ]
        );
        let unit = |n| Layout {
            unit: n,
            ..Layout::default()
        };
        assert_eq!(
            with(unit(1), &cd_facts),
            ["[0:0:3:0]    cd/dvd  none                              -        "]
        );
        let naa = [
            0, 0x83, 0, 12, 1, 3, 0, 8, 0x50, 0, 0xc5, 0, 0x15, 0xea, 0x71, 0xac,
        ];
        let named = LunFacts {
            device_id: Some(naa.to_vec()),
            ..cd_facts.clone()
        };
        assert_eq!(
            with(unit(6), &named),
            ["[0:0:3:0]    cd/dvd  naa.5000c50015ea71ac  -        "]
        );
        assert_eq!(
            with(unit(1), &named),
            ["[0:0:3:0]    cd/dvd  5000c50015ea71ac                  -        "]
        );
        // Too long for -u's 32 columns: cut (-u) or its end kept (-uu).
        let long_name = LunFacts {
            device_id: Some(
                [
                    &[0u8, 0x83, 0, 40, 3, 8, 0, 36][..],
                    b"iqn.2003-01.org.example:storage.disk9",
                ]
                .concat()[..44]
                    .to_vec(),
            ),
            ..cd_facts.clone()
        };
        assert_eq!(
            unit_column(&long_name, 1),
            "iqn.2003-01.org.example:storage._ "
        );
        assert_eq!(
            unit_column(&long_name, 2),
            "_003-01.org.example:storage.disk  "
        );
    }

    #[test]
    fn sizes_as_lsscsi_prints_them() {
        for (bytes, si, bin) in [
            (1u64 << 30, "1.07GB", "1.00GiB"),
            (256 << 20, "268MB", "256MiB"),
            (64 << 20, "67.1MB", "64.0MiB"),
            (128 << 20, "134MB", "128MiB"),
            (16 << 20, "16.7MB", "16.0MiB"),
            (2 << 40, "2.19TB", "2.00TiB"),
            (512, "512B", "512B"),
            (999, "999B", "999B"),
            (1000, "1.00kB", "1000B"),
            (1024, "1.02kB", "1.00KiB"),
            (1536 << 20, "1.61GB", "1.50GiB"),
            (96 << 20, "100MB", "96.0MiB"),
        ] {
            assert_eq!(size_string(bytes, false), si, "{bytes}");
            assert_eq!(size_string(bytes, true), bin, "{bytes}");
        }
    }

    #[test]
    fn t10_lun_hex() {
        let peripheral = [0, 5, 0, 0, 0, 0, 0, 0];
        assert_eq!(lun_t10_hex(&peripheral), "0x0005");
        let flat = [0x41, 0x2c, 0, 0, 0, 0, 0, 0];
        assert_eq!(lun_t10_hex(&flat), "0x412c");
        let two_levels = [0x01, 0x22, 0x00, 0x33, 0, 0, 0, 0];
        assert_eq!(lun_t10_hex(&two_levels), "0x0122_0033");
        assert_eq!(t10_lun(16684), flat);
        assert_eq!(t10_lun(0x0033_0122), two_levels);
        assert_eq!(lun_word_flip(16684), 0x412c_0000_0000_0000);
        assert_eq!(lun_word_flip(5), 0x0005_0000_0000_0000);
    }
}
