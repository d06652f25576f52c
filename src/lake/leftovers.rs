//! What a load may delete in a dataset directory, and what it must refuse.
//!
//! A load removes only what it can prove is an uncommitted leftover of an
//! earlier load of this dataset:
//! - temporary files (`.etl-tmp-*`, and the manifest's and the pending
//!   record's own `*.tmp<pid>` files), which carry a name no other tool
//!   writes and which no reader is meant to read;
//! - files named by the pending record, `_etl_pending.json`, that the
//!   manifest does not list. A load writes that record (atomically) before
//!   it renames its new files into place, naming them and the files its
//!   commit will replace, and removes it once the replaced files are gone.
//!   So a load killed after the renames but before its commit leaves
//!   files the record names and the manifest does not list, and one killed
//!   after its commit leaves replaced files the record names.
//!
//! Anything else that a reader of the directory would take for data is
//! refused, never cleaned: data files with no manifest (a lost manifest, or
//! a directory another tool wrote, such as DuckDB's or Spark's Hive
//! layout), and Parquet files the manifest does not list. Other files
//! beside a manifest (notes, `_SUCCESS`) are left alone.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::manifest::{MANIFEST, Manifest};
use crate::error::{Failure, Kind};

/// The pending record's file name inside the dataset directory.
pub const PENDING: &str = "_etl_pending.json";

/// Temporary files start with this (hidden, and not `*.parquet`, so that
/// Hive-style readers and globs pass them over).
pub const TMP_PREFIX: &str = ".etl-tmp-";

/// What a load is about to do, written before its files are renamed into place.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PendingRecord {
    /// The commit number the load will make.
    pub commit: u64,
    /// Files (relative paths) the load renames into place.
    pub adding: Vec<String>,
    /// Files the commit no longer lists, removed after it.
    pub removing: Vec<String>,
}

impl PendingRecord {
    /// Reads the pending record of `dir`; `None` when there is none.
    pub fn read(dir: &Path) -> Result<Option<PendingRecord>> {
        let path = dir.join(PENDING);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let parse = || -> Result<PendingRecord> {
            let doc: Value = serde_json::from_str(&text).context("not valid JSON")?;
            if doc.get("format").and_then(Value::as_str) != Some("etlkit-lake-pending")
                || doc.get("version").and_then(Value::as_u64) != Some(1)
            {
                bail!("not a version 1 etlkit pending record");
            }
            let list = |key: &str| -> Result<Vec<String>> {
                doc.get(key)
                    .and_then(Value::as_array)
                    .with_context(|| format!("no {key:?} list"))?
                    .iter()
                    .map(|v| {
                        let p = v.as_str().context("a path is not text")?;
                        super::manifest::check_relative(p)?;
                        Ok(p.to_string())
                    })
                    .collect()
            };
            Ok(PendingRecord {
                commit: doc.get("commit").and_then(Value::as_u64).unwrap_or(0),
                adding: list("adding")?,
                removing: list("removing")?,
            })
        };
        parse().map(Some).map_err(|err| {
            Failure::new(
                Kind::Runtime,
                format!(
                    "{} is damaged ({err:#}): etl-load cannot tell which files an interrupted load left",
                    path.display()
                ),
            )
            .hint("check the dataset's files against its manifest, then remove the record")
            .into()
        })
    }

    /// Writes the record (atomically, synced) before any file is renamed.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let doc = json!({
            "format": "etlkit-lake-pending",
            "version": 1,
            "commit": self.commit,
            "adding": self.adding,
            "removing": self.removing,
        });
        crate::atomic_file::write_atomically(&dir.join(PENDING), format!("{doc}\n").as_bytes())
    }

    /// Removes the record once everything it names is settled.
    pub fn remove(dir: &Path) -> Result<()> {
        let path = dir.join(PENDING);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
    }
}

/// Is `name` a partition directory (`key=value`, not hidden)?
pub fn is_partition_dir(name: &str) -> bool {
    name.contains('=') && !name.starts_with(['.', '_'])
}

/// What the audit of a dataset directory found to remove.
#[derive(Debug, Default)]
pub struct Leftovers {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
    pending: bool,
}

/// Walks the dataset directory `dir` (which has `manifest`, or none yet)
/// and sorts what is in it: listed files stay, provable leftovers are
/// collected for [`Leftovers::remove`], anything else refuses the load.
/// Nothing is removed here.
pub fn audit(dir: &Path, manifest: Option<&Manifest>) -> Result<Leftovers> {
    let pending = PendingRecord::read(dir)?;
    let listed: HashSet<&str> = manifest
        .map(|m| m.files.iter().map(|f| f.path.as_str()).collect())
        .unwrap_or_default();
    let ours: HashSet<&str> = pending
        .iter()
        .flat_map(|p| p.adding.iter().chain(&p.removing))
        .map(String::as_str)
        .filter(|p| !listed.contains(p))
        .collect();
    let mut audit = Audit {
        manifest: manifest.is_some(),
        listed: &listed,
        ours: &ours,
        found: Leftovers {
            pending: pending.is_some(),
            ..Leftovers::default()
        },
        foreign: Vec::new(),
    };
    audit.walk(dir, "")?;
    if let Some(first) = audit.foreign.first() {
        let others = match audit.foreign.len() - 1 {
            0 => String::new(),
            1 => " and 1 other entry".to_string(),
            n => format!(" and {n} other entries"),
        };
        let err = if manifest.is_some() {
            Failure::new(
                Kind::Runtime,
                format!(
                    "{} holds {first:?}{others}, which its {MANIFEST} does not list and no interrupted load wrote: \
                     etl-load neither adopts nor deletes files it cannot account for; nothing was loaded",
                    dir.display()
                ),
            )
            .hint("move such files out of the dataset (etl-extract reads only the listed files), or restore the manifest entries that list them")
        } else {
            Failure::new(
                Kind::Usage,
                format!(
                    "{} holds {first:?}{others} but no {MANIFEST}: it is not a dataset etl-load wrote \
                     (or its manifest is lost), and etl-load neither adopts nor deletes files it cannot account for",
                    dir.display()
                ),
            )
            .hint("name a new or empty directory; a dataset whose manifest was lost needs its _etl_manifest.json restored")
        };
        return Err(err.into());
    }
    Ok(audit.found)
}

struct Audit<'a> {
    manifest: bool,
    listed: &'a HashSet<&'a str>,
    ours: &'a HashSet<&'a str>,
    found: Leftovers,
    foreign: Vec<String>,
}

impl Audit<'_> {
    fn walk(&mut self, dir: &Path, rel: &str) -> Result<()> {
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .map(|e| e.with_context(|| format!("cannot list {}", dir.display())))
            .collect::<Result<Vec<_>>>()?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let kind = entry
                .file_type()
                .with_context(|| format!("cannot read {}", path.display()))?;
            if kind.is_dir() && is_partition_dir(&name) {
                self.walk(&path, &child)?;
                self.found.dirs.push(path);
                continue;
            }
            let root = rel.is_empty();
            if kind.is_file()
                && (name.starts_with(TMP_PREFIX)
                    || (root
                        && (name.starts_with(&format!("{MANIFEST}.tmp"))
                            || name.starts_with(&format!("{PENDING}.tmp")))))
            {
                self.found.files.push(path);
            } else if root && (name == MANIFEST || name == PENDING) {
                // Read above.
            } else if self.listed.contains(child.as_str()) {
                // Committed.
            } else if self.ours.contains(child.as_str()) {
                self.found.files.push(path);
            } else if !self.manifest || is_data_file(&name) {
                self.foreign.push(child);
            }
        }
        Ok(())
    }
}

/// A file a reader of the directory takes for data (they skip names
/// starting with `.` or `_`).
fn is_data_file(name: &str) -> bool {
    !name.starts_with(['.', '_']) && name.to_ascii_lowercase().ends_with(".parquet")
}

impl Leftovers {
    /// Removes the leftovers, then partition directories left empty, then
    /// the pending record that proved them ours. Returns how many files went.
    pub fn remove(self, dir: &Path) -> Result<usize> {
        for file in &self.files {
            match std::fs::remove_file(file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot remove {}", file.display()));
                }
            }
        }
        // Deepest first (the walk lists a directory after its children);
        // only an empty one goes.
        for d in &self.dirs {
            let _ = std::fs::remove_dir(d);
        }
        if self.pending {
            PendingRecord::remove(dir)?;
        }
        Ok(self.files.len())
    }
}

/// Unlisted Parquet files in a dataset that a reader of the directory
/// would see and etl-extract does not read (files a load in progress has
/// renamed into place, named by its pending record, are not counted).
/// Returns how many there are and the first one.
pub fn unlisted_data_files(dir: &Path, manifest: &Manifest) -> Result<(usize, Option<String>)> {
    let pending = PendingRecord::read(dir).ok().flatten();
    let listed: HashSet<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    let ours: HashSet<&str> = pending
        .iter()
        .flat_map(|p| p.adding.iter().chain(&p.removing))
        .map(String::as_str)
        .collect();
    let mut found = (0, None);
    walk_data(dir, "", &mut |rel| {
        if !listed.contains(rel) && !ours.contains(rel) {
            found.0 += 1;
            if found.1.is_none() {
                found.1 = Some(rel.to_string());
            }
        }
    })?;
    Ok(found)
}

fn walk_data(dir: &Path, rel: &str, seen: &mut impl FnMut(&str)) -> Result<()> {
    let mut entries = match std::fs::read_dir(dir) {
        Ok(e) => e
            .map(|e| e.with_context(|| format!("cannot list {}", dir.display())))
            .collect::<Result<Vec<_>>>()?,
        // A partition removed by a load meanwhile.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() && is_partition_dir(&name) {
            walk_data(&entry.path(), &child, seen)?;
        } else if kind.is_file() && is_data_file(&name) {
            seen(&child);
        }
    }
    Ok(())
}
