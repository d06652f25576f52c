//! Files as a store: CSV, TSV, NDJSON, JSON arrays and Parquet read as
//! sources, and CSV, TSV, NDJSON and Parquet written as targets (a temporary
//! file renamed into place, bookmarks and batch ids in a JSON state file).

pub mod arrow_schema;
pub mod csv;
pub mod json_array;
pub mod ndjson;
pub mod parquet;
pub mod parquet_sink;
pub mod parquet_values;
pub mod parquet_writer;
pub mod sink;
pub mod state;
pub mod store;
