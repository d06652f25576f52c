//! The COPY text format: how each value is checked against its column and
//! written, so that a value the column would change is a reject before
//! anything is sent.

use crate::format::flat::Raw;
use crate::record::FieldType;
use crate::sink::convert::exact_float;

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

    /// The type etlkit gives a new column for a wire type.
    pub fn declared(t: FieldType) -> &'static str {
        match t {
            FieldType::Integer => "bigint",
            FieldType::Float => "double precision",
            FieldType::Boolean => "boolean",
            FieldType::Text => "text",
            FieldType::Json => "jsonb",
        }
    }

    /// The kind of a column etlkit created for a wire type.
    pub fn of(t: FieldType) -> Kind {
        match t {
            FieldType::Integer => Kind::Int(i64::MIN, i64::MAX),
            FieldType::Float => Kind::Float,
            FieldType::Boolean => Kind::Bool,
            FieldType::Text => Kind::Text,
            FieldType::Json => Kind::Json,
        }
    }
}

/// Does a decimal fit the scale of `numeric(p,s)` without rounding?
fn fits_scale(type_name: &str, number: &str) -> bool {
    let Some(scale) = type_name
        .strip_prefix("numeric(")
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|ps| ps.split(',').nth(1))
        .and_then(|s| s.trim().parse::<usize>().ok())
    else {
        return true;
    };
    if number.contains(['e', 'E']) {
        return false;
    }
    let fraction = number.split_once('.').map_or("", |(_, f)| f);
    fraction.trim_end_matches('0').len() <= scale
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

/// `-?digits[.digits]`: text a numeric column takes without change.
fn is_decimal_text(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
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
    match (kind, value) {
        (_, Raw::Null) => out.extend_from_slice(b"\\N"),
        (Kind::Int(min, max), Raw::Number(n)) => {
            let i: i64 = n.parse().map_err(|_| misfit())?;
            if i < min || i > max {
                return Err(misfit());
            }
            out.extend_from_slice(n.as_bytes());
        }
        (Kind::Float, Raw::Number(n)) => {
            let f = exact_float(n).ok_or_else(misfit)?;
            if type_name == "real" && f64::from(f as f32) != f {
                return Err(misfit());
            }
            out.extend_from_slice(n.as_bytes());
        }
        (Kind::Numeric, Raw::Number(n)) if fits_scale(type_name, n) => {
            out.extend_from_slice(n.as_bytes());
        }
        // Exact decimals often travel as text (a SQLite TEXT column keeps
        // every digit); text that is a plain decimal number goes in as is.
        (Kind::Numeric, Raw::Str(s)) if is_decimal_text(s) && fits_scale(type_name, s) => {
            out.extend_from_slice(s.as_bytes());
        }
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
                &Raw::Str("1".into())
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
        let ts = |s: &str| Raw::Str(s.to_string().into());
        let tz = "timestamp without time zone";
        assert!(copy_value(&mut out, Kind::Other, tz, &ts("2026-11-01T09:00:00+02:00")).is_err());
        assert!(copy_value(&mut out, Kind::Other, tz, &ts("2026-11-01 09:00:00")).is_ok());
    }
}
