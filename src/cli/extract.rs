//! `etl-extract`: read files, stdin or a SQLite table and write the NDJSON wire.

use std::path::PathBuf;

use clap::Parser;

use super::VerbosityArgs;
use crate::format::Format;
use crate::source::input::Compression;

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
boundary value are neither lost nor repeated. Rows whose cursor is null are
rejected. --since and --until (inclusive, exclusive) replace the bookmark
for one backfill run; the bookmark never moves backwards. For database sources
the range is pushed into the query.

PostgreSQL: INPUT is a postgres:// URL (see PostgreSQL connections below).
--table names a table of --schema-name, else of the connection's current
schema (public, unless the search_path says otherwise); a name over 63
bytes, which PostgreSQL would truncate, is refused. Rows are streamed
(memory stays flat) and typed by the server: bigint and numeric keep every
digit, timestamps are ISO 8601 in UTC, json/jsonb are nested JSON.

Examples:
  $ etl-extract sample-data/orders.csv | head -n 3
  $ etl-extract sample-data/events.ndjson --stream clicks -q | tail -n 1
  $ etl-extract --all-text sample-data/customers.csv > customers.ndjson
  $ etl-extract sample-data/orders.csv | etl-load wh.db --table orders
  $ etl-extract wh.db --query 'SELECT order_id, zip FROM orders' | head -n 3
  $ etl-extract sample-data/orders.csv --cursor ordered_at --state wh.db | etl-load wh.db -t recent
  $ etl-extract sample-data/orders.csv --cursor ordered_at --since 2026-11-03 --until 2026-11-04
";

/// Read CSV, TSV, NDJSON, JSON, Parquet or a SQLite table and write records as NDJSON
#[derive(Debug, Parser)]
#[command(
    name = "etl-extract",
    version,
    after_help = "Examples:\n  $ etl-extract sample-data/orders.csv | head -n 3\n\nMore in --help.",
    after_long_help = format!(
        "{AFTER_HELP}\n{}\n\n{}",
        super::POSTGRES_CONNECTIONS,
        super::EXIT_CODES
    ),
)]
pub struct ExtractArgs {
    /// Input files or globs, or - for stdin (the default). With --table or
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

    /// PostgreSQL schema of --table and of the _etl_state table read by --state [default: the connection's current schema: public, unless search_path says otherwise]
    #[arg(long, value_name = "NAME")]
    pub schema_name: Option<String>,

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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_valid() {
        ExtractArgs::command().debug_assert();
    }
}
