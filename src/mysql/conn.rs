//! Connecting to MySQL or MariaDB the way the `mysql` client does: a
//! `mysql://` (or `mariadb://`) URL, with the `[client]` section of
//! `~/.my.cnf` and then `MYSQL_PWD`, `MYSQL_HOST` and `MYSQL_TCP_PORT`
//! filling what the URL leaves out (the client's own order: option files
//! before environment variables), and TLS as the client sets it up
//! (`tls.rs`: ssl-mode, ssl-ca, ssl-cert, ssl-key). The URL a user typed
//! may hold a password, so everything we print uses [`redact`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use mysql::{Conn, OptsBuilder};

use super::tls::{Mode, Tls};

/// Where and as whom to connect, once the URL, the option file and the
/// environment have had their say.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// Host name or address (`localhost` by default).
    pub host: String,
    /// TCP port (3306 by default).
    pub port: u16,
    /// A Unix socket to use instead of TCP.
    pub socket: Option<String>,
    /// User name.
    pub user: Option<String>,
    /// Password; never printed.
    pub password: Option<String>,
    /// The database (a MySQL "schema"): where tables and `_etl_state` live.
    pub database: Option<String>,
    /// TLS: ssl-mode and the certificate files.
    pub tls: Tls,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("socket", &self.socket)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("database", &self.database)
            .field("tls", &self.tls)
            .finish()
    }
}

/// The URL without its password (for messages, logs and control lines);
/// only `mysql://***` for a URL whose user info is ambiguous (which
/// [`settings`] refuses).
pub fn redact(url: &str) -> String {
    if let Some(shown) = crate::shown::refused_url(url) {
        return shown;
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // User info runs to the last '@' before the path: a password may hold
    // '@', '/' or '?' when the user did not percent-encode it.
    let (userinfo, host_and_more) = match rest.rfind('@') {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    let authority = match userinfo {
        Some(info) => {
            let user = info.split(':').next().unwrap_or_default();
            format!("{user}@")
        }
        None => String::new(),
    };
    let tail = match host_and_more.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|kv| {
                    let key = kv
                        .split('=')
                        .next()
                        .unwrap_or_default()
                        .to_ascii_lowercase();
                    key != "password" && key != "pass"
                })
                .collect();
            if kept.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => host_and_more.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// The `[client]` options of an option file: `key=value` lines, `#`/`;`
/// comments, quoted values, `-` and `_` alike in keys.
pub fn parse_option_file(text: &str) -> Vec<(String, String)> {
    let mut in_client = false;
    let mut options = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_client = section.trim().eq_ignore_ascii_case("client");
            continue;
        }
        if !in_client {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (line, ""),
        };
        let value = if value.len() >= 2
            && ((value.starts_with('"') && value.ends_with('"'))
                || (value.starts_with('\'') && value.ends_with('\'')))
        {
            &value[1..value.len() - 1]
        } else {
            value
        };
        options.push((
            key.replace('-', "_").to_ascii_lowercase(),
            value.to_string(),
        ));
    }
    options
}

fn option_file() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".my.cnf"))
}

/// Works out the connection settings for `url`.
pub fn settings(url: &str) -> Result<Settings> {
    crate::shown::check_userinfo(url)?;
    let shown = redact(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("{shown}: not a mysql:// URL");
    };
    if !matches!(scheme, "mysql" | "mariadb") {
        bail!("{shown}: not a mysql:// URL");
    }
    let (userinfo, rest) = match rest.rfind('@') {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (hostport, path) = match authority.split_once('/') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let mut s = Settings {
        host: String::new(),
        port: 0,
        socket: None,
        user: None,
        password: None,
        database: None,
        tls: Tls::default(),
    };
    if let Some(info) = userinfo {
        let (user, password) = match info.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (info, None),
        };
        if !user.is_empty() {
            s.user = Some(crate::percent::decode(user).with_context(|| shown.clone())?);
        }
        if let Some(p) = password {
            s.password = Some(crate::percent::decode(p).with_context(|| shown.clone())?);
        }
    }
    if !hostport.is_empty() {
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (h, Some(p)),
            _ => (hostport, None),
        };
        s.host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if let Some(port) = port {
            s.port = port
                .parse()
                .map_err(|_| anyhow::anyhow!("{shown}: {port:?} is not a port number"))?;
        }
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        s.database = Some(crate::percent::decode(db).with_context(|| shown.clone())?);
    }
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = key.replace('-', "_").to_ascii_lowercase();
        let value = crate::percent::decode(value).with_context(|| shown.clone())?;
        match key.as_str() {
            "socket" => s.socket = Some(value),
            "password" | "pass" => s.password = Some(value),
            "user" => s.user = Some(value),
            k if s.tls.take(k, &value, &shown)? => {}
            other => bail!(
                "{shown}: unsupported URL parameter {other:?} (etlkit takes socket, user, \
                 password, ssl-mode, ssl-ca, ssl-cert and ssl-key)"
            ),
        }
    }
    // The [client] section of ~/.my.cnf, then the environment.
    if let Some(text) = option_file().and_then(|f| std::fs::read_to_string(f).ok()) {
        for (key, value) in parse_option_file(&text) {
            match key.as_str() {
                "user" if s.user.is_none() => s.user = Some(value),
                "password" if s.password.is_none() => s.password = Some(value),
                "host" if s.host.is_empty() => s.host = value,
                "port" if s.port == 0 => {
                    s.port = value.parse().map_err(|_| {
                        anyhow::anyhow!("~/.my.cnf: port {value:?} is not a number")
                    })?;
                }
                "socket" if s.socket.is_none() => s.socket = Some(value),
                "database" if s.database.is_none() => s.database = Some(value),
                k if s.tls.take(k, &value, "~/.my.cnf [client]")? => {}
                _ => {}
            }
        }
    }
    if s.password.is_none()
        && let Ok(p) = std::env::var("MYSQL_PWD")
    {
        s.password = Some(p);
    }
    if s.host.is_empty() {
        s.host = std::env::var("MYSQL_HOST").unwrap_or_else(|_| "localhost".into());
    }
    if s.port == 0 {
        s.port = match std::env::var("MYSQL_TCP_PORT") {
            Ok(p) => p.parse().context("MYSQL_TCP_PORT is not a port number")?,
            Err(_) => 3306,
        };
    }
    if s.user.is_none() {
        s.user = std::env::var("USER").ok();
    }
    s.tls.check(&shown)?;
    Ok(s)
}

/// The database a URL names; loads and state need one.
pub fn database(url: &str) -> Result<String> {
    settings(url)?.database.ok_or_else(|| {
        crate::error::usage(format!(
            "{}: name the database in the URL, e.g. mysql://user@host:3306/DATABASE",
            redact(url)
        ))
    })
}

/// Connects, with the session in UTC, utf8mb4 and a strict SQL mode (a
/// value the server would change is an error, never a warning). Every
/// connection etlkit makes to MySQL or MariaDB is made here.
pub fn connect(url: &str) -> Result<Conn> {
    let s = settings(url)?;
    let shown = redact(url);
    let mut opts = OptsBuilder::new()
        .ip_or_hostname(Some(s.host.clone()))
        .tcp_port(s.port)
        .user(s.user.clone())
        .pass(s.password.clone())
        .db_name(s.database.clone())
        .tcp_connect_timeout(Some(Duration::from_secs(30)))
        .prefer_socket(s.socket.is_some())
        .init(vec![
            "SET NAMES utf8mb4",
            "SET time_zone = '+00:00'",
            "SET sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,NO_BACKSLASH_ESCAPES,\
             NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO'",
        ]);
    if let Some(socket) = &s.socket {
        opts = opts.socket(Some(socket.clone()));
    }
    // Over a Unix socket there is no TLS: the socket is the secure
    // transport, as the client takes it.
    let ssl = if s.socket.is_some() {
        None
    } else {
        s.tls
            .ssl_opts()
            .with_context(|| format!("cannot connect to {shown}"))?
    };
    let tls = ssl.is_some();
    let attempt = match Conn::new(opts.clone().ssl_opts(ssl)) {
        // PREFERRED: plain text when the server has no TLS to offer.
        Err(mysql::Error::DriverError(mysql::DriverError::TlsNotSupported))
            if s.tls.mode() == Mode::Preferred =>
        {
            Conn::new(opts)
        }
        other => other,
    };
    attempt.map_err(|e| {
        let endpoint = if s.host.contains(':') {
            format!("[{}]:{}", s.host, s.port)
        } else {
            format!("{}:{}", s.host, s.port)
        };
        let reason = match &e {
            mysql::Error::DriverError(mysql::DriverError::TlsNotSupported) => {
                Some("the server does not support TLS".to_string())
            }
            _ if tls => tls_failure(&e),
            _ => None,
        };
        let password = s.password.as_deref();
        match reason {
            Some(reason) => anyhow::anyhow!(
                "cannot connect to {shown}: TLS with {endpoint} failed: {}",
                scrub(&reason, password)
            ),
            // MariaDB's require_secure_transport refuses plain text with
            // the same "Access denied" as a wrong password (MySQL names it,
            // error 3159), so the choice of plain text is named beside it.
            None if plain_text_refused(&e, s.tls.mode(), s.socket.is_some()) => {
                crate::error::Failure::new(
                    crate::error::Kind::Runtime,
                    format!(
                        "cannot connect to {shown}: {}",
                        scrub(&message(&e), password)
                    ),
                )
                .hint(
                    "with ssl-mode=DISABLED the login went in plain text, which a server \
                     requiring secure transport (MariaDB's require_secure_transport) refuses \
                     as access denied: drop ssl-mode=DISABLED, or check the user and password",
                )
                .into()
            }
            None => anyhow::anyhow!(
                "cannot connect to {shown}: {}",
                scrub(&message(&e), password)
            ),
        }
    })
}

/// Did the server deny a login that ssl-mode=DISABLED sent over TCP in
/// plain text? (Over a Unix socket there is no TLS to ask for.)
fn plain_text_refused(err: &mysql::Error, mode: Mode, socket: bool) -> bool {
    const ACCESS_DENIED: u16 = 1045;
    mode == Mode::Disabled
        && !socket
        && matches!(err, mysql::Error::MySqlError(e) if e.code == ACCESS_DENIED)
}

/// The TLS failure in a driver error, in words.
fn tls_failure(err: &mysql::Error) -> Option<String> {
    match err {
        mysql::Error::TlsError(e) => Some(crate::tls::failure(e).unwrap_or_else(|| e.to_string())),
        mysql::Error::IoError(e) => crate::tls::failure(e),
        mysql::Error::CodecError(e) => crate::tls::failure(e),
        _ => None,
    }
}

/// The server's or the driver's message for an error, in plain words:
/// never the driver's `DriverError { ... }` wrapping.
pub fn message(err: &mysql::Error) -> String {
    let text = match err {
        mysql::Error::MySqlError(e) => return format!("{} (error {})", e.message, e.code),
        mysql::Error::IoError(e) => e.to_string(),
        mysql::Error::CodecError(e) if e.to_string().contains("max_allowed_packet") => {
            "a packet (one statement, or one row read) is larger than the server's \
             max_allowed_packet"
                .to_string()
        }
        mysql::Error::CodecError(e) => e.to_string(),
        mysql::Error::DriverError(mysql::DriverError::CouldNotConnect(Some((addr, desc, _)))) => {
            format!("could not connect to {addr}: {desc}")
        }
        mysql::Error::DriverError(e) => e.to_string(),
        mysql::Error::UrlError(e) => e.to_string(),
        mysql::Error::TlsError(e) => crate::tls::failure(e).unwrap_or_else(|| e.to_string()),
        mysql::Error::FromRowError(_) | mysql::Error::FromValueError(_) => {
            "a value of an unexpected type".to_string()
        }
    };
    lowercase_first(&text)
}

/// `Could not ...` as `could not ...`, the way etlkit's messages start.
fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first)
            if first.is_ascii_uppercase()
                && !chars.next().is_some_and(|c| c.is_ascii_uppercase()) =>
        {
            let mut out = String::with_capacity(text.len());
            out.push(first.to_ascii_lowercase());
            out.push_str(&text[1..]);
            out
        }
        _ => text.to_string(),
    }
}

/// Removes a password from a message, should a driver ever echo it.
pub fn scrub(message: &str, password: Option<&str>) -> String {
    match password {
        Some(p) if !p.is_empty() => message.replace(p, "***"),
        _ => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("mysql://etl:s3cret@db.example:3306/wh?socket=/x&password=y"),
            "mysql://etl@db.example:3306/wh?socket=/x"
        );
        assert_eq!(redact("mariadb://h/db"), "mariadb://h/db");
        assert_eq!(redact("mysql://u:p@ss/w@h/db"), "mysql://***");
        assert!(settings("mysql://u:p@ss/w@h/db").is_err());
    }

    #[test]
    fn urls_are_parsed() {
        let s = settings("mysql://etl:p%40ss@db.example:3307/wh").unwrap();
        assert_eq!(s.user.as_deref(), Some("etl"));
        assert_eq!(s.password.as_deref(), Some("p@ss"));
        assert_eq!((s.host.as_str(), s.port), ("db.example", 3307));
        assert_eq!(s.database.as_deref(), Some("wh"));
        assert!(settings("mysql://h/db?compress=true").is_err());
        assert!(settings("mysql://h/db?ssl-mode=REQUIRE").is_err());
        assert!(settings("mysql://h/db?ssl-capath=/x").is_err());
        let s = settings("mysql://h/db?ssl-mode=VERIFY_IDENTITY&ssl_ca=%2Fca.pem").unwrap();
        assert_eq!(s.tls.mode(), Mode::VerifyIdentity);
        assert_eq!(s.tls.ca, Some(PathBuf::from("/ca.pem")));
        assert!(!format!("{s:?}").contains("p@ss"));
    }

    #[test]
    fn option_files_give_the_client_section() {
        let text = "[mysqld]\nport=1\n[client]\nuser = etl\npassword=\"a b\"\n# c\nssl-mode=DISABLED\n[mysql]\nuser=x\n";
        assert_eq!(
            parse_option_file(text),
            [
                ("user".to_string(), "etl".to_string()),
                ("password".to_string(), "a b".to_string()),
                ("ssl_mode".to_string(), "DISABLED".to_string()),
            ]
        );
    }
}
