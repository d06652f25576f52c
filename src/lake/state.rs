//! A dataset's incremental state: the streams' bookmarks and the batch ids
//! it has committed, kept in its manifest. Replacing the manifest commits
//! the data files and the state together, so unlike a file target with a
//! separate `--state` file, no crash can leave one without the other.

use anyhow::Result;
use serde_json::Value;

use super::manifest::Manifest;
use crate::incremental::check_starting_point;
use crate::state;
use crate::wire::End;

/// Refuses a stream whose bookmark moved since its extract started.
pub fn check_start(manifest: &Manifest, stream: &str, from: &Value) -> Result<()> {
    let stored = state::bookmark_in(&manifest.state, stream).unwrap_or(Value::Null);
    check_starting_point(stream, &stored, from)
}

/// Has the dataset committed batch `id` of `stream`?
pub fn batch_committed(manifest: &Manifest, stream: &str, id: &str) -> bool {
    state::batch_in(&manifest.state, stream, id)
}

/// Puts the run's bookmarks and batch ids into the manifest about to be
/// committed; returns lines for `-v`.
pub fn record(
    manifest: &mut Manifest,
    ends: &[End],
    batches: &[(String, String)],
) -> Result<Vec<String>> {
    state::add_batches(&mut manifest.state, batches)?;
    let mut log = Vec::new();
    for end in ends {
        if let Some(bookmark) = &end.bookmark {
            state::set_bookmark(&mut manifest.state, &end.stream, bookmark, end.rows)?;
            log.push(format!(
                "stream {:?}: bookmark stored in the manifest",
                end.stream
            ));
        }
    }
    Ok(log)
}
