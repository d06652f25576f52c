//! etl-load modes and guarantees: upsert idempotence, deletes, schema
//! policy, rejects, concurrent readers and writers, and SIGKILL.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn load(dir: &Path, args: &[&str], input: &str) -> std::process::Output {
    let mut c = cmd(LOAD, dir);
    c.arg("w.db").args(["--table", "t"]).args(args);
    run_with_input(c, input.as_bytes())
}

fn schema_sql(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("open");
    let mut stmt = conn
        .prepare(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL \
             AND name NOT LIKE '\\_etl\\_%' ESCAPE '\\' ORDER BY name",
        )
        .expect("schema");
    stmt.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[test]
fn upsert_twice_is_byte_for_byte_upsert_once() {
    let dir = tempdir();
    let d = dir.path();
    let input = "{\"id\":1,\"v\":\"a\"}\n{\"id\":2,\"v\":\"b\"}\n{\"id\":1,\"v\":\"a2\"}\n";
    let args = ["--mode", "upsert", "--key", "id"];
    assert_eq!(code(&load(d, &args, input)), 0);
    let once = dump(&d.join("w.db"), "t");
    let once_schema = schema_sql(&d.join("w.db"));
    assert_eq!(
        once,
        ["Integer(1)|Text(\"a2\")", "Integer(2)|Text(\"b\")"],
        "last record for a key wins"
    );
    let out = load(d, &args, input);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(dump(&d.join("w.db"), "t"), once);
    assert_eq!(
        schema_sql(&d.join("w.db")),
        once_schema,
        "no second index or column either"
    );
}

#[test]
fn composite_keys_and_delete_when() {
    let dir = tempdir();
    let d = dir.path();
    let args = [
        "--mode",
        "upsert",
        "--key",
        "a,b",
        "--delete-when",
        "deleted",
    ];
    let first = "{\"a\":1,\"b\":\"x\",\"v\":1,\"deleted\":false}\n{\"a\":1,\"b\":\"y\",\"v\":2,\"deleted\":false}\n";
    assert_eq!(code(&load(d, &args, first)), 0);
    let second = "{\"a\":1,\"b\":\"x\",\"v\":9,\"deleted\":true}\n{\"a\":1,\"b\":\"y\",\"v\":3,\"deleted\":false}\n";
    let out = load(d, &args, second);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        dump(&d.join("w.db"), "t"),
        ["Integer(1)|Text(\"y\")|Integer(3)|Integer(0)"]
    );
}

#[test]
fn upsert_rejects_null_keys_and_needs_a_key() {
    let dir = tempdir();
    let out = load(dir.path(), &["--mode", "upsert"], "{}\n");
    assert_eq!(code(&out), 2);
    assert_eq!(
        stderr(&out),
        "etl-load: error: --mode upsert needs --key COL[,COL...]\n"
    );
    let out = load(
        dir.path(),
        &["--mode", "upsert", "--key", "id"],
        "{\"id\":null}\n",
    );
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("stdin:1: key field \"id\" is null or missing"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn evolve_adds_columns_strict_rejects() {
    let dir = tempdir();
    let d = dir.path();
    assert_eq!(code(&load(d, &[], "{\"id\":1}\n")), 0);
    let drift = "{\"id\":2,\"extra\":\"x\"}\n{\"id\":3}\n";
    let out = load(d, &["--schema", "strict", "--rejects", "r.ndjson"], drift);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("2 rows read, 1 written, 1 rejected"),
        "{}",
        stderr(&out)
    );
    assert_eq!(dump(&d.join("w.db"), "t"), ["Integer(1)", "Integer(3)"]);
    let rejected = json_lines(&std::fs::read_to_string(d.join("r.ndjson")).expect("rejects"));
    assert_eq!(
        rejected,
        [serde_json::json!({"input":"stdin","line":1,
            "reason":"field \"extra\" is not a column of table \"t\" (--schema strict)",
            "record":{"id":2,"extra":"x"}})]
    );
    let out = load(d, &["--schema", "evolve"], drift);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(dump(&d.join("w.db"), "t").len(), 4);
}

#[test]
fn rejects_commit_the_rest_only_within_the_limit() {
    let dir = tempdir();
    let d = dir.path();
    assert_eq!(code(&load(d, &[], "{\"id\":1}\n")), 0);
    let input = "{\"id\":2}\n{\"id\":\"two\"}\n{\"id\":3.5}\nnot json\n{\"id\":4}\n";
    let out = load(d, &["--rejects", "r.ndjson", "--max-rejects", "2"], input);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("more than 2 rows rejected"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        count(&d.join("w.db"), "t"),
        Some(1),
        "past the limit nothing commits"
    );
    let out = load(d, &["--rejects", "r.ndjson", "--max-rejects", "3"], input);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("5 rows read, 2 written, 3 rejected"),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&d.join("w.db"), "t"), Some(3));
    let rejected = json_lines(&std::fs::read_to_string(d.join("r.ndjson")).expect("rejects"));
    let lines: Vec<u64> = rejected
        .iter()
        .map(|r| r["line"].as_u64().expect("line"))
        .collect();
    assert_eq!(lines, [2, 3, 4]);
    assert_eq!(rejected[2]["raw"], "not json");
}

fn big_input(rows: usize, tag: &str) -> String {
    let mut s = String::from("{\"@etl\":\"begin\",\"stream\":\"s\"}\n");
    for i in 0..rows {
        s.push_str(&format!(
            "{{\"id\":{i},\"tag\":\"{tag}\",\"pad\":\"{}\"}}\n",
            "x".repeat(40)
        ));
    }
    s.push_str(&format!(
        "{{\"@etl\":\"end\",\"stream\":\"s\",\"rows\":{rows}}}\n"
    ));
    s
}

#[test]
fn replace_under_a_concurrent_reader_is_never_partial() {
    let dir = tempdir();
    let d = dir.path();
    let rows = 20_000;
    write(d, "a.ndjson", big_input(rows, "a").as_bytes());
    write(d, "b.ndjson", big_input(rows, "b").as_bytes());
    let mut c = cmd(LOAD, d);
    c.args(["w.db", "a.ndjson", "--table", "t", "-q"]);
    assert_eq!(code(&run(c)), 0);

    let db = d.join("w.db");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let db = db.clone();
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&db).expect("open");
            conn.busy_timeout(Duration::from_secs(10)).expect("timeout");
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r: rusqlite::Result<(i64, i64)> =
                    conn.query_row("SELECT count(*), count(DISTINCT tag) FROM t", [], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    });
                if let Ok(v) = r {
                    seen.push(v);
                }
            }
            seen
        })
    };
    for file in ["b.ndjson", "a.ndjson", "b.ndjson"] {
        let mut c = cmd(LOAD, d);
        c.args(["w.db", file, "--table", "t", "--mode", "replace", "-q"]);
        let out = run(c);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = reader.join().expect("reader");
    assert!(!seen.is_empty());
    for (n, tags) in seen {
        assert_eq!(
            (n, tags),
            (rows as i64, 1),
            "a reader saw a partial or mixed table"
        );
    }
}

#[test]
fn sigkill_at_any_point_leaves_the_previous_contents() {
    let dir = tempdir();
    let d = dir.path();
    let rows = 60_000;
    write(d, "a.ndjson", big_input(1000, "old").as_bytes());
    write(d, "b.ndjson", big_input(rows, "new").as_bytes());
    let mut c = cmd(LOAD, d);
    c.args(["w.db", "a.ndjson", "--table", "t", "-q"]);
    assert_eq!(code(&run(c)), 0);
    let before = dump(&d.join("w.db"), "t");
    let mut killed = 0;
    for (i, mode) in [
        "append", "replace", "append", "replace", "append", "replace",
    ]
    .iter()
    .enumerate()
    {
        let mut child = Command::new(LOAD)
            .args(["w.db", "b.ndjson", "--table", "t", "--mode", mode, "-q"])
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(10 + 25 * i as u64));
        let _ = child.kill();
        let status = child.wait().expect("wait");
        if status.code().is_none() {
            killed += 1;
            assert_eq!(
                dump(&d.join("w.db"), "t"),
                before,
                "{mode} killed after {:?}",
                started.elapsed()
            );
        }
    }
    assert!(
        killed > 0,
        "no run was killed mid-way; make the input bigger"
    );
}

#[test]
fn a_second_load_waits_for_the_first() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "b.ndjson", big_input(30_000, "b").as_bytes());
    let spawn = || {
        Command::new(LOAD)
            .args(["w.db", "b.ndjson", "--table", "t", "-q"])
            .current_dir(d)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let first = spawn();
    let second = spawn();
    let a = first.wait_with_output().expect("first");
    let b = second.wait_with_output().expect("second");
    assert_eq!(code(&a), 0, "{}", stderr(&a));
    assert_eq!(code(&b), 0, "{}", stderr(&b));
    assert_eq!(count(&d.join("w.db"), "t"), Some(60_000));
}

#[test]
fn lock_wait_runs_out_clearly() {
    let dir = tempdir();
    let d = dir.path();
    assert_eq!(code(&load(d, &[], "{\"id\":1}\n")), 0);
    let conn = rusqlite::Connection::open(d.join("w.db")).expect("open");
    conn.execute_batch("BEGIN IMMEDIATE")
        .expect("hold the write lock");
    let out = load(d, &["--wait", "1"], "{\"id\":2}\n");
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("cannot start a write transaction on w.db: database is locked"),
        "{}",
        stderr(&out)
    );
    conn.execute_batch("ROLLBACK").expect("release");
    assert_eq!(count(&d.join("w.db"), "t"), Some(1));
}

#[test]
fn failed_commit_leaves_rows_and_bookmark_unchanged() {
    let dir = tempdir();
    let d = dir.path();
    let first = "{\"@etl\":\"begin\",\"stream\":\"s\",\"from\":null}\n{\"id\":1}\n\
                 {\"@etl\":\"end\",\"stream\":\"s\",\"rows\":1,\"bookmark\":{\"cursor\":\"id\",\"value\":1,\"at_value\":[]}}\n";
    assert_eq!(code(&load(d, &[], first)), 0);
    // A trigger makes the second batch fail after its rows and bookmark were written.
    let conn = rusqlite::Connection::open(d.join("w.db")).expect("open");
    conn.execute_batch(
        "CREATE TRIGGER boom AFTER UPDATE ON _etl_state BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
    )
    .expect("trigger");
    drop(conn);
    let second = "{\"@etl\":\"begin\",\"stream\":\"s\",\"from\":{\"cursor\":\"id\",\"value\":1,\"at_value\":[]}}\n{\"id\":2}\n\
                  {\"@etl\":\"end\",\"stream\":\"s\",\"rows\":1,\"bookmark\":{\"cursor\":\"id\",\"value\":2,\"at_value\":[]}}\n";
    let out = load(d, &[], second);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("disk on fire"), "{}", stderr(&out));
    assert_eq!(dump(&d.join("w.db"), "t"), ["Integer(1)"]);
    let conn = rusqlite::Connection::open(d.join("w.db")).expect("open");
    let bookmark: String = conn
        .query_row(
            "SELECT bookmark FROM _etl_state WHERE stream = 's'",
            [],
            |r| r.get(0),
        )
        .expect("state");
    assert!(bookmark.contains("\"value\":1"), "{bookmark}");
}

#[test]
fn upsert_uses_an_existing_unique_key() {
    let dir = tempdir();
    let d = dir.path();
    let conn = rusqlite::Connection::open(d.join("w.db")).expect("open");
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        .expect("create");
    drop(conn);
    let out = load(
        d,
        &["--mode", "upsert", "--key", "id"],
        "{\"id\":1,\"v\":\"a\"}\n{\"id\":1,\"v\":\"b\"}\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(dump(&d.join("w.db"), "t"), ["Integer(1)|Text(\"b\")"]);
    assert_eq!(
        schema_sql(&d.join("w.db")),
        ["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"]
    );
}

#[test]
fn a_rejected_record_does_not_shift_the_next_ones_values() {
    let dir = tempdir();
    let d = dir.path();
    assert_eq!(code(&load(d, &[], "{\"a\":1,\"b\":2}\n")), 0);
    let input = "{\"a\":3,\"b\":4}\n{\"b\":5,\"x\":6}\n{\"a\":7,\"b\":8}\n";
    let out = load(d, &["--schema", "strict", "--rejects", "r.ndjson"], input);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(
        dump(&d.join("w.db"), "t"),
        [
            "Integer(1)|Integer(2)",
            "Integer(3)|Integer(4)",
            "Integer(7)|Integer(8)"
        ]
    );
}

#[test]
fn json_columns_keep_long_numbers_exact() {
    let dir = tempdir();
    let d = dir.path();
    let input = "{\"j\":[1]}\n{\"j\":12345678901234567890123}\n{\"j\":0.12345678901234567890}\n";
    assert_eq!(code(&load(d, &[], input)), 0);
    let back = extract_records(d, &["w.db", "--table", "t"]);
    assert_eq!(back[1]["j"].to_string(), "12345678901234567890123");
    assert_eq!(back[2]["j"].to_string(), "0.12345678901234567890");
}
