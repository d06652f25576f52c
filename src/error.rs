//! Error kinds and the exit codes they map to.
//!
//! Every program exits with the same codes (README, man pages):
//! 0 success, 1 runtime failure, 2 usage error, 3 finished with rejected
//! records, 130 interrupted. Library code returns `anyhow::Error`; an error
//! that must exit with something other than 1 carries a [`Failure`] somewhere
//! in its chain, which [`exit_code_for`] finds.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::process::ExitCode;

/// What kind of failure ended a run; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// I/O, parse or database failure (exit 1).
    Runtime,
    /// Bad arguments or a bad combination of them (exit 2).
    Usage,
    /// The run finished but rejected records (exit 3).
    Rejects,
    /// Stopped by SIGINT (exit 130).
    Interrupted,
}

impl Kind {
    /// The process exit code for this kind.
    pub fn code(self) -> u8 {
        match self {
            Kind::Runtime => 1,
            Kind::Usage => 2,
            Kind::Rejects => 3,
            Kind::Interrupted => 130,
        }
    }
}

/// An error that decides the exit code and may carry a `hint:` line.
#[derive(Debug)]
pub struct Failure {
    kind: Kind,
    message: String,
    hint: Option<String>,
}

impl Failure {
    /// A failure of the given kind.
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a hint, printed on its own `hint:` line after the error.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// A usage error (exit 2) as an `anyhow::Error`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Failure::new(Kind::Usage, message).into()
}

/// True when the error is (or wraps) a write to a pipe whose reader left.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// The error with its message (the whole chain, as one line) rewritten by
/// `change`, keeping its exit code and hint. A closed pipe is kept as it is
/// (it must stay recognisable, and its message holds nothing from outside).
pub fn rewrite(err: anyhow::Error, change: impl Fn(&str) -> String) -> anyhow::Error {
    if is_broken_pipe(&err) {
        return err;
    }
    let message = change(&format!("{err:#}"));
    match failure_of(&err) {
        Some(failure) => Failure {
            kind: failure.kind,
            message,
            hint: failure.hint.as_deref().map(&change),
        }
        .into(),
        None => anyhow::anyhow!("{message}"),
    }
}

fn failure_of(err: &anyhow::Error) -> Option<&Failure> {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<Failure>())
}

/// The exit code for an error: its [`Failure`] kind, else 1.
pub fn exit_code_for(err: &anyhow::Error) -> u8 {
    failure_of(err).map_or(Kind::Runtime.code(), |f| f.kind.code())
}

/// The running program's name (`etl-load`...), for the rare message
/// printed where no progress reporter is at hand.
pub fn program_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|arg| {
            std::path::Path::new(&arg)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "etlkit".into())
}

/// How a run ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything was processed.
    Ok,
    /// Finished within `--max-rejects`, but some records were rejected.
    Rejected,
}

/// Turns a program's result into its exit code, printing the error (one
/// line, then an optional hint) on stderr. A broken pipe is a normal way for
/// a downstream reader to say "enough": exit 0, print nothing.
pub fn finish(program: &str, result: anyhow::Result<Outcome>, log_json: bool) -> ExitCode {
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Rejected) => ExitCode::from(Kind::Rejects.code()),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) if log_json => {
            let code = exit_code_for(&err);
            let record = serde_json::json!({
                "program": program,
                "status": "error",
                "exit_code": code,
                "error": format!("{err:#}"),
                "hint": failure_of(&err).and_then(|f| f.hint.clone()),
            });
            eprintln!("{record}");
            ExitCode::from(code)
        }
        Err(err) => {
            // One line, whatever a file name or a server put in it.
            let message = format!("{err:#}");
            eprintln!("{program}: error: {}", line(&message));
            if let Some(hint) = failure_of(&err).and_then(|f| f.hint.as_deref()) {
                eprintln!("hint: {}", line(hint));
            }
            ExitCode::from(exit_code_for(&err))
        }
    }
}

/// Text for a one-line message on stderr, its control characters (a
/// newline, a tab, a terminal escape) written as `\n`, `\t`, `\u{1b}`.
/// Every error, warning and detail line goes through it as it is printed,
/// so a file name (or a value, or a server's message) holding a newline
/// cannot split a line or forge one.
pub fn line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_in_message_lines() {
        assert_eq!(
            line("cannot read in\nbox/a\tb\u{1b}[31m.csv: gone"),
            "cannot read in\\nbox/a\\tb\\u{1b}[31m.csv: gone"
        );
        assert!(matches!(line("zoë.csv"), Cow::Borrowed("zoë.csv")));
    }

    use anyhow::Context;

    #[test]
    fn kind_is_found_through_context() {
        let err = Err::<(), _>(usage("bad flag"))
            .context("reading args")
            .unwrap_err();
        assert_eq!(exit_code_for(&err), 2);
        assert_eq!(format!("{err:#}"), "reading args: bad flag");
    }

    #[test]
    fn plain_errors_are_runtime() {
        let err = anyhow::anyhow!("disk full");
        assert_eq!(exit_code_for(&err), 1);
    }

    #[test]
    fn a_rewritten_error_keeps_its_kind_and_hint() {
        let err = anyhow::Error::from(Failure::new(Kind::Usage, "bad s3cret").hint("not s3cret"))
            .context("reading");
        let err = rewrite(err, |m| m.replace("s3cret", "***"));
        assert_eq!(format!("{err:#}"), "reading: bad ***");
        assert_eq!(exit_code_for(&err), 2);
        assert_eq!(
            failure_of(&err).and_then(|f| f.hint.clone()).as_deref(),
            Some("not ***")
        );
        let pipe = anyhow::Error::from(io::Error::new(io::ErrorKind::BrokenPipe, "pipe"));
        assert!(is_broken_pipe(&rewrite(pipe, |_| String::new())));
    }

    #[test]
    fn broken_pipe_is_recognised_under_context() {
        let io = io::Error::new(io::ErrorKind::BrokenPipe, "pipe");
        let err = anyhow::Error::from(io).context("writing stdout");
        assert!(is_broken_pipe(&err));
    }
}
