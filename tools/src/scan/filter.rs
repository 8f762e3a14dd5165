//! lsscsi's `H:C:T:L` filter argument, as lsscsi 0.31 reads it.

use uvio::scsi::scan::ScannedLun;

/// An `H:C:T:L` filter, each part a number or a wildcard (`None`), as lsscsi takes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter {
    pub host: Option<u32>,
    pub channel: Option<u32>,
    pub target: Option<u32>,
    /// Linux's LUN integer (16684 for flat-addressed LUN 300).
    pub lun: Option<u64>,
}

impl Filter {
    /// Parses lsscsi's filter arguments: one `H:C:T:L` (fewer parts leave the rest wild;
    /// `-`, `*`, `?` or an empty part is a wildcard; an optional `[`, `]` and a `host`
    /// prefix are ignored; the LUN may be `0x` hex), or up to four arguments, one part
    /// each (`0 0 2 5`).
    pub fn parse(args: &[&str]) -> Result<Filter, String> {
        if args.is_empty() {
            return Ok(Filter::default());
        }
        if args.len() > 4 {
            return Err(format!(
                "at most four filter arguments (H:C:T:L or H C T L), not {}",
                args.len()
            ));
        }
        let mut first = args[0];
        for prefix in ["host", "HOST"] {
            if let Some(rest) = first.strip_prefix(prefix) {
                first = rest;
            }
        }
        let joined = if args.len() == 1 || first.contains(':') {
            if args.len() > 1 {
                return Err(format!(
                    "unexpected filter arguments after {}: {}",
                    args[0],
                    args[1..].join(" ")
                ));
            }
            first.to_string()
        } else {
            std::iter::once(first)
                .chain(args[1..].iter().copied())
                .collect::<Vec<_>>()
                .join(":")
        };
        let text = joined.trim_start_matches([' ', '\t', '[']);
        let mut filter = Filter::default();
        if text.is_empty() {
            return Ok(filter);
        }
        let parts: Vec<&str> = text.split(':').collect();
        // "0:" is one part, as lsscsi reads it.
        let parts = match parts.split_last() {
            Some((last, rest)) if last.is_empty() && !rest.is_empty() => rest,
            _ => &parts[..],
        };
        if parts.len() > 4 {
            return Err(format!("{joined}: expect three colons at most"));
        }
        for (k, part) in parts.iter().enumerate() {
            let part = part.trim_end_matches(']');
            if part.is_empty() || part.starts_with(['-', '*', '?']) {
                continue;
            }
            let bad = || format!("{joined}: cannot decode {part} as an integer");
            if k == 3 {
                let lun = match part.strip_prefix("0x").or(part.strip_prefix("0X")) {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => part.parse(),
                }
                .map_err(|_| bad())?;
                filter.lun = Some(lun);
            } else {
                let v: u32 = part.parse().map_err(|_| bad())?;
                match k {
                    0 => filter.host = Some(v),
                    1 => filter.channel = Some(v),
                    _ => filter.target = Some(v),
                }
            }
        }
        Ok(filter)
    }

    pub fn matches_host(&self, host: usize) -> bool {
        self.host.is_none_or(|h| h as usize == host)
    }

    pub fn matches(&self, host: usize, l: &ScannedLun) -> bool {
        self.matches_host(host)
            && self.channel.is_none_or(|c| c == u32::from(l.channel))
            && self.target.is_none_or(|t| t == u32::from(l.target))
            && self.lun.is_none_or(|n| n == l.linux_lun)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_as_lsscsi_reads_them() {
        let all = Filter::default();
        assert_eq!(Filter::parse(&[]).unwrap(), all);
        assert_eq!(Filter::parse(&["*"]).unwrap(), all);
        assert_eq!(Filter::parse(&["-:-:-:-"]).unwrap(), all);
        let f = Filter::parse(&["0"]).unwrap();
        assert_eq!((f.host, f.channel), (Some(0), None));
        let f = Filter::parse(&["host1"]).unwrap();
        assert_eq!(f.host, Some(1));
        let f = Filter::parse(&["*:0:2"]).unwrap();
        assert_eq!(
            (f.host, f.channel, f.target, f.lun),
            (None, Some(0), Some(2), None)
        );
        let f = Filter::parse(&["[0:0:2:5]"]).unwrap();
        assert_eq!((f.host, f.target, f.lun), (Some(0), Some(2), Some(5)));
        let f = Filter::parse(&["*:*:*:0x412c"]).unwrap();
        assert_eq!(f.lun, Some(16684));
        let f = Filter::parse(&["0", "0", "2", "5"]).unwrap();
        assert_eq!(
            (f.host, f.channel, f.target, f.lun),
            (Some(0), Some(0), Some(2), Some(5))
        );
        let f = Filter::parse(&["0", "-", "4"]).unwrap();
        assert_eq!(
            (f.host, f.channel, f.target, f.lun),
            (Some(0), None, Some(4), None)
        );
        let f = Filter::parse(&["0:"]).unwrap();
        assert_eq!((f.host, f.channel), (Some(0), None));
        assert!(Filter::parse(&["a:b"]).is_err());
        assert!(Filter::parse(&["0:0:0:0:0"]).is_err());
        assert!(Filter::parse(&["1", "2", "3", "4", "5"]).is_err());
    }
}
