//! The values of change records from a MySQL or MariaDB binary log: a
//! logged value has its storage form (TIMESTAMP as epoch seconds, YEAR as
//! 1900 + a byte, ENUM as an index, SET as a bit mask, BINARY(n) without
//! its trailing zeros, latin1 text as stored), and a record carries it as
//! `etl-extract mysql://` writes the column.

use anyhow::{Context, Result, bail};
use mysql::Value as SqlValue;
use mysql::binlog::value::BinlogValue;

use super::source::{Shape, push_fraction, write_value};
use crate::format::json;
use crate::record::FieldType;

/// A column of the table, and how its logged values are written.
pub(super) struct Col {
    /// Its name.
    pub(super) name: String,
    /// Its JSON key, `"name":`.
    pub(super) key: Vec<u8>,
    /// How the MySQL source writes its values.
    pub(super) shape: Shape,
    /// Its wire type.
    pub(super) wire: FieldType,
    /// ENUM or SET members, in order.
    pub(super) members: Option<(bool, Vec<String>)>,
    /// A YEAR column (logged as 1900 + the stored byte).
    pub(super) year: bool,
    /// A BINARY(n) column: the log keeps its value without the trailing
    /// zero bytes the column pads it with.
    pub(super) pad: Option<usize>,
    /// Text stored in latin1 (MySQL's latin1 is Windows-1252), which the
    /// log holds as stored: turned into UTF-8.
    pub(super) latin1: bool,
}

/// One value as `etl-extract mysql://` writes it, from its binlog form.
pub(super) fn write_binlog_value(
    out: &mut Vec<u8>,
    value: &BinlogValue<'_>,
    col: &Col,
) -> Result<()> {
    let value = match value {
        BinlogValue::Value(v) => v,
        BinlogValue::Jsonb(doc) => {
            let doc = serde_json::Value::try_from(doc.clone())
                .map_err(|e| anyhow::anyhow!("a JSON value with no JSON form: {e}"))?;
            json::write_compact(out, doc.to_string().as_bytes());
            return Ok(());
        }
        BinlogValue::JsonDiff(_) => bail!("a partial JSON update (binlog_row_value_options)"),
    };
    match (value, col.shape) {
        (SqlValue::NULL, _) => out.extend_from_slice(b"null"),
        // YEAR: the log holds 1900 + the stored byte, and 0 is year 0000.
        (SqlValue::Bytes(b), Shape::Int) if col.year => {
            let year: u32 = std::str::from_utf8(b)?.parse()?;
            let year = if year == 1900 { 0 } else { year };
            out.extend_from_slice(year.to_string().as_bytes());
        }
        // TIMESTAMP: seconds since the epoch, with the fraction.
        (SqlValue::Bytes(b), Shape::Timestamp(digits)) => {
            let text = std::str::from_utf8(b)?;
            let (secs, frac) = text.split_once('.').unwrap_or((text, "0"));
            let secs: i64 = secs.parse()?;
            let micros: u32 = format!("{frac:0<6}")[..6].parse()?;
            if secs == 0 && micros == 0 {
                // A zero TIMESTAMP: as MySQL shows it, for the load to
                // reject with its reason (never read as 1970).
                json::write_str(out, "0000-00-00T00:00:00");
                return Ok(());
            }
            let mut iso = crate::format::temporal::format_timestamp(secs * 1_000_000)
                .context("a TIMESTAMP out of range")?;
            if let Some(dot) = iso.find('.') {
                iso.truncate(dot);
            }
            push_fraction(&mut iso, micros, digits);
            iso.push('Z');
            json::write_str(out, &iso);
        }
        (SqlValue::Int(i), Shape::Text) if col.members.is_some() => {
            let (_, members) = col.members.as_ref().expect("checked");
            let label = usize::try_from(*i - 1)
                .ok()
                .and_then(|n| members.get(n))
                .map_or("", String::as_str);
            json::write_str(out, label);
        }
        (SqlValue::Bytes(b), Shape::Text) if col.members.as_ref().is_some_and(|(set, _)| *set) => {
            let (_, members) = col.members.as_ref().expect("checked");
            let bits = b
                .iter()
                .rev()
                .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
            let labels: Vec<&str> = members
                .iter()
                .enumerate()
                .filter(|(n, _)| bits & (1 << n) != 0)
                .map(|(_, m)| m.as_str())
                .collect();
            json::write_str(out, &labels.join(","));
        }
        (SqlValue::Bytes(b), Shape::Text | Shape::Json | Shape::Uuid) if col.latin1 => {
            let text = cp1252(b);
            write_value(out, &SqlValue::Bytes(text.into_bytes()), col.shape)?;
        }
        (SqlValue::Bytes(b), Shape::Binary) if col.pad.is_some_and(|n| b.len() < n) => {
            let mut padded = b.clone();
            padded.resize(col.pad.unwrap_or(0), 0);
            write_value(out, &SqlValue::Bytes(padded), col.shape)?;
        }
        (SqlValue::Int(i), Shape::Bool) => {
            out.extend_from_slice(if *i != 0 { b"true" } else { b"false" })
        }
        _ => {
            if !write_value(out, value, col.shape)? {
                // A zero date: as MySQL shows it, for the load to reject
                // with its reason (a watcher never stops on a value).
                json::write_str(out, "0000-00-00");
            }
        }
    }
    Ok(())
}

/// Windows-1252 bytes (MySQL's latin1) as UTF-8 text.
fn cp1252(bytes: &[u8]) -> String {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    bytes
        .iter()
        .map(|&b| match b {
            0x80..=0x9f => HIGH[usize::from(b - 0x80)],
            _ => char::from(b),
        })
        .collect()
}

/// The members of an ENUM or SET column type (`enum('a','b''c')`): `true`
/// for a SET.
pub(super) fn members(declared: &str) -> Option<(bool, Vec<String>)> {
    let lower = declared.to_ascii_lowercase();
    let (set, rest) = if lower.starts_with("enum(") {
        (false, &declared[5..])
    } else if lower.starts_with("set(") {
        (true, &declared[4..])
    } else {
        return None;
    };
    let rest = rest.strip_suffix(')')?;
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut member = String::new();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    member.push('\'');
                    continue;
                }
                break;
            }
            member.push(c);
        }
        out.push(member);
    }
    Some((set, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_and_set_members_are_read_from_the_column_type() {
        assert_eq!(
            members("ENUM('Big','small')"),
            Some((false, vec!["Big".into(), "small".into()]))
        );
        assert_eq!(
            members("enum('a','b''c','')"),
            Some((false, vec!["a".into(), "b'c".into(), String::new()]))
        );
        assert_eq!(
            members("set('x','y')"),
            Some((true, vec!["x".into(), "y".into()]))
        );
        assert_eq!(members("varchar(10)"), None);
    }

    #[test]
    fn latin1_is_windows_1252() {
        assert_eq!(cp1252(b"h\xe9 \x80 \x9f"), "hé € Ÿ");
    }
}
