//! A SQLite database as a sink: the run is one transaction (or one per
//! stream segment with `--commit segment`), and the stream's bookmark is
//! stored in `_etl_state` inside the same transaction as its rows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::Connection;

use super::state::SqliteState;
use super::table::TableWriter;
use crate::format::flat::Fields;
use crate::record::Schema;
use crate::sink::{Sink, TableOptions};
use crate::state::{StateChanges, StateStore};

/// An open SQLite database with a write transaction in progress.
#[derive(Debug)]
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

    /// Undoes the open transaction, if one is open. A database file this
    /// run created stays (empty): another load may already be waiting on
    /// it, and deleting it would make that load's commit vanish.
    pub fn rollback(&self) {
        if !self.conn.is_autocommit() {
            // The transaction dies with the connection even if ROLLBACK fails.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// Loads into one table of an open [`SqliteTarget`].
pub struct SqliteSink<'c> {
    target: &'c SqliteTarget,
    table: String,
    writer: TableWriter<'c>,
    state: SqliteState<'c>,
}

impl<'c> SqliteSink<'c> {
    /// A sink for `table` in `target`'s transaction.
    pub fn new(target: &'c SqliteTarget, table: &str, options: TableOptions) -> Result<Self> {
        Ok(SqliteSink {
            writer: TableWriter::new(target.connection(), table, options)?,
            state: SqliteState::new(target.connection(), table),
            table: table.to_string(),
            target,
        })
    }

    /// Columns for null-only fields, then the bookmarks and batch ids:
    /// everything that must be in the transaction before it commits.
    fn settle(&mut self, changes: &StateChanges) -> Result<()> {
        self.writer.finish()?;
        self.state.write(changes)
    }
}

impl Sink for SqliteSink<'_> {
    fn state(&mut self) -> &mut dyn StateStore {
        &mut self.state
    }

    fn prepare(&mut self, schema: &Schema, sample: &[&Fields<'_>]) -> Result<()> {
        self.writer.prepare(schema, sample)
    }

    fn insert(&mut self, fields: &Fields<'_>, _line: &[u8]) -> Result<Result<(), String>> {
        self.writer.insert(fields)
    }

    fn commit_point(&mut self, changes: &StateChanges) -> Result<()> {
        self.settle(changes)?;
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

    fn commit(mut self: Box<Self>, changes: &StateChanges) -> Result<Vec<String>> {
        if let Err(err) = self.settle(changes).and_then(|()| self.target.commit()) {
            self.target.rollback();
            return Err(err);
        }
        let mut log = self.writer.take_log();
        if self.writer.deleted() > 0 {
            log.push(format!(
                "deleted {} rows (--delete-when)",
                self.writer.deleted()
            ));
        }
        Ok(log)
    }

    fn describe(&mut self) -> Result<Vec<String>> {
        self.writer.finish()?;
        let conn = self.target.connection();
        let mut stmt = conn.prepare(
            "SELECT sql FROM sqlite_master WHERE tbl_name = ?1 AND sql IS NOT NULL \
             ORDER BY type DESC, name",
        )?;
        let ddl = stmt
            .query_map([&self.table], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(ddl.into_iter().map(|sql| format!("{sql};")).collect())
    }

    fn abort(self: Box<Self>) {
        self.target.rollback();
    }
}
