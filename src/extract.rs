//! `etl-extract`: check the arguments, open the sources, write the wire.

use std::cell::RefCell;
use std::io::Write;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::error::Outcome;
use crate::incremental::{Incremental, Verdict};
use crate::output;
use crate::progress::{Counts, Progress, Verbosity};
use crate::rejects::{Rejects, RejectsOptions};
use crate::source::{Context, Taken, Window};
use crate::store::{Readable, Store};
use crate::wire::{Begin, End};

const PROGRAM: &str = "etl-extract";

/// A checked `etl-extract` run.
#[derive(Debug)]
pub struct ExtractPlan {
    /// What to read: files, a database's table or query, a dataset, an
    /// HTTP API.
    pub inputs: Box<dyn Readable>,
    /// The stream's name (keys its bookmark).
    pub stream: String,
    /// `--cursor` and friends, for an incremental run.
    pub incremental: Option<IncrementalPlan>,
    /// Where malformed rows go, and how many may be.
    pub rejects: RejectsOptions,
    /// How much to say on stderr.
    pub verbosity: Verbosity,
}

/// The incremental part of an extract.
#[derive(Debug)]
pub struct IncrementalPlan {
    /// The cursor column.
    pub cursor: String,
    /// The store whose bookmark the run starts after (`--state`).
    pub state: Option<Box<dyn Store>>,
    /// Backfill window: inclusive lower bound.
    pub since: Option<Value>,
    /// Backfill window: exclusive upper bound.
    pub until: Option<Value>,
}

/// Runs `etl-extract` as planned.
pub fn run(plan: ExtractPlan) -> Result<Outcome> {
    let progress = Progress::new(PROGRAM, plan.verbosity, plan.inputs.size());
    let mut rejects = plan.rejects.open()?;
    let mut out = output::stdout();
    let (counts, remarks) = run_into(&plan, &mut out, &progress, &mut rejects, None)?;
    for remark in remarks {
        progress.warn(&remark);
    }
    progress.summary(&counts);
    Ok(if counts.rejected > 0 {
        Outcome::Rejected
    } else {
        Outcome::Ok
    })
}

/// Which input line each record line of the wire came from, kept while a
/// one-off load may still name it (`etl-load FILE.csv` names a row the
/// table refuses by its line in FILE, not in the wire between the halves).
/// Only the lines where the offset between the two changes are kept (a
/// record over several CSV lines, a rejected row, the next file), and the
/// load forgets those it has passed, so memory stays flat.
#[derive(Debug, Default)]
pub struct LineMap {
    inner: std::sync::Mutex<Marks>,
}

#[derive(Debug, Default)]
struct Marks {
    /// The inputs' names, in the order they were read.
    inputs: Vec<String>,
    /// (wire line, input, input line - wire line) where the offset changes.
    marks: std::collections::VecDeque<(u64, usize, i64)>,
}

impl LineMap {
    fn lock(&self) -> std::sync::MutexGuard<'_, Marks> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes that wire line `wire` holds line `line` of `input`.
    fn note(&self, wire: u64, input: &str, line: u64) {
        let mut m = self.lock();
        let index = match m.inputs.iter().rposition(|n| n == input) {
            Some(i) => i,
            None => {
                m.inputs.push(input.to_string());
                m.inputs.len() - 1
            }
        };
        let delta = line as i64 - wire as i64;
        if m.marks
            .back()
            .is_some_and(|&(_, i, d)| i == index && d == delta)
        {
            return;
        }
        m.marks.push_back((wire, index, delta));
    }

    /// The input and line wire line `wire` came from, if it is a record.
    pub fn find(&self, wire: u64) -> Option<(String, u64)> {
        let m = self.lock();
        let after = m.marks.partition_point(|&(w, _, _)| w <= wire);
        let &(_, index, delta) = m.marks.get(after.checked_sub(1)?)?;
        let line = u64::try_from(wire as i64 + delta).ok()?;
        Some((m.inputs.get(index)?.clone(), line))
    }

    /// Forgets what is needed only for wire lines before `wire`.
    pub fn forget_before(&self, wire: u64) {
        let mut m = self.lock();
        while m.marks.get(1).is_some_and(|&(w, _, _)| w <= wire) {
            m.marks.pop_front();
        }
    }
}

/// Writes the wire of `plan` (begin, records, end) into `out`; malformed
/// rows go to `rejects`. Returns the counts and the source's remarks (for
/// warnings). `etl-extract` writes to stdout; `etl-load FILE.csv` writes
/// into a pipe its load driver reads (see `oneoff`), and keeps in `lines`
/// where each record line came from.
pub fn run_into(
    plan: &ExtractPlan,
    out: &mut dyn Write,
    progress: &Progress,
    rejects: &mut Rejects,
    lines: Option<&LineMap>,
) -> Result<(Counts, Vec<String>)> {
    // Records and control lines share the writer.
    let out = RefCell::new(out);

    let mut incremental = match &plan.incremental {
        Some(inc) => {
            let stored = match &inc.state {
                Some(store) => store.read_bookmark(&plan.stream)?,
                None => None,
            };
            if let Some(bm) = &stored {
                progress.detail(&format!(
                    "stream {:?} starts after bookmark {bm}",
                    plan.stream
                ));
            }
            Some(Incremental::new(
                &inc.cursor,
                stored.as_ref(),
                inc.since.clone(),
                inc.until.clone(),
            )?)
        }
        None => None,
    };

    let origin = crate::source::Origin::default();
    let mut cx = Context {
        progress,
        rejects,
        read: 0,
        at: lines.map(|_| &origin),
    };
    let mut begin = Begin {
        stream: plan.stream.clone(),
        source: None,
        schema: Vec::new(),
        // Only a run that keeps state says where it started, so that the
        // load can refuse it if another run moved the bookmark meanwhile.
        from: incremental
            .as_ref()
            .filter(|_| plan.incremental.as_ref().is_some_and(|i| i.state.is_some()))
            .map(Incremental::starting_point),
        batch: None,
    };
    // The SQL range is fixed before the filter starts moving the bookmark.
    let window_bounds = incremental
        .as_ref()
        .map(|inc| (inc.lower_bound().cloned(), inc.upper_bound().cloned()));
    let mut written = 0u64;
    let mut skipped = 0u64;
    let mut remarks = Vec::new();
    {
        let mut emit = |record: &[u8]| -> Result<Taken> {
            if let Some(inc) = incremental.as_mut() {
                match inc.judge(record)? {
                    Verdict::Emit => {}
                    Verdict::Skip => {
                        skipped += 1;
                        return Ok(Taken::Done);
                    }
                    Verdict::NoCursor => {
                        return Ok(Taken::Rejected(format!(
                            "cursor column {:?} is null or missing",
                            inc.cursor()
                        )));
                    }
                }
            }
            let mut out = out.borrow_mut();
            out.write_all(record)?;
            out.write_all(b"\n")?;
            written += 1;
            if let Some(lines) = lines {
                // The begin line is the wire's line 1.
                origin.with(|input, line| lines.note(written + 1, input, line));
            }
            if written.is_multiple_of(8192) {
                progress.set_rows(written);
            }
            Ok(Taken::Done)
        };
        let window =
            plan.incremental
                .as_ref()
                .zip(window_bounds.as_ref())
                .map(|(inc, (lower, upper))| Window {
                    column: &inc.cursor,
                    lower: lower.as_ref(),
                    upper: upper.as_ref(),
                });
        let opened = plan.inputs.open_source(window, &mut cx)?;
        for warning in &opened.warnings {
            progress.warn(warning);
        }
        for detail in &opened.details {
            progress.detail(detail);
        }
        let mut source = opened.source;
        begin.source = Some(opened.name);
        begin.schema = source.schema();
        // Begun before the source reads on: a run that fails from here on
        // is a cut stream downstream, never an empty one.
        write_begin(&out, &begin)?;
        source.run(&mut emit, &mut cx)?;
        remarks.extend(source.remarks());
        out.borrow_mut().flush().context("writing to stdout")?;
    }
    let read = cx.read;
    let rejected = cx.rejects.count();
    cx.rejects.finish()?;
    if read != written + skipped + rejected {
        bail!(
            "internal accounting error: {read} rows read, {written} written, {skipped} skipped, {rejected} rejected"
        );
    }
    let end = End {
        stream: plan.stream.clone(),
        rows: written,
        bookmark: incremental.as_ref().and_then(Incremental::bookmark),
        positions: None,
    };
    write_line(&out, &end.to_line())?;
    Ok((
        Counts {
            read,
            written,
            rejected,
            skipped,
        },
        remarks,
    ))
}

fn write_begin(out: &RefCell<&mut dyn Write>, begin: &Begin) -> Result<()> {
    write_line(out, &begin.to_line())
}

/// Writes a control line and flushes, so that the records before it and
/// the line itself are on their way at once.
fn write_line(out: &RefCell<&mut dyn Write>, line: &str) -> Result<()> {
    let mut out = out.borrow_mut();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .context("writing to stdout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_lines_map_to_their_file_lines_in_flat_memory() {
        let map = LineMap::default();
        // a.csv: lines 2, 3 (a record over lines 3-4), 6 (5 was rejected).
        map.note(2, "a.csv", 2);
        map.note(3, "a.csv", 3);
        map.note(4, "a.csv", 5);
        map.note(5, "a.csv", 6);
        map.note(6, "b.csv", 2);
        assert_eq!(map.find(1), None);
        assert_eq!(map.find(2), Some(("a.csv".into(), 2)));
        assert_eq!(map.find(3), Some(("a.csv".into(), 3)));
        assert_eq!(map.find(4), Some(("a.csv".into(), 5)));
        assert_eq!(map.find(5), Some(("a.csv".into(), 6)));
        assert_eq!(map.find(6), Some(("b.csv".into(), 2)));
        assert_eq!(map.lock().marks.len(), 3, "one mark per change of offset");
        map.forget_before(5);
        assert_eq!(map.find(5), Some(("a.csv".into(), 6)));
        assert_eq!(map.lock().marks.len(), 2);
    }
}
