//! A dataset under a prefix of an S3 bucket (`s3://bucket/lake/orders`).
//! Object storage has no rename and no lock, so the commit is built on
//! two guarantees it does have: a write is atomic (an object is all old
//! or all new), and a write can be conditional on the object's current
//! version (`If-None-Match: *`: only if absent; `If-Match: ETAG`: only if
//! unchanged).
//!
//! - Data files are uploaded first, each under a name no other load uses
//!   (`part-<fingerprint>-<n>-<load id>.parquet`), created only if absent:
//!   an object is never overwritten.
//! - The commit is one conditional write of `_etl_manifest.json` (the
//!   same document as a directory's): created only if absent for the
//!   first commit, else only if its ETag is still the one this load read.
//!   Every manifest has a higher commit number than the one before, so
//!   an ETag (a digest of the bytes) never comes back: a load that read
//!   an older manifest cannot write over a newer one.
//! - A load that loses (412 Precondition Failed) writes nothing; the sink
//!   reads the new manifest and commits again on it where that is safe
//!   (`sink/publish.rs`).
//! - Readers read only what the manifest lists. Files no manifest lists
//!   (a killed load's, a losing load's, the files a replace dropped) are
//!   deleted by a later load once they are older than [`clean_after`]
//!   (an hour): long enough for a load to commit the files it uploaded.
//!   The files a commit stops listing are named in its manifest's
//!   `dropped`, with the time, and kept that long after it, however old:
//!   a reader that read the manifest before may still be reading them.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use super::leftovers::PendingRecord;
use super::manifest::{DataFile, MANIFEST, Manifest};
use super::storage::{Commit, Storage, Version};
use crate::client::s3::multipart::Upload;
use crate::client::s3::read::ObjectRanges;
use crate::client::s3::{Client, Condition, Refusal};
use crate::parquet_io::reader::ParquetSource;

/// Unlisted files younger than this are left alone (seconds); the
/// variable `ETLKIT_LAKE_CLEAN_AFTER` sets another age.
const CLEAN_AFTER: u64 = 3600;

/// Threads uploading a commit's files.
const UPLOADERS: usize = 4;

/// How old an unlisted file must be before a load deletes it.
pub fn clean_after() -> Duration {
    Duration::from_secs(
        std::env::var("ETLKIT_LAKE_CLEAN_AFTER")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(CLEAN_AFTER),
    )
}

/// A dataset on S3.
pub struct S3Dataset {
    client: Client,
    /// The dataset's key prefix, without its trailing `/`.
    prefix: String,
    /// A load's local directory for its spill and files before upload.
    spool: Option<PathBuf>,
    /// Part of every file name this load uploads.
    load_id: String,
    /// Keys this load uploaded that no commit lists yet.
    placed: Vec<String>,
    /// When the first upload started.
    started: Option<Instant>,
    /// A commit request went out and its outcome is unknown: its files
    /// may be listed, so they are not deleted.
    unsure: bool,
}

impl S3Dataset {
    /// The dataset at `prefix` of `client`'s bucket, for reading.
    pub fn reader(client: Client, prefix: &str) -> S3Dataset {
        S3Dataset {
            client,
            prefix: prefix.trim_end_matches('/').to_string(),
            spool: None,
            load_id: String::new(),
            placed: Vec::new(),
            started: None,
            unsure: false,
        }
    }

    /// The dataset, for a load (with a local spool directory; those that
    /// killed loads left are removed first).
    pub fn for_load(client: Client, prefix: &str) -> Result<S3Dataset> {
        remove_dead_spools(&std::env::temp_dir());
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let random =
            std::collections::hash_map::RandomState::new().hash_one((nanos, std::process::id()));
        let spool = std::env::temp_dir().join(format!(
            "etl-load-{}-{random:016x}.lake",
            std::process::id()
        ));
        std::fs::create_dir(&spool)
            .with_context(|| format!("cannot create a spool directory {}", spool.display()))?;
        let mut dataset = S3Dataset::reader(client, prefix);
        dataset.spool = Some(spool);
        dataset.load_id = format!("{random:016x}");
        Ok(dataset)
    }

    fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }

    fn manifest_key(&self) -> String {
        self.key(MANIFEST)
    }

    fn upload(&self, tmp: &Path, key: &str) -> Result<u64> {
        let mut file =
            std::fs::File::open(tmp).with_context(|| format!("cannot read {}", tmp.display()))?;
        let mut upload = Upload::new(&self.client, key);
        let bytes = io::copy(&mut file, &mut upload)
            .with_context(|| format!("cannot upload {}", self.client.shown(Some(key))))?;
        upload.finish(&Condition::Absent)?;
        Ok(bytes)
    }

    /// Deletes this load's uploads (only when no commit may list them).
    fn delete_placed(&mut self) {
        if self.unsure {
            return;
        }
        for key in std::mem::take(&mut self.placed) {
            let _ = self.client.delete(&key);
        }
    }
}

/// Is `name` a data file name an etlkit load gives
/// (`part-<16 hex>-<5 digits>-<16 hex>.parquet`)? Only such files are
/// ever deleted: another tool's files under the prefix are left alone.
fn is_ours(name: &str) -> bool {
    let Some(stem) = name
        .strip_prefix("part-")
        .and_then(|n| n.strip_suffix(".parquet"))
    else {
        return false;
    };
    let parts: Vec<&str> = stem.split('-').collect();
    let hex = |p: &str| p.len() == 16 && p.bytes().all(|b| b.is_ascii_hexdigit());
    matches!(parts.as_slice(), [id, n, load] if hex(id) && hex(load) && n.len() == 5 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes the spool directories (`etl-load-<pid>-<id>.lake`) of loads
/// whose process is gone (a killed load's; where `/proc` tells).
fn remove_dead_spools(dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("etl-load-")
            .and_then(|rest| rest.strip_suffix(".lake"))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for S3Dataset {
    fn drop(&mut self) {
        if let Some(spool) = &self.spool {
            let _ = std::fs::remove_dir_all(spool);
        }
    }
}

/// Is this refusal a lost condition (the object changed, or appeared)?
fn lost(refusal: &Refusal) -> bool {
    matches!(
        refusal,
        Refusal::Refused {
            status: 412 | 409,
            ..
        }
    )
}

impl Storage for S3Dataset {
    fn shown(&self) -> String {
        self.client.shown(Some(&self.prefix))
    }

    fn read(&self) -> Result<(Option<Manifest>, Version)> {
        let key = self.manifest_key();
        let response = match self.client.get(&key, 0, None, None) {
            Ok(r) => r,
            Err(Refusal::Refused { code, .. }) if code == "NoSuchKey" => {
                return Ok((None, Version::Absent));
            }
            Err(refusal) => return Err(self.client.error("cannot read", Some(&key), refusal)),
        };
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = response
            .into_body()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .with_context(|| format!("cannot read {}", self.client.shown(Some(&key))))?;
        if etag.is_empty() {
            bail!(
                "{}: the server gave no ETag, which a commit on object storage needs",
                self.client.shown(Some(&key))
            );
        }
        let manifest = Manifest::from_text(&text, &self.client.shown(Some(&key)))?;
        Ok((Some(manifest), Version::Tag(etag)))
    }

    fn open_file(&self, file: &DataFile, name: &str) -> Result<ParquetSource> {
        // Never overwritten: any version is the one the manifest lists.
        let ranges = ObjectRanges::new(&self.client, &self.key(&file.path), file.bytes, None);
        ParquetSource::from_ranges(Box::new(ranges), name.to_string())
    }

    fn file_shown(&self, rel: &str) -> String {
        self.client.shown(Some(&self.key(rel)))
    }

    fn unlisted(&self, manifest: &Manifest) -> Result<(usize, Option<String>)> {
        let listed: HashSet<String> = manifest.files.iter().map(|f| self.key(&f.path)).collect();
        let mut found = (0, None);
        for object in self.client.list(&format!("{}/", self.prefix))? {
            if object.key.ends_with(".parquet") && !listed.contains(&object.key) {
                found.0 += 1;
                found.1.get_or_insert(object.key);
            }
        }
        Ok(found)
    }

    fn prepare(&mut self, _manifest: Option<&Manifest>) -> Result<()> {
        Ok(())
    }

    fn scratch(&self, name: &str) -> PathBuf {
        self.spool
            .as_deref()
            .unwrap_or_else(|| Path::new("."))
            .join(name)
    }

    fn temp_dir(&mut self, _dir: &str) -> Result<PathBuf> {
        self.spool
            .clone()
            .context("a dataset opened for reading cannot be written")
    }

    fn file_name(&self, id: u64, n: usize) -> String {
        format!("part-{id:016x}-{n:05}-{}.parquet", self.load_id)
    }

    fn place(&mut self, files: &[(PathBuf, String)], _pending: &PendingRecord) -> Result<Vec<u64>> {
        self.started.get_or_insert_with(Instant::now);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let sizes = Mutex::new(vec![None; files.len()]);
        let failed = Mutex::new(None);
        let this = &*self;
        std::thread::scope(|scope| {
            for _ in 0..UPLOADERS.min(files.len()) {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((tmp, rel)) = files.get(i) else {
                            break;
                        };
                        match this.upload(tmp, &this.key(rel)) {
                            Ok(n) => {
                                let _ = std::fs::remove_file(tmp);
                                sizes.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(n);
                            }
                            Err(err) => {
                                failed
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .get_or_insert(err);
                                break;
                            }
                        }
                    }
                });
            }
        });
        let sizes = sizes.into_inner().unwrap_or_else(|e| e.into_inner());
        for (i, size) in sizes.iter().enumerate() {
            if size.is_some() {
                self.placed.push(self.key(&files[i].1));
            }
        }
        if let Some(err) = failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(err);
        }
        Ok(sizes.into_iter().map(Option::unwrap_or_default).collect())
    }

    fn commit(&mut self, manifest: &Manifest, base: &Version) -> Result<Commit> {
        // (An age of 0, for tests, deletes every unlisted file at once:
        // no load may run beside such a one.)
        let limit = clean_after() / 2;
        if !limit.is_zero() && self.started.is_some_and(|t| t.elapsed() > limit) {
            bail!(
                "{}: this load's files were uploaded more than {} s ago, and a later load may delete unlisted files older than {} s; nothing was committed",
                self.shown(),
                limit.as_secs(),
                clean_after().as_secs()
            );
        }
        let condition = match base {
            Version::Absent => Condition::Absent,
            Version::Tag(etag) => Condition::Matches(etag.clone()),
            Version::Locked => Condition::None,
        };
        let key = self.manifest_key();
        self.unsure = true;
        match self
            .client
            .put(&key, manifest.to_text().as_bytes(), &condition)
        {
            Ok(_) => {
                self.placed.clear();
                self.unsure = false;
                Ok(Commit::Done)
            }
            Err(refusal) if lost(&refusal) => {
                self.unsure = false;
                Ok(Commit::Lost)
            }
            Err(Refusal::Refused {
                status,
                code,
                message,
            }) => {
                // Refused: nothing was written.
                self.unsure = false;
                let refusal = Refusal::Refused {
                    status,
                    code,
                    message,
                };
                Err(self.client.error("cannot commit", Some(&key), refusal))
            }
            Err(refusal) => Err(self.client.error("cannot commit", Some(&key), refusal)),
        }
    }

    fn keep_dropped(&self) -> Option<Duration> {
        Some(clean_after())
    }

    fn tidy(&mut self, manifest: &Manifest, _replaced: &[String]) -> Result<usize> {
        // Listed, or dropped less than the age ago: a reader of an
        // earlier manifest may be reading it.
        let listed: HashSet<String> = manifest
            .files
            .iter()
            .map(|f| self.key(&f.path))
            .chain(manifest.dropped.iter().map(|(path, _)| self.key(path)))
            .collect();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let age = clean_after().as_secs() as i64;
        let mut removed = 0;
        for object in self.client.list(&format!("{}/", self.prefix))? {
            let name = object.key.rsplit('/').next().unwrap_or_default();
            let data = is_ours(name);
            let old = object.modified.is_some_and(|m| now - m >= age);
            if data && old && !listed.contains(&object.key) {
                self.client
                    .delete(&object.key)
                    .context("committed, but cannot delete a file no manifest lists")?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn abort(&mut self) {
        self.delete_placed();
    }

    fn record_failed_run(&mut self, run: &crate::runs::RunRecord) -> Result<()> {
        for _ in 0..10 {
            let (Some(mut manifest), version) = self.read()? else {
                return Ok(());
            };
            crate::state_document::push_run(&mut manifest.state, run);
            if self.commit(&manifest, &version)? == Commit::Done {
                return Ok(());
            }
        }
        bail!(
            "{}: other loads kept committing; the failed run was not recorded",
            self.shown()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_a_load_gives_are_deleted() {
        assert!(is_ours(
            "part-0123456789abcdef-00000-fedcba9876543210.parquet"
        ));
        assert!(!is_ours("part-0123456789abcdef-00000.parquet"));
        assert!(!is_ours("part-00000-spark.snappy.parquet"));
        assert!(!is_ours("data_0.parquet"));
    }
}
