//! One MySQL table as a load sees it: names quoted and checked against
//! MySQL's limits, the table's columns and how each record's fields bind to
//! them, the DDL that creates or widens it (run at commit, before the
//! data's transaction: MySQL commits at every CREATE or ALTER TABLE), and
//! the unique index an upsert needs.

use std::collections::HashMap;

use anyhow::Result;
use mysql::Conn;
use mysql::prelude::Queryable;

use super::conn::message;
use super::values::{ColumnInfo, Kind, fits_decimal};
use crate::error::{Failure, Kind as ErrorKind};
use crate::format::flat::Fields;
use crate::record::{FieldType, Schema};
use crate::sink::LoadOptions;
use crate::store::binder::Binder;

/// MySQL's limit on table, column and index names, in characters.
pub const NAME_LIMIT: usize = 64;

/// Quotes an identifier that may come from data: backticks doubled, the
/// whole name wrapped. Never paste a name into SQL any other way.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Refuses a name MySQL would not keep as given: longer than 64
/// characters (MySQL refuses it, never truncates; we say so first), with a
/// trailing space (stripped by the server) or a NUL, or empty.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if chars == 0 {
        return Err(format!("{what} name is empty"));
    }
    if chars > NAME_LIMIT {
        return Err(format!(
            "{what} name {name:?} is {chars} characters long; MySQL allows {NAME_LIMIT}"
        ));
    }
    if name.ends_with(' ') {
        return Err(format!(
            "{what} name {name:?} ends with a space, which MySQL does not allow"
        ));
    }
    if name.contains('\0') {
        return Err(format!("{what} name {name:?} holds a NUL character"));
    }
    Ok(())
}

/// The column type etlkit gives a new column for a wire type. Booleans
/// are BIT(1), which reads back as true/false (TINYINT(1) would read back
/// as a number); text key columns are VARCHAR(191) so that a unique index
/// fits in InnoDB's 3072 bytes. The logical types get native columns:
/// DECIMAL(p,s) (a decimal without precision, or with more digits than
/// MySQL's 65, or 30 after the point, keeps its digits in a LONGTEXT),
/// DATE, TIME(6), DATETIME(6) for timestamps and for instants (held in
/// UTC: MySQL has no type with a zone that covers the years 1 to 9999),
/// CHAR(36) for uuids (the text users read) and LONGBLOB for bytes.
pub fn declared_type(t: FieldType, key: bool) -> String {
    match t {
        FieldType::Integer => "BIGINT",
        FieldType::Float => "DOUBLE",
        FieldType::Boolean => "BIT(1)",
        FieldType::Text if key => "VARCHAR(191)",
        FieldType::Text => "LONGTEXT",
        FieldType::Json => "JSON",
        FieldType::Decimal(Some((p, s))) if fits_decimal(p, s) => {
            return format!("DECIMAL({p},{s})");
        }
        FieldType::Decimal(_) if key => "VARCHAR(191)",
        FieldType::Decimal(_) => "LONGTEXT",
        FieldType::Date => "DATE",
        FieldType::Time => "TIME(6)",
        FieldType::Timestamp => "DATETIME(6)",
        FieldType::TimestampTz => "DATETIME(6)",
        FieldType::Uuid => "CHAR(36)",
        FieldType::Bytes if key => "VARBINARY(255)",
        FieldType::Bytes => "LONGBLOB",
    }
    .to_string()
}

/// A column's definition for CREATE or ALTER TABLE: a DATETIME made for
/// instants says in its comment that it holds UTC, a CHAR(36) made for
/// uuids that it holds uuids, so that etl-extract declares them
/// `timestamptz` and `uuid` again (MySQL has neither type).
fn definition(c: &Column) -> String {
    let comment = match c.kind {
        Kind::DateTime(_, true) => " COMMENT 'UTC'",
        Kind::Uuid => " COMMENT 'uuid'",
        _ => "",
    };
    format!("{} {}{comment}", quote(&c.name), c.sql_type)
}

/// Turns a driver error into "`what`: the server's message".
pub fn db_err(what: &str) -> impl Fn(mysql::Error) -> anyhow::Error + '_ {
    move |e| anyhow::anyhow!("{what}: {}", message(&e))
}

/// A column of the target table (or one planned for it).
pub struct Column {
    /// Its name, as the table spells it.
    pub name: String,
    /// What it accepts.
    pub kind: Kind,
    /// The SQL type (COLUMN_TYPE, or the type etlkit gives a new column).
    pub sql_type: String,
    /// In the target table already (else created at commit).
    pub in_target: bool,
    /// In the staging table already.
    pub staged: bool,
}

/// The columns of `table` in the current database, in order.
fn read_columns(conn: &mut Conn, table: &str) -> Result<Vec<(String, ColumnInfo)>> {
    type Row = (
        String,
        String,
        String,
        Option<u64>,
        Option<u64>,
        Option<u64>,
        Option<u64>,
    );
    let rows: Vec<Row> = conn
        .exec(
            "SELECT COLUMN_NAME, LOWER(DATA_TYPE), COLUMN_TYPE, CHARACTER_MAXIMUM_LENGTH, \
             NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (table,),
        )
        .map_err(db_err("cannot read the table's columns"))?;
    // MariaDB's JSON is a LONGTEXT with a json_valid check (MySQL: no rows).
    let checks: Vec<String> = conn
        .exec(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = ?",
            (table,),
        )
        .unwrap_or_default();
    Ok(rows
        .into_iter()
        .map(
            |(name, data_type, column_type, max_length, precision, scale, fraction)| {
                let json = checks
                    .iter()
                    .any(|c| c.trim() == format!("json_valid({})", quote(&name)));
                let info = ColumnInfo {
                    data_type,
                    column_type,
                    max_length,
                    precision,
                    scale,
                    fraction,
                    json,
                    binary: false,
                };
                (name, info)
            },
        )
        .collect())
}

/// The target table: its columns, those planned for it, and the binding
/// of the last record.
pub struct Table {
    /// The target as messages show it.
    name: String,
    /// Its name, unquoted.
    pub table: String,
    /// Its name, quoted.
    pub qtable: String,
    /// Does the table exist (yet)?
    pub exists: bool,
    /// Its columns, then those planned for it.
    pub columns: Vec<Column>,
    /// The columns' names, and the binding of the record being written
    /// (the rules every database store shares).
    pub binder: Binder,
}

impl Table {
    /// Reads the columns of `table` (shown in messages as `name`).
    pub fn read(conn: &mut Conn, name: &str, table: &str) -> Result<Table> {
        let existing = read_columns(conn, table)?;
        let mut t = Table {
            name: name.to_string(),
            table: table.to_string(),
            qtable: quote(table),
            exists: !existing.is_empty(),
            columns: Vec::new(),
            binder: Binder::new(format!("table {table:?}")),
        };
        for (name, info) in existing {
            t.push_column(Column {
                kind: Kind::from_info(&info),
                sql_type: info.column_type.clone(),
                name,
                in_target: true,
                staged: false,
            });
        }
        Ok(t)
    }

    fn push_column(&mut self, column: Column) {
        self.binder.push(&column.name);
        self.columns.push(column);
    }

    /// The column a field names (see [`Binder::lookup`]).
    pub fn find(&self, name: &str) -> Option<usize> {
        self.binder.find(name)
    }

    /// The key columns (`keys`) the table has.
    pub fn key_columns(&self, keys: &[String]) -> Vec<usize> {
        keys.iter().filter_map(|k| self.find(k)).collect()
    }

    /// Plans a new column (created in the target at commit); `keys`
    /// decides a text column's type.
    pub fn plan_column(&mut self, name: &str, t: FieldType, keys: &[String]) -> Result<()> {
        if let Err(reason) = check_name("column", name) {
            return Err(Failure::new(
                ErrorKind::Runtime,
                format!("{}: table {:?}: {reason}", self.name, self.table),
            )
            .hint("rename the field on the way: etl-transform --rename OLD=NEW")
            .into());
        }
        let key = keys.iter().any(|k| k.eq_ignore_ascii_case(name));
        self.push_column(Column {
            name: name.to_string(),
            kind: Kind::of(t),
            sql_type: declared_type(t, key),
            in_target: false,
            staged: false,
        });
        Ok(())
    }

    /// Plans a BIGINT UNSIGNED column for integers above BIGINT's range
    /// (`18446744073709551615`, a MySQL `BIGINT UNSIGNED` as extracted).
    pub fn plan_unsigned(&mut self, name: &str) {
        if let Some(i) = self.find(name)
            && !self.columns[i].in_target
        {
            self.columns[i].kind = Kind::Int {
                min: 0,
                max: i128::from(u64::MAX),
                tiny_bool: false,
            };
            self.columns[i].sql_type = "BIGINT UNSIGNED".into();
        }
    }

    /// What the stream declares for fields bound to existing columns:
    /// `bytes` are base64 (decoded into a binary column), `timestamptz`
    /// instants (converted to UTC for a DATETIME column), `uuid`s checked
    /// for a CHAR(36) column.
    pub fn declare(&mut self, schema: &Schema) {
        for (name, t) in schema {
            let Some(i) = self.find(name) else { continue };
            match (&mut self.columns[i].kind, t) {
                (Kind::Binary(_, base64), FieldType::Bytes) => *base64 = true,
                (Kind::DateTime(_, utc), FieldType::TimestampTz) => *utc = true,
                (kind @ Kind::Text(Some(36)), FieldType::Uuid) => *kind = Kind::Uuid,
                _ => {}
            }
        }
    }

    /// Binds a record's fields to columns (the shared rules) in
    /// `binder.bound`, planning the new columns it asks for; the reason
    /// when it is refused.
    pub fn bind(
        &mut self,
        fields: &Fields<'_>,
        options: &LoadOptions,
    ) -> Result<Result<(), String>> {
        let new = match self.binder.bind(fields, options.strict) {
            Ok(new) => new,
            Err(reason) => return Ok(Err(reason)),
        };
        if !new.is_empty() {
            for (name, t) in &new {
                self.plan_column(name, *t, &options.keys)?;
            }
            self.binder.rebind(fields);
        }
        Ok(Ok(()))
    }

    /// The columns the target lacks, with their types: created at commit
    /// (and the unique key an upsert needs); what it did goes to `log`.
    pub fn create_or_widen(
        &mut self,
        conn: &mut Conn,
        options: &LoadOptions,
        log: &mut Vec<String>,
    ) -> Result<()> {
        self.plan_null_only(options)?;
        self.apply_ddl(conn, options, log)
    }

    /// Plans columns for the fields that held only nulls (typed now, at
    /// commit, from what the stream declared).
    pub fn plan_null_only(&mut self, options: &LoadOptions) -> Result<()> {
        let pending = self.binder.take_null_only();
        if !options.strict || !self.exists {
            for (name, t) in pending {
                if self.find(&name).is_none() {
                    self.plan_column(&name, t, &options.keys)?;
                }
            }
        }
        Ok(())
    }

    /// Is there a table or a column to create (DDL, which commits)?
    pub fn needs_ddl(&self) -> bool {
        !self.exists || self.columns.iter().any(|c| !c.in_target)
    }

    /// Creates the table or the columns planned so far, and the unique key
    /// `options.keys` needs; what it did goes to `log`.
    pub fn apply_ddl(
        &mut self,
        conn: &mut Conn,
        options: &LoadOptions,
        log: &mut Vec<String>,
    ) -> Result<()> {
        let new: Vec<usize> = (0..self.columns.len())
            .filter(|&i| !self.columns[i].in_target)
            .collect();
        if !new.is_empty() {
            let defs: Vec<String> = new.iter().map(|&i| definition(&self.columns[i])).collect();
            if self.exists {
                let adds: Vec<String> = defs.iter().map(|d| format!("ADD COLUMN {d}")).collect();
                conn.query_drop(format!("ALTER TABLE {} {}", self.qtable, adds.join(", ")))
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "cannot add columns to table {:?}: {}",
                            self.table,
                            message(&e)
                        )
                    })?;
                log.push(format!(
                    "added columns to table {:?}: {}",
                    self.table,
                    defs.join(", ")
                ));
            } else {
                conn.query_drop(format!(
                    "CREATE TABLE {} ({}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                    self.qtable,
                    defs.join(", ")
                ))
                .map_err(|e| anyhow::anyhow!("cannot create table {:?}: {}", self.table, message(&e)))?;
                self.exists = true;
                log.push(format!(
                    "created table {:?}: {}",
                    self.table,
                    defs.join(", ")
                ));
            }
            for i in new {
                self.columns[i].in_target = true;
            }
        }
        if !options.keys.is_empty() && self.exists {
            self.ensure_key_index(conn, &options.keys, log)?;
        }
        Ok(())
    }

    /// ON DUPLICATE KEY UPDATE needs a unique index on exactly the keys.
    fn ensure_key_index(
        &self,
        conn: &mut Conn,
        keys: &[String],
        log: &mut Vec<String>,
    ) -> Result<()> {
        let rows: Vec<(String, String)> = conn
            .exec(
                "SELECT INDEX_NAME, LOWER(COLUMN_NAME) FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
                 ORDER BY INDEX_NAME, SEQ_IN_INDEX",
                (&self.table,),
            )
            .map_err(db_err("cannot read the table's indexes"))?;
        let mut wanted: Vec<String> = keys.iter().map(|k| k.to_lowercase()).collect();
        wanted.sort();
        let mut indexes: HashMap<String, Vec<String>> = HashMap::new();
        for (index, column) in rows {
            indexes.entry(index).or_default().push(column);
        }
        if indexes.values_mut().any(|cols| {
            cols.sort();
            *cols == wanted
        }) {
            return Ok(());
        }
        let quoted: Vec<String> = keys.iter().map(|k| quote(k)).collect();
        conn.query_drop(format!(
            "CREATE UNIQUE INDEX `_etl_key` ON {} ({})",
            self.qtable,
            quoted.join(", ")
        ))
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot upsert into table {:?} by key ({}): {}",
                self.table,
                keys.join(", "),
                message(&e)
            )
        })?;
        log.push(format!(
            "created unique index _etl_key on table {:?} ({})",
            self.table,
            keys.join(", ")
        ));
        Ok(())
    }

    /// The definition the table would get, for a dry run: MySQL commits at
    /// every CREATE or ALTER TABLE, so a dry run shows the definition it
    /// would make instead of making it.
    pub fn describe(&self) -> Vec<String> {
        let planned: Vec<String> = self
            .columns
            .iter()
            .filter(|c| !c.in_target)
            .map(definition)
            .chain(
                self.binder
                    .null_only()
                    .iter()
                    .filter(|n| self.find(n).is_none())
                    .map(|n| format!("{} LONGTEXT", quote(n))),
            )
            .collect();
        let all: Vec<String> = self.columns.iter().map(definition).collect();
        vec![if !self.exists {
            format!("CREATE TABLE {} ({});", self.qtable, all.join(", "))
        } else if planned.is_empty() {
            format!("table {} is unchanged", self.qtable)
        } else {
            let adds: Vec<String> = planned.iter().map(|d| format!("ADD COLUMN {d}")).collect();
            format!("ALTER TABLE {} {};", self.qtable, adds.join(", "))
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_backticks() {
        assert_eq!(quote("a`b; DROP TABLE x"), "`a``b; DROP TABLE x`");
    }

    #[test]
    fn names_past_the_limit_are_refused() {
        assert!(check_name("column", &"c".repeat(64)).is_ok());
        assert!(check_name("column", &"é".repeat(64)).is_ok());
        let err = check_name("column", &"c".repeat(65)).unwrap_err();
        assert!(err.contains("65 characters"), "{err}");
        assert!(check_name("table", "t ").is_err());
        assert!(check_name("table", "").is_err());
    }
}
