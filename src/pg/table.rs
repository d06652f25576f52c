//! One PostgreSQL table as a load sees it: its name (quoted, within
//! PostgreSQL's identifier limit), its columns and how each record's fields
//! bind to them, the DDL that creates or widens it, and the unique index an
//! upsert merges by.

use anyhow::{Result, bail};
use postgres::Client;

use super::binary::Binary;
use super::conn::{db_message, pg_err};
use super::values::Kind;
use crate::error::usage;
use crate::record::FieldType;
use crate::store::binder::Binder;

/// The longest identifier PostgreSQL keeps; it truncates longer ones.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// Refuses a name PostgreSQL would truncate: two long names that share
/// their first 63 bytes would name the same table or column.
pub fn check_identifier(what: &str, name: &str) -> Result<()> {
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(usage(identifier_too_long(what, name)));
    }
    Ok(())
}

/// The message for a name over PostgreSQL's identifier limit.
pub fn identifier_too_long(what: &str, name: &str) -> String {
    format!(
        "{what} {name:?} is {} bytes; PostgreSQL identifiers are at most {MAX_IDENTIFIER_BYTES} \
         bytes (it would truncate the name)",
        name.len()
    )
}

/// The schema a table name refers to: `given` (--schema-name), else the
/// session's current schema (the first existing one on its search_path,
/// which `options=-csearch_path=...` sets).
pub fn schema_of(client: &mut Client, given: Option<&str>, name: &str) -> Result<String> {
    if let Some(schema) = given {
        check_identifier("schema name", schema)?;
        return Ok(schema.to_string());
    }
    let current: Option<String> = client
        .query_one("SELECT current_schema()::text", &[])
        .map_err(|e| anyhow::anyhow!("{name}: cannot read the current schema: {}", db_message(&e)))?
        .get(0);
    current.ok_or_else(|| {
        crate::error::Failure::new(
            crate::error::Kind::Usage,
            "no schema on the connection's search_path exists",
        )
        .hint("create it, or name one with --schema-name")
        .into()
    })
}

/// Quotes an identifier for PostgreSQL.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A column of the target table.
pub struct Column {
    /// Its name, as the table spells it.
    pub name: String,
    /// What it accepts.
    pub kind: Kind,
    /// Its type (format_type).
    pub type_name: String,
    /// The column's binary COPY form, when etlkit writes one.
    pub binary: Option<Binary>,
}

impl Column {
    fn new(name: String, kind: Kind, type_name: String) -> Column {
        Column {
            binary: Binary::of(kind, &type_name),
            name,
            kind,
            type_name,
        }
    }

    /// A column etlkit creates for a wire type.
    fn declared(name: String, t: FieldType) -> Column {
        Column::new(name, Kind::of(t), Kind::declared(t))
    }
}

/// The target table: its names, its columns as the run has left them, and
/// the binding of the record being inserted.
pub struct Table {
    /// The schema it lives in.
    pub schema: String,
    /// Its name, unquoted.
    pub table: String,
    /// `"schema"."table"`.
    pub qtable: String,
    /// Does the table exist (yet)?
    pub exists: bool,
    /// Its columns, in order.
    pub columns: Vec<Column>,
    /// The columns' names, and the binding of the record being inserted
    /// (the rules every database store shares).
    pub binder: Binder,
    /// The key columns (`--key`), found once by `prepare`.
    pub key_cols: Vec<usize>,
    /// Fields the stream declares a date, time, timestamp, instant, uuid
    /// or bytes (base64 on the wire), with that type.
    declared_fields: Vec<(String, FieldType)>,
    /// `--naive-timestamps reject`: timestamptz columns need offsets.
    pub need_offset: bool,
    /// The session's time zone is UTC: a timestamp without offset names
    /// the same instant here as on the server.
    utc_session: bool,
}

impl Table {
    /// The table `table` of `schema`, not read yet (see [`Table::begin`]).
    pub fn new(schema: String, table: &str) -> Table {
        let qtable = format!("{}.{}", quote(&schema), quote(table));
        Table {
            binder: Binder::new(qtable.clone()),
            qtable,
            schema,
            table: table.to_string(),
            exists: false,
            columns: Vec::new(),
            key_cols: Vec::new(),
            declared_fields: Vec::new(),
            need_offset: false,
            utc_session: false,
        }
    }

    /// Takes the table's load lock (a second load of the same table waits)
    /// and reads its columns, inside the transaction just begun.
    pub fn begin(&mut self, client: &mut Client) -> Result<()> {
        client
            .execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                &[&format!("etlkit:{}", self.qtable)],
            )
            .map_err(pg_err("cannot take the table's load lock"))?;
        let rows = client
            .query(
                "SELECT a.attname::text, t.typname::text, format_type(a.atttypid, a.atttypmod) \
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                &[&self.qtable],
            )
            .map_err(pg_err("cannot read the table's columns"))?;
        let zone: String = client
            .query_one("SELECT current_setting('TimeZone')", &[])
            .map_err(pg_err("cannot read the session's time zone"))?
            .get(0);
        self.utc_session = matches!(
            zone.trim_start_matches("Etc/"),
            "UTC" | "UCT" | "GMT" | "Universal" | "Zulu" | "Greenwich" | "GMT0" | "GMT+0" | "GMT-0"
        );
        self.exists = !rows.is_empty();
        self.columns = rows
            .iter()
            .map(|r| Column::new(r.get(0), Kind::from_typname(r.get(1)), r.get(2)))
            .collect();
        self.binder.clear_columns();
        for column in &self.columns {
            self.binder.push(&column.name);
        }
        self.mark_columns();
        Ok(())
    }

    /// Marks the columns of fields the stream declares a logical type:
    /// a bytea column's values are base64, decoded on the way in, and a
    /// date, time, timestamp, timestamptz, uuid or bytea column of the
    /// declared type goes in binary COPY form (its values are in the wire
    /// form, and one that is not is a reject rather than text the server
    /// would read by its DateStyle).
    /// The marks survive [`begin`](Self::begin) reading the columns again.
    pub fn declare(&mut self, schema: &crate::record::Schema) {
        for (name, t) in schema {
            let logical = matches!(
                t,
                FieldType::Bytes
                    | FieldType::Date
                    | FieldType::Time
                    | FieldType::Timestamp
                    | FieldType::TimestampTz
                    | FieldType::Uuid
            );
            if logical && !self.declared_fields.iter().any(|(n, _)| n == name) {
                self.declared_fields.push((name.clone(), *t));
            }
        }
        self.mark_columns();
    }

    fn mark_columns(&mut self) {
        for column in &mut self.columns {
            if let Kind::TimestampTz { need_offset } = &mut column.kind {
                *need_offset = self.need_offset;
            }
        }
        for k in 0..self.declared_fields.len() {
            let (name, t) = &self.declared_fields[k];
            let Some(i) = self.find(name) else {
                continue;
            };
            let column = &mut self.columns[i];
            if let Kind::Bytea { base64 } = &mut column.kind
                && *t == FieldType::Bytes
            {
                *base64 = true;
            }
            // Only the plain types (no precision modifier to round to).
            let binary = match (*t, column.kind, column.type_name.as_str()) {
                (FieldType::Date, Kind::Date, "date") => Some(Binary::Date),
                (FieldType::Time, Kind::Time, "time without time zone") => Some(Binary::Time),
                (FieldType::Timestamp, Kind::Timestamp, "timestamp without time zone") => {
                    Some(Binary::Timestamp)
                }
                // A timestamp without offset is read in the session's zone:
                // in binary form only when that zone is UTC (or such a
                // value is a reject anyway).
                (
                    FieldType::TimestampTz,
                    Kind::TimestampTz { need_offset },
                    "timestamp with time zone",
                ) if need_offset || self.utc_session => Some(Binary::TimestampTz),
                (FieldType::Uuid, Kind::Uuid, "uuid") => Some(Binary::Uuid),
                (FieldType::Bytes, Kind::Bytea { .. }, "bytea") => Some(Binary::Bytea),
                _ => None,
            };
            if binary.is_some() {
                column.binary = binary;
            }
        }
    }

    /// Checks the names of columns about to be added; a field bound to no
    /// column may have one afterwards, so the binding is found again.
    pub fn check_new(&mut self, columns: &[(String, FieldType)]) -> Result<()> {
        self.binder.forget();
        if let Some((n, _)) = columns.iter().find(|(n, _)| n.len() > MAX_IDENTIFIER_BYTES) {
            bail!("{}", identifier_too_long("column name", n));
        }
        Ok(())
    }

    /// Creates the table with `columns`, or adds them to it (and to the
    /// staging table, `staged`); what it did goes to `log`.
    pub fn add_columns(
        &mut self,
        client: &mut Client,
        columns: &[(String, FieldType)],
        staged: bool,
        log: &mut Vec<String>,
    ) -> Result<()> {
        if !self.exists {
            if !self.schema.is_empty() {
                client
                    .batch_execute(&format!(
                        "CREATE SCHEMA IF NOT EXISTS {}",
                        quote(&self.schema)
                    ))
                    .map_err(pg_err("cannot create the schema"))?;
            }
            let defs: Vec<String> = columns
                .iter()
                .map(|(n, t)| format!("{} {}", quote(n), Kind::declared(*t)))
                .collect();
            client
                .batch_execute(&format!(
                    "CREATE TABLE {} ({})",
                    self.qtable,
                    defs.join(", ")
                ))
                .map_err(pg_err("cannot create the table"))?;
            log.push(format!(
                "created table {}: {}",
                self.qtable,
                defs.join(", ")
            ));
            self.exists = true;
            for (n, t) in columns {
                self.push_column(Column::declared(n.clone(), *t));
            }
        } else {
            for (n, t) in columns {
                let mut sql = format!(
                    "ALTER TABLE {} ADD COLUMN {} {}",
                    self.qtable,
                    quote(n),
                    Kind::declared(*t)
                );
                if staged {
                    sql.push_str(&format!(
                        "; ALTER TABLE etl_stage ADD COLUMN {} {}",
                        quote(n),
                        Kind::declared(*t)
                    ));
                }
                client
                    .batch_execute(&sql)
                    .map_err(pg_err("cannot add a column"))?;
                log.push(format!("added column {n:?} to {}", self.qtable));
                self.push_column(Column::declared(n.clone(), *t));
            }
        }
        self.mark_columns();
        Ok(())
    }

    fn push_column(&mut self, column: Column) {
        self.binder.push(&column.name);
        self.columns.push(column);
    }

    /// The column a field names (see [`Binder::lookup`]).
    pub fn find(&self, name: &str) -> Option<usize> {
        self.binder.find(name)
    }

    /// Is there a unique index (or primary key) on exactly the key columns?
    /// Then ON CONFLICT can use it and no second index is built.
    fn has_key_index(&self, client: &mut Client, keys: &[String]) -> Result<bool> {
        Ok(client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_index i \
                 WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL \
                 AND i.indexprs IS NULL AND i.indnkeyatts = cardinality($2::text[]) \
                 AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text) FROM pg_attribute a \
                      WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey::int2[])) \
                     = (SELECT array_agg(k ORDER BY k) FROM unnest($2::text[]) AS k))",
                &[&self.qtable, &keys],
            )
            .map_err(pg_err("cannot read the table's indexes"))?
            .get(0))
    }

    /// Makes sure a unique index covers exactly the key columns (`keys`,
    /// as the table spells them), which ON CONFLICT needs.
    pub fn ensure_key_index(&self, client: &mut Client, keys: &[String]) -> Result<()> {
        if self.has_key_index(client, keys)? {
            return Ok(());
        }
        let key_list = keys.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ");
        client
            .batch_execute(&format!(
                "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({key_list})",
                quote(&key_index_name(&self.table)),
                self.qtable
            ))
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot upsert into {} by key ({key_list}): {}",
                    self.qtable,
                    db_message(&e)
                )
            })
    }

    /// The table's definition as the run has left it so far.
    pub fn describe(&self, client: &mut Client) -> Result<Vec<String>> {
        let columns: Vec<String> = client
            .query(
                "SELECT quote_ident(column_name) || ' ' || format_type(a.atttypid, a.atttypmod) \
                 FROM information_schema.columns c JOIN pg_attribute a \
                   ON a.attrelid = to_regclass(quote_ident($1) || '.' || quote_ident($2)) \
                  AND a.attname = c.column_name \
                 WHERE c.table_schema = $1 AND c.table_name = $2 ORDER BY c.ordinal_position",
                &[&self.schema, &self.table],
            )
            .map_err(pg_err("cannot read the table's definition"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(vec![format!(
            "CREATE TABLE {} ({});",
            self.qtable,
            columns.join(", ")
        )])
    }
}

/// The name of the unique index etlkit puts on an upsert key: within
/// PostgreSQL's 63 bytes, and different for tables whose long names share
/// a prefix (a truncated name would be one index for both).
fn key_index_name(table: &str) -> String {
    let name = format!("{table}__etl_key");
    if name.len() <= MAX_IDENTIFIER_BYTES {
        return name;
    }
    // FNV-1a: the same name on every build and platform.
    let hash = table.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let suffix = format!("_{hash:08x}__etl_key");
    let mut cut = MAX_IDENTIFIER_BYTES - suffix.len();
    while !table.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &table[..cut])
}
