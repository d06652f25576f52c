//! Incremental state: the contract every store keeps for its bookmarks and
//! committed batch ids.
//!
//! A database store keeps them in `_etl_state` and `_etl_batches` inside the
//! target, written in the same transaction as the rows, so rows, bookmark and
//! batch id commit together or not at all. A file store keeps them in a JSON
//! state file, written after the data file is in place, and a dataset in its
//! manifest, both in the layout of [`crate::state_document`]. Each store
//! reads and writes its own (`sqlite/state.rs`, `pg/state.rs`,
//! `files/state.rs`, `lake/state.rs`); the load driver only sees
//! [`StateStore`] and hands the changes of a run to the sink's commit as
//! [`StateChanges`].

use anyhow::Result;
use serde_json::Value;

use crate::runs::RunRecord;
use crate::wire::End;

/// The lock files and atomic replace that state is written with; they live
/// in [`crate::atomic_file`], below every store, and are named here too for
/// the modules that reach them through the state contract.
pub use crate::atomic_file::{FileLock, lock_file, lock_target, open_lock_file, write_atomically};

/// Name of the bookmark table in a database target.
pub const STATE_TABLE: &str = "_etl_state";

/// Name of the table that remembers which `etl-watch` batches were committed
/// in a database target: one row per (target table, stream, batch id), so
/// that two jobs following the same file into two tables (or under two
/// stream names) each load every batch, while a batch sent again to the
/// same table and stream is skipped.
///
/// Databases written before batch ids were scoped hold `_etl_batches (id
/// PRIMARY KEY, committed_at)`. The first batch recorded migrates it in
/// place, inside the load's transaction: `target_table` and `stream` are
/// added and the old rows keep NULL in both. Such a legacy row means
/// "committed into some table of this database, by some stream": it
/// matches its id for every table and stream, so the job that wrote it
/// never loads that batch twice. It does not block other tables: ids of
/// batches cut since are tagged and cover the batch's bytes, so they never
/// equal an id cut before; only a batch that was in flight at the upgrade,
/// sent again with its old id, can meet a legacy row (at worst that one
/// batch of a job whose very batch another table had committed is skipped,
/// as it was before).
pub const BATCH_TABLE: &str = "_etl_batches";

/// What a target remembers between runs, read inside the run's transaction.
pub trait StateStore {
    /// The stored bookmark of `stream`; `None` before its first run.
    fn bookmark(&mut self, stream: &str) -> Result<Option<Value>>;

    /// Was batch `id` of `stream` committed into this target before?
    fn batch_committed(&mut self, stream: &str, id: &str) -> Result<bool>;
}

/// What a run changes in its target's state, committed with its rows.
#[derive(Debug, Default)]
pub struct StateChanges {
    /// The end lines of the streams loaded (bookmark and row count).
    pub ends: Vec<End>,
    /// Batch ids loaded: (stream, id).
    pub batches: Vec<(String, String)>,
    /// The run's record for the history (set for the final commit).
    pub run: Option<RunRecord>,
    /// The driver loads committed batches again on purpose (a replace
    /// run): a batch id the store has recorded already is not a conflict.
    /// Decided once, by `load.rs`; a store only reads it.
    pub reloaded: bool,
}

impl StateChanges {
    /// The streams' new bookmarks: (stream, bookmark, rows).
    pub fn bookmarks(&self) -> impl Iterator<Item = (&str, &Value, u64)> {
        self.ends
            .iter()
            .filter_map(|e| Some((e.stream.as_str(), e.bookmark.as_ref()?, e.rows)))
    }

    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty() && self.bookmarks().next().is_none() && self.run.is_none()
    }

    /// Forgets what was committed (after a segment commit).
    pub fn clear(&mut self) {
        self.ends.clear();
        self.batches.clear();
    }
}
