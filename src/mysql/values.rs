//! What each MySQL column accepts, and how a value is written as an SQL
//! literal: checked first, so that a value the server would change
//! (truncate, round, shift by a time zone, turn into a zero date) is a
//! reject before anything is sent. The session runs with
//! `NO_BACKSLASH_ESCAPES`, so a quote is the only character a string
//! literal escapes.

use std::fmt::Write as _;

use super::dates::{check_mysql_time, date_time, parse_date, to_utc};
use crate::format::flat::Raw;
use crate::format::logical::{check_uuid, decode_bytes, decode_hex};
use crate::format::typing::exact_float;
use crate::record::FieldType;

/// What a column accepts, read from `information_schema.COLUMNS`.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// An integer type with its range; `tiny_bool` for TINYINT(1), which
    /// also takes true/false as 1/0.
    Int {
        /// Smallest value.
        min: i128,
        /// Largest value.
        max: i128,
        /// TINYINT(1), MySQL's BOOLEAN.
        tiny_bool: bool,
    },
    /// FLOAT (`single`) or DOUBLE: numbers the type holds exactly.
    Float {
        /// FLOAT, 32 bits.
        single: bool,
        /// UNSIGNED: no negative values.
        unsigned: bool,
        /// FLOAT(M,D) or DOUBLE(M,D): (M, D); the server rounds to D
        /// decimals and refuses M-D integer digits or more.
        digits: Option<(u32, u32)>,
    },
    /// DECIMAL(p,s): decimals that fit without rounding.
    Decimal {
        /// Total digits.
        precision: u32,
        /// Digits after the point.
        scale: u32,
        /// No negative values.
        unsigned: bool,
    },
    /// BIT(n): BIT(1) takes true/false; wider ones integers that fit.
    Bit(u32),
    /// Character columns, with their length limit in characters.
    Text(Option<u64>),
    /// Binary columns, with their length limit in bytes; `true` when the
    /// stream declares the field `bytes` (base64 on the wire, decoded),
    /// else `\\x` hex text or the text's own bytes.
    Binary(Option<u64>, bool),
    /// JSON.
    Json,
    /// DATE.
    Date,
    /// DATETIME(frac); `true` when it holds instants (the stream declares
    /// the field `timestamptz`): converted to UTC on the way in.
    DateTime(u32, bool),
    /// TIMESTAMP(frac): stored in UTC.
    Timestamp(u32),
    /// TIME(frac): a time of day, or MySQL's range of -838:59:59 to
    /// 838:59:59.
    Time(u32),
    /// A uuid in CHAR(36): canonical text (the stream declares `uuid`).
    Uuid,
    /// YEAR: 1901 to 2155, and 0 (the year `0000`).
    Year,
    /// ENUM, SET, spatial...: text the server checks.
    Other,
}

/// The columns of `information_schema.COLUMNS` a kind is read from.
#[derive(Debug, Clone, Default)]
pub struct ColumnInfo {
    /// DATA_TYPE, lower case (`int`, `varchar`, ...).
    pub data_type: String,
    /// COLUMN_TYPE (`int(10) unsigned`, `decimal(10,2)`, ...).
    pub column_type: String,
    /// CHARACTER_MAXIMUM_LENGTH.
    pub max_length: Option<u64>,
    /// NUMERIC_PRECISION.
    pub precision: Option<u64>,
    /// NUMERIC_SCALE.
    pub scale: Option<u64>,
    /// DATETIME_PRECISION.
    pub fraction: Option<u64>,
    /// A JSON column (MariaDB: LONGTEXT with a json_valid check).
    pub json: bool,
    /// The character set is binary.
    pub binary: bool,
}

impl Kind {
    /// The kind of a column described by `info`.
    pub fn from_info(info: &ColumnInfo) -> Kind {
        let unsigned = info.column_type.to_ascii_lowercase().contains("unsigned");
        let int = |bits: u32| {
            if unsigned {
                Kind::Int {
                    min: 0,
                    max: (1i128 << bits) - 1,
                    tiny_bool: false,
                }
            } else {
                Kind::Int {
                    min: -(1i128 << (bits - 1)),
                    max: (1i128 << (bits - 1)) - 1,
                    tiny_bool: false,
                }
            }
        };
        if info.json {
            return Kind::Json;
        }
        let fraction = info.fraction.unwrap_or(0) as u32;
        match info.data_type.as_str() {
            "tinyint" => match int(8) {
                Kind::Int { min, max, .. } => Kind::Int {
                    min,
                    max,
                    tiny_bool: info
                        .column_type
                        .to_ascii_lowercase()
                        .starts_with("tinyint(1)"),
                },
                other => other,
            },
            "smallint" => int(16),
            "mediumint" => int(24),
            "int" | "integer" => int(32),
            "bigint" => int(64),
            "float" | "double" | "real" => Kind::Float {
                single: info.data_type == "float",
                unsigned,
                // A scale is reported only for FLOAT(M,D) and DOUBLE(M,D).
                digits: info
                    .scale
                    .map(|s| (info.precision.unwrap_or(0) as u32, s as u32)),
            },
            "decimal" | "numeric" => Kind::Decimal {
                precision: info.precision.unwrap_or(10) as u32,
                scale: info.scale.unwrap_or(0) as u32,
                unsigned,
            },
            "bit" => Kind::Bit(info.precision.unwrap_or(1) as u32),
            "json" => Kind::Json,
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext"
                if !info.binary =>
            {
                Kind::Text(info.max_length)
            }
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "binary"
            | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                Kind::Binary(info.max_length, false)
            }
            "date" => Kind::Date,
            "datetime" => Kind::DateTime(fraction, false),
            "time" => Kind::Time(fraction),
            "timestamp" => Kind::Timestamp(fraction),
            "year" => Kind::Year,
            _ => Kind::Other,
        }
    }

    /// The kind of a column etlkit created for a wire type.
    pub fn of(t: FieldType) -> Kind {
        match t {
            FieldType::Integer => Kind::Int {
                min: i128::from(i64::MIN),
                max: i128::from(i64::MAX),
                tiny_bool: false,
            },
            FieldType::Float => Kind::Float {
                single: false,
                unsigned: false,
                digits: None,
            },
            FieldType::Boolean => Kind::Bit(1),
            FieldType::Text => Kind::Text(None),
            FieldType::Json => Kind::Json,
            FieldType::Decimal(Some((precision, scale))) if fits_decimal(precision, scale) => {
                Kind::Decimal {
                    precision: u32::from(precision),
                    scale: u32::from(scale),
                    unsigned: false,
                }
            }
            // Digits beyond what DECIMAL holds, or an unknown precision:
            // the digits as text.
            FieldType::Decimal(_) => Kind::Text(None),
            FieldType::Date => Kind::Date,
            FieldType::Time => Kind::Time(6),
            FieldType::Timestamp => Kind::DateTime(6, false),
            FieldType::TimestampTz => Kind::DateTime(6, true),
            FieldType::Uuid => Kind::Uuid,
            FieldType::Bytes => Kind::Binary(None, true),
        }
    }
}

/// Does DECIMAL(p,s) exist in MySQL (at most 65 digits, 30 after the
/// point)?
pub fn fits_decimal(precision: u16, scale: u16) -> bool {
    (1..=65).contains(&precision) && scale <= 30 && scale <= precision
}

/// `-?(0|[1-9][0-9]*)`: integer text that converts to a number and back unchanged.
fn is_canonical_integer(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    !body.is_empty()
        && body.bytes().all(|b| b.is_ascii_digit())
        && (body == "0" || !body.starts_with('0'))
}

/// `-?digits[.digits]`, no exponent: what a DECIMAL column takes as is.
fn decimal_parts(s: &str) -> Option<(bool, &str, &str)> {
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    (!int.is_empty() && digits(int) && digits(frac) && !(body.ends_with('.')))
        .then_some((negative, int, frac))
}

/// Where a checked value is written: an SQL literal (`String`), or a
/// field of the tab-separated text LOAD DATA reads ([`TabText`]).
pub trait Literal {
    /// Goes before each value of a row.
    fn separator(&mut self);
    /// Bytes written so far.
    fn written(&self) -> usize;
    /// NULL.
    fn null(&mut self);
    /// Text the server reads as it stands (a number): nothing to quote or
    /// escape.
    fn raw(&mut self, s: &str);
    /// A string.
    fn text(&mut self, s: &str);
    /// Bytes.
    fn hex(&mut self, bytes: &[u8]);
    /// A BIT(1) value.
    fn bit(&mut self, b: bool);
}

impl Literal for String {
    fn separator(&mut self) {
        self.push(',');
    }

    fn written(&self) -> usize {
        self.len()
    }

    fn null(&mut self) {
        self.push_str("NULL");
    }

    fn raw(&mut self, s: &str) {
        self.push_str(s);
    }

    fn text(&mut self, s: &str) {
        push_text(self, s);
    }

    fn hex(&mut self, bytes: &[u8]) {
        push_hex(self, bytes);
    }

    fn bit(&mut self, b: bool) {
        self.push_str(if b { "b'1'" } else { "b'0'" });
    }
}

/// Rows as LOAD DATA reads them by default: fields between tabs, lines
/// ended by a newline, a backslash escaping a tab, a newline, a backslash
/// or a NUL, and `\N` for NULL. Every value comes after a tab (the caller
/// drops the first, or puts a field before it). Bytes are written as hex
/// digits and BIT values as decimal digits: the statement turns them back
/// (`UNHEX`, `CAST ... AS UNSIGNED`, see `bulk.rs`).
#[derive(Default)]
pub struct TabText(pub Vec<u8>);

impl Literal for TabText {
    fn separator(&mut self) {
        self.0.push(b'\t');
    }

    fn written(&self) -> usize {
        self.0.len()
    }

    fn null(&mut self) {
        self.0.extend_from_slice(b"\\N");
    }

    fn raw(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }

    fn text(&mut self, s: &str) {
        let out = &mut self.0;
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let escaped: &[u8] = match b {
                b'\\' => b"\\\\",
                b'\t' => b"\\t",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                0 => b"\\0",
                _ => continue,
            };
            out.extend_from_slice(&s.as_bytes()[start..i]);
            out.extend_from_slice(escaped);
            start = i + 1;
        }
        out.extend_from_slice(&s.as_bytes()[start..]);
    }

    fn hex(&mut self, bytes: &[u8]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for b in bytes {
            self.0.push(DIGITS[usize::from(b >> 4)]);
            self.0.push(DIGITS[usize::from(b & 15)]);
        }
    }

    fn bit(&mut self, b: bool) {
        self.0.push(if b { b'1' } else { b'0' });
    }
}

/// Appends a string literal.
pub fn push_text(out: &mut String, s: &str) {
    if s.contains('\0') {
        // A NUL inside a quoted literal is not safe on every server: send
        // the bytes as a hex literal in utf8mb4.
        out.push_str("_utf8mb4 ");
        push_hex(out, s.as_bytes());
        return;
    }
    out.push('\'');
    out.push_str(&s.replace('\'', "''"));
    out.push('\'');
}

/// Appends a hex literal: `X'..'` (an empty one is `''`).
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    if bytes.is_empty() {
        out.push_str("''");
        return;
    }
    out.push_str("X'");
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out.push('\'');
}

/// Appends `value` as a literal for a column of `kind` (named `column_type`
/// in messages), or says why it does not fit.
pub fn push_value(
    out: &mut impl Literal,
    kind: &Kind,
    column_type: &str,
    value: &Raw<'_>,
) -> Result<(), String> {
    let misfit = || format!("{} does not fit a {column_type} column", value.describe());
    match (kind, value) {
        (_, Raw::Null) => out.null(),
        (Kind::Int { min, max, .. }, Raw::Number(n) | Raw::Str(n)) if is_canonical_integer(n) => {
            let i: i128 = n.parse().map_err(|_| misfit())?;
            if i < *min || i > *max {
                return Err(misfit());
            }
            out.raw(n);
        }
        (
            Kind::Int {
                tiny_bool: true, ..
            },
            Raw::Bool(b),
        ) => out.raw(if *b { "1" } else { "0" }),
        (
            Kind::Float {
                single,
                unsigned,
                digits,
            },
            Raw::Number(n) | Raw::Str(n),
        ) if matches!(value, Raw::Number(_)) || decimal_parts(n).is_some() => {
            let f = exact_float(n).ok_or_else(misfit)?;
            if *unsigned && f < 0.0 {
                return Err(misfit());
            }
            if let Some((precision, scale)) = *digits {
                // The server rounds to the scale silently and refuses a
                // value with too many integer digits: both are checked on
                // the decimal text of the value rounded to the scale.
                let rounded = format!("{:.*}", scale as usize, f.abs());
                let int_digits = rounded
                    .split('.')
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches('0')
                    .len();
                let same = rounded.parse::<f64>().ok() == Some(f.abs());
                if !same || int_digits > precision.saturating_sub(scale) as usize {
                    return Err(misfit());
                }
            }
            if *single {
                // A FLOAT keeps 32 bits and reads back as the float's
                // shortest text: the value fits when that text is the same
                // number.
                let single = f as f32;
                if single.is_infinite() || single.to_string().parse::<f64>().ok() != Some(f) {
                    return Err(misfit());
                }
                // Sent as the float's own value written out as a double:
                // the shortest text of the largest FLOAT (3.4028235e38) is
                // above it as a double, which the server refuses as out of
                // range; the exact value converts back to the same float.
                out.raw(&format!("{:e}", f64::from(single)));
            } else {
                // In exponent form: MySQL reads a literal with a decimal
                // point and more than 65 digits as a DECIMAL and clamps it
                // (10^300 written out became 1e65); with an exponent it is
                // a DOUBLE, and the shortest exponent text reads back as
                // the same float.
                out.raw(&format!("{f:e}"));
            }
        }
        (
            Kind::Decimal {
                precision,
                scale,
                unsigned,
            },
            Raw::Number(n) | Raw::Str(n),
        ) => {
            let (negative, int, frac) = decimal_parts(n).ok_or_else(misfit)?;
            let int_digits = int.trim_start_matches('0').len();
            let frac_digits = frac.trim_end_matches('0').len();
            let zero = int_digits == 0 && frac_digits == 0;
            if int_digits > precision.saturating_sub(*scale) as usize
                || frac_digits > *scale as usize
                || (*unsigned && negative && !zero)
            {
                return Err(misfit());
            }
            out.raw(n);
        }
        (Kind::Bit(1), Raw::Bool(b)) => out.bit(*b),
        (Kind::Bit(bits), Raw::Number(n)) if is_canonical_integer(n) => {
            let i: i128 = n.parse().map_err(|_| misfit())?;
            if i < 0 || i >= 1i128 << bits {
                return Err(misfit());
            }
            out.raw(n);
        }
        (Kind::Text(limit), Raw::Str(s) | Raw::Number(s) | Raw::Nested(s)) => {
            if limit.is_some_and(|l| s.chars().count() as u64 > l) {
                return Err(format!(
                    "{} is longer than the {column_type} column holds",
                    value.describe()
                ));
            }
            out.text(s);
        }
        (Kind::Uuid, Raw::Str(s)) => {
            check_uuid(s).map_err(|why| format!("{} {why}", value.describe()))?;
            out.text(s);
        }
        (Kind::Text(_), Raw::Bool(b)) => out.text(if *b { "true" } else { "false" }),
        (Kind::Binary(limit, true), Raw::Str(s)) => {
            let bytes = decode_bytes(s).map_err(|why| format!("{} {why}", value.describe()))?;
            if limit.is_some_and(|l| bytes.len() as u64 > l) {
                return Err(format!(
                    "{} is longer than the {column_type} column holds",
                    value.describe()
                ));
            }
            out.hex(&bytes);
        }
        (Kind::Binary(limit, false), Raw::Str(s) | Raw::Number(s)) => {
            let bytes = decode_hex(s).unwrap_or_else(|| s.as_bytes().to_vec());
            if limit.is_some_and(|l| bytes.len() as u64 > l) {
                return Err(format!(
                    "{} is longer than the {column_type} column holds",
                    value.describe()
                ));
            }
            out.hex(&bytes);
        }
        (Kind::Json, other) => out.text(&other.to_json()),
        (Kind::Date, Raw::Str(s)) => {
            parse_date(s).ok_or_else(|| format!("text {s:?} is not a date (YYYY-MM-DD)"))?;
            out.text(s);
        }
        (Kind::DateTime(fraction, false), Raw::Str(s)) => {
            out.text(&date_time(s, *fraction, false, column_type)?);
        }
        (Kind::DateTime(fraction, true), Raw::Str(s)) => {
            out.text(&date_time(&to_utc(s)?, *fraction, false, column_type)?);
        }
        (Kind::Time(fraction), Raw::Str(s)) => {
            check_mysql_time(s, *fraction, column_type)?;
            out.text(s);
        }
        (Kind::Timestamp(fraction), Raw::Str(s)) => {
            // An instant: the session's zone is UTC, so any offset is
            // converted to UTC first.
            let text = date_time(&to_utc(s)?, *fraction, true, column_type)?;
            let whole = &text[..19.min(text.len())];
            if !("1970-01-01 00:00:01"..="2038-01-19 03:14:07").contains(&whole) {
                return Err(format!(
                    "text {s:?} is outside the range of a TIMESTAMP column (1970 to 2038)"
                ));
            }
            out.text(&text);
        }
        (Kind::Year, Raw::Number(s) | Raw::Str(s)) if is_canonical_integer(s) => {
            // The server reads 1 to 99 as 2001 to 2069 and 1970 to 1999,
            // the text '0' as 2000, and only the number 0 (or '0000') as
            // the year 0000 an extract writes as 0.
            let year: i64 = s.parse().map_err(|_| misfit())?;
            match year {
                0 => out.text("0000"),
                1901..=2155 => out.raw(s),
                _ => {
                    return Err(format!(
                        "{} is not a year a {column_type} column keeps (1901 to 2155, or 0)",
                        value.describe()
                    ));
                }
            }
        }
        (Kind::Year, Raw::Str(s)) if s == "0000" => out.text("0000"),
        (Kind::Other, Raw::Str(s) | Raw::Number(s)) => out.text(s),
        _ => return Err(misfit()),
    }
    Ok(())
}

#[cfg(test)]
#[path = "values_tests.rs"]
mod tests;
