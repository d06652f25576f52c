//! A dataset commit's publishing step, once every file is written: name
//! the files by their fingerprints, put them into the dataset unlisted
//! (a directory first records them in its pending record, `leftovers.rs`,
//! then renames them into place; a bucket uploads them), write the
//! manifest (the moment the load becomes visible) and let the storage
//! remove what may go.
//!
//! A commit on object storage may lose to another load's (the manifest
//! changed since this load read it). The load then reads the new manifest
//! and commits again on it, as if it had run after the winner, when that
//! is safe: the same partitioning, no column of another type, none of its
//! batch ids committed meanwhile, and no bookmark of its streams moved
//! meanwhile. Append adds its files to the winner's; replace-partitions
//! replaces the partitions it loaded (the winner's files there too);
//! replace replaces everything. Otherwise it fails, naming why, and the
//! winner's commit stands.

use std::collections::{BTreeSet, HashSet};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};

use super::{FNV_OFFSET, LakeSink, fnv};
use crate::error::{Failure, Kind};
use crate::lake::leftovers::PendingRecord;
use crate::lake::manifest::{DataFile, Manifest};
use crate::lake::storage::Commit;
use crate::sink::LoadMode;
use crate::state::StateChanges;
use crate::state_document::{batch_in, bookmark_in};

/// How many times a commit that lost is tried again on the new manifest.
const ATTEMPTS: usize = 50;

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
        // Names first: the pending record lists them before any is placed.
        let mut moves = Vec::new();
        let mut loaded_dirs = BTreeSet::new();
        for part in &mut self.parts {
            if part.finished.is_empty() {
                continue;
            }
            loaded_dirs.insert(part.dir.clone());
            let id = fnv(part.hash, &settings.to_le_bytes());
            for (n, f) in part.finished.drain(..).enumerate() {
                let name = self.storage.file_name(id, n);
                let rel = if part.dir.is_empty() {
                    name
                } else {
                    format!("{}/{name}", part.dir)
                };
                moves.push((f, rel, part.values.clone()));
            }
        }
        let kept = kept_files(&self.old, self.load.mode, &loaded_dirs);
        let new_paths: HashSet<&str> = kept
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
        let placing: Vec<_> = moves
            .iter()
            .map(|(f, rel, _)| (f.tmp.clone(), rel.clone()))
            .collect();
        let sizes = self.storage.place(&placing, &pending)?;
        let new_files: Vec<DataFile> = moves
            .into_iter()
            .zip(sizes)
            .map(|((f, rel, values), bytes)| DataFile {
                path: rel,
                partition: values,
                rows: f.rows,
                bytes,
            })
            .collect();
        let added = new_files.len();
        let mut attempt = 0;
        let (manifest, mut log) = loop {
            let mut files = kept_files(&self.old, self.load.mode, &loaded_dirs);
            files.extend(new_files.iter().cloned());
            files.sort_by(|a, b| a.path.cmp(&b.path));
            files.dedup_by(|a, b| a.path == b.path);
            let dropped = match self.storage.keep_dropped() {
                Some(age) => dropped_files(&self.old, &files, age),
                None => Vec::new(),
            };
            let mut manifest = Manifest {
                commit: self.old.commit + 1,
                partition_by: self.specs.clone(),
                schema: self.schema.clone(),
                files,
                state: self.old.state.clone(),
                dropped,
            };
            let log = crate::lake::state::record(&mut manifest, changes)?;
            if self.storage.commit(&manifest, &self.version)? == Commit::Done {
                break (manifest, log);
            }
            attempt += 1;
            if attempt >= ATTEMPTS {
                bail!(
                    "{}: other loads committed first {ATTEMPTS} times in a row; nothing was committed by this one",
                    self.storage.shown()
                );
            }
            self.rebase(changes)?;
            // A little wait, different for each load, so that racing
            // loads do not keep meeting.
            let jitter = u64::from(std::process::id() % 7) + attempt as u64 * 3;
            std::thread::sleep(std::time::Duration::from_millis(jitter.min(100)));
        };
        let removed = self.storage.tidy(&manifest, &pending.removing)?;
        let retried = if attempt > 0 {
            format!(" (attempt {}: other loads committed first)", attempt + 1)
        } else {
            String::new()
        };
        log.insert(
            0,
            format!(
                "commit {} of {}: {added} files written in {} partitions, {removed} replaced files removed, {} files in the dataset{retried}",
                manifest.commit,
                self.storage.shown(),
                loaded_dirs.len(),
                manifest.files.len()
            ),
        );
        Ok(log)
    }

    /// Another load committed first: takes its manifest as the base of
    /// this commit, or fails when committing on it is not safe.
    fn rebase(&mut self, changes: &StateChanges) -> Result<()> {
        let (manifest, version) = self.storage.read()?;
        let refuse = |why: String| -> anyhow::Error {
            Failure::new(
                Kind::Runtime,
                format!("another load committed first, and {why}; its commit stands"),
            )
            .hint("run this load again: it starts from the dataset as it is now (a batch committed meanwhile is skipped)")
            .into()
        };
        let Some(manifest) = manifest else {
            return Err(refuse("then the manifest was removed".into()));
        };
        // A replace re-partitions the whole dataset; any other load keeps
        // the partitioning it started from.
        if manifest.partition_by != self.specs && self.load.mode != LoadMode::Replace {
            return Err(refuse(
                "its partitioning differs from this load's".to_string(),
            ));
        }
        for (stream, id) in &changes.batches {
            if batch_in(&manifest.state, stream, id) && !batch_in(&self.old.state, stream, id) {
                return Err(refuse(format!(
                    "it committed batch {id:?} of stream {stream:?}, which this load holds too"
                )));
            }
        }
        for end in &changes.ends {
            if bookmark_in(&manifest.state, &end.stream)
                != bookmark_in(&self.old.state, &end.stream)
            {
                return Err(refuse(format!(
                    "it moved the bookmark of stream {:?}, which this load started from",
                    end.stream
                )));
            }
        }
        let mut schema = manifest.schema.clone();
        if self.load.mode != LoadMode::Replace {
            for (name, kind) in &self.schema {
                match schema.iter().find(|(n, _)| n == name) {
                    Some((_, theirs)) if theirs != kind => {
                        return Err(refuse(format!(
                            "it gave column {name:?} the type {}, where this load's is {}",
                            theirs.name(),
                            kind.name()
                        )));
                    }
                    Some(_) => {}
                    None => schema.push((name.clone(), *kind)),
                }
            }
            self.schema = schema;
        }
        self.old = manifest;
        self.version = version;
        Ok(())
    }
}

/// What a commit listing `files` names as dropped: the files of `old` it
/// stops listing, from now, and those `old` names that were dropped less
/// than `age` ago and are not listed again. Once older, a file is named no
/// more, and the next load deletes it (`s3.rs`).
fn dropped_files(old: &Manifest, files: &[DataFile], age: Duration) -> Vec<(String, i64)> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let age = age.as_secs() as i64;
    let listed: HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let mut dropped: Vec<(String, i64)> = old
        .dropped
        .iter()
        .cloned()
        .chain(old.files.iter().map(|f| (f.path.clone(), now)))
        .filter(|(path, at)| now - at < age && !listed.contains(path.as_str()))
        .collect();
    // The latest time of a path first: dedup keeps it.
    dropped.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    dropped.dedup_by(|a, b| a.0 == b.0);
    dropped
}

/// The committed files a load of `mode` keeps, given the partition
/// directories it loaded.
fn kept_files(old: &Manifest, mode: LoadMode, loaded_dirs: &BTreeSet<String>) -> Vec<DataFile> {
    match mode {
        LoadMode::Replace => Vec::new(),
        LoadMode::ReplacePartitions => old
            .files
            .iter()
            .filter(|f| !loaded_dirs.contains(f.dir()))
            .cloned()
            .collect(),
        _ => old.files.clone(),
    }
}
