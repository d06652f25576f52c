//! Command-line definitions: one clap `Parser` per program, sharing option
//! groups so that a flag means the same thing everywhere. Parsing is all
//! that happens here; the program modules turn these into checked plans.

pub mod broker_security;
pub mod extract;
pub mod http;
pub mod input;
pub mod load;
pub mod transform;
pub mod watch;

use std::path::PathBuf;

use clap::Args;
use clap::ValueEnum;
use clap::builder::PossibleValue;
use clap_complete::Shell;

use crate::format::Format;
use crate::source::input::Compression;

use crate::progress::Verbosity;
use crate::rejects::{Rejects, RejectsOptions};

/// `--rejects` / `--max-rejects`, shared by every program that reads records.
#[derive(Debug, Clone, Args)]
pub struct RejectsArgs {
    /// Write rejected records to FILE (one JSON line each: input, line,
    /// reason, and the record or raw text) and go on
    #[arg(long = "rejects", id = "rejects", value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Fail, passing nothing on as complete, when more than N records are
    /// rejected [default: no limit with --rejects, 0 without]
    #[arg(
        long = "max-rejects",
        id = "max_rejects",
        value_name = "N",
        requires = "rejects"
    )]
    pub max: Option<u64>,
}

impl RejectsArgs {
    /// The checked options.
    pub fn options(&self) -> RejectsOptions {
        RejectsOptions {
            file: self.file.clone(),
            max: self.max,
        }
    }

    /// Opens the rejects file with its limit: without a file, the first
    /// rejected record fails the run.
    pub fn open(&self) -> anyhow::Result<Rejects> {
        self.options().open()
    }
}

/// How a PostgreSQL connection is written, for the `--help` of the
/// programs that take one (etl-extract, etl-load).
pub const POSTGRES_CONNECTIONS: &str = "\
PostgreSQL connections:
  A postgres:// (or postgresql://) URL, read as libpq reads it:
  postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE?PARAM=VALUE&... (write a
  special character in the password percent-encoded: '@' as %40). What the
  URL leaves out comes from PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD,
  PGOPTIONS, PGAPPNAME, PGCONNECT_TIMEOUT, PGSSLMODE, PGSSLROOTCERT,
  PGSSLCERT, PGSSLKEY and PGPASSFILE or ~/.pgpass, as with psql. URL
  parameters honoured: host, hostaddr, port, dbname, user, password,
  passfile, options (options=-csearch_path%3Dstaging makes staging the
  schema used without --schema-name), application_name,
  fallback_application_name, connect_timeout (default 30 seconds),
  keepalives, keepalives_idle, keepalives_interval, keepalives_count,
  tcp_user_timeout, target_session_attrs (any, read-write, read-only),
  channel_binding, load_balance_hosts, gssencmode (disable, prefer),
  client_encoding (UTF8) and TLS's: sslmode (disable, allow, prefer (the
  default), require, verify-ca, verify-full), sslrootcert (a PEM file of
  CA certificates, or system for the public authorities built into etlkit),
  sslcert and sslkey (a client certificate; the key unencrypted, mode
  0600), sslcertmode (allow, disable), sslsni, sslnegotiation,
  ssl_min_protocol_version and ssl_max_protocol_version. As libpq:
  require checks no certificate unless a root certificate file exists,
  verify-full also checks the host name, and ~/.postgresql/root.crt,
  postgresql.crt and postgresql.key are used when the URL names none; a
  certificate that fails its check ends the run, naming why, never falling
  back to plain text. Any other parameter (sslpassword, sslcrl, service...)
  is refused (exit 2); none is ignored. key=value connection strings are
  not accepted. No message etlkit prints contains the password; prefer
  PGPASSWORD or ~/.pgpass to a password in the URL: other users can read
  command lines.";

/// Handles `--completions SHELL` before the program's own parsing, so that
/// it works without the arguments a run requires (etl-load's TARGET):
/// prints the completion script of `command` and says so.
pub fn completions(mut command: clap::Command) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = args.iter().enumerate().find_map(|(i, arg)| {
        if arg == "--completions" {
            args.get(i + 1).cloned()
        } else {
            arg.strip_prefix("--completions=").map(String::from)
        }
    });
    let Some(shell) = value.and_then(|v| <Shell as ValueEnum>::from_str(&v, true).ok()) else {
        // Absent, or not a shell: clap's own parsing says what is wrong.
        return false;
    };
    let name = command.get_name().to_string();
    clap_complete::generate(shell, &mut command, name, &mut std::io::stdout());
    true
}

/// Exit codes, identical for every program; appended to each `--help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0    success (also when a downstream reader closes the pipe early)
  1    runtime failure: I/O, malformed input, database error, truncated input,
       or a lock another run held (etl-load past --wait; a second etl-watch)
  2    usage error: bad flags or a bad combination of them
  3    finished, but some records were rejected (see --rejects)
  130  interrupted (SIGINT); nothing partial was committed";

/// `-q` / `-v`, shared by every program.
#[derive(Debug, Clone, Args)]
pub struct VerbosityArgs {
    /// Print errors only: no progress bar, no summary line
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print more detail on stderr (table creation, column types, timings)
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// End with a JSON run record on stderr instead of the summary line
    /// (also for failures: status, exit code, error), even with -q
    #[arg(long, global = true)]
    pub log_json: bool,

    /// Print a shell completion script for bash, zsh, fish, elvish or
    /// powershell, and exit (e.g. etl-load --completions bash >
    /// ~/.local/share/bash-completion/completions/etl-load)
    #[arg(long, value_name = "SHELL", exclusive = true)]
    pub completions: Option<Shell>,
}

impl VerbosityArgs {
    /// The settings the library uses.
    pub fn verbosity(&self) -> Verbosity {
        Verbosity {
            quiet: self.quiet,
            verbose: self.verbose,
            log_json: self.log_json,
        }
    }
}

// The library's value types, spelled for the command line here so that no
// library module depends on clap.

impl ValueEnum for Format {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            Format::Csv,
            Format::Tsv,
            Format::Ndjson,
            Format::Json,
            Format::Parquet,
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Format::Csv => PossibleValue::new("csv")
                .help("Comma-separated values with a header line (RFC 4180 quoting)"),
            Format::Tsv => PossibleValue::new("tsv")
                .help("Tab-separated values with a header line; no quoting"),
            Format::Ndjson => PossibleValue::new("ndjson")
                .help("One JSON object per line (also .jsonl); control lines are checked"),
            Format::Json => PossibleValue::new("json")
                .help("A JSON array of objects, streamed element by element"),
            Format::Parquet => {
                PossibleValue::new("parquet").help("Apache Parquet (a file, not stdin)")
            }
        })
    }
}

impl ValueEnum for Compression {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            Compression::Auto,
            Compression::None,
            Compression::Gzip,
            Compression::Zstd,
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Compression::Auto => PossibleValue::new("auto")
                .help("From the file extension, else from the first bytes"),
            Compression::None => PossibleValue::new("none").help("Not compressed"),
            Compression::Gzip => PossibleValue::new("gzip").help("gzip (.gz)"),
            Compression::Zstd => PossibleValue::new("zstd").help("Zstandard (.zst)"),
        })
    }
}

/// Parses a size: bytes, or a number with K, M or G (powers of 1024).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let factor: u64 = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(format!("{text:?} is not a size such as 500000, 64M or 1G")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{text:?} is not a size such as 500000, 64M or 1G"))
}
