//! A dataset's incremental state: the streams' bookmarks, the batch ids it
//! has committed and its run history, kept in its manifest (in the layout of
//! the JSON state document, [`crate::state_document`]). Replacing the
//! manifest commits the data files and the state together, so unlike a file
//! target with a separate `--state` file, no crash can leave one without
//! the other. A failed run is recorded by the storage (`Storage::record_failed_run`).

use anyhow::Result;
use serde_json::Value;

use super::manifest::Manifest;
use crate::state::StateChanges;
use crate::state_document::{apply_changes, batch_in, bookmark_in};

/// The stored bookmark of `stream`.
pub fn bookmark(manifest: &Manifest, stream: &str) -> Option<Value> {
    bookmark_in(&manifest.state, stream)
}

/// Has the dataset committed batch `id` of `stream`?
pub fn batch_committed(manifest: &Manifest, stream: &str, id: &str) -> bool {
    batch_in(&manifest.state, stream, id)
}

/// Puts the run's bookmarks, batch ids and run record into the manifest
/// about to be committed; returns lines for `-v`.
pub fn record(manifest: &mut Manifest, changes: &StateChanges) -> Result<Vec<String>> {
    apply_changes(&mut manifest.state, changes, "the manifest")
}
