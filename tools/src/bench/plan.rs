//! Laying out a group's job clones: each job checked against its device (block sizes,
//! transfer and discard limits, a read-only disk, zoned_abs zones), each clone's region
//! (`offset`, `offset_increment`, `size`, checked arithmetic), seed and start time
//! (`startdelay`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use uvio::block::BlockDevice;

use super::options::{Ddir, JobOptions};
use super::workload::{mix, Rng};
use super::{display_name, DEFAULT_SEED};

/// One job clone before it runs.
pub(super) struct Planned {
    pub(super) job: usize,
    pub(super) clone: u32,
    pub(super) opts: Arc<JobOptions>,
    pub(super) target: String,
    pub(super) region_start: u64,
    pub(super) region_len: u64,
    pub(super) io_size: u64,
    pub(super) depth: u32,
    pub(super) seed: u64,
}

fn base_seed(o: &JobOptions) -> u64 {
    match (o.randseed, o.randrepeat) {
        (Some(s), _) => s,
        (None, true) => DEFAULT_SEED,
        (None, false) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    }
}

/// Checks a job against its device and lays out each clone's region.
pub(super) fn plan_job(
    index: usize,
    opts: &Arc<JobOptions>,
    target: &str,
    d: &BlockDevice,
) -> Result<Vec<Planned>, String> {
    let name = display_name(opts);
    let lbs = u64::from(d.limits.logical_block_size);
    let capacity = d.capacity();
    let mut min_bs = u64::MAX;
    if let Some(ba) = opts.random_block_align() {
        if !ba.is_multiple_of(lbs) {
            return Err(format!(
                "job `{name}`: blockalign={ba} is not a multiple of {target}'s {lbs}-byte \
                 logical block size"
            ));
        }
    }
    for dir in Ddir::ALL.into_iter().filter(|x| opts.rw.has(*x)) {
        let sizes = opts.block_sizes(dir);
        for bs in sizes.sizes() {
            if !bs.is_multiple_of(lbs) {
                return Err(format!(
                    "job `{name}`: block size {bs} is not a multiple of {target}'s {lbs}-byte \
                     logical block size"
                ));
            }
            if dir != Ddir::Trim && bs > d.limits.max_transfer_bytes {
                return Err(format!(
                    "job `{name}`: block size {bs} exceeds {target}'s largest transfer of {} \
                     bytes",
                    d.limits.max_transfer_bytes
                ));
            }
        }
        min_bs = min_bs.min(sizes.min());
        if dir == Ddir::Trim {
            let discard = d.limits.discard.ok_or_else(|| {
                format!("job `{name}`: {target} does not support discard (rw=trim)")
            })?;
            if sizes.max() > discard.max_bytes {
                return Err(format!(
                    "job `{name}`: trim size {} exceeds {target}'s discard limit of {} bytes",
                    sizes.max(),
                    discard.max_bytes
                ));
            }
        }
        if dir != Ddir::Read && d.limits.read_only {
            return Err(format!("job `{name}`: {target} is read-only"));
        }
    }
    let max_bs = Ddir::ALL
        .into_iter()
        .filter(|x| opts.rw.has(*x))
        .map(|x| opts.block_sizes(x).max())
        .max()
        .unwrap_or(4096);
    if let Some(span) = opts.random_distribution.absolute_span() {
        let region = opts.size.map_or(capacity, |s| s.resolve(capacity, min_bs));
        if span > region {
            return Err(format!(
                "job `{name}`: random_distribution=zoned_abs spans {span} bytes, more than the \
                 job's region of {region} bytes on {target}"
            ));
        }
    }
    let offset = opts.offset.resolve(capacity, min_bs);
    let increment = opts.offset_increment.resolve(capacity, min_bs);
    let queue_depth = u32::from(d.queue_depth.max(1));
    // Clamped to the tags; the caller lays out a deeper iodepth (see `bench::layout`).
    let depth = opts.iodepth.min(queue_depth);
    let seed = base_seed(opts);
    let mut out = Vec::new();
    for clone in 0..opts.numjobs {
        let size = opts.size.map(|s| s.resolve(capacity, min_bs));
        let (start, len) = clone_region(offset, increment, clone, size, capacity)
            .map_err(|e| format!("job `{name}` clone {clone} on {target}: {e}"))?;
        if !start.is_multiple_of(lbs) {
            return Err(format!(
                "job `{name}`: offset {start} is not a multiple of {target}'s {lbs}-byte blocks"
            ));
        }
        if len < max_bs {
            return Err(format!(
                "job `{name}`: the region of {len} bytes is smaller than a block of {max_bs}"
            ));
        }
        out.push(Planned {
            job: index,
            clone,
            opts: Arc::clone(opts),
            target: target.to_string(),
            region_start: start,
            region_len: len,
            io_size: opts.io_size.unwrap_or(len),
            depth,
            // fio derives per-clone seeds from the job's seed, so clones differ but runs repeat.
            seed: mix(seed ^ ((index as u64) << 32) ^ u64::from(clone)),
        });
    }
    Ok(out)
}

/// Clone `clone`'s region, `(start, len)`: it starts at `offset + increment * clone` and
/// spans `size` bytes (default: to the end), inside a device of `capacity` bytes. Checked
/// arithmetic: a sum past 2^64 is an error, not a wrap that passes the range check.
fn clone_region(
    offset: u64,
    increment: u64,
    clone: u32,
    size: Option<u64>,
    capacity: u64,
) -> Result<(u64, u64), String> {
    let start = increment
        .checked_mul(u64::from(clone))
        .and_then(|x| x.checked_add(offset))
        .ok_or_else(|| {
            format!("offset {offset} + offset_increment {increment} x {clone} overflows 64 bits")
        })?;
    if start >= capacity {
        return Err(format!(
            "offset {start} is past the end of the device ({capacity} bytes)"
        ));
    }
    let len = size.unwrap_or(capacity - start);
    match start.checked_add(len) {
        Some(end) if end <= capacity => Ok((start, len)),
        _ => Err(format!(
            "offset {start} + size {len} is past the end of the device ({capacity} bytes)"
        )),
    }
}

/// When a job with `startdelay` may start: `genesis` plus the delay (a random one in a
/// `T1-T2` range, drawn from the job's seed so runs repeat), or `None` without one.
pub(super) fn start_time(opts: &JobOptions, seed: u64, genesis: Instant) -> Option<Instant> {
    let delay = match opts.start_delay {
        (lo, Some(hi)) if hi > lo => {
            let span = (hi - lo).as_micros() as u64;
            lo + Duration::from_micros(Rng::new(seed ^ 0x5741_5254).below(span + 1))
        }
        (lo, _) => lo,
    };
    (!delay.is_zero()).then(|| genesis + delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_regions_use_checked_arithmetic() {
        let cap = 1 << 30;
        assert_eq!(clone_region(0, 0, 0, None, cap), Ok((0, cap)));
        assert_eq!(
            clone_region(4096, 1 << 20, 2, Some(8192), cap),
            Ok((4096 + (2 << 20), 8192))
        );
        // 4096 + (2^64 - 1) wraps to 4095 in a release build's unchecked add.
        let e = clone_region(4096, 0, 0, Some(u64::MAX), cap).unwrap_err();
        assert!(e.contains("past the end"), "{e}");
        let e = clone_region(0, u64::MAX / 2, 3, None, cap).unwrap_err();
        assert!(e.contains("overflows"), "{e}");
        let e = clone_region(cap, 0, 0, None, cap).unwrap_err();
        assert!(e.contains("past the end"), "{e}");
        assert!(clone_region(cap - 4096, 0, 0, Some(4096), cap).is_ok());
        assert!(clone_region(cap - 4096, 0, 0, Some(8192), cap).is_err());
    }
}
