//! What the inbox follower keeps between scans (the versions handed on,
//! whole or part way, and the object ranges in the open batch), and
//! handing its batch on as `deliver` does for files: the checkpoint names
//! the batch's object ranges and id before --exec runs, and counts them
//! handed on only after --exec exited 0.

use std::collections::HashMap;
use std::io::Write;

use anyhow::{Context, Result};

use crate::client::s3::Client;
use crate::watch::Watcher;
use crate::watch::batch::Batch;
use crate::watch::checkpoint::{Checkpoint, ObjectRange, ObjectVersion, object_ranges_json};
use crate::watch::identity;

/// What the inbox follower keeps between scans.
pub(super) struct Inboxed {
    /// The bucket's client.
    pub(super) client: Client,
    /// The versions handed on (address → ETag).
    pub(super) handed: HashMap<String, String>,
    /// The versions handed on part way, and up to where (`end`).
    pub(super) partial: Vec<ObjectRange>,
    /// The object ranges in the open batch, in the order they were read.
    pub(super) in_batch: Vec<ObjectRange>,
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
    /// Hands on the open batch (as `deliver` does for files): the
    /// checkpoint names its object ranges and id before --exec runs, and
    /// counts them handed on only after --exec exited 0.
    pub(super) fn deliver_objects(&mut self, state: &mut Inboxed) -> Result<()> {
        if self.batch.rows == 0 {
            // Empty objects (or rejected lines only): nothing to send, but
            // they are read.
            state.handed_on();
            self.replay_id = None;
            self.batch = Batch::default();
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
        self.batch = Batch::default();
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
