//! A MySQL or MariaDB table or query as a source, streamed row by row (the
//! client reads each row off the socket as it is handed on, so memory
//! stays flat). Rows come over the binary protocol, typed by the server,
//! and are written as the wire promises:
//!
//! - integers as numbers, declared `integer`: `BIGINT UNSIGNED` up to
//!   18446744073709551615 included, `YEAR`, and `BIT(n)` wider than 1
//!   (its bits as an unsigned number); `BIT(1)` as true/false (`boolean`);
//! - `DECIMAL(p,s)` as a number with every digit, declared `decimal(p,s)`
//!   (up to 65 digits); FLOAT/DOUBLE as the shortest number that reads
//!   back the same;
//! - `DATE` as `YYYY-MM-DD` (`date`), `DATETIME(n)` as
//!   `YYYY-MM-DDTHH:MM:SS[.ffffff]` (`timestamp`, the column's fractional
//!   digits), `TIMESTAMP` the same in UTC with a `Z` (`timestamptz`: the
//!   session's time zone is `+00:00`, so the server hands out the instant
//!   in UTC whatever its own zone), and so is a DATETIME commented `UTC`
//!   (etl-load's column for instants); a zero date (`0000-00-00`, or a zero
//!   month or day) is rejected, or read as null with a warning under
//!   `--zero-dates null`;
//! - `TIME` declared `time`: a time of day as `HH:MM:SS[.ffffff]`; a value
//!   MySQL's TIME also holds but a time of day does not (negative, or 24
//!   hours and more: `-12:30:00`, `838:59:59`) is written as MySQL shows
//!   it, which a MySQL TIME or a text column keeps and a native time
//!   column elsewhere rejects;
//! - `JSON` as nested JSON (MariaDB's JSON, a checked LONGTEXT, too);
//! - text in UTF-8 (utf8mb4: emoji included), `CHAR` with its leading
//!   zeros, `ENUM` and `SET` as their text; a CHAR(36) commented `uuid`
//!   (etl-load's column for uuids) as a lower-case `uuid`;
//! - binary strings, BLOBs and spatial values as `bytes` (base64).

use std::collections::HashMap;

use anyhow::{Result, bail};
use mysql::consts::{ColumnFlags, ColumnType};
use mysql::prelude::Queryable;
use mysql::{Conn, Statement, Value as SqlValue};
use serde_json::Value;

use super::conn::{self, message};
use super::dates::to_utc;
use super::table::quote;
use crate::format::json;
use crate::format::logical::{decode_bytes, encode_bytes};
use crate::record::{FieldType, Schema};
use crate::rejects::Payload;
use crate::source::{Context, Emit, Selection, Source, Window, deliver};

/// The character set number of binary strings.
const BINARY_CHARSET: u16 = 63;

/// What to do with a zero date (`0000-00-00`, a zero month or day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroDates {
    /// The row is a reject (the default: no value is changed silently).
    Reject,
    /// The value becomes null, and the run ends with a warning.
    Null,
}

/// How a column's values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    Int,
    Float,
    Decimal,
    Bool,
    Date,
    DateTime(u8),
    Timestamp(u8),
    Time(u8),
    Json,
    Text,
    Uuid,
    Binary,
}

struct Column {
    name: String,
    key: Vec<u8>,
    shape: Shape,
    wire: FieldType,
}

/// A query over a MySQL connection.
pub struct MysqlSource {
    name: String,
    conn: Conn,
    statement: Statement,
    params: Vec<SqlValue>,
    columns: Vec<Column>,
    zero_dates: ZeroDates,
    /// Zero dates read as null, by column.
    nulled: Vec<(String, u64)>,
}

/// What a table's own definition says about a column that its type in a
/// result does not: MariaDB's JSON (a LONGTEXT with a `json_valid`
/// check), and the comments etl-load gives the columns it creates for
/// instants (a DATETIME commented `UTC`) and uuids (a CHAR(36) commented
/// `uuid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Note {
    Json,
    Utc,
    Uuid,
}

/// The noted columns of the tables behind a result: (schema, table) ->
/// (column name, note).
fn noted_columns(
    conn: &mut Conn,
    tables: &[(String, String)],
) -> HashMap<(String, String), Vec<(String, Note)>> {
    let mut found = HashMap::new();
    for (schema, table) in tables {
        // MySQL has no TABLE_NAME here (and a real JSON type): no answer.
        let clauses: Vec<String> = conn
            .exec(
                "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
                 WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
                (schema, table),
            )
            .unwrap_or_default();
        let mut columns: Vec<(String, Note)> = clauses
            .iter()
            .filter_map(|c| {
                let inner = c.trim().strip_prefix("json_valid(`")?.strip_suffix("`)")?;
                Some((inner.replace("``", "`"), Note::Json))
            })
            .collect();
        let commented: Vec<(String, String)> = conn
            .exec(
                "SELECT COLUMN_NAME, COLUMN_COMMENT FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND \
                 ((LOWER(DATA_TYPE) = 'datetime' AND COLUMN_COMMENT = 'UTC') OR \
                  (LOWER(COLUMN_TYPE) = 'char(36)' AND COLUMN_COMMENT = 'uuid'))",
                (schema, table),
            )
            .unwrap_or_default();
        columns.extend(commented.into_iter().map(|(name, comment)| {
            let note = if comment == "UTC" {
                Note::Utc
            } else {
                Note::Uuid
            };
            (name, note)
        }));
        found.insert((schema.clone(), table.clone()), columns);
    }
    found
}

/// The note of each column of a prepared query.
pub(super) fn column_notes(conn: &mut Conn, statement: &Statement) -> Vec<Option<Note>> {
    let mut tables: Vec<(String, String)> = statement
        .columns()
        .iter()
        .filter(|c| !c.org_table_str().is_empty())
        .map(|c| (c.schema_str().into_owned(), c.org_table_str().into_owned()))
        .collect();
    tables.sort();
    tables.dedup();
    let noted = noted_columns(conn, &tables);
    statement
        .columns()
        .iter()
        .map(|c| {
            noted
                .get(&(c.schema_str().into_owned(), c.org_table_str().into_owned()))
                .and_then(|cols| cols.iter().find(|(n, _)| *n == c.org_name_str()))
                .map(|(_, note)| *note)
        })
        .collect()
}

/// DECIMAL(p,s) from the column's display length: p digits, a point when
/// s > 0, a sign unless UNSIGNED.
fn decimal_type(column: &mysql::Column, unsigned: bool) -> FieldType {
    let scale = u32::from(column.decimals());
    let extra = u32::from(scale > 0) + u32::from(!unsigned);
    match column.column_length().checked_sub(extra) {
        Some(p) if (1..=65).contains(&p) && scale <= 30 && scale <= p => {
            FieldType::Decimal(Some((p as u16, scale as u16)))
        }
        _ => FieldType::Decimal(None),
    }
}

/// How a column of a result is written, and its wire type.
pub(super) fn shape_of(column: &mysql::Column, note: Option<Note>) -> (Shape, FieldType) {
    use ColumnType::*;
    let unsigned = column.flags().contains(ColumnFlags::UNSIGNED_FLAG);
    let binary = column.character_set() == BINARY_CHARSET;
    let decimals = column.decimals().min(6);
    match column.column_type() {
        MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_LONG | MYSQL_TYPE_INT24
        | MYSQL_TYPE_LONGLONG | MYSQL_TYPE_YEAR => (Shape::Int, FieldType::Integer),
        MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE => (Shape::Float, FieldType::Float),
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => {
            (Shape::Decimal, decimal_type(column, unsigned))
        }
        MYSQL_TYPE_BIT if column.column_length() == 1 => (Shape::Bool, FieldType::Boolean),
        MYSQL_TYPE_BIT => (Shape::Int, FieldType::Integer),
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => (Shape::Date, FieldType::Date),
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 if note == Some(Note::Utc) => {
            (Shape::Timestamp(decimals), FieldType::TimestampTz)
        }
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => {
            (Shape::DateTime(decimals), FieldType::Timestamp)
        }
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => {
            (Shape::Timestamp(decimals), FieldType::TimestampTz)
        }
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => (Shape::Time(decimals), FieldType::Time),
        MYSQL_TYPE_JSON => (Shape::Json, FieldType::Json),
        _ if note == Some(Note::Json) && !binary => (Shape::Json, FieldType::Json),
        _ if note == Some(Note::Uuid) && !binary => (Shape::Uuid, FieldType::Uuid),
        MYSQL_TYPE_GEOMETRY => (Shape::Binary, FieldType::Bytes),
        _ if binary => (Shape::Binary, FieldType::Bytes),
        _ => (Shape::Text, FieldType::Text),
    }
}

impl MysqlSource {
    /// Connects and prepares the query (which checks it); `window` pushes
    /// a cursor range (`column >= lower`, `column < upper`) into the SQL.
    pub fn open(
        url: &str,
        selection: &Selection,
        window: Option<Window<'_>>,
        zero_dates: ZeroDates,
    ) -> Result<Self> {
        let name = conn::redact(url);
        let mut conn = conn::connect(url)?;
        let base = match selection {
            Selection::Table(table) => format!("SELECT * FROM {}", quote(table)),
            Selection::Query(sql) => sql.trim().trim_end_matches(';').to_string(),
        };
        let prepare = |conn: &mut Conn, sql: &str| {
            conn.prep(sql)
                .map_err(|e| anyhow::anyhow!("{name}: cannot prepare the query: {}", message(&e)))
        };
        let described = prepare(&mut conn, &base)?;
        // The notes of the query's own columns: a window wraps it in a
        // derived table, whose columns no longer name their tables.
        let notes = column_notes(&mut conn, &described);
        let mut sql = base.clone();
        let mut params = Vec::new();
        if let Some(window) = window {
            let described_columns = described.columns();
            let Some(at) = described_columns
                .iter()
                .position(|c| c.name_str() == window.column)
            else {
                bail!(
                    "{name}: cursor column {:?} is not in the query's result",
                    window.column
                );
            };
            let (shape, _) = shape_of(&described_columns[at], notes[at]);
            let column = format!("b.{}", quote(window.column));
            let mut conditions = Vec::new();
            for (bound, op) in [(window.lower, ">="), (window.upper, "<")] {
                let Some(value) = bound else { continue };
                let condition = match (value, shape) {
                    (Value::Number(n), _) => format!("{column} {op} {n}"),
                    (Value::String(s), Shape::Binary) => {
                        // The bookmark holds the wire form (base64), or the
                        // \x hex text of bookmarks stored by earlier versions.
                        let bytes = decode_bytes(s)
                            .ok()
                            .or_else(|| crate::format::logical::decode_hex(s))
                            .unwrap_or_else(|| s.clone().into_bytes());
                        params.push(SqlValue::Bytes(bytes));
                        format!("CAST({column} AS BINARY) {op} CAST(? AS BINARY)")
                    }
                    (Value::String(s), Shape::Text) => {
                        // Code point order, as the bookmark compares: a
                        // collation would order (and skip) rows otherwise.
                        params.push(SqlValue::Bytes(s.clone().into_bytes()));
                        format!("CAST({column} AS BINARY) {op} CAST(? AS BINARY)")
                    }
                    (Value::String(s), Shape::Timestamp(_)) => {
                        // An instant is held in UTC: a bound with an
                        // offset is the same instant in UTC.
                        let utc = to_utc(s)
                            .map_err(|why| anyhow::anyhow!("{name}: cursor bound {s:?}: {why}"))?;
                        params.push(SqlValue::Bytes(utc.into_bytes()));
                        format!("{column} {op} ?")
                    }
                    (Value::String(s), _) => {
                        let s = s.strip_suffix('Z').unwrap_or(s);
                        params.push(SqlValue::Bytes(s.as_bytes().to_vec()));
                        format!("{column} {op} ?")
                    }
                    (other, _) => bail!("{name}: cannot push cursor value {other} into SQL"),
                };
                conditions.push(condition);
            }
            if !conditions.is_empty() {
                sql = format!(
                    "SELECT * FROM ({base}) AS b WHERE {}",
                    conditions.join(" AND ")
                );
            }
        }
        let statement = if sql == base {
            described
        } else {
            prepare(&mut conn, &sql)?
        };
        let columns = statement
            .columns()
            .iter()
            .zip(notes)
            .map(|(c, note)| {
                let (shape, wire) = shape_of(c, note);
                let name = c.name_str().into_owned();
                Column {
                    key: json::key_prefix(&name),
                    name,
                    shape,
                    wire,
                }
            })
            .collect();
        Ok(MysqlSource {
            name,
            conn,
            statement,
            params,
            columns,
            zero_dates,
            nulled: Vec::new(),
        })
    }
}

/// Shortest text that reads back as the same float, always with a point
/// or exponent (5.0, not the integer 5).
fn push_float(out: &mut Vec<u8>, f: f64) -> Result<()> {
    let Some(n) = serde_json::Number::from_f64(f) else {
        bail!("non-finite number {f} has no JSON form");
    };
    let text = n.to_string();
    out.extend_from_slice(text.as_bytes());
    if !text.contains(['.', 'e', 'E']) {
        out.extend_from_slice(b".0");
    }
    Ok(())
}

pub(super) fn push_fraction(out: &mut String, micros: u32, digits: u8) {
    if digits > 0 {
        let text = format!("{micros:06}");
        out.push('.');
        out.push_str(&text[..usize::from(digits)]);
    }
}

/// Writes one value; `Ok(false)` for a zero date (nothing written).
pub(super) fn write_value(out: &mut Vec<u8>, value: &SqlValue, shape: Shape) -> Result<bool> {
    match (value, shape) {
        (SqlValue::NULL, _) => out.extend_from_slice(b"null"),
        (SqlValue::Int(i), Shape::Int) => out.extend_from_slice(i.to_string().as_bytes()),
        (SqlValue::UInt(u), Shape::Int) => out.extend_from_slice(u.to_string().as_bytes()),
        (SqlValue::Float(f), Shape::Float) => {
            // The float's own shortest form: 0.1f32 is 0.1, not 0.10000000149.
            let text = f.to_string();
            let f64_value: f64 = text.parse().unwrap_or(f64::from(*f));
            push_float(out, f64_value)?;
        }
        (SqlValue::Double(f), Shape::Float) => push_float(out, *f)?,
        (SqlValue::Bytes(b), Shape::Int) => {
            // BIT(n): big-endian bits.
            if b.len() > 8 {
                bail!("a BIT value of {} bytes", b.len());
            }
            let n = b
                .iter()
                .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
            out.extend_from_slice(n.to_string().as_bytes());
        }
        (SqlValue::Bytes(b), Shape::Bool) => {
            let set = b.iter().any(|byte| *byte != 0);
            out.extend_from_slice(if set { b"true" } else { b"false" });
        }
        (SqlValue::Int(i), Shape::Bool) => {
            out.extend_from_slice(if *i != 0 { b"true" } else { b"false" });
        }
        (SqlValue::Bytes(b), Shape::Decimal) => {
            let text = std::str::from_utf8(b)?;
            if serde_json::from_str::<serde_json::Number>(text).is_err() {
                bail!("DECIMAL value {text:?} is not a number");
            }
            out.extend_from_slice(b);
        }
        (
            SqlValue::Date(y, m, d, h, mi, s, us),
            Shape::Date | Shape::DateTime(_) | Shape::Timestamp(_),
        ) => {
            if *m == 0 || *d == 0 {
                return Ok(false);
            }
            let mut text = format!("{y:04}-{m:02}-{d:02}");
            if let Shape::DateTime(digits) | Shape::Timestamp(digits) = shape {
                text.push_str(&format!("T{h:02}:{mi:02}:{s:02}"));
                push_fraction(&mut text, *us, digits);
                if matches!(shape, Shape::Timestamp(_)) {
                    text.push('Z');
                }
            }
            json::write_str(out, &text);
        }
        (SqlValue::Time(negative, days, h, mi, s, us), Shape::Time(digits)) => {
            let hours = days * 24 + u32::from(*h);
            let mut text = format!(
                "{}{hours:02}:{mi:02}:{s:02}",
                if *negative { "-" } else { "" }
            );
            push_fraction(&mut text, *us, digits);
            json::write_str(out, &text);
        }
        (SqlValue::Bytes(b), Shape::Json) => {
            if crate::format::json::check_json(b).is_ok() {
                // MariaDB keeps a JSON document as it was written, newlines
                // and all: compact, it stays on the record's line.
                crate::format::json::write_compact(out, b);
            } else {
                json::write_str(out, std::str::from_utf8(b)?);
            }
        }
        (SqlValue::Bytes(b), Shape::Binary) => json::write_str(out, &encode_bytes(b)),
        (SqlValue::Bytes(b), Shape::Uuid) => {
            // Canonical: lower case, as the other sources write uuids.
            let text = std::str::from_utf8(b)
                .map_err(|e| anyhow::anyhow!("text is not valid UTF-8 ({e})"))?;
            json::write_str(out, &text.to_ascii_lowercase());
        }
        (SqlValue::Bytes(b), _) => {
            let text = std::str::from_utf8(b)
                .map_err(|e| anyhow::anyhow!("text is not valid UTF-8 ({e})"))?;
            json::write_str(out, text);
        }
        (other, shape) => bail!("unexpected value {other:?} for a {shape:?} column"),
    }
    Ok(true)
}

impl Source for MysqlSource {
    fn schema(&self) -> Schema {
        self.columns
            .iter()
            .map(|c| (c.name.clone(), c.wire))
            .collect()
    }

    fn run(&mut self, emit: &mut Emit<'_>, cx: &mut Context<'_>) -> Result<()> {
        let name = self.name.clone();
        let params = if self.params.is_empty() {
            mysql::Params::Empty
        } else {
            mysql::Params::Positional(self.params.clone())
        };
        let mut result = self
            .conn
            .exec_iter(&self.statement, params)
            .map_err(|e| anyhow::anyhow!("{name}: cannot run the query: {}", message(&e)))?;
        let mut out = Vec::with_capacity(1024);
        let mut row_no = 0u64;
        let mut nulled: Vec<u64> = vec![0; self.columns.len()];
        for row in result.by_ref() {
            let row = row.map_err(|e| {
                anyhow::anyhow!("{name}: reading row {}: {}", row_no + 1, message(&e))
            })?;
            row_no += 1;
            cx.read += 1;
            let values = row.unwrap_raw();
            out.clear();
            out.push(b'{');
            let mut zero: Option<usize> = None;
            for (i, col) in self.columns.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&col.key);
                let value = values
                    .get(i)
                    .and_then(Option::as_ref)
                    .unwrap_or(&SqlValue::NULL);
                let written = write_value(&mut out, value, col.shape).map_err(|e| {
                    anyhow::anyhow!("{name}: row {row_no}, column {:?}: {e}", col.name)
                })?;
                if !written {
                    match self.zero_dates {
                        ZeroDates::Null => {
                            nulled[i] += 1;
                            out.extend_from_slice(b"null");
                        }
                        ZeroDates::Reject => {
                            json::write_str(&mut out, &zero_text(value));
                            zero.get_or_insert(i);
                        }
                    }
                }
            }
            out.push(b'}');
            if let Some(i) = zero {
                let reason = format!(
                    "column {:?} holds a zero date; --zero-dates null reads it as null",
                    self.columns[i].name
                );
                cx.rejects
                    .reject(&self.name, row_no, &reason, Payload::Raw(&out))?;
                continue;
            }
            deliver(emit, &out, cx, &self.name, row_no)?;
        }
        self.nulled = self
            .columns
            .iter()
            .zip(nulled)
            .filter(|(_, n)| *n > 0)
            .map(|(c, n)| (c.name.clone(), n))
            .collect();
        Ok(())
    }

    fn remarks(&self) -> Vec<String> {
        if self.nulled.is_empty() {
            return Vec::new();
        }
        let parts: Vec<String> = self
            .nulled
            .iter()
            .map(|(c, n)| format!("{n} in column {c:?}"))
            .collect();
        vec![format!(
            "{}: zero dates read as null (--zero-dates null): {}",
            self.name,
            parts.join(", ")
        )]
    }
}

/// The zero date as MySQL shows it, for the rejects file.
fn zero_text(value: &SqlValue) -> String {
    match value {
        SqlValue::Date(y, m, d, h, mi, s, _) => {
            format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}")
        }
        other => format!("{other:?}"),
    }
}
