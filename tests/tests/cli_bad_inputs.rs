//! The `uvio` binary on bad inputs, on the host: no guest, no root, no VFIO. Every input
//! here fails before a device is touched (in clap, in the address and size parsers, in the
//! bench option and job-file checks, or at the sysfs lookup of a BDF no machine has), and
//! each case checks the exit status (2 for clap's usage errors, 1 for the tool's own) and
//! the part of the message that says what is wrong.
//!
//! The binary is `$UVIO_HOST_BIN` if set, otherwise built once with `cargo build -p
//! uvio-tools --bin uvio` in this test's profile (the binary is in another package, so
//! `CARGO_BIN_EXE_uvio` is not available here).
//!
//! Alignment of offsets and lengths against a device's logical block size, and `--length 0`,
//! are checked only once the device is open (the block size is the device's), so they are
//! covered by the guest tests (`vm_blk`, `vm_scsi`), not here.

use std::path::PathBuf;
use std::process::Command;
use uvio_tests::host_bin::uvio;

/// A PCI address no machine has (domain 0xffff is never populated), for failures at the
/// sysfs lookup.
const NO_SUCH_BDF: &str = "ffff:ff:1f.7";

/// A scratch directory for job files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("uvio-cli-bad-inputs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the scratch directory");
        Scratch(dir)
    }

    /// Writes `text` to `name` and returns its path as an argument.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("writing a job file");
        path.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One bad input: the arguments, the exit status and what stderr must contain.
struct Case {
    name: &'static str,
    args: Vec<String>,
    status: i32,
    says: String,
}

fn case(name: &'static str, args: &[&str], status: i32, says: &str) -> Case {
    Case {
        name,
        args: args.iter().map(|s| s.to_string()).collect(),
        status,
        says: says.to_string(),
    }
}

/// Clap's usage errors exit with 2; the tool's own errors with 1.
const USAGE: i32 = 2;
const FAILED: i32 = 1;

fn cases(scratch: &Scratch) -> Vec<Case> {
    let bdf = NO_SUCH_BDF;
    let lun = |ctl: &str| format!("0000:00:04.0/{ctl}");
    let too_large = "too large (max 18446744073709551615 bytes)";
    let no_device = format!("no PCI function {bdf} in /sys/bus/pci/devices");
    let empty = scratch.file("empty.fio", "");
    let comments = scratch.file("comments.fio", "; nothing\n# here\n\n");
    let only_global = scratch.file("global.fio", "[global]\nbs=4k\n");
    let unknown = scratch.file("unknown.fio", "[j]\nfilename=0000:00:04.0\niodepht=4\n");
    let bad_value = scratch.file("value.fio", "[j]\nfilename=0000:00:04.0\nbs=4x\n");
    let include = scratch.file(
        "include.fio",
        "[j]\nfilename=0000:00:04.0\ninclude no-such-part.fio\n",
    );
    let missing_part = scratch.0.join("no-such-part.fio").display().to_string();
    let numjobs = scratch.file("numjobs.fio", "[j]\nfilename=0000:00:04.0\nnumjobs=1000\n");
    let overflow = scratch.file(
        "overflow.fio",
        "[j]\nfilename=0000:00:04.0\noffset=4096\nsize=18446744073709551615\n",
    );
    let section = scratch.file("section.fio", "[j\nfilename=0000:00:04.0\n");
    let outside = scratch.file("outside.fio", "bs=4k\n[j]\n");
    let missing = scratch.0.join("missing.fio").display().to_string();
    let mut c = vec![
        // The command line.
        case("no subcommand", &[], USAGE, "Usage: uvio"),
        case(
            "unknown subcommand",
            &["frobnicate"],
            USAGE,
            "unrecognized subcommand 'frobnicate'",
        ),
        case(
            "unknown option",
            &["list", "--bogus"],
            USAGE,
            "unexpected argument '--bogus'",
        ),
        case(
            "bad --ring",
            &["--ring", "sideways", "list"],
            USAGE,
            "invalid value 'sideways'",
        ),
        case(
            "bind without a BDF",
            &["bind"],
            USAGE,
            "required arguments were not provided",
        ),
        case(
            "negative --watch",
            &["info", "0000:00:04.0", "--watch", "-1"],
            USAGE,
            "unexpected argument '-1'",
        ),
        case(
            "--queues past u16",
            &["verify", "0000:00:04.0", "--queues", "70000"],
            USAGE,
            "70000 is not in 0..=65535",
        ),
        // BDFs.
        case(
            "BDF with a non-hex device",
            &["info", "0000:00:zz.0"],
            USAGE,
            "`0000:00:zz.0` is not a PCI address",
        ),
        case(
            "BDF without a function",
            &["info", "00:1f"],
            USAGE,
            "`00:1f` is not a PCI address",
        ),
        case(
            "BDF with function 8",
            &["info", "0000:00:04.8"],
            USAGE,
            "is not a PCI address",
        ),
        case(
            "BDF with a 5-digit domain",
            &["unbind", "10000:00:04.0"],
            USAGE,
            "is not a PCI address",
        ),
        // LUN addresses.
        case(
            "LUN address with two parts",
            &["flush", &lun("0:2")],
            USAGE,
            "`0:2` is not a LUN address",
        ),
        case(
            "LUN address with a letter",
            &["flush", &lun("0:x:1")],
            USAGE,
            "`0:x:1` is not a LUN address",
        ),
        case(
            "LUN past 32767",
            &["flush", &lun("0:1:99999")],
            USAGE,
            "LUN 99999 is out of range (0 to 16383",
        ),
        case(
            "target past 255",
            &["flush", &lun("0:256:0")],
            USAGE,
            "target 256 is out of range (0 to 255)",
        ),
        case(
            "reset of channel 1",
            &["reset", &format!("{bdf}/1:0:0")],
            FAILED,
            "virtio-scsi has only channel 0, not 1",
        ),
        case(
            "reset without a LUN",
            &["reset", bdf],
            FAILED,
            "name a LUN as BDF/C:T:L",
        ),
        // Sizes.
        case(
            "offset that is not a size",
            &[
                "read",
                "0000:00:04.0",
                "--offset",
                "abc",
                "--length",
                "4096",
            ],
            USAGE,
            "`abc` is not a size",
        ),
        case(
            "unknown size suffix",
            &["read", "0000:00:04.0", "--offset", "4x", "--length", "4096"],
            USAGE,
            "unknown size suffix `x`",
        ),
        case(
            "length past 2^64",
            &[
                "read",
                "0000:00:04.0",
                "--offset",
                "0",
                "--length",
                "99999999999999999999",
            ],
            USAGE,
            too_large,
        ),
        case(
            "length past 2^64 by its suffix",
            &[
                "discard",
                "0000:00:04.0",
                "--offset",
                "0",
                "--length",
                "99999999t",
            ],
            USAGE,
            too_large,
        ),
        case(
            "missing --length",
            &["write-zeroes", "0000:00:04.0", "--offset", "0"],
            USAGE,
            "--length <LENGTH>",
        ),
        // A BDF this machine does not have: sysfs says so, cleanly.
        case("info of an absent BDF", &["info", bdf], FAILED, &no_device),
        case("scan of an absent BDF", &["scan", bdf], FAILED, &no_device),
        case(
            "read of an absent BDF",
            &["read", bdf, "--offset", "0", "--length", "4096"],
            FAILED,
            &no_device,
        ),
        case(
            "bench on an absent BDF",
            &["bench", "--name=j", &format!("--filename={bdf}")],
            FAILED,
            &format!("job `j`: opening {bdf}: {no_device}"),
        ),
        // lsscsi's filter arguments, refused before any device is touched.
        case(
            "scan filter part not a number",
            &["scan", "0:a"],
            FAILED,
            "cannot decode a as an integer",
        ),
        case(
            "scan filter with five parts",
            &["scan", "0:0:0:0:0"],
            FAILED,
            "expect three colons at most",
        ),
        case(
            "scan filter before the BDF",
            &["scan", "0", "0000:00:04.0"],
            FAILED,
            "name the hosts (BDF) before the filter",
        ),
        case(
            "scan with five filter arguments",
            &["scan", "0", "0", "0", "0", "0"],
            FAILED,
            "at most four filter arguments",
        ),
        case(
            "scan --watch of no host",
            &["scan", "--watch", "5"],
            FAILED,
            "--watch follows one host",
        ),
        // bench on the command line.
        case("bench without jobs", &["bench"], FAILED, "no jobs"),
        case(
            "bench numjobs zero",
            &["bench", "--name=j", "--numjobs=0"],
            FAILED,
            "option `numjobs`: must be at least 1",
        ),
        case(
            "bench numjobs past the bound",
            &["bench", "--name=j", "--numjobs=257"],
            FAILED,
            "at most 256",
        ),
        case(
            "bench unsupported option",
            &["bench", "--name=j", "--zonemode=zbd"],
            FAILED,
            "option `zonemode` is not supported",
        ),
        case(
            "bench misspelt option",
            &["bench", "--name=j", "--iodepht=4"],
            FAILED,
            "unknown option `iodepht` (did you mean `iodepth`?)",
        ),
        case(
            "bench bad --eta",
            &["bench", "--eta=sometimes", "--name=j"],
            FAILED,
            "--eta=sometimes: use always, never or auto",
        ),
        case(
            "bench time_based without runtime",
            &[
                "bench",
                "--name=j",
                &format!("--filename={bdf}"),
                "--time_based",
            ],
            FAILED,
            "option `time_based`: needs runtime=",
        ),
        case(
            "bench offset + size past 2^64",
            &[
                "bench",
                "--name=j",
                &format!("--filename={bdf}"),
                "--offset=4096",
                "--size=18446744073709551615",
            ],
            FAILED,
            "offset 4096 + size 18446744073709551615 is beyond 2^64 bytes",
        ),
        case(
            "bench verify blocks below 64 bytes",
            &[
                "bench",
                "--name=j",
                &format!("--filename={bdf}"),
                "--rw=write",
                "--verify=md5",
                "--bs=32",
            ],
            FAILED,
            "a verify header needs blocks of at least 64 bytes",
        ),
        // --parse-only stops at the same checks, before any device.
        case(
            "parse-only without filename",
            &["bench", "--parse-only", "--name=j"],
            FAILED,
            "job `j`: filename= is required",
        ),
        case(
            "parse-only with a zero block size",
            &[
                "bench",
                "--parse-only",
                "--name=j",
                &format!("--filename={bdf}"),
                "--bs=0",
            ],
            FAILED,
            "a block size must be at least 1 byte",
        ),
        case(
            "parse-only with a LUN out of range",
            &[
                "bench",
                "--parse-only",
                "--name=j",
                &format!("--filename={}", lun("0:1:99999")),
            ],
            FAILED,
            "LUN 99999 is out of range",
        ),
        case(
            "parse-only with verify on randrw",
            &[
                "bench",
                "--parse-only",
                "--name=j",
                &format!("--filename={bdf}"),
                "--rw=randrw",
                "--verify=md5",
            ],
            FAILED,
            "verify with rw=randrw is not supported",
        ),
        case(
            "parse-only with terse version 2",
            &["bench", "--parse-only", "--terse-version=2", "--name=j"],
            FAILED,
            "terse version 2: only version 3 is written",
        ),
    ];
    // bench job files.
    let mut file = |name, path: &str, says: &str| {
        c.push(Case {
            name,
            args: vec!["bench".into(), "--parse-only".into(), path.into()],
            status: FAILED,
            says: says.to_string(),
        })
    };
    file(
        "missing job file",
        &missing,
        &format!("reading job file {missing}: No such file"),
    );
    file(
        "empty job file",
        &empty,
        &format!("{empty}: the job file is empty"),
    );
    file(
        "job file of comments only",
        &comments,
        &format!("{comments}: the job file is empty"),
    );
    file(
        "job file with only [global]",
        &only_global,
        &format!("{only_global}: no job sections (only [global])"),
    );
    file(
        "job file with an unknown option",
        &unknown,
        &format!("{unknown}:3: unknown option `iodepht`"),
    );
    file(
        "job file with a bad value",
        &bad_value,
        &format!("{bad_value}:3: option `bs`"),
    );
    file(
        "job file with a missing include",
        &include,
        &format!("{include}:3: include {missing_part}: No such file"),
    );
    file(
        "job file with numjobs past the bound",
        &numjobs,
        &format!("{numjobs}:3: option `numjobs`: 1000 clones is too many: at most 256"),
    );
    file(
        "job file with offset + size past 2^64",
        &overflow,
        "job `j`: option `size`: offset 4096 + size 18446744073709551615 is beyond 2^64",
    );
    file(
        "job file with an unclosed section",
        &section,
        &format!("{section}:1: `[j`: missing `]`"),
    );
    file(
        "job file with an option before any section",
        &outside,
        &format!("{outside}:1: `bs=4k` is outside of any [section]"),
    );
    // The sg3_utils-style commands: a host that cannot be opened is sg3_utils' exit
    // status 15 ("cannot open"); options they refuse exit 1, as sg3_utils' syntax errors.
    let no_lun = format!("{bdf}/0:0:0");
    let no_target = format!("{bdf}/0:0");
    c.extend([
        case(
            "readcap of a BDF that is not hex",
            &["readcap", "0000:zz:04.0/0:0:0"],
            USAGE,
            "invalid value '0000:zz:04.0/0:0:0'",
        ),
        case(
            "readcap of a function that does not exist",
            &["readcap", &no_lun],
            15,
            &format!("cannot open {bdf}"),
        ),
        case(
            "tur without a LUN",
            &["tur", "0000:00:04.0"],
            15,
            "name a LUN as BDF/C:T:L",
        ),
        case(
            "luns of a target that is not a number",
            &["luns", "0000:00:04.0/0:x"],
            USAGE,
            "`0:x` is not a target address",
        ),
        case(
            "luns of a target past 255",
            &["luns", "0000:00:04.0/0:256"],
            USAGE,
            "target 256 is out of range",
        ),
        case(
            "luns with a --select past 255",
            &["luns", "--select", "0x100", &no_target],
            FAILED,
            "--select 256 is out of range",
        ),
        case(
            "luns with a --select that is not a number",
            &["luns", "--select", "all", &no_target],
            USAGE,
            "`all` is not a number",
        ),
        case(
            "luns of a function that does not exist",
            &["luns", &no_target],
            15,
            &format!("cannot open {bdf}"),
        ),
        case(
            "inq --page that is not a page",
            &["inq", "--page", "0xg3", &no_lun],
            USAGE,
            "`0xg3` is not a number",
        ),
        case(
            "inq --page past 0xff",
            &["inq", "--page", "0x100", &no_lun],
            USAGE,
            "out of range: 0 to 0xff",
        ),
        case(
            "inq of a VPD page uvio does not decode",
            &["inq", "--page", "0x87", &lun("0:0:0")],
            FAILED,
            "VPD page 0x87 is not decoded",
        ),
        // uvio raw checks its arguments before it opens anything, as sg_raw does, and
        // exits 1 (sg_raw's syntax error) with sg_raw's words.
        case(
            "raw with a CDB byte that is not hex",
            &["raw", &no_lun, "12", "zz", "00", "00", "60", "00"],
            FAILED,
            "Invalid command byte 'zz'",
        ),
        case(
            "raw with a CDB byte past 0xff",
            &["raw", &no_lun, "123", "00", "00", "00", "60", "00"],
            FAILED,
            "Invalid command byte '123'",
        ),
        case(
            "raw with a CDB run together",
            &["raw", &no_lun, "120000006000"],
            FAILED,
            "Invalid command byte '120000006000'",
        ),
        case(
            "raw with a CDB too short",
            &["raw", &no_lun, "12", "00", "00"],
            FAILED,
            "CDB too short (min. 6 bytes)",
        ),
        case(
            "raw with a CDB too long",
            &[
                "raw", &no_lun, "00", "01", "02", "03", "04", "05", "06", "07", "08", "09", "0a",
                "0b", "0c", "0d", "0e", "0f", "10",
            ],
            FAILED,
            "CDB too long: 17 bytes (uvio sends CDBs of 6 to 16 bytes)",
        ),
        case(
            "raw without a CDB",
            &["raw", &no_lun],
            USAGE,
            "required arguments were not provided",
        ),
        case(
            "raw --request over sg_raw's 1 MiB",
            &[
                "raw",
                "--request",
                "1048577",
                &no_lun,
                "12",
                "00",
                "00",
                "00",
                "60",
                "00",
            ],
            FAILED,
            "Invalid argument to '--request'",
        ),
        case(
            "raw --request that is not a number",
            &[
                "raw",
                "--request",
                "lots",
                &no_lun,
                "12",
                "00",
                "00",
                "00",
                "60",
                "00",
            ],
            FAILED,
            "Invalid argument to '--request'",
        ),
        case(
            "raw --send over sg_raw's 1 MiB",
            &[
                "raw", "--send", "2m", &no_lun, "2a", "00", "00", "00", "00", "00",
            ],
            FAILED,
            "Invalid argument to '--send'",
        ),
        case(
            "raw both ways",
            &[
                "raw",
                "--request",
                "8",
                "--send",
                "8",
                &no_lun,
                "00",
                "00",
                "00",
                "00",
                "00",
                "00",
            ],
            FAILED,
            "bidirectional commands need",
        ),
        case(
            "raw to a LUN of a function that does not exist",
            &["raw", &no_lun, "00", "00", "00", "00", "00", "00"],
            15,
            &format!("cannot open {bdf}"),
        ),
        case(
            "raw without a LUN",
            &["raw", "0000:00:04.0", "00", "00", "00", "00", "00", "00"],
            15,
            "name a LUN as BDF/C:T:L",
        ),
    ]);
    c
}

#[test]
fn bad_inputs_fail_with_their_status_and_message() {
    let scratch = Scratch::new();
    let cases = cases(&scratch);
    assert!(cases.len() >= 25, "only {} cases", cases.len());
    let bin = uvio();
    let mut failures = Vec::new();
    for c in &cases {
        let out = Command::new(bin)
            .args(&c.args)
            // No driver log lines or colours in what is checked.
            .env("UVIO_LOG", "off")
            .env_remove("CLICOLOR_FORCE")
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let status = out.status.code();
        let mut wrong = Vec::new();
        if status != Some(c.status) {
            wrong.push(format!("exit status {status:?}, expected {}", c.status));
        }
        if !stderr.contains(&c.says) {
            wrong.push(format!("stderr lacks {:?}", c.says));
        }
        if stderr.contains("panicked") {
            wrong.push("it panicked".to_string());
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{} (uvio {}): {}\n  stderr: {}",
                c.name,
                c.args.join(" "),
                wrong.join("; "),
                stderr.trim_end().replace('\n', "\n          ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs misbehaved:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!("{} bad inputs, each refused as expected", cases.len());
}

#[test]
fn the_driver_log_level_comes_from_uvio_log() {
    // A bad UVIO_LOG value is reported through the logger itself, at warn: it shows that
    // the logger is installed and writes to stderr.
    let out = Command::new(uvio())
        .args(["bench", "--version"])
        .env("UVIO_LOG", "loud")
        .output()
        .expect("running uvio");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("uvio: warning: UVIO_LOG=`loud` is not a level"),
        "{stderr}"
    );
    let out = Command::new(uvio())
        .args(["bench", "--version"])
        .env("UVIO_LOG", "error")
        .output()
        .expect("running uvio");
    assert!(
        out.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
}
