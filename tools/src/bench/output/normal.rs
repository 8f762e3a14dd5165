//! fio's normal (human) output: the start-up lines, the per-job block (IOPS/BW, slat/clat/lat,
//! the slat/clat/lat percentiles `*_percentiles` ask for, bw/iops samples, latency distribution, cpu, IO depths, issued) and the
//! "Run status group" summary. No "Disk stats" section: there is no kernel block device.

use std::fmt::Write;

use hdrhistogram::Histogram;

use super::format::{bw_pair, ctime, latency_unit, num2str, percentile_unit, Unit};
use super::{GroupReport, JobReport};
use crate::bench::options::{Ddir, JobOptions};
use crate::bench::stats::{percent, DirStats, JobStats, BATCH_KEYS, DEPTH_KEYS};

/// The line fio prints for each job when it starts.
pub fn job_start_line(opts: &JobOptions, groupid: usize, depth: u32) -> String {
    let range = |d: Ddir| {
        let b = opts.block_sizes(d);
        format!(
            "{}-{}",
            num2str(b.min(), 4, true, Unit::Byte),
            num2str(b.max(), 4, true, Unit::Byte)
        )
    };
    format!(
        "{}: (g={groupid}): rw={}, bs=(R) {}, (W) {}, (T) {}, ioengine=uvio, iodepth={depth}\n",
        opts.name,
        opts.rw.name(),
        range(Ddir::Read),
        range(Ddir::Write),
        range(Ddir::Trim)
    )
}

fn lat_line(out: &mut String, name: &str, h: &Histogram<u64>) {
    if h.is_empty() {
        return;
    }
    let (unit, div) = latency_unit(h.min(), h.max(), h.stdev());
    let scale = |v: u64| (v as f64 / div) as u64;
    let _ = writeln!(
        out,
        "    {name} ({unit}): min={}, max={}, avg={:5.02}, stdev={:5.02}",
        num2str(scale(h.min()), 6, false, Unit::None),
        num2str(scale(h.max()), 6, false, Unit::None),
        h.mean() / div,
        h.stdev() / div
    );
}

/// Decimal places fio uses for the percentile labels: the most any listed value needs.
fn precision(list: &[f64]) -> usize {
    list.iter()
        .map(|p| {
            let s = format!("{p}");
            s.split_once('.').map_or(0, |(_, f)| f.len())
        })
        .max()
        .unwrap_or(0)
}

fn percentiles(out: &mut String, name: &str, h: &Histogram<u64>, list: &[f64]) {
    if h.is_empty() || list.is_empty() {
        return;
    }
    let values: Vec<u64> = list
        .iter()
        .map(|p| h.value_at_quantile(p / 100.0))
        .collect();
    let minv = values.iter().copied().min().unwrap_or(0);
    let maxv = values.iter().copied().max().unwrap_or(0);
    let (unit, scale_down) = percentile_unit(minv, maxv);
    let divisor = 1000u64.pow(scale_down);
    let prec = precision(list);
    let width = 5.max(((maxv / divisor).max(1) as f64).log10() as usize + 1);
    let per_line = (80 - 7) / (prec + 10 + width);
    let _ = write!(out, "    {name} percentiles ({unit}):\n     |");
    for (j, (p, v)) in list.iter().zip(&values).enumerate() {
        if j != 0 && j % per_line == 0 {
            out.push_str("     |");
        }
        let mut v = *v;
        for _ in 0..scale_down {
            v = v.div_ceil(1000);
        }
        let last = j == list.len() - 1;
        let _ = write!(
            out,
            " {:>w$.prec$}th=[{:>width$}]{}",
            p,
            v,
            if last { '\n' } else { ',' },
            w = prec + 3,
        );
        if !last && j % per_line == per_line - 1 {
            out.push('\n');
        }
    }
}

fn ddir_block(out: &mut String, d: Ddir, s: &DirStats, opts: &JobOptions, group_agg: u64) {
    let bw = s.bw_bytes();
    let (bw_bin, bw_dec) = bw_pair(bw);
    let iops = if s.runtime_ms() > 0 {
        s.ios * 1000 / s.runtime_ms()
    } else {
        0
    };
    let _ = writeln!(
        out,
        "  {}: IOPS={}, BW={bw_bin} ({bw_dec})({}/{}msec)",
        d.name(),
        num2str(iops, 4, false, Unit::None),
        num2str(s.bytes, 4, true, Unit::Byte),
        s.runtime_ms()
    );
    lat_line(out, "slat", &s.slat);
    lat_line(out, "clat", &s.clat);
    lat_line(out, " lat", &s.lat);
    // fio's order: slat, clat, then lat percentiles, each when its option asks for it.
    let list = &opts.percentile_list;
    if opts.slat_percentiles {
        percentiles(out, "slat", &s.slat, list);
    }
    if opts.clat_percentiles {
        percentiles(out, "clat", &s.clat, list);
    }
    if opts.lat_percentiles {
        percentiles(out, "lat", &s.lat, list);
    }
    let b = &s.bw_samples;
    if b.n > 0 {
        let mut scale = 1.0;
        let mut unit = "KiB";
        if b.mean > 1024.0 * 1024.0 {
            scale = 1024.0;
            unit = "MiB";
        }
        let per = if group_agg > 0 {
            (b.mean * 100.0 / (group_agg as f64 / 1024.0)).min(100.0)
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "   bw ({unit:>5}/s): min={:5}, max={:5}, per={per:3.2}%, avg={:5.02}, stdev={:5.02}, samples={}",
            (b.min / scale) as u64,
            (b.max / scale) as u64,
            b.mean / scale,
            b.stddev() / scale,
            b.n
        );
        let i = &s.iops_samples;
        let _ = writeln!(
            out,
            "   iops        : min={:5}, max={:5}, avg={:5.02}, stdev={:5.02}, samples={}",
            i.min as u64,
            i.max as u64,
            i.mean,
            i.stddev(),
            i.n
        );
    }
}

/// fio's latency distribution buckets: (unit, lower bound in ns of the unit, labels).
const LAT_LABELS: [&str; 10] = [
    "2", "4", "10", "20", "50", "100", "250", "500", "750", "1000",
];
const LAT_MS_LABELS: [&str; 12] = [
    "2", "4", "10", "20", "50", "100", "250", "500", "750", "1000", "2000", ">=2000",
];

/// Percent of I/Os per fio latency bucket: nsec, usec and msec groups (stat.c `show_lat`).
pub fn latency_buckets(h: &Histogram<u64>) -> ([f64; 10], [f64; 10], [f64; 12]) {
    let mut n = [0u64; 10];
    let mut u = [0u64; 10];
    let mut m = [0u64; 12];
    let bucket = |v: u64| -> usize {
        match v {
            0..=1 => 0,
            2..=3 => 1,
            4..=9 => 2,
            10..=19 => 3,
            20..=49 => 4,
            50..=99 => 5,
            100..=249 => 6,
            250..=499 => 7,
            500..=749 => 8,
            _ => 9,
        }
    };
    for v in h.iter_recorded() {
        let ns = h.median_equivalent(v.value_iterated_to());
        let c = v.count_at_value();
        if ns < 1000 {
            n[bucket(ns)] += c;
        } else if ns < 1_000_000 {
            u[bucket(ns / 1000)] += c;
        } else {
            let ms = ns / 1_000_000;
            let i = match ms {
                0..=999 => bucket(ms),
                1000..=1999 => 10,
                _ => 11,
            };
            m[i] += c;
        }
    }
    let total = h.len();
    let pct = |c: u64| {
        let p = percent(c, total);
        if p > 0.0 && p < 0.01 {
            0.01
        } else {
            p
        }
    };
    (n.map(pct), u.map(pct), m.map(pct))
}

fn lat_distribution(out: &mut String, h: &Histogram<u64>) {
    let (n, u, m) = latency_buckets(h);
    let groups: [(&str, &[f64], &[&str]); 3] = [
        ("nsec", &n, &LAT_LABELS),
        ("usec", &u, &LAT_LABELS),
        ("msec", &m, &LAT_MS_LABELS),
    ];
    for (unit, values, labels) in groups {
        let mut line = 0;
        let mut shown = false;
        for (v, label) in values.iter().zip(labels.iter()) {
            if *v <= 0.0 {
                continue;
            }
            if line == 0 {
                if shown {
                    out.push('\n');
                }
                let _ = write!(out, "  lat ({unit})   : ");
            } else {
                out.push_str(", ");
            }
            shown = true;
            let _ = write!(out, "{label}={v:3.2}%");
            line += 1;
            if line == 5 {
                line = 0;
            }
        }
        if shown {
            out.push('\n');
        }
    }
}

fn map_line(out: &mut String, label: &str, keys: &[&str; 7], counts: &[u64; 7], total: u64) {
    let _ = write!(out, "{label}: ");
    for (i, (k, c)) in keys.iter().zip(counts).enumerate() {
        let mut p = percent(*c, total);
        if p > 0.0 && p < 0.1 {
            p = 0.1;
        }
        let sep = if i + 1 == keys.len() { "\n" } else { ", " };
        let _ = write!(out, "{k}={p:3.1}%{sep}");
    }
}

/// The per-job block.
pub fn job_block(out: &mut String, job: &JobReport, group: &GroupReport) {
    let s: &JobStats = &job.stats;
    let err = if s.error != 0 {
        format!("err={:2} ({})", s.error, errno_name(s.error))
    } else {
        format!("err={:2}", 0)
    };
    let _ = writeln!(
        out,
        "{}: (groupid={}, jobs={}): {err}: pid={}: {}",
        job.name,
        group.id,
        s.clones,
        s.tid,
        ctime(job.start_secs)
    );
    if let Some(desc) = &job.opts.description {
        let _ = writeln!(out, "  Description  : [{desc}]");
    }
    for d in Ddir::ALL {
        let ds = s.dir(d);
        if ds.ios > 0 || (job.opts.rw.has(d) && ds.runtime_ms() > 0) {
            ddir_block(out, d, ds, &job.opts, group.agg_bw(d));
        }
    }
    lat_distribution(out, &s.all_lat());
    let rt = s.job_runtime.as_secs_f64();
    let cpu_pct = |t: std::time::Duration| {
        if rt > 0.0 {
            t.as_secs_f64() * 100.0 / rt
        } else {
            0.0
        }
    };
    let _ = writeln!(
        out,
        "  cpu          : usr={:3.2}%, sys={:3.2}%, ctx={}, majf={}, minf={}",
        cpu_pct(s.cpu.user),
        cpu_pct(s.cpu.system),
        s.cpu.ctx,
        s.cpu.majflt,
        s.cpu.minflt
    );
    let depth_total: u64 = s.io_depth.iter().sum();
    map_line(
        out,
        "  IO depths    ",
        &DEPTH_KEYS,
        &s.io_depth,
        depth_total,
    );
    map_line(
        out,
        "     submit    ",
        &BATCH_KEYS,
        &s.submit,
        s.submit_calls,
    );
    map_line(
        out,
        "     complete  ",
        &BATCH_KEYS,
        &s.complete,
        s.complete_calls,
    );
    let ios = |d: Ddir| s.dir(d).ios;
    let _ = writeln!(
        out,
        "     issued rwts: total={},{},{},0 short=0,0,0,0 dropped=0,0,0,0",
        ios(Ddir::Read),
        ios(Ddir::Write),
        ios(Ddir::Trim)
    );
    let _ = writeln!(
        out,
        "     latency   : target=0, window=0, percentile=100.00%, depth={}",
        s.depth
    );
    if job.opts.verify.is_some() {
        let _ = writeln!(
            out,
            "     verify    : blocks={}, bad={}",
            s.verified, s.verify_failures
        );
        if let Some(bad) = &s.first_bad_block {
            let _ = writeln!(out, "     first bad : {bad}");
        }
    }
    if let Some(e) = &s.first_error {
        let errors: u64 = s.dirs.iter().map(|d| d.errors).sum();
        let _ = writeln!(
            out,
            "     errors    : total={errors}, first_error={}/<{e}>",
            s.error
        );
    }
    let _ = writeln!(
        out,
        "     uvio      : device={}, hw_queue={}, ring={}, in flight={}{}, notifications={}/{} requests, clock={}, cpu={}{}",
        job.filename,
        s.hw_queue,
        s.ring,
        s.depth,
        match (s.prepared, s.waiting) {
            (0, 0) => String::new(),
            (p, 0) => format!(" (+{p} prepared ahead)"),
            (p, w) => format!(" (+{p} prepared ahead, +{w} waiting for a tag)"),
        },
        s.queue_notifications,
        s.queue_requests,
        s.clock,
        s.cpu_pinned.map_or("-".to_string(), |c| c.to_string()),
        if s.shared_queue {
            " (shared with other jobs: fewer queues than jobs)"
        } else {
            ""
        }
    );
    if s.queue_stalls > 0 {
        let _ = writeln!(
            out,
            "     stalls    : {} epochs of 100 ms with requests at the device and none completed \
             (a doorbell rung again each time)",
            s.queue_stalls
        );
    }
    if s.clock != "tsc" {
        let _ = writeln!(
            out,
            "     note      : {}",
            crate::bench::clock::not_tsc_note()
        );
    }
}

/// fio's name for the errnos a job can end with.
pub fn errno_name(e: i32) -> &'static str {
    match e {
        5 => "Input/output error",
        84 => "Invalid or incomplete multibyte or wide character",
        110 => "Connection timed out",
        _ => "error",
    }
}

/// The "Run status group" summary.
pub fn group_summary(out: &mut String, group: &GroupReport) {
    let _ = write!(out, "\nRun status group {} (all jobs):\n", group.id);
    for d in Ddir::ALL {
        let jobs: Vec<&DirStats> = group
            .jobs
            .iter()
            .map(|j| j.stats.dir(d))
            .filter(|s| s.ios > 0)
            .collect();
        if jobs.is_empty() {
            continue;
        }
        let bytes: u64 = jobs.iter().map(|s| s.bytes).sum();
        let agg = group.agg_bw(d);
        let min_bw = jobs.iter().map(|s| s.bw_bytes()).min().unwrap_or(0);
        let max_bw = jobs.iter().map(|s| s.bw_bytes()).max().unwrap_or(0);
        let min_rt = jobs.iter().map(|s| s.runtime_ms()).min().unwrap_or(0);
        let max_rt = jobs.iter().map(|s| s.runtime_ms()).max().unwrap_or(0);
        let (agg_b, agg_d) = bw_pair(agg);
        let (min_b, min_d) = bw_pair(min_bw);
        let (max_b, max_d) = bw_pair(max_bw);
        let label = match d {
            Ddir::Read => "   READ",
            Ddir::Write => "  WRITE",
            Ddir::Trim => "   TRIM",
        };
        let _ = writeln!(
            out,
            "{label}: bw={agg_b} ({agg_d}), {min_b}-{max_b} ({min_d}-{max_d}), io={} ({}), run={min_rt}-{max_rt}msec",
            num2str(bytes, 4, true, Unit::Byte),
            num2str(bytes, 4, false, Unit::Byte),
        );
    }
}

/// Everything after the run: each job's block, then the group summaries.
pub fn render(groups: &[GroupReport]) -> String {
    let mut out = String::new();
    for g in groups {
        for job in &g.jobs {
            job_block(&mut out, job, g);
        }
    }
    for g in groups {
        group_summary(&mut out, g);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::new_histogram;

    #[test]
    fn percentile_block_has_fio_layout() {
        let mut h = new_histogram();
        for v in 300_000..420_000u64 {
            h.record(v).unwrap();
        }
        let mut out = String::new();
        let list = crate::bench::options::DEFAULT_PERCENTILES;
        percentiles(&mut out, "clat", &h, &list);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "    clat percentiles (usec):");
        assert!(
            lines[1].starts_with("     |  1.00th=[  302],  5.00th=[  307],"),
            "{out}"
        );
        assert_eq!(lines.len(), 6, "{out}");
        assert!(lines[5].starts_with("     | 99.99th=["), "{out}");
        assert!(out.ends_with("]\n"));
    }

    #[test]
    fn percentile_blocks_follow_the_three_switches_in_fios_order() {
        let mut s = DirStats::default();
        for i in 0..1000u64 {
            // slat 3-103 us, clat 150-250 us, lat 153-353 us.
            s.record(4096, 3_000 + i * 100, 150_000 + i * 100);
        }
        s.runtime = std::time::Duration::from_secs(1);
        let mut opts = JobOptions::default();
        let block = |opts: &JobOptions| {
            let mut out = String::new();
            ddir_block(&mut out, Ddir::Read, &s, opts, 0);
            out.lines()
                .filter(|l| l.contains("percentiles"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(block(&opts), ["    clat percentiles (usec):"]);
        opts.set("slat_percentiles", Some("1")).unwrap();
        opts.set("lat_percentiles", Some("1")).unwrap();
        assert_eq!(
            block(&opts),
            [
                "    slat percentiles (usec):",
                "    clat percentiles (usec):",
                "    lat percentiles (usec):"
            ]
        );
        opts.set("clat_percentiles", Some("0")).unwrap();
        opts.set("slat_percentiles", Some("0")).unwrap();
        let mut out = String::new();
        ddir_block(&mut out, Ddir::Read, &s, &opts, 0);
        // lat's own figures: its 1st percentile is past clat's 150 us.
        assert!(
            out.contains("    lat percentiles (usec):\n     |  1.00th=[  155],"),
            "{out}"
        );
        assert!(!out.contains("clat percentiles"), "{out}");
    }

    #[test]
    fn latency_distribution_lines() {
        let mut h = new_histogram();
        h.record_n(150_000, 90).unwrap();
        h.record_n(600_000, 10).unwrap();
        h.record_n(3_000_000, 1).unwrap();
        let mut out = String::new();
        lat_distribution(&mut out, &h);
        assert_eq!(
            out,
            "  lat (usec)   : 250=89.11%, 750=9.90%\n  lat (msec)   : 4=0.99%\n"
        );
    }
}
