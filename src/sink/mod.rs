//! Where records go. A sink takes parsed records and either commits all of
//! them or none; the load loop (`load.rs`) drives any sink the same way.

use anyhow::Result;

use crate::format::flat::Fields;
use crate::record::Schema;
use crate::state::{StateChanges, StateStore};

pub mod sync;

/// How a load treats what the target already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// Keep it; add the new rows.
    Append,
    /// Swap it for the new rows in the same transaction (a file: written anew).
    Replace,
    /// Insert new keys, update existing ones (last record for a key wins,
    /// for the fields it carries).
    Upsert,
    /// For a partitioned dataset: swap the partitions the input has rows
    /// for, keep the others as they are.
    ReplacePartitions,
    /// Upsert the stream, which is the whole source, and delete (or mark,
    /// `--soft-delete`) the rows whose key it does not hold, in the same
    /// transaction.
    Sync,
    /// Only the deletes of a sync: the stream's keys (the whole source's)
    /// say which rows stay; nothing is inserted or updated.
    DeleteMissing,
}

impl LoadMode {
    /// Upsert, sync and delete-missing: records go by key (staged where a
    /// store stages).
    pub fn merges_by_key(self) -> bool {
        matches!(
            self,
            LoadMode::Upsert | LoadMode::Sync | LoadMode::DeleteMissing
        )
    }

    /// Sync and delete-missing: rows whose key the stream lacks go.
    pub fn sweeps(self) -> bool {
        matches!(self, LoadMode::Sync | LoadMode::DeleteMissing)
    }
}

/// What the load asks of every store, the same whatever the store: decided
/// once by the plan and handed to the store's sink. A store's own settings
/// (partitioning, file format, row group size) stay with the store.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Append, replace, upsert or replace-partitions.
    pub mode: LoadMode,
    /// Key columns for upsert (and for deletes).
    pub keys: Vec<String>,
    /// A boolean field: records where it is true delete their key's row.
    pub delete_when: Option<String>,
    /// Reject records with fields the target has no column for.
    pub strict: bool,
    /// `--naive-timestamps reject`: a timestamp without a UTC offset is a
    /// reject in a column that holds instants (PostgreSQL's timestamptz),
    /// rather than read in the session's time zone.
    pub reject_naive_timestamps: bool,
    /// `--mode sync`: how rows missing from the stream go.
    pub sync: sync::SyncOptions,
    /// `--dry-run`: do everything, then roll back and say what would have
    /// changed; a store must not make a change it cannot roll back (MySQL's
    /// DDL commits).
    pub dry_run: bool,
}

/// A destination for one load run: a table of a database, or a file. The
/// load driver (`load.rs`) drives every sink the same way: it checks
/// starting points and batch ids through [`Sink::state`], writes each
/// record with [`Sink::insert`], and hands the run's state changes to the
/// commit, which stores them with the rows.
pub trait Sink {
    /// The target's state store (bookmarks, committed batch ids), read
    /// inside the run's transaction.
    fn state(&mut self) -> &mut dyn StateStore;

    /// Sets up columns from the declared schema and a sample of records.
    fn prepare(&mut self, schema: &Schema, sample: &[&Fields<'_>]) -> Result<()>;

    /// Writes one record (`line` is its wire text). `Ok(Err(reason))`
    /// rejects the record; `Err` ends the run.
    fn insert(&mut self, fields: &Fields<'_>, line: &[u8]) -> Result<Result<(), String>>;

    /// Makes everything written so far durable and visible, with `changes`
    /// (a segment commit); the run goes on in a new transaction.
    fn commit_point(&mut self, changes: &StateChanges) -> Result<()>;

    /// Finishes and commits the run with `changes`; returns lines for `-v`.
    fn commit(self: Box<Self>, changes: &StateChanges) -> Result<Vec<String>>;

    /// The target's definition as the run has left it so far (before
    /// commit), for `--dry-run`: the table's DDL, or a file's columns.
    fn describe(&mut self) -> Result<Vec<String>>;

    /// Undoes everything since the last commit point.
    fn abort(self: Box<Self>);
}
