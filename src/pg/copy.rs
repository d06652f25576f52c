//! The COPY text format: how each value is checked against its column and
//! written, so that a value the column would change is a reject before
//! anything is sent.

use crate::format::flat::Raw;
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
    /// date, timestamp, uuid, ...: text the server checks.
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
            _ => Kind::Other,
        }
    }

    /// The type etlkit gives a new column for a wire type. Decimals get
    /// `numeric`: it keeps the digits as written (12.50 stays 12.50, and
    /// sums of money add up exactly), where a double would round them.
    pub fn declared(t: FieldType) -> &'static str {
        match t {
            FieldType::Integer => "bigint",
            FieldType::Float => "numeric",
            FieldType::Boolean => "boolean",
            FieldType::Text => "text",
            FieldType::Json => "jsonb",
        }
    }

    /// The kind of a column etlkit created for a wire type.
    pub fn of(t: FieldType) -> Kind {
        match t {
            FieldType::Integer => Kind::Int(i64::MIN, i64::MAX),
            FieldType::Float => Kind::Numeric,
            FieldType::Boolean => Kind::Bool,
            FieldType::Text => Kind::Text,
            FieldType::Json => Kind::Json,
        }
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

/// Appends one value for a column of `kind`, or says why it does not fit.
pub fn copy_value(
    out: &mut Vec<u8>,
    kind: Kind,
    type_name: &str,
    value: &Raw<'_>,
) -> Result<(), String> {
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
        out.extend_from_slice(n.as_bytes());
        return Ok(());
    }
    match (kind, value) {
        (_, Raw::Null) => out.extend_from_slice(b"\\N"),
        (Kind::Other, Raw::Str(s))
            if type_name == "timestamp without time zone" && has_offset(s) =>
        {
            return Err(format!(
                "{} carries a UTC offset, which a timestamp without time zone column would drop",
                value.describe()
            ));
        }
        (Kind::Bool, Raw::Bool(b)) => out.push(if *b { b't' } else { b'f' }),
        (Kind::Text | Kind::Other, Raw::Str(s)) => copy_text(out, s),
        (Kind::Text, Raw::Number(n) | Raw::Nested(n)) => copy_text(out, n),
        (Kind::Text, Raw::Bool(b)) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        (Kind::Json, other) => copy_text(out, &other.to_json()),
        _ => return Err(misfit()),
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
        assert!(copy_value(&mut out, Kind::Other, tz, &ts("2026-11-01T09:00:00+02:00")).is_err());
        assert!(copy_value(&mut out, Kind::Other, tz, &ts("2026-11-01 09:00:00")).is_ok());
    }
}
