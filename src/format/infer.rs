//! Guessing a CSV column's type, once, for the whole column.
//!
//! The guess looks at a bounded sample (the first `--infer-rows` records) so
//! memory stays flat, and it never loses information: `00501` stays text,
//! integers must fit 64 bits, booleans are only `true`/`false`. Numbers
//! with a point are a decimal when every one has the same number of digits
//! after it (`12.50`, `0.10`: money, fixed-point exports), else a float
//! when a 64-bit float holds each exactly to 15 significant digits. ISO
//! 8601 dates, times of day, timestamps and timestamps with an offset are
//! their logical types when every value has the one form. A later value
//! that contradicts the guess is passed on unchanged as text (see
//! [`Typed::encode`]); a typed target then rejects it, with its line, rather
//! than converting it.

use crate::format::logical::{self, check_date, check_time, check_timestamp, check_timestamptz};
use crate::record::FieldType;

/// The date and time forms a sampled value can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Temporal {
    Date,
    Time,
    Timestamp,
    TimestampTz,
}

/// Evidence about one column gathered from the sample.
#[derive(Debug, Clone, Copy)]
pub struct ColumnGuess {
    any_value: bool,
    all_int: bool,
    all_number: bool,
    all_bool: bool,
    /// Every value is a plain decimal (`-?(0|[1-9][0-9]*)(.[0-9]+)?`).
    all_decimal: bool,
    /// The digits after the point, when every value with a point had the
    /// same number (`Some(0)`: no value had a point yet).
    scale: Option<u16>,
    /// The most digits before the point.
    int_digits: u16,
    /// The one date or time form of every value so far (`None` before the
    /// first value, and once a value had none or another).
    temporal: Option<Temporal>,
    all_temporal: bool,
}

impl Default for ColumnGuess {
    fn default() -> Self {
        ColumnGuess {
            any_value: false,
            all_int: true,
            all_number: true,
            all_bool: true,
            all_decimal: true,
            scale: Some(0),
            int_digits: 0,
            temporal: None,
            all_temporal: true,
        }
    }
}

/// The precision of an inferred decimal column: 15 digits when the sample
/// needs no more (what a 64-bit float, and so a SQLite NUMERIC column,
/// holds exactly: the same bound as an inferred float), else 18 (a 64-bit
/// integer in Parquet), else 38 (the widest decimal Parquet, Spark and
/// Trino read).
fn inferred_precision(needed: u16) -> Option<u16> {
    match needed {
        0..=15 => Some(15),
        16..=18 => Some(18),
        19..=38 => Some(38),
        _ => None,
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
        if self.all_decimal {
            let digits = logical::plain_decimal(field)
                .and_then(|d| Some((u16::try_from(d.int).ok()?, u16::try_from(d.frac).ok()?)));
            match digits {
                Some((int, frac)) => {
                    self.int_digits = self.int_digits.max(int);
                    self.scale = match self.scale {
                        Some(0) => Some(frac),
                        Some(s) if frac == 0 || frac == s => Some(s),
                        _ => None,
                    };
                }
                None => self.all_decimal = false,
            }
        }
        if self.all_temporal {
            let mut buf = [0u8; CANONICAL_MAX];
            let form = temporal_form(canonical_temporal(field, &mut buf));
            match (self.temporal, form) {
                (_, None) => self.all_temporal = false,
                (None, Some(f)) => self.temporal = Some(f),
                (Some(a), Some(b)) if a == b => {}
                _ => self.all_temporal = false,
            }
        }
    }

    /// The column's type. A column with no values in the sample is text.
    pub fn decide(&self) -> FieldType {
        if !self.any_value {
            return FieldType::Text;
        }
        if self.all_bool {
            return FieldType::Boolean;
        }
        if self.all_int {
            return FieldType::Integer;
        }
        if self.all_decimal
            && let Some(scale) = self.scale.filter(|s| *s > 0)
            && let Some(precision) = inferred_precision(self.int_digits.saturating_add(scale))
        {
            return FieldType::Decimal(Some((precision, scale)));
        }
        if self.all_number {
            return FieldType::Float;
        }
        if self.all_temporal {
            return match self.temporal {
                Some(Temporal::Date) => FieldType::Date,
                Some(Temporal::Time) => FieldType::Time,
                Some(Temporal::Timestamp) => FieldType::Timestamp,
                Some(Temporal::TimestampTz) => FieldType::TimestampTz,
                None => FieldType::Text,
            };
        }
        FieldType::Text
    }
}

/// The longest date or time text [`canonical_temporal`] writes.
pub const CANONICAL_MAX: usize = 40;

/// A date or time text in its wire form: a space between date and time
/// becomes `T`, and an offset written `+HH` or `+HHMM` (as PostgreSQL
/// prints one) becomes `+HH:MM`. Other text is returned as it is.
pub fn canonical_temporal<'a>(field: &'a str, buf: &'a mut [u8; CANONICAL_MAX]) -> &'a str {
    let b = field.as_bytes();
    if b.len() < 19 || b.len() > CANONICAL_MAX - 3 || b[4] != b'-' || !field.is_ascii() {
        return field;
    }
    let space = b[10] == b' ';
    let n = b.len();
    // The wire form already (`T`, then `Z` or `+HH:MM`): the common case.
    if !space
        && (matches!(b[n - 1], b'Z' | b'z')
            || (b[n - 3] == b':' && matches!(b[n - 6], b'+' | b'-')))
    {
        return field;
    }
    // Where an offset's sign is, after the seconds and any fraction.
    let sign = b[19..]
        .iter()
        .position(|c| matches!(c, b'+' | b'-'))
        .map(|i| i + 19);
    let short_offset = sign.map(|i| b.len() - i - 1).filter(|n| *n == 2 || *n == 4);
    if !space && short_offset.is_none() {
        return field;
    }
    let mut len = 0;
    let mut push = |c: u8| {
        buf[len] = c;
        len += 1;
    };
    for (i, &c) in b.iter().enumerate() {
        if i == 10 && space {
            push(b'T');
        } else if short_offset == Some(4) && sign.is_some_and(|s| i == s + 3) {
            push(b':');
            push(c);
        } else {
            push(c);
        }
    }
    if short_offset == Some(2) {
        push(b':');
        push(b'0');
        push(b'0');
    }
    // Only ASCII was copied, with ASCII inserted.
    std::str::from_utf8(&buf[..len]).unwrap_or(field)
}

/// The date or time form of a text already in wire form, if it has one.
fn temporal_form(text: &str) -> Option<Temporal> {
    match text.len() {
        10 => check_date(text).ok().map(|()| Temporal::Date),
        8..=15 => check_time(text).ok().map(|()| Temporal::Time),
        _ if check_timestamp(text).is_ok() => Some(Temporal::Timestamp),
        _ if check_timestamptz(text).is_ok() => Some(Temporal::TimestampTz),
        _ => None,
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
            // A decimal goes as a JSON number when it is written as one and
            // fits its precision and scale.
            FieldType::Decimal(ps) => logical::check_decimal(field, ps).is_ok(),
            t => {
                let mut buf = [0u8; CANONICAL_MAX];
                let (field, checked) = match t {
                    FieldType::Date => (field, check_date(field)),
                    FieldType::Time => (field, check_time(field)),
                    FieldType::Timestamp | FieldType::TimestampTz => {
                        // The wire form, when it is the same value.
                        let canonical = canonical_temporal(field, &mut buf);
                        let checked = if t == FieldType::Timestamp {
                            check_timestamp(canonical)
                        } else {
                            check_timestamptz(canonical)
                        };
                        (if checked.is_ok() { canonical } else { field }, checked)
                    }
                    FieldType::Uuid => (field, logical::check_uuid(field)),
                    _ => (field, logical::decode_bytes(field).map(drop)),
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
        assert_eq!(guess(&["1", "2.5", "0.25"]), FieldType::Float);
        assert_eq!(guess(&["9223372036854775807"]), FieldType::Integer);
        assert_eq!(guess(&["9223372036854775808"]), FieldType::Text);
        assert_eq!(guess(&["-9223372036854775808"]), FieldType::Integer);
        assert_eq!(guess(&["-9223372036854775809"]), FieldType::Text);
        assert_eq!(guess(&["1000000000000000000"]), FieldType::Integer);
        assert_eq!(guess(&["10000000000000000000"]), FieldType::Text);
        assert_eq!(guess(&["0.1234567890123456", "0.5"]), FieldType::Text);
        assert_eq!(guess(&["true", "FALSE"]), FieldType::Boolean);
        assert_eq!(guess(&["1", "true"]), FieldType::Text);
        assert_eq!(guess(&["", ""]), FieldType::Text);
        assert_eq!(guess(&["+1"]), FieldType::Text);
        assert_eq!(guess(&["-0"]), FieldType::Text);
        assert_eq!(guess(&["1e5"]), FieldType::Text);
        assert_eq!(guess(&["2026-11-01", "x"]), FieldType::Text);
    }

    #[test]
    fn fixed_scale_numbers_are_decimals() {
        let d = |p, s| FieldType::Decimal(Some((p, s)));
        assert_eq!(guess(&["12.50", "0.10", "", "-3.00"]), d(15, 2));
        assert_eq!(guess(&["12.50", "7"]), d(15, 2));
        assert_eq!(guess(&["0.5"]), d(15, 1));
        assert_eq!(guess(&["1234567890123.50"]), d(15, 2));
        assert_eq!(guess(&["12345678901234.50"]), d(18, 2));
        assert_eq!(guess(&["1234567890123456.50"]), d(18, 2));
        assert_eq!(guess(&["12345678901234567.50"]), d(38, 2));
        // More digits than a float holds, one scale: exact as a decimal.
        assert_eq!(guess(&["0.1234567890123456"]), d(18, 16));
        // Varying digits after the point: a float when exact, else text.
        assert_eq!(guess(&["1.5", "2.25"]), FieldType::Float);
        assert_eq!(guess(&["1.5", "0.1234567890123456"]), FieldType::Text);
        assert_eq!(guess(&["01.50"]), FieldType::Text);
        assert_eq!(guess(&["1.50", "1e5"]), FieldType::Text);
        assert_eq!(guess(&["1.50", "n/a"]), FieldType::Text);
    }

    #[test]
    fn iso_dates_and_times_are_their_types() {
        assert_eq!(guess(&["2024-02-29", "", "0001-01-01"]), FieldType::Date);
        assert_eq!(guess(&["2023-02-29"]), FieldType::Text);
        assert_eq!(guess(&["13:04:05", "00:00:00.123456"]), FieldType::Time);
        assert_eq!(
            guess(&["2024-01-02T03:04:05", "2024-01-02 03:04:05.5"]),
            FieldType::Timestamp
        );
        assert_eq!(
            guess(&[
                "2024-01-02T03:04:05Z",
                "2024-01-02 03:04:05+05:30",
                "2024-01-02 03:04:05.25-08"
            ]),
            FieldType::TimestampTz
        );
        // One form per column: a date among timestamps, or an instant among
        // naive timestamps, leaves the column text.
        assert_eq!(
            guess(&["2024-01-02", "2024-01-02T03:04:05"]),
            FieldType::Text
        );
        assert_eq!(
            guess(&["2024-01-02T03:04:05", "2024-01-02T03:04:05Z"]),
            FieldType::Text
        );
        assert_eq!(guess(&["2024-01-02", "20240102"]), FieldType::Text);
        assert_eq!(guess(&["03:04"]), FieldType::Text);
    }

    #[test]
    fn timestamps_are_written_in_wire_form() {
        let mut out = Vec::new();
        let tz = Typed(FieldType::TimestampTz);
        assert_eq!(tz.encode("2024-01-02 03:04:05+00", &mut out), Encoded::Fits);
        assert_eq!(out, b"\"2024-01-02T03:04:05+00:00\"");
        out.clear();
        assert_eq!(
            tz.encode("2024-01-02 03:04:05.123-0830", &mut out),
            Encoded::Fits
        );
        assert_eq!(out, b"\"2024-01-02T03:04:05.123-08:30\"");
        out.clear();
        assert_eq!(
            tz.encode("2024-01-02 03:04:05", &mut out),
            Encoded::Mismatch
        );
        assert_eq!(out, b"\"2024-01-02 03:04:05\"");
        out.clear();
        let naive = Typed(FieldType::Timestamp);
        assert_eq!(naive.encode("2024-01-02 03:04:05", &mut out), Encoded::Fits);
        assert_eq!(out, b"\"2024-01-02T03:04:05\"");
        out.clear();
        let dec = Typed(FieldType::Decimal(Some((18, 2))));
        assert_eq!(dec.encode("12.500", &mut out), Encoded::Fits);
        assert_eq!(out, b"12.500");
        out.clear();
        assert_eq!(dec.encode("-0.25", &mut out), Encoded::Fits);
        out.clear();
        assert_eq!(dec.encode("12.505", &mut out), Encoded::Mismatch);
        out.clear();
        assert_eq!(dec.encode("1234567890123456.5", &mut out), Encoded::Fits);
        out.clear();
        assert_eq!(
            dec.encode("12345678901234567.5", &mut out),
            Encoded::Mismatch
        );
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
