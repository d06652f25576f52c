//! TLS plumbing, one way for every connection etlkit makes (the database
//! stores' and the broker clients'): rustls with ring (no OpenSSL to
//! install), certificate and key files read with errors that name the file
//! by its role (`sslrootcert`, `--ca-cert`), a client configuration that
//! checks a server's certificate as deep as asked (none, its chain, its
//! chain and its name), and a failed handshake told in words ("the
//! server's certificate has expired"), never as a driver's debug text.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, bail};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore,
    SignatureScheme, SupportedProtocolVersion,
};

/// How much of the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Encrypt, but take any certificate (libpq's `require` without a
    /// root certificate, MySQL's REQUIRED).
    Nothing,
    /// The certificate must chain to a trusted root, whatever name it
    /// holds (`verify-ca`, VERIFY_CA).
    Chain,
    /// The certificate must chain to a trusted root and name the host
    /// connected to (`verify-full`, VERIFY_IDENTITY).
    ChainAndName,
}

/// The certificate authorities a server's certificate may chain to.
#[derive(Debug)]
pub enum Roots {
    /// The Mozilla roots built into etlkit (what `sslrootcert=system`
    /// means here).
    Builtin,
    /// The certificates of a file (and only those), named "root
    /// certificate" in errors.
    File(std::path::PathBuf),
    /// Certificates already read with [`read_certificates`] (and only
    /// those); `from` names their file in errors (`--ca-cert FILE`).
    Certificates {
        /// The certificates, as read.
        certificates: Vec<CertificateDer<'static>>,
        /// The file's role and path, as errors show it.
        from: String,
    },
}

/// A client certificate (with its chain) and its private key.
pub struct Identity {
    /// The certificate chain, the client's own first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The certificate's private key.
    pub key: PrivateKeyDer<'static>,
}

/// The certificates in a PEM file (or one DER certificate); `what` names
/// the file's role in errors (`sslrootcert`, `ssl-ca`).
pub fn read_certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let shown = path.display();
    let data = std::fs::read(path).map_err(|e| anyhow::anyhow!("{what} {shown}: {e}"))?;
    let mut certificates = Vec::new();
    for item in CertificateDer::pem_slice_iter(&data) {
        match item {
            Ok(certificate) => certificates.push(certificate),
            Err(e) => bail!("{what} {shown}: not a readable PEM file: {e}"),
        }
    }
    if certificates.is_empty() && data.first() == Some(&0x30) {
        certificates.push(CertificateDer::from(data));
    }
    if certificates.is_empty() {
        bail!("{what} {shown}: no certificate in it (PEM or DER expected)");
    }
    Ok(certificates)
}

/// The private key in a PEM or DER file: PKCS#8, PKCS#1 (RSA) or SEC1
/// (EC), unencrypted.
pub fn read_key(path: &Path, what: &str) -> Result<PrivateKeyDer<'static>> {
    let shown = path.display();
    let data = std::fs::read(path).map_err(|e| anyhow::anyhow!("{what} {shown}: {e}"))?;
    if let Ok(key) = PrivateKeyDer::from_pem_slice(&data) {
        return Ok(key);
    }
    if String::from_utf8_lossy(&data).contains("ENCRYPTED PRIVATE KEY") {
        bail!(
            "{what} {shown}: the key is encrypted, which etlkit does not support; \
             decrypt it (openssl pkey -in KEY -out PLAIN.key) and keep it mode 0600"
        );
    }
    PrivateKeyDer::try_from(data).map_err(|_| {
        anyhow::anyhow!("{what} {shown}: no private key in it (an unencrypted PEM or DER key)")
    })
}

/// A client configuration that checks the server's certificate as far as
/// `check` says, against `roots` (unused with [`Check::Nothing`]), shows
/// `identity` when the server asks for a client certificate, and speaks
/// only `versions`.
pub fn client_config(
    check: Check,
    roots: &Roots,
    identity: Option<Identity>,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = if check == Check::Nothing {
        None
    } else {
        let mut store = RootCertStore::empty();
        match roots {
            Roots::Builtin => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Roots::File(path) => {
                let from = format!("root certificate {}", path.display());
                let certificates = read_certificates(path, "root certificate")?;
                add_roots(&mut store, certificates, &from)?;
            }
            Roots::Certificates { certificates, from } => {
                add_roots(&mut store, certificates.clone(), from)?;
            }
        }
        Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                .build()
                .map_err(|e| anyhow::anyhow!("cannot set up certificate checks: {e}"))?,
        )
    };
    let verifier = Arc::new(Verifier {
        check,
        webpki,
        algorithms: provider.signature_verification_algorithms,
    });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| anyhow::anyhow!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    Ok(match identity {
        Some(identity) => builder
            .with_client_auth_cert(identity.chain, identity.key)
            .map_err(|e| anyhow::anyhow!("the client certificate or key: {}", explain(&e)))?,
        None => builder.with_no_client_auth(),
    })
}

/// Adds `certificates` to `store` as trusted roots; `from` names their
/// file in errors.
fn add_roots(
    store: &mut RootCertStore,
    certificates: Vec<CertificateDer<'static>>,
    from: &str,
) -> Result<()> {
    for certificate in certificates {
        store.add(certificate).map_err(|e| {
            let why = match e {
                Error::InvalidCertificate(CertificateError::BadEncoding) => {
                    "it cannot be read (bad encoding)".to_string()
                }
                other => other.to_string(),
            };
            anyhow::anyhow!("{from}: not a usable CA certificate: {why}")
        })?;
    }
    Ok(())
}

/// Checks a server's certificate as far as its [`Check`] asks; the
/// handshake's signatures are always checked.
#[derive(Debug)]
struct Verifier {
    check: Check,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(webpki) = self
            .webpki
            .as_ref()
            .filter(|_| self.check != Check::Nothing)
        else {
            return Ok(ServerCertVerified::assertion());
        };
        // The chain is checked before the name: a name error means the
        // chain is good.
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.check == Check::Chain => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The TLS failure somewhere in an error's chain of causes, in words;
/// `None` when the error is not a TLS one.
pub fn failure(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(tls) = e.downcast_ref::<Error>() {
            return Some(explain(tls));
        }
        // io::Error's source() skips the error it wraps: look inside it
        // (an io::Error may wrap another).
        cause = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// A rustls error in words, saying what failed.
pub fn explain(err: &Error) -> String {
    match err {
        Error::InvalidCertificate(e) => certificate(e),
        Error::AlertReceived(alert) => match alert {
            AlertDescription::CertificateRequired => {
                "the server asks for a client certificate; give one (and its key)".to_string()
            }
            AlertDescription::UnknownCA => {
                "the server does not trust the client certificate (unknown issuer)".to_string()
            }
            AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::AccessDenied => {
                format!("the server refused the client certificate ({alert:?})")
            }
            AlertDescription::CertificateExpired => {
                "the server refused the client certificate: it has expired".to_string()
            }
            AlertDescription::ProtocolVersion => {
                "the server speaks none of the TLS versions allowed here".to_string()
            }
            AlertDescription::HandshakeFailure | AlertDescription::InsufficientSecurity => {
                "the server and etlkit have no TLS version or cipher in common".to_string()
            }
            other => format!("the server ended the handshake ({other:?})"),
        },
        Error::InvalidCertRevocationList(e) => format!("the certificate revocation list: {e:?}"),
        Error::NoCertificatesPresented => "the server sent no certificate".to_string(),
        Error::PeerIncompatible(e) => format!("the server's TLS is incompatible: {e:?}"),
        Error::InconsistentKeys(_) => {
            "the client key does not belong to the client certificate".to_string()
        }
        other => other.to_string(),
    }
}

/// A certificate error in words.
fn certificate(err: &CertificateError) -> String {
    let said = match err {
        CertificateError::Expired => "has expired".to_string(),
        CertificateError::ExpiredContext { not_after, .. } => {
            format!("expired on {}", date(*not_after))
        }
        CertificateError::NotValidYet => "is not valid yet".to_string(),
        CertificateError::NotValidYetContext { not_before, .. } => {
            format!("is not valid before {}", date(*not_before))
        }
        CertificateError::UnknownIssuer => {
            "is not signed by a trusted certificate authority (unknown issuer)".to_string()
        }
        CertificateError::NotValidForName => "is not valid for the host name".to_string(),
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => {
            let expected = match expected {
                ServerName::DnsName(name) => name.as_ref().to_string(),
                ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
                other => format!("{other:?}"),
            };
            let names: Vec<&str> = presented.iter().filter_map(|n| presented_name(n)).collect();
            if names.is_empty() {
                format!("is not valid for the name {expected} (it names no host)")
            } else {
                format!(
                    "is not valid for the name {expected} (it is for {})",
                    names.join(", ")
                )
            }
        }
        CertificateError::BadSignature => "has a bad signature".to_string(),
        CertificateError::Revoked => "has been revoked".to_string(),
        CertificateError::BadEncoding => "cannot be read (bad encoding)".to_string(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "is not meant for a server (its extended key usage)".to_string()
        }
        other => format!("is refused: {other:?}"),
    };
    format!("the server's certificate {said}")
}

/// A name a certificate holds, as rustls reports it (`DnsName("db")`,
/// `IpAddress(10.0.0.1)`), without the wrapping; `None` for what is no host
/// name.
fn presented_name(text: &str) -> Option<&str> {
    if let Some(name) = text.strip_prefix("DnsName(\"") {
        return name.strip_suffix("\")");
    }
    text.strip_prefix("IpAddress(")?.strip_suffix(')')
}

/// A certificate time as a UTC date.
fn date(time: UnixTime) -> String {
    let days = i64::try_from(time.as_secs() / 86_400).unwrap_or(i64::MAX);
    let (y, m, d) = crate::calendar::civil(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The TLS versions between a lowest and a highest, each given as libpq
/// writes them (`TLSv1.2`); rustls speaks TLSv1.2 and TLSv1.3.
pub fn versions(
    min: Option<&str>,
    max: Option<&str>,
) -> std::result::Result<Vec<&'static SupportedProtocolVersion>, String> {
    let rank = |text: &str| match text {
        "TLSv1" => Ok(0),
        "TLSv1.1" => Ok(1),
        "TLSv1.2" => Ok(2),
        "TLSv1.3" => Ok(3),
        other => Err(format!(
            "{other:?} is not a TLS version (TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3)"
        )),
    };
    let low = min.map(rank).transpose()?.unwrap_or(2);
    let high = max.map(rank).transpose()?.unwrap_or(3);
    if high < 2 {
        return Err("etlkit speaks TLSv1.2 and TLSv1.3 only".to_string());
    }
    let mut out = Vec::new();
    if low <= 2 && high >= 2 {
        out.push(&rustls::version::TLS12);
    }
    if high >= 3 {
        out.push(&rustls::version::TLS13);
    }
    if low > high {
        return Err("the lowest TLS version allowed is above the highest".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_the_bounds() {
        assert_eq!(versions(None, None).map(|v| v.len()), Ok(2));
        assert_eq!(versions(Some("TLSv1.3"), None).map(|v| v.len()), Ok(1));
        assert_eq!(
            versions(Some("TLSv1"), Some("TLSv1.2")).map(|v| v.len()),
            Ok(1)
        );
        assert!(versions(None, Some("TLSv1.1")).is_err());
        assert!(versions(Some("TLSv1.3"), Some("TLSv1.2")).is_err());
        assert!(versions(Some("tls1.2"), None).is_err());
    }

    #[test]
    fn certificate_errors_are_told_in_words() {
        let e = Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("127.0.0.1")
                .expect("an address")
                .to_owned(),
            presented: vec![
                "DnsName(\"localhost\")".to_string(),
                "IpAddress(10.0.0.1)".to_string(),
                "DirectoryName".to_string(),
            ],
        });
        assert_eq!(
            explain(&e),
            "the server's certificate is not valid for the name 127.0.0.1 (it is for \
             localhost, 10.0.0.1)"
        );
        let e = Error::InvalidCertificate(CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000)),
            not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_700_000_000)),
        });
        assert_eq!(
            explain(&e),
            "the server's certificate expired on 2023-11-14"
        );
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        let io = std::io::Error::other(io);
        assert_eq!(
            failure(&io).as_deref(),
            Some(
                "the server's certificate is not signed by a trusted certificate authority \
                 (unknown issuer)"
            )
        );
    }
}
