//! Issue 4: virtio-scsi — uvio's scan of one HBA against the guest kernel's scan of an
//! identically built twin, and data through a SCSI disk LUN against the host's image.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde_json::Value;
use uvio_tests::data::{guest_hash, seeded_bytes, sha256, work_dir};
use uvio_tests::lsscsi_compare::{compare_line, host_lines};
use uvio_tests::vm::{VmOutput, VmSpec};

const UVIO_HBA: &str = "0000:00:04.0";
const KERNEL_HBA: &str = "0000:00:06.0";
const DATA_BYTES: usize = 16 << 20;

/// One HBA and its LUNs; the same layout is built twice (`bus` s0 for uvio, s1 for the
/// kernel). Returns the spec with both.
fn topology(spec: VmSpec, bus: &str, addr: &str, data_image: &Path) -> VmSpec {
    let ro_node = format!("{bus}ro");
    let data_node = format!("{bus}data");
    spec.virtio_scsi(bus, addr, 2, "")
        // Several targets; a serial and a rotation rate on the first disk.
        .scsi_hd_null(bus, 0, 0, 1 << 30, "serial=UVIO-SER-0,rotation_rate=1")
        // A read-only disk.
        .blockdev(format!(
            "driver=null-co,node-name={ro_node},size={},read-zeroes=on,read-only=on",
            256u64 << 20
        ))
        .scsi_hd(bus, 1, 0, &ro_node, "")
        // A target without LUN 0, sparse LUNs, one of them >= 256 (flat addressing) with
        // 4096-byte logical blocks; LUN 5 has a WWN (an NAA designator of the LU, and one
        // of its target port).
        .scsi_hd_null(
            bus,
            2,
            5,
            64 << 20,
            "wwn=0x5000c50015ea71ac,port_wwn=0x5000c50015ea71ad",
        )
        .scsi_hd_null(
            bus,
            2,
            300,
            128 << 20,
            "logical_block_size=4096,physical_block_size=4096",
        )
        // A CD-ROM without media.
        .scsi_cd(bus, 3, 0, None, "")
        // A file-backed disk for the data checks.
        .blockdev(format!(
            "driver=file,filename={},node-name={data_node},discard=unmap",
            data_image.display()
        ))
        .scsi_hd(bus, 4, 0, &data_node, "")
        // A scratch disk for the concurrency check.
        .blockdev(format!(
            "driver=file,filename={},node-name={bus}scratch",
            data_image.with_extension("scratch").display()
        ))
        .scsi_hd(bus, 4, 1, &format!("{bus}scratch"), "")
        // A second scratch disk: two LUNs of one host benchmarked together.
        .blockdev(format!(
            "driver=file,filename={},node-name={bus}scratch2",
            data_image.with_extension("scratch2").display()
        ))
        .scsi_hd(bus, 4, 2, &format!("{bus}scratch2"), "")
}

/// The kernel's view of the HBA at `bdf`, from sysfs: "C:T:L" -> fields.
fn kernel_view(out: &VmOutput) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut view = BTreeMap::new();
    for line in out.section("kernel_sysfs").output.lines() {
        let fields: Vec<&str> = line.split('|').collect();
        if fields.len() < 6 {
            continue;
        }
        let hctl: Vec<&str> = fields[0].split(':').collect();
        let ctl = hctl[1..].join(":");
        let mut m = BTreeMap::new();
        for (k, v) in ["type", "vendor", "model", "rev", "size", "lbs", "pbs", "ro"]
            .iter()
            .zip(&fields[1..])
        {
            m.insert(k.to_string(), v.trim().to_string());
        }
        view.insert(ctl, m);
    }
    view
}

/// Asserts that uvio's scan (`scan_json`) of its HBA matches the kernel's view of the twin
/// (`kernel_sysfs`): the same C:T:L set, type, vendor, model, revision, and for disks size,
/// block sizes and write protect. Returns uvio's LUNs by "C:T:linux_lun".
fn compare_with_kernel(out: &VmOutput, expected_luns: usize) -> BTreeMap<String, Value> {
    // The kernel's view of its HBA against uvio's scan of the twin.
    let kernel = kernel_view(out);
    assert_eq!(
        kernel.len(),
        expected_luns,
        "the kernel should see {expected_luns} LUNs\n{out}"
    );
    let scan: Value = serde_json::from_str(&out.section("scan_json").output)
        .unwrap_or_else(|e| panic!("scan JSON: {e}\n{out}"));
    let luns = scan["hosts"][0]["luns"]
        .as_array()
        .unwrap_or_else(|| panic!("no LUNs\n{out}"));
    let mut uvio = BTreeMap::new();
    for l in luns {
        uvio.insert(
            format!("{}:{}:{}", l["channel"], l["target"], l["linux_lun"]),
            l.clone(),
        );
    }
    assert_eq!(
        uvio.keys().collect::<Vec<_>>(),
        kernel.keys().collect::<Vec<_>>(),
        "C:T:L sets differ\n{out}"
    );
    for (ctl, k) in &kernel {
        let u = &uvio[ctl];
        assert_eq!(u["pdt"].to_string(), k["type"], "{ctl} type\n{out}");
        assert_eq!(u["vendor"], k["vendor"].as_str(), "{ctl} vendor");
        assert_eq!(u["model"], k["model"].as_str(), "{ctl} model");
        assert_eq!(u["revision"], k["rev"].as_str(), "{ctl} revision");
        if k["type"] != "0" {
            // Not a disk: the kernel's sr has a block device, uvio reports no disk fields.
            assert!(
                u.get("blocks").is_none(),
                "{ctl}: uvio calls it a disk\n{out}"
            );
            continue;
        }
        if k["size"] == "-" {
            assert!(
                u.get("blocks").is_none(),
                "{ctl}: uvio calls it a disk, the kernel does not\n{out}"
            );
            continue;
        }
        let sectors: u64 = k["size"].parse().unwrap();
        assert_eq!(
            u["size_bytes"].as_u64(),
            Some(sectors * 512),
            "{ctl} size\n{out}"
        );
        assert_eq!(
            u["block_size"].to_string(),
            k["lbs"],
            "{ctl} logical block size"
        );
        assert_eq!(
            u["physical_block_size"].to_string(),
            k["pbs"],
            "{ctl} physical block size"
        );
        assert_eq!(u["write_protect"], k["ro"] == "1", "{ctl} write protect");
    }
    uvio
}

/// lsscsi's options `uvio scan` is compared with, line for line: (check name, arguments).
/// Filters name host 0: before `uvio bind` the kernel drives uvio's HBA as its host 0
/// (the twin is host 1), and uvio numbers the one host it scans 0.
const LSSCSI_OPTIONS: &[(&str, &str)] = &[
    ("s", "-s"),
    ("ss", "-ss"),
    ("sss", "-sss"),
    ("ssss", "-ssss"),
    ("b", "-b"),
    ("bs", "-bs"),
    ("c", "-c"),
    ("D", "-D"),
    ("t", "-t"),
    ("x", "-x"),
    ("xx", "-xx"),
    ("Ds", "-D -ss"),
    ("H", "-H"),
    ("Ht", "-Ht"),
    ("cH", "-cH 0"),
    ("f_ct", "'*:0:2'"),
    ("f_dash", "-s -- '-:-:4:-'"),
    ("f_lun", "'*:*:*:16684'"),
    ("f_host", "0"),
    ("f_cd", "-s '*:0:3:0'"),
    ("f_hex", "-x '*:*:*:0x412c'"),
    ("f_bracket", "'[0:0:2:5]'"),
    ("f_hc", "-c 0:0"),
    ("f_args", "0 - 4"),
    ("f_none", "'*:*:7'"),
    ("l", "-l"),
    ("ll", "-ll"),
    ("L", "-L"),
    ("cl", "-c -l"),
    ("cL", "-cL"),
    ("xl", "-x -l"),
    ("sl", "-sl"),
    ("u", "-u"),
    ("uu", "-uu"),
    ("uuu", "-uuu"),
    ("U", "-U"),
    ("UU", "-UU"),
    ("uL", "-u -L"),
    ("bu", "-b -u"),
    ("S", "-S"),
    ("SS", "-SS"),
    ("Ss", "-Ss"),
    ("p", "-p"),
    ("P", "-P"),
    ("pPs", "-pPs"),
    ("v", "-v"),
    ("lv", "-lv"),
    ("f_cd_sizes", "-S '*:0:3:0'"),
];

/// Options lsscsi refuses to combine: both tools fail alike (exit status 1, the message).
const LSSCSI_REFUSALS: &[(&str, &str, &str)] = &[
    (
        "ul",
        "-u -l",
        "please use '--list' (rather than '--long') with --unit",
    ),
    (
        "tl",
        "-t -l",
        "please use '--list' (rather than '--long') with --transport",
    ),
    ("tu", "-t -u", "use '--transport' or '--unit' but not both"),
];

/// The udev-derived columns: `-i` (ID_SERIAL) and `-w` (ID_WWN_WITH_EXTENSION), checked
/// against the documented rule applied to `sg_inq --export` of the twin's sysfs pages.
const LSSCSI_UDEV_OPTIONS: &[(&str, &str)] = &[("i", "-i"), ("w", "-w"), ("iw", "-iw")];

/// The lsscsi comparison's checks: lsscsi before uvio takes its HBA, `uvio scan` after.
/// Before, the kernel's view of the identifiers udev would read: `sg_inq --export` over
/// each SCSI device's `inquiry`, `vpd_pg80` and `vpd_pg83`, as 55-scsi-sg3_id.rules runs it.
fn lsscsi_checks(uvio: bool) -> String {
    let all: Vec<(&str, &str)> = LSSCSI_OPTIONS
        .iter()
        .chain(LSSCSI_UDEV_OPTIONS)
        .copied()
        .chain(LSSCSI_REFUSALS.iter().map(|(name, args, _)| (*name, *args)))
        .collect();
    let mut s: String = all
        .iter()
        .map(|(name, args)| {
            if uvio {
                format!("check scan_{name} uvio scan {args}\n")
            } else {
                format!("check kernel_lsscsi_{name} /usr/bin/lsscsi {args}\n")
            }
        })
        .collect();
    if !uvio {
        s += "check kernel_udev_ids sh -c 'for d in /sys/bus/scsi/devices/0:*; do echo \"== $(basename $d)\"; \
              for a in inquiry vpd_pg80 vpd_pg83; do [ -f $d/$a ] && sg_inq --export --inhex=$d/$a --raw; done; done'\n";
    }
    s
}

/// The non-empty lines of uvio's output, and lsscsi's of kernel host 0, for one option
/// set (both must have succeeded).
fn lsscsi_pair<'a>(out: &'a VmOutput, name: &str, args: &str) -> (Vec<&'a str>, Vec<&'a str>) {
    let kernel = out.section(&format!("kernel_lsscsi_{name}"));
    let uvio = out.section(&format!("scan_{name}"));
    assert_eq!(kernel.rc, 0, "lsscsi {args}\n{kernel}");
    assert_eq!(uvio.rc, 0, "uvio scan {args}\n{uvio}");
    let k = host_lines(&kernel.output, 0);
    let u: Vec<&str> = uvio
        .output
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        u.len(),
        k.len(),
        "uvio scan {args}: {} lines, lsscsi {}\n{uvio}\n{kernel}",
        u.len(),
        k.len()
    );
    (u, k)
}

/// `uvio scan OPTS` against `lsscsi OPTS` for each of [`LSSCSI_OPTIONS`], line for line and
/// character for character, except the device node column ([`compare_line`]) and
/// uvio's own values of the kernel's I/O counters and queue depth ([`without_own_values`](uvio_tests::lsscsi_compare::without_own_values)).
fn compare_lsscsi_layouts(out: &VmOutput) {
    for (name, args) in LSSCSI_OPTIONS {
        let (u, k) = lsscsi_pair(out, name, args);
        for (u, k) in u.iter().zip(&k) {
            compare_line(u, k, args, UVIO_HBA);
        }
    }
    // uvio's own counters count what it sent: the scan's INQUIRY at least, each answered.
    for line in out.section("scan_L").output.lines() {
        if let Some(v) = line.trim().strip_prefix("iorequest_cnt=0x") {
            assert!(u32::from_str_radix(v, 16).is_ok_and(|n| n > 0), "{line}");
        }
    }
    for (name, args, says) in LSSCSI_REFUSALS {
        let kernel = out.section(&format!("kernel_lsscsi_{name}"));
        let uvio = out.section(&format!("scan_{name}"));
        assert_eq!((kernel.rc, uvio.rc), (1, 1), "{args}\n{kernel}\n{uvio}");
        assert!(
            kernel.output.contains(says) && uvio.output.contains(says),
            "{args}\n{kernel}\n{uvio}"
        );
    }
    compare_udev_columns(out);
}

/// The kernel's `sg_inq --export` values of each SCSI device of host 0, by "C:T:L"; a key
/// given twice keeps its last value, as udev's import does.
fn udev_exports(out: &VmOutput) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut all: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current = None;
    for line in out.section("kernel_udev_ids").output.lines() {
        if let Some(hctl) = line.strip_prefix("== ") {
            let ctl = hctl.split_once(':').map_or("", |(_, r)| r).to_string();
            all.entry(ctl.clone()).or_default();
            current = Some(ctl);
        } else if let (Some(ctl), Some((key, value))) = (&current, line.split_once('=')) {
            if let Some(vars) = all.get_mut(ctl) {
                vars.insert(key.to_string(), value.to_string());
            }
        }
    }
    all
}

/// udev's names by the rule uvio documents (sg3_utils 1.46's 55-scsi-sg3_id.rules):
/// (ID_SERIAL, ID_WWN_WITH_EXTENSION).
fn udev_names(vars: &BTreeMap<String, String>) -> (Option<String>, Option<String>) {
    let get = |k: &str| vars.get(k).filter(|v| !v.is_empty()).cloned();
    let vendor_model = || {
        format!(
            "{}_{}",
            get("SCSI_VENDOR").unwrap_or_default(),
            get("SCSI_MODEL").unwrap_or_default()
        )
    };
    let mut serial = [
        ("NAA_REGEXT", "3"),
        ("NAA_REG", "3"),
        ("NAA_EXT", "3"),
        ("EUI64", "2"),
        ("NAME", "8"),
        ("T10", "1"),
        ("NAA_LOCAL", "3"),
    ]
    .iter()
    .find_map(|(k, lead)| get(&format!("SCSI_IDENT_LUN_{k}")).map(|v| format!("{lead}{v}")));
    if serial.is_none() {
        serial = get("SCSI_IDENT_LUN_VENDOR")
            .map(|v| format!("0{}_{v}", vendor_model()))
            .or_else(|| get("SCSI_IDENT_SERIAL").map(|v| format!("S{}_{v}", vendor_model())));
    }
    let wwn = ["NAA_REGEXT", "NAA_REG", "NAA_EXT", "NAA_LOCAL"]
        .iter()
        .find_map(|k| get(&format!("SCSI_IDENT_LUN_{k}")))
        .map(|v| format!("0x{v}"));
    (serial, wwn)
}

/// `uvio scan -i/-w/-iw` against lsscsi's lines on the twin (where, without udev, lsscsi
/// shows `-` and a blank WWN column) with the names the documented rule gives in their
/// place; everything else as [`compare_line`] compares it.
fn compare_udev_columns(out: &VmOutput) {
    let exports = udev_exports(out);
    let names: BTreeMap<&String, (Option<String>, Option<String>)> = exports
        .iter()
        .map(|(ctl, v)| (ctl, udev_names(v)))
        .collect();
    // Not vacuous: the serial-numbered LUN and the one with a WWN have names.
    assert_eq!(
        names
            .get(&"0:0:0".to_string())
            .and_then(|n| n.0.clone())
            .as_deref(),
        Some("0QEMU_QEMU_HARDDISK_UVIO-SER-0"),
        "{names:?}"
    );
    assert_eq!(
        names.get(&"0:2:5".to_string()).cloned(),
        Some((
            Some("35000c50015ea71ac".to_string()),
            Some("0x5000c50015ea71ac".to_string())
        )),
        "{names:?}"
    );
    for (name, args) in LSSCSI_UDEV_OPTIONS {
        let (u, k) = lsscsi_pair(out, name, args);
        for (u, k) in u.iter().zip(&k) {
            let ctl = k
                .trim_start_matches('[')
                .split(']')
                .next()
                .and_then(|t| t.split_once(':'))
                .map_or("", |(_, r)| r)
                .to_string();
            let (serial, wwn) = names.get(&ctl).cloned().unwrap_or_default();
            let mut expected = k.to_string();
            if args.contains('w') {
                let p = expected.find("/dev/").unwrap_or(0);
                let blank = p.saturating_sub(32);
                assert_eq!(&expected[blank..p], " ".repeat(32), "{k}");
                let column = wwn.map_or(" ".repeat(32), |w| format!("{w:<34}  "));
                expected = format!("{}{column}{}", &expected[..blank], &expected[p..]);
            }
            if args.contains('i') {
                assert!(expected.ends_with("  -"), "{k}");
                if let Some(id) = serial {
                    expected = format!("{}{id}", &expected[..expected.len() - 1]);
                }
            }
            compare_line(u, &expected, args, UVIO_HBA);
        }
    }
}

/// The marker between the kernel's half and uvio's half of an [`sg_pair`] section.
const UVIO_HALF: &str = "==UVIO==\n";

/// A check that runs an sg3_utils command on the kernel's twin of a LUN (its block node,
/// found in sysfs by `kernel_ctl`, as the kernel numbers the LUN) and then `uvio ARGS` on
/// uvio's HBA: each one's stdout and exit status, the two halves split by [`UVIO_HALF`].
fn sg_pair(name: &str, kernel_ctl: &str, sg: &str, uvio: &str) -> String {
    format!(
        "check {name} sh -c 'd=/dev/$(ls /sys/bus/pci/devices/{KERNEL_HBA}/virtio*/host*/target*/*:{kernel_ctl}/block | head -1); \
         {sg} $d 2>/dev/null; echo rc=$?; echo ==UVIO==; uvio {uvio} 2>/dev/null; echo rc=$?'\n"
    )
}

/// Asserts that both halves of an [`sg_pair`] section are the same, line for line (the
/// exit statuses included), and returns uvio's half.
fn assert_sg_pair<'a>(out: &'a VmOutput, name: &str) -> &'a str {
    let text = &out.section(name).output;
    let (kernel, uvio) = text
        .split_once(UVIO_HALF)
        .unwrap_or_else(|| panic!("{name}: no {UVIO_HALF:?} marker\n{out}"));
    let uvio = uvio.trim_end_matches('\n');
    let kernel = kernel.trim_end_matches('\n');
    assert_eq!(
        uvio, kernel,
        "{name}: uvio (left) vs sg3_utils (right)\n{text}"
    );
    uvio
}

/// sg3_utils (Debian's sg3-utils) against `uvio readcap`, `tur`, `luns` and `inq` on the
/// twins of the first topology's LUNs: the CD-ROM without media (NOT READY, exit status
/// 2), flat LUN 300 and VPD pages a LUN does not list included.
fn sg_script() -> String {
    let mut s = String::new();
    for (tag, kernel, uvio) in [
        ("0", "0:0:0", "0:0:0"),
        ("ro", "0:1:0", "0:1:0"),
        ("5", "0:2:5", "0:2:5"),
        ("300", "0:2:16684", "0:2:300"),
        ("cd", "0:3:0", "0:3:0"),
    ] {
        let dev = format!("{UVIO_HBA}/{uvio}");
        s += &sg_pair(
            &format!("sg_readcap_{tag}"),
            kernel,
            "sg_readcap",
            &format!("readcap {dev}"),
        );
        // -R: for --long sg_readcap opens the node read-write otherwise, which the
        // read-only LUN refuses (EROFS) before any command is sent.
        s += &sg_pair(
            &format!("sg_readcap16_{tag}"),
            kernel,
            "sg_readcap -R --long",
            &format!("readcap --long {dev}"),
        );
        s += &sg_pair(
            &format!("sg_tur_{tag}"),
            kernel,
            "sg_turs",
            &format!("tur {dev}"),
        );
    }
    // uvio sends REPORT LUNS to the target's LUN 0 address, as the kernel's scan does;
    // QEMU answers it there only (ILLEGAL REQUEST on any other LUN), so the twins compared
    // are targets with a LUN 0. Target 2 (LUNs 5 and 300 only) is checked on uvio's side.
    for (tag, kernel, target, opts) in [
        ("0", "0:0:0", "0:0", ""),
        ("0d", "0:0:0", "0:0", "--decode"),
        ("4s2d", "0:4:0", "0:4", "--select 2 --decode"),
        ("4s1", "0:4:0", "0:4", "--select=1"),
        // QEMU takes SELECT REPORT 0 to 2 only: ILLEGAL REQUEST, exit status 5.
        ("0s16", "0:0:0", "0:0", "--select=0x10"),
    ] {
        s += &sg_pair(
            &format!("sg_luns_{tag}"),
            kernel,
            &format!("sg_luns {opts}"),
            &format!("luns {opts} {UVIO_HBA}/{target}"),
        );
    }
    // sg_inq and sg_vpd: the standard INQUIRY, each VPD page (one a LUN does not list
    // fails alike, exit status 83), and the hex forms.
    for (tag, kernel, uvio) in [
        ("0", "0:0:0", "0:0:0"),
        ("300", "0:2:16684", "0:2:300"),
        ("cd", "0:3:0", "0:3:0"),
    ] {
        let dev = format!("{UVIO_HBA}/{uvio}");
        s += &sg_pair(
            &format!("sg_inq_{tag}"),
            kernel,
            "sg_inq",
            &format!("inq {dev}"),
        );
        s += &sg_pair(
            &format!("sg_inq_hex_{tag}"),
            kernel,
            "sg_inq -H",
            &format!("inq --hex {dev}"),
        );
        for page in ["0x00", "0x80", "0x83", "0x86", "0xb0", "0xb1", "0xb2"] {
            s += &sg_pair(
                &format!("sg_vpd_{page}_{tag}"),
                kernel,
                &format!("sg_vpd --page={page}"),
                &format!("inq --page {page} {dev}"),
            );
        }
        s += &sg_pair(
            &format!("sg_vpd_hex_{tag}"),
            kernel,
            "sg_vpd -H -p di",
            &format!("inq -H -p di {dev}"),
        );
    }
    // sg_raw against uvio raw: everything on stderr (both halves take it). The READ(10)
    // writes the same --outfile name on both sides (sg_raw prints it), kept as k.bin.
    for (tag, kernel, uvio, sg_args, cdb) in [
        ("inq", "0:0:0", "0:0:0", "-r 96", "12 00 00 00 60 00"),
        (
            "inq_short",
            "0:2:5",
            "0:2:5",
            "--request=20",
            "12 00 00 00 14 00",
        ),
        ("tur", "0:0:0", "0:0:0", "", "00 00 00 00 00 00"),
        ("tur_cd", "0:3:0", "0:3:0", "", "00 00 00 00 00 00"),
        ("bad_field", "0:0:0", "0:0:0", "-r 8", "12 01 77 00 08 00"),
        ("bad_opcode", "0:0:0", "0:0:0", "", "ff 00 00 00 00 00"),
        ("nosense", "0:3:0", "0:3:0", "-n", "00 00 00 00 00 00"),
        (
            "rc16",
            "0:2:16684",
            "0:2:300",
            "-r 32",
            "9e 10 00 00 00 00 00 00 00 00 00 00 00 20 00 00",
        ),
    ] {
        s += &format!(
            "check sg_raw_{tag} sh -c 'd=/dev/$(ls /sys/bus/pci/devices/{KERNEL_HBA}/virtio*/host*/target*/*:{kernel}/block | head -1); \
             sg_raw {sg_args} $d {cdb} 2>&1; echo rc=$?; echo ==UVIO==; uvio raw {sg_args} {UVIO_HBA}/{uvio} {cdb} 2>&1; echo rc=$?'\n"
        );
    }
    s += &format!(
        "check sg_raw_read sh -c 'd=/dev/$(ls /sys/bus/pci/devices/{KERNEL_HBA}/virtio*/host*/target*/*:0:4:0/block | head -1); \
         sg_raw -r 2048 -o /tmp/raw.bin $d 28 00 00 00 00 02 00 00 04 00 2>&1; echo rc=$?; mv /tmp/raw.bin /tmp/k.bin; echo ==UVIO==; \
         uvio raw -r 2048 -o /tmp/raw.bin {UVIO_HBA}/0:4:0 28 00 00 00 00 02 00 00 04 00 2>&1; echo rc=$?'\n\
         check sg_raw_read_same sh -c 'cmp /tmp/k.bin /tmp/raw.bin && sha256sum < /tmp/raw.bin'\n"
    );
    s += &format!(
        "check sg_luns_2d uvio luns --decode {UVIO_HBA}/0:2\n\
         check sg_no_lun uvio readcap {UVIO_HBA}/0:2:6\n\
         check sg_no_target uvio luns {UVIO_HBA}/0:9\n\
         check sg_inq_no_lun uvio inq {UVIO_HBA}/0:7:0\n\
         check sg_readcap_cd_sense uvio readcap {UVIO_HBA}/0:3:0\n\
         check sg_luns_bad_select uvio luns --select 0x10 {UVIO_HBA}/0:0\n"
    );
    s
}

/// The scan commands both comparison tests run (the kernel's view, then uvio's);
/// `lsscsi` adds the lsscsi layout checks.
fn scan_script_with(lsscsi: bool) -> String {
    let (kernel_checks, uvio_checks) = if lsscsi {
        (lsscsi_checks(false), lsscsi_checks(true))
    } else {
        (String::new(), String::new())
    };
    format!(
        r#"
check kernel_lsscsi /usr/bin/lsscsi -s
{kernel_checks}check kernel_sysfs sh -c 'for d in /sys/bus/pci/devices/{KERNEL_HBA}/virtio*/host*/target*/*:*:*:*; do n=$(basename $d); b=$(ls $d/block 2>/dev/null | head -1); if [ -n "$b" ]; then s="$(cat $d/block/$b/size)|$(cat $d/block/$b/queue/logical_block_size)|$(cat $d/block/$b/queue/physical_block_size)|$(cat $d/block/$b/ro)"; else s="-|-|-|-"; fi; echo "$n|$(cat $d/type)|$(cat $d/vendor)|$(cat $d/model)|$(cat $d/rev)|$s"; done'
check bind uvio bind {UVIO_HBA}
check scan uvio scan -s
check scan_json uvio scan {UVIO_HBA} --json
{uvio_checks}"#
    )
}

fn scan_script() -> String {
    scan_script_with(false)
}

/// A second topology: high target ids, a target whose LUNs start at 1, a dense run of
/// LUNs, and a disk with 4 KiB physical blocks behind 512-byte logical ones. uvio's HBA has
/// the packed virtqueue (`packed=on`; the kernel's twin keeps split), so the whole scan, the
/// data checks on a file-backed LUN and a LUN reset (the control queue) run on packed rings.
#[test]
fn second_topology_scan_matches_the_kernel() {
    let dir = work_dir("scsi-packed");
    let image = seeded_bytes(0x5c51_0003, 8 << 20);
    let w = seeded_bytes(0x5c51_0004, (1 << 20) + 4096);
    for name in ["uvio.img", "kernel.img"] {
        fs::write(dir.join(name), &image).unwrap();
    }
    fs::write(dir.join("w.bin"), &w).unwrap();
    let build = |spec: VmSpec, bus: &str, addr: &str, extra: &str, data: &Path| {
        let mut spec = spec.virtio_scsi(bus, addr, 1, extra);
        for lun in 1..=3 {
            spec = spec.scsi_hd_null(bus, 7, lun, 32 << 20, "");
        }
        for lun in 0..12 {
            spec = spec.scsi_hd_null(bus, 9, lun, (lun as u64 + 1) << 20, "");
        }
        spec.scsi_hd_null(bus, 200, 0, 96 << 20, "physical_block_size=4096")
            .scsi_hd_null(bus, 255, 511, 8 << 20, "serial=LAST")
            .blockdev(format!(
                "driver=file,filename={},node-name={bus}data",
                data.display()
            ))
            .scsi_hd(bus, 8, 0, &format!("{bus}data"), "")
    };
    let lun = format!("{UVIO_HBA}/0:8:0");
    let w_off = 3 << 20;
    let script = format!(
        r#"check packed_info uvio info {UVIO_HBA} --json
check packed_read sh -c 'uvio read {lun} --offset 0 --length 2m | sha256sum'
check packed_verify uvio verify {lun} --ios 4000 --json
check packed_write uvio write {lun} --offset {w_off} --input /data/w.bin
check packed_readback sh -c 'uvio read {lun} --offset {w_off} --length {w_len} | sha256sum'
check packed_reset uvio reset {lun}
true
"#,
        w_len = w.len()
    );
    let spec = VmSpec::new()
        .reference_tools()
        .file(dir.join("w.bin"), "/data/w.bin");
    let spec = build(spec, "s0", "04.0", "packed=on", &dir.join("uvio.img"));
    let out = build(spec, "s1", "06.0", "", &dir.join("kernel.img"))
        .script(scan_script() + &script)
        .run();
    out.assert_success();
    let uvio = compare_with_kernel(&out, 3 + 12 + 2 + 1);
    assert_eq!(uvio["0:200:0"]["physical_block_size"], 4096);
    assert_eq!(uvio["0:255:16895"]["lun"], 511);
    assert_eq!(uvio["0:255:16895"]["serial"], "LAST");

    let info: Value = serde_json::from_str(&out.section("packed_info").output)
        .unwrap_or_else(|e| panic!("packed_info: {e}\n{out}"));
    assert!(
        info["features"]["negotiated"]
            .as_array()
            .is_some_and(|f| f.iter().any(|n| n == "VIRTIO_F_RING_PACKED")),
        "{out}"
    );
    assert_eq!(
        guest_hash(&out, "packed_read"),
        sha256(&image[..2 << 20]),
        "{out}"
    );
    let verify: Value = serde_json::from_str(&out.section("packed_verify").output)
        .unwrap_or_else(|e| panic!("packed_verify: {e}\n{out}"));
    assert_eq!(verify["ok"], true, "{out}");
    assert_eq!(out.section("packed_write").rc, 0, "{out}");
    assert_eq!(guest_hash(&out, "packed_readback"), sha256(&w), "{out}");
    let after = fs::read(dir.join("uvio.img")).unwrap();
    assert!(
        after[w_off..w_off + w.len()] == w[..],
        "the LUN's host image differs from what was written over the packed ring\n{out}"
    );
    let reset = out.section("packed_reset");
    assert_eq!(reset.rc, 0, "{out}");
    assert!(
        reset.output.contains("LOGICAL UNIT RESET: OK")
            || reset
                .output
                .contains("LOGICAL UNIT RESET: FUNCTION_SUCCEEDED"),
        "{reset}"
    );
    assert!(reset.output.contains("read after the reset: ok"), "{reset}");
    let _ = fs::remove_dir_all(&dir);
}

/// The sg3_utils comparisons of [`sg_script`]: identical output and exit status, and
/// what they must contain so that an empty pair cannot pass.
fn sg_checks(out: &VmOutput) {
    for tag in ["0", "ro", "5", "300"] {
        let rc10 = assert_sg_pair(out, &format!("sg_readcap_{tag}"));
        assert!(
            rc10.contains("Read Capacity results:") && rc10.ends_with("rc=0"),
            "{rc10}"
        );
        let rc16 = assert_sg_pair(out, &format!("sg_readcap16_{tag}"));
        assert!(
            rc16.contains("Logical blocks per physical block exponent="),
            "{rc16}"
        );
        assert_eq!(assert_sg_pair(out, &format!("sg_tur_{tag}")), "rc=0");
    }
    assert!(assert_sg_pair(out, "sg_readcap16_300").contains("Logical block length=4096 bytes"));
    // The CD-ROM without media: NOT READY, sg3_utils' exit status 2.
    assert!(assert_sg_pair(out, "sg_readcap_cd").ends_with("rc=2"));
    assert!(assert_sg_pair(out, "sg_readcap16_cd").ends_with("rc=2"));
    assert_eq!(
        assert_sg_pair(out, "sg_tur_cd"),
        "device not ready\nCompleted 1 Test Unit Ready commands with 1 errors\nrc=2"
    );
    for tag in ["0", "0d", "4s2d", "4s1"] {
        assert!(assert_sg_pair(out, &format!("sg_luns_{tag}")).contains("Lun list length"));
    }
    assert_eq!(assert_sg_pair(out, "sg_luns_0s16"), "rc=5");
    // What the target rejected, with its sense decoded (on stderr).
    for (s, status, says) in [
        (
            "sg_readcap_cd_sense",
            2,
            "READ CAPACITY (10) failed: Device not ready\n  \
             Fixed format, current; Sense key: Not Ready\n  \
             Additional sense: Medium not present",
        ),
        (
            "sg_luns_bad_select",
            5,
            "Report Luns command failed: Illegal request\n  \
             Fixed format, current; Sense key: Illegal Request\n  \
             Additional sense: Invalid field in cdb",
        ),
    ] {
        let sec = out.section(s);
        assert_eq!(sec.rc, status, "{sec}");
        assert!(
            sec.output.contains(says),
            "{s} does not say {says:?}\n{sec}"
        );
    }
    let luns_2d = out.section("sg_luns_2d");
    assert_eq!(luns_2d.rc, 0, "{luns_2d}");
    assert!(
        luns_2d
            .output
            .contains("    412c000000000000\n      Flat space addressing: lun=300\n")
            && luns_2d
                .output
                .contains("    0005000000000000\n      Peripheral device addressing: lun=5\n"),
        "{luns_2d}"
    );
    for tag in ["0", "300", "cd"] {
        let std = assert_sg_pair(out, &format!("sg_inq_{tag}"));
        assert!(
            std.starts_with("standard INQUIRY:\n") && std.ends_with("rc=0"),
            "{std}"
        );
        let hex = assert_sg_pair(out, &format!("sg_inq_hex_{tag}"));
        assert!(hex.starts_with(" 00     "), "{hex}");
        for page in ["0x00", "0x80", "0x83", "0xb0", "0xb1", "0xb2"] {
            assert_sg_pair(out, &format!("sg_vpd_{page}_{tag}"));
        }
        // QEMU lists no Extended INQUIRY page: both refuse it alike (its decoding is
        // checked on bytes against sg_vpd's output, in vpd_ei's unit tests).
        assert_eq!(assert_sg_pair(out, &format!("sg_vpd_0x86_{tag}")), "rc=83");
        assert_sg_pair(out, &format!("sg_vpd_hex_{tag}"));
    }
    assert!(assert_sg_pair(out, "sg_inq_0").contains(" Unit serial number: UVIO-SER-0\n"));
    assert!(assert_sg_pair(out, "sg_vpd_0x83_0").contains("vendor specific: UVIO-SER-0\n"));
    assert!(assert_sg_pair(out, "sg_vpd_0xb0_0").contains("Maximum transfer length: "));
    assert!(assert_sg_pair(out, "sg_vpd_0xb1_0").contains("Non-rotating medium"));
    assert!(assert_sg_pair(out, "sg_vpd_0xb2_300").contains("Provisioning type: "));
    assert!(assert_sg_pair(out, "sg_vpd_0x80_300").ends_with("rc=83"));
    // sg_raw: identical reports and exit statuses.
    for (tag, ends) in [
        ("inq", "rc=0"),
        ("inq_short", "rc=0"),
        ("tur", "rc=0"),
        ("tur_cd", "rc=2"),
        ("bad_field", "rc=5"),
        ("bad_opcode", "rc=9"),
        ("nosense", "rc=2"),
        ("rc16", "rc=0"),
        ("read", "rc=0"),
    ] {
        let text = assert_sg_pair(out, &format!("sg_raw_{tag}"));
        assert!(
            text.starts_with("SCSI Status: ") && text.ends_with(ends),
            "{text}"
        );
    }
    assert!(assert_sg_pair(out, "sg_raw_inq")
        .contains("Received 96 bytes of data:\n 00     00 00 05 12"));
    assert!(assert_sg_pair(out, "sg_raw_tur_cd").contains("Additional sense: Medium not present"));
    assert!(assert_sg_pair(out, "sg_raw_bad_field")
        .contains("Additional sense: Invalid field in cdb\n\nError 5 occurred, no data received"));
    assert!(
        assert_sg_pair(out, "sg_raw_read").contains("Writing 2048 bytes of data to /tmp/raw.bin")
    );
    let same = out.section("sg_raw_read_same");
    assert_eq!(
        same.rc, 0,
        "uvio raw's READ(10) differs from sg_raw's\n{same}"
    );
    for (s, says) in [
        ("sg_no_lun", "has no LUN 0:2:6"),
        ("sg_no_target", "has no target 0:9"),
        ("sg_inq_no_lun", "has no LUN 0:7:0"),
    ] {
        let sec = out.section(s);
        assert_eq!(sec.rc, 15, "{s}: sg3_utils' 'cannot open' status\n{sec}");
        assert!(
            sec.output.contains(says),
            "{s} does not say {says:?}\n{sec}"
        );
    }
}

#[test]
fn scan_matches_the_kernel_and_data_is_byte_exact() {
    let dir = work_dir("scsi");
    let image = seeded_bytes(0x5c51_0001, DATA_BYTES);
    fs::write(dir.join("uvio.img"), &image).unwrap();
    fs::write(dir.join("kernel.img"), &image).unwrap();
    for name in [
        "uvio.scratch",
        "kernel.scratch",
        "uvio.scratch2",
        "kernel.scratch2",
    ] {
        fs::write(dir.join(name), vec![0u8; 16 << 20]).unwrap();
    }
    let w1 = seeded_bytes(0x5c51_0002, (2 << 20) + 8192);
    fs::write(dir.join("w1.bin"), &w1).unwrap();
    let w1_off = 5 << 20;
    let data_lun = format!("{UVIO_HBA}/0:4:0");
    let script = format!(
        r#"
check kernel_readcap sh -c 'for d in /sys/bus/pci/devices/{KERNEL_HBA}/virtio*/host*/target*/*:*:*:*/block/*; do echo "== $(basename $(dirname $(dirname $d)))"; sg_readcap -R -l /dev/$(basename $d); done'
check read_first sh -c 'uvio read {data_lun} --offset 0 --length 4096 | sha256sum'
check read_last sh -c 'uvio read {data_lun} --offset {last} --length 512 | sha256sum'
check read_big sh -c 'uvio read {data_lun} --offset 512 --length {big} | sha256sum'
check write uvio write {data_lun} --offset {w1_off} --input /data/w1.bin
check flush uvio flush {data_lun}
check ro_write uvio write {UVIO_HBA}/0:1:0 --offset 0 --input /data/w1.bin --length 4096
check misaligned uvio read {UVIO_HBA}/0:2:300 --offset 512 --length 4096
check not_a_disk uvio read {UVIO_HBA}/0:3:0 --offset 0 --length 2048
check no_lun uvio read {UVIO_HBA}/0:2:6 --offset 0 --length 512
check read_4k sh -c 'uvio read {UVIO_HBA}/0:2:300 --offset 4096 --length 8192 | wc -c'
check verify uvio verify {UVIO_HBA}/0:4:1 --ios 4000 --json
check bench_luns uvio bench --output-format=json --name=a --filename={UVIO_HBA}/0:4:1 --rw=write --bs=4k --size=2m --offset_increment=2m --numjobs=2 --iodepth=8 --verify=pattern --verify_pattern=0x5a --name=b --filename={UVIO_HBA}/0:4:2 --rw=write --bs=4k --size=2m --offset_increment=2m --numjobs=2 --iodepth=8 --verify=pattern --verify_pattern=0xa5
check lu_reset uvio reset {data_lun}
check nexus_reset uvio reset {UVIO_HBA}/0:2:300 --nexus
true
"#,
        last = DATA_BYTES - 512,
        big = (3 << 20) + 1024,
    );
    let spec = VmSpec::new()
        .reference_tools()
        .file(dir.join("w1.bin"), "/data/w1.bin");
    let spec = topology(spec, "s0", "04.0", &dir.join("uvio.img"));
    let spec = topology(spec, "s1", "06.0", &dir.join("kernel.img"));
    let out = spec
        .script(scan_script_with(true) + &sg_script() + &script)
        .run();
    out.assert_success();

    let uvio = compare_with_kernel(&out, 8);
    compare_lsscsi_layouts(&out);
    sg_checks(&out);
    // sg_readcap (READ CAPACITY through the kernel's sg) agrees with uvio's capacity.
    let mut checked = 0;
    for chunk in out.section("kernel_readcap").output.split("== ").skip(1) {
        let hctl = chunk.lines().next().unwrap_or("");
        let ctl = hctl.split_once(':').map_or("", |(_, rest)| rest);
        let field = |name: &str| {
            chunk
                .split(name)
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        if let (Some(blocks), Some(len)) = (
            field("Number of logical blocks="),
            field("Logical block length="),
        ) {
            assert_eq!(
                uvio[ctl]["blocks"].as_u64(),
                Some(blocks),
                "{ctl} blocks vs sg_readcap\n{out}"
            );
            assert_eq!(
                uvio[ctl]["block_size"].as_u64(),
                Some(len),
                "{ctl} block size vs sg_readcap\n{out}"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 5,
        "sg_readcap answered for {checked} LUNs only\n{out}"
    );
    // Details the kernel view above does not cover.
    let first = &uvio["0:0:0"];
    assert_eq!(first["serial"], "UVIO-SER-0", "{first}");
    assert_eq!(first["rotation_rate"], 1, "{first}");
    assert_eq!(uvio["0:2:16684"]["lun"], 300);
    assert_eq!(uvio["0:3:0"]["type"], "cd/dvd");
    // lsscsi's text layout: compare uvio's lines with the kernel's for the same LUNs.
    let kernel_lines = &out.section("kernel_lsscsi").output;
    let uvio_lines = &out.section("scan").output;
    for ctl in ["0:0:0", "0:1:0", "0:2:5", "0:2:16684", "0:3:0", "0:4:1"] {
        let pick = |text: &str| -> String {
            let line = text
                .lines()
                .find(|l| {
                    l.split(']')
                        .next()
                        .is_some_and(|t| t.ends_with(&format!(":{ctl}")))
                })
                .unwrap_or("");
            // Type, vendor, model, revision columns: from after the tuple to the device node.
            let start = line.find(']').map_or(0, |i| i + 1);
            let rest = line.get(start..).unwrap_or("").trim_start();
            rest.get(..8 + 9 + 17 + 4).unwrap_or("").to_string()
        };
        let (u, k) = (pick(uvio_lines), pick(kernel_lines));
        assert!(
            !u.is_empty() && u == k,
            "{ctl}: uvio {u:?} vs lsscsi {k:?}\n{out}"
        );
    }

    // uvio raw's READ(10) of 4 blocks at LBA 2 is the image's bytes there.
    assert_eq!(
        guest_hash(&out, "sg_raw_read_same"),
        sha256(&image[2 * 512..6 * 512]),
        "{out}"
    );

    // Data through the SCSI disk LUN.
    assert_eq!(
        guest_hash(&out, "read_first"),
        sha256(&image[..4096]),
        "{out}"
    );
    assert_eq!(
        guest_hash(&out, "read_last"),
        sha256(&image[DATA_BYTES - 512..]),
        "{out}"
    );
    assert_eq!(
        guest_hash(&out, "read_big"),
        sha256(&image[512..512 + (3 << 20) + 1024]),
        "{out}"
    );
    for s in ["write", "flush"] {
        assert_eq!(out.section(s).rc, 0, "{s}\n{out}");
    }
    assert_eq!(
        out.section("read_4k").output.lines().last(),
        Some("8192"),
        "{out}"
    );
    let refused = |s: &str, needle: &str| {
        let sec = out.section(s);
        assert_ne!(sec.rc, 0, "{s} should fail\n{out}");
        assert!(
            sec.output.contains(needle),
            "{s} does not say {needle:?}\n{sec}"
        );
    };
    refused("ro_write", "read-only");
    refused("misaligned", "not aligned to the 4096-byte");
    refused("not_a_disk", "not a disk");
    refused("no_lun", "has no LUN 0:2:6");
    // Task management through the control queue; the LUN serves I/O again afterwards.
    for (s, what) in [
        ("lu_reset", "LOGICAL UNIT RESET: OK"),
        ("nexus_reset", "I_T NEXUS RESET: OK"),
    ] {
        let sec = out.section(s);
        assert_eq!(sec.rc, 0, "{s}\n{out}");
        assert!(
            sec.output.contains(what) && sec.output.contains("read after the reset: ok"),
            "{sec}"
        );
    }
    let verify: Value = serde_json::from_str(&out.section("verify").output)
        .unwrap_or_else(|e| panic!("verify: {e}\n{out}"));
    assert_eq!(verify["ok"], true, "{out}");

    // Two LUNs of one host in one benchmark: four threads share the host's two queues (each
    // queue carries requests for both LUNs), every block written is read back and checked,
    // and each LUN's image holds its own pattern (checked on the host below).
    let bench = out.section("bench_luns");
    assert_eq!(bench.rc, 0, "{bench}");
    assert!(bench.output.contains("queues are shared"), "{bench}");
    let start = bench.output.find('{').unwrap_or_else(|| panic!("{bench}"));
    let end = bench
        .output
        .rfind('}')
        .map_or(bench.output.len(), |e| e + 1);
    let doc: Value = serde_json::from_str(&bench.output[start..end])
        .unwrap_or_else(|e| panic!("bench JSON: {e}\n{bench}"));
    let jobs = doc["jobs"].as_array().unwrap_or_else(|| panic!("{doc}"));
    assert_eq!(jobs.len(), 4, "{doc}");
    for job in jobs {
        assert_eq!(job["error"], 0, "{job}");
        assert_eq!(job["write"]["total_ios"], 512, "{job}");
        assert_eq!(job["read"]["total_ios"], 512, "verify reads\n{job}");
        assert_eq!(job["uvio"]["verify"]["bad_blocks"], 0, "{job}");
    }

    // The write landed byte-exact in the host's image, and nothing else changed.
    let after = fs::read(dir.join("uvio.img")).unwrap();
    let mut expected = image.clone();
    expected[w1_off..w1_off + w1.len()].copy_from_slice(&w1);
    assert_eq!(
        after.iter().zip(&expected).position(|(a, b)| a != b),
        None,
        "host image differs\n{out}"
    );
    assert_eq!(after.len(), DATA_BYTES);
    for (image, pattern) in [("uvio.scratch", 0x5a), ("uvio.scratch2", 0xa5)] {
        let bytes = fs::read(dir.join(image)).unwrap();
        assert_eq!(
            bytes[..4 << 20].iter().position(|&b| b != pattern),
            None,
            "{image}: the benchmark's writes did not land on their own LUN\n{out}"
        );
    }
    let _ = fs::remove_dir_all(&dir);
}

/// Hot-plug: while `uvio scan --watch` runs (reading every disk LUN), the harness adds a
/// scsi-hd through QMP, then removes it. uvio reports both, the new LUN is served while it
/// exists, and the LUNs that stay keep being served without a single failed read.
#[test]
fn hot_plug_and_removal_while_uvio_runs() {
    // File-backed, so QEMU can resize it (null-co cannot).
    let dir = work_dir("hotplug");
    let grow = dir.join("grow.img");
    fs::write(&grow, vec![0u8; 64 << 20]).unwrap();
    let mut vm = VmSpec::new()
        .qmp(true)
        .virtio_scsi("s0", "04.0", 1, "")
        .blockdev(format!(
            "driver=file,filename={},node-name=grow",
            grow.display()
        ))
        .scsi_hd("s0", 0, 0, "grow", "")
        .scsi_hd_null("s0", 1, 0, 32 << 20, "")
        .script(format!(
            r#"
check bind uvio bind {UVIO_HBA}
( host_wait 900; killall -INT uvio ) </dev/console &
check watch uvio scan {UVIO_HBA} --watch 900
true
"#
        ))
        .spawn();
    // Generous: each wait ends as soon as its text appears, and fails at once if QEMU exits.
    // The watch itself runs until the host says stop (Ctrl-C to uvio), not on a timer.
    let minute = std::time::Duration::from_secs(180);
    vm.wait_for_console("watching 0000:00:04.0", minute);
    let mut qmp = vm.qmp();
    let add = |qmp: &mut uvio_tests::vm::Qmp| -> Result<(), String> {
        qmp.execute("blockdev-add", serde_json::json!({"driver": "null-co", "node-name": "hot0", "size": 16u64 << 20, "read-zeroes": true}))?;
        qmp.execute("device_add", serde_json::json!({"driver": "scsi-hd", "id": "hot0dev", "drive": "hot0", "bus": "s0.0", "scsi-id": 5, "lun": 3}))?;
        Ok(())
    };
    add(&mut qmp).unwrap_or_else(|e| panic!("QMP add: {e}\n{}", vm.console()));
    vm.wait_for_console("added [0:0:5:3]", minute);
    // Let uvio read the new LUN a few times before it goes.
    std::thread::sleep(std::time::Duration::from_secs(2));
    qmp.execute("device_del", serde_json::json!({"id": "hot0dev"}))
        .unwrap_or_else(|e| panic!("QMP del: {e}\n{}", vm.console()));
    vm.wait_for_console("removed [0:0:5:3]", minute);
    // A capacity change: QEMU reports it as a PARAM_CHANGE event (and a UNIT ATTENTION).
    qmp.execute(
        "block_resize",
        serde_json::json!({"node-name": "grow", "size": 128u64 << 20}),
    )
    .unwrap_or_else(|e| panic!("QMP resize: {e}\n{}", vm.console()));
    vm.wait_for_console("changed [0:0:0:0]", minute);
    // The rest of the line, with the new size (the console streams in pieces).
    vm.wait_for_console("134MB", minute);
    vm.send_line("stop");
    let out = vm.wait(std::time::Duration::from_secs(240));
    out.assert_success();
    let watch = &out.section("watch").output;
    let count = |lun: &str, what: &str| -> u64 {
        let line = watch
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("read [0:0:{lun}]")))
            .unwrap_or_else(|| panic!("no summary for {lun}\n{out}"));
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{what}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {what} in {line}"))
    };
    for lun in ["0:0", "1:0"] {
        assert!(count(lun, "ok") > 10, "{lun} was not served\n{out}");
        assert_eq!(count(lun, "failed"), 0, "{lun} had failures\n{out}");
    }
    assert!(
        count("5:3", "ok") > 0,
        "the hot-plugged LUN was never read\n{out}"
    );
    assert!(
        watch.contains("I/O to [0:0:5:3] now fails: virtio-scsi response BAD_TARGET"),
        "{out}"
    );
}
