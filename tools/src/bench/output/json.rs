//! fio-compatible JSON (`--output-format=json`) and JSON+ (`json+`: latency `bins` too).
//!
//! Keys, nesting and units follow fio 3.x: `jobs[]` with `jobname`, `job options` (always with
//! `rw`, `bs`, `iodepth`, `numjobs`, `ioengine`), `read`/`write`/`trim` (always all three) and
//! `sync`, `io_bytes`, `bw` in KiB/s, `bw_bytes`, `iops`, `runtime` in ms, `total_ios`,
//! `slat_ns`/`clat_ns`/`lat_ns` with `min/max/mean/stddev/N`, and `percentile` (json+: `bins`)
//! on each that `slat_percentiles`/`clat_percentiles` (the default)/`lat_percentiles` ask for, plus
//! `uvio version` at the top and a `uvio` object per job. No NaN is ever emitted.

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use super::format::{ctime, size_option};
use super::normal::latency_buckets;
use super::{GroupReport, JobReport};
use crate::bench::options::{BlockSizes, Ddir, JobOptions};
use crate::bench::stats::{percent, DirStats, BATCH_KEYS, DEPTH_KEYS};

fn num(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        json!(0.0)
    }
}

fn latency(h: &Histogram<u64>, percentiles: Option<&[f64]>, bins: bool) -> Value {
    let mut o = Map::new();
    let empty = h.is_empty();
    o.insert("min".into(), json!(if empty { 0 } else { h.min() }));
    o.insert("max".into(), json!(if empty { 0 } else { h.max() }));
    o.insert("mean".into(), num(if empty { 0.0 } else { h.mean() }));
    o.insert("stddev".into(), num(if empty { 0.0 } else { h.stdev() }));
    o.insert("N".into(), json!(h.len()));
    if let (Some(list), false) = (percentiles, empty) {
        let mut p = Map::new();
        for q in list {
            p.insert(format!("{q:.6}"), json!(h.value_at_quantile(q / 100.0)));
        }
        o.insert("percentile".into(), Value::Object(p));
        if bins {
            o.insert("bins".into(), fio_bins(h));
        }
    }
    Value::Object(o)
}

/// fio's latency buckets (stat.c): values below 128 ns exactly, then 64 buckets per power
/// of two, 29 groups in all.
const FIO_PLAT_BITS: u32 = 6;
const FIO_PLAT_VAL: u64 = 1 << FIO_PLAT_BITS;
pub(crate) const FIO_PLAT_NR: u64 = 29 * FIO_PLAT_VAL;

/// fio's `plat_val_to_idx`: the bucket of a latency in ns.
pub(crate) fn fio_plat_index(value: u64) -> u64 {
    let msb = value.checked_ilog2().unwrap_or(0);
    if msb <= FIO_PLAT_BITS {
        return value;
    }
    let error_bits = msb - FIO_PLAT_BITS;
    let base = u64::from(error_bits + 1) << FIO_PLAT_BITS;
    let offset = (FIO_PLAT_VAL - 1) & (value >> error_bits);
    (base + offset).min(FIO_PLAT_NR - 1)
}

/// fio's `plat_idx_to_val`: the middle of a bucket, the key json+ prints for it.
fn fio_plat_value(index: u64) -> u64 {
    if index < FIO_PLAT_VAL << 1 {
        return index;
    }
    let error_bits = (index >> FIO_PLAT_BITS) - 1;
    let base = 1u64 << (error_bits + u64::from(FIO_PLAT_BITS));
    let k = index % FIO_PLAT_VAL;
    // fio computes base + (k + 0.5) * 2^error_bits; error_bits >= 1 here, so it is exact.
    base + (k << error_bits) + (1 << (error_bits - 1))
}

/// json+ `bins`: sample counts in fio's buckets, keyed as fio keys them, so fio's own
/// json+ tools (fio_jsonplus_clat2csv, fiologparser) read them. The histogram's buckets
/// are finer than fio's, so each lands in one of fio's.
fn fio_bins(h: &Histogram<u64>) -> Value {
    let mut counts: std::collections::BTreeMap<u64, u64> = std::collections::BTreeMap::new();
    for v in h.iter_recorded() {
        let sample = h.median_equivalent(v.value_iterated_to());
        *counts.entry(fio_plat_index(sample)).or_default() += v.count_at_value();
    }
    let mut bins = Map::new();
    for (index, count) in counts {
        bins.insert(fio_plat_value(index).to_string(), json!(count));
    }
    Value::Object(bins)
}

fn ddir(s: &DirStats, opts: &JobOptions, group_agg: u64, bins: bool) -> Value {
    let bw_kib = s.bw_bytes() / 1024;
    let b = &s.bw_samples;
    let i = &s.iops_samples;
    let list = opts.percentile_list.as_slice();
    let agg = if group_agg > 0 {
        (b.mean * 100.0 / (group_agg as f64 / 1024.0)).min(100.0)
    } else {
        0.0
    };
    json!({
        "io_bytes": s.bytes,
        "io_kbytes": s.bytes >> 10,
        "bw_bytes": s.bw_bytes(),
        "bw": bw_kib,
        "iops": num(s.iops()),
        "runtime": s.runtime_ms(),
        "total_ios": s.ios,
        "short_ios": 0,
        "drop_ios": 0,
        "slat_ns": latency(&s.slat, opts.slat_percentiles.then_some(list), bins),
        "clat_ns": latency(&s.clat, opts.clat_percentiles.then_some(list), bins),
        "lat_ns": latency(&s.lat, opts.lat_percentiles.then_some(list), bins),
        "bw_min": b.min as u64,
        "bw_max": b.max as u64,
        "bw_agg": num(agg),
        "bw_mean": num(b.mean),
        "bw_dev": num(b.stddev()),
        "bw_samples": b.n,
        "iops_min": i.min as u64,
        "iops_max": i.max as u64,
        "iops_mean": num(i.mean),
        "iops_stddev": num(i.stddev()),
        "iops_samples": i.n,
        "errors": s.errors,
    })
}

fn bs_option(opts: &JobOptions) -> String {
    let one = |d: Ddir| match opts.block_sizes(d) {
        BlockSizes::Fixed(b) => size_option(b),
        BlockSizes::Range(lo, hi) => format!("{}-{}", size_option(lo), size_option(hi)),
        BlockSizes::Split(v) => v
            .iter()
            .map(|(b, p)| format!("{}/{p}", size_option(*b)))
            .collect::<Vec<_>>()
            .join(":"),
    };
    let (r, w, t) = (one(Ddir::Read), one(Ddir::Write), one(Ddir::Trim));
    if r == w && w == t {
        r
    } else {
        format!("{r},{w},{t}")
    }
}

/// `job options`: what the job set, plus the options consumers always need.
fn job_options(job: &JobReport) -> Value {
    let o = &job.opts;
    let mut m = Map::new();
    m.insert("name".into(), json!(o.name));
    for (k, v) in &o.explicit {
        m.insert(k.clone(), json!(v));
    }
    let always = [
        ("rw", o.rw.name().to_string()),
        ("bs", bs_option(o)),
        ("iodepth", o.iodepth.to_string()),
        ("numjobs", o.numjobs.to_string()),
        ("ioengine", "uvio".to_string()),
    ];
    for (k, v) in always {
        m.entry(k.to_string()).or_insert_with(|| json!(v));
    }
    Value::Object(m)
}

fn map7(keys: &[&str; 7], counts: &[u64; 7], total: u64) -> Value {
    let mut m = Map::new();
    for (k, c) in keys.iter().zip(counts) {
        m.insert((*k).to_string(), num(percent(*c, total)));
    }
    Value::Object(m)
}

fn lat_map(labels: &[&str], values: &[f64]) -> Value {
    let mut m = Map::new();
    for (k, v) in labels.iter().zip(values) {
        m.insert((*k).to_string(), num(*v));
    }
    Value::Object(m)
}

fn job(job: &JobReport, group: &GroupReport, bins: bool) -> Value {
    let s = &job.stats;
    let rt = s.job_runtime.as_secs_f64();
    let cpu = |t: std::time::Duration| {
        if rt > 0.0 {
            t.as_secs_f64() * 100.0 / rt
        } else {
            0.0
        }
    };
    let (n, u, ms) = latency_buckets(&s.all_lat());
    let labels = [
        "2", "4", "10", "20", "50", "100", "250", "500", "750", "1000",
    ];
    let ms_labels = [
        "2", "4", "10", "20", "50", "100", "250", "500", "750", "1000", "2000", ">=2000",
    ];
    let mut o = Map::new();
    o.insert("jobname".into(), json!(job.name));
    o.insert("groupid".into(), json!(group.id));
    o.insert("job_start".into(), json!(job.start_ms));
    o.insert("error".into(), json!(s.error));
    o.insert("eta".into(), json!(0));
    o.insert("elapsed".into(), json!(group.elapsed.as_secs()));
    o.insert("job options".into(), job_options(job));
    for d in Ddir::ALL {
        o.insert(
            d.name().into(),
            ddir(s.dir(d), &job.opts, group.agg_bw(d), bins),
        );
    }
    o.insert(
        "sync".into(),
        json!({"total_ios": 0, "lat_ns": latency(&crate::bench::stats::new_histogram(), None, false)}),
    );
    o.insert(
        "job_runtime".into(),
        json!(s.job_runtime.as_millis() as u64),
    );
    o.insert("usr_cpu".into(), num(cpu(s.cpu.user)));
    o.insert("sys_cpu".into(), num(cpu(s.cpu.system)));
    o.insert("ctx".into(), json!(s.cpu.ctx));
    o.insert("majf".into(), json!(s.cpu.majflt));
    o.insert("minf".into(), json!(s.cpu.minflt));
    let depth_total: u64 = s.io_depth.iter().sum();
    o.insert(
        "iodepth_level".into(),
        map7(&DEPTH_KEYS, &s.io_depth, depth_total),
    );
    o.insert(
        "iodepth_submit".into(),
        map7(&BATCH_KEYS, &s.submit, s.submit_calls),
    );
    o.insert(
        "iodepth_complete".into(),
        map7(&BATCH_KEYS, &s.complete, s.complete_calls),
    );
    o.insert("latency_ns".into(), lat_map(&labels, &n));
    o.insert("latency_us".into(), lat_map(&labels, &u));
    o.insert("latency_ms".into(), lat_map(&ms_labels, &ms));
    o.insert("latency_depth".into(), json!(s.depth));
    o.insert("latency_target".into(), json!(0));
    o.insert("latency_target_ns".into(), json!(0));
    o.insert("latency_percentile".into(), num(100.0));
    o.insert("latency_window".into(), json!(0));
    o.insert("latency_window_us".into(), json!(0));
    let bad = s.first_bad_block.as_ref().map(|b| {
        json!({
            "offset": b.offset,
            "length": b.len,
            "what": b.what,
            "expected": b.expected,
            "found": b.found,
        })
    });
    o.insert(
        "uvio".into(),
        json!({
            "filename": job.filename,
            "hw_queue": s.hw_queue,
            "shared_queue": s.shared_queue,
            "ring": s.ring,
            "in_flight": s.depth,
            "prepared": s.prepared,
            "waiting": s.waiting,
            "clock": s.clock,
            "clock_note": (s.clock != "tsc").then(crate::bench::clock::not_tsc_note),
            "queue_requests": s.queue_requests,
            "queue_notifications": s.queue_notifications,
            "queue_stalls": s.queue_stalls,
            "cpu": s.cpu_pinned,
            "first_error": s.first_error,
            "verify": {
                "blocks_verified": s.verified,
                "bad_blocks": s.verify_failures,
                "first_bad_block": bad,
            },
        }),
    );
    Value::Object(o)
}

/// The whole JSON document for a run.
pub fn render(groups: &[GroupReport], plus: bool, start_secs: i64, start_ms: u64) -> Value {
    let mut top = Map::new();
    top.insert(
        "fio version".into(),
        json!(format!("uvio-{}", env!("CARGO_PKG_VERSION"))),
    );
    top.insert("uvio version".into(), json!(env!("CARGO_PKG_VERSION")));
    top.insert("timestamp".into(), json!(start_secs));
    top.insert("timestamp_ms".into(), json!(start_ms));
    top.insert("time".into(), json!(ctime(start_secs)));
    if let Some(g) = groups.first().filter(|g| !g.global.is_empty()) {
        let mut m = Map::new();
        for (k, v) in &g.global {
            m.insert(k.clone(), json!(v));
        }
        top.insert("global options".into(), Value::Object(m));
    }
    let jobs: Vec<Value> = groups
        .iter()
        .flat_map(|g| g.jobs.iter().map(move |j| job(j, g, plus)))
        .collect();
    top.insert("jobs".into(), Value::Array(jobs));
    Value::Object(top)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::bench::jobfile::parse_args;
    use crate::bench::stats::JobStats;

    #[test]
    fn latency_buckets_are_fios() {
        // Below 128 ns a bucket per ns; then 64 per power of two, keyed by their middle.
        assert_eq!((fio_plat_index(0), fio_plat_index(127)), (0, 127));
        assert_eq!(fio_plat_index(128), 128);
        assert_eq!(fio_plat_value(128), 129);
        // 1000 ns: msb 9, 3 error bits, bucket [1000, 1008).
        assert_eq!(fio_plat_index(1000), 317);
        assert_eq!(fio_plat_value(317), 1004);
        assert_eq!(fio_plat_index(1007), 317);
        assert_eq!(fio_plat_index(1008), 318);
        // 60 µs (a TCG completion): [59904, 60416), keyed 60160.
        assert_eq!(fio_plat_value(fio_plat_index(60_000)), 60_160);
        // Far beyond the last group: the last bucket, as fio clamps.
        assert_eq!(fio_plat_index(u64::MAX >> 1), FIO_PLAT_NR - 1);
        // Every bucket's key maps back to the bucket.
        for i in 0..FIO_PLAT_NR {
            assert_eq!(fio_plat_index(fio_plat_value(i)), i);
        }
    }

    /// A report as a 4 KiB random-read job would leave it: `ios` I/Os in `ms` milliseconds.
    fn report(ios: u64, ms: u64) -> GroupReport {
        report_with(ios, ms, "")
    }

    /// The same, with `extra` job options.
    fn report_with(ios: u64, ms: u64, extra: &str) -> GroupReport {
        let args: Vec<String> = format!(
            "--name=global --iodepth=8 --name=rr --filename=0000:00:05.0 --rw=randread \
             --bs=4k {extra}"
        )
        .split_whitespace()
        .map(String::from)
        .collect();
        let inv = parse_args(&args).unwrap();
        let group = &inv.groups[0];
        let opts = Arc::new(group.jobs[0].clone());
        let mut stats = JobStats::default();
        let read = &mut stats.dirs[0];
        for i in 0..ios {
            read.record(4096, 1_000 + i % 100, 20_000 + (i % 1000) * 10);
        }
        read.runtime = Duration::from_millis(ms);
        stats.job_runtime = Duration::from_millis(ms);
        GroupReport {
            id: 0,
            jobs: vec![JobReport {
                name: "rr".into(),
                opts,
                filename: "0000:00:05.0".into(),
                stats,
                start_secs: 0,
                start_ms: 0,
            }],
            global: group.global.clone(),
            elapsed: Duration::from_millis(ms),
        }
    }

    #[test]
    fn json_has_fio_keys_and_consistent_figures() {
        let doc = render(&[report(25_000, 2_000)], true, 0, 0);
        // It parses back as JSON, with fio's top-level keys and ours.
        let text = serde_json::to_string_pretty(&doc).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert!(doc["fio version"].is_string() && doc["uvio version"].is_string());
        assert_eq!(doc["global options"]["iodepth"], "8");
        let job = &doc["jobs"][0];
        assert_eq!(job["jobname"], "rr");
        let o = &job["job options"];
        assert_eq!(
            (o["rw"].as_str(), o["bs"].as_str()),
            (Some("randread"), Some("4k"))
        );
        assert_eq!(
            (o["iodepth"].as_str(), o["numjobs"].as_str()),
            (Some("8"), Some("1"))
        );
        for d in ["read", "write", "trim"] {
            for k in ["io_bytes", "bw", "bw_bytes", "iops", "runtime", "total_ios"] {
                assert!(job[d][k].is_number(), "{d}.{k}");
            }
            for l in ["slat_ns", "clat_ns", "lat_ns"] {
                for k in ["min", "max", "mean", "stddev"] {
                    assert!(job[d][l][k].is_number(), "{d}.{l}.{k}");
                }
            }
        }
        let r = &job["read"];
        let ios = r["total_ios"].as_u64().unwrap();
        assert_eq!(ios, 25_000);
        assert_eq!(r["io_bytes"].as_u64().unwrap(), ios * 4096);
        assert_eq!(r["runtime"].as_u64().unwrap(), 2_000);
        let iops = r["iops"].as_f64().unwrap();
        assert!((iops * 2.0 - ios as f64).abs() < 1.0, "{iops}");
        assert_eq!(r["bw_bytes"].as_u64().unwrap(), ios * 4096 / 2);
        assert_eq!(r["bw"].as_u64().unwrap(), ios * 4096 / 2 / 1024);
        assert_eq!(r["clat_ns"]["N"].as_u64().unwrap(), ios);
        let p = &r["clat_ns"]["percentile"];
        assert!(p["50.000000"].as_u64().unwrap() <= p["99.000000"].as_u64().unwrap());
        let bins = r["clat_ns"]["bins"].as_object().expect("json+ has bins");
        assert_eq!(
            bins.values().map(|c| c.as_u64().unwrap()).sum::<u64>(),
            ios,
            "every sample is in a bin"
        );
        for key in bins.keys() {
            let v: u64 = key.parse().unwrap();
            assert_eq!(
                fio_plat_value(fio_plat_index(v)),
                v,
                "{key} is a fio bucket key"
            );
        }
        assert!(
            r["lat_ns"].get("percentile").is_none(),
            "only clat has percentiles"
        );
        // Empty directions are zeros, never NaN.
        assert_eq!(job["write"]["total_ios"], 0);
        assert_eq!(job["write"]["clat_ns"]["mean"], 0.0);
        assert!(!text.contains("NaN"));
    }

    #[test]
    fn percentiles_follow_the_three_switches() {
        let opts = "--slat_percentiles=1 --clat_percentiles=0 --lat_percentiles=1 \
                    --percentile_list=50:99";
        for plus in [false, true] {
            let doc = render(&[report_with(1000, 1000, opts)], plus, 0, 0);
            let r = &doc["jobs"][0]["read"];
            assert!(r["clat_ns"].get("percentile").is_none());
            assert!(r["clat_ns"].get("bins").is_none());
            for l in ["slat_ns", "lat_ns"] {
                let p = r[l]["percentile"].as_object().expect("percentiles");
                let keys: Vec<&String> = p.keys().collect();
                assert_eq!(keys, ["50.000000", "99.000000"], "{l}");
                assert_eq!(r[l].get("bins").is_some(), plus, "{l}");
            }
            // The recorded slat is 1000-1099 ns, lat 21000 ns and up: each its own figures.
            let slat99 = r["slat_ns"]["percentile"]["99.000000"].as_u64().unwrap();
            let lat50 = r["lat_ns"]["percentile"]["50.000000"].as_u64().unwrap();
            assert!((1000..1100).contains(&slat99), "{slat99}");
            assert!(lat50 > 21_000, "{lat50}");
        }
    }
}
