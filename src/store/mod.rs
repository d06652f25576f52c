//! The store contract: what a program holds a store by. A store is a place
//! records go to (a table of a database, a file, a dataset) and the state
//! kept beside them. `load.rs` and `extract.rs` see only [`Store`]; the
//! registry (`registry/`) lists each kind of store once, by its
//! [`StoreType`], and finds the store an address names. Each store's
//! folder implements both in its `store.rs`, where it also checks the flags
//! only it cares about and declares its rows of the capability table
//! ([`Capabilities`]).

pub mod binder;
pub mod capability;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use serde_json::Value;

pub use capability::{Capabilities, Instants, NewField};

use crate::error::{Failure, Kind, usage};
use crate::record::{RESERVED_PREFIX, is_reserved_name};
use crate::runs::RunRecord;
use crate::sink::{LoadMode, LoadOptions, Sink};
use crate::source::{Context, Selection, Source, Window};

/// What opening a store's sink gives. `Err`: the target could not be
/// reached (no connection, no lock); the error is reported as it is and
/// no run is recorded. `Ok(Err)`: the load could not begin; it is reported
/// as a failed load, like any later failure.
pub type Opened<'s> = Result<Result<Box<dyn Sink + 's>>>;

/// The flag checks every store shares, asked of its row of the capability
/// table (etl-load's `cli/load.rs`). A store's constructor calls it once
/// the checks of its own that come first have passed.
pub type FlagCheck<'a> = &'a dyn Fn(&Capabilities) -> Result<()>;

/// A store a program holds: where a load writes, whose state `--state`
/// reads. Everything a program says or does about a target that differs
/// between stores is asked of it here.
pub trait Store: std::fmt::Debug + Send {
    /// The store's row of the capability table.
    fn capabilities(&self) -> &'static Capabilities;

    /// The database or file as messages show it: a URL without its
    /// password, a path, or `stdout`.
    fn shown(&self) -> String;

    /// The table a load writes, for a store of tables (`--table`); `None`
    /// for a file or a dataset, which then says its own names below.
    fn table(&self) -> Option<&str> {
        None
    }

    /// The target as the load's messages name it: `table "t"`, a path,
    /// `dataset DIR`, `stdout`.
    fn target_name(&self) -> String {
        match self.table() {
            Some(table) => format!("table {table:?}"),
            None => self.shown(),
        }
    }

    /// What a failed load left: `nothing was loaded into DB (table "t" is
    /// as it was)`.
    fn untouched(&self) -> String {
        match self.table() {
            Some(table) => format!(
                "nothing was loaded into {} (table {table:?} is as it was)",
                self.shown()
            ),
            None => format!("nothing was written to {} (it is as it was)", self.shown()),
        }
    }

    /// Where committed segments went, for the message of a run that fails
    /// after some: `table "t" in DB`, a path, `the dataset DIR`.
    fn destination(&self) -> String {
        match self.table() {
            Some(table) => format!("table {table:?} in {}", self.shown()),
            None => self.shown(),
        }
    }

    /// The job's name in the run history when `--job` gives none: the
    /// table, or the file's name.
    fn default_job(&self) -> String {
        self.table().map_or_else(|| self.shown(), String::from)
    }

    /// Opens the sink of a load (a transaction, a temporary file, a lock).
    /// The sink undoes its own work in `abort`, and in `commit` when the
    /// commit fails.
    fn open_sink(&self, load: &LoadOptions) -> Opened<'_>;

    /// Records a failed run in the target's history, in a transaction of
    /// its own, after the load's was undone (best effort).
    fn record_failed_run(&self, run: &RunRecord) -> Result<()>;

    /// `message` with the store's secrets (a URL's password) masked.
    fn scrub(&self, message: &str) -> String {
        message.to_string()
    }

    /// The stored bookmark of `stream`; `None` before its first run (what
    /// `etl-extract --state` reads).
    fn read_bookmark(&self, stream: &str) -> Result<Option<Value>>;

    /// Opens the source etl-extract reads from this store (its selection,
    /// narrowed to `window` where the store can push the cursor range into
    /// its reads).
    fn open_source(&self, window: Option<Window<'_>>) -> Result<OpenedSource> {
        let _ = window;
        anyhow::bail!("{} is not read by etl-extract", self.shown())
    }
}

/// Where a kind of store comes when the registry asks which store an
/// address names: the kinds are asked in this order, and the first to
/// claim the address serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Claim {
    /// A URL of its own schemes (a database), whatever else the flags say.
    Url,
    /// A directory (a dataset).
    Directory,
    /// A file named by `--format` or its extension, or stdout.
    File,
    /// Whatever no other store claims (SQLite; exactly one store).
    Fallback,
}

impl Claim {
    /// The order the registry asks in.
    pub const ORDER: [Claim; 4] = [Claim::Url, Claim::Directory, Claim::File, Claim::Fallback];
}

/// A kind of store as the registry lists it: one per store folder, its
/// `TYPE` in its `store.rs`. It says what the store can do, which
/// addresses are its own, and opens the store for each place an address
/// is given. Each opener answers `None` when the address is not its own.
pub trait StoreType {
    /// Its rows of the capability table, in the docs' order (one per
    /// format for files).
    fn capabilities(&self) -> &'static [Capabilities];

    /// Its URL schemes (each `scheme://`); none for a local store.
    fn schemes(&self) -> &'static [&'static str] {
        &[]
    }

    /// When it is asked, among the stores.
    fn claim(&self) -> Claim;

    /// Is `address` one of its URLs (a database's)?
    fn is_url(&self, address: &str) -> bool {
        let _ = address;
        false
    }

    /// Is `address` its own? Asked by the registry of a [`Claim::Url`]
    /// store before any opener below, which then need not check again: a
    /// database's URL (`is_url`) unless the store says otherwise.
    fn owns(&self, address: &str) -> bool {
        self.is_url(address)
    }

    /// The store etl-load's TARGET names, its flags checked (`check`: the
    /// checks every store shares, asked of its row).
    fn load_target(
        &self,
        args: &TargetArgs,
        check: FlagCheck<'_>,
    ) -> Option<Result<Box<dyn Store>>>;

    /// The store `--state` names, whose bookmarks etl-extract reads
    /// (`schema_name`: where a PostgreSQL database keeps them).
    fn state(&self, address: &Path, schema_name: Option<&str>) -> Option<Box<dyn Store>> {
        let _ = (address, schema_name);
        None
    }

    /// The database etl-extract reads `--table` or `--query` from.
    fn database_source(&self, address: &Path, args: &SourceArgs) -> Option<Box<dyn Store>> {
        let _ = (address, args);
        None
    }

    /// The dataset etl-extract reads.
    fn dataset_source(&self, address: &Path) -> Option<Box<dyn Store>> {
        let _ = address;
        None
    }
}

/// What etl-extract reads: a store's table, query or dataset, files, an
/// HTTP API. `extract.rs` holds its input by this and nothing else.
pub trait Readable: std::fmt::Debug + Send {
    /// Opens the source (its selection narrowed to `window` where it can
    /// push the cursor range into its reads). Opening may read ahead (a
    /// file's header, a sample to type its columns) and reject rows into
    /// `cx`.
    fn open_source(&self, window: Option<Window<'_>>, cx: &mut Context<'_>)
    -> Result<OpenedSource>;

    /// How many bytes the run will read, when known (for the progress
    /// bar).
    fn size(&self) -> Option<u64> {
        None
    }

    /// What a one-off load calls the wire its extract half writes, when
    /// the stream's name is not the best name for it (`FILE as NDJSON`).
    fn wire_name(&self) -> Option<String> {
        None
    }
}

impl Readable for Box<dyn Store> {
    fn open_source(
        &self,
        window: Option<Window<'_>>,
        _cx: &mut Context<'_>,
    ) -> Result<OpenedSource> {
        Store::open_source(&**self, window)
    }
}

/// A source a store opened for etl-extract, with what the run says of it.
pub struct OpenedSource {
    /// The records.
    pub source: Box<dyn Source>,
    /// The begin line's `source`: the database or dataset, as shown.
    pub name: String,
    /// Warnings to print before the first record.
    pub warnings: Vec<String>,
    /// Details for `-v`.
    pub details: Vec<String>,
}

impl OpenedSource {
    /// `source`, named `name`, with nothing to say.
    pub fn new(source: Box<dyn Source>, name: String) -> Self {
        OpenedSource {
            source,
            name,
            warnings: Vec::new(),
            details: Vec::new(),
        }
    }
}

/// What etl-extract's flags say about a database it reads, whatever the
/// database: the registry picks the store by the address.
#[derive(Debug, Clone)]
pub struct SourceArgs {
    /// `--table` or `--query`.
    pub selection: Selection,
    /// `--schema-name`.
    pub schema_name: Option<String>,
    /// `--zero-dates null`: a zero date reads as null, not a reject.
    pub null_zero_dates: bool,
}

/// What etl-load's flags say about the target, whatever the store: the
/// registry picks the store by the address and each store's constructor
/// checks the flags it cares about.
#[derive(Debug, Clone)]
pub struct TargetArgs {
    /// The target as given (a path, a directory, a URL, or `-`).
    pub address: PathBuf,
    /// `--format`, by its name (`sqlite`, `csv`, `parquet`, ...).
    pub format: Option<String>,
    /// `--table`.
    pub table: Option<String>,
    /// `--schema-name`.
    pub schema_name: Option<String>,
    /// Mode, keys (trimmed, empty ones dropped), `--delete-when`, strict.
    pub load: LoadOptions,
    /// `--state`.
    pub state: Option<PathBuf>,
    /// `--state` names a database (a URL of a database store).
    pub state_is_database: bool,
    /// `--wait`.
    pub wait: Duration,
    /// `--partition-by`, as given (empty entries dropped by the dataset).
    pub partition_by: Vec<String>,
    /// `--row-group-size`.
    pub row_group_size: Option<usize>,
    /// `--file-size`.
    pub file_size: Option<u64>,
}

impl TargetArgs {
    /// `-`: stdout.
    pub fn is_stdout(&self) -> bool {
        self.address == Path::new("-")
    }

    /// `--format` names `name`.
    pub fn format_is(&self, name: &str) -> bool {
        self.format.as_deref() == Some(name)
    }

    /// The target, as text (a URL).
    pub fn address_text(&self) -> String {
        self.address.to_string_lossy().into_owned()
    }

    /// The table a database target names: required, and not one of
    /// etlkit's own names; no key may be one either.
    pub fn table_checked(&self) -> Result<String> {
        let table = match &self.table {
            Some(t) if !t.trim().is_empty() => t.clone(),
            _ => return Err(usage("--table is required for a database target")),
        };
        if is_reserved_name(&table) {
            return Err(Failure::new(
                Kind::Usage,
                format!(
                    "--table {table:?}: names starting with {RESERVED_PREFIX} are reserved for etlkit's own tables"
                ),
            )
            .hint("choose another table name")
            .into());
        }
        if let Some(key) = self.load.keys.iter().find(|k| is_reserved_name(k)) {
            return Err(usage(format!(
                "--key {key:?}: names starting with {RESERVED_PREFIX} are reserved for etlkit's own columns"
            )));
        }
        Ok(table)
    }

    /// Refuses a database given as `--state`: only a file target takes one.
    pub fn refuse_database_state(&self) -> Result<()> {
        if self.state_is_database {
            return Err(usage(
                "--state for a file target is a .json file; a database target keeps its own state",
            ));
        }
        Ok(())
    }

    /// Refuses `--naive-timestamps reject` for a store without columns
    /// that hold instants (only PostgreSQL has them today).
    pub fn refuse_naive_timestamps(&self) -> Result<()> {
        if self.load.reject_naive_timestamps {
            return Err(usage(
                "--naive-timestamps reject is for PostgreSQL targets (timestamptz columns)",
            ));
        }
        Ok(())
    }

    /// Refuses `--partition-by` for a target that is not a directory.
    pub fn refuse_partitions(&self) -> Result<()> {
        if !self.partition_by.is_empty() {
            return Err(usage(
                "--partition-by writes a Parquet dataset: TARGET is a directory",
            ));
        }
        Ok(())
    }

    /// Refuses the dataset flags for a target that is one table or file;
    /// `--row-group-size` passes for a Parquet file (`parquet`).
    pub fn refuse_dataset_flags(&self, parquet: bool) -> Result<()> {
        if self.load.mode == LoadMode::ReplacePartitions {
            return Err(usage(
                "--mode replace-partitions needs a partitioned dataset (--partition-by)",
            ));
        }
        if self.file_size.is_some() {
            return Err(usage(
                "--file-size applies to datasets (--partition-by), not to one file",
            ));
        }
        if self.row_group_size.is_some() && !parquet {
            return Err(usage("--row-group-size applies to Parquet targets"));
        }
        Ok(())
    }

    /// Refuses `--format` other than `sqlite` for a database URL (`scheme`
    /// as messages name it: `postgres://`).
    pub fn refuse_file_format(&self, scheme: &str) -> Result<()> {
        if self.format.as_ref().is_some_and(|f| f != "sqlite") {
            return Err(usage(format!(
                "--format names a file format; a {scheme} target is a database"
            )));
        }
        Ok(())
    }
}

/// A file's name for the run history: its last component, or the whole
/// path when it has none.
pub fn file_job_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
