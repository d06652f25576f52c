//! A SQLite database as a sink: the run is one transaction (or one per
//! stream segment with `--commit segment`), and the stream's bookmark is
//! stored in `_etl_state` inside the same transaction as its rows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::Connection;
use serde_json::Value;

use super::table::TableWriter;
use crate::format::flat::Fields;
use crate::incremental::check_starting_point;
use crate::record::Schema;
use crate::sink::Sink;
use crate::sink::TableOptions;
use crate::state;
use crate::wire::End;

/// The table that remembers which `etl-watch` batches were committed: one
/// row per (target table, stream, batch id), so that two jobs following
/// the same file into two tables (or under two stream names) each load
/// every batch, while a batch sent again to the same table and stream is
/// skipped.
///
/// Databases written before batch ids were scoped hold `_etl_batches (id
/// PRIMARY KEY, committed_at)`. The first batch recorded migrates it in
/// place, inside the load's transaction: `target_table` and `stream` are
/// added and the old rows keep NULL in both. Such a legacy row means
/// "committed into some table of this database, by some stream": it
/// matches its id for every table and stream, so the job that wrote it
/// never loads that batch twice. It does not block other tables: ids of
/// batches cut since are tagged and cover the batch's bytes, so they never
/// equal an id cut before; only a batch that was in flight at the upgrade,
/// sent again with its old id, can meet a legacy row (at worst that one
/// batch of a job whose very batch another table had committed is skipped,
/// as it was before).
pub const BATCH_TABLE: &str = "_etl_batches";

/// The shape of `_etl_batches`: `None` when missing, `Some(true)` when it
/// is scoped (has `target_table` and `stream`), `Some(false)` when legacy.
fn batch_table_scoped(conn: &Connection) -> Result<Option<bool>> {
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info(?1)")?
        .query_map([BATCH_TABLE], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if columns.is_empty() {
        return Ok(None);
    }
    Ok(Some(columns.iter().any(|c| c == "target_table")))
}

/// Creates the scoped batch table, or migrates a legacy one in place.
fn ensure_batch_table(conn: &Connection) -> Result<()> {
    let create = |name: &str| {
        format!(
            "CREATE TABLE IF NOT EXISTS \"{name}\" (target_table TEXT, stream TEXT, \
             id TEXT NOT NULL, committed_at TEXT NOT NULL, UNIQUE (target_table, stream, id))"
        )
    };
    match batch_table_scoped(conn)? {
        Some(true) => Ok(()),
        None => Ok(conn.execute_batch(&create(BATCH_TABLE))?),
        Some(false) => {
            let scoped = format!("{BATCH_TABLE}_scoped");
            conn.execute_batch(&format!(
                "{}; \
                 INSERT INTO \"{scoped}\" (target_table, stream, id, committed_at) \
                   SELECT NULL, NULL, id, committed_at FROM \"{BATCH_TABLE}\"; \
                 DROP TABLE \"{BATCH_TABLE}\"; \
                 ALTER TABLE \"{scoped}\" RENAME TO \"{BATCH_TABLE}\"",
                create(&scoped)
            ))
            .context("cannot add the table and stream columns to the batch table")
        }
    }
}

/// An open SQLite database with a write transaction in progress.
pub struct SqliteTarget {
    path: PathBuf,
    conn: Connection,
}

impl SqliteTarget {
    /// Opens (or creates) the database and takes the write lock. Another
    /// load of the same file is waited for, up to `wait`.
    pub fn open(path: &Path, wait: Duration) -> Result<Self> {
        let name = path.display();
        let conn = Connection::open(path)
            .with_context(|| format!("cannot open SQLite database {name}"))?;
        let target = SqliteTarget {
            path: path.to_path_buf(),
            conn,
        };
        target
            .conn
            .busy_timeout(wait)
            .and_then(|()| {
                target
                    .conn
                    .execute_batch("PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY;")
            })
            .and_then(|()| target.conn.execute_batch("BEGIN IMMEDIATE"))
            .with_context(|| format!("cannot start a write transaction on {name}"))?;
        Ok(target)
    }

    /// The connection, inside the run's transaction.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn commit(&self) -> Result<()> {
        self.conn
            .execute_batch("COMMIT")
            .with_context(|| format!("cannot commit to {}", self.path.display()))
    }

    /// Undoes the open transaction. A database file this run created stays
    /// (empty): another load may already be waiting on it, and deleting it
    /// would make that load's commit vanish.
    pub fn rollback(self) {
        // The transaction dies with the connection even if ROLLBACK fails.
        let _ = self.conn.execute_batch("ROLLBACK");
    }
}

/// Loads into one table of an open [`SqliteTarget`].
pub struct SqliteSink<'c> {
    target: &'c SqliteTarget,
    table: String,
    writer: TableWriter<'c>,
    ends: Vec<End>,
}

impl<'c> SqliteSink<'c> {
    /// A sink for `table` in `target`'s transaction.
    pub fn new(target: &'c SqliteTarget, table: &str, options: TableOptions) -> Result<Self> {
        Ok(SqliteSink {
            writer: TableWriter::new(target.connection(), table, options)?,
            table: table.to_string(),
            target,
            ends: Vec::new(),
        })
    }

    /// Columns for null-only fields, then the bookmarks: everything that
    /// must be in the transaction before it commits.
    fn settle(&mut self) -> Result<()> {
        self.writer.finish()?;
        for end in self.ends.drain(..) {
            if let Some(bookmark) = &end.bookmark {
                state::write_sqlite(self.target.connection(), &end.stream, bookmark, end.rows)?;
            }
        }
        Ok(())
    }
}

impl Sink for SqliteSink<'_> {
    fn check_start(&mut self, stream: &str, from: &Value) -> Result<()> {
        let stored = state::read_sqlite(self.target.connection(), stream)?.unwrap_or(Value::Null);
        check_starting_point(stream, &stored, from)
    }

    fn prepare(&mut self, schema: &Schema, sample: &[&Fields<'_>]) -> Result<()> {
        self.writer.prepare(schema, sample)
    }

    fn insert(&mut self, fields: &Fields<'_>, _line: &[u8]) -> Result<Result<(), String>> {
        self.writer.insert(fields)
    }

    fn end_stream(&mut self, end: &End) -> Result<()> {
        self.ends.push(end.clone());
        Ok(())
    }

    fn batch_committed(&mut self, stream: &str, id: &str) -> Result<bool> {
        let conn = self.target.connection();
        let committed = match batch_table_scoped(conn)? {
            None => false,
            // Legacy rows (no table) match every table: see BATCH_TABLE.
            Some(true) => conn.query_row(
                &format!(
                    "SELECT count(*) > 0 FROM \"{BATCH_TABLE}\" WHERE id = ?1 \
                     AND ((target_table = ?2 AND stream = ?3) OR target_table IS NULL)"
                ),
                [id, &self.table, stream],
                |r| r.get(0),
            )?,
            Some(false) => conn.query_row(
                &format!("SELECT count(*) > 0 FROM \"{BATCH_TABLE}\" WHERE id = ?1"),
                [id],
                |r| r.get(0),
            )?,
        };
        Ok(committed)
    }

    fn record_batch(&mut self, stream: &str, id: &str) -> Result<()> {
        let conn = self.target.connection();
        ensure_batch_table(conn)?;
        conn.execute(
            &format!(
                "INSERT OR IGNORE INTO \"{BATCH_TABLE}\" (target_table, stream, id, committed_at) \
                 VALUES (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
            ),
            [&self.table, stream, id],
        )
        .context("cannot record the batch")?;
        Ok(())
    }

    fn commit_point(&mut self) -> Result<()> {
        self.settle()?;
        self.target.commit()?;
        self.target
            .connection()
            .execute_batch("BEGIN IMMEDIATE")
            .with_context(|| {
                format!(
                    "cannot start a write transaction on {}",
                    self.target.path.display()
                )
            })
    }

    fn commit(mut self: Box<Self>) -> Result<Vec<String>> {
        self.settle()?;
        self.target.commit()?;
        let mut log = self.writer.take_log();
        if self.writer.deleted() > 0 {
            log.push(format!(
                "deleted {} rows (--delete-when)",
                self.writer.deleted()
            ));
        }
        Ok(log)
    }

    fn abort(self: Box<Self>) {
        // The caller rolls the target back once the sink is gone.
    }
}
