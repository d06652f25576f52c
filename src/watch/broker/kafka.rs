//! A Kafka topic as a watch source: every partition, offsets kept by a
//! consumer group (the protocol client is `crate::client::kafka`).
//!
//! etl-watch is the group's only reader (its checkpoint lock makes it so):
//! it reads all partitions itself and uses the group for its committed
//! offsets, as a standalone consumer does. A partition's committed offset
//! moves only past messages whose batch was handed on (or whose reject was
//! written): it is the lowest offset read and not yet acknowledged. After a
//! crash the group resumes there; the batch named in the checkpoint is read
//! again by its offsets and sent with its id, and messages it holds are not
//! taken a second time. Offsets acknowledged above the committed one (a
//! reject ahead of an open batch) are kept in the checkpoint, so a restart
//! does not reject them twice.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::contract::{
    AtRest, Body, BrokerOptions, BrokerSource, Message, Previous, RestartFrom, refuse_restart,
};
use super::position::PartitionOffset;
use super::url::BrokerPlan;
use crate::client::kafka::{Client, EARLIEST, LATEST};

/// What etl-watch knows of one partition.
#[derive(Default)]
struct Partition {
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
    client: Client,
    /// The bootstrap broker, as messages name it.
    server: String,
    topic: String,
    group: String,
    partitions: BTreeMap<i32, Partition>,
    buffer: VecDeque<Message<PartitionOffset>>,
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
        previous: Option<&Previous<KafkaState>>,
    ) -> Result<KafkaTopic> {
        let BrokerPlan::Kafka {
            url,
            topic,
            group,
            security,
        } = plan
        else {
            unreachable!("KafkaTopic::open is called for kafka:// only");
        };
        let server = url.to_string();
        let client = Client::connect(url, topic, group, security)?;
        let partitions = client
            .partitions()
            .into_iter()
            .map(|id| (id, Partition::default()))
            .collect();
        let mut kafka = KafkaTopic {
            client,
            server: server.clone(),
            topic: topic.clone(),
            group: group.clone(),
            partitions,
            buffer: VecDeque::new(),
            started_over: false,
        };
        let mut committed = kafka.client.committed_offsets()?;
        let had: BTreeMap<i32, i64> = previous
            .filter(|p| p.identity == format!("kafka;{topic};{group}"))
            .and_then(|p| p.state.as_ref())
            .map(|state| {
                state
                    .committed
                    .iter()
                    .map(|(&id, &o)| (id, o))
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
            let at = if options.from_end { LATEST } else { EARLIEST };
            kafka.client.list_offsets(&missing, at)?
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

    /// Commits `offsets` (partition → next offset) for the group.
    fn commit(&mut self, offsets: &[(i32, i64)]) -> Result<()> {
        self.client.commit(offsets)?;
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
        let fetched = self.client.fetch_from(&from, wait)?;
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
                position: PartitionOffset {
                    partition: id,
                    offset,
                },
                subject: self.topic.clone(),
                body: Body::Payload(value),
                ack: None,
            });
        }
        Ok(())
    }
}

impl BrokerSource for KafkaTopic {
    type Position = PartitionOffset;
    type State = KafkaState;
    type Batch = KafkaBatch;

    fn name(&self) -> String {
        format!("kafka topic {}", self.topic)
    }

    fn identity(&self) -> String {
        format!("kafka;{};{}", self.topic, self.group)
    }

    fn fetch(
        &mut self,
        max: usize,
        wait: Option<Duration>,
    ) -> Result<Vec<Message<PartitionOffset>>> {
        if self.buffer.is_empty() {
            self.fill(wait.unwrap_or(Duration::ZERO))?;
        }
        let n = max.min(self.buffer.len());
        Ok(self.buffer.drain(..n).collect())
    }

    fn ack(&mut self, messages: &[Message<PartitionOffset>]) -> Result<()> {
        let mut touched = BTreeSet::new();
        for m in messages {
            let PartitionOffset {
                partition: id,
                offset,
            } = m.position;
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

    fn positions(&self, messages: &[Message<PartitionOffset>]) -> KafkaBatch {
        let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        for m in messages {
            by_partition
                .entry(m.position.partition)
                .or_default()
                .push(m.position.offset);
        }
        let partitions = by_partition
            .into_iter()
            .map(|(partition, mut offsets)| {
                offsets.sort_unstable();
                PartitionSpan {
                    partition,
                    first: offsets[0],
                    last: offsets[offsets.len() - 1],
                    messages: offsets.len(),
                }
            })
            .collect();
        KafkaBatch {
            topic: self.topic.clone(),
            group: self.group.clone(),
            messages: messages.len(),
            partitions,
        }
    }

    fn recover(&mut self, batch: &KafkaBatch) -> Result<Vec<Message<PartitionOffset>>> {
        let mut out = Vec::new();
        for span in &batch.partitions {
            let (id, first, last) = (span.partition, span.first, span.last);
            if !self.partitions.contains_key(&id) {
                bail!(
                    "{}: partition {id} of the batch in flight is not in topic {:?}",
                    self.server,
                    self.topic
                );
            }
            let mut at = first;
            'read: while at <= last {
                let fetched = self
                    .client
                    .fetch_from(&BTreeMap::from([(id, at)]), Duration::ZERO)?;
                if fetched.is_empty() {
                    bail!(
                        "{}: offsets {at}..{last} of {}/{id} (the batch in flight) cannot be read",
                        self.server,
                        self.topic
                    );
                }
                for (_, offset, value) in fetched {
                    if offset > last {
                        break 'read;
                    }
                    at = offset + 1;
                    out.push(Message {
                        position: PartitionOffset {
                            partition: id,
                            offset,
                        },
                        subject: self.topic.clone(),
                        body: Body::Payload(value),
                        ack: None,
                    });
                }
            }
            let p = self.partitions.get_mut(&id).expect("checked above");
            for m in out.iter().filter(|m| m.position.partition == id) {
                p.outstanding.insert(m.position.offset);
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

    fn state(&self) -> KafkaState {
        KafkaState {
            done: self
                .partitions
                .iter()
                .filter(|(_, p)| !p.acked.is_empty())
                .map(|(id, p)| (*id, p.acked.iter().copied().collect()))
                .collect(),
            // What the group had committed: if its offsets vanish, the
            // next run knows how far it had got.
            committed: self
                .partitions
                .iter()
                .filter(|(_, p)| p.committed > 0)
                .map(|(id, p)| (*id, p.committed))
                .collect(),
        }
    }

    fn started_over(&self) -> bool {
        self.started_over
    }

    fn restore(&mut self, state: KafkaState) {
        for (id, offsets) in state.done {
            let Some(p) = self.partitions.get_mut(&id) else {
                continue;
            };
            p.acked
                .extend(offsets.into_iter().filter(|&o| o >= p.position));
        }
    }
}

/// What a Kafka checkpoint keeps: `{"done":{"PARTITION":[offsets]},
/// "committed":{"PARTITION":offset}}`: the offsets acknowledged above the
/// committed one, and the group's committed offsets (`committed` is
/// missing in checkpoints written before etlkit kept it).
#[derive(Debug, Default, PartialEq)]
pub(super) struct KafkaState {
    done: BTreeMap<i32, Vec<i64>>,
    committed: BTreeMap<i32, i64>,
}

/// A JSON object keyed by partition, each value read by `read`.
fn by_partition<T>(
    value: Option<&Value>,
    what: &str,
    read: impl Fn(&Value) -> Option<T>,
) -> Result<BTreeMap<i32, T>, String> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(BTreeMap::new());
    };
    let bad = || format!("{what} is not an object of partitions: {value}");
    value
        .as_object()
        .ok_or_else(bad)?
        .iter()
        .map(|(id, v)| id.parse().ok().zip(read(v)).ok_or_else(bad))
        .collect()
}

impl AtRest for KafkaState {
    fn to_json(&self) -> Value {
        let done: serde_json::Map<String, Value> = self
            .done
            .iter()
            .map(|(id, offsets)| (id.to_string(), json!(offsets)))
            .collect();
        let committed: serde_json::Map<String, Value> = self
            .committed
            .iter()
            .map(|(id, offset)| (id.to_string(), json!(offset)))
            .collect();
        json!({ "done": done, "committed": committed })
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        Ok(KafkaState {
            done: by_partition(value.get("done"), "\"done\"", |v| {
                v.as_array()?.iter().map(Value::as_i64).collect()
            })?,
            committed: by_partition(value.get("committed"), "\"committed\"", Value::as_i64)?,
        })
    }
}

/// The positions of a Kafka batch: `{"broker":"kafka","topic":T,"group":G,
/// "messages":N,"partitions":[{"partition":P,"first":O,"last":O,
/// "messages":N},...]}`.
#[derive(Debug, PartialEq)]
pub(super) struct KafkaBatch {
    topic: String,
    group: String,
    messages: usize,
    partitions: Vec<PartitionSpan>,
}

/// A batch's offsets in one partition: what `recover` reads again.
#[derive(Debug, PartialEq)]
struct PartitionSpan {
    partition: i32,
    first: i64,
    last: i64,
    messages: usize,
}

impl AtRest for KafkaBatch {
    fn to_json(&self) -> Value {
        let partitions: Vec<Value> = self
            .partitions
            .iter()
            .map(|p| {
                json!({
                    "partition": p.partition,
                    "first": p.first,
                    "last": p.last,
                    "messages": p.messages,
                })
            })
            .collect();
        json!({
            "broker": "kafka",
            "topic": self.topic,
            "group": self.group,
            "messages": self.messages,
            "partitions": partitions,
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
        let count = |v: &Value| v.get("messages").and_then(Value::as_u64).unwrap_or(0) as usize;
        let partitions = value
            .get("partitions")
            .and_then(Value::as_array)
            .ok_or("no \"partitions\"")?
            .iter()
            .map(|p| {
                let span = || {
                    Some(PartitionSpan {
                        partition: i32::try_from(p.get("partition")?.as_i64()?).ok()?,
                        first: p.get("first")?.as_i64()?,
                        last: p.get("last")?.as_i64()?,
                        messages: count(p),
                    })
                };
                span().ok_or_else(|| format!("{p} is not a partition's offsets"))
            })
            .collect::<Result<_, _>>()?;
        Ok(KafkaBatch {
            topic: text("topic"),
            group: text("group"),
            messages: count(value),
            partitions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// The state and the batch in flight as etlkit wrote them before
    /// positions were typed, and the state before `committed` was kept.
    #[test]
    fn checkpoints_of_earlier_releases_are_read() {
        let state = json!({"done": {"1": [14, 16], "10": [3]}, "committed": {"0": 11, "1": 12}});
        let read = KafkaState::from_json(&state).unwrap();
        assert_eq!(read.done[&10], [3]);
        assert_eq!(read.committed[&1], 12);
        let again = read.to_json();
        assert_eq!(KafkaState::from_json(&again).unwrap(), read);
        let older = KafkaState::from_json(&json!({"done": {}})).unwrap();
        assert_eq!(older, KafkaState::default());
        let batch = json!({"broker": "kafka", "topic": "orders", "group": "etl", "messages": 5,
            "partitions": [{"partition": 0, "first": 0, "last": 1, "messages": 2},
                           {"partition": 2, "first": 4, "last": 6, "messages": 3}]});
        let read = KafkaBatch::from_json(&batch).unwrap();
        assert_eq!(read.partitions[1].last, 6);
        assert_eq!(read.to_json().to_string(), batch.to_string());
        assert!(KafkaBatch::from_json(&json!({"partitions": [{"partition": 0}]})).is_err());
    }
}
