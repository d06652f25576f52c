//! A MySQL or MariaDB table as a sink.
//!
//! Append and replace into a table that exists go straight in with LOAD
//! DATA LOCAL INFILE inside one InnoDB transaction (`bulk.rs`: replace
//! empties the table first, in the same transaction), and a column added
//! mid-stream rolls the transaction back and sends its rows again after
//! the DDL.
//!
//! Otherwise (upsert, sync, a new table, a dry run) rows are checked and
//! staged in a TEMPORARY table as they come (`stage.rs`; with LOAD DATA
//! too, unless the server refuses LOCAL: then INSERT statements). At
//! commit, the target's DDL runs first (create the table, add columns,
//! the unique key for upsert: `table.rs`; the state tables: `state.rs`;
//! none of it holds rows yet), then one InnoDB transaction moves the staged
//! rows in order (upsert is INSERT ... ON DUPLICATE KEY UPDATE of the
//! fields each record carries) and stores the bookmarks and batch ids.
//!
//! Either way, a failure anywhere before COMMIT leaves the table's rows as
//! they were. Loads of one table take turns (GET_LOCK).

use anyhow::Result;
use mysql::prelude::Queryable;

use super::bulk::Bulk;
use super::conn::{self, message};
use super::stage::{RunKind, Stage};
use super::state::MysqlState;
use super::table::{Table, check_name, db_err, quote};
use super::values::TabText;
use crate::error::{Failure, Kind as ErrorKind};
use crate::format::flat::{Fields, Raw};
use crate::format::typing::{beyond_bigint, column_types_native};
use crate::record::{FieldType, Schema};
use crate::sink::sync::{self, Dialect, Sweep};
use crate::sink::{LoadMode, LoadOptions, Sink};
use crate::state::{StateChanges, StateStore};

/// Loads into one MySQL table.
pub struct MysqlSink {
    /// The state store, which holds the load's connection.
    state: MysqlState,
    table: Table,
    stage: Stage,
    /// The target as messages show it.
    name: String,
    options: LoadOptions,
    in_transaction: bool,
    log: Vec<String>,
    deleted: u64,
    /// Rows `--mode sync` removed (or marked).
    swept: Option<u64>,
    /// Append and replace into an existing table: rows go straight in with
    /// LOAD DATA (`None`: through the staging table).
    bulk: Option<Bulk>,
    /// Replace emptied the table (said once, however often it restarts).
    emptied: bool,
}

impl MysqlSink {
    /// Connects, takes the table's load lock (a second load of the same
    /// table waits up to `wait_seconds`) and reads the table's columns.
    pub fn open(url: &str, table: &str, options: LoadOptions, wait_seconds: u64) -> Result<Self> {
        let name = conn::redact(url);
        let database = conn::database(url)?;
        if let Err(reason) = check_name("table", table) {
            return Err(crate::error::usage(format!("--table: {reason}")));
        }
        let mut conn = conn::connect(url)?;
        let lock = format!(
            "etlkit:{}",
            crate::incremental::fingerprint(format!("{database}.{table}").as_bytes())
        );
        let got: Option<Option<i64>> = conn
            .exec_first("SELECT GET_LOCK(?, ?)", (&lock, wait_seconds))
            .map_err(db_err("cannot take the table's load lock"))?;
        if got.flatten() != Some(1) {
            return Err(Failure::new(
                ErrorKind::Runtime,
                format!(
                    "{name}: another load of table {table:?} is still running after {wait_seconds} seconds"
                ),
            )
            .hint("wait for it, or give it longer with --wait SECONDS")
            .into());
        }
        let target = Table::read(&mut conn, &name, table)?;
        let mut stage = Stage::new(&mut conn)?;
        let mut log = Vec::new();
        let local: Option<i64> = conn
            .query_first("SELECT @@local_infile")
            .map_err(db_err("cannot read the server's local_infile"))?;
        let mut bulk = None;
        if local != Some(1) {
            log.push(
                "the server does not allow LOAD DATA LOCAL INFILE (local_infile is OFF): \
                 rows went in INSERT statements, which is slower"
                    .to_string(),
            );
        } else if matches!(options.mode, LoadMode::Append | LoadMode::Replace)
            && options.delete_when.is_none()
            && target.exists
            && !options.dry_run
        {
            bulk = Some(Bulk::default());
        } else {
            stage.load_data = true;
        }
        Ok(MysqlSink {
            state: MysqlState::new(conn, &name, table),
            table: target,
            stage,
            name,
            options,
            in_transaction: false,
            log,
            deleted: 0,
            swept: None,
            bulk,
            emptied: false,
        })
    }

    /// Sends the buffered rows to the staging table.
    fn flush(&mut self) -> Result<()> {
        self.stage.flush(
            self.state.conn()?,
            &mut self.table,
            &self.options.keys,
            &self.name,
        )
    }

    /// Stages one row of `kind` (`values`: its literals), or says why the
    /// server could not take it.
    fn stage_row(
        &mut self,
        kind: RunKind,
        values: &[u8],
        longest: Option<(usize, usize)>,
    ) -> Result<Result<(), String>> {
        if let Some(reason) = self.stage.too_large(
            &self.table,
            &self.options.keys,
            || kind.clone(),
            values.len(),
            longest,
        ) {
            return Ok(Err(reason));
        }
        self.stage.stage_row(
            self.state.conn()?,
            &mut self.table,
            &self.options.keys,
            &self.name,
            kind,
            values,
        )?;
        Ok(Ok(()))
    }

    /// The end of every transaction: DDL first, then the rows, bookmarks
    /// and batch ids in one transaction, committed.
    /// `last`: the run's final commit, after which nothing is cleaned up
    /// (the session ends; an error after the COMMIT would report
    /// committed rows as not loaded).
    fn settle(&mut self, changes: &StateChanges, last: bool) -> Result<()> {
        if self.bulk.is_some() {
            return self.settle_bulk(changes, last);
        }
        self.flush()?;
        self.table
            .create_or_widen(self.state.conn()?, &self.options, &mut self.log)?;
        self.state.create_tables(changes)?;
        self.start_transaction()?;
        let conn = self.state.conn()?;
        if self.options.mode.sweeps() {
            // Before the staged rows go in: a run commits once (see
            // `cli/load.rs`), so the stage holds the whole stream.
            let seen = self.stage.seen(&self.options.keys);
            let sweep = Sweep {
                table: &self.table.qtable,
                seen: &seen,
                keys: self.options.keys.iter().map(|k| quote(k)).collect(),
                soft: self.options.sync.soft_delete.as_deref().map(quote),
                dialect: Dialect::Mysql,
            };
            let mut run = |sql: &str, count: bool| -> Result<u64> {
                if count {
                    let n: Option<u64> =
                        conn.query_first(sql).map_err(db_err("cannot count rows"))?;
                    Ok(n.unwrap_or(0))
                } else {
                    conn.query_drop(sql)
                        .map_err(db_err("cannot sync the table"))?;
                    Ok(conn.affected_rows())
                }
            };
            let removed = sweep.run(self.options.sync.max_deletes, None, &self.name, &mut run)?;
            self.swept = Some(removed);
        }
        let conn = self.state.conn()?;
        if self.options.mode != LoadMode::DeleteMissing {
            self.deleted += self.stage.apply(conn, &self.table, &self.options)?;
        }
        self.state.write(changes)?;
        self.commit_transaction()?;
        if last {
            return Ok(());
        }
        self.stage.clear(self.state.conn()?)
    }

    /// Starts the data's transaction; replace empties the table in it.
    fn start_transaction(&mut self) -> Result<()> {
        let conn = self.state.conn()?;
        conn.query_drop("START TRANSACTION")
            .map_err(db_err("cannot start a transaction"))?;
        self.in_transaction = true;
        if self.options.mode == LoadMode::Replace && self.table.exists {
            conn.query_drop(format!("DELETE FROM {}", self.table.qtable))
                .map_err(db_err("cannot empty the table for replace"))?;
            if !self.emptied {
                self.log
                    .push(format!("emptied table {:?} for replace", self.table.table));
                self.emptied = true;
            }
        }
        Ok(())
    }

    fn commit_transaction(&mut self) -> Result<()> {
        self.state
            .conn()?
            .query_drop("COMMIT")
            .map_err(|e| anyhow::anyhow!("{}: cannot commit: {}", self.name, message(&e)))?;
        self.in_transaction = false;
        Ok(())
    }

    /// Opens the data's transaction for LOAD DATA, first ending one that
    /// is open (rolled back: its rows are in the spill) and running the
    /// DDL that is due: the table's columns, and the state tables
    /// `changes` writes to. The rows sent so far go in again.
    fn restart_bulk(&mut self, changes: Option<&StateChanges>) -> Result<()> {
        let Some(bulk) = self.bulk.as_mut() else {
            anyhow::bail!("no LOAD DATA in this load");
        };
        bulk.end_run(self.state.session())?;
        if self.in_transaction {
            self.state
                .conn()?
                .query_drop("ROLLBACK")
                .map_err(db_err("cannot roll back to add a column"))?;
            self.in_transaction = false;
        }
        self.table
            .apply_ddl(self.state.conn()?, &self.options, &mut self.log)?;
        if let Some(changes) = changes {
            self.state.create_tables(changes)?;
        }
        self.start_transaction()?;
        if let Some(bulk) = self.bulk.as_mut() {
            bulk.replay(self.state.session())?;
        }
        Ok(())
    }

    /// Sends one row straight to the table with LOAD DATA, or says why it
    /// cannot go.
    fn load_row(&mut self, fields: &Fields<'_>) -> Result<Result<(), String>> {
        let (row, longest) = match Stage::encode::<TabText>(&self.table, fields) {
            Ok(encoded) => encoded,
            Err(reason) => return Ok(Err(reason)),
        };
        if let Some(reason) = self.stage.too_large(
            &self.table,
            &self.options.keys,
            || RunKind::Write(self.table.binder.columns().collect()),
            row.0.len(),
            longest,
        ) {
            return Ok(Err(reason));
        }
        if self.table.needs_ddl() || !self.in_transaction {
            self.restart_bulk(None)?;
        }
        let Some(bulk) = self.bulk.as_mut() else {
            anyhow::bail!("no LOAD DATA in this load");
        };
        if !bulk.runs(self.table.binder.columns()) {
            let run = self.table.binder.columns().collect();
            bulk.begin_run(self.state.session(), &self.table, run)?;
        }
        bulk.push_row(self.state.session(), &row.0)?;
        Ok(Ok(()))
    }

    /// The end of a transaction of LOAD DATA: the last rows sent, columns
    /// for null-only fields and the state tables created (after a rollback
    /// and a replay, if either needs DDL), then the bookmarks and batch ids
    /// written and the transaction committed.
    fn settle_bulk(&mut self, changes: &StateChanges, last: bool) -> Result<()> {
        if let Some(bulk) = self.bulk.as_mut() {
            bulk.end_run(self.state.session())?;
        }
        self.table.plan_null_only(&self.options)?;
        if !self.in_transaction || self.table.needs_ddl() || self.state.tables_missing(changes)? {
            self.restart_bulk(Some(changes))?;
        }
        self.state.write(changes)?;
        self.commit_transaction()?;
        if let Some(bulk) = self.bulk.as_mut()
            && !last
        {
            bulk.committed()?;
        }
        Ok(())
    }
}

/// Integers past BIGINT's top in the sample of `name`, and none below
/// zero: BIGINT UNSIGNED holds them all.
fn unsigned_only(sample: &[&Fields<'_>], name: &str) -> bool {
    beyond_bigint(sample, name)
        && !sample
            .iter()
            .flat_map(|f| f.iter())
            .any(|(n, v)| n == name && matches!(v, Raw::Number(x) if x.starts_with('-')))
}

impl Sink for MysqlSink {
    fn state(&mut self) -> &mut dyn StateStore {
        &mut self.state
    }

    fn prepare(&mut self, schema: &Schema, sample: &[&Fields<'_>]) -> Result<()> {
        if self.options.mode == LoadMode::DeleteMissing && !self.table.exists {
            anyhow::bail!(
                "--mode delete-missing: table {} does not exist, so nothing can be missing from it",
                self.table.qtable
            );
        }
        let missing: Vec<(String, FieldType)> = column_types_native(schema, sample)
            .into_iter()
            .filter(|(n, _)| self.table.find(n).is_none())
            .collect();
        if !(self.options.strict && self.table.exists) {
            for (name, t) in missing {
                self.table.plan_column(&name, t, &self.options.keys)?;
                if t == FieldType::Integer && unsigned_only(sample, &name) {
                    self.table.plan_unsigned(&name);
                }
            }
        }
        if let Some(col) = self.options.sync.soft_delete.clone()
            && self.table.find(&col).is_none()
        {
            self.table
                .plan_column(&col, FieldType::TimestampTz, &self.options.keys)?;
        }
        self.table.declare(schema);
        for key in &self.options.keys {
            if self.table.find(key).is_none() {
                return Err(crate::error::usage(format!(
                    "key column {key:?} is neither in the input nor in table {:?}",
                    self.table.table
                )));
            }
        }
        Ok(())
    }

    fn insert(&mut self, fields: &Fields<'_>, _line: &[u8]) -> Result<Result<(), String>> {
        if let Err(reason) = self.table.bind(fields, &self.options)? {
            return Ok(Err(reason));
        }
        if let Some(reason) = self.table.binder.missing_key(fields, &self.options.keys) {
            return Ok(Err(reason));
        }
        if self.bulk.is_some() {
            return self.load_row(fields);
        }
        if let Some(flag) = &self.options.delete_when
            && fields
                .iter()
                .any(|(n, v)| n == flag && *v == Raw::Bool(true))
        {
            return match self
                .stage
                .encode_key_row(&self.table, fields, &self.options.keys)
            {
                Ok(values) => self.stage_row(RunKind::Delete, &values, None),
                Err(reason) => Ok(Err(reason)),
            };
        }
        let (values, longest) = match self.stage.encode_row(&self.table, fields) {
            Ok(encoded) => encoded,
            Err(reason) => return Ok(Err(reason)),
        };
        let kind = RunKind::Write(self.table.binder.columns().collect());
        self.stage_row(kind, &values, longest)
    }

    fn commit_point(&mut self, changes: &StateChanges) -> Result<()> {
        self.settle(changes, false)
    }

    fn commit(mut self: Box<Self>, changes: &StateChanges) -> Result<Vec<String>> {
        self.settle(changes, true)?;
        let mut log = std::mem::take(&mut self.log);
        if self.deleted > 0 {
            log.push(format!("deleted {} rows (--delete-when)", self.deleted));
        }
        if let Some(removed) = self.swept {
            log.push(sync::summary(removed, &self.options.sync));
        }
        Ok(log)
    }

    fn describe(&mut self) -> Result<Vec<String>> {
        Ok(self.table.describe())
    }

    fn abort(mut self: Box<Self>) {
        // The server rolls back too when the session ends without COMMIT.
        if self.in_transaction
            && let Ok(conn) = self.state.conn()
        {
            let _ = conn.query_drop("ROLLBACK");
        }
    }
}
