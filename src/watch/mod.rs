//! `etl-watch`: follow files, stdin, an S3 prefix (`objects.rs`) or a
//! message broker (`broker/`), cut what arrives into batches, hand each
//! batch on (stdout or `--exec`), and move the checkpoint only past
//! batches that were handed on successfully.

pub mod broker;
pub mod checkpoint;
mod copies;
pub mod files;
pub mod identity;
pub mod objects;
mod records;
mod stdin;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::error::Outcome;
use crate::format::nulls::NullTokens;
use crate::progress::{Counts, Progress, Verbosity};
use crate::rejects::{Rejects, RejectsOptions};
use crate::wire::{Begin, End};
use checkpoint::{Checkpoint, Range, ranges_json};
use files::Tracked;

const PROGRAM: &str = "etl-watch";

/// Scans a rotated-away, drained file stays followed (late writes by a
/// program that has not reopened its log yet still arrive).
const IDLE_SCANS: u32 = 40;

/// Records waiting to be handed on.
#[derive(Default)]
struct Batch {
    records: Vec<u8>,
    rows: usize,
    bytes: usize,
    started: Option<Instant>,
}

impl Batch {
    fn push(&mut self, record: &[u8], input_bytes: usize) {
        self.records.extend_from_slice(record);
        self.records.push(b'\n');
        self.rows += 1;
        self.bytes += input_bytes;
        self.started.get_or_insert_with(Instant::now);
    }
}

struct Watcher<'a> {
    plan: &'a WatchPlan,
    progress: &'a Progress,
    rejects: Rejects,
    counts: Counts,
    batches: u64,
    headers: HashMap<(u64, u64, String), Vec<String>>,
    checkpoint_path: Option<PathBuf>,
    tracked: Vec<Tracked>,
    batch: Batch,
    /// --from-end applies to files found before anything was ever read
    /// (no checkpoint yet); files that appear later start at their start.
    first_scan: bool,
    /// The id of the batch being sent again after a restart.
    replay_id: Option<String>,
    /// What was read from files that have started over since (truncated
    /// or rewritten in place): a copy of it is not read again.
    consumed: Vec<copies::Consumed>,
    /// New files equal so far to what was read from a followed file.
    held: Vec<copies::Held>,
}

/// How arriving data is split into records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchFormat {
    /// Each line is a record: {"line", "file", "offset"}.
    Lines,
    /// Each line is a JSON object, passed on as it is.
    Ndjson,
    /// CSV with a header line in each file; values as text (an empty
    /// one, or a null token, null).
    Csv,
}

/// A checked `etl-watch` run.
#[derive(Debug)]
pub struct WatchPlan {
    /// Files, directories or globs to follow; empty: stdin.
    pub paths: Vec<PathBuf>,
    /// Read stdin instead of files.
    pub stdin: bool,
    /// How lines become records.
    pub format: WatchFormat,
    /// CSV field texts that are null (`--null-value`).
    pub nulls: NullTokens,
    /// Close a batch at this many records.
    pub batch_rows: usize,
    /// Close a batch at this many bytes of input.
    pub batch_bytes: usize,
    /// Close a non-empty batch after this many seconds.
    pub batch_interval: f64,
    /// Pipe each batch into `sh -c` this.
    pub exec: Option<String>,
    /// Retries of a failed --exec batch.
    pub max_retries: u32,
    /// Where positions are kept between runs.
    pub checkpoint: Option<PathBuf>,
    /// Handle what has arrived, then exit.
    pub once: bool,
    /// Read files seen for the first time from their current end.
    pub from_end: bool,
    /// Milliseconds between looks for changes.
    pub poll_interval: u64,
    /// Poll only, no inotify.
    pub poll: bool,
    /// The stream name in control lines.
    pub stream: String,
    /// Where lines that are no valid records go.
    pub rejects: RejectsOptions,
    /// A message broker to read instead of files.
    pub broker: Option<broker::BrokerPlan>,
    /// An S3 prefix (or glob over keys) to read instead of files.
    pub inbox: Option<objects::Inbox>,
    /// Create the broker's stream when it is missing.
    pub create_stream: bool,
    /// Where to start again when the broker lost the group, consumer or
    /// stream the checkpoint had read from.
    pub restart_from: Option<broker::RestartFrom>,
    /// How much to say on stderr.
    pub verbosity: Verbosity,
}

/// Runs `etl-watch` as planned.
pub fn run(plan: WatchPlan) -> Result<Outcome> {
    let args = &plan;
    let stdin = plan.stdin;
    let progress = Progress::new(PROGRAM, args.verbosity, None);
    let _lock = match &args.checkpoint {
        Some(path) => Some(checkpoint::lock(path)?),
        None => None,
    };
    // A broker's rejected messages are acknowledged once written: the
    // file is added to, never emptied by the next run.
    let rejects = if args.broker.is_some() {
        args.rejects.open_append()?
    } else {
        args.rejects.open()?
    };
    let mut watcher = Watcher {
        plan: args,
        progress: &progress,
        rejects,
        counts: Counts::default(),
        batches: 0,
        headers: HashMap::new(),
        checkpoint_path: args.checkpoint.clone(),
        tracked: Vec::new(),
        batch: Batch::default(),
        first_scan: true,
        replay_id: None,
        consumed: Vec::new(),
        held: Vec::new(),
    };
    if let Some(broker) = &args.broker {
        let options = broker::BrokerOptions {
            create_stream: args.create_stream,
            from_end: args.from_end,
            batch_rows: args.batch_rows,
            restart: args.restart_from,
        };
        watcher.follow_broker(broker, options)?;
    } else if let Some(inbox) = &args.inbox {
        watcher.follow_objects(inbox)?;
    } else if stdin {
        watcher.follow_stdin()?;
    } else {
        watcher.follow_files()?;
    }
    watcher.rejects.finish()?;
    let counts = watcher.counts;
    progress.detail(&format!("{} batches handed on", watcher.batches));
    progress.summary(&counts);
    Ok(if counts.rejected > 0 {
        Outcome::Rejected
    } else {
        Outcome::Ok
    })
}

impl Watcher<'_> {
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

    /// Has the open batch reached --batch-rows or --batch-bytes?
    fn batch_full(&self) -> bool {
        self.batch.rows >= self.plan.batch_rows || self.batch.bytes >= self.plan.batch_bytes
    }

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
    fn deliver(&mut self) -> Result<()> {
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

    fn exec(&self, cmd: &str, payload: &[u8]) -> Result<()> {
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

    fn follow_files(&mut self) -> Result<()> {
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
}

impl Watcher<'_> {
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

/// A batch as it is handed on: its begin line, its record lines, its end
/// line (the one framing for file, stdin and broker batches).
impl Watcher<'_> {
    /// The open batch framed as a stream: a begin line naming its id, its
    /// records, an end line with its positions (files or objects).
    fn framed_batch(&self, id: Option<String>, positions: serde_json::Value) -> Vec<u8> {
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

fn framed(begin: &Begin, records: &[u8], end: &End) -> Vec<u8> {
    let mut payload = Vec::with_capacity(records.len() + 512);
    payload.extend_from_slice(begin.to_line().as_bytes());
    payload.push(b'\n');
    payload.extend_from_slice(records);
    payload.extend_from_slice(end.to_line().as_bytes());
    payload.push(b'\n');
    payload
}
