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

The table is created if missing, with column types from the stream's begin
line or, failing that, from the values: INTEGER, REAL, BOOLEAN, TEXT, JSON.
A new field adds a column. A column's type is never changed: a value that
does not fit it fails the run, naming its input line.

Examples:
  $ etl-extract sample-data/orders.csv | etl-load wh.db --table orders
  $ etl-extract sample-data/customers.csv | etl-load wh.db --table customers --mode replace
  $ etl-load wh.db --table events sample-data/events.ndjson
";

/// How a load treats rows already in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Add the incoming rows to the table
    Append,
    /// Swap the table's rows for the incoming rows, atomically
    Replace,
}

/// Load NDJSON records into a SQLite table, all or nothing
#[derive(Debug, Parser)]
#[command(
    name = "etl-load",
    version,
    after_help = "Examples:\n  $ etl-extract sample-data/orders.csv | etl-load wh.db --table orders\n\nMore in --help.",
    after_long_help = format!("{AFTER_HELP}\n{}", super::EXIT_CODES),
)]
pub struct LoadArgs {
    /// SQLite database file (created if missing)
    #[arg(value_name = "TARGET")]
    pub target: PathBuf,

    /// NDJSON input file, or - for stdin (the default)
    #[arg(value_name = "INPUT")]
    pub input: Option<PathBuf>,

    /// Table to load into (created if missing)
    #[arg(short, long)]
    pub table: String,

    /// append adds rows; replace swaps the table's contents in one transaction
    #[arg(short, long, value_enum, default_value_t = Mode::Append)]
    pub mode: Mode,

    /// Let --mode replace empty the table when the input has no lines at all
    #[arg(long)]
    pub allow_empty: bool,

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
