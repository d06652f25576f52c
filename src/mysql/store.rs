//! A table in a MySQL or MariaDB database as a store: the URLs it serves,
//! the flags it takes, its row of the capability table, and the contract
//! the programs hold it by.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use serde_json::Value;

use super::sink::MysqlSink;
use super::source::{MysqlSource, ZeroDates};
use crate::error::usage;
use crate::runs::RunRecord;
use crate::sink::LoadOptions;
use crate::source::{Selection, Window};
use crate::store::{
    Capabilities, Claim, FlagCheck, Instants, Opened, OpenedSource, SourceArgs, Store, StoreType,
    TargetArgs,
};

/// MySQL's and MariaDB's row of the capability table: no type for
/// instants (a DATETIME(6) holds them in UTC) nor for uuids (CHAR(36)).
pub const CAPABILITIES: Capabilities = Capabilities {
    instants: Instants::Utc,
    uuid_type: false,
    ..Capabilities::database("MySQL/MariaDB", "MySQL", "a MySQL/MariaDB database")
};

/// MySQL and MariaDB as the registry lists them: a `mysql://` or
/// `mariadb://` URL.
pub const TYPE: MysqlType = MysqlType;

/// The kind of store [`TYPE`] is.
#[derive(Debug)]
pub struct MysqlType;

impl StoreType for MysqlType {
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
        Some(MysqlStore::open(args, check).map(|s| Box::new(s) as _))
    }

    fn state(&self, address: &Path, _: Option<&str>) -> Option<Box<dyn Store>> {
        let url = address.to_string_lossy();
        Some(Box::new(MysqlStore::state(&url)))
    }

    fn database_source(&self, address: &Path, args: &SourceArgs) -> Option<Box<dyn Store>> {
        let url = address.to_string_lossy();
        Some(Box::new(MysqlStore::source(&url, args)))
    }
}

/// A table in a MySQL or MariaDB database (a `mysql://` URL, printed only
/// redacted).
#[derive(Debug)]
pub struct MysqlStore {
    url: String,
    /// The table (empty for a store named only for its state).
    table: String,
    /// How long to wait for another load of the same table.
    wait: Duration,
    /// What etl-extract reads (a store it reads from), and what a zero
    /// date becomes.
    selection: Option<(Selection, ZeroDates)>,
}

impl MysqlStore {
    /// The target etl-load's flags name, checked: the database is the
    /// URL's.
    pub fn open(args: &TargetArgs, check: FlagCheck<'_>) -> Result<Self> {
        args.refuse_file_format("mysql://")?;
        args.refuse_naive_timestamps()?;
        if args.schema_name.is_some() {
            return Err(usage(
                "--schema-name is for PostgreSQL; a MySQL target's database is the one in its URL",
            ));
        }
        let table = args.table_checked()?;
        check(&CAPABILITIES)?;
        let url = args.address_text();
        super::conn::database(&url)?;
        Ok(MysqlStore {
            url,
            table,
            wait: args.wait,
            selection: None,
        })
    }

    /// The database `--state` names, for its bookmarks.
    pub fn state(url: &str) -> Self {
        MysqlStore {
            url: url.to_string(),
            table: String::new(),
            wait: Duration::ZERO,
            selection: None,
        }
    }

    /// The database etl-extract reads from, as `args` say.
    pub fn source(url: &str, args: &SourceArgs) -> Self {
        let zero_dates = if args.null_zero_dates {
            ZeroDates::Null
        } else {
            ZeroDates::Reject
        };
        MysqlStore {
            selection: Some((args.selection.clone(), zero_dates)),
            ..MysqlStore::state(url)
        }
    }
}

impl Store for MysqlStore {
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
        Ok(
            MysqlSink::open(&self.url, &self.table, load.clone(), self.wait.as_secs())
                .map(|sink| Box::new(sink) as _),
        )
    }

    fn record_failed_run(&self, run: &RunRecord) -> Result<()> {
        super::state::record_failed_run(&self.url, &self.table, run)
    }

    fn scrub(&self, message: &str) -> String {
        message.replace(self.url.as_str(), &self.shown())
    }

    fn read_bookmark(&self, stream: &str) -> Result<Option<Value>> {
        super::state::read(&self.url, stream)
    }

    fn open_source(&self, window: Option<Window<'_>>) -> Result<OpenedSource> {
        let Some((selection, zero_dates)) = &self.selection else {
            anyhow::bail!("{}: nothing to read (no --table or --query)", self.shown());
        };
        let source = MysqlSource::open(&self.url, selection, window, *zero_dates)?;
        Ok(OpenedSource::new(Box::new(source), self.shown()))
    }
}
