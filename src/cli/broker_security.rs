//! `etl-watch`'s options for reaching a broker securely: the trust
//! options every broker shares (curl's convention: `--ca-cert` replaces
//! the built-in roots), NATS credentials files, and Kafka's
//! `security.protocol` and `sasl.*` settings from a properties file, the
//! environment or flags.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::error::usage;
use crate::watch::broker::{BrokerUrl, KafkaSecurity, NatsAuth, TlsOptions};

/// TLS and authentication options for brokers.
#[derive(Debug, Args)]
pub struct BrokerSecurityArgs {
    /// TLS: trust the certificate authorities in this PEM (or DER) file instead of
    /// the built-in Mozilla roots (rediss://, tls:// or nats://, Kafka SSL
    /// and SASL_SSL)
    #[arg(long, value_name = "FILE", help_heading = "Broker security")]
    pub ca_cert: Option<PathBuf>,

    /// TLS: show this client certificate (PEM with its chain, or DER) to a
    /// server that asks for one; needs --client-key
    #[arg(long, value_name = "FILE", help_heading = "Broker security")]
    pub client_cert: Option<PathBuf>,

    /// TLS: the client certificate's private key (PEM or DER, unencrypted)
    #[arg(long, value_name = "FILE", help_heading = "Broker security")]
    pub client_key: Option<PathBuf>,

    /// NATS: a credentials file (user JWT and nkey seed, as nsc and NATS
    /// providers hand out) or an nkey seed file; the server's nonce is
    /// signed with the seed
    #[arg(long, value_name = "FILE", help_heading = "Broker security")]
    pub creds: Option<PathBuf>,

    /// Kafka: a client properties file, as librdkafka and Kafka's own
    /// tools read (security.protocol, sasl.mechanism, sasl.username,
    /// sasl.password or sasl.jaas.config, ssl.ca.location,
    /// ssl.certificate.location, ssl.key.location); other keys are ignored
    #[arg(
        long,
        value_name = "FILE",
        env = "ETL_KAFKA_CONFIG",
        help_heading = "Broker security"
    )]
    pub kafka_config: Option<PathBuf>,

    /// Kafka: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (over
    /// --kafka-config's security.protocol) [default: PLAINTEXT]
    #[arg(
        long,
        value_name = "PROTOCOL",
        env = "ETL_KAFKA_SECURITY_PROTOCOL",
        help_heading = "Broker security"
    )]
    pub security_protocol: Option<String>,

    /// Kafka: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (over sasl.mechanism)
    /// [default: PLAIN]
    #[arg(
        long,
        value_name = "MECHANISM",
        env = "ETL_KAFKA_SASL_MECHANISM",
        help_heading = "Broker security"
    )]
    pub sasl_mechanism: Option<String>,

    /// Kafka: the SASL user (over sasl.username)
    #[arg(
        long,
        value_name = "NAME",
        env = "ETL_KAFKA_SASL_USERNAME",
        help_heading = "Broker security"
    )]
    pub sasl_username: Option<String>,

    /// Kafka: the SASL password (over sasl.password). A flag shows in ps:
    /// prefer the variable or --kafka-config
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "ETL_KAFKA_SASL_PASSWORD",
        hide_env_values = true,
        help_heading = "Broker security"
    )]
    pub sasl_password: Option<String>,
}

impl BrokerSecurityArgs {
    fn tls(&self) -> TlsOptions {
        TlsOptions {
            ca_cert: self.ca_cert.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        }
    }

    fn kafka_given(&self) -> bool {
        self.kafka_config.is_some()
            || self.security_protocol.is_some()
            || self.sasl_mechanism.is_some()
            || self.sasl_username.is_some()
            || self.sasl_password.is_some()
    }

    /// Refuses options that are not for `url`'s broker (usage errors).
    fn only_for(&self, url: &BrokerUrl) -> Result<()> {
        if url.scheme != "kafka" && self.kafka_given() {
            return Err(usage(
                "--kafka-config, --security-protocol and --sasl-* are for kafka://",
            ));
        }
        if url.scheme != "nats" && self.creds.is_some() {
            return Err(usage("--creds is for nats:// and tls://"));
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err(usage("--client-cert and --client-key go together"));
        }
        Ok(())
    }

    /// The TLS options of a Redis URL.
    pub fn redis(&self, url: &BrokerUrl) -> Result<TlsOptions> {
        self.only_for(url)?;
        let tls = self.tls();
        if tls.any() && !url.tls {
            return Err(usage(
                "--ca-cert, --client-cert and --client-key need TLS: write rediss:// for redis://",
            ));
        }
        Ok(tls)
    }

    /// The TLS options and credentials of a NATS URL.
    pub fn nats(&self, url: &BrokerUrl) -> Result<NatsAuth> {
        self.only_for(url)?;
        Ok(NatsAuth {
            tls: self.tls(),
            creds: self.creds.clone(),
        })
    }

    /// Kafka's security: --kafka-config's settings, under the flags and
    /// variables. A bad file or setting is a usage error.
    pub fn kafka(&self, url: &BrokerUrl) -> Result<KafkaSecurity> {
        use crate::client::kafka::security::KafkaSettings;
        self.only_for(url)?;
        let mut settings = match &self.kafka_config {
            Some(path) => KafkaSettings::read(path).map_err(|e| usage(format!("{e:#}")))?,
            None => KafkaSettings::default(),
        };
        settings.set("security.protocol", self.security_protocol.as_deref());
        if let Some(mechanism) = &self.sasl_mechanism {
            settings.0.remove("sasl.mechanisms");
            settings.set("sasl.mechanism", Some(mechanism));
        }
        settings.set("sasl.username", self.sasl_username.as_deref());
        settings.set("sasl.password", self.sasl_password.as_deref());
        settings
            .security(&self.tls())
            .map_err(|e| usage(format!("{e:#}")))
    }
}
