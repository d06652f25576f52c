//! Dates, times and instants as numbers, from and back to their wire forms
//! (see `logical`): a filter compares `2024-01-01T10:00:00+02:00` and
//! `2024-01-01T09:00:00Z` as the instants they name, and `--sql` holds
//! them in typed columns. Values are checked by the `logical` functions
//! first, so what is read here is known to be well formed.
//!
//! Written back, fractions lose their trailing zeros and instants are in
//! UTC with `+00:00`, as the PostgreSQL source writes them
//! (`2024-01-02T03:04:05.5+00:00`).

use super::logical::{check_date, check_time, check_timestamp, check_timestamptz};
use crate::calendar::{civil as civil_from_days, days_from_civil};

/// Microseconds in a day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// ASCII digits as a number (the caller knows they are digits).
fn number(digits: &[u8]) -> i64 {
    digits
        .iter()
        .fold(0, |n, d| n * 10 + i64::from(d.wrapping_sub(b'0')))
}

/// The days since 1970-01-01 of a well-formed `YYYY-MM-DD` at the start.
fn days_at(b: &[u8]) -> i64 {
    days_from_civil(
        number(&b[0..4]),
        number(&b[5..7]) as u32,
        number(&b[8..10]) as u32,
    )
}

/// The microseconds since midnight of a well-formed `HH:MM:SS[.ffffff]`
/// at the start of `b`, and what follows it.
fn micros_at(b: &[u8]) -> (i64, &[u8]) {
    let seconds = number(&b[0..2]) * 3600 + number(&b[3..5]) * 60 + number(&b[6..8]);
    let mut micros = seconds * 1_000_000;
    let mut rest = &b[8..];
    if let [b'.', frac @ ..] = rest {
        let n = frac.iter().take_while(|d| d.is_ascii_digit()).count();
        micros += number(&frac[..n]) * 10i64.pow(6 - n as u32);
        rest = &frac[n..];
    }
    (micros, rest)
}

/// A date as days since 1970-01-01; `None` when it is not one.
pub fn date_days(s: &str) -> Option<i64> {
    check_date(s).ok()?;
    Some(days_at(s.as_bytes()))
}

/// A time of day as microseconds since midnight; `None` when it is not one.
pub fn time_micros(s: &str) -> Option<i64> {
    check_time(s).ok()?;
    Some(micros_at(s.as_bytes()).0)
}

/// A timestamp without zone as microseconds since 1970-01-01T00:00:00;
/// `None` when it is not one.
pub fn timestamp_micros(s: &str) -> Option<i64> {
    check_timestamp(s).ok()?;
    let b = s.as_bytes();
    Some(days_at(b) * MICROS_PER_DAY + micros_at(&b[11..]).0)
}

/// An instant as microseconds since 1970-01-01T00:00:00Z, its offset
/// applied; `None` when it is not one.
pub fn instant_micros(s: &str) -> Option<i64> {
    check_timestamptz(s).ok()?;
    let b = s.as_bytes();
    let (micros, offset) = micros_at(&b[11..]);
    let local = days_at(b) * MICROS_PER_DAY + micros;
    let shift = match offset {
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let minutes = number(&[*h1, *h2]) * 60 + number(&[*m1, *m2]);
            let shift = minutes * 60_000_000;
            if *sign == b'+' { shift } else { -shift }
        }
        // Z or z.
        _ => 0,
    };
    Some(local - shift)
}

/// Appends `.ffffff` without trailing zeros (nothing for whole seconds).
fn push_fraction(out: &mut String, micros: i64) {
    if micros == 0 {
        return;
    }
    let digits = format!("{micros:06}");
    out.push('.');
    out.push_str(digits.trim_end_matches('0'));
}

/// `2024-02-29` for days since 1970-01-01; `None` outside years 1 to 9999,
/// which the wire's dates do not reach.
pub fn format_date(days: i64) -> Option<String> {
    let (year, month, day) = civil_from_days(days);
    (1..=9999)
        .contains(&year)
        .then(|| format!("{year:04}-{month:02}-{day:02}"))
}

/// `13:04:05.5` for microseconds since midnight; `None` outside one day.
pub fn format_time(micros: i64) -> Option<String> {
    if !(0..MICROS_PER_DAY).contains(&micros) {
        return None;
    }
    let seconds = micros / 1_000_000;
    let mut out = format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    push_fraction(&mut out, micros % 1_000_000);
    Some(out)
}

/// `2024-01-02T03:04:05.5` for microseconds since 1970-01-01T00:00:00;
/// `None` outside years 1 to 9999.
pub fn format_timestamp(micros: i64) -> Option<String> {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let mut out = format_date(days)?;
    out.push('T');
    out.push_str(&format_time(micros.rem_euclid(MICROS_PER_DAY))?);
    Some(out)
}

/// `2024-01-02T03:04:05.5+00:00` for microseconds since the epoch (UTC).
pub fn format_instant(micros: i64) -> Option<String> {
    let mut out = format_timestamp(micros)?;
    out.push_str("+00:00");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        for days in [-719_162, -1, 0, 59, 11_016, 19_782, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(format_date(-719_162).as_deref(), Some("0001-01-01"));
        assert_eq!(format_date(2_932_896).as_deref(), Some("9999-12-31"));
        assert_eq!(format_date(2_932_897), None);
        assert_eq!(format_date(-719_163), None);
    }

    #[test]
    fn wire_forms_read_and_write() {
        assert_eq!(date_days("2024-02-29"), Some(19_782));
        assert_eq!(date_days("2023-02-29"), None);
        assert_eq!(time_micros("00:00:01.5"), Some(1_500_000));
        assert_eq!(format_time(1_500_000).as_deref(), Some("00:00:01.5"));
        assert_eq!(format_time(MICROS_PER_DAY), None);
        let ts = "2024-01-02T03:04:05.123456";
        assert_eq!(
            format_timestamp(timestamp_micros(ts).unwrap()).as_deref(),
            Some(ts)
        );
        assert_eq!(timestamp_micros("2024-01-02T03:04:05Z"), None);
        let a = instant_micros("2024-01-01T10:00:00+02:00").unwrap();
        let b = instant_micros("2024-01-01T09:00:00Z").unwrap();
        assert!(a < b);
        assert_eq!(
            instant_micros("2024-01-01T08:00:00+00:00"),
            Some(a),
            "the same instant"
        );
        assert_eq!(
            instant_micros("2023-12-31T20:30:00-03:30"),
            instant_micros("2024-01-01T00:00:00Z")
        );
        assert_eq!(
            format_instant(instant_micros("2024-01-02T05:34:05.5+02:30").unwrap()).as_deref(),
            Some("2024-01-02T03:04:05.5+00:00")
        );
        assert_eq!(
            format_timestamp(-1).as_deref(),
            Some("1969-12-31T23:59:59.999999")
        );
        assert_eq!(instant_micros("2024-01-02T03:04:05"), None);
    }
}
