//! Files as a store: a CSV, TSV, NDJSON or Parquet file (or stdout), with
//! its bookmarks in a `--state` JSON file. The addresses it serves (by
//! `--format` or extension), the flags it takes, the rows of the
//! capability table, and the contract the programs hold it by.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::Value;

use super::parquet_sink::ParquetSink;
use super::sink::{FileFormat, FileOptions, FileSink};
use super::state::JsonState;
use crate::error::{Failure, Kind, usage};
use crate::format::Format;
use crate::parquet_io::writer::DEFAULT_ROW_GROUP;
use crate::runs::RunRecord;
use crate::sink::{LoadMode, LoadOptions};
use crate::store::{
    Capabilities, Claim, FlagCheck, Instants, NewField, Opened, Store, StoreType, TargetArgs,
    file_job_name,
};

/// A CSV file's row of the capability table: its header fixes the columns.
pub const CSV: Capabilities = Capabilities {
    new_field: NewField::Rejected,
    ..Capabilities::file("CSV", "CSV", "a CSV file")
};

/// A TSV file's row of the capability table: its header fixes the columns,
/// and with no quoting a tab or a line break cannot be written.
pub const TSV: Capabilities = Capabilities {
    new_field: NewField::Rejected,
    any_text: false,
    ..Capabilities::file("TSV", "TSV", "a TSV file")
};

/// An NDJSON file's row of the capability table.
pub const NDJSON: Capabilities = Capabilities::file("NDJSON", "NDJSON", "an NDJSON file");

/// A Parquet file's row of the capability table: typed, written whole.
pub const PARQUET: Capabilities = Capabilities {
    append_existing: false,
    typed_columns: true,
    stdout: false,
    instants: Instants::Zoned,
    uuid_type: true,
    ..Capabilities::file("Parquet", "Parquet", "a Parquet file")
};

/// Files as the registry lists them: a target by `--format` or its
/// extension (stdout is NDJSON), a `--state` that is a `.json` file.
pub const TYPE: FilesType = FilesType;

/// The kind of store [`TYPE`] is.
#[derive(Debug)]
pub struct FilesType;

impl StoreType for FilesType {
    fn capabilities(&self) -> &'static [Capabilities] {
        &[CSV, TSV, NDJSON, PARQUET]
    }

    fn claim(&self) -> Claim {
        Claim::File
    }

    fn load_target(
        &self,
        args: &TargetArgs,
        check: FlagCheck<'_>,
    ) -> Option<Result<Box<dyn Store>>> {
        let format = match args.format.as_deref() {
            Some("sqlite") => return None,
            Some(format) => format,
            None if args.is_stdout() => "ndjson",
            None => format_of(&args.address)?,
        };
        Some(FileStore::open(args, format, check).map(|s| Box::new(s) as _))
    }

    fn state(&self, address: &Path, _: Option<&str>) -> Option<Box<dyn Store>> {
        let is_json = address
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        is_json.then(|| Box::new(FileStore::state(address)) as _)
    }
}

/// The `--format` a file target's path names by its extension, if any.
pub(super) fn format_of(path: &Path) -> Option<&'static str> {
    match FileFormat::from_path(path) {
        Some(FileFormat::Csv) => Some("csv"),
        Some(FileFormat::Tsv) => Some("tsv"),
        Some(FileFormat::Ndjson) => Some("ndjson"),
        None => (Format::from_path(path) == Some(Format::Parquet)).then_some("parquet"),
    }
}

/// How the file is written.
#[derive(Debug)]
enum Written {
    /// CSV, TSV or NDJSON.
    Lines(FileFormat),
    /// Parquet, in row groups of this many rows.
    Parquet(usize),
}

/// A file target (or stdout), or a JSON state file named by `--state`.
#[derive(Debug)]
pub struct FileStore {
    /// The file; `None` writes to stdout.
    path: Option<PathBuf>,
    written: Written,
    /// The JSON state file for bookmarks and batch ids.
    state: Option<PathBuf>,
}

impl FileStore {
    /// The target etl-load's flags name, written as `format` (`csv`,
    /// `tsv`, `ndjson` or `parquet`), checked.
    pub fn open(args: &TargetArgs, format: &str, check: FlagCheck<'_>) -> Result<Self> {
        args.refuse_partitions()?;
        args.refuse_naive_timestamps()?;
        let stdout = args.is_stdout();
        let path = (!stdout).then(|| args.address.clone());
        let lines = match format {
            "csv" => FileFormat::Csv,
            "tsv" => FileFormat::Tsv,
            "ndjson" => FileFormat::Ndjson,
            _ => return Self::parquet(args, check),
        };
        args.refuse_dataset_flags(false)?;
        check(match lines {
            FileFormat::Csv => &CSV,
            FileFormat::Tsv => &TSV,
            FileFormat::Ndjson => &NDJSON,
        })?;
        if stdout && args.state.is_some() {
            return Err(usage(
                "--state needs a file target: bookmarks are stored once the data is on disk",
            ));
        }
        Ok(FileStore {
            path,
            written: Written::Lines(lines),
            state: args.state.clone(),
        })
    }

    fn parquet(args: &TargetArgs, check: FlagCheck<'_>) -> Result<Self> {
        args.refuse_dataset_flags(true)?;
        if args.is_stdout() {
            return Err(usage("Parquet is written to a file, not stdout"));
        }
        check(&PARQUET)?;
        if args.load.mode == LoadMode::Append && !PARQUET.append_existing && args.address.exists() {
            return Err(Failure::new(
                Kind::Usage,
                format!(
                    "{} exists and a Parquet file cannot be appended to",
                    args.address.display()
                ),
            )
            .hint("use --mode replace to write it anew")
            .into());
        }
        Ok(FileStore {
            path: Some(args.address.clone()),
            written: Written::Parquet(args.row_group_size.unwrap_or(DEFAULT_ROW_GROUP)),
            state: args.state.clone(),
        })
    }

    /// The JSON state file `--state` names, for its bookmarks.
    pub fn state(path: &Path) -> Self {
        FileStore {
            path: None,
            written: Written::Lines(FileFormat::Ndjson),
            state: Some(path.to_path_buf()),
        }
    }
}

impl Store for FileStore {
    fn capabilities(&self) -> &'static Capabilities {
        match self.written {
            Written::Lines(FileFormat::Csv) => &CSV,
            Written::Lines(FileFormat::Tsv) => &TSV,
            Written::Lines(FileFormat::Ndjson) => &NDJSON,
            Written::Parquet(_) => &PARQUET,
        }
    }

    fn shown(&self) -> String {
        self.path
            .as_ref()
            .map_or("stdout".into(), |p| p.display().to_string())
    }

    fn target_name(&self) -> String {
        self.shown()
    }

    fn untouched(&self) -> String {
        match &self.path {
            Some(p) => format!("nothing was written to {} (it is as it was)", p.display()),
            None => "the output is incomplete".into(),
        }
    }

    fn destination(&self) -> String {
        self.shown()
    }

    fn default_job(&self) -> String {
        self.path.as_deref().map_or("stdout".into(), file_job_name)
    }

    fn open_sink(&self, load: &LoadOptions) -> Opened<'_> {
        Ok(Ok(match (&self.written, &self.path) {
            (Written::Lines(format), path) => Box::new(FileSink::open(
                path.as_deref(),
                &FileOptions {
                    format: *format,
                    state: self.state.clone(),
                },
                load,
            )?),
            (Written::Parquet(rows), Some(path)) => Box::new(
                ParquetSink::open(path, self.state.as_deref(), load)?.with_row_group_size(*rows),
            ),
            (Written::Parquet(_), None) => {
                return Err(usage("Parquet is written to a file, not stdout"));
            }
        }))
    }

    fn record_failed_run(&self, run: &RunRecord) -> Result<()> {
        JsonState::open(self.state.as_deref())?.record_failed_run(run)
    }

    fn read_bookmark(&self, stream: &str) -> Result<Option<Value>> {
        match &self.state {
            Some(path) => crate::state_document::read_bookmark(path, stream),
            None => Ok(None),
        }
    }
}
