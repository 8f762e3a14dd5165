//! Job options with fio's names, aliases, defaults and semantics, and the typed errors for
//! options uvio does not know or does not support. One [`JobOptions`] describes one job
//! section (before `numjobs` cloning); `[global]` is a `JobOptions` the jobs below start from.

use std::time::Duration;

use crate::units::{
    parse_bool, parse_int, parse_size, parse_size_or_percent, parse_size_range, parse_time,
    split_per_ddir, SizeOrPercent, ValueError,
};

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

/// `verify=`: how written blocks are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyKind {
    Crc32c,
    Md5,
    Xxhash,
    /// No header: every byte is `verify_pattern`.
    Pattern,
}

impl VerifyKind {
    pub fn name(self) -> &'static str {
        match self {
            VerifyKind::Crc32c => "crc32c",
            VerifyKind::Md5 => "md5",
            VerifyKind::Xxhash => "xxhash",
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

/// `--output-format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputFormats {
    pub normal: bool,
    pub json: bool,
    /// `json+`: JSON with histogram bins.
    pub json_plus: bool,
}

impl OutputFormats {
    /// Parses fio's comma-separated list (`normal`, `json`, `json+`).
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
                "terse" => {
                    return Err(OptionError::Unsupported {
                        name: "output-format".into(),
                        why: "terse output is not supported (use json)".into(),
                    })
                }
                other => {
                    return Err(OptionError::Invalid {
                        name: "output-format".into(),
                        why: format!("`{other}` is not an output format (normal, json, json+)"),
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
}

/// Whether an option takes a value, or is a fio "set" flag usable bare (`time_based`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptKind {
    Value,
    Flag,
}

/// Every supported option: canonical name, aliases, kind.
const OPTIONS: &[(&str, &[&str], OptKind)] = &[
    ("name", &[], OptKind::Value),
    ("description", &[], OptKind::Value),
    ("filename", &[], OptKind::Value),
    ("rw", &["readwrite"], OptKind::Value),
    ("rwmixread", &[], OptKind::Value),
    ("rwmixwrite", &[], OptKind::Value),
    ("bs", &["blocksize"], OptKind::Value),
    ("bsrange", &["blocksize_range"], OptKind::Value),
    ("bssplit", &[], OptKind::Value),
    ("iodepth", &[], OptKind::Value),
    ("iodepth_batch_submit", &["iodepth_batch"], OptKind::Value),
    (
        "iodepth_batch_complete_min",
        &["iodepth_batch_complete"],
        OptKind::Value,
    ),
    ("iodepth_batch_complete_max", &[], OptKind::Value),
    ("numjobs", &[], OptKind::Value),
    ("size", &[], OptKind::Value),
    ("io_size", &["io_limit"], OptKind::Value),
    ("offset", &["fileoffset"], OptKind::Value),
    ("offset_increment", &[], OptKind::Value),
    ("runtime", &["timeout"], OptKind::Value),
    ("time_based", &[], OptKind::Flag),
    ("ramp_time", &[], OptKind::Value),
    ("randrepeat", &["allrandrepeat"], OptKind::Value),
    ("randseed", &[], OptKind::Value),
    ("norandommap", &[], OptKind::Flag),
    ("verify", &[], OptKind::Value),
    ("verify_pattern", &[], OptKind::Value),
    ("do_verify", &[], OptKind::Value),
    ("verify_fatal", &[], OptKind::Value),
    ("percentile_list", &[], OptKind::Value),
    ("group_reporting", &[], OptKind::Flag),
    ("thread", &[], OptKind::Flag),
    ("ioengine", &[], OptKind::Value),
    ("direct", &[], OptKind::Value),
    ("cpus_allowed", &[], OptKind::Value),
];

/// fio options uvio knows of but does not implement: refused with a specific reason.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("kb_base", "sizes always use fio's default kb_base=1024"),
    ("unit_base", "output is always in bytes"),
    ("rate", "rate limiting is not implemented"),
    ("rate_iops", "rate limiting is not implemented"),
    ("rate_min", "rate limiting is not implemented"),
    ("thinktime", "think time is not implemented"),
    (
        "stonewall",
        "jobs of one file run as one group; use separate job files",
    ),
    (
        "wait_for_previous",
        "jobs of one file run as one group; use separate job files",
    ),
    (
        "new_group",
        "jobs of one file run as one group; use separate job files",
    ),
    ("loops", "repeat the run instead"),
    ("number_ios", "use io_size"),
    ("startdelay", "jobs start together"),
    (
        "iodepth_low",
        "the queue is refilled to iodepth at every reap",
    ),
    ("fsync", "flushes are not issued by the benchmark"),
    ("fdatasync", "flushes are not issued by the benchmark"),
    ("end_fsync", "flushes are not issued by the benchmark"),
    ("buffered", "uvio has no page cache: I/O is always direct"),
    ("random_distribution", "offsets are uniform"),
    ("random_generator", "uvio uses its own generator"),
    ("rw_sequencer", "the `rw=...:N` modifier is not supported"),
    (
        "bs_unaligned",
        "block sizes must be multiples of the logical block size",
    ),
    (
        "blockalign",
        "offsets are aligned to the minimum block size",
    ),
    ("verify_backlog", "verification runs after the write phase"),
    ("verify_async", "verification runs in the job's thread"),
    ("verify_interval", "one header per block"),
    ("verify_offset", "the header is at the start of each block"),
    ("verify_only", "use rw=read with verify="),
    (
        "verify_dump",
        "the first bad block is reported with its offset and values",
    ),
    (
        "unified_rw_reporting",
        "directions are always reported separately",
    ),
    ("continue_on_error", "a job stops at its first I/O error"),
    ("clat_percentiles", "clat percentiles are always reported"),
    ("lat_percentiles", "clat percentiles are always reported"),
    ("slat_percentiles", "clat percentiles are always reported"),
    (
        "significant_figures",
        "four significant figures, as fio's default",
    ),
    ("write_bw_log", "log files are not written"),
    ("write_lat_log", "log files are not written"),
    ("write_iops_log", "log files are not written"),
    ("write_hist_log", "log files are not written"),
    ("nrfiles", "one device per job"),
    ("filesize", "use size"),
    ("zonemode", "zoned devices are not supported"),
    ("cpumask", "CPU affinity is not implemented"),
    ("exitall", "jobs run to their own end"),
];

/// The canonical name of a supported option (resolving aliases), or the error naming it.
pub fn canonical(name: &str) -> Result<(&'static str, OptKind), OptionError> {
    let lower = name.trim();
    for (canon, aliases, kind) in OPTIONS {
        if *canon == lower || aliases.contains(&lower) {
            return Ok((canon, *kind));
        }
    }
    if let Some((_, why)) = UNSUPPORTED.iter().find(|(n, _)| *n == lower) {
        return Err(OptionError::Unsupported {
            name: lower.to_string(),
            why: (*why).to_string(),
        });
    }
    let hint = OPTIONS
        .iter()
        .flat_map(|(c, a, _)| std::iter::once(*c).chain(a.iter().copied()))
        .map(|c| (levenshtein(lower, c), c))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, c)| c.to_string());
    Err(OptionError::Unknown {
        name: lower.to_string(),
        hint,
    })
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The options of one job section, parsed, with the raw values that were set explicitly.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOptions {
    pub name: String,
    pub description: Option<String>,
    pub filename: Option<String>,
    pub rw: RwMode,
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
    pub time_based: bool,
    pub ramp_time: Duration,
    pub randrepeat: bool,
    pub randseed: Option<u64>,
    pub norandommap: bool,
    pub verify: Option<VerifyKind>,
    pub verify_pattern: Option<Vec<u8>>,
    pub do_verify: bool,
    pub verify_fatal: bool,
    pub percentile_list: Vec<f64>,
    pub group_reporting: bool,
    /// CPUs the job's threads run on (`cpus_allowed=0-3,5`); clones are pinned round robin.
    pub cpus_allowed: Option<Vec<usize>>,
    /// Options set explicitly (canonical name, value as written), in order, last one wins.
    pub explicit: Vec<(String, String)>,
}

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
            time_based: false,
            ramp_time: Duration::ZERO,
            randrepeat: true,
            randseed: None,
            norandommap: false,
            verify: None,
            verify_pattern: None,
            do_verify: true,
            verify_fatal: false,
            percentile_list: DEFAULT_PERCENTILES.to_vec(),
            group_reporting: false,
            cpus_allowed: None,
            explicit: Vec::new(),
        }
    }
}

fn value_err(name: &str) -> impl Fn(ValueError) -> OptionError + '_ {
    move |source| OptionError::Value {
        name: name.to_string(),
        source,
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
        let (name, kind) = canonical(key)?;
        let v = match (value, kind) {
            (Some(v), _) => v.trim(),
            (None, OptKind::Flag) => "1",
            (None, OptKind::Value) => return Err(OptionError::MissingValue(name.to_string())),
        };
        let size = |t: &str| parse_size(t, KB_BASE).map_err(value_err(name));
        let int = |t: &str| parse_int(t).map_err(value_err(name));
        let small = |t: &str| -> Result<u32, OptionError> {
            u32::try_from(int(t)?).map_err(|_| invalid(name, format!("`{t}` is too large")))
        };
        let boolean = |t: &str| parse_bool(t).map_err(value_err(name));
        match name {
            "name" => self.name = v.to_string(),
            "description" => self.description = Some(v.to_string()),
            "filename" => self.filename = Some(v.to_string()),
            "rw" => self.rw = RwMode::parse(v)?,
            "rwmixread" | "rwmixwrite" => {
                let p = small(v)?;
                if p > 100 {
                    return Err(invalid(name, "a percentage is at most 100"));
                }
                // If both are given and disagree, the latter wins (fio).
                self.rwmixread = if name == "rwmixread" { p } else { 100 - p };
            }
            "bs" => {
                for (d, part) in split_per_ddir(v)
                    .map_err(value_err(name))?
                    .iter()
                    .enumerate()
                {
                    if let Some(p) = part {
                        self.bs[d] = size(p)?;
                    }
                }
            }
            "bsrange" => {
                for (d, part) in split_per_ddir(v)
                    .map_err(value_err(name))?
                    .iter()
                    .enumerate()
                {
                    if let Some(p) = part {
                        self.bsrange[d] =
                            Some(parse_size_range(p, KB_BASE).map_err(value_err(name))?);
                    }
                }
            }
            "bssplit" => {
                for (d, part) in split_per_ddir(v)
                    .map_err(value_err(name))?
                    .iter()
                    .enumerate()
                {
                    if let Some(p) = part {
                        self.bssplit[d] = Some(parse_bssplit(p)?);
                    }
                }
            }
            "iodepth" => {
                self.iodepth = small(v)?;
                if self.iodepth == 0 {
                    return Err(invalid(name, "must be at least 1"));
                }
            }
            "iodepth_batch_submit" => self.iodepth_batch_submit = small(v)?,
            "iodepth_batch_complete_min" => self.iodepth_batch_complete_min = small(v)?,
            "iodepth_batch_complete_max" => self.iodepth_batch_complete_max = Some(small(v)?),
            "numjobs" => {
                self.numjobs = small(v)?;
                if self.numjobs == 0 {
                    return Err(invalid(name, "must be at least 1"));
                }
            }
            "size" => self.size = Some(parse_size_or_percent(v, KB_BASE).map_err(value_err(name))?),
            "io_size" => self.io_size = Some(size(v)?),
            "offset" => self.offset = parse_size_or_percent(v, KB_BASE).map_err(value_err(name))?,
            "offset_increment" => {
                self.offset_increment =
                    parse_size_or_percent(v, KB_BASE).map_err(value_err(name))?
            }
            "runtime" => {
                let t = parse_time(v).map_err(value_err(name))?;
                self.runtime = (!t.is_zero()).then_some(t);
            }
            "time_based" => self.time_based = boolean(v)?,
            "ramp_time" => self.ramp_time = parse_time(v).map_err(value_err(name))?,
            "randrepeat" => self.randrepeat = boolean(v)?,
            "randseed" => {
                self.randseed = Some(int(v)?);
                // fio: setting randseed disables rand_repeatable's fixed default seed.
            }
            "norandommap" => self.norandommap = boolean(v)?,
            "verify" => {
                self.verify = match v {
                    "0" | "null" => None,
                    "crc32c" | "crc32c-intel" => Some(VerifyKind::Crc32c),
                    "md5" => Some(VerifyKind::Md5),
                    "xxhash" => Some(VerifyKind::Xxhash),
                    "pattern" => Some(VerifyKind::Pattern),
                    other => {
                        return Err(OptionError::Unsupported {
                            name: name.into(),
                            why: format!(
                                "verify={other} is not supported (crc32c, md5, xxhash, pattern)"
                            ),
                        })
                    }
                }
            }
            "verify_pattern" => self.verify_pattern = Some(parse_pattern(v)?),
            "do_verify" => self.do_verify = boolean(v)?,
            "verify_fatal" => self.verify_fatal = boolean(v)?,
            "percentile_list" => self.percentile_list = parse_percentiles(v)?,
            "group_reporting" => self.group_reporting = boolean(v)?,
            "cpus_allowed" => self.cpus_allowed = Some(parse_cpu_list(v)?),
            "thread" => {
                // Accepted for job-file compatibility: uvio always runs jobs as threads.
                boolean(v)?;
            }
            "ioengine" => {
                if v != "uvio" {
                    return Err(OptionError::Unsupported {
                        name: name.into(),
                        why: format!(
                            "ioengine={v}: uvio bench drives the device with its own engine \
                             (ioengine=uvio)"
                        ),
                    });
                }
            }
            "direct" => {
                if !boolean(v)? {
                    return Err(OptionError::Unsupported {
                        name: name.into(),
                        why: "uvio has no page cache: I/O is always direct (direct=1)".into(),
                    });
                }
            }
            _ => unreachable!("every canonical option has an arm"),
        }
        let value = if kind == OptKind::Flag && value.is_none() {
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
        Ok(())
    }
}

/// `bssplit=4k/10:64k/50:32k/40`: blank percentages share what is left evenly.
fn parse_bssplit(text: &str) -> Result<Vec<(u64, u32)>, OptionError> {
    let name = "bssplit";
    let mut entries: Vec<(u64, Option<u32>)> = Vec::new();
    for item in text.split(':').map(str::trim).filter(|s| !s.is_empty()) {
        let (bs, perc) = match item.split_once('/') {
            Some((b, p)) => (b, p.trim()),
            None => (item, ""),
        };
        let bs = parse_size(bs, KB_BASE).map_err(value_err(name))?;
        let perc = if perc.is_empty() {
            None
        } else {
            Some(
                u32::try_from(parse_int(perc).map_err(value_err(name))?)
                    .map_err(|_| invalid(name, format!("`{perc}` is not a percentage")))?,
            )
        };
        entries.push((bs, perc));
    }
    if entries.is_empty() {
        return Err(invalid(name, "no block sizes given"));
    }
    if entries.len() > 64 {
        return Err(invalid(name, "at most 64 entries per direction"));
    }
    let given: u32 = entries.iter().filter_map(|e| e.1).sum();
    let missing = entries.iter().filter(|e| e.1.is_none()).count() as u32;
    if given > 100 {
        return Err(invalid(
            name,
            format!("percentages add up to {given}%, more than 100%"),
        ));
    }
    if missing == 0 && given != 100 {
        return Err(invalid(
            name,
            format!("percentages add up to {given}%, not 100%"),
        ));
    }
    let left = 100 - given;
    let share = left.checked_div(missing).unwrap_or(0);
    let mut extra = left.checked_rem(missing).unwrap_or(0);
    Ok(entries
        .into_iter()
        .map(|(bs, p)| {
            let p = p.unwrap_or_else(|| {
                let e = u32::from(extra > 0);
                extra = extra.saturating_sub(1);
                share + e
            });
            (bs, p)
        })
        .collect())
}

/// `cpus_allowed=0-3,5`: CPU numbers and inclusive ranges.
fn parse_cpu_list(text: &str) -> Result<Vec<usize>, OptionError> {
    let name = "cpus_allowed";
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let cpu = |t: &str| -> Result<usize, OptionError> {
            t.trim()
                .parse::<usize>()
                .ok()
                .filter(|c| *c < 1024)
                .ok_or_else(|| invalid(name, format!("`{t}` is not a CPU number")))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (cpu(a)?, cpu(b)?);
                if a > b {
                    return Err(invalid(name, format!("`{part}`: an empty range")));
                }
                out.extend(a..=b);
            }
            None => out.push(cpu(part)?),
        }
    }
    if out.is_empty() {
        return Err(invalid(name, "no CPUs given"));
    }
    Ok(out)
}

/// `percentile_list=50:99:99.9`: at most 20 values in (0, 100].
fn parse_percentiles(text: &str) -> Result<Vec<f64>, OptionError> {
    let name = "percentile_list";
    let mut out = Vec::new();
    for p in text.split(':').map(str::trim).filter(|s| !s.is_empty()) {
        let v: f64 = p
            .parse()
            .map_err(|_| invalid(name, format!("`{p}` is not a number")))?;
        if !(v > 0.0 && v <= 100.0) {
            return Err(invalid(name, format!("{p} is not in (0, 100]")));
        }
        out.push(v);
    }
    if out.is_empty() || out.len() > 20 {
        return Err(invalid(name, "give between 1 and 20 percentiles"));
    }
    Ok(out)
}

/// `verify_pattern=0xdeadbeef` (bytes in the order written) or `"text"`, several parts
/// concatenated when separated by spaces.
fn parse_pattern(text: &str) -> Result<Vec<u8>, OptionError> {
    let name = "verify_pattern";
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        if let Some(q) = rest.strip_prefix('"').or_else(|| rest.strip_prefix('\'')) {
            let quote = rest.as_bytes()[0] as char;
            let end = q
                .find(quote)
                .ok_or_else(|| invalid(name, "unterminated string"))?;
            out.extend_from_slice(&q.as_bytes()[..end]);
            rest = q[end + 1..].trim_start();
        } else if let Some(h) = rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
            let end = h.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(h.len());
            let digits = &h[..end];
            if digits.is_empty() {
                return Err(invalid(name, "`0x` without hex digits"));
            }
            let padded = if digits.len() % 2 == 1 {
                format!("0{digits}")
            } else {
                digits.to_string()
            };
            for i in (0..padded.len()).step_by(2) {
                let byte = u8::from_str_radix(&padded[i..i + 2], 16)
                    .map_err(|_| invalid(name, "bad hex digits"))?;
                out.push(byte);
            }
            rest = h[end..].trim_start();
        } else if rest.starts_with('%') {
            return Err(OptionError::Unsupported {
                name: name.into(),
                why: "format specifiers like %o are not supported".into(),
            });
        } else {
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if end == 0 {
                return Err(invalid(
                    name,
                    format!("`{rest}`: use 0x hex bytes, a decimal byte or a quoted string"),
                ));
            }
            let n: u8 = rest[..end]
                .parse()
                .map_err(|_| invalid(name, "a decimal pattern must fit in one byte"))?;
            out.push(n);
            rest = rest[end..].trim_start();
        }
        if rest.starts_with(',') {
            rest = rest[1..].trim_start();
        }
    }
    if out.is_empty() {
        return Err(invalid(name, "empty pattern"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
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
        assert!(o.set("direct", Some("0")).is_err());
        assert!(o.set("direct", Some("1")).is_ok());
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
        let e = o.set("rate_iops", Some("100")).unwrap_err();
        assert!(matches!(e, OptionError::Unsupported { ref name, .. } if name == "rate_iops"));
        assert!(e.to_string().contains("rate_iops"), "{e}");
        let e = o.set("ioengine", Some("libaio")).unwrap_err();
        assert!(e.to_string().contains("ioengine"), "{e}");
        let e = o.set("bs", Some("4x")).unwrap_err();
        assert!(e.to_string().starts_with("option `bs`"), "{e}");
    }
}
