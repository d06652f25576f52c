//! A MySQL or MariaDB binary log as a watch source: change data capture
//! of one table (the log's reading and decoding are
//! `crate::mysql::binlog`).
//!
//! The server keeps no reader position: the checkpoint does. A batch
//! closes only between transactions; after it was handed on (after --exec
//! exited 0) the checkpoint moves past its last transaction. After a crash
//! the batch named in the checkpoint is read again from the checkpoint's
//! position up to its last transaction and sent with its id, so etl-load
//! skips it if it committed it. A first run starts at the log's current
//! end (load the table in full once, then follow its changes). While no
//! batch is open, the position moves past transactions that changed
//! other tables, so a later run does not read them again.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::contract::{
    AtRest, Body, BrokerOptions, BrokerSource, Message, Position, Previous, RestartFrom,
};
use super::transactions::{Transactions, wait_more};
use crate::mysql::binlog::{Binlog, BinlogPlan, LogPos, Transaction};
use crate::record::FieldType;

/// A change in the binary log: its transaction's end and its place in it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct LogAt {
    end: LogPos,
    index: u32,
}

impl Position for LogAt {
    fn json(&self) -> Value {
        format!("{}#{}", self.end, self.index).into()
    }

    fn text(&self) -> String {
        format!(
            "change {} of the transaction ending at {}",
            self.index, self.end
        )
    }
}

/// A table's binary log read by etl-watch.
pub(super) struct BinlogSource {
    log: Binlog,
    /// Every transaction up to here was handed on (or changed other
    /// tables): the checkpoint's position.
    acked: LogPos,
    /// Read up to here (the open batch and the backlog included).
    taken: LogPos,
    /// Transactions read but not yet in the batch.
    backlog: Transactions<LogAt>,
    /// Messages given to the batch and not yet acknowledged.
    pending: usize,
    /// --once: the log's end when the run began; nothing committed after
    /// it is read, so a run ends however busy the server is.
    once_until: Option<LogPos>,
    started_over: bool,
}

impl BinlogSource {
    /// Opens the log at the checkpoint's position, or (a first run, or
    /// --restart-from start|end) at its current end.
    pub(super) fn open(
        plan: &BinlogPlan,
        options: BrokerOptions,
        previous: Option<&Previous<BinlogState>>,
    ) -> Result<BinlogSource> {
        let log = Binlog::open(plan)?;
        let identity = format!("mysql;{}.{}", log.database, log.table);
        let saved = previous
            .filter(|p| p.identity == identity)
            .and_then(|p| p.state.as_ref()?.position.clone());
        let (start, started_over) = match (saved, options.restart) {
            (Some(_), Some(RestartFrom::Start | RestartFrom::End)) => (log.current()?, true),
            (Some(saved), _) => (saved, false),
            (None, _) => (log.current()?, false),
        };
        Ok(BinlogSource {
            log,
            acked: start.clone(),
            taken: start,
            backlog: Transactions::default(),
            pending: 0,
            once_until: None,
            started_over,
        })
    }

    /// Puts the changes of `txs` into the backlog, one entry per
    /// transaction, and moves what is read.
    fn read(&mut self, txs: Vec<Transaction>) {
        for tx in txs {
            self.taken = tx.end.clone();
            if tx.changes.is_empty() {
                continue;
            }
            let table = format!("{}.{}", self.log.database, self.log.table);
            let messages = tx
                .changes
                .into_iter()
                .enumerate()
                .map(|(index, (_, record))| Message {
                    position: LogAt {
                        end: tx.end.clone(),
                        index: index as u32,
                    },
                    subject: table.clone(),
                    body: Body::Record(record),
                    ack: None,
                })
                .collect();
            self.backlog.push(messages, 0);
        }
    }

    /// Whole transactions from the backlog, up to `max` changes, counted
    /// as given to the batch.
    fn next(&mut self, max: usize) -> Vec<Message<LogAt>> {
        let out = self.backlog.next(max);
        self.pending += out.len();
        out
    }
}

impl BrokerSource for BinlogSource {
    type Position = LogAt;
    type State = BinlogState;
    type Batch = BinlogBatch;

    fn name(&self) -> String {
        format!("binary log of {}.{}", self.log.database, self.log.table)
    }

    fn identity(&self) -> String {
        format!("mysql;{}.{}", self.log.database, self.log.table)
    }

    fn fetch(&mut self, max: usize, wait: Option<Duration>) -> Result<Vec<Message<LogAt>>> {
        let started = Instant::now();
        loop {
            if !self.backlog.is_empty() {
                return Ok(self.next(max));
            }
            if wait.is_none() && self.once_until.is_none() {
                self.once_until = Some(self.log.current()?);
            }
            let txs = self
                .log
                .read(&self.taken, max, None, self.once_until.as_ref())?;
            self.read(txs);
            if !self.backlog.is_empty() {
                return Ok(self.next(max));
            }
            if self.pending == 0 {
                // Only other tables' transactions since: pass them.
                self.acked = self.taken.clone();
            }
            if !wait_more(started, wait) {
                return Ok(Vec::new());
            }
        }
    }

    fn ack(&mut self, messages: &[Message<LogAt>]) -> Result<()> {
        self.pending = self.pending.saturating_sub(messages.len());
        Ok(())
    }

    fn handed_on(&mut self, messages: &[Message<LogAt>]) {
        if let Some(end) = messages.iter().map(|m| &m.position.end).max()
            && *end > self.acked
        {
            self.acked = end.clone();
        }
    }

    fn positions(&self, messages: &[Message<LogAt>]) -> BinlogBatch {
        let ends = messages.iter().map(|m| m.position.end.clone());
        BinlogBatch {
            first: ends.clone().min().unwrap_or_else(|| self.acked.clone()),
            last: ends.max().unwrap_or_else(|| self.acked.clone()),
            changes: messages.len(),
        }
    }

    fn recover(&mut self, batch: &BinlogBatch) -> Result<Vec<Message<LogAt>>> {
        if batch.last <= self.acked {
            return Ok(Vec::new());
        }
        let txs = self
            .log
            .read(&self.acked, usize::MAX, Some(&batch.last), None)?;
        if txs.last().map(|t| &t.end) != Some(&batch.last) {
            bail!(
                "{}: the batch in flight ended at {}, which the binary log no longer reaches \
                 from {}",
                self.name(),
                batch.last,
                self.acked
            );
        }
        self.read(txs);
        Ok(self.next(usize::MAX))
    }

    fn state(&self) -> BinlogState {
        BinlogState {
            position: Some(self.acked.clone()),
        }
    }

    fn restore(&mut self, state: BinlogState) {
        if self.started_over {
            return;
        }
        if let Some(p) = state.position
            && p > self.acked
        {
            self.acked = p.clone();
            self.taken = p;
        }
    }

    fn started_over(&self) -> bool {
        self.started_over
    }

    fn schema(&self) -> Vec<(String, FieldType)> {
        self.log.schema()
    }

    fn standing(&mut self) -> Option<String> {
        let end = self.log.current().ok()?;
        Some(format!(
            "binary log read to {}; the log ends at {end}",
            self.acked
        ))
    }
}

/// What the checkpoint keeps: `{"position":"binlog.000003:1234"}`, where
/// reading goes on.
#[derive(Debug, Default, PartialEq)]
pub(super) struct BinlogState {
    position: Option<LogPos>,
}

fn log_pos(value: Option<&Value>, name: &str) -> Result<LogPos, String> {
    value
        .and_then(Value::as_str)
        .and_then(LogPos::parse)
        .ok_or_else(|| format!("no {name} position"))
}

impl AtRest for BinlogState {
    fn to_json(&self) -> Value {
        match &self.position {
            Some(p) => json!({ "position": p.to_string() }),
            None => Value::Null,
        }
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        Ok(BinlogState {
            position: match value.get("position") {
                None | Some(Value::Null) => None,
                p => Some(log_pos(p, "position")?),
            },
        })
    }
}

/// The positions of a batch: `{"broker":"mysql","first":"binlog.000003:1234",
/// "last":...,"changes":N}`, the ends of its first and last transactions.
#[derive(Debug, PartialEq)]
pub(super) struct BinlogBatch {
    first: LogPos,
    last: LogPos,
    changes: usize,
}

impl AtRest for BinlogBatch {
    fn to_json(&self) -> Value {
        json!({
            "broker": "mysql",
            "first": self.first.to_string(),
            "last": self.last.to_string(),
            "changes": self.changes,
        })
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        Ok(BinlogBatch {
            first: log_pos(value.get("first"), "first")?,
            last: log_pos(value.get("last"), "last")?,
            changes: value.get("changes").and_then(Value::as_u64).unwrap_or(0) as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_and_the_state_read_back_as_written() {
        let batch = json!({"broker": "mysql", "first": "binlog.000001:794",
            "last": "binlog.000002:120", "changes": 3});
        let read = BinlogBatch::from_json(&batch).unwrap();
        assert_eq!(read.to_json().to_string(), batch.to_string());
        assert!(read.first < read.last);
        let state = json!({"position": "binlog.000001:794"});
        assert_eq!(BinlogState::from_json(&state).unwrap().to_json(), state);
        assert!(BinlogBatch::from_json(&json!({"first": "x"})).is_err());
    }
}
