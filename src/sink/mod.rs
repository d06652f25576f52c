//! Where records go. A sink takes parsed records and either commits all of
//! them or none; the load loop (`load.rs`) drives any sink the same way.

pub mod convert;

use anyhow::Result;
use serde_json::Value;

use crate::format::flat::Fields;
use crate::record::Schema;
use crate::wire::End;

/// How a load treats what the target already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// Keep it; add the new rows.
    Append,
    /// Swap it for the new rows in the same transaction (a file: written anew).
    Replace,
    /// Insert new keys, update existing ones (last record for a key wins,
    /// for the fields it carries).
    Upsert,
    /// For a partitioned dataset: swap the partitions the input has rows
    /// for, keep the others as they are.
    ReplacePartitions,
}

/// How records are written into a table of a database store.
#[derive(Debug, Clone)]
pub struct TableOptions {
    /// Append, replace or upsert.
    pub mode: LoadMode,
    /// Key columns for upsert (and for deletes).
    pub keys: Vec<String>,
    /// A boolean field: records where it is true delete their key's row.
    pub delete_when: Option<String>,
    /// Reject records with fields the table has no column for.
    pub strict: bool,
}

/// A destination for one load run.
pub trait Sink {
    /// A stream begins that started from bookmark `from` (null: no
    /// bookmark yet); refuse it if the stored bookmark is another one.
    fn check_start(&mut self, stream: &str, from: &Value) -> Result<()>;

    /// Sets up columns from the declared schema and a sample of records.
    fn prepare(&mut self, schema: &Schema, sample: &[&Fields<'_>]) -> Result<()>;

    /// Writes one record (`line` is its wire text). `Ok(Err(reason))`
    /// rejects the record; `Err` ends the run.
    fn insert(&mut self, fields: &Fields<'_>, line: &[u8]) -> Result<Result<(), String>>;

    /// A stream ended: keep its bookmark with the data.
    fn end_stream(&mut self, end: &End) -> Result<()>;

    /// Has a batch with this id (from `etl-watch`) been committed before
    /// into this sink's table, for `stream`? Targets that cannot tell
    /// answer no.
    fn batch_committed(&mut self, _stream: &str, _id: &str) -> Result<bool> {
        Ok(false)
    }

    /// Records a batch id for this sink's table and `stream`, committed
    /// with the batch's rows.
    fn record_batch(&mut self, _stream: &str, _id: &str) -> Result<()> {
        Ok(())
    }

    /// Makes everything written so far durable and visible (a segment
    /// commit); the run goes on in a new transaction.
    fn commit_point(&mut self) -> Result<()>;

    /// Finishes and commits the run; returns lines for `-v`.
    fn commit(self: Box<Self>) -> Result<Vec<String>>;

    /// Undoes everything since the last commit point.
    fn abort(self: Box<Self>);
}
