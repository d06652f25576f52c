//! Incremental state: where each stream's bookmark is kept.
//!
//! With a SQLite target the bookmark lives in the table `_etl_state` inside
//! the target, written by `etl-load` in the same transaction as the rows, so
//! rows and bookmark commit together or not at all. Otherwise STATE is a JSON
//! file, replaced atomically (temp file, fsync, rename) under a lock file.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::{Map, Value};

/// Name of the state table in a database target.
pub const STATE_TABLE: &str = "_etl_state";

/// Where bookmarks are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateStore {
    /// The `_etl_state` table of a SQLite database.
    Sqlite(PathBuf),
    /// A JSON file: `{"streams": {"NAME": {"bookmark": ...}}}`.
    Json(PathBuf),
    /// The `_etl_state` table of a PostgreSQL schema: (URL, schema).
    Postgres(String, String),
}

impl StateStore {
    /// A `postgres://` URL is a PostgreSQL database (its `_etl_state` in
    /// `schema`), a `.json` path a JSON state file, anything else SQLite.
    pub fn from_arg_in(path: &Path, schema: &str) -> StateStore {
        let text = path.to_string_lossy();
        if crate::pg::is_url(&text) {
            return StateStore::Postgres(text.into_owned(), schema.to_string());
        }
        StateStore::from_arg(path)
    }

    /// A `.json` path is a JSON state file, a dataset directory its
    /// manifest; anything else a SQLite database.
    pub fn from_arg(path: &Path) -> StateStore {
        if let Some(manifest) = crate::lake::state_file(path) {
            return StateStore::Json(manifest);
        }
        let is_json = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        if is_json {
            StateStore::Json(path.to_path_buf())
        } else {
            StateStore::Sqlite(path.to_path_buf())
        }
    }

    /// The stored bookmark of `stream`; `None` before its first run.
    pub fn read(&self, stream: &str) -> Result<Option<Value>> {
        match self {
            StateStore::Sqlite(path) => {
                if !path.exists() {
                    return Ok(None);
                }
                let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
                    .with_context(|| format!("cannot open state database {}", path.display()))?;
                read_sqlite(&conn, stream)
                    .with_context(|| format!("cannot read state from {}", path.display()))
            }
            StateStore::Postgres(url, schema) => {
                let mut client = crate::pg::conn::connect(url)?;
                let table = format!("{}.\"{STATE_TABLE}\"", crate::pg::conn::quote(schema));
                let exists: bool = client
                    .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
                    .map_err(|e| {
                        anyhow::anyhow!("cannot read state: {}", crate::pg::source::db_message(&e))
                    })?
                    .get(0);
                if !exists {
                    return Ok(None);
                }
                let row = client
                    .query_opt(
                        &format!("SELECT bookmark::text FROM {table} WHERE stream = $1"),
                        &[&stream],
                    )
                    .map_err(|e| {
                        anyhow::anyhow!("cannot read state: {}", crate::pg::source::db_message(&e))
                    })?;
                match row {
                    Some(r) => Ok(Some(
                        serde_json::from_str(r.get::<_, &str>(0))
                            .context("stored bookmark is not valid JSON")?,
                    )),
                    None => Ok(None),
                }
            }
            StateStore::Json(path) => Ok(bookmark_in(&read_json_file(path)?, stream)),
        }
    }
}

/// Reads a bookmark inside an open connection (and its transaction).
pub fn read_sqlite(conn: &Connection, stream: &str) -> Result<Option<Value>> {
    let exists: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [STATE_TABLE],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(None);
    }
    let text: Option<String> = conn
        .query_row(
            &format!("SELECT bookmark FROM \"{STATE_TABLE}\" WHERE stream = ?1"),
            [stream],
            |r| r.get(0),
        )
        .optional()?;
    match text {
        Some(t) => Ok(Some(
            serde_json::from_str(&t).context("stored bookmark is not valid JSON")?,
        )),
        None => Ok(None),
    }
}

/// Stores a bookmark inside the caller's transaction.
pub fn write_sqlite(conn: &Connection, stream: &str, bookmark: &Value, rows: u64) -> Result<()> {
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS \"{STATE_TABLE}\" (\
           stream TEXT PRIMARY KEY, bookmark JSON NOT NULL, rows INTEGER NOT NULL, \
           updated_at TEXT NOT NULL)"
    ))?;
    conn.execute(
        &format!(
            "INSERT INTO \"{STATE_TABLE}\" (stream, bookmark, rows, updated_at) \
             VALUES (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) \
             ON CONFLICT (stream) DO UPDATE SET bookmark = excluded.bookmark, \
             rows = excluded.rows, updated_at = excluded.updated_at"
        ),
        rusqlite::params![stream, bookmark.to_string(), rows as i64],
    )
    .context("cannot store the bookmark")?;
    Ok(())
}

/// Reads a JSON state document (an empty one when the file does not exist).
pub fn read_json_file(path: &Path) -> Result<Map<String, Value>> {
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

/// Holds the lock file `STATE.lock` for as long as it lives.
pub struct StateLock {
    _file: File,
}

/// Takes the lock on a JSON state file, waiting for another run to finish.
pub fn lock_json(path: &Path) -> Result<StateLock> {
    let (file, lock_path) = open_lock_file(path)?;
    file.lock()
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    Ok(StateLock { _file: file })
}

/// Takes the lock of a file target (`.NAME.etl-lock` beside it), waiting
/// for another run writing the same file: two appends would each copy the
/// old file, and the second rename would drop the first one's rows.
pub fn lock_target(path: &Path) -> Result<StateLock> {
    let name = path
        .file_name()
        .map_or_else(|| "target".into(), |n| n.to_string_lossy().into_owned());
    let lock_path = path.with_file_name(format!(".{name}.etl-lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open lock file {}", lock_path.display()))?;
    file.lock()
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    Ok(StateLock { _file: file })
}

/// Opens (creating it) the lock file `PATH.lock` that guards `path`.
pub fn open_lock_file(path: &Path) -> Result<(File, PathBuf)> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open lock file {}", lock_path.display()))?;
    Ok((file, lock_path))
}

/// Stores a bookmark in a JSON state file: read, change, write a temp file,
/// fsync, rename over the old one, fsync the directory. Call under
/// [`lock_json`].
pub fn write_json(path: &Path, stream: &str, bookmark: &Value, rows: u64) -> Result<()> {
    let mut doc = read_json_file(path)?;
    set_bookmark(&mut doc, stream, bookmark, rows)
        .with_context(|| format!("state file {}", path.display()))?;
    let text = serde_json::to_string_pretty(&Value::Object(doc))?;
    write_atomically(path, text.as_bytes())
}

/// Sets `stream`'s bookmark in a JSON state document (the layout of a
/// state file, also kept inside a dataset's manifest).
pub fn set_bookmark(
    doc: &mut Map<String, Value>,
    stream: &str,
    bookmark: &Value,
    rows: u64,
) -> Result<()> {
    doc.insert("version".into(), 1.into());
    let streams = doc
        .entry("streams")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(streams) = streams else {
        bail!("\"streams\" is not an object");
    };
    let mut entry = Map::new();
    entry.insert("bookmark".into(), bookmark.clone());
    entry.insert("rows".into(), rows.into());
    streams.insert(stream.into(), Value::Object(entry));
    Ok(())
}

/// The bookmark of `stream` in a JSON state document; `None` before its
/// first run.
pub fn bookmark_in(doc: &Map<String, Value>, stream: &str) -> Option<Value> {
    doc.get("streams")
        .and_then(|s| s.get(stream))
        .and_then(|s| s.get("bookmark"))
        .cloned()
}

/// Batch ids kept per stream in a JSON state file: a replay concerns the
/// batch in flight when a run stopped, so the newest ones are enough.
const JSON_BATCHES_KEPT: usize = 1000;

/// Has the file target behind this JSON state committed batch `id` of
/// `stream`? (The state file belongs to one target, so no table is named.)
pub fn json_batch_committed(path: &Path, stream: &str, id: &str) -> Result<bool> {
    Ok(batch_in(&read_json_file(path)?, stream, id))
}

/// Is batch `id` of `stream` recorded in a JSON state document?
pub fn batch_in(doc: &Map<String, Value>, stream: &str, id: &str) -> bool {
    doc.get("batches")
        .and_then(|b| b.get(stream))
        .and_then(Value::as_array)
        .is_some_and(|ids| ids.iter().any(|v| v.as_str() == Some(id)))
}

/// Adds committed batch ids (stream, id) to a JSON state file, keeping the
/// newest [`JSON_BATCHES_KEPT`] per stream. Call under [`lock_json`], after
/// the data is in place.
pub fn write_json_batches(path: &Path, batches: &[(String, String)]) -> Result<()> {
    if batches.is_empty() {
        return Ok(());
    }
    let mut doc = read_json_file(path)?;
    add_batches(&mut doc, batches).with_context(|| format!("state file {}", path.display()))?;
    let text = serde_json::to_string_pretty(&Value::Object(doc))?;
    write_atomically(path, text.as_bytes())
}

/// Adds committed batch ids (stream, id) to a JSON state document, keeping
/// the newest [`JSON_BATCHES_KEPT`] per stream.
pub fn add_batches(doc: &mut Map<String, Value>, batches: &[(String, String)]) -> Result<()> {
    if batches.is_empty() {
        return Ok(());
    }
    doc.insert("version".into(), 1.into());
    let all = doc
        .entry("batches")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(all) = all else {
        bail!("\"batches\" is not an object");
    };
    for (stream, id) in batches {
        let ids = all
            .entry(stream.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(ids) = ids {
            ids.push(Value::from(id.as_str()));
            let excess = ids.len().saturating_sub(JSON_BATCHES_KEPT);
            ids.drain(..excess);
        }
    }
    Ok(())
}

/// Replaces `path` with `bytes` so that a reader (or a crash) sees the old
/// file or the new one, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let result = (|| -> Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_state_round_trips_and_keeps_other_streams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let store = StateStore::from_arg(&path);
        assert_eq!(store.read("a").unwrap(), None);
        let _lock = lock_json(&path).unwrap();
        write_json(&path, "a", &json!({"value": 5}), 3).unwrap();
        write_json(&path, "b", &json!({"value": "x"}), 1).unwrap();
        assert_eq!(store.read("a").unwrap(), Some(json!({"value": 5})));
        assert_eq!(store.read("b").unwrap(), Some(json!({"value": "x"})));
    }

    #[test]
    fn sqlite_state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        assert_eq!(read_sqlite(&conn, "s").unwrap(), None);
        write_sqlite(&conn, "s", &json!({"value": 1}), 1).unwrap();
        write_sqlite(&conn, "s", &json!({"value": 2}), 1).unwrap();
        drop(conn);
        let store = StateStore::from_arg(&path);
        assert_eq!(store.read("s").unwrap(), Some(json!({"value": 2})));
    }
}
