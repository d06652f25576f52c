//! CSV and TSV files as a source: header, typed columns, strict parsing.

use std::collections::{HashMap, VecDeque};
use std::io::BufRead;

use anyhow::{Result, bail};

use crate::format::csv::{CsvParser, Quoting, RawRecord, Step};
use crate::format::infer::{ColumnGuess, Encoded, Typed};
use crate::format::json;
use crate::format::nulls::NullTokens;
use crate::record::{FieldType, Schema};
use crate::rejects::Payload;
use crate::source::{Context, Emit, Source, deliver};

/// How to read a delimited file.
#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// Field separator.
    pub delimiter: u8,
    /// RFC 4180 quotes (CSV) or none (TSV).
    pub quoting: Quoting,
    /// The first line names the columns.
    pub header: bool,
    /// Every column is text (unless pinned).
    pub all_text: bool,
    /// Records sampled to type the columns.
    pub infer_rows: usize,
    /// Types pinned by `--schema`, by column name.
    pub pinned: Vec<(String, FieldType)>,
    /// Unquoted field texts that are null (`--null-value`).
    pub nulls: NullTokens,
}

/// A column as the first file of a stream defined it.
#[derive(Debug, Clone)]
pub struct Column {
    name: String,
    /// `"name":` with the separator before it (`{` for the first column).
    key: Vec<u8>,
    typed: Typed,
    mismatches: u64,
}

/// A delimited file read record by record.
pub struct CsvSource<R> {
    name: String,
    parser: CsvParser<R>,
    columns: Vec<Column>,
    nulls: NullTokens,
    /// Records read for typing, with the reason when one was malformed.
    sample: VecDeque<(RawRecord, Option<String>)>,
}

impl<R: BufRead> CsvSource<R> {
    /// Reads the header and the typing sample. `columns` from an earlier file
    /// of the same stream fixes names and types: this file's header must match.
    pub fn open(
        input: R,
        name: &str,
        options: &CsvOptions,
        columns: Option<&[Column]>,
        cx: &mut Context<'_>,
    ) -> Result<Self> {
        let mut parser = CsvParser::new(input, name, options.delimiter, options.quoting);
        let mut first = RawRecord::default();
        let first_step = loop {
            match parser.read(&mut first)? {
                Step::Bad(bad) if options.header => {
                    bail!("{name}:{}: header line: {}", bad.line, bad.reason)
                }
                Step::Bad(bad) => {
                    cx.read += 1;
                    cx.rejects
                        .reject(name, bad.line, &bad.reason, Payload::Raw(first.raw()))?;
                }
                step => break step,
            }
        };
        let has_first = first_step == Step::Record;
        let names = if options.header {
            if !has_first {
                bail!("{name}: empty input: no header line");
            }
            header_names(&first, name)?
        } else {
            (1..=first.len()).map(|i| format!("column_{i}")).collect()
        };
        let mut sample = VecDeque::new();
        if !options.header && has_first {
            sample.push_back((first, None));
        }

        if let Some(expected) = columns {
            let expected_names: Vec<&str> = expected.iter().map(|c| c.name.as_str()).collect();
            if options.header && names != expected_names {
                bail!(
                    "{name}:1: header differs from the stream's first file: [{}] instead of [{}]",
                    names.join(", "),
                    expected_names.join(", ")
                );
            }
            let mut columns = expected.to_vec();
            columns.iter_mut().for_each(|c| c.mismatches = 0);
            return Ok(CsvSource {
                name: name.to_string(),
                parser,
                columns,
                nulls: options.nulls.clone(),
                sample,
            });
        }

        let mut record = RawRecord::default();
        while sample.len() < options.infer_rows.max(1) {
            match parser.read(&mut record)? {
                Step::Record => sample.push_back((record.to_owned_record(), None)),
                // Bad rows in the sample are rejected when their turn comes.
                Step::Bad(bad) => sample.push_back((record.to_owned_record(), Some(bad.reason))),
                Step::Eof => break,
            }
        }
        let mut guesses = vec![ColumnGuess::default(); names.len()];
        for (rec, _) in sample
            .iter()
            .filter(|(r, bad)| bad.is_none() && r.len() == names.len())
        {
            for (i, guess) in guesses.iter_mut().enumerate() {
                if let Ok(text) = rec.text(i)
                    && !options.nulls.matches(rec, i, text)
                {
                    guess.observe(text);
                }
            }
        }
        let columns = names
            .into_iter()
            .zip(guesses)
            .enumerate()
            .map(|(i, (col, guess))| {
                let pinned = options
                    .pinned
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(&col))
                    .map(|(_, t)| *t);
                let typed = pinned.unwrap_or(if options.all_text {
                    FieldType::Text
                } else {
                    guess.decide()
                });
                // The separator before the name goes with it: `{"a":`, `,"b":`.
                let mut key = vec![if i == 0 { b'{' } else { b',' }];
                key.extend_from_slice(&json::key_prefix(&col));
                Column {
                    key,
                    typed: Typed(typed),
                    name: col,
                    mismatches: 0,
                }
            })
            .collect();
        Ok(CsvSource {
            name: name.to_string(),
            parser,
            columns,
            nulls: options.nulls.clone(),
            sample,
        })
    }

    /// The columns, for the next file of the same stream.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Encodes one record, or says why it cannot be.
    fn encode(
        &mut self,
        rec: &RawRecord,
        out: &mut Vec<u8>,
        cx: &Context<'_>,
    ) -> Result<(), String> {
        if rec.len() != self.columns.len() {
            return Err(format!(
                "expected {} fields (as in the first line), found {}",
                self.columns.len(),
                rec.len()
            ));
        }
        if self.columns.is_empty() {
            out.push(b'{');
        }
        for (i, col) in self.columns.iter_mut().enumerate() {
            out.extend_from_slice(&col.key);
            let field = rec.text(i)?;
            if self.nulls.matches(rec, i, field) {
                out.extend_from_slice(b"null");
                continue;
            }
            if col.typed.encode(field, out) == Encoded::Mismatch {
                col.mismatches += 1;
                if col.mismatches == 1 {
                    cx.progress.warn(&format!(
                        "{}:{}: column {:?} was typed {} from the first rows, but holds {:?}; \
                         passed on as text (a typed load will reject it)",
                        self.name,
                        rec.line,
                        col.name,
                        col.typed.0.name(),
                        field
                    ));
                }
            }
        }
        out.push(b'}');
        Ok(())
    }

    fn handle(
        &mut self,
        rec: &RawRecord,
        bad: Option<String>,
        out: &mut Vec<u8>,
        emit: &mut Emit<'_>,
        cx: &mut Context<'_>,
    ) -> Result<()> {
        cx.read += 1;
        out.clear();
        let result = match bad {
            Some(reason) => Err(reason),
            None => self.encode(rec, out, cx),
        };
        match result {
            Ok(()) => deliver(emit, out, cx, &self.name, rec.line),
            Err(reason) => {
                cx.rejects
                    .reject(&self.name, rec.line, &reason, Payload::Raw(rec.raw()))
            }
        }
    }
}

fn header_names(header: &RawRecord, name: &str) -> Result<Vec<String>> {
    let mut names = Vec::with_capacity(header.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for i in 0..header.len() {
        let raw = header
            .text(i)
            .map_err(|reason| anyhow::anyhow!("{name}:{}: header line: {reason}", header.line))?
            .trim();
        let col = if raw.is_empty() {
            format!("column_{}", i + 1)
        } else {
            raw.to_string()
        };
        if let Some(prev) = seen.insert(col.to_lowercase(), i + 1) {
            bail!(
                "{name}:{}: duplicate column name {col:?} in the header (fields {prev} and {})",
                header.line,
                i + 1
            );
        }
        names.push(col);
    }
    Ok(names)
}

impl<R: BufRead> Source for CsvSource<R> {
    fn schema(&self) -> Schema {
        self.columns
            .iter()
            .map(|c| (c.name.clone(), c.typed.0))
            .collect()
    }

    fn run(&mut self, emit: &mut Emit<'_>, cx: &mut Context<'_>) -> Result<()> {
        let mut out = Vec::with_capacity(1024);
        while let Some((rec, bad)) = self.sample.pop_front() {
            self.handle(&rec, bad, &mut out, emit, cx)?;
        }
        let mut rec = RawRecord::default();
        loop {
            let bad = match self.parser.read(&mut rec)? {
                Step::Eof => return Ok(()),
                Step::Record => None,
                Step::Bad(bad) => Some(bad.reason),
            };
            self.handle(&rec, bad, &mut out, emit, cx)?;
        }
    }

    fn remarks(&self) -> Vec<String> {
        let hit: Vec<String> = self
            .columns
            .iter()
            .filter(|c| c.mismatches > 0)
            .map(|c| format!("{} ({} values)", c.name, c.mismatches))
            .collect();
        if hit.is_empty() {
            return Vec::new();
        }
        vec![format!(
            "{}: values that did not fit their column's type were passed on as text in: {}",
            self.name,
            hit.join(", ")
        )]
    }
}
