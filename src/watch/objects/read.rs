//! Reading one object version into the batch: it is fetched whole into a
//! local spool (an unlinked temporary file) first, so that a GET that fails
//! part way puts nothing of it in a batch; its records are then read from
//! the spool in chunks (gzip and zstd undone), handing on batches that fill
//! inside it, each position a byte range of the version.

use std::io::{BufRead, Read, Seek, SeekFrom};

use anyhow::{Context, Result};

use super::delivery::Inboxed;
use crate::client::s3::read::ObjectReader;
use crate::client::s3::{Client, Refusal};
use crate::source::input::{Compression, decode};
use crate::watch::checkpoint::ObjectRange;
use crate::watch::records::header_names;
use crate::watch::{WatchFormat, Watcher};

/// Decoded bytes read at a time from an object.
const CHUNK: usize = 64 << 10;

/// Why an object version was not read (whole).
pub(super) enum Stop {
    /// It is gone (deleted), or, when a version was asked for, it was
    /// written again since.
    Gone(&'static str),
    /// Its read failed (part way, or decompressing it): nothing of it
    /// since the last batch handed on stays in the batch.
    Unread(anyhow::Error),
}

/// Takes the value, or stops reading the object as unread.
macro_rules! read {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Ok(Err(Stop::Unread(anyhow::Error::from(e)))),
        }
    };
}

/// How far the batch had got before an object's records were added.
#[derive(Clone, Copy)]
struct Mark {
    records: usize,
    rows: usize,
    bytes: usize,
    read: u64,
}

/// How much of an object to read into the batch.
#[derive(Clone, Copy)]
pub(super) enum Span {
    /// From this offset to its end, handing on full batches as they fill.
    From(u64),
    /// Exactly this range (a batch sent again), without handing on.
    Exactly(u64, u64),
}

impl Watcher<'_> {
    /// Reads the object `key` (the version `etag` when given, else the
    /// current one) into the batch: the whole object is fetched into a
    /// local spool first, so a read that fails part way puts nothing of
    /// it in a batch; then its records are taken chunk by chunk.
    pub(super) fn read_into_batch(
        &mut self,
        state: &mut Inboxed,
        key: &str,
        etag: Option<&str>,
        span: Span,
    ) -> Result<Result<(), Stop>> {
        let mut mark = self.mark();
        let result = self.read_chunks(state, key, etag, span, &mut mark)?;
        if let Err(Stop::Unread(_)) = &result {
            // Nothing of it since the last batch handed on.
            self.batch.records.truncate(mark.records);
            self.batch.rows = mark.rows;
            self.batch.bytes = mark.bytes;
            self.counts.read = mark.read;
        }
        Ok(result)
    }

    fn mark(&self) -> Mark {
        Mark {
            records: self.batch.records.len(),
            rows: self.batch.rows,
            bytes: self.batch.bytes,
            read: self.counts.read,
        }
    }

    /// [`Watcher::read_into_batch`], with `mark` moved past each batch it
    /// hands on.
    fn read_chunks(
        &mut self,
        state: &mut Inboxed,
        key: &str,
        etag: Option<&str>,
        span: Span,
        mark: &mut Mark,
    ) -> Result<Result<(), Stop>> {
        let name = state.client.shown(Some(key));
        let (spool, version) = match read!(fetch(&state.client, key, etag)) {
            Ok(fetched) => fetched,
            Err(why) => return Ok(Err(Stop::Gone(why))),
        };
        let by_name = Compression::from_path(std::path::Path::new(key)).0;
        let mut input = read!(decode(name.clone(), Box::new(spool), by_name));
        let reader = &mut input.reader;
        let mut header = None;
        let mut at = 0u64;
        // Bytes taken from the object: a newline added to its last line
        // is not one of them, and no position goes past them.
        let mut total = 0u64;
        if self.plan.format == WatchFormat::Csv {
            let mut line = Vec::new();
            read!(read_line(reader, &mut line, &name));
            total = line.len() as u64;
            if !line.is_empty() {
                if !line.ends_with(b"\n") {
                    line.push(b'\n');
                }
                header = Some(header_names(&name, &line)?);
            }
            at = line.len() as u64;
        }
        let (start, until) = match span {
            Span::From(offset) => (offset.max(at), None),
            Span::Exactly(start, end) => (start.max(at), Some(end)),
        };
        // Skip what was handed on already.
        let skip = start - at;
        let skipped = read!(
            std::io::copy(&mut reader.by_ref().take(skip), &mut std::io::sink())
                .with_context(|| format!("cannot decompress {name}"))
        );
        if skipped < skip {
            return Ok(Err(Stop::Unread(anyhow::anyhow!(
                "{name} holds less than the {start} bytes handed on before"
            ))));
        }
        total += skipped;
        at = start;
        let replay = matches!(span, Span::Exactly(..));
        let mut range = ObjectRange {
            object: name.clone(),
            etag: version.clone(),
            start: at,
            end: at,
            last: false,
        };
        let mut carry: Vec<u8> = Vec::new();
        let mut want = CHUNK;
        loop {
            // Complete lines, up to about CHUNK bytes (or to `until`).
            let mut eof = false;
            while carry.len() < want {
                let room = until.map(|u| u.saturating_sub(at + carry.len() as u64));
                if room == Some(0) {
                    eof = true;
                    break;
                }
                let before = carry.len();
                match room {
                    Some(room) => {
                        read!(
                            (&mut *reader)
                                .take(room)
                                .read_until(b'\n', &mut carry)
                                .with_context(|| format!("cannot decompress {name}"))
                        );
                    }
                    None => read!(read_line(reader, &mut carry, &name)),
                }
                if carry.len() == before {
                    eof = true;
                    break;
                }
                total += (carry.len() - before) as u64;
            }
            if eof && !carry.is_empty() && !carry.ends_with(b"\n") {
                // The object is complete: its last line is too.
                carry.push(b'\n');
            }
            if carry.is_empty() {
                break;
            }
            let parsed = self.parse(&name, at, &carry, header.as_deref())?;
            for record in &parsed.records {
                self.counts.read += 1;
                self.batch.push(&record.json, record.input);
                if !replay && self.batch_full() {
                    range.end = (at + record.end as u64).min(total);
                    state.in_batch.push(range.clone());
                    self.deliver_objects(state)?;
                    range.start = range.end;
                    *mark = self.mark();
                }
            }
            let used = parsed.used;
            if eof && used < carry.len() {
                self.reject(
                    &name,
                    at + used as u64,
                    "unterminated quoted field at the end of the object",
                    &carry[used..],
                )?;
                at += carry.len() as u64;
                carry.clear();
                break;
            }
            at += used as u64;
            carry.drain(..used);
            // A record not complete yet (a quoted CSV field across lines):
            // read on until it is.
            want = CHUNK.max(carry.len() + 1);
            if eof {
                break;
            }
        }
        range.end = at.min(total).max(range.start);
        range.last = true;
        state.in_batch.push(range);
        self.batch
            .started
            .get_or_insert_with(std::time::Instant::now);
        Ok(Ok(()))
    }
}

/// Reads one line (or what is left) onto `buf`.
fn read_line(reader: &mut dyn BufRead, buf: &mut Vec<u8>, name: &str) -> Result<()> {
    reader
        .read_until(b'\n', buf)
        .with_context(|| format!("cannot decompress {name}"))?;
    Ok(())
}

/// Fetches the object `key` whole into a local spool (an unlinked
/// temporary file): the version `etag` when given, else the current one.
/// Returns the spool, at its start, and the ETag of the version read, or
/// why it is gone.
fn fetch(
    client: &Client,
    key: &str,
    etag: Option<&str>,
) -> Result<Result<(std::fs::File, String), &'static str>> {
    let mut reader = match ObjectReader::start(client, key, etag, 0, None) {
        Ok(reader) => reader,
        Err(Refusal::Refused {
            status: 404, code, ..
        }) if code != "NoSuchBucket" => {
            return Ok(Err("deleted"));
        }
        Err(Refusal::Refused { status: 412, .. }) => return Ok(Err("written again")),
        Err(refusal) => return Err(client.error("cannot read", Some(key), refusal)),
    };
    let version = reader.etag().unwrap_or_default().to_string();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let path =
        std::env::temp_dir().join(format!(".etl-watch-{}-{nanos}.object", std::process::id()));
    let mut spool = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("cannot create a spool file {}", path.display()))?;
    // Unlinked at once: a killed run leaves nothing behind.
    let _ = std::fs::remove_file(&path);
    std::io::copy(&mut reader, &mut spool)
        .with_context(|| format!("cannot read {}", client.shown(Some(key))))?;
    spool.seek(SeekFrom::Start(0))?;
    Ok(Ok((spool, version)))
}
