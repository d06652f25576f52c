//! A PostgreSQL logical replication slot as a watch source: change data
//! capture of one published table (the slot's SQL side is
//! `crate::pg::slot`, the decoding `crate::pg::changes`).
//!
//! Transactions come whole: a batch closes only between two of them (a
//! transaction larger than --batch-rows is one batch). Reading never moves
//! the slot; it is advanced past a batch's last transaction once the batch
//! was handed on (after --exec exited 0). After a crash the slot gives the
//! same transactions again: the batch named in the checkpoint is rebuilt
//! from exactly the transactions up to its last LSN and sent with its id.
//! While nothing is open, the slot is moved up to the WAL position it was
//! read to, so that writes to other tables do not hold WAL on the server.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::contract::{AtRest, Body, BrokerOptions, BrokerSource, Message, Previous, RestartFrom};
use super::position::ChangeAt;
use super::transactions::{Transactions, wait_more};
use crate::pg::changes::{Transaction, lsn_text, parse_lsn};
use crate::pg::slot::{Slot, SlotPlan};
use crate::record::FieldType;

/// A replication slot read by etl-watch.
pub(super) struct SlotSource {
    slot: Slot,
    /// The end of the last transaction read and not yet acknowledged
    /// (in the open batch or the backlog): later looks skip up to it.
    taken: Option<u64>,
    /// Decoding rows the transactions up to `taken` take: a look asks for
    /// these and `max` more, so that it reaches new ones.
    taken_rows: usize,
    /// Transactions read but not yet handed to the batch.
    backlog: Transactions<ChangeAt>,
    /// --once: the WAL position when the run began; nothing committed
    /// after it is read, so a run ends however busy the table is.
    once_until: Option<u64>,
    /// How far the slot was moved by this or an earlier run (checkpoint).
    acked: Option<u64>,
    started_over: bool,
}

impl SlotSource {
    /// Opens the slot (creating it and the publication with
    /// --create-slot). A slot that is gone while the checkpoint shows
    /// changes were loaded is refused: the changes made since it went are
    /// in no slot; only --restart-from end (or start: a new slot starts
    /// now either way) makes a new one.
    pub(super) fn open(
        plan: &SlotPlan,
        options: BrokerOptions,
        previous: Option<&Previous<SlotState>>,
    ) -> Result<SlotSource> {
        let acked = previous
            .filter(|p| {
                p.identity.starts_with("postgres;")
                    && p.identity.ends_with(&format!(";{}", plan.slot))
            })
            .and_then(|p| p.state.as_ref()?.acked);
        let mut started_over = false;
        let server = crate::pg::conn::redact(&plan.url);
        let slot = Slot::open(plan, &mut || {
            let Some(acked) = acked else {
                return Ok(());
            };
            match options.restart {
                Some(RestartFrom::Start | RestartFrom::End) => {
                    started_over = true;
                    Ok(())
                }
                Some(RestartFrom::Checkpoint) => bail!(
                    "{server}: replication slot {:?} is gone and the checkpoint shows changes up \
                     to {} were loaded: a new slot starts at the current WAL position, so \
                     --restart-from checkpoint cannot go on after them; hint: load the table \
                     again in full, then --create-slot --restart-from end",
                    plan.slot,
                    lsn_text(acked)
                ),
                None => bail!(
                    "{server}: replication slot {:?} is gone, but the checkpoint shows changes up \
                     to {} were loaded: changes made since it went are in no slot; hint: load \
                     the table again in full, then --create-slot --restart-from end makes a new \
                     slot that starts now",
                    plan.slot,
                    lsn_text(acked)
                ),
            }
        })?;
        Ok(SlotSource {
            slot,
            taken: None,
            taken_rows: 0,
            backlog: Transactions::default(),
            once_until: None,
            acked: if started_over { None } else { acked },
            started_over,
        })
    }

    /// Puts the changes of the transactions after what is taken into the
    /// backlog, one entry per transaction. A transaction without a change
    /// to the table (an older server sends those) gives none: the slot
    /// passes it with the next batch, or while idle.
    fn read(&mut self, txs: Vec<Transaction>) {
        for tx in txs {
            let done = self.taken.is_some_and(|t| tx.end_lsn <= t);
            if done || tx.end_lsn <= self.slot.confirmed || tx.changes.is_empty() {
                continue;
            }
            self.taken = Some(tx.end_lsn);
            self.taken_rows += tx.rows;
            let messages = tx
                .changes
                .into_iter()
                .enumerate()
                .map(|(index, change)| Message {
                    position: ChangeAt {
                        end: tx.end_lsn,
                        index: index as u32,
                    },
                    subject: self.slot.table.clone(),
                    body: Body::Record(change.record),
                    ack: None,
                })
                .collect();
            self.backlog.push(messages, tx.rows);
        }
    }
}

impl BrokerSource for SlotSource {
    type Position = ChangeAt;
    type State = SlotState;
    type Batch = SlotBatch;

    fn name(&self) -> String {
        format!("replication slot {} ({})", self.slot.slot, self.slot.table)
    }

    fn identity(&self) -> String {
        format!("postgres;{};{}", self.slot.database, self.slot.slot)
    }

    fn fetch(&mut self, max: usize, wait: Option<Duration>) -> Result<Vec<Message<ChangeAt>>> {
        let started = Instant::now();
        loop {
            if !self.backlog.is_empty() {
                return Ok(self.backlog.next(max));
            }
            let wal = match wait {
                Some(_) => self.slot.current_wal()?,
                None => match self.once_until {
                    Some(until) => until,
                    None => *self.once_until.insert(self.slot.current_wal()?),
                },
            };
            let limit = self.taken_rows.saturating_add(max);
            let txs = self.slot.peek(Some(wal), Some(limit))?;
            // A look that stopped at its row limit may not have reached
            // `wal` (a server before 15 sends the other tables'
            // transactions, empty, and they count).
            let decoded: usize = txs.iter().map(|t| t.rows).sum();
            let last = txs.last().map(|t| t.end_lsn);
            self.read(txs);
            if !self.backlog.is_empty() {
                return Ok(self.backlog.next(max));
            }
            if self.taken.is_none() {
                if decoded < limit {
                    // Nothing of the table committed before `wal`: the
                    // slot can go there, and the server may drop that WAL.
                    self.slot.advance(wal)?;
                } else if let Some(last) = last {
                    // Only other tables' transactions, up to the limit:
                    // past them, and look again at once.
                    self.slot.advance(last)?;
                    continue;
                }
            }
            if !wait_more(started, wait) {
                return Ok(Vec::new());
            }
        }
    }

    fn ack(&mut self, messages: &[Message<ChangeAt>]) -> Result<()> {
        let Some(end) = messages.iter().map(|m| m.position.end).max() else {
            return Ok(());
        };
        // A batch holds whole transactions: every one up to its last end
        // was handed on.
        self.slot.advance(end)?;
        if self.taken.is_some_and(|t| t <= end) {
            self.taken = None;
        }
        // What is still read and not acknowledged: the backlog.
        self.taken_rows = self.backlog.rows();
        Ok(())
    }

    fn positions(&self, messages: &[Message<ChangeAt>]) -> SlotBatch {
        let ends = messages.iter().map(|m| m.position.end);
        SlotBatch {
            slot: self.slot.slot.clone(),
            first: ends.clone().min().unwrap_or_default(),
            last: ends.max().unwrap_or_default(),
            changes: messages.len(),
        }
    }

    fn recover(&mut self, batch: &SlotBatch) -> Result<Vec<Message<ChangeAt>>> {
        // Transactions that commit before the batch's last end: exactly
        // the batch's (those before it were acknowledged).
        let txs = self.slot.peek(Some(batch.last), None)?;
        let txs = txs
            .into_iter()
            .filter(|t| t.end_lsn <= batch.last)
            .collect();
        self.read(txs);
        Ok(self.backlog.next(usize::MAX))
    }

    fn state(&self) -> SlotState {
        SlotState {
            acked: self
                .acked
                .max((self.slot.confirmed > 0).then_some(self.slot.confirmed)),
        }
    }

    fn restore(&mut self, state: SlotState) {
        if !self.started_over {
            self.acked = self.acked.max(state.acked);
        }
    }

    fn started_over(&self) -> bool {
        self.started_over
    }

    fn schema(&self) -> Vec<(String, FieldType)> {
        self.slot.relation.wire_schema()
    }

    fn standing(&mut self) -> Option<String> {
        let retained = self.slot.retained().ok()?;
        Some(format!(
            "replication slot {:?} is at {}{}; the server keeps {retained} bytes of WAL for it",
            self.slot.slot,
            lsn_text(self.slot.confirmed),
            if self.slot.created {
                " (created by this run)"
            } else {
                ""
            }
        ))
    }
}

/// What a slot's checkpoint keeps: `{"acked":"0/16B3748"}`, where the
/// slot was moved last.
#[derive(Debug, Default, PartialEq)]
pub(super) struct SlotState {
    acked: Option<u64>,
}

fn lsn(value: Option<&Value>, name: &str) -> Result<u64, String> {
    value
        .and_then(Value::as_str)
        .and_then(parse_lsn)
        .ok_or_else(|| format!("no {name} LSN"))
}

impl AtRest for SlotState {
    fn to_json(&self) -> Value {
        match self.acked {
            Some(l) => json!({ "acked": lsn_text(l) }),
            None => Value::Null,
        }
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        Ok(SlotState {
            acked: match value.get("acked") {
                None | Some(Value::Null) => None,
                l => Some(lsn(l, "acked")?),
            },
        })
    }
}

/// The positions of a batch of changes: `{"broker":"postgres","slot":S,
/// "first":"0/...","last":"0/...","changes":N}`, the ends of its first and
/// last transactions.
#[derive(Debug, PartialEq)]
pub(super) struct SlotBatch {
    slot: String,
    first: u64,
    last: u64,
    changes: usize,
}

impl AtRest for SlotBatch {
    fn to_json(&self) -> Value {
        json!({
            "broker": "postgres",
            "slot": self.slot,
            "first": lsn_text(self.first),
            "last": lsn_text(self.last),
            "changes": self.changes,
        })
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        Ok(SlotBatch {
            slot: value
                .get("slot")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            first: lsn(value.get("first"), "first")?,
            last: lsn(value.get("last"), "last")?,
            changes: value.get("changes").and_then(Value::as_u64).unwrap_or(0) as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_and_the_state_read_back_as_written() {
        let batch = json!({"broker": "postgres", "slot": "etl", "first": "0/16B3748",
            "last": "1/A0", "changes": 7});
        let read = SlotBatch::from_json(&batch).unwrap();
        assert_eq!(read.last, 0x1_0000_00A0);
        assert_eq!(read.to_json().to_string(), batch.to_string());
        let state = json!({"acked": "0/16B3748"});
        assert_eq!(SlotState::from_json(&state).unwrap().to_json(), state);
        assert_eq!(SlotState::default().to_json(), Value::Null);
        assert!(SlotBatch::from_json(&json!({"first": "x"})).is_err());
    }
}
