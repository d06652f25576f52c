//! A fast reader for the records on the wire: one JSON object per line,
//! read into borrowed fields instead of a `serde_json::Value` tree.
//!
//! Loading spends most of its time turning lines into values, so records
//! are parsed here without allocating per field: keys and strings borrow
//! from the line unless they hold escapes, numbers stay the text they were
//! written as (so 19-digit ids and long decimals keep every digit), and
//! nested objects and arrays stay raw JSON text (checked by serde_json).
//! Duplicate keys are kept, so the loader can refuse them instead of
//! silently keeping one.

use std::borrow::Cow;

use serde::de::IgnoredAny;

/// One field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw<'a> {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as written.
    Number(Cow<'a, str>),
    /// A string, unescaped.
    Str(Cow<'a, str>),
    /// A nested object or array, as JSON text.
    Nested(Cow<'a, str>),
}

impl Raw<'_> {
    /// An owned copy, for records held across lines.
    pub fn into_owned(self) -> Raw<'static> {
        match self {
            Raw::Null => Raw::Null,
            Raw::Bool(b) => Raw::Bool(b),
            Raw::Number(n) => Raw::Number(Cow::Owned(n.into_owned())),
            Raw::Str(s) => Raw::Str(Cow::Owned(s.into_owned())),
            Raw::Nested(j) => Raw::Nested(Cow::Owned(j.into_owned())),
        }
    }

    /// True for `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Raw::Null)
    }

    /// The value as JSON text (strings quoted and escaped).
    pub fn to_json(&self) -> String {
        match self {
            Raw::Null => "null".into(),
            Raw::Bool(b) => b.to_string(),
            Raw::Number(n) => n.to_string(),
            Raw::Str(s) => {
                let mut out = Vec::with_capacity(s.len() + 2);
                super::json::write_str(&mut out, s);
                String::from_utf8(out).unwrap_or_default()
            }
            Raw::Nested(j) => j.to_string(),
        }
    }

    /// A short description of the value for messages: kind and preview.
    pub fn describe(&self) -> String {
        let kind = match self {
            Raw::Null => "null",
            Raw::Bool(_) => "boolean",
            Raw::Number(n) if !n.contains(['.', 'e', 'E']) => "integer",
            Raw::Number(_) => "number",
            Raw::Str(_) => "text",
            Raw::Nested(j) if j.starts_with('[') => "array",
            Raw::Nested(_) => "object",
        };
        let text = self.to_json();
        let preview = if text.chars().count() <= 40 {
            text
        } else {
            format!("{}...", text.chars().take(37).collect::<String>())
        };
        format!("{kind} value {preview}")
    }
}

/// A record's fields in input order.
pub type Fields<'a> = Vec<(Cow<'a, str>, Raw<'a>)>;

/// Parses one line holding a JSON object. The error says what is wrong.
pub fn parse_object(line: &[u8]) -> Result<Fields<'_>, String> {
    let mut fields = Vec::with_capacity(16);
    parse_object_into(line, &mut fields)?;
    Ok(fields)
}

/// An empty field list for another line, in the memory of `fields`: a
/// stage that parses millions of lines allocates its list once.
pub fn recycle<'b>(mut fields: Fields<'_>) -> Fields<'b> {
    fields.clear();
    // An empty vector collected into one of the same layout keeps its
    // allocation; the closure never runs.
    fields
        .into_iter()
        .map(|_| unreachable!("the list was emptied"))
        .collect()
}

/// [`parse_object`] into `fields`, which is emptied first.
pub fn parse_object_into<'a>(line: &'a [u8], fields: &mut Fields<'a>) -> Result<(), String> {
    parse_object_keeping(line, fields, |_| true)
}

/// [`parse_object_into`], keeping only the fields whose name `keep`
/// accepts: the others are checked as strictly (a bad value still fails
/// the line) but never built, for a stage that reads a few fields of wide
/// records.
#[inline]
pub fn parse_object_keeping<'a>(
    line: &'a [u8],
    fields: &mut Fields<'a>,
    keep: impl Fn(&str) -> bool,
) -> Result<(), String> {
    fields.clear();
    let text = super::utf8(line).map_err(|at| format!("invalid UTF-8 at byte {at}"))?;
    let mut p = Parser {
        text,
        pos: 0,
        failure: None,
    };
    p.skip_ws();
    match p.peek() {
        Some(b'{') => p.pos += 1,
        Some(b'[') => return Err("expected a JSON object, found array".into()),
        Some(b'"') => return Err("expected a JSON object, found text".into()),
        None => return Err("empty line".into()),
        Some(_) => return Err("expected a JSON object".into()),
    }
    match p.members(fields, keep) {
        Ok(()) => Ok(()),
        Err(Fail) => Err(p.failure.take().unwrap_or_else(|| "invalid JSON".into())),
    }
}

/// A parse failure; its message is in `Parser::failure`. Small results
/// keep the hot path in registers.
struct Fail;

/// Where a value lies in the line (byte offsets), and what it is.
#[derive(Clone, Copy)]
enum Span {
    Null,
    True,
    False,
    Number(usize, usize),
    /// A string's content, without escapes.
    Str(usize, usize),
    /// A string literal with escapes, quotes included.
    Escaped(usize, usize),
    Nested(usize, usize),
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    failure: Option<String>,
}

impl<'a> Parser<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn error(&self, what: &str) -> String {
        if self.pos >= self.text.len() {
            "invalid JSON: the line ends inside the object (cut short?)".into()
        } else {
            format!("invalid JSON: {what} at column {}", self.pos + 1)
        }
    }

    #[cold]
    fn fail(&mut self, what: &str) -> Fail {
        self.failure = Some(self.error(what));
        Fail
    }

    #[inline(always)]
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    /// The members after `{`, through the closing `}` and the end of the line.
    #[inline(always)]
    fn members(
        &mut self,
        fields: &mut Fields<'a>,
        keep: impl Fn(&str) -> bool,
    ) -> Result<(), Fail> {
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                if self.peek() != Some(b'"') {
                    return Err(self.fail("expected a field name"));
                }
                let key = match self.string()? {
                    Span::Str(s, e) => Cow::Borrowed(&self.text[s..e]),
                    Span::Escaped(s, e) => Cow::Owned(self.unescape(s, e)?),
                    _ => return Err(self.fail("expected a field name")),
                };
                self.skip_ws();
                if self.peek() != Some(b':') {
                    return Err(self.fail("expected ':' after a field name"));
                }
                self.pos += 1;
                self.skip_ws();
                let span = self.value()?;
                if !keep(&key) {
                    // Passed over, but an escape in it is still checked.
                    if let Span::Escaped(s, e) = span {
                        self.decode(s, e, None)?;
                    }
                } else {
                    fields.push((key, self.raw(span)?));
                }
                self.skip_ws();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.fail("expected ',' or '}'")),
                }
            }
        }
        self.skip_ws();
        if self.pos != self.text.len() {
            return Err(self.fail("unexpected text after the object"));
        }
        Ok(())
    }

    /// A value's field, borrowed from the line unless it held escapes.
    #[inline(always)]
    fn raw(&mut self, span: Span) -> Result<Raw<'a>, Fail> {
        Ok(match span {
            Span::Null => Raw::Null,
            Span::True => Raw::Bool(true),
            Span::False => Raw::Bool(false),
            Span::Number(s, e) => Raw::Number(Cow::Borrowed(&self.text[s..e])),
            Span::Str(s, e) => Raw::Str(Cow::Borrowed(&self.text[s..e])),
            Span::Nested(s, e) => Raw::Nested(Cow::Borrowed(&self.text[s..e])),
            Span::Escaped(s, e) => Raw::Str(Cow::Owned(self.unescape(s, e)?)),
        })
    }

    /// A string starting at the opening quote.
    #[inline(always)]
    fn string(&mut self) -> Result<Span, Fail> {
        let start = self.pos + 1;
        let bytes = self.bytes();
        let i = start + super::json::plain_prefix_in(&bytes[start..]);
        self.pos = i;
        match bytes.get(i) {
            Some(b'"') => {
                self.pos = i + 1;
                Ok(Span::Str(start, i))
            }
            Some(b'\\') => {
                let mut j = i;
                while j < bytes.len() {
                    match bytes[j] {
                        b'\\' => j += 2,
                        b'"' => break,
                        _ => j += 1,
                    }
                }
                if j >= bytes.len() {
                    self.pos = bytes.len();
                    return Err(self.fail("unterminated string"));
                }
                self.pos = j + 1;
                Ok(Span::Escaped(start - 1, j + 1))
            }
            Some(_) => Err(self.fail("control character in a string")),
            None => Err(self.fail("unterminated string")),
        }
    }

    /// A string literal with escapes (quotes included), decoded: `\"`,
    /// `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t` and `\uXXXX`, where a
    /// surrogate must come in a pair. Anything else fails where it stands.
    #[cold]
    fn unescape(&mut self, start: usize, end: usize) -> Result<String, Fail> {
        let mut out = String::with_capacity(end - start);
        self.decode(start, end, Some(&mut out))?;
        Ok(out)
    }

    /// [`Parser::unescape`] into `out`, or only checked when `out` is
    /// `None` (a field that is passed over).
    fn decode(
        &mut self,
        start: usize,
        end: usize,
        mut out: Option<&mut String>,
    ) -> Result<(), Fail> {
        let text = self.text;
        let bytes = text.as_bytes();
        let (mut i, end) = (start + 1, end - 1);
        // The position moves only to point a message at a bad escape.
        let resume = self.pos;
        loop {
            let plain = i + super::json::plain_prefix(&bytes[i..end]);
            // The prefix stops at an ASCII byte: a character boundary.
            if let Some(out) = out.as_deref_mut() {
                out.push_str(&text[i..plain]);
            }
            i = plain;
            if i == end {
                self.pos = resume;
                return Ok(());
            }
            self.pos = i;
            if bytes[i] != b'\\' {
                return Err(self.fail("control character in a string"));
            }
            let c = match bytes.get(i + 1) {
                Some(b'"') => '"',
                Some(b'\\') => '\\',
                Some(b'/') => '/',
                Some(b'b') => '\u{8}',
                Some(b'f') => '\u{c}',
                Some(b'n') => '\n',
                Some(b'r') => '\r',
                Some(b't') => '\t',
                Some(b'u') => {
                    let unit = |at: usize| {
                        text.get(at..at + 4)
                            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                    };
                    let Some(first) = unit(i + 2).filter(|_| i + 6 <= end) else {
                        return Err(self.fail("invalid escape (\\u needs 4 hex digits)"));
                    };
                    let code = match first {
                        0xD800..=0xDBFF => {
                            let low = (bytes.get(i + 6..i + 8) == Some(&b"\\u"[..]))
                                .then(|| unit(i + 8))
                                .flatten()
                                .filter(|low| (0xDC00..=0xDFFF).contains(low) && i + 12 <= end);
                            let Some(low) = low else {
                                return Err(self.fail("invalid escape (a lone leading surrogate)"));
                            };
                            i += 6;
                            0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00)
                        }
                        0xDC00..=0xDFFF => {
                            return Err(self.fail("invalid escape (a lone trailing surrogate)"));
                        }
                        code => code,
                    };
                    i += 4;
                    char::from_u32(code).expect("a scalar value: surrogates were paired")
                }
                _ => return Err(self.fail("invalid escape")),
            };
            if let Some(out) = out.as_deref_mut() {
                out.push(c);
            }
            i += 2;
        }
    }

    #[inline(always)]
    fn value(&mut self) -> Result<Span, Fail> {
        match self.peek() {
            Some(b'"') => self.string(),
            Some(b'{' | b'[') => self.nested(),
            Some(b't') => self.literal("true", Span::True),
            Some(b'f') => self.literal("false", Span::False),
            Some(b'n') => self.literal("null", Span::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.fail("expected a value")),
        }
    }

    fn literal(&mut self, word: &str, value: Span) -> Result<Span, Fail> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.fail("expected a value"))
        }
    }

    #[inline(always)]
    fn digits(&mut self) -> usize {
        let rest = &self.bytes()[self.pos..];
        let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        self.pos += n;
        n
    }

    #[inline(always)]
    fn number(&mut self) -> Result<Span, Fail> {
        let start = self.pos;
        if self.number_body() {
            Ok(Span::Number(start, self.pos))
        } else {
            self.pos = start;
            Err(self.fail("malformed number"))
        }
    }

    /// JSON number syntax from the current position; false if malformed.
    #[inline(always)]
    fn number_body(&mut self) -> bool {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        let n = self.digits();
        if n == 0 || (n > 1 && self.bytes()[int_start] == b'0') {
            return false;
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return false;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return false;
            }
        }
        true
    }

    fn nested(&mut self) -> Result<Span, Fail> {
        let start = self.pos;
        let bytes = self.bytes();
        let mut depth = 0usize;
        let mut i = start;
        let mut in_string = false;
        while i < bytes.len() {
            let b = bytes[i];
            if in_string {
                match b {
                    b'\\' => i += 1,
                    b'"' => in_string = false,
                    _ => {}
                }
            } else {
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            let raw = &self.text[start..=i];
                            if let Err(err) = serde_json::from_str::<IgnoredAny>(raw) {
                                self.failure = Some(format!("invalid JSON: {err}"));
                                return Err(Fail);
                            }
                            self.pos = i + 1;
                            return Ok(Span::Nested(start, i + 1));
                        }
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        self.pos = bytes.len();
        Err(self.fail("unterminated object or array"))
    }
}

/// An owned copy of a record's fields.
pub fn into_owned(fields: Fields<'_>) -> Fields<'static> {
    fields
        .into_iter()
        .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_records_keep_numbers_as_written() {
        let fields = parse_object(
            br#" {"id":12345678901234567890123,"p":2.50,"s":"a\"b\u00e9","n":null,"t":true,"j":{"a":[1,"}"]}} "#,
        )
        .unwrap();
        assert_eq!(
            fields[0],
            (
                Cow::Borrowed("id"),
                Raw::Number("12345678901234567890123".into())
            )
        );
        assert_eq!(fields[1].1, Raw::Number("2.50".into()));
        assert_eq!(fields[2].1, Raw::Str("a\"bé".into()));
        assert_eq!(fields[3].1, Raw::Null);
        assert_eq!(fields[4].1, Raw::Bool(true));
        assert_eq!(fields[5].1, Raw::Nested(r#"{"a":[1,"}"]}"#.into()));
        assert_eq!(parse_object(b"{}").unwrap(), vec![]);
    }

    #[test]
    fn agrees_with_serde_json_on_what_is_valid() {
        let cases: [&[u8]; 24] = [
            br#"{"a":"\u00e9\/\b\f\n\r\t\"\\x"}"#,
            br#"{"a":"\ud83d\ude00"}"#,
            br#"{"a":"\ud83d"}"#,
            br#"{"a":"\ud83dx"}"#,
            br#"{"a":"\ud83d\u0041"}"#,
            br#"{"a":"\ude00"}"#,
            br#"{"a":"\u12"}"#,
            br#"{"a":"\u12g4"}"#,
            b"{\"a\":\"\\n\x01\"}",
            br#"{"\u0041":"\"","b":"x\"}"#,
            br#"{"a":1}"#,
            br#"{"a":01}"#,
            br#"{"a":1.}"#,
            br#"{"a":-}"#,
            br#"{"a":1e5}"#,
            br#"{"a":tru}"#,
            br#"{"a":"x}"#,
            br#"{"a":[1,2}"#,
            br#"{"a":1,}"#,
            br#"{"a":1} x"#,
            b"{\"a\":\"\x01\"}",
            br#"{"a":"\q"}"#,
            br#"{"a" 1}"#,
            br#"{"a":{"b":[true,null,"\u0041"]}}"#,
        ];
        for case in cases {
            let ours = parse_object(case).is_ok();
            let theirs =
                serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(case).is_ok();
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(case));
        }
    }

    #[test]
    fn a_recycled_list_keeps_its_memory() {
        let line = br#"{"a":1,"b":"x"}"#.to_vec();
        let mut fields = parse_object(&line).unwrap();
        let capacity = fields.capacity();
        let other = br#"{"c":null}"#.to_vec();
        let mut again = recycle(fields);
        assert!(again.is_empty());
        assert_eq!(again.capacity(), capacity);
        parse_object_into(&other, &mut again).unwrap();
        assert_eq!(again, [(Cow::Borrowed("c"), Raw::Null)]);
        fields = recycle(again);
        assert_eq!(fields.capacity(), capacity);
    }

    #[test]
    fn errors_say_what_and_where() {
        assert_eq!(
            parse_object(b"[1]").unwrap_err(),
            "expected a JSON object, found array"
        );
        assert_eq!(
            parse_object(br#"{"a":01}"#).unwrap_err(),
            "invalid JSON: malformed number at column 6"
        );
        assert!(
            parse_object(b"{\"a\":\"\xff\"}")
                .unwrap_err()
                .starts_with("invalid UTF-8")
        );
    }
}
