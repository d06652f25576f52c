//! SQLite as a store: a table or query as a source, a table as a target
//! (one transaction per run), and the state kept beside the data. This file
//! holds the conventions both sides share: how identifiers are quoted, and
//! how a column's declared type maps to a wire type.

pub mod sink;
pub mod source;
pub mod state;
pub mod store;
pub mod table;
pub mod types;

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Failure, Kind};
use crate::record::FieldType;

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

/// Quotes an identifier that may come from data: `"` doubled, whole name
/// wrapped. Never paste a name into SQL any other way.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The declared type etlkit gives a column it creates for `t`.
pub fn declared_type(t: FieldType) -> &'static str {
    match t {
        FieldType::Integer => "INTEGER",
        FieldType::Float => "REAL",
        FieldType::Boolean => "BOOLEAN",
        FieldType::Text => "TEXT",
        // TEXT affinity: with the plain name JSON (NUMERIC affinity) SQLite
        // would turn a long number's text into a rounded REAL.
        FieldType::Json => "JSON_TEXT",
    }
}

/// What a column accepts, derived from its declared type the way SQLite
/// derives affinity, plus the two names etlkit gives meaning to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// A typed column etlkit understands.
    Typed(FieldType),
    /// NUMERIC affinity (DATE, DECIMAL, ...): numbers, and text SQLite
    /// would not turn into a number.
    Numeric,
    /// No declared type: anything, stored as given.
    Any,
}

impl ColumnKind {
    /// The kind of a column declared as `decl`.
    pub fn from_declared(decl: &str) -> ColumnKind {
        let upper = decl.to_ascii_uppercase();
        if upper.starts_with("BOOL") {
            ColumnKind::Typed(FieldType::Boolean)
        } else if upper == "JSON" || upper == "JSONB" || upper == "JSON_TEXT" {
            ColumnKind::Typed(FieldType::Json)
        } else if upper.contains("INT") {
            ColumnKind::Typed(FieldType::Integer)
        } else if upper.contains("CHAR") || upper.contains("CLOB") || upper.contains("TEXT") {
            ColumnKind::Typed(FieldType::Text)
        } else if upper.is_empty() || upper.contains("BLOB") {
            ColumnKind::Any
        } else if upper.contains("REAL") || upper.contains("FLOA") || upper.contains("DOUB") {
            ColumnKind::Typed(FieldType::Float)
        } else {
            ColumnKind::Numeric
        }
    }

    /// The wire type a reader of this column should declare, if any.
    pub fn field_type(self) -> Option<FieldType> {
        match self {
            ColumnKind::Typed(t) => Some(t),
            ColumnKind::Numeric | ColumnKind::Any => None,
        }
    }

    /// A name for messages.
    pub fn describe(self) -> &'static str {
        match self {
            ColumnKind::Typed(t) => declared_type(t),
            ColumnKind::Numeric => "NUMERIC",
            ColumnKind::Any => "untyped",
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

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(
            quote_ident(r#"a"b; DROP TABLE x"#),
            r#""a""b; DROP TABLE x""#
        );
    }

    #[test]
    fn declared_types_map_like_affinity() {
        use ColumnKind::*;
        assert_eq!(
            ColumnKind::from_declared("BIGINT"),
            Typed(FieldType::Integer)
        );
        assert_eq!(
            ColumnKind::from_declared("varchar(20)"),
            Typed(FieldType::Text)
        );
        assert_eq!(
            ColumnKind::from_declared("DOUBLE PRECISION"),
            Typed(FieldType::Float)
        );
        assert_eq!(
            ColumnKind::from_declared("BOOLEAN"),
            Typed(FieldType::Boolean)
        );
        assert_eq!(ColumnKind::from_declared("JSON"), Typed(FieldType::Json));
        assert_eq!(ColumnKind::from_declared("DATETIME"), Numeric);
        assert_eq!(ColumnKind::from_declared(""), Any);
        for t in [
            FieldType::Integer,
            FieldType::Float,
            FieldType::Boolean,
            FieldType::Text,
            FieldType::Json,
        ] {
            assert_eq!(ColumnKind::from_declared(declared_type(t)), Typed(t));
        }
    }
}
