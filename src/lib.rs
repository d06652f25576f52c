//! etlkit: small Unix programs for shell-driven ETL.
//!
//! `etl-extract | etl-transform | etl-load` pipelines pass NDJSON records
//! framed by control lines (see [`wire`]), so that a consumer can tell a
//! complete stream from one whose producer died. The binaries in `src/bin`
//! only parse arguments and call one function each: [`extract::run`],
//! [`transform::run`], [`load::run`] or [`watch::run`]. Programs hold a
//! store through the contract in [`store`] and find it through the
//! [`registry`], the one list of stores.

pub mod atomic_file;
pub mod calendar;
pub mod changes;
pub mod cli;
pub mod client;
pub mod error;
pub mod extract;
pub mod files;
pub mod format;
pub mod harness;
pub mod http;
pub mod incremental;
pub mod lake;
pub mod load;
pub mod mysql;
pub mod oneoff;
pub mod output;
pub mod parquet_io;
pub mod percent;
pub mod pg;
pub mod progress;
pub mod record;
pub mod registry;
pub mod rejects;
pub mod runs;
pub mod shown;
pub mod sink;
pub mod source;
pub mod sqlite;
pub mod state;
pub mod state_document;
pub mod store;
pub mod tls;
pub mod transform;
pub mod watch;
pub mod wire;
