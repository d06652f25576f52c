//! A dataset commit's publishing step, once every file is written: name
//! the files by their fingerprints, record what the commit is about to do
//! (the pending record, `leftovers.rs`), rename the files into place, sync
//! their directories, replace the manifest (the moment the load becomes
//! visible) and delete what the new manifest no longer lists.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::write::sync_dirs;
use super::{FNV_OFFSET, LakeSink, fnv};
use crate::atomic_file::write_atomically;
use crate::lake::leftovers::PendingRecord;
use crate::lake::manifest::{DataFile, Manifest, manifest_path};
use crate::sink::LoadMode;
use crate::state::StateChanges;

impl LakeSink {
    /// The commit itself, after every file is finished.
    pub(super) fn publish(&mut self, changes: &StateChanges) -> Result<Vec<String>> {
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
        let mut log = crate::lake::state::record(&mut manifest, changes)?;
        write_atomically(&manifest_path(&self.dir), manifest.to_text().as_bytes())?;
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
