//! Opening a SQLite database: for reading (never creating it, and rolling
//! back a load that was killed mid-commit), and for a load, with its write
//! transaction taken ([`SqliteTarget`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags};

use crate::error::{Failure, Kind};

/// SQLite's extended code for "a hot journal needs rolling back, and this
/// connection may not write" (SQLITE_READONLY_ROLLBACK).
const READONLY_ROLLBACK: std::ffi::c_int = 776;

/// Opens an existing database to read it (etl-extract, `--state`, the run
/// history), never creating it. A load killed mid-commit leaves a hot
/// journal beside the file, and SQLite rolls it back on the first read,
/// but only through a connection that may write: so the file is opened
/// read-write where it is writable (read-only where it is not), and
/// `query_only` keeps the connection from changing anything itself.
pub fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

/// Turns a read that failed on a hot journal it could not roll back (the
/// file or its directory is not writable to this user) into a message
/// that says so and names the command that recovers the file.
pub fn explain_hot_journal(err: anyhow::Error, path: &Path) -> anyhow::Error {
    let hot = err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<rusqlite::Error>(),
            Some(rusqlite::Error::SqliteFailure(e, _)) if e.extended_code == READONLY_ROLLBACK
        )
    });
    if !hot {
        return err;
    }
    let name = path.display();
    Failure::new(
        Kind::Runtime,
        format!(
            "cannot read {name}: a write to it was interrupted (its journal {name}-journal is \
             still there), and rolling that back needs write access to the file and its \
             directory, which this user does not have"
        ),
    )
    .hint(format!(
        "as a user who may write it, run: sqlite3 {name} 'PRAGMA quick_check' \
         (any connection that may write rolls the journal back; the data is then as before \
         the interrupted write)"
    ))
    .into()
}

/// An open SQLite database with a write transaction in progress.
#[derive(Debug)]
pub struct SqliteTarget {
    path: PathBuf,
    conn: Connection,
}

impl SqliteTarget {
    /// Opens (or creates) the database and takes the write lock. Another
    /// load of the same file is waited for, up to `wait`.
    pub fn open(path: &Path, wait: Duration) -> Result<Self> {
        let name = path.display();
        let conn = Connection::open(path)
            .with_context(|| format!("cannot open SQLite database {name}"))?;
        let target = SqliteTarget {
            path: path.to_path_buf(),
            conn,
        };
        target
            .conn
            .busy_timeout(wait)
            .and_then(|()| {
                target
                    .conn
                    .execute_batch("PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY;")
            })
            .and_then(|()| target.conn.execute_batch("BEGIN IMMEDIATE"))
            .with_context(|| format!("cannot start a write transaction on {name}"))?;
        Ok(target)
    }

    /// The connection, inside the run's transaction.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Commits the open transaction.
    pub fn commit(&self) -> Result<()> {
        self.conn
            .execute_batch("COMMIT")
            .with_context(|| format!("cannot commit to {}", self.path.display()))
    }

    /// Starts the next write transaction (after a segment's commit).
    pub fn begin(&self) -> Result<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE").with_context(|| {
            format!(
                "cannot start a write transaction on {}",
                self.path.display()
            )
        })
    }

    /// Undoes the open transaction, if one is open. A database file this
    /// run created stays (empty): another load may already be waiting on
    /// it, and deleting it would make that load's commit vanish.
    pub fn rollback(&self) {
        if !self.conn.is_autocommit() {
            // The transaction dies with the connection even if ROLLBACK fails.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hot_journal_a_reader_cannot_roll_back_is_explained() {
        let cause = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error {
                code: rusqlite::ErrorCode::ReadOnly,
                extended_code: READONLY_ROLLBACK,
            },
            None,
        );
        let err = explain_hot_journal(
            anyhow::Error::new(cause).context("cannot read wh.db"),
            Path::new("wh.db"),
        );
        let failure = err.downcast_ref::<Failure>().expect("explained");
        assert!(
            failure.to_string().starts_with(
                "cannot read wh.db: a write to it was interrupted (its journal wh.db-journal"
            ),
            "{failure}"
        );
        let other = explain_hot_journal(anyhow::anyhow!("no such table: t"), Path::new("wh.db"));
        assert_eq!(other.to_string(), "no such table: t");
    }
}
