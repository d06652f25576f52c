//! The file store's state: a JSON state file (`--state FILE.json`) that
//! keeps each stream's bookmark and the ids of the `etl-watch` batches
//! written, replaced atomically (temp file, fsync, rename) under a lock
//! held for the whole run, and written only after the data file is in
//! place. A file has no transaction: a crash between the data file's
//! rename and this write can repeat the last batch.
//!
//! `{"version": 1, "streams": {"NAME": {"bookmark": ..., "rows": N}},
//!   "batches": {"NAME": ["id", ...]}}`

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};

use crate::error::usage;
use crate::runs::RunRecord;
use crate::state::{FileLock, StateChanges, StateStore, lock_file, write_atomically};

/// Batch ids kept per stream: a replay concerns the batch in flight when a
/// run stopped, so the newest ones are enough.
const BATCHES_KEPT: usize = 1000;

/// Run records kept in a state file (the newest).
const RUNS_KEPT: usize = 1000;

/// The state file of one file target, locked for the run (or none).
pub struct JsonState {
    path: Option<PathBuf>,
    _lock: Option<FileLock>,
}

impl JsonState {
    /// Locks and opens `path` (none: the target keeps no state).
    pub fn open(path: Option<&Path>) -> Result<Self> {
        Ok(JsonState {
            path: path.map(Path::to_path_buf),
            _lock: path.map(lock_file).transpose()?,
        })
    }

    /// Writes a run's bookmarks and batch ids in one atomic replace; call
    /// after the data file is in place. Returns lines for `-v`.
    pub fn write(&self, changes: &StateChanges) -> Result<Vec<String>> {
        let Some(path) = &self.path else {
            return Ok(Vec::new());
        };
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let mut doc = read_doc(path)?;
        let log = apply_changes(&mut doc, changes, &path.display().to_string())
            .with_context(|| format!("state file {}", path.display()))?;
        let text = serde_json::to_string_pretty(&Value::Object(doc))?;
        write_atomically(path, text.as_bytes())?;
        Ok(log)
    }

    /// Records a failed run (nothing else changes); best effort, under the
    /// lock this run holds.
    pub fn record_failed_run(&self, run: &RunRecord) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut doc = read_doc(path)?;
        doc.insert("version".into(), 1.into());
        push_run(&mut doc, run);
        let text = serde_json::to_string_pretty(&Value::Object(doc))?;
        write_atomically(path, text.as_bytes())
    }
}

/// Puts a run's bookmarks, batch ids and run record into a state document
/// (the layout of a state file, also kept inside a dataset's manifest);
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

impl StateStore for JsonState {
    fn bookmark(&mut self, stream: &str) -> Result<Option<Value>> {
        match &self.path {
            Some(path) => read_bookmark(path, stream),
            None => Err(usage(format!(
                "stream {stream:?} is incremental, but no --state FILE.json keeps its bookmark \
                 for a file target: the next run would start from the beginning"
            ))),
        }
    }

    fn batch_committed(&mut self, stream: &str, id: &str) -> Result<bool> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        Ok(batch_in(&read_doc(path)?, stream, id))
    }
}

/// The stored bookmark of `stream` in a JSON state file.
pub fn read_bookmark(path: &Path, stream: &str) -> Result<Option<Value>> {
    Ok(bookmark_in(&read_doc(path)?, stream))
}

fn read_doc(path: &Path) -> Result<Map<String, Value>> {
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

fn object_entry<'d>(
    doc: &'d mut Map<String, Value>,
    key: &str,
) -> Result<&'d mut Map<String, Value>> {
    match doc.entry(key).or_insert_with(|| Value::Object(Map::new())) {
        Value::Object(map) => Ok(map),
        _ => bail!("{key:?} is not an object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::End;
    use serde_json::json;

    #[test]
    fn json_state_round_trips_and_keeps_other_streams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(read_bookmark(&path, "a").unwrap(), None);
        let mut state = JsonState::open(Some(&path)).unwrap();
        let end = |stream: &str, value: Value| End {
            stream: stream.into(),
            rows: 1,
            bookmark: Some(value),
            positions: None,
        };
        let changes = StateChanges {
            ends: vec![
                end("a", json!({"value": 5})),
                end("b", json!({"value": "x"})),
            ],
            batches: vec![("a".into(), "b-1".into())],
            run: None,
            reloaded: false,
        };
        state.write(&changes).unwrap();
        assert_eq!(state.bookmark("a").unwrap(), Some(json!({"value": 5})));
        assert_eq!(state.bookmark("b").unwrap(), Some(json!({"value": "x"})));
        assert!(state.batch_committed("a", "b-1").unwrap());
        assert!(!state.batch_committed("b", "b-1").unwrap());
    }
}
