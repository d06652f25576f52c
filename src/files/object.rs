//! Files as objects on S3 (`s3://bucket/path/file.{csv,tsv,ndjson,parquet}`):
//! the same formats and the same `--state` JSON file as local files, with
//! the object in place of the renamed temporary file. CSV, TSV and NDJSON
//! stream into a multipart upload as the rows arrive; Parquet is written
//! to a local spool (its footer comes last) and uploaded at the commit.
//! Either way the upload is completed only at the commit, after the end
//! line, so the object appears whole or not at all, and a failed or cut
//! run aborts it, leaving an object already there unchanged. An object
//! cannot be appended to: `--mode append` writes a new object only
//! (created only if still absent when the upload completes).

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::Value;

use super::parquet_sink::{ParquetSink, UploadAfter};
use super::sink::{FileFormat, FileOptions, FileSink};
use super::state::JsonState;
use crate::client::s3::multipart::{SharedUpload, Upload};
use crate::client::s3::{Client, Condition, ObjectUrl};
use crate::error::{Failure, Kind, usage};
use crate::parquet_io::writer::DEFAULT_ROW_GROUP;
use crate::runs::RunRecord;
use crate::sink::{LoadMode, LoadOptions};
use crate::store::{Capabilities, Claim, FlagCheck, Opened, Store, StoreType, TargetArgs};

/// An object's row of the capability table: written whole, never
/// appended to, not to stdout.
pub const OBJECT: Capabilities = Capabilities {
    append_existing: false,
    stdout: false,
    ..Capabilities::file(
        "S3 object",
        "S3",
        "an object on S3 (CSV, TSV, NDJSON or Parquet)",
    )
};

/// The kind of store [`TYPE`] is.
#[derive(Debug)]
pub struct ObjectType;

/// Objects on S3, as the registry lists them.
pub const TYPE: ObjectType = ObjectType;

impl StoreType for ObjectType {
    fn capabilities(&self) -> &'static [Capabilities] {
        std::slice::from_ref(&OBJECT)
    }

    fn schemes(&self) -> &'static [&'static str] {
        &super::SCHEMES
    }

    fn claim(&self) -> Claim {
        Claim::Url
    }

    fn owns(&self, address: &str) -> bool {
        crate::client::s3::url::is_url(address)
    }

    fn load_target(
        &self,
        args: &TargetArgs,
        check: FlagCheck<'_>,
    ) -> Option<Result<Box<dyn Store>>> {
        let text = args.address_text();
        // A dataset's (partitioned, or a prefix written as Parquet): the
        // dataset store's.
        let dataset = !args.partition_by.is_empty()
            || (crate::client::s3::url::names_prefix(&text)
                && args.format.as_deref().is_none_or(|f| f == "parquet"));
        if dataset {
            return None;
        }
        Some(ObjectStore::open(args, &text, check).map(|s| Box::new(s) as _))
    }
}

/// An object target.
#[derive(Debug)]
pub struct ObjectStore {
    client: Client,
    key: String,
    /// `None`: Parquet, in row groups of this many rows.
    lines: Option<FileFormat>,
    row_group_size: usize,
    append: bool,
    state: Option<PathBuf>,
}

impl ObjectStore {
    /// The object etl-load's TARGET names, its flags checked.
    fn open(args: &TargetArgs, text: &str, check: FlagCheck<'_>) -> Result<Self> {
        args.refuse_database_state()?;
        args.refuse_naive_timestamps()?;
        let url = ObjectUrl::parse(text)?;
        if url.key.is_empty() || url.key.ends_with('/') {
            return Err(usage(format!(
                "{text} names a bucket or a prefix: etl-load writes one object, s3://bucket/path/file.csv, or a dataset under a prefix, s3://bucket/lake/orders"
            )));
        }
        let format = match args.format.as_deref() {
            Some(format) => Some(format),
            None => super::store::format_of(Path::new(&url.key)),
        };
        let lines = match format {
            Some("csv") => Some(FileFormat::Csv),
            Some("tsv") => Some(FileFormat::Tsv),
            Some("ndjson") => Some(FileFormat::Ndjson),
            Some("parquet") => None,
            _ => {
                return Err(usage(format!(
                    "{text}: an object is written as CSV, TSV, NDJSON or Parquet: name it by its extension or --format"
                )));
            }
        };
        args.refuse_dataset_flags(lines.is_none())?;
        check(&OBJECT)?;
        Ok(ObjectStore {
            client: Client::from_env(&url)?,
            key: url.key,
            lines,
            row_group_size: args.row_group_size.unwrap_or(DEFAULT_ROW_GROUP),
            append: args.load.mode == LoadMode::Append,
            state: args.state.clone(),
        })
    }

    /// The condition the upload completes under: `append` only creates.
    fn condition(&self) -> Result<Condition> {
        if !self.append {
            return Ok(Condition::None);
        }
        if self.client.head(&self.key)?.is_some() {
            return Err(Failure::new(
                Kind::Usage,
                format!(
                    "{} exists and an object cannot be appended to",
                    self.shown()
                ),
            )
            .hint("use --mode replace to write it anew")
            .into());
        }
        Ok(Condition::Absent)
    }
}

impl Store for ObjectStore {
    fn capabilities(&self) -> &'static Capabilities {
        &OBJECT
    }

    fn shown(&self) -> String {
        self.client.shown(Some(&self.key))
    }

    fn target_name(&self) -> String {
        self.shown()
    }

    fn untouched(&self) -> String {
        format!("nothing was written to {} (it is as it was)", self.shown())
    }

    fn destination(&self) -> String {
        self.shown()
    }

    fn default_job(&self) -> String {
        crate::store::file_job_name(Path::new(&self.key))
    }

    fn open_sink(&self, load: &LoadOptions) -> Opened<'_> {
        let condition = self.condition()?;
        let name = self.shown();
        if let Some(format) = self.lines {
            let upload = SharedUpload::new(Upload::new(&self.client, &self.key));
            let options = FileOptions {
                format,
                state: self.state.clone(),
            };
            return Ok(Ok(Box::new(FileSink::open_object(
                upload, name, condition, &options, load,
            )?)));
        }
        let spool_dir = spool_dir()?;
        let object = UploadAfter {
            upload: Upload::new(&self.client, &self.key),
            condition,
            name,
            spool_dir: spool_dir.clone(),
        };
        let sink = ParquetSink::open(
            &spool_dir.join("object.parquet"),
            self.state.as_deref(),
            load,
        )?
        .with_row_group_size(self.row_group_size)
        .with_upload(object);
        Ok(Ok(Box::new(sink)))
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

/// A new directory for a Parquet object's local spool.
fn spool_dir() -> Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("etl-load-{}-{nanos}.spool", std::process::id()));
    std::fs::create_dir(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create a spool directory {}: {e}", dir.display()))?;
    Ok(dir)
}
