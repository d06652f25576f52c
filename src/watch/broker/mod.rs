//! Message brokers (NATS JetStream, Redis Streams, Kafka) as watch sources.
//!
//! A broker keeps the messages; etl-watch keeps only the batch in flight.
//! Messages are cut into batches as they arrive; a batch's position is the
//! broker's sequence range (stream, consumer, first..last) and its id is
//! derived from it. The checkpoint names the batch before it is handed on,
//! and messages are acknowledged only after it was (after --exec exited 0,
//! or, without --exec, once it was written and flushed to stdout). After a
//! crash the broker delivers the unacknowledged messages again; the batch
//! named in the checkpoint is rebuilt from exactly its messages and sent
//! again with the same id, so `etl-load` skips it if it was committed.
//!
//! The folder: `contract.rs` (messages, the `BrokerSource` contract, the
//! typed JSON form of what the checkpoint keeps), `position.rs` (each
//! broker's position type), `url.rs` (the plan), `checkpoint.rs`,
//! `payload.rs` (payloads as records), one adapter per broker (`nats.rs`,
//! `redis.rs`, `kafka.rs`: the source's rules over its protocol client in
//! `crate::client`, importing only the contract, the positions and the
//! plan), and here the batching loop that drives them.

pub mod contract;
pub mod url;

mod checkpoint;
mod kafka;
mod mysql;
mod nats;
mod payload;
mod position;
mod postgres;
mod redis;
mod transactions;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;

pub use contract::{BrokerOptions, RestartFrom};
pub use url::{
    BinlogPlan, BrokerPlan, BrokerUrl, KafkaSecurity, NatsAuth, SlotPlan, TlsOptions, is_broker_url,
};

use super::{PROGRAM, WatchFormat, Watcher, identity};
use crate::format::json;
use crate::format::json::check_object;
use crate::record::FieldType;
use crate::rejects::Payload;
use crate::wire::{Begin, End};
use checkpoint::BrokerCheckpoint;
use contract::Previous;
use contract::{AtRest, Body, BrokerSource, Message, Position};
use payload::{csv_records, fields_text};

/// Longest a single wait on the broker lasts when no batch is open.
const IDLE_WAIT: Duration = Duration::from_secs(5);

/// The messages of the open batch.
struct Open<P> {
    messages: Vec<Message<P>>,
    /// Index into `messages` by position: a message delivered again while
    /// its batch is still open (its ack wait ran out) is not taken twice.
    seen: HashMap<P, usize>,
}

impl Watcher<'_> {
    /// Reads the broker until stopped (or, with --once, until it has
    /// nothing more now), handing on batches and acknowledging them.
    pub(super) fn follow_broker(
        &mut self,
        broker: &BrokerPlan,
        options: BrokerOptions,
    ) -> Result<()> {
        match broker {
            BrokerPlan::Nats { .. } => {
                self.follow(|previous| nats::JetStream::open(broker, options, previous))
            }
            BrokerPlan::Redis { .. } => {
                self.follow(|previous| redis::RedisStream::open(broker, options, previous))
            }
            BrokerPlan::Kafka { .. } => {
                self.follow(|previous| kafka::KafkaTopic::open(broker, options, previous))
            }
            BrokerPlan::Mysql(plan) => {
                self.follow(|previous| mysql::BinlogSource::open(plan, options, previous))
            }
            BrokerPlan::Postgres(plan) => {
                self.follow(|previous| postgres::SlotSource::open(plan, options, previous))
            }
        }
    }

    /// Follows the source `open` opens, given the checkpoint's previous
    /// state.
    fn follow<S: BrokerSource>(
        &mut self,
        open: impl FnOnce(Option<&Previous<S::State>>) -> Result<S>,
    ) -> Result<()> {
        let path = self
            .checkpoint_path
            .clone()
            .expect("WatchArgs::plan requires --checkpoint for a broker");
        let previous = BrokerCheckpoint::<S::State, S::Batch>::peek(&path)?;
        let mut source = open(previous.as_ref())?;
        let source = &mut source;
        let identity = source.identity();
        let mut open = Open {
            messages: Vec::new(),
            seen: HashMap::new(),
        };
        let checkpoint = if source.started_over() {
            self.progress.warn(&format!(
                "{}: started over (--restart-from); the checkpoint's position and batch in flight are dropped",
                source.name()
            ));
            None
        } else {
            BrokerCheckpoint::<S::State, S::Batch>::load(&path, &identity)?
        };
        if let Some(checkpoint) = checkpoint {
            source.restore(checkpoint.state);
            if let Some((id, positions)) = checkpoint.pending {
                self.progress
                    .detail("sending the unconfirmed batch of the last run again");
                let messages = source.recover(&positions)?;
                for m in messages {
                    self.take(source, &mut open, m)?;
                }
                self.deliver_messages(source, &mut open, &path, Some(id))?;
            }
        }
        self.save_broker_checkpoint(source, &path, None)?;
        let mut saved = Some(source.state().to_json());
        let interval = Duration::from_secs_f64(self.plan.batch_interval);
        loop {
            let due = self.batch.started.is_some_and(|s| s.elapsed() >= interval);
            if due {
                self.deliver_messages(source, &mut open, &path, None)?;
            }
            let room = self.plan.batch_rows.saturating_sub(self.batch.rows).max(1);
            let wait = if self.plan.once {
                None
            } else {
                Some(match self.batch.started {
                    Some(s) => interval
                        .saturating_sub(s.elapsed())
                        .max(Duration::from_millis(1)),
                    None => IDLE_WAIT,
                })
            };
            let messages = source.fetch(room, wait)?;
            let nothing = messages.is_empty();
            if nothing && open.messages.is_empty() {
                // A source that moves while idle (past other tables'
                // changes) keeps that in the checkpoint.
                let state = source.state().to_json();
                if saved.as_ref() != Some(&state) {
                    self.save_broker_checkpoint(source, &path, None)?;
                    saved = Some(state);
                }
            }
            for m in messages {
                self.take(source, &mut open, m)?;
            }
            if self.batch.rows >= self.plan.batch_rows || self.batch.bytes >= self.plan.batch_bytes
            {
                self.deliver_messages(source, &mut open, &path, None)?;
            }
            if self.plan.once && nothing {
                self.deliver_messages(source, &mut open, &path, None)?;
                if let Some(line) = source.standing() {
                    self.progress.note(&line);
                }
                return Ok(());
            }
        }
    }

    /// Turns one message into records of the open batch; a bad one goes to
    /// the rejects and is acknowledged once it is safely written there.
    fn take<S: BrokerSource>(
        &mut self,
        source: &mut S,
        open: &mut Open<S::Position>,
        message: Message<S::Position>,
    ) -> Result<()> {
        if let Some(&index) = open.seen.get(&message.position) {
            // Delivered again while its batch is open: the newest delivery
            // is the one to acknowledge.
            if message.ack.is_some() {
                open.messages[index].ack = message.ack;
            }
            return Ok(());
        }
        let seq = message.position.json();
        match self.records(&message, &seq) {
            Ok(records) => {
                let size = match &message.body {
                    Body::Payload(p) | Body::Record(p) => p.len(),
                    Body::Fields(f) => f.iter().map(|(k, v)| k.len() + v.len()).sum(),
                    Body::Gone => 0,
                };
                if matches!(message.body, Body::Gone) {
                    let seq = seq.as_str().map_or_else(|| seq.to_string(), String::from);
                    self.progress.warn(&format!(
                        "{}: message {seq} was deleted from the stream before it was loaded",
                        source.name()
                    ));
                }
                for record in &records {
                    self.counts.read += 1;
                    self.batch.push(record, size / records.len().max(1));
                }
                self.batch.started.get_or_insert_with(Instant::now);
                open.seen
                    .insert(message.position.clone(), open.messages.len());
                open.messages.push(Message {
                    body: Body::Gone,
                    ..message
                });
                Ok(())
            }
            Err(reason) => {
                self.counts.read += 1;
                self.counts.rejected += 1;
                let raw = match &message.body {
                    Body::Payload(p) | Body::Record(p) => p.clone(),
                    Body::Fields(fields) => fields_text(fields),
                    Body::Gone => Vec::new(),
                };
                let reason = format!(
                    "{} ({}): {reason}",
                    message.position.text(),
                    message.subject
                );
                self.rejects
                    .reject(&source.name(), 0, &reason, Payload::Raw(&raw))?;
                self.rejects.sync()?;
                source.ack(&[message])
            }
        }
    }

    /// The records a message holds, or why it holds none that are valid.
    fn records<P>(&self, message: &Message<P>, seq: &Value) -> Result<Vec<Vec<u8>>, String> {
        let payload = match &message.body {
            Body::Gone => return Ok(Vec::new()),
            Body::Record(record) => return Ok(vec![record.clone()]),
            Body::Fields(fields) => {
                let mut out = vec![b'{'];
                for (i, (k, v)) in fields.iter().enumerate() {
                    let k = std::str::from_utf8(k).map_err(|_| "a field name is not UTF-8")?;
                    let v =
                        std::str::from_utf8(v).map_err(|_| format!("field {k:?} is not UTF-8"))?;
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(&json::key_prefix(k));
                    json::write_str(&mut out, v);
                }
                out.push(b'}');
                return Ok(vec![out]);
            }
            Body::Payload(p) => p,
        };
        let format = self.plan.format;
        match format {
            WatchFormat::Ndjson => {
                let mut records = Vec::new();
                for (n, line) in payload.split(|&b| b == b'\n').enumerate() {
                    let line = line.trim_ascii();
                    if line.is_empty() {
                        continue;
                    }
                    check_object(line).map_err(|e| format!("line {}: {e}", n + 1))?;
                    records.push(line.to_vec());
                }
                if records.is_empty() {
                    return Err("the payload holds no JSON object".into());
                }
                Ok(records)
            }
            WatchFormat::Lines => {
                let text = std::str::from_utf8(payload)
                    .map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
                let text = text.strip_suffix('\n').unwrap_or(text);
                Ok(text
                    .split('\n')
                    .map(|line| {
                        let line = line.strip_suffix('\r').unwrap_or(line);
                        let mut out = Vec::with_capacity(line.len() + 64);
                        out.extend_from_slice(b"{\"line\":");
                        json::write_str(&mut out, line);
                        out.extend_from_slice(b",\"subject\":");
                        json::write_str(&mut out, &message.subject);
                        out.extend_from_slice(b",\"seq\":");
                        out.extend_from_slice(seq.to_string().as_bytes());
                        out.push(b'}');
                        out
                    })
                    .collect())
            }
            WatchFormat::Csv => csv_records(payload, &self.plan.nulls),
        }
    }

    /// Hands the open batch on and acknowledges its messages. `replay`:
    /// the id of the batch being sent again after a restart.
    fn deliver_messages<S: BrokerSource>(
        &mut self,
        source: &mut S,
        open: &mut Open<S::Position>,
        path: &Path,
        replay: Option<String>,
    ) -> Result<()> {
        if open.messages.is_empty() {
            return Ok(());
        }
        let batch = source.positions(&open.messages);
        let positions = batch.to_json();
        let id = replay.unwrap_or_else(|| {
            identity::Hasher::of(format!("broker-v1;{};{positions}", source.identity()).as_bytes())
        });
        let rows = self.batch.rows;
        if rows > 0 {
            self.save_broker_checkpoint(source, path, Some((id.clone(), batch)))?;
            let begin = Begin {
                stream: self.plan.stream.clone(),
                source: Some(PROGRAM.into()),
                schema: {
                    let schema = source.schema();
                    if schema.is_empty() {
                        self.broker_schema()
                    } else {
                        schema
                    }
                },
                from: None,
                batch: Some(id),
            };
            let end = End {
                stream: self.plan.stream.clone(),
                rows: rows as u64,
                bookmark: None,
                positions: Some(positions),
            };
            let payload = super::framed(&begin, &self.batch.records, &end);
            match &self.plan.exec {
                Some(cmd) => self.exec(cmd, &payload)?,
                None => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&payload)
                        .and_then(|()| out.flush())
                        .context("writing to stdout")?;
                }
            }
            self.counts.written += rows as u64;
            self.batches += 1;
        }
        source
            .ack(&open.messages)
            .with_context(|| format!("{}: cannot acknowledge the batch", source.name()))?;
        source.handed_on(&open.messages);
        open.messages.clear();
        open.seen.clear();
        self.batch = super::Batch::default();
        self.save_broker_checkpoint(source, path, None)
    }

    fn save_broker_checkpoint<S: BrokerSource>(
        &self,
        source: &S,
        path: &Path,
        pending: Option<(String, S::Batch)>,
    ) -> Result<()> {
        BrokerCheckpoint {
            identity: source.identity(),
            state: source.state(),
            pending,
        }
        .save(path)
    }

    fn broker_schema(&self) -> Vec<(String, FieldType)> {
        match self.plan.format {
            WatchFormat::Lines => vec![
                ("line".into(), FieldType::Text),
                ("subject".into(), FieldType::Text),
            ],
            WatchFormat::Ndjson | WatchFormat::Csv => Vec::new(),
        }
    }
}
