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

/// The prepared statements of a load into one table.
pub struct Stage<'c> {
    conn: &'c Connection,
    /// The insert for the columns it names.
    statement: Option<(Vec<usize>, CachedStatement<'c>)>,
    deleted: u64,
}

impl<'c> Stage<'c> {
    /// Nothing prepared yet.
    pub fn new(conn: &'c Connection) -> Self {
        Stage {
            conn,
            statement: None,
            deleted: 0,
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
        self.bind_and_run(table, record)
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
                if table.options.mode == LoadMode::Upsert {
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

/// The value of the first field called `name`.
fn field<'r>(record: &'r Fields<'_>, name: &str) -> Option<&'r Raw<'r>> {
    record.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}
