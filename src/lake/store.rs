//! A Hive-partitioned Parquet dataset as a store: which addresses are
//! datasets (a directory, or an `s3://bucket/prefix` with no file
//! extension), the flags a dataset takes, its row of the capability table,
//! and the contract the programs hold it by.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::Value;

use super::local::LocalDir;
use super::partition::PartitionSpec;
use super::s3::S3Dataset;
use super::sink::{LakeOptions, LakeSink, MEMORY_BUDGET};
use super::source::LakeSource;
use super::storage::Storage;
use crate::client::s3::{Client, ObjectUrl};
use crate::error::usage;
use crate::parquet_io::writer::DEFAULT_ROW_GROUP;
use crate::runs::RunRecord;
use crate::sink::LoadOptions;
use crate::source::Window;
use crate::store::{
    Capabilities, Claim, FlagCheck, Instants, Opened, OpenedSource, Store, StoreType, TargetArgs,
    file_job_name,
};

/// A dataset's row of the capability table: partitions, types, its state
/// in its manifest.
pub const CAPABILITIES: Capabilities = Capabilities {
    partitions: true,
    typed_columns: true,
    own_state: true,
    stdout: false,
    instants: Instants::Zoned,
    uuid_type: true,
    ..Capabilities::file("dataset", "dataset", "a dataset directory")
};

/// The dataset as the registry lists it: a directory.
pub const TYPE: LakeType = LakeType;

/// The kind of store [`TYPE`] is.
#[derive(Debug)]
pub struct LakeType;

impl StoreType for LakeType {
    fn capabilities(&self) -> &'static [Capabilities] {
        std::slice::from_ref(&CAPABILITIES)
    }

    fn claim(&self) -> Claim {
        Claim::Directory
    }

    fn load_target(
        &self,
        args: &TargetArgs,
        check: FlagCheck<'_>,
    ) -> Option<Result<Box<dyn Store>>> {
        claims(args).then(|| LakeStore::open(args, check).map(|s| Box::new(s) as _))
    }

    fn state(&self, address: &Path, _: Option<&str>) -> Option<Box<dyn Store>> {
        self.dataset_source(address)
    }

    fn dataset_source(&self, address: &Path) -> Option<Box<dyn Store>> {
        LakeStore::state(address).map(|dataset| Box::new(dataset) as _)
    }
}

/// Does etl-load's target name a dataset? `--partition-by`, `--format
/// parquet` for a directory (or a path ending in `/`), or, without
/// `--format`, a directory that holds a manifest or an `s3://` prefix
/// with no file extension. Never stdout.
fn claims(args: &TargetArgs) -> bool {
    let text = args.address_text();
    if crate::client::s3::url::is_url(&text) {
        return !args.partition_by.is_empty()
            || (crate::client::s3::url::names_prefix(&text)
                && args.format.as_deref().is_none_or(|f| f == "parquet"));
    }
    let named = !args.partition_by.is_empty();
    let parquet_dir =
        args.format_is("parquet") && (args.address.is_dir() || args.address_text().ends_with('/'));
    let existing =
        args.format.is_none() && super::state_file(&args.address).is_some_and(|m| m.exists());
    (named || parquet_dir || existing) && !args.is_stdout()
}

/// Where a dataset is.
#[derive(Debug)]
enum Place {
    /// A local (or mounted) directory.
    Dir(PathBuf),
    /// A prefix of a bucket (the key without its trailing `/`); the
    /// client is made from the environment when it is used.
    Bucket(ObjectUrl),
}

/// The dataset's address without the prefix's trailing `/`.
fn prefix_of(mut url: ObjectUrl) -> ObjectUrl {
    url.key = url.key.trim_end_matches('/').to_string();
    url
}

/// A dataset.
#[derive(Debug)]
pub struct LakeStore {
    place: Place,
    /// Partitioning and file settings (the load's own options come with
    /// each sink).
    partition_by: Option<Vec<PartitionSpec>>,
    row_group_size: usize,
    file_size: u64,
}

impl LakeStore {
    /// The target etl-load's flags name, checked.
    pub fn open(args: &TargetArgs, check: FlagCheck<'_>) -> Result<Self> {
        args.refuse_naive_timestamps()?;
        if let Some(format) = args.format.as_ref().filter(|f| *f != "parquet") {
            return Err(usage(format!(
                "a dataset is written as Parquet; --format {format} cannot be partitioned"
            )));
        }
        let text = args.address_text();
        let is_url = crate::client::s3::url::is_url(&text);
        if !is_url && args.address.is_file() {
            return Err(usage(format!(
                "{} is a file; a dataset is a directory",
                args.address.display()
            )));
        }
        check(&CAPABILITIES)?;
        let mut specs: Vec<PartitionSpec> = Vec::new();
        for text in args
            .partition_by
            .iter()
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
        {
            let spec = PartitionSpec::parse(text).map_err(usage)?;
            if specs.iter().any(|s| s.key() == spec.key()) {
                return Err(usage(format!(
                    "--partition-by names {:?} twice",
                    spec.key()
                )));
            }
            specs.push(spec);
        }
        if args.row_group_size == Some(0) {
            return Err(usage("--row-group-size must be at least 1"));
        }
        let place = if is_url {
            let url = ObjectUrl::parse(&text)?;
            if url.key.trim_matches('/').is_empty() {
                return Err(usage(format!(
                    "{text}: a dataset on S3 lives under a prefix: s3://bucket/lake/orders"
                )));
            }
            // The AWS settings are checked now, before any input is read.
            Client::from_env(&url)?;
            Place::Bucket(prefix_of(url))
        } else {
            Place::Dir(args.address.clone())
        };
        Ok(LakeStore {
            place,
            partition_by: (!specs.is_empty()).then_some(specs),
            row_group_size: args.row_group_size.unwrap_or(DEFAULT_ROW_GROUP),
            file_size: args.file_size.unwrap_or(128 << 20),
        })
    }

    /// The dataset `--state` names (its bookmarks are in its manifest), or
    /// etl-extract reads, when `path` is a directory.
    pub fn state(path: &Path) -> Option<Self> {
        let text = path.to_string_lossy();
        let place = if crate::client::s3::url::names_prefix(&text) {
            Place::Bucket(prefix_of(ObjectUrl::parse(&text).ok()?))
        } else if path.is_dir() {
            Place::Dir(path.to_path_buf())
        } else {
            return None;
        };
        Some(LakeStore {
            place,
            partition_by: None,
            row_group_size: DEFAULT_ROW_GROUP,
            file_size: 0,
        })
    }

    /// The dataset's storage, for reading.
    fn reader(&self) -> Result<Box<dyn Storage>> {
        Ok(match &self.place {
            Place::Dir(dir) => Box::new(LocalDir::reader(dir)),
            Place::Bucket(url) => Box::new(S3Dataset::reader(Client::from_env(url)?, &url.key)),
        })
    }

    /// The dataset's storage, for a load (a directory is locked).
    fn for_load(&self) -> Result<Box<dyn Storage>> {
        Ok(match &self.place {
            Place::Dir(dir) => Box::new(LocalDir::for_load(dir)?),
            Place::Bucket(url) => Box::new(S3Dataset::for_load(Client::from_env(url)?, &url.key)?),
        })
    }
}

impl Store for LakeStore {
    fn capabilities(&self) -> &'static Capabilities {
        &CAPABILITIES
    }

    fn shown(&self) -> String {
        match &self.place {
            Place::Dir(dir) => dir.display().to_string(),
            Place::Bucket(url) => url.shown(),
        }
    }

    fn target_name(&self) -> String {
        format!("dataset {}", self.shown())
    }

    fn untouched(&self) -> String {
        format!(
            "nothing was committed to the dataset {} (it is as it was)",
            self.shown()
        )
    }

    fn destination(&self) -> String {
        format!("the dataset {}", self.shown())
    }

    fn default_job(&self) -> String {
        match &self.place {
            Place::Dir(dir) => file_job_name(dir),
            Place::Bucket(url) => file_job_name(Path::new(&url.key)),
        }
    }

    fn open_sink(&self, load: &LoadOptions) -> Opened<'_> {
        let options = LakeOptions {
            partition_by: self.partition_by.clone(),
            row_group_size: self.row_group_size,
            file_size: self.file_size,
            memory_budget: MEMORY_BUDGET,
        };
        Ok(Ok(Box::new(LakeSink::open(
            self.for_load()?,
            options,
            load.clone(),
        )?)))
    }

    fn record_failed_run(&self, run: &RunRecord) -> Result<()> {
        self.reader()?.record_failed_run(run)
    }

    fn open_source(&self, window: Option<Window<'_>>) -> Result<OpenedSource> {
        let source = LakeSource::open(self.reader()?, window)?;
        let details = match source.pruned() {
            0 => Vec::new(),
            pruned => vec![format!(
                "{pruned} files left unread: their partitions lie outside the cursor range"
            )],
        };
        Ok(OpenedSource {
            warnings: source.unlisted_warning().into_iter().collect(),
            details,
            name: self.shown(),
            source: Box::new(source),
        })
    }

    fn read_bookmark(&self, stream: &str) -> Result<Option<Value>> {
        match &self.place {
            Place::Dir(dir) => {
                crate::state_document::read_bookmark(&super::manifest::manifest_path(dir), stream)
            }
            Place::Bucket(..) => Ok(self
                .reader()?
                .read()?
                .0
                .and_then(|m| super::state::bookmark(&m, stream))),
        }
    }
}
