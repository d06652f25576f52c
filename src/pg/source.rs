//! A PostgreSQL table or query as a source, streamed row by row. Each row
//! is turned into JSON by the server (`row_to_json`), which keeps column
//! order, writes numeric and bigint values with every digit, timestamps as
//! ISO 8601 (in UTC) and json/jsonb as nested JSON (made compact here: a
//! json value keeps the newlines it was written with).

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

/// The wire type of a PostgreSQL column type, when it has a clear one.
fn wire_type(t: &Type) -> Option<FieldType> {
    Some(match *t {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => FieldType::Integer,
        Type::FLOAT4 | Type::FLOAT8 => FieldType::Float,
        Type::BOOL => FieldType::Boolean,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UUID => FieldType::Text,
        Type::DATE | Type::TIMESTAMP | Type::TIMESTAMPTZ | Type::TIME => FieldType::Text,
        Type::JSON | Type::JSONB => FieldType::Json,
        _ => return None,
    })
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
        let schema: Schema = described
            .columns()
            .iter()
            .filter_map(|c| Some((c.name().to_string(), wire_type(c.type_())?)))
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
        // `alias.*` names the row even when a column has the alias's name
        // (a bare `row_to_json(t)` would take a column called t).
        let sql = format!("SELECT row_to_json(_etl_row.*)::text FROM ({filtered}) AS _etl_row");
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
