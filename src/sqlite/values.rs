//! Fitting record values into SQLite columns: what a column accepts (from
//! its declared type, the way SQLite derives affinity), the type etlkit
//! declares for a column it creates, and the check that a value goes into
//! a column only when the column holds it exactly; anything else is a
//! reject with a reason.

use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};

use crate::format::flat::Raw;
use crate::format::logical::{Temporal, check_decimal, check_iso_like, check_uuid, decode_bytes};
use crate::format::typing::{exact_float, is_integer_text, is_number_text};
use crate::record::FieldType;

/// The widest decimal a NUMERIC column holds exactly: SQLite keeps 15
/// significant digits of a number it stores as REAL.
pub const NUMERIC_DIGITS: u16 = 15;

/// The declared type etlkit gives a column it creates for `t`. Every
/// logical type keeps its value exactly. A decimal of up to 15 digits is
/// `DECIMAL(p,s)`: NUMERIC affinity stores each value as an INTEGER or a
/// REAL that holds it exactly, so SQL compares, sorts and sums them as
/// numbers, and etl-extract writes them back with their scale (`12.50`).
/// A wider one would be rounded there, so it is declared
/// `DECIMAL_TEXT(p,s)`, a name that says what the column holds and, by
/// containing `TEXT`, gives it TEXT affinity (its digits kept as text). Dates and times are ISO text
/// under the names readers know (`DATE`, `TIME`, `DATETIME`,
/// `TIMESTAMPTZ`; their NUMERIC affinity leaves text that is no number as
/// it is), uuids `UUID`, and bytes a `BLOB` of the decoded bytes.
pub fn declared_type(t: FieldType) -> String {
    match t {
        FieldType::Integer => "INTEGER",
        FieldType::Float => "REAL",
        FieldType::Boolean => "BOOLEAN",
        FieldType::Text => "TEXT",
        // TEXT affinity: with the plain name JSON (NUMERIC affinity) SQLite
        // would turn a long number's text into a rounded REAL.
        FieldType::Json => "JSON_TEXT",
        FieldType::Decimal(Some((p, s))) if p <= NUMERIC_DIGITS => {
            return format!("DECIMAL({p},{s})");
        }
        FieldType::Decimal(Some((p, s))) => return format!("DECIMAL_TEXT({p},{s})"),
        FieldType::Decimal(None) => "DECIMAL_TEXT",
        FieldType::Date => "DATE",
        FieldType::Time => "TIME",
        FieldType::Timestamp => "DATETIME",
        FieldType::TimestampTz => "TIMESTAMPTZ",
        FieldType::Uuid => "UUID",
        FieldType::Bytes => "BLOB",
    }
    .to_string()
}

/// `DECIMAL_TEXT(p,s)` or `DECIMAL_TEXT` (upper case) as its wire type.
fn decimal_text(upper: &str) -> Option<FieldType> {
    let rest = upper.strip_prefix("DECIMAL_TEXT")?.trim();
    if rest.is_empty() {
        return Some(FieldType::Decimal(None));
    }
    let name = format!("decimal{}", rest.replace(' ', ""));
    FieldType::from_name(&name).or(Some(FieldType::Decimal(None)))
}

/// `DECIMAL(p,s)` or `NUMERIC(p,s)` (upper case) of at most 15 digits,
/// which a NUMERIC column holds exactly, as its wire type.
fn numeric_decimal(upper: &str) -> Option<FieldType> {
    let rest = upper
        .strip_prefix("DECIMAL")
        .or_else(|| upper.strip_prefix("NUMERIC"))?;
    let name = format!("decimal{}", rest.replace(' ', ""));
    match FieldType::from_name(&name)? {
        t @ FieldType::Decimal(Some((p, _))) if p <= NUMERIC_DIGITS => Some(t),
        _ => None,
    }
}

/// What a column accepts, derived from its declared type the way SQLite
/// derives affinity, plus the two names etlkit gives meaning to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// A typed column etlkit understands.
    Typed(FieldType),
    /// NUMERIC affinity (DATE, DECIMAL, ...): numbers, and text SQLite
    /// would not turn into a number.
    Numeric,
    /// No declared type: anything, stored as given.
    Any,
}

impl ColumnKind {
    /// The kind of a column declared as `decl`.
    pub fn from_declared(decl: &str) -> ColumnKind {
        let upper = decl.trim().to_ascii_uppercase();
        if let Some(t) = decimal_text(&upper).or_else(|| numeric_decimal(&upper)) {
            return ColumnKind::Typed(t);
        }
        let logical = match upper.as_str() {
            "DATE" => Some(FieldType::Date),
            "TIME" => Some(FieldType::Time),
            "DATETIME" | "TIMESTAMP" => Some(FieldType::Timestamp),
            "TIMESTAMPTZ" => Some(FieldType::TimestampTz),
            "UUID" => Some(FieldType::Uuid),
            _ => None,
        };
        if let Some(t) = logical {
            return ColumnKind::Typed(t);
        }
        if upper.starts_with("BOOL") {
            ColumnKind::Typed(FieldType::Boolean)
        } else if upper == "JSON" || upper == "JSONB" || upper == "JSON_TEXT" {
            ColumnKind::Typed(FieldType::Json)
        } else if upper.contains("INT") {
            ColumnKind::Typed(FieldType::Integer)
        } else if upper.contains("CHAR") || upper.contains("CLOB") || upper.contains("TEXT") {
            ColumnKind::Typed(FieldType::Text)
        } else if upper.is_empty() || upper.contains("BLOB") {
            ColumnKind::Any
        } else if upper.contains("REAL") || upper.contains("FLOA") || upper.contains("DOUB") {
            ColumnKind::Typed(FieldType::Float)
        } else {
            ColumnKind::Numeric
        }
    }

    /// The wire type a reader of this column should declare, if any.
    pub fn field_type(self) -> Option<FieldType> {
        match self {
            ColumnKind::Typed(t) => Some(t),
            ColumnKind::Numeric | ColumnKind::Any => None,
        }
    }

    /// A name for messages.
    pub fn describe(self) -> String {
        match self {
            ColumnKind::Typed(t) => declared_type(t),
            ColumnKind::Numeric => "NUMERIC".into(),
            ColumnKind::Any => "untyped".into(),
        }
    }
}

/// Would SQLite turn this text into a number in a NUMERIC column?
fn looks_numeric(text: &str) -> bool {
    let t = text.trim();
    !t.is_empty()
        && t.parse::<f64>().is_ok()
        && !t.eq_ignore_ascii_case("nan")
        && !t.to_ascii_lowercase().contains("inf")
}

fn text(s: &str) -> ToSqlOutput<'_> {
    ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
}

/// A number (JSON number, or text written as one) for a numeric column of
/// `kind`, when the column holds it exactly.
fn number_value(n: &str, kind: ColumnKind) -> Option<SqlValue> {
    let integer = || {
        is_integer_text(n)
            .then(|| n.parse::<i64>().ok())
            .flatten()
            .map(SqlValue::Integer)
    };
    match kind {
        ColumnKind::Typed(FieldType::Integer) => integer(),
        ColumnKind::Typed(FieldType::Float) => exact_float(n).map(SqlValue::Real),
        ColumnKind::Numeric | ColumnKind::Any => {
            integer().or_else(|| exact_float(n).map(SqlValue::Real))
        }
        ColumnKind::Typed(_) => None,
    }
}

/// Converts `value` for a column of `kind`, or says why it does not fit.
pub fn to_sql<'a>(value: &'a Raw<'a>, kind: ColumnKind) -> Result<ToSqlOutput<'a>, String> {
    let misfit = || {
        format!(
            "{} does not fit a {} column",
            value.describe(),
            kind.describe()
        )
    };
    let owned = |v: SqlValue| Ok(ToSqlOutput::Owned(v));
    match (kind, value) {
        (_, Raw::Null) => owned(SqlValue::Null),
        (ColumnKind::Typed(FieldType::Decimal(declared)), Raw::Number(n) | Raw::Str(n)) => {
            check_decimal(n, declared).map_err(|why| format!("{} {why}", value.describe()))?;
            match declared {
                // A NUMERIC column: the number, which at most 15 digits an
                // INTEGER or a REAL holds exactly.
                Some((p, _)) if p <= NUMERIC_DIGITS => {
                    number_value(n, ColumnKind::Numeric).map_or_else(|| Err(misfit()), owned)
                }
                _ => Ok(text(n)),
            }
        }
        (ColumnKind::Typed(t @ (FieldType::Date | FieldType::Time)), Raw::Str(s))
        | (ColumnKind::Typed(t @ (FieldType::Timestamp | FieldType::TimestampTz)), Raw::Str(s)) => {
            // Text in the wire form is checked (2024-02-30 is a reject);
            // other spellings are kept as they are, as a NUMERIC column
            // would. SQLite keeps text as it is, so an offset into a
            // DATETIME column loses nothing: it is kept (and the source
            // then reads the column as text).
            let temporal = match t {
                FieldType::Date => Temporal::Date,
                FieldType::Time => Temporal::Time,
                _ => Temporal::TimestampTz,
            };
            let iso = check_iso_like(temporal, s)
                .map_err(|why| format!("{} {why}", value.describe()))?;
            // ISO text is no number; other text might be, and a NUMERIC
            // column would turn it into one.
            if !iso && looks_numeric(s) {
                return Err(format!(
                    "{} would be turned into a number by a {} column",
                    value.describe(),
                    kind.describe()
                ));
            }
            Ok(text(s))
        }
        (
            ColumnKind::Typed(
                FieldType::Date | FieldType::Time | FieldType::Timestamp | FieldType::TimestampTz,
            ),
            Raw::Number(n),
        ) => number_value(n, ColumnKind::Numeric).map_or_else(|| Err(misfit()), owned),
        (ColumnKind::Typed(FieldType::Uuid), Raw::Str(s)) => {
            check_uuid(s).map_err(|why| format!("{} {why}", value.describe()))?;
            Ok(text(s))
        }
        (ColumnKind::Typed(FieldType::Bytes), Raw::Str(s)) => {
            let bytes = decode_bytes(s).map_err(|why| format!("{} {why}", value.describe()))?;
            owned(SqlValue::Blob(bytes))
        }
        (ColumnKind::Typed(FieldType::Integer | FieldType::Float), Raw::Number(n)) => {
            number_value(n, kind).map_or_else(|| Err(misfit()), owned)
        }
        // Numbers often travel as text ("1.00" from a JSON API): text
        // written as a number goes into a numeric column when it fits
        // exactly, the same rule as for the number itself.
        (
            ColumnKind::Typed(FieldType::Integer | FieldType::Float) | ColumnKind::Numeric,
            Raw::Str(s),
        ) if is_number_text(s) => number_value(s, kind).map_or_else(|| Err(misfit()), owned),
        (ColumnKind::Typed(FieldType::Boolean), Raw::Bool(b)) => {
            owned(SqlValue::Integer(i64::from(*b)))
        }
        (ColumnKind::Typed(FieldType::Text), Raw::Str(s)) => Ok(text(s)),
        (ColumnKind::Typed(FieldType::Text), Raw::Number(n) | Raw::Nested(n)) => Ok(text(n)),
        (ColumnKind::Typed(FieldType::Text), Raw::Bool(b)) => {
            Ok(text(if *b { "true" } else { "false" }))
        }
        (ColumnKind::Typed(FieldType::Json), Raw::Nested(j) | Raw::Number(j)) => Ok(text(j)),
        (ColumnKind::Typed(FieldType::Json), _) => owned(SqlValue::Text(value.to_json())),
        (ColumnKind::Numeric | ColumnKind::Any, Raw::Number(n)) => match number_value(n, kind) {
            Some(v) => owned(v),
            None if kind == ColumnKind::Any => Ok(text(n)),
            None => Err(misfit()),
        },
        (ColumnKind::Numeric, Raw::Str(s)) if looks_numeric(s) => Err(format!(
            "{} would be turned into a number by a NUMERIC column",
            value.describe()
        )),
        (ColumnKind::Numeric | ColumnKind::Any, Raw::Str(s) | Raw::Nested(s)) => Ok(text(s)),
        (ColumnKind::Numeric | ColumnKind::Any, Raw::Bool(b)) => {
            owned(SqlValue::Integer(i64::from(*b)))
        }
        _ => Err(misfit()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::typing::type_of_value;

    fn num(s: &str) -> Raw<'_> {
        Raw::Number(s.into())
    }

    fn fits(value: &Raw<'_>, t: FieldType) -> bool {
        to_sql(value, ColumnKind::Typed(t)).is_ok()
    }

    #[test]
    fn integers_stay_exact() {
        assert!(fits(&num("9007199254740993"), FieldType::Integer));
        assert!(!fits(&num("9007199254740993"), FieldType::Float));
        assert!(!fits(&num("1.5"), FieldType::Integer));
        assert!(fits(&Raw::Str("42".into()), FieldType::Integer));
        assert!(!fits(&Raw::Str("42x".into()), FieldType::Integer));
        assert!(!fits(&Raw::Bool(true), FieldType::Integer));
        let huge = num("123456789012345678901234567890");
        assert!(!fits(&huge, FieldType::Integer));
        assert_eq!(type_of_value(&huge), Some(FieldType::Text));
        assert!(fits(&huge, FieldType::Text));
    }

    #[test]
    fn floats_must_round_trip() {
        assert!(fits(&num("3.141592653589793"), FieldType::Float));
        assert!(!fits(&num("0.12345678901234567890"), FieldType::Float));
        assert!(fits(&num("12"), FieldType::Float));
        assert!(fits(&num("12.50"), FieldType::Float));
        assert!(fits(&num("1e300"), FieldType::Float));
        assert!(!fits(&num("1e999"), FieldType::Float));
    }

    #[test]
    fn numeric_columns_refuse_text_they_would_convert() {
        assert!(to_sql(&Raw::Str("00501".into()), ColumnKind::Numeric).is_err());
        assert!(to_sql(&Raw::Str("2026-11-01".into()), ColumnKind::Numeric).is_ok());
    }

    #[test]
    fn number_text_converts_only_when_exact() {
        let text = |s: &'static str| Raw::Str(s.into());
        assert!(fits(&text("1.00"), FieldType::Float));
        assert!(fits(&text("12"), FieldType::Integer));
        assert!(fits(&text("-2.5e3"), FieldType::Float));
        assert!(!fits(&text("1.5"), FieldType::Integer));
        assert!(!fits(&text("abc"), FieldType::Float));
        assert!(!fits(&text("1e-400"), FieldType::Float));
        assert!(!fits(&text("007"), FieldType::Integer));
        assert!(to_sql(&text("1.50"), ColumnKind::Numeric).is_ok());
        assert!(matches!(
            to_sql(&text("12"), ColumnKind::Any),
            Ok(ToSqlOutput::Borrowed(ValueRef::Text(_)))
        ));
        for good in ["0", "-0", "12", "1.00", "0.5", "1e5", "1E+5", "-2.5e-3"] {
            assert!(is_number_text(good), "{good}");
        }
        for bad in [
            "", "-", "007", "+1", ".5", "1.", "1e", "1e+", " 1", "1 ", "NaN", "0x1",
        ] {
            assert!(!is_number_text(bad), "{bad}");
        }
    }

    #[test]
    fn logical_types_keep_their_text() {
        let dec = ColumnKind::Typed(FieldType::Decimal(Some((20, 2))));
        assert!(matches!(
            to_sql(&num("12.50"), dec),
            Ok(ToSqlOutput::Borrowed(ValueRef::Text(b"12.50")))
        ));
        assert!(to_sql(&num("12.505"), dec).is_err());
        // Up to 15 digits: a number SQLite compares and sums as one.
        let numeric = ColumnKind::Typed(FieldType::Decimal(Some((15, 2))));
        assert!(matches!(
            to_sql(&num("12.50"), numeric),
            Ok(ToSqlOutput::Owned(SqlValue::Real(f))) if f == 12.5
        ));
        assert!(matches!(
            to_sql(&Raw::Str("-3".into()), numeric),
            Ok(ToSqlOutput::Owned(SqlValue::Integer(-3)))
        ));
        assert!(to_sql(&num("1234567890123.505"), numeric).is_err());
        let date = ColumnKind::Typed(FieldType::Date);
        assert!(to_sql(&Raw::Str("2024-02-29".into()), date).is_ok());
        assert!(to_sql(&Raw::Str("2023-02-29".into()), date).is_err());
        let ts = ColumnKind::Typed(FieldType::Timestamp);
        assert!(to_sql(&Raw::Str("2024-01-02T03:04:05Z".into()), ts).is_ok());
        assert!(to_sql(&Raw::Str("2024-02-30T03:04:05".into()), ts).is_err());
        let uuid = ColumnKind::Typed(FieldType::Uuid);
        assert!(to_sql(&Raw::Str("nope".into()), uuid).is_err());
        let bytes = ColumnKind::Typed(FieldType::Bytes);
        assert!(matches!(
            to_sql(&Raw::Str("3q2+7w==".into()), bytes),
            Ok(ToSqlOutput::Owned(SqlValue::Blob(b))) if b == [0xde, 0xad, 0xbe, 0xef]
        ));
    }

    #[test]
    fn messages_name_kind_and_value() {
        let err = to_sql(
            &Raw::Str("n/a".into()),
            ColumnKind::Typed(FieldType::Integer),
        )
        .unwrap_err();
        assert_eq!(err, "text value \"n/a\" does not fit a INTEGER column");
    }

    #[test]
    fn declared_types_map_like_affinity() {
        use ColumnKind::*;
        assert_eq!(
            ColumnKind::from_declared("BIGINT"),
            Typed(FieldType::Integer)
        );
        assert_eq!(
            ColumnKind::from_declared("varchar(20)"),
            Typed(FieldType::Text)
        );
        assert_eq!(
            ColumnKind::from_declared("DOUBLE PRECISION"),
            Typed(FieldType::Float)
        );
        assert_eq!(
            ColumnKind::from_declared("BOOLEAN"),
            Typed(FieldType::Boolean)
        );
        assert_eq!(ColumnKind::from_declared("JSON"), Typed(FieldType::Json));
        assert_eq!(
            ColumnKind::from_declared("DATETIME"),
            Typed(FieldType::Timestamp)
        );
        assert_eq!(ColumnKind::from_declared("NUMERIC"), Numeric);
        assert_eq!(
            ColumnKind::from_declared("DECIMAL(12,2)"),
            Typed(FieldType::Decimal(Some((12, 2))))
        );
        assert_eq!(
            ColumnKind::from_declared("numeric(15, 0)"),
            Typed(FieldType::Decimal(Some((15, 0))))
        );
        assert_eq!(ColumnKind::from_declared("DECIMAL(16,2)"), Numeric);
        assert_eq!(ColumnKind::from_declared("DECIMAL"), Numeric);
        assert_eq!(ColumnKind::from_declared(""), Any);
        for t in [
            FieldType::Integer,
            FieldType::Float,
            FieldType::Boolean,
            FieldType::Text,
            FieldType::Json,
            FieldType::Decimal(Some((65, 30))),
            FieldType::Decimal(None),
            FieldType::Date,
            FieldType::Time,
            FieldType::Timestamp,
            FieldType::TimestampTz,
            FieldType::Uuid,
        ] {
            assert_eq!(ColumnKind::from_declared(&declared_type(t)), Typed(t));
        }
        // Bytes are a BLOB: any value, bytes when the stream declares them.
        assert_eq!(ColumnKind::from_declared("BLOB"), Any);
    }
}
