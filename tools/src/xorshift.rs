//! xorshift64*: a cheap, reproducible, allocation-free random source for spreading offsets
//! (`uvio verify`, and `tests/examples/blkio-bench.rs`, which includes this same file). The
//! benchmark's workloads use the stronger `bench::workload::Rng`.

/// A xorshift64* generator; the state must not be 0.
#[derive(Clone)]
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}
