//! The row type every stage passes along, and the column types the wire
//! can declare for it.

use serde_json::Value;

/// One record: a JSON object whose field order is the source's column order.
pub type Record = serde_json::Map<String, Value>;

/// Names starting with this (in any case) belong to etlkit's own tables and
/// columns (`_etl_state`, `_etl_batches`, `_etl_seq`) in a target database.
pub const RESERVED_PREFIX: &str = "_etl_";

/// True for a table or column name etlkit keeps for itself.
pub fn is_reserved_name(name: &str) -> bool {
    name.len() >= RESERVED_PREFIX.len()
        && name.as_bytes()[..RESERVED_PREFIX.len()].eq_ignore_ascii_case(RESERVED_PREFIX.as_bytes())
}

/// The type a producer declares for a field in its `begin` line, and the
/// type a loader gives the column it creates for it. The first five are
/// wire version 1; the logical types after them came with version 2 (their
/// wire forms: `format::logical`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Whole numbers, signed or unsigned 64-bit (written as JSON integers,
    /// every digit kept).
    Integer,
    /// Decimal numbers that a 64-bit float holds exactly to 15 digits.
    Float,
    /// `true` / `false`.
    Boolean,
    /// Anything else, kept character for character.
    Text,
    /// Nested objects and arrays.
    Json,
    /// Exact decimal numbers, with precision and scale when declared
    /// (`decimal(12,2)`); written as JSON numbers, digit for digit.
    Decimal(Option<(u16, u16)>),
    /// A calendar date, `2024-02-29`.
    Date,
    /// A time of day, `13:04:05.123456`.
    Time,
    /// A date and time without zone, `2024-01-02T03:04:05.123456`.
    Timestamp,
    /// An instant: a timestamp with `Z` or an offset.
    TimestampTz,
    /// A uuid, `8-4-4-4-12` hex digits.
    Uuid,
    /// Binary data, base64 on the wire.
    Bytes,
}

impl FieldType {
    /// The name used on the wire (`"integer"`, `"decimal(12,2)"`, ...).
    pub fn name(self) -> String {
        match self {
            FieldType::Integer => "integer",
            FieldType::Float => "float",
            FieldType::Boolean => "boolean",
            FieldType::Text => "text",
            FieldType::Json => "json",
            FieldType::Decimal(Some((p, s))) => return format!("decimal({p},{s})"),
            FieldType::Decimal(None) => "decimal",
            FieldType::Date => "date",
            FieldType::Time => "time",
            FieldType::Timestamp => "timestamp",
            FieldType::TimestampTz => "timestamptz",
            FieldType::Uuid => "uuid",
            FieldType::Bytes => "bytes",
        }
        .to_string()
    }

    /// Parses a wire name; `None` for names this version does not know.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "integer" => FieldType::Integer,
            "float" => FieldType::Float,
            "boolean" => FieldType::Boolean,
            "text" => FieldType::Text,
            "json" => FieldType::Json,
            "decimal" => FieldType::Decimal(None),
            "date" => FieldType::Date,
            "time" => FieldType::Time,
            "timestamp" => FieldType::Timestamp,
            "timestamptz" => FieldType::TimestampTz,
            "uuid" => FieldType::Uuid,
            "bytes" => FieldType::Bytes,
            _ => {
                let ps = name.strip_prefix("decimal(")?.strip_suffix(')')?;
                let (p, s) = ps.split_once(',')?;
                let (p, s): (u16, u16) = (p.trim().parse().ok()?, s.trim().parse().ok()?);
                if p == 0 || s > p {
                    return None;
                }
                FieldType::Decimal(Some((p, s)))
            }
        })
    }

    /// Is this one of the five types of wire version 1?
    pub fn is_basic(self) -> bool {
        matches!(
            self,
            FieldType::Integer
                | FieldType::Float
                | FieldType::Boolean
                | FieldType::Text
                | FieldType::Json
        )
    }

    /// The version-1 type a store that has no native column for this type
    /// yet treats it as: `None` for decimals (typed by their values, as
    /// before version 2 declared them), text for the other logical types
    /// (their wire forms are text).
    pub fn basic(self) -> Option<FieldType> {
        match self {
            t if t.is_basic() => Some(t),
            FieldType::Decimal(_) => None,
            _ => Some(FieldType::Text),
        }
    }
}

impl FieldType {
    /// The version-1 type a store without native columns for the logical
    /// types stores this one as, where it must name one: text for all of
    /// them (decimals too, keeping every digit).
    pub fn stored(self) -> FieldType {
        if self.is_basic() {
            self
        } else {
            FieldType::Text
        }
    }
}

/// The names every wire type is written with, for messages.
pub const TYPE_NAMES: &str = "integer, float, boolean, text, json, decimal, decimal(P,S), \
                              date, time, timestamp, timestamptz, uuid or bytes";

/// Column names and types in source order, as declared in a `begin` line.
pub type Schema = Vec<(String, FieldType)>;

/// Short description of a JSON value's kind, for error messages.
pub fn describe_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "text",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A value shortened for an error message: at most 40 characters.
pub fn preview(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= 40 {
        text
    } else {
        let cut: String = text.chars().take(37).collect();
        format!("{cut}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in [
            FieldType::Integer,
            FieldType::Float,
            FieldType::Boolean,
            FieldType::Text,
            FieldType::Json,
            FieldType::Decimal(None),
            FieldType::Decimal(Some((38, 10))),
            FieldType::Date,
            FieldType::Time,
            FieldType::Timestamp,
            FieldType::TimestampTz,
            FieldType::Uuid,
            FieldType::Bytes,
        ] {
            assert_eq!(FieldType::from_name(&t.name()), Some(t));
        }
        assert_eq!(
            FieldType::from_name("decimal(12,2)").unwrap().name(),
            "decimal(12,2)"
        );
        assert_eq!(FieldType::from_name("decimal(2,3)"), None);
        assert_eq!(FieldType::from_name("interval"), None);
    }

    #[test]
    fn preview_shortens_long_values() {
        let long = Value::String("x".repeat(100));
        assert_eq!(preview(&long).chars().count(), 40);
        assert_eq!(preview(&Value::from(5)), "5");
    }
}
