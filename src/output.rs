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
        widen_pipe(&out);
        Box::new(BufWriter::with_capacity(1 << 16, out.lock()))
    }
}

/// Asks for a 1 MiB pipe buffer when stdout is a pipe (Linux's default is
/// 64 KiB): the stages of a pipeline then hand each other data in fewer,
/// larger steps instead of waking each other every 64 KiB. Anything else
/// (a file, a full per-user allowance) keeps what it has.
fn widen_pipe(out: &io::Stdout) {
    #[cfg(target_os = "linux")]
    {
        const WIDE: usize = 1 << 20;
        if rustix::pipe::fcntl_getpipe_size(out).is_ok_and(|size| size < WIDE) {
            let _ = rustix::pipe::fcntl_setpipe_size(out, WIDE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = out;
}

/// True when stderr is a terminal: progress bars may be drawn.
pub fn stderr_is_terminal() -> bool {
    io::stderr().is_terminal()
}
