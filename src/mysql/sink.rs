//! A MySQL or MariaDB table as a sink.
//!
//! MySQL commits the open transaction at every CREATE or ALTER TABLE, so a
//! load cannot create or widen its table in the middle of its transaction
//! the way SQLite and PostgreSQL do. Rows are therefore checked (a value
//! that does not fit its column is a reject before anything is sent) and
//! sent in multi-row INSERT statements to a session-private TEMPORARY
//! staging table, which no other session sees. At commit, the target's
//! DDL runs first (create the table, add columns, the unique key for
//! upsert, the state tables: none of it holds rows yet), then one InnoDB
//! transaction moves the staged rows in order (replace empties the table
//! first, in the same transaction; upsert is INSERT ... ON DUPLICATE KEY
//! UPDATE of the fields each record carries) and stores the bookmarks and
//! batch ids. A failure anywhere before COMMIT leaves the table's rows as
//! they were. Loads of one table take turns (GET_LOCK).

use std::collections::HashMap;

use anyhow::{Result, bail};
use mysql::Conn;
use mysql::prelude::Queryable;
use serde_json::Value;

use super::conn::{self, message};
use super::state;
use super::values::{ColumnInfo, Kind, push_value};
use super::{check_name, declared_type, quote};
use crate::error::{Failure, Kind as ErrorKind};
use crate::format::flat::{Fields, Raw};

use crate::format::typing::{column_types, type_of_value};
use crate::record::{FieldType, Schema};
use crate::sink::{LoadMode, Sink, TableOptions};
use crate::state::{StateChanges, StateStore};

/// The staging table (TEMPORARY: private to the session, gone with it).
const STAGE: &str = "`_etl_stage`";

/// A staging INSERT is sent once its text passes this many bytes (well
/// under the server's default max_allowed_packet of 16 MB); a row that
/// would take the statement past the server's max_allowed_packet is sent
/// in a statement of its own, and a row too large for any statement is a
/// reject.
const STATEMENT_BYTES: usize = 1 << 20;

/// The max_allowed_packet MySQL 8 and MariaDB 10.2+ start with, if the
/// server does not say.
const DEFAULT_PACKET: usize = 16 << 20;

/// Room for a staging INSERT's head: below this many bytes short of the
/// max_allowed_packet, the head is not measured.
const STATEMENT_HEADROOM: usize = 1 << 20;

struct Column {
    name: String,
    kind: Kind,
    /// The SQL type (COLUMN_TYPE, or the type etlkit gives a new column).
    sql_type: String,
    /// In the target table already (else created at commit).
    in_target: bool,
    /// In the staging table already.
    staged: bool,
}

/// What a run of consecutive staged rows does at commit.
#[derive(Debug, Clone, PartialEq)]
enum RunKind {
    /// Insert (or upsert) these columns.
    Write(Vec<usize>),
    /// Delete the rows with these keys (--delete-when).
    Delete,
}

struct Run {
    kind: RunKind,
    first: u64,
    last: u64,
}

/// Loads into one MySQL table.
pub struct MysqlSink {
    conn: Conn,
    name: String,
    table: String,
    qtable: String,
    options: TableOptions,
    exists: bool,
    columns: Vec<Column>,
    by_lower: HashMap<String, usize>,
    null_only: Vec<String>,
    stage_exists: bool,
    runs: Vec<Run>,
    seq: u64,
    buffer: String,
    in_transaction: bool,
    log: Vec<String>,
    deleted: u64,
    /// Field names of the last record and the columns they were bound to.
    last_fields: Vec<String>,
    last_bound: Vec<Option<usize>>,
    /// The server's max_allowed_packet: the largest statement it takes.
    max_packet: usize,
}

fn db_err(what: &str) -> impl Fn(mysql::Error) -> anyhow::Error + '_ {
    move |e| anyhow::anyhow!("{what}: {}", message(&e))
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

impl MysqlSink {
    /// Connects, takes the table's load lock (a second load of the same
    /// table waits up to `wait_seconds`) and reads the table's columns.
    pub fn open(url: &str, table: &str, options: TableOptions, wait_seconds: u64) -> Result<Self> {
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
        let existing = read_columns(&mut conn, table)?;
        let max_packet: Option<u64> = conn
            .query_first("SELECT @@max_allowed_packet")
            .map_err(db_err("cannot read the server's max_allowed_packet"))?;
        let mut sink = MysqlSink {
            conn,
            name,
            table: table.to_string(),
            qtable: quote(table),
            options,
            exists: !existing.is_empty(),
            columns: Vec::new(),
            by_lower: HashMap::new(),
            null_only: Vec::new(),
            stage_exists: false,
            runs: Vec::new(),
            seq: 0,
            buffer: String::new(),
            in_transaction: false,
            log: Vec::new(),
            deleted: 0,
            last_fields: Vec::new(),
            last_bound: Vec::new(),
            max_packet: max_packet
                .map_or(DEFAULT_PACKET, |p| usize::try_from(p).unwrap_or(usize::MAX)),
        };
        for (name, info) in existing {
            sink.push_column(Column {
                kind: Kind::from_info(&info),
                sql_type: info.column_type.clone(),
                name,
                in_target: true,
                staged: false,
            });
        }
        Ok(sink)
    }

    fn push_column(&mut self, column: Column) {
        self.by_lower
            .entry(column.name.to_lowercase())
            .or_insert(self.columns.len());
        self.columns.push(column);
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.by_lower.get(&name.to_lowercase()).copied()
    }

    /// Plans a new column (created in the target at commit).
    fn plan_column(&mut self, name: &str, t: FieldType) -> Result<()> {
        if let Err(reason) = check_name("column", name) {
            return Err(Failure::new(
                ErrorKind::Runtime,
                format!("{}: table {:?}: {reason}", self.name, self.table),
            )
            .hint("rename the field on the way: etl-transform --rename OLD=NEW")
            .into());
        }
        let key = self
            .options
            .keys
            .iter()
            .any(|k| k.eq_ignore_ascii_case(name));
        self.push_column(Column {
            name: name.to_string(),
            kind: Kind::of(t),
            sql_type: declared_type(t, key).to_string(),
            in_target: false,
            staged: false,
        });
        self.null_only.retain(|n| !n.eq_ignore_ascii_case(name));
        Ok(())
    }

    /// The staging table's type for a column: JSON is checked by the
    /// target, so it is staged as plain text.
    fn stage_type(column: &Column) -> &str {
        if column.kind == Kind::Json {
            "LONGTEXT"
        } else {
            &column.sql_type
        }
    }

    /// Creates the staging table, or adds the columns it lacks. DDL on a
    /// TEMPORARY table: nothing but staged rows is outstanding, so the
    /// implicit commit changes nothing anyone can see.
    fn ensure_stage(&mut self) -> Result<()> {
        let missing: Vec<usize> = (0..self.columns.len())
            .filter(|&i| !self.columns[i].staged)
            .collect();
        if self.stage_exists && missing.is_empty() {
            return Ok(());
        }
        let defs: Vec<String> = missing
            .iter()
            .map(|&i| {
                let c = &self.columns[i];
                format!("{} {} NULL", quote(&c.name), Self::stage_type(c))
            })
            .collect();
        let sql = if self.stage_exists {
            let adds: Vec<String> = defs.iter().map(|d| format!("ADD COLUMN {d}")).collect();
            format!("ALTER TABLE {STAGE} {}", adds.join(", "))
        } else {
            let mut all = vec!["`_etl_seq` BIGINT NOT NULL PRIMARY KEY".to_string()];
            all.extend(defs);
            format!(
                "CREATE TEMPORARY TABLE {STAGE} ({}) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                all.join(", ")
            )
        };
        self.conn
            .query_drop(&sql)
            .map_err(db_err("cannot create the staging table"))?;
        self.stage_exists = true;
        for i in missing {
            self.columns[i].staged = true;
        }
        Ok(())
    }

    /// Sends the buffered rows to the staging table.
    fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.ensure_stage()?;
        let Some(run) = self.runs.last() else {
            bail!("rows buffered without a run");
        };
        let cols = match &run.kind {
            RunKind::Write(cols) => cols.clone(),
            RunKind::Delete => self.key_columns(),
        };
        let mut names = vec!["`_etl_seq`".to_string()];
        names.extend(cols.iter().map(|&i| quote(&self.columns[i].name)));
        let sql = format!(
            "INSERT INTO {STAGE} ({}) VALUES {}",
            names.join(", "),
            self.buffer
        );
        self.buffer.clear();
        self.conn
            .query_drop(sql)
            .map_err(|e| anyhow::anyhow!("{}: cannot stage rows: {}", self.name, message(&e)))
    }

    fn key_columns(&self) -> Vec<usize> {
        self.options
            .keys
            .iter()
            .filter_map(|k| self.find(k))
            .collect()
    }

    /// The bytes of a staging INSERT before its rows, for a run of `kind`:
    /// ``INSERT INTO `_etl_stage` (`_etl_seq`, `a`, ...) VALUES ``.
    fn head_bytes(&self, kind: &RunKind) -> usize {
        let quoted = |i: usize| {
            let name = &self.columns[i].name;
            name.len() + name.matches('`').count() + 2
        };
        let names: usize = match kind {
            RunKind::Write(cols) => cols.iter().map(|&i| quoted(i) + 2).sum(),
            RunKind::Delete => self.key_columns().into_iter().map(|i| quoted(i) + 2).sum(),
        };
        "INSERT INTO ".len() + STAGE.len() + " (`_etl_seq`) VALUES ".len() + names
    }

    /// Why a row of `kind` whose literals are `values` cannot be sent in
    /// any statement the server takes (its max_allowed_packet), if so.
    fn too_large(
        &self,
        kind: &RunKind,
        values: &str,
        longest: Option<(usize, usize)>,
    ) -> Option<String> {
        if values.len() + STATEMENT_HEADROOM < self.max_packet {
            return None;
        }
        // One command byte, the parentheses and the sequence number.
        let bytes = 1 + self.head_bytes(kind) + values.len() + 2 + 20;
        if bytes <= self.max_packet {
            return None;
        }
        let max = self.max_packet;
        Some(match longest {
            Some((i, n)) => format!(
                "column {:?}: a value of {n} bytes does not fit in one statement to the server \
                 (its max_allowed_packet is {max} bytes)",
                self.columns[i].name
            ),
            None => format!(
                "the row is {bytes} bytes as SQL, more than the server takes in one statement \
                 (its max_allowed_packet is {max} bytes)"
            ),
        })
    }

    /// Appends one staged row (`values` holds its literals) to the run of
    /// `kind`, starting a new run when the kind or columns change.
    fn stage_row(&mut self, kind: RunKind, values: &str) -> Result<()> {
        self.seq += 1;
        let same = self.runs.last().is_some_and(|r| r.kind == kind);
        if !same {
            self.flush()?;
            self.runs.push(Run {
                kind,
                first: self.seq,
                last: self.seq,
            });
        } else if !self.buffer.is_empty()
            && self.buffer.len() + values.len() + STATEMENT_HEADROOM >= self.max_packet
            && self.buffer.len() + values.len() + 24 + self.head_bytes(&kind) >= self.max_packet
        {
            // This row would take the statement past what the server
            // takes: the rows before it go first.
            self.flush()?;
        }
        if let Some(run) = self.runs.last_mut() {
            run.last = self.seq;
        }
        if !self.buffer.is_empty() {
            self.buffer.push(',');
        }
        self.buffer.push('(');
        self.buffer.push_str(&self.seq.to_string());
        self.buffer.push_str(values);
        self.buffer.push(')');
        if self.buffer.len() >= STATEMENT_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Literals for `fields` in the columns `bound` (`None`: a field
    /// without a column, only null so far), each preceded by a comma, and
    /// the column with the longest literal (index, bytes).
    fn encode(
        &self,
        fields: &Fields<'_>,
        bound: &[Option<usize>],
    ) -> Result<(String, Option<(usize, usize)>), String> {
        let mut out = String::with_capacity(64 * fields.len());
        let mut longest: Option<(usize, usize)> = None;
        for ((_, value), slot) in fields.iter().zip(bound) {
            let Some(i) = *slot else { continue };
            let column = &self.columns[i];
            out.push(',');
            let start = out.len();
            push_value(&mut out, &column.kind, &column.sql_type, value)
                .map_err(|reason| format!("column {:?}: {reason}", column.name))?;
            let bytes = out.len() - start;
            if longest.is_none_or(|(_, n)| bytes > n) {
                longest = Some((i, bytes));
            }
        }
        Ok((out, longest))
    }

    /// Binds a record's fields to columns, planning new ones (evolve) or
    /// refusing the record (strict, or a name given twice).
    fn bind(&mut self, fields: &Fields<'_>) -> Result<Result<Vec<Option<usize>>, String>> {
        let same = self.last_fields.len() == fields.len()
            && self
                .last_fields
                .iter()
                .zip(fields)
                .all(|(last, (name, _))| last == name)
            && self
                .last_bound
                .iter()
                .zip(fields)
                .all(|(slot, (_, v))| slot.is_some() || v.is_null());
        if same {
            return Ok(Ok(self.last_bound.clone()));
        }
        let mut bound: Vec<Option<usize>> = Vec::with_capacity(fields.len());
        for (name, value) in fields {
            match self.find(name) {
                Some(i) => {
                    if bound.contains(&Some(i)) {
                        return Ok(Err(format!(
                            "field {name:?} names column {:?} a second time (names are case-insensitive)",
                            self.columns[i].name
                        )));
                    }
                    bound.push(Some(i));
                }
                None if self.options.strict => {
                    return Ok(Err(format!(
                        "field {name:?} is not a column of table {:?} (--schema strict)",
                        self.table
                    )));
                }
                None => match type_of_value(value) {
                    Some(t) => {
                        self.plan_column(name, t)?;
                        bound.push(self.find(name));
                    }
                    None => {
                        if !self.null_only.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                            self.null_only.push(name.to_string());
                        }
                        bound.push(None);
                    }
                },
            }
        }
        self.last_fields = fields.iter().map(|(n, _)| n.to_string()).collect();
        self.last_bound = bound.clone();
        Ok(Ok(bound))
    }

    /// The columns the target lacks, with their types: created at commit.
    fn target_ddl(&mut self) -> Result<()> {
        let pending: Vec<String> = std::mem::take(&mut self.null_only);
        if !self.options.strict || !self.exists {
            for name in pending {
                if self.find(&name).is_none() {
                    self.plan_column(&name, FieldType::Text)?;
                }
            }
        }
        let new: Vec<usize> = (0..self.columns.len())
            .filter(|&i| !self.columns[i].in_target)
            .collect();
        if !new.is_empty() {
            let defs: Vec<String> = new
                .iter()
                .map(|&i| {
                    let c = &self.columns[i];
                    format!("{} {}", quote(&c.name), c.sql_type)
                })
                .collect();
            if self.exists {
                let adds: Vec<String> = defs.iter().map(|d| format!("ADD COLUMN {d}")).collect();
                self.conn
                    .query_drop(format!("ALTER TABLE {} {}", self.qtable, adds.join(", ")))
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "cannot add columns to table {:?}: {}",
                            self.table,
                            message(&e)
                        )
                    })?;
                self.log.push(format!(
                    "added columns to table {:?}: {}",
                    self.table,
                    defs.join(", ")
                ));
            } else {
                self.conn
                    .query_drop(format!(
                        "CREATE TABLE {} ({}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                        self.qtable,
                        defs.join(", ")
                    ))
                    .map_err(|e| {
                        anyhow::anyhow!("cannot create table {:?}: {}", self.table, message(&e))
                    })?;
                self.exists = true;
                self.log.push(format!(
                    "created table {:?}: {}",
                    self.table,
                    defs.join(", ")
                ));
            }
            for i in new {
                self.columns[i].in_target = true;
            }
        }
        if !self.options.keys.is_empty() && self.exists {
            self.ensure_key_index()?;
        }
        Ok(())
    }

    /// ON DUPLICATE KEY UPDATE needs a unique index on exactly the keys.
    fn ensure_key_index(&mut self) -> Result<()> {
        let rows: Vec<(String, String)> = self
            .conn
            .exec(
                "SELECT INDEX_NAME, LOWER(COLUMN_NAME) FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
                 ORDER BY INDEX_NAME, SEQ_IN_INDEX",
                (&self.table,),
            )
            .map_err(db_err("cannot read the table's indexes"))?;
        let mut wanted: Vec<String> = self.options.keys.iter().map(|k| k.to_lowercase()).collect();
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
        let keys: Vec<String> = self.options.keys.iter().map(|k| quote(k)).collect();
        self.conn
            .query_drop(format!(
                "CREATE UNIQUE INDEX `_etl_key` ON {} ({})",
                self.qtable,
                keys.join(", ")
            ))
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot upsert into table {:?} by key ({}): {}",
                    self.table,
                    self.options.keys.join(", "),
                    message(&e)
                )
            })?;
        self.log.push(format!(
            "created unique index _etl_key on table {:?} ({})",
            self.table,
            self.options.keys.join(", ")
        ));
        Ok(())
    }

    /// Moves one run of staged rows into the table.
    fn apply(&mut self, run: &Run) -> Result<()> {
        let range = format!("s.`_etl_seq` BETWEEN {} AND {}", run.first, run.last);
        match &run.kind {
            RunKind::Delete => {
                let on: Vec<String> = self
                    .key_columns()
                    .iter()
                    .map(|&i| format!("t.{c} = s.{c}", c = quote(&self.columns[i].name)))
                    .collect();
                self.conn
                    .query_drop(format!(
                        "DELETE t FROM {} AS t JOIN {STAGE} AS s ON {} WHERE {range}",
                        self.qtable,
                        on.join(" AND ")
                    ))
                    .map_err(db_err("cannot apply deletes"))?;
                self.deleted += self.conn.affected_rows();
            }
            RunKind::Write(cols) if cols.is_empty() => {
                // Records without values: rows of defaults.
                let rows = vec!["()"; (run.last - run.first + 1) as usize];
                self.conn
                    .query_drop(format!(
                        "INSERT INTO {} () VALUES {}",
                        self.qtable,
                        rows.join(",")
                    ))
                    .map_err(db_err("cannot insert rows of defaults"))?;
            }
            RunKind::Write(cols) => {
                let names: Vec<String> =
                    cols.iter().map(|&i| quote(&self.columns[i].name)).collect();
                let select: Vec<String> = names.iter().map(|n| format!("s.{n}")).collect();
                let mut sql = format!(
                    "INSERT INTO {} ({}) SELECT {} FROM {STAGE} AS s WHERE {range} ORDER BY s.`_etl_seq`",
                    self.qtable,
                    names.join(", "),
                    select.join(", ")
                );
                if self.options.mode == LoadMode::Upsert {
                    let keys: Vec<String> =
                        self.options.keys.iter().map(|k| k.to_lowercase()).collect();
                    let updates: Vec<String> = cols
                        .iter()
                        .filter(|&&i| !keys.contains(&self.columns[i].name.to_lowercase()))
                        .map(|&i| format!("{n} = VALUES({n})", n = quote(&self.columns[i].name)))
                        .collect();
                    let updates = if updates.is_empty() {
                        // Nothing but the key: the row stays as it is.
                        let k = quote(&self.options.keys[0]);
                        format!("{k} = {k}")
                    } else {
                        updates.join(", ")
                    };
                    sql.push_str(&format!(" ON DUPLICATE KEY UPDATE {updates}"));
                }
                self.conn.query_drop(sql).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot move rows into table {:?}: {}",
                        self.table,
                        message(&e)
                    )
                })?;
            }
        }
        Ok(())
    }

    /// The end of every transaction: DDL first, then the rows, bookmarks
    /// and batch ids in one transaction, committed.
    fn settle(&mut self, changes: &StateChanges) -> Result<()> {
        self.flush()?;
        self.target_ddl()?;
        if changes.bookmarks().next().is_some() {
            state::ensure_state_table(&mut self.conn)?;
        }
        if !changes.batches.is_empty() {
            state::ensure_batch_table(&mut self.conn)?;
        }
        if changes.run.is_some() {
            state::ensure_runs_table(&mut self.conn)?;
        }
        self.conn
            .query_drop("START TRANSACTION")
            .map_err(db_err("cannot start a transaction"))?;
        self.in_transaction = true;
        if self.options.mode == LoadMode::Replace && self.exists {
            self.conn
                .query_drop(format!("DELETE FROM {}", self.qtable))
                .map_err(db_err("cannot empty the table for replace"))?;
            self.log
                .push(format!("emptied table {:?} for replace", self.table));
        }
        let runs = std::mem::take(&mut self.runs);
        for run in &runs {
            self.apply(run)?;
        }
        for (stream, bookmark, rows) in changes.bookmarks() {
            state::write_bookmark(&mut self.conn, stream, bookmark, rows)?;
        }
        for (stream, id) in &changes.batches {
            state::record_batch(&mut self.conn, &self.table, stream, id)?;
        }
        if let Some(run) = &changes.run {
            state::record_run(&mut self.conn, &self.table, run)?;
        }
        self.conn
            .query_drop("COMMIT")
            .map_err(|e| anyhow::anyhow!("{}: cannot commit: {}", self.name, message(&e)))?;
        self.in_transaction = false;
        if self.stage_exists && !runs.is_empty() {
            self.conn
                .query_drop(format!("DELETE FROM {STAGE}"))
                .map_err(db_err("cannot empty the staging table"))?;
        }
        Ok(())
    }
}

/// MySQL's state is read through the load's own connection (see
/// `state.rs` in this folder).
impl StateStore for MysqlSink {
    fn bookmark(&mut self, stream: &str) -> Result<Option<Value>> {
        state::read_bookmark(&mut self.conn, stream)
    }

    fn batch_committed(&mut self, stream: &str, id: &str) -> Result<bool> {
        state::batch_committed(&mut self.conn, &self.table, stream, id)
    }
}

impl Sink for MysqlSink {
    fn state(&mut self) -> &mut dyn StateStore {
        self
    }

    fn prepare(&mut self, schema: &Schema, sample: &[&Fields<'_>]) -> Result<()> {
        let missing: Vec<(String, FieldType)> = column_types(schema, sample)
            .into_iter()
            .filter(|(n, _)| self.find(n).is_none())
            .collect();
        if !(self.options.strict && self.exists) {
            for (name, t) in missing {
                self.plan_column(&name, t)?;
            }
        }
        for key in &self.options.keys {
            if self.find(key).is_none() {
                return Err(crate::error::usage(format!(
                    "key column {key:?} is neither in the input nor in table {:?}",
                    self.table
                )));
            }
        }
        Ok(())
    }

    fn insert(&mut self, fields: &Fields<'_>, _line: &[u8]) -> Result<Result<(), String>> {
        for key in &self.options.keys {
            if fields
                .iter()
                .find(|(n, _)| n == key)
                .is_none_or(|(_, v)| v.is_null())
            {
                return Ok(Err(format!("key field {key:?} is null or missing")));
            }
        }
        if let Some(flag) = &self.options.delete_when
            && fields
                .iter()
                .any(|(n, v)| n == flag && *v == Raw::Bool(true))
        {
            let keys = self.key_columns();
            let mut values = String::new();
            for &i in &keys {
                let column = &self.columns[i];
                let value = fields
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(&column.name))
                    .map_or(&Raw::Null, |(_, v)| v);
                values.push(',');
                if let Err(reason) = push_value(&mut values, &column.kind, &column.sql_type, value)
                {
                    return Ok(Err(format!("key column {:?}: {reason}", column.name)));
                }
            }
            if let Some(reason) = self.too_large(&RunKind::Delete, &values, None) {
                return Ok(Err(reason));
            }
            self.stage_row(RunKind::Delete, &values)?;
            return Ok(Ok(()));
        }
        let bound = match self.bind(fields)? {
            Ok(bound) => bound,
            Err(reason) => return Ok(Err(reason)),
        };
        let (values, longest) = match self.encode(fields, &bound) {
            Ok(encoded) => encoded,
            Err(reason) => return Ok(Err(reason)),
        };
        let kind = RunKind::Write(bound.into_iter().flatten().collect());
        if let Some(reason) = self.too_large(&kind, &values, longest) {
            return Ok(Err(reason));
        }
        self.stage_row(kind, &values)?;
        Ok(Ok(()))
    }

    fn commit_point(&mut self, changes: &StateChanges) -> Result<()> {
        self.settle(changes)
    }

    fn commit(mut self: Box<Self>, changes: &StateChanges) -> Result<Vec<String>> {
        self.settle(changes)?;
        let mut log = std::mem::take(&mut self.log);
        if self.deleted > 0 {
            log.push(format!("deleted {} rows (--delete-when)", self.deleted));
        }
        Ok(log)
    }

    fn describe(&mut self) -> Result<Vec<String>> {
        // MySQL commits at every CREATE or ALTER TABLE, so a dry run shows
        // the definition it would make instead of making it.
        let planned: Vec<String> = self
            .columns
            .iter()
            .filter(|c| !c.in_target)
            .map(|c| format!("{} {}", quote(&c.name), c.sql_type))
            .chain(
                self.null_only
                    .iter()
                    .filter(|n| self.find(n).is_none())
                    .map(|n| format!("{} LONGTEXT", quote(n))),
            )
            .collect();
        let all: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{} {}", quote(&c.name), c.sql_type))
            .collect();
        Ok(vec![if !self.exists {
            format!("CREATE TABLE {} ({});", self.qtable, all.join(", "))
        } else if planned.is_empty() {
            format!("table {} is unchanged", self.qtable)
        } else {
            let adds: Vec<String> = planned.iter().map(|d| format!("ADD COLUMN {d}")).collect();
            format!("ALTER TABLE {} {};", self.qtable, adds.join(", "))
        }])
    }

    fn abort(mut self: Box<Self>) {
        // The server rolls back too when the session ends without COMMIT.
        if self.in_transaction {
            let _ = self.conn.query_drop("ROLLBACK");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_kinds_compare_by_columns() {
        assert_eq!(RunKind::Write(vec![0, 1]), RunKind::Write(vec![0, 1]));
        assert_ne!(RunKind::Write(vec![0, 1]), RunKind::Write(vec![1]));
        assert_ne!(RunKind::Write(vec![]), RunKind::Delete);
    }

    #[test]
    fn stage_types_hold_json_as_text() {
        let column = Column {
            name: "doc".into(),
            kind: Kind::Json,
            sql_type: "JSON".into(),
            in_target: false,
            staged: false,
        };
        assert_eq!(MysqlSink::stage_type(&column), "LONGTEXT");
    }
}
