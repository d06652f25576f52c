//! Parquet files read and written: the plumbing under the two stores that
//! keep Parquet, a single file (`files/`) and a Hive-partitioned dataset
//! (`lake/`). It knows no store: the reader is a [`Source`] over one file
//! (`reader.rs`, over a local file or ranges of a stored one, `ranged.rs`; writing each value exactly with `values.rs`, duration
//! units from the footer's Arrow schema, `arrow_schema.rs`), the writer
//! one file with typed columns (`writer.rs`).
//!
//! [`Source`]: crate::source::Source

pub mod arrow_schema;
pub mod encode;
pub mod ranged;
pub mod reader;
pub mod values;
pub mod writer;
