//! The wire forms of the logical types as Parquet's physical values: a
//! date as days since 1970-01-01, a time as microseconds since midnight, a
//! timestamp as microseconds since 1970-01-01T00:00:00 (an instant's
//! offset taken off, so it counts in UTC), a decimal as its unscaled
//! integer, a uuid as its 16 bytes. Each takes text the checks of
//! `format::logical` accepted; `None` for anything else.

use crate::calendar::days_from_civil;
use crate::format::logical::DecimalParts;

fn number(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
}

/// `2024-02-29` as days since 1970-01-01.
pub fn date_days(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let days = days_from_civil(
        number(&b[..4])?,
        u32::try_from(number(&b[5..7])?).ok()?,
        u32::try_from(number(&b[8..10])?).ok()?,
    );
    i32::try_from(days).ok()
}

/// `13:04:05.123456` as microseconds since midnight; the rest of `s`
/// after the time.
fn time_prefix(s: &[u8]) -> Option<(i64, &[u8])> {
    if s.len() < 8 || s[2] != b':' || s[5] != b':' {
        return None;
    }
    let secs = number(&s[..2])? * 3600 + number(&s[3..5])? * 60 + number(&s[6..8])?;
    let mut micros = secs * 1_000_000;
    let mut rest = &s[8..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 6 {
            return None;
        }
        micros += number(&frac[..n])? * 10i64.pow(6 - n as u32);
        rest = &frac[n..];
    }
    Some((micros, rest))
}

/// `13:04:05.123456` as microseconds since midnight.
pub fn time_micros(s: &str) -> Option<i64> {
    match time_prefix(s.as_bytes())? {
        (micros, []) => Some(micros),
        _ => None,
    }
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A timestamp (`2024-01-02T03:04:05.123456`, with an offset when `tz`)
/// as microseconds since 1970-01-01T00:00:00 (in UTC when `tz`).
pub fn timestamp_micros(s: &str, tz: bool) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[10] != b'T' {
        return None;
    }
    let days = i64::from(date_days(&s[..10])?);
    let (micros, rest) = time_prefix(&b[11..])?;
    let local = days * MICROS_PER_DAY + micros;
    if !tz {
        return rest.is_empty().then_some(local);
    }
    let offset_minutes = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let minutes = number(&[*h1, *h2])? * 60 + number(&[*m1, *m2])?;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    Some(local - offset_minutes * 60_000_000)
}

/// A decimal number's text (JSON syntax, an exponent allowed) as the
/// integer `n * 10^scale`; `None` when that is not a whole number or does
/// not fit 128 bits.
pub fn decimal_unscaled(n: &str, scale: u16) -> Option<i128> {
    let DecimalParts {
        negative,
        int,
        frac,
        exponent,
    } = DecimalParts::of(n)?;
    // The digits, and how many of them come after the point.
    let digits = format!("{int}{frac}");
    let after = frac.len() as i64 - exponent;
    let shift = i64::from(scale) - after;
    let mut value: i128 = 0;
    let kept = if shift >= 0 {
        digits.as_str()
    } else {
        // Digits past the scale must be zeros.
        let cut = digits.len().checked_sub(usize::try_from(-shift).ok()?)?;
        if !digits[cut..].bytes().all(|d| d == b'0') {
            return None;
        }
        &digits[..cut]
    };
    for d in kept.bytes() {
        value = value.checked_mul(10)?.checked_add(i128::from(d - b'0'))?;
    }
    if shift > 0 {
        value = value.checked_mul(10i128.checked_pow(u32::try_from(shift).ok()?)?)?;
    }
    Some(if negative { -value } else { value })
}

/// The bytes of a FIXED_LEN_BYTE_ARRAY decimal of this precision (the
/// fewest that hold every value of it, as the Parquet spec asks).
pub fn decimal_len(precision: u16) -> usize {
    let max = 10u128.pow(u32::from(precision).min(38)) - 1;
    (1..=16).find(|n| max < 1u128 << (8 * n - 1)).unwrap_or(16)
}

/// An unscaled decimal as `len` big-endian two's complement bytes.
pub fn decimal_bytes(value: i128, len: usize) -> Vec<u8> {
    value.to_be_bytes()[16 - len.min(16)..].to_vec()
}

/// A uuid's 16 bytes from its canonical text (36 characters, no braces).
pub fn uuid_bytes(s: &str) -> Option<[u8; 16]> {
    if s.len() != 36 || s.contains(['{', '}']) {
        return None;
    }
    crate::format::logical::uuid_bytes(s)
}

/// A uuid's canonical text (lowercase) from its 16 bytes.
pub fn uuid_text(bytes: &[u8]) -> Option<String> {
    if bytes.len() != 16 {
        return None;
    }
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{b:02x}"));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::civil;

    #[test]
    fn days_invert_the_calendar() {
        for days in [-719_162, -1, 0, 1, 19_782, 2_932_896] {
            let (y, m, d) = civil(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(date_days("1970-01-01"), Some(0));
        assert_eq!(date_days("0001-01-01"), Some(-719_162));
        assert_eq!(date_days("9999-12-31"), Some(2_932_896));
        assert_eq!(date_days("2024-02-29"), Some(19_782));
    }

    #[test]
    fn times_and_timestamps_count_microseconds() {
        assert_eq!(time_micros("00:00:00"), Some(0));
        assert_eq!(time_micros("23:59:59.999999"), Some(MICROS_PER_DAY - 1));
        assert_eq!(time_micros("01:02:03.5"), Some(3_723_500_000));
        assert_eq!(time_micros("01:02:03.1234567"), None);
        assert_eq!(
            timestamp_micros("1970-01-01T00:00:00.000001", false),
            Some(1)
        );
        assert_eq!(timestamp_micros("1970-01-01T00:00:00Z", false), None);
        assert_eq!(timestamp_micros("1970-01-01T00:00:00Z", true), Some(0));
        assert_eq!(timestamp_micros("1970-01-01T05:30:00+05:30", true), Some(0));
        assert_eq!(timestamp_micros("1969-12-31T23:00:00-01:00", true), Some(0));
        assert_eq!(timestamp_micros("1970-01-01T00:00:00", true), None);
        assert_eq!(
            timestamp_micros("0001-01-01T00:00:00", false),
            Some(-719_162 * MICROS_PER_DAY)
        );
    }

    #[test]
    fn decimals_scale_exactly() {
        assert_eq!(decimal_unscaled("12.50", 2), Some(1250));
        assert_eq!(decimal_unscaled("12.5", 2), Some(1250));
        assert_eq!(decimal_unscaled("-0.10", 2), Some(-10));
        assert_eq!(decimal_unscaled("12.505", 2), None);
        assert_eq!(decimal_unscaled("12.500", 2), Some(1250));
        assert_eq!(decimal_unscaled("1.5e2", 0), Some(150));
        assert_eq!(decimal_unscaled("15e-1", 1), Some(15));
        assert_eq!(decimal_unscaled("0", 3), Some(0));
        let d38 = "9999999999999999999999999999.9999999999";
        assert_eq!(
            decimal_unscaled(d38, 10),
            Some(99_999_999_999_999_999_999_999_999_999_999_999_999)
        );
        assert_eq!(decimal_len(9), 4);
        assert_eq!(decimal_len(18), 8);
        assert_eq!(decimal_len(19), 9);
        assert_eq!(decimal_len(38), 16);
        assert_eq!(decimal_bytes(-1, 3), vec![0xff, 0xff, 0xff]);
        assert_eq!(decimal_bytes(258, 2), vec![1, 2]);
    }

    #[test]
    fn uuids_round_trip() {
        let text = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        let bytes = uuid_bytes(text).unwrap();
        assert_eq!(bytes[0], 0xa0);
        assert_eq!(uuid_text(&bytes).unwrap(), text);
        assert_eq!(
            uuid_text(&uuid_bytes(&text.to_uppercase()).unwrap()).unwrap(),
            text
        );
        assert_eq!(uuid_bytes("a0eebc999c0b4ef8bb6d6bb9bd380a11"), None);
    }
}
