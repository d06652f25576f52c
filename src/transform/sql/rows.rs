//! A query's result written as NDJSON lines, column by column into each
//! line (no JSON tree per row). Floats that JSON cannot hold (inf, NaN)
//! are found before the first line is written: null would hide them, and
//! a half-written result would look like a short one.

use std::io::Write;

use anyhow::{Result, anyhow, bail};
use polars::prelude::*;

use crate::format::json;

/// A result column, in a type we write directly.
enum Typed {
    Int(Int64Chunked),
    UInt(UInt64Chunked),
    Float(Float64Chunked),
    Bool(BooleanChunked),
    Str(StringChunked),
    /// JSON values (see `columns`): their JSON text, as it is.
    Json(BinaryChunked),
    /// Dates, lists, structs...: written as their text.
    Other(Column),
}

fn typed(column: &Column) -> Result<Typed> {
    let cast = |to: &DataType| {
        column
            .cast(to)
            .map_err(|e| anyhow!("--sql: column {:?}: {e}", column.name()))
    };
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
        _ => Typed::Other(column.rechunk()),
    })
}

/// Writes the frame's rows to `out`; returns how many.
pub fn write(frame: &DataFrame, out: &mut dyn Write) -> Result<u64> {
    let columns = frame
        .columns()
        .iter()
        .map(|c| Ok((json::key_prefix(c.name()), typed(c)?)))
        .collect::<Result<Vec<_>>>()?;
    for ((_, column), name) in columns.iter().zip(frame.get_column_names()) {
        if let Typed::Float(ca) = column
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
    }
    let mut line = Vec::with_capacity(256);
    for row in 0..frame.height() {
        line.clear();
        line.push(b'{');
        for (i, (key, column)) in columns.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            line.extend_from_slice(key);
            write_cell(&mut line, column, row)?;
        }
        line.extend_from_slice(b"}\n");
        out.write_all(&line)?;
    }
    Ok(frame.height() as u64)
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
        Typed::Other(c) => match c.get(row).map_err(|e| anyhow!("--sql: {e}"))? {
            AnyValue::Null => line.extend_from_slice(b"null"),
            other => json::write_str(line, other.to_string().trim_matches('"')),
        },
    }
    Ok(())
}
