//! What the next I/O is: its direction (rw, rwmixread), size (bs, bsrange, bssplit) and
//! offset (sequential, or random with fio's random-map semantics: every block once per pass
//! unless `norandommap`, or drawn from a `random_distribution`, [`super::distribution`]). All of it is arithmetic on a seeded generator, so a run with the
//! same seed repeats exactly (`randrepeat`), and the verify phase can replay a write phase.

use super::distribution::{BlockPicker, Distribution};
use super::options::{BlockSizes, Ddir, RwMode};

/// xoshiro256** seeded through splitmix64: fast, reproducible, no allocation.
#[derive(Debug, Clone)]
pub struct Rng([u64; 4]);

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A 64-bit mix of `x` (splitmix64's finaliser), for deriving seeds and permutation rounds.
pub fn mix(mut x: u64) -> u64 {
    splitmix(&mut x)
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut s = seed;
        Rng([
            splitmix(&mut s),
            splitmix(&mut s),
            splitmix(&mut s),
            splitmix(&mut s),
        ])
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift (bias below 2^-32 for our ranges).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// A pseudo-random permutation of `0..n` with no memory: a 4-round Feistel network over the
/// smallest even-bit power of two covering `n`, cycle-walking values that fall outside.
#[derive(Debug, Clone)]
pub struct Permutation {
    n: u64,
    half_bits: u32,
    keys: [u64; 4],
}

impl Permutation {
    pub fn new(n: u64, seed: u64) -> Self {
        let bits = 64 - n.saturating_sub(1).leading_zeros();
        let half_bits = bits.div_ceil(2).max(1);
        let mut s = seed;
        Permutation {
            n,
            half_bits,
            keys: [
                splitmix(&mut s),
                splitmix(&mut s),
                splitmix(&mut s),
                splitmix(&mut s),
            ],
        }
    }

    #[inline]
    fn round(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut l, mut r) = (x >> self.half_bits, x & mask);
        for k in self.keys {
            let f = mix(r ^ k) & mask;
            (l, r) = (r, l ^ f);
        }
        (l << self.half_bits) | r
    }

    /// The image of `i` (< n).
    #[inline]
    pub fn get(&self, i: u64) -> u64 {
        let mut x = self.round(i);
        while x >= self.n {
            x = self.round(x);
        }
        x
    }
}

/// Chooses the size of each I/O of one direction.
#[derive(Debug, Clone)]
pub enum SizePicker {
    Fixed(u64),
    /// Uniform multiples of `min` in `min..=max`.
    Range {
        min: u64,
        steps: u64,
    },
    /// Cumulative percentages (ascending) and sizes.
    Split(Vec<(u32, u64)>),
}

impl SizePicker {
    pub fn new(sizes: &BlockSizes) -> Self {
        match sizes {
            BlockSizes::Fixed(b) => SizePicker::Fixed(*b),
            BlockSizes::Range(lo, hi) => SizePicker::Range {
                min: *lo,
                steps: hi / lo,
            },
            BlockSizes::Split(v) => {
                let mut acc = 0;
                SizePicker::Split(
                    v.iter()
                        .filter(|(_, p)| *p > 0)
                        .map(|&(bs, p)| {
                            acc += p;
                            (acc, bs)
                        })
                        .collect(),
                )
            }
        }
    }

    #[inline]
    pub fn pick(&self, rng: &mut Rng) -> u64 {
        match self {
            SizePicker::Fixed(b) => *b,
            SizePicker::Range { min, steps } => min * (1 + rng.below(*steps)),
            SizePicker::Split(v) => {
                let r = rng.below(100) as u32;
                v.iter()
                    .find(|(cum, _)| r < *cum)
                    .or(v.last())
                    .map_or(0, |e| e.1)
            }
        }
    }
}

/// How offsets are chosen.
#[derive(Debug, Clone)]
enum Offsets {
    /// Next offset per direction, relative to the region.
    Sequential { next: [u64; 3] },
    /// Every block once per pass, in a seeded random order.
    RandomMap {
        perm: Permutation,
        index: u64,
        pass: u64,
        seed: u64,
    },
    /// Independent uniform picks (`norandommap`).
    Uniform,
    /// Blocks drawn from a non-uniform `random_distribution`.
    Picked(BlockPicker),
}

/// The generator of I/Os of one job clone over its region.
#[derive(Debug, Clone)]
pub struct Workload {
    rw: RwMode,
    rwmixread: u32,
    sizes: [SizePicker; 3],
    region_start: u64,
    region_len: u64,
    /// Offset granularity: the smallest block size in use.
    align: u64,
    /// Blocks of `align` bytes in the region.
    blocks: u64,
    offsets: Offsets,
    /// `rw=read:N`: bytes added after each sequential I/O (negative: backwards).
    seq_add: i64,
    norandommap: bool,
    seed: u64,
    rng: Rng,
}

/// One I/O to issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextIo {
    pub ddir: Ddir,
    pub offset: u64,
    pub len: u64,
}

impl Workload {
    /// `sizes` per direction; `region_len` must hold at least one block of the largest size.
    pub fn new(
        rw: RwMode,
        rwmixread: u32,
        sizes: [BlockSizes; 3],
        region_start: u64,
        region_len: u64,
        norandommap: bool,
        seed: u64,
    ) -> Self {
        let align = Ddir::ALL
            .iter()
            .filter(|d| rw.has(**d))
            .map(|d| sizes[d.index()].min())
            .min()
            .unwrap_or(4096)
            .max(1);
        let blocks = (region_len / align).max(1);
        let offsets = Self::offsets(rw, norandommap, blocks, seed);
        Workload {
            rw,
            rwmixread,
            sizes: [
                SizePicker::new(&sizes[0]),
                SizePicker::new(&sizes[1]),
                SizePicker::new(&sizes[2]),
            ],
            region_start,
            region_len,
            align,
            blocks,
            offsets,
            seq_add: 0,
            norandommap,
            seed,
            rng: Rng::new(mix(seed ^ 0x5eed)),
        }
    }

    fn offsets(rw: RwMode, norandommap: bool, blocks: u64, seed: u64) -> Offsets {
        if !rw.is_random() {
            Offsets::Sequential { next: [0; 3] }
        } else if norandommap {
            Offsets::Uniform
        } else {
            Offsets::RandomMap {
                perm: Permutation::new(blocks, seed),
                index: 0,
                pass: 0,
                seed,
            }
        }
    }

    /// `blockalign`: random offsets in multiples of `align` bytes rather than of the
    /// smallest block size. Call before [`Workload::with_distribution`].
    pub fn with_block_align(mut self, align: Option<u64>) -> Self {
        if let Some(a) = align.filter(|a| *a > 0 && *a != self.align) {
            self.align = a;
            self.blocks = (self.region_len / a).max(1);
            self.offsets = Self::offsets(self.rw, self.norandommap, self.blocks, self.seed);
        }
        self
    }

    /// `rw=read:N`: `add` bytes after each sequential I/O, as fio's `ddir_seq_add`.
    pub fn with_sequence_step(mut self, add: i64) -> Self {
        self.seq_add = add;
        self
    }

    /// Random offsets drawn from `dist` (not `random`: no random map then, as in fio).
    pub fn with_distribution(mut self, dist: &Distribution, seed: u64) -> Self {
        if self.rw.is_random() {
            if let Some(p) = BlockPicker::new(dist, self.blocks, self.align, seed) {
                self.offsets = Offsets::Picked(p);
            }
        }
        self
    }

    /// Blocks of the offset granularity in the region (one random-map pass).
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    #[inline]
    fn ddir(&mut self) -> Ddir {
        match self.rw {
            RwMode::Read | RwMode::RandRead => Ddir::Read,
            RwMode::Write | RwMode::RandWrite => Ddir::Write,
            RwMode::Trim | RwMode::RandTrim => Ddir::Trim,
            RwMode::ReadWrite | RwMode::RandRw => {
                if (self.rng.below(100) as u32) < self.rwmixread {
                    Ddir::Read
                } else {
                    Ddir::Write
                }
            }
        }
    }

    /// The next I/O (hot path: arithmetic only).
    #[inline]
    pub fn next_io(&mut self) -> NextIo {
        let ddir = self.ddir();
        self.next_io_in(ddir)
    }

    /// Whether the job mixes reads and writes (`rw`, `randrw`).
    pub fn mixed(&self) -> bool {
        matches!(self.rw, RwMode::ReadWrite | RwMode::RandRw)
    }

    /// The next I/O in direction `ddir` (pacing switches a mix's direction, as fio's
    /// `rate_ddir` does).
    #[inline]
    pub fn next_io_in(&mut self, ddir: Ddir) -> NextIo {
        let len = self.sizes[ddir.index()].pick(&mut self.rng);
        let end = self.region_len;
        let rel = match &mut self.offsets {
            Offsets::Sequential { next } => {
                let mut at = next[ddir.index()];
                // fio's get_next_seq_offset: after the first I/O, step by the hole (or
                // back); past the end a hole wraps to the start, a backward step to the end.
                if at != 0 && self.seq_add != 0 {
                    let p = i128::from(at) + i128::from(self.seq_add);
                    at = if p >= 0 && (p as u64) < end {
                        p as u64
                    } else if self.seq_add > 0 {
                        0
                    } else {
                        (i128::from(end) + i128::from(self.seq_add)).max(0) as u64
                    };
                }
                if at + len > end {
                    at = 0;
                }
                next[ddir.index()] = at + len;
                at
            }
            Offsets::RandomMap {
                perm,
                index,
                pass,
                seed,
            } => {
                if *index == perm.n {
                    *pass += 1;
                    *index = 0;
                    *perm = Permutation::new(perm.n, mix(*seed ^ *pass));
                }
                let b = perm.get(*index);
                *index += 1;
                b * self.align
            }
            Offsets::Uniform => self.rng.below(self.blocks) * self.align,
            Offsets::Picked(p) => p.pick(ddir.index(), &mut self.rng) * self.align,
        };
        // A large block near the end is pulled back inside the region, still aligned.
        let rel = if rel + len > end {
            (end - len) / self.align * self.align
        } else {
            rel
        };
        NextIo {
            ddir,
            offset: self.region_start + rel,
            len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permutation_visits_every_block_once() {
        for n in [1u64, 2, 3, 7, 64, 1000, 4099] {
            let p = Permutation::new(n, 42);
            let mut seen = vec![false; n as usize];
            for i in 0..n {
                let x = p.get(i);
                assert!(x < n);
                assert!(!seen[x as usize], "n={n}: {x} twice");
                seen[x as usize] = true;
            }
        }
        // Not the identity, and different seeds differ.
        let (a, b) = (Permutation::new(1000, 1), Permutation::new(1000, 2));
        assert!((0..1000).any(|i| a.get(i) != i));
        assert!((0..1000).any(|i| a.get(i) != b.get(i)));
    }

    #[test]
    fn random_map_covers_the_region_each_pass_and_repeats_with_the_seed() {
        let mk = |seed| {
            Workload::new(
                RwMode::RandRead,
                50,
                [
                    BlockSizes::Fixed(4096),
                    BlockSizes::Fixed(4096),
                    BlockSizes::Fixed(4096),
                ],
                1 << 20,
                64 * 4096,
                false,
                seed,
            )
        };
        let mut w = mk(7);
        let mut offs: Vec<u64> = (0..64).map(|_| w.next_io().offset).collect();
        let first = offs.clone();
        offs.sort();
        let expect: Vec<u64> = (0..64).map(|i| (1 << 20) + i * 4096).collect();
        assert_eq!(offs, expect);
        let mut again = mk(7);
        let replay: Vec<u64> = (0..64).map(|_| again.next_io().offset).collect();
        assert_eq!(first, replay);
    }

    #[test]
    fn sequential_wraps_and_mixes_follow_rwmixread() {
        let mut w = Workload::new(
            RwMode::ReadWrite,
            70,
            [
                BlockSizes::Fixed(4096),
                BlockSizes::Fixed(8192),
                BlockSizes::Fixed(4096),
            ],
            0,
            16 * 4096,
            false,
            1,
        );
        let ios: Vec<NextIo> = (0..10_000).map(|_| w.next_io()).collect();
        let reads = ios.iter().filter(|i| i.ddir == Ddir::Read).count();
        assert!((6500..7500).contains(&reads), "{reads}");
        assert!(ios.iter().all(|i| i.offset + i.len <= 16 * 4096));
        assert!(ios
            .iter()
            .all(|i| i.len == if i.ddir == Ddir::Read { 4096 } else { 8192 }));
    }

    #[test]
    fn bssplit_and_bsrange_pick_sizes_in_proportion() {
        let split = SizePicker::new(&BlockSizes::Split(vec![(4096, 10), (65536, 90)]));
        let mut rng = Rng::new(3);
        let big = (0..10_000)
            .filter(|_| split.pick(&mut rng) == 65536)
            .count();
        assert!((8700..9300).contains(&big), "{big}");
        let range = SizePicker::new(&BlockSizes::Range(4096, 16384));
        let sizes: Vec<u64> = (0..1000).map(|_| range.pick(&mut rng)).collect();
        assert!(sizes
            .iter()
            .all(|s| s % 4096 == 0 && (4096..=16384).contains(s)));
        assert!(sizes.contains(&4096) && sizes.contains(&16384));
    }

    #[test]
    fn a_distribution_replaces_the_random_map_and_stays_in_the_region() {
        let make = |dist: &str| {
            Workload::new(
                RwMode::RandRead,
                100,
                [
                    BlockSizes::Fixed(4096),
                    BlockSizes::Fixed(4096),
                    BlockSizes::Fixed(4096),
                ],
                1 << 20,
                1024 * 4096,
                false,
                5,
            )
            .with_distribution(&Distribution::parse(dist).unwrap(), 5)
        };
        // zoned:90/10:10/: nine I/Os in ten go to the region's first 10% (102 blocks).
        let mut w = make("zoned:90/10:10/");
        let ios: Vec<NextIo> = (0..10_000).map(|_| w.next_io()).collect();
        assert!(ios.iter().all(|i| i.offset >= 1 << 20
            && i.offset + i.len <= (1 << 20) + 1024 * 4096
            && i.offset % 4096 == 0));
        let first = ios
            .iter()
            .filter(|i| i.offset < (1 << 20) + 102 * 4096)
            .count();
        assert!((8800..9200).contains(&first), "{first}");
        // zipf: blocks repeat (no random map: a pass of 1024 I/Os misses many blocks).
        let mut w = make("zipf:1.2");
        let mut seen: Vec<u64> = (0..1024).map(|_| w.next_io().offset).collect();
        seen.sort_unstable();
        seen.dedup();
        assert!(seen.len() < 700, "{}", seen.len());
        // random: the random map, every block once in a pass.
        let mut w = make("random");
        let mut seen: Vec<u64> = (0..1024).map(|_| w.next_io().offset).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 1024);
    }

    #[test]
    fn holes_backwards_steps_and_block_alignment_follow_fio() {
        let make = |rw, add| {
            Workload::new(
                rw,
                100,
                [
                    BlockSizes::Fixed(4096),
                    BlockSizes::Fixed(4096),
                    BlockSizes::Fixed(4096),
                ],
                0,
                64 * 1024,
                false,
                1,
            )
            .with_sequence_step(add)
        };
        let offsets = |w: &mut Workload, n| (0..n).map(|_| w.next_io().offset).collect::<Vec<_>>();
        // rw=write:4k: a 4 KiB hole after each write, wrapping to the start past the end.
        let mut w = make(RwMode::Write, 4096);
        assert_eq!(
            offsets(&mut w, 10),
            [0, 8192, 16384, 24576, 32768, 40960, 49152, 57344, 0, 8192]
        );
        // backwards-read.fio, rw=read:-8k with 4 KiB reads: 0, then from the end backwards.
        let mut w = make(RwMode::Read, -8192);
        assert_eq!(offsets(&mut w, 5), [0, 57344, 53248, 49152, 45056]);
        // blockalign=16k: random 4 KiB reads at 16 KiB boundaries, each once per pass.
        let mut w = make(RwMode::RandRead, 0).with_block_align(Some(16384));
        let mut seen = offsets(&mut w, 4);
        assert!(seen.iter().all(|o| o % 16384 == 0), "{seen:?}");
        seen.sort_unstable();
        assert_eq!(seen, [0, 16384, 32768, 49152]);
    }
}
