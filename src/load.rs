//! `etl-load`: read the wire, check its framing, write one transaction.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Result;
use serde_json::Value;

use crate::error::{Failure, Kind, Outcome};
use crate::format::flat::{self, Fields};
use crate::incremental::check_starting_point;
use crate::progress::{Counts, Progress, Verbosity};
use crate::record::{RESERVED_PREFIX, Schema, is_reserved_name};
use crate::rejects::{Rejects, RejectsOptions};
use crate::runs::{RunRecord, RunStatus};
use crate::sink::{LoadMode, LoadOptions, Sink};
use crate::source::input::{self, Compression};
use crate::state::StateChanges;
use crate::store::Store;
use crate::wire::{Item, Reader, Shape};

const PROGRAM: &str = "etl-load";

/// Records held back to type the columns of a table that does not exist yet.
const TYPING_SAMPLE: usize = 1000;

/// When a load commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitPolicy {
    /// One transaction for the whole run.
    Run,
    /// One transaction per begin..end segment (for endless streams).
    Segment,
}

/// A checked `etl-load` run: what the flags asked for, validated before
/// any input is read or any target is touched.
#[derive(Debug)]
pub struct LoadPlan {
    /// The input file; `None` reads stdin.
    pub input: Option<PathBuf>,
    /// Where the records go.
    pub store: Box<dyn Store>,
    /// Mode, keys, deletes, schema policy: what every store is asked.
    pub load: LoadOptions,
    /// When to commit.
    pub commit: CommitPolicy,
    /// Let replace empty the target when the input has no lines at all.
    pub allow_empty: bool,
    /// Where rejected records go, and how many may be.
    pub rejects: RejectsOptions,
    /// How much to say on stderr.
    pub verbosity: Verbosity,
    /// The job's name in the run history (none: the table or file).
    pub job: Option<String>,
    /// Input that is not NDJSON (CSV, TSV, a JSON array, Parquet, several
    /// files): read with etl-extract's code, as `etl-extract | etl-load`.
    pub extract: Option<crate::extract::ExtractPlan>,
}

/// Runs `etl-load` as planned.
pub fn run(mut plan: LoadPlan) -> Result<Outcome> {
    let mut rejects = plan.rejects.open()?;
    let (input, upstream, progress) = match plan.extract.take() {
        Some(extract) => {
            let progress = Progress::new(PROGRAM, plan.verbosity, None);
            let (input, upstream) = crate::oneoff::start(extract, &rejects)?;
            (input, Some(upstream), progress)
        }
        None => {
            let location = input::locate_one(plan.input.as_deref())?;
            let progress = Progress::new(PROGRAM, plan.verbosity, location.size());
            (
                input::open(&location, Compression::Auto, &progress)?,
                None,
                progress,
            )
        }
    };
    let store = plan.store.as_ref();
    let target_name = store.target_name();
    let mut load = Load {
        target_name: &target_name,
        plan: &plan,
        input_name: &input.name,
        progress: &progress,
        rejects: &mut rejects,
        counts: Counts::default(),
        segments_committed: 0,
        reserved_names: store.capabilities().reserved_names,
        run: RunRecord::start(plan.job.as_deref().unwrap_or(&store.default_job())),
        upstream: upstream.as_ref(),
    };
    let result = store
        .open_sink(&plan.load)?
        .and_then(|sink| load.drive(input.reader, sink));
    let result = match &upstream {
        Some(upstream) => result.map_err(|err| upstream.explain(err)),
        None => result,
    };
    for remark in upstream.iter().flat_map(crate::oneoff::Upstream::remarks) {
        progress.warn(&remark);
    }
    let counts = load.counts;
    let segments = load.segments_committed;
    let mut run = load.run;
    match result.and_then(|log| rejects.finish().map(|()| log)) {
        Ok(log) => {
            for line in log {
                if plan.load.dry_run {
                    // Asked for: shown even without -v.
                    progress.note(&line);
                } else {
                    progress.detail(&line);
                }
            }
            progress.summary(&counts);
            Ok(if counts.rejected > 0 {
                Outcome::Rejected
            } else {
                Outcome::Ok
            })
        }
        Err(err) => {
            // Keep what the rejects file holds: it explains the failure.
            let _ = rejects.finish();
            progress.clear();
            run.fill(&counts);
            run.status = RunStatus::Failed;
            run.error = Some(store.scrub(&format!("{err:#}")));
            if let Err(e) = store.record_failed_run(&run) {
                progress.detail(&format!("the failed run was not recorded: {e:#}"));
            }
            let what_happened = if segments > 0 {
                format!(
                    "the {segments} segments before the failure were committed to {}; the rest was not",
                    store.destination()
                )
            } else {
                store.untouched()
            };
            Err(err.context(what_happened))
        }
    }
}

struct Load<'a> {
    target_name: &'a str,
    plan: &'a LoadPlan,
    input_name: &'a str,
    progress: &'a Progress,
    rejects: &'a mut Rejects,
    counts: Counts,
    segments_committed: u64,
    /// Fields named like etlkit's own columns are refused (a database).
    reserved_names: bool,
    /// The run's record for the target's history.
    run: RunRecord,
    /// A one-off load's extract: the rows it rejected count as read.
    upstream: Option<&'a crate::oneoff::Upstream>,
}

impl Load<'_> {
    /// Runs the load into `sink`, then commits it, or aborts it on failure.
    fn drive<'s>(
        &mut self,
        reader: impl BufRead,
        mut sink: Box<dyn Sink + 's>,
    ) -> Result<Vec<String>> {
        // The rejects file is complete before the rows commit, so that a
        // failure to write it cannot follow a commit.
        let mut changes = StateChanges {
            reloaded: self.plan.load.mode == LoadMode::Replace,
            ..StateChanges::default()
        };
        let ran = self.run(reader, sink.as_mut(), &mut changes);
        if let Some(upstream) = self.upstream {
            // Known now: the wire's end waited for the extract.
            let rejected = upstream.rejected();
            self.counts.read += rejected;
            self.counts.rejected += rejected;
        }
        match ran.and_then(|()| self.rejects.finish()) {
            Ok(()) if self.plan.load.dry_run => {
                // Everything was done; now undo it and say what it was.
                let described = sink.describe();
                sink.abort();
                let mut log: Vec<String> = described?
                    .into_iter()
                    .map(|line| format!("dry run: {line}"))
                    .collect();
                log.push("dry run: nothing was committed".into());
                Ok(log)
            }
            Ok(()) => {
                self.run.fill(&self.counts);
                changes.run = Some(self.run.clone());
                sink.commit(&changes)
            }
            Err(err) => {
                sink.abort();
                Err(err)
            }
        }
    }

    /// Reads the whole input into `sink`; what the run changes in the
    /// target's state is collected in `changes`, for the commit.
    fn run(
        &mut self,
        reader: impl BufRead,
        sink: &mut dyn Sink,
        changes: &mut StateChanges,
    ) -> Result<()> {
        let mut wire = Reader::new(reader, self.input_name);
        let mut schema: Schema = Vec::new();
        let mut sample: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut prepared = false;
        // Inside a batch that was committed before (sent again after a crash).
        let mut skipping = false;
        // One field list for every record line.
        let mut spare: Fields<'static> = Vec::with_capacity(16);
        while let Some((line_no, item)) = wire.next_item()? {
            match item {
                Item::Record(text) => {
                    self.counts.read += 1;
                    if skipping {
                        self.counts.skipped += 1;
                    } else if prepared {
                        let mut fields = flat::recycle(std::mem::take(&mut spare));
                        let parsed = flat::parse_object_into(text, &mut fields);
                        self.write(sink, line_no, text, parsed.map(|()| &fields))?;
                        spare = flat::recycle(fields);
                    } else {
                        // Held back (as bytes) until the table's columns are typed.
                        sample.push((line_no, text.to_vec()));
                        if sample.len() >= TYPING_SAMPLE {
                            self.flush_sample(sink, &schema, &mut sample)?;
                            prepared = true;
                        }
                    }
                    if self.counts.read.is_multiple_of(8192) {
                        self.progress.set_rows(self.counts.read);
                        if prepared && let Some(upstream) = self.upstream {
                            // Every line before this one is written or rejected.
                            upstream.passed(line_no);
                        }
                    }
                }
                Item::Bad { reason, text } => {
                    // Neither framing nor data: a reject, never dropped.
                    self.counts.read += 1;
                    if skipping {
                        self.counts.skipped += 1;
                    } else {
                        self.rejects
                            .reject_line(self.input_name, line_no, &reason, text)?;
                        self.counts.rejected += 1;
                    }
                }
                Item::Begin(begin) => {
                    self.progress.detail(&format!(
                        "stream {:?} from {}",
                        begin.stream,
                        begin.source.as_deref().unwrap_or("an unnamed source")
                    ));
                    let part = if begin.batch.is_some() {
                        Some("an etl-watch batch")
                    } else if begin.from.as_ref().is_some_and(|f| !f.is_null()) {
                        Some("an incremental read (it starts at a bookmark)")
                    } else {
                        None
                    };
                    if self.plan.load.mode.sweeps()
                        && let Some(part) = part
                    {
                        return Err(Failure::new(
                            Kind::Runtime,
                            format!(
                                "{}:{line_no}: stream {:?} is {part}, a part of its source; \
                                 --mode {} would delete every row the part lacks, so nothing \
                                 was committed",
                                self.input_name,
                                begin.stream,
                                mode_name(self.plan.load.mode)
                            ),
                        )
                        .hint("sync from a full read (no --cursor, no batches), or load parts with --mode upsert")
                        .into());
                    }
                    if let Some(from) = &begin.from {
                        let stored = sink.state().bookmark(&begin.stream)?;
                        self.run
                            .bookmark_before
                            .insert(begin.stream.clone(), stored.clone().unwrap_or(Value::Null));
                        check_starting_point(
                            &begin.stream,
                            stored.as_ref().unwrap_or(&Value::Null),
                            from,
                        )?;
                    }
                    if let Some(batch) = &begin.batch {
                        // A replace run is loaded again instead: skipping it
                        // would replace the table with nothing, while loading
                        // the same batch twice leaves what once did.
                        let seen = changes
                            .batches
                            .iter()
                            .any(|(s, id)| *s == begin.stream && id == batch);
                        skipping = self.plan.load.mode != LoadMode::Replace
                            && (seen || sink.state().batch_committed(&begin.stream, batch)?);
                        if skipping {
                            self.progress.detail(&format!(
                                "batch {batch} was committed before; skipping it"
                            ));
                        } else {
                            changes.batches.push((begin.stream.clone(), batch.clone()));
                            self.run.batches.push(batch.clone());
                        }
                    }
                    if self.reserved_names
                        && let Some((name, _)) =
                            begin.schema.iter().find(|(name, _)| is_reserved_name(name))
                    {
                        return Err(Failure::new(
                            Kind::Runtime,
                            format!(
                                "{}:{line_no}: the stream declares a field {name:?}; names starting with \
                                 {RESERVED_PREFIX} are reserved for etlkit's own columns",
                                self.input_name
                            ),
                        )
                        .hint(format!(
                            "rename it on the way: etl-transform --rename {name}=NEW_NAME"
                        ))
                        .into());
                    }
                    for (name, t) in begin.schema {
                        if !schema.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                            schema.push((name, t));
                        }
                    }
                    if prepared {
                        sink.prepare(&self.keyed_schema(&schema), &[])?;
                    }
                }
                Item::End(end) => {
                    if std::mem::take(&mut skipping) {
                        continue;
                    }
                    let stream = end.stream.clone();
                    if let Some(bookmark) = &end.bookmark {
                        self.run
                            .bookmark_after
                            .insert(stream.clone(), bookmark.clone());
                    }
                    changes.ends.push(end);
                    // A dry run commits nothing: its segments stay in the one
                    // transaction the end rolls back.
                    if self.plan.commit == CommitPolicy::Segment && !self.plan.load.dry_run {
                        if !prepared {
                            self.flush_sample(sink, &schema, &mut sample)?;
                            prepared = true;
                        }
                        sink.commit_point(changes)?;
                        changes.clear();
                        self.segments_committed += 1;
                        self.progress
                            .detail(&format!("committed stream {stream:?} up to line {line_no}"));
                    }
                }
            }
        }
        let shape = wire.finish()?;
        if shape == Shape::Empty {
            if self.plan.load.mode == LoadMode::Replace && !self.plan.allow_empty {
                return Err(Failure::new(
                    Kind::Runtime,
                    format!(
                        "{}: input has no lines at all; refusing to replace {} with nothing",
                        self.input_name, self.target_name
                    ),
                )
                .hint("if the source really is empty, add --allow-empty")
                .into());
            }
            // Unless --allow-empty said an empty source is real, the run
            // history says what happened: nothing arrived, not a run that
            // found nothing new (etlkit's producers always frame theirs).
            let recorded = if self.plan.allow_empty {
                ""
            } else {
                self.run.status = RunStatus::Empty;
                "; the run is recorded with status empty"
            };
            self.progress.warn(&format!(
                "{}: input has no lines at all (did the producer fail?){recorded}",
                self.input_name
            ));
        }
        if !prepared {
            self.flush_sample(sink, &schema, &mut sample)?;
        }
        if self.plan.load.mode.sweeps() && self.counts.written == 0 && !self.plan.allow_empty {
            return Err(Failure::new(
                Kind::Runtime,
                format!(
                    "{}: no records; --mode {} would delete every row of {}, so nothing was committed",
                    self.input_name,
                    mode_name(self.plan.load.mode),
                    self.target_name
                ),
            )
            .hint("if the source really is empty, add --allow-empty")
            .into());
        }
        Ok(())
    }

    fn flush_sample(
        &mut self,
        sink: &mut dyn Sink,
        schema: &Schema,
        sample: &mut Vec<(u64, Vec<u8>)>,
    ) -> Result<()> {
        let parsed: Vec<_> = sample
            .iter()
            .map(|(_, line)| flat::parse_object(line))
            .collect();
        // Records that will be rejected do not shape the table.
        let records: Vec<&Fields<'_>> = parsed
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .filter(|fields| self.reserved_field(fields).is_none())
            .collect();
        if self.plan.load.mode == LoadMode::DeleteMissing {
            let keyed: Vec<Fields<'_>> = records.iter().map(|f| self.keyed(f)).collect();
            let keyed: Vec<&Fields<'_>> = keyed.iter().collect();
            sink.prepare(&self.keyed_schema(schema), &keyed)?;
        } else {
            sink.prepare(schema, &records)?;
        }
        for ((line_no, line), fields) in sample.iter().zip(parsed) {
            self.write(sink, *line_no, line, fields.as_ref().map_err(Clone::clone))?;
        }
        sample.clear();
        Ok(())
    }

    /// `--mode delete-missing` reads only the keys of a record: its other
    /// fields neither add columns nor are checked.
    fn keyed<'f>(&self, fields: &Fields<'f>) -> Fields<'f> {
        let keys = &self.plan.load.keys;
        fields
            .iter()
            .filter(|(n, _)| keys.iter().any(|k| k.eq_ignore_ascii_case(n)))
            .cloned()
            .collect()
    }

    /// The schema a store is prepared with: only the keys' for
    /// `--mode delete-missing`.
    fn keyed_schema(&self, schema: &Schema) -> Schema {
        let mut schema = schema.clone();
        if self.plan.load.mode == LoadMode::DeleteMissing {
            let keys = &self.plan.load.keys;
            schema.retain(|(n, _)| keys.iter().any(|k| k.eq_ignore_ascii_case(n)));
        }
        schema
    }

    /// The first field of a record bound for a database whose name etlkit
    /// reserves.
    fn reserved_field<'f>(&self, fields: &'f Fields<'_>) -> Option<&'f str> {
        if !self.reserved_names {
            return None;
        }
        fields
            .iter()
            .map(|(name, _)| name.as_ref())
            .find(|name| is_reserved_name(name))
    }

    /// Writes one record line, or rejects it (unreadable, or not fitting).
    fn write(
        &mut self,
        sink: &mut dyn Sink,
        line_no: u64,
        line: &[u8],
        fields: Result<&Fields<'_>, String>,
    ) -> Result<()> {
        let reason = match fields {
            Ok(fields) if let Some(name) = self.reserved_field(fields) => format!(
                "field {name:?}: names starting with {RESERVED_PREFIX} are reserved for etlkit's own columns"
            ),
            Ok(fields) if self.plan.load.mode == LoadMode::DeleteMissing => {
                match sink.insert(&self.keyed(fields), line)? {
                    Ok(()) => {
                        self.counts.written += 1;
                        return Ok(());
                    }
                    Err(reason) => reason,
                }
            }
            Ok(fields) => match sink.insert(fields, line)? {
                Ok(()) => {
                    self.counts.written += 1;
                    return Ok(());
                }
                Err(reason) => reason,
            },
            Err(reason) => reason,
        };
        if self.plan.load.mode.sweeps() {
            // A record left out would read as a row deleted at the source.
            return Err(Failure::new(
                Kind::Runtime,
                format!(
                    "{}:{line_no}: {reason}; --mode sync does not reject records (the row of a                      rejected record would be deleted), so nothing was committed",
                    self.input_name
                ),
            )
            .into());
        }
        let origin = self.upstream.and_then(|u| u.origin(line_no));
        self.rejects
            .reject_line_from(self.input_name, line_no, origin, &reason, line)
            .map_err(|err| hint_format(err, line))?;
        self.counts.rejected += 1;
        Ok(())
    }
}

/// `sync` or `delete-missing`, for messages.
fn mode_name(mode: LoadMode) -> &'static str {
    if mode == LoadMode::DeleteMissing {
        "delete-missing"
    } else {
        "sync"
    }
}

/// A failure on a line that is not JSON but looks like a CSV or TSV row
/// (NDJSON is the default for stdin and unknown extensions) says how to
/// read it as one.
fn hint_format(err: anyhow::Error, line: &[u8]) -> anyhow::Error {
    let text = line.trim_ascii();
    if text.is_empty()
        || b"{[\"".contains(&text[0])
        || serde_json::from_slice::<Value>(text).is_ok()
    {
        return err;
    }
    let format = if text.contains(&b'\t') {
        "tsv"
    } else if text.contains(&b',') || text.contains(&b';') || text.contains(&b'|') {
        "csv"
    } else {
        return err;
    };
    Failure::new(Kind::Runtime, format!("{err:#}"))
        .hint(format!(
            "this looks like {}; pass --input-format {format}",
            format.to_uppercase()
        ))
        .into()
}
