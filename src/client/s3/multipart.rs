//! Writing an object that appears whole or not at all: bytes are held in
//! one part's buffer (8 MiB), sent as the parts of a multipart upload as
//! they fill, and the upload is completed only by [`Upload::finish`] (with
//! its condition: only if absent, only if unchanged). A small object is
//! one PUT at the finish. An upload that is not finished (the run failed,
//! the stream was cut) is aborted, and S3 drops its parts: no object
//! appears and an object already there is not changed.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use anyhow::Result;

use super::{Call, Client, Condition, Refusal, condition_headers, etag_of, read_text, xml};

/// The size of every part but the last (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 << 20;

/// An object being written.
pub struct Upload {
    client: Client,
    key: String,
    part_size: usize,
    buffer: Vec<u8>,
    /// The multipart upload, once the first part is full.
    upload_id: Option<String>,
    /// Each sent part's number and ETag.
    parts: Vec<(u32, String)>,
    done: bool,
}

impl Upload {
    /// Starts writing `key` (nothing is sent before the first part fills).
    pub fn new(client: &Client, key: &str) -> Upload {
        Upload {
            client: client.clone(),
            key: key.to_string(),
            part_size: PART_SIZE,
            buffer: Vec::new(),
            upload_id: None,
            parts: Vec::new(),
            done: false,
        }
    }

    /// Parts of `bytes` instead of 8 MiB (tests; S3 refuses parts under
    /// 5 MiB but the last).
    pub fn with_part_size(mut self, bytes: usize) -> Upload {
        self.part_size = bytes.max(1);
        self
    }

    fn fail(&self, what: &str, refusal: Refusal) -> anyhow::Error {
        self.client.error(what, Some(&self.key), refusal)
    }

    /// Sends the buffer as the next part, starting the upload if needed.
    fn send_part(&mut self) -> Result<()> {
        let id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let call = Call {
                    method: "POST",
                    key: Some(&self.key),
                    query: vec![("uploads", String::new())],
                    headers: Vec::new(),
                    body: &[],
                };
                let response = self
                    .client
                    .send(call)
                    .map_err(|r| self.fail("cannot start writing", r))?;
                let text = read_text(response).map_err(|r| self.fail("cannot start writing", r))?;
                let id = xml::first(&text, "UploadId").ok_or_else(|| {
                    anyhow::anyhow!(
                        "cannot start writing {}: the answer has no UploadId",
                        self.client.shown(Some(&self.key))
                    )
                })?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = u32::try_from(self.parts.len() + 1).unwrap_or(u32::MAX);
        let call = Call {
            method: "PUT",
            key: Some(&self.key),
            query: vec![("partNumber", number.to_string()), ("uploadId", id)],
            headers: Vec::new(),
            body: &self.buffer,
        };
        let response = self
            .client
            .send(call)
            .map_err(|r| self.fail(&format!("cannot write part {number} of"), r))?;
        self.parts.push((number, etag_of(&response)));
        self.buffer.clear();
        Ok(())
    }

    /// Makes the object appear, under `condition`; returns its ETag. On
    /// failure the upload is aborted.
    pub fn finish(&mut self, condition: &Condition) -> Result<String> {
        let result = self.complete(condition);
        if result.is_err() {
            self.abort();
        }
        self.done = true;
        result
    }

    fn complete(&mut self, condition: &Condition) -> Result<String> {
        let Some(id) = self.upload_id.clone() else {
            return self
                .client
                .put(&self.key, &self.buffer, condition)
                .map_err(|r| self.fail("cannot write", r));
        };
        if !self.buffer.is_empty() || self.parts.is_empty() {
            self.send_part()?;
        }
        let mut body = String::from("<CompleteMultipartUpload>");
        for (number, etag) in &self.parts {
            body.push_str(&format!(
                "<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag></Part>",
                xml::escape(etag)
            ));
        }
        body.push_str("</CompleteMultipartUpload>");
        let call = Call {
            method: "POST",
            key: Some(&self.key),
            query: vec![("uploadId", id)],
            headers: condition_headers(condition),
            body: body.as_bytes(),
        };
        let response = self
            .client
            .send(call)
            .map_err(|r| self.fail("cannot complete writing", r))?;
        let etag = etag_of(&response);
        // S3 may report a failed completion inside a 200 answer.
        let text = read_text(response).map_err(|r| self.fail("cannot complete writing", r))?;
        if text.contains("<Error>") {
            return Err(self.fail("cannot complete writing", super::refused(200, &text)));
        }
        Ok(xml::first(&text, "ETag").unwrap_or(etag))
    }

    /// Drops the upload's parts (best effort: S3's lifecycle rules clean
    /// what a killed process leaves).
    pub fn abort(&mut self) {
        self.done = true;
        self.buffer = Vec::new();
        if let Some(id) = self.upload_id.take() {
            let call = Call {
                method: "DELETE",
                key: Some(&self.key),
                query: vec![("uploadId", id)],
                headers: Vec::new(),
                body: &[],
            };
            let _ = self.client.send(call);
        }
    }
}

impl Write for Upload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.done {
            return Err(io::Error::other("the upload is finished"));
        }
        let room = self.part_size - self.buffer.len();
        let n = buf.len().min(room);
        self.buffer.extend_from_slice(&buf[..n]);
        if self.buffer.len() >= self.part_size {
            self.send_part()
                .map_err(|e| io::Error::other(format!("{e:#}")))?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.done {
            self.abort();
        }
    }
}

/// An [`Upload`] written through one handle (a format's writer) and
/// finished through another (the sink's commit).
#[derive(Clone)]
pub struct SharedUpload(Arc<Mutex<Upload>>);

impl SharedUpload {
    /// Shares `upload`.
    pub fn new(upload: Upload) -> SharedUpload {
        SharedUpload(Arc::new(Mutex::new(upload)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Upload> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// [`Upload::finish`].
    pub fn finish(&self, condition: &Condition) -> Result<String> {
        self.lock().finish(condition)
    }

    /// [`Upload::abort`].
    pub fn abort(&self) {
        self.lock().abort();
    }
}

impl Write for SharedUpload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.lock().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
