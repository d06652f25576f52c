//! The insert path into a SQLite table: SQLite writes in the load's own
//! process and transaction, so there is no staging table; rows go straight
//! into the table through prepared statements, kept while records repeat
//! the same columns (an upsert's with its ON CONFLICT clause), and a record
//! that deletes its key (--delete-when) runs a prepared DELETE.

use anyhow::{Context, Result, bail};
use rusqlite::{CachedStatement, Connection};

use super::table::{Table, quote_ident};
use super::values::to_sql;
use crate::format::flat::{Fields, Raw};
use crate::sink::LoadMode;
use crate::sink::sync::{Dialect, Sweep};

/// The prepared statements of a load into one table.
pub struct Stage<'c> {
    conn: &'c Connection,
    /// The insert for the columns it names.
    statement: Option<(Vec<usize>, CachedStatement<'c>)>,
    deleted: u64,
    /// `--mode sync`: the stream's keys go into a temporary table as well.
    seen: bool,
}

/// The temporary table of a sync's keys.
const SEEN: &str = "temp.etl_seen";

impl<'c> Stage<'c> {
    /// Nothing prepared yet.
    pub fn new(conn: &'c Connection) -> Self {
        Stage {
            conn,
            statement: None,
            deleted: 0,
            seen: false,
        }
    }

    /// Rows deleted by `--delete-when` so far.
    pub fn deleted(&self) -> u64 {
        self.deleted
    }

    /// Drops the prepared insert (before the table changes, or a commit).
    pub fn reset(&mut self) {
        self.statement = None;
    }

    /// Inserts one record. `Ok(Err(reason))` is a rejected record: nothing
    /// of it was written. `Err` is a database failure that ends the run.
    pub fn insert(
        &mut self,
        table: &mut Table<'_>,
        record: &Fields<'_>,
    ) -> Result<Result<(), String>> {
        if let Err(reason) = table.bind(record)? {
            return Ok(Err(reason));
        }
        if let Some(reason) = table.binder.missing_key(record, &table.options.keys) {
            return Ok(Err(reason));
        }
        if let Some(flag) = &table.options.delete_when
            && field(record, flag) == Some(&Raw::Bool(true))
        {
            return self.delete(table, record);
        }
        if table.options.mode == LoadMode::DeleteMissing {
            // Only the key: it says the row stays.
            return self.see(table, record).map(Ok);
        }
        let done = self.bind_and_run(table, record)?;
        if done.is_ok() && table.options.mode == LoadMode::Sync {
            self.see(table, record)?;
        }
        Ok(done)
    }

    /// Keeps the record's key (it was written, so it fits its columns).
    fn see(&mut self, table: &Table<'_>, record: &Fields<'_>) -> Result<()> {
        let keys = key_columns(table);
        if !self.seen {
            self.create_seen(table, &keys)?;
        }
        let marks: Vec<String> = (1..=keys.len()).map(|n| format!("?{n}")).collect();
        let mut stmt = self
            .conn
            .prepare_cached(&format!("INSERT INTO {SEEN} VALUES ({})", marks.join(", ")))?;
        for (n, &i) in keys.iter().enumerate() {
            // The record was bound to the table's columns: its key fields
            // are found as every field is.
            let value = table
                .binder
                .field_of(i)
                .map_or(&Raw::Null, |p| &record[p].1);
            let bound = to_sql(value, table.columns[i].kind).map_err(|reason| {
                anyhow::anyhow!("key column {:?}: {reason}", table.columns[i].name)
            })?;
            stmt.raw_bind_parameter(n + 1, bound)?;
        }
        stmt.raw_execute()?;
        Ok(())
    }

    /// The table of keys, with the key columns' names and declared types
    /// (so that their affinity matches and its index serves the sweep's
    /// anti-join).
    fn create_seen(&mut self, table: &Table<'_>, keys: &[usize]) -> Result<()> {
        let names: Vec<String> = keys
            .iter()
            .map(|&i| quote_ident(&table.columns[i].name))
            .collect();
        self.conn.execute_batch(&format!(
            "DROP TABLE IF EXISTS {SEEN}; \
             CREATE TABLE {SEEN} AS SELECT {} FROM {} WHERE 0",
            names.join(", "),
            table.quoted_table
        ))?;
        self.seen = true;
        Ok(())
    }

    /// `--mode sync`: removes (or marks) the rows whose key the stream did
    /// not hold; returns how many.
    pub fn sweep(&mut self, table: &Table<'_>, rows_before: Option<u64>) -> Result<u64> {
        let keys = key_columns(table);
        if !self.seen {
            self.create_seen(table, &keys)?;
        }
        let names: Vec<String> = keys
            .iter()
            .map(|&i| quote_ident(&table.columns[i].name))
            .collect();
        self.conn.execute_batch(&format!(
            "CREATE INDEX IF NOT EXISTS temp.etl_seen_keys ON etl_seen ({})",
            names.join(", ")
        ))?;
        let sweep = Sweep {
            table: &table.quoted_table,
            seen: SEEN,
            keys: names,
            soft: table.options.sync.soft_delete.as_deref().map(quote_ident),
            dialect: Dialect::Sqlite,
        };
        let conn = self.conn;
        let mut run = |sql: &str, count: bool| -> Result<u64> {
            if count {
                let n: i64 = conn.query_row(sql, [], |r| r.get(0))?;
                Ok(u64::try_from(n).unwrap_or(0))
            } else {
                Ok(conn.execute(sql, [])? as u64)
            }
        };
        let removed = sweep.run(
            table.options.sync.max_deletes,
            rows_before,
            &table.quoted_table,
            &mut run,
        )?;
        self.conn.execute_batch(&format!("DROP TABLE {SEEN}"))?;
        self.seen = false;
        Ok(removed)
    }

    fn delete(&mut self, table: &Table<'_>, record: &Fields<'_>) -> Result<Result<(), String>> {
        let mut params = Vec::new();
        let mut conditions = Vec::new();
        for key in &table.options.keys {
            let Some(i) = table.find(key) else {
                return Ok(Err(format!("key column {key:?} does not exist")));
            };
            let value = field(record, key).unwrap_or(&Raw::Null);
            match to_sql(value, table.columns[i].kind) {
                Ok(v) => params.push(v),
                Err(reason) => return Ok(Err(format!("key column {key:?}: {reason}"))),
            }
            conditions.push(format!(
                "{} = ?{}",
                quote_ident(&table.columns[i].name),
                params.len()
            ));
        }
        let sql = format!(
            "DELETE FROM {} WHERE {}",
            table.quoted_table,
            conditions.join(" AND ")
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        for (n, param) in params.iter().enumerate() {
            stmt.raw_bind_parameter(n + 1, param)?;
        }
        self.deleted += stmt.raw_execute()? as u64;
        Ok(Ok(()))
    }

    /// Binds the record's values to the columns in `table.binder.bound` (one slot
    /// per field, `usize::MAX` for a null field without a column) and runs
    /// the insert.
    fn bind_and_run(
        &mut self,
        table: &Table<'_>,
        record: &Fields<'_>,
    ) -> Result<Result<(), String>> {
        let mut params = Vec::with_capacity(record.len());
        let mut columns = Vec::with_capacity(record.len());
        for (&i, (_, value)) in table.binder.bound.iter().zip(record) {
            if i == usize::MAX {
                continue;
            }
            match to_sql(value, table.columns[i].kind) {
                Ok(v) => params.push(v),
                Err(reason) => {
                    return Ok(Err(format!("column {:?}: {reason}", table.columns[i].name)));
                }
            }
            columns.push(i);
        }
        let reuse = matches!(&self.statement, Some((cols, _)) if *cols == columns);
        if !reuse {
            let sql = if columns.is_empty() {
                format!("INSERT INTO {} DEFAULT VALUES", table.quoted_table)
            } else {
                let names: Vec<String> = columns
                    .iter()
                    .map(|&i| quote_ident(&table.columns[i].name))
                    .collect();
                let marks: Vec<String> = (1..=names.len()).map(|n| format!("?{n}")).collect();
                let mut sql = format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    table.quoted_table,
                    names.join(", "),
                    marks.join(", ")
                );
                if table.options.mode.merges_by_key() {
                    sql.push_str(&on_conflict(table, &names));
                }
                sql
            };
            let stmt = self.conn.prepare_cached(&sql)?;
            self.statement = Some((columns, stmt));
        }
        let Some((_, stmt)) = self.statement.as_mut() else {
            bail!("insert statement missing after preparation");
        };
        for (n, param) in params.iter().enumerate() {
            stmt.raw_bind_parameter(n + 1, param)?;
        }
        stmt.raw_execute()
            .with_context(|| format!("cannot insert into table {:?}", table.table))?;
        Ok(Ok(()))
    }
}

/// An upsert's ON CONFLICT clause for an insert naming `names`.
fn on_conflict(table: &Table<'_>, names: &[String]) -> String {
    let keys: Vec<String> = table
        .options
        .keys
        .iter()
        .filter_map(|k| table.find(k))
        .map(|i| quote_ident(&table.columns[i].name))
        .collect();
    let updates: Vec<String> = names
        .iter()
        .filter(|n| !keys.contains(n))
        .map(|n| format!("{n} = excluded.{n}"))
        .collect();
    if updates.is_empty() {
        format!(" ON CONFLICT ({}) DO NOTHING", keys.join(", "))
    } else {
        format!(
            " ON CONFLICT ({}) DO UPDATE SET {}",
            keys.join(", "),
            updates.join(", ")
        )
    }
}

/// The rows of `table` (not marked by `--soft-delete`), before a sync
/// writes any: its `--max-deletes P%` is a share of them.
pub fn rows_before_sync(conn: &Connection, table: &Table<'_>) -> Result<u64> {
    if !table.exists() {
        return Ok(0);
    }
    let marked = table
        .options
        .sync
        .soft_delete
        .as_deref()
        .and_then(|col| table.find(col))
        .map(|i| format!(" WHERE {} IS NULL", quote_ident(&table.columns[i].name)))
        .unwrap_or_default();
    let n: i64 = conn.query_row(
        &format!("SELECT count(*) FROM {}{marked}", table.quoted_table),
        [],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The table's key columns, by index.
fn key_columns(table: &Table<'_>) -> Vec<usize> {
    table
        .options
        .keys
        .iter()
        .filter_map(|k| table.find(k))
        .collect()
}

/// The value of the first field called `name`.
fn field<'r>(record: &'r Fields<'_>, name: &str) -> Option<&'r Raw<'r>> {
    record.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}
