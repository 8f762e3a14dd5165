//! Per-run scratch directories (the run's initrd segment, the QMP socket) and where the QMP
//! socket goes.

use std::fs;
use std::path::{Path, PathBuf};

use super::host::{cache_dir, unique_suffix};

/// Unix socket paths are limited to 108 bytes; fall back to /tmp for deep workspaces.
pub(super) fn qmp_socket_path(run_dir: &Path) -> PathBuf {
    let p = run_dir.join("qmp.sock");
    if p.as_os_str().len() < 100 {
        p
    } else {
        std::env::temp_dir().join(format!("uvio-qmp-{}.sock", unique_suffix()))
    }
}

/// Per-run directory under `target/vm-cache/runs/`, removed on drop. Directories left by
/// processes that no longer exist are removed when the next one is created.
pub(super) struct RunDir(PathBuf);

impl RunDir {
    pub(super) fn new() -> RunDir {
        let runs = cache_dir().join("runs");
        fs::create_dir_all(&runs).unwrap_or_else(|e| panic!("create {}: {e}", runs.display()));
        if let Ok(entries) = fs::read_dir(&runs) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let pid = name.split('-').next().unwrap_or("");
                if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = runs.join(unique_suffix());
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        RunDir(dir)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
