//! NATS JetStream as a watch source, through a durable pull consumer.
//!
//! A small synchronous client for the NATS text protocol (INFO, CONNECT,
//! PUB, SUB, MSG, HMSG, PING/PONG) and the JetStream API subjects the
//! watch needs: stream and consumer lookup and creation, pull requests
//! (`CONSUMER.MSG.NEXT`), acknowledgements confirmed by the server (an
//! ack with a reply subject), and reading a stored message by sequence
//! (`STREAM.MSG.GET`) to rebuild a batch after a restart.
//!
//! A message rebuilt that way has no ack subject: the consumer delivers it
//! again once its ack wait runs out. And JetStream delivers at least once:
//! a message can come again after its acknowledgement was confirmed (seen
//! here with nats-server 2.9 under load). So the sequences of every batch
//! handed on are kept ("done", also in the checkpoint) until the consumer's
//! ack floor has passed them; a delivery of one of them is acknowledged
//! again, never passed on.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::contract::{
    Body, BrokerOptions, BrokerSource, Message, Previous, RestartFrom, Seq, connect_tcp,
    refuse_restart,
};
use super::url::{BrokerPlan, BrokerUrl};

/// How long a reply from the server may take beyond any wait asked for.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// JetStream's error code for "stream not found".
const STREAM_NOT_FOUND: u64 = 10059;
/// JetStream's error code for "consumer not found".
const CONSUMER_NOT_FOUND: u64 = 10014;
/// JetStream's error code for "no message found".
const NO_MESSAGE: u64 = 10037;

/// A message as the server sent it.
struct Msg {
    subject: String,
    reply: Option<String>,
    headers: Option<Vec<u8>>,
    data: Vec<u8>,
}

impl Msg {
    /// The status code of a status message (`NATS/1.0 408 Request Timeout`).
    fn status(&self) -> Option<(u16, String)> {
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
struct ApiError {
    err_code: u64,
    description: String,
}

/// One connection to a NATS server, subscribed to its own inbox.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
    inbox: String,
    next: u64,
    server: String,
}

impl Conn {
    fn connect(url: &BrokerUrl) -> Result<Conn> {
        let server = url.to_string();
        let stream = connect_tcp(&url.host, url.port, &server)?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .with_context(|| format!("{server}: no greeting from the server"))?;
        let info: Value = line
            .strip_prefix("INFO ")
            .and_then(|j| serde_json::from_str(j.trim()).ok())
            .with_context(|| format!("{server} is not a NATS server"))?;
        if info.get("tls_required").and_then(Value::as_bool) == Some(true) {
            bail!("{server} requires TLS, which etl-watch does not support");
        }
        if info.get("headers").and_then(Value::as_bool) != Some(true) {
            bail!("{server}: the server does not support headers (NATS 2.2 or later is needed)");
        }
        let mut connect = json!({
            "verbose": false, "pedantic": false, "tls_required": false,
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
        let nonce = crate::watch::identity::Hasher::of(
            format!("{:?}{}", std::time::SystemTime::now(), std::process::id()).as_bytes(),
        );
        let mut conn = Conn {
            reader,
            writer: BufWriter::with_capacity(64 << 10, stream),
            inbox: format!("_INBOX.etl{nonce}"),
            next: 0,
            server,
        };
        let sub = format!("CONNECT {connect}\r\nSUB {}.* 1\r\nPING\r\n", conn.inbox);
        conn.writer.write_all(sub.as_bytes())?;
        conn.writer.flush()?;
        loop {
            let mut line = String::new();
            if conn.reader.read_line(&mut line)? == 0 {
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
    fn reply_subject(&mut self) -> String {
        self.next += 1;
        format!("{}.{}", self.inbox, self.next)
    }

    fn publish(&mut self, subject: &str, reply: &str, data: &[u8]) -> Result<()> {
        write!(self.writer, "PUB {subject} {reply} {}\r\n", data.len())?;
        self.writer.write_all(data)?;
        self.writer.write_all(b"\r\n")?;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.writer
            .flush()
            .with_context(|| format!("{}: cannot send", self.server))
    }

    /// The next message for us, answering the server's PINGs meanwhile.
    fn read_msg(&mut self, timeout: Duration) -> Result<Msg> {
        self.reader.get_ref().set_read_timeout(Some(timeout))?;
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).map_err(|e| {
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) {
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
                    self.writer.write_all(b"PONG\r\n")?;
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
    fn request(&mut self, subject: &str, body: &Value) -> Result<Result<Value, ApiError>> {
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

fn api_answer(data: &[u8]) -> Result<Value, ApiError> {
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

/// A durable JetStream pull consumer as a watch source.
pub(super) struct JetStream {
    conn: Conn,
    url: BrokerUrl,
    stream: String,
    durable: String,
    subject: String,
    created: String,
    ack_floor: u64,
    /// Sequences handed on (their batch's command exited 0) above the
    /// consumer's ack floor: a delivery of one of them is not passed on.
    done: SeqSet,
    /// When the ack floor was last asked for.
    floor_read: Option<Instant>,
    /// The consumer or stream was created again from the stream's start or
    /// end (--restart-from start|end).
    started_over: bool,
    /// How far the checkpoint said messages were handed on (a consumer
    /// created again after them starts with no ack floor of its own).
    prior: u64,
}

/// What a checkpoint of this durable on this subject says was handed on:
/// the stream's creation time then, and the last sequence up to which
/// every message was handed on (`None`: nothing yet, or an older
/// checkpoint that did not keep it).
fn previous_progress(
    previous: Option<&Previous>,
    stream: &str,
    durable: &str,
    subject: &str,
) -> Option<(String, u64)> {
    let previous = previous?;
    let mut parts = previous.identity.splitn(5, ';');
    let (Some("nats"), Some(s), Some(created), Some(d), Some(sub)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    if (s, d, sub) != (stream, durable, subject) {
        return None;
    }
    let through = previous.state.get("through").and_then(Value::as_u64)?;
    (through > 0).then(|| (created.to_string(), through))
}

/// How often the consumer's ack floor is read to forget sequences in `done`.
const FLOOR_EVERY: Duration = Duration::from_secs(1);

/// A set of stream sequences kept as ranges (first..=last by first): the
/// sequences of batches are mostly consecutive.
#[derive(Debug, Default)]
struct SeqSet(BTreeMap<u64, u64>);

impl SeqSet {
    fn contains(&self, seq: u64) -> bool {
        self.0
            .range(..=seq)
            .next_back()
            .is_some_and(|(_, &last)| seq <= last)
    }

    fn insert(&mut self, seq: u64) {
        if self.contains(seq) {
            return;
        }
        let before = self
            .0
            .range(..seq)
            .next_back()
            .filter(|(_, last)| **last + 1 == seq)
            .map(|(&first, _)| first);
        // Joins the range ending just before and the one starting just after.
        let after = seq.checked_add(1).and_then(|n| self.0.remove(&n));
        self.0.insert(before.unwrap_or(seq), after.unwrap_or(seq));
    }

    /// Forgets the sequences up to `floor`.
    fn forget_through(&mut self, floor: u64) {
        let mut kept = self.0.split_off(&(floor + 1));
        if let Some((_, &last)) = self.0.iter().next_back()
            && last > floor
        {
            kept.insert(floor + 1, last);
        }
        self.0 = kept;
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.0.iter().map(|(&a, &b)| (a, b))
    }
}

impl JetStream {
    /// Connects, finds (or, when allowed, creates) the stream and the
    /// durable consumer.
    ///
    /// When the checkpoint (`previous`) shows messages were handed on but
    /// the consumer or the stream is gone (or the stream was created
    /// again), the consumer is created again only as --restart-from says:
    /// after the last message handed on, or at the stream's start or end.
    pub(super) fn open(
        plan: &BrokerPlan,
        options: BrokerOptions,
        previous: Option<&Previous>,
    ) -> Result<JetStream> {
        let BrokerPlan::Nats {
            url,
            subject,
            durable,
            js_stream,
            ack_wait,
        } = plan
        else {
            unreachable!("JetStream::open is called for nats:// only");
        };
        let mut conn = Conn::connect(url)?;
        let server = url.to_string();
        let stream = match js_stream {
            Some(name) => name.clone(),
            None => {
                let names = conn
                    .request("$JS.API.STREAM.NAMES", &json!({ "subject": subject }))?
                    .map_err(|e| anyhow!("{server}: cannot list streams: {}", e.description))?;
                let names: Vec<String> = names
                    .get("streams")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                match names.as_slice() {
                    [one] => one.clone(),
                    [] => bail!(
                        "{server}: no JetStream stream holds subject {subject:?}; \
                         hint: create one (nats stream add), or let etl-watch create it with \
                         --create-stream --js-stream NAME"
                    ),
                    many => bail!(
                        "{server}: several streams hold subject {subject:?} ({}); name one with --js-stream",
                        many.join(", ")
                    ),
                }
            }
        };
        let progress = previous_progress(previous, &stream, durable, subject);
        let mut started_over = false;
        // A new stream numbers its messages from 1 again: the checkpoint's
        // sequences mean nothing in it.
        let new_stream = |lost: &str| -> Result<bool> {
            let Some((_, through)) = &progress else {
                return Ok(false);
            };
            match options.restart {
                None => Err(refuse_restart(
                    &server,
                    lost,
                    &format!("its messages up to sequence {through}"),
                    &format!("the stream and consumer {durable}"),
                )),
                Some(RestartFrom::Checkpoint) => bail!(
                    "{server}: {lost}; a new stream numbers its messages from 1 again, so the \
                     checkpoint's position means nothing in it; hint: --restart-from start or \
                     --restart-from end"
                ),
                Some(_) => Ok(true),
            }
        };
        let info = match conn.request(&format!("$JS.API.STREAM.INFO.{stream}"), &Value::Null)? {
            Ok(info) => info,
            Err(e) if e.err_code == STREAM_NOT_FOUND && options.create_stream => {
                started_over = new_stream(&format!("the stream {stream} is gone"))?;
                let config = json!({
                    "name": stream, "subjects": [subject], "storage": "file",
                    "retention": "limits", "discard": "old",
                });
                conn.request(&format!("$JS.API.STREAM.CREATE.{stream}"), &config)?
                    .map_err(|e| {
                        anyhow!("{server}: cannot create stream {stream}: {}", e.description)
                    })?
            }
            Err(e) if e.err_code == STREAM_NOT_FOUND => bail!(
                "{server}: JetStream stream {stream} does not exist; \
                 hint: --create-stream creates it on subject {subject:?}"
            ),
            Err(e) => bail!("{server}: stream {stream}: {}", e.description),
        };
        let created = info
            .get("created")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !started_over
            && let Some((was, _)) = &progress
            && *was != created
        {
            started_over = new_stream(&format!(
                "the stream {stream} was deleted and created again since the checkpoint"
            ))?;
        }
        let consumer_api = format!("$JS.API.CONSUMER.INFO.{stream}.{durable}");
        let consumer = match conn.request(&consumer_api, &Value::Null)? {
            Ok(info) => info,
            Err(e) if e.err_code == CONSUMER_NOT_FOUND => {
                let max_ack_pending = (options.batch_rows.saturating_mul(2)).max(1000);
                let mut deliver = json!(if options.from_end { "new" } else { "all" });
                let mut start_seq = None;
                if let Some((_, through)) = progress.as_ref().filter(|_| !started_over) {
                    match options.restart {
                        None => {
                            return Err(refuse_restart(
                                &server,
                                &format!("the consumer {durable} on stream {stream} is gone"),
                                &format!("its messages up to sequence {through}"),
                                &format!("consumer {durable}"),
                            ));
                        }
                        Some(RestartFrom::Checkpoint) => {
                            deliver = json!("by_start_sequence");
                            start_seq = Some(through + 1);
                        }
                        Some(RestartFrom::Start) => {
                            deliver = json!("all");
                            started_over = true;
                        }
                        Some(RestartFrom::End) => {
                            deliver = json!("new");
                            started_over = true;
                        }
                    }
                }
                let mut config = json!({
                    "stream_name": stream,
                    "config": {
                        "durable_name": durable,
                        "ack_policy": "explicit",
                        "deliver_policy": deliver,
                        "filter_subject": subject,
                        "ack_wait": (ack_wait * 1e9) as u64,
                        "max_deliver": -1,
                        "max_ack_pending": max_ack_pending,
                        "replay_policy": "instant",
                    }
                });
                if let Some(seq) = start_seq {
                    config["config"]["opt_start_seq"] = json!(seq);
                }
                conn.request(
                    &format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}"),
                    &config,
                )?
                .map_err(|e| {
                    anyhow!(
                        "{server}: cannot create consumer {durable} on {stream}: {}",
                        e.description
                    )
                })?
            }
            Err(e) => bail!(
                "{server}: consumer {durable} on {stream}: {}",
                e.description
            ),
        };
        let config = consumer.get("config").cloned().unwrap_or(Value::Null);
        let text = |key: &str| config.get(key).and_then(Value::as_str).unwrap_or("");
        if !text("deliver_subject").is_empty() {
            bail!(
                "{server}: consumer {durable} on {stream} is a push consumer; etl-watch needs a pull consumer"
            );
        }
        if text("ack_policy") != "explicit" {
            bail!(
                "{server}: consumer {durable} on {stream} acknowledges {:?}; etl-watch needs ack_policy explicit",
                text("ack_policy")
            );
        }
        let filter = text("filter_subject");
        if filter != subject.as_str() {
            bail!(
                "{server}: consumer {durable} on {stream} reads subject {filter:?}, not {subject:?}; \
                 use another --durable for another subject"
            );
        }
        let ack_floor = consumer
            .pointer("/ack_floor/stream_seq")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Ok(JetStream {
            conn,
            url: url.clone(),
            stream,
            durable: durable.clone(),
            subject: subject.clone(),
            created,
            ack_floor,
            done: SeqSet::default(),
            floor_read: None,
            started_over,
            prior: progress
                .filter(|_| !started_over)
                .map_or(0, |(_, through)| through),
        })
    }

    /// Acknowledges deliveries by their ack subjects; returns once the
    /// server confirmed each.
    fn ack_subjects(&mut self, subjects: &[&str]) -> Result<()> {
        for chunk in subjects.chunks(8192) {
            let mut waiting = HashSet::new();
            for subject in chunk {
                let reply = self.conn.reply_subject();
                self.conn.publish(subject, &reply, b"+ACK")?;
                waiting.insert(reply);
            }
            self.conn.flush()?;
            while !waiting.is_empty() {
                let msg = self.conn.read_msg(REPLY_TIMEOUT)?;
                if waiting.remove(&msg.subject)
                    && let Some((503, _)) = msg.status()
                {
                    bail!(
                        "consumer {} on {} is gone; the acknowledgement was not taken",
                        self.durable,
                        self.stream
                    );
                }
            }
        }
        Ok(())
    }

    /// Reads the consumer's ack floor and forgets the sequences handed on
    /// up to it: the server delivers none of them again.
    fn read_floor(&mut self) -> Result<()> {
        let api = format!("$JS.API.CONSUMER.INFO.{}.{}", self.stream, self.durable);
        let info = self.conn.request(&api, &Value::Null)?.map_err(|e| {
            anyhow!(
                "{}: consumer {} on {}: {}",
                self.url,
                self.durable,
                self.stream,
                e.description
            )
        })?;
        self.floor_read = Some(Instant::now());
        if let Some(floor) = info
            .pointer("/ack_floor/stream_seq")
            .and_then(Value::as_u64)
        {
            self.ack_floor = self.ack_floor.max(floor);
            self.done.forget_through(self.ack_floor);
        }
        Ok(())
    }

    fn pull(&mut self, max: usize, wait: Option<Duration>) -> Result<(Vec<Message>, bool)> {
        let reply = self.conn.reply_subject();
        let body = match wait {
            None => json!({ "batch": max, "no_wait": true }),
            Some(w) => json!({ "batch": max, "expires": w.as_nanos() as u64 }),
        };
        self.conn.publish(
            &format!("$JS.API.CONSUMER.MSG.NEXT.{}.{}", self.stream, self.durable),
            &reply,
            body.to_string().as_bytes(),
        )?;
        self.conn.flush()?;
        let timeout = wait.unwrap_or_default() + REPLY_TIMEOUT;
        let mut out = Vec::new();
        // Deliveries of messages already handed on, by sequence: the newest
        // one is acknowledged after the pull. (A pull can outlast the ack
        // wait: one message may come several times in one pull.)
        let mut redelivered_done: BTreeMap<u64, String> = BTreeMap::new();
        let mut got = 0;
        let mut drained = false;
        while got < max {
            let msg = self.conn.read_msg(timeout)?;
            if let Some(ack) = msg.reply.as_deref().filter(|r| r.starts_with("$JS.ACK.")) {
                got += 1;
                let seq = stream_seq(ack)
                    .with_context(|| format!("unexpected JetStream ack subject {ack}"))?;
                if self.done.contains(seq) {
                    redelivered_done.insert(seq, ack.to_string());
                    continue;
                }
                out.push(Message {
                    seq: (seq, 0),
                    subject: msg.subject,
                    body: Body::Payload(msg.data),
                    ack: Some(ack.to_string()),
                });
            } else if msg.subject == reply {
                match msg.status() {
                    Some((404 | 408, _)) => {
                        drained = true;
                        break;
                    }
                    Some((100, _)) => {}
                    Some((503, _)) => bail!(
                        "{}: consumer {} on {} is not there (deleted?)",
                        self.url,
                        self.durable,
                        self.stream
                    ),
                    Some((code, text)) => bail!(
                        "{}: consumer {} on {}: {code} {text}",
                        self.url,
                        self.durable,
                        self.stream
                    ),
                    None => {}
                }
            }
        }
        if !redelivered_done.is_empty() {
            let subjects: Vec<&str> = redelivered_done.values().map(String::as_str).collect();
            self.ack_subjects(&subjects)?;
        }
        Ok((out, drained))
    }
}

/// The stream sequence in a JetStream ack subject:
/// `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>`, or
/// with `<domain>.<account hash>.` before the stream and a token after.
fn stream_seq(ack: &str) -> Option<u64> {
    let tokens: Vec<&str> = ack.split('.').collect();
    let index = match tokens.len() {
        9 => 5,
        n if n >= 11 => 7,
        _ => return None,
    };
    tokens[index].parse().ok()
}

fn ranges(seqs: impl IntoIterator<Item = u64>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for s in seqs {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == s => *last = s,
            _ => out.push((s, s)),
        }
    }
    out
}

fn ranges_from(value: Option<&Value>) -> Vec<u64> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| Some((r.get(0)?.as_u64()?, r.get(1)?.as_u64()?)))
                .flat_map(|(a, b)| a..=b)
                .collect()
        })
        .unwrap_or_default()
}

impl BrokerSource for JetStream {
    fn name(&self) -> String {
        format!("nats stream {}", self.stream)
    }

    fn identity(&self) -> String {
        format!(
            "nats;{};{};{};{}",
            self.stream, self.created, self.durable, self.subject
        )
    }

    fn seq_json(&self, seq: Seq) -> Value {
        seq.0.into()
    }

    fn fetch(&mut self, max: usize, wait: Option<Duration>) -> Result<Vec<Message>> {
        loop {
            let (messages, drained) = self.pull(max, wait)?;
            if !messages.is_empty() || drained {
                return Ok(messages);
            }
        }
    }

    fn ack(&mut self, messages: &[Message]) -> Result<()> {
        let subjects: Vec<&str> = messages.iter().filter_map(|m| m.ack.as_deref()).collect();
        self.ack_subjects(&subjects)?;
        for m in messages {
            self.done.insert(m.seq.0);
        }
        if self.floor_read.is_none_or(|t| t.elapsed() >= FLOOR_EVERY) {
            self.read_floor()?;
        }
        Ok(())
    }

    fn positions(&self, messages: &[Message]) -> Value {
        let mut seqs: Vec<u64> = messages.iter().map(|m| m.seq.0).collect();
        seqs.sort_unstable();
        let ranges: Vec<Value> = ranges(seqs.iter().copied())
            .into_iter()
            .map(|(a, b)| json!([a, b]))
            .collect();
        json!({
            "broker": "nats",
            "stream": self.stream,
            "consumer": self.durable,
            "first": seqs.first(),
            "last": seqs.last(),
            "messages": seqs.len(),
            "ranges": ranges,
        })
    }

    fn recover(&mut self, positions: &Value) -> Result<Vec<Message>> {
        let seqs = ranges_from(positions.get("ranges"));
        let mut out = Vec::with_capacity(seqs.len());
        let api = format!("$JS.API.STREAM.MSG.GET.{}", self.stream);
        for chunk in seqs.chunks(1024) {
            let mut replies = Vec::with_capacity(chunk.len());
            for seq in chunk {
                let reply = self.conn.reply_subject();
                self.conn
                    .publish(&api, &reply, json!({ "seq": seq }).to_string().as_bytes())?;
                replies.push(reply);
            }
            self.conn.flush()?;
            let mut answers = std::collections::HashMap::new();
            while answers.len() < replies.len() {
                let msg = self.conn.read_msg(REPLY_TIMEOUT)?;
                answers.insert(msg.subject.clone(), msg);
            }
            for (seq, reply) in chunk.iter().zip(&replies) {
                let msg = answers
                    .remove(reply)
                    .expect("every reply was waited for above");
                let body = match api_answer(&msg.data) {
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
                        out.push(Message {
                            seq: (*seq, 0),
                            subject,
                            body: Body::Payload(data),
                            ack: None,
                        });
                        continue;
                    }
                    Err(e) if e.err_code == NO_MESSAGE => Body::Gone,
                    Err(e) => bail!(
                        "{}: cannot read sequence {seq}: {}",
                        self.url,
                        e.description
                    ),
                };
                out.push(Message {
                    seq: (*seq, 0),
                    subject: String::new(),
                    body,
                    ack: None,
                });
            }
        }
        Ok(out)
    }

    fn state(&self) -> Value {
        let done: Vec<Value> = self.done.ranges().map(|(a, b)| json!([a, b])).collect();
        // Every sequence up to the ack floor, and the handed-on ones right
        // after it, have been handed on.
        let through = match self.done.ranges().next() {
            Some((first, last)) if first <= self.ack_floor + 1 => last.max(self.ack_floor),
            _ => self.ack_floor,
        };
        json!({ "done": done, "through": through.max(self.prior) })
    }

    fn started_over(&self) -> bool {
        self.started_over
    }

    fn restore(&mut self, state: &Value) {
        let ranges = state.get("done").and_then(Value::as_array);
        for range in ranges.into_iter().flatten() {
            let (Some(first), Some(last)) = (
                range.get(0).and_then(Value::as_u64),
                range.get(1).and_then(Value::as_u64),
            ) else {
                continue;
            };
            let first = first.max(self.ack_floor + 1);
            if first <= last {
                self.done.0.insert(first, last);
            }
        }
    }
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

    #[test]
    fn sequence_sets_merge_and_forget_below_the_floor() {
        let mut set = SeqSet::default();
        for seq in [5, 3, 4, 9, 1, 8, 10] {
            set.insert(seq);
        }
        assert_eq!(set.ranges().collect::<Vec<_>>(), [(1, 1), (3, 5), (8, 10)]);
        assert!(set.contains(4) && set.contains(10) && !set.contains(2) && !set.contains(7));
        set.insert(2);
        assert_eq!(set.ranges().collect::<Vec<_>>(), [(1, 5), (8, 10)]);
        set.forget_through(3);
        assert_eq!(set.ranges().collect::<Vec<_>>(), [(4, 5), (8, 10)]);
        set.forget_through(9);
        assert_eq!(set.ranges().collect::<Vec<_>>(), [(10, 10)]);
        set.forget_through(10);
        assert!(set.is_empty());
    }

    #[test]
    fn sequences_compress_into_ranges() {
        assert_eq!(ranges([1, 2, 3, 5, 7, 8]), vec![(1, 3), (5, 5), (7, 8)]);
        let back = ranges_from(Some(&json!([[1, 3], [5, 5]])));
        assert_eq!(back, vec![1, 2, 3, 5]);
    }
}
