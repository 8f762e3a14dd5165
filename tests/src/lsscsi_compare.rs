//! `uvio scan OPTS` against Debian's `lsscsi OPTS` on the kernel-driven twin HBA, line for
//! line: equal but for the device node column (uvio prints its DEVICE address), the kernel's
//! host number (uvio numbers the host it scans 0) and the attributes only the kernel keeps
//! (its I/O counters and queue depth, where uvio prints its own).

/// The attributes of `-l`/`-L` whose values are uvio's own (the kernel's I/O counters and
/// queue depth): checked for form, then left out of the comparison.
pub const UVIO_OWN_ATTRIBUTES: &[&str] =
    &["iodone_cnt", "ioerr_cnt", "iorequest_cnt", "queue_depth"];

/// Lines of kernel host `host` in lsscsi's output (with `-c`'s heading), blank lines left
/// out.
pub fn host_lines(text: &str, host: u32) -> Vec<&str> {
    let (tuple, bracket, scsi) = (
        format!("[{host}:"),
        format!("[{host}]"),
        format!("Host: scsi{host} "),
    );
    let mut keep = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.starts_with('[') {
            keep = line.starts_with(&tuple) || line.starts_with(&bracket);
        } else if line.starts_with("Host: scsi") {
            keep = line.starts_with(&scsi);
        } else if line.starts_with("Attached ") {
            keep = true;
        } else if line.trim().is_empty() {
            continue;
        }
        if keep {
            lines.push(line);
        }
    }
    lines
}

/// `line` with the host number `host` written as uvio's 0: `[host:` and `[host]` at the
/// start, `Host: scsi<host> ` in `-c`'s layout.
pub fn as_host0(line: &str, host: u32) -> String {
    for (from, to) in [
        (format!("[{host}:"), "[0:".to_string()),
        (format!("[{host}]"), "[0]".to_string()),
        (format!("Host: scsi{host} "), "Host: scsi0 ".to_string()),
    ] {
        if let Some(rest) = line.strip_prefix(&from) {
            return format!("{to}{rest}");
        }
    }
    line.to_string()
}

/// An `-l`/`-L` line with uvio's own values replaced by `*`, after checking uvio's (`uvio`
/// true) are well formed: hex counters, a positive depth.
pub fn without_own_values(line: &str, uvio: bool) -> String {
    if !line.starts_with("  ") || !line.contains('=') {
        return line.to_string();
    }
    let fields: Vec<String> = line
        .split(' ')
        .map(|field| match field.split_once('=') {
            Some((key, value)) if UVIO_OWN_ATTRIBUTES.contains(&key) => {
                if uvio {
                    let ok = match value.strip_prefix("0x") {
                        Some(hex) => u32::from_str_radix(hex, 16).is_ok(),
                        None => value.parse::<u16>().is_ok_and(|d| d > 0),
                    };
                    assert!(ok, "uvio's {key}={value} in {line:?}");
                }
                format!("{key}=*")
            }
            _ => field.to_string(),
        })
        .collect();
    fields.join(" ")
}

/// One line of `uvio scan OPTS` (uvio driving `uvio_hba`) against lsscsi's: equal up to the
/// device node column; where lsscsi prints `/dev/sdX` (padded to 9), uvio prints its DEVICE
/// address of that LUN, and `-` for a CD-ROM (uvio drives no CD-ROM); the rest equal again.
/// `-v`'s `dir:` line names the PCI function uvio drives, whose sysfs path leads the
/// kernel's SCSI device's.
pub fn compare_line(u: &str, k: &str, args: &str, uvio_hba: &str) {
    if let (Some(ud), Some(kd)) = (u.strip_prefix("  dir: "), k.strip_prefix("  dir: ")) {
        let path = |d: &str| {
            d.split_once("  [")
                .map(|(_, p)| p.trim_end_matches(']').to_string())
                .unwrap_or_default()
        };
        assert!(
            ud.starts_with(&format!("/sys/bus/pci/devices/{uvio_hba}  ["))
                && path(kd).starts_with(&format!("{}/", path(ud)))
                && path(ud).ends_with(uvio_hba),
            "uvio scan {args}:\n{u}\n{k}"
        );
        return;
    }
    let (u, k) = (without_own_values(u, true), without_own_values(k, false));
    let Some(p) = k.find("/dev/") else {
        assert_eq!(u, k, "uvio scan {args}");
        return;
    };
    let field = |line: &str| -> (String, String) {
        let rest = line.get(p..).unwrap_or("");
        let token = rest.split(' ').next().unwrap_or("");
        let end = (p + token.len()).max(p + 9).min(line.len());
        (token.to_string(), line[end..].to_string())
    };
    assert_eq!(u.get(..p), Some(&k[..p]), "uvio scan {args}:\n{u}\n{k}");
    let ((ut, us), (kt, ks)) = (field(&u), field(&k));
    if kt.starts_with("/dev/sr") {
        assert_eq!(ut, "-", "uvio scan {args}:\n{u}\n{k}");
    } else {
        assert!(
            ut.starts_with(&format!("{uvio_hba}/0:")),
            "uvio scan {args}:\n{u}\n{k}"
        );
    }
    assert_eq!(us, ks, "uvio scan {args}:\n{u}\n{k}");
}

/// The non-empty lines of uvio's output and lsscsi's of kernel host `host` (written as host
/// 0), for one option set, the same number of each.
pub fn line_pairs(uvio: &str, lsscsi: &str, host: u32, args: &str) -> Vec<(String, String)> {
    let k: Vec<String> = host_lines(lsscsi, host)
        .into_iter()
        .map(|l| as_host0(l, host))
        .collect();
    let u: Vec<String> = uvio
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    assert_eq!(
        u.len(),
        k.len(),
        "uvio scan {args}: {} lines, lsscsi {}\n{uvio}\n{lsscsi}",
        u.len(),
        k.len()
    );
    u.into_iter().zip(k).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_hosts_lines_are_compared_as_host_0() {
        let lsscsi = "[0:0:1:0]    disk    QEMU     QEMU HARDDISK    2.5+  /dev/sda \n\
                      [2:0:1:0]    disk    QEMU     QEMU HARDDISK    2.5+  /dev/sdb \n";
        let uvio = "[0:0:1:0]    disk    QEMU     QEMU HARDDISK    2.5+  0000:00:04.0/0:1:0\n";
        let pairs = line_pairs(uvio, lsscsi, 2, "");
        assert_eq!(pairs.len(), 1);
        compare_line(&pairs[0].0, &pairs[0].1, "", "0000:00:04.0");
        assert_eq!(
            as_host0("Host: scsi2 Channel: 00", 2),
            "Host: scsi0 Channel: 00"
        );
        assert_eq!(as_host0("[2]    virtio_scsi", 2), "[0]    virtio_scsi");
        assert_eq!(as_host0("[12:0:0:0]", 2), "[12:0:0:0]");
    }

    #[test]
    #[should_panic(expected = "uvio scan -s")]
    fn a_different_size_fails() {
        compare_line(
            "[0:0:1:0]    disk    QEMU     QEMU HARDDISK    2.5+  0000:00:04.0/0:1:0  1.07GB",
            "[0:0:1:0]    disk    QEMU     QEMU HARDDISK    2.5+  /dev/sdb   2.14GB",
            "-s",
            "0000:00:04.0",
        );
    }
}
