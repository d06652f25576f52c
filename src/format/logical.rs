//! The wire forms of the logical types (wire version 2), in one place:
//! what a valid date, time, timestamp, instant, decimal, uuid or bytes value
//! looks like on the wire, and the reason when one is not.
//!
//! - date: `2024-02-29` (years 0001 to 9999)
//! - time: `13:04:05`, with up to six fraction digits (`13:04:05.123456`)
//! - timestamp (no zone): `2024-01-02T03:04:05.123456`
//! - timestamptz (an instant): a timestamp with `Z` or an offset
//!   (`+05:30`, `-00:00`); sources write UTC with `Z`
//! - decimal: a JSON number written verbatim (never through a float)
//! - uuid: canonical text, `8-4-4-4-12` hex digits (sources write lowercase)
//! - bytes: standard base64 with padding (`""` for no bytes)

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::typing::is_number_text;

/// Reads `n` ASCII digits at the start of `s` as a number, and the rest.
fn digits(s: &[u8], n: usize) -> Option<(u32, &[u8])> {
    if s.len() < n || !s[..n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = s[..n]
        .iter()
        .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
    Some((value, &s[n..]))
}

fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

/// The days in `month` of `year`.
fn month_days(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A `YYYY-MM-DD` at the start of `s` with a day of 1 to 28 (every month
/// has it) and a year past 0: the common date, checked in one pass.
#[inline]
fn common_date(s: &[u8]) -> bool {
    let d = |i: usize| s[i].wrapping_sub(b'0');
    s.len() >= 10
        && s[4] == b'-'
        && s[7] == b'-'
        && [0, 1, 2, 3, 5, 6, 8, 9].iter().all(|&i| d(i) <= 9)
        && (d(0) | d(1) | d(2) | d(3)) != 0
        && matches!(d(5) * 10 + d(6), 1..=12)
        && matches!(d(8) * 10 + d(9), 1..=28)
}

/// Reads a `YYYY-MM-DD` date at the start of `s`; the rest.
fn date_prefix(s: &[u8]) -> Result<&[u8], String> {
    if common_date(s) {
        return Ok(&s[10..]);
    }
    let shape = || "is not a date in the form YYYY-MM-DD".to_string();
    let (year, rest) = digits(s, 4).ok_or_else(shape)?;
    let rest = rest.strip_prefix(b"-").ok_or_else(shape)?;
    let (month, rest) = digits(rest, 2).ok_or_else(shape)?;
    let rest = rest.strip_prefix(b"-").ok_or_else(shape)?;
    let (day, rest) = digits(rest, 2).ok_or_else(shape)?;
    if year == 0 {
        return Err("has year 0, which the calendar does not have".into());
    }
    if !(1..=12).contains(&month) {
        return Err(format!("has month {month}"));
    }
    if day == 0 || day > month_days(year, month) {
        return Err(format!("has no day {day} in {year:04}-{month:02}"));
    }
    Ok(rest)
}

/// Reads a `HH:MM:SS[.ffffff]` time at the start of `s`; the rest.
fn time_prefix(s: &[u8]) -> Result<&[u8], String> {
    let d = |i: usize| s[i].wrapping_sub(b'0');
    if s.len() >= 8
        && s[2] == b':'
        && s[5] == b':'
        && [0, 1, 3, 4, 6, 7].iter().all(|&i| d(i) <= 9)
        && d(0) * 10 + d(1) <= 23
        && d(3) <= 5
        && d(6) <= 5
        && s.get(8) != Some(&b'.')
    {
        // Whole seconds, the common case; a fraction takes the long way.
        return Ok(&s[8..]);
    }
    let shape = || "is not a time in the form HH:MM:SS[.ffffff]".to_string();
    let (hour, rest) = digits(s, 2).ok_or_else(shape)?;
    let rest = rest.strip_prefix(b":").ok_or_else(shape)?;
    let (minute, rest) = digits(rest, 2).ok_or_else(shape)?;
    let rest = rest.strip_prefix(b":").ok_or_else(shape)?;
    let (second, mut rest) = digits(rest, 2).ok_or_else(shape)?;
    if hour > 23 || minute > 59 || second > 59 {
        return Err(format!("has no time {hour:02}:{minute:02}:{second:02}"));
    }
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return Err(shape());
        }
        if n > 6 {
            return Err("has more than six fraction digits (microseconds)".into());
        }
        rest = &frac[n..];
    }
    Ok(rest)
}

/// Reads a UTC offset (`Z`, `+05:30`, `-00:00`) that ends `s`.
fn offset(s: &[u8]) -> Result<(), String> {
    let shape = || "has no UTC offset (Z or +HH:MM)".to_string();
    if s == b"Z" || s == b"z" {
        return Ok(());
    }
    let rest = s
        .strip_prefix(b"+")
        .or_else(|| s.strip_prefix(b"-"))
        .ok_or_else(shape)?;
    let (hours, rest) = digits(rest, 2).ok_or_else(shape)?;
    let rest = rest.strip_prefix(b":").ok_or_else(shape)?;
    let (minutes, rest) = digits(rest, 2).ok_or_else(shape)?;
    if !rest.is_empty() {
        return Err(shape());
    }
    if hours > 15 || minutes > 59 {
        return Err(format!("has offset {hours:02}:{minutes:02}, beyond ±15:59"));
    }
    Ok(())
}

fn done(rest: &[u8], what: &str) -> Result<(), String> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(format!("is not a {what}: unexpected text after it"))
    }
}

/// Checks a date (`2024-02-29`).
pub fn check_date(s: &str) -> Result<(), String> {
    done(date_prefix(s.as_bytes())?, "date")
}

/// Checks a time of day (`13:04:05.123456`).
pub fn check_time(s: &str) -> Result<(), String> {
    done(time_prefix(s.as_bytes())?, "time")
}

/// Reads the date, separator and time of a timestamp; what follows.
fn timestamp_prefix(s: &[u8], lenient_separator: bool) -> Result<&[u8], String> {
    let rest = date_prefix(s)?;
    let rest = match rest.first() {
        Some(b'T') => &rest[1..],
        Some(b' ') if lenient_separator => &rest[1..],
        _ => return Err("is not a timestamp in the form YYYY-MM-DDTHH:MM:SS[.ffffff]".into()),
    };
    time_prefix(rest)
}

/// Checks a timestamp without a zone (`2024-01-02T03:04:05.123456`).
pub fn check_timestamp(s: &str) -> Result<(), String> {
    let rest = timestamp_prefix(s.as_bytes(), false)?;
    if !rest.is_empty() && offset(rest).is_ok() {
        return Err("carries a UTC offset, which a timestamp without zone does not have".into());
    }
    done(rest, "timestamp")
}

/// Checks an instant (`2024-01-02T03:04:05.123456Z`, `...+05:30`).
pub fn check_timestamptz(s: &str) -> Result<(), String> {
    let rest = timestamp_prefix(s.as_bytes(), false)?;
    offset(rest)
}

/// How a date or time text that a database also reads in other spellings
/// fares: `Ok(true)` a valid value in the wire form (a space in place of
/// the `T` allowed, and for `tz` a missing offset), `Ok(false)` not in the
/// wire form (`infinity`, `Jan 2 2024`, `03:04`, an offset `-05`: left to
/// the database), and the reason when it has the form of a date or time
/// that does not exist (`2024-02-30`, `25:00:00`) or, for a timestamp
/// without zone, carries an offset the column would drop.
pub fn check_iso_like(kind: Temporal, s: &str) -> Result<bool, String> {
    // A shape error leaves the text to the database; a range error is final.
    fn split(r: Result<&[u8], String>) -> Result<Option<&[u8]>, String> {
        match r {
            Ok(rest) => Ok(Some(rest)),
            Err(e) if e.starts_with("is not") => Ok(None),
            Err(e) => Err(e),
        }
    }
    let b = s.as_bytes();
    if kind == Temporal::Time {
        return Ok(split(time_prefix(b))?.is_some_and(<[u8]>::is_empty));
    }
    let Some(rest) = split(date_prefix(b))? else {
        return Ok(false);
    };
    if kind == Temporal::Date || rest.is_empty() {
        return Ok(rest.is_empty());
    }
    let Some(rest) = rest.strip_prefix(b"T").or_else(|| rest.strip_prefix(b" ")) else {
        return Ok(false);
    };
    let Some(rest) = split(time_prefix(rest))? else {
        return Ok(false);
    };
    let offset_like = rest.first().is_some_and(|c| b"+-Zz".contains(c));
    match kind {
        Temporal::Timestamp if offset_like => Err(
            "carries a UTC offset, which a timestamp without time zone column would drop".into(),
        ),
        _ if rest.is_empty() => Ok(true),
        Temporal::TimestampTz if offset(rest).is_ok() => Ok(true),
        _ => Ok(false),
    }
}

/// The date and time types, for [`check_iso_like`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Temporal {
    /// date
    Date,
    /// time of day
    Time,
    /// timestamp without zone
    Timestamp,
    /// timestamp with time zone
    TimestampTz,
}

/// Checks a uuid in canonical form (`8-4-4-4-12` hex digits, either case).
pub fn check_uuid(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let ok = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
    if ok {
        Ok(())
    } else {
        Err("is not a uuid (8-4-4-4-12 hex digits)".into())
    }
}

/// The 16 bytes of a uuid written as 32 hex digits, with any `-`, `{` or
/// `}` among them (the spellings PostgreSQL's uuid input reads); `None`
/// for anything else. No allocation: it runs for every uuid loaded.
pub fn uuid_bytes(s: &str) -> Option<[u8; 16]> {
    let mut bytes = [0u8; 16];
    let mut n = 0;
    for c in s.bytes().filter(|b| !matches!(b, b'-' | b'{' | b'}')) {
        let digit = (c as char).to_digit(16)? as u8;
        let slot = bytes.get_mut(n / 2)?;
        *slot = *slot << 4 | digit;
        n += 1;
    }
    (n == 32).then_some(bytes)
}

/// A number's text (JSON syntax, an exponent allowed) taken apart: its
/// sign, the digits before and after the point, and the exponent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecimalParts<'a> {
    /// A leading `-`.
    pub negative: bool,
    /// The digits before the point.
    pub int: &'a str,
    /// The digits after the point (empty when there is none).
    pub frac: &'a str,
    /// The power of ten after `e` or `E` (0 when there is none).
    pub exponent: i64,
}

impl DecimalParts<'_> {
    /// The parts of `n`, already known to be a number; `None` when its
    /// exponent does not fit 64 bits.
    pub fn of(n: &str) -> Option<DecimalParts<'_>> {
        let (negative, unsigned) = match n.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, n),
        };
        let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
            Some((m, e)) => (m, e.parse::<i64>().ok()?),
            None => (unsigned, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        Some(DecimalParts {
            negative,
            int,
            frac,
            exponent,
        })
    }
}

/// Checks a decimal: a JSON number (or text written as one) that has at
/// most `scale` digits after the point and `precision - scale` before it,
/// when those are declared.
pub fn check_decimal(n: &str, declared: Option<(u16, u16)>) -> Result<(), String> {
    if let Some((precision, scale)) = declared
        && let Some(d) = plain_decimal(n)
    {
        // The common form (`-12.50`), read in one pass.
        return digits_fit(d.int as i64, d.needed as i64, precision, scale);
    }
    if !is_number_text(n) {
        return Err("is not a decimal number".into());
    }
    let Some((precision, scale)) = declared else {
        return Ok(());
    };
    let Some(DecimalParts {
        int,
        frac,
        exponent,
        ..
    }) = DecimalParts::of(n).filter(|p| p.exponent.abs() <= 100_000)
    else {
        return Err("has an exponent out of range".into());
    };
    // The digits of int then frac, as one run, without joining them.
    let all = || int.bytes().chain(frac.bytes());
    let point = int.len() as i64 + exponent;
    let leading = all().take_while(|&b| b == b'0').count() as i64;
    let len = (int.len() + frac.len()) as i64;
    if leading == len {
        return Ok(());
    }
    let trailing = frac
        .bytes()
        .rev()
        .chain(int.bytes().rev())
        .take_while(|&b| b == b'0')
        .count() as i64;
    let int_digits = (point - leading).max(0);
    let scale_needed = (len - trailing - point).max(0);
    digits_fit(int_digits, scale_needed, precision, scale)
}

/// The digits of a plain decimal, `-?(0|[1-9][0-9]*)(.[0-9]+)?` without an
/// exponent (not `+1`, `1e5`, `.5`, `01.5`, `1.`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlainDecimal {
    /// Before the point, leading zeros not counted (`0.5` has none).
    pub int: usize,
    /// After the point as written (`12.50` has 2).
    pub frac: usize,
    /// After the point without trailing zeros (`12.50` needs 1).
    pub needed: usize,
}

/// The digits of `n` when it is a plain decimal; `None` for other text.
pub fn plain_decimal(n: &str) -> Option<PlainDecimal> {
    let b = n.strip_prefix('-').unwrap_or(n).as_bytes();
    let int = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if int == 0 || (int > 1 && b[0] == b'0') {
        return None;
    }
    let frac = match &b[int..] {
        [] => &b[int..],
        [b'.', rest @ ..] if !rest.is_empty() && rest.iter().all(u8::is_ascii_digit) => rest,
        _ => return None,
    };
    Some(PlainDecimal {
        int: if b[0] == b'0' { 0 } else { int },
        frac: frac.len(),
        needed: frac.len() - frac.iter().rev().take_while(|&&c| c == b'0').count(),
    })
}

/// Does a number of `int_digits` before the point and `scale_needed`
/// after it fit `decimal(precision, scale)`?
fn digits_fit(
    int_digits: i64,
    scale_needed: i64,
    precision: u16,
    scale: u16,
) -> Result<(), String> {
    let (p, s) = (i64::from(precision), i64::from(scale));
    if scale_needed > s {
        return Err(format!(
            "has {scale_needed} digits after the point; decimal({precision},{scale}) keeps {scale}"
        ));
    }
    if int_digits > p - s {
        return Err(format!(
            "has {int_digits} digits before the point; decimal({precision},{scale}) keeps {}",
            p - s
        ));
    }
    Ok(())
}

/// Decodes bytes from their wire form (standard base64, padded).
pub fn decode_bytes(s: &str) -> Result<Vec<u8>, String> {
    STANDARD
        .decode(s)
        .map_err(|e| format!("is not base64 (standard, padded): {e}"))
}

/// The wire form of bytes.
pub fn encode_bytes(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes `\x`-prefixed hex text (PostgreSQL's bytea output, and the form a
/// binary column is extracted as before the wire typed bytes); `None` when
/// `s` is not such text.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let hex = s.strip_prefix("\\x")?;
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert!(check_date("2024-02-29").is_ok());
        assert!(check_date("0001-01-01").is_ok());
        assert!(check_date("9999-12-31").is_ok());
        assert!(check_date("2000-02-29").is_ok());
        assert!(check_date("2023-02-29").unwrap_err().contains("no day 29"));
        assert!(check_date("1900-02-29").is_err());
        assert!(check_date("2024-02-30").is_err());
        assert!(check_date("2024-04-31").is_err());
        assert!(check_date("2024-13-01").is_err());
        assert!(check_date("0000-01-01").is_err());
        assert!(check_date("2024-1-01").is_err());
        assert!(check_date("10000-01-01").is_err());
        assert!(check_date("2024-01-01T00:00:00").is_err());
        assert!(check_date("").is_err());
    }

    #[test]
    fn times() {
        assert!(check_time("13:04:05").is_ok());
        assert!(check_time("13:04:05.123456").is_ok());
        assert!(check_time("00:00:00.1").is_ok());
        assert!(check_time("23:59:59.999999").is_ok());
        assert!(check_time("24:00:00").is_err());
        assert!(check_time("13:60:00").is_err());
        assert!(check_time("13:04:05.1234567").is_err());
        assert!(check_time("13:04:05.").is_err());
        assert!(check_time("13:04").is_err());
        assert!(check_time("13:04:05Z").is_err());
    }

    #[test]
    fn timestamps() {
        assert!(check_timestamp("2024-01-02T03:04:05.123456").is_ok());
        assert!(check_timestamp("0001-01-01T00:00:00").is_ok());
        assert!(check_timestamp("9999-12-31T23:59:59.999999").is_ok());
        assert!(check_timestamp("2024-01-02 03:04:05").is_err());
        assert!(
            check_timestamp("2024-01-02T03:04:05Z")
                .unwrap_err()
                .contains("offset")
        );
        assert!(check_timestamp("2023-02-29T00:00:00").is_err());
    }

    #[test]
    fn instants() {
        for ok in [
            "2024-01-02T03:04:05.123456Z",
            "2024-01-02T03:04:05+05:30",
            "2024-01-02T03:04:05+00:00",
            "2024-01-02T03:04:05-00:00",
            "2024-02-29T23:59:59.5-08:00",
        ] {
            assert!(check_timestamptz(ok).is_ok(), "{ok}");
        }
        for bad in [
            "2024-01-02T03:04:05",
            "2024-01-02T03:04:05+0530",
            "2024-01-02T03:04:05+16:00",
            "2024-01-02T03:04:05 Z",
            "2024-02-30T03:04:05Z",
        ] {
            assert!(check_timestamptz(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn iso_like_leaves_other_spellings_to_the_database() {
        use Temporal::*;
        assert_eq!(check_iso_like(Date, "infinity"), Ok(false));
        assert_eq!(check_iso_like(Date, "Jan 2 2024"), Ok(false));
        assert_eq!(check_iso_like(Date, "2024-02-29"), Ok(true));
        assert!(check_iso_like(Date, "2024-02-30").is_err());
        assert_eq!(check_iso_like(TimestampTz, "2024-01-02 03:04:05"), Ok(true));
        assert_eq!(
            check_iso_like(TimestampTz, "2024-01-02T03:04:05Z"),
            Ok(true)
        );
        assert!(check_iso_like(Timestamp, "2024-01-02T03:04:05+01:00").is_err());
        assert!(check_iso_like(Time, "25:00:00").is_err());
        assert_eq!(check_iso_like(Time, "allballs"), Ok(false));
        assert_eq!(check_iso_like(Time, "03:04"), Ok(false));
        assert_eq!(
            check_iso_like(TimestampTz, "2024-01-02 03:04:05-05"),
            Ok(false)
        );
        assert_eq!(check_iso_like(TimestampTz, "2024-01-02"), Ok(true));
        assert!(check_iso_like(TimestampTz, "2023-02-29 00:00:00-05").is_err());
        assert!(check_iso_like(Timestamp, "2024-01-02 03:04:05-05").is_err());
    }

    #[test]
    fn decimals() {
        let digits38 = "1234567890123456789012345678.9012345678";
        assert!(check_decimal(digits38, Some((38, 10))).is_ok());
        assert!(check_decimal(digits38, None).is_ok());
        assert!(check_decimal(&format!("-{digits38}"), Some((38, 10))).is_ok());
        assert!(check_decimal(digits38, Some((38, 9))).is_err());
        assert!(check_decimal("12.50", Some((12, 2))).is_ok());
        assert!(check_decimal("12.505", Some((12, 2))).is_err());
        assert!(check_decimal("12345678901.5", Some((12, 2))).is_err());
        assert!(check_decimal("0.00", Some((1, 0))).is_ok());
        assert!(check_decimal("1.5e2", Some((3, 0))).is_ok());
        assert!(check_decimal("NaN", None).is_err());
        assert!(check_decimal("1,5", None).is_err());
        // 38 digits survive the JSON reader as written.
        let v: serde_json::Value = serde_json::from_str(digits38).unwrap();
        assert_eq!(v.to_string(), digits38);
    }

    #[test]
    fn uuids() {
        assert!(check_uuid("00000000-0000-0000-0000-000000000000").is_ok());
        assert!(check_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").is_ok());
        assert!(check_uuid("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11").is_ok());
        assert!(check_uuid("a0eebc999c0b4ef8bb6d6bb9bd380a11").is_err());
        assert!(check_uuid("g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").is_err());
    }

    #[test]
    fn bytes() {
        assert_eq!(decode_bytes(""), Ok(Vec::new()));
        assert_eq!(encode_bytes(&[]), "");
        assert_eq!(decode_bytes("3q2+7w=="), Ok(vec![0xde, 0xad, 0xbe, 0xef]));
        assert_eq!(encode_bytes(&[0xde, 0xad, 0xbe, 0xef]), "3q2+7w==");
        assert!(decode_bytes("3q2+7w").is_err());
        assert!(decode_bytes("\\xdeadbeef").is_err());
    }
}
