//! Dates and times as MySQL takes them: a calendar date with no zero month
//! or day, and date-time text checked against what a DATETIME or TIMESTAMP
//! column keeps (its fractional digits, no UTC offset it would drop),
//! turned into the server's form.

use crate::calendar::{civil, days_from_civil};

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        _ => 28,
    }
}

fn number(text: &str) -> Option<u32> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// A calendar date `YYYY-MM-DD` (no zero month or day), as (y, m, d).
pub fn parse_date(s: &str) -> Option<(u32, u32, u32)> {
    let (y, rest) = s.split_at_checked(4)?;
    let rest = rest.strip_prefix('-')?;
    let (m, rest) = rest.split_at_checked(2)?;
    let d = rest.strip_prefix('-')?;
    let (y, m, d) = (number(y)?, number(m)?, number(d)?);
    (d.to_string().len() <= 2
        && (1..=12).contains(&m)
        && (1..=days_in_month(y, m)).contains(&d)
        && y >= 1)
        .then_some((y, m, d))
}

/// Checks date-time text for a DATETIME or TIMESTAMP column and returns
/// it in the server's form (`YYYY-MM-DD HH:MM:SS[.f]`); `utc` accepts a
/// trailing `Z` or `+00:00` (the session is in UTC).
pub fn date_time(s: &str, fraction: u32, utc: bool, column: &str) -> Result<String, String> {
    let bad = || format!("text {s:?} is not a date and time a {column} column takes");
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, t),
        None => (s, "00:00:00"),
    };
    parse_date(date).ok_or_else(bad)?;
    let (time, offset) = match time.find(['Z', 'z', '+', '-']) {
        Some(i) => time.split_at(i),
        None => (time, ""),
    };
    if !offset.is_empty() {
        let is_utc = matches!(offset, "Z" | "z" | "+00:00" | "+0000" | "+00" | "-00:00");
        if !(utc && is_utc) {
            return Err(format!(
                "text {s:?} carries a UTC offset, which a {column} column would drop"
            ));
        }
    }
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let parts: Vec<&str> = hms.split(':').collect();
    let [h, m, sec] = parts.as_slice() else {
        return Err(bad());
    };
    let ok = h.len() == 2
        && m.len() == 2
        && sec.len() == 2
        && number(h).is_some_and(|h| h < 24)
        && number(m).is_some_and(|m| m < 60)
        && number(sec).is_some_and(|s| s < 60)
        && (frac.is_empty() || number(frac).is_some())
        && frac.len() <= 9;
    if !ok {
        return Err(bad());
    }
    if frac.trim_end_matches('0').len() > fraction as usize {
        return Err(format!(
            "text {s:?} has more fractional seconds than the {column} column keeps ({fraction})"
        ));
    }
    let mut out = format!("{date} {hms}");
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Ok(out)
}

/// An instant (`2024-01-02T03:04:05.5+05:30`, `...Z`) as the same instant
/// in UTC without offset (`2024-01-01T21:34:05.5`); text without an offset
/// is returned as it is (read as UTC). The reason when the UTC time falls
/// outside the years 0001 to 9999.
pub fn to_utc(s: &str) -> Result<String, String> {
    let Some((date, time)) = s.split_once(['T', ' ']) else {
        return Ok(s.to_string());
    };
    let Some(i) = time.find(['Z', 'z', '+', '-']) else {
        return Ok(s.to_string());
    };
    let (clock, offset) = time.split_at(i);
    let bad = || format!("text {s:?} is not a timestamp with a UTC offset");
    let minutes = match offset {
        "Z" | "z" => 0,
        _ => {
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            let body = &offset[1..];
            let (h, m) = match body.split_once(':') {
                Some((h, m)) => (h, m),
                None if body.len() == 4 => body.split_at(2),
                None => (body, "00"),
            };
            let (h, m) = (number(h).ok_or_else(bad)?, number(m).ok_or_else(bad)?);
            if h > 15 || m > 59 {
                return Err(bad());
            }
            sign * i64::from(h * 60 + m)
        }
    };
    let (y, mo, d) = parse_date(date).ok_or_else(bad)?;
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let parts: Vec<u32> = hms.split(':').filter_map(number).collect();
    let [h, mi, sec] = parts.as_slice() else {
        return Err(bad());
    };
    let day_minutes = i64::from(*h) * 60 + i64::from(*mi) - minutes;
    let days = days_from_civil(i64::from(y), mo, d) + day_minutes.div_euclid(1440);
    let day_minutes = day_minutes.rem_euclid(1440);
    let (y, mo, d) = civil(days);
    if !(1..=9999).contains(&y) {
        return Err(format!(
            "text {s:?} is outside the years 0001 to 9999 in UTC"
        ));
    }
    let mut out = format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{sec:02}",
        day_minutes / 60,
        day_minutes % 60
    );
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Ok(out)
}

/// Checks a value for a TIME(fraction) column: `[-]H:MM:SS[.f]` from
/// -838:59:59 to 838:59:59 (a time of day, or MySQL's wider range as a
/// MySQL source writes it), with no more fractional digits than kept.
pub fn check_mysql_time(s: &str, fraction: u32, column: &str) -> Result<(), String> {
    let bad = || format!("text {s:?} is not a time a {column} column takes");
    let body = s.strip_prefix('-').unwrap_or(s);
    let (hms, frac) = body.split_once('.').unwrap_or((body, ""));
    let parts: Vec<&str> = hms.split(':').collect();
    let [h, m, sec] = parts.as_slice() else {
        return Err(bad());
    };
    let ok = (1..=3).contains(&h.len())
        && m.len() == 2
        && sec.len() == 2
        && number(m).is_some_and(|m| m < 60)
        && number(sec).is_some_and(|s| s < 60)
        && (frac.is_empty() || number(frac).is_some())
        && frac.len() <= 9;
    let hours = number(h).ok_or_else(bad)?;
    let frac_digits = frac.trim_end_matches('0').len();
    if !ok || hours > 838 || (hours == 838 && frac_digits > 0) {
        return Err(bad());
    }
    if frac_digits > fraction as usize {
        return Err(format!(
            "text {s:?} has more fractional seconds than the {column} column keeps ({fraction})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_convert_to_utc() {
        assert_eq!(
            to_utc("2024-01-02T03:04:05.123456+05:30").unwrap(),
            "2024-01-01T21:34:05.123456"
        );
        assert_eq!(
            to_utc("2024-02-28T23:30:00-01:00").unwrap(),
            "2024-02-29T00:30:00"
        );
        assert_eq!(
            to_utc("9999-12-31T23:59:59.999999Z").unwrap(),
            "9999-12-31T23:59:59.999999"
        );
        assert_eq!(
            to_utc("0001-01-01T00:00:00-00:00").unwrap(),
            "0001-01-01T00:00:00"
        );
        assert_eq!(
            to_utc("2024-01-02T03:04:05").unwrap(),
            "2024-01-02T03:04:05"
        );
        assert!(to_utc("0001-01-01T00:00:00+01:00").is_err());
        assert!(to_utc("9999-12-31T23:00:00-01:00").is_err());
        assert_eq!(civil(days_from_civil(2000, 2, 29)), (2000, 2, 29));
    }

    #[test]
    fn mysql_times() {
        for ok in [
            "13:04:05",
            "-12:30:00",
            "838:59:59",
            "00:00:00.123456",
            "-838:59:59",
        ] {
            assert!(check_mysql_time(ok, 6, "time(6)").is_ok(), "{ok}");
        }
        for bad in ["839:00:00", "12:60:00", "1:2:3", "12:00:00.1234567", "x"] {
            assert!(check_mysql_time(bad, 6, "time(6)").is_err(), "{bad}");
        }
        assert!(check_mysql_time("00:00:00.5", 0, "time").is_err());
    }
}
