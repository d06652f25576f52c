//! The wire between stages: NDJSON records framed by control lines.
//!
//! A control line is a JSON object whose first key is `"@etl"`. A producer
//! writes `{"@etl":"begin",...}` before its first record and
//! `{"@etl":"end","rows":N,...}` after its last, and only when it succeeded.
//! A consumer that saw `begin` but reaches EOF without `end` knows its
//! producer died and must not commit. [`Framing`] keeps that bookkeeping.

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};

use crate::record::{FieldType, Record, Schema};

/// The key that marks a control line when it comes first in an object.
pub const CONTROL_KEY: &str = "@etl";

/// Version of the control-line format written into `begin` lines. Version
/// 2 added the logical types (decimal, date, time, timestamp, timestamptz,
/// uuid, bytes) to the schema; a version-1 line is read as before.
pub const WIRE_VERSION: u64 = 2;

/// What a producer says before its first record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Begin {
    /// The stream's name: keys incremental state, shows in messages.
    pub stream: String,
    /// Where the data came from (a path, a table), for people reading logs.
    pub source: Option<String>,
    /// Column types the producer knows, in column order.
    pub schema: Schema,
    /// For incremental runs: the stored bookmark the run started from (null
    /// on a first run). A loader that stores bookmarks refuses the stream if
    /// its stored bookmark is no longer this one: another run got there first.
    pub from: Option<Value>,
    /// For a batch from `etl-watch`: an id derived from the source
    /// positions it covers. A database load that already committed this id
    /// skips the batch, so a batch resent after a crash repeats nothing.
    pub batch: Option<String>,
}

/// What a producer says after its last record, on success only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct End {
    /// The stream's name, as in `begin`.
    pub stream: String,
    /// How many records the producer wrote.
    pub rows: u64,
    /// The stream's new incremental position, if it has one.
    pub bookmark: Option<Value>,
    /// For a batch from `etl-watch`: the source positions it covers (file
    /// identity and byte range, or a broker's sequence range), for people
    /// and tools reading the wire; the batch id in `begin` is what a load
    /// checks.
    pub positions: Option<Value>,
}

impl Begin {
    /// The control line, without its newline.
    pub fn to_line(&self) -> String {
        let mut obj = Map::new();
        obj.insert(CONTROL_KEY.into(), "begin".into());
        obj.insert("version".into(), WIRE_VERSION.into());
        obj.insert("stream".into(), self.stream.clone().into());
        if let Some(source) = &self.source {
            obj.insert("source".into(), source.clone().into());
        }
        if !self.schema.is_empty() {
            let schema: Map<String, Value> = self
                .schema
                .iter()
                .map(|(name, t)| (name.clone(), Value::from(t.name())))
                .collect();
            obj.insert("schema".into(), Value::Object(schema));
        }
        if let Some(from) = &self.from {
            obj.insert("from".into(), from.clone());
        }
        if let Some(batch) = &self.batch {
            obj.insert("batch".into(), batch.clone().into());
        }
        Value::Object(obj).to_string()
    }

    /// Reads a `begin` control object; unknown keys are ignored so that
    /// newer producers can add fields. A version-1 line (or one without a
    /// version) drops schema entries whose type it does not know, as
    /// version 1 readers did; from version 2 on, an unknown type is an
    /// error naming the column.
    pub fn from_control(obj: &Map<String, Value>) -> Result<Begin> {
        let version = obj.get("version").and_then(Value::as_u64).unwrap_or(1);
        let mut schema = Vec::new();
        if let Some(Value::Object(fields)) = obj.get("schema") {
            for (name, t) in fields {
                match t.as_str().and_then(FieldType::from_name) {
                    Some(t) => schema.push((name.clone(), t)),
                    None if version <= 1 => {}
                    None => bail!(
                        "the begin line declares column {name:?} with type {t}, which this \
                         version of etlkit does not know (it knows {})",
                        crate::record::TYPE_NAMES
                    ),
                }
            }
        }
        Ok(Begin {
            stream: string_field(obj, "stream"),
            source: obj.get("source").and_then(Value::as_str).map(String::from),
            schema,
            from: obj.get("from").cloned(),
            batch: obj.get("batch").and_then(Value::as_str).map(String::from),
        })
    }
}

impl End {
    /// The control line, without its newline.
    pub fn to_line(&self) -> String {
        let mut obj = Map::new();
        obj.insert(CONTROL_KEY.into(), "end".into());
        obj.insert("stream".into(), self.stream.clone().into());
        obj.insert("rows".into(), self.rows.into());
        if let Some(bookmark) = &self.bookmark {
            obj.insert("bookmark".into(), bookmark.clone());
        }
        if let Some(positions) = &self.positions {
            obj.insert("positions".into(), positions.clone());
        }
        Value::Object(obj).to_string()
    }

    /// Reads an `end` control object.
    pub fn from_control(obj: &Map<String, Value>) -> Result<End> {
        let rows = obj
            .get("rows")
            .and_then(Value::as_u64)
            .context("end line has no valid \"rows\" count")?;
        Ok(End {
            stream: string_field(obj, "stream"),
            rows,
            bookmark: obj.get("bookmark").cloned(),
            positions: obj.get("positions").cloned(),
        })
    }
}

fn string_field(obj: &Map<String, Value>, key: &str) -> String {
    obj.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// One parsed line of the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// A data record.
    Record(Record),
    /// A control line: its kind (`"begin"` or `"end"`) and the object.
    Control(String, Map<String, Value>),
    /// An object whose first key is `"@etl"` but which is no control line
    /// etlkit knows. It is not a record either (the key marks it as not
    /// one), so a reader rejects it with this reason instead of dropping it.
    BadControl(String),
}

/// Why a record whose first field is named `"@etl"` cannot be written on:
/// every reader would take it for a control line.
pub const CONTROL_KEY_FIRST: &str =
    "a record's first field may not be named \"@etl\": on the wire that key marks a control line";

/// The control line kinds of this wire version.
pub const CONTROL_KINDS: [&str; 2] = ["begin", "end"];

/// A line with a UTF-8 byte order mark cut off its start. Editors and
/// Windows exporters put one at the start of a file; it is not data.
pub fn strip_bom(line: &[u8]) -> &[u8] {
    line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
}

/// Cheap test for a control line on raw bytes, before full parsing: does
/// the object open with the `"@etl"` key?
pub fn looks_like_control(line: &[u8]) -> bool {
    let rest = trim_ascii_start(line);
    let Some(rest) = rest.strip_prefix(b"{") else {
        return false;
    };
    trim_ascii_start(rest).starts_with(b"\"@etl\"")
}

fn trim_ascii_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// Parses one non-blank line of the wire. The error says what is wrong;
/// the caller adds where.
pub fn parse_line(line: &[u8]) -> Result<Line> {
    let value: Value = serde_json::from_slice(line).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Value::Object(obj) = value else {
        bail!(
            "expected a JSON object, found {}",
            crate::record::describe_kind(&value)
        );
    };
    match obj.iter().next() {
        Some((key, kind)) if key == CONTROL_KEY => match kind.as_str() {
            Some(kind) if CONTROL_KINDS.contains(&kind) => {
                let kind = kind.to_string();
                Ok(Line::Control(kind, obj))
            }
            Some(kind) => Ok(Line::BadControl(format!(
                "unknown control line {kind:?}: an object whose first key is \"@etl\" \
                 is a control line ({}), not a record",
                CONTROL_KINDS.join(" or ")
            ))),
            None => Ok(Line::BadControl(format!(
                "control line's \"@etl\" value is not a string: {}; an object whose first key \
                 is \"@etl\" is a control line ({}), not a record",
                crate::record::preview(kind),
                CONTROL_KINDS.join(" or ")
            ))),
        },
        _ => Ok(Line::Record(obj)),
    }
}

/// How a finished input was framed.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// No lines at all: the producer may have died before writing.
    Empty,
    /// Records without control lines: a foreign producer, committed at EOF.
    Unframed,
    /// One or more complete `begin` ... `end` segments.
    Framed(Vec<End>),
}

#[derive(Debug)]
struct OpenSegment {
    begin: Begin,
    line: u64,
    rows: u64,
}

/// A framing error at a line of the input.
#[derive(Debug)]
pub struct FramingError {
    /// The input line, when the error has one.
    pub line: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for FramingError {}

fn at(line: Option<u64>, message: String) -> anyhow::Error {
    FramingError { line, message }.into()
}

/// Names the input in a framing error: `name:line: message`.
pub fn locate(name: &str, err: anyhow::Error) -> anyhow::Error {
    match err.downcast_ref::<FramingError>() {
        Some(FramingError {
            line: Some(line),
            message,
        }) => anyhow::anyhow!("{name}:{line}: {message}"),
        _ => anyhow::anyhow!("{name}: {err:#}"),
    }
}

/// Checks that a stream of lines is framed truthfully: `begin` and `end`
/// pair up, the `end` count matches, and nothing is missing at EOF.
#[derive(Debug, Default)]
pub struct Framing {
    open: Option<OpenSegment>,
    ended: Vec<End>,
    records: u64,
    lines: u64,
}

impl Framing {
    /// A checker for a new input.
    pub fn new() -> Self {
        Framing::default()
    }

    /// Records seen so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The `begin` of the segment being read, if any.
    pub fn current(&self) -> Option<&Begin> {
        self.open.as_ref().map(|s| &s.begin)
    }

    /// Notes a record on line `line`.
    pub fn record(&mut self, line: u64) -> Result<()> {
        self.lines += 1;
        self.records += 1;
        match &mut self.open {
            Some(seg) => seg.rows += 1,
            None if !self.ended.is_empty() => {
                return Err(at(
                    Some(line),
                    "record after the stream's end line; \
                     a framed stream may not carry records outside begin/end"
                        .into(),
                ));
            }
            None => {}
        }
        Ok(())
    }

    /// Notes a control line; returns the `begin` it opened, if it was one.
    pub fn control(
        &mut self,
        kind: &str,
        obj: &Map<String, Value>,
        line: u64,
    ) -> Result<Option<Begin>> {
        self.lines += 1;
        match kind {
            "begin" => {
                if let Some(seg) = &self.open {
                    return Err(at(
                        Some(line),
                        format!(
                            "a new stream begins while stream {:?} (begun on line {}) \
                             has no end: upstream ended early after {} rows",
                            seg.begin.stream, seg.line, seg.rows
                        ),
                    ));
                }
                if self.records > 0 && self.ended.is_empty() {
                    return Err(at(
                        Some(line),
                        format!("begin line after {} unframed records", self.records),
                    ));
                }
                let begin = Begin::from_control(obj).map_err(|e| at(Some(line), e.to_string()))?;
                self.open = Some(OpenSegment {
                    begin: begin.clone(),
                    line,
                    rows: 0,
                });
                Ok(Some(begin))
            }
            "end" => {
                let Some(seg) = self.open.take() else {
                    return Err(at(Some(line), "end line without a begin line".into()));
                };
                let end = End::from_control(obj).map_err(|e| at(Some(line), e.to_string()))?;
                if end.rows != seg.rows {
                    return Err(at(
                        Some(line),
                        format!(
                            "end line of stream {:?} counts {} rows but {} arrived: \
                             records were lost or added between stages",
                            seg.begin.stream, end.rows, seg.rows
                        ),
                    ));
                }
                self.ended.push(end);
                Ok(None)
            }
            // parse_line turns any other kind into Line::BadControl.
            other => Err(at(Some(line), format!("unknown control line {other:?}"))),
        }
    }

    /// Called at EOF: how the input was framed, or the truncation error.
    pub fn finish(self) -> Result<Shape> {
        if let Some(seg) = self.open {
            return Err(at(
                None,
                format!(
                    "upstream ended early after {} rows: stream {:?} (begun on line {}) has no end line",
                    seg.rows, seg.begin.stream, seg.line
                ),
            ));
        }
        Ok(if self.lines == 0 {
            Shape::Empty
        } else if self.ended.is_empty() {
            Shape::Unframed
        } else {
            Shape::Framed(self.ended)
        })
    }
}

/// One item of the wire, as [`Reader`] hands it on.
#[derive(Debug)]
pub enum Item<'a> {
    /// A segment begins.
    Begin(Begin),
    /// A record: its JSON object text, trimmed, not yet parsed (a line that
    /// is not valid JSON is the caller's reject).
    Record(&'a [u8]),
    /// An object whose first key is `"@etl"` but which is no control line:
    /// counted as a row of its segment, for the caller to reject.
    Bad {
        /// Why it is not a control line.
        reason: String,
        /// The line's text.
        text: &'a [u8],
    },
    /// A segment ended, its count checked.
    End(End),
}

/// Reads the wire from any input: one line at a time, blank lines and a
/// leading byte order mark skipped, control lines parsed and the framing
/// checked once for every program that reads it. Errors name the input
/// and line.
pub struct Reader<R> {
    input: R,
    name: String,
    framing: Framing,
    line: Vec<u8>,
    line_no: u64,
    /// The last line was read where it lay in the input's buffer: its
    /// length, consumed when the next line is read.
    pending: usize,
}

impl<R: std::io::BufRead> Reader<R> {
    /// A reader of `input`, called `name` in messages.
    pub fn new(input: R, name: &str) -> Self {
        Reader {
            input,
            name: name.to_string(),
            framing: Framing::new(),
            line: Vec::with_capacity(4096),
            line_no: 0,
            pending: 0,
        }
    }

    /// The input's name, as messages give it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of the line last read (1-based).
    pub fn line_no(&self) -> u64 {
        self.line_no
    }

    /// The next item with its line number, or `None` at EOF (then call
    /// [`Reader::finish`]).
    pub fn next_item(&mut self) -> Result<Option<(u64, Item<'_>)>> {
        // A line that lies whole in the input's buffer is read there; one
        // that runs past it is copied out.
        let copied = loop {
            self.input.consume(std::mem::take(&mut self.pending));
            let buf = match self.input.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!("cannot read {}", self.name)));
                }
            };
            if buf.is_empty() {
                return Ok(None);
            }
            self.line_no += 1;
            let copied = match memchr::memchr(b'\n', buf) {
                Some(i) => {
                    self.pending = i + 1;
                    false
                }
                None => {
                    self.line.clear();
                    self.input
                        .read_until(b'\n', &mut self.line)
                        .with_context(|| format!("cannot read {}", self.name))?;
                    true
                }
            };
            let line = if copied {
                &self.line[..]
            } else {
                &self.input.fill_buf()?[..self.pending]
            };
            let line = if self.line_no == 1 {
                strip_bom(line)
            } else {
                line
            };
            if !line.trim_ascii().is_empty() {
                break copied;
            }
        };
        let line = if copied {
            &self.line[..]
        } else {
            // The same buffer: nothing was consumed since it was filled.
            &self.input.fill_buf()?[..self.pending]
        };
        let start = if self.line_no == 1 {
            line.len() - strip_bom(line).len()
        } else {
            0
        };
        let line_no = self.line_no;
        let text = line[start..].trim_ascii();
        if !looks_like_control(text) {
            self.framing
                .record(line_no)
                .map_err(|e| locate(&self.name, e))?;
            return Ok(Some((line_no, Item::Record(text))));
        }
        match parse_line(text).map_err(|e| anyhow::anyhow!("{}:{line_no}: {e}", self.name))? {
            Line::Control(kind, obj) => {
                let begin = self
                    .framing
                    .control(&kind, &obj, line_no)
                    .map_err(|e| locate(&self.name, e))?;
                let item = match begin {
                    Some(begin) => Item::Begin(begin),
                    None => Item::End(
                        self.framing
                            .ended
                            .last()
                            .cloned()
                            .expect("an end line that passed the framing check was kept"),
                    ),
                };
                Ok(Some((line_no, item)))
            }
            Line::BadControl(reason) => {
                self.framing
                    .record(line_no)
                    .map_err(|e| locate(&self.name, e))?;
                Ok(Some((line_no, Item::Bad { reason, text })))
            }
            Line::Record(_) => unreachable!("a line whose first key is @etl is not a record"),
        }
    }

    /// At EOF: how the input was framed, or the truncation error.
    pub fn finish(self) -> Result<Shape> {
        let name = self.name;
        self.framing.finish().map_err(|e| locate(&name, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_in_place_or_copied_alike() {
        let input = "\u{feff}{\"@etl\":\"begin\",\"stream\":\"s\"}\n\n   \n{\"long\":\"a line longer than the buffer\"}\r\n{\"b\":2}\n{\"@etl\":\"end\",\"stream\":\"s\",\"rows\":2}";
        for capacity in [1, 7, 16, 64, 4096] {
            let buffered = std::io::BufReader::with_capacity(capacity, input.as_bytes());
            let mut reader = Reader::new(buffered, "t");
            let mut seen = Vec::new();
            while let Some((line_no, item)) = reader.next_item().expect("read") {
                seen.push(match item {
                    Item::Record(text) => format!("{line_no}:{}", String::from_utf8_lossy(text)),
                    Item::Begin(_) => format!("{line_no}:begin"),
                    Item::End(end) => format!("{line_no}:end {}", end.rows),
                    Item::Bad { reason, .. } => format!("{line_no}:bad {reason}"),
                });
            }
            assert_eq!(
                seen,
                [
                    "1:begin",
                    "4:{\"long\":\"a line longer than the buffer\"}",
                    "5:{\"b\":2}",
                    "6:end 2",
                ],
                "buffer of {capacity} bytes"
            );
        }
    }

    fn control(line: &str) -> (String, Map<String, Value>) {
        match parse_line(line.as_bytes()).expect("valid line") {
            Line::Control(kind, obj) => (kind, obj),
            Line::Record(_) | Line::BadControl(_) => panic!("not a control line: {line}"),
        }
    }

    #[test]
    fn begin_round_trips_with_schema() {
        let begin = Begin {
            stream: "orders".into(),
            source: Some("orders.csv".into()),
            schema: vec![
                ("id".into(), FieldType::Integer),
                ("zip".into(), FieldType::Text),
            ],
            from: Some(Value::Null),
            batch: Some("f00d".into()),
        };
        let line = begin.to_line();
        assert!(looks_like_control(line.as_bytes()));
        let (kind, obj) = control(&line);
        assert_eq!(kind, "begin");
        assert_eq!(Begin::from_control(&obj).unwrap(), begin);
    }

    #[test]
    fn begin_carries_logical_types_in_version_2() {
        let begin = Begin {
            stream: "t".into(),
            schema: vec![
                ("n".into(), FieldType::Decimal(Some((38, 10)))),
                ("m".into(), FieldType::Decimal(None)),
                ("d".into(), FieldType::Date),
                ("t".into(), FieldType::Time),
                ("ts".into(), FieldType::Timestamp),
                ("at".into(), FieldType::TimestampTz),
                ("u".into(), FieldType::Uuid),
                ("b".into(), FieldType::Bytes),
            ],
            ..Begin::default()
        };
        let line = begin.to_line();
        assert!(line.contains(r#""version":2"#), "{line}");
        assert!(line.contains(r#""n":"decimal(38,10)""#), "{line}");
        let (_, obj) = control(&line);
        assert_eq!(Begin::from_control(&obj).unwrap(), begin);
    }

    #[test]
    fn integers_keep_every_digit_of_unsigned_64_bit() {
        let line = br#"{"u":18446744073709551615,"i":-9223372036854775808}"#;
        match parse_line(line) {
            Ok(Line::Record(r)) => {
                assert_eq!(r["u"].as_u64(), Some(u64::MAX));
                assert_eq!(Value::Object(r).to_string().as_bytes(), line);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_types_are_dropped_in_version_1_and_refused_after() {
        let (_, obj) = control(
            r#"{"@etl":"begin","version":1,"stream":"s","schema":{"a":"integer","b":"money"}}"#,
        );
        let begin = Begin::from_control(&obj).unwrap();
        assert_eq!(begin.schema, vec![("a".to_string(), FieldType::Integer)]);
        let (_, obj) = control(
            r#"{"@etl":"begin","version":2,"stream":"s","schema":{"a":"integer","b":"money"}}"#,
        );
        let err = Begin::from_control(&obj).unwrap_err().to_string();
        assert!(
            err.contains(r#"column "b""#) && err.contains("money"),
            "{err}"
        );
    }

    #[test]
    fn record_with_control_key_later_is_a_record() {
        let line = br#"{"id":1,"@etl":"begin"}"#;
        assert!(!looks_like_control(line));
        assert!(matches!(parse_line(line), Ok(Line::Record(_))));
    }

    #[test]
    fn unknown_control_kinds_are_neither_control_lines_nor_records() {
        for line in [r#"{"@etl":"bogus","x":1}"#, r#"{"@etl":5}"#] {
            match parse_line(line.as_bytes()) {
                Ok(Line::BadControl(reason)) => {
                    assert!(reason.contains("control line"), "{reason}")
                }
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn non_objects_are_errors() {
        let err = parse_line(b"[1,2]").unwrap_err();
        assert_eq!(err.to_string(), "expected a JSON object, found array");
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let mut framing = Framing::new();
        let (kind, obj) = control(r#"{"@etl":"begin","stream":"s"}"#);
        framing.control(&kind, &obj, 1).expect("begin");
        framing.record(2).expect("record");
        let err = framing.finish().unwrap_err().to_string();
        assert!(
            err.starts_with("upstream ended early after 1 rows"),
            "{err}"
        );
    }

    #[test]
    fn end_count_must_match() {
        let mut framing = Framing::new();
        let (kind, obj) = control(r#"{"@etl":"begin","stream":"s"}"#);
        framing.control(&kind, &obj, 1).expect("begin");
        framing.record(2).expect("record");
        let (kind, obj) = control(r#"{"@etl":"end","stream":"s","rows":2}"#);
        let err = framing.control(&kind, &obj, 3).unwrap_err().to_string();
        assert!(err.contains("counts 2 rows but 1 arrived"), "{err}");
    }

    #[test]
    fn shapes() {
        assert_eq!(Framing::new().finish().expect("ok"), Shape::Empty);
        let mut framing = Framing::new();
        framing.record(1).expect("record");
        assert_eq!(framing.finish().expect("ok"), Shape::Unframed);
    }
}
