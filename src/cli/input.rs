//! How CSV and TSV files are read: one option group, flattened into
//! `etl-extract` and `etl-load` (which reads a CSV file given as its INPUT
//! with extract's code), so that the flags mean the same in both.

use std::path::Path;

use anyhow::{Context as _, Result};
use clap::Args;
use serde_json::Value;

use crate::error::usage;
use crate::files::csv::CsvOptions;
use crate::format::csv::Quoting;
use crate::record::FieldType;

/// `--delimiter`, `--no-header`, `--all-text`, `--infer-rows`.
#[derive(Debug, Clone, Args)]
pub struct CsvArgs {
    /// Field delimiter for CSV (one ASCII character, e.g. ';' or '|') [default: ',' for csv, tab for tsv]
    #[arg(short, long, value_name = "CHAR")]
    pub delimiter: Option<char>,

    /// The CSV/TSV input has no header line; columns are named column_1, column_2, ...
    #[arg(long)]
    pub no_header: bool,

    /// Do not guess CSV column types: every value is text (except pinned columns)
    #[arg(long)]
    pub all_text: bool,

    /// How many leading CSV records decide the column types (held in memory)
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub infer_rows: usize,
}

impl CsvArgs {
    /// True when a flag of the group was given (they apply to files only).
    pub fn any_set(&self) -> bool {
        self.delimiter.is_some() || self.no_header || self.all_text
    }

    /// The checked options; `types`: the JSON file pinning column types.
    pub fn options(&self, types: Option<&Path>) -> Result<CsvOptions> {
        let delimiter = match self.delimiter {
            Some(c) if c.is_ascii() && c != '"' && c != '\n' && c != '\r' => c as u8,
            Some(c) => {
                return Err(usage(format!(
                    "--delimiter must be one ASCII character other than a quote or newline, not {c:?}"
                )));
            }
            None => b',',
        };
        if self.infer_rows == 0 {
            return Err(usage("--infer-rows must be at least 1"));
        }
        let pinned = match types {
            Some(path) => pinned_types(path)?,
            None => Vec::new(),
        };
        Ok(CsvOptions {
            delimiter,
            quoting: Quoting::Rfc4180,
            header: !self.no_header,
            all_text: self.all_text,
            infer_rows: self.infer_rows,
            pinned,
        })
    }
}

/// Reads a JSON file pinning column types: `{"zip":"text","qty":"integer"}`.
fn pinned_types(path: &Path) -> Result<Vec<(String, FieldType)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read schema file {}", path.display()))?;
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&text) else {
        return Err(usage(format!(
            "schema file {} must be a JSON object such as {{\"zip\":\"text\",\"qty\":\"integer\"}}",
            path.display()
        )));
    };
    fields
        .into_iter()
        .map(|(name, t)| {
            let parsed = t.as_str().and_then(FieldType::from_name).ok_or_else(|| {
                usage(format!(
                    "schema file {}: column {name:?} has type {t}; use integer, float, boolean, text or json",
                    path.display()
                ))
            })?;
            Ok((name, parsed))
        })
        .collect()
}
