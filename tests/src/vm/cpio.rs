//! A minimal writer for the `newc` cpio format that the kernel's initramfs unpacker reads.
//!
//! Why our own writer instead of the host's `cpio -o`: we can emit entries that a staging
//! directory would need root or tricks for (a `/dev/console` character node, symlinks to
//! `/bin/busybox` that must not be followed), every entry is owned by root with a fixed mtime,
//! and there is no staging tree in which copying a real binary onto a busybox applet symlink
//! would write through the link and overwrite busybox.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// Streams a `newc` archive. Parent directories are emitted automatically because the kernel's
/// unpacker does not create missing parents (a file whose directory is missing is dropped).
pub(crate) struct CpioWriter<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
    dirs: HashSet<String>,
}

impl<W: Write> CpioWriter<W> {
    pub(crate) fn new(out: W) -> Self {
        Self {
            out,
            written: 0,
            next_ino: 1,
            dirs: HashSet::new(),
        }
    }

    /// Guest paths are absolute (`/bin/sh`); inside the archive they are relative (`bin/sh`).
    fn archive_name(path: &str) -> String {
        path.trim_start_matches('/')
            .trim_end_matches('/')
            .to_string()
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad4(&mut self) -> io::Result<()> {
        let pad = (4 - (self.written % 4) as usize) % 4;
        self.write_all(&[0u8; 3][..pad])
    }

    fn header(&mut self, name: &str, mode: u32, size: u64, rdev: (u32, u32)) -> io::Result<()> {
        let size = u32::try_from(size).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name}: file too large for newc"),
            )
        })?;
        let ino = self.next_ino;
        self.next_ino += 1;
        let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
        // Fields: ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor
        // namesize check. uid/gid/mtime are 0 so archives are reproducible.
        let fields = [
            ino,
            mode,
            0,
            0,
            nlink,
            0,
            size,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        let mut hdr = String::with_capacity(110);
        hdr.push_str("070701");
        for f in fields {
            hdr.push_str(&format!("{f:08X}"));
        }
        self.write_all(hdr.as_bytes())?;
        self.write_all(name.as_bytes())?;
        self.write_all(&[0])?;
        self.pad4()
    }

    fn ensure_parents(&mut self, name: &str) -> io::Result<()> {
        let mut prefix = String::new();
        let parts: Vec<&str> = name.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if self.dirs.insert(prefix.clone()) {
                let p = prefix.clone();
                self.header(&p, S_IFDIR | 0o755, 0, (0, 0))?;
            }
        }
        Ok(())
    }

    pub(crate) fn dir(&mut self, path: &str, perm: u32) -> io::Result<()> {
        let name = Self::archive_name(path);
        self.ensure_parents(&name)?;
        if self.dirs.insert(name.clone()) {
            self.header(&name, S_IFDIR | perm, 0, (0, 0))?;
        }
        Ok(())
    }

    pub(crate) fn file_bytes(&mut self, path: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        let name = Self::archive_name(path);
        self.ensure_parents(&name)?;
        self.header(&name, S_IFREG | perm, data.len() as u64, (0, 0))?;
        self.write_all(data)?;
        self.pad4()
    }

    /// Copies a host file (following symlinks) into the archive without loading it whole.
    pub(crate) fn file_from_host(&mut self, path: &str, perm: u32, host: &Path) -> io::Result<()> {
        let name = Self::archive_name(path);
        let mut f = File::open(host)
            .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", host.display())))?;
        let len = f.metadata()?.len();
        self.ensure_parents(&name)?;
        self.header(&name, S_IFREG | perm, len, (0, 0))?;
        let copied = io::copy(&mut f, &mut self.out)?;
        if copied != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} changed size while archiving", host.display()),
            ));
        }
        self.written += copied;
        self.pad4()
    }

    pub(crate) fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        let name = Self::archive_name(path);
        self.ensure_parents(&name)?;
        self.header(&name, S_IFLNK | 0o777, target.len() as u64, (0, 0))?;
        self.write_all(target.as_bytes())?;
        self.pad4()
    }

    pub(crate) fn char_dev(
        &mut self,
        path: &str,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        let name = Self::archive_name(path);
        self.ensure_parents(&name)?;
        self.header(&name, S_IFCHR | perm, 0, (major, minor))
    }

    /// Writes the trailer and returns the inner writer. The archive length is a multiple of 4,
    /// which the kernel requires of the start of the next concatenated uncompressed segment.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.header("TRAILER!!!", 0, 0, (0, 0))?;
        self.pad4()?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_aligned_and_parents_come_first() {
        let mut w = CpioWriter::new(Vec::new());
        w.file_bytes("/a/b/c.txt", 0o644, b"hello").unwrap();
        w.symlink("/a/l", "/bin/busybox").unwrap();
        let out = w.finish().unwrap();
        assert_eq!(out.len() % 4, 0);
        let text = String::from_utf8_lossy(&out);
        let a = text.find("a\0").unwrap();
        let ab = text.find("a/b\0").unwrap();
        let abc = text.find("a/b/c.txt\0").unwrap();
        assert!(a < ab && ab < abc);
        assert!(text.contains("hello"));
        assert!(text.contains("TRAILER!!!"));
        // Every header starts on a 4-byte boundary.
        for (i, _) in text.match_indices("070701") {
            assert_eq!(i % 4, 0);
        }
    }
}
