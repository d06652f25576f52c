//! What a store `etl-load` writes can do: one row per store, declared in
//! the store's own folder (`CAPABILITIES` in its `store.rs`) and gathered
//! into the one table of differences between stores by the registry.
//! etl-load's flag checks ask it (`cli/load.rs`), the conformance suite
//! takes its exceptions from it (`tests/stores.rs`), and `etl-load --help`
//! prints it, so a difference between stores is named once, where code,
//! tests and docs all read it.

use std::fmt::Write as _;

/// What a record's field that the target lacks becomes (under the default
/// `--schema evolve`; `--schema strict` rejects it everywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewField {
    /// A new column, typed by its values.
    AddsColumn,
    /// A reject: the columns are fixed (a CSV file's header).
    Rejected,
}

/// Where a `timestamptz` value (an instant) goes in a new column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instants {
    /// A type for instants (PostgreSQL's `timestamptz`, Parquet's
    /// TIMESTAMP adjusted to UTC).
    Zoned,
    /// A date and time without zone holding the instant in UTC, the column
    /// commented `UTC` (MySQL's `DATETIME(6)`: its TIMESTAMP ends in 2038);
    /// etl-extract reads such a column back as instants.
    Utc,
    /// Text as the wire writes it, offset included (SQLite's declared
    /// `TIMESTAMPTZ`, CSV, TSV, NDJSON).
    Text,
}

/// One store's row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The store's name in messages and docs.
    pub name: &'static str,
    /// Its column's heading in the printed table (short: the table fits
    /// 80 columns).
    pub heading: &'static str,
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
    /// Any text value can be written as it is; TSV has no quoting, so a
    /// value holding a tab or a line break is a reject there.
    pub any_text: bool,
    /// Can be written to stdout (`-`).
    pub stdout: bool,
    /// Where an instant goes.
    pub instants: Instants,
    /// A `uuid` gets a type of its own (else text: MySQL's CHAR(36),
    /// commented `uuid`, and SQLite's declared `UUID` read back as uuids).
    pub uuid_type: bool,
    /// Names starting with `_etl_` belong to etlkit's own tables and
    /// columns here: such a field is a reject (not printed: every store
    /// with tables has it).
    pub reserved_names: bool,
}

impl Capabilities {
    /// A database's row: tables with keys and types, transactions, its own
    /// state; each database names itself.
    pub const fn database(
        name: &'static str,
        heading: &'static str,
        what: &'static str,
    ) -> Capabilities {
        Capabilities {
            name,
            heading,
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
            any_text: true,
            stdout: false,
            instants: Instants::Zoned,
            uuid_type: true,
            reserved_names: true,
        }
    }

    /// A file's row: no tables, no keys, written once per run, state in a
    /// `--state` file; each file store changes what differs.
    pub const fn file(
        name: &'static str,
        heading: &'static str,
        what: &'static str,
    ) -> Capabilities {
        Capabilities {
            name,
            heading,
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
            any_text: true,
            stdout: true,
            instants: Instants::Text,
            uuid_type: false,
            reserved_names: false,
        }
    }
}

/// The capability table of `stores` as etl-load's `--help` prints it: one
/// row per capability, one column per store.
pub fn table(stores: &[Capabilities]) -> String {
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
        ("any text", stores.iter().map(|c| yes(c.any_text)).collect()),
        ("stdout", stores.iter().map(|c| yes(c.stdout)).collect()),
        (
            "instants",
            stores
                .iter()
                .map(|c| match c.instants {
                    Instants::Zoned => "zone",
                    Instants::Utc => "UTC",
                    Instants::Text => "text",
                })
                .collect(),
        ),
        (
            "uuid type",
            stores.iter().map(|c| yes(c.uuid_type)).collect(),
        ),
    ];
    let first = rows.iter().map(|(r, _)| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = stores
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .map(|(_, cells)| cells[i].len())
                .fold(c.heading.len(), usize::max)
        })
        .collect();
    let mut out = String::new();
    let _ = write!(out, "{:first$}", "");
    for (c, w) in stores.iter().zip(&widths) {
        let _ = write!(out, " {:>w$}", c.heading);
    }
    out.push('\n');
    for (row, cells) in &rows {
        let _ = write!(out, "{row:first$}");
        for (cell, w) in cells.iter().zip(&widths) {
            let _ = write!(out, " {cell:>w$}");
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
         first; any text: a value holding a tab or a line break is written as it\n\
         is (elsewhere it is a reject); stdout: TARGET - writes to stdout;\n\
         instants: a timestamptz column is a type for instants (zone), a\n\
         DATETIME holding UTC commented 'UTC' (UTC), or the wire's text (text);\n\
         uuid type: a uuid column is a type of its own, else text (MySQL's\n\
         CHAR(36) is commented 'uuid'); etl-extract reads either back as declared.\n",
    );
    out
}
