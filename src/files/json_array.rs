//! A JSON array of objects as a source, streamed: elements are cut out of
//! the byte stream one at a time, so a multi-gigabyte array is never held
//! in memory, and written compact (a pretty-printed element is one line of
//! the wire). An element that is not an object is a rejected row; broken
//! structure (a missing comma, the array cut short) fails the run.

use std::io::BufRead;

use anyhow::{Context as _, Result, bail};

use crate::format::json::{check_object, write_compact};
use crate::record::Schema;
use crate::rejects::Payload;
use crate::source::{Context, Emit, Source, deliver};

/// A streamed JSON array.
pub struct JsonArraySource<R> {
    name: String,
    input: R,
    line: u64,
    peeked: Option<u8>,
}

impl<R: BufRead> JsonArraySource<R> {
    /// A source over `input`, called `name` in messages.
    pub fn new(input: R, name: &str) -> Self {
        JsonArraySource {
            name: name.to_string(),
            input,
            line: 1,
            peeked: None,
        }
    }

    fn next_byte(&mut self) -> Result<Option<u8>> {
        if let Some(b) = self.peeked.take() {
            return Ok(Some(b));
        }
        let buf = self
            .input
            .fill_buf()
            .with_context(|| format!("cannot read {}", self.name))?;
        let Some(&b) = buf.first() else {
            return Ok(None);
        };
        self.input.consume(1);
        if b == b'\n' {
            self.line += 1;
        }
        Ok(Some(b))
    }

    /// The next byte that is not JSON whitespace (space, tab, LF, CR). A
    /// control character there is no JSON at all: form feed, say, which
    /// other whitespace tests accept.
    fn next_non_space(&mut self) -> Result<Option<u8>> {
        loop {
            match self.next_byte()? {
                Some(b) if is_json_space(b) => continue,
                Some(b) if b.is_ascii_control() => bail!(
                    "{}:{}: unexpected control character 0x{b:02x} between JSON values \
                     (JSON whitespace is space, tab, LF and CR)",
                    self.name,
                    self.line
                ),
                other => return Ok(other),
            }
        }
    }

    /// Skips a UTF-8 byte order mark at the start of the input.
    fn skip_bom(&mut self) -> Result<()> {
        const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];
        let Some(first) = self.next_byte()? else {
            return Ok(());
        };
        if first != BOM[0] {
            self.peeked = Some(first);
            return Ok(());
        }
        for expected in &BOM[1..] {
            if self.next_byte()? != Some(*expected) {
                bail!(
                    "{}:1: expected a JSON array, found invalid UTF-8",
                    self.name
                );
            }
        }
        Ok(())
    }

    /// Reads one element starting with `first` into `out`; stops before the
    /// `,` or `]` that follows a scalar (kept in `peeked`).
    fn element(&mut self, first: u8, out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        out.push(first);
        let mut depth: u32 = match first {
            b'{' | b'[' => 1,
            _ => 0,
        };
        let mut in_string = first == b'"';
        let mut escaped = false;
        loop {
            if depth == 0 && !in_string {
                if first == b'"' || first == b'{' || first == b'[' {
                    return Ok(());
                }
                // A scalar runs to the next delimiter.
                match self.next_byte()? {
                    Some(b) if b == b',' || b == b']' || is_json_space(b) => {
                        self.peeked = Some(b);
                        return Ok(());
                    }
                    Some(b) => {
                        out.push(b);
                        continue;
                    }
                    None => return Ok(()),
                }
            }
            let Some(b) = self.next_byte()? else {
                bail!(
                    "{}:{}: the array ends in the middle of an element",
                    self.name,
                    self.line
                );
            };
            out.push(b);
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth -= 1,
                _ => {}
            }
        }
    }
}

impl<R: BufRead> Source for JsonArraySource<R> {
    fn schema(&self) -> Schema {
        Vec::new()
    }

    fn run(&mut self, emit: &mut Emit<'_>, cx: &mut Context<'_>) -> Result<()> {
        self.skip_bom()?;
        match self.next_non_space()? {
            Some(b'[') => {}
            Some(b'{') => bail!(
                "{}:{}: expected a JSON array, found an object (for one object per line use --format ndjson)",
                self.name,
                self.line
            ),
            None => bail!("{}: empty input: expected a JSON array", self.name),
            Some(_) => bail!("{}:{}: expected a JSON array", self.name, self.line),
        }
        let mut element = Vec::with_capacity(1024);
        let mut compact = Vec::with_capacity(1024);
        let mut first = true;
        loop {
            let mut b = self.next_non_space()?;
            if b == Some(b']') && first {
                break;
            }
            if !first {
                match b {
                    Some(b',') => b = self.next_non_space()?,
                    Some(b']') => break,
                    None => bail!(
                        "{}:{}: the array is not closed (missing ])",
                        self.name,
                        self.line
                    ),
                    Some(other) => bail!(
                        "{}:{}: expected , or ] between elements, found {:?}",
                        self.name,
                        self.line,
                        other as char
                    ),
                }
            }
            first = false;
            let Some(start) = b else {
                bail!(
                    "{}:{}: the array is not closed (missing ])",
                    self.name,
                    self.line
                );
            };
            let line = self.line;
            self.element(start, &mut element)?;
            cx.read += 1;
            match check_object(&element) {
                Ok(()) => {
                    // Checked as written (`1 2` is no number), then without
                    // the space between tokens: one line of the wire.
                    compact.clear();
                    write_compact(&mut compact, &element);
                    deliver(emit, &compact, cx, &self.name, line)?;
                }
                Err(reason) => {
                    cx.rejects.reject(
                        &self.name,
                        line,
                        &reason.to_string(),
                        Payload::Raw(&element),
                    )?;
                }
            }
        }
        if let Some(b) = self.next_non_space()? {
            bail!(
                "{}:{}: unexpected {:?} after the end of the array",
                self.name,
                self.line,
                b as char
            );
        }
        Ok(())
    }
}

/// JSON's whitespace: narrower than ASCII's (no form feed).
fn is_json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::{Progress, Verbosity};
    use crate::rejects::Rejects;

    fn collect(input: &str, rejects: Option<&std::path::Path>) -> Result<Vec<String>> {
        let progress = Progress::new(
            "test",
            Verbosity {
                quiet: true,
                ..Verbosity::default()
            },
            None,
        );
        let mut rejects = Rejects::open(rejects, None)?;
        let mut cx = Context {
            progress: &progress,
            rejects: &mut rejects,
            read: 0,
            at: None,
        };
        let mut out = Vec::new();
        JsonArraySource::new(input.as_bytes(), "a.json").run(
            &mut |r| {
                out.push(String::from_utf8(r.to_vec())?);
                Ok(crate::source::Taken::Done)
            },
            &mut cx,
        )?;
        Ok(out)
    }

    #[test]
    fn elements_are_cut_out_exactly() {
        let input = "[\n {\"a\": \"x,]}\\\" \"},\n{\"b\":[1,\n  {\"c\" :\r\n\t2}]} ]\n";
        let out = collect(input, None).unwrap();
        assert_eq!(out, [r#"{"a":"x,]}\" "}"#, r#"{"b":[1,{"c":2}]}"#]);
        assert_eq!(collect("[]", None).unwrap(), Vec::<String>::new());
        // Checked before the space goes: two numbers do not become one.
        let err = collect("[{\"a\": 1 2}]", None).unwrap_err().to_string();
        assert!(err.starts_with("a.json:1: invalid JSON"), "{err}");
    }

    #[test]
    fn structure_errors_name_the_line() {
        let err = collect("[{\"a\":1}\n{\"b\":2}]", None)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "a.json:2: expected , or ] between elements, found '{'");
        let err = collect("[{\"a\":1},\n{\"b\":", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("a.json:2: the array ends in the middle"),
            "{err}"
        );
    }

    #[test]
    fn form_feed_is_not_json_whitespace() {
        for input in ["[\u{c}]", "[{\"a\":1},\n\u{c}{\"b\":2}]", "\u{c}[]"] {
            let err = collect(input, None).unwrap_err().to_string();
            assert!(err.contains("unexpected control character 0x0c"), "{err}");
        }
        let err = collect("[{\"a\":1},\n\u{c}{\"b\":2}]", None)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("a.json:2: "), "{err}");
    }

    #[test]
    fn a_bom_at_the_start_is_skipped() {
        let out = collect("\u{feff}[{\"a\":1}]", None).unwrap();
        assert_eq!(out, [r#"{"a":1}"#]);
        assert_eq!(
            collect("\u{feff}", None).unwrap_err().to_string(),
            "a.json: empty input: expected a JSON array"
        );
    }

    #[test]
    fn scalars_are_rejected_rows() {
        let err = collect("[{\"a\":1},\n 42]", None).unwrap_err().to_string();
        assert_eq!(
            err,
            "a.json:2: expected a JSON object, found something else"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.ndjson");
        let out = collect("[{\"a\":1}, 42, \"s\", {\"b\":2}]", Some(&path)).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
    }
}
