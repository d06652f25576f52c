//! One SQLite table as a load sees it: identifiers quoted, the table's
//! columns and how each record's fields bind to them (columns created and
//! added from the records), and the unique index an upsert needs.

use anyhow::{Context, Result};
use rusqlite::Connection;

use super::values::{ColumnKind, declared_type};
use crate::format::flat::Fields;
use crate::format::typing::{beyond_bigint, column_types_native};
use crate::record::{FieldType, Schema};
use crate::sink::{LoadMode, LoadOptions};
use crate::store::binder::Binder;

/// Quotes an identifier that may come from data: `"` doubled, whole name
/// wrapped. Never paste a name into SQL any other way.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A column of the target table.
pub struct Column {
    /// Its name, as the table spells it.
    pub name: String,
    /// What it accepts.
    pub kind: ColumnKind,
}

/// The target table, within the target's transaction.
pub struct Table<'c> {
    conn: &'c Connection,
    /// How records are written (read by the stage too).
    pub options: LoadOptions,
    /// Its name, unquoted.
    pub table: String,
    /// Its name, quoted.
    pub quoted_table: String,
    exists: bool,
    /// Its columns, in order.
    pub columns: Vec<Column>,
    /// The columns' names, and the binding of the record being written
    /// (the rules every database store shares).
    pub binder: Binder,
    log: Vec<String>,
}

impl<'c> Table<'c> {
    /// Reads the table's columns if it exists; `mode` replace empties it.
    pub fn new(conn: &'c Connection, table: &str, options: LoadOptions) -> Result<Self> {
        let quoted_table = quote_ident(table);
        let mode = options.mode;
        let mut writer = Table {
            conn,
            options,
            table: table.to_string(),
            quoted_table,
            exists: false,
            columns: Vec::new(),
            binder: Binder::new(format!("table {table:?}")),
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
        self.binder.push(&name);
        self.columns.push(Column { name, kind });
    }

    /// Whether the table exists (before the run, or created by it).
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// The column a field names (see [`Binder::lookup`]).
    pub fn find(&self, name: &str) -> Option<usize> {
        self.binder.find(name)
    }

    /// Creates the table, or adds missing columns, for the declared schema
    /// and a sample of records: a column's type comes from the schema, else
    /// from the widest of its sample values.
    pub fn prepare(&mut self, schema: &Schema, sample: &[&Fields<'_>]) -> Result<()> {
        if self.options.mode == LoadMode::DeleteMissing && !self.exists {
            anyhow::bail!(
                "--mode delete-missing: table {:?} does not exist, so nothing can be missing from it",
                self.table
            );
        }
        let missing: Vec<(String, FieldType)> = column_types_native(schema, sample)
            .into_iter()
            .filter(|(name, _)| self.find(name).is_none())
            // INTEGER is signed 64-bit: integers past its top (an unsigned
            // 64-bit column's) keep their digits in a DECIMAL_TEXT(20,0).
            .map(|(n, t)| match t {
                FieldType::Integer if beyond_bigint(sample, &n) => {
                    (n, FieldType::Decimal(Some((20, 0))))
                }
                t => (n, t),
            })
            .collect();
        if self.options.strict && self.exists && !missing.is_empty() {
            // Strict: the table's columns are fixed; records with other
            // fields are rejected one by one in `insert`.
        } else {
            self.add_columns(&missing)?;
        }
        if let Some(col) = self.options.sync.soft_delete.clone()
            && self.find(&col).is_none()
        {
            self.add_columns(&[(col, FieldType::TimestampTz)])?;
        }
        // Fields the stream declares bytes go into a BLOB or untyped
        // column as their decoded bytes.
        for (name, t) in schema {
            if *t == FieldType::Bytes
                && let Some(i) = self.find(name)
                && self.columns[i].kind == ColumnKind::Any
            {
                self.columns[i].kind = ColumnKind::Typed(FieldType::Bytes);
            }
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
        Ok(())
    }

    /// Binds a record's fields to columns in `binder.bound` (the shared
    /// rules), adding the columns new fields need. `Ok(Err(reason))`
    /// rejects the record.
    pub fn bind(&mut self, record: &Fields<'_>) -> Result<Result<(), String>> {
        let new_columns = match self.binder.bind(record, self.options.strict) {
            Ok(new_columns) => new_columns,
            Err(reason) => return Ok(Err(reason)),
        };
        if !new_columns.is_empty() {
            self.add_columns(&new_columns)?;
            self.binder.rebind(record);
        }
        Ok(Ok(()))
    }

    /// The table's definition (with its indexes) as the run has left it
    /// so far.
    pub fn describe(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare(
            "SELECT sql FROM sqlite_master WHERE tbl_name = ?1 AND sql IS NOT NULL \
             ORDER BY type DESC, name",
        )?;
        let ddl = stmt
            .query_map([&self.table], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(ddl.into_iter().map(|sql| format!("{sql};")).collect())
    }

    /// Creates columns for fields that only ever held null, so that every
    /// field of the input has a column. Call before committing.
    pub fn finish(&mut self) -> Result<()> {
        let pending = self.binder.take_null_only();
        if !self.options.strict || !self.exists {
            self.add_columns(&pending)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(
            quote_ident(r#"a"b; DROP TABLE x"#),
            r#""a""b; DROP TABLE x""#
        );
    }
}
