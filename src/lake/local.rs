//! A dataset in a local (or mounted) directory: a load holds the
//! directory's lock from start to commit; files are written as hidden
//! temporary files in their partition directories, renamed into place
//! after the pending record names them (`leftovers.rs`), and the manifest
//! is replaced atomically (a temporary file renamed over it). Files the
//! new manifest no longer lists are deleted right after the commit: a
//! reader holds the files it reads open, and an open file outlives its
//! deletion.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::leftovers::{self, PendingRecord};
use super::manifest::{DataFile, Manifest, manifest_path};
use super::sink::sync_dirs;
use super::storage::{Commit, Storage, Version};
use crate::atomic_file::{FileLock, lock_target, write_atomically};
use crate::parquet_io::reader::ParquetSource;

/// A dataset directory.
pub struct LocalDir {
    dir: PathBuf,
    /// Held by a load from its start to its commit.
    lock: Option<FileLock>,
    /// Partition directories this load created (removed again on abort when empty).
    created_dirs: Vec<PathBuf>,
    created_root: bool,
}

impl LocalDir {
    /// The directory `dir`, for reading.
    pub fn reader(dir: &Path) -> LocalDir {
        LocalDir {
            dir: dir.to_path_buf(),
            lock: None,
            created_dirs: Vec::new(),
            created_root: false,
        }
    }

    /// The directory `dir` (created if missing), locked for a load.
    pub fn for_load(dir: &Path) -> Result<LocalDir> {
        let created_root = !dir.exists();
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the dataset directory {}", dir.display()))?;
        let lock = lock_target(dir)?;
        Ok(LocalDir {
            lock: Some(lock),
            created_root,
            ..LocalDir::reader(dir)
        })
    }
}

impl Storage for LocalDir {
    fn shown(&self) -> String {
        self.dir.display().to_string()
    }

    fn read(&self) -> Result<(Option<Manifest>, Version)> {
        let manifest = Manifest::read(&self.dir)?;
        let version = if manifest.is_some() {
            Version::Locked
        } else {
            Version::Absent
        };
        Ok((manifest, version))
    }

    fn open_file(&self, file: &DataFile, name: &str) -> Result<ParquetSource> {
        let handle = File::open(self.dir.join(&file.path))?;
        ParquetSource::from_file(handle, name.to_string())
    }

    fn file_shown(&self, rel: &str) -> String {
        self.dir.join(rel).display().to_string()
    }

    fn unlisted(&self, manifest: &Manifest) -> Result<(usize, Option<String>)> {
        leftovers::unlisted_data_files(&self.dir, manifest)
    }

    fn prepare(&mut self, manifest: Option<&Manifest>) -> Result<()> {
        // Everything is checked before anything is removed.
        leftovers::audit(&self.dir, manifest)?.remove(&self.dir)?;
        Ok(())
    }

    fn scratch(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn temp_dir(&mut self, rel: &str) -> Result<PathBuf> {
        let dir = self.dir.join(rel);
        if !dir.exists() {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            self.created_dirs.push(dir.clone());
        }
        Ok(dir)
    }

    fn file_name(&self, id: u64, n: usize) -> String {
        format!("part-{id:016x}-{n:05}.parquet")
    }

    fn place(&mut self, files: &[(PathBuf, String)], pending: &PendingRecord) -> Result<Vec<u64>> {
        pending.write(&self.dir)?;
        let mut sizes = Vec::with_capacity(files.len());
        for (tmp, rel) in files {
            let target = self.dir.join(rel);
            if !pending.adding.contains(rel) && target.exists() {
                // Same rows, schema and settings: the same bytes are
                // committed already; keep them untouched.
                std::fs::remove_file(tmp)
                    .with_context(|| format!("cannot remove {}", tmp.display()))?;
            } else {
                // Synced when it was finished; its directory is synced below.
                std::fs::rename(tmp, &target).with_context(|| {
                    format!(
                        "cannot move the new file into place at {}",
                        target.display()
                    )
                })?;
            }
            sizes.push(
                std::fs::metadata(&target)
                    .with_context(|| format!("cannot read {}", target.display()))?
                    .len(),
            );
        }
        // The renames, and new partition directories in their parents,
        // are durable before the manifest that lists them.
        let mut dirs: BTreeSet<PathBuf> = files
            .iter()
            .filter_map(|(_, rel)| self.dir.join(rel).parent().map(Path::to_path_buf))
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
        Ok(sizes)
    }

    fn commit(&mut self, manifest: &Manifest, _base: &Version) -> Result<Commit> {
        // The lock keeps every other load out: the base is what is there.
        write_atomically(&manifest_path(&self.dir), manifest.to_text().as_bytes())?;
        Ok(Commit::Done)
    }

    fn tidy(&mut self, _manifest: &Manifest, replaced: &[String]) -> Result<usize> {
        // A crash here leaves files the pending record names, which the
        // next load removes.
        let mut removed = 0;
        for old in replaced {
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
        Ok(removed)
    }

    fn abort(&mut self) {
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
        if self.created_root && self.lock.is_some() {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }

    fn record_failed_run(&mut self, run: &crate::runs::RunRecord) -> Result<()> {
        let _lock = lock_target(&self.dir)?;
        let Some(mut manifest) = Manifest::read(&self.dir)? else {
            return Ok(());
        };
        crate::state_document::push_run(&mut manifest.state, run);
        write_atomically(&manifest_path(&self.dir), manifest.to_text().as_bytes())
    }
}
