//! NATS JetStream as a watch source, through a durable pull consumer
//! (the protocol client is `crate::client::nats`).
//!
//! A batch after a restart is rebuilt by reading its messages from the
//! stream by sequence. A message rebuilt that way has no ack subject: the
//! consumer delivers it again once its ack wait runs out. And JetStream
//! delivers at least once: a message can come again after its
//! acknowledgement was confirmed (seen here with nats-server 2.9 under
//! load). So the sequences of every batch handed on are kept ("done", also
//! in the checkpoint) until the consumer's ack floor has passed them; a
//! delivery of one of them is acknowledged again, never passed on.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use serde_json::{Value, json};

use super::contract::{
    AtRest, Body, BrokerOptions, BrokerSource, Message, Previous, RestartFrom, refuse_restart,
};
use super::position::{SeqSet, StreamSeq, ranges};
use super::url::BrokerPlan;
use crate::client::nats::{CONSUMER_NOT_FOUND, Conn, STREAM_NOT_FOUND};

/// A durable JetStream pull consumer as a watch source.
pub(super) struct JetStream {
    conn: Conn,
    stream: String,
    durable: String,
    subject: String,
    created: String,
    ack_floor: u64,
    /// Sequences handed on (their batch's command exited 0) above the
    /// consumer's ack floor: a delivery of one of them is not passed on.
    done: SeqSet,
    /// When the ack floor was last asked for.
    floor_read: Option<Instant>,
    /// The consumer or stream was created again from the stream's start or
    /// end (--restart-from start|end).
    started_over: bool,
    /// How far the checkpoint said messages were handed on (a consumer
    /// created again after them starts with no ack floor of its own).
    prior: u64,
}

/// What a checkpoint of this durable on this subject says was handed on:
/// the stream's creation time then, and the last sequence up to which
/// every message was handed on (`None`: nothing yet, or an older
/// checkpoint that did not keep it).
fn previous_progress(
    previous: Option<&Previous<JetStreamState>>,
    stream: &str,
    durable: &str,
    subject: &str,
) -> Option<(String, u64)> {
    let previous = previous?;
    let mut parts = previous.identity.splitn(5, ';');
    let (Some("nats"), Some(s), Some(created), Some(d), Some(sub)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    if (s, d, sub) != (stream, durable, subject) {
        return None;
    }
    let through = previous.state.as_ref()?.through?;
    (through > 0).then(|| (created.to_string(), through))
}

/// How often the consumer's ack floor is read to forget sequences in `done`.
const FLOOR_EVERY: Duration = Duration::from_secs(1);

impl JetStream {
    /// Connects, finds (or, when allowed, creates) the stream and the
    /// durable consumer.
    ///
    /// When the checkpoint (`previous`) shows messages were handed on but
    /// the consumer or the stream is gone (or the stream was created
    /// again), the consumer is created again only as --restart-from says:
    /// after the last message handed on, or at the stream's start or end.
    pub(super) fn open(
        plan: &BrokerPlan,
        options: BrokerOptions,
        previous: Option<&Previous<JetStreamState>>,
    ) -> Result<JetStream> {
        let BrokerPlan::Nats {
            url,
            subject,
            durable,
            js_stream,
            ack_wait,
            auth,
        } = plan
        else {
            unreachable!("JetStream::open is called for nats:// only");
        };
        let mut conn = Conn::connect(url, auth)?;
        let server = url.to_string();
        let stream = match js_stream {
            Some(name) => name.clone(),
            None => {
                let names = conn.stream_names(subject)?;
                match names.as_slice() {
                    [one] => one.clone(),
                    [] => bail!(
                        "{server}: no JetStream stream holds subject {subject:?}; \
                         hint: create one (nats stream add), or let etl-watch create it with \
                         --create-stream --js-stream NAME"
                    ),
                    many => bail!(
                        "{server}: several streams hold subject {subject:?} ({}); name one with --js-stream",
                        many.join(", ")
                    ),
                }
            }
        };
        let progress = previous_progress(previous, &stream, durable, subject);
        let mut started_over = false;
        // A new stream numbers its messages from 1 again: the checkpoint's
        // sequences mean nothing in it.
        let new_stream = |lost: &str| -> Result<bool> {
            let Some((_, through)) = &progress else {
                return Ok(false);
            };
            match options.restart {
                None => Err(refuse_restart(
                    &server,
                    lost,
                    &format!("its messages up to sequence {through}"),
                    &format!("the stream and consumer {durable}"),
                )),
                Some(RestartFrom::Checkpoint) => bail!(
                    "{server}: {lost}; a new stream numbers its messages from 1 again, so the \
                     checkpoint's position means nothing in it; hint: --restart-from start or \
                     --restart-from end"
                ),
                Some(_) => Ok(true),
            }
        };
        let info = match conn.request(&format!("$JS.API.STREAM.INFO.{stream}"), &Value::Null)? {
            Ok(info) => info,
            Err(e) if e.err_code == STREAM_NOT_FOUND && options.create_stream => {
                started_over = new_stream(&format!("the stream {stream} is gone"))?;
                let config = json!({
                    "name": stream, "subjects": [subject], "storage": "file",
                    "retention": "limits", "discard": "old",
                });
                conn.request(&format!("$JS.API.STREAM.CREATE.{stream}"), &config)?
                    .map_err(|e| {
                        anyhow!("{server}: cannot create stream {stream}: {}", e.description)
                    })?
            }
            Err(e) if e.err_code == STREAM_NOT_FOUND => bail!(
                "{server}: JetStream stream {stream} does not exist; \
                 hint: --create-stream creates it on subject {subject:?}"
            ),
            Err(e) => bail!("{server}: stream {stream}: {}", e.description),
        };
        let created = info
            .get("created")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !started_over
            && let Some((was, _)) = &progress
            && *was != created
        {
            started_over = new_stream(&format!(
                "the stream {stream} was deleted and created again since the checkpoint"
            ))?;
        }
        let consumer_api = format!("$JS.API.CONSUMER.INFO.{stream}.{durable}");
        let consumer = match conn.request(&consumer_api, &Value::Null)? {
            Ok(info) => info,
            Err(e) if e.err_code == CONSUMER_NOT_FOUND => {
                let max_ack_pending = (options.batch_rows.saturating_mul(2)).max(1000);
                let mut deliver = json!(if options.from_end { "new" } else { "all" });
                let mut start_seq = None;
                if let Some((_, through)) = progress.as_ref().filter(|_| !started_over) {
                    match options.restart {
                        None => {
                            return Err(refuse_restart(
                                &server,
                                &format!("the consumer {durable} on stream {stream} is gone"),
                                &format!("its messages up to sequence {through}"),
                                &format!("consumer {durable}"),
                            ));
                        }
                        Some(RestartFrom::Checkpoint) => {
                            deliver = json!("by_start_sequence");
                            start_seq = Some(through + 1);
                        }
                        Some(RestartFrom::Start) => {
                            deliver = json!("all");
                            started_over = true;
                        }
                        Some(RestartFrom::End) => {
                            deliver = json!("new");
                            started_over = true;
                        }
                    }
                }
                let mut config = json!({
                    "stream_name": stream,
                    "config": {
                        "durable_name": durable,
                        "ack_policy": "explicit",
                        "deliver_policy": deliver,
                        "filter_subject": subject,
                        "ack_wait": (ack_wait * 1e9) as u64,
                        "max_deliver": -1,
                        "max_ack_pending": max_ack_pending,
                        "replay_policy": "instant",
                    }
                });
                if let Some(seq) = start_seq {
                    config["config"]["opt_start_seq"] = json!(seq);
                }
                conn.request(
                    &format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}"),
                    &config,
                )?
                .map_err(|e| {
                    anyhow!(
                        "{server}: cannot create consumer {durable} on {stream}: {}",
                        e.description
                    )
                })?
            }
            Err(e) => bail!(
                "{server}: consumer {durable} on {stream}: {}",
                e.description
            ),
        };
        let config = consumer.get("config").cloned().unwrap_or(Value::Null);
        let text = |key: &str| config.get(key).and_then(Value::as_str).unwrap_or("");
        if !text("deliver_subject").is_empty() {
            bail!(
                "{server}: consumer {durable} on {stream} is a push consumer; etl-watch needs a pull consumer"
            );
        }
        if text("ack_policy") != "explicit" {
            bail!(
                "{server}: consumer {durable} on {stream} acknowledges {:?}; etl-watch needs ack_policy explicit",
                text("ack_policy")
            );
        }
        let filter = text("filter_subject");
        if filter != subject.as_str() {
            bail!(
                "{server}: consumer {durable} on {stream} reads subject {filter:?}, not {subject:?}; \
                 use another --durable for another subject"
            );
        }
        let ack_floor = consumer
            .pointer("/ack_floor/stream_seq")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Ok(JetStream {
            conn,
            stream,
            durable: durable.clone(),
            subject: subject.clone(),
            created,
            ack_floor,
            done: SeqSet::default(),
            floor_read: None,
            started_over,
            prior: progress
                .filter(|_| !started_over)
                .map_or(0, |(_, through)| through),
        })
    }

    /// Reads the consumer's ack floor and forgets the sequences handed on
    /// up to it: the server delivers none of them again.
    fn read_floor(&mut self) -> Result<()> {
        let api = format!("$JS.API.CONSUMER.INFO.{}.{}", self.stream, self.durable);
        let info = self.conn.request(&api, &Value::Null)?.map_err(|e| {
            anyhow!(
                "{}: consumer {} on {}: {}",
                self.conn.server(),
                self.durable,
                self.stream,
                e.description
            )
        })?;
        self.floor_read = Some(Instant::now());
        if let Some(floor) = info
            .pointer("/ack_floor/stream_seq")
            .and_then(Value::as_u64)
        {
            self.ack_floor = self.ack_floor.max(floor);
            self.done.forget_through(self.ack_floor);
        }
        Ok(())
    }
}

impl BrokerSource for JetStream {
    type Position = StreamSeq;
    type State = JetStreamState;
    type Batch = JetStreamBatch;

    fn name(&self) -> String {
        format!("nats stream {}", self.stream)
    }

    fn identity(&self) -> String {
        format!(
            "nats;{};{};{};{}",
            self.stream, self.created, self.durable, self.subject
        )
    }

    fn fetch(&mut self, max: usize, wait: Option<Duration>) -> Result<Vec<Message<StreamSeq>>> {
        loop {
            let (deliveries, drained) = self.conn.pull(&self.stream, &self.durable, max, wait)?;
            // Deliveries of messages already handed on, by sequence: the
            // newest one is acknowledged after the pull, never passed on.
            let mut redelivered_done: BTreeMap<u64, String> = BTreeMap::new();
            let mut messages = Vec::new();
            for d in deliveries {
                if self.done.contains(d.seq) {
                    redelivered_done.insert(d.seq, d.ack);
                    continue;
                }
                messages.push(Message {
                    position: StreamSeq(d.seq),
                    subject: d.subject,
                    body: Body::Payload(d.data),
                    ack: Some(d.ack),
                });
            }
            if !redelivered_done.is_empty() {
                let subjects: Vec<&str> = redelivered_done.values().map(String::as_str).collect();
                self.conn.ack(&subjects, &self.stream, &self.durable)?;
            }
            if !messages.is_empty() || drained {
                return Ok(messages);
            }
        }
    }

    fn ack(&mut self, messages: &[Message<StreamSeq>]) -> Result<()> {
        let subjects: Vec<&str> = messages.iter().filter_map(|m| m.ack.as_deref()).collect();
        self.conn.ack(&subjects, &self.stream, &self.durable)?;
        for m in messages {
            self.done.insert(m.position.0);
        }
        if self.floor_read.is_none_or(|t| t.elapsed() >= FLOOR_EVERY) {
            self.read_floor()?;
        }
        Ok(())
    }

    fn positions(&self, messages: &[Message<StreamSeq>]) -> JetStreamBatch {
        let mut seqs: Vec<u64> = messages.iter().map(|m| m.position.0).collect();
        seqs.sort_unstable();
        JetStreamBatch {
            stream: self.stream.clone(),
            consumer: self.durable.clone(),
            first: seqs.first().copied(),
            last: seqs.last().copied(),
            messages: seqs.len(),
            ranges: ranges(seqs.iter().copied()),
        }
    }

    fn recover(&mut self, batch: &JetStreamBatch) -> Result<Vec<Message<StreamSeq>>> {
        let seqs: Vec<u64> = batch.ranges.iter().flat_map(|&(a, b)| a..=b).collect();
        let stored = self.conn.get_messages(&self.stream, &seqs)?;
        Ok(stored
            .into_iter()
            .map(|(seq, message)| {
                let (subject, body) = match message {
                    Some((subject, data)) => (subject, Body::Payload(data)),
                    None => (String::new(), Body::Gone),
                };
                Message {
                    position: StreamSeq(seq),
                    subject,
                    body,
                    ack: None,
                }
            })
            .collect())
    }

    fn state(&self) -> JetStreamState {
        // Every sequence up to the ack floor, and the handed-on ones right
        // after it, have been handed on.
        let through = match self.done.ranges().next() {
            Some((first, last)) if first <= self.ack_floor + 1 => last.max(self.ack_floor),
            _ => self.ack_floor,
        };
        JetStreamState {
            done: self.done.ranges().collect(),
            through: Some(through.max(self.prior)),
        }
    }

    fn started_over(&self) -> bool {
        self.started_over
    }

    fn restore(&mut self, state: JetStreamState) {
        for (first, last) in state.done {
            let first = first.max(self.ack_floor + 1);
            if first <= last {
                self.done.insert_range(first, last);
            }
        }
    }
}

/// What a NATS checkpoint keeps: `{"done":[[first,last],...],"through":N}`.
#[derive(Debug, Default, PartialEq)]
pub(super) struct JetStreamState {
    /// The sequences handed on above the consumer's ack floor, as ranges.
    done: Vec<(u64, u64)>,
    /// Every sequence up to it was handed on (`None`: a checkpoint written
    /// before etlkit kept it).
    through: Option<u64>,
}

impl AtRest for JetStreamState {
    fn to_json(&self) -> Value {
        let done: Vec<Value> = self.done.iter().map(|(a, b)| json!([a, b])).collect();
        json!({ "done": done, "through": self.through })
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        Ok(JetStreamState {
            done: ranges_from(value.get("done"))?,
            through: match value.get("through") {
                None | Some(Value::Null) => None,
                Some(t) => Some(t.as_u64().ok_or("\"through\" is not a sequence")?),
            },
        })
    }
}

/// The positions of a NATS batch: `{"broker":"nats","stream":S,
/// "consumer":D,"first":N,"last":N,"messages":N,"ranges":[[first,last],...]}`.
#[derive(Debug, PartialEq)]
pub(super) struct JetStreamBatch {
    stream: String,
    consumer: String,
    first: Option<u64>,
    last: Option<u64>,
    messages: usize,
    /// The batch's sequences: what `recover` reads again.
    ranges: Vec<(u64, u64)>,
}

impl AtRest for JetStreamBatch {
    fn to_json(&self) -> Value {
        let ranges: Vec<Value> = self.ranges.iter().map(|(a, b)| json!([a, b])).collect();
        json!({
            "broker": "nats",
            "stream": self.stream,
            "consumer": self.consumer,
            "first": self.first,
            "last": self.last,
            "messages": self.messages,
            "ranges": ranges,
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
        Ok(JetStreamBatch {
            stream: text("stream"),
            consumer: text("consumer"),
            first: value.get("first").and_then(Value::as_u64),
            last: value.get("last").and_then(Value::as_u64),
            messages: value.get("messages").and_then(Value::as_u64).unwrap_or(0) as usize,
            ranges: ranges_from(value.get("ranges"))?,
        })
    }
}

/// Sequence ranges as the checkpoint holds them: `[[first,last],...]`.
fn ranges_from(value: Option<&Value>) -> Result<Vec<(u64, u64)>, String> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let bad = || format!("{value} is not a list of sequence ranges");
    value
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|r| {
            let at = |i: usize| r.get(i).and_then(Value::as_u64);
            at(0).zip(at(1)).ok_or_else(bad)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_compress_into_ranges() {
        assert_eq!(
            ranges_from(Some(&json!([[1, 3], [5, 5]]))),
            Ok(vec![(1, 3), (5, 5)])
        );
        assert!(ranges_from(Some(&json!([[1]]))).is_err());
    }

    /// The state and the batch in flight as etlkit 0.1 to this release
    /// wrote them, and before `through` was kept.
    #[test]
    fn checkpoints_of_earlier_releases_are_read() {
        let state = json!({"done": [[8, 9], [12, 12]], "through": 9});
        let read = JetStreamState::from_json(&state).unwrap();
        assert_eq!(read.done, [(8, 9), (12, 12)]);
        assert_eq!(read.through, Some(9));
        assert_eq!(read.to_json().to_string(), state.to_string());
        let older = JetStreamState::from_json(&json!({"done": []})).unwrap();
        assert_eq!(older, JetStreamState::default());
        let batch = json!({"broker": "nats", "stream": "ORDERS", "consumer": "etl",
            "first": 1, "last": 5, "messages": 4, "ranges": [[1, 3], [5, 5]]});
        let read = JetStreamBatch::from_json(&batch).unwrap();
        assert_eq!(read.ranges, [(1, 3), (5, 5)]);
        assert_eq!(read.to_json().to_string(), batch.to_string());
    }
}
