//! A PostgreSQL table as a sink: one transaction per run (or per segment),
//! in which the table is created or widened (`table.rs`), a replace deletes
//! the old rows, and the rows travel with COPY, through a staging table for
//! upsert (`stage.rs`),
//! and the bookmarks and batch ids are stored in `_etl_state` and
//! `_etl_batches` of the target schema (`state.rs`). Values are checked
//! against their columns before they are sent (`values.rs`), so a bad row
//! is a reject, not a failed COPY.

use anyhow::Result;
use postgres::Client;

use super::conn::{db_message, pg_err};
use super::stage::{Session, Stage};
use super::state::PgState;
use super::table::{Table, check_identifier, quote, schema_of};
use crate::format::flat::Fields;
use crate::format::typing::{beyond_bigint, column_types_native};
use crate::record::{FieldType, Schema};
use crate::sink::sync::{self, Dialect, Sweep};
use crate::sink::{LoadMode, LoadOptions, Sink};
use crate::state::{StateChanges, StateStore};
use crate::store::binder::Lookup;

/// Loads into one PostgreSQL table inside one transaction.
pub struct PgSink {
    /// The state store, which holds the load's connection.
    state: PgState,
    table: Table,
    stage: Stage,
    options: LoadOptions,
    log: Vec<String>,
    deleted: u64,
    /// Rows `--mode sync` removed (or marked).
    swept: Option<u64>,
}

impl PgSink {
    /// Starts the transaction, takes the table's load lock (a second load
    /// of the same table waits) and reads the table's columns.
    /// `schema` none: the connection's current schema.
    pub fn new(
        mut client: Client,
        name: &str,
        schema: Option<&str>,
        table: &str,
        options: LoadOptions,
    ) -> Result<Self> {
        check_identifier("table name", table)?;
        let schema = schema_of(&mut client, schema, name)?;
        let mut sink = PgSink {
            state: PgState::new(Session::new(client, name), &schema, table),
            table: Table::new(schema, table),
            stage: Stage::new(&options),
            options,
            log: Vec::new(),
            deleted: 0,
            swept: None,
        };
        sink.table.need_offset = sink.options.reject_naive_timestamps;
        sink.begin()?;
        Ok(sink)
    }

    fn begin(&mut self) -> Result<()> {
        let client = self.state.session().client()?;
        client
            .batch_execute("BEGIN")
            .map_err(pg_err("cannot start a transaction"))?;
        self.stage.freeze = false;
        self.table.begin(client)?;
        if self.table.exists && self.options.mode == LoadMode::Replace {
            // DELETE, not TRUNCATE: readers keep seeing the old rows (MVCC)
            // until the transaction commits, and the new ones go straight
            // in with COPY.
            client
                .batch_execute(&format!("DELETE FROM {}", self.table.qtable))
                .map_err(pg_err("cannot replace the table's rows"))?;
        }
        if self.table.exists && self.stage.staged {
            self.stage.create(self.state.session(), &self.table)?;
        }
        Ok(())
    }

    /// Creates the table with `columns`, or adds them (to the staging
    /// table too), once the rows buffered so far are sent.
    fn add_columns(&mut self, columns: &[(String, FieldType)]) -> Result<()> {
        if columns.is_empty() {
            return Ok(());
        }
        self.table.check_new(columns)?;
        let session = self.state.session();
        self.stage.flush(session, &self.table)?;
        let created = !self.table.exists;
        self.table
            .add_columns(session.client()?, columns, self.stage.staged, &mut self.log)?;
        if created && self.stage.staged {
            self.stage.create(session, &self.table)?;
        }
        self.stage.freeze |= created;
        Ok(())
    }

    /// Binds a record's fields to columns, adding the columns new fields
    /// need; the reason when the record cannot be bound.
    fn bind(&mut self, fields: &Fields<'_>) -> Result<Result<(), String>> {
        let new_columns = match self.table.binder.bind(fields, self.options.strict) {
            Ok(new_columns) => new_columns,
            Err(reason) => return Ok(Err(reason)),
        };
        if !new_columns.is_empty() {
            self.add_columns(&new_columns)?;
            self.table.binder.rebind(fields);
        }
        Ok(Ok(()))
    }

    /// The end of every transaction: columns for null-only fields, the
    /// staged rows moved into the table, then the bookmarks and batch ids.
    fn settle(&mut self, changes: &StateChanges) -> Result<()> {
        let pending = self.table.binder.take_null_only();
        if !self.options.strict || !self.table.exists {
            self.add_columns(&pending)?;
        }
        let session = self.state.session();
        self.stage.flush(session, &self.table)?;
        self.sweep()?;
        let session = self.state.session();
        self.deleted += self.stage.settle(session, &self.table, &self.options)?;
        self.state.write(changes)
    }

    /// `--mode sync`: removes the rows whose key the staged stream does
    /// not hold, before the merge (a run commits once: see `cli/load.rs`).
    fn sweep(&mut self) -> Result<()> {
        if !self.options.mode.sweeps() || !self.table.exists {
            return Ok(());
        }
        let sweep = Sweep {
            table: &self.table.qtable,
            seen: "etl_stage",
            keys: self.options.keys.iter().map(|k| quote(k)).collect(),
            soft: self.options.sync.soft_delete.as_deref().map(quote),
            dialect: Dialect::Postgres,
        };
        let client = self.state.session().client()?;
        let mut run = |sql: &str, count: bool| -> Result<u64> {
            if count {
                let row = client
                    .query_one(sql, &[])
                    .map_err(pg_err("cannot count rows"))?;
                Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
            } else {
                client
                    .execute(sql, &[])
                    .map_err(pg_err("cannot sync the table"))
            }
        };
        let removed = sweep.run(
            self.options.sync.max_deletes,
            None,
            &self.table.qtable,
            &mut run,
        )?;
        self.swept = Some(removed);
        Ok(())
    }
}

impl Sink for PgSink {
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
            .filter(|(n, _)| matches!(self.table.binder.lookup(n), Lookup::Missing))
            // bigint is signed: integers past its top (an unsigned 64-bit
            // column's) get numeric(20,0).
            .map(|(n, t)| match t {
                FieldType::Integer if beyond_bigint(sample, &n) => {
                    (n, FieldType::Decimal(Some((20, 0))))
                }
                t => (n, t),
            })
            .collect();
        if !(self.options.strict && self.table.exists) {
            self.add_columns(&missing)?;
        }
        if let Some(col) = self.options.sync.soft_delete.clone()
            && matches!(self.table.binder.lookup(&col), Lookup::Missing)
        {
            self.add_columns(&[(col, FieldType::TimestampTz)])?;
        }
        self.table.declare(schema);
        // Keys (and the delete flag) name their columns as the table spells
        // them, so the merge's SQL and the checks below use one name.
        self.table.key_cols.clear();
        for k in 0..self.options.keys.len() {
            match self.table.find(&self.options.keys[k]) {
                Some(i) => {
                    self.options.keys[k] = self.table.columns[i].name.clone();
                    self.table.key_cols.push(i);
                }
                None => {
                    return Err(crate::error::usage(format!(
                        "key column {:?} is neither in the input nor in table {}",
                        self.options.keys[k], self.table.qtable
                    )));
                }
            }
        }
        if let Some(flag) = &self.options.delete_when
            && let Some(i) = self.table.find(flag)
        {
            self.options.delete_when = Some(self.table.columns[i].name.clone());
        }
        Ok(())
    }

    fn insert(&mut self, fields: &Fields<'_>, _line: &[u8]) -> Result<Result<(), String>> {
        if let Err(reason) = self.bind(fields)? {
            return Ok(Err(reason));
        }
        if let Some(reason) = self.table.binder.missing_key(fields, &self.options.keys) {
            return Ok(Err(reason));
        }
        self.stage.write(self.state.session(), &self.table, fields)
    }

    fn commit_point(&mut self, changes: &StateChanges) -> Result<()> {
        self.settle(changes)?;
        self.state
            .session()
            .client()?
            .batch_execute("COMMIT")
            .map_err(pg_err("cannot commit"))?;
        self.begin()
    }

    fn commit(mut self: Box<Self>, changes: &StateChanges) -> Result<Vec<String>> {
        self.settle(changes)?;
        let session = self.state.session();
        let name = session.name().to_string();
        session
            .client()?
            .batch_execute("COMMIT")
            .map_err(|e| anyhow::anyhow!("{name}: cannot commit: {}", db_message(&e)))?;
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
        let client = self.state.session().client()?;
        self.table.describe(client)
    }

    fn abort(mut self: Box<Self>) {
        // The server rolls back if this fails too (the session ends).
        if let Ok(client) = self.state.session().client() {
            let _ = client.batch_execute("ROLLBACK");
        }
    }
}
