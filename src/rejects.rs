//! Rejected rows: written out with their reason and position, never dropped.
//!
//! Without `--rejects FILE` the first bad row fails the run, naming it.
//! With it, each bad row is appended to FILE as one JSON line and the run
//! goes on, failing only when more than `--max-rejects` rows were rejected.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, Result, anyhow};
use serde_json::{Map, Value};

use crate::shown::Redactor;

/// Where a rejected row came from and what it held.
pub enum Payload<'a> {
    /// Raw input bytes (a CSV line, an unparsable JSON line).
    Raw(&'a [u8]),
    /// A parsed record that did not fit its target.
    Record(&'a Map<String, Value>),
}

/// Where rejected rows go and how many may be, as the flags said.
#[derive(Debug, Clone, Default)]
pub struct RejectsOptions {
    /// The rejects file; none: the first rejected row fails the run.
    pub file: Option<PathBuf>,
    /// The limit; none: no limit with a file, 0 without.
    pub max: Option<u64>,
}

impl RejectsOptions {
    /// Opens the rejects file with its limit.
    pub fn open(&self) -> Result<Rejects> {
        Rejects::open(self.file.as_deref(), self.limit())
    }

    /// The limit: none with a file, 0 without, unless given.
    fn limit(&self) -> Option<u64> {
        self.max
            .or(if self.file.is_some() { None } else { Some(0) })
    }

    /// Like `open`, but adds to an existing rejects file instead of
    /// emptying it (for sources that never send a rejected record again).
    pub fn open_append(&self) -> Result<Rejects> {
        let mut rejects = Rejects::open(None, self.limit())?;
        if let Some(p) = &self.file {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("cannot open rejects file {}", p.display()))?;
            rejects.out = Some((p.clone(), Arc::new(Mutex::new(BufWriter::new(file)))));
        }
        Ok(rejects)
    }
}

/// The rejects file and its limit.
pub struct Rejects {
    /// Shared by the handles of one run (see `share`); each entry is
    /// written whole under the lock, so lines never interleave.
    out: Option<(PathBuf, Arc<Mutex<BufWriter<File>>>)>,
    max: Option<u64>,
    /// Rows rejected through this handle.
    count: u64,
    /// Rows rejected through all handles: the limit applies to the run.
    total: Arc<AtomicU64>,
    /// The credentials to keep out of the file (a record may echo an API's
    /// token), shared by all handles.
    mask: Arc<OnceLock<Redactor>>,
}

impl Rejects {
    /// `path`: where rejected rows go (none: the first one fails the run).
    /// `max`: how many may be rejected before the run fails (none: no limit).
    pub fn open(path: Option<&Path>, max: Option<u64>) -> Result<Self> {
        let out = match path {
            Some(p) => {
                let file = File::create(p)
                    .with_context(|| format!("cannot create rejects file {}", p.display()))?;
                Some((p.to_path_buf(), Arc::new(Mutex::new(BufWriter::new(file)))))
            }
            None => None,
        };
        Ok(Rejects {
            out,
            max,
            count: 0,
            total: Arc::new(AtomicU64::new(0)),
            mask: Arc::new(OnceLock::new()),
        })
    }

    /// A second handle on the same file, limit and run-wide count, for a
    /// stage of the same run on another thread (`etl-load FILE.csv` reads
    /// the file with extract's code): its rejects go to the one file, and
    /// `--max-rejects` counts both. `count` stays per handle.
    pub fn share(&self) -> Rejects {
        Rejects {
            out: self.out.clone(),
            max: self.max,
            count: 0,
            total: Arc::clone(&self.total),
            mask: Arc::clone(&self.mask),
        }
    }

    /// Masks `redactor`'s secrets in every entry written from now on, by
    /// this handle and every handle sharing its file (the first call wins).
    pub fn mask_with(&self, redactor: Redactor) {
        let _ = self.mask.set(redactor);
    }

    /// Rows rejected so far through this handle.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Records one bad row at `input`:`line` (line 0: no line, e.g. a table
    /// row). Fails the run when there is no rejects file or the limit is passed.
    pub fn reject(
        &mut self,
        input: &str,
        line: u64,
        reason: &str,
        payload: Payload<'_>,
    ) -> Result<()> {
        self.reject_at(input, line, None, reason, payload)
    }

    /// Records one bad row at `input`:`line`, which reached the stage that
    /// refused it as line `wire_line` of an NDJSON stream (a one-off load:
    /// the file's line comes first, the wire's is the second coordinate).
    fn reject_at(
        &mut self,
        input: &str,
        line: u64,
        wire_line: Option<u64>,
        reason: &str,
        payload: Payload<'_>,
    ) -> Result<()> {
        let mut place = if line > 0 {
            format!("{input}:{line}")
        } else {
            input.to_string()
        };
        if let Some(wire) = wire_line {
            place.push_str(&format!(" (NDJSON line {wire})"));
        }
        let Some((path, out)) = &mut self.out else {
            return Err(anyhow!("{place}: {reason}"));
        };
        self.count += 1;
        let total = self.total.fetch_add(1, Ordering::SeqCst) + 1;
        let mask = |text: &str| match self.mask.get() {
            Some(redactor) => redactor.redact(text),
            None => text.to_string(),
        };
        let input = mask(input);
        let input = input.as_str();
        let reason = mask(reason);
        let reason = reason.as_str();
        let mut entry = Map::new();
        entry.insert("input".into(), input.into());
        if line > 0 {
            entry.insert("line".into(), line.into());
        }
        if let Some(wire) = wire_line {
            entry.insert("ndjson_line".into(), wire.into());
        }
        entry.insert("reason".into(), reason.into());
        match payload {
            Payload::Raw(bytes) => {
                let text = String::from_utf8_lossy(bytes);
                let text = text.strip_suffix('\n').unwrap_or(&text);
                entry.insert(
                    "raw".into(),
                    mask(text.strip_suffix('\r').unwrap_or(text)).into(),
                );
            }
            Payload::Record(record) => {
                let record = Value::Object(record.clone());
                let record = match self.mask.get() {
                    Some(redactor) => redactor.value(&record),
                    None => record,
                };
                entry.insert("record".into(), record);
            }
        }
        {
            let mut out = out
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            writeln!(out, "{}", Value::Object(entry))
                .with_context(|| format!("cannot write rejects file {}", path.display()))?;
        }
        if let Some(max) = self.max.filter(|max| total > *max) {
            let path = path.display().to_string();
            self.finish()?;
            return Err(anyhow!(
                "more than {max} rows rejected (--max-rejects {max}); the last one: {place}: {reason}; \
                 rejected rows are in {path}"
            ));
        }
        Ok(())
    }

    /// Records a bad wire line: as the record it holds when it parses as a
    /// JSON object (read again here: rejects are rare), else as raw text.
    pub fn reject_line(&mut self, input: &str, line: u64, reason: &str, text: &[u8]) -> Result<()> {
        self.reject_line_from(input, line, None, reason, text)
    }

    /// Like `reject_line`, for a wire line whose record came from line
    /// `origin.1` of input `origin.0` (a one-off load's file): the entry
    /// names that, and the wire's line as `ndjson_line`.
    pub fn reject_line_from(
        &mut self,
        input: &str,
        line: u64,
        origin: Option<(String, u64)>,
        reason: &str,
        text: &[u8],
    ) -> Result<()> {
        let (input, line, wire) = match &origin {
            Some((file, file_line)) => (file.as_str(), *file_line, Some(line)),
            None => (input, line, None),
        };
        match serde_json::from_slice::<Map<String, Value>>(text) {
            Ok(record) => self.reject_at(input, line, wire, reason, Payload::Record(&record)),
            Err(_) => self.reject_at(input, line, wire, reason, Payload::Raw(text)),
        }
    }

    /// Flushes the rejects file and waits until it is on disk.
    pub fn sync(&mut self) -> Result<()> {
        if let Some((path, out)) = &mut self.out {
            let mut out = out
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            out.flush()
                .and_then(|()| out.get_ref().sync_data())
                .with_context(|| format!("cannot write rejects file {}", path.display()))?;
        }
        Ok(())
    }

    /// Flushes the rejects file.
    pub fn finish(&mut self) -> Result<()> {
        if let Some((path, out)) = &mut self.out {
            let mut out = out
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            out.flush()
                .with_context(|| format!("cannot write rejects file {}", path.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_file_the_first_reject_fails() {
        let mut rejects = Rejects::open(None, None).unwrap();
        let err = rejects
            .reject("a.csv", 3, "bad", Payload::Raw(b"x"))
            .unwrap_err();
        assert_eq!(err.to_string(), "a.csv:3: bad");
    }

    #[test]
    fn rejects_are_written_and_limited() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.ndjson");
        let mut rejects = Rejects::open(Some(&path), Some(1)).unwrap();
        rejects
            .reject("a.csv", 3, "bad", Payload::Raw(b"x,y\r\n"))
            .unwrap();
        let err = rejects
            .reject("a.csv", 4, "worse", Payload::Raw(b"z"))
            .unwrap_err();
        assert!(err.to_string().starts_with("more than 1 rows rejected"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().next(),
            Some(r#"{"input":"a.csv","line":3,"reason":"bad","raw":"x,y"}"#)
        );
        assert_eq!(text.lines().count(), 2);
    }
}
