//! The `uvio` binary for the host-side tests (`cli_bad_inputs`, `bench_job_files`):
//! `$UVIO_HOST_BIN` if set, otherwise built once with `cargo build -p uvio-tools --bin uvio`
//! in the calling test's profile (the binary is in another package, so `CARGO_BIN_EXE_uvio`
//! is not available to these tests).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `uvio` binary to run.
pub fn uvio() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("UVIO_HOST_BIN") {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "UVIO_HOST_BIN={} is not a file", p.display());
            return p;
        }
        build_uvio()
    })
}

/// `cargo build -p uvio-tools --bin uvio` in the profile this test was built in (the name of
/// the directory above `deps/`), and the executable cargo reports.
fn build_uvio() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .unwrap_or("debug");
    let profile = match profile_dir {
        "debug" => "dev",
        other => other,
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root)
        .args(["build", "-p", "uvio-tools", "--bin", "uvio", "--profile"])
        .arg(profile)
        .arg("--message-format=json-render-diagnostics")
        .output()
        .expect("running cargo build");
    assert!(
        out.status.success(),
        "cargo build -p uvio-tools failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "uvio")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo build reported no `uvio` executable")
}
