//! PostgreSQL as source and target: the same guarantees as SQLite, and
//! every type round-trips. Skipped loudly without a server; required in CI.

use crate::common::*;

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
    let runs = [
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
