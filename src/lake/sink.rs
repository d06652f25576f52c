//! Writing a dataset: records go to one Parquet file per partition (more
//! only when a file reaches `--file-size`). Rows are held per partition
//! until the commit (in memory up to a budget, past it in a spill file:
//! `spill.rs`), then each partition's file is written at once as a hidden
//! temporary file in its partition directory (`sink/write.rs`). The commit
//! (`sink/publish.rs`) records what it is about to do (`leftovers.rs`),
//! renames the files into place, then replaces the manifest, which is the
//! moment the load becomes visible; files the new manifest no longer lists
//! are deleted after it.
//!
//! File names are `part-<id>-<n>.parquet`, where `<id>` is a fingerprint of
//! the partition's rows, the schema and the file settings (and, for an
//! append, the commit number): loading the same input again with
//! `replace` or `replace-partitions` names the same files with the same
//! bytes, so the file set stays identical and nothing is rewritten.

mod publish;
mod write;

use std::collections::HashMap;

use anyhow::{Result, bail};
use serde_json::Value;

use super::leftovers::TMP_PREFIX;
use super::manifest::Manifest;
use super::partition::PartitionSpec;
use super::spill::{Held, Spill};
use super::storage::{Storage, Version};
use crate::error::{Failure, Kind};
use crate::format::flat::{Fields, Raw};
use crate::format::typing::type_of_value;
use crate::parquet_io::writer::{misfit, parquet_columns};
use crate::record::{FieldType, Schema};
use crate::sink::{LoadMode, LoadOptions, Sink};
use crate::state::{StateChanges, StateStore};
use write::Finished;
pub(super) use write::sync_dirs;

/// Bytes of rows a load holds in memory for its partitions; past it they
/// go to the spill file.
pub const MEMORY_BUDGET: usize = 64 << 20;

/// How to write a dataset.
#[derive(Debug, Clone)]
pub struct LakeOptions {
    /// The partition keys; `None` keeps the dataset's own (none for a new one).
    pub partition_by: Option<Vec<PartitionSpec>>,
    /// Rows per row group.
    pub row_group_size: usize,
    /// A file is finished at the first row group that takes it past this.
    pub file_size: u64,
    /// Bytes of rows held in memory before they are spilled ([`MEMORY_BUDGET`]).
    pub memory_budget: usize,
}

struct Partition {
    /// Relative directory (`""` when unpartitioned).
    dir: String,
    values: Vec<(String, Option<String>)>,
    /// Rows not yet written.
    held: Held,
    finished: Vec<Finished>,
    /// Fingerprint of the rows, in order.
    hash: u64,
}

/// A dataset being loaded.
pub struct LakeSink {
    /// Where the dataset is (a directory, or a prefix of a bucket).
    storage: Box<dyn Storage>,
    options: LakeOptions,
    /// Mode (append, replace or replace-partitions) and schema policy.
    load: LoadOptions,
    old: Manifest,
    /// The version of the manifest `old` was read from (the commit's condition).
    version: Version,
    specs: Vec<PartitionSpec>,
    schema: Schema,
    prepared: bool,
    /// Partitions by directory.
    index: HashMap<String, usize>,
    /// Partitions by partition values (several values may share a directory).
    by_values: HashMap<Vec<Option<String>>, usize>,
    parts: Vec<Partition>,
    spill: Spill,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// A 64-bit fingerprint step over `bytes`, a word at a time (file names
/// are fingerprints of the rows: the same input names the same files).
fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let w = u64::from_le_bytes(word.try_into().expect("chunks of 8 bytes"));
        hash = (hash ^ w).wrapping_mul(K).rotate_left(31);
    }
    for b in words.remainder() {
        hash = (hash ^ u64::from(*b)).wrapping_mul(K).rotate_left(31);
    }
    // Lengths apart: "ab" + "c" and "a" + "bc" fingerprint differently.
    (hash ^ bytes.len() as u64).wrapping_mul(K)
}

fn value_of<'f, 'a>(fields: &'f Fields<'a>, name: &str) -> &'f Raw<'a> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map_or(&Raw::Null, |(_, v)| v)
}

impl LakeSink {
    /// Opens the dataset in `storage` (opened for a load: a directory is
    /// locked) for a load: reads its manifest, checks the partitioning,
    /// and lets the storage ready itself (a directory removes what an
    /// interrupted load left, after refusing what it cannot account for).
    pub fn open(
        mut storage: Box<dyn Storage>,
        options: LakeOptions,
        load: LoadOptions,
    ) -> Result<Self> {
        let (manifest, version) = storage.read()?;
        let old = manifest.clone().unwrap_or_default();
        let specs = match &options.partition_by {
            Some(specs) => {
                if old.commit > 0 && *specs != old.partition_by && load.mode != LoadMode::Replace {
                    let show = |s: &[PartitionSpec]| {
                        if s.is_empty() {
                            "nothing".to_string()
                        } else {
                            s.iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(",")
                        }
                    };
                    return Err(Failure::new(
                        Kind::Usage,
                        format!(
                            "{} is partitioned by {}, not {}",
                            storage.shown(),
                            show(&old.partition_by),
                            show(specs)
                        ),
                    )
                    .hint("leave out --partition-by to use the dataset's own, or re-partition it whole with --mode replace")
                    .into());
                }
                specs.clone()
            }
            None => old.partition_by.clone(),
        };
        storage.prepare(manifest.as_ref())?;
        let spill = Spill::new(
            storage.scratch(&format!("{TMP_PREFIX}{}-spill", std::process::id())),
            options.memory_budget,
        );
        Ok(LakeSink {
            storage,
            options,
            load,
            old,
            version,
            specs,
            schema: Vec::new(),
            prepared: false,
            index: HashMap::new(),
            by_values: HashMap::new(),
            parts: Vec::new(),
            spill,
        })
    }

    fn is_path_column(&self, name: &str) -> bool {
        self.specs
            .iter()
            .any(|s| s.is_identity() && s.column == name)
    }

    /// The columns stored in the files: all but the identity partition columns.
    fn file_columns(&self) -> Vec<(String, FieldType)> {
        self.schema
            .iter()
            .filter(|(n, _)| !self.is_path_column(n))
            .cloned()
            .collect()
    }

    fn type_of(&self, name: &str) -> Option<FieldType> {
        self.schema.iter().find(|(n, _)| n == name).map(|(_, t)| *t)
    }

    /// The partition of a record with these partition values (one per
    /// key), made on first sight. Found by the values themselves, so the
    /// path is built once per partition, not once per row.
    fn partition_index(&mut self, values: Vec<Option<String>>) -> usize {
        if let Some(&i) = self.by_values.get(&values) {
            return i;
        }
        let dir = self
            .specs
            .iter()
            .zip(&values)
            .map(|(spec, v)| spec.component(v.as_deref()))
            .collect::<Vec<_>>()
            .join("/");
        let i = match self.index.get(&dir) {
            Some(&i) => i,
            None => {
                self.parts.push(Partition {
                    dir: dir.clone(),
                    values: self
                        .specs
                        .iter()
                        .map(PartitionSpec::key)
                        .zip(values.iter().cloned())
                        .collect(),
                    held: Held::default(),
                    finished: Vec::new(),
                    hash: FNV_OFFSET,
                });
                self.index.insert(dir, self.parts.len() - 1);
                self.parts.len() - 1
            }
        };
        self.by_values.insert(values, i);
        i
    }

    fn remove_temps(&mut self) {
        self.spill.remove();
        for part in &mut self.parts {
            for f in part.finished.drain(..) {
                let _ = std::fs::remove_file(f.tmp);
            }
        }
        self.storage.abort();
    }
}

/// A dataset's state is its committed manifest (see `state.rs` here).
impl StateStore for LakeSink {
    fn bookmark(&mut self, stream: &str) -> Result<Option<Value>> {
        Ok(super::state::bookmark(&self.old, stream))
    }

    fn batch_committed(&mut self, stream: &str, id: &str) -> Result<bool> {
        Ok(super::state::batch_committed(&self.old, stream, id))
    }
}

impl Sink for LakeSink {
    fn state(&mut self) -> &mut dyn StateStore {
        self
    }

    fn prepare(&mut self, schema: &Schema, sample: &[&Fields<'_>]) -> Result<()> {
        if self.prepared {
            return Ok(());
        }
        let mut columns: Schema = if self.load.mode == LoadMode::Replace {
            Vec::new()
        } else {
            self.old.schema.clone()
        };
        let fresh = columns.is_empty();
        for (name, kind) in parquet_columns(schema, sample) {
            if columns.iter().any(|(n, _)| *n == name) {
                continue;
            }
            // Strict holds an existing dataset to its columns.
            if fresh || !self.load.strict {
                columns.push((name, kind));
            }
        }
        for spec in &self.specs {
            if !columns.iter().any(|(n, _)| *n == spec.column) {
                columns.push((spec.column.clone(), FieldType::Text));
            }
            if spec.is_identity()
                && let Some((_, FieldType::Json)) = columns.iter().find(|(n, _)| *n == spec.column)
            {
                return Err(crate::error::usage(format!(
                    "--partition-by {spec}: the column holds JSON, which cannot name a directory"
                )));
            }
        }
        self.schema = columns;
        self.prepared = true;
        Ok(())
    }

    fn insert(&mut self, fields: &Fields<'_>, line: &[u8]) -> Result<Result<(), String>> {
        if !self.prepared {
            bail!("dataset sink used before its columns were set");
        }
        let mut new_columns: Vec<(String, FieldType)> = Vec::new();
        // A value that does not fit its column, reported after the
        // partition keys' own checks.
        let mut unfit = None;
        for (name, value) in fields {
            if let Some((_, kind)) = self.schema.iter().find(|(n, _)| n == name) {
                if unfit.is_none() {
                    unfit = misfit(name, *kind, value);
                }
                continue;
            }
            if new_columns.iter().any(|(n, _)| n == name) {
                continue;
            }
            if self.load.strict {
                return Ok(Err(format!(
                    "field {name:?} is not one of the dataset's columns (--schema strict)"
                )));
            }
            if let Some(kind) = type_of_value(value) {
                new_columns.push((name.to_string(), kind));
            }
        }
        let mut values = Vec::with_capacity(self.specs.len());
        for spec in &self.specs {
            let value = value_of(fields, &spec.column);
            if spec.is_identity()
                && let Some(kind) = self.type_of(&spec.column)
                && let Some(reason) = misfit(&spec.column, kind, value)
            {
                return Ok(Err(reason));
            }
            match spec.value_of(value) {
                Ok(v) => values.push(v),
                Err(reason) => return Ok(Err(reason)),
            }
        }
        if let Some(reason) = unfit {
            return Ok(Err(reason));
        }
        // Files are written at the commit, so every file carries every
        // column, however late a field first appears.
        self.schema.extend(new_columns);
        let i = self.partition_index(values);
        let part = &mut self.parts[i];
        part.hash = fnv(fnv(part.hash, line), b"\n");
        if self.spill.hold(&mut part.held, line)? {
            self.spill
                .spill(self.parts.iter_mut().map(|p| &mut p.held))?;
        }
        Ok(Ok(()))
    }

    fn commit_point(&mut self, _changes: &StateChanges) -> Result<()> {
        bail!("a dataset commits once per run; --commit segment needs a database target")
    }

    fn commit(mut self: Box<Self>, changes: &StateChanges) -> Result<Vec<String>> {
        if !self.prepared {
            self.prepare(&Vec::new(), &[])?;
        }
        let result = self.write_all().and_then(|()| {
            self.spill.remove();
            self.publish(changes)
        });
        if result.is_err() {
            self.remove_temps();
        }
        result
    }

    fn describe(&mut self) -> Result<Vec<String>> {
        let columns: Vec<String> = self
            .schema
            .iter()
            .map(|(name, kind)| format!("{name} {}", kind.name()))
            .collect();
        Ok(vec![format!(
            "dataset {} (Hive-partitioned Parquet): columns {}",
            self.storage.shown(),
            columns.join(", ")
        )])
    }

    fn abort(mut self: Box<Self>) {
        self.remove_temps();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::flat;

    #[test]
    fn rows_past_the_memory_budget_still_make_one_file_per_partition() {
        let dir = tempfile::tempdir().unwrap();
        let ds = dir.path().join("ds");
        let options = LakeOptions {
            partition_by: Some(vec![PartitionSpec::parse("k").unwrap()]),
            row_group_size: 1000,
            file_size: 128 << 20,
            memory_budget: 4096,
        };
        let load = LoadOptions {
            mode: LoadMode::Append,
            keys: Vec::new(),
            delete_when: None,
            strict: false,
            reject_naive_timestamps: false,
            sync: Default::default(),
            dry_run: false,
        };
        let storage = Box::new(crate::lake::local::LocalDir::for_load(&ds).unwrap());
        let mut sink = Box::new(LakeSink::open(storage, options, load).unwrap());
        let lines: Vec<String> = (0..6000u32)
            .map(|n| {
                let id = (n * 7919) % 6000;
                format!(r#"{{"id":{id},"k":"p{:03}","pad":"{id:0>30}"}}"#, id % 300)
            })
            .collect();
        let first = flat::parse_object(lines[0].as_bytes()).unwrap();
        sink.prepare(&Vec::new(), &[&first]).unwrap();
        for line in &lines {
            let fields = flat::parse_object(line.as_bytes()).unwrap();
            sink.insert(&fields, line.as_bytes()).unwrap().unwrap();
        }
        assert!(sink.spill.path().exists(), "the budget was never passed");
        sink.commit(&StateChanges::default()).unwrap();
        let m = Manifest::read(&ds).unwrap().unwrap();
        assert_eq!(m.files.len(), 300);
        assert!(m.files.iter().all(|f| f.rows == 20));
        let on_disk: usize = std::fs::read_dir(&ds)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .map(|p| std::fs::read_dir(p).unwrap().count())
            .sum();
        assert_eq!(on_disk, 300);
        let names: Vec<String> = std::fs::read_dir(&ds)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.') || n.starts_with("_etl_pending"))
            .collect();
        assert!(names.is_empty(), "left behind: {names:?}");
    }
}
