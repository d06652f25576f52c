//! Turning arrived bytes into records: lines, NDJSON objects or CSV rows
//! (with each file's header), bad ones to the rejects.

use anyhow::{Result, bail};

use super::WatchFormat;
use super::Watcher;
use crate::format::csv::{CsvParser, Quoting, RawRecord, Step};
use crate::format::json;
use crate::format::json::check_object;
use crate::record::FieldType;
use crate::rejects::Payload;

/// One record parsed from a chunk.
pub(super) struct ParsedRecord {
    /// The record's JSON object.
    pub(super) json: Vec<u8>,
    /// The input bytes it was read from.
    pub(super) input: usize,
    /// Where it ends in the chunk: a batch that closes after it takes the
    /// chunk's bytes up to here (rejected lines before it included).
    pub(super) end: usize,
}

/// Parsed records of one chunk, and how many of its bytes they used.
pub(super) struct Parsed {
    pub(super) records: Vec<ParsedRecord>,
    pub(super) used: usize,
}

impl Watcher<'_> {
    pub(super) fn schema(&self) -> Vec<(String, FieldType)> {
        match self.plan.format {
            WatchFormat::Lines => vec![
                ("line".into(), FieldType::Text),
                ("file".into(), FieldType::Text),
                ("offset".into(), FieldType::Integer),
            ],
            WatchFormat::Ndjson | WatchFormat::Csv => Vec::new(),
        }
    }

    /// Turns complete lines from `name`, starting at byte `base`, into
    /// records; bad ones go to the rejects. CSV needs the file's header.
    pub(super) fn parse(
        &mut self,
        name: &str,
        base: u64,
        chunk: &[u8],
        header: Option<&[String]>,
    ) -> Result<Parsed> {
        let mut records = Vec::new();
        if self.plan.format == WatchFormat::Csv {
            let header = header.unwrap_or_default();
            let mut parser = CsvParser::new(chunk, name, b',', Quoting::Rfc4180);
            let mut rec = RawRecord::default();
            let mut used = 0usize;
            loop {
                let before = parser.bytes_read();
                match parser.read(&mut rec)? {
                    Step::Eof => break,
                    Step::Record if rec.len() == header.len() => {
                        let mut out = vec![b'{'];
                        for (i, col) in header.iter().enumerate() {
                            if i > 0 {
                                out.push(b',');
                            }
                            out.extend_from_slice(&json::key_prefix(col));
                            match rec.text(i) {
                                Ok("") => out.extend_from_slice(b"null"),
                                Ok(text) if self.plan.nulls.matches(&rec, i, text) => {
                                    out.extend_from_slice(b"null")
                                }
                                Ok(text) => json::write_str(&mut out, text),
                                Err(reason) => {
                                    self.reject(name, base + before, &reason, rec.raw())?;
                                    out.clear();
                                    break;
                                }
                            }
                        }
                        if !out.is_empty() {
                            out.push(b'}');
                            records.push(ParsedRecord {
                                json: out,
                                input: rec.raw().len(),
                                end: parser.bytes_read() as usize,
                            });
                        }
                    }
                    Step::Record => {
                        let reason = format!(
                            "expected {} fields (as in the header), found {}",
                            header.len(),
                            rec.len()
                        );
                        self.reject(name, base + before, &reason, rec.raw())?;
                    }
                    Step::Bad(bad) if bad.reason.starts_with("unterminated quoted field") => {
                        // The rest of the record has not arrived yet.
                        return Ok(Parsed { records, used });
                    }
                    Step::Bad(bad) => self.reject(name, base + before, &bad.reason, rec.raw())?,
                }
                used = parser.bytes_read() as usize;
            }
            return Ok(Parsed { records, used });
        }
        let mut start = 0usize;
        for line in chunk.split_inclusive(|&b| b == b'\n') {
            let offset = base + start as u64;
            start += line.len();
            let text = line.strip_suffix(b"\n").unwrap_or(line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            let text = if offset == 0 {
                crate::wire::strip_bom(text)
            } else {
                text
            };
            match self.plan.format {
                WatchFormat::Lines => match std::str::from_utf8(text) {
                    Ok(s) => {
                        let mut out = Vec::with_capacity(s.len() + 64);
                        out.extend_from_slice(b"{\"line\":");
                        json::write_str(&mut out, s);
                        out.extend_from_slice(b",\"file\":");
                        json::write_str(&mut out, name);
                        out.extend_from_slice(format!(",\"offset\":{offset}}}").as_bytes());
                        records.push(ParsedRecord {
                            json: out,
                            input: line.len(),
                            end: start,
                        });
                    }
                    Err(e) => {
                        let reason = format!("invalid UTF-8 at byte {}", e.valid_up_to());
                        self.reject(name, offset, &reason, text)?;
                    }
                },
                WatchFormat::Ndjson => {
                    let trimmed = text.trim_ascii();
                    if trimmed.is_empty() {
                        continue;
                    }
                    match check_object(trimmed) {
                        Ok(()) => records.push(ParsedRecord {
                            json: trimmed.to_vec(),
                            input: line.len(),
                            end: start,
                        }),
                        Err(reason) => self.reject(name, offset, &reason.to_string(), text)?,
                    }
                }
                WatchFormat::Csv => unreachable!("handled above"),
            }
        }
        Ok(Parsed {
            records,
            used: chunk.len(),
        })
    }

    pub(super) fn reject(
        &mut self,
        name: &str,
        offset: u64,
        reason: &str,
        raw: &[u8],
    ) -> Result<()> {
        self.counts.read += 1;
        self.counts.rejected += 1;
        let reason = format!("at byte {offset}: {reason}");
        self.rejects.reject(name, 0, &reason, Payload::Raw(raw))
    }

    pub(super) fn header(&mut self, index: usize) -> Result<Option<Vec<String>>> {
        let t = &mut self.tracked[index];
        let key = (t.id.dev, t.id.ino, t.id.fp.clone());
        if let Some(h) = self.headers.get(&key) {
            return Ok(Some(h.clone()));
        }
        let Some(line) = t.first_line()? else {
            return Ok(None);
        };
        let name = t.path.display().to_string();
        let names = header_names(&name, &line)?;
        self.headers.insert(key, names.clone());
        Ok(Some(names))
    }
}

/// The column names in a CSV header `line` (one complete line) of `name`.
pub(super) fn header_names(name: &str, line: &[u8]) -> Result<Vec<String>> {
    let mut parser = CsvParser::new(line, name, b',', Quoting::Rfc4180);
    let mut rec = RawRecord::default();
    if parser.read(&mut rec)? != Step::Record {
        bail!("{name}:1: the header line cannot be read");
    }
    if parser.bytes_read() < line.len() as u64 {
        // The records are counted from the first LF: a header ended by
        // a lone CR would have the rows after it skipped with it.
        bail!(
            "{name}:1: the header line ends with a lone CR (old Mac line endings); \
             etl-watch reads CSV lines that end with LF or CRLF"
        );
    }
    (0..rec.len())
        .map(|i| rec.text(i).map(|s| s.trim().to_string()))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{name}:1: header line: {e}"))
}
