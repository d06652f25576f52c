//! CSV and TSV files as a source: header, typed columns, strict parsing.

use std::collections::{HashMap, VecDeque};
use std::io::BufRead;

use anyhow::{Result, bail};

use super::Source;
use crate::format::csv::{CsvParser, Quoting, RawRecord};
use crate::format::infer::{ColumnGuess, Encoded, Typed};
use crate::format::json;
use crate::progress::Progress;
use crate::record::{FieldType, Schema};

/// How to read a delimited file.
#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// Field separator.
    pub delimiter: u8,
    /// RFC 4180 quotes (CSV) or none (TSV).
    pub quoting: Quoting,
    /// The first line names the columns.
    pub header: bool,
    /// Every column is text.
    pub all_text: bool,
    /// Records sampled to type the columns.
    pub infer_rows: usize,
}

struct Column {
    name: String,
    key: Vec<u8>,
    typed: Typed,
    mismatches: u64,
}

/// A delimited file read record by record.
pub struct CsvSource<R> {
    name: String,
    parser: CsvParser<R>,
    columns: Vec<Column>,
    sample: VecDeque<RawRecord>,
    record: RawRecord,
}

impl<R: BufRead> CsvSource<R> {
    /// Reads the header and the typing sample; fails on an empty input
    /// (no header) and on unusable header names.
    pub fn open(input: R, name: &str, options: &CsvOptions) -> Result<Self> {
        let mut parser = CsvParser::new(input, name, options.delimiter, options.quoting);
        let mut first = RawRecord::default();
        let has_first = parser.read(&mut first)?;
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
            sample.push_back(first);
        }
        let mut record = RawRecord::default();
        while sample.len() < options.infer_rows.max(1) && parser.read(&mut record)? {
            sample.push_back(record.to_owned_record());
        }

        let mut guesses = vec![ColumnGuess::default(); names.len()];
        for rec in &sample {
            check_width(rec, names.len(), name)?;
            for (i, guess) in guesses.iter_mut().enumerate() {
                guess.observe(rec.text(name, i)?);
            }
        }
        let columns = names
            .into_iter()
            .zip(guesses)
            .map(|(col, guess)| Column {
                key: json::key_prefix(&col),
                typed: Typed(if options.all_text {
                    FieldType::Text
                } else {
                    guess.decide()
                }),
                name: col,
                mismatches: 0,
            })
            .collect();
        Ok(CsvSource {
            name: name.to_string(),
            parser,
            columns,
            sample,
            record,
        })
    }

    fn encode(&mut self, rec: &RawRecord, out: &mut Vec<u8>, progress: &Progress) -> Result<()> {
        check_width(rec, self.columns.len(), &self.name)?;
        out.push(b'{');
        for (i, col) in self.columns.iter_mut().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&col.key);
            let field = rec.text(&self.name, i)?;
            if col.typed.encode(field, out) == Encoded::Mismatch {
                col.mismatches += 1;
                if col.mismatches == 1 {
                    progress.warn(&format!(
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
}

fn check_width(rec: &RawRecord, width: usize, name: &str) -> Result<()> {
    if rec.len() != width {
        bail!(
            "{name}:{}: expected {width} fields (as in the first line), found {}",
            rec.line,
            rec.len()
        );
    }
    Ok(())
}

fn header_names(header: &RawRecord, name: &str) -> Result<Vec<String>> {
    let mut names = Vec::with_capacity(header.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for i in 0..header.len() {
        let raw = header.text(name, i)?.trim();
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

    fn run(
        &mut self,
        emit: &mut dyn FnMut(&[u8]) -> Result<()>,
        progress: &Progress,
    ) -> Result<()> {
        let mut out = Vec::with_capacity(1024);
        while let Some(rec) = self.sample.pop_front() {
            out.clear();
            self.encode(&rec, &mut out, progress)?;
            emit(&out)?;
        }
        let mut rec = std::mem::take(&mut self.record);
        while self.parser.read(&mut rec)? {
            out.clear();
            self.encode(&rec, &mut out, progress)?;
            emit(&out)?;
        }
        Ok(())
    }

    fn remarks(&self) -> Option<String> {
        let hit: Vec<String> = self
            .columns
            .iter()
            .filter(|c| c.mismatches > 0)
            .map(|c| format!("{} ({} values)", c.name, c.mismatches))
            .collect();
        (!hit.is_empty()).then(|| {
            format!(
                "values that did not fit their column's type were passed on as text in: {}",
                hit.join(", ")
            )
        })
    }
}
