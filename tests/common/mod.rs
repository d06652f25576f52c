//! Helpers shared by the integration tests.

pub mod expect;
pub mod http;
pub mod kafka;
pub mod nats;
pub mod redis;
pub mod s3;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const EXTRACT: &str = env!("CARGO_BIN_EXE_etl-extract");
pub const LOAD: &str = env!("CARGO_BIN_EXE_etl-load");
pub const WATCH: &str = env!("CARGO_BIN_EXE_etl-watch");
pub const TRANSFORM: &str = env!("CARGO_BIN_EXE_etl-transform");

/// The repository's sample-data directory.
pub fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sample-data")
        .join(name)
}

/// The directory holding the built binaries, for PATH.
pub fn bin_dir() -> PathBuf {
    Path::new(EXTRACT)
        .parent()
        .expect("binary has a parent")
        .to_path_buf()
}

/// A command for a binary with a cleared environment, run in `dir`.
pub fn cmd(bin: &str, dir: &Path) -> Command {
    let mut c = Command::new(bin);
    c.env_clear().env("PATH", path_var()).current_dir(dir);
    c
}

fn path_var() -> String {
    format!("{}:/usr/local/bin:/usr/bin:/bin", bin_dir().display())
}

/// Runs `command` with `stdin` bytes as its input.
pub fn run_with_input(mut command: Command, stdin: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // The program may exit before reading everything; that is its call.
        let _ = pipe.write_all(&data);
    });
    let out = child.wait_with_output().expect("binary runs");
    writer.join().expect("writer thread");
    out
}

/// Runs a command with stdin from /dev/null.
pub fn run(mut command: Command) -> Output {
    command.stdin(Stdio::null()).output().expect("binary runs")
}

/// Runs a bash script (with pipefail) in `dir`, binaries on PATH.
pub fn bash(script: &str, dir: &Path) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!("set -o pipefail\n{script}"))
        .env_clear()
        .env("PATH", path_var())
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("bash runs")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("stderr is UTF-8")
}

/// Exit code, failing loudly with stderr when the process was killed.
pub fn code(out: &Output) -> i32 {
    out.status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal; stderr: {}", stderr(out)))
}

/// Parses NDJSON output into its lines as JSON values.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The records of a whole stream that is one JSON object per line: a
/// begin line, `n` records, an end line counting them.
pub fn stream_records(text: &str, n: usize) -> Vec<serde_json::Value> {
    let lines = json_lines(text);
    assert!(lines.iter().all(serde_json::Value::is_object), "{text}");
    assert_eq!(lines.len(), n + 2, "{text}");
    assert_eq!(lines[0]["@etl"], "begin", "{text}");
    assert_eq!(lines[n + 1]["@etl"], "end", "{text}");
    assert_eq!(lines[n + 1]["rows"], n, "{text}");
    lines[1..=n].to_vec()
}

/// Only the records of NDJSON output (control lines dropped).
pub fn records(text: &str) -> Vec<serde_json::Value> {
    json_lines(text)
        .into_iter()
        .filter(|v| {
            v.as_object()
                .and_then(|o| o.keys().next())
                .map(String::as_str)
                != Some("@etl")
        })
        .collect()
}

/// Row count of a table, or None when the table (or file) does not exist.
pub fn count(db: &Path, table: &str) -> Option<i64> {
    if !db.exists() {
        return None;
    }
    let conn = rusqlite::Connection::open(db).expect("db opens");
    conn.query_row(
        &format!("SELECT count(*) FROM \"{}\"", table.replace('"', "\"\"")),
        [],
        |r| r.get(0),
    )
    .ok()
}

/// A full, ordered text dump of a table for exact comparisons.
pub fn dump(db: &Path, table: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("db opens");
    let mut stmt = conn
        .prepare(&format!(
            "SELECT * FROM \"{}\" ORDER BY rowid",
            table.replace('"', "\"\"")
        ))
        .expect("select");
    let n = stmt.column_count();
    stmt.query_map([], |row| {
        let mut cells = Vec::new();
        for i in 0..n {
            let v: rusqlite::types::Value = row.get(i)?;
            cells.push(format!("{v:?}"));
        }
        Ok(cells.join("|"))
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

/// Writes `contents` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write fixture");
    path
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Values compared the way a round trip must keep them: numbers by value
/// (`249.50` equals `249.5`, integers exactly), everything else exactly.
pub fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64().is_some() && x.as_f64() == y.as_f64(),
        },
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        // One UTC instant in its two wire forms (a CSV's `Z`, a Parquet
        // file's or PostgreSQL's `+00:00`).
        (Value::String(x), Value::String(y)) => x == y || utc(x) == utc(y),
        _ => a == b,
    }
}

/// A timestamp ending in `Z` written with `+00:00` instead.
fn utc(s: &str) -> std::borrow::Cow<'_, str> {
    match s.strip_suffix('Z') {
        Some(t) if t.len() >= 19 && t.as_bytes()[10] == b'T' => format!("{t}+00:00").into(),
        _ => s.into(),
    }
}

/// Asserts two record lists are the same, record by record.
pub fn assert_same_records(a: &[serde_json::Value], b: &[serde_json::Value], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: record counts differ");
    for (x, y) in a.iter().zip(b) {
        assert!(same(x, y), "{what}: records differ:\n{x}\n{y}");
    }
}

/// Runs etl-extract with `args` in `dir` and returns its records (asserting exit 0).
pub fn extract_records(dir: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let mut c = cmd(EXTRACT, dir);
    c.arg("-q").args(args);
    let out = run(c);
    assert_eq!(code(&out), 0, "etl-extract {args:?}: {}", stderr(&out));
    records(&stdout(&out))
}

/// The PostgreSQL server the tests use: ETLKIT_TEST_PG, else the local
/// test database. `None` (with a loud note) when it is not reachable,
/// unless ETLKIT_REQUIRE_POSTGRES is set, as in CI: then it is a failure.
pub fn pg_url() -> Option<String> {
    let url = std::env::var("ETLKIT_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    match postgres::Client::connect(&url, postgres::NoTls) {
        Ok(_) => Some(url),
        Err(e) => {
            if std::env::var_os("ETLKIT_REQUIRE_POSTGRES").is_some() {
                panic!("PostgreSQL is required (ETLKIT_REQUIRE_POSTGRES) but unreachable: {e}");
            }
            eprintln!(
                "SKIPPED: PostgreSQL test: no server at the test URL ({e}); set ETLKIT_TEST_PG"
            );
            None
        }
    }
}

/// A schema of its own for one test, dropped when the test ends.
pub struct PgSchema {
    pub url: String,
    pub name: String,
}

impl PgSchema {
    pub fn new(test: &str) -> Option<PgSchema> {
        let url = pg_url()?;
        let name = format!("etl_t_{test}_{}", std::process::id());
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
            ))
            .expect("schema");
        Some(PgSchema { url, name })
    }

    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect")
    }

    /// Rows of a query, each as its columns' text joined by '|'.
    pub fn rows(&self, sql: &str) -> Vec<String> {
        let sql = format!(
            "SELECT (SELECT string_agg(coalesce(x.value, ''), '|' ORDER BY x.n) \
             FROM json_each_text(row_to_json(t)) WITH ORDINALITY AS x(key, value, n)) FROM ({sql}) AS t"
        );
        self.client()
            .query(&sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
            .collect()
    }

    pub fn count(&self, table: &str) -> i64 {
        self.client()
            .query_one(&format!("SELECT count(*) FROM {}.{table}", self.name), &[])
            .expect("count")
            .get(0)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

/// The MariaDB/MySQL server the tests use: ETLKIT_TEST_MYSQL, else the
/// local test database. `None` (with a loud note) when it is not
/// reachable, unless ETLKIT_REQUIRE_MYSQL is set, as in CI: then it is a
/// failure.
pub fn mysql_url() -> Option<String> {
    let url = std::env::var("ETLKIT_TEST_MYSQL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
    match etlkit::mysql::conn::connect(&url) {
        Ok(_) => Some(url),
        Err(e) => {
            if std::env::var_os("ETLKIT_REQUIRE_MYSQL").is_some() {
                panic!("MariaDB/MySQL is required (ETLKIT_REQUIRE_MYSQL) but unreachable: {e}");
            }
            eprintln!(
                "SKIPPED: MariaDB/MySQL test: no server at the test URL ({e}); set ETLKIT_TEST_MYSQL"
            );
            None
        }
    }
}

/// A database of its own for one test, dropped when the test ends.
pub struct MyDb {
    /// The URL of the test's database.
    pub url: String,
    pub name: String,
}

impl MyDb {
    pub fn new(test: &str) -> Option<MyDb> {
        use mysql::prelude::Queryable;
        let base = mysql_url()?;
        let name = format!("etl_t_{test}_{}", std::process::id());
        let mut conn = etlkit::mysql::conn::connect(&base).expect("connect");
        conn.query_drop(format!(
            "DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`"
        ))
        .expect("database");
        let (head, _) = base
            .rsplit_once('/')
            .expect("the test URL names a database");
        Some(MyDb {
            url: format!("{head}/{name}"),
            name,
        })
    }

    pub fn conn(&self) -> mysql::Conn {
        etlkit::mysql::conn::connect(&self.url).expect("connect")
    }

    pub fn exec(&self, sql: &str) {
        use mysql::prelude::Queryable;
        self.conn()
            .query_drop(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub fn exists(&self, table: &str) -> bool {
        use mysql::prelude::Queryable;
        let n: Option<u64> = self
            .conn()
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() \
                 AND TABLE_NAME = ?",
                (table,),
            )
            .expect("tables");
        n.unwrap_or(0) > 0
    }

    /// Rows of a query, each as its columns' text joined by '|' (NULL empty).
    pub fn rows(&self, sql: &str) -> Vec<String> {
        use mysql::prelude::Queryable;
        let rows: Vec<mysql::Row> = self
            .conn()
            .query(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.into_iter()
            .map(|row| {
                row.unwrap()
                    .into_iter()
                    .map(|v| match v {
                        mysql::Value::NULL => String::new(),
                        mysql::Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                        other => other.as_sql(true),
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    }
}

impl Drop for MyDb {
    fn drop(&mut self) {
        use mysql::prelude::Queryable;
        if let Ok(mut c) = etlkit::mysql::conn::connect(&self.url) {
            let _ = c.query_drop(format!("DROP DATABASE IF EXISTS `{}`", self.name));
        }
    }
}

/// A name no other test (or run) uses: tests share the servers.
pub fn unique(name: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{name}{}x{nanos}x{n}", std::process::id())
}
