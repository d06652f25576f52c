//! A strict RFC 4180 reader for CSV and TSV.
//!
//! We parse CSV ourselves because a loader must refuse what it cannot read
//! exactly: the common readers accept an unterminated quote by swallowing
//! the rest of the file into one field, which turns a truncated export into
//! a silently wrong load. This reader reports that, a wrong field count, a
//! stray character after a closing quote and invalid UTF-8, each with the
//! line it happened on. Quoted fields may hold delimiters, doubled quotes
//! and line breaks (kept verbatim); a UTF-8 BOM at the start is skipped;
//! blank lines are skipped. A line ends with LF, CRLF or a lone CR (old
//! Mac exporters), as in the common readers; a CR inside quotes is data.

use std::io::{self, BufRead};

use anyhow::{Context, Result};

/// How fields are quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quoting {
    /// RFC 4180 double quotes (CSV).
    Rfc4180,
    /// No quoting at all: every byte between delimiters is data (TSV).
    None,
}

/// A parsed record: field bytes laid end to end, plus where each ends.
#[derive(Debug, Default)]
pub struct RawRecord {
    /// The field bytes while parsing, and after it when they are not UTF-8.
    bytes: Vec<u8>,
    /// The field bytes, once checked to be UTF-8 (then `bytes` is empty):
    /// one check per record instead of one per field.
    text: String,
    utf8: bool,
    ends: Vec<usize>,
    /// The line the record starts on (1-based).
    pub line: u64,
    /// The record's input bytes as read, for the rejects file.
    pub raw: Vec<u8>,
}

/// What one call to [`CsvParser::read`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A well-formed record.
    Record,
    /// A malformed one: the parser has moved past it.
    Bad(BadRow),
    /// The end of the input.
    Eof,
}

/// A malformed record: where, why, and its bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct BadRow {
    /// The line the record starts on.
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
}

impl RawRecord {
    /// Number of fields.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when the record has no fields.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn span(&self, i: usize) -> (usize, usize) {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        (start, self.ends[i])
    }

    /// The bytes of field `i`.
    pub fn field(&self, i: usize) -> &[u8] {
        let (start, end) = self.span(i);
        if self.utf8 {
            &self.text.as_bytes()[start..end]
        } else {
            &self.bytes[start..end]
        }
    }

    /// Field `i` as text, or why it is not.
    pub fn text(&self, i: usize) -> Result<&str, String> {
        let (start, end) = self.span(i);
        // Fields of valid UTF-8 that split no character are valid; a split
        // one (an invalid sequence cut by a delimiter) is reported below.
        if self.utf8
            && let Some(text) = self.text.get(start..end)
        {
            return Ok(text);
        }
        std::str::from_utf8(self.field(i)).map_err(|e| {
            format!(
                "invalid UTF-8 in field {} at byte {}",
                i + 1,
                e.valid_up_to()
            )
        })
    }

    fn clear(&mut self) {
        if self.utf8 {
            self.bytes = std::mem::take(&mut self.text).into_bytes();
            self.utf8 = false;
        }
        self.bytes.clear();
        self.ends.clear();
        self.raw.clear();
    }

    /// Checks the field bytes for UTF-8 once, when the record is complete.
    fn settle(&mut self) {
        match String::from_utf8(std::mem::take(&mut self.bytes)) {
            Ok(text) => {
                self.text = text;
                self.utf8 = true;
            }
            Err(e) => self.bytes = e.into_bytes(),
        }
    }

    /// A copy that owns its bytes, for buffering a sample.
    pub fn to_owned_record(&self) -> RawRecord {
        RawRecord {
            bytes: self.bytes.clone(),
            text: self.text.clone(),
            utf8: self.utf8,
            ends: self.ends.clone(),
            line: self.line,
            raw: self.raw.clone(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

/// Reads records from a buffered byte stream.
pub struct CsvParser<R> {
    input: R,
    name: String,
    delimiter: u8,
    quoting: Quoting,
    line_buf: Vec<u8>,
    lines_read: u64,
    bytes_read: u64,
    first: bool,
}

impl<R: BufRead> CsvParser<R> {
    /// A parser for `delimiter`-separated fields; `name` (a path, or
    /// `stdin`) starts every error message, followed by the line.
    pub fn new(input: R, name: &str, delimiter: u8, quoting: Quoting) -> Self {
        CsvParser {
            input,
            name: name.to_string(),
            delimiter,
            quoting,
            line_buf: Vec::with_capacity(4096),
            lines_read: 0,
            bytes_read: 0,
            first: true,
        }
    }

    /// Lines consumed so far.
    pub fn lines_read(&self) -> u64 {
        self.lines_read
    }

    /// Bytes consumed so far (a BOM included).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Appends one physical line to `line_buf`; false at EOF.
    fn next_line(&mut self) -> Result<bool> {
        let n = read_line(&mut self.input, &mut self.line_buf)
            .with_context(|| format!("cannot read {}", self.name))?;
        if n == 0 {
            return Ok(false);
        }
        self.lines_read += 1;
        self.bytes_read += n as u64;
        if self.first {
            self.first = false;
            if self.line_buf.starts_with(b"\xEF\xBB\xBF") {
                self.line_buf.drain(..3);
            }
        }
        Ok(true)
    }

    /// Reads the next record into `record`. A malformed record is skipped
    /// and reported as [`Step::Bad`] (its bytes in `record.raw`); only I/O
    /// errors are `Err`.
    pub fn read(&mut self, record: &mut RawRecord) -> Result<Step> {
        record.clear();
        loop {
            self.line_buf.clear();
            if !self.next_line()? {
                return Ok(Step::Eof);
            }
            if !strip_newline(&self.line_buf).is_empty() {
                break;
            }
        }
        record.line = self.lines_read;
        let mut state = State::FieldStart;
        // The physical lines of the record accumulate in `line_buf`; this
        // is where the last one starts.
        let mut start = 0;
        let step = loop {
            let line = &self.line_buf[start..];
            let content_len = strip_newline(line).len();
            let scanned = scan(
                &line[..content_len],
                self.delimiter,
                self.quoting,
                &mut state,
                record,
            );
            if let Err(b) = scanned {
                break Step::Bad(BadRow {
                    line: record.line,
                    reason: format!(
                        "unexpected {} after the closing quote of field {}",
                        describe_byte(b),
                        record.ends.len() + 1
                    ),
                });
            }
            if state != State::Quoted {
                record.ends.push(record.bytes.len());
                break Step::Record;
            }
            // A line break inside quotes belongs to the field, as written.
            record.bytes.extend_from_slice(&line[content_len..]);
            start = self.line_buf.len();
            if !self.next_line()? {
                break Step::Bad(BadRow {
                    line: record.line,
                    reason: format!(
                        "unterminated quoted field {}: its quote, opened on line {}, is never closed \
                         (the rest of the input, to line {}, is part of this row)",
                        record.ends.len() + 1,
                        record.line,
                        self.lines_read
                    ),
                });
            }
        };
        // The record's lines are its raw bytes: handed over, not copied.
        std::mem::swap(&mut record.raw, &mut self.line_buf);
        if step == Step::Record {
            record.settle();
        }
        Ok(step)
    }
}

/// Parses one line's content (no line ending) into `record`'s fields,
/// from `state` on; runs of plain bytes are found with memchr and copied
/// whole. `Err(byte)`: a byte other than a quote or the delimiter follows
/// a closing quote.
fn scan(
    content: &[u8],
    delimiter: u8,
    quoting: Quoting,
    state: &mut State,
    record: &mut RawRecord,
) -> Result<(), u8> {
    let mut i = 0;
    while i < content.len() {
        match *state {
            State::FieldStart if content[i] == b'"' && quoting == Quoting::Rfc4180 => {
                *state = State::Quoted;
                i += 1;
            }
            State::FieldStart | State::Unquoted => match memchr::memchr(delimiter, &content[i..]) {
                Some(j) => {
                    record.bytes.extend_from_slice(&content[i..i + j]);
                    record.ends.push(record.bytes.len());
                    *state = State::FieldStart;
                    i += j + 1;
                }
                None => {
                    record.bytes.extend_from_slice(&content[i..]);
                    *state = State::Unquoted;
                    i = content.len();
                }
            },
            State::Quoted => match memchr::memchr(b'"', &content[i..]) {
                Some(j) => {
                    record.bytes.extend_from_slice(&content[i..i + j]);
                    *state = State::QuoteInQuoted;
                    i += j + 1;
                }
                None => {
                    record.bytes.extend_from_slice(&content[i..]);
                    i = content.len();
                }
            },
            State::QuoteInQuoted => {
                let b = content[i];
                if b == b'"' {
                    record.bytes.push(b'"');
                    *state = State::Quoted;
                } else if b == delimiter {
                    record.ends.push(record.bytes.len());
                    *state = State::FieldStart;
                } else {
                    return Err(b);
                }
                i += 1;
            }
        }
    }
    Ok(())
}

/// Appends one line to `out`, its ending included: up to and including
/// the first LF, CRLF or lone CR. Returns the bytes read (0 at EOF).
fn read_line(input: &mut impl BufRead, out: &mut Vec<u8>) -> io::Result<usize> {
    let mut total = 0;
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(total);
        }
        let Some(i) = memchr::memchr2(b'\n', b'\r', buf) else {
            let n = buf.len();
            out.extend_from_slice(buf);
            input.consume(n);
            total += n;
            continue;
        };
        let cr = buf[i] == b'\r';
        out.extend_from_slice(&buf[..=i]);
        input.consume(i + 1);
        total += i + 1;
        if cr {
            // CRLF is one line ending, even when the LF is not buffered yet.
            let next = loop {
                match input.fill_buf() {
                    Ok(next) => break next,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            if next.first() == Some(&b'\n') {
                out.push(b'\n');
                input.consume(1);
                total += 1;
            }
        }
        return Ok(total);
    }
}

fn strip_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn describe_byte(b: u8) -> String {
    if b.is_ascii_graphic() || b == b' ' {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &str) -> Result<Vec<Vec<String>>, String> {
        let mut parser = CsvParser::new(input.as_bytes(), "t.csv", b',', Quoting::Rfc4180);
        let mut rec = RawRecord::default();
        let mut out = Vec::new();
        loop {
            match parser.read(&mut rec).map_err(|e| e.to_string())? {
                Step::Record => out.push(
                    (0..rec.len())
                        .map(|i| rec.text(i).map(String::from))
                        .collect::<Result<_, _>>()?,
                ),
                Step::Bad(bad) => return Err(format!("line {}: {}", bad.line, bad.reason)),
                Step::Eof => return Ok(out),
            }
        }
    }

    #[test]
    fn quoted_commas_quotes_and_newlines() {
        let rows = parse("a,b\n\"x, y\",\"say \"\"hi\"\"\"\n\"line1\r\nline2\",z\n").unwrap();
        assert_eq!(rows[1], ["x, y", "say \"hi\""]);
        assert_eq!(rows[2], ["line1\r\nline2", "z"]);
    }

    #[test]
    fn bom_and_crlf_and_blank_lines() {
        let rows = parse("\u{feff}a,b\r\n\r\n1,2\r\n").unwrap();
        assert_eq!(rows, [["a", "b"], ["1", "2"]]);
    }

    #[test]
    fn a_lone_cr_ends_a_line_but_is_data_inside_quotes() {
        let rows = parse("a,b\r1,2\r\"x\ry\",4\r\r5,6").unwrap();
        assert_eq!(rows, [["a", "b"], ["1", "2"], ["x\ry", "4"], ["5", "6"]]);
        let rows = parse("a,b\r\n1,2\n3,4\r").unwrap();
        assert_eq!(rows, [["a", "b"], ["1", "2"], ["3", "4"]]);
    }

    #[test]
    fn crlf_split_across_reads_is_one_line_ending() {
        // A reader that hands out one byte at a time: the LF of a CRLF is
        // never in the same buffer as its CR.
        let input = std::io::BufReader::with_capacity(1, &b"a,b\r\n1,2\r\n"[..]);
        let mut parser = CsvParser::new(input, "t.csv", b',', Quoting::Rfc4180);
        let mut rec = RawRecord::default();
        assert_eq!(parser.read(&mut rec).unwrap(), Step::Record);
        assert_eq!(parser.read(&mut rec).unwrap(), Step::Record);
        assert_eq!(rec.text(1).unwrap(), "2");
        assert_eq!(parser.read(&mut rec).unwrap(), Step::Eof);
        assert_eq!(parser.lines_read(), 2);
        assert_eq!(parser.bytes_read(), 10);
    }

    #[test]
    fn empty_fields_and_trailing_delimiter() {
        let rows = parse("a,,\n").unwrap();
        assert_eq!(rows[0], ["a", "", ""]);
    }

    #[test]
    fn unterminated_quote_names_its_line() {
        let err = parse("a,b\n1,2\n3,\"open\n4,5\n").unwrap_err();
        assert!(
            err.starts_with("line 3: unterminated quoted field 2"),
            "{err}"
        );
    }

    #[test]
    fn garbage_after_quote_is_a_bad_row_and_parsing_goes_on() {
        let mut parser = CsvParser::new(&b"\"a\"b,c\nd,e\n"[..], "t.csv", b',', Quoting::Rfc4180);
        let mut rec = RawRecord::default();
        let step = parser.read(&mut rec).unwrap();
        assert_eq!(
            step,
            Step::Bad(BadRow {
                line: 1,
                reason: "unexpected 'b' after the closing quote of field 1".into()
            })
        );
        assert_eq!(rec.raw, b"\"a\"b,c\n");
        assert_eq!(parser.read(&mut rec).unwrap(), Step::Record);
        assert_eq!(rec.text(1).unwrap(), "e");
    }

    #[test]
    fn quote_inside_unquoted_field_is_data() {
        let rows = parse("5\" screen,x\n").unwrap();
        assert_eq!(rows[0], ["5\" screen", "x"]);
    }

    #[test]
    fn invalid_utf8_names_field() {
        let mut parser = CsvParser::new(&b"a,b\n1,\xff\n"[..], "t.csv", b',', Quoting::Rfc4180);
        let mut rec = RawRecord::default();
        assert_eq!(parser.read(&mut rec).unwrap(), Step::Record);
        assert_eq!(parser.read(&mut rec).unwrap(), Step::Record);
        assert_eq!(
            rec.text(1).unwrap_err(),
            "invalid UTF-8 in field 2 at byte 0"
        );
    }

    #[test]
    fn tsv_without_quoting_keeps_quotes() {
        let mut parser = CsvParser::new(&b"\"a\tb\n"[..], "t.tsv", b'\t', Quoting::None);
        let mut rec = RawRecord::default();
        assert_eq!(parser.read(&mut rec).unwrap(), Step::Record);
        assert_eq!(rec.field(0), b"\"a");
    }
}
