//! TLS for MySQL and MariaDB connections, named as the `mysql` client
//! names it: `ssl-mode` (DISABLED, PREFERRED, REQUIRED, VERIFY_CA,
//! VERIFY_IDENTITY), `ssl-ca`, `ssl-cert` and `ssl-key`, from the URL or
//! the `[client]` section of `~/.my.cnf` (MariaDB's `ssl`, `skip-ssl` and
//! `ssl-verify-server-cert` too). The driver does the handshake; the files
//! are read here first, so that a bad one is named.

use std::path::PathBuf;

use anyhow::Result;
use mysql::{ClientIdentity, SslOpts};

use crate::error::usage;

/// The `mysql` client's ssl-mode values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Plain text only.
    Disabled,
    /// TLS if the server offers it, else plain text (the default).
    Preferred,
    /// TLS, whatever certificate the server shows.
    Required,
    /// TLS, and the certificate must chain to `ssl-ca`.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host.
    VerifyIdentity,
}

impl Mode {
    fn parse(text: &str, origin: &str) -> Result<Mode> {
        Ok(match text.to_ascii_uppercase().as_str() {
            "DISABLED" => Mode::Disabled,
            "PREFERRED" => Mode::Preferred,
            "REQUIRED" => Mode::Required,
            "VERIFY_CA" => Mode::VerifyCa,
            "VERIFY_IDENTITY" => Mode::VerifyIdentity,
            _ => {
                return Err(usage(format!(
                    "{origin}: invalid value for ssl-mode: {text:?} (DISABLED, PREFERRED, \
                     REQUIRED, VERIFY_CA or VERIFY_IDENTITY)"
                )));
            }
        })
    }
}

/// What the URL and the option file say about TLS; the first to say a
/// thing (the URL) wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tls {
    mode: Option<Mode>,
    /// The CA certificate file (`ssl-ca`).
    pub ca: Option<PathBuf>,
    /// The client certificate file (`ssl-cert`).
    pub cert: Option<PathBuf>,
    /// The client certificate's key file (`ssl-key`).
    pub key: Option<PathBuf>,
}

/// Is `value` an option file's or URL's "on"?
fn on(key: &str, value: &str, origin: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "" | "1" | "true" | "on" => Ok(true),
        "0" | "false" | "off" => Ok(false),
        _ => Err(usage(format!(
            "{origin}: invalid value for {key}: {value:?} (1 or 0)"
        ))),
    }
}

impl Tls {
    /// Takes an option (its name with `_` for `-`, lowercase) if it is
    /// about TLS (`Ok(true)`); refuses the TLS options etlkit does not
    /// support. `origin` names where it was written, for messages.
    pub fn take(&mut self, key: &str, value: &str, origin: &str) -> Result<bool> {
        let path = || Some(PathBuf::from(value));
        match key {
            "ssl_mode" | "sslmode" => {
                let mode = Mode::parse(value, origin)?;
                self.mode.get_or_insert(mode);
            }
            "ssl_ca" => {
                if self.ca.is_none() {
                    self.ca = path();
                }
            }
            "ssl_cert" => {
                if self.cert.is_none() {
                    self.cert = path();
                }
            }
            "ssl_key" => {
                if self.key.is_none() {
                    self.key = path();
                }
            }
            "ssl" => {
                let mode = if on(key, value, origin)? {
                    Mode::Required
                } else {
                    Mode::Disabled
                };
                self.mode.get_or_insert(mode);
            }
            "skip_ssl" => {
                if on(key, value, origin)? {
                    self.mode.get_or_insert(Mode::Disabled);
                }
            }
            "ssl_verify_server_cert" => {
                if on(key, value, origin)? {
                    self.mode.get_or_insert(Mode::VerifyIdentity);
                }
            }
            k if k.starts_with("ssl") || k.starts_with("tls") => {
                return Err(usage(format!(
                    "{origin}: {k} is not supported (etlkit takes ssl-mode, ssl-ca, ssl-cert \
                     and ssl-key)"
                )));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The ssl-mode in force: the one given, else VERIFY_CA when a CA
    /// certificate is given, else PREFERRED (as the `mysql` client).
    pub fn mode(&self) -> Mode {
        match (self.mode, &self.ca) {
            (Some(mode), _) => mode,
            (None, Some(_)) => Mode::VerifyCa,
            (None, None) => Mode::Preferred,
        }
    }

    /// Checks that a client certificate comes with its key.
    pub fn check(&self, origin: &str) -> Result<()> {
        match (&self.cert, &self.key) {
            (Some(_), None) => Err(usage(format!("{origin}: ssl-cert needs ssl-key too"))),
            (None, Some(_)) => Err(usage(format!("{origin}: ssl-key needs ssl-cert too"))),
            _ => Ok(()),
        }
    }

    /// The driver's TLS options (`None`: plain text), after reading each
    /// file once so that a missing or unreadable one is named.
    pub fn ssl_opts(&self) -> Result<Option<SslOpts>> {
        let mode = self.mode();
        if mode == Mode::Disabled {
            return Ok(None);
        }
        let verify = matches!(mode, Mode::VerifyCa | Mode::VerifyIdentity);
        let mut opts = SslOpts::default();
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            crate::tls::Identity::read(cert, "ssl-cert", key, "ssl-key")?;
            opts = opts.with_client_identity(Some(ClientIdentity::new(cert.clone(), key.clone())));
        }
        if verify && let Some(ca) = &self.ca {
            crate::tls::read_certificates(ca, "ssl-ca")?;
            opts = opts.with_root_cert_path(Some(ca.clone()));
        }
        Ok(Some(match mode {
            Mode::VerifyIdentity => opts,
            Mode::VerifyCa => opts.with_danger_skip_domain_validation(true),
            _ => opts.with_danger_accept_invalid_certs(true),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_taken_first_come() {
        let mut t = Tls::default();
        assert!(t.take("ssl_mode", "verify_identity", "u").expect("mode"));
        assert!(t.take("ssl_mode", "DISABLED", "f").expect("mode"));
        assert!(t.take("ssl_ca", "/a.pem", "u").expect("ca"));
        assert!(t.take("ssl_ca", "/b.pem", "f").expect("ca"));
        assert_eq!(t.mode(), Mode::VerifyIdentity);
        assert_eq!(t.ca, Some(PathBuf::from("/a.pem")));
        assert!(!t.take("socket", "/s", "u").expect("not ours"));
        let mut t = Tls::default();
        t.take("ssl_ca", "/a.pem", "u").expect("ca");
        assert_eq!(t.mode(), Mode::VerifyCa);
        assert_eq!(Tls::default().mode(), Mode::Preferred);
        for (k, v) in [
            ("ssl_mode", "REQUIRE"),
            ("ssl_capath", "/x"),
            ("ssl", "maybe"),
        ] {
            let err = Tls::default().take(k, v, "u").expect_err(k);
            assert_eq!(crate::error::exit_code_for(&err), 2, "{k}");
        }
        let mut t = Tls::default();
        t.take("ssl_cert", "/c.pem", "u").expect("cert");
        assert!(t.check("u").is_err());
    }
}
