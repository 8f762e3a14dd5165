//! Number and time formatting as fio prints them: `num2str` (4 significant figures, SI or IEC
//! prefixes: `623KiB/s`, `30.4MiB`, `257k`), the latency unit choice, percentile values,
//! job-option sizes (`4k`) and `ctime()` dates.

/// Units `num2str` appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    None,
    Byte,
    BytePerSec,
}

/// fio's `num2str(num, maxlen, base=1, pow2, units)`: divides by 1000 (1024 when `pow2`)
/// until the integer part has at most `maxlen` digits, then fills the remaining digits with
/// decimals (dropping them when only one digit would be left).
pub fn num2str(num: u64, maxlen: usize, pow2: bool, unit: Unit) -> String {
    const SI: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];
    const IEC: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    let prefixes = if pow2 { IEC } else { SI };
    let unit_str = match unit {
        Unit::None => "",
        Unit::Byte => "B",
        Unit::BytePerSec => "B/s",
    };
    let thousand: u64 = if pow2 { 1024 } else { 1000 };
    let mut num = num;
    let mut post = 0usize;
    let mut modulo: Option<u64> = None;
    let mut carry = false;
    while post < prefixes.len() {
        if num.to_string().len() <= maxlen {
            break;
        }
        let m = num % thousand;
        num /= thousand;
        carry = m >= thousand / 2;
        modulo = Some(m);
        post += 1;
    }
    if post >= prefixes.len() {
        post = 0;
    }
    let Some(modulo) = modulo else {
        return format!("{num}{}{unit_str}", prefixes[post]);
    };
    let digits = num.to_string().len();
    if maxlen as isize - digits as isize <= 1 {
        if carry {
            num += 1;
        }
        return format!("{num}{}{unit_str}", prefixes[post]);
    }
    let decimals = maxlen - digits - 1;
    let frac = format!("{:.*}", decimals, modulo as f64 / thousand as f64);
    // "0.xyz" -> "xyz"; a rounding up to "1.00" carries into the integer part.
    if let Some(rest) = frac.strip_prefix("1.") {
        return format!("{}.{rest}{}{unit_str}", num + 1, prefixes[post]);
    }
    let rest = frac.get(2..).unwrap_or("0");
    format!("{num}.{rest}{}{unit_str}", prefixes[post])
}

/// A byte rate as fio shows it: binary first, decimal in parentheses (`623KiB/s (638kB/s)`).
pub fn bw_pair(bytes_per_sec: u64) -> (String, String) {
    (
        num2str(bytes_per_sec, 4, true, Unit::BytePerSec),
        num2str(bytes_per_sec, 4, false, Unit::BytePerSec),
    )
}

/// Latency statistics scaled to the unit fio picks for a `slat`/`clat`/`lat` line
/// (stat.h `nsec_to_usec` / `nsec_to_msec`).
pub fn latency_unit(min: u64, max: u64, stddev: f64) -> (&'static str, f64) {
    if min > 2_000_000 && max > 99_999_999 && stddev > 1_000_000.0 {
        ("msec", 1_000_000.0)
    } else if min > 2000 && max > 99_999 && stddev > 1000.0 {
        ("usec", 1000.0)
    } else {
        ("nsec", 1.0)
    }
}

/// The unit of a percentile block (stat.c `show_clat_percentiles`), by its smallest and
/// largest values: (name, divisor as a power of 1000).
pub fn percentile_unit(minv: u64, maxv: u64) -> (&'static str, u32) {
    if minv > 2_000_000 && maxv > 99_999_999 {
        ("msec", 2)
    } else if minv > 2000 && maxv > 99_999 {
        ("usec", 1)
    } else {
        ("nsec", 0)
    }
}

/// A size as a fio job option would be written (`4k`, `128k`, `1m`, `512`).
pub fn size_option(bytes: u64) -> String {
    for (shift, suffix) in [(40, "t"), (30, "g"), (20, "m"), (10, "k")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// `ctime()` of `secs` since the epoch in local time, without the newline
/// (`Sat Jun 24 12:07:54 2017`).
pub fn ctime(secs: i64) -> String {
    let t: libc::time_t = secs;
    // SAFETY: localtime_r and strftime write only into the buffers given.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return secs.to_string();
        }
        let mut buf = [0u8; 64];
        let n = libc::strftime(
            buf.as_mut_ptr().cast(),
            buf.len(),
            c"%a %b %e %H:%M:%S %Y".as_ptr(),
            &tm,
        );
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn num2str_matches_fio_outputs() {
        // Values from fio's documented output.
        assert_eq!(
            num2str(623 * 1024 + 900, 4, true, Unit::BytePerSec),
            "624KiB/s"
        );
        assert_eq!(num2str(638_000, 4, false, Unit::BytePerSec), "638kB/s");
        assert_eq!(num2str(31_876_710, 4, true, Unit::Byte), "30.4MiB");
        assert_eq!(num2str(88, 4, false, Unit::None), "88");
        assert_eq!(num2str(257_000, 4, false, Unit::None), "257k");
        assert_eq!(num2str(10_400, 4, false, Unit::None), "10.4k");
        assert_eq!(num2str(4096, 4, true, Unit::Byte), "4096B");
        assert_eq!(num2str(131_072, 4, true, Unit::Byte), "128KiB");
        assert_eq!(
            num2str(1_051_000_000, 4, false, Unit::BytePerSec),
            "1051MB/s"
        );
        assert_eq!(num2str(1_018_600, 6, false, Unit::None), "1018.6k");
        assert_eq!(num2str(145_500, 6, false, Unit::None), "145500");
        assert_eq!(num2str(0, 4, false, Unit::None), "0");
    }

    #[test]
    fn units_switch_where_fio_switches() {
        assert_eq!(latency_unit(500, 145_500, 4781.5).0, "nsec");
        assert_eq!(latency_unit(170_000, 78_367_000, 8_293_310.0).0, "usec");
        assert_eq!(latency_unit(3_000_000, 200_000_000, 2e6).0, "msec");
        assert_eq!(percentile_unit(302_000, 78_119_000), ("usec", 1));
        assert_eq!(percentile_unit(100, 9000), ("nsec", 0));
        assert_eq!(size_option(4096), "4k");
        assert_eq!(size_option(131_072), "128k");
        assert_eq!(size_option(1 << 20), "1m");
        assert_eq!(size_option(512), "512");
        assert_eq!(size_option(6144), "6k");
    }
}
