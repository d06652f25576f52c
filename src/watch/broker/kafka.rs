//! A Kafka topic as a watch source: every partition, offsets kept by a
//! consumer group.
//!
//! A small synchronous client for the Kafka protocol (non-flexible request
//! versions, understood by Kafka 1.0 and later and by Kafka-protocol
//! brokers): Metadata, FindCoordinator, OffsetFetch, ListOffsets, Fetch and
//! OffsetCommit. etl-watch is the group's only reader (its checkpoint lock
//! makes it so): it reads all partitions itself and uses the group for its
//! committed offsets, as a standalone consumer does (generation -1).
//!
//! A partition's committed offset moves only past messages whose batch was
//! handed on (or whose reject was written): it is the lowest offset read
//! and not yet acknowledged. After a crash the group resumes there; the
//! batch named in the checkpoint is read again by its offsets and sent with
//! its id, and messages it holds are not taken a second time. Offsets
//! acknowledged above the committed one (a reject ahead of an open batch)
//! are kept in the checkpoint, so a restart does not reject them twice.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use super::contract::{
    Body, BrokerOptions, BrokerSource, Message, Previous, RestartFrom, Seq, connect_tcp,
    refuse_restart,
};
use super::url::{BrokerPlan, BrokerUrl};

/// How long an answer may take beyond a fetch wait.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes asked for per partition and per fetch.
const PARTITION_BYTES: i32 = 4 << 20;
/// Bytes asked for per fetch.
const FETCH_BYTES: i32 = 16 << 20;
/// How far back a fetch looks for the record batch holding its offset.
const MAX_SEARCH: i64 = 1 << 16;
/// A reply larger than this is not believed.
const MAX_REPLY: usize = 256 << 20;
/// The client id sent with each request.
const CLIENT_ID: &str = "etl-watch";

const API_FETCH: i16 = 1;
const API_LIST_OFFSETS: i16 = 2;
const API_METADATA: i16 = 3;
const API_OFFSET_COMMIT: i16 = 8;
const API_OFFSET_FETCH: i16 = 9;
const API_FIND_COORDINATOR: i16 = 10;

/// Kafka error codes etl-watch answers differently.
const UNKNOWN_TOPIC: i16 = 3;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const COORDINATOR_LOADING: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;

/// Writes a Kafka request body (big-endian integers, strings with an
/// i16 length). Public for etlkit's tests, which set up topics with it.
#[derive(Default)]
pub struct Encoder(pub Vec<u8>);

impl Encoder {
    /// An INT8.
    pub fn i8(&mut self, v: i8) -> &mut Self {
        self.0.push(v as u8);
        self
    }
    /// An INT16.
    pub fn i16(&mut self, v: i16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// An INT32.
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// An INT64.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// A STRING (i16 length).
    pub fn string(&mut self, v: &str) -> &mut Self {
        self.i16(v.len() as i16);
        self.0.extend_from_slice(v.as_bytes());
        self
    }
    /// A null NULLABLE_STRING.
    pub fn null_string(&mut self) -> &mut Self {
        self.i16(-1)
    }
}

/// Reads an answer.
struct Decoder<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Decoder<'a> {
    fn new(data: &'a [u8]) -> Self {
        Decoder { data, at: 0 }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .context("the broker's answer is cut short")?;
        let out = &self.data[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn i8(&mut self) -> Result<i8> {
        Ok(self.take(1)?[0] as i8)
    }
    fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into()?))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into()?))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into()?))
    }
    fn string(&mut self) -> Result<String> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(String::new());
        }
        Ok(String::from_utf8_lossy(self.take(n as usize)?).into_owned())
    }
    fn bytes(&mut self) -> Result<Option<&'a [u8]>> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(None);
        }
        Ok(Some(self.take(n as usize)?))
    }
    /// An array's length (a null array is empty).
    fn count(&mut self) -> Result<usize> {
        Ok(self.i32()?.max(0) as usize)
    }
    fn varint(&mut self) -> Result<i64> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                // Zig-zag.
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        bail!("a varint in a record batch is too long")
    }
    fn var_bytes(&mut self) -> Result<Option<&'a [u8]>> {
        let n = self.varint()?;
        if n < 0 {
            return Ok(None);
        }
        Ok(Some(self.take(n as usize)?))
    }
    /// Walks a topics → partitions answer (etl-watch asks for one topic),
    /// handing `each` each partition's index with the decoder at the
    /// partition's other fields.
    fn partitions(&mut self, mut each: impl FnMut(i32, &mut Self) -> Result<()>) -> Result<()> {
        for _ in 0..self.count()? {
            let _name = self.string()?;
            for _ in 0..self.count()? {
                let id = self.i32()?;
                each(id, self)?;
            }
        }
        Ok(())
    }
    /// Skips an INT32 array.
    fn skip_i32s(&mut self) -> Result<()> {
        for _ in 0..self.count()? {
            self.i32()?;
        }
        Ok(())
    }
    fn rest(&self) -> &'a [u8] {
        &self.data[self.at..]
    }
}

/// One connection to one broker.
struct Conn {
    stream: TcpStream,
    next: i32,
    server: String,
}

impl Conn {
    fn connect(host: &str, port: u16, server: &str) -> Result<Conn> {
        Ok(Conn {
            stream: connect_tcp(host, port, server)?,
            next: 0,
            server: server.to_string(),
        })
    }

    /// Sends a request and returns its answer's body (after the
    /// correlation id).
    fn call(&mut self, api: i16, version: i16, body: &[u8], wait: Duration) -> Result<Vec<u8>> {
        self.next = self.next.wrapping_add(1);
        let id = self.next;
        let mut head = Encoder::default();
        head.i16(api).i16(version).i32(id).string(CLIENT_ID);
        let size = (head.0.len() + body.len()) as i32;
        let mut frame = Vec::with_capacity(size as usize + 4);
        frame.extend_from_slice(&size.to_be_bytes());
        frame.extend_from_slice(&head.0);
        frame.extend_from_slice(body);
        let server = self.server.clone();
        let fail = |e: std::io::Error| {
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                anyhow!("{server}: no answer from the broker in time")
            } else {
                anyhow!("{server}: {e}")
            }
        };
        self.stream.write_all(&frame).map_err(&fail)?;
        self.stream.set_read_timeout(Some(wait + REPLY_TIMEOUT))?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).map_err(&fail)?;
        let size = i32::from_be_bytes(size);
        if size < 4 || size as usize > MAX_REPLY {
            bail!("{}: an answer of {size} bytes is not Kafka's", self.server);
        }
        let mut reply = vec![0u8; size as usize];
        self.stream.read_exact(&mut reply).map_err(&fail)?;
        let got = i32::from_be_bytes(reply[..4].try_into()?);
        if got != id {
            bail!("{}: an answer to another request arrived", self.server);
        }
        reply.drain(..4);
        Ok(reply)
    }
}

/// Messages fetched: (partition, offset, value).
type Fetched = Vec<(i32, i64, Vec<u8>)>;

/// What etl-watch knows of one partition.
#[derive(Default)]
struct Partition {
    leader: i32,
    /// The next offset to fetch.
    position: i64,
    /// The offset the group has committed (the next one to read).
    committed: i64,
    /// Read from the log and not yet acknowledged (handed to the batch or
    /// still buffered).
    outstanding: BTreeSet<i64>,
    /// Acknowledged at or above the committed offset (a reject ahead of an
    /// open batch, or a batch read again after a restart): not taken again
    /// when the fetches reach them. Kept in the checkpoint.
    acked: BTreeSet<i64>,
}

impl Partition {
    /// Where the group may resume: the lowest offset not acknowledged.
    fn resume_at(&self) -> i64 {
        self.outstanding
            .first()
            .copied()
            .unwrap_or(self.position)
            .min(self.position)
    }
}

/// A Kafka topic read by etl-watch on behalf of a consumer group.
pub(super) struct KafkaTopic {
    url: BrokerUrl,
    topic: String,
    group: String,
    bootstrap: Conn,
    brokers: HashMap<i32, (String, u16)>,
    conns: HashMap<i32, Conn>,
    coordinator: Option<i32>,
    partitions: BTreeMap<i32, Partition>,
    buffer: VecDeque<Message>,
    /// Read from the log's start or end again (--restart-from start|end).
    started_over: bool,
}

impl KafkaTopic {
    /// Connects, reads the topic's partitions and the group's committed
    /// offsets (or, for a group that has none, the log's start, or its end
    /// with --from-end).
    ///
    /// When the checkpoint (`previous`) shows offsets were committed but
    /// the group has none now (deleted, or its offsets expired), reading
    /// starts only as --restart-from says: at the checkpoint's offsets, or
    /// at the log's start or end.
    pub(super) fn open(
        plan: &BrokerPlan,
        options: BrokerOptions,
        previous: Option<&Previous>,
    ) -> Result<KafkaTopic> {
        let BrokerPlan::Kafka { url, topic, group } = plan else {
            unreachable!("KafkaTopic::open is called for kafka:// only");
        };
        let server = url.to_string();
        let bootstrap = Conn::connect(&url.host, url.port, &server)?;
        let mut kafka = KafkaTopic {
            url: url.clone(),
            topic: topic.clone(),
            group: group.clone(),
            bootstrap,
            brokers: HashMap::new(),
            conns: HashMap::new(),
            coordinator: None,
            partitions: BTreeMap::new(),
            buffer: VecDeque::new(),
            started_over: false,
        };
        kafka.metadata()?;
        let mut committed = kafka.committed_offsets()?;
        let had: BTreeMap<i32, i64> = previous
            .filter(|p| p.identity == format!("kafka;{topic};{group}"))
            .and_then(|p| p.state.get("committed").and_then(Value::as_object))
            .map(|offsets| {
                offsets
                    .iter()
                    .filter_map(|(id, o)| Some((id.parse().ok()?, o.as_i64()?)))
                    .filter(|&(_, o)| o > 0)
                    .collect()
            })
            .unwrap_or_default();
        let none_now = committed.values().all(|&o| o < 0);
        let mut options = options;
        let mut restore = Vec::new();
        if none_now && !had.is_empty() {
            match options.restart {
                None => {
                    let loaded = had
                        .iter()
                        .map(|(id, o)| format!("{topic}/{id} up to offset {}", o - 1))
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(refuse_restart(
                        &server,
                        &format!("group {group:?} has no committed offsets for {topic} any more"),
                        &format!("messages of {loaded}"),
                        &format!("the offsets of group {group:?}"),
                    ));
                }
                Some(RestartFrom::Checkpoint) => {
                    restore = had.into_iter().collect::<Vec<_>>();
                    committed.extend(restore.iter().copied());
                }
                Some(RestartFrom::Start) => {
                    options.from_end = false;
                    kafka.started_over = true;
                }
                Some(RestartFrom::End) => {
                    options.from_end = true;
                    kafka.started_over = true;
                }
            }
        }
        let missing: Vec<i32> = kafka
            .partitions
            .keys()
            .filter(|p| committed.get(p).is_none_or(|&o| o < 0))
            .copied()
            .collect();
        let start = if missing.is_empty() {
            HashMap::new()
        } else {
            kafka.list_offsets(&missing, if options.from_end { -1 } else { -2 })?
        };
        for (id, partition) in kafka.partitions.iter_mut() {
            let offset = match committed.get(id) {
                Some(&o) if o >= 0 => o,
                _ => *start.get(id).unwrap_or(&0),
            };
            partition.position = offset;
            partition.committed = committed.get(id).copied().unwrap_or(-1);
        }
        if !restore.is_empty() {
            // The group resumes where the checkpoint says it was.
            kafka.commit(&restore)?;
        }
        Ok(kafka)
    }

    /// Reads the brokers and the topic's partitions with their leaders.
    fn metadata(&mut self) -> Result<()> {
        let mut body = Encoder::default();
        body.i32(1).string(&self.topic);
        let reply = self
            .bootstrap
            .call(API_METADATA, 1, &body.0, Duration::ZERO)?;
        let mut d = Decoder::new(&reply);
        self.brokers.clear();
        for _ in 0..d.count()? {
            let node = d.i32()?;
            let host = d.string()?;
            let port = d.i32()?;
            let _rack = d.string()?;
            self.brokers.insert(node, (host, port as u16));
        }
        let _controller = d.i32()?;
        let mut found = false;
        for _ in 0..d.count()? {
            let error = d.i16()?;
            let name = d.string()?;
            let _internal = d.i8()?;
            let partitions = d.count()?;
            if name != self.topic {
                for _ in 0..partitions {
                    skip_partition_metadata(&mut d)?;
                }
                continue;
            }
            match error {
                0 => {}
                UNKNOWN_TOPIC => bail!(
                    "{}: topic {:?} does not exist; hint: create it (kafka-topics --create)",
                    self.url,
                    self.topic
                ),
                code => bail!("{}: topic {:?}: {}", self.url, self.topic, error_text(code)),
            }
            found = true;
            for _ in 0..partitions {
                let _error = d.i16()?;
                let id = d.i32()?;
                let leader = d.i32()?;
                d.skip_i32s()?;
                d.skip_i32s()?;
                self.partitions.entry(id).or_default().leader = leader;
            }
        }
        if !found || self.partitions.is_empty() {
            bail!(
                "{}: topic {:?} does not exist or has no partitions",
                self.url,
                self.topic
            );
        }
        Ok(())
    }

    /// The connection to broker `node`.
    fn conn(&mut self, node: i32) -> Result<&mut Conn> {
        if !self.conns.contains_key(&node) {
            let (host, port) = self
                .brokers
                .get(&node)
                .cloned()
                .with_context(|| format!("{}: broker {node} is not known", self.url))?;
            // The address the cluster advertises for the broker.
            let server = format!("kafka://{host}:{port}");
            let conn = Conn::connect(&host, port, &server)?;
            self.conns.insert(node, conn);
        }
        Ok(self.conns.get_mut(&node).expect("inserted above"))
    }

    /// The group coordinator's node, found once.
    fn coordinator(&mut self) -> Result<i32> {
        if let Some(node) = self.coordinator {
            return Ok(node);
        }
        for attempt in 0..20 {
            let mut body = Encoder::default();
            body.string(&self.group);
            let reply = self
                .bootstrap
                .call(API_FIND_COORDINATOR, 0, &body.0, Duration::ZERO)?;
            let mut d = Decoder::new(&reply);
            let error = d.i16()?;
            let node = d.i32()?;
            let host = d.string()?;
            let port = d.i32()?;
            match error {
                0 => {
                    self.brokers.insert(node, (host, port as u16));
                    self.coordinator = Some(node);
                    return Ok(node);
                }
                COORDINATOR_LOADING | COORDINATOR_NOT_AVAILABLE if attempt < 19 => {
                    std::thread::sleep(Duration::from_millis(250));
                }
                code => bail!(
                    "{}: no coordinator for group {:?}: {}",
                    self.url,
                    self.group,
                    error_text(code)
                ),
            }
        }
        unreachable!("the last attempt returns or fails")
    }

    /// The group's committed offsets by partition (-1: none).
    fn committed_offsets(&mut self) -> Result<HashMap<i32, i64>> {
        let ids: Vec<i32> = self.partitions.keys().copied().collect();
        let mut body = Encoder::default();
        body.string(&self.group).i32(1).string(&self.topic);
        body.i32(ids.len() as i32);
        for id in &ids {
            body.i32(*id);
        }
        let node = self.coordinator()?;
        let reply = self
            .conn(node)?
            .call(API_OFFSET_FETCH, 1, &body.0, Duration::ZERO)?;
        let mut d = Decoder::new(&reply);
        let mut out = HashMap::new();
        d.partitions(|id, d| {
            let offset = d.i64()?;
            let _metadata = d.string()?;
            let error = d.i16()?;
            if error == NOT_COORDINATOR || error == COORDINATOR_LOADING {
                self.coordinator = None;
                bail!(
                    "{}: group {:?}: {}; run again",
                    self.url,
                    self.group,
                    error_text(error)
                );
            }
            if error != 0 {
                bail!(
                    "{}: committed offset of {}/{id} for group {:?}: {}",
                    self.url,
                    self.topic,
                    self.group,
                    error_text(error)
                );
            }
            out.insert(id, offset);
            Ok(())
        })?;
        Ok(out)
    }

    /// The log's earliest (-2) or latest (-1) offset of each partition.
    fn list_offsets(&mut self, ids: &[i32], at: i64) -> Result<HashMap<i32, i64>> {
        let mut out = HashMap::new();
        for (leader, ids) in self.by_leader(ids) {
            let mut body = Encoder::default();
            body.i32(-1)
                .i32(1)
                .string(&self.topic)
                .i32(ids.len() as i32);
            for id in &ids {
                body.i32(*id).i64(at);
            }
            let reply = self
                .conn(leader)?
                .call(API_LIST_OFFSETS, 1, &body.0, Duration::ZERO)?;
            let mut d = Decoder::new(&reply);
            d.partitions(|id, d| {
                let error = d.i16()?;
                let _timestamp = d.i64()?;
                let offset = d.i64()?;
                if error != 0 {
                    bail!(
                        "{}: offsets of {}/{id}: {}",
                        self.url,
                        self.topic,
                        error_text(error)
                    );
                }
                out.insert(id, offset);
                Ok(())
            })?;
        }
        Ok(out)
    }

    fn by_leader(&self, ids: &[i32]) -> BTreeMap<i32, Vec<i32>> {
        let mut out: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for id in ids {
            if let Some(p) = self.partitions.get(id) {
                out.entry(p.leader).or_default().push(*id);
            }
        }
        out
    }

    /// Fetches from `from` (partition → offset), waiting up to `wait` for
    /// the first bytes; the messages read, in offset order per partition.
    ///
    /// Kafka answers a fetch inside a record batch with the whole batch;
    /// some Kafka-protocol brokers answer it with the batches that start
    /// after the offset, or with nothing. A partition whose first record
    /// sent is past the offset asked for (or that sent none while it holds
    /// more) is asked again from earlier offsets (1, 2, 4, ... before) until
    /// the batch holding the offset comes, so that no record is passed
    /// over. (A real gap, as compaction leaves, costs a few more fetches.)
    fn fetch_from(&mut self, from: &BTreeMap<i32, i64>, wait: Duration) -> Result<Fetched> {
        let (mut out, suspects) = self.fetch_once(from, wait)?;
        for (id, start) in suspects {
            let lowest = out.iter().filter(|m| m.0 == id).map(|m| m.1).min();
            let mut back = 1;
            while back <= MAX_SEARCH && back < start * 2 {
                let earlier = BTreeMap::from([(id, (start - back).max(0))]);
                let (got, _) = self.fetch_once(&earlier, Duration::ZERO)?;
                let mine: Vec<_> = got.into_iter().filter(|m| m.1 >= start).collect();
                let low = mine.iter().map(|m| m.1).min();
                if low.is_some() && (lowest.is_none() || low < lowest) {
                    out.retain(|m| m.0 != id);
                    out.extend(mine);
                    break;
                }
                back *= 2;
            }
        }
        Ok(out)
    }

    /// One fetch; also the partitions whose records sent start past the
    /// offset asked for (or that sent none although they hold more).
    fn fetch_once(
        &mut self,
        from: &BTreeMap<i32, i64>,
        wait: Duration,
    ) -> Result<(Fetched, Vec<(i32, i64)>)> {
        let ids: Vec<i32> = from.keys().copied().collect();
        let mut out = Vec::new();
        let mut stalled = Vec::new();
        let groups = self.by_leader(&ids);
        let leaders = groups.len().max(1) as u32;
        for (leader, ids) in groups {
            let mut body = Encoder::default();
            let wait_ms = (wait / leaders).as_millis().min(i32::MAX as u128) as i32;
            body.i32(-1).i32(wait_ms).i32(1).i32(FETCH_BYTES).i8(0);
            body.i32(1).string(&self.topic).i32(ids.len() as i32);
            for id in &ids {
                body.i32(*id).i64(from[id]).i32(PARTITION_BYTES);
            }
            let reply = self
                .conn(leader)?
                .call(API_FETCH, 4, &body.0, wait / leaders)?;
            let mut d = Decoder::new(&reply);
            let _throttle = d.i32()?;
            d.partitions(|id, d| {
                let error = d.i16()?;
                let high = d.i64()?;
                let _stable = d.i64()?;
                for _ in 0..d.count()? {
                    d.i64()?;
                    d.i64()?;
                }
                let records = d.bytes()?.unwrap_or_default();
                match error {
                    0 => {}
                    OFFSET_OUT_OF_RANGE => bail!(
                        "{}: offset {} of {}/{id} is no longer in the log \
                         (deleted by retention before it was read)",
                        self.url,
                        from[&id],
                        self.topic
                    ),
                    code => bail!(
                        "{}: fetching {}/{id}: {}",
                        self.url,
                        self.topic,
                        error_text(code)
                    ),
                }
                let start = from[&id];
                let before = out.len();
                for (offset, value) in decode_batches(records)
                    .with_context(|| format!("{}: {}/{id}", self.url, self.topic))?
                {
                    if offset >= start {
                        out.push((id, offset, value));
                    }
                }
                let first = out[before..].iter().map(|m| m.1).min();
                if high > start && first.is_none_or(|f| f > start) {
                    stalled.push((id, start));
                }
                Ok(())
            })?;
        }
        Ok((out, stalled))
    }

    /// Commits `offsets` (partition → next offset) for the group.
    fn commit(&mut self, offsets: &[(i32, i64)]) -> Result<()> {
        let mut body = Encoder::default();
        body.string(&self.group).i32(-1).string("").i64(-1);
        body.i32(1).string(&self.topic).i32(offsets.len() as i32);
        for (id, offset) in offsets {
            body.i32(*id).i64(*offset).null_string();
        }
        let node = self.coordinator()?;
        let reply = self
            .conn(node)?
            .call(API_OFFSET_COMMIT, 2, &body.0, Duration::ZERO)?;
        let mut d = Decoder::new(&reply);
        d.partitions(|id, d| {
            let error = d.i16()?;
            if error != 0 {
                if error == NOT_COORDINATOR {
                    self.coordinator = None;
                }
                bail!(
                    "{}: cannot commit the offset of {}/{id} for group {:?}: {}",
                    self.url,
                    self.topic,
                    self.group,
                    error_text(error)
                );
            }
            Ok(())
        })?;
        for (id, offset) in offsets {
            if let Some(p) = self.partitions.get_mut(id) {
                p.committed = *offset;
            }
        }
        Ok(())
    }

    /// Reads new messages into the buffer.
    fn fill(&mut self, wait: Duration) -> Result<()> {
        let from: BTreeMap<i32, i64> = self
            .partitions
            .iter()
            .map(|(id, p)| (*id, p.position))
            .collect();
        let fetched = self.fetch_from(&from, wait)?;
        for (id, offset, value) in fetched {
            let p = self
                .partitions
                .get_mut(&id)
                .expect("fetched partitions are known");
            if offset < p.position {
                continue;
            }
            p.position = offset + 1;
            if p.acked.contains(&offset) {
                continue;
            }
            p.outstanding.insert(offset);
            self.buffer.push_back(Message {
                seq: (id as u64, offset as u64),
                subject: self.topic.clone(),
                body: Body::Payload(value),
                ack: None,
            });
        }
        Ok(())
    }
}

fn skip_partition_metadata(d: &mut Decoder<'_>) -> Result<()> {
    d.i16()?;
    d.i32()?;
    d.i32()?;
    d.skip_i32s()?;
    d.skip_i32s()
}

/// The (offset, value) of each record in a fetch's record batches. A last
/// batch cut off by the size limit is left for the next fetch; control
/// batches (transaction markers) hold no messages.
fn decode_batches(mut data: &[u8]) -> Result<Vec<(i64, Vec<u8>)>> {
    let mut out = Vec::new();
    while data.len() >= 12 {
        let base = i64::from_be_bytes(data[..8].try_into()?);
        let length = i32::from_be_bytes(data[8..12].try_into()?);
        if length < 0 {
            bail!("a record batch has a negative length");
        }
        let end = 12 + length as usize;
        if data.len() < end {
            break;
        }
        let batch = &data[12..end];
        data = &data[end..];
        let mut d = Decoder::new(batch);
        let _epoch = d.i32()?;
        let magic = d.i8()?;
        if magic != 2 {
            bail!("message format v{magic} is not supported (Kafka 0.11 or later writes v2)");
        }
        let crc = d.u32()?;
        if crc32c(d.rest()) != crc {
            bail!("a record batch at offset {base} fails its checksum");
        }
        let attributes = d.i16()?;
        let _last_delta = d.i32()?;
        let _first_ts = d.i64()?;
        let _max_ts = d.i64()?;
        let _producer = d.i64()?;
        let _producer_epoch = d.i16()?;
        let _base_seq = d.i32()?;
        let count = d.count()?;
        if attributes & 0x20 != 0 {
            continue;
        }
        let records: Vec<u8> = match attributes & 0x07 {
            0 => d.rest().to_vec(),
            1 => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(d.rest())
                    .read_to_end(&mut out)
                    .context("a gzip record batch does not decompress")?;
                out
            }
            4 => zstd::decode_all(d.rest()).context("a zstd record batch does not decompress")?,
            2 => bail!("snappy-compressed record batches are not supported (gzip and zstd are)"),
            3 => bail!("lz4-compressed record batches are not supported (gzip and zstd are)"),
            c => bail!("unknown compression {c} in a record batch"),
        };
        let mut r = Decoder::new(&records);
        for _ in 0..count {
            let length = r.varint()?;
            let record = r.take(usize::try_from(length).context("a negative record length")?)?;
            let mut f = Decoder::new(record);
            let _attributes = f.i8()?;
            let _ts = f.varint()?;
            let delta = f.varint()?;
            let _key = f.var_bytes()?;
            let value = f.var_bytes()?.unwrap_or_default().to_vec();
            out.push((base + delta, value));
        }
    }
    Ok(out)
}

/// A record batch (message format v2, uncompressed) holding `values` as
/// records without keys, offsets 0.. from the batch's start: what a
/// producer sends (etlkit's tests publish with it).
pub fn record_batch(values: &[&[u8]]) -> Vec<u8> {
    let mut records = Vec::new();
    for (i, value) in values.iter().enumerate() {
        let mut record = Vec::new();
        record.push(0); // attributes
        put_varint(&mut record, 0); // timestamp delta
        put_varint(&mut record, i as i64); // offset delta
        put_varint(&mut record, -1); // no key
        put_varint(&mut record, value.len() as i64);
        record.extend_from_slice(value);
        put_varint(&mut record, 0); // no headers
        put_varint(&mut records, record.len() as i64);
        records.extend_from_slice(&record);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut tail = Encoder::default();
    tail.i16(0)
        .i32(values.len().saturating_sub(1) as i32)
        .i64(now)
        .i64(now)
        .i64(-1)
        .i16(-1)
        .i32(-1)
        .i32(values.len() as i32);
    tail.0.extend_from_slice(&records);
    let mut batch = Encoder::default();
    batch
        .i64(0)
        .i32((4 + 1 + 4 + tail.0.len()) as i32)
        .i32(-1)
        .i8(2);
    batch.0.extend_from_slice(&crc32c(&tail.0).to_be_bytes());
    batch.0.extend_from_slice(&tail.0);
    batch.0
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

/// CRC-32C (Castagnoli), as record batches carry it.
pub fn crc32c(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

fn error_text(code: i16) -> String {
    let name = match code {
        1 => "offset out of range",
        3 => "unknown topic or partition",
        5 => "leader not available",
        6 => "not the leader for the partition",
        7 => "request timed out",
        14 => "coordinator is loading",
        15 => "coordinator not available",
        16 => "not the coordinator",
        22 => "illegal generation",
        25 => "unknown member id",
        27 => "rebalance in progress (another consumer is active in the group)",
        29 => "topic authorization failed",
        30 => "group authorization failed",
        35 => "unsupported version",
        _ => "",
    };
    if name.is_empty() {
        format!("Kafka error {code}")
    } else {
        format!("{name} (Kafka error {code})")
    }
}

impl BrokerSource for KafkaTopic {
    fn name(&self) -> String {
        format!("kafka topic {}", self.topic)
    }

    fn identity(&self) -> String {
        format!("kafka;{};{}", self.topic, self.group)
    }

    fn seq_json(&self, seq: Seq) -> Value {
        json!({ "partition": seq.0, "offset": seq.1 })
    }

    fn position_text(&self, seq: Seq) -> String {
        format!("partition {} offset {}", seq.0, seq.1)
    }

    fn fetch(&mut self, max: usize, wait: Option<Duration>) -> Result<Vec<Message>> {
        if self.buffer.is_empty() {
            self.fill(wait.unwrap_or(Duration::ZERO))?;
        }
        let n = max.min(self.buffer.len());
        Ok(self.buffer.drain(..n).collect())
    }

    fn ack(&mut self, messages: &[Message]) -> Result<()> {
        let mut touched = BTreeSet::new();
        for m in messages {
            let (id, offset) = (m.seq.0 as i32, m.seq.1 as i64);
            if let Some(p) = self.partitions.get_mut(&id) {
                p.outstanding.remove(&offset);
                if offset >= p.committed {
                    p.acked.insert(offset);
                }
                touched.insert(id);
            }
        }
        let commits: Vec<(i32, i64)> = touched
            .into_iter()
            .map(|id| (id, self.partitions[&id].resume_at()))
            .filter(|(id, resume)| *resume > self.partitions[id].committed)
            .collect();
        if commits.is_empty() {
            return Ok(());
        }
        self.commit(&commits)?;
        for (id, resume) in commits {
            if let Some(p) = self.partitions.get_mut(&id) {
                p.acked.retain(|&o| o >= resume);
            }
        }
        Ok(())
    }

    fn positions(&self, messages: &[Message]) -> Value {
        let mut by_partition: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for m in messages {
            by_partition.entry(m.seq.0).or_default().push(m.seq.1);
        }
        let partitions: Vec<Value> = by_partition
            .iter_mut()
            .map(|(id, offsets)| {
                offsets.sort_unstable();
                json!({
                    "partition": id,
                    "first": offsets.first(),
                    "last": offsets.last(),
                    "messages": offsets.len(),
                })
            })
            .collect();
        json!({
            "broker": "kafka",
            "topic": self.topic,
            "group": self.group,
            "messages": messages.len(),
            "partitions": partitions,
        })
    }

    fn recover(&mut self, positions: &Value) -> Result<Vec<Message>> {
        let ranges: Vec<(i32, i64, i64)> = positions
            .get("partitions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some((
                    p.get("partition")?.as_i64()? as i32,
                    p.get("first")?.as_i64()?,
                    p.get("last")?.as_i64()?,
                ))
            })
            .collect();
        let mut out = Vec::new();
        for (id, first, last) in ranges {
            if !self.partitions.contains_key(&id) {
                bail!(
                    "{}: partition {id} of the batch in flight is not in topic {:?}",
                    self.url,
                    self.topic
                );
            }
            let mut at = first;
            'read: while at <= last {
                let fetched = self.fetch_from(&BTreeMap::from([(id, at)]), Duration::ZERO)?;
                if fetched.is_empty() {
                    bail!(
                        "{}: offsets {at}..{last} of {}/{id} (the batch in flight) cannot be read",
                        self.url,
                        self.topic
                    );
                }
                for (_, offset, value) in fetched {
                    if offset > last {
                        break 'read;
                    }
                    at = offset + 1;
                    out.push(Message {
                        seq: (id as u64, offset as u64),
                        subject: self.topic.clone(),
                        body: Body::Payload(value),
                        ack: None,
                    });
                }
            }
            let p = self.partitions.get_mut(&id).expect("checked above");
            for m in out.iter().filter(|m| m.seq.0 == id as u64) {
                p.outstanding.insert(m.seq.1 as i64);
            }
            // The batch starts where the group resumes: reading goes on
            // after it. (Otherwise the offsets before it are read first, and
            // the batch's own are passed over once acknowledged.)
            if first <= p.position {
                p.position = p.position.max(last + 1);
            }
        }
        Ok(out)
    }

    fn state(&self) -> Value {
        let done: serde_json::Map<String, Value> = self
            .partitions
            .iter()
            .filter(|(_, p)| !p.acked.is_empty())
            .map(|(id, p)| (id.to_string(), json!(p.acked)))
            .collect();
        // What the group had committed: if its offsets vanish, the next
        // run knows how far it had got.
        let committed: serde_json::Map<String, Value> = self
            .partitions
            .iter()
            .filter(|(_, p)| p.committed > 0)
            .map(|(id, p)| (id.to_string(), json!(p.committed)))
            .collect();
        json!({ "done": done, "committed": committed })
    }

    fn started_over(&self) -> bool {
        self.started_over
    }

    fn restore(&mut self, state: &Value) {
        let Some(done) = state.get("done").and_then(Value::as_object) else {
            return;
        };
        for (id, offsets) in done {
            let Ok(id) = id.parse::<i32>() else { continue };
            let Some(p) = self.partitions.get_mut(&id) else {
                continue;
            };
            for o in offsets.as_array().into_iter().flatten() {
                if let Some(o) = o.as_i64()
                    && o >= p.position
                {
                    p.acked.insert(o);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn varints_are_zigzag() {
        let mut d = Decoder::new(&[0x00, 0x01, 0x02, 0xac, 0x02]);
        assert_eq!(d.varint().unwrap(), 0);
        assert_eq!(d.varint().unwrap(), -1);
        assert_eq!(d.varint().unwrap(), 1);
        assert_eq!(d.varint().unwrap(), 150);
    }

    #[test]
    fn record_batches_decode_to_what_was_encoded() {
        let values: [&[u8]; 3] = [b"{\"id\":1}", b"", &[b'x'; 300]];
        let decoded = decode_batches(&record_batch(&values)).unwrap();
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded[0], (0, values[0].to_vec()));
        assert_eq!(decoded[2], (2, values[2].to_vec()));
        let mut cut = record_batch(&values);
        cut.pop();
        assert!(
            decode_batches(&cut).unwrap().is_empty(),
            "a cut batch waits"
        );
        let mut bad = record_batch(&values);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(decode_batches(&bad).is_err(), "a bad checksum fails");
    }

    #[test]
    fn resume_at_is_the_lowest_unacknowledged_offset() {
        let mut p = Partition {
            position: 20,
            ..Partition::default()
        };
        assert_eq!(p.resume_at(), 20);
        p.outstanding.extend([12, 15]);
        assert_eq!(p.resume_at(), 12);
    }
}
