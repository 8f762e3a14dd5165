//! Which CPUs a job thread runs on, as fio's `cpus_allowed`, `cpumask` and
//! `cpus_allowed_policy` place it (fio's HOWTO; backend.c, `fio_cpus_split`): with
//! `shared` (fio's default) every clone may run on any CPU of the set; with `split` each gets
//! one, the set's (thread number - 1) modulo its size, thread numbers counting every job
//! clone of the run from 1. A job without a set is pinned by uvio itself: its polling thread
//! should not wander, and a thread on one CPU can time I/O with that CPU's TSC.

use super::options::{CpusPolicy, JobOptions};

/// Where a job thread runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Anywhere the process may run.
    Anywhere,
    /// On one CPU.
    Pinned(usize),
    /// On any CPU of this set (of more than one).
    Set(Vec<usize>),
}

impl Placement {
    /// The placement of job thread `thread_number` (from 1, over the whole run), `index`
    /// (from 0) within its group; `allowed` are the CPUs the process may use, `pin` whether
    /// uvio pins a job that names no CPUs (`UVIO_BENCH_PIN`).
    pub fn of(
        opts: &JobOptions,
        thread_number: usize,
        index: usize,
        allowed: &[usize],
        pin: bool,
    ) -> Placement {
        match (&opts.cpus_allowed, opts.cpus_allowed_policy) {
            (Some(set), CpusPolicy::Split) => {
                Placement::Pinned(set[(thread_number.max(1) - 1) % set.len()])
            }
            (Some(set), CpusPolicy::Shared) if set.len() == 1 => Placement::Pinned(set[0]),
            (Some(set), CpusPolicy::Shared) => Placement::Set(set.clone()),
            (None, _) if pin && !allowed.is_empty() => {
                Placement::Pinned(allowed[index % allowed.len()])
            }
            (None, _) => Placement::Anywhere,
        }
    }

    /// Applies the placement to the calling thread; returns the CPU it is pinned to, if it
    /// is pinned to one (false placements are not an error: the thread runs where it is).
    pub fn apply(&self) -> Option<usize> {
        match self {
            Placement::Anywhere => None,
            Placement::Pinned(cpu) => crate::cpu::pin_to(*cpu).then_some(*cpu),
            Placement::Set(cpus) => {
                crate::cpu::allow(cpus);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(set: &[(&str, &str)]) -> JobOptions {
        let mut o = JobOptions::default();
        for (k, v) in set {
            o.set(k, Some(v)).unwrap();
        }
        o
    }

    #[test]
    fn split_gives_each_thread_one_cpu_by_its_number_and_shared_the_set() {
        let split = job(&[("cpus_allowed", "2,4-5"), ("cpus_allowed_policy", "split")]);
        let cpus: Vec<Placement> = (1..=4)
            .map(|n| Placement::of(&split, n, 0, &[0], true))
            .collect();
        assert_eq!(
            cpus,
            [2, 4, 5, 2].map(Placement::Pinned).to_vec(),
            "thread numbers 1-4 round robin over the set"
        );
        let shared = job(&[("cpus_allowed", "2,4-5")]);
        assert_eq!(
            Placement::of(&shared, 3, 2, &[0], true),
            Placement::Set(vec![2, 4, 5])
        );
        // cpumask=34: CPUs 1 and 5 (fio's HOWTO example); the later of the two options wins.
        let mask = job(&[
            ("cpus_allowed", "7"),
            ("cpumask", "34"),
            ("cpus_allowed_policy", "split"),
        ]);
        assert_eq!(Placement::of(&mask, 2, 0, &[0], true), Placement::Pinned(5));
        let one = job(&[("cpumask", "8")]);
        assert_eq!(Placement::of(&one, 9, 0, &[0], true), Placement::Pinned(3));
        assert!(job(&[]).set("cpumask", Some("0")).is_err());
        assert!(job(&[]).set("cpumask", Some("0x100000000")).is_err());
        assert!(job(&[]).set("cpus_allowed_policy", Some("spread")).is_err());
        // No set: uvio's own pinning over the allowed CPUs, by the index in the group.
        assert_eq!(
            Placement::of(&job(&[]), 5, 3, &[0, 1], true),
            Placement::Pinned(1)
        );
        assert_eq!(
            Placement::of(&job(&[]), 5, 3, &[0, 1], false),
            Placement::Anywhere
        );
    }
}
