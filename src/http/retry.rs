//! When and how long to wait before asking again.
//!
//! A page is fetched whole before any of its records is written, so asking
//! again never repeats a record. Connection failures, timeouts, 408, 429 and
//! 5xx are retried with exponential backoff (1 s, 2 s, 4 s, ... up to 60 s,
//! with a little jitter so that many jobs do not return at once); a server
//! that says `Retry-After` is waited for exactly that long instead.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest `Retry-After` etlkit waits: a server asking for more is
/// treated as down, and the run fails (a cron job should not hang for hours).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// The longest backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Is a response with this status worth asking again for?
pub fn is_retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

/// The wait before retry number `attempt` (0 for the first retry).
pub fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_secs(1)
        .saturating_mul(1u32 << attempt.min(16))
        .min(MAX_BACKOFF);
    // Up to a tenth more, from the clock: enough to spread jobs started by
    // the same cron minute, no random number generator needed.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base + base.mul_f64(f64::from(nanos % 1000) / 10_000.0)
}

/// Reads a `Retry-After` value: delay seconds, or an HTTP date (RFC 9110
/// IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`) relative to `now`. A date
/// in the past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_http_date(value)?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Seconds since the Unix epoch of an IMF-fixdate.
fn parse_http_date(text: &str) -> Option<u64> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let rest = text.split_once(", ")?.1;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? as u64 + 1;
    let day: u64 = day.parse().ok()?;
    let year: u64 = year.parse().ok()?;
    let clock: Vec<u64> = time
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [h, m, s] = clock.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || year < 1970 || *h > 23 || *m > 59 || *s > 60 {
        return None;
    }
    let days = crate::calendar::days_from_civil(
        i64::try_from(year).ok()?,
        u32::try_from(month).ok()?,
        u32::try_from(day).ok()?,
    );
    Some(u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_770);
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Sat, 29 Feb 2020 12:00:00 GMT"),
            Some(1_582_977_600)
        );
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        for (attempt, secs) in [(0, 1), (1, 2), (2, 4), (5, 32), (6, 60), (40, 60)] {
            let wait = backoff(attempt);
            let base = Duration::from_secs(secs);
            assert!(
                wait >= base && wait <= base.mul_f64(1.1),
                "{attempt}: {wait:?}"
            );
        }
        assert!(is_retryable_status(429) && is_retryable_status(503));
        assert!(!is_retryable_status(404) && !is_retryable_status(401));
    }
}
