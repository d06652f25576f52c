//! Edge formats: how bytes in a file become records and back.

pub mod csv;
pub mod flat;
pub mod infer;
pub mod json;
pub mod logical;
pub mod nulls;
pub mod temporal;
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

    /// The four bytes at `at` (the caller knows there are four).
    #[inline(always)]
    fn half(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(bytes[at..at + 4].try_into().expect("a slice of 4 bytes"))
    }

    /// The bytes from `at` to the end (fewer than eight, at least one) as
    /// a word, the rest of it filled with `pad`: read as overlapping
    /// words or halves, not byte by byte.
    #[inline(always)]
    pub fn tail(bytes: &[u8], at: usize, pad: u8) -> u64 {
        let n = bytes.len();
        let r = n - at;
        debug_assert!((1..8).contains(&r));
        let x = if n >= 8 {
            word(bytes, n - 8).expect("eight bytes") >> ((8 - r) * 8)
        } else if r >= 4 {
            // Two halves that overlap where r < 8: OR keeps a byte as it is.
            u64::from(half(bytes, at)) | (u64::from(half(bytes, n - 4)) << ((r - 4) * 8))
        } else {
            bytes[at..]
                .iter()
                .enumerate()
                .fold(0, |x, (k, &b)| x | (u64::from(b) << (k * 8)))
        };
        x | ((ONES * u64::from(pad)) << (r * 8))
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

    /// Whether two slices of the same length hold the same bytes: up to
    /// 16 bytes in two overlapping word compares, not a call to memcmp
    /// (field names are short).
    #[inline(always)]
    pub fn same_bytes(x: &[u8], y: &[u8]) -> bool {
        debug_assert_eq!(x.len(), y.len());
        let n = x.len();
        match n {
            0..=3 => x.iter().zip(y).all(|(a, b)| a == b),
            4..=7 => half(x, 0) == half(y, 0) && half(x, n - 4) == half(y, n - 4),
            8..=16 => word(x, 0) == word(y, 0) && word(x, n - 8) == word(y, n - 8),
            _ => x == y,
        }
    }

    /// The index of the first flagged byte. A borrow can flag a byte only
    /// above a real hit, so the lowest flag is always exact.
    #[inline(always)]
    pub fn first(flags: u64) -> usize {
        (flags.trailing_zeros() / 8) as usize
    }
}

use std::path::Path;

/// `bytes` as text, or the offset of the first byte that is not UTF-8.
/// Checked 32 bytes at a time where the processor can (a record line is
/// checked once, whole, before its fields are sliced out of it); the
/// offset is found again byte by byte only when the check fails.
#[inline]
pub fn utf8(bytes: &[u8]) -> Result<&str, usize> {
    simdutf8::basic::from_utf8(bytes)
        .map_err(|_| std::str::from_utf8(bytes).map_or_else(|e| e.valid_up_to(), |_| bytes.len()))
}

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

#[cfg(test)]
mod tests {
    use super::swar::same_bytes;

    #[test]
    fn same_bytes_agrees_with_slice_equality() {
        let a: Vec<u8> = (b'a'..=b'z').collect();
        for n in 0..=a.len() {
            let x = &a[..n];
            assert!(same_bytes(x, x));
            for at in 0..n {
                let mut y = x.to_vec();
                y[at] ^= 0x20;
                assert!(!same_bytes(x, &y), "length {n}, byte {at}");
            }
        }
    }

    #[test]
    fn tail_words_hold_the_last_bytes_then_padding() {
        let bytes: Vec<u8> = (1..=20).collect();
        for n in 1..=bytes.len() {
            for at in n.saturating_sub(7)..n {
                let mut want = [b' '; 8];
                want[..n - at].copy_from_slice(&bytes[at..n]);
                assert_eq!(
                    super::swar::tail(&bytes[..n], at, b' '),
                    u64::from_le_bytes(want),
                    "{at}..{n}"
                );
            }
        }
    }

    #[test]
    fn utf8_names_the_first_bad_byte() {
        assert_eq!(super::utf8("héllo".as_bytes()), Ok("héllo"));
        assert_eq!(super::utf8(b"ab\xffcd"), Err(2));
        assert_eq!(super::utf8(b"abc\xc3"), Err(3));
    }
}
