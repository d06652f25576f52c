//! Recognising a copy of bytes already read. copytruncate rotation copies
//! a log (`app.log` to `app.log.1`, a new inode) and then truncates the
//! original, so a glob or directory watch sees the copy as a new file
//! holding lines that were read already. The rule:
//!
//! - A new file whose bytes are, so far, the first bytes of a followed
//!   file that has not started over is not read (held): whatever it holds
//!   is in that file too and is read from there. A copy whose original is
//!   still whole [`COPY_GRACE`] after the copy's last write is a file in
//!   its own right (the same report dropped twice into an inbox) and is
//!   read from its start.
//! - When that file starts over (truncated or rewritten in place), the
//!   hash of every byte read and handed on from it, and their number N,
//!   are remembered (and kept in the checkpoint, for a copy found by the
//!   next run). A new file whose first N bytes hash the same is a copy: it
//!   is followed from byte N (a record boundary), so lines written after
//!   the last read and before the copy are read from it, once. A held
//!   file shorter than N (the log grew after the copy, and those lines
//!   were read from the log) is followed from its end.
//!
//! Only a whole match counts: a file that merely shares a long prefix
//! with another differs somewhere in those bytes and is read from its
//! start, as any new file; a file is never resumed where one of its bytes
//! was not read from the file it copies.

use std::fs::File;
use std::path::PathBuf;

use anyhow::Result;

use super::Watcher;
use super::checkpoint::{FileEntry, FileId};
use super::identity::{FP_BYTES, Hasher, prefix_hash, same_head};

/// At most this many truncated files' read bytes are remembered.
const REMEMBERED: usize = 16;

/// How long after its last write a copy of a followed file waits for that
/// file to be truncated. logrotate truncates right after copying; a copy
/// whose original is still whole after this is a file in its own right
/// (the same report dropped twice into an inbox) and is read.
const COPY_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// The bytes read from a file that has since been truncated or rewritten
/// in place: its old identity, how many bytes were read and their hash.
#[derive(Debug, Clone)]
pub struct Consumed {
    /// The file's identity while it held them.
    pub id: FileId,
    /// Its path then.
    pub path: PathBuf,
    /// How many bytes were read (and handed on).
    pub offset: u64,
    /// Hash of those bytes.
    pub prefix: Hasher,
    /// The warning to give if no copy turns up in the first scan after a
    /// restart (what the file held after `offset` is lost then).
    pub note: Option<String>,
}

impl Consumed {
    /// What a checkpoint entry says was read, if it kept the hash.
    pub fn of_entry(entry: &FileEntry, note: String) -> Option<Consumed> {
        Some(Consumed {
            id: entry.id.clone(),
            path: entry.path.clone(),
            offset: entry.offset,
            prefix: Hasher::resume(entry.prefix.as_deref()?)?,
            note: Some(note),
        })
        .filter(|c| c.offset > 0)
    }
}

/// A new file copying bytes already read, being written, or new.
pub(super) enum Copy {
    /// A copy of the first `offset` bytes of `of`: follow it from there.
    Of {
        offset: u64,
        prefix: Hasher,
        of: PathBuf,
    },
    /// Not to be read yet: empty, or a copy still being written.
    Wait,
    /// A new file, read from its start.
    New,
}

/// A new file found equal, so far, to the start of a followed one.
#[derive(Debug, Clone)]
pub(super) struct Held {
    dev: u64,
    ino: u64,
    /// The followed file it equals, as it was then.
    source: FileId,
    /// Its size and the hash of its bytes when it was compared.
    len: u64,
    prefix: Hasher,
    of: PathBuf,
}

impl Watcher<'_> {
    /// After the first scan of a restart: warns of the files that started
    /// over since the checkpoint and whose read bytes turned up in no copy.
    pub(super) fn warn_uncopied(&mut self) {
        for c in &mut self.consumed {
            if let Some(note) = c.note.take() {
                self.progress.warn(&note);
            }
        }
    }

    /// Remembers what was read from a file about to start over.
    pub(super) fn remember(&mut self, consumed: Consumed) {
        self.consumed.push(consumed);
        if self.consumed.len() > REMEMBERED {
            self.consumed.remove(0);
        }
    }

    /// Is the new file `id` (open as `file`, `size` bytes) a copy of bytes
    /// already read?
    pub(super) fn copy_of(&mut self, id: &FileId, file: &File, size: u64) -> Result<Copy> {
        if size == 0 {
            return Ok(Copy::Wait);
        }
        let is_other = |other: &FileId| (other.dev, other.ino) != (id.dev, id.ino);
        let held = self
            .held
            .iter()
            .position(|h| (h.dev, h.ino) == (id.dev, id.ino));
        let settled = file
            .metadata()?
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age >= COPY_GRACE);
        // A copy of a followed file that has not started over: all it
        // holds is in that file too and is read from there (whether or not
        // it has been read yet), unless it has waited long enough.
        for t in &mut self.tracked {
            if settled {
                break;
            }
            let same_fingerprint = if id.fp_len < FP_BYTES {
                t.id.fp_len >= id.fp_len
            } else {
                t.id.fp_len == id.fp_len && t.id.fp == id.fp
            };
            if !is_other(&t.id) || !same_fingerprint || t.rewritten()? || size > t.size()? {
                continue;
            }
            if held.is_some_and(|h| self.held[h].len == size && self.held[h].source == t.id) {
                // Compared at this size already.
                return Ok(Copy::Wait);
            }
            if same_head(file, t.file(), size)? {
                let entry = Held {
                    dev: id.dev,
                    ino: id.ino,
                    source: t.id.clone(),
                    len: size,
                    prefix: prefix_hash(file, size)?.unwrap_or_default(),
                    of: t.path.clone(),
                };
                match held {
                    Some(h) => self.held[h] = entry,
                    None => self.held.push(entry),
                }
                return Ok(Copy::Wait);
            }
        }
        // What was read from files that have started over: truncated a
        // moment ago (what was read is in the batch, handed on before the
        // file starts over), or remembered.
        let mut sources = Vec::new();
        for t in &mut self.tracked {
            if is_other(&t.id)
                && t.read > 0
                && let Some(prefix) = t.prefix_read
                && t.rewritten()?
            {
                sources.push((None, t.read, prefix, t.path.clone()));
            }
        }
        for (index, c) in self.consumed.iter().enumerate() {
            if is_other(&c.id) {
                sources.push((Some(index), c.offset, c.prefix, c.path.clone()));
            }
        }
        // Held as equal to the start of a file that has started over (or
        // was drained and let go of, deleted) since.
        let held = match held {
            Some(h) => {
                let h = self.held.remove(h);
                let mut started_over = true;
                for t in &mut self.tracked {
                    if (t.id.dev, t.id.ino) == (h.source.dev, h.source.ino) {
                        started_over = t.id != h.source || t.rewritten()?;
                    }
                }
                started_over.then_some(h)
            }
            None => None,
        };
        // A copy is complete before its original is truncated: its size
        // taken now, after seeing that, is its final size (the one taken
        // before may be older, when this process was held up meanwhile).
        let size = file.metadata()?.len();
        for (consumed, offset, prefix, of) in sources {
            if size >= offset && prefix_hash(file, offset)? == Some(prefix) {
                if let Some(index) = consumed {
                    self.consumed.remove(index);
                }
                return Ok(Copy::Of { offset, prefix, of });
            }
        }
        // Shorter than what was read from its original (which grew after
        // the copy): all of it was read from there.
        if let Some(h) = held
            && size >= h.len
            && prefix_hash(file, h.len)? == Some(h.prefix)
        {
            return Ok(Copy::Of {
                offset: h.len,
                prefix: h.prefix,
                of: h.of,
            });
        }
        Ok(Copy::New)
    }
}
