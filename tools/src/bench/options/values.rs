//! Reading one option's value: [`Value`], the value as written with the option's name for
//! errors, and the parsers of the options with a syntax of their own.

use crate::units::{
    parse_bool, parse_int, parse_size, parse_size_or_percent, parse_size_range, parse_time,
    split_per_ddir, SizeOrPercent, ValueError,
};

use super::expr::{self, ExprKind};
use super::{invalid, OptionError, KB_BASE};

fn value_err(name: &str) -> impl Fn(ValueError) -> OptionError + '_ {
    move |source| OptionError::Value {
        name: name.to_string(),
        source,
    }
}

/// An option's value as written (trimmed; `1` for a bare flag), with the canonical name of
/// its option, which every error names.
#[derive(Debug, Clone, Copy)]
pub struct Value<'a> {
    pub name: &'static str,
    pub text: &'a str,
}

impl<'a> Value<'a> {
    pub fn invalid(&self, why: impl Into<String>) -> OptionError {
        invalid(self.name, why)
    }

    pub fn unsupported(&self, why: impl Into<String>) -> OptionError {
        OptionError::Unsupported {
            name: self.name.into(),
            why: why.into(),
        }
    }

    /// A parenthesised value is fio's arithmetic ([`expr::evaluate`]).
    fn expression(&self, kind: ExprKind) -> Option<Result<u64, OptionError>> {
        self.text.trim_start().starts_with('(').then(|| {
            expr::evaluate(self.text, kind).map_err(|source| OptionError::Expression {
                name: self.name.to_string(),
                source,
            })
        })
    }

    pub fn size(&self) -> Result<u64, OptionError> {
        if let Some(v) = self.expression(ExprKind::Size) {
            return v;
        }
        parse_size(self.text, KB_BASE).map_err(value_err(self.name))
    }

    pub fn size_range(&self) -> Result<(u64, u64), OptionError> {
        parse_size_range(self.text, KB_BASE).map_err(value_err(self.name))
    }

    pub fn size_or_percent(&self) -> Result<SizeOrPercent, OptionError> {
        if let Some(v) = self.expression(ExprKind::Size) {
            return v.map(SizeOrPercent::Bytes);
        }
        parse_size_or_percent(self.text, KB_BASE).map_err(value_err(self.name))
    }

    /// A time; a bare number is seconds.
    pub fn time(&self) -> Result<std::time::Duration, OptionError> {
        if let Some(v) = self.expression(ExprKind::Seconds) {
            return v.map(std::time::Duration::from_micros);
        }
        parse_time(self.text).map_err(value_err(self.name))
    }

    /// A time whose bare number is microseconds (fio's `thinktime`), with the same suffixes.
    pub fn time_us(&self) -> Result<std::time::Duration, OptionError> {
        if let Some(v) = self.expression(ExprKind::Micros) {
            return v.map(std::time::Duration::from_micros);
        }
        let t = self.text.trim();
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            return self.int().map(std::time::Duration::from_micros);
        }
        self.time()
    }

    /// An integer; fio reads these as sizes, so a parenthesised one is worked out too.
    pub fn int(&self) -> Result<u64, OptionError> {
        if let Some(v) = self.expression(ExprKind::Size) {
            return v;
        }
        parse_int(self.text).map_err(value_err(self.name))
    }

    /// An integer that fits in a `u32`.
    pub fn small(&self) -> Result<u32, OptionError> {
        let t = self.text;
        u32::try_from(self.int()?)
            .map_err(|_| self.invalid(format!("`{t}` is too large (max {})", u32::MAX)))
    }

    /// A count of at least 1, stored in `field` (even when 0, before the error).
    pub fn count(&self, field: &mut u32) -> Result<(), OptionError> {
        *field = self.small()?;
        if *field == 0 {
            return Err(self.invalid("must be at least 1"));
        }
        Ok(())
    }

    pub fn percent(&self) -> Result<u32, OptionError> {
        let p = self.small()?;
        if p > 100 {
            return Err(self.invalid("a percentage is at most 100"));
        }
        Ok(p)
    }

    pub fn boolean(&self) -> Result<bool, OptionError> {
        parse_bool(self.text).map_err(value_err(self.name))
    }

    /// Calls `set` with the index and value of each direction a per-direction list
    /// (`read,write,trim`) gives, in order (see [`split_per_ddir`]).
    pub fn per_ddir(
        &self,
        mut set: impl FnMut(usize, Value<'a>) -> Result<(), OptionError>,
    ) -> Result<(), OptionError> {
        for (d, part) in split_per_ddir(self.text)
            .map_err(value_err(self.name))?
            .iter()
            .enumerate()
        {
            if let Some(p) = part {
                set(
                    d,
                    Value {
                        name: self.name,
                        text: p,
                    },
                )?;
            }
        }
        Ok(())
    }
}

/// `bssplit=4k/10:64k/50:32k/40`: blank percentages share what is left evenly.
pub fn parse_bssplit(text: &str) -> Result<Vec<(u64, u32)>, OptionError> {
    let name = "bssplit";
    let mut entries: Vec<(u64, Option<u32>)> = Vec::new();
    for item in text.split(':').map(str::trim).filter(|s| !s.is_empty()) {
        let (bs, perc) = match item.split_once('/') {
            Some((b, p)) => (b, p.trim()),
            None => (item, ""),
        };
        let bs = parse_size(bs, KB_BASE).map_err(value_err(name))?;
        let perc = if perc.is_empty() {
            None
        } else {
            Some(
                u32::try_from(parse_int(perc).map_err(value_err(name))?)
                    .map_err(|_| invalid(name, format!("`{perc}` is not a percentage")))?,
            )
        };
        entries.push((bs, perc));
    }
    if entries.is_empty() {
        return Err(invalid(name, "no block sizes given"));
    }
    if entries.len() > 64 {
        return Err(invalid(name, "at most 64 entries per direction"));
    }
    let given: u32 = entries.iter().filter_map(|e| e.1).sum();
    let missing = entries.iter().filter(|e| e.1.is_none()).count() as u32;
    if given > 100 {
        return Err(invalid(
            name,
            format!("percentages add up to {given}%, more than 100%"),
        ));
    }
    if missing == 0 && given != 100 {
        return Err(invalid(
            name,
            format!("percentages add up to {given}%, not 100%"),
        ));
    }
    let left = 100 - given;
    let share = left.checked_div(missing).unwrap_or(0);
    let mut extra = left.checked_rem(missing).unwrap_or(0);
    Ok(entries
        .into_iter()
        .map(|(bs, p)| {
            let p = p.unwrap_or_else(|| {
                let e = u32::from(extra > 0);
                extra = extra.saturating_sub(1);
                share + e
            });
            (bs, p)
        })
        .collect())
}

/// `cpus_allowed=0-3,5`: CPU numbers and inclusive ranges.
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>, OptionError> {
    let name = "cpus_allowed";
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let cpu = |t: &str| -> Result<usize, OptionError> {
            t.trim()
                .parse::<usize>()
                .ok()
                .filter(|c| *c < 1024)
                .ok_or_else(|| invalid(name, format!("`{t}` is not a CPU number")))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (cpu(a)?, cpu(b)?);
                if a > b {
                    return Err(invalid(name, format!("`{part}`: an empty range")));
                }
                out.extend(a..=b);
            }
            None => out.push(cpu(part)?),
        }
    }
    if out.is_empty() {
        return Err(invalid(name, "no CPUs given"));
    }
    Ok(out)
}

/// `percentile_list=50:99:99.9`: at most 20 values in (0, 100].
pub fn parse_percentiles(text: &str) -> Result<Vec<f64>, OptionError> {
    let name = "percentile_list";
    let mut out = Vec::new();
    for p in text.split(':').map(str::trim).filter(|s| !s.is_empty()) {
        let v: f64 = p
            .parse()
            .map_err(|_| invalid(name, format!("`{p}` is not a number")))?;
        if !(v > 0.0 && v <= 100.0) {
            return Err(invalid(name, format!("{p} is not in (0, 100]")));
        }
        out.push(v);
    }
    if out.is_empty() || out.len() > 20 {
        return Err(invalid(name, "give between 1 and 20 percentiles"));
    }
    Ok(out)
}

/// `verify_pattern=0xdeadbeef` (bytes in the order written) or `"text"`, several parts
/// concatenated when separated by spaces.
pub fn parse_pattern(text: &str) -> Result<Vec<u8>, OptionError> {
    let name = "verify_pattern";
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        if let Some(q) = rest.strip_prefix('"').or_else(|| rest.strip_prefix('\'')) {
            let quote = rest.as_bytes()[0] as char;
            let end = q
                .find(quote)
                .ok_or_else(|| invalid(name, "unterminated string"))?;
            out.extend_from_slice(&q.as_bytes()[..end]);
            rest = q[end + 1..].trim_start();
        } else if let Some(h) = rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
            let end = h.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(h.len());
            let digits = &h[..end];
            if digits.is_empty() {
                return Err(invalid(name, "`0x` without hex digits"));
            }
            let padded = if digits.len() % 2 == 1 {
                format!("0{digits}")
            } else {
                digits.to_string()
            };
            for i in (0..padded.len()).step_by(2) {
                let byte = u8::from_str_radix(&padded[i..i + 2], 16)
                    .map_err(|_| invalid(name, "bad hex digits"))?;
                out.push(byte);
            }
            rest = h[end..].trim_start();
        } else if rest.starts_with('%') {
            return Err(OptionError::Unsupported {
                name: name.into(),
                why: "format specifiers like %o are not supported".into(),
            });
        } else {
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if end == 0 {
                return Err(invalid(
                    name,
                    format!("`{rest}`: use 0x hex bytes, a decimal byte or a quoted string"),
                ));
            }
            let n: u8 = rest[..end]
                .parse()
                .map_err(|_| invalid(name, "a decimal pattern must fit in one byte"))?;
            out.push(n);
            rest = rest[end..].trim_start();
        }
        if rest.starts_with(',') {
            rest = rest[1..].trim_start();
        }
    }
    if out.is_empty() {
        return Err(invalid(name, "empty pattern"));
    }
    Ok(out)
}
