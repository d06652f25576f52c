//! CSV columns typed as what they hold: fixed-scale numbers are decimals,
//! ISO dates and instants are dates and instants, in every target, with
//! sums that add up to the cent.

use std::path::Path;

use crate::common::expect::expect;
use crate::common::*;
use crate::lake::{duckdb, duckdb_python};

/// Orders whose amounts are money and whose times are instants.
const ORDERS: &str = "id,amount,paid_at,day,note\n\
    1,12.50,2024-01-02T03:04:05Z,2024-02-29,a\n\
    2,0.10,2024-01-02 05:04:05.123456+02,2024-03-01,\n\
    3,249.50,2024-01-03T00:00:00-05:30,2024-03-02,c\n\
    4,9.99,2024-01-04T12:00:00+00:00,2024-03-03,d\n";

fn orders(dir: &Path) {
    write(dir, "orders.csv", ORDERS.as_bytes());
}

#[test]
fn the_begin_line_names_decimals_dates_and_instants() {
    let dir = tempdir();
    orders(dir.path());
    let mut c = cmd(EXTRACT, dir.path());
    c.args(["orders.csv", "-q"]);
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines = json_lines(&stdout(&out));
    assert_eq!(
        lines[0]["schema"],
        serde_json::json!({"id":"integer","amount":"decimal(15,2)","paid_at":"timestamptz",
                           "day":"date","note":"text"})
    );
    // Digits as written; instants in ISO form (T, +HH:MM).
    assert_eq!(
        stdout(&out).lines().nth(2),
        Some(
            r#"{"id":2,"amount":0.10,"paid_at":"2024-01-02T05:04:05.123456+02:00","day":"2024-03-01","note":null}"#
        )
    );
}

#[test]
fn csv_decimals_and_instants_arrive_in_postgresql_as_numeric_and_timestamptz() {
    let Some(pg) = PgSchema::new("csvtypes") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    orders(d);
    let mut c = cmd(LOAD, d);
    c.arg(&pg.url).args([
        "--schema-name",
        &pg.name,
        "-t",
        "orders",
        "-q",
        "orders.csv",
    ]);
    expect(&run(c), "CSV into PostgreSQL").code(0).stderr("");
    let s = &pg.name;
    assert_eq!(
        pg.rows(&format!(
            "SELECT column_name, data_type, numeric_precision, numeric_scale \
             FROM information_schema.columns WHERE table_schema = '{s}' \
             AND table_name = 'orders' ORDER BY ordinal_position"
        )),
        [
            "id|bigint|64|0",
            "amount|numeric|15|2",
            "paid_at|timestamp with time zone||",
            "day|date||",
            "note|text||",
        ]
    );
    assert_eq!(
        pg.rows(&format!(
            "SELECT sum(amount)::text, \
             to_char(min(paid_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), \
             max(day)::text FROM {s}.orders"
        )),
        ["272.09|2024-01-02 03:04:05.000000|2024-03-03"]
    );
    // The instant with an offset is the same instant.
    assert_eq!(
        pg.rows(&format!(
            "SELECT id FROM {s}.orders WHERE paid_at = '2024-01-03T05:30:00Z' ORDER BY id"
        )),
        ["3"]
    );
}

#[test]
fn csv_decimals_and_instants_arrive_in_parquet_as_duckdb_reads_them() {
    let dir = tempdir();
    let d = dir.path();
    orders(d);
    let mut c = cmd(LOAD, d);
    c.args(["orders.parquet", "-q", "orders.csv"]);
    expect(&run(c), "CSV into Parquet").code(0).stderr("");
    let Some(python) = duckdb_python() else {
        return;
    };
    let types = duckdb(
        &python,
        d,
        "SELECT string_agg(column_name || ' ' || column_type, ', ') \
         FROM (DESCRIBE SELECT * FROM 'orders.parquet')",
    );
    assert_eq!(
        types,
        "id BIGINT, amount DECIMAL(15,2), paid_at TIMESTAMP WITH TIME ZONE, day DATE, note VARCHAR"
    );
    assert_eq!(
        duckdb(
            &python,
            d,
            "SET TimeZone = 'UTC'; SELECT sum(amount), min(paid_at), \
             sum(CASE WHEN amount IN (12.50, 0.10) THEN amount END) FROM 'orders.parquet'"
        ),
        "272.09|2024-01-02 03:04:05+00:00|12.60"
    );
}

#[test]
fn sqlite_compares_and_sums_inferred_decimals_as_numbers() {
    let dir = tempdir();
    let d = dir.path();
    orders(d);
    let mut c = cmd(LOAD, d);
    c.args(["w.db", "-t", "orders", "-q", "orders.csv"]);
    expect(&run(c), "CSV into SQLite").code(0).stderr("");
    let conn = rusqlite::Connection::open(d.join("w.db")).expect("db opens");
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'orders'",
            [],
            |r| r.get(0),
        )
        .expect("table");
    assert_eq!(
        sql,
        r#"CREATE TABLE "orders" ("id" INTEGER, "amount" DECIMAL(15,2), "paid_at" TIMESTAMPTZ, "day" DATE, "note" TEXT)"#
    );
    // Numbers, not text: 249.50 > 100 and 9.99 < 100 (as text "9.99" > "100").
    let (over, top, total): (i64, f64, String) = conn
        .query_row(
            "SELECT count(*) FILTER (WHERE amount > 100), max(amount), printf('%.2f', sum(amount)) FROM orders",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("query");
    assert_eq!((over, top, total.as_str()), (1, 249.5, "272.09"));
    // And back out with their scale and type.
    let back = extract_records(d, &["w.db", "--table", "orders"]);
    assert_eq!(back[0]["amount"].to_string(), "12.50");
    let mut c = cmd(EXTRACT, d);
    c.args(["w.db", "--table", "orders", "-q"]);
    let out = run(c);
    let first = stdout(&out);
    assert!(
        first
            .lines()
            .next()
            .unwrap_or_default()
            .contains(r#""amount":"decimal(15,2)""#),
        "{first}"
    );
    assert!(first.contains(r#""amount":0.10,"#), "{first}");
}

#[test]
fn a_later_value_with_more_digits_is_a_reject_never_rounded() {
    let dir = tempdir();
    let d = dir.path();
    let mut csv = String::from("id,amount\n");
    for i in 1..=1000 {
        csv.push_str(&format!("{i},{i}.25\n"));
    }
    csv.push_str("1001,12.505\n1002,7.50\n");
    write(d, "late.csv", csv.as_bytes());
    let mut c = cmd(LOAD, d);
    c.args(["w.db", "-t", "t", "--rejects", "bad.ndjson", "late.csv"]);
    expect(&run(c), "a later 12.505")
        .code(3)
        .stdout("")
        .stderr_like(
            "etl-load: warning: late.csv: values that did not fit their column's type were passed \
             on as text in: amount (1 values)\n\
             etl-load: 1002 rows read, 1001 written, 1 rejected in *\n",
        );
    assert_eq!(count(&d.join("w.db"), "t"), Some(1001));
    let rejects = json_lines(&std::fs::read_to_string(d.join("bad.ndjson")).expect("rejects"));
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0]["line"], 1002);
    assert_eq!(
        rejects[0]["reason"],
        "column \"amount\": text value \"12.505\" has 3 digits after the point; \
         decimal(15,2) keeps 2"
    );
}

#[test]
fn null_tokens_leave_columns_numeric_and_averages_match_duckdb() {
    let Some(pg) = PgSchema::new("csvtypesna") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    std::fs::copy(sample("readings.csv"), d.join("readings.csv")).expect("copy");
    let mut c = cmd(LOAD, d);
    c.arg(&pg.url).args([
        "--schema-name",
        &pg.name,
        "-t",
        "readings",
        "-q",
        "--null-value",
        "NA",
        "readings.csv",
    ]);
    expect(&run(c), "readings into PostgreSQL")
        .code(0)
        .stderr("");
    let s = &pg.name;
    assert_eq!(
        pg.rows(&format!(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_schema = '{s}' AND table_name = 'readings' ORDER BY ordinal_position"
        )),
        [
            "station|text",
            "day|date",
            "temp_c|numeric",
            "rain_mm|numeric",
            "note|text"
        ]
    );
    let ours = pg.rows(&format!(
        "SELECT round(avg(temp_c)::numeric, 6)::text, round(avg(rain_mm), 6)::text, \
         count(temp_c), count(rain_mm) FROM {s}.readings"
    ));
    let Some(python) = duckdb_python() else {
        return;
    };
    let theirs = duckdb(
        &python,
        d,
        "SELECT round(avg(temp_c), 6)::VARCHAR, round(avg(rain_mm), 6)::VARCHAR, \
         count(temp_c), count(rain_mm) FROM read_csv('readings.csv', nullstr = 'NA')",
    );
    let numbers = |row: &str| -> Vec<f64> {
        row.split('|')
            .map(|v| v.parse().expect("a number"))
            .collect()
    };
    assert_eq!(numbers(&ours[0]), numbers(&theirs), "{ours:?} vs {theirs}");
    assert_eq!(numbers(&theirs), [10.5, 1.2, 3.0, 3.0]);
}
