//! A Redis stream as a watch source, read through a consumer group.
//!
//! A small synchronous RESP2 client and the stream commands the watch
//! needs: XGROUP CREATE, XREADGROUP (our own pending entries first, then
//! new ones with `>`), XACK. Redis keeps each consumer's delivered but
//! unacknowledged entries (its pending entries list); after a restart they
//! are read again from it, so the batch named in the checkpoint is rebuilt
//! from exactly the entries it held.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use super::contract::{
    Body, BrokerOptions, BrokerSource, Message, Previous, RestartFrom, Seq, connect_tcp,
    refuse_restart,
};
use super::url::{BrokerPlan, BrokerUrl};

/// How long a reply may take beyond a BLOCK asked for.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Entries read from the pending list per call.
const PAGE: usize = 1000;

/// A RESP2 reply.
#[derive(Debug)]
enum Reply {
    Nil,
    Int,
    Bytes(Vec<u8>),
    Array(Vec<Reply>),
    Error(String),
}

/// One connection to a Redis server.
struct Resp {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
    server: String,
}

impl Resp {
    fn connect(url: &BrokerUrl) -> Result<Resp> {
        let server = url.to_string();
        // Every address the name resolves to is tried, as for NATS and Kafka.
        let stream = connect_tcp(&url.host, url.port, &server)?;
        stream.set_nodelay(true)?;
        let mut conn = Resp {
            reader: BufReader::new(stream.try_clone()?),
            writer: BufWriter::new(stream),
            server,
        };
        if let Some(password) = &url.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &url.user {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            // The server's message names no password; ours neither.
            conn.ok(&args)
                .map_err(|e| anyhow!("{e:#}").context("authentication failed"))?;
        }
        if let Some(db) = url.path.strip_prefix('/') {
            conn.ok(&[b"SELECT", db.as_bytes()])?;
        }
        Ok(conn)
    }

    /// Sends a command and reads its reply (an error reply is a `Reply`).
    fn call(&mut self, args: &[&[u8]], timeout: Duration) -> Result<Reply> {
        write!(self.writer, "*{}\r\n", args.len())?;
        for arg in args {
            write!(self.writer, "${}\r\n", arg.len())?;
            self.writer.write_all(arg)?;
            self.writer.write_all(b"\r\n")?;
        }
        self.writer
            .flush()
            .with_context(|| format!("{}: cannot send", self.server))?;
        self.reader.get_ref().set_read_timeout(Some(timeout))?;
        self.read_reply()
    }

    /// A command whose error reply is an error.
    fn ok(&mut self, args: &[&[u8]]) -> Result<Reply> {
        match self.call(args, REPLY_TIMEOUT)? {
            Reply::Error(e) => Err(anyhow!(
                "{}: {}: {e}",
                self.server,
                String::from_utf8_lossy(args[0])
            )),
            reply => Ok(reply),
        }
    }

    fn line(&mut self) -> Result<String> {
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
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    fn read_reply(&mut self) -> Result<Reply> {
        let line = self.line()?;
        let (kind, rest) = line.split_at(line.len().min(1));
        let number = || -> Result<i64> {
            rest.parse()
                .map_err(|_| anyhow!("bad reply from the server: {line:?}"))
        };
        Ok(match kind {
            "+" => Reply::Bytes(rest.as_bytes().to_vec()),
            "-" => Reply::Error(rest.to_string()),
            ":" => {
                number()?;
                Reply::Int
            }
            "$" => match usize::try_from(number()?) {
                Err(_) => Reply::Nil,
                Ok(size) => {
                    let mut data = vec![0; size + 2];
                    self.reader.read_exact(&mut data)?;
                    data.truncate(size);
                    Reply::Bytes(data)
                }
            },
            "*" => match usize::try_from(number()?) {
                Err(_) => Reply::Nil,
                Ok(n) => Reply::Array((0..n).map(|_| self.read_reply()).collect::<Result<_>>()?),
            },
            _ => bail!("{}: not a Redis server? It said {line:?}", self.server),
        })
    }
}

fn parse_id(id: &[u8]) -> Option<Seq> {
    let text = std::str::from_utf8(id).ok()?;
    let (ms, n) = text.split_once('-')?;
    Some((ms.parse().ok()?, n.parse().ok()?))
}

fn id_text(seq: Seq) -> String {
    format!("{}-{}", seq.0, seq.1)
}

/// A Redis stream read by one consumer of a consumer group.
pub(super) struct RedisStream {
    conn: Resp,
    key: String,
    group: String,
    consumer: String,
    db: String,
    /// Reading our own pending entries after this id (`None`: done, new
    /// entries only).
    history: Option<Seq>,
    /// Entries read ahead while rebuilding the batch in flight.
    backlog: VecDeque<Message>,
    /// The last entry of the last batch handed on and acknowledged: every
    /// entry up to it has been (kept in the checkpoint as `acked`).
    through: Option<Seq>,
    /// The group was created again after it by this run (--restart-from
    /// checkpoint): the batch in flight comes as new entries.
    recreated: bool,
    /// The group was created again from the stream's start or end.
    started_over: bool,
}

/// Does the stream at `key` have the consumer group `group`?
fn has_group(conn: &mut Resp, key: &str, group: &str) -> Result<bool> {
    let Reply::Array(groups) = conn.ok(&[b"XINFO", b"GROUPS", key.as_bytes()])? else {
        return Ok(false);
    };
    Ok(groups.iter().any(|info| {
        let Reply::Array(fields) = info else {
            return false;
        };
        fields.chunks(2).any(|pair| {
            matches!(pair, [Reply::Bytes(k), Reply::Bytes(v)] if k == b"name" && v == group.as_bytes())
        })
    }))
}

/// The `acked` entry id of a checkpoint's state.
fn acked_in(state: &Value) -> Option<Seq> {
    parse_id(state.get("acked")?.as_str()?.as_bytes())
}

impl RedisStream {
    /// Connects and makes sure the stream and the group exist (the stream
    /// only with --create-stream).
    /// When the checkpoint (`previous`) shows entries were loaded but the
    /// group or the stream is gone, it is created again only as
    /// --restart-from says: after the last entry handed on, or at the
    /// stream's start or end.
    pub(super) fn open(
        plan: &BrokerPlan,
        options: BrokerOptions,
        previous: Option<&Previous>,
    ) -> Result<RedisStream> {
        let BrokerPlan::Redis {
            url,
            key,
            group,
            consumer,
        } = plan
        else {
            unreachable!("RedisStream::open is called for redis:// only");
        };
        let mut conn = Resp::connect(url)?;
        let server = url.to_string();
        let db = url.path.trim_start_matches('/').to_string();
        let identity = format!("redis;{db};{key};{group};{consumer}");
        let through = previous
            .filter(|p| p.identity == identity)
            .and_then(|p| acked_in(&p.state));
        let mut start = if options.from_end { "$" } else { "0" }.to_string();
        let mut mkstream = false;
        let lost = match conn.ok(&[b"TYPE", key.as_bytes()])? {
            Reply::Bytes(t) if t == b"stream" => (!has_group(&mut conn, key, group)?)
                .then(|| format!("the consumer group {group:?} of stream {key:?} is gone")),
            Reply::Bytes(t) if t == b"none" && options.create_stream => {
                mkstream = true;
                Some(format!("the stream {key:?} is gone"))
            }
            Reply::Bytes(t) if t == b"none" => bail!(
                "{server}: there is no stream at key {key:?}; hint: --create-stream creates it"
            ),
            Reply::Bytes(t) => bail!(
                "{server}: key {key:?} holds a {}, not a stream",
                String::from_utf8_lossy(&t)
            ),
            other => bail!("{server}: TYPE answered {other:?}"),
        };
        let mut recreated = false;
        let mut started_over = false;
        if let (Some(lost), Some(through)) = (lost, through) {
            start = match options.restart {
                None => {
                    return Err(refuse_restart(
                        &server,
                        &lost,
                        &format!("its entries up to {}", id_text(through)),
                        &if mkstream {
                            format!("the stream and its group {group:?}")
                        } else {
                            format!("group {group:?}")
                        },
                    ));
                }
                Some(RestartFrom::Checkpoint) => {
                    recreated = true;
                    id_text(through)
                }
                Some(RestartFrom::Start) => "0".into(),
                Some(RestartFrom::End) => "$".into(),
            };
            started_over = !recreated;
        }
        let mut create: Vec<&[u8]> = vec![
            b"XGROUP",
            b"CREATE",
            key.as_bytes(),
            group.as_bytes(),
            start.as_bytes(),
        ];
        if mkstream {
            create.push(b"MKSTREAM");
        }
        match conn.call(&create, REPLY_TIMEOUT)? {
            Reply::Error(e) if e.starts_with("BUSYGROUP") => {}
            Reply::Error(e) => bail!("{server}: cannot create group {group:?} on {key:?}: {e}"),
            _ => {}
        }
        Ok(RedisStream {
            conn,
            key: key.clone(),
            group: group.clone(),
            consumer: consumer.clone(),
            db,
            history: Some((0, 0)),
            backlog: VecDeque::new(),
            through,
            recreated,
            started_over,
        })
    }

    /// XREADGROUP from `from` (an id: our pending entries after it; `>`:
    /// new entries), waiting `block` for new ones.
    fn read_group(
        &mut self,
        from: &str,
        max: usize,
        block: Option<Duration>,
    ) -> Result<Vec<Message>> {
        let count = max.to_string();
        let mut args: Vec<&[u8]> = vec![
            b"XREADGROUP",
            b"GROUP",
            self.group.as_bytes(),
            self.consumer.as_bytes(),
            b"COUNT",
            count.as_bytes(),
        ];
        let block_ms = block.map(|b| b.as_millis().max(1).to_string());
        if let Some(ms) = &block_ms {
            args.push(b"BLOCK");
            args.push(ms.as_bytes());
        }
        args.extend_from_slice(&[b"STREAMS", self.key.as_bytes(), from.as_bytes()]);
        let timeout = block.unwrap_or_default() + REPLY_TIMEOUT;
        let reply = match self.conn.call(&args, timeout)? {
            Reply::Error(e) if e.starts_with("NOGROUP") => bail!(
                "{}: the group {:?} or the stream {:?} was deleted",
                self.conn.server,
                self.group,
                self.key
            ),
            Reply::Error(e) => bail!("{}: XREADGROUP: {e}", self.conn.server),
            reply => reply,
        };
        let Reply::Array(streams) = reply else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for stream in streams {
            let Reply::Array(mut parts) = stream else {
                continue;
            };
            let Some(Reply::Array(entries)) = parts.pop() else {
                continue;
            };
            for entry in entries {
                let Reply::Array(mut entry) = entry else {
                    continue;
                };
                let fields = if entry.len() == 2 { entry.pop() } else { None };
                let Some(Reply::Bytes(id)) = entry.pop() else {
                    continue;
                };
                let seq = parse_id(&id).with_context(|| {
                    format!(
                        "{}: bad entry id {:?}",
                        self.conn.server,
                        String::from_utf8_lossy(&id)
                    )
                })?;
                let body = match fields {
                    Some(Reply::Array(values)) => {
                        let mut pairs = Vec::with_capacity(values.len() / 2);
                        let mut it = values.into_iter();
                        while let (Some(Reply::Bytes(k)), Some(Reply::Bytes(v))) =
                            (it.next(), it.next())
                        {
                            pairs.push((k, v));
                        }
                        match pairs.iter().position(|(k, _)| k == b"payload") {
                            Some(i) => Body::Payload(pairs.swap_remove(i).1),
                            None => Body::Fields(pairs),
                        }
                    }
                    _ => Body::Gone,
                };
                out.push(Message {
                    seq,
                    subject: self.key.clone(),
                    body,
                    ack: None,
                });
            }
        }
        Ok(out)
    }
}

impl BrokerSource for RedisStream {
    fn name(&self) -> String {
        format!("redis stream {}", self.key)
    }

    fn identity(&self) -> String {
        format!(
            "redis;{};{};{};{}",
            self.db, self.key, self.group, self.consumer
        )
    }

    fn seq_json(&self, seq: Seq) -> Value {
        id_text(seq).into()
    }

    fn fetch(&mut self, max: usize, wait: Option<Duration>) -> Result<Vec<Message>> {
        if !self.backlog.is_empty() {
            let n = max.min(self.backlog.len());
            return Ok(self.backlog.drain(..n).collect());
        }
        if let Some(after) = self.history {
            let messages = self.read_group(&id_text(after), max, None)?;
            match messages.last() {
                Some(last) => {
                    self.history = Some(last.seq);
                    return Ok(messages);
                }
                None => self.history = None,
            }
        }
        self.read_group(">", max, wait)
    }

    fn ack(&mut self, messages: &[Message]) -> Result<()> {
        for chunk in messages.chunks(PAGE) {
            let ids: Vec<String> = chunk.iter().map(|m| id_text(m.seq)).collect();
            let mut args: Vec<&[u8]> = vec![b"XACK", self.key.as_bytes(), self.group.as_bytes()];
            args.extend(ids.iter().map(String::as_bytes));
            self.conn.ok(&args)?;
        }
        Ok(())
    }

    fn positions(&self, messages: &[Message]) -> Value {
        let first = messages.iter().map(|m| m.seq).min().unwrap_or_default();
        let last = messages.iter().map(|m| m.seq).max().unwrap_or_default();
        json!({
            "broker": "redis",
            "key": self.key,
            "group": self.group,
            "consumer": self.consumer,
            "first": id_text(first),
            "last": id_text(last),
            "messages": messages.len(),
        })
    }

    fn recover(&mut self, positions: &Value) -> Result<Vec<Message>> {
        let bound = |name: &str| {
            positions
                .get(name)
                .and_then(Value::as_str)
                .and_then(|s| parse_id(s.as_bytes()))
                .with_context(|| format!("the checkpoint's batch in flight has no {name} id"))
        };
        let (first, last) = (bound("first")?, bound("last")?);
        let mut batch = Vec::new();
        let mut after = (0, 0);
        loop {
            // A group created again after the last entry handed on has no
            // pending entries: the batch's entries are its next new ones.
            let from = if self.recreated {
                ">".to_string()
            } else {
                id_text(after)
            };
            let page = self.read_group(&from, PAGE, None)?;
            let Some(end) = page.last().map(|m| m.seq) else {
                break;
            };
            after = end;
            let mut past = false;
            for m in page {
                if m.seq > last {
                    past = true;
                    self.backlog.push_back(m);
                } else if m.seq >= first {
                    batch.push(m);
                } else {
                    // Left unacknowledged before the batch (a reject whose
                    // acknowledgement was cut off): taken after it.
                    self.backlog.push_back(m);
                }
            }
            if past {
                break;
            }
        }
        self.history = Some(after);
        Ok(batch)
    }

    fn state(&self) -> Value {
        match self.through {
            Some(through) => json!({ "acked": id_text(through) }),
            None => Value::Null,
        }
    }

    fn restore(&mut self, state: &Value) {
        self.through = self.through.max(acked_in(state));
    }

    fn handed_on(&mut self, messages: &[Message]) {
        self.through = self.through.max(messages.iter().map(|m| m.seq).max());
    }

    fn started_over(&self) -> bool {
        self.started_over
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_order_as_numbers() {
        assert_eq!(parse_id(b"1700000000000-12"), Some((1_700_000_000_000, 12)));
        assert!(parse_id(b"9-0") < parse_id(b"10-0"));
        assert_eq!(parse_id(b"x"), None);
        assert_eq!(id_text((5, 1)), "5-1");
    }
}
