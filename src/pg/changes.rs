//! PostgreSQL's logical replication output (the built-in `pgoutput`
//! plugin, protocol version 1) turned into change records.
//!
//! A slot's changes come as one message per row of
//! `pg_logical_slot_peek_binary_changes`: `B`egin, `R`elation (a table's
//! columns, sent before its first change in each decoding call), `I`nsert,
//! `U`pdate, `D`elete, `T`runcate, `C`ommit (plus `Y` types and `O`rigins,
//! which carry nothing a record needs). [`Decoder`] reads them in order and
//! gives back each transaction whole, at its commit: changes are never
//! handed on without the rest of their transaction.
//!
//! A change becomes one JSON object: the row's columns in table order
//! (values in their wire form, as `etl-extract postgres://` writes them),
//! then the change fields (`crate::changes`: `_op`, `_deleted`,
//! `_position`, the commit's LSN `0/16B3748`, and `_commit_time`). A delete carries the key columns
//! only. An update that changes the key is a delete of the old key, then
//! the new row. A value TOAST left unchanged in an update is not in the
//! message: its field is omitted, so an upsert keeps the stored value.

use std::collections::HashMap;

use anyhow::{Result, bail};

use super::change_values::{column_type, write_value};
use crate::changes;
pub use crate::changes::Op;
use crate::format::json;
use crate::format::temporal;
use crate::record::FieldType;

/// Microseconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// An LSN as PostgreSQL writes it: `16/B374D848`.
pub fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// An LSN from PostgreSQL's text form.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    let high = u64::from_str_radix(high, 16).ok()?;
    let low = u64::from_str_radix(low, 16).ok()?;
    (high <= 0xffff_ffff && low <= 0xffff_ffff).then_some(high << 32 | low)
}

/// A column of a published table, as a Relation message describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Part of the replica identity (the primary key, an index, or every
    /// column for REPLICA IDENTITY FULL).
    pub identity: bool,
    /// Its type.
    pub oid: u32,
    /// Its type modifier (a numeric's precision and scale), -1 for none.
    pub typmod: i32,
}

/// A published table.
#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub name: String,
    /// Its columns in order.
    pub columns: Vec<Column>,
}

impl Relation {
    /// The begin line's schema: each column's wire type where it has one,
    /// then the change fields.
    pub fn wire_schema(&self) -> Vec<(String, FieldType)> {
        self.columns
            .iter()
            .filter_map(|c| Some((c.name.clone(), column_type(c.oid, c.typmod)?)))
            .chain(changes::FIELDS.iter().map(|(n, t)| (n.to_string(), *t)))
            .collect()
    }
}

/// One change record.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// What it did.
    pub op: Op,
    /// The JSON object.
    pub record: Vec<u8>,
}

/// A committed transaction's changes to the published table.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    /// The LSN of its commit record.
    pub commit_lsn: u64,
    /// Just past its commit record: where the slot goes once it is loaded.
    pub end_lsn: u64,
    /// Its changes in order (none: it changed other tables only).
    pub changes: Vec<Change>,
    /// Decoding rows it took (every message, Begin and Commit included).
    pub rows: usize,
}

/// A value of one column in a tuple.
enum Cell<'a> {
    Null,
    /// A TOASTed value the update did not change: not sent.
    Unchanged,
    Text(&'a [u8]),
}

/// Reads pgoutput messages in the order the slot gives them.
#[derive(Default)]
pub struct Decoder {
    relations: HashMap<u32, Relation>,
    /// The key columns by name (the table's primary key, or its replica
    /// identity when it has none): what a delete carries.
    key: Vec<String>,
    open: Option<Open>,
    /// The newest Relation message's table.
    latest: Option<u32>,
}

struct Open {
    commit_time: i64,
    /// Changes decoded so far: op and the record's fields (before the
    /// change fields, which need the commit).
    changes: Vec<(Op, Vec<u8>)>,
    rows: usize,
}

/// A cursor over a message's bytes; running past the end is an error that
/// names the message.
struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let Some(end) = self.at.checked_add(n).filter(|&e| e <= self.data.len()) else {
            bail!(
                "a pgoutput message ends early ({} bytes, message {:?})",
                self.data.len(),
                self.data.first().map(|&b| b as char)
            );
        };
        let out = &self.data[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into()?))
    }
    /// A NUL-terminated string.
    fn string(&mut self) -> Result<String> {
        let rest = &self.data[self.at..];
        let Some(n) = memchr::memchr(0, rest) else {
            bail!("a pgoutput string has no end");
        };
        self.at += n + 1;
        Ok(String::from_utf8_lossy(&rest[..n]).into_owned())
    }
    fn tuple(&mut self) -> Result<Vec<Cell<'a>>> {
        let n = self.u16()?;
        let mut cells = Vec::with_capacity(n as usize);
        for _ in 0..n {
            cells.push(match self.u8()? {
                b'n' => Cell::Null,
                b'u' => Cell::Unchanged,
                b't' => {
                    let len = self.u32()? as usize;
                    Cell::Text(self.take(len)?)
                }
                other => bail!(
                    "a pgoutput column in format {:?}, which protocol 1 does not send",
                    other as char
                ),
            });
        }
        Ok(cells)
    }
}

impl Decoder {
    /// A decoder whose deletes carry `key` (the table's primary key
    /// columns; empty: the replica identity's columns).
    pub fn new(key: Vec<String>) -> Decoder {
        Decoder {
            key,
            ..Decoder::default()
        }
    }

    /// The table of the newest Relation message.
    pub fn relation(&self) -> Option<&Relation> {
        self.relations.get(&self.latest?)
    }

    /// Reads one message; a transaction comes back at its commit.
    pub fn push(&mut self, data: &[u8]) -> Result<Option<Transaction>> {
        let mut m = Bytes { data, at: 1 };
        if let Some(open) = &mut self.open {
            open.rows += 1;
        }
        match data.first() {
            Some(b'B') => {
                let _final_lsn = m.u64()?;
                let commit_time = m.u64()? as i64;
                self.open = Some(Open {
                    commit_time,
                    changes: Vec::new(),
                    rows: 1,
                });
            }
            Some(b'C') => {
                let _flags = m.u8()?;
                let commit_lsn = m.u64()?;
                let end_lsn = m.u64()?;
                let commit_time = m.u64()? as i64;
                let Some(open) = self.open.take() else {
                    bail!("a pgoutput commit without its begin");
                };
                let time =
                    temporal::format_instant(commit_time.max(open.commit_time) + PG_EPOCH_MICROS)
                        .unwrap_or_default();
                let tail = changes::tail(&lsn_text(commit_lsn), &time);
                let changes = open
                    .changes
                    .into_iter()
                    .map(|(op, mut record)| {
                        changes::finish(&mut record, op, &tail);
                        Change { op, record }
                    })
                    .collect();
                return Ok(Some(Transaction {
                    commit_lsn,
                    end_lsn,
                    changes,
                    rows: open.rows,
                }));
            }
            Some(b'R') => {
                let id = m.u32()?;
                let schema = m.string()?;
                let name = m.string()?;
                let _identity = m.u8()?;
                let n = m.u16()?;
                let mut columns = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let flags = m.u8()?;
                    columns.push(Column {
                        name: m.string()?,
                        identity: flags & 1 == 1,
                        oid: m.u32()?,
                        typmod: m.u32()? as i32,
                    });
                }
                self.relations.insert(
                    id,
                    Relation {
                        schema,
                        name,
                        columns,
                    },
                );
                self.latest = Some(id);
            }
            Some(b'I') => {
                let relation = self.relation_of(m.u32()?)?;
                if m.u8()? != b'N' {
                    bail!("a pgoutput insert without its new row");
                }
                let record = row(relation, &m.tuple()?, |_| true)?;
                self.change(Op::Insert, record)?;
            }
            Some(b'U') => {
                let relation = self.relation_of(m.u32()?)?;
                let mut kind = m.u8()?;
                let mut old = None;
                if kind == b'K' || kind == b'O' {
                    old = Some(m.tuple()?);
                    kind = m.u8()?;
                }
                if kind != b'N' {
                    bail!("a pgoutput update without its new row");
                }
                let new = m.tuple()?;
                let key = self.key_columns(relation);
                // The key changed: the old row goes first.
                if let Some(old) = &old
                    && key.iter().any(|&i| {
                        let before = cell_bytes(old.get(i));
                        let after = cell_bytes(new.get(i));
                        after.is_some() && before != after
                    })
                {
                    let gone = row(relation, old, |i| key.contains(&i))?;
                    let record = row(relation, &new, |_| true)?;
                    self.change(Op::Delete, gone)?;
                    self.change(Op::Update, record)?;
                } else {
                    let record = row(relation, &new, |_| true)?;
                    self.change(Op::Update, record)?;
                }
            }
            Some(b'D') => {
                let relation = self.relation_of(m.u32()?)?;
                let kind = m.u8()?;
                if kind != b'K' && kind != b'O' {
                    bail!("a pgoutput delete without its old key");
                }
                let old = m.tuple()?;
                let key = self.key_columns(relation);
                let record = row(relation, &old, |i| key.contains(&i))?;
                self.change(Op::Delete, record)?;
            }
            Some(b'T') => {
                let n = m.u32()?;
                let _options = m.u8()?;
                let mut names = Vec::new();
                for _ in 0..n {
                    if let Some(r) = self.relations.get(&m.u32()?) {
                        names.push(format!("{}.{}", r.schema, r.name));
                    }
                }
                bail!(
                    "TRUNCATE of {} cannot be handed on as row changes, and the slot cannot \
                     move past it; hint: leave truncate out of the publication (ALTER \
                     PUBLICATION ... SET (publish = 'insert, update, delete'), as --create-slot \
                     makes it), drop the slot (SELECT pg_drop_replication_slot(...)), load the \
                     table again in full (etl-extract ... | etl-load ... --mode replace), then \
                     --create-slot --restart-from end",
                    if names.is_empty() {
                        "the table".to_string()
                    } else {
                        names.join(", ")
                    }
                );
            }
            // Types, origins and logical messages: nothing for a record.
            Some(b'Y' | b'O' | b'M') => {}
            Some(&other) => bail!("an unknown pgoutput message {:?}", other as char),
            None => bail!("an empty pgoutput message"),
        }
        Ok(None)
    }

    fn relation_of(&self, id: u32) -> Result<&Relation> {
        match self.relations.get(&id) {
            Some(r) => Ok(r),
            None => bail!("a pgoutput change to table {id} before its relation message"),
        }
    }

    /// The indexes of the key columns a delete carries.
    fn key_columns(&self, relation: &Relation) -> Vec<usize> {
        let by_name: Vec<usize> = relation
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| self.key.contains(&c.name))
            .map(|(i, _)| i)
            .collect();
        if !self.key.is_empty() && by_name.len() == self.key.len() {
            return by_name;
        }
        relation
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.identity)
            .map(|(i, _)| i)
            .collect()
    }

    fn change(&mut self, op: Op, record: Vec<u8>) -> Result<()> {
        match &mut self.open {
            Some(open) => {
                open.changes.push((op, record));
                Ok(())
            }
            None => bail!("a pgoutput change outside a transaction"),
        }
    }
}

fn cell_bytes<'a>(cell: Option<&Cell<'a>>) -> Option<&'a [u8]> {
    match cell {
        Some(Cell::Text(t)) => Some(t),
        _ => None,
    }
}

/// The fields `keep` selects, as an open JSON object (`{"id":1,"a":"x"`,
/// no closing brace: the change fields follow).
fn row(relation: &Relation, cells: &[Cell<'_>], keep: impl Fn(usize) -> bool) -> Result<Vec<u8>> {
    if cells.len() > relation.columns.len() {
        bail!(
            "a pgoutput row of {} columns for table {}.{} of {}",
            cells.len(),
            relation.schema,
            relation.name,
            relation.columns.len()
        );
    }
    let mut out = Vec::with_capacity(64 * cells.len() + 2);
    out.push(b'{');
    for (i, (cell, column)) in cells.iter().zip(&relation.columns).enumerate() {
        if !keep(i) {
            continue;
        }
        let value = match cell {
            Cell::Unchanged => continue,
            Cell::Null => None,
            Cell::Text(t) => Some(*t),
        };
        if out.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(&json::key_prefix(&column.name));
        match value {
            None => out.extend_from_slice(b"null"),
            Some(text) => write_value(&mut out, column.oid, text),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relation_message() -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend_from_slice(&16384u32.to_be_bytes());
        m.extend_from_slice(b"public\0orders\0");
        m.push(b'd');
        m.extend_from_slice(&3u16.to_be_bytes());
        for (flags, name, oid) in [(1u8, "id", 20u32), (0, "amount", 1700), (0, "at", 1184)] {
            m.push(flags);
            m.extend_from_slice(name.as_bytes());
            m.push(0);
            m.extend_from_slice(&oid.to_be_bytes());
            m.extend_from_slice(&(-1i32).to_be_bytes());
        }
        m
    }

    fn tuple(m: &mut Vec<u8>, cells: &[Option<&str>]) {
        m.extend_from_slice(&(cells.len() as u16).to_be_bytes());
        for c in cells {
            match c {
                None => m.push(b'n'),
                Some("~") => m.push(b'u'),
                Some(t) => {
                    m.push(b't');
                    m.extend_from_slice(&(t.len() as u32).to_be_bytes());
                    m.extend_from_slice(t.as_bytes());
                }
            }
        }
    }

    fn begin() -> Vec<u8> {
        let mut m = vec![b'B'];
        m.extend_from_slice(&0x100u64.to_be_bytes());
        m.extend_from_slice(&0u64.to_be_bytes());
        m.extend_from_slice(&7u32.to_be_bytes());
        m
    }

    fn commit() -> Vec<u8> {
        let mut m = vec![b'C', 0];
        m.extend_from_slice(&0x1_0000_0100u64.to_be_bytes());
        m.extend_from_slice(&0x1_0000_0138u64.to_be_bytes());
        m.extend_from_slice(&1_500_000u64.to_be_bytes());
        m
    }

    #[test]
    fn a_transaction_comes_whole_at_its_commit() {
        let mut d = Decoder::new(vec!["id".into()]);
        assert_eq!(d.push(&begin()).unwrap(), None);
        d.push(&relation_message()).unwrap();
        let mut insert = vec![b'I'];
        insert.extend_from_slice(&16384u32.to_be_bytes());
        insert.push(b'N');
        tuple(
            &mut insert,
            &[Some("1"), Some("12.50"), Some("2024-01-02 03:04:05.5+00")],
        );
        assert_eq!(d.push(&insert).unwrap(), None);
        let mut update = vec![b'U'];
        update.extend_from_slice(&16384u32.to_be_bytes());
        update.push(b'K');
        tuple(&mut update, &[Some("1"), None, None]);
        update.push(b'N');
        tuple(&mut update, &[Some("2"), Some("NaN"), Some("~")]);
        d.push(&update).unwrap();
        let mut delete = vec![b'D'];
        delete.extend_from_slice(&16384u32.to_be_bytes());
        delete.push(b'K');
        tuple(&mut delete, &[Some("2"), None, None]);
        d.push(&delete).unwrap();
        let tx = d.push(&commit()).unwrap().unwrap();
        assert_eq!(tx.end_lsn, 0x1_0000_0138);
        assert_eq!(tx.rows, 6);
        let records: Vec<String> = tx
            .changes
            .iter()
            .map(|c| String::from_utf8(c.record.clone()).unwrap())
            .collect();
        let tail = r#""_position":"1/100","_commit_time":"2000-01-01T00:00:01.5+00:00"}"#;
        assert_eq!(
            records,
            vec![
                format!(
                    r#"{{"id":1,"amount":12.50,"at":"2024-01-02T03:04:05.5+00:00","_op":"insert","_deleted":false,{tail}"#
                ),
                format!(r#"{{"id":1,"_op":"delete","_deleted":true,{tail}"#),
                format!(r#"{{"id":2,"amount":"NaN","_op":"update","_deleted":false,{tail}"#),
                format!(r#"{{"id":2,"_op":"delete","_deleted":true,{tail}"#),
            ]
        );
    }

    #[test]
    fn lsns_read_and_write_as_postgresql_does() {
        assert_eq!(lsn_text(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("16"), None);
        assert_eq!(parse_lsn("1/100000000"), None);
    }

    #[test]
    fn a_truncate_is_refused_with_what_to_do() {
        let mut d = Decoder::new(Vec::new());
        d.push(&begin()).unwrap();
        d.push(&relation_message()).unwrap();
        let mut t = vec![b'T'];
        t.extend_from_slice(&1u32.to_be_bytes());
        t.push(0);
        t.extend_from_slice(&16384u32.to_be_bytes());
        let e = d.push(&t).unwrap_err().to_string();
        assert!(
            e.starts_with("TRUNCATE of public.orders cannot be handed on"),
            "{e}"
        );
    }
}
