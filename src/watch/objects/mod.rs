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
//!
//! This file holds the inbox and the follower's loop (list, read what is
//! new, send the unconfirmed batch again); `read.rs` fetches one object
//! version and reads its records into the batch; `delivery.rs` hands a
//! batch on and keeps the checkpoint.

mod delivery;
mod read;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::Watcher;
use super::checkpoint::{Checkpoint, ObjectRange};
use crate::client::s3::{Client, ObjectUrl};
use crate::error::usage;
use delivery::Inboxed;
use read::{Span, Stop};

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
}
