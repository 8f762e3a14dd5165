//! fio's I/O engines as uvio sees them: the ones that read and write a file or a device,
//! which uvio's own engine replaces (with a note), and the ones that do no block I/O.

/// What an `ioengine=` value is to uvio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    Uvio,
    /// One of fio's engines that reads and writes a file or device: uvio's engine takes
    /// its place.
    Storage,
    /// One of fio's engines that does no block I/O (what it does instead).
    NotBlockIo(&'static str),
}

/// fio 3.33's engines (engines/*.c, their `.name`) that read and write a file or a block
/// device, and `external:` plugins (SPDK's, for one).
const STORAGE_ENGINES: &[&str] = &[
    "sync",
    "psync",
    "vsync",
    "pvsync",
    "pvsync2",
    "libaio",
    "io_uring",
    "io_uring_cmd",
    "posixaio",
    "solarisaio",
    "windowsaio",
    "mmap",
    "splice",
    "sg",
    "null",
    "cpp_null",
    "dev-dax",
    "libpmem",
    "pmemblk",
    "mtd",
    "nbd",
    "nfs",
    "rbd",
    "rados",
    "gfapi",
    "gfapi_async",
    "libhdfs",
    "libiscsi",
    "ime_psync",
    "ime_psyncv",
    "ime_aio",
    "libcufile",
    "dfs",
    "libzbc",
    "xnvme",
    "binject",
    "guasi",
    "syslet-rw",
    "libblkio",
    "spdk",
    "spdk_bdev",
];

/// fio's engines that do not do block I/O, and what they do instead.
const NOT_BLOCK_IO: &[(&str, &str)] = &[
    ("cpuio", "only burns CPU"),
    ("exec", "runs a program"),
    ("net", "measures a network"),
    ("netsplice", "measures a network"),
    ("rdma", "measures an RDMA network"),
    ("librpma_apm_client", "measures an RDMA network"),
    ("librpma_apm_server", "measures an RDMA network"),
    ("librpma_gpspm_client", "measures an RDMA network"),
    ("librpma_gpspm_server", "measures an RDMA network"),
    ("http", "measures an object store over HTTP"),
    ("filecreate", "measures file creation"),
    ("filestat", "measures stat()"),
    ("filedelete", "measures file deletion"),
    ("dircreate", "measures directory creation"),
    ("dirstat", "measures stat() on directories"),
    ("dirdelete", "measures directory deletion"),
    ("falloc", "measures fallocate()"),
    ("ftruncate", "measures ftruncate()"),
    ("e4defrag", "measures ext4 defragmentation"),
];

/// What `ioengine=value` is, or `None` for a name fio does not know.
pub fn engine_kind(value: &str) -> Option<EngineKind> {
    let v = value.trim();
    if v == "uvio" {
        return Some(EngineKind::Uvio);
    }
    if STORAGE_ENGINES.contains(&v) || v.starts_with("external:") {
        return Some(EngineKind::Storage);
    }
    NOT_BLOCK_IO
        .iter()
        .find(|(n, _)| *n == v)
        .map(|(_, what)| EngineKind::NotBlockIo(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_are_sorted_into_replaced_and_refused() {
        assert_eq!(engine_kind("uvio"), Some(EngineKind::Uvio));
        for e in [
            "libaio",
            "io_uring",
            "psync",
            "sync",
            "null",
            "sg",
            "external:/x.so",
        ] {
            assert_eq!(engine_kind(e), Some(EngineKind::Storage), "{e}");
        }
        assert!(matches!(
            engine_kind("cpuio"),
            Some(EngineKind::NotBlockIo(_))
        ));
        assert!(matches!(
            engine_kind("net"),
            Some(EngineKind::NotBlockIo(_))
        ));
        assert_eq!(engine_kind("libaoi"), None);
    }
}
