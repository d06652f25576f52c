//! `etl-extract`: read a file, stdin or a SQLite table and write the NDJSON wire.

use std::path::PathBuf;

use clap::Parser;

use super::VerbosityArgs;
use crate::format::Format;

const AFTER_HELP: &str = "\
Output is NDJSON on stdout: a {\"@etl\":\"begin\",...} line, one JSON object per
record, and an {\"@etl\":\"end\",\"rows\":N} line written only when the whole
input was read. A consumer that sees begin without end knows the run failed.

CSV columns are typed once, from the first --infer-rows records: integer
(64-bit, no leading zeros), float (exact to 15 digits), boolean (true/false)
or text. Empty fields are null. A later value that does not fit its column's
type is passed on unchanged as text, with a warning; a typed load rejects it.

Examples:
  $ etl-extract sample-data/orders.csv | head -n 3
  $ etl-extract sample-data/events.ndjson --stream clicks -q | tail -n 1
  $ etl-extract --all-text sample-data/customers.csv > customers.ndjson
  $ etl-extract sample-data/orders.csv | etl-load wh.db --table orders
  $ etl-extract wh.db --query 'SELECT order_id, zip FROM orders' | head -n 3
";

/// Read CSV, TSV, NDJSON or a SQLite table and write records as NDJSON
#[derive(Debug, Parser)]
#[command(
    name = "etl-extract",
    version,
    after_help = "Examples:\n  $ etl-extract sample-data/orders.csv | head -n 3\n\nMore in --help.",
    after_long_help = format!("{AFTER_HELP}\n{}", super::EXIT_CODES),
)]
pub struct ExtractArgs {
    /// Input file, or - for stdin (the default). With --table or --query,
    /// a SQLite database file
    #[arg(value_name = "INPUT")]
    pub input: Option<PathBuf>,

    /// Input format [default: from the file extension, else csv]
    #[arg(short, long, value_enum)]
    pub format: Option<Format>,

    /// Field delimiter for CSV (a single byte, e.g. ';' or '|') [default: ',' for csv, tab for tsv]
    #[arg(short, long, value_name = "CHAR")]
    pub delimiter: Option<char>,

    /// The CSV/TSV input has no header line; columns are named column_1, column_2, ...
    #[arg(long)]
    pub no_header: bool,

    /// Do not guess CSV column types: every value is text
    #[arg(long)]
    pub all_text: bool,

    /// How many leading CSV records decide the column types (held in memory)
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub infer_rows: usize,

    /// Read this table from the SQLite database INPUT
    #[arg(long, value_name = "TABLE", conflicts_with = "query")]
    pub table: Option<String>,

    /// Run this SELECT against the SQLite database INPUT
    #[arg(long, value_name = "SQL")]
    pub query: Option<String>,

    /// Stream name for control lines [default: the file stem, the table, or "stdin"]
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,

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
