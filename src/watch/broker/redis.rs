//! A Redis stream as a watch source, read through a consumer group (the
//! protocol client is `crate::client::redis`).
//!
//! New entries are read with XREADGROUP `>`, our own pending entries
//! first. Redis keeps each consumer's delivered but unacknowledged entries
//! (its pending entries list); after a restart they are read again from
//! it, so the batch named in the checkpoint is rebuilt from exactly the
//! entries it held. An entry's `payload` field is read by --format; an
//! entry without one is one record of all its fields.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::contract::{
    AtRest, Body, BrokerOptions, BrokerSource, Message, Previous, RestartFrom, refuse_restart,
};
use super::url::BrokerPlan;
use crate::client::redis::{Entry, EntryId, Resp};

/// Entries read from the pending list per call.
const PAGE: usize = 1000;

/// A Redis stream read by one consumer of a consumer group.
pub(super) struct RedisStream {
    conn: Resp,
    key: String,
    group: String,
    consumer: String,
    db: String,
    /// Reading our own pending entries after this id (`None`: done, new
    /// entries only).
    history: Option<EntryId>,
    /// Entries read ahead while rebuilding the batch in flight.
    backlog: VecDeque<Message<EntryId>>,
    /// The last entry of the last batch handed on and acknowledged: every
    /// entry up to it has been (kept in the checkpoint as `acked`).
    through: Option<EntryId>,
    /// The group was created again after it by this run (--restart-from
    /// checkpoint): the batch in flight comes as new entries.
    recreated: bool,
    /// The group was created again from the stream's start or end.
    started_over: bool,
}

impl RedisStream {
    /// Connects and makes sure the stream and the group exist (the stream
    /// only with --create-stream).
    /// When the checkpoint (`previous`) shows entries were loaded but the
    /// group or the stream is gone, it is created again only as
    /// --restart-from says: after the last entry handed on, or at the
    /// stream's start or end.
    pub(super) fn open(
        plan: &BrokerPlan,
        options: BrokerOptions,
        previous: Option<&Previous<RedisState>>,
    ) -> Result<RedisStream> {
        let BrokerPlan::Redis {
            url,
            key,
            group,
            consumer,
            tls,
        } = plan
        else {
            unreachable!("RedisStream::open is called for redis:// only");
        };
        let mut conn = Resp::connect(url, tls)?;
        let server = url.to_string();
        let db = url.path.trim_start_matches('/').to_string();
        let identity = format!("redis;{db};{key};{group};{consumer}");
        let through = previous
            .filter(|p| p.identity == identity)
            .and_then(|p| p.state.as_ref()?.acked);
        let mut start = if options.from_end { "$" } else { "0" }.to_string();
        let mut mkstream = false;
        let lost = match conn.key_type(key)?.as_slice() {
            b"stream" => (!conn.has_group(key, group)?)
                .then(|| format!("the consumer group {group:?} of stream {key:?} is gone")),
            b"none" if options.create_stream => {
                mkstream = true;
                Some(format!("the stream {key:?} is gone"))
            }
            b"none" => bail!(
                "{server}: there is no stream at key {key:?}; hint: --create-stream creates it"
            ),
            t => bail!(
                "{server}: key {key:?} holds a {}, not a stream",
                String::from_utf8_lossy(t)
            ),
        };
        let mut recreated = false;
        let mut started_over = false;
        if let (Some(lost), Some(through)) = (lost, through) {
            start = match options.restart {
                None => {
                    return Err(refuse_restart(
                        &server,
                        &lost,
                        &format!("its entries up to {through}"),
                        &if mkstream {
                            format!("the stream and its group {group:?}")
                        } else {
                            format!("group {group:?}")
                        },
                    ));
                }
                Some(RestartFrom::Checkpoint) => {
                    recreated = true;
                    through.to_string()
                }
                Some(RestartFrom::Start) => "0".into(),
                Some(RestartFrom::End) => "$".into(),
            };
            started_over = !recreated;
        }
        conn.create_group(key, group, &start, mkstream)?;
        Ok(RedisStream {
            conn,
            key: key.clone(),
            group: group.clone(),
            consumer: consumer.clone(),
            db,
            history: Some(EntryId::default()),
            backlog: VecDeque::new(),
            through,
            recreated,
            started_over,
        })
    }

    /// XREADGROUP from `from` (an id: our pending entries after it; `>`:
    /// new entries), waiting `block` for new ones.
    fn read_group(
        &mut self,
        from: &str,
        max: usize,
        block: Option<Duration>,
    ) -> Result<Vec<Message<EntryId>>> {
        let entries =
            self.conn
                .read_group(&self.key, &self.group, &self.consumer, from, max, block)?;
        Ok(entries
            .into_iter()
            .map(|Entry { id, fields }| {
                let body = match fields {
                    Some(mut pairs) => match pairs.iter().position(|(k, _)| k == b"payload") {
                        Some(i) => Body::Payload(pairs.swap_remove(i).1),
                        None => Body::Fields(pairs),
                    },
                    None => Body::Gone,
                };
                Message {
                    position: id,
                    subject: self.key.clone(),
                    body,
                    ack: None,
                }
            })
            .collect())
    }
}

impl BrokerSource for RedisStream {
    type Position = EntryId;
    type State = RedisState;
    type Batch = RedisBatch;

    fn name(&self) -> String {
        format!("redis stream {}", self.key)
    }

    fn identity(&self) -> String {
        format!(
            "redis;{};{};{};{}",
            self.db, self.key, self.group, self.consumer
        )
    }

    fn fetch(&mut self, max: usize, wait: Option<Duration>) -> Result<Vec<Message<EntryId>>> {
        if !self.backlog.is_empty() {
            let n = max.min(self.backlog.len());
            return Ok(self.backlog.drain(..n).collect());
        }
        if let Some(after) = self.history {
            let messages = self.read_group(&after.to_string(), max, None)?;
            match messages.last() {
                Some(last) => {
                    self.history = Some(last.position);
                    return Ok(messages);
                }
                None => self.history = None,
            }
        }
        self.read_group(">", max, wait)
    }

    fn ack(&mut self, messages: &[Message<EntryId>]) -> Result<()> {
        let ids: Vec<EntryId> = messages.iter().map(|m| m.position).collect();
        self.conn.ack(&self.key, &self.group, &ids)
    }

    fn positions(&self, messages: &[Message<EntryId>]) -> RedisBatch {
        RedisBatch {
            key: self.key.clone(),
            group: self.group.clone(),
            consumer: self.consumer.clone(),
            first: messages
                .iter()
                .map(|m| m.position)
                .min()
                .unwrap_or_default(),
            last: messages
                .iter()
                .map(|m| m.position)
                .max()
                .unwrap_or_default(),
            messages: messages.len(),
        }
    }

    fn recover(&mut self, batch: &RedisBatch) -> Result<Vec<Message<EntryId>>> {
        let (first, last) = (batch.first, batch.last);
        let mut out = Vec::new();
        let mut after = EntryId::default();
        loop {
            // A group created again after the last entry handed on has no
            // pending entries: the batch's entries are its next new ones.
            let from = if self.recreated {
                ">".to_string()
            } else {
                after.to_string()
            };
            let page = self.read_group(&from, PAGE, None)?;
            let Some(end) = page.last().map(|m| m.position) else {
                break;
            };
            after = end;
            let mut past = false;
            for m in page {
                if m.position > last {
                    past = true;
                    self.backlog.push_back(m);
                } else if m.position >= first {
                    out.push(m);
                } else {
                    // Left unacknowledged before the batch (a reject whose
                    // acknowledgement was cut off): taken after it.
                    self.backlog.push_back(m);
                }
            }
            if past {
                break;
            }
        }
        self.history = Some(after);
        Ok(out)
    }

    fn state(&self) -> RedisState {
        RedisState {
            acked: self.through,
        }
    }

    fn restore(&mut self, state: RedisState) {
        self.through = self.through.max(state.acked);
    }

    fn handed_on(&mut self, messages: &[Message<EntryId>]) {
        self.through = self.through.max(messages.iter().map(|m| m.position).max());
    }

    fn started_over(&self) -> bool {
        self.started_over
    }
}

/// What a Redis checkpoint keeps: `{"acked":"ms-n"}`, the last entry of
/// the last batch handed on; `null` before the first (and in checkpoints
/// written before etlkit kept it).
#[derive(Debug, Default, PartialEq)]
pub(super) struct RedisState {
    acked: Option<EntryId>,
}

/// An entry id as the checkpoint holds it, `"ms-n"`.
fn entry_id(value: Option<&Value>, name: &str) -> Result<EntryId, String> {
    value
        .and_then(Value::as_str)
        .and_then(|s| EntryId::parse(s.as_bytes()))
        .ok_or_else(|| format!("no {name} entry id"))
}

impl AtRest for RedisState {
    fn to_json(&self) -> Value {
        match self.acked {
            Some(id) => json!({ "acked": id.to_string() }),
            None => Value::Null,
        }
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        Ok(RedisState {
            acked: match value.get("acked") {
                None | Some(Value::Null) => None,
                id => Some(entry_id(id, "acked")?),
            },
        })
    }
}

/// The positions of a Redis batch: `{"broker":"redis","key":K,"group":G,
/// "consumer":C,"first":"ms-n","last":"ms-n","messages":N}`.
#[derive(Debug, PartialEq)]
pub(super) struct RedisBatch {
    key: String,
    group: String,
    consumer: String,
    /// The batch's entries are those of this consumer from `first` to
    /// `last`: what `recover` reads again.
    first: EntryId,
    last: EntryId,
    messages: usize,
}

impl AtRest for RedisBatch {
    fn to_json(&self) -> Value {
        json!({
            "broker": "redis",
            "key": self.key,
            "group": self.group,
            "consumer": self.consumer,
            "first": self.first.to_string(),
            "last": self.last.to_string(),
            "messages": self.messages,
        })
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        let text = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Ok(RedisBatch {
            key: text("key"),
            group: text("group"),
            consumer: text("consumer"),
            first: entry_id(value.get("first"), "first")?,
            last: entry_id(value.get("last"), "last")?,
            messages: value.get("messages").and_then(Value::as_u64).unwrap_or(0) as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state and the batch in flight as etlkit wrote them before
    /// positions were typed, and the state before `acked` was kept.
    #[test]
    fn checkpoints_of_earlier_releases_are_read() {
        let state = json!({"acked": "1700000000000-4"});
        let read = RedisState::from_json(&state).unwrap();
        assert_eq!(read.acked, EntryId::parse(b"1700000000000-4"));
        assert_eq!(read.to_json(), state);
        assert_eq!(RedisState::default().to_json(), Value::Null);
        let batch = json!({"broker": "redis", "key": "orders", "group": "etl",
            "consumer": "etl-watch", "first": "1700000000000-0", "last": "1700000000001-2",
            "messages": 5});
        let read = RedisBatch::from_json(&batch).unwrap();
        assert_eq!(
            read.last,
            EntryId {
                ms: 1_700_000_000_001,
                n: 2
            }
        );
        assert_eq!(read.to_json().to_string(), batch.to_string());
        assert!(RedisBatch::from_json(&json!({"first": "x"})).is_err());
    }
}
