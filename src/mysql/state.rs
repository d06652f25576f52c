//! The state a MySQL target keeps beside its data, in the URL's database:
//! each stream's bookmark in `_etl_state`, and the ids of committed
//! `etl-watch` batches in `_etl_batches`, scoped by (target table, stream,
//! id) as in the other stores. The writes run inside the caller's InnoDB
//! transaction, with the rows they account for; the tables themselves are
//! created beforehand (`ensure_*`), because MySQL commits the open
//! transaction at every CREATE TABLE. [`MysqlState`] is the store a load
//! reads and writes them through; it holds the load's connection, which
//! the table and the staging borrow from it.

use anyhow::{Context, Result, bail};
use mysql::prelude::Queryable;
use mysql::{Conn, Value as SqlValue};
use serde_json::Value;

use super::bulk::Session;
use super::conn::message;
use crate::runs::{RUNS_TABLE, RunRecord};
use crate::state::{BATCH_TABLE, STATE_TABLE, StateChanges, StateStore};

/// The state of one target table, read and written through the load's
/// connection.
pub struct MysqlState {
    session: Session,
    table: String,
}

impl MysqlState {
    /// The state kept for `table`, over the load's connection `conn`
    /// (`name`: the target as messages show it).
    pub fn new(conn: Conn, name: &str, table: &str) -> MysqlState {
        MysqlState {
            session: Session::new(conn, name),
            table: table.to_string(),
        }
    }

    /// The load's connection (also the table's and the staging's), once
    /// any LOAD DATA in progress has ended.
    pub fn conn(&mut self) -> Result<&mut Conn> {
        self.session.conn()
    }

    /// The connection as a LOAD DATA borrows it.
    pub fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    /// Would [`create_tables`](Self::create_tables) have a table to make
    /// for `changes`? (No DDL: safe inside the data's transaction.)
    pub fn tables_missing(&mut self, changes: &StateChanges) -> Result<bool> {
        let conn = self.session.conn()?;
        for (table, _) in wanted(changes) {
            if !table_exists(conn, table)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Creates the state tables `changes` will write to (DDL: call it
    /// before the data's transaction starts).
    pub fn create_tables(&mut self, changes: &StateChanges) -> Result<()> {
        let conn = self.session.conn()?;
        for (_, ensure) in wanted(changes) {
            ensure(conn)?;
        }
        Ok(())
    }

    /// Writes a run's bookmarks, the batch ids it loaded and its record,
    /// inside the data's transaction (after [`create_tables`](Self::create_tables)).
    pub fn write(&mut self, changes: &StateChanges) -> Result<()> {
        let conn = self.session.conn()?;
        for (stream, bookmark, rows) in changes.bookmarks() {
            write_bookmark(conn, stream, bookmark, rows)?;
        }
        for (stream, id) in &changes.batches {
            record_batch(conn, &self.table, stream, id)?;
        }
        if let Some(run) = &changes.run {
            record_run(conn, &self.table, run)?;
        }
        Ok(())
    }
}

impl StateStore for MysqlState {
    fn bookmark(&mut self, stream: &str) -> Result<Option<Value>> {
        read_bookmark(self.session.conn()?, stream)
    }

    fn batch_committed(&mut self, stream: &str, id: &str) -> Result<bool> {
        batch_committed(self.session.conn()?, &self.table, stream, id)
    }
}

/// Longest stream name or batch id the tables hold (characters).
const KEY_LIMIT: usize = 255;

fn db_err(what: &'static str) -> impl Fn(mysql::Error) -> anyhow::Error {
    move |e| anyhow::anyhow!("{what}: {}", message(&e))
}

fn fits(what: &str, text: &str) -> Result<()> {
    if text.chars().count() > KEY_LIMIT {
        bail!("{what} {text:?} is longer than the {KEY_LIMIT} characters MySQL state keeps");
    }
    Ok(())
}

/// Makes one state table if it is missing (DDL).
type Ensure = fn(&mut Conn) -> Result<()>;

/// The state tables `changes` writes to, each with the DDL that makes it.
fn wanted(changes: &StateChanges) -> Vec<(&'static str, Ensure)> {
    let mut wanted: Vec<(&'static str, Ensure)> = Vec::new();
    if changes.bookmarks().next().is_some() {
        wanted.push((STATE_TABLE, ensure_state_table));
    }
    if !changes.batches.is_empty() {
        wanted.push((BATCH_TABLE, ensure_batch_table));
    }
    if changes.run.is_some() {
        wanted.push((RUNS_TABLE, ensure_runs_table));
    }
    wanted
}

/// Does a table of this name exist in the current database?
fn table_exists(conn: &mut Conn, table: &str) -> Result<bool> {
    let n: Option<u64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
            (table,),
        )
        .map_err(db_err("cannot look for a table"))?;
    Ok(n.unwrap_or(0) > 0)
}

/// Creates `_etl_state` if needed (a DDL statement: call it outside the
/// data's transaction).
fn ensure_state_table(conn: &mut Conn) -> Result<()> {
    conn.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS `{STATE_TABLE}` (\
           stream VARCHAR({KEY_LIMIT}) NOT NULL PRIMARY KEY, bookmark LONGTEXT NOT NULL, \
           `rows` BIGINT NOT NULL, \
           updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) \
         ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    ))
    .map_err(db_err("cannot create the state table"))
}

/// The stored bookmark of `stream`; `None` before its first run.
fn read_bookmark(conn: &mut Conn, stream: &str) -> Result<Option<Value>> {
    if !table_exists(conn, STATE_TABLE)? {
        return Ok(None);
    }
    let text: Option<String> = conn
        .exec_first(
            format!("SELECT bookmark FROM `{STATE_TABLE}` WHERE stream = ?"),
            (stream,),
        )
        .map_err(db_err("cannot read the bookmark"))?;
    text.map(|t| serde_json::from_str(&t).context("stored bookmark is not valid JSON"))
        .transpose()
}

/// Stores a bookmark inside the caller's transaction.
fn write_bookmark(conn: &mut Conn, stream: &str, bookmark: &Value, rows: u64) -> Result<()> {
    fits("stream name", stream)?;
    conn.exec_drop(
        format!(
            "INSERT INTO `{STATE_TABLE}` (stream, bookmark, `rows`) VALUES (?, ?, ?) \
             ON DUPLICATE KEY UPDATE bookmark = VALUES(bookmark), `rows` = VALUES(`rows`), \
             updated_at = CURRENT_TIMESTAMP(6)"
        ),
        (stream, bookmark.to_string(), rows),
    )
    .map_err(db_err("cannot store the bookmark"))
}

/// Creates `_etl_batches` if needed (DDL: outside the data's transaction).
fn ensure_batch_table(conn: &mut Conn) -> Result<()> {
    conn.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS `{BATCH_TABLE}` (\
           target_table VARCHAR(64) NOT NULL, stream VARCHAR({KEY_LIMIT}) NOT NULL, \
           id VARCHAR({KEY_LIMIT}) NOT NULL, \
           committed_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), \
           PRIMARY KEY (target_table, stream, id)) \
         ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    ))
    .map_err(db_err("cannot create the batch table"))
}

/// Has batch `id` of `stream` been committed into `table`?
fn batch_committed(conn: &mut Conn, table: &str, stream: &str, id: &str) -> Result<bool> {
    if !table_exists(conn, BATCH_TABLE)? {
        return Ok(false);
    }
    let found: Option<SqlValue> = conn
        .exec_first(
            format!(
                "SELECT 1 FROM `{BATCH_TABLE}` WHERE target_table = ? AND stream = ? AND id = ?"
            ),
            (table, stream, id),
        )
        .map_err(db_err("cannot read the batch table"))?;
    Ok(found.is_some())
}

/// Records batch `id` of `stream` for `table`, inside the caller's transaction.
fn record_batch(conn: &mut Conn, table: &str, stream: &str, id: &str) -> Result<()> {
    fits("stream name", stream)?;
    fits("batch id", id)?;
    conn.exec_drop(
        format!(
            "INSERT INTO `{BATCH_TABLE}` (target_table, stream, id) VALUES (?, ?, ?) \
             ON DUPLICATE KEY UPDATE committed_at = committed_at"
        ),
        (table, stream, id),
    )
    .map_err(db_err("cannot record the batch"))
}

/// Reads `stream`'s bookmark from the database a URL names (for
/// `etl-extract --state mysql://...`).
pub fn read(url: &str, stream: &str) -> Result<Option<Value>> {
    let mut conn = super::conn::connect(url)?;
    read_bookmark(&mut conn, stream)
        .with_context(|| format!("cannot read state from {}", super::conn::redact(url)))
}

/// Creates `_etl_runs` if needed (a DDL statement: call it outside the
/// data's transaction).
fn ensure_runs_table(conn: &mut Conn) -> Result<()> {
    conn.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS `{RUNS_TABLE}` (run_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
           job VARCHAR({KEY_LIMIT}) NOT NULL, target_table VARCHAR(64) NOT NULL, \
           started_at DATETIME(3) NOT NULL, ended_at DATETIME(3) NOT NULL, \
           rows_read BIGINT NOT NULL, rows_written BIGINT NOT NULL, rows_rejected BIGINT NOT NULL, \
           rows_skipped BIGINT NOT NULL, bookmark_before LONGTEXT, bookmark_after LONGTEXT, \
           batches LONGTEXT, status VARCHAR(16) NOT NULL, error LONGTEXT) \
         ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    ))
    .map_err(db_err("cannot create the run history table"))
}

/// Adds a run to `_etl_runs` (inside the caller's transaction; the session
/// runs in UTC).
fn record_run(conn: &mut Conn, table: &str, run: &RunRecord) -> Result<()> {
    let json = run.to_json();
    let time = |key: &str| {
        json[key]
            .as_str()
            .unwrap_or_default()
            .trim_end_matches('Z')
            .replace('T', " ")
    };
    conn.exec_drop(
        format!(
            "INSERT INTO `{RUNS_TABLE}` (job, target_table, started_at, ended_at, rows_read, \
             rows_written, rows_rejected, rows_skipped, bookmark_before, bookmark_after, batches, \
             status, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ),
        vec![
            SqlValue::from(run.job.as_str()),
            SqlValue::from(table),
            SqlValue::from(time("started_at")),
            SqlValue::from(time("ended_at")),
            SqlValue::from(run.read),
            SqlValue::from(run.written),
            SqlValue::from(run.rejected),
            SqlValue::from(run.skipped),
            SqlValue::from(json["bookmark_before"].to_string()),
            SqlValue::from(json["bookmark_after"].to_string()),
            SqlValue::from(json["batches"].to_string()),
            SqlValue::from(run.status.name()),
            run.error.as_deref().map_or(SqlValue::NULL, SqlValue::from),
        ],
    )
    .map_err(db_err("cannot record the run"))
}

/// Records a failed run in its own transaction, after the load's was
/// rolled back.
pub fn record_failed_run(url: &str, table: &str, run: &RunRecord) -> Result<()> {
    let mut conn = super::conn::connect(url)?;
    ensure_runs_table(&mut conn)?;
    record_run(&mut conn, table, run)
}
