//! A SQLite database as a sink: the run is one transaction (or one per
//! stream segment with `--commit segment`), and the stream's bookmark is
//! stored in `_etl_state` inside the same transaction as its rows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::Connection;
use serde_json::Value;

use super::Sink;
use super::table::{TableOptions, TableWriter};
use crate::error::{Failure, Kind};
use crate::format::flat::Fields;
use crate::record::Schema;
use crate::state;
use crate::wire::End;

/// The table that remembers which `etl-watch` batches were committed.
pub const BATCH_TABLE: &str = "_etl_batches";

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
    writer: TableWriter<'c>,
    ends: Vec<End>,
}

impl<'c> SqliteSink<'c> {
    /// A sink for `table` in `target`'s transaction.
    pub fn new(target: &'c SqliteTarget, table: &str, options: TableOptions) -> Result<Self> {
        Ok(SqliteSink {
            writer: TableWriter::new(target.connection(), table, options)?,
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

    fn batch_committed(&mut self, id: &str) -> Result<bool> {
        let conn = self.target.connection();
        let exists: bool = conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [BATCH_TABLE],
            |r| r.get(0),
        )?;
        if !exists {
            return Ok(false);
        }
        Ok(conn.query_row(
            &format!("SELECT count(*) > 0 FROM \"{BATCH_TABLE}\" WHERE id = ?1"),
            [id],
            |r| r.get(0),
        )?)
    }

    fn record_batch(&mut self, id: &str) -> Result<()> {
        let conn = self.target.connection();
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS \"{BATCH_TABLE}\" (id TEXT PRIMARY KEY, committed_at TEXT NOT NULL)"
        ))?;
        conn.execute(
            &format!(
                "INSERT OR IGNORE INTO \"{BATCH_TABLE}\" (id, committed_at) \
                 VALUES (?1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
            ),
            [id],
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

/// Refuses a stream whose extract started from a bookmark that is no longer
/// the stored one: another run has loaded this stream since, and loading
/// this one too would repeat or skip rows.
pub fn check_starting_point(stream: &str, stored: &Value, from: &Value) -> Result<()> {
    if stored != from {
        return Err(Failure::new(
            Kind::Runtime,
            format!(
                "stream {stream:?}: the stored bookmark {stored} is not the one this \
                 extract started from ({from}): another run loaded the stream meanwhile"
            ),
        )
        .hint("run the job again; and check that etl-extract --state names this target")
        .into());
    }
    Ok(())
}
