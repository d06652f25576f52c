//! One connection to one Kafka broker: over TLS and authenticated with
//! SASL as its [`KafkaSecurity`] says, a request framed with its header
//! (API key, version, correlation id, client id), its answer read whole.

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};

use super::codec::{Decoder, Encoder};
use super::error_text;
use super::security::{Exchange, KafkaSecurity, Sasl};
use crate::client::tcp;
use crate::client::tls::Stream;

const API_SASL_HANDSHAKE: i16 = 17;
const API_SASL_AUTHENTICATE: i16 = 36;
/// Kafka's error code for a mechanism the broker does not enable.
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;

/// How long an answer may take beyond a fetch wait.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// A reply larger than this is not believed.
const MAX_REPLY: usize = 256 << 20;
/// The client id sent with each request.
const CLIENT_ID: &str = "etl-watch";

/// One connection to one broker.
pub(super) struct Conn {
    stream: Stream,
    next: i32,
    server: String,
}

impl Conn {
    /// Connects to `host:port` (`server` in errors), over TLS and with
    /// SASL as `security` says.
    pub(super) fn connect(
        host: &str,
        port: u16,
        server: &str,
        security: &KafkaSecurity,
    ) -> Result<Conn> {
        let tls = security.protocol.tls().then_some(&security.tls);
        let mut conn = Conn {
            stream: Stream::connect(host, port, server, tls)?,
            next: 0,
            server: server.to_string(),
        };
        if let Some(sasl) = &security.sasl {
            conn.authenticate(sasl)?;
        }
        Ok(conn)
    }

    /// SaslHandshake (v1), then the mechanism's messages in
    /// SaslAuthenticate requests.
    fn authenticate(&mut self, sasl: &Sasl) -> Result<()> {
        let mechanism = sasl.mechanism.name();
        let mut body = Encoder::default();
        body.string(mechanism);
        let reply = self.call(API_SASL_HANDSHAKE, 1, &body.0, Duration::ZERO)?;
        let mut d = Decoder::new(&reply);
        let error = d.i16()?;
        let mut offered = Vec::new();
        for _ in 0..d.count()? {
            offered.push(d.string()?);
        }
        match error {
            0 => {}
            UNSUPPORTED_SASL_MECHANISM => bail!(
                "{}: the broker does not enable SASL {mechanism} (it enables {})",
                self.server,
                offered.join(", ")
            ),
            code => bail!("{}: SASL handshake: {}", self.server, error_text(code)),
        }
        let what = format!(
            "{}: SASL {mechanism} authentication as {:?} failed",
            self.server, sasl.username
        );
        let failed = |e: anyhow::Error| e.context(what.clone());
        match Exchange::new(sasl)? {
            Exchange::Plain(message) => {
                self.sasl_round(&message).map_err(failed)?;
            }
            Exchange::Scram(mut scram) => {
                let steps = (|| {
                    let first = self.sasl_round(scram.first().as_bytes())?;
                    let last = scram.last(&String::from_utf8_lossy(&first))?;
                    let done = self.sasl_round(last.as_bytes())?;
                    scram.check(&String::from_utf8_lossy(&done))
                })();
                steps.map_err(failed)?;
            }
        }
        Ok(())
    }

    /// One SaslAuthenticate (v0): our message, the server's answer.
    fn sasl_round(&mut self, message: &[u8]) -> Result<Vec<u8>> {
        let mut body = Encoder::default();
        body.bytes(message);
        let reply = self.call(API_SASL_AUTHENTICATE, 0, &body.0, Duration::ZERO)?;
        let mut d = Decoder::new(&reply);
        let error = d.i16()?;
        let text = d.string()?;
        let answer = d.bytes()?.unwrap_or_default().to_vec();
        if error != 0 {
            if text.is_empty() {
                bail!("{}", error_text(error));
            }
            bail!("{text} ({})", error_text(error));
        }
        Ok(answer)
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
            } else if e.kind() == std::io::ErrorKind::UnexpectedEof {
                anyhow!(
                    "{server}: the broker closed the connection (does it want TLS or SASL? \
                     hint: security.protocol in --kafka-config)"
                )
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
