//! Change data capture from PostgreSQL: `etl-watch postgres://... --slot S
//! --publication P` against a real cluster with wal_level = logical, which
//! `scripts/cdc-servers.sh start` runs beside the machine's own server (on
//! 127.0.0.1:55433). Without it the tests skip loudly, unless
//! ETLKIT_REQUIRE_CDC is set, as in CI.

use std::path::Path;
use std::sync::OnceLock;

use crate::common::expect::expect;
use crate::common::*;

mod storm;

/// The test database's URL once the cluster is up; `None` (with a loud
/// note) when it cannot be started, unless ETLKIT_REQUIRE_CDC is set.
fn server() -> Option<String> {
    static STARTED: OnceLock<Result<String, String>> = OnceLock::new();
    let started = STARTED.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cdc-servers.sh");
        let out = std::process::Command::new(&script)
            .arg("start")
            .output()
            .map_err(|e| format!("{}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} start failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let url = std::process::Command::new(&script)
            .arg("url")
            .output()
            .map_err(|e| e.to_string())?;
        let url = String::from_utf8_lossy(&url.stdout).trim().to_string();
        postgres::Client::connect(&url, postgres::NoTls).map_err(|e| e.to_string())?;
        Ok(url)
    });
    match started {
        Ok(url) => Some(url.clone()),
        Err(e) if std::env::var_os("ETLKIT_REQUIRE_CDC").is_some() => {
            panic!("the CDC server is required (ETLKIT_REQUIRE_CDC) but down: {e}")
        }
        Err(e) => {
            eprintln!(
                "SKIPPED: change data capture test: the wal_level=logical server is down ({e})"
            );
            None
        }
    }
}

/// One test's table, publication and slot, dropped at the end.
struct Cdc {
    url: String,
    /// The schema, the publication's and the slot's name.
    name: String,
}

impl Cdc {
    fn new(test: &str, ddl: &str) -> Option<Cdc> {
        let url = server()?;
        let name = format!("cdc_{test}_{}", std::process::id());
        let cdc = Cdc { url, name };
        cdc.drop_all();
        cdc.sql(&format!(
            "CREATE SCHEMA {n}; SET search_path = {n}; {ddl}",
            n = cdc.name
        ));
        Some(cdc)
    }

    /// `schema.table` for this test's `table`.
    fn table(&self, table: &str) -> String {
        format!("{}.{table}", self.name)
    }

    fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect")
    }

    fn sql(&self, sql: &str) {
        self.client()
            .batch_execute(&format!("SET search_path = {}; {sql}", self.name))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The slot's confirmed position, as text.
    fn confirmed(&self) -> String {
        self.client()
            .query_one(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.name],
            )
            .expect("slot")
            .get(0)
    }

    /// The table as etl-extract gives it (ordered by id), records only.
    fn extract(&self, dir: &Path, table: &str) -> Vec<serde_json::Value> {
        let mut c = cmd(EXTRACT, dir);
        c.args([
            "-q",
            &self.url,
            "--query",
            &format!("SELECT * FROM {}.{table} ORDER BY id", self.name),
        ]);
        let out = run(c);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        records(&stdout(&out))
    }

    /// etl-watch on the slot with `args` after the URL, --slot and
    /// --publication.
    fn watch(&self, dir: &Path, args: &[&str]) -> std::process::Output {
        let mut c = cmd(WATCH, dir);
        c.args([
            &self.url,
            "--slot",
            &self.name,
            "--publication",
            &self.name,
            "--checkpoint",
            "cdc.json",
        ])
        .args(args);
        run(c)
    }

    fn drop_all(&self) {
        let mut c = self.client();
        let _ = c.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
             WHERE slot_name = $1",
            &[&self.name],
        );
        let _ = c.batch_execute(&format!(
            "DROP PUBLICATION IF EXISTS {n}; DROP SCHEMA IF EXISTS {n} CASCADE",
            n = self.name
        ));
    }
}

impl Drop for Cdc {
    fn drop(&mut self) {
        self.drop_all();
    }
}

const ORDERS: &str = "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2), \
    day date, at timestamptz, uid uuid, raw bytea, doc jsonb, note text, big text, tags text[])";

/// The table's rows in the SQLite target, without the change fields.
fn target_rows(dir: &Path) -> Vec<serde_json::Value> {
    extract_records(
        dir,
        &[
            "wh.db",
            "--query",
            "SELECT id, amount, day, at, uid, raw, doc, note, big, tags FROM orders ORDER BY id",
        ],
    )
}

/// Every change, in commit order, reaches the target once: inserts,
/// updates (one of them moving a key, one leaving a TOASTed value
/// untouched), deletes; each value in the form `etl-extract` gives it; a
/// second run finds nothing; the slot moved past what was loaded.
#[test]
fn every_change_reaches_the_target_once_in_commit_order() {
    let Some(cdc) = Cdc::new("order", ORDERS) else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let table = format!("{}.orders", cdc.name);
    let load = "etl-load wh.db --table orders --mode upsert --key id --delete-when _deleted";
    let out = cdc.watch(
        d,
        &["--table", &table, "--create-slot", "--once", "--exec", load],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // Each statement its own transaction; the long value is stored out
    // of line (TOAST), so the update of its row does not send it.
    cdc.sql(
        "INSERT INTO orders VALUES
           (1, 12.50, '2026-01-02', '2026-01-02 03:04:05.5+02', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
            '\\x00ff10', '{\"a\": [1, 2.50]}', E'line\\nbreak \"q\" é',
            (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 4000) AS g),
            ARRAY['a b', NULL, 'c\"d']),
           (2, 0.10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{}'),
           (3, 7, '2026-02-03', '2026-02-03 00:00:00Z', NULL, NULL, 'null', '', 'small', NULL)",
    );
    cdc.sql(
        "BEGIN; UPDATE orders SET amount = 13.75 WHERE id = 1; \
         DELETE FROM orders WHERE id = 2; COMMIT;",
    );
    cdc.sql("UPDATE orders SET id = 30 WHERE id = 3");
    cdc.sql("INSERT INTO orders (id, amount) VALUES (2, 99.99)");
    let tee = format!("tee -a sent.ndjson | {load}");
    let out = cdc.watch(d, &["--once", "--exec", &tee]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let sent = records(&std::fs::read_to_string(d.join("sent.ndjson")).unwrap());
    let ops: Vec<String> = sent
        .iter()
        .map(|r| format!("{} {}", r["_op"].as_str().unwrap(), r["id"]))
        .collect();
    assert_eq!(
        ops,
        [
            "insert 1",
            "insert 2",
            "insert 3",
            "update 1",
            "delete 2",
            "delete 3",
            "update 30",
            "insert 2"
        ]
    );
    assert!(
        sent[3].get("big").is_none(),
        "the TOASTed value was sent: {}",
        sent[3]
    );
    expect(&out, "changes applied").stderr_like(&format!(
        "etl-load: 8 rows read, 8 written, 0 rejected in * s (* rows/s)\n\
         etl-watch: replication slot \"{}\" is at */*; the server keeps * bytes of WAL for it\n\
         etl-watch: 8 rows read, 8 written, 0 rejected in * s (* rows/s)\n",
        cdc.name
    ));
    let source = cdc.extract(d, "orders");
    assert_eq!(source.len(), 3);
    assert_same_records(&target_rows(d), &source, "the target after the changes");
    let stored = extract_records(
        d,
        &[
            "wh.db",
            "--query",
            "SELECT id, _op, _deleted FROM orders ORDER BY id",
        ],
    );
    assert_eq!(
        serde_json::Value::Array(stored).to_string(),
        r#"[{"id":1,"_op":"update","_deleted":false},{"id":2,"_op":"insert","_deleted":false},{"id":30,"_op":"update","_deleted":false}]"#
    );
    let again = cdc.watch(d, &["--once", "--exec", "cat >> again.ndjson"]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert!(
        !d.join("again.ndjson").exists(),
        "a second run handed on a batch"
    );
}

/// The records on stdout: one per change, a delete with its key only, in
/// the begin line the table's types and the change fields.
#[test]
fn change_records_carry_the_operation_the_key_the_lsn_and_the_commit_time() {
    let Some(cdc) = Cdc::new("records", "CREATE TABLE t (id int PRIMARY KEY, v text)") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let out = cdc.watch(d, &["--table", &cdc.table("t"), "--create-slot", "--once"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    cdc.sql("INSERT INTO t VALUES (1, 'a'); UPDATE t SET v = 'b' WHERE id = 1; DELETE FROM t WHERE id = 1;");
    let out = cdc.watch(d, &["--once"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines = json_lines(&stdout(&out));
    assert_eq!(lines.len(), 5, "{}", stdout(&out));
    assert_eq!(
        lines[0]["schema"].to_string(),
        r#"{"id":"integer","v":"text","_op":"text","_deleted":"boolean","_position":"text","_commit_time":"timestamptz"}"#
    );
    let shapes: Vec<String> = lines[1..4]
        .iter()
        .map(|r| {
            let mut r = r.clone();
            let o = r.as_object_mut().unwrap();
            let lsn = o.remove("_position").unwrap();
            let time = o.remove("_commit_time").unwrap();
            assert!(lsn.as_str().unwrap().contains('/'), "{lsn}");
            assert!(time.as_str().unwrap().ends_with("+00:00"), "{time}");
            r.to_string()
        })
        .collect();
    assert_eq!(
        shapes,
        [
            r#"{"id":1,"v":"a","_op":"insert","_deleted":false}"#,
            r#"{"id":1,"v":"b","_op":"update","_deleted":false}"#,
            r#"{"id":1,"_op":"delete","_deleted":true}"#,
        ]
    );
    assert_eq!(lines[4]["@etl"], "end");
    assert_eq!(lines[4]["positions"]["broker"], "postgres");
}

/// A transaction is never split: with --batch-rows 2, a transaction of 5
/// changes is one batch of 5, the next of 3 another.
#[test]
fn a_transaction_is_never_split_across_batches() {
    let Some(cdc) = Cdc::new("split", "CREATE TABLE t (id int PRIMARY KEY)") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let out = cdc.watch(d, &["--table", &cdc.table("t"), "--create-slot", "--once"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // Two transactions (one batch_execute would be one).
    cdc.sql("INSERT INTO t SELECT generate_series(1, 5)");
    cdc.sql("INSERT INTO t SELECT generate_series(6, 8)");
    let out = cdc.watch(d, &["--once", "--batch-rows", "2"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let rows: Vec<u64> = json_lines(&stdout(&out))
        .iter()
        .filter(|l| l["@etl"] == "end")
        .map(|l| l["rows"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, [5, 3]);
}

/// A load that fails leaves the slot where it was: the run exits 1 and the
/// next one hands the same changes on again, with the same batch id.
#[test]
fn a_failed_load_leaves_the_slot_and_the_changes_come_again() {
    let Some(cdc) = Cdc::new("fail", "CREATE TABLE t (id int PRIMARY KEY, v text)") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let out = cdc.watch(d, &["--table", &cdc.table("t"), "--create-slot", "--once"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    cdc.sql("INSERT INTO t VALUES (1, 'a'), (2, 'b');");
    let before = cdc.confirmed();
    let out = cdc.watch(
        d,
        &[
            "--once",
            "--max-retries",
            "0",
            "--exec",
            "cat > failed.ndjson; exit 3",
        ],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(
        cdc.confirmed(),
        before,
        "the slot moved past a batch that failed"
    );
    let out = cdc.watch(d, &["--once", "--exec", "cat > loaded.ndjson"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let failed = std::fs::read_to_string(d.join("failed.ndjson")).unwrap();
    let loaded = std::fs::read_to_string(d.join("loaded.ndjson")).unwrap();
    assert_eq!(failed, loaded, "the batch sent again differs");
    assert_ne!(cdc.confirmed(), before);
}

/// etl-watch killed after the load committed and before the slot moved:
/// the next run sends the batch again with its id, and etl-load skips it,
/// so even --mode append holds every row once.
#[test]
fn a_batch_loaded_before_a_crash_is_not_loaded_twice() {
    let Some(cdc) = Cdc::new("crash", "CREATE TABLE t (id int PRIMARY KEY, v text)") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let out = cdc.watch(d, &["--table", &cdc.table("t"), "--create-slot", "--once"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    cdc.sql("INSERT INTO t VALUES (1, 'a'), (2, 'b'); UPDATE t SET v = 'c' WHERE id = 1;");
    let before = cdc.confirmed();
    let out = cdc.watch(
        d,
        &[
            "--once",
            "--exec",
            "etl-load -q wh.db --table t && kill -9 $PPID",
        ],
    );
    assert!(!out.status.success(), "{}", stderr(&out));
    assert_eq!(
        cdc.confirmed(),
        before,
        "the slot moved though etl-watch was killed"
    );
    assert_eq!(count(&d.join("wh.db"), "t"), Some(3));
    let out = cdc.watch(d, &["--once", "--exec", "etl-load wh.db --table t"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("etl-load: 3 rows read, 0 written, 0 rejected, 3 skipped in "),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&d.join("wh.db"), "t"), Some(3));
    assert_ne!(cdc.confirmed(), before);
}

/// What cannot be read is refused before anything is, naming what to do.
#[test]
fn a_missing_slot_a_publication_of_two_tables_and_a_table_without_a_key_are_refused() {
    let Some(cdc) = Cdc::new(
        "refuse",
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY); \
         CREATE TABLE nokey (v text);",
    ) else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let server = cdc.url.clone();
    let n = &cdc.name;
    let out = cdc.watch(d, &["--once"]);
    expect(&out, "no publication")
        .code(1)
        .stdout("")
        .stderr(&format!(
            "etl-watch: error: {server}: there is no publication \"{n}\"; hint: --create-slot \
             --table TABLE creates it and the slot (or CREATE PUBLICATION \"{n}\" FOR TABLE ... \
             WITH (publish = 'insert, update, delete'))\n"
        ));
    let out = cdc.watch(
        d,
        &["--once", "--create-slot", "--table", &cdc.table("nokey")],
    );
    expect(&out, "no key").code(1).stdout("").stderr(&format!(
        "etl-watch: error: {server}: table {n}.nokey has no primary key (nor a replica \
             identity): once published, PostgreSQL would refuse its updates and deletes; hint: \
             add a primary key, or ALTER TABLE {n}.nokey REPLICA IDENTITY FULL\n"
    ));
    cdc.sql(&format!("CREATE PUBLICATION {n} FOR TABLE a, b"));
    let out = cdc.watch(d, &["--once"]);
    expect(&out, "two tables")
        .code(1)
        .stdout("")
        .stderr(&format!(
            "etl-watch: error: {server}: publication \"{n}\" publishes 2 tables ({n}.a, {n}.b); \
             etl-watch reads one table per publication and slot, so that each batch goes to one \
             target table\n"
        ));
    cdc.sql(&format!(
        "DROP PUBLICATION {n}; CREATE PUBLICATION {n} FOR TABLE a"
    ));
    let out = cdc.watch(d, &["--once"]);
    expect(&out, "no slot").code(1).stdout("").stderr(&format!(
        "etl-watch: error: {server}: there is no replication slot \"{n}\"; hint: \
             --create-slot creates it\n"
    ));
}

/// The machine's own server runs with wal_level = replica: refused with
/// what to change.
#[test]
fn a_server_without_logical_decoding_is_refused() {
    let Some(url) = pg_url() else {
        return;
    };
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let level: String = client.query_one("SHOW wal_level", &[]).unwrap().get(0);
    if level == "logical" {
        eprintln!("SKIPPED: the test server already has wal_level = logical");
        return;
    }
    let dir = tempdir();
    let mut c = cmd(WATCH, dir.path());
    c.args([
        &url,
        "--slot",
        "s",
        "--publication",
        "p",
        "--checkpoint",
        "c.json",
        "--once",
    ]);
    let out = run(c);
    expect(&out, "wal_level")
        .code(1)
        .stdout("")
        .stderr(&format!(
            "etl-watch: error: {url}: wal_level is {level}; change data capture needs wal_level = \
         logical (set it in postgresql.conf and restart the server)\n"
        ));
}

/// A password in the URL is never shown, in messages or the checkpoint.
#[test]
fn the_password_in_the_url_is_never_shown() {
    let Some(cdc) = Cdc::new("secret", "CREATE TABLE t (id int PRIMARY KEY)") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let url = cdc.url.replace("postgres@", "postgres:cdc-s3cret@");
    let t = cdc.table("t");
    for args in [
        vec!["--table", &t, "--create-slot", "--once", "-v"],
        vec!["--once", "--log-json"],
        vec!["--once", "--table", "nope"],
    ] {
        let mut c = cmd(WATCH, d);
        c.args([
            &url,
            "--slot",
            &cdc.name,
            "--publication",
            &cdc.name,
            "--checkpoint",
            "c.json",
        ])
        .args(&args);
        let out = run(c);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!all.contains("cdc-s3cret"), "{all}");
        cdc.sql("INSERT INTO t SELECT coalesce(max(id), 0) + 1 FROM t");
    }
    let checkpoint = std::fs::read_to_string(d.join("c.json")).unwrap();
    assert!(!checkpoint.contains("cdc-s3cret"), "{checkpoint}");
}

/// The MariaDB with a row-based binary log: its test database's URL once
/// it is up; `None` (loudly) when it cannot be started, unless
/// ETLKIT_REQUIRE_CDC is set.
fn binlog_server() -> Option<String> {
    server()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cdc-servers.sh");
    let out = std::process::Command::new(&script)
        .arg("mysql-url")
        .output()
        .expect("cdc-servers.sh runs");
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// One test's table in the binary-logged MariaDB, dropped at the end.
struct Binlog {
    url: String,
    table: String,
}

impl Binlog {
    fn new(test: &str, columns: &str) -> Option<Binlog> {
        let url = binlog_server()?;
        let table = format!("cdc_{test}_{}", std::process::id());
        let b = Binlog { url, table };
        b.sql(&format!(
            "DROP TABLE IF EXISTS {t}; CREATE TABLE {t} ({columns}) DEFAULT CHARSET = utf8mb4",
            t = b.table
        ));
        Some(b)
    }

    fn sql(&self, sql: &str) {
        let opts = mysql::Opts::from_url(&self.url).expect("a MySQL URL");
        let mut c = mysql::Conn::new(opts).expect("connect");
        mysql::prelude::Queryable::query_drop(&mut c, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn watch(&self, dir: &Path, args: &[&str]) -> std::process::Output {
        let mut c = cmd(WATCH, dir);
        c.args([
            &self.url,
            "--table",
            &self.table,
            "--checkpoint",
            "binlog.json",
        ])
        .args(args);
        run(c)
    }

    fn extract(&self, dir: &Path) -> Vec<serde_json::Value> {
        extract_records(
            dir,
            &[
                &self.url,
                "--query",
                &format!("SELECT * FROM {} ORDER BY id", self.table),
            ],
        )
    }
}

impl Drop for Binlog {
    fn drop(&mut self) {
        if let Ok(opts) = mysql::Opts::from_url(&self.url)
            && let Ok(mut c) = mysql::Conn::new(opts)
        {
            let _ = mysql::prelude::Queryable::query_drop(
                &mut c,
                format!("DROP TABLE IF EXISTS {}", self.table),
            );
        }
    }
}

/// From the binary log, every change reaches the target once, in commit
/// order, each value as etl-extract gives it (an unsigned BIGINT at its
/// maximum, a latin1 column, ENUM, SET, YEAR, JSON, bytes); a key that
/// moves deletes its old row; a second run finds nothing.
#[test]
fn binlog_changes_reach_the_target_once_in_commit_order() {
    let Some(b) = Binlog::new(
        "order",
        "id int PRIMARY KEY, big bigint unsigned, amount decimal(12,2), d date, dt datetime(3), \
         ts timestamp(6) NULL, y year, e enum('a','B c'), s set('x','Y','z'), j json, \
         b blob, f double, flag bit(1), note varchar(20), old varchar(20) CHARACTER SET latin1, \
         bin binary(4), hidden int INVISIBLE DEFAULT 7",
    ) else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    // The first run starts at the log's end.
    let out = b.watch(d, &["--once"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    b.sql(&format!(
        "INSERT INTO {t} VALUES (1, 18446744073709551615, 12.50, '2026-01-02', \
           '2026-01-02 03:04:05.123', '2026-01-02 03:04:05.5', 2024, 'B c', 'x,Y', \
           '{{\"a\": [1, 2.5]}}', x'00ff', 0.1, b'1', 'hé \"q\"', 'café €', x'01000000'), \
           (2, 0, 0.10, NULL, NULL, NULL, 0, 'a', '', NULL, NULL, NULL, b'0', NULL, NULL, x'00'), \
           (3, NULL, 7, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'x', NULL, NULL)",
        t = b.table
    ));
    b.sql(&format!(
        "START TRANSACTION; UPDATE {t} SET amount = 13.75 WHERE id = 1; \
         DELETE FROM {t} WHERE id = 2; COMMIT",
        t = b.table
    ));
    // A new binary log file between two transactions.
    b.sql("FLUSH BINARY LOGS");
    b.sql(&format!("UPDATE {t} SET id = 30 WHERE id = 3", t = b.table));
    b.sql(&format!(
        "INSERT INTO {t} (id, amount) VALUES (2, 99.99)",
        t = b.table
    ));
    let load = "tee -a sent.ndjson | etl-load wh.db --table t --mode upsert --key id --delete-when _deleted";
    let out = b.watch(d, &["--once", "--exec", load]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let sent = records(&std::fs::read_to_string(d.join("sent.ndjson")).unwrap());
    let ops: Vec<String> = sent
        .iter()
        .map(|r| format!("{} {}", r["_op"].as_str().unwrap(), r["id"]))
        .collect();
    assert_eq!(
        ops,
        [
            "insert 1",
            "insert 2",
            "insert 3",
            "update 1",
            "delete 2",
            "delete 3",
            "update 30",
            "insert 2"
        ]
    );
    let source = b.extract(d);
    let target = extract_records(
        d,
        &[
            "wh.db",
            "--query",
            "SELECT id, big, amount, d, dt, ts, y, e, s, j, b, f, flag, note, old, bin FROM t \
             ORDER BY id",
        ],
    );
    assert_eq!(source.len(), 3);
    assert_same_records(&target, &source, "the target after the changes");
    let again = b.watch(d, &["--once", "--exec", "cat >> again.ndjson"]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert!(
        !d.join("again.ndjson").exists(),
        "a second run handed on a batch"
    );
}

/// etl-watch killed after the load committed and before its checkpoint
/// moved: the batch comes again with its id and etl-load skips it, so even
/// --mode append holds every change once. A transaction is one batch
/// however small --batch-rows is.
#[test]
fn binlog_batch_loaded_before_a_crash_is_not_loaded_twice_and_never_split() {
    let Some(b) = Binlog::new("crash", "id int PRIMARY KEY, v text") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let out = b.watch(d, &["--once"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    b.sql(&format!(
        "INSERT INTO {t} VALUES (1, 'a'), (2, 'b'), (3, 'c')",
        t = b.table
    ));
    b.sql(&format!("UPDATE {t} SET v = 'd' WHERE id = 1", t = b.table));
    let out = b.watch(
        d,
        &[
            "--once",
            "--batch-rows",
            "2",
            "--exec",
            "etl-load -q wh.db --table t && kill -9 $PPID",
        ],
    );
    assert!(!out.status.success(), "{}", stderr(&out));
    assert_eq!(
        count(&d.join("wh.db"), "t"),
        Some(3),
        "the first batch: one transaction of 3"
    );
    let out = b.watch(
        d,
        &[
            "--once",
            "--batch-rows",
            "2",
            "--exec",
            "etl-load wh.db --table t",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("etl-load: 3 rows read, 0 written, 0 rejected, 3 skipped in "),
        "{err}"
    );
    assert!(
        err.contains("etl-load: 1 rows read, 1 written, 0 rejected in "),
        "{err}"
    );
    assert_eq!(count(&d.join("wh.db"), "t"), Some(4));
}

/// A server that does not log whole rows, and a table without a primary
/// key, are refused with what to change.
#[test]
fn binlog_settings_that_cannot_give_exact_rows_are_refused() {
    let Some(b) = Binlog::new("refuse", "v text") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let out = b.watch(d, &["--once"]);
    expect(&out, "no key").code(1).stdout("").stderr(&format!(
        "etl-watch: error: {}: table {} has no primary key: its deletes and updates could not \
         be applied to one row; hint: add a primary key\n",
        b.url, b.table
    ));
    let Some(url) = mysql_url() else {
        return;
    };
    let mut c = mysql::Conn::new(mysql::Opts::from_url(&url).unwrap()).unwrap();
    let log_bin: Option<(String, String)> =
        mysql::prelude::Queryable::query_first(&mut c, "SHOW GLOBAL VARIABLES LIKE 'log_bin'")
            .unwrap();
    if log_bin.is_some_and(|(_, v)| v == "ON") {
        eprintln!("SKIPPED: the test MariaDB already writes a binary log");
        return;
    }
    let mut c = cmd(WATCH, d);
    c.args([&url, "--table", "t", "--checkpoint", "x.json", "--once"]);
    let out = run(c);
    expect(&out, "log_bin off")
        .code(1)
        .stdout("")
        .stderr(&format!(
            "etl-watch: error: {url}: log_bin is OFF; change data capture needs log_bin = ON \
         (binary log on, whole rows with their column metadata, so that every value, an \
         unsigned BIGINT included, reads back exactly)\n"
        ));
}

/// A slot dropped after changes were loaded is not silently made again
/// (the changes made meanwhile are in no slot): refused, saying what to
/// do; --create-slot --restart-from end starts a new one from now.
#[test]
fn a_slot_that_is_gone_after_loads_is_refused_until_restarted_from_the_end() {
    let Some(cdc) = Cdc::new("gone", "CREATE TABLE t (id int PRIMARY KEY)") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let t = cdc.table("t");
    let out = cdc.watch(d, &["--table", &t, "--create-slot", "--once"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    cdc.sql("INSERT INTO t VALUES (1)");
    let out = cdc.watch(d, &["--once", "--exec", "etl-load -q wh.db --table t"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let checkpoint: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("cdc.json")).unwrap()).unwrap();
    let acked = checkpoint["state"]["acked"].as_str().unwrap().to_string();
    cdc.client()
        .execute("SELECT pg_drop_replication_slot($1)", &[&cdc.name])
        .unwrap();
    cdc.sql("INSERT INTO t VALUES (2)");
    let server = &cdc.url;
    let n = &cdc.name;
    let out = cdc.watch(d, &["--table", &t, "--create-slot", "--once"]);
    expect(&out, "gone").code(1).stdout("").stderr(&format!(
        "etl-watch: error: {server}: replication slot \"{n}\" is gone, but the checkpoint shows \
         changes up to {acked} were loaded: changes made since it went are in no slot; hint: \
         load the table again in full, then --create-slot --restart-from end makes a new slot \
         that starts now\n"
    ));
    let out = cdc.watch(
        d,
        &[
            "--table",
            &t,
            "--create-slot",
            "--restart-from",
            "end",
            "--once",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    cdc.sql("INSERT INTO t VALUES (3)");
    let out = cdc.watch(d, &["--once", "--exec", "etl-load -q wh.db --table t"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        extract_records(d, &["wh.db", "--query", "SELECT id FROM t ORDER BY id"]),
        [serde_json::json!({"id": 1}), serde_json::json!({"id": 3})]
    );
}

/// A publication that leaves out deletes (or updates, or inserts) would
/// leave the target with rows the source no longer has: refused, saying
/// how to publish them.
#[test]
fn a_publication_that_leaves_out_deletes_is_refused() {
    let Some(cdc) = Cdc::new("nodel", "CREATE TABLE t (id int PRIMARY KEY)") else {
        return;
    };
    let dir = tempdir();
    let n = &cdc.name;
    cdc.sql(&format!(
        "CREATE PUBLICATION {n} FOR TABLE t WITH (publish = 'insert, update')"
    ));
    let out = cdc.watch(
        dir.path(),
        &["--once", "--create-slot", "--table", &cdc.table("t")],
    );
    expect(&out, "no deletes")
        .code(1)
        .stdout("")
        .stderr(&format!(
            "etl-watch: error: {}: publication \"{n}\" does not publish every insert, update and \
         delete, so the target would miss some; hint: ALTER PUBLICATION \"{n}\" SET (publish = \
         'insert, update, delete')\n",
            cdc.url
        ));
}

/// A zero date in the binary log is handed on as MySQL shows it, for the
/// load to reject with its reason: never read as 1970, and the watcher
/// does not stop on it.
#[test]
fn binlog_zero_dates_are_handed_on_as_mysql_shows_them() {
    let Some(b) = Binlog::new("zero", "id int PRIMARY KEY, d date, ts timestamp NULL") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let out = b.watch(d, &["--once"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    b.sql(&format!(
        "SET SESSION sql_mode = ''; INSERT INTO {} VALUES (1, '0000-00-00', '0000-00-00 00:00:00')",
        b.table
    ));
    let out = b.watch(d, &["--once"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let records = records(&stdout(&out));
    assert_eq!(records.len(), 1, "{}", stdout(&out));
    assert_eq!(records[0]["d"], "0000-00-00");
    assert_eq!(records[0]["ts"], "0000-00-00T00:00:00");
}
