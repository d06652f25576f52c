//! How CSV and TSV files are read: one option group, flattened into
//! `etl-extract` and `etl-load` (which reads a CSV file given as its INPUT
//! with extract's code), so that the flags mean the same in both;
//! `--null-value` is also flattened into `etl-watch`, the third CSV reader.

use std::path::Path;

use anyhow::{Context as _, Result};
use clap::Args;
use serde_json::Value;

use crate::error::{Failure, Kind, usage};
use crate::files::csv::CsvOptions;
use crate::format::Format;
use crate::format::csv::Quoting;
use crate::format::nulls::NullTokens;
use crate::record::FieldType;
use crate::source::input::Location;

/// `--null-value`: the texts a CSV or TSV file writes for a missing value.
#[derive(Debug, Clone, Default, Args)]
pub struct NullArgs {
    /// Read an unquoted CSV/TSV field that is exactly TOKEN (e.g. NA or
    /// '\N') as null; repeatable
    ///
    /// The whole field must equal TOKEN, in the same letter case; such a
    /// null takes no part in typing its column. Repeat for more tokens
    /// (NA, NULL, '\N', -). A quoted "NA" stays text (as in PostgreSQL's
    /// COPY ... NULL 'NA'); an empty field is null anyway
    #[arg(long = "null-value", value_name = "TOKEN")]
    pub null_values: Vec<String>,
}

impl NullArgs {
    /// The checked tokens.
    pub fn tokens(&self) -> Result<NullTokens> {
        if self.null_values.iter().any(String::is_empty) {
            return Err(usage(
                "--null-value needs a TOKEN such as NA: an empty field is null already",
            ));
        }
        if let Some(t) = self.null_values.iter().find(|t| t.contains(['\n', '\r'])) {
            return Err(usage(format!(
                "--null-value {t:?} holds a line break: a field that is read as one never does"
            )));
        }
        Ok(NullTokens::new(self.null_values.iter().cloned()))
    }

    /// A usage error when a token was named for input that is not CSV or
    /// TSV (`what`): its nulls are its own.
    pub fn refuse(&self, what: &str) -> Result<()> {
        match self.refusal(what) {
            Some(failure) => Err(failure.into()),
            None => Ok(()),
        }
    }

    /// The usage error [`NullArgs::refuse`] gives, for a caller that adds
    /// a hint.
    pub fn refusal(&self, what: &str) -> Option<Failure> {
        (!self.null_values.is_empty()).then(|| {
            Failure::new(
                Kind::Usage,
                format!("--null-value applies to CSV and TSV input, not to {what}"),
            )
        })
    }

    /// Refuses tokens when any of `locations` is read as NDJSON, JSON or
    /// Parquet: `format` if given, else its extension, else CSV (as
    /// `etl-extract` decides it).
    pub fn check_formats(&self, format: Option<Format>, locations: &[Location]) -> Result<()> {
        for location in locations {
            let read_as = format
                .or_else(|| location.named().and_then(Format::from_path))
                .unwrap_or(Format::Csv);
            let kind = match read_as {
                Format::Csv | Format::Tsv => continue,
                Format::Ndjson => "NDJSON",
                Format::Json => "JSON",
                Format::Parquet => "Parquet",
            };
            let name = location.shown();
            self.refuse(&format!(
                "{kind} input ({name}), which has nulls of its own"
            ))?;
        }
        Ok(())
    }
}

/// `--delimiter`, `--no-header`, `--all-text`, `--infer-rows`, `--null-value`.
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

    /// --null-value
    #[command(flatten)]
    pub nulls: NullArgs,
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
            nulls: self.nulls.tokens()?,
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
                    "schema file {}: column {name:?} has type {t}; use {}",
                    path.display(),
                    crate::record::TYPE_NAMES
                ))
            })?;
            Ok((name, parsed))
        })
        .collect()
}
