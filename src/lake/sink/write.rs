//! The files a dataset commit writes: each partition's held rows into
//! temporary Parquet files in its directory, finished and synced, several
//! partitions at a time; and the directory syncs that make their renames
//! durable.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use anyhow::{Context, Result};

use super::LakeSink;
use crate::format::flat::{self, Fields};
use crate::lake::leftovers::TMP_PREFIX;
use crate::lake::spill::{Held, Spill};
use crate::parquet_io::writer::ParquetFile;
use crate::record::FieldType;

/// A partition's file, written and synced under its temporary name.
pub(super) struct Finished {
    pub(super) tmp: PathBuf,
    pub(super) rows: u64,
}

/// Threads writing partitions' files at the commit (at most).
const WRITERS: usize = 4;

/// Writes one partition's held rows into temporary files in `dir`
/// (`<tmp prefix><pid>-<partition>-<n>`), each finished and synced.
fn write_partition(
    spill: &Spill,
    dir: &Path,
    index: usize,
    held: Held,
    columns: &[(String, FieldType)],
    (row_group_size, file_size): (usize, u64),
) -> Result<Vec<Finished>> {
    let mut finished: Vec<Finished> = Vec::new();
    let mut writing: Option<(ParquetFile, PathBuf)> = None;
    let mut fields: Fields<'static> = Vec::new();
    let finish = |file: ParquetFile, tmp: PathBuf, finished: &mut Vec<Finished>| -> Result<()> {
        let rows = file.finish()?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot sync {}", tmp.display()))?;
        finished.push(Finished { tmp, rows });
        Ok(())
    };
    let result = spill
        .drain(held, |line| {
            let (file, _) = match &mut writing {
                Some(w) => w,
                None => {
                    let n = finished.len();
                    let tmp = dir.join(format!("{TMP_PREFIX}{}-{index}-{n}", std::process::id()));
                    let file = ParquetFile::create(&tmp, columns, row_group_size)?;
                    writing.insert((file, tmp))
                }
            };
            let mut record = flat::recycle(std::mem::take(&mut fields));
            flat::parse_object_into(line, &mut record)
                .map_err(|reason| anyhow::anyhow!("a held record no longer reads: {reason}"))?;
            file.push(&record)?;
            fields = flat::recycle(record);
            if file.written_bytes() >= file_size
                && let Some((file, tmp)) = writing.take()
            {
                finish(file, tmp, &mut finished)?;
            }
            Ok(())
        })
        .and_then(|()| match writing.take() {
            Some((file, tmp)) => finish(file, tmp, &mut finished),
            None => Ok(()),
        });
    if let Err(err) = result {
        if let Some((file, tmp)) = writing {
            drop(file);
            let _ = std::fs::remove_file(tmp);
        }
        for f in finished {
            let _ = std::fs::remove_file(f.tmp);
        }
        return Err(err);
    }
    Ok(finished)
}

/// Syncs these directories (their new entries), several at a time.
pub(in crate::lake) fn sync_dirs(dirs: &[&Path]) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..WRITERS.min(dirs.len()) {
            scope.spawn(|| {
                while let Some(dir) = dirs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    // Not every filesystem lets a directory be synced; the
                    // renames stand.
                    std::fs::File::open(dir).and_then(|d| d.sync_all()).ok();
                }
            });
        }
    });
}

impl LakeSink {
    /// Writes every partition's held rows as its file (files, when
    /// `--file-size` splits it), each a temporary file in its directory,
    /// synced. Partitions are shared out among up to [`WRITERS`] threads;
    /// each partition is written by one, in the order its rows came.
    pub(super) fn write_all(&mut self) -> Result<()> {
        let mut jobs = Vec::with_capacity(self.parts.len());
        for (i, part) in self.parts.iter_mut().enumerate() {
            let dir = self.storage.temp_dir(&part.dir)?;
            jobs.push((i, dir, std::mem::take(&mut part.held)));
        }
        let columns = self.file_columns();
        let sizes = (self.options.row_group_size, self.options.file_size);
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .clamp(1, WRITERS)
            .min(jobs.len());
        let queue = Mutex::new(jobs.into_iter());
        let done = Mutex::new(Vec::new());
        let failed = AtomicBool::new(false);
        let spill = &self.spill;
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    while !failed.load(Ordering::Relaxed) {
                        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
                        let Some((i, dir, held)) = job else {
                            break;
                        };
                        let result = write_partition(spill, &dir, i, held, &columns, sizes);
                        if result.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        done.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push((i, result));
                    }
                });
            }
        });
        let mut first_err = None;
        for (i, result) in done.into_inner().unwrap_or_else(PoisonError::into_inner) {
            match result {
                Ok(finished) => self.parts[i].finished = finished,
                Err(err) => {
                    first_err.get_or_insert(err);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}
