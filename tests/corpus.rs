//! The bad-input corpus (tests/corpus/, written by make_corpus.py): every
//! hostile file gives the documented exit code and a message that names
//! the file and line, and every run accounts for every row.

use std::path::{Path, PathBuf};

use crate::common::*;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// (file, exit code of etl-extract, what stderr must contain).
const EXTRACT_CASES: &[(&str, i32, &str)] = &[
    (
        "unterminated-quote-last-field.csv",
        1,
        "unterminated-quote-last-field.csv:2: unterminated quoted field 2",
    ),
    (
        "unterminated-quote-first-field.csv",
        1,
        "unterminated-quote-first-field.csv:2: unterminated quoted field 1",
    ),
    (
        "unterminated-quote-after-rows.csv",
        1,
        "unterminated-quote-after-rows.csv:4: unterminated quoted field 2",
    ),
    (
        "unterminated-quote-in-header.csv",
        1,
        "unterminated-quote-in-header.csv:1: header line: unterminated",
    ),
    (
        "stray-char-after-quote.csv",
        1,
        "stray-char-after-quote.csv:2: unexpected 'y' after the closing quote",
    ),
    (
        "quote-then-space.csv",
        1,
        "quote-then-space.csv:2: unexpected ' ' after the closing quote",
    ),
    (
        "ragged-short-row.csv",
        1,
        "ragged-short-row.csv:3: expected 3 fields (as in the first line), found 2",
    ),
    (
        "ragged-long-row.csv",
        1,
        "ragged-long-row.csv:3: expected 2 fields (as in the first line), found 3",
    ),
    (
        "ragged-many-rows.csv",
        1,
        "ragged-many-rows.csv:2: expected 2 fields",
    ),
    (
        "trailing-delimiter.csv",
        1,
        "trailing-delimiter.csv:2: expected 2 fields (as in the first line), found 3",
    ),
    ("header-only.csv", 0, "0 rows read, 0 written, 0 rejected"),
    (
        "header-only-no-newline.csv",
        0,
        "0 rows read, 0 written, 0 rejected",
    ),
    ("empty.csv", 1, "empty.csv: empty input: no header line"),
    (
        "only-newlines.csv",
        1,
        "only-newlines.csv: empty input: no header line",
    ),
    (
        "bom-only.csv",
        1,
        "bom-only.csv: empty input: no header line",
    ),
    (
        "duplicate-header.csv",
        1,
        "duplicate-header.csv:1: duplicate column name \"id\" in the header (fields 1 and 3)",
    ),
    (
        "duplicate-header-case.csv",
        1,
        "duplicate-header-case.csv:1: duplicate column name \"name\"",
    ),
    ("empty-header-name.csv", 0, "1 rows read, 1 written"),
    (
        "invalid-utf8-field.csv",
        1,
        "invalid-utf8-field.csv:2: invalid UTF-8 in field 2 at byte 0",
    ),
    (
        "invalid-utf8-header.csv",
        1,
        "invalid-utf8-header.csv:1: header line: invalid UTF-8 in field 2",
    ),
    (
        "latin1-text.csv",
        1,
        "latin1-text.csv:2: invalid UTF-8 in field 1 at byte 3",
    ),
    (
        "truncated-utf8.csv",
        1,
        "truncated-utf8.csv:2: invalid UTF-8 in field 1 at byte 2",
    ),
    ("nul-byte.csv", 0, "1 rows read, 1 written"),
    ("bom-and-crlf.csv", 0, "1 rows read, 1 written"),
    ("huge-field.csv", 0, "1 rows read, 1 written"),
    ("huge-integer.csv", 0, "1 rows read, 1 written"),
    ("integer-overflow-later.csv", 0, "3 rows read, 3 written"),
    ("mixed-dates.csv", 0, "3 rows read, 3 written"),
    ("leading-zeros.csv", 0, "2 rows read, 2 written"),
    ("float-precision.csv", 0, "2 rows read, 2 written"),
    ("numbers-with-spaces.csv", 0, "2 rows read, 2 written"),
    ("cr-line-endings.csv", 0, "2 rows read, 2 written"),
    (
        "not-json.ndjson",
        1,
        "not-json.ndjson:2: expected a JSON object",
    ),
    (
        "array-line.ndjson",
        1,
        "array-line.ndjson:2: expected a JSON object, found an array",
    ),
    (
        "string-line.ndjson",
        1,
        "string-line.ndjson:2: expected a JSON object, found a string",
    ),
    (
        "number-line.ndjson",
        1,
        "number-line.ndjson:2: expected a JSON object",
    ),
    (
        "null-line.ndjson",
        1,
        "null-line.ndjson:2: expected a JSON object",
    ),
    (
        "truncated-object.ndjson",
        1,
        "truncated-object.ndjson:2: invalid JSON",
    ),
    (
        "two-objects-one-line.ndjson",
        1,
        "two-objects-one-line.ndjson:1: invalid JSON: trailing characters",
    ),
    (
        "invalid-utf8.ndjson",
        1,
        "invalid-utf8.ndjson:1: invalid UTF-8",
    ),
    (
        "bad-escape.ndjson",
        1,
        "bad-escape.ndjson:1: invalid JSON: invalid escape",
    ),
    (
        "control-char-in-string.ndjson",
        1,
        "control-char-in-string.ndjson:1: invalid JSON: control character",
    ),
    ("deeply-nested.ndjson", 0, "1 rows read, 1 written"),
    ("huge-number.ndjson", 0, "1 rows read, 1 written"),
    ("big-integer.ndjson", 0, "1 rows read, 1 written"),
    ("duplicate-keys.ndjson", 0, "1 rows read, 1 written"),
    ("empty.ndjson", 0, "0 rows read, 0 written"),
    ("blank-lines.ndjson", 0, "1 rows read, 1 written"),
    ("bom.ndjson", 0, "1 rows read, 1 written"),
    (
        "end-without-begin.ndjson",
        1,
        "end-without-begin.ndjson:2: end line without a begin line",
    ),
    (
        "begin-without-end.ndjson",
        1,
        "begin-without-end.ndjson: upstream ended early after 1 rows",
    ),
    (
        "nested-begin.ndjson",
        1,
        "nested-begin.ndjson:3: a new stream begins while stream \"s\"",
    ),
    (
        "wrong-end-count.ndjson",
        1,
        "wrong-end-count.ndjson:3: end line of stream \"s\" counts 5 rows but 1 arrived",
    ),
    (
        "record-after-end.ndjson",
        1,
        "record-after-end.ndjson:3: record after the stream's end line",
    ),
    (
        "end-without-rows.ndjson",
        1,
        "end-without-rows.ndjson:2: end line has no valid \"rows\" count",
    ),
    (
        "control-not-string.ndjson",
        1,
        "control-not-string.ndjson:1: control line's \"@etl\" value is not a string",
    ),
    (
        "unknown-control.ndjson",
        1,
        "unknown-control.ndjson:1: unknown control line \"bogus\"",
    ),
    (
        "array-missing-comma.json",
        1,
        "array-missing-comma.json:2: expected , or ] between elements",
    ),
    (
        "array-unclosed.json",
        1,
        "array-unclosed.json:2: the array is not closed",
    ),
    (
        "array-of-scalars.json",
        1,
        "array-of-scalars.json:1: expected a JSON object",
    ),
    (
        "object-not-array.json",
        1,
        "object-not-array.json:1: expected a JSON array, found an object",
    ),
    (
        "array-trailing-garbage.json",
        1,
        "array-trailing-garbage.json:1: unexpected 'x' after the end of the array",
    ),
    (
        "array-form-feed.json",
        1,
        "array-form-feed.json:2: unexpected control character 0x0c between JSON values",
    ),
    ("bom-array.json", 0, "1 rows read, 1 written"),
];

fn summary_counts(stderr: &str, program: &str) -> Option<(u64, u64, u64)> {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with(&format!("{program}: ")) && l.contains(" rows read, "))?;
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(3)
        .map(|s| s.parse().expect("number"))
        .collect();
    Some((numbers[0], numbers[1], numbers[2]))
}

#[test]
fn corpus_is_complete() {
    let files: Vec<String> = std::fs::read_dir(corpus())
        .expect("corpus dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".py"))
        .collect();
    assert!(files.len() >= 50, "the corpus has {} files", files.len());
    for f in &files {
        assert!(
            EXTRACT_CASES.iter().any(|(name, _, _)| name == f),
            "{f} has no expectation"
        );
    }
}

#[test]
fn every_bad_input_fails_clearly_and_every_row_is_accounted_for() {
    let dir = corpus();
    for (name, expected_code, expected) in EXTRACT_CASES {
        let mut c = cmd(EXTRACT, &dir);
        c.arg(name);
        let out = run(c);
        let err = stderr(&out);
        assert_eq!(code(&out), *expected_code, "{name}: {err}");
        assert!(
            err.contains(expected),
            "{name}: expected {expected:?} in:\n{err}"
        );
        if *expected_code != 0 {
            assert!(err.starts_with("etl-extract: error: "), "{name}: {err}");
            assert!(
                !stdout(&out).contains("\"@etl\":\"end\""),
                "{name}: a failed run wrote an end line"
            );
        }
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
}

#[test]
fn with_rejects_the_run_goes_on_and_read_is_written_plus_rejected() {
    let src = corpus();
    let work = tempdir();
    for (name, _, _) in EXTRACT_CASES {
        // Row-level problems only: a header or framing problem has no row to set aside.
        let script = format!(
            "etl-extract '{}' --rejects x.rej | etl-load -q w.db --table t --rejects l.rej",
            src.join(name).display()
        );
        let out = bash(&script, work.path());
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{name}: {err}");
        if let Some((read, written, rejected)) = summary_counts(&err, "etl-extract") {
            assert_eq!(read, written + rejected, "{name}: {err}");
            if rejected > 0 {
                let lines =
                    std::fs::read_to_string(work.path().join("x.rej")).expect("rejects file");
                assert_eq!(lines.lines().count() as u64, rejected, "{name}");
                for l in lines.lines() {
                    let v: serde_json::Value = serde_json::from_str(l).expect("reject is JSON");
                    assert!(
                        v["input"].as_str().is_some_and(|i| i.ends_with(name)),
                        "{name}: {l}"
                    );
                    assert!(v["reason"].is_string(), "{name}: {l}");
                }
            }
        }
        let _ = std::fs::remove_file(work.path().join("w.db"));
    }
}

#[test]
fn loader_handles_the_odd_but_valid_inputs() {
    let src = corpus();
    let work = tempdir();
    for (name, rows) in [
        ("huge-field.csv", 1),
        ("nul-byte.csv", 1),
        ("huge-integer.csv", 1),
        ("integer-overflow-later.csv", 3),
        ("deeply-nested.ndjson", 1),
        ("huge-number.ndjson", 1),
        ("big-integer.ndjson", 1),
        ("float-precision.csv", 2),
        ("mixed-dates.csv", 3),
    ] {
        let table = name.replace(['-', '.'], "_");
        let out = bash(
            &format!(
                "etl-extract '{}' | etl-load w.db --table {table}",
                src.join(name).display()
            ),
            work.path(),
        );
        assert_eq!(code(&out), 0, "{name}: {}", stderr(&out));
        assert_eq!(
            count(&work.path().join("w.db"), &table),
            Some(rows),
            "{name}"
        );
    }
    // A later value that does not fit the guessed type is passed on as text
    // and rejected by the typed column, never converted.
    let out = bash(
        &format!(
            "etl-extract --infer-rows 2 '{}' | etl-load w.db --table late",
            src.join("integer-overflow-later.csv").display()
        ),
        work.path(),
    );
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("stdin:4: column \"id\": text value \"9223372036854775808\" does not fit a INTEGER column"), "{}", stderr(&out));
    // Duplicate keys in one object are refused by the loader, not resolved silently.
    let out = bash(
        &format!(
            "etl-load w.db --table dup '{}'",
            src.join("duplicate-keys.ndjson").display()
        ),
        work.path(),
    );
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out)
            .contains("duplicate-keys.ndjson:1: field \"a\" names column \"a\" a second time"),
        "{}",
        stderr(&out)
    );
}
