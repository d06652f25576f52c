//! NDJSON files as a source: each line is checked to be one JSON object and
//! passed on byte for byte. Control lines in the file (a saved stream) are
//! checked, not copied: a saved stream that was cut short fails here instead
//! of being passed on as if it were whole.

use std::io::BufRead;

use anyhow::{Context as _, Result, anyhow};

use crate::format::json::check_object;
use crate::record::Schema;
use crate::rejects::Payload;
use crate::source::{Context, Emit, Source, deliver};
use crate::wire::{self, Framing, Line};

/// An NDJSON input read line by line.
pub struct NdjsonSource<R> {
    name: String,
    input: R,
    line_no: u64,
    framing: Framing,
}

impl<R: BufRead> NdjsonSource<R> {
    /// A source over `input`, called `name` in messages.
    pub fn new(input: R, name: &str) -> Self {
        NdjsonSource {
            name: name.to_string(),
            input,
            line_no: 0,
            framing: Framing::new(),
        }
    }

    fn handle_line(
        &mut self,
        text: &[u8],
        emit: &mut Emit<'_>,
        cx: &mut Context<'_>,
    ) -> Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        let line_no = self.line_no;
        if wire::looks_like_control(text) {
            let parsed =
                wire::parse_line(text).map_err(|e| anyhow!("{}:{line_no}: {e}", self.name))?;
            match parsed {
                Line::Control(kind, obj) => {
                    self.framing
                        .control(&kind, &obj, line_no)
                        .map_err(|e| wire::locate(&self.name, e))?;
                    return Ok(());
                }
                Line::BadControl(reason) => {
                    cx.read += 1;
                    self.framing
                        .record(line_no)
                        .map_err(|e| wire::locate(&self.name, e))?;
                    return cx
                        .rejects
                        .reject(&self.name, line_no, &reason, Payload::Raw(text));
                }
                Line::Record(_) => {}
            }
        }
        cx.read += 1;
        if let Err(reason) = check_object(text) {
            return cx
                .rejects
                .reject(&self.name, line_no, &reason.to_string(), Payload::Raw(text));
        }
        self.framing
            .record(line_no)
            .map_err(|e| wire::locate(&self.name, e))?;
        deliver(emit, text, cx, &self.name, line_no)
    }
}

impl<R: BufRead> Source for NdjsonSource<R> {
    fn schema(&self) -> Schema {
        Vec::new()
    }

    fn run(&mut self, emit: &mut Emit<'_>, cx: &mut Context<'_>) -> Result<()> {
        let mut line = Vec::with_capacity(4096);
        loop {
            line.clear();
            let n = self
                .input
                .read_until(b'\n', &mut line)
                .with_context(|| format!("cannot read {}", self.name))?;
            if n == 0 {
                let framing = std::mem::take(&mut self.framing);
                framing.finish().map_err(|e| wire::locate(&self.name, e))?;
                return Ok(());
            }
            self.line_no += 1;
            let text = if self.line_no == 1 {
                wire::strip_bom(&line)
            } else {
                &line
            };
            self.handle_line(text.trim_ascii(), emit, cx)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_pass_other_json_fails() {
        assert!(check_object(br#"{"a":[1,{"b":null}]}"#).is_ok());
        assert_eq!(
            check_object(b"[1]").unwrap_err().to_string(),
            "expected a JSON object, found an array"
        );
        assert!(check_object(br#"{"a":1"#).is_err());
        assert!(check_object(b"{\"a\":\"\xff\"}").is_err());
        assert!(check_object(br#"{"a":1} {"b":2}"#).is_err());
    }

    #[test]
    fn deep_nesting_neither_crashes_extract_nor_load() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(5000), "]".repeat(5000));
        assert!(check_object(deep.as_bytes()).is_ok());
        let err = crate::wire::parse_line(deep.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("recursion limit"), "{err}");
    }
}
