//! `uvio plot`: SVG charts of a benchmark run, from what fio and `uvio bench` write.
//!
//! - A JSON report (`--output-format=json` or `json+`, fio's or uvio's: the same layout) gives
//!   `NAME-percentiles.svg` (the latency percentiles of every job and data direction) and, from
//!   json+'s bins, `NAME-histogram.svg` (the latency distribution).
//! - fio's time-series logs (`PREFIX_iops.N.log`, `_bw`, `_lat`, `_clat`, `_slat`) give
//!   `PREFIX-iops.svg`, `PREFIX-bw.svg`, `PREFIX-clat.svg`, ...: one chart per prefix and kind,
//!   a line per job and data direction.
//!
//! Reading is in [`report`] and [`log`], drawing in [`chart`]; this module picks the charts.

pub mod chart;
pub mod log;
pub mod report;

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;

use chart::{LatencyUnit, Series};
use log::{Ddir, Log, LogKind};
use report::LatencyFigures;

use crate::command::CmdResult;

/// Why a chart could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {why}", path.display())]
    BadReport { path: PathBuf, why: String },
    #[error("{}, line {line}: {why}", path.display())]
    BadLogLine {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error("{}: not a fio log name (PREFIX_KIND.N.log, KIND one of iops, bw, lat, clat, slat)", .0.display())]
    UnknownInput(PathBuf),
    #[error("nothing to plot: {0}")]
    NothingToPlot(String),
    #[error(
        "two inputs give the chart {0} (files of one name from different directories): plot \
         them in separate runs with their own -o, or together with --merge"
    )]
    SameChart(String),
    #[error("drawing a chart: {0}")]
    Draw(String),
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `uvio plot` arguments.
#[derive(Args)]
pub struct PlotArgs {
    /// JSON reports of fio or `uvio bench` (`--output-format=json+`; plain `json` gives no
    /// histogram) and fio-format logs (`PREFIX_iops.N.log`, `_bw`, `_lat`, `_clat`, `_slat`,
    /// from `write_iops_log`, `write_bw_log`, `write_lat_log`). A file named as a fio log is
    /// read as one; any other as a JSON report.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Directory the SVG files are written to (made if missing).
    #[arg(short = 'o', long, value_name = "DIR", default_value = ".")]
    pub output: PathBuf,
    /// Draw the latencies of every JSON report given into one pair of charts,
    /// NAME-percentiles.svg and NAME-histogram.svg (to compare runs: uvio and the kernel, two
    /// settings), instead of a pair per report.
    #[arg(long, value_name = "NAME")]
    pub merge: Option<String>,
}

/// Reads every file first (so that one bad input writes nothing), then writes the charts and
/// prints their paths.
pub fn run(args: PlotArgs) -> CmdResult {
    let charts = charts(&args.files, args.merge.as_deref())?;
    std::fs::create_dir_all(&args.output).map_err(|source| PlotError::Write {
        path: args.output.clone(),
        source,
    })?;
    for (name, svg) in charts {
        let path = args.output.join(name);
        std::fs::write(&path, svg).map_err(|source| PlotError::Write {
            path: path.clone(),
            source,
        })?;
        println!("{}", path.display());
    }
    Ok(())
}

/// Every chart the files give: (file name, SVG text). With `merge`, the reports' latencies
/// share one pair of charts of that name.
pub fn charts(files: &[PathBuf], merge: Option<&str>) -> Result<Vec<(String, String)>, PlotError> {
    let mut charts = Vec::new();
    let mut merged: Vec<(String, Vec<LatencyFigures>)> = Vec::new();
    // Logs of one prefix and kind share a chart: (prefix, kind) -> logs.
    let mut logs: BTreeMap<(String, LogKind), Vec<Log>> = BTreeMap::new();
    for path in files {
        if log::log_name(path).is_some() {
            let log = log::read_log(path)?;
            if log.samples.is_empty() {
                eprintln!("uvio: note: {} is empty: not plotted", path.display());
                continue;
            }
            let prefix = match log.job.rsplit_once('.') {
                Some((prefix, n)) if n.bytes().all(|b| b.is_ascii_digit()) => prefix.to_string(),
                _ => log.job.clone(),
            };
            logs.entry((prefix, log.kind)).or_default().push(log);
        } else {
            let figures = report::read_report(path)?;
            let file = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match merge {
                Some(_) => merged.push((file, figures)),
                None => {
                    let stem = path
                        .file_stem()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "report".into());
                    charts.extend(latency_charts(&stem, &file, figures)?);
                }
            }
        }
    }
    if let Some(name) = merge {
        if merged.is_empty() {
            return Err(PlotError::NothingToPlot(format!(
                "--merge {name}: no JSON report given"
            )));
        }
        // Series keep their job names; a name two reports share gets its file's name too.
        let jobs: std::collections::BTreeSet<(&str, &str)> = merged
            .iter()
            .flat_map(|(file, figures)| figures.iter().map(|f| (file.as_str(), f.job.as_str())))
            .collect();
        let shared: Vec<String> = jobs
            .iter()
            .filter(|(_, job)| jobs.iter().filter(|(_, j)| j == job).count() > 1)
            .map(|(_, job)| job.to_string())
            .collect();
        let shared = |job: &str| shared.iter().any(|s| s == job);
        let mut all = Vec::new();
        let count = merged.len();
        for (file, figures) in merged {
            for mut f in figures {
                if count > 1 && shared(&f.job) {
                    f.job = format!("{file}: {}", f.job);
                }
                all.push(f);
            }
        }
        charts.extend(latency_charts(name, name, all)?);
    }
    for ((prefix, kind), logs) in &logs {
        charts.push((
            format!("{prefix}-{}.svg", kind.file_tag()),
            log_chart(prefix, *kind, logs)?,
        ));
    }
    if charts.is_empty() {
        return Err(PlotError::NothingToPlot(
            "every log given is empty".to_string(),
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    if let Some((name, _)) = charts.iter().find(|(name, _)| !names.insert(name.as_str())) {
        return Err(PlotError::SameChart(name.clone()));
    }
    Ok(charts)
}

/// The latency charts of one report's (or merged reports') figures: `STEM-percentiles.svg`
/// and `STEM-histogram.svg`, titled after `source`.
fn latency_charts(
    stem: &str,
    source: &str,
    figures: Vec<LatencyFigures>,
) -> Result<Vec<(String, String)>, PlotError> {
    let label = |f: &LatencyFigures| format!("{} {} {}", f.job, f.ddir.name(), f.kind.name());
    let mut charts = Vec::new();
    let with_percentiles: Vec<(String, Vec<(f64, u64)>)> = figures
        .iter()
        .filter(|f| !f.percentiles.is_empty())
        .map(|f| (label(f), f.percentiles.clone()))
        .collect();
    if !with_percentiles.is_empty() {
        let title = format!("{source}: latency percentiles");
        charts.push((
            format!("{stem}-percentiles.svg"),
            chart::percentiles(&title, &with_percentiles)?,
        ));
    }
    let with_bins: Vec<(String, Vec<(u64, u64)>)> = figures
        .iter()
        .filter(|f| f.bins.iter().any(|b| b.1 > 0))
        .map(|f| (label(f), f.bins.clone()))
        .collect();
    if with_bins.is_empty() {
        eprintln!(
            "uvio: note: {source} has no latency bins (--output-format=json+ has them): no histogram"
        );
    } else {
        let title = format!("{source}: latency histogram");
        charts.push((
            format!("{stem}-histogram.svg"),
            chart::histogram(&title, &with_bins)?,
        ));
    }
    if charts.is_empty() {
        return Err(PlotError::NothingToPlot(format!(
            "{source} has no latency percentiles or bins"
        )));
    }
    Ok(charts)
}

/// One chart of the logs of one prefix and kind: a line per job and data direction.
fn log_chart(prefix: &str, kind: LogKind, logs: &[Log]) -> Result<String, PlotError> {
    // Lines in the log's own units first (latencies in ns); a latency's display unit is
    // picked from what is drawn, after any window means.
    let mut series = Vec::new();
    for log in logs {
        let mut by_ddir: BTreeMap<Ddir, Vec<(f64, f64)>> = BTreeMap::new();
        for s in &log.samples {
            by_ddir
                .entry(s.ddir)
                .or_default()
                .push((s.time_ms as f64 / 1000.0, s.value as f64));
        }
        for (ddir, mut points) in by_ddir {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut label = format!("{} {}", log.job, ddir.name());
            if points.len() > MAX_LINE_POINTS {
                let (means, window_ms) = window_means(&points);
                label += &format!(" (mean per {window_ms} ms)");
                points = means;
            }
            series.push(Series { label, points });
        }
    }
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let unit = LatencyUnit::for_value(max);
    let (what, y_desc, scale): (&str, String, Box<dyn Fn(f64) -> f64>) = match kind {
        LogKind::Iops => ("IOPS", "IOPS".into(), Box::new(|v| v)),
        // fio logs bandwidth in KiB/s.
        LogKind::Bandwidth => (
            "bandwidth",
            "bandwidth (MiB/s)".into(),
            Box::new(|v| v / 1024.0),
        ),
        LogKind::Lat | LogKind::Clat | LogKind::Slat => {
            let name = match kind {
                LogKind::Lat => "total latency (lat)",
                LogKind::Clat => "completion latency (clat)",
                _ => "submission latency (slat)",
            };
            (
                name,
                format!("{} ({})", kind.file_tag(), unit.symbol()),
                Box::new(move |v| unit.of_ns(v)),
            )
        }
    };
    for s in &mut series {
        for p in &mut s.points {
            p.1 = scale(p.1);
        }
    }
    let title = format!("{prefix}: {what} over time");
    chart::over_time(&title, &y_desc, &series)
}

/// More samples than this in one line (a log of every I/O) are drawn as means over time
/// windows, as fio's `log_avg_msec` would have logged them: a line of a million points is
/// an SVG no viewer opens quickly, and no screen shows them apart.
const MAX_LINE_POINTS: usize = 2000;

/// `points` (seconds, value; sorted by time) as the mean of each window of whole
/// milliseconds, the window chosen to leave at most `MAX_LINE_POINTS / 2` of them; each mean
/// sits at its window's end, as fio stamps an averaged sample. Returns the window too.
fn window_means(points: &[(f64, f64)]) -> (Vec<(f64, f64)>, u64) {
    let span_ms = points.last().map_or(0.0, |p| p.0 * 1000.0);
    let window_ms = ((span_ms / (MAX_LINE_POINTS / 2) as f64).ceil() as u64).max(1);
    let mut means = Vec::new();
    let mut window = (0u64, 0.0, 0usize); // (index, sum, count)
    for &(seconds, value) in points {
        let index = (seconds * 1000.0) as u64 / window_ms;
        if index != window.0 && window.2 > 0 {
            let end = ((window.0 + 1) * window_ms) as f64 / 1000.0;
            means.push((end, window.1 / window.2 as f64));
            window = (index, 0.0, 0);
        }
        window.0 = index;
        window.1 += value;
        window.2 += 1;
    }
    if window.2 > 0 {
        let end = ((window.0 + 1) * window_ms) as f64 / 1000.0;
        means.push((end, window.1 / window.2 as f64));
    }
    (means, window_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A real fio output file of `tests/data/plot`.
    pub(crate) fn data(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/plot")
            .join(name)
    }

    /// Every `<text>` of an SVG, in document order.
    fn texts(svg: &str) -> Vec<String> {
        let doc = roxmltree::Document::parse(svg).expect("the chart is well-formed XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap_or_default().trim().to_string())
            .collect()
    }

    fn chart<'a>(charts: &'a [(String, String)], name: &str) -> &'a str {
        let names: Vec<&String> = charts.iter().map(|c| &c.0).collect();
        &charts
            .iter()
            .find(|c| c.0 == name)
            .unwrap_or_else(|| panic!("no {name} among {names:?}"))
            .1
    }

    #[test]
    fn report_gives_percentiles_and_histogram() {
        let charts = charts(&[data("randrw.json")], None).unwrap();
        assert_eq!(charts.len(), 2);
        let p = texts(chart(&charts, "randrw-percentiles.svg"));
        for want in [
            "randrw.json: latency percentiles",
            "percentile (%)",
            "latency (µs, log scale)",
            "randrw read clat",
            "randrw write clat",
            "90",
            "99",
            "99.9",
            "99.99",
            "100",
        ] {
            assert!(p.iter().any(|t| t == want), "no {want:?} in {p:?}");
        }
        let h = texts(chart(&charts, "randrw-histogram.svg"));
        for want in [
            "randrw.json: latency histogram",
            "latency (µs, log scale)",
            "I/Os in the bucket (%)",
            "randrw read clat",
            "randrw write clat",
            "0.1",
            "1",
            "10",
        ] {
            assert!(h.iter().any(|t| t == want), "no {want:?} in {h:?}");
        }
    }

    #[test]
    fn merged_reports_share_their_charts() {
        let files = [data("randrw.json"), data("perio.json")];
        let charts = charts(&files, Some("both")).unwrap();
        let names: Vec<&str> = charts.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(names, ["both-percentiles.svg", "both-histogram.svg"]);
        let p = texts(chart(&charts, "both-percentiles.svg"));
        for want in [
            "both: latency percentiles",
            "randrw read clat",
            "randrw write clat",
            "perio write clat",
        ] {
            assert!(p.iter().any(|t| t == want), "no {want:?} in {p:?}");
        }
        // A job name two reports share is told apart by the report's file name.
        let dir = std::env::temp_dir().join(format!("uvio-plot-merge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let copy = dir.join("second.json");
        std::fs::copy(data("randrw.json"), &copy).unwrap();
        let twice = [data("randrw.json"), data("perio.json"), copy];
        let again = super::charts(&twice, Some("again")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let h = texts(chart(&again, "again-histogram.svg"));
        for want in [
            "randrw.json: randrw read clat",
            "second.json: randrw read clat",
            "perio write clat",
        ] {
            assert!(h.iter().any(|t| t == want), "no {want:?} in {h:?}");
        }
        let e = charts_error(&[data("randrw_iops.1.log")], Some("x"));
        assert_eq!(e, "nothing to plot: --merge x: no JSON report given");
    }

    fn charts_error(files: &[PathBuf], merge: Option<&str>) -> String {
        charts(files, merge).unwrap_err().to_string()
    }

    #[test]
    fn logs_give_one_chart_per_prefix_and_kind() {
        let files: Vec<PathBuf> = [
            "randrw_iops.1.log",
            "randrw_bw.1.log",
            "randrw_clat.1.log",
            "fileread_iops.1.log",
            "fileread_iops.2.log",
        ]
        .iter()
        .map(|f| data(f))
        .collect();
        let charts = charts(&files, None).unwrap();
        let names: Vec<&str> = charts.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "fileread-iops.svg",
                "randrw-iops.svg",
                "randrw-bw.svg",
                "randrw-clat.svg"
            ]
        );
        let iops = texts(chart(&charts, "fileread-iops.svg"));
        for want in [
            "fileread: IOPS over time",
            "time (s)",
            "IOPS",
            "fileread.1 read",
            "fileread.2 read",
        ] {
            assert!(iops.iter().any(|t| t == want), "no {want:?} in {iops:?}");
        }
        // ~20k reads/s and 10k writes/s: the axis reaches past 20k.
        assert!(iops.iter().any(|t| t.ends_with('k')), "{iops:?}");
        let bw = texts(chart(&charts, "randrw-bw.svg"));
        for want in [
            "randrw: bandwidth over time",
            "bandwidth (MiB/s)",
            "randrw.1 read",
            "randrw.1 write",
        ] {
            assert!(bw.iter().any(|t| t == want), "no {want:?} in {bw:?}");
        }
        let clat = texts(chart(&charts, "randrw-clat.svg"));
        for want in ["randrw: completion latency (clat) over time", "clat (µs)"] {
            assert!(clat.iter().any(|t| t == want), "no {want:?} in {clat:?}");
        }
    }

    #[test]
    fn long_per_io_logs_are_drawn_as_window_means() {
        // 10 s of a per-I/O clat log: 5000 I/Os a second, 100 µs each in even seconds and
        // 300 µs in odd ones.
        let mut points: Vec<(f64, f64)> = (0..50_000u64)
            .map(|i| {
                let ms = i / 5;
                (
                    ms as f64 / 1000.0,
                    if (ms / 1000) % 2 == 0 { 100.0 } else { 300.0 },
                )
            })
            .collect();
        // One I/O of 2 ms among them.
        points[7] = (0.001, 2000.0);
        let (means, window_ms) = window_means(&points);
        assert_eq!(window_ms, 10);
        assert_eq!(means.len(), 1000);
        assert_eq!(means[0], (0.01, (49.0 * 100.0 + 2000.0) / 50.0));
        assert_eq!(means[100], (1.01, 300.0));
        assert_eq!(means[999], (10.0, 300.0));
        let dir = std::env::temp_dir().join(format!("uvio-plot-long-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("long_clat.1.log");
        let text: String = points
            .iter()
            .map(|(s, us)| {
                format!(
                    "{}, {}, 0, 4096, 0\n",
                    (s * 1000.0) as u64,
                    *us as u64 * 1000
                )
            })
            .collect();
        std::fs::write(&log, text).unwrap();
        let charts = charts(std::slice::from_ref(&log), None).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let t = texts(chart(&charts, "long-clat.svg"));
        assert!(
            t.iter().any(|t| t == "long.1 read (mean per 10 ms)"),
            "{t:?}"
        );
        assert!(charts[0].1.len() < 200_000, "{} bytes", charts[0].1.len());
    }

    #[test]
    fn bad_inputs_are_errors() {
        // The same report twice would write its charts twice over: refused, nothing written.
        let twice = charts(&[data("randrw.json"), data("randrw.json")], None).unwrap_err();
        assert!(matches!(twice, PlotError::SameChart(_)), "{twice}");
        let missing = charts(&[data("no-such.json")], None).unwrap_err();
        assert!(matches!(missing, PlotError::Read { .. }), "{missing}");
        // A log is not JSON.
        let not_json = charts(&[data("README.md")], None).unwrap_err().to_string();
        assert!(not_json.contains("no JSON object"), "{not_json}");
        let dir = std::env::temp_dir().join(format!("uvio-plot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad_iops.1.log");
        std::fs::write(&bad, "100, 5, 0, 0, 0\n200, 6, 0\n").unwrap();
        let e = charts(std::slice::from_ref(&bad), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bad_iops.1.log, line 2: `200, 6, 0`: 3 fields"),
            "{e}"
        );
        let empty = dir.join("empty_slat.1.log");
        std::fs::write(&empty, "").unwrap();
        let e = charts(&[empty], None).unwrap_err().to_string();
        assert_eq!(e, "nothing to plot: every log given is empty");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
