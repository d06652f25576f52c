//! A small expression language for `--filter` and `--derive`, in the spirit
//! of Miller and jq: fields by name (`qty`, `$qty`, `${order id}`),
//! numbers, 'text' or "text", true/false/null, arithmetic (+ - * / %),
//! `.` to join text, comparisons (== != < <= > >=), and/or/not (also && || !),
//! parentheses and a few functions: lower, upper, trim, len, substr,
//! coalesce, is_null, int, float, text, round.
//!
//! Numbers keep their exactness: integers are 64-bit and stay integers (an
//! integer beyond 64 bits in arithmetic is an error, never a float); a
//! comparison between numbers is by exact value, however many digits or
//! however large the exponent (`1e400 > 1`). A missing field is null; null
//! compares equal only to null, and arithmetic on null gives null.

use std::cmp::Ordering;

use anyhow::{Result, bail};
use serde_json::{Map, Number, Value};

use crate::format::logical::Temporal;
use crate::format::temporal::{date_days, instant_micros, time_micros, timestamp_micros};
use crate::record::FieldType;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A constant.
    Lit(Value),
    /// A field of the record.
    Field(String),
    /// A unary operator: `-`, `not`.
    Unary(char, Box<Expr>),
    /// A binary operator.
    Binary(Op, Box<Expr>, Box<Expr>),
    /// A function call.
    Call(String, Vec<Expr>),
    /// A field the begin line's schema types as a date, time, timestamp
    /// or timestamptz: compared by the moment its text names (instants
    /// across offsets), where both sides are in that type's wire form.
    /// Added per stream by [`Expr::with_types`], never parsed.
    Temporal(Temporal, Box<Expr>),
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `or`
    Or,
    /// `and`
    And,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
    /// `.` (text join)
    Concat,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Num(String),
    Str(String),
    Ident(String),
    Sym(&'static str),
}

fn tokenize(src: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            out.push(Token::Num(chars[start..i].iter().collect()));
        } else if c == '\'' || c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => bail!("unterminated text in expression: {src}"),
                    Some('\\') => {
                        if let Some(&n) = chars.get(i + 1) {
                            s.push(match n {
                                'n' => '\n',
                                't' => '\t',
                                other => other,
                            });
                        }
                        i += 2;
                    }
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        s.push(other);
                        i += 1;
                    }
                }
            }
            out.push(Token::Str(s));
        } else if c == '$' && chars.get(i + 1) == Some(&'{') {
            let end = chars[i..]
                .iter()
                .position(|&ch| ch == '}')
                .map(|p| p + i)
                .ok_or_else(|| anyhow::anyhow!("unterminated ${{...}} in expression: {src}"))?;
            out.push(Token::Ident(chars[i + 2..end].iter().collect()));
            i = end + 1;
        } else if c.is_alphanumeric() || c == '_' || c == '$' || c == '@' {
            let start = if c == '$' { i + 1 } else { i };
            i += 1;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let sym = match two.as_str() {
                "==" => "==",
                "!=" => "!=",
                "<=" => "<=",
                ">=" => ">=",
                "&&" => "and",
                "||" => "or",
                _ => "",
            };
            if !sym.is_empty() {
                out.push(Token::Sym(sym));
                i += 2;
                continue;
            }
            let sym = match c {
                '<' => "<",
                '>' => ">",
                '+' => "+",
                '-' => "-",
                '*' => "*",
                '/' => "/",
                '%' => "%",
                '.' => ".",
                '(' => "(",
                ')' => ")",
                ',' => ",",
                '!' => "not",
                '=' => "==",
                _ => bail!("unexpected {c:?} in expression: {src}"),
            };
            out.push(Token::Sym(sym));
            i += 1;
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    src: String,
}

impl Parser {
    fn peek_sym(&self) -> Option<&'static str> {
        match self.tokens.get(self.pos) {
            Some(Token::Sym(s)) => Some(s),
            Some(Token::Ident(w)) if w == "and" => Some("and"),
            Some(Token::Ident(w)) if w == "or" => Some("or"),
            Some(Token::Ident(w)) if w == "not" => Some("not"),
            _ => None,
        }
    }

    fn binary(&mut self, level: usize) -> Result<Expr> {
        const LEVELS: [&[(&str, Op)]; 5] = [
            &[("or", Op::Or)],
            &[("and", Op::And)],
            &[
                ("==", Op::Eq),
                ("!=", Op::Ne),
                ("<", Op::Lt),
                ("<=", Op::Le),
                (">", Op::Gt),
                (">=", Op::Ge),
            ],
            &[("+", Op::Add), ("-", Op::Sub), (".", Op::Concat)],
            &[("*", Op::Mul), ("/", Op::Div), ("%", Op::Rem)],
        ];
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut left = self.binary(level + 1)?;
        while let Some(sym) = self.peek_sym() {
            let Some((_, op)) = LEVELS[level].iter().find(|(s, _)| *s == sym) else {
                break;
            };
            self.pos += 1;
            let right = self.binary(level + 1)?;
            left = Expr::Binary(*op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr> {
        match self.peek_sym() {
            Some("-") => {
                self.pos += 1;
                Ok(Expr::Unary('-', Box::new(self.unary()?)))
            }
            Some("not") => {
                self.pos += 1;
                Ok(Expr::Unary('!', Box::new(self.binary(2)?)))
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Expr> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        Ok(match token {
            Some(Token::Num(n)) => {
                let v: Value = serde_json::from_str(&n)
                    .map_err(|_| anyhow::anyhow!("bad number {n} in expression: {}", self.src))?;
                Expr::Lit(v)
            }
            Some(Token::Str(s)) => Expr::Lit(Value::String(s)),
            Some(Token::Ident(w)) if w == "true" => Expr::Lit(Value::Bool(true)),
            Some(Token::Ident(w)) if w == "false" => Expr::Lit(Value::Bool(false)),
            Some(Token::Ident(w)) if w == "null" => Expr::Lit(Value::Null),
            Some(Token::Ident(w)) if self.peek_sym() == Some("(") => {
                self.pos += 1;
                let mut args = Vec::new();
                if self.peek_sym() != Some(")") {
                    loop {
                        args.push(self.binary(0)?);
                        match self.peek_sym() {
                            Some(",") => self.pos += 1,
                            _ => break,
                        }
                    }
                }
                self.expect(")")?;
                Expr::Call(w.to_ascii_lowercase(), args)
            }
            Some(Token::Ident(w)) => Expr::Field(w),
            Some(Token::Sym("(")) => {
                let inner = self.binary(0)?;
                self.expect(")")?;
                inner
            }
            _ => bail!("expression ends early or has a stray symbol: {}", self.src),
        })
    }

    fn expect(&mut self, sym: &str) -> Result<()> {
        if self.peek_sym() == Some(sym) {
            self.pos += 1;
            Ok(())
        } else {
            bail!("expected {sym:?} in expression: {}", self.src)
        }
    }
}

/// Parses an expression.
pub fn parse(src: &str) -> Result<Expr> {
    let mut parser = Parser {
        tokens: tokenize(src)?,
        pos: 0,
        src: src.to_string(),
    };
    let expr = parser.binary(0)?;
    if parser.pos != parser.tokens.len() {
        bail!("unexpected text after the expression: {src}");
    }
    Ok(expr)
}

fn as_int(n: &Number) -> Option<i64> {
    int_text(n.as_str())
}

/// A number's text as a 64-bit integer, when it is written as one.
fn int_text(n: &str) -> Option<i64> {
    // One pass over the bytes (what `str::parse` accepts, without a
    // fraction or exponent): this runs for every record a filter reads.
    let (negative, digits) = match n.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        all => (false, all),
    };
    if digits.is_empty() {
        return None;
    }
    // Summed below zero, where i64 reaches one further (i64::MIN).
    let mut sum: i64 = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        sum = sum.checked_mul(10)?.checked_sub(i64::from(d))?;
    }
    if negative {
        Some(sum)
    } else {
        sum.checked_neg()
    }
}

/// Whether a comparison operator holds for an ordering (`None`: values
/// that do not compare, for which only `!=` holds).
fn holds(op: Op, ord: Option<Ordering>) -> bool {
    match op {
        Op::Eq => ord == Some(Ordering::Equal),
        Op::Ne => ord != Some(Ordering::Equal),
        Op::Lt => ord == Some(Ordering::Less),
        Op::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
        Op::Gt => ord == Some(Ordering::Greater),
        Op::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
        _ => false,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        // By its digits: 1e-400 is not zero, though no float tells it apart.
        Value::Number(n) => Decimal::of(n.as_str()).is_none_or(|d| !d.is_zero()),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn compare(kind: Option<Temporal>, a: &Value, b: &Value) -> Option<Ordering> {
    compare_as(kind, Scalar::of(a)?, Scalar::of(b)?)
}

/// [`compare_scalars`], but for an operand typed as a date or time: two
/// texts in that type's wire form order by the moment they name (so
/// `2024-01-01T10:00:00+02:00` is before `2024-01-01T09:00:00Z`, and
/// `10:00:00.50` equals `10:00:00.5`); anything else as before.
#[inline]
fn compare_as(kind: Option<Temporal>, a: Scalar<'_>, b: Scalar<'_>) -> Option<Ordering> {
    if let (Some(kind), Scalar::Text(x), Scalar::Text(y)) = (kind, a, b) {
        let moment = |s: &str| match kind {
            Temporal::Date => date_days(s),
            Temporal::Time => time_micros(s),
            Temporal::Timestamp => timestamp_micros(s),
            Temporal::TimestampTz => instant_micros(s),
        };
        if let (Some(x), Some(y)) = (moment(x), moment(y)) {
            return Some(x.cmp(&y));
        }
    }
    compare_scalars(a, b)
}

/// A field's value as a filter reads it, borrowed from the record: the
/// common tests (`qty > 10`, `status == 'new' and ...`) are decided on
/// these without building a JSON value per record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    /// `null`, or a missing field.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as written (valid JSON number text).
    Number(&'a str),
    /// A string.
    Text(&'a str),
}

impl<'a> Scalar<'a> {
    /// A JSON value as a scalar; `None` for an array or object (which
    /// compares with nothing).
    fn of(v: &'a Value) -> Option<Scalar<'a>> {
        Some(match v {
            Value::Null => Scalar::Null,
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Number(n) => Scalar::Number(n.as_str()),
            Value::String(s) => Scalar::Text(s),
            _ => return None,
        })
    }
}

/// How two values order: numbers by exact value (64-bit integers at once,
/// others digit by digit); text, booleans and nulls among their own kind;
/// `None` across kinds.
fn compare_scalars(a: Scalar<'_>, b: Scalar<'_>) -> Option<Ordering> {
    match (a, b) {
        (Scalar::Number(x), Scalar::Number(y)) => match (int_text(x), int_text(y)) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => Some(Decimal::of(x)?.cmp(&Decimal::of(y)?)),
        },
        (Scalar::Text(x), Scalar::Text(y)) => Some(x.cmp(y)),
        (Scalar::Bool(x), Scalar::Bool(y)) => Some(x.cmp(&y)),
        (Scalar::Null, Scalar::Null) => Some(Ordering::Equal),
        _ => None,
    }
}

/// A JSON number's exact value, read from its text without converting it:
/// the sign, the significant digits (the integer and fraction digits with
/// leading and trailing zeros left out) and the power of ten just above
/// the first of them, so `-12.5e3` is -0.125 x 10^5.
#[derive(Debug, Clone, Copy)]
struct Decimal<'a> {
    negative: bool,
    int: &'a [u8],
    frac: &'a [u8],
    /// Index of the first significant digit in `int` then `frac`.
    first: usize,
    /// One past the last significant digit.
    end: usize,
    /// The power of ten above the first significant digit.
    scale: i64,
}

impl<'a> Decimal<'a> {
    /// The value of JSON number text `n`; `None` when it is none.
    fn of(n: &'a str) -> Option<Decimal<'a>> {
        let bytes = n.as_bytes();
        let (negative, rest) = match bytes {
            [b'-', rest @ ..] => (true, rest),
            rest => (false, rest),
        };
        let int_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (int, rest) = rest.split_at(int_len);
        let (frac, rest) = match rest {
            [b'.', rest @ ..] => {
                let len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                rest.split_at(len)
            }
            rest => (&rest[..0], rest),
        };
        let exponent = match rest {
            [] => 0,
            [b'e' | b'E', rest @ ..] => {
                let (minus, digits) = match rest {
                    [b'-', d @ ..] => (true, d),
                    [b'+', d @ ..] => (false, d),
                    d => (false, d),
                };
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                // Saturated far beyond any float: such exponents order the
                // same way, and the arithmetic below cannot overflow.
                let e = digits.iter().fold(0i64, |e, d| {
                    e.saturating_mul(10)
                        .saturating_add(i64::from(d - b'0'))
                        .min(1 << 60)
                });
                if minus { -e } else { e }
            }
            _ => return None,
        };
        if int.is_empty() {
            return None;
        }
        let digit = |i: usize| {
            if i < int.len() {
                int[i]
            } else {
                frac[i - int.len()]
            }
        };
        let total = int.len() + frac.len();
        let first = (0..total).find(|&i| digit(i) != b'0').unwrap_or(total);
        let end = (first..total)
            .rev()
            .find(|&i| digit(i) != b'0')
            .map_or(first, |i| i + 1);
        let scale = exponent + int.len() as i64 - first as i64;
        Some(Decimal {
            negative,
            int,
            frac,
            first,
            end,
            scale,
        })
    }

    fn is_zero(&self) -> bool {
        self.first == self.end
    }

    fn digit(&self, i: usize) -> u8 {
        if i >= self.end {
            b'0'
        } else if i < self.int.len() {
            self.int[i]
        } else {
            self.frac[i - self.int.len()]
        }
    }

    /// Orders the magnitudes: the power of ten first, then the digits.
    fn cmp_magnitude(&self, other: &Decimal<'_>) -> Ordering {
        self.scale.cmp(&other.scale).then_with(|| {
            let (n, m) = (self.end - self.first, other.end - other.first);
            (0..n.max(m))
                .map(|k| {
                    self.digit(self.first + k)
                        .cmp(&other.digit(other.first + k))
                })
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        })
    }

    fn cmp(&self, other: &Decimal<'_>) -> Ordering {
        match (self.is_zero(), other.is_zero()) {
            (true, true) => Ordering::Equal,
            (true, false) if other.negative => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, true) if self.negative => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => match (self.negative, other.negative) {
                (false, true) => Ordering::Greater,
                (true, false) => Ordering::Less,
                (false, false) => self.cmp_magnitude(other),
                (true, true) => other.cmp_magnitude(self),
            },
        }
    }
}

/// An integer written as one (no fraction, no exponent) that 64 bits do
/// not hold: arithmetic on it as a float would change it.
fn wide_integer(v: &Value) -> Option<&Number> {
    match v {
        Value::Number(n) if !n.as_str().contains(['.', 'e', 'E']) && as_int(n).is_none() => Some(n),
        _ => None,
    }
}

/// A float result as a value; infinity and NaN have no JSON form, and
/// turning them into null would hide the overflow.
fn float_value(f: f64) -> Result<Value> {
    match Number::from_f64(f) {
        Some(n) => Ok(Value::Number(n)),
        None => bail!("float overflow: the result is {f}, which has no JSON form"),
    }
}

/// A number as a float, or why it is none (beyond the range of a float).
fn float_operand(v: &Value) -> Result<Option<f64>> {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) => Ok(Some(f)),
            None => bail!("number {n} is beyond the range of a 64-bit float"),
        },
        _ => Ok(None),
    }
}

fn arithmetic(op: Op, a: &Value, b: &Value) -> Result<Value> {
    if a.is_null() || b.is_null() {
        return Ok(Value::Null);
    }
    if let (Value::Number(x), Value::Number(y)) = (a, b)
        && let (Some(x), Some(y)) = (as_int(x), as_int(y))
    {
        let r = match op {
            Op::Add => x.checked_add(y),
            Op::Sub => x.checked_sub(y),
            Op::Mul => x.checked_mul(y),
            // Only i64::MIN % -1 wraps, and its remainder is 0 exactly.
            Op::Rem if y != 0 => Some(x.wrapping_rem(y)),
            // checked_rem is None only for i64::MIN / -1: an overflow.
            Op::Div if y != 0 => match x.checked_rem(y) {
                Some(0) | None => x.checked_div(y),
                Some(_) => return float_value(x as f64 / y as f64),
            },
            _ => bail!("division by zero"),
        };
        return r.map(Value::from).ok_or_else(|| {
            anyhow::anyhow!(
                "integer overflow: {x} {} {y} does not fit in 64 bits",
                op_symbol(op)
            )
        });
    }
    if let Some(n) = wide_integer(a).or_else(|| wide_integer(b)) {
        bail!("integer {n} does not fit in 64 bits: arithmetic on it would not be exact");
    }
    let (Some(x), Some(y)) = (float_operand(a)?, float_operand(b)?) else {
        bail!("arithmetic on {a} and {b}, which are not both numbers");
    };
    let r = match op {
        Op::Add => x + y,
        Op::Sub => x - y,
        Op::Mul => x * y,
        Op::Div if y != 0.0 => x / y,
        Op::Rem if y != 0.0 => x % y,
        _ => bail!("division by zero"),
    };
    if !r.is_finite() {
        bail!(
            "float overflow: {a} {} {b} is beyond the range of a 64-bit float",
            op_symbol(op)
        );
    }
    float_value(r)
}

fn op_symbol(op: Op) -> &'static str {
    match op {
        Op::Add => "+",
        Op::Sub => "-",
        Op::Mul => "*",
        Op::Div => "/",
        Op::Rem => "%",
        _ => "?",
    }
}

impl Expr {
    /// The names of the fields the expression reads, into `out`.
    pub fn field_names<'e>(&'e self, out: &mut Vec<&'e str>) {
        match self {
            Expr::Lit(_) => {}
            Expr::Field(name) => out.push(name),
            Expr::Unary(_, e) => e.field_names(out),
            Expr::Binary(_, a, b) => {
                a.field_names(out);
                b.field_names(out);
            }
            Expr::Call(_, args) => args.iter().for_each(|a| a.field_names(out)),
            Expr::Temporal(_, e) => e.field_names(out),
        }
    }

    /// The date or time type an operand is compared as, if any.
    #[inline]
    fn temporal(&self) -> Option<Temporal> {
        match self {
            Expr::Temporal(kind, _) => Some(*kind),
            _ => None,
        }
    }

    /// The operand without its date or time type.
    #[inline]
    fn untyped(&self) -> &Expr {
        match self {
            Expr::Temporal(_, e) => e,
            e => e,
        }
    }

    /// The expression for a stream whose fields have the types `type_of`
    /// gives: fields typed as a date, time, timestamp or timestamptz
    /// compare as such (see [`Expr::Temporal`]).
    pub fn with_types(&self, type_of: &dyn Fn(&str) -> Option<FieldType>) -> Expr {
        let typed = |e: &Expr| Box::new(e.with_types(type_of));
        match self {
            Expr::Field(name) => {
                let kind = match type_of(name) {
                    Some(FieldType::Date) => Temporal::Date,
                    Some(FieldType::Time) => Temporal::Time,
                    Some(FieldType::Timestamp) => Temporal::Timestamp,
                    Some(FieldType::TimestampTz) => Temporal::TimestampTz,
                    _ => return self.clone(),
                };
                Expr::Temporal(kind, Box::new(self.clone()))
            }
            Expr::Lit(_) => self.clone(),
            Expr::Unary(op, e) => Expr::Unary(*op, typed(e)),
            Expr::Binary(op, a, b) => Expr::Binary(*op, typed(a), typed(b)),
            Expr::Call(name, args) => Expr::Call(
                name.clone(),
                args.iter().map(|a| a.with_types(type_of)).collect(),
            ),
            Expr::Temporal(_, e) => e.with_types(type_of),
        }
    }

    /// The wire type of what the expression computes, where it is known
    /// whatever the record: a field's own type (a copy), comparisons and
    /// logic (boolean), text functions and `.` (text), `len` and `int`
    /// (integer), integer `+ - * %` and negation (integer: a result past
    /// 64 bits rejects the record), `coalesce` of one type. `None` for the
    /// rest: `/`, arithmetic on floats or decimals (computed in 64-bit
    /// floats), `float`, `round`, and fields of unknown type.
    pub fn result_type(&self, type_of: &dyn Fn(&str) -> Option<FieldType>) -> Option<FieldType> {
        let integers = |a: &Expr, b: &Expr| {
            (a.result_type(type_of)? == FieldType::Integer
                && b.result_type(type_of)? == FieldType::Integer)
                .then_some(FieldType::Integer)
        };
        match self {
            Expr::Field(name) => type_of(name),
            Expr::Temporal(_, e) => e.result_type(type_of),
            Expr::Lit(Value::Bool(_)) => Some(FieldType::Boolean),
            Expr::Lit(Value::String(_)) => Some(FieldType::Text),
            Expr::Lit(Value::Number(n)) if as_int(n).is_some() => Some(FieldType::Integer),
            Expr::Lit(_) => None,
            Expr::Unary('-', e) => {
                (e.result_type(type_of)? == FieldType::Integer).then_some(FieldType::Integer)
            }
            Expr::Unary(_, _) => Some(FieldType::Boolean),
            Expr::Binary(
                Op::Or | Op::And | Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge,
                _,
                _,
            ) => Some(FieldType::Boolean),
            Expr::Binary(Op::Concat, _, _) => Some(FieldType::Text),
            Expr::Binary(Op::Add | Op::Sub | Op::Mul | Op::Rem, a, b) => integers(a, b),
            Expr::Binary(Op::Div, _, _) => None,
            Expr::Call(name, args) => match name.as_str() {
                "lower" | "upper" | "trim" | "substr" | "text" | "string" => Some(FieldType::Text),
                "len" | "int" => Some(FieldType::Integer),
                "is_null" => Some(FieldType::Boolean),
                "coalesce" => {
                    let first = args.first()?.result_type(type_of)?;
                    args.iter()
                        .all(|a| a.result_type(type_of) == Some(first))
                        .then_some(first)
                }
                _ => None,
            },
        }
    }

    /// Decides a filter on borrowed field values, or `None` when it takes
    /// the full evaluation (arithmetic, functions, a nested value: `field`
    /// gives `None` for what it cannot lend). A decided answer is the one
    /// `is_true(eval_with(..))` gives.
    pub fn test_with<'s, 'r: 's>(
        &'s self,
        field: &dyn Fn(&str) -> Option<Scalar<'r>>,
    ) -> Option<bool> {
        let operand = |e: &'s Expr| -> Option<Scalar<'s>> {
            match e {
                Expr::Field(name) => field(name),
                Expr::Lit(v) => Scalar::of(v),
                _ => None,
            }
        };
        match self {
            Expr::Binary(Op::And, a, b) => match a.test_with(field)? {
                false => Some(false),
                true => b.test_with(field),
            },
            Expr::Binary(Op::Or, a, b) => match a.test_with(field)? {
                true => Some(true),
                false => b.test_with(field),
            },
            Expr::Binary(op @ (Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge), a, b) => {
                let kind = a.temporal().or(b.temporal());
                let (a, b) = (operand(a.untyped())?, operand(b.untyped())?);
                Some(holds(*op, compare_as(kind, a, b)))
            }
            Expr::Unary('!', e) => e.test_with(field).map(|t| !t),
            Expr::Temporal(_, e) => e.test_with(field),
            Expr::Field(_) | Expr::Lit(_) => match operand(self)? {
                Scalar::Null => Some(false),
                Scalar::Bool(b) => Some(b),
                Scalar::Text(s) => Some(!s.is_empty()),
                Scalar::Number(_) => None,
            },
            _ => None,
        }
    }

    /// Evaluates against a record. Errors (e.g. arithmetic on text) name
    /// the values involved; the caller rejects the record with them.
    pub fn eval(&self, record: &Map<String, Value>) -> Result<Value> {
        self.eval_with(&|name| Ok(record.get(name).cloned().unwrap_or(Value::Null)))
    }

    /// An operand's value: a literal where it is, not copied per record.
    fn operand(
        &self,
        field: &dyn Fn(&str) -> Result<Value>,
    ) -> Result<std::borrow::Cow<'_, Value>> {
        Ok(match self {
            Expr::Lit(v) => std::borrow::Cow::Borrowed(v),
            e => std::borrow::Cow::Owned(e.eval_with(field)?),
        })
    }

    /// Evaluates with `field` giving the value of a field by name (null
    /// when missing), or why it cannot be read: lets callers keep records
    /// in any form.
    pub fn eval_with(&self, field: &dyn Fn(&str) -> Result<Value>) -> Result<Value> {
        let record = field;
        Ok(match self {
            Expr::Lit(v) => v.clone(),
            Expr::Field(name) => field(name)?,
            Expr::Temporal(_, e) => e.eval_with(record)?,
            Expr::Unary('-', e) => {
                let v = e.eval_with(record)?;
                arithmetic(Op::Sub, &Value::from(0), &v)?
            }
            Expr::Unary(_, e) => Value::Bool(!truthy(&e.eval_with(record)?)),
            Expr::Binary(Op::And, a, b) => {
                Value::Bool(truthy(&a.eval_with(record)?) && truthy(&b.eval_with(record)?))
            }
            Expr::Binary(Op::Or, a, b) => {
                Value::Bool(truthy(&a.eval_with(record)?) || truthy(&b.eval_with(record)?))
            }
            Expr::Binary(op, a, b) => {
                let kind = a.temporal().or(b.temporal());
                let (a, b) = (a.operand(record)?, b.operand(record)?);
                let (a, b) = (a.as_ref(), b.as_ref());
                match op {
                    Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                        Value::Bool(holds(*op, compare(kind, a, b)))
                    }
                    Op::Concat => Value::String(text(a) + &text(b)),
                    _ => arithmetic(*op, a, b)?,
                }
            }
            Expr::Call(name, args) => {
                let vals: Vec<Value> = args
                    .iter()
                    .map(|a| a.eval_with(record))
                    .collect::<Result<_>>()?;
                call(name, &vals)?
            }
        })
    }
}

fn call(name: &str, args: &[Value]) -> Result<Value> {
    let arg = |i: usize| args.get(i).cloned().unwrap_or(Value::Null);
    Ok(match name {
        "lower" => Value::String(text(&arg(0)).to_lowercase()),
        "upper" => Value::String(text(&arg(0)).to_uppercase()),
        "trim" => Value::String(text(&arg(0)).trim().to_string()),
        "len" => Value::from(text(&arg(0)).chars().count()),
        "substr" => {
            let s = text(&arg(0));
            let start = number(&arg(1)).unwrap_or(0.0).max(0.0) as usize;
            let len = number(&arg(2)).map_or(usize::MAX, |n| n.max(0.0) as usize);
            Value::String(s.chars().skip(start).take(len).collect())
        }
        "coalesce" => args
            .iter()
            .find(|v| !v.is_null())
            .cloned()
            .unwrap_or(Value::Null),
        "is_null" => Value::Bool(arg(0).is_null()),
        "text" | "string" => match arg(0) {
            Value::Null => Value::Null,
            v => Value::String(text(&v)),
        },
        "int" => match arg(0) {
            Value::Null => Value::Null,
            // An integer already, however wide.
            Value::Number(n) if as_int(&n).is_some() || wide_integer(&arg(0)).is_some() => {
                Value::Number(n)
            }
            Value::String(s) if crate::format::infer::is_integer(s.trim()) => {
                serde_json::from_str(s.trim())?
            }
            v => bail!("int() of {v}: not an integer"),
        },
        "float" => match arg(0) {
            Value::Null => Value::Null,
            Value::Number(n) => Value::Number(n),
            Value::String(s) => match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => float_value(f)?,
                _ => bail!("float() of {s:?}: not a number"),
            },
            v => bail!("float() of {v}: not a number"),
        },
        "round" => {
            let digits = number(&arg(1)).unwrap_or(0.0) as i32;
            // An integer rounds exactly: unchanged to 0 or more digits,
            // in integer arithmetic to tens, hundreds...
            if let Value::Number(n) = &arg(0)
                && let Some(i) = as_int(n)
            {
                return round_int(i, digits);
            }
            if let Some(n) = wide_integer(&arg(0)) {
                if digits >= 0 {
                    return Ok(Value::Number(n.clone()));
                }
                bail!("integer {n} does not fit in 64 bits: rounding it would not be exact");
            }
            let Some(x) = float_operand(&arg(0))? else {
                return Ok(Value::Null);
            };
            let scale = 10f64.powi(digits);
            let scaled = x * scale;
            // A number too large to scale has no digits there to round.
            let r = if scaled.is_finite() {
                scaled.round() / scale
            } else {
                x
            };
            if digits <= 0 && r.abs() < 9.0e15 {
                Value::from(r as i64)
            } else {
                float_value(r)?
            }
        }
        other => bail!("unknown function {other}()"),
    })
}

/// `round(i, digits)` for a 64-bit integer: itself for 0 digits or more,
/// else to the nearest multiple of ten to the `-digits`, half away from
/// zero.
fn round_int(i: i64, digits: i32) -> Result<Value> {
    if digits >= 0 {
        return Ok(Value::from(i));
    }
    // In 128 bits: a unit of 10^19 and a result just past 64 bits fit.
    let Some(unit) = 10i128.checked_pow(digits.unsigned_abs()) else {
        // Half such a unit is beyond any 64-bit integer.
        return Ok(Value::from(0));
    };
    let wide = i128::from(i);
    let rest = wide % unit;
    let mut rounded = wide - rest;
    if rest.abs() * 2 >= unit {
        rounded += if wide < 0 { -unit } else { unit };
    }
    i64::try_from(rounded).map(Value::from).map_err(|_| {
        anyhow::anyhow!("integer overflow: round({i}, {digits}) does not fit in 64 bits")
    })
}

/// Is a value "true" for a filter?
pub fn is_true(v: &Value) -> bool {
    truthy(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integer_text_reads_as_str_parse_does() {
        let parse = |n: &str| {
            if n.contains(['.', 'e', 'E']) {
                None
            } else {
                n.parse::<i64>().ok()
            }
        };
        for n in [
            "0",
            "-0",
            "+7",
            "007",
            "10",
            "-10",
            "",
            "-",
            "+",
            "+-1",
            "1-",
            "1.5",
            "1e3",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "99999999999999999999",
            "12a",
            " 1",
            "١",
        ] {
            assert_eq!(int_text(n), parse(n), "{n:?}");
        }
    }

    fn eval(src: &str, record: Value) -> Value {
        let Value::Object(map) = record else {
            panic!("object")
        };
        parse(src).unwrap().eval(&map).unwrap()
    }

    #[test]
    fn borrowed_tests_agree_with_evaluation() {
        let records = [
            json!({"q": 11, "s": "new", "b": true}),
            json!({"q": 10, "s": "", "b": false, "f": 2.5}),
            json!({"q": 9223372036854775807_i64, "s": "x", "f": 1e300}),
            json!({"q": "11", "s": null, "n": [1]}),
            json!({"q": -3, "f": 10.0, "s": "New"}),
            json!({}),
        ];
        let exprs = [
            "q > 10",
            "q >= 10",
            "q < 10",
            "q <= 10",
            "q == 11",
            "q != 11",
            "10 < q",
            "f > 2",
            "f == 10",
            "f < q",
            "q > 1.5",
            "s == 'new'",
            "s != 'new'",
            "s < 'z'",
            "s == null",
            "q == null",
            "b == true",
            "b",
            "s",
            "not b",
            "!(q > 10)",
            "q > 10 and s == 'new'",
            "q > 100 or s == 'x'",
            "missing == null",
            "missing",
            "n == 1",
            "q > 9223372036854775806",
            "q * 2 > 10",
            "lower(s) == 'new'",
        ];
        for record in &records {
            let map = record.as_object().unwrap();
            let field = |name: &str| match map.get(name) {
                None | Some(Value::Null) => Some(Scalar::Null),
                Some(Value::Bool(b)) => Some(Scalar::Bool(*b)),
                Some(Value::Number(n)) => Some(Scalar::Number(n.as_str())),
                Some(Value::String(s)) => Some(Scalar::Text(s)),
                Some(_) => None,
            };
            for src in exprs {
                let e = parse(src).unwrap();
                let Some(quick) = e.test_with(&field) else {
                    continue;
                };
                let full = is_true(&e.eval(map).unwrap());
                assert_eq!(quick, full, "{src} on {record}");
            }
        }
        // The common shapes are decided without evaluation.
        let map = records[0].as_object().unwrap();
        let field = |name: &str| match map.get(name) {
            Some(Value::Number(n)) => Some(Scalar::Number(n.as_str())),
            Some(Value::String(s)) => Some(Scalar::Text(s)),
            _ => Some(Scalar::Null),
        };
        for src in ["q > 10", "q > 10 and s == 'new'", "s != 'x' or q < 1"] {
            assert_eq!(parse(src).unwrap().test_with(&field), Some(true), "{src}");
        }
        assert_eq!(parse("q * 2 > 1").unwrap().test_with(&field), None);
    }

    #[test]
    fn arithmetic_comparison_logic() {
        let r = json!({"qty": 3, "price": 2.5, "zip": "00501", "big": 9007199254740993_i64});
        assert_eq!(eval("qty * price", r.clone()), json!(7.5));
        assert_eq!(eval("qty + 1", r.clone()), json!(4));
        assert_eq!(eval("big + 1", r.clone()), json!(9007199254740994_i64));
        assert_eq!(eval("qty > 2 && zip == '00501'", r.clone()), json!(true));
        assert_eq!(
            eval("not (qty > 2) or missing == null", r.clone()),
            json!(true)
        );
        assert_eq!(eval("upper(zip . '-x')", r.clone()), json!("00501-X"));
        assert_eq!(eval("${qty} % 2", r.clone()), json!(1));
        assert_eq!(eval("-qty", r.clone()), json!(-3));
        assert_eq!(eval("round(price)", r.clone()), json!(3));
        assert_eq!(eval("coalesce(missing, 'd')", r), json!("d"));
    }

    #[test]
    fn overflow_is_an_error_never_a_panic_or_null() {
        let map: Map<String, Value> = serde_json::from_str(
            r#"{"min":-9223372036854775808,"max":9223372036854775807,"f":1e308,"huge":1e400}"#,
        )
        .unwrap();
        let err = |src: &str| parse(src).unwrap().eval(&map).unwrap_err().to_string();
        assert_eq!(
            err("min / -1"),
            "integer overflow: -9223372036854775808 / -1 does not fit in 64 bits"
        );
        assert!(err("min * -1").starts_with("integer overflow"));
        assert!(err("max + 1").starts_with("integer overflow"));
        assert!(err("min - 1").starts_with("integer overflow"));
        assert!(err("-min").starts_with("integer overflow"));
        let e = err("f * 10");
        assert!(e.starts_with("float overflow: 1e"), "{e}");
        assert!(
            e.ends_with(" * 10 is beyond the range of a 64-bit float"),
            "{e}"
        );
        assert!(err("-f - f").starts_with("float overflow"));
        assert!(err("f / 0.0000001").starts_with("float overflow"));
        assert!(err("huge + 1").contains("beyond the range of a 64-bit float"));
        assert!(err("round(huge)").contains("beyond the range of a 64-bit float"));
        let ok = |src: &str| parse(src).unwrap().eval(&map).unwrap();
        assert_eq!(ok("min % -1"), json!(0));
        assert_eq!(ok("min / 1"), json!(i64::MIN));
        assert_eq!(ok("round(f, 10)"), json!(1e308));
    }

    #[test]
    fn numbers_compare_by_exact_value() {
        let cmp = |a: &str, b: &str| compare_scalars(Scalar::Number(a), Scalar::Number(b));
        let less = Some(Ordering::Less);
        let equal = Some(Ordering::Equal);
        for (a, b) in [
            ("1", "1e400"),
            ("-1e400", "-1"),
            ("1e-400", "1e-399"),
            ("0", "1e-400"),
            ("-1e-400", "0"),
            ("12345678901234567890", "12345678901234567891"),
            ("9007199254740992", "9007199254740993"),
            ("0.1", "0.1000000000000000055511151231257827"),
            ("99.5", "100"),
            ("-100", "-99.5"),
            ("1E+2", "100.5"),
            ("-0.01", "0.0"),
            ("1e999999999999999999999", "2e999999999999999999999"),
        ] {
            assert_eq!(cmp(a, b), less, "{a} < {b}");
            assert_eq!(cmp(b, a), Some(Ordering::Greater), "{b} > {a}");
        }
        for (a, b) in [
            ("100", "1e2"),
            ("1.50", "15e-1"),
            ("0", "-0.0e5"),
            ("123456789012345678901234", "123456789012345678901234.000"),
            ("0.00120", "1.2E-3"),
        ] {
            assert_eq!(cmp(a, b), equal, "{a} == {b}");
        }
        let map: Map<String, Value> =
            serde_json::from_str(r#"{"h":1e400,"t":1e-400,"z":0e5,"w":12345678901234567891}"#)
                .unwrap();
        let ok = |src: &str| is_true(&parse(src).unwrap().eval(&map).unwrap());
        assert!(ok("h > 5") && ok("h != 5") && !ok("h < 5") && !ok("h == 5"));
        assert!(ok("w > 12345678901234567890") && !ok("w == 12345678901234567890"));
        assert!(ok("t") && !ok("z") && ok("h"));
    }

    #[test]
    fn integers_beyond_64_bits_stay_exact_or_fail() {
        let map: Map<String, Value> =
            serde_json::from_str(r#"{"w":12345678901234567890123,"i":1234567890123456789}"#)
                .unwrap();
        let ok = |src: &str| parse(src).unwrap().eval(&map).unwrap().to_string();
        let err = |src: &str| parse(src).unwrap().eval(&map).unwrap_err().to_string();
        for src in ["w + 1", "w * 1.5", "-w", "1 - w", "w / 1"] {
            assert_eq!(
                err(src),
                "integer 12345678901234567890123 does not fit in 64 bits: \
                 arithmetic on it would not be exact",
                "{src}"
            );
        }
        assert_eq!(ok("w"), "12345678901234567890123");
        assert_eq!(ok("coalesce(null, w)"), "12345678901234567890123");
        assert_eq!(ok("int(w)"), "12345678901234567890123");
        assert_eq!(ok("round(w)"), "12345678901234567890123");
        assert!(err("round(w, -2)").contains("does not fit in 64 bits"));
        assert_eq!(ok("round(i, -2)"), "1234567890123456800");
        assert_eq!(ok("round(i, -1)"), "1234567890123456790");
        assert_eq!(ok("round(-i, -3)"), "-1234567890123457000");
        assert_eq!(ok("round(i, -30)"), "0");
        assert!(err("round(9223372036854775807, -19)").starts_with("integer overflow"));
    }

    #[test]
    fn typed_fields_compare_by_the_moment_they_name() {
        let types = |name: &str| match name {
            "ts" => Some(FieldType::TimestampTz),
            "t" => Some(FieldType::Time),
            "n" => Some(FieldType::Integer),
            _ => None,
        };
        let map: Map<String, Value> = serde_json::from_str(
            r#"{"ts":"2024-01-01T10:00:00+02:00","t":"10:00:00.50","raw":"2024-01-01T10:00:00+02:00","n":1}"#,
        )
        .unwrap();
        let field = |name: &str| match map.get(name) {
            Some(Value::String(s)) => Some(Scalar::Text(s)),
            Some(Value::Number(n)) => Some(Scalar::Number(n.as_str())),
            _ => Some(Scalar::Null),
        };
        for (src, expected) in [
            ("ts < '2024-01-01T09:00:00Z'", true),
            ("'2024-01-01T09:00:00Z' > ts", true),
            ("ts == '2024-01-01T08:00:00+00:00'", true),
            ("ts == 'soon'", false),
            ("ts != null", true),
            ("raw < '2024-01-01T09:00:00Z'", false),
            ("t == '10:00:00.5'", true),
            ("t > '10:00:00.49' and n == 1", true),
        ] {
            let e = parse(src).unwrap().with_types(&types);
            assert_eq!(is_true(&e.eval(&map).unwrap()), expected, "{src}");
            assert_eq!(e.test_with(&field), Some(expected), "{src}");
        }
        // Untyped streams keep the expression as it was.
        let e = parse("ts < 'x' and n > 1").unwrap();
        assert_eq!(e.with_types(&|_| None), e);
    }

    #[test]
    fn result_types_are_known_where_every_record_agrees() {
        let types = |name: &str| match name {
            "i" => Some(FieldType::Integer),
            "d" => Some(FieldType::Decimal(Some((12, 2)))),
            "ts" => Some(FieldType::TimestampTz),
            _ => None,
        };
        let of = |src: &str| parse(src).unwrap().with_types(&types).result_type(&types);
        assert_eq!(of("ts"), Some(FieldType::TimestampTz));
        assert_eq!(of("d"), Some(FieldType::Decimal(Some((12, 2)))));
        assert_eq!(of("i * 2 - -i % 3"), Some(FieldType::Integer));
        assert_eq!(of("i / 2"), None);
        assert_eq!(of("d + 1"), None);
        assert_eq!(of("d > 1 or not i"), Some(FieldType::Boolean));
        assert_eq!(of("lower(x) . i"), Some(FieldType::Text));
        assert_eq!(of("len(x)"), Some(FieldType::Integer));
        assert_eq!(of("coalesce(ts, ts)"), Some(FieldType::TimestampTz));
        assert_eq!(of("coalesce(ts, 'x')"), None);
        assert_eq!(of("x"), None);
        assert_eq!(of("round(i)"), None);
    }

    #[test]
    fn errors_are_clear() {
        assert!(parse("qty >").is_err());
        assert!(parse("(qty").is_err());
        assert!(parse("'open").is_err());
        let Value::Object(map) = json!({"s": "x"}) else {
            unreachable!()
        };
        let err = parse("s * 2").unwrap().eval(&map).unwrap_err().to_string();
        assert!(err.contains("not both numbers"), "{err}");
    }
}
