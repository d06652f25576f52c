//! The dataset's manifest, `_etl_manifest.json`: the one file whose atomic
//! replacement commits a load. It lists the committed data files (path,
//! partition values, rows, bytes), the dataset's schema and partitioning,
//! and the streams' bookmarks and batch ids in the layout of the JSON state
//! document (`state_document.rs`). A data file no manifest lists is not
//! part of the dataset: readers going through the manifest never see a
//! commit in progress, and the next load removes what a crashed one left
//! (what its pending record names, see `leftovers.rs`; other unlisted data
//! files are refused, not removed).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

use super::partition::PartitionSpec;
use crate::record::{FieldType, Schema};

/// The manifest's file name inside the dataset directory.
pub const MANIFEST: &str = "_etl_manifest.json";

/// What the manifest says `"format"` is, so a stray JSON file is not taken for one.
const FORMAT: &str = "etlkit-lake";

/// The manifest layout this etlkit writes and reads.
const VERSION: u64 = 1;

/// One committed data file.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFile {
    /// Path relative to the dataset directory, `/`-separated.
    pub path: String,
    /// The partition values (key, value; `None` is null), in key order.
    pub partition: Vec<(String, Option<String>)>,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
}

impl DataFile {
    /// The file's partition directory, relative (`""` when unpartitioned).
    pub fn dir(&self) -> &str {
        self.path.rsplit_once('/').map_or("", |(dir, _)| dir)
    }
}

/// A dataset's committed state.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    /// Commits so far (0: no manifest yet).
    pub commit: u64,
    /// The partition keys, outermost first.
    pub partition_by: Vec<PartitionSpec>,
    /// Every column, partition columns included, in the dataset's order.
    pub schema: Schema,
    /// The committed data files.
    pub files: Vec<DataFile>,
    /// Bookmarks and batch ids, laid out as in a JSON state file
    /// (`"streams"`, `"batches"`), so `etl-extract --state` reads them.
    pub state: Map<String, Value>,
    /// Files recent commits stopped listing, with when (seconds since
    /// 1970): on object storage they are kept for the cleaning age after
    /// that, for readers of the manifest that listed them (`s3.rs`). Empty
    /// for a directory, which deletes them at the commit.
    pub dropped: Vec<(String, i64)>,
}

/// The manifest path of a dataset directory.
pub fn manifest_path(dir: &Path) -> PathBuf {
    dir.join(MANIFEST)
}

impl Manifest {
    /// Reads the manifest of `dir`; `None` when there is none.
    pub fn read(dir: &Path) -> Result<Option<Manifest>> {
        let path = manifest_path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Manifest::from_text(&text, &path.display().to_string()).map(Some)
    }

    /// Reads a manifest's text; `shown` names it in messages.
    pub fn from_text(text: &str, shown: &str) -> Result<Manifest> {
        let doc: Value =
            serde_json::from_str(text).with_context(|| format!("{shown} is not valid JSON"))?;
        Manifest::from_json(doc)
            .with_context(|| format!("{shown} is not a valid etlkit dataset manifest"))
    }

    fn from_json(doc: Value) -> Result<Manifest> {
        let Value::Object(mut doc) = doc else {
            bail!("not a JSON object");
        };
        if doc.get("format").and_then(Value::as_str) != Some(FORMAT) {
            bail!("\"format\" is not {FORMAT:?}");
        }
        match doc.get("version") {
            Some(v) if v.as_u64() == Some(VERSION) => {}
            Some(v) => bail!(
                "its version {v} is not one this etlkit knows ({VERSION}); a newer etlkit wrote it"
            ),
            None => bail!("it has no \"version\""),
        }
        let commit = doc
            .get("commit")
            .and_then(Value::as_u64)
            .context("no \"commit\" number")?;
        let partition_by = doc
            .get("partition_by")
            .and_then(Value::as_array)
            .context("no \"partition_by\" list")?
            .iter()
            .map(|v| {
                let text = v.as_str().context("a partition key is not text")?;
                PartitionSpec::parse(text).map_err(anyhow::Error::msg)
            })
            .collect::<Result<Vec<_>>>()?;
        let schema = doc
            .get("schema")
            .and_then(Value::as_array)
            .context("no \"schema\" list")?
            .iter()
            .map(|c| {
                let name = c.get("name").and_then(Value::as_str);
                let kind = c
                    .get("type")
                    .and_then(Value::as_str)
                    .and_then(FieldType::from_name);
                match (name, kind) {
                    (Some(n), Some(k)) => Ok((n.to_string(), k)),
                    _ => bail!("schema entry {c} needs a name and a known type"),
                }
            })
            .collect::<Result<Schema>>()?;
        let files = doc
            .get("files")
            .and_then(Value::as_array)
            .context("no \"files\" list")?
            .iter()
            .map(data_file)
            .collect::<Result<Vec<_>>>()?;
        check_files(&files, &partition_by)?;
        let dropped = match doc.get("dropped") {
            None => Vec::new(),
            Some(list) => list
                .as_array()
                .context("\"dropped\" is not a list")?
                .iter()
                .map(|d| {
                    let path = d.get("path").and_then(Value::as_str);
                    let at = d.get("at").and_then(Value::as_i64);
                    match (path, at) {
                        (Some(path), Some(at)) => {
                            check_relative(path)?;
                            Ok((path.to_string(), at))
                        }
                        _ => bail!("dropped entry {d} needs a path and a time"),
                    }
                })
                .collect::<Result<Vec<_>>>()?,
        };
        let mut state = Map::new();
        for key in ["streams", "batches", "runs"] {
            if let Some(v) = doc.remove(key) {
                state.insert(key.into(), v);
            }
        }
        Ok(Manifest {
            commit,
            partition_by,
            schema,
            files,
            state,
            dropped,
        })
    }

    /// The manifest as JSON (one file per line, for people reading it).
    pub fn to_text(&self) -> String {
        let mut out = String::from("{\n");
        let mut field = |key: &str, value: String, last: bool| {
            out.push_str(&format!(
                "  {}: {value}{}\n",
                json!(key),
                if last { "" } else { "," }
            ));
        };
        field("format", json!(FORMAT).to_string(), false);
        field("version", VERSION.to_string(), false);
        field("commit", self.commit.to_string(), false);
        field(
            "partition_by",
            json!(
                self.partition_by
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            )
            .to_string(),
            false,
        );
        let schema: Vec<Value> = self
            .schema
            .iter()
            .map(|(n, t)| json!({"name": n, "type": t.name()}))
            .collect();
        field("schema", Value::Array(schema).to_string(), false);
        let files: Vec<String> = self
            .files
            .iter()
            .map(|f| {
                let partition: Map<String, Value> = f
                    .partition
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone().map_or(Value::Null, Value::String)))
                    .collect();
                format!(
                    "    {}",
                    json!({"path": f.path, "partition": partition, "rows": f.rows, "bytes": f.bytes})
                )
            })
            .collect();
        let files = if files.is_empty() {
            "[]".to_string()
        } else {
            format!("[\n{}\n  ]", files.join(",\n"))
        };
        let state_keys: Vec<&String> = self.state.keys().filter(|k| *k != "version").collect();
        field(
            "files",
            files,
            state_keys.is_empty() && self.dropped.is_empty(),
        );
        if !self.dropped.is_empty() {
            let dropped: Vec<Value> = self
                .dropped
                .iter()
                .map(|(path, at)| json!({"path": path, "at": at}))
                .collect();
            field(
                "dropped",
                Value::Array(dropped).to_string(),
                state_keys.is_empty(),
            );
        }
        for (i, key) in state_keys.iter().enumerate() {
            let value = serde_json::to_string(&self.state[key.as_str()]).unwrap_or_default();
            field(key, value, i + 1 == state_keys.len());
        }
        out.push_str("}\n");
        out
    }

    /// The identity partition columns: in the paths, not in the files.
    pub fn is_path_column(&self, name: &str) -> bool {
        self.partition_by
            .iter()
            .any(|s| s.is_identity() && s.column == name)
    }
}

/// Refuses a path that is not a plain relative path inside the dataset.
pub fn check_relative(path: &str) -> Result<()> {
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
        || path.starts_with('/')
    {
        bail!("file entry {path:?} leaves the dataset directory");
    }
    Ok(())
}

/// Each file listed once, in the directory its partition values and the
/// manifest's `partition_by` name: a manifest whose keys were edited by
/// hand (or whose list repeats a file) would read rows twice or put rows
/// of one partition beside another's.
fn check_files(files: &[DataFile], partition_by: &[PartitionSpec]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for file in files {
        if !seen.insert(file.path.as_str()) {
            bail!("it lists {:?} twice", file.path);
        }
        let mut dir = Vec::with_capacity(partition_by.len());
        for spec in partition_by {
            let key = spec.key();
            let Some((_, value)) = file.partition.iter().find(|(k, _)| *k == key) else {
                bail!(
                    "file {:?} has no value for partition key {key:?} of \"partition_by\"",
                    file.path
                );
            };
            dir.push(spec.component(value.as_deref()));
        }
        if file.partition.len() != partition_by.len() || dir.join("/") != file.dir() {
            let keys: Vec<String> = partition_by.iter().map(ToString::to_string).collect();
            bail!(
                "file {:?} does not lie where \"partition_by\" {keys:?} and its partition values put it",
                file.path
            );
        }
    }
    Ok(())
}

fn data_file(v: &Value) -> Result<DataFile> {
    let path = v
        .get("path")
        .and_then(Value::as_str)
        .with_context(|| format!("file entry {v} has no path"))?;
    check_relative(path)?;
    let partition = match v.get("partition") {
        Some(Value::Object(p)) => p
            .iter()
            .map(|(k, v)| match v {
                Value::Null => Ok((k.clone(), None)),
                Value::String(s) => Ok((k.clone(), Some(s.clone()))),
                other => bail!("file {path:?}: partition value {other} is not text"),
            })
            .collect::<Result<Vec<_>>>()?,
        _ => Vec::new(),
    };
    Ok(DataFile {
        path: path.to_string(),
        partition,
        rows: v.get("rows").and_then(Value::as_u64).unwrap_or(0),
        bytes: v.get("bytes").and_then(Value::as_u64).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_its_text() {
        let mut m = Manifest {
            commit: 3,
            partition_by: vec![PartitionSpec::parse("at:day").unwrap()],
            schema: vec![
                ("id".into(), FieldType::Integer),
                ("at".into(), FieldType::Text),
            ],
            files: vec![DataFile {
                path: "at_day=2026-11-03/part-1-00000.parquet".into(),
                partition: vec![("at_day".into(), Some("2026-11-03".into()))],
                rows: 2,
                bytes: 700,
            }],
            state: Map::new(),
            dropped: vec![(
                "at_day=2026-11-02/part-0-00000.parquet".into(),
                1_796_000_000,
            )],
        };
        let changes = crate::state::StateChanges {
            ends: vec![crate::wire::End {
                stream: "s".into(),
                rows: 2,
                bookmark: Some(json!({"value": 1})),
                positions: None,
            }],
            ..Default::default()
        };
        crate::state_document::apply_changes(&mut m.state, &changes, "the manifest").unwrap();
        let back = Manifest::from_json(serde_json::from_str(&m.to_text()).unwrap()).unwrap();
        assert_eq!(back.commit, 3);
        assert_eq!(back.files, m.files);
        assert_eq!(back.schema, m.schema);
        assert_eq!(back.partition_by, m.partition_by);
        assert_eq!(back.dropped, m.dropped);
        assert_eq!(
            crate::state_document::bookmark_in(&back.state, "s"),
            Some(json!({"value": 1}))
        );
        assert_eq!(back.files[0].dir(), "at_day=2026-11-03");
    }

    #[test]
    fn refuses_paths_outside_the_dataset() {
        for bad in ["../x.parquet", "/etc/x", "a//b", "./a"] {
            assert!(data_file(&json!({"path": bad})).is_err(), "{bad}");
        }
    }
}
