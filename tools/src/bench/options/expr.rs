//! fio's arithmetic in option values, two kinds of it:
//!
//! - [`evaluate`]: a numeric value that starts with `(` is an expression (fio's
//!   `exp/expression-parser.y`, reached from `str_to_decimal` in parse.c): `+ - * / % ^`,
//!   unary minus, parentheses, decimal, hex and fractional numbers, and unit suffixes that
//!   apply to what precedes them (`(1k+512)`, `(2m*3)`, `(1m+30s)` for a time). Without a
//!   suffix, a time expression counts in its option's unit (seconds for `runtime`).
//! - [`bc`]: after `$pagesize`, `$mb_memory` or `$ncpus` is replaced, a value with
//!   `+ - * /` in it is worked out as `bc` would (fio pipes it to `bc`): whole numbers,
//!   `+ - * / % ^` and parentheses, no units (`size=8*$mb_memory` is 8 x the megabytes, in
//!   bytes, as in fio).
//!
//! Both follow fio's operator precedence; the arithmetic is checked, so an overflow is an
//! error rather than a wrapped number.

/// What the value means, which decides what `m` is and the unit of a bare number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExprKind {
    /// Bytes (or a plain count): `m` is mebi, a bare number is bytes.
    Size,
    /// A time whose bare numbers are in seconds (`runtime`, `startdelay`); the result is
    /// microseconds truncated to whole seconds, as fio's `str_to_decimal` does.
    Seconds,
    /// A time whose bare numbers are microseconds (`thinktime`); the result is microseconds.
    Micros,
}

/// Why an expression could not be worked out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    #[error("`{expr}`: {why}")]
    Syntax { expr: String, why: String },
    #[error("`{0}`: division by zero")]
    DivideByZero(String),
    #[error("`{0}`: the result does not fit in 64 bits")]
    Overflow(String),
    #[error("`{0}`: the result is negative")]
    Negative(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Token {
    /// A number: its integer value, its real value, and whether it is fractional (fio's
    /// `has_dval`, which makes the arithmetic it takes part in real).
    Number(i128, f64, bool),
    /// A unit suffix: its multiplier, and whether it makes the value real (`ms`, `us`).
    Suffix(i128, bool),
    Op(char),
}

/// One operand: fio keeps an integer and a real value side by side.
#[derive(Debug, Clone, Copy)]
struct Val {
    i: i128,
    d: f64,
    real: bool,
}

/// fio's lexer (`exp/expression-parser.l`): suffixes are matched longest first; `#`, `:`
/// and `,` end the expression.
fn tokenize(text: &str, kind: ExprKind, bc: bool) -> Result<Vec<Token>, String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        if c == ' ' || c == '\t' {
            i += 1;
            continue;
        }
        if !bc && matches!(c, '#' | ':' | ',') {
            break;
        }
        if "+-*/%^()".contains(c) {
            out.push(Token::Op(c));
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || c == '.' {
            if !bc && c == '0' && b.get(i + 1).is_some_and(|x| *x == b'x' || *x == b'X') {
                let start = i + 2;
                let mut end = start;
                while end < b.len() && (b[end] as char).is_ascii_hexdigit() {
                    end += 1;
                }
                let v = i128::from_str_radix(&text[start..end], 16)
                    .map_err(|_| format!("`{}` is not a hex number", &text[i..end]))?;
                out.push(Token::Number(v, v as f64, false));
                i = end;
                continue;
            }
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let mut real = false;
            if !bc && i < b.len() && b[i] == b'.' {
                real = true;
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            // An exponent (`1e3`) only when digits follow it; else `e` is an error below.
            if !bc && i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                let mut j = i + 1;
                while j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    while j < b.len() && b[j].is_ascii_digit() {
                        j += 1;
                    }
                    real = true;
                    i = j;
                }
            }
            let s = &text[start..i];
            if real {
                let d: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
                out.push(Token::Number(d as i128, d, true));
            } else {
                let v: i128 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
                out.push(Token::Number(v, v as f64, false));
            }
            continue;
        }
        if bc {
            return Err(format!("`{c}` is not something bc can work out"));
        }
        let rest = text[i..].to_ascii_lowercase();
        let word = |w: &str| rest.starts_with(w);
        // Longest first, as flex matches.
        const KI: i128 = 1024;
        let (mult, real, len) = if word("kib") {
            (1000, false, 3)
        } else if word("mib") {
            (1_000_000, false, 3)
        } else if word("gib") {
            (1_000_000_000, false, 3)
        } else if word("pib") {
            // fio's lexer has 10^12 here (and no `tib`); kept, so values mean the same.
            (1_000_000_000_000, false, 3)
        } else if word("kb") {
            (KI, false, 2)
        } else if word("mb") {
            (KI * KI, false, 2)
        } else if word("gb") {
            (KI.pow(3), false, 2)
        } else if word("tb") {
            (KI.pow(4), false, 2)
        } else if word("pb") {
            (KI.pow(5), false, 2)
        } else if word("ms") {
            (1000, true, 2)
        } else if word("us") {
            (1, true, 2)
        } else {
            match c.to_ascii_lowercase() {
                'k' => (KI, false, 1),
                'g' => (KI.pow(3), false, 1),
                't' => (KI.pow(4), false, 1),
                'p' => (KI.pow(5), false, 1),
                's' => (1_000_000, false, 1),
                'm' if kind == ExprKind::Size => (KI * KI, false, 1),
                'm' => (60_000_000, false, 1),
                'h' => (3_600_000_000, false, 1),
                'd' => (86_400_000_000, false, 1),
                _ => return Err(format!("unexpected `{c}`")),
            }
        };
        out.push(Token::Suffix(mult, real));
        i += len;
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    expr: &'a str,
    /// bc's grammar (unary minus binds tighter than `^`; no suffixes) rather than fio's.
    bc: bool,
    units: bool,
}

impl Parser<'_> {
    fn syntax(&self, why: impl Into<String>) -> ExprError {
        ExprError::Syntax {
            expr: self.expr.to_string(),
            why: why.into(),
        }
    }

    fn peek(&self) -> Option<Token> {
        self.tokens.get(self.at).copied()
    }

    /// Precedence climbing with fio's yacc precedences, low to high: `+ -`, a suffix,
    /// `* /`, `^` (right-associative), `%`, unary minus. bc: `+ -`, `* / %`, `^`, unary
    /// minus.
    fn infix(&self, op: char) -> Option<(u8, bool)> {
        if self.bc {
            match op {
                '+' | '-' => Some((10, false)),
                '*' | '/' | '%' => Some((30, false)),
                '^' => Some((40, true)),
                _ => None,
            }
        } else {
            match op {
                '+' | '-' => Some((10, false)),
                '*' | '/' => Some((30, false)),
                '^' => Some((40, true)),
                '%' => Some((50, false)),
                _ => None,
            }
        }
    }

    fn parse(&mut self, min: u8) -> Result<Val, ExprError> {
        let mut lhs = match self.peek() {
            Some(Token::Number(i, d, real)) => {
                self.at += 1;
                Val { i, d, real }
            }
            Some(Token::Op('(')) => {
                self.at += 1;
                let v = self.parse(0)?;
                if self.peek() != Some(Token::Op(')')) {
                    return Err(self.syntax("a `(` without its `)`"));
                }
                self.at += 1;
                v
            }
            Some(Token::Op('-')) => {
                self.at += 1;
                let v = self.parse(60)?;
                Val {
                    i: -v.i,
                    d: -v.d,
                    real: v.real,
                }
            }
            Some(t) => return Err(self.syntax(format!("unexpected {}", describe(t)))),
            None => return Err(self.syntax("it ends where a number should be")),
        };
        loop {
            match self.peek() {
                Some(Token::Suffix(mult, real)) if min <= 20 => {
                    self.at += 1;
                    self.units = true;
                    let real = real || lhs.real;
                    lhs = Val {
                        i: if real {
                            (lhs.d * mult as f64) as i128
                        } else {
                            lhs.i.checked_mul(mult).ok_or_else(|| self.over())?
                        },
                        d: lhs.d * mult as f64,
                        real,
                    };
                }
                Some(Token::Op(op)) => {
                    let Some((bp, right)) = self.infix(op) else {
                        break;
                    };
                    if bp < min {
                        break;
                    }
                    self.at += 1;
                    let rhs = self.parse(if right { bp } else { bp + 1 })?;
                    lhs = self.apply(op, lhs, rhs)?;
                }
                _ => break,
            }
        }
        Ok(lhs)
    }

    fn over(&self) -> ExprError {
        ExprError::Overflow(self.expr.to_string())
    }

    fn apply(&self, op: char, a: Val, b: Val) -> Result<Val, ExprError> {
        let real = a.real || b.real;
        let int = |r: Option<i128>| r.ok_or_else(|| self.over());
        let zero = || ExprError::DivideByZero(self.expr.to_string());
        let (i, d) = match op {
            '+' => (int(a.i.checked_add(b.i))?, a.d + b.d),
            '-' => (int(a.i.checked_sub(b.i))?, a.d - b.d),
            '*' => (int(a.i.checked_mul(b.i))?, a.d * b.d),
            '/' => {
                if b.i == 0 && (!real || b.d.abs() < 1e-20) {
                    return Err(zero());
                }
                let d = a.d / b.d;
                (if real { d as i128 } else { a.i / b.i }, d)
            }
            '%' => {
                if real {
                    return Err(self.syntax("`%` takes whole numbers"));
                }
                let i = a.i.checked_rem(b.i).ok_or_else(zero)?;
                (i, i as f64)
            }
            '^' => {
                let d = a.d.powf(b.d);
                if real || b.i < 0 {
                    (d as i128, d)
                } else {
                    let e = u32::try_from(b.i).map_err(|_| self.over())?;
                    (int(a.i.checked_pow(e))?, d)
                }
            }
            _ => return Err(self.syntax(format!("unexpected `{op}`"))),
        };
        let i = if real { d as i128 } else { i };
        Ok(Val { i, d, real })
    }
}

fn describe(t: Token) -> String {
    match t {
        Token::Number(i, ..) => format!("number {i}"),
        Token::Suffix(..) => "unit".into(),
        Token::Op(c) => format!("`{c}`"),
    }
}

fn run(text: &str, kind: ExprKind, bc: bool) -> Result<(i128, bool), ExprError> {
    let tokens = tokenize(text, kind, bc).map_err(|why| ExprError::Syntax {
        expr: text.to_string(),
        why,
    })?;
    let mut p = Parser {
        tokens: &tokens,
        at: 0,
        expr: text,
        bc,
        units: false,
    };
    let v = p.parse(0)?;
    if let Some(t) = p.peek() {
        return Err(p.syntax(format!("unexpected {} after the expression", describe(t))));
    }
    Ok((v.i, p.units))
}

/// Works out a parenthesised option value as fio does: bytes for [`ExprKind::Size`],
/// microseconds for a time.
pub fn evaluate(text: &str, kind: ExprKind) -> Result<u64, ExprError> {
    let (v, units) = run(text.trim(), kind, false)?;
    let v = match kind {
        ExprKind::Size | ExprKind::Micros => v,
        // Bare numbers are seconds; the result is kept to whole seconds, as fio's
        // `str_to_decimal` divides by 10^6 and multiplies back.
        ExprKind::Seconds => {
            let us = if units {
                v
            } else {
                v.checked_mul(1_000_000)
                    .ok_or_else(|| ExprError::Overflow(text.into()))?
            };
            us / 1_000_000 * 1_000_000
        }
    };
    if v < 0 {
        return Err(ExprError::Negative(text.trim().into()));
    }
    u64::try_from(v).map_err(|_| ExprError::Overflow(text.trim().into()))
}

/// Works out `text` as `bc` does (whole numbers), for a value with a keyword replaced.
pub fn bc(text: &str) -> Result<i128, ExprError> {
    run(text.trim(), ExprKind::Size, true).map(|(v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fio_expressions_with_units_and_precedence() {
        let size = |t| evaluate(t, ExprKind::Size);
        assert_eq!(size("(1k+512)"), Ok(1536));
        assert_eq!(size("(4*1024)"), Ok(4096));
        assert_eq!(size("(2m)"), Ok(2 << 20));
        assert_eq!(size("(1+2*3)"), Ok(7));
        assert_eq!(size("((1+2)*3)"), Ok(9));
        assert_eq!(size("(2^10)"), Ok(1024));
        // `^` is right-associative: 2^(3^2).
        assert_eq!(size("(2^3^2)"), Ok(512));
        assert_eq!(size("(10%4)"), Ok(2));
        assert_eq!(size("(0x10*2)"), Ok(32));
        assert_eq!(size("(1.5*1k)"), Ok(1536));
        assert_eq!(size("(-2+10)"), Ok(8));
        // fio's inverted IEC spelling: KiB is 1000.
        assert_eq!(size("(4KiB)"), Ok(4000));
        // A suffix binds looser than `*`: (2*3)k, and tighter than `+`: 1+(2k).
        assert_eq!(size("(2*3k)"), Ok(6144));
        assert_eq!(size("(1+2k)"), Ok(2049));
        // fio's lexer stops at a comma, colon or `#`.
        assert_eq!(size("(1+1),8k"), Ok(2));
        assert!(matches!(size("(1/0)"), Err(ExprError::DivideByZero(_))));
        assert!(matches!(size("(1-2)"), Err(ExprError::Negative(_))));
        assert!(matches!(size("(1+)"), Err(ExprError::Syntax { .. })));
        assert!(matches!(size("(1+2"), Err(ExprError::Syntax { .. })));
        assert!(matches!(size("(4x)"), Err(ExprError::Syntax { .. })));
        assert!(matches!(size("(2^200)"), Err(ExprError::Overflow(_))));
    }

    #[test]
    fn time_expressions_count_in_the_options_unit() {
        let secs = |t| evaluate(t, ExprKind::Seconds);
        assert_eq!(secs("(10)"), Ok(10_000_000));
        assert_eq!(secs("(1m+30s)"), Ok(90_000_000));
        assert_eq!(secs("(2*30)"), Ok(60_000_000));
        // Whole seconds, as fio keeps them.
        assert_eq!(secs("(1500ms)"), Ok(1_000_000));
        let micros = |t| evaluate(t, ExprKind::Micros);
        assert_eq!(micros("(100*2)"), Ok(200));
        assert_eq!(micros("(1ms+10)"), Ok(1010));
        assert_eq!(micros("(1m)"), Ok(60_000_000));
    }

    #[test]
    fn bc_arithmetic_for_keywords() {
        assert_eq!(bc("8*1024"), Ok(8192));
        assert_eq!(bc("4096/3"), Ok(1365));
        assert_eq!(bc("(2+3)*4"), Ok(20));
        assert_eq!(bc("2^10-1"), Ok(1023));
        assert_eq!(bc("7%4+1"), Ok(4));
        // bc knows no units.
        assert!(bc("2k*4").is_err());
        assert!(bc("4/0").is_err());
    }
}
