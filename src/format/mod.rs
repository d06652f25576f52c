//! Edge formats: how bytes in a file become records and back.

pub mod csv;
pub mod flat;
pub mod infer;
pub mod json;
pub mod typing;

use std::path::Path;

/// A file format etlkit reads at the edges of a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header line (RFC 4180 quoting).
    Csv,
    /// Tab-separated values with a header line; no quoting.
    Tsv,
    /// One JSON object per line (also .jsonl); control lines are checked.
    Ndjson,
    /// A JSON array of objects, streamed element by element.
    Json,
    /// Apache Parquet (a file, not stdin).
    Parquet,
}

impl Format {
    /// The format a file name suggests, if any, looking past a
    /// compression extension (`orders.csv.gz` is CSV).
    pub fn from_path(path: &Path) -> Option<Format> {
        let (_, path) = crate::source::input::Compression::from_path(path);
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "tsv" | "tab" => Some(Format::Tsv),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            "json" => Some(Format::Json),
            "parquet" | "pq" => Some(Format::Parquet),
            _ => None,
        }
    }
}
