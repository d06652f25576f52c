//! Append and replace into an existing MySQL table go straight in with
//! LOAD DATA LOCAL INFILE: a column added mid-stream rolls the transaction
//! back and sends the rows again (each row once, none lost), a duplicate
//! key that LOCAL would skip fails the load instead, the characters LOAD
//! DATA's text escapes arrive unchanged, and a state table created at
//! commit replays the rows too. Replace leaves only the new rows.

use crate::common::*;

/// Text that LOAD DATA's format would misread if it were not escaped.
const AWKWARD: [&str; 8] = [
    "tab\there",
    "line\nbreak",
    "back\\slash",
    "\\N",
    "nul\u{0}byte",
    "cr\r\nlf",
    "",
    "end\\",
];

#[test]
fn a_column_added_mid_stream_sends_every_row_once() {
    let Some(my) = MyDb::new("bulk_drift") else {
        return;
    };
    my.exec("CREATE TABLE t (id INT PRIMARY KEY, body TEXT, raw BLOB)");
    my.exec("INSERT INTO t VALUES (0, 'kept', NULL)");
    let dir = tempdir();
    let d = dir.path();
    // 6,000 rows of 1 KB before the new field: more than one chunk to
    // send again after the ALTER TABLE.
    let mut input = String::new();
    let filler = "x".repeat(1000);
    for id in 1..=6000 {
        input.push_str(&format!(
            "{{\"id\":{id},\"body\":\"{filler}\",\"raw\":\"\\\\x00ff\"}}\n"
        ));
    }
    for (n, text) in AWKWARD.iter().enumerate() {
        let id = 7000 + n;
        let body = serde_json::to_string(text).expect("json");
        input.push_str(&format!("{{\"id\":{id},\"body\":{body},\"extra\":{n}}}\n"));
    }
    input.push_str("{\"id\":8000}\n");
    let file = write(d, "rows.ndjson", input.as_bytes());
    let mut c = cmd(LOAD, d);
    c.arg(&my.url).args(["--table", "t"]).arg(&file);
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("6009 rows read, 6009 written, 0 rejected"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        my.rows("SELECT COUNT(*), COUNT(DISTINCT id), SUM(extra) FROM t"),
        ["6010|6010|28"]
    );
    assert_eq!(
        my.rows(
            "SELECT COUNT(*) FROM t WHERE id BETWEEN 1 AND 6000 AND raw = X'00ff' AND extra IS NULL"
        ),
        ["6000"]
    );
    use mysql::prelude::Queryable;
    let bodies: Vec<(i64, Option<String>)> = my
        .conn()
        .query("SELECT id, body FROM t WHERE id >= 7000 ORDER BY id")
        .expect("bodies");
    let expected: Vec<(i64, Option<String>)> = AWKWARD
        .iter()
        .enumerate()
        .map(|(n, t)| (7000 + n as i64, Some(t.to_string())))
        .chain([(8000, None)])
        .collect();
    assert_eq!(bodies, expected);

    // Replace, with another new field after the first row: only the new
    // rows are left.
    let file = write(
        d,
        "again.ndjson",
        b"{\"id\":1,\"body\":\"a\"}\n{\"id\":2,\"body\":\"b\",\"later\":true}\n",
    );
    let mut c = cmd(LOAD, d);
    c.arg(&my.url)
        .args(["--table", "t", "--mode", "replace"])
        .arg(&file);
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        my.rows("SELECT id, body, later + 0 FROM t ORDER BY id"),
        ["1|a|", "2|b|1"]
    );
}

#[test]
fn a_duplicate_key_fails_the_append_and_leaves_the_table_as_it_was() {
    let Some(my) = MyDb::new("bulk_dup") else {
        return;
    };
    my.exec("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(10))");
    my.exec("INSERT INTO t VALUES (1, 'old')");
    let dir = tempdir();
    let d = dir.path();
    let file = write(
        d,
        "rows.ndjson",
        b"{\"id\":2,\"name\":\"new\"}\n{\"id\":1,\"name\":\"again\"}\n{\"id\":3,\"name\":\"new\"}\n",
    );
    let mut c = cmd(LOAD, d);
    c.arg(&my.url).args(["--table", "t"]).arg(&file);
    let out = run(c);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let expected = format!(
        "etl-load: error: nothing was loaded into {url} (table \"t\" is as it was): {url}: \
         the server took 2 of 3 rows with 1 warnings: Duplicate entry '1' for key 'PRIMARY'\n",
        url = my.url
    );
    assert_eq!(stderr(&out), expected);
    assert_eq!(my.rows("SELECT id, name FROM t ORDER BY id"), ["1|old"]);
}

#[test]
fn a_first_incremental_run_that_creates_the_state_table_loads_each_row_once() {
    let Some(my) = MyDb::new("bulk_state") else {
        return;
    };
    my.exec("CREATE TABLE src (id INT PRIMARY KEY, name VARCHAR(20))");
    let values: Vec<String> = (1..=500).map(|i| format!("({i}, 'n{i}')")).collect();
    my.exec(&format!("INSERT INTO src VALUES {}", values.join(",")));
    my.exec("CREATE TABLE dst (id INT PRIMARY KEY, name VARCHAR(20))");
    my.exec("INSERT INTO dst VALUES (9999, 'gone')");
    let dir = tempdir();
    let d = dir.path();
    let job = format!(
        "etl-extract '{url}' --table src --cursor id --state '{url}' --stream src | \
         etl-load '{url}' --table dst",
        url = my.url
    );
    let out = bash(&job, d);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!my.rows("SELECT COUNT(*) FROM _etl_state").is_empty());
    assert_eq!(
        my.rows("SELECT COUNT(*), MIN(id), MAX(id), COUNT(DISTINCT id) FROM dst"),
        ["501|1|9999|501"]
    );
    let bookmark = my.rows("SELECT bookmark FROM _etl_state WHERE stream = 'src'");
    assert!(bookmark[0].contains("\"value\":500"), "{bookmark:?}");
}

/// A begin line with a batch id asks the target whether it committed that
/// batch: mid-run, between LOAD DATA statements.
#[test]
fn batches_in_one_run_each_load_once_and_a_rerun_skips_them() {
    let Some(my) = MyDb::new("bulk_batches") else {
        return;
    };
    my.exec("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(10))");
    let dir = tempdir();
    let d = dir.path();
    let mut input = String::new();
    // More rows than the typing sample, so that rows are on their way
    // when the second begin line asks about its batch.
    for (batch, ids) in [("b1", 1..=3000), ("b2", 3001..=6000)] {
        input.push_str(&format!(
            "{{\"@etl\":\"begin\",\"stream\":\"s\",\"batch\":\"{batch}\"}}\n"
        ));
        for id in ids {
            input.push_str(&format!("{{\"id\":{id},\"name\":\"n{id}\"}}\n"));
        }
        input.push_str("{\"@etl\":\"end\",\"stream\":\"s\",\"rows\":3000}\n");
    }
    let file = write(d, "batches.ndjson", input.as_bytes());
    for round in 0..2 {
        let mut c = cmd(LOAD, d);
        c.arg(&my.url).args(["--table", "t"]).arg(&file);
        let out = run(c);
        assert_eq!(code(&out), 0, "round {round}: {}", stderr(&out));
        assert_eq!(
            my.rows("SELECT COUNT(*), SUM(id) FROM t"),
            ["6000|18003000"],
            "round {round}"
        );
    }
    assert_eq!(
        my.rows("SELECT id FROM _etl_batches WHERE target_table = 't' ORDER BY id"),
        ["b1", "b2"]
    );
}
