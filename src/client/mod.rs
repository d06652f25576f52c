//! Wire-protocol clients of the message brokers: NATS (the text protocol
//! and the JetStream API), Redis (RESP2 and the stream commands) and Kafka
//! (the binary protocol, record batches, group offsets); and of object
//! storage: S3 and S3-compatible servers (`s3/`).
//!
//! A floor below the programs and the stores: a client knows its
//! protocol, not who reads through it. `etl-watch`'s broker sources
//! (`watch/broker/`) are built on them, and a broker target can be too.
//! They import only plumbing: `tcp.rs` (the one TCP connect), `tls.rs`
//! (TLS over it, and the trust options every broker shares), `url.rs`
//! (broker addresses, credentials percent-decoded by `crate::percent`),
//! `nkey.rs` (NATS credentials files and nonce signing).

pub mod kafka;
pub mod nats;
pub mod nkey;
pub mod redis;
pub mod s3;
pub mod tcp;
pub mod tls;
pub mod url;
