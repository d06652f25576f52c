//! A dataset's incremental state: the streams' bookmarks, the batch ids it
//! has committed and its run history, kept in its manifest (in the layout of
//! the JSON state document, [`crate::state_document`]). Replacing the
//! manifest commits the data files and the state together, so unlike a file
//! target with a separate `--state` file, no crash can leave one without
//! the other.

use anyhow::Result;
use serde_json::Value;

use super::manifest::Manifest;
use crate::atomic_file::{lock_target, write_atomically};
use crate::state::StateChanges;
use crate::state_document::{apply_changes, batch_in, bookmark_in, push_run};

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

/// Records a failed run in the dataset's manifest (nothing else changes),
/// under the dataset's lock; a directory with no manifest yet keeps none.
pub fn record_failed_run(dir: &std::path::Path, run: &crate::runs::RunRecord) -> Result<()> {
    let _lock = lock_target(dir)?;
    let Some(mut manifest) = Manifest::read(dir)? else {
        return Ok(());
    };
    push_run(&mut manifest.state, run);
    write_atomically(
        &super::manifest::manifest_path(dir),
        manifest.to_text().as_bytes(),
    )
}
