//! etl-transform: steps in order, truthful control lines, rejects.

use crate::common::*;
use serde_json::{Value, json};

fn transform(args: &[&str], input: &str) -> std::process::Output {
    let dir = tempdir();
    let mut c = cmd(TRANSFORM, dir.path());
    c.args(args);
    run_with_input(c, input.as_bytes())
}

const STREAM: &str = "{\"@etl\":\"begin\",\"stream\":\"s\",\"schema\":{\"id\":\"integer\",\"qty\":\"integer\",\"zip\":\"text\"}}\n\
{\"id\":1,\"qty\":5,\"zip\":\"00501\"}\n\
{\"id\":2,\"qty\":1,\"zip\":\"02134\"}\n\
{\"id\":9007199254740993,\"qty\":7,\"zip\":null}\n\
{\"@etl\":\"end\",\"stream\":\"s\",\"rows\":3,\"bookmark\":{\"cursor\":\"id\",\"value\":3,\"at_value\":[]}}\n";

#[test]
fn filter_counts_and_bookmark_stay_truthful() {
    let out = transform(&["--filter", "qty > 2", "--select", "id,zip"], STREAM);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines = json_lines(&stdout(&out));
    assert_eq!(lines[0]["schema"], json!({"id": "integer", "zip": "text"}));
    assert_eq!(
        records(&stdout(&out)),
        [
            json!({"id":1,"zip":"00501"}),
            json!({"id":9007199254740993_i64,"zip":null})
        ]
    );
    let end = lines.last().expect("end");
    assert_eq!(end["rows"], 2, "the end line counts what was written");
    assert_eq!(end["bookmark"]["value"], 3, "the bookmark is kept");
    assert!(
        stdout(&out).contains("9007199254740993"),
        "big integers keep their digits"
    );
    assert!(
        stderr(&out).contains("3 rows read, 2 written, 0 rejected, 1 skipped"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn steps_run_in_command_line_order() {
    let input = "{\"a\":1,\"b\":2}\n";
    let out = transform(
        &["--rename", "a=x", "--derive", "y=x + b", "--drop", "b"],
        input,
    );
    assert_eq!(records(&stdout(&out)), [json!({"x":1,"y":3})]);
    let out = transform(
        &["--derive", "y=a + b", "--rename", "y=z", "--select", "z"],
        input,
    );
    assert_eq!(records(&stdout(&out)), [json!({"z":3})]);
}

#[test]
fn truncated_input_stays_truncated() {
    let cut = "{\"@etl\":\"begin\",\"stream\":\"s\"}\n{\"id\":1}\n";
    let out = transform(&["--select", "id"], cut);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("upstream ended early after 1 rows"),
        "{}",
        stderr(&out)
    );
    assert!(
        !stdout(&out).contains("\"end\""),
        "no end line for a cut input"
    );
}

#[test]
fn the_whole_pipe_rejects_a_cut_stream() {
    let dir = tempdir();
    let out = bash(
        &format!(
            "etl-extract -q {} | head -n 5 | etl-transform -q --select order_id | etl-load -q w.db --table t",
            sample("orders.csv").display()
        ),
        dir.path(),
    );
    assert_ne!(code(&out), 0);
    assert_eq!(count(&dir.path().join("w.db"), "t"), None);
}

#[test]
fn casts_and_contracts_reject_with_a_reason() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "contract.json", br#"{"required":["id"],"not_null":["id"],"types":{"qty":"integer"},"allowed":{"status":["new","shipped"]},"unique":["id"]}"#);
    let input = "{\"id\":1,\"qty\":2,\"status\":\"new\"}\n\
                 {\"qty\":2}\n\
                 {\"id\":2,\"qty\":\"two\",\"status\":\"new\"}\n\
                 {\"id\":3,\"qty\":2,\"status\":\"lost\"}\n\
                 {\"id\":1,\"qty\":2,\"status\":\"new\"}\n\
                 {\"id\":4,\"qty\":\"7\",\"status\":\"shipped\"}\n";
    let mut c = cmd(TRANSFORM, d);
    c.args(["--validate", "contract.json", "--rejects", "r.ndjson"]);
    let out = run_with_input(c, input.as_bytes());
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(records(&stdout(&out)).len(), 1);
    let rejected = std::fs::read_to_string(d.join("r.ndjson")).expect("rejects");
    for rule in ["required", "types", "allowed", "unique"] {
        assert!(
            rejected.contains(&format!("contract rule {rule}")),
            "{rule}: {rejected}"
        );
    }
    let mut c = cmd(TRANSFORM, d);
    c.args([
        "--cast",
        "qty=integer",
        "--validate",
        "contract.json",
        "--rejects",
        "r2.ndjson",
    ]);
    let out = run_with_input(c, input.as_bytes());
    assert_eq!(
        records(&stdout(&out)).len(),
        2,
        "a cast before the contract fixes \"7\""
    );
}

#[test]
fn dedup_keeps_the_last_record_per_key() {
    let input = "{\"@etl\":\"begin\",\"stream\":\"s\"}\n{\"k\":1,\"v\":\"a\"}\n{\"k\":2,\"v\":\"b\"}\n{\"k\":1,\"v\":\"c\"}\n{\"@etl\":\"end\",\"stream\":\"s\",\"rows\":3}\n";
    let out = transform(&["--dedup", "k"], input);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        records(&stdout(&out)),
        [json!({"k":1,"v":"c"}), json!({"k":2,"v":"b"})]
    );
    assert_eq!(json_lines(&stdout(&out)).last().expect("end")["rows"], 2);
}

/// --dedup holds keys and spills records: each segment gets its own
/// keys, a composite key and 1 vs "1" stay apart, --sql reads the records
/// back, and the spill file leaves nothing behind in TMPDIR.
#[test]
fn dedup_spills_per_segment_and_leaves_nothing_behind() {
    let dir = tempdir();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).expect("tmp");
    let segment = |stream: &str| {
        format!(
            "{{\"@etl\":\"begin\",\"stream\":\"{stream}\"}}\n\
             {{\"k\":1,\"j\":\"x\",\"v\":1}}\n{{\"k\":\"1\",\"j\":\"x\",\"v\":2}}\n\
             {{\"k\":1,\"j\":\"y\",\"v\":3}}\n{{\"k\":1,\"j\":\"x\",\"v\":4}}\n\
             {{\"@etl\":\"end\",\"stream\":\"{stream}\",\"rows\":4}}\n"
        )
    };
    let input = segment("a") + &segment("b");
    let run_it = |args: &[&str]| {
        let mut c = cmd(TRANSFORM, dir.path());
        c.env("TMPDIR", &tmp).args(args);
        run_with_input(c, input.as_bytes())
    };
    let out = run_it(&["--dedup", "k,j"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let expected = [
        json!({"k":1,"j":"x","v":4}),
        json!({"k":"1","j":"x","v":2}),
        json!({"k":1,"j":"y","v":3}),
    ];
    let both: Vec<Value> = expected.iter().chain(expected.iter()).cloned().collect();
    assert_eq!(records(&stdout(&out)), both);
    let ends: Vec<Value> = json_lines(&stdout(&out))
        .into_iter()
        .filter(|l| l["@etl"] == json!("end"))
        .collect();
    assert_eq!(ends.len(), 2);
    assert!(ends.iter().all(|e| e["rows"] == json!(3)), "{ends:?}");
    let out = run_it(&["--dedup", "k,j", "--sql", "SELECT sum(v) AS s FROM input"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(records(&stdout(&out)), [json!({"s":9}), json!({"s":9})]);
    let left: Vec<_> = std::fs::read_dir(&tmp).expect("tmp").collect();
    assert!(left.is_empty(), "{left:?}");
}

/// --sql builds only the columns a query names, typed from the wire:
/// unnamed fields (even ones that change type) do not matter, `*` keeps
/// every field, quoted names and fields that appear late are found, a
/// field given twice keeps its last value, and every record is a row.
#[test]
fn sql_reads_only_the_fields_it_names() {
    let input = "{\"@etl\":\"begin\",\"stream\":\"s\"}\n\
        {\"id\":1,\"q\":2,\"junk\":\"x\",\"Odd Name\":1.5}\n\
        {\"id\":2,\"q\":3.5,\"junk\":[1,2]}\n\
        {\"id\":12345678901234567890123,\"junk\":true,\"late\":\"z\",\"q\":1,\"q\":4}\n\
        {\"other\":1}\n\
        {\"@etl\":\"end\",\"stream\":\"s\",\"rows\":4}\n";
    let out = transform(
        &[
            "--sql",
            "SELECT count(*) AS n, sum(q) AS q, count(\"Odd Name\") AS odd, max(late) AS late FROM input",
        ],
        input,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        records(&stdout(&out)),
        [json!({"n": 4, "q": 9.5, "odd": 1, "late": "z"})]
    );
    assert_eq!(json_lines(&stdout(&out)).last().expect("end")["rows"], 1);
    let out = transform(
        &[
            "--sql",
            "SELECT * FROM input WHERE q IS NOT NULL ORDER BY q",
        ],
        input,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let rows = records(&stdout(&out));
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[0],
        json!({"id": "1", "q": 2.0, "junk": "x", "Odd Name": 1.5, "late": null, "other": null}),
        "a column mixing 64-bit and wider integers is text; ints and floats are floats"
    );
    assert_eq!(rows[1]["junk"], json!("[1,2]"));
    assert_eq!(rows[2]["id"], json!("12345678901234567890123"));
    // Filters run before the query, on the same fast path.
    let out = transform(
        &["--filter", "id == 2", "--sql", "SELECT id, q FROM input"],
        input,
    );
    assert_eq!(records(&stdout(&out)), [json!({"id": 2, "q": 3.5})]);
}

#[test]
fn fields_a_select_leaves_behind_are_still_checked() {
    // Only id and qty are built; a bad value elsewhere still rejects its
    // record (written to --rejects with its line), never passes as clean.
    let dir = tempdir();
    let d = dir.path();
    let input = "{\"id\":1,\"note\":\"ok\",\"qty\":5}\n\
                 {\"id\":2,\"note\":\"bad \\q escape\",\"qty\":5}\n\
                 {\"id\":3,\"extra\":[1,,2],\"qty\":5}\n\
                 {\"id\":4,\"extra\":007,\"qty\":5}\n\
                 {\"Qty\":9,\"id\":5,\"qty\":6,\"tail\":{\"a\":[true]}}\n";
    let mut c = cmd(TRANSFORM, d);
    c.args([
        "--filter",
        "qty > 1",
        "--select",
        "id,qty",
        "--rejects",
        "r.ndjson",
    ]);
    let out = run_with_input(c, input.as_bytes());
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(
        records(&stdout(&out)),
        [json!({"id":1,"qty":5}), json!({"id":5,"qty":6})]
    );
    let rejected = std::fs::read_to_string(d.join("r.ndjson")).expect("rejects");
    let lines: Vec<Value> = rejected
        .lines()
        .map(|l| serde_json::from_str(l).expect("a reject is JSON"))
        .collect();
    assert_eq!(lines.len(), 3, "{rejected}");
    for (reject, line) in lines.iter().zip([2, 3, 4]) {
        assert_eq!(reject["line"], line, "{rejected}");
    }
}

#[test]
fn bad_expressions_are_usage_errors() {
    let out = transform(&["--filter", "qty >"], "");
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--filter:"), "{}", stderr(&out));
    let out = transform(&["--cast", "a=money"], "");
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("timestamptz"), "{}", stderr(&out));
}

#[test]
fn a_failing_expression_rejects_the_record() {
    let out = transform(&["--derive", "x=s * 2"], "{\"s\":\"text\"}\n");
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("stdin:1: --derive x: arithmetic on"),
        "{}",
        stderr(&out)
    );
}

/// The same query through etl-transform (polars) and through SQLite on the
/// same loaded sample data must agree.
fn same_as_sqlite(sql_transform: &str, sql_sqlite: &str, with: &[&str]) {
    let dir = tempdir();
    let d = dir.path();
    let load = bash(
        &format!(
            "etl-extract -q {o} | etl-load -q ref.db --table input && etl-extract -q {c} | etl-load -q ref.db --table c",
            o = sample("orders.csv").display(),
            c = sample("customers.csv").display()
        ),
        d,
    );
    assert_eq!(code(&load), 0, "{}", stderr(&load));
    let with_args: String = with.iter().map(|w| format!(" --with {w}")).collect();
    let ours = bash(
        &format!(
            "etl-extract -q {} | etl-transform -q{with_args} --sql \"{sql_transform}\"",
            sample("orders.csv").display()
        ),
        d,
    );
    assert_eq!(code(&ours), 0, "{}", stderr(&ours));
    let mut c = cmd(EXTRACT, d);
    c.args(["-q", "ref.db", "--query", sql_sqlite]);
    let theirs = run(c);
    assert_eq!(code(&theirs), 0, "{}", stderr(&theirs));
    assert_same_records(
        &records(&stdout(&ours)),
        &records(&stdout(&theirs)),
        sql_transform,
    );
}

#[test]
fn sql_filter_matches_sqlite() {
    let q = "SELECT order_id, zip, quantity FROM input WHERE quantity >= 2 AND zip LIKE '0%' ORDER BY order_id";
    same_as_sqlite(q, q, &[]);
}

#[test]
fn sql_aggregate_matches_sqlite() {
    let q = "SELECT customer_id, SUM(quantity) AS items, COUNT(*) AS orders, MAX(unit_price) AS top FROM input GROUP BY customer_id ORDER BY customer_id";
    same_as_sqlite(q, q, &[]);
}

#[test]
fn sql_join_matches_sqlite() {
    let with = format!("c={}", sample("customers.csv").display());
    let q = "SELECT i.order_id, c.name, c.country FROM input i JOIN c ON i.customer_id = c.customer_id ORDER BY i.order_id";
    same_as_sqlite(q, q, &[&with]);
}

#[test]
fn sql_window_matches_sqlite() {
    let q = "SELECT order_id, customer_id, SUM(quantity) OVER (PARTITION BY customer_id ORDER BY order_id) AS running FROM input ORDER BY order_id";
    same_as_sqlite(q, q, &[]);
}

#[test]
fn integer_overflow_is_a_reject_not_a_panic() {
    let input = "{\"a\":-9223372036854775808}\n{\"a\":4}\n";
    for (expr, reason) in [
        (
            "b=a/-1",
            "--derive b: integer overflow: -9223372036854775808 / -1",
        ),
        (
            "b=a*-1",
            "--derive b: integer overflow: -9223372036854775808 * -1",
        ),
        (
            "b=a-1",
            "--derive b: integer overflow: -9223372036854775808 - 1",
        ),
        (
            "b=-a",
            "--derive b: integer overflow: 0 - -9223372036854775808",
        ),
    ] {
        let out = transform(&["--derive", expr], input);
        assert_eq!(code(&out), 1, "{expr}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("stdin:1: {reason}")),
            "{expr}: {}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    // The remainder of i64::MIN by -1 is 0, exactly.
    let out = transform(&["--derive", "b=a%-1"], input);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        records(&stdout(&out)),
        [json!({"a":i64::MIN,"b":0}), json!({"a":4,"b":0})]
    );
    // With --rejects the run goes on; the record path (--dedup) agrees.
    let dir = tempdir();
    for extra in [&[][..], &["--dedup", "a"][..]] {
        let mut c = cmd(TRANSFORM, dir.path());
        c.args(["--derive", "b=a/-1", "--rejects", "r.ndjson"])
            .args(extra);
        let out = run_with_input(c, input.as_bytes());
        assert_eq!(code(&out), 3, "{extra:?}: {}", stderr(&out));
        assert_eq!(records(&stdout(&out)), [json!({"a":4,"b":-4})]);
        let rejected = std::fs::read_to_string(dir.path().join("r.ndjson")).expect("rejects");
        assert!(rejected.contains("integer overflow"), "{rejected}");
    }
}

#[test]
fn a_deeply_nested_value_is_rejected_never_taken_for_null() {
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let input = format!("{{\"a\":{deep}}}\n{{\"a\":null}}\n");
    let out = transform(&["--filter", "a != null"], &input);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "stdin:1: --filter: field \"a\" cannot be evaluated: recursion limit exceeded"
        ),
        "{}",
        stderr(&out)
    );
    // A cast would have turned it into null too.
    let out = transform(&["--cast", "a=text"], &input);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("stdin:1: --cast a: field \"a\" cannot be evaluated"),
        "{}",
        stderr(&out)
    );
    // A step that does not read the value passes it on untouched.
    let out = transform(&["--derive", "b=1"], &input);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains(&deep));
}

#[test]
fn float_overflow_is_a_reject_not_null() {
    for (args, reason) in [
        (
            &["--derive", "b=a*10"][..],
            "stdin:1: --derive b: float overflow: ",
        ),
        (
            &["--filter", "a*10 > 0"][..],
            "stdin:1: --filter: float overflow: ",
        ),
    ] {
        let out = transform(args, "{\"a\":1e308}\n");
        assert_eq!(code(&out), 1, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(reason), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("is beyond the range of a 64-bit float"),
            "{}",
            stderr(&out)
        );
    }
    let out = transform(
        &["--sql", "SELECT a * 10 AS b FROM input"],
        "{\"a\":1e308}\n",
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--sql: result row 1, column \"b\": float overflow"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unknown_control_lines_are_rejected_not_passed_on() {
    let input = "{\"@etl\":\"begin\",\"stream\":\"s\"}\n\
                 {\"@etl\":\"bogus\",\"x\":1}\n\
                 {\"x\":2}\n\
                 {\"@etl\":\"end\",\"stream\":\"s\",\"rows\":2}\n";
    let out = transform(&[], input);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("stdin:2: unknown control line \"bogus\""),
        "{}",
        stderr(&out)
    );
    let dir = tempdir();
    let mut c = cmd(TRANSFORM, dir.path());
    c.args(["--rejects", "r.ndjson"]);
    let out = run_with_input(c, input.as_bytes());
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(!stdout(&out).contains("bogus"));
    assert_eq!(records(&stdout(&out)), [json!({"x":2})]);
    assert_eq!(json_lines(&stdout(&out)).last().expect("end")["rows"], 1);
    let rejected = std::fs::read_to_string(dir.path().join("r.ndjson")).expect("rejects");
    assert!(rejected.contains("\"line\":2"), "{rejected}");
    // A step may not make a record that reads as a control line.
    let out = transform(&["--rename", "x=@etl"], "{\"x\":\"end\"}\n");
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("stdin:1: a record's first field may not be named \"@etl\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_bom_at_the_start_of_stdin_is_skipped() {
    let out = transform(&["--derive", "b=a+1"], "\u{feff}{\"a\":1}\n");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(records(&stdout(&out)), [json!({"a":1,"b":2})]);
}

#[test]
fn a_batch_keeps_its_id_and_positions_through_the_pipe() {
    let dir = tempdir();
    let input = concat!(
        r#"{"@etl":"begin","stream":"app","batch":"b-7"}"#,
        "\n",
        r#"{"id":1,"n":5}"#,
        "\n",
        r#"{"id":2,"n":1}"#,
        "\n",
        r#"{"@etl":"end","stream":"app","rows":2,"positions":[{"file":"a.log","from":0,"to":30}]}"#,
        "\n"
    );
    let mut c = cmd(TRANSFORM, dir.path());
    c.args(["-q", "--filter", "n > 2"]);
    let out = run_with_input(c, input.as_bytes());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines = json_lines(&stdout(&out));
    assert_eq!(lines[0]["batch"], "b-7");
    let end = lines.last().expect("end line");
    assert_eq!(end["rows"], 1);
    assert_eq!(end["positions"][0]["to"], 30);
}

/// A number past a float's range, or an integer past 64 bits, is compared
/// by its exact value: `1e400 > 5` keeps the record, never drops it, and
/// two long integers that one float holds are still told apart. The
/// records kept are the records as they came.
#[test]
fn filter_compares_numbers_beyond_a_float_by_their_exact_value() {
    let input = "{\"@etl\":\"begin\",\"stream\":\"s\"}\n\
        {\"id\":1,\"v\":1e400}\n\
        {\"id\":2,\"v\":2}\n\
        {\"id\":3,\"v\":12345678901234567891}\n\
        {\"id\":4,\"v\":1e-400}\n\
        {\"@etl\":\"end\",\"stream\":\"s\",\"rows\":4}\n";
    let ids = |args: &[&str]| {
        let out = transform(args, input);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        records(&stdout(&out))
            .iter()
            .map(|r| r["id"].as_i64().expect("id"))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&["--filter", "v > 5"]), [1, 3]);
    assert_eq!(ids(&["--filter", "v < 5"]), [2, 4]);
    assert_eq!(
        ids(&["--filter", "v == 12345678901234567890"]),
        [] as [i64; 0]
    );
    assert_eq!(ids(&["--filter", "v > 12345678901234567890"]), [1, 3]);
    assert_eq!(ids(&["--filter", "v > 0 and v < 1"]), [4]);
    // The path that builds whole records agrees.
    assert_eq!(ids(&["--filter", "v > 5", "--dedup", "id"]), [1, 3]);
    let out = transform(&["--filter", "v > 5"], input);
    let text = stdout(&out);
    assert!(text.contains("{\"id\":1,\"v\":1e400}\n"), "{text}");
    assert!(
        text.contains("{\"id\":3,\"v\":12345678901234567891}\n"),
        "{text}"
    );
    assert_eq!(json_lines(&text).last().expect("end")["rows"], 2);
}

/// `--derive` keeps an integer past 64 bits exact when it passes it on,
/// and arithmetic on one (which a float would round) rejects the record
/// with the reason, as an overflow does.
#[test]
fn derive_never_turns_a_wide_integer_into_a_float() {
    let input = "{\"id\":1,\"w\":12345678901234567890123}\n{\"id\":2,\"w\":7}\n";
    let out = transform(
        &["--derive", "c=coalesce(w, 0)", "--derive", "r=round(w)"],
        input,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "{\"id\":1,\"w\":12345678901234567890123,\"c\":12345678901234567890123,\
         \"r\":12345678901234567890123}\n{\"id\":2,\"w\":7,\"c\":7,\"r\":7}\n"
    );
    let out = transform(&["--derive", "n=w + 1"], input);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "stdin:1: --derive n: integer 12345678901234567890123 does not fit in 64 bits: \
             arithmetic on it would not be exact"
        ),
        "{}",
        stderr(&out)
    );
    let dir = tempdir();
    let mut c = cmd(TRANSFORM, dir.path());
    c.args(["--derive", "n=w * 2", "--rejects", "r.ndjson"]);
    let out = run_with_input(c, input.as_bytes());
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(records(&stdout(&out)), [json!({"id":2,"w":7,"n":14})]);
    let rejected = std::fs::read_to_string(dir.path().join("r.ndjson")).expect("rejects");
    assert!(rejected.contains("does not fit in 64 bits"), "{rejected}");
}

/// `--sql` passes nested values through as the same JSON values (not
/// their text), as it does integers past 64 bits and numbers past a
/// float's range; they group and join as they are, and CAST gives their
/// text.
#[test]
fn sql_passes_nested_values_through_as_json() {
    let input = "{\"@etl\":\"begin\",\"stream\":\"s\"}\n\
        {\"id\":1,\"n\":[[1]],\"o\":{\"a\": [1, 2.50]},\"w\":12345678901234567890123,\"h\":1e400}\n\
        {\"id\":2,\"n\":[[1]],\"o\":null,\"w\":null,\"h\":2e400}\n\
        {\"@etl\":\"end\",\"stream\":\"s\",\"rows\":2}\n";
    let out = transform(&["--sql", "SELECT * FROM input ORDER BY id"], input);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "{\"id\":1,\"n\":[[1]],\"o\":{\"a\":[1,2.50]},\"w\":12345678901234567890123,\"h\":1e400}\n\
             {\"id\":2,\"n\":[[1]],\"o\":null,\"w\":null,\"h\":2e400}\n"
        ),
        "{text}"
    );
    let out = transform(
        &[
            "--sql",
            "SELECT n, count(*) AS c, CAST(max(o) AS VARCHAR) AS t FROM input GROUP BY n",
        ],
        input,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        records(&stdout(&out)),
        [json!({"n": [[1]], "c": 2, "t": "{\"a\":[1,2.50]}"})]
    );
    // Text functions need the text: the hint says how.
    let out = transform(&["--sql", "SELECT upper(n) AS u FROM input"], input);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).ends_with(
            "hint: nested values are JSON columns: CAST(name AS VARCHAR) gives their JSON text\n"
        ),
        "{}",
        stderr(&out)
    );
}

/// The begin line, the records and the end line of a transform's output.
fn begin_schema(out: &std::process::Output) -> Value {
    json_lines(&stdout(out))[0]["schema"].clone()
}

#[test]
fn casts_to_logical_types_check_values_and_type_the_schema() {
    let dir = tempdir();
    let d = dir.path();
    let input = "{\"@etl\":\"begin\",\"version\":2,\"stream\":\"s\",\"schema\":{\"id\":\"integer\",\"day\":\"text\",\"amount\":\"text\",\"u\":\"text\"}}\n\
        {\"id\":1,\"day\":\"2024-02-29\",\"amount\":\"12.50\",\"u\":\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"}\n\
        {\"id\":2,\"day\":\"2023-02-29\",\"amount\":0.10,\"u\":null}\n\
        {\"id\":3,\"day\":null,\"amount\":\"12.505\",\"u\":null}\n\
        {\"id\":4,\"day\":\"2024-01-02\",\"amount\":1,\"u\":\"not-a-uuid\"}\n\
        {\"@etl\":\"end\",\"stream\":\"s\",\"rows\":4}\n";
    let args = [
        "--cast",
        "day=date,amount=decimal(12,2)",
        "--cast",
        "u=uuid",
        "--rejects",
        "r.ndjson",
    ];
    let mut c = cmd(TRANSFORM, d);
    c.args(args);
    let out = run_with_input(c, input.as_bytes());
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(
        begin_schema(&out),
        json!({"id": "integer", "day": "date", "amount": "decimal(12,2)", "u": "uuid"})
    );
    // Decimals become JSON numbers digit for digit; nothing else changes.
    assert!(
        stdout(&out).contains(r#"{"id":1,"day":"2024-02-29","amount":12.50,"#),
        "{}",
        stdout(&out)
    );
    assert_eq!(records(&stdout(&out)).len(), 1);
    let rejected = std::fs::read_to_string(d.join("r.ndjson")).expect("rejects");
    let lines: Vec<Value> = rejected
        .lines()
        .map(|l| serde_json::from_str(l).expect("a reject is JSON"))
        .collect();
    assert_eq!(lines.len(), 3, "{rejected}");
    for (reject, line) in lines.iter().zip([3, 4, 5]) {
        assert_eq!(reject["line"], line, "{rejected}");
    }
    assert!(rejected.contains("no day 29 in 2023-02"), "{rejected}");
    assert!(rejected.contains("digits after the point"), "{rejected}");
    assert!(rejected.contains("is not a uuid"), "{rejected}");
    // Without --rejects the first bad value fails the run, naming its line.
    let out = transform(&["--cast", "day=date"], input);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("stdin:3: --cast day: \"2023-02-29\" has no day 29 in 2023-02"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn filters_compare_instants_across_offsets() {
    let input = "{\"@etl\":\"begin\",\"version\":2,\"stream\":\"s\",\"schema\":{\"id\":\"integer\",\"ts\":\"timestamptz\",\"day\":\"date\",\"t\":\"time\"}}\n\
        {\"id\":1,\"ts\":\"2024-01-01T10:00:00+02:00\",\"day\":\"2024-01-01\",\"t\":\"10:00:00.50\"}\n\
        {\"id\":2,\"ts\":\"2024-01-01T09:30:00Z\",\"day\":\"2024-01-02\",\"t\":\"10:00:00.5\"}\n\
        {\"id\":3,\"ts\":\"2024-01-01T12:00:00+05:00\",\"day\":\"2023-12-31\",\"t\":\"09:00:00\"}\n\
        {\"id\":4,\"ts\":null,\"day\":null,\"t\":null}\n\
        {\"@etl\":\"end\",\"stream\":\"s\",\"rows\":4}\n";
    let ids = |args: &[&str]| -> Vec<Value> {
        let out = transform(args, input);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        records(&stdout(&out))
            .iter()
            .map(|r| r["id"].clone())
            .collect()
    };
    // 10:00+02:00 is 08:00Z and 12:00+05:00 is 07:00Z: both before 09:00Z,
    // though their text sorts after it.
    assert_eq!(
        ids(&["--filter", "ts < '2024-01-01T09:00:00Z'"]),
        [json!(1), json!(3)]
    );
    assert_eq!(
        ids(&["--filter", "ts == '2024-01-01T08:00:00+00:00'"]),
        [json!(1)]
    );
    // The same on the record path (--dedup), and after a select.
    assert_eq!(
        ids(&[
            "--select",
            "id,ts",
            "--filter",
            "ts >= '2024-01-01T04:00:00-05:00'",
            "--dedup",
            "id"
        ]),
        [json!(2)]
    );
    // Times compare by value: 10:00:00.50 is 10:00:00.5.
    assert_eq!(
        ids(&["--filter", "t == '10:00:00.5' and day > '2023-12-31'"]),
        [json!(1), json!(2)]
    );
    // A field cast to timestamptz compares as one too.
    let untyped = "{\"ts\":\"2024-01-01T10:00:00+02:00\"}\n{\"ts\":\"2024-01-01T09:30:00Z\"}\n";
    let out = transform(
        &[
            "--cast",
            "ts=timestamptz",
            "--filter",
            "ts < '2024-01-01T09:00:00Z'",
        ],
        untyped,
    );
    assert_eq!(
        records(&stdout(&out)),
        [json!({"ts": "2024-01-01T10:00:00+02:00"})]
    );
}

#[test]
fn derived_fields_keep_the_types_that_are_known() {
    let input = "{\"@etl\":\"begin\",\"version\":2,\"stream\":\"s\",\"schema\":{\"id\":\"integer\",\"ts\":\"timestamptz\",\"amount\":\"decimal(12,2)\"}}\n\
        {\"id\":1,\"ts\":\"2024-01-01T10:00:00+02:00\",\"amount\":12.50}\n\
        {\"@etl\":\"end\",\"stream\":\"s\",\"rows\":1}\n";
    let out = transform(
        &[
            "--derive",
            "at=ts",
            "--derive",
            "next=id + 1",
            "--derive",
            "half=amount / 2",
            "--derive",
            "big=amount > 10",
            "--derive",
            "label=upper('x' . id)",
            "--derive",
            "price=amount",
        ],
        input,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        begin_schema(&out),
        json!({
            "id": "integer", "ts": "timestamptz", "amount": "decimal(12,2)",
            "at": "timestamptz", "next": "integer", "big": "boolean",
            "label": "text", "price": "decimal(12,2)"
        }),
        "arithmetic on decimals runs in floats: its result is left untyped"
    );
    assert!(
        stdout(&out).contains(r#""price":12.50"#),
        "{}",
        stdout(&out)
    );
}

#[test]
fn sql_sums_decimals_exactly() {
    let input = "{\"@etl\":\"begin\",\"version\":2,\"stream\":\"s\",\"schema\":{\"k\":\"text\",\"amount\":\"decimal(12,2)\"}}\n\
        {\"k\":\"a\",\"amount\":12.50}\n\
        {\"k\":\"a\",\"amount\":0.10}\n\
        {\"@etl\":\"end\",\"stream\":\"s\",\"rows\":2}\n";
    let out = transform(&["--sql", "select sum(amount) as total from input"], input);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(r#"{"total":12.60}"#), "{text}");
    let schema = begin_schema(&out);
    let total = schema["total"].as_str().expect("total is typed");
    assert!(
        total.starts_with("decimal(") && total.ends_with(",2)"),
        "{schema}"
    );
    assert_eq!(json_lines(&text).last().expect("end")["rows"], 1);
    // A decimal passing through keeps its precision and scale.
    let out = transform(&["--sql", "select k, amount from input"], input);
    assert_eq!(
        begin_schema(&out),
        json!({"k": "text", "amount": "decimal(12,2)"})
    );
    assert!(
        stdout(&out).contains(r#""amount":0.10}"#),
        "{}",
        stdout(&out)
    );
}

#[test]
fn sql_keeps_dates_times_uuids_and_bytes() {
    let input = "{\"@etl\":\"begin\",\"version\":2,\"stream\":\"s\",\"schema\":{\"d\":\"date\",\"ts\":\"timestamptz\",\"lt\":\"timestamp\",\"t\":\"time\",\"u\":\"uuid\",\"b\":\"bytes\"}}\n\
        {\"d\":\"2024-02-29\",\"ts\":\"2024-01-01T10:00:00.5+02:00\",\"lt\":\"2024-01-01T10:00:00.123456\",\"t\":\"13:04:05\",\"u\":\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\",\"b\":\"3q2+7w==\"}\n\
        {\"d\":\"0001-01-01\",\"ts\":null,\"lt\":null,\"t\":null,\"u\":null,\"b\":\"\"}\n\
        {\"@etl\":\"end\",\"stream\":\"s\",\"rows\":2}\n";
    let out = transform(&["--sql", "SELECT * FROM input ORDER BY d DESC"], input);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        begin_schema(&out),
        json!({"d": "date", "ts": "timestamptz", "lt": "timestamp", "t": "time", "u": "uuid", "b": "bytes"})
    );
    assert_eq!(
        records(&stdout(&out)),
        [
            json!({"d": "2024-02-29", "ts": "2024-01-01T08:00:00.5+00:00", "lt": "2024-01-01T10:00:00.123456", "t": "13:04:05", "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "b": "3q2+7w=="}),
            json!({"d": "0001-01-01", "ts": null, "lt": null, "t": null, "u": null, "b": ""}),
        ]
    );
    // An aggregate of dates is a date; a uuid made into other text is text.
    let out = transform(
        &[
            "--sql",
            "SELECT max(d) AS last, max(upper(u)) AS shout FROM input",
        ],
        input,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(begin_schema(&out), json!({"last": "date", "shout": "text"}));
    assert_eq!(
        records(&stdout(&out)),
        [json!({"last": "2024-02-29", "shout": "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"})]
    );
}
