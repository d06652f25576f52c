//! Fitting values into PostgreSQL columns: what a column accepts (from its
//! type name), the type etlkit gives a column it creates, the check of
//! each value against its column that both COPY formats share, so that a
//! value the column would change is a reject before anything is sent, and
//! the value written in COPY's text format (the binary format is
//! `binary.rs`).

use crate::format::flat::Raw;
use crate::format::logical::{Temporal, check_iso_like, decode_bytes, uuid_bytes};
use crate::format::typing::{exact_float, is_number_text};
use crate::record::FieldType;

/// What a PostgreSQL column accepts, from its type name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// An integer type with its range.
    Int(i64, i64),
    /// real / double precision.
    Float,
    /// numeric, exact.
    Numeric,
    /// boolean.
    Bool,
    /// text and its kin.
    Text,
    /// json / jsonb.
    Json,
    /// date.
    Date,
    /// time (without time zone).
    Time,
    /// timestamp without time zone.
    Timestamp,
    /// timestamp with time zone; `need_offset`: a timestamp without a UTC
    /// offset is a reject (`--naive-timestamps reject`), not read in the
    /// session's zone.
    TimestampTz {
        /// Text in the ISO form must carry an offset.
        need_offset: bool,
    },
    /// uuid.
    Uuid,
    /// bytea; `base64`: the stream declares the field `bytes`, so its
    /// values are base64 (else text the server reads, such as `\x0a0b`).
    Bytea {
        /// Values are the wire form of bytes.
        base64: bool,
    },
    /// interval, inet, domains, ...: text the server checks.
    Other,
}

impl Kind {
    /// The kind of a column whose type is named `name` (pg_type.typname).
    pub fn from_typname(name: &str) -> Kind {
        match name {
            "int2" => Kind::Int(i64::from(i16::MIN), i64::from(i16::MAX)),
            "int4" => Kind::Int(i64::from(i32::MIN), i64::from(i32::MAX)),
            "int8" => Kind::Int(i64::MIN, i64::MAX),
            "float4" | "float8" => Kind::Float,
            "numeric" => Kind::Numeric,
            "bool" => Kind::Bool,
            "text" | "varchar" | "bpchar" | "name" | "citext" => Kind::Text,
            "json" | "jsonb" => Kind::Json,
            "date" => Kind::Date,
            "time" => Kind::Time,
            "timestamp" => Kind::Timestamp,
            "timestamptz" => Kind::TimestampTz { need_offset: false },
            "uuid" => Kind::Uuid,
            "bytea" => Kind::Bytea { base64: false },
            _ => Kind::Other,
        }
    }

    /// The type etlkit gives a new column for a wire type. Decimals get
    /// `numeric`: it keeps the digits as written (12.50 stays 12.50, and
    /// sums of money add up exactly), where a double would round them.
    /// The logical types get their native columns.
    pub fn declared(t: FieldType) -> String {
        match t {
            FieldType::Integer => "bigint",
            FieldType::Float => "numeric",
            FieldType::Boolean => "boolean",
            FieldType::Text => "text",
            FieldType::Json => "jsonb",
            // PostgreSQL's numeric takes a precision up to 1000.
            FieldType::Decimal(Some((p, s))) if p <= 1000 => return format!("numeric({p},{s})"),
            FieldType::Decimal(_) => "numeric",
            FieldType::Date => "date",
            FieldType::Time => "time",
            FieldType::Timestamp => "timestamp",
            FieldType::TimestampTz => "timestamptz",
            FieldType::Uuid => "uuid",
            FieldType::Bytes => "bytea",
        }
        .to_string()
    }

    /// The kind of a column etlkit created for a wire type.
    pub fn of(t: FieldType) -> Kind {
        match t {
            FieldType::Integer => Kind::Int(i64::MIN, i64::MAX),
            FieldType::Float => Kind::Numeric,
            FieldType::Boolean => Kind::Bool,
            FieldType::Text => Kind::Text,
            FieldType::Json => Kind::Json,
            FieldType::Decimal(_) => Kind::Numeric,
            FieldType::Date => Kind::Date,
            FieldType::Time => Kind::Time,
            FieldType::Timestamp => Kind::Timestamp,
            FieldType::TimestampTz => Kind::TimestampTz { need_offset: false },
            FieldType::Uuid => Kind::Uuid,
            FieldType::Bytes => Kind::Bytea { base64: true },
        }
    }

    /// For a date or time kind: which, for the checks of `format::logical`.
    fn temporal(self) -> Option<Temporal> {
        Some(match self {
            Kind::Date => Temporal::Date,
            Kind::Time => Temporal::Time,
            Kind::Timestamp => Temporal::Timestamp,
            Kind::TimestampTz { .. } => Temporal::TimestampTz,
            _ => return None,
        })
    }
}

/// Digits a `numeric` value may have before and after the decimal point
/// (PostgreSQL refuses more with "value overflows numeric format").
const NUMERIC_MAX_WEIGHT: i64 = 131_072;
const NUMERIC_MAX_SCALE: i64 = 16_383;

/// Does a number (JSON syntax) go into a `numeric` or `numeric(p,s)` column
/// exactly, without rounding and without the server refusing it?
fn fits_numeric(type_name: &str, number: &str) -> bool {
    let unsigned = number.strip_prefix('-').unwrap_or(number);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => match e.parse::<i64>() {
            Ok(e) if e.abs() <= 2 * NUMERIC_MAX_WEIGHT => (m, e),
            _ => return false,
        },
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let len = digits.len() as i64;
    // Where the decimal point falls in `digits`.
    let point = int.len() as i64 + exponent;
    let leading = digits.bytes().take_while(|&b| b == b'0').count() as i64;
    if leading == len {
        return true;
    }
    let trailing = digits.bytes().rev().take_while(|&b| b == b'0').count() as i64;
    let int_digits = (point - leading).max(0);
    let scale_written = (len - point).max(0);
    let scale_needed = (len - trailing - point).max(0);
    if int_digits > NUMERIC_MAX_WEIGHT || scale_written > NUMERIC_MAX_SCALE {
        return false;
    }
    let Some((precision, scale)) = type_name
        .strip_prefix("numeric(")
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|ps| {
            let (p, s) = ps.split_once(',').unwrap_or((ps, "0"));
            Some((p.trim().parse::<i64>().ok()?, s.trim().parse::<i64>().ok()?))
        })
    else {
        return true;
    };
    scale_needed <= scale && int_digits <= precision - scale
}

/// Does a number (JSON syntax) go into a column of a numeric `kind` as
/// written, without rounding and without the server refusing it?
fn number_fits(kind: Kind, type_name: &str, n: &str) -> bool {
    match kind {
        Kind::Int(min, max) => n.parse::<i64>().is_ok_and(|i| (min..=max).contains(&i)),
        Kind::Float => {
            exact_float(n).is_some_and(|f| type_name != "real" || f64::from(f as f32) == f)
        }
        Kind::Numeric => fits_numeric(type_name, n),
        _ => false,
    }
}

/// Does a timestamp text end with a UTC offset (`Z`, `+02:00`, `-0500`)?
fn has_offset(s: &str) -> bool {
    let s = s.trim();
    if s.ends_with(['Z', 'z']) {
        return true;
    }
    let Some(time) = s.split(['T', ' ']).nth(1) else {
        return false;
    };
    time.contains(['+', '-'])
}

/// Appends `text` to a COPY row, escaped for the text format.
pub fn copy_text(out: &mut Vec<u8>, text: &str) {
    for b in text.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.push(b),
        }
    }
}

/// A value checked against its column, ready to be written in either
/// COPY format.
#[derive(Debug, PartialEq)]
pub(super) enum Checked<'v> {
    Null,
    /// A number (JSON syntax) that fits the numeric column as written.
    Number(&'v str),
    Bool(bool),
    /// Text as the column stores it (for json columns: the JSON text).
    Text(std::borrow::Cow<'v, str>),
    /// Bytes for a bytea column, decoded from base64.
    Bytes(Vec<u8>),
}

/// Checks one value for a column of `kind`, or says why it does not fit.
pub(super) fn check<'v>(
    kind: Kind,
    type_name: &str,
    value: &'v Raw<'_>,
) -> Result<Checked<'v>, String> {
    use std::borrow::Cow;
    let misfit = || format!("{} does not fit a {type_name} column", value.describe());
    if let Raw::Str(s) | Raw::Nested(s) = value
        && s.contains('\0')
    {
        return Err("text with a NUL character cannot be stored in PostgreSQL".into());
    }
    // Numbers often travel as text ("1.00" from a JSON API, every digit of
    // a numeric kept in a SQLite TEXT column): text written as a number goes
    // into a numeric column by the same rule as the number itself.
    let number = match value {
        Raw::Number(n) => Some(n),
        Raw::Str(s) if is_number_text(s) => Some(s),
        _ => None,
    };
    if let (Kind::Int(..) | Kind::Float | Kind::Numeric, Some(n)) = (kind, number) {
        if !number_fits(kind, type_name, n) {
            return Err(misfit());
        }
        return Ok(Checked::Number(n));
    }
    let wrong = |why: String| format!("{} {why}", value.describe());
    Ok(match (kind, value) {
        (_, Raw::Null) => Checked::Null,
        // numeric's values that are no number travel as PostgreSQL writes
        // them; a numeric(p,s) holds NaN but no infinity.
        (Kind::Numeric, Raw::Str(s))
            if s.as_ref() == "NaN"
                || (matches!(s.as_ref(), "Infinity" | "-Infinity")
                    && !type_name.starts_with("numeric(")) =>
        {
            Checked::Text(Cow::Borrowed(s))
        }
        (Kind::Timestamp, Raw::Str(s)) if has_offset(s) => {
            return Err(wrong(
                "carries a UTC offset, which a timestamp without time zone column would drop"
                    .into(),
            ));
        }
        // Text in the wire form is checked here, so that 2024-02-30 is a
        // reject; other spellings the server reads (infinity, Jan 2 2024)
        // go to it as before.
        (Kind::Date | Kind::Time | Kind::Timestamp | Kind::TimestampTz { .. }, Raw::Str(s)) => {
            let temporal = kind.temporal().expect("a date or time kind");
            let iso = check_iso_like(temporal, s).map_err(wrong)?;
            if kind == Kind::Time && !iso && is_duration(s) {
                return Err(wrong(
                    "is not a time of day (00:00:00 to 23:59:59.999999); MySQL's TIME holds \
                     such durations, a text column keeps them"
                        .into(),
                ));
            }
            if kind == (Kind::TimestampTz { need_offset: true }) && iso && !has_offset(s) {
                return Err(wrong(
                    "has no UTC offset (Z, +02:00), which --naive-timestamps reject requires"
                        .into(),
                ));
            }
            Checked::Text(Cow::Borrowed(s))
        }
        (Kind::Uuid, Raw::Str(s)) => {
            if uuid_bytes(s).is_none() {
                return Err(wrong("is not a uuid".into()));
            }
            Checked::Text(Cow::Borrowed(s))
        }
        (Kind::Bytea { base64: true }, Raw::Str(s)) => {
            Checked::Bytes(decode_bytes(s).map_err(wrong)?)
        }
        (Kind::Bool, Raw::Bool(b)) => Checked::Bool(*b),
        (Kind::Text | Kind::Other | Kind::Bytea { base64: false }, Raw::Str(s)) => {
            Checked::Text(Cow::Borrowed(s))
        }
        (Kind::Text, Raw::Number(n) | Raw::Nested(n)) => Checked::Text(Cow::Borrowed(n)),
        (Kind::Text, Raw::Bool(b)) => {
            Checked::Text(Cow::Borrowed(if *b { "true" } else { "false" }))
        }
        (Kind::Json, other) => Checked::Text(Cow::Owned(other.to_json())),
        _ => return Err(misfit()),
    })
}

/// `[-]H+:MM:SS[.f]` with a sign or 24 hours and more: a duration as
/// MySQL's TIME holds it, which no time of day is.
fn is_duration(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    let (hms, frac) = body.split_once('.').unwrap_or((body, ""));
    let parts: Vec<&str> = hms.split(':').collect();
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    matches!(parts.as_slice(), [h, m, sec] if digits(h) && digits(m) && digits(sec)
        && m.len() == 2 && sec.len() == 2)
        && (frac.is_empty() || digits(frac))
}

/// Appends one value for a column of `kind` in the COPY text format, or
/// says why it does not fit.
pub fn copy_value(
    out: &mut Vec<u8>,
    kind: Kind,
    type_name: &str,
    value: &Raw<'_>,
) -> Result<(), String> {
    match check(kind, type_name, value)? {
        Checked::Null => out.extend_from_slice(b"\\N"),
        Checked::Number(n) => out.extend_from_slice(n.as_bytes()),
        Checked::Bool(b) => out.push(if b { b't' } else { b'f' }),
        Checked::Text(s) => copy_text(out, &s),
        Checked::Bytes(b) => {
            // bytea's hex input form, its backslash escaped for COPY.
            out.extend_from_slice(b"\\\\x");
            for byte in b {
                out.extend_from_slice(format!("{byte:02x}").as_bytes());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_escapes_and_checks() {
        let mut out = Vec::new();
        copy_value(&mut out, Kind::Text, "text", &Raw::Str("a\tb\\c\nd".into())).unwrap();
        assert_eq!(out, b"a\\tb\\\\c\\nd");
        out.clear();
        assert!(
            copy_value(
                &mut out,
                Kind::Int(-32768, 32767),
                "smallint",
                &Raw::Number("40000".into())
            )
            .is_err()
        );
        assert!(
            copy_value(
                &mut out,
                Kind::Int(i64::MIN, i64::MAX),
                "bigint",
                &Raw::Str("1 ".into())
            )
            .is_err()
        );
        assert!(copy_value(&mut out, Kind::Text, "text", &Raw::Str("nul\0".into())).is_err());
        out.clear();
        copy_value(&mut out, Kind::Json, "jsonb", &Raw::Str("x".into())).unwrap();
        assert_eq!(out, b"\"x\"");
        out.clear();
        copy_value(
            &mut out,
            Kind::Numeric,
            "numeric",
            &Raw::Number("12345678901234567890.123".into()),
        )
        .unwrap();
        assert_eq!(out, b"12345678901234567890.123");
    }

    #[test]
    fn column_modifiers_are_respected() {
        let mut out = Vec::new();
        let num = |s: &str| Raw::Number(s.to_string().into());
        assert!(copy_value(&mut out, Kind::Numeric, "numeric(10,2)", &num("1.234")).is_err());
        assert!(copy_value(&mut out, Kind::Numeric, "numeric(10,2)", &num("1.230")).is_ok());
        assert!(copy_value(&mut out, Kind::Float, "real", &num("16777217")).is_err());
        assert!(copy_value(&mut out, Kind::Numeric, "numeric(5,2)", &num("123.4")).is_ok());
        assert!(copy_value(&mut out, Kind::Numeric, "numeric(5,2)", &num("1234.5")).is_err());
        assert!(copy_value(&mut out, Kind::Numeric, "numeric(5,2)", &num("1.5e2")).is_ok());
        assert!(copy_value(&mut out, Kind::Numeric, "numeric(5,2)", &num("1.5e-3")).is_err());
        assert!(copy_value(&mut out, Kind::Numeric, "numeric(5)", &num("12345")).is_ok());
        assert!(copy_value(&mut out, Kind::Numeric, "numeric(5)", &num("1.5")).is_err());
        assert!(copy_value(&mut out, Kind::Numeric, "numeric", &num("1e-16383")).is_ok());
        assert!(copy_value(&mut out, Kind::Numeric, "numeric", &num("1.5e-16383")).is_err());
        assert!(copy_value(&mut out, Kind::Numeric, "numeric", &num("1e131071")).is_ok());
        assert!(copy_value(&mut out, Kind::Numeric, "numeric", &num("1e131072")).is_err());
        assert!(copy_value(&mut out, Kind::Numeric, "numeric", &num("0e-99999")).is_ok());
        let text = |s: &str| Raw::Str(s.to_string().into());
        assert!(copy_value(&mut out, Kind::Float, "double precision", &text("1.00")).is_ok());
        assert!(copy_value(&mut out, Kind::Float, "double precision", &text("1e-400")).is_err());
        assert!(copy_value(&mut out, Kind::Int(0, 9), "integer", &text("1.5")).is_err());
        assert!(copy_value(&mut out, Kind::Numeric, "numeric", &text("007")).is_err());
        let ts = |s: &str| Raw::Str(s.to_string().into());
        let tz = "timestamp without time zone";
        let need = Kind::TimestampTz { need_offset: true };
        let tz_name = "timestamp with time zone";
        assert!(copy_value(&mut out, need, tz_name, &ts("2026-11-01 09:00:00")).is_err());
        assert!(copy_value(&mut out, need, tz_name, &ts("2026-11-01T09:00:00-00:00")).is_ok());
        assert!(copy_value(&mut out, need, tz_name, &ts("2026-11-01 09:00:00-05")).is_ok());
        assert!(copy_value(&mut out, need, tz_name, &ts("2026-11-01")).is_err());
        assert!(copy_value(&mut out, need, tz_name, &ts("infinity")).is_ok());
        let k = Kind::Timestamp;
        assert!(copy_value(&mut out, k, tz, &ts("2026-11-01T09:00:00+02:00")).is_err());
        assert!(copy_value(&mut out, k, tz, &ts("2026-11-01 09:00:00")).is_ok());
        assert!(copy_value(&mut out, k, tz, &ts("2026-11-01 09:00+02")).is_err());
        assert!(copy_value(&mut out, Kind::Date, "date", &ts("2024-02-30")).is_err());
        assert!(copy_value(&mut out, Kind::Date, "date", &ts("infinity")).is_ok());
        assert!(copy_value(&mut out, Kind::Uuid, "uuid", &ts("not-a-uuid")).is_err());
        let b64 = Kind::Bytea { base64: true };
        assert!(copy_value(&mut out, b64, "bytea", &ts("!!")).is_err());
        out.clear();
        copy_value(&mut out, b64, "bytea", &ts("3q2+7w==")).unwrap();
        assert_eq!(out, b"\\\\xdeadbeef");
    }
}
