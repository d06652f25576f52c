//! Where a Parquet reader's bytes come from: a local file, or ranges of a
//! file stored elsewhere (an object on S3), fetched as the reader needs
//! them. A ranged file is read footer first (two small requests: its
//! last bytes, then its metadata), then one request per row group, each
//! row group's column chunks at once, held in memory only while that row
//! group is read: memory follows the largest row group, not the file.

use std::fs::File;
use std::io::{self, Read};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Buf, Bytes};
use parquet::errors::{ParquetError, Result as ParquetResult};
use parquet::file::reader::{ChunkReader, Length};

/// Bytes of a file stored elsewhere, by range.
pub trait RangeRead: Send + Sync {
    /// The file's size in bytes.
    fn size(&self) -> u64;
    /// `len` bytes from `start` (exactly, or an error).
    fn read_range(&self, start: u64, len: u64) -> io::Result<Vec<u8>>;
}

/// An object on S3 is read by ranges.
impl RangeRead for crate::client::s3::read::ObjectRanges {
    fn size(&self) -> u64 {
        self.size()
    }

    fn read_range(&self, start: u64, len: u64) -> io::Result<Vec<u8>> {
        self.read(start, len)
    }
}

/// How much of a ranged file's end the first request takes: the footer of
/// most files fits, so one request usually reads it.
const TAIL: u64 = 64 << 10;

/// A ranged read of no row group (none is known yet) takes at least this much.
const MIN_FETCH: u64 = 1 << 20;

/// A ranged file, with the row group (or tail) it holds now.
pub struct Ranged {
    source: Box<dyn RangeRead>,
    size: u64,
    /// The byte ranges of the file's row groups (start, end), once its
    /// footer is read.
    groups: Mutex<Vec<(u64, u64)>>,
    /// What was fetched last: its start and its bytes.
    held: Mutex<Option<(u64, Bytes)>>,
}

impl Ranged {
    /// A ranged file over `source`.
    pub fn new(source: Box<dyn RangeRead>) -> Ranged {
        let size = source.size();
        Ranged {
            source,
            size,
            groups: Mutex::new(Vec::new()),
            held: Mutex::new(None),
        }
    }

    /// The row groups' byte ranges, from the footer, so that each is
    /// fetched in one request.
    pub fn set_row_groups(&self, groups: Vec<(u64, u64)>) {
        *self.groups.lock().unwrap_or_else(PoisonError::into_inner) = groups;
    }

    /// Bytes `start..start + len`, from what is held or fetched anew.
    fn bytes(&self, start: u64, len: u64) -> ParquetResult<Bytes> {
        let end = start + len;
        if end > self.size {
            return Err(ParquetError::EOF(format!(
                "a read of {len} bytes at {start} passes the end of the file ({} bytes)",
                self.size
            )));
        }
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, bytes)) = held.as_ref()
            && *at <= start
            && end <= at + bytes.len() as u64
        {
            let from = (start - at) as usize;
            return Ok(bytes.slice(from..from + len as usize));
        }
        let groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        let (from, to) = match groups.iter().find(|(s, e)| *s <= start && end <= *e) {
            Some(&(s, e)) => (s, e),
            None if self.size - start <= TAIL => (self.size.saturating_sub(TAIL), self.size),
            None => (start, (start + len.max(MIN_FETCH)).min(self.size)),
        };
        drop(groups);
        let fetched = self
            .source
            .read_range(from, to - from)
            .map_err(|e| ParquetError::External(Box::new(e)))?;
        if fetched.len() as u64 != to - from {
            return Err(ParquetError::EOF(format!(
                "asked for {} bytes at {from}, got {}",
                to - from,
                fetched.len()
            )));
        }
        let bytes = Bytes::from(fetched);
        let out = bytes.slice((start - from) as usize..(end - from) as usize);
        *held = Some((from, bytes));
        Ok(out)
    }
}

/// A Parquet file's bytes: a local file or a ranged one.
#[derive(Clone)]
pub enum Chunks {
    /// A local file.
    File(Arc<File>),
    /// A file read by ranges.
    Ranged(Arc<Ranged>),
}

impl Length for Chunks {
    fn len(&self) -> u64 {
        match self {
            Chunks::File(f) => f.as_ref().len(),
            Chunks::Ranged(r) => r.size,
        }
    }
}

/// A reader from a point of a file to its end.
pub enum ChunkRead {
    /// Of a local file.
    File(io::BufReader<File>),
    /// Of what a ranged file holds.
    Ranged(bytes::buf::Reader<Bytes>),
}

impl Read for ChunkRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ChunkRead::File(r) => r.read(buf),
            ChunkRead::Ranged(r) => r.read(buf),
        }
    }
}

impl ChunkReader for Chunks {
    type T = ChunkRead;

    fn get_read(&self, start: u64) -> ParquetResult<ChunkRead> {
        match self {
            Chunks::File(f) => f.as_ref().get_read(start).map(ChunkRead::File),
            Chunks::Ranged(r) => {
                // A column chunk's pages lie inside its row group: read
                // to the end of the row group that holds `start`.
                let end = r
                    .groups
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .find(|(s, e)| *s <= start && start < *e)
                    .map_or_else(|| (start + MIN_FETCH).min(r.size), |(_, e)| *e);
                let len = end.saturating_sub(start);
                r.bytes(start, len).map(|b| ChunkRead::Ranged(b.reader()))
            }
        }
    }

    fn get_bytes(&self, start: u64, length: usize) -> ParquetResult<Bytes> {
        match self {
            Chunks::File(f) => f.as_ref().get_bytes(start, length),
            Chunks::Ranged(r) => r.bytes(start, length as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counted(Vec<u8>, Arc<AtomicUsize>);

    impl RangeRead for Counted {
        fn size(&self) -> u64 {
            self.0.len() as u64
        }
        fn read_range(&self, start: u64, len: u64) -> io::Result<Vec<u8>> {
            self.1.fetch_add(1, Ordering::Relaxed);
            Ok(self.0[start as usize..(start + len) as usize].to_vec())
        }
    }

    #[test]
    fn a_row_group_is_fetched_once() {
        let data: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
        let calls = Arc::new(AtomicUsize::new(0));
        let r = Ranged::new(Box::new(Counted(data.clone(), calls.clone())));
        r.set_row_groups(vec![(4, 100_000), (100_000, 200_000)]);
        let chunks = Chunks::Ranged(Arc::new(r));
        assert_eq!(&chunks.get_bytes(10, 5).unwrap()[..], &data[10..15]);
        assert_eq!(
            &chunks.get_bytes(99_000, 1000).unwrap()[..],
            &data[99_000..100_000]
        );
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        let mut rest = Vec::new();
        chunks
            .get_read(150_000)
            .unwrap()
            .read_to_end(&mut rest)
            .unwrap();
        assert_eq!(rest, &data[150_000..200_000]);
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        // The footer: the file's tail, in one request.
        assert_eq!(&chunks.get_bytes(299_992, 8).unwrap()[..], &data[299_992..]);
        assert_eq!(
            &chunks.get_bytes(290_000, 100).unwrap()[..],
            &data[290_000..290_100]
        );
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        assert!(chunks.get_bytes(299_999, 2).is_err());
    }
}
