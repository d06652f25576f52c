//! The registry: the one list of stores, [`STORES`], one line each. Each
//! line is a store's [`StoreType`], declared in its folder's `store.rs`:
//! its rows of the capability table, its URL schemes, and how it claims an
//! address and opens the store there. Everything here is a loop over the
//! list: the store etl-load's TARGET names, the one `--state` names, the
//! database or dataset etl-extract reads (asked in [`Claim`] order: URLs,
//! then a directory, then a file by `--format` or extension, then SQLite),
//! the capability table (in the list's order, the docs'), and the URL
//! schemes each place on the command line takes (`address.rs`). The
//! programs hold what it returns as `dyn Store`.

pub mod address;

use std::path::Path;

use anyhow::Result;

use crate::store::{
    Capabilities, Claim, FlagCheck, SourceArgs, Store, StoreType, TargetArgs, capability,
};

/// Every store, in the order the docs list them.
pub const STORES: &[&dyn StoreType] = &[
    &crate::sqlite::store::TYPE,
    &crate::pg::store::TYPE,
    &crate::mysql::store::TYPE,
    &crate::files::store::TYPE,
    &crate::files::object::TYPE,
    &crate::lake::store::TYPE,
];

/// The stores in the order they are asked for an address.
fn by_claim() -> impl Iterator<Item = &'static dyn StoreType> {
    Claim::ORDER
        .into_iter()
        .flat_map(|claim| STORES.iter().copied().filter(move |s| s.claim() == claim))
}

/// The stores asked about `address`, in claim order: a URL store only for
/// an address it owns.
fn asked(address: &str) -> impl Iterator<Item = &'static dyn StoreType> + '_ {
    by_claim().filter(move |s| s.claim() != Claim::Url || s.owns(address))
}

/// The first store, in claim order, that `open` finds its own. The
/// fallback store claims every address, so there is always one.
fn first<T>(address: &str, open: impl FnMut(&'static dyn StoreType) -> Option<T>) -> T {
    asked(address)
        .find_map(open)
        .expect("the fallback store claims every address")
}

/// Every store's rows of the capability table, in the docs' order.
pub fn rows() -> impl Iterator<Item = &'static Capabilities> {
    STORES.iter().flat_map(|s| s.capabilities())
}

/// The URL schemes of the stores that have them (the databases, object
/// storage), each `scheme://`.
pub fn database_schemes() -> impl Iterator<Item = &'static str> {
    STORES.iter().flat_map(|s| s.schemes()).copied()
}

/// The URL schemes of object storage, which hold files (inputs and
/// targets, never `--state`).
pub fn object_schemes() -> impl Iterator<Item = &'static str> {
    crate::files::SCHEMES.into_iter()
}

/// The URL schemes of the sources etl-extract reads that are no target.
pub fn source_schemes() -> impl Iterator<Item = &'static str> {
    crate::http::SCHEMES.into_iter()
}

/// Is `address` a database's URL?
pub fn is_database(address: &str) -> bool {
    STORES.iter().any(|s| s.is_url(address))
}

/// The store etl-load's TARGET names, its flags checked by the store
/// (`check`: the checks every store shares, asked of its capability row).
pub fn load_target(args: &TargetArgs, check: FlagCheck<'_>) -> Result<Box<dyn Store>> {
    first(&args.address_text(), |store| {
        // Past the databases' URLs the target is local: a database as its
        // --state is refused before any store looks further.
        if store.claim() > Claim::Url
            && let Err(err) = args.refuse_database_state()
        {
            return Some(Err(err));
        }
        store.load_target(args, check)
    })
}

/// The store `--state` names, whose bookmarks `etl-extract` reads: a
/// database URL (a PostgreSQL one's `_etl_state` in `schema_name`), a
/// dataset directory (its manifest), a `.json` state file, else a SQLite
/// file.
pub fn state(address: &Path, schema_name: Option<&str>) -> Box<dyn Store> {
    first(&address.to_string_lossy(), |store| {
        store.state(address, schema_name)
    })
}

/// The database etl-extract reads `--table` or `--query` from: a
/// PostgreSQL or MySQL URL, else a SQLite file.
pub fn database_source(address: &Path, args: &SourceArgs) -> Box<dyn Store> {
    first(&address.to_string_lossy(), |store| {
        store.database_source(address, args)
    })
}

/// The dataset etl-extract reads, when `address` is a directory.
pub fn dataset_source(address: &Path) -> Option<Box<dyn Store>> {
    asked(&address.to_string_lossy()).find_map(|store| store.dataset_source(address))
}

/// The names of the stores that have a capability, for messages:
/// "SQLite, PostgreSQL, MySQL/MariaDB".
pub fn names_with(has: impl Fn(&Capabilities) -> bool) -> String {
    rows()
        .filter(|c| has(c))
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The capability table as etl-load's `--help` prints it.
pub fn capability_table() -> String {
    capability::table(&rows().copied().collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::Instants;

    #[test]
    fn every_store_has_one_row_and_the_table_names_them_all() {
        let text = capability_table();
        for c in rows() {
            // A store that has upsert has tables to hold keys.
            assert!(!c.upsert || c.tables, "{}", c.name);
            // Partitions only where a directory holds many files.
            assert!(!c.partitions || c.name == "dataset", "{}", c.name);
            // A store whose columns have no types keeps instants as text.
            assert!(
                c.typed_columns || (c.instants == Instants::Text && !c.uuid_type),
                "{}",
                c.name
            );
        }
        assert!(text.lines().next().is_some_and(|l| l.contains("SQLite")));
        assert_eq!(
            text.lines().take_while(|l| !l.is_empty()).count(),
            14,
            "{text}"
        );
        assert!(text.lines().all(|l| l.len() <= 80), "{text}");
        assert_eq!(
            names_with(|c| c.upsert),
            "SQLite, PostgreSQL, MySQL/MariaDB"
        );
    }

    #[test]
    fn one_store_is_the_fallback_and_the_table_keeps_the_docs_order() {
        let fallback = STORES.iter().filter(|s| s.claim() == Claim::Fallback);
        assert_eq!(fallback.count(), 1);
        let names: Vec<&str> = rows().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "SQLite",
                "PostgreSQL",
                "MySQL/MariaDB",
                "CSV",
                "TSV",
                "NDJSON",
                "Parquet",
                "S3 object",
                "dataset"
            ]
        );
        let schemes: Vec<&str> = database_schemes().collect();
        assert_eq!(
            schemes,
            ["postgres", "postgresql", "mysql", "mariadb", "s3"]
        );
        // Only the URL stores have schemes.
        assert!(
            STORES
                .iter()
                .all(|s| s.schemes().is_empty() == (s.claim() != Claim::Url))
        );
    }

    #[test]
    fn an_address_is_asked_of_the_stores_in_claim_order() {
        let dir = std::env::temp_dir();
        let shown = |p: &str| state(Path::new(p), None).capabilities().name;
        assert_eq!(shown("postgres://u@h/db"), "PostgreSQL");
        assert_eq!(shown("host=h dbname=db"), "PostgreSQL");
        assert_eq!(shown("mariadb://u@h/db"), "MySQL/MariaDB");
        assert_eq!(shown(&dir.to_string_lossy()), "dataset");
        assert_eq!(shown("state.JSON"), "NDJSON");
        assert_eq!(shown("state.db"), "SQLite");
        assert!(is_database("mysql://u@h/db") && !is_database("x.db"));
        assert!(dataset_source(&dir).is_some());
        assert!(dataset_source(Path::new("x.db")).is_none());
    }
}
