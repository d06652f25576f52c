//! Reading a dataset back: the files its manifest lists (never a file of a
//! commit in progress), each through the Parquet source, with the identity
//! partition columns restored from the paths, typed by the manifest's
//! schema. Partitions on the cursor column that cannot hold rows of the
//! incremental window are not opened.

use anyhow::{Context as _, Result};
use serde_json::Value;

use super::manifest::{DataFile, MANIFEST, Manifest};
use super::storage::Storage;
use crate::error::{Failure, Kind};
use crate::format::json;
use crate::parquet_io::reader::ParquetSource;
use crate::record::{FieldType, Schema};
use crate::source::{Context, Emit, Source, Window, deliver};

/// Files opened before the first record is emitted: a load that replaces
/// them meanwhile cannot take them away (an open file outlives its
/// deletion). Past this many, the rest are opened as they are reached.
const OPENED_AHEAD: usize = 256;

/// A load may replace files between reading the manifest and opening them:
/// read it again, this many times.
const ATTEMPTS: usize = 20;

enum Pending {
    Open(Box<ParquetSource>),
    Later(DataFile, String, Vec<(String, String)>),
    /// A file without columns (every field is in the path): Parquet keeps
    /// no rows for it, the manifest counts them.
    PathOnly(String, u64, Vec<(String, String)>),
}

/// A dataset written by etl-load.
pub struct LakeSource {
    storage: Box<dyn Storage>,
    schema: Schema,
    files: Vec<Pending>,
    skipped: usize,
    /// Parquet files in the directory that the manifest does not list.
    unlisted: (usize, Option<String>),
}

/// A partition value as the wire writes its column's type.
fn wire_value(kind: FieldType, text: Option<&str>) -> Value {
    let Some(text) = text else {
        return Value::Null;
    };
    match kind {
        FieldType::Integer | FieldType::Float | FieldType::Decimal(_) => {
            serde_json::from_str::<Value>(text)
                .ok()
                .filter(Value::is_number)
                .unwrap_or_else(|| Value::String(text.to_string()))
        }
        FieldType::Boolean => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => Value::String(other.to_string()),
        },
        _ => Value::String(text.to_string()),
    }
}

fn json_text(value: &Value) -> String {
    match value {
        Value::String(s) => {
            let mut out = Vec::with_capacity(s.len() + 2);
            json::write_str(&mut out, s);
            String::from_utf8(out).unwrap_or_default()
        }
        other => other.to_string(),
    }
}

impl LakeSource {
    /// Opens the dataset in `storage`; with a window on a partition
    /// column, partitions that cannot hold rows inside it are left out.
    pub fn open(storage: Box<dyn Storage>, window: Option<Window<'_>>) -> Result<Self> {
        let mut last_err = None;
        let mut last_commit = None;
        let shown = storage.shown();
        let mut storage = Some(storage);
        for _ in 0..ATTEMPTS {
            let Some(store) = storage.take() else {
                break;
            };
            let manifest = store.read()?.0.ok_or_else(|| {
                anyhow::Error::from(
                    Failure::new(
                        Kind::Runtime,
                        format!(
                            "{shown} has no {MANIFEST}: it is not a dataset written by etl-load"
                        ),
                    )
                    .hint(format!(
                        "read its Parquet files with a glob: etl-extract '{shown}/**/*.parquet'"
                    )),
                )
            })?;
            match Self::open_files(store, &manifest, window) {
                Ok(mut source) => {
                    source.unlisted = source.storage.unlisted(&manifest)?;
                    return Ok(source);
                }
                Err((store, err)) if is_not_found(&err) => {
                    // Replaced by a commit after we read the manifest, or
                    // (the same commit twice) lost.
                    if last_commit == Some(manifest.commit) {
                        return Err(
                            err.context(format!("{shown}: a file its manifest lists is missing"))
                        );
                    }
                    last_commit = Some(manifest.commit);
                    last_err = Some(err);
                    storage = Some(store);
                }
                Err((_, err)) => return Err(err),
            }
        }
        Err(last_err
            .unwrap_or_else(|| anyhow::anyhow!("no attempt made"))
            .context(format!(
                "{shown}: files kept changing while the dataset was opened"
            )))
    }

    /// The files of `manifest`, the first [`OPENED_AHEAD`] opened; a
    /// failure hands the storage back with the error.
    fn open_files(
        storage: Box<dyn Storage>,
        manifest: &Manifest,
        window: Option<Window<'_>>,
    ) -> Result<Self, (Box<dyn Storage>, anyhow::Error)> {
        let path_columns: Vec<(String, FieldType)> = manifest
            .partition_by
            .iter()
            .filter(|s| s.is_identity())
            .map(|s| {
                let kind = manifest
                    .schema
                    .iter()
                    .find(|(n, _)| *n == s.column)
                    .map_or(FieldType::Text, |(_, t)| *t);
                (s.column.clone(), kind)
            })
            .collect();
        let mut schema: Schema = manifest
            .schema
            .iter()
            .filter(|(n, _)| !manifest.is_path_column(n))
            .cloned()
            .collect();
        schema.extend(path_columns.iter().cloned());
        let mut files = Vec::new();
        let mut skipped = 0;
        for file in &manifest.files {
            if let Some(w) = window
                && !may_hold(manifest, file, &w)
            {
                skipped += 1;
                continue;
            }
            let constant: Vec<(String, String)> = path_columns
                .iter()
                .map(|(column, kind)| {
                    let key = manifest
                        .partition_by
                        .iter()
                        .find(|s| s.is_identity() && s.column == *column)
                        .map(super::partition::PartitionSpec::key)
                        .unwrap_or_default();
                    let text = file
                        .partition
                        .iter()
                        .find(|(k, _)| *k == key)
                        .and_then(|(_, v)| v.as_deref());
                    (column.clone(), json_text(&wire_value(*kind, text)))
                })
                .collect();
            let name = storage.file_shown(&file.path);
            if files.len() < OPENED_AHEAD {
                let source = match storage.open_file(file, &name) {
                    Ok(source) => source,
                    Err(err) => return Err((storage, err)),
                };
                if source.schema().is_empty() {
                    files.push(Pending::PathOnly(name, file.rows, constant));
                    continue;
                }
                files.push(Pending::Open(Box::new(
                    source.with_constant_fields(constant),
                )));
            } else {
                files.push(Pending::Later(file.clone(), name, constant));
            }
        }
        Ok(LakeSource {
            storage,
            schema,
            files,
            skipped,
            unlisted: (0, None),
        })
    }
}

/// Can this file hold rows inside the window? Asked of every partition
/// key on the window's column.
fn may_hold(manifest: &Manifest, file: &DataFile, window: &Window<'_>) -> bool {
    manifest.partition_by.iter().all(|spec| {
        let key = spec.key();
        let Some((_, text)) = file.partition.iter().find(|(k, _)| *k == key) else {
            return true;
        };
        let kind = if spec.is_identity() {
            manifest
                .schema
                .iter()
                .find(|(n, _)| *n == spec.column)
                .map_or(FieldType::Text, |(_, t)| *t)
        } else {
            FieldType::Text
        };
        let value = text.as_deref().map(|t| wire_value(kind, Some(t)));
        spec.may_hold(value.as_ref(), window.column, window.lower, window.upper)
    })
}

/// Emits `rows` records made of the path's fields only.
fn path_only(
    name: &str,
    rows: u64,
    constant: &[(String, String)],
    emit: &mut Emit<'_>,
    cx: &mut Context<'_>,
) -> Result<()> {
    let mut record = Vec::from(&b"{"[..]);
    for (i, (column, text)) in constant.iter().enumerate() {
        if i > 0 {
            record.push(b',');
        }
        record.extend_from_slice(&json::key_prefix(column));
        record.extend_from_slice(text.as_bytes());
    }
    record.push(b'}');
    for n in 0..rows {
        cx.read += 1;
        deliver(emit, &record, cx, name, n + 1)?;
    }
    Ok(())
}

/// Is a file missing somewhere in `err`'s chain?
fn is_not_found(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
    })
}

impl Source for LakeSource {
    fn schema(&self) -> Schema {
        self.schema.clone()
    }

    fn run(&mut self, emit: &mut Emit<'_>, cx: &mut Context<'_>) -> Result<()> {
        for pending in std::mem::take(&mut self.files) {
            let mut source = match pending {
                Pending::Open(source) => *source,
                Pending::Later(file, name, constant) => {
                    let source = self.storage.open_file(&file, &name).with_context(|| {
                        format!(
                            "cannot open {name}: a load replaced it while this run read the dataset; run again"
                        )
                    })?;
                    if source.schema().is_empty() {
                        path_only(&name, file.rows, &constant, emit, cx)?;
                        continue;
                    }
                    source.with_constant_fields(constant)
                }
                Pending::PathOnly(name, rows, constant) => {
                    path_only(&name, rows, &constant, emit, cx)?;
                    continue;
                }
            };
            source.run(emit, cx)?;
        }
        Ok(())
    }
}

impl LakeSource {
    /// How many files the window let this run leave unread.
    pub fn pruned(&self) -> usize {
        self.skipped
    }

    /// A warning when the directory holds Parquet files its manifest does
    /// not list (another tool's, or a lost manifest entry): a reader of the
    /// whole directory sees them, this one does not.
    pub fn unlisted_warning(&self) -> Option<String> {
        let (n, first) = &self.unlisted;
        let first = first.as_ref()?;
        let shown = self.storage.shown();
        Some(if *n == 1 {
            format!(
                "{shown} holds 1 Parquet file its manifest does not list ({first:?}): it is not read"
            )
        } else {
            format!(
                "{shown} holds {n} Parquet files its manifest does not list (first {first:?}): they are not read"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_values_come_back_typed() {
        assert_eq!(wire_value(FieldType::Integer, Some("42")), Value::from(42));
        assert_eq!(wire_value(FieldType::Text, Some("42")), Value::from("42"));
        assert_eq!(
            wire_value(FieldType::Boolean, Some("true")),
            Value::Bool(true)
        );
        assert_eq!(wire_value(FieldType::Integer, None), Value::Null);
        assert_eq!(json_text(&Value::from("a\"b")), r#""a\"b""#);
    }
}
