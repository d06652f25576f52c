//! PostgreSQL as source and target: the same guarantees as SQLite, and
//! every type round-trips. Skipped loudly without a server; required in CI.

use crate::common::*;

mod types;

fn load(pg: &PgSchema, dir: &std::path::Path, args: &[&str], input: &str) -> std::process::Output {
    let mut c = cmd(LOAD, dir);
    c.arg(&pg.url).args(["--schema-name", &pg.name]).args(args);
    run_with_input(c, input.as_bytes())
}

fn framed(records: &[&str]) -> String {
    let mut s = String::from("{\"@etl\":\"begin\",\"stream\":\"s\"}\n");
    for r in records {
        s.push_str(r);
        s.push('\n');
    }
    s.push_str(&format!(
        "{{\"@etl\":\"end\",\"stream\":\"s\",\"rows\":{}}}\n",
        records.len()
    ));
    s
}

#[test]
fn every_type_round_trips_through_sqlite_and_back() {
    let Some(pg) = PgSchema::new("types") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    pg.client()
        .batch_execute(&format!(
            "CREATE TABLE {s}.src (id bigint PRIMARY KEY, amount numeric(30,10), flag boolean, name text,
               day date, at timestamp, at_tz timestamptz, uid uuid, doc jsonb, small integer, ratio double precision);
             INSERT INTO {s}.src VALUES
               (9007199254740993001, 12345678901234567890.0123456789, true, 'Café \"東京\"\n2nd line', '2026-11-01',
                '2026-11-01 09:15:00.5', '2026-11-01 09:15:00+02', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
                '{{\"a\": [1, 2.50, null], \"b\": {{\"c\": \"x\"}}}}', -7, 0.1),
               (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
             CREATE TABLE {s}.dst (id bigint PRIMARY KEY, amount numeric(30,10), flag boolean, name text,
               day date, at timestamp, at_tz timestamptz, uid uuid, doc jsonb, small integer, ratio double precision);",
            s = pg.name
        ))
        .expect("setup");
    let url = &pg.url;
    let s = &pg.name;
    let out = bash(
        &format!(
            "etl-extract -q '{url}' --schema-name {s} --table src | etl-load -q mid.db --table mid && \
             etl-extract -q mid.db --table mid | etl-load -q '{url}' --schema-name {s} --table dst"
        ),
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let cols = "id, amount, flag, name, day, at, at_tz, uid, doc, small, ratio";
    assert_eq!(
        pg.rows(&format!("SELECT {cols} FROM {s}.src ORDER BY id")),
        pg.rows(&format!("SELECT {cols} FROM {s}.dst ORDER BY id")),
    );
    let first = extract_records(d, &[url, "--schema-name", s, "--table", "dst"]);
    let row = first
        .iter()
        .find(|r| r["id"].as_i64() == Some(9_007_199_254_740_993_001))
        .expect("row");
    assert_eq!(row["amount"].to_string(), "12345678901234567890.0123456789");
    assert_eq!(row["at_tz"], "2026-11-01T07:15:00+00:00");
    assert_eq!(row["doc"]["a"][1].to_string(), "2.50");
}

#[test]
fn modes_truncation_and_rejects() {
    let Some(pg) = PgSchema::new("modes") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let input = framed(&[r#"{"id":1,"v":"a"}"#, r#"{"id":2,"v":"b"}"#]);
    for _ in 0..2 {
        assert_eq!(code(&load(&pg, d, &["--table", "t"], &input)), 0);
    }
    assert_eq!(pg.count("t"), 4, "append twice doubles");
    for _ in 0..2 {
        let out = load(&pg, d, &["--table", "t", "--mode", "replace"], &input);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    assert_eq!(pg.count("t"), 2, "replace twice keeps one copy");

    let cut = "{\"@etl\":\"begin\",\"stream\":\"s\"}\n{\"id\":3,\"v\":\"c\"}\n";
    for mode in ["append", "replace"] {
        let out = load(&pg, d, &["--table", "t", "--mode", mode], cut);
        assert_eq!(code(&out), 1);
        assert!(
            stderr(&out).contains("upstream ended early after 1 rows"),
            "{}",
            stderr(&out)
        );
        assert_eq!(pg.count("t"), 2, "{mode}: a cut stream commits nothing");
    }
    let out = load(&pg, d, &["--table", "t", "--mode", "replace"], "");
    assert_eq!(code(&out), 1);
    assert_eq!(pg.count("t"), 2, "empty input never empties the table");

    let bad = framed(&[
        r#"{"id":4,"v":"d"}"#,
        r#"{"id":"x","v":"e"}"#,
        r#"{"id":5,"v":"f"}"#,
    ]);
    let out = load(&pg, d, &["--table", "t"], &bad);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out)
            .contains("stdin:3: column \"id\": text value \"x\" does not fit a bigint column"),
        "{}",
        stderr(&out)
    );
    assert_eq!(pg.count("t"), 2);
    let out = load(&pg, d, &["--table", "t", "--rejects", "r.ndjson"], &bad);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(pg.count("t"), 4);

    let drift = framed(&[r#"{"id":6,"v":"g","extra":1}"#]);
    let out = load(
        &pg,
        d,
        &[
            "--table",
            "t",
            "--schema",
            "strict",
            "--rejects",
            "r.ndjson",
        ],
        &drift,
    );
    assert_eq!(code(&out), 3);
    let out = load(&pg, d, &["--table", "t"], &drift);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        pg.rows(&format!("SELECT extra FROM {}.t WHERE id = 6", pg.name)),
        ["1"]
    );
}

#[test]
fn upsert_twice_equals_upsert_once() {
    let Some(pg) = PgSchema::new("upsert") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let input = framed(&[
        r#"{"id":1,"v":"a","gone":false}"#,
        r#"{"id":2,"v":"b","gone":false}"#,
        r#"{"id":1,"v":"a2","gone":false}"#,
    ]);
    let args = [
        "--table",
        "u",
        "--mode",
        "upsert",
        "--key",
        "id",
        "--delete-when",
        "gone",
    ];
    assert_eq!(code(&load(&pg, d, &args, &input)), 0);
    let once = pg.rows(&format!("SELECT * FROM {}.u ORDER BY id", pg.name));
    assert_eq!(
        once,
        ["1|a2|false", "2|b|false"],
        "the last record for a key wins"
    );
    assert_eq!(code(&load(&pg, d, &args, &input)), 0);
    assert_eq!(
        pg.rows(&format!("SELECT * FROM {}.u ORDER BY id", pg.name)),
        once
    );
    let delete = framed(&[r#"{"id":2,"v":"b","gone":true}"#]);
    assert_eq!(code(&load(&pg, d, &args, &delete)), 0);
    assert_eq!(
        pg.rows(&format!("SELECT id FROM {}.u ORDER BY id", pg.name)),
        ["1"]
    );
}

#[test]
fn incremental_state_commits_with_the_data() {
    let Some(pg) = PgSchema::new("state") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let (url, s) = (&pg.url, &pg.name);
    write(d, "src.csv", b"id,t\n1,2026-11-01\n2,2026-11-02\n");
    let job = format!(
        "etl-extract src.csv --cursor t --state '{url}' --schema-name {s} \
         | etl-load '{url}' --schema-name {s} --table inc --mode upsert --key id"
    );
    assert_eq!(code(&bash(&job, d)), 0);
    let out = bash(&job, d);
    assert!(
        stderr(&out).contains("2 rows read, 0 written, 0 rejected, 2 skipped"),
        "{}",
        stderr(&out)
    );
    write(
        d,
        "src.csv",
        b"id,t\n1,2026-11-01\n2,2026-11-02\n3,2026-11-03\n",
    );
    let cut = bash(
        &format!(
            "etl-extract src.csv --cursor t --state '{url}' --schema-name {s} | head -n 1 \
             | etl-load '{url}' --schema-name {s} --table inc --mode upsert --key id"
        ),
        d,
    );
    assert_ne!(code(&cut), 0);
    assert_eq!(pg.count("inc"), 2);
    let out = bash(&job, d);
    assert!(
        stderr(&out).contains("3 rows read, 1 written"),
        "{}",
        stderr(&out)
    );
    assert_eq!(pg.count("inc"), 3);
    let bookmark = pg.rows(&format!(
        "SELECT bookmark::json->>'value' FROM {s}._etl_state WHERE stream = 'src'"
    ));
    assert_eq!(bookmark, ["2026-11-03"]);

    // An extract read before another run moved the bookmark is refused.
    write(
        d,
        "src.csv",
        b"id,t\n1,2026-11-01\n2,2026-11-02\n3,2026-11-03\n4,2026-11-04\n",
    );
    let saved = bash(
        &format!("etl-extract -q src.csv --cursor t --state '{url}' --schema-name {s} > a.ndjson"),
        d,
    );
    assert_eq!(code(&saved), 0);
    assert_eq!(code(&bash(&job, d)), 0);
    let mut c = cmd(LOAD, d);
    c.args([
        url.as_str(),
        "a.ndjson",
        "--schema-name",
        s,
        "--table",
        "inc",
    ]);
    let out = run(c);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("another run loaded the stream meanwhile"),
        "{}",
        stderr(&out)
    );
    assert_eq!(pg.count("inc"), 4);
}

#[test]
fn passwords_never_appear_in_output() {
    let Some(pg) = PgSchema::new("secret") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let secret = "Sup3rS3cret-pw";
    let with_pw = pg.url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{secret}@"),
        1,
    );
    let bad_port = with_pw.replace(":5432/", ":1/");
    // An unencoded '@' in the password: the URL's user info runs to the
    // last '@' of its authority, and all of it stays hidden.
    let at_pw = pg.url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:p@{secret}@"),
        1,
    );
    let runs = [
        format!("etl-extract '{at_pw}' --table t"),
        format!("etl-extract --log-json '{at_pw}' --query 'SELECT 1 AS x'"),
        format!(
            "echo '{{\"id\":1}}' | etl-load --log-json '{at_pw}' --schema-name {} --table t",
            pg.name
        ),
        format!("echo '{{\"id\":1}}' | etl-load -v '{at_pw}' --table t"),
        format!("etl-extract '{with_pw}' --table missing_table"),
        format!("etl-extract '{bad_port}' --table t"),
        format!(
            "etl-extract -v '{with_pw}' --schema-name {} --query 'SELECT 1 AS x'",
            pg.name
        ),
        format!(
            "echo '{{\"id\":\"x\"}}' | etl-load '{with_pw}' --schema-name {} --table t --mode upsert --key id",
            pg.name
        ),
        format!("echo '{{\"id\":1}}' | etl-load -v '{bad_port}' --table t"),
        format!(
            "etl-extract -q '{with_pw}' --query 'SELECT 1 AS x' | etl-load -v '{with_pw}' --schema-name {} --table t",
            pg.name
        ),
    ];
    for script in &runs {
        let out = bash(script, d);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            !all.contains(secret),
            "password leaked by `{script}`:\n{all}"
        );
    }
}

#[test]
fn a_pgpass_file_others_can_read_is_ignored_with_a_warning() {
    let Some(pg) = PgSchema::new("pgpass") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let passfile = write(d, "pgpass", b"*:*:*:*:Sup3rS3cret-pw\n");
    for (mode, warning) in [
        (
            0o644,
            format!(
                "etl-extract: warning: password file {} has group or world access (mode 0644); \
                 permissions should be u=rw (0600) or less: it is ignored\n",
                passfile.display()
            ),
        ),
        (0o600, String::new()),
    ] {
        std::fs::set_permissions(
            &passfile,
            std::os::unix::fs::PermissionsExt::from_mode(mode),
        )
        .expect("chmod");
        let mut c = cmd(EXTRACT, d);
        c.env("PGPASSFILE", &passfile)
            .args([pg.url.as_str(), "--query", "SELECT 1 AS one", "-q"]);
        let out = run(c);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(stderr(&out), warning, "mode {mode:o}");
    }
}

#[test]
fn ambiguous_passwords_in_connection_urls_are_refused_and_never_shown() {
    let dir = tempdir();
    let d = dir.path();
    // Unencoded '@' after '/' or '?' in the password: libpq would take the
    // user info to end at the first '@' and connect to a host named by the
    // rest of the password.
    let secrets = ["Sup3r", "S3cr3t", "c%r#e", "S:e"];
    let urls = [
        "postgres://postgres:Sup3r@S3cr3t/pw?x@127.0.0.1:5432/test",
        "postgres://postgres:S:e/c%r#e?t@127.0.0.1:5432/test",
        "postgres://postgres:Sup3r@S3cr3t@127.0.0.1:5432/test",
    ];
    let refusal = |program: &str| {
        format!(
            "{program}: error: a postgres:// URL holds an '@' after a '/', '?' or '#', or more \
             than one '@': where its password ends is ambiguous, so it is not used (nor shown)\n\
             hint: percent-encode these characters in the user name, the password and the \
             query: @ as %40, / as %2F, ? as %3F, # as %23, : as %3A\n"
        )
    };
    for url in urls {
        let runs = [
            format!("etl-extract '{url}' --table t"),
            format!("etl-extract --log-json '{url}' --query 'SELECT 1 AS x'"),
            format!("echo '{{\"id\":1}}' | etl-load '{url}' --table t"),
            format!("echo '{{\"id\":1}}' | etl-load --log-json -v '{url}' --table t"),
            format!("echo '{{\"id\":1}}' | etl-load w.db --table t --state '{url}'"),
            format!("etl-extract -q '{url}' --table t | etl-load --log-json w.db --table t"),
            format!("etl-extract w.db --table t --cursor id --state '{url}'"),
        ];
        for script in &runs {
            let out = bash(script, d);
            let all = format!("{}{}", stdout(&out), stderr(&out));
            for secret in secrets {
                assert!(!all.contains(secret), "`{script}` shows {secret}:\n{all}");
            }
            assert_ne!(code(&out), 0, "{script}");
        }
        let out = bash(&format!("etl-extract '{url}' --table t"), d);
        assert_eq!(code(&out), 2);
        assert_eq!(stderr(&out), refusal("etl-extract"));
        let out = bash(&format!("etl-load '{url}' --table t < /dev/null"), d);
        assert_eq!(code(&out), 2);
        assert_eq!(stderr(&out), refusal("etl-load"));
    }
    // The run history the failed loads left holds none of it either.
    let conn = rusqlite::Connection::open(d.join("w.db")).expect("open");
    let history: Vec<String> = conn
        .prepare("SELECT coalesce(error, '') FROM _etl_runs")
        .expect("runs")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert!(!history.is_empty());
    for secret in secrets {
        assert!(history.iter().all(|e| !e.contains(secret)), "{history:?}");
    }
    // MySQL and broker URLs take the same rule.
    let out = bash(
        "etl-extract 'mysql://u:Sup3r@S3cr3t/x@127.0.0.1/test' --table t",
        d,
    );
    assert_eq!(code(&out), 2);
    assert!(!stderr(&out).contains("S3cr3t"), "{}", stderr(&out));
    let out = bash(
        "etl-watch 'redis://:Sup3r@S3cr3t/x@127.0.0.1:6379' --key k --group g \
         --checkpoint c --once",
        d,
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(!stderr(&out).contains("S3cr3t"), "{}", stderr(&out));
}

#[test]
fn hostile_names_load_safely() {
    let Some(pg) = PgSchema::new("names") else {
        return;
    };
    let dir = tempdir();
    let table = r#"x"; DROP TABLE t; --"#;
    let out = load(
        &pg,
        dir.path(),
        &["--table", table],
        "{\"a b\":1,\"select\":2,\"q\\\"uote\":3}\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let quoted = format!("\"{}\"", table.replace('"', "\"\""));
    assert_eq!(
        pg.rows(&format!("SELECT * FROM {}.{quoted}", pg.name)),
        ["1|2|3"]
    );
}

#[test]
fn upsert_and_append_touch_only_the_columns_the_input_names() {
    let Some(pg) = PgSchema::new("subset") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    pg.client()
        .batch_execute(&format!(
            "CREATE TABLE {}.c (id bigint PRIMARY KEY, a text, b text, created text NOT NULL DEFAULT 'now')",
            pg.name
        ))
        .expect("table");
    let args = ["--table", "c", "--mode", "upsert", "--key", "id"];
    assert_eq!(
        code(&load(&pg, d, &args, "{\"id\":1,\"a\":\"x\",\"b\":\"y\"}\n")),
        0
    );
    let out = load(&pg, d, &args, "{\"id\":1,\"a\":\"z\"}\n");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        pg.rows(&format!("SELECT * FROM {}.c", pg.name)),
        ["1|z|y|now"]
    );
    let out = load(&pg, d, &["--table", "c"], "{\"id\":2,\"a\":\"w\"}\n");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        pg.rows(&format!("SELECT * FROM {}.c WHERE id = 2", pg.name)),
        ["2|w||now"]
    );
}

#[test]
fn values_that_a_column_would_change_are_rejected() {
    let Some(pg) = PgSchema::new("modifiers") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    pg.client()
        .batch_execute(&format!(
            "CREATE TABLE {}.m (price numeric(10,2), r real, at timestamp)",
            pg.name
        ))
        .expect("table");
    for (record, fragment) in [
        ("{\"price\":1.234}", "does not fit a numeric(10,2) column"),
        ("{\"r\":16777217}", "does not fit a real column"),
        (
            "{\"at\":\"2026-11-01T09:00:00+02:00\"}",
            "carries a UTC offset",
        ),
    ] {
        let out = load(&pg, d, &["--table", "m"], &format!("{record}\n"));
        assert_eq!(code(&out), 1, "{record}");
        assert!(
            stderr(&out).contains(fragment),
            "{record}: {}",
            stderr(&out)
        );
    }
    assert_eq!(pg.count("m"), 0);
}

#[test]
fn text_cursors_compare_by_code_point_like_the_bookmark() {
    let Some(pg) = PgSchema::new("collate") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let (url, s) = (&pg.url, &pg.name);
    pg.client()
        .batch_execute(&format!(
            "CREATE TABLE {s}.src (k text); INSERT INTO {s}.src VALUES ('B'), ('a')"
        ))
        .expect("table");
    let job = format!(
        "etl-extract '{url}' --schema-name {s} --table src --cursor k --state '{url}' \
         | etl-load '{url}' --schema-name {s} --table dst"
    );
    assert_eq!(code(&bash(&job, d)), 0);
    pg.client()
        .batch_execute(&format!("INSERT INTO {s}.src VALUES ('b')"))
        .expect("insert");
    let out = bash(&job, d);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        pg.rows(&format!("SELECT k FROM {s}.dst ORDER BY k COLLATE \"C\"")),
        ["B", "a", "b"]
    );
}

/// Rows of `table` in both stores, as extracted records ordered by `id`.
fn both_stores(pg: &PgSchema, d: &std::path::Path, table: &str) -> [Vec<serde_json::Value>; 2] {
    let sql = |schema: &str| format!("SELECT * FROM {schema}{table} ORDER BY id");
    [
        extract_records(d, &["w.db", "--query", &sql("")]),
        extract_records(d, &[&pg.url, "--query", &sql(&format!("{}.", pg.name))]),
    ]
}

/// Loads `input` into the same table of SQLite (w.db) and PostgreSQL.
fn load_both(pg: &PgSchema, d: &std::path::Path, args: &[&str], input: &str) {
    let out = load(pg, d, args, input);
    assert_eq!(code(&out), 0, "PostgreSQL: {}", stderr(&out));
    let mut c = cmd(LOAD, d);
    c.arg("w.db").args(args);
    let out = run_with_input(c, input.as_bytes());
    assert_eq!(code(&out), 0, "SQLite: {}", stderr(&out));
}

#[test]
fn upsert_keeps_fields_a_record_omits() {
    let Some(pg) = PgSchema::new("omit") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let s = &pg.name;
    let args = ["--table", "h", "--mode", "upsert", "--key", "id"];
    load_both(&pg, d, &args, "{\"id\":1,\"a\":\"a1\",\"b\":\"b1\"}\n");
    let second = "{\"id\":1,\"a\":\"A1\"}\n{\"id\":2,\"a\":\"A2\",\"b\":\"B2\"}\n";
    load_both(&pg, d, &args, second);
    assert_eq!(
        pg.rows(&format!("SELECT * FROM {s}.h ORDER BY id")),
        ["1|A1|b1", "2|A2|B2"],
        "an omitted field keeps its stored value"
    );
    let [lite, post] = both_stores(&pg, d, "h");
    assert_same_records(&lite, &post, "SQLite and PostgreSQL agree");

    // Within one run: records of one key carrying different fields; the
    // last record carrying a field wins for that field.
    let args = ["--table", "w", "--mode", "upsert", "--key", "id"];
    let mixed = "{\"id\":1,\"a\":\"a1\",\"b\":\"b1\"}\n{\"id\":1,\"a\":\"A1\"}\n\
                 {\"id\":3,\"b\":\"x\"}\n{\"id\":3,\"a\":\"y\"}\n{\"id\":4}\n\
                 {\"id\":5,\"a\":\"p\",\"b\":\"q\"}\n{\"id\":5,\"b\":null}\n";
    load_both(&pg, d, &args, mixed);
    let once = pg.rows(&format!("SELECT * FROM {s}.w ORDER BY id"));
    assert_eq!(once, ["1|A1|b1", "3|y|x", "4||", "5|p|"]);
    load_both(&pg, d, &args, mixed);
    assert_eq!(
        pg.rows(&format!("SELECT * FROM {s}.w ORDER BY id")),
        once,
        "upsert twice equals upsert once"
    );
    let [lite, post] = both_stores(&pg, d, "w");
    assert_same_records(&lite, &post, "SQLite and PostgreSQL agree");

    // A delete in the middle of a run: what follows starts a fresh row.
    let args = [
        "--table",
        "g",
        "--mode",
        "upsert",
        "--key",
        "id",
        "--delete-when",
        "gone",
    ];
    load_both(
        &pg,
        d,
        &args,
        "{\"id\":1,\"a\":\"a\",\"b\":\"b\",\"gone\":false}\n{\"id\":2,\"a\":\"c\",\"b\":\"d\",\"gone\":false}\n",
    );
    let churn = "{\"id\":1,\"b\":\"B\"}\n{\"id\":1,\"gone\":true}\n{\"id\":1,\"a\":\"new\"}\n\
                 {\"id\":2,\"a\":\"C\"}\n";
    load_both(&pg, d, &args, churn);
    assert_eq!(
        pg.rows(&format!("SELECT * FROM {s}.g ORDER BY id")),
        ["1|new||", "2|C|d|false"]
    );
    let [lite, post] = both_stores(&pg, d, "g");
    assert_same_records(&lite, &post, "SQLite and PostgreSQL agree");
}

#[test]
fn floats_that_cannot_be_stored_exactly_are_rejects() {
    let Some(pg) = PgSchema::new("floats") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    pg.client()
        .batch_execute(&format!(
            "CREATE TABLE {}.f (id bigint, d double precision, r real, n numeric, m numeric(5,2))",
            pg.name
        ))
        .expect("table");
    let input = framed(&[
        r#"{"id":1,"d":1e-400}"#,
        r#"{"id":2,"d":1e400}"#,
        r#"{"id":3,"d":1.2345678901234e-315}"#,
        r#"{"id":4,"r":1e-50}"#,
        r#"{"id":5,"n":1e-20000}"#,
        r#"{"id":6,"m":12345.6}"#,
        r#"{"id":7,"d":1.5e-310,"r":0.5,"n":1e-400,"m":123.45}"#,
    ]);
    let out = load(&pg, d, &["--table", "f", "--rejects", "r.ndjson"], &input);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let rejects = json_lines(&std::fs::read_to_string(d.join("r.ndjson")).expect("rejects"));
    let reasons: Vec<&str> = rejects
        .iter()
        .map(|r| r["reason"].as_str().expect("reason"))
        .collect();
    assert_eq!(
        reasons,
        [
            "column \"d\": number value 1e-400 does not fit a double precision column",
            "column \"d\": number value 1e400 does not fit a double precision column",
            "column \"d\": number value 1.2345678901234e-315 does not fit a double precision column",
            "column \"r\": number value 1e-50 does not fit a real column",
            "column \"n\": number value 1e-20000 does not fit a numeric column",
            "column \"m\": number value 12345.6 does not fit a numeric(5,2) column",
        ]
    );
    assert_eq!(
        pg.rows(&format!(
            "SELECT id, d, r, n = 1e-400, m FROM {}.f",
            pg.name
        )),
        ["7|1.5e-310|0.5|true|123.45"]
    );
}

#[test]
fn connection_parameters_are_honoured_or_refused() {
    let Some(pg) = PgSchema::new("params") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let s = &pg.name;
    let sep = if pg.url.contains('?') { '&' } else { '?' };
    let with = |params: &str| format!("{}{sep}{params}", pg.url);

    // options=-csearch_path=...: the table goes to that schema.
    let url = with(&format!("options=-csearch_path%3D{s}&connect_timeout=5"));
    let mut c = cmd(LOAD, d);
    c.args([url.as_str(), "--table", "h"]);
    let out = run_with_input(c, b"{\"id\":1}\n");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(pg.count("h"), 1);
    let url = with(&format!(
        "options=-csearch_path%3D{s}&application_name=etl_params_test&sslmode=prefer"
    ));
    let got = extract_records(
        d,
        &[
            &url,
            "--query",
            "SELECT current_schema() AS s, current_setting('application_name') AS app, count(*) AS n FROM h",
        ],
    );
    assert_eq!(
        got,
        [serde_json::json!({"s": s, "app": "etl_params_test", "n": 1})]
    );
    let passfile = write(d, "pgpass", b"*:*:*:*:unused\n");
    std::fs::set_permissions(
        &passfile,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    let url = with(&format!(
        "sslmode=disable&passfile={}&keepalives=1&target_session_attrs=any",
        passfile.display()
    ));
    let got = extract_records(d, &[&url, "--query", "SELECT 1 AS one"]);
    assert_eq!(got, [serde_json::json!({"one": 1})]);

    // What etlkit cannot honour is refused, never ignored.
    for (params, message) in [
        (
            "service=warehouse",
            "unsupported connection parameter \"service\"",
        ),
        ("bogus=1", "unsupported connection parameter \"bogus\""),
        (
            "sslrootcert=system&sslmode=require",
            "may not be used with sslrootcert=system",
        ),
        (
            "sslmode=verify-full",
            "sslmode=verify-full needs a root certificate",
        ),
        ("sslpassword=x", "encrypted client keys are not supported"),
        (
            "sslcrl=crl.pem",
            "certificate revocation lists are not supported",
        ),
        (
            "sslmode=sometimes",
            "invalid value for sslmode: \"sometimes\"",
        ),
    ] {
        let url = with(params);
        for mut c in [cmd(EXTRACT, d), cmd(LOAD, d)] {
            c.args([url.as_str(), "--table", "h"]);
            let out = run_with_input(c, b"{\"id\":2}\n");
            assert_eq!(code(&out), 2, "{params}: {}", stderr(&out));
            assert!(stderr(&out).contains(message), "{params}: {}", stderr(&out));
        }
    }
    assert_eq!(pg.count("h"), 1);

    // A key=value connection string is refused, not taken for a file name.
    let conninfo = "host=127.0.0.1 dbname=test password=Sup3rS3cret-pw";
    let mut c = cmd(LOAD, d);
    c.args([conninfo, "--table", "h"]);
    let out = run_with_input(c, b"{\"id\":2}\n");
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("key=value connection strings are not supported"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("Sup3rS3cret"), "{}", stderr(&out));
    assert!(!d.join(conninfo).exists());
}

#[test]
fn extract_reads_a_table_with_a_column_named_t() {
    let Some(pg) = PgSchema::new("colt") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let s = &pg.name;
    let out = load(&pg, d, &["--table", "x"], "{\"t\":1,\"b\":\"a\"}\n");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let got = extract_records(d, &[&pg.url, "--schema-name", s, "--table", "x"]);
    assert_eq!(got, [serde_json::json!({"t": 1, "b": "a"})]);
    let got = extract_records(
        d,
        &[
            &pg.url,
            "--schema-name",
            s,
            "--table",
            "x",
            "--cursor",
            "t",
            "--since",
            "0",
        ],
    );
    assert_eq!(got, [serde_json::json!({"t": 1, "b": "a"})]);
}

#[test]
fn identifiers_over_63_bytes_are_refused() {
    let Some(pg) = PgSchema::new("long") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let long = format!("{}_a", "x".repeat(62));
    let out = load(&pg, d, &["--table", &long], "{\"id\":1}\n");
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "table name \"{long}\" is 64 bytes; PostgreSQL identifiers are at most 63 bytes"
        )),
        "{}",
        stderr(&out)
    );
    let field = format!("{}é", "c".repeat(62));
    let input = format!("{{\"id\":1}}\n{{\"id\":2,\"{field}\":1}}\n");
    let out = load(&pg, d, &["--table", "t"], &input);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "column name \"{field}\" is 64 bytes; PostgreSQL identifiers are at most 63 bytes"
        )),
        "{}",
        stderr(&out)
    );
    let tables = pg.rows(&format!(
        "SELECT count(*) FROM pg_tables WHERE schemaname = '{}' AND tablename NOT LIKE '\\_etl\\_%'",
        pg.name
    ));
    assert_eq!(
        tables,
        ["0"],
        "nothing was written (but the failed run's record)"
    );
    // A name of exactly 63 bytes is fine; an index name etlkit derives
    // from it never collides with another long table's.
    let a = format!("{}a", "y".repeat(62));
    let b = format!("{}b", "y".repeat(62));
    for table in [&a, &b] {
        let args = ["--table", table.as_str(), "--mode", "upsert", "--key", "id"];
        for _ in 0..2 {
            let out = load(&pg, d, &args, "{\"id\":1,\"v\":1}\n");
            assert_eq!(code(&out), 0, "{}", stderr(&out));
        }
    }
    assert_eq!(
        pg.rows(&format!(
            "SELECT count(*) FROM pg_tables WHERE schemaname = '{}' AND tablename NOT LIKE '\\_etl\\_%'",
            pg.name
        )),
        ["2"]
    );
}

#[test]
fn connection_failures_show_the_server_message() {
    let Some(pg) = PgSchema::new("connfail") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let secret = "Sup3rS3cret-pw";
    let with_pw = pg.url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{secret}@"),
        1,
    );
    let no_db = with_pw.replace("/test", "/etl_no_such_db");
    let no_role = with_pw.replace("//postgres:", "//etl_no_such_role:");
    for (url, message) in [
        (&no_db, "database \"etl_no_such_db\" does not exist"),
        (&no_role, "role \"etl_no_such_role\" does not exist"),
    ] {
        for script in [
            format!("etl-extract '{url}' --table t"),
            format!("echo '{{\"id\":1}}' | etl-load '{url}' --table t"),
        ] {
            let out = bash(&script, d);
            assert_eq!(code(&out), 1, "{script}");
            let err = stderr(&out);
            assert!(err.contains(message), "{script}: {err}");
            assert!(!err.contains("db error"), "{script}: {err}");
            assert!(!err.contains(secret), "{script}: {err}");
        }
    }
}

#[test]
fn numeric_text_goes_into_numeric_columns_when_exact() {
    let Some(pg) = PgSchema::new("numtext") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    pg.client()
        .batch_execute(&format!(
            "CREATE TABLE {}.n (id bigint, d double precision, n numeric, i integer)",
            pg.name
        ))
        .expect("table");
    let input = framed(&[
        r#"{"id":1,"d":"1.00","n":"12.50","i":"12"}"#,
        r#"{"id":2,"i":"1.5"}"#,
        r#"{"id":3,"d":"abc"}"#,
        r#"{"id":4,"d":"1e-400"}"#,
        r#"{"id":5,"n":"00501"}"#,
        r#"{"id":6,"d":"-2.5e3","n":"-0.001","i":"-7"}"#,
    ]);
    let out = load(&pg, d, &["--table", "n", "--rejects", "r.ndjson"], &input);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let rejects = json_lines(&std::fs::read_to_string(d.join("r.ndjson")).expect("rejects"));
    let reasons: Vec<&str> = rejects
        .iter()
        .map(|r| r["reason"].as_str().expect("reason"))
        .collect();
    assert_eq!(
        reasons,
        [
            "column \"i\": text value \"1.5\" does not fit a integer column",
            "column \"d\": text value \"abc\" does not fit a double precision column",
            "column \"d\": text value \"1e-400\" does not fit a double precision column",
            "column \"n\": text value \"00501\" does not fit a numeric column",
        ]
    );
    assert_eq!(
        pg.rows(&format!("SELECT * FROM {}.n ORDER BY id", pg.name)),
        ["1|1|12.50|12", "6|-2500|-0.001|-7"]
    );
}

#[test]
fn decimals_get_numeric_columns_in_new_tables() {
    let Some(pg) = PgSchema::new("decimal") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let (url, s) = (&pg.url, &pg.name);
    write(d, "pay.csv", b"id,amount\n1,12.50\n2,0.10\n3,0.20\n");
    let out = bash(
        &format!(
            "etl-extract pay.csv | etl-load '{url}' --schema-name {s} --table pay && \
             echo '{{\"x\":0.1,\"y\":2}}' | etl-load '{url}' --schema-name {s} --table j"
        ),
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        pg.rows(&format!(
            "SELECT table_name, column_name, data_type FROM information_schema.columns \
             WHERE table_schema = '{s}' AND table_name NOT LIKE '\\_etl\\_%' \
             ORDER BY table_name, ordinal_position"
        )),
        [
            "j|x|numeric",
            "j|y|bigint",
            "pay|id|bigint",
            "pay|amount|numeric"
        ]
    );
    assert_eq!(
        pg.rows(&format!("SELECT sum(amount) FROM {s}.pay")),
        ["12.80"]
    );
    let got = extract_records(d, &[url, "--schema-name", s, "--table", "pay"]);
    assert_eq!(got[0]["amount"].to_string(), "12.50");
    // A double precision column made before still takes what it took.
    pg.client()
        .batch_execute(&format!("CREATE TABLE {s}.dp (v double precision)"))
        .expect("table");
    let out = load(
        &pg,
        d,
        &["--table", "dp"],
        "{\"v\":0.1}\n{\"v\":1e300}\n{\"v\":3}\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        pg.rows(&format!("SELECT v FROM {s}.dp")),
        ["0.1", "1e+300", "3"]
    );
}

/// Rows go in COPY's binary form when every column has one, and as text
/// when one does not (here a date): both tables must hold the same values,
/// for every type with a binary form, in append, replace and upsert (whose
/// staged pattern numbers travel in the same rows).
#[test]
fn binary_and_text_copy_store_the_same_values() {
    let Some(pg) = PgSchema::new("binary") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let columns = "id bigint PRIMARY KEY, s smallint, i integer, r real, f double precision, \
        n numeric, m numeric(12,4), b boolean, tx text, v varchar(8), c char(3), j json, jb jsonb";
    pg.client()
        .batch_execute(&format!(
            "CREATE TABLE {s}.bin ({columns}); CREATE TABLE {s}.txt ({columns}, day date);",
            s = pg.name
        ))
        .expect("tables");
    let input = framed(&[
        r#"{"id":1,"s":-32768,"i":2147483647,"r":0.5,"f":1.5e-310,"n":12.50,"m":-0.0001,"b":true,"tx":"tab\there \\ \"q\" é","v":"short","c":"ab","j":{"a": [1, 2.50]},"jb":{"z":1,"a":"x"},"day":"2026-12-02"}"#,
        r#"{"id":2,"n":-123456789012345678901234567890.000000000000001,"m":"99999999.9999","f":-0.0,"b":false,"tx":"","jb":[]}"#,
        r#"{"id":3,"n":1.5e-3,"m":1e3,"s":"7","r":"16777216","tx":12345678901234567890123}"#,
        r#"{"id":4,"n":0.00,"f":1e300,"j":"text","jb":null}"#,
        r#"{"id":5}"#,
    ]);
    let select = |table: &str| {
        pg.rows(&format!(
            "SELECT id, s, i, r, f, n, m, b, tx, v, c, j::text, jb::text FROM {}.{table} ORDER BY id",
            pg.name
        ))
    };
    for mode in ["append", "replace", "upsert"] {
        for table in ["bin", "txt"] {
            let mut args = vec!["--table", table, "--mode", mode];
            if mode == "upsert" {
                args.extend(["--key", "id"]);
            }
            let out = load(&pg, d, &args, &input);
            assert_eq!(code(&out), 0, "{mode} {table}: {}", stderr(&out));
        }
        let bin = select("bin");
        assert_eq!(bin.len(), 5, "{mode}: {bin:?}");
        assert_eq!(bin, select("txt"), "{mode}");
        if mode == "append" {
            pg.client()
                .batch_execute(&format!("TRUNCATE {s}.bin; TRUNCATE {s}.txt", s = pg.name))
                .expect("truncate");
        }
    }
    let bin = select("bin");
    assert!(bin[0].contains("|12.50|-0.0001|"), "{}", bin[0]);
    assert!(
        bin[1].contains("-123456789012345678901234567890.000000000000001"),
        "{}",
        bin[1]
    );
    assert!(bin[2].contains("|0.0015|1000.0000|"), "{}", bin[2]);
}

/// A `json` column keeps a document as it was written, newlines and all;
/// on the wire it is compact, one record a line (jsonb too), its numbers
/// byte for byte, and the stream loads.
#[test]
fn json_values_with_newlines_stay_on_one_line() {
    let Some(pg) = PgSchema::new("jsonlines") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    pg.client()
        .batch_execute(&format!(
            "CREATE TABLE {s}.src (id int, j json, jb jsonb, js json[], note text);
             INSERT INTO {s}.src VALUES
               (1, '{{\n  \"a\": [1,\n    2.50],\n  \"big\": 12345678901234567890123\n}}',
                   '{{\"k\": [1, 2]}}', ARRAY['[\n1\n]'::json], 'line 1\nline 2'),
               (2, '\"x\"', NULL, NULL, NULL),
               (3, '[\r\n]', '[]', NULL, '');",
            s = pg.name
        ))
        .expect("setup");
    let url = &pg.url;
    let s = &pg.name;
    let mut c = cmd(EXTRACT, d);
    c.args(["-q", url, "--schema-name", s, "--query"])
        .arg(format!("SELECT * FROM {s}.src ORDER BY id"));
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let rows = stream_records(&text, 3);
    assert_eq!(
        text.lines().nth(1),
        Some(
            r#"{"id":1,"j":{"a":[1,2.50],"big":12345678901234567890123},"jb":{"k":[1,2]},"js":[[1]],"note":"line 1\nline 2"}"#
        )
    );
    assert_eq!(rows[1]["j"], "x");
    assert_eq!(rows[2]["j"], serde_json::json!([]));
    let out = bash(
        &format!(
            "etl-extract -q '{url}' --schema-name {s} --table src | etl-load -q w.db --table t"
        ),
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(count(&d.join("w.db"), "t"), Some(3));
}

/// A field or `--key` finds its PostgreSQL column without regard to case:
/// an upsert by `--key id` into a table whose column is `"Id"` merges by
/// that column (records spelling it `id` or `ID`), and a field that could
/// be either of two columns differing only in case (`id`, `Id`) is refused
/// naming both, never given a third column.
#[test]
fn fields_and_keys_find_their_column_without_regard_to_case() {
    let Some(pg) = PgSchema::new("casefold") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    pg.client()
        .batch_execute(&format!(
            "CREATE TABLE {s}.k (\"Id\" int PRIMARY KEY, v text); INSERT INTO {s}.k VALUES (1, 'old');
             CREATE TABLE {s}.two (id int, \"Id\" int)",
            s = pg.name
        ))
        .expect("tables");
    let out = load(
        &pg,
        d,
        &["--table", "k", "--mode", "upsert", "--key", "id"],
        &framed(&[r#"{"id":1,"v":"new"}"#, r#"{"ID":2,"v":"two"}"#]),
    );
    crate::common::expect::expect(&out, "upsert by a key in another case")
        .code(0)
        .stdout("")
        .stderr_like("etl-load: 2 rows read, 2 written, 0 rejected in * s (* rows/s)\n");
    assert_eq!(
        pg.rows(&format!("SELECT * FROM {}.k ORDER BY 1", pg.name)),
        ["1|new", "2|two"]
    );
    let out = load(&pg, d, &["--table", "two"], &framed(&[r#"{"ID":7}"#]));
    crate::common::expect::expect(&out, "a field two columns could take")
        .code(1)
        .stdout("")
        .stderr(&format!(
            "etl-load: error: nothing was loaded into {} (table \"two\" is as it was): stdin:2: \
             field \"ID\" could be column \"id\" or \"Id\" of \"{}\".\"two\", which differ only in case\n",
            pg.url, pg.name
        ));
    assert_eq!(
        pg.rows(&format!(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = '{}' AND table_name = 'two'",
            pg.name
        )),
        ["2"]
    );
}

/// `--mode replace` deletes the old rows and copies the new ones straight
/// into the table, in one transaction: while the stream is still arriving
/// a reader sees exactly the old rows; a stream cut short leaves them; a
/// finished one leaves exactly the new rows, each once.
#[test]
fn a_replace_in_progress_shows_readers_the_old_rows_and_a_cut_one_keeps_them() {
    use std::io::Write;
    use std::process::Stdio;

    let Some(pg) = PgSchema::new("replace_readers") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let old: Vec<String> = (0..1000)
        .map(|i| format!(r#"{{"id":{i},"v":"old"}}"#))
        .collect();
    let old: Vec<&str> = old.iter().map(String::as_str).collect();
    let out = load(
        &pg,
        d,
        &["--table", "t", "--mode", "replace"],
        &framed(&old),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let seen = |pg: &PgSchema| {
        pg.rows(&format!(
            "SELECT v, count(*), count(DISTINCT id) FROM {}.t GROUP BY v",
            pg.name
        ))
    };
    let only_old = vec!["old|1000|1000".to_string()];
    assert_eq!(seen(&pg), only_old);
    for finish in [false, true] {
        let mut c = cmd(LOAD, d);
        c.arg(&pg.url)
            .args([
                "--schema-name",
                &pg.name,
                "--table",
                "t",
                "--mode",
                "replace",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("etl-load");
        let mut stdin = child.stdin.take().expect("stdin");
        let mut wire = String::from("{\"@etl\":\"begin\",\"stream\":\"s\"}\n");
        for i in 0..50_000 {
            wire.push_str(&format!("{{\"id\":{},\"v\":\"new\"}}\n", 1000 + i));
        }
        stdin.write_all(wire.as_bytes()).expect("rows");
        stdin.flush().expect("flush");
        // The rows are on their way (the load reads and copies as they
        // come); a reader still sees only the old ones.
        std::thread::sleep(std::time::Duration::from_millis(1500));
        assert_eq!(seen(&pg), only_old, "while the replace runs");
        if finish {
            stdin
                .write_all(b"{\"@etl\":\"end\",\"stream\":\"s\",\"rows\":50000}\n")
                .expect("end");
        }
        drop(stdin);
        let out = child.wait_with_output().expect("wait");
        if finish {
            assert_eq!(code(&out), 0, "{}", stderr(&out));
            assert_eq!(seen(&pg), vec!["new|50000|50000".to_string()]);
        } else {
            assert_eq!(code(&out), 1, "{}", stderr(&out));
            assert_eq!(seen(&pg), only_old, "after a cut stream");
        }
    }
}

#[test]
fn a_table_the_load_creates_gets_its_rows_frozen_and_an_existing_one_does_not() {
    let Some(pg) = PgSchema::new("freeze") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    // Rows of many pages, so that every page's bits are checked.
    let rows: Vec<String> = (1..=5000)
        .map(|i| format!("{{\"id\":{i},\"note\":\"{}\"}}", "x".repeat(100)))
        .collect();
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    let input = framed(&rows);
    pg.client()
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_visibility")
        .expect("pg_visibility (in PostgreSQL's contrib)");
    let frozen = |table: &str| {
        pg.rows(&format!(
            "SELECT count(*) || ' ' || count(*) FILTER (WHERE all_frozen) \
             FROM pg_visibility_map('{}.{table}')",
            pg.name
        ))
    };
    // Created by this load (append, then replace into a new table): COPY
    // FREEZE, every page all-frozen at once.
    for (table, mode) in [("fresh", "append"), ("renewed", "replace")] {
        let out = load(&pg, d, &["--table", table, "--mode", mode], &input);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let seen = frozen(table);
        let (pages, all) = seen[0].split_once(' ').expect("two counts");
        assert!(pages.parse::<u32>().unwrap_or(0) > 10, "{seen:?}");
        assert_eq!(pages, all, "{table}: pages and frozen pages");
    }
    // Loaded again into the table that exists: other transactions may see
    // it, so the rows are written as usual.
    let out = load(&pg, d, &["--table", "renewed", "--mode", "replace"], &input);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        pg.rows(&format!("SELECT count(*) FROM {}.renewed", pg.name)),
        ["5000"]
    );
    let seen = frozen("renewed");
    let (_, all) = seen[0].split_once(' ').expect("two counts");
    assert!(
        all.parse::<u32>().unwrap_or(1) < 10,
        "rows that another transaction could see were frozen: {seen:?}"
    );
}
