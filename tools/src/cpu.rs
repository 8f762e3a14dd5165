//! CPU affinity: a polling thread is pinned to one CPU, so it does not wander and the TSC it
//! reads is always that CPU's. Self-contained (std and libc only), so that
//! `tests/examples/blkio-bench.rs` includes this same file.

/// Pins the calling thread to `cpu`; false if the kernel refused.
pub fn pin_to(cpu: usize) -> bool {
    allow(&[cpu])
}

/// Lets the calling thread run on `cpus` only; false if the kernel refused (or none of
/// them is a CPU number the set can hold).
pub fn allow(cpus: &[usize]) -> bool {
    // SAFETY: the set is a plain bitmask initialised by CPU_ZERO/CPU_SET (CPU numbers below
    // CPU_SETSIZE only); pid 0 is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        for &c in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// The CPUs this process may run on, in order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: as in `pin_to`; sched_getaffinity fills the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}
