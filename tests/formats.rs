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
    assert_eq!(first["ordered_at"], "2026-11-01T09:15:00Z");
    assert_eq!(first["tags"], serde_json::json!(["gift", "large"]));
    assert_eq!(
        first["address"],
        serde_json::json!({"city": "Holtsville", "line": 1})
    );
    assert_eq!(direct[1]["ordered_at"], "2026-11-01T10:02:31.5Z");
    assert_eq!(direct[2]["note"], "", "an empty string is not null");
    assert_eq!(direct[2]["amount"], Value::Null);

    let back = through_sqlite(d, "orders.parquet", "pq");
    assert_same_records(&back, &direct, "parquet through SQLite");
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
