//! `etl-transform`: reshape records in the pipe, row by row.

use std::path::PathBuf;

use anyhow::Result;
use clap::{ArgMatches, FromArgMatches, Parser};

use super::VerbosityArgs;
use crate::error::usage;
use crate::record::FieldType;
use crate::transform::{Step, TransformPlan, expr};

const AFTER_HELP: &str = "\
Steps run in the order they are given, each on every record, as records
arrive: memory stays flat and output flows on an endless input. Only
--dedup holds back its output (one record per key, until the input or the
segment ends: the records wait in a spill file in $TMPDIR, and memory holds
a 16-byte hash and an offset per key) and --validate's unique rule holds a
16-byte hash of each key it has seen.

  --select a,b        keep these fields, in this order
  --drop a,b          remove these fields
  --rename old=new    rename a field (repeat, or a=x,b=y)
  --filter EXPR       keep records for which EXPR is true
  --derive name=EXPR  set a field to EXPR (a new field goes last)
  --cast col=TYPE     integer, float, boolean, text, json, decimal,
                      decimal(P,S), date, time, timestamp, timestamptz,
                      uuid or bytes (--cast 'amount=decimal(12,2)'); the
                      value is checked as the CSV reader checks it (a date
                      2023-02-29 or a decimal with too many digits is a
                      rejected record, with its line and reason), never
                      converted, and the begin line's schema carries the
                      new type
  --dedup key[,key]   keep the last record for each key
  --validate FILE     a data contract; records that break it are rejected
                      with the rule they broke
  --sql SELECT        last: a query over the stream's records (table input)
                      and --with lookup files, by polars SQL: projections,
                      expressions, CASE, casts, string and date functions,
                      WHERE, GROUP BY, ORDER BY, DISTINCT, joins, window
                      functions where polars has them. Holds the records of
                      a stream (segment) until its end line, then answers:
                      as typed columns, and only the fields the query
                      names (SELECT * holds them all). Example:
                      --sql 'SELECT zip, sum(quantity) AS items FROM input
                      GROUP BY zip' holds two columns of a wide stream.
                      Nested values, and numbers no typed column holds
                      (integers past 64 bits, 1e400), are JSON columns:
                      compared, grouped, joined and written back as the
                      same JSON; CAST(col AS VARCHAR) gives their text.
                      Typed columns keep their type: decimal(p,s) is
                      polars' Decimal (SUM of 12.50 and 0.10 is exactly
                      12.60), date Date, time Time, timestamp Datetime,
                      timestamptz Datetime in UTC (written with +00:00),
                      bytes Binary, uuid text; the begin line's schema
                      names the result's types. polars compares a date or
                      timestamp with text in its form, but an instant only
                      with text without offset, read in UTC
                      (WHERE ts > '2024-01-01 09:00:00').

Expressions: fields by name (qty, $qty, ${order id}), numbers, 'text' or
\"text\", true, false, null, + - * / %, . (join text), == != < <= > >=,
and or not (&& || !), parentheses, and lower upper trim len substr
coalesce is_null int float text round. Integers stay exact 64-bit: an
integer past 64 bits in arithmetic (or a result past them) rejects the
record, never becomes a float. Numbers compare by their exact value, however
long (1e400 > 1, 12345678901234567891 > 12345678901234567890). Fields the
schema types as date, time, timestamp or timestamptz compare by the moment
they name, instants across offsets (2024-01-01T10:00:00+02:00 is before
2024-01-01T09:00:00Z); text not in that form compares as text. A derived
field keeps the type of what it computes where it is known (a copy of a
field, a comparison, text functions, int, len, integer + - * %); other
arithmetic runs in 64-bit floats and is left untyped in the schema.

A contract is a JSON object: {\"required\": [\"id\"], \"not_null\": [\"id\"],
\"types\": {\"id\": \"integer\", \"price\": \"float\"}, \"allowed\": {\"status\":
[\"new\", \"shipped\"]}, \"unique\": [\"id\"]}.

Control lines pass through: a begin line's schema follows the steps, an end
line's row count is the records written, its bookmark is kept. Input cut
short upstream stays cut: no end line is written and the exit is 1.
Rejected records go to --rejects (or fail the run, naming the line).

Examples:
  $ etl-extract sample-data/orders.csv | etl-transform --filter 'quantity > 2' --select order_id,quantity | tail -n 2
  $ etl-extract sample-data/orders.csv | etl-transform --derive 'total=quantity * unit_price' --rename note=comment -q | head -n 2
  $ etl-extract sample-data/customers.csv | etl-transform --cast vip=text --dedup country | etl-load wh.db --table one_per_country
  $ etl-extract sample-data/orders.csv | etl-transform --sql 'SELECT customer_id, SUM(quantity) AS items FROM input GROUP BY customer_id ORDER BY items DESC' | head -n 3
  $ etl-extract sample-data/orders.csv | etl-transform --with c=sample-data/customers.csv --sql 'SELECT o.order_id, c.name FROM input o JOIN c ON o.customer_id = c.customer_id'
";

/// Reshape NDJSON records: select, rename, filter, derive, cast, dedup, validate
#[derive(Debug, Parser)]
#[command(
    name = "etl-transform",
    version,
    after_help = "Examples:\n  $ etl-extract sample-data/orders.csv | etl-transform --filter 'quantity > 2' --select order_id,quantity\n\nMore in --help.",
    after_long_help = format!("{AFTER_HELP}\n{}", super::EXIT_CODES),
)]
pub struct TransformArgs {
    /// NDJSON input file, or - for stdin (the default)
    #[arg(value_name = "INPUT")]
    pub input: Option<PathBuf>,

    /// Keep only these fields, in this order
    #[arg(long, value_name = "FIELDS", value_delimiter = ',', action = clap::ArgAction::Append)]
    pub select: Vec<String>,

    /// Remove these fields
    #[arg(long, value_name = "FIELDS", value_delimiter = ',', action = clap::ArgAction::Append)]
    pub drop: Vec<String>,

    /// Rename fields: old=new
    #[arg(long, value_name = "OLD=NEW", value_delimiter = ',', action = clap::ArgAction::Append)]
    pub rename: Vec<String>,

    /// Keep records for which the expression is true
    #[arg(long, value_name = "EXPR", action = clap::ArgAction::Append)]
    pub filter: Vec<String>,

    /// Set a field: name=EXPR
    #[arg(long, value_name = "NAME=EXPR", action = clap::ArgAction::Append)]
    pub derive: Vec<String>,

    /// Cast a field: col=TYPE (integer, float, decimal(P,S), date,
    /// timestamptz, uuid, bytes...)
    #[arg(long, value_name = "COL=TYPE", value_delimiter = ',', action = clap::ArgAction::Append)]
    pub cast: Vec<String>,

    /// Keep the last record per key (holds one record per key until the end)
    #[arg(long, value_name = "KEYS", value_delimiter = ',')]
    pub dedup: Vec<String>,

    /// Run a SELECT over all records (the table `input`) with polars SQL;
    /// holds the fields it names of the stream's records until it ends
    #[arg(long, value_name = "SELECT")]
    pub sql: Option<String>,

    /// A lookup table for --sql: NAME=FILE (CSV, NDJSON, JSON, Parquet)
    #[arg(long = "with", value_name = "NAME=FILE", requires = "sql")]
    pub with: Vec<String>,

    /// Check records against a data contract (JSON file)
    #[arg(long, value_name = "FILE")]
    pub validate: Option<PathBuf>,

    /// --rejects and --max-rejects
    #[command(flatten)]
    pub rejects: super::RejectsArgs,

    /// -q and -v
    #[command(flatten)]
    pub verbosity: VerbosityArgs,
}

/// The checked plan of a run, from the parsed matches (the order of the
/// step flags on the command line is the order the steps run in).
pub fn plan(matches: &ArgMatches) -> Result<TransformPlan> {
    let args = TransformArgs::from_arg_matches(matches).map_err(|e| usage(e.to_string()))?;
    let with = args
        .with
        .iter()
        .map(|w| split_pair(w, "--with").map(|(name, path)| (name, PathBuf::from(path))))
        .collect::<Result<_>>()?;
    Ok(TransformPlan {
        steps: steps(matches)?,
        input: args.input,
        dedup: args.dedup,
        sql: args.sql,
        with,
        validate: args.validate,
        rejects: args.rejects.options(),
        verbosity: args.verbosity.verbosity(),
    })
}

fn split_pair(text: &str, what: &str) -> Result<(String, String)> {
    let (a, b) = text
        .split_once('=')
        .ok_or_else(|| usage(format!("{what} takes NAME=VALUE, not {text:?}")))?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() || b.is_empty() {
        return Err(usage(format!("{what} takes NAME=VALUE, not {text:?}")));
    }
    Ok((a.to_string(), b.to_string()))
}

/// `--cast` values as given, put together again where the comma list
/// split a `decimal(12,2)`.
fn cast_pairs(values: &[String]) -> Vec<String> {
    let mut pairs: Vec<String> = Vec::new();
    for v in values {
        match pairs.last_mut() {
            Some(open) if open.matches('(').count() > open.matches(')').count() => {
                open.push(',');
                open.push_str(v);
            }
            _ => pairs.push(v.clone()),
        }
    }
    pairs
}

/// The steps in the order their flags appear on the command line.
pub fn steps(matches: &ArgMatches) -> Result<Vec<Step>> {
    let mut found: Vec<(usize, Step)> = Vec::new();
    for id in ["select", "drop", "rename", "filter", "derive", "cast"] {
        let (Some(occurrences), Some(indices)) = (
            matches.get_occurrences::<String>(id),
            matches.indices_of(id),
        ) else {
            continue;
        };
        let mut indices = indices;
        for occurrence in occurrences {
            let values: Vec<String> = occurrence.cloned().collect();
            let mut first = usize::MAX;
            for _ in &values {
                first = first.min(indices.next().unwrap_or(usize::MAX));
            }
            let step = match id {
                "select" => Step::Select(values),
                "drop" => Step::Drop(values),
                "rename" => Step::Rename(
                    values
                        .iter()
                        .map(|v| split_pair(v, "--rename"))
                        .collect::<Result<_>>()?,
                ),
                "filter" => Step::Filter(
                    expr::parse(&values.join(",")).map_err(|e| usage(format!("--filter: {e}")))?,
                ),
                "derive" => {
                    let (name, src) = split_pair(&values.join(","), "--derive")?;
                    Step::Derive(
                        name,
                        expr::parse(&src).map_err(|e| usage(format!("--derive: {e}")))?,
                    )
                }
                _ => Step::Cast(
                    cast_pairs(&values)
                        .iter()
                        .map(|v| {
                            let (col, t) = split_pair(v, "--cast")?;
                            let t = FieldType::from_name(&t.replace(' ', "")).ok_or_else(|| {
                                usage(format!(
                                    "--cast {v}: types are {}",
                                    crate::record::TYPE_NAMES
                                ))
                            })?;
                            Ok((col, t))
                        })
                        .collect::<Result<_>>()?,
                ),
            };
            found.push((first, step));
        }
    }
    found.sort_by_key(|(i, _)| *i);
    Ok(found.into_iter().map(|(_, s)| s).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_valid() {
        TransformArgs::command().debug_assert();
    }
}
