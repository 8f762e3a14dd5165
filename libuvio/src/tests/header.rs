//! `include/uvio.h` is kept by hand; these tests hold it to the Rust side: it compiles with
//! `gcc -Werror`, it declares exactly the functions `libuvio.so` exports, and its structs
//! and constants have the Rust side's layout and values.

use std::collections::{BTreeMap, BTreeSet};
use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::device::{RING_AUTO, RING_PACKED, RING_SPLIT};
use crate::{uvio_completion, uvio_info, uvio_mem_region};

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding `libuvio.so`, built for this test with `cargo build -p libuvio` in
/// the test's profile (a unit test's build does not make the C libraries; the crate has no
/// rlib, whose file name would collide with the driver's `libuvio.rlib`).
fn artifact_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        let profile = match exe
            .parent()
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .unwrap_or("debug")
        {
            "debug" => "dev".to_string(),
            other => other.to_string(),
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .current_dir(crate_dir())
            .args(["build", "-p", "libuvio", "--profile", &profile])
            .arg("--message-format=json-render-diagnostics")
            .output()
            .expect("running cargo build -p libuvio");
        assert!(
            out.status.success(),
            "cargo build -p libuvio failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("\"compiler-artifact\"") && l.contains("libuvio.so"))
            .find_map(|l| {
                let start = l.find("\"filenames\":[")? + 13;
                let rest = &l[start..];
                rest.split('"')
                    .find(|f| f.ends_with("libuvio.so"))
                    .map(|f| PathBuf::from(f).parent().map(Path::to_path_buf))
            })
            .flatten()
            .expect("cargo build reported no libuvio.so")
    })
    .clone()
}

/// The functions the header declares: every `uvio_name(` that starts a declaration.
fn declared_functions() -> BTreeSet<String> {
    let header = std::fs::read_to_string(crate_dir().join("include/uvio.h")).expect("uvio.h");
    header
        .lines()
        .filter(|l| l.starts_with("int ") || l.starts_with("const char *"))
        .filter_map(|l| {
            let start = l.find("uvio_")?;
            let end = start + l[start..].find('(')?;
            Some(l[start..end].to_string())
        })
        .collect()
}

#[test]
fn the_header_declares_exactly_the_exported_functions() {
    let lib = artifact_dir().join("libuvio.so");
    assert!(lib.is_file(), "{} was not built", lib.display());
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&lib)
        .output()
        .expect("running nm (binutils)");
    assert!(out.status.success(), "nm failed: {out:?}");
    let exported: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace().skip(1);
            match (fields.next(), fields.next()) {
                (Some("T"), Some(name)) => Some(name.to_string()),
                _ => None,
            }
        })
        .collect();
    let declared = declared_functions();
    assert!(
        declared.len() >= 20,
        "too few declarations parsed: {declared:?}"
    );
    assert_eq!(
        exported, declared,
        "libuvio.so exports (left) and uvio.h declares (right) different functions"
    );
}

#[test]
fn the_header_compiles_warning_free_and_matches_the_rust_layouts() {
    let dir = artifact_dir().join("uvio-header-check");
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let exe = dir.join("layout");
    let out = Command::new("gcc")
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
            "-I",
        ])
        .arg(crate_dir().join("include"))
        .arg(crate_dir().join("tests/c/layout.c"))
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("running gcc");
    assert!(
        out.status.success(),
        "gcc -Werror on uvio.h failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&exe)
        .output()
        .expect("running the layout program");
    assert!(out.status.success());
    let c: BTreeMap<String, usize> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect();

    let mut rust = BTreeMap::new();
    macro_rules! layout {
        ($ty:ident: $($field:ident),*) => {
            rust.insert(stringify!($ty).to_string(), size_of::<$ty>());
            $(rust.insert(
                format!("{}.{}", stringify!($ty), stringify!($field)),
                offset_of!($ty, $field),
            );)*
        };
    }
    layout!(uvio_info: capacity, logical_block_size, physical_block_size, max_transfer,
        max_segments, max_segment_size, request_alignment, buf_alignment, discard_max,
        discard_alignment, write_zeroes_alignment, write_zeroes_max, read_only, flush,
        num_queues, queue_depth, ring, reserved);
    layout!(uvio_mem_region: addr, len, iova);
    layout!(uvio_completion: user_data, error_msg, ret, reserved);
    for (name, value) in [
        ("UVIO_RING_AUTO", RING_AUTO),
        ("UVIO_RING_SPLIT", RING_SPLIT),
        ("UVIO_RING_PACKED", RING_PACKED),
    ] {
        rust.insert(name.to_string(), value as usize);
    }
    assert_eq!(c, rust, "C (left) and Rust (right) disagree");
}
