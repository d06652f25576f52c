//! `etl-load`: read the wire, check its framing, write one transaction.

use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};

use crate::cli::load::{CommitPolicy, LoadArgs, Mode, SchemaPolicy, TargetFormat};
use crate::error::{Failure, Kind, Outcome, usage};
use crate::format::flat::{self, Fields};
use crate::pg::sink::PgSink;
use crate::progress::{Counts, Progress};
use crate::record::Schema;
use crate::rejects::Rejects;
use crate::sink::Sink;
use crate::sink::file::{FileFormat, FileOptions, FileSink};
use crate::sink::parquet::ParquetSink;
use crate::sink::sqlite::{SqliteSink, SqliteTarget};
use crate::sink::table::{TableOptions, WriteMode};
use crate::source::input::{self, Compression};
use crate::wire::{self, End, Framing, Line, Shape};

const PROGRAM: &str = "etl-load";

/// Records held back to type the columns of a table that does not exist yet.
const TYPING_SAMPLE: usize = 1000;

/// Where the records go, checked against the other flags.
enum Target {
    Database {
        table: String,
        options: TableOptions,
        /// The PostgreSQL URL, when the database is not a SQLite file.
        postgres: Option<String>,
    },
    File {
        path: Option<std::path::PathBuf>,
        options: FileOptions,
    },
    Parquet {
        path: std::path::PathBuf,
        strict: bool,
        state: Option<std::path::PathBuf>,
    },
}

fn plan(args: &LoadArgs) -> Result<Target> {
    if args.allow_empty && args.mode != Mode::Replace {
        return Err(usage("--allow-empty only applies to --mode replace"));
    }
    let keys: Vec<String> = args
        .key
        .iter()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect();
    match (args.mode, keys.is_empty()) {
        (Mode::Upsert, true) => return Err(usage("--mode upsert needs --key COL[,COL...]")),
        (Mode::Append | Mode::Replace, false) => {
            return Err(usage("--key applies to --mode upsert"));
        }
        _ => {}
    }
    if args.delete_when.is_some() && args.mode != Mode::Upsert {
        return Err(usage(
            "--delete-when needs --mode upsert (rows are deleted by --key)",
        ));
    }
    if args.mode == Mode::Replace && args.commit == CommitPolicy::Segment {
        return Err(usage(
            "--mode replace empties the table once per run; it cannot be combined with --commit segment",
        ));
    }
    let target_text = args.target.to_string_lossy();
    let postgres = crate::pg::is_url(&target_text).then(|| target_text.into_owned());
    if postgres.is_some() && args.format.is_some_and(|f| f != TargetFormat::Sqlite) {
        return Err(usage(
            "--format names a file format; a postgres:// target is a database",
        ));
    }
    if args
        .state
        .as_ref()
        .is_some_and(|s| crate::pg::is_url(&s.to_string_lossy()))
    {
        return Err(usage(
            "--state for a file target is a .json file; a database target keeps its own state",
        ));
    }
    let stdout = args.target == Path::new("-");
    let format = args.format.unwrap_or_else(|| {
        if postgres.is_some() {
            TargetFormat::Sqlite
        } else if stdout {
            TargetFormat::Ndjson
        } else {
            match FileFormat::from_path(&args.target) {
                Some(FileFormat::Csv) => TargetFormat::Csv,
                Some(FileFormat::Tsv) => TargetFormat::Tsv,
                Some(FileFormat::Ndjson) => TargetFormat::Ndjson,
                None if crate::format::Format::from_path(&args.target)
                    == Some(crate::format::Format::Parquet) =>
                {
                    TargetFormat::Parquet
                }
                None => TargetFormat::Sqlite,
            }
        }
    });
    let file_format = match format {
        TargetFormat::Sqlite if stdout => {
            return Err(usage("a SQLite database cannot be written to stdout"));
        }
        TargetFormat::Sqlite => None,
        TargetFormat::Csv => Some(FileFormat::Csv),
        TargetFormat::Tsv => Some(FileFormat::Tsv),
        TargetFormat::Ndjson => Some(FileFormat::Ndjson),
        TargetFormat::Parquet => None,
    };
    let strict = args.schema == SchemaPolicy::Strict;
    let Some(file_format) = file_format else {
        if format == TargetFormat::Parquet {
            if stdout {
                return Err(usage("Parquet is written to a file, not stdout"));
            }
            if args.mode == Mode::Upsert
                || args.table.is_some()
                || args.commit == CommitPolicy::Segment
            {
                return Err(usage(
                    "a Parquet target takes --mode replace, or append to a new file; no --table, upsert or segment commits",
                ));
            }
            if args.mode == Mode::Append && args.target.exists() {
                return Err(Failure::new(
                    Kind::Usage,
                    format!(
                        "{} exists and a Parquet file cannot be appended to",
                        args.target.display()
                    ),
                )
                .hint("use --mode replace to write it anew")
                .into());
            }
            return Ok(Target::Parquet {
                path: args.target.clone(),
                strict,
                state: args.state.clone(),
            });
        }
        let table = match &args.table {
            Some(t) if !t.trim().is_empty() => t.clone(),
            _ => return Err(usage("--table is required for a database target")),
        };
        if args.state.is_some() {
            return Err(usage(
                "a database target keeps bookmarks in its own _etl_state table; --state is for file targets",
            ));
        }
        return Ok(Target::Database {
            table,
            postgres,
            options: TableOptions {
                mode: match args.mode {
                    Mode::Append => WriteMode::Append,
                    Mode::Replace => WriteMode::Replace,
                    Mode::Upsert => WriteMode::Upsert,
                },
                keys,
                delete_when: args.delete_when.clone(),
                strict,
            },
        });
    };
    if args.mode == Mode::Upsert {
        return Err(usage("--mode upsert needs a database target"));
    }
    if args.table.is_some() {
        return Err(usage(
            "--table names a table in a database; this target is a file",
        ));
    }
    if args.commit == CommitPolicy::Segment {
        return Err(usage(
            "--commit segment needs a database target (a file is written whole)",
        ));
    }
    if stdout && args.state.is_some() {
        return Err(usage(
            "--state needs a file target: bookmarks are stored once the data is on disk",
        ));
    }
    Ok(Target::File {
        path: (!stdout).then(|| args.target.clone()),
        options: FileOptions {
            format: file_format,
            append: args.mode == Mode::Append,
            strict,
            state: args.state.clone(),
        },
    })
}

/// Runs `etl-load`.
pub fn run(args: LoadArgs) -> Result<Outcome> {
    let target = plan(&args)?;
    let location = input::locate_one(args.input.as_deref())?;
    let progress = Progress::new(PROGRAM, args.verbosity.verbosity(), location.size());
    let input = input::open(&location, Compression::Auto, &progress)?;
    let mut rejects = args.rejects.open()?;
    let db_name = match &target {
        Target::Database {
            postgres: Some(url),
            ..
        } => crate::pg::conn::redact(url),
        _ => args.target.display().to_string(),
    };
    let (target_name, untouched) = match &target {
        Target::Database { table, .. } => (
            format!("table {table:?}"),
            format!("nothing was loaded into {db_name} (table {table:?} is as it was)"),
        ),
        Target::File { path: Some(p), .. } => (
            p.display().to_string(),
            format!("nothing was written to {} (it is as it was)", p.display()),
        ),
        Target::File { path: None, .. } => ("stdout".into(), "the output is incomplete".into()),
        Target::Parquet { path, .. } => (
            path.display().to_string(),
            format!(
                "nothing was written to {} (it is as it was)",
                path.display()
            ),
        ),
    };
    let mut load = Load {
        target_name: &target_name,
        args: &args,
        input_name: &input.name,
        progress: &progress,
        rejects: &mut rejects,
        counts: Counts::default(),
        segments_committed: 0,
    };
    let (result, what) = match &target {
        Target::Database {
            table,
            options,
            postgres: Some(url),
        } => {
            let client = crate::pg::conn::connect(url)?;
            let result = PgSink::new(
                client,
                &db_name,
                args.schema_name.as_deref(),
                table,
                options.clone(),
            )
            .and_then(|sink| load.drive(input.reader, Box::new(sink)));
            (result, format!("table {table:?} in {db_name}"))
        }
        Target::Database {
            table,
            options,
            postgres: None,
        } => {
            let db = SqliteTarget::open(&args.target, Duration::from_secs(args.wait))?;
            let result = SqliteSink::new(&db, table, options.clone())
                .and_then(|sink| load.drive(input.reader, Box::new(sink)));
            if result.is_err() {
                db.rollback();
            }
            (
                result,
                format!("table {table:?} in {}", args.target.display()),
            )
        }
        Target::File { path, options } => {
            let sink = FileSink::open(path.as_deref(), options)?;
            let result = load.drive(input.reader, Box::new(sink));
            let what = path
                .as_ref()
                .map_or("stdout".to_string(), |p| p.display().to_string());
            (result, what)
        }
        Target::Parquet {
            path,
            strict,
            state,
        } => {
            let sink = ParquetSink::open(path, *strict, state.as_deref())?;
            let result = load.drive(input.reader, Box::new(sink));
            (result, path.display().to_string())
        }
    };
    let counts = load.counts;
    let segments = load.segments_committed;
    match result.and_then(|log| rejects.finish().map(|()| log)) {
        Ok(log) => {
            for line in log {
                progress.detail(&line);
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
            let what_happened = if segments > 0 {
                format!(
                    "the {segments} segments before the failure were committed to {what}; the rest was not"
                )
            } else {
                untouched
            };
            Err(err.context(what_happened))
        }
    }
}

struct Load<'a> {
    target_name: &'a str,
    args: &'a LoadArgs,
    input_name: &'a str,
    progress: &'a Progress,
    rejects: &'a mut Rejects,
    counts: Counts,
    segments_committed: u64,
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
        match self
            .run(reader, sink.as_mut())
            .and_then(|()| self.rejects.finish())
        {
            Ok(()) => sink.commit(),
            Err(err) => {
                sink.abort();
                Err(err)
            }
        }
    }

    fn run(&mut self, mut reader: impl BufRead, sink: &mut dyn Sink) -> Result<()> {
        let mut framing = Framing::new();
        let mut schema: Schema = Vec::new();
        let mut sample: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut prepared = false;
        // Inside a batch that was committed before (sent again after a crash).
        let mut skipping = false;
        let mut line = Vec::with_capacity(4096);
        let mut line_no = 0u64;
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .with_context(|| format!("cannot read {}", self.input_name))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let text = line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            if wire::looks_like_control(text) {
                let Line::Control(kind, obj) = wire::parse_line(text)
                    .map_err(|e| anyhow!("{}:{line_no}: {e}", self.input_name))?
                else {
                    unreachable!("a line whose first key is @etl parses as a control line");
                };
                let begin = framing
                    .control(&kind, &obj, line_no)
                    .map_err(|e| wire::locate(self.input_name, e))?;
                if let Some(begin) = begin {
                    self.progress.detail(&format!(
                        "stream {:?} from {}",
                        begin.stream,
                        begin.source.as_deref().unwrap_or("an unnamed source")
                    ));
                    if let Some(from) = &begin.from {
                        sink.check_start(&begin.stream, from)?;
                    }
                    if let Some(batch) = &begin.batch {
                        skipping = sink.batch_committed(batch)?;
                        if skipping {
                            self.progress.detail(&format!(
                                "batch {batch} was committed before; skipping it"
                            ));
                        } else {
                            sink.record_batch(batch)?;
                        }
                    }
                    for (name, t) in begin.schema {
                        if !schema.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                            schema.push((name, t));
                        }
                    }
                    if prepared {
                        sink.prepare(&schema, &[])?;
                    }
                }
                if kind == "end" && std::mem::take(&mut skipping) {
                    continue;
                }
                if kind == "end" {
                    let end = End::from_control(&obj)
                        .map_err(|e| anyhow!("{}:{line_no}: {e}", self.input_name))?;
                    sink.end_stream(&end)?;
                    if self.args.commit == CommitPolicy::Segment {
                        if !prepared {
                            self.flush_sample(sink, &schema, &mut sample)?;
                            prepared = true;
                        }
                        sink.commit_point()?;
                        self.segments_committed += 1;
                        self.progress.detail(&format!(
                            "committed stream {:?} up to line {line_no}",
                            end.stream
                        ));
                    }
                }
                continue;
            }
            framing
                .record(line_no)
                .map_err(|e| wire::locate(self.input_name, e))?;
            self.counts.read += 1;
            if skipping {
                self.counts.skipped += 1;
                continue;
            }
            if prepared {
                self.write(sink, line_no, text, flat::parse_object(text))?;
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
            }
        }
        let shape = framing
            .finish()
            .map_err(|e| wire::locate(self.input_name, e))?;
        if shape == Shape::Empty {
            if self.args.mode == Mode::Replace && !self.args.allow_empty {
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
            self.progress.warn(&format!(
                "{}: input has no lines at all (did the producer fail?)",
                self.input_name
            ));
        }
        if !prepared {
            self.flush_sample(sink, &schema, &mut sample)?;
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
        let records: Vec<&Fields<'_>> = parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
        sink.prepare(schema, &records)?;
        for ((line_no, line), fields) in sample.iter().zip(parsed) {
            self.write(sink, *line_no, line, fields)?;
        }
        sample.clear();
        Ok(())
    }

    /// Writes one record line, or rejects it (unreadable, or not fitting).
    fn write(
        &mut self,
        sink: &mut dyn Sink,
        line_no: u64,
        line: &[u8],
        fields: Result<Fields<'_>, String>,
    ) -> Result<()> {
        let reason = match fields {
            Ok(fields) => match sink.insert(&fields, line)? {
                Ok(()) => {
                    self.counts.written += 1;
                    return Ok(());
                }
                Err(reason) => reason,
            },
            Err(reason) => reason,
        };
        self.rejects
            .reject_line(self.input_name, line_no, &reason, line)?;
        self.counts.rejected += 1;
        Ok(())
    }
}
