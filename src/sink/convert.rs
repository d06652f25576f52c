//! Fitting JSON values into typed columns without losing anything.
//!
//! Typing is conservative: a value goes into a column only when the column
//! can hold it exactly. Anything else is a reject with a reason, never a
//! silent conversion (no `"n/a"` becoming 0, no 2^53+1 becoming a float).

use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use serde_json::{Number, Value};

use crate::record::{FieldType, describe_kind, preview};
use crate::sqlite::ColumnKind;

/// The wire type a new column gets from one value (`None` for null).
pub fn type_of_value(value: &Value) -> Option<FieldType> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(_) => FieldType::Boolean,
        Value::Number(n) if number_is_integer(n) => {
            if n.as_i64().is_some() {
                FieldType::Integer
            } else {
                FieldType::Text
            }
        }
        Value::Number(n) => {
            if float_of(n).is_some() {
                FieldType::Float
            } else {
                FieldType::Text
            }
        }
        Value::String(_) => FieldType::Text,
        Value::Array(_) | Value::Object(_) => FieldType::Json,
    })
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

fn number_is_integer(n: &Number) -> bool {
    !n.to_string().contains(['.', 'e', 'E'])
}

/// The number as an f64, when the f64 holds the written decimal exactly
/// (to its significant digits).
pub fn float_of(n: &Number) -> Option<f64> {
    if let Some(i) = n.as_i64() {
        return (i.unsigned_abs() <= 1 << 53).then_some(i as f64);
    }
    let text = n.to_string();
    let f: f64 = text.parse().ok()?;
    if !f.is_finite() {
        return None;
    }
    let mantissa = text.split(['e', 'E']).next().unwrap_or(&text);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0');
    if significant.is_empty() {
        return Some(f);
    }
    if significant.len() > 17 {
        return None;
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

/// Converts `value` for a column of `kind`, or says why it does not fit.
pub fn to_sql<'a>(value: &'a Value, kind: ColumnKind) -> Result<ToSqlOutput<'a>, String> {
    let misfit = || {
        format!(
            "{} value {} does not fit a {} column",
            describe_kind(value),
            preview(value),
            kind.describe()
        )
    };
    let owned = |v: SqlValue| Ok(ToSqlOutput::Owned(v));
    let text = |s: &'a str| Ok(ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())));
    match (kind, value) {
        (_, Value::Null) => owned(SqlValue::Null),
        (ColumnKind::Typed(FieldType::Integer), Value::Number(n)) if number_is_integer(n) => n
            .as_i64()
            .map(|i| owned(SqlValue::Integer(i)))
            .unwrap_or_else(|| Err(misfit())),
        (ColumnKind::Typed(FieldType::Float), Value::Number(n)) => float_of(n)
            .map(|f| owned(SqlValue::Real(f)))
            .unwrap_or_else(|| Err(misfit())),
        (ColumnKind::Typed(FieldType::Boolean), Value::Bool(b)) => {
            owned(SqlValue::Integer(i64::from(*b)))
        }
        (ColumnKind::Typed(FieldType::Text), Value::String(s)) => text(s),
        (ColumnKind::Typed(FieldType::Text), Value::Number(n)) => {
            owned(SqlValue::Text(n.to_string()))
        }
        (ColumnKind::Typed(FieldType::Text), Value::Bool(b)) => {
            owned(SqlValue::Text(b.to_string()))
        }
        (ColumnKind::Typed(FieldType::Text | FieldType::Json), _) => {
            owned(SqlValue::Text(value.to_string()))
        }
        (ColumnKind::Numeric | ColumnKind::Any, Value::Number(n)) => {
            if let (true, Some(i)) = (number_is_integer(n), n.as_i64()) {
                owned(SqlValue::Integer(i))
            } else if let Some(f) = float_of(n) {
                owned(SqlValue::Real(f))
            } else if kind == ColumnKind::Any {
                owned(SqlValue::Text(n.to_string()))
            } else {
                Err(misfit())
            }
        }
        (ColumnKind::Numeric, Value::String(s)) if looks_numeric(s) => Err(format!(
            "text {} would be turned into a number by a NUMERIC column",
            preview(value)
        )),
        (ColumnKind::Numeric | ColumnKind::Any, Value::String(s)) => text(s),
        (ColumnKind::Numeric | ColumnKind::Any, Value::Bool(b)) => {
            owned(SqlValue::Integer(i64::from(*b)))
        }
        (ColumnKind::Numeric | ColumnKind::Any, _) => owned(SqlValue::Text(value.to_string())),
        _ => Err(misfit()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fits(value: Value, t: FieldType) -> bool {
        to_sql(&value, ColumnKind::Typed(t)).is_ok()
    }

    #[test]
    fn integers_stay_exact() {
        assert!(fits(json!(9007199254740993_i64), FieldType::Integer));
        assert!(!fits(json!(9007199254740993_i64), FieldType::Float));
        assert!(!fits(json!(1.5), FieldType::Integer));
        assert!(!fits(json!("42"), FieldType::Integer));
        assert!(!fits(json!(true), FieldType::Integer));
        let huge: Value = serde_json::from_str("123456789012345678901234567890").expect("json");
        assert!(!fits(huge.clone(), FieldType::Integer));
        assert_eq!(type_of_value(&huge), Some(FieldType::Text));
        assert!(fits(huge, FieldType::Text));
    }

    #[test]
    fn floats_must_round_trip() {
        let exact: Value = serde_json::from_str("3.141592653589793").expect("json");
        assert!(fits(exact, FieldType::Float));
        let too_long: Value = serde_json::from_str("0.12345678901234567890").expect("json");
        assert!(!fits(too_long, FieldType::Float));
        assert!(fits(json!(12), FieldType::Float));
        let cents: Value = serde_json::from_str("12.50").expect("json");
        assert!(fits(cents, FieldType::Float));
    }

    #[test]
    fn numeric_columns_refuse_text_they_would_convert() {
        assert!(to_sql(&json!("00501"), ColumnKind::Numeric).is_err());
        assert!(to_sql(&json!("2026-11-01"), ColumnKind::Numeric).is_ok());
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
