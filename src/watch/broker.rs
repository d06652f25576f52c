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

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{PROGRAM, WatchFormat, Watcher, files};
use crate::format::csv::{CsvParser, Quoting, RawRecord, Step};
use crate::format::json;
use crate::format::json::check_object;
use crate::record::FieldType;
use crate::rejects::Payload;
use crate::wire::{Begin, End};

/// A broker's position of a message: a JetStream stream sequence is
/// `(seq, 0)`, a Redis stream entry id `ms-n` is `(ms, n)`.
pub(super) type Seq = (u64, u64);

/// Longest a single wait on the broker lasts when no batch is open.
const IDLE_WAIT: Duration = Duration::from_secs(5);

/// A message's content.
pub(super) enum Body {
    /// The payload, read by --format.
    Payload(Vec<u8>),
    /// A Redis entry without a `payload` field: all fields, one record.
    Fields(Vec<(Vec<u8>, Vec<u8>)>),
    /// Deleted from the stream (trimmed) after it was delivered.
    Gone,
}

/// One message as delivered.
pub(super) struct Message {
    /// Its position in the stream.
    pub seq: Seq,
    /// Its subject (NATS) or the stream key (Redis).
    pub subject: String,
    /// What it holds.
    pub body: Body,
    /// How to acknowledge it, where that is per delivery (the JetStream
    /// ack subject); `None` where the sequence is enough (Redis), or for a
    /// message read again from the stream after a restart.
    pub ack: Option<String>,
}

/// What the watch loop needs from a broker.
pub(super) trait Source {
    /// What to call it in messages and rejects: "nats stream ORDERS".
    fn name(&self) -> String;
    /// What makes its positions unique: kept in the checkpoint and hashed
    /// into batch ids (never a host or a password).
    fn identity(&self) -> String;
    /// The JSON form of a sequence in records and positions.
    fn seq_json(&self, seq: Seq) -> Value;
    /// A message's position in words, for rejects: "sequence 42".
    fn position_text(&self, seq: Seq) -> String {
        let seq = self.seq_json(seq);
        let seq = seq.as_str().map_or_else(|| seq.to_string(), String::from);
        format!("sequence {seq}")
    }
    /// Up to `max` messages: waiting at most `wait` for the first one, or
    /// not at all (`None`: only what is there now). Empty: none arrived.
    fn fetch(&mut self, max: usize, wait: Option<Duration>) -> Result<Vec<Message>>;
    /// Acknowledges `messages`; returns once the broker confirmed.
    fn ack(&mut self, messages: &[Message]) -> Result<()>;
    /// The positions of a batch (end line and checkpoint).
    fn positions(&self, messages: &[Message]) -> Value;
    /// The messages of the batch at `positions` (from the checkpoint),
    /// still unacknowledged, read again.
    fn recover(&mut self, positions: &Value) -> Result<Vec<Message>>;
    /// Broker state kept in the checkpoint.
    fn state(&self) -> Value;
    /// Takes the state back from the checkpoint.
    fn restore(&mut self, state: &Value);
    /// A batch of `messages` was handed on and acknowledged: what has been
    /// read goes at least this far.
    fn handed_on(&mut self, _messages: &[Message]) {}
    /// The group, consumer or stream was created again from its start or
    /// its end (--restart-from start|end): the checkpoint no longer applies.
    fn started_over(&self) -> bool;
}

/// Where reading starts again when the checkpoint shows progress but the
/// broker no longer has the consumer group, durable consumer, committed
/// offsets or stream it was made with (--restart-from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartFrom {
    /// Just after the last message the checkpoint says was handed on and
    /// acknowledged: nothing is repeated or skipped.
    Checkpoint,
    /// The stream's first message: everything is read again.
    Start,
    /// Only messages that arrive from now on.
    End,
}

/// The checkpoint as it was before this run opened the broker: whose it
/// is, and the broker state it kept.
pub(super) struct Previous {
    /// The identity of the source that wrote it.
    pub identity: String,
    /// Its broker state.
    pub state: Value,
}

/// The refusal to read from the start again what a checkpoint says was
/// loaded: `lost` says what is gone, `loaded` how far the checkpoint got,
/// `what` what etl-watch would create.
pub(super) fn refuse_restart(server: &str, lost: &str, loaded: &str, what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{server}: {lost}, but the checkpoint shows {loaded} were loaded: creating {what} \
         again would read them again; hint: --restart-from checkpoint goes on after them, \
         --restart-from start reads the stream again from its start, --restart-from end \
         reads only new messages"
    )
}

/// Which broker, and where in it.
#[derive(Debug, Clone)]
pub enum BrokerPlan {
    /// A JetStream pull consumer.
    Nats {
        /// The server.
        url: BrokerUrl,
        /// The subject filter (`orders.>`).
        subject: String,
        /// The durable consumer's name.
        durable: String,
        /// The stream; `None`: the one stream that holds the subject.
        js_stream: Option<String>,
        /// Ack wait of a consumer this run creates, in seconds.
        ack_wait: f64,
    },
    /// A Kafka topic (all partitions), offsets committed for a group.
    Kafka {
        /// The bootstrap broker.
        url: BrokerUrl,
        /// The topic.
        topic: String,
        /// The consumer group whose committed offsets are used.
        group: String,
    },
    /// A Redis stream read through a consumer group.
    Redis {
        /// The server.
        url: BrokerUrl,
        /// The stream's key.
        key: String,
        /// The consumer group.
        group: String,
        /// This reader's name in the group.
        consumer: String,
    },
}

/// Settings both brokers share.
#[derive(Debug, Clone, Copy)]
pub struct BrokerOptions {
    /// Create a missing stream.
    pub create_stream: bool,
    /// A consumer or group created now starts at the stream's end.
    pub from_end: bool,
    /// How many messages a batch may hold (a JetStream consumer created
    /// now lets this many and more be unacknowledged at once).
    pub batch_rows: usize,
    /// Where to start again when what the checkpoint read from is gone.
    pub restart: Option<RestartFrom>,
}

/// A broker's address from the command line. Its `Display` never shows
/// the password.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// `nats`, `redis` or `kafka`.
    pub scheme: String,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User name, if any (a NATS token when there is no password).
    pub user: Option<String>,
    /// Password, if any.
    pub password: Option<String>,
    /// The path after the port (`/2`: Redis database 2).
    pub path: String,
}

impl std::fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}://{}:{}{}",
            self.scheme, self.host, self.port, self.path
        )
    }
}

/// Is `text` a broker URL (rather than a path)?
pub fn is_broker_url(text: &str) -> bool {
    ["nats://", "redis://", "rediss://", "tls://", "kafka://"]
        .iter()
        .any(|p| text.starts_with(p))
}

impl BrokerUrl {
    /// Parses `nats://[user:password@|token@]host[:port]`,
    /// `redis://[[user]:password@]host[:port][/db]` or
    /// `kafka://host[:port]`. TLS (and SASL for Kafka) is refused.
    pub fn parse(text: &str) -> Result<BrokerUrl> {
        crate::shown::check_userinfo(text)?;
        let (scheme, rest) = text
            .split_once("://")
            .context("a broker URL starts with nats://, redis:// or kafka://")?;
        let default_port = match scheme {
            "nats" => 4222,
            "redis" => 6379,
            "kafka" => 9092,
            "tls" | "rediss" => bail!("{scheme}:// (TLS) is not supported by etl-watch"),
            _ => bail!("unknown broker scheme {scheme}://"),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('?') => {
                bail!("{scheme}:// URL parameters are not supported")
            }
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, password)) => (
                    Some(decode_userinfo(user)?).filter(|u| !u.is_empty()),
                    Some(decode_userinfo(password)?),
                ),
                None => (Some(decode_userinfo(u)?), None),
            },
        };
        let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
            let (host, after) = rest.split_once(']').context("unclosed [ in broker URL")?;
            (host.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse()
                .with_context(|| format!("bad port {p:?} in {scheme}:// URL"))?,
            None => default_port,
        };
        let host = if host.is_empty() {
            "127.0.0.1".into()
        } else {
            host
        };
        let path = path.trim_end_matches('/').to_string();
        if scheme == "nats" && !path.is_empty() {
            bail!("a nats:// URL has no path (name the stream with --js-stream)");
        }
        if scheme == "kafka" && !path.is_empty() {
            bail!("a kafka:// URL has no path (name the topic with --topic)");
        }
        if scheme == "kafka" && (user.is_some() || password.is_some()) {
            bail!("kafka:// with a user or password (SASL) is not supported by etl-watch");
        }
        if scheme == "redis" && !path.is_empty() && path[1..].parse::<u32>().is_err() {
            bail!("the path of a redis:// URL is a database number, e.g. redis://127.0.0.1:6379/0");
        }
        Ok(BrokerUrl {
            scheme: scheme.into(),
            host,
            port,
            user,
            password,
            path,
        })
    }
}

/// A TCP connection to `host:port`, trying each address it resolves to
/// (10 s each), with Nagle off: brokers answer small requests. `server`
/// names it in errors (never with a password).
pub(super) fn connect_tcp(host: &str, port: u16, server: &str) -> Result<std::net::TcpStream> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {server}"))?
        .collect();
    let mut last = None;
    for addr in addrs {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => Err(e).with_context(|| format!("cannot connect to {server}")),
        None => bail!("cannot connect to {server}: no address"),
    }
}

/// The checkpoint of a broker watch: which source it belongs to, the
/// broker's state, and the batch in flight.
struct BrokerCheckpoint {
    identity: String,
    state: Value,
    pending: Option<(String, Value)>,
}

impl BrokerCheckpoint {
    /// The checkpoint's source and state, read before the broker is
    /// opened; `None` when there is none (or it is not a broker's, which
    /// `load` reports).
    fn peek(path: &Path) -> Result<Option<Previous>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read checkpoint {}", path.display()));
            }
        };
        let Ok(doc) = serde_json::from_str::<Value>(&text) else {
            return Ok(None);
        };
        Ok(doc
            .get("broker")
            .and_then(Value::as_str)
            .map(|identity| Previous {
                identity: identity.to_string(),
                state: doc.get("state").cloned().unwrap_or(Value::Null),
            }))
    }

    fn load(path: &Path, identity: &str) -> Result<Option<BrokerCheckpoint>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read checkpoint {}", path.display()));
            }
        };
        let doc: Value = serde_json::from_str(&text)
            .with_context(|| format!("checkpoint {} is not valid JSON", path.display()))?;
        let Some(found) = doc.get("broker").and_then(Value::as_str) else {
            bail!(
                "checkpoint {} is not a broker checkpoint (it belongs to a file watch); \
                 give each watch its own checkpoint",
                path.display()
            );
        };
        if found != identity {
            bail!(
                "checkpoint {} belongs to another source ({found}, not {identity}); \
                 give each watch its own checkpoint",
                path.display()
            );
        }
        let pending = doc.get("pending").and_then(|p| {
            Some((
                p.get("batch")?.as_str()?.to_string(),
                p.get("positions")?.clone(),
            ))
        });
        Ok(Some(BrokerCheckpoint {
            identity: identity.into(),
            state: doc.get("state").cloned().unwrap_or(Value::Null),
            pending,
        }))
    }

    fn save(&self, path: &Path) -> Result<()> {
        let pending = self
            .pending
            .as_ref()
            .map(|(batch, positions)| json!({"batch": batch, "positions": positions}));
        let doc = json!({
            "version": 1,
            "broker": self.identity,
            "state": self.state,
            "pending": pending,
        });
        let text = serde_json::to_string_pretty(&doc)?;
        crate::state::write_atomically(path, text.as_bytes())
    }
}

/// The messages of the open batch.
struct Open {
    messages: Vec<Message>,
    /// Index into `messages` by sequence: a message delivered again while
    /// its batch is still open (its ack wait ran out) is not taken twice.
    seen: HashMap<Seq, usize>,
}

impl Watcher<'_> {
    /// Reads the broker until stopped (or, with --once, until it has
    /// nothing more now), handing on batches and acknowledging them.
    pub(super) fn follow_broker(
        &mut self,
        broker: &BrokerPlan,
        options: BrokerOptions,
    ) -> Result<()> {
        let path = self
            .checkpoint_path
            .clone()
            .expect("WatchArgs::plan requires --checkpoint for a broker");
        let previous = BrokerCheckpoint::peek(&path)?;
        let previous = previous.as_ref();
        let mut source: Box<dyn Source> = match broker {
            BrokerPlan::Nats { .. } => {
                Box::new(super::nats::JetStream::open(broker, options, previous)?)
            }
            BrokerPlan::Redis { .. } => {
                Box::new(super::redis::RedisStream::open(broker, options, previous)?)
            }
            BrokerPlan::Kafka { .. } => {
                Box::new(super::kafka::KafkaTopic::open(broker, options, previous)?)
            }
        };
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
            BrokerCheckpoint::load(&path, &identity)?
        };
        if let Some(checkpoint) = checkpoint {
            source.restore(&checkpoint.state);
            if let Some((id, positions)) = checkpoint.pending {
                self.progress
                    .detail("sending the unconfirmed batch of the last run again");
                let messages = source.recover(&positions)?;
                for m in messages {
                    self.take(source.as_mut(), &mut open, m)?;
                }
                self.deliver_messages(source.as_mut(), &mut open, &path, Some(id))?;
            }
        }
        self.save_broker_checkpoint(source.as_ref(), &path, None)?;
        let interval = Duration::from_secs_f64(self.plan.batch_interval);
        loop {
            let due = self.batch.started.is_some_and(|s| s.elapsed() >= interval);
            if due {
                self.deliver_messages(source.as_mut(), &mut open, &path, None)?;
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
            for m in messages {
                self.take(source.as_mut(), &mut open, m)?;
            }
            if self.batch.rows >= self.plan.batch_rows || self.batch.bytes >= self.plan.batch_bytes
            {
                self.deliver_messages(source.as_mut(), &mut open, &path, None)?;
            }
            if self.plan.once && nothing {
                return self.deliver_messages(source.as_mut(), &mut open, &path, None);
            }
        }
    }

    /// Turns one message into records of the open batch; a bad one goes to
    /// the rejects and is acknowledged once it is safely written there.
    fn take(&mut self, source: &mut dyn Source, open: &mut Open, message: Message) -> Result<()> {
        if let Some(&index) = open.seen.get(&message.seq) {
            // Delivered again while its batch is open: the newest delivery
            // is the one to acknowledge.
            if message.ack.is_some() {
                open.messages[index].ack = message.ack;
            }
            return Ok(());
        }
        let seq = source.seq_json(message.seq);
        match self.records(&message, &seq) {
            Ok(records) => {
                let size = match &message.body {
                    Body::Payload(p) => p.len(),
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
                open.seen.insert(message.seq, open.messages.len());
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
                    Body::Payload(p) => p.clone(),
                    Body::Fields(fields) => fields_text(fields),
                    Body::Gone => Vec::new(),
                };
                let reason = format!(
                    "{} ({}): {reason}",
                    source.position_text(message.seq),
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
    fn records(&self, message: &Message, seq: &Value) -> Result<Vec<Vec<u8>>, String> {
        let payload = match &message.body {
            Body::Gone => return Ok(Vec::new()),
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
            WatchFormat::Csv => csv_records(payload),
        }
    }

    /// Hands the open batch on and acknowledges its messages. `replay`:
    /// the id of the batch being sent again after a restart.
    fn deliver_messages(
        &mut self,
        source: &mut dyn Source,
        open: &mut Open,
        path: &Path,
        replay: Option<String>,
    ) -> Result<()> {
        if open.messages.is_empty() {
            return Ok(());
        }
        let positions = source.positions(&open.messages);
        let id = replay.unwrap_or_else(|| {
            files::Hasher::of(format!("broker-v1;{};{positions}", source.identity()).as_bytes())
        });
        let rows = self.batch.rows;
        if rows > 0 {
            self.save_broker_checkpoint(source, path, Some((id.clone(), positions.clone())))?;
            let begin = Begin {
                stream: self.plan.stream.clone(),
                source: Some(PROGRAM.into()),
                schema: self.broker_schema(),
                from: None,
                batch: Some(id),
            };
            let end = End {
                stream: self.plan.stream.clone(),
                rows: rows as u64,
                bookmark: None,
                positions: Some(positions),
            };
            let mut payload = Vec::with_capacity(self.batch.records.len() + 512);
            payload.extend_from_slice(begin.to_line().as_bytes());
            payload.push(b'\n');
            payload.extend_from_slice(&self.batch.records);
            payload.extend_from_slice(end.to_line().as_bytes());
            payload.push(b'\n');
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

    fn save_broker_checkpoint(
        &self,
        source: &dyn Source,
        path: &Path,
        pending: Option<(String, Value)>,
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

/// A CSV payload: a header line, then rows; every value as text, an
/// empty one null. Any bad row rejects the whole message.
fn csv_records(payload: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut parser = CsvParser::new(payload, "payload", b',', Quoting::Rfc4180);
    let mut rec = RawRecord::default();
    let mut header: Option<Vec<String>> = None;
    let mut records = Vec::new();
    let mut row = 0usize;
    loop {
        match parser.read(&mut rec).map_err(|e| format!("{e:#}"))? {
            Step::Eof => break,
            Step::Bad(bad) => return Err(format!("row {row}: {}", bad.reason)),
            Step::Record => {}
        }
        let Some(names) = &header else {
            let names = (0..rec.len())
                .map(|i| rec.text(i).map(|s| s.trim().to_string()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("header line: {e}"))?;
            header = Some(names);
            continue;
        };
        row += 1;
        if rec.len() != names.len() {
            return Err(format!(
                "row {row}: expected {} fields (as in the header), found {}",
                names.len(),
                rec.len()
            ));
        }
        let mut out = vec![b'{'];
        for (i, col) in names.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&json::key_prefix(col));
            match rec.text(i).map_err(|e| format!("row {row}: {e}"))? {
                "" => out.extend_from_slice(b"null"),
                text => json::write_str(&mut out, text),
            }
        }
        out.push(b'}');
        records.push(out);
    }
    if header.is_none() {
        return Err("the payload holds no CSV header line".into());
    }
    Ok(records)
}

/// A Redis entry's fields as `field=value` lines, for the rejects file.
fn fields_text(fields: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in fields {
        if !out.is_empty() {
            out.push(b'\n');
        }
        out.extend_from_slice(k);
        out.push(b'=');
        out.extend_from_slice(v);
    }
    out
}

/// The user or password of a broker URL, `%XX` escapes decoded.
fn decode_userinfo(text: &str) -> Result<String> {
    crate::percent::decode(text).map_err(|e| match e {
        crate::percent::DecodeError::BadEscape => {
            anyhow::anyhow!("bad %-escape in the user or password of a broker URL")
        }
        crate::percent::DecodeError::NotUtf8 => {
            anyhow::anyhow!("the user or password of a broker URL is not UTF-8")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_never_show_the_password() {
        let url = BrokerUrl::parse("redis://:s%40cret@db.example:6380/2").unwrap();
        assert_eq!(url.password.as_deref(), Some("s@cret"));
        assert_eq!(url.user, None);
        assert_eq!(url.to_string(), "redis://db.example:6380/2");
        assert_eq!(format!("{url:?}"), "redis://db.example:6380/2");
        let url = BrokerUrl::parse("nats://tok@127.0.0.1").unwrap();
        assert_eq!((url.user.as_deref(), url.port), (Some("tok"), 4222));
        assert!(BrokerUrl::parse("nats://h:4222/ORDERS").is_err());
        assert!(BrokerUrl::parse("rediss://h").is_err());
        assert!(BrokerUrl::parse("redis://h/x").is_err());
        assert!(BrokerUrl::parse("redis://h:6379?timeout=1").is_err());
    }

    #[test]
    fn csv_payloads_need_their_header_and_whole_rows() {
        let records = csv_records(b"id,name\n1,a\n2,\n").unwrap();
        assert_eq!(records[0], br#"{"id":"1","name":"a"}"#);
        assert_eq!(records[1], br#"{"id":"2","name":null}"#);
        assert!(csv_records(b"id,name\n1\n").unwrap_err().contains("row 1"));
        assert!(csv_records(b"").is_err());
    }
}
