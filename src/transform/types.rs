//! What the steps do to types: casts checked against the wire forms, the
//! begin line's schema after the steps, and the steps retyped for a
//! stream's schema (filters compare dates and instants as such).

use serde_json::{Number, Value};

use super::Step;
use crate::format::infer;
use crate::format::logical::{
    check_date, check_decimal, check_time, check_timestamp, check_timestamptz, check_uuid,
    decode_bytes,
};
use crate::format::typing::exact_float;
use crate::record::{FieldType, Schema};

/// Casts a value exactly, or says why it cannot be.
pub(crate) fn cast(value: &Value, to: FieldType) -> Result<Value, String> {
    let fail = || format!("{value} cannot be cast to {} exactly", to.name());
    Ok(match (to, value) {
        (_, Value::Null) => Value::Null,
        (FieldType::Text, Value::String(_)) => value.clone(),
        (FieldType::Text, Value::Number(n)) => Value::String(n.to_string()),
        (FieldType::Text, Value::Bool(b)) => Value::String(b.to_string()),
        (FieldType::Text | FieldType::Json, other) => {
            if to == FieldType::Json {
                other.clone()
            } else {
                Value::String(other.to_string())
            }
        }
        (FieldType::Integer, Value::Number(n)) if infer::is_integer(&n.to_string()) => {
            value.clone()
        }
        (FieldType::Integer, Value::Number(n)) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => return Err(fail()),
        },
        (FieldType::Integer, Value::String(s)) if infer::is_integer(s.trim()) => {
            serde_json::from_str(s.trim()).map_err(|_| fail())?
        }
        (FieldType::Float, Value::Number(n)) => {
            exact_float(&n.to_string()).ok_or_else(fail)?;
            value.clone()
        }
        (FieldType::Float, Value::String(s)) => {
            let t = s.trim();
            if !(infer::is_integer(t) || infer::is_exact_decimal(t)) {
                return Err(fail());
            }
            Value::Number(t.parse::<Number>().map_err(|_| fail())?)
        }
        (FieldType::Boolean, Value::Bool(_)) => value.clone(),
        (FieldType::Boolean, Value::String(s)) => {
            Value::Bool(infer::parse_bool(s.trim()).ok_or_else(fail)?)
        }
        // A decimal is a JSON number, digit for digit: a number as written,
        // or text written as one, that fits the declared digits.
        (FieldType::Decimal(declared), Value::Number(n)) => {
            check_decimal(n.as_str(), declared).map_err(|why| format!("{value} {why}"))?;
            value.clone()
        }
        (FieldType::Decimal(declared), Value::String(s)) => {
            let t = s.trim();
            check_decimal(t, declared).map_err(|why| format!("{value} {why}"))?;
            Value::Number(t.parse::<Number>().map_err(|_| fail())?)
        }
        // The other logical types are text in their wire form, checked as
        // the CSV reader checks them, never rewritten.
        (_, Value::String(s)) => {
            check_logical(to, s).map_err(|why| format!("{value} {why}"))?;
            value.clone()
        }
        _ => return Err(fail()),
    })
}

/// Checks text against the wire form of a logical type other than decimal
/// (date, time, timestamp, timestamptz, uuid, bytes).
pub(crate) fn check_logical(to: FieldType, s: &str) -> Result<(), String> {
    match to {
        FieldType::Date => check_date(s),
        FieldType::Time => check_time(s),
        FieldType::Timestamp => check_timestamp(s),
        FieldType::TimestampTz => check_timestamptz(s),
        FieldType::Uuid => check_uuid(s),
        FieldType::Bytes => decode_bytes(s).map(drop),
        other => Err(format!("cannot be cast to {} exactly", other.name())),
    }
}

/// The begin line's schema after the steps. A derived field has the type
/// of what its expression computes where that is known (see
/// [`super::Expr::result_type`]); else it is left out.
pub(crate) fn follow_schema(steps: &[Step], mut schema: Schema) -> Schema {
    for step in steps {
        follow_step(step, &mut schema);
    }
    schema
}

/// The type a schema gives a field.
fn type_in(schema: &Schema, name: &str) -> Option<FieldType> {
    schema.iter().find(|(n, _)| n == name).map(|(_, t)| *t)
}

/// [`follow_schema`] for one step.
fn follow_step(step: &Step, schema: &mut Schema) {
    match step {
        Step::Select(fields) => {
            *schema = fields
                .iter()
                .filter_map(|f| schema.iter().find(|(n, _)| n == f).cloned())
                .collect();
        }
        Step::Drop(fields) => schema.retain(|(n, _)| !fields.contains(n)),
        Step::Rename(pairs) => {
            for (old, new) in pairs {
                for (n, _) in schema.iter_mut().filter(|(n, _)| n == old) {
                    *n = new.clone();
                }
            }
        }
        Step::Derive(name, e) => {
            match e.result_type(&|n| type_in(schema, n)) {
                Some(t) => match schema.iter_mut().find(|(n, _)| n == name) {
                    Some((_, slot)) => *slot = t,
                    // A new field goes last, in the records too.
                    None => schema.push((name.clone(), t)),
                },
                None => schema.retain(|(n, _)| n != name),
            }
        }
        Step::Cast(pairs) => {
            // Every value of a cast field has the type (or is null): a
            // field the schema did not name joins it.
            for (col, t) in pairs {
                match schema.iter_mut().find(|(n, _)| n == col) {
                    Some((_, ty)) => *ty = *t,
                    None => schema.push((col.clone(), *t)),
                }
            }
        }
        Step::Filter(_) => {}
    }
}

/// The steps for a stream with this schema: filters and derives compare
/// the fields it types as dates and times as such (see
/// [`super::Expr::with_types`]); the same steps when it types none.
pub(crate) fn typed_steps(steps: &[Step], mut schema: Schema) -> Vec<Step> {
    let mut typed = Vec::with_capacity(steps.len());
    for step in steps {
        let type_of = |n: &str| type_in(&schema, n);
        typed.push(match step {
            Step::Filter(e) => Step::Filter(e.with_types(&type_of)),
            Step::Derive(name, e) => Step::Derive(name.clone(), e.with_types(&type_of)),
            other => other.clone(),
        });
        follow_step(step, &mut schema);
    }
    typed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::expr;
    use serde_json::json;

    #[test]
    fn casts_are_exact_or_rejected() {
        assert_eq!(cast(&json!("42"), FieldType::Integer).unwrap(), json!(42));
        assert!(cast(&json!("4.2"), FieldType::Integer).is_err());
        assert_eq!(cast(&json!(5), FieldType::Text).unwrap(), json!("5"));
        assert_eq!(
            cast(&json!("TRUE"), FieldType::Boolean).unwrap(),
            json!(true)
        );
        assert!(cast(&json!("yes"), FieldType::Boolean).is_err());
        assert!(cast(&json!("0.12345678901234567890"), FieldType::Float).is_err());
        assert_eq!(cast(&json!(null), FieldType::Integer).unwrap(), json!(null));
    }

    #[test]
    fn casts_check_logical_types() {
        assert_eq!(
            cast(&json!("12.50"), FieldType::Decimal(Some((12, 2))))
                .unwrap()
                .to_string(),
            "12.50"
        );
        let err = cast(&json!(12.505), FieldType::Decimal(Some((12, 2)))).unwrap_err();
        assert!(err.contains("3 digits after the point"), "{err}");
        assert!(cast(&json!("1,5"), FieldType::Decimal(None)).is_err());
        assert_eq!(
            cast(&json!("2024-02-29"), FieldType::Date).unwrap(),
            json!("2024-02-29")
        );
        let err = cast(&json!("2023-02-29"), FieldType::Date).unwrap_err();
        assert_eq!(err, r#""2023-02-29" has no day 29 in 2023-02"#);
        assert!(cast(&json!(20240229), FieldType::Date).is_err());
        assert!(cast(&json!("2024-01-02T03:04:05"), FieldType::TimestampTz).is_err());
        assert!(cast(&json!("2024-01-02T03:04:05Z"), FieldType::TimestampTz).is_ok());
        assert!(cast(&json!("13:04:05"), FieldType::Time).is_ok());
        assert!(cast(&json!("3q2+7w=="), FieldType::Bytes).is_ok());
        assert!(cast(&json!("\\xdead"), FieldType::Bytes).is_err());
        assert!(cast(&json!("a0eebc999c0b4ef8bb6d6bb9bd380a11"), FieldType::Uuid).is_err());
        assert_eq!(cast(&json!(null), FieldType::Uuid).unwrap(), json!(null));
    }

    #[test]
    fn derived_and_cast_fields_keep_their_types() {
        let steps = vec![
            Step::Derive("copy".into(), expr::parse("ts").unwrap()),
            Step::Derive("half".into(), expr::parse("n / 2").unwrap()),
            Step::Derive("n".into(), expr::parse("n + 1").unwrap()),
            Step::Cast(vec![("late".into(), FieldType::Date)]),
        ];
        let schema = vec![
            ("n".into(), FieldType::Integer),
            ("ts".into(), FieldType::TimestampTz),
        ];
        assert_eq!(
            follow_schema(&steps, schema),
            vec![
                ("n".into(), FieldType::Integer),
                ("ts".into(), FieldType::TimestampTz),
                ("copy".into(), FieldType::TimestampTz),
                ("late".into(), FieldType::Date),
            ]
        );
    }

    #[test]
    fn schema_follows_the_steps() {
        let steps = vec![
            Step::Rename(vec![("a".into(), "x".into())]),
            Step::Cast(vec![("b".into(), FieldType::Text)]),
            Step::Drop(vec!["c".into()]),
        ];
        let schema = vec![
            ("a".into(), FieldType::Integer),
            ("b".into(), FieldType::Integer),
            ("c".into(), FieldType::Float),
        ];
        assert_eq!(
            follow_schema(&steps, schema),
            vec![
                ("x".into(), FieldType::Integer),
                ("b".into(), FieldType::Text)
            ]
        );
    }
}
