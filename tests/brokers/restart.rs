//! A broker that lost what the checkpoint read from (a Redis group or
//! stream, a NATS durable or stream, a Kafka group's offsets) is not read
//! again from the start: etl-watch refuses, naming what is gone, until
//! --restart-from says where to go on. Each broker loses different
//! things, so each has its own test.

use serde_json::Value;

use super::{PARTITIONS, distinct_ids, kafka_publish, payloads, reachable, watch};
use crate::common::expect::expect;
use crate::common::kafka::{Kafka, kafka_addr};
use crate::common::nats::{NATS_ADDR, Nats};
use crate::common::redis::{REDIS_ADDR, Redis};
use crate::common::*;

fn redis_entries(from: usize, to: usize) -> Vec<Vec<(&'static str, String)>> {
    (from..to)
        .map(|i| vec![("payload", format!(r#"{{"id":{i}}}"#))])
        .collect()
}

#[test]
fn a_deleted_redis_group_or_stream_is_not_read_again_from_the_start() {
    if !reachable(REDIS_ADDR, "Redis", "ETLKIT_REQUIRE_REDIS") {
        return;
    }
    let dir = tempdir();
    let d = dir.path();
    let db = d.join("wh.db");
    let key = unique("etl_t_lost");
    let mut redis = Redis::connect();
    redis.add(&key, &redis_entries(0, 1500));
    let base = [
        "redis://127.0.0.1:6379",
        "--key",
        &key,
        "--group",
        "etl",
        "--once",
        "--batch-rows",
        "400",
        "--checkpoint",
        "r.ckpt",
        "--exec",
        "etl-load -q wh.db --table orders",
    ];
    let with = |extra: &[&'static str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        watch(d, &args)
    };
    let out = with(&[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(distinct_ids(&db, "orders"), (1500, 1500));
    let last = redis.call(&["XREVRANGE", &key, "+", "-", "COUNT", "1"])[0][0]
        .as_str()
        .expect("id")
        .to_string();
    // An operator deletes the group; more entries arrive.
    redis.call(&["XGROUP", "DESTROY", &key, "etl"]);
    redis.add(&key, &redis_entries(1500, 1600));
    let out = with(&[]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "etl-watch: error: redis://127.0.0.1:6379: the consumer group \"etl\" of stream \
             {key:?} is gone, but the checkpoint shows its entries up to {last} were loaded: \
             creating group \"etl\" again would read them again; hint: --restart-from \
             checkpoint goes on after them, --restart-from start reads the stream again from \
             its start, --restart-from end reads only new messages\n"
        )
    );
    assert_eq!(distinct_ids(&db, "orders"), (1500, 1500));
    let out = with(&["--restart-from", "checkpoint"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(distinct_ids(&db, "orders"), (1600, 1600));
    assert_eq!(redis.pending(&key, "etl"), 0);
    // The stream itself is lost (a restart without persistence):
    // --create-stream alone does not start over either.
    redis.call(&["DEL", &key]);
    let out = with(&["--create-stream"]);
    expect(&out, "refused")
        .code(1)
        .stdout("")
        .stderr_like(&format!(
            "etl-watch: error: *the stream {key:?} is gone, but the checkpoint shows*\n"
        ));
    let out = with(&["--create-stream", "--restart-from", "checkpoint"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    redis.add(&key, &redis_entries(1600, 1650));
    let out = with(&[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(distinct_ids(&db, "orders"), (1650, 1650));
    // A first run with no checkpoint creates the group as before.
    std::fs::remove_file(d.join("r.ckpt")).expect("rm");
    redis.call(&["XGROUP", "DESTROY", &key, "etl"]);
    let out = with(&["--restart-from", "end"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    redis.call(&["DEL", &key]);
}

#[test]
fn a_deleted_nats_durable_or_stream_is_not_read_again_from_the_start() {
    if !reachable(NATS_ADDR, "NATS", "ETLKIT_REQUIRE_NATS") {
        return;
    }
    let dir = tempdir();
    let d = dir.path();
    let db = d.join("wh.db");
    let stream = unique("ETLL");
    let subject = format!("{}.orders", stream.to_lowercase());
    let mut nats = Nats::connect();
    nats.create_stream(&stream, &subject);
    nats.publish(&subject, &payloads(0, 1500));
    let base = [
        "nats://127.0.0.1:4222",
        "--subject",
        &subject,
        "--durable",
        "etl",
        "--js-stream",
        &stream,
        "--once",
        "--batch-rows",
        "400",
        "--checkpoint",
        "n.ckpt",
        "--exec",
        "etl-load -q wh.db --table orders",
    ];
    let with = |extra: &[&'static str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        watch(d, &args)
    };
    let out = with(&[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(distinct_ids(&db, "orders"), (1500, 1500));
    nats.request(
        &format!("$JS.API.CONSUMER.DELETE.{stream}.etl"),
        &Value::Null,
    );
    nats.publish(&subject, &payloads(1500, 1600));
    let out = with(&[]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "etl-watch: error: nats://127.0.0.1:4222: the consumer etl on stream {stream} is \
             gone, but the checkpoint shows its messages up to sequence 1500 were loaded: \
             creating consumer etl again would read them again; hint: --restart-from \
             checkpoint goes on after them, --restart-from start reads the stream again from \
             its start, --restart-from end reads only new messages\n"
        )
    );
    assert_eq!(distinct_ids(&db, "orders"), (1500, 1500));
    let out = with(&["--restart-from", "checkpoint"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(distinct_ids(&db, "orders"), (1600, 1600));
    let out = with(&[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(distinct_ids(&db, "orders"), (1600, 1600));
    // The stream is deleted and created again: its sequences start at 1.
    nats.delete_stream(&stream);
    nats.create_stream(&stream, &subject);
    nats.publish(&subject, &payloads(1600, 1610));
    let out = with(&[]);
    expect(&out, "refused")
        .code(1)
        .stdout("")
        .stderr_like(&format!("etl-watch: error: *the stream {stream} was deleted and created again since the checkpoint, but the \
             checkpoint shows its messages up to sequence 1600 were loaded*\n"));
    let out = with(&["--restart-from", "checkpoint"]);
    expect(&out, "refused")
        .code(1)
        .stdout("")
        .stderr_like("etl-watch: error: *a new stream numbers its messages from 1 again*\n");
    let out = with(&["--restart-from", "start"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(distinct_ids(&db, "orders"), (1610, 1610));
    nats.delete_stream(&stream);
}

#[test]
fn a_kafka_group_whose_offsets_vanished_is_not_read_again_from_the_start() {
    if !reachable(&kafka_addr(), "Kafka", "ETLKIT_REQUIRE_KAFKA") {
        return;
    }
    let dir = tempdir();
    let d = dir.path();
    let db = d.join("wh.db");
    let topic = unique("etl_t_kafka_lost");
    let group = unique("etl_g_kafka_lost");
    let mut kafka = Kafka::connect();
    kafka.create_topic(&topic, PARTITIONS);
    kafka_publish(&topic, 0..300);
    let url = format!("kafka://{}", kafka_addr());
    let base = [
        url.as_str(),
        "--topic",
        &topic,
        "--group",
        &group,
        "--once",
        "--batch-rows",
        "80",
        "--checkpoint",
        "k.ckpt",
        "--exec",
        "etl-load -q wh.db --table orders",
    ];
    let with = |extra: &[&'static str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        watch(d, &args)
    };
    let out = with(&[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(distinct_ids(&db, "orders"), (300, 300));
    kafka.forget_offsets(&group, &topic, PARTITIONS);
    kafka_publish(&topic, 300..330);
    let out = with(&[]);
    expect(&out, "refused")
        .code(1)
        .stdout("")
        .stderr_like(&format!("etl-watch: error: *group \"{group}\" has no committed offsets for {topic} any more, but the checkpoint \
             shows messages of {topic}/0 up to offset*\n"));
    assert_eq!(distinct_ids(&db, "orders"), (300, 300));
    let out = with(&["--restart-from", "checkpoint"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(distinct_ids(&db, "orders"), (330, 330));
    assert_eq!(
        kafka.committed(&group, &topic, PARTITIONS),
        kafka.end_offsets(&topic, PARTITIONS)
    );
    kafka.delete_topic(&topic);
}
