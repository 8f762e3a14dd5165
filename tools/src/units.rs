//! Numbers as the tools read them, in one module because two conventions for size suffixes
//! meet here and must not be mixed up:
//!
//! - [`parse_binary_size`] reads the sizes of the plain commands (`uvio read --offset`,
//!   `uvio verify --bs`) as dd and most people write them: every suffix is a power of 1024,
//!   so `1m`, `1mb` and `1MiB` are all 1,048,576.
//! - The others read `uvio bench` options as fio does (fio's `parse.c`), so that a job file
//!   means the same bytes under fio and under uvio bench: sizes with `k`/`m`/`g`/`t`/`p`
//!   suffixes in powers of the `kb_base` (1024 by default, where fio's inverted `KiB`
//!   spelling means 1000, so `1MiB` is 1,000,000), percentages of the device, times with
//!   `d`/`h`/`m`/`s`/`ms`/`us` suffixes (unitless: seconds), ranges `1k-4k` or `1k:4k`, and
//!   0/1 booleans.
//!
//! One deliberate difference from fio: a suffix fio does not know is an error here, where fio
//! silently multiplies by 1 (so `runtime=10min` is refused rather than read as 10 seconds).

use std::time::Duration;

/// Why a value could not be parsed; the caller adds the option's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("`{0}` is not a number")]
    NotANumber(String),
    #[error("`{value}`: unknown suffix `{suffix}` ({expected})")]
    BadSuffix {
        value: String,
        suffix: String,
        expected: &'static str,
    },
    #[error("`{0}` is too large")]
    Overflow(String),
    #[error("`{0}`: a percentage must be between 0 and 100")]
    BadPercent(String),
    #[error("`{0}` is not a range (write MIN-MAX or MIN:MAX)")]
    BadRange(String),
    #[error("`{0}` is not a boolean (fio booleans are 0 or 1)")]
    BadBool(String),
    #[error("{0}")]
    Invalid(String),
}

/// A size or a share of the device (`size=20%`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SizeOrPercent {
    Bytes(u64),
    /// Percent of the device, 0 < p <= 100.
    Percent(f64),
}

impl SizeOrPercent {
    /// The byte count for a device of `capacity` bytes, percentages rounded down to `align`.
    pub fn resolve(self, capacity: u64, align: u64) -> u64 {
        match self {
            SizeOrPercent::Bytes(b) => b,
            SizeOrPercent::Percent(p) => {
                let bytes = (capacity as f64 * p / 100.0) as u64;
                bytes / align.max(1) * align.max(1)
            }
        }
    }
}

/// Splits `text` into its leading integer (decimal, or hex with `0x`) and the rest.
fn split_number(text: &str) -> Result<(u64, &str), ValueError> {
    let t = text.trim();
    let (digits, radix, rest_at) = if let Some(hex) = t.strip_prefix("0x").or(t.strip_prefix("0X"))
    {
        let end = hex
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(hex.len());
        (&hex[..end], 16, 2 + end)
    } else {
        let end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        (&t[..end], 10, end)
    };
    if digits.is_empty() {
        return Err(ValueError::NotANumber(text.to_string()));
    }
    let n = u64::from_str_radix(digits, radix).map_err(|_| ValueError::Overflow(text.into()))?;
    Ok((n, t[rest_at..].trim()))
}

/// The multiplier of a size suffix, as fio's `__get_mult_bytes` computes it: IEC spellings
/// (`kib`, `mib`, ...) first, then the single letters; `kb_base` 1024 inverts the IEC ones.
fn size_multiplier(value: &str, suffix: &str, kb_base: u64) -> Result<u64, ValueError> {
    let s = suffix.to_ascii_lowercase();
    let bad = || ValueError::BadSuffix {
        value: value.to_string(),
        suffix: suffix.to_string(),
        expected: "use k, m, g, t or p, optionally followed by b",
    };
    if s.is_empty() || s == "b" {
        return Ok(1);
    }
    let letters = ['k', 'm', 'g', 't', 'p'];
    let power = |c: char| letters.iter().position(|&l| l == c).map(|i| i as u32 + 1);
    // "kib", "mib": the standards' 1024-based units, which fio reads as 1000-based when
    // kb_base=1024 (its compatibility mode) and as 1024-based when kb_base=1000.
    if s.len() == 3 && s.ends_with("ib") {
        let p = power(s.as_bytes()[0] as char).ok_or_else(bad)?;
        let base = if kb_base == 1024 { 1000u64 } else { 1024 };
        return base
            .checked_pow(p)
            .ok_or_else(|| ValueError::Overflow(value.into()));
    }
    // "k", "kb", and (as in fio) "ki": the single-letter branch.
    let mut chars = s.chars();
    let first = chars.next().ok_or_else(bad)?;
    let rest: String = chars.collect();
    if !matches!(rest.as_str(), "" | "b" | "i") {
        return Err(bad());
    }
    let p = power(first).ok_or_else(bad)?;
    kb_base
        .checked_pow(p)
        .ok_or_else(|| ValueError::Overflow(value.into()))
}

/// A byte count: `4096`, `4k`, `1M`, `0x1000`, `2gb` (fio semantics, `kb_base` 1024 or 1000).
pub fn parse_size(text: &str, kb_base: u64) -> Result<u64, ValueError> {
    let (n, suffix) = split_number(text)?;
    let mult = size_multiplier(text, suffix, kb_base)?;
    n.checked_mul(mult)
        .ok_or_else(|| ValueError::Overflow(text.to_string()))
}

/// A size, or a percentage of the device (`20%`).
pub fn parse_size_or_percent(text: &str, kb_base: u64) -> Result<SizeOrPercent, ValueError> {
    let t = text.trim();
    if let Some(p) = t.strip_suffix('%') {
        let v: f64 = p
            .trim()
            .parse()
            .map_err(|_| ValueError::NotANumber(text.into()))?;
        if !(0.0..=100.0).contains(&v) {
            return Err(ValueError::BadPercent(text.into()));
        }
        return Ok(SizeOrPercent::Percent(v));
    }
    parse_size(t, kb_base).map(SizeOrPercent::Bytes)
}

/// A time: unitless means seconds; suffixes `d`, `h`, `m` (minutes), `s`, `ms`/`msec`,
/// `us`/`usec`, case-insensitive (fio's `get_mult_time`).
pub fn parse_time(text: &str) -> Result<Duration, ValueError> {
    let (n, suffix) = split_number(text)?;
    let usec: u64 = match suffix.to_ascii_lowercase().as_str() {
        "" | "s" => 1_000_000,
        "us" | "usec" => 1,
        "ms" | "msec" => 1_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        _ => {
            return Err(ValueError::BadSuffix {
                value: text.to_string(),
                suffix: suffix.to_string(),
                expected: "use d, h, m, s, ms or us",
            })
        }
    };
    n.checked_mul(usec)
        .map(Duration::from_micros)
        .ok_or_else(|| ValueError::Overflow(text.to_string()))
}

/// A plain integer (decimal or `0x` hex), no suffix.
pub fn parse_int(text: &str) -> Result<u64, ValueError> {
    let (n, suffix) = split_number(text)?;
    if !suffix.is_empty() {
        return Err(ValueError::NotANumber(text.to_string()));
    }
    Ok(n)
}

/// A fio boolean: `0` or `1` (hex allowed, as fio's `check_int`).
pub fn parse_bool(text: &str) -> Result<bool, ValueError> {
    match parse_int(text) {
        Ok(0) => Ok(false),
        Ok(1) => Ok(true),
        _ => Err(ValueError::BadBool(text.to_string())),
    }
}

/// A size range `MIN-MAX` or `MIN:MAX`; swapped when given high-low, as fio does.
pub fn parse_size_range(text: &str, kb_base: u64) -> Result<(u64, u64), ValueError> {
    let t = text.trim();
    let (a, b) = t
        .split_once('-')
        .or_else(|| t.split_once(':'))
        .ok_or_else(|| ValueError::BadRange(text.to_string()))?;
    let (a, b) = (parse_size(a, kb_base)?, parse_size(b, kb_base)?);
    Ok((a.min(b), a.max(b)))
}

/// Splits a per-direction list (`read,write,trim`) the fio way: a list not ending in a comma
/// repeats its last value for the directions after it (`bs=8k,32k` = 8k reads, 32k writes
/// and trims); an empty entry keeps the default. Returns one entry per direction.
pub fn split_per_ddir(text: &str) -> Result<[Option<&str>; 3], ValueError> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    if parts.len() > 3 {
        return Err(ValueError::Invalid(format!(
            "`{text}` has {} comma-separated values; at most 3 (read,write,trim)",
            parts.len()
        )));
    }
    let mut out = [None; 3];
    for (i, slot) in out.iter_mut().enumerate() {
        let part = parts
            .get(i)
            .copied()
            .or_else(|| parts.last().copied().filter(|_| !text.ends_with(',')));
        *slot = part.filter(|p| !p.is_empty());
    }
    Ok(out)
}

/// Parses a byte count with an optional k/m/g/t suffix (powers of 1024; `kib`/`kb` too):
/// the plain commands' reading, where `1MiB` is 1,048,576 (fio's [`parse_size`] says 1,000,000).
pub fn parse_binary_size(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, suffix) = t.split_at(digits);
    let too_large = || format!("`{text}` is too large (max {} bytes)", u64::MAX);
    if number.is_empty() {
        return Err(format!("`{text}` is not a size (try 4096, 4k, 1m)"));
    }
    // Only digits are left, so a failed parse is an overflow.
    let number: u64 = number.parse().map_err(|_| too_large())?;
    let shift = match suffix.trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => {
            return Err(format!(
                "`{text}`: unknown size suffix `{suffix}` (use k, m, g or t)"
            ))
        }
    };
    number.checked_mul(1u64 << shift).ok_or_else(too_large)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suffixes() {
        assert_eq!(parse_binary_size("4096"), Ok(4096));
        assert_eq!(parse_binary_size("4k"), Ok(4096));
        assert_eq!(parse_binary_size("4K"), Ok(4096));
        assert_eq!(parse_binary_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_binary_size("2g"), Ok(2 << 30));
        assert_eq!(parse_binary_size("8mb"), Ok(8 << 20));
        assert!(parse_binary_size("").is_err());
        assert!(parse_binary_size("12q").is_err());
        assert!(parse_binary_size("-1").is_err());
        assert!(parse_binary_size("99999999999t").is_err());
    }

    #[test]
    fn a_size_past_u64_says_too_large_with_the_maximum() {
        let max = "(max 18446744073709551615 bytes)";
        for big in [
            "99999999999999999999",
            "18446744073709551616",
            "99999999999t",
        ] {
            let e = parse_binary_size(big).unwrap_err();
            assert!(e.contains("is too large") && e.contains(max), "{big}: {e}");
        }
        assert_eq!(parse_binary_size("18446744073709551615"), Ok(u64::MAX));
        for bad in ["", "k", "x12", "-1", "1.5k"] {
            let e = parse_binary_size(bad).unwrap_err();
            assert!(
                e.contains("is not a size") || e.contains("unknown size suffix"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn sizes_follow_fio_including_its_inverted_iec_units() {
        // HOWTO "Parameter types": with the default kb_base=1024, k/K/kb/KB are 1024 and the
        // IEC spellings KiB/MiB are powers of 1000 (fio's compatibility mode).
        assert_eq!(parse_size("4096", 1024), Ok(4096));
        assert_eq!(parse_size("4k", 1024), Ok(4096));
        assert_eq!(parse_size("4K", 1024), Ok(4096));
        assert_eq!(parse_size("4kb", 1024), Ok(4096));
        assert_eq!(parse_size("4KB", 1024), Ok(4096));
        assert_eq!(parse_size("4KiB", 1024), Ok(4000));
        assert_eq!(parse_size("1MiB", 1024), Ok(1_000_000));
        assert_eq!(parse_size("1m", 1024), Ok(1 << 20));
        assert_eq!(parse_size("1g", 1024), Ok(1 << 30));
        assert_eq!(parse_size("2t", 1024), Ok(2 << 40));
        assert_eq!(parse_size("1p", 1024), Ok(1 << 50));
        assert_eq!(parse_size("0x1000", 1024), Ok(4096));
        assert_eq!(parse_size("512b", 1024), Ok(512));
        // "Ki" without the B goes through fio's single-letter branch (axboe/fio#1618).
        assert_eq!(parse_size("4ki", 1024), Ok(4096));
        // kb_base=1000: the standards-conforming reading.
        assert_eq!(parse_size("4k", 1000), Ok(4000));
        assert_eq!(parse_size("4KiB", 1000), Ok(4096));
        assert!(parse_size("", 1024).is_err());
        assert!(parse_size("k", 1024).is_err());
        assert!(parse_size("12q", 1024).is_err());
        assert!(parse_size("-1", 1024).is_err());
        assert!(parse_size("4kk", 1024).is_err());
        assert!(parse_size("99999999999t", 1024).is_err());
    }

    #[test]
    fn percentages_and_ranges() {
        assert_eq!(
            parse_size_or_percent("20%", 1024),
            Ok(SizeOrPercent::Percent(20.0))
        );
        assert_eq!(
            parse_size_or_percent("1g", 1024),
            Ok(SizeOrPercent::Bytes(1 << 30))
        );
        assert!(parse_size_or_percent("120%", 1024).is_err());
        assert_eq!(SizeOrPercent::Percent(50.0).resolve(10_000, 4096), 4096);
        assert_eq!(parse_size_range("1k-4k", 1024), Ok((1024, 4096)));
        assert_eq!(parse_size_range("4k:1k", 1024), Ok((1024, 4096)));
        assert!(parse_size_range("4k", 1024).is_err());
    }

    #[test]
    fn times_default_to_seconds() {
        assert_eq!(parse_time("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_time("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_time("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_time("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_time("1d"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_time("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_time("250MSEC"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_time("100us"), Ok(Duration::from_micros(100)));
        assert!(parse_time("10min").is_err());
        assert!(parse_time("x").is_err());
    }

    #[test]
    fn booleans_are_zero_or_one() {
        assert_eq!(parse_bool("1"), Ok(true));
        assert_eq!(parse_bool("0"), Ok(false));
        assert!(parse_bool("yes").is_err());
        assert!(parse_bool("2").is_err());
    }

    #[test]
    fn per_direction_lists_repeat_the_last_value_unless_comma_terminated() {
        // HOWTO `bs`: bs=8k,32k = 8k reads, 32k writes and trims; bs=8k,32k, = default trims;
        // bs=,8k = default reads.
        assert_eq!(split_per_ddir("8k").unwrap(), [Some("8k"); 3]);
        assert_eq!(
            split_per_ddir("8k,32k").unwrap(),
            [Some("8k"), Some("32k"), Some("32k")]
        );
        assert_eq!(
            split_per_ddir("8k,32k,").unwrap(),
            [Some("8k"), Some("32k"), None]
        );
        assert_eq!(
            split_per_ddir(",8k").unwrap(),
            [None, Some("8k"), Some("8k")]
        );
        assert!(split_per_ddir("1,2,3,4").is_err());
    }
}
