//! An S3 prefix as an inbox (`etl-watch s3://bucket/inbox/`, or a glob
//! over keys, `s3://bucket/inbox/*.csv.gz`): each object version is handed
//! on once.
//!
//! - An object is known by its key and its ETag, never by a time: an
//!   object written again with new content is a new version and is handed
//!   on again, and two objects written in the same second are both seen.
//! - Each scan lists the prefix (every page), and reads, in key order,
//!   the versions not yet handed on. An object is read whole (gzip and
//!   zstd undone by its extension or first bytes) before any of its
//!   records enter the batch: a read that fails part way puts nothing of
//!   it in a batch, and it is read again by the next scan (or run). An
//!   object deleted between the listing and the read is skipped with a
//!   warning. An object is never split across batches: a batch closes
//!   after the object that fills it.
//! - The checkpoint keeps the versions handed on that the latest listing
//!   still holds (a version gone from the listing is dropped, so it stays
//!   as small as the inbox), and uses the file watcher's pending batch:
//!   it names the batch's versions and id before --exec runs, and after a
//!   crash that batch is read again (the same versions, `If-Match`) and
//!   sent with the same id, which `etl-load` skips if it committed it.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::checkpoint::{Checkpoint, ObjectVersion, objects_json};
use super::records::header_names;
use super::{PROGRAM, WatchFormat, Watcher, framed, identity};
use crate::client::s3::read::ObjectReader;
use crate::client::s3::{Client, ObjectUrl, Refusal};
use crate::error::usage;
use crate::source::input::{Compression, decode};
use crate::wire::{Begin, End};

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

/// What reading one object version gave.
enum Fetched {
    /// Its bytes (decompressed), and the ETag of the version read.
    Body(Vec<u8>, String),
    /// It is gone (deleted), or, when a version was asked for, it was
    /// written again since.
    Gone(&'static str),
}

/// What the inbox follower keeps between scans.
struct Inboxed {
    client: Client,
    /// The versions handed on (address → ETag).
    handed: HashMap<String, String>,
    /// The versions in the open batch, in the order they were read.
    in_batch: Vec<ObjectVersion>,
}

impl Watcher<'_> {
    /// Follows `inbox` until stopped (or, with --once, through one scan).
    pub(super) fn follow_objects(&mut self, inbox: &Inbox) -> Result<()> {
        let mut state = Inboxed {
            client: Client::from_env(&inbox.url)?,
            handed: HashMap::new(),
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
        let mut unread = 0;
        for info in &listing {
            let object = state.client.shown(Some(&info.key));
            let seen = |v: &ObjectVersion| v.object == object && v.etag == info.etag;
            if state.handed.get(&object) == Some(&info.etag) || state.in_batch.iter().any(seen) {
                continue;
            }
            match read_object(&state.client, &info.key, None) {
                Ok(Fetched::Body(bytes, etag)) => {
                    let version = ObjectVersion { object, etag };
                    if state.handed.get(&version.object) == Some(&version.etag)
                        || state.in_batch.contains(&version)
                    {
                        // Written again since the listing, back to a
                        // version already read.
                        continue;
                    }
                    self.take_object(&version.object, &bytes)?;
                    state.in_batch.push(version);
                    if self.batch_full() {
                        self.deliver_objects(state)?;
                    }
                }
                Ok(Fetched::Gone(why)) => self
                    .progress
                    .warn(&format!("{object} was {why} before it was read; skipped")),
                Err(e) => {
                    unread += 1;
                    self.progress.warn(&format!(
                        "{e:#}; nothing of it was handed on, it is read again later"
                    ));
                }
            }
        }
        Ok(unread)
    }

    /// Sends again the batch in flight when the last run stopped: the same
    /// versions, with the same id.
    fn replay_objects(&mut self, state: &mut Inboxed, pending: &[ObjectVersion]) -> Result<()> {
        for version in pending {
            let key = version
                .object
                .strip_prefix(&format!("s3://{}/", state.client.bucket()))
                .with_context(|| {
                    format!(
                        "the checkpoint's unconfirmed batch holds {}, which is not in bucket {}",
                        version.object,
                        state.client.bucket()
                    )
                })?;
            match read_object(&state.client, key, Some(&version.etag))? {
                Fetched::Body(bytes, _) => {
                    self.take_object(&version.object, &bytes)?;
                    state.in_batch.push(version.clone());
                }
                Fetched::Gone(why) => self.progress.warn(&format!(
                    "{} was {why} since the unconfirmed batch was cut; it cannot be sent again",
                    version.object
                )),
            }
        }
        self.deliver_objects(state)
    }

    /// Turns a whole object's bytes into records of the batch.
    fn take_object(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let mut body = bytes.to_vec();
        if !body.is_empty() && !body.ends_with(b"\n") {
            // The object is complete: its last line is too.
            body.push(b'\n');
        }
        let (base, header) = if self.plan.format == WatchFormat::Csv {
            let Some(end) = body.iter().position(|&b| b == b'\n') else {
                return Ok(());
            };
            (end + 1, Some(header_names(name, &body[..=end])?))
        } else {
            (0, None)
        };
        let parsed = self.parse(name, base as u64, &body[base..], header.as_deref())?;
        for record in &parsed.records {
            self.counts.read += 1;
            self.batch.push(&record.json, record.input);
        }
        let rest = base + parsed.used;
        if rest < body.len() {
            self.reject(
                name,
                rest as u64,
                "unterminated quoted field at the end of the object",
                &body[rest..],
            )?;
        }
        self.batch
            .started
            .get_or_insert_with(std::time::Instant::now);
        Ok(())
    }

    /// Hands on the open batch (as `deliver` does for files): the
    /// checkpoint names its versions and id before --exec runs, and counts
    /// them handed on only after --exec exited 0.
    fn deliver_objects(&mut self, state: &mut Inboxed) -> Result<()> {
        if self.batch.rows == 0 {
            // Empty objects (or rejected lines only): nothing to send, but
            // they are read.
            let read = std::mem::take(&mut state.in_batch);
            state
                .handed
                .extend(read.into_iter().map(|v| (v.object, v.etag)));
            self.replay_id = None;
            self.batch = super::Batch::default();
            return self.save_objects(state, None);
        }
        let positions = objects_json(&state.in_batch);
        let id = match self.replay_id.take() {
            Some(id) => id,
            None => identity::Hasher::of(objects_key(&state.in_batch).as_bytes()),
        };
        let begin = Begin {
            stream: self.plan.stream.clone(),
            source: Some(PROGRAM.into()),
            schema: self.schema(),
            from: None,
            batch: Some(id.clone()),
        };
        let end = End {
            stream: self.plan.stream.clone(),
            rows: self.batch.rows as u64,
            bookmark: None,
            positions: Some(positions),
        };
        let payload = framed(&begin, &self.batch.records, &end);
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
        let read = std::mem::take(&mut state.in_batch);
        state
            .handed
            .extend(read.into_iter().map(|v| (v.object, v.etag)));
        self.counts.written += self.batch.rows as u64;
        self.batches += 1;
        self.batch = super::Batch::default();
        self.save_objects(state, None)
    }

    /// Writes the checkpoint: the versions handed on, and, with
    /// `pending_id`, the open batch's as the batch in flight.
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
            pending_objects,
            ..Checkpoint::default()
        }
        .save(path)
    }
}

/// Reads the object `key` whole: the version `etag` when given, else the
/// current one (its ETag is returned).
fn read_object(client: &Client, key: &str, etag: Option<&str>) -> Result<Fetched> {
    let mut reader = match ObjectReader::start(client, key, etag, 0, None) {
        Ok(reader) => reader,
        Err(Refusal::Refused {
            status: 404, code, ..
        }) if code != "NoSuchBucket" => {
            return Ok(Fetched::Gone("deleted"));
        }
        Err(Refusal::Refused { status: 412, .. }) => return Ok(Fetched::Gone("written again")),
        Err(refusal) => return Err(client.error("cannot read", Some(key), refusal)),
    };
    let version = reader.etag().unwrap_or_default().to_string();
    let mut raw = Vec::new();
    reader
        .read_to_end(&mut raw)
        .with_context(|| format!("cannot read {}", client.shown(Some(key))))?;
    let by_name = Compression::from_path(std::path::Path::new(key)).0;
    let mut input = decode(
        client.shown(Some(key)),
        Box::new(std::io::Cursor::new(raw)),
        by_name,
    )?;
    let mut bytes = Vec::new();
    input
        .reader
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot decompress {}", input.name))?;
    Ok(Fetched::Body(bytes, version))
}

/// A stable text naming a batch's object versions, hashed into its id
/// (tagged apart from the file watcher's ids).
fn objects_key(objects: &[ObjectVersion]) -> String {
    let versions = objects
        .iter()
        .map(|o| format!("{}\u{0}{}", o.object, o.etag))
        .collect::<Vec<_>>()
        .join(";");
    format!("s3v1;{versions}")
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
        let v = |etag: &str| ObjectVersion {
            object: "s3://b/in/a.csv".into(),
            etag: etag.into(),
        };
        assert_ne!(objects_key(&[v("\"1\"")]), objects_key(&[v("\"2\"")]));
    }
}
