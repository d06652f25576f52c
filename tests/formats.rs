//! Every input format, plain and compressed, round-trips through SQLite.

use std::io::Write;
use std::path::Path;

use serde_json::Value;

use crate::common::*;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).expect("zstd")
}

/// Loads `file` into a fresh table and reads it back.
fn through_sqlite(dir: &Path, file: &str, table: &str) -> Vec<Value> {
    let out = bash(
        &format!("etl-extract -q {file} | etl-load -q rt.db --table {table}"),
        dir,
    );
    assert_eq!(code(&out), 0, "{file}: {}", stderr(&out));
    extract_records(dir, &["rt.db", "--table", table])
}

#[test]
fn every_format_round_trips_through_sqlite() {
    let dir = tempdir();
    let d = dir.path();
    let csv = std::fs::read(sample("orders.csv")).expect("read");
    write(d, "orders.csv", &csv);
    let expected = extract_records(d, &["orders.csv"]);
    assert_eq!(expected.len(), 12);

    let ndjson: String = expected.iter().map(|r| format!("{r}\n")).collect();
    let array = format!(
        "[\n{}\n]\n",
        expected
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(",\n")
    );
    // TSV has no quoting, so it carries the rows without tabs or line breaks.
    let tsv_text = "order_id\texternal_ref\tzip\tproduct\tunit_price\tshipped\n\
                    1001\t9007199254740993001\t00501\tWidget, \"large\"\t19.99\ttrue\n\
                    1005\t9007199254740993005\t94103\t東京 tea set\t89.00\t\n";
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("orders.csv", csv.clone()),
        ("orders.ndjson", ndjson.clone().into_bytes()),
        ("orders.json", array.clone().into_bytes()),
    ];
    let mut n = 0;
    for (name, bytes) in files {
        for (suffix, packed) in [
            ("", bytes.clone()),
            (".gz", gzip(&bytes)),
            (".zst", zstd(&bytes)),
        ] {
            let file = format!("v{n}-{name}{suffix}");
            write(d, &file, &packed);
            let direct = extract_records(d, &[&file]);
            assert_same_records(&direct, &expected, &format!("extract {file}"));
            let back = through_sqlite(d, &file, &format!("t{n}"));
            assert_same_records(&back, &expected, &format!("{file} through SQLite"));
            n += 1;
        }
    }

    for (suffix, packed) in [
        ("", tsv_text.as_bytes().to_vec()),
        (".gz", gzip(tsv_text.as_bytes())),
        (".zst", zstd(tsv_text.as_bytes())),
    ] {
        let file = format!("orders.tsv{suffix}");
        write(d, &file, &packed);
        let direct = extract_records(d, &[&file]);
        assert_eq!(direct.len(), 2);
        assert_eq!(direct[0]["zip"], "00501");
        assert_eq!(direct[0]["product"], "Widget, \"large\"");
        assert_eq!(direct[0]["external_ref"].to_string(), "9007199254740993001");
        let back = through_sqlite(d, &file, &format!("t{n}"));
        assert_same_records(&back, &direct, &format!("{file} through SQLite"));
        n += 1;
    }
}

#[test]
fn parquet_round_trips_every_type() {
    let dir = tempdir();
    let d = dir.path();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/orders.parquet");
    std::fs::copy(&fixture, d.join("orders.parquet")).expect("copy fixture");
    let direct = extract_records(d, &["orders.parquet"]);
    assert_eq!(direct.len(), 3);
    let first = &direct[0];
    assert_eq!(first["external_ref"].to_string(), "9007199254740993001");
    assert_eq!(first["zip"], "00501");
    assert_eq!(
        first["note"],
        "Gift wrap, please.\nCard: \"Happy birthday!\""
    );
    assert_eq!(first["amount"].to_string(), "39.98");
    assert_eq!(first["order_date"], "2026-11-01");
    assert_eq!(first["ordered_at"], "2026-11-01T09:15:00+00:00");
    assert_eq!(first["tags"], serde_json::json!(["gift", "large"]));
    assert_eq!(
        first["address"],
        serde_json::json!({"city": "Holtsville", "line": 1})
    );
    assert_eq!(direct[1]["ordered_at"], "2026-11-01T10:02:31.5+00:00");
    assert_eq!(direct[2]["note"], "", "an empty string is not null");
    assert_eq!(direct[2]["amount"], Value::Null);

    let back = through_sqlite(d, "orders.parquet", "pq");
    assert_same_records(&back, &direct, "parquet through SQLite");
}

/// Copies a committed Parquet fixture (see tests/fixtures/make_parquet_edges.py)
/// into `dir`.
fn parquet_fixture(dir: &Path, name: &str) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::copy(&fixture, dir.join(name)).expect("copy fixture");
}

#[test]
fn parquet_timestamps_of_every_unit_keep_every_digit() {
    let dir = tempdir();
    let d = dir.path();
    parquet_fixture(d, "times.parquet");
    let out = run({
        let mut c = cmd(EXTRACT, d);
        c.arg("times.parquet");
        c
    });
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines = json_lines(&stdout(&out));
    let schema = &lines[0]["schema"];
    // The wire's times keep microseconds: nanosecond columns stay text
    // with all nine digits; the others get their types.
    for column in ["ts_ns", "ts_ns_utc", "time_ns"] {
        assert_eq!(schema[column], "text", "{column}");
    }
    assert_eq!(schema["ts_us"], "timestamp");
    assert_eq!(schema["ts_ms_utc"], "timestamptz");
    let rows = records(&stdout(&out));
    let first = &rows[0];
    // pyarrow's default unit is nanoseconds.
    assert_eq!(first["ts_ns"], "2026-11-01T09:15:00.123456789");
    assert_eq!(first["ts_ns_utc"], "2026-11-01T09:15:00.123456789+00:00");
    assert_eq!(first["ts_ns_paris"], "2026-11-01T09:15:00.123456789+00:00");
    assert_eq!(first["ts_us"], "2026-11-01T09:15:00.123456");
    assert_eq!(first["ts_ms_utc"], "2026-11-01T09:15:00.123+00:00");
    assert_eq!(first["time_ns"], "09:15:00.123456789");
    assert_eq!(
        first["ts_list"],
        serde_json::json!([
            "2026-11-01T09:15:00.123456789+00:00",
            "1969-12-31T23:59:59.999999999+00:00"
        ])
    );
    assert_eq!(first["ts_struct"]["at"], "2026-11-01T09:15:00.123456789");
    assert_eq!(rows[1]["ts_ns"], "1969-12-31T23:59:59.999999999");
    assert_eq!(rows[1]["time_ns"], "00:00:00.000000001");
    assert_eq!(rows[2]["ts_ns"], Value::Null);

    let back = through_sqlite(d, "times.parquet", "t");
    assert_same_records(&back, &rows, "nanosecond timestamps through SQLite");
}

#[test]
fn parquet_int96_timestamps_keep_nanoseconds() {
    // Written by pyarrow with use_deprecated_int96_timestamps: the layout
    // of Spark, Hive and Impala. INT96 says nothing of a zone: no `Z`.
    let dir = tempdir();
    let d = dir.path();
    parquet_fixture(d, "int96.parquet");
    let rows = extract_records(d, &["int96.parquet"]);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["at"], "2026-11-01T09:15:00.123456789");
    assert_eq!(rows[0]["at_us"], "2026-11-01T09:15:00.123456");
    assert_eq!(
        rows[0]["at_list"],
        serde_json::json!([
            "2026-11-01T09:15:00.123456789",
            null,
            "1969-12-31T23:59:59.999999999"
        ])
    );
    assert_eq!(rows[0]["at_struct"]["at"], "1969-12-31T23:59:59.999999999");
    assert_eq!(rows[1]["at"], "1969-12-31T23:59:59.999999999");
    assert_eq!(rows[1]["at_us"], "1900-01-01T00:00:00");
    assert_eq!(rows[2]["at"], Value::Null);
    let back = through_sqlite(d, "int96.parquet", "t");
    assert_same_records(&back, &rows, "INT96 through SQLite");
}

#[test]
fn parquet_durations_are_exact_iso_8601_durations() {
    // Parquet has no duration type: Arrow's writers store an INT64 and name
    // the unit in the footer's Arrow schema.
    let dir = tempdir();
    let d = dir.path();
    parquet_fixture(d, "times.parquet");
    let out = run({
        let mut c = cmd(EXTRACT, d);
        c.arg("times.parquet");
        c
    });
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let schema = &json_lines(&stdout(&out))[0]["schema"];
    let rows = records(&stdout(&out));
    let column = |name: &str| -> Vec<Value> { rows.iter().map(|r| r[name].clone()).collect() };
    for name in ["dur_ns", "dur_us", "dur_ms", "dur_s"] {
        assert_eq!(schema[name], "text", "{name}");
    }
    assert_eq!(
        column("dur_ns"),
        [
            Value::from("PT1.500000001S"),
            Value::from("PT-0.000000001S"),
            Value::Null
        ]
    );
    assert_eq!(
        column("dur_us"),
        [
            Value::from("PT90061.000001S"),
            Value::from("PT0S"),
            Value::Null
        ]
    );
    assert_eq!(
        column("dur_ms"),
        [Value::from("PT-1.5S"), Value::from("PT86400S"), Value::Null]
    );
    assert_eq!(
        column("dur_s"),
        [Value::from("PT3600S"), Value::from("PT-59S"), Value::Null]
    );
    assert_eq!(rows[1]["ts_struct"]["took"], "PT-0.000000001S");
}

#[test]
fn parquet_uint64_beyond_i64_loads_exactly() {
    let dir = tempdir();
    let d = dir.path();
    parquet_fixture(d, "times.parquet");
    let out = run({
        let mut c = cmd(EXTRACT, d);
        c.arg("times.parquet");
        c
    });
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let schema = &json_lines(&stdout(&out))[0]["schema"];
    // The statistics show small_u64 fits a signed 64-bit integer; big_u64
    // does not, so it is declared text, its values strings of digits.
    assert_eq!(schema["big_u64"], "text");
    assert_eq!(schema["small_u64"], "integer");
    let rows = records(&stdout(&out));
    assert_eq!(rows[0]["big_u64"], "18446744073709551615");
    assert_eq!(rows[1]["big_u64"], "9223372036854775808");
    assert_eq!(rows[1]["small_u64"].to_string(), "9223372036854775807");

    let out = run({
        let mut c = cmd(LOAD, d);
        c.args(["u.db", "-t", "t", "times.parquet"]);
        c
    });
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let conn = rusqlite::Connection::open(d.join("u.db")).expect("open");
    let stored: Vec<(String, i64)> = conn
        .prepare("SELECT big_u64, small_u64 FROM t WHERE big_u64 IS NOT NULL ORDER BY rowid")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        stored,
        [
            ("18446744073709551615".to_string(), 0),
            ("9223372036854775808".to_string(), i64::MAX)
        ]
    );

    if let Some(pg) = PgSchema::new("parquet_u64") {
        let out = run({
            let mut c = cmd(LOAD, d);
            c.arg(&pg.url)
                .args(["--schema-name", &pg.name, "-t", "t", "times.parquet"]);
            c
        });
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(
            pg.rows(&format!(
                "SELECT big_u64, small_u64, dur_ns, ts_ns_utc FROM {}.t WHERE big_u64 IS NOT NULL ORDER BY length(big_u64) DESC",
                pg.name
            )),
            [
                "18446744073709551615|0|PT1.500000001S|2026-11-01T09:15:00.123456789+00:00",
                "9223372036854775808|9223372036854775807|PT-0.000000001S|1969-12-31T23:59:59.999999999+00:00"
            ]
        );
    }
}

#[test]
fn a_parquet_value_with_no_json_form_is_a_reject_naming_file_and_row() {
    // Rows 2, 4, 5, 6 and 8 hold an infinity or NaN (row 6 inside a list),
    // rows 3 and 7 text that is not UTF-8 (row 7 inside a list).
    let dir = tempdir();
    let d = dir.path();
    parquet_fixture(d, "bad_values.parquet");
    let out = run({
        let mut c = cmd(EXTRACT, d);
        c.arg("bad_values.parquet");
        c
    });
    assert_eq!(code(&out), 1);
    assert_eq!(
        stderr(&out).lines().next(),
        Some(
            "etl-extract: error: bad_values.parquet:2: column \"x\": non-finite number inf has no JSON form"
        )
    );
    assert!(!stdout(&out).contains("\"end\""), "{}", stdout(&out));

    let out = run({
        let mut c = cmd(EXTRACT, d);
        c.args(["bad_values.parquet", "--rejects", "r.ndjson"]);
        c
    });
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        !err.contains("Error {") && !err.contains("bytes: ["),
        "{err}"
    );
    let kept = records(&stdout(&out));
    assert_eq!(
        kept,
        [serde_json::json!({"id":1,"x":1.5,"y":1.0,"s":"ok","xs":[1.0],"names":[]})]
    );
    let rejects = json_lines(&std::fs::read_to_string(d.join("r.ndjson")).expect("rejects"));
    let got: Vec<(u64, &str)> = rejects
        .iter()
        .map(|r| {
            assert_eq!(r["input"], "bad_values.parquet");
            (
                r["line"].as_u64().expect("line"),
                r["reason"].as_str().expect("reason"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (2, "column \"x\": non-finite number inf has no JSON form"),
            (3, "column \"s\": text that is not valid UTF-8 (at byte 4)"),
            (4, "column \"x\": non-finite number NaN has no JSON form"),
            (5, "column \"y\": non-finite number inf has no JSON form"),
            (6, "column \"xs\": non-finite number -inf has no JSON form"),
            (
                7,
                "column \"names\": text that is not valid UTF-8 (at byte 1)"
            ),
            (8, "column \"x\": non-finite number -inf has no JSON form"),
        ]
    );
    // The rejected row is shown whole, the bad value as a string.
    assert_eq!(rejects[1]["record"]["s"], "\\x636166e9");
    assert_eq!(rejects[1]["record"]["id"], 3);

    let out = run({
        let mut c = cmd(EXTRACT, d);
        c.args([
            "bad_values.parquet",
            "--rejects",
            "r.ndjson",
            "--max-rejects",
            "2",
        ]);
        c
    });
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).starts_with(
            "etl-extract: error: more than 2 rows rejected (--max-rejects 2); the last one: \
             bad_values.parquet:4: column \"x\": non-finite number NaN has no JSON form"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_oneoff_load_of_parquet_rejects_values_with_no_json_form_by_row() {
    let dir = tempdir();
    let d = dir.path();
    parquet_fixture(d, "bad_values.parquet");
    let load = |args: &[&str]| {
        let mut c = cmd(LOAD, d);
        c.args(["w.db", "-t", "t", "bad_values.parquet"]).args(args);
        run(c)
    };
    let out = load(&[]);
    assert_eq!(code(&out), 1);
    assert_eq!(
        stderr(&out).lines().next(),
        Some(
            "etl-load: error: nothing was loaded into w.db (table \"t\" is as it was): \
             bad_values.parquet:2: column \"x\": non-finite number inf has no JSON form"
        )
    );
    let out = load(&["--rejects", "r.ndjson"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(count(&d.join("w.db"), "t"), Some(1));
    let rejects = json_lines(&std::fs::read_to_string(d.join("r.ndjson")).expect("rejects"));
    assert_eq!(rejects.len(), 7);
    assert_eq!(rejects[1]["line"], 3);
    assert_eq!(
        rejects[1]["reason"],
        "column \"s\": text that is not valid UTF-8 (at byte 4)"
    );
}

#[test]
fn parquet_json_nested_128_levels_or_deeper_comes_back_as_json() {
    let dir = tempdir();
    let d = dir.path();
    // A foreign file (pyarrow's JSON type): 200 nested arrays, 130 nested
    // objects, a spaced-out value, text that is not JSON, a null.
    parquet_fixture(d, "deep_json.parquet");
    let out = run({
        let mut c = cmd(EXTRACT, d);
        c.args(["deep_json.parquet", "--rejects", "r.ndjson"]);
        c
    });
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let deep_array = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let deep_object = format!("{}null{}", "{\"a\":".repeat(130), "}".repeat(130));
    assert_eq!(lines[1], format!("{{\"id\":1,\"doc\":{deep_array}}}"));
    assert_eq!(lines[2], format!("{{\"id\":2,\"doc\":{deep_object}}}"));
    assert_eq!(lines[3], r#"{"id":3,"doc":{"n":[1.50,2],"s":"x"}}"#);
    assert_eq!(lines[4], r#"{"id":5,"doc":null}"#);
    let rejects = json_lines(&std::fs::read_to_string(d.join("r.ndjson")).expect("rejects"));
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0]["line"], 4);
    assert_eq!(
        rejects[0]["reason"],
        "column \"doc\": invalid JSON: EOF while parsing a value at line 1 column 5"
    );

    // etlkit's own Parquet writer keeps such values too.
    let input: String = (0..3)
        .map(|i| {
            let n = 127 + i * 100;
            format!(
                "{{\"id\":{i},\"doc\":{}1{}}}\n",
                "[".repeat(n),
                "]".repeat(n)
            )
        })
        .collect();
    write(d, "deep.ndjson", input.as_bytes());
    let out = run({
        let mut c = cmd(LOAD, d);
        c.args(["deep.parquet", "deep.ndjson"]);
        c
    });
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = run({
        let mut c = cmd(EXTRACT, d);
        c.args(["-q", "deep.parquet"]);
        c
    });
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let back: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("{\"@etl\""))
        .collect();
    assert_eq!(back, input.lines().collect::<Vec<_>>());
}

#[test]
fn parquet_needs_a_file() {
    let dir = tempdir();
    let mut c = cmd(EXTRACT, dir.path());
    c.args(["--format", "parquet", "-"]);
    let out = run_with_input(c, b"PAR1");
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("Parquet is read from a file, not stdin"));
}

#[test]
fn several_inputs_and_globs_make_one_stream() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "a-1.csv", b"id,name\n1,x\n2,y\n");
    write(d, "a-2.csv.gz", &gzip(b"id,name\n3,z\n"));
    write(d, "b.csv", b"id,other\n4,w\n");
    let out = {
        let mut c = cmd(EXTRACT, d);
        c.args(["a-*"]);
        run(c)
    };
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines = json_lines(&stdout(&out));
    assert_eq!(lines.len(), 5, "one begin, three records, one end");
    assert_eq!(lines[0]["stream"], "a-1");
    assert_eq!(lines[3], serde_json::json!({"id": 3, "name": "z"}));
    assert_eq!(lines[4]["rows"], 3);

    let mut c = cmd(EXTRACT, d);
    c.args(["a-1.csv", "b.csv"]);
    let out = run(c);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("b.csv:1: header differs from the stream's first file"),
        "{}",
        stderr(&out)
    );
    assert!(!stdout(&out).contains("\"end\""));

    let mut c = cmd(EXTRACT, d);
    c.args(["nothing-*.csv"]);
    let out = run(c);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("no file matches \"nothing-*.csv\""));
}

#[test]
fn json_array_structure_errors_name_the_line() {
    let dir = tempdir();
    write(
        dir.path(),
        "bad.json",
        b"[\n{\"a\":1},\n{\"a\":2}\n{\"a\":3}\n]\n",
    );
    let mut c = cmd(EXTRACT, dir.path());
    c.arg("bad.json");
    let out = run(c);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("bad.json:4: expected , or ] between elements"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn schema_file_pins_types() {
    let dir = tempdir();
    write(dir.path(), "t.csv", b"code,qty\n1,2\n");
    write(dir.path(), "schema.json", br#"{"code":"text"}"#);
    let recs = extract_records(dir.path(), &["t.csv", "--schema", "schema.json"]);
    assert_eq!(recs, [serde_json::json!({"code": "1", "qty": 2})]);
    write(dir.path(), "bad.json", br#"{"code":"varchar"}"#);
    let mut c = cmd(EXTRACT, dir.path());
    c.args(["t.csv", "--schema", "bad.json"]);
    let out = run(c);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("column \"code\" has type \"varchar\""));
}

#[test]
fn extract_rejects_go_to_a_file_and_the_run_goes_on() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "r.csv", b"id,name\n1,a\n2\n3,\"c\"x\n4,\xff\n5,e\n");
    let mut c = cmd(EXTRACT, d);
    c.args(["r.csv", "--rejects", "rej.ndjson"]);
    let out = run(c);
    assert_eq!(code(&out), 3, "finished with rejects: {}", stderr(&out));
    let recs = records(&stdout(&out));
    assert_eq!(recs.len(), 2);
    assert_eq!(json_lines(&stdout(&out)).last().expect("end")["rows"], 2);
    assert!(
        stderr(&out).contains("5 rows read, 2 written, 3 rejected"),
        "{}",
        stderr(&out)
    );
    let rejected = json_lines(&std::fs::read_to_string(d.join("rej.ndjson")).expect("rejects"));
    assert_eq!(rejected.len(), 3);
    assert_eq!(
        rejected[0],
        serde_json::json!({"input":"r.csv","line":3,"reason":"expected 2 fields (as in the first line), found 1","raw":"2"})
    );
    assert_eq!(rejected[1]["line"], 4);
    assert_eq!(rejected[2]["reason"], "invalid UTF-8 in field 2 at byte 0");

    let mut c = cmd(EXTRACT, d);
    c.args(["r.csv", "--rejects", "rej.ndjson", "--max-rejects", "2"]);
    let out = run(c);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("more than 2 rows rejected (--max-rejects 2)"),
        "{}",
        stderr(&out)
    );
    assert!(
        !stdout(&out).contains("\"end\""),
        "past the limit there is no end line"
    );
}

#[test]
fn watch_reads_lone_cr_csv_from_stdin_and_refuses_it_in_a_file() {
    let dir = tempdir();
    let d = dir.path();
    let mut c = cmd(WATCH, d);
    c.args(["--format", "csv"]);
    let out = run_with_input(c, b"a,b\r1,2\r3,4\n5,6\r");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        records(&stdout(&out)),
        [
            serde_json::json!({"a":"1","b":"2"}),
            serde_json::json!({"a":"3","b":"4"}),
            serde_json::json!({"a":"5","b":"6"})
        ]
    );
    // A file is read from its first LF on: a header ended by a lone CR
    // would take the rows after it along, so the file is refused instead.
    write(d, "mac.csv", b"a,b\r1,2\r3,4\n");
    let mut c = cmd(WATCH, d);
    c.args([
        "--once",
        "mac.csv",
        "--format",
        "csv",
        "--checkpoint",
        "ck.json",
    ]);
    let out = run(c);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("mac.csv:1: the header line ends with a lone CR"),
        "{}",
        stderr(&out)
    );
    assert_eq!(records(&stdout(&out)), Vec::<Value>::new());
}
