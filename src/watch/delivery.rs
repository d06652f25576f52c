//! Handing the open batch on: to stdout, or through --exec with retries.
//! The checkpoint names a batch before --exec runs and moves past it only
//! after --exec exits 0. `deliver` does this for files and stdin, whose
//! batch id names the byte ranges it holds; objects and brokers keep
//! checkpoints of their own and share the framing and --exec with it.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::batch::{Batch, framed};
use super::checkpoint::{Checkpoint, Range, ranges_json};
use super::files::Tracked;
use super::{PROGRAM, Watcher, identity};
use crate::wire::{Begin, End};

impl Watcher<'_> {
    /// Has the open batch reached --batch-rows or --batch-bytes?
    pub(super) fn batch_full(&self) -> bool {
        self.batch.rows >= self.plan.batch_rows || self.batch.bytes >= self.plan.batch_bytes
    }

    /// Writes the checkpoint: where each followed file is, and, with
    /// `pending_id`, the batch in flight (`pending`).
    fn save_checkpoint(&mut self, pending: Vec<Range>, pending_id: Option<String>) -> Result<()> {
        let Some(path) = &self.checkpoint_path else {
            return Ok(());
        };
        let checkpoint = Checkpoint {
            files: self
                .tracked
                .iter_mut()
                .map(Tracked::entry)
                .collect::<Result<_>>()?,
            pending,
            pending_id,
            ..Checkpoint::default()
        };
        checkpoint.save(path)
    }

    /// Hands the batch on: to stdout, or through --exec with retries. The
    /// checkpoint names the batch before --exec runs and moves past it only
    /// after --exec exits 0.
    pub(super) fn deliver(&mut self) -> Result<()> {
        if self.batch.rows == 0 {
            // Nothing to hand on, but bytes may have been read (blank lines).
            for t in &mut self.tracked {
                t.commit();
            }
            // A batch to send again that came to nothing (its bytes are
            // gone or changed) must not lend its id to the next batch,
            // which etl-load would skip as already committed.
            self.replay_id = None;
            self.batch = Batch::default();
            return self.save_checkpoint(Vec::new(), None);
        }
        let ranges: Vec<Range> = self
            .tracked
            .iter()
            .filter_map(Tracked::pending_range)
            .collect();
        if self.checkpoint_path.is_some() {
            for t in &mut self.tracked {
                if t.read > t.committed {
                    t.seal_read()?;
                }
            }
        }
        let positions = ranges_json(&ranges);
        // A batch sent again after a restart keeps the id it was first
        // sent with, even if one of its files has gone since.
        let id = match self.replay_id.take() {
            Some(id) => Some(id),
            None if ranges.is_empty() => None,
            None => Some(identity::Hasher::of(positions_key(&ranges).as_bytes())),
        };
        let payload = self.framed_batch(id.clone(), positions);

        match &self.plan.exec {
            Some(cmd) => {
                self.save_checkpoint(ranges, id)?;
                self.exec(cmd, &payload)?;
            }
            None => {
                let mut out = std::io::stdout().lock();
                out.write_all(&payload)
                    .and_then(|()| out.flush())
                    .context("writing to stdout")?;
            }
        }
        for t in &mut self.tracked {
            t.commit();
        }
        self.counts.written += self.batch.rows as u64;
        self.batches += 1;
        self.batch = Batch::default();
        self.save_checkpoint(Vec::new(), None)
    }

    /// Pipes `payload` into `sh -c cmd`; a failed run is retried up to
    /// --max-retries times, waiting 1, 2, 4... seconds between.
    pub(super) fn exec(&self, cmd: &str, payload: &[u8]) -> Result<()> {
        let mut delay = Duration::from_secs(1);
        for attempt in 0..=self.plan.max_retries {
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .stdin(Stdio::piped())
                .spawn()
                .context("cannot start sh for --exec")?;
            if let Some(mut stdin) = child.stdin.take() {
                // A command that stops reading early decides by its exit code.
                let _ = stdin.write_all(payload);
            }
            let status = child.wait().context("--exec command")?;
            if status.success() {
                return Ok(());
            }
            if attempt < self.plan.max_retries {
                self.progress.warn(&format!(
                    "--exec failed ({status}); retrying in {} s",
                    delay.as_secs()
                ));
                std::thread::sleep(delay);
                delay *= 2;
            } else {
                bail!(
                    "--exec failed ({status}) {} times; the batch stays in the checkpoint and is sent again on the next run",
                    self.plan.max_retries + 1
                );
            }
        }
        Ok(())
    }

    /// The open batch framed as a stream: a begin line naming its id, its
    /// records, an end line with its positions (files or objects).
    pub(super) fn framed_batch(&self, id: Option<String>, positions: serde_json::Value) -> Vec<u8> {
        let begin = Begin {
            stream: self.plan.stream.clone(),
            source: Some(PROGRAM.into()),
            schema: self.schema(),
            from: None,
            batch: id,
        };
        let end = End {
            stream: self.plan.stream.clone(),
            rows: self.batch.rows as u64,
            bookmark: None,
            positions: Some(positions),
        };
        framed(&begin, &self.batch.records, &end)
    }
}

/// A stable text naming a batch's ranges and what they hold, hashed into
/// its id: a new file on a reused inode, or a file rewritten in place,
/// gives its batches new ids even where their byte ranges are the old
/// ones. The `v2` tag keeps these ids apart from those of older releases
/// (which named positions only), see `state::BATCH_TABLE`.
fn positions_key(ranges: &[Range]) -> String {
    let ranges = ranges
        .iter()
        .map(|r| {
            format!(
                "{}:{}:{}:{}:{}:{}-{}:{}",
                r.id.dev,
                r.id.ino,
                r.id.born.unwrap_or(0),
                r.id.fp,
                r.id.fp_len,
                r.start,
                r.end,
                r.hash.as_deref().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join(";");
    format!("v2;{ranges}")
}
