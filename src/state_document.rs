//! The JSON state document: each stream's bookmark and row count, the ids
//! of the `etl-watch` batches committed and the run history, in the layout
//! both a file target's `--state FILE.json` and a dataset's manifest (under
//! its `state` key) keep:
//!
//! `{"version": 1, "streams": {"NAME": {"bookmark": ..., "rows": N}},
//!   "batches": {"NAME": ["id", ...]}, "runs": [...]}`
//!
//! Only the document: where it is kept, and how it is replaced, is the
//! store's (`files/state.rs`, `lake/state.rs`).

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};

use crate::runs::RunRecord;
use crate::state::StateChanges;

/// Batch ids kept per stream: a replay concerns the batch in flight when a
/// run stopped, so the newest ones are enough.
const BATCHES_KEPT: usize = 1000;

/// Run records kept in a state document (the newest).
const RUNS_KEPT: usize = 1000;

/// Puts a run's bookmarks, batch ids and run record into a state document;
/// returns lines for `-v` naming `place`.
pub fn apply_changes(
    doc: &mut Map<String, Value>,
    changes: &StateChanges,
    place: &str,
) -> Result<Vec<String>> {
    doc.insert("version".into(), 1.into());
    let mut log = Vec::new();
    {
        let streams = object_entry(doc, "streams")?;
        for (stream, bookmark, rows) in changes.bookmarks() {
            let mut entry = Map::new();
            entry.insert("bookmark".into(), bookmark.clone());
            entry.insert("rows".into(), rows.into());
            streams.insert(stream.into(), Value::Object(entry));
            log.push(format!("stream {stream:?}: bookmark stored in {place}"));
        }
    }
    if !changes.batches.is_empty() {
        let all = object_entry(doc, "batches")?;
        for (stream, id) in &changes.batches {
            let ids = all
                .entry(stream.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(ids) = ids {
                ids.push(Value::from(id.as_str()));
                let excess = ids.len().saturating_sub(BATCHES_KEPT);
                ids.drain(..excess);
            }
        }
    }
    if let Some(run) = &changes.run {
        push_run(doc, run);
    }
    Ok(log)
}

/// The bookmark of `stream` in a state document; `None` before its first run.
pub fn bookmark_in(doc: &Map<String, Value>, stream: &str) -> Option<Value> {
    doc.get("streams")
        .and_then(|s| s.get(stream))
        .and_then(|s| s.get("bookmark"))
        .cloned()
}

/// Is batch `id` of `stream` recorded in a state document?
pub fn batch_in(doc: &Map<String, Value>, stream: &str, id: &str) -> bool {
    doc.get("batches")
        .and_then(|b| b.get(stream))
        .and_then(Value::as_array)
        .is_some_and(|ids| ids.iter().any(|v| v.as_str() == Some(id)))
}

/// Adds a run record to a state document (the newest kept).
pub fn push_run(doc: &mut Map<String, Value>, run: &RunRecord) {
    let runs = doc
        .entry("runs")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !runs.is_array() {
        *runs = Value::Array(Vec::new());
    }
    if let Value::Array(runs) = runs {
        runs.push(run.to_json());
        let excess = runs.len().saturating_sub(RUNS_KEPT);
        runs.drain(..excess);
    }
}

/// Reads the state file `path`; an empty document when there is none yet.
pub fn read_file(path: &Path) -> Result<Map<String, Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read state file {}", path.display()));
        }
    };
    match serde_json::from_str(&text) {
        Ok(Value::Object(doc)) => Ok(doc),
        _ => bail!("state file {} is not a JSON object", path.display()),
    }
}

/// The stored bookmark of `stream` in the state file `path` (or a
/// dataset's manifest, which keeps the same keys).
pub fn read_bookmark(path: &Path, stream: &str) -> Result<Option<Value>> {
    Ok(bookmark_in(&read_file(path)?, stream))
}

fn object_entry<'d>(
    doc: &'d mut Map<String, Value>,
    key: &str,
) -> Result<&'d mut Map<String, Value>> {
    match doc.entry(key).or_insert_with(|| Value::Object(Map::new())) {
        Value::Object(map) => Ok(map),
        _ => bail!("{key:?} is not an object"),
    }
}
