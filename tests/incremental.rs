//! Incremental runs: bookmarks move with the data, never past a failure.

use std::path::Path;

use serde_json::Value;

use crate::common::*;

const HEADER: &str = "id,name,updated_at\n";

fn rows(range: std::ops::Range<u32>, stamp: &str) -> String {
    range.map(|i| format!("{i},name {i},{stamp}\n")).collect()
}

/// One incremental job: extract past the bookmark, upsert into the target.
fn job(dir: &Path) -> std::process::Output {
    bash(
        "etl-extract src.csv --cursor updated_at --state wh.db \
         | etl-load wh.db --table t --mode upsert --key id",
        dir,
    )
}

fn emitted(out: &std::process::Output) -> String {
    stderr(out)
        .lines()
        .find(|l| l.starts_with("etl-extract:"))
        .unwrap_or_default()
        .to_string()
}

fn stored_bookmark(db: &Path, stream: &str) -> Value {
    let conn = rusqlite::Connection::open(db).expect("open");
    let text: String = conn
        .query_row(
            "SELECT bookmark FROM _etl_state WHERE stream = ?1",
            [stream],
            |r| r.get(0),
        )
        .expect("bookmark row");
    serde_json::from_str(&text).expect("json")
}

#[test]
fn first_run_everything_rerun_nothing_then_exactly_the_changes() {
    let dir = tempdir();
    let d = dir.path();
    let db = d.join("wh.db");
    let mut src = format!("{HEADER}{}", rows(1..6, "2026-11-01T10:00:00Z"));
    write(d, "src.csv", src.as_bytes());

    let out = job(d);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        emitted(&out).contains("5 rows read, 5 written"),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&db, "t"), Some(5));
    assert_eq!(stored_bookmark(&db, "src")["value"], "2026-11-01T10:00:00Z");

    let out = job(d);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        emitted(&out).contains("5 rows read, 0 written, 0 rejected, 5 skipped"),
        "{}",
        stderr(&out)
    );

    // New rows, one sharing the boundary timestamp, and an update to row 2.
    src.push_str(&rows(6..8, "2026-11-01T10:00:00Z"));
    src.push_str("8,name 8,2026-11-02T08:00:00Z\n");
    src = src.replace(
        "2,name 2,2026-11-01T10:00:00Z",
        "2,renamed,2026-11-02T09:00:00Z",
    );
    write(d, "src.csv", src.as_bytes());
    let out = job(d);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        emitted(&out).contains("8 rows read, 4 written"),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&db, "t"), Some(8), "no duplicates");
    let conn = rusqlite::Connection::open(&db).expect("open");
    let name: String = conn
        .query_row("SELECT name FROM t WHERE id = 2", [], |r| r.get(0))
        .expect("row 2");
    assert_eq!(name, "renamed");

    let out = job(d);
    assert!(emitted(&out).contains("0 written"), "{}", stderr(&out));
}

#[test]
fn failed_load_leaves_the_bookmark_and_the_rerun_sends_the_same_rows() {
    let dir = tempdir();
    let d = dir.path();
    let db = d.join("wh.db");
    write(
        d,
        "src.csv",
        format!("{HEADER}{}", rows(1..4, "2026-11-01")).as_bytes(),
    );
    assert_eq!(code(&job(d)), 0);
    let before = stored_bookmark(&db, "src");

    let more = format!(
        "{HEADER}{}{}",
        rows(1..4, "2026-11-01"),
        rows(4..7, "2026-11-02")
    );
    write(d, "src.csv", more.as_bytes());
    // The pipe is cut after two records: the load must commit nothing.
    let out = bash(
        "etl-extract src.csv --cursor updated_at --state wh.db | head -n 3 \
         | etl-load wh.db --table t --mode upsert --key id",
        d,
    );
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("upstream ended early after 2 rows"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stored_bookmark(&db, "src"), before);
    assert_eq!(count(&db, "t"), Some(3));

    let out = job(d);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        emitted(&out).contains("6 rows read, 3 written"),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&db, "t"), Some(6));
}

#[test]
fn a_stream_extracted_before_another_run_loaded_is_refused() {
    let dir = tempdir();
    let d = dir.path();
    let db = d.join("wh.db");
    write(
        d,
        "src.csv",
        format!("{HEADER}{}", rows(1..3, "2026-11-01")).as_bytes(),
    );
    assert_eq!(code(&job(d)), 0);
    let more = format!(
        "{HEADER}{}{}",
        rows(1..3, "2026-11-01"),
        rows(3..5, "2026-11-02")
    );
    write(d, "src.csv", more.as_bytes());
    // Run A extracts, then run B extracts and loads before A loads.
    let out = bash(
        "etl-extract -q src.csv --cursor updated_at --state wh.db > a.ndjson",
        d,
    );
    assert_eq!(code(&out), 0);
    assert_eq!(code(&job(d)), 0);
    let mut c = cmd(LOAD, d);
    c.args(["wh.db", "a.ndjson", "--table", "t", "--mode", "append"]);
    let out = run(c);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("another run loaded the stream meanwhile"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        count(&db, "t"),
        Some(4),
        "append would have duplicated rows 3 and 4"
    );
}

#[test]
fn backfill_window_does_not_move_the_bookmark_back() {
    let dir = tempdir();
    let d = dir.path();
    let db = d.join("wh.db");
    let src = format!(
        "{HEADER}{}{}{}",
        rows(1..3, "2026-11-01"),
        rows(3..5, "2026-11-02"),
        rows(5..7, "2026-11-03")
    );
    write(d, "src.csv", src.as_bytes());
    assert_eq!(code(&job(d)), 0);
    let bookmark = stored_bookmark(&db, "src");
    assert_eq!(bookmark["value"], "2026-11-03");
    let out = bash(
        "etl-extract src.csv --cursor updated_at --state wh.db --since 2026-11-02 --until 2026-11-03 \
         | etl-load wh.db --table t --mode upsert --key id",
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        emitted(&out).contains("6 rows read, 2 written"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stored_bookmark(&db, "src"), bookmark);
    assert_eq!(count(&db, "t"), Some(6));
}

#[test]
fn sqlite_source_pushes_the_window_into_the_query() {
    let dir = tempdir();
    let d = dir.path();
    write(
        d,
        "src.csv",
        format!("{HEADER}{}", rows(1..101, "2026-11-01")).as_bytes(),
    );
    let out = bash(
        "etl-extract -q src.csv | etl-load -q source.db --table s",
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let inc =
        "etl-extract source.db --table s --cursor id --state wh.db | etl-load wh.db --table copy";
    let out = bash(inc, d);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(count(&d.join("wh.db"), "copy"), Some(100));
    let out = bash(
        "sqlite3 source.db \"INSERT INTO s VALUES (101, 'late', '2026-11-02')\" 2>/dev/null || \
         etl-load -q source.db --table s <<< '{\"id\":101,\"name\":\"late\",\"updated_at\":\"2026-11-02\"}'",
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = bash(inc, d);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // Only the boundary row (id 100, pushed down as id >= 100) and the new one were read.
    assert!(
        emitted(&out).contains("2 rows read, 1 written, 0 rejected, 1 skipped"),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&d.join("wh.db"), "copy"), Some(101));
}

#[test]
fn null_cursor_is_a_reject_not_a_silent_skip() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "src.csv", b"id,updated_at\n1,2026-11-01\n2,\n");
    let mut c = cmd(EXTRACT, d);
    c.args(["src.csv", "--cursor", "updated_at"]);
    let out = run(c);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("src.csv:3: cursor column \"updated_at\" is null or missing"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn cron_style_script_twice_loads_no_duplicates() {
    let dir = tempdir();
    let d = dir.path();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/incremental-orders.sh");
    for _ in 0..2 {
        // cron runs with a nearly empty environment and another working directory.
        let out = std::process::Command::new("env")
            .arg("-i")
            .arg(format!("PATH={}:/usr/bin:/bin", bin_dir().display()))
            .arg(&script)
            .arg(d.join("wh.db"))
            .current_dir("/")
            .output()
            .expect("script runs");
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    assert_eq!(count(&d.join("wh.db"), "orders"), Some(12));
}

#[test]
fn a_coarse_cursor_shared_by_many_rows_loads_each_row_once() {
    let dir = tempdir();
    let d = dir.path();
    let db = d.join("wh.db");
    // 20000 rows on one day: the boundary value holds every row.
    write(
        d,
        "src.csv",
        format!("{HEADER}{}", rows(0..20_000, "2026-11-05")).as_bytes(),
    );
    let out = job(d);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(count(&db, "t"), Some(20_000));
    let bookmark = stored_bookmark(&db, "src");
    let packed = bookmark["at_value_packed"].as_str().expect("packed form");
    assert!(
        packed.len() <= 20_000 * 11,
        "bookmark takes {} bytes for 20000 boundary rows",
        packed.len()
    );

    // More rows arrive on the same day: exactly those are loaded.
    write(
        d,
        "src.csv",
        format!("{HEADER}{}", rows(0..25_000, "2026-11-05")).as_bytes(),
    );
    let out = job(d);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        emitted(&out).contains("25000 rows read, 5000 written"),
        "{}",
        stderr(&out)
    );
    let out = job(d);
    assert!(emitted(&out).contains(" 0 written"), "{}", stderr(&out));
    assert_eq!(count(&db, "t"), Some(25_000));
}
