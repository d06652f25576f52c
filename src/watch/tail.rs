//! Following files by name, as `tail -F` does: the loop that scans the
//! paths (files, directories, globs) for files new, rotated, truncated or
//! gone, reads the complete records of each into batches, and, after a
//! restart, first sends the unconfirmed batch of the last run again.
//! inotify wakes it early; without it, it polls.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use super::checkpoint::{self, Checkpoint, Range};
use super::files::{self, Tracked};
use super::{WatchFormat, Watcher, copies, identity};

/// Scans a rotated-away, drained file stays followed (late writes by a
/// program that has not reopened its log yet still arrive).
const IDLE_SCANS: u32 = 40;

impl Watcher<'_> {
    /// Follows the planned paths until stopped (or, with --once, through
    /// one scan).
    pub(super) fn follow_files(&mut self) -> Result<()> {
        if let Some(path) = &self.checkpoint_path {
            let checkpoint = Checkpoint::load(path)?;
            let restored = files::restore(&checkpoint)?;
            self.first_scan = checkpoint.files.is_empty();
            self.replay_id = checkpoint.pending_id.clone();
            for w in restored.warnings {
                self.progress.warn(&w);
            }
            self.tracked = restored.tracked;
            for consumed in restored.consumed {
                self.remember(consumed);
            }
            if !checkpoint.pending.is_empty() {
                self.progress
                    .detail("sending the unconfirmed batch of the last run again");
                self.replay(&checkpoint.pending)?;
            }
        }
        let interval = Duration::from_secs_f64(self.plan.batch_interval);
        let (_watcher, changes) = self.notifications();
        loop {
            self.scan()?;
            self.warn_uncopied();
            for index in 0..self.tracked.len() {
                self.drain(index)?;
            }
            let due = self.batch.started.is_some_and(|s| s.elapsed() >= interval);
            // Bytes read without a record (blank or rejected lines) move the
            // checkpoint too, or a restart would read them again.
            let idle_bytes =
                self.batch.rows == 0 && self.tracked.iter().any(|t| t.read > t.committed);
            if self.plan.once || due || idle_bytes {
                self.deliver()?;
            }
            if self.plan.once {
                return Ok(());
            }
            // Wake for the next poll, or when the open batch is due.
            let mut poll = Duration::from_millis(self.plan.poll_interval);
            if let Some(started) = self.batch.started {
                poll = poll.min(interval.saturating_sub(started.elapsed()));
            }
            match &changes {
                // Wake at the first change, or at the next poll at the latest.
                Some(changes) => {
                    if changes.recv_timeout(poll).is_ok() {
                        while changes.try_recv().is_ok() {}
                    }
                }
                None => std::thread::sleep(poll),
            }
        }
    }

    /// Looks for files new, moved, rewritten or gone, once.
    fn scan(&mut self) -> Result<()> {
        for t in &mut self.tracked {
            t.present = false;
        }
        let mut fresh = Vec::new();
        for path in files::candidates(&self.plan.paths) {
            if self.is_own_file(&path) {
                continue;
            }
            let Ok(mut file) = std::fs::File::open(&path) else {
                continue;
            };
            // A file changing under our feet is looked at again next scan.
            let Ok(id) = files::identify(&mut file) else {
                continue;
            };
            let known = self
                .tracked
                .iter_mut()
                .find(|t| t.id.dev == id.dev && t.id.ino == id.ino);
            match known {
                Some(t) => {
                    t.present = true;
                    t.path = path;
                }
                None => fresh.push((id, path, file)),
            }
        }
        let mut index = 0;
        while index < self.tracked.len() {
            if self.tracked[index].read > self.tracked[index].committed
                && self.tracked[index].rewritten()?
            {
                // Hand on what was read from the old content while its
                // positions still describe it.
                self.deliver()?;
            }
            let consumed = self.tracked[index].consumed();
            if self.tracked[index].check()? {
                if let Some(consumed) = consumed {
                    self.remember(consumed);
                }
                self.progress.warn(&format!(
                    "{} was truncated or rewritten; reading it again from the start",
                    self.tracked[index].path.display()
                ));
            }
            if self.tracked[index].may_drop(if self.plan.once { 0 } else { IDLE_SCANS })? {
                self.tracked.remove(index);
            } else {
                index += 1;
            }
        }
        // New files last: a followed file truncated by copytruncate has
        // started over by now, and its copy is known as one.
        for (id, path, file) in fresh {
            self.follow_new(id, path, file)?;
        }
        self.first_scan = false;
        Ok(())
    }

    /// Starts following a file seen for the first time: from its start, or
    /// its end (--from-end, before anything was read), or where a file it
    /// copies was read up to; a copy being written waits.
    fn follow_new(
        &mut self,
        id: checkpoint::FileId,
        path: PathBuf,
        file: std::fs::File,
    ) -> Result<()> {
        let size = file.metadata()?.len();
        if self.plan.from_end && self.first_scan {
            self.progress
                .detail(&format!("following {}", path.display()));
            self.tracked.push(Tracked::new(id, path, file, size));
            return Ok(());
        }
        match self.copy_of(&id, &file, size)? {
            copies::Copy::New => {
                self.progress
                    .detail(&format!("following {}", path.display()));
                self.tracked.push(Tracked::new(id, path, file, 0));
            }
            copies::Copy::Wait => {}
            copies::Copy::Of { offset, prefix, of } => {
                self.progress.warn(&format!(
                    "{} is a copy of the {offset} bytes read from {} (copytruncate); following it from byte {offset}",
                    path.display(),
                    of.display()
                ));
                let mut t = Tracked::new(id, path, file, offset);
                t.prefix_read = Some(prefix);
                t.prefix_committed = Some(prefix);
                self.tracked.push(t);
            }
        }
        Ok(())
    }

    /// Reads what is complete in file `index` into the batch, handing on
    /// full batches as it goes.
    fn drain(&mut self, index: usize) -> Result<()> {
        let mut grow = 1usize;
        let mut last_len = 0usize;
        loop {
            let room = self
                .plan
                .batch_bytes
                .saturating_sub(self.batch.bytes)
                .max(4096)
                .saturating_mul(grow);
            let chunk_start = self.tracked[index].read;
            let chunk = self.tracked[index].complete_bytes(room)?;
            if chunk.is_empty() {
                return Ok(());
            }
            let (name, mut base) = {
                let t = &self.tracked[index];
                (t.path.display().to_string(), t.read)
            };
            let mut body: &[u8] = &chunk;
            let header = if self.plan.format == WatchFormat::Csv {
                if base == 0 {
                    // The header line itself is not a record.
                    let Some(h) = self.header(index)? else {
                        return Ok(());
                    };
                    let header_len = self.tracked[index].first_line()?.map_or(0, |l| l.len());
                    if header_len > body.len() {
                        return Ok(());
                    }
                    body = &body[header_len..];
                    base = header_len as u64;
                    self.tracked[index].advance(base, &chunk, chunk_start);
                    Some(h)
                } else {
                    self.header(index)?
                }
            } else {
                None
            };
            let parsed = self.parse(&name, base, body, header.as_deref())?;
            if parsed.used == 0 && parsed.records.is_empty() {
                let unread_beyond = self.tracked[index].size()? > base + body.len() as u64;
                let grew = chunk.len() > last_len;
                last_len = chunk.len();
                if unread_beyond && grew {
                    // One record (a long quoted CSV field) is bigger than
                    // the room: read further rather than stall.
                    grow = grow.saturating_mul(2);
                    continue;
                }
                return Ok(());
            }
            grow = 1;
            last_len = 0;
            // A batch closes right after the record that fills it, so
            // --batch-rows and --batch-bytes hold however much one read
            // brought in; the rest of the chunk goes into the next batch.
            for record in &parsed.records {
                self.counts.read += 1;
                self.batch.push(&record.json, record.input);
                if self.batch_full() {
                    self.tracked[index].advance(base + record.end as u64, &chunk, chunk_start);
                    self.deliver()?;
                }
            }
            self.tracked[index].advance(base + parsed.used as u64, &chunk, chunk_start);
            if self.batch_full() {
                self.deliver()?;
            }
            if parsed.used < body.len() {
                return Ok(());
            }
        }
    }

    /// Sends again, first, the batch that was in flight when the last run
    /// stopped: same ranges, same records, same batch id.
    fn replay(&mut self, pending: &[Range]) -> Result<()> {
        for range in pending {
            let Some(index) = self.tracked.iter().position(|t| t.id.same_file(&range.id)) else {
                self.progress.warn(&format!(
                    "{} is gone; its bytes {}..{} from the unconfirmed batch cannot be sent again",
                    range.path.display(),
                    range.start,
                    range.end
                ));
                continue;
            };
            let bytes = match self.tracked[index].bytes(range.start, range.end) {
                Ok(bytes) => bytes,
                Err(e) => {
                    self.progress.warn(&format!(
                        "{e:#}: those bytes of the unconfirmed batch cannot be sent again"
                    ));
                    continue;
                }
            };
            if let Some(hash) = &range.hash
                && identity::Hasher::of(&bytes) != *hash
            {
                // Rewritten since: what is there now is read as new data.
                self.progress.warn(&format!(
                    "{} changed since the unconfirmed batch was cut; its bytes {}..{} cannot be sent again",
                    range.path.display(),
                    range.start,
                    range.end
                ));
                continue;
            }
            let name = self.tracked[index].path.display().to_string();
            let header = if self.plan.format == WatchFormat::Csv {
                self.header(index)?
            } else {
                None
            };
            let (base, body) = if self.plan.format == WatchFormat::Csv && range.start == 0 {
                let header_len = self.tracked[index].first_line()?.map_or(0, |l| l.len());
                (header_len as u64, &bytes[header_len.min(bytes.len())..])
            } else {
                (range.start, &bytes[..])
            };
            let parsed = self.parse(&name, base, body, header.as_deref())?;
            for record in &parsed.records {
                self.counts.read += 1;
                self.batch.push(&record.json, record.input);
            }
            self.tracked[index].resend(range.start, range.end, &bytes);
        }
        self.deliver()
    }

    /// inotify on the watched paths (their directories, so that renames
    /// and new files are seen). `None`, and polling alone, when --poll is
    /// given, in --once mode, or when the system refuses.
    fn notifications(
        &self,
    ) -> (
        Option<notify::RecommendedWatcher>,
        Option<std::sync::mpsc::Receiver<()>>,
    ) {
        use notify::Watcher as _;
        if self.plan.poll || self.plan.once {
            return (None, None);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let watcher = notify::recommended_watcher(move |_event| {
            let _ = tx.send(());
        });
        let mut watcher = match watcher {
            Ok(w) => w,
            Err(e) => {
                self.progress.detail(&format!(
                    "no inotify ({e}); polling every {} ms",
                    self.plan.poll_interval
                ));
                return (None, None);
            }
        };
        for path in &self.plan.paths {
            let dir = if path.is_dir() {
                path.clone()
            } else {
                path.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), PathBuf::from)
            };
            if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
                self.progress
                    .detail(&format!("cannot watch {} ({e}); polling it", dir.display()));
            }
        }
        (Some(watcher), Some(rx))
    }

    /// The checkpoint, its lock and temporary files, and the rejects file
    /// are never input, even inside a watched directory.
    fn is_own_file(&self, path: &std::path::Path) -> bool {
        let same_name_prefix = |own: &std::path::Path| {
            let (Some(name), Some(own_name)) = (path.file_name(), own.file_name()) else {
                return false;
            };
            let dir = |p: &std::path::Path| {
                p.parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), PathBuf::from)
                    .canonicalize()
                    .ok()
            };
            dir(path) == dir(own)
                && name
                    .to_string_lossy()
                    .starts_with(own_name.to_string_lossy().as_ref())
        };
        self.checkpoint_path
            .as_deref()
            .is_some_and(same_name_prefix)
            || self
                .plan
                .rejects
                .file
                .as_deref()
                .is_some_and(same_name_prefix)
    }
}
