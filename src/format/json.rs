//! Writing JSON text by hand on the hot path: producers build each record's
//! line directly from field bytes instead of through a `Value` tree.

/// Appends `s` as a JSON string literal (quotes included). Non-ASCII text is
/// written as UTF-8, not escaped.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
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
    if let Err(e) = std::str::from_utf8(line) {
        anyhow::bail!("invalid UTF-8 at byte {}", e.valid_up_to());
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
    fn escapes_match_serde_json() {
        for s in [
            "plain",
            "q\"uote",
            "back\\slash",
            "new\nline\r\t",
            "nul\u{0}x\u{1f}",
            "Café 東京",
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
    }
}
