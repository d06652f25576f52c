//! Fitting record values into typed columns without losing anything.
//!
//! Typing is conservative: a value goes into a column only when the column
//! can hold it exactly. Anything else is a reject with a reason, never a
//! silent conversion (no `"n/a"` becoming 0, no 2^53+1 becoming a float).

use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};

use crate::format::flat::{Fields, Raw};
use crate::record::{FieldType, Schema};
use crate::sqlite::ColumnKind;

/// The wire type a new column gets from one value (`None` for null).
pub fn type_of_value(value: &Raw<'_>) -> Option<FieldType> {
    Some(match value {
        Raw::Null => return None,
        Raw::Bool(_) => FieldType::Boolean,
        Raw::Number(n) if is_integer_text(n) => {
            if n.parse::<i64>().is_ok() {
                FieldType::Integer
            } else {
                FieldType::Text
            }
        }
        Raw::Number(n) => {
            if exact_float(n).is_some() {
                FieldType::Float
            } else {
                FieldType::Text
            }
        }
        Raw::Str(_) => FieldType::Text,
        Raw::Nested(_) => FieldType::Json,
    })
}

/// Columns for a new or growing table, in order: the producer's declared
/// schema first (its types win), then fields as they first appear in the
/// sample, each typed by the widest of its values (text when all null).
pub fn column_types(schema: &Schema, sample: &[&Fields<'_>]) -> Vec<(String, FieldType)> {
    let mut wanted: Vec<(String, Option<FieldType>)> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (name, t) in schema {
        index.insert(name.to_lowercase(), wanted.len());
        wanted.push((name.clone(), Some(*t)));
    }
    let declared = wanted.len();
    for fields in sample {
        for (name, value) in fields.iter() {
            let i = *index.entry(name.to_lowercase()).or_insert_with(|| {
                wanted.push((name.to_string(), None));
                wanted.len() - 1
            });
            if i >= declared
                && let Some(t) = type_of_value(value)
            {
                wanted[i].1 = Some(wanted[i].1.map_or(t, |old| widen(old, t)));
            }
        }
    }
    wanted
        .into_iter()
        .map(|(n, t)| (n, t.unwrap_or(FieldType::Text)))
        .collect()
}

/// The narrowest column type that holds values of both types exactly.
pub fn widen(a: FieldType, b: FieldType) -> FieldType {
    use FieldType::*;
    match (a, b) {
        _ if a == b => a,
        (Json, _) | (_, Json) => Json,
        (Integer, Float) | (Float, Integer) => Float,
        _ => Text,
    }
}

fn is_integer_text(n: &str) -> bool {
    !n.contains(['.', 'e', 'E'])
}

/// Is `text` a number written the way JSON writes one (`-12`, `1.00`,
/// `2.5e3`)? Text of this shape going into a numeric column is read as that
/// number, in every store; anything else (`007`, `+1`, `.5`, ` 1`, `NaN`)
/// stays text, which a numeric column rejects.
pub fn is_number_text(text: &str) -> bool {
    let b = text.strip_prefix('-').unwrap_or(text).as_bytes();
    let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
    let int = digits(b);
    if int == 0 || (int > 1 && b[0] == b'0') {
        return false;
    }
    let mut rest = &b[int..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = digits(frac);
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    if let Some(exp) = rest.strip_prefix(b"e").or_else(|| rest.strip_prefix(b"E")) {
        let exp = exp
            .strip_prefix(b"+")
            .or_else(|| exp.strip_prefix(b"-"))
            .unwrap_or(exp);
        let n = digits(exp);
        if n == 0 {
            return false;
        }
        rest = &exp[n..];
    }
    rest.is_empty()
}

/// A JSON number as an f64, when the f64 holds the written decimal exactly
/// (to its significant digits); integers only up to 2^53. A number too
/// large (infinity), too small (it would become 0) or so small that the f64
/// keeps fewer digits than were written (a subnormal) has no exact f64.
pub fn exact_float(text: &str) -> Option<f64> {
    if is_integer_text(text) {
        let i: i64 = text.parse().ok()?;
        return (i.unsigned_abs() <= 1 << 53).then_some(i as f64);
    }
    let f: f64 = text.parse().ok()?;
    if !f.is_finite() {
        return None;
    }
    let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0');
    if significant.is_empty() {
        return Some(f);
    }
    if f == 0.0 {
        return None;
    }
    if significant.len() > 17 {
        return None;
    }
    if f.abs() < f64::MIN_POSITIVE {
        // A subnormal holds fewer than 15 digits: it is exact only when the
        // shortest text that reads back as it has the written digits.
        let shortest = format!("{:e}", f.abs());
        let back: String = shortest
            .split('e')
            .next()
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        return (back == significant).then_some(f);
    }
    if significant.len() <= 15 {
        return Some(f);
    }
    let formatted = format!("{:.*e}", significant.len() - 1, f.abs());
    let back: String = formatted
        .split('e')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    (back.trim_end_matches('0') == significant).then_some(f)
}

/// Would SQLite turn this text into a number in a NUMERIC column?
fn looks_numeric(text: &str) -> bool {
    let t = text.trim();
    !t.is_empty()
        && t.parse::<f64>().is_ok()
        && !t.eq_ignore_ascii_case("nan")
        && !t.to_ascii_lowercase().contains("inf")
}

fn text(s: &str) -> ToSqlOutput<'_> {
    ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
}

/// A number (JSON number, or text written as one) for a numeric column of
/// `kind`, when the column holds it exactly.
fn number_value(n: &str, kind: ColumnKind) -> Option<SqlValue> {
    let integer = || {
        is_integer_text(n)
            .then(|| n.parse::<i64>().ok())
            .flatten()
            .map(SqlValue::Integer)
    };
    match kind {
        ColumnKind::Typed(FieldType::Integer) => integer(),
        ColumnKind::Typed(FieldType::Float) => exact_float(n).map(SqlValue::Real),
        ColumnKind::Numeric | ColumnKind::Any => {
            integer().or_else(|| exact_float(n).map(SqlValue::Real))
        }
        ColumnKind::Typed(_) => None,
    }
}

/// Converts `value` for a column of `kind`, or says why it does not fit.
pub fn to_sql<'a>(value: &'a Raw<'a>, kind: ColumnKind) -> Result<ToSqlOutput<'a>, String> {
    let misfit = || {
        format!(
            "{} does not fit a {} column",
            value.describe(),
            kind.describe()
        )
    };
    let owned = |v: SqlValue| Ok(ToSqlOutput::Owned(v));
    match (kind, value) {
        (_, Raw::Null) => owned(SqlValue::Null),
        (ColumnKind::Typed(FieldType::Integer | FieldType::Float), Raw::Number(n)) => {
            number_value(n, kind).map_or_else(|| Err(misfit()), owned)
        }
        // Numbers often travel as text ("1.00" from a JSON API): text
        // written as a number goes into a numeric column when it fits
        // exactly, the same rule as for the number itself.
        (
            ColumnKind::Typed(FieldType::Integer | FieldType::Float) | ColumnKind::Numeric,
            Raw::Str(s),
        ) if is_number_text(s) => number_value(s, kind).map_or_else(|| Err(misfit()), owned),
        (ColumnKind::Typed(FieldType::Boolean), Raw::Bool(b)) => {
            owned(SqlValue::Integer(i64::from(*b)))
        }
        (ColumnKind::Typed(FieldType::Text), Raw::Str(s)) => Ok(text(s)),
        (ColumnKind::Typed(FieldType::Text), Raw::Number(n) | Raw::Nested(n)) => Ok(text(n)),
        (ColumnKind::Typed(FieldType::Text), Raw::Bool(b)) => {
            Ok(text(if *b { "true" } else { "false" }))
        }
        (ColumnKind::Typed(FieldType::Json), Raw::Nested(j) | Raw::Number(j)) => Ok(text(j)),
        (ColumnKind::Typed(FieldType::Json), _) => owned(SqlValue::Text(value.to_json())),
        (ColumnKind::Numeric | ColumnKind::Any, Raw::Number(n)) => match number_value(n, kind) {
            Some(v) => owned(v),
            None if kind == ColumnKind::Any => Ok(text(n)),
            None => Err(misfit()),
        },
        (ColumnKind::Numeric, Raw::Str(s)) if looks_numeric(s) => Err(format!(
            "{} would be turned into a number by a NUMERIC column",
            value.describe()
        )),
        (ColumnKind::Numeric | ColumnKind::Any, Raw::Str(s) | Raw::Nested(s)) => Ok(text(s)),
        (ColumnKind::Numeric | ColumnKind::Any, Raw::Bool(b)) => {
            owned(SqlValue::Integer(i64::from(*b)))
        }
        _ => Err(misfit()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> Raw<'_> {
        Raw::Number(s.into())
    }

    fn fits(value: &Raw<'_>, t: FieldType) -> bool {
        to_sql(value, ColumnKind::Typed(t)).is_ok()
    }

    #[test]
    fn integers_stay_exact() {
        assert!(fits(&num("9007199254740993"), FieldType::Integer));
        assert!(!fits(&num("9007199254740993"), FieldType::Float));
        assert!(!fits(&num("1.5"), FieldType::Integer));
        assert!(fits(&Raw::Str("42".into()), FieldType::Integer));
        assert!(!fits(&Raw::Str("42x".into()), FieldType::Integer));
        assert!(!fits(&Raw::Bool(true), FieldType::Integer));
        let huge = num("123456789012345678901234567890");
        assert!(!fits(&huge, FieldType::Integer));
        assert_eq!(type_of_value(&huge), Some(FieldType::Text));
        assert!(fits(&huge, FieldType::Text));
    }

    #[test]
    fn floats_must_round_trip() {
        assert!(fits(&num("3.141592653589793"), FieldType::Float));
        assert!(!fits(&num("0.12345678901234567890"), FieldType::Float));
        assert!(fits(&num("12"), FieldType::Float));
        assert!(fits(&num("12.50"), FieldType::Float));
        assert!(fits(&num("1e300"), FieldType::Float));
        assert!(!fits(&num("1e999"), FieldType::Float));
    }

    #[test]
    fn numeric_columns_refuse_text_they_would_convert() {
        assert!(to_sql(&Raw::Str("00501".into()), ColumnKind::Numeric).is_err());
        assert!(to_sql(&Raw::Str("2026-11-01".into()), ColumnKind::Numeric).is_ok());
    }

    #[test]
    fn number_text_converts_only_when_exact() {
        let text = |s: &'static str| Raw::Str(s.into());
        assert!(fits(&text("1.00"), FieldType::Float));
        assert!(fits(&text("12"), FieldType::Integer));
        assert!(fits(&text("-2.5e3"), FieldType::Float));
        assert!(!fits(&text("1.5"), FieldType::Integer));
        assert!(!fits(&text("abc"), FieldType::Float));
        assert!(!fits(&text("1e-400"), FieldType::Float));
        assert!(!fits(&text("007"), FieldType::Integer));
        assert!(to_sql(&text("1.50"), ColumnKind::Numeric).is_ok());
        assert!(matches!(
            to_sql(&text("12"), ColumnKind::Any),
            Ok(ToSqlOutput::Borrowed(ValueRef::Text(_)))
        ));
        for good in ["0", "-0", "12", "1.00", "0.5", "1e5", "1E+5", "-2.5e-3"] {
            assert!(is_number_text(good), "{good}");
        }
        for bad in [
            "", "-", "007", "+1", ".5", "1.", "1e", "1e+", " 1", "1 ", "NaN", "0x1",
        ] {
            assert!(!is_number_text(bad), "{bad}");
        }
    }

    #[test]
    fn underflow_and_lost_digits_are_not_exact() {
        assert_eq!(exact_float("1e-400"), None);
        assert_eq!(exact_float("1e400"), None);
        assert_eq!(exact_float("1.2345678901234e-315"), None);
        assert_eq!(exact_float("4.9e-324"), None);
        assert_eq!(exact_float("5e-324"), Some(5e-324));
        assert_eq!(exact_float("1.5e-310"), Some(1.5e-310));
        assert_eq!(exact_float("0e-400"), Some(0.0));
        assert_eq!(
            exact_float("2.2250738585072014e-308"),
            Some(f64::MIN_POSITIVE)
        );
    }

    #[test]
    fn messages_name_kind_and_value() {
        let err = to_sql(
            &Raw::Str("n/a".into()),
            ColumnKind::Typed(FieldType::Integer),
        )
        .unwrap_err();
        assert_eq!(err, "text value \"n/a\" does not fit a INTEGER column");
    }

    #[test]
    fn widening() {
        assert_eq!(
            widen(FieldType::Integer, FieldType::Float),
            FieldType::Float
        );
        assert_eq!(widen(FieldType::Integer, FieldType::Text), FieldType::Text);
        assert_eq!(widen(FieldType::Text, FieldType::Json), FieldType::Json);
        assert_eq!(
            widen(FieldType::Boolean, FieldType::Integer),
            FieldType::Text
        );
    }
}
