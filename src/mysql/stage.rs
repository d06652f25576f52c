//! The bulk path into a MySQL table. MySQL commits the open transaction at
//! every CREATE or ALTER TABLE, so a load cannot create or widen its table
//! in the middle of its transaction. Rows are therefore checked (a value
//! that does not fit its column is a reject before anything is sent) and
//! sent in multi-row INSERT statements to a session-private TEMPORARY
//! staging table, which no other session sees; at commit they are moved
//! into the table in order, run by run (a run: consecutive rows with the
//! same columns, or deletes).

use anyhow::{Result, bail};
use mysql::Conn;
use mysql::prelude::Queryable;

use super::bulk::{CHUNK, load_chunk, load_sql};
use super::conn::message;
use super::table::{Column, Table, db_err, quote};
use super::values::{Kind, Literal, TabText, push_value};
use crate::format::flat::{Fields, Raw};
use crate::sink::LoadOptions;
use crate::store::binder::UNBOUND;

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

/// A row's encoded values, and the column with the longest (index, bytes).
pub type Encoded<T> = (T, Option<(usize, usize)>);

/// What a run of consecutive staged rows does at commit.
#[derive(Debug, Clone, PartialEq)]
pub enum RunKind {
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

/// Rows staged for the table, in runs, with the buffer of the staging
/// INSERT being built.
pub struct Stage {
    stage_exists: bool,
    runs: Vec<Run>,
    seq: u64,
    /// The rows of the statement being built: an INSERT's `(...),(...)`,
    /// or LOAD DATA's lines.
    buffer: Vec<u8>,
    /// Rows in `buffer`.
    buffered: u64,
    /// Rows go to the staging table with LOAD DATA LOCAL INFILE (the
    /// server allows it), as tab-separated text (`values::TabText`).
    pub load_data: bool,
    /// The server's max_allowed_packet: the largest statement it takes.
    max_packet: usize,
}

/// The staging table's type for a column: JSON is checked by the target,
/// so it is staged as plain text.
fn stage_type(column: &Column) -> &str {
    if column.kind == Kind::Json {
        "LONGTEXT"
    } else {
        &column.sql_type
    }
}

impl Stage {
    /// Reads the server's max_allowed_packet; nothing is staged yet.
    pub fn new(conn: &mut Conn) -> Result<Stage> {
        let max_packet: Option<u64> = conn
            .query_first("SELECT @@max_allowed_packet")
            .map_err(db_err("cannot read the server's max_allowed_packet"))?;
        Ok(Stage {
            stage_exists: false,
            runs: Vec::new(),
            seq: 0,
            buffer: Vec::new(),
            buffered: 0,
            load_data: false,
            max_packet: max_packet
                .map_or(DEFAULT_PACKET, |p| usize::try_from(p).unwrap_or(usize::MAX)),
        })
    }

    /// Creates the staging table, or adds the columns it lacks. DDL on a
    /// TEMPORARY table: nothing but staged rows is outstanding, so the
    /// implicit commit changes nothing anyone can see.
    fn ensure_stage(&mut self, conn: &mut Conn, table: &mut Table) -> Result<()> {
        let missing: Vec<usize> = (0..table.columns.len())
            .filter(|&i| !table.columns[i].staged)
            .collect();
        if self.stage_exists && missing.is_empty() {
            return Ok(());
        }
        let defs: Vec<String> = missing
            .iter()
            .map(|&i| {
                let c = &table.columns[i];
                format!("{} {} NULL", quote(&c.name), stage_type(c))
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
        conn.query_drop(&sql)
            .map_err(db_err("cannot create the staging table"))?;
        self.stage_exists = true;
        for i in missing {
            table.columns[i].staged = true;
        }
        Ok(())
    }

    /// Sends the buffered rows to the staging table (`name`: the target as
    /// messages show it).
    pub fn flush(
        &mut self,
        conn: &mut Conn,
        table: &mut Table,
        keys: &[String],
        name: &str,
    ) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.ensure_stage(conn, table)?;
        let Some(run) = self.runs.last() else {
            bail!("rows buffered without a run");
        };
        let cols = match &run.kind {
            RunKind::Write(cols) => cols.clone(),
            RunKind::Delete => table.key_columns(keys),
        };
        let rows = std::mem::take(&mut self.buffered);
        if self.load_data {
            let columns: Vec<&Column> = cols.iter().map(|&i| &table.columns[i]).collect();
            let sql = load_sql(STAGE, Some("_etl_seq"), &columns);
            let data = std::mem::take(&mut self.buffer);
            return load_chunk(conn, &sql, data, rows)
                .map_err(|e| anyhow::anyhow!("{name}: cannot stage rows: {e}"));
        }
        let mut names = vec!["`_etl_seq`".to_string()];
        names.extend(cols.iter().map(|&i| quote(&table.columns[i].name)));
        let values = String::from_utf8(std::mem::take(&mut self.buffer))?;
        let sql = format!("INSERT INTO {STAGE} ({}) VALUES {values}", names.join(", "));
        conn.query_drop(sql)
            .map_err(|e| anyhow::anyhow!("{name}: cannot stage rows: {}", message(&e)))
    }

    /// The bytes of a staging INSERT before its rows, for a run of `kind`:
    /// ``INSERT INTO `_etl_stage` (`_etl_seq`, `a`, ...) VALUES ``.
    fn head_bytes(table: &Table, keys: &[String], kind: &RunKind) -> usize {
        let quoted = |i: usize| {
            let name = &table.columns[i].name;
            name.len() + name.matches('`').count() + 2
        };
        let names: usize = match kind {
            RunKind::Write(cols) => cols.iter().map(|&i| quoted(i) + 2).sum(),
            RunKind::Delete => table
                .key_columns(keys)
                .into_iter()
                .map(|i| quoted(i) + 2)
                .sum(),
        };
        "INSERT INTO ".len() + STAGE.len() + " (`_etl_seq`) VALUES ".len() + names
    }

    /// Why a row of `kind` whose literals take `values` bytes cannot be
    /// sent in any statement the server takes (its max_allowed_packet), if
    /// so. (LOAD DATA rows are held to the same limit, measured on the
    /// text they are sent as: a quote or a backslash counts once here,
    /// twice there.)
    pub fn too_large(
        &self,
        table: &Table,
        keys: &[String],
        kind: impl FnOnce() -> RunKind,
        values: usize,
        longest: Option<(usize, usize)>,
    ) -> Option<String> {
        if values + STATEMENT_HEADROOM < self.max_packet {
            return None;
        }
        // One command byte, the parentheses and the sequence number.
        let bytes = 1 + Self::head_bytes(table, keys, &kind()) + values + 2 + 20;
        if bytes <= self.max_packet {
            return None;
        }
        let max = self.max_packet;
        Some(match longest {
            Some((i, n)) => format!(
                "column {:?}: a value of {n} bytes does not fit in one statement to the server \
                 (its max_allowed_packet is {max} bytes)",
                table.columns[i].name
            ),
            None => format!(
                "the row is {bytes} bytes as SQL, more than the server takes in one statement \
                 (its max_allowed_packet is {max} bytes)"
            ),
        })
    }

    /// Appends one staged row (`values` holds its literals, or its LOAD
    /// DATA fields, each after its separator) to the run of `kind`,
    /// starting a new run when the kind or columns change.
    pub fn stage_row(
        &mut self,
        conn: &mut Conn,
        table: &mut Table,
        keys: &[String],
        name: &str,
        kind: RunKind,
        values: &[u8],
    ) -> Result<()> {
        self.seq += 1;
        let same = self.runs.last().is_some_and(|r| r.kind == kind);
        if !same {
            self.flush(conn, table, keys, name)?;
            self.runs.push(Run {
                kind,
                first: self.seq,
                last: self.seq,
            });
        } else if !self.buffer.is_empty()
            && !self.load_data
            && self.buffer.len() + values.len() + STATEMENT_HEADROOM >= self.max_packet
            && self.buffer.len() + values.len() + 24 + Self::head_bytes(table, keys, &kind)
                >= self.max_packet
        {
            // This row would take the statement past what the server
            // takes: the rows before it go first.
            self.flush(conn, table, keys, name)?;
        }
        if let Some(run) = self.runs.last_mut() {
            run.last = self.seq;
        }
        let seq = self.seq.to_string();
        self.buffered += 1;
        if self.load_data {
            self.buffer.extend_from_slice(seq.as_bytes());
            self.buffer.extend_from_slice(values);
            self.buffer.push(b'\n');
            if self.buffer.len() >= CHUNK {
                self.flush(conn, table, keys, name)?;
            }
            return Ok(());
        }
        if !self.buffer.is_empty() {
            self.buffer.push(b',');
        }
        self.buffer.push(b'(');
        self.buffer.extend_from_slice(seq.as_bytes());
        self.buffer.extend_from_slice(values);
        self.buffer.push(b')');
        if self.buffer.len() >= STATEMENT_BYTES {
            self.flush(conn, table, keys, name)?;
        }
        Ok(())
    }

    /// A row's values in the form this stage sends them: LOAD DATA's text
    /// or SQL literals (see [`encode`](Self::encode)).
    pub fn encode_row(
        &self,
        table: &Table,
        fields: &Fields<'_>,
    ) -> Result<Encoded<Vec<u8>>, String> {
        if self.load_data {
            Self::encode::<TabText>(table, fields).map(|(t, l)| (t.0, l))
        } else {
            Self::encode::<String>(table, fields).map(|(s, l)| (s.into_bytes(), l))
        }
    }

    /// A deleting record's key values in the form this stage sends them.
    pub fn encode_key_row(
        &self,
        table: &Table,
        fields: &Fields<'_>,
        keys: &[String],
    ) -> Result<Vec<u8>, String> {
        if self.load_data {
            Self::encode_keys::<TabText>(table, fields, keys).map(|t| t.0)
        } else {
            Self::encode_keys::<String>(table, fields, keys).map(String::into_bytes)
        }
    }

    /// Literals for `fields` in the columns they are bound to (a field
    /// without a column, only null so far, is left out), each after its
    /// separator, and the column with the longest literal (index, bytes).
    pub fn encode<L: Literal + Default>(
        table: &Table,
        fields: &Fields<'_>,
    ) -> Result<Encoded<L>, String> {
        let mut out = L::default();
        let mut longest: Option<(usize, usize)> = None;
        for ((_, value), &i) in fields.iter().zip(&table.binder.bound) {
            if i == UNBOUND {
                continue;
            }
            let column = &table.columns[i];
            out.separator();
            let start = out.written();
            push_value(&mut out, &column.kind, &column.sql_type, value)
                .map_err(|reason| format!("column {:?}: {reason}", column.name))?;
            let bytes = out.written() - start;
            if longest.is_none_or(|(_, n)| bytes > n) {
                longest = Some((i, bytes));
            }
        }
        Ok((out, longest))
    }

    /// Literals for the key columns of a record that deletes its key, each
    /// preceded by a comma.
    pub fn encode_keys<L: Literal + Default>(
        table: &Table,
        fields: &Fields<'_>,
        keys: &[String],
    ) -> Result<L, String> {
        let mut values = L::default();
        for i in table.key_columns(keys) {
            let column = &table.columns[i];
            let value = fields
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&column.name))
                .map_or(&Raw::Null, |(_, v)| v);
            values.separator();
            if let Err(reason) = push_value(&mut values, &column.kind, &column.sql_type, value) {
                return Err(format!("key column {:?}: {reason}", column.name));
            }
        }
        Ok(values)
    }

    /// The staging table as `--mode sync` reads the stream's keys from it
    /// (a table of no rows when nothing was staged).
    pub fn seen(&self, keys: &[String]) -> String {
        if self.stage_exists {
            return STAGE.to_string();
        }
        let none: Vec<String> = keys
            .iter()
            .map(|k| format!("NULL AS {}", quote(k)))
            .collect();
        format!("(SELECT {} FROM DUAL WHERE FALSE)", none.join(", "))
    }

    /// Moves the staged runs into the table, in order, inside the open
    /// transaction; returns the rows deleted (--delete-when).
    pub fn apply(&mut self, conn: &mut Conn, table: &Table, options: &LoadOptions) -> Result<u64> {
        let mut deleted = 0;
        let runs = std::mem::take(&mut self.runs);
        for run in &runs {
            deleted += apply(conn, table, options, run)?;
        }
        // Kept to know, after the commit, whether rows were staged.
        self.runs = runs;
        Ok(deleted)
    }

    /// Empties the staging table once its rows are committed: TRUNCATE
    /// (DDL, whose implicit commit has nothing left to commit here) drops
    /// its pages at once, where a DELETE would log every row.
    pub fn clear(&mut self, conn: &mut Conn) -> Result<()> {
        let runs = std::mem::take(&mut self.runs);
        if self.stage_exists && !runs.is_empty() {
            conn.query_drop(format!("TRUNCATE TABLE {STAGE}"))
                .map_err(db_err("cannot empty the staging table"))?;
        }
        Ok(())
    }
}

/// Moves one run of staged rows into the table; returns the rows deleted.
fn apply(conn: &mut Conn, table: &Table, options: &LoadOptions, run: &Run) -> Result<u64> {
    let range = format!("s.`_etl_seq` BETWEEN {} AND {}", run.first, run.last);
    match &run.kind {
        RunKind::Delete => {
            let on: Vec<String> = table
                .key_columns(&options.keys)
                .iter()
                .map(|&i| format!("t.{c} = s.{c}", c = quote(&table.columns[i].name)))
                .collect();
            conn.query_drop(format!(
                "DELETE t FROM {} AS t JOIN {STAGE} AS s ON {} WHERE {range}",
                table.qtable,
                on.join(" AND ")
            ))
            .map_err(db_err("cannot apply deletes"))?;
            return Ok(conn.affected_rows());
        }
        RunKind::Write(cols) if cols.is_empty() => {
            // Records without values: rows of defaults.
            let rows = vec!["()"; (run.last - run.first + 1) as usize];
            conn.query_drop(format!(
                "INSERT INTO {} () VALUES {}",
                table.qtable,
                rows.join(",")
            ))
            .map_err(db_err("cannot insert rows of defaults"))?;
        }
        RunKind::Write(cols) => {
            let names: Vec<String> = cols
                .iter()
                .map(|&i| quote(&table.columns[i].name))
                .collect();
            let select: Vec<String> = names.iter().map(|n| format!("s.{n}")).collect();
            let mut sql = format!(
                "INSERT INTO {} ({}) SELECT {} FROM {STAGE} AS s WHERE {range} ORDER BY s.`_etl_seq`",
                table.qtable,
                names.join(", "),
                select.join(", ")
            );
            if options.mode.merges_by_key() {
                let keys: Vec<String> = options.keys.iter().map(|k| k.to_lowercase()).collect();
                let updates: Vec<String> = cols
                    .iter()
                    .filter(|&&i| !keys.contains(&table.columns[i].name.to_lowercase()))
                    .map(|&i| format!("{n} = VALUES({n})", n = quote(&table.columns[i].name)))
                    .collect();
                let updates = if updates.is_empty() {
                    // Nothing but the key: the row stays as it is.
                    let k = quote(&options.keys[0]);
                    format!("{k} = {k}")
                } else {
                    updates.join(", ")
                };
                sql.push_str(&format!(" ON DUPLICATE KEY UPDATE {updates}"));
            }
            conn.query_drop(sql).map_err(|e| {
                anyhow::anyhow!(
                    "cannot move rows into table {:?}: {}",
                    table.table,
                    message(&e)
                )
            })?;
        }
    }
    Ok(0)
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
        assert_eq!(stage_type(&column), "LONGTEXT");
    }
}
