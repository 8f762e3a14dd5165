//! fio's reserved keywords in option values: `$pagesize`, `$mb_memory` and `$ncpus` are
//! replaced with this system's values, and when one was, the arithmetic around it is worked
//! out as fio does by piping the value to `bc` (options.c `fio_keyword_replace`).

use super::options::{bc_arithmetic, OptionError};

/// The values fio puts in place of its reserved keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keywords {
    pub pagesize: u64,
    pub mb_memory: u64,
    pub ncpus: u64,
}

impl Keywords {
    /// As fio's `fio_keywords_init` finds them: the page size, physical memory in MiB and
    /// the configured CPUs.
    pub fn of_this_system() -> Self {
        let conf = |name| {
            // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
            let v = unsafe { libc::sysconf(name) };
            u64::try_from(v).unwrap_or(0)
        };
        let pagesize = conf(libc::_SC_PAGESIZE);
        Keywords {
            pagesize,
            mb_memory: conf(libc::_SC_PHYS_PAGES).saturating_mul(pagesize) >> 20,
            ncpus: conf(libc::_SC_NPROCESSORS_CONF),
        }
    }
}

/// Replaces `$pagesize`, `$mb_memory` and `$ncpus` in an option's value, and when one was
/// replaced and the value has `+ - * /` (and no `'`), works it out as fio does by piping it
/// to `bc`: whole numbers, the result in the option's plain unit (`size=8*$mb_memory` is
/// 8 x the MiB of memory, in bytes).
pub fn substitute_keywords(key: &str, value: &str, k: &Keywords) -> Result<String, OptionError> {
    let mut out = value.to_string();
    let mut replaced = false;
    for (word, v) in [
        ("$pagesize", k.pagesize),
        ("$mb_memory", k.mb_memory),
        ("$ncpus", k.ncpus),
    ] {
        if out.contains(word) {
            out = out.replace(word, &v.to_string());
            replaced = true;
        }
    }
    if replaced && out.contains(['+', '-', '*', '/']) && !out.contains('\'') {
        let v = bc_arithmetic(&out).map_err(|source| OptionError::Expression {
            name: key.to_string(),
            source,
        })?;
        out = v.to_string();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_replaced_and_their_arithmetic_worked_out() {
        let k = Keywords {
            pagesize: 4096,
            mb_memory: 2048,
            ncpus: 4,
        };
        let sub = |v: &str| substitute_keywords("size", v, &k);
        assert_eq!(sub("$pagesize").unwrap(), "4096");
        // fio's HOWTO example: 8 x the MiB of memory (a plain number: bytes, as in fio).
        assert_eq!(sub("8*$mb_memory").unwrap(), "16384");
        assert_eq!(sub("$ncpus*2-1").unwrap(), "7");
        assert_eq!(sub("($pagesize+$pagesize)/2").unwrap(), "4096");
        // No keyword: left alone, even with operators (bsrange=1k-4k).
        assert_eq!(sub("1k-4k").unwrap(), "1k-4k");
        // A keyword without arithmetic keeps its suffix for the option's own parser.
        assert_eq!(sub("${X}$ncpus").unwrap(), "${X}4");
        let e = sub("$ncpus*2k").unwrap_err().to_string();
        assert!(e.starts_with("option `size`: `4*2k`"), "{e}");
    }
}
