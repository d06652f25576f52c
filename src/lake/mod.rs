//! Hive-partitioned Parquet datasets as a store: a directory (or a prefix
//! of an S3 bucket, `s3.rs`; the storage contract is `storage.rs`) such as
//! `lake/orders/` holding `ordered_at_day=2026-11-03/part-<id>-<n>.parquet`
//! files that Spark, Trino and DuckDB read, and `_etl_manifest.json`, which
//! lists the committed files and keeps the dataset's schema, partitioning,
//! bookmarks and batch ids. A load commits by replacing the manifest
//! (`sink.rs`); `etl-extract DIR` reads what it lists (`source.rs`).

pub mod leftovers;
pub mod local;
pub mod manifest;
pub mod partition;
pub mod s3;
pub mod sink;
pub mod source;
pub mod spill;
pub mod state;
pub mod storage;
pub mod store;

use std::path::{Path, PathBuf};

/// The manifest of a dataset directory, when `path` is one: where a
/// dataset's bookmarks are read from (`etl-extract --state DIR`).
pub fn state_file(path: &Path) -> Option<PathBuf> {
    path.is_dir().then(|| manifest::manifest_path(path))
}
