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
            } else if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
            ) {
                // A TLS listener drops a plain-text request (a TLS proxy
                // resets it), a SASL listener one sent before signing in.
                anyhow!(
                    "{server}: the broker closed the connection (does it want TLS or SASL? \
                     hint: --security-protocol, or security.protocol in --kafka-config)"
                )
            } else {
                anyhow!("{server}: {e}")
            }
        };
        self.stream.write_all(&frame).map_err(&fail)?;
        self.stream.set_read_timeout(Some(wait + REPLY_TIMEOUT))?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).map_err(&fail)?;
        if matches!(self.stream, Stream::Plain(_)) && is_tls_record(size) {
            bail!(
                "{}: the broker answered in TLS (an SSL listener); hint: --security-protocol \
                 SSL or SASL_SSL, or security.protocol in --kafka-config",
                self.server
            );
        }
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

/// Do an answer's first bytes start a TLS record (an alert or a
/// handshake, TLS 1.0 to 1.3's record version 3.1-3.4) rather than a Kafka
/// size? As a size they would be over 350 MB.
fn is_tls_record(head: [u8; 4]) -> bool {
    matches!(head, [0x15 | 0x16, 0x03, 0x01..=0x04, _])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server on 127.0.0.1 that reads a request and answers `reply`, then
    /// closes; its port.
    fn answering(reply: &'static [u8]) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("port").port();
        std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().expect("accept");
            let mut request = [0u8; 64];
            let _ = socket.read(&mut request);
            let _ = socket.write_all(reply);
        });
        port
    }

    fn first_call(port: u16) -> String {
        let server = format!("kafka://127.0.0.1:{port}");
        let mut conn = Conn::connect("127.0.0.1", port, &server, &KafkaSecurity::default())
            .expect("plain text connects");
        let err = conn
            .call(3, 1, &[0, 0, 0, 0], Duration::ZERO)
            .expect_err("no Kafka answer");
        format!("{err:#}").replace(&server, "SERVER")
    }

    #[test]
    fn plain_text_to_a_tls_listener_is_named() {
        // A TLS alert (unexpected_message), as a TLS server answers bytes
        // that are not a handshake.
        let port = answering(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x0a]);
        assert_eq!(
            first_call(port),
            "SERVER: the broker answered in TLS (an SSL listener); hint: --security-protocol \
             SSL or SASL_SSL, or security.protocol in --kafka-config"
        );
        let port = answering(b"");
        assert_eq!(
            first_call(port),
            "SERVER: the broker closed the connection (does it want TLS or SASL? hint: \
             --security-protocol, or security.protocol in --kafka-config)"
        );
        let port = answering(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        assert_eq!(
            first_call(port),
            "SERVER: an answer of 1213486160 bytes is not Kafka's"
        );
    }
}
