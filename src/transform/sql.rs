//! `--sql`: a SELECT over all records of a stream (as the table `input`)
//! and any `--with NAME=FILE` lookup files, run by polars SQL. This holds
//! the stream's records in memory, as sorting, grouping and joining must.
//!
//! Column types: a column of 64-bit integers stays integer, numbers become
//! floats, true/false booleans, everything else text (nested values as JSON
//! text). Integers beyond 64 bits stay text, digit for digit.

use anyhow::{Context, Result, anyhow};
use polars::prelude::*;
use polars::sql::SQLContext;
use serde_json::{Map, Number, Value};

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Int,
    Float,
    Bool,
    Text,
}

fn kind_of(v: &Value) -> Option<Kind> {
    match v {
        Value::Null => None,
        Value::Bool(_) => Some(Kind::Bool),
        Value::Number(n) if !n.to_string().contains(['.', 'e', 'E']) && n.as_i64().is_some() => {
            Some(Kind::Int)
        }
        Value::Number(n) if !n.to_string().contains(['.', 'e', 'E']) => Some(Kind::Text),
        Value::Number(_) => Some(Kind::Float),
        _ => Some(Kind::Text),
    }
}

fn widen(a: Kind, b: Kind) -> Kind {
    match (a, b) {
        _ if a == b => a,
        (Kind::Int, Kind::Float) | (Kind::Float, Kind::Int) => Kind::Float,
        _ => Kind::Text,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Builds a DataFrame from records (columns in first-seen order).
pub fn frame(records: &[Map<String, Value>]) -> Result<DataFrame> {
    let mut names: Vec<String> = Vec::new();
    let mut kinds: Vec<Option<Kind>> = Vec::new();
    for r in records {
        for (k, v) in r {
            let i = match names.iter().position(|n| n == k) {
                Some(i) => i,
                None => {
                    names.push(k.clone());
                    kinds.push(None);
                    names.len() - 1
                }
            };
            if let Some(kind) = kind_of(v) {
                kinds[i] = Some(kinds[i].map_or(kind, |old| widen(old, kind)));
            }
        }
    }
    let mut columns = Vec::with_capacity(names.len());
    for (name, kind) in names.iter().zip(kinds) {
        let values = records.iter().map(|r| r.get(name).filter(|v| !v.is_null()));
        let column = match kind.unwrap_or(Kind::Text) {
            Kind::Int => Column::new(
                name.as_str().into(),
                values
                    .map(|v| v.and_then(Value::as_i64))
                    .collect::<Vec<_>>(),
            ),
            Kind::Float => Column::new(
                name.as_str().into(),
                values
                    .map(|v| v.and_then(Value::as_f64))
                    .collect::<Vec<_>>(),
            ),
            Kind::Bool => Column::new(
                name.as_str().into(),
                values
                    .map(|v| v.and_then(Value::as_bool))
                    .collect::<Vec<_>>(),
            ),
            Kind::Text => Column::new(
                name.as_str().into(),
                values.map(|v| v.map(text)).collect::<Vec<_>>(),
            ),
        };
        columns.push(column);
    }
    DataFrame::new(records.len(), columns).map_err(|e| anyhow!("cannot build the table: {e}"))
}

fn json_value(v: AnyValue<'_>) -> Value {
    let float = |f: f64| Number::from_f64(f).map_or(Value::Null, Value::Number);
    match v {
        AnyValue::Null => Value::Null,
        AnyValue::Boolean(b) => Value::Bool(b),
        AnyValue::String(s) => Value::String(s.to_string()),
        AnyValue::StringOwned(s) => Value::String(s.to_string()),
        AnyValue::Int8(i) => Value::from(i),
        AnyValue::Int16(i) => Value::from(i),
        AnyValue::Int32(i) => Value::from(i),
        AnyValue::Int64(i) => Value::from(i),
        AnyValue::UInt8(i) => Value::from(i),
        AnyValue::UInt16(i) => Value::from(i),
        AnyValue::UInt32(i) => Value::from(i),
        AnyValue::UInt64(i) => Value::from(i),
        AnyValue::Float32(f) => float(f64::from(f)),
        AnyValue::Float64(f) => float(f),
        other => Value::String(other.to_string().trim_matches('"').to_string()),
    }
}

/// Runs `sql` over `input` and named lookup tables; returns the result rows.
pub fn run(
    sql: &str,
    input: &[Map<String, Value>],
    lookups: &[(String, Vec<Map<String, Value>>)],
) -> Result<Vec<Map<String, Value>>> {
    let mut ctx = SQLContext::new();
    ctx.register("input", frame(input)?.lazy());
    for (name, rows) in lookups {
        ctx.register(
            name,
            frame(rows)
                .with_context(|| format!("--with {name}"))?
                .lazy(),
        );
    }
    let result = ctx
        .execute(sql)
        .and_then(LazyFrame::collect)
        .map_err(|e| anyhow!("--sql: {e}"))?;
    let mut rows = Vec::with_capacity(result.height());
    for i in 0..result.height() {
        let mut row = Map::new();
        for column in result.columns() {
            let value = column.get(i).map_err(|e| anyhow!("--sql: {e}"))?;
            row.insert(column.name().to_string(), json_value(value));
        }
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(v: Value) -> Vec<Map<String, Value>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_object().unwrap().clone())
            .collect()
    }

    #[test]
    fn group_by_and_types() {
        let input = rows(json!([
            {"k": "a", "n": 1, "p": 1.5},
            {"k": "b", "n": 2, "p": null},
            {"k": "a", "n": 3, "p": 2.5}
        ]));
        let out = run(
            "SELECT k, SUM(n) AS total, COUNT(*) AS c FROM input GROUP BY k ORDER BY k",
            &input,
            &[],
        )
        .unwrap();
        assert_eq!(
            Value::Object(out[0].clone()),
            json!({"k": "a", "total": 4, "c": 2})
        );
        assert_eq!(out.len(), 2);
    }
}
