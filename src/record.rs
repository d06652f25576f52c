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
/// type a loader gives the column it creates for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Whole numbers that fit in 64 bits.
    Integer,
    /// Decimal numbers that a 64-bit float holds exactly to 15 digits.
    Float,
    /// `true` / `false`.
    Boolean,
    /// Anything else, kept character for character.
    Text,
    /// Nested objects and arrays.
    Json,
}

impl FieldType {
    /// The name used on the wire (`"integer"`, `"float"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Integer => "integer",
            FieldType::Float => "float",
            FieldType::Boolean => "boolean",
            FieldType::Text => "text",
            FieldType::Json => "json",
        }
    }

    /// Parses a wire name; `None` for names this version does not know.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "integer" => FieldType::Integer,
            "float" => FieldType::Float,
            "boolean" => FieldType::Boolean,
            "text" => FieldType::Text,
            "json" => FieldType::Json,
            _ => return None,
        })
    }
}

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
        ] {
            assert_eq!(FieldType::from_name(t.name()), Some(t));
        }
        assert_eq!(FieldType::from_name("decimal"), None);
    }

    #[test]
    fn preview_shortens_long_values() {
        let long = Value::String("x".repeat(100));
        assert_eq!(preview(&long).chars().count(), 40);
        assert_eq!(preview(&Value::from(5)), "5");
    }
}
