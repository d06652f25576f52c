//! Where records come from. Each source turns its input into wire records:
//! JSON object text, handed on one record at a time, so that
//! extraction streams with flat memory.

pub mod csv;
pub mod ndjson;
pub mod sqlite;

use anyhow::Result;

use crate::progress::Progress;
use crate::record::Schema;

/// A producer of wire records.
pub trait Source {
    /// Column types known before the first record (for the `begin` line).
    fn schema(&self) -> Schema;

    /// Reads the whole input, handing each record's JSON object text (no
    /// newline) to `emit`. Stops at the first error, from either side.
    fn run(&mut self, emit: &mut dyn FnMut(&[u8]) -> Result<()>, progress: &Progress)
    -> Result<()>;

    /// A closing remark for stderr (e.g. values passed on as text), if any.
    fn remarks(&self) -> Option<String> {
        None
    }
}
