//! One-off loads: `etl-load TARGET -t T FILE` reads what etl-extract reads,
//! with extract's code, and gives what the two-stage pipe gives.

use std::path::{Path, PathBuf};

use crate::common::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The table as `.dump TABLE` would show it: its definition and its rows.
fn table_dump(db: &Path, table: &str) -> (String, Vec<String>) {
    let conn = rusqlite::Connection::open(db).expect("db opens");
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )
        .expect("table exists");
    (sql, dump(db, table))
}

/// Loads `input` in one command and through the pipe; both tables must
/// be the same, definition and rows.
fn same_as_the_pipe(dir: &Path, input: &Path) -> (String, Vec<String>) {
    let one = dir.join("one.db");
    let piped = dir.join("piped.db");
    let _ = std::fs::remove_file(&one);
    let _ = std::fs::remove_file(&piped);
    let mut c = cmd(LOAD, dir);
    c.arg(&one).args(["-t", "orders"]).arg(input);
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let script = format!(
        "etl-extract -q '{}' | etl-load -q '{}' -t orders",
        input.display(),
        piped.display()
    );
    let out = bash(&script, dir);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let a = table_dump(&one, "orders");
    assert_eq!(a, table_dump(&piped, "orders"), "{}", input.display());
    a
}

#[test]
fn csv_gz_json_parquet_and_ndjson_load_as_the_pipe_does() {
    let dir = tempdir();
    let (sql, rows) = same_as_the_pipe(dir.path(), &sample("orders.csv"));
    assert_eq!(rows.len(), 12);
    assert!(sql.contains("\"zip\" TEXT"), "{sql}");
    assert!(rows[0].contains("Text(\"00501\")"), "{}", rows[0]);

    let out = bash(
        &format!(
            "gzip -c '{}' > orders.csv.gz",
            sample("orders.csv").display()
        ),
        dir.path(),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let gz = same_as_the_pipe(dir.path(), &dir.path().join("orders.csv.gz"));
    assert_eq!(gz, (sql, rows.clone()));

    let records = extract_records(dir.path(), &[sample("orders.csv").to_str().unwrap()]);
    let array = serde_json::to_vec(&records).unwrap();
    let json = write(dir.path(), "orders.json", &array);
    assert_eq!(same_as_the_pipe(dir.path(), &json).1.len(), 12);

    let parquet = same_as_the_pipe(dir.path(), &fixture("orders.parquet"));
    assert_eq!(parquet.1.len(), 3);

    let events = same_as_the_pipe(dir.path(), &sample("events.ndjson"));
    assert!(!events.1.is_empty());
}

#[test]
fn summary_counts_the_file_rows() {
    let dir = tempdir();
    let mut c = cmd(LOAD, dir.path());
    c.arg("w.db")
        .args(["-t", "orders"])
        .arg(sample("orders.csv"));
    let out = run(c);
    assert_eq!(code(&out), 0);
    assert!(
        stderr(&out).starts_with("etl-load: 12 rows read, 12 written, 0 rejected in "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_cut_or_malformed_file_commits_nothing() {
    let dir = tempdir();
    let db = dir.path().join("w.db");
    let good = write(dir.path(), "good.csv", b"id,name\n1,a\n2,b\n");
    let mut c = cmd(LOAD, dir.path());
    c.arg(&db).args(["-t", "t"]).arg(&good);
    assert_eq!(code(&run(c)), 0);

    // A quote never closed: the file was cut mid-row.
    let cut = write(dir.path(), "cut.csv", b"id,name\n3,c\n4,\"d");
    // A gzip file cut short.
    let whole = bash(
        "printf 'id,name\\n' > big.csv; seq 5 20000 | sed 's/$/,x/' >> big.csv; gzip -c big.csv | head -c 20000 > cut.csv.gz",
        dir.path(),
    );
    assert_eq!(code(&whole), 0, "{}", stderr(&whole));
    for input in [cut, dir.path().join("cut.csv.gz")] {
        for mode in ["append", "replace"] {
            let mut c = cmd(LOAD, dir.path());
            c.arg("w.db").args(["-t", "t", "--mode", mode]).arg(&input);
            let out = run(c);
            assert_eq!(code(&out), 1, "{}", stderr(&out));
            assert!(
                stderr(&out).starts_with(
                    "etl-load: error: nothing was loaded into w.db (table \"t\" is as it was): "
                ),
                "{}",
                stderr(&out)
            );
            assert_eq!(count(&db, "t"), Some(2), "{} {mode}", input.display());
        }
    }
}

#[test]
fn replace_never_empties_on_an_empty_file() {
    let dir = tempdir();
    let db = dir.path().join("w.db");
    let good = write(dir.path(), "good.csv", b"id,name\n1,a\n2,b\n");
    let mut c = cmd(LOAD, dir.path());
    c.arg(&db).args(["-t", "t"]).arg(&good);
    assert_eq!(code(&run(c)), 0);
    for (name, says) in [
        ("empty.csv", "empty.csv: empty input: no header line"),
        (
            "empty.ndjson",
            "empty.ndjson: input has no lines at all; refusing to replace table \"t\" with nothing",
        ),
    ] {
        let empty = write(dir.path(), name, b"");
        let mut c = cmd(LOAD, dir.path());
        c.arg(&db)
            .args(["-t", "t", "--mode", "replace"])
            .arg(&empty);
        let out = run(c);
        assert_eq!(code(&out), 1, "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
        assert_eq!(count(&db, "t"), Some(2));
    }
}

#[test]
fn both_stages_reject_into_one_file_and_one_budget() {
    let dir = tempdir();
    let db = dir.path().join("w.db");
    let first = write(dir.path(), "first.csv", b"id,qty\n1,5\n");
    let mut c = cmd(LOAD, dir.path());
    c.arg(&db).args(["-t", "t"]).arg(&first);
    assert_eq!(code(&run(c)), 0);
    // Line 3 is malformed CSV (extract rejects it); line 4 does not fit
    // the INTEGER column (load rejects it).
    let input = write(dir.path(), "more.csv", b"id,qty\n2,6\n3,7,extra\n4,n/a\n");
    let mut c = cmd(LOAD, dir.path());
    c.arg(&db)
        .args(["-t", "t", "--rejects", "rejects.ndjson"])
        .arg(&input);
    let out = run(c);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("etl-load: 3 rows read, 1 written, 2 rejected in "),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&db, "t"), Some(2));
    let rejects = json_lines(&std::fs::read_to_string(dir.path().join("rejects.ndjson")).unwrap());
    assert_eq!(rejects.len(), 2, "{rejects:?}");
    // Both name the file's line; the load's also names the line of the
    // NDJSON stream between the halves, as a second coordinate.
    let mut places: Vec<(String, u64)> = rejects
        .iter()
        .map(|r| {
            let input = r["input"].as_str().unwrap();
            let input = input.rsplit_once('/').map_or(input, |(_, tail)| tail);
            (input.to_string(), r["line"].as_u64().unwrap())
        })
        .collect();
    places.sort();
    assert_eq!(
        places,
        [("more.csv".to_string(), 3), ("more.csv".to_string(), 4)]
    );
    let load_side = rejects.iter().find(|r| r["record"].is_object()).unwrap();
    assert_eq!(
        load_side["record"],
        serde_json::json!({"id": 4, "qty": "n/a"})
    );
    assert_eq!(load_side["ndjson_line"], 3);

    // --max-rejects counts both stages together.
    let mut c = cmd(LOAD, dir.path());
    c.arg(&db)
        .args([
            "-t",
            "t",
            "--rejects",
            "rejects.ndjson",
            "--max-rejects",
            "1",
        ])
        .arg(&input);
    let out = run(c);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("more than 1 rows rejected"),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&db, "t"), Some(2));
}

#[test]
fn csv_options_apply_and_are_refused_for_ndjson() {
    let dir = tempdir();
    let db = dir.path().join("w.db");
    let input = write(dir.path(), "data.txt", b"00501;x\n00502;y\n");
    let types = write(dir.path(), "types.json", br#"{"column_2":"text"}"#);
    let numbers = write(dir.path(), "numbers.txt", b"501;7\n502;8\n");
    let mut c = cmd(LOAD, dir.path());
    c.arg(&db)
        .args([
            "-t",
            "t",
            "--input-format",
            "csv",
            "--delimiter",
            ";",
            "--no-header",
        ])
        .arg(&input);
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        dump(&db, "t"),
        ["Text(\"00501\")|Text(\"x\")", "Text(\"00502\")|Text(\"y\")"]
    );
    let mut c = cmd(LOAD, dir.path());
    c.arg(&db)
        .args(["-t", "u", "--input-format", "csv", "-d", ";", "--no-header"])
        .arg("--column-types")
        .arg(&types)
        .arg(&numbers);
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        dump(&db, "u"),
        ["Integer(501)|Text(\"7\")", "Integer(502)|Text(\"8\")"]
    );

    let mut c = cmd(LOAD, dir.path());
    c.arg(&db).args(["-t", "t", "--no-header"]);
    let out = run_with_input(c, b"{\"a\":1}\n");
    assert_eq!(code(&out), 2);
    assert_eq!(
        stderr(&out),
        "etl-load: error: --delimiter, --no-header, --all-text and --column-types apply to CSV/TSV input\n\
         hint: name a .csv/.tsv INPUT or pass --input-format csv\n"
    );
}

#[test]
fn csv_on_stdin_says_how_to_read_it() {
    let dir = tempdir();
    let mut c = cmd(LOAD, dir.path());
    c.args(["w.db", "-t", "t"]);
    let out = run_with_input(c, b"id,name\n1,a\n");
    assert_eq!(code(&out), 1);
    assert_eq!(
        stderr(&out),
        "etl-load: error: nothing was loaded into w.db (table \"t\" is as it was): stdin:1: expected a JSON object\n\
         hint: this looks like CSV; pass --input-format csv\n"
    );
    let mut c = cmd(LOAD, dir.path());
    c.args(["w.db", "-t", "t", "--input-format", "csv"]);
    let out = run_with_input(c, b"id,name\n1,a\n");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(count(&dir.path().join("w.db"), "t"), Some(1));
}

#[test]
fn several_files_and_globs_are_one_stream_as_in_the_pipe() {
    let dir = tempdir();
    write(dir.path(), "a.csv", b"id,name\n1,a\n2,b\n");
    write(dir.path(), "b.csv", b"id,name\n3,c\n");
    for args in [&["a.csv", "b.csv"][..], &["*.csv"][..]] {
        let _ = std::fs::remove_file(dir.path().join("one.db"));
        let _ = std::fs::remove_file(dir.path().join("piped.db"));
        let mut c = cmd(LOAD, dir.path());
        c.args(["one.db", "-t", "t"]).args(args);
        let out = run(c);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let out = bash(
            &format!(
                "etl-extract -q {} | etl-load -q piped.db -t t",
                args.join(" ")
            ),
            dir.path(),
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let one = table_dump(&dir.path().join("one.db"), "t");
        assert_eq!(one.1.len(), 3);
        assert_eq!(one, table_dump(&dir.path().join("piped.db"), "t"));
    }
}

#[test]
fn a_row_the_table_refuses_is_named_by_its_line_in_the_csv_file() {
    let dir = tempdir();
    let db = dir.path().join("w.db");
    let first = write(dir.path(), "first.csv", b"id,qty\n1,5\n");
    let mut c = cmd(LOAD, dir.path());
    c.arg(&db).args(["-t", "t"]).arg(&first);
    assert_eq!(code(&run(c)), 0);
    // Line 2 opens a quoted field that runs to line 4; line 5 is malformed
    // (the extract rejects it); line 6 does not fit the INTEGER column.
    // The second file's line 3 does not fit either.
    let a = write(
        dir.path(),
        "a.csv",
        b"id,qty,note\n2,6,\"x\n\ny\"\n8,9,extra,more\n4,n/a,z\n5,8,w\n",
    );
    let b = write(dir.path(), "b.csv", b"id,qty,note\n6,1,a\n7,x,b\n");
    // Without --rejects the first refused row fails the run, named by its
    // file and line.
    let mut c = cmd(LOAD, dir.path());
    c.arg(&db).args(["-t", "t"]).arg(&b);
    let out = run(c);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains(&format!(
            ": {}:3 (NDJSON line 3): column \"qty\": ",
            b.display()
        )),
        "{message}"
    );
    assert!(!message.contains("as NDJSON:"), "{message}");
    // With --rejects, each names its own file and line.
    let mut c = cmd(LOAD, dir.path());
    c.arg(&db)
        .args(["-t", "t", "--rejects", "rejects.ndjson"])
        .arg(&a)
        .arg(&b);
    let out = run(c);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let rejects = json_lines(&std::fs::read_to_string(dir.path().join("rejects.ndjson")).unwrap());
    let mut places: Vec<(String, u64, Option<u64>)> = rejects
        .iter()
        .map(|r| {
            let input = r["input"].as_str().unwrap();
            let input = input.rsplit_once('/').map_or(input, |(_, tail)| tail);
            (
                input.to_string(),
                r["line"].as_u64().unwrap(),
                r["ndjson_line"].as_u64(),
            )
        })
        .collect();
    places.sort();
    assert_eq!(
        places,
        [
            ("a.csv".to_string(), 5, None),
            ("a.csv".to_string(), 6, Some(3)),
            ("b.csv".to_string(), 3, Some(6)),
        ]
    );
    assert_eq!(count(&db, "t"), Some(4));
}
