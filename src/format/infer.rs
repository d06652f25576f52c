//! Guessing a CSV column's type, once, for the whole column.
//!
//! The guess looks at a bounded sample (the first `--infer-rows` records) so
//! memory stays flat, and it never loses information: `00501` stays text,
//! integers must fit 64 bits, a decimal is a float only when a 64-bit float
//! holds it exactly to 15 significant digits, booleans are only
//! `true`/`false`. A later value that contradicts the guess is passed on
//! unchanged as text (see [`Typed::encode`]); a typed target then rejects it,
//! with its line, rather than converting it.

use crate::record::FieldType;

/// Evidence about one column gathered from the sample.
#[derive(Debug, Clone, Copy)]
pub struct ColumnGuess {
    any_value: bool,
    all_int: bool,
    all_number: bool,
    all_bool: bool,
}

impl Default for ColumnGuess {
    fn default() -> Self {
        ColumnGuess {
            any_value: false,
            all_int: true,
            all_number: true,
            all_bool: true,
        }
    }
}

impl ColumnGuess {
    /// Takes one sample value into account (empty fields are nulls and say nothing).
    pub fn observe(&mut self, field: &str) {
        if field.is_empty() {
            return;
        }
        self.any_value = true;
        if self.all_bool && parse_bool(field).is_none() {
            self.all_bool = false;
        }
        if self.all_int && !is_integer(field) {
            self.all_int = false;
        }
        if self.all_number && !is_integer(field) && !is_exact_decimal(field) {
            self.all_number = false;
        }
    }

    /// The column's type. A column with no values in the sample is text.
    pub fn decide(&self) -> FieldType {
        if !self.any_value {
            FieldType::Text
        } else if self.all_bool {
            FieldType::Boolean
        } else if self.all_int {
            FieldType::Integer
        } else if self.all_number {
            FieldType::Float
        } else {
            FieldType::Text
        }
    }
}

/// `true`/`false` in any letter case.
pub fn parse_bool(field: &str) -> Option<bool> {
    if field.eq_ignore_ascii_case("true") {
        Some(true)
    } else if field.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// `0` or `-?[1-9][0-9]*` that fits a signed 64-bit integer. Leading zeros,
/// `+`, `-0` and spaces are not integers: turning them into one would lose
/// how they were written.
#[inline]
pub fn is_integer(field: &str) -> bool {
    let digits = field.strip_prefix('-').unwrap_or(field);
    let canonical = match digits.as_bytes() {
        [] => false,
        [b'0'] => field.len() == 1,
        [first, rest @ ..] => (b'1'..=b'9').contains(first) && rest.iter().all(u8::is_ascii_digit),
    };
    // 18 digits always fit in 64 bits; 19 are compared with the limit
    // (as text: digit strings of one length order like their numbers).
    let limit: &[u8] = if digits.len() < field.len() {
        b"9223372036854775808"
    } else {
        b"9223372036854775807"
    };
    canonical && (digits.len() <= 18 || (digits.len() == 19 && digits.as_bytes() <= limit))
}

/// `-?(0|[1-9][0-9]*)\.[0-9]+` with at most 15 significant digits, so that a
/// 64-bit float gives back the same decimal.
pub fn is_exact_decimal(field: &str) -> bool {
    let body = field.strip_prefix('-').unwrap_or(field);
    let Some(dot) = body.bytes().position(|b| b == b'.') else {
        return false;
    };
    // The dot is ASCII: both sides are text.
    let (int, frac) = (&body[..dot], &body[dot + 1..]);
    let int_ok = match int.as_bytes() {
        [b'0'] => true,
        [first, rest @ ..] => (b'1'..=b'9').contains(first) && rest.iter().all(u8::is_ascii_digit),
        [] => false,
    };
    if !int_ok || frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    // Significant digits: from the first non-zero digit to the last.
    let frac_end = frac.trim_end_matches('0');
    let significant = if int == "0" {
        frac_end.trim_start_matches('0').len()
    } else if frac_end.is_empty() {
        int.trim_end_matches('0').len()
    } else {
        int.len() + frac_end.len()
    };
    significant <= 15
}

/// A column type and how to encode its values on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Typed(pub FieldType);

/// How one field went onto the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoded {
    /// As the column's type (or null).
    Fits,
    /// As text, because it does not fit the column's type.
    Mismatch,
}

impl Typed {
    /// Appends `field` as a JSON value to `out`: null when empty, the
    /// column's type when it fits, else the unchanged text.
    #[inline]
    pub fn encode(self, field: &str, out: &mut Vec<u8>) -> Encoded {
        if field.is_empty() {
            out.extend_from_slice(b"null");
            return Encoded::Fits;
        }
        let fits = match self.0 {
            FieldType::Integer => is_integer(field),
            FieldType::Float => (is_integer(field) && field.len() <= 16) || is_exact_decimal(field),
            FieldType::Boolean => {
                if let Some(b) = parse_bool(field) {
                    out.extend_from_slice(if b { b"true" } else { b"false" });
                    return Encoded::Fits;
                }
                false
            }
            FieldType::Text | FieldType::Json => {
                super::json::write_str(out, field);
                return Encoded::Fits;
            }
            // Pinned by --schema: a decimal goes as a JSON number when it
            // is written as one and fits its precision and scale.
            FieldType::Decimal(ps) => super::logical::check_decimal(field, ps).is_ok(),
            t => {
                use super::logical::*;
                let checked = match t {
                    FieldType::Date => check_date(field),
                    FieldType::Time => check_time(field),
                    FieldType::Timestamp => check_timestamp(field),
                    FieldType::TimestampTz => check_timestamptz(field),
                    FieldType::Uuid => check_uuid(field),
                    _ => decode_bytes(field).map(drop),
                };
                super::json::write_str(out, field);
                return if checked.is_ok() {
                    Encoded::Fits
                } else {
                    Encoded::Mismatch
                };
            }
        };
        if fits {
            out.extend_from_slice(field.as_bytes());
            Encoded::Fits
        } else {
            super::json::write_str(out, field);
            Encoded::Mismatch
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guess(values: &[&str]) -> FieldType {
        let mut g = ColumnGuess::default();
        values.iter().for_each(|v| g.observe(v));
        g.decide()
    }

    #[test]
    fn exact_decimals_count_significant_digits() {
        for (text, exact) in [
            ("0.000123456789012345", true),
            ("0.0001234567890123456", false),
            ("123456789012345.0000", true),
            ("1234567890123456.0", false),
            ("100000000000000000.0", true),
            ("12345678.1234567", true),
            ("12345678.12345678", false),
            ("-0.50", true),
            ("0.0", true),
            ("01.5", false),
            ("1.", false),
        ] {
            assert_eq!(is_exact_decimal(text), exact, "{text}");
        }
    }

    #[test]
    fn guesses_never_lose_information() {
        assert_eq!(guess(&["1", "22", "", "-3"]), FieldType::Integer);
        assert_eq!(guess(&["00501", "1"]), FieldType::Text);
        assert_eq!(guess(&["1", "2.50"]), FieldType::Float);
        assert_eq!(guess(&["9223372036854775807"]), FieldType::Integer);
        assert_eq!(guess(&["9223372036854775808"]), FieldType::Text);
        assert_eq!(guess(&["-9223372036854775808"]), FieldType::Integer);
        assert_eq!(guess(&["-9223372036854775809"]), FieldType::Text);
        assert_eq!(guess(&["1000000000000000000"]), FieldType::Integer);
        assert_eq!(guess(&["10000000000000000000"]), FieldType::Text);
        assert_eq!(guess(&["0.1234567890123456"]), FieldType::Text);
        assert_eq!(guess(&["true", "FALSE"]), FieldType::Boolean);
        assert_eq!(guess(&["1", "true"]), FieldType::Text);
        assert_eq!(guess(&["", ""]), FieldType::Text);
        assert_eq!(guess(&["+1"]), FieldType::Text);
        assert_eq!(guess(&["-0"]), FieldType::Text);
        assert_eq!(guess(&["1e5"]), FieldType::Text);
        assert_eq!(guess(&["2026-11-01"]), FieldType::Text);
    }

    #[test]
    fn encode_checks_pinned_logical_types() {
        let mut out = Vec::new();
        let dec = Typed(FieldType::Decimal(Some((12, 2))));
        assert_eq!(dec.encode("12.50", &mut out), Encoded::Fits);
        assert_eq!(out, b"12.50");
        out.clear();
        assert_eq!(dec.encode("12.505", &mut out), Encoded::Mismatch);
        assert_eq!(out, b"\"12.505\"");
        out.clear();
        assert_eq!(
            Typed(FieldType::Date).encode("2024-02-29", &mut out),
            Encoded::Fits
        );
        assert_eq!(out, b"\"2024-02-29\"");
        out.clear();
        assert_eq!(
            Typed(FieldType::Date).encode("2023-02-29", &mut out),
            Encoded::Mismatch
        );
    }

    #[test]
    fn encode_passes_mismatches_on_as_text() {
        let mut out = Vec::new();
        assert_eq!(
            Typed(FieldType::Integer).encode("n/a", &mut out),
            Encoded::Mismatch
        );
        assert_eq!(out, b"\"n/a\"");
        out.clear();
        assert_eq!(
            Typed(FieldType::Integer).encode("42", &mut out),
            Encoded::Fits
        );
        assert_eq!(out, b"42");
        out.clear();
        Typed(FieldType::Text).encode("00501", &mut out);
        assert_eq!(out, b"\"00501\"");
        out.clear();
        Typed(FieldType::Boolean).encode("TRUE", &mut out);
        assert_eq!(out, b"true");
        out.clear();
        Typed(FieldType::Float).encode("", &mut out);
        assert_eq!(out, b"null");
    }
}
