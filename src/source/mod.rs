//! Where records come from. Each source turns its input into wire records:
//! JSON object text, handed on one record at a time, so that extraction
//! streams with flat memory. Malformed rows go to the rejects file (or fail
//! the run); they are never skipped silently.

pub mod input;
pub mod snapshot;

use std::cell::{Cell, RefCell};

use anyhow::Result;

use crate::progress::Progress;
use crate::record::Schema;
use crate::rejects::Rejects;

/// What a source needs besides its input while it runs.
pub struct Context<'a> {
    /// Progress display and warnings.
    pub progress: &'a Progress,
    /// Where malformed rows go.
    pub rejects: &'a mut Rejects,
    /// Rows read, including rejected ones.
    pub read: u64,
    /// Where the record being handed on came from, for a receiver that
    /// names it (a one-off load names a row by its line in the file).
    pub at: Option<&'a Origin>,
}

/// The input and line of the record being handed on, set by [`deliver`]
/// before the receiver sees it.
#[derive(Debug, Default)]
pub struct Origin {
    input: RefCell<String>,
    line: Cell<u64>,
}

impl Origin {
    fn set(&self, input: &str, line: u64) {
        let mut name = self.input.borrow_mut();
        if *name != input {
            input.clone_into(&mut name);
        }
        self.line.set(line);
    }

    /// Calls `f` with the input's name and the record's line.
    pub fn with<T>(&self, f: impl FnOnce(&str, u64) -> T) -> T {
        f(&self.input.borrow(), self.line.get())
    }
}

/// What the receiver of a record made of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// Written on, or deliberately passed over (already loaded).
    Done,
    /// Refused, with the reason: the source sends it to the rejects file
    /// with its position.
    Rejected(String),
}

/// Receives each record's JSON object text (no newline).
pub type Emit<'a> = dyn FnMut(&[u8]) -> Result<Taken> + 'a;

/// Hands a record on; a refusal goes to the rejects file at `input:line`.
pub fn deliver(
    emit: &mut Emit<'_>,
    record: &[u8],
    cx: &mut Context<'_>,
    input: &str,
    line: u64,
) -> Result<()> {
    if crate::wire::looks_like_control(record) {
        // Downstream would take it for a control line and not load it.
        return cx.rejects.reject(
            input,
            line,
            crate::wire::CONTROL_KEY_FIRST,
            crate::rejects::Payload::Raw(record),
        );
    }
    if let Some(at) = cx.at {
        at.set(input, line);
    }
    match emit(record)? {
        Taken::Done => Ok(()),
        Taken::Rejected(reason) => {
            cx.rejects
                .reject(input, line, &reason, crate::rejects::Payload::Raw(record))
        }
    }
}

/// What to read from a database.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every row of a table.
    Table(String),
    /// The rows of a SELECT statement.
    Query(String),
}

/// A cursor range to push into the query.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    /// The cursor column.
    pub column: &'a str,
    /// Inclusive lower bound.
    pub lower: Option<&'a serde_json::Value>,
    /// Exclusive upper bound.
    pub upper: Option<&'a serde_json::Value>,
}

/// A producer of wire records.
pub trait Source {
    /// Column types known before the first record (for the `begin` line).
    fn schema(&self) -> Schema;

    /// Reads the whole input, handing each record to `emit`. Stops at the
    /// first error, from either side.
    fn run(&mut self, emit: &mut Emit<'_>, cx: &mut Context<'_>) -> Result<()>;

    /// Closing remarks for stderr (e.g. values passed on as text).
    fn remarks(&self) -> Vec<String> {
        Vec::new()
    }
}
