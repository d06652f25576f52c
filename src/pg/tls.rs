//! TLS for PostgreSQL connections, set up the way libpq sets it up:
//! `sslmode` with libpq's six meanings, `sslrootcert` (a file, or `system`
//! for the Mozilla roots built into etlkit), `sslcert` and `sslkey`, the
//! `PGSSL*` variables for what the URL leaves out, and the files libpq
//! looks for in `~/.postgresql/` (`root.crt`, `postgresql.crt`,
//! `postgresql.key`). The checks themselves are `crate::tls`'s.

use std::path::{Path, PathBuf};

use anyhow::Result;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::usage;
use crate::tls::{Check, Identity, Roots};

/// The TLS parameters etlkit honours, each with the variable that gives
/// it when the URL does not.
const HONOURED: &[(&str, &str)] = &[
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("sslcertmode", "PGSSLCERTMODE"),
    ("sslsni", "PGSSLSNI"),
    ("ssl_min_protocol_version", "PGSSLMINPROTOCOLVERSION"),
    ("ssl_max_protocol_version", "PGSSLMAXPROTOCOLVERSION"),
    ("sslcompression", "PGSSLCOMPRESSION"),
    ("requiressl", "PGREQUIRESSL"),
];

/// libpq's TLS parameters that etlkit refuses, and why.
const REFUSED: &[(&str, &str)] = &[
    (
        "sslpassword",
        "encrypted client keys are not supported: decrypt the key \
         (openssl pkey -in KEY -out PLAIN.key) and keep it mode 0600",
    ),
    ("sslcrl", "certificate revocation lists are not supported"),
    (
        "sslcrldir",
        "certificate revocation lists are not supported",
    ),
];

/// Is `key` one of libpq's TLS parameters?
pub fn is_parameter(key: &str) -> bool {
    HONOURED.iter().any(|(k, _)| *k == key) || REFUSED.iter().any(|(k, _)| *k == key)
}

/// The TLS parameters of a URL, each with where it came from (the URL as
/// shown, or a variable's name) for messages.
#[derive(Default)]
pub struct Params {
    given: Vec<(&'static str, String, String)>,
}

impl Params {
    /// Takes `key=value` from the URL shown as `shown` if it is a TLS
    /// parameter (`Ok(true)`); refuses the ones etlkit cannot honour.
    pub fn take(&mut self, key: &str, value: &str, shown: &str) -> Result<bool> {
        if let Some((_, why)) = REFUSED.iter().find(|(k, _)| *k == key) {
            return Err(usage(format!("{shown}: {key}: {why}")));
        }
        let Some((name, _)) = HONOURED.iter().find(|(k, _)| *k == key) else {
            return Ok(false);
        };
        self.given.retain(|(k, _, _)| k != name);
        self.given
            .push((name, value.to_string(), shown.to_string()));
        Ok(true)
    }

    /// A parameter's value and where it came from: the URL, else its
    /// variable.
    fn get(&self, key: &str) -> Option<(String, String)> {
        if let Some((_, value, origin)) = self.given.iter().find(|(k, _, _)| *k == key) {
            return Some((value.clone(), origin.clone()));
        }
        let (_, var) = HONOURED.iter().find(|(k, _)| *k == key)?;
        let value = std::env::var(var).ok()?;
        Some((value, var.to_string()))
    }
}

/// libpq's sslmode values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Plain text only.
    Disable,
    /// Plain text first; TLS if the server refuses that.
    Allow,
    /// TLS if the server offers it, else plain text (the default).
    Prefer,
    /// TLS; the certificate is checked only against a root certificate
    /// file that exists.
    Require,
    /// TLS, and the certificate must chain to the root certificate.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host.
    VerifyFull,
}

impl Mode {
    fn parse(text: &str, origin: &str) -> Result<Mode> {
        Ok(match text {
            "disable" => Mode::Disable,
            "allow" => Mode::Allow,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            other => {
                return Err(usage(format!(
                    "{origin}: invalid value for sslmode: {other:?} (disable, allow, prefer, \
                     require, verify-ca or verify-full)"
                )));
            }
        })
    }
}

/// Where the root certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Root {
    /// `sslrootcert=system`.
    System,
    /// A file, named (`sslrootcert`, PGSSLROOTCERT) or libpq's default.
    File { path: Option<PathBuf>, named: bool },
}

/// The TLS a connection uses, settled from the URL and the environment
/// before any I/O: a bad value is a usage error.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The sslmode.
    pub mode: Mode,
    root: Root,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_cert: bool,
    versions: Vec<&'static rustls::SupportedProtocolVersion>,
    sni: bool,
}

/// `~/.postgresql/NAME`, where libpq looks for its TLS files.
fn default_file(name: &str) -> Option<PathBuf> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".postgresql").join(name))
}

/// Works out the TLS plan for `params`, with libpq's defaults.
pub fn plan(params: &Params) -> Result<Plan> {
    let flag = |key: &str| -> Result<Option<bool>> {
        match params.get(key) {
            None => Ok(None),
            Some((v, _)) if v == "1" => Ok(Some(true)),
            Some((v, _)) if v == "0" => Ok(Some(false)),
            Some((v, origin)) => Err(usage(format!(
                "{origin}: invalid value for {key}: {v:?} (0 or 1)"
            ))),
        }
    };
    let system = params
        .get("sslrootcert")
        .is_some_and(|(value, _)| value == "system");
    let mode = match params.get("sslmode") {
        Some((text, origin)) => Mode::parse(&text, &origin)?,
        None if flag("requiressl")? == Some(true) => Mode::Require,
        None if system => Mode::VerifyFull,
        None => Mode::Prefer,
    };
    if system && mode != Mode::VerifyFull {
        let (_, origin) = params.get("sslmode").unwrap_or_default();
        return Err(usage(format!(
            "{origin}: sslmode other than verify-full may not be used with sslrootcert=system \
             (use verify-full)"
        )));
    }
    if flag("sslcompression")? == Some(true) {
        let (_, origin) = params.get("sslcompression").unwrap_or_default();
        return Err(usage(format!(
            "{origin}: sslcompression=1: TLS compression is not supported (nor by current \
             servers)"
        )));
    }
    let client_cert = match params.get("sslcertmode") {
        None => true,
        Some((v, _)) if v == "allow" => true,
        Some((v, _)) if v == "disable" => false,
        Some((v, origin)) if v == "require" => {
            return Err(usage(format!(
                "{origin}: sslcertmode=require is not supported (allow or disable)"
            )));
        }
        Some((v, origin)) => {
            return Err(usage(format!(
                "{origin}: invalid value for sslcertmode: {v:?} (disable, allow or require)"
            )));
        }
    };
    let min = params.get("ssl_min_protocol_version");
    let max = params.get("ssl_max_protocol_version");
    let versions = crate::tls::versions(
        min.as_ref().map(|(v, _)| v.as_str()),
        max.as_ref().map(|(v, _)| v.as_str()),
    )
    .map_err(|e| {
        let origin = min.as_ref().or(max.as_ref()).map(|(_, o)| o.as_str());
        usage(format!(
            "{}: ssl_min_protocol_version/ssl_max_protocol_version: {e}",
            origin.unwrap_or_default()
        ))
    })?;
    let root = if system {
        Root::System
    } else {
        match params.get("sslrootcert") {
            Some((path, _)) => Root::File {
                path: Some(PathBuf::from(path)),
                named: true,
            },
            None => Root::File {
                path: default_file("root.crt"),
                named: false,
            },
        }
    };
    let path = |key: &str, default: &str| {
        params
            .get(key)
            .map(|(p, _)| PathBuf::from(p))
            .or_else(|| default_file(default))
    };
    Ok(Plan {
        mode,
        root,
        cert: path("sslcert", "postgresql.crt"),
        key: path("sslkey", "postgresql.key"),
        client_cert,
        versions,
        sni: flag("sslsni")?.unwrap_or(true),
    })
}

impl Plan {
    /// The TLS connector for this plan: reads the root certificate and the
    /// client certificate and key (where they exist, as libpq does).
    pub fn connector(&self) -> Result<MakeRustlsConnect> {
        let (check, roots) = self.check()?;
        let identity = self.identity()?;
        let mut config = crate::tls::client_config(check, &roots, identity, &self.versions)?;
        config.enable_sni = self.sni;
        // PostgreSQL 17's direct TLS negotiation needs it; older servers
        // ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(MakeRustlsConnect::new(config))
    }

    /// How far the server's certificate is checked, and against what.
    fn check(&self) -> Result<(Check, Roots)> {
        let full = self.mode == Mode::VerifyFull;
        let verify = matches!(self.mode, Mode::VerifyCa | Mode::VerifyFull);
        let depth = if full {
            Check::ChainAndName
        } else {
            Check::Chain
        };
        match &self.root {
            Root::System => Ok((depth, Roots::Builtin)),
            // As libpq: a root certificate file that exists is used in
            // every mode (require then checks the chain, as verify-ca).
            Root::File {
                path: Some(path), ..
            } if path.exists() => Ok((
                depth,
                Roots::File {
                    path: path.clone(),
                    what: "root certificate",
                },
            )),
            _ if !verify => Ok((Check::Nothing, Roots::Builtin)),
            Root::File {
                path: Some(path),
                named,
            } => Err(crate::error::Failure::new(
                crate::error::Kind::Usage,
                format!(
                    "root certificate file {} does not exist{}",
                    path.display(),
                    if *named {
                        ""
                    } else {
                        " (the default place, as no sslrootcert was given)"
                    }
                ),
            )
            .hint(
                "give the server's CA certificate with sslrootcert=FILE (or PGSSLROOTCERT), \
                 use sslrootcert=system for the public authorities, or sslmode=require to \
                 encrypt without checking the certificate",
            )
            .into()),
            Root::File { path: None, .. } => Err(crate::error::Failure::new(
                crate::error::Kind::Usage,
                format!(
                    "sslmode={} needs a root certificate, and there is no home directory to \
                     find ~/.postgresql/root.crt in",
                    if full { "verify-full" } else { "verify-ca" }
                ),
            )
            .hint("give the server's CA certificate with sslrootcert=FILE")
            .into()),
        }
    }

    /// The client certificate and key, as libpq finds them: none when the
    /// certificate file does not exist.
    fn identity(&self) -> Result<Option<Identity>> {
        let Some(cert) = self
            .cert
            .as_ref()
            .filter(|c| self.client_cert && c.exists())
        else {
            return Ok(None);
        };
        let key = match &self.key {
            Some(key) if key.exists() => key,
            Some(key) => anyhow::bail!(
                "client certificate {} given, but its private key file {} does not exist",
                cert.display(),
                key.display()
            ),
            None => anyhow::bail!(
                "client certificate {} given, but no private key file (sslkey)",
                cert.display()
            ),
        };
        check_key_access(key)?;
        Ok(Some(Identity::read(
            cert,
            "client certificate",
            key,
            "client key",
        )?))
    }
}

/// libpq's rule for a private key file: no access for others (0600), or
/// at most group read (0640) when root owns it.
#[cfg(unix)]
fn check_key_access(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("client key {}: {e}", path.display()))?;
    let allowed = if meta.uid() == 0 { 0o640 } else { 0o600 };
    if meta.mode() & 0o777 & !allowed != 0 {
        return Err(crate::error::Failure::new(
            crate::error::Kind::Usage,
            format!(
                "client key {} has group or world access (mode {:o})",
                path.display(),
                meta.mode() & 0o777
            ),
        )
        .hint("chmod 600 the key file (0640 at most when root owns it)")
        .into());
    }
    Ok(())
}

/// Other systems have no such modes to check.
#[cfg(not(unix))]
fn check_key_access(_path: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        let mut p = Params::default();
        for (k, v) in pairs {
            assert!(p.take(k, v, "postgres://h/db").expect("taken"), "{k}");
        }
        p
    }

    #[test]
    fn modes_and_their_defaults() {
        let mode = |pairs: &[(&str, &str)]| plan(&params(pairs)).map(|p| p.mode);
        assert_eq!(mode(&[("sslmode", "verify-ca")]).ok(), Some(Mode::VerifyCa));
        assert_eq!(mode(&[("requiressl", "1")]).ok(), Some(Mode::Require));
        assert_eq!(
            mode(&[("sslrootcert", "system")]).ok(),
            Some(Mode::VerifyFull)
        );
        for bad in [
            &[("sslmode", "required")][..],
            &[("sslrootcert", "system"), ("sslmode", "require")],
            &[("sslsni", "yes")],
            &[("sslcertmode", "require")],
            &[("ssl_max_protocol_version", "TLSv1.1")],
            &[("sslcompression", "1")],
        ] {
            let err = plan(&params(bad)).expect_err("refused");
            assert_eq!(crate::error::exit_code_for(&err), 2, "{bad:?}");
        }
        let mut p = Params::default();
        let err = p
            .take("sslpassword", "x", "postgres://h/db")
            .expect_err("refused");
        assert_eq!(crate::error::exit_code_for(&err), 2);
        assert!(!p.take("sslnegotiation", "direct", "u").expect("not ours"));
    }

    #[test]
    fn a_missing_root_certificate_is_refused_only_when_checking() {
        let missing = "/nonexistent/root.crt";
        let p = plan(&params(&[("sslmode", "require"), ("sslrootcert", missing)])).expect("plan");
        assert_eq!(p.check().expect("no check").0, Check::Nothing);
        let p = plan(&params(&[
            ("sslmode", "verify-ca"),
            ("sslrootcert", missing),
        ]))
        .expect("plan");
        let err = p.check().expect_err("no root");
        assert_eq!(
            err.to_string(),
            "root certificate file /nonexistent/root.crt does not exist"
        );
    }
}
