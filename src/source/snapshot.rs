//! Reading a file that may still be growing: a regular file is read up to
//! the size it had when it was opened, and any input stops at its first
//! end of file. A reader that came back after an end of file would find
//! what a writer appended meanwhile and take the two halves of a line
//! written across that moment for two records (`1267` and `477` for
//! `1267477`). A last line with no newline in a file that has grown since
//! it was opened is such a half line: it fails the read instead of being
//! taken as complete.

use std::fs::File;
use std::io::{self, Read};

/// A regular file, read up to the size it had when opened.
pub struct Snapshot {
    file: File,
    /// The file's size when opened.
    size: u64,
    /// Bytes still to read before that size.
    left: u64,
    /// The last byte handed on (`None` before the first).
    last: Option<u8>,
    /// Whether the bytes are lines of text, whose last one must be
    /// complete (not for compressed bytes: their decoder finds a cut).
    lines: bool,
    /// An end of file was reported: never read again.
    ended: bool,
}

impl Snapshot {
    /// Reads `file` from its current offset `at` up to `size`, the size
    /// it has now.
    pub fn new(file: File, at: u64, size: u64) -> Snapshot {
        Snapshot {
            file,
            size,
            left: size.saturating_sub(at),
            last: None,
            lines: true,
            ended: false,
        }
    }

    /// The bytes are compressed: a last byte that is not a newline says
    /// nothing about a line.
    pub fn compressed(mut self) -> Snapshot {
        self.lines = false;
        self
    }

    /// At the end of the snapshot: a last line without a newline while
    /// the file has grown past the snapshot is still being written.
    fn check_end(&self) -> io::Result<()> {
        let complete = matches!(self.last, None | Some(b'\n' | b'\r'));
        if !self.lines || complete {
            return Ok(());
        }
        let now = self.file.metadata()?.len();
        if now > self.size {
            return Err(io::Error::other(
                "the file grew while it was read and its last line has no newline yet: \
                 the line is still being written (read the file again when it is complete)",
            ));
        }
        Ok(())
    }
}

impl Read for Snapshot {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ended || self.left == 0 || buf.is_empty() {
            if !buf.is_empty() {
                self.ended = true;
                // Asked again after the end: the check is made again, so a
                // line taken as complete that turns out to go on is caught.
                self.check_end()?;
            }
            return Ok(0);
        }
        let want = usize::try_from(self.left).map_or(buf.len(), |left| left.min(buf.len()));
        let n = self.file.read(&mut buf[..want])?;
        if n == 0 {
            self.ended = true;
            return Err(io::Error::other(format!(
                "the file was cut short while it was read ({} bytes missing of the {} it had \
                 when opened)",
                self.left, self.size
            )));
        }
        self.left -= n as u64;
        self.last = Some(buf[n - 1]);
        Ok(n)
    }
}

/// A stream (a pipe, a terminal, a FIFO) that ends at its first end of
/// file: a FIFO opened by a new writer, or a terminal after Ctrl-D, is not
/// read again.
pub struct Ended<R> {
    inner: R,
    ended: bool,
}

impl<R> Ended<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Ended<R> {
        Ended {
            inner,
            ended: false,
        }
    }
}

impl<R: Read> Read for Ended<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ended {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.ended = true;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &std::path::Path, bytes: &[u8]) {
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(bytes).unwrap();
    }

    fn open(path: &std::path::Path) -> Snapshot {
        let file = File::open(path).unwrap();
        let size = file.metadata().unwrap().len();
        Snapshot::new(file, 0, size)
    }

    #[test]
    fn only_the_bytes_there_at_open_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        std::fs::write(&path, "id\n1\n").unwrap();
        let mut snap = open(&path);
        append(&path, b"2\n");
        let mut text = String::new();
        snap.read_to_string(&mut text).unwrap();
        assert_eq!(text, "id\n1\n");
        // Never again after the end, whatever was appended.
        append(&path, b"3\n");
        assert_eq!(snap.read(&mut [0; 8]).unwrap(), 0);
    }

    #[test]
    fn a_half_line_in_a_growing_file_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        std::fs::write(&path, "id\n1267").unwrap();
        // Complete as far as anyone can tell: no growth.
        let mut text = String::new();
        open(&path).read_to_string(&mut text).unwrap();
        assert_eq!(text, "id\n1267");
        // Grown before the end was reached.
        let mut snap = open(&path);
        append(&path, b"477\n");
        let err = snap.read_to_string(&mut String::new()).unwrap_err();
        assert!(err.to_string().contains("still being written"), "{err}");
        // Grown after the end was reached once: the next read finds it.
        std::fs::write(&path, "id\n1267").unwrap();
        let mut snap = open(&path);
        let mut buf = [0; 64];
        assert_eq!(snap.read(&mut buf).unwrap(), 7);
        assert_eq!(snap.read(&mut buf).unwrap(), 0);
        append(&path, b"477\n");
        assert!(snap.read(&mut buf).is_err());
        // Compressed bytes are left to their decoder.
        std::fs::write(&path, "id\n1267").unwrap();
        let mut snap = open(&path).compressed();
        append(&path, b"477\n");
        snap.read_to_end(&mut Vec::new()).unwrap();
    }

    #[test]
    fn a_file_cut_while_read_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        std::fs::write(&path, "id\n1\n2\n").unwrap();
        let mut snap = open(&path);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(2)
            .unwrap();
        let err = snap.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("cut short"), "{err}");
    }
}
