//! Writing JSON text by hand on the hot path: producers build each record's
//! line directly from field bytes instead of through a `Value` tree.

/// Flags the bytes of `x` that a JSON string must escape: a quote, a
/// backslash, a control character.
#[inline(always)]
fn stops(x: u64) -> u64 {
    use super::swar::{below, equal};
    below(x, 0x20) | equal(x, b'"') | equal(x, b'\\')
}

/// The whole words of `bytes` checked: `Err(at)` for the first byte to
/// escape, or `Ok(i)` where the last, partial word begins.
#[inline(always)]
fn plain_words(bytes: &[u8]) -> Result<usize, usize> {
    use super::swar::{first, word};
    let mut i = 0;
    while let Some(x) = word(bytes, i) {
        let hit = stops(x);
        if hit != 0 {
            return Err(i + first(hit));
        }
        i += 8;
    }
    Ok(i)
}

/// [`plain_prefix`] for a scan that stops well before the end of `bytes`
/// (a string inside the rest of its line): the few bytes past the last
/// whole word are checked one at a time, which keeps this small where it
/// is inlined.
#[inline]
pub fn plain_prefix_in(bytes: &[u8]) -> usize {
    match plain_words(bytes) {
        Err(at) => at,
        Ok(mut i) => {
            while i < bytes.len() && !matches!(bytes[i], b'"' | b'\\' | 0x00..=0x1f) {
                i += 1;
            }
            i
        }
    }
}

/// The length of the longest prefix of `bytes` with no byte that a JSON
/// string must escape (a quote, a backslash, a control character),
/// checked eight bytes at a time; the bytes past the last whole word in
/// one more word, padded with spaces (plain).
#[inline]
pub fn plain_prefix(bytes: &[u8]) -> usize {
    match plain_words(bytes) {
        Err(at) => at,
        Ok(i) if i == bytes.len() => i,
        Ok(i) => match stops(super::swar::tail(bytes, i, b' ')) {
            0 => bytes.len(),
            hit => i + super::swar::first(hit),
        },
    }
}

/// Appends `s` as a JSON string literal (quotes included). Non-ASCII text is
/// written as UTF-8, not escaped.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let plain = plain_prefix(bytes);
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    out.extend_from_slice(&bytes[..plain]);
    if plain < bytes.len() {
        write_escaped(out, bytes, plain);
    }
    out.push(b'"');
}

/// The rest of a string from its first byte that needs an escape.
#[cold]
fn write_escaped(out: &mut Vec<u8>, bytes: &[u8], from: usize) {
    let mut start = from;
    loop {
        let i = start + plain_prefix(&bytes[start..]);
        out.extend_from_slice(&bytes[start..i]);
        let Some(&b) = bytes.get(i) else { break };
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
        }
        start = i + 1;
    }
}

/// Appends the JSON text `json`, valid as a whole (the caller checked it),
/// without the whitespace between its tokens: a JSON value a store holds
/// as it was written (a pretty-printed document, say) becomes one line of
/// the wire. Strings, numbers and the order of keys stay byte for byte.
pub fn write_compact(out: &mut Vec<u8>, json: &[u8]) {
    out.reserve(json.len());
    let mut i = 0;
    while let Some(&b) = json.get(i) {
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'"' => {
                // Through the closing quote; an escaped one does not close.
                let start = i;
                i += 1;
                while let Some(j) = memchr::memchr2(b'"', b'\\', &json[i..]) {
                    i += j;
                    if json[i] == b'"' {
                        break;
                    }
                    i += 2;
                }
                i = (i + 1).min(json.len());
                out.extend_from_slice(&json[start..i]);
            }
            _ => {
                let start = i;
                while i < json.len() && !matches!(json[i], b' ' | b'\t' | b'\n' | b'\r' | b'"') {
                    i += 1;
                }
                out.extend_from_slice(&json[start..i]);
            }
        }
    }
}

/// The `"name":` prefix of a field, precomputed once per column.
pub fn key_prefix(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 3);
    write_str(&mut out, name);
    out.push(b':');
    out
}

/// Checks that `line` is one complete JSON object, without building it.
pub fn check_object(line: &[u8]) -> anyhow::Result<()> {
    if let Err(at) = super::utf8(line) {
        anyhow::bail!("invalid UTF-8 at byte {at}");
    }
    if line.first() != Some(&b'{') {
        let found = match line.first() {
            Some(b'[') => "an array",
            Some(b'"') => "a string",
            _ => "something else",
        };
        anyhow::bail!("expected a JSON object, found {found}");
    }
    check_json(line)
}

/// Checks that `bytes` is exactly one JSON value, without building it.
pub fn check_json(bytes: &[u8]) -> anyhow::Result<()> {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map_err(|e| anyhow::anyhow!("invalid JSON: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_json_drops_only_the_space_between_tokens() {
        let compact = |text: &str| {
            let mut out = Vec::new();
            write_compact(&mut out, text.as_bytes());
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            compact(
                "{\n  \"a b\": [1, 2.50,\r\n\t1e400],\n  \"q\\\"\\\\ \": \"x \\\" y\",\"a b\":null }\n"
            ),
            r#"{"a b":[1,2.50,1e400],"q\"\\ ":"x \" y","a b":null}"#
        );
        assert_eq!(
            compact(" 12345678901234567890123 "),
            "12345678901234567890123"
        );
        assert_eq!(compact(r#""\\""#), r#""\\""#);
        assert_eq!(compact("[ ]"), "[]");
    }

    #[test]
    fn escapes_match_serde_json() {
        for s in [
            "plain",
            "q\"uote",
            "back\\slash",
            "new\nline\r\t",
            "nul\u{0}x\u{1f}",
            "Café 東京",
            "a long plain text run, then a \"quote\" and \\ past eight bytes\u{7}",
        ] {
            let mut out = Vec::new();
            write_str(&mut out, s);
            let back: String = serde_json::from_slice(&out).expect("valid JSON");
            assert_eq!(back, s);
            assert_eq!(
                String::from_utf8(out).expect("utf8"),
                serde_json::to_string(s).expect("json")
            );
        }
        for b in 0..=255u8 {
            let mut bytes = vec![b'a'; 19];
            bytes[11] = b;
            let plain = plain_prefix(&bytes);
            let special = b == b'"' || b == b'\\' || b < 0x20;
            assert_eq!(plain, if special { 11 } else { 19 }, "byte {b}");
        }
        // Two stops in one word, and every byte value before and after a
        // stop: the first stop is found, never a later one.
        let slow = |bytes: &[u8]| {
            bytes
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(bytes.len())
        };
        // Every length, so every tail, with a stop anywhere or none.
        for n in 0..24 {
            let plain = vec![0xa9; n];
            assert_eq!(plain_prefix(&plain), n);
            assert_eq!(plain_prefix_in(&plain), n);
            for at in 0..n {
                for stop in [b'"', b'\\', 0, 0x1f] {
                    let mut bytes = plain.clone();
                    bytes[at] = stop;
                    assert_eq!(plain_prefix(&bytes), at, "{bytes:?}");
                    assert_eq!(plain_prefix_in(&bytes), at, "{bytes:?}");
                }
            }
        }
        for at in 0..16 {
            for b in 0..=255u8 {
                for stop in [b'"', b'\\', 0, 0x1f] {
                    let mut bytes = vec![0xc3; 24];
                    bytes[at] = b;
                    bytes[at + 1] = stop;
                    assert_eq!(plain_prefix(&bytes), slow(&bytes), "{bytes:?}");
                    assert_eq!(plain_prefix_in(&bytes), slow(&bytes), "{bytes:?}");
                }
            }
        }
    }
}
