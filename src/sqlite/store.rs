//! A table in a SQLite file as a store: the addresses it serves (every
//! one no other store claims), the flags it takes, its row of the
//! capability table, and the contract the programs hold it by.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::Value;

use super::sink::{SqliteSink, SqliteTarget};
use super::source::SqliteSource;
use crate::error::usage;
use crate::runs::RunRecord;
use crate::sink::LoadOptions;
use crate::source::{Selection, Window};
use crate::store::{
    Capabilities, Claim, FlagCheck, Instants, Opened, OpenedSource, SourceArgs, Store, StoreType,
    TargetArgs,
};

/// SQLite's row of the capability table: instants and uuids are text
/// under the declared types `TIMESTAMPTZ` and `UUID`.
pub const CAPABILITIES: Capabilities = Capabilities {
    instants: Instants::Text,
    uuid_type: false,
    ..Capabilities::database("SQLite", "SQLite", "a SQLite database")
};

/// SQLite as the registry lists it: the default store, a file that is
/// no other store's.
pub const TYPE: SqliteType = SqliteType;

/// The kind of store [`TYPE`] is.
#[derive(Debug)]
pub struct SqliteType;

impl StoreType for SqliteType {
    fn capabilities(&self) -> &'static [Capabilities] {
        std::slice::from_ref(&CAPABILITIES)
    }

    fn claim(&self) -> Claim {
        Claim::Fallback
    }

    fn load_target(
        &self,
        args: &TargetArgs,
        check: FlagCheck<'_>,
    ) -> Option<Result<Box<dyn Store>>> {
        Some(SqliteStore::open(args, check).map(|s| Box::new(s) as _))
    }

    fn state(&self, address: &Path, _: Option<&str>) -> Option<Box<dyn Store>> {
        Some(Box::new(SqliteStore::state(address)))
    }

    fn database_source(&self, address: &Path, args: &SourceArgs) -> Option<Box<dyn Store>> {
        Some(Box::new(SqliteStore::source(
            address,
            args.selection.clone(),
        )))
    }
}

/// A table in a SQLite file (created if missing).
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    /// The table (empty for a store named only for its state).
    table: String,
    wait: Duration,
    /// What etl-extract reads (a store it reads from).
    selection: Option<Selection>,
    /// The database, open in the load's transaction once the sink is.
    db: OnceCell<SqliteTarget>,
}

impl SqliteStore {
    /// The target etl-load's flags name, checked.
    pub fn open(args: &TargetArgs, check: FlagCheck<'_>) -> Result<Self> {
        args.refuse_partitions()?;
        args.refuse_naive_timestamps()?;
        args.refuse_dataset_flags(false)?;
        if args.is_stdout() {
            return Err(usage("a SQLite database cannot be written to stdout"));
        }
        let table = args.table_checked()?;
        check(&CAPABILITIES)?;
        Ok(SqliteStore {
            path: args.address.clone(),
            table,
            wait: args.wait,
            selection: None,
            db: OnceCell::new(),
        })
    }

    /// The database `--state` names, for its bookmarks.
    pub fn state(path: &Path) -> Self {
        SqliteStore {
            path: path.to_path_buf(),
            table: String::new(),
            wait: Duration::ZERO,
            selection: None,
            db: OnceCell::new(),
        }
    }

    /// The database etl-extract reads `selection` from.
    pub fn source(path: &Path, selection: Selection) -> Self {
        SqliteStore {
            selection: Some(selection),
            ..SqliteStore::state(path)
        }
    }
}

impl Store for SqliteStore {
    fn capabilities(&self) -> &'static Capabilities {
        &CAPABILITIES
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    fn table(&self) -> Option<&str> {
        Some(&self.table)
    }

    fn open_sink(&self, load: &LoadOptions) -> Opened<'_> {
        if self
            .db
            .set(SqliteTarget::open(&self.path, self.wait)?)
            .is_err()
        {
            bail!("{}: a second load began in one run", self.shown());
        }
        let db = self.db.get().expect("the database was set just above");
        match SqliteSink::new(db, &self.table, load.clone()) {
            Ok(sink) => Ok(Ok(Box::new(sink))),
            Err(err) => {
                db.rollback();
                Ok(Err(err))
            }
        }
    }

    fn record_failed_run(&self, run: &RunRecord) -> Result<()> {
        super::state::record_failed_run(&self.path, &self.table, run, self.wait)
    }

    fn read_bookmark(&self, stream: &str) -> Result<Option<Value>> {
        super::state::read_bookmark_file(&self.path, stream)
    }

    fn open_source(&self, window: Option<Window<'_>>) -> Result<OpenedSource> {
        let Some(selection) = &self.selection else {
            bail!("{}: nothing to read (no --table or --query)", self.shown());
        };
        let source = SqliteSource::open(&self.path, selection, window)?;
        Ok(OpenedSource::new(Box::new(source), self.shown()))
    }
}
