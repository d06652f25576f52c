//! Parquet files as a source, read row group by row group (memory follows
//! the largest row group, not the file). Types map to the wire faithfully:
//! integers stay integers (an unsigned 64-bit column is declared text, its
//! values strings of digits, unless the file's statistics show every value
//! fits a signed 64-bit integer), a DECIMAL(p,s) of every physical width
//! is declared `decimal(p,s)` and keeps every digit, DATE is `date`, TIME
//! and TIMESTAMP in milliseconds or microseconds are `time`, `timestamp`
//! or (adjusted to UTC) `timestamptz` written with `+00:00`; nanosecond
//! ones and INT96 are declared text, all nine digits kept (the wire's
//! times stop at microseconds). UUID is `uuid`, binary without a string
//! annotation `bytes` (base64), an Arrow duration an ISO 8601 duration
//! in seconds (`PT1.5S`) in a text column, nested groups, lists and maps
//! JSON. A value with no exact wire form (an
//! infinity, NaN, text that is not UTF-8, JSON too deep for the wire) makes
//! its row a reject. `values.rs` writes the values.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use parquet::basic::{ConvertedType, LogicalType, Type as PhysicalType};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::serialized_reader::ReadOptionsBuilder;
use parquet::file::statistics::Statistics;
use parquet::record::Row;
use parquet::schema::types::{SchemaDescriptor, Type};

use super::arrow_schema::{self, Unit};
use super::ranged::{Chunks, RangeRead, Ranged};
use super::values::{self, Bad, Leaf, Node};
use crate::format::json;
use crate::record::{FieldType, Schema};
use crate::rejects::Payload;
use crate::source::{Context, Emit, Source, deliver};

/// A Parquet file.
pub struct ParquetSource {
    name: String,
    reader: SerializedFileReader<Chunks>,
    schema: Schema,
    /// How each top-level column's values are written, in file order.
    nodes: Vec<Node>,
    /// Fields added to every record after the file's columns (a dataset's
    /// partition values, which live in its paths): name and JSON text.
    constant: Vec<(String, String)>,
}

impl ParquetSource {
    /// Opens `path` and reads its footer.
    pub fn open(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let file = File::open(path).with_context(|| format!("cannot open {name}"))?;
        Self::from_file(file, name)
    }

    /// Reads the footer of an open file; `name` is used in messages.
    pub fn from_file(file: File, name: String) -> Result<Self> {
        Self::from_chunks(Chunks::File(Arc::new(file)), name)
    }

    /// Reads the footer of a file stored elsewhere, by ranges: the footer
    /// first, then each row group in one read as it is reached.
    pub fn from_ranges(source: Box<dyn RangeRead>, name: String) -> Result<Self> {
        Self::from_chunks(Chunks::Ranged(Arc::new(Ranged::new(source))), name)
    }

    fn from_chunks(file: Chunks, name: String) -> Result<Self> {
        let unreadable = || format!("{name}: not a readable Parquet file");
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .with_context(unreadable)?;
        if let Chunks::Ranged(ranged) = &file {
            ranged.set_row_groups(
                metadata
                    .row_groups()
                    .iter()
                    .filter_map(|group| {
                        let ranges = group.columns().iter().map(|c| c.byte_range());
                        let start = ranges.clone().map(|(s, _)| s).min()?;
                        let end = ranges.map(|(s, l)| s + l).max()?;
                        Some((start, end))
                    })
                    .collect(),
            );
        }
        let root = metadata
            .file_metadata()
            .schema_descr()
            .root_schema()
            .clone();
        let arrow = metadata
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|kv| kv.key == "ARROW:schema"))
            .and_then(|kv| kv.value.as_deref())
            .and_then(arrow_schema::fields);
        let mut schema = Vec::new();
        let mut nodes = Vec::new();
        for (i, field) in root.get_fields().iter().enumerate() {
            let hint = arrow
                .as_ref()
                .and_then(|a| a.get(i))
                .filter(|a| a.name == field.name());
            let mut node = values::node(field, hint);
            let wire = wire_type(field, &node, &metadata, i);
            if wire == FieldType::Text
                && field.is_primitive()
                && field.get_basic_info().converted_type() == ConvertedType::UINT_64
            {
                node = Node::Leaf(Leaf::UnsignedText);
            }
            schema.push((field.name().to_string(), wire));
            nodes.push(node);
        }
        // Strings and INT96 are read as bytes: see `values.rs`.
        let options = match values::reading_schema(&root).with_context(unreadable)? {
            Some(reading) => ReadOptionsBuilder::new()
                .with_parquet_schema(Arc::new(SchemaDescriptor::new(Arc::new(reading)))),
            None => ReadOptionsBuilder::new(),
        };
        let reader = SerializedFileReader::new_with_options(file, options.build())
            .with_context(unreadable)?;
        Ok(ParquetSource {
            name,
            reader,
            schema,
            nodes,
            constant: Vec::new(),
        })
    }

    /// Adds these fields (name, JSON text) to every record, after the
    /// file's own columns.
    pub fn with_constant_fields(mut self, fields: Vec<(String, String)>) -> Self {
        self.constant = fields;
        self
    }

    /// Writes one row's record; the first bad value fails it, naming its
    /// column, unless `lenient` (then it is written as a string showing it).
    fn write_row(&self, out: &mut Vec<u8>, row: &Row, lenient: bool) -> Result<(), Bad> {
        out.clear();
        out.push(b'{');
        for (i, (name, value)) in row.get_column_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&json::key_prefix(name));
            let node = self.nodes.get(i).unwrap_or(&Node::Leaf(Leaf::Plain));
            values::write(out, value, node, lenient)
                .map_err(|Bad(reason)| Bad(format!("column {name:?}: {reason}")))?;
        }
        for (i, (name, json)) in self.constant.iter().enumerate() {
            if i > 0 || row.len() > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&json::key_prefix(name));
            out.extend_from_slice(json.as_bytes());
        }
        out.push(b'}');
        Ok(())
    }
}

fn wire_type(field: &Type, node: &Node, metadata: &ParquetMetaData, column: usize) -> FieldType {
    if !field.is_primitive() {
        return FieldType::Json;
    }
    let info = field.get_basic_info();
    let leaf = match node {
        Node::Leaf(leaf) => *leaf,
        _ => return FieldType::Json,
    };
    match leaf {
        Leaf::Json => return FieldType::Json,
        Leaf::Bytes => return FieldType::Bytes,
        Leaf::Uuid => return FieldType::Uuid,
        // The wire's times keep microseconds: nanoseconds (and INT96,
        // nanoseconds too) stay text with all nine digits.
        Leaf::Timestamp(Unit::Nanos, _) | Leaf::Time(Unit::Nanos) | Leaf::Int96 => {
            return FieldType::Text;
        }
        Leaf::Timestamp(_, true) => return FieldType::TimestampTz,
        Leaf::Timestamp(_, false) => return FieldType::Timestamp,
        Leaf::Time(_) => return FieldType::Time,
        Leaf::Plain => {}
        Leaf::Text | Leaf::Duration(_) | Leaf::UnsignedText => return FieldType::Text,
    }
    match (
        field.get_physical_type(),
        info.converted_type(),
        info.logical_type_ref(),
    ) {
        (_, ConvertedType::LIST | ConvertedType::MAP | ConvertedType::JSON, _)
        | (_, _, Some(LogicalType::Json)) => FieldType::Json,
        (_, ConvertedType::DECIMAL, _) | (_, _, Some(LogicalType::Decimal(_))) => {
            let (p, s) = (field.get_precision(), field.get_scale());
            match (u16::try_from(p), u16::try_from(s)) {
                (Ok(p), Ok(s)) if p > 0 && s <= p => FieldType::Decimal(Some((p, s))),
                _ => FieldType::Decimal(None),
            }
        }
        (_, _, Some(LogicalType::Date)) | (_, ConvertedType::DATE, _) => FieldType::Date,
        (PhysicalType::INT64, ConvertedType::UINT_64, _) => {
            if fits_signed(metadata, column) {
                FieldType::Integer
            } else {
                FieldType::Text
            }
        }
        (_, _, Some(LogicalType::Float16)) => FieldType::Float,
        (PhysicalType::BOOLEAN, _, _) => FieldType::Boolean,
        (PhysicalType::INT32 | PhysicalType::INT64, _, _) => FieldType::Integer,
        (PhysicalType::FLOAT | PhysicalType::DOUBLE, _, _) => FieldType::Float,
        _ => FieldType::Text,
    }
}

/// Do the statistics of every row group show that top-level column
/// `column`, an unsigned 64-bit integer, holds only values a signed 64-bit
/// integer holds? Both bounds are checked, so statistics written in either
/// sort order answer truly; a row group without them answers no.
fn fits_signed(metadata: &ParquetMetaData, column: usize) -> bool {
    let Some(index) = leaf_index(metadata, column) else {
        return false;
    };
    metadata.row_groups().iter().all(|group| {
        match group.columns().get(index).and_then(|c| c.statistics()) {
            Some(Statistics::Int64(s)) => match (s.min_opt(), s.max_opt()) {
                (Some(min), Some(max)) => *min >= 0 && *max >= 0,
                _ => group.num_rows() == 0 || s.null_count_opt() == Some(group.num_rows() as u64),
            },
            _ => group.num_rows() == 0,
        }
    })
}

/// The leaf column index of top-level field `column` (a primitive).
fn leaf_index(metadata: &ParquetMetaData, column: usize) -> Option<usize> {
    let descr = metadata.file_metadata().schema_descr();
    (0..descr.num_columns()).find(|&i| descr.get_column_root_idx(i) == column)
}

impl Source for ParquetSource {
    fn schema(&self) -> Schema {
        self.schema.clone()
    }

    fn run(&mut self, emit: &mut Emit<'_>, cx: &mut Context<'_>) -> Result<()> {
        let rows = self
            .reader
            .get_row_iter(None)
            .with_context(|| format!("{}: cannot read rows", self.name))?;
        let mut out = Vec::with_capacity(1024);
        for (n, row) in rows.enumerate() {
            let row = row.with_context(|| format!("{}: row {}", self.name, n + 1))?;
            cx.read += 1;
            let line = n as u64 + 1;
            if let Err(Bad(reason)) = self.write_row(&mut out, &row, false) {
                // The row as far as it can be shown: bad values as strings.
                let _ = self.write_row(&mut out, &row, true);
                let record =
                    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&out);
                let payload = match &record {
                    Ok(record) => Payload::Record(record),
                    Err(_) => Payload::Raw(&out),
                };
                cx.rejects.reject(&self.name, line, &reason, payload)?;
                continue;
            }
            deliver(emit, &out, cx, &self.name, line)?;
        }
        Ok(())
    }
}
