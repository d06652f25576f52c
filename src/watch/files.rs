//! Following files: identity by device, inode and fingerprint; open
//! handles so that a file renamed or deleted mid-read is still drained;
//! truncation noticed; only complete lines handed out.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::checkpoint::{Checkpoint, FileId, Range};
use crate::incremental::fingerprint;

/// Bytes covered by a file's fingerprint, once it is that long.
const FP_BYTES: u64 = 64;

/// A file being followed.
pub struct Tracked {
    /// Its identity.
    pub id: FileId,
    /// Where it was last seen.
    pub path: PathBuf,
    file: File,
    /// Bytes handed on (confirmed) so far.
    pub committed: u64,
    /// Bytes read into the current batch so far.
    pub read: u64,
    /// Seen at a watched path in the latest scan.
    pub present: bool,
    /// Scans since it last grew while not at a watched path.
    idle_scans: u32,
}

fn head_hash(file: &mut File, len: u64) -> Result<String> {
    let mut buf = vec![0u8; len as usize];
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut buf)?;
    Ok(fingerprint(&buf))
}

/// The identity of an open file, fingerprinting up to its first 64 bytes.
pub fn identify(file: &mut File) -> Result<FileId> {
    let meta = file.metadata()?;
    let fp_len = meta.len().min(FP_BYTES);
    Ok(FileId {
        dev: meta.dev(),
        ino: meta.ino(),
        fp: head_hash(file, fp_len)?,
        fp_len,
    })
}

/// Is `file` the file `known` describes (same device and inode, and the
/// same first bytes)? False for a reused inode or rewritten content.
pub fn is_same(known: &FileId, file: &mut File) -> Result<bool> {
    let meta = file.metadata()?;
    if meta.dev() != known.dev || meta.ino() != known.ino || meta.len() < known.fp_len {
        return Ok(false);
    }
    Ok(head_hash(file, known.fp_len)? == known.fp)
}

/// Finds a file by identity: at `path`, or renamed within its directory
/// (rotation keeps files beside each other).
pub fn find(known: &FileId, path: &Path) -> Option<(PathBuf, File)> {
    if let Ok(mut f) = File::open(path)
        && is_same(known, &mut f).unwrap_or(false)
    {
        return Some((path.to_path_buf(), f));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let candidate = entry.path();
        if let Ok(meta) = entry.metadata()
            && meta.ino() == known.ino
            && meta.dev() == known.dev
            && let Ok(mut f) = File::open(&candidate)
            && is_same(known, &mut f).unwrap_or(false)
        {
            return Some((candidate, f));
        }
    }
    None
}

impl Tracked {
    /// Starts following an open file at `offset`.
    pub fn new(id: FileId, path: PathBuf, file: File, offset: u64) -> Tracked {
        Tracked {
            id,
            path,
            file,
            committed: offset,
            read: offset,
            present: true,
            idle_scans: 0,
        }
    }

    /// The file's current size.
    pub fn size(&self) -> Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Notices truncation or rewritten content: the file then starts over
    /// under a new identity. Also widens a short fingerprint once the file
    /// has grown. Returns true if the file started over.
    pub fn check(&mut self) -> Result<bool> {
        let size = self.size()?;
        if self.rewritten()? {
            self.id = identify(&mut self.file)?;
            self.committed = 0;
            self.read = 0;
            return Ok(true);
        }
        if self.id.fp_len < FP_BYTES && size > self.id.fp_len {
            self.id = identify(&mut self.file)?;
        }
        Ok(false)
    }

    /// Was the file truncated, or its first bytes rewritten, since it was read?
    pub fn rewritten(&mut self) -> Result<bool> {
        Ok(self.size()? < self.read || !is_same(&self.id, &mut self.file)?)
    }

    /// Up to `max` unread bytes that end with a newline (a half-written last
    /// line stays unread). Empty when there is nothing complete.
    pub fn complete_bytes(&mut self, max: usize) -> Result<Vec<u8>> {
        let size = self.size()?;
        if size <= self.read {
            return Ok(Vec::new());
        }
        let want = (size - self.read).min(max.max(1) as u64);
        let mut buf = vec![0u8; want as usize];
        self.file.seek(SeekFrom::Start(self.read))?;
        if let Err(e) = self.file.read_exact(&mut buf) {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                // Truncated while we read: the next scan notices and restarts it.
                return Ok(Vec::new());
            }
            return Err(e).with_context(|| format!("cannot read {}", self.path.display()));
        }
        match buf.iter().rposition(|&b| b == b'\n') {
            Some(last) => buf.truncate(last + 1),
            None if want < size - self.read => {
                // One line longer than `max`: take it whole.
                return self.complete_bytes(max.saturating_mul(2));
            }
            None => buf.clear(),
        }
        Ok(buf)
    }

    /// Bytes `start..end` of the file, for resending a batch.
    pub fn bytes(&mut self, start: u64, end: u64) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; (end - start) as usize];
        self.file.seek(SeekFrom::Start(start))?;
        self.file
            .read_exact(&mut buf)
            .with_context(|| format!("{}: bytes {start}..{end} are gone", self.path.display()))?;
        Ok(buf)
    }

    /// The file's first line (a CSV header), if it has a complete one.
    pub fn first_line(&mut self) -> Result<Option<Vec<u8>>> {
        let mut buf = Vec::new();
        self.file.seek(SeekFrom::Start(0))?;
        let mut chunk = [0u8; 8192];
        loop {
            let n = self.file.read(&mut chunk)?;
            if n == 0 {
                return Ok(None);
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.iter().position(|&b| b == b'\n') {
                buf.truncate(i + 1);
                return Ok(Some(buf));
            }
        }
    }

    /// The range read into the current batch.
    pub fn pending_range(&self) -> Option<Range> {
        (self.read > self.committed).then(|| Range {
            id: self.id.clone(),
            path: self.path.clone(),
            start: self.committed,
            end: self.read,
        })
    }

    /// Notes a scan in which the file was not at a watched path; true once
    /// it has been drained and idle long enough to let go of it.
    pub fn may_drop(&mut self, idle_limit: u32) -> Result<bool> {
        if self.present {
            self.idle_scans = 0;
            return Ok(false);
        }
        let drained = self.read >= self.size()? && self.committed == self.read;
        if drained {
            self.idle_scans += 1;
        } else {
            self.idle_scans = 0;
        }
        Ok(drained && self.idle_scans > idle_limit)
    }
}

/// Expands watched paths: files as they are, directories to their regular
/// files, quoted globs to their matches; sorted, without duplicates.
pub fn candidates(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        let text = p.to_string_lossy();
        if p.is_dir() {
            if let Ok(entries) = std::fs::read_dir(p) {
                let mut files: Vec<PathBuf> = entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|f| f.is_file() && !is_hidden(f))
                    .collect();
                files.sort();
                out.extend(files);
            }
        } else if text.contains(['*', '?', '[']) && !p.exists() {
            if let Ok(matches) = glob::glob(&text) {
                let mut files: Vec<PathBuf> = matches.flatten().filter(|f| f.is_file()).collect();
                files.sort();
                out.extend(files);
            }
        } else if p.is_file() {
            out.push(p.clone());
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    out
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// Restores followed files from a checkpoint (renamed files are found in
/// their directory). Returns the files and a warning per file that is gone.
pub fn restore(checkpoint: &Checkpoint) -> (Vec<Tracked>, Vec<String>) {
    let mut tracked = Vec::new();
    let mut warnings = Vec::new();
    for (id, path, offset) in &checkpoint.files {
        match find(id, path) {
            Some((path, file)) => {
                let mut t = Tracked::new(id.clone(), path, file, *offset);
                t.present = false;
                tracked.push(t);
            }
            None => warnings.push(format!(
                "{} is gone (deleted or rewritten) since the checkpoint; what it held after byte {offset} was never read",
                path.display()
            )),
        }
    }
    (tracked, warnings)
}
