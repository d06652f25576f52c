//! An endless stdin as input: lines arrive on a reader thread, and batches
//! close by rows, bytes or time. Stdin cannot be read again, so there is no
//! checkpoint; batches carry no position id.

use std::io::BufRead;
use std::time::Duration;

use anyhow::{Context, Result};

use super::WatchFormat;
use super::Watcher;
use crate::format::csv::{CsvParser, Quoting, RawRecord, Step};

impl Watcher<'_> {
    /// Reads stdin until EOF, handing on batches as they close.
    pub(super) fn follow_stdin(&mut self) -> Result<()> {
        let (lines, incoming) = std::sync::mpsc::sync_channel::<std::io::Result<Vec<u8>>>(1024);
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            loop {
                let mut line = Vec::new();
                match stdin.read_until(b'\n', &mut line) {
                    Ok(0) => return,
                    Ok(_) => {
                        if lines.send(Ok(line)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = lines.send(Err(e));
                        return;
                    }
                }
            }
        });
        let interval = Duration::from_secs_f64(self.plan.batch_interval);
        let mut offset = 0u64;
        let mut header: Option<Vec<String>> = None;
        let mut pending = Vec::new();
        loop {
            let wait = match self.batch.started {
                Some(s) => interval.saturating_sub(s.elapsed()),
                None => Duration::from_secs(3600),
            };
            match incoming.recv_timeout(wait) {
                Ok(line) => {
                    let line = line.context("cannot read stdin")?;
                    pending.extend_from_slice(&line);
                    if !line.ends_with(b"\n") {
                        continue; // the final line without a newline: at EOF below
                    }
                    if self.plan.format == WatchFormat::Csv && header.is_none() {
                        header = take_header(&mut pending, &mut offset)?;
                        if header.is_none() || pending.is_empty() {
                            continue;
                        }
                    }
                    let parsed = self.parse("stdin", offset, &pending, header.as_deref())?;
                    for record in &parsed.records {
                        self.counts.read += 1;
                        self.batch.push(&record.json, record.input);
                    }
                    offset += parsed.used as u64;
                    pending.drain(..parsed.used);
                    if self.batch.rows >= self.plan.batch_rows
                        || self.batch.bytes >= self.plan.batch_bytes
                    {
                        self.deliver()?;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => self.deliver()?,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    if !pending.is_empty() {
                        pending.push(b'\n');
                        if self.plan.format == WatchFormat::Csv && header.is_none() {
                            header = take_header(&mut pending, &mut offset)?;
                        }
                        let parsed = self.parse("stdin", offset, &pending, header.as_deref())?;
                        for record in &parsed.records {
                            self.counts.read += 1;
                            self.batch.push(&record.json, record.input);
                        }
                    }
                    return self.deliver();
                }
            }
        }
    }
}

/// Reads the CSV header from the start of `pending` and takes its bytes
/// (only its own: with CR line endings the rows follow in the same chunk);
/// `None` while the header is incomplete.
fn take_header(pending: &mut Vec<u8>, offset: &mut u64) -> Result<Option<Vec<String>>> {
    let mut parser = CsvParser::new(&pending[..], "stdin", b',', Quoting::Rfc4180);
    let mut rec = RawRecord::default();
    if parser.read(&mut rec)? != Step::Record {
        return Ok(None);
    }
    let names = (0..rec.len())
        .map(|i| rec.text(i).map(|s| s.trim().to_string()))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("stdin:1: header line: {e}"))?;
    let used = parser.bytes_read() as usize;
    *offset += used as u64;
    pending.drain(..used);
    Ok(Some(names))
}
