//! Writing records into one SQLite table: columns created and added from
//! the records, values fitted to column types or rejected, append, replace
//! and upsert statements.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use rusqlite::{CachedStatement, Connection};

use super::types::to_sql;
use crate::format::flat::{Fields, Raw};
use crate::format::typing::{column_types, type_of_value};
use crate::record::{FieldType, Schema};
use crate::sink::{LoadMode, TableOptions};
use crate::sqlite::{ColumnKind, declared_type, quote_ident};

struct Column {
    name: String,
    kind: ColumnKind,
}

/// Writes records into one table within the target's transaction.
pub struct TableWriter<'c> {
    conn: &'c Connection,
    options: TableOptions,
    deleted: u64,
    table: String,
    quoted_table: String,
    exists: bool,
    columns: Vec<Column>,
    by_name: HashMap<String, usize>,
    by_lower: HashMap<String, usize>,
    /// Fields seen only as null, created at the end so the column exists.
    null_only: Vec<String>,
    bound: Vec<usize>,
    /// Field names of the last record inserted, in order.
    last_fields: Vec<String>,
    statement: Option<(Vec<usize>, CachedStatement<'c>)>,
    log: Vec<String>,
}

impl<'c> TableWriter<'c> {
    /// Reads the table's columns if it exists; `mode` replace empties it.
    pub fn new(conn: &'c Connection, table: &str, options: TableOptions) -> Result<Self> {
        let quoted_table = quote_ident(table);
        let mode = options.mode;
        let mut writer = TableWriter {
            conn,
            options,
            deleted: 0,
            table: table.to_string(),
            quoted_table,
            exists: false,
            columns: Vec::new(),
            by_name: HashMap::new(),
            by_lower: HashMap::new(),
            null_only: Vec::new(),
            bound: Vec::new(),
            last_fields: Vec::new(),
            statement: None,
            log: Vec::new(),
        };
        let mut stmt = conn.prepare("SELECT name, type FROM pragma_table_info(?1)")?;
        let existing: Vec<(String, String)> = stmt
            .query_map([table], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()
            .with_context(|| format!("cannot read the columns of table {table:?}"))?;
        drop(stmt);
        for (name, decl) in existing {
            writer.exists = true;
            writer.push_column(name, ColumnKind::from_declared(&decl));
        }
        if writer.exists && mode == LoadMode::Replace {
            conn.execute(&format!("DELETE FROM {}", writer.quoted_table), [])
                .with_context(|| format!("cannot empty table {table:?}"))?;
            writer
                .log
                .push(format!("emptied table {table:?} for replace"));
        }
        Ok(writer)
    }

    /// Lines for `-v`: what the writer created or changed.
    pub fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    fn push_column(&mut self, name: String, kind: ColumnKind) {
        let i = self.columns.len();
        self.by_name.insert(name.clone(), i);
        self.by_lower.entry(name.to_lowercase()).or_insert(i);
        self.columns.push(Column { name, kind });
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.by_name
            .get(name)
            .or_else(|| self.by_lower.get(&name.to_lowercase()))
            .copied()
    }

    /// Creates the table, or adds missing columns, for the declared schema
    /// and a sample of records: a column's type comes from the schema, else
    /// from the widest of its sample values.
    pub fn prepare(&mut self, schema: &Schema, sample: &[&Fields<'_>]) -> Result<()> {
        let missing: Vec<(String, FieldType)> = column_types(schema, sample)
            .into_iter()
            .filter(|(name, _)| self.find(name).is_none())
            .collect();
        if self.options.strict && self.exists && !missing.is_empty() {
            // Strict: the table's columns are fixed; records with other
            // fields are rejected one by one in `insert`.
        } else {
            self.add_columns(&missing)?;
        }
        self.ensure_key_index()
    }

    /// Upserts need a unique index on the key columns for ON CONFLICT.
    fn ensure_key_index(&mut self) -> Result<()> {
        if self.options.keys.is_empty() || !self.exists {
            return Ok(());
        }
        let mut cols = Vec::new();
        for key in &self.options.keys {
            let Some(i) = self.find(key) else {
                return Err(crate::error::usage(format!(
                    "key column {key:?} is neither in the input nor in table {:?}",
                    self.table
                )));
            };
            cols.push(self.columns[i].name.clone());
        }
        if self.has_unique_index(&cols)? {
            return Ok(());
        }
        let cols: Vec<String> = cols.iter().map(|c| quote_ident(c)).collect();
        let index = quote_ident(&format!("{}__etl_key", self.table));
        let sql = format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {} ({})",
            self.quoted_table,
            cols.join(", ")
        );
        self.conn.execute(&sql, []).with_context(|| {
            format!(
                "cannot upsert into table {:?} by key ({}): its existing rows repeat a key",
                self.table,
                self.options.keys.join(", ")
            )
        })?;
        Ok(())
    }

    /// Is there already a unique index (or primary key) on exactly these
    /// columns? Then ON CONFLICT can use it and no second index is built.
    fn has_unique_index(&self, columns: &[String]) -> Result<bool> {
        let mut wanted: Vec<String> = columns.iter().map(|c| c.to_lowercase()).collect();
        wanted.sort();
        // The primary key (an INTEGER PRIMARY KEY is not listed as an index).
        let mut pk = self
            .conn
            .prepare("SELECT name FROM pragma_table_info(?1) WHERE pk > 0")?;
        let mut pk_cols: Vec<String> = pk
            .query_map([&self.table], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .map(|c| c.to_lowercase())
            .collect();
        pk_cols.sort();
        if pk_cols == wanted {
            return Ok(true);
        }
        let mut list = self
            .conn
            .prepare("SELECT name FROM pragma_index_list(?1) WHERE \"unique\" = 1")?;
        let names: Vec<String> = list
            .query_map([&self.table], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for name in names {
            let mut info = self
                .conn
                .prepare("SELECT name FROM pragma_index_info(?1)")?;
            let mut cols: Vec<String> = info
                .query_map([&name], |r| r.get::<_, Option<String>>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?
                .into_iter()
                .map(|c| c.unwrap_or_default().to_lowercase())
                .collect();
            cols.sort();
            if cols == wanted {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Rows deleted by `--delete-when` so far.
    pub fn deleted(&self) -> u64 {
        self.deleted
    }

    fn delete(&mut self, record: &Fields<'_>) -> Result<Result<(), String>> {
        let mut params = Vec::new();
        let mut conditions = Vec::new();
        for key in &self.options.keys {
            let Some(i) = self.find(key) else {
                return Ok(Err(format!("key column {key:?} does not exist")));
            };
            let value = field(record, key).unwrap_or(&Raw::Null);
            match to_sql(value, self.columns[i].kind) {
                Ok(v) => params.push(v),
                Err(reason) => return Ok(Err(format!("key column {key:?}: {reason}"))),
            }
            conditions.push(format!(
                "{} = ?{}",
                quote_ident(&self.columns[i].name),
                params.len()
            ));
        }
        let sql = format!(
            "DELETE FROM {} WHERE {}",
            self.quoted_table,
            conditions.join(" AND ")
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        for (n, param) in params.iter().enumerate() {
            stmt.raw_bind_parameter(n + 1, param)?;
        }
        self.deleted += stmt.raw_execute()? as u64;
        Ok(Ok(()))
    }

    fn add_columns(&mut self, columns: &[(String, FieldType)]) -> Result<()> {
        if columns.is_empty() {
            return Ok(());
        }
        if !self.exists {
            let defs: Vec<String> = columns
                .iter()
                .map(|(name, t)| format!("{} {}", quote_ident(name), declared_type(*t)))
                .collect();
            let sql = format!("CREATE TABLE {} ({})", self.quoted_table, defs.join(", "));
            self.conn
                .execute(&sql, [])
                .with_context(|| format!("cannot create table {:?}", self.table))?;
            self.exists = true;
            self.log.push(format!(
                "created table {:?}: {}",
                self.table,
                defs.join(", ")
            ));
        } else {
            for (name, t) in columns {
                let sql = format!(
                    "ALTER TABLE {} ADD COLUMN {} {}",
                    self.quoted_table,
                    quote_ident(name),
                    declared_type(*t)
                );
                self.conn.execute(&sql, []).with_context(|| {
                    format!("cannot add column {name:?} to table {:?}", self.table)
                })?;
                self.log.push(format!(
                    "added column {name:?} {} to table {:?}",
                    declared_type(*t),
                    self.table
                ));
            }
        }
        for (name, t) in columns {
            self.push_column(name.clone(), ColumnKind::Typed(*t));
        }
        self.null_only
            .retain(|n| !self.by_lower.contains_key(&n.to_lowercase()));
        Ok(())
    }

    /// Inserts one record. `Ok(Err(reason))` is a rejected record: nothing
    /// of it was written. `Err` is a database failure that ends the run.
    pub fn insert(&mut self, record: &Fields<'_>) -> Result<Result<(), String>> {
        for key in &self.options.keys {
            if field(record, key).is_none_or(Raw::is_null) {
                return Ok(Err(format!("key field {key:?} is null or missing")));
            }
        }
        if let Some(flag) = &self.options.delete_when
            && field(record, flag) == Some(&Raw::Bool(true))
        {
            return self.delete(record);
        }
        // Records of one stream almost always repeat the same fields in the
        // same order: then the columns found for the last record apply.
        let same_fields = self.last_fields.len() == record.len()
            && self
                .last_fields
                .iter()
                .zip(record)
                .all(|(last, (name, _))| last == name)
            // A field that had no column (only nulls so far) may have a value now.
            && self
                .bound
                .iter()
                .zip(record)
                .all(|(&i, (_, value))| i != usize::MAX || value.is_null());
        if same_fields {
            return self.bind_and_run(record);
        }
        // Until this record's columns are all found, the shortcut for "same
        // fields as the last record" must not be taken.
        self.last_fields.clear();
        self.bound.clear();
        let mut new_columns: Vec<(String, FieldType)> = Vec::new();
        for (name, value) in record {
            match self.find(name) {
                Some(i) => {
                    if self.bound.contains(&i) {
                        return Ok(Err(format!(
                            "field {name:?} names column {:?} a second time (names are case-insensitive)",
                            self.columns[i].name
                        )));
                    }
                    self.bound.push(i);
                }
                None if self.options.strict => {
                    return Ok(Err(format!(
                        "field {name:?} is not a column of table {:?} (--schema strict)",
                        self.table
                    )));
                }
                None => match type_of_value(value) {
                    Some(t) => new_columns.push((name.to_string(), t)),
                    None => {
                        if !self.null_only.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                            self.null_only.push(name.to_string());
                        }
                        // A field without a column is not bound; mark the
                        // slot so that field order stays aligned.
                        self.bound.push(usize::MAX);
                    }
                },
            }
        }
        if !new_columns.is_empty() {
            self.add_columns(&new_columns)?;
            return self.insert(record);
        }
        self.last_fields.clear();
        self.last_fields
            .extend(record.iter().map(|(name, _)| name.to_string()));
        self.bind_and_run(record)
    }

    /// Binds the record's values to the columns in `self.bound` (one slot
    /// per field, `usize::MAX` for a null field without a column) and runs
    /// the insert.
    fn bind_and_run(&mut self, record: &Fields<'_>) -> Result<Result<(), String>> {
        let mut params = Vec::with_capacity(record.len());
        let mut columns = Vec::with_capacity(record.len());
        for (&i, (_, value)) in self.bound.iter().zip(record) {
            if i == usize::MAX {
                continue;
            }
            match to_sql(value, self.columns[i].kind) {
                Ok(v) => params.push(v),
                Err(reason) => {
                    return Ok(Err(format!("column {:?}: {reason}", self.columns[i].name)));
                }
            }
            columns.push(i);
        }
        let reuse = matches!(&self.statement, Some((cols, _)) if *cols == columns);
        if !reuse {
            let sql = if columns.is_empty() {
                format!("INSERT INTO {} DEFAULT VALUES", self.quoted_table)
            } else {
                let names: Vec<String> = columns
                    .iter()
                    .map(|&i| quote_ident(&self.columns[i].name))
                    .collect();
                let marks: Vec<String> = (1..=names.len()).map(|n| format!("?{n}")).collect();
                let mut sql = format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    self.quoted_table,
                    names.join(", "),
                    marks.join(", ")
                );
                if self.options.mode == LoadMode::Upsert {
                    sql.push_str(&self.on_conflict(&names));
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
            .with_context(|| format!("cannot insert into table {:?}", self.table))?;
        Ok(Ok(()))
    }

    fn on_conflict(&self, names: &[String]) -> String {
        let keys: Vec<String> = self
            .options
            .keys
            .iter()
            .filter_map(|k| self.find(k))
            .map(|i| quote_ident(&self.columns[i].name))
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

    /// Creates columns for fields that only ever held null, so that every
    /// field of the input has a column. Call before committing.
    pub fn finish(&mut self) -> Result<()> {
        self.statement = None;
        let pending: Vec<(String, FieldType)> = std::mem::take(&mut self.null_only)
            .into_iter()
            .map(|n| (n, FieldType::Text))
            .collect();
        if !self.options.strict || !self.exists {
            self.add_columns(&pending)?;
        }
        Ok(())
    }
}

/// The value of the first field called `name`.
fn field<'r>(record: &'r Fields<'_>, name: &str) -> Option<&'r Raw<'r>> {
    record.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}
