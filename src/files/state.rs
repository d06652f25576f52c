//! The file store's state: a JSON state file (`--state FILE.json`) that
//! keeps each stream's bookmark and the ids of the `etl-watch` batches
//! written, replaced atomically (temp file, fsync, rename) under a lock
//! held for the whole run, and written only after the data file is in
//! place. A file has no transaction: a crash between the data file's
//! rename and this write can repeat the last batch. The document's layout
//! is [`crate::state_document`]'s.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::atomic_file::{FileLock, lock_file, write_atomically};
use crate::error::usage;
use crate::runs::RunRecord;
use crate::state::{StateChanges, StateStore};
/// The stored bookmark of a stream in a JSON state file (or a manifest).
pub use crate::state_document::read_bookmark;
use crate::state_document::{apply_changes, batch_in, push_run, read_file};

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
        let mut doc = read_file(path)?;
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
        let mut doc = read_file(path)?;
        doc.insert("version".into(), 1.into());
        push_run(&mut doc, run);
        let text = serde_json::to_string_pretty(&Value::Object(doc))?;
        write_atomically(path, text.as_bytes())
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
        Ok(batch_in(&read_file(path)?, stream, id))
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
