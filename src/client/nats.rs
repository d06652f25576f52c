//! A small synchronous NATS client: the text protocol (INFO, CONNECT,
//! PUB, SUB, MSG, HMSG, PING/PONG) over one connection subscribed to its
//! own inbox, and the JetStream API a pull consumer needs: API requests
//! (stream and consumer lookup and creation), pulls
//! (`CONSUMER.MSG.NEXT`), acknowledgements confirmed by the server (an
//! ack with a reply subject), and reading stored messages by sequence
//! (`STREAM.MSG.GET`).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::nkey::Credentials;
use super::tcp;
use super::tls::{Stream, TlsOptions};
use super::url::BrokerUrl;

/// How long a reply from the server may take beyond any wait asked for.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// JetStream's error code for "stream not found".
pub const STREAM_NOT_FOUND: u64 = 10059;
/// JetStream's error code for "consumer not found".
pub const CONSUMER_NOT_FOUND: u64 = 10014;
/// JetStream's error code for "no message found".
pub const NO_MESSAGE: u64 = 10037;

/// A message as the server sent it.
pub struct Msg {
    /// The subject it was sent to.
    pub subject: String,
    /// Its reply subject (a JetStream ack subject for a delivery).
    pub reply: Option<String>,
    /// Its headers, raw (`NATS/1.0 ...` first).
    pub headers: Option<Vec<u8>>,
    /// Its payload.
    pub data: Vec<u8>,
}

impl Msg {
    /// The status code of a status message (`NATS/1.0 408 Request Timeout`).
    pub fn status(&self) -> Option<(u16, String)> {
        let headers = self.headers.as_deref()?;
        let first = headers.split(|&b| b == b'\n').next()?;
        let first = String::from_utf8_lossy(first);
        let mut words = first.trim().splitn(3, ' ');
        words.next()?;
        let code = words.next()?.parse().ok()?;
        Some((code, words.next().unwrap_or("").to_string()))
    }
}

/// An error answer of the JetStream API.
pub struct ApiError {
    /// JetStream's error code (`STREAM_NOT_FOUND`, ...).
    pub err_code: u64,
    /// What the server says went wrong.
    pub description: String,
}

/// How etl-watch proves who it is to a NATS server, beyond the URL's
/// user and password or token, and the TLS it trusts.
#[derive(Debug, Clone, Default)]
pub struct NatsAuth {
    /// The trust and client certificate options. Any of them asks for
    /// TLS, as `tls://` does.
    pub tls: TlsOptions,
    /// A `.creds` file (user JWT and nkey seed) or an nkey seed file.
    pub creds: Option<PathBuf>,
}

/// One connection to a NATS server, subscribed to its own inbox.
pub struct Conn {
    /// The connection, read through a buffer; what is published waits in
    /// `out` until the next flush.
    reader: BufReader<Stream>,
    out: Vec<u8>,
    inbox: String,
    next: u64,
    server: String,
}

/// The server's greeting line (`INFO {...}`), read a byte at a time: TLS
/// may start right after it, so nothing past it may be read here.
fn read_info(stream: &mut TcpStream, server: &str) -> Result<Value> {
    let mut line = Vec::new();
    let mut byte = [0u8];
    while line.len() < (1 << 20) {
        match stream.read(&mut byte) {
            Ok(0) => bail!("{server}: the server closed the connection before its greeting"),
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(e).with_context(|| format!("{server}: no greeting from the server"));
            }
        }
    }
    let line = String::from_utf8_lossy(&line);
    line.strip_prefix("INFO ")
        .and_then(|j| serde_json::from_str(j.trim()).ok())
        .with_context(|| format!("{server} is not a NATS server"))
}

impl Conn {
    /// Connects, starts TLS when the URL (`tls://`), the options or the
    /// server ask for it, authenticates and subscribes to its own inbox.
    pub fn connect(url: &BrokerUrl, auth: &NatsAuth) -> Result<Conn> {
        let server = url.to_string();
        let creds = auth.creds.as_deref().map(Credentials::read).transpose()?;
        let mut tcp = tcp::connect(&url.host, url.port, &server)?;
        tcp.set_read_timeout(Some(REPLY_TIMEOUT))?;
        let info = read_info(&mut tcp, &server)?;
        let flag = |name: &str| info.get(name).and_then(Value::as_bool) == Some(true);
        let want_tls = url.tls || auth.tls.any();
        let stream = if want_tls || flag("tls_required") {
            if !flag("tls_required") && !flag("tls_available") {
                bail!("{server}: the server does not offer TLS");
            }
            // As NATS does: TLS starts after the plain-text INFO.
            Stream::handshake(tcp, &url.host, &server, &auth.tls.config()?)?
        } else {
            Stream::Plain(tcp)
        };
        if !flag("headers") {
            bail!("{server}: the server does not support headers (NATS 2.2 or later is needed)");
        }
        let tls = matches!(stream, Stream::Tls(_));
        let mut connect = json!({
            "verbose": false, "pedantic": false, "tls_required": tls,
            "name": "etl-watch", "lang": "rust", "version": env!("CARGO_PKG_VERSION"),
            "protocol": 1, "headers": true, "no_responders": true,
        });
        match (&url.user, &url.password) {
            (Some(user), Some(password)) => {
                connect["user"] = user.clone().into();
                connect["pass"] = password.clone().into();
            }
            (Some(token), None) => connect["auth_token"] = token.clone().into(),
            (None, Some(password)) => connect["auth_token"] = password.clone().into(),
            (None, None) => {}
        }
        if let Some(creds) = &creds {
            let nonce = info
                .get("nonce")
                .and_then(Value::as_str)
                .with_context(|| {
                    format!("{server}: the server asks for no signature (no nonce), so --creds cannot be used")
                })?;
            connect["sig"] = creds.sign(nonce).into();
            match &creds.jwt {
                Some(jwt) => connect["jwt"] = jwt.clone().into(),
                None => connect["nkey"] = creds.public_key().into(),
            }
        }
        // An inbox of its own: other clients share the server.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let nonce = format!("{nanos:x}x{:x}", std::process::id());
        let mut conn = Conn {
            reader: BufReader::with_capacity(64 << 10, stream),
            out: Vec::new(),
            inbox: format!("_INBOX.etl{nonce}"),
            next: 0,
            server,
        };
        let sub = format!("CONNECT {connect}\r\nSUB {}.* 1\r\nPING\r\n", conn.inbox);
        conn.out.extend_from_slice(sub.as_bytes());
        conn.flush()?;
        loop {
            let mut line = String::new();
            let read = conn
                .reader
                .read_line(&mut line)
                .map_err(|e| anyhow!("{}: {e}", conn.server))?;
            if read == 0 {
                bail!("{}: the server closed the connection", conn.server);
            }
            let line = line.trim_end();
            if line == "PONG" {
                return Ok(conn);
            }
            if let Some(err) = line.strip_prefix("-ERR ") {
                bail!("{}: {}", conn.server, err.trim_matches('\''));
            }
        }
    }

    /// A new reply subject in our inbox.
    pub fn reply_subject(&mut self) -> String {
        self.next += 1;
        format!("{}.{}", self.inbox, self.next)
    }

    /// Sends `data` to `subject`, answers to `reply` (sent at the next flush).
    pub fn publish(&mut self, subject: &str, reply: &str, data: &[u8]) -> Result<()> {
        write!(self.out, "PUB {subject} {reply} {}\r\n", data.len())?;
        self.out.extend_from_slice(data);
        self.out.extend_from_slice(b"\r\n");
        Ok(())
    }

    /// Sends what was published.
    pub fn flush(&mut self) -> Result<()> {
        let stream = self.reader.get_mut();
        stream
            .write_all(&self.out)
            .and_then(|()| stream.flush())
            .with_context(|| format!("{}: cannot send", self.server))?;
        self.out.clear();
        Ok(())
    }

    /// The next message for us, answering the server's PINGs meanwhile.
    pub fn read_msg(&mut self, timeout: Duration) -> Result<Msg> {
        self.reader.get_ref().set_read_timeout(Some(timeout))?;
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).map_err(|e| {
                if tcp::timed_out(&e) {
                    anyhow!("{}: no answer from the server in time", self.server)
                } else {
                    anyhow!("{}: {e}", self.server)
                }
            })?;
            if n == 0 {
                bail!("{}: the server closed the connection", self.server);
            }
            let words: Vec<&str> = line.split_ascii_whitespace().collect();
            match words.first().copied() {
                Some("MSG") if words.len() == 4 || words.len() == 5 => {
                    let size: usize = words[words.len() - 1].parse()?;
                    let data = self.read_payload(size)?;
                    return Ok(Msg {
                        subject: words[1].into(),
                        reply: (words.len() == 5).then(|| words[3].to_string()),
                        headers: None,
                        data,
                    });
                }
                Some("HMSG") if words.len() == 5 || words.len() == 6 => {
                    let header_size: usize = words[words.len() - 2].parse()?;
                    let size: usize = words[words.len() - 1].parse()?;
                    let mut data = self.read_payload(size)?;
                    if header_size > data.len() {
                        bail!("{}: malformed HMSG", self.server);
                    }
                    let payload = data.split_off(header_size);
                    return Ok(Msg {
                        subject: words[1].into(),
                        reply: (words.len() == 6).then(|| words[3].to_string()),
                        headers: Some(data),
                        data: payload,
                    });
                }
                Some("PING") => {
                    self.out.extend_from_slice(b"PONG\r\n");
                    self.flush()?;
                }
                Some("PONG" | "+OK" | "INFO") => {}
                Some("-ERR") => bail!("{}: {}", self.server, line[4..].trim().trim_matches('\'')),
                _ => bail!(
                    "{}: unexpected line from the server: {}",
                    self.server,
                    line.trim()
                ),
            }
        }
    }

    fn read_payload(&mut self, size: usize) -> Result<Vec<u8>> {
        let mut data = vec![0; size + 2];
        self.reader
            .read_exact(&mut data)
            .with_context(|| format!("{}: message cut short", self.server))?;
        data.truncate(size);
        Ok(data)
    }

    /// A JetStream API request; its JSON answer, or the API's error.
    pub fn request(&mut self, subject: &str, body: &Value) -> Result<Result<Value, ApiError>> {
        let reply = self.reply_subject();
        let body = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        self.publish(subject, &reply, &body)?;
        self.flush()?;
        loop {
            let msg = self.read_msg(REPLY_TIMEOUT)?;
            if msg.subject != reply {
                continue; // a late answer to something we stopped waiting for
            }
            if let Some((503, _)) = msg.status() {
                bail!(
                    "{}: no JetStream on this server (start nats-server with -js)",
                    self.server
                );
            }
            return Ok(api_answer(&msg.data));
        }
    }
}

/// A JetStream API answer: its JSON, or the error it holds.
pub fn api_answer(data: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(data).map_err(|e| ApiError {
        err_code: 0,
        description: format!("the answer is not JSON: {e}"),
    })?;
    match value.get("error") {
        Some(err) => Err(ApiError {
            err_code: err.get("err_code").and_then(Value::as_u64).unwrap_or(0),
            description: err
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("unknown error")
                .to_string(),
        }),
        None => Ok(value),
    }
}

/// A message read from a stream by its sequence: its subject and payload.
pub type Stored = (String, Vec<u8>);

/// One message a pull consumer delivered.
pub struct Delivery {
    /// Its stream sequence.
    pub seq: u64,
    /// Its subject.
    pub subject: String,
    /// Its payload.
    pub data: Vec<u8>,
    /// Its ack subject.
    pub ack: String,
}

impl Conn {
    /// The server as messages name it (never with a password).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The names of the streams that hold `subject`.
    pub fn stream_names(&mut self, subject: &str) -> Result<Vec<String>> {
        let names = self
            .request("$JS.API.STREAM.NAMES", &json!({ "subject": subject }))?
            .map_err(|e| anyhow!("{}: cannot list streams: {}", self.server, e.description))?;
        Ok(names
            .get("streams")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Acknowledges deliveries by their ack subjects; returns once the
    /// server confirmed each. `stream` and `durable` name the consumer in
    /// errors.
    pub fn ack(&mut self, subjects: &[&str], stream: &str, durable: &str) -> Result<()> {
        for chunk in subjects.chunks(8192) {
            let mut waiting = HashSet::new();
            for subject in chunk {
                let reply = self.reply_subject();
                self.publish(subject, &reply, b"+ACK")?;
                waiting.insert(reply);
            }
            self.flush()?;
            while !waiting.is_empty() {
                let msg = self.read_msg(REPLY_TIMEOUT)?;
                if waiting.remove(&msg.subject)
                    && let Some((503, _)) = msg.status()
                {
                    bail!(
                        "consumer {durable} on {stream} is gone; the acknowledgement was not taken"
                    );
                }
            }
        }
        Ok(())
    }

    /// Asks the pull consumer `durable` of `stream` for up to `max`
    /// messages, waiting up to `wait` (`None`: only what is there now).
    /// The deliveries, in order (one message may come more than once: a
    /// pull can outlast the ack wait), and whether the consumer said it
    /// has no more now.
    pub fn pull(
        &mut self,
        stream: &str,
        durable: &str,
        max: usize,
        wait: Option<Duration>,
    ) -> Result<(Vec<Delivery>, bool)> {
        let reply = self.reply_subject();
        let body = match wait {
            None => json!({ "batch": max, "no_wait": true }),
            Some(w) => json!({ "batch": max, "expires": w.as_nanos() as u64 }),
        };
        self.publish(
            &format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"),
            &reply,
            body.to_string().as_bytes(),
        )?;
        self.flush()?;
        let timeout = wait.unwrap_or_default() + REPLY_TIMEOUT;
        let mut out = Vec::new();
        let mut drained = false;
        while out.len() < max {
            let msg = self.read_msg(timeout)?;
            if let Some(ack) = msg.reply.as_deref().filter(|r| r.starts_with("$JS.ACK.")) {
                let seq = stream_seq(ack)
                    .with_context(|| format!("unexpected JetStream ack subject {ack}"))?;
                out.push(Delivery {
                    seq,
                    ack: ack.to_string(),
                    subject: msg.subject,
                    data: msg.data,
                });
            } else if msg.subject == reply {
                match msg.status() {
                    Some((404 | 408, _)) => {
                        drained = true;
                        break;
                    }
                    Some((100, _)) => {}
                    Some((503, _)) => bail!(
                        "{}: consumer {durable} on {stream} is not there (deleted?)",
                        self.server
                    ),
                    Some((code, text)) => bail!(
                        "{}: consumer {durable} on {stream}: {code} {text}",
                        self.server
                    ),
                    None => {}
                }
            }
        }
        Ok((out, drained))
    }

    /// The stored messages of `stream` at `seqs` (`STREAM.MSG.GET`): each
    /// one's subject and payload, `None` for one no longer in the stream.
    pub fn get_messages(
        &mut self,
        stream: &str,
        seqs: &[u64],
    ) -> Result<Vec<(u64, Option<Stored>)>> {
        let mut out = Vec::with_capacity(seqs.len());
        let api = format!("$JS.API.STREAM.MSG.GET.{stream}");
        for chunk in seqs.chunks(1024) {
            let mut replies = Vec::with_capacity(chunk.len());
            for seq in chunk {
                let reply = self.reply_subject();
                self.publish(&api, &reply, json!({ "seq": seq }).to_string().as_bytes())?;
                replies.push(reply);
            }
            self.flush()?;
            let mut answers = HashMap::new();
            while answers.len() < replies.len() {
                let msg = self.read_msg(REPLY_TIMEOUT)?;
                answers.insert(msg.subject.clone(), msg);
            }
            for (seq, reply) in chunk.iter().zip(&replies) {
                let msg = answers
                    .remove(reply)
                    .expect("every reply was waited for above");
                match api_answer(&msg.data) {
                    Ok(v) => {
                        let data = v
                            .pointer("/message/data")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        let subject = v
                            .pointer("/message/subject")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        let data = BASE64
                            .decode(data)
                            .context("JetStream sent a message that is not base64")?;
                        out.push((*seq, Some((subject, data))));
                    }
                    Err(e) if e.err_code == NO_MESSAGE => out.push((*seq, None)),
                    Err(e) => bail!(
                        "{}: cannot read sequence {seq}: {}",
                        self.server,
                        e.description
                    ),
                }
            }
        }
        Ok(out)
    }
}

/// The stream sequence in a JetStream ack subject:
/// `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>`, or
/// with `<domain>.<account hash>.` before the stream and a token after.
pub fn stream_seq(ack: &str) -> Option<u64> {
    let tokens: Vec<&str> = ack.split('.').collect();
    let index = match tokens.len() {
        9 => 5,
        n if n >= 11 => 7,
        _ => return None,
    };
    tokens[index].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_subjects_name_the_stream_sequence() {
        assert_eq!(
            stream_seq("$JS.ACK.ORDERS.etl.1.42.7.1795450328778926765.3"),
            Some(42)
        );
        assert_eq!(
            stream_seq("$JS.ACK.hub.ACCHASH.ORDERS.etl.1.43.8.1795450328778926765.3.tok"),
            Some(43)
        );
        assert_eq!(stream_seq("$JS.ACK.x"), None);
    }
}
