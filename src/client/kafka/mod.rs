//! A small synchronous Kafka client for one topic and one consumer group
//! (non-flexible request versions, understood by Kafka 1.0 and later and
//! by Kafka-protocol brokers): Metadata, FindCoordinator, OffsetFetch,
//! ListOffsets, Fetch and OffsetCommit, outside any group generation (-1),
//! as a standalone consumer commits.
//!
//! The folder: `codec.rs` (request and answer encoding), `conn.rs` (one
//! connection, framing), `records.rs` (record batches), and here the
//! cluster view: the topic's partitions and their leaders, the group's
//! coordinator, and the requests.

mod codec;
mod compression;
mod conn;
mod records;
pub mod security;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use codec::Decoder;
pub use codec::Encoder;
use conn::Conn;
use records::decode_batches;
pub use records::{crc32c, record_batch, record_batch_compressed};
use security::KafkaSecurity;

use super::url::BrokerUrl;

/// Bytes asked for per partition and per fetch.
const PARTITION_BYTES: i32 = 4 << 20;
/// Bytes asked for per fetch.
const FETCH_BYTES: i32 = 16 << 20;
/// How far back a fetch looks for the record batch holding its offset.
const MAX_SEARCH: i64 = 1 << 16;

const API_FETCH: i16 = 1;
const API_LIST_OFFSETS: i16 = 2;
const API_METADATA: i16 = 3;
const API_OFFSET_COMMIT: i16 = 8;
const API_OFFSET_FETCH: i16 = 9;
const API_FIND_COORDINATOR: i16 = 10;

/// Kafka error codes the client answers differently.
const UNKNOWN_TOPIC: i16 = 3;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const COORDINATOR_LOADING: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;

/// The ListOffsets timestamp for a partition's latest offset.
pub const LATEST: i64 = -1;
/// The ListOffsets timestamp for a partition's earliest offset.
pub const EARLIEST: i64 = -2;

/// Messages fetched: (partition, offset, value).
pub type Fetched = Vec<(i32, i64, Vec<u8>)>;

/// A topic and a consumer group on a Kafka cluster.
pub struct Client {
    server: String,
    topic: String,
    group: String,
    bootstrap: Conn,
    security: KafkaSecurity,
    brokers: HashMap<i32, (String, u16)>,
    conns: HashMap<i32, Conn>,
    coordinator: Option<i32>,
    /// The topic's partitions and the node leading each.
    leaders: BTreeMap<i32, i32>,
}

impl Client {
    /// Connects to the bootstrap broker and reads the topic's partitions
    /// and their leaders (an error if the topic does not exist). Every
    /// connection is secured as `security` says.
    pub fn connect(
        url: &BrokerUrl,
        topic: &str,
        group: &str,
        security: &KafkaSecurity,
    ) -> Result<Client> {
        let server = url.to_string();
        let bootstrap = Conn::connect(&url.host, url.port, &server, security)?;
        let mut client = Client {
            server,
            topic: topic.to_string(),
            group: group.to_string(),
            bootstrap,
            security: security.clone(),
            brokers: HashMap::new(),
            conns: HashMap::new(),
            coordinator: None,
            leaders: BTreeMap::new(),
        };
        client.metadata()?;
        Ok(client)
    }

    /// The topic's partitions, in order.
    pub fn partitions(&self) -> Vec<i32> {
        self.leaders.keys().copied().collect()
    }

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
                    self.server,
                    self.topic
                ),
                code => bail!(
                    "{}: topic {:?}: {}",
                    self.server,
                    self.topic,
                    error_text(code)
                ),
            }
            found = true;
            for _ in 0..partitions {
                let _error = d.i16()?;
                let id = d.i32()?;
                let leader = d.i32()?;
                d.skip_i32s()?;
                d.skip_i32s()?;
                self.leaders.insert(id, leader);
            }
        }
        if !found || self.leaders.is_empty() {
            bail!(
                "{}: topic {:?} does not exist or has no partitions",
                self.server,
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
                .with_context(|| format!("{}: broker {node} is not known", self.server))?;
            // The address the cluster advertises for the broker.
            let server = format!("kafka://{host}:{port}");
            let conn = Conn::connect(&host, port, &server, &self.security)?;
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
                    self.server,
                    self.group,
                    error_text(code)
                ),
            }
        }
        unreachable!("the last attempt returns or fails")
    }

    /// The group's committed offsets by partition (-1: none).
    pub fn committed_offsets(&mut self) -> Result<HashMap<i32, i64>> {
        let ids = self.partitions();
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
                    self.server,
                    self.group,
                    error_text(error)
                );
            }
            if error != 0 {
                bail!(
                    "{}: committed offset of {}/{id} for group {:?}: {}",
                    self.server,
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

    /// The log's earliest (`EARLIEST`) or latest (`LATEST`) offset of each
    /// partition.
    pub fn list_offsets(&mut self, ids: &[i32], at: i64) -> Result<HashMap<i32, i64>> {
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
                        self.server,
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
            if let Some(leader) = self.leaders.get(id) {
                out.entry(*leader).or_default().push(*id);
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
    pub fn fetch_from(&mut self, from: &BTreeMap<i32, i64>, wait: Duration) -> Result<Fetched> {
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
                        self.server,
                        from[&id],
                        self.topic
                    ),
                    code => bail!(
                        "{}: fetching {}/{id}: {}",
                        self.server,
                        self.topic,
                        error_text(code)
                    ),
                }
                let start = from[&id];
                let before = out.len();
                for (offset, value) in decode_batches(records, start).with_context(|| {
                    format!(
                        "{}: reading {}/{id} from offset {start}",
                        self.server, self.topic
                    )
                })? {
                    out.push((id, offset, value));
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
    pub fn commit(&mut self, offsets: &[(i32, i64)]) -> Result<()> {
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
                    self.server,
                    self.topic,
                    self.group,
                    error_text(error)
                );
            }
            Ok(())
        })?;
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
        33 => "unsupported SASL mechanism",
        34 => "illegal SASL state",
        35 => "unsupported version",
        58 => "SASL authentication failed",
        _ => "",
    };
    if name.is_empty() {
        format!("Kafka error {code}")
    } else {
        format!("{name} (Kafka error {code})")
    }
}
