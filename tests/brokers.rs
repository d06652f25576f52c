//! `etl-watch` on message brokers: NATS JetStream, Redis Streams and Kafka,
//! real servers on 127.0.0.1 (NATS 4222 with JetStream, Redis 6379, a
//! Kafka-protocol broker on 9092). Without a server these tests skip
//! loudly; with ETLKIT_REQUIRE_NATS, ETLKIT_REQUIRE_REDIS or
//! ETLKIT_REQUIRE_KAFKA set (as in CI) they fail instead.
//!
//! The conformance table: every broker in `conformance!` runs the same
//! cases (`cases`), Redis twice: also over TLS with a client certificate
//! and an ACL user (the TLS-only server of scripts/broker-tls-servers.sh,
//! required under ETLKIT_REQUIRE_BROKER_TLS): a missing stream is named; messages load once; a
//! batch in flight is sent again with its id and skipped by etl-load; a
//! checkpoint written by the last release is read; a poison message goes
//! to the rejects; and the kill storm, the acceptance test: 10,000
//! messages, watch and load into SQLite and PostgreSQL in append mode,
//! the watcher or the loader SIGKILLed at 20 seeded points; afterwards
//! the table holds exactly the 10,000 ids and the broker holds nothing
//! unacknowledged. A `Broker` says how to set up, publish to and check its
//! broker. What only one broker does has a test of its own below, and
//! `restart.rs` holds what each does when what it read from is lost.

mod restart;
mod tls;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::expect::expect;
use crate::common::kafka::{Codec, Kafka, kafka_addr};
use crate::common::nats::{NATS_ADDR, Nats};
use crate::common::redis::{REDIS_ADDR, Redis};
use crate::common::*;

const PARTITIONS: i32 = 3;

fn reachable(addr: &str, what: &str, require: &str) -> bool {
    match TcpStream::connect(addr) {
        Ok(_) => true,
        Err(e) => {
            if std::env::var_os(require).is_some() {
                panic!("{what} is required ({require}) but unreachable at {addr}: {e}");
            }
            eprintln!("SKIPPED: {what} test: no server at {addr} ({e})");
            false
        }
    }
}

fn payloads(from: usize, to: usize) -> Vec<Vec<u8>> {
    (from..to)
        .map(|i| format!(r#"{{"id":{i},"item":"thing {i}"}}"#).into_bytes())
        .collect()
}

fn watch(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut c = cmd(WATCH, dir);
    c.args(args);
    run(c)
}

/// Publishes message `i` of `range` to partition `i % PARTITIONS`.
fn kafka_publish(topic: &str, range: std::ops::Range<usize>) {
    let mut kafka = Kafka::connect();
    let all = payloads(range.start, range.end);
    for p in 0..PARTITIONS {
        let mine: Vec<Vec<u8>> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| (range.start + i) as i32 % PARTITIONS == p)
            .map(|(_, m)| m.clone())
            .collect();
        if !mine.is_empty() {
            kafka.produce(topic, p, &mine);
        }
    }
}

fn redis_entries(payloads: &[Vec<u8>]) -> Vec<Vec<(&'static str, String)>> {
    payloads
        .iter()
        .map(|p| vec![("payload", String::from_utf8_lossy(p).into_owned())])
        .collect()
}

fn distinct_ids(db: &Path, table: &str) -> (i64, i64) {
    let conn = rusqlite::Connection::open(db).expect("open");
    conn.query_row(
        &format!("SELECT count(*), count(DISTINCT id) FROM {table}"),
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .expect("count")
}

/// A row of the conformance table: a broker, and how the cases set it up,
/// publish to it and check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broker {
    Nats,
    Redis,
    /// Redis over TLS, with a client certificate and an ACL user (the
    /// TLS-only server of scripts/broker-tls-servers.sh).
    RedisTls,
    Kafka,
}

/// The TLS-only Redis: its address, and the ACL user the tests sign in as.
const REDIS_TLS_ADDR: &str = "127.0.0.1:6380";
const REDIS_TLS_USER: (&str, &str) = ("etl", "etl-secret");

/// A stream (NATS), key (Redis) or topic (Kafka) of the test's own,
/// deleted when the test ends.
struct Stream {
    broker: Broker,
    /// The JetStream stream, Redis key or Kafka topic.
    name: String,
    /// Where messages are published: the NATS subject, else the name.
    subject: String,
}

impl Broker {
    /// Is its server there? (Without it the case skips, or fails when
    /// CI requires it.)
    fn ready(self) -> bool {
        match self {
            Broker::Nats => reachable(NATS_ADDR, "NATS", "ETLKIT_REQUIRE_NATS"),
            Broker::Redis => reachable(REDIS_ADDR, "Redis", "ETLKIT_REQUIRE_REDIS"),
            Broker::RedisTls => tls::up(6380, "Redis TLS"),
            Broker::Kafka => reachable(&kafka_addr(), "Kafka", "ETLKIT_REQUIRE_KAFKA"),
        }
    }

    /// A connection for setting up and checking a Redis broker.
    fn redis(self) -> Redis {
        match self {
            Broker::RedisTls => {
                let (user, password) = REDIS_TLS_USER;
                Redis::connect_tls(6380, &tls::client_options(), user, password)
            }
            _ => Redis::connect(),
        }
    }

    /// The flags etl-watch needs besides the URL (the TLS files).
    fn flags(self) -> Vec<String> {
        match self {
            Broker::RedisTls => tls::client_flags(),
            _ => Vec::new(),
        }
    }

    /// The broker's URL as etl-watch's messages show it (no password).
    fn shown(self) -> String {
        match self {
            Broker::RedisTls => format!("rediss://{REDIS_TLS_ADDR}"),
            other => other.url(),
        }
    }

    /// The broker's URL as etl-watch takes it.
    fn url(self) -> String {
        match self {
            Broker::Nats => format!("nats://{NATS_ADDR}"),
            Broker::Redis => format!("redis://{REDIS_ADDR}"),
            Broker::RedisTls => {
                let (user, password) = REDIS_TLS_USER;
                format!("rediss://{user}:{password}@{REDIS_TLS_ADDR}")
            }
            Broker::Kafka => format!("kafka://{}", kafka_addr()),
        }
    }

    /// A stream of the test's own, not created yet.
    fn absent(self, test: &str) -> Stream {
        let name = match self {
            Broker::Nats => unique(&format!("ETL{}", test.to_uppercase())),
            Broker::Redis | Broker::RedisTls | Broker::Kafka => unique(&format!("etl_t_{test}")),
        };
        let subject = match self {
            Broker::Nats => format!("{}.orders", name.to_lowercase()),
            Broker::Redis | Broker::RedisTls | Broker::Kafka => name.clone(),
        };
        Stream {
            broker: self,
            name,
            subject,
        }
    }

    /// A stream of the test's own, created (a Redis stream is created by
    /// its first entry).
    fn fresh(self, test: &str) -> Stream {
        let stream = self.absent(test);
        match self {
            Broker::Nats => Nats::connect().create_stream(&stream.name, &stream.subject),
            Broker::Redis | Broker::RedisTls => {}
            Broker::Kafka => Kafka::connect().create_topic(&stream.name, PARTITIONS),
        }
        stream
    }
}

impl Stream {
    /// etl-watch's arguments naming the stream (a JetStream consumer waits
    /// 1 s for acknowledgements, so that a restart's redeliveries come
    /// soon).
    fn source(&self) -> Vec<String> {
        let url = self.broker.url();
        let args: Vec<&str> = match self.broker {
            Broker::Nats => vec![
                &url,
                "--subject",
                &self.subject,
                "--durable",
                "etl",
                "--ack-wait",
                "1",
            ],
            Broker::Redis | Broker::RedisTls => vec![&url, "--key", &self.name, "--group", "etl"],
            Broker::Kafka => vec![&url, "--topic", &self.name, "--group", "etl"],
        };
        let mut args: Vec<String> = args.into_iter().map(String::from).collect();
        args.extend(self.broker.flags());
        args
    }

    /// Runs etl-watch on the stream with `args` after the source's.
    fn watch(&self, dir: &Path, args: &[&str]) -> std::process::Output {
        let mut all: Vec<String> = self.source();
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        watch(dir, &all)
    }

    /// Publishes `payloads(range)` (Kafka: message `i` to partition
    /// `i % PARTITIONS`).
    fn publish(&self, range: std::ops::Range<usize>) {
        let messages = payloads(range.start, range.end);
        match self.broker {
            Broker::Nats => {
                Nats::connect().publish(&self.subject, &messages);
            }
            Broker::Redis | Broker::RedisTls => {
                self.broker
                    .redis()
                    .add(&self.name, &redis_entries(&messages));
            }
            Broker::Kafka => kafka_publish(&self.name, range),
        }
    }

    /// Publishes one message (Kafka: to partition 1); where it is, as a
    /// reject's reason names it.
    fn publish_one(&self, payload: &[u8]) -> String {
        let position = match self.broker {
            Broker::Nats => {
                let seq = Nats::connect().publish(&self.subject, &[payload.to_vec()]);
                format!("sequence {}", seq[0])
            }
            Broker::Redis | Broker::RedisTls => {
                let ids = self
                    .broker
                    .redis()
                    .add(&self.name, &redis_entries(&[payload.to_vec()]));
                format!("sequence {}", ids[0])
            }
            Broker::Kafka => {
                let offset = Kafka::connect().produce(&self.name, 1, &[payload.to_vec()]);
                format!("partition 1 offset {offset}")
            }
        };
        format!("{position} ({})", self.subject)
    }

    /// How many messages the broker holds as acknowledged: the NATS
    /// consumer's ack floor, the Redis entries delivered to the group and
    /// not pending, the sum of the Kafka group's committed offsets.
    fn acked(&self) -> i64 {
        match self.broker {
            Broker::Nats => {
                let info = Nats::connect().consumer(&self.name, "etl");
                info["ack_floor"]["stream_seq"].as_i64().unwrap_or(0)
            }
            Broker::Redis | Broker::RedisTls => {
                let mut redis = self.broker.redis();
                let Some(last) = redis_group_field(&mut redis, &self.name, "last-delivered-id")
                else {
                    return 0;
                };
                let delivered = redis.call(&["XRANGE", &self.name, "-", &last]);
                let delivered = delivered.as_array().map_or(0, Vec::len) as i64;
                delivered - redis.pending(&self.name, "etl")
            }
            Broker::Kafka => Kafka::connect()
                .committed("etl", &self.name, PARTITIONS)
                .iter()
                .map(|&o| o.max(0))
                .sum(),
        }
    }

    /// Has every one of the `total` messages published been handed on and
    /// acknowledged, with nothing left pending?
    fn settled(&self, total: usize) -> bool {
        let total = total as i64;
        match self.broker {
            Broker::Nats => {
                let info = Nats::connect().consumer(&self.name, "etl");
                info["ack_floor"]["stream_seq"] == json!(total)
                    && info["num_ack_pending"] == json!(0)
                    && info["num_pending"] == json!(0)
            }
            Broker::Redis | Broker::RedisTls => {
                let mut redis = self.broker.redis();
                let stream = redis.call(&["XINFO", "STREAM", &self.name]);
                let last = stream
                    .as_array()
                    .and_then(|s| s.chunks(2).find(|kv| kv[0] == json!("last-generated-id")))
                    .and_then(|kv| kv[1].as_str().map(String::from));
                redis.call(&["XLEN", &self.name]) == json!(total)
                    && redis.pending(&self.name, "etl") == 0
                    && redis_group_field(&mut redis, &self.name, "last-delivered-id") == last
            }
            Broker::Kafka => {
                let mut kafka = Kafka::connect();
                let ends = kafka.end_offsets(&self.name, PARTITIONS);
                ends.iter().sum::<i64>() == total
                    && kafka.committed("etl", &self.name, PARTITIONS) == ends
            }
        }
    }

    /// Waits (up to 20 s) until the broker has settled: a JetStream
    /// consumer reports its ack floor a moment after it confirmed the
    /// acknowledgements, and delivers a batch sent again after a restart
    /// once more after its ack wait (each such delivery is acknowledged by
    /// running `again`).
    fn wait_settled(&self, total: usize, again: &mut dyn FnMut()) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.settled(total) {
            assert!(
                Instant::now() < deadline,
                "{:?} did not settle: {} of {total} acknowledged",
                self.broker,
                self.acked()
            );
            std::thread::sleep(Duration::from_millis(300));
            again();
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        match self.broker {
            Broker::Nats => Nats::connect().delete_stream(&self.name),
            Broker::Redis | Broker::RedisTls => {
                self.broker.redis().call(&["DEL", &self.name]);
            }
            Broker::Kafka => Kafka::connect().delete_topic(&self.name),
        }
    }
}

/// A field of the Redis group `etl` of `key` (XINFO GROUPS).
fn redis_group_field(redis: &mut Redis, key: &str, field: &str) -> Option<String> {
    let groups = redis.call(&["XINFO", "GROUPS", key]);
    let group = groups.as_array()?.iter().find(|g| {
        g.as_array().is_some_and(|g| {
            g.chunks(2)
                .any(|kv| kv[0] == json!("name") && kv[1] == json!("etl"))
        })
    })?;
    let value = group
        .as_array()?
        .chunks(2)
        .find(|kv| kv[0] == json!(field))?[1]
        .clone();
    value.as_str().map(String::from)
}

/// The table: each broker runs every case.
macro_rules! conformance {
    ($($name:ident: $broker:expr;)*) => {$(
        mod $name {
            use super::cases;
            use super::{Broker, Store};

            const BROKER: Broker = $broker;

            #[test]
            fn a_missing_stream_is_named() {
                if BROKER.ready() {
                    cases::missing_stream(BROKER);
                }
            }

            #[test]
            fn messages_load_once_and_are_acknowledged() {
                if BROKER.ready() {
                    cases::load_once(BROKER);
                }
            }

            #[test]
            fn a_batch_in_flight_is_sent_again_with_its_id() {
                if BROKER.ready() {
                    cases::replay(BROKER);
                }
            }

            #[test]
            fn a_checkpoint_of_the_last_release_is_read() {
                if BROKER.ready() {
                    cases::old_checkpoint(BROKER);
                }
            }

            #[test]
            fn a_poison_message_goes_to_rejects() {
                if BROKER.ready() {
                    cases::poison(BROKER);
                }
            }

            #[test]
            fn kill_storm_into_sqlite_loads_each_message_once() {
                if BROKER.ready() {
                    cases::kill_storm(BROKER, Store::Sqlite);
                }
            }

            #[test]
            fn kill_storm_into_postgres_loads_each_message_once() {
                if BROKER.ready()
                    && let Some(schema) =
                        crate::common::PgSchema::new(&format!("{}_crash", stringify!($name)))
                {
                    cases::kill_storm(BROKER, Store::Postgres(schema));
                }
            }
        }
    )*};
}

conformance! {
    nats: Broker::Nats;
    redis: Broker::Redis;
    redis_tls: Broker::RedisTls;
    kafka: Broker::Kafka;
}

/// The cases every broker runs.
mod cases {
    use super::*;

    /// A stream, key or topic that does not exist is an error naming it;
    /// where etl-watch may create it (--create-stream), it does.
    pub fn missing_stream(broker: Broker) {
        let dir = tempdir();
        let stream = broker.absent("missing");
        let args = ["--once", "--checkpoint", "c.ckpt"];
        let out = stream.watch(dir.path(), &args);
        let (url, name, subject) = (broker.shown(), &stream.name, &stream.subject);
        let refused = expect(&out, "missing").code(1).stdout("");
        match broker {
            Broker::Nats => refused.stderr(&format!(
                "etl-watch: error: {url}: no JetStream stream holds subject {subject:?}; hint: \
                 create one (nats stream add), or let etl-watch create it with --create-stream \
                 --js-stream NAME\n"
            )),
            Broker::Redis | Broker::RedisTls => refused.stderr(&format!(
                "etl-watch: error: {url}: there is no stream at key {name:?}; hint: \
                 --create-stream creates it\n"
            )),
            // A Kafka-protocol broker may answer for an unknown topic with
            // an error or with no partitions.
            Broker::Kafka => refused.stderr_like(&format!(
                "etl-watch: error: {url}: topic {name:?} does not exist*\n"
            )),
        };
        let create: &[&str] = match broker {
            Broker::Nats => &["--create-stream", "--js-stream", name],
            Broker::Redis | Broker::RedisTls => &["--create-stream"],
            // Kafka topics are created with Kafka's tools.
            Broker::Kafka => return,
        };
        let mut args = args.to_vec();
        args.extend_from_slice(create);
        let out = stream.watch(dir.path(), &args);
        expect(&out, "created").code(0).stdout("");
        stream.publish(0..3);
        args.extend(["--exec", "etl-load wh.db --table orders"]);
        let out = stream.watch(dir.path(), &args);
        expect(&out, "loaded").code(0).stdout("");
        assert_eq!(distinct_ids(&dir.path().join("wh.db"), "orders"), (3, 3));
        stream.wait_settled(3, &mut || {});
    }

    /// Messages are handed on once, in batches, and acknowledged; a second
    /// run has nothing to hand on.
    pub fn load_once(broker: Broker) {
        let dir = tempdir();
        let stream = broker.fresh("once");
        stream.publish(0..30);
        let args = [
            "--once",
            "--batch-rows",
            "8",
            "--checkpoint",
            "c.ckpt",
            "--exec",
            "etl-load wh.db --table orders",
        ];
        let out = stream.watch(dir.path(), &args);
        expect(&out, "first run").code(0).stdout("");
        let db = dir.path().join("wh.db");
        assert_eq!(distinct_ids(&db, "orders"), (30, 30));
        stream.wait_settled(30, &mut || {});
        let out = stream.watch(dir.path(), &args);
        expect(&out, "second run").code(0).stdout("");
        assert_eq!(distinct_ids(&db, "orders"), (30, 30));
        assert!(stream.settled(30));
    }

    /// The batch in flight when --exec failed after its load committed is
    /// sent again first by the next run, with the same id, and etl-load
    /// skips it; nothing is sent a third time.
    pub fn replay(broker: Broker) {
        let dir = tempdir();
        let stream = broker.fresh("replay");
        stream.publish(0..12);
        let base = [
            "--once",
            "--batch-rows",
            "5",
            "--checkpoint",
            "c.ckpt",
            "--max-retries",
            "0",
        ];
        let mut args = base.to_vec();
        args.extend(["--exec", "etl-load wh.db --table t && false"]);
        let out = stream.watch(dir.path(), &args);
        expect(&out, "the crash").code(1).stdout("");
        assert!(stderr(&out).contains("--exec failed"), "{}", stderr(&out));
        let db = dir.path().join("wh.db");
        assert_eq!(distinct_ids(&db, "t"), (5, 5));
        assert_eq!(stream.acked(), 0, "nothing acknowledged");
        let checkpoint: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("c.ckpt")).expect("ckpt"))
                .expect("json");
        let id = checkpoint["pending"]["batch"]
            .as_str()
            .expect("id")
            .to_string();
        let mut args = base.to_vec();
        args.extend(["--exec", "tee -a sent.ndjson | etl-load wh.db --table t"]);
        let out = stream.watch(dir.path(), &args);
        expect(&out, "the rerun").code(0).stdout("");
        let sent =
            || json_lines(&std::fs::read_to_string(dir.path().join("sent.ndjson")).expect("sent"));
        let first = sent();
        assert_eq!(first[0]["batch"], json!(id));
        assert_eq!(first[6]["@etl"], json!("end"));
        assert_eq!(first[6]["rows"], json!(5));
        assert_eq!(first[6]["positions"]["messages"], json!(5));
        assert_eq!(distinct_ids(&db, "t"), (12, 12));
        stream.wait_settled(12, &mut || {
            let out = stream.watch(dir.path(), &args);
            expect(&out, "a later run").code(0).stdout("");
        });
        // The 5 again, then the other 7: each message sent once more at
        // most, and only the batch in flight.
        let rows: u64 = sent()
            .iter()
            .filter(|l| l["@etl"] == json!("end"))
            .map(|l| l["rows"].as_u64().expect("rows"))
            .sum();
        assert_eq!(rows, 12);
        assert_eq!(distinct_ids(&db, "t"), (12, 12));
    }

    /// A checkpoint as etlkit wrote it before positions were typed (the
    /// text below, not this build's writer) is read: its batch in flight
    /// is sent again with its id, and reading goes on after it.
    pub fn old_checkpoint(broker: Broker) {
        let dir = tempdir();
        let stream = broker.fresh("oldckpt");
        let base = [
            "--once",
            "--batch-rows",
            "5",
            "--checkpoint",
            "c.ckpt",
            "--max-retries",
            "0",
        ];
        // The 5 messages of the batch in flight, delivered and not
        // acknowledged: a run whose --exec failed.
        let mut positions = Vec::new();
        for i in 0..5 {
            let payload = format!(r#"{{"id":{i},"item":"thing {i}"}}"#);
            let message = match broker {
                Broker::Kafka => {
                    let offset = Kafka::connect().produce(
                        &stream.name,
                        i % PARTITIONS,
                        &[payload.into_bytes()],
                    );
                    offset.to_string()
                }
                _ => stream.publish_one(payload.as_bytes()),
            };
            positions.push(message);
        }
        let mut args = base.to_vec();
        args.extend(["--exec", "false"]);
        let out = stream.watch(dir.path(), &args);
        expect(&out, "the crash").code(1).stdout("");
        let (name, subject) = (&stream.name, &stream.subject);
        let id_of = |text: &str| text.split(' ').nth(1).expect("id").to_string();
        let (identity, state, pending) = match broker {
            Broker::Nats => (
                format!(
                    "nats;{name};{};etl;{subject}",
                    Nats::connect().created(name)
                ),
                r#"{"done": [], "through": 0}"#.to_string(),
                format!(
                    r#"{{"broker": "nats", "stream": "{name}", "consumer": "etl", "first": 1,
                    "last": 5, "messages": 5, "ranges": [[1, 5]]}}"#
                ),
            ),
            Broker::Redis | Broker::RedisTls => (
                format!("redis;;{name};etl;etl-watch"),
                "null".to_string(),
                format!(
                    r#"{{"broker": "redis", "key": "{name}", "group": "etl",
                    "consumer": "etl-watch", "first": "{}", "last": "{}", "messages": 5}}"#,
                    id_of(&positions[0]),
                    id_of(&positions[4])
                ),
            ),
            Broker::Kafka => (
                format!("kafka;{name};etl"),
                r#"{"done": {}, "committed": {}}"#.to_string(),
                format!(
                    r#"{{"broker": "kafka", "topic": "{name}", "group": "etl", "messages": 5,
                    "partitions": [{{"partition": 0, "first": {}, "last": {}, "messages": 2}},
                    {{"partition": 1, "first": {}, "last": {}, "messages": 2}},
                    {{"partition": 2, "first": {}, "last": {}, "messages": 1}}]}}"#,
                    positions[0],
                    positions[3],
                    positions[1],
                    positions[4],
                    positions[2],
                    positions[2]
                ),
            ),
        };
        let checkpoint = format!(
            "{{\n  \"version\": 1,\n  \"broker\": \"{identity}\",\n  \"state\": {state},\n  \
             \"pending\": {{\n    \"batch\": \"0123456789abcdef\",\n    \"positions\": {pending}\n  }}\n}}"
        );
        std::fs::write(dir.path().join("c.ckpt"), checkpoint).expect("checkpoint");
        stream.publish(5..7);
        let mut args = base.to_vec();
        args.extend(["--exec", "tee -a sent.ndjson | etl-load wh.db --table t"]);
        let out = stream.watch(dir.path(), &args);
        expect(&out, "the upgrade").code(0).stdout("");
        let sent =
            json_lines(&std::fs::read_to_string(dir.path().join("sent.ndjson")).expect("sent"));
        assert_eq!(sent[0]["batch"], json!("0123456789abcdef"));
        assert_eq!(sent[6]["positions"]["messages"], json!(5));
        assert_eq!(distinct_ids(&dir.path().join("wh.db"), "t"), (7, 7));
        stream.wait_settled(7, &mut || {
            let out = stream.watch(dir.path(), &args);
            expect(&out, "a later run").code(0).stdout("");
        });
    }

    /// A message that holds no valid record goes to the rejects file with
    /// its position, is acknowledged, and the run exits 3; the next run adds
    /// to the file.
    pub fn poison(broker: Broker) {
        let dir = tempdir();
        let stream = broker.fresh("poison");
        stream.publish(0..2);
        let position = stream.publish_one(b"not json");
        stream.publish(2..4);
        let args = [
            "--once",
            "--checkpoint",
            "c.ckpt",
            "--rejects",
            "bad.ndjson",
            "--exec",
            "etl-load wh.db --table t",
        ];
        let out = stream.watch(dir.path(), &args);
        expect(&out, "poison").code(3).stdout("");
        assert_eq!(distinct_ids(&dir.path().join("wh.db"), "t"), (4, 4));
        let bad =
            json_lines(&std::fs::read_to_string(dir.path().join("bad.ndjson")).expect("rejects"));
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0]["raw"], json!("not json"));
        let reason = bad[0]["reason"].as_str().expect("reason");
        assert!(reason.starts_with(&format!("{position}: ")), "{reason}");
        stream.wait_settled(5, &mut || {});
        stream.publish_one(b"[1]");
        let out = stream.watch(dir.path(), &args);
        expect(&out, "more poison").code(3).stdout("");
        let bad = std::fs::read_to_string(dir.path().join("bad.ndjson")).expect("rejects");
        assert_eq!(bad.lines().count(), 2);
        stream.wait_settled(6, &mut || {});
    }

    /// The kill storm (`crash_and_recover`) on a stream of its own.
    pub fn kill_storm(broker: Broker, store: Store) {
        let stream = broker.fresh("crash");
        let seed = seed()
            ^ match broker {
                Broker::Redis => 0,
                Broker::RedisTls => 0x7473,
                Broker::Nats => 0x5a5a,
                Broker::Kafka => 0x6b61,
            };
        crash_and_recover(
            &store,
            &stream.source(),
            &mut |range| stream.publish(range),
            &mut || stream.settled(MESSAGES),
            seed,
        );
    }
}

/// A Redis entry without a `payload` field is one record of its fields
/// (text: the first batch made `id` an integer column, and its "2" goes
/// in as the number).
#[test]
fn a_redis_entry_without_payload_is_one_record_of_its_fields() {
    if !Broker::Redis.ready() {
        return;
    }
    let dir = tempdir();
    let stream = Broker::Redis.fresh("fields");
    stream.publish(0..2);
    Redis::connect().add(
        &stream.name,
        &[vec![
            ("id", "2".to_string()),
            ("note", "no payload".to_string()),
        ]],
    );
    let out = stream.watch(
        dir.path(),
        &[
            "--once",
            "--batch-rows",
            "2",
            "--checkpoint",
            "c.ckpt",
            "--exec",
            "etl-load wh.db --table orders",
        ],
    );
    expect(&out, "fields").code(0).stdout("");
    assert_eq!(
        dump(&dir.path().join("wh.db"), "orders")
            .last()
            .map(String::as_str),
        Some(r#"Integer(2)|Null|Text("no payload")"#)
    );
}

/// Record batches compressed every way producers write them (gzip, snappy
/// in the Java client's framing and as one raw block, LZ4 frames, zstd)
/// load exactly, in offset order, beside an uncompressed batch; the broker
/// serves them compressed, as they were written.
#[test]
fn kafka_compressed_record_batches_load_exactly() {
    if !Broker::Kafka.ready() {
        return;
    }
    let dir = tempdir();
    let stream = Broker::Kafka.fresh("compressed");
    let mut kafka = Kafka::connect();
    let codecs = [
        None,
        Some(Codec::Gzip),
        Some(Codec::Snappy),
        Some(Codec::RawSnappy),
        Some(Codec::Lz4),
        Some(Codec::Zstd),
    ];
    for (i, codec) in codecs.iter().enumerate() {
        let values = payloads(i * 5, i * 5 + 5);
        let first = match codec {
            None => kafka.produce(&stream.name, 1, &values),
            Some(codec) => kafka.produce_compressed(&stream.name, 1, &values, *codec),
        };
        assert_eq!(first, i as i64 * 5);
    }
    assert_eq!(kafka.batch_codecs(&stream.name, 1), [0, 1, 2, 2, 3, 4]);
    let out = stream.watch(
        dir.path(),
        &[
            "--once",
            "--checkpoint",
            "c.ckpt",
            "--exec",
            "etl-load wh.db --table orders",
        ],
    );
    expect(&out, "compressed").code(0).stdout("");
    let want: Vec<String> = (0..30)
        .map(|i| format!(r#"Integer({i})|Text("thing {i}")"#))
        .collect();
    assert_eq!(dump(&dir.path().join("wh.db"), "orders"), want);
    assert_eq!(
        kafka.committed("etl", &stream.name, PARTITIONS),
        [-1, 30, -1]
    );
}

/// A record batch whose records do not decompress stops etl-watch with
/// exit 1, naming the topic, partition and offsets; nothing is handed on
/// or committed.
#[test]
fn kafka_a_batch_that_does_not_decompress_is_named() {
    if !Broker::Kafka.ready() {
        return;
    }
    let dir = tempdir();
    let stream = Broker::Kafka.fresh("damaged");
    let mut kafka = Kafka::connect();
    kafka.produce(&stream.name, 2, &payloads(0, 3));
    let values = payloads(3, 6);
    let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    let batch = etlkit::client::kafka::record_batch_compressed(&values, 2, |records| {
        let mut block = Codec::RawSnappy.compress(&records);
        let middle = block.len() / 2;
        block.truncate(middle);
        block
    });
    assert_eq!(kafka.produce_batch(&stream.name, 2, &batch), 3);
    let out = stream.watch(
        dir.path(),
        &[
            "--once",
            "--checkpoint",
            "c.ckpt",
            "--exec",
            "etl-load wh.db --table orders",
        ],
    );
    // The decoder's own words on what is wrong come last, as `*`.
    expect(&out, "damaged").code(1).stdout("").stderr_like(&format!(
        "etl-watch: error: kafka://{}: reading {}/2 from offset 0: the record batch at offset 3: \
         snappy data does not decompress: snappy: corrupt input (*)\n",
        kafka_addr(),
        stream.name,
    ));
    assert_eq!(
        kafka.committed("etl", &stream.name, PARTITIONS),
        [-1, -1, -1]
    );
}

#[test]
fn broker_flags_are_checked_before_connecting() {
    let dir = tempdir();
    for (args, message) in [
        (
            vec!["redis://127.0.0.1:6379", "--key", "k", "--group", "g"],
            "a broker needs --checkpoint FILE",
        ),
        (
            vec!["redis://127.0.0.1:6379", "--key", "k", "--checkpoint", "c"],
            "redis:// needs --key KEY and --group NAME",
        ),
        (
            vec!["nats://127.0.0.1", "--subject", "a.>", "--checkpoint", "c"],
            "nats:// needs --subject SUBJECT and --durable NAME",
        ),
        (
            vec![
                "nats://127.0.0.1",
                "--subject",
                "a.>",
                "--durable",
                "d.x",
                "--checkpoint",
                "c",
            ],
            "--durable and --js-stream are names",
        ),
        (
            vec![
                "nats://127.0.0.1",
                "--subject",
                "a",
                "--durable",
                "d",
                "--create-stream",
                "--checkpoint",
                "c",
            ],
            "--create-stream for NATS needs --js-stream NAME",
        ),
        (vec!["a.log", "--key", "k"], "need a broker URL"),
        (
            vec!["kafka://127.0.0.1", "--group", "g", "--checkpoint", "c"],
            "kafka:// needs --topic TOPIC and --group NAME",
        ),
        (
            vec![
                "kafka://127.0.0.1",
                "--topic",
                "t",
                "--group",
                "g",
                "--create-stream",
                "--checkpoint",
                "c",
            ],
            "--create-stream is not for kafka://",
        ),
        (
            vec![
                "kafka://u:p@127.0.0.1",
                "--topic",
                "t",
                "--group",
                "g",
                "--checkpoint",
                "c",
            ],
            "a kafka:// URL holds no user or password; hint: SASL is set with security.protocol",
        ),
        (
            vec![
                "redis://127.0.0.1",
                "--topic",
                "t",
                "--group",
                "g",
                "--checkpoint",
                "c",
            ],
            "--topic is for kafka://",
        ),
        (
            vec![
                "redis://h",
                "--key",
                "k",
                "--group",
                "g",
                "--checkpoint",
                "c",
                "--ca-cert",
                "ca.pem",
            ],
            "need TLS: write rediss:// for redis://",
        ),
    ] {
        let out = watch(dir.path(), &args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn passwords_stay_out_of_messages() {
    if !reachable(REDIS_ADDR, "Redis", "ETLKIT_REQUIRE_REDIS") {
        return;
    }
    let dir = tempdir();
    let out = watch(
        dir.path(),
        &[
            "redis://:hunter2secret@127.0.0.1:6379",
            "--key",
            "k",
            "--group",
            "g",
            "--checkpoint",
            "c",
            "--once",
        ],
    );
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(err.contains("authentication failed"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

/// A batch sent again after a restart is acknowledged only when the
/// consumer delivers its messages once more. A pull can outlast the ack
/// wait, so such a message may come twice within one pull: both times it
/// must be recognised as handed on, never loaded again.
#[test]
fn nats_message_delivered_twice_in_one_pull_after_a_restart_loads_once() {
    if !reachable(NATS_ADDR, "NATS", "ETLKIT_REQUIRE_NATS") {
        return;
    }
    let dir = tempdir();
    let stream = unique("ETLTWICE");
    let subject = format!("{}.orders", stream.to_lowercase());
    let mut nats = Nats::connect();
    nats.create_stream(&stream, &subject);
    nats.publish(&subject, &payloads(0, 7));
    let base = [
        "nats://127.0.0.1:4222",
        "--subject",
        &subject,
        "--durable",
        "etl",
        "--ack-wait",
        "1",
        "--checkpoint",
        "c.ckpt",
        "--max-retries",
        "0",
    ];
    // The load commits messages 1-5, then the "crash": --exec fails.
    let mut args = base.to_vec();
    args.extend(["--once", "--batch-rows", "5"]);
    args.extend(["--exec", "etl-load wh.db --table t && false"]);
    let out = watch(dir.path(), &args);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(count(&dir.path().join("wh.db"), "t"), Some(5));
    // A continuous watcher sends 1-5 again (skipped), then its first pull
    // waits for up to 5 s, while the server delivers 1-5 again after each
    // second of ack wait.
    let mut args: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    args.extend(
        [
            "--batch-rows",
            "100",
            "--batch-interval",
            "0.2",
            "--exec",
            "etl-load wh.db --table t",
        ]
        .map(String::from),
    );
    let mut watcher = spawn_watch(dir.path(), &args, "watch.log");
    std::thread::sleep(Duration::from_secs(7));
    kill(watcher.id());
    let _ = watcher.wait();
    let log = std::fs::read_to_string(dir.path().join("watch.log")).unwrap_or_default();
    assert_eq!(count(&dir.path().join("wh.db"), "t"), Some(7), "{log}");
    let info = nats.consumer(&stream, "etl");
    assert_eq!(info["num_ack_pending"], json!(0), "{info}");
    assert_eq!(info["ack_floor"]["stream_seq"], json!(7), "{info}");
    nats.delete_stream(&stream);
}

#[test]
fn help_examples_run() {
    let redis = reachable(REDIS_ADDR, "Redis", "ETLKIT_REQUIRE_REDIS");
    let nats = reachable(NATS_ADDR, "NATS", "ETLKIT_REQUIRE_NATS");
    let kafka = reachable(&kafka_addr(), "Kafka", "ETLKIT_REQUIRE_KAFKA");
    let dir = tempdir();
    let mut c = cmd(WATCH, dir.path());
    c.env("COLUMNS", "1000").arg("--help");
    let help = stdout(&run(c));
    let examples: Vec<&str> = help
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("$ "))
        .filter(|e| e.contains("nats://") || e.contains("redis://") || e.contains("kafka://"))
        .collect();
    assert_eq!(examples.len(), 3, "{help}");
    // Names of their own: other tests share these servers.
    let name = unique("helpex");
    if kafka {
        // Kafka topics are created with Kafka's tools, not by etl-watch.
        Kafka::connect().create_topic(&name, PARTITIONS);
        kafka_publish(&name, 0..5);
    }
    for example in examples {
        if (example.contains("nats://") && !nats)
            || (example.contains("redis://") && !redis)
            || (example.contains("kafka://") && !kafka)
        {
            continue;
        }
        let example = example
            .replace("orders", &name)
            .replace("ORDERS", &name.to_uppercase())
            .replace("127.0.0.1:9092", &kafka_addr());
        let out = bash(&example, dir.path());
        assert_eq!(code(&out), 0, "{example}\n{}", stderr(&out));
    }
    if redis {
        Redis::connect().call(&["DEL", &name]);
    }
    if nats {
        Nats::connect().delete_stream(&name.to_uppercase());
    }
    if kafka {
        Kafka::connect().delete_topic(&name);
    }
}

/// Starts a watcher in its own process group.
fn spawn_watch(dir: &Path, args: &[String], log: &str) -> Child {
    let log = std::fs::File::create(dir.join(log)).expect("log");
    Command::new(WATCH)
        .args(args)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir().display()))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("etl-watch starts")
}

fn kill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Where the crash test loads.
enum Store {
    Sqlite,
    Postgres(PgSchema),
}

impl Store {
    /// The etl-load arguments naming the target.
    fn target(&self, dir: &Path) -> String {
        match self {
            Store::Sqlite => dir.join("wh.db").display().to_string(),
            Store::Postgres(schema) => format!("{} --schema-name {}", schema.url, schema.name),
        }
    }

    /// (rows, distinct ids)
    fn counts(&self, dir: &Path) -> (i64, i64) {
        let sql = "SELECT count(*), count(DISTINCT id) FROM orders";
        match self {
            Store::Sqlite => {
                let db = dir.join("wh.db");
                if count(&db, "orders").is_none() {
                    return (0, 0);
                }
                let conn = rusqlite::Connection::open(db).expect("db opens");
                conn.query_row(sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
                    .expect("count")
            }
            Store::Postgres(schema) => {
                let mut client = schema.client();
                let table = format!("{}.orders", schema.name);
                let exists: bool = client
                    .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
                    .expect("lookup")
                    .get(0);
                if !exists {
                    return (0, 0);
                }
                let row = client
                    .query_one(&sql.replace("orders", &table), &[])
                    .expect("count");
                (row.get(0), row.get(1))
            }
        }
    }
}

const MESSAGES: usize = 10_000;
const KILLS: usize = 20;

/// The acceptance test: SIGKILL the watcher or the loader at 20 seeded
/// points while 10,000 messages flow; then drain with --once until the
/// broker has nothing unacknowledged. `broker` gives the watch's source
/// arguments and `settled` tells when the broker is done.
fn crash_and_recover(
    store: &Store,
    source: &[String],
    publish: &mut dyn FnMut(std::ops::Range<usize>),
    settled: &mut dyn FnMut() -> bool,
    seed: u64,
) {
    let dir = tempdir();
    // The pause after the load widens the window between commit and
    // acknowledgement, where a killed watcher must not load twice. When
    // crash.now exists, the watcher is killed right there (from its own
    // --exec: $PPID), so that window is hit at least once whatever the
    // machine's speed.
    let load = format!(
        "sh -c 'echo $$ > loader.pid; exec etl-load -v {} --table orders --mode append' && sleep 0.1 \
         && if [ -e crash.now ]; then rm crash.now; kill -9 $PPID; fi",
        store.target(dir.path())
    );
    let mut args: Vec<String> = source.to_vec();
    args.extend(
        [
            "--checkpoint",
            "w.ckpt",
            "--batch-rows",
            "300",
            "--batch-interval",
            "0.2",
            "--max-retries",
            "8",
            "--exec",
            &load,
        ]
        .map(String::from),
    );
    args.push("-v".into());
    let mut rng = Rng(seed);
    let chunk = MESSAGES / KILLS;
    for round in 0..KILLS {
        // Messages keep arriving, so that every kill falls amid work.
        publish(round * chunk..(round + 1) * chunk);
        if round == 0 {
            // Committed, not acknowledged: the watcher dies after the load.
            std::fs::write(dir.path().join("crash.now"), b"").expect("marker");
            let mut watcher = spawn_watch(dir.path(), &args, "round0.log");
            let deadline = Instant::now() + Duration::from_secs(60);
            while watcher.try_wait().expect("wait").is_none() {
                assert!(
                    Instant::now() < deadline,
                    "the watcher did not load a batch"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            continue;
        }
        let mut watcher = spawn_watch(dir.path(), &args, &format!("round{round}.log"));
        std::thread::sleep(Duration::from_millis(150 + rng.below(500)));
        if rng.below(2) == 0 {
            // The loader, mid-batch if one runs; the watcher retries.
            if let Ok(pid) = std::fs::read_to_string(dir.path().join("loader.pid"))
                && let Ok(pid) = pid.trim().parse()
            {
                kill(pid);
            }
            std::thread::sleep(Duration::from_millis(rng.below(300)));
        }
        kill(watcher.id());
        let _ = watcher.wait();
    }
    let mut logs = String::new();
    for round in 0..KILLS {
        logs += &std::fs::read_to_string(dir.path().join(format!("round{round}.log")))
            .unwrap_or_default();
    }
    let mut once = args.clone();
    once.push("--once".into());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut c = cmd(WATCH, dir.path());
        c.args(&once);
        let out = run(c);
        logs += &stderr(&out);
        let (rows, ids) = store.counts(dir.path());
        if code(&out) == 0 && rows == MESSAGES as i64 && settled() {
            assert_eq!(ids, MESSAGES as i64);
            break;
        }
        assert!(
            rows <= MESSAGES as i64,
            "duplicates: {rows} rows, {ids} distinct ids"
        );
        assert!(
            Instant::now() < deadline,
            "not drained: {rows} rows, {ids} distinct ids; last run: {}",
            stderr(&out)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // How often the kills hit the windows that matter (for the record:
    // timing decides, the seed only fixes the kill points; round 0 always
    // leaves a committed batch unacknowledged).
    let sent_again = logs.matches("sending the unconfirmed batch").count();
    eprintln!(
        "crash test: {sent_again} batches sent again after a kill, {} of them skipped as committed, {} loads failed",
        logs.matches("was committed before; skipping it").count(),
        logs.matches("--exec failed").count(),
    );
    assert!(sent_again > 0, "no kill fell on a batch in flight");
    assert!(
        logs.contains("was committed before; skipping it"),
        "no committed batch was sent again"
    );
}

fn seed() -> u64 {
    std::env::var("ETLKIT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xb40c)
}
