//! General typing, shared by every store: the wire type a value asks for,
//! how column types widen over a sample, and which numbers a 64-bit float
//! holds exactly.
//!
//! Typing is conservative: a value goes into a column only when the column
//! can hold it exactly. Anything else is a reject with a reason, never a
//! silent conversion (no `"n/a"` becoming 0, no 2^53+1 becoming a float).

use crate::format::flat::{Fields, Raw};
use crate::record::{FieldType, Schema};

/// The wire type a new column gets from one value (`None` for null).
pub fn type_of_value(value: &Raw<'_>) -> Option<FieldType> {
    Some(match value {
        Raw::Null => return None,
        Raw::Bool(_) => FieldType::Boolean,
        Raw::Number(n) if is_integer_text(n) => {
            if n.parse::<i64>().is_ok() {
                FieldType::Integer
            } else {
                FieldType::Text
            }
        }
        Raw::Number(n) => {
            if exact_float(n).is_some() {
                FieldType::Float
            } else {
                FieldType::Text
            }
        }
        Raw::Str(_) => FieldType::Text,
        Raw::Nested(_) => FieldType::Json,
    })
}

/// Do the sample's values of `name` pass a signed 64-bit integer's top
/// (a MySQL `BIGINT UNSIGNED` as extracted, up to 18446744073709551615)?
/// A store whose integers are signed 64-bit then gives the column a type
/// that holds them (MySQL BIGINT UNSIGNED, else decimal(20,0)).
pub fn beyond_bigint(sample: &[&Fields<'_>], name: &str) -> bool {
    sample
        .iter()
        .flat_map(|f| f.iter())
        .filter(|(n, _)| n == name)
        .any(
            |(_, v)| matches!(v, Raw::Number(n) if is_integer_text(n) && n.parse::<i64>().is_err()),
        )
}

/// Columns for a new or growing table, in order: the producer's declared
/// schema first (its types win), then fields as they first appear in the
/// sample, each typed by the widest of its values (text when all null).
/// For a store without native columns for the logical types (wire version
/// 2): a declared decimal is typed by its values, as when version 1 left
/// it undeclared, and the other logical types are text.
pub fn column_types(schema: &Schema, sample: &[&Fields<'_>]) -> Vec<(String, FieldType)> {
    let basic: Vec<_> = schema.iter().map(|(n, t)| (n, t.basic())).collect();
    columns(&basic, sample)
}

/// [`column_types`] for a store that creates native columns for every
/// wire type: declared types are kept as they are.
pub fn column_types_native(schema: &Schema, sample: &[&Fields<'_>]) -> Vec<(String, FieldType)> {
    let declared: Vec<_> = schema.iter().map(|(n, t)| (n, Some(*t))).collect();
    columns(&declared, sample)
}

/// Columns for `schema` (a `None` type: typed by the sample's values) and
/// the sample's other fields.
fn columns(
    schema: &[(&String, Option<FieldType>)],
    sample: &[&Fields<'_>],
) -> Vec<(String, FieldType)> {
    // (name, type so far, declared by the producer)
    let mut wanted: Vec<(String, Option<FieldType>, bool)> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (name, t) in schema {
        index.insert(name.to_lowercase(), wanted.len());
        wanted.push((name.to_string(), *t, t.is_some()));
    }
    for fields in sample {
        for (name, value) in fields.iter() {
            let i = *index.entry(name.to_lowercase()).or_insert_with(|| {
                wanted.push((name.to_string(), None, false));
                wanted.len() - 1
            });
            if !wanted[i].2
                && let Some(t) = type_of_value(value)
            {
                wanted[i].1 = Some(wanted[i].1.map_or(t, |old| widen(old, t)));
            }
        }
    }
    wanted
        .into_iter()
        .map(|(n, t, _)| (n, t.unwrap_or(FieldType::Text)))
        .collect()
}

/// The narrowest column type that holds values of both types exactly.
pub fn widen(a: FieldType, b: FieldType) -> FieldType {
    use FieldType::*;
    match (a, b) {
        _ if a == b => a,
        (Json, _) | (_, Json) => Json,
        (Integer, Float) | (Float, Integer) => Float,
        _ => Text,
    }
}

/// True when a JSON number's text has no fraction and no exponent.
pub fn is_integer_text(n: &str) -> bool {
    !n.contains(['.', 'e', 'E'])
}

/// Is `text` a number written the way JSON writes one (`-12`, `1.00`,
/// `2.5e3`)? Text of this shape going into a numeric column is read as that
/// number, in every store; anything else (`007`, `+1`, `.5`, ` 1`, `NaN`)
/// stays text, which a numeric column rejects.
pub fn is_number_text(text: &str) -> bool {
    let b = text.strip_prefix('-').unwrap_or(text).as_bytes();
    let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
    let int = digits(b);
    if int == 0 || (int > 1 && b[0] == b'0') {
        return false;
    }
    let mut rest = &b[int..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = digits(frac);
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    if let Some(exp) = rest.strip_prefix(b"e").or_else(|| rest.strip_prefix(b"E")) {
        let exp = exp
            .strip_prefix(b"+")
            .or_else(|| exp.strip_prefix(b"-"))
            .unwrap_or(exp);
        let n = digits(exp);
        if n == 0 {
            return false;
        }
        rest = &exp[n..];
    }
    rest.is_empty()
}

/// A JSON number as an f64, when the f64 holds the written decimal exactly
/// (to its significant digits); integers only up to 2^53. A number too
/// large (infinity), too small (it would become 0) or so small that the f64
/// keeps fewer digits than were written (a subnormal) has no exact f64.
pub fn exact_float(text: &str) -> Option<f64> {
    if is_integer_text(text) {
        let i: i64 = text.parse().ok()?;
        return (i.unsigned_abs() <= 1 << 53).then_some(i as f64);
    }
    let f: f64 = text.parse().ok()?;
    if !f.is_finite() {
        return None;
    }
    let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
    // The significant digits' count, without gathering them: the common
    // case (15 digits or fewer) needs no more.
    let mut digits = mantissa.bytes().filter(u8::is_ascii_digit);
    let first = digits.position(|d| d != b'0');
    let Some(_) = first else {
        return Some(f);
    };
    let mut count = 1;
    let mut kept = 1;
    for d in digits {
        count += 1;
        if d != b'0' {
            kept = count;
        }
    }
    if f == 0.0 {
        return None;
    }
    if kept > 17 {
        return None;
    }
    if kept <= 15 && f.abs() >= f64::MIN_POSITIVE {
        return Some(f);
    }
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0');
    if f.abs() < f64::MIN_POSITIVE {
        // A subnormal holds fewer than 15 digits: it is exact only when the
        // shortest text that reads back as it has the written digits.
        let shortest = format!("{:e}", f.abs());
        let back: String = shortest
            .split('e')
            .next()
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        return (back == significant).then_some(f);
    }
    if significant.len() <= 15 {
        return Some(f);
    }
    let formatted = format!("{:.*e}", significant.len() - 1, f.abs());
    let back: String = formatted
        .split('e')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    (back.trim_end_matches('0') == significant).then_some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn underflow_and_lost_digits_are_not_exact() {
        assert_eq!(exact_float("1e-400"), None);
        assert_eq!(exact_float("1e400"), None);
        assert_eq!(exact_float("1.2345678901234e-315"), None);
        assert_eq!(exact_float("4.9e-324"), None);
        assert_eq!(exact_float("5e-324"), Some(5e-324));
        assert_eq!(exact_float("1.5e-310"), Some(1.5e-310));
        assert_eq!(exact_float("0e-400"), Some(0.0));
        assert_eq!(
            exact_float("2.2250738585072014e-308"),
            Some(f64::MIN_POSITIVE)
        );
    }

    #[test]
    fn widening() {
        assert_eq!(
            widen(FieldType::Integer, FieldType::Float),
            FieldType::Float
        );
        assert_eq!(widen(FieldType::Integer, FieldType::Text), FieldType::Text);
        assert_eq!(widen(FieldType::Text, FieldType::Json), FieldType::Json);
        assert_eq!(
            widen(FieldType::Boolean, FieldType::Integer),
            FieldType::Text
        );
    }
}
