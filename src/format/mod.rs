//! Edge formats: how bytes in a file become records and back.

pub mod csv;
pub mod flat;
pub mod infer;
pub mod json;
pub mod typing;

/// Byte searches eight bytes at a time (SWAR) for short runs on the hot
/// paths, where a call to memchr costs more than the search.
pub(crate) mod swar {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;

    /// The eight bytes at `at`, if there are eight.
    #[inline(always)]
    pub fn word(bytes: &[u8], at: usize) -> Option<u64> {
        let chunk = bytes.get(at..at + 8)?;
        Some(u64::from_le_bytes(
            chunk.try_into().expect("a slice of 8 bytes"),
        ))
    }

    /// Flags (high bit) the bytes of `x` below `n` (`n` ≤ 128).
    #[inline(always)]
    pub fn below(x: u64, n: u8) -> u64 {
        x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH
    }

    /// Flags the bytes of `x` equal to `b`.
    #[inline(always)]
    pub fn equal(x: u64, b: u8) -> u64 {
        below(x ^ (ONES * u64::from(b)), 1)
    }

    /// The index of the first flagged byte. A borrow can flag a byte only
    /// above a real hit, so the lowest flag is always exact.
    #[inline(always)]
    pub fn first(flags: u64) -> usize {
        (flags.trailing_zeros() / 8) as usize
    }
}

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
