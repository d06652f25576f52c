//! Integration tests: the real binaries, run in temp dirs with a cleared
//! environment, against real SQLite files.

mod brokers;
mod cdc;
mod common;
mod corpus;
mod crash;
mod docs;
mod extract;
mod files;
mod formats;
mod http;
mod incremental;
mod lake;
mod load;
mod modes;
mod mysql;
mod nulls;
mod oneoff;
mod ops;
mod pipeline;
mod postgres;
mod s3;
mod stores;
mod tls;
mod transform;
mod watch;
