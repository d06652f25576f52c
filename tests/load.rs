//! `etl-load` on its own: framing, modes, typing, all-or-nothing.

use std::path::Path;

use crate::common::*;

const BEGIN: &str = r#"{"@etl":"begin","stream":"s"}"#;

fn load(dir: &Path, args: &[&str], input: &str) -> std::process::Output {
    let mut c = cmd(LOAD, dir);
    c.arg("w.db").args(["--table", "t"]).args(args);
    run_with_input(c, input.as_bytes())
}

fn framed(records: &[&str]) -> String {
    let mut s = format!("{BEGIN}\n");
    for r in records {
        s.push_str(r);
        s.push('\n');
    }
    s.push_str(&format!(
        r#"{{"@etl":"end","stream":"s","rows":{}}}"#,
        records.len()
    ));
    s.push('\n');
    s
}

#[test]
fn append_twice_doubles_replace_twice_keeps_one_copy() {
    let dir = tempdir();
    let db = dir.path().join("w.db");
    let input = framed(&[r#"{"id":1,"name":"a"}"#, r#"{"id":2,"name":"b"}"#]);
    for _ in 0..2 {
        let out = load(dir.path(), &[], &input);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    assert_eq!(count(&db, "t"), Some(4));
    for _ in 0..2 {
        let out = load(dir.path(), &["--mode", "replace"], &input);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    assert_eq!(
        dump(&db, "t"),
        ["Integer(1)|Text(\"a\")", "Integer(2)|Text(\"b\")"]
    );
}

#[test]
fn stream_cut_after_begin_commits_nothing() {
    let dir = tempdir();
    let db = dir.path().join("w.db");
    let out = load(dir.path(), &[], &framed(&[r#"{"id":1}"#]));
    assert_eq!(code(&out), 0);
    for mode in ["append", "replace"] {
        let cut = format!("{BEGIN}\n{{\"id\":2}}\n{{\"id\":3}}\n");
        let out = load(dir.path(), &["--mode", mode], &cut);
        assert_eq!(code(&out), 1, "{mode}");
        let err = stderr(&out);
        assert!(err.contains("upstream ended early after 2 rows"), "{err}");
        assert!(err.contains("nothing was loaded into w.db"), "{err}");
        assert_eq!(
            dump(&db, "t"),
            ["Integer(1)"],
            "{mode} left the table as it was"
        );
    }
}

#[test]
fn cut_stream_into_new_database_leaves_no_file() {
    let dir = tempdir();
    let out = load(dir.path(), &[], &format!("{BEGIN}\n{{\"id\":2}}\n"));
    assert_eq!(code(&out), 1);
    assert_eq!(
        count(&dir.path().join("w.db"), "t"),
        None,
        "no table was created"
    );
}

#[test]
fn empty_input_never_replaces_a_table_with_nothing() {
    let dir = tempdir();
    let db = dir.path().join("w.db");
    load(dir.path(), &[], &framed(&[r#"{"id":1}"#]));
    let out = load(dir.path(), &["--mode", "replace"], "");
    assert_eq!(code(&out), 1);
    assert_eq!(
        stderr(&out),
        "etl-load: error: nothing was loaded into w.db (table \"t\" is as it was): \
         stdin: input has no lines at all; refusing to replace table \"t\" with nothing\n\
         hint: if the source really is empty, add --allow-empty\n"
    );
    assert_eq!(count(&db, "t"), Some(1));
    // A framed empty stream is a truthful empty source.
    let out = load(dir.path(), &["--mode", "replace"], &framed(&[]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(count(&db, "t"), Some(0));
    load(dir.path(), &[], &framed(&[r#"{"id":1}"#]));
    let out = load(dir.path(), &["--mode", "replace", "--allow-empty"], "");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(count(&db, "t"), Some(0));
}

#[test]
fn unframed_input_from_other_tools_is_committed() {
    let dir = tempdir();
    let out = load(dir.path(), &["-q"], "{\"id\":1}\n{\"id\":2}");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    assert_eq!(count(&dir.path().join("w.db"), "t"), Some(2));
}

#[test]
fn end_count_mismatch_commits_nothing() {
    let dir = tempdir();
    let input =
        format!("{BEGIN}\n{{\"id\":1}}\n{{\"@etl\":\"end\",\"stream\":\"s\",\"rows\":2}}\n");
    let out = load(dir.path(), &[], &input);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("counts 2 rows but 1 arrived"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        count(&dir.path().join("w.db"), "t"),
        None,
        "no table was created"
    );
}

#[test]
fn second_begin_without_end_is_truncation() {
    let dir = tempdir();
    let input = format!("{BEGIN}\n{{\"id\":1}}\n{}", framed(&[r#"{"id":2}"#]));
    let out = load(dir.path(), &[], &input);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("upstream ended early after 1 rows"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn types_come_from_begin_schema_and_values() {
    let dir = tempdir();
    let db = dir.path().join("w.db");
    let input = "{\"@etl\":\"begin\",\"stream\":\"s\",\"schema\":{\"p\":\"float\",\"z\":\"text\"}}\n\
                 {\"p\":1,\"z\":null,\"n\":null,\"j\":{\"a\":[1]},\"b\":true,\"q\":1}\n\
                 {\"p\":2.5,\"z\":\"007\",\"n\":null,\"j\":null,\"b\":false,\"q\":2.25}\n\
                 {\"@etl\":\"end\",\"stream\":\"s\",\"rows\":2}\n";
    let out = load(dir.path(), &[], input);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let conn = rusqlite::Connection::open(&db).expect("open");
    let types: Vec<(String, String)> = conn
        .prepare("SELECT name, type FROM pragma_table_info('t')")
        .expect("pragma")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let expected = [
        ("p", "REAL"),
        ("z", "TEXT"),
        ("n", "TEXT"),
        ("j", "JSON_TEXT"),
        ("b", "BOOLEAN"),
        ("q", "REAL"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(types, expected);
}

#[test]
fn value_that_does_not_fit_fails_the_run_naming_its_line() {
    let dir = tempdir();
    let db = dir.path().join("w.db");
    load(dir.path(), &[], &framed(&[r#"{"id":1}"#]));
    let input = framed(&[r#"{"id":2}"#, r#"{"id":"n/a"}"#]);
    let out = load(dir.path(), &[], &input);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out)
            .contains("stdin:3: column \"id\": text value \"n/a\" does not fit a INTEGER column"),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&db, "t"), Some(1));
}

#[test]
fn new_field_adds_a_column() {
    let dir = tempdir();
    let db = dir.path().join("w.db");
    load(dir.path(), &[], &framed(&[r#"{"id":1}"#]));
    let out = load(dir.path(), &[], &framed(&[r#"{"id":2,"color":"red"}"#]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        dump(&db, "t"),
        ["Integer(1)|Null", "Integer(2)|Text(\"red\")"]
    );
}

#[test]
fn hostile_names_are_quoted() {
    let dir = tempdir();
    let table = r#"x"; DROP TABLE t; --"#;
    let mut c = cmd(LOAD, dir.path());
    c.arg("w.db").args(["--table", table]);
    let out = run_with_input(c, br#"{"a b":1,"select":2,"q\"uote":3}"#);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        dump(&dir.path().join("w.db"), table),
        ["Integer(1)|Integer(2)|Integer(3)"]
    );
}

#[test]
fn bad_json_names_line() {
    let dir = tempdir();
    let out = load(dir.path(), &[], "{\"id\":1}\n{\"id\":\n");
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out)
            .contains("stdin:2: invalid JSON: the line ends inside the object (cut short?)"),
        "{}",
        stderr(&out)
    );
    let out = load(dir.path(), &[], "{\"id\":1}\n\"text\"\n");
    assert!(
        stderr(&out).contains("stdin:2: expected a JSON object, found text"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempdir();
    let out = load(dir.path(), &["--allow-empty"], "");
    assert_eq!(code(&out), 2);
    assert_eq!(
        stderr(&out),
        "etl-load: error: --allow-empty only applies to --mode replace, sync and delete-missing\n"
    );
    let mut c = cmd(LOAD, dir.path());
    c.arg("w.db");
    assert_eq!(code(&run(c)), 2, "--table is required");
}

#[test]
fn log_json_gives_machine_readable_run_records() {
    let dir = tempdir();
    let out = load(dir.path(), &["--log-json", "-q"], &framed(&[r#"{"id":1}"#]));
    assert_eq!(code(&out), 0);
    let record: serde_json::Value =
        serde_json::from_str(stderr(&out).trim()).expect("one JSON line");
    assert_eq!(record["program"], "etl-load");
    assert_eq!(record["status"], "ok");
    assert_eq!(record["rows_read"], 1);
    assert_eq!(record["rows_written"], 1);
    let out = load(
        dir.path(),
        &["--log-json"],
        "{\"@etl\":\"begin\",\"stream\":\"s\"}\n",
    );
    assert_eq!(code(&out), 1);
    let record: serde_json::Value =
        serde_json::from_str(stderr(&out).trim()).expect("one JSON line");
    assert_eq!(record["status"], "error");
    assert_eq!(record["exit_code"], 1);
    assert!(
        record["error"]
            .as_str()
            .expect("error text")
            .contains("upstream ended early after 0 rows")
    );
}

#[test]
fn names_etlkit_reserves_are_refused() {
    let dir = tempdir();
    let d = dir.path();
    let db = d.join("w.db");
    for table in ["_etl_state", "_ETL_batches", "_etl_mine"] {
        let mut c = cmd(LOAD, d);
        c.args(["w.db", "--table", table]);
        let out = run_with_input(c, b"{\"id\":1}\n");
        assert_eq!(code(&out), 2, "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!(
                "--table {table:?}: names starting with _etl_ are reserved"
            )),
            "{}",
            stderr(&out)
        );
    }
    assert!(!db.exists(), "a refused table name touches nothing");

    // A field named like etlkit's own columns is a reject, never a column.
    let input = framed(&[r#"{"id":1}"#, r#"{"id":2,"_etl_seq":7}"#, r#"{"id":3}"#]);
    let out = load(d, &[], &input);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "stdin:3: field \"_etl_seq\": names starting with _etl_ are reserved for etlkit's own columns"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&db, "t"), None);
    let out = load(
        d,
        &["--rejects", "bad.ndjson", "--max-rejects", "1"],
        &input,
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(count(&db, "t"), Some(2));
    assert!(!dump(&db, "t").iter().any(|row| row.contains('7')));
    let bad = std::fs::read_to_string(d.join("bad.ndjson")).expect("rejects file");
    assert!(bad.contains("_etl_seq"), "{bad}");

    // A stream that declares such a field is refused before anything is written.
    let input = format!(
        "{}\n{{\"id\":9,\"_etl_x\":1}}\n{}\n",
        r#"{"@etl":"begin","stream":"s","schema":{"id":"integer","_etl_x":"integer"}}"#,
        r#"{"@etl":"end","stream":"s","rows":1}"#
    );
    let out = load(d, &[], &input);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("declares a field \"_etl_x\""),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&db, "t"), Some(2));
}

#[test]
fn an_unknown_control_line_is_a_reject_never_dropped() {
    let dir = tempdir();
    let db = dir.path().join("w.db");
    let input = "{\"@etl\":\"bogus\",\"x\":1}\n{\"x\":2}\n";
    let out = load(dir.path(), &[], input);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("stdin:1: unknown control line \"bogus\""),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&db, "t"), None, "nothing was loaded");
    let out = load(dir.path(), &["--rejects", "r.ndjson"], input);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("2 rows read, 1 written, 1 rejected"),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&db, "t"), Some(1));
    let rejected = std::fs::read_to_string(dir.path().join("r.ndjson")).expect("rejects");
    let rejected: serde_json::Value = serde_json::from_str(rejected.trim()).expect("one reject");
    assert_eq!(rejected["line"], 1);
    assert_eq!(
        rejected["record"],
        serde_json::json!({"@etl":"bogus","x":1})
    );
    // Inside a framed stream it counts as one of the producer's rows.
    let out = load(
        dir.path(),
        &["--rejects", "r.ndjson"],
        &framed(&[r#"{"@etl":5}"#, r#"{"x":3}"#]),
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(count(&db, "t"), Some(2));
}

#[test]
fn a_bom_at_the_start_of_the_input_is_skipped() {
    let dir = tempdir();
    let out = load(dir.path(), &[], "\u{feff}{\"id\":1}\n{\"id\":2}\n");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        dump(&dir.path().join("w.db"), "t"),
        ["Integer(1)", "Integer(2)"]
    );
}

/// The rejects file's reasons, in order.
fn reject_reasons(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("r.ndjson")).expect("rejects file");
    json_lines(&text)
        .iter()
        .map(|r| r["reason"].as_str().expect("reason").to_string())
        .collect()
}

#[test]
fn floats_that_cannot_be_stored_exactly_are_rejected() {
    let dir = tempdir();
    let d = dir.path();
    let out = load(d, &[], "{\"id\":0,\"n\":1.5}\n");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let input = framed(&[
        r#"{"id":1,"n":1e-400}"#,
        r#"{"id":2,"n":1e400}"#,
        r#"{"id":3,"n":1.2345678901234e-315}"#,
        r#"{"id":4,"n":1.5e-310}"#,
        r#"{"id":5,"n":5e-324}"#,
    ]);
    let out = load(d, &["--rejects", "r.ndjson"], &input);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(
        reject_reasons(d),
        [
            "column \"n\": number value 1e-400 does not fit a REAL column",
            "column \"n\": number value 1e400 does not fit a REAL column",
            "column \"n\": number value 1.2345678901234e-315 does not fit a REAL column",
        ]
    );
    assert_eq!(
        dump(&d.join("w.db"), "t"),
        [
            "Integer(0)|Real(1.5)",
            "Integer(4)|Real(1.5e-310)",
            "Integer(5)|Real(5e-324)"
        ]
    );
}

#[test]
fn numeric_text_goes_into_numeric_columns_when_exact() {
    let dir = tempdir();
    let d = dir.path();
    let out = load(d, &[], "{\"id\":0,\"amount\":1.5,\"qty\":3}\n");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let input = framed(&[
        r#"{"id":1,"amount":"1.00","qty":"12"}"#,
        r#"{"id":2,"qty":"1.5"}"#,
        r#"{"id":3,"amount":"abc"}"#,
        r#"{"id":4,"amount":"1e-400"}"#,
        r#"{"id":5,"qty":"007"}"#,
        r#"{"id":6,"amount":"-2.5e3","qty":"-9007199254740993"}"#,
    ]);
    let out = load(d, &["--rejects", "r.ndjson"], &input);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(
        reject_reasons(d),
        [
            "column \"qty\": text value \"1.5\" does not fit a INTEGER column",
            "column \"amount\": text value \"abc\" does not fit a REAL column",
            "column \"amount\": text value \"1e-400\" does not fit a REAL column",
            "column \"qty\": text value \"007\" does not fit a INTEGER column",
        ]
    );
    assert_eq!(
        dump(&d.join("w.db"), "t"),
        [
            "Integer(0)|Real(1.5)|Integer(3)",
            "Integer(1)|Real(1.0)|Integer(12)",
            "Integer(6)|Real(-2500.0)|Integer(-9007199254740993)"
        ]
    );
}

#[test]
fn an_unknown_url_scheme_is_a_usage_error_not_a_local_path() {
    let dir = tempdir();
    let d = dir.path();
    let load_hint = "it takes postgres://, postgresql://, mysql://, mariadb://, s3:// or a local file or directory";
    let cases: Vec<(&str, Vec<&str>, String)> = vec![
        (
            LOAD,
            vec!["s3://bucket/lake", "--partition-by", "k", "--format", "csv"],
            "etl-load: error: a dataset is written as Parquet; --format csv cannot be partitioned".to_string(),
        ),
        (
            LOAD,
            vec!["nosuch://b/x.parquet"],
            format!("etl-load: error: nosuch:// is an address scheme etlkit does not know, so it cannot be etl-load's TARGET: {load_hint}"),
        ),
        (
            LOAD,
            vec!["https://example.com/x"],
            format!("etl-load: error: https:// cannot be used as etl-load's TARGET: {load_hint}"),
        ),
        (
            LOAD,
            vec!["w.db", "--table", "t", "gs://b/orders.csv"],
            "etl-load: error: gs:// is an address scheme etlkit does not know, so it cannot be an INPUT: it takes postgres://, postgresql://, mysql://, mariadb://, s3://, http://, https:// or a local file, a glob or -".to_string(),
        ),
        (
            EXTRACT,
            vec!["nosuch://b/x.parquet"],
            "etl-extract: error: nosuch:// is an address scheme etlkit does not know, so it cannot be an INPUT: it takes postgres://, postgresql://, mysql://, mariadb://, s3://, http://, https:// or a local file, a glob or -".to_string(),
        ),
        (
            EXTRACT,
            vec!["orders.csv", "--cursor", "id", "--state", "s3://b/state.json"],
            "etl-extract: error: s3:// cannot be used as --state: it takes postgres://, postgresql://, mysql://, mariadb:// or a SQLite file, a dataset directory or a .json file".to_string(),
        ),
        (
            WATCH,
            vec!["gs://bucket/inbox", "--once"],
            "etl-watch: error: gs:// is an address scheme etlkit does not know, so it cannot be etl-watch's PATH: it takes nats://, tls://, redis://, rediss://, kafka://, s3://, postgres://, postgresql://, mysql://, mariadb:// or a local file, directory, glob or -".to_string(),
        ),
    ];
    for (bin, args, message) in cases {
        let mut c = cmd(bin, d);
        c.args(&args);
        let out = run_with_input(c, b"{\"k\":1}\n");
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).trim_end(), message, "{args:?}");
    }
    let left: Vec<_> = std::fs::read_dir(d).expect("list").collect();
    assert!(left.is_empty(), "a local path was made: {left:?}");
}
