//! A PostgreSQL table or query as a source, streamed row by row. Each row
//! is turned into JSON by the server (`row_to_json`), which keeps column
//! order, writes numeric and bigint values with every digit, dates and
//! timestamps as ISO 8601 (the session is in UTC) and json/jsonb as nested
//! JSON (made compact here: a json value keeps the newlines it was written
//! with). bytea is rewritten on the server into its wire form, base64.
//! timestamptz keeps the form `row_to_json` gives it in a UTC session
//! (`2024-01-02T03:04:05.5+00:00`, as earlier versions wrote it): a
//! bookmark on such a column compares as text with the ones stored before,
//! and `+00:00` orders by time where a `Z` would not (`05Z` sorts after
//! `05.5Z`).

use anyhow::{Context as _, Result};
use postgres::Client;
use postgres::types::Type;
use serde_json::Value;

use super::conn;
use super::table::{check_identifier, quote};
use crate::record::{FieldType, Schema};
use crate::source::Selection;
use crate::source::{Context, Emit, Source, deliver};

/// Rows fetched from the server per round trip.
const FETCH_ROWS: usize = 5_000;

/// A query over a PostgreSQL connection.
pub struct PgSource {
    name: String,
    client: Client,
    sql: String,
    params: Vec<String>,
    schema: Schema,
}

/// The wire type of a PostgreSQL column, when it has a clear one. A
/// numeric with a declared precision and scale (its type modifier) is a
/// `decimal(p,s)`; interval stays text (PostgreSQL's own form, which no
/// other store reads as a duration) and arrays are json.
fn wire_type(c: &postgres::Column) -> Option<FieldType> {
    wire_type_of(c.type_(), c.type_modifier())
}

/// [`wire_type`] of a type and its modifier (change data capture reads
/// them from the replication stream).
pub(crate) fn wire_type_of(t: &Type, typmod: i32) -> Option<FieldType> {
    Some(match *t {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => FieldType::Integer,
        Type::FLOAT4 | Type::FLOAT8 => FieldType::Float,
        Type::BOOL => FieldType::Boolean,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::INTERVAL => FieldType::Text,
        Type::NUMERIC => FieldType::Decimal(numeric_modifier(typmod)),
        Type::DATE => FieldType::Date,
        Type::TIME => FieldType::Time,
        Type::TIMESTAMP => FieldType::Timestamp,
        Type::TIMESTAMPTZ => FieldType::TimestampTz,
        Type::UUID => FieldType::Uuid,
        Type::BYTEA => FieldType::Bytes,
        Type::JSON | Type::JSONB => FieldType::Json,
        _ if matches!(t.kind(), postgres::types::Kind::Array(_)) => FieldType::Json,
        _ => return None,
    })
}

/// A numeric column's precision and scale from its type modifier, when it
/// has them and the scale is within 0..=precision (PostgreSQL 15 also
/// allows a negative scale or one above the precision: a bare decimal).
fn numeric_modifier(typmod: i32) -> Option<(u16, u16)> {
    if typmod < 4 {
        return None;
    }
    let m = typmod - 4;
    let precision = (m >> 16) & 0xffff;
    // The scale is an 11-bit signed number.
    let scale = ((m & 0x7ff) ^ 0x400) - 0x400;
    if precision == 0 || scale < 0 || scale > precision {
        return None;
    }
    Some((u16::try_from(precision).ok()?, u16::try_from(scale).ok()?))
}

/// The query that writes each row as one JSON object, with bytea columns
/// rewritten into their wire form. `None` when a name
/// repeats among the columns (a query may do that): its columns cannot be
/// named one by one, and they go as the server writes them.
fn row_query(filtered: &str, columns: &[postgres::Column]) -> Option<String> {
    let mut names = std::collections::HashSet::new();
    let mut list = Vec::new();
    let mut rewritten = false;
    for c in columns {
        if !names.insert(c.name()) {
            return None;
        }
        let q = format!("_etl_src.{}", quote(c.name()));
        list.push(match *c.type_() {
            Type::BYTEA => {
                rewritten = true;
                format!(
                    "translate(encode({q}, 'base64'), E'\\n', '') AS {}",
                    quote(c.name())
                )
            }
            _ => q,
        });
    }
    let inner = if rewritten {
        format!("SELECT {} FROM ({filtered}) AS _etl_src", list.join(", "))
    } else {
        filtered.to_string()
    };
    // `alias.*` names the row even when a column has the alias's name
    // (a bare `row_to_json(t)` would take a column called t).
    Some(format!(
        "SELECT row_to_json(_etl_row.*)::text FROM ({inner}) AS _etl_row"
    ))
}

impl PgSource {
    /// Connects and describes the query; `window` pushes a cursor range
    /// (`column >= lower`, `column < upper`) into the SQL.
    pub fn open(
        url: &str,
        schema_name: Option<&str>,
        selection: &Selection,
        window: Option<(&str, Option<&Value>, Option<&Value>)>,
    ) -> Result<Self> {
        let name = conn::redact(url);
        if let Selection::Table(table) = selection {
            check_identifier("table name", table)?;
        }
        let mut client = conn::connect(url)?;
        let base = match selection {
            Selection::Table(table) => {
                let schema_name = super::table::schema_of(&mut client, schema_name, &name)?;
                format!("SELECT * FROM {}.{}", quote(&schema_name), quote(table))
            }
            Selection::Query(sql) => sql.trim().trim_end_matches(';').to_string(),
        };
        let described = client
            .prepare(&base)
            .map_err(|e| anyhow::anyhow!("{name}: cannot prepare the query: {}", db_message(&e)))?;
        let rows = row_query("", described.columns());
        let schema: Schema = described
            .columns()
            .iter()
            // Without the rewrite, bytea goes as PostgreSQL's hex text.
            .filter(|c| rows.is_some() || *c.type_() != Type::BYTEA)
            .filter_map(|c| Some((c.name().to_string(), wire_type(c)?)))
            .collect();
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        if let Some((column, lower, upper)) = window {
            let col_type = described
                .columns()
                .iter()
                .find(|c| c.name() == column)
                .map(|c| c.type_().name().to_string())
                .with_context(|| {
                    format!("{name}: cursor column {column:?} is not in the query's result")
                })?;
            for (bound, op) in [(lower, ">="), (upper, "<")] {
                if let Some(value) = bound {
                    params.push(match value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    });
                    // Text compares by code point, as the bookmark does (a
                    // database collation would order rows differently and
                    // skip some at the boundary).
                    let text_like =
                        matches!(col_type.as_str(), "text" | "varchar" | "bpchar" | "name");
                    let condition = if text_like {
                        format!(
                            "{} COLLATE \"C\" {op} ${}::text COLLATE \"C\"",
                            quote(column),
                            params.len()
                        )
                    } else {
                        format!(
                            "{} {op} ${}::text::{}",
                            quote(column),
                            params.len(),
                            quote(&col_type)
                        )
                    };
                    conditions.push(condition);
                }
            }
        }
        let filtered = if conditions.is_empty() {
            base
        } else {
            format!(
                "SELECT * FROM ({base}) AS b WHERE {}",
                conditions.join(" AND ")
            )
        };
        let sql = row_query(&filtered, described.columns()).unwrap_or_else(|| {
            format!("SELECT row_to_json(_etl_row.*)::text FROM ({filtered}) AS _etl_row")
        });
        Ok(PgSource {
            name,
            client,
            sql,
            params,
            schema,
        })
    }
}

pub use super::conn::db_message;

impl Source for PgSource {
    fn schema(&self) -> Schema {
        self.schema.clone()
    }

    fn run(&mut self, emit: &mut Emit<'_>, cx: &mut Context<'_>) -> Result<()> {
        // A server-side cursor, fetched in pages: memory stays flat however
        // large the result, and however slowly the next stage reads.
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> = self
            .params
            .iter()
            .map(|p| p as &(dyn postgres::types::ToSql + Sync))
            .collect();
        let name = self.name.clone();
        let fail =
            |what: &str, e: postgres::Error| anyhow::anyhow!("{name}: {what}: {}", db_message(&e));
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| fail("cannot start a read transaction", e))?;
        tx.execute(
            &format!("DECLARE etl_rows NO SCROLL CURSOR FOR {}", self.sql),
            &params,
        )
        .map_err(|e| fail("cannot run the query", e))?;
        // json keeps a document as it was written (newlines too), jsonb
        // writes spaces: rows with such a column are written compact, and
        // any other row holding a line break outside a string (a json
        // value inside an array or a composite type) likewise.
        let has_json = self.schema.iter().any(|(_, t)| *t == FieldType::Json);
        let mut compact = Vec::new();
        let mut row_no = 0u64;
        loop {
            let rows = tx
                .query(&format!("FETCH {FETCH_ROWS} FROM etl_rows"), &[])
                .map_err(|e| fail(&format!("reading after row {row_no}"), e))?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                row_no += 1;
                cx.read += 1;
                let text: &str = row.get(0);
                let mut line = text.as_bytes();
                if has_json || memchr::memchr2(b'\n', b'\r', line).is_some() {
                    compact.clear();
                    crate::format::json::write_compact(&mut compact, line);
                    line = &compact;
                }
                deliver(emit, line, cx, &self.name, row_no)?;
            }
        }
        tx.commit()
            .map_err(|e| fail("cannot close the read transaction", e))?;
        Ok(())
    }
}
