//! Connecting to PostgreSQL the way libpq does: a `postgres://` URL, with
//! PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGOPTIONS, PGAPPNAME,
//! PGCONNECT_TIMEOUT and `~/.pgpass` (or PGPASSFILE, read by `pgpass.rs`)
//! filling what the URL leaves out, and TLS as libpq sets it up
//! (`tls.rs`: sslmode, sslrootcert, sslcert, sslkey, the PGSSL*
//! variables). The URL's libpq parameters are honoured, or refused when
//! etlkit cannot honour them; none is ignored. The URL a user typed may
//! hold a password, so everything we print uses [`redact`].

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result};
use postgres::config::{Host, SslMode};
use postgres::{Client, Config, NoTls};

use super::tls::{Mode, Params, Plan};
use crate::error::usage;

/// Does `text` look like a libpq key=value connection string?
pub fn is_keyword_string(text: &str) -> bool {
    let Some((key, _)) = text.trim_start().split_once('=') else {
        return false;
    };
    let key = key.trim_end();
    DRIVER_PARAMETERS.contains(&key)
        || super::tls::is_parameter(key)
        || ["passfile", "service", "gssencmode", "client_encoding"].contains(&key)
}

/// A key=value connection string without its password value (quoted or
/// not).
fn redact_keywords(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("password") {
        out.push_str(&rest[..at + "password".len()]);
        rest = &rest[at + "password".len()..];
        let trimmed = rest.trim_start();
        let Some(value) = trimmed.strip_prefix('=') else {
            continue;
        };
        let value = value.trim_start();
        let end = if let Some(quoted) = value.strip_prefix('\'') {
            let mut escaped = false;
            quoted
                .char_indices()
                .find(|&(_, c)| {
                    let close = c == '\'' && !escaped;
                    escaped = c == '\\' && !escaped;
                    close
                })
                .map_or(value.len(), |(i, _)| i + 2)
        } else {
            value.find(char::is_whitespace).unwrap_or(value.len())
        };
        out.push_str("=***");
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

/// The URL without its password (for messages, logs and control lines);
/// only `postgres://***` for a URL whose user info is ambiguous (which
/// [`config`] refuses).
pub fn redact(url: &str) -> String {
    if let Some(shown) = crate::shown::refused_url(url) {
        return shown;
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return redact_keywords(url);
    };
    let (userinfo, rest) = split_userinfo(rest);
    let (host, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match userinfo {
        Some(info) => {
            let user = info.split(':').next().unwrap_or_default();
            format!("{user}@{host}")
        }
        None => host.to_string(),
    };
    let tail: String = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|kv| {
                    let key = kv.split('=').next().unwrap_or_default();
                    !crate::percent::decode_lenient(key)
                        .to_ascii_lowercase()
                        .ends_with("password")
                })
                .collect();
            if kept.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Splits what follows `scheme://` into user info and the rest. User info
/// ends at an '@'. The driver takes the first one, and a password may hold
/// '/' or '?'; a password may also hold an unencoded '@', so all up to the
/// last '@' before the authority ends (the first '/' or '?' after the first
/// '@') counts as user info, to be hidden.
fn split_userinfo(rest: &str) -> (Option<&str>, &str) {
    match rest.find('@') {
        Some(first) => {
            let end = rest[first..]
                .find(['/', '?'])
                .map_or(rest.len(), |i| first + i);
            let last = rest[..end].rfind('@').unwrap_or(first);
            (Some(&rest[..last]), &rest[last + 1..])
        }
        None => (None, rest),
    }
}

/// libpq parameters the driver honours as they are written.
const DRIVER_PARAMETERS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "options",
    "application_name",
    "connect_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "tcp_user_timeout",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
    "sslnegotiation",
];

/// What the URL and the environment ask for beyond what the driver parses.
#[derive(Default)]
struct Extras {
    passfile: Option<PathBuf>,
    fallback_application_name: Option<String>,
    connect_timeout: bool,
    tls: Params,
}

/// Splits the URL's parameters into those the driver takes as written and
/// those etlkit handles itself; refuses the ones it cannot honour.
fn sort_parameters(url: &str, extras: &mut Extras) -> Result<String> {
    let shown = redact(url);
    // The driver's user info runs to the first '@'; the query starts at
    // the first '?' after it.
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let from = url[after_scheme..]
        .find('@')
        .map_or(after_scheme, |i| after_scheme + i + 1);
    let Some(q) = url[from..].find('?').map(|i| from + i) else {
        return Ok(url.to_string());
    };
    let mut kept: Vec<String> = Vec::new();
    for pair in url[q + 1..].split('&').filter(|p| !p.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = crate::percent::decode_lenient(raw_key);
        let value = crate::percent::decode_lenient(raw_value);
        match key.as_str() {
            "connect_timeout" => {
                extras.connect_timeout = true;
                kept.push(pair.to_string());
            }
            k if DRIVER_PARAMETERS.contains(&k) => kept.push(pair.to_string()),
            "keepalives_count" => kept.push(format!("keepalives_retries={raw_value}")),
            "passfile" => extras.passfile = Some(PathBuf::from(value)),
            "fallback_application_name" => extras.fallback_application_name = Some(value),
            "gssencmode" => match value.as_str() {
                "disable" | "prefer" => {}
                _ => {
                    return Err(usage(format!(
                        "{shown}: gssencmode={value} needs GSSAPI encryption, which this build \
                         of etlkit does not include"
                    )));
                }
            },
            "client_encoding" => {
                let v = value.to_ascii_uppercase().replace('-', "");
                if v != "UTF8" && v != "UNICODE" && v != "AUTO" {
                    return Err(usage(format!(
                        "{shown}: client_encoding={value} is not supported: etlkit talks to \
                         the server in UTF8"
                    )));
                }
            }
            k if extras.tls.take(k, &value, &shown)? => {}
            other => {
                return Err(crate::error::Failure::new(
                    crate::error::Kind::Usage,
                    format!("{shown}: unsupported connection parameter {other:?}"),
                )
                .hint(
                    "etlkit takes host, hostaddr, port, dbname, user, password, passfile, \
                     options, application_name, fallback_application_name, connect_timeout, \
                     keepalives*, tcp_user_timeout, target_session_attrs, channel_binding, \
                     load_balance_hosts, sslmode, sslrootcert, sslcert, sslkey, sslcertmode, \
                     sslsni, sslnegotiation, ssl_min_protocol_version, ssl_max_protocol_version",
                )
                .into());
            }
        }
    }
    let base = &url[..q];
    Ok(if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    })
}

/// Builds the connection settings for `url`, filling gaps from the
/// environment and the pgpass file as libpq would, and the TLS to use.
pub fn config(url: &str) -> Result<(Config, Plan)> {
    if !url.contains("://") {
        return Err(crate::error::Failure::new(
            crate::error::Kind::Usage,
            format!(
                "{}: key=value connection strings are not supported",
                redact(url)
            ),
        )
        .hint("write it as a URL: postgres://USER@HOST:PORT/DATABASE?PARAM=VALUE")
        .into());
    }
    crate::shown::check_userinfo(url)?;
    let mut extras = Extras::default();
    let for_driver = sort_parameters(url, &mut extras)?;
    let mut config = Config::from_str(&for_driver).map_err(|e| {
        usage(format!(
            "bad PostgreSQL URL {}: {}",
            redact(url),
            scrub(&db_message(&e), url)
        ))
    })?;
    if config
        .get_hosts()
        .iter()
        .any(|h| matches!(h, Host::Tcp(name) if name.contains('@')))
    {
        return Err(crate::error::Failure::new(
            crate::error::Kind::Usage,
            format!(
                "bad PostgreSQL URL {}: the host name holds '@'",
                redact(url)
            ),
        )
        .hint("write an '@' in the user name or password as %40")
        .into());
    }
    if config.get_hosts().is_empty() {
        let host = std::env::var("PGHOST").unwrap_or_else(|_| "localhost".into());
        if host.starts_with('/') {
            config.host_path(host);
        } else {
            config.host(&host);
        }
    }
    if config.get_ports().is_empty()
        && let Ok(port) = std::env::var("PGPORT")
    {
        let port: u16 = port.parse().context("PGPORT is not a port number")?;
        config.port(port);
    }
    if config.get_user().is_none() {
        let user = std::env::var("PGUSER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "postgres".into());
        config.user(&user);
    }
    if config.get_dbname().is_none() {
        let db = std::env::var("PGDATABASE")
            .ok()
            .or_else(|| config.get_user().map(String::from));
        if let Some(db) = db {
            config.dbname(&db);
        }
    }
    if config.get_password().is_none() {
        if let Ok(password) = std::env::var("PGPASSWORD") {
            config.password(password);
        } else if let Some(text) =
            super::pgpass::file(extras.passfile.as_ref()).and_then(|f| super::pgpass::read(&f))
        {
            let host = match config.get_hosts().first() {
                Some(Host::Tcp(h)) => h.clone(),
                _ => "localhost".into(),
            };
            let port = config.get_ports().first().copied().unwrap_or(5432);
            let db = config.get_dbname().unwrap_or_default().to_string();
            let user = config.get_user().unwrap_or_default().to_string();
            if let Some(p) = super::pgpass::lookup(&text, &host, port, &db, &user) {
                config.password(p);
            }
        }
    }
    if config.get_options().is_none()
        && let Ok(options) = std::env::var("PGOPTIONS")
    {
        config.options(&options);
    }
    let tls = super::tls::plan(&extras.tls)?;
    if !extras.connect_timeout
        && let Ok(seconds) = std::env::var("PGCONNECT_TIMEOUT")
    {
        let seconds: i64 = seconds
            .trim()
            .parse()
            .map_err(|_| usage("PGCONNECT_TIMEOUT is not a number of seconds"))?;
        extras.connect_timeout = true;
        if seconds > 0 {
            config.connect_timeout(Duration::from_secs(seconds as u64));
        }
    }
    if !extras.connect_timeout {
        config.connect_timeout(Duration::from_secs(30));
    }
    if config.get_application_name().is_none() {
        let name = std::env::var("PGAPPNAME")
            .ok()
            .or(extras.fallback_application_name)
            .unwrap_or_else(|| "etlkit".into());
        config.application_name(&name);
    }
    Ok((config, tls))
}

/// Connects, with the session in UTC so that timestamps come out the same
/// wherever the job runs. Every connection etlkit makes to PostgreSQL
/// (source, sink, state, the run record) is made here.
pub fn connect(url: &str) -> Result<Client> {
    let (mut config, tls) = config(url)?;
    let shown = redact(url);
    // libpq ignores sslmode over a Unix socket: the server has no TLS there.
    let mode = if config
        .get_hosts()
        .iter()
        .all(|h| !matches!(h, Host::Tcp(_)))
    {
        Mode::Disable
    } else {
        tls.mode
    };
    let connector = || {
        tls.connector()
            .with_context(|| format!("cannot connect to {shown}"))
    };
    let attempt = match mode {
        Mode::Disable => config.ssl_mode(SslMode::Disable).connect(NoTls),
        // Plain text first; TLS when the server refuses that (as libpq).
        Mode::Allow => match config.ssl_mode(SslMode::Disable).connect(NoTls) {
            Err(e) if e.as_db_error().is_some() => {
                let connector = connector()?;
                config.ssl_mode(SslMode::Require).connect(connector)
            }
            other => other,
        },
        Mode::Prefer => {
            let connector = connector()?;
            config.ssl_mode(SslMode::Prefer).connect(connector)
        }
        Mode::Require | Mode::VerifyCa | Mode::VerifyFull => {
            let connector = connector()?;
            config.ssl_mode(SslMode::Require).connect(connector)
        }
    };
    let mut client = attempt.map_err(|e| connect_error(&e, url, &config))?;
    client
        .batch_execute("SET TIME ZONE 'UTC'; SET DateStyle = ISO")
        .context("cannot set up the session")?;
    Ok(client)
}

/// Why a connection failed: a TLS failure in words, naming the server's
/// host and port; else the server's or the driver's message.
fn connect_error(err: &postgres::Error, url: &str, config: &Config) -> anyhow::Error {
    let shown = redact(url);
    let tls = crate::tls::failure(err).or_else(|| {
        // The driver's own TLS errors ("server does not support TLS").
        let text = db_message(err);
        text.strip_prefix("error performing TLS handshake: ")
            .map(String::from)
    });
    match tls {
        Some(reason) => anyhow::anyhow!(
            "cannot connect to {shown}: TLS with {} failed: {}",
            endpoints(config),
            scrub(&reason, url)
        ),
        None => anyhow::anyhow!(
            "cannot connect to {shown}: {}",
            scrub(&db_message(err), url)
        ),
    }
}

/// The servers a configuration names, as `host:port`.
fn endpoints(config: &Config) -> String {
    let ports = config.get_ports();
    config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) if name.contains(':') => format!("[{name}]:{port}"),
                Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                Host::Unix(path) => path.display().to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The server's message for an error (`database "x" does not exist`), or
/// the driver's error with its causes (`error connecting to server:
/// Connection refused`): never a bare "db error".
pub fn db_message(err: &postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        return db.message().to_string();
    }
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Turns a driver error into "`what`: the server's message".
pub fn pg_err(what: &str) -> impl Fn(postgres::Error) -> anyhow::Error + '_ {
    move |e| anyhow::anyhow!("{what}: {}", db_message(&e))
}

/// Removes a URL's password from a message, should a driver ever echo it.
pub fn scrub(message: &str, url: &str) -> String {
    let Some((_, rest)) = url.split_once("://") else {
        return message.to_string();
    };
    let mut secrets: Vec<String> = Vec::new();
    if let (Some(info), _) = split_userinfo(rest)
        && let Some((_, password)) = info.split_once(':')
    {
        secrets.push(password.to_string());
        secrets.push(crate::percent::decode_lenient(password));
        // What the driver takes for the password (up to the first '@'),
        // unless so short that hiding it would garble the message.
        let first = password.split('@').next().unwrap_or_default();
        if first.len() >= 4 {
            secrets.push(crate::percent::decode_lenient(first));
        }
    }
    if let Some((_, query)) = rest.split_once('?') {
        for pair in query.split('&') {
            if let Some((key, value)) = pair.split_once('=')
                && crate::percent::decode_lenient(key)
                    .to_ascii_lowercase()
                    .ends_with("password")
            {
                secrets.push(value.to_string());
                secrets.push(crate::percent::decode_lenient(value));
            }
        }
    }
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = message.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret.as_str(), "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://etl:s3cret@db.example:5432/wh?sslmode=disable&password=x"),
            "postgres://etl@db.example:5432/wh?sslmode=disable"
        );
        assert_eq!(redact("postgresql://h/db"), "postgresql://h/db");
        assert_eq!(redact("postgres://u:p@h"), "postgres://u@h");
        assert_eq!(redact("postgres://u:a%2Fb%40c@h/db"), "postgres://u@h/db");
        // Ambiguous user info (config refuses it): nothing but the scheme.
        assert_eq!(redact("postgres://u:ab/cd?e@h/db"), "postgres://***");
        assert_eq!(
            redact("postgres://u:p@Sup3rS3cr3t@host/db"),
            "postgres://***"
        );
        assert_eq!(redact("postgres://u:a/b@c@h:5/db?x=1"), "postgres://***");
        assert_eq!(redact("postgres://u:p@ss/w?rd@host/db"), "postgres://***");
    }

    #[test]
    fn key_value_strings_are_recognised_and_redacted() {
        assert!(is_keyword_string("host=db dbname=wh"));
        assert!(is_keyword_string("dbname = wh"));
        assert!(!is_keyword_string("wh.db"));
        assert!(!is_keyword_string("a=b.db"));
        assert_eq!(
            redact("host=db password=s3cret user=u"),
            "host=db password=*** user=u"
        );
        assert_eq!(
            redact("host=db password = 'a b\\' c' user=u"),
            "host=db password=*** user=u"
        );
        assert!(config("host=db dbname=wh").is_err());
    }

    #[test]
    fn url_parameters_are_honoured() {
        let (c, tls) = config(
            "postgres://u@h/db?options=-csearch_path%3Dstaging&application_name=job&\
             connect_timeout=5&passfile=/nonexistent&keepalives_count=3&sslmode=allow",
        )
        .expect("supported parameters");
        assert_eq!(tls.mode, Mode::Allow);
        assert_eq!(c.get_options(), Some("-csearch_path=staging"));
        assert_eq!(c.get_application_name(), Some("job"));
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(5)));
        assert_eq!(c.get_keepalives_retries(), Some(3));
        let (c, _) =
            config("postgres://u@h/db?fallback_application_name=nightly").expect("fallback");
        assert_eq!(c.get_application_name(), Some("nightly"));
        for bad in [
            "postgres://u@h/db?service=x",
            "postgres://u@h/db?sslmode=required",
            "postgres://u@h/db?sslpassword=x",
            "postgres://u@h/db?gssencmode=require",
            "postgres://u@h/db?keepalives_retries=3",
        ] {
            let err = config(bad).expect_err(bad);
            assert_eq!(crate::error::exit_code_for(&err), 2, "{bad}");
        }
    }
}
