//! Following files: identity by device, inode, birth time and
//! fingerprint; a seal of the bytes before the checkpointed offset, so that
//! a different file on the same inode is never resumed mid-way; open
//! handles so that a file renamed or deleted mid-read is still drained;
//! truncation noticed; only complete lines handed out.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::checkpoint::{Checkpoint, FileEntry, FileId, Range};
use super::copies::Consumed;
use super::identity::{FP_BYTES, Hasher, prefix_hash};

/// A seal covers this many bytes at the start of a file and this many
/// just before the sealed offset: every byte of a file up to 128 KiB, and
/// a bounded read (two windows, at each restart and each moved checkpoint)
/// however large the file grows.
const SEAL_WINDOW: u64 = 64 << 10;

/// The seal of a file that was already shorter than the sealed offset:
/// it matches no file, so such a file is read again from its start.
const SEAL_TRUNCATED: &str = "truncated";

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
    /// Hash of the bytes `committed..read` (the range in the batch).
    pending: Hasher,
    /// The seal at `committed` (offset, seal), once known.
    committed_seal: Option<(u64, String)>,
    /// The seal at `read`, taken when a batch is cut: it becomes the
    /// committed seal once the batch is handed on.
    read_seal: Option<(u64, String)>,
    /// Hash of all bytes before `read`, and before `committed` (`None`
    /// when unknown: the file was first seen with --from-end), so that a
    /// copy of them (copytruncate) is known (see `copies.rs`).
    pub(super) prefix_read: Option<Hasher>,
    pub(super) prefix_committed: Option<Hasher>,
}

fn head_hash(file: &mut File, len: u64) -> std::io::Result<String> {
    let mut buf = vec![0u8; len as usize];
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut buf)?;
    Ok(Hasher::of(&buf))
}

/// When the file was born (created), where the filesystem keeps it.
fn born(meta: &std::fs::Metadata) -> Option<u64> {
    let since = meta
        .created()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    u64::try_from(since.as_nanos()).ok()
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
        born: born(&meta),
    })
}

/// Is `file` the file `known` describes (same device and inode, born at
/// the same time where that is known, and the same first bytes)? False
/// for a reused inode or rewritten first bytes.
pub fn is_same(known: &FileId, file: &mut File) -> Result<bool> {
    let meta = file.metadata()?;
    if meta.dev() != known.dev || meta.ino() != known.ino || meta.len() < known.fp_len {
        return Ok(false);
    }
    if let (Some(was), Some(is)) = (known.born, born(&meta))
        && was != is
    {
        return Ok(false);
    }
    match head_hash(file, known.fp_len) {
        Ok(fp) => Ok(fp == known.fp),
        // Truncated between the size and the read.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The seal of a file's bytes before `offset`: a hash of the offset, the
/// first [`SEAL_WINDOW`] bytes and the last [`SEAL_WINDOW`] bytes before
/// the offset (all of them up to twice the window). A file rewritten in
/// place, copytruncated and refilled, or a new file on a reused inode
/// differs in them (a different file that agrees with the old one in its
/// first 64 KiB and in the 64 KiB before the offset would have to repeat
/// the same records at the same byte positions), so it is read from its
/// start instead of resumed mid-way. Bounded: at most 128 KiB are read,
/// from the page cache in the usual case, however large the file.
pub fn seal(file: &File, offset: u64) -> Result<String> {
    if file.metadata()?.len() < offset {
        return Ok(SEAL_TRUNCATED.into());
    }
    let mut hasher = Hasher::default();
    hasher.update(format!("{offset}:").as_bytes());
    let head = offset.min(SEAL_WINDOW);
    let tail_start = SEAL_WINDOW.max(offset.saturating_sub(SEAL_WINDOW));
    let mut buf = vec![0u8; head.max(offset.saturating_sub(tail_start)) as usize];
    for (start, len) in [(0, head), (tail_start, offset.saturating_sub(tail_start))] {
        let buf = &mut buf[..len as usize];
        match file.read_exact_at(buf, start) {
            Ok(()) => hasher.update(buf),
            // Shrunk while we read.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(SEAL_TRUNCATED.into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(hasher.hex())
}

/// Does `file` still hold, before `entry.offset`, what the checkpoint
/// sealed? Checkpoints without a seal (older ones) check the size only.
fn holds(entry: &FileEntry, file: &File) -> Result<bool> {
    if file.metadata()?.len() < entry.offset {
        return Ok(false);
    }
    Ok(match &entry.seal {
        Some(sealed) => seal(file, entry.offset)? == *sealed,
        None => true,
    })
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
        let prefix = (offset == 0).then(Hasher::default);
        Tracked {
            prefix_read: prefix,
            prefix_committed: prefix,
            id,
            path,
            file,
            committed: offset,
            read: offset,
            present: true,
            idle_scans: 0,
            pending: Hasher::default(),
            committed_seal: None,
            read_seal: None,
        }
    }

    /// Marks the bytes up to `to` as read into the batch; `chunk` holds
    /// the file's bytes from `chunk_start` on, including those.
    pub fn advance(&mut self, to: u64, chunk: &[u8], chunk_start: u64) {
        let from = (self.read - chunk_start) as usize;
        let bytes = &chunk[from..(to - chunk_start) as usize];
        self.pending.update(bytes);
        if let Some(prefix) = &mut self.prefix_read {
            prefix.update(bytes);
        }
        self.read = to;
    }

    /// The range `start..end` goes again into the batch (resent after a
    /// restart), holding `bytes`.
    pub fn resend(&mut self, start: u64, end: u64, bytes: &[u8]) {
        if start != self.committed {
            self.prefix_committed = None;
        }
        self.prefix_read = self.prefix_committed.map(|mut prefix| {
            prefix.update(bytes);
            prefix
        });
        self.committed = start;
        self.read = end;
        self.pending = Hasher::default();
        self.pending.update(bytes);
    }

    /// Seals the bytes read so far, before the batch holding them is
    /// handed on: as close to the read as possible, so that the seal
    /// describes the bytes that were handed on.
    pub fn seal_read(&mut self) -> Result<()> {
        if self
            .read_seal
            .as_ref()
            .is_none_or(|(at, _)| *at != self.read)
        {
            self.read_seal = Some((self.read, seal(&self.file, self.read)?));
        }
        Ok(())
    }

    /// The batch holding what was read has been handed on.
    pub fn commit(&mut self) {
        self.committed = self.read;
        self.prefix_committed = self.prefix_read;
        self.pending = Hasher::default();
        if self
            .read_seal
            .as_ref()
            .is_some_and(|(at, _)| *at == self.committed)
        {
            self.committed_seal = self.read_seal.take();
        }
    }

    /// The file's checkpoint entry.
    pub fn entry(&mut self) -> Result<FileEntry> {
        let fresh = self
            .committed_seal
            .as_ref()
            .is_some_and(|(at, _)| *at == self.committed);
        if !fresh {
            self.committed_seal = Some((self.committed, seal(&self.file, self.committed)?));
        }
        Ok(FileEntry {
            id: self.id.clone(),
            path: self.path.clone(),
            offset: self.committed,
            seal: self.committed_seal.as_ref().map(|(_, s)| s.clone()),
            prefix: self.prefix_committed.as_ref().map(Hasher::hex),
        })
    }

    /// What was read and handed on of it, to be known again in a copy
    /// once it starts over.
    pub fn consumed(&self) -> Option<Consumed> {
        if self.committed == 0 {
            return None;
        }
        Some(Consumed {
            id: self.id.clone(),
            path: self.path.clone(),
            offset: self.committed,
            prefix: self.prefix_committed?,
            note: None,
        })
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
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
            self.pending = Hasher::default();
            self.committed_seal = None;
            self.read_seal = None;
            self.prefix_read = Some(Hasher::default());
            self.prefix_committed = self.prefix_read;
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
            hash: Some(self.pending.hex()),
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

/// What a checkpoint gives back: the followed files, a warning per file
/// that is gone or replaced, and what was read from files since
/// truncated or rewritten in place (a copytruncate copy of it may turn up).
pub struct Restored {
    /// Files found again, at their checkpointed offsets.
    pub tracked: Vec<Tracked>,
    /// One per file that is gone or was replaced.
    pub warnings: Vec<String>,
    /// Read bytes whose file now holds something else.
    pub consumed: Vec<Consumed>,
}

/// Restores followed files from a checkpoint (renamed files are found in
/// their directory). A file whose bytes before the checkpointed offset are
/// no longer the sealed ones is another file on the same inode (rewritten
/// in place, copytruncated and refilled, or new on a reused inode): it is
/// left out, so that the next scan finds it as a new file and reads it
/// from its start; what was read of it is kept in `consumed`.
pub fn restore(checkpoint: &Checkpoint) -> Result<Restored> {
    let mut restored = Restored {
        tracked: Vec::new(),
        warnings: Vec::new(),
        consumed: Vec::new(),
    };
    for entry in &checkpoint.files {
        let offset = entry.offset;
        match find(&entry.id, &entry.path) {
            Some((path, file)) => {
                if !holds(entry, &file)
                    .with_context(|| format!("cannot read {}", path.display()))?
                {
                    let warning = format!(
                        "{} was rewritten or replaced since the checkpoint; reading it from its start (what the old file held after byte {offset} was never read)",
                        path.display()
                    );
                    match Consumed::of_entry(entry, warning.clone()) {
                        Some(consumed) => restored.consumed.push(consumed),
                        None => restored.warnings.push(warning),
                    }
                    continue;
                }
                let mut id = entry.id.clone();
                if id.born.is_none() {
                    id.born = file.metadata().ok().as_ref().and_then(born);
                }
                let prefix = match entry.prefix.as_deref().and_then(Hasher::resume) {
                    Some(prefix) => Some(prefix),
                    // Checkpoints written before prefixes were kept.
                    None => prefix_hash(&file, offset)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                };
                let mut t = Tracked::new(id, path, file, offset);
                t.committed_seal = entry.seal.clone().map(|s| (offset, s));
                t.prefix_read = prefix;
                t.prefix_committed = prefix;
                t.present = false;
                restored.tracked.push(t);
            }
            None => {
                let warning = format!(
                    "{} is gone (deleted or rewritten) since the checkpoint; what it held after byte {offset} was never read",
                    entry.path.display()
                );
                // Truncated in place (copytruncate): the same inode is
                // still there, holding something else now, and a copy of
                // what it held may be watched too.
                let same_inode = std::fs::metadata(&entry.path)
                    .is_ok_and(|m| m.dev() == entry.id.dev && m.ino() == entry.id.ino);
                match Consumed::of_entry(entry, warning.clone()).filter(|_| same_inode) {
                    Some(consumed) => restored.consumed.push(consumed),
                    None => restored.warnings.push(warning),
                }
            }
        }
    }
    Ok(restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_holds_through_appends_and_breaks_on_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let line = |i: u32| format!("{{\"prefix\":\"{}\",\"id\":{i:06}}}\n", "x".repeat(60));
        let text: String = (0..4000).map(line).collect();
        assert!(text.len() as u64 > 2 * SEAL_WINDOW);
        std::fs::write(&path, &text).unwrap();
        let offset = text.len() as u64;
        let sealed = seal(&File::open(&path).unwrap(), offset).unwrap();
        let mut appended = text.clone();
        appended.push_str(&line(4000));
        std::fs::write(&path, &appended).unwrap();
        assert_eq!(seal(&File::open(&path).unwrap(), offset).unwrap(), sealed);
        for changed_line in [3, 3998] {
            let mut other = text.clone();
            let at = changed_line * line(0).len() + line(0).len() - 3;
            other.replace_range(at..at + 1, "9");
            std::fs::write(&path, &other).unwrap();
            assert_ne!(seal(&File::open(&path).unwrap(), offset).unwrap(), sealed);
        }
        std::fs::write(&path, &text[..100]).unwrap();
        assert_eq!(
            seal(&File::open(&path).unwrap(), offset).unwrap(),
            SEAL_TRUNCATED
        );
        std::fs::write(&path, "short\n").unwrap();
        let small = seal(&File::open(&path).unwrap(), 6).unwrap();
        std::fs::write(&path, "shirt\n").unwrap();
        assert_ne!(seal(&File::open(&path).unwrap(), 6).unwrap(), small);
    }
}
