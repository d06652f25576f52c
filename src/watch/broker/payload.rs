//! A broker message's payload read as records: NDJSON lines, CSV with a
//! header, or a Redis entry's fields as one record.

use crate::format::csv::{CsvParser, Quoting, RawRecord, Step};
use crate::format::json;
use crate::format::nulls::NullTokens;

/// A CSV payload: a header line, then rows; every value as text, an
/// empty one or a null token null. Any bad row rejects the whole message.
pub(super) fn csv_records(payload: &[u8], nulls: &NullTokens) -> Result<Vec<Vec<u8>>, String> {
    let mut parser = CsvParser::new(payload, "payload", b',', Quoting::Rfc4180);
    let mut rec = RawRecord::default();
    let mut header: Option<Vec<String>> = None;
    let mut records = Vec::new();
    let mut row = 0usize;
    loop {
        match parser.read(&mut rec).map_err(|e| format!("{e:#}"))? {
            Step::Eof => break,
            Step::Bad(bad) => return Err(format!("row {row}: {}", bad.reason)),
            Step::Record => {}
        }
        let Some(names) = &header else {
            let names = (0..rec.len())
                .map(|i| rec.text(i).map(|s| s.trim().to_string()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("header line: {e}"))?;
            header = Some(names);
            continue;
        };
        row += 1;
        if rec.len() != names.len() {
            return Err(format!(
                "row {row}: expected {} fields (as in the header), found {}",
                names.len(),
                rec.len()
            ));
        }
        let mut out = vec![b'{'];
        for (i, col) in names.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&json::key_prefix(col));
            match rec.text(i).map_err(|e| format!("row {row}: {e}"))? {
                "" => out.extend_from_slice(b"null"),
                text if nulls.matches(&rec, i, text) => out.extend_from_slice(b"null"),
                text => json::write_str(&mut out, text),
            }
        }
        out.push(b'}');
        records.push(out);
    }
    if header.is_none() {
        return Err("the payload holds no CSV header line".into());
    }
    Ok(records)
}

/// A Redis entry's fields as `field=value` lines, for the rejects file.
pub(super) fn fields_text(fields: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in fields {
        if !out.is_empty() {
            out.push(b'\n');
        }
        out.extend_from_slice(k);
        out.push(b'=');
        out.extend_from_slice(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_payloads_need_their_header_and_whole_rows() {
        let none = NullTokens::default();
        let records = csv_records(b"id,name\n1,a\n2,\n", &none).unwrap();
        assert_eq!(records[0], br#"{"id":"1","name":"a"}"#);
        assert_eq!(records[1], br#"{"id":"2","name":null}"#);
        assert!(
            csv_records(b"id,name\n1\n", &none)
                .unwrap_err()
                .contains("row 1")
        );
        assert!(csv_records(b"", &none).is_err());
        let na = NullTokens::new(["NA".to_string()]);
        let records = csv_records(b"id,name\nNA,\"NA\"\n", &na).unwrap();
        assert_eq!(records[0], br#"{"id":null,"name":"NA"}"#);
    }
}
