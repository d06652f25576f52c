//! `etl-load`: read the wire, check its framing, write one transaction.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};

use crate::cli::load::{LoadArgs, Mode};
use crate::error::{Failure, Kind, Outcome, usage};
use crate::output;
use crate::progress::{Counts, Progress};
use crate::record::{Record, Schema};
use crate::sink::sqlite::{SqliteTarget, TableWriter, WriteMode};
use crate::wire::{self, Framing, Line, Shape};

const PROGRAM: &str = "etl-load";

/// Records held back to type the columns of a table that does not exist yet.
const TYPING_SAMPLE: usize = 1000;

/// How long a load waits for another writer of the same database.
const LOCK_WAIT: Duration = Duration::from_secs(60);

/// Runs `etl-load`.
pub fn run(args: LoadArgs) -> Result<Outcome> {
    if args.table.trim().is_empty() {
        return Err(usage("--table must name a table"));
    }
    if args.allow_empty && args.mode != Mode::Replace {
        return Err(usage("--allow-empty only applies to --mode replace"));
    }
    let input = output::open_input(args.input.as_deref())?;
    let progress = Progress::new(PROGRAM, args.verbosity.verbosity(), input.size);
    let reader = BufReader::with_capacity(1 << 16, progress.wrap_reader(input.reader));
    let target = SqliteTarget::open(&args.target, LOCK_WAIT)?;
    let mut load = Load {
        args: &args,
        input_name: &input.name,
        progress: &progress,
        counts: Counts::default(),
    };
    match load.run(reader, &target) {
        Ok(()) => {
            target.commit()?;
            progress.summary(&load.counts);
            Ok(Outcome::Ok)
        }
        Err(err) => {
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
    counts: Counts,
}

impl Load<'_> {
    fn run(&mut self, mut reader: impl BufRead, target: &SqliteTarget) -> Result<()> {
        let mode = match self.args.mode {
            Mode::Append => WriteMode::Append,
            Mode::Replace => WriteMode::Replace,
        };
        let mut writer = TableWriter::new(target.connection(), &self.args.table, mode)?;
        let mut framing = Framing::new();
        let mut schema: Schema = Vec::new();
        let mut sample: Vec<(u64, Record)> = Vec::new();
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
            let parsed = wire::parse_line(text)
                .map_err(|e| anyhow!("{}:{line_no}: {e}", self.input_name))?;
            match parsed {
                Line::Control(kind, obj) => {
                    let begin = framing
                        .control(&kind, &obj, line_no)
                        .map_err(|e| anyhow!("{}: {e}", self.input_name))?;
                    if let Some(begin) = begin {
                        self.progress.detail(&format!(
                            "stream {:?} from {}",
                            begin.stream,
                            begin.source.as_deref().unwrap_or("an unnamed source")
                        ));
                        for (name, t) in begin.schema {
                            if !schema.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                                schema.push((name, t));
                            }
                        }
                        if prepared {
                            writer.prepare(&schema, [])?;
                        }
                    }
                }
                Line::Record(record) => {
                    framing
                        .record(line_no)
                        .map_err(|e| anyhow!("{}: {e}", self.input_name))?;
                    self.counts.read += 1;
                    if prepared {
                        self.write(&mut writer, line_no, &record)?;
                    } else {
                        sample.push((line_no, record));
                        if sample.len() >= TYPING_SAMPLE {
                            self.flush_sample(&mut writer, &schema, &mut sample)?;
                            prepared = true;
                        }
                    }
                    if self.counts.read % 8192 == 0 {
                        self.progress.set_rows(self.counts.read);
                    }
                }
            }
        }
        let shape = framing
            .finish()
            .map_err(|e| anyhow!("{}: {e}", self.input_name))?;
        if shape == Shape::Empty && self.args.mode == Mode::Replace && !self.args.allow_empty {
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
        if shape == Shape::Empty {
            self.progress.warn(&format!(
                "{}: input has no lines at all (did the producer fail?)",
                self.input_name
            ));
        }
        if !prepared {
            self.flush_sample(&mut writer, &schema, &mut sample)?;
        }
        writer.finish()?;
        for line in writer.take_log() {
            self.progress.detail(&line);
        }
        Ok(())
    }

    fn flush_sample(
        &mut self,
        writer: &mut TableWriter<'_>,
        schema: &Schema,
        sample: &mut Vec<(u64, Record)>,
    ) -> Result<()> {
        writer.prepare(schema, sample.iter().map(|(_, r)| r))?;
        for (line_no, record) in sample.drain(..) {
            self.write(writer, line_no, &record)?;
        }
        Ok(())
    }

    fn write(&mut self, writer: &mut TableWriter<'_>, line_no: u64, record: &Record) -> Result<()> {
        match writer.insert(record)? {
            Ok(()) => {
                self.counts.written += 1;
                Ok(())
            }
            Err(reason) => Err(anyhow!("{}:{line_no}: {reason}", self.input_name)),
        }
    }
}
