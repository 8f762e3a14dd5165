//! Where a job clone's requests sit in its hardware queue: visible to the device, prepared
//! ahead in spare tags, or waiting for a tag (an iodepth beyond the tags).

use super::plan;
use super::queue::QueueHandle;
use super::staging_enabled;

/// Where a job clone's requests sit in its hardware queue: up to `depth` visible to the
/// device, up to `stage` more prepared ahead in spare tags while the device works (see the
/// engine), and up to `backlog` more waiting for a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    pub(super) depth: u32,
    pub(super) stage: u32,
    pub(super) backlog: u32,
}

impl Layout {
    /// An own queue prepares up to the job's iodepth ahead, in the tags it has beyond it. An
    /// iodepth beyond its tags stays the job's iodepth, as fio's does over libblkio (85
    /// requests in the ring, the rest in libblkio's queue): three quarters of the tags
    /// visible, the other quarter prepared ahead, the rest waiting, each counting its latency
    /// from when the job issued it. Three quarters: at iodepth 128 on 85 tags, 64 visible
    /// did 401k IOPS (median of 6 alternating rounds) against 384k with all 85 visible and
    /// 356k with 43 (docs/benchmarks.md). A shared or paced queue runs at the depth its tags
    /// allow.
    pub(super) fn of(p: &plan::Planned, handle: Option<&QueueHandle>) -> Layout {
        match handle {
            // `UVIO_BENCH_STAGE=0` prepares nothing ahead, to measure what that gains.
            Some(h @ QueueHandle::Owned(_)) if !p.opts.paced() => {
                Layout::on_own_queue(p.opts.iodepth, u32::from(h.depth()), staging_enabled())
            }
            _ => Layout {
                depth: p.depth,
                stage: 0,
                backlog: 0,
            },
        }
    }

    /// The layout of `iodepth` on an own queue of `tags` tags, preparing requests ahead or
    /// not (then every tag is visible and the iodepth is kept all the same).
    fn on_own_queue(iodepth: u32, tags: u32, prepare: bool) -> Layout {
        let (iodepth, tags) = (iodepth.max(1), tags.max(1));
        if iodepth <= tags {
            Layout {
                depth: iodepth,
                stage: if prepare {
                    iodepth.min(tags - iodepth)
                } else {
                    0
                },
                backlog: 0,
            }
        } else {
            let depth = if prepare { tags - tags / 4 } else { tags };
            Layout {
                depth,
                stage: tags - depth,
                backlog: iodepth - tags,
            }
        }
    }

    /// The iodepth the job keeps: what it issued and has not seen complete, beyond what it
    /// prepares ahead.
    pub(super) fn outstanding(&self) -> u32 {
        if self.backlog > 0 {
            self.depth + self.stage + self.backlog
        } else {
            self.depth
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Layout;

    fn layout(depth: u32, stage: u32, backlog: u32) -> Layout {
        Layout {
            depth,
            stage,
            backlog,
        }
    }

    #[test]
    fn an_iodepth_within_the_tags_is_visible_and_prepares_ahead_in_the_rest() {
        // 4 + 4 spare tags, as `uvio bench` asks at iodepth 4.
        assert_eq!(Layout::on_own_queue(4, 8, true), layout(4, 4, 0));
        assert_eq!(Layout::on_own_queue(32, 85, true), layout(32, 32, 0));
        assert_eq!(Layout::on_own_queue(64, 85, true), layout(64, 21, 0));
        assert_eq!(Layout::on_own_queue(85, 85, true), layout(85, 0, 0));
        assert_eq!(Layout::on_own_queue(64, 85, true).outstanding(), 64);
    }

    #[test]
    fn an_iodepth_beyond_the_tags_waits_in_a_backlog_and_stays_the_iodepth() {
        let l = Layout::on_own_queue(128, 85, true);
        assert_eq!(l, layout(64, 21, 43));
        assert_eq!(l.outstanding(), 128);
        assert_eq!(Layout::on_own_queue(86, 85, true).outstanding(), 86);
        // A queue of one tag: it is visible; the rest wait.
        assert_eq!(Layout::on_own_queue(3, 1, true), layout(1, 0, 2));
        assert_eq!(Layout::on_own_queue(0, 0, true), layout(1, 0, 0));
        // Nothing prepared ahead: every tag visible, the iodepth kept.
        assert_eq!(Layout::on_own_queue(128, 85, false), layout(85, 0, 43));
        assert_eq!(Layout::on_own_queue(8, 16, false), layout(8, 0, 0));
    }
}
