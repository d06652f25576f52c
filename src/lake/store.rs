//! A Hive-partitioned Parquet dataset as a store: which addresses are
//! datasets, the flags a dataset takes, its row of the capability table,
//! and the contract the programs hold it by.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::Value;

use super::partition::PartitionSpec;
use super::sink::{LakeOptions, LakeSink, MEMORY_BUDGET};
use super::source::LakeSource;
use crate::error::usage;
use crate::parquet_io::writer::DEFAULT_ROW_GROUP;
use crate::runs::RunRecord;
use crate::sink::LoadOptions;
use crate::source::Window;
use crate::store::{
    Capabilities, Claim, FlagCheck, Opened, OpenedSource, Store, StoreType, TargetArgs,
    file_job_name,
};

/// A dataset's row of the capability table: partitions, types, its state
/// in its manifest.
pub const CAPABILITIES: Capabilities = Capabilities {
    partitions: true,
    typed_columns: true,
    own_state: true,
    stdout: false,
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
/// `--format`, a directory that holds a manifest. Never stdout.
fn claims(args: &TargetArgs) -> bool {
    let named = !args.partition_by.is_empty();
    let parquet_dir =
        args.format_is("parquet") && (args.address.is_dir() || args.address_text().ends_with('/'));
    let existing =
        args.format.is_none() && super::state_file(&args.address).is_some_and(|m| m.exists());
    (named || parquet_dir || existing) && !args.is_stdout()
}

/// A dataset directory.
#[derive(Debug)]
pub struct LakeStore {
    dir: PathBuf,
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
        if args.address.is_file() {
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
        Ok(LakeStore {
            dir: args.address.clone(),
            partition_by: (!specs.is_empty()).then_some(specs),
            row_group_size: args.row_group_size.unwrap_or(DEFAULT_ROW_GROUP),
            file_size: args.file_size.unwrap_or(128 << 20),
        })
    }

    /// The dataset `--state` names (its bookmarks are in its manifest), or
    /// etl-extract reads, when `path` is a directory.
    pub fn state(path: &Path) -> Option<Self> {
        path.is_dir().then(|| LakeStore {
            dir: path.to_path_buf(),
            partition_by: None,
            row_group_size: DEFAULT_ROW_GROUP,
            file_size: 0,
        })
    }
}

impl Store for LakeStore {
    fn capabilities(&self) -> &'static Capabilities {
        &CAPABILITIES
    }

    fn shown(&self) -> String {
        self.dir.display().to_string()
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
        file_job_name(&self.dir)
    }

    fn open_sink(&self, load: &LoadOptions) -> Opened<'_> {
        let options = LakeOptions {
            partition_by: self.partition_by.clone(),
            row_group_size: self.row_group_size,
            file_size: self.file_size,
            memory_budget: MEMORY_BUDGET,
        };
        Ok(Ok(Box::new(LakeSink::open(
            &self.dir,
            options,
            load.clone(),
        )?)))
    }

    fn record_failed_run(&self, run: &RunRecord) -> Result<()> {
        super::state::record_failed_run(&self.dir, run)
    }

    fn open_source(&self, window: Option<Window<'_>>) -> Result<OpenedSource> {
        let source = LakeSource::open(&self.dir, window)?;
        let details = match source.pruned() {
            0 => Vec::new(),
            pruned => vec![format!(
                "{pruned} files left unread: their partitions lie outside the cursor range"
            )],
        };
        Ok(OpenedSource {
            warnings: source.unlisted_warning(&self.dir).into_iter().collect(),
            details,
            name: self.shown(),
            source: Box::new(source),
        })
    }

    fn read_bookmark(&self, stream: &str) -> Result<Option<Value>> {
        crate::state_document::read_bookmark(&super::manifest::manifest_path(&self.dir), stream)
    }
}
