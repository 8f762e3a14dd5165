//! Reports: what a finished group hands to the normal and JSON renderers, and the live
//! status line.

pub mod format;
pub mod json;
pub mod normal;
pub mod status;
pub mod terse;

use std::sync::Arc;
use std::time::Duration;

use super::options::{Ddir, JobOptions};
use super::stats::JobStats;

/// One reported job: a job clone, or with `group_reporting` a whole group merged.
#[derive(Debug, Clone)]
pub struct JobReport {
    pub name: String,
    pub opts: Arc<JobOptions>,
    pub filename: String,
    pub stats: JobStats,
    /// When the job started (seconds and milliseconds since the epoch).
    pub start_secs: i64,
    pub start_ms: u64,
}

/// One group's reported jobs.
#[derive(Debug, Clone)]
pub struct GroupReport {
    pub id: usize,
    pub jobs: Vec<JobReport>,
    /// Options of the `[global]` sections, as written.
    pub global: Vec<(String, String)>,
    pub elapsed: Duration,
}

impl GroupReport {
    /// The group's aggregate bandwidth in direction `d`: all bytes over the longest runtime
    /// (fio's `Run status group` figure), bytes per second.
    pub fn agg_bw(&self, d: Ddir) -> u64 {
        let bytes: u64 = self.jobs.iter().map(|j| j.stats.dir(d).bytes).sum();
        let ms = self
            .jobs
            .iter()
            .map(|j| j.stats.dir(d).runtime_ms())
            .max()
            .unwrap_or(0);
        bytes.saturating_mul(1000).checked_div(ms).unwrap_or(0)
    }
}
