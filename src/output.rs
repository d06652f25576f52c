//! The stdout writer and terminal checks.
//!
//! stdout carries data only. It is locked once and buffered when piped, so
//! a million records cost a handful of write calls; on a terminal it is
//! flushed per line so a person sees records as they come. Write errors
//! propagate: a closed pipe surfaces as `BrokenPipe`, which the exit helper
//! turns into a silent exit 0.

use std::io::{self, BufWriter, IsTerminal, LineWriter, Write};

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
