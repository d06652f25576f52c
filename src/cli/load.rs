//! `etl-load`: read the NDJSON wire and write it into a SQLite table.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use super::VerbosityArgs;

const AFTER_HELP: &str = "\
Every run is one transaction: the target shows the old rows or the new ones,
never a part. Input that began with a {\"@etl\":\"begin\"} line but ends
without its {\"@etl\":\"end\"} line was cut upstream: nothing is committed and
the run fails with \"upstream ended early after N rows\". Input without control
lines (from another tool) is committed at EOF. Input with no lines at all is
refused by --mode replace unless --allow-empty says an empty source is real.

Modes: append adds the rows; replace empties the table and fills it again in
the same transaction (readers see the old rows or the new ones; columns,
indexes and triggers stay); upsert inserts new keys and updates existing ones
by --key (a unique index on the key is created if missing). Within one run,
the last record for a key wins, so loading the same input twice leaves the
table exactly as loading it once. With --delete-when COL, a record whose COL
is true deletes its key's row instead (soft-delete flags become hard
deletes); other records are upserted, COL included.

The table is created if missing, with column types from the stream's begin
line or, failing that, from the values: INTEGER, REAL, BOOLEAN, TEXT, JSON.
Under --schema evolve a new field adds a column; under --schema strict a
record with a field the table lacks is rejected. A column's type is never
changed: a value that does not fit it (\"n/a\" or 1.5 in an INTEGER column;
2^53+1, 1e400 or 1e-400 in a REAL column) is rejected, never converted. Text
written as a number (\"1.00\", \"12\") goes into a numeric column when the column
holds that number exactly, like the number itself; other text (\"007\") does
not. SQLite has no decimal type: a decimal goes into a REAL column (a binary
float, exact to 15 significant digits; sums of amounts are float sums), or
stays TEXT when a float cannot hold its digits. Load money into PostgreSQL
(numeric) or keep it as text when it must add up to the cent.

Rejected records: without --rejects the first one fails the run, naming its
input line. With --rejects FILE each goes to FILE as a JSON line (input,
line, reason, record) and the rest commits, exit 3; more than --max-rejects
rejected records fail the run and commit nothing. The summary accounts for
every record: read = written + rejected.

Incremental state: when an end line carries a bookmark (etl-extract --cursor),
it is stored in the target's _etl_state table in the same transaction as the
rows, so rows and bookmark commit together or not at all. If the stream's
begin line says which bookmark the extract started from and the stored one
has moved since (another run loaded the stream meanwhile), nothing is loaded
and the run fails. Two loads into one database never interleave: the second
waits for the first (up to --wait seconds), then fails clearly.

PostgreSQL targets: TARGET is a postgres:// URL (see PostgreSQL connections
below); the table goes to --schema-name, else to the connection's current
schema (public, unless the search_path says otherwise). Rows go in with
COPY: straight into the table for append; through a temporary staging table
for replace (the table is emptied and refilled at the end, in the same
transaction) and upsert (INSERT ... ON CONFLICT on --key; a field a record
omits keeps its stored value, as in SQLite). New tables get bigint, numeric
(decimals, digit for digit: 12.50 stays 12.50), boolean, text and jsonb
columns. Values are checked against their columns before they are sent
(ranges of smallint/integer, exact floats, numeric precision and scale), so
a bad row is a reject; date, timestamp, uuid and other columns take text
the server checks, and a value it refuses fails the run. Table and column
names over 63 bytes, which PostgreSQL would truncate, are refused. The
bookmark goes to _etl_state in the same schema, in the same transaction;
loads of the same table take turns (an advisory lock).

Endless input (from etl-watch, or tail -f through etl-extract): with
--commit segment every begin..end segment is committed, with its bookmark,
when its end line arrives; a segment cut short is rolled back and the run
fails, leaving the segments before it committed.

File targets: a .csv, .tsv, .ndjson or .parquet TARGET (or --format) is written to a
temporary file beside it and renamed into place when the run succeeds, so
readers see the old file or the new one. --mode append adds to a copy of
the old file, --mode replace writes it anew (upsert needs a database). The columns of
a CSV/TSV file are fixed by its header or its first records, and a record
with other non-null fields is rejected. Parquet columns are typed like a
table's (INT64, DOUBLE, BOOLEAN, UTF-8 text and JSON); a Parquet file
cannot be appended to. - writes to stdout. Bookmarks go to
--state FILE.json, after the data file is in place.

Examples:
  $ etl-extract sample-data/orders.csv | etl-load wh.db --table orders
  $ etl-extract sample-data/customers.csv | etl-load wh.db --table customers --mode replace
  $ etl-load wh.db --table events sample-data/events.ndjson
  $ etl-extract sample-data/orders.csv | etl-load wh.db --table latest --mode upsert --key order_id
  $ etl-extract sample-data/orders.csv | etl-load wh.db --table orders --schema strict --rejects rejects.ndjson --max-rejects 10
  $ etl-extract sample-data/events.ndjson | etl-load events.csv --mode replace
  $ etl-extract sample-data/orders.csv | etl-load orders.parquet --mode replace
  $ etl-extract sample-data/orders.csv | etl-load postgres://postgres@127.0.0.1/test --table etl_example_orders --mode upsert --key order_id
  $ etl-extract sample-data/orders.csv --cursor ordered_at --state orders.state.json | etl-load orders.ndjson --mode append --state orders.state.json
";

/// How a load treats rows already in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Add the incoming rows to the table
    Append,
    /// Swap the table's rows for the incoming rows, atomically
    Replace,
    /// Insert or update rows by --key
    Upsert,
}

/// What happens to fields the table has no column for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaPolicy {
    /// Add a column for a new field
    Evolve,
    /// Reject records with fields the table lacks
    Strict,
}

/// What a commit covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CommitPolicy {
    /// One transaction for the whole run
    Run,
    /// One transaction per begin..end segment (for endless streams)
    Segment,
}

/// The format of a file target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetFormat {
    /// A SQLite database file
    Sqlite,
    /// CSV with a header line
    Csv,
    /// TSV with a header line, no quoting
    Tsv,
    /// One JSON object per line
    Ndjson,
    /// Apache Parquet (zstd-compressed, typed columns)
    Parquet,
}

/// Load NDJSON records into a SQLite table (or a CSV/TSV/NDJSON file), all or nothing
#[derive(Debug, Parser)]
#[command(
    name = "etl-load",
    version,
    after_help = "Examples:\n  $ etl-extract sample-data/orders.csv | etl-load wh.db --table orders\n\nMore in --help.",
    after_long_help = format!(
        "{AFTER_HELP}\n{}\n\n{}",
        super::POSTGRES_CONNECTIONS,
        super::EXIT_CODES
    ),
)]
pub struct LoadArgs {
    /// SQLite database file (created if missing), postgres:// URL, .csv/.tsv/.ndjson/.parquet file, or - for stdout
    #[arg(value_name = "TARGET")]
    pub target: PathBuf,

    /// NDJSON input file (may be .gz or .zst), or - for stdin (the default)
    #[arg(value_name = "INPUT")]
    pub input: Option<PathBuf>,

    /// Table to load into (created if missing); required for a database
    #[arg(short, long)]
    pub table: Option<String>,

    /// Target format [default: from the extension: .csv, .tsv, .ndjson/.jsonl, .parquet; else sqlite; - is ndjson]
    #[arg(short, long, value_enum)]
    pub format: Option<TargetFormat>,

    /// append adds rows; replace swaps the table's contents; upsert merges by --key
    #[arg(short, long, value_enum, default_value_t = Mode::Append)]
    pub mode: Mode,

    /// Key column(s) for upsert: repeat the flag or separate with commas
    #[arg(short, long, value_name = "COL", value_delimiter = ',')]
    pub key: Vec<String>,

    /// With upsert: a record whose COL is true deletes its key's row
    #[arg(long, value_name = "COL")]
    pub delete_when: Option<String>,

    /// evolve adds a column for a new field; strict rejects such records
    #[arg(long, value_enum, default_value_t = SchemaPolicy::Evolve)]
    pub schema: SchemaPolicy,

    /// --rejects and --max-rejects
    #[command(flatten)]
    pub rejects: super::RejectsArgs,

    /// Let --mode replace empty the table when the input has no lines at all
    #[arg(long)]
    pub allow_empty: bool,

    /// PostgreSQL schema of the table and of its _etl_state table (created if missing) [default: the connection's current schema: public, unless search_path says otherwise]
    #[arg(long, value_name = "NAME")]
    pub schema_name: Option<String>,

    /// For a file target: the JSON file that keeps incremental bookmarks
    /// (a database target keeps them in its _etl_state table)
    #[arg(long, value_name = "FILE.json")]
    pub state: Option<PathBuf>,

    /// run: one transaction for the whole input; segment: commit at every end line
    #[arg(long, value_enum, default_value_t = CommitPolicy::Run)]
    pub commit: CommitPolicy,

    /// Seconds to wait for another load of the same database to finish
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub wait: u64,

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
        LoadArgs::command().debug_assert();
    }
}
