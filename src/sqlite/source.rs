//! A SQLite table or query as a source. Values come out as the wire types
//! their declared column types promise: BOOLEAN columns as true/false, JSON
//! columns as nested JSON, `DECIMAL_TEXT(p,s)` as exact numbers declared
//! `decimal(p,s)`, BLOBs as `bytes` (base64).
//!
//! Every column is in the `begin` schema, in source order: a loader creates
//! declared columns first, so one left out would move to the end of a new
//! table. SQLite keeps whatever a row puts in a column, so a column
//! declared `DATE`, `TIME`, `DATETIME`/`TIMESTAMP`, `TIMESTAMPTZ` or
//! `UUID` is declared that type only when its first [`TYPING_SAMPLE`]
//! values are all in the type's wire form (a `BLOB` or untyped column is
//! `bytes` when they are all BLOBs); otherwise, and for a column whose
//! declared type promises no wire type (NUMERIC, none, or a computed query
//! column), it is typed from those values by the rule a loader uses for an
//! untyped field, and a BLOB in it is `\x`-prefixed hex text.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use rusqlite::Connection;
use rusqlite::types::ValueRef;

use super::table::quote_ident;
use super::values::{ColumnKind, NUMERIC_DIGITS};
use crate::format::json;
use crate::format::logical::{
    check_date, check_decimal, check_time, check_timestamp, check_timestamptz, check_uuid,
    encode_bytes,
};
use crate::format::typing::is_number_text;
use crate::record::{FieldType, Schema};
use crate::source::{Context, Emit, Selection, Source, Window, deliver};

/// Rows read to type the columns whose declared type has no wire type.
pub const TYPING_SAMPLE: usize = 1000;

struct Column {
    name: String,
    key: Vec<u8>,
    kind: ColumnKind,
    /// The wire type in the `begin` schema.
    wire: FieldType,
}

/// A query over a read-only connection.
pub struct SqliteSource {
    name: String,
    connection: Connection,
    sql: String,
    params: Vec<serde_json::Value>,
    columns: Vec<Column>,
}

fn to_sql_param(value: &serde_json::Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match value {
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(V::Integer)
            .or_else(|| n.as_f64().map(V::Real))
            .unwrap_or(V::Null),
        serde_json::Value::String(s) => V::Text(s.clone()),
        other => V::Text(other.to_string()),
    }
}

impl SqliteSource {
    /// Opens `path` read-only and prepares the query (which checks it).
    /// `window` pushes an incremental cursor range into the SQL: rows with
    /// `column >= lower` and `column < upper` (either bound optional).
    pub fn open(path: &Path, selection: &Selection, window: Option<Window<'_>>) -> Result<Self> {
        let name = path.display().to_string();
        if !path.is_file() {
            bail!("cannot open {name}: no such file");
        }
        let connection = super::conn::open_reader(path)
            .with_context(|| format!("cannot open SQLite database {name}"))?;
        // The first read: where a hot journal is rolled back, or explained.
        connection
            .query_row("PRAGMA schema_version", [], |_| Ok(()))
            .with_context(|| format!("cannot read SQLite database {name}"))
            .map_err(|err| super::conn::explain_hot_journal(err, path))?;
        let mut sql = match selection {
            Selection::Table(table) => format!("SELECT * FROM {}", quote_ident(table)),
            Selection::Query(sql) => sql.trim().trim_end_matches(';').to_string(),
        };
        let mut params = Vec::new();
        if let Some(window) = window {
            let column = quote_ident(window.column);
            let mut conditions = Vec::new();
            if let Some(lower) = window.lower {
                params.push(lower.clone());
                conditions.push(format!("{column} >= ?{}", params.len()));
            }
            if let Some(upper) = window.upper {
                params.push(upper.clone());
                conditions.push(format!("{column} < ?{}", params.len()));
            }
            if !conditions.is_empty() {
                sql = format!("SELECT * FROM ({sql}) WHERE {}", conditions.join(" AND "));
            }
        }
        let columns = {
            let mut statement = connection
                .prepare(&sql)
                .with_context(|| format!("{name}: cannot prepare the query"))?;
            let kinds: Vec<(String, ColumnKind)> = statement
                .columns()
                .map(|c| {
                    let kind = c
                        .decl_type()
                        .map_or(ColumnKind::Any, ColumnKind::from_declared);
                    (c.name().to_string(), kind)
                })
                .collect();
            let sampled = if kinds.iter().any(|(_, k)| needs_sample(*k)) {
                let declared: Vec<ColumnKind> = kinds.iter().map(|(_, k)| *k).collect();
                sample_types(&mut statement, &params, &declared)
                    .with_context(|| format!("{name}: cannot run the query"))?
            } else {
                vec![None; kinds.len()]
            };
            kinds
                .into_iter()
                .zip(sampled)
                .map(|((col, kind), sampled)| Column {
                    key: json::key_prefix(&col),
                    name: col,
                    wire: match kind.field_type() {
                        Some(t) if !needs_sample(kind) => t,
                        _ => sampled.unwrap_or(FieldType::Text),
                    },
                    kind,
                })
                .collect()
        };
        Ok(SqliteSource {
            name,
            connection,
            sql,
            params,
            columns,
        })
    }
}

impl Source for SqliteSource {
    fn schema(&self) -> Schema {
        self.columns
            .iter()
            .map(|c| (c.name.clone(), c.wire))
            .collect()
    }

    fn run(&mut self, emit: &mut Emit<'_>, cx: &mut Context<'_>) -> Result<()> {
        let mut statement = self.connection.prepare(&self.sql)?;
        let params: Vec<rusqlite::types::Value> = self.params.iter().map(to_sql_param).collect();
        let mut rows = statement
            .query(rusqlite::params_from_iter(params))
            .with_context(|| format!("{}: cannot run the query", self.name))?;
        let mut out = Vec::with_capacity(1024);
        let mut row_no = 0u64;
        while let Some(row) = rows
            .next()
            .with_context(|| format!("{}: reading row {}", self.name, row_no + 1))?
        {
            row_no += 1;
            cx.read += 1;
            out.clear();
            out.push(b'{');
            for (i, col) in self.columns.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&col.key);
                let value = row.get_ref(i)?;
                write_value(&mut out, value, col.kind, col.wire).with_context(|| {
                    format!("{}: row {row_no}, column {:?}", self.name, col.name)
                })?;
            }
            out.push(b'}');
            deliver(emit, &out, cx, &self.name, row_no)?;
        }
        Ok(())
    }
}

/// Is the column typed from its values: no wire type declared, a logical
/// type its values must show they hold, or a BLOB (bytes when all are)?
fn needs_sample(kind: ColumnKind) -> bool {
    match kind {
        ColumnKind::Typed(t) => checked_type(t),
        ColumnKind::Numeric | ColumnKind::Any => true,
    }
}

/// The declared types a column holds only when its values are in the
/// type's wire form.
fn checked_type(t: FieldType) -> bool {
    matches!(
        t,
        FieldType::Date
            | FieldType::Time
            | FieldType::Timestamp
            | FieldType::TimestampTz
            | FieldType::Uuid
    ) || numeric_decimal(t).is_some()
}

/// The scale of a decimal a NUMERIC column holds as numbers.
fn numeric_decimal(t: FieldType) -> Option<u16> {
    match t {
        FieldType::Decimal(Some((p, s))) if p <= NUMERIC_DIGITS => Some(s),
        _ => None,
    }
}

/// Is `text` in the wire form of `t`?
fn in_wire_form(t: FieldType, text: &str) -> bool {
    match t {
        FieldType::Date => check_date(text).is_ok(),
        FieldType::Time => check_time(text).is_ok(),
        FieldType::Timestamp => check_timestamp(text).is_ok(),
        FieldType::TimestampTz => check_timestamptz(text).is_ok(),
        FieldType::Uuid => check_uuid(text).is_ok(),
        FieldType::Decimal(declared @ Some(_)) => {
            numeric_decimal(t).is_some() && check_decimal(text, declared).is_ok()
        }
        _ => false,
    }
}

/// The wire type of each column that [`needs_sample`], from its first
/// [`TYPING_SAMPLE`] values (`None` when all are null): a declared logical
/// type when every value is in its wire form, bytes when every value is a
/// BLOB, else integers, floats (integers and floats together) or text —
/// what a loader would make of the values written for them.
fn sample_types(
    statement: &mut rusqlite::Statement<'_>,
    params: &[serde_json::Value],
    declared: &[ColumnKind],
) -> Result<Vec<Option<FieldType>>> {
    let params: Vec<rusqlite::types::Value> = params.iter().map(to_sql_param).collect();
    let mut rows = statement.query(rusqlite::params_from_iter(params))?;
    let width = declared.len();
    let mut types: Vec<Option<FieldType>> = vec![None; width];
    // Columns whose declared logical type every value so far holds.
    let mut logical: Vec<bool> = declared
        .iter()
        .map(|k| matches!(k, ColumnKind::Typed(t) if checked_type(*t)))
        .collect();
    let mut all_blobs = vec![true; width];
    let mut seen = 0;
    while seen < TYPING_SAMPLE
        && let Some(row) = rows.next()?
    {
        seen += 1;
        for (i, slot) in types.iter_mut().enumerate() {
            let value = row.get_ref(i)?;
            if !matches!(value, ValueRef::Null | ValueRef::Blob(_)) {
                all_blobs[i] = false;
            }
            if logical[i] {
                let ok = match (value, declared[i]) {
                    (ValueRef::Null, _) => true,
                    (ValueRef::Text(b), ColumnKind::Typed(t)) => {
                        std::str::from_utf8(b).is_ok_and(|s| in_wire_form(t, s))
                    }
                    (ValueRef::Integer(_) | ValueRef::Real(_), ColumnKind::Typed(t)) => {
                        numeric_decimal(t).is_some()
                    }
                    _ => false,
                };
                logical[i] = ok;
            }
            let t = match value {
                ValueRef::Null => continue,
                ValueRef::Integer(_) => FieldType::Integer,
                ValueRef::Real(_) => FieldType::Float,
                ValueRef::Text(_) | ValueRef::Blob(_) => FieldType::Text,
            };
            *slot = Some(match *slot {
                None => t,
                Some(old) if old == t => t,
                Some(FieldType::Integer | FieldType::Float)
                    if matches!(t, FieldType::Integer | FieldType::Float) =>
                {
                    FieldType::Float
                }
                Some(_) => FieldType::Text,
            });
        }
    }
    for i in 0..width {
        if logical[i] {
            types[i] = declared[i].field_type();
        } else if all_blobs[i] && types[i].is_some() {
            types[i] = Some(FieldType::Bytes);
        }
    }
    Ok(types)
}

fn write_value(
    out: &mut Vec<u8>,
    value: ValueRef<'_>,
    kind: ColumnKind,
    wire: FieldType,
) -> Result<()> {
    match value {
        ValueRef::Null => out.extend_from_slice(b"null"),
        ValueRef::Integer(i)
            if kind == ColumnKind::Typed(FieldType::Boolean) && (i == 0 || i == 1) =>
        {
            out.extend_from_slice(if i == 1 { b"true" } else { b"false" });
        }
        ValueRef::Integer(i) => {
            out.extend_from_slice(i.to_string().as_bytes());
            if let Some(scale @ 1..) = numeric_decimal(wire) {
                // 12 in a DECIMAL(5,2) column is 12.00.
                out.push(b'.');
                out.extend(std::iter::repeat_n(b'0', usize::from(scale)));
            }
        }
        ValueRef::Real(f) if f.is_finite() && numeric_decimal(wire).is_some() => {
            // At most 15 digits, which the REAL holds exactly: written
            // with the column's scale, 12.5 in a DECIMAL(5,2) is 12.50.
            let scale = usize::from(numeric_decimal(wire).unwrap_or(0));
            out.extend_from_slice(format!("{f:.scale$}").as_bytes());
        }
        ValueRef::Real(f) if f.is_finite() => {
            let text = f.to_string();
            out.extend_from_slice(text.as_bytes());
            if !text.contains(['.', 'e', 'E']) {
                // Keep it a float on the wire: 5.0, not the integer 5.
                out.extend_from_slice(b".0");
            }
        }
        ValueRef::Real(f) => bail!("non-finite number {f} has no JSON form"),
        ValueRef::Blob(bytes) | ValueRef::Text(bytes) if wire == FieldType::Bytes => {
            json::write_str(out, &encode_bytes(bytes));
        }
        ValueRef::Text(bytes) => {
            let text = std::str::from_utf8(bytes).context("text is not valid UTF-8")?;
            if matches!(wire, FieldType::Decimal(_)) && is_number_text(text) {
                // A decimal's digits as written: 12.50 stays 12.50.
                out.extend_from_slice(bytes);
                return Ok(());
            }
            if kind == ColumnKind::Typed(FieldType::Json)
                && crate::format::json::check_json(bytes).is_ok()
            {
                // As written (pretty-printed, say): compact, on one line.
                crate::format::json::write_compact(out, bytes);
            } else {
                json::write_str(out, text);
            }
        }
        ValueRef::Blob(bytes) => {
            let mut hex = String::with_capacity(2 + bytes.len() * 2);
            hex.push_str("\\x");
            for b in bytes {
                let _ = write!(hex, "{b:02x}");
            }
            json::write_str(out, &hex);
        }
    }
    Ok(())
}
