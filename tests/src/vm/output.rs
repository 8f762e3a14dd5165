//! [`VmOutput`]: what a guest run produced, read from the markers the guest helpers print on
//! the console.

use std::fmt;
use std::process::ExitStatus;
use std::time::Duration;

use super::host::tail;

/// One `check NAME CMD...` from the guest script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The NAME given to `check`.
    pub name: String,
    /// Everything the command printed (stdout and stderr interleaved), CRs removed.
    pub output: String,
    /// The command's exit status.
    pub rc: i32,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "--- section {} (rc={}) ---", self.name, self.rc)?;
        f.write_str(&self.output)?;
        if !self.output.ends_with('\n') && !self.output.is_empty() {
            writeln!(f)?;
        }
        Ok(())
    }
}

/// What a guest run produced. `Display` (and `Debug`) print everything, console included, so
/// `assert!(cond, "{out}")` gives a useful failure message.
#[derive(Clone)]
pub struct VmOutput {
    /// The serial console, CRs removed.
    pub console: String,
    /// The test script's exit status, from `@@UVIO-EXIT=<rc>@@`; `None` if the guest crashed
    /// or was killed before the script ended.
    pub exit_code: Option<i32>,
    /// Sections from `check`, in order.
    pub sections: Vec<Section>,
    /// QEMU's exit status (`None` if it was killed on timeout).
    pub qemu_status: Option<ExitStatus>,
    /// What QEMU printed on stderr.
    pub qemu_stderr: String,
    /// True if the guest was killed because it ran out of time.
    pub timed_out: bool,
    /// Wall time from starting QEMU to its exit.
    pub elapsed: Duration,
    /// The QEMU command line, for reproducing a run by hand.
    pub command: String,
    pub(super) unfinished: Vec<String>,
}

impl VmOutput {
    /// The section `check NAME ...` produced. Panics with the whole console if there is none.
    pub fn section(&self, name: &str) -> &Section {
        if let Some(s) = self.try_section(name) {
            return s;
        }
        let why = if self.unfinished.iter().any(|n| n == name) {
            "started but never ended (the guest hung, crashed or was killed inside it)"
        } else {
            "was never started"
        };
        panic!("guest section {name:?} {why}\n{self}");
    }

    /// The first section named `name`, if any.
    pub fn try_section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Modules `/init` failed to load (guest paths).
    pub fn insmod_failures(&self) -> Vec<String> {
        self.console
            .lines()
            .filter_map(|l| l.strip_prefix("@@UVIO-INSMOD-FAILED "))
            .filter_map(|l| l.strip_suffix("@@"))
            .map(str::to_string)
            .collect()
    }

    /// Guest uptime in seconds when `/init` started, and when the test script started (after
    /// module loading), if the guest got that far.
    pub fn guest_uptimes(&self) -> (Option<f64>, Option<f64>) {
        let find = |prefix: &str| {
            self.console
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .and_then(|r| r.strip_suffix("@@"))
                .and_then(|v| v.parse().ok())
        };
        (
            find("@@UVIO-BOOTED uptime="),
            find("@@UVIO-SCRIPT-START uptime="),
        )
    }

    /// Panics with everything unless the script exited 0 and every module loaded.
    pub fn assert_success(&self) {
        assert!(
            self.exit_code == Some(0) && self.insmod_failures().is_empty(),
            "guest run failed (exit code {:?}, insmod failures {:?})\n{self}",
            self.exit_code,
            self.insmod_failures()
        );
    }
}

impl fmt::Display for VmOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "=== uvio guest: exit_code={:?} timed_out={} qemu={} elapsed={:.1?} ===",
            self.exit_code,
            self.timed_out,
            self.qemu_status
                .map_or_else(|| "killed".to_string(), |s| s.to_string()),
            self.elapsed
        )?;
        writeln!(f, "--- qemu command ---\n{}", self.command)?;
        if !self.qemu_stderr.trim().is_empty() {
            writeln!(
                f,
                "--- qemu stderr ---\n{}",
                tail(&self.qemu_stderr, 20_000)
            )?;
        }
        writeln!(f, "--- console ---")?;
        f.write_str(&self.console)?;
        if !self.console.ends_with('\n') {
            writeln!(f)?;
        }
        writeln!(f, "=== end of guest console ===")
    }
}

impl fmt::Debug for VmOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

pub(super) fn parse_exit_code(console: &str) -> Option<i32> {
    console
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("@@UVIO-EXIT="))
        .and_then(|r| r.strip_suffix("@@"))
        .and_then(|v| v.parse().ok())
}

/// Finds `@@BEGIN NAME@@` lines and their `\n@@END NAME rc=N@@`; returns the finished sections
/// and the names of those that never ended.
pub(super) fn parse_sections(console: &str) -> (Vec<Section>, Vec<String>) {
    let mut done = Vec::new();
    let mut unfinished = Vec::new();
    let mut pos = 0;
    while let Some(i) = console[pos..].find("@@BEGIN ") {
        let begin = pos + i;
        // Only markers at the start of a line count.
        let at_line_start = begin == 0 || console.as_bytes()[begin - 1] == b'\n';
        let line_end = console[begin..]
            .find('\n')
            .map_or(console.len(), |p| begin + p);
        let line = &console[begin..line_end];
        pos = line_end;
        let Some(name) = line
            .strip_prefix("@@BEGIN ")
            .and_then(|r| r.strip_suffix("@@"))
        else {
            continue;
        };
        if !at_line_start {
            continue;
        }
        let body_start = (line_end + 1).min(console.len());
        // The helper prints "\n@@END ..." so the newline before the marker is its own.
        let end_marker = format!("\n@@END {name} rc=");
        let search_from = body_start.saturating_sub(1);
        let Some(j) = console[search_from..].find(&end_marker) else {
            unfinished.push(name.to_string());
            continue;
        };
        let end = search_from + j;
        let rc_start = end + end_marker.len();
        let rc_end = console[rc_start..]
            .find("@@")
            .map_or(console.len(), |p| rc_start + p);
        let rc = console[rc_start..rc_end].trim().parse().unwrap_or(-1);
        done.push(Section {
            name: name.to_string(),
            output: console[body_start.min(end)..end].to_string(),
            rc,
        });
        pos = rc_end;
    }
    (done, unfinished)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_exit_code_are_parsed() {
        let console = "noise\n@@BEGIN a@@\nline1\nline2\n\n@@END a rc=0@@\n\
                       @@BEGIN empty@@\n\n@@END empty rc=3@@\n\
                       @@BEGIN nonl@@\nabc\n@@END nonl rc=1@@\n\
                       @@BEGIN hung@@\npartial\n@@UVIO-EXIT=7@@\n";
        let (s, unfinished) = parse_sections(console);
        assert_eq!(s.len(), 3);
        assert_eq!(
            (s[0].name.as_str(), s[0].output.as_str(), s[0].rc),
            ("a", "line1\nline2\n", 0)
        );
        assert_eq!((s[1].output.as_str(), s[1].rc), ("", 3));
        assert_eq!((s[2].output.as_str(), s[2].rc), ("abc", 1));
        assert_eq!(unfinished, ["hung"]);
        assert_eq!(parse_exit_code(console), Some(7));
    }
}
