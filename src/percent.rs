//! Percent-encoding (RFC 3986) of the URLs etlkit reads and shows: one
//! encoder and one decoder for every store's connection string, the broker
//! URLs and the HTTP source. The decoder is strict (a malformed escape or
//! text that is not UTF-8 is an error, as the MySQL and broker clients
//! treat it) or lenient (a malformed escape stays as written, as libpq
//! reads it), by the caller's choice.

use std::fmt;

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why a strict decode failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeError::BadEscape => "a '%' is not followed by two hex digits",
            DecodeError::NotUtf8 => "a percent-encoded part is not UTF-8",
        })
    }
}

impl std::error::Error for DecodeError {}

/// Decodes `%XX` escapes; a malformed escape or a result that is not
/// UTF-8 is an error.
pub fn decode(text: &str) -> Result<String, DecodeError> {
    let bytes = decode_bytes(text, true).ok_or(DecodeError::BadEscape)?;
    String::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8)
}

/// Decodes `%XX` escapes; a malformed escape stays as written and bytes
/// that are not UTF-8 become U+FFFD.
pub fn decode_lenient(text: &str) -> String {
    let bytes = decode_bytes(text, false).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The decoded bytes; `None` for a malformed escape when `strict`.
fn decode_bytes(text: &str, strict: bool) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let hex = |b: u8| (b as char).to_digit(16);
    while i < bytes.len() {
        if bytes[i] == b'%' {
            match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(hi), Some(lo)) => {
                    // Two hex digits: at most 255.
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                    continue;
                }
                _ if strict => return None,
                _ => {}
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_and_lenient_decoding_differ_only_on_bad_input() {
        assert_eq!(decode("p%40ss%2Fw%3Fd").as_deref(), Ok("p@ss/w?d"));
        assert_eq!(decode_lenient("p%40ss"), "p@ss");
        assert_eq!(decode("100%"), Err(DecodeError::BadEscape));
        assert_eq!(decode("%zz"), Err(DecodeError::BadEscape));
        assert_eq!(decode_lenient("100%"), "100%");
        assert_eq!(decode_lenient("%zz%41"), "%zzA");
        assert_eq!(decode("%ff"), Err(DecodeError::NotUtf8));
        assert_eq!(decode_lenient("%ff"), "\u{fffd}");
        assert_eq!(decode("%C3%A9"), Ok("é".to_string()));
    }

    #[test]
    fn encoding_keeps_only_unreserved_characters() {
        assert_eq!(encode("a b/c~d"), "a%20b%2Fc~d");
        assert_eq!(decode(&encode("p@ss:w/rd?é")).as_deref(), Ok("p@ss:w/rd?é"));
    }
}
