//! Job options with fio's names, aliases, defaults and semantics, and the typed errors for
//! options uvio does not know or does not support. One [`JobOptions`] describes one job
//! section (before `numjobs` cloning); `[global]` is a `JobOptions` the jobs below start from.
//!
//! Each supported option is one row of [`table`] (names, kind, help, setter); [`values`]
//! reads the values.

use std::time::Duration;

use crate::units::{SizeOrPercent, ValueError};

mod engines;
mod expr;
mod table;
mod values;

pub use expr::{bc as bc_arithmetic, ExprError};
pub use table::{canonical, help_listing};
use values::Value;

/// fio's size unit base; fixed at fio's default (`kb_base` is not supported).
pub const KB_BASE: u64 = 1024;

/// A data direction, in fio's order (read, write, trim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Ddir {
    #[default]
    Read = 0,
    Write = 1,
    Trim = 2,
}

impl Ddir {
    pub const ALL: [Ddir; 3] = [Ddir::Read, Ddir::Write, Ddir::Trim];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The key fio uses in JSON and in the per-job block (`read`, `write`, `trim`).
    pub fn name(self) -> &'static str {
        match self {
            Ddir::Read => "read",
            Ddir::Write => "write",
            Ddir::Trim => "trim",
        }
    }
}

/// `rw=`: the I/O pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RwMode {
    Read,
    Write,
    Trim,
    RandRead,
    RandWrite,
    RandTrim,
    /// `rw` / `readwrite`: sequential mixed reads and writes.
    ReadWrite,
    RandRw,
}

impl RwMode {
    fn parse(value: &str) -> Result<Self, OptionError> {
        let invalid = |why: String| OptionError::Invalid {
            name: "rw".into(),
            why,
        };
        if let Some((_, suffix)) = value.split_once(':') {
            return Err(OptionError::Unsupported {
                name: "rw".into(),
                why: format!("the `:{suffix}` sequence modifier is not supported"),
            });
        }
        Ok(match value.trim() {
            "read" => RwMode::Read,
            "write" => RwMode::Write,
            "trim" => RwMode::Trim,
            "randread" => RwMode::RandRead,
            "randwrite" => RwMode::RandWrite,
            "randtrim" => RwMode::RandTrim,
            "rw" | "readwrite" => RwMode::ReadWrite,
            "randrw" => RwMode::RandRw,
            "trimwrite" | "randtrimwrite" => {
                return Err(OptionError::Unsupported {
                    name: "rw".into(),
                    why: format!("rw={value} is not supported"),
                })
            }
            other => {
                return Err(invalid(format!(
                    "`{other}` is not an I/O pattern (read, write, trim, randread, randwrite, \
                     randtrim, rw, randrw)"
                )))
            }
        })
    }

    /// The name fio prints (`rw` for the sequential mix).
    pub fn name(self) -> &'static str {
        match self {
            RwMode::Read => "read",
            RwMode::Write => "write",
            RwMode::Trim => "trim",
            RwMode::RandRead => "randread",
            RwMode::RandWrite => "randwrite",
            RwMode::RandTrim => "randtrim",
            RwMode::ReadWrite => "rw",
            RwMode::RandRw => "randrw",
        }
    }

    pub fn is_random(self) -> bool {
        matches!(
            self,
            RwMode::RandRead | RwMode::RandWrite | RwMode::RandTrim | RwMode::RandRw
        )
    }

    /// Whether the pattern issues I/O in direction `d`.
    pub fn has(self, d: Ddir) -> bool {
        match self {
            RwMode::Read | RwMode::RandRead => d == Ddir::Read,
            RwMode::Write | RwMode::RandWrite => d == Ddir::Write,
            RwMode::Trim | RwMode::RandTrim => d == Ddir::Trim,
            RwMode::ReadWrite | RwMode::RandRw => d != Ddir::Trim,
        }
    }
}

/// `rate_process=`: how paced I/Os are spread over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RateProcess {
    /// Evenly: each I/O when the bytes so far are due.
    #[default]
    Linear,
    /// Exponential gaps: arrivals of a Poisson process.
    Poisson,
}

/// `thinktime_blocks_type=`: what `thinktime_blocks` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ThinkBlocks {
    #[default]
    Complete,
    Issue,
}

/// `verify=`: how written blocks are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyKind {
    Crc32c,
    Md5,
    Xxhash,
    /// fio's `meta`: the header alone (no checksum of the data), and `verify_pattern` in the
    /// data when one is given.
    Meta,
    /// No header: every byte is `verify_pattern`.
    Pattern,
}

impl VerifyKind {
    pub fn name(self) -> &'static str {
        match self {
            VerifyKind::Crc32c => "crc32c",
            VerifyKind::Md5 => "md5",
            VerifyKind::Xxhash => "xxhash",
            VerifyKind::Meta => "meta",
            VerifyKind::Pattern => "pattern",
        }
    }
}

/// How block sizes are chosen for one direction.
#[derive(Debug, Clone, PartialEq)]
pub enum BlockSizes {
    Fixed(u64),
    /// Uniform in `min..=max`, multiples of `min` (`bsrange`).
    Range(u64, u64),
    /// Weighted choice (`bssplit`): (size, percent), percents adding up to 100.
    Split(Vec<(u64, u32)>),
}

impl BlockSizes {
    pub fn min(&self) -> u64 {
        match self {
            BlockSizes::Fixed(b) => *b,
            BlockSizes::Range(lo, _) => *lo,
            BlockSizes::Split(v) => v.iter().map(|e| e.0).min().unwrap_or(0),
        }
    }

    pub fn max(&self) -> u64 {
        match self {
            BlockSizes::Fixed(b) => *b,
            BlockSizes::Range(_, hi) => *hi,
            BlockSizes::Split(v) => v.iter().map(|e| e.0).max().unwrap_or(0),
        }
    }

    /// Every size this can produce, for alignment checks.
    pub fn sizes(&self) -> Vec<u64> {
        match self {
            BlockSizes::Fixed(b) => vec![*b],
            BlockSizes::Range(lo, hi) => vec![*lo, *hi],
            BlockSizes::Split(v) => v.iter().map(|e| e.0).collect(),
        }
    }
}

/// `cpus_allowed_policy=`: how a job's clones share the CPUs of `cpus_allowed`/`cpumask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CpusPolicy {
    /// fio's default: every clone may run on any CPU of the set.
    #[default]
    Shared,
    /// Each clone gets one CPU of the set, by its thread number, round robin.
    Split,
}

/// The time-series logs a job writes, in fio's formats (see [`crate::bench::logs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// `write_bw_log`, `write_iops_log`, `write_lat_log` and `write_hist_log`: the file name
    /// prefix when the option is on (empty: the job's name, as fio).
    pub bw: Option<String>,
    pub iops: Option<String>,
    pub lat: Option<String>,
    pub hist: Option<String>,
    /// `log_avg_msec`: one averaged line per window of this many ms (0: a line per I/O).
    pub avg_msec: u64,
    /// `log_hist_msec`: a histogram line per this many ms (0: no histogram lines).
    pub hist_msec: u64,
    /// `log_hist_coarseness`: 2^N of fio's latency bins are summed into one column (0..=6).
    pub hist_coarseness: u32,
    /// `log_max_value`: an averaged line carries its window's largest value, not the mean.
    pub max_value: bool,
    /// `per_job_logs`: the thread number in the file name (off: every clone appends to one).
    pub per_job: bool,
    /// `log_offset`: each line carries the I/O's offset.
    pub offset: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            bw: None,
            iops: None,
            lat: None,
            hist: None,
            avg_msec: 0,
            hist_msec: 0,
            hist_coarseness: 0,
            max_value: false,
            per_job: true,
            offset: false,
        }
    }
}

impl LogOptions {
    /// Whether any log is written.
    pub fn any(&self) -> bool {
        self.bw.is_some() || self.iops.is_some() || self.lat.is_some() || self.hist.is_some()
    }
}

/// `--output-format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputFormats {
    pub normal: bool,
    pub json: bool,
    /// `json+`: JSON with histogram bins.
    pub json_plus: bool,
    /// `terse`: fio's semicolon-separated lines (version 3).
    pub terse: bool,
}

impl OutputFormats {
    /// Parses fio's comma-separated list (`normal`, `json`, `json+`, `terse`).
    pub fn parse(value: &str) -> Result<Self, OptionError> {
        let mut f = OutputFormats::default();
        for part in value.split(',').map(str::trim) {
            match part {
                "normal" => f.normal = true,
                "json" => f.json = true,
                "json+" => {
                    f.json = true;
                    f.json_plus = true;
                }
                "terse" => f.terse = true,
                other => {
                    return Err(OptionError::Invalid {
                        name: "output-format".into(),
                        why: format!(
                            "`{other}` is not an output format (normal, json, json+, terse)"
                        ),
                    })
                }
            }
        }
        Ok(f)
    }
}

/// Errors in options; each names the option.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptionError {
    #[error("unknown option `{name}`{}", hint.as_ref().map(|h| format!(" (did you mean `{h}`?)")).unwrap_or_default())]
    Unknown { name: String, hint: Option<String> },
    #[error("option `{name}` is not supported by uvio bench: {why}")]
    Unsupported { name: String, why: String },
    #[error("option `{0}` needs a value (`{0}=...`)")]
    MissingValue(String),
    #[error("option `{name}`: {source}")]
    Value {
        name: String,
        #[source]
        source: ValueError,
    },
    #[error("option `{name}`: {why}")]
    Invalid { name: String, why: String },
    #[error("option `{name}`: {source}")]
    Expression {
        name: String,
        #[source]
        source: ExprError,
    },
}

/// Whether an option takes a value, or is a fio "set" flag usable bare (`time_based`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptKind {
    Value,
    Flag,
    /// A value that may be left out: `write_bw_log` alone means "named after the job"
    /// (the setter sees an empty value).
    Optional,
}

/// The options of one job section, parsed, with the raw values that were set explicitly.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOptions {
    pub name: String,
    pub description: Option<String>,
    pub filename: Option<String>,
    pub rw: RwMode,
    /// `rw=read:8k`: bytes added after each sequential I/O (a hole; negative: backwards).
    pub rw_seq_add: i64,
    /// `blockalign` per direction: the alignment of random offsets (default: the smallest
    /// block size).
    pub blockalign: [Option<u64>; 3],
    /// Percent of mixed I/O that reads.
    pub rwmixread: u32,
    pub bs: [u64; 3],
    pub bsrange: [Option<(u64, u64)>; 3],
    pub bssplit: [Option<Vec<(u64, u32)>>; 3],
    pub iodepth: u32,
    /// Requests submitted per batch; 0 = iodepth.
    pub iodepth_batch_submit: u32,
    /// Completions to wait for per reap; 0 = poll once without waiting.
    pub iodepth_batch_complete_min: u32,
    /// Most completions handled per reap; `None` = as many as there are.
    pub iodepth_batch_complete_max: Option<u32>,
    pub numjobs: u32,
    pub size: Option<SizeOrPercent>,
    pub io_size: Option<u64>,
    pub offset: SizeOrPercent,
    pub offset_increment: SizeOrPercent,
    pub runtime: Option<Duration>,
    /// `uvio_io_timeout`: the request deadline (fio's own `timeout` means `runtime`).
    pub io_timeout: Option<Duration>,
    pub time_based: bool,
    pub ramp_time: Duration,
    pub randrepeat: bool,
    pub randseed: Option<u64>,
    pub norandommap: bool,
    /// `random_distribution`: where random I/O goes (uniform by default).
    pub random_distribution: super::distribution::Distribution,
    pub verify: Option<VerifyKind>,
    pub verify_pattern: Option<Vec<u8>>,
    /// `verify_interval`: a header every this many bytes of a block (default: one per block).
    pub verify_interval: Option<u32>,
    pub do_verify: bool,
    pub verify_fatal: bool,
    pub percentile_list: Vec<f64>,
    pub group_reporting: bool,
    /// CPUs the job's threads run on (`cpus_allowed=0-3,5`); clones are pinned round robin.
    pub cpus_allowed: Option<Vec<usize>>,
    /// `cpus_allowed_policy`: all of `cpus_allowed` for every clone, or one CPU each.
    pub cpus_allowed_policy: CpusPolicy,
    /// The time-series logs (`write_bw_log` ...).
    pub logs: LogOptions,
    /// Which latencies get percentiles (and json+ bins): fio's `slat_percentiles` (off),
    /// `clat_percentiles` (on) and `lat_percentiles` (off), in that order.
    pub slat_percentiles: bool,
    pub clat_percentiles: bool,
    pub lat_percentiles: bool,
    /// `stonewall` / `wait_for_previous`: the job starts when every job before it has ended,
    /// and opens a new reporting group.
    pub stonewall: bool,
    /// `new_group`: a new reporting group, running alongside the jobs before it.
    pub new_group: bool,
    /// `startdelay=T` or `T1-T2` (a random delay in that range): the job starts that long
    /// after the benchmark started, as fio counts it (from its start, not its group's).
    pub start_delay: (Duration, Option<Duration>),
    /// `loops`: how many times the job's I/O (and its verify pass) runs.
    pub loops: u32,
    /// `rate` and `rate_iops` per direction (bytes and I/Os per second; 0: not paced), and
    /// how paced I/Os are spread.
    pub rate: [u64; 3],
    pub rate_iops: [u64; 3],
    pub rate_process: RateProcess,
    /// `rate_min` (bytes/s) and `rate_iops_min` per direction: the job fails when a
    /// `rate_cycle` goes by below them (0: not checked).
    pub rate_min: [u64; 3],
    pub rate_iops_min: [u64; 3],
    pub rate_cycle: Duration,
    /// `thinktime`: a pause after every `thinktime_blocks` I/Os, of which `thinktime_spin`
    /// busy.
    pub thinktime: Option<Duration>,
    pub thinktime_spin: Duration,
    pub thinktime_blocks: u32,
    pub thinktime_blocks_type: ThinkBlocks,
    /// Things said about options that were accepted with a change of meaning (`ioengine=libaio
    /// replaced by uvio`); the job file parser collects them and prints each once.
    pub notes: Vec<String>,
    /// Options set explicitly (canonical name, value as written), in order, last one wins.
    pub explicit: Vec<(String, String)>,
}

/// The most clones `numjobs` may ask for. fio allows far more, but every clone here is a
/// thread that busy-polls a hardware queue on a CPU of its own; past the device's queues
/// clones only share queues behind a lock, and no virtio device has near this many queues.
pub const MAX_NUMJOBS: u32 = 256;

/// fio's default `percentile_list`.
pub const DEFAULT_PERCENTILES: [f64; 17] = [
    1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95,
    99.99,
];

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            name: String::new(),
            description: None,
            filename: None,
            rw: RwMode::Read,
            rw_seq_add: 0,
            blockalign: [None; 3],
            rwmixread: 50,
            bs: [4096; 3],
            bsrange: [None, None, None],
            bssplit: [None, None, None],
            iodepth: 1,
            iodepth_batch_submit: 1,
            iodepth_batch_complete_min: 1,
            iodepth_batch_complete_max: None,
            numjobs: 1,
            size: None,
            io_size: None,
            offset: SizeOrPercent::Bytes(0),
            offset_increment: SizeOrPercent::Bytes(0),
            runtime: None,
            io_timeout: None,
            time_based: false,
            ramp_time: Duration::ZERO,
            randrepeat: true,
            randseed: None,
            norandommap: false,
            random_distribution: super::distribution::Distribution::Random,
            verify: None,
            verify_pattern: None,
            verify_interval: None,
            do_verify: true,
            verify_fatal: false,
            percentile_list: DEFAULT_PERCENTILES.to_vec(),
            group_reporting: false,
            cpus_allowed: None,
            cpus_allowed_policy: CpusPolicy::Shared,
            logs: LogOptions::default(),
            slat_percentiles: false,
            clat_percentiles: true,
            lat_percentiles: false,
            stonewall: false,
            new_group: false,
            start_delay: (Duration::ZERO, None),
            loops: 1,
            rate: [0; 3],
            rate_iops: [0; 3],
            rate_process: RateProcess::Linear,
            rate_min: [0; 3],
            rate_iops_min: [0; 3],
            rate_cycle: Duration::from_millis(1000),
            thinktime: None,
            thinktime_spin: Duration::ZERO,
            thinktime_blocks: 1,
            thinktime_blocks_type: ThinkBlocks::Complete,
            notes: Vec::new(),
            explicit: Vec::new(),
        }
    }
}

fn invalid(name: &str, why: impl Into<String>) -> OptionError {
    OptionError::Invalid {
        name: name.to_string(),
        why: why.into(),
    }
}

impl JobOptions {
    /// Sets option `key` (any alias) to `value` (`None` for a bare flag).
    pub fn set(&mut self, key: &str, value: Option<&str>) -> Result<(), OptionError> {
        let option = table::lookup(key)?;
        let (name, kind) = (option.name, option.kind);
        let v = match (value, kind) {
            (Some(v), _) => v.trim(),
            (None, OptKind::Flag) => "1",
            (None, OptKind::Optional) => "",
            (None, OptKind::Value) => return Err(OptionError::MissingValue(name.to_string())),
        };
        (option.set)(self, Value { name, text: v })?;
        let value = if kind != OptKind::Value && value.is_none() {
            String::new()
        } else {
            v.to_string()
        };
        self.explicit.retain(|(k, _)| k != name);
        self.explicit.push((name.to_string(), value));
        Ok(())
    }

    /// The explicit value of `name`, if it was set.
    #[cfg(test)]
    pub fn explicit(&self, name: &str) -> Option<&str> {
        self.explicit
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// How block sizes are chosen for `d`: bssplit over bsrange over bs, as fio.
    pub fn block_sizes(&self, d: Ddir) -> BlockSizes {
        let i = d.index();
        if let Some(split) = &self.bssplit[i] {
            BlockSizes::Split(split.clone())
        } else if let Some((lo, hi)) = self.bsrange[i] {
            if lo == hi {
                BlockSizes::Fixed(lo)
            } else {
                BlockSizes::Range(lo, hi)
            }
        } else {
            BlockSizes::Fixed(self.bs[i])
        }
    }

    /// Whether the job's I/O is paced or its rate checked (`rate`, `rate_iops`, their
    /// `_min`s, or `thinktime`).
    pub fn paced(&self) -> bool {
        self.rate
            .iter()
            .chain(&self.rate_iops)
            .chain(&self.rate_min)
            .chain(&self.rate_iops_min)
            .any(|r| *r > 0)
            || self.thinktime.is_some_and(|t| !t.is_zero())
    }

    /// The alignment of random offsets `blockalign` asks for: the largest given for the
    /// directions the job uses (`None`: the smallest block size, fio's default).
    pub fn random_block_align(&self) -> Option<u64> {
        Ddir::ALL
            .into_iter()
            .filter(|d| self.rw.has(*d))
            .filter_map(|d| self.blockalign[d.index()])
            .max()
    }

    /// Submit batch size, 0 meaning iodepth.
    pub fn batch_submit(&self) -> u32 {
        match self.iodepth_batch_submit {
            0 => self.iodepth,
            n => n.min(self.iodepth),
        }
    }

    /// Checks what can be checked without the device.
    pub fn validate(&self) -> Result<(), OptionError> {
        for d in Ddir::ALL {
            if !self.rw.has(d) {
                continue;
            }
            let sizes = self.block_sizes(d);
            if sizes.min() == 0 {
                return Err(invalid("bs", "a block size must be at least 1 byte"));
            }
        }
        if let Some(kind) = self.verify {
            let fixed = |d: Ddir| matches!(self.block_sizes(d), BlockSizes::Fixed(_));
            if !matches!(
                self.rw,
                RwMode::Read | RwMode::RandRead | RwMode::Write | RwMode::RandWrite
            ) {
                return Err(OptionError::Unsupported {
                    name: "verify".into(),
                    why: format!(
                        "verify with rw={} is not supported (use read, randread, write or \
                         randwrite)",
                        self.rw.name()
                    ),
                });
            }
            if !fixed(Ddir::Read) || !fixed(Ddir::Write) {
                return Err(OptionError::Unsupported {
                    name: "verify".into(),
                    why: "verify needs a fixed block size (bs=, not bsrange/bssplit)".into(),
                });
            }
            if self.bs[0] != self.bs[1] {
                return Err(invalid(
                    "verify",
                    "verify needs the same block size for reads and writes",
                ));
            }
            if kind == VerifyKind::Pattern && self.verify_pattern.is_none() {
                return Err(invalid("verify", "verify=pattern needs verify_pattern="));
            }
            if kind != VerifyKind::Pattern && self.bs[0] < 64 {
                return Err(invalid(
                    "verify",
                    "a verify header needs blocks of at least 64 bytes",
                ));
            }
            if let (Some(interval), true) = (self.verify_interval, kind != VerifyKind::Pattern) {
                let interval = u64::from(interval);
                if interval < 128 {
                    return Err(invalid(
                        "verify_interval",
                        "at least 128 bytes (twice the 64-byte header, as fio's minimum is \
                         twice its own)",
                    ));
                }
                if interval < self.bs[0] && !self.bs[0].is_multiple_of(interval) {
                    return Err(invalid(
                        "verify_interval",
                        format!(
                            "{interval} does not divide the block size {} into whole pieces",
                            self.bs[0]
                        ),
                    ));
                }
            }
            if self.time_based && self.rw.has(Ddir::Write) && self.do_verify {
                return Err(OptionError::Unsupported {
                    name: "verify".into(),
                    why: "a write+verify job cannot be time_based (drop time_based, or set \
                          do_verify=0)"
                        .into(),
                });
            }
        }
        if let Some(max) = self.iodepth_batch_complete_max {
            if max != 0 && max < self.iodepth_batch_complete_min {
                return Err(invalid(
                    "iodepth_batch_complete_max",
                    "must not be below iodepth_batch_complete_min",
                ));
            }
        }
        if self.time_based && self.runtime.is_none() {
            return Err(invalid("time_based", "needs runtime="));
        }
        // The last clone's region must end below 2^64 whatever the device: caught here, before
        // opening it (percentages are of the device, so they cannot overflow).
        if let (SizeOrPercent::Bytes(offset), Some(SizeOrPercent::Bytes(size))) =
            (self.offset, self.size)
        {
            let increment = match self.offset_increment {
                SizeOrPercent::Bytes(b) => b,
                SizeOrPercent::Percent(_) => 0,
            };
            let last = u64::from(self.numjobs.saturating_sub(1));
            let end = increment
                .checked_mul(last)
                .and_then(|x| x.checked_add(offset))
                .and_then(|x| x.checked_add(size));
            if end.is_none() {
                let clones = if increment > 0 && last > 0 {
                    format!(" + offset_increment {increment} x {last} (the last clone)")
                } else {
                    String::new()
                };
                return Err(invalid(
                    "size",
                    format!("offset {offset}{clones} + size {size} is beyond 2^64 bytes"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::values::{parse_bssplit, parse_pattern};
    use super::*;

    #[test]
    fn bssplit_follows_the_howto_examples() {
        // HOWTO: bssplit=4k/10:64k/50:32k/40 (order does not matter).
        assert_eq!(
            parse_bssplit("4k/10:64k/50:32k/40").unwrap(),
            vec![(4096, 10), (65536, 50), (32768, 40)]
        );
        // Blank percentages share the remainder: 4k/50:1k/:32k/ = 50/25/25.
        assert_eq!(
            parse_bssplit("4k/50:1k/:32k/").unwrap(),
            vec![(4096, 50), (1024, 25), (32768, 25)]
        );
        assert!(parse_bssplit("4k/60:8k/50").is_err());
        assert!(parse_bssplit("4k/60:8k/30").is_err());
        // Per direction: 2k/50:4k/50 for reads, 4k/90:8k/10 for writes (and trims).
        let mut o = JobOptions::default();
        o.set("bssplit", Some("2k/50:4k/50,4k/90:8k/10")).unwrap();
        assert_eq!(
            o.block_sizes(Ddir::Read),
            BlockSizes::Split(vec![(2048, 50), (4096, 50)])
        );
        assert_eq!(
            o.block_sizes(Ddir::Write),
            BlockSizes::Split(vec![(4096, 90), (8192, 10)])
        );
        assert_eq!(o.block_sizes(Ddir::Trim), o.block_sizes(Ddir::Write));
    }

    #[test]
    fn per_direction_bs_and_aliases() {
        let mut o = JobOptions::default();
        o.set("blocksize", Some("8k,32k")).unwrap();
        assert_eq!(o.bs, [8192, 32768, 32768]);
        o.set("bs", Some(",16k,")).unwrap();
        assert_eq!(o.bs, [8192, 16384, 32768]);
        o.set("readwrite", Some("randrw")).unwrap();
        o.set("rwmixwrite", Some("30")).unwrap();
        assert_eq!((o.rw, o.rwmixread), (RwMode::RandRw, 70));
        o.set("bsrange", Some("1k-4k")).unwrap();
        assert_eq!(o.block_sizes(Ddir::Read), BlockSizes::Range(1024, 4096));
        // Explicit values are remembered under the canonical name, last one wins.
        assert_eq!(o.explicit("bs"), Some(",16k,"));
        assert_eq!(o.explicit("rw"), Some("randrw"));
    }

    #[test]
    fn flags_times_and_verify() {
        let mut o = JobOptions::default();
        o.set("time_based", None).unwrap();
        o.set("runtime", Some("2m")).unwrap();
        o.set("ramp_time", Some("500ms")).unwrap();
        o.set("verify", Some("crc32c-intel")).unwrap();
        o.set("verify_pattern", Some("0xdeadbeef")).unwrap();
        o.set("percentile_list", Some("50:99:99.9")).unwrap();
        assert!(o.time_based);
        assert_eq!(o.runtime, Some(Duration::from_secs(120)));
        assert_eq!(o.ramp_time, Duration::from_millis(500));
        assert_eq!(o.verify, Some(VerifyKind::Crc32c));
        assert_eq!(o.verify_pattern, Some(vec![0xde, 0xad, 0xbe, 0xef]));
        assert_eq!(o.percentile_list, vec![50.0, 99.0, 99.9]);
        assert_eq!(o.explicit("time_based"), Some(""));
        assert_eq!(parse_pattern("\"ab\" 0x01").unwrap(), b"ab\x01");
        o.set("cpus_allowed", Some("0-2,5")).unwrap();
        assert_eq!(o.cpus_allowed, Some(vec![0, 1, 2, 5]));
        assert!(o.set("cpus_allowed", Some("3-1")).is_err());
        assert!(o.set("iodepth", None).is_err());
    }

    #[test]
    fn other_engines_and_buffered_io_are_accepted_with_a_note() {
        let mut o = JobOptions::default();
        // direct=1 and buffered=0 say nothing; their opposites say that I/O stays direct.
        o.set("direct", Some("1")).unwrap();
        o.set("buffered", Some("0")).unwrap();
        o.set("ioengine", Some("uvio")).unwrap();
        assert!(o.notes.is_empty(), "{:?}", o.notes);
        o.set("direct", Some("0")).unwrap();
        assert_eq!(o.notes.len(), 1);
        assert!(
            o.notes[0].starts_with("uvio I/O is always direct"),
            "{:?}",
            o.notes
        );
        o.set("buffered", Some("1")).unwrap();
        assert_eq!(o.notes[1], o.notes[0]);
        assert!(o.set("direct", Some("2")).is_err());
        o.notes.clear();
        for engine in [
            "libaio",
            "io_uring",
            "psync",
            "sync",
            "null",
            "external:/x.so",
        ] {
            o.set("ioengine", Some(engine)).unwrap();
        }
        assert_eq!(o.notes[0], "ioengine=libaio replaced by uvio");
        assert_eq!(o.notes[1], "ioengine=io_uring replaced by uvio");
        assert_eq!(o.notes.len(), 6);
        // Engines that do no block I/O, and names fio does not know, are refused.
        let e = o.set("ioengine", Some("cpuio")).unwrap_err().to_string();
        assert!(e.contains("ioengine=cpuio only burns CPU"), "{e}");
        let e = o.set("ioengine", Some("libaoi")).unwrap_err().to_string();
        assert!(e.contains("`libaoi` is not an I/O engine fio knows"), "{e}");
    }

    #[test]
    fn percentile_switches_groups_and_start_options() {
        let mut o = JobOptions::default();
        assert!(!o.slat_percentiles && o.clat_percentiles && !o.lat_percentiles);
        o.set("clat_percentiles", Some("0")).unwrap();
        o.set("lat_percentiles", Some("1")).unwrap();
        o.set("slat_percentiles", Some("1")).unwrap();
        assert!(o.slat_percentiles && !o.clat_percentiles && o.lat_percentiles);
        o.set("wait_for_previous", None).unwrap();
        assert!(o.stonewall);
        assert_eq!(o.explicit("stonewall"), Some(""));
        o.set("new_group", None).unwrap();
        assert!(o.new_group);
        o.set("startdelay", Some("2")).unwrap();
        assert_eq!(o.start_delay, (Duration::from_secs(2), None));
        // A range, given high-low, is swapped as fio does.
        o.set("startdelay", Some("500ms-100ms")).unwrap();
        assert_eq!(
            o.start_delay,
            (Duration::from_millis(100), Some(Duration::from_millis(500)))
        );
        o.set("startdelay", Some("(1m+30s)")).unwrap();
        assert_eq!(o.start_delay, (Duration::from_secs(90), None));
        o.set("loops", Some("3")).unwrap();
        assert_eq!(o.loops, 3);
        assert!(o.set("loops", Some("0")).is_err());
    }

    #[test]
    fn rw_steps_block_alignment_and_generators() {
        let mut o = JobOptions::default();
        o.set("rw", Some("read:-8k")).unwrap();
        assert_eq!((o.rw, o.rw_seq_add), (RwMode::Read, -8192));
        o.set("rw", Some("write:112k")).unwrap();
        assert_eq!((o.rw, o.rw_seq_add), (RwMode::Write, 112 << 10));
        o.set("rw", Some("write")).unwrap();
        assert_eq!(o.rw_seq_add, 0);
        let e = o.set("rw", Some("randread:8")).unwrap_err().to_string();
        assert!(e.contains("8 I/Os per random offset"), "{e}");
        o.set("rw", Some("randrw")).unwrap();
        o.set("blockalign", Some("4k,16k")).unwrap();
        assert_eq!(o.random_block_align(), Some(16384));
        o.set("rw", Some("randread")).unwrap();
        assert_eq!(o.random_block_align(), Some(4096));
        o.set("random_generator", Some("lfsr")).unwrap();
        assert!(
            o.notes[0].starts_with("random_generator=lfsr replaced"),
            "{:?}",
            o.notes
        );
        assert!(o.set("random_generator", Some("mt")).is_err());
        let e = o.set("zonemode", Some("strided")).unwrap_err().to_string();
        assert!(e.contains("strided zones"), "{e}");
        let e = o.set("zonemode", Some("zbd")).unwrap_err().to_string();
        assert!(e.contains("zoned block devices"), "{e}");
        o.set("zonemode", Some("none")).unwrap();
    }

    #[test]
    fn parenthesised_values_are_fio_arithmetic() {
        let mut o = JobOptions::default();
        o.set("bs", Some("(2*4k)")).unwrap();
        assert_eq!(o.bs, [8192; 3]);
        o.set("bs", Some("(1k+1k),(8*1024)")).unwrap();
        assert_eq!(o.bs, [2048, 8192, 8192]);
        o.set("iodepth", Some("(4*8)")).unwrap();
        assert_eq!(o.iodepth, 32);
        o.set("runtime", Some("(2*30)")).unwrap();
        assert_eq!(o.runtime, Some(Duration::from_secs(60)));
        o.set("size", Some("(512m/2)")).unwrap();
        assert_eq!(o.size, Some(SizeOrPercent::Bytes(256 << 20)));
        let e = o.set("size", Some("(1/0)")).unwrap_err().to_string();
        assert_eq!(e, "option `size`: `(1/0)`: division by zero");
    }

    #[test]
    fn numjobs_is_bounded() {
        let mut o = JobOptions::default();
        o.set("numjobs", Some("256")).unwrap();
        assert_eq!(o.numjobs, MAX_NUMJOBS);
        let e = o.set("numjobs", Some("257")).unwrap_err().to_string();
        assert!(e.contains("numjobs") && e.contains("at most 256"), "{e}");
        let e = o
            .set("numjobs", Some("99999999999"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("too large (max 4294967295)"), "{e}");
        assert!(o.set("numjobs", Some("0")).is_err());
    }

    #[test]
    fn a_region_past_two_to_the_64_is_refused_before_the_device() {
        let mut o = JobOptions::default();
        o.set("offset", Some("4096")).unwrap();
        o.set("size", Some("18446744073709551615")).unwrap();
        let e = o.validate().unwrap_err().to_string();
        assert!(e.contains("beyond 2^64"), "{e}");
        // The last clone's start counts too.
        let mut o = JobOptions::default();
        o.set("size", Some("1m")).unwrap();
        o.set("offset_increment", Some("0x8000000000000000"))
            .unwrap();
        o.set("numjobs", Some("3")).unwrap();
        assert!(o.validate().is_err());
        o.set("numjobs", Some("2")).unwrap();
        assert!(o.validate().is_ok());
    }

    #[test]
    fn unknown_and_unsupported_options_are_named() {
        let mut o = JobOptions::default();
        let e = o.set("iodepht", Some("4")).unwrap_err();
        assert_eq!(
            e,
            OptionError::Unknown {
                name: "iodepht".into(),
                hint: Some("iodepth".into())
            }
        );
        assert!(e.to_string().contains("`iodepht`"), "{e}");
        let e = o.set("rate_ignore_thinktime", Some("1")).unwrap_err();
        assert!(
            matches!(e, OptionError::Unsupported { ref name, .. } if name == "rate_ignore_thinktime")
        );
        assert!(e.to_string().contains("rate_ignore_thinktime"), "{e}");
        let e = o.set("io_submit_mode", Some("bogus")).unwrap_err();
        assert!(e.to_string().contains("use inline or offload"), "{e}");
        let e = o.set("bs", Some("4x")).unwrap_err();
        assert!(e.to_string().starts_with("option `bs`"), "{e}");
    }
}
