//! The positions of messages, one type per broker, each with its JSON form
//! (a record's `seq`) and its words in a reject's reason:
//!
//! - NATS JetStream: the stream sequence, `42`, "sequence 42";
//! - Redis: the stream entry id (`crate::client::redis::EntryId`),
//!   `"1700000000000-0"`, "sequence 1700000000000-0";
//! - Kafka: the partition and offset, `{"partition":1,"offset":10}`,
//!   "partition 1 offset 10".
//!
//! A source to come brings its own type here, implementing `Position`: a
//! PostgreSQL LSN, a MySQL binlog file and position, an object's key and
//! version. The loop, the batch ids and the checkpoint take it as they
//! take these.

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
}
