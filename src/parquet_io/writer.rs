//! One Parquet file being written, with typed columns: the part both the
//! single-file Parquet target (`files/parquet_sink.rs`) and the partitioned
//! dataset (`lake/`) use.
//!
//! Columns are typed like a table's: integers become INT64, floats DOUBLE,
//! booleans BOOLEAN, text UTF-8 strings, JSON strings annotated JSON. The
//! logical types of the begin line's schema get Parquet's own: a decimal
//! DECIMAL(p,s) (INT32 up to 9 digits, INT64 up to 18, else a 16-byte-or-
//! fewer FIXED_LEN_BYTE_ARRAY; see [`parquet_columns`] for bare decimals and
//! ones over 38 digits), a date DATE, a time TIME(MICROS), a timestamp
//! TIMESTAMP(MICROS) not adjusted to UTC, an instant TIMESTAMP(MICROS)
//! adjusted to UTC (its offset taken off), a uuid a 16-byte UUID, bytes a
//! plain BYTE_ARRAY (the base64 decoded). A value that does not fit its
//! column is a reject ([`ParquetFile::misfit`]), checked before any cell
//! of the record is buffered. Rows are buffered column by column and written
//! as a row group every `row_group_size` rows, so memory stays flat.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use parquet::basic::{
    Compression, DecimalType, LogicalType, Repetition, TimeType, TimeUnit, TimestampType,
    Type as PhysicalType, ZstdLevel,
};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::{ByteArray, FixedLenByteArray};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use super::encode;
use crate::format::flat::{Fields, Raw};
use crate::format::logical;
use crate::format::typing::{column_types_native, exact_float};
use crate::record::{FieldType, Schema};

/// Rows per row group unless told otherwise.
pub const DEFAULT_ROW_GROUP: usize = 65_536;

enum Cells {
    Int32(Vec<i32>),
    Int(Vec<i64>),
    Fixed(Vec<FixedLenByteArray>),
    Float(Vec<f64>),
    Bool(Vec<bool>),
    Text(Vec<ByteArray>),
}

struct Column {
    name: String,
    kind: FieldType,
    cells: Cells,
    defined: Vec<i16>,
}

/// A Parquet file being written (its footer comes with [`ParquetFile::finish`]).
pub struct ParquetFile {
    writer: SerializedFileWriter<File>,
    columns: Vec<Column>,
    /// Rows buffered for the next row group.
    buffered: usize,
    /// About how many bytes the buffered rows hold (for memory budgets).
    buffered_bytes: usize,
    row_group_size: usize,
    rows: u64,
}

fn parquet_type(name: &str, kind: FieldType) -> Result<Type> {
    let micros = TimeUnit::MICROS;
    let (physical, logical) = match kind {
        FieldType::Integer => (PhysicalType::INT64, None),
        FieldType::Float => (PhysicalType::DOUBLE, None),
        FieldType::Boolean => (PhysicalType::BOOLEAN, None),
        FieldType::Text => (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
        FieldType::Json => (PhysicalType::BYTE_ARRAY, Some(LogicalType::Json)),
        FieldType::Decimal(Some((p, s))) if p <= MAX_DECIMAL => {
            let physical = match p {
                ..=9 => PhysicalType::INT32,
                10..=18 => PhysicalType::INT64,
                _ => PhysicalType::FIXED_LEN_BYTE_ARRAY,
            };
            let logical = LogicalType::Decimal(DecimalType {
                scale: i32::from(s),
                precision: i32::from(p),
            });
            return Ok(Type::primitive_type_builder(name, physical)
                .with_repetition(Repetition::OPTIONAL)
                .with_logical_type(Some(logical))
                .with_precision(i32::from(p))
                .with_scale(i32::from(s))
                .with_length(encode::decimal_len(p) as i32)
                .build()?);
        }
        FieldType::Date => (PhysicalType::INT32, Some(LogicalType::Date)),
        FieldType::Time => (
            PhysicalType::INT64,
            Some(LogicalType::Time(TimeType {
                is_adjusted_to_u_t_c: false,
                unit: micros,
            })),
        ),
        FieldType::Timestamp | FieldType::TimestampTz => (
            PhysicalType::INT64,
            Some(LogicalType::Timestamp(TimestampType {
                is_adjusted_to_u_t_c: kind == FieldType::TimestampTz,
                unit: micros,
            })),
        ),
        FieldType::Uuid => {
            return Ok(
                Type::primitive_type_builder(name, PhysicalType::FIXED_LEN_BYTE_ARRAY)
                    .with_repetition(Repetition::OPTIONAL)
                    .with_logical_type(Some(LogicalType::Uuid))
                    .with_length(16)
                    .build()?,
            );
        }
        FieldType::Bytes => (PhysicalType::BYTE_ARRAY, None),
        t => return parquet_type(name, t.stored()),
    };
    Ok(Type::primitive_type_builder(name, physical)
        .with_repetition(Repetition::OPTIONAL)
        .with_logical_type(logical)
        .build()?)
}

/// The most digits a Parquet DECIMAL column gets: Spark, Trino and DuckDB
/// read no more (Parquet allows more, which only Arrow's Decimal256
/// reads), so a wider decimal is written as text, every digit kept.
pub const MAX_DECIMAL: u16 = 38;

/// The columns of a new Parquet file: the begin line's declared types as
/// they are (see [`column_types_native`]), fields outside it typed by the
/// sample's values. Two declared types are settled here: a decimal of
/// more than 38 digits becomes text (see [`MAX_DECIMAL`]), and a decimal
/// without precision and scale (`decimal`, a PostgreSQL `numeric`)
/// becomes DECIMAL(38,S) with S the most digits after the point among
/// the sample's values (text when its values need more than 38 digits).
pub fn parquet_columns(schema: &Schema, sample: &[&Fields<'_>]) -> Vec<(String, FieldType)> {
    let mut columns = column_types_native(schema, sample);
    for (name, kind) in &mut columns {
        *kind = match *kind {
            FieldType::Decimal(Some((p, _))) if p > MAX_DECIMAL => FieldType::Text,
            FieldType::Decimal(None) => bare_decimal(name, sample),
            other => other,
        };
    }
    columns
}

/// DECIMAL(38,S) for a decimal column declared without precision and
/// scale, S from the sample's values; text when they need over 38 digits.
fn bare_decimal(name: &str, sample: &[&Fields<'_>]) -> FieldType {
    let (mut int_digits, mut scale) = (0u16, 0u16);
    for fields in sample {
        let Some((_, value)) = fields.iter().find(|(n, _)| n == name) else {
            continue;
        };
        let (Raw::Number(n) | Raw::Str(n)) = value else {
            continue;
        };
        let Some((i, s)) = decimal_digits(n) else {
            continue;
        };
        int_digits = int_digits.max(i);
        scale = scale.max(s);
    }
    if u32::from(int_digits) + u32::from(scale) > u32::from(MAX_DECIMAL) {
        FieldType::Text
    } else {
        FieldType::Decimal(Some((MAX_DECIMAL, scale)))
    }
}

/// Digits before and after the point a decimal number's text needs
/// (without an exponent; `None` for other text).
fn decimal_digits(n: &str) -> Option<(u16, u16)> {
    if logical::check_decimal(n, None).is_err() || n.contains(['e', 'E']) {
        return None;
    }
    let unsigned = n.strip_prefix('-').unwrap_or(n);
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let int = int.trim_start_matches('0');
    Some((
        u16::try_from(int.len()).ok()?,
        u16::try_from(frac.len()).ok()?,
    ))
}

/// Why `value` cannot go into a column of type `kind`, if it cannot.
pub fn misfit(name: &str, kind: FieldType, value: &Raw<'_>) -> Option<String> {
    let why = match (kind, value) {
        (_, Raw::Null) | (FieldType::Text | FieldType::Json, _) => return None,
        (FieldType::Integer, Raw::Number(n))
            if !n.contains(['.', 'e', 'E']) && n.parse::<i64>().is_ok() =>
        {
            return None;
        }
        (FieldType::Float, Raw::Number(n)) if exact_float(n).is_some() => return None,
        (FieldType::Boolean, Raw::Bool(_)) => return None,
        (FieldType::Decimal(declared), Raw::Number(n) | Raw::Str(n)) => {
            match logical::check_decimal(n, declared) {
                Ok(()) if declared.is_some() => return None,
                Ok(()) => "has no precision and scale".to_string(),
                Err(e) => e,
            }
        }
        (FieldType::Date, Raw::Str(s)) => logical::check_date(s).err()?,
        (FieldType::Time, Raw::Str(s)) => logical::check_time(s).err()?,
        (FieldType::Timestamp, Raw::Str(s)) => logical::check_timestamp(s).err()?,
        (FieldType::TimestampTz, Raw::Str(s)) => logical::check_timestamptz(s).err()?,
        (FieldType::Uuid, Raw::Str(s)) => logical::check_uuid(s).err()?,
        (FieldType::Bytes, Raw::Str(s)) => logical::decode_bytes(s).err()?,
        _ => String::new(),
    };
    let column = match kind {
        FieldType::Decimal(None) => "decimal".to_string(),
        other => other.name(),
    };
    let head = format!(
        "column {name:?}: {} does not fit a {column} column",
        value.describe()
    );
    Some(if why.is_empty() {
        head
    } else {
        format!("{head}: it {why}")
    })
}

/// Appends a value that fits (see [`misfit`]) to a column; returns about
/// how many bytes it takes in the buffer.
fn push(column: &mut Column, value: &Raw<'_>) -> usize {
    if value.is_null() {
        column.defined.push(0);
        return 2;
    }
    column.defined.push(1);
    let text = |v: &mut Vec<ByteArray>, bytes: &[u8]| {
        v.push(ByteArray::from(bytes.to_vec()));
        bytes.len() + 24
    };
    let kind = column.kind;
    match (&mut column.cells, value) {
        (Cells::Int32(v), Raw::Str(s)) if kind == FieldType::Date => {
            v.push(encode::date_days(s).unwrap_or_default());
            6
        }
        (Cells::Int32(v), Raw::Number(n) | Raw::Str(n)) => {
            let scale = decimal_scale(kind);
            v.push(encode::decimal_unscaled(n, scale).map_or(0, |d| d as i32));
            6
        }
        (Cells::Int(v), Raw::Str(s)) if kind == FieldType::Time => {
            v.push(encode::time_micros(s).unwrap_or_default());
            10
        }
        (Cells::Int(v), Raw::Str(s))
            if matches!(kind, FieldType::Timestamp | FieldType::TimestampTz) =>
        {
            let tz = kind == FieldType::TimestampTz;
            v.push(encode::timestamp_micros(s, tz).unwrap_or_default());
            10
        }
        (Cells::Int(v), Raw::Number(n) | Raw::Str(n)) if matches!(kind, FieldType::Decimal(_)) => {
            let scale = decimal_scale(kind);
            v.push(encode::decimal_unscaled(n, scale).map_or(0, |d| d as i64));
            10
        }
        (Cells::Int(v), Raw::Number(n)) => {
            v.push(n.parse().unwrap_or_default());
            10
        }
        (Cells::Fixed(v), Raw::Str(s)) if kind == FieldType::Uuid => {
            let bytes = encode::uuid_bytes(s).unwrap_or_default();
            v.push(FixedLenByteArray::from(bytes.to_vec()));
            40
        }
        (Cells::Fixed(v), Raw::Number(n) | Raw::Str(n)) => {
            let len = match kind {
                FieldType::Decimal(Some((p, _))) => encode::decimal_len(p),
                _ => 16,
            };
            let unscaled = encode::decimal_unscaled(n, decimal_scale(kind)).unwrap_or_default();
            v.push(FixedLenByteArray::from(encode::decimal_bytes(
                unscaled, len,
            )));
            40
        }
        (Cells::Text(v), Raw::Str(s)) if kind == FieldType::Bytes => {
            let bytes = logical::decode_bytes(s).unwrap_or_default();
            let len = bytes.len();
            v.push(ByteArray::from(bytes));
            len + 24
        }
        (Cells::Float(v), Raw::Number(n)) => {
            v.push(exact_float(n).unwrap_or_default());
            10
        }
        (Cells::Bool(v), Raw::Bool(b)) => {
            v.push(*b);
            3
        }
        (Cells::Text(v), Raw::Str(s)) if kind == FieldType::Text => text(v, s.as_bytes()),
        (Cells::Text(v), Raw::Number(s) | Raw::Nested(s)) => text(v, s.as_bytes()),
        (Cells::Text(v), Raw::Bool(b)) if kind == FieldType::Text => {
            text(v, if *b { b"true" } else { b"false" })
        }
        (Cells::Text(v), other) => text(v, other.to_json().as_bytes()),
        // misfit() rules the rest out; keep the levels consistent anyway.
        _ => {
            column.defined.pop();
            column.defined.push(0);
            2
        }
    }
}

/// The scale of a decimal column (0 for others).
fn decimal_scale(kind: FieldType) -> u16 {
    match kind {
        FieldType::Decimal(Some((_, s))) => s,
        _ => 0,
    }
}

/// The buffer a column of this type fills.
fn cells(kind: FieldType) -> Cells {
    match kind {
        FieldType::Integer | FieldType::Time | FieldType::Timestamp | FieldType::TimestampTz => {
            Cells::Int(Vec::new())
        }
        FieldType::Decimal(Some((p, _))) if p <= 9 => Cells::Int32(Vec::new()),
        FieldType::Decimal(Some((p, _))) if p <= 18 => Cells::Int(Vec::new()),
        FieldType::Decimal(Some((p, _))) if p <= MAX_DECIMAL => Cells::Fixed(Vec::new()),
        FieldType::Date => Cells::Int32(Vec::new()),
        FieldType::Uuid => Cells::Fixed(Vec::new()),
        FieldType::Float => Cells::Float(Vec::new()),
        FieldType::Boolean => Cells::Bool(Vec::new()),
        _ => Cells::Text(Vec::new()),
    }
}

impl ParquetFile {
    /// Creates `path` (truncating it) as a Parquet file with these columns.
    pub fn create(
        path: &Path,
        columns: &[(String, FieldType)],
        row_group_size: usize,
    ) -> Result<Self> {
        let mut fields = Vec::new();
        let mut cols = Vec::new();
        for (name, kind) in columns {
            fields.push(Arc::new(parquet_type(name, *kind)?));
            cols.push(Column {
                cells: cells(*kind),
                name: name.clone(),
                kind: *kind,
                defined: Vec::new(),
            });
        }
        let schema = Arc::new(
            Type::group_type_builder("schema")
                .with_fields(fields)
                .build()?,
        );
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .build(),
        );
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(ParquetFile {
            writer: SerializedFileWriter::new(file, schema, props)?,
            columns: cols,
            buffered: 0,
            buffered_bytes: 0,
            row_group_size: row_group_size.max(1),
            rows: 0,
        })
    }

    /// Is there a column of this name?
    pub fn has_column(&self, name: &str) -> bool {
        self.columns.iter().any(|c| c.name == name)
    }

    /// Why this record cannot be written (a value that does not fit its
    /// column), if it cannot. Fields without a column are not looked at.
    pub fn misfit(&self, fields: &Fields<'_>) -> Option<String> {
        self.columns
            .iter()
            .find_map(|c| misfit(&c.name, c.kind, value_of(fields, &c.name)))
    }

    /// Buffers a record that fits (see [`ParquetFile::misfit`]); a full row
    /// group is written out.
    pub fn push(&mut self, fields: &Fields<'_>) -> Result<()> {
        // Records mostly carry the columns in their order: look for each
        // one just past the last one found first.
        let mut at = 0;
        for column in &mut self.columns {
            let found = (at..fields.len())
                .chain(0..at.min(fields.len()))
                .find(|&i| fields[i].0 == column.name);
            let value = match found {
                Some(i) => {
                    at = i + 1;
                    &fields[i].1
                }
                None => &Raw::Null,
            };
            self.buffered_bytes += push(column, value);
        }
        self.buffered += 1;
        self.rows += 1;
        if self.buffered >= self.row_group_size {
            self.flush_group()?;
        }
        Ok(())
    }

    /// Rows written so far (buffered ones included).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// About how many bytes the rows not yet written take in memory.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// Compressed bytes of the row groups written so far.
    pub fn written_bytes(&self) -> u64 {
        self.writer
            .flushed_row_groups()
            .iter()
            .map(|g| g.compressed_size().max(0) as u64)
            .sum()
    }

    /// Writes the buffered rows as a row group (nothing when none are).
    pub fn flush_group(&mut self) -> Result<()> {
        if self.buffered == 0 {
            return Ok(());
        }
        let mut group = self.writer.next_row_group()?;
        for column in &mut self.columns {
            let Some(mut out) = group.next_column()? else {
                bail!("parquet writer has fewer columns than the schema");
            };
            let defs = Some(column.defined.as_slice());
            match (out.untyped(), &column.cells) {
                (ColumnWriter::Int32ColumnWriter(w), Cells::Int32(v)) => {
                    w.write_batch(v, defs, None)?;
                }
                (ColumnWriter::Int64ColumnWriter(w), Cells::Int(v)) => {
                    w.write_batch(v, defs, None)?;
                }
                (ColumnWriter::FixedLenByteArrayColumnWriter(w), Cells::Fixed(v)) => {
                    w.write_batch(v, defs, None)?;
                }
                (ColumnWriter::DoubleColumnWriter(w), Cells::Float(v)) => {
                    w.write_batch(v, defs, None)?;
                }
                (ColumnWriter::BoolColumnWriter(w), Cells::Bool(v)) => {
                    w.write_batch(v, defs, None)?;
                }
                (ColumnWriter::ByteArrayColumnWriter(w), Cells::Text(v)) => {
                    w.write_batch(v, defs, None)?;
                }
                _ => bail!("column {:?}: writer and values disagree", column.name),
            }
            out.close()?;
            column.defined.clear();
            match &mut column.cells {
                Cells::Int32(v) => v.clear(),
                Cells::Int(v) => v.clear(),
                Cells::Fixed(v) => v.clear(),
                Cells::Float(v) => v.clear(),
                Cells::Bool(v) => v.clear(),
                Cells::Text(v) => v.clear(),
            }
        }
        group.close()?;
        self.buffered = 0;
        self.buffered_bytes = 0;
        Ok(())
    }

    /// Writes the last row group and the footer; returns the row count.
    /// The file is not synced: the caller renames it into place.
    pub fn finish(mut self) -> Result<u64> {
        self.flush_group()?;
        self.writer
            .close()
            .context("cannot finish the Parquet file")?;
        Ok(self.rows)
    }
}

fn value_of<'f, 'a>(fields: &'f Fields<'a>, name: &str) -> &'f Raw<'a> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map_or(&Raw::Null, |(_, v)| v)
}
