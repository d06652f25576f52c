//! A MySQL or MariaDB table or query as a source, streamed row by row (the
//! client reads each row off the socket as it is handed on, so memory
//! stays flat). Rows come over the binary protocol, typed by the server,
//! and are written as the wire promises:
//!
//! - integers as numbers, `BIGINT UNSIGNED` up to 18446744073709551615
//!   included (declared text: a 64-bit signed column would refuse the top
//!   half); `DECIMAL` as a number with every digit (declared text, so a
//!   loader keeps the digits instead of rounding through a float);
//!   FLOAT/DOUBLE as the shortest number that reads back the same;
//! - `BIT(1)` as true/false, wider BITs as numbers;
//! - `DATE` as `YYYY-MM-DD`, `DATETIME` as `YYYY-MM-DDTHH:MM:SS[.ffffff]`
//!   (the column's fractional digits), `TIMESTAMP` the same in UTC with a
//!   `Z`; a zero date (`0000-00-00`, or a zero month or day) is rejected,
//!   or read as null with a warning under `--zero-dates null`;
//! - `JSON` as nested JSON (MariaDB's JSON, a checked LONGTEXT, too);
//! - text in UTF-8 (utf8mb4: emoji included), `CHAR` with its leading zeros;
//! - binary strings and BLOBs as `\x`-prefixed hex text, as the SQLite
//!   source writes BLOBs (and as PostgreSQL writes bytea); a MySQL sink
//!   turns it back into the bytes.

use std::collections::HashMap;

use anyhow::{Result, bail};
use mysql::consts::{ColumnFlags, ColumnType};
use mysql::prelude::Queryable;
use mysql::{Conn, Statement, Value as SqlValue};
use serde_json::Value;

use super::conn::{self, message};
use super::table::quote;
use crate::format::json;
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
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

/// Columns of the tables behind a result that MariaDB declares JSON (a
/// LONGTEXT with a `json_valid` check): (schema, table) -> column names.
fn mariadb_json_columns(
    conn: &mut Conn,
    tables: &[(String, String)],
) -> HashMap<(String, String), Vec<String>> {
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
        let columns = clauses
            .iter()
            .filter_map(|c| {
                let inner = c.trim().strip_prefix("json_valid(`")?.strip_suffix("`)")?;
                Some(inner.replace("``", "`"))
            })
            .collect();
        found.insert((schema.clone(), table.clone()), columns);
    }
    found
}

fn shape_of(column: &mysql::Column, json: bool) -> (Shape, FieldType) {
    use ColumnType::*;
    let unsigned = column.flags().contains(ColumnFlags::UNSIGNED_FLAG);
    let binary = column.character_set() == BINARY_CHARSET;
    let decimals = column.decimals().min(6);
    match column.column_type() {
        MYSQL_TYPE_LONGLONG if unsigned => (Shape::Int, FieldType::Text),
        MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_LONG | MYSQL_TYPE_INT24
        | MYSQL_TYPE_LONGLONG | MYSQL_TYPE_YEAR => (Shape::Int, FieldType::Integer),
        MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE => (Shape::Float, FieldType::Float),
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => (Shape::Decimal, FieldType::Text),
        MYSQL_TYPE_BIT if column.column_length() == 1 => (Shape::Bool, FieldType::Boolean),
        MYSQL_TYPE_BIT if column.column_length() < 64 => (Shape::Int, FieldType::Integer),
        MYSQL_TYPE_BIT => (Shape::Int, FieldType::Text),
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => (Shape::Date, FieldType::Text),
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => (Shape::DateTime(decimals), FieldType::Text),
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => {
            (Shape::Timestamp(decimals), FieldType::Text)
        }
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => (Shape::Time(decimals), FieldType::Text),
        MYSQL_TYPE_JSON => (Shape::Json, FieldType::Json),
        _ if json && !binary => (Shape::Json, FieldType::Json),
        MYSQL_TYPE_GEOMETRY => (Shape::Binary, FieldType::Text),
        _ if binary => (Shape::Binary, FieldType::Text),
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
        let mut sql = base.clone();
        let mut params = Vec::new();
        if let Some(window) = window {
            let described_columns = described.columns();
            let Some(cursor) = described_columns
                .iter()
                .find(|c| c.name_str() == window.column)
            else {
                bail!(
                    "{name}: cursor column {:?} is not in the query's result",
                    window.column
                );
            };
            let (shape, _) = shape_of(cursor, false);
            let column = format!("b.{}", quote(window.column));
            let mut conditions = Vec::new();
            for (bound, op) in [(window.lower, ">="), (window.upper, "<")] {
                let Some(value) = bound else { continue };
                let condition = match (value, shape) {
                    (Value::Number(n), _) => format!("{column} {op} {n}"),
                    (Value::String(s), Shape::Text | Shape::Binary) => {
                        // Code point order, as the bookmark compares: a
                        // collation would order (and skip) rows otherwise.
                        params.push(SqlValue::Bytes(s.clone().into_bytes()));
                        format!("CAST({column} AS BINARY) {op} CAST(? AS BINARY)")
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
        let mut tables: Vec<(String, String)> = statement
            .columns()
            .iter()
            .filter(|c| !c.org_table_str().is_empty())
            .map(|c| (c.schema_str().into_owned(), c.org_table_str().into_owned()))
            .collect();
        tables.sort();
        tables.dedup();
        let json_columns = mariadb_json_columns(&mut conn, &tables);
        let columns = statement
            .columns()
            .iter()
            .map(|c| {
                let json = json_columns
                    .get(&(c.schema_str().into_owned(), c.org_table_str().into_owned()))
                    .is_some_and(|cols| cols.iter().any(|n| *n == c.org_name_str()));
                let (shape, wire) = shape_of(c, json);
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

fn push_fraction(out: &mut String, micros: u32, digits: u8) {
    if digits > 0 {
        let text = format!("{micros:06}");
        out.push('.');
        out.push_str(&text[..usize::from(digits)]);
    }
}

/// Writes one value; `Ok(false)` for a zero date (nothing written).
fn write_value(out: &mut Vec<u8>, value: &SqlValue, shape: Shape) -> Result<bool> {
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
        (SqlValue::Bytes(b), Shape::Binary) => {
            let mut hex = String::with_capacity(2 + b.len() * 2);
            hex.push_str("\\x");
            for byte in b {
                hex.push_str(&format!("{byte:02x}"));
            }
            json::write_str(out, &hex);
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
