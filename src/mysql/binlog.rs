//! A MySQL or MariaDB binary log read as change records of one table
//! (`etl-watch mysql://... --table T`).
//!
//! The log is read as a replica reads it (`COM_BINLOG_DUMP`, non-blocking:
//! the server sends what it has and ends the stream), from a file and
//! offset where a transaction starts. Events are grouped into
//! transactions (a commit: the XID event, or a `COMMIT` or DDL query); the
//! row events of the table become records (`crate::changes`), the rest
//! only move the position. Values are written as `etl-extract mysql://`
//! writes them, from the table's own column types; the server must log
//! whole rows with their metadata (`binlog_format = ROW`,
//! `binlog_row_image = FULL`, `binlog_row_metadata = FULL`, which tells
//! an unsigned column from a signed one): other settings are refused.

use anyhow::{Context, Result, bail};
use mysql::binlog::events::{EventData, OptionalMetaExtractor, RowsEventData, TableMapEvent};
use mysql::prelude::Queryable;
use mysql::{BinlogDumpFlags, BinlogRequest};

use super::binlog_values::{Col, members, write_binlog_value};
use super::conn::{self, message};
use super::source::{column_notes, shape_of};
use super::table::quote;
use crate::changes::{self, Op};
use crate::format::json;
use crate::record::FieldType;

/// A place in the binary log: a file and an offset in it. Places order by
/// the file's number (`binlog.999999` comes before `binlog.1000000`), then
/// the offset.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogPos {
    /// The file, `binlog.000003`.
    pub file: String,
    /// The offset of the next event.
    pub pos: u64,
}

impl Ord for LogPos {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.file_key(), self.pos).cmp(&(other.file_key(), other.pos))
    }
}

impl PartialOrd for LogPos {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for LogPos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

impl LogPos {
    /// The file's stem and number: `("binlog", 3)`.
    fn file_key(&self) -> (&str, u64) {
        match self.file.rsplit_once('.') {
            Some((stem, n)) => (stem, n.parse().unwrap_or(0)),
            None => (&self.file, 0),
        }
    }

    /// Reads `binlog.000003:1234`.
    pub fn parse(text: &str) -> Option<LogPos> {
        let (file, pos) = text.rsplit_once(':')?;
        Some(LogPos {
            file: file.to_string(),
            pos: pos.parse().ok()?,
        })
    }
}

/// What to read.
#[derive(Debug, Clone)]
pub struct BinlogPlan {
    /// The server and database, as given (holds the password, if any).
    pub url: String,
    /// The table, in the URL's database.
    pub table: String,
}

/// A committed transaction's changes to the table.
#[derive(Debug)]
pub struct Transaction {
    /// Just past its commit: where reading goes on.
    pub end: LogPos,
    /// Its records, in order (none: it changed other tables only).
    pub changes: Vec<(Op, Vec<u8>)>,
}

/// The table's binary log, opened.
pub struct Binlog {
    url: String,
    /// The server without its password.
    pub server: String,
    /// The database.
    pub database: String,
    /// The table.
    pub table: String,
    columns: Vec<Col>,
    /// Every column the table had at the start, invisible ones included
    /// (`SELECT *` leaves those out, and so do the records).
    all_columns: Vec<String>,
    /// The primary key's columns, by index.
    key: Vec<usize>,
    server_id: u32,
}

impl Binlog {
    /// Connects, checks the server's logging settings and reads the
    /// table's columns and primary key.
    pub fn open(plan: &BinlogPlan) -> Result<Binlog> {
        let server = conn::redact(&plan.url);
        let database = conn::database(&plan.url)?;
        let mut c = conn::connect(&plan.url)?;
        let fail =
            |what: &str, e: mysql::Error| anyhow::anyhow!("{server}: {what}: {}", message(&e));
        for (name, wanted) in [
            ("log_bin", "ON"),
            ("binlog_format", "ROW"),
            ("binlog_row_image", "FULL"),
            ("binlog_row_metadata", "FULL"),
        ] {
            let value: Option<(String, String)> = c
                .exec_first("SHOW GLOBAL VARIABLES WHERE Variable_name = ?", (name,))
                .map_err(|e| fail("cannot read the server's settings", e))?;
            let value = value.map(|(_, v)| v).unwrap_or_else(|| "not set".into());
            if !value.eq_ignore_ascii_case(wanted) {
                bail!(
                    "{server}: {name} is {value}; change data capture needs {name} = {wanted} \
                     (binary log on, whole rows with their column metadata, so that every \
                     value, an unsigned BIGINT included, reads back exactly)"
                );
            }
        }
        let probe = c
            .prep(format!("SELECT * FROM {} LIMIT 0", quote(&plan.table)))
            .map_err(|e| fail(&format!("cannot read table {}", plan.table), e))?;
        let notes = column_notes(&mut c, &probe);
        let types: Vec<(String, String, Option<String>)> = c
            .exec(
                "SELECT COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME FROM \
                 information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                 ORDER BY ORDINAL_POSITION",
                (&database, &plan.table),
            )
            .map_err(|e| fail("cannot read the table's columns", e))?;
        for (name, _, charset) in &types {
            let charset = charset.as_deref().unwrap_or("binary");
            if !matches!(
                charset,
                "utf8mb4" | "utf8mb3" | "utf8" | "ascii" | "latin1" | "binary"
            ) {
                bail!(
                    "{server}: column {name} of {} is in character set {charset}, which the \
                     binary log holds as stored and etlkit reads only as utf8mb4, utf8mb3, \
                     ascii or latin1; hint: ALTER TABLE ... CONVERT TO CHARACTER SET utf8mb4",
                    plan.table
                );
            }
        }
        let columns: Vec<Col> = probe
            .columns()
            .iter()
            .zip(notes)
            .map(|(column, note)| {
                let (shape, wire) = shape_of(column, note);
                let name = column.name_str().into_owned();
                let found = types.iter().find(|(n, _, _)| *n == name);
                let declared = found.map(|(_, t, _)| t.clone()).unwrap_or_default();
                let lower = declared.to_ascii_lowercase();
                let latin1 = found.and_then(|(_, _, c)| c.as_deref()) == Some("latin1");
                Col {
                    latin1,
                    key: json::key_prefix(&name),
                    members: members(&declared),
                    year: lower.starts_with("year"),
                    pad: lower
                        .strip_prefix("binary(")
                        .and_then(|n| n.strip_suffix(')'))
                        .and_then(|n| n.parse().ok()),
                    name,
                    shape,
                    wire,
                }
            })
            .collect();
        let key_names: Vec<String> = c
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
                 ORDER BY ORDINAL_POSITION",
                (&database, &plan.table),
            )
            .map_err(|e| fail("cannot read the table's key", e))?;
        if key_names.is_empty() {
            bail!(
                "{server}: table {} has no primary key: its deletes and updates could not be \
                 applied to one row; hint: add a primary key",
                plan.table
            );
        }
        let key = key_names
            .iter()
            .filter_map(|k| columns.iter().position(|c| c.name == *k))
            .collect();
        // A replica id of its own, from the database and table, so that
        // readers of different tables never end each other's streams.
        let name = format!("{database}.{}", plan.table);
        let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let server_id = 1_000_000 + (hash % 1_000_000) as u32;
        Ok(Binlog {
            url: plan.url.clone(),
            server,
            database,
            table: plan.table.clone(),
            columns,
            all_columns: types.iter().map(|(n, _, _)| n.clone()).collect(),
            key,
            server_id,
        })
    }

    /// The begin line's schema.
    pub fn schema(&self) -> Vec<(String, FieldType)> {
        self.columns
            .iter()
            .map(|c| (c.name.clone(), c.wire))
            .chain(changes::FIELDS.iter().map(|(n, t)| (n.to_string(), *t)))
            .collect()
    }

    /// Where the log ends now: reading from here gives only what commits
    /// from now on.
    pub fn current(&self) -> Result<LogPos> {
        let mut c = conn::connect(&self.url)?;
        // MySQL 8.4 renamed it; another error (a missing privilege) is
        // the one to show.
        let row: Result<Option<mysql::Row>, mysql::Error> =
            match c.query_first("SHOW MASTER STATUS") {
                Err(e) if message(&e).contains("syntax") => c.query_first("SHOW BINARY LOG STATUS"),
                other => other,
            };
        let row = row.map_err(|e| {
            anyhow::anyhow!(
                "{}: cannot read the binary log's position: {}",
                self.server,
                message(&e)
            )
        })?;
        let row = row.with_context(|| format!("{}: the binary log is off", self.server))?;
        let file: String = row.get(0).context("no binary log file")?;
        let pos: u64 = row.get(1).context("no binary log position")?;
        Ok(LogPos { file, pos })
    }

    /// The transactions committed after `from`, whole, until `max_changes`
    /// records were read (at least one transaction with changes when there
    /// is one) or the log's current end; `until`: stop after the
    /// transaction ending there; `bound`: leave out what ends past it.
    pub fn read(
        &self,
        from: &LogPos,
        max_changes: usize,
        until: Option<&LogPos>,
        bound: Option<&LogPos>,
    ) -> Result<Vec<Transaction>> {
        let c = conn::connect(&self.url)?;
        let request = BinlogRequest::new(self.server_id)
            .with_filename(from.file.as_bytes().to_vec())
            .with_pos(from.pos)
            .with_flags(BinlogDumpFlags::BINLOG_DUMP_NON_BLOCK);
        let mut stream = c.get_binlog_stream(request).map_err(|e| {
            anyhow::anyhow!(
                "{}: cannot read the binary log at {from}: {}",
                self.server,
                message(&e)
            )
        })?;
        let mut file = from.file.clone();
        let mut described = false;
        let mut counted = 0usize;
        let mut out: Vec<Transaction> = Vec::new();
        let mut open: Vec<(Op, Vec<u8>)> = Vec::new();
        while let Some(event) = stream.next() {
            let event = event.map_err(|e| {
                let text = message(&e);
                anyhow::anyhow!(
                    "{}: reading the binary log from {from}: {text}{}",
                    self.server,
                    if text.contains("first log file") || text.contains("purged") {
                        "; hint: the log the checkpoint points at is gone: load the table again \
                         in full, then --restart-from end"
                    } else {
                        ""
                    }
                )
            })?;
            let header = event.header();
            let end = u64::from(header.log_pos());
            let raw_type = header.event_type_raw();
            // MariaDB's compressed events (log_bin_compress) and an
            // incident (the server lost events): no change may pass
            // unread.
            if (165..=171).contains(&raw_type) {
                bail!(
                    "{}: the binary log at {file}:{end} holds compressed events \
                     (log_bin_compress), which etlkit does not read; hint: SET GLOBAL \
                     log_bin_compress = OFF",
                    self.server
                );
            }
            let data = match event.read_data() {
                Ok(Some(data)) => data,
                // Events this reader does not know (MariaDB's GTID and
                // annotations): nothing for a record.
                Ok(None) => continue,
                Err(_) if header.event_type().is_err() => continue,
                Err(e) => bail!(
                    "{}: the binary log event at {file}:{end} (type {raw_type}) does not \
                     decode: {e}",
                    self.server
                ),
            };
            let commit = match &data {
                EventData::FormatDescriptionEvent(_) => {
                    described = true;
                    continue;
                }
                // The rotate the server sends before the first format
                // description may still carry the event's checksum after
                // the name: the file asked for is known. Every later one,
                // at a file's end or (log position 0) after a server
                // restart left a file without one, names the next file.
                EventData::RotateEvent(rotate) => {
                    if described {
                        file = rotate.name().into_owned();
                    }
                    continue;
                }
                EventData::IncidentEvent(_) => bail!(
                    "{}: the server logged an incident at {file}:{end} (events were lost); \
                     hint: load the table again in full, then --restart-from end",
                    self.server
                ),
                EventData::TransactionPayloadEvent(_) => bail!(
                    "{}: the binary log at {file}:{end} holds a compressed transaction \
                     (binlog_transaction_compression), which etlkit does not read; hint: SET \
                     GLOBAL binlog_transaction_compression = OFF",
                    self.server
                ),
                EventData::XidEvent(_) => true,
                // A query ends a transaction unless it opens one or marks
                // a point inside it (COMMIT, and DDL, which commits).
                EventData::QueryEvent(query) => {
                    let q = query.query();
                    let q = q.trim_start().to_ascii_uppercase();
                    !["BEGIN", "SAVEPOINT", "ROLLBACK TO", "XA START", "XA END"]
                        .iter()
                        .any(|w| q.starts_with(w))
                }
                EventData::RowsEvent(rows) => {
                    let Some(tme) = stream.get_tme(rows.table_id()) else {
                        bail!("{}: a row event without its table map", self.server);
                    };
                    if tme.database_name() != self.database.as_str()
                        || tme.table_name() != self.table.as_str()
                    {
                        continue;
                    }
                    let map = self
                        .column_map(tme)
                        .with_context(|| format!("{}: at {file}:{end}", self.server))?;
                    for row in rows.rows(tme) {
                        let (old, new) = row.map_err(|e| {
                            anyhow::anyhow!("{}: a row event at {file}:{end}: {e}", self.server)
                        })?;
                        self.change(rows, &map, old.as_ref(), new.as_ref(), &mut open)
                            .with_context(|| {
                                format!("{}: a row event at {file}:{end}", self.server)
                            })?;
                    }
                    continue;
                }
                _ => false,
            };
            if !commit || end == 0 {
                continue;
            }
            let at = LogPos {
                file: file.clone(),
                pos: end,
            };
            if bound.is_some_and(|b| at > *b) {
                break;
            }
            let time =
                crate::format::temporal::format_instant(i64::from(header.timestamp()) * 1_000_000)
                    .unwrap_or_default();
            let tail = changes::tail(&at.to_string(), &time);
            let records = std::mem::take(&mut open)
                .into_iter()
                .map(|(op, mut record)| {
                    changes::finish(&mut record, op, &tail);
                    (op, record)
                })
                .collect::<Vec<_>>();
            let done = until.is_some_and(|u| *u == at);
            counted += records.len();
            // Transactions of other tables only move the position: one
            // entry for the last of a run of them, not one each.
            if records.is_empty()
                && out
                    .last()
                    .is_some_and(|t: &Transaction| t.changes.is_empty())
            {
                out.pop();
            }
            out.push(Transaction {
                end: at,
                changes: records,
            });
            if done || (until.is_none() && counted > 0 && counted >= max_changes) {
                break;
            }
        }
        Ok(out)
    }

    /// The records of one row of a rows event (an update that moves the
    /// key: a delete of the old key, then the new row).
    fn change(
        &self,
        rows: &RowsEventData<'_>,
        map: &[Option<usize>],
        old: Option<&mysql::binlog::row::BinlogRow>,
        new: Option<&mysql::binlog::row::BinlogRow>,
        out: &mut Vec<(Op, Vec<u8>)>,
    ) -> Result<()> {
        let kind = match rows {
            RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => Op::Insert,
            RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => Op::Delete,
            _ => Op::Update,
        };
        let key = Some(self.key.as_slice());
        match (kind, old, new) {
            (Op::Insert, _, Some(new)) => out.push((Op::Insert, self.record(new, map, None)?)),
            (Op::Delete, Some(old), _) | (Op::Delete, None, Some(old)) => {
                out.push((Op::Delete, self.record(old, map, key)?));
            }
            (Op::Update, Some(old), Some(new)) => {
                let moved = map.iter().enumerate().any(|(logged, i)| {
                    i.is_some_and(|i| self.key.contains(&i))
                        && old.as_ref(logged) != new.as_ref(logged)
                });
                if moved {
                    out.push((Op::Delete, self.record(old, map, key)?));
                }
                out.push((Op::Update, self.record(new, map, None)?));
            }
            _ => bail!("a row event without the row image it needs"),
        }
        Ok(())
    }

    /// One row as an open JSON object (the change fields follow); `map`
    /// gives each logged column's index among the table's columns;
    /// `only`: just these of the table's columns.
    fn record(
        &self,
        row: &mysql::binlog::row::BinlogRow,
        map: &[Option<usize>],
        only: Option<&[usize]>,
    ) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(64 * self.columns.len());
        out.push(b'{');
        for (logged, i) in map.iter().enumerate() {
            let Some(i) = *i else {
                continue;
            };
            if only.is_some_and(|o| !o.contains(&i)) {
                continue;
            }
            let col = &self.columns[i];
            let Some(value) = row.as_ref(logged) else {
                continue;
            };
            if out.len() > 1 {
                out.push(b',');
            }
            out.extend_from_slice(&col.key);
            write_binlog_value(&mut out, value, col)
                .with_context(|| format!("column {}", col.name))?;
        }
        Ok(out)
    }

    /// Each logged column's index among the table's columns, by the names
    /// the table map carries (binlog_row_metadata = FULL): a column the
    /// table had not when etl-watch started (an ALTER since) ends the run,
    /// and the next one starts with it.
    fn column_map(&self, tme: &TableMapEvent<'_>) -> Result<Vec<Option<usize>>> {
        let names: Vec<String> = OptionalMetaExtractor::new(tme.iter_optional_meta())?
            .iter_column_name()
            .map(|n| n.map(|n| n.name().into_owned()))
            .collect::<std::io::Result<_>>()?;
        if names.is_empty() {
            bail!("the table map has no column names (binlog_row_metadata is not FULL)");
        }
        names
            .iter()
            .map(
                |name| match self.columns.iter().position(|c| c.name == *name) {
                    Some(i) => Ok(Some(i)),
                    // An invisible column: not in the records, as not in a copy.
                    None if self.all_columns.contains(name) => Ok(None),
                    None => bail!(
                        "table {} has a column {name} it had not when etl-watch started; run \
                     etl-watch again to read it",
                        self.table
                    ),
                },
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_read_and_write_as_file_and_offset() {
        let p = LogPos::parse("binlog.000003:1234").unwrap();
        assert_eq!(p.to_string(), "binlog.000003:1234");
        let wide = LogPos::parse("binlog.1000000:4").unwrap();
        assert!(LogPos::parse("binlog.999999:99999").unwrap() < wide);
        assert!(p < LogPos::parse("binlog.000003:1235").unwrap());
        assert!(LogPos::parse("binlog.000003").is_none());
    }
}
