//! CSV, TSV and NDJSON files (or stdout) as a sink.
//!
//! A file target is written to a temporary file beside it and renamed over
//! the target only when the run succeeds (after fsync), so a reader sees
//! the old file or the new one. `append` starts the temporary file as a copy
//! of the old one. With `--state FILE.json` the streams' bookmarks are
//! written after the data file is in place, under a lock held for the run.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::state::JsonState;
use crate::atomic_file::{FileLock, finish_file, lock_target, temp_path};
use crate::client::s3::Condition;
use crate::client::s3::multipart::SharedUpload;
use crate::format::csv::{CsvParser, Quoting, RawRecord, Step};
use crate::format::flat::{Fields, Raw};
use crate::record::Schema;
use crate::sink::{LoadMode, LoadOptions, Sink};
use crate::state::{StateChanges, StateStore};

/// The format of a file target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Comma-separated, RFC 4180 quoting, header line.
    Csv,
    /// Tab-separated, no quoting, header line.
    Tsv,
    /// One JSON object per line, as received.
    Ndjson,
}

impl FileFormat {
    /// The format a target path names by its extension, if any.
    pub fn from_path(path: &Path) -> Option<FileFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(FileFormat::Csv),
            "tsv" | "tab" => Some(FileFormat::Tsv),
            "ndjson" | "jsonl" => Some(FileFormat::Ndjson),
            _ => None,
        }
    }
}

/// How to write a file target.
#[derive(Debug, Clone)]
pub struct FileOptions {
    /// The format.
    pub format: FileFormat,
    /// JSON state file for bookmarks.
    pub state: Option<PathBuf>,
}

enum Writer {
    Delimited(Box<csv::Writer<Box<dyn Write>>>),
    Lines(Box<dyn Write>),
}

/// A file (or stdout) being written.
pub struct FileSink {
    target: Option<PathBuf>,
    tmp: Option<PathBuf>,
    writer: Writer,
    format: FileFormat,
    strict: bool,
    columns: Option<Vec<String>>,
    row: Vec<Vec<u8>>,
    state: JsonState,
    /// An object being uploaded instead of a file: completed at the commit
    /// (under its condition), aborted otherwise; and its name.
    object: Option<(SharedUpload, Condition, String)>,
    /// Held for the run, so that another run writes after this one.
    _target_lock: Option<FileLock>,
}

/// The header of an existing delimited file.
fn existing_header(path: &Path, format: FileFormat) -> Result<Option<Vec<String>>> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = path.display().to_string();
    let (delimiter, quoting) = match format {
        FileFormat::Tsv => (b'\t', Quoting::None),
        _ => (b',', Quoting::Rfc4180),
    };
    let mut parser = CsvParser::new(std::io::BufReader::new(file), &name, delimiter, quoting);
    let mut header = RawRecord::default();
    match parser.read(&mut header)? {
        Step::Record => (0..header.len())
            .map(|i| header.text(i).map(String::from))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{name}:1: header line: {e}")),
        Step::Eof => Ok(None),
        Step::Bad(bad) => bail!("{name}:{}: header line: {}", bad.line, bad.reason),
    }
}

/// The fields of an existing NDJSON file's first record: the columns
/// `--schema strict` holds later records to.
fn existing_fields(path: &Path) -> Result<Option<Vec<String>>> {
    use std::io::BufRead;
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut first = Vec::new();
    std::io::BufReader::new(file)
        .read_until(b'\n', &mut first)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if first.trim_ascii().is_empty() {
        return Ok(None);
    }
    let fields = crate::format::flat::parse_object(first.trim_ascii())
        .map_err(|e| anyhow::anyhow!("{}:1: {e}", path.display()))?;
    Ok(Some(
        fields.iter().map(|(name, _)| name.to_string()).collect(),
    ))
}

impl FileSink {
    /// Opens `target` (`None`: stdout) for writing: `load`'s append keeps
    /// the existing file's rows and adds to them, its strict rejects
    /// records with fields outside the file's columns.
    pub fn open(target: Option<&Path>, options: &FileOptions, load: &LoadOptions) -> Result<Self> {
        let append = load.mode == LoadMode::Append;
        let state = JsonState::open(options.state.as_deref())?;
        let target_lock = target.map(lock_target).transpose()?;
        let mut columns = None;
        let (tmp, out): (Option<PathBuf>, Box<dyn Write>) = match target {
            None => (None, crate::output::stdout()),
            Some(path) => {
                let tmp = temp_path(path);
                let mut needs_newline = false;
                if append && path.exists() {
                    std::fs::copy(path, &tmp).with_context(|| {
                        format!("cannot copy {} to append to it", path.display())
                    })?;
                    if options.format != FileFormat::Ndjson {
                        columns = existing_header(path, options.format)?;
                    } else if load.strict {
                        columns = existing_fields(path)?;
                    }
                    let bytes = std::fs::metadata(path)?.len();
                    needs_newline = bytes > 0 && last_byte(path)? != Some(b'\n');
                }
                let copied = append && path.exists();
                // A temporary file left by a killed run (same PID) must not
                // leak into this one: start it empty unless it is the copy.
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(copied)
                    .truncate(!copied)
                    .open(&tmp)
                    .with_context(|| format!("cannot create {}", tmp.display()))?;
                if needs_newline {
                    file.write_all(b"\n")?;
                }
                (Some(tmp), Box::new(BufWriter::with_capacity(1 << 16, file)))
            }
        };
        Ok(FileSink {
            target: target.map(Path::to_path_buf),
            tmp,
            writer: writer_for(options.format, out),
            format: options.format,
            strict: load.strict,
            columns,
            row: Vec::new(),
            state,
            object: None,
            _target_lock: target_lock,
        })
    }

    /// Writes into `upload` (an object, shown as `name`), completed at the
    /// commit under `condition`; a run that does not commit aborts it.
    pub fn open_object(
        upload: SharedUpload,
        name: String,
        condition: Condition,
        options: &FileOptions,
        load: &LoadOptions,
    ) -> Result<Self> {
        let state = JsonState::open(options.state.as_deref())?;
        Ok(FileSink {
            target: None,
            tmp: None,
            writer: writer_for(options.format, Box::new(upload.clone())),
            format: options.format,
            strict: load.strict,
            columns: None,
            row: Vec::new(),
            state,
            object: Some((upload, condition, name)),
            _target_lock: None,
        })
    }
}

/// The writer of `format` over `out`.
fn writer_for(format: FileFormat, out: Box<dyn Write>) -> Writer {
    match format {
        FileFormat::Ndjson => Writer::Lines(out),
        FileFormat::Csv | FileFormat::Tsv => {
            let mut builder = csv::WriterBuilder::new();
            if format == FileFormat::Tsv {
                builder.delimiter(b'\t').quote_style(csv::QuoteStyle::Never);
            }
            Writer::Delimited(Box::new(builder.from_writer(out)))
        }
    }
}

/// One delimited cell: null is empty, nested values are JSON text.
fn cell(format: FileFormat, value: &Raw<'_>, out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    match value {
        Raw::Null => {}
        Raw::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Raw::Number(n) | Raw::Nested(n) | Raw::Str(n) => out.extend_from_slice(n.as_bytes()),
    }
    if format == FileFormat::Tsv && out.iter().any(|b| matches!(b, b'\t' | b'\n' | b'\r')) {
        return Err("a tab or line break cannot be written to TSV (it has no quoting)".into());
    }
    Ok(())
}

fn last_byte(path: &Path) -> Result<Option<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path)?;
    if file.seek(SeekFrom::End(-1)).is_err() {
        return Ok(None);
    }
    let mut byte = [0u8; 1];
    file.read_exact(&mut byte)?;
    Ok(Some(byte[0]))
}

impl Sink for FileSink {
    fn state(&mut self) -> &mut dyn StateStore {
        &mut self.state
    }

    fn prepare(&mut self, schema: &Schema, sample: &[&Fields<'_>]) -> Result<()> {
        if self.columns.is_some() {
            return Ok(());
        }
        let mut columns: Vec<String> = schema.iter().map(|(n, _)| n.clone()).collect();
        for fields in sample {
            for (name, _) in fields.iter() {
                if !columns.iter().any(|c| c == name) {
                    columns.push(name.to_string());
                }
            }
        }
        if let Writer::Delimited(w) = &mut self.writer {
            w.write_record(&columns)
                .context("cannot write the header")?;
        }
        self.columns = Some(columns);
        Ok(())
    }

    fn insert(&mut self, fields: &Fields<'_>, line: &[u8]) -> Result<Result<(), String>> {
        let Some(columns) = &self.columns else {
            bail!("file sink used before its columns were set");
        };
        let delimited = self.format != FileFormat::Ndjson;
        if delimited || self.strict {
            // A delimited file's header is fixed; a null needs no column.
            let unknown = fields.iter().find(|(name, value)| {
                let has_column = columns.iter().any(|c| c == name);
                let harmless = delimited && value.is_null();
                !(has_column || harmless)
            });
            if let Some((name, _)) = unknown {
                return Ok(Err(format!(
                    "field {name:?} is not one of the file's columns (fixed by its header or first records)"
                )));
            }
        }
        match &mut self.writer {
            Writer::Lines(out) => {
                out.write_all(line)?;
                out.write_all(b"\n")?;
            }
            Writer::Delimited(w) => {
                self.row.resize(columns.len(), Vec::new());
                for (column, slot) in columns.iter().zip(self.row.iter_mut()) {
                    let value = fields
                        .iter()
                        .find(|(n, _)| n == column)
                        .map_or(&Raw::Null, |(_, v)| v);
                    if let Err(reason) = cell(self.format, value, slot) {
                        return Ok(Err(format!("column {column:?}: {reason}")));
                    }
                }
                w.write_record(&self.row)?;
            }
        }
        Ok(Ok(()))
    }

    fn commit_point(&mut self, _changes: &StateChanges) -> Result<()> {
        bail!("a file target is written whole; --commit segment needs a database target")
    }

    fn commit(self: Box<Self>, changes: &StateChanges) -> Result<Vec<String>> {
        let FileSink {
            target,
            tmp,
            writer,
            state,
            object,
            ..
        } = *self;
        let mut out = match writer {
            Writer::Delimited(w) => w
                .into_inner()
                .map_err(|e| anyhow::anyhow!("cannot write the file: {}", e.error()))?,
            Writer::Lines(out) => out,
        };
        out.flush().context("cannot write the file")?;
        drop(out);
        let mut log = Vec::new();
        if let (Some(target), Some(tmp)) = (&target, &tmp) {
            finish_file(tmp, target)?;
            log.push(format!("wrote {}", target.display()));
        }
        if let Some((upload, condition, name)) = &object {
            upload.finish(condition)?;
            log.push(format!("wrote {name}"));
        }
        log.extend(state.write(changes)?);
        Ok(log)
    }

    fn describe(&mut self) -> Result<Vec<String>> {
        let name = match (&self.target, &self.object) {
            (Some(p), _) => p.display().to_string(),
            (None, Some((_, _, name))) => name.clone(),
            (None, None) => "stdout".to_string(),
        };
        Ok(vec![format!(
            "{name} ({:?}): columns {}",
            self.format,
            self.columns.as_deref().unwrap_or_default().join(", ")
        )])
    }

    fn abort(self: Box<Self>) {
        let tmp = self.tmp.clone();
        if let Some((upload, _, _)) = &self.object {
            upload.abort();
        }
        drop(self);
        if let Some(tmp) = tmp {
            let _ = std::fs::remove_file(tmp);
        }
    }
}
