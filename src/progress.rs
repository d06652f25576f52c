//! Progress bars and the end-of-run summary: the only place that draws on
//! stderr while a run is going.
//!
//! A bar appears only when stderr is a terminal and `--quiet` is off. The
//! summary line is printed at the end of every successful run unless
//! `--quiet`: rows in, out, rejected, seconds and rows per second.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::line;

/// Shared verbosity settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Verbosity {
    /// Errors only.
    pub quiet: bool,
    /// Extra detail on stderr.
    pub verbose: bool,
    /// The summary as a JSON run record.
    pub log_json: bool,
}

/// Progress display and run counters for one program run.
pub struct Progress {
    program: &'static str,
    bar: ProgressBar,
    started: Instant,
    verbosity: Verbosity,
}

impl Progress {
    /// A byte-based bar when the input size is known, else a record spinner.
    pub fn new(program: &'static str, verbosity: Verbosity, size: Option<u64>) -> Self {
        let bar = if verbosity.quiet || !crate::output::stderr_is_terminal() {
            ProgressBar::hidden()
        } else if let Some(len) = size {
            let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                )
                .expect("template is a constant and valid")
                .progress_chars("=> "),
            );
            bar
        } else {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{prefix} {spinner} {msg} {elapsed}")
                    .expect("template is a constant and valid"),
            );
            bar
        };
        bar.set_prefix(program);
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress {
            program,
            bar,
            started: Instant::now(),
            verbosity,
        }
    }

    /// Wraps a reader so that bytes read advance the bar.
    pub fn wrap_reader<R: Read>(&self, inner: R) -> CountingReader<R> {
        CountingReader {
            inner,
            bar: self.bar.clone(),
        }
    }

    /// Shows the record count (cheap enough to call every few thousand rows).
    pub fn set_rows(&self, rows: u64) {
        self.bar.set_message(format!("{rows} rows"));
    }

    /// Prints a warning line, above the bar if one is drawn.
    pub fn warn(&self, message: &str) {
        if !self.verbosity.quiet {
            self.bar
                .suspend(|| eprintln!("{}: warning: {}", self.program, line(message)));
        }
    }

    /// Prints a line the user asked for (e.g. `--dry-run`'s report), unless -q.
    pub fn note(&self, message: &str) {
        if !self.verbosity.quiet {
            self.bar
                .suspend(|| eprintln!("{}: {}", self.program, line(message)));
        }
    }

    /// Prints a `-v` detail line.
    pub fn detail(&self, message: &str) {
        if self.verbosity.verbose && !self.verbosity.quiet {
            self.bar
                .suspend(|| eprintln!("{}: {}", self.program, line(message)));
        }
    }

    /// Clears the bar; call before an error is printed.
    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }

    /// Clears the bar and prints the summary line (or the JSON record).
    pub fn summary(&self, counts: &Counts) {
        self.clear();
        if self.verbosity.log_json {
            eprintln!("{}", counts.record(self.program, self.started.elapsed()));
            return;
        }
        if self.verbosity.quiet {
            return;
        }
        eprintln!(
            "{}: {}",
            self.program,
            counts.describe(self.started.elapsed())
        );
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// Every run accounts for every row: read = written + rejected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records read from the input.
    pub read: u64,
    /// Records written to the output or target.
    pub written: u64,
    /// Records rejected (written to the rejects file).
    pub rejected: u64,
    /// Records passed over on purpose (before the bookmark, already loaded).
    pub skipped: u64,
}

impl Counts {
    /// The summary text: `12 rows read, 12 written, 0 rejected in 0.01 s (1200 rows/s)`.
    pub fn describe(&self, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            (self.read as f64 / secs).round() as u64
        } else {
            0
        };
        let skipped = if self.skipped > 0 {
            format!(", {} skipped", self.skipped)
        } else {
            String::new()
        };
        format!(
            "{} rows read, {} written, {} rejected{skipped} in {:.2} s ({} rows/s)",
            self.read, self.written, self.rejected, secs, rate
        )
    }
}

impl Counts {
    /// The run record `--log-json` prints for a run that finished.
    pub fn record(&self, program: &str, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64();
        serde_json::json!({
            "program": program,
            "status": if self.rejected > 0 { "rejected" } else { "ok" },
            "exit_code": if self.rejected > 0 { 3 } else { 0 },
            "rows_read": self.read,
            "rows_written": self.written,
            "rows_rejected": self.rejected,
            "rows_skipped": self.skipped,
            "seconds": (secs * 1000.0).round() / 1000.0,
        })
        .to_string()
    }
}

/// A reader that advances a progress bar by the bytes it reads.
pub struct CountingReader<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_accounts_for_rows() {
        let counts = Counts {
            read: 10,
            written: 8,
            rejected: 2,
            skipped: 0,
        };
        let text = counts.describe(Duration::from_secs(2));
        assert_eq!(
            text,
            "10 rows read, 8 written, 2 rejected in 2.00 s (5 rows/s)"
        );
    }
}
