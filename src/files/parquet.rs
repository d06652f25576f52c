//! Parquet files as a source, read row group by row group (memory follows
//! the largest row group, not the file). Types map to the wire faithfully:
//! integers stay integers, decimals keep every digit, dates and timestamps
//! become ISO 8601 text (with `Z` only when the file says UTC), binary
//! becomes `\x`-prefixed hex, nested groups, lists and maps become JSON.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::fs::File;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use parquet::basic::{ConvertedType, LogicalType, Type as PhysicalType};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use parquet::schema::types::Type;

use crate::format::json;
use crate::record::{FieldType, Schema};
use crate::source::{Context, Emit, Source, deliver};

/// A Parquet file.
pub struct ParquetSource {
    name: String,
    reader: SerializedFileReader<File>,
    schema: Schema,
    utc: HashMap<String, bool>,
    /// Text columns annotated as JSON: their values go on the wire nested.
    json_text: HashSet<String>,
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
        let reader = SerializedFileReader::new(file)
            .with_context(|| format!("{name}: not a readable Parquet file"))?;
        let root = reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .root_schema()
            .clone();
        let mut schema = Vec::new();
        let mut utc = HashMap::new();
        let mut json_text = HashSet::new();
        for field in root.get_fields() {
            let info = field.get_basic_info();
            if field.is_primitive()
                && (matches!(info.logical_type_ref(), Some(LogicalType::Json))
                    || info.converted_type() == ConvertedType::JSON)
            {
                json_text.insert(field.name().to_string());
            }
            if let Some(LogicalType::Timestamp(t)) = info.logical_type_ref() {
                utc.insert(field.name().to_string(), t.is_adjusted_to_u_t_c);
            }
            schema.push((field.name().to_string(), wire_type(field)));
        }
        Ok(ParquetSource {
            name,
            reader,
            schema,
            utc,
            json_text,
            constant: Vec::new(),
        })
    }

    /// Adds these fields (name, JSON text) to every record, after the
    /// file's own columns.
    pub fn with_constant_fields(mut self, fields: Vec<(String, String)>) -> Self {
        self.constant = fields;
        self
    }
}

fn wire_type(field: &Type) -> FieldType {
    if !field.is_primitive() {
        return FieldType::Json;
    }
    let info = field.get_basic_info();
    match (
        field.get_physical_type(),
        info.converted_type(),
        info.logical_type_ref(),
    ) {
        (_, ConvertedType::LIST | ConvertedType::MAP | ConvertedType::JSON, _)
        | (_, _, Some(LogicalType::Json)) => FieldType::Json,
        (_, ConvertedType::DECIMAL, _) => match field {
            Type::PrimitiveType { precision, .. } if *precision <= 15 => FieldType::Float,
            _ => FieldType::Text,
        },
        (_, _, Some(LogicalType::Date | LogicalType::Time(_) | LogicalType::Timestamp(_))) => {
            FieldType::Text
        }
        (_, ConvertedType::DATE | ConvertedType::TIME_MILLIS | ConvertedType::TIME_MICROS, _)
        | (_, ConvertedType::TIMESTAMP_MILLIS | ConvertedType::TIMESTAMP_MICROS, _) => {
            FieldType::Text
        }
        (PhysicalType::BOOLEAN, _, _) => FieldType::Boolean,
        (PhysicalType::INT32 | PhysicalType::INT64, _, _) => FieldType::Integer,
        (PhysicalType::FLOAT | PhysicalType::DOUBLE, _, _) => FieldType::Float,
        _ => FieldType::Text,
    }
}

/// Days since 1970-01-01 as a civil date (proleptic Gregorian).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn date_text(days: i64) -> String {
    let (y, m, d) = civil(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn time_text(micros_of_day: i64) -> String {
    let secs = micros_of_day.div_euclid(1_000_000);
    let frac = micros_of_day.rem_euclid(1_000_000);
    let mut s = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac != 0 {
        let digits = format!("{frac:06}");
        let _ = write!(s, ".{}", digits.trim_end_matches('0'));
    }
    s
}

fn timestamp_text(micros: i64, utc: bool) -> String {
    let days = micros.div_euclid(86_400_000_000);
    let rest = micros.rem_euclid(86_400_000_000);
    format!(
        "{}T{}{}",
        date_text(days),
        time_text(rest),
        if utc { "Z" } else { "" }
    )
}

fn write_float(out: &mut Vec<u8>, text: String) -> Result<()> {
    if text.contains(['N', 'i']) {
        bail!("non-finite number {text} has no JSON form");
    }
    out.extend_from_slice(text.as_bytes());
    if !text.contains(['.', 'e', 'E']) {
        out.extend_from_slice(b".0");
    }
    Ok(())
}

fn write_field(out: &mut Vec<u8>, field: &Field, utc: bool) -> Result<()> {
    match field {
        Field::Null => out.extend_from_slice(b"null"),
        Field::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Field::Byte(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Field::Short(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Field::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Field::Long(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Field::UByte(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Field::UShort(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Field::UInt(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Field::ULong(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Field::Float16(f) => write_float(out, f.to_string())?,
        Field::Float(f) => write_float(out, f.to_string())?,
        Field::Double(f) => write_float(out, f.to_string())?,
        Field::Decimal(d) => {
            let text = field.to_string();
            let text = text.trim_end_matches('.');
            if d.precision() <= 15 {
                out.extend_from_slice(text.as_bytes());
            } else {
                json::write_str(out, text);
            }
        }
        Field::Str(s) => json::write_str(out, s),
        Field::Bytes(b) => {
            let mut hex = String::with_capacity(2 + b.data().len() * 2);
            hex.push_str("\\x");
            for byte in b.data() {
                let _ = write!(hex, "{byte:02x}");
            }
            json::write_str(out, &hex);
        }
        Field::Date(days) => json::write_str(out, &date_text(i64::from(*days))),
        Field::TimeMillis(ms) => json::write_str(out, &time_text(i64::from(*ms) * 1000)),
        Field::TimeMicros(us) => json::write_str(out, &time_text(*us)),
        Field::TimestampMillis(ms) => json::write_str(out, &timestamp_text(ms * 1000, utc)),
        Field::TimestampMicros(us) => json::write_str(out, &timestamp_text(*us, utc)),
        Field::Group(row) => {
            out.push(b'{');
            for (i, (name, value)) in row.get_column_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&json::key_prefix(name));
                write_field(out, value, utc)?;
            }
            out.push(b'}');
        }
        Field::ListInternal(list) => {
            out.push(b'[');
            for (i, value) in list.elements().iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_field(out, value, utc)?;
            }
            out.push(b']');
        }
        Field::MapInternal(map) => {
            out.push(b'{');
            for (i, (key, value)) in map.entries().iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let key = match key {
                    Field::Str(s) => s.clone(),
                    other => other.to_string(),
                };
                out.extend_from_slice(&json::key_prefix(&key));
                write_field(out, value, utc)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
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
            out.clear();
            out.push(b'{');
            for (i, (name, value)) in row.get_column_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&json::key_prefix(name));
                if let Field::Str(text) = value
                    && self.json_text.contains(name)
                    && let Ok(nested) = serde_json::from_str::<serde_json::Value>(text)
                {
                    // Re-written compact: one record stays one line.
                    out.extend_from_slice(nested.to_string().as_bytes());
                    continue;
                }
                let utc = self.utc.get(name).copied().unwrap_or(false);
                write_field(&mut out, value, utc)
                    .with_context(|| format!("{}: row {}, column {name:?}", self.name, n + 1))?;
            }
            for (i, (name, json)) in self.constant.iter().enumerate() {
                if i > 0 || row.len() > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&json::key_prefix(name));
                out.extend_from_slice(json.as_bytes());
            }
            out.push(b'}');
            deliver(emit, &out, cx, &self.name, n as u64 + 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times() {
        assert_eq!(date_text(0), "1970-01-01");
        assert_eq!(date_text(20_393), "2025-11-01");
        assert_eq!(date_text(-1), "1969-12-31");
        assert_eq!(time_text(3_723_000_500), "01:02:03.0005");
        assert_eq!(
            timestamp_text(1_762_074_000_000_000, true),
            "2025-11-02T09:00:00Z"
        );
        assert_eq!(
            timestamp_text(1_762_074_000_123_000, false),
            "2025-11-02T09:00:00.123"
        );
    }
}
