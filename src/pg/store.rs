//! A table in a PostgreSQL database as a store: the URLs it serves, the
//! flags it takes, its row of the capability table, and the contract the
//! programs hold it by.

use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use super::sink::PgSink;
use super::source::PgSource;
use crate::runs::RunRecord;
use crate::sink::LoadOptions;
use crate::source::{Selection, Window};
use crate::store::{
    Capabilities, Claim, FlagCheck, Opened, OpenedSource, SourceArgs, Store, StoreType, TargetArgs,
};

/// PostgreSQL's row of the capability table.
pub const CAPABILITIES: Capabilities =
    Capabilities::database("PostgreSQL", "PG", "a PostgreSQL database");

/// PostgreSQL as the registry lists it: a `postgres://` URL (or a libpq
/// key=value string).
pub const TYPE: PgType = PgType;

/// The kind of store [`TYPE`] is.
#[derive(Debug)]
pub struct PgType;

impl StoreType for PgType {
    fn capabilities(&self) -> &'static [Capabilities] {
        std::slice::from_ref(&CAPABILITIES)
    }

    fn schemes(&self) -> &'static [&'static str] {
        &super::SCHEMES
    }

    fn claim(&self) -> Claim {
        Claim::Url
    }

    fn is_url(&self, address: &str) -> bool {
        super::is_url(address)
    }

    fn load_target(
        &self,
        args: &TargetArgs,
        check: FlagCheck<'_>,
    ) -> Option<Result<Box<dyn Store>>> {
        Some(PgStore::open(args, check).map(|s| Box::new(s) as _))
    }

    fn state(&self, address: &Path, schema_name: Option<&str>) -> Option<Box<dyn Store>> {
        let url = address.to_string_lossy();
        Some(Box::new(PgStore::state(&url, schema_name)))
    }

    fn database_source(&self, address: &Path, args: &SourceArgs) -> Option<Box<dyn Store>> {
        let url = address.to_string_lossy();
        Some(Box::new(PgStore::source(&url, args)))
    }
}

/// A table in a PostgreSQL database (a `postgres://` URL, printed only
/// redacted).
#[derive(Debug)]
pub struct PgStore {
    url: String,
    /// The table (empty for a store named only for its state).
    table: String,
    /// The table's schema (none: the connection's current schema).
    schema_name: Option<String>,
    /// What etl-extract reads (a store it reads from).
    selection: Option<Selection>,
}

impl PgStore {
    /// The target etl-load's flags name, checked.
    pub fn open(args: &TargetArgs, check: FlagCheck<'_>) -> Result<Self> {
        args.refuse_file_format("postgres://")?;
        args.refuse_database_state()?;
        args.refuse_partitions()?;
        args.refuse_dataset_flags(false)?;
        let table = args.table_checked()?;
        check(&CAPABILITIES)?;
        Ok(PgStore {
            url: args.address_text(),
            table,
            schema_name: args.schema_name.clone(),
            selection: None,
        })
    }

    /// The database `--state` names (its `_etl_state` in `schema_name`),
    /// for its bookmarks.
    pub fn state(url: &str, schema_name: Option<&str>) -> Self {
        PgStore {
            url: url.to_string(),
            table: String::new(),
            schema_name: schema_name.map(String::from),
            selection: None,
        }
    }

    /// The database etl-extract reads from, as `args` say.
    pub fn source(url: &str, args: &SourceArgs) -> Self {
        PgStore {
            selection: Some(args.selection.clone()),
            ..PgStore::state(url, args.schema_name.as_deref())
        }
    }
}

impl Store for PgStore {
    fn capabilities(&self) -> &'static Capabilities {
        &CAPABILITIES
    }

    fn shown(&self) -> String {
        super::conn::redact(&self.url)
    }

    fn table(&self) -> Option<&str> {
        Some(&self.table)
    }

    fn open_sink(&self, load: &LoadOptions) -> Opened<'_> {
        let client = super::conn::connect(&self.url)?;
        Ok(PgSink::new(
            client,
            &self.shown(),
            self.schema_name.as_deref(),
            &self.table,
            load.clone(),
        )
        .map(|sink| Box::new(sink) as _))
    }

    fn record_failed_run(&self, run: &RunRecord) -> Result<()> {
        super::state::record_failed_run(&self.url, self.schema_name.as_deref(), &self.table, run)
    }

    fn scrub(&self, message: &str) -> String {
        super::conn::scrub(message, &self.url)
    }

    fn read_bookmark(&self, stream: &str) -> Result<Option<Value>> {
        super::state::read_bookmark_url(&self.url, self.schema_name.as_deref(), stream)
    }

    fn open_source(&self, window: Option<Window<'_>>) -> Result<OpenedSource> {
        let Some(selection) = &self.selection else {
            anyhow::bail!("{}: nothing to read (no --table or --query)", self.shown());
        };
        let window = window.map(|w| (w.column, w.lower, w.upper));
        let source = PgSource::open(&self.url, self.schema_name.as_deref(), selection, window)?;
        Ok(OpenedSource::new(Box::new(source), self.shown()))
    }
}
