//! Where a dataset lives, as the sink and the source see it: a local (or
//! mounted) directory (`local.rs`) or a prefix of an S3 bucket (`s3.rs`).
//! The commit protocol is the same above both: the partitions' files are
//! written as local temporary files, put into the dataset under their
//! final names without being listed ([`Storage::place`]), and the load
//! becomes visible with one write of the manifest ([`Storage::commit`]),
//! conditional on the manifest the load started from. A directory holds
//! its lock for the whole load, so its commit never loses; a bucket has
//! no lock, so a commit there is a conditional write that another load
//! may win, and the sink then reads the new manifest and tries again
//! (`sink/publish.rs`).

use std::path::PathBuf;

use anyhow::Result;

use super::leftovers::PendingRecord;
use super::manifest::{DataFile, Manifest};
use crate::parquet_io::reader::ParquetSource;

/// Which committed manifest a commit replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// None yet: the commit creates the first.
    Absent,
    /// Whatever the directory holds (its lock keeps other loads out).
    Locked,
    /// The manifest object with this ETag.
    Tag(String),
}

/// A commit's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// The new manifest is the dataset's.
    Done,
    /// Another load committed first: the manifest is not the one this load
    /// started from, and nothing was written.
    Lost,
}

/// A dataset's storage: reading its manifest and files, and the steps of
/// a load's commit.
pub trait Storage: Send {
    /// The dataset as messages name it.
    fn shown(&self) -> String;

    /// The committed manifest (`None`: no dataset yet) and its version.
    fn read(&self) -> Result<(Option<Manifest>, Version)>;

    /// A committed data file, opened for reading (`name` for messages); a
    /// file that is not there fails with an
    /// [`std::io::ErrorKind::NotFound`] in the error's chain.
    fn open_file(&self, file: &DataFile, name: &str) -> Result<ParquetSource>;

    /// How a file (relative path) is shown in messages.
    fn file_shown(&self, rel: &str) -> String;

    /// Data files the manifest does not list that a reader of the whole
    /// dataset would see: how many and the first.
    fn unlisted(&self, manifest: &Manifest) -> Result<(usize, Option<String>)>;

    /// Readies a load that starts from `manifest` (after the sink's own
    /// checks): a directory removes what an interrupted load left.
    fn prepare(&mut self, manifest: Option<&Manifest>) -> Result<()>;

    /// A local path for the load's scratch file `name` (its spill).
    fn scratch(&self, name: &str) -> PathBuf;

    /// The local directory where the files of partition `dir` (relative)
    /// are written before they are placed.
    fn temp_dir(&mut self, dir: &str) -> Result<PathBuf>;

    /// The name of file `n` of a partition whose rows fingerprint to `id`.
    fn file_name(&self, id: u64, n: usize) -> String;

    /// Puts each written file (temporary path, relative path) into the
    /// dataset, unlisted; `pending` names what the commit adds and
    /// replaces. Returns each file's size in bytes.
    fn place(&mut self, files: &[(PathBuf, String)], pending: &PendingRecord) -> Result<Vec<u64>>;

    /// Writes `manifest` in place of version `base` of it.
    fn commit(&mut self, manifest: &Manifest, base: &Version) -> Result<Commit>;

    /// How long files a commit stops listing stay (named in the
    /// manifest's `dropped`), for readers of the manifests that listed
    /// them; `None`: they are deleted at the commit (a directory: a
    /// reader's open file outlives its deletion).
    fn keep_dropped(&self) -> Option<std::time::Duration> {
        None
    }

    /// After a commit of `manifest`: removes what may go (`replaced`: the
    /// files it no longer lists). Returns how many files went.
    fn tidy(&mut self, manifest: &Manifest, replaced: &[String]) -> Result<usize>;

    /// A load failed or was cut: removes what it made that nothing lists.
    fn abort(&mut self);

    /// Records a failed run in the manifest (nothing else changes); a
    /// dataset with no manifest yet keeps none.
    fn record_failed_run(&mut self, run: &crate::runs::RunRecord) -> Result<()>;
}
