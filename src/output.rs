//! The stdout writer and terminal checks.
//!
//! stdout carries data only. It is locked once and buffered when piped, so
//! a million records cost a handful of write calls; on a terminal it is
//! flushed per line so a person sees records as they come. Write errors
//! propagate: a closed pipe surfaces as `BrokenPipe`, which the exit helper
//! turns into a silent exit 0.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, LineWriter, Read, Write};
use std::path::Path;

use anyhow::{Context, Result};

/// Where data goes: stdout, buffered unless it is a terminal.
pub fn stdout() -> Box<dyn Write> {
    let out = io::stdout();
    if out.is_terminal() {
        Box::new(LineWriter::new(out.lock()))
    } else {
        Box::new(BufWriter::with_capacity(1 << 16, out.lock()))
    }
}

/// True when stderr is a terminal: progress bars may be drawn.
pub fn stderr_is_terminal() -> bool {
    io::stderr().is_terminal()
}

/// An input: a named file or stdin (`-` or no path).
pub struct Input {
    /// The name used in messages: the path as given, or `stdin`.
    pub name: String,
    /// The file size when known, for a byte-based progress bar.
    pub size: Option<u64>,
    /// The bytes.
    pub reader: Box<dyn Read>,
}

/// Opens `path` for reading, or stdin when it is `None` or `-`. Refuses to
/// wait on an interactive terminal when no path was given.
pub fn open_input(path: Option<&Path>) -> Result<Input> {
    match path {
        Some(p) if p != Path::new("-") => {
            let file = File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
            let size = file
                .metadata()
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len());
            Ok(Input {
                name: p.display().to_string(),
                size,
                reader: Box::new(file),
            })
        }
        explicit => {
            let stdin = io::stdin();
            if explicit.is_none() && stdin.is_terminal() {
                return Err(crate::error::Failure::new(
                    crate::error::Kind::Usage,
                    "no input: stdin is a terminal",
                )
                .hint("name an input file, or pipe data in (use - to read a terminal)")
                .into());
            }
            Ok(Input {
                name: "stdin".into(),
                size: None,
                reader: Box::new(stdin),
            })
        }
    }
}
