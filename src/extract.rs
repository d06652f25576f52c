//! `etl-extract`: check the arguments, open the source, write the wire.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::cli::extract::ExtractArgs;
use crate::error::{Outcome, usage};
use crate::format::Format;
use crate::format::csv::Quoting;
use crate::output;
use crate::progress::{Counts, Progress};
use crate::source::Source;
use crate::source::csv::{CsvOptions, CsvSource};
use crate::source::ndjson::NdjsonSource;
use crate::source::sqlite::{Selection, SqliteSource};
use crate::wire::{Begin, End};

const PROGRAM: &str = "etl-extract";

enum Plan {
    File {
        path: Option<PathBuf>,
        format: Format,
        csv: CsvOptions,
    },
    Sqlite {
        path: PathBuf,
        selection: Selection,
    },
}

fn plan(args: &ExtractArgs) -> Result<Plan> {
    let selection = match (&args.table, &args.query) {
        (Some(table), None) => Some(Selection::Table(table.clone())),
        (None, Some(query)) => Some(Selection::Query(query.clone())),
        _ => None,
    };
    if let Some(selection) = selection {
        let path = match &args.input {
            Some(p) if p != Path::new("-") => p.clone(),
            _ => {
                return Err(usage(
                    "--table and --query need a SQLite database file as INPUT",
                ));
            }
        };
        if args.format.is_some() || args.delimiter.is_some() || args.no_header || args.all_text {
            return Err(usage(
                "--format, --delimiter, --no-header and --all-text apply to files, not to --table/--query",
            ));
        }
        return Ok(Plan::Sqlite { path, selection });
    }
    let format = args
        .format
        .or_else(|| args.input.as_deref().and_then(Format::from_path))
        .unwrap_or(Format::Csv);
    let delimiter = match args.delimiter {
        Some(c) if c.is_ascii() && c != '"' && c != '\n' && c != '\r' => c as u8,
        Some(c) => {
            return Err(usage(format!(
                "--delimiter must be one ASCII character other than a quote or newline, not {c:?}"
            )));
        }
        None if format == Format::Tsv => b'\t',
        None => b',',
    };
    if args.infer_rows == 0 {
        return Err(usage("--infer-rows must be at least 1"));
    }
    Ok(Plan::File {
        path: args.input.clone(),
        format,
        csv: CsvOptions {
            delimiter,
            quoting: if format == Format::Tsv {
                Quoting::None
            } else {
                Quoting::Rfc4180
            },
            header: !args.no_header,
            all_text: args.all_text,
            infer_rows: args.infer_rows,
        },
    })
}

/// The default stream name: the file name up to its first dot, else `stdin`.
fn default_stream(path: Option<&Path>) -> String {
    path.filter(|p| *p != Path::new("-"))
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('.').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("stdin")
        .to_string()
}

/// Runs `etl-extract`.
pub fn run(args: ExtractArgs) -> Result<Outcome> {
    let plan = plan(&args)?;
    let verbosity = args.verbosity.verbosity();
    let (mut source, progress, stream, source_name): (Box<dyn Source>, Progress, String, String) =
        match plan {
            Plan::Sqlite { path, selection } => {
                let stream = match &selection {
                    Selection::Table(t) => t.clone(),
                    Selection::Query(_) => "query".to_string(),
                };
                let progress = Progress::new(PROGRAM, verbosity, None);
                let src = SqliteSource::open(&path, &selection)?;
                let name = path.display().to_string();
                (Box::new(src), progress, stream, name)
            }
            Plan::File { path, format, csv } => {
                let input = output::open_input(path.as_deref())?;
                let progress = Progress::new(PROGRAM, verbosity, input.size);
                let name = input.name.clone();
                let reader = BufReader::with_capacity(1 << 16, progress.wrap_reader(input.reader));
                let src: Box<dyn Source> = match format {
                    Format::Csv | Format::Tsv => match CsvSource::open(reader, &name, &csv) {
                        Ok(src) => Box::new(src),
                        Err(err) => {
                            // The input opened, so a stream has started: say so,
                            // and a consumer sees a truncated stream, not an
                            // empty one it might take for an empty source.
                            let begin = Begin {
                                stream: args
                                    .stream
                                    .clone()
                                    .unwrap_or_else(|| default_stream(path.as_deref())),
                                source: Some(name),
                                schema: Vec::new(),
                            };
                            let mut out = output::stdout();
                            writeln!(out, "{}", begin.to_line())
                                .and_then(|()| out.flush())
                                .context("writing to stdout")?;
                            return Err(err);
                        }
                    },
                    Format::Ndjson => Box::new(NdjsonSource::new(reader, &name)),
                };
                (src, progress, default_stream(path.as_deref()), name)
            }
        };
    let stream = args.stream.clone().unwrap_or(stream);

    let mut out = output::stdout();
    let begin = Begin {
        stream: stream.clone(),
        source: Some(source_name),
        schema: source.schema(),
    };
    writeln!(out, "{}", begin.to_line()).context("writing to stdout")?;
    let mut rows = 0u64;
    source.run(
        &mut |record| {
            out.write_all(record)?;
            out.write_all(b"\n")?;
            rows += 1;
            if rows % 8192 == 0 {
                progress.set_rows(rows);
            }
            Ok(())
        },
        &progress,
    )?;
    let end = End {
        stream,
        rows,
        bookmark: None,
    };
    writeln!(out, "{}", end.to_line()).context("writing to stdout")?;
    out.flush().context("writing to stdout")?;
    if let Some(remark) = source.remarks() {
        progress.warn(&remark);
    }
    progress.summary(&Counts {
        read: rows,
        written: rows,
        rejected: 0,
    });
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names() {
        assert_eq!(default_stream(Some(Path::new("data/orders.csv"))), "orders");
        assert_eq!(default_stream(Some(Path::new("orders.csv.gz"))), "orders");
        assert_eq!(default_stream(Some(Path::new("-"))), "stdin");
        assert_eq!(default_stream(None), "stdin");
    }
}
