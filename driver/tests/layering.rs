//! The library's layering, checked on its own source: every `crate::` path outside comments
//! and test code names a module of a lower layer (or the module's own). With one rank per
//! layer and no imports within a rank, there can be no circle between modules.
//!
//! Bottom-up: PCI config space, VFIO, DMA memory, the virtio transport and rings (and, beside
//! them, the SCSI protocol, which imports nothing), the block layer (requests, hardware
//! queues, tag sets; it knows no device), the two device types, and on top the one module
//! that knows both (`device`: opening what a user names) and sysfs binding.

use std::fs;
use std::path::Path;

/// Each top-level module of `driver/src` and its layer.
const LAYERS: &[(&str, u8)] = &[
    ("pci", 0),
    ("vfio", 1),
    ("dma", 2),
    ("virtio", 3),
    ("scsi_proto", 3),
    ("block", 4),
    ("blk", 5),
    ("scsi", 5),
    ("device", 6),
    ("binding", 6),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// The code of a source file without its comments and its `#[cfg(test)]` module (the
/// convention here: one test module, at the end of the file).
fn code_of(source: &str) -> String {
    let end = source.find("#[cfg(test)]\nmod ").unwrap_or(source.len());
    source[..end]
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules `code` names through `crate::`, including inside `use crate::{..}`.
fn named_modules(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let mut paths = vec![rest];
        if let Some(group) = rest.strip_prefix('{') {
            paths = top_level_items(group);
        }
        for path in paths {
            let name: String = path
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.push(name);
            }
        }
    }
    names
}

/// The items of a `{..}` group up to its closing brace, split at commas outside nested
/// groups.
fn top_level_items(group: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (at, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(group[start..at].trim_start());
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(group[start..at].trim_start());
                start = at + 1;
            }
            _ => {}
        }
    }
    items
}

fn visit(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).expect("driver/src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            visit(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn no_module_imports_from_its_own_layer_or_above() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    visit(&src, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let top = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs").to_string())
            .expect("a file name");
        if top == "lib" || relative.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let own = layer(&top).unwrap_or_else(|| panic!("{top} has no layer in LAYERS"));
        let source = fs::read_to_string(file).expect("a readable source file");
        for name in named_modules(&code_of(&source)) {
            checked += 1;
            if name == top {
                continue;
            }
            match layer(&name) {
                Some(l) if l < own => {}
                Some(_) => wrong.push(format!("{}: {top} imports {name}", relative.display())),
                None => wrong.push(format!(
                    "{}: unknown module crate::{name}",
                    relative.display()
                )),
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} paths found: is the scan broken?"
    );
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_scan_finds_grouped_imports_and_skips_comments_and_tests() {
    let source = "use crate::{dma::DmaBuf, virtio::queue::{A, B}};\n\
                  // crate::device in a comment\n\
                  fn f() { crate::block::x(); }\n\
                  #[cfg(test)]\nmod tests { use crate::device::X; }\n";
    assert_eq!(named_modules(&code_of(source)), ["dma", "virtio", "block"]);
}
