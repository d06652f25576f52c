//! `etl-load`: read the wire, check its framing, write one transaction.

use std::io::BufRead;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use serde_json::Value;

use crate::cli::load::{LoadArgs, Mode, SchemaPolicy};
use crate::error::{Failure, Kind, Outcome, usage};
use crate::format::flat::{self, Fields};
use crate::progress::{Counts, Progress};
use crate::record::Schema;
use crate::rejects::{Payload, Rejects};
use crate::sink::sqlite::{SqliteTarget, TableOptions, TableWriter, WriteMode};
use crate::source::input::{self, Compression};
use crate::state;
use crate::wire::{self, Framing, Line, Shape};

const PROGRAM: &str = "etl-load";

/// Records held back to type the columns of a table that does not exist yet.
const TYPING_SAMPLE: usize = 1000;

fn table_options(args: &LoadArgs) -> Result<TableOptions> {
    if args.table.trim().is_empty() {
        return Err(usage("--table must name a table"));
    }
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
    Ok(TableOptions {
        mode: match args.mode {
            Mode::Append => WriteMode::Append,
            Mode::Replace => WriteMode::Replace,
            Mode::Upsert => WriteMode::Upsert,
        },
        keys,
        delete_when: args.delete_when.clone(),
        strict: args.schema == SchemaPolicy::Strict,
    })
}

/// Runs `etl-load`.
pub fn run(args: LoadArgs) -> Result<Outcome> {
    let options = table_options(&args)?;
    let location = input::locate_one(args.input.as_deref())?;
    let progress = Progress::new(PROGRAM, args.verbosity.verbosity(), location.size());
    let input = input::open(&location, Compression::Auto, &progress)?;
    let max_rejects = args.max_rejects.or(if args.rejects.is_some() {
        None
    } else {
        Some(0)
    });
    let mut rejects = Rejects::open(args.rejects.as_deref(), max_rejects)?;
    let target = SqliteTarget::open(&args.target, Duration::from_secs(args.wait))?;
    let mut load = Load {
        args: &args,
        input_name: &input.name,
        progress: &progress,
        rejects: &mut rejects,
        counts: Counts::default(),
    };
    let result = load.run(input.reader, &target, options);
    let counts = load.counts;
    match result.and_then(|()| rejects.finish()) {
        Ok(()) => {
            target.commit()?;
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
            target.rollback();
            progress.clear();
            Err(err.context(format!(
                "nothing was loaded into {} (table {:?} is as it was)",
                args.target.display(),
                args.table
            )))
        }
    }
}

struct Load<'a> {
    args: &'a LoadArgs,
    input_name: &'a str,
    progress: &'a Progress,
    rejects: &'a mut Rejects,
    counts: Counts,
}

impl Load<'_> {
    fn run(
        &mut self,
        mut reader: impl BufRead,
        target: &SqliteTarget,
        options: TableOptions,
    ) -> Result<()> {
        let conn = target.connection();
        let mut writer = TableWriter::new(conn, &self.args.table, options)?;
        let mut framing = Framing::new();
        let mut schema: Schema = Vec::new();
        let mut sample: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut prepared = false;
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
                    .map_err(|e| anyhow!("{}: {e}", self.input_name))?;
                if let Some(begin) = begin {
                    self.progress.detail(&format!(
                        "stream {:?} from {}",
                        begin.stream,
                        begin.source.as_deref().unwrap_or("an unnamed source")
                    ));
                    if let Some(from) = &begin.from {
                        check_starting_point(conn, &begin.stream, from)?;
                    }
                    for (name, t) in begin.schema {
                        if !schema.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                            schema.push((name, t));
                        }
                    }
                    if prepared {
                        writer.prepare(&schema, [])?;
                    }
                }
                continue;
            }
            framing
                .record(line_no)
                .map_err(|e| anyhow!("{}: {e}", self.input_name))?;
            self.counts.read += 1;
            if prepared {
                self.write(&mut writer, line_no, text, flat::parse_object(text))?;
            } else {
                // Held back (as bytes) until the table's columns are typed.
                sample.push((line_no, text.to_vec()));
                if sample.len() >= TYPING_SAMPLE {
                    self.flush_sample(&mut writer, &schema, &mut sample)?;
                    prepared = true;
                }
            }
            if self.counts.read.is_multiple_of(8192) {
                self.progress.set_rows(self.counts.read);
            }
        }
        let shape = framing
            .finish()
            .map_err(|e| anyhow!("{}: {e}", self.input_name))?;
        if shape == Shape::Empty {
            if self.args.mode == Mode::Replace && !self.args.allow_empty {
                return Err(Failure::new(
                    Kind::Runtime,
                    format!(
                        "{}: input has no lines at all; refusing to replace table {:?} with nothing",
                        self.input_name, self.args.table
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
            self.flush_sample(&mut writer, &schema, &mut sample)?;
        }
        writer.finish()?;
        if writer.deleted() > 0 {
            self.progress.detail(&format!(
                "deleted {} rows (--delete-when)",
                writer.deleted()
            ));
        }
        for line in writer.take_log() {
            self.progress.detail(&line);
        }
        if let Shape::Framed(ends) = &shape {
            for end in ends {
                if let Some(bookmark) = &end.bookmark {
                    state::write_sqlite(conn, &end.stream, bookmark, end.rows)?;
                    self.progress.detail(&format!(
                        "stream {:?}: bookmark stored: {bookmark}",
                        end.stream
                    ));
                }
            }
        }
        Ok(())
    }

    fn flush_sample(
        &mut self,
        writer: &mut TableWriter<'_>,
        schema: &Schema,
        sample: &mut Vec<(u64, Vec<u8>)>,
    ) -> Result<()> {
        let parsed: Vec<_> = sample
            .iter()
            .map(|(_, line)| flat::parse_object(line))
            .collect();
        writer.prepare(schema, parsed.iter().filter_map(|p| p.as_ref().ok()))?;
        for ((line_no, line), fields) in sample.iter().zip(parsed) {
            self.write(writer, *line_no, line, fields)?;
        }
        sample.clear();
        Ok(())
    }

    /// Inserts one record line, or rejects it (unreadable, or not fitting).
    fn write(
        &mut self,
        writer: &mut TableWriter<'_>,
        line_no: u64,
        line: &[u8],
        fields: Result<Fields<'_>, String>,
    ) -> Result<()> {
        let reason = match fields {
            Ok(fields) => match writer.insert(&fields)? {
                Ok(()) => {
                    self.counts.written += 1;
                    return Ok(());
                }
                Err(reason) => reason,
            },
            Err(reason) => reason,
        };
        let payload = match serde_json::from_slice::<serde_json::Map<String, Value>>(line) {
            Ok(ref record) => {
                return self.reject(line_no, &reason, Payload::Record(record));
            }
            Err(_) => Payload::Raw(line),
        };
        self.reject(line_no, &reason, payload)
    }

    fn reject(&mut self, line_no: u64, reason: &str, payload: Payload<'_>) -> Result<()> {
        self.rejects
            .reject(self.input_name, line_no, reason, payload)?;
        self.counts.rejected += 1;
        Ok(())
    }
}

/// Refuses a stream whose extract started from a bookmark that is no longer
/// the stored one: another run has loaded this stream since, and loading
/// this one too would repeat or skip rows.
fn check_starting_point(conn: &rusqlite::Connection, stream: &str, from: &Value) -> Result<()> {
    let stored = state::read_sqlite(conn, stream)?.unwrap_or(Value::Null);
    if &stored != from {
        return Err(Failure::new(
            Kind::Runtime,
            format!(
                "stream {stream:?}: the target's stored bookmark {stored} is not the one this \
                 extract started from ({from}): another run loaded the stream meanwhile"
            ),
        )
        .hint("run the job again; and check that etl-extract --state names this target")
        .into());
    }
    Ok(())
}
