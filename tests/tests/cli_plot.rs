//! `uvio plot` as a user runs it, on the host: the real fio 3.33 output in `tests/data/plot`
//! gives its charts (paths on stdout, exit 0); a missing file, a file that is not JSON and a
//! log with a bad line each give one error line naming the file (and line), exit 1, and no
//! chart; no file at all is clap's usage error, exit 2. The charts' contents are checked by
//! the unit tests in `tools/src/plot`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use uvio_tests::host_bin::uvio;

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/plot")
        .join(name)
        .display()
        .to_string()
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("uvio-cli-plot-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the scratch directory");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn plot(args: &[&str]) -> Output {
    Command::new(uvio())
        .arg("plot")
        .args(args)
        .env("UVIO_LOG", "off")
        .output()
        .expect("running uvio plot")
}

#[test]
fn real_fio_output_gives_its_charts() {
    let out_dir = Scratch::new("ok");
    let dir = out_dir.0.join("charts");
    let out = plot(&[
        "-o",
        &dir.display().to_string(),
        &data("randrw.json"),
        &data("randrw_iops.1.log"),
        &data("randrw_clat.1.log"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<&str> = stdout.lines().collect();
    let expected: Vec<String> = [
        "randrw-percentiles.svg",
        "randrw-histogram.svg",
        "randrw-iops.svg",
        "randrw-clat.svg",
    ]
    .iter()
    .map(|name| dir.join(name).display().to_string())
    .collect();
    assert_eq!(listed, expected);
    for path in &expected {
        let svg = std::fs::read_to_string(path).expect("a listed chart exists");
        assert!(svg.starts_with("<svg"), "{path}");
    }
}

#[test]
fn bad_inputs_are_one_error_line_and_exit_1() {
    let scratch = Scratch::new("bad");
    let bad_log = scratch.0.join("bad_iops.1.log");
    std::fs::write(&bad_log, "100, 5, 0, 0, 0\n200, x, 0, 0, 0\n").expect("writing a log");
    let bad_log = bad_log.display().to_string();
    let missing = data("no-such.json");
    let not_json = data("README.md");
    let charts = scratch.0.join("charts");
    let dir = charts.display().to_string();
    for (args, says) in [
        (
            vec!["-o", &dir, &missing],
            format!("uvio: error: {missing}: No such file or directory"),
        ),
        (
            vec!["-o", &dir, &not_json],
            format!("uvio: error: {not_json}: no JSON object in it"),
        ),
        (
            // One bad file among good ones: nothing is written.
            vec!["-o", &dir, &data("randrw.json"), &bad_log],
            format!("uvio: error: {bad_log}, line 2: `200, x, 0, 0, 0`: value `x` is not a whole number"),
        ),
    ] {
        let out = plot(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.starts_with(&says), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!charts.exists(), "{args:?} wrote charts");
    }
    let out = plot(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("<FILE>..."));
}

#[test]
fn help_says_what_it_reads_and_writes() {
    let out = plot(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for want in [
        "--output-format=json+",
        "write_iops_log",
        "PREFIX_iops.N.log",
        "NAME-percentiles.svg",
        "NAME-histogram.svg",
        "--merge <NAME>",
        "--output <DIR>",
    ] {
        assert!(help.contains(want), "no {want:?} in:\n{help}");
    }
}
