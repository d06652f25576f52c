//! TLS for the broker clients: a [`Stream`] that is plain TCP or rustls
//! over TCP, and the trust options every broker shares (`--ca-cert`,
//! `--client-cert`, `--client-key`).
//!
//! rustls with ring, as the HTTP source already has it through ureq: no
//! OpenSSL to install, and no crate added to the build. Trust is curl's:
//! the Mozilla roots built in (webpki-roots), replaced by the certificates
//! of `--ca-cert FILE` when it is given. The server's certificate must
//! chain to them and name the host connected to; there is no switch that
//! turns the checks off. A handshake that fails is an error naming the
//! server and the reason in words, never a fall back to plain text; key
//! files are named in errors, their contents never.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{AlertDescription, CertificateError, ClientConfig, ClientConnection, RootCertStore};

use super::tcp;

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

    /// The rustls configuration these options describe: files are read
    /// here, and a bad one is an error naming it.
    pub fn config(&self) -> Result<Arc<ClientConfig>> {
        let mut roots = RootCertStore::empty();
        match &self.ca_cert {
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Some(path) => {
                for cert in read_certificates(path, "--ca-cert")? {
                    roots.add(cert).map_err(|e| {
                        anyhow!(
                            "--ca-cert {}: not a usable CA certificate: {e}",
                            path.display()
                        )
                    })?;
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("cannot set up TLS")?
            .with_root_certificates(roots);
        let config = match (&self.client_cert, &self.client_key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = read_certificates(cert, "--client-cert")?;
                let key_der = read_key(key)?;
                builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                    anyhow!(
                        "--client-cert {} and --client-key {}: {e}",
                        cert.display(),
                        key.display()
                    )
                })?
            }
            (Some(_), None) => bail!("--client-cert needs --client-key (the certificate's key)"),
            (None, Some(_)) => bail!("--client-key needs --client-cert"),
        };
        Ok(Arc::new(config))
    }
}

/// The certificates of a PEM file; `what` names the option in errors.
fn read_certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let data = std::fs::read(path).with_context(|| format!("{what} {}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| anyhow!("{what} {}: not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        bail!(
            "{what} {}: no certificate in it (PEM expected)",
            path.display()
        );
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1, unencrypted).
/// Its contents never appear in an error.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let data = std::fs::read(path).with_context(|| format!("--client-key {}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&data).map_err(|_| {
        anyhow!(
            "--client-key {}: no unencrypted private key in it (PEM expected)",
            path.display()
        )
    })
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
                bail!("{server}: TLS handshake failed: {}", explain(&e, host));
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
        io::Error::new(e.kind(), explain(&e, ""))
    } else {
        e
    }
}

/// Why a TLS handshake (or a read after it) failed, in words.
fn explain(e: &io::Error, host: &str) -> String {
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
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => {
                "the server's certificate is not signed by a trusted certificate authority; \
                 hint: --ca-cert FILE names the CA that signed it"
                    .into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("the server's certificate is not valid for the name {host}")
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet".into()
            }
            CertificateError::Revoked => "the server's certificate was revoked".into(),
            CertificateError::BadSignature => "the server's certificate has a bad signature".into(),
            other => format!("the server's certificate is not accepted: {other}"),
        },
        rustls::Error::AlertReceived(AlertDescription::CertificateRequired) => {
            "the server wants a client certificate; hint: --client-cert FILE --client-key FILE"
                .into()
        }
        rustls::Error::AlertReceived(AlertDescription::HandshakeFailure) => {
            "the server refused the handshake (does it want a client certificate? \
             --client-cert FILE --client-key FILE)"
                .into()
        }
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown),
        ) => format!("the server did not accept the client certificate ({alert:?})"),
        rustls::Error::AlertReceived(alert) => format!("the server refused: {alert:?}"),
        rustls::Error::InvalidMessage(_) => {
            "the server does not speak TLS here (a plain-text port?)".into()
        }
        other => other.to_string(),
    }
}
