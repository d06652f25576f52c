//! What the watch loop holds a broker by: a message and its position, the
//! `BrokerSource` contract each broker client implements, the options they
//! share, and the rules for starting again when what a checkpoint read from
//! is gone. Nothing here knows a particular broker.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// A broker's position of a message: a JetStream stream sequence is
/// `(seq, 0)`, a Redis stream entry id `ms-n` is `(ms, n)`.
pub(crate) type Seq = (u64, u64);

/// A message's content.
pub(crate) enum Body {
    /// The payload, read by --format.
    Payload(Vec<u8>),
    /// A Redis entry without a `payload` field: all fields, one record.
    Fields(Vec<(Vec<u8>, Vec<u8>)>),
    /// Deleted from the stream (trimmed) after it was delivered.
    Gone,
}

/// One message as delivered.
pub(crate) struct Message {
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
pub(crate) trait BrokerSource {
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
pub(crate) struct Previous {
    /// The identity of the source that wrote it.
    pub identity: String,
    /// Its broker state.
    pub state: Value,
}

/// The refusal to read from the start again what a checkpoint says was
/// loaded: `lost` says what is gone, `loaded` how far the checkpoint got,
/// `what` what etl-watch would create.
pub(crate) fn refuse_restart(server: &str, lost: &str, loaded: &str, what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{server}: {lost}, but the checkpoint shows {loaded} were loaded: creating {what} \
         again would read them again; hint: --restart-from checkpoint goes on after them, \
         --restart-from start reads the stream again from its start, --restart-from end \
         reads only new messages"
    )
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

/// A TCP connection to `host:port`, trying each address it resolves to
/// (10 s each), with Nagle off: brokers answer small requests. `server`
/// names it in errors (never with a password).
pub(crate) fn connect_tcp(host: &str, port: u16, server: &str) -> Result<std::net::TcpStream> {
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
