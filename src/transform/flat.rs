//! The fast path for row-wise steps: records stay borrowed fields (see
//! `format::flat`) and only the fields an expression or a cast reads become
//! JSON values. Used when no step needs whole records (--dedup, --sql,
//! --validate).

use std::borrow::Cow;

use serde_json::Value;

use super::{Step, cast, expr};
use crate::format::flat::{Fields, Raw};
use crate::format::json;

/// A field's value as JSON, or why it cannot be read (e.g. nested deeper
/// than serde_json goes): never null in its place, which a filter would
/// take for a missing value.
fn value_of(name: &str, raw: &Raw<'_>) -> anyhow::Result<Value> {
    Ok(match raw {
        Raw::Null => Value::Null,
        Raw::Bool(b) => Value::Bool(*b),
        Raw::Number(n) => Value::Number(
            n.parse::<serde_json::Number>()
                .map_err(|e| anyhow::anyhow!("field {name:?} cannot be evaluated: {e}"))?,
        ),
        Raw::Str(s) => Value::String(s.to_string()),
        Raw::Nested(j) => serde_json::from_str(j)
            .map_err(|e| anyhow::anyhow!("field {name:?} cannot be evaluated: {e}"))?,
    })
}

/// The value of field `name` (null when missing) for an expression.
fn field_value(fields: &Fields<'_>, name: &str) -> anyhow::Result<Value> {
    get(fields, name).map_or(Ok(Value::Null), |raw| value_of(name, raw))
}

/// A JSON value as a field.
pub(crate) fn raw_of(value: Value) -> Raw<'static> {
    match value {
        Value::Null => Raw::Null,
        Value::Bool(b) => Raw::Bool(b),
        Value::Number(n) => Raw::Number(Cow::Owned(n.to_string())),
        Value::String(s) => Raw::Str(Cow::Owned(s)),
        other => Raw::Nested(Cow::Owned(other.to_string())),
    }
}

fn get<'f>(fields: &'f Fields<'_>, name: &str) -> Option<&'f Raw<'f>> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// Applies the steps: `Ok(None)` when a filter drops the record,
/// `Err(reason)` when it must be rejected.
pub fn apply<'a>(steps: &[Step], mut fields: Fields<'a>) -> Result<Option<Fields<'a>>, String> {
    Ok(apply_in_place(steps, &mut fields)?.then_some(fields))
}

/// Applies the steps to `fields` where they are: `Ok(false)` when a filter
/// drops the record, `Err(reason)` when it must be rejected.
pub fn apply_in_place(steps: &[Step], fields: &mut Fields<'_>) -> Result<bool, String> {
    for step in steps {
        match step {
            Step::Select(names) => {
                // In place: each named field moves to the front, in order.
                let mut kept = 0;
                for name in names {
                    if let Some(i) = fields[kept..].iter().position(|(n, _)| n == name) {
                        fields.swap(kept, kept + i);
                        kept += 1;
                    }
                }
                fields.truncate(kept);
            }
            Step::Drop(names) => fields.retain(|(n, _)| !names.iter().any(|d| d == n)),
            Step::Rename(pairs) => {
                for (old, new) in pairs {
                    for (n, _) in fields.iter_mut().filter(|(n, _)| n == old) {
                        *n = Cow::Owned(new.clone());
                    }
                }
            }
            Step::Filter(e) => {
                let v = e
                    .eval_with(&|name| field_value(fields, name))
                    .map_err(|e| format!("--filter: {e}"))?;
                if !expr::is_true(&v) {
                    return Ok(false);
                }
            }
            Step::Derive(name, e) => {
                let v = e
                    .eval_with(&|n| field_value(fields, n))
                    .map_err(|e| format!("--derive {name}: {e}"))?;
                let raw = raw_of(v);
                match fields.iter_mut().find(|(n, _)| n == name) {
                    Some((_, slot)) => *slot = raw,
                    None => fields.push((Cow::Owned(name.clone()), raw)),
                }
            }
            Step::Cast(pairs) => {
                for (col, t) in pairs {
                    if let Some((_, slot)) = fields.iter_mut().find(|(n, _)| n == col) {
                        let cast = value_of(col, slot)
                            .map_err(|e| e.to_string())
                            .and_then(|v| cast(&v, *t))
                            .map_err(|e| format!("--cast {col}: {e}"))?;
                        *slot = raw_of(cast);
                    }
                }
            }
        }
    }
    if fields
        .first()
        .is_some_and(|(n, _)| n == crate::wire::CONTROL_KEY)
    {
        return Err(crate::wire::CONTROL_KEY_FIRST.into());
    }
    Ok(true)
}

/// Writes fields as one JSON object (no newline).
pub fn write(out: &mut Vec<u8>, fields: &Fields<'_>) {
    out.push(b'{');
    for (i, (name, raw)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_str(out, name);
        out.push(b':');
        match raw {
            Raw::Null => out.extend_from_slice(b"null"),
            Raw::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Raw::Number(n) | Raw::Nested(n) => out.extend_from_slice(n.as_bytes()),
            Raw::Str(s) => json::write_str(out, s),
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::flat::parse_object;

    #[test]
    fn same_results_as_the_record_path() {
        let steps = vec![
            Step::Derive("total".into(), expr::parse("qty * 2").unwrap()),
            Step::Rename(vec![("qty".into(), "n".into())]),
            Step::Filter(expr::parse("n > 1").unwrap()),
            Step::Cast(vec![("id".into(), crate::record::FieldType::Text)]),
            Step::Select(vec!["id".into(), "total".into(), "n".into(), "s".into()]),
        ];
        let line = br#"{"id":12345678901234567890,"qty":3,"s":"a\"b"}"#;
        let fields = parse_object(line).unwrap();
        let out = apply(&steps, fields).unwrap().unwrap();
        let mut text = Vec::new();
        write(&mut text, &out);
        assert_eq!(
            String::from_utf8(text).unwrap(),
            r#"{"id":"12345678901234567890","total":6,"n":3,"s":"a\"b"}"#
        );
        let dropped = apply(&steps, parse_object(br#"{"id":1,"qty":1}"#).unwrap()).unwrap();
        assert!(dropped.is_none());
    }
}
