//! fio's `random_distribution`: which blocks random I/O goes to when it is not uniform.
//!
//! As fio 3.33 computes them (lib/zipf.c, lib/gauss.c, io_u.c): `zipf:THETA` and
//! `pareto:H` draw a block rank from the distribution, `normal:DEV` the mean of 12 uniform
//! draws plus a jitter of DEV% of the blocks; all three then scatter the rank over the
//! region (fio's `__hash_u64`, a multiply by the 64-bit golden ratio) and shift it by a
//! random offset, or by `:CENTER` (0 to 1) when given. `zoned:A/S:...` sends A% of the I/O
//! to the next S% of the region, uniformly within it; `zoned_abs:A/SIZE:...` the same with
//! sizes in bytes. Zones can differ per direction (`zoned:50/5:50/95,100/100`). As in fio,
//! any distribution but `random` turns the random map off (blocks repeat, others are
//! never visited). The draws come from uvio's generator, not fio's, so the same seed does
//! not give fio's sequence, only its distribution.

use super::options::{OptionError, KB_BASE};
use super::workload::Rng;
use crate::units::{parse_size, split_per_ddir};

/// fio's defaults when no parameter follows the name.
const DEFAULT_ZIPF_THETA: f64 = 1.1;
const DEFAULT_PARETO_H: f64 = 0.2;
/// fio stops summing the zeta series here (lib/zipf.c `ZIPF_MAX_GEN`).
const ZIPF_MAX_GEN: u64 = 10_000_000;
/// fio's `GOLDEN_RATIO_64` (hash.h).
const GOLDEN_RATIO_64: u64 = 0x61C8_8646_80B5_83EB;
const GAUSS_ITERS: u64 = 12;

/// One zone: percent of the I/O, and how much of the region (percent, or bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Zone {
    pub access: u32,
    pub size: u64,
}

/// `random_distribution=`.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Distribution {
    #[default]
    Random,
    Zipf {
        theta: f64,
        center: Option<f64>,
    },
    Pareto {
        h: f64,
        center: Option<f64>,
    },
    Normal {
        dev: f64,
        center: Option<f64>,
    },
    /// Per direction; sizes in percent (`absolute`: in bytes).
    Zoned {
        zones: [Vec<Zone>; 3],
        absolute: bool,
    },
}

fn invalid(why: impl Into<String>) -> OptionError {
    OptionError::Invalid {
        name: "random_distribution".into(),
        why: why.into(),
    }
}

fn float(text: &str, what: &str) -> Result<f64, OptionError> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| invalid(format!("`{text}` is not a number ({what})")))
}

/// `zoned:50/5:30/15:20/` for one direction: access percentages must add up to 100; sizes
/// left blank share what the others leave of 100% (fio's `zone_split_ddir`).
fn parse_zones(text: &str, absolute: bool) -> Result<Vec<Zone>, OptionError> {
    let mut zones = Vec::new();
    let mut blank = Vec::new();
    for item in text.split(':').map(str::trim).filter(|s| !s.is_empty()) {
        let (access, size) = item
            .split_once('/')
            .ok_or_else(|| invalid(format!("`{item}`: write ACCESS%/SIZE")))?;
        let access: u32 = access
            .trim()
            .parse()
            .ok()
            .filter(|a| *a <= 100)
            .ok_or_else(|| invalid(format!("`{item}`: {access} is not a percentage")))?;
        let size = size.trim();
        let size = if size.is_empty() {
            if absolute {
                return Err(invalid(format!("`{item}`: zoned_abs needs a size")));
            }
            blank.push(zones.len());
            0
        } else if absolute {
            parse_size(size, KB_BASE).map_err(|e| invalid(format!("`{item}`: {e}")))?
        } else {
            size.parse::<u64>()
                .ok()
                .filter(|s| *s <= 100)
                .ok_or_else(|| invalid(format!("`{item}`: {size} is not a percentage")))?
        };
        zones.push(Zone { access, size });
    }
    if zones.is_empty() {
        return Err(invalid("no zones given"));
    }
    let access: u32 = zones.iter().map(|z| z.access).sum();
    if access != 100 {
        return Err(invalid(format!(
            "the zones' access percentages add up to {access}, not 100"
        )));
    }
    if !absolute {
        let given: u64 = zones.iter().map(|z| z.size).sum();
        if given > 100 {
            return Err(invalid(format!(
                "the zones' size percentages add up to {given}, more than 100"
            )));
        }
        if let Some(n) = u64::try_from(blank.len()).ok().filter(|n| *n > 0) {
            let (share, extra) = ((100 - given) / n, (100 - given) % n);
            for (k, &i) in blank.iter().enumerate() {
                zones[i].size = share + u64::from((k as u64) < extra);
            }
        }
    }
    Ok(zones)
}

impl Distribution {
    /// Parses fio's `random_distribution` value.
    pub fn parse(text: &str) -> Result<Self, OptionError> {
        let text = text.trim();
        let (name, rest) = match text.split_once(':') {
            Some((n, r)) => (n, Some(r)),
            None => (text, None),
        };
        // `zipf:THETA[:CENTER]` and the like.
        let param = |default: f64, what: &str| -> Result<(f64, Option<f64>), OptionError> {
            let Some(r) = rest else {
                return Ok((default, None));
            };
            let (v, center) = match r.split_once(':') {
                Some((v, c)) => (v, Some(float(c, "the center")?)),
                None => (r, None),
            };
            if center.is_some_and(|c| !(0.0..=1.0).contains(&c)) {
                return Err(invalid("the center is between 0 and 1"));
            }
            Ok((float(v, what)?, center))
        };
        match name {
            "random" => Ok(Distribution::Random),
            "zipf" => {
                let (theta, center) = param(DEFAULT_ZIPF_THETA, "zipf's theta")?;
                if theta == 1.0 || theta <= 0.0 {
                    return Err(invalid("zipf's theta must be above 0 and not 1"));
                }
                Ok(Distribution::Zipf { theta, center })
            }
            "pareto" => {
                let (h, center) = param(DEFAULT_PARETO_H, "pareto's h")?;
                if !(h > 0.0 && h < 1.0) {
                    return Err(invalid("pareto's h is between 0 and 1 (exclusive)"));
                }
                Ok(Distribution::Pareto { h, center })
            }
            "normal" => {
                let (dev, center) = param(0.0, "the deviation in percent")?;
                if !(0.0..100.0).contains(&dev) {
                    return Err(invalid(
                        "normal's deviation is at least 0 and below 100 (%)",
                    ));
                }
                Ok(Distribution::Normal { dev, center })
            }
            "zoned" | "zoned_abs" => {
                let absolute = name == "zoned_abs";
                let rest = rest.ok_or_else(|| invalid(format!("{name} needs its zones")))?;
                let mut zones: [Vec<Zone>; 3] = Default::default();
                let parts = split_per_ddir(rest).map_err(|e| invalid(e.to_string()))?;
                for (d, part) in parts.iter().enumerate() {
                    if let Some(p) = part {
                        zones[d] = parse_zones(p, absolute)?;
                    }
                }
                Ok(Distribution::Zoned { zones, absolute })
            }
            other => Err(invalid(format!(
                "`{other}` is not a distribution (random, zipf, pareto, normal, zoned, \
                 zoned_abs)"
            ))),
        }
    }

    pub fn is_uniform(&self) -> bool {
        matches!(self, Distribution::Random)
    }

    /// For `zoned_abs`: the bytes its zones span in the largest direction (they must fit in
    /// the region).
    pub fn absolute_span(&self) -> Option<u64> {
        match self {
            Distribution::Zoned {
                zones,
                absolute: true,
            } => zones
                .iter()
                .map(|z| z.iter().map(|z| z.size).sum::<u64>())
                .max(),
            _ => None,
        }
    }
}

/// The block picker of a distribution over `blocks` blocks of `align` bytes.
#[derive(Debug, Clone)]
pub enum BlockPicker {
    Zipf {
        n: u64,
        theta: f64,
        zetan: f64,
        zeta2: f64,
        offset: u64,
    },
    Pareto {
        n: u64,
        power: f64,
        offset: u64,
    },
    Normal {
        n: u64,
        stddev: u64,
        offset: u64,
    },
    /// Per direction, for each of the 100 percentiles of access: the block range it goes to.
    Zoned {
        n: u64,
        table: Box<[[(u64, u64); 100]; 3]>,
    },
}

/// A uniform draw in [0, 1).
#[inline]
fn unit(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

impl BlockPicker {
    /// The picker for `dist` over `blocks` blocks of `align` bytes (`None` for `random`);
    /// `seed` gives the random offset.
    pub fn new(dist: &Distribution, blocks: u64, align: u64, seed: u64) -> Option<BlockPicker> {
        let n = blocks.max(1);
        let mut rng = Rng::new(seed ^ 0xd157);
        let offset = |center: Option<f64>, rng: &mut Rng| match center {
            Some(c) => (n as f64 * c) as u64 % n,
            None => rng.below(n),
        };
        Some(match dist {
            Distribution::Random => return None,
            Distribution::Zipf { theta, center } => {
                let zetan: f64 = (1..=n.min(ZIPF_MAX_GEN))
                    .map(|i| (1.0 / i as f64).powf(*theta))
                    .sum();
                BlockPicker::Zipf {
                    n,
                    theta: *theta,
                    zetan,
                    zeta2: 1.0 + 0.5f64.powf(*theta),
                    offset: offset(*center, &mut rng),
                }
            }
            Distribution::Pareto { h, center } => BlockPicker::Pareto {
                n,
                power: h.ln() / (1.0 - h).ln(),
                offset: offset(*center, &mut rng),
            },
            Distribution::Normal { dev, center } => BlockPicker::Normal {
                n,
                stddev: if *dev == 0.0 {
                    0
                } else {
                    ((n as f64 * dev / 100.0).ceil() as u64).min(n / 2)
                },
                // fio centres a normal distribution at 0 unless told (gauss.c).
                offset: center.map_or(0, |c| {
                    ((n as f64 * (c - 0.5)) as i64).rem_euclid(n as i64) as u64
                }),
            },
            Distribution::Zoned { zones, absolute } => {
                let mut table = Box::new([[(0u64, n); 100]; 3]);
                for (d, zs) in zones.iter().enumerate() {
                    if zs.is_empty() {
                        continue;
                    }
                    let (mut access, mut start) = (0usize, 0u64);
                    for z in zs {
                        let (lo, hi) = if *absolute {
                            (start / align, (start + z.size) / align)
                        } else {
                            (start * n / 100, (start + z.size) * n / 100)
                        };
                        for slot in &mut table[d][access..access + z.access as usize] {
                            *slot = (lo.min(n), hi.min(n));
                        }
                        access += z.access as usize;
                        start += z.size;
                    }
                }
                BlockPicker::Zoned { n, table }
            }
        })
    }

    /// The next block index (< the picker's blocks) for an I/O in direction `ddir`.
    #[inline]
    pub fn pick(&self, ddir: usize, rng: &mut Rng) -> u64 {
        let scatter = |rank: u64, offset: u64, n: u64| {
            rank.wrapping_mul(GOLDEN_RATIO_64).wrapping_add(offset) % n
        };
        match self {
            BlockPicker::Zipf {
                n,
                theta,
                zetan,
                zeta2,
                offset,
            } => {
                let nf = *n as f64;
                let alpha = 1.0 / (1.0 - theta);
                let eta = (1.0 - (2.0 / nf).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
                let u = unit(rng);
                let z = u * zetan;
                let rank = if z < 1.0 {
                    1
                } else if z < 1.0 + 0.5f64.powf(*theta) {
                    2
                } else {
                    1 + (nf * (eta * u - eta + 1.0).powf(alpha)) as u64
                };
                scatter(rank - 1, *offset, *n)
            }
            BlockPicker::Pareto { n, power, offset } => {
                let rank = ((n - 1) as f64 * unit(rng).powf(*power)) as u64;
                scatter(rank, *offset, *n)
            }
            BlockPicker::Normal { n, stddev, offset } => {
                let mut sum = 0;
                for _ in 0..GAUSS_ITERS {
                    sum += rng.below(n + 1);
                }
                let mut mean = sum.div_ceil(GAUSS_ITERS);
                if *stddev > 0 {
                    let mut dev = rng.below(*stddev) as i64 - (*stddev / 2) as i64;
                    while mean as i64 + dev >= *n as i64 {
                        dev /= 2;
                    }
                    mean = (mean as i64 + dev).max(0) as u64;
                }
                scatter(mean, *offset, *n)
            }
            BlockPicker::Zoned { n, table } => {
                let (lo, hi) = table[ddir][rng.below(100) as usize];
                if hi > lo {
                    lo + rng.below(hi - lo)
                } else {
                    lo.min(n - 1)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fios_forms() {
        assert_eq!(Distribution::parse("random").unwrap(), Distribution::Random);
        assert_eq!(
            Distribution::parse("zipf:0.5").unwrap(),
            Distribution::Zipf {
                theta: 0.5,
                center: None
            }
        );
        assert_eq!(
            Distribution::parse("zipf").unwrap(),
            Distribution::Zipf {
                theta: 1.1,
                center: None
            }
        );
        assert_eq!(
            Distribution::parse("pareto:0.9:0.25").unwrap(),
            Distribution::Pareto {
                h: 0.9,
                center: Some(0.25)
            }
        );
        assert!(Distribution::parse("zipf:1").is_err());
        assert!(Distribution::parse("pareto:1.5").is_err());
        assert!(Distribution::parse("normal:100").is_err());
        assert!(Distribution::parse("zipf:0.5:2").is_err());
        assert!(Distribution::parse("lognormal").is_err());
        // rand-zones.fio: the blank size takes what is left (80%).
        let Distribution::Zoned { zones, absolute } =
            Distribution::parse("zoned:50/5:30/15:20/").unwrap()
        else {
            panic!("zoned");
        };
        assert!(!absolute);
        let want = vec![
            Zone {
                access: 50,
                size: 5,
            },
            Zone {
                access: 30,
                size: 15,
            },
            Zone {
                access: 20,
                size: 80,
            },
        ];
        assert_eq!(zones, [want.clone(), want.clone(), want]);
        // Per direction: reads one way, writes (and trims) another.
        let Distribution::Zoned { zones, .. } =
            Distribution::parse("zoned:50/5:30/15:20/,50/10:50/90").unwrap()
        else {
            panic!("zoned");
        };
        assert_eq!(
            zones[1],
            [
                Zone {
                    access: 50,
                    size: 10
                },
                Zone {
                    access: 50,
                    size: 90
                }
            ]
        );
        assert_eq!(zones[2], zones[1]);
        let abs = Distribution::parse("zoned_abs:50/10G:30/100G:20/500G").unwrap();
        assert_eq!(abs.absolute_span(), Some(610 << 30));
        assert!(
            Distribution::parse("zoned:50/5:30/15").is_err(),
            "80% of access"
        );
        assert!(
            Distribution::parse("zoned:50/60:50/60").is_err(),
            "120% of size"
        );
    }

    /// How often each block comes up in `draws` picks.
    fn histogram(p: &BlockPicker, blocks: u64, draws: u64) -> Vec<u64> {
        let mut rng = Rng::new(7);
        let mut counts = vec![0u64; blocks as usize];
        for _ in 0..draws {
            let b = p.pick(0, &mut rng);
            assert!(b < blocks, "{b} of {blocks}");
            counts[b as usize] += 1;
        }
        counts
    }

    /// The share of the picks that the most-picked `top` blocks got.
    fn top_share(mut counts: Vec<u64>, top: usize) -> f64 {
        let total: u64 = counts.iter().sum();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        counts[..top].iter().sum::<u64>() as f64 / total as f64
    }

    #[test]
    fn zipf_and_pareto_concentrate_as_their_parameters_say() {
        let n = 10_000;
        let zipf = |theta| {
            let d = Distribution::Zipf {
                theta,
                center: None,
            };
            BlockPicker::new(&d, n, 4096, 1).unwrap()
        };
        // Zipf(1.2): the hottest 1% of blocks takes most of the I/O; Zipf(0.5) much less,
        // and still far more than uniform's 1%.
        let hot = top_share(histogram(&zipf(1.2), n, 200_000), 100);
        let mild = top_share(histogram(&zipf(0.5), n, 200_000), 100);
        assert!(hot > 0.6, "{hot}");
        assert!(mild > 0.05 && mild < hot, "{mild}");
        // Pareto(0.2): the 80/20 rule, 20% of the ranks take 80% of the I/O; fio's scatter
        // is not one-to-one, so the hottest 20% of blocks take a little more.
        let d = Distribution::Pareto {
            h: 0.2,
            center: None,
        };
        let p = BlockPicker::new(&d, n, 4096, 1).unwrap();
        let share = top_share(histogram(&p, n, 200_000), (n / 5) as usize);
        assert!((0.78..0.92).contains(&share), "{share}");
    }

    #[test]
    fn normal_spreads_by_its_deviation() {
        let n = 1000;
        let narrow = Distribution::Normal {
            dev: 0.0,
            center: None,
        };
        let wide = Distribution::Normal {
            dev: 50.0,
            center: None,
        };
        let a = top_share(
            histogram(&BlockPicker::new(&narrow, n, 512, 1).unwrap(), n, 100_000),
            100,
        );
        let b = top_share(
            histogram(&BlockPicker::new(&wide, n, 512, 1).unwrap(), n, 100_000),
            100,
        );
        // The mean of 12 draws is narrow: its hottest 10% of blocks take most of the I/O.
        assert!(a > 0.5, "{a}");
        assert!(b < a, "{b} vs {a}");
    }

    #[test]
    fn zones_get_their_share_of_the_io() {
        let n = 1000;
        let d = Distribution::parse("zoned:50/5:30/15:20/").unwrap();
        let p = BlockPicker::new(&d, n, 4096, 1).unwrap();
        let counts = histogram(&p, n, 100_000);
        let share = |lo: usize, hi: usize| counts[lo..hi].iter().sum::<u64>() as f64 / 100_000.0;
        assert!((share(0, 50) - 0.5).abs() < 0.01, "{}", share(0, 50));
        assert!((share(50, 200) - 0.3).abs() < 0.01, "{}", share(50, 200));
        assert!(
            (share(200, 1000) - 0.2).abs() < 0.01,
            "{}",
            share(200, 1000)
        );
        // zoned_abs: 60% to the first 40 KiB (10 blocks), 40% to the next 4 MiB.
        let n = 2000;
        let d = Distribution::parse("zoned_abs:60/40k:40/4m").unwrap();
        let p = BlockPicker::new(&d, n, 4096, 1).unwrap();
        let counts = histogram(&p, n, 100_000);
        let first: u64 = counts[..10].iter().sum();
        assert!((first as f64 / 100_000.0 - 0.6).abs() < 0.01, "{first}");
        assert_eq!(counts[10 + 1024..].iter().sum::<u64>(), 0);
    }
}
