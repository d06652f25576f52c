//! `etl-transform`: steps applied to each record as it passes, control lines
//! kept truthful (schema follows the steps, end counts what was written,
//! bookmarks kept), and a cut input never completed downstream.

pub mod contract;
pub mod expr;
pub mod flat;
pub mod held;
pub mod sql;
mod types;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use serde_json::{Map, Value};

use crate::error::Outcome;
use crate::format::flat::{Fields, parse_object_keeping, recycle};
use crate::output;
use crate::progress::{Counts, Progress, Verbosity};
use crate::record::FieldType;
use crate::rejects::RejectsOptions;
use crate::source::input::{self, Compression};
use crate::wire::{Begin, End, Item, Reader};
use contract::Contract;
use expr::Expr;
pub(crate) use types::{cast, check_logical};
use types::{follow_schema, typed_steps};

const PROGRAM: &str = "etl-transform";

/// One step, in command-line order.
#[derive(Debug, Clone)]
pub enum Step {
    /// Keep these fields, in this order.
    Select(Vec<String>),
    /// Remove these fields.
    Drop(Vec<String>),
    /// Rename fields.
    Rename(Vec<(String, String)>),
    /// Keep records where the expression is true.
    Filter(Expr),
    /// Set a field to an expression.
    Derive(String, Expr),
    /// Cast fields to types.
    Cast(Vec<(String, FieldType)>),
}

/// A checked `etl-transform` run.
#[derive(Debug)]
pub struct TransformPlan {
    /// The input file; `None` reads stdin.
    pub input: Option<PathBuf>,
    /// The row-wise steps, in command-line order.
    pub steps: Vec<Step>,
    /// --dedup keys (empty: no dedup).
    pub dedup: Vec<String>,
    /// --sql query.
    pub sql: Option<String>,
    /// --with lookup tables: name and file.
    pub with: Vec<(String, PathBuf)>,
    /// --validate contract file.
    pub validate: Option<PathBuf>,
    /// Where rejected records go, and how many may be.
    pub rejects: RejectsOptions,
    /// How much to say on stderr.
    pub verbosity: Verbosity,
}

/// Runs `etl-transform` as planned.
pub fn run(plan: TransformPlan) -> Result<Outcome> {
    let args = &plan;
    let steps = &plan.steps;
    // The steps as the current stream's schema types them (before any
    // begin line: as the casts type them).
    let mut typed = typed_steps(steps, Vec::new());
    let mut contract = match &args.validate {
        Some(path) => Some(Contract::load(path)?),
        None => None,
    };
    let mut lookups = Vec::new();
    for (table, path) in &args.with {
        let rows =
            crate::files::inputs::read_all(path).with_context(|| format!("--with {table}"))?;
        lookups.push((table.clone(), rows));
    }
    // Records are held (not written as they come) for --dedup and --sql.
    let hold = !args.dedup.is_empty() || args.sql.is_some();
    let location = input::locate_one(args.input.as_deref())?;
    let progress = Progress::new(PROGRAM, args.verbosity, location.size());
    let input = input::open(&location, Compression::Auto, &progress)?;
    let mut rejects = args.rejects.open()?;
    let mut out = output::stdout();
    let mut counts = Counts::default();
    let mut segment_rows = 0u64;
    // --dedup: one record per key, in the order keys were first seen.
    let mut held = held::Held::default();
    // --sql without --dedup: records go straight into typed columns.
    // Only the fields the query names become columns.
    let wanted = args.sql.as_deref().map(sql::wanted).unwrap_or_default();
    // The fields the fast path builds: what the steps and the query read.
    let needed = flat::Needed::before(
        steps,
        match &wanted {
            sql::Wanted::All => flat::Needed::All,
            sql::Wanted::Only(names) => flat::Needed::Only {
                names: names.iter().cloned().collect(),
                any_case: true,
            },
        },
    );
    let keep = needed.matcher();
    let mut writer = flat::Writer::default();
    let mut table = sql::Builder::new(wanted);
    // Without a begin line, the casts type the query's columns.
    table.declare(&follow_schema(steps, Vec::new()));
    let name = input.name.clone();
    let mut wire = Reader::new(input.reader, &name);
    let mut buffer = Vec::with_capacity(4096);
    // One field list for every line of the fast path.
    let mut spare: Fields<'static> = Vec::with_capacity(16);

    // --sql: the begin line waits for the query's answer, whose columns
    // and types its schema names.
    let mut begin_held: Option<Begin> = None;
    let sql = args.sql.clone();
    let flush_held = |out: &mut Box<dyn Write>,
                      held: &mut held::Held,
                      table: &mut sql::Builder,
                      counts: &mut Counts,
                      segment_rows: &mut u64,
                      begin_held: &mut Option<Begin>|
     -> Result<()> {
        let Some(query) = &sql else {
            return held.drain(|line| {
                out.write_all(line)?;
                out.write_all(b"\n")?;
                counts.written += 1;
                *segment_rows += 1;
                Ok(())
            });
        };
        held.drain(|line| {
            let fields = crate::format::flat::parse_object(line)
                .map_err(|e| anyhow::anyhow!("--dedup's spill file holds a bad record: {e}"))?;
            table.push(&fields);
            Ok(())
        })?;
        let input = table.take();
        if input.is_empty() {
            // No records: no table for a query to run on.
            if let Some(begin) = begin_held.take() {
                writeln!(out, "{}", begin.to_line())?;
            }
            return Ok(());
        }
        // A query's rows are not one per record read: the summary then
        // says how many went in and how many came out.
        let answer = sql::run(query, input, &lookups)?;
        if let Some(begin) = begin_held.take() {
            let begin = Begin {
                schema: answer.schema(),
                ..begin
            };
            writeln!(out, "{}", begin.to_line())?;
        }
        let written = answer.write(out.as_mut())?;
        counts.written += written;
        *segment_rows += written;
        Ok(())
    };

    while let Some((line_no, item)) = wire.next_item()? {
        let text = match item {
            Item::Begin(begin) => {
                segment_rows = 0;
                typed = typed_steps(steps, begin.schema.clone());
                let schema = follow_schema(steps, begin.schema);
                if args.sql.is_some() {
                    // The query decides the columns; its input columns
                    // have the types the steps leave.
                    table.declare(&schema);
                    begin_held = Some(Begin {
                        schema: Vec::new(),
                        ..begin
                    });
                } else {
                    writeln!(out, "{}", Begin { schema, ..begin }.to_line())?;
                }
                continue;
            }
            Item::End(end) => {
                flush_held(
                    &mut out,
                    &mut held,
                    &mut table,
                    &mut counts,
                    &mut segment_rows,
                    &mut begin_held,
                )?;
                // The count is what this stage wrote; the rest (bookmark,
                // positions) passes through.
                let end = End {
                    rows: segment_rows,
                    ..end
                };
                writeln!(out, "{}", end.to_line())?;
                out.flush()?;
                continue;
            }
            Item::Bad { reason, text } => {
                counts.read += 1;
                counts.rejected += 1;
                rejects.reject_line(&name, line_no, &reason, text)?;
                continue;
            }
            Item::Record(text) => text,
        };
        counts.read += 1;
        if counts.read.is_multiple_of(8192) {
            progress.set_rows(counts.read);
        }
        // Row-wise steps, and --sql's columns: the fast path on borrowed
        // fields.
        if args.dedup.is_empty() && contract.is_none() {
            // An empty list of 'static fields is one of this line's.
            let mut fields: Fields<'_> = std::mem::take(&mut spare);
            let result = parse_object_keeping(text, &mut fields, |n| keep.keeps(n))
                .and_then(|()| flat::apply_in_place(&typed, &mut fields));
            match result {
                Ok(false) => counts.skipped += 1,
                Ok(true) if hold => table.push(&fields),
                Ok(true) => {
                    buffer.clear();
                    writer.write(&mut buffer, &fields);
                    buffer.push(b'\n');
                    out.write_all(&buffer)?;
                    counts.written += 1;
                    segment_rows += 1;
                }
                Err(reason) => {
                    counts.rejected += 1;
                    rejects.reject_line(&name, line_no, &reason, text)?;
                }
            }
            spare = recycle(fields);
            continue;
        }
        // The same steps as the fast path; a record becomes a JSON map only
        // here, where it is checked against a contract or held.
        let result = crate::format::flat::parse_object(text)
            .and_then(|fields| flat::apply(&typed, fields))
            .and_then(|fields| match fields {
                None => Ok(None),
                Some(fields) => {
                    buffer.clear();
                    flat::write(&mut buffer, &fields);
                    serde_json::from_slice::<Map<String, Value>>(&buffer)
                        .map(Some)
                        .map_err(|e| e.to_string())
                }
            })
            .and_then(|r| match (r, contract.as_mut()) {
                (Some(r), Some(c)) => c.check(&r).map(|()| Some(r)),
                (r, _) => Ok(r),
            });
        match result {
            Ok(None) => counts.skipped += 1,
            Ok(Some(record)) if args.dedup.is_empty() && hold => table.push_map(&record),
            Ok(Some(record)) if !args.dedup.is_empty() => {
                let key = held::key_hash(&record, &args.dedup);
                buffer.clear();
                serde_json::to_writer(&mut buffer, &record)?;
                if held.push(key, &buffer)? {
                    counts.skipped += 1;
                }
            }
            Ok(Some(record)) => {
                writeln!(out, "{}", Value::Object(record))?;
                counts.written += 1;
                segment_rows += 1;
            }
            Err(reason) => {
                counts.rejected += 1;
                rejects.reject_line(&name, line_no, &reason, text)?;
            }
        }
    }
    let shape = wire.finish();
    if shape.is_ok() {
        // Unframed input: what --dedup held goes out at the end.
        flush_held(
            &mut out,
            &mut held,
            &mut table,
            &mut counts,
            &mut segment_rows,
            &mut begin_held,
        )?;
    }
    out.flush().context("writing to stdout")?;
    rejects.finish()?;
    shape?;
    if args.sql.is_none() && counts.read != counts.written + counts.rejected + counts.skipped {
        bail!("internal accounting error: {counts:?}");
    }
    progress.summary(&counts);
    Ok(if counts.rejected > 0 {
        Outcome::Rejected
    } else {
        Outcome::Ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_apply_in_order() {
        let steps = vec![
            Step::Derive("total".into(), expr::parse("qty * 2").unwrap()),
            Step::Rename(vec![("qty".into(), "n".into())]),
            Step::Filter(expr::parse("n > 1").unwrap()),
            Step::Select(vec!["total".into(), "n".into()]),
        ];
        let line = br#"{"id":1,"qty":3}"#;
        let out = flat::apply(&steps, crate::format::flat::parse_object(line).unwrap())
            .unwrap()
            .unwrap();
        let mut text = Vec::new();
        flat::write(&mut text, &out);
        assert_eq!(String::from_utf8(text).unwrap(), r#"{"total":6,"n":3}"#);
        let line = br#"{"id":1,"qty":1}"#;
        assert!(
            flat::apply(&steps, crate::format::flat::parse_object(line).unwrap())
                .unwrap()
                .is_none()
        );
    }
}
