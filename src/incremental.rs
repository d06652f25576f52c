//! Incremental extraction: which rows are past the bookmark, and the new
//! bookmark to hand downstream in the `end` line.
//!
//! A bookmark is the largest cursor value emitted so far plus fingerprints
//! of the rows that carry exactly that value:
//! `{"cursor":"updated_at","value":"2026-11-05T09:00:00Z","at_value":["9c1e..."]}`.
//! Past [`LISTED_AT_VALUE`] such rows the fingerprints are packed instead
//! (`"at_value_packed"`: sorted 64-bit fingerprints, base64), 8 bytes a row,
//! so a coarse cursor (a day shared by a million rows) keeps a bookmark of
//! about 11 MB rather than 19, and each row is judged in constant time.
//! The next run emits rows whose cursor is greater, and rows whose cursor
//! equals the value but whose fingerprint is not listed. So a row that lands
//! later with the same timestamp as the boundary is not lost, and the
//! boundary rows already loaded are not repeated (a boundary row that
//! changed has a new fingerprint and is emitted again, as an update should).
//!
//! Rows whose cursor is null (or missing) have no position: they are
//! rejected, which by default fails the run naming the row.

use std::cmp::Ordering;
use std::collections::HashSet;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

use crate::error::{Failure, Kind};
use crate::format::flat::{Raw, parse_object};

/// The stored position of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Bookmark {
    /// The cursor column it was taken on.
    pub cursor: String,
    /// The largest cursor value emitted.
    pub value: Value,
    /// Fingerprints of the emitted rows whose cursor equals `value`.
    pub at_value: HashSet<u64>,
}

/// Up to this many boundary rows the bookmark lists their fingerprints as
/// readable hex; past it they are packed.
pub const LISTED_AT_VALUE: usize = 64;

impl Bookmark {
    /// The bookmark's JSON form, as stored in state and carried in `end` lines.
    pub fn to_json(&self) -> Value {
        let mut prints: Vec<u64> = self.at_value.iter().copied().collect();
        prints.sort_unstable();
        let mut obj = Map::new();
        obj.insert("cursor".into(), self.cursor.clone().into());
        obj.insert("value".into(), self.value.clone());
        if prints.len() <= LISTED_AT_VALUE {
            obj.insert(
                "at_value".into(),
                Value::Array(prints.iter().map(|p| format!("{p:016x}").into()).collect()),
            );
        } else {
            let bytes: Vec<u8> = prints.iter().flat_map(|p| p.to_be_bytes()).collect();
            obj.insert("at_value_packed".into(), BASE64.encode(bytes).into());
        }
        Value::Object(obj)
    }

    /// Reads a stored bookmark (either form of the boundary fingerprints).
    pub fn from_json(json: &Value) -> Result<Bookmark> {
        let (Some(cursor), Some(value)) = (
            json.get("cursor").and_then(Value::as_str),
            json.get("value"),
        ) else {
            bail!("stored bookmark {json} lacks \"cursor\" or \"value\"");
        };
        let mut at_value = HashSet::new();
        if let Some(list) = json.get("at_value").and_then(Value::as_array) {
            for print in list {
                let parsed = print
                    .as_str()
                    .and_then(|hex| u64::from_str_radix(hex, 16).ok())
                    .with_context(|| {
                        format!("stored bookmark: {print} is not a row fingerprint")
                    })?;
                at_value.insert(parsed);
            }
        }
        if let Some(packed) = json.get("at_value_packed") {
            let bytes = packed
                .as_str()
                .and_then(|text| BASE64.decode(text).ok())
                .filter(|bytes| bytes.len() % 8 == 0)
                .context("stored bookmark: \"at_value_packed\" is not packed fingerprints")?;
            at_value.extend(bytes.chunks_exact(8).map(|chunk| {
                u64::from_be_bytes(chunk.try_into().expect("chunks_exact gives 8 bytes"))
            }));
        }
        Ok(Bookmark {
            cursor: cursor.to_string(),
            value: value.clone(),
            at_value,
        })
    }
}

/// Orders two cursor values: numbers by value, two timestamps both in UTC
/// or both without an offset by their time (sources spell one differently:
/// `03:04:05Z`, `03:04:05.000000Z`, `03:04:05+00:00`), other text by code
/// point. Another offset keeps text order: a dataset's day partitions,
/// which prune a window by the text of its bounds, are the days the values
/// are written in.
pub fn compare(a: &Value, b: &Value) -> Result<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                return Ok(x.cmp(&y));
            }
            // BIGINT UNSIGNED past i64::MAX: exact, not through a float.
            if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                return Ok(x.cmp(&y));
            }
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => Ok(x.total_cmp(&y)),
                _ => bail!("cannot compare cursor values {a} and {b}"),
            }
        }
        (Value::String(x), Value::String(y)) => match (time_point(x), time_point(y)) {
            (Some((x, zoned_x)), Some((y, zoned_y))) if zoned_x == zoned_y => Ok(x.cmp(&y)),
            _ => Ok(x.cmp(y)),
        },
        _ => bail!(
            "cursor values {a} and {b} are of different kinds; a cursor must be all numbers or all text"
        ),
    }
}

/// An ISO 8601 timestamp without offset or in UTC
/// (`YYYY-MM-DDTHH:MM:SS[.f][Z|+00:00]`, a space for the `T` too) as
/// nanoseconds since 1970, and whether it is in UTC; `None` for other text.
fn time_point(s: &str) -> Option<(i128, bool)> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |text: &str| -> Option<i64> {
        if text.is_empty() || !text.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        text.parse().ok()
    };
    let (year, month, day) = (num(&s[0..4])?, num(&s[5..7])?, num(&s[8..10])?);
    let (hour, minute, second) = (num(&s[11..13])?, num(&s[14..16])?, num(&s[17..19])?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 59 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0i128;
    if let Some(after) = rest.strip_prefix('.') {
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = i128::from(num(&format!("{:0<9}", &after[..digits]))?);
        rest = &after[digits..];
    }
    let utc = match rest {
        "" => false,
        "Z" | "z" | "+00:00" | "-00:00" => true,
        _ => return None,
    };
    let days = crate::calendar::days_from_civil(year, month as u32, day as u32);
    let minutes = days * 1440 + hour * 60 + minute;
    let point = (i128::from(minutes) * 60 + i128::from(second)) * 1_000_000_000 + nanos;
    Some((point, utc))
}

/// Parses a `--since`/`--until` argument: a number if it reads as one, else text.
pub fn parse_bound(text: &str) -> Value {
    if crate::format::infer::is_integer(text) || crate::format::infer::is_exact_decimal(text) {
        serde_json::from_str(text).unwrap_or_else(|_| Value::from(text))
    } else {
        Value::from(text)
    }
}

/// A 64-bit FNV-1a fingerprint of a record's wire text, in hex.
pub fn fingerprint(bytes: &[u8]) -> String {
    format!("{:016x}", fingerprint_u64(bytes))
}

/// A 64-bit FNV-1a fingerprint of some bytes.
pub fn fingerprint_u64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// What to do with one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// It is past the bookmark (and inside the window): emit it.
    Emit,
    /// Already loaded, or outside `--since`/`--until`.
    Skip,
    /// Its cursor is null or missing.
    NoCursor,
}

/// The filter for one incremental run.
#[derive(Debug)]
pub struct Incremental {
    cursor: String,
    stored: Option<Bookmark>,
    since: Option<Value>,
    until: Option<Value>,
    next: Option<Bookmark>,
}

impl Incremental {
    /// A filter on `cursor` from the stored bookmark (if any), with an
    /// optional explicit window that overrides the bookmark for this run.
    pub fn new(
        cursor: &str,
        stored: Option<&Value>,
        since: Option<Value>,
        until: Option<Value>,
    ) -> Result<Self> {
        let stored = stored.map(Bookmark::from_json).transpose()?;
        if let Some(bm) = &stored
            && bm.cursor != cursor
        {
            bail!(
                "the stored bookmark was taken on cursor {:?}, not {cursor:?}; \
                 use the same --cursor, or a new --stream name",
                bm.cursor
            );
        }
        Ok(Incremental {
            cursor: cursor.to_string(),
            next: stored.clone(),
            stored,
            since,
            until,
        })
    }

    /// The cursor column.
    pub fn cursor(&self) -> &str {
        &self.cursor
    }

    /// The stored bookmark this run starts from, as JSON (null if none).
    pub fn starting_point(&self) -> Value {
        self.stored.as_ref().map_or(Value::Null, Bookmark::to_json)
    }

    /// Lowest cursor value this run can emit (inclusive), for pushing into SQL.
    pub fn lower_bound(&self) -> Option<&Value> {
        self.since
            .as_ref()
            .or_else(|| self.stored.as_ref().map(|b| &b.value))
    }

    /// Cursor value this run stops before (exclusive), for pushing into SQL.
    pub fn upper_bound(&self) -> Option<&Value> {
        self.until.as_ref()
    }

    /// Decides about one record, given its wire text.
    pub fn judge(&mut self, record: &[u8]) -> Result<Verdict> {
        // Only the cursor field becomes a JSON value; the rest stays borrowed.
        let fields = parse_object(record).map_err(|e| anyhow!("{e}"))?;
        let value = match fields.iter().find(|(name, _)| *name == self.cursor) {
            None | Some((_, Raw::Null)) => return Ok(Verdict::NoCursor),
            Some((_, Raw::Str(text))) => Value::String(text.to_string()),
            Some((_, Raw::Bool(b))) => Value::Bool(*b),
            Some((_, Raw::Number(text) | Raw::Nested(text))) => serde_json::from_str(text)?,
        };
        let value = &value;
        if let Some(since) = &self.since {
            if compare(value, since)? == Ordering::Less {
                return Ok(Verdict::Skip);
            }
        } else if let Some(bm) = &self.stored {
            match compare(value, &bm.value)? {
                Ordering::Less => return Ok(Verdict::Skip),
                Ordering::Equal if bm.at_value.contains(&fingerprint_u64(record)) => {
                    return Ok(Verdict::Skip);
                }
                _ => {}
            }
        }
        if let Some(until) = &self.until
            && compare(value, until)? != Ordering::Less
        {
            return Ok(Verdict::Skip);
        }
        self.advance(value, record)?;
        Ok(Verdict::Emit)
    }

    fn advance(&mut self, value: &Value, record: &[u8]) -> Result<()> {
        let print = fingerprint_u64(record);
        match &mut self.next {
            Some(bm) => match compare(value, &bm.value)? {
                Ordering::Greater => {
                    bm.value = value.clone();
                    bm.at_value = HashSet::from([print]);
                }
                Ordering::Equal => {
                    bm.at_value.insert(print);
                }
                // A backfill below the bookmark never moves it backwards.
                _ => {}
            },
            None => {
                self.next = Some(Bookmark {
                    cursor: self.cursor.clone(),
                    value: value.clone(),
                    at_value: HashSet::from([print]),
                });
            }
        }
        Ok(())
    }

    /// The bookmark for the `end` line: where the next run starts.
    pub fn bookmark(&self) -> Option<Value> {
        self.next.as_ref().map(Bookmark::to_json)
    }
}

/// Refuses a stream whose extract started from a bookmark that is no longer
/// the stored one: another run has loaded this stream since, and loading
/// this one too would repeat or skip rows.
pub fn check_starting_point(stream: &str, stored: &Value, from: &Value) -> Result<()> {
    if stored != from {
        return Err(Failure::new(
            Kind::Runtime,
            format!(
                "stream {stream:?}: the stored bookmark {stored} is not the one this \
                 extract started from ({from}): another run loaded the stream meanwhile"
            ),
        )
        .hint("run the job again; and check that etl-extract --state names this target")
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(inc: &mut Incremental, rows: &[&str]) -> Vec<Verdict> {
        rows.iter()
            .map(|r| inc.judge(r.as_bytes()).unwrap())
            .collect()
    }

    #[test]
    fn boundary_rows_are_neither_lost_nor_repeated() {
        let mut first = Incremental::new("t", None, None, None).unwrap();
        let rows = [r#"{"id":1,"t":10}"#, r#"{"id":2,"t":20}"#];
        assert_eq!(run(&mut first, &rows), [Verdict::Emit, Verdict::Emit]);
        let bm = first.bookmark().unwrap();
        assert_eq!(bm["value"], json!(20));

        // A row with the boundary value arrives after the first run.
        let mut second = Incremental::new("t", Some(&bm), None, None).unwrap();
        let rows = [
            r#"{"id":1,"t":10}"#,
            r#"{"id":2,"t":20}"#,
            r#"{"id":3,"t":20}"#,
        ];
        assert_eq!(
            run(&mut second, &rows),
            [Verdict::Skip, Verdict::Skip, Verdict::Emit]
        );
        let bm = second.bookmark().unwrap();
        assert_eq!(bm["at_value"].as_array().unwrap().len(), 2);

        let mut third = Incremental::new("t", Some(&bm), None, None).unwrap();
        assert_eq!(
            run(&mut third, &rows),
            [Verdict::Skip, Verdict::Skip, Verdict::Skip]
        );
        assert_eq!(third.bookmark(), Some(bm));
    }

    #[test]
    fn many_rows_at_the_boundary_pack_their_fingerprints() {
        let rows: Vec<String> = (0..5000)
            .map(|i| format!(r#"{{"id":{i},"day":"2026-11-05"}}"#))
            .collect();
        let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
        let mut first = Incremental::new("day", None, None, None).unwrap();
        assert!(
            run(&mut first, &rows[..4000])
                .iter()
                .all(|v| *v == Verdict::Emit)
        );
        let bm = first.bookmark().unwrap();
        assert!(bm.get("at_value").is_none());
        let packed = bm["at_value_packed"].as_str().unwrap();
        // 8 bytes a row, base64: well under the 19 bytes a listed row took.
        assert!(packed.len() <= 4000 * 11, "{}", packed.len());

        // The stored form reads back exactly: the 4000 loaded rows are
        // skipped, the 1000 new ones at the same value are emitted once.
        let stored: Value = serde_json::from_str(&bm.to_string()).unwrap();
        let mut second = Incremental::new("day", Some(&stored), None, None).unwrap();
        let verdicts = run(&mut second, &rows);
        assert_eq!(
            verdicts.iter().filter(|v| **v == Verdict::Skip).count(),
            4000
        );
        assert_eq!(
            verdicts.iter().filter(|v| **v == Verdict::Emit).count(),
            1000
        );
        let bm = second.bookmark().unwrap();
        let mut third = Incremental::new("day", Some(&bm), None, None).unwrap();
        assert!(run(&mut third, &rows).iter().all(|v| *v == Verdict::Skip));
        assert_eq!(third.bookmark(), Some(bm));
    }

    #[test]
    fn listed_bookmarks_of_earlier_runs_still_read() {
        let print = fingerprint(br#"{"id":1,"t":20}"#);
        let stored = json!({"cursor":"t","value":20,"at_value":[print]});
        let mut inc = Incremental::new("t", Some(&stored), None, None).unwrap();
        let rows = [r#"{"id":1,"t":20}"#, r#"{"id":2,"t":20}"#];
        assert_eq!(run(&mut inc, &rows), [Verdict::Skip, Verdict::Emit]);
        let broken = json!({"cursor":"t","value":20,"at_value_packed":"not base64!"});
        assert!(Incremental::new("t", Some(&broken), None, None).is_err());
    }

    #[test]
    fn backfill_window_never_moves_the_bookmark_back() {
        let stored = json!({"cursor":"t","value":50,"at_value":[]});
        let mut inc =
            Incremental::new("t", Some(&stored), Some(json!(10)), Some(json!(20))).unwrap();
        let rows = [r#"{"t":5}"#, r#"{"t":10}"#, r#"{"t":19}"#, r#"{"t":20}"#];
        assert_eq!(
            run(&mut inc, &rows),
            [Verdict::Skip, Verdict::Emit, Verdict::Emit, Verdict::Skip]
        );
        assert_eq!(inc.bookmark().unwrap()["value"], json!(50));
    }

    #[test]
    fn null_cursor_and_kind_mismatch() {
        let mut inc = Incremental::new("t", None, None, None).unwrap();
        assert_eq!(inc.judge(br#"{"t":null}"#).unwrap(), Verdict::NoCursor);
        assert_eq!(inc.judge(br#"{"x":1}"#).unwrap(), Verdict::NoCursor);
        inc.judge(br#"{"t":1}"#).unwrap();
        assert!(inc.judge(br#"{"t":"a"}"#).is_err());
    }

    #[test]
    fn wrong_cursor_for_stored_state() {
        let stored = json!({"cursor":"a","value":1});
        assert!(Incremental::new("b", Some(&stored), None, None).is_err());
    }

    #[test]
    fn timestamps_compare_as_points_in_time() {
        let cmp = |a: &str, b: &str| compare(&json!(a), &json!(b)).unwrap();
        // MySQL writes a DATETIME(6)'s six digits, PostgreSQL +00:00.
        assert_eq!(
            cmp("2024-01-02T03:04:05.000000Z", "2024-01-02T03:04:05Z"),
            Ordering::Equal
        );
        assert_eq!(
            cmp("2024-01-02T03:04:05.000001+00:00", "2024-01-02T03:04:05Z"),
            Ordering::Greater
        );
        assert_eq!(
            cmp("2024-01-02T03:04:05-00:00", "2024-01-02T03:04:05.0Z"),
            Ordering::Equal
        );
        assert_eq!(
            cmp("0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"),
            Ordering::Less
        );
        assert_eq!(
            cmp("2024-01-02 03:04:05.5", "2024-01-02T03:04:05.100000"),
            Ordering::Greater
        );
        assert_eq!(
            cmp("2024-01-02T03:04:05", "2024-01-02T03:04:05.000"),
            Ordering::Equal
        );
        // Another offset, with and without one, dates, other text: by
        // code point.
        assert_eq!(
            cmp("2024-01-02T03:04:05Z", "2024-01-02T08:04:05+05:00"),
            Ordering::Less
        );
        assert_eq!(
            cmp("2024-01-02T03:04:05", "2024-01-02T03:04:05Z"),
            Ordering::Less
        );
        assert_eq!(cmp("2024-01-02", "2024-01-10"), Ordering::Less);
        assert_eq!(cmp("b", "a"), Ordering::Greater);
    }

    #[test]
    fn bounds_parse_numbers_and_text() {
        assert_eq!(parse_bound("42"), json!(42));
        assert_eq!(parse_bound("2026-11-01"), json!("2026-11-01"));
        assert_eq!(parse_bound("007"), json!("007"));
    }
}
