//! One connection to one Kafka broker: a request framed with its header
//! (API key, version, correlation id, client id), its answer read whole.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};

use super::codec::Encoder;
use crate::client::tcp;

/// How long an answer may take beyond a fetch wait.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// A reply larger than this is not believed.
const MAX_REPLY: usize = 256 << 20;
/// The client id sent with each request.
const CLIENT_ID: &str = "etl-watch";

/// One connection to one broker.
pub(super) struct Conn {
    stream: TcpStream,
    next: i32,
    server: String,
}

impl Conn {
    pub(super) fn connect(host: &str, port: u16, server: &str) -> Result<Conn> {
        Ok(Conn {
            stream: tcp::connect(host, port, server)?,
            next: 0,
            server: server.to_string(),
        })
    }

    /// Sends a request and returns its answer's body (after the
    /// correlation id).
    pub(super) fn call(
        &mut self,
        api: i16,
        version: i16,
        body: &[u8],
        wait: Duration,
    ) -> Result<Vec<u8>> {
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
            if tcp::timed_out(&e) {
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
