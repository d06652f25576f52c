//! SQLite's state store: bookmarks in `_etl_state` and committed batch ids
//! in `_etl_batches`, read and written inside the load's transaction, so
//! they commit with the rows or not at all.

use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension};
use serde_json::Value;

use crate::runs::{RUNS_TABLE, RunRecord};
use crate::state::{BATCH_TABLE, STATE_TABLE, StateChanges, StateStore};

/// The state of one target table, inside an open transaction.
pub struct SqliteState<'c> {
    conn: &'c Connection,
    table: String,
}

impl<'c> SqliteState<'c> {
    /// The state kept for `table` in `conn`'s database.
    pub fn new(conn: &'c Connection, table: &str) -> Self {
        SqliteState {
            conn,
            table: table.to_string(),
        }
    }

    /// Writes a run's bookmarks and batch ids (inside its transaction).
    pub fn write(&self, changes: &StateChanges) -> Result<()> {
        for (stream, bookmark, rows) in changes.bookmarks() {
            write_bookmark(self.conn, stream, bookmark, rows)?;
        }
        if !changes.batches.is_empty() {
            ensure_batch_table(self.conn)?;
        }
        if let Some(run) = &changes.run {
            record_run(self.conn, &self.table, run)?;
        }
        for (stream, id) in &changes.batches {
            self.conn
                .execute(
                    &format!(
                        "INSERT OR IGNORE INTO \"{BATCH_TABLE}\" (target_table, stream, id, committed_at) \
                         VALUES (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
                    ),
                    [&self.table, stream, id],
                )
                .context("cannot record the batch")?;
        }
        Ok(())
    }
}

impl StateStore for SqliteState<'_> {
    fn bookmark(&mut self, stream: &str) -> Result<Option<Value>> {
        read_bookmark(self.conn, stream)
    }

    fn batch_committed(&mut self, stream: &str, id: &str) -> Result<bool> {
        let conn = self.conn;
        let committed = match batch_table_scoped(conn)? {
            None => false,
            // Legacy rows (no table) match every table: see BATCH_TABLE.
            Some(true) => conn.query_row(
                &format!(
                    "SELECT count(*) > 0 FROM \"{BATCH_TABLE}\" WHERE id = ?1 \
                     AND ((target_table = ?2 AND stream = ?3) OR target_table IS NULL)"
                ),
                [id, &self.table, stream],
                |r| r.get(0),
            )?,
            Some(false) => conn.query_row(
                &format!("SELECT count(*) > 0 FROM \"{BATCH_TABLE}\" WHERE id = ?1"),
                [id],
                |r| r.get(0),
            )?,
        };
        Ok(committed)
    }
}

/// Adds a run to `_etl_runs` (inside the caller's transaction).
pub fn record_run(conn: &Connection, table: &str, run: &RunRecord) -> Result<()> {
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS \"{RUNS_TABLE}\" (run_id INTEGER PRIMARY KEY, job TEXT NOT NULL, \
         target_table TEXT NOT NULL, started_at TEXT NOT NULL, ended_at TEXT NOT NULL, \
         rows_read INTEGER NOT NULL, rows_written INTEGER NOT NULL, rows_rejected INTEGER NOT NULL, \
         rows_skipped INTEGER NOT NULL, bookmark_before JSON_TEXT, bookmark_after JSON_TEXT, \
         batches JSON_TEXT, status TEXT NOT NULL, error TEXT)"
    ))?;
    let json = run.to_json();
    conn.execute(
        &format!(
            "INSERT INTO \"{RUNS_TABLE}\" (job, target_table, started_at, ended_at, rows_read, \
             rows_written, rows_rejected, rows_skipped, bookmark_before, bookmark_after, batches, \
             status, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        ),
        rusqlite::params![
            run.job,
            table,
            json["started_at"].as_str(),
            json["ended_at"].as_str(),
            run.read as i64,
            run.written as i64,
            run.rejected as i64,
            run.skipped as i64,
            json["bookmark_before"].to_string(),
            json["bookmark_after"].to_string(),
            json["batches"].to_string(),
            run.status.name(),
            run.error,
        ],
    )
    .context("cannot record the run")?;
    Ok(())
}

/// Records a failed run in its own transaction, after the load's was
/// rolled back (waiting up to `wait` for another load).
pub fn record_failed_run(
    path: &Path,
    table: &str,
    run: &RunRecord,
    wait: std::time::Duration,
) -> Result<()> {
    let conn = Connection::open(path)
        .with_context(|| format!("cannot open SQLite database {}", path.display()))?;
    conn.busy_timeout(wait)?;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    record_run(&conn, table, run)?;
    conn.execute_batch("COMMIT")?;
    Ok(())
}

/// The stored bookmark of `stream` in a SQLite file (read-only, outside
/// any load), for `etl-extract --state wh.db`.
pub fn read_bookmark_file(path: &Path, stream: &str) -> Result<Option<Value>> {
    if !path.exists() {
        return Ok(None);
    }
    let conn = super::conn::open_reader(path)
        .with_context(|| format!("cannot open state database {}", path.display()))?;
    read_bookmark(&conn, stream)
        .with_context(|| format!("cannot read state from {}", path.display()))
        .map_err(|err| super::conn::explain_hot_journal(err, path))
}

/// Reads a bookmark inside an open connection (and its transaction).
pub fn read_bookmark(conn: &Connection, stream: &str) -> Result<Option<Value>> {
    let exists: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [STATE_TABLE],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(None);
    }
    let text: Option<String> = conn
        .query_row(
            &format!("SELECT bookmark FROM \"{STATE_TABLE}\" WHERE stream = ?1"),
            [stream],
            |r| r.get(0),
        )
        .optional()?;
    match text {
        Some(t) => Ok(Some(
            serde_json::from_str(&t).context("stored bookmark is not valid JSON")?,
        )),
        None => Ok(None),
    }
}

/// Stores a bookmark inside the caller's transaction.
fn write_bookmark(conn: &Connection, stream: &str, bookmark: &Value, rows: u64) -> Result<()> {
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS \"{STATE_TABLE}\" (\
           stream TEXT PRIMARY KEY, bookmark JSON NOT NULL, rows INTEGER NOT NULL, \
           updated_at TEXT NOT NULL)"
    ))?;
    conn.execute(
        &format!(
            "INSERT INTO \"{STATE_TABLE}\" (stream, bookmark, rows, updated_at) \
             VALUES (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) \
             ON CONFLICT (stream) DO UPDATE SET bookmark = excluded.bookmark, \
             rows = excluded.rows, updated_at = excluded.updated_at"
        ),
        rusqlite::params![stream, bookmark.to_string(), rows as i64],
    )
    .context("cannot store the bookmark")?;
    Ok(())
}

/// The shape of `_etl_batches`: `None` when missing, `Some(true)` when it
/// is scoped (has `target_table` and `stream`), `Some(false)` when legacy.
fn batch_table_scoped(conn: &Connection) -> Result<Option<bool>> {
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info(?1)")?
        .query_map([BATCH_TABLE], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if columns.is_empty() {
        return Ok(None);
    }
    Ok(Some(columns.iter().any(|c| c == "target_table")))
}

/// Creates the scoped batch table, or migrates a legacy one in place.
fn ensure_batch_table(conn: &Connection) -> Result<()> {
    let create = |name: &str| {
        format!(
            "CREATE TABLE IF NOT EXISTS \"{name}\" (target_table TEXT, stream TEXT, \
             id TEXT NOT NULL, committed_at TEXT NOT NULL, UNIQUE (target_table, stream, id))"
        )
    };
    match batch_table_scoped(conn)? {
        Some(true) => Ok(()),
        None => Ok(conn.execute_batch(&create(BATCH_TABLE))?),
        Some(false) => {
            let scoped = format!("{BATCH_TABLE}_scoped");
            conn.execute_batch(&format!(
                "{}; \
                 INSERT INTO \"{scoped}\" (target_table, stream, id, committed_at) \
                   SELECT NULL, NULL, id, committed_at FROM \"{BATCH_TABLE}\"; \
                 DROP TABLE \"{BATCH_TABLE}\"; \
                 ALTER TABLE \"{scoped}\" RENAME TO \"{BATCH_TABLE}\"",
                create(&scoped)
            ))
            .context("cannot add the table and stream columns to the batch table")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sqlite_state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        assert_eq!(read_bookmark(&conn, "s").unwrap(), None);
        write_bookmark(&conn, "s", &json!({"value": 1}), 1).unwrap();
        write_bookmark(&conn, "s", &json!({"value": 2}), 1).unwrap();
        drop(conn);
        assert_eq!(
            read_bookmark_file(&path, "s").unwrap(),
            Some(json!({"value": 2}))
        );
    }
}
