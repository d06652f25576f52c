//! `etl-extract`: read files, stdin or a SQLite table and write the NDJSON wire.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::builder::PossibleValue;
use clap::{Parser, ValueEnum};

use super::VerbosityArgs;
use crate::error::usage;
use crate::extract::{ExtractPlan, IncrementalPlan};
use crate::files::inputs::FileInputs;
use crate::format::Format;
use crate::incremental::parse_bound;
use crate::registry::{self, address, address::Role};
use crate::source::Selection;
use crate::source::input::{self, Compression, Location};
use crate::store::Readable;
use crate::store::SourceArgs;

const AFTER_HELP: &str = "\
Output is NDJSON on stdout: a {\"@etl\":\"begin\",...} line, one JSON object per
record, and an {\"@etl\":\"end\",\"rows\":N} line written only when the whole
input was read. A consumer that sees begin without end knows the run failed.
Several inputs (or a quoted glob such as 'exports/*.csv') become one stream,
in order; CSV files in one stream must share their header.

CSV columns are typed once, from the first --infer-rows records: integer
(64-bit, no leading zeros); decimal(P,S) when every number has the same S
digits after the point (12.50, 0.10; P is 15, or 18 or 38 when the first
rows need more digits); float when the digits after the point vary and a
64-bit float holds each exactly (15 digits); boolean (true/false); date
(2024-02-29), time (13:04:05[.ffffff]), timestamp (2024-01-02T03:04:05,
a space for the T allowed) or timestamptz (the same with Z or an offset:
+05:30, or +05 / +0530 as PostgreSQL prints them) when every value has
that one form; else text. Timestamps go on the wire in ISO form (T, and
+HH:MM). --schema pins types by column. Empty fields are null. A later
value that does not fit its column's type (12.505 in decimal(15,2), a date
among timestamps) is passed on unchanged as text, with a warning; a typed
load rejects it, never rounds or converts it. Memory stays flat for every
format.

Missing values written as a token (R's NA, MySQL's \\N, NULL, -): each
--null-value TOKEN makes an unquoted field whose whole text is TOKEN null,
so it takes no part in typing (a column of numbers and NA is numeric) and a
later NA does not fail a typed load. Matching is exact and case-sensitive.
A quoted \"NA\" stays text: R's write.csv quotes a real \"NA\" string and
writes a missing value bare, and PostgreSQL's COPY ... NULL 'NA' reads it
the same way (DuckDB's nullstr reads a quoted token as null too, unless
allow_quoted_nulls = false). TSV has no quoting: there every field equal to
a token is null. NDJSON, JSON and Parquet have nulls of their own:
--null-value with them is a usage error.

Bad rows (wrong field count, unterminated quote, invalid UTF-8, a JSON line
that is not an object): without --rejects the first one fails the run, naming
file and line. With --rejects FILE each goes to FILE as a JSON line with
input, line, reason and raw text, and the run goes on (exit 3), failing only
past --max-rejects.

Object storage: s3://bucket/key (or a glob over keys) reads objects on S3
or an S3-compatible server as a stream, in key order, with the same formats
and compression by extension as files; Parquet by ranged reads (the footer,
then one row group at a time), never the whole object in memory.
Credentials and the server come from the AWS variables and profile files:
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION
(or AWS_DEFAULT_REGION), AWS_PROFILE with ~/.aws/credentials and
~/.aws/config, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL for MinIO, R2, Ceph
and the like (buckets then addressed by path; AWS_S3_ADDRESSING_STYLE=path
or virtual overrides).

Incremental runs: --cursor COL --state STATE emits only rows whose COL is past
the stream's bookmark (numbers by value, ISO 8601 timestamps both in UTC
or both without offset by their time, however many fraction digits, other
text by code point) and puts the new bookmark in the end line. etl-load stores
it: in the target database's _etl_state table, in the same transaction as
the rows (so STATE is the target, e.g. wh.db), or in a STATE.json file. The
bookmark also lists the rows at its exact value, so rows that share the
boundary value are neither lost nor repeated (past 64 such rows as packed
fingerprints, 8 bytes a row: prefer a cursor finer than a day). Rows whose cursor is null are
rejected; a bytes column (base64, which does not sort as its bytes) cannot
be the cursor. --since and --until (inclusive, exclusive) replace the bookmark
for one backfill run; the bookmark never moves backwards. For database sources
the range is pushed into the query.

PostgreSQL: INPUT is a postgres:// URL (see PostgreSQL connections below).
--table names a table of --schema-name, else of the connection's current
schema (public, unless the search_path says otherwise); a name over 63
bytes, which PostgreSQL would truncate, is refused. Rows are streamed
(memory stays flat) and typed by the server: bigint and numeric keep every
digit, timestamps are ISO 8601 in UTC, json/jsonb are nested JSON. The begin
line declares numeric(p,s) as decimal(p,s), date, time, timestamp,
timestamptz, uuid and bytea as bytes (base64); interval is text, arrays json.

MySQL and MariaDB: INPUT is a mysql:// (or mariadb://) URL naming the
database; the user, password, host and port it leaves out come from the
[client] section of ~/.my.cnf, then MYSQL_PWD, MYSQL_HOST and
MYSQL_TCP_PORT, as with the mysql client (URL parameters: socket, and TLS
as the client names it, in the URL or ~/.my.cnf: ssl-mode=DISABLED,
PREFERRED (the default), REQUIRED, VERIFY_CA (the default with ssl-ca) or
VERIFY_IDENTITY, ssl-ca=FILE, ssl-cert=FILE and ssl-key=FILE; a certificate
that fails its check ends the run, naming why). Rows are streamed and typed by
the server, and the begin line declares their types: integers (BIGINT
UNSIGNED up to 18446744073709551615, YEAR, BIT(n) as an unsigned number)
are integer; DECIMAL(p,s) is decimal(p,s), every digit; BIT(1) is
true/false; DATE is date (YYYY-MM-DD), DATETIME timestamp
(YYYY-MM-DDTHH:MM:SS[.f]) and TIMESTAMP timestamptz, the same in UTC with
a Z (so is a DATETIME commented UTC, as etl-load makes one for instants;
a CHAR(36) commented uuid is uuid); TIME is time (a negative TIME or one
of 24 hours and more is written as MySQL shows it, -12:30:00: a
PostgreSQL time column rejects it; CAST it AS CHAR in --query to keep it
as text); JSON is nested JSON; text, ENUM and SET are UTF-8 (utf8mb4)
text; binary strings and BLOBs are bytes (base64).
SQLite: declared types give the wire types (DECIMAL_TEXT(p,s), and
DECIMAL(p,s) or NUMERIC(p,s) of up to 15 digits, are decimal(p,s); DATE, TIME, DATETIME, TIMESTAMPTZ and UUID when the first
1000 values are in the type's ISO form; BLOBs bytes when all are BLOBs);
other columns are typed from their first 1000 values. A zero date
(0000-00-00, or a zero month or day) rejects its row unless --zero-dates
null reads it as null (a warning counts them). Text cursors compare by code
point in SQL too.

Parquet: read row group by row group. Integers stay integers (UINT_64 is
declared text, its values strings of digits, unless the file's statistics
show every value fits a signed 64-bit integer); DECIMAL of every physical
width is decimal(p,s), every digit kept; DATE is date; TIME and TIMESTAMP
in milli- or microseconds are time, timestamp or, adjusted to UTC,
timestamptz written with +00:00; UUID is uuid; binary without a string
annotation is bytes (base64). Nanosecond TIME and TIMESTAMP and INT96
(Spark, Hive, Impala) are ISO 8601 text with all nine digits (the wire's
times keep microseconds; +00:00 only when the file says UTC, INT96 has no
zone); an Arrow duration (named in the file's ARROW:schema) is an ISO 8601
duration in seconds, PT1.5S or PT-0.000000001S, exact; JSON columns,
lists, maps and groups are nested JSON, at any depth. A value with no exact
JSON form (infinity, NaN, text that is not UTF-8, a JSON column's text
that is not JSON, a date outside the years 1 to 9999) is a bad row, named
by file and row.

HTTP JSON APIs: INPUT is an http:// or https:// URL. Each page is fetched
whole, and asked for again after a connection failure, timeout, 408, 429 or
5xx (waiting as Retry-After says), before any of its records is written: a
retry never repeats a record. A run that stops early (the server goes away,
a page is not JSON, the pagination does not advance, --max-pages) writes no
end line, so etl-load commits nothing. The records are --records PATH, else
the body if it is an array, else its only array field. Pages follow Link
rel=\"next\" headers, or --next, --cursor-param with --cursor-path,
--offset-param or --page-param. With --cursor, --since-param sends the
bookmark to the API so that it returns only newer records; they are still
checked against the bookmark here. Write --header in single quotes: etlkit
expands $API_TOKEN from its environment, so the token is not in the process
list, and masks it (***) in every message, --log-json record, control line
and rejects file. https:// uses rustls with Mozilla's roots; --ca-cert FILE
trusts a private CA instead. HTTPS_PROXY, HTTP_PROXY and NO_PROXY are honoured.

Datasets: INPUT may be one directory written by etl-load --partition-by (a
Hive-partitioned Parquet dataset). Only the files its manifest
_etl_manifest.json lists are read, so a load in progress or one that crashed
is never seen; columns kept in the paths (--partition-by COL) come back typed,
after the files' columns. With --cursor on a partition column (or the
timestamp a COL:day key comes from), partitions outside --since/--until or
below the bookmark are not opened. --state DIR reads the bookmark the dataset
keeps in its manifest. A dataset on S3 is read the same way from its prefix
(etl-extract s3://bucket/lake/orders: an s3:// address whose last part has
no extension): its manifest first, then each listed file by ranged reads
(the footer, then one row group at a time); --state s3://bucket/lake/orders
reads the bookmark its manifest keeps.

Examples:
  $ etl-extract sample-data/orders.csv | head -n 3
  $ etl-extract sample-data/events.ndjson --stream clicks -q | tail -n 1
  $ etl-extract --all-text sample-data/customers.csv > customers.ndjson
  $ etl-extract sample-data/readings.csv --null-value NA | head -n 3
  $ etl-extract sample-data/orders.csv | etl-load wh.db --table orders
  $ etl-extract wh.db --query 'SELECT order_id, zip FROM orders' | head -n 3
  $ etl-extract sample-data/orders.csv --cursor ordered_at --state wh.db | etl-load wh.db -t recent
  $ etl-extract sample-data/orders.csv --cursor ordered_at --since 2026-11-03 --until 2026-11-04
  $ etl-extract mysql://root@127.0.0.1:3306/test --query 'SELECT 18446744073709551615 AS big, 1.50 AS price' -q
  $ etl-extract https://api.example.com/v1/orders --next next -H 'Authorization: Bearer $API_TOKEN'
  # crontab: an API into SQLite every 15 minutes, new records only (api.env: export API_TOKEN=...)
  */15 * * * * cd /srv/etl && . ./api.env && set -o pipefail && etl-extract -q https://api.example.com/v1/orders --next next -H 'Authorization: Bearer $API_TOKEN' --cursor updated_at --since-param updated_since --state wh.db | etl-load -q wh.db --table orders --mode upsert --key id
  $ etl-extract sample-data/orders.csv | etl-load lake/orders --partition-by ordered_at:day && etl-extract lake/orders --cursor ordered_at --since 2026-11-03 --until 2026-11-04 | tail -n 1
";

/// Read CSV, TSV, NDJSON, JSON, Parquet, a SQLite, PostgreSQL or MySQL table or an HTTP JSON API and write records as NDJSON
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
    /// Input files or globs, or - for stdin (the default); or one dataset
    /// directory (or s3:// prefix) written by etl-load --partition-by. With --table or
    /// --query, one SQLite database file, a postgres:// or a mysql:// URL. An
    /// http:// or https:// URL reads a JSON API (see HTTP sources). An
    /// s3://bucket/key address reads an object on S3, and a glob in its key
    /// ('s3://bucket/in/*.csv.gz') the objects of the bucket's listing that
    /// match (see Object storage)
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,

    /// Input format [default: from the file extension, else csv]
    #[arg(short, long, value_enum)]
    pub format: Option<Format>,

    /// Input compression (auto: from the extension .gz/.zst, else the first bytes)
    #[arg(long, value_enum, default_value_t = Compression::Auto)]
    pub compression: Compression,

    /// --delimiter, --no-header, --all-text, --infer-rows, --null-value
    #[command(flatten)]
    pub csv: super::input::CsvArgs,

    /// Pin CSV column types with a JSON file: {"zip":"text","qty":"integer","day":"date"}
    /// (types: integer, float, boolean, text, json, decimal, decimal(P,S), date, time,
    /// timestamp, timestamptz, uuid, bytes)
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,

    /// Read this table from the database INPUT
    #[arg(long, value_name = "TABLE", conflicts_with = "query")]
    pub table: Option<String>,

    /// Run this SELECT against the database INPUT
    #[arg(long, value_name = "SQL")]
    pub query: Option<String>,

    /// PostgreSQL schema of --table and of the _etl_state table read by --state [default: the connection's current schema: public, unless search_path says otherwise]
    #[arg(long, value_name = "NAME")]
    pub schema_name: Option<String>,

    /// MySQL/MariaDB: what a zero date (0000-00-00, or a zero month or
    /// day) becomes: reject the row, or read it as null with a warning
    #[arg(long, value_name = "POLICY", default_value = "reject")]
    pub zero_dates: ZeroDates,

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

    /// HTTP sources: --records, pagination, --header, retries
    #[command(flatten)]
    pub http: super::http::HttpArgs,
}

/// `--zero-dates`: what a MySQL/MariaDB zero date becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroDates {
    /// The row is a reject.
    Reject,
    /// The value becomes null, with a warning.
    Null,
}

impl ValueEnum for ZeroDates {
    fn value_variants<'a>() -> &'a [Self] {
        &[ZeroDates::Reject, ZeroDates::Null]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            ZeroDates::Reject => {
                PossibleValue::new("reject").help("The row is a reject (see --rejects)")
            }
            ZeroDates::Null => {
                PossibleValue::new("null").help("The value becomes null; a warning counts them")
            }
        })
    }
}

/// The default stream name: the file name up to its first dot, else `stdin`.
pub(super) fn default_stream(location: Option<&Location>) -> String {
    location
        .and_then(Location::named)
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('.').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("stdin")
        .to_string()
}

/// A read from an API: the file and database flags do not apply; the HTTP
/// flags are checked by their own module.
fn http_plan(
    args: &ExtractArgs,
    url: &str,
    incremental: Option<IncrementalPlan>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ExtractPlan> {
    let file_flags = [
        ("--table", args.table.is_some()),
        ("--query", args.query.is_some()),
        ("--format", args.format.is_some()),
        ("--delimiter", args.csv.delimiter.is_some()),
        ("--no-header", args.csv.no_header),
        ("--all-text", args.csv.all_text),
        ("--null-value", !args.csv.nulls.null_values.is_empty()),
        ("--schema", args.schema.is_some()),
    ];
    if let Some((flag, _)) = file_flags.iter().find(|(_, set)| *set) {
        return Err(usage(format!(
            "{flag} does not apply to an http:// or https:// INPUT"
        )));
    }
    let http = super::http::plan(&args.http, url, env)?;
    let stream = args
        .stream
        .clone()
        .unwrap_or_else(|| crate::http::default_stream(&http.url));
    Ok(ExtractPlan {
        inputs: Box::new(http),
        stream,
        incremental,
        rejects: args.rejects.options(),
        verbosity: args.verbosity.verbosity(),
    })
}

impl ExtractArgs {
    /// The checked plan of this run: bad combinations of flags are usage
    /// errors here, before any input is read.
    pub fn plan(&self) -> Result<ExtractPlan> {
        plan(self, &|name| std::env::var(name).ok())
    }
}

/// The plan, with `$NAME` in HTTP headers and parameters read from `env`.
fn plan(args: &ExtractArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<ExtractPlan> {
    for input in &args.inputs {
        address::check_path(input, Role::ExtractInput)?;
    }
    if let Some(state) = &args.state {
        // A dataset on S3 keeps its bookmarks in its manifest.
        let dataset = crate::client::s3::url::names_prefix(&state.to_string_lossy());
        if !dataset {
            address::check_path(state, Role::State)?;
        }
    }
    let incremental = args.cursor.as_ref().map(|cursor| IncrementalPlan {
        cursor: cursor.clone(),
        state: args
            .state
            .as_deref()
            .map(|s| registry::state(s, args.schema_name.as_deref())),
        since: args.since.as_deref().map(parse_bound),
        until: args.until.as_deref().map(parse_bound),
    });
    if let Some(url) = super::http::url_input(&args.inputs, &args.http)? {
        return http_plan(args, &url, incremental, env);
    }
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
                    "--table and --query need one database as INPUT: a SQLite file, a postgres:// or a mysql:// URL",
                ));
            }
        };
        args.csv.nulls.refuse("a database table or query")?;
        if args.format.is_some() || args.csv.any_set() || args.schema.is_some() {
            return Err(usage(
                "--format, --delimiter, --no-header, --all-text and --schema apply to files, not to --table/--query",
            ));
        }
        let stream = args.stream.clone().unwrap_or_else(|| match &selection {
            Selection::Table(t) => t.clone(),
            Selection::Query(_) => "query".to_string(),
        });
        let inputs: Box<dyn Readable> = Box::new(registry::database_source(
            &path,
            &SourceArgs {
                selection,
                schema_name: args.schema_name.clone(),
                null_zero_dates: args.zero_dates == ZeroDates::Null,
            },
        ));
        return Ok(ExtractPlan {
            inputs,
            stream,
            incremental,
            rejects: args.rejects.options(),
            verbosity: args.verbosity.verbosity(),
        });
    }
    if let [dir] = args.inputs.as_slice()
        && let Some(dataset) = registry::dataset_source(dir)
    {
        args.csv
            .nulls
            .refuse("a dataset directory (Parquet), which has nulls of its own")?;
        if args.format.is_some_and(|f| f != Format::Parquet)
            || args.csv.delimiter.is_some()
            || args.csv.no_header
            || args.csv.all_text
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
            inputs: Box::new(dataset),
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
    let csv = args.csv.options(args.schema.as_deref())?;
    let locations = input::locate(&args.inputs)?;
    args.csv.nulls.check_formats(args.format, &locations)?;
    let stream = args
        .stream
        .clone()
        .unwrap_or_else(|| default_stream(locations.first()));
    Ok(ExtractPlan {
        rejects: args.rejects.options(),
        verbosity: args.verbosity.verbosity(),
        inputs: Box::new(FileInputs {
            locations,
            format: args.format,
            compression: args.compression,
            csv,
        }),
        stream,
        incremental,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{JsonPath, Pagination};
    use clap::{CommandFactory, Parser};

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

    fn env(name: &str) -> Option<String> {
        (name == "API_TOKEN").then(|| "tok-123456".to_string())
    }

    fn plan_of(argv: &[&str]) -> Result<ExtractPlan> {
        let args = ExtractArgs::try_parse_from(argv).map_err(|e| usage(e.to_string()))?;
        plan(&args, &env)
    }

    #[test]
    fn http_headers_expand_and_their_secrets_are_masked() {
        let argv = [
            "etl-extract",
            "https://api.example.com/v1/orders?api_key=literal-key",
            "--header",
            "Authorization: Bearer $API_TOKEN",
            "--param",
            "since=${API_TOKEN}",
            "--limit-param",
            "limit",
            "--page-size",
            "50",
            "--next",
            "links.next",
        ];
        let plan = plan_of(&argv).unwrap();
        let args = ExtractArgs::try_parse_from(argv).unwrap();
        let http = super::super::http::plan(&args.http, argv[1], &env).unwrap();
        assert_eq!(plan.stream, "orders");
        assert_eq!(http.headers[0].value, "Bearer tok-123456");
        assert_eq!(
            http.url.to_string(),
            "https://api.example.com/v1/orders?api_key=literal-key&since=tok-123456&limit=50"
        );
        assert_eq!(
            http.redactor.redact(&http.url.to_string()),
            "https://api.example.com/v1/orders?api_key=***&since=***&limit=50"
        );
        assert_eq!(
            http.pagination,
            Pagination::NextLink(JsonPath::parse("links.next").unwrap())
        );
    }

    #[test]
    fn bad_http_combinations_are_usage_errors() {
        let err = |argv: &[&str]| plan_of(argv).unwrap_err().to_string();
        assert!(
            err(&["e", "https://h/x", "-H", "Authorization: Bearer $NOPE"])
                .contains("environment variable NOPE is not set")
        );
        assert!(err(&["e", "https://h/x", "--table", "t"]).contains("--table does not apply"));
        assert!(
            err(&["e", "https://h/x", "--next", "a", "--offset-param", "o"])
                .contains("cannot be used with")
        );
        assert!(err(&["e", "https://h/x", "--since-param", "s"]).contains("--cursor"));
        assert!(err(&["e", "https://h/x", "--timeout", "0"]).contains("--timeout"));
        let args = ExtractArgs::try_parse_from(["e", "orders.csv", "--records", "data"]).unwrap();
        assert!(
            super::super::http::url_input(&args.inputs, &args.http)
                .unwrap_err()
                .to_string()
                .contains("--records applies to")
        );
        let args = ExtractArgs::try_parse_from(["e", "https://h/x", "b.csv"]).unwrap();
        assert!(super::super::http::url_input(&args.inputs, &args.http).is_err());
    }
}
