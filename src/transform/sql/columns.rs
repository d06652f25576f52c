//! Records into typed columns as they arrive: each field is typed straight
//! from the borrowed wire fields (no JSON tree per record), and only the
//! fields the query names become columns.
//!
//! Column types: a column of 64-bit integers stays integer, numbers become
//! floats, true/false booleans, strings text. Nested values, and numbers no
//! typed column holds exactly (integers beyond 64 bits, floats beyond a
//! float's range), are JSON: a binary column of their compact JSON text,
//! which a query passes through (and compares, groups, joins) as it is and
//! the result writes back as the same JSON value (`CAST(col AS VARCHAR)`
//! gives its text). A column that mixes kinds widens: integers to floats,
//! anything else to text (JSON values as their JSON text, digit for digit).
//!
//! A column the begin line's schema types (after the steps) is built as
//! that type: decimal as polars' Decimal (exact: `SUM` of 12.50 and 0.10 is
//! 12.60), date as Date, time as Time, timestamp as Datetime(us), an
//! instant as Datetime(us, UTC), bytes as Binary (decoded from base64).
//! A uuid is text to polars, and uuid again when it comes out unchanged.
//! A typed column holding a value that is not in its type's wire form
//! stays text (decimals: a decimal wide enough for the values, or text).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use anyhow::{Result, anyhow};
use polars::prelude::*;
use serde_json::{Map, Value};

use super::decimal::{all, decimal_column};
use crate::format::flat::{Fields, Raw};
use crate::format::logical::decode_bytes;
use crate::format::temporal::{date_days, instant_micros, time_micros, timestamp_micros};
use crate::record::{FieldType, Schema};
use crate::transform::flat::raw_of;

/// Which fields become columns.
#[derive(Debug, Clone, Default)]
pub enum Wanted {
    /// Every field (the query reads `*`, or cannot be read for names).
    #[default]
    All,
    /// Fields whose lower-cased name is in the set.
    Only(HashSet<String>),
}

impl Wanted {
    fn keeps(&self, name: &str) -> bool {
        match self {
            Wanted::All => true,
            Wanted::Only(names) => names.contains(&name.to_lowercase()),
        }
    }
}

/// One value, typed.
enum Cell<'r> {
    /// An integer, with its text as written.
    Int(i64, &'r str),
    /// A finite float, with its text as written.
    Float(f64, &'r str),
    Bool(bool),
    Text(Cow<'r, str>),
    /// A value kept as its compact JSON text.
    Json(Cow<'r, str>),
}

impl<'r> Cell<'r> {
    fn of(raw: &'r Raw<'_>) -> Option<Cell<'r>> {
        Some(match raw {
            Raw::Null => return None,
            Raw::Bool(b) => Cell::Bool(*b),
            Raw::Number(n) if !n.contains(['.', 'e', 'E']) => match n.parse::<i64>() {
                Ok(i) => Cell::Int(i, n),
                // Beyond 64 bits: the number, digit for digit.
                Err(_) => Cell::Json(Cow::Borrowed(n)),
            },
            Raw::Number(n) => match n.parse::<f64>() {
                Ok(f) if f.is_finite() => Cell::Float(f, n),
                // Beyond the range of a float (1e400): the number, not null.
                _ => Cell::Json(Cow::Borrowed(n)),
            },
            Raw::Str(s) => Cell::Text(Cow::Borrowed(s)),
            Raw::Nested(j) => Cell::Json(compact(j)),
        })
    }

    fn kind(&self) -> Kind {
        match self {
            Cell::Int(..) => Kind::Int,
            Cell::Float(..) => Kind::Float,
            Cell::Bool(_) => Kind::Bool,
            Cell::Text(_) => Kind::Text,
            Cell::Json(_) => Kind::Json,
        }
    }

    fn text(&self) -> &str {
        match self {
            Cell::Int(_, s) | Cell::Float(_, s) => s,
            Cell::Bool(true) => "true",
            Cell::Bool(false) => "false",
            Cell::Text(s) | Cell::Json(s) => s,
        }
    }
}

/// Nested JSON as compact text: as written, without the space between
/// tokens (strings, numbers and keys byte for byte).
fn compact(json: &str) -> Cow<'_, str> {
    if !json.contains([' ', '\t', '\n', '\r']) {
        return Cow::Borrowed(json);
    }
    let mut out = Vec::with_capacity(json.len());
    crate::format::json::write_compact(&mut out, json.as_bytes());
    // Only ASCII whitespace between tokens went: still UTF-8.
    String::from_utf8(out).map_or(Cow::Borrowed(json), Cow::Owned)
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Int,
    Float,
    Bool,
    Text,
    Json,
}

/// One column being built.
enum Cells {
    /// Only nulls so far: the first value decides the type.
    Nulls(usize),
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Text(StringChunkedBuilder),
    /// JSON text, a binary column once finished.
    Json(StringChunkedBuilder),
    /// Values of a column the schema types as a decimal, date, time,
    /// timestamp, instant or bytes, as written: typed once finished.
    Logical(FieldType, StringChunkedBuilder),
}

impl Cells {
    /// A column of `n` nulls of `kind`.
    fn nulls(n: usize, kind: Kind) -> Cells {
        match kind {
            Kind::Int => Cells::Int(vec![None; n]),
            Kind::Float => Cells::Float(vec![None; n]),
            Kind::Bool => Cells::Bool(vec![None; n]),
            Kind::Text | Kind::Json => {
                let mut b = StringChunkedBuilder::new(PlSmallStr::EMPTY, n);
                (0..n).for_each(|_| b.append_null());
                if kind == Kind::Json {
                    Cells::Json(b)
                } else {
                    Cells::Text(b)
                }
            }
        }
    }

    fn widen_to_float(&mut self) {
        if let Cells::Int(v) = self {
            *self = Cells::Float(v.iter().map(|x| x.map(|i| i as f64)).collect());
        }
    }

    fn widen_to_text(&mut self) {
        fn texts<T: ToString>(v: &[Option<T>]) -> Cells {
            let mut b = StringChunkedBuilder::new(PlSmallStr::EMPTY, v.len());
            for x in v {
                b.append_option(x.as_ref().map(T::to_string));
            }
            Cells::Text(b)
        }
        *self = match self {
            Cells::Nulls(n) => Cells::nulls(*n, Kind::Text),
            Cells::Int(v) => texts(v),
            Cells::Float(v) => texts(v),
            Cells::Bool(v) => texts(v),
            // JSON text is the text.
            Cells::Json(_) => match std::mem::replace(self, Cells::Nulls(0)) {
                Cells::Json(b) => Cells::Text(b),
                _ => unreachable!("matched as JSON above"),
            },
            Cells::Text(_) | Cells::Logical(..) => return,
        };
    }

    fn push_null(&mut self) {
        match self {
            Cells::Nulls(n) => *n += 1,
            Cells::Int(v) => v.push(None),
            Cells::Float(v) => v.push(None),
            Cells::Bool(v) => v.push(None),
            Cells::Text(b) | Cells::Json(b) | Cells::Logical(_, b) => b.append_null(),
        }
    }

    /// A column the schema types, with `n` nulls.
    fn logical(t: FieldType, n: usize) -> Cells {
        let mut b = StringChunkedBuilder::new(PlSmallStr::EMPTY, n);
        (0..n).for_each(|_| b.append_null());
        Cells::Logical(t, b)
    }

    fn push(&mut self, cell: &Cell<'_>) {
        loop {
            match (&mut *self, cell) {
                (Cells::Nulls(n), c) => *self = Cells::nulls(*n, c.kind()),
                (Cells::Int(v), Cell::Int(i, _)) => return v.push(Some(*i)),
                (Cells::Int(_), Cell::Float(..)) => self.widen_to_float(),
                (Cells::Float(v), Cell::Float(f, _)) => return v.push(Some(*f)),
                (Cells::Float(v), Cell::Int(i, _)) => return v.push(Some(*i as f64)),
                (Cells::Bool(v), Cell::Bool(b)) => return v.push(Some(*b)),
                (Cells::Text(b), c) | (Cells::Logical(_, b), c) => {
                    return b.append_value(c.text());
                }
                (Cells::Json(b), Cell::Json(j)) => return b.append_value(j),
                _ => self.widen_to_text(),
            }
        }
    }

    fn finish(self, name: &str) -> Column {
        let name = PlSmallStr::from_str(name);
        match self {
            Cells::Nulls(n) => Column::full_null(name, n, &DataType::Int64),
            Cells::Int(v) => Column::new(name, v),
            Cells::Float(v) => Column::new(name, v),
            Cells::Bool(v) => Column::new(name, v),
            Cells::Text(b) => b.finish().with_name(name).into_column(),
            Cells::Json(b) => b.finish().as_binary().with_name(name).into_column(),
            Cells::Logical(t, b) => {
                let texts = b.finish();
                typed_column(t, &texts, name.clone())
                    .unwrap_or_else(|| texts.with_name(name).into_column())
            }
        }
    }

    /// What the column holds, for the result's schema.
    fn origin(&self) -> Option<FieldType> {
        match self {
            Cells::Json(_) => Some(FieldType::Json),
            Cells::Logical(t, _) => Some(*t),
            _ => None,
        }
    }
}

/// A typed column's values as that type; `None` when one is not in its
/// wire form.
fn typed_column(t: FieldType, texts: &StringChunked, name: PlSmallStr) -> Option<Column> {
    let micros = |read: fn(&str) -> Option<i64>| all(texts, read);
    let series = match t {
        FieldType::Date => {
            let days = all(texts, |s| i32::try_from(date_days(s)?).ok())?;
            Series::new(name, days).into_date()
        }
        FieldType::Time => {
            let nanos = all(texts, |s| time_micros(s).map(|m| m * 1000))?;
            Series::new(name, nanos).into_time()
        }
        FieldType::Timestamp => {
            Series::new(name, micros(timestamp_micros)?).into_datetime(TimeUnit::Microseconds, None)
        }
        FieldType::TimestampTz => Series::new(name, micros(instant_micros)?)
            .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)),
        FieldType::Bytes => Series::new(name, all(texts, |s| decode_bytes(s).ok())?),
        FieldType::Decimal(declared) => return decimal_column(declared, texts, name),
        _ => return None,
    };
    Some(series.into_column())
}

/// Records turned into typed columns as they arrive (so a million records
/// cost the columns the query reads, not a million JSON trees).
#[derive(Default)]
pub struct Builder {
    wanted: Wanted,
    /// The logical types the stream's schema gives its fields.
    declared: HashMap<String, FieldType>,
    names: Vec<String>,
    columns: Vec<Cells>,
    /// Every field name seen, and its column (`None`: not wanted).
    index: HashMap<String, Option<usize>>,
    /// The last record's field names in order, and their columns: records
    /// of one stream mostly share a layout, so a field costs one compare.
    layout: Vec<(String, Option<usize>)>,
    /// Per record: each field's column.
    slots: Vec<Option<usize>>,
    /// Per column: the last row (counted from 1) that gave it a value.
    filled: Vec<usize>,
    rows: usize,
}

impl Builder {
    /// A builder that keeps only the `wanted` fields.
    pub fn new(wanted: Wanted) -> Builder {
        Builder {
            wanted,
            ..Builder::default()
        }
    }

    /// True before any record.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// A builder for the next segment, keeping the same fields.
    pub fn take(&mut self) -> Builder {
        let next = Builder {
            declared: self.declared.clone(),
            ..Builder::new(self.wanted.clone())
        };
        std::mem::replace(self, next)
    }

    /// The types of the stream's fields (its begin line's schema, after
    /// the steps), before its first record.
    pub fn declare(&mut self, schema: &Schema) {
        self.declared = schema
            .iter()
            .filter(|(_, t)| !t.is_basic())
            .map(|(n, t)| (n.clone(), *t))
            .collect();
    }

    fn column_of(&mut self, name: &str) -> Option<usize> {
        if let Some(&slot) = self.index.get(name) {
            return slot;
        }
        let slot = self.wanted.keeps(name).then(|| {
            self.names.push(name.to_string());
            self.columns.push(match self.declared.get(name) {
                // A uuid is text to polars.
                Some(FieldType::Uuid) | None => Cells::Nulls(self.rows),
                Some(t) => Cells::logical(*t, self.rows),
            });
            self.filled.push(0);
            self.columns.len() - 1
        });
        self.index.insert(name.to_string(), slot);
        slot
    }

    /// Adds one record; fields not seen before become columns (null for
    /// the earlier rows). A field given twice keeps its last value.
    pub fn push(&mut self, fields: &Fields<'_>) {
        let mut slots = std::mem::take(&mut self.slots);
        slots.clear();
        for (j, (name, _)) in fields.iter().enumerate() {
            let slot = match self.layout.get(j) {
                Some((known, slot)) if known == name => *slot,
                _ => {
                    let slot = self.column_of(name);
                    let entry = (name.to_string(), slot);
                    match self.layout.get_mut(j) {
                        Some(e) => *e = entry,
                        None => self.layout.push(entry),
                    }
                    slot
                }
            };
            slots.push(slot);
        }
        let row = self.rows + 1;
        for (slot, (_, raw)) in slots.iter().zip(fields).rev() {
            let Some(c) = *slot else { continue };
            if self.filled[c] == row {
                continue;
            }
            self.filled[c] = row;
            match Cell::of(raw) {
                Some(cell) => self.columns[c].push(&cell),
                None => self.columns[c].push_null(),
            }
        }
        for (c, column) in self.columns.iter_mut().enumerate() {
            if self.filled[c] != row {
                column.push_null();
            }
        }
        self.slots = slots;
        self.rows = row;
    }

    /// Adds one record held as a JSON map (a `--with` lookup file's rows).
    pub fn push_map(&mut self, record: &Map<String, Value>) {
        let fields: Fields<'_> = record
            .iter()
            .map(|(name, value)| (Cow::Borrowed(name.as_str()), raw_of(value.clone())))
            .collect();
        self.push(&fields);
    }

    /// The finished table, and what its columns hold where polars' type
    /// does not say it (JSON, bytes or uuid), by column name.
    pub fn finish(self) -> Result<(DataFrame, Origins)> {
        let mut origins = Origins::new();
        let mut columns = Vec::with_capacity(self.columns.len());
        for (name, cells) in self.names.iter().zip(self.columns) {
            let origin = match self.declared.get(name) {
                Some(FieldType::Uuid) => Some(FieldType::Uuid),
                _ => cells.origin(),
            };
            let column = cells.finish(name);
            // Bytes are bytes, and JSON is JSON, when their column is binary.
            let binary = column.dtype() == &DataType::Binary;
            match origin {
                Some(t @ (FieldType::Json | FieldType::Bytes)) if binary => {
                    origins.insert(name.clone(), t);
                }
                Some(FieldType::Uuid) => {
                    origins.insert(name.clone(), FieldType::Uuid);
                }
                _ => {}
            }
            columns.push(column);
        }
        let frame = DataFrame::new(self.rows, columns)
            .map_err(|e| anyhow!("cannot build the table: {e}"))?;
        Ok((frame, origins))
    }
}

/// What the input columns hold where polars' type does not say it: a
/// binary column of JSON text or of bytes, a text column of uuids.
pub type Origins = HashMap<String, FieldType>;

/// Builds a DataFrame from records (columns in first-seen order).
pub fn frame(records: &[Map<String, Value>]) -> Result<DataFrame> {
    let mut builder = Builder::default();
    for r in records {
        builder.push_map(r);
    }
    Ok(builder.finish()?.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::flat::parse_object;

    fn build(wanted: Wanted, lines: &[&str]) -> DataFrame {
        let mut b = Builder::new(wanted);
        for line in lines {
            b.push(&parse_object(line.as_bytes()).unwrap());
        }
        b.finish().unwrap().0
    }

    #[test]
    fn columns_are_typed_and_widened() {
        let df = build(
            Wanted::All,
            &[
                r#"{"i":1,"f":1,"t":1,"b":true,"n":null,"big":12345678901234567890123}"#,
                r#"{"i":2,"f":2.5,"t":"x","b":false,"n":null,"j":{"a": [1, 2]}}"#,
                r#"{"i":null,"f":3,"t":2.50,"late":"z","b":true,"i":7}"#,
            ],
        );
        let dtype = |n: &str| df.column(n).unwrap().dtype().clone();
        assert_eq!(dtype("i"), DataType::Int64);
        assert_eq!(dtype("f"), DataType::Float64);
        assert_eq!(dtype("t"), DataType::String);
        assert_eq!(dtype("b"), DataType::Boolean);
        assert_eq!(dtype("n"), DataType::Int64);
        assert_eq!(dtype("big"), DataType::Binary);
        assert_eq!(dtype("j"), DataType::Binary);
        let get = |n: &str, i: usize| df.column(n).unwrap().get(i).unwrap().to_string();
        // The later of a field given twice wins.
        assert_eq!(get("i", 2), "7");
        assert_eq!(get("f", 0), "1.0");
        assert_eq!(get("t", 0), "\"1\"");
        assert_eq!(get("t", 2), "\"2.50\"");
        let json = |n: &str, i: usize| match df.column(n).unwrap().get(i).unwrap() {
            AnyValue::Binary(b) => String::from_utf8(b.to_vec()).unwrap(),
            AnyValue::BinaryOwned(b) => String::from_utf8(b).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(json("big", 0), "12345678901234567890123");
        assert_eq!(json("j", 1), r#"{"a":[1,2]}"#);
        assert_eq!(get("late", 0), "null");
        assert_eq!(df.height(), 3);
    }

    #[test]
    fn json_mixed_with_other_kinds_is_its_text() {
        let df = build(
            Wanted::All,
            &[
                r#"{"a":[1],"b":1,"c":{"k":1e400},"d":"x"}"#,
                r#"{"a":"s","b":[2],"c":null,"d":99999999999999999999}"#,
            ],
        );
        let dtype = |n: &str| df.column(n).unwrap().dtype().clone();
        assert_eq!(dtype("a"), DataType::String);
        assert_eq!(dtype("b"), DataType::String);
        assert_eq!(dtype("c"), DataType::Binary);
        assert_eq!(dtype("d"), DataType::String);
        let get = |n: &str, i: usize| df.column(n).unwrap().get(i).unwrap().to_string();
        assert_eq!(get("a", 0), "\"[1]\"");
        assert_eq!(get("b", 0), "\"1\"");
        assert_eq!(get("b", 1), "\"[2]\"");
        assert_eq!(get("d", 1), "\"99999999999999999999\"");
    }

    #[test]
    fn declared_types_become_polars_types() {
        let mut b = Builder::new(Wanted::All);
        b.declare(&vec![
            ("d".into(), FieldType::Date),
            ("a".into(), FieldType::Decimal(Some((12, 2)))),
            ("w".into(), FieldType::Decimal(Some((4, 1)))),
            ("bad".into(), FieldType::Date),
            ("u".into(), FieldType::Uuid),
            ("b".into(), FieldType::Bytes),
        ]);
        for line in [
            r#"{"d":"2024-02-29","a":12.50,"w":1.5,"bad":"soon","u":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","b":"3q2+7w=="}"#,
            r#"{"d":null,"a":"0.1","w":123.25,"bad":"2024-01-01"}"#,
        ] {
            b.push(&parse_object(line.as_bytes()).unwrap());
        }
        let (df, origins) = b.finish().unwrap();
        let dtype = |n: &str| df.column(n).unwrap().dtype().clone();
        assert_eq!(dtype("d"), DataType::Date);
        assert_eq!(dtype("a"), DataType::Decimal(12, 2));
        // A value wider than declared: as wide as the values need.
        assert_eq!(dtype("w"), DataType::Decimal(38, 2));
        assert_eq!(dtype("bad"), DataType::String);
        assert_eq!(dtype("u"), DataType::String);
        assert_eq!(dtype("b"), DataType::Binary);
        assert_eq!(origins.get("u"), Some(&FieldType::Uuid));
        assert_eq!(origins.get("b"), Some(&FieldType::Bytes));
    }

    #[test]
    fn only_wanted_fields_become_columns() {
        let wanted = Wanted::Only(["a".to_string(), "c d".to_string()].into());
        let df = build(
            wanted,
            &[
                r#"{"a":1,"b":2,"C D":3}"#,
                r#"{"b":2}"#,
                r#"{"C D":4,"a":5}"#,
            ],
        );
        let names: Vec<_> = df
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, ["a", "C D"]);
        assert_eq!(df.height(), 3);
        assert_eq!(df.column("a").unwrap().null_count(), 1);
    }
}
