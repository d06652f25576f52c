//! Reading an object as a stream: one GET, read as it arrives (never the
//! whole object in memory). A connection that drops part way is resumed
//! where it stopped with a ranged GET of the same version (`If-Match` on
//! the ETag seen first), so a long read survives a reset, and an object
//! overwritten meanwhile fails the read instead of splicing two versions.

use std::io::{self, Read};

use super::{Client, Refusal};

/// One version of an object, read by byte ranges (a Parquet file's
/// footer, then its row groups): each range one GET.
pub struct ObjectRanges {
    client: Client,
    key: String,
    size: u64,
    /// Only while the object is this version (`If-Match`), when known.
    etag: Option<String>,
}

impl ObjectRanges {
    /// `key` of `client`'s bucket, `size` bytes long.
    pub fn new(client: &Client, key: &str, size: u64, etag: Option<&str>) -> ObjectRanges {
        ObjectRanges {
            client: client.clone(),
            key: key.to_string(),
            size,
            etag: etag.map(str::to_string),
        }
    }

    /// The object's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// `len` bytes from `start`; a missing object is
    /// [`io::ErrorKind::NotFound`].
    pub fn read(&self, start: u64, len: u64) -> io::Result<Vec<u8>> {
        let shown = || self.client.shown(Some(&self.key));
        let response = match self
            .client
            .get(&self.key, start, Some(len), self.etag.as_deref())
        {
            Ok(r) => r,
            Err(Refusal::Refused { status: 404, .. }) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} is gone", shown()),
                ));
            }
            Err(refusal) => {
                let err = self.client.error("cannot read", Some(&self.key), refusal);
                return Err(io::Error::other(format!("{err:#}")));
            }
        };
        let mut out = Vec::with_capacity(len as usize);
        response
            .into_body()
            .into_with_config()
            .limit(len + 1)
            .reader()
            .read_to_end(&mut out)
            .map_err(|e| io::Error::other(format!("{}: {e}", shown())))?;
        Ok(out)
    }
}

/// How many times a dropped read is resumed.
const RESUMES: u32 = 3;

/// An object being read from `from` to its end (or for `len` bytes).
pub struct ObjectReader {
    client: Client,
    key: String,
    etag: Option<String>,
    /// Where the next byte is, from the object's start.
    at: u64,
    /// Where the read stops; `None`: the object's end.
    end: Option<u64>,
    body: Option<Box<dyn Read + Send>>,
    resumes: u32,
}

impl ObjectReader {
    /// Starts reading `key` of `client`'s bucket at `from` (`len` bytes,
    /// or to the end), only while its ETag is `etag` when one is given.
    pub fn open(
        client: &Client,
        key: &str,
        etag: Option<&str>,
        from: u64,
        len: Option<u64>,
    ) -> anyhow::Result<ObjectReader> {
        ObjectReader::start(client, key, etag, from, len)
            .map_err(|r| client.error("cannot read", Some(key), r))
    }

    /// As [`ObjectReader::open`], with the server's refusal as it is (a
    /// caller tells a deleted object, 404, from a failure).
    pub fn start(
        client: &Client,
        key: &str,
        etag: Option<&str>,
        from: u64,
        len: Option<u64>,
    ) -> Result<ObjectReader, Refusal> {
        let mut reader = ObjectReader {
            client: client.clone(),
            key: key.to_string(),
            etag: etag.map(str::to_string),
            at: from,
            end: len.map(|l| from + l),
            body: None,
            resumes: 0,
        };
        reader.request()?;
        Ok(reader)
    }

    /// The version being read: the ETag asked for, or the one the first
    /// answer gave.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    fn request(&mut self) -> Result<(), Refusal> {
        let len = self.end.map(|end| end - self.at);
        if len == Some(0) {
            self.body = Some(Box::new(io::empty()));
            return Ok(());
        }
        let response = self
            .client
            .get(&self.key, self.at, len, self.etag.as_deref())?;
        if self.etag.is_none() {
            self.etag = Some(super::etag_of(&response)).filter(|e| !e.is_empty());
        }
        self.body = Some(Box::new(
            response
                .into_body()
                .into_with_config()
                .limit(u64::MAX)
                .reader(),
        ));
        Ok(())
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(body) = self.body.as_mut() else {
                return Ok(0);
            };
            match body.read(buf) {
                Ok(n) => {
                    self.at += n as u64;
                    return Ok(n);
                }
                Err(e) if self.resumes < RESUMES && e.kind() != io::ErrorKind::InvalidData => {
                    self.resumes += 1;
                    self.body = None;
                    self.request().map_err(|r| {
                        let err = self.client.error("cannot read", Some(&self.key), r);
                        io::Error::other(format!("{err:#}"))
                    })?;
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("{}: {e}", self.client.shown(Some(&self.key))),
                    ));
                }
            }
        }
    }
}
