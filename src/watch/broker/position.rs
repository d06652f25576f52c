//! The positions of messages, one type per broker, each with its JSON form
//! (a record's `seq`) and its words in a reject's reason:
//!
//! - NATS JetStream: the stream sequence, `42`, "sequence 42";
//! - Redis: the stream entry id (`crate::client::redis::EntryId`),
//!   `"1700000000000-0"`, "sequence 1700000000000-0";
//! - Kafka: the partition and offset, `{"partition":1,"offset":10}`,
//!   "partition 1 offset 10".
//!
//! JetStream sequences handed on are kept as ranges (`SeqSet`, `ranges`).
//!
//! A source to come brings its own type here, implementing `Position`: a
//! PostgreSQL LSN, a MySQL binlog file and position, an object's key and
//! version. The loop, the batch ids and the checkpoint take it as they
//! take these.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::contract::Position;
use crate::client::redis::EntryId;

/// A message's sequence number in a JetStream stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct StreamSeq(pub u64);

impl Position for StreamSeq {
    fn json(&self) -> Value {
        self.0.into()
    }
}

impl Position for EntryId {
    fn json(&self) -> Value {
        self.to_string().into()
    }
}

/// A set of stream sequences kept as ranges (first..=last by first): the
/// sequences of batches are mostly consecutive.
#[derive(Debug, Default)]
pub(super) struct SeqSet(BTreeMap<u64, u64>);

impl SeqSet {
    pub(super) fn contains(&self, seq: u64) -> bool {
        self.0
            .range(..=seq)
            .next_back()
            .is_some_and(|(_, &last)| seq <= last)
    }

    pub(super) fn insert(&mut self, seq: u64) {
        if self.contains(seq) {
            return;
        }
        let before = self
            .0
            .range(..seq)
            .next_back()
            .filter(|(_, last)| **last + 1 == seq)
            .map(|(&first, _)| first);
        // Joins the range ending just before and the one starting just after.
        let after = seq.checked_add(1).and_then(|n| self.0.remove(&n));
        self.0.insert(before.unwrap_or(seq), after.unwrap_or(seq));
    }

    /// Forgets the sequences up to `floor`.
    pub(super) fn forget_through(&mut self, floor: u64) {
        let mut kept = self.0.split_off(&(floor + 1));
        if let Some((_, &last)) = self.0.iter().next_back()
            && last > floor
        {
            kept.insert(floor + 1, last);
        }
        self.0 = kept;
    }

    /// Adds `first..=last`, which holds none of the set (a checkpoint's
    /// range above the ack floor).
    pub(super) fn insert_range(&mut self, first: u64, last: u64) {
        self.0.insert(first, last);
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.0.iter().map(|(&a, &b)| (a, b))
    }
}

/// Sorted sequences as ranges of consecutive ones, first..=last.
pub(super) fn ranges(seqs: impl IntoIterator<Item = u64>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for s in seqs {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == s => *last = s,
            _ => out.push((s, s)),
        }
    }
    out
}

/// A Kafka message's partition and offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PartitionOffset {
    /// The partition's index.
    pub partition: i32,
    /// The offset in the partition.
    pub offset: i64,
}

impl Position for PartitionOffset {
    fn json(&self) -> Value {
        json!({ "partition": self.partition, "offset": self.offset })
    }

    fn text(&self) -> String {
        format!("partition {} offset {}", self.partition, self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_read_as_before_in_records_and_rejects() {
        assert_eq!(StreamSeq(42).json().to_string(), "42");
        assert_eq!(StreamSeq(42).text(), "sequence 42");
        let id = EntryId {
            ms: 1_700_000_000_000,
            n: 3,
        };
        assert_eq!(id.json().to_string(), r#""1700000000000-3""#);
        assert_eq!(id.text(), "sequence 1700000000000-3");
        let at = PartitionOffset {
            partition: 1,
            offset: 10,
        };
        assert_eq!(at.json().to_string(), r#"{"partition":1,"offset":10}"#);
        assert_eq!(at.text(), "partition 1 offset 10");
    }

    #[test]
    fn sequence_sets_merge_and_forget_below_the_floor() {
        let mut set = SeqSet::default();
        for seq in [5, 3, 4, 9, 1, 8, 10] {
            set.insert(seq);
        }
        assert_eq!(set.ranges().collect::<Vec<_>>(), [(1, 1), (3, 5), (8, 10)]);
        assert!(set.contains(4) && set.contains(10) && !set.contains(2) && !set.contains(7));
        set.insert(2);
        assert_eq!(set.ranges().collect::<Vec<_>>(), [(1, 5), (8, 10)]);
        set.forget_through(3);
        assert_eq!(set.ranges().collect::<Vec<_>>(), [(4, 5), (8, 10)]);
        set.forget_through(9);
        assert_eq!(set.ranges().collect::<Vec<_>>(), [(10, 10)]);
        set.forget_through(10);
        assert!(set.is_empty());
    }

    #[test]
    fn sequences_compress_into_ranges() {
        assert_eq!(ranges([1, 2, 3, 5, 7, 8]), vec![(1, 3), (5, 5), (7, 8)]);
    }
}

/// A change from a replication slot: its transaction's end (the LSN just
/// past its commit record, where the slot moves once it is loaded) and its
/// place in the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ChangeAt {
    pub end: u64,
    pub index: u32,
}

impl Position for ChangeAt {
    fn json(&self) -> Value {
        format!("{}#{}", crate::pg::changes::lsn_text(self.end), self.index).into()
    }

    fn text(&self) -> String {
        format!(
            "change {} of the transaction ending at {}",
            self.index,
            crate::pg::changes::lsn_text(self.end)
        )
    }
}
