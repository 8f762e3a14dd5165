//! Where jobs come from: the command line (`--name=job --rw=randread ...`, options before the
//! first `--name` being global) and fio job files (INI with `[global]` and job sections,
//! `;`/`#` comments, also after a value as fio's `strip_blank_end` cuts them, `include FILE`,
//! `${VAR}` expansion, `--section=NAME` to run only some sections). In values, `$pagesize`,
//! `$mb_memory` and `$ncpus` are replaced and the arithmetic around them worked out, as fio
//! does ([`substitute_keywords`]).
//!
//! Jobs are then split as fio runs them: a `stonewall` job (and the first job of every job
//! file after the first, as fio stonewalls between files) waits for all jobs before it, so
//! it starts a new [`Group`] of jobs that run together; `stonewall` and `new_group` start a
//! new reporting group (fio's `groupid`).

use std::path::{Path, PathBuf};

use super::keywords::{substitute_keywords, Keywords};
use super::options::{canonical, JobOptions, OptKind, OptionError, OutputFormats};

/// Errors from the command line or a job file.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("{place}: {source}")]
    Option {
        place: String,
        #[source]
        source: OptionError,
    },
    #[error("{file}:{line}: {what}")]
    Syntax {
        file: String,
        line: usize,
        what: String,
    },
    /// About the job file as a whole (it is empty, or has no job section).
    #[error("{file}: {what}")]
    File { file: String, what: String },
    #[error("{file}:{line}: include {path}: {source}")]
    Include {
        file: String,
        line: usize,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading job file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
}

/// `--eta`: when to show the live status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Eta {
    /// When stderr is a terminal.
    #[default]
    Auto,
    Always,
    Never,
}

/// Jobs that start together, after every job of the group before has ended (fio's
/// `stonewall`), and are reported in one or more reporting groups.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Group {
    pub jobs: Vec<JobOptions>,
    /// Each job's reporting group (fio's `groupid`, counted over the whole invocation).
    pub reporting: Vec<usize>,
    /// Options set in `[global]` sections (or before the first `--name`), as written.
    pub global: Vec<(String, String)>,
}

/// What `uvio bench` was asked to do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Invocation {
    pub groups: Vec<Group>,
    pub formats: OutputFormats,
    /// `--output=FILE`: the report goes there instead of stdout.
    pub output: Option<PathBuf>,
    pub eta: Eta,
    pub show_version: bool,
    pub show_help: bool,
    /// `--parse-only`: check the jobs and stop.
    pub parse_only: bool,
    /// `--section=NAME` (repeatable): run only these sections of the job files.
    pub sections: Vec<String>,
    /// What was accepted with a change of meaning (`ioengine=libaio replaced by uvio`), each
    /// once, in the order first met.
    pub notes: Vec<String>,
    /// `--status-interval=T`: the whole report every T while the jobs run, as fio prints it.
    pub status_interval: Option<std::time::Duration>,
    /// `--eta-newline=T`: the status line starts a new line every T instead of overwriting.
    pub eta_newline: Option<std::time::Duration>,
}

/// Builds sections: the running `[global]`, and the jobs started from it.
struct Builder {
    global: JobOptions,
    current: Option<JobOptions>,
    group: Group,
    notes: Vec<String>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            global: JobOptions::default(),
            current: None,
            group: Group::default(),
            notes: Vec::new(),
        }
    }

    fn finish_job(&mut self) {
        if let Some(job) = self.current.take() {
            self.group.jobs.push(job);
        }
    }

    fn start_global(&mut self) {
        self.finish_job();
    }

    fn start_job(&mut self, name: &str) {
        self.finish_job();
        let mut job = self.global.clone();
        job.name = name.to_string();
        // "job options" lists what the job section itself set.
        job.explicit.clear();
        self.current = Some(job);
    }

    fn set(&mut self, key: &str, value: Option<&str>) -> Result<(), OptionError> {
        let value = value
            .map(|v| substitute_keywords(key, v, &Keywords::of_this_system()))
            .transpose()?;
        let value = value.as_deref();
        let options = match &mut self.current {
            Some(job) => {
                job.set(key, value)?;
                job
            }
            None => {
                self.global.set(key, value)?;
                self.group.global = self.global.explicit.clone();
                &mut self.global
            }
        };
        for note in options.notes.drain(..) {
            if !self.notes.contains(&note) {
                self.notes.push(note);
            }
        }
        Ok(())
    }

    fn finish(mut self) -> (Group, Vec<String>) {
        self.finish_job();
        (self.group, self.notes)
    }
}

fn is_meta(key: &str) -> bool {
    matches!(
        key,
        "output-format"
            | "output"
            | "eta"
            | "version"
            | "help"
            | "parse-only"
            | "minimal"
            | "section"
            | "terse-version"
            | "status-interval"
            | "eta-newline"
    )
}

/// fio's `strip_blank_end`: a line ends at its first `;` or `#` (a comment, also after a
/// value), and trailing blanks go.
fn strip_comment(line: &str) -> &str {
    let line = line.split(';').next().unwrap_or_default();
    let line = line.split('#').next().unwrap_or_default();
    line.trim()
}

/// fio's reporting-group count: the current `groupid` and how many jobs it has so far.
#[derive(Debug, Default)]
struct ReportNumbering {
    id: usize,
    jobs: usize,
}

/// Splits parsed jobs where fio's `stonewall` does and numbers their reporting groups as
/// fio's `add_job` does (a `stonewall` or `new_group` job opens a new one, unless the
/// current one is still empty). `file_stonewall`: the first job waits for everything before
/// it (a job file after the first).
fn split_groups(parsed: Group, file_stonewall: bool, n: &mut ReportNumbering) -> Vec<Group> {
    let empty = || Group {
        global: parsed.global.clone(),
        ..Group::default()
    };
    let mut out = Vec::new();
    let mut current = empty();
    for (i, job) in parsed.jobs.into_iter().enumerate() {
        let stonewall = job.stonewall || (i == 0 && file_stonewall);
        if (stonewall || job.new_group) && n.jobs > 0 {
            n.id += 1;
            n.jobs = 0;
        }
        n.jobs += 1;
        if stonewall && !current.jobs.is_empty() {
            out.push(std::mem::replace(&mut current, empty()));
        }
        current.reporting.push(n.id);
        current.jobs.push(job);
    }
    if !current.jobs.is_empty() {
        out.push(current);
    }
    out
}

/// Parses `uvio bench` arguments (without the `bench` word).
pub fn parse_args(args: &[String]) -> Result<Invocation, ParseError> {
    let mut inv = Invocation::default();
    let mut builder = Builder::new();
    let mut files = Vec::new();
    let mut job_options = false;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(stripped) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            files.push(PathBuf::from(arg));
            continue;
        };
        let (key, inline) = match stripped.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (stripped, None),
        };
        let place = || format!("command line `{arg}`");
        if is_meta(key) || key == "h" || key == "V" {
            let mut value = |what: &str| -> Result<String, ParseError> {
                if let Some(v) = inline {
                    return Ok(v.to_string());
                }
                let v = args
                    .get(i)
                    .cloned()
                    .ok_or_else(|| ParseError::Usage(format!("--{key} needs a value ({what})")))?;
                i += 1;
                Ok(v)
            };
            match key {
                "output-format" => {
                    inv.formats = OutputFormats::parse(&value("normal, json or json+")?).map_err(
                        |source| ParseError::Option {
                            place: place(),
                            source,
                        },
                    )?
                }
                "output" => inv.output = Some(PathBuf::from(value("a file")?)),
                "eta" => {
                    inv.eta = match value("always, never or auto")?.as_str() {
                        "always" => Eta::Always,
                        "never" => Eta::Never,
                        "auto" => Eta::Auto,
                        other => {
                            return Err(ParseError::Usage(format!(
                                "--eta={other}: use always, never or auto"
                            )))
                        }
                    }
                }
                "version" | "V" => inv.show_version = true,
                "help" | "h" => inv.show_help = true,
                "parse-only" => inv.parse_only = true,
                "section" => inv.sections.push(value("a job section's name")?),
                // fio: --minimal is terse output alone.
                "minimal" => {
                    inv.formats = OutputFormats {
                        terse: true,
                        ..OutputFormats::default()
                    }
                }
                "terse-version" => {
                    let v = value("3")?;
                    if v.trim() != "3" {
                        return Err(ParseError::Option {
                            place: place(),
                            source: OptionError::Unsupported {
                                name: key.to_string(),
                                why: format!("terse version {v}: only version 3 is written"),
                            },
                        });
                    }
                }
                "status-interval" | "eta-newline" => {
                    let v = value("a time, such as 1 or 500ms")?;
                    let t = crate::units::parse_time(&v).map_err(|source| ParseError::Option {
                        place: place(),
                        source: OptionError::Value {
                            name: key.to_string(),
                            source,
                        },
                    })?;
                    if t < std::time::Duration::from_millis(100) {
                        return Err(ParseError::Usage(format!("--{key}={v}: at least 100ms")));
                    }
                    if key == "status-interval" {
                        inv.status_interval = Some(t);
                    } else {
                        inv.eta_newline = Some(t);
                    }
                }
                other => return Err(ParseError::Usage(format!("--{other}: not a bench option"))),
            }
            continue;
        }
        let (name, kind) = canonical(key).map_err(|source| ParseError::Option {
            place: place(),
            source,
        })?;
        // getopt_long semantics: a value option may take the next argument; a flag may not.
        let value: Option<String> = match (inline, kind) {
            (Some(v), _) => Some(v.to_string()),
            (None, OptKind::Flag | OptKind::Optional) => None,
            (None, OptKind::Value) => {
                let v = args.get(i).cloned().ok_or_else(|| ParseError::Option {
                    place: place(),
                    source: OptionError::MissingValue(name.to_string()),
                })?;
                i += 1;
                Some(v)
            }
        };
        job_options = true;
        if name == "name" {
            let n = value.unwrap_or_default();
            if n == "global" {
                builder.start_global();
            } else {
                builder.start_job(&n);
            }
            continue;
        }
        builder
            .set(name, value.as_deref())
            .map_err(|source| ParseError::Option {
                place: place(),
                source,
            })?;
    }
    if inv.formats == OutputFormats::default() {
        inv.formats.normal = true;
    }
    if !files.is_empty() && job_options {
        return Err(ParseError::Usage(
            "job options on the command line cannot be combined with job files; put them \
             in the job file"
                .into(),
        ));
    }
    let mut numbering = ReportNumbering::default();
    let mut add = |inv: &mut Invocation, group: Group, notes: Vec<String>, file_stonewall| {
        inv.groups
            .extend(split_groups(group, file_stonewall, &mut numbering));
        for note in notes {
            if !inv.notes.contains(&note) {
                inv.notes.push(note);
            }
        }
    };
    for (i, f) in files.iter().enumerate() {
        let (group, notes) = parse_job_file(f, &inv.sections)?;
        add(&mut inv, group, notes, i > 0);
    }
    if files.is_empty() {
        let (group, notes) = builder.finish();
        if !group.jobs.is_empty() {
            add(&mut inv, group, notes, false);
        }
    }
    if inv.groups.is_empty() && !inv.show_help && !inv.show_version {
        return Err(ParseError::Usage(
            "no jobs: give --name=JOB with options, or a job file (uvio bench --help)".into(),
        ));
    }
    Ok(inv)
}

/// Reads and parses a job file, keeping only `sections` (all when empty): its jobs in file
/// order, and the notes about what was accepted with a change of meaning.
pub fn parse_job_file(
    path: &Path,
    sections: &[String],
) -> Result<(Group, Vec<String>), ParseError> {
    let text = std::fs::read_to_string(path).map_err(|source| ParseError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_job_sections(&text, &path.display().to_string(), path.parent(), sections)
}

/// Expands `${VAR}` from the environment (empty when unset), as fio does.
fn expand_env(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find('}') {
            Some(end) => {
                let var = &rest[start + 2..start + 2 + end];
                out.push_str(&std::env::var(var).unwrap_or_default());
                rest = &rest[start + 3 + end..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parses job-file text; `file` names it in errors, `dir` resolves `include`.
#[cfg(test)]
pub fn parse_job_text(text: &str, file: &str, dir: Option<&Path>) -> Result<Group, ParseError> {
    parse_job_sections(text, file, dir, &[]).map(|(g, _)| g)
}

/// Where the line parser is: inside a section or not, and whether `--section` skips it.
#[derive(Debug, Default)]
struct LineState {
    in_section: bool,
    skipping: bool,
}

/// Parses job-file text, keeping only `sections` (all when empty; `[global]` always).
pub fn parse_job_sections(
    text: &str,
    file: &str,
    dir: Option<&Path>,
    sections: &[String],
) -> Result<(Group, Vec<String>), ParseError> {
    let mut builder = Builder::new();
    let mut state = LineState::default();
    parse_lines(text, file, dir, &mut builder, &mut state, sections, 0)?;
    let (group, notes) = builder.finish();
    if group.jobs.is_empty() && !sections.is_empty() {
        return Err(ParseError::File {
            file: file.to_string(),
            what: format!("no section named {}", sections.join(" or ")),
        });
    }
    if group.jobs.is_empty() {
        let blank = text
            .lines()
            .map(str::trim)
            .all(|l| l.is_empty() || l.starts_with(';') || l.starts_with('#'));
        return Err(ParseError::File {
            file: file.to_string(),
            what: if blank {
                "the job file is empty (it needs a [job] section)".into()
            } else {
                "no job sections (only [global])".into()
            },
        });
    }
    Ok((group, notes))
}

fn parse_lines(
    text: &str,
    file: &str,
    dir: Option<&Path>,
    builder: &mut Builder,
    state: &mut LineState,
    sections: &[String],
    depth: u32,
) -> Result<(), ParseError> {
    let syntax = |line: usize, what: String| ParseError::Syntax {
        file: file.to_string(),
        line,
        what,
    };
    for (n, raw) in text.lines().enumerate() {
        let lineno = n + 1;
        // Comments go first, as in fio: a `;` or `#` that `${VAR}` brings in stays.
        let line = expand_env(strip_comment(raw));
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            if depth > 0 {
                return Err(syntax(
                    lineno,
                    "an included file may not contain sections".into(),
                ));
            }
            let name = name
                .strip_suffix(']')
                .ok_or_else(|| syntax(lineno, format!("`{line}`: missing `]`")))?
                .trim();
            if name.is_empty() {
                return Err(syntax(lineno, "empty section name".into()));
            }
            // fio takes any section whose name starts with "global" as global.
            let global = name.starts_with("global");
            state.skipping = !global && !sections.is_empty() && !sections.iter().any(|s| s == name);
            state.in_section = true;
            if state.skipping {
                // Options up to the next section are dropped with it.
                builder.finish_job();
            } else if global {
                builder.start_global();
            } else {
                builder.start_job(name);
            }
            continue;
        }
        if state.skipping {
            continue;
        }
        if let Some(inc) = line.strip_prefix("include ") {
            if depth > 8 {
                return Err(syntax(lineno, "includes nested too deeply".into()));
            }
            let inc = inc.trim();
            let path = match dir {
                Some(d) if !Path::new(inc).is_absolute() => d.join(inc),
                _ => PathBuf::from(inc),
            };
            let text = std::fs::read_to_string(&path).map_err(|source| ParseError::Include {
                file: file.to_string(),
                line: lineno,
                path: path.display().to_string(),
                source,
            })?;
            parse_lines(
                &text,
                &path.display().to_string(),
                path.parent(),
                builder,
                state,
                sections,
                depth + 1,
            )?;
            continue;
        }
        if !state.in_section {
            return Err(syntax(
                lineno,
                format!("`{line}` is outside of any [section]"),
            ));
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (line, None),
        };
        builder
            .set(key, value)
            .map_err(|source| ParseError::Option {
                place: format!("{file}:{lineno}"),
                source,
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::options::{RwMode, VerifyKind};
    use super::*;
    use std::time::Duration;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn a_job_file_with_global_and_two_jobs() {
        let text = "\
; a comment
# another
[global]
filename=0000:00:05.0
bs=4k
iodepth=32
runtime=10
time_based

[reader]
rw=randread
numjobs=2

[writer]
rw=randwrite
bs=64k
iodepth=8
";
        let g = parse_job_text(text, "t.fio", None).unwrap();
        assert_eq!(g.jobs.len(), 2);
        let (r, w) = (&g.jobs[0], &g.jobs[1]);
        assert_eq!(r.name, "reader");
        assert_eq!(r.rw, RwMode::RandRead);
        assert_eq!((r.bs[0], r.iodepth, r.numjobs), (4096, 32, 2));
        assert_eq!(r.filename.as_deref(), Some("0000:00:05.0"));
        assert!(r.time_based);
        assert_eq!(r.runtime, Some(Duration::from_secs(10)));
        assert_eq!(w.name, "writer");
        assert_eq!(
            (w.rw, w.bs[1], w.iodepth, w.numjobs),
            (RwMode::RandWrite, 65536, 8, 1)
        );
        // Job options list only what the section set; global ones are separate.
        assert_eq!(w.explicit("bs"), Some("64k"));
        assert_eq!(w.explicit("filename"), None);
        assert!(g.global.iter().any(|(k, v)| k == "iodepth" && v == "32"));
        assert!(g
            .global
            .iter()
            .any(|(k, v)| k == "time_based" && v.is_empty()));
    }

    #[test]
    fn a_global_section_applies_only_to_jobs_below_it() {
        let text = "[a]\nfilename=x\n[global]\niodepth=4\n[b]\nfilename=x\n";
        let g = parse_job_text(text, "t.fio", None).unwrap();
        assert_eq!((g.jobs[0].iodepth, g.jobs[1].iodepth), (1, 4));
    }

    #[test]
    fn job_file_errors_name_the_file_line_and_option() {
        let e = parse_job_text("[j]\nrate_ignore_thinktime=1\n", "t.fio", None).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("t.fio:2") && msg.contains("rate_ignore_thinktime"),
            "{msg}"
        );
        let e = parse_job_text("[j]\nfoo=1\n", "t.fio", None).unwrap_err();
        assert!(e.to_string().contains("unknown option `foo`"), "{e}");
        assert!(parse_job_text("bs=4k\n[j]\n", "t.fio", None).is_err());
        assert!(parse_job_text("[global]\nbs=4k\n", "t.fio", None).is_err());
        assert!(parse_job_text("[j\n", "t.fio", None).is_err());
    }

    #[test]
    fn an_empty_job_file_says_so_without_a_line_zero() {
        for text in ["", "\n\n", "; only a comment\n# and another\n"] {
            let e = parse_job_text(text, "e.fio", None).unwrap_err().to_string();
            assert_eq!(
                e, "e.fio: the job file is empty (it needs a [job] section)",
                "{text:?}"
            );
        }
        let e = parse_job_text("[global]\nbs=4k\n", "g.fio", None)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "g.fio: no job sections (only [global])");
    }

    #[test]
    fn a_missing_include_names_the_file_and_line_that_include_it() {
        let dir = std::env::temp_dir();
        let e = parse_job_text(
            "[j]\nfilename=x\ninclude uvio-no-such-include.fio\n",
            "main.fio",
            Some(&dir),
        )
        .unwrap_err()
        .to_string();
        let missing = dir.join("uvio-no-such-include.fio");
        assert!(
            e.starts_with(&format!("main.fio:3: include {}: ", missing.display())),
            "{e}"
        );
    }

    #[test]
    fn environment_variables_expand() {
        std::env::set_var("UVIO_BENCH_TEST_DEPTH", "16");
        let g = parse_job_text("[j]\niodepth=${UVIO_BENCH_TEST_DEPTH}\n", "t", None).unwrap();
        assert_eq!(g.jobs[0].iodepth, 16);
    }

    #[test]
    fn command_line_options_before_the_first_name_are_global() {
        let inv = parse_args(&args(
            "--filename=0000:00:05.0 --rw=randread --bs 4k -iodepth=8 --time_based \
             --runtime=5 --name=a --name=b --rw=read --output-format=json+",
        ))
        .unwrap();
        let g = &inv.groups[0];
        assert_eq!(g.jobs.len(), 2);
        assert_eq!(
            (g.jobs[0].name.as_str(), g.jobs[0].rw),
            ("a", RwMode::RandRead)
        );
        assert_eq!((g.jobs[1].name.as_str(), g.jobs[1].rw), ("b", RwMode::Read));
        assert!(g.jobs.iter().all(|j| j.iodepth == 8 && j.time_based));
        assert!(inv.formats.json_plus && !inv.formats.normal);
        // `--name=global` is the global section, as in fio's documented equivalence.
        let inv = parse_args(&args(
            "--name=global --rw=randread --size=128m --name=job1 --name=job2",
        ))
        .unwrap();
        let g = &inv.groups[0];
        assert_eq!(g.jobs.len(), 2);
        assert!(g.jobs.iter().all(|j| j.rw == RwMode::RandRead));
        let inv = parse_args(&args("--name=v --verify=md5 --rw=write")).unwrap();
        assert_eq!(inv.groups[0].jobs[0].verify, Some(VerifyKind::Md5));
        assert!(inv.formats.normal);
    }

    #[test]
    fn inline_comments_are_stripped_as_fio_does() {
        // tiobench-example.fio: `numjobs=4\t; 4 simultaneous threads for each job`;
        // surface-scan.fio: `filename=datafile.tmp\t; or use a full disk`.
        let text = "[j] ; the job\nnumjobs=4\t; four threads\nbs=8k # eight\n\
                    filename=0000:00:05.0\t; or /dev/sda\ndescription=a;b#c\n";
        let g = parse_job_text(text, "t.fio", None).unwrap();
        let j = &g.jobs[0];
        assert_eq!((j.name.as_str(), j.numjobs, j.bs[0]), ("j", 4, 8192));
        assert_eq!(j.filename.as_deref(), Some("0000:00:05.0"));
        // fio cuts at the first `;` whatever it is in.
        assert_eq!(j.description.as_deref(), Some("a"));
        assert_eq!(strip_comment("bs=4k ; comment"), "bs=4k");
        assert_eq!(strip_comment("  # all comment"), "");
        assert_eq!(strip_comment("rw=read#x;y"), "rw=read");
    }

    #[test]
    fn keywords_take_this_systems_values_in_a_job() {
        // In a job: the real system's values.
        let g = parse_job_text("[j]\niodepth=$ncpus*2\nbs=$pagesize\n", "t", None).unwrap();
        let here = Keywords::of_this_system();
        assert!(
            here.pagesize >= 4096 && here.ncpus >= 1 && here.mb_memory >= 1,
            "{here:?}"
        );
        assert_eq!(u64::from(g.jobs[0].iodepth), here.ncpus * 2);
        assert_eq!(g.jobs[0].bs[0], here.pagesize);
    }

    fn write_temp(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("uvio-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn stonewall_splits_groups_and_new_group_splits_reports() {
        let text = "[global]\nfilename=0000:00:05.0\n\
                    [a]\n[b]\nnew_group\n[c]\nstonewall\n[d]\n[e]\nwait_for_previous\n";
        let path = write_temp("stonewall.fio", text);
        let p = path.display().to_string();
        let inv = parse_args(std::slice::from_ref(&p)).unwrap();
        let names = |g: &Group| g.jobs.iter().map(|j| j.name.clone()).collect::<Vec<_>>();
        // Run sets: a b | c d | e; reporting groups a=0, b=1 (new_group), c d=2, e=3.
        assert_eq!(inv.groups.len(), 3);
        assert_eq!(names(&inv.groups[0]), ["a", "b"]);
        assert_eq!(inv.groups[0].reporting, [0, 1]);
        assert_eq!(names(&inv.groups[1]), ["c", "d"]);
        assert_eq!(inv.groups[1].reporting, [2, 2]);
        assert_eq!(names(&inv.groups[2]), ["e"]);
        assert_eq!(inv.groups[2].reporting, [3]);
        // A second job file waits for the first, in a reporting group of its own.
        let inv = parse_args(&[p.clone(), p.clone()]).unwrap();
        assert_eq!(inv.groups.len(), 6);
        assert_eq!(names(&inv.groups[3]), ["a", "b"]);
        assert_eq!(inv.groups[3].reporting, [4, 5]);
        // A stonewall on the first job opens nothing: there is nothing before it.
        let inv = parse_args(&args(
            "--filename=0000:00:05.0 --name=x --stonewall --name=y --new_group",
        ))
        .unwrap();
        assert_eq!(inv.groups.len(), 1);
        assert_eq!(inv.groups[0].reporting, [0, 1]);
        // --section picks jobs (global sections always apply).
        let inv = parse_args(&[p.clone(), "--section=d".into(), "--section=b".into()]).unwrap();
        let all: Vec<String> = inv.groups.iter().flat_map(names).collect();
        assert_eq!(all, ["b", "d"]);
        assert!(inv
            .groups
            .iter()
            .flat_map(|g| &g.jobs)
            .all(|j| j.filename.is_some()));
        let e = parse_args(&[p, "--section=zz".into()])
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("no section named zz"), "{e}");
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn notes_are_collected_once_each() {
        let text = "[global]\nioengine=libaio\ndirect=0\n[a]\n[b]\nioengine=libaio\n\
                    buffered=1\n[c]\nioengine=io_uring\n";
        let path = write_temp("notes.fio", text);
        let inv = parse_args(&[path.display().to_string()]).unwrap();
        assert_eq!(inv.notes.len(), 3, "{:?}", inv.notes);
        assert_eq!(inv.notes[0], "ioengine=libaio replaced by uvio");
        assert!(inv.notes[1].starts_with("uvio I/O is always direct"));
        assert_eq!(inv.notes[2], "ioengine=io_uring replaced by uvio");
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn the_command_line_refuses_what_it_does_not_support() {
        let e = parse_args(&args("--name=a --rate_ignore_thinktime=1")).unwrap_err();
        assert!(e.to_string().contains("rate_ignore_thinktime"), "{e}");
        let e = parse_args(&args("--name=a --bogus=1")).unwrap_err();
        assert!(e.to_string().contains("`bogus`"), "{e}");
        let inv = parse_args(&args("--output-format=terse --name=a")).unwrap();
        assert!(inv.formats.terse && !inv.formats.normal && !inv.formats.json);
        let inv = parse_args(&args("--output-format=json --minimal --name=a")).unwrap();
        assert!(inv.formats.terse && !inv.formats.json);
        assert!(parse_args(&args("--terse-version=2 --name=a")).is_err());
        assert!(parse_args(&args("--terse-version=3 --name=a")).is_ok());
        let inv = parse_args(&args("--status-interval=2 --eta-newline=500ms --name=a")).unwrap();
        assert_eq!(inv.status_interval, Some(std::time::Duration::from_secs(2)));
        assert_eq!(inv.eta_newline, Some(std::time::Duration::from_millis(500)));
        assert!(parse_args(&args("--status-interval=10ms --name=a")).is_err());
        assert!(parse_args(&args("--rw=read")).is_err(), "no job");
        assert!(parse_args(&args("--name=a --iodepth")).is_err());
    }
}
