//! The options `uvio bench` supports, one row each: canonical name, aliases, kind, what
//! `--help` lists after the name, and the setter that parses the value into [`JobOptions`].
//! Looking names up, the "did you mean" hint and the help listing all read the rows; fio
//! options uvio knows of but refuses are listed apart, with the reason.

use super::engines::{engine_kind, EngineKind};
use super::values::{parse_bssplit, parse_cpu_list, parse_pattern, parse_percentiles, Value};
use super::{
    CpusPolicy, JobOptions, OptKind, OptionError, RateProcess, RwMode, ThinkBlocks, VerifyKind,
};

/// Parses an option's value into the options it sets.
type Setter = fn(&mut JobOptions, Value<'_>) -> Result<(), OptionError>;

/// One supported option.
pub struct OptionDef {
    /// The canonical name: the one errors and the job options report use.
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub kind: OptKind,
    /// What `uvio bench --help` lists right after the name: the values it takes, or the one
    /// value accepted (`=uvio`); mostly nothing.
    pub help: &'static str,
    pub set: Setter,
}

/// An option that takes a value.
const fn value(name: &'static str, set: Setter) -> OptionDef {
    OptionDef {
        name,
        aliases: &[],
        kind: OptKind::Value,
        help: "",
        set,
    }
}

/// A fio "set" flag, usable bare (`time_based`) or with a 0/1 value.
const fn flag(name: &'static str, set: Setter) -> OptionDef {
    OptionDef {
        kind: OptKind::Flag,
        ..value(name, set)
    }
}

/// An option whose value may be left out (the setter then sees an empty value).
const fn optional(name: &'static str, set: Setter) -> OptionDef {
    OptionDef {
        kind: OptKind::Optional,
        ..value(name, set)
    }
}

impl OptionDef {
    const fn aliases(self, aliases: &'static [&'static str]) -> Self {
        OptionDef { aliases, ..self }
    }

    const fn help(self, help: &'static str) -> Self {
        OptionDef { help, ..self }
    }
}

/// Every supported option, in the order `uvio bench --help` lists them.
const OPTIONS: &[OptionDef] = &[
    value("name", |o, v| {
        o.name = v.text.to_string();
        Ok(())
    }),
    value("filename", |o, v| {
        o.filename = Some(v.text.to_string());
        Ok(())
    }),
    // `rw=read:8k` leaves 8 KiB holes between sequential I/Os (`:-8k` goes backwards);
    // fio's `rw=randread:N` (N I/Os per random offset) is refused.
    value("rw", |o, v| {
        let (mode, add) = match v.text.split_once(':') {
            Some((m, add)) => (m, Some(add.trim())),
            None => (v.text, None),
        };
        o.rw = RwMode::parse(mode)?;
        o.rw_seq_add = 0;
        if let Some(add) = add {
            if o.rw.is_random() {
                return Err(v.unsupported(format!(
                    "rw={}:{add} ({add} I/Os per random offset) is not supported",
                    o.rw.name()
                )));
            }
            let (negative, bytes) = match add.strip_prefix('-') {
                Some(b) => (true, b),
                None => (false, add),
            };
            let part = Value {
                name: v.name,
                text: bytes,
            };
            let bytes = i64::try_from(part.size()?)
                .map_err(|_| v.invalid(format!("`:{add}` is too large")))?;
            o.rw_seq_add = if negative { -bytes } else { bytes };
        }
        Ok(())
    })
    .aliases(&["readwrite"])
    .help(" (read write trim randread randwrite randtrim rw randrw; read:HOLE, read:-STEP)"),
    // If both rwmixread and rwmixwrite are given and disagree, the latter wins (fio).
    value("rwmixread", |o, v| {
        o.rwmixread = v.percent()?;
        Ok(())
    }),
    value("rwmixwrite", |o, v| {
        o.rwmixread = 100 - v.percent()?;
        Ok(())
    }),
    value("bs", |o, v| {
        v.per_ddir(|d, part| {
            o.bs[d] = part.size()?;
            Ok(())
        })
    })
    .aliases(&["blocksize"]),
    value("bsrange", |o, v| {
        v.per_ddir(|d, part| {
            o.bsrange[d] = Some(part.size_range()?);
            Ok(())
        })
    })
    .aliases(&["blocksize_range"]),
    value("bssplit", |o, v| {
        v.per_ddir(|d, part| {
            o.bssplit[d] = Some(parse_bssplit(part.text)?);
            Ok(())
        })
    }),
    value("iodepth", |o, v| v.count(&mut o.iodepth)),
    value("iodepth_batch_submit", |o, v| {
        o.iodepth_batch_submit = v.small()?;
        Ok(())
    })
    .aliases(&["iodepth_batch"]),
    value("iodepth_batch_complete_min", |o, v| {
        o.iodepth_batch_complete_min = v.small()?;
        Ok(())
    })
    .aliases(&["iodepth_batch_complete"]),
    value("iodepth_batch_complete_max", |o, v| {
        o.iodepth_batch_complete_max = Some(v.small()?);
        Ok(())
    }),
    value("numjobs", |o, v| {
        v.count(&mut o.numjobs)?;
        if o.numjobs > super::MAX_NUMJOBS {
            return Err(v.invalid(format!(
                "{} clones is too many: at most {} (each clone is a busy-polling thread of its \
                 own)",
                o.numjobs,
                super::MAX_NUMJOBS
            )));
        }
        Ok(())
    })
    .help(" (1 to 256)"),
    value("size", |o, v| {
        o.size = Some(v.size_or_percent()?);
        Ok(())
    }),
    value("io_size", |o, v| {
        o.io_size = Some(v.size()?);
        Ok(())
    })
    .aliases(&["io_limit"]),
    value("offset", |o, v| {
        o.offset = v.size_or_percent()?;
        Ok(())
    })
    .aliases(&["fileoffset"]),
    value("offset_increment", |o, v| {
        o.offset_increment = v.size_or_percent()?;
        Ok(())
    }),
    value("runtime", |o, v| {
        let t = v.time()?;
        o.runtime = (!t.is_zero()).then_some(t);
        Ok(())
    })
    .aliases(&["timeout"]),
    value("uvio_io_timeout", |o, v| {
        let t = v.time()?;
        if t.is_zero() {
            return Err(v.invalid("a request timeout must be more than zero"));
        }
        o.io_timeout = Some(t);
        Ok(())
    })
    .help(" (how long one request may take, default 30s; past it: err=110, ETIMEDOUT)"),
    flag("time_based", |o, v| {
        o.time_based = v.boolean()?;
        Ok(())
    }),
    value("ramp_time", |o, v| {
        o.ramp_time = v.time()?;
        Ok(())
    }),
    value("randrepeat", |o, v| {
        o.randrepeat = v.boolean()?;
        Ok(())
    })
    .aliases(&["allrandrepeat"]),
    value("randseed", |o, v| {
        o.randseed = Some(v.int()?);
        // fio: setting randseed disables rand_repeatable's fixed default seed.
        Ok(())
    }),
    value("random_distribution", |o, v| {
        o.random_distribution = crate::bench::distribution::Distribution::parse(v.text)?;
        Ok(())
    })
    .help(" (random zipf:T pareto:H normal:D zoned:A/S:... zoned_abs:A/SIZE:...)"),
    flag("norandommap", |o, v| {
        o.norandommap = v.boolean()?;
        Ok(())
    }),
    value("verify", |o, v| {
        o.verify = match v.text {
            "0" | "null" => None,
            "crc32c" | "crc32c-intel" => Some(VerifyKind::Crc32c),
            "md5" => Some(VerifyKind::Md5),
            "xxhash" => Some(VerifyKind::Xxhash),
            "pattern" => Some(VerifyKind::Pattern),
            "meta" => Some(VerifyKind::Meta),
            other => {
                return Err(v.unsupported(format!(
                    "verify={other} is not supported (crc32c, md5, xxhash, meta, pattern)"
                )))
            }
        };
        Ok(())
    })
    .help(" (crc32c md5 xxhash meta pattern)"),
    value("verify_interval", |o, v| {
        o.verify_interval = Some(v.small()?);
        Ok(())
    }),
    value("verify_pattern", |o, v| {
        o.verify_pattern = Some(parse_pattern(v.text)?);
        Ok(())
    }),
    value("do_verify", |o, v| {
        o.do_verify = v.boolean()?;
        Ok(())
    }),
    value("verify_fatal", |o, v| {
        o.verify_fatal = v.boolean()?;
        Ok(())
    }),
    value("percentile_list", |o, v| {
        o.percentile_list = parse_percentiles(v.text)?;
        Ok(())
    }),
    flag("group_reporting", |o, v| {
        o.group_reporting = v.boolean()?;
        Ok(())
    }),
    value("cpus_allowed", |o, v| {
        o.cpus_allowed = Some(parse_cpu_list(v.text)?);
        Ok(())
    }),
    value("cpus_allowed_policy", |o, v| {
        o.cpus_allowed_policy = match v.text {
            "shared" => CpusPolicy::Shared,
            "split" => CpusPolicy::Split,
            other => return Err(v.invalid(format!("`{other}`: use shared or split"))),
        };
        Ok(())
    })
    .help(" (shared split)"),
    // fio's cpumask: bit i allows CPU i, for the bits of a C int (CPUs 0 to 31); it sets
    // what cpus_allowed sets, the later of the two winning.
    value("cpumask", |o, v| {
        let mask = v.int()?;
        if mask == 0 || mask >> 32 != 0 {
            return Err(v.invalid(format!(
                "{mask}: a mask of CPUs 0 to 31 with at least one bit set (use cpus_allowed \
                 for more)"
            )));
        }
        o.cpus_allowed = Some((0..32).filter(|i| mask & (1 << i) != 0).collect());
        Ok(())
    }),
    // Accepted for job-file compatibility: uvio always runs jobs as threads.
    flag("thread", |_, v| v.boolean().map(drop)),
    // A job file written for another engine runs on uvio's: the engine is the one thing
    // uvio replaces, so it says so, once (the filename must still name a uvio device).
    value("ioengine", |o, v| {
        match engine_kind(v.text) {
            Some(EngineKind::Uvio) => {}
            Some(EngineKind::Storage) => o
                .notes
                .push(format!("ioengine={} replaced by uvio", v.text)),
            Some(EngineKind::NotBlockIo(what)) => {
                return Err(v.unsupported(format!(
                    "ioengine={} {what}: there is no block I/O for uvio to run in its place",
                    v.text
                )))
            }
            None => {
                return Err(v.invalid(format!(
                    "`{}` is not an I/O engine fio knows (uvio runs the job file's block I/O \
                     on its own engine: ioengine=uvio, or any of fio's, such as libaio)",
                    v.text
                )))
            }
        }
        Ok(())
    })
    .help("=uvio (or any of fio's: replaced by uvio)"),
    value("direct", |o, v| {
        if !v.boolean()? {
            o.notes.push(ALWAYS_DIRECT.into());
        }
        Ok(())
    }),
    value("buffered", |o, v| {
        if v.boolean()? {
            o.notes.push(ALWAYS_DIRECT.into());
        }
        Ok(())
    }),
    // fio's `directory` is where `filename` lives; a uvio filename is a device address.
    value("directory", |o, v| {
        o.notes.push(format!(
            "directory={} ignored: filename= names a uvio device",
            v.text
        ));
        Ok(())
    }),
    value("slat_percentiles", |o, v| {
        o.slat_percentiles = v.boolean()?;
        Ok(())
    }),
    value("clat_percentiles", |o, v| {
        o.clat_percentiles = v.boolean()?;
        Ok(())
    }),
    value("lat_percentiles", |o, v| {
        o.lat_percentiles = v.boolean()?;
        Ok(())
    }),
    flag("stonewall", |o, v| {
        o.stonewall = v.boolean()?;
        Ok(())
    })
    .aliases(&["wait_for_previous"]),
    flag("new_group", |o, v| {
        o.new_group = v.boolean()?;
        Ok(())
    }),
    value("startdelay", |o, v| {
        o.start_delay = match v.text.split_once('-') {
            Some((lo, hi)) if !v.text.trim_start().starts_with('(') => {
                let part = |t| Value {
                    name: v.name,
                    text: t,
                };
                let (lo, hi) = (part(lo).time()?, part(hi).time()?);
                // fio swaps a range given high-low.
                (lo.min(hi), Some(lo.max(hi)))
            }
            _ => (v.time()?, None),
        };
        Ok(())
    })
    .help(" (T or T1-T2: after the benchmark's start)"),
    value("loops", |o, v| v.count(&mut o.loops)),
    value("rate", |o, v| {
        v.per_ddir(|d, part| {
            o.rate[d] = part.size()?;
            Ok(())
        })
    })
    .help(" (bytes/s, per direction)"),
    value("rate_iops", |o, v| {
        v.per_ddir(|d, part| {
            o.rate_iops[d] = part.int()?;
            Ok(())
        })
    }),
    value("rate_min", |o, v| {
        v.per_ddir(|d, part| {
            o.rate_min[d] = part.size()?;
            Ok(())
        })
    })
    .aliases(&["ratemin"]),
    value("rate_iops_min", |o, v| {
        v.per_ddir(|d, part| {
            o.rate_iops_min[d] = part.int()?;
            Ok(())
        })
    }),
    value("rate_cycle", |o, v| {
        let ms = v.int()?;
        if ms == 0 {
            return Err(v.invalid("must be at least 1 (ms)"));
        }
        o.rate_cycle = std::time::Duration::from_millis(ms);
        Ok(())
    })
    .aliases(&["ratecycle"])
    .help(" (ms)"),
    value("rate_process", |o, v| {
        o.rate_process = match v.text {
            "linear" => RateProcess::Linear,
            "poisson" => RateProcess::Poisson,
            other => return Err(v.invalid(format!("`{other}`: use linear or poisson"))),
        };
        Ok(())
    })
    .help(" (linear poisson)"),
    value("thinktime", |o, v| {
        o.thinktime = Some(v.time_us()?);
        Ok(())
    })
    .help(" (us)"),
    value("thinktime_spin", |o, v| {
        o.thinktime_spin = v.time_us()?;
        Ok(())
    }),
    value("thinktime_blocks", |o, v| v.count(&mut o.thinktime_blocks)),
    value("thinktime_blocks_type", |o, v| {
        o.thinktime_blocks_type = match v.text {
            "complete" => ThinkBlocks::Complete,
            "issue" => ThinkBlocks::Issue,
            other => return Err(v.invalid(format!("`{other}`: use complete or issue"))),
        };
        Ok(())
    }),
    // fio's offload mode exists so that submissions keep their schedule whatever the
    // completions do; a uvio job's polling thread submits on schedule without blocking on
    // completions, which is that already.
    value("blockalign", |o, v| {
        v.per_ddir(|d, part| {
            o.blockalign[d] = Some(part.size()?);
            Ok(())
        })
    })
    .aliases(&["ba"]),
    // uvio's random offsets come from its own generator; what fio's choice is for (every
    // block once per pass, with lfsr) the random map does.
    value("random_generator", |o, v| match v.text {
        "tausworthe" | "lfsr" | "tausworthe64" => {
            o.notes.push(format!(
                "random_generator={} replaced by uvio's own (the random map still visits \
                 every block once per pass)",
                v.text
            ));
            Ok(())
        }
        other => Err(v.invalid(format!("`{other}`: use tausworthe, lfsr or tausworthe64"))),
    }),
    value("zonemode", |_, v| match v.text {
        "none" => Ok(()),
        "strided" => Err(v.unsupported(
            "zonemode=strided: strided zones (zonesize, zoneskip) are not implemented",
        )),
        "zbd" => Err(v.unsupported("zonemode=zbd: zoned block devices are not supported")),
        other => Err(v.invalid(format!("`{other}`: use none, strided or zbd"))),
    })
    .help("=none"),
    value("io_submit_mode", |o, v| match v.text {
        "inline" => Ok(()),
        "offload" => {
            o.notes.push(
                "io_submit_mode=offload: the job's own polling thread submits on schedule \
                 without waiting for completions (uvio's inline mode does what offload is for)"
                    .into(),
            );
            Ok(())
        }
        other => Err(v.invalid(format!("`{other}`: use inline or offload"))),
    })
    .help(" (inline offload)"),
    // On a block device, fio's "write until the device is full" is the whole device from
    // `offset`: size= is dropped.
    value("fill_device", |o, v| {
        if v.boolean()? {
            o.size = None;
        }
        Ok(())
    })
    .aliases(&["fill_fs"]),
    // Serialises the creation of files; a uvio job creates none.
    value("create_serialize", |_, v| v.boolean().map(drop)),
    // Time series in fio's formats, written when the job ends (see `bench::logs`).
    optional("write_bw_log", |o, v| {
        o.logs.bw = Some(v.text.to_string());
        Ok(())
    })
    .help("[=PREFIX]"),
    optional("write_iops_log", |o, v| {
        o.logs.iops = Some(v.text.to_string());
        Ok(())
    })
    .help("[=PREFIX]"),
    optional("write_lat_log", |o, v| {
        o.logs.lat = Some(v.text.to_string());
        Ok(())
    })
    .help("[=PREFIX] (lat, slat and clat)"),
    optional("write_hist_log", |o, v| {
        o.logs.hist = Some(v.text.to_string());
        Ok(())
    })
    .help("[=PREFIX] (clat_hist, with log_hist_msec)"),
    value("log_avg_msec", |o, v| {
        o.logs.avg_msec = v.int()?;
        Ok(())
    }),
    value("log_hist_msec", |o, v| {
        o.logs.hist_msec = v.int()?;
        Ok(())
    }),
    value("log_hist_coarseness", |o, v| {
        let c = v.int()?;
        if c > 6 {
            return Err(v.invalid(format!("{c}: use 0 to 6")));
        }
        o.logs.hist_coarseness = c as u32;
        Ok(())
    })
    .help(" (0-6)"),
    value("log_max_value", |o, v| {
        o.logs.max_value = v.boolean()?;
        Ok(())
    }),
    value("per_job_logs", |o, v| {
        o.logs.per_job = v.boolean()?;
        Ok(())
    }),
    value("log_offset", |o, v| {
        o.logs.offset = v.boolean()?;
        Ok(())
    }),
    value("description", |o, v| {
        o.description = Some(v.text.to_string());
        Ok(())
    }),
];

/// The note for `direct=0` / `buffered=1`.
const ALWAYS_DIRECT: &str = "uvio I/O is always direct: there is no page cache (direct=0 and \
                             buffered=1 are ignored)";

/// fio options uvio knows of but does not implement: refused with a specific reason.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("kb_base", "sizes always use fio's default kb_base=1024"),
    ("unit_base", "output is always in bytes"),
    (
        "rate_ignore_thinktime",
        "think time always counts against the rate",
    ),
    ("number_ios", "use io_size"),
    (
        "iodepth_low",
        "the queue is refilled to iodepth at every reap",
    ),
    ("fsync", "flushes are not issued by the benchmark"),
    ("fdatasync", "flushes are not issued by the benchmark"),
    ("end_fsync", "flushes are not issued by the benchmark"),
    (
        "rw_sequencer",
        "rw=randread:N (N I/Os per random offset) is not supported",
    ),
    (
        "latency_target",
        "the search for the depth that meets a latency target is not implemented",
    ),
    (
        "latency_window",
        "the search for the depth that meets a latency target is not implemented",
    ),
    (
        "latency_percentile",
        "the search for the depth that meets a latency target is not implemented",
    ),
    ("zonesize", "strided zones are not implemented"),
    ("zoneskip", "strided zones are not implemented"),
    ("zonerange", "strided zones are not implemented"),
    (
        "bs_unaligned",
        "block sizes must be multiples of the logical block size",
    ),
    ("verify_backlog", "verification runs after the write phase"),
    ("verify_async", "verification runs in the job's thread"),
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
    (
        "significant_figures",
        "four significant figures, as fio's default",
    ),
    (
        "log_prio",
        "uvio gives I/Os no priority, so there is none to log",
    ),
    ("nrfiles", "one device per job"),
    ("filesize", "use size"),
    (
        "gtod_reduce",
        "latencies are always measured (with the TSC where it is steady, at little cost)",
    ),
    ("flow", "flow control between jobs is not implemented"),
    ("flow_id", "flow control between jobs is not implemented"),
    ("flow_sleep", "flow control between jobs is not implemented"),
    ("dedupe_percentage", "write buffers are always random data"),
    ("dedupe_mode", "write buffers are always random data"),
    (
        "buffer_compress_percentage",
        "write buffers are always random data",
    ),
    ("buffer_pattern", "write buffers are always random data"),
    (
        "numa_cpu_nodes",
        "NUMA placement is not implemented (use cpus_allowed)",
    ),
    ("numa_mem_policy", "NUMA placement is not implemented"),
    ("exitall", "jobs run to their own end"),
];

/// The canonical name of a supported option (resolving aliases), or the error naming it.
pub fn canonical(name: &str) -> Result<(&'static str, OptKind), OptionError> {
    lookup(name).map(|o| (o.name, o.kind))
}

/// The row of a supported option (by any of its names), or the error naming it.
pub fn lookup(name: &str) -> Result<&'static OptionDef, OptionError> {
    let lower = name.trim();
    if let Some(o) = OPTIONS
        .iter()
        .find(|o| o.name == lower || o.aliases.contains(&lower))
    {
        return Ok(o);
    }
    if let Some((_, why)) = UNSUPPORTED.iter().find(|(n, _)| *n == lower) {
        return Err(OptionError::Unsupported {
            name: lower.to_string(),
            why: (*why).to_string(),
        });
    }
    let hint = OPTIONS
        .iter()
        .flat_map(|o| std::iter::once(o.name).chain(o.aliases.iter().copied()))
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

/// The width `uvio bench --help` wraps the option list to (that of the text around it).
const HELP_WIDTH: usize = 93;

/// The "Job options:" paragraph of `uvio bench --help`: every option in table order, with
/// what its row says after the name, wrapped to [`HELP_WIDTH`].
pub fn help_listing() -> String {
    let mut out = String::new();
    let mut line = String::from("Job options:");
    for o in OPTIONS {
        let word = format!("{}{}", o.name, o.help);
        if line.len() + 1 + word.len() > HELP_WIDTH {
            out += &line;
            out.push('\n');
            line = format!("  {word}");
        } else {
            line.push(' ');
            line += &word;
        }
    }
    out += &line;
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_lists_every_option_in_order_within_the_width() {
        let listing = help_listing();
        assert!(listing.lines().all(|l| l.len() <= HELP_WIDTH), "{listing}");
        let words: Vec<String> = OPTIONS.iter().map(|o| o.name.to_owned() + o.help).collect();
        assert_eq!(
            listing.split_whitespace().collect::<Vec<_>>().join(" "),
            format!("Job options: {}", words.join(" "))
        );
    }
}
