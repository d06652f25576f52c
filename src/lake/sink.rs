//! Writing a dataset: records go to one Parquet file per partition (more
//! only when a file reaches `--file-size`). Rows are held per partition
//! until the commit (in memory up to a budget, past it in a spill file:
//! `spill.rs`), then each partition's file is written at once as a hidden
//! temporary file in its partition directory. The commit records what it
//! is about to do (`leftovers.rs`), renames the files into place, then
//! replaces the manifest, which is the moment the load becomes visible;
//! files the new manifest no longer lists are deleted after it.
//!
//! File names are `part-<id>-<n>.parquet`, where `<id>` is a fingerprint of
//! the partition's rows, the schema and the file settings (and, for an
//! append, the commit number): loading the same input again with
//! `replace` or `replace-partitions` names the same files with the same
//! bytes, so the file set stays identical and nothing is rewritten.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::leftovers::{self, PendingRecord, TMP_PREFIX};
use super::manifest::{DataFile, Manifest, manifest_path};
use super::partition::PartitionSpec;
use super::spill::{Held, Spill};
use crate::error::{Failure, Kind};
use crate::files::parquet_writer::{ParquetFile, misfit};
use crate::format::flat::{self, Fields, Raw};
use crate::format::typing::{column_types, type_of_value};
use crate::record::{FieldType, Schema};
use crate::sink::{LoadMode, LoadOptions, Sink};
use crate::state::{self, FileLock, StateChanges, StateStore};

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

struct Finished {
    tmp: PathBuf,
    rows: u64,
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
    dir: PathBuf,
    options: LakeOptions,
    /// Mode (append, replace or replace-partitions) and schema policy.
    load: LoadOptions,
    old: Manifest,
    specs: Vec<PartitionSpec>,
    schema: Schema,
    prepared: bool,
    /// Partitions by directory.
    index: HashMap<String, usize>,
    /// Partitions by partition values (several values may share a directory).
    by_values: HashMap<Vec<Option<String>>, usize>,
    parts: Vec<Partition>,
    spill: Spill,
    /// Partition directories this run created (removed again on abort when empty).
    created_dirs: Vec<PathBuf>,
    created_root: bool,
    _lock: FileLock,
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

/// Threads writing partitions' files at the commit (at most).
const WRITERS: usize = 4;

fn value_of<'f, 'a>(fields: &'f Fields<'a>, name: &str) -> &'f Raw<'a> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map_or(&Raw::Null, |(_, v)| v)
}

/// Writes one partition's held rows into temporary files in `dir`
/// (`<tmp prefix><pid>-<partition>-<n>`), each finished and synced.
fn write_partition(
    spill: &Spill,
    dir: &Path,
    index: usize,
    held: Held,
    columns: &[(String, FieldType)],
    (row_group_size, file_size): (usize, u64),
) -> Result<Vec<Finished>> {
    let mut finished: Vec<Finished> = Vec::new();
    let mut writing: Option<(ParquetFile, PathBuf)> = None;
    let mut fields: Fields<'static> = Vec::new();
    let finish = |file: ParquetFile, tmp: PathBuf, finished: &mut Vec<Finished>| -> Result<()> {
        let rows = file.finish()?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot sync {}", tmp.display()))?;
        finished.push(Finished { tmp, rows });
        Ok(())
    };
    let result = spill
        .drain(held, |line| {
            let (file, _) = match &mut writing {
                Some(w) => w,
                None => {
                    let n = finished.len();
                    let tmp = dir.join(format!("{TMP_PREFIX}{}-{index}-{n}", std::process::id()));
                    let file = ParquetFile::create(&tmp, columns, row_group_size)?;
                    writing.insert((file, tmp))
                }
            };
            let mut record = flat::recycle(std::mem::take(&mut fields));
            flat::parse_object_into(line, &mut record)
                .map_err(|reason| anyhow::anyhow!("a held record no longer reads: {reason}"))?;
            file.push(&record)?;
            fields = flat::recycle(record);
            if file.written_bytes() >= file_size
                && let Some((file, tmp)) = writing.take()
            {
                finish(file, tmp, &mut finished)?;
            }
            Ok(())
        })
        .and_then(|()| match writing.take() {
            Some((file, tmp)) => finish(file, tmp, &mut finished),
            None => Ok(()),
        });
    if let Err(err) = result {
        if let Some((file, tmp)) = writing {
            drop(file);
            let _ = std::fs::remove_file(tmp);
        }
        for f in finished {
            let _ = std::fs::remove_file(f.tmp);
        }
        return Err(err);
    }
    Ok(finished)
}

/// Syncs these directories (their new entries), several at a time.
fn sync_dirs(dirs: &[&Path]) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..WRITERS.min(dirs.len()) {
            scope.spawn(|| {
                while let Some(dir) = dirs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    // Not every filesystem lets a directory be synced; the
                    // renames stand.
                    std::fs::File::open(dir).and_then(|d| d.sync_all()).ok();
                }
            });
        }
    });
}

impl LakeSink {
    /// Opens the dataset directory `dir` (created if missing) for a load:
    /// takes its lock, reads its manifest, and removes what an interrupted
    /// load left, after refusing a directory it cannot account for.
    pub fn open(dir: &Path, options: LakeOptions, load: LoadOptions) -> Result<Self> {
        let created_root = !dir.exists();
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the dataset directory {}", dir.display()))?;
        let lock = state::lock_target(dir)?;
        let manifest = Manifest::read(dir)?;
        // Everything is checked before anything is removed.
        let leftovers = leftovers::audit(dir, manifest.as_ref())?;
        let old = manifest.unwrap_or_default();
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
                            dir.display(),
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
        leftovers.remove(dir)?;
        let spill = Spill::new(
            dir.join(format!("{TMP_PREFIX}{}-spill", std::process::id())),
            options.memory_budget,
        );
        Ok(LakeSink {
            dir: dir.to_path_buf(),
            options,
            load,
            old,
            specs,
            schema: Vec::new(),
            prepared: false,
            index: HashMap::new(),
            by_values: HashMap::new(),
            parts: Vec::new(),
            spill,
            created_dirs: Vec::new(),
            created_root,
            _lock: lock,
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

    /// Writes every partition's held rows as its file (files, when
    /// `--file-size` splits it), each a temporary file in its directory,
    /// synced. Partitions are shared out among up to [`WRITERS`] threads;
    /// each partition is written by one, in the order its rows came.
    fn write_all(&mut self) -> Result<()> {
        let mut jobs = Vec::with_capacity(self.parts.len());
        for (i, part) in self.parts.iter_mut().enumerate() {
            let dir = self.dir.join(&part.dir);
            if !dir.exists() {
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                self.created_dirs.push(dir.clone());
            }
            jobs.push((i, dir, std::mem::take(&mut part.held)));
        }
        let columns = self.file_columns();
        let sizes = (self.options.row_group_size, self.options.file_size);
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .clamp(1, WRITERS)
            .min(jobs.len());
        let queue = Mutex::new(jobs.into_iter());
        let done = Mutex::new(Vec::new());
        let failed = AtomicBool::new(false);
        let spill = &self.spill;
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    while !failed.load(Ordering::Relaxed) {
                        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
                        let Some((i, dir, held)) = job else {
                            break;
                        };
                        let result = write_partition(spill, &dir, i, held, &columns, sizes);
                        if result.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        done.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push((i, result));
                    }
                });
            }
        });
        let mut first_err = None;
        for (i, result) in done.into_inner().unwrap_or_else(PoisonError::into_inner) {
            match result {
                Ok(finished) => self.parts[i].finished = finished,
                Err(err) => {
                    first_err.get_or_insert(err);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
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
        for dir in self.created_dirs.iter().rev() {
            let mut d = dir.as_path();
            // Up to the dataset directory, each while empty.
            while d != self.dir && std::fs::remove_dir(d).is_ok() {
                match d.parent() {
                    Some(p) => d = p,
                    None => break,
                }
            }
        }
    }

    /// The commit itself, after every file is finished.
    fn publish(&mut self, changes: &StateChanges) -> Result<Vec<String>> {
        let append = self.load.mode == LoadMode::Append;
        let commit = self.old.commit + 1;
        let mut settings = fnv(FNV_OFFSET, format!("{:?}", self.schema).as_bytes());
        settings = fnv(
            settings,
            format!(
                "{} {} {:?}",
                self.options.row_group_size, self.options.file_size, self.specs
            )
            .as_bytes(),
        );
        if append {
            settings = fnv(settings, &commit.to_le_bytes());
        }
        let old_paths: HashSet<String> = self.old.files.iter().map(|f| f.path.clone()).collect();
        // Names first: the pending record lists them before any is renamed.
        let mut moves = Vec::new();
        let mut loaded_dirs = BTreeSet::new();
        for part in &mut self.parts {
            if part.finished.is_empty() {
                continue;
            }
            loaded_dirs.insert(part.dir.clone());
            let id = fnv(part.hash, &settings.to_le_bytes());
            for (n, f) in part.finished.drain(..).enumerate() {
                let name = format!("part-{id:016x}-{n:05}.parquet");
                let rel = if part.dir.is_empty() {
                    name
                } else {
                    format!("{}/{name}", part.dir)
                };
                moves.push((f, rel, part.values.clone()));
            }
        }
        let mut files: Vec<DataFile> = match self.load.mode {
            LoadMode::Replace => Vec::new(),
            LoadMode::ReplacePartitions => self
                .old
                .files
                .iter()
                .filter(|f| !loaded_dirs.contains(f.dir()))
                .cloned()
                .collect(),
            _ => self.old.files.clone(),
        };
        let new_paths: HashSet<&str> = files
            .iter()
            .map(|f| f.path.as_str())
            .chain(moves.iter().map(|(_, rel, _)| rel.as_str()))
            .collect();
        let pending = PendingRecord {
            commit,
            adding: moves
                .iter()
                .map(|(_, rel, _)| rel.clone())
                .filter(|rel| !old_paths.contains(rel))
                .collect(),
            removing: self
                .old
                .files
                .iter()
                .map(|f| f.path.clone())
                .filter(|p| !new_paths.contains(p.as_str()))
                .collect(),
        };
        pending.write(&self.dir)?;
        let mut new_files = Vec::new();
        for (f, rel, values) in moves {
            let target = self.dir.join(&rel);
            if old_paths.contains(&rel) && target.exists() {
                // Same rows, schema and settings: the same bytes are
                // committed already; keep them untouched.
                std::fs::remove_file(&f.tmp)
                    .with_context(|| format!("cannot remove {}", f.tmp.display()))?;
            } else {
                // Synced when it was finished; its directory is synced below.
                std::fs::rename(&f.tmp, &target).with_context(|| {
                    format!(
                        "cannot move the new file into place at {}",
                        target.display()
                    )
                })?;
            }
            let bytes = std::fs::metadata(&target)
                .with_context(|| format!("cannot read {}", target.display()))?
                .len();
            new_files.push(DataFile {
                path: rel,
                partition: values,
                rows: f.rows,
                bytes,
            });
        }
        // The renames, and new partition directories in their parents,
        // are durable before the manifest that lists them.
        let mut dirs: BTreeSet<PathBuf> = new_files
            .iter()
            .filter_map(|f| self.dir.join(&f.path).parent().map(Path::to_path_buf))
            .collect();
        for created in &self.created_dirs {
            for parent in created.ancestors().skip(1) {
                dirs.insert(parent.to_path_buf());
                if parent == self.dir {
                    break;
                }
            }
        }
        sync_dirs(&dirs.iter().map(PathBuf::as_path).collect::<Vec<_>>());
        let added = new_files.len();
        files.extend(new_files);
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files.dedup_by(|a, b| a.path == b.path);
        let mut manifest = Manifest {
            commit,
            partition_by: self.specs.clone(),
            schema: self.schema.clone(),
            files,
            state: self.old.state.clone(),
        };
        let mut log = super::state::record(&mut manifest, changes)?;
        state::write_atomically(&manifest_path(&self.dir), manifest.to_text().as_bytes())?;
        // Committed. What the new manifest no longer lists goes now; a crash
        // here leaves files the pending record names, which the next load
        // removes.
        let mut removed = 0;
        for old in &pending.removing {
            let path = self.dir.join(old);
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "committed, but cannot remove the replaced {}",
                            path.display()
                        )
                    });
                }
            }
            let mut d = path.parent();
            while let Some(dir) = d {
                if dir == self.dir || std::fs::remove_dir(dir).is_err() {
                    break;
                }
                d = dir.parent();
            }
        }
        PendingRecord::remove(&self.dir)
            .context("committed, but cannot remove the pending record")?;
        log.insert(
            0,
            format!(
                "commit {commit} of {}: {added} files written in {} partitions, {removed} replaced files removed, {} files in the dataset",
                self.dir.display(),
                loaded_dirs.len(),
                manifest.files.len()
            ),
        );
        Ok(log)
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
        for (name, kind) in column_types(schema, sample) {
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
            self.dir.display(),
            columns.join(", ")
        )])
    }

    fn abort(mut self: Box<Self>) {
        self.remove_temps();
        if self.created_root {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        };
        let mut sink = Box::new(LakeSink::open(&ds, options, load).unwrap());
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
