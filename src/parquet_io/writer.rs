//! One Parquet file being written, with typed columns: the part both the
//! single-file Parquet target (`files/parquet_sink.rs`) and the partitioned
//! dataset (`lake/`) use.
//!
//! Columns are typed like a table's: integers become INT64, floats DOUBLE,
//! booleans BOOLEAN, text and JSON UTF-8 strings. A value that does not fit
//! its column is a reject ([`ParquetFile::misfit`]), checked before any cell
//! of the record is buffered. Rows are buffered column by column and written
//! as a row group every `row_group_size` rows, so memory stays flat.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use parquet::basic::{Compression, LogicalType, Repetition, Type as PhysicalType, ZstdLevel};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use crate::format::flat::{Fields, Raw};
use crate::format::typing::exact_float;
use crate::record::FieldType;

/// Rows per row group unless told otherwise.
pub const DEFAULT_ROW_GROUP: usize = 65_536;

enum Cells {
    Int(Vec<i64>),
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
    let (physical, logical) = match kind {
        FieldType::Integer => (PhysicalType::INT64, None),
        FieldType::Float => (PhysicalType::DOUBLE, None),
        FieldType::Boolean => (PhysicalType::BOOLEAN, None),
        FieldType::Text => (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
        FieldType::Json => (PhysicalType::BYTE_ARRAY, Some(LogicalType::Json)),
        t => return parquet_type(name, t.stored()),
    };
    Ok(Type::primitive_type_builder(name, physical)
        .with_repetition(Repetition::OPTIONAL)
        .with_logical_type(logical)
        .build()?)
}

/// Why `value` cannot go into a column of type `kind`, if it cannot.
pub fn misfit(name: &str, kind: FieldType, value: &Raw<'_>) -> Option<String> {
    let fits = match (kind, value) {
        (_, Raw::Null) | (FieldType::Text | FieldType::Json, _) => true,
        (FieldType::Integer, Raw::Number(n)) => {
            !n.contains(['.', 'e', 'E']) && n.parse::<i64>().is_ok()
        }
        (FieldType::Float, Raw::Number(n)) => exact_float(n).is_some(),
        (FieldType::Boolean, Raw::Bool(_)) => true,
        _ => false,
    };
    (!fits).then(|| {
        format!(
            "column {name:?}: {} does not fit a {} column",
            value.describe(),
            kind.name()
        )
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
    match (&mut column.cells, value) {
        (Cells::Int(v), Raw::Number(n)) => {
            v.push(n.parse().unwrap_or_default());
            10
        }
        (Cells::Float(v), Raw::Number(n)) => {
            v.push(exact_float(n).unwrap_or_default());
            10
        }
        (Cells::Bool(v), Raw::Bool(b)) => {
            v.push(*b);
            3
        }
        (Cells::Text(v), Raw::Str(s)) if column.kind == FieldType::Text => text(v, s.as_bytes()),
        (Cells::Text(v), Raw::Number(s) | Raw::Nested(s)) => text(v, s.as_bytes()),
        (Cells::Text(v), Raw::Bool(b)) if column.kind == FieldType::Text => {
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
                cells: match kind {
                    FieldType::Integer => Cells::Int(Vec::new()),
                    FieldType::Float => Cells::Float(Vec::new()),
                    FieldType::Boolean => Cells::Bool(Vec::new()),
                    _ => Cells::Text(Vec::new()),
                },
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
                (ColumnWriter::Int64ColumnWriter(w), Cells::Int(v)) => {
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
                Cells::Int(v) => v.clear(),
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
