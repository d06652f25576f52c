//! Dates and times as MySQL takes them: a calendar date with no zero month
//! or day, and date-time text checked against what a DATETIME or TIMESTAMP
//! column keeps (its fractional digits, no UTC offset it would drop),
//! turned into the server's form.

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
