//! Where jobs come from: the command line (`--name=job --rw=randread ...`, options before the
//! first `--name` being global) and fio job files (INI with `[global]` and job sections,
//! `;`/`#` comments, `include FILE`, `${VAR}` expansion). Each job file is its own group,
//! run after the previous one (fio stonewalls between files); command-line jobs are one group.

use std::path::{Path, PathBuf};

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

/// A group of jobs that run at the same time and are summarised together.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Group {
    pub jobs: Vec<JobOptions>,
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
}

/// Builds sections: the running `[global]`, and the jobs started from it.
struct Builder {
    global: JobOptions,
    current: Option<JobOptions>,
    group: Group,
}

impl Builder {
    fn new() -> Self {
        Builder {
            global: JobOptions::default(),
            current: None,
            group: Group::default(),
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
        match &mut self.current {
            Some(job) => job.set(key, value),
            None => {
                self.global.set(key, value)?;
                self.group.global = self.global.explicit.clone();
                Ok(())
            }
        }
    }

    fn finish(mut self) -> Group {
        self.finish_job();
        self.group
    }
}

fn is_meta(key: &str) -> bool {
    matches!(
        key,
        "output-format" | "output" | "eta" | "version" | "help" | "parse-only" | "minimal"
    )
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
                _ => {
                    return Err(ParseError::Option {
                        place: place(),
                        source: OptionError::Unsupported {
                            name: key.to_string(),
                            why: "terse output is not supported (use --output-format=json)".into(),
                        },
                    })
                }
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
            (None, OptKind::Flag) => None,
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
    for f in &files {
        inv.groups.push(parse_job_file(f)?);
    }
    if files.is_empty() {
        let group = builder.finish();
        if !group.jobs.is_empty() {
            inv.groups.push(group);
        }
    }
    if inv.groups.is_empty() && !inv.show_help && !inv.show_version {
        return Err(ParseError::Usage(
            "no jobs: give --name=JOB with options, or a job file (uvio bench --help)".into(),
        ));
    }
    Ok(inv)
}

/// Reads and parses a job file.
pub fn parse_job_file(path: &Path) -> Result<Group, ParseError> {
    let text = std::fs::read_to_string(path).map_err(|source| ParseError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_job_text(&text, &path.display().to_string(), path.parent())
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
pub fn parse_job_text(text: &str, file: &str, dir: Option<&Path>) -> Result<Group, ParseError> {
    let mut builder = Builder::new();
    let mut in_section = false;
    parse_lines(text, file, dir, &mut builder, &mut in_section, 0)?;
    let group = builder.finish();
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
    Ok(group)
}

fn parse_lines(
    text: &str,
    file: &str,
    dir: Option<&Path>,
    builder: &mut Builder,
    in_section: &mut bool,
    depth: u32,
) -> Result<(), ParseError> {
    let syntax = |line: usize, what: String| ParseError::Syntax {
        file: file.to_string(),
        line,
        what,
    };
    for (n, raw) in text.lines().enumerate() {
        let lineno = n + 1;
        let line = expand_env(raw.trim());
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
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
            if name == "global" {
                builder.start_global();
            } else {
                builder.start_job(name);
            }
            *in_section = true;
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
                in_section,
                depth + 1,
            )?;
            continue;
        }
        if !*in_section {
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
        let e = parse_job_text("[j]\nrate_iops=100\n", "t.fio", None).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("t.fio:2") && msg.contains("rate_iops"),
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
    fn the_command_line_refuses_what_it_does_not_support() {
        let e = parse_args(&args("--name=a --rate_iops=100")).unwrap_err();
        assert!(e.to_string().contains("rate_iops"), "{e}");
        let e = parse_args(&args("--name=a --bogus=1")).unwrap_err();
        assert!(e.to_string().contains("`bogus`"), "{e}");
        assert!(parse_args(&args("--output-format=terse --name=a")).is_err());
        assert!(parse_args(&args("--rw=read")).is_err(), "no job");
        assert!(parse_args(&args("--name=a --iodepth")).is_err());
    }
}
