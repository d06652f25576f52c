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

/// A parsed record: where each field's bytes are, in the record's lines
/// as read (most fields) or, for a quoted field whose text differs from
/// its bytes (a doubled quote, a line break), in a buffer of its own.
#[derive(Debug, Default)]
pub struct RawRecord {
    fields: Vec<FieldAt>,
    /// The record's input bytes as read, for the rejects file; the bytes
    /// of most fields.
    raw: Vec<u8>,
    /// The text of quoted fields that differs from their bytes.
    quoted: Vec<u8>,
    /// `raw` and `quoted` once checked to be UTF-8 (then those two are
    /// empty): one check per record instead of one per field.
    raw_text: String,
    quoted_text: String,
    utf8: bool,
    /// The line the record starts on (1-based).
    pub line: u64,
}

/// Where one field's bytes are.
#[derive(Debug, Clone, Copy)]
struct FieldAt {
    start: usize,
    end: usize,
    /// In `quoted` rather than in the lines.
    copied: bool,
    /// Written in quotes (a quoted `"NA"` is text, never a null token).
    in_quotes: bool,
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
        self.fields.len()
    }

    /// True when the record has no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The record's input bytes as read (line endings included).
    pub fn raw(&self) -> &[u8] {
        if self.utf8 {
            self.raw_text.as_bytes()
        } else {
            &self.raw
        }
    }

    /// The bytes of field `i`.
    #[inline]
    pub fn field(&self, i: usize) -> &[u8] {
        let f = self.fields[i];
        let bytes = match (self.utf8, f.copied) {
            (true, false) => self.raw_text.as_bytes(),
            (true, true) => self.quoted_text.as_bytes(),
            (false, false) => &self.raw,
            (false, true) => &self.quoted,
        };
        &bytes[f.start..f.end]
    }

    /// Whether field `i` was written in quotes.
    #[inline]
    pub fn in_quotes(&self, i: usize) -> bool {
        self.fields[i].in_quotes
    }

    /// Field `i` as text, or why it is not.
    #[inline]
    pub fn text(&self, i: usize) -> Result<&str, String> {
        let f = self.fields[i];
        // Field bounds are at ASCII quotes, delimiters and line ends, so
        // slices of valid text are valid text.
        if self.utf8 {
            let text = if f.copied {
                &self.quoted_text
            } else {
                &self.raw_text
            };
            if let Some(text) = text.get(f.start..f.end) {
                return Ok(text);
            }
        }
        self.text_error(i)
    }

    /// Field `i` of a record that is not all UTF-8: the text, or where it
    /// stops being text.
    #[cold]
    fn text_error(&self, i: usize) -> Result<&str, String> {
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
            self.raw = std::mem::take(&mut self.raw_text).into_bytes();
            self.quoted = std::mem::take(&mut self.quoted_text).into_bytes();
            self.utf8 = false;
        }
        self.fields.clear();
        self.raw.clear();
        self.quoted.clear();
    }

    /// Checks the record for UTF-8 once, when it is complete.
    fn settle(&mut self) {
        let raw = match String::from_utf8(std::mem::take(&mut self.raw)) {
            Ok(text) => text,
            Err(e) => {
                self.raw = e.into_bytes();
                return;
            }
        };
        match String::from_utf8(std::mem::take(&mut self.quoted)) {
            Ok(quoted) => {
                self.raw_text = raw;
                self.quoted_text = quoted;
                self.utf8 = true;
            }
            Err(e) => {
                self.raw = raw.into_bytes();
                self.quoted = e.into_bytes();
            }
        }
    }

    /// A copy that owns its bytes, for buffering a sample.
    pub fn to_owned_record(&self) -> RawRecord {
        RawRecord {
            fields: self.fields.clone(),
            raw: self.raw.clone(),
            quoted: self.quoted.clone(),
            raw_text: self.raw_text.clone(),
            quoted_text: self.quoted_text.clone(),
            utf8: self.utf8,
            line: self.line,
        }
    }
}

/// Where the parser is inside a record (positions are in the record's
/// lines).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// At the start of a field.
    FieldStart,
    /// Past an unquoted field that ran to the end of the line.
    Unquoted,
    /// Inside quotes: the field's bytes from `from` on are not copied yet;
    /// `copied` is where its copy starts in `quoted`, once it has one.
    Quoted { from: usize, copied: Option<usize> },
    /// Just past a quote at `close` inside a quoted field.
    QuoteInQuoted {
        from: usize,
        copied: Option<usize>,
        close: usize,
    },
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
        let mut state = Scan::FieldStart;
        // The physical lines of the record accumulate in `line_buf`; this
        // is where the last one starts.
        let mut start = 0;
        let step = loop {
            let content_end = start + strip_newline(&self.line_buf[start..]).len();
            let scanned = scan(
                &self.line_buf,
                start,
                content_end,
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
                        record.fields.len() + 1
                    ),
                });
            }
            match state {
                Scan::FieldStart => {
                    record.fields.push(FieldAt {
                        start: content_end,
                        end: content_end,
                        copied: false,
                        in_quotes: false,
                    });
                    break Step::Record;
                }
                Scan::Unquoted => break Step::Record,
                Scan::QuoteInQuoted {
                    from,
                    copied,
                    close,
                } => {
                    close_quoted(&self.line_buf, from, copied, close, record);
                    break Step::Record;
                }
                Scan::Quoted { from, copied } => {
                    // A line break inside quotes belongs to the field, as
                    // written: the field is copied from here on.
                    let at = copied.unwrap_or(record.quoted.len());
                    record.quoted.extend_from_slice(&self.line_buf[from..]);
                    start = self.line_buf.len();
                    state = Scan::Quoted {
                        from: start,
                        copied: Some(at),
                    };
                }
            }
            if !self.next_line()? {
                break Step::Bad(BadRow {
                    line: record.line,
                    reason: format!(
                        "unterminated quoted field {}: its quote, opened on line {}, is never closed \
                         (the rest of the input, to line {}, is part of this row)",
                        record.fields.len() + 1,
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

/// Ends a quoted field whose closing quote is at `close`.
fn close_quoted(
    buf: &[u8],
    from: usize,
    copied: Option<usize>,
    close: usize,
    record: &mut RawRecord,
) {
    let field = match copied {
        None => FieldAt {
            start: from,
            end: close,
            copied: false,
            in_quotes: true,
        },
        Some(at) => {
            record.quoted.extend_from_slice(&buf[from..close]);
            FieldAt {
                start: at,
                end: record.quoted.len(),
                copied: true,
                in_quotes: true,
            }
        }
    };
    record.fields.push(field);
}

/// Parses the line `buf[from..to]` (its content, no line ending) into
/// `record`'s fields, from `state` on. Delimiters and quotes are found with
/// memchr; a field is its span in the line unless a doubled quote or a
/// line break makes its text differ from its bytes. `Err(byte)`: a byte
/// other than a quote or the delimiter follows a closing quote.
fn scan(
    buf: &[u8],
    from: usize,
    to: usize,
    delimiter: u8,
    quoting: Quoting,
    state: &mut Scan,
    record: &mut RawRecord,
) -> Result<(), u8> {
    let mut i = from;
    while i < to {
        match *state {
            Scan::FieldStart if buf[i] == b'"' && quoting == Quoting::Rfc4180 => {
                *state = Scan::Quoted {
                    from: i + 1,
                    copied: None,
                };
                i += 1;
            }
            Scan::FieldStart | Scan::Unquoted => {
                let end = find(delimiter, &buf[i..to]).map_or(to, |j| i + j);
                record.fields.push(FieldAt {
                    start: i,
                    end,
                    copied: false,
                    in_quotes: false,
                });
                if end < to {
                    *state = Scan::FieldStart;
                    i = end + 1;
                } else {
                    *state = Scan::Unquoted;
                    i = to;
                }
            }
            Scan::Quoted { from, copied } => match find(b'"', &buf[i..to]) {
                Some(j) => {
                    *state = Scan::QuoteInQuoted {
                        from,
                        copied,
                        close: i + j,
                    };
                    i += j + 1;
                }
                None => i = to,
            },
            Scan::QuoteInQuoted {
                from,
                copied,
                close,
            } => {
                let b = buf[i];
                if b == b'"' {
                    // A doubled quote stands for one: the text differs
                    // from the bytes, so the field is copied.
                    let at = copied.unwrap_or(record.quoted.len());
                    record.quoted.extend_from_slice(&buf[from..=close]);
                    *state = Scan::Quoted {
                        from: i + 1,
                        copied: Some(at),
                    };
                } else if b == delimiter {
                    close_quoted(buf, from, copied, close, record);
                    *state = Scan::FieldStart;
                } else {
                    return Err(b);
                }
                i += 1;
            }
        }
    }
    Ok(())
}

/// The first `needle` in `hay`. Most fields are short: the first 32 bytes
/// are searched eight at a time in place, the rest by memchr.
#[inline(always)]
fn find(needle: u8, hay: &[u8]) -> Option<usize> {
    use super::swar::{equal, first, word};
    let mut i = 0;
    while i < 32 {
        let Some(x) = word(hay, i) else {
            // Under eight bytes left.
            return hay[i..].iter().position(|&b| b == needle).map(|j| i + j);
        };
        let hit = equal(x, needle);
        if hit != 0 {
            return Some(i + first(hit));
        }
        i += 8;
    }
    memchr::memchr(needle, &hay[i..]).map(|j| i + j)
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

    #[test]
    fn find_gives_the_first_match_at_any_place() {
        for len in 0..80 {
            for at in 0..=len {
                for other in [0u8, b'"', b',', 0x80, 0xff, b'a'] {
                    let mut hay = vec![other; len];
                    if at < len {
                        hay[at] = b',';
                        if at + 1 < len {
                            hay[at + 1] = b',';
                        }
                    }
                    let want = hay.iter().position(|&b| b == b',');
                    assert_eq!(find(b',', &hay), want, "{hay:?}");
                }
            }
        }
    }

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
        assert_eq!(rec.raw(), b"\"a\"b,c\n");
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

    #[test]
    fn a_character_split_by_a_delimiter_is_invalid_utf8() {
        // "é" is C3 A9: cut by a comma, each half is invalid on its own,
        // though the two fields laid end to end would read as "é".
        let mut parser = CsvParser::new(&b"\xc3,\xa9\n"[..], "t.csv", b',', Quoting::Rfc4180);
        let mut rec = RawRecord::default();
        assert_eq!(parser.read(&mut rec).unwrap(), Step::Record);
        assert!(rec.text(0).is_err());
        assert!(rec.text(1).is_err());
        assert_eq!(rec.raw(), b"\xc3,\xa9\n");
    }

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum State {
        FieldStart,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }

    /// The byte-at-a-time state machine the reader once was: the fast
    /// reader must split every input into the same records and reasons.
    /// Each record's fields and raw bytes, or its reason.
    type Split = Vec<Result<(Vec<Vec<u8>>, Vec<u8>), String>>;

    fn reference(input: &[u8]) -> Split {
        let mut out = Vec::new();
        let mut lines: Vec<&[u8]> = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < input.len() {
            if input[i] == b'\n' || input[i] == b'\r' {
                let end = if input[i] == b'\r' && input.get(i + 1) == Some(&b'\n') {
                    i + 2
                } else {
                    i + 1
                };
                lines.push(&input[start..end]);
                start = end;
                i = end;
            } else {
                i += 1;
            }
        }
        if start < input.len() {
            lines.push(&input[start..]);
        }
        let mut l = 0;
        while l < lines.len() {
            if strip_newline(lines[l]).is_empty() {
                l += 1;
                continue;
            }
            let (mut fields, mut field, mut raw) = (Vec::new(), Vec::new(), Vec::new());
            let mut state = State::FieldStart;
            let result = loop {
                let line = lines[l];
                raw.extend_from_slice(line);
                let content = strip_newline(line);
                let mut bad = None;
                for &b in content {
                    state = match state {
                        State::FieldStart if b == b'"' => State::Quoted,
                        State::FieldStart | State::Unquoted if b == b',' => {
                            fields.push(std::mem::take(&mut field));
                            State::FieldStart
                        }
                        State::FieldStart | State::Unquoted => {
                            field.push(b);
                            State::Unquoted
                        }
                        State::Quoted if b == b'"' => State::QuoteInQuoted,
                        State::Quoted => {
                            field.push(b);
                            State::Quoted
                        }
                        State::QuoteInQuoted if b == b'"' => {
                            field.push(b);
                            State::Quoted
                        }
                        State::QuoteInQuoted if b == b',' => {
                            fields.push(std::mem::take(&mut field));
                            State::FieldStart
                        }
                        State::QuoteInQuoted => {
                            bad = Some(b);
                            break;
                        }
                    };
                }
                l += 1;
                if let Some(b) = bad {
                    break Err(describe_byte(b));
                }
                if state != State::Quoted {
                    fields.push(std::mem::take(&mut field));
                    break Ok((std::mem::take(&mut fields), std::mem::take(&mut raw)));
                }
                field.extend_from_slice(&line[content.len()..]);
                if l >= lines.len() {
                    break Err("unterminated".into());
                }
            };
            out.push(result);
        }
        out
    }

    #[test]
    fn splits_records_as_the_byte_at_a_time_reader_did() {
        let alphabet: [&[u8]; 8] = [b"a", b"bc", b",", b"\"", b"\n", b"\r", b"\xc3\xa9", b" "];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..3000 {
            let mut input = Vec::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 24) as usize;
            let mut x = seed;
            for _ in 0..len {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                input.extend_from_slice(alphabet[(x >> 59) as usize % alphabet.len()]);
            }
            let mut parser = CsvParser::new(&input[..], "t.csv", b',', Quoting::Rfc4180);
            let mut rec = RawRecord::default();
            let mut ours = Vec::new();
            loop {
                match parser.read(&mut rec).unwrap() {
                    Step::Eof => break,
                    Step::Record => ours.push(Ok((
                        (0..rec.len()).map(|i| rec.field(i).to_vec()).collect(),
                        rec.raw().to_vec(),
                    ))),
                    Step::Bad(bad) if bad.reason.starts_with("unterminated") => {
                        ours.push(Err("unterminated".to_string()))
                    }
                    Step::Bad(bad) => {
                        let what = bad.reason.strip_prefix("unexpected ").unwrap_or_default();
                        let what = what
                            .split(" after the closing quote")
                            .next()
                            .unwrap_or_default();
                        ours.push(Err(what.to_string()))
                    }
                }
            }
            assert_eq!(
                ours,
                reference(&input),
                "{:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }
}
