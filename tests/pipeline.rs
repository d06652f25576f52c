//! extract | load end to end, and back out again.

use serde_json::Value;

use crate::common::*;

#[test]
fn orders_round_trip_through_sqlite() {
    let dir = tempdir();
    let orders = sample("orders.csv");
    let script = format!(
        "etl-extract {} | etl-load w.db --table orders",
        orders.display()
    );
    let out = bash(&script, dir.path());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let db = dir.path().join("w.db");
    assert_eq!(
        count(&db, "orders"),
        Some(12),
        "exactly the data rows of the CSV"
    );

    let conn = rusqlite::Connection::open(&db).expect("open");
    let (zip, ext, note, product): (String, i64, String, String) = conn
        .query_row(
            "SELECT zip, external_ref, note, product FROM orders WHERE order_id = 1004",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("row 1004");
    assert_eq!(zip, "00501");
    assert_eq!(ext, 9_007_199_254_740_993_004);
    assert_eq!(note, "Gift wrap, please.\nCard: \"Happy birthday, Ana!\"");
    assert_eq!(product, "Café crème beans");

    let mut c = cmd(EXTRACT, dir.path());
    c.args(["-q", "--format", "csv"]).arg(&orders);
    let from_csv = records(&stdout(&run(c)));
    let mut c = cmd(EXTRACT, dir.path());
    c.args(["-q", "w.db", "--table", "orders"]);
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let from_db = records(&stdout(&out));
    assert_eq!(from_csv.len(), from_db.len());
    for (a, b) in from_csv.iter().zip(&from_db) {
        assert!(same(a, b), "round trip changed a record:\n{a}\n{b}");
    }
    let begin = &json_lines(&stdout(&out))[0];
    assert_eq!(begin["schema"]["shipped"], "boolean");
    assert_eq!(begin["schema"]["external_ref"], "integer");
}

#[test]
fn events_with_nested_values_round_trip() {
    let dir = tempdir();
    let script = format!(
        "etl-load w.db --table events -q {} && etl-extract -q w.db --table events",
        sample("events.ndjson").display()
    );
    let out = bash(&script, dir.path());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let back = records(&stdout(&out));
    let original = json_lines(&std::fs::read_to_string(sample("events.ndjson")).expect("read"));
    assert_eq!(back.len(), original.len());
    assert_eq!(back[4]["props"], original[4]["props"]);
    assert_eq!(back[7]["device"], "mobile");
    assert_eq!(
        back[0]["device"],
        Value::Null,
        "a field that appears later becomes a column"
    );
}

#[test]
fn malformed_csv_leaves_the_target_untouched() {
    let dir = tempdir();
    let db = dir.path().join("w.db");
    let good = bash(
        &format!(
            "etl-extract {} | etl-load w.db --table orders -q",
            sample("orders.csv").display()
        ),
        dir.path(),
    );
    assert_eq!(code(&good), 0, "{}", stderr(&good));
    let before = dump(&db, "orders");
    let mut bad = std::fs::read(sample("orders.csv")).expect("read");
    bad.extend_from_slice(b"1013,1,C009,00000,\"never closed,1,1.00,2026-11-06T00:00:00Z,true,\n");
    write(dir.path(), "bad.csv", &bad);
    for mode in ["append", "replace"] {
        let out = bash(
            &format!("etl-extract bad.csv | etl-load w.db --table orders --mode {mode}"),
            dir.path(),
        );
        assert_ne!(code(&out), 0);
        let err = stderr(&out);
        assert!(
            err.contains("bad.csv:16: unterminated quoted field 5"),
            "{err}"
        );
        assert!(err.contains("upstream ended early after 12 rows"), "{err}");
        assert_eq!(dump(&db, "orders"), before, "{mode}");
    }
}

#[test]
fn error_after_many_rows_leaves_the_target_untouched() {
    let dir = tempdir();
    let db = dir.path().join("w.db");
    let mut csv = String::from("id,name\n");
    for i in 0..5000 {
        csv.push_str(&format!("{i},n{i}\n"));
    }
    csv.push_str("5000,\"cut");
    write(dir.path(), "big.csv", csv.as_bytes());
    let out = bash("etl-extract big.csv | etl-load w.db --table t", dir.path());
    assert_ne!(code(&out), 0);
    let err = stderr(&out);
    assert!(
        err.contains("big.csv:5002: unterminated quoted field 2"),
        "{err}"
    );
    assert!(
        err.contains("upstream ended early after 5000 rows"),
        "{err}"
    );
    assert_eq!(
        count(&db, "t"),
        None,
        "a failed first load creates no table"
    );
}

#[test]
fn missing_source_never_empties_the_table() {
    let dir = tempdir();
    let db = dir.path().join("w.db");
    let good = bash(
        &format!(
            "etl-extract {} | etl-load w.db --table orders -q",
            sample("orders.csv").display()
        ),
        dir.path(),
    );
    assert_eq!(code(&good), 0);
    let out = bash(
        "etl-extract missing.csv | etl-load w.db --table orders --mode replace",
        dir.path(),
    );
    assert_ne!(code(&out), 0);
    let err = stderr(&out);
    assert!(
        err.contains("etl-extract: error: cannot open missing.csv"),
        "{err}"
    );
    assert!(
        err.contains("refusing to replace table \"orders\" with nothing"),
        "{err}"
    );
    assert_eq!(count(&db, "orders"), Some(12));
}
