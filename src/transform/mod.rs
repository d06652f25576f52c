//! `etl-transform`: steps applied to each record as it passes, control lines
//! kept truthful (schema follows the steps, end counts what was written,
//! bookmarks kept), and a cut input never completed downstream.

pub mod contract;
pub mod expr;
pub mod flat;
pub mod held;
pub mod sql;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use serde_json::{Map, Number, Value};

use crate::error::Outcome;
use crate::format::flat::{Fields, parse_object_keeping, recycle};
use crate::format::infer;
use crate::format::logical::{
    check_date, check_decimal, check_time, check_timestamp, check_timestamptz, check_uuid,
    decode_bytes,
};
use crate::format::typing::exact_float;
use crate::output;
use crate::progress::{Counts, Progress, Verbosity};
use crate::record::{FieldType, Schema};
use crate::rejects::RejectsOptions;
use crate::source::input::{self, Compression};
use crate::wire::{Begin, End, Item, Reader};
use contract::Contract;
use expr::Expr;

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

/// Casts a value exactly, or says why it cannot be.
fn cast(value: &Value, to: FieldType) -> Result<Value, String> {
    let fail = || format!("{value} cannot be cast to {} exactly", to.name());
    Ok(match (to, value) {
        (_, Value::Null) => Value::Null,
        (FieldType::Text, Value::String(_)) => value.clone(),
        (FieldType::Text, Value::Number(n)) => Value::String(n.to_string()),
        (FieldType::Text, Value::Bool(b)) => Value::String(b.to_string()),
        (FieldType::Text | FieldType::Json, other) => {
            if to == FieldType::Json {
                other.clone()
            } else {
                Value::String(other.to_string())
            }
        }
        (FieldType::Integer, Value::Number(n)) if infer::is_integer(&n.to_string()) => {
            value.clone()
        }
        (FieldType::Integer, Value::Number(n)) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => return Err(fail()),
        },
        (FieldType::Integer, Value::String(s)) if infer::is_integer(s.trim()) => {
            serde_json::from_str(s.trim()).map_err(|_| fail())?
        }
        (FieldType::Float, Value::Number(n)) => {
            exact_float(&n.to_string()).ok_or_else(fail)?;
            value.clone()
        }
        (FieldType::Float, Value::String(s)) => {
            let t = s.trim();
            if !(infer::is_integer(t) || infer::is_exact_decimal(t)) {
                return Err(fail());
            }
            Value::Number(t.parse::<Number>().map_err(|_| fail())?)
        }
        (FieldType::Boolean, Value::Bool(_)) => value.clone(),
        (FieldType::Boolean, Value::String(s)) => {
            Value::Bool(infer::parse_bool(s.trim()).ok_or_else(fail)?)
        }
        // A decimal is a JSON number, digit for digit: a number as written,
        // or text written as one, that fits the declared digits.
        (FieldType::Decimal(declared), Value::Number(n)) => {
            check_decimal(n.as_str(), declared).map_err(|why| format!("{value} {why}"))?;
            value.clone()
        }
        (FieldType::Decimal(declared), Value::String(s)) => {
            let t = s.trim();
            check_decimal(t, declared).map_err(|why| format!("{value} {why}"))?;
            Value::Number(t.parse::<Number>().map_err(|_| fail())?)
        }
        // The other logical types are text in their wire form, checked as
        // the CSV reader checks them, never rewritten.
        (_, Value::String(s)) => {
            check_logical(to, s).map_err(|why| format!("{value} {why}"))?;
            value.clone()
        }
        _ => return Err(fail()),
    })
}

/// Checks text against the wire form of a logical type other than decimal
/// (date, time, timestamp, timestamptz, uuid, bytes).
pub(crate) fn check_logical(to: FieldType, s: &str) -> Result<(), String> {
    match to {
        FieldType::Date => check_date(s),
        FieldType::Time => check_time(s),
        FieldType::Timestamp => check_timestamp(s),
        FieldType::TimestampTz => check_timestamptz(s),
        FieldType::Uuid => check_uuid(s),
        FieldType::Bytes => decode_bytes(s).map(drop),
        other => Err(format!("cannot be cast to {} exactly", other.name())),
    }
}

/// The begin line's schema after the steps. A derived field has the type
/// of what its expression computes where that is known (see
/// [`Expr::result_type`]); else it is left out.
fn follow_schema(steps: &[Step], mut schema: Schema) -> Schema {
    for step in steps {
        follow_step(step, &mut schema);
    }
    schema
}

/// The type a schema gives a field.
fn type_in(schema: &Schema, name: &str) -> Option<FieldType> {
    schema.iter().find(|(n, _)| n == name).map(|(_, t)| *t)
}

/// [`follow_schema`] for one step.
fn follow_step(step: &Step, schema: &mut Schema) {
    match step {
        Step::Select(fields) => {
            *schema = fields
                .iter()
                .filter_map(|f| schema.iter().find(|(n, _)| n == f).cloned())
                .collect();
        }
        Step::Drop(fields) => schema.retain(|(n, _)| !fields.contains(n)),
        Step::Rename(pairs) => {
            for (old, new) in pairs {
                for (n, _) in schema.iter_mut().filter(|(n, _)| n == old) {
                    *n = new.clone();
                }
            }
        }
        Step::Derive(name, e) => {
            match e.result_type(&|n| type_in(schema, n)) {
                Some(t) => match schema.iter_mut().find(|(n, _)| n == name) {
                    Some((_, slot)) => *slot = t,
                    // A new field goes last, in the records too.
                    None => schema.push((name.clone(), t)),
                },
                None => schema.retain(|(n, _)| n != name),
            }
        }
        Step::Cast(pairs) => {
            // Every value of a cast field has the type (or is null): a
            // field the schema did not name joins it.
            for (col, t) in pairs {
                match schema.iter_mut().find(|(n, _)| n == col) {
                    Some((_, ty)) => *ty = *t,
                    None => schema.push((col.clone(), *t)),
                }
            }
        }
        Step::Filter(_) => {}
    }
}

/// The steps for a stream with this schema: filters and derives compare
/// the fields it types as dates and times as such (see
/// [`Expr::with_types`]); the same steps when it types none.
fn typed_steps(steps: &[Step], mut schema: Schema) -> Vec<Step> {
    let mut typed = Vec::with_capacity(steps.len());
    for step in steps {
        let type_of = |n: &str| type_in(&schema, n);
        typed.push(match step {
            Step::Filter(e) => Step::Filter(e.with_types(&type_of)),
            Step::Derive(name, e) => Step::Derive(name.clone(), e.with_types(&type_of)),
            other => other.clone(),
        });
        follow_step(step, &mut schema);
    }
    typed
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
    use serde_json::json;

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

    #[test]
    fn casts_are_exact_or_rejected() {
        assert_eq!(cast(&json!("42"), FieldType::Integer).unwrap(), json!(42));
        assert!(cast(&json!("4.2"), FieldType::Integer).is_err());
        assert_eq!(cast(&json!(5), FieldType::Text).unwrap(), json!("5"));
        assert_eq!(
            cast(&json!("TRUE"), FieldType::Boolean).unwrap(),
            json!(true)
        );
        assert!(cast(&json!("yes"), FieldType::Boolean).is_err());
        assert!(cast(&json!("0.12345678901234567890"), FieldType::Float).is_err());
        assert_eq!(cast(&json!(null), FieldType::Integer).unwrap(), json!(null));
    }

    #[test]
    fn casts_check_logical_types() {
        assert_eq!(
            cast(&json!("12.50"), FieldType::Decimal(Some((12, 2))))
                .unwrap()
                .to_string(),
            "12.50"
        );
        let err = cast(&json!(12.505), FieldType::Decimal(Some((12, 2)))).unwrap_err();
        assert!(err.contains("3 digits after the point"), "{err}");
        assert!(cast(&json!("1,5"), FieldType::Decimal(None)).is_err());
        assert_eq!(
            cast(&json!("2024-02-29"), FieldType::Date).unwrap(),
            json!("2024-02-29")
        );
        let err = cast(&json!("2023-02-29"), FieldType::Date).unwrap_err();
        assert_eq!(err, r#""2023-02-29" has no day 29 in 2023-02"#);
        assert!(cast(&json!(20240229), FieldType::Date).is_err());
        assert!(cast(&json!("2024-01-02T03:04:05"), FieldType::TimestampTz).is_err());
        assert!(cast(&json!("2024-01-02T03:04:05Z"), FieldType::TimestampTz).is_ok());
        assert!(cast(&json!("13:04:05"), FieldType::Time).is_ok());
        assert!(cast(&json!("3q2+7w=="), FieldType::Bytes).is_ok());
        assert!(cast(&json!("\\xdead"), FieldType::Bytes).is_err());
        assert!(cast(&json!("a0eebc999c0b4ef8bb6d6bb9bd380a11"), FieldType::Uuid).is_err());
        assert_eq!(cast(&json!(null), FieldType::Uuid).unwrap(), json!(null));
    }

    #[test]
    fn derived_and_cast_fields_keep_their_types() {
        let steps = vec![
            Step::Derive("copy".into(), expr::parse("ts").unwrap()),
            Step::Derive("half".into(), expr::parse("n / 2").unwrap()),
            Step::Derive("n".into(), expr::parse("n + 1").unwrap()),
            Step::Cast(vec![("late".into(), FieldType::Date)]),
        ];
        let schema = vec![
            ("n".into(), FieldType::Integer),
            ("ts".into(), FieldType::TimestampTz),
        ];
        assert_eq!(
            follow_schema(&steps, schema),
            vec![
                ("n".into(), FieldType::Integer),
                ("ts".into(), FieldType::TimestampTz),
                ("copy".into(), FieldType::TimestampTz),
                ("late".into(), FieldType::Date),
            ]
        );
    }

    #[test]
    fn schema_follows_the_steps() {
        let steps = vec![
            Step::Rename(vec![("a".into(), "x".into())]),
            Step::Cast(vec![("b".into(), FieldType::Text)]),
            Step::Drop(vec!["c".into()]),
        ];
        let schema = vec![
            ("a".into(), FieldType::Integer),
            ("b".into(), FieldType::Integer),
            ("c".into(), FieldType::Float),
        ];
        assert_eq!(
            follow_schema(&steps, schema),
            vec![
                ("x".into(), FieldType::Integer),
                ("b".into(), FieldType::Text)
            ]
        );
    }
}
