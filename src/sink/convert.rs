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

/// A JSON number as an f64, when the f64 holds the written decimal exactly
/// (to its significant digits); integers only up to 2^53.
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
    if significant.len() > 17 {
        return None;
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
        (ColumnKind::Typed(FieldType::Integer), Raw::Number(n)) if is_integer_text(n) => n
            .parse::<i64>()
            .map(|i| owned(SqlValue::Integer(i)))
            .unwrap_or_else(|_| Err(misfit())),
        (ColumnKind::Typed(FieldType::Float), Raw::Number(n)) => exact_float(n)
            .map(|f| owned(SqlValue::Real(f)))
            .unwrap_or_else(|| Err(misfit())),
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
        (ColumnKind::Numeric | ColumnKind::Any, Raw::Number(n)) => {
            if let (true, Ok(i)) = (is_integer_text(n), n.parse::<i64>()) {
                owned(SqlValue::Integer(i))
            } else if let Some(f) = exact_float(n) {
                owned(SqlValue::Real(f))
            } else if kind == ColumnKind::Any {
                Ok(text(n))
            } else {
                Err(misfit())
            }
        }
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
        assert!(!fits(&Raw::Str("42".into()), FieldType::Integer));
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
