//! The registry: the one place that lists the stores. It maps an address
//! (a URL scheme, a directory, a file extension, `-`) to the store that
//! serves it, for etl-load's TARGET, for `--state` and for the database or
//! dataset etl-extract reads, gathers the stores'
//! rows into the capability table, and knows which URL schemes each place
//! on the command line takes (`address.rs`). The programs hold what it
//! returns as `dyn Store`; adding a store is one line here (and a folder,
//! and an entry in the conformance suite).

pub mod address;

use std::path::Path;

use anyhow::Result;

use crate::files::store::FileStore;
use crate::lake::store::LakeStore;
use crate::mysql::store::MysqlStore;
use crate::pg::store::PgStore;
use crate::sqlite::store::SqliteStore;
use crate::store::{Capabilities, FlagCheck, SourceArgs, Store, TargetArgs, capability};

/// Every store etl-load writes, in the order the docs list them.
pub const STORES: [Capabilities; 8] = [
    crate::sqlite::store::CAPABILITIES,
    crate::pg::store::CAPABILITIES,
    crate::mysql::store::CAPABILITIES,
    crate::files::store::CSV,
    crate::files::store::TSV,
    crate::files::store::NDJSON,
    crate::files::store::PARQUET,
    crate::lake::store::CAPABILITIES,
];

/// The URL schemes of the database stores (each `scheme://`).
pub fn database_schemes() -> impl Iterator<Item = &'static str> {
    crate::pg::SCHEMES.into_iter().chain(crate::mysql::SCHEMES)
}

/// The URL schemes of object storage, which hold files (inputs and targets).
pub fn object_schemes() -> impl Iterator<Item = &'static str> {
    crate::files::SCHEMES.into_iter()
}

/// The URL schemes of the sources etl-extract reads that are no target.
pub fn source_schemes() -> impl Iterator<Item = &'static str> {
    crate::http::SCHEMES.into_iter()
}

/// Is `address` a database's URL?
pub fn is_database(address: &str) -> bool {
    crate::pg::is_url(address) || crate::mysql::is_url(address)
}

/// The store etl-load's TARGET names, its flags checked by the store
/// (`check`: the checks every store shares, asked of its capability row).
pub fn load_target(args: &TargetArgs, check: FlagCheck<'_>) -> Result<Box<dyn Store>> {
    let text = args.address_text();
    if crate::mysql::is_url(&text) {
        return Ok(Box::new(MysqlStore::open(args, check)?));
    }
    if crate::pg::is_url(&text) {
        return Ok(Box::new(PgStore::open(args, check)?));
    }
    args.refuse_database_state()?;
    if crate::lake::store::claims(args) {
        return Ok(Box::new(LakeStore::open(args, check)?));
    }
    let format = match args.format.as_deref() {
        Some(format) => format,
        None if args.is_stdout() => "ndjson",
        None => crate::files::store::format_of(&args.address).unwrap_or("sqlite"),
    };
    Ok(match format {
        "sqlite" => Box::new(SqliteStore::open(args, check)?),
        _ => Box::new(FileStore::open(args, format, check)?),
    })
}

/// The store `--state` names, whose bookmarks `etl-extract` reads: a
/// database URL (a PostgreSQL one's `_etl_state` in `schema_name`), a
/// dataset directory (its manifest), a `.json` state file, else a SQLite
/// file.
pub fn state(address: &Path, schema_name: Option<&str>) -> Box<dyn Store> {
    let text = address.to_string_lossy();
    if crate::pg::is_url(&text) {
        return Box::new(PgStore::state(&text, schema_name));
    }
    if crate::mysql::is_url(&text) {
        return Box::new(MysqlStore::state(&text));
    }
    if let Some(dataset) = LakeStore::state(address) {
        return Box::new(dataset);
    }
    let is_json = address
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        Box::new(FileStore::state(address))
    } else {
        Box::new(SqliteStore::state(address))
    }
}

/// The database etl-extract reads `--table` or `--query` from: a
/// PostgreSQL or MySQL URL, else a SQLite file.
pub fn database_source(address: &Path, args: &SourceArgs) -> Box<dyn Store> {
    let text = address.to_string_lossy();
    if crate::mysql::is_url(&text) {
        Box::new(MysqlStore::source(&text, args))
    } else if crate::pg::is_url(&text) {
        Box::new(PgStore::source(&text, args))
    } else {
        Box::new(SqliteStore::source(address, args.selection.clone()))
    }
}

/// The dataset etl-extract reads, when `address` is a directory.
pub fn dataset_source(address: &Path) -> Option<Box<dyn Store>> {
    LakeStore::state(address).map(|dataset| Box::new(dataset) as _)
}

/// The names of the stores that have a capability, for messages:
/// "SQLite, PostgreSQL, MySQL/MariaDB".
pub fn names_with(has: impl Fn(&Capabilities) -> bool) -> String {
    STORES
        .iter()
        .filter(|c| has(c))
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The capability table as etl-load's `--help` prints it.
pub fn capability_table() -> String {
    capability::table(&STORES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_store_has_one_row_and_the_table_names_them_all() {
        let text = capability_table();
        for c in STORES {
            // A store that has upsert has tables to hold keys.
            assert!(!c.upsert || c.tables, "{}", c.name);
            // Partitions only where a directory holds many files.
            assert!(!c.partitions || c.name == "dataset", "{}", c.name);
        }
        assert!(text.lines().next().is_some_and(|l| l.contains("SQLite")));
        assert_eq!(
            text.lines().take_while(|l| !l.is_empty()).count(),
            11,
            "{text}"
        );
        assert!(text.lines().all(|l| l.len() <= 80), "{text}");
        assert_eq!(
            names_with(|c| c.upsert),
            "SQLite, PostgreSQL, MySQL/MariaDB"
        );
    }
}
