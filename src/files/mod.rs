//! Files as a store: CSV, TSV, NDJSON, JSON arrays and Parquet read as
//! sources, and CSV, TSV, NDJSON and Parquet written as targets (a temporary
//! file renamed into place, bookmarks and batch ids in a JSON state file).
//! Parquet is read and written by the shared plumbing in
//! [`crate::parquet_io`], which the dataset store (`lake/`) uses too.

pub mod csv;
pub mod json_array;
pub mod ndjson;
pub mod parquet_sink;
pub mod sink;
pub mod state;
pub mod store;

/// A Parquet file as a source: the shared reader.
pub mod parquet {
    pub use crate::parquet_io::reader::ParquetSource;
}
