//! etl-watch with real files: appends, partial lines, rotation,
//! copytruncate, new files, restarts, crashes between commit and
//! checkpoint: every source line lands exactly once.

use std::io::Write;
use std::path::Path;

use crate::common::*;

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(text.as_bytes()).expect("append");
}

fn watch_once(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut c = cmd(WATCH, dir);
    c.arg("--once").args(args);
    run(c)
}

fn lines_of(out: &std::process::Output) -> Vec<String> {
    lines_of_text(&stdout(out))
}

fn lines_of_text(text: &str) -> Vec<String> {
    records(text)
        .iter()
        .map(|r| r["line"].as_str().expect("line").to_string())
        .collect()
}

#[test]
fn appends_and_partial_lines_resume_from_the_checkpoint() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "app.log", b"one\ntwo\nthr");
    let out = watch_once(d, &["app.log", "--checkpoint", "ck.json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        lines_of(&out),
        ["one", "two"],
        "a half-written line is held"
    );
    append(&d.join("app.log"), "ee\nfour\n");
    let out = watch_once(d, &["app.log", "--checkpoint", "ck.json"]);
    assert_eq!(lines_of(&out), ["three", "four"]);
    let out = watch_once(d, &["app.log", "--checkpoint", "ck.json"]);
    assert_eq!(lines_of(&out), Vec::<String>::new(), "nothing repeated");
    let framed = json_lines(&stdout(&watch_once(d, &["app.log"])));
    assert_eq!(framed[0]["@etl"], "begin");
    assert!(framed[0]["batch"].is_string());
    assert_eq!(framed.last().expect("end")["rows"], 4);
}

#[test]
fn rotation_by_rename_loses_and_repeats_nothing() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "app.log", b"1\n2\n");
    assert_eq!(
        lines_of(&watch_once(d, &["app.log", "--checkpoint", "ck.json"])),
        ["1", "2"]
    );
    append(&d.join("app.log"), "3\n");
    std::fs::rename(d.join("app.log"), d.join("app.log.1")).expect("rotate");
    write(d, "app.log", b"4\n");
    let out = watch_once(d, &["app.log", "--checkpoint", "ck.json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(lines_of(&out), ["3", "4"]);
    assert_eq!(
        lines_of(&watch_once(d, &["app.log", "--checkpoint", "ck.json"])),
        Vec::<String>::new()
    );
}

#[test]
fn copytruncate_starts_the_file_over() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "app.log", b"old 1\nold 2\n");
    assert_eq!(
        lines_of(&watch_once(d, &["app.log", "--checkpoint", "ck.json"])).len(),
        2
    );
    std::fs::copy(d.join("app.log"), d.join("app.log.1")).expect("copy");
    std::fs::OpenOptions::new()
        .write(true)
        .open(d.join("app.log"))
        .expect("open")
        .set_len(0)
        .expect("truncate");
    append(&d.join("app.log"), "new 1\n");
    let out = watch_once(d, &["app.log", "--checkpoint", "ck.json"]);
    assert_eq!(lines_of(&out), ["new 1"], "{}", stderr(&out));
}

#[test]
fn new_files_in_a_watched_directory() {
    let dir = tempdir();
    let d = dir.path();
    std::fs::create_dir(d.join("inbox")).expect("mkdir");
    write(&d.join("inbox"), "a.ndjson", b"{\"n\":1}\n");
    let args = ["inbox", "--format", "ndjson", "--checkpoint", "ck.json"];
    let out = watch_once(d, &args);
    assert_eq!(records(&stdout(&out)), [serde_json::json!({"n":1})]);
    write(&d.join("inbox"), "b.ndjson", b"{\"n\":2}\n{\"n\":3}\n");
    let out = watch_once(d, &args);
    assert_eq!(
        records(&stdout(&out)),
        [serde_json::json!({"n":2}), serde_json::json!({"n":3})]
    );
}

#[test]
fn csv_records_may_span_writes() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "in.csv", b"id,note\n1,\"two\nlines");
    let args = ["in.csv", "--format", "csv", "--checkpoint", "ck.json"];
    assert_eq!(
        records(&stdout(&watch_once(d, &args))),
        Vec::<serde_json::Value>::new()
    );
    append(&d.join("in.csv"), "\"\n2,\n");
    let out = watch_once(d, &args);
    assert_eq!(
        records(&stdout(&out)),
        [
            serde_json::json!({"id":"1","note":"two\nlines"}),
            serde_json::json!({"id":"2","note":null})
        ]
    );
}

#[test]
fn batches_close_at_the_row_limit_and_stdin_works() {
    let dir = tempdir();
    let mut c = cmd(WATCH, dir.path());
    c.args(["--batch-rows", "2", "--format", "ndjson"]);
    let out = run_with_input(c, b"{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n{\"n\":5}");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines = json_lines(&stdout(&out));
    let ends = lines.iter().filter(|l| l["@etl"] == "end").count();
    assert_eq!(ends, 3);
    assert_eq!(records(&stdout(&out)).len(), 5);
}

fn table_lines(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("open");
    let mut stmt = conn
        .prepare("SELECT line FROM t ORDER BY offset")
        .expect("select");
    stmt.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[test]
fn crash_between_commit_and_checkpoint_repeats_nothing() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "app.log", b"1\n2\n3\n");
    // The load commits, then the watcher dies before it can move its checkpoint.
    let mut c = cmd(WATCH, d);
    c.args([
        "--once",
        "app.log",
        "--checkpoint",
        "ck.json",
        "--exec",
        "etl-load -q wh.db --table t && kill -9 $PPID",
    ]);
    let out = run(c);
    assert!(out.status.code().is_none(), "the watcher was killed");
    assert_eq!(table_lines(&d.join("wh.db")), ["1", "2", "3"]);
    append(&d.join("app.log"), "4\n");
    let mut c = cmd(WATCH, d);
    c.args([
        "--once",
        "app.log",
        "--checkpoint",
        "ck.json",
        "--exec",
        "etl-load -q wh.db --table t",
    ]);
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        table_lines(&d.join("wh.db")),
        ["1", "2", "3", "4"],
        "append mode, yet nothing repeated"
    );
}

#[test]
fn failed_exec_keeps_the_batch_for_the_next_run() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "app.log", b"1\n2\n");
    let mut c = cmd(WATCH, d);
    c.args([
        "--once",
        "app.log",
        "--checkpoint",
        "ck.json",
        "--max-retries",
        "0",
        "--exec",
        "exit 7",
    ]);
    let out = run(c);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("--exec failed"), "{}", stderr(&out));
    let mut c = cmd(WATCH, d);
    c.args([
        "--once",
        "app.log",
        "--checkpoint",
        "ck.json",
        "--exec",
        "etl-load -q wh.db --table t",
    ]);
    assert_eq!(code(&run(c)), 0);
    assert_eq!(table_lines(&d.join("wh.db")), ["1", "2"]);
}

#[test]
fn sigkill_at_random_points_loses_and_repeats_nothing() {
    let dir = tempdir();
    let d = dir.path();
    let exec = "etl-load -q wh.db --table t";
    let mut expected = Vec::new();
    let mut seed: u64 = std::env::var("ETLKIT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..6 {
        let mut text = String::new();
        for i in 0..200 {
            let line = format!("r{round}-{i}");
            text.push_str(&line);
            text.push('\n');
            expected.push(line);
        }
        append(&d.join("app.log"), &text);
        let mut child = std::process::Command::new(WATCH)
            .args([
                "app.log",
                "--checkpoint",
                "ck.json",
                "--batch-rows",
                "37",
                "--poll-interval",
                "20",
                "--exec",
                exec,
            ])
            .env("PATH", format!("{}:/usr/bin:/bin", bin_dir().display()))
            .current_dir(d)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(std::time::Duration::from_millis(20 + next() % 300));
        let _ = child.kill();
        let _ = child.wait();
    }
    // A killed watcher's --exec child forked but not yet exec'd holds the
    // checkpoint's lock a moment longer on a busy machine: the next run
    // refuses until it is gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let out = loop {
        let mut c = cmd(WATCH, d);
        c.args([
            "--once",
            "app.log",
            "--checkpoint",
            "ck.json",
            "--exec",
            exec,
        ]);
        let out = run(c);
        if stderr(&out).contains("its lock is held") && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(200));
            continue;
        }
        break out;
    };
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mut got = table_lines(&d.join("wh.db"));
    let mut want = expected.clone();
    got.sort();
    want.sort();
    assert_eq!(got.len(), want.len(), "every line exactly once");
    assert_eq!(got, want);
}

#[test]
fn one_watcher_per_checkpoint() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "app.log", b"1\n");
    let mut first = std::process::Command::new(WATCH)
        .args([
            "app.log",
            "--checkpoint",
            "ck.json",
            "--exec",
            "cat > /dev/null",
        ])
        .current_dir(d)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = watch_once(d, &["app.log", "--checkpoint", "ck.json"]);
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("another etl-watch is using checkpoint ck.json"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn inbox_script_from_cron_loads_each_line_once() {
    let dir = tempdir();
    let d = dir.path();
    std::fs::create_dir(d.join("inbox")).expect("mkdir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/watch-inbox.sh");
    let cron_run = || {
        std::process::Command::new("env")
            .arg("-i")
            .arg(format!("PATH={}:/usr/bin:/bin", bin_dir().display()))
            .arg(&script)
            .arg(d.join("inbox"))
            .arg(d.join("wh.db"))
            .current_dir("/")
            .output()
            .expect("script runs")
    };
    write(&d.join("inbox"), "a.ndjson", b"{\"n\":1}\n{\"n\":2}\n");
    assert_eq!(code(&cron_run()), 0);
    write(&d.join("inbox"), "b.ndjson", b"{\"n\":3}\n");
    append(&d.join("inbox").join("a.ndjson"), "{\"n\":4}\n");
    let out = cron_run();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(code(&cron_run()), 0);
    assert_eq!(count(&d.join("wh.db"), "events"), Some(4));
}

#[test]
fn follow_script_picks_up_lines_as_they_come() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "app.log", b"start\n");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/follow-log.sh");
    let mut child = std::process::Command::new(&script)
        .arg(d.join("app.log"))
        .arg(d.join("logs.db"))
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir().display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    append(&d.join("app.log"), "second\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while count(&d.join("logs.db"), "app_log") != Some(2) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(count(&d.join("logs.db"), "app_log"), Some(2));
}

#[test]
fn inotify_wakes_the_watcher_before_the_next_poll() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "app.log", b"");
    let mut child = std::process::Command::new(WATCH)
        .args([
            "app.log",
            "--poll-interval",
            "600000",
            "--batch-interval",
            "0.1",
            "--exec",
            "etl-load -q wh.db --table t",
        ])
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir().display()))
        .current_dir(d)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(500));
    append(&d.join("app.log"), "hello\n");
    // The next poll is ten minutes away: only a change notification gets
    // the line read in time, and the batch interval hands it on.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while count(&d.join("wh.db"), "t") != Some(1) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(count(&d.join("wh.db"), "t"), Some(1));
}

#[test]
fn its_own_checkpoint_in_a_watched_directory_is_not_input() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "a.log", b"1\n");
    for _ in 0..3 {
        let out = watch_once(d, &[".", "--checkpoint", "w.ckpt"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let out = watch_once(d, &[".", "--checkpoint", "w.ckpt"]);
    assert_eq!(lines_of(&out), Vec::<String>::new());
}

#[test]
fn from_end_skips_old_lines_only_on_the_very_first_run() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "app.log", b"old\n");
    let args = ["app.log", "--checkpoint", "ck.json", "--from-end"];
    assert_eq!(lines_of(&watch_once(d, &args)), Vec::<String>::new());
    append(&d.join("app.log"), "new\n");
    std::fs::rename(d.join("app.log"), d.join("app.log.1")).expect("rotate");
    write(d, "app.log", b"after rotation\n");
    assert_eq!(lines_of(&watch_once(d, &args)), ["new", "after rotation"]);
}

#[test]
fn a_long_quoted_csv_record_does_not_stall_the_file() {
    let dir = tempdir();
    let d = dir.path();
    let long = "y\n".repeat(5000);
    write(
        d,
        "in.csv",
        format!("id,note\n1,\"{long}\"\n2,z\n").as_bytes(),
    );
    let out = watch_once(d, &["in.csv", "--format", "csv", "--batch-bytes", "1000"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(records(&stdout(&out)).len(), 2);
}

/// A prefix longer than a fingerprint of the first bytes: NDJSON events
/// that differ only after it.
const LONG_PREFIX: &str =
    "{\"event\":\"page_view\",\"schema\":\"v2\",\"source\":\"web-frontend\",\"site\":\"shop\",";

fn events(ids: std::ops::RangeInclusive<u32>) -> String {
    ids.map(|i| format!("{LONG_PREFIX}\"id\":{i}}}\n"))
        .collect()
}

fn load_into(table: &str) -> String {
    format!("etl-load -q wh.db --table {table}")
}

fn watch_exec(dir: &Path, args: &[&str], exec: &str) -> std::process::Output {
    let mut c = cmd(WATCH, dir);
    c.arg("--once").args(args).args(["--exec", exec]);
    run(c)
}

fn ids_in(db: &Path, table: &str) -> Vec<i64> {
    let conn = rusqlite::Connection::open(db).expect("open");
    let mut stmt = conn
        .prepare(&format!("SELECT id FROM {table} ORDER BY rowid"))
        .expect("select");
    stmt.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[test]
fn a_new_file_on_a_reused_inode_is_read_from_its_start() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempdir();
    let d = dir.path();
    let inbox = d.join("inbox");
    std::fs::create_dir(&inbox).expect("mkdir");
    write(&inbox, "b1.ndjson", events(1..=2).as_bytes());
    let old_inode = std::fs::metadata(inbox.join("b1.ndjson"))
        .expect("stat")
        .ino();
    let args = ["inbox", "--format", "ndjson", "--checkpoint", "ck.json"];
    let out = watch_exec(d, &args, &load_into("events"));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // The inbox pattern: the processed file is deleted, the next one
    // arrives (ext4 hands it the freed inode at once).
    std::fs::remove_file(inbox.join("b1.ndjson")).expect("rm");
    // Other files freed inodes too: hold on to the ones handed out until
    // the old inode comes round (hidden files are not watched).
    let mut reused = false;
    for attempt in 0..64 {
        write(&inbox, "b2.ndjson", events(3..=4).as_bytes());
        reused = std::fs::metadata(inbox.join("b2.ndjson"))
            .expect("stat")
            .ino()
            == old_inode;
        if reused {
            break;
        }
        std::fs::rename(
            inbox.join("b2.ndjson"),
            inbox.join(format!(".held{attempt}")),
        )
        .expect("hold");
    }
    if !reused {
        // Other tests took the inode meanwhile: the new file is still new.
        write(&inbox, "b2.ndjson", events(3..=4).as_bytes());
    }
    let out = watch_exec(d, &args, &load_into("events"));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        ids_in(&d.join("wh.db"), "events"),
        [1, 2, 3, 4],
        "inode reused: {reused}; {}",
        stderr(&out)
    );
}

#[test]
fn a_file_rewritten_in_place_while_not_running_is_read_from_its_start() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "app.ndjson", events(1..=2).as_bytes());
    let args = [
        "app.ndjson",
        "--format",
        "ndjson",
        "--checkpoint",
        "ck.json",
    ];
    let out = watch_exec(d, &args, &load_into("events"));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // Same inode, same size, same first bytes: only the content differs.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(d.join("app.ndjson"))
        .expect("open");
    f.write_all(events(3..=4).as_bytes()).expect("rewrite");
    drop(f);
    let out = watch_exec(d, &args, &load_into("events"));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("app.ndjson was rewritten or replaced since the checkpoint"),
        "{}",
        stderr(&out)
    );
    assert_eq!(ids_in(&d.join("wh.db"), "events"), [1, 2, 3, 4]);
    let out = watch_exec(d, &args, &load_into("events"));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        ids_in(&d.join("wh.db"), "events"),
        [1, 2, 3, 4],
        "and read once"
    );
}

#[test]
fn copytruncate_while_not_running_never_resumes_mid_line() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "app.ndjson", events(1..=2).as_bytes());
    let args = [
        "app.ndjson",
        "--format",
        "ndjson",
        "--checkpoint",
        "ck.json",
    ];
    assert_eq!(records(&stdout(&watch_once(d, &args))).len(), 2);
    std::fs::copy(d.join("app.ndjson"), d.join("app.ndjson.1")).expect("copy");
    std::fs::OpenOptions::new()
        .write(true)
        .open(d.join("app.ndjson"))
        .expect("open")
        .set_len(0)
        .expect("truncate");
    // The new content grows past the old offset before etl-watch runs again.
    append(&d.join("app.ndjson"), &events(10..=12));
    let out = watch_once(d, &args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let ids: Vec<serde_json::Value> = records(&stdout(&out))
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(ids, [10, 11, 12], "{}", stderr(&out));
}

#[test]
fn appends_to_a_large_file_resume_where_they_stopped() {
    let dir = tempdir();
    let d = dir.path();
    // Past the bytes a file's identity check reads at each end.
    write(d, "big.ndjson", events(1..=3000).as_bytes());
    let args = [
        "big.ndjson",
        "--format",
        "ndjson",
        "--checkpoint",
        "ck.json",
    ];
    assert_eq!(records(&stdout(&watch_once(d, &args))).len(), 3000);
    append(&d.join("big.ndjson"), &events(3001..=3002));
    let out = watch_once(d, &args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(records(&stdout(&out)).len(), 2, "{}", stderr(&out));
    assert!(!stderr(&out).contains("rewritten"), "{}", stderr(&out));
}

#[test]
fn two_jobs_into_two_tables_of_one_database_both_load_everything() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "app.ndjson", events(1..=50).as_bytes());
    let out = watch_exec(
        d,
        &["app.ndjson", "-f", "ndjson", "--checkpoint", "a.ckpt"],
        &load_into("all_events"),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = watch_exec(
        d,
        &[
            "app.ndjson",
            "-f",
            "ndjson",
            "--checkpoint",
            "b.ckpt",
            "--stream",
            "errors",
        ],
        &load_into("error_events"),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(count(&d.join("wh.db"), "all_events"), Some(50));
    assert_eq!(count(&d.join("wh.db"), "error_events"), Some(50));
}

#[test]
fn batch_ids_recorded_before_they_were_scoped_still_stop_a_replay() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "app.log", b"1\n2\n3\n");
    let out = watch_exec(
        d,
        &["app.log", "--checkpoint", "ck.json"],
        "etl-load -q wh.db --table t && kill -9 $PPID",
    );
    assert!(out.status.code().is_none(), "the watcher was killed");
    // The database as an older etlkit left it: batch ids not scoped.
    let conn = rusqlite::Connection::open(d.join("wh.db")).expect("open");
    conn.execute_batch(
        "CREATE TABLE old AS SELECT id, committed_at FROM _etl_batches; \
         DROP TABLE _etl_batches; \
         CREATE TABLE _etl_batches (id TEXT PRIMARY KEY, committed_at TEXT NOT NULL); \
         INSERT INTO _etl_batches SELECT * FROM old; DROP TABLE old;",
    )
    .expect("legacy table");
    drop(conn);
    append(&d.join("app.log"), "4\n");
    let out = watch_exec(
        d,
        &["app.log", "--checkpoint", "ck.json"],
        "etl-load -q wh.db --table t",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(table_lines(&d.join("wh.db")), ["1", "2", "3", "4"]);
    let conn = rusqlite::Connection::open(d.join("wh.db")).expect("open");
    let scoped: i64 = conn
        .query_row(
            "SELECT count(*) FROM _etl_batches WHERE target_table = 't' AND stream = 'watch'",
            [],
            |r| r.get(0),
        )
        .expect("the batch table has its scope columns");
    assert_eq!(scoped, 1);
}

#[test]
fn two_jobs_into_two_postgres_tables_both_load_everything_and_replays_are_skipped() {
    let Some(pg) = PgSchema::new("watch_scope") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    write(d, "app.ndjson", events(1..=50).as_bytes());
    let into = |table: &str| {
        format!(
            "etl-load -q '{}' --schema-name {} --table {table}",
            pg.url, pg.name
        )
    };
    // A legacy batch table (ids not scoped) is migrated in place.
    pg.client()
        .batch_execute(&format!(
            "CREATE TABLE {}._etl_batches (id text PRIMARY KEY, committed_at timestamptz NOT NULL DEFAULT now()); \
             INSERT INTO {}._etl_batches (id) VALUES ('0123456789abcdef')",
            pg.name, pg.name
        ))
        .expect("legacy batch table");
    // The first job commits, then dies before moving its checkpoint.
    let out = watch_exec(
        d,
        &["app.ndjson", "-f", "ndjson", "--checkpoint", "a.ckpt"],
        &format!("{} && kill -9 $PPID", into("all_events")),
    );
    assert!(out.status.code().is_none(), "the watcher was killed");
    let out = watch_exec(
        d,
        &["app.ndjson", "-f", "ndjson", "--checkpoint", "a.ckpt"],
        &into("all_events"),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(pg.count("all_events"), 50, "the replay was skipped");
    let out = watch_exec(
        d,
        &[
            "app.ndjson",
            "-f",
            "ndjson",
            "--checkpoint",
            "b.ckpt",
            "--stream",
            "errors",
        ],
        &into("error_events"),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(pg.count("error_events"), 50);
    assert_eq!(pg.count("all_events"), 50);
    let scopes = pg.rows(&format!(
        "SELECT coalesce(target_table, '-'), coalesce(stream, '-') FROM {}._etl_batches ORDER BY 1, 2",
        pg.name
    ));
    assert_eq!(scopes, ["-|-", "all_events|watch", "error_events|errors"]);
}

#[test]
fn a_file_rewritten_after_a_crash_is_not_taken_for_the_unconfirmed_batch() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "app.ndjson", events(1..=2).as_bytes());
    let args = [
        "app.ndjson",
        "--format",
        "ndjson",
        "--checkpoint",
        "ck.json",
    ];
    // The load commits, then the watcher dies with the batch unconfirmed.
    let out = watch_exec(
        d,
        &args,
        &format!("{} && kill -9 $PPID", load_into("events")),
    );
    assert!(out.status.code().is_none(), "the watcher was killed");
    std::fs::write(d.join("app.ndjson"), events(3..=4)).expect("rewrite in place");
    let out = watch_exec(d, &args, &load_into("events"));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("app.ndjson changed since the unconfirmed batch was cut"),
        "{}",
        stderr(&out)
    );
    assert_eq!(ids_in(&d.join("wh.db"), "events"), [1, 2, 3, 4]);
}

/// Batch sizes of a watch run's stdout, from its end lines.
fn batch_sizes(out: &std::process::Output) -> Vec<u64> {
    json_lines(&stdout(out))
        .iter()
        .filter(|l| l["@etl"] == "end")
        .map(|l| l["rows"].as_u64().expect("rows"))
        .collect()
}

#[test]
fn batch_rows_and_batch_bytes_cut_batches_of_files_and_directories() {
    let dir = tempdir();
    let d = dir.path();
    let lines: String = (1..=20_000).map(|i| format!("{i}\n")).collect();
    write(d, "big.log", lines.as_bytes());
    let out = watch_once(d, &["big.log", "--batch-rows", "20"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(batch_sizes(&out), vec![20; 1000]);
    assert_eq!(lines_of(&out).len(), 20_000);
    // The same through --exec: one file per batch, with its 20 lines.
    write(
        d,
        "small.log",
        &lines.as_bytes()[..lines.find("201\n").expect("201")],
    );
    let out = watch_exec(
        d,
        &["small.log", "--batch-rows", "20", "--checkpoint", "ck.json"],
        "cat > batch.$(ls | grep -c '^batch\\.')",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    for n in 0..10 {
        let batch = std::fs::read_to_string(d.join(format!("batch.{n}"))).expect("batch");
        assert_eq!(records(&batch).len(), 20, "batch {n}");
    }
    assert!(!d.join("batch.10").exists());
    // A directory of CSV files: rows are counted without the headers,
    // and a batch may span two files.
    std::fs::create_dir(d.join("inbox")).expect("mkdir");
    for (name, first) in [("a.csv", 1), ("b.csv", 26)] {
        let csv: String = std::iter::once("id,note\n".to_string())
            .chain((first..first + 25).map(|i| format!("{i},\"x\ny\"\n")))
            .collect();
        write(&d.join("inbox"), name, csv.as_bytes());
    }
    let out = watch_once(d, &["inbox", "--format", "csv", "--batch-rows", "20"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(batch_sizes(&out), [20, 20, 10]);
    // --batch-bytes: a batch closes at the line that brings it to 1,000
    // bytes of input.
    let mut expected = vec![0u64];
    let mut bytes = 0;
    for line in lines.lines() {
        *expected.last_mut().expect("open batch") += 1;
        bytes += line.len() + 1;
        if bytes >= 1000 {
            expected.push(0);
            bytes = 0;
        }
    }
    expected.retain(|&n| n > 0);
    let out = watch_once(d, &["big.log", "--batch-bytes", "1000"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(batch_sizes(&out), expected);
}

/// logrotate's copytruncate with `rotate 3`: the older copies move up by
/// rename, the log is copied to app.log.1 (in two writes, `pause` apart,
/// as a copy of a large file is), and truncated.
fn copytruncate(d: &Path, pause: std::time::Duration) {
    copy_for_rotation(d, pause);
    truncate_log(d);
}

fn copy_for_rotation(d: &Path, pause: std::time::Duration) {
    for n in (1..3).rev() {
        let from = d.join(format!("app.log.{n}"));
        if from.exists() {
            std::fs::rename(&from, d.join(format!("app.log.{}", n + 1))).expect("rotate");
        }
    }
    let content = std::fs::read(d.join("app.log")).expect("read log");
    let half = content.len() / 2;
    let mut copy = std::fs::File::create(d.join("app.log.1")).expect("copy");
    copy.write_all(&content[..half]).expect("copy");
    std::thread::sleep(pause);
    copy.write_all(&content[half..]).expect("copy");
}

fn truncate_log(d: &Path) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(d.join("app.log"))
        .expect("open")
        .set_len(0)
        .expect("truncate");
}

fn log_lines(d: &Path, from: u32, to: u32) {
    append(
        &d.join("app.log"),
        &(from..=to)
            .map(|i| format!("line {i}\n"))
            .collect::<String>(),
    );
}

/// The lines of all batches, each exactly once and all of them.
fn assert_each_line_once(lines: &[String], total: u32) {
    let mut sorted = lines.to_vec();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), lines.len(), "lines repeated");
    assert_eq!(lines.len(), total as usize, "{lines:?}");
}

#[test]
fn copytruncate_under_a_glob_while_not_running_reads_each_line_once() {
    let dir = tempdir();
    let d = dir.path();
    let args = ["app.log*", "--checkpoint", "ck.json"];
    let mut lines = Vec::new();
    let once = |lines: &mut Vec<String>| {
        let out = watch_once(d, &args);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        lines.extend(lines_of(&out));
        stderr(&out)
    };
    log_lines(d, 1, 50);
    once(&mut lines);
    // Lines 51..100 were never read when the log is copied: they are read
    // from the copy.
    log_lines(d, 51, 100);
    copytruncate(d, std::time::Duration::ZERO);
    log_lines(d, 101, 150);
    let err = once(&mut lines);
    assert!(
        err.contains(
            "etl-watch: warning: app.log.1 is a copy of the 391 bytes read from app.log \
             (copytruncate); following it from byte 391"
        ),
        "{err}"
    );
    assert!(!err.contains("never read"), "{err}");
    // A run between the copy and the truncation (the copy waits: its
    // lines are read from the log), the older copy moved on by rename.
    log_lines(d, 151, 200);
    copy_for_rotation(d, std::time::Duration::ZERO);
    once(&mut lines);
    truncate_log(d);
    log_lines(d, 201, 250);
    once(&mut lines);
    // And a third rotation.
    log_lines(d, 251, 300);
    copytruncate(d, std::time::Duration::ZERO);
    once(&mut lines);
    once(&mut lines);
    assert_each_line_once(&lines, 300);
    assert!(d.join("app.log.3").exists());
}

#[test]
fn copytruncate_under_a_glob_while_running_reads_each_line_once() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "app.log", b"");
    let out = std::fs::File::create(d.join("out.ndjson")).expect("out");
    let mut child = std::process::Command::new(WATCH)
        .args([
            "app.log*",
            "--checkpoint",
            "ck.json",
            "--poll-interval",
            "20",
            "--batch-interval",
            "0.05",
        ])
        .current_dir(d)
        .stdout(out)
        .stderr(std::fs::File::create(d.join("err.txt")).expect("err"))
        .spawn()
        .expect("spawn");
    let pause = std::time::Duration::from_millis(300);
    let mut written = 0;
    for round in 0..4 {
        for _ in 0..5 {
            log_lines(d, written + 1, written + 10);
            written += 10;
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if round == 2 {
            // Lines written between the copy and the truncation are lost
            // from the copy (as with logrotate), but were read from the log.
            std::fs::copy(d.join("app.log"), d.join("app.log.tmp")).expect("copy");
            log_lines(d, written + 1, written + 5);
            written += 5;
            std::thread::sleep(pause);
            for n in (1..3).rev() {
                let from = d.join(format!("app.log.{n}"));
                if from.exists() {
                    std::fs::rename(&from, d.join(format!("app.log.{}", n + 1))).expect("rotate");
                }
            }
            std::fs::rename(d.join("app.log.tmp"), d.join("app.log.1")).expect("copy");
            std::thread::sleep(pause);
            std::fs::OpenOptions::new()
                .write(true)
                .open(d.join("app.log"))
                .expect("open")
                .set_len(0)
                .expect("truncate");
        } else {
            copytruncate(d, pause);
        }
        std::thread::sleep(pause);
    }
    log_lines(d, written + 1, written + 10);
    written += 10;
    let read = || lines_of_text(&std::fs::read_to_string(d.join("out.ndjson")).expect("out"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while read().len() < written as usize && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Anything read twice would come within this time too.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let _ = child.kill();
    let _ = child.wait();
    let err = std::fs::read_to_string(d.join("err.txt")).expect("err");
    assert_each_line_once(&read(), written);
    assert!(err.contains("app.log.1 is a copy of the"), "{err}");
}

#[test]
fn a_copy_whose_original_is_never_truncated_is_read_after_a_grace() {
    let dir = tempdir();
    let d = dir.path();
    std::fs::create_dir(d.join("inbox")).expect("mkdir");
    write(&d.join("inbox"), "a.ndjson", events(1..=3).as_bytes());
    let args = ["inbox", "--format", "ndjson", "--checkpoint", "ck.json"];
    assert_eq!(records(&stdout(&watch_once(d, &args))).len(), 3);
    // The same report dropped again: it waits for a truncation of a.ndjson
    // that would make it a rotated copy...
    write(&d.join("inbox"), "b.ndjson", events(1..=3).as_bytes());
    let out = watch_once(d, &args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(records(&stdout(&out)).len(), 0);
    // ...and is a file of its own once none came within 30 seconds.
    std::fs::File::options()
        .write(true)
        .open(d.join("inbox/b.ndjson"))
        .expect("open")
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(31))
        .expect("mtime");
    let out = watch_once(d, &args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(records(&stdout(&out)).len(), 3);
    assert_eq!(records(&stdout(&watch_once(d, &args))).len(), 0);
}
