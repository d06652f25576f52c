//! Rows waiting for their partition's file. A load writes each partition's
//! Parquet file once, at the commit, so rows arriving in any order make one
//! file per partition (more only when a file reaches `--file-size`).
//!
//! Until then a partition's rows are held in memory as their wire text.
//! When all partitions together hold more than the memory budget, every
//! held row goes to one spill file (a hidden temporary file in the dataset
//! directory, removed at the end, or by the next load if this one is
//! killed) and memory starts again. A load so holds about the budget in
//! memory and a few files open (the spill file, and the Parquet file each
//! writing thread is on) however many partitions it fills; the price is that
//! rows past the budget are written and read once more.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// One partition's rows not yet written: records framed by a 4-byte
/// little-endian length, some in memory and earlier ones in the spill file.
#[derive(Default)]
pub struct Held {
    bytes: Vec<u8>,
    /// Byte ranges of the spill file, in the order the rows arrived.
    chunks: Vec<(u64, u64)>,
    rows: u64,
}

impl Held {
    /// Rows held so far (in memory and spilled).
    pub fn rows(&self) -> u64 {
        self.rows
    }
}

/// The spill file of a load and its memory budget.
pub struct Spill {
    path: PathBuf,
    file: Option<File>,
    len: u64,
    /// Bytes held in memory by all partitions together.
    held: usize,
    budget: usize,
}

impl Spill {
    /// A spill file at `path`, created when first needed.
    pub fn new(path: PathBuf, budget: usize) -> Spill {
        Spill {
            path,
            file: None,
            len: 0,
            held: 0,
            budget,
        }
    }

    /// Holds one record for a partition; true when the partitions together
    /// now pass the budget (the caller then calls [`Spill::spill`]).
    pub fn hold(&mut self, held: &mut Held, line: &[u8]) -> Result<bool> {
        let Ok(len) = u32::try_from(line.len()) else {
            bail!(
                "a record of {} bytes is too large for a dataset",
                line.len()
            );
        };
        held.bytes.extend_from_slice(&len.to_le_bytes());
        held.bytes.extend_from_slice(line);
        held.rows += 1;
        self.held += line.len() + 4;
        Ok(self.held >= self.budget)
    }

    /// Writes every partition's rows held in memory to the spill file and
    /// frees that memory.
    pub fn spill<'h>(&mut self, parts: impl Iterator<Item = &'h mut Held>) -> Result<()> {
        if self.file.is_none() {
            let file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&self.path)
                .with_context(|| format!("cannot create {}", self.path.display()))?;
            self.file = Some(file);
        }
        let Some(file) = self.file.as_mut() else {
            bail!("spill file not open");
        };
        file.seek(SeekFrom::Start(self.len))
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        for held in parts {
            if held.bytes.is_empty() {
                continue;
            }
            file.write_all(&held.bytes)
                .with_context(|| format!("cannot write {}", self.path.display()))?;
            let n = held.bytes.len() as u64;
            held.chunks.push((self.len, n));
            self.len += n;
            held.bytes = Vec::new();
        }
        self.held = 0;
        Ok(())
    }

    /// Hands each of a partition's records to `each`, in the order they
    /// were held. Partitions may be drained from several threads at once:
    /// the spill file is read at positions, never through a shared cursor.
    pub fn drain(&self, held: Held, mut each: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let mut record = Vec::new();
        for &(start, len) in &held.chunks {
            let Some(file) = self.file.as_ref() else {
                bail!("spill file not open");
            };
            let at = At {
                file,
                pos: start,
                end: start + len,
            };
            records(
                BufReader::with_capacity(1 << 16, at),
                len,
                &mut record,
                &mut each,
            )
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        }
        let bytes = held.bytes;
        records(bytes.as_slice(), bytes.len() as u64, &mut record, &mut each)
    }

    /// The spill file's path (removed by [`Spill::remove`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes and removes the spill file, if one was made.
    pub fn remove(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A byte range of a file, read at positions.
struct At<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let n = buf.len().min(left);
        let got = self.file.read_at(&mut buf[..n], self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

/// Reads `len` bytes of framed records from `reader`.
fn records(
    mut reader: impl Read,
    len: u64,
    record: &mut Vec<u8>,
    each: &mut impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let mut left = len;
    while left > 0 {
        let mut n = [0u8; 4];
        reader.read_exact(&mut n)?;
        let n = u32::from_le_bytes(n) as usize;
        record.resize(n, 0);
        reader.read_exact(record)?;
        left = left.saturating_sub(4 + n as u64);
        each(record)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_back_in_order_across_spills_and_memory() {
        let dir = std::env::temp_dir().join(format!("etl-spill-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut spill = Spill::new(dir.join("spill"), 64);
        let mut parts: Vec<Held> = (0..3).map(|_| Held::default()).collect();
        let mut spilled = 0;
        for n in 0..200 {
            let line = format!("{{\"n\":{n}}}");
            if spill.hold(&mut parts[n % 3], line.as_bytes()).unwrap() {
                spill.spill(parts.iter_mut()).unwrap();
                spilled += 1;
            }
        }
        assert!(spilled > 10);
        assert!(spill.held < 64);
        for (p, held) in parts.into_iter().enumerate() {
            let mut seen = Vec::new();
            spill
                .drain(held, |r| {
                    seen.push(String::from_utf8(r.to_vec()).unwrap());
                    Ok(())
                })
                .unwrap();
            let want: Vec<String> = (0..200)
                .filter(|n| n % 3 == p)
                .map(|n| format!("{{\"n\":{n}}}"))
                .collect();
            assert_eq!(seen, want);
        }
        spill.remove();
        assert!(!dir.join("spill").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
