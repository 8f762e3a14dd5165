//! fio's terse output, version 3 (`--minimal`, `--output-format=terse`): one line of
//! semicolon-separated fields per reported job, in the order of fio 3.33's
//! `show_thread_status_terse_all` and `show_ddir_status_terse` (stat.c; the field names are
//! in fio's HOWTO, "Terse output"): version, fio version, name, group, error; for reads,
//! then writes (version 3 has no trim): KiB, KiB/s, IOPS, runtime ms, slat, clat (min, max
//! in us, mean and deviation as `%f` us), 20 `P%=us` percentiles (`0%=0` when fewer),
//! lat, then bandwidth min, max, percent of the group, mean, deviation (KiB/s); CPU user
//! and system (`%f%%`), context switches, major and minor faults; the 7 I/O depth levels;
//! 10 microsecond and 12 millisecond latency buckets; and the job's description if it has
//! one.
//!
//! fio adds 9 fields per disk when it ran on a kernel block device ("disk util"): uvio
//! drives the device itself, so the kernel keeps no such statistics and there are none, as
//! in fio's own lines for jobs that have no disk.

use std::fmt::Write;

use hdrhistogram::Histogram;

use super::normal::latency_buckets;
use super::{GroupReport, JobReport};
use crate::bench::options::{Ddir, JobOptions};
use crate::bench::stats::{percent, DirStats};

/// fio's `FIO_IO_U_LIST_MAX_LEN`: the percentile fields of each direction.
const PERCENTILE_FIELDS: usize = 20;

/// min, max (us, truncated), mean and deviation (us) of a latency, or zeros without samples
/// (fio's `calc_lat` failing).
fn lat_fields(out: &mut String, h: &Histogram<u64>) {
    if h.is_empty() {
        out.push_str(";0;0;0.000000;0.000000");
    } else {
        let _ = write!(
            out,
            ";{};{};{:.6};{:.6}",
            h.min() / 1000,
            h.max() / 1000,
            h.mean() / 1000.0,
            h.stdev() / 1000.0
        );
    }
}

fn ddir_fields(out: &mut String, s: &DirStats, opts: &JobOptions, group_agg: u64) {
    let runtime = s.runtime_ms();
    let (bw, iops) = match runtime {
        0 => (0, 0),
        ms => ((1000 * s.bytes / ms) / 1024, 1000 * s.ios / ms),
    };
    let _ = write!(out, ";{};{bw};{iops};{runtime}", s.bytes >> 10);
    lat_fields(out, &s.slat);
    lat_fields(out, &s.clat);
    let shown = if opts.lat_percentiles {
        Some(&s.lat)
    } else if opts.clat_percentiles {
        Some(&s.clat)
    } else {
        None
    };
    let list = &opts.percentile_list;
    for i in 0..PERCENTILE_FIELDS {
        match (shown, list.get(i)) {
            (Some(h), Some(p)) if !h.is_empty() => {
                let _ = write!(out, ";{p:.6}%={}", h.value_at_quantile(p / 100.0) / 1000);
            }
            _ => out.push_str(";0%=0"),
        }
    }
    lat_fields(out, &s.lat);
    let b = &s.bw_samples;
    if b.n == 0 {
        out.push_str(";0;0;0.000000%;0.000000;0.000000");
    } else {
        let agg_kib = group_agg / 1024;
        let of_agg = if agg_kib > 0 {
            (b.mean * 100.0 / agg_kib as f64).min(100.0)
        } else {
            100.0
        };
        let _ = write!(
            out,
            ";{};{};{of_agg:.6}%;{:.6};{:.6}",
            b.min as u64,
            b.max as u64,
            b.mean,
            b.stddev()
        );
    }
}

/// One job's terse line (version 3), newline included.
pub fn job_line(job: &JobReport, group: &GroupReport) -> String {
    let s = &job.stats;
    let mut out = format!(
        "3;uvio-{};{};{};{}",
        env!("CARGO_PKG_VERSION"),
        job.name,
        group.id,
        s.error
    );
    for d in [Ddir::Read, Ddir::Write] {
        ddir_fields(&mut out, s.dir(d), &job.opts, group.agg_bw(d));
    }
    let runtime_ms = s.job_runtime.as_millis() as f64;
    let cpu = |t: std::time::Duration| {
        if runtime_ms > 0.0 {
            t.as_millis() as f64 * 100.0 / runtime_ms
        } else {
            0.0
        }
    };
    let _ = write!(
        out,
        ";{:.6}%;{:.6}%;{};{};{}",
        cpu(s.cpu.user),
        cpu(s.cpu.system),
        s.cpu.ctx,
        s.cpu.majflt,
        s.cpu.minflt
    );
    let depth_total: u64 = s.io_depth.iter().sum();
    for c in s.io_depth {
        let _ = write!(out, ";{:3.1}%", percent(c, depth_total));
    }
    let (n, mut u, m) = latency_buckets(&s.all_lat());
    // fio's `stat_calc_lat_nu`: the nanosecond buckets count in the first microsecond one.
    u[0] += n.iter().sum::<f64>();
    for v in u.iter().chain(&m) {
        let _ = write!(out, ";{v:3.2}%");
    }
    if let Some(d) = job.opts.description.as_deref().filter(|d| !d.is_empty()) {
        let _ = write!(out, ";{d}");
    }
    out.push('\n');
    out
}

/// Every reported job's line, group by group.
pub fn render(groups: &[GroupReport]) -> String {
    groups
        .iter()
        .flat_map(|g| g.jobs.iter().map(move |j| job_line(j, g)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::JobStats;
    use std::sync::Arc;
    use std::time::Duration;

    fn report(description: Option<&str>) -> GroupReport {
        let opts = JobOptions {
            name: "t".into(),
            description: description.map(str::to_string),
            ..JobOptions::default()
        };
        let mut stats = JobStats::default();
        let r = &mut stats.dirs[0];
        // 1000 reads of 4 KiB: slat 2 us, clat 49 us (lat 51 us), 10 of them 3 ms (values
        // the histogram holds exactly).
        for i in 0..1000u64 {
            let clat = if i < 10 { 3_000_000 } else { 49_152 };
            r.record(4096, 2_048, clat);
        }
        r.runtime = Duration::from_millis(500);
        r.bw_samples.add(8000.0);
        r.bw_samples.add(8000.0);
        stats.io_depth[0] = 1000;
        stats.job_runtime = Duration::from_millis(500);
        stats.cpu.user = Duration::from_millis(250);
        stats.cpu.ctx = 7;
        GroupReport {
            id: 2,
            jobs: vec![JobReport {
                name: "t".into(),
                opts: Arc::new(opts),
                filename: "0000:00:05.0".into(),
                stats,
                start_secs: 0,
                start_ms: 0,
            }],
            global: Vec::new(),
            elapsed: Duration::from_millis(500),
        }
    }

    #[test]
    fn version_3_has_fios_fields_in_fios_places() {
        let g = report(None);
        let line = job_line(&g.jobs[0], &g);
        assert!(line.ends_with('\n'));
        let f: Vec<&str> = line.trim_end().split(';').collect();
        // HOWTO's v3 field list, less the 9 disk util fields: 5 + 2 x 41 + 5 + 7 + 10 + 12.
        assert_eq!(f.len(), 121, "{line}");
        assert_eq!(
            &f[..5],
            [
                "3",
                &format!("uvio-{}", env!("CARGO_PKG_VERSION")),
                "t",
                "2",
                "0"
            ]
        );
        // read_kb, read_bandwidth_kb, read_iops, read_runtime_ms.
        assert_eq!(&f[5..9], ["4000", "8000", "2000", "500"]);
        // slat (us): min, max, mean, dev.
        assert_eq!(&f[9..11], ["2", "2"]);
        assert_eq!(f[11].parse::<f64>().unwrap().round(), 2.0);
        // clat: min 49 us, max 3 ms.
        assert_eq!(f[13], "49");
        assert_eq!(f[14].parse::<u64>().unwrap() / 10, 300);
        // Percentiles: fio's default list of 17, then 3 empty ones; p99.5 = 3 ms.
        assert_eq!(f[17], "1.000000%=49");
        assert_eq!(f[17 + 12], "99.000000%=49");
        assert!(f[17 + 13].starts_with("99.500000%=30"), "{}", f[30]);
        assert_eq!(&f[34..37], ["0%=0", "0%=0", "0%=0"]);
        // lat min 51 us; bw min, max, % of the group, mean, dev.
        assert_eq!(f[37], "51");
        assert_eq!(
            &f[41..46],
            ["8000", "8000", "100.000000%", "8000.000000", "0.000000"]
        );
        // Writes: nothing.
        assert_eq!(&f[46..50], ["0", "0", "0", "0"]);
        assert_eq!(f[50], "0");
        // CPU: 250 ms of 500: 50% user; 7 context switches.
        assert_eq!(&f[87..90], ["50.000000%", "0.000000%", "7"]);
        // Depth 1: 100%.
        assert_eq!(
            &f[92..99],
            ["100.0%", "0.0%", "0.0%", "0.0%", "0.0%", "0.0%", "0.0%"]
        );
        // lat_100us (51 us: the "100" bucket, index 5): 99%; lat_4ms: 1%.
        assert_eq!(f[99 + 5], "99.00%");
        assert_eq!(f[109 + 1], "1.00%");
        // A description is one more field.
        let g = report(Some("my job"));
        let f: Vec<String> = job_line(&g.jobs[0], &g)
            .trim_end()
            .split(';')
            .map(String::from)
            .collect();
        assert_eq!((f.len(), f[121].as_str()), (122, "my job"));
    }
}
