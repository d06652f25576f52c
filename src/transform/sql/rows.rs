//! A query's result written as NDJSON lines, column by column into each
//! line (no JSON tree per row), and the wire types of its columns for the
//! begin line. Values JSON cannot hold (a float inf or NaN) or the wire
//! cannot (a date past year 9999, nanoseconds) are found before the first
//! line is written: null would hide them, and a half-written result would
//! look like a short one.

use std::io::Write;

use anyhow::{Result, anyhow, bail};
use polars::prelude::*;

use super::Origins;
use crate::format::json;
use crate::format::logical::{check_uuid, encode_bytes};
use crate::format::temporal::{format_date, format_instant, format_time, format_timestamp};
use crate::record::{FieldType, Schema};

/// A result column, in a type we write directly.
enum Typed {
    Int(Int64Chunked),
    UInt(UInt64Chunked),
    Float(Float64Chunked),
    Bool(BooleanChunked),
    Str(StringChunked),
    /// JSON values (see `columns`): their JSON text, as it is.
    Json(BinaryChunked),
    /// Bytes, written as base64.
    Bytes(BinaryChunked),
    /// Decimals as the JSON numbers they are written as.
    Numbers(Vec<Option<String>>),
    /// Dates and times in their wire form.
    Texts(Vec<Option<String>>),
    /// Durations, lists, structs...: written as their text.
    Other(Column),
}

/// A decimal's text: `v` times ten to the minus `scale`, every digit.
fn decimal_text(v: i128, scale: usize) -> String {
    let digits = v.unsigned_abs().to_string();
    let sign = if v < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let digits = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = digits.split_at(digits.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// Microseconds from a count of `unit`; `None` for nanoseconds that are
/// not whole microseconds (the wire keeps six fraction digits).
fn micros(v: i64, unit: TimeUnit) -> Option<i64> {
    match unit {
        TimeUnit::Nanoseconds => (v % 1000 == 0).then_some(v / 1000),
        TimeUnit::Microseconds => Some(v),
        TimeUnit::Milliseconds => v.checked_mul(1000),
    }
}

/// Each value of a column's physical numbers in its wire form, or the
/// first that has none.
fn render<T: Copy>(
    column: &Column,
    values: impl Iterator<Item = Option<T>>,
    form: impl Fn(T) -> Option<String>,
    what: &str,
) -> Result<Vec<Option<String>>> {
    values
        .enumerate()
        .map(|(row, v)| match v {
            None => Ok(None),
            Some(v) => form(v).map(Some).ok_or_else(|| {
                anyhow!(
                    "--sql: result row {}, column {:?}: {what}",
                    row + 1,
                    column.name()
                )
            }),
        })
        .collect()
}

fn typed(column: &Column) -> Result<Typed> {
    let cast = |to: &DataType| {
        column
            .cast(to)
            .map_err(|e| anyhow!("--sql: column {:?}: {e}", column.name()))
    };
    let physical = column.to_physical_repr();
    let beyond = "a date beyond years 1 to 9999, which the wire does not hold";
    Ok(match column.dtype() {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => Typed::Int(cast(&DataType::Int64)?.i64()?.rechunk().into_owned()),
        DataType::Int64 => Typed::Int(column.i64()?.rechunk().into_owned()),
        DataType::UInt64 => Typed::UInt(column.u64()?.rechunk().into_owned()),
        DataType::Float32 => Typed::Float(cast(&DataType::Float64)?.f64()?.rechunk().into_owned()),
        DataType::Float64 => Typed::Float(column.f64()?.rechunk().into_owned()),
        DataType::Boolean => Typed::Bool(column.bool()?.rechunk().into_owned()),
        DataType::String => Typed::Str(column.str()?.rechunk().into_owned()),
        DataType::Binary => Typed::Json(column.binary()?.rechunk().into_owned()),
        DataType::Decimal(_, scale) => {
            let scale = *scale;
            Typed::Numbers(render(
                column,
                physical.i128()?.iter(),
                |v| Some(decimal_text(v, scale)),
                "",
            )?)
        }
        DataType::Date => Typed::Texts(render(
            column,
            physical.i32()?.iter(),
            |d| format_date(i64::from(d)),
            beyond,
        )?),
        DataType::Time => Typed::Texts(render(
            column,
            physical.i64()?.iter(),
            |ns| (ns % 1000 == 0).then(|| format_time(ns / 1000)).flatten(),
            "a time with nanoseconds, which the wire (microseconds) does not hold",
        )?),
        DataType::Datetime(unit, zone) => {
            let (unit, zone) = (*unit, zone.is_some());
            Typed::Texts(render(
                column,
                physical.i64()?.iter(),
                |v| {
                    let us = micros(v, unit)?;
                    if zone {
                        format_instant(us)
                    } else {
                        format_timestamp(us)
                    }
                },
                "a timestamp with nanoseconds or beyond years 1 to 9999, which the wire does not hold",
            )?)
        }
        _ => Typed::Other(column.rechunk()),
    })
}

/// The wire type of a result column, where it is known.
fn wire_type(column: &Column, typed: &Typed, origin: Option<FieldType>) -> Option<FieldType> {
    Some(match (column.dtype(), typed) {
        // An all-null column of integers is one polars had no type for.
        (DataType::Int64, _) if column.null_count() == column.len() => return None,
        (_, Typed::Int(_) | Typed::UInt(_)) => FieldType::Integer,
        (_, Typed::Float(_)) => FieldType::Float,
        (_, Typed::Bool(_)) => FieldType::Boolean,
        (_, Typed::Str(ca)) => {
            // A uuid column that comes out with uuids in it.
            if origin == Some(FieldType::Uuid) && ca.iter().flatten().all(|u| check_uuid(u).is_ok())
            {
                FieldType::Uuid
            } else {
                FieldType::Text
            }
        }
        (_, Typed::Json(_)) => FieldType::Json,
        (_, Typed::Bytes(_)) => FieldType::Bytes,
        (DataType::Decimal(p, s), _) => {
            FieldType::Decimal(Some((u16::try_from(*p).ok()?, u16::try_from(*s).ok()?)))
        }
        (DataType::Date, _) => FieldType::Date,
        (DataType::Time, _) => FieldType::Time,
        (DataType::Datetime(_, None), _) => FieldType::Timestamp,
        (DataType::Datetime(_, Some(_)), _) => FieldType::TimestampTz,
        _ => return None,
    })
}

/// A query's result, checked and ready to be written.
pub struct Answer {
    height: usize,
    /// Each column's encoded key (`"name":`) and values.
    columns: Vec<(Vec<u8>, Typed)>,
    schema: Schema,
}

impl Answer {
    /// Checks the result and finds its columns' wire types; `origins`
    /// says what the input's columns held where polars' type does not.
    pub fn new(frame: DataFrame, origins: &Origins) -> Result<Answer> {
        let mut columns = Vec::with_capacity(frame.width());
        let mut schema = Schema::new();
        for column in frame.columns() {
            let name = column.name().as_str();
            let origin = origins.get(name).copied();
            let mut values = typed(column)?;
            // A binary column is bytes when it came in as bytes, or when
            // its values are not all JSON; else JSON, as it came in.
            if let Typed::Json(ca) = &values
                && (origin == Some(FieldType::Bytes)
                    || (origin != Some(FieldType::Json)
                        && ca.iter().flatten().any(|b| json::check_json(b).is_err())))
            {
                values = Typed::Bytes(ca.clone());
            }
            if let Typed::Float(ca) = &values
                && let Some((i, Some(f))) = ca
                    .iter()
                    .enumerate()
                    .find(|(_, f)| f.is_some_and(|f| !f.is_finite()))
            {
                bail!(
                    "--sql: result row {}, column {name:?}: float overflow: the result is {f}, which has no JSON form",
                    i + 1
                );
            }
            if let Some(t) = wire_type(column, &values, origin) {
                schema.push((name.to_string(), t));
            }
            columns.push((json::key_prefix(name), values));
        }
        Ok(Answer {
            height: frame.height(),
            columns,
            schema,
        })
    }

    /// The wire types of the result's columns, for the begin line (a
    /// column whose type is not known is left out).
    pub fn schema(&self) -> Schema {
        self.schema.clone()
    }

    /// Writes the rows to `out`; returns how many.
    pub fn write(&self, out: &mut dyn Write) -> Result<u64> {
        let mut line = Vec::with_capacity(256);
        for row in 0..self.height {
            line.clear();
            line.push(b'{');
            for (i, (key, column)) in self.columns.iter().enumerate() {
                if i > 0 {
                    line.push(b',');
                }
                line.extend_from_slice(key);
                write_cell(&mut line, column, row)?;
            }
            line.extend_from_slice(b"}\n");
            out.write_all(&line)?;
        }
        Ok(self.height as u64)
    }
}

fn write_cell(line: &mut Vec<u8>, column: &Typed, row: usize) -> Result<()> {
    fn number<T: serde::Serialize>(line: &mut Vec<u8>, v: Option<T>) -> Result<()> {
        match v {
            Some(v) => serde_json::to_writer(&mut *line, &v)?,
            None => line.extend_from_slice(b"null"),
        }
        Ok(())
    }
    match column {
        Typed::Int(ca) => number(line, ca.get(row))?,
        Typed::UInt(ca) => number(line, ca.get(row))?,
        Typed::Float(ca) => number(line, ca.get(row))?,
        Typed::Bool(ca) => match ca.get(row) {
            Some(true) => line.extend_from_slice(b"true"),
            Some(false) => line.extend_from_slice(b"false"),
            None => line.extend_from_slice(b"null"),
        },
        Typed::Str(ca) => match ca.get(row) {
            Some(s) => json::write_str(line, s),
            None => line.extend_from_slice(b"null"),
        },
        Typed::Json(ca) => match ca.get(row) {
            // The JSON text of an input value, unless the query made bytes
            // of its own.
            Some(bytes) if json::check_json(bytes).is_ok() => line.extend_from_slice(bytes),
            Some(_) => bail!(
                "--sql: result row {}: a binary value that is not JSON",
                row + 1
            ),
            None => line.extend_from_slice(b"null"),
        },
        Typed::Bytes(ca) => match ca.get(row) {
            Some(bytes) => json::write_str(line, &encode_bytes(bytes)),
            None => line.extend_from_slice(b"null"),
        },
        Typed::Numbers(v) => match &v[row] {
            Some(n) => line.extend_from_slice(n.as_bytes()),
            None => line.extend_from_slice(b"null"),
        },
        Typed::Texts(v) => match &v[row] {
            Some(s) => json::write_str(line, s),
            None => line.extend_from_slice(b"null"),
        },
        Typed::Other(c) => match c.get(row).map_err(|e| anyhow!("--sql: {e}"))? {
            AnyValue::Null => line.extend_from_slice(b"null"),
            other => json::write_str(line, other.to_string().trim_matches('"')),
        },
    }
    Ok(())
}
