//! Connecting to PostgreSQL the way libpq does: a `postgres://` URL, with
//! PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD and `~/.pgpass` (or
//! PGPASSFILE) filling what the URL leaves out. The URL a user typed may
//! hold a password, so everything we print uses [`redact`].

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use postgres::config::{Host, SslMode};
use postgres::{Client, Config, NoTls};

/// The URL without its password (for messages, logs and control lines).
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // Like the driver, user info runs to the first '@' (a password may
    // hold '/' or '?'); the host part ends at the next '/' or '?'.
    let (userinfo, rest) = match rest.split_once('@') {
        Some((info, host_and_more)) => (Some(info), host_and_more),
        None => (None, rest),
    };
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
                .filter(|kv| !kv.to_ascii_lowercase().starts_with("password="))
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

fn pgpass_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PGPASSFILE") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass"))
}

/// Looks a password up in a pgpass file: `host:port:database:user:password`
/// lines, `*` matching anything, `\:` and `\\` escaped.
pub fn pgpass_lookup(text: &str, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(next) = chars.next() {
                        field.push(next);
                    }
                }
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
                _ => field.push(c),
            }
        }
        fields.push(field);
        if fields.len() != 5 {
            continue;
        }
        let port = port.to_string();
        let wanted = [host, port.as_str(), db, user];
        if fields[..4]
            .iter()
            .zip(wanted)
            .all(|(pattern, value)| pattern == "*" || pattern == value)
        {
            return Some(fields[4].clone());
        }
    }
    None
}

/// Builds the connection settings for `url`, filling gaps from the
/// environment and the pgpass file as libpq would.
pub fn config(url: &str) -> Result<Config> {
    let mut config = Config::from_str(url)
        .map_err(|e| anyhow::anyhow!("bad PostgreSQL URL {}: {e}", redact(url)))?;
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
        } else if let Some(text) = pgpass_file().and_then(|f| std::fs::read_to_string(f).ok()) {
            let host = match config.get_hosts().first() {
                Some(Host::Tcp(h)) => h.clone(),
                _ => "localhost".into(),
            };
            let port = config.get_ports().first().copied().unwrap_or(5432);
            let db = config.get_dbname().unwrap_or_default().to_string();
            let user = config.get_user().unwrap_or_default().to_string();
            if let Some(p) = pgpass_lookup(&text, &host, port, &db, &user) {
                config.password(p);
            }
        }
    }
    if config.get_ssl_mode() == SslMode::Require {
        bail!(
            "{}: sslmode=require needs TLS, which this build of etlkit does not include; \
             connect over a trusted network or a local socket",
            redact(url)
        );
    }
    config.connect_timeout(Duration::from_secs(30));
    config.application_name("etlkit");
    Ok(config)
}

/// Connects, with the session in UTC so that timestamps come out the same
/// wherever the job runs.
pub fn connect(url: &str) -> Result<Client> {
    let config = config(url)?;
    let mut client = config.connect(NoTls).map_err(|e| {
        anyhow::anyhow!(
            "cannot connect to {}: {}",
            redact(url),
            scrub(&e.to_string(), url)
        )
    })?;
    client
        .batch_execute("SET TIME ZONE 'UTC'; SET DateStyle = ISO")
        .context("cannot set up the session")?;
    Ok(client)
}

/// Removes a URL's password from a message, should a driver ever echo it.
pub fn scrub(message: &str, url: &str) -> String {
    match Config::from_str(url)
        .ok()
        .and_then(|c| c.get_password().map(<[u8]>::to_vec))
    {
        Some(pw) if !pw.is_empty() => {
            message.replace(&String::from_utf8_lossy(&pw).into_owned(), "***")
        }
        _ => message.to_string(),
    }
}

/// Quotes an identifier for PostgreSQL.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
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
        assert_eq!(redact("postgres://u:ab/cd?e@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn pgpass_matching() {
        let text =
            "# comment\nother:5432:*:etl:nope\ndb.example:*:wh:etl:pa\\:ss\n*:*:*:*:fallback\n";
        assert_eq!(
            pgpass_lookup(text, "db.example", 5432, "wh", "etl").as_deref(),
            Some("pa:ss")
        );
        assert_eq!(
            pgpass_lookup(text, "x", 1, "y", "z").as_deref(),
            Some("fallback")
        );
        assert_eq!(pgpass_lookup("h:1:d:u:p\n", "h", 2, "d", "u"), None);
    }
}
