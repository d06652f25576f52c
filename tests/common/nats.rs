//! A bare NATS connection for setting up and checking the NATS tests:
//! JetStream API requests and publishing with acknowledgements. The server
//! is a real nats-server with JetStream at 127.0.0.1:4222.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use super::unique;

/// The test server's address.
pub const NATS_ADDR: &str = "127.0.0.1:4222";

/// A bare NATS connection for setting up and checking: JetStream API
/// requests and publishing with acknowledgements.
pub struct Nats {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// This connection's own reply subjects: tests run side by side, and a
    /// shared inbox would hand one test another's answers.
    inbox: String,
    next: u64,
}

impl Nats {
    pub fn connect() -> Nats {
        let stream = TcpStream::connect(NATS_ADDR).expect("nats");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut info = String::new();
        reader.read_line(&mut info).expect("INFO");
        let mut writer = stream;
        let inbox = unique("_T");
        write!(
            writer,
            "CONNECT {{\"verbose\":false,\"headers\":true}}\r\nSUB {inbox}.* 1\r\n"
        )
        .expect("connect");
        Nats {
            reader,
            writer,
            inbox,
            next: 0,
        }
    }

    /// Next message for us: (subject, payload).
    fn read(&mut self) -> (String, Vec<u8>) {
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("read");
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.first().copied() {
                Some("MSG") | Some("HMSG") => {
                    let size: usize = words.last().expect("size").parse().expect("size");
                    let mut data = vec![0; size + 2];
                    self.reader.read_exact(&mut data).expect("payload");
                    data.truncate(size);
                    if words[0] == "HMSG" {
                        let header: usize = words[words.len() - 2].parse().expect("hdr");
                        data.drain(..header);
                    }
                    return (words[1].to_string(), data);
                }
                Some("PING") => self.writer.write_all(b"PONG\r\n").expect("pong"),
                _ => {}
            }
        }
    }

    pub fn request(&mut self, subject: &str, body: &Value) -> Value {
        self.next += 1;
        let reply = format!("{}.{}", self.inbox, self.next);
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        write!(
            self.writer,
            "PUB {subject} {reply} {}\r\n{body}\r\n",
            body.len()
        )
        .expect("pub");
        loop {
            let (subject, data) = self.read();
            if subject == reply {
                return serde_json::from_slice(&data).expect("JSON answer");
            }
        }
    }

    pub fn create_stream(&mut self, name: &str, subject: &str) {
        let answer = self.request(
            &format!("$JS.API.STREAM.CREATE.{name}"),
            &json!({"name": name, "subjects": [subject], "storage": "memory"}),
        );
        assert!(answer.get("error").is_none(), "{answer}");
    }

    /// Publishes each payload to `subject` and waits for every PubAck;
    /// the stream sequence of each, in order.
    pub fn publish(&mut self, subject: &str, payloads: &[Vec<u8>]) -> Vec<u64> {
        let mut buf = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            let reply = format!("{}.p{i}", self.inbox);
            buf.extend_from_slice(format!("PUB {subject} {reply} {}\r\n", p.len()).as_bytes());
            buf.extend_from_slice(p);
            buf.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&buf).expect("publish");
        let mut seqs = vec![0; payloads.len()];
        let mut acked = 0;
        let prefix = format!("{}.p", self.inbox);
        while acked < payloads.len() {
            let (subject, data) = self.read();
            if let Some(i) = subject.strip_prefix(&prefix) {
                let ack: Value = serde_json::from_slice(&data).expect("PubAck");
                assert!(ack.get("error").is_none(), "{ack}");
                seqs[i.parse::<usize>().expect("index")] = ack["seq"].as_u64().expect("seq");
                acked += 1;
            }
        }
        seqs
    }

    /// The stream's creation time, as JetStream reports it.
    pub fn created(&mut self, stream: &str) -> String {
        let info = self.request(&format!("$JS.API.STREAM.INFO.{stream}"), &Value::Null);
        info["created"].as_str().expect("created").to_string()
    }

    pub fn consumer(&mut self, stream: &str, durable: &str) -> Value {
        self.request(
            &format!("$JS.API.CONSUMER.INFO.{stream}.{durable}"),
            &Value::Null,
        )
    }

    pub fn delete_stream(&mut self, name: &str) {
        self.request(&format!("$JS.API.STREAM.DELETE.{name}"), &Value::Null);
    }
}
