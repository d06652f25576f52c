//! Crash suite: `extract | load` killed with SIGKILL at random points, in
//! every mode, into SQLite, PostgreSQL and MariaDB/MySQL. After every kill the target must
//! hold exactly what it held before (never a partial load), and after a
//! clean rerun exactly the expected rows (nothing lost, nothing doubled).
//!
//! The bounded version runs with the other tests. The long version:
//!   ETLKIT_CRASH_ITERATIONS=300 ETLKIT_CRASH_SEED=42 cargo test --test cli crash -- --ignored

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

pub fn seed() -> u64 {
    std::env::var("ETLKIT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed)
}

/// Runs `script` (a pipeline) under bash and SIGKILLs the whole process
/// group after `delay`; returns whether it was killed before finishing.
pub fn run_and_kill(script: &str, dir: &Path, delay: Duration) -> bool {
    let mut child = Command::new("setsid")
        .args(["bash", "-c", &format!("set -o pipefail; {script}")])
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir().display()))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(delay);
    let finished = child.try_wait().expect("wait").is_some();
    if !finished {
        // setsid made the child a group leader: kill the whole pipeline.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .status();
    }
    let _ = child.wait();
    !finished
}

fn source(dir: &Path, rows: usize, version: u32) {
    let mut csv = String::from("id,v,pad\n");
    for i in 0..rows {
        csv.push_str(&format!("{i},v{version}-{i},{}\n", "x".repeat(60)));
    }
    write(dir, "src.csv", csv.as_bytes());
}

fn sqlite_state(db: &Path, table: &str) -> Vec<String> {
    if count(db, table).is_none() {
        return Vec::new();
    }
    dump(db, table)
}

fn suite(iterations: u32, name: &str) {
    let dir = tempdir();
    let d = dir.path();
    let mut rng = Rng(seed());
    let pg = PgSchema::new(name);
    let my = MyDb::new(name);
    let rows = 20_000;
    let mut kills = 0;
    for i in 0..iterations {
        let version = i % 3;
        source(d, rows, version);
        for mode in ["append", "replace", "upsert --key id"] {
            // A table per mode: an upsert's unique key would refuse appends.
            let table = format!("t_{}", mode.split(' ').next().unwrap_or(mode));
            let mut targets = vec![(
                format!("etl-load -q w.db --table {table} --mode {mode}"),
                Db::Sqlite,
            )];
            if let Some(pg) = &pg {
                targets.push((
                    format!(
                        "etl-load -q '{}' --schema-name {} --table {table} --mode {mode}",
                        pg.url, pg.name
                    ),
                    Db::Postgres,
                ));
            }
            if let Some(my) = &my {
                targets.push((
                    format!("etl-load -q '{}' --table {table} --mode {mode}", my.url),
                    Db::Mysql,
                ));
            }
            for (load, db) in targets {
                let state = || match (&pg, &my, db) {
                    (Some(pg), _, Db::Postgres) => pg_state(pg, &table),
                    (_, Some(my), Db::Mysql) => my_state(my, &table),
                    _ => sqlite_state(&d.join("w.db"), &table),
                };
                let before = state();
                let complete = expected(&before, mode, rows, version, db != Db::Sqlite);
                let script = format!("etl-extract -q src.csv | {load}");
                let delay = Duration::from_millis(5 + rng.next() % 250);
                let killed = run_and_kill(&script, d, delay);
                let mut after = state();
                after.sort();
                let what = format!(
                    "iteration {i}, {} {mode}, seed {}",
                    match db {
                        Db::Sqlite => "SQLite",
                        Db::Postgres => "PostgreSQL",
                        Db::Mysql => "MariaDB",
                    },
                    seed()
                );
                let mut unchanged = before.clone();
                unchanged.sort();
                if killed {
                    kills += 1;
                    assert!(
                        after == unchanged || after == complete,
                        "{what}: a killed run left a partial table ({} rows; before {}, complete {})",
                        after.len(),
                        unchanged.len(),
                        complete.len()
                    );
                } else {
                    assert!(
                        after == complete,
                        "{what}: a finished run left {} rows, not the {} expected",
                        after.len(),
                        complete.len()
                    );
                }
                if after.len() > 100_000 {
                    // Keep the growing append table small: start it over.
                    match (&pg, &my, db) {
                        (_, Some(my), Db::Mysql) => my.exec(&format!("DROP TABLE {table}")),
                        (Some(pg), _, Db::Postgres) => pg
                            .client()
                            .batch_execute(&format!("DROP TABLE {}.{table}", pg.name))
                            .expect("drop"),
                        _ => rusqlite::Connection::open(d.join("w.db"))
                            .and_then(|c| c.execute_batch(&format!("DROP TABLE {table}")))
                            .expect("drop"),
                    }
                }
            }
        }
    }
    assert!(kills > 0, "no run was killed mid-way");
}

/// The target databases of the suite.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Db {
    Sqlite,
    Postgres,
    Mysql,
}

/// The sorted rows after one complete run of `mode` over `before`
/// (`as_text`: cells as text joined by '|', as PostgreSQL and MySQL dumps are).
fn expected(
    before: &[String],
    mode: &str,
    rows: usize,
    version: u32,
    as_text: bool,
) -> Vec<String> {
    let pad = "x".repeat(60);
    let fresh: Vec<String> = (0..rows)
        .map(|i| {
            if as_text {
                format!("{i}|v{version}-{i}|{pad}")
            } else {
                format!("Integer({i})|Text(\"v{version}-{i}\")|Text(\"{pad}\")")
            }
        })
        .collect();
    let mut out = match mode {
        "append" => before.iter().cloned().chain(fresh).collect(),
        // Every id is in every version, so upsert leaves exactly the new rows.
        _ => fresh,
    };
    out.sort();
    out
}

fn pg_state(pg: &PgSchema, table: &str) -> Vec<String> {
    let qualified = format!("{}.{table}", pg.name);
    let exists: bool = pg
        .client()
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&qualified])
        .expect("regclass")
        .get(0);
    if !exists {
        return Vec::new();
    }
    pg.rows(&format!("SELECT * FROM {qualified}"))
}

fn my_state(my: &MyDb, table: &str) -> Vec<String> {
    if !my.exists(table) {
        return Vec::new();
    }
    my.rows(&format!("SELECT * FROM `{table}`"))
}

#[test]
fn bounded_crash_suite() {
    suite(2, "crash_bounded");
}

#[test]
#[ignore = "long: run with --ignored and ETLKIT_CRASH_ITERATIONS"]
fn long_crash_suite() {
    let n = std::env::var("ETLKIT_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    suite(n, "crash_long");
}

/// A database whose load died mid-commit: `wh.db` with 500 rows of `old`
/// and the bookmark 500 committed, and beside it the hot journal of a
/// write that had already put new pages into the file. Made in-process:
/// a write with a one-page cache spills its pages into the file (after
/// journaling them); the file and its journal are copied while the writer
/// still holds them, so the copies are exactly what a SIGKILL leaves.
fn hot_journal(dir: &Path) -> std::path::PathBuf {
    let live = dir.join("live.db");
    let rows: String = (1..=500)
        .map(|i| format!("{{\"id\":{i},\"v\":\"old\"}}\n"))
        .collect();
    write(dir, "old.ndjson", rows.as_bytes());
    let out = bash(
        "etl-extract -q old.ndjson --cursor id --stream s --state live.db \
         | etl-load -q live.db --table t",
        dir,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let conn = rusqlite::Connection::open(&live).expect("open");
    conn.execute_batch(
        "PRAGMA cache_size = 1; BEGIN; UPDATE t SET v = 'new' || hex(randomblob(200)); \
         UPDATE _etl_state SET bookmark = json_set(bookmark, '$.value', 999); DELETE FROM t WHERE id > 250;",
    )
    .expect("a write in progress");
    let journal = dir.join("live.db-journal");
    assert!(journal.exists(), "the write has a journal");
    let db = dir.join("wh.db");
    std::fs::copy(&live, &db).expect("copy the file");
    std::fs::copy(&journal, dir.join("wh.db-journal")).expect("copy the journal");
    drop(conn);
    // The copy is torn: read without its journal it is not the old data.
    let torn = dir.join("torn.db");
    std::fs::copy(&db, &torn).expect("copy");
    let n: rusqlite::Result<i64> = rusqlite::Connection::open(&torn)
        .and_then(|c| c.query_row("SELECT count(*) FROM t WHERE v = 'old'", [], |r| r.get(0)));
    assert_ne!(n.ok(), Some(500), "the file alone already holds new pages");
    db
}

#[test]
fn readers_roll_back_the_hot_journal_a_killed_load_left() {
    let dir = tempdir();
    let d = dir.path();
    let db = hot_journal(d);
    // etl-extract sees the old rows.
    let mut c = cmd(EXTRACT, d);
    c.arg(&db).args([
        "--query",
        "SELECT count(*) AS n, min(v) AS lo, max(v) AS hi FROM t",
    ]);
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        records(&stdout(&out)),
        [serde_json::json!({"n": 500, "lo": "old", "hi": "old"})]
    );
    assert!(!d.join("wh.db-journal").exists(), "rolled back");

    // --state reads the old bookmark (a fresh copy of the crash).
    let dir = tempdir();
    let d = dir.path();
    let db = hot_journal(d);
    write(
        d,
        "more.ndjson",
        b"{\"id\":499,\"v\":\"old\"}\n{\"id\":500,\"v\":\"old\"}\n{\"id\":501}\n{\"id\":502}\n",
    );
    let mut c = cmd(EXTRACT, d);
    c.args(["more.ndjson", "--cursor", "id", "--stream", "s", "--state"])
        .arg(&db);
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        records(&stdout(&out)),
        [
            serde_json::json!({"id": 501}),
            serde_json::json!({"id": 502})
        ]
    );

    // etl-check reads the run history.
    let dir = tempdir();
    let d = dir.path();
    let db = hot_journal(d);
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/etl-check"))
        .arg(&db)
        .args(["--job", "t", "--max-age", "1h", "--min-rows", "500"])
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir().display()))
        .current_dir(d)
        .output()
        .expect("etl-check runs");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("wrote 500 rows"), "{}", stdout(&out));
}
