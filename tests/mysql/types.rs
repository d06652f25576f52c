//! Logical types (wire version 2) from MariaDB: the source declares what
//! each column holds, and a new MariaDB, PostgreSQL or SQLite table gets
//! native columns with the values unchanged; what does not fit is a
//! reject with its line and reason.

use crate::common::*;

/// Every type with edge values: 65 digits, microseconds, a TIMESTAMP, a
/// time of day and MySQL's TIMEs beyond one (negative, over 24 hours),
/// YEAR, BIT, empty bytes, the largest BIGINT UNSIGNED, ENUM and SET.
const DDL: &str = "(id INT PRIMARY KEY, dec65 DECIMAL(65,30), money DECIMAL(12,2), \
    dt DATETIME(6), ts TIMESTAMP(6) NULL, d DATE, tm TIME(6), y YEAR, bits BIT(12), \
    flag BIT(1), bin VARBINARY(16), blob_v BLOB, big BIGINT UNSIGNED, e ENUM('a','b'), \
    st SET('x','y'), doc JSON, txt VARCHAR(20))";

const ROWS: &str = "(1, 12345678901234567890123456789012345.123456789012345678901234567890, \
    12.50, '2024-02-29 23:59:59.123456', '2024-01-02 03:04:05.000001', '2024-02-29', \
    '13:04:05.123456', 2024, b'101010101010', b'1', X'DEADBEEF', X'', \
    18446744073709551615, 'b', 'x,y', '{\"a\": [1, 2.50]}', 'Café'), \
    (2, -0.000000000000000000000000000001, -0.01, '0001-01-01 00:00:00', \
    '1970-01-01 00:00:01', '0001-01-01', '00:00:00', 1901, b'0', b'0', X'00', X'00FF0A', 0, 'a', \
    '', '[]', ''), \
    (3, 0, 9999999999.99, '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999', \
    '9999-12-31', '23:59:59.999999', 2155, b'111111111111', NULL, NULL, NULL, \
    9223372036854775808, NULL, NULL, NULL, NULL), \
    (4, NULL, NULL, NULL, NULL, NULL, '-12:30:00.5', NULL, NULL, NULL, NULL, NULL, NULL, \
    NULL, NULL, NULL, NULL), \
    (5, NULL, NULL, NULL, NULL, NULL, '838:59:59', NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
    NULL, NULL, NULL)";

/// A time's fraction without its trailing zeros (`.500000` as `.5`).
fn trim_fraction(s: &str) -> String {
    let (body, zone) = match s.strip_suffix('Z') {
        Some(b) => (b, "Z"),
        None => (s, ""),
    };
    match body.split_once('.') {
        Some((whole, frac)) if frac.trim_end_matches('0').is_empty() => format!("{whole}{zone}"),
        Some((whole, frac)) => format!("{whole}.{}{zone}", frac.trim_end_matches('0')),
        None => s.to_string(),
    }
}

fn ok(out: &std::process::Output, what: &str) {
    assert_eq!(code(out), 0, "{what}: {}", stderr(out));
}

fn my_columns(my: &MyDb, table: &str) -> Vec<String> {
    my.rows(&format!(
        "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION"
    ))
}

fn sqlite_columns(db: &std::path::Path, table: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("open");
    let mut stmt = conn
        .prepare("SELECT name, type FROM pragma_table_info(?1)")
        .expect("prepare");
    stmt.query_map([table], |r| {
        Ok(format!(
            "{}|{}",
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?
        ))
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

#[test]
fn mariadb_types_arrive_native_in_mariadb_postgres_and_sqlite() {
    let Some(my) = MyDb::new("logical") else {
        return;
    };
    my.exec(&format!("CREATE TABLE src {DDL}"));
    my.exec(&format!("INSERT INTO src VALUES {ROWS}"));
    let dir = tempdir();
    let d = dir.path();
    let url = &my.url;

    let out = bash(
        &format!("etl-extract -q '{url}' --query 'SELECT * FROM src ORDER BY id'"),
        d,
    );
    ok(&out, "extract");
    let text = stdout(&out);
    let begin = &json_lines(&text)[0];
    assert_eq!(begin["version"], 2);
    assert_eq!(
        begin["schema"],
        serde_json::json!({
            "id": "integer", "dec65": "decimal(65,30)", "money": "decimal(12,2)",
            "dt": "timestamp", "ts": "timestamptz", "d": "date", "tm": "time", "y": "integer",
            "bits": "integer", "flag": "boolean", "bin": "bytes", "blob_v": "bytes",
            "big": "integer", "e": "text", "st": "text", "doc": "json", "txt": "text"
        })
    );
    let original = stream_records(&text, 5);
    let first = &original[0];
    assert_eq!(
        first["dec65"].to_string(),
        "12345678901234567890123456789012345.123456789012345678901234567890"
    );
    assert_eq!(first["money"].to_string(), "12.50");
    assert_eq!(first["dt"], "2024-02-29T23:59:59.123456");
    assert_eq!(first["ts"], "2024-01-02T03:04:05.000001Z");
    assert_eq!(first["tm"], "13:04:05.123456");
    assert_eq!(first["bits"].to_string(), "2730");
    assert_eq!(first["bin"], "3q2+7w==");
    assert_eq!(first["blob_v"], "");
    assert_eq!(first["big"].to_string(), "18446744073709551615");
    assert_eq!(first["st"], "x,y");
    assert_eq!(
        original[1]["dec65"].to_string(),
        "-0.000000000000000000000000000001"
    );
    assert_eq!(original[1]["blob_v"], "AP8K");
    assert_eq!(original[3]["tm"], "-12:30:00.500000");
    assert_eq!(original[4]["tm"], "838:59:59.000000");

    // MariaDB -> a new MariaDB table: native columns, identical values.
    ok(
        &bash(
            &format!("etl-extract -q '{url}' --table src | etl-load -q '{url}' --table copy"),
            d,
        ),
        "MariaDB -> MariaDB",
    );
    assert_eq!(
        my_columns(&my, "copy"),
        [
            "id|bigint(20)",
            "dec65|decimal(65,30)",
            "money|decimal(12,2)",
            "dt|datetime(6)",
            "ts|datetime(6)",
            "d|date",
            "tm|time(6)",
            "y|bigint(20)",
            "bits|bigint(20)",
            "flag|bit(1)",
            "bin|longblob",
            "blob_v|longblob",
            "big|bigint(20) unsigned",
            "e|longtext",
            "st|longtext",
            "doc|longtext",
            "txt|longtext",
        ]
    );
    assert_eq!(
        my.rows(
            "SELECT COLUMN_COMMENT FROM information_schema.COLUMNS WHERE \
                 TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'copy' AND COLUMN_NAME = 'ts'"
        ),
        ["UTC"]
    );
    // The DATETIME commented UTC reads back as the instant it holds.
    let copy = extract_records(d, &[url, "--query", "SELECT * FROM copy ORDER BY id"]);
    assert_eq!(copy, original, "MariaDB -> MariaDB changed a value");
    assert_eq!(
        my.rows("SELECT COUNT(*), COUNT(DISTINCT id) FROM copy"),
        ["5|5"]
    );

    // MariaDB -> SQLite -> a new MariaDB table.
    ok(
        &bash(
            &format!(
                "etl-extract -q '{url}' --table src | etl-load -q w.db --table t && \
                 etl-extract -q w.db --query 'SELECT * FROM t ORDER BY id' | \
                 etl-load -q '{url}' --table back"
            ),
            d,
        ),
        "MariaDB -> SQLite -> MariaDB",
    );
    assert_eq!(
        sqlite_columns(&d.join("w.db"), "t"),
        [
            "id|INTEGER",
            "dec65|DECIMAL_TEXT(65,30)",
            "money|DECIMAL(12,2)",
            "dt|DATETIME",
            "ts|TIMESTAMPTZ",
            "d|DATE",
            "tm|TIME",
            "y|INTEGER",
            "bits|INTEGER",
            "flag|BOOLEAN",
            "bin|BLOB",
            "blob_v|BLOB",
            "big|DECIMAL_TEXT(20,0)",
            "e|TEXT",
            "st|TEXT",
            "doc|JSON_TEXT",
            "txt|TEXT",
        ]
    );
    let back = extract_records(d, &[url, "--query", "SELECT * FROM back ORDER BY id"]);
    assert_eq!(
        back, original,
        "MariaDB -> SQLite -> MariaDB changed a value"
    );
    assert_eq!(
        my.rows("SELECT COUNT(*), COUNT(DISTINCT id) FROM back"),
        ["5|5"]
    );

    // MariaDB -> PostgreSQL: native columns; MySQL's TIMEs beyond a day
    // are rejects there, with their line and reason.
    let Some(pg) = PgSchema::new("from_my") else {
        return;
    };
    let out = bash(
        &format!(
            "etl-extract -q '{url}' --query 'SELECT * FROM src ORDER BY id' | \
             etl-load -q '{}' --schema-name {} --table t --rejects bad.ndjson",
            pg.url, pg.name
        ),
        d,
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let rejects = json_lines(&std::fs::read_to_string(d.join("bad.ndjson")).expect("rejects"));
    let lines: Vec<u64> = rejects
        .iter()
        .map(|r| r["line"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(lines, [5, 6], "{rejects:?}");
    assert!(
        rejects[0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("column \"tm\""),
        "{rejects:?}"
    );
    assert_eq!(
        pg.rows(&format!(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = '{}' AND table_name = 't' ORDER BY ordinal_position",
            pg.name
        )),
        [
            "id|bigint",
            "dec65|numeric",
            "money|numeric",
            "dt|timestamp without time zone",
            "ts|timestamp with time zone",
            "d|date",
            "tm|time without time zone",
            "y|bigint",
            "bits|bigint",
            "flag|boolean",
            "bin|bytea",
            "blob_v|bytea",
            "big|numeric",
            "e|text",
            "st|text",
            "doc|jsonb",
            "txt|text",
        ]
    );
    let from_pg = extract_records(
        d,
        &[
            &pg.url,
            "--schema-name",
            &pg.name,
            "--query",
            &format!("SELECT * FROM {}.t ORDER BY id", pg.name),
        ],
    );
    assert_eq!(from_pg.len(), 3);
    for (p, o) in from_pg.iter().zip(&original) {
        for (k, v) in o.as_object().expect("object") {
            let got = &p[k];
            match k.as_str() {
                // PostgreSQL writes an instant with +00:00, and no zero
                // fraction digits.
                "ts" | "dt" | "tm" if !v.is_null() => assert_eq!(
                    got.as_str().map(|s| s.replace("+00:00", "Z")),
                    v.as_str().map(trim_fraction),
                    "{k}"
                ),
                "doc" => assert_eq!(got, v, "{k}"),
                _ => assert_eq!(got.to_string(), v.to_string(), "{k}"),
            }
        }
    }
}

#[test]
fn values_that_do_not_fit_a_native_mariadb_column_are_rejects() {
    let Some(my) = MyDb::new("misfit") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let input = "{\"@etl\":\"begin\",\"version\":2,\"stream\":\"s\",\"schema\":{\"id\":\"integer\",\
                 \"n\":\"decimal(5,2)\",\"d\":\"date\",\"tz\":\"timestamptz\",\"b\":\"bytes\",\
                 \"t\":\"time\",\"u\":\"uuid\"}}\n\
                 {\"id\":1,\"n\":123.45,\"d\":\"2024-02-29\",\"tz\":\"2024-01-02T03:04:05.5+05:30\",\
                 \"b\":\"3q2+7w==\",\"t\":\"13:04:05\",\"u\":\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"}\n\
                 {\"id\":2,\"n\":1234.5}\n\
                 {\"id\":3,\"d\":\"2023-02-29\"}\n\
                 {\"id\":4,\"b\":\"not base64!\"}\n\
                 {\"id\":5,\"tz\":\"0001-01-01T00:00:00+01:00\"}\n\
                 {\"id\":6,\"t\":\"13:04\"}\n\
                 {\"id\":7,\"u\":\"a0eebc99\"}\n\
                 {\"@etl\":\"end\",\"stream\":\"s\",\"rows\":7}\n";
    let mut c = cmd(LOAD, d);
    c.arg(&my.url).args([
        "--table",
        "t",
        "--rejects",
        "bad.ndjson",
        "--max-rejects",
        "10",
    ]);
    let out = run_with_input(c, input.as_bytes());
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(
        my_columns(&my, "t"),
        [
            "id|bigint(20)",
            "n|decimal(5,2)",
            "d|date",
            "tz|datetime(6)",
            "b|longblob",
            "t|time(6)",
            "u|char(36)"
        ]
    );
    assert_eq!(
        my.rows("SELECT id, n, d, tz, HEX(b), t, u FROM t"),
        [
            "1|123.45|2024-02-29|2024-01-01 21:34:05.500000|DEADBEEF|13:04:05.000000|\
          a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
        ]
    );
    let rejects = json_lines(&std::fs::read_to_string(d.join("bad.ndjson")).expect("rejects"));
    let reasons: Vec<(u64, String)> = rejects
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap_or(0),
                r["reason"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    let expected = [
        (
            3,
            "column \"n\": number value 1234.5 does not fit a DECIMAL(5,2) column",
        ),
        (
            4,
            "column \"d\": text \"2023-02-29\" is not a date (YYYY-MM-DD)",
        ),
        (
            5,
            "column \"b\": text value \"not base64!\" is not base64 (standard, padded): \
             Invalid symbol 32, offset 3.",
        ),
        (
            6,
            "column \"tz\": text \"0001-01-01T00:00:00+01:00\" is outside the years 0001 to \
             9999 in UTC",
        ),
        (
            7,
            "column \"t\": text \"13:04\" is not a time a TIME(6) column takes",
        ),
        (
            8,
            "column \"u\": text value \"a0eebc99\" is not a uuid (8-4-4-4-12 hex digits)",
        ),
    ];
    let expected: Vec<(u64, String)> = expected.iter().map(|(l, r)| (*l, r.to_string())).collect();
    assert_eq!(reasons, expected);
}

/// The types PostgreSQL emits go PostgreSQL -> MariaDB -> SQLite ->
/// PostgreSQL with identical values and types: an instant is a DATETIME
/// commented UTC in MySQL and a uuid a CHAR(36) commented uuid, and both
/// are read back as what they hold.
#[test]
fn postgres_types_survive_mariadb_and_sqlite() {
    let (Some(my), Some(pg)) = (MyDb::new("pg_round"), PgSchema::new("my_round")) else {
        return;
    };
    let s = &pg.name;
    pg.client()
        .batch_execute(&format!(
            "CREATE TABLE {s}.src (id int, ts timestamptz, d date, u uuid, n numeric(12,2),
               b bytea, t time, big numeric(38,10), plain timestamp);
             INSERT INTO {s}.src VALUES
               (1, '2024-01-02 03:04:05.123456+05:30', '2024-02-29',
                'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 12.50, '\\xdeadbeef', '13:04:05.123456',
                1234567890123456789012345678.9012345678, '2024-01-02 03:04:05.123456'),
               (2, '0001-01-01 00:00:00-00:00', '0001-01-01',
                '00000000-0000-0000-0000-000000000000', -0.01, '', '00:00:00',
                -9999999999999999999999999999.9999999999, '0001-01-01 00:00:00'),
               (3, '9999-12-31 23:59:59.999999+00', '9999-12-31',
                'ffffffff-ffff-ffff-ffff-ffffffffffff', 9999999999.99, '\\x00ff0a0d5c',
                '23:59:59.999999', 0.0000000001, '9999-12-31 23:59:59.999999'),
               (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
        ))
        .expect("setup");
    let dir = tempdir();
    let d = dir.path();
    ok(
        &bash(
            &format!(
                "etl-extract -q '{pg}' --schema-name {s} --table src | etl-load -q '{my}' --table mid && \
                 etl-extract -q '{my}' --table mid | etl-load -q w.db --table mid && \
                 etl-extract -q w.db --table mid | etl-load -q '{pg}' --schema-name {s} --table back",
                pg = pg.url,
                my = my.url
            ),
            d,
        ),
        "PostgreSQL -> MariaDB -> SQLite -> PostgreSQL",
    );
    assert_eq!(
        my_columns(&my, "mid"),
        [
            "id|bigint(20)",
            "ts|datetime(6)",
            "d|date",
            "u|char(36)",
            "n|decimal(12,2)",
            "b|longblob",
            "t|time(6)",
            "big|decimal(38,10)",
            "plain|datetime(6)"
        ]
    );
    assert_eq!(
        sqlite_columns(&d.join("w.db"), "mid"),
        [
            "id|INTEGER",
            "ts|TIMESTAMPTZ",
            "d|DATE",
            "u|UUID",
            "n|DECIMAL(12,2)",
            "b|BLOB",
            "t|TIME",
            "big|DECIMAL_TEXT(38,10)",
            "plain|DATETIME"
        ]
    );
    assert_eq!(
        pg.rows(&format!(
            "SELECT column_name::text, data_type::text, coalesce(numeric_precision::text, ''), \
             coalesce(numeric_scale::text, '') FROM information_schema.columns \
             WHERE table_schema = '{s}' AND table_name = 'back' ORDER BY ordinal_position"
        )),
        [
            "id|bigint|64|0",
            "ts|timestamp with time zone||",
            "d|date||",
            "u|uuid||",
            "n|numeric|12|2",
            "b|bytea||",
            "t|time without time zone||",
            "big|numeric|38|10",
            "plain|timestamp without time zone||"
        ]
    );
    let columns = "SELECT id, ts, d, u, n::text, b, t, big::text, plain";
    for (a, b) in [("src", "back"), ("back", "src")] {
        let sql = format!(
            "SELECT count(*) FROM ({columns} FROM {s}.{a} EXCEPT ALL {columns} FROM {s}.{b}) AS x"
        );
        assert_eq!(pg.rows(&sql), ["0"], "{sql}");
    }
    assert_eq!(
        pg.rows(&format!(
            "SELECT count(*), count(DISTINCT id) FROM {s}.back"
        )),
        ["4|4"]
    );
}

/// A cursor window wraps the query in a derived table, whose columns no
/// longer name their table: the columns still read as the table declares
/// them (MariaDB's JSON, a DATETIME commented UTC, a CHAR(36) commented
/// uuid), a bound with an offset is the same instant in UTC, and a bound
/// is the same time however many fraction digits either spells.
#[test]
fn a_cursor_window_reads_the_columns_as_a_whole_table_does() {
    let Some(my) = MyDb::new("window_notes") else {
        return;
    };
    my.exec("CREATE TABLE t (id INT, doc JSON)");
    my.exec("INSERT INTO t VALUES (1, '{\"a\": [1, 2.50]}'), (2, '[]'), (3, NULL)");
    let dir = tempdir();
    let d = dir.path();
    let input = "{\"@etl\":\"begin\",\"version\":2,\"stream\":\"s\",\"schema\":\
                 {\"id\":\"integer\",\"ts\":\"timestamptz\",\"u\":\"uuid\"}}\n\
                 {\"id\":1,\"ts\":\"2024-01-02T01:00:00Z\",\"u\":\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"}\n\
                 {\"id\":2,\"ts\":\"2024-01-02T03:04:05Z\",\"u\":\"00000000-0000-0000-0000-000000000000\"}\n\
                 {\"id\":3,\"ts\":\"2024-01-03T00:00:00Z\",\"u\":null}\n\
                 {\"@etl\":\"end\",\"stream\":\"s\",\"rows\":3}\n";
    let mut c = cmd(LOAD, d);
    c.args([&my.url, "--table", "i"]);
    let out = run_with_input(c, input.as_bytes());
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    let extract = |args: &[&str]| {
        let mut c = cmd(EXTRACT, d);
        c.arg("-q").arg(&my.url).args(args);
        let out = run(c);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        json_lines(&stdout(&out))
    };
    let whole = extract(&["--table", "t"]);
    let window = extract(&["--table", "t", "--cursor", "id", "--since", "2"]);
    assert_eq!(window[0]["schema"], whole[0]["schema"]);
    assert_eq!(window[0]["schema"]["doc"], "json");
    assert_eq!(window[1..3], whole[2..4]);

    let whole = extract(&["--table", "i"]);
    assert_eq!(
        whole[0]["schema"],
        serde_json::json!({"id": "integer", "ts": "timestamptz", "u": "uuid"})
    );
    // 2024-01-01T22:04:05-05:00 is 2024-01-02T03:04:05Z: row 1 (01:00 UTC)
    // is before it.
    let window = extract(&[
        "--table",
        "i",
        "--cursor",
        "ts",
        "--since",
        "2024-01-01T22:04:05-05:00",
    ]);
    assert_eq!(window[0]["schema"], whole[0]["schema"]);
    assert_eq!(window[1..3], whole[2..4]);
    assert_eq!(window.len(), 4, "{window:?}");
    // The row at the bound itself, written 03:04:05.000000Z, is in the
    // window that starts at 03:04:05Z.
    let window = extract(&[
        "--table",
        "i",
        "--cursor",
        "ts",
        "--since",
        "2024-01-02T03:04:05Z",
    ]);
    assert_eq!(window[1..3], whole[2..4]);
    assert_eq!(window.len(), 4, "{window:?}");
}

/// Bookmarks compare as text, and base64 does not sort as its bytes do: a
/// cursor on a bytes column is refused before anything is written.
#[test]
fn a_cursor_on_a_bytes_column_is_refused() {
    let Some(my) = MyDb::new("bytes_cursor") else {
        return;
    };
    my.exec("CREATE TABLE t (k VARBINARY(8), v INT); INSERT INTO t VALUES (X'01', 1)");
    let dir = tempdir();
    let mut c = cmd(EXTRACT, dir.path());
    c.args([
        &my.url, "--table", "t", "--cursor", "k", "--state", "s.db", "--stream", "t",
    ]);
    let out = run(c);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("cursor column \"k\" holds bytes (base64 on the wire)"),
        "{}",
        stderr(&out)
    );
}
