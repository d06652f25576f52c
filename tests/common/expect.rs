//! Exact assertions on a finished run: exit code, stdout and stderr are
//! compared whole by default. Where a line holds what changes from run to
//! run (seconds, rows per second, a temp path), the expected text says so
//! with `*`, which stands for any run of characters within one line
//! (`stderr_like`); a test that can only check part of the output says so
//! with `stderr_contains`, by name.

use std::process::Output;

use super::{code, stderr, stdout};

/// What a run must have shown; each method asserts one thing and hands
/// the run on, so a test reads as the list of what it expects.
pub struct Expect<'a> {
    out: &'a Output,
    what: String,
}

/// Starts the assertions on `out`; `what` names the run in failures.
pub fn expect<'a>(out: &'a Output, what: impl Into<String>) -> Expect<'a> {
    Expect {
        out,
        what: what.into(),
    }
}

impl Expect<'_> {
    /// The exit code is `expected`.
    pub fn code(self, expected: i32) -> Self {
        assert_eq!(
            code(self.out),
            expected,
            "{}: exit code; stderr:\n{}",
            self.what,
            stderr(self.out)
        );
        self
    }

    /// stdout is exactly `expected`.
    pub fn stdout(self, expected: &str) -> Self {
        assert_eq!(stdout(self.out), expected, "{}: stdout", self.what);
        self
    }

    /// stderr is exactly `expected`.
    pub fn stderr(self, expected: &str) -> Self {
        assert_eq!(stderr(self.out), expected, "{}: stderr", self.what);
        self
    }

    /// stderr is `pattern` line by line, where `*` stands for any run of
    /// characters within its line (the same number of lines, each matched
    /// whole).
    pub fn stderr_like(self, pattern: &str) -> Self {
        let got = stderr(self.out);
        assert!(
            lines_like(&got, pattern),
            "{}: stderr\n  got:\n{got}\n  expected (with * for any text):\n{pattern}",
            self.what
        );
        self
    }

    /// stderr holds `part` somewhere: for a test that, by choice, checks
    /// only part of it.
    pub fn stderr_contains(self, part: &str) -> Self {
        let got = stderr(self.out);
        assert!(
            got.contains(part),
            "{}: stderr lacks {part:?}:\n{got}",
            self.what
        );
        self
    }
}

/// `text` matches `pattern` line by line, `*` matching any characters
/// within a line.
pub fn lines_like(text: &str, pattern: &str) -> bool {
    let got: Vec<&str> = text.split('\n').collect();
    let want: Vec<&str> = pattern.split('\n').collect();
    got.len() == want.len() && got.iter().zip(&want).all(|(g, w)| line_like(g, w))
}

fn line_like(line: &str, pattern: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[test]
fn patterns_match_whole_lines_with_stars_inside_one_line() {
    assert!(lines_like("a 1.5 s\n", "a * s\n"));
    assert!(lines_like("abc", "abc"));
    assert!(lines_like("abc", "*"));
    assert!(lines_like("a-b-c", "a*b*c"));
    assert!(!lines_like("abc\nx\n", "abc\n"));
    assert!(!lines_like("abcd", "abc"));
    assert!(!lines_like("xabc", "abc"));
    assert!(!lines_like("ab", "a*bb"));
    assert!(!lines_like("a\nb", "a*b"));
}
