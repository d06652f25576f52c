//! Partition keys and Hive paths: `--partition-by ordered_at:day` turns a
//! record into the directory `ordered_at_day=2026-11-03`, escaped as Hive
//! escapes path names, and back; and which partitions a cursor range can
//! skip without reading them.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

use crate::format::flat::Raw;
use crate::incremental::compare;

/// Hive's directory name for a null (or absent) partition value.
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// How a partition value is taken from its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// The column's own value; the column then lives in the path only.
    Identity,
    /// `YYYY` of an ISO 8601 date or timestamp.
    Year,
    /// `YYYY-MM`.
    Month,
    /// `YYYY-MM-DD`.
    Day,
    /// `YYYY-MM-DDTHH` (the separator as written: `T` or a space).
    Hour,
}

impl Transform {
    fn unit(self) -> Option<&'static str> {
        match self {
            Transform::Identity => None,
            Transform::Year => Some("year"),
            Transform::Month => Some("month"),
            Transform::Day => Some("day"),
            Transform::Hour => Some("hour"),
        }
    }

    /// How many leading characters of the timestamp text the value keeps.
    fn prefix_len(self) -> usize {
        match self {
            Transform::Identity => 0,
            Transform::Year => 4,
            Transform::Month => 7,
            Transform::Day => 10,
            Transform::Hour => 13,
        }
    }
}

/// One `--partition-by` key: a column and how its value is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSpec {
    /// The record's field.
    pub column: String,
    /// Its own value, or a date part of it.
    pub transform: Transform,
}

impl fmt::Display for PartitionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.transform.unit() {
            Some(unit) => write!(f, "{}:{unit}", self.column),
            None => f.write_str(&self.column),
        }
    }
}

impl PartitionSpec {
    /// Parses `COL` or `COL:year|month|day|hour`.
    pub fn parse(text: &str) -> Result<PartitionSpec, String> {
        let (column, unit) = match text.rsplit_once(':') {
            Some((column, unit)) => (column, Some(unit)),
            None => (text, None),
        };
        let transform = match unit {
            None => Transform::Identity,
            Some("year") => Transform::Year,
            Some("month") => Transform::Month,
            Some("day") => Transform::Day,
            Some("hour") => Transform::Hour,
            Some(other) => {
                return Err(format!(
                    "--partition-by {text:?}: unknown unit {other:?}; use COL, or COL:year, :month, :day or :hour"
                ));
            }
        };
        if column.is_empty() {
            return Err(format!("--partition-by {text:?} names no column"));
        }
        if column.starts_with(['_', '.']) {
            // Spark, Hive and Trino skip directories that start with these.
            return Err(format!(
                "--partition-by {text:?}: readers skip directories starting with '_' or '.'; \
                 rename the column on the way (etl-transform --rename)"
            ));
        }
        Ok(PartitionSpec {
            column: column.to_string(),
            transform,
        })
    }

    /// The key in the path: the column, or `COL_day` and the like.
    pub fn key(&self) -> String {
        match self.transform.unit() {
            Some(unit) => format!("{}_{unit}", self.column),
            None => self.column.clone(),
        }
    }

    /// Is the column itself kept in the path instead of the files?
    pub fn is_identity(&self) -> bool {
        self.transform == Transform::Identity
    }

    /// The partition value of a record's field (`None`: the null
    /// partition), or why the record cannot be placed.
    pub fn value_of(&self, value: &Raw<'_>) -> Result<Option<String>, String> {
        let text = match (self.transform, value) {
            (_, Raw::Null) => return Ok(None),
            (Transform::Identity, Raw::Str(s)) => {
                if s.is_empty() {
                    return Err(format!(
                        "column {:?}: an empty text cannot be a partition value (Hive paths cannot tell it from null)",
                        self.column
                    ));
                }
                if s == NULL_PARTITION {
                    return Err(format!(
                        "column {:?}: {NULL_PARTITION} is how Hive paths write null",
                        self.column
                    ));
                }
                s.to_string()
            }
            (Transform::Identity, Raw::Number(n)) => n.to_string(),
            (Transform::Identity, Raw::Bool(b)) => b.to_string(),
            (Transform::Identity, Raw::Nested(_)) => {
                return Err(format!(
                    "column {:?}: {} cannot be a partition value",
                    self.column,
                    value.describe()
                ));
            }
            (t, Raw::Str(s)) if is_timestamp_prefix(s, t) => s[..t.prefix_len()].to_string(),
            (_, other) => {
                return Err(format!(
                    "column {:?}: {} is not an ISO 8601 {} (--partition-by {self})",
                    self.column,
                    other.describe(),
                    if self.transform == Transform::Hour {
                        "timestamp"
                    } else {
                        "date or timestamp"
                    }
                ));
            }
        };
        // Escaping at most triples a byte, so only a long key and value
        // need the directory name built to measure it (not every row).
        if (self.column.len() + "_month".len() + text.len()) * 3 + 1 > 255 {
            let component = format!("{}={}", escape(&self.key()), escape(&text));
            if component.len() > 255 {
                return Err(format!(
                    "column {:?}: the partition directory {}... would be longer than 255 bytes",
                    self.column,
                    component.chars().take(40).collect::<String>()
                ));
            }
        }
        Ok(Some(text))
    }

    /// The directory name `key=value` for a partition value.
    pub fn component(&self, value: Option<&str>) -> String {
        format!(
            "{}={}",
            escape(&self.key()),
            value.map_or_else(|| NULL_PARTITION.to_string(), escape)
        )
    }

    /// Could a partition with this value hold rows with `cursor` in
    /// `[lower, upper)`? Only a key on the cursor column itself can say no;
    /// the null partition is always read (its rows have no cursor, which
    /// the incremental filter reports).
    pub fn may_hold(
        &self,
        value: Option<&Value>,
        cursor: &str,
        lower: Option<&Value>,
        upper: Option<&Value>,
    ) -> bool {
        let Some(value) = value else { return true };
        if self.column != cursor {
            return true;
        }
        if self.is_identity() {
            // Every row of the partition has exactly this cursor value.
            let below = lower.is_some_and(|l| compare(value, l).ok() == Some(Ordering::Less));
            let above = upper.is_some_and(|u| compare(value, u).ok() != Some(Ordering::Less))
                && upper.is_some_and(|u| compare(value, u).is_ok());
            return !(below || above);
        }
        // Every row's cursor is text starting with the partition value P,
        // so it is >= P, and below a bound that P neither reaches nor prefixes.
        let Value::String(p) = value else { return true };
        let below = matches!(lower, Some(Value::String(l)) if p.as_str() < l.as_str() && !l.starts_with(p.as_str()));
        let above = matches!(upper, Some(Value::String(u)) if p.as_str() >= u.as_str());
        !(below || above)
    }
}

/// Does `s` start with an ISO 8601 date (and hour, for `Hour`)?
fn is_timestamp_prefix(s: &str, transform: Transform) -> bool {
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range.clone())
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let number = |range: std::ops::Range<usize>| -> u32 {
        b[range].iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'))
    };
    if !(digits(0..4) && b.get(4) == Some(&b'-') && digits(5..7)) {
        return false;
    }
    if !(1..=12).contains(&number(5..7)) {
        return false;
    }
    // Year and month partitions still need a whole date: "2026-11" alone
    // is not a timestamp.
    if !(b.get(7) == Some(&b'-') && digits(8..10) && (1..=31).contains(&number(8..10))) {
        return false;
    }
    if b.len() > 10 && !matches!(b[10], b'T' | b' ') {
        return false;
    }
    if transform == Transform::Hour {
        return b.len() >= 13 && digits(11..13) && number(11..13) < 24;
    }
    true
}

fn needs_escape(c: char) -> bool {
    // Hive's FileUtils.escapePathName set (Spark uses the same).
    matches!(
        c,
        '\u{0}'
            ..='\u{1f}'
                | '"'
                | '#'
                | '%'
                | '\''
                | '*'
                | '/'
                | ':'
                | '='
                | '?'
                | '\\'
                | '\u{7f}'
                | '{'
                | '['
                | ']'
                | '^'
    )
}

/// Escapes a key or value for a path component as Hive does (`%3A` for `:`).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if needs_escape(c) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Undoes [`escape`]; `None` when an escape is malformed.
pub fn unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(text: &str) -> PartitionSpec {
        PartitionSpec::parse(text).unwrap()
    }

    fn s(text: &str) -> Raw<'_> {
        Raw::Str(text.into())
    }

    #[test]
    fn specs_parse_and_name_their_keys() {
        assert_eq!(spec("ordered_at:day").key(), "ordered_at_day");
        assert_eq!(spec("region").key(), "region");
        assert_eq!(spec("a:b:hour").column, "a:b");
        assert!(PartitionSpec::parse("at:week").is_err());
        assert!(PartitionSpec::parse(":day").is_err());
        assert!(PartitionSpec::parse("_hidden").is_err());
        assert_eq!(spec("at:month").to_string(), "at:month");
    }

    #[test]
    fn date_parts_come_from_the_text_as_written() {
        let at = s("2026-11-03T09:15:00Z");
        assert_eq!(spec("t:day").value_of(&at).unwrap().unwrap(), "2026-11-03");
        assert_eq!(spec("t:month").value_of(&at).unwrap().unwrap(), "2026-11");
        assert_eq!(spec("t:year").value_of(&at).unwrap().unwrap(), "2026");
        assert_eq!(
            spec("t:hour").value_of(&at).unwrap().unwrap(),
            "2026-11-03T09"
        );
        assert_eq!(
            spec("t:day").value_of(&s("2026-11-03")).unwrap().unwrap(),
            "2026-11-03"
        );
        assert!(spec("t:hour").value_of(&s("2026-11-03")).is_err());
        assert!(spec("t:day").value_of(&s("2026-13-03")).is_err());
        assert!(spec("t:day").value_of(&s("03/11/2026")).is_err());
        assert!(spec("t:day").value_of(&Raw::Number("5".into())).is_err());
        assert_eq!(spec("t:day").value_of(&Raw::Null).unwrap(), None);
    }

    #[test]
    fn plain_values_and_their_refusals() {
        assert_eq!(
            spec("n")
                .value_of(&Raw::Number("07".into()))
                .unwrap()
                .unwrap(),
            "07"
        );
        assert_eq!(
            spec("b").value_of(&Raw::Bool(true)).unwrap().unwrap(),
            "true"
        );
        assert!(spec("r").value_of(&s("")).is_err());
        assert!(spec("r").value_of(&s(NULL_PARTITION)).is_err());
        assert!(spec("r").value_of(&Raw::Nested("[1]".into())).is_err());
        assert!(spec("r").value_of(&s(&"x".repeat(300))).is_err());
    }

    #[test]
    fn paths_escape_as_hive_does() {
        let r = spec("r");
        assert_eq!(r.component(Some("a/b:c=d%")), "r=a%2Fb%3Ac%3Dd%25");
        assert_eq!(r.component(None), "r=__HIVE_DEFAULT_PARTITION__");
        assert_eq!(r.component(Some("Café ü")), "r=Café ü");
        for text in ["a/b:c=d%", "tab\there", "{[^]}", "plain", "Café"] {
            assert_eq!(unescape(&escape(text)).unwrap(), text);
        }
        assert_eq!(unescape("%2"), None);
    }

    #[test]
    fn pruning_never_skips_a_partition_that_could_hold_a_row() {
        let day = spec("t:day");
        let p = json!("2026-11-03");
        let holds = |l: Option<Value>, u: Option<Value>| {
            day.may_hold(Some(&p), "t", l.as_ref(), u.as_ref())
        };
        assert!(holds(Some(json!("2026-11-03")), Some(json!("2026-11-04"))));
        assert!(holds(Some(json!("2026-11-03T12:00:00Z")), None));
        assert!(holds(Some(json!("2026-11")), None));
        assert!(holds(None, Some(json!("2026-11-03T00:00:01"))));
        assert!(!holds(Some(json!("2026-11-04")), None));
        assert!(!holds(None, Some(json!("2026-11-03"))));
        assert!(!holds(None, Some(json!("2026-11-02T23:59:59Z"))));
        // Another column, or the null partition: always read.
        assert!(day.may_hold(Some(&p), "other", Some(&json!("2030")), None));
        assert!(day.may_hold(None, "t", Some(&json!("2030")), None));
        let n = spec("n");
        assert!(!n.may_hold(Some(&json!(5)), "n", Some(&json!(6)), None));
        assert!(!n.may_hold(Some(&json!(5)), "n", None, Some(&json!(5))));
        assert!(n.may_hold(Some(&json!(5)), "n", Some(&json!(5)), Some(&json!(6))));
        // Values of different kinds cannot be compared: read, and let the filter say.
        assert!(n.may_hold(Some(&json!(5)), "n", Some(&json!("x")), None));
    }
}
