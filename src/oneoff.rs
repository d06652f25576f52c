//! One-off loads: `etl-load wh.db -t orders orders.csv` reads its input with
//! `etl-extract`'s code, not a second reader.
//!
//! The extract runs on a thread and writes the wire into an in-process
//! pipe; the load driver reads the other end exactly as it reads
//! `etl-extract orders.csv | etl-load wh.db -t orders`. So framing, typing,
//! truncation (a cut file has no end line: nothing commits), counts and
//! rejects behave as in the two-stage pipe. Both stages share one rejects
//! file and one `--max-rejects` budget (`Rejects::share`); rows the extract
//! rejects never reach the wire, so the load adds them to its summary. A
//! row the load rejects is named by its line in the user's file (the
//! extract notes which file line each wire line holds, `LineMap`), with
//! its line in the wire as a second coordinate.
//! When the extract fails, its error, not "upstream ended early", is the
//! run's error: the reader joins the thread at end of input, before the
//! load can commit.

use std::io::{self, BufReader, Read};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use anyhow::Result;

use crate::extract::{ExtractPlan, LineMap, run_into};
use crate::progress::{Counts, Progress, Verbosity};
use crate::rejects::Rejects;
use crate::source::input::Input;

/// How the extract thread ended, once the load has read the whole wire.
#[derive(Default)]
struct Ended {
    /// Rows the extract rejected (they are not on the wire).
    rejected: u64,
    /// The source's remarks, for warnings.
    remarks: Vec<String>,
    /// Why the extract failed.
    error: Option<anyhow::Error>,
}

/// The extract side of a one-off load, as the load sees it.
pub struct Upstream {
    ended: Arc<Mutex<Ended>>,
    lines: Arc<LineMap>,
}

impl Upstream {
    /// Rows the extract rejected (known once the wire reached its end).
    pub fn rejected(&self) -> u64 {
        self.lock().rejected
    }

    /// The extract's remarks (warnings about the input).
    pub fn remarks(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().remarks)
    }

    /// The run's real error: the extract's, when it failed (the load then
    /// saw only a cut stream or a read error), else the load's own.
    pub fn explain(&self, err: anyhow::Error) -> anyhow::Error {
        self.lock().error.take().unwrap_or(err)
    }

    /// The input and line that wire line `wire` came from (a row the load
    /// refuses is named by its line in the user's file).
    pub fn origin(&self, wire: u64) -> Option<(String, u64)> {
        self.lines.find(wire)
    }

    /// The load has written or rejected every wire line before `wire`.
    pub fn passed(&self, wire: u64) {
        self.lines.forget_before(wire);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ended> {
        self.ended.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts the extract of `plan` on a thread; returns the wire to read and
/// a handle on how the extract ended. Rejects go to `rejects`' file.
pub fn start(plan: ExtractPlan, rejects: &Rejects) -> Result<(Input, Upstream)> {
    // What the load says of the wire itself (its rejects name the file's
    // own line, with the wire's as a second coordinate).
    let name = plan
        .inputs
        .wire_name()
        .unwrap_or_else(|| plan.stream.clone());
    let (reader, writer) = io::pipe()?;
    let mut shared = rejects.share();
    let lines = Arc::new(LineMap::default());
    let noted = Arc::clone(&lines);
    let thread = std::thread::Builder::new()
        .name("extract".into())
        .spawn(move || {
            // The load draws the bar and prints the summary; warnings are
            // handed over as remarks.
            let quiet = Verbosity {
                quiet: true,
                verbose: false,
                log_json: false,
            };
            let progress = Progress::new("etl-load", quiet, None);
            let mut out = io::BufWriter::with_capacity(1 << 16, writer);
            let result = run_into(&plan, &mut out, &progress, &mut shared, Some(&noted));
            // The pipe closes here, when `out` is dropped: the load sees
            // the end of its input only after the result is known.
            drop(out);
            result
        })?;
    let ended = Arc::new(Mutex::new(Ended::default()));
    let wire = Wire {
        pipe: reader,
        thread: Some(thread),
        ended: Arc::clone(&ended),
    };
    let input = Input {
        name,
        reader: Box::new(BufReader::with_capacity(1 << 16, wire)),
    };
    Ok((input, Upstream { ended, lines }))
}

type ExtractResult = Result<(Counts, Vec<String>)>;

/// The read end of the pipe; at its end it waits for the extract and
/// turns a failed extract into a read error, so nothing commits.
struct Wire {
    pipe: io::PipeReader,
    thread: Option<JoinHandle<ExtractResult>>,
    ended: Arc<Mutex<Ended>>,
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.pipe.read(buf)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        let Some(thread) = self.thread.take() else {
            return Ok(0);
        };
        let result = match thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        let mut ended = self.ended.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok((counts, remarks)) => {
                ended.rejected = counts.rejected;
                ended.remarks = remarks;
                Ok(0)
            }
            Err(err) => {
                let message = format!("{err:#}");
                ended.error = Some(err);
                Err(io::Error::other(message))
            }
        }
    }
}
