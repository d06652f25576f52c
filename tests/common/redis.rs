//! A bare Redis connection for setting up and checking the Redis tests.
//! The server is a real Redis at 127.0.0.1:6379.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use serde_json::Value;

/// The test server's address.
pub const REDIS_ADDR: &str = "127.0.0.1:6379";

/// A bare Redis connection for setting up and checking.
pub struct Redis {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Redis {
    pub fn connect() -> Redis {
        let stream = TcpStream::connect(REDIS_ADDR).expect("redis");
        Redis {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
        }
    }

    fn send(&mut self, args: &[&[u8]]) {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a);
            buf.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&buf).expect("send");
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
