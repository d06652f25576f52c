//! `etl-watch`: follow files, stdin, an S3 prefix or a message broker, cut
//! what arrives into batches, hand each batch on (stdout or `--exec`), and
//! move the checkpoint only past batches that were handed on successfully.
//!
//! This file holds the checked plan, the state a run shares and `run`,
//! which picks the follower: files (`tail.rs`, the loop; `files.rs`, one
//! followed file; `copies.rs`, copies of bytes already read), stdin
//! (`stdin.rs`), an S3 prefix (`objects/`) or a broker (`broker/`). They
//! share the parsing of records (`records.rs`), the batch and its framing
//! (`batch.rs`), handing a batch on (`delivery.rs`), and the checkpoint
//! file (`checkpoint.rs`, `identity.rs`).

mod batch;
pub mod broker;
pub mod checkpoint;
mod copies;
mod delivery;
pub mod files;
pub mod identity;
pub mod objects;
mod records;
mod stdin;
mod tail;

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Result;

use crate::error::Outcome;
use crate::format::nulls::NullTokens;
use crate::progress::{Counts, Progress, Verbosity};
use crate::rejects::{Rejects, RejectsOptions};
use batch::{Batch, framed};
use files::Tracked;

const PROGRAM: &str = "etl-watch";

/// One run's state, shared by every follower: what was read and rejected,
/// the open batch, and the files followed.
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
