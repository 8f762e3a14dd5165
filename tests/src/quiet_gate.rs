//! Measured runs only on a quiet host: a guest command run under `gated NAME CMD...` is
//! repeated while the hypervisor beneath this machine took too much of its CPU time.
//!
//! Why: the build machines are themselves virtual. At times the hypervisor takes 30-40% of
//! their CPU time (the `steal` column of `/proc/stat`), and every run in the TCG guest then
//! drops to a third or less of its throughput, whichever driver runs. In 24 runs of 3 s at
//! iodepth 8 (uvio and libblkio alternating, docs/benchmarks.md, eighth session), every run
//! with a steal share of 0.27-0.41 gave 9k-50k IOPS and every run with 0.02-0.12 gave 64k-157k.
//! Smaller shares hurt too: in a comparison gated at 15%, the kept runs with 2.6-14% stolen
//! were most of the low runs of their rows, while most runs had under 1%; the default gate
//! (`uvio-compare --max-steal`) is 2%. The guest cannot see steal time under TCG, so the host
//! measures it around each run and tells the guest over the console whether to keep the run
//! or run it again.
//!
//! Protocol: the guest prints `@@GATE_START NAME TRY@@`, runs `check NAME_tTRY CMD...`, prints
//! `@@GATE_END NAME TRY@@` and waits for one console line, `keep` or `again`; the script ends
//! with `@@GATE_DONE@@`. The host keeps, of each name's tries, the one with the least steal.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::vm::RunningVm;

/// The guest side: `gated NAME CMD...` (after the VM helpers, which define `check`, `marker`
/// and `host_wait`).
pub const GATED_SH: &str = r#"
gated() {
    g_name=$1; shift; g_try=0
    while :; do
        marker "GATE_START $g_name $g_try"
        check "${g_name}_t$g_try" "$@"
        marker "GATE_END $g_name $g_try"
        host_wait 600
        [ "$UVIO_HOST_LINE" = again ] || break
        g_try=$((g_try + 1))
    done
}
"#;

/// The line that ends a gated script.
pub const GATE_DONE: &str = "marker GATE_DONE\n";

/// The host's CPU time counters, from the first line of `/proc/stat` (in USER_HZ ticks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// Time the hypervisor ran something else while this machine's vCPUs wanted to run.
    pub steal: u64,
    /// user + nice + system + idle + iowait + irq + softirq + steal.
    pub total: u64,
}

impl CpuTimes {
    /// Parses `/proc/stat`'s text; `None` if its first line is not the `cpu` summary with at
    /// least the eight counters up to steal (kernels since 2.6.11 have them).
    pub fn parse(stat: &str) -> Option<CpuTimes> {
        let line = stat.lines().next()?;
        let mut fields = line.split_whitespace();
        if fields.next()? != "cpu" {
            return None;
        }
        let v: Vec<u64> = fields
            .take(8)
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        if v.len() < 8 {
            return None;
        }
        Some(CpuTimes {
            steal: v[7],
            total: v.iter().sum(),
        })
    }

    /// This host's counters now.
    pub fn now() -> Option<CpuTimes> {
        std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| Self::parse(&s))
    }

    /// The share of the CPU time between `self` and `later` that was stolen (0 when no time
    /// passed or the counters went backwards).
    pub fn steal_share(&self, later: &CpuTimes) -> f64 {
        let total = later.total.saturating_sub(self.total);
        if total == 0 {
            return 0.0;
        }
        later.steal.saturating_sub(self.steal) as f64 / total as f64
    }
}

/// One console marker of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateMarker {
    Start { name: String, attempt: u32 },
    End { name: String, attempt: u32 },
    Done,
}

impl GateMarker {
    /// Parses the console line that holds `@@GATE_...@@`.
    pub fn parse(line: &str) -> Option<GateMarker> {
        let at = line.find("@@GATE_")?;
        let body = line[at + 7..].split("@@").next()?;
        let mut words = body.split_whitespace();
        let kind = words.next()?;
        if kind == "DONE" {
            return Some(GateMarker::Done);
        }
        let name = words.next()?.to_string();
        let attempt = words.next()?.parse().ok()?;
        match kind {
            "START" => Some(GateMarker::Start { name, attempt }),
            "END" => Some(GateMarker::End { name, attempt }),
            _ => None,
        }
    }
}

/// What the gate does: the steal share above which a run is repeated, and how many times a
/// command runs at most.
#[derive(Debug, Clone, Copy)]
pub struct Gate {
    pub max_steal: f64,
    pub max_tries: u32,
}

/// Every try of one gated command: the steal share measured around each.
#[derive(Debug, Clone, Default)]
pub struct GatedRun {
    pub steal: Vec<f64>,
}

impl GatedRun {
    /// The try kept: the one with the least steal (the first quiet one, or the least disturbed
    /// when every try was disturbed).
    pub fn kept(&self) -> usize {
        self.steal
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i)
    }

    /// The kept try's steal share.
    pub fn kept_steal(&self) -> f64 {
        self.steal.get(self.kept()).copied().unwrap_or(0.0)
    }
}

/// The gated commands of one guest, by name.
#[derive(Debug, Clone, Default)]
pub struct GateLog {
    pub runs: BTreeMap<String, GatedRun>,
}

impl GateLog {
    /// The section that holds `name`'s kept try (`NAME_tN`); `NAME_t0` for a name never run,
    /// so that looking it up says it never ran.
    pub fn section(&self, name: &str) -> String {
        let kept = self.runs.get(name).map_or(0, GatedRun::kept);
        format!("{name}_t{kept}")
    }

    /// Tries run again because of steal, over all commands.
    pub fn repeats(&self) -> usize {
        self.runs
            .values()
            .map(|r| r.steal.len().saturating_sub(1))
            .sum()
    }

    /// Names whose kept try was still over `max_steal`.
    pub fn disturbed(&self, max_steal: f64) -> Vec<(&str, f64)> {
        self.runs
            .iter()
            .filter(|(_, r)| r.kept_steal() > max_steal)
            .map(|(n, r)| (n.as_str(), r.kept_steal()))
            .collect()
    }
}

/// Answers the guest's gated commands until it prints `@@GATE_DONE@@` or `deadline` passes
/// (then it panics with the console, as [`RunningVm::wait_for_console`] does).
pub fn drive(vm: &mut RunningVm, gate: Gate, deadline: Instant) -> GateLog {
    let mut log = GateLog::default();
    let mut started: Option<CpuTimes> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let left = left.max(Duration::from_millis(1));
        vm.wait_for_console("@@GATE_", left);
        // why: the console arrives a few bytes at a time; the marker's line is whole only
        // once its closing `@@` is there.
        let line = vm.wait_for_console("@@", left);
        match GateMarker::parse(&line) {
            Some(GateMarker::Start { .. }) => started = CpuTimes::now(),
            Some(GateMarker::End { name, attempt }) => {
                let share = match (started.take(), CpuTimes::now()) {
                    (Some(a), Some(b)) => a.steal_share(&b),
                    _ => 0.0,
                };
                let run = log.runs.entry(name).or_default();
                run.steal.push(share);
                let again = share > gate.max_steal && attempt + 1 < gate.max_tries;
                vm.send_line(if again { "again" } else { "keep" });
            }
            Some(GateMarker::Done) => return log,
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The summary line of this machine's /proc/stat, 4.5 s apart during a run that collapsed.
    const BEFORE: &str = "cpu  1681432 17 287623 1962219 6775 0 2222 22231 0 0\n";
    const AFTER: &str = "cpu  1681790 17 287707 1962360 6775 0 2222 22632 0 0\n";

    #[test]
    fn steal_share_is_stolen_ticks_over_all_ticks() {
        let a = CpuTimes::parse(BEFORE).unwrap();
        let b = CpuTimes::parse(AFTER).unwrap();
        assert_eq!(a.steal, 22231);
        assert_eq!(
            a.total,
            1681432 + 17 + 287623 + 1962219 + 6775 + 2222 + 22231
        );
        // 401 stolen of 358 + 84 + 141 + 401 = 984 ticks.
        let share = a.steal_share(&b);
        assert!((share - 401.0 / 984.0).abs() < 1e-9, "{share}");
        assert_eq!(b.steal_share(&a), 0.0, "counters going backwards give 0");
        assert_eq!(a.steal_share(&a), 0.0);
    }

    #[test]
    fn stat_without_the_summary_line_or_steal_is_refused() {
        assert_eq!(CpuTimes::parse("cpu0 1 2 3 4 5 6 7 8\n"), None);
        assert_eq!(CpuTimes::parse("cpu  1 2 3 4 5 6 7\n"), None);
        assert_eq!(CpuTimes::parse("cpu  1 2 x 4 5 6 7 8\n"), None);
        assert_eq!(CpuTimes::parse(""), None);
    }

    #[test]
    fn markers_parse_from_console_lines() {
        assert_eq!(
            GateMarker::parse("@@GATE_START blk_qd8_r0_uvio 2@@"),
            Some(GateMarker::Start {
                name: "blk_qd8_r0_uvio".into(),
                attempt: 2
            })
        );
        assert_eq!(
            GateMarker::parse("keep@@GATE_END blkp_qd1_r2_psync 0@@"),
            Some(GateMarker::End {
                name: "blkp_qd1_r2_psync".into(),
                attempt: 0
            })
        );
        assert_eq!(GateMarker::parse("@@GATE_DONE@@"), Some(GateMarker::Done));
        assert_eq!(GateMarker::parse("@@GATE_END x@@"), None);
        assert_eq!(GateMarker::parse("@@GATE_PAUSE x 1@@"), None);
    }

    #[test]
    fn the_least_disturbed_try_is_kept() {
        let mut log = GateLog::default();
        log.runs.insert(
            "a".into(),
            GatedRun {
                steal: vec![0.31, 0.04],
            },
        );
        log.runs.insert(
            "b".into(),
            GatedRun {
                steal: vec![0.40, 0.22, 0.35],
            },
        );
        log.runs.insert("c".into(), GatedRun { steal: vec![0.01] });
        assert_eq!(log.section("a"), "a_t1");
        assert_eq!(log.section("b"), "b_t1");
        assert_eq!(log.section("c"), "c_t0");
        assert_eq!(log.section("never"), "never_t0");
        assert_eq!(log.repeats(), 3);
        assert_eq!(log.disturbed(0.15), vec![("b", 0.22)]);
    }
}
