//! `--null-value TOKEN`: CSV and TSV cells that say "missing" with a token
//! (R's `NA`, `\N`) are null in all three CSV readers (etl-extract, a
//! one-off etl-load, etl-watch) and take no part in typing.

use std::path::Path;

use crate::common::expect::expect;
use crate::common::*;

/// `etl-extract FILE ARGS -q` on a file written with `contents`.
fn extract(name: &str, contents: &[u8], args: &[&str]) -> std::process::Output {
    let dir = tempdir();
    write(dir.path(), name, contents);
    let mut c = cmd(EXTRACT, dir.path());
    c.arg(name).args(args).arg("-q");
    run(c)
}

#[test]
fn a_token_is_null_and_leaves_the_column_numeric() {
    let csv = b"id,score,ratio,name\n1,NA,0.5,a\n2,7,NA,NA\n3,8,1.25,b\n";
    let out = extract("t.csv", csv, &["--null-value", "NA"]);
    expect(&out, "with NA named").code(0).stderr("").stdout(
        "{\"@etl\":\"begin\",\"version\":2,\"stream\":\"t\",\"source\":\"t.csv\",\"schema\":{\"id\":\"integer\",\"score\":\"integer\",\"ratio\":\"float\",\"name\":\"text\"}}\n\
         {\"id\":1,\"score\":null,\"ratio\":0.5,\"name\":\"a\"}\n\
         {\"id\":2,\"score\":7,\"ratio\":null,\"name\":null}\n\
         {\"id\":3,\"score\":8,\"ratio\":1.25,\"name\":\"b\"}\n\
         {\"@etl\":\"end\",\"stream\":\"t\",\"rows\":3}\n",
    );
    // Without the flag, NA is text and so is every column that holds it.
    let out = extract("t.csv", csv, &[]);
    expect(&out, "without the flag").code(0).stderr("").stdout(
        "{\"@etl\":\"begin\",\"version\":2,\"stream\":\"t\",\"source\":\"t.csv\",\"schema\":{\"id\":\"integer\",\"score\":\"text\",\"ratio\":\"text\",\"name\":\"text\"}}\n\
         {\"id\":1,\"score\":\"NA\",\"ratio\":\"0.5\",\"name\":\"a\"}\n\
         {\"id\":2,\"score\":\"7\",\"ratio\":\"NA\",\"name\":\"NA\"}\n\
         {\"id\":3,\"score\":\"8\",\"ratio\":\"1.25\",\"name\":\"b\"}\n\
         {\"@etl\":\"end\",\"stream\":\"t\",\"rows\":3}\n",
    );
}

#[test]
fn two_tokens_match_exactly_and_a_quoted_token_stays_text() {
    // `\N` and NULL are tokens; `null` (case) and ` NULL` (a space) are not;
    // a quoted "NULL" is the word, so column c is text.
    let csv = b"a,b,c\n1,\\N,x\nNULL,2,\"NULL\"\n3,null,NULL\n4, NULL,y\n";
    let out = extract(
        "t.csv",
        csv,
        &["--null-value", "\\N", "--null-value", "NULL"],
    );
    expect(&out, "two tokens").code(0).stderr("").stdout(
        "{\"@etl\":\"begin\",\"version\":2,\"stream\":\"t\",\"source\":\"t.csv\",\"schema\":{\"a\":\"integer\",\"b\":\"text\",\"c\":\"text\"}}\n\
         {\"a\":1,\"b\":null,\"c\":\"x\"}\n\
         {\"a\":null,\"b\":\"2\",\"c\":\"NULL\"}\n\
         {\"a\":3,\"b\":\"null\",\"c\":null}\n\
         {\"a\":4,\"b\":\" NULL\",\"c\":\"y\"}\n\
         {\"@etl\":\"end\",\"stream\":\"t\",\"rows\":4}\n",
    );
    // A quoted token in a column of numbers is a value that is not a number.
    let out = extract("q.csv", b"n\n1\n\"NA\"\nNA\n", &["--null-value", "NA"]);
    expect(&out, "quoted NA").code(0).stderr("").stdout(
        "{\"@etl\":\"begin\",\"version\":2,\"stream\":\"q\",\"source\":\"q.csv\",\"schema\":{\"n\":\"text\"}}\n\
         {\"n\":\"1\"}\n\
         {\"n\":\"NA\"}\n\
         {\"n\":null}\n\
         {\"@etl\":\"end\",\"stream\":\"q\",\"rows\":3}\n",
    );
}

#[test]
fn tsv_has_no_quotes_so_every_equal_field_is_null() {
    let tsv = b"id\tv\tw\n1\tNA\t\"NA\"\n2\t3.5\tx\n";
    let out = extract("t.tsv", tsv, &["--null-value", "NA"]);
    expect(&out, "TSV").code(0).stderr("").stdout(
        "{\"@etl\":\"begin\",\"version\":2,\"stream\":\"t\",\"source\":\"t.tsv\",\"schema\":{\"id\":\"integer\",\"v\":\"decimal(15,1)\",\"w\":\"text\"}}\n\
         {\"id\":1,\"v\":null,\"w\":\"\\\"NA\\\"\"}\n\
         {\"id\":2,\"v\":3.5,\"w\":\"x\"}\n\
         {\"@etl\":\"end\",\"stream\":\"t\",\"rows\":2}\n",
    );
}

#[test]
fn pinned_columns_and_cursors_read_tokens_as_null() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "p.csv", b"id,zip,qty\n1,NA,NA\n2,00501,3\nNA,02134,4\n");
    write(d, "types.json", br#"{"zip":"text","qty":"integer"}"#);
    let mut c = cmd(EXTRACT, d);
    c.args([
        "p.csv",
        "--null-value",
        "NA",
        "--schema",
        "types.json",
        "-q",
    ]);
    expect(&run(c), "pinned").code(0).stderr("").stdout(
        "{\"@etl\":\"begin\",\"version\":2,\"stream\":\"p\",\"source\":\"p.csv\",\"schema\":{\"id\":\"integer\",\"zip\":\"text\",\"qty\":\"integer\"}}\n\
         {\"id\":1,\"zip\":null,\"qty\":null}\n\
         {\"id\":2,\"zip\":\"00501\",\"qty\":3}\n\
         {\"id\":null,\"zip\":\"02134\",\"qty\":4}\n\
         {\"@etl\":\"end\",\"stream\":\"p\",\"rows\":3}\n",
    );
    // A cursor that is a token is a null cursor: rejected, as any null one.
    let mut c = cmd(EXTRACT, d);
    c.args([
        "p.csv",
        "--null-value",
        "NA",
        "--cursor",
        "id",
        "--state",
        "p.state.json",
        "--rejects",
        "rejects.ndjson",
        "-q",
    ]);
    let out = run(c);
    expect(&out, "null cursor").code(3).stderr("").stdout(
        "{\"@etl\":\"begin\",\"version\":2,\"stream\":\"p\",\"source\":\"p.csv\",\"schema\":{\"id\":\"integer\",\"zip\":\"text\",\"qty\":\"integer\"},\"from\":null}\n\
         {\"id\":1,\"zip\":null,\"qty\":null}\n\
         {\"id\":2,\"zip\":\"00501\",\"qty\":3}\n\
         {\"@etl\":\"end\",\"stream\":\"p\",\"rows\":2,\"bookmark\":{\"cursor\":\"id\",\"value\":2,\"at_value\":[\"57e46cccfa960248\"]}}\n",
    );
    assert_eq!(
        std::fs::read_to_string(d.join("rejects.ndjson")).expect("rejects"),
        "{\"input\":\"p.csv\",\"line\":4,\"reason\":\"cursor column \\\"id\\\" is null or missing\",\
         \"raw\":\"{\\\"id\\\":null,\\\"zip\\\":\\\"02134\\\",\\\"qty\\\":4}\"}\n"
    );
}

/// `n` rows of `id,v` with integers, then one `NA`: the sample types `v`
/// as an integer before the NA arrives.
fn late_na(dir: &Path) {
    let mut csv = String::from("id,v\n");
    for i in 1..=1000 {
        csv.push_str(&format!("{i},{}\n", i * 2));
    }
    csv.push_str("1001,NA\n1002,7\n");
    write(dir, "late.csv", csv.as_bytes());
}

#[test]
fn a_late_token_no_longer_fails_a_one_off_load() {
    let dir = tempdir();
    let d = dir.path();
    late_na(d);
    let db = d.join("w.db");
    let mut c = cmd(LOAD, d);
    c.args(["w.db", "-t", "t", "-q", "late.csv"]);
    expect(&run(c), "without the flag, as before")
        .code(1)
        .stdout("")
        .stderr(
            "etl-load: error: nothing was loaded into w.db (table \"t\" is as it was): \
             late.csv:1002 (NDJSON line 1002): column \"v\": text value \"NA\" does not fit a INTEGER column\n",
        );
    assert_eq!(count(&db, "t"), None, "nothing committed");
    let mut c = cmd(LOAD, d);
    c.args(["w.db", "-t", "t", "-q", "--null-value", "NA", "late.csv"]);
    expect(&run(c), "with NA named")
        .code(0)
        .stdout("")
        .stderr("");
    let conn = rusqlite::Connection::open(&db).expect("db opens");
    let sql: String = conn
        .query_row("SELECT sql FROM sqlite_master WHERE name = 't'", [], |r| {
            r.get(0)
        })
        .expect("table");
    assert_eq!(sql, r#"CREATE TABLE "t" ("id" INTEGER, "v" INTEGER)"#);
    let tail: Vec<String> = conn
        .prepare("SELECT id, quote(v) FROM t WHERE id > 999 ORDER BY id")
        .unwrap()
        .query_map([], |r| {
            Ok(format!(
                "{}|{}",
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tail, ["1000|2000", "1001|NULL", "1002|7"]);
}

#[test]
fn watch_reads_tokens_in_csv_files_as_null() {
    let dir = tempdir();
    let d = dir.path();
    let csv = write(d, "w.csv", b"id,v\n1,NA\n2,\"NA\"\n3,\n");
    let mut c = cmd(WATCH, d);
    c.args(["--once", "--format", "csv", "--null-value", "NA", "-q"])
        .arg(&csv);
    let out = run(c);
    expect(&out, "watch").code(0).stderr("");
    let got = records(&stdout(&out));
    assert_eq!(
        got,
        [
            serde_json::json!({"id":"1","v":null}),
            serde_json::json!({"id":"2","v":"NA"}),
            serde_json::json!({"id":"3","v":null}),
        ]
    );
}

#[test]
fn formats_with_nulls_of_their_own_refuse_the_flag() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "e.ndjson", b"{\"a\":null}\n");
    let mut c = cmd(EXTRACT, d);
    c.args(["e.ndjson", "--null-value", "NA"]);
    expect(&run(c), "extract NDJSON").code(2).stdout("").stderr(
        "etl-extract: error: --null-value applies to CSV and TSV input, not to NDJSON input (e.ndjson), which has nulls of its own\n",
    );
    let mut c = cmd(EXTRACT, d);
    c.args(["--format", "json", "--null-value", "NA"]);
    expect(&run_with_input(c, b"[]"), "extract JSON on stdin")
        .code(2)
        .stdout("")
        .stderr(
            "etl-extract: error: --null-value applies to CSV and TSV input, not to JSON input (stdin), which has nulls of its own\n",
        );
    let mut c = cmd(LOAD, d);
    c.args(["w.db", "-t", "t", "--null-value", "NA", "e.ndjson"]);
    expect(&run(c), "load NDJSON").code(2).stdout("").stderr(
        "etl-load: error: --null-value applies to CSV and TSV input, not to NDJSON input (e.ndjson), which has nulls of its own\n\
         hint: name a .csv/.tsv INPUT or pass --input-format csv\n",
    );
    write(d, "a.csv", b"a\n1\n");
    let mut c = cmd(LOAD, d);
    c.args(["w.db", "-t", "t", "--null-value", "NA", "a.csv", "e.ndjson"]);
    expect(&run(c), "load CSV and NDJSON").code(2).stdout("").stderr(
        "etl-load: error: --null-value applies to CSV and TSV input, not to NDJSON input (e.ndjson), which has nulls of its own\n",
    );
    let mut c = cmd(WATCH, d);
    c.args([
        "--once",
        "--format",
        "ndjson",
        "--null-value",
        "NA",
        "e.ndjson",
    ]);
    expect(&run(c), "watch NDJSON").code(2).stdout("").stderr(
        "etl-watch: error: --null-value applies to CSV and TSV input, not to --format ndjson\n",
    );
    let mut c = cmd(EXTRACT, d);
    c.args(["w.db", "--table", "t", "--null-value", "NA"]);
    expect(&run(c), "a table").code(2).stdout("").stderr(
        "etl-extract: error: --null-value applies to CSV and TSV input, not to a database table or query\n",
    );
    let mut c = cmd(EXTRACT, d);
    c.args(["--null-value", "", "a.csv"]);
    expect(&run(c), "empty token").code(2).stdout("").stderr(
        "etl-extract: error: --null-value needs a TOKEN such as NA: an empty field is null already\n",
    );
    assert!(!d.join("w.db").exists());
}

#[test]
fn a_late_token_loads_into_postgresql_as_null() {
    let Some(pg) = PgSchema::new("nullvalue") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    late_na(d);
    let mut c = cmd(LOAD, d);
    c.arg(&pg.url)
        .args([
            "--schema-name",
            &pg.name,
            "-t",
            "t",
            "-q",
            "--null-value",
            "NA",
        ])
        .arg("late.csv");
    expect(&run(c), "into PostgreSQL")
        .code(0)
        .stdout("")
        .stderr("");
    let s = &pg.name;
    assert_eq!(
        pg.rows(&format!(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_schema = '{s}' AND table_name = 't' ORDER BY ordinal_position"
        )),
        ["id|bigint", "v|bigint"]
    );
    assert_eq!(
        pg.rows(&format!(
            "SELECT id, v IS NULL, v FROM {s}.t WHERE id > 999 ORDER BY id"
        )),
        ["1000|false|2000", "1001|true|", "1002|false|7"]
    );
    assert_eq!(pg.count("t"), 1002);
}
