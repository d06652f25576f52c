//! What the watch loop holds a broker by: a message and its typed
//! position, the `BrokerSource` contract each broker's adapter implements,
//! the typed JSON form of what the checkpoint keeps (`AtRest`), the options
//! they share, and the rules for starting again when what a checkpoint read
//! from is gone. Nothing here knows a particular broker.

use std::time::Duration;

use std::hash::Hash;

use anyhow::Result;
use serde_json::Value;

use crate::record::FieldType;

/// Where a message sits in its broker, typed per broker (`position.rs`):
/// a JetStream stream sequence, a Redis entry id, a Kafka partition and
/// offset. Batches key their messages by it.
pub(crate) trait Position: Clone + Eq + Hash {
    /// Its JSON form: a record's `seq` (--format lines), a deleted
    /// message's warning.
    fn json(&self) -> Value;
    /// In words, for a reject's reason: "sequence 42".
    fn text(&self) -> String {
        let seq = self.json();
        let seq = seq.as_str().map_or_else(|| seq.to_string(), String::from);
        format!("sequence {seq}")
    }
}

/// What a checkpoint keeps, typed: written as JSON and read back.
/// `from_json` reads what every release wrote (fields added later are
/// optional), so an upgrade goes on from the checkpoint on disk.
pub(crate) trait AtRest: Sized {
    /// The JSON form in the checkpoint (and, for a batch's positions, in
    /// its end line).
    fn to_json(&self) -> Value;
    /// Reads the JSON form back; why not, if it is not one.
    fn from_json(value: &Value) -> Result<Self, String>;
}

/// A message's content.
pub(crate) enum Body {
    /// The payload, read by --format.
    Payload(Vec<u8>),
    /// A Redis entry without a `payload` field: all fields, one record.
    Fields(Vec<(Vec<u8>, Vec<u8>)>),
    /// A record the source made itself (a change from a replication
    /// slot): one JSON object, whatever --format says.
    Record(Vec<u8>),
    /// Deleted from the stream (trimmed) after it was delivered.
    Gone,
}

/// One message as delivered.
pub(crate) struct Message<P> {
    /// Its position in the stream.
    pub position: P,
    /// Its subject (NATS) or the stream key (Redis).
    pub subject: String,
    /// What it holds.
    pub body: Body,
    /// How to acknowledge it, where that is per delivery (the JetStream
    /// ack subject); `None` where the position is enough (Redis, Kafka),
    /// or for a message read again from the stream after a restart.
    pub ack: Option<String>,
}

/// What the watch loop needs from a broker.
pub(crate) trait BrokerSource {
    /// A message's position.
    type Position: Position;
    /// The broker's state kept in the checkpoint (how far messages were
    /// handed on; what was acknowledged out of order).
    type State: AtRest + Default;
    /// The positions of a batch: in its end line, hashed into its id, and
    /// in the checkpoint while it is in flight.
    type Batch: AtRest;
    /// What to call it in messages and rejects: "nats stream ORDERS".
    fn name(&self) -> String;
    /// What makes its positions unique: kept in the checkpoint and hashed
    /// into batch ids (never a host or a password).
    fn identity(&self) -> String;
    /// Up to `max` messages: waiting at most `wait` for the first one, or
    /// not at all (`None`: only what is there now). Empty: none arrived.
    fn fetch(&mut self, max: usize, wait: Option<Duration>)
    -> Result<Vec<Message<Self::Position>>>;
    /// Acknowledges `messages`; returns once the broker confirmed.
    fn ack(&mut self, messages: &[Message<Self::Position>]) -> Result<()>;
    /// The positions of a batch.
    fn positions(&self, messages: &[Message<Self::Position>]) -> Self::Batch;
    /// The messages of the batch at `batch` (from the checkpoint), still
    /// unacknowledged, read again.
    fn recover(&mut self, batch: &Self::Batch) -> Result<Vec<Message<Self::Position>>>;
    /// Broker state kept in the checkpoint.
    fn state(&self) -> Self::State;
    /// Takes the state back from the checkpoint.
    fn restore(&mut self, state: Self::State);
    /// A batch of `messages` was handed on and acknowledged: what has been
    /// read goes at least this far.
    fn handed_on(&mut self, _messages: &[Message<Self::Position>]) {}
    /// The group, consumer or stream was created again from its start or
    /// its end (--restart-from start|end): the checkpoint no longer applies.
    fn started_over(&self) -> bool;
    /// The begin line's schema, where the source knows its records' types
    /// (a replicated table); empty: the one --format gives.
    fn schema(&self) -> Vec<(String, FieldType)> {
        Vec::new()
    }
    /// A line for the summary on how the source stands (a replication
    /// slot's retained WAL), said once the run ends.
    fn standing(&mut self) -> Option<String> {
        None
    }
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
/// is, and the broker state it kept (`None`: not this broker's kind of
/// state).
pub(crate) struct Previous<S> {
    /// The identity of the source that wrote it.
    pub identity: String,
    /// Its broker state.
    pub state: Option<S>,
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

/// Settings every broker source shares.
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
