//! File targets (CSV, TSV, NDJSON, stdout) and segment commits.

use std::path::Path;

use crate::common::*;

mod csv_types;
mod parquet_types;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("read target")
}

fn no_temp_files(dir: &Path) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".etl-tmp-"))
        .collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}

#[test]
fn csv_target_is_written_whole_and_replaced_atomically() {
    let dir = tempdir();
    let d = dir.path();
    let input = "{\"id\":1,\"name\":\"a, b\",\"tags\":[1,2],\"note\":null}\n{\"id\":2,\"name\":\"c\\\"d\",\"tags\":null,\"note\":\"x\\ny\"}\n";
    let mut c = cmd(LOAD, d);
    c.args(["out.csv", "--mode", "replace", "-q"]);
    let out = run_with_input(c, input.as_bytes());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        read(&d.join("out.csv")),
        "id,name,tags,note\n1,\"a, b\",\"[1,2]\",\n2,\"c\"\"d\",,\"x\ny\"\n"
    );
    // Round trip: extracting the file gives the same values back.
    let back = extract_records(d, &["out.csv"]);
    assert_eq!(back[1]["name"], "c\"d");
    assert_eq!(back[1]["note"], "x\ny");

    // A cut stream leaves the old file and no temporary file.
    let mut c = cmd(LOAD, d);
    c.args(["out.csv", "--mode", "replace"]);
    let out = run_with_input(c, b"{\"@etl\":\"begin\",\"stream\":\"s\"}\n{\"id\":9}\n");
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("nothing was written to out.csv (it is as it was)"),
        "{}",
        stderr(&out)
    );
    assert!(read(&d.join("out.csv")).starts_with("id,name,tags,note\n1,"));
    no_temp_files(d);
}

#[test]
fn append_keeps_the_header_and_rejects_new_fields() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "out.csv", b"id,name\n1,a");
    let mut c = cmd(LOAD, d);
    c.args(["out.csv", "--rejects", "r.ndjson"]);
    let out = run_with_input(c, b"{\"id\":2,\"name\":\"b\"}\n{\"name\":\"c\",\"id\":3,\"extra\":null}\n{\"id\":4,\"color\":\"red\"}\n");
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(read(&d.join("out.csv")), "id,name\n1,a\n2,b\n3,c\n");
    assert!(
        read(&d.join("r.ndjson")).contains("field \\\"color\\\" is not one of the file's columns")
    );
    no_temp_files(d);
}

#[test]
fn tsv_refuses_values_it_cannot_hold() {
    let dir = tempdir();
    let d = dir.path();
    let mut c = cmd(LOAD, d);
    c.args(["out.tsv"]);
    let out = run_with_input(c, b"{\"a\":\"x\\ty\"}\n");
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out)
            .contains("stdin:1: column \"a\": a tab or line break cannot be written to TSV"),
        "{}",
        stderr(&out)
    );
    assert!(!d.join("out.tsv").exists());
}

#[test]
fn stdout_target_writes_records_only() {
    let dir = tempdir();
    let out = bash(
        &format!(
            "etl-extract -q {} | etl-load -q - --format csv | head -n 2",
            sample("customers.csv").display()
        ),
        dir.path(),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "customer_id,name,email,country,signup_date,vip\nC001,Ana Souza,ana@example.com,BR,2024-03-14,true\n"
    );
}

#[test]
fn incremental_into_a_file_with_a_json_state() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "src.csv", b"id,t\n1,2026-11-01\n2,2026-11-02\n");
    let job = "etl-extract -q src.csv --cursor t --state st.json | etl-load -q out.ndjson --state st.json";
    assert_eq!(code(&bash(job, d)), 0);
    assert_eq!(code(&bash(job, d)), 0);
    write(
        d,
        "src.csv",
        b"id,t\n1,2026-11-01\n2,2026-11-02\n3,2026-11-03\n",
    );
    let out = bash(job, d);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        read(&d.join("out.ndjson")),
        "{\"id\":1,\"t\":\"2026-11-01\"}\n{\"id\":2,\"t\":\"2026-11-02\"}\n{\"id\":3,\"t\":\"2026-11-03\"}\n"
    );
    let state: serde_json::Value =
        serde_json::from_str(&read(&d.join("st.json"))).expect("state json");
    assert_eq!(state["streams"]["src"]["bookmark"]["value"], "2026-11-03");

    let out = bash(
        "etl-extract -q src.csv --cursor t --state st.json | etl-load out.ndjson",
        d,
    );
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("no --state FILE.json keeps its bookmark"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn segment_commits_keep_what_ended_before_a_cut() {
    let dir = tempdir();
    let d = dir.path();
    let seg = |n: u32, stream: &str| {
        format!(
            "{{\"@etl\":\"begin\",\"stream\":\"{stream}\"}}\n{{\"id\":{n}}}\n{{\"@etl\":\"end\",\"stream\":\"{stream}\",\"rows\":1}}\n"
        )
    };
    let input = format!(
        "{}{}{{\"@etl\":\"begin\",\"stream\":\"c\"}}\n{{\"id\":3}}\n",
        seg(1, "a"),
        seg(2, "b")
    );
    let mut c = cmd(LOAD, d);
    c.args(["w.db", "--table", "t", "--commit", "segment"]);
    let out = run_with_input(c, input.as_bytes());
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("the 2 segments before the failure were committed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(dump(&d.join("w.db"), "t"), ["Integer(1)", "Integer(2)"]);

    let mut c = cmd(LOAD, d);
    c.args(["out.csv", "--commit", "segment"]);
    assert_eq!(
        code(&run_with_input(c, b"")),
        2,
        "segment commits need a database"
    );
}

#[test]
fn parquet_target_round_trips_and_rejects_misfits() {
    let dir = tempdir();
    let d = dir.path();
    let out = bash(
        &format!(
            "etl-extract -q {} | etl-load -q orders.parquet --mode replace",
            sample("orders.csv").display()
        ),
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let original = extract_records(d, &[&sample("orders.csv").display().to_string()]);
    let back = extract_records(d, &["orders.parquet"]);
    assert_same_records(&back, &original, "orders through Parquet");
    let begin = json_lines(&stdout(&{
        let mut c = cmd(EXTRACT, d);
        c.arg("orders.parquet");
        run(c)
    }))[0]
        .clone();
    assert_eq!(begin["schema"]["external_ref"], "integer");
    assert_eq!(begin["schema"]["shipped"], "boolean");

    let mut c = cmd(LOAD, d);
    c.args(["t.parquet", "--rejects", "r.ndjson"]);
    let input = "{\"@etl\":\"begin\",\"stream\":\"s\",\"schema\":{\"n\":\"integer\"}}\n\
                 {\"n\":1}\n{\"n\":\"x\"}\n{\"n\":3}\n{\"@etl\":\"end\",\"stream\":\"s\",\"rows\":3}\n";
    let out = run_with_input(c, input.as_bytes());
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        std::fs::read_to_string(d.join("r.ndjson"))
            .expect("rejects")
            .contains("does not fit a integer column")
    );
    assert_eq!(
        extract_records(d, &["t.parquet"]),
        [serde_json::json!({"n":1}), serde_json::json!({"n":3})]
    );

    let mut c = cmd(LOAD, d);
    c.arg("t.parquet");
    let out = run_with_input(c, b"{\"n\":4}\n");
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("cannot be appended to"),
        "{}",
        stderr(&out)
    );
    no_temp_files(d);
}
