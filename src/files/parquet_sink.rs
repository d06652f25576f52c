//! A Parquet file as a sink. Columns are typed like a table's (from the
//! begin line's schema, else from a sample of records; see
//! `parquet_io/writer.rs`). A value that does not fit its column is rejected.
//! Rows are written in row groups (65,536 rows unless told otherwise), so
//! memory stays flat; the file is written beside the target and renamed
//! into place when complete.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::state::JsonState;
use crate::atomic_file::{FileLock, finish_file, lock_target, temp_path};
use crate::client::s3::Condition;
use crate::client::s3::multipart::Upload;
use crate::format::flat::Fields;

use crate::parquet_io::writer::{DEFAULT_ROW_GROUP, ParquetFile, parquet_columns};
use crate::record::{FieldType, Schema};
use crate::sink::{LoadMode, LoadOptions, Sink};
use crate::state::{StateChanges, StateStore};

/// A Parquet file being written.
pub struct ParquetSink {
    target: PathBuf,
    tmp: PathBuf,
    file: Option<ParquetFile>,
    row_group_size: usize,
    strict: bool,
    /// The columns the file was created with, for `--dry-run`.
    columns: Vec<(String, FieldType)>,
    state: JsonState,
    /// Where the finished file is uploaded, instead of staying local.
    object: Option<UploadAfter>,
    /// Held for the run, so that another run writes after this one.
    _target_lock: FileLock,
}

/// An object the finished file becomes: the file is a local spool,
/// uploaded (in parts) at the commit, under the condition.
pub struct UploadAfter {
    /// The object's upload, not started.
    pub upload: Upload,
    /// The upload's condition.
    pub condition: Condition,
    /// The object, as messages name it.
    pub name: String,
    /// The directory of the local spool, removed with this.
    pub spool_dir: PathBuf,
}

impl Drop for UploadAfter {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.spool_dir);
    }
}

impl ParquetSink {
    /// Prepares to write `target` (replacing it when the run succeeds).
    /// Under `load`'s append the file must not exist (it cannot be
    /// appended to), checked under the target's lock so that two such runs
    /// cannot both write it; its strict rejects records with fields outside
    /// the first records' columns.
    pub fn open(target: &Path, state_path: Option<&Path>, load: &LoadOptions) -> Result<Self> {
        let target_lock = lock_target(target)?;
        if load.mode == LoadMode::Append && target.exists() {
            return Err(crate::error::Failure::new(
                crate::error::Kind::Usage,
                format!(
                    "{} exists and a Parquet file cannot be appended to",
                    target.display()
                ),
            )
            .hint("use --mode replace to write it anew")
            .into());
        }
        let state = JsonState::open(state_path)?;
        Ok(ParquetSink {
            target: target.to_path_buf(),
            tmp: temp_path(target),
            file: None,
            row_group_size: DEFAULT_ROW_GROUP,
            strict: load.strict,
            columns: Vec::new(),
            state,
            object: None,
            _target_lock: target_lock,
        })
    }

    /// Uploads the finished file as an object at the commit (the file is
    /// then a local spool, removed after).
    pub fn with_upload(mut self, object: UploadAfter) -> Self {
        self.object = Some(object);
        self
    }

    /// Writes row groups of `rows` rows instead of the default 65,536.
    pub fn with_row_group_size(mut self, rows: usize) -> Self {
        self.row_group_size = rows;
        self
    }
}

impl Sink for ParquetSink {
    fn state(&mut self) -> &mut dyn StateStore {
        &mut self.state
    }

    fn prepare(&mut self, schema: &Schema, sample: &[&Fields<'_>]) -> Result<()> {
        if self.file.is_some() {
            return Ok(());
        }
        let columns = parquet_columns(schema, sample);
        self.columns = columns.clone();
        self.file = Some(ParquetFile::create(
            &self.tmp,
            &columns,
            self.row_group_size,
        )?);
        Ok(())
    }

    fn insert(&mut self, fields: &Fields<'_>, _line: &[u8]) -> Result<Result<(), String>> {
        let Some(file) = self.file.as_mut() else {
            bail!("parquet sink used before its columns were set");
        };
        for (name, value) in fields {
            if !file.has_column(name) && (self.strict || !value.is_null()) {
                return Ok(Err(format!(
                    "field {name:?} is not one of the file's columns (fixed by its first records)"
                )));
            }
        }
        // Check every value before writing any, so a rejected row leaves no cells.
        if let Some(reason) = file.misfit(fields) {
            return Ok(Err(reason));
        }
        file.push(fields)?;
        Ok(Ok(()))
    }

    fn commit_point(&mut self, _changes: &StateChanges) -> Result<()> {
        bail!("a file target is written whole; --commit segment needs a database target")
    }

    fn commit(mut self: Box<Self>, changes: &StateChanges) -> Result<Vec<String>> {
        if self.file.is_none() {
            self.prepare(&Vec::new(), &[])?;
        }
        if let Some(file) = self.file.take() {
            file.finish()?;
        }
        finish_file(&self.tmp, &self.target)?;
        let mut log = Vec::new();
        if let Some(mut object) = self.object.take() {
            let sent = std::fs::File::open(&self.target)
                .and_then(|mut file| std::io::copy(&mut file, &mut object.upload))
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", object.name));
            let _ = std::fs::remove_file(&self.target);
            sent?;
            object.upload.finish(&object.condition)?;
            log.push(format!("wrote {}", object.name));
        } else {
            log.push(format!("wrote {}", self.target.display()));
        }
        log.extend(self.state.write(changes)?);
        Ok(log)
    }

    fn describe(&mut self) -> Result<Vec<String>> {
        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|(name, kind)| format!("{name} {}", kind.name()))
            .collect();
        Ok(vec![format!(
            "{} (Parquet): columns {}",
            self.target.display(),
            columns.join(", ")
        )])
    }

    fn abort(self: Box<Self>) {
        let tmp = self.tmp.clone();
        drop(self);
        let _ = std::fs::remove_file(tmp);
    }
}
