//! What each store `etl-load` writes can do: the one table of differences
//! between stores. etl-load's flag checks ask it (`cli/load.rs`), the
//! conformance suite takes its exceptions from it (`tests/stores.rs`), and
//! `etl-load --help` prints it, so a difference between stores is named
//! once, where code, tests and docs all read it.

use std::fmt::Write as _;

/// A kind of store etl-load writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreKind {
    /// A table in a SQLite file.
    Sqlite,
    /// A table in a PostgreSQL database.
    Postgres,
    /// A table in a MySQL or MariaDB database.
    Mysql,
    /// A CSV file.
    Csv,
    /// A TSV file.
    Tsv,
    /// An NDJSON file (or stdout).
    Ndjson,
    /// A Parquet file.
    Parquet,
    /// A Hive-partitioned Parquet dataset (a directory with a manifest).
    Dataset,
}

/// What a record's field that the target lacks becomes (under the default
/// `--schema evolve`; `--schema strict` rejects it everywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewField {
    /// A new column, typed by its values.
    AddsColumn,
    /// A reject: the columns are fixed (a CSV file's header).
    Rejected,
}

/// One store's row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The store's name in messages and docs.
    pub name: &'static str,
    /// What a target of this kind is, in messages ("a CSV file").
    pub what: &'static str,
    /// `--table` names a table in it.
    pub tables: bool,
    /// `--mode upsert --key K` (and `--delete-when`): it has keys.
    pub upsert: bool,
    /// `--mode append` adds to a target that exists.
    pub append_existing: bool,
    /// `--commit segment`: one commit per begin..end segment.
    pub segment_commits: bool,
    /// `--partition-by` and `--mode replace-partitions`.
    pub partitions: bool,
    /// Columns have types: a value that does not fit its column is a reject.
    pub typed_columns: bool,
    /// What a new field becomes.
    pub new_field: NewField,
    /// Bookmarks and batch ids are kept beside the data, committed with it
    /// (no `--state`); otherwise a `--state` JSON file written after it.
    pub own_state: bool,
    /// Field names find columns without regard to case (the exact name
    /// first); two fields naming one column are a reject.
    pub names_fold_case: bool,
    /// Can be written to stdout (`-`).
    pub stdout: bool,
}

impl StoreKind {
    /// Every store etl-load writes, in the order the docs list them.
    pub const ALL: [StoreKind; 8] = [
        StoreKind::Sqlite,
        StoreKind::Postgres,
        StoreKind::Mysql,
        StoreKind::Csv,
        StoreKind::Tsv,
        StoreKind::Ndjson,
        StoreKind::Parquet,
        StoreKind::Dataset,
    ];

    /// The store's row of the capability table.
    pub fn capabilities(self) -> Capabilities {
        let database = |name, what| Capabilities {
            name,
            what,
            tables: true,
            upsert: true,
            append_existing: true,
            segment_commits: true,
            partitions: false,
            typed_columns: true,
            new_field: NewField::AddsColumn,
            own_state: true,
            names_fold_case: true,
            stdout: false,
        };
        let file = |name, what| Capabilities {
            name,
            what,
            tables: false,
            upsert: false,
            append_existing: true,
            segment_commits: false,
            partitions: false,
            typed_columns: false,
            new_field: NewField::AddsColumn,
            own_state: false,
            names_fold_case: false,
            stdout: true,
        };
        match self {
            StoreKind::Sqlite => database("SQLite", "a SQLite database"),
            StoreKind::Postgres => database("PostgreSQL", "a PostgreSQL database"),
            StoreKind::Mysql => database("MySQL/MariaDB", "a MySQL/MariaDB database"),
            StoreKind::Csv => Capabilities {
                new_field: NewField::Rejected,
                ..file("CSV", "a CSV file")
            },
            StoreKind::Tsv => Capabilities {
                new_field: NewField::Rejected,
                ..file("TSV", "a TSV file")
            },
            StoreKind::Ndjson => file("NDJSON", "an NDJSON file"),
            StoreKind::Parquet => Capabilities {
                append_existing: false,
                typed_columns: true,
                stdout: false,
                ..file("Parquet", "a Parquet file")
            },
            StoreKind::Dataset => Capabilities {
                partitions: true,
                typed_columns: true,
                own_state: true,
                stdout: false,
                ..file("dataset", "a dataset directory")
            },
        }
    }

    /// The names of the stores that have a capability, for messages:
    /// "SQLite, PostgreSQL, MySQL/MariaDB".
    pub fn names_with(has: impl Fn(&Capabilities) -> bool) -> String {
        StoreKind::ALL
            .iter()
            .map(|k| k.capabilities())
            .filter(|c| has(c))
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The capability table as etl-load's `--help` prints it: one row per
/// capability, one column per store.
pub fn table() -> String {
    let stores: Vec<Capabilities> = StoreKind::ALL.iter().map(|k| k.capabilities()).collect();
    let yes = |b: bool| if b { "yes" } else { "-" };
    let rows: Vec<(&str, Vec<&str>)> = vec![
        ("table", stores.iter().map(|c| yes(c.tables)).collect()),
        ("upsert", stores.iter().map(|c| yes(c.upsert)).collect()),
        (
            "append",
            stores.iter().map(|c| yes(c.append_existing)).collect(),
        ),
        (
            "segments",
            stores.iter().map(|c| yes(c.segment_commits)).collect(),
        ),
        (
            "partitions",
            stores.iter().map(|c| yes(c.partitions)).collect(),
        ),
        (
            "typed",
            stores.iter().map(|c| yes(c.typed_columns)).collect(),
        ),
        (
            "new field",
            stores
                .iter()
                .map(|c| match c.new_field {
                    NewField::AddsColumn => "column",
                    NewField::Rejected => "reject",
                })
                .collect(),
        ),
        (
            "state",
            stores
                .iter()
                .map(|c| if c.own_state { "own" } else { "file" })
                .collect(),
        ),
        (
            "fold case",
            stores.iter().map(|c| yes(c.names_fold_case)).collect(),
        ),
        ("stdout", stores.iter().map(|c| yes(c.stdout)).collect()),
    ];
    let short = |c: &Capabilities| match c.name {
        "MySQL/MariaDB" => "MySQL",
        "PostgreSQL" => "PG",
        name => name,
    };
    let first = rows.iter().map(|(r, _)| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = stores
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .map(|(_, cells)| cells[i].len())
                .fold(short(c).len(), usize::max)
        })
        .collect();
    let mut out = String::new();
    let _ = write!(out, "{:first$}", "");
    for (c, w) in stores.iter().zip(&widths) {
        let _ = write!(out, "  {:>w$}", short(c));
    }
    out.push('\n');
    for (row, cells) in &rows {
        let _ = write!(out, "{row:first$}");
        for (cell, w) in cells.iter().zip(&widths) {
            let _ = write!(out, "  {cell:>w$}");
        }
        out.push('\n');
    }
    out.push_str(
        "\ntable: --table names a table; upsert: --mode upsert --key and --delete-when;\n\
         append: --mode append to a target that exists; segments: --commit segment;\n\
         partitions: --partition-by and --mode replace-partitions; typed: a value\n\
         that does not fit its column's type is a reject; new field: what a field\n\
         the target lacks becomes under --schema evolve (strict rejects it\n\
         everywhere); state: bookmarks and batch ids kept with the data in one\n\
         commit (own) or in a --state JSON file written after it (file); fold\n\
         case: a field finds its column without regard to case, the exact name\n\
         first; stdout: TARGET - writes to stdout.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_store_has_one_row_and_the_table_names_them_all() {
        let text = table();
        for kind in StoreKind::ALL {
            let c = kind.capabilities();
            // A store that has upsert has tables to hold keys.
            assert!(!c.upsert || c.tables, "{}", c.name);
            // Partitions only where a directory holds many files.
            assert!(!c.partitions || kind == StoreKind::Dataset, "{}", c.name);
        }
        assert!(text.lines().next().is_some_and(|l| l.contains("SQLite")));
        assert_eq!(
            text.lines().take_while(|l| !l.is_empty()).count(),
            11,
            "{text}"
        );
        assert!(text.lines().all(|l| l.len() <= 80), "{text}");
        assert_eq!(
            StoreKind::names_with(|c| c.upsert),
            "SQLite, PostgreSQL, MySQL/MariaDB"
        );
    }
}
