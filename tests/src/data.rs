//! Test data on the host side: reproducible bytes, per-test scratch directories, hashes.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::vm::VmOutput;

/// xorshift64*: reproducible test bytes from a seed.
pub fn seeded_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A fresh directory under `target/vm-cache/data/` for one test's images.
pub fn work_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/vm-cache/data")
        .join(format!("{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("creating the test data directory");
    dir
}

/// The SHA-256 of `bytes` as `sha256sum` prints it (the guest's busybox has the same tool).
pub fn sha256(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running sha256sum on the host");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(bytes)
        .expect("feeding sha256sum");
    let out = child.wait_with_output().expect("sha256sum output");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// The hash `sha256sum` printed in guest section `section`, which must have succeeded.
/// Panics with the whole console otherwise.
pub fn guest_hash(out: &VmOutput, section: &str) -> String {
    let s = out.section(section);
    assert_eq!(s.rc, 0, "section {section} failed\n{out}");
    s.output
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .find(|w| w.len() == 64 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no hash in section {section}\n{out}"))
        .to_string()
}
