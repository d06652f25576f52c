//! A bare Kafka connection for setting up and checking the Kafka tests:
//! create a topic, publish to a partition, read end and committed offsets.
//! The broker is a real Kafka-protocol server at 127.0.0.1:9092 (or
//! ETLKIT_TEST_KAFKA).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use etlkit::client::kafka::Encoder as Body;

/// The test broker's address.
pub fn kafka_addr() -> String {
    std::env::var("ETLKIT_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub struct Kafka {
    stream: TcpStream,
    next: i32,
}

struct Answer<'a>(&'a [u8]);

impl Answer<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take(2).try_into().expect("2 bytes"))
    }
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take(4).try_into().expect("4 bytes"))
    }
    fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.take(8).try_into().expect("8 bytes"))
    }
    fn string(&mut self) -> String {
        let n = self.i16();
        if n < 0 {
            return String::new();
        }
        String::from_utf8_lossy(self.take(n as usize)).into_owned()
    }
}

impl Kafka {
    pub fn connect() -> Kafka {
        Kafka::connect_to(&kafka_addr())
    }

    /// A connection to another (plain-text) broker than the usual one.
    pub fn connect_to(addr: &str) -> Kafka {
        let stream = TcpStream::connect(addr).expect("kafka");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Kafka { stream, next: 0 }
    }

    fn call(&mut self, api: i16, version: i16, body: &Body) -> Vec<u8> {
        self.next += 1;
        let mut head = Body::default();
        head.i16(api)
            .i16(version)
            .i32(self.next)
            .string("etlkit-tests");
        let size = (head.0.len() + body.0.len()) as i32;
        let mut frame = size.to_be_bytes().to_vec();
        frame.extend_from_slice(&head.0);
        frame.extend_from_slice(&body.0);
        self.stream.write_all(&frame).expect("send");
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).expect("answer");
        let mut reply = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut reply).expect("answer");
        assert_eq!(
            i32::from_be_bytes(reply[..4].try_into().expect("id")),
            self.next
        );
        reply.split_off(4)
    }

    /// Creates `topic` with `partitions` partitions and waits until the
    /// broker's metadata lists it. A create the test broker answered but
    /// did not keep (seen under many concurrent creates) is sent again.
    pub fn create_topic(&mut self, topic: &str, partitions: i32) {
        for _ in 0..100 {
            self.send_create_topic(topic, partitions);
            if self.topic_partitions(topic) == Some(partitions) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the broker never listed topic {topic:?} after creating it");
    }

    /// How many partitions the broker's metadata lists for `topic`, or
    /// None while it does not know the topic (Metadata v1).
    pub fn topic_partitions(&mut self, topic: &str) -> Option<i32> {
        let mut body = Body::default();
        body.i32(1).string(topic);
        let reply = self.call(3, 1, &body);
        let mut a = Answer(&reply);
        for _ in 0..a.i32() {
            let _node = a.i32();
            let _host = a.string();
            let _port = a.i32();
            let _rack = a.string();
        }
        let _controller = a.i32();
        let mut found = None;
        for _ in 0..a.i32() {
            let error = a.i16();
            let name = a.string();
            let _internal = a.take(1);
            let count = a.i32();
            for _ in 0..count {
                let _error = a.i16();
                let _id = a.i32();
                let _leader = a.i32();
                for _ in 0..2 {
                    let n = a.i32();
                    a.take(4 * n.max(0) as usize);
                }
            }
            if name == topic && error == 0 && count > 0 {
                found = Some(count);
            }
        }
        found
    }

    /// CreateTopics v0 for one topic; "already exists" is success.
    fn send_create_topic(&mut self, topic: &str, partitions: i32) {
        let mut body = Body::default();
        body.i32(1)
            .string(topic)
            .i32(partitions)
            .i16(1)
            .i32(0)
            .i32(0);
        body.i32(30_000);
        let reply = self.call(19, 0, &body);
        let mut a = Answer(&reply);
        assert_eq!(a.i32(), 1);
        let _name = a.string();
        let error = a.i16();
        assert!(
            error == 0 || error == 36,
            "CreateTopics: Kafka error {error}"
        );
    }

    /// Publishes `values` to one partition (Produce v3, acks from all);
    /// the offset of the first.
    pub fn produce(&mut self, topic: &str, partition: i32, values: &[Vec<u8>]) -> i64 {
        let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        self.produce_batch(
            topic,
            partition,
            &etlkit::client::kafka::record_batch(&values),
        )
    }

    /// Publishes `values` to one partition as one record batch compressed
    /// with `codec` as producers write it (snappy in the Java client's
    /// framing; `RawSnappy` as one raw block); the offset of the first.
    pub fn produce_compressed(
        &mut self,
        topic: &str,
        partition: i32,
        values: &[Vec<u8>],
        codec: Codec,
    ) -> i64 {
        let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let batch = etlkit::client::kafka::record_batch_compressed(&values, codec.id(), |r| {
            codec.compress(&r)
        });
        self.produce_batch(topic, partition, &batch)
    }

    /// Publishes one record batch as it is; the offset of its first record.
    pub fn produce_batch(&mut self, topic: &str, partition: i32, batch: &[u8]) -> i64 {
        let mut body = Body::default();
        body.i16(-1).i16(-1).i32(30_000);
        body.i32(1).string(topic).i32(1).i32(partition);
        body.i32(batch.len() as i32);
        body.0.extend_from_slice(batch);
        let reply = self.call(0, 3, &body);
        let mut a = Answer(&reply);
        assert_eq!(a.i32(), 1);
        let _name = a.string();
        assert_eq!(a.i32(), 1);
        let _partition = a.i32();
        let error = a.i16();
        assert_eq!(error, 0, "Produce: Kafka error {error}");
        a.i64()
    }

    /// The compression (attributes' low bits) of each record batch the
    /// broker serves from the start of one partition: what a consumer gets.
    pub fn batch_codecs(&mut self, topic: &str, partition: i32) -> Vec<i16> {
        let mut body = Body::default();
        body.i32(-1).i32(0).i32(1).i32(1 << 20);
        body.0.push(0);
        body.i32(1).string(topic).i32(1);
        body.i32(partition).i64(0).i32(1 << 20);
        let reply = self.call(1, 4, &body);
        let mut a = Answer(&reply);
        let _throttle = a.i32();
        assert_eq!(a.i32(), 1);
        let _name = a.string();
        assert_eq!(a.i32(), 1);
        let _p = a.i32();
        let error = a.i16();
        assert_eq!(error, 0, "Fetch: Kafka error {error}");
        let _high = a.i64();
        let _stable = a.i64();
        assert!(a.i32() <= 0, "no transactions here");
        let size = a.i32().max(0) as usize;
        let mut batches = Answer(a.take(size));
        let mut out = Vec::new();
        while batches.0.len() >= 12 {
            let _base = batches.i64();
            let length = batches.i32() as usize;
            let batch = batches.take(length);
            out.push(i16::from_be_bytes([batch[9], batch[10]]) & 7);
        }
        out
    }

    /// The end offset (high watermark) of each of `partitions`, as a
    /// Fetch (v4) reports it.
    pub fn end_offsets(&mut self, topic: &str, partitions: i32) -> Vec<i64> {
        let mut body = Body::default();
        body.i32(-1).i32(0).i32(1).i32(1 << 20);
        body.0.push(0);
        body.i32(1).string(topic).i32(partitions);
        for p in 0..partitions {
            body.i32(p).i64(0).i32(1);
        }
        let reply = self.call(1, 4, &body);
        let mut a = Answer(&reply);
        let _throttle = a.i32();
        let mut out = vec![-1; partitions as usize];
        for _ in 0..a.i32() {
            let _name = a.string();
            for _ in 0..a.i32() {
                let p = a.i32();
                let error = a.i16();
                let high = a.i64();
                let _stable = a.i64();
                let aborted = a.i32();
                assert!(aborted <= 0, "no transactions here");
                let records = a.i32();
                if records > 0 {
                    a.take(records as usize);
                }
                assert_eq!(error, 0, "Fetch: Kafka error {error}");
                out[p as usize] = high;
            }
        }
        out
    }

    /// The group's committed offset of each of `partitions` (-1: none;
    /// OffsetFetch v1, asked of the broker, which coordinates every group
    /// on a single-node cluster).
    pub fn committed(&mut self, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
        let mut body = Body::default();
        body.string(group).i32(1).string(topic).i32(partitions);
        for p in 0..partitions {
            body.i32(p);
        }
        let reply = self.call(9, 1, &body);
        let mut a = Answer(&reply);
        let mut out = vec![-1; partitions as usize];
        for _ in 0..a.i32() {
            let _name = a.string();
            for _ in 0..a.i32() {
                let p = a.i32();
                let offset = a.i64();
                let _metadata = a.string();
                let error = a.i16();
                assert_eq!(error, 0, "OffsetFetch: Kafka error {error}");
                out[p as usize] = offset;
            }
        }
        out
    }

    /// Makes the group forget its committed offsets of `topic`, as when
    /// they expire or an operator resets them away: every partition's
    /// offset committed as -1, which OffsetFetch then answers as "none"
    /// (OffsetCommit v2, outside any generation).
    pub fn forget_offsets(&mut self, group: &str, topic: &str, partitions: i32) {
        let mut body = Body::default();
        body.string(group).i32(-1).string("").i64(-1);
        body.i32(1).string(topic).i32(partitions);
        for p in 0..partitions {
            body.i32(p).i64(-1).string("");
        }
        let reply = self.call(8, 2, &body);
        let mut a = Answer(&reply);
        for _ in 0..a.i32() {
            let _name = a.string();
            for _ in 0..a.i32() {
                let _p = a.i32();
                let error = a.i16();
                assert_eq!(error, 0, "OffsetCommit: Kafka error {error}");
            }
        }
    }

    /// Deletes `topic` (DeleteTopics v0).
    pub fn delete_topic(&mut self, topic: &str) {
        let mut body = Body::default();
        body.i32(1).string(topic).i32(30_000);
        let _ = self.call(20, 0, &body);
    }
}

/// A record batch compression, as producers write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    /// The Java client's snappy: snappy-java's framing of raw blocks.
    Snappy,
    /// One raw snappy block, as other producers write it.
    RawSnappy,
    /// The LZ4 frame format.
    Lz4,
    Zstd,
}

impl Codec {
    /// The codec's number in a batch's attributes.
    pub fn id(self) -> i16 {
        match self {
            Codec::Gzip => 1,
            Codec::Snappy | Codec::RawSnappy => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }

    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        match self {
            Codec::Gzip => {
                let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                w.write_all(data).expect("gzip");
                w.finish().expect("gzip")
            }
            Codec::Snappy => {
                let mut out = b"\x82SNAPPY\x00".to_vec();
                out.extend_from_slice(&1i32.to_be_bytes());
                out.extend_from_slice(&1i32.to_be_bytes());
                // snappy-java writes blocks of up to 32 KiB; smaller ones
                // here so that a test batch holds several.
                for chunk in data.chunks(100) {
                    let block = snap::raw::Encoder::new()
                        .compress_vec(chunk)
                        .expect("snappy");
                    out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                    out.extend_from_slice(&block);
                }
                out
            }
            Codec::RawSnappy => snap::raw::Encoder::new()
                .compress_vec(data)
                .expect("snappy"),
            Codec::Lz4 => {
                let mut w = lz4_flex::frame::FrameEncoder::new(Vec::new());
                w.write_all(data).expect("lz4");
                w.finish().expect("lz4")
            }
            Codec::Zstd => zstd::encode_all(data, 1).expect("zstd"),
        }
    }
}
