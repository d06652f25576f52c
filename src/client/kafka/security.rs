//! How a Kafka connection is secured, written as Kafka users write it:
//! `security.protocol` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL),
//! `sasl.mechanism` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512),
//! `sasl.username` and `sasl.password` (or Java's `sasl.jaas.config`), and
//! librdkafka's `ssl.ca.location`, `ssl.certificate.location`,
//! `ssl.key.location`; and the SASL exchange itself (RFC 4616 PLAIN,
//! RFC 5802/7677 SCRAM), after a SaslHandshake, in SaslAuthenticate
//! requests.
//!
//! HMAC, SHA-2 and PBKDF2 come from ring, which rustls already brings:
//! no crate is added. The password is never shown: `Debug` hides it and
//! errors name the user only.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::{digest, hmac, pbkdf2};

use crate::client::tls::TlsOptions;

/// `security.protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// Plain text, no authentication (the default).
    #[default]
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL over plain text.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl Protocol {
    /// Does this protocol use TLS?
    pub fn tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }

    /// Does this protocol authenticate with SASL?
    pub fn sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }

    /// Reads a `security.protocol` value (any case).
    pub fn parse(text: &str) -> Result<Protocol> {
        Ok(match text.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Protocol::Plaintext,
            "SSL" => Protocol::Ssl,
            "SASL_PLAINTEXT" => Protocol::SaslPlaintext,
            "SASL_SSL" => Protocol::SaslSsl,
            _ => bail!(
                "security.protocol {text:?} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
            ),
        })
    }
}

/// `sasl.mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// RFC 4616: user and password, in the clear (use it over TLS).
    Plain,
    /// RFC 7677.
    ScramSha256,
    /// RFC 5802 with SHA-512, as Kafka has it.
    ScramSha512,
}

impl Mechanism {
    /// Reads a `sasl.mechanism` value (any case).
    pub fn parse(text: &str) -> Result<Mechanism> {
        Ok(match text.trim().to_ascii_uppercase().as_str() {
            "PLAIN" => Mechanism::Plain,
            "SCRAM-SHA-256" => Mechanism::ScramSha256,
            "SCRAM-SHA-512" => Mechanism::ScramSha512,
            _ => bail!(
                "sasl.mechanism {text:?} is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 \
                 (GSSAPI and OAUTHBEARER are not supported)"
            ),
        })
    }

    /// Its name in the SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// SASL credentials. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Sasl {
    /// The mechanism.
    pub mechanism: Mechanism,
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Sasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sasl({} as {:?})", self.mechanism.name(), self.username)
    }
}

/// How connections to a Kafka cluster are secured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaSecurity {
    /// `security.protocol`.
    pub protocol: Protocol,
    /// Trust and the client certificate, for SSL and SASL_SSL.
    pub tls: TlsOptions,
    /// The credentials, for SASL_PLAINTEXT and SASL_SSL.
    pub sasl: Option<Sasl>,
}

/// The settings a Kafka client takes, by their Kafka names. Later
/// sources (flags, the environment) override earlier ones (the file).
#[derive(Default)]
pub struct KafkaSettings(pub BTreeMap<String, String>);

/// The keys [`KafkaSettings`] understands.
const KEYS: &[&str] = &[
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "sasl.jaas.config",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
];

impl KafkaSettings {
    /// Reads a Java/librdkafka properties file (`key=value` or
    /// `key: value` lines, `#` and `!` comments). Keys other than
    /// `security.*`, `sasl.*` and `ssl.*` are for other clients and are
    /// left alone; an unknown one of those families is an error, so a typo
    /// is not silently ignored. Errors name the file and line, never a
    /// value.
    pub fn read(path: &std::path::Path) -> Result<KafkaSettings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--kafka-config {}", path.display()))?;
        let mut settings = KafkaSettings::default();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let Some(at) = line.find(['=', ':']) else {
                bail!(
                    "--kafka-config {} line {}: not key=value",
                    path.display(),
                    number + 1
                );
            };
            let key = line[..at].trim();
            let value = line[at + 1..].trim();
            let ours = ["security.", "sasl.", "ssl."]
                .iter()
                .any(|p| key.starts_with(p));
            if !ours {
                continue;
            }
            if !KEYS.contains(&key) {
                bail!(
                    "--kafka-config {} line {}: {key} is not supported (etl-watch reads {})",
                    path.display(),
                    number + 1,
                    KEYS.join(", ")
                );
            }
            settings.0.insert(key.to_string(), value.to_string());
        }
        Ok(settings)
    }

    /// Sets `key` to `value` (a flag or variable over the file).
    pub fn set(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.0.insert(key.to_string(), value.to_string());
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The checked security these settings describe. `tls` (the command
    /// line's `--ca-cert` and client certificate) overrides `ssl.*`.
    pub fn security(&self, tls: &TlsOptions) -> Result<KafkaSecurity> {
        let protocol = match self.get("security.protocol") {
            Some(p) => Protocol::parse(p)?,
            None => Protocol::Plaintext,
        };
        let path = |key: &str| self.get(key).map(PathBuf::from);
        let tls = TlsOptions {
            ca_cert: tls.ca_cert.clone().or_else(|| path("ssl.ca.location")),
            client_cert: tls
                .client_cert
                .clone()
                .or_else(|| path("ssl.certificate.location")),
            client_key: tls.client_key.clone().or_else(|| path("ssl.key.location")),
        };
        if tls.any() && !protocol.tls() {
            bail!(
                "--ca-cert, --client-cert, --client-key and ssl.* are for security.protocol \
                 SSL or SASL_SSL"
            );
        }
        let jaas = self.get("sasl.jaas.config").map(jaas_credentials);
        let username = self
            .get("sasl.username")
            .map(String::from)
            .or_else(|| jaas.as_ref().and_then(|j| j.0.clone()));
        let password = self
            .get("sasl.password")
            .map(String::from)
            .or_else(|| jaas.as_ref().and_then(|j| j.1.clone()));
        let mechanism = self
            .get("sasl.mechanism")
            .or_else(|| self.get("sasl.mechanisms"));
        let sasl = if protocol.sasl() {
            let mechanism = Mechanism::parse(mechanism.unwrap_or("PLAIN"))?;
            let (Some(username), Some(password)) = (username, password) else {
                bail!(
                    "security.protocol SASL_* needs sasl.username and sasl.password \
                     (--kafka-config, or ETL_KAFKA_SASL_USERNAME and ETL_KAFKA_SASL_PASSWORD)"
                );
            };
            Some(Sasl {
                mechanism,
                username,
                password,
            })
        } else {
            if mechanism.is_some() || username.is_some() || password.is_some() {
                bail!("sasl.* settings need security.protocol SASL_PLAINTEXT or SASL_SSL");
            }
            None
        };
        Ok(KafkaSecurity {
            protocol,
            tls,
            sasl,
        })
    }
}

/// The `username="..."` and `password="..."` of a Java `sasl.jaas.config`
/// (`org.apache.kafka.common.security.plain.PlainLoginModule required
/// username="u" password="p";`).
fn jaas_credentials(jaas: &str) -> (Option<String>, Option<String>) {
    let field = |name: &str| {
        let at = jaas.find(&format!("{name}=\""))? + name.len() + 2;
        let end = jaas[at..].find('"')?;
        Some(jaas[at..at + end].to_string())
    };
    (field("username"), field("password"))
}

/// The client's side of a SASL exchange: the message to send, given the
/// server's last one.
pub(super) enum Exchange {
    /// PLAIN: one message.
    Plain(Vec<u8>),
    /// SCRAM: client-first, client-final, then a check of server-final.
    Scram(Scram),
}

impl Exchange {
    pub(super) fn new(sasl: &Sasl) -> Result<Exchange> {
        Ok(match sasl.mechanism {
            Mechanism::Plain => {
                let mut message = vec![0];
                message.extend_from_slice(sasl.username.as_bytes());
                message.push(0);
                message.extend_from_slice(sasl.password.as_bytes());
                Exchange::Plain(message)
            }
            Mechanism::ScramSha256 | Mechanism::ScramSha512 => {
                let mut nonce = [0u8; 24];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
                    .map_err(|_| anyhow!("no random numbers for the SCRAM nonce"))?;
                Exchange::Scram(Scram::new(sasl, &BASE64.encode(nonce)))
            }
        })
    }
}

/// A SCRAM exchange (RFC 5802) in progress.
pub(super) struct Scram {
    sha512: bool,
    password: String,
    client_first_bare: String,
    nonce: String,
    server_signature: Option<Vec<u8>>,
}

impl Scram {
    /// Starts an exchange as `sasl.username` with the client nonce `nonce`.
    pub(super) fn new(sasl: &Sasl, nonce: &str) -> Scram {
        let name = sasl.username.replace('=', "=3D").replace(',', "=2C");
        Scram {
            sha512: sasl.mechanism == Mechanism::ScramSha512,
            password: sasl.password.clone(),
            client_first_bare: format!("n={name},r={nonce}"),
            nonce: nonce.to_string(),
            server_signature: None,
        }
    }

    /// The client-first message.
    pub(super) fn first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// The client-final message, answering the server-first message.
    pub(super) fn last(&mut self, server_first: &str) -> Result<String> {
        let field = |name: char| {
            server_first
                .split(',')
                .find_map(|f| f.strip_prefix(name).and_then(|f| f.strip_prefix('=')))
        };
        if let Some(e) = field('e') {
            bail!("the server refused: {e}");
        }
        let bad = || anyhow!("the server's SCRAM answer is not understood");
        let nonce = field('r').ok_or_else(bad)?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            bail!("the server's SCRAM nonce does not extend ours");
        }
        let salt = BASE64
            .decode(field('s').ok_or_else(bad)?)
            .map_err(|_| bad())?;
        let iterations: u32 = field('i').ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let iterations = std::num::NonZeroU32::new(iterations).ok_or_else(bad)?;
        let (pbkdf, mac, hash, size) = if self.sha512 {
            (
                pbkdf2::PBKDF2_HMAC_SHA512,
                hmac::HMAC_SHA512,
                &digest::SHA512,
                64,
            )
        } else {
            (
                pbkdf2::PBKDF2_HMAC_SHA256,
                hmac::HMAC_SHA256,
                &digest::SHA256,
                32,
            )
        };
        let mut salted = vec![0u8; size];
        pbkdf2::derive(
            pbkdf,
            iterations,
            &salt,
            self.password.as_bytes(),
            &mut salted,
        );
        let salted = hmac::Key::new(mac, &salted);
        let client_key = hmac::sign(&salted, b"Client Key");
        let stored_key = digest::digest(hash, client_key.as_ref());
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = hmac::sign(
            &hmac::Key::new(mac, stored_key.as_ref()),
            auth_message.as_bytes(),
        );
        let proof: Vec<u8> = client_key
            .as_ref()
            .iter()
            .zip(signature.as_ref())
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = hmac::sign(&salted, b"Server Key");
        self.server_signature = Some(
            hmac::sign(
                &hmac::Key::new(mac, server_key.as_ref()),
                auth_message.as_bytes(),
            )
            .as_ref()
            .to_vec(),
        );
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)))
    }

    /// Checks the server-final message: the server knew the password too.
    pub(super) fn check(&self, server_final: &str) -> Result<()> {
        if let Some(e) = server_final.strip_prefix("e=") {
            bail!("the server refused: {e}");
        }
        let verifier = server_final
            .split(',')
            .find_map(|f| f.strip_prefix("v="))
            .and_then(|v| BASE64.decode(v).ok());
        match (&self.server_signature, verifier) {
            (Some(expected), Some(got)) if *expected == got => Ok(()),
            _ => bail!("the server's SCRAM signature is wrong (not the server it claims to be?)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sasl(mechanism: Mechanism, username: &str, password: &str) -> Sasl {
        Sasl {
            mechanism,
            username: username.into(),
            password: password.into(),
        }
    }

    /// RFC 4616: an empty authorization identity, then the user and the
    /// password, each after a NUL; nothing else (no framing of our own).
    #[test]
    fn plain_sends_the_rfc_4616_message() {
        let Exchange::Plain(message) =
            Exchange::new(&sasl(Mechanism::Plain, "etl", "p@ss:w0rd")).unwrap()
        else {
            panic!("PLAIN is one message");
        };
        assert_eq!(message, b"\0etl\0p@ss:w0rd");
        assert_eq!(Mechanism::parse("plain").unwrap().name(), "PLAIN");
    }

    #[test]
    fn scram_sha_256_follows_rfc_7677s_example() {
        let mut scram = Scram::new(
            &sasl(Mechanism::ScramSha256, "user", "pencil"),
            "rOprNGfwEbeRWgbNEkqO",
        );
        assert_eq!(scram.first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let last = scram
            .last("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap();
        assert_eq!(
            last,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        scram
            .check("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(
            scram
                .check("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
                .is_err()
        );
    }

    #[test]
    fn scram_sha_512_exchange_is_well_formed() {
        // No published SHA-512 vector: the exchange's shape and a
        // self-consistent server signature.
        let mut scram = Scram::new(&sasl(Mechanism::ScramSha512, "a=b,c", "pw"), "abc");
        assert_eq!(scram.first(), "n,,n=a=3Db=2Cc,r=abc");
        let last = scram.last("r=abcdef,s=c2FsdA==,i=16").unwrap();
        assert!(last.starts_with("c=biws,r=abcdef,p="), "{last}");
        let proof = BASE64
            .decode(&last[last.find("p=").unwrap() + 2..])
            .unwrap();
        assert_eq!(proof.len(), 64);
        assert!(scram.last("r=xyz,s=c2FsdA==,i=16").is_err());
        assert!(scram.last("e=unknown-user").is_err());
    }

    #[test]
    fn settings_read_like_kafka_clients_and_hide_the_password() {
        let dir = std::env::temp_dir().join(format!("etl-kafka-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("client.properties");
        std::fs::write(
            &file,
            "# Confluent Cloud\nbootstrap.servers=x:9092\nsecurity.protocol=SASL_SSL\n\
             sasl.mechanisms=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"etl\" password=\"s3cret\";\n",
        )
        .unwrap();
        let settings = KafkaSettings::read(&file).unwrap();
        let security = settings.security(&TlsOptions::default()).unwrap();
        assert_eq!(security.protocol, Protocol::SaslSsl);
        let sasl = security.sasl.clone().unwrap();
        assert_eq!(
            (
                sasl.mechanism,
                sasl.username.as_str(),
                sasl.password.as_str()
            ),
            (Mechanism::ScramSha512, "etl", "s3cret")
        );
        assert!(!format!("{security:?}").contains("s3cret"));
        std::fs::write(&file, "sasl.pasword=x\n").unwrap();
        let err = format!("{:#}", KafkaSettings::read(&file).err().unwrap());
        assert!(err.contains("sasl.pasword is not supported"), "{err}");
        assert!(!err.contains("=x"), "{err}");
        let mut plain = KafkaSettings::default();
        plain.set("security.protocol", Some("SASL_PLAINTEXT"));
        assert!(plain.security(&TlsOptions::default()).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
