//! `etl-extract`: check the arguments, open the sources, write the wire.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::cli::extract::ExtractArgs;
use crate::error::{Outcome, usage};
use crate::format::Format;
use crate::format::csv::Quoting;
use crate::incremental::{Incremental, Verdict, parse_bound};
use crate::output;
use crate::pg::source::PgSource;
use crate::progress::{Counts, Progress};
use crate::record::FieldType;
use crate::rejects::Rejects;
use crate::source::csv::{Column, CsvOptions, CsvSource};
use crate::source::input::{self, Compression, Location};
use crate::source::json_array::JsonArraySource;
use crate::source::ndjson::NdjsonSource;
use crate::source::parquet::ParquetSource;
use crate::source::sqlite::{Selection, SqliteSource, Window};
use crate::source::{Context, Source, Taken};
use crate::state::StateStore;
use crate::wire::{Begin, End};

const PROGRAM: &str = "etl-extract";

enum Inputs {
    Files {
        locations: Vec<Location>,
        format: Option<Format>,
        compression: Compression,
        csv: CsvOptions,
    },
    Sqlite {
        path: PathBuf,
        selection: Selection,
    },
    Postgres {
        url: String,
        schema: Option<String>,
        selection: Selection,
    },
}

struct Plan {
    inputs: Inputs,
    stream: String,
    incremental: Option<IncrementalPlan>,
}

struct IncrementalPlan {
    cursor: String,
    state: Option<StateStore>,
    since: Option<Value>,
    until: Option<Value>,
}

fn pinned_types(path: &Path) -> Result<Vec<(String, FieldType)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read schema file {}", path.display()))?;
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&text) else {
        return Err(usage(format!(
            "schema file {} must be a JSON object such as {{\"zip\":\"text\",\"qty\":\"integer\"}}",
            path.display()
        )));
    };
    fields
        .into_iter()
        .map(|(name, t)| {
            let parsed = t.as_str().and_then(FieldType::from_name).ok_or_else(|| {
                usage(format!(
                    "schema file {}: column {name:?} has type {t}; use integer, float, boolean, text or json",
                    path.display()
                ))
            })?;
            Ok((name, parsed))
        })
        .collect()
}

/// The default stream name: the file name up to its first dot, else `stdin`.
fn default_stream(location: Option<&Location>) -> String {
    location
        .and_then(Location::path)
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('.').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("stdin")
        .to_string()
}

fn plan(args: &ExtractArgs) -> Result<Plan> {
    let incremental = args.cursor.as_ref().map(|cursor| IncrementalPlan {
        cursor: cursor.clone(),
        state: args
            .state
            .as_deref()
            .map(|s| StateStore::from_arg_in(s, args.schema_name.as_deref())),
        since: args.since.as_deref().map(parse_bound),
        until: args.until.as_deref().map(parse_bound),
    });
    let selection = match (&args.table, &args.query) {
        (Some(table), None) => Some(Selection::Table(table.clone())),
        (None, Some(query)) => Some(Selection::Query(query.clone())),
        _ => None,
    };
    if let Some(selection) = selection {
        let path = match args.inputs.as_slice() {
            [p] if p != Path::new("-") => p.clone(),
            _ => {
                return Err(usage(
                    "--table and --query need one database as INPUT: a SQLite file or a postgres:// URL",
                ));
            }
        };
        if args.format.is_some()
            || args.delimiter.is_some()
            || args.no_header
            || args.all_text
            || args.schema.is_some()
        {
            return Err(usage(
                "--format, --delimiter, --no-header, --all-text and --schema apply to files, not to --table/--query",
            ));
        }
        let stream = args.stream.clone().unwrap_or_else(|| match &selection {
            Selection::Table(t) => t.clone(),
            Selection::Query(_) => "query".to_string(),
        });
        let inputs = if crate::pg::is_url(&path.to_string_lossy()) {
            Inputs::Postgres {
                url: path.to_string_lossy().into_owned(),
                schema: args.schema_name.clone(),
                selection,
            }
        } else {
            Inputs::Sqlite { path, selection }
        };
        return Ok(Plan {
            inputs,
            stream,
            incremental,
        });
    }
    let delimiter = match args.delimiter {
        Some(c) if c.is_ascii() && c != '"' && c != '\n' && c != '\r' => Some(c as u8),
        Some(c) => {
            return Err(usage(format!(
                "--delimiter must be one ASCII character other than a quote or newline, not {c:?}"
            )));
        }
        None => None,
    };
    if args.infer_rows == 0 {
        return Err(usage("--infer-rows must be at least 1"));
    }
    let pinned = match &args.schema {
        Some(path) => pinned_types(path)?,
        None => Vec::new(),
    };
    let locations = input::locate(&args.inputs)?;
    let stream = args
        .stream
        .clone()
        .unwrap_or_else(|| default_stream(locations.first()));
    Ok(Plan {
        inputs: Inputs::Files {
            locations,
            format: args.format,
            compression: args.compression,
            csv: CsvOptions {
                delimiter: delimiter.unwrap_or(b','),
                quoting: Quoting::Rfc4180,
                header: !args.no_header,
                all_text: args.all_text,
                infer_rows: args.infer_rows,
                pinned,
            },
        },
        stream,
        incremental,
    })
}

/// Opens one file of a stream as a source.
fn open_file(
    location: &Location,
    format: Option<Format>,
    compression: Compression,
    csv: &CsvOptions,
    columns: &mut Option<Vec<Column>>,
    cx: &mut Context<'_>,
) -> Result<Box<dyn Source>> {
    let format = format
        .or_else(|| location.path().and_then(Format::from_path))
        .unwrap_or(Format::Csv);
    if format == Format::Parquet {
        let Some(path) = location.path() else {
            return Err(usage(
                "Parquet is read from a file, not stdin (its index is at the end)",
            ));
        };
        return Ok(Box::new(ParquetSource::open(path)?));
    }
    let input = input::open(location, compression, cx.progress)?;
    Ok(match format {
        Format::Csv | Format::Tsv => {
            let mut options = csv.clone();
            if format == Format::Tsv {
                options.quoting = Quoting::None;
                if options.delimiter == b',' {
                    options.delimiter = b'\t';
                }
            }
            let source =
                CsvSource::open(input.reader, &input.name, &options, columns.as_deref(), cx)?;
            if columns.is_none() {
                *columns = Some(source.columns().to_vec());
            }
            Box::new(source)
        }
        Format::Ndjson => Box::new(NdjsonSource::new(input.reader, &input.name)),
        Format::Json => Box::new(JsonArraySource::new(input.reader, &input.name)),
        Format::Parquet => unreachable!("handled above"),
    })
}

/// Reads a whole file (CSV, TSV, NDJSON, JSON array or Parquet, by its
/// extension, typed as `etl-extract` types it) into records: for lookup
/// tables, which must be held anyway.
pub fn read_all(path: &Path) -> Result<Vec<serde_json::Map<String, Value>>> {
    let progress = Progress::new(
        PROGRAM,
        crate::progress::Verbosity {
            quiet: true,
            ..Default::default()
        },
        None,
    );
    let mut rejects = Rejects::open(None, Some(0))?;
    let mut cx = Context {
        progress: &progress,
        rejects: &mut rejects,
        read: 0,
    };
    let options = CsvOptions {
        delimiter: b',',
        quoting: Quoting::Rfc4180,
        header: true,
        all_text: false,
        infer_rows: 1000,
        pinned: Vec::new(),
    };
    let location = Location::Path(path.to_path_buf());
    let mut source = open_file(
        &location,
        None,
        Compression::Auto,
        &options,
        &mut None,
        &mut cx,
    )?;
    let mut records = Vec::new();
    source.run(
        &mut |bytes| {
            records.push(serde_json::from_slice(bytes)?);
            Ok(Taken::Done)
        },
        &mut cx,
    )?;
    Ok(records)
}

/// Runs `etl-extract`.
pub fn run(args: ExtractArgs) -> Result<Outcome> {
    let plan = plan(&args)?;
    let size = match &plan.inputs {
        Inputs::Files { locations, .. } => locations.iter().map(Location::size).sum(),
        Inputs::Sqlite { .. } | Inputs::Postgres { .. } => None,
    };
    let progress = Progress::new(PROGRAM, args.verbosity.verbosity(), size);
    let mut rejects = args.rejects.open()?;

    let mut incremental = match &plan.incremental {
        Some(inc) => {
            let stored = match &inc.state {
                Some(store) => store.read(&plan.stream)?,
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

    let mut out = output::stdout();
    let mut cx = Context {
        progress: &progress,
        rejects: &mut rejects,
        read: 0,
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
            out.write_all(record)?;
            out.write_all(b"\n")?;
            written += 1;
            if written.is_multiple_of(8192) {
                progress.set_rows(written);
            }
            Ok(Taken::Done)
        };
        match &plan.inputs {
            Inputs::Sqlite { path, selection } => {
                let window = plan.incremental.as_ref().zip(window_bounds.as_ref()).map(
                    |(inc, (lower, upper))| Window {
                        column: &inc.cursor,
                        lower: lower.as_ref(),
                        upper: upper.as_ref(),
                    },
                );
                let mut source = SqliteSource::open(path, selection, window)?;
                begin.source = Some(path.display().to_string());
                begin.schema = source.schema();
                write_begin(&begin)?;
                source.run(&mut emit, &mut cx)?;
            }
            Inputs::Postgres {
                url,
                schema,
                selection,
            } => {
                let window = plan.incremental.as_ref().zip(window_bounds.as_ref()).map(
                    |(inc, (lower, upper))| (inc.cursor.as_str(), lower.as_ref(), upper.as_ref()),
                );
                let mut source = PgSource::open(url, schema.as_deref(), selection, window)?;
                begin.source = Some(crate::pg::conn::redact(url));
                begin.schema = source.schema();
                write_begin(&begin)?;
                source.run(&mut emit, &mut cx)?;
            }
            Inputs::Files {
                locations,
                format,
                compression,
                csv,
            } => {
                let mut columns = None;
                for (i, location) in locations.iter().enumerate() {
                    let opened =
                        open_file(location, *format, *compression, csv, &mut columns, &mut cx);
                    let mut source = match opened {
                        Ok(source) => source,
                        Err(err) if i == 0 && location.path().is_none_or(Path::exists) => {
                            // The input is there, so a stream has started: say so,
                            // and a consumer sees a cut stream, not an empty one it
                            // might take for an empty source.
                            write_begin(&begin)?;
                            return Err(err);
                        }
                        Err(err) => return Err(err),
                    };
                    if i == 0 {
                        begin.source = Some(match location {
                            Location::Path(p) => p.display().to_string(),
                            Location::Stdin => "stdin".into(),
                        });
                        begin.schema = source.schema();
                        write_begin(&begin)?;
                    }
                    source.run(&mut emit, &mut cx)?;
                    remarks.extend(source.remarks());
                }
            }
        }
        out.flush().context("writing to stdout")?;
    }
    let read = cx.read;
    let rejected = rejects.count();
    rejects.finish()?;
    if read != written + skipped + rejected {
        bail!(
            "internal accounting error: {read} rows read, {written} written, {skipped} skipped, {rejected} rejected"
        );
    }
    let end = End {
        stream: plan.stream.clone(),
        rows: written,
        bookmark: incremental.as_ref().and_then(Incremental::bookmark),
    };
    write_line(&end.to_line())?;
    for remark in remarks {
        progress.warn(&remark);
    }
    progress.summary(&Counts {
        read,
        written,
        rejected,
        skipped,
    });
    Ok(if rejected > 0 {
        Outcome::Rejected
    } else {
        Outcome::Ok
    })
}

fn write_begin(begin: &Begin) -> Result<()> {
    write_line(&begin.to_line())
}

/// Writes a control line straight to stdout (data lines are buffered in
/// between; the buffered writer is flushed before the end line).
fn write_line(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .context("writing to stdout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names() {
        let name = |p: &str| default_stream(Some(&Location::Path(PathBuf::from(p))));
        assert_eq!(name("data/orders.csv"), "orders");
        assert_eq!(name("orders.csv.gz"), "orders");
        assert_eq!(default_stream(Some(&Location::Stdin)), "stdin");
        assert_eq!(default_stream(None), "stdin");
    }
}
