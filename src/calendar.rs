//! Dates of the proleptic Gregorian calendar from days since 1970-01-01
//! (Howard Hinnant's algorithm): one conversion for the run history's
//! timestamps and the Parquet reader's dates and timestamps.

/// A civil date as days since 1970-01-01 (the inverse of [`civil`]).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since 1970 of an ISO 8601 UTC timestamp as S3 writes one
/// (`2026-12-06T02:31:06.000Z`); `None` when it is not one.
pub fn epoch_seconds(text: &str) -> Option<i64> {
    let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let days = days_from_civil(
        num(0..4)?,
        u32::try_from(num(5..7)?).ok()?,
        u32::try_from(num(8..10)?).ok()?,
    );
    Some(days * 86_400 + num(11..13)? * 3600 + num(14..16)? * 60 + num(17..19)?)
}

/// Days since 1970-01-01 as a civil date (proleptic Gregorian).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod round_trip {
    use super::*;

    #[test]
    fn days_and_civil_dates_agree() {
        for days in [-800_000, -1, 0, 59, 20_428, 1_000_000] {
            let (y, m, d) = civil(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(epoch_seconds("1970-01-02T00:00:01.000Z"), Some(86_401));
        assert_eq!(epoch_seconds("2026-12-06T02:31:06Z"), Some(1_796_524_266));
        assert_eq!(epoch_seconds("nope"), None);
    }
}
