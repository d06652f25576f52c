//! TLS for the broker clients: a [`Stream`] that is plain TCP or rustls
//! over TCP, and the trust options every broker shares (`--ca-cert`,
//! `--client-cert`, `--client-key`).
//!
//! The files are read and the rustls configuration is built by the TLS
//! plumbing, [`crate::tls`], as for the database connections. Trust is
//! curl's: the Mozilla roots built in (webpki-roots), replaced by the
//! certificates of `--ca-cert FILE` when it is given. The server's
//! certificate must chain to them and name the host connected to; there is
//! no switch that turns the checks off. A handshake that fails is an error
//! naming the server and the reason in words (with a hint at the broker
//! flag that helps), never a fall back to plain text; key files are named
//! in errors, their contents never.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use rustls::pki_types::ServerName;
use rustls::{AlertDescription, CertificateError, ClientConfig, ClientConnection};

use super::tcp;
use crate::tls::{Check, Identity, Roots, read_certificates, read_key};

/// How long the TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which certificates a TLS connection trusts, and the client certificate
/// it shows. Only paths: no secret is held here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM file of the certificate authorities to trust instead of the
    /// built-in Mozilla roots.
    pub ca_cert: Option<PathBuf>,
    /// PEM file of the client certificate (and its chain).
    pub client_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub client_key: Option<PathBuf>,
}

impl TlsOptions {
    /// Does any option ask for TLS?
    pub fn any(&self) -> bool {
        self.ca_cert.is_some() || self.client_cert.is_some() || self.client_key.is_some()
    }

    /// The rustls configuration these options describe: the server's
    /// chain and name are checked, files are read here, and a bad one is an
    /// error naming its flag and path.
    pub fn config(&self) -> Result<Arc<ClientConfig>> {
        let roots = match &self.ca_cert {
            None => Roots::Builtin,
            Some(path) => Roots::Certificates {
                certificates: read_certificates(path, "--ca-cert")?,
                from: format!("--ca-cert {}", path.display()),
            },
        };
        let identity = match (&self.client_cert, &self.client_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(Identity {
                chain: read_certificates(cert, "--client-cert")?,
                key: read_key(key, "--client-key")?,
            }),
            (Some(_), None) => bail!("--client-cert needs --client-key (the certificate's key)"),
            (None, Some(_)) => bail!("--client-key needs --client-cert"),
        };
        let config = crate::tls::client_config(
            Check::ChainAndName,
            &roots,
            identity,
            rustls::DEFAULT_VERSIONS,
        )?;
        Ok(Arc::new(config))
    }
}

/// A connection to a broker: plain TCP, or TLS over TCP.
pub enum Stream {
    /// Plain text.
    Plain(TcpStream),
    /// TLS, its handshake done.
    Tls(Box<rustls::StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// Connects to `host:port`, over TLS when `tls` is given. `server`
    /// names it in errors.
    pub fn connect(
        host: &str,
        port: u16,
        server: &str,
        tls: Option<&TlsOptions>,
    ) -> Result<Stream> {
        let tcp = tcp::connect(host, port, server)?;
        match tls {
            None => Ok(Stream::Plain(tcp)),
            Some(options) => Stream::handshake(tcp, host, server, &options.config()?),
        }
    }

    /// TLS over `tcp`, already connected to `host` (NATS starts TLS after
    /// the server's greeting): the handshake is done here, and a failed
    /// one is an error naming `server` and the reason.
    pub fn handshake(
        mut tcp: TcpStream,
        host: &str,
        server: &str,
        config: &Arc<ClientConfig>,
    ) -> Result<Stream> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| anyhow!("{server}: {host:?} is not a host name TLS can check"))?;
        let mut conn = ClientConnection::new(config.clone(), name)
            .map_err(|e| anyhow!("{server}: cannot start TLS: {e}"))?;
        tcp.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut tcp) {
                bail!("{server}: TLS handshake failed: {}", explain(&e));
            }
        }
        // TLS 1.3 servers refuse a client certificate after the handshake;
        // their alert arrives with the first read, which `explain` words too.
        Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
    }

    /// Sets the socket's read timeout.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp().set_read_timeout(timeout)
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => &tls.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf).map_err(reword),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf).map_err(reword),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(tls) => tls.flush().map_err(reword),
        }
    }
}

/// A TLS error after the handshake, in words (a refused client
/// certificate arrives here under TLS 1.3).
fn reword(e: io::Error) -> io::Error {
    if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        io::Error::new(e.kind(), explain(&e))
    } else {
        e
    }
}

/// Why a TLS handshake (or a read after it) failed, in words: a rustls
/// error in the plumbing's words ([`crate::tls::explain`]), except where a
/// broker flag is the cure, which these words name.
fn explain(e: &io::Error) -> String {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return match e.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
                "the server closed the connection (is it a TLS port?)".into()
            }
            _ if tcp::timed_out(e) => {
                "no answer from the server in time (is it a TLS port?)".into()
            }
            _ => e.to_string(),
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the server's certificate is not signed by a trusted certificate authority; \
             hint: --ca-cert FILE names the CA that signed it"
                .into()
        }
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => {
            "the server wants a client certificate; hint: --client-cert FILE --client-key FILE"
                .into()
        }
        rustls::Error::AlertReceived(AlertDescription::HandshakeFailure) => {
            "the server refused the handshake (does it want a client certificate? \
             --client-cert FILE --client-key FILE)"
                .into()
        }
        rustls::Error::InvalidMessage(_) => {
            "the server does not speak TLS here (a plain-text port?)".into()
        }
        other => crate::tls::explain(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(e: rustls::Error) -> String {
        explain(&io::Error::new(io::ErrorKind::InvalidData, e))
    }

    #[test]
    fn broker_words_hint_at_flags_and_share_the_rest() {
        assert_eq!(
            words(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            )),
            "the server's certificate is not signed by a trusted certificate authority; \
             hint: --ca-cert FILE names the CA that signed it"
        );
        assert_eq!(
            words(rustls::Error::AlertReceived(
                AlertDescription::CertificateRequired
            )),
            "the server wants a client certificate; hint: --client-cert FILE --client-key FILE"
        );
        for e in [
            rustls::Error::InvalidCertificate(CertificateError::Expired),
            rustls::Error::InvalidCertificate(CertificateError::Revoked),
            rustls::Error::AlertReceived(AlertDescription::UnknownCA),
        ] {
            assert_eq!(words(e.clone()), crate::tls::explain(&e));
        }
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "eof");
        assert_eq!(
            explain(&eof),
            "the server closed the connection (is it a TLS port?)"
        );
    }

    #[test]
    fn files_are_named_by_their_flag() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("written");
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "-----BEGIN ENCRYPTED PRIVATE KEY-----\n").expect("written");
        let options = TlsOptions {
            ca_cert: Some(empty.clone()),
            ..TlsOptions::default()
        };
        assert_eq!(
            options.config().err().map(|e| e.to_string()),
            Some(format!(
                "--ca-cert {}: no certificate in it (PEM or DER expected)",
                empty.display()
            ))
        );
        let options = TlsOptions {
            ca_cert: None,
            client_cert: Some(empty.clone()),
            client_key: Some(key.clone()),
        };
        assert_eq!(
            options.config().err().map(|e| e.to_string()),
            Some(format!(
                "--client-cert {}: no certificate in it (PEM or DER expected)",
                empty.display()
            ))
        );
        assert!(
            read_key(&key, "--client-key")
                .err()
                .is_some_and(|e| e.to_string().contains("the key is encrypted")),
        );
    }
}
