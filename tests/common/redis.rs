//! A bare Redis connection for setting up and checking the Redis tests.
//! The server is a real Redis at 127.0.0.1:6379, or the TLS-only one
//! `scripts/broker-tls-servers.sh` runs on 6380.

use std::io::{BufRead, BufReader, Read, Write};

use etlkit::client::tls::{Stream, TlsOptions};
use serde_json::Value;

/// The test server's address.
pub const REDIS_ADDR: &str = "127.0.0.1:6379";

/// A bare Redis connection for setting up and checking.
pub struct Redis {
    reader: BufReader<Stream>,
}

impl Redis {
    pub fn connect() -> Redis {
        let (host, port) = REDIS_ADDR.split_once(':').expect("host:port");
        let stream =
            Stream::connect(host, port.parse().expect("port"), REDIS_ADDR, None).expect("redis");
        Redis {
            reader: BufReader::new(stream),
        }
    }

    /// A connection to the TLS-only server on `port`, signed in as `user`.
    pub fn connect_tls(port: u16, tls: &TlsOptions, user: &str, password: &str) -> Redis {
        let server = format!("rediss://127.0.0.1:{port}");
        let stream = Stream::connect("127.0.0.1", port, &server, Some(tls)).expect("redis tls");
        let mut redis = Redis {
            reader: BufReader::new(stream),
        };
        redis.call(&["AUTH", user, password]);
        redis
    }

    fn send(&mut self, args: &[&[u8]]) {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a);
            buf.extend_from_slice(b"\r\n");
        }
        let stream = self.reader.get_mut();
        stream
            .write_all(&buf)
            .and_then(|()| stream.flush())
            .expect("send");
    }

    fn reply(&mut self) -> Value {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("reply");
        let line = line.trim_end();
        let (kind, rest) = line.split_at(1);
        match kind {
            "+" => rest.into(),
            "-" => panic!("redis: {rest}"),
            ":" => rest.parse::<i64>().expect("int").into(),
            "$" if rest == "-1" => Value::Null,
            "$" => {
                let size: usize = rest.parse().expect("size");
                let mut data = vec![0; size + 2];
                self.reader.read_exact(&mut data).expect("bulk");
                String::from_utf8_lossy(&data[..size]).into_owned().into()
            }
            "*" if rest == "-1" => Value::Null,
            "*" => {
                let n: usize = rest.parse().expect("n");
                Value::Array((0..n).map(|_| self.reply()).collect())
            }
            _ => panic!("redis said {line}"),
        }
    }

    pub fn call(&mut self, args: &[&str]) -> Value {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send(&args);
        self.reply()
    }

    /// XADD of one entry per field list, pipelined; returns the ids.
    pub fn add(&mut self, key: &str, entries: &[Vec<(&str, String)>]) -> Vec<String> {
        for fields in entries {
            let mut args: Vec<&[u8]> = vec![b"XADD", key.as_bytes(), b"*"];
            for (k, v) in fields {
                args.push(k.as_bytes());
                args.push(v.as_bytes());
            }
            self.send(&args);
        }
        (0..entries.len())
            .map(|_| self.reply().as_str().expect("id").to_string())
            .collect()
    }

    pub fn pending(&mut self, key: &str, group: &str) -> i64 {
        self.call(&["XPENDING", key, group])[0]
            .as_i64()
            .expect("count")
    }
}
