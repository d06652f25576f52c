//! Writing a dataset: records go to one Parquet file per partition (more
//! when a file reaches `--file-size`), each written as a hidden temporary
//! file in its partition directory. The commit renames them into place,
//! then replaces the manifest, which is the moment the load becomes
//! visible; files the new manifest no longer lists are deleted after it.
//!
//! File names are `part-<id>-<n>.parquet`, where `<id>` is a fingerprint of
//! the partition's rows, the schema and the file settings (and, for an
//! append, the commit number): loading the same input again with
//! `replace` or `replace-partitions` names the same files with the same
//! bytes, so the file set stays identical and nothing is rewritten.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::manifest::{DataFile, MANIFEST, Manifest, manifest_path};
use super::partition::PartitionSpec;
use crate::error::{Failure, Kind};
use crate::files::parquet_writer::{ParquetFile, misfit};
use crate::files::sink::finish_file;
use crate::format::flat::{Fields, Raw};
use crate::format::typing::{column_types, type_of_value};
use crate::record::{FieldType, Schema};
use crate::sink::{LoadMode, Sink};
use crate::state::{self, FileLock, StateChanges, StateStore};

/// Files open for writing at once; past it the least recently used one is
/// finished and its partition's next rows start a new file.
const MAX_OPEN_FILES: usize = 64;

/// Bytes of rows held for row groups across all open files; past it the
/// largest buffer is written out as a (smaller) row group.
const MEMORY_BUDGET: usize = 48 << 20;

/// How to write a dataset.
#[derive(Debug, Clone)]
pub struct LakeOptions {
    /// The partition keys; `None` keeps the dataset's own (none for a new one).
    pub partition_by: Option<Vec<PartitionSpec>>,
    /// Append, Replace or ReplacePartitions.
    pub mode: LoadMode,
    /// Reject records with fields the dataset has no column for.
    pub strict: bool,
    /// Rows per row group.
    pub row_group_size: usize,
    /// A file is finished at the first row group that takes it past this.
    pub file_size: u64,
}

struct Writing {
    file: ParquetFile,
    tmp: PathBuf,
}

struct Finished {
    tmp: PathBuf,
    rows: u64,
}

struct Partition {
    /// Relative directory (`""` when unpartitioned).
    dir: String,
    values: Vec<(String, Option<String>)>,
    writing: Option<Writing>,
    finished: Vec<Finished>,
    /// Fingerprint of the rows, in order.
    hash: u64,
    /// When it last took a row (for closing the least recently used file).
    used: u64,
}

/// A dataset being loaded.
pub struct LakeSink {
    dir: PathBuf,
    options: LakeOptions,
    old: Manifest,
    specs: Vec<PartitionSpec>,
    schema: Schema,
    prepared: bool,
    index: HashMap<String, usize>,
    parts: Vec<Partition>,
    open_files: usize,
    buffered: usize,
    clock: u64,
    seq: u64,
    /// Partition directories this run created (removed again on abort when empty).
    created_dirs: Vec<PathBuf>,
    created_root: bool,
    _lock: FileLock,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Is this one of the files a load writes (`part-<16 hex>-<5 digits>.parquet`)?
fn is_part_name(name: &str) -> bool {
    let Some(rest) = name
        .strip_prefix("part-")
        .and_then(|r| r.strip_suffix(".parquet"))
    else {
        return false;
    };
    let Some((id, n)) = rest.split_once('-') else {
        return false;
    };
    id.len() == 16
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && n.len() == 5
        && n.bytes().all(|b| b.is_ascii_digit())
}

/// Temporary files start with this (hidden, and not `*.parquet`, so that
/// Hive-style readers and globs pass them over).
const TMP_PREFIX: &str = ".etl-tmp-";

/// Removes what a crashed run left: temporary files, part files no
/// manifest lists, and partition directories left empty. Only names a
/// load writes are touched; other files stay.
fn clean(dir: &Path, rel: &str, listed: &HashSet<&str>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let child = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let kind = entry.file_type()?;
        if kind.is_dir() && name.contains('=') && !name.starts_with(['.', '_']) {
            clean(&path, &child, listed)?;
            // Only succeeds when empty.
            let _ = std::fs::remove_dir(&path);
        } else if kind.is_file()
            && (name.starts_with(TMP_PREFIX)
                || (rel.is_empty() && name.starts_with(&format!("{MANIFEST}.tmp")))
                || (is_part_name(&name) && !listed.contains(child.as_str())))
        {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

fn value_of<'f, 'a>(fields: &'f Fields<'a>, name: &str) -> &'f Raw<'a> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map_or(&Raw::Null, |(_, v)| v)
}

impl LakeSink {
    /// Opens the dataset directory `dir` (created if missing) for a load:
    /// takes its lock, reads its manifest, removes what a crashed load left.
    pub fn open(dir: &Path, options: LakeOptions) -> Result<Self> {
        let created_root = !dir.exists();
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the dataset directory {}", dir.display()))?;
        let lock = state::lock_target(dir)?;
        let old = Manifest::read(dir)?.unwrap_or_default();
        if old.commit == 0 && !created_root {
            refuse_foreign(dir)?;
        }
        let specs = match &options.partition_by {
            Some(specs) => {
                if old.commit > 0 && *specs != old.partition_by && options.mode != LoadMode::Replace
                {
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
        let listed: HashSet<&str> = old.files.iter().map(|f| f.path.as_str()).collect();
        clean(dir, "", &listed)?;
        Ok(LakeSink {
            dir: dir.to_path_buf(),
            options,
            old,
            specs,
            schema: Vec::new(),
            prepared: false,
            index: HashMap::new(),
            parts: Vec::new(),
            open_files: 0,
            buffered: 0,
            clock: 0,
            seq: 0,
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

    /// Finishes the file partition `i` is writing, if any.
    fn close_file(&mut self, i: usize) -> Result<()> {
        let part = &mut self.parts[i];
        if let Some(w) = part.writing.take() {
            self.buffered = self.buffered.saturating_sub(w.file.buffered_bytes());
            self.open_files -= 1;
            let rows = w.file.finish()?;
            part.finished.push(Finished { tmp: w.tmp, rows });
        }
        Ok(())
    }

    fn start_file(&mut self, i: usize) -> Result<()> {
        if self.open_files >= MAX_OPEN_FILES
            && let Some(lru) = (0..self.parts.len())
                .filter(|&j| self.parts[j].writing.is_some())
                .min_by_key(|&j| self.parts[j].used)
        {
            self.close_file(lru)?;
        }
        let dir = self.dir.join(&self.parts[i].dir);
        if !dir.exists() {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            self.created_dirs.push(dir.clone());
        }
        self.seq += 1;
        let tmp = dir.join(format!("{TMP_PREFIX}{}-{}", std::process::id(), self.seq));
        let file = ParquetFile::create(&tmp, &self.file_columns(), self.options.row_group_size)?;
        self.parts[i].writing = Some(Writing { file, tmp });
        self.open_files += 1;
        Ok(())
    }

    fn partition_index(&mut self, values: Vec<(String, Option<String>)>) -> usize {
        let dir = self
            .specs
            .iter()
            .zip(&values)
            .map(|(spec, (_, v))| spec.component(v.as_deref()))
            .collect::<Vec<_>>()
            .join("/");
        if let Some(&i) = self.index.get(&dir) {
            return i;
        }
        self.parts.push(Partition {
            dir: dir.clone(),
            values,
            writing: None,
            finished: Vec::new(),
            hash: FNV_OFFSET,
            used: 0,
        });
        self.index.insert(dir, self.parts.len() - 1);
        self.parts.len() - 1
    }

    /// Writes the largest buffer out when the buffers together pass the budget.
    fn keep_to_budget(&mut self) -> Result<()> {
        if self.buffered < MEMORY_BUDGET {
            return Ok(());
        }
        let largest = self
            .parts
            .iter_mut()
            .filter_map(|p| p.writing.as_mut())
            .max_by_key(|w| w.file.buffered_bytes());
        if let Some(w) = largest {
            let before = w.file.buffered_bytes();
            w.file.flush_group()?;
            self.buffered = self.buffered.saturating_sub(before);
        }
        Ok(())
    }

    fn remove_temps(&mut self) {
        for part in &mut self.parts {
            if let Some(w) = part.writing.take() {
                let tmp = w.tmp;
                drop(w.file);
                let _ = std::fs::remove_file(tmp);
            }
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
        let append = self.options.mode == LoadMode::Append;
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
        let mut new_files = Vec::new();
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
                let target = self.dir.join(&rel);
                if old_paths.contains(&rel) && target.exists() {
                    // Same rows, schema and settings: the same bytes are
                    // committed already; keep them untouched.
                    std::fs::remove_file(&f.tmp)
                        .with_context(|| format!("cannot remove {}", f.tmp.display()))?;
                } else {
                    finish_file(&f.tmp, &target)?;
                }
                let bytes = std::fs::metadata(&target)
                    .with_context(|| format!("cannot read {}", target.display()))?
                    .len();
                new_files.push(DataFile {
                    path: rel,
                    partition: part.values.clone(),
                    rows: f.rows,
                    bytes,
                });
            }
        }
        // New partition directories are entries of their parents.
        for dir in &self.created_dirs {
            let mut d = dir.as_path();
            while let Some(parent) = d.parent() {
                std::fs::File::open(parent).and_then(|f| f.sync_all()).ok();
                if parent == self.dir {
                    break;
                }
                d = parent;
            }
        }
        let mut files: Vec<DataFile> = match self.options.mode {
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
        // here leaves files the next load removes.
        let kept: HashSet<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
        let mut removed = 0;
        for old in &self.old.files {
            if kept.contains(old.path.as_str()) {
                continue;
            }
            let path = self.dir.join(&old.path);
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

/// Refuses a directory that holds files but no manifest: it is not a
/// dataset etl-load wrote, and a load would mix its files with others.
fn refuse_foreign(dir: &Path) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with(TMP_PREFIX)
            || is_part_name(&name)
            || (entry.file_type()?.is_dir() && name.contains('=') && !name.starts_with(['.', '_']));
        if !ours {
            return Err(Failure::new(
                Kind::Usage,
                format!(
                    "{} holds {name:?} but no {MANIFEST}: it is not a dataset etl-load wrote",
                    dir.display()
                ),
            )
            .hint("name a new or empty directory")
            .into());
        }
    }
    Ok(())
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
        let mut columns: Schema = if self.options.mode == LoadMode::Replace {
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
            if fresh || !self.options.strict {
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
        for (name, value) in fields {
            if self.schema.iter().any(|(n, _)| n == name)
                || new_columns.iter().any(|(n, _)| n == name)
            {
                continue;
            }
            if self.options.strict {
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
                Ok(v) => values.push((spec.key(), v)),
                Err(reason) => return Ok(Err(reason)),
            }
        }
        for (name, kind) in &self.schema {
            if let Some(reason) = misfit(name, *kind, value_of(fields, name)) {
                return Ok(Err(reason));
            }
        }
        if !new_columns.is_empty() {
            // A Parquet file's columns are fixed: files in progress end here
            // and the next ones carry the new columns.
            self.schema.extend(new_columns);
            for i in 0..self.parts.len() {
                self.close_file(i)?;
            }
        }
        let i = self.partition_index(values);
        if self.parts[i].writing.is_none() {
            self.start_file(i)?;
        }
        self.clock += 1;
        let file_size = self.options.file_size;
        let part = &mut self.parts[i];
        part.used = self.clock;
        part.hash = fnv(fnv(part.hash, line), b"\n");
        let w = part.writing.as_mut().expect("a file was started above");
        let before = w.file.buffered_bytes();
        w.file.push(fields)?;
        let after = w.file.buffered_bytes();
        let full = w.file.written_bytes() >= file_size;
        self.buffered = self.buffered.saturating_sub(before) + after;
        if full {
            self.close_file(i)?;
        }
        self.keep_to_budget()?;
        Ok(Ok(()))
    }

    fn commit_point(&mut self, _changes: &StateChanges) -> Result<()> {
        bail!("a dataset commits once per run; --commit segment needs a database target")
    }

    fn commit(mut self: Box<Self>, changes: &StateChanges) -> Result<Vec<String>> {
        if !self.prepared {
            self.prepare(&Vec::new(), &[])?;
        }
        let result = (0..self.parts.len())
            .try_for_each(|i| self.close_file(i))
            .and_then(|()| self.publish(changes));
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
    fn part_names_are_recognised_exactly() {
        assert!(is_part_name("part-0123456789abcdef-00000.parquet"));
        assert!(!is_part_name("part-0123456789abcdef-0.parquet"));
        assert!(!is_part_name("part-00000-uuid.snappy.parquet"));
        assert!(!is_part_name("notes.txt"));
    }
}
