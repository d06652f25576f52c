//! The plan of which broker etl-watch reads, and where in it. The
//! addresses themselves are the clients' (`crate::client::url`).

pub use crate::client::kafka::security::KafkaSecurity;
pub use crate::client::nats::NatsAuth;
pub use crate::client::tls::TlsOptions;
pub use crate::client::url::{BrokerUrl, is_broker_url};
pub use crate::mysql::binlog::BinlogPlan;
pub use crate::pg::slot::SlotPlan;

/// Which broker, and where in it.
#[derive(Debug, Clone)]
pub enum BrokerPlan {
    /// A JetStream pull consumer.
    Nats {
        /// The server.
        url: BrokerUrl,
        /// The subject filter (`orders.>`).
        subject: String,
        /// The durable consumer's name.
        durable: String,
        /// The stream; `None`: the one stream that holds the subject.
        js_stream: Option<String>,
        /// Ack wait of a consumer this run creates, in seconds.
        ack_wait: f64,
        /// TLS options and credentials beyond the URL's.
        auth: NatsAuth,
    },
    /// A Kafka topic (all partitions), offsets committed for a group.
    Kafka {
        /// The bootstrap broker.
        url: BrokerUrl,
        /// The topic.
        topic: String,
        /// The consumer group whose committed offsets are used.
        group: String,
        /// TLS and SASL.
        security: KafkaSecurity,
    },
    /// A Redis stream read through a consumer group.
    Redis {
        /// The server.
        url: BrokerUrl,
        /// The stream's key.
        key: String,
        /// The consumer group.
        group: String,
        /// This reader's name in the group.
        consumer: String,
        /// Trust and the client certificate, for `rediss://`.
        tls: TlsOptions,
    },
    /// A PostgreSQL logical replication slot (change data capture).
    Postgres(SlotPlan),
    /// A MySQL or MariaDB binary log (change data capture of one table).
    Mysql(BinlogPlan),
}
