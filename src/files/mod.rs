//! Files as a store: CSV, TSV, NDJSON, JSON arrays and Parquet read as
//! sources, and CSV, TSV, NDJSON and Parquet written as targets (a temporary
//! file renamed into place, bookmarks and batch ids in a JSON state file),
//! on local disk or as objects on S3 (`object.rs`: an upload completed
//! only at the commit).
//! Parquet is read and written by the shared plumbing in
//! [`crate::parquet_io`], which the dataset store (`lake/`) uses too.

/// The URL schemes of object storage, where a file target or input may
/// also be (`s3://bucket/key`).
pub const SCHEMES: [&str; 1] = ["s3"];

pub mod csv;
pub mod inputs;
pub mod json_array;
pub mod ndjson;
pub mod object;
pub mod parquet_sink;
pub mod sink;
pub mod state;
pub mod store;
