//! `etl-load`: read the NDJSON wire and write it into a store: a table, a
//! file or a dataset.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use clap::builder::PossibleValue;
use clap::{Parser, ValueEnum};

use super::{VerbosityArgs, parse_size};
use crate::error::{Failure, Kind, usage};
use crate::extract::ExtractPlan;
use crate::files::inputs::FileInputs;
use crate::format::Format;
use crate::load::{CommitPolicy, LoadPlan};
use crate::registry::{self, address, address::Role};
use crate::sink::sync::{DeleteLimit, SyncOptions};
use crate::sink::{LoadMode, LoadOptions};
use crate::source::input::{self, Compression, Location};
use crate::store::{Capabilities, Store, TargetArgs};

const AFTER_HELP: &str = "\
Every run is one transaction: the target shows the old rows or the new ones,
never a part. Input that began with a {\"@etl\":\"begin\"} line but ends
without its {\"@etl\":\"end\"} line was cut upstream: nothing is committed and
the run fails with \"upstream ended early after N rows\". Input without control
lines (from another tool) is committed at EOF. Input with no lines at all is
refused by --mode replace unless --allow-empty says an empty source is real;
other modes commit nothing with a warning and record the run with status
empty (the producer probably failed), which scripts/etl-check does not count
as a successful run.

Modes: append adds the rows; replace empties the table and fills it again in
the same transaction (readers see the old rows or the new ones; columns,
indexes and triggers stay); upsert inserts new keys and updates existing ones
by --key (a unique index on the key is created if missing). Within one run,
the last record for a key wins, so loading the same input twice leaves the
table exactly as loading it once. With --delete-when COL, a record whose COL
is true deletes its key's row instead (soft-delete flags become hard
deletes); other records are upserted, COL included.

Deletes from a full read: --mode sync --key K takes the stream as the whole
source. It upserts every record and, in the same transaction, deletes the
rows whose key the stream does not hold (--soft-delete COL stamps COL with
the time instead, and clears it when the key comes back). The guards: a cut
stream commits nothing; a stream without records is refused unless
--allow-empty; --max-deletes N or P% fails the run before anything commits
when more would go (a partial source read looks like a mass delete); a
record that would be rejected (a null key, a value that does not fit)
fails the run, since its row would read as deleted; a stream that is part
of its source (an etl-watch batch, an incremental read from a bookmark) is
refused, and so is --commit segment. Databases only (SQLite, PostgreSQL,
MySQL/MariaDB).
--mode delete-missing does only the deletes, from a stream of the source's
keys (etl-extract ... --query 'SELECT id FROM t'): nothing is inserted or
updated, fields other than the keys are ignored, the same guards hold, and
the table must exist.

The table is created if missing, with column types from the stream's begin
line or, failing that, from the values: INTEGER, REAL, BOOLEAN, TEXT, JSON.
Under --schema evolve a new field adds a column; under --schema strict a
record with a field the table lacks is rejected (into a new table too: its
columns are those of the first 1000 records). A field finds its column
without regard to case in every database (a column of the exact name
first), so a record with two fields naming one column (\"id\" and \"Id\") is
rejected, never given a second column. A column's type is never
changed: a value that does not fit it (\"n/a\" or 1.5 in an INTEGER column;
2^53+1, 1e400 or 1e-400 in a REAL column) is rejected, never converted. Text
written as a number (\"1.00\", \"12\") goes into a numeric column when the column
holds that number exactly, like the number itself; other text (\"007\") does
not. SQLite: a decimal the begin line declares gets a DECIMAL(p,s) column
of numbers up to 15 digits (SQL compares and sums them as numbers;
etl-extract writes 12.50 back as 12.50), beyond that DECIMAL_TEXT(p,s)
(TEXT affinity: its digits as written, never rounded), dates and
times DATE, TIME, DATETIME or TIMESTAMPTZ (ISO text), uuids UUID and bytes
a BLOB of the decoded bytes; an undeclared decimal goes into a REAL column
(a binary float, exact to 15 significant digits), or stays TEXT when a
float cannot hold its digits. Load money into PostgreSQL
(numeric) or keep it as text when it must add up to the cent. Names
starting with _etl_ (any case) belong to etlkit's own tables and columns
(_etl_state, _etl_batches): such a --table is a usage error, a record with
such a field is rejected.

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
COPY: straight into the table for append and for replace (the old rows are
deleted first, in the same transaction: readers see them until the commit;
a table the load creates gets its rows with COPY FREEZE, already frozen, so
no reader or VACUUM rewrites its pages later; as PostgreSQL documents for
FREEZE, a REPEATABLE READ transaction older than the load sees those rows
once they are committed); through a temporary staging table for upsert (INSERT ... ON CONFLICT on
--key; a field a record omits keeps its stored value, as in SQLite). New tables get bigint, numeric
(decimals, digit for digit: 12.50 stays 12.50), boolean, text and jsonb
columns, and for the types a begin line declares (wire version 2) numeric(p,s),
date, time, timestamp, timestamptz, uuid and bytea (base64 on the wire).
Values are checked against their columns before they are sent (ranges of
smallint/integer, exact floats, numeric precision and scale, dates and times
that exist, uuids, base64), so a bad row is a reject; other spellings the
server reads (infinity, a timestamp without offset, read in the session's
zone, UTC) and other column types take text the server checks, and a value
it refuses fails the run. Table and column
names over 63 bytes, which PostgreSQL would truncate, are refused. The
bookmark goes to _etl_state in the same schema, in the same transaction;
loads of the same table take turns (an advisory lock).

MySQL and MariaDB targets: TARGET is a mysql:// (or mariadb://) URL naming
the database (credentials and TLS as for etl-extract: ~/.my.cnf [client],
MYSQL_PWD, ssl-mode, ssl-ca, ssl-cert, ssl-key).
Rows are checked against their columns (integer ranges incl. UNSIGNED,
DECIMAL digits and scale, exact floats, FLOAT's range, text length, dates,
TIMESTAMP's range, YEAR's 1901 to 2155 and 0 for 0000; base64 of a bytes
field, or \\x-hex text, becomes the bytes of a binary column; a row too large for the server's
max_allowed_packet), so a bad row is a reject. Append and replace into a
table that exists send the rows with LOAD DATA LOCAL INFILE (a statement
per 4 MB of rows) inside one InnoDB transaction (replace: DELETE and refill); MySQL commits at every
CREATE or ALTER TABLE, so a new field mid-stream rolls it back, adds the
column and sends the rows again from a spill file (nothing was visible). A
row LOCAL would skip (a duplicate key) or change fails the run. Where the
server's local_infile is OFF, and for upsert, sync and a new table, rows
are staged in a temporary table in statements sized to max_allowed_packet,
tables and columns are made at the end, and one transaction moves the rows
(upsert: INSERT ... ON DUPLICATE KEY UPDATE of the fields each record
carries, on a unique index over --key). The bookmark (_etl_state) and batch
ids (_etl_batches) are stored in the rows' transaction. A run that fails
leaves the rows as they were (a column or table it created may stay,
empty). New tables get BIGINT (BIGINT UNSIGNED
for integers past 2^63-1), DOUBLE, BIT(1), LONGTEXT (VARCHAR(191) for a
key) and JSON columns, utf8mb4_bin, and for the types a begin line
declares DECIMAL(p,s) (LONGTEXT past 65 digits or without precision),
DATE, TIME(6), DATETIME(6), CHAR(36) for uuids and LONGBLOB for bytes
(base64 decoded). MySQL has no zone: an instant (timestamptz) goes into a
DATETIME(6) commented UTC, converted to UTC on the way in; a uuid's
CHAR(36) is commented uuid (etl-extract reads both back as declared).
Names longer than MySQL's 64 characters are refused, never truncated.
Loads of one table take turns (GET_LOCK, up to --wait seconds).

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
table's (INT64, DOUBLE, BOOLEAN, UTF-8 text and JSON), and the begin
line's declared types get Parquet's own: DECIMAL(p,s), DATE,
TIME(MICROS), TIMESTAMP(MICROS) (adjusted to UTC for timestamptz), UUID,
binary; a Parquet file cannot be appended to. - writes to stdout. Bookmarks go to
--state FILE.json, after the data file is in place, with the ids of the
etl-watch batches written (a replayed batch is skipped). A file has no
transaction to hold both: a crash between the rename and the state write
can repeat the last batch, where a database repeats nothing. Two runs
writing one file take turns (lock file .NAME.etl-lock beside it).

Object storage: an s3://bucket/path/file.csv (.tsv, .ndjson, .parquet)
TARGET is written as an object that appears whole or not at all: CSV, TSV
and NDJSON stream into a multipart upload, Parquet is written to a local
spool file first, and the upload is completed only when the run succeeds
(after the end line); a failed or cut run aborts it, leaving no object and
an object already there unchanged. An object cannot be appended to: --mode
append writes a new object only, --mode replace writes it anew. --state
FILE.json is local, written after the object is complete. Credentials and
the server come from the AWS variables and profile files (see etl-extract
--help, Object storage). An s3:// TARGET with --partition-by, or whose last
part has no extension (s3://bucket/lake/orders), is a dataset (below).

One-off loads: an INPUT that is not NDJSON (by --input-format, else its
extension: .csv, .tsv, .json, .parquet, also .gz/.zst), several INPUTs or a
glob are read with etl-extract's own code, as if piped from etl-extract
INPUT...: the same table, the same typing (--delimiter, --no-header,
--all-text, --infer-rows, --null-value TOKEN for missing values such as
R's NA, and --column-types FILE for extract's --schema FILE; see
etl-extract --help), the same guarantees (a cut file commits nothing; an
empty file never replaces a table). One --rejects file and one
--max-rejects take the rows both halves refuse, each named by its line in
the file (FILE:LINE); a row the table refuses also names its line in the
NDJSON stream between the two halves (\"FILE:7 (NDJSON line 6)\",
\"ndjson_line\" in the rejects file).
NDJSON stays the default for stdin and .ndjson/.jsonl files.

Datasets (a data lake): --partition-by COL[:year|month|day|hour] (several
allowed, outermost first) writes TARGET as a directory of Parquet files in the
Hive layout Spark, Trino and DuckDB read: orders/ordered_at_day=2026-11-03/
part-<id>-<n>.parquet. COL:day takes the date as written in an ISO 8601 text
(no time-zone conversion); a plain COL moves into the path (Hive style) and
etl-extract restores it. Names are escaped as Hive does (%3A for :), null is
__HIVE_DEFAULT_PARTITION__; an empty text or a nested value is a reject. A
load writes one file per partition, whatever order the rows come in: rows
are held per partition until the commit (in memory up to 64 MB, past it in a
hidden spill file in DIR), then each partition is written at once (up to
4 at a time, one per thread), so at most 5 files are open and memory stays
bounded with any number of partitions. A file ends at the first row group (--row-group-size rows) that
takes it past --file-size, and the partition goes on in a new one. Modes:
append adds files; replace swaps the whole dataset; replace-partitions
replaces the partitions the input has rows for and leaves the others byte
for byte (a rerun with the same input leaves the same files). A new field
adds a column to the dataset's schema (the load's files carry it, earlier
files do not; DuckDB reads both with union_by_name); --schema strict rejects
it. Files are written hidden beside their place; the load names them in
_etl_pending.json, renames them into place, then replaces the manifest
_etl_manifest.json, which lists the committed files: that is the commit.
Replaced files and the pending record are deleted after it. etl-extract DIR
reads only what the manifest lists. A killed load leaves hidden temporary
files and files its pending record names, which the next load removes; a
load deletes nothing else. A directory with data files but no manifest
(another tool's, or a lost manifest) is refused (exit 2), and so is a
dataset holding Parquet files its manifest does not list (exit 1): move
them away or restore the manifest. A reader that lists the files itself (a
glob such as DIR/**/*.parquet) can see a commit's files before its
manifest, and replaced files until just after it: read the manifest's list
for an exact view. The manifest also keeps the bookmarks and batch ids (etl-extract --state DIR), so
they commit with the data; --state is refused. A later run without
--partition-by keeps the dataset's partitioning; another one needs replace.

A dataset on S3 (etl-load s3://bucket/lake/orders --partition-by
ordered_at:day) has the same layout and manifest. Its files are uploaded
under names no other load uses (part-<id>-<n>-<load>.parquet, never
overwriting an object), and the commit is one conditional write of the
manifest: created only if absent, else only if unchanged since the load
read it (its ETag). A load that loses to a concurrent one commits again on
the new manifest, as if it ran after the winner, unless the winner
committed one of its batch ids, moved one of its streams' bookmarks, or
changed the partitioning or a column's type: then it fails (exit 1),
naming why, and the winner's commit stands. Files no manifest lists (a
killed load's, the ones a replace dropped) are never read, and a load
deletes them (only names a load gives, never another tool's files) once
they are an hour old (ETLKIT_LAKE_CLEAN_AFTER, seconds), the ones a
replace dropped an hour after the replace (for readers of the manifest
before it). A load whose files waited more than half that for their
commit fails instead of committing them.

Examples:
  $ etl-extract sample-data/orders.csv | etl-load wh.db --table orders
  $ etl-load wh.db --table orders sample-data/orders.csv
  $ etl-load wh.db --table customers_text --mode replace --all-text sample-data/customers.csv
  $ etl-load wh.db --table readings --null-value NA sample-data/readings.csv
  $ etl-extract sample-data/customers.csv | etl-load wh.db --table customers --mode replace
  $ etl-load wh.db --table events sample-data/events.ndjson
  $ etl-extract sample-data/orders.csv | etl-load wh.db --table latest --mode upsert --key order_id
  $ etl-extract sample-data/orders.csv | etl-load wh.db --table mirror --mode sync --key order_id --max-deletes 5%
  $ etl-extract sample-data/orders.csv | etl-load wh.db --table mirror --mode sync --key order_id --soft-delete deleted_at
  $ etl-extract wh.db --query 'SELECT order_id FROM orders' | etl-load wh.db --table mirror --mode delete-missing --key order_id
  $ etl-extract sample-data/orders.csv | etl-load wh.db --table orders --dry-run --job nightly-orders
  $ etl-extract sample-data/orders.csv | etl-load wh.db --table orders --schema strict --rejects rejects.ndjson --max-rejects 10
  $ etl-extract sample-data/events.ndjson | etl-load events.csv --mode replace
  $ etl-extract sample-data/orders.csv | etl-load orders.parquet --mode replace
  $ etl-extract sample-data/orders.csv | etl-load postgres://postgres@127.0.0.1/test --table etl_example_orders --mode upsert --key order_id
  $ etl-extract sample-data/orders.csv | etl-load mysql://root@127.0.0.1:3306/test --table etl_example_orders --mode upsert --key order_id
  $ etl-extract sample-data/orders.csv --cursor ordered_at --state orders.state.json | etl-load orders.ndjson --mode append --state orders.state.json
  $ etl-extract sample-data/orders.csv | etl-load lake/orders --format parquet --partition-by ordered_at:day --mode replace-partitions
  $ etl-extract events.csv | etl-load postgres://postgres@127.0.0.1/test --table events --naive-timestamps reject --rejects events.rejects.ndjson
";

/// What happens to fields the table has no column for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaPolicy {
    /// Add a column for a new field
    Evolve,
    /// Reject records with fields the table lacks
    Strict,
}

/// What a timestamp without a UTC offset becomes in a column of instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NaiveTimestamps {
    /// Read it in the session's time zone (UTC), as the server does
    Session,
    /// Reject it: an instant needs an offset (Z, +02:00)
    Reject,
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

/// Load NDJSON records (or any file etl-extract reads) into a SQLite, PostgreSQL or MySQL table, or a file, all or nothing
#[derive(Debug, Parser)]
#[command(
    name = "etl-load",
    version,
    after_help = "Examples:\n  $ etl-extract sample-data/orders.csv | etl-load wh.db --table orders\n  $ etl-load wh.db --table orders sample-data/orders.csv\n\nMore in --help.",
    after_long_help = format!(
        "{AFTER_HELP}\nWhat each store can do (yes, or - where it cannot; a flag it cannot\nhonour is a usage error, exit 2):\n\n{}\n{}\n\n{}",
        crate::registry::capability_table(),
        super::POSTGRES_CONNECTIONS,
        super::EXIT_CODES
    ),
)]
pub struct LoadArgs {
    /// SQLite database file (created if missing), postgres:// or mysql:// URL, .csv/.tsv/.ndjson/.parquet file (or s3:// object), dataset directory, or - for stdout
    #[arg(value_name = "TARGET")]
    pub target: PathBuf,

    /// Input files or globs, or - for stdin (the default): NDJSON, or
    /// anything etl-extract reads (CSV, TSV, JSON arrays, Parquet; .gz or
    /// .zst), by --input-format, else the extension (see One-off loads)
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,

    /// Input format [default: from the file extension, else ndjson]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub input_format: Option<crate::format::Format>,

    /// --delimiter, --no-header, --all-text, --infer-rows, --null-value
    #[command(flatten)]
    pub csv: super::input::CsvArgs,

    /// Pin CSV input column types with a JSON file: {"zip":"text","qty":"integer","day":"date"}
    /// (etl-extract's --schema; here --schema is evolve|strict)
    #[arg(long, value_name = "FILE")]
    pub column_types: Option<PathBuf>,

    /// Table to load into (created if missing); required for a database
    #[arg(short, long)]
    pub table: Option<String>,

    /// Target format [default: from the extension: .csv, .tsv, .ndjson/.jsonl, .parquet; else sqlite; - is ndjson]
    #[arg(short, long, value_enum)]
    pub format: Option<TargetFormat>,

    /// append adds rows; replace swaps the table's contents; upsert merges by --key
    #[arg(short, long, value_enum, default_value_t = LoadMode::Append)]
    pub mode: LoadMode,

    /// Key column(s) for upsert: repeat the flag or separate with commas
    #[arg(short, long, value_name = "COL", value_delimiter = ',')]
    pub key: Vec<String>,

    /// With upsert: a record whose COL is true deletes its key's row
    #[arg(long, value_name = "COL")]
    pub delete_when: Option<String>,

    /// With sync: stamp COL (created if missing, a timestamp with time zone)
    /// with the time instead of deleting the row; a row that comes back is
    /// cleared
    #[arg(long, value_name = "COL")]
    pub soft_delete: Option<String>,

    /// With sync: fail the run, before anything commits, when more than N
    /// rows (or P% of the table) would be deleted or marked
    #[arg(long, value_name = "N|P%")]
    pub max_deletes: Option<DeleteLimit>,

    /// evolve adds a column for a new field; strict rejects such records
    #[arg(long, value_enum, default_value_t = SchemaPolicy::Evolve)]
    pub schema: SchemaPolicy,

    /// --rejects and --max-rejects
    #[command(flatten)]
    pub rejects: super::RejectsArgs,

    /// Let --mode replace empty the table when the input has no lines at all,
    /// and --mode sync delete every row when the input has no records
    #[arg(long)]
    pub allow_empty: bool,

    /// PostgreSQL timestamptz columns: a timestamp without a UTC offset
    /// (2024-01-02 03:04:05) is read in the session's zone, UTC (session), or
    /// rejected (reject)
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = NaiveTimestamps::Session)]
    pub naive_timestamps: NaiveTimestamps,

    /// PostgreSQL schema of the table and of its _etl_state table (created if missing) [default: the connection's current schema: public, unless search_path says otherwise]
    #[arg(long, value_name = "NAME")]
    pub schema_name: Option<String>,

    /// Write a Hive-partitioned Parquet dataset (TARGET is a directory or an s3:// prefix) by
    /// COL, or by the year, month, day or hour of a timestamp COL; repeat or
    /// separate with commas, outermost first
    #[arg(long, value_name = "COL[:UNIT]", value_delimiter = ',')]
    pub partition_by: Vec<String>,

    /// Parquet targets: rows per row group [default: 65536]
    #[arg(long, value_name = "ROWS")]
    pub row_group_size: Option<usize>,

    /// Datasets: start a new file in a partition once its file passes this
    /// size (bytes, or with K, M, G) [default: 128M]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub file_size: Option<u64>,

    /// For a file target: the JSON file that keeps incremental bookmarks
    /// (a database target keeps them in its _etl_state table)
    #[arg(long, value_name = "FILE.json")]
    pub state: Option<PathBuf>,

    /// run: one transaction for the whole input; segment: commit at every end line
    #[arg(long, value_enum, default_value_t = CommitPolicy::Run)]
    pub commit: CommitPolicy,

    /// The job's name in the run history (_etl_runs, or the --state file)
    /// [default: the table, or the file's name]
    #[arg(long, value_name = "NAME")]
    pub job: Option<String>,

    /// Do everything (create and alter tables, write and check every row),
    /// then roll back: prints the table definitions and the counts
    #[arg(long)]
    pub dry_run: bool,

    /// Seconds to wait for another load of the same database to finish
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub wait: u64,

    /// -q and -v
    #[command(flatten)]
    pub verbosity: VerbosityArgs,
}

impl ValueEnum for LoadMode {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            LoadMode::Append,
            LoadMode::Replace,
            LoadMode::Upsert,
            LoadMode::ReplacePartitions,
            LoadMode::Sync,
            LoadMode::DeleteMissing,
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            LoadMode::Append => {
                PossibleValue::new("append").help("Add the incoming rows to the table")
            }
            LoadMode::Replace => PossibleValue::new("replace")
                .help("Swap the table's rows for the incoming rows, atomically"),
            LoadMode::Upsert => PossibleValue::new("upsert").help("Insert or update rows by --key"),
            LoadMode::ReplacePartitions => PossibleValue::new("replace-partitions")
                .help("Datasets: replace the partitions the input has rows for, keep the rest"),
            LoadMode::Sync => PossibleValue::new("sync").help(
                "Upsert by --key and delete the rows whose key the input (the whole source) lacks",
            ),
            LoadMode::DeleteMissing => PossibleValue::new("delete-missing")
                .help("Only delete the rows whose key the input (the source's keys) lacks"),
        })
    }
}

impl ValueEnum for CommitPolicy {
    fn value_variants<'a>() -> &'a [Self] {
        &[CommitPolicy::Run, CommitPolicy::Segment]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            CommitPolicy::Run => {
                PossibleValue::new("run").help("One transaction for the whole run")
            }
            CommitPolicy::Segment => PossibleValue::new("segment")
                .help("One transaction per begin..end segment (for endless streams)"),
        })
    }
}

impl LoadArgs {
    /// The checked plan of this run: every combination of flags that
    /// cannot work is a usage error here, before any I/O.
    pub fn plan(&self) -> Result<LoadPlan> {
        let (store, load) = target(self)?;
        let (input, extract) = self.input_plan()?;
        Ok(LoadPlan {
            store,
            load,
            input,
            extract,
            commit: self.commit,
            allow_empty: self.allow_empty,
            rejects: self.rejects.options(),
            verbosity: self.verbosity.verbosity(),
            job: self.job.clone(),
        })
    }
}

impl LoadArgs {
    /// Where the records come from: one NDJSON input read directly (the
    /// wire), or anything else read with etl-extract's code, exactly as
    /// `etl-extract INPUT... | etl-load` would.
    fn input_plan(&self) -> Result<(Option<PathBuf>, Option<ExtractPlan>)> {
        let ndjson = |path: &PathBuf| {
            let by_name = (path != Path::new("-"))
                .then(|| Format::from_path(path))
                .flatten();
            self.input_format.or(by_name).unwrap_or(Format::Ndjson) == Format::Ndjson
        };
        match self.inputs.as_slice() {
            [] if self.input_format.is_none_or(|f| f == Format::Ndjson) => {
                return self.direct(None);
            }
            [one] if !has_glob_chars(one) && ndjson(one) => return self.direct(Some(one)),
            _ => {}
        }
        let locations = input::locate(&self.inputs)?;
        let csv = self.csv.options(self.column_types.as_deref())?;
        let inputs = FileInputs {
            // Each file's extension decides, as in etl-extract; but where
            // none does, the default is NDJSON, the wire.
            format: self.input_format.or_else(|| {
                let named = |l: &Location| l.named().and_then(Format::from_path).is_some();
                (!locations.iter().all(named)).then_some(Format::Ndjson)
            }),
            compression: Compression::Auto,
            csv,
            locations: locations.clone(),
        };
        self.csv
            .nulls
            .check_formats(inputs.format, &inputs.locations)?;
        let plan = ExtractPlan {
            inputs: Box::new(inputs),
            stream: super::extract::default_stream(locations.first()),
            incremental: None,
            rejects: self.rejects.options(),
            verbosity: self.verbosity.verbosity(),
        };
        Ok((None, Some(plan)))
    }

    /// One NDJSON input, read by the load itself: CSV flags do not apply.
    fn direct(&self, input: Option<&PathBuf>) -> Result<(Option<PathBuf>, Option<ExtractPlan>)> {
        let name = input
            .filter(|p| *p != Path::new("-"))
            .map_or_else(|| "stdin".into(), |p| p.display().to_string());
        let what = format!("NDJSON input ({name}), which has nulls of its own");
        if let Some(refusal) = self.csv.nulls.refusal(&what) {
            return Err(refusal
                .hint("name a .csv/.tsv INPUT or pass --input-format csv")
                .into());
        }
        if self.csv.any_set() || self.column_types.is_some() {
            return Err(Failure::new(
                Kind::Usage,
                "--delimiter, --no-header, --all-text and --column-types apply to CSV/TSV input",
            )
            .hint("name a .csv/.tsv INPUT or pass --input-format csv")
            .into());
        }
        Ok((input.cloned(), None))
    }
}

fn has_glob_chars(path: &Path) -> bool {
    path.to_string_lossy().contains(['*', '?', '['])
}

/// Checks the flags against each other, then asks the registry for the
/// store the target names (each store checks the flags only it cares
/// about); returns it with the load options every store is given.
fn target(args: &LoadArgs) -> Result<(Box<dyn Store>, LoadOptions)> {
    address::check_path(&args.target, Role::LoadTarget)?;
    for input in &args.inputs {
        address::check_path(input, Role::ExtractInput)?;
    }
    if let Some(state) = &args.state {
        address::check_path(state, Role::State)?;
    }
    if args.allow_empty && !(args.mode == LoadMode::Replace || args.mode.sweeps()) {
        return Err(usage(
            "--allow-empty only applies to --mode replace, sync and delete-missing",
        ));
    }
    if !args.mode.sweeps() {
        for (set, flag) in [
            (args.soft_delete.is_some(), "--soft-delete"),
            (args.max_deletes.is_some(), "--max-deletes"),
        ] {
            if set {
                return Err(usage(format!(
                    "{flag} applies to --mode sync and --mode delete-missing"
                )));
            }
        }
    } else if args.commit == CommitPolicy::Segment {
        return Err(usage(
            "--mode sync and delete-missing delete what the whole stream lacks; they cannot be \
             combined with --commit segment",
        ));
    }
    let keys: Vec<String> = args
        .key
        .iter()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect();
    match (args.mode, keys.is_empty()) {
        (LoadMode::Upsert, true) => return Err(usage("--mode upsert needs --key COL[,COL...]")),
        (LoadMode::Sync, true) => return Err(usage("--mode sync needs --key COL[,COL...]")),
        (LoadMode::DeleteMissing, true) => {
            return Err(usage("--mode delete-missing needs --key COL[,COL...]"));
        }
        (LoadMode::Append | LoadMode::Replace | LoadMode::ReplacePartitions, false) => {
            return Err(usage(
                "--key applies to --mode upsert, sync and delete-missing",
            ));
        }
        _ => {}
    }
    if args.delete_when.is_some() && args.mode != LoadMode::Upsert {
        return Err(usage(
            "--delete-when needs --mode upsert (rows are deleted by --key)",
        ));
    }
    if args.mode == LoadMode::Replace && args.commit == CommitPolicy::Segment {
        return Err(usage(
            "--mode replace empties the table once per run; it cannot be combined with --commit segment",
        ));
    }
    let target = TargetArgs {
        address: args.target.clone(),
        format: args
            .format
            .and_then(|f| f.to_possible_value())
            .map(|v| v.get_name().to_string()),
        table: args.table.clone(),
        schema_name: args.schema_name.clone(),
        load: LoadOptions {
            mode: args.mode,
            keys,
            delete_when: args.delete_when.clone(),
            strict: args.schema == SchemaPolicy::Strict,
            reject_naive_timestamps: args.naive_timestamps == NaiveTimestamps::Reject,
            sync: SyncOptions {
                soft_delete: args.soft_delete.clone(),
                max_deletes: args.max_deletes,
            },
            dry_run: args.dry_run,
        },
        state: args.state.clone(),
        state_is_database: args
            .state
            .as_ref()
            .is_some_and(|s| registry::is_database(&s.to_string_lossy())),
        wait: Duration::from_secs(args.wait),
        partition_by: args.partition_by.clone(),
        row_group_size: args.row_group_size,
        file_size: args.file_size,
    };
    let store = registry::load_target(&target, &|c| check_capabilities(c, args))?;
    Ok((store, target.load))
}

/// The flag checks every store shares, asked of its row of the capability
/// table (`etl-load --help` prints the table).
fn check_capabilities(c: &Capabilities, args: &LoadArgs) -> Result<()> {
    if args.mode.merges_by_key() && !c.upsert {
        let mode = match args.mode {
            LoadMode::Sync => "sync",
            LoadMode::DeleteMissing => "delete-missing",
            _ => "upsert",
        };
        return Err(usage(format!(
            "--mode {mode} needs a database, a store with keys ({}); {} has none",
            registry::names_with(|c| c.upsert),
            c.what
        )));
    }
    if args.mode == LoadMode::ReplacePartitions && !c.partitions {
        return Err(usage(
            "--mode replace-partitions needs a partitioned dataset (--partition-by)",
        ));
    }
    if args.table.is_some() && !c.tables {
        return Err(usage(format!(
            "--table names a table in a database; this target is {}",
            c.what
        )));
    }
    if args.commit == CommitPolicy::Segment && !c.segment_commits {
        return Err(usage(format!(
            "--commit segment needs a store that commits each segment ({}); {} is written once per run",
            registry::names_with(|c| c.segment_commits),
            c.what
        )));
    }
    if args.state.is_some() && c.own_state {
        return Err(usage(format!(
            "{} keeps bookmarks and batch ids with its data, in the same commit; leave out --state",
            c.what
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("500000"), Ok(500_000));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("50KiB"), Ok(50 << 10));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("M").is_err());
    }

    #[test]
    fn definition_is_valid() {
        LoadArgs::command().debug_assert();
    }
}
