//! fio's time-series logs (`write_bw_log`, `write_iops_log`, `write_lat_log`), as fio 3.33
//! writes them (`flush_samples` in its iolog.c) and `uvio bench` writes them too.
//!
//! A log is named `PREFIX_KIND.N.log` (`N` the job's number from 1; without the number when
//! `per_job_logs=0`), KIND one of `bw`, `iops`, `lat`, `clat`, `slat`. Each line is
//! `time_ms, value, ddir, bs[, offset][, prio]`: milliseconds since the job started; the value
//! in KiB/s (bw), I/Os per second (iops) or nanoseconds (latencies); ddir 0 read, 1 write,
//! 2 trim (a sync's 3 and fio's flag bits above them are not plotted apart); bs 0 for averaged
//! samples; `offset` only with `log_offset=1`; the priority in decimal, or in hex with
//! `log_prio=1`. Older fio wrote only the first four columns; they read too.

use std::path::{Path, PathBuf};

use super::PlotError;

/// What a log measures, from its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogKind {
    Iops,
    Bandwidth,
    /// Total latency (submission to completion).
    Lat,
    /// Completion latency.
    Clat,
    /// Submission latency.
    Slat,
}

impl LogKind {
    /// The KIND part of fio's file name.
    pub fn file_tag(self) -> &'static str {
        match self {
            LogKind::Iops => "iops",
            LogKind::Bandwidth => "bw",
            LogKind::Lat => "lat",
            LogKind::Clat => "clat",
            LogKind::Slat => "slat",
        }
    }

    fn from_file_tag(tag: &str) -> Option<LogKind> {
        [
            LogKind::Iops,
            LogKind::Bandwidth,
            LogKind::Lat,
            LogKind::Clat,
            LogKind::Slat,
        ]
        .into_iter()
        .find(|k| k.file_tag() == tag)
    }
}

/// The data direction of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ddir {
    Read,
    Write,
    Trim,
    Sync,
}

impl Ddir {
    pub fn name(self) -> &'static str {
        match self {
            Ddir::Read => "read",
            Ddir::Write => "write",
            Ddir::Trim => "trim",
            Ddir::Sync => "sync",
        }
    }
}

/// One line of a log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub time_ms: u64,
    /// As logged: KiB/s, I/Os per second or nanoseconds.
    pub value: u64,
    pub ddir: Ddir,
}

/// One log file, read whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    pub path: PathBuf,
    pub kind: LogKind,
    /// The file name before `_KIND`, with the job number: `randrw.1`, or `randrw` without one.
    pub job: String,
    pub samples: Vec<Sample>,
}

/// The kind and job of a file named as fio names its logs, or `None`.
pub fn log_name(path: &Path) -> Option<(LogKind, String)> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".log")?;
    // `PREFIX_KIND.N` or `PREFIX_KIND`.
    let (base, number) = match stem.rsplit_once('.') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            (base, Some(n))
        }
        _ => (stem, None),
    };
    let (prefix, tag) = base.rsplit_once('_')?;
    let kind = LogKind::from_file_tag(tag)?;
    let job = match number {
        Some(n) => format!("{prefix}.{n}"),
        None => prefix.to_string(),
    };
    Some((kind, job))
}

/// Reads a log file named as fio names them.
pub fn read_log(path: &Path) -> Result<Log, PlotError> {
    let (kind, job) = log_name(path).ok_or_else(|| PlotError::UnknownInput(path.to_path_buf()))?;
    let text = std::fs::read_to_string(path).map_err(|source| PlotError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let samples = parse_samples(&text).map_err(|(line, why)| PlotError::BadLogLine {
        path: path.to_path_buf(),
        line,
        why,
    })?;
    Ok(Log {
        path: path.to_path_buf(),
        kind,
        job,
        samples,
    })
}

/// Every line of a log's text; on a bad line, its number (from 1) and what is wrong.
pub fn parse_samples(text: &str) -> Result<Vec<Sample>, (usize, String)> {
    let mut samples = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        samples.push(parse_line(line).map_err(|why| (index + 1, why))?);
    }
    Ok(samples)
}

fn parse_line(line: &str) -> Result<Sample, String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if !(4..=6).contains(&fields.len()) {
        return Err(format!(
            "`{line}`: {} field{}, a fio log line has 4 to 6 (time_ms, value, ddir, bs[, offset][, prio])",
            fields.len(),
            if fields.len() == 1 { "" } else { "s" }
        ));
    }
    let number = |what: &str, text: &str| -> Result<u64, String> {
        let parsed = match text.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => text.parse(),
        };
        parsed.map_err(|_| format!("`{line}`: {what} `{text}` is not a whole number"))
    };
    let time_ms = number("time", fields[0])?;
    let value = number("value", fields[1])?;
    // fio keeps flag bits above the direction (a trim's "in flight" bit); the low two bits
    // are the direction.
    let ddir = match number("ddir", fields[2])? & 3 {
        0 => Ddir::Read,
        1 => Ddir::Write,
        2 => Ddir::Trim,
        _ => Ddir::Sync,
    };
    for (what, text) in [("bs", fields[3])]
        .into_iter()
        .chain(fields[4..].iter().map(|f| ("offset/prio", *f)))
    {
        number(what, text)?;
    }
    Ok(Sample {
        time_ms,
        value,
        ddir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::tests::data;

    #[test]
    fn fio_file_names() {
        assert_eq!(
            log_name(Path::new("/x/randrw_bw.1.log")),
            Some((LogKind::Bandwidth, "randrw.1".into()))
        );
        assert_eq!(
            log_name(Path::new("my_job_clat.12.log")),
            Some((LogKind::Clat, "my_job.12".into()))
        );
        // per_job_logs=0: no job number.
        assert_eq!(
            log_name(Path::new("a.b_iops.log")),
            Some((LogKind::Iops, "a.b".into()))
        );
        assert_eq!(log_name(Path::new("randrw_clat_hist.1.log")), None);
        assert_eq!(log_name(Path::new("randrw.json")), None);
        assert_eq!(log_name(Path::new("bw.1.log")), None);
    }

    #[test]
    fn averaged_log_from_fio() {
        // fio 3.33, log_avg_msec=100, rate_iops=20000,10000: read and write samples alternate.
        let log = read_log(&data("randrw_iops.1.log")).unwrap();
        assert_eq!(log.kind, LogKind::Iops);
        assert_eq!(log.job, "randrw.1");
        assert_eq!(
            log.samples[..2],
            [
                Sample {
                    time_ms: 149,
                    value: 20046,
                    ddir: Ddir::Read
                },
                Sample {
                    time_ms: 149,
                    value: 10026,
                    ddir: Ddir::Write
                }
            ]
        );
        assert_eq!(log.samples.len(), 38);
        let reads: Vec<u64> = log
            .samples
            .iter()
            .filter(|s| s.ddir == Ddir::Read)
            .map(|s| s.value)
            .collect();
        assert!(
            reads.iter().all(|v| (19_000..=21_000).contains(v)),
            "{reads:?}"
        );
    }

    #[test]
    fn per_io_log_with_hex_priority() {
        // log_prio=1, no averaging: `time, ns, ddir, bs, 0xPRIO`, one line per write.
        let log = read_log(&data("perio_clat.1.log")).unwrap();
        assert_eq!(log.samples.len(), 12);
        assert_eq!(log.samples[0].value, 6463);
        assert!(log.samples.iter().all(|s| s.ddir == Ddir::Write));
    }

    #[test]
    fn bad_lines_are_named() {
        assert_eq!(
            parse_samples("100, 5, 0, 0, 0\n200, five, 0, 0, 0\n"),
            Err((
                2,
                "`200, five, 0, 0, 0`: value `five` is not a whole number".into()
            ))
        );
        let (line, why) = parse_samples("1, 2, 0\n").unwrap_err();
        assert_eq!(line, 1);
        assert!(why.contains("3 fields"), "{why}");
        let (_, why) = parse_samples("bad line\n").unwrap_err();
        assert!(why.starts_with("`bad line`: 1 field, "), "{why}");
        assert!(parse_samples("1, 2, 0, 0, 0, 0, 0\n").is_err());
        assert!(parse_samples("1, 2, 0, 0, 0xzz\n").is_err());
        assert_eq!(parse_samples("\n").unwrap(), vec![]);
    }
}
