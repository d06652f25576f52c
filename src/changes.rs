//! Change records, as change data capture hands them on (from a
//! PostgreSQL replication slot or a MySQL/MariaDB binary log): the row's
//! fields, then the same four fields from every source:
//!
//! - `_op`: `insert`, `update` or `delete`;
//! - `_deleted`: true for a delete (`etl-load --delete-when _deleted`);
//! - `_position`: where the change's transaction commits in the source's
//!   log (PostgreSQL's LSN `0/16B3748`, a binlog file and offset
//!   `binlog.000003:1234`);
//! - `_commit_time`: when it committed, in UTC.

use crate::format::json;
use crate::record::FieldType;

/// The fields every change record ends with, and their types.
pub const FIELDS: [(&str, FieldType); 4] = [
    ("_op", FieldType::Text),
    ("_deleted", FieldType::Boolean),
    ("_position", FieldType::Text),
    ("_commit_time", FieldType::TimestampTz),
];

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A new row.
    Insert,
    /// A row's new values.
    Update,
    /// A row gone (the record carries its key).
    Delete,
}

impl Op {
    /// Its word in `_op`.
    pub fn word(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

/// The end of every record of one transaction: `"_position":...,
/// "_commit_time":...}`.
pub fn tail(position: &str, commit_time: &str) -> Vec<u8> {
    let mut tail = Vec::with_capacity(80);
    tail.extend_from_slice(b"\"_position\":");
    json::write_str(&mut tail, position);
    tail.extend_from_slice(b",\"_commit_time\":");
    json::write_str(&mut tail, commit_time);
    tail.push(b'}');
    tail
}

/// Closes `record` (an open JSON object of the row's fields, `{"id":1`)
/// with the change fields.
pub fn finish(record: &mut Vec<u8>, op: Op, tail: &[u8]) {
    if record.len() > 1 {
        record.push(b',');
    }
    record.extend_from_slice(b"\"_op\":\"");
    record.extend_from_slice(op.word().as_bytes());
    record.extend_from_slice(b"\",\"_deleted\":");
    record.extend_from_slice(if op == Op::Delete {
        b"true,"
    } else {
        b"false,"
    });
    record.extend_from_slice(tail);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_ends_with_the_change_fields() {
        let tail = tail("0/16B3748", "2026-01-02T03:04:05+00:00");
        let mut record = b"{\"id\":1".to_vec();
        finish(&mut record, Op::Delete, &tail);
        assert_eq!(
            String::from_utf8(record).unwrap(),
            r#"{"id":1,"_op":"delete","_deleted":true,"_position":"0/16B3748","_commit_time":"2026-01-02T03:04:05+00:00"}"#
        );
        let mut empty = b"{".to_vec();
        finish(&mut empty, Op::Insert, &tail);
        assert!(
            String::from_utf8(empty)
                .unwrap()
                .starts_with(r#"{"_op":"insert","#)
        );
    }
}
