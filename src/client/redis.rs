//! A small synchronous Redis client: RESP2 over one connection, and the
//! stream commands a consumer group reader needs (TYPE, XINFO GROUPS,
//! XGROUP CREATE, XREADGROUP, XACK).

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use super::tcp;
use super::tls::{Stream, TlsOptions};
use super::url::BrokerUrl;

/// How long a reply may take beyond a BLOCK asked for.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Entry ids acknowledged per XACK.
const ACK_PAGE: usize = 1000;

/// A RESP2 reply.
#[derive(Debug)]
pub enum Reply {
    /// A null bulk string or array.
    Nil,
    /// An integer (its value is not needed).
    Int,
    /// A simple or bulk string.
    Bytes(Vec<u8>),
    /// An array.
    Array(Vec<Reply>),
    /// An error reply.
    Error(String),
}

/// A stream entry's id, `ms-n`: ordered as numbers, first by the
/// millisecond time, then by the sequence within it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId {
    /// The millisecond part.
    pub ms: u64,
    /// The sequence within the millisecond.
    pub n: u64,
}

impl EntryId {
    /// Reads `ms-n`.
    pub fn parse(id: &[u8]) -> Option<EntryId> {
        let text = std::str::from_utf8(id).ok()?;
        let (ms, n) = text.split_once('-')?;
        Some(EntryId {
            ms: ms.parse().ok()?,
            n: n.parse().ok()?,
        })
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.n)
    }
}

/// One stream entry as XREADGROUP returns it.
pub struct Entry {
    /// Its id.
    pub id: EntryId,
    /// Its fields and values; `None`: deleted from the stream (trimmed)
    /// after it was delivered.
    pub fields: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

/// One connection to a Redis server.
pub struct Resp {
    /// The connection, read through a buffer; commands are written to it
    /// whole from `out`.
    reader: BufReader<Stream>,
    out: Vec<u8>,
    server: String,
}

impl Resp {
    /// Connects (over TLS for `rediss://`, trusting what `tls` says),
    /// authenticates (AUTH: `redis://user:password@` as an ACL user,
    /// `redis://:password@` as the default user) and selects the URL's
    /// database.
    pub fn connect(url: &BrokerUrl, tls: &TlsOptions) -> Result<Resp> {
        let server = url.to_string();
        if tls.any() && !url.tls {
            bail!("{server}: --ca-cert, --client-cert and --client-key are for rediss:// (TLS)");
        }
        // Every address the name resolves to is tried, as for NATS and Kafka.
        let stream = Stream::connect(&url.host, url.port, &server, url.tls.then_some(tls))?;
        let mut conn = Resp {
            reader: BufReader::new(stream),
            out: Vec::new(),
            server,
        };
        if let Some(password) = &url.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &url.user {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            // The server's message names no password; ours neither.
            if let Reply::Error(e) = conn.call(&args, REPLY_TIMEOUT)? {
                bail!("{}: authentication failed: {e}", conn.server);
            }
        }
        if let Some(db) = url.path.strip_prefix('/') {
            conn.ok(&[b"SELECT", db.as_bytes()])?;
        }
        Ok(conn)
    }

    /// The server as messages name it (never with a password).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Sends a command and reads its reply (an error reply is a `Reply`).
    pub fn call(&mut self, args: &[&[u8]], timeout: Duration) -> Result<Reply> {
        self.out.clear();
        write!(self.out, "*{}\r\n", args.len())?;
        for arg in args {
            write!(self.out, "${}\r\n", arg.len())?;
            self.out.extend_from_slice(arg);
            self.out.extend_from_slice(b"\r\n");
        }
        let stream = self.reader.get_mut();
        stream
            .write_all(&self.out)
            .and_then(|()| stream.flush())
            .with_context(|| format!("{}: cannot send", self.server))?;
        self.reader.get_ref().set_read_timeout(Some(timeout))?;
        self.read_reply()
    }

    /// A command whose error reply is an error.
    pub fn ok(&mut self, args: &[&[u8]]) -> Result<Reply> {
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
            if tcp::timed_out(&e) {
                anyhow!("{}: no answer from the server in time", self.server)
            } else if e.kind() == std::io::ErrorKind::ConnectionReset {
                anyhow!("{}: {e}{}", self.server, self.tls_hint())
            } else {
                anyhow!("{}: {e}", self.server)
            }
        })?;
        if n == 0 {
            bail!(
                "{}: the server closed the connection{}",
                self.server,
                self.tls_hint()
            );
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    /// A hint for a connection a server dropped: a TLS-only server drops
    /// plain text.
    fn tls_hint(&self) -> &'static str {
        match self.reader.get_ref() {
            Stream::Plain(_) => " (does it want TLS? hint: rediss://)",
            Stream::Tls(_) => "",
        }
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

    /// The type of the value at `key` (TYPE): `stream`, `none`, ...
    pub fn key_type(&mut self, key: &str) -> Result<Vec<u8>> {
        match self.ok(&[b"TYPE", key.as_bytes()])? {
            Reply::Bytes(t) => Ok(t),
            other => bail!("{}: TYPE answered {other:?}", self.server),
        }
    }

    /// Does the stream at `key` have the consumer group `group`?
    pub fn has_group(&mut self, key: &str, group: &str) -> Result<bool> {
        let Reply::Array(groups) = self.ok(&[b"XINFO", b"GROUPS", key.as_bytes()])? else {
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

    /// Creates the consumer group `group` on `key` reading after `start`
    /// (an entry id, `0` or `$`), and the stream with `mkstream`. A group
    /// that exists is left as it is.
    pub fn create_group(
        &mut self,
        key: &str,
        group: &str,
        start: &str,
        mkstream: bool,
    ) -> Result<()> {
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
        match self.call(&create, REPLY_TIMEOUT)? {
            Reply::Error(e) if e.starts_with("BUSYGROUP") => Ok(()),
            Reply::Error(e) => bail!(
                "{}: cannot create group {group:?} on {key:?}: {e}",
                self.server
            ),
            _ => Ok(()),
        }
    }

    /// XREADGROUP of up to `count` entries of `key` for `consumer` of
    /// `group`, from `from` (an id: the consumer's pending entries after
    /// it; `>`: new entries), waiting `block` for new ones.
    pub fn read_group(
        &mut self,
        key: &str,
        group: &str,
        consumer: &str,
        from: &str,
        count: usize,
        block: Option<Duration>,
    ) -> Result<Vec<Entry>> {
        let count = count.to_string();
        let mut args: Vec<&[u8]> = vec![
            b"XREADGROUP",
            b"GROUP",
            group.as_bytes(),
            consumer.as_bytes(),
            b"COUNT",
            count.as_bytes(),
        ];
        let block_ms = block.map(|b| b.as_millis().max(1).to_string());
        if let Some(ms) = &block_ms {
            args.push(b"BLOCK");
            args.push(ms.as_bytes());
        }
        args.extend_from_slice(&[b"STREAMS", key.as_bytes(), from.as_bytes()]);
        let timeout = block.unwrap_or_default() + REPLY_TIMEOUT;
        let reply = match self.call(&args, timeout)? {
            Reply::Error(e) if e.starts_with("NOGROUP") => bail!(
                "{}: the group {group:?} or the stream {key:?} was deleted",
                self.server
            ),
            Reply::Error(e) => bail!("{}: XREADGROUP: {e}", self.server),
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
                let id = EntryId::parse(&id).with_context(|| {
                    format!(
                        "{}: bad entry id {:?}",
                        self.server,
                        String::from_utf8_lossy(&id)
                    )
                })?;
                let fields = match fields {
                    Some(Reply::Array(values)) => {
                        let mut pairs = Vec::with_capacity(values.len() / 2);
                        let mut it = values.into_iter();
                        while let (Some(Reply::Bytes(k)), Some(Reply::Bytes(v))) =
                            (it.next(), it.next())
                        {
                            pairs.push((k, v));
                        }
                        Some(pairs)
                    }
                    _ => None,
                };
                out.push(Entry { id, fields });
            }
        }
        Ok(out)
    }

    /// Acknowledges `ids` of `key` for `group` (XACK).
    pub fn ack(&mut self, key: &str, group: &str, ids: &[EntryId]) -> Result<()> {
        for chunk in ids.chunks(ACK_PAGE) {
            let ids: Vec<String> = chunk.iter().map(EntryId::to_string).collect();
            let mut args: Vec<&[u8]> = vec![b"XACK", key.as_bytes(), group.as_bytes()];
            args.extend(ids.iter().map(String::as_bytes));
            self.ok(&args)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_order_as_numbers() {
        let id = |ms, n| EntryId { ms, n };
        assert_eq!(
            EntryId::parse(b"1700000000000-12"),
            Some(id(1_700_000_000_000, 12))
        );
        assert!(EntryId::parse(b"9-0") < EntryId::parse(b"10-0"));
        assert_eq!(EntryId::parse(b"x"), None);
        assert_eq!(id(5, 1).to_string(), "5-1");
    }
}
