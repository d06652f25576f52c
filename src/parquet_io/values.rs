//! Parquet values as wire JSON, each exactly: decimals of every physical
//! width as JSON numbers with every digit, dates, times and timestamps of
//! every unit and INT96 as ISO 8601 text with all their digits (an
//! instant in UTC with `+00:00`, as the PostgreSQL source writes one),
//! uuids as canonical text, binary as base64, durations as ISO 8601
//! durations in seconds, unsigned 64-bit integers as the numbers they are.
//! A value with no exact wire form (an infinity, NaN, text that is not
//! UTF-8, a JSON column's text that is not JSON the wire can carry) is a
//! [`Bad`] value: its row is a reject, never a changed value.
//!
//! The rows are read with a schema in which strings and INT96 are plain
//! bytes (see `reading_schema`), so that neither a bad string nor the
//! Parquet library's millisecond INT96 stands between the file and the
//! wire; the [`Node`] tree, built from the file's own schema, says what
//! each value was.

use std::fmt::Write as _;
use std::sync::Arc;

use parquet::basic::{ConvertedType, LogicalType, Repetition, TimeUnit, Type as PhysicalType};
use parquet::record::Field;
use parquet::schema::types::Type;

use super::arrow_schema::{ArrowField, Unit};
use super::encode::uuid_text;
use crate::format::json;
use crate::format::logical::encode_bytes;

/// What one Parquet value is, from the file's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A primitive column.
    Leaf(Leaf),
    /// A struct: its fields in order.
    Group(Vec<Node>),
    /// A list (or a repeated field) of these.
    List(Box<Node>),
    /// A map: keys and values.
    Map(Box<Node>, Box<Node>),
}

/// How a primitive value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    /// As the Parquet library reads it (numbers, booleans, dates, decimals,
    /// binary as `\x` hex).
    Plain,
    /// Binary data without a string annotation: base64, the wire's bytes.
    Bytes,
    /// A 16-byte UUID: canonical text.
    Uuid,
    /// UTF-8 text, read as bytes.
    Text,
    /// JSON text, read as bytes, that goes on the wire nested.
    Json,
    /// A legacy INT96 timestamp, read as its 12 bytes.
    Int96,
    /// A timestamp in this unit; `true`: adjusted to UTC.
    Timestamp(Unit, bool),
    /// A time of day in this unit.
    Time(Unit),
    /// An Arrow duration stored as INT64 in this unit.
    Duration(Unit),
    /// An unsigned 64-bit integer in a column declared text (its values
    /// may not fit a signed 64-bit integer): written as a string of its
    /// digits, as a text column's values are.
    UnsignedText,
}

/// A value that has no exact wire form: its row is rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad(pub String);

fn unit_of(unit: &TimeUnit) -> Unit {
    match unit {
        TimeUnit::MILLIS => Unit::Millis,
        TimeUnit::MICROS => Unit::Micros,
        TimeUnit::NANOS => Unit::Nanos,
    }
}

/// The node of a field of the file's schema; `arrow` is the same field in
/// the file's Arrow schema, when it has one.
pub fn node(field: &Type, arrow: Option<&ArrowField>) -> Node {
    let info = field.get_basic_info();
    let repeated = info.has_repetition() && info.repetition() == Repetition::REPEATED;
    if field.is_primitive() {
        let leaf = Node::Leaf(leaf(field, arrow));
        return if repeated {
            Node::List(Box::new(leaf))
        } else {
            leaf
        };
    }
    let children = field.get_fields();
    let child_arrow = |i: usize, f: &Type| {
        arrow
            .and_then(|a| a.children.get(i))
            .filter(|a| a.name == f.name())
    };
    let is_list = info.converted_type() == ConvertedType::LIST
        || matches!(info.logical_type_ref(), Some(LogicalType::List));
    let is_map = matches!(
        info.converted_type(),
        ConvertedType::MAP | ConvertedType::MAP_KEY_VALUE
    ) || matches!(info.logical_type_ref(), Some(LogicalType::Map));
    if is_list && children.len() == 1 {
        // The Arrow list's one child is the item, whatever its name.
        let item = arrow.and_then(|a| a.children.first());
        let repeated_field = &children[0];
        let element = if repeated_field.is_primitive()
            || repeated_field.get_fields().len() != 1
            || repeated_field.name() == "array"
            || repeated_field.name().ends_with("_tuple")
        {
            node(repeated_field, item)
        } else {
            node(&repeated_field.get_fields()[0], item)
        };
        return Node::List(Box::new(element));
    }
    if is_map && children.len() == 1 && !children[0].is_primitive() {
        let entries = children[0].get_fields();
        let arrow_entries = arrow.and_then(|a| a.children.first());
        let part = |i: usize| {
            entries.get(i).map_or(Node::Leaf(Leaf::Plain), |f| {
                node(f, arrow_entries.and_then(|a| a.children.get(i)))
            })
        };
        return Node::Map(Box::new(part(0)), Box::new(part(1)));
    }
    let group = Node::Group(
        children
            .iter()
            .enumerate()
            .map(|(i, f)| node(f, child_arrow(i, f)))
            .collect(),
    );
    if repeated {
        Node::List(Box::new(group))
    } else {
        group
    }
}

fn leaf(field: &Type, arrow: Option<&ArrowField>) -> Leaf {
    let info = field.get_basic_info();
    let physical = field.get_physical_type();
    match (physical, info.converted_type(), info.logical_type_ref()) {
        (PhysicalType::INT96, _, _) => Leaf::Int96,
        (_, _, Some(LogicalType::Timestamp(t))) => {
            Leaf::Timestamp(unit_of(&t.unit), t.is_adjusted_to_u_t_c)
        }
        (_, ConvertedType::TIMESTAMP_MILLIS, _) => Leaf::Timestamp(Unit::Millis, true),
        (_, ConvertedType::TIMESTAMP_MICROS, _) => Leaf::Timestamp(Unit::Micros, true),
        (_, _, Some(LogicalType::Time(t))) => Leaf::Time(unit_of(&t.unit)),
        (_, ConvertedType::TIME_MILLIS, _) => Leaf::Time(Unit::Millis),
        (_, ConvertedType::TIME_MICROS, _) => Leaf::Time(Unit::Micros),
        (_, ConvertedType::JSON, _) | (_, _, Some(LogicalType::Json)) => Leaf::Json,
        (PhysicalType::BYTE_ARRAY, ConvertedType::UTF8 | ConvertedType::ENUM, _)
        | (PhysicalType::BYTE_ARRAY, _, Some(LogicalType::String | LogicalType::Enum)) => {
            Leaf::Text
        }
        (PhysicalType::FIXED_LEN_BYTE_ARRAY, _, Some(LogicalType::Uuid))
            if matches!(
                field,
                Type::PrimitiveType {
                    type_length: 16,
                    ..
                }
            ) =>
        {
            Leaf::Uuid
        }
        (
            PhysicalType::BYTE_ARRAY | PhysicalType::FIXED_LEN_BYTE_ARRAY,
            ConvertedType::NONE,
            None,
        )
        | (PhysicalType::BYTE_ARRAY, ConvertedType::BSON, _)
        | (PhysicalType::BYTE_ARRAY, _, Some(LogicalType::Bson)) => Leaf::Bytes,
        (PhysicalType::INT64, ConvertedType::NONE, None) => match arrow.and_then(|a| a.duration) {
            Some(unit) => Leaf::Duration(unit),
            None => Leaf::Plain,
        },
        _ => Leaf::Plain,
    }
}

/// The schema the rows are read with: `root` with text and JSON columns as
/// plain BYTE_ARRAY and INT96 as 12-byte FIXED_LEN_BYTE_ARRAY (the same
/// bytes on disk: INT96 is stored as 12 plain bytes), so that the Parquet
/// library hands both over unconverted. `None` when nothing changes.
pub fn reading_schema(root: &Type) -> parquet::errors::Result<Option<Type>> {
    fn rebuild(t: &Type, changed: &mut bool) -> parquet::errors::Result<Type> {
        let info = t.get_basic_info();
        if t.is_primitive() {
            let physical = t.get_physical_type();
            let as_bytes = match physical {
                PhysicalType::INT96 => Some(PhysicalType::FIXED_LEN_BYTE_ARRAY),
                PhysicalType::BYTE_ARRAY if matches!(leaf(t, None), Leaf::Text | Leaf::Json) => {
                    Some(PhysicalType::BYTE_ARRAY)
                }
                _ => None,
            };
            let Some(as_bytes) = as_bytes else {
                return Ok(t.clone());
            };
            *changed = true;
            let mut b =
                Type::primitive_type_builder(t.name(), as_bytes).with_repetition(info.repetition());
            if physical == PhysicalType::INT96 {
                b = b.with_length(12);
            }
            if info.has_id() {
                b = b.with_id(Some(info.id()));
            }
            return b.build();
        }
        let fields = t
            .get_fields()
            .iter()
            .map(|f| rebuild(f, changed).map(Arc::new))
            .collect::<parquet::errors::Result<Vec<_>>>()?;
        let mut b = Type::group_type_builder(t.name())
            .with_converted_type(info.converted_type())
            .with_logical_type(info.logical_type_ref().cloned())
            .with_fields(fields);
        if info.has_repetition() {
            b = b.with_repetition(info.repetition());
        }
        if info.has_id() {
            b = b.with_id(Some(info.id()));
        }
        b.build()
    }
    let mut changed = false;
    let rebuilt = rebuild(root, &mut changed)?;
    Ok(changed.then_some(rebuilt))
}

/// Writes `field` as JSON. With `lenient`, a bad value is written as a
/// JSON string that shows it (for the rejects file) instead of failing.
pub fn write(out: &mut Vec<u8>, field: &Field, node: &Node, lenient: bool) -> Result<(), Bad> {
    match (field, node) {
        (Field::Null, _) => out.extend_from_slice(b"null"),
        (Field::ListInternal(list), _) => {
            let element = match node {
                Node::List(element) => element,
                other => other,
            };
            out.push(b'[');
            for (i, value) in list.elements().iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(out, value, element, lenient)?;
            }
            out.push(b']');
        }
        (_, Node::List(element)) => write(out, field, element, lenient)?,
        (Field::Group(row), _) => {
            out.push(b'{');
            for (i, (name, value)) in row.get_column_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&json::key_prefix(name));
                let child = match node {
                    Node::Group(children) => children.get(i).unwrap_or(&PLAIN),
                    _ => &PLAIN,
                };
                write(out, value, child, lenient)?;
            }
            out.push(b'}');
        }
        (Field::MapInternal(map), _) => {
            let (key_node, value_node) = match node {
                Node::Map(k, v) => (&**k, &**v),
                _ => (&PLAIN, &PLAIN),
            };
            out.push(b'{');
            for (i, (key, value)) in map.entries().iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let key = key_text(key, key_node, lenient)?;
                out.extend_from_slice(&json::key_prefix(&key));
                write(out, value, value_node, lenient)?;
            }
            out.push(b'}');
        }
        (_, Node::Leaf(leaf)) => write_leaf(out, field, *leaf, lenient)?,
        _ => write_leaf(out, field, Leaf::Plain, lenient)?,
    }
    Ok(())
}

const PLAIN: Node = Node::Leaf(Leaf::Plain);

/// A map key as object key text: a string as it is, anything else as its
/// JSON text.
fn key_text(key: &Field, node: &Node, lenient: bool) -> Result<String, Bad> {
    let mut text = Vec::new();
    write(&mut text, key, node, lenient)?;
    if text.first() == Some(&b'"')
        && let Ok(s) = serde_json::from_slice::<String>(&text)
    {
        return Ok(s);
    }
    Ok(String::from_utf8_lossy(&text).into_owned())
}

fn number(out: &mut Vec<u8>, n: impl std::fmt::Display) {
    let _ = write!(Writer(out), "{n}");
}

/// `fmt::Write` into a byte buffer.
struct Writer<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn write_float(out: &mut Vec<u8>, text: String, lenient: bool) -> Result<(), Bad> {
    if text.contains(['N', 'i']) {
        if lenient {
            json::write_str(out, &text);
            return Ok(());
        }
        return Err(Bad(format!("non-finite number {text} has no JSON form")));
    }
    out.extend_from_slice(text.as_bytes());
    if !text.contains(['.', 'e', 'E']) {
        out.extend_from_slice(b".0");
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(2 + bytes.len() * 2);
    hex.push_str("\\x");
    for byte in bytes {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

fn utf8(bytes: &[u8]) -> Result<&str, Bad> {
    std::str::from_utf8(bytes).map_err(|e| {
        Bad(format!(
            "text that is not valid UTF-8 (at byte {})",
            e.valid_up_to() + 1
        ))
    })
}

fn write_leaf(out: &mut Vec<u8>, field: &Field, leaf: Leaf, lenient: bool) -> Result<(), Bad> {
    match (field, leaf) {
        (Field::Bytes(b), Leaf::Text) => match utf8(b.data()) {
            Ok(s) => json::write_str(out, s),
            Err(_) if lenient => json::write_str(out, &hex(b.data())),
            Err(bad) => return Err(bad),
        },
        (Field::Bytes(b), Leaf::Json) => match json_value(b.data()) {
            Ok(compact) => out.extend_from_slice(compact.as_bytes()),
            Err(_) if lenient => match std::str::from_utf8(b.data()) {
                Ok(s) => json::write_str(out, s),
                Err(_) => json::write_str(out, &hex(b.data())),
            },
            Err(bad) => return Err(bad),
        },
        (Field::Str(s), Leaf::Json) => match json_value(s.as_bytes()) {
            Ok(compact) => out.extend_from_slice(compact.as_bytes()),
            Err(_) if lenient => json::write_str(out, s),
            Err(bad) => return Err(bad),
        },
        (Field::Bytes(b), Leaf::Bytes) => json::write_str(out, &encode_bytes(b.data())),
        (Field::Bytes(b), Leaf::Uuid) => match uuid_text(b.data()) {
            Some(text) => json::write_str(out, &text),
            None => json::write_str(out, &hex(b.data())),
        },
        (Field::Bytes(b), Leaf::Int96) => match int96_nanos(b.data()) {
            Some(nanos) => json::write_str(out, &timestamp_text(nanos, Unit::Nanos, false)),
            None => json::write_str(out, &hex(b.data())),
        },
        (Field::Long(n), Leaf::Timestamp(unit, utc)) => {
            let text = checked(timestamp_text(i128::from(*n), unit, utc), lenient)?;
            json::write_str(out, &text);
        }
        (Field::TimestampMillis(n), leaf) => {
            let utc = matches!(leaf, Leaf::Timestamp(_, true));
            let text = checked(timestamp_text(i128::from(*n), Unit::Millis, utc), lenient)?;
            json::write_str(out, &text);
        }
        (Field::TimestampMicros(n), leaf) => {
            let utc = matches!(leaf, Leaf::Timestamp(_, true));
            let text = checked(timestamp_text(i128::from(*n), Unit::Micros, utc), lenient)?;
            json::write_str(out, &text);
        }
        (Field::Long(n), Leaf::Time(unit)) => {
            json::write_str(out, &checked_time(*n, unit, lenient)?);
        }
        (Field::Int(n), Leaf::Time(unit)) => {
            json::write_str(out, &checked_time(i64::from(*n), unit, lenient)?);
        }
        (Field::Long(n), Leaf::Duration(unit)) => json::write_str(out, &duration_text(*n, unit)),
        (Field::ULong(n), Leaf::UnsignedText) => json::write_str(out, &n.to_string()),
        (Field::Null, _) => out.extend_from_slice(b"null"),
        (Field::Bool(b), _) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        (Field::Byte(n), _) => number(out, n),
        (Field::Short(n), _) => number(out, n),
        (Field::Int(n), _) => number(out, n),
        (Field::Long(n), _) => number(out, n),
        (Field::UByte(n), _) => number(out, n),
        (Field::UShort(n), _) => number(out, n),
        (Field::UInt(n), _) => number(out, n),
        (Field::ULong(n), _) => number(out, n),
        (Field::Float16(f), _) => write_float(out, f.to_string(), lenient)?,
        (Field::Float(f), _) => write_float(out, f.to_string(), lenient)?,
        (Field::Double(f), _) => write_float(out, f.to_string(), lenient)?,
        (Field::Decimal(_), _) => {
            let text = field.to_string();
            out.extend_from_slice(text.trim_end_matches('.').as_bytes());
        }
        (Field::Str(s), _) => json::write_str(out, s),
        (Field::Bytes(b), _) => json::write_str(out, &hex(b.data())),
        (Field::Date(days), _) => {
            let text = checked(date_text(i64::from(*days)), lenient)?;
            json::write_str(out, &text);
        }
        (Field::TimeMillis(ms), _) => {
            json::write_str(out, &checked_time(i64::from(*ms), Unit::Millis, lenient)?);
        }
        (Field::TimeMicros(us), _) => {
            json::write_str(out, &checked_time(*us, Unit::Micros, lenient)?);
        }
        (Field::Group(_) | Field::ListInternal(_) | Field::MapInternal(_), _) => {
            write(out, field, &PLAIN, lenient)?;
        }
    }
    Ok(())
}

/// A date or timestamp, when its year is one the wire's dates have (1 to
/// 9999); else a [`Bad`] value (shown as it is when `lenient`).
fn checked(text: String, lenient: bool) -> Result<String, Bad> {
    let year_ok = text.len() >= 10
        && text.as_bytes()[4] == b'-'
        && !text.starts_with('-')
        && !text.starts_with("0000");
    if year_ok || lenient {
        Ok(text)
    } else {
        Err(Bad(format!(
            "{text} is outside the years 0001 to 9999 that the wire's dates hold"
        )))
    }
}

/// A time of day, when it is one (below 24 hours); else a [`Bad`] value.
fn checked_time(count: i64, unit: Unit, lenient: bool) -> Result<String, Bad> {
    let text = time_text(count, unit);
    let in_day = count >= 0 && i128::from(count) < per_second(unit) * 86_400;
    if in_day || lenient {
        Ok(text)
    } else {
        Err(Bad(format!("time {text} is not a time of day")))
    }
}

/// A JSON column's text, checked and written compact: one record stays
/// one line, numbers and strings keep the characters they were written
/// with, and any depth of nesting comes through (neither the check nor the
/// copy recurses).
fn json_value(bytes: &[u8]) -> Result<String, Bad> {
    let text = utf8(bytes)?;
    json::check_json(text.as_bytes()).map_err(|e| Bad(e.to_string()))?;
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        } else if c == '"' {
            in_string = true;
        }
        out.push(c);
    }
    Ok(out)
}

/// An INT96 value (nanoseconds of the day, then the Julian day, little
/// endian) as nanoseconds since 1970-01-01T00:00:00.
fn int96_nanos(bytes: &[u8]) -> Option<i128> {
    let nanos = i64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let julian = i32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?);
    const UNIX_EPOCH_JULIAN_DAY: i128 = 2_440_588;
    Some((i128::from(julian) - UNIX_EPOCH_JULIAN_DAY) * NANOS_PER_DAY + i128::from(nanos))
}

const NANOS_PER_DAY: i128 = 86_400_000_000_000;

fn per_second(unit: Unit) -> i128 {
    10i128.pow(unit.digits())
}

/// An ISO 8601 date.
pub fn date_text(days: i64) -> String {
    let (y, m, d) = crate::calendar::civil(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `.123` for the fraction `123` of a second in `digits` digits, without
/// trailing zeros; empty for no fraction.
fn fraction(frac: i128, digits: u32) -> String {
    if frac == 0 || digits == 0 {
        return String::new();
    }
    let text = format!("{frac:0width$}", width = digits as usize);
    format!(".{}", text.trim_end_matches('0'))
}

/// An ISO 8601 time of day from a count of `unit` since midnight.
pub fn time_text(count: i64, unit: Unit) -> String {
    let per = per_second(unit);
    let count = i128::from(count);
    let secs = count.div_euclid(per);
    let frac = count.rem_euclid(per);
    format!(
        "{:02}:{:02}:{:02}{}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        fraction(frac, unit.digits())
    )
}

/// An ISO 8601 timestamp from a count of `unit` since 1970-01-01T00:00:00,
/// with `+00:00` when the file says the instant is in UTC.
pub fn timestamp_text(count: i128, unit: Unit, utc: bool) -> String {
    let per_day = per_second(unit) * 86_400;
    let days = count.div_euclid(per_day);
    let rest = count.rem_euclid(per_day);
    // `rest` is below a day and `days` comes from an i64 count (or an i32
    // Julian day), so both fit an i64.
    let days = i64::try_from(days).unwrap_or(i64::MAX / 1_000_000);
    let rest = i64::try_from(rest).unwrap_or(0);
    format!(
        "{}T{}{}",
        date_text(days),
        time_text(rest, unit),
        if utc { "+00:00" } else { "" }
    )
}

/// An ISO 8601 duration in seconds with every digit of `unit`
/// (`PT1.5S`, `PT-0.000000001S`, `PT0S`): the form PostgreSQL's interval
/// and `java.time.Duration` read.
pub fn duration_text(count: i64, unit: Unit) -> String {
    let per = per_second(unit);
    let count = i128::from(count);
    let sign = if count < 0 { "-" } else { "" };
    let abs = count.abs();
    format!(
        "PT{sign}{}{}S",
        abs / per,
        fraction(abs % per, unit.digits())
    )
}

#[cfg(test)]
#[path = "values_tests.rs"]
mod tests;
