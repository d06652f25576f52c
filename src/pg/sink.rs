//! A PostgreSQL table as a sink. Rows travel with COPY: straight into the
//! table for append, through a temporary staging table for replace and
//! upsert, so that the table is emptied (replace) or merged (upsert) only
//! at the end, inside the same transaction as everything else. Values are
//! checked against their columns before they are sent, so a bad row is a
//! reject, not a failed COPY. The bookmark is stored in `_etl_state` in the
//! target schema, in the same transaction.

use std::io::Write;

use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use anyhow::{Context, Result, bail};
use postgres::Client;
use serde_json::Value;

use super::conn::quote;
use super::copy::{Kind, copy_value};
use super::source::db_message;
use crate::format::flat::{Fields, Raw};
use crate::incremental::check_starting_point;
use crate::record::{FieldType, Schema};
use crate::sink::Sink;
use crate::sink::convert::{column_types, type_of_value};
use crate::sink::{LoadMode, TableOptions};
use crate::wire::End;

/// COPY data is sent in chunks of about this many bytes.
const CHUNK: usize = 4 << 20;

struct Column {
    name: String,
    kind: Kind,
    type_name: String,
}

/// A COPY in progress on a writer thread, which holds the connection
/// until the COPY ends: rows are parsed here while the server stores the
/// previous chunk.
struct CopyStream {
    chunks: SyncSender<Vec<u8>>,
    done: JoinHandle<(Client, Result<()>)>,
    columns: Vec<usize>,
}

/// Loads into one PostgreSQL table inside one transaction.
pub struct PgSink {
    client: Option<Client>,
    copy: Option<CopyStream>,
    name: String,
    schema: String,
    table: String,
    qtable: String,
    options: TableOptions,
    exists: bool,
    columns: Vec<Column>,
    null_only: Vec<String>,
    staged: bool,
    chunk: Vec<u8>,
    /// Columns the input has named so far: the only ones sent and updated
    /// (the rest keep their defaults, or their values on upsert).
    copy_cols: Vec<usize>,
    ends: Vec<End>,
    log: Vec<String>,
    deleted: u64,
}

/// The connection, once any COPY in progress has finished (its error, if
/// the server refused the rows, surfaces here). A free function so that
/// callers can borrow the sink's other fields at the same time.
fn conn<'a>(
    copy: &mut Option<CopyStream>,
    client: &'a mut Option<Client>,
    name: &str,
) -> Result<&'a mut Client> {
    if let Some(stream) = copy.take() {
        drop(stream.chunks);
        let (returned, result) = stream
            .done
            .join()
            .map_err(|_| anyhow::anyhow!("the COPY writer thread panicked"))?;
        *client = Some(returned);
        result.map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    }
    client
        .as_mut()
        .context("the connection was lost with a failed COPY")
}

fn pg_err(what: &str) -> impl Fn(postgres::Error) -> anyhow::Error + '_ {
    move |e| anyhow::anyhow!("{what}: {}", db_message(&e))
}

impl PgSink {
    /// Starts the transaction, takes the table's load lock (a second load
    /// of the same table waits) and reads the table's columns.
    pub fn new(
        client: Client,
        name: &str,
        schema: &str,
        table: &str,
        options: TableOptions,
    ) -> Result<Self> {
        let qtable = format!("{}.{}", quote(schema), quote(table));
        let mut sink = PgSink {
            client: Some(client),
            copy: None,
            name: name.to_string(),
            schema: schema.to_string(),
            table: table.to_string(),
            qtable,
            staged: options.mode != LoadMode::Append,
            options,
            exists: false,
            columns: Vec::new(),
            null_only: Vec::new(),
            chunk: Vec::with_capacity(CHUNK + 65_536),
            copy_cols: Vec::new(),
            ends: Vec::new(),
            log: Vec::new(),
            deleted: 0,
        };
        sink.begin()?;
        Ok(sink)
    }

    fn begin(&mut self) -> Result<()> {
        conn(&mut self.copy, &mut self.client, &self.name)?
            .batch_execute("BEGIN")
            .map_err(pg_err("cannot start a transaction"))?;
        conn(&mut self.copy, &mut self.client, &self.name)?
            .execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                &[&format!("etlkit:{}", self.qtable)],
            )
            .map_err(pg_err("cannot take the table's load lock"))?;
        let rows = conn(&mut self.copy, &mut self.client, &self.name)?
            .query(
                "SELECT a.attname::text, t.typname::text, format_type(a.atttypid, a.atttypmod) \
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                &[&self.qtable],
            )
            .map_err(pg_err("cannot read the table's columns"))?;
        self.exists = !rows.is_empty();
        self.columns = rows
            .iter()
            .map(|r| Column {
                name: r.get(0),
                kind: Kind::from_typname(r.get(1)),
                type_name: r.get(2),
            })
            .collect();
        if self.exists && self.staged {
            self.create_staging()?;
        }
        Ok(())
    }

    fn create_staging(&mut self) -> Result<()> {
        conn(&mut self.copy, &mut self.client, &self.name)?
            .batch_execute(&format!(
                "CREATE TEMP TABLE IF NOT EXISTS etl_stage (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP; \
                 ALTER TABLE etl_stage ADD COLUMN IF NOT EXISTS _etl_seq bigserial",
                self.qtable
            ))
            .map_err(pg_err("cannot create the staging table"))
    }

    fn copy_target(&self) -> String {
        if self.staged {
            "etl_stage".into()
        } else {
            self.qtable.clone()
        }
    }

    /// Hands the buffered rows to the COPY writer, starting one if needed.
    fn flush(&mut self) -> Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        if self
            .copy
            .as_ref()
            .is_some_and(|c| c.columns != self.copy_cols)
        {
            conn(&mut self.copy, &mut self.client, &self.name)?;
        }
        if self.copy.is_none() {
            let names: Vec<String> = self
                .copy_cols
                .iter()
                .map(|&i| quote(&self.columns[i].name))
                .collect();
            let sql = format!(
                "COPY {} ({}) FROM STDIN",
                self.copy_target(),
                names.join(", ")
            );
            conn(&mut self.copy, &mut self.client, &self.name)?;
            let mut client = self.client.take().context("no connection")?;
            let (chunks, incoming) = sync_channel::<Vec<u8>>(2);
            let done = std::thread::spawn(move || {
                let result = (|| -> Result<()> {
                    let mut writer = client
                        .copy_in(&sql)
                        .map_err(|e| anyhow::anyhow!("cannot start COPY: {}", db_message(&e)))?;
                    for chunk in incoming {
                        writer.write_all(&chunk).context("cannot send rows")?;
                    }
                    writer
                        .finish()
                        .map_err(|e| anyhow::anyhow!("COPY failed: {}", db_message(&e)))?;
                    Ok(())
                })();
                (client, result)
            });
            self.copy = Some(CopyStream {
                chunks,
                done,
                columns: self.copy_cols.clone(),
            });
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK + 65_536));
        let sent = self.copy.as_ref().map(|c| c.chunks.send(chunk));
        if let Some(Err(_)) = sent {
            // The writer stopped early: collect its error.
            conn(&mut self.copy, &mut self.client, &self.name)?;
            bail!("{}: the COPY ended before all rows were sent", self.name);
        }
        Ok(())
    }

    fn add_columns(&mut self, columns: &[(String, FieldType)]) -> Result<()> {
        if columns.is_empty() {
            return Ok(());
        }
        self.flush()?;
        if !self.exists {
            if !self.schema.is_empty() {
                conn(&mut self.copy, &mut self.client, &self.name)?
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
            conn(&mut self.copy, &mut self.client, &self.name)?
                .batch_execute(&format!(
                    "CREATE TABLE {} ({})",
                    self.qtable,
                    defs.join(", ")
                ))
                .map_err(pg_err("cannot create the table"))?;
            self.log.push(format!(
                "created table {}: {}",
                self.qtable,
                defs.join(", ")
            ));
            self.exists = true;
            for (n, t) in columns {
                self.columns.push(Column {
                    name: n.clone(),
                    kind: Kind::of(*t),
                    type_name: Kind::declared(*t).into(),
                });
            }
            if self.staged {
                self.create_staging()?;
            }
        } else {
            for (n, t) in columns {
                let mut sql = format!(
                    "ALTER TABLE {} ADD COLUMN {} {}",
                    self.qtable,
                    quote(n),
                    Kind::declared(*t)
                );
                if self.staged {
                    sql.push_str(&format!(
                        "; ALTER TABLE etl_stage ADD COLUMN {} {}",
                        quote(n),
                        Kind::declared(*t)
                    ));
                }
                conn(&mut self.copy, &mut self.client, &self.name)?
                    .batch_execute(&sql)
                    .map_err(pg_err("cannot add a column"))?;
                self.log
                    .push(format!("added column {n:?} to {}", self.qtable));
                self.columns.push(Column {
                    name: n.clone(),
                    kind: Kind::of(*t),
                    type_name: Kind::declared(*t).into(),
                });
            }
        }
        self.null_only
            .retain(|n| !columns.iter().any(|(c, _)| c.eq_ignore_ascii_case(n)));
        Ok(())
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Moves staged rows into the table (replace empties it first; upsert
    /// merges by key, the last record for a key winning), then stores the
    /// bookmarks: the end of every transaction.
    fn settle(&mut self) -> Result<()> {
        let pending: Vec<(String, FieldType)> = std::mem::take(&mut self.null_only)
            .into_iter()
            .map(|n| (n, FieldType::Text))
            .collect();
        if !self.options.strict || !self.exists {
            self.add_columns(&pending)?;
        }
        self.flush()?;
        if self.staged && self.exists {
            let cols: Vec<String> = self
                .copy_cols
                .iter()
                .map(|&i| quote(&self.columns[i].name))
                .collect();
            let cols = cols.join(", ");
            match self.options.mode {
                LoadMode::Replace => {
                    conn(&mut self.copy, &mut self.client, &self.name)?
                        .batch_execute(&format!(
                            // DELETE, not TRUNCATE: readers keep seeing the old
                            // rows (MVCC) until the transaction commits.
                            "DELETE FROM {t}; INSERT INTO {t} ({cols}) SELECT {cols} FROM etl_stage ORDER BY _etl_seq; \
                             TRUNCATE etl_stage",
                            t = self.qtable
                        ))
                        .map_err(pg_err("cannot replace the table's rows"))?;
                }
                LoadMode::Upsert => self.merge(&cols)?,
                // ReplacePartitions is refused for tables when the flags are checked.
                LoadMode::Append | LoadMode::ReplacePartitions => {}
            }
        }
        if !self.ends.iter().any(|e| e.bookmark.is_some()) {
            self.ends.clear();
            return Ok(());
        }
        let state = format!("{}.\"_etl_state\"", quote(&self.schema));
        conn(&mut self.copy, &mut self.client, &self.name)?
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {state} (stream text PRIMARY KEY, bookmark json NOT NULL, \
                 rows bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())"
            ))
            .map_err(pg_err("cannot create the state table"))?;
        for end in std::mem::take(&mut self.ends) {
            if let Some(bookmark) = &end.bookmark {
                conn(&mut self.copy, &mut self.client, &self.name)?
                    .execute(
                        &format!(
                            "INSERT INTO {state} (stream, bookmark, rows) VALUES ($1, $2::text::json, $3) \
                             ON CONFLICT (stream) DO UPDATE SET bookmark = excluded.bookmark, \
                             rows = excluded.rows, updated_at = now()"
                        ),
                        &[&end.stream, &bookmark.to_string(), &(end.rows as i64)],
                    )
                    .map_err(pg_err("cannot store the bookmark"))?;
            }
        }
        Ok(())
    }

    fn merge(&mut self, cols: &str) -> Result<()> {
        let keys: Vec<String> = self.options.keys.iter().map(|k| quote(k)).collect();
        let keys = keys.join(", ");
        conn(&mut self.copy, &mut self.client, &self.name)?
            .batch_execute(&format!(
                "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({keys})",
                quote(&format!("{}__etl_key", self.table)),
                self.qtable
            ))
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot upsert into {} by key ({keys}): {}",
                    self.qtable,
                    db_message(&e)
                )
            })?;
        let latest = format!(
            "(SELECT DISTINCT ON ({keys}) * FROM etl_stage ORDER BY {keys}, _etl_seq DESC) AS s"
        );
        let mut keep = String::new();
        if let Some(flag) = &self.options.delete_when {
            let on: Vec<String> = self
                .options
                .keys
                .iter()
                .map(|k| format!("t.{k} = s.{k}", k = quote(k)))
                .collect();
            let deleted = conn(&mut self.copy, &mut self.client, &self.name)?
                .execute(
                    &format!(
                        "DELETE FROM {} AS t USING {latest} WHERE s.{} IS TRUE AND {}",
                        self.qtable,
                        quote(flag),
                        on.join(" AND ")
                    ),
                    &[],
                )
                .map_err(pg_err("cannot apply deletes"))?;
            self.deleted += deleted;
            keep = format!(" WHERE s.{} IS NOT TRUE", quote(flag));
        }
        let sent: Vec<&Column> = self.copy_cols.iter().map(|&i| &self.columns[i]).collect();
        let updates: Vec<String> = sent
            .iter()
            .filter(|c| !self.options.keys.contains(&c.name))
            .map(|c| format!("{n} = excluded.{n}", n = quote(&c.name)))
            .collect();
        let action = if updates.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!("DO UPDATE SET {}", updates.join(", "))
        };
        let select: Vec<String> = sent
            .iter()
            .map(|c| format!("s.{}", quote(&c.name)))
            .collect();
        conn(&mut self.copy, &mut self.client, &self.name)?
            .batch_execute(&format!(
                "INSERT INTO {} ({cols}) SELECT {} FROM {latest}{keep} ON CONFLICT ({keys}) {action}; \
                 TRUNCATE etl_stage",
                self.qtable,
                select.join(", ")
            ))
            .map_err(pg_err("cannot upsert"))?;
        Ok(())
    }
}

impl Sink for PgSink {
    fn check_start(&mut self, stream: &str, from: &Value) -> Result<()> {
        let state = format!("{}.\"_etl_state\"", quote(&self.schema));
        let exists: bool = conn(&mut self.copy, &mut self.client, &self.name)?
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&state])
            .map_err(pg_err("cannot look for the state table"))?
            .get(0);
        let stored = if exists {
            let row = conn(&mut self.copy, &mut self.client, &self.name)?
                .query_opt(
                    &format!("SELECT bookmark::text FROM {state} WHERE stream = $1 FOR UPDATE"),
                    &[&stream],
                )
                .map_err(pg_err("cannot read the bookmark"))?;
            match row {
                Some(r) => serde_json::from_str(r.get::<_, &str>(0))
                    .context("stored bookmark is not JSON")?,
                None => Value::Null,
            }
        } else {
            Value::Null
        };
        check_starting_point(stream, &stored, from)
    }

    fn prepare(&mut self, schema: &Schema, sample: &[&Fields<'_>]) -> Result<()> {
        let missing: Vec<(String, FieldType)> = column_types(schema, sample)
            .into_iter()
            .filter(|(n, _)| self.find(n).is_none())
            .collect();
        if !(self.options.strict && self.exists) {
            self.add_columns(&missing)?;
        }
        for key in &self.options.keys {
            if self.find(key).is_none() {
                return Err(crate::error::usage(format!(
                    "key column {key:?} is neither in the input nor in table {}",
                    self.qtable
                )));
            }
        }
        Ok(())
    }

    fn insert(&mut self, fields: &Fields<'_>, _line: &[u8]) -> Result<Result<(), String>> {
        for key in &self.options.keys {
            if fields
                .iter()
                .find(|(n, _)| n == key)
                .is_none_or(|(_, v)| v.is_null())
            {
                return Ok(Err(format!("key field {key:?} is null or missing")));
            }
        }
        let mut new_columns = Vec::new();
        for (name, value) in fields {
            if self.find(name).is_none() {
                if self.options.strict {
                    return Ok(Err(format!(
                        "field {name:?} is not a column of {} (--schema strict)",
                        self.qtable
                    )));
                }
                match type_of_value(value) {
                    Some(t) => new_columns.push((name.to_string(), t)),
                    None if !self.null_only.iter().any(|n| n == name) => {
                        self.null_only.push(name.to_string());
                    }
                    None => {}
                }
            }
        }
        if !new_columns.is_empty() {
            self.add_columns(&new_columns)?;
        }
        let named: Vec<usize> = fields
            .iter()
            .filter_map(|(name, _)| self.find(name))
            .filter(|i| !self.copy_cols.contains(i))
            .collect();
        if !named.is_empty() {
            // Rows so far go with the old column list; later ones with the new.
            self.flush()?;
            for i in named {
                if !self.copy_cols.contains(&i) {
                    self.copy_cols.push(i);
                }
            }
        }
        if self.copy_cols.is_empty() {
            // A record with no values at all: a row of defaults.
            let target = self.copy_target();
            conn(&mut self.copy, &mut self.client, &self.name)?
                .batch_execute(&format!("INSERT INTO {target} DEFAULT VALUES"))
                .map_err(pg_err("cannot insert a row of defaults"))?;
            return Ok(Ok(()));
        }
        let start = self.chunk.len();
        for (n, &i) in self.copy_cols.iter().enumerate() {
            let column = &self.columns[i];
            if n > 0 {
                self.chunk.push(b'\t');
            }
            let value = fields
                .iter()
                .find(|(n, _)| *n == column.name)
                .map_or(&Raw::Null, |(_, v)| v);
            if let Err(reason) = copy_value(&mut self.chunk, column.kind, &column.type_name, value)
            {
                self.chunk.truncate(start);
                return Ok(Err(format!("column {:?}: {reason}", column.name)));
            }
        }
        self.chunk.push(b'\n');
        if self.chunk.len() >= CHUNK {
            self.flush()?;
        }
        Ok(Ok(()))
    }

    fn end_stream(&mut self, end: &End) -> Result<()> {
        self.ends.push(end.clone());
        Ok(())
    }

    /// Batch ids are scoped to (target table, stream); legacy rows
    /// (from before, without a table) match every table: the rules are
    /// those of `crate::sqlite::sink::BATCH_TABLE`.
    fn batch_committed(&mut self, stream: &str, id: &str) -> Result<bool> {
        let table = format!("{}.\"_etl_batches\"", quote(&self.schema));
        let client = conn(&mut self.copy, &mut self.client, &self.name)?;
        let (exists, scoped): (bool, bool) = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL, EXISTS (SELECT 1 FROM pg_attribute \
                 WHERE attrelid = to_regclass($1) AND attname = 'target_table' AND NOT attisdropped)",
                &[&table],
            )
            .map(|r| (r.get(0), r.get(1)))
            .map_err(pg_err("cannot look for the batch table"))?;
        if !exists {
            return Ok(false);
        }
        let found = if scoped {
            client.query_opt(
                &format!(
                    "SELECT 1 FROM {table} WHERE id = $1 \
                     AND ((target_table = $2 AND stream = $3) OR target_table IS NULL) LIMIT 1"
                ),
                &[&id, &self.table, &stream],
            )
        } else {
            client.query_opt(&format!("SELECT 1 FROM {table} WHERE id = $1"), &[&id])
        };
        Ok(found
            .map_err(pg_err("cannot read the batch table"))?
            .is_some())
    }

    fn record_batch(&mut self, stream: &str, id: &str) -> Result<()> {
        let table = format!("{}.\"_etl_batches\"", quote(&self.schema));
        let client = conn(&mut self.copy, &mut self.client, &self.name)?;
        let scoped: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_attribute \
                 WHERE attrelid = to_regclass($1) AND attname = 'target_table' AND NOT attisdropped)",
                &[&table],
            )
            .map_err(pg_err("cannot look for the batch table"))?
            .get(0);
        if !scoped {
            // Created, or migrated in place from the legacy shape (id
            // PRIMARY KEY: its rows keep a NULL table and stream), by one
            // load at a time: concurrent first loads into other tables
            // wait here, then find it done.
            client
                .execute(
                    "SELECT pg_advisory_xact_lock(hashtext($1))",
                    &[&format!("etlkit-batches:{}", self.schema)],
                )
                .map_err(pg_err("cannot take the batch table's lock"))?;
            client
                .batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS {schema}; \
                     CREATE TABLE IF NOT EXISTS {table} (target_table text, stream text, \
                       id text NOT NULL, committed_at timestamptz NOT NULL DEFAULT now()); \
                     ALTER TABLE {table} ADD COLUMN IF NOT EXISTS target_table text, \
                       ADD COLUMN IF NOT EXISTS stream text, \
                       DROP CONSTRAINT IF EXISTS \"_etl_batches_pkey\"; \
                     CREATE UNIQUE INDEX IF NOT EXISTS \"_etl_batches_scope\" \
                       ON {table} (target_table, stream, id)",
                    schema = quote(&self.schema)
                ))
                .map_err(pg_err("cannot create or migrate the batch table"))?;
        }
        client
            .execute(
                &format!(
                    "INSERT INTO {table} (target_table, stream, id) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING"
                ),
                &[&self.table, &stream, &id],
            )
            .map_err(pg_err("cannot record the batch"))?;
        Ok(())
    }

    fn commit_point(&mut self) -> Result<()> {
        self.settle()?;
        conn(&mut self.copy, &mut self.client, &self.name)?
            .batch_execute("COMMIT")
            .map_err(pg_err("cannot commit"))?;
        self.begin()
    }

    fn commit(mut self: Box<Self>) -> Result<Vec<String>> {
        self.settle()?;
        conn(&mut self.copy, &mut self.client, &self.name)?
            .batch_execute("COMMIT")
            .map_err(|e| anyhow::anyhow!("{}: cannot commit: {}", self.name, db_message(&e)))?;
        let mut log = std::mem::take(&mut self.log);
        if self.deleted > 0 {
            log.push(format!("deleted {} rows (--delete-when)", self.deleted));
        }
        Ok(log)
    }

    fn abort(mut self: Box<Self>) {
        // The server rolls back if this fails too (the session ends).
        if let Ok(client) = conn(&mut self.copy, &mut self.client, &self.name) {
            let _ = client.batch_execute("ROLLBACK");
        }
    }
}
