//! `etl-extract` on its own: formats, typing, framing, errors.

use crate::common::*;
use serde_json::json;

fn extract_bytes(name: &str, contents: &[u8], args: &[&str]) -> std::process::Output {
    let dir = tempdir();
    let path = write(dir.path(), name, contents);
    let mut c = cmd(EXTRACT, dir.path());
    c.arg(&path).args(args);
    run(c)
}

#[test]
fn csv_is_framed_and_typed() {
    let out = extract_bytes(
        "t.csv",
        b"id,zip,price,ok,when\n1,00501,2.50,true,2026-01-01\n2,,3,false,\n",
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines = json_lines(&stdout(&out));
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["@etl"], "begin");
    assert_eq!(lines[0]["stream"], "t");
    assert_eq!(
        lines[0]["schema"],
        json!({"id":"integer","zip":"text","price":"decimal(15,2)","ok":"boolean","when":"date"})
    );
    assert_eq!(
        stdout(&out).lines().nth(1),
        Some(r#"{"id":1,"zip":"00501","price":2.50,"ok":true,"when":"2026-01-01"}"#)
    );
    assert_eq!(
        stdout(&out).lines().nth(2),
        Some(r#"{"id":2,"zip":null,"price":3,"ok":false,"when":null}"#)
    );
    assert_eq!(lines[3], json!({"@etl":"end","stream":"t","rows":2}));
    assert!(stderr(&out).starts_with("etl-extract: 2 rows read, 2 written, 0 rejected in "));
}

#[test]
fn sample_orders_keep_every_value() {
    let dir = tempdir();
    let mut c = cmd(EXTRACT, dir.path());
    c.arg(sample("orders.csv")).arg("-q");
    let out = run(c);
    assert_eq!(code(&out), 0);
    assert_eq!(stderr(&out), "", "-q prints nothing on success");
    let text = stdout(&out);
    assert!(
        text.contains(r#""external_ref":9007199254740993004"#),
        "19-digit id keeps its digits"
    );
    let recs = records(&text);
    assert_eq!(recs.len(), 12);
    assert_eq!(recs[0]["zip"], "00501");
    assert_eq!(recs[0]["product"], "Widget, large");
    assert_eq!(
        recs[3]["note"],
        "Gift wrap, please.\nCard: \"Happy birthday, Ana!\""
    );
    assert_eq!(recs[4]["product"], "東京 tea set");
    assert_eq!(recs[6]["shipped"], serde_json::Value::Null);
}

#[test]
fn stdin_by_dash_and_by_default() {
    let dir = tempdir();
    for args in [vec!["-"], vec![], vec!["--format", "csv"]] {
        let mut c = cmd(EXTRACT, dir.path());
        c.args(&args).arg("-q");
        let out = run_with_input(c, b"a,b\n1,x\n");
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        assert_eq!(records(&stdout(&out)), [json!({"a":1,"b":"x"})]);
        assert_eq!(json_lines(&stdout(&out))[0]["stream"], "stdin");
    }
}

#[test]
fn bom_crlf_and_quoted_newlines() {
    let out = extract_bytes(
        "w.csv",
        b"\xEF\xBB\xBFname,note\r\n\"a, b\",\"x\r\ny\"\r\n",
        &["-q"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        records(&stdout(&out)),
        [json!({"name":"a, b","note":"x\r\ny"})]
    );
}

#[test]
fn tsv_and_custom_delimiter() {
    let out = extract_bytes("t.tsv", b"a\tb\n5\" screen\t7\n", &["-q"]);
    assert_eq!(records(&stdout(&out)), [json!({"a":"5\" screen","b":7})]);
    let out = extract_bytes("t.txt", b"a;b\n1;2\n", &["-q", "--delimiter", ";"]);
    assert_eq!(records(&stdout(&out)), [json!({"a":1,"b":2})]);
}

#[test]
fn no_header_and_all_text() {
    let out = extract_bytes(
        "t.csv",
        b"1,007\n2,008\n",
        &["-q", "--no-header", "--all-text"],
    );
    assert_eq!(
        records(&stdout(&out)),
        [
            json!({"column_1":"1","column_2":"007"}),
            json!({"column_1":"2","column_2":"008"})
        ]
    );
}

#[test]
fn ndjson_passes_records_through_unchanged() {
    let input = b"{\"b\":1,\"a\":12345678901234567890123}\n\n{\"nested\":{\"x\":[1,2]}}\r\n";
    let out = extract_bytes("e.ndjson", input, &["-q"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1], r#"{"b":1,"a":12345678901234567890123}"#);
    assert_eq!(lines[2], r#"{"nested":{"x":[1,2]}}"#);
    assert_eq!(lines.len(), 4);
}

#[test]
fn header_only_csv_is_an_empty_stream() {
    let out = extract_bytes("h.csv", b"a,b\n", &["-q"]);
    assert_eq!(code(&out), 0);
    let lines = json_lines(&stdout(&out));
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["rows"], 0);
}

#[test]
fn empty_csv_is_an_error() {
    let out = extract_bytes("empty.csv", b"", &[]);
    assert_eq!(code(&out), 1);
    let lines = json_lines(&stdout(&out));
    assert_eq!(
        lines.len(),
        1,
        "a begin line and no end: downstream sees a cut stream"
    );
    assert_eq!(lines[0]["@etl"], "begin");
    assert!(
        stderr(&out).contains("empty.csv: empty input: no header line"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn malformed_csv_names_file_and_line() {
    let cases: [(&str, &[u8], &str); 5] = [
        (
            "quote.csv",
            b"a,b\n1,2\n3,\"open\n4,5\n",
            "quote.csv:3: unterminated quoted field 2",
        ),
        (
            "ragged.csv",
            b"a,b\n1,2\n3\n",
            "ragged.csv:3: expected 2 fields (as in the first line), found 1",
        ),
        (
            "utf8.csv",
            b"a,b\n1,2\n3,\xff\xfe\n",
            "utf8.csv:3: invalid UTF-8 in field 2",
        ),
        (
            "stray.csv",
            b"a,b\n\"x\"y,2\n",
            "stray.csv:2: unexpected 'y' after the closing quote of field 1",
        ),
        (
            "dupe.csv",
            b"id,name,ID\n1,2,3\n",
            "dupe.csv:1: duplicate column name \"ID\" in the header (fields 1 and 3)",
        ),
    ];
    for (name, contents, expected) in cases {
        let out = extract_bytes(name, contents, &[]);
        assert_eq!(code(&out), 1, "{name}");
        let err = stderr(&out);
        assert!(err.starts_with("etl-extract: error: "), "{name}: {err}");
        assert!(
            err.contains(expected),
            "{name}: expected {expected:?} in {err:?}"
        );
        assert!(
            !stdout(&out).contains(r#""@etl":"end""#),
            "{name}: a failed extract must not write an end line"
        );
    }
}

#[test]
fn later_value_that_breaks_the_guess_is_passed_on_as_text() {
    let out = extract_bytes("t.csv", b"qty\n1\n2\nn/a\n", &["--infer-rows", "2"]);
    assert_eq!(code(&out), 0);
    assert_eq!(
        records(&stdout(&out)),
        [json!({"qty":1}), json!({"qty":2}), json!({"qty":"n/a"})]
    );
    assert!(
        stderr(&out).contains("t.csv:4: column \"qty\" was typed integer"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn malformed_ndjson_names_file_and_line() {
    let cases: [(&str, &[u8], &str); 3] = [
        (
            "bad.ndjson",
            b"{\"a\":1}\n{\"a\":\n",
            "bad.ndjson:2: invalid JSON",
        ),
        (
            "arr.ndjson",
            b"{\"a\":1}\n[1,2]\n",
            "arr.ndjson:2: expected a JSON object, found an array",
        ),
        (
            "cut.ndjson",
            b"{\"@etl\":\"begin\",\"stream\":\"s\"}\n{\"a\":1}\n",
            "cut.ndjson: upstream ended early after 1 rows",
        ),
    ];
    for (name, contents, expected) in cases {
        let out = extract_bytes(name, contents, &[]);
        assert_eq!(code(&out), 1, "{name}");
        assert!(stderr(&out).contains(expected), "{name}: {}", stderr(&out));
    }
}

#[test]
fn missing_file_fails_without_output() {
    let dir = tempdir();
    let mut c = cmd(EXTRACT, dir.path());
    c.arg("missing.csv");
    let out = run(c);
    assert_eq!(code(&out), 1);
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        "etl-extract: error: cannot open missing.csv: No such file or directory (os error 2)\n"
    );
}

#[test]
fn a_file_name_with_control_characters_is_escaped_in_messages() {
    let dir = tempdir();
    let mut c = cmd(EXTRACT, dir.path());
    c.arg("in\nbox\t\u{1b}red.csv");
    let out = run(c);
    assert_eq!(code(&out), 1);
    assert_eq!(
        stderr(&out),
        "etl-extract: error: cannot open in\\nbox\\t\\u{1b}red.csv: No such file or \
         directory (os error 2)\n"
    );
    // A bad row names its file and line, on one line.
    write(dir.path(), "in\nbox.csv", b"id,name\n1,a\n2,b,c\n");
    let mut c = cmd(EXTRACT, dir.path());
    c.arg("in\nbox.csv");
    let out = run(c);
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(
        err.starts_with("etl-extract: error: in\\nbox.csv:3: ") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempdir();
    let mut c = cmd(EXTRACT, dir.path());
    c.args(["--table", "t"]);
    let out = run(c);
    assert_eq!(code(&out), 2);
    assert_eq!(
        stderr(&out),
        "etl-extract: error: --table and --query need one database as INPUT: a SQLite file, a postgres:// or a mysql:// URL\n"
    );
    let mut c = cmd(EXTRACT, dir.path());
    c.args(["--bogus"]);
    assert_eq!(code(&run(c)), 2);
}

#[test]
fn closed_pipe_exits_zero_silently() {
    let dir = tempdir();
    let mut csv = String::from("id,name,amount\n");
    for i in 0..200_000 {
        csv.push_str(&format!("{i},name {i},{}.25\n", i % 1000));
    }
    write(dir.path(), "big.csv", csv.as_bytes());
    let out = bash("etl-extract big.csv | head -n 3", dir.path());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    assert_eq!(stdout(&out).lines().count(), 3);
}

#[test]
fn csv_with_lone_cr_line_endings_gives_every_row() {
    let out = extract_bytes("mac.csv", b"a,b\r1,2\r3,4\r", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines = json_lines(&stdout(&out));
    assert_eq!(lines[0]["schema"], json!({"a":"integer","b":"integer"}));
    assert_eq!(
        records(&stdout(&out)),
        [json!({"a":1,"b":2}), json!({"a":3,"b":4})]
    );
    // Inside quotes a CR is data, whatever the line endings around it.
    let out = extract_bytes("mac.csv", b"a,b\r\"x\ry\",2\r3,4", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        records(&stdout(&out)),
        [json!({"a":"x\ry","b":2}), json!({"a":"3","b":4})]
    );
    // Stdin reads the same way.
    let dir = tempdir();
    let mut c = cmd(EXTRACT, dir.path());
    c.args(["-f", "csv"]);
    let out = run_with_input(c, b"a,b\r1,2\r3,4\r");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(records(&stdout(&out)).len(), 2);
}

#[test]
fn a_bom_before_ndjson_or_a_json_array_is_skipped() {
    let out = extract_bytes("b.ndjson", b"\xEF\xBB\xBF{\"id\":1}\n{\"id\":2}\n", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(records(&stdout(&out)), [json!({"id":1}), json!({"id":2})]);
    let out = extract_bytes("b.json", b"\xEF\xBB\xBF[{\"id\":1},\n{\"id\":2}]\n", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(records(&stdout(&out)), [json!({"id":1}), json!({"id":2})]);
    // Only at the start: elsewhere it is not JSON.
    let out = extract_bytes("b.ndjson", b"{\"id\":1}\n\xEF\xBB\xBF{\"id\":2}\n", &[]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("b.ndjson:2: expected a JSON object"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn form_feed_is_not_json_whitespace_in_an_array() {
    for (input, line) in [
        (&b"[\x0c]"[..], 1),
        (&b"[{\"a\":1},\n\x0c{\"a\":2}]"[..], 2),
    ] {
        let out = extract_bytes("ff.json", input, &[]);
        assert_eq!(code(&out), 1, "{}", stderr(&out));
        assert!(
            stderr(&out).starts_with("etl-extract: error: ")
                && stderr(&out).contains(&format!(
                    "ff.json:{line}: unexpected control character 0x0c between JSON values"
                )),
            "{}",
            stderr(&out)
        );
        assert!(!stdout(&out).contains("\"end\""));
    }
}

#[test]
fn unknown_control_lines_in_ndjson_are_rejected_not_dropped() {
    let input = b"{\"@etl\":\"bogus\",\"x\":1}\n{\"x\":2}\n";
    let out = extract_bytes("c.ndjson", input, &[]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("c.ndjson:1: unknown control line \"bogus\""),
        "{}",
        stderr(&out)
    );
    let dir = tempdir();
    let d = dir.path();
    write(d, "c.ndjson", input);
    let mut c = cmd(EXTRACT, d);
    c.args(["c.ndjson", "--rejects", "rej.ndjson"]);
    let out = run(c);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(records(&stdout(&out)), [json!({"x":2})]);
    assert!(stderr(&out).contains("2 rows read, 1 written, 1 rejected"));
    let rejected = json_lines(&std::fs::read_to_string(d.join("rej.ndjson")).expect("rejects"));
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["line"], 1);
}

#[test]
fn a_record_whose_first_field_is_the_control_key_is_rejected() {
    // Downstream stages would take such a record for a control line.
    let out = extract_bytes("k.csv", b"@etl,x\nbegin,1\n", &[]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("k.csv:2: a record's first field may not be named \"@etl\""),
        "{}",
        stderr(&out)
    );
    let out = extract_bytes("k.json", b"[{\"@etl\":\"end\",\"rows\":0}]", &[]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("k.json:1: a record's first field may not be named \"@etl\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn sqlite_columns_without_a_wire_type_keep_their_place() {
    let dir = tempdir();
    let d = dir.path();
    let conn = rusqlite::Connection::open(d.join("src.db")).expect("db");
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER, at DATETIME, name TEXT, amount NUMERIC, note, n INT);
         INSERT INTO t VALUES (1, '2026-01-02 10:00:00', 'a', 12.5, x'00ff', 7),
                              (2, NULL, 'b', 3, NULL, NULL);",
    )
    .expect("fixture");
    drop(conn);
    let mut c = cmd(EXTRACT, d);
    c.args(["src.db", "--table", "t"]);
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let begin = &json_lines(&stdout(&out))[0];
    let schema: Vec<(String, String)> = begin["schema"]
        .as_object()
        .expect("schema")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("type").to_string()))
        .collect();
    let schema: Vec<(&str, &str)> = schema
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        schema,
        [
            ("id", "integer"),
            ("at", "text"),
            ("name", "text"),
            ("amount", "float"),
            ("note", "bytes"),
            ("n", "integer")
        ]
    );
    // A round trip through a new table keeps the column order.
    let out = bash(
        "etl-extract -q src.db --table t | etl-load -q dst.db --table t",
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let conn = rusqlite::Connection::open(d.join("dst.db")).expect("db");
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info('t') ORDER BY cid")
        .expect("pragma");
    let columns: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(columns, ["id", "at", "name", "amount", "note", "n"]);
}

/// A CSV file read while its writer appends: the reader reaches the end of
/// the file in the middle of a line (`1267`), the writer finishes the line
/// (`477`), and only then does the reader look again. The begin line comes
/// after the typing sample, which here is the whole file (both of its end
/// of file reads made); the sample's records are more than the pipe holds,
/// so the reader is held on its writes until the test, having appended,
/// reads them.
#[test]
fn a_csv_line_still_being_written_is_not_split_into_two_records() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::Stdio;

    let dir = tempdir();
    let d = dir.path();
    let mut text = String::from("n\n");
    // Numbers that are neither half of the line being written.
    for i in 1_000_000..1_400_000 {
        text.push_str(&format!("{i}\n"));
    }
    text.push_str("1267");
    write(d, "grow.csv", text.as_bytes());
    let mut child = cmd(EXTRACT, d)
        .args(["grow.csv", "--infer-rows", "500000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etl-extract starts");
    let mut out = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut begin = String::new();
    out.read_line(&mut begin).expect("begin line");
    assert!(begin.starts_with(r#"{"@etl":"begin""#), "{begin}");
    std::fs::OpenOptions::new()
        .append(true)
        .open(d.join("grow.csv"))
        .expect("open for append")
        .write_all(b"477\n")
        .expect("append");
    let mut rest = String::new();
    out.read_to_string(&mut rest).expect("stdout");
    let done = child.wait_with_output().expect("etl-extract ends");
    assert_eq!(code(&done), 1, "{}", stderr(&done));
    assert_eq!(
        stderr(&done),
        "etl-extract: error: cannot read grow.csv: the file grew while it was read and its \
         last line has no newline yet: the line is still being written (read the file again \
         when it is complete)\n"
    );
    // No end line: a load downstream commits nothing. And no half record.
    assert!(!rest.contains(r#""@etl":"end""#));
    assert!(!rest.contains(r#"{"n":477}"#));
}

/// A file whose last line has no newline, and that nobody is writing, is
/// whole: its last line is a record.
#[test]
fn a_last_line_without_a_newline_is_a_record_when_the_file_is_not_growing() {
    for (name, contents) in [
        ("t.csv", &b"n\n1\n1267"[..]),
        ("t.tsv", b"n\tm\n1\t2\n1267\t3"),
        ("t.ndjson", b"{\"n\":1}\n{\"n\":1267}"),
        ("t.json", b"[{\"n\":1},{\"n\":1267}]"),
    ] {
        let out = extract_bytes(name, contents, &[]);
        assert_eq!(code(&out), 0, "{name}: {}", stderr(&out));
        let got = records(&stdout(&out));
        assert_eq!(got.len(), 2, "{name}");
        assert_eq!(got[1]["n"], 1267, "{name}");
    }
}

/// A pretty-printed JSON array: each element is one line of the wire,
/// written compact, its numbers and strings byte for byte.
#[test]
fn a_pretty_printed_json_array_gives_one_line_per_record() {
    let dir = tempdir();
    let d = dir.path();
    write(
        d,
        "a.json",
        b"[\n  {\n    \"id\": 1,\n    \"doc\": {\n      \"big\": 12345678901234567890123,\n      \
          \"dec\": 2.50,\n      \"s\": \"a b\\n c\"\n    }\n  },\n  {\"id\": 2, \"doc\": [\r\n 1,\n\t2\n ]}\n]\n",
    );
    let out = run({
        let mut c = cmd(EXTRACT, d);
        c.args(["-q", "a.json"]);
        c
    });
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    stream_records(&text, 2);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[1],
        r#"{"id":1,"doc":{"big":12345678901234567890123,"dec":2.50,"s":"a b\n c"}}"#
    );
    assert_eq!(lines[2], r#"{"id":2,"doc":[1,2]}"#);
    let out = bash("etl-extract -q a.json | etl-load -q w.db --table t", d);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(count(&d.join("w.db"), "t"), Some(2));
}

/// SQLite: a JSON column's text (declared JSON, or JSON_TEXT as etlkit
/// creates it) goes on the wire as compact JSON; a TEXT column holding
/// newlines, or JSON-looking text, is a string with its newlines escaped.
#[test]
fn sqlite_json_text_with_newlines_stays_on_one_line() {
    let dir = tempdir();
    let d = dir.path();
    let conn = rusqlite::Connection::open(d.join("src.db")).expect("db");
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER, doc JSON, doc2 JSON_TEXT, note TEXT);
         INSERT INTO t VALUES
           (1, '{\n  \"a\": [1,\n    2.50],\n  \"big\": 12345678901234567890123\n}',
               '[\n 1,\n 2\n]', 'line 1\nline 2'),
           (2, NULL, '  \"x\"\n', '{\n \"not\": \"json column\"\n}');",
    )
    .expect("fixture");
    drop(conn);
    let out = run({
        let mut c = cmd(EXTRACT, d);
        c.args(["-q", "src.db", "--table", "t"]);
        c
    });
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let rows = stream_records(&text, 2);
    assert_eq!(
        text.lines().nth(1),
        Some(
            r#"{"id":1,"doc":{"a":[1,2.50],"big":12345678901234567890123},"doc2":[1,2],"note":"line 1\nline 2"}"#
        )
    );
    assert_eq!(rows[1]["doc2"], "x");
    assert_eq!(rows[1]["note"], "{\n \"not\": \"json column\"\n}");
    let out = bash(
        "etl-extract -q src.db --table t | etl-load -q dst.db --table t",
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(count(&d.join("dst.db"), "t"), Some(2));
}

/// A pseudo-file (/proc, /sys) says its size is 0 but holds lines: it is
/// read to its end like a stream, not taken for empty.
#[test]
fn a_pseudo_file_whose_size_says_empty_is_read_to_its_end() {
    let d = tempdir();
    let version = std::fs::read_to_string("/proc/version").expect("/proc/version");
    let mut c = cmd(EXTRACT, d.path());
    c.args(["--format", "tsv", "--no-header", "-q", "/proc/version"]);
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let got = records(&stdout(&out));
    assert_eq!(got.len(), version.lines().count(), "{}", stdout(&out));
}
