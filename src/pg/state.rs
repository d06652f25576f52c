//! PostgreSQL's state store: bookmarks in `_etl_state` and committed batch
//! ids in `_etl_batches` of the target's schema, read and written inside
//! the load's transaction, so they commit with the rows or not at all.
//! [`PgState`] is the store a load reads and writes them through; it holds
//! the load's connection, which the table and the COPY borrow from it.

use anyhow::{Context, Result};
use postgres::Client;
use serde_json::Value;

use super::conn::pg_err;
use super::stage::Session;
use super::table::quote;
use crate::runs::{RUNS_TABLE, RunRecord};
use crate::state::{BATCH_TABLE, STATE_TABLE, StateChanges, StateStore};

/// The state of one target table, read and written through the load's
/// connection, inside its transaction.
pub struct PgState {
    session: Session,
    schema: String,
    table: String,
}

impl PgState {
    /// The state kept for `table` in `schema`, over the load's `session`.
    pub fn new(session: Session, schema: &str, table: &str) -> PgState {
        PgState {
            session,
            schema: schema.to_string(),
            table: table.to_string(),
        }
    }

    /// The load's connection (also the table's and the COPY's).
    pub fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    /// Writes a run's bookmarks, its record and the batch ids it loaded,
    /// inside the load's transaction.
    pub fn write(&mut self, changes: &StateChanges) -> Result<()> {
        let client = self.session.client()?;
        write_changes(client, &self.schema, &self.table, changes)
    }
}

/// The bookmark is read with its row locked (until the load commits).
impl StateStore for PgState {
    fn bookmark(&mut self, stream: &str) -> Result<Option<Value>> {
        let client = self.session.client()?;
        read_bookmark(client, &self.schema, stream, true)
    }

    fn batch_committed(&mut self, stream: &str, id: &str) -> Result<bool> {
        let client = self.session.client()?;
        batch_committed(client, &self.schema, &self.table, stream, id)
    }
}

fn state_table(schema: &str) -> String {
    format!("{}.\"{STATE_TABLE}\"", quote(schema))
}

fn batch_table(schema: &str) -> String {
    format!("{}.\"{BATCH_TABLE}\"", quote(schema))
}

/// The stored bookmark of `stream`. Inside a load (`lock`), the row is
/// locked until the load commits, so a concurrent run waits to read it.
pub fn read_bookmark(
    client: &mut Client,
    schema: &str,
    stream: &str,
    lock: bool,
) -> Result<Option<Value>> {
    let table = state_table(schema);
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .map_err(pg_err("cannot look for the state table"))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_opt(
            &format!(
                "SELECT bookmark::text FROM {table} WHERE stream = $1{}",
                if lock { " FOR UPDATE" } else { "" }
            ),
            &[&stream],
        )
        .map_err(pg_err("cannot read the bookmark"))?;
    match row {
        Some(r) => Ok(Some(
            serde_json::from_str(r.get::<_, &str>(0)).context("stored bookmark is not JSON")?,
        )),
        None => Ok(None),
    }
}

/// The stored bookmark of `stream` in the database at `url` (outside any
/// load), for `etl-extract --state postgres://...`; `schema` none: the
/// connection's current schema.
pub fn read_bookmark_url(url: &str, schema: Option<&str>, stream: &str) -> Result<Option<Value>> {
    let mut client = super::conn::connect(url)?;
    let schema = super::table::schema_of(&mut client, schema, &super::conn::redact(url))?;
    read_bookmark(&mut client, &schema, stream, false).context("cannot read state")
}

/// Was batch `id` of `stream` committed into `table` before? Batch ids are
/// scoped to (target table, stream); legacy rows (from before, without a
/// table) match every table: see [`BATCH_TABLE`].
fn batch_committed(
    client: &mut Client,
    schema: &str,
    table: &str,
    stream: &str,
    id: &str,
) -> Result<bool> {
    let batches = batch_table(schema);
    let (exists, scoped): (bool, bool) = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL, EXISTS (SELECT 1 FROM pg_attribute \
             WHERE attrelid = to_regclass($1) AND attname = 'target_table' AND NOT attisdropped)",
            &[&batches],
        )
        .map(|r| (r.get(0), r.get(1)))
        .map_err(pg_err("cannot look for the batch table"))?;
    if !exists {
        return Ok(false);
    }
    let found = if scoped {
        client.query_opt(
            &format!(
                "SELECT 1 FROM {batches} WHERE id = $1 \
                 AND ((target_table = $2 AND stream = $3) OR target_table IS NULL) LIMIT 1"
            ),
            &[&id, &table, &stream],
        )
    } else {
        client.query_opt(&format!("SELECT 1 FROM {batches} WHERE id = $1"), &[&id])
    };
    Ok(found
        .map_err(pg_err("cannot read the batch table"))?
        .is_some())
}

/// Writes a run's bookmarks and the batch ids it loaded into `table`,
/// inside the load's transaction.
fn write_changes(
    client: &mut Client,
    schema: &str,
    table: &str,
    changes: &StateChanges,
) -> Result<()> {
    if changes.bookmarks().next().is_some() {
        let state = state_table(schema);
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {state} (stream text PRIMARY KEY, bookmark json NOT NULL, \
                 rows bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())"
            ))
            .map_err(pg_err("cannot create the state table"))?;
        for (stream, bookmark, rows) in changes.bookmarks() {
            client
                .execute(
                    &format!(
                        "INSERT INTO {state} (stream, bookmark, rows) VALUES ($1, $2::text::json, $3) \
                         ON CONFLICT (stream) DO UPDATE SET bookmark = excluded.bookmark, \
                         rows = excluded.rows, updated_at = now()"
                    ),
                    &[&stream, &bookmark.to_string(), &(rows as i64)],
                )
                .map_err(pg_err("cannot store the bookmark"))?;
        }
    }
    if let Some(run) = &changes.run {
        record_run(client, schema, table, run)?;
    }
    if changes.batches.is_empty() {
        return Ok(());
    }
    let batches = batch_table(schema);
    let scoped: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute \
             WHERE attrelid = to_regclass($1) AND attname = 'target_table' AND NOT attisdropped)",
            &[&batches],
        )
        .map_err(pg_err("cannot look for the batch table"))?
        .get(0);
    if !scoped {
        // Created, or migrated in place from the legacy shape (id PRIMARY
        // KEY: its rows keep a NULL table and stream), by one load at a
        // time: concurrent first loads into other tables wait here, then
        // find it done.
        client
            .execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                &[&format!("etlkit-batches:{schema}")],
            )
            .map_err(pg_err("cannot take the batch table's lock"))?;
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {quoted}; \
                 CREATE TABLE IF NOT EXISTS {batches} (target_table text, stream text, \
                   id text NOT NULL, committed_at timestamptz NOT NULL DEFAULT now()); \
                 ALTER TABLE {batches} ADD COLUMN IF NOT EXISTS target_table text, \
                   ADD COLUMN IF NOT EXISTS stream text, \
                   DROP CONSTRAINT IF EXISTS \"{BATCH_TABLE}_pkey\"; \
                 CREATE UNIQUE INDEX IF NOT EXISTS \"{BATCH_TABLE}_scope\" \
                   ON {batches} (target_table, stream, id)",
                quoted = quote(schema)
            ))
            .map_err(pg_err("cannot create or migrate the batch table"))?;
    }
    for (stream, id) in &changes.batches {
        let recorded = client
            .execute(
                &format!(
                    "INSERT INTO {batches} (target_table, stream, id) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING"
                ),
                &[&table, stream, id],
            )
            .map_err(pg_err("cannot record the batch"))?;
        if recorded == 0 && !changes.reloaded {
            // (A replace run loads a committed batch again on purpose.)
            // Another load of the same batch (one left running by a crashed
            // watcher) committed it after this one looked: loading it too
            // would repeat it. The rerun finds it and skips it.
            anyhow::bail!(
                "batch {id} was committed by another load meanwhile; nothing of this run \
                 is committed (run it again: the batch is then skipped)"
            );
        }
    }
    Ok(())
}

/// Adds a run to `_etl_runs` (inside the caller's transaction).
pub fn record_run(client: &mut Client, schema: &str, table: &str, run: &RunRecord) -> Result<()> {
    let runs = format!("{}.\"{RUNS_TABLE}\"", quote(schema));
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {quoted}; \
             CREATE TABLE IF NOT EXISTS {runs} (run_id bigserial PRIMARY KEY, job text NOT NULL, \
             target_table text NOT NULL, started_at timestamptz NOT NULL, ended_at timestamptz NOT NULL, \
             rows_read bigint NOT NULL, rows_written bigint NOT NULL, rows_rejected bigint NOT NULL, \
             rows_skipped bigint NOT NULL, bookmark_before jsonb, bookmark_after jsonb, \
             batches jsonb, status text NOT NULL, error text)",
            quoted = quote(schema)
        ))
        .map_err(pg_err("cannot create the run history table"))?;
    let json = run.to_json();
    client
        .execute(
            &format!(
                "INSERT INTO {runs} (job, target_table, started_at, ended_at, rows_read, rows_written, \
                 rows_rejected, rows_skipped, bookmark_before, bookmark_after, batches, status, error) \
                 VALUES ($1, $2, to_timestamp($3), to_timestamp($4), $5, $6, $7, $8, \
                 $9::text::jsonb, $10::text::jsonb, $11::text::jsonb, $12, $13)"
            ),
            &[
                &run.job,
                &table,
                &run.started,
                &run.ended,
                &(run.read as i64),
                &(run.written as i64),
                &(run.rejected as i64),
                &(run.skipped as i64),
                &json["bookmark_before"].to_string(),
                &json["bookmark_after"].to_string(),
                &json["batches"].to_string(),
                &run.status.name(),
                &run.error,
            ],
        )
        .map_err(pg_err("cannot record the run"))?;
    Ok(())
}

/// Records a failed run in its own transaction, after the load's was
/// rolled back.
pub fn record_failed_run(
    url: &str,
    schema: Option<&str>,
    table: &str,
    run: &RunRecord,
) -> Result<()> {
    let mut client = super::conn::connect(url)?;
    let schema = super::table::schema_of(&mut client, schema, &super::conn::redact(url))?;
    record_run(&mut client, &schema, table, run)
}
