//! A Parquet file as a sink. Columns are typed like a table's (from the
//! begin line's schema, else from a sample of records): integers become
//! INT64, floats DOUBLE, booleans BOOLEAN, text and JSON UTF-8 strings.
//! A value that does not fit its column is rejected. Rows are written in
//! row groups of 65,536, so memory stays flat; the file is written beside
//! the target and renamed into place when complete.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use parquet::basic::{Compression, LogicalType, Repetition, Type as PhysicalType, ZstdLevel};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use super::sink::{finish_file, temp_path};
use super::state::JsonState;
use crate::format::flat::{Fields, Raw};
use crate::format::typing::{column_types, exact_float};
use crate::record::{FieldType, Schema};
use crate::sink::Sink;
use crate::state::{self, FileLock, StateChanges, StateStore};

const ROW_GROUP: usize = 65_536;

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

/// A Parquet file being written.
pub struct ParquetSink {
    target: PathBuf,
    tmp: PathBuf,
    writer: Option<SerializedFileWriter<File>>,
    columns: Vec<Column>,
    rows: usize,
    strict: bool,
    state: JsonState,
    /// Held for the run, so that another run writes after this one.
    _target_lock: FileLock,
}

impl ParquetSink {
    /// Prepares to write `target` (replacing it when the run succeeds).
    /// `new_file`: the file must not exist (an append), checked under the
    /// target's lock so that two such runs cannot both write it.
    pub fn open(
        target: &Path,
        strict: bool,
        state_path: Option<&Path>,
        new_file: bool,
    ) -> Result<Self> {
        let target_lock = state::lock_target(target)?;
        if new_file && target.exists() {
            return Err(crate::error::Failure::new(
                crate::error::Kind::Usage,
                format!(
                    "{} exists and a Parquet file cannot be appended to",
                    target.display()
                ),
            )
            .hint("use --mode replace to write it anew")
            .into());
        }
        let state = JsonState::open(state_path)?;
        Ok(ParquetSink {
            target: target.to_path_buf(),
            tmp: temp_path(target),
            writer: None,
            columns: Vec::new(),
            rows: 0,
            strict,
            state,
            _target_lock: target_lock,
        })
    }

    fn flush_group(&mut self) -> Result<()> {
        let Some(writer) = self.writer.as_mut() else {
            bail!("parquet sink used before its columns were set");
        };
        if self.rows == 0 {
            return Ok(());
        }
        let mut group = writer.next_row_group()?;
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
        self.rows = 0;
        Ok(())
    }
}

fn parquet_type(name: &str, kind: FieldType) -> Result<Type> {
    let (physical, logical) = match kind {
        FieldType::Integer => (PhysicalType::INT64, None),
        FieldType::Float => (PhysicalType::DOUBLE, None),
        FieldType::Boolean => (PhysicalType::BOOLEAN, None),
        FieldType::Text => (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
        FieldType::Json => (PhysicalType::BYTE_ARRAY, Some(LogicalType::Json)),
    };
    Ok(Type::primitive_type_builder(name, physical)
        .with_repetition(Repetition::OPTIONAL)
        .with_logical_type(logical)
        .build()?)
}

/// Why `value` cannot go into a column of type `kind`, if it cannot.
fn misfit(name: &str, kind: FieldType, value: &Raw<'_>) -> Option<String> {
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

/// Appends a value that fits (see [`misfit`]) to a column.
fn push(column: &mut Column, value: &Raw<'_>) {
    if value.is_null() {
        column.defined.push(0);
        return;
    }
    column.defined.push(1);
    match (&mut column.cells, value) {
        (Cells::Int(v), Raw::Number(n)) => v.push(n.parse().unwrap_or_default()),
        (Cells::Float(v), Raw::Number(n)) => v.push(exact_float(n).unwrap_or_default()),
        (Cells::Bool(v), Raw::Bool(b)) => v.push(*b),
        (Cells::Text(v), Raw::Str(s)) if column.kind == FieldType::Text => {
            v.push(ByteArray::from(s.as_bytes().to_vec()));
        }
        (Cells::Text(v), Raw::Number(s) | Raw::Nested(s)) => {
            v.push(ByteArray::from(s.as_bytes().to_vec()));
        }
        (Cells::Text(v), Raw::Bool(b)) if column.kind == FieldType::Text => {
            v.push(ByteArray::from(if *b { "true" } else { "false" }));
        }
        (Cells::Text(v), other) => v.push(ByteArray::from(other.to_json().into_bytes())),
        // misfit() rules the rest out; keep the levels consistent anyway.
        _ => {
            column.defined.pop();
            column.defined.push(0);
        }
    }
}

impl Sink for ParquetSink {
    fn state(&mut self) -> &mut dyn StateStore {
        &mut self.state
    }

    fn prepare(&mut self, schema: &Schema, sample: &[&Fields<'_>]) -> Result<()> {
        if self.writer.is_some() {
            return Ok(());
        }
        let wanted = column_types(schema, sample);
        let mut fields = Vec::new();
        for (name, kind) in wanted {
            fields.push(Arc::new(parquet_type(&name, kind)?));
            self.columns.push(Column {
                cells: match kind {
                    FieldType::Integer => Cells::Int(Vec::new()),
                    FieldType::Float => Cells::Float(Vec::new()),
                    FieldType::Boolean => Cells::Bool(Vec::new()),
                    FieldType::Text | FieldType::Json => Cells::Text(Vec::new()),
                },
                name,
                kind,
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
        let file = File::create(&self.tmp)
            .with_context(|| format!("cannot create {}", self.tmp.display()))?;
        self.writer = Some(SerializedFileWriter::new(file, schema, props)?);
        Ok(())
    }

    fn insert(&mut self, fields: &Fields<'_>, _line: &[u8]) -> Result<Result<(), String>> {
        for (name, value) in fields {
            let known = self.columns.iter().any(|c| &c.name == name);
            if !known && (self.strict || !value.is_null()) {
                return Ok(Err(format!(
                    "field {name:?} is not one of the file's columns (fixed by its first records)"
                )));
            }
        }
        let value_of = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map_or(&Raw::Null, |(_, v)| v)
        };
        // Check every value before writing any, so a rejected row leaves no cells.
        for column in &self.columns {
            if let Some(reason) = misfit(&column.name, column.kind, value_of(&column.name)) {
                return Ok(Err(reason));
            }
        }
        for column in &mut self.columns {
            push(column, value_of(&column.name));
        }
        self.rows += 1;
        if self.rows >= ROW_GROUP {
            self.flush_group()?;
        }
        Ok(Ok(()))
    }

    fn commit_point(&mut self, _changes: &StateChanges) -> Result<()> {
        bail!("a file target is written whole; --commit segment needs a database target")
    }

    fn commit(mut self: Box<Self>, changes: &StateChanges) -> Result<Vec<String>> {
        if self.writer.is_none() {
            self.prepare(&Vec::new(), &[])?;
        }
        self.flush_group()?;
        if let Some(writer) = self.writer.take() {
            writer.close().context("cannot finish the Parquet file")?;
        }
        finish_file(&self.tmp, &self.target)?;
        let mut log = vec![format!("wrote {}", self.target.display())];
        log.extend(self.state.write(changes)?);
        Ok(log)
    }

    fn describe(&mut self) -> Result<Vec<String>> {
        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{} {}", c.name, c.kind.name()))
            .collect();
        Ok(vec![format!(
            "{} (Parquet): columns {}",
            self.target.display(),
            columns.join(", ")
        )])
    }

    fn abort(self: Box<Self>) {
        let tmp = self.tmp.clone();
        drop(self);
        let _ = std::fs::remove_file(tmp);
    }
}
