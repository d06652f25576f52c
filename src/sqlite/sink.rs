//! A SQLite database as a sink: the run is one transaction (or one per
//! stream segment with `--commit segment`) on the target opened in
//! `conn.rs`, in which the table is created or widened (`table.rs`), rows
//! are inserted with prepared statements (`stage.rs`), and the stream's
//! bookmark is stored in `_etl_state` (`state.rs`).

use anyhow::Result;

pub use super::conn::SqliteTarget;
use super::stage::{Stage, rows_before_sync};
use super::state::SqliteState;
use super::table::Table;
use crate::format::flat::Fields;
use crate::record::Schema;
use crate::sink::sync;
use crate::sink::{LoadOptions, Sink};
use crate::state::{StateChanges, StateStore};

/// Loads into one table of an open [`SqliteTarget`].
pub struct SqliteSink<'c> {
    target: &'c SqliteTarget,
    table: Table<'c>,
    stage: Stage<'c>,
    state: SqliteState<'c>,
    /// Rows `--mode sync` removed (or marked).
    swept: Option<u64>,
    /// `--mode sync`: the table's rows before the load.
    rows_before: Option<u64>,
}

impl<'c> SqliteSink<'c> {
    /// A sink for `table` in `target`'s transaction.
    pub fn new(target: &'c SqliteTarget, table: &str, options: LoadOptions) -> Result<Self> {
        Ok(SqliteSink {
            table: Table::new(target.connection(), table, options)?,
            stage: Stage::new(target.connection()),
            state: SqliteState::new(target.connection(), table),
            target,
            swept: None,
            rows_before: None,
        })
    }

    /// Columns for null-only fields, then the bookmarks and batch ids:
    /// everything that must be in the transaction before it commits.
    fn settle(&mut self, changes: &StateChanges) -> Result<()> {
        self.stage.reset();
        self.table.finish()?;
        if self.table.options.mode.sweeps() && self.table.exists() {
            self.swept = Some(self.stage.sweep(&self.table, self.rows_before)?);
        }
        self.state.write(changes)
    }
}

impl Sink for SqliteSink<'_> {
    fn state(&mut self) -> &mut dyn StateStore {
        &mut self.state
    }

    fn prepare(&mut self, schema: &Schema, sample: &[&Fields<'_>]) -> Result<()> {
        self.table.prepare(schema, sample)?;
        if self.table.options.mode.sweeps() && self.rows_before.is_none() {
            self.rows_before = Some(rows_before_sync(self.target.connection(), &self.table)?);
        }
        Ok(())
    }

    fn insert(&mut self, fields: &Fields<'_>, _line: &[u8]) -> Result<Result<(), String>> {
        self.stage.insert(&mut self.table, fields)
    }

    fn commit_point(&mut self, changes: &StateChanges) -> Result<()> {
        self.settle(changes)?;
        self.target.commit()?;
        self.target.begin()
    }

    fn commit(mut self: Box<Self>, changes: &StateChanges) -> Result<Vec<String>> {
        if let Err(err) = self.settle(changes).and_then(|()| self.target.commit()) {
            self.target.rollback();
            return Err(err);
        }
        let mut log = self.table.take_log();
        if self.stage.deleted() > 0 {
            log.push(format!(
                "deleted {} rows (--delete-when)",
                self.stage.deleted()
            ));
        }
        if let Some(removed) = self.swept {
            log.push(sync::summary(removed, &self.table.options.sync));
        }
        Ok(log)
    }

    fn describe(&mut self) -> Result<Vec<String>> {
        self.stage.reset();
        self.table.finish()?;
        self.table.describe()
    }

    fn abort(self: Box<Self>) {
        self.target.rollback();
    }
}
