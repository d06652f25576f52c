//! Files read as one stream: the paths, globs, objects and stdin an
//! `etl-extract` names, one after the other, each in its format (from
//! `--format` or its extension) and through its compression. CSV files
//! after the first must have the first one's columns.

use std::path::Path;

use anyhow::Result;
use serde_json::{Map, Value};

use crate::error::usage;
use crate::format::Format;
use crate::format::csv::Quoting;
use crate::format::nulls::NullTokens;
use crate::parquet_io::reader::ParquetSource;
use crate::progress::{Progress, Verbosity};
use crate::record::Schema;
use crate::rejects::Rejects;
use crate::source::input::{self, Compression, Location};
use crate::source::{Context, Emit, Source, Taken, Window};
use crate::store::{OpenedSource, Readable};

use super::csv::{Column, CsvOptions, CsvSource};
use super::json_array::JsonArraySource;
use super::ndjson::NdjsonSource;

/// The files of one `etl-extract` run.
#[derive(Debug, Clone)]
pub struct FileInputs {
    /// The files, globs expanded, in order.
    pub locations: Vec<Location>,
    /// The format, when --format named one (else from each file).
    pub format: Option<Format>,
    /// How the files are compressed.
    pub compression: Compression,
    /// CSV and TSV reading options.
    pub csv: CsvOptions,
}

impl Readable for FileInputs {
    /// Opens the first file, whose columns the begin line lists; the
    /// others are opened in turn as the stream reaches them. A first file
    /// that is there but cannot be read (a bad header, a bad gzip) still
    /// begins the stream, so the consumer sees a cut stream, never an
    /// empty one it might take for an empty source.
    fn open_source(
        &self,
        _window: Option<Window<'_>>,
        cx: &mut Context<'_>,
    ) -> Result<OpenedSource> {
        let Some(first) = self.locations.first() else {
            return Err(usage("no input"));
        };
        let name = first.shown();
        let mut chain = Chain {
            inputs: self.clone(),
            next: 1,
            columns: None,
            current: None,
            remarks: Vec::new(),
            failed: None,
        };
        match chain.open(first, cx) {
            Ok(source) => chain.current = Some(source),
            Err(err) if first.path().is_none_or(Path::exists) => chain.failed = Some(err),
            Err(err) => return Err(err),
        }
        Ok(OpenedSource::new(Box::new(chain), name))
    }

    fn size(&self) -> Option<u64> {
        self.locations.iter().map(Location::size).sum()
    }

    fn wire_name(&self) -> Option<String> {
        Some(match self.locations.first() {
            Some(l @ (Location::Path(_) | Location::Object(_))) => {
                format!("{} as NDJSON", l.shown())
            }
            Some(Location::Stdin) | None => "stdin".into(),
        })
    }
}

/// The files, one after the other.
struct Chain {
    inputs: FileInputs,
    /// The index of the next file to open.
    next: usize,
    /// The first CSV file's columns, which the others must have.
    columns: Option<Vec<Column>>,
    current: Option<Box<dyn Source>>,
    remarks: Vec<String>,
    /// Why the first file could not be opened, reported when the stream
    /// runs (after its begin line).
    failed: Option<anyhow::Error>,
}

impl Chain {
    fn open(&mut self, location: &Location, cx: &mut Context<'_>) -> Result<Box<dyn Source>> {
        open_file(
            location,
            self.inputs.format,
            self.inputs.compression,
            &self.inputs.csv,
            &mut self.columns,
            cx,
        )
    }
}

impl Source for Chain {
    fn schema(&self) -> Schema {
        self.current
            .as_ref()
            .map(|s| s.schema())
            .unwrap_or_default()
    }

    fn run(&mut self, emit: &mut Emit<'_>, cx: &mut Context<'_>) -> Result<()> {
        if let Some(err) = self.failed.take() {
            return Err(err);
        }
        loop {
            if let Some(mut source) = self.current.take() {
                source.run(emit, cx)?;
                self.remarks.extend(source.remarks());
            }
            let Some(location) = self.inputs.locations.get(self.next).cloned() else {
                return Ok(());
            };
            self.next += 1;
            self.current = Some(self.open(&location, cx)?);
        }
    }

    fn remarks(&self) -> Vec<String> {
        self.remarks.clone()
    }
}

/// Opens one file of a stream as a source.
fn open_file(
    location: &Location,
    format: Option<Format>,
    compression: Compression,
    csv: &CsvOptions,
    columns: &mut Option<Vec<Column>>,
    cx: &mut Context<'_>,
) -> Result<Box<dyn Source>> {
    let format = format
        .or_else(|| location.named().and_then(Format::from_path))
        .unwrap_or(Format::Csv);
    if format == Format::Parquet {
        if let Location::Object(object) = location {
            // By ranges: the footer, then a row group per request.
            let ranges = crate::client::s3::read::ObjectRanges::new(
                &object.client,
                &object.key,
                object.size,
                Some(&object.etag)
                    .filter(|e| !e.is_empty())
                    .map(String::as_str),
            );
            return Ok(Box::new(ParquetSource::from_ranges(
                Box::new(ranges),
                location.shown(),
            )?));
        }
        let Some(path) = location.path() else {
            return Err(usage(
                "Parquet is read from a file, not stdin (its index is at the end)",
            ));
        };
        return Ok(Box::new(ParquetSource::open(path)?));
    }
    let input = input::open(location, compression, cx.progress)?;
    Ok(match format {
        Format::Csv | Format::Tsv => {
            let mut options = csv.clone();
            if format == Format::Tsv {
                options.quoting = Quoting::None;
                if options.delimiter == b',' {
                    options.delimiter = b'\t';
                }
            }
            let source =
                CsvSource::open(input.reader, &input.name, &options, columns.as_deref(), cx)?;
            if columns.is_none() {
                *columns = Some(source.columns().to_vec());
            }
            Box::new(source)
        }
        Format::Ndjson => Box::new(NdjsonSource::new(input.reader, &input.name)),
        Format::Json => Box::new(JsonArraySource::new(input.reader, &input.name)),
        Format::Parquet => unreachable!("handled above"),
    })
}

/// Reads a whole file (CSV, TSV, NDJSON, JSON array or Parquet, by its
/// extension, typed as `etl-extract` types it) into records: for lookup
/// tables, which must be held anyway.
pub fn read_all(path: &Path) -> Result<Vec<Map<String, Value>>> {
    let progress = Progress::new(
        "etl-extract",
        Verbosity {
            quiet: true,
            ..Default::default()
        },
        None,
    );
    let mut rejects = Rejects::open(None, Some(0))?;
    let mut cx = Context {
        progress: &progress,
        rejects: &mut rejects,
        read: 0,
        at: None,
    };
    let options = CsvOptions {
        delimiter: b',',
        quoting: Quoting::Rfc4180,
        header: true,
        all_text: false,
        infer_rows: 1000,
        pinned: Vec::new(),
        nulls: NullTokens::default(),
    };
    let location = Location::Path(path.to_path_buf());
    let mut source = open_file(
        &location,
        None,
        Compression::Auto,
        &options,
        &mut None,
        &mut cx,
    )?;
    let mut records = Vec::new();
    source.run(
        &mut |bytes| {
            records.push(serde_json::from_slice(bytes)?);
            Ok(Taken::Done)
        },
        &mut cx,
    )?;
    Ok(records)
}
