//! An S3 prefix as an inbox (`etl-watch s3://bucket/inbox/`, or a glob
//! over keys, `s3://bucket/inbox/*.csv.gz`): each object version is handed
//! on once.
//!
//! - An object is known by its key and its ETag, never by a time: an
//!   object written again with new content is a new version and is handed
//!   on again, and two objects written in the same second are both seen.
//! - Each scan lists the prefix (every page), and reads, in key order,
//!   the versions not yet handed on. An object is fetched whole into a
//!   local spool (an unlinked temporary file) before any of its records
//!   enter the batch: a GET that fails part way puts nothing of it in a
//!   batch, and it is read again by the next scan (or run). Its records
//!   are then read from the spool in chunks (gzip and zstd undone), so
//!   memory stays flat: a batch that fills inside an object is handed on
//!   there, its position a byte range of the object version. An object
//!   deleted between the listing and the read is skipped with a warning.
//! - The checkpoint keeps the versions handed on that the latest listing
//!   still holds (a version gone from the listing is dropped, so it stays
//!   as small as the inbox), how far an object handed on part way got, and
//!   uses the file watcher's pending batch: it names the batch's object
//!   ranges and id before --exec runs, and after a crash that batch is read
//!   again (the same versions, `If-Match`, the same ranges) and sent with
//!   the same id, which `etl-load` skips if it committed it.

use std::collections::HashMap;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::checkpoint::{Checkpoint, ObjectRange, ObjectVersion, object_ranges_json};
use super::records::header_names;
use super::{WatchFormat, Watcher, identity};
use crate::client::s3::read::ObjectReader;
use crate::client::s3::{Client, ObjectUrl, Refusal};
use crate::error::usage;
use crate::source::input::{Compression, decode};

/// A watched prefix, or glob over keys, of one bucket.
#[derive(Debug, Clone)]
pub struct Inbox {
    url: ObjectUrl,
    /// What is listed: the key up to its first glob character.
    prefix: String,
    /// Keys must match this, when a glob was given.
    pattern: Option<glob::Pattern>,
}

impl Inbox {
    /// The inbox `text` names: `s3://bucket/prefix/` (a key without a
    /// trailing `/` is a prefix too) or `s3://bucket/prefix/*.csv`, where
    /// `*` and `?` stay within one `/`-separated level, as for files.
    pub fn parse(text: &str) -> Result<Inbox> {
        let mut url = ObjectUrl::parse(text)?;
        if url.key.contains(['*', '?', '[']) {
            let pattern = glob::Pattern::new(&url.key)
                .map_err(|e| usage(format!("bad pattern {text:?}: {e}")))?;
            let prefix = url.key[..url.key.find(['*', '?', '[']).unwrap_or(0)].to_string();
            return Ok(Inbox {
                url,
                prefix,
                pattern: Some(pattern),
            });
        }
        if !url.key.is_empty() && !url.key.ends_with('/') {
            url.key.push('/');
        }
        let prefix = url.key.clone();
        Ok(Inbox {
            url,
            prefix,
            pattern: None,
        })
    }

    fn matches(&self, key: &str) -> bool {
        if key.ends_with('/') {
            // A "folder" marker some tools write.
            return false;
        }
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        self.pattern
            .as_ref()
            .is_none_or(|p| p.matches_with(key, options))
    }
}

/// Decoded bytes read at a time from an object.
const CHUNK: usize = 64 << 10;

/// Why an object version was not read (whole).
enum Stop {
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
enum Span {
    /// From this offset to its end, handing on full batches as they fill.
    From(u64),
    /// Exactly this range (a batch sent again), without handing on.
    Exactly(u64, u64),
}

/// What the inbox follower keeps between scans.
struct Inboxed {
    client: Client,
    /// The versions handed on (address → ETag).
    handed: HashMap<String, String>,
    /// The versions handed on part way, and up to where (`end`).
    partial: Vec<ObjectRange>,
    /// The object ranges in the open batch, in the order they were read.
    in_batch: Vec<ObjectRange>,
}

impl Inboxed {
    /// Moves what was handed on: whole objects to `handed`, the object
    /// the batch stopped in to `partial`.
    fn handed_on(&mut self) {
        for range in std::mem::take(&mut self.in_batch) {
            self.partial.retain(|p| p.object != range.object);
            if range.last {
                self.handed.insert(range.object, range.etag);
            } else {
                self.partial.push(range);
            }
        }
    }
}

impl Watcher<'_> {
    /// Follows `inbox` until stopped (or, with --once, through one scan).
    pub(super) fn follow_objects(&mut self, inbox: &Inbox) -> Result<()> {
        let mut state = Inboxed {
            client: Client::from_env(&inbox.url)?,
            handed: HashMap::new(),
            partial: Vec::new(),
            in_batch: Vec::new(),
        };
        if let Some(path) = &self.checkpoint_path {
            let checkpoint = Checkpoint::load(path)?;
            if !checkpoint.files.is_empty() {
                bail!(
                    "checkpoint {} follows files, not {}: give this inbox a checkpoint of its own",
                    path.display(),
                    inbox.url.shown()
                );
            }
            state.handed = checkpoint
                .objects
                .into_iter()
                .map(|v| (v.object, v.etag))
                .collect();
            state.partial = checkpoint.partial;
            if !checkpoint.pending_objects.is_empty() {
                self.progress
                    .detail("sending the unconfirmed batch of the last run again");
                self.replay_id = checkpoint.pending_id;
                self.replay_objects(&mut state, &checkpoint.pending_objects)?;
            }
        }
        let interval = Duration::from_secs_f64(self.plan.batch_interval);
        let mut first = true;
        loop {
            let unread = match self.scan_inbox(inbox, &mut state) {
                Ok(unread) => unread,
                // A running watcher outlives a server that stops answering
                // for a while; a first listing that fails (a wrong key, a
                // missing bucket) and a --once run fail at once.
                Err(e) if !first && !self.plan.once => {
                    self.progress.warn(&format!(
                        "{e:#}; listing again in {} ms",
                        self.plan.poll_interval
                    ));
                    std::thread::sleep(Duration::from_millis(self.plan.poll_interval));
                    continue;
                }
                Err(e) => return Err(e),
            };
            first = false;
            let due = self.batch.started.is_some_and(|s| s.elapsed() >= interval);
            if self.plan.once || due {
                self.deliver_objects(&mut state)?;
            }
            if self.plan.once {
                match unread {
                    0 => {}
                    1 => bail!("1 object could not be read (see above); the next run reads it"),
                    n => {
                        bail!("{n} objects could not be read (see above); the next run reads them")
                    }
                }
                return Ok(());
            }
            let mut poll = Duration::from_millis(self.plan.poll_interval);
            if let Some(started) = self.batch.started {
                poll = poll.min(interval.saturating_sub(started.elapsed()));
            }
            std::thread::sleep(poll);
        }
    }

    /// Lists the inbox and reads the versions not yet handed on into the
    /// batch, handing on full batches. Returns how many could not be read.
    fn scan_inbox(&mut self, inbox: &Inbox, state: &mut Inboxed) -> Result<usize> {
        let mut listing = state.client.list(&inbox.prefix)?;
        listing.retain(|o| inbox.matches(&o.key));
        listing.sort_by(|a, b| a.key.cmp(&b.key));
        // Only versions the listing still holds are remembered.
        let listed: HashMap<String, &str> = listing
            .iter()
            .map(|o| (state.client.shown(Some(&o.key)), o.etag.as_str()))
            .collect();
        state
            .handed
            .retain(|object, etag| listed.get(object) == Some(&etag.as_str()));
        for p in &state.partial {
            if listed.get(&p.object) != Some(&p.etag.as_str()) {
                self.progress.warn(&format!(
                    "{} was deleted or written again after its first {} bytes were handed on; the rest of that version is never read",
                    p.object, p.end
                ));
            }
        }
        state
            .partial
            .retain(|p| listed.get(&p.object) == Some(&p.etag.as_str()));
        let mut unread = 0;
        for info in &listing {
            let object = state.client.shown(Some(&info.key));
            let seen = |r: &ObjectRange| r.object == object && r.etag == info.etag;
            if state.handed.get(&object) == Some(&info.etag) || state.in_batch.iter().any(seen) {
                continue;
            }
            // The version handed on part way goes on where it stopped.
            let resume = state
                .partial
                .iter()
                .find(|p| p.object == object)
                .map(|p| (p.etag.clone(), p.end));
            let read = match &resume {
                Some((etag, offset)) => {
                    self.read_into_batch(state, &info.key, Some(etag), Span::From(*offset))
                }
                None => self.read_into_batch(state, &info.key, None, Span::From(0)),
            };
            match read? {
                Ok(()) => {}
                Err(Stop::Gone(why)) => self
                    .progress
                    .warn(&format!("{object} was {why} before it was read; skipped")),
                Err(Stop::Unread(e)) => {
                    unread += 1;
                    self.progress.warn(&format!(
                        "{e:#}; nothing more of it was handed on, it is read again later"
                    ));
                }
            }
        }
        Ok(unread)
    }

    /// Sends again the batch in flight when the last run stopped: the same
    /// object ranges, with the same id.
    fn replay_objects(&mut self, state: &mut Inboxed, pending: &[ObjectRange]) -> Result<()> {
        for range in pending {
            let key = range
                .object
                .strip_prefix(&format!("s3://{}/", state.client.bucket()))
                .with_context(|| {
                    format!(
                        "the checkpoint's unconfirmed batch holds {}, which is not in bucket {}",
                        range.object,
                        state.client.bucket()
                    )
                })?
                .to_string();
            let span = Span::Exactly(range.start, range.end);
            match self.read_into_batch(state, &key, Some(&range.etag), span)? {
                Ok(()) => {
                    if let Some(last) = state.in_batch.last_mut() {
                        // The range as it was first sent (it ended the object, or not).
                        last.last = range.last;
                    }
                }
                Err(Stop::Gone(why)) => self.progress.warn(&format!(
                    "{} was {why} since the unconfirmed batch was cut; it cannot be sent again",
                    range.object
                )),
                Err(Stop::Unread(e)) => {
                    return Err(e.context(
                        "the unconfirmed batch of the last run cannot be sent again yet",
                    ));
                }
            }
        }
        self.deliver_objects(state)
    }

    /// Reads the object `key` (the version `etag` when given, else the
    /// current one) into the batch: the whole object is fetched into a
    /// local spool first, so a read that fails part way puts nothing of
    /// it in a batch; then its records are taken chunk by chunk.
    fn read_into_batch(
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

    /// Hands on the open batch (as `deliver` does for files): the
    /// checkpoint names its object ranges and id before --exec runs, and
    /// counts them handed on only after --exec exited 0.
    fn deliver_objects(&mut self, state: &mut Inboxed) -> Result<()> {
        if self.batch.rows == 0 {
            // Empty objects (or rejected lines only): nothing to send, but
            // they are read.
            state.handed_on();
            self.replay_id = None;
            self.batch = super::Batch::default();
            return self.save_objects(state, None);
        }
        let positions = object_ranges_json(&state.in_batch);
        let id = match self.replay_id.take() {
            Some(id) => id,
            None => identity::Hasher::of(objects_key(&state.in_batch).as_bytes()),
        };
        let payload = self.framed_batch(Some(id.clone()), positions);
        match &self.plan.exec {
            Some(cmd) => {
                self.save_objects(state, Some(id))?;
                self.exec(cmd, &payload)?;
            }
            None => {
                let mut out = std::io::stdout().lock();
                out.write_all(&payload)
                    .and_then(|()| out.flush())
                    .context("writing to stdout")?;
            }
        }
        state.handed_on();
        self.counts.written += self.batch.rows as u64;
        self.batches += 1;
        self.batch = super::Batch::default();
        self.save_objects(state, None)
    }

    /// Writes the checkpoint: the versions handed on, the one handed on
    /// part way, and, with `pending_id`, the open batch as the batch in
    /// flight.
    fn save_objects(&self, state: &Inboxed, pending_id: Option<String>) -> Result<()> {
        let Some(path) = &self.checkpoint_path else {
            return Ok(());
        };
        let mut objects: Vec<ObjectVersion> = state
            .handed
            .iter()
            .map(|(object, etag)| ObjectVersion {
                object: object.clone(),
                etag: etag.clone(),
            })
            .collect();
        objects.sort();
        let pending_objects = if pending_id.is_some() {
            state.in_batch.clone()
        } else {
            Vec::new()
        };
        Checkpoint {
            pending_id,
            objects,
            partial: state.partial.clone(),
            pending_objects,
            ..Checkpoint::default()
        }
        .save(path)
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

/// A stable text naming a batch's object ranges, hashed into its id
/// (tagged apart from the file watcher's ids).
fn objects_key(ranges: &[ObjectRange]) -> String {
    let ranges = ranges
        .iter()
        .map(|r| format!("{}\u{0}{}\u{0}{}-{}", r.object, r.etag, r.start, r.end))
        .collect::<Vec<_>>()
        .join(";");
    format!("s3v1;{ranges}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_or_a_glob_over_keys() {
        let inbox = Inbox::parse("s3://bucket/inbox").unwrap();
        assert_eq!(inbox.prefix, "inbox/");
        assert!(inbox.matches("inbox/a/b.csv"));
        assert!(!inbox.matches("inbox/dir/"));
        let inbox = Inbox::parse("s3://bucket/inbox/*.csv.gz").unwrap();
        assert_eq!(inbox.prefix, "inbox/");
        assert!(inbox.matches("inbox/a.csv.gz"));
        assert!(!inbox.matches("inbox/old/a.csv.gz"));
        assert!(!inbox.matches("inbox/a.csv"));
        assert_eq!(Inbox::parse("s3://bucket").unwrap().prefix, "");
    }

    #[test]
    fn a_batch_id_names_its_versions() {
        let v = |etag: &str| ObjectRange {
            object: "s3://b/in/a.csv".into(),
            etag: etag.into(),
            start: 0,
            end: 10,
            last: true,
        };
        assert_ne!(objects_key(&[v("\"1\"")]), objects_key(&[v("\"2\"")]));
    }
}
