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
        // Beyond the range of a float (1e400): kept as text, not nulled.
        Value::Number(n) if n.as_f64().is_none() => Some(Kind::Text),
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

/// One column being built: typed values, widened as values arrive
/// (integers to floats; anything mixed to text).
#[derive(Debug)]
enum Cells {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Text(Vec<Option<String>>),
}

impl Cells {
    fn nulls(n: usize, kind: Kind) -> Cells {
        match kind {
            Kind::Int => Cells::Int(vec![None; n]),
            Kind::Float => Cells::Float(vec![None; n]),
            Kind::Bool => Cells::Bool(vec![None; n]),
            Kind::Text => Cells::Text(vec![None; n]),
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Cells::Int(_) => Kind::Int,
            Cells::Float(_) => Kind::Float,
            Cells::Bool(_) => Kind::Bool,
            Cells::Text(_) => Kind::Text,
        }
    }

    fn len(&self) -> usize {
        match self {
            Cells::Int(v) => v.len(),
            Cells::Float(v) => v.len(),
            Cells::Bool(v) => v.len(),
            Cells::Text(v) => v.len(),
        }
    }

    /// Converts the column to `kind` (which is at least as wide).
    fn widen_to(&mut self, kind: Kind) {
        let converted = match (std::mem::replace(self, Cells::Int(Vec::new())), kind) {
            (Cells::Int(v), Kind::Float) => {
                Cells::Float(v.into_iter().map(|x| x.map(|i| i as f64)).collect())
            }
            (Cells::Int(v), Kind::Text) => {
                Cells::Text(v.into_iter().map(|x| x.map(|i| i.to_string())).collect())
            }
            (Cells::Float(v), Kind::Text) => {
                Cells::Text(v.into_iter().map(|x| x.map(|f| f.to_string())).collect())
            }
            (Cells::Bool(v), Kind::Text) => {
                Cells::Text(v.into_iter().map(|x| x.map(|b| b.to_string())).collect())
            }
            (same, _) => same,
        };
        *self = converted;
    }

    fn push(&mut self, v: Option<&Value>) {
        match (self, v) {
            (Cells::Int(c), v) => c.push(v.and_then(Value::as_i64)),
            (Cells::Float(c), v) => c.push(v.and_then(Value::as_f64)),
            (Cells::Bool(c), v) => c.push(v.and_then(Value::as_bool)),
            (Cells::Text(c), v) => c.push(v.map(text)),
        }
    }
}

/// Records turned into typed columns as they arrive (so a million records
/// cost columns, not a million JSON trees).
#[derive(Debug, Default)]
pub struct Builder {
    names: Vec<String>,
    columns: Vec<Cells>,
    rows: usize,
}

impl Builder {
    /// True before any record.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Adds one record; fields not seen before become columns (null for
    /// the earlier rows).
    pub fn push(&mut self, record: &Map<String, Value>) {
        for (name, value) in record {
            let Some(kind) = kind_of(value) else {
                if !self.names.iter().any(|n| n == name) {
                    self.names.push(name.clone());
                    self.columns.push(Cells::nulls(self.rows, Kind::Int));
                }
                continue;
            };
            match self.names.iter().position(|n| n == name) {
                Some(i) => {
                    let current = self.columns[i].kind();
                    let wanted = if self.columns[i].len() > 0
                        && matches!(&self.columns[i], Cells::Int(v) if v.iter().all(Option::is_none))
                    {
                        // A column of nulls so far takes the first real type.
                        kind
                    } else {
                        widen(current, kind)
                    };
                    if wanted != current {
                        if matches!(&self.columns[i], Cells::Int(v) if v.iter().all(Option::is_none))
                        {
                            self.columns[i] = Cells::nulls(self.columns[i].len(), wanted);
                        } else {
                            self.columns[i].widen_to(wanted);
                        }
                    }
                }
                None => {
                    self.names.push(name.clone());
                    self.columns.push(Cells::nulls(self.rows, kind));
                }
            }
        }
        for (name, column) in self.names.iter().zip(self.columns.iter_mut()) {
            column.push(record.get(name).filter(|v| !v.is_null()));
        }
        self.rows += 1;
    }

    /// The finished table.
    pub fn finish(self) -> Result<DataFrame> {
        let columns = self
            .names
            .iter()
            .zip(self.columns)
            .map(|(name, cells)| match cells {
                Cells::Int(v) => Column::new(name.as_str().into(), v),
                Cells::Float(v) => Column::new(name.as_str().into(), v),
                Cells::Bool(v) => Column::new(name.as_str().into(), v),
                Cells::Text(v) => Column::new(name.as_str().into(), v),
            })
            .collect();
        DataFrame::new(self.rows, columns).map_err(|e| anyhow!("cannot build the table: {e}"))
    }
}

/// Builds a DataFrame from records (columns in first-seen order).
pub fn frame(records: &[Map<String, Value>]) -> Result<DataFrame> {
    let mut builder = Builder::default();
    for r in records {
        builder.push(r);
    }
    builder.finish()
}

/// A result cell as JSON; a float overflow (inf, NaN) is an error, since
/// JSON has no form for it and null would hide it.
fn json_value(v: AnyValue<'_>) -> Result<Value> {
    let float = |f: f64| {
        Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| anyhow!("float overflow: the result is {f}, which has no JSON form"))
    };
    Ok(match v {
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
        AnyValue::Float32(f) => float(f64::from(f))?,
        AnyValue::Float64(f) => float(f)?,
        other => Value::String(other.to_string().trim_matches('"').to_string()),
    })
}

/// Runs `sql` over `input` and named lookup tables; returns the result rows.
pub fn run(
    sql: &str,
    input: Builder,
    lookups: &[(String, Vec<Map<String, Value>>)],
) -> Result<Vec<Map<String, Value>>> {
    let mut ctx = SQLContext::new();
    ctx.register("input", input.finish()?.lazy());
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
            let value = json_value(value).map_err(|e| {
                anyhow!(
                    "--sql: result row {}, column {:?}: {e}",
                    i + 1,
                    column.name()
                )
            })?;
            row.insert(column.name().to_string(), value);
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
        let mut builder = Builder::default();
        input.iter().for_each(|r| builder.push(r));
        let out = run(
            "SELECT k, SUM(n) AS total, COUNT(*) AS c FROM input GROUP BY k ORDER BY k",
            builder,
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
