//! The latency parts of a fio (or `uvio bench`) JSON report: `--output-format=json` gives the
//! percentiles, `json+` adds the histogram (`bins`).
//!
//! Per job and data direction, `clat_ns`, `lat_ns` and `slat_ns` hold `percentile` (`"99.000000":
//! ns`) when that latency's percentiles were asked for (`clat_percentiles`, the default;
//! `lat_percentiles`, `slat_percentiles`), and with json+ `bins` (`"ns": count`): fio's
//! log-linear histogram buckets, keyed by each bucket's latency in nanoseconds. A file may
//! hold text before the JSON (fio's notes) and several JSON objects (`--status-interval`):
//! the last one is the final report.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::log::Ddir;
use super::PlotError;

/// Which latency a figure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LatencyKind {
    Clat,
    Lat,
    Slat,
}

impl LatencyKind {
    pub fn name(self) -> &'static str {
        match self {
            LatencyKind::Clat => "clat",
            LatencyKind::Lat => "lat",
            LatencyKind::Slat => "slat",
        }
    }
}

/// One job's one latency in one direction.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyFigures {
    pub job: String,
    pub ddir: Ddir,
    pub kind: LatencyKind,
    /// (percentile, nanoseconds), ascending.
    pub percentiles: Vec<(f64, u64)>,
    /// (bucket latency in nanoseconds, I/Os), ascending; empty without json+.
    pub bins: Vec<(u64, u64)>,
}

#[derive(Deserialize)]
struct RawReport {
    jobs: Vec<RawJob>,
}

#[derive(Deserialize)]
struct RawJob {
    jobname: String,
    read: Option<RawDdir>,
    write: Option<RawDdir>,
    trim: Option<RawDdir>,
}

#[derive(Deserialize)]
struct RawDdir {
    clat_ns: Option<RawLatency>,
    lat_ns: Option<RawLatency>,
    slat_ns: Option<RawLatency>,
}

#[derive(Deserialize)]
struct RawLatency {
    #[serde(default)]
    percentile: BTreeMap<String, f64>,
    #[serde(default)]
    bins: BTreeMap<String, u64>,
}

/// Reads a report file: every job's latency figures that have percentiles or bins.
pub fn read_report(path: &Path) -> Result<Vec<LatencyFigures>, PlotError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlotError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_report(&text).map_err(|why| PlotError::BadReport {
        path: path.to_path_buf(),
        why,
    })
}

/// The figures of a report's text, or why it is not a fio JSON report.
pub fn parse_report(text: &str) -> Result<Vec<LatencyFigures>, String> {
    // fio prints notes before its JSON on the same stream; the JSON starts on a line of its own.
    let start = text
        .lines()
        .scan(0, |offset, line| {
            let here = *offset;
            *offset += line.len() + 1;
            Some((here, line))
        })
        .find(|(_, line)| line.trim_start().starts_with('{'))
        .map(|(offset, _)| offset)
        .ok_or("no JSON object in it (was it written with --output-format=json or json+?)")?;
    let mut last = None;
    for value in serde_json::Deserializer::from_str(&text[start..]).into_iter::<RawReport>() {
        last = Some(value.map_err(|e| format!("not a fio JSON report: {e}"))?);
    }
    let report = last.ok_or("no JSON object in it")?;
    if report.jobs.is_empty() {
        return Err("the report has no jobs".into());
    }
    // Jobs of `numjobs=N` without group_reporting share a name: number them as fio numbers
    // their logs.
    let shared_name = |name: &str| report.jobs.iter().filter(|j| j.jobname == name).count() > 1;
    let mut figures = Vec::new();
    for (index, job) in report.jobs.iter().enumerate() {
        let label = if shared_name(&job.jobname) {
            format!("{}.{}", job.jobname, index + 1)
        } else {
            job.jobname.clone()
        };
        for (ddir, stats) in [
            (Ddir::Read, &job.read),
            (Ddir::Write, &job.write),
            (Ddir::Trim, &job.trim),
        ] {
            let Some(stats) = stats else { continue };
            for (kind, latency) in [
                (LatencyKind::Clat, &stats.clat_ns),
                (LatencyKind::Lat, &stats.lat_ns),
                (LatencyKind::Slat, &stats.slat_ns),
            ] {
                let Some(latency) = latency else { continue };
                if latency.percentile.is_empty() && latency.bins.is_empty() {
                    continue;
                }
                figures.push(LatencyFigures {
                    job: label.clone(),
                    ddir,
                    kind,
                    percentiles: numeric_keys(&latency.percentile, |p| p.parse::<f64>().ok())
                        .map(|(p, ns)| (p, ns.max(0.0) as u64))
                        .collect(),
                    bins: numeric_keys(&latency.bins, |ns| ns.parse::<u64>().ok()).collect(),
                });
            }
        }
    }
    for f in &mut figures {
        f.percentiles.sort_by(|a, b| a.0.total_cmp(&b.0));
        f.bins.sort_unstable();
    }
    Ok(figures)
}

/// A map's entries with their keys read as numbers (keys that are not numbers are skipped:
/// fio writes none).
fn numeric_keys<'a, K: 'a, V: Copy + 'a>(
    map: &'a BTreeMap<String, V>,
    parse: impl Fn(&str) -> Option<K> + 'a,
) -> impl Iterator<Item = (K, V)> + 'a {
    map.iter()
        .filter_map(move |(k, v)| parse(k).map(|k| (k, *v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/plot")
            .join(name)
    }

    #[test]
    fn fio_json_plus_report() {
        let figures = read_report(&data("randrw.json")).unwrap();
        let names: Vec<(&str, Ddir, LatencyKind)> = figures
            .iter()
            .map(|f| (f.job.as_str(), f.ddir, f.kind))
            .collect();
        assert_eq!(
            names,
            [
                ("randrw", Ddir::Read, LatencyKind::Clat),
                ("randrw", Ddir::Write, LatencyKind::Clat)
            ]
        );
        let read = &figures[0];
        assert_eq!(read.percentiles.len(), 17);
        assert_eq!(read.percentiles[0], (1.0, 99));
        assert!(read.percentiles.contains(&(99.0, 394)));
        assert_eq!(read.percentiles.last(), Some(&(99.99, 152_576)));
        assert_eq!(read.bins.len(), 267);
        assert_eq!(read.bins[..2], [(98, 46), (99, 624)]);
        // Every I/O is in one bucket: the bins add up to the reads fio counted.
        let ios: u64 = read.bins.iter().map(|b| b.1).sum();
        assert_eq!(ios, 40_000);
    }

    #[test]
    fn notes_before_and_status_objects() {
        let one = r#"{"jobs":[{"jobname":"a","read":{"clat_ns":{"percentile":{"50.000000":1000},"bins":{}}}}]}"#;
        let last =
            r#"{"jobs":[{"jobname":"b","read":{"clat_ns":{"percentile":{"50.000000":2000}}}}]}"#;
        let text = format!("note: both iodepth >= 1 and synchronous I/O engine\n{one}\n{last}\n");
        let figures = parse_report(&text).unwrap();
        assert_eq!(figures.len(), 1);
        assert_eq!(figures[0].job, "b");
        assert_eq!(figures[0].percentiles, [(50.0, 2000)]);
    }

    #[test]
    fn jobs_sharing_a_name_are_numbered() {
        let text = r#"{"jobs":[
            {"jobname":"j","read":{"clat_ns":{"percentile":{"50.000000":1}}}},
            {"jobname":"j","read":{"clat_ns":{"percentile":{"50.000000":2}}}}]}"#;
        let jobs: Vec<String> = parse_report(text)
            .unwrap()
            .into_iter()
            .map(|f| f.job)
            .collect();
        assert_eq!(jobs, ["j.1", "j.2"]);
    }

    #[test]
    fn not_a_report() {
        let why = parse_report("fio: pid=0, err=2/file:filesetup.c\n").unwrap_err();
        assert!(why.starts_with("no JSON object"), "{why}");
        let why = parse_report("{\"jobs\": [").unwrap_err();
        assert!(why.starts_with("not a fio JSON report"), "{why}");
        let why = parse_report("{\"x\": 1}").unwrap_err();
        assert!(why.contains("missing field `jobs`"), "{why}");
        assert_eq!(
            parse_report("{\"jobs\": []}").unwrap_err(),
            "the report has no jobs"
        );
    }
}
