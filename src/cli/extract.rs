//! `etl-extract`: read files, stdin or a SQLite table and write the NDJSON wire.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::Parser;
use serde_json::Value;

use super::VerbosityArgs;
use crate::error::usage;
use crate::extract::{ExtractPlan, IncrementalPlan, Inputs};
use crate::files::csv::CsvOptions;
use crate::format::Format;
use crate::format::csv::Quoting;
use crate::incremental::parse_bound;
use crate::record::FieldType;
use crate::source::Selection;
use crate::source::input::{self, Compression, Location};
use crate::state::StateStore;

const AFTER_HELP: &str = "\
Output is NDJSON on stdout: a {\"@etl\":\"begin\",...} line, one JSON object per
record, and an {\"@etl\":\"end\",\"rows\":N} line written only when the whole
input was read. A consumer that sees begin without end knows the run failed.
Several inputs (or a quoted glob such as 'exports/*.csv') become one stream,
in order; CSV files in one stream must share their header.

CSV columns are typed once, from the first --infer-rows records: integer
(64-bit, no leading zeros), float (exact to 15 digits), boolean (true/false)
or text; --schema pins types by column. Empty fields are null. A later value
that does not fit its column's type is passed on unchanged as text, with a
warning; a typed load rejects it. Memory stays flat for every format.

Bad rows (wrong field count, unterminated quote, invalid UTF-8, a JSON line
that is not an object): without --rejects the first one fails the run, naming
file and line. With --rejects FILE each goes to FILE as a JSON line with
input, line, reason and raw text, and the run goes on (exit 3), failing only
past --max-rejects.

Incremental runs: --cursor COL --state STATE emits only rows whose COL is past
the stream's bookmark (numbers by value, text by code point, so ISO 8601
timestamps work) and puts the new bookmark in the end line. etl-load stores
it: in the target database's _etl_state table, in the same transaction as
the rows (so STATE is the target, e.g. wh.db), or in a STATE.json file. The
bookmark also lists the rows at its exact value, so rows that share the
boundary value are neither lost nor repeated (past 64 such rows as packed
fingerprints, 8 bytes a row: prefer a cursor finer than a day). Rows whose cursor is null are
rejected. --since and --until (inclusive, exclusive) replace the bookmark
for one backfill run; the bookmark never moves backwards. For database sources
the range is pushed into the query.

PostgreSQL: INPUT is a postgres:// URL; host, port, user, database and
password not in the URL come from PGHOST, PGPORT, PGUSER, PGDATABASE,
PGPASSWORD or ~/.pgpass, as with psql. Rows are streamed (memory stays flat)
and typed by the server: bigint and numeric keep every digit, timestamps
are ISO 8601 in UTC, json/jsonb are nested JSON. Prefer PGPASSWORD or
~/.pgpass to a password in the URL: other users can read command lines.
No message etlkit prints contains the password.

Datasets: INPUT may be one directory written by etl-load --partition-by (a
Hive-partitioned Parquet dataset). Only the files its manifest
_etl_manifest.json lists are read, so a load in progress or one that crashed
is never seen; columns kept in the paths (--partition-by COL) come back typed,
after the files' columns. With --cursor on a partition column (or the
timestamp a COL:day key comes from), partitions outside --since/--until or
below the bookmark are not opened. --state DIR reads the bookmark the dataset
keeps in its manifest.

Examples:
  $ etl-extract sample-data/orders.csv | head -n 3
  $ etl-extract sample-data/events.ndjson --stream clicks -q | tail -n 1
  $ etl-extract --all-text sample-data/customers.csv > customers.ndjson
  $ etl-extract sample-data/orders.csv | etl-load wh.db --table orders
  $ etl-extract wh.db --query 'SELECT order_id, zip FROM orders' | head -n 3
  $ etl-extract sample-data/orders.csv --cursor ordered_at --state wh.db | etl-load wh.db -t recent
  $ etl-extract sample-data/orders.csv --cursor ordered_at --since 2026-11-03 --until 2026-11-04
  $ etl-extract sample-data/orders.csv | etl-load lake/orders --partition-by ordered_at:day && etl-extract lake/orders --cursor ordered_at --since 2026-11-03 --until 2026-11-04 | tail -n 1
";

/// Read CSV, TSV, NDJSON, JSON, Parquet or a SQLite table and write records as NDJSON
#[derive(Debug, Parser)]
#[command(
    name = "etl-extract",
    version,
    after_help = "Examples:\n  $ etl-extract sample-data/orders.csv | head -n 3\n\nMore in --help.",
    after_long_help = format!("{AFTER_HELP}\n{}", super::EXIT_CODES),
)]
pub struct ExtractArgs {
    /// Input files or globs, or - for stdin (the default); or one dataset
    /// directory written by etl-load --partition-by. With --table or
    /// --query, one SQLite database file or a postgres:// URL
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,

    /// Input format [default: from the file extension, else csv]
    #[arg(short, long, value_enum)]
    pub format: Option<Format>,

    /// Input compression (auto: from the extension .gz/.zst, else the first bytes)
    #[arg(long, value_enum, default_value_t = Compression::Auto)]
    pub compression: Compression,

    /// Field delimiter for CSV (one ASCII character, e.g. ';' or '|') [default: ',' for csv, tab for tsv]
    #[arg(short, long, value_name = "CHAR")]
    pub delimiter: Option<char>,

    /// The CSV/TSV input has no header line; columns are named column_1, column_2, ...
    #[arg(long)]
    pub no_header: bool,

    /// Do not guess CSV column types: every value is text (except columns pinned by --schema)
    #[arg(long)]
    pub all_text: bool,

    /// Pin CSV column types with a JSON file: {"zip":"text","qty":"integer"}
    /// (types: integer, float, boolean, text, json)
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,

    /// How many leading CSV records decide the column types (held in memory)
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub infer_rows: usize,

    /// Read this table from the database INPUT
    #[arg(long, value_name = "TABLE", conflicts_with = "query")]
    pub table: Option<String>,

    /// Run this SELECT against the database INPUT
    #[arg(long, value_name = "SQL")]
    pub query: Option<String>,

    /// PostgreSQL schema of --table and of the _etl_state table read by --state
    #[arg(long, value_name = "NAME", default_value = "public")]
    pub schema_name: String,

    /// Stream name for control lines and state [default: the first file's name up to its first dot, the table, or "stdin"]
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,

    /// --rejects and --max-rejects
    #[command(flatten)]
    pub rejects: super::RejectsArgs,

    /// Incremental: emit only rows whose COL is past the stored bookmark
    #[arg(long, value_name = "COL")]
    pub cursor: Option<String>,

    /// Where the bookmark is kept: the target database (wh.db, postgres://...) or a .json file
    #[arg(long, value_name = "STATE", requires = "cursor")]
    pub state: Option<PathBuf>,

    /// Backfill: emit rows with cursor >= VALUE, ignoring the bookmark for this run
    #[arg(long, value_name = "VALUE", requires = "cursor")]
    pub since: Option<String>,

    /// Backfill: emit rows with cursor < VALUE
    #[arg(long, value_name = "VALUE", requires = "cursor")]
    pub until: Option<String>,

    /// -q and -v
    #[command(flatten)]
    pub verbosity: VerbosityArgs,
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

impl ExtractArgs {
    /// The checked plan of this run: bad combinations of flags are usage
    /// errors here, before any input is read.
    pub fn plan(&self) -> Result<ExtractPlan> {
        plan(self)
    }
}

fn plan(args: &ExtractArgs) -> Result<ExtractPlan> {
    let incremental = args.cursor.as_ref().map(|cursor| IncrementalPlan {
        cursor: cursor.clone(),
        state: args
            .state
            .as_deref()
            .map(|s| StateStore::from_arg_in(s, &args.schema_name)),
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
        return Ok(ExtractPlan {
            inputs,
            stream,
            incremental,
            rejects: args.rejects.options(),
            verbosity: args.verbosity.verbosity(),
        });
    }
    if let [dir] = args.inputs.as_slice()
        && dir.is_dir()
    {
        if args.format.is_some_and(|f| f != Format::Parquet)
            || args.delimiter.is_some()
            || args.no_header
            || args.all_text
            || args.schema.is_some()
        {
            return Err(usage(
                "a dataset directory is Parquet: --format, --delimiter, --no-header, --all-text and --schema do not apply",
            ));
        }
        return Ok(ExtractPlan {
            stream: args
                .stream
                .clone()
                .unwrap_or_else(|| default_stream(Some(&Location::Path(dir.clone())))),
            inputs: Inputs::Lake { dir: dir.clone() },
            incremental,
            rejects: args.rejects.options(),
            verbosity: args.verbosity.verbosity(),
        });
    }
    if let Some(dir) = args.inputs.iter().find(|p| p.is_dir()) {
        return Err(usage(format!(
            "{} is a directory: a dataset is read alone, not with other inputs",
            dir.display()
        )));
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
    Ok(ExtractPlan {
        rejects: args.rejects.options(),
        verbosity: args.verbosity.verbosity(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_valid() {
        ExtractArgs::command().debug_assert();
    }

    #[test]
    fn stream_names() {
        let name = |p: &str| default_stream(Some(&Location::Path(PathBuf::from(p))));
        assert_eq!(name("data/orders.csv"), "orders");
        assert_eq!(name("orders.csv.gz"), "orders");
        assert_eq!(default_stream(Some(&Location::Stdin)), "stdin");
        assert_eq!(default_stream(None), "stdin");
    }
}
