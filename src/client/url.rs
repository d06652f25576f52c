//! Broker addresses (`nats://` and `tls://`, `redis://` and `rediss://`,
//! `kafka://`): the server, the credentials, whether the URL asks for TLS
//! and, for Redis, the database a client connects to. A URL's `Display`
//! never shows its password.

use anyhow::{Context, Result, bail};

/// A broker's address from the command line. Its `Display` never shows
/// the password.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// `nats`, `redis` or `kafka` (`tls://` is `nats` and `rediss://` is
    /// `redis`, with `tls` set).
    pub scheme: String,
    /// The URL's scheme asks for TLS (`tls://`, `rediss://`).
    pub tls: bool,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User name, if any (a NATS token when there is no password).
    pub user: Option<String>,
    /// Password, if any.
    pub password: Option<String>,
    /// The path after the port (`/2`: Redis database 2).
    pub path: String,
}

impl std::fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match (self.scheme.as_str(), self.tls) {
            ("nats", true) => "tls",
            ("redis", true) => "rediss",
            (scheme, _) => scheme,
        };
        write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
    }
}

/// Is `text` a broker URL (rather than a path)?
pub fn is_broker_url(text: &str) -> bool {
    ["nats://", "redis://", "rediss://", "tls://", "kafka://"]
        .iter()
        .any(|p| text.starts_with(p))
}

impl BrokerUrl {
    /// Parses `nats://[user:password@|token@]host[:port]`,
    /// `redis://[[user]:password@]host[:port][/db]` or
    /// `kafka://host[:port]`; `tls://` is NATS and `rediss://` Redis over
    /// TLS. Kafka's TLS and SASL are set apart from the URL
    /// (`security.protocol`).
    pub fn parse(text: &str) -> Result<BrokerUrl> {
        crate::shown::check_userinfo(text)?;
        let (given, rest) = text
            .split_once("://")
            .context("a broker URL starts with nats://, redis:// or kafka://")?;
        let (scheme, tls) = match given {
            "tls" => ("nats", true),
            "rediss" => ("redis", true),
            other => (other, false),
        };
        let default_port = match scheme {
            "nats" => 4222,
            "redis" => 6379,
            "kafka" => 9092,
            _ => bail!("unknown broker scheme {scheme}://"),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('?') => {
                bail!("{given}:// URL parameters are not supported")
            }
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, password)) => (
                    Some(decode_userinfo(user)?).filter(|u| !u.is_empty()),
                    Some(decode_userinfo(password)?),
                ),
                None => (Some(decode_userinfo(u)?), None),
            },
        };
        let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
            let (host, after) = rest.split_once(']').context("unclosed [ in broker URL")?;
            (host.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse()
                .with_context(|| format!("bad port {p:?} in {scheme}:// URL"))?,
            None => default_port,
        };
        let host = if host.is_empty() {
            "127.0.0.1".into()
        } else {
            host
        };
        let path = path.trim_end_matches('/').to_string();
        if scheme == "nats" && !path.is_empty() {
            bail!("a nats:// URL has no path (name the stream with --js-stream)");
        }
        if scheme == "kafka" && !path.is_empty() {
            bail!("a kafka:// URL has no path (name the topic with --topic)");
        }
        if scheme == "kafka" && (user.is_some() || password.is_some()) {
            bail!(
                "a kafka:// URL holds no user or password; hint: SASL is set with \
                 security.protocol and sasl.* in --kafka-config FILE"
            );
        }
        if scheme == "redis" && !path.is_empty() && path[1..].parse::<u32>().is_err() {
            bail!("the path of a redis:// URL is a database number, e.g. redis://127.0.0.1:6379/0");
        }
        Ok(BrokerUrl {
            scheme: scheme.into(),
            tls,
            host,
            port,
            user,
            password,
            path,
        })
    }
}

/// The user or password of a broker URL, `%XX` escapes decoded.
fn decode_userinfo(text: &str) -> Result<String> {
    crate::percent::decode(text).map_err(|e| match e {
        crate::percent::DecodeError::BadEscape => {
            anyhow::anyhow!("bad %-escape in the user or password of a broker URL")
        }
        crate::percent::DecodeError::NotUtf8 => {
            anyhow::anyhow!("the user or password of a broker URL is not UTF-8")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_never_show_the_password() {
        let url = BrokerUrl::parse("redis://:s%40cret@db.example:6380/2").unwrap();
        assert_eq!(url.password.as_deref(), Some("s@cret"));
        assert_eq!(url.user, None);
        assert_eq!(url.to_string(), "redis://db.example:6380/2");
        assert_eq!(format!("{url:?}"), "redis://db.example:6380/2");
        let url = BrokerUrl::parse("nats://tok@127.0.0.1").unwrap();
        assert_eq!((url.user.as_deref(), url.port), (Some("tok"), 4222));
        assert!(BrokerUrl::parse("nats://h:4222/ORDERS").is_err());
        let url = BrokerUrl::parse("rediss://u:p@h:6380/1").unwrap();
        assert_eq!((url.scheme.as_str(), url.tls), ("redis", true));
        assert_eq!(url.to_string(), "rediss://h:6380/1");
        let url = BrokerUrl::parse("tls://h").unwrap();
        assert_eq!(
            (url.scheme.as_str(), url.tls, url.port),
            ("nats", true, 4222)
        );
        assert_eq!(url.to_string(), "tls://h:4222");
        assert!(BrokerUrl::parse("redis://h/x").is_err());
        assert!(BrokerUrl::parse("redis://h:6379?timeout=1").is_err());
    }
}
