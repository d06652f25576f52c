//! A batch being filled, and the framing every batch is handed on in: a
//! begin line, its record lines, an end line (one framing for file, stdin,
//! object and broker batches).

use std::time::Instant;

use crate::wire::{Begin, End};

/// Records waiting to be handed on.
#[derive(Default)]
pub(super) struct Batch {
    /// The record lines, each ending in a newline.
    pub(super) records: Vec<u8>,
    /// How many records.
    pub(super) rows: usize,
    /// The bytes of input they were read from (--batch-bytes).
    pub(super) bytes: usize,
    /// When the first record came (--batch-interval).
    pub(super) started: Option<Instant>,
}

impl Batch {
    /// Adds one record, read from `input_bytes` bytes of input.
    pub(super) fn push(&mut self, record: &[u8], input_bytes: usize) {
        self.records.extend_from_slice(record);
        self.records.push(b'\n');
        self.rows += 1;
        self.bytes += input_bytes;
        self.started.get_or_insert_with(Instant::now);
    }
}

/// A batch as it is handed on: its begin line, its record lines, its end
/// line.
pub(super) fn framed(begin: &Begin, records: &[u8], end: &End) -> Vec<u8> {
    let mut payload = Vec::with_capacity(records.len() + 512);
    payload.extend_from_slice(begin.to_line().as_bytes());
    payload.push(b'\n');
    payload.extend_from_slice(records);
    payload.extend_from_slice(end.to_line().as_bytes());
    payload.push(b'\n');
    payload
}
