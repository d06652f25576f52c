//! MariaDB/MySQL as a source and a target, against a real server (skipped
//! loudly without one; a failure under ETLKIT_REQUIRE_MYSQL): every type
//! round-trips MariaDB -> SQLite -> PostgreSQL -> MariaDB unchanged, zero
//! dates follow --zero-dates, incremental runs move only new rows, and no
//! password is ever printed.

use serde_json::Value;

use crate::common::*;

mod bulk;
mod types;

/// A table with every type the issue names, and one row of extremes.
const TYPES_DDL: &str = "(id INT PRIMARY KEY, big BIGINT UNSIGNED, dec_v DECIMAL(20,4), \
    zip CHAR(5), flag BIT(1), d DATE, dt DATETIME(3), ts TIMESTAMP(6) NULL, doc JSON, \
    bin BLOB, txt VARCHAR(50), f FLOAT, db DOUBLE, tiny TINYINT(1), tm TIME)";

const TYPES_ROWS: &str = "(1, 18446744073709551615, 1234567890123456.1200, '00501', b'1', \
    '2026-11-01', '2026-11-01 09:15:00.500', '2026-11-01 09:15:00.250000', \
    '{\"a\":[1,2.5,null],\"bc\":{\"d\":\"東京\"}}', X'00FF10', 'Café 😀 東京', 0.1, \
    3.141592653589793, 2, '-12:30:00'), \
    (2, 0, -0.0001, '99950', b'0', '1000-01-01', '9999-12-31 23:59:59.999', NULL, '[]', '', \
    '', NULL, 1e300, 0, '838:59:59'), \
    (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)";

fn extract(dir: &std::path::Path, args: &[&str]) -> Vec<Value> {
    extract_records(dir, args)
}

fn ok(out: &std::process::Output, what: &str) {
    assert_eq!(code(out), 0, "{what}: {}", stderr(out));
}

#[test]
fn every_type_round_trips_through_sqlite_and_postgres() {
    let Some(my) = MyDb::new("types") else { return };
    my.exec(&format!("CREATE TABLE src {TYPES_DDL}"));
    my.exec(&format!("CREATE TABLE back {TYPES_DDL}"));
    my.exec(&format!("INSERT INTO src VALUES {TYPES_ROWS}"));
    let dir = tempdir();
    let d = dir.path();
    let original = extract(d, &[&my.url, "--query", "SELECT * FROM src ORDER BY id"]);
    assert_eq!(original.len(), 3);
    let first = &original[0];
    assert_eq!(first["big"].to_string(), "18446744073709551615");
    assert_eq!(first["dec_v"].to_string(), "1234567890123456.1200");
    assert_eq!(first["zip"], "00501");
    assert_eq!(first["flag"], true);
    assert_eq!(first["dt"], "2026-11-01T09:15:00.500");
    assert_eq!(first["ts"], "2026-11-01T09:15:00.250000Z");
    assert_eq!(first["doc"]["bc"]["d"], "東京");
    assert_eq!(first["bin"], "AP8Q");
    assert_eq!(first["txt"], "Café 😀 東京");
    assert_eq!(first["f"].to_string(), "0.1");
    assert_eq!(first["tiny"].to_string(), "2");
    assert_eq!(first["tm"], "-12:30:00");
    assert_eq!(original[1]["db"].to_string(), "1e+300");

    // MariaDB -> SQLite.
    ok(
        &bash(
            &format!(
                "etl-extract -q '{}' --table src | etl-load -q w.db --table mid",
                my.url
            ),
            d,
        ),
        "to SQLite",
    );
    // SQLite -> PostgreSQL (when there is one) -> MariaDB.
    let pg = PgSchema::new("my_types");
    let last_leg = match &pg {
        Some(pg) => {
            ok(
                &bash(
                    &format!(
                        "etl-extract -q w.db --table mid | etl-load -q '{}' --schema-name {} --table mid",
                        pg.url, pg.name
                    ),
                    d,
                ),
                "to PostgreSQL",
            );
            format!(
                "etl-extract -q '{}' --schema-name {} --query 'SELECT * FROM {}.mid ORDER BY id'",
                pg.url, pg.name, pg.name
            )
        }
        None => "etl-extract -q w.db --query 'SELECT * FROM mid ORDER BY id'".to_string(),
    };
    ok(
        &bash(
            &format!("{last_leg} | etl-load -q '{}' --table back", my.url),
            d,
        ),
        "back to MariaDB",
    );
    let back = extract(d, &[&my.url, "--query", "SELECT * FROM back ORDER BY id"]);
    assert_eq!(back.len(), original.len());
    for (b, o) in back.iter().zip(&original) {
        // Values compare exactly: numbers by their text, JSON objects by
        // their members.
        assert_eq!(b, o, "round trip changed a row");
    }
}

#[test]
fn zero_dates_are_rejected_or_read_as_null_with_a_warning() {
    let Some(my) = MyDb::new("zero") else { return };
    my.exec("CREATE TABLE z (id INT, d DATE, dt DATETIME)");
    my.exec(
        "SET SESSION sql_mode = ''; \
         INSERT INTO z VALUES (1, '2026-11-01', '2026-11-01 00:00:00'), \
         (2, '0000-00-00', '2026-11-01 00:00:00'), (3, '2026-11-01', '2026-00-00 00:00:00')",
    );
    let dir = tempdir();
    let d = dir.path();
    // Default: the first zero date fails the run, naming row and column.
    let mut c = cmd(EXTRACT, d);
    c.args([&my.url, "--query", "SELECT * FROM z ORDER BY id"]);
    let out = run(c);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(":2: column \"d\" holds a zero date"),
        "{}",
        stderr(&out)
    );
    // With --rejects both rows go there and the good one is written.
    let mut c = cmd(EXTRACT, d);
    c.args([
        &my.url,
        "--query",
        "SELECT * FROM z ORDER BY id",
        "--rejects",
        "bad.ndjson",
        "--max-rejects",
        "5",
    ]);
    let out = run(c);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(records(&stdout(&out)).len(), 1);
    let bad = std::fs::read_to_string(d.join("bad.ndjson")).expect("rejects");
    assert_eq!(bad.lines().count(), 2, "{bad}");
    assert!(bad.contains("0000-00-00"), "{bad}");
    // --zero-dates null: nulls, and a warning that counts them.
    let mut c = cmd(EXTRACT, d);
    c.args([
        &my.url,
        "--query",
        "SELECT * FROM z ORDER BY id",
        "--zero-dates",
        "null",
    ]);
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let rows = records(&stdout(&out));
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1]["d"], Value::Null);
    assert_eq!(rows[2]["dt"], Value::Null);
    assert!(
        stderr(&out).contains(
            "zero dates read as null (--zero-dates null): 1 in column \"d\", 1 in column \"dt\""
        ),
        "{}",
        stderr(&out)
    );
    // A zero date is never written: a load rejects it.
    let out = run_with_input(
        {
            let mut c = cmd(LOAD, d);
            c.args([&my.url, "--table", "z"]);
            c
        },
        b"{\"id\":9,\"d\":\"0000-00-00\"}\n",
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("is not a date"), "{}", stderr(&out));
}

#[test]
fn incremental_runs_move_only_new_rows() {
    let Some(my) = MyDb::new("incr") else { return };
    my.exec("CREATE TABLE src (id BIGINT UNSIGNED PRIMARY KEY, name VARCHAR(20), at DATETIME)");
    let values: Vec<String> = (1..=10)
        .map(|i| format!("({i}, 'n{i}', '2026-11-01 00:00:{i:02}')"))
        .collect();
    my.exec(&format!("INSERT INTO src VALUES {}", values.join(",")));
    let dir = tempdir();
    let d = dir.path();
    let job = format!(
        "etl-extract '{url}' --table src --cursor id --state '{url}' --stream src | \
         etl-load '{url}' --table dst",
        url = my.url
    );
    let moved = |out: &std::process::Output| -> String {
        ok(out, "incremental run");
        stderr(out)
    };
    let first = moved(&bash(&job, d));
    assert!(first.contains("10 rows read, 10 written"), "{first}");
    let again = moved(&bash(&job, d));
    assert!(again.contains("0 rows read, 0 written"), "{again}");
    my.exec(
        "INSERT INTO src VALUES (11, 'n11', '2026-11-02 00:00:00'), \
         (12, 'n12', '2026-11-02 00:00:00'), (13, 'n13', '2026-11-02 00:00:00')",
    );
    let third = moved(&bash(&job, d));
    // The range is pushed into SQL: only the new rows are read.
    assert!(third.contains("3 rows read, 3 written"), "{third}");
    assert_eq!(my.rows("SELECT COUNT(*) FROM dst"), ["13"]);
    let bookmark = my.rows("SELECT bookmark FROM _etl_state WHERE stream = 'src'");
    assert!(bookmark[0].contains("\"value\":13"), "{bookmark:?}");
    // A text cursor compares by code point, as the bookmark does.
    let job = format!(
        "etl-extract '{url}' --table src --cursor at --state '{url}' --stream at | \
         etl-load '{url}' --table dst_at",
        url = my.url
    );
    assert!(moved(&bash(&job, d)).contains("13 rows read, 13 written"));
    assert!(moved(&bash(&job, d)).contains("0 rows read, 0 written"));
}

#[test]
fn passwords_are_never_printed() {
    let Some(my) = MyDb::new("pw") else { return };
    let user = format!("etl_pw_{}", std::process::id());
    let password = "S3cr3t-pw-etl";
    my.exec(&format!(
        "DROP USER IF EXISTS '{user}'@'%'; DROP USER IF EXISTS '{user}'@'localhost'; \
         CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'; \
         CREATE USER '{user}'@'localhost' IDENTIFIED BY '{password}'; \
         GRANT ALL ON `{db}`.* TO '{user}'@'%'; GRANT ALL ON `{db}`.* TO '{user}'@'localhost'",
        db = my.name
    ));
    let (head, _) = my.url.split_once('@').expect("user@host");
    let host_db = my.url.split_once('@').expect("user@host").1;
    assert!(head.starts_with("mysql://"));
    let with_pw = format!("mysql://{user}:{password}@{host_db}");
    let without = format!("mysql://{user}@{host_db}");
    let dir = tempdir();
    let d = dir.path();
    let check = |out: &std::process::Output, what: &str, expect: i32| {
        assert_eq!(code(out), expect, "{what}: {}", stderr(out));
        assert!(!stderr(out).contains(password), "{what}: {}", stderr(out));
        assert!(!stdout(out).contains(password), "{what}: {}", stdout(out));
    };
    // The password in the URL: works, and is in no line printed.
    let out = bash(
        &format!(
            "etl-extract -v sample-data/orders.csv | etl-load -v '{with_pw}' --table orders && \
             etl-extract -v '{with_pw}' --table orders"
        ),
        &{
            std::fs::create_dir_all(d.join("sample-data")).expect("mkdir");
            std::fs::copy(sample("orders.csv"), d.join("sample-data/orders.csv")).expect("copy");
            d.to_path_buf()
        },
    );
    check(&out, "password in the URL", 0);
    assert_eq!(records(&stdout(&out)).len(), 12);
    // A wrong password: refused, and not echoed.
    let mut c = cmd(EXTRACT, d);
    c.args([
        &format!("mysql://{user}:wrong-{password}@{host_db}"),
        "--table",
        "orders",
    ]);
    let out = run(c);
    check(&out, "wrong password", 1);
    assert!(stderr(&out).contains("Access denied"), "{}", stderr(&out));
    // MYSQL_PWD, and the [client] section of ~/.my.cnf.
    let mut c = cmd(EXTRACT, d);
    c.env("MYSQL_PWD", password)
        .args([&without, "--table", "orders", "-q"]);
    let out = run(c);
    check(&out, "MYSQL_PWD", 0);
    assert_eq!(records(&stdout(&out)).len(), 12);
    let home = tempdir();
    write(
        home.path(),
        ".my.cnf",
        format!("[mysqld]\npassword=nope\n[client]\npassword=\"{password}\"\n").as_bytes(),
    );
    let mut c = cmd(EXTRACT, d);
    c.env("HOME", home.path())
        .args([&without, "--table", "orders", "-q"]);
    let out = run(c);
    check(&out, "~/.my.cnf", 0);
    assert_eq!(records(&stdout(&out)).len(), 12);
    my.exec(&format!(
        "DROP USER IF EXISTS '{user}'@'%'; DROP USER IF EXISTS '{user}'@'localhost'"
    ));
}

#[test]
fn upsert_deletes_and_rejects_against_an_existing_table() {
    let Some(my) = MyDb::new("existing") else {
        return;
    };
    my.exec(
        "CREATE TABLE acct (id INT UNSIGNED PRIMARY KEY, balance DECIMAL(10,2) NOT NULL DEFAULT 0, \
         opened DATE, note VARCHAR(5))",
    );
    let dir = tempdir();
    let d = dir.path();
    let load = |args: &[&str], input: &str| {
        let mut c = cmd(LOAD, d);
        c.arg(&my.url).args(["--table", "acct"]).args(args);
        run_with_input(c, input.as_bytes())
    };
    let input = "{\"id\":1,\"balance\":\"10.50\",\"opened\":\"2026-11-01\"}\n\
                 {\"id\":2,\"balance\":3.25,\"note\":\"hello\"}\n\
                 {\"id\":3,\"balance\":1.005}\n\
                 {\"id\":4,\"note\":\"too long\"}\n\
                 {\"id\":-5}\n";
    let out = load(
        &[
            "--mode",
            "upsert",
            "--key",
            "id",
            "--rejects",
            "bad.ndjson",
            "--max-rejects",
            "3",
        ],
        input,
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("5 rows read, 2 written, 3 rejected"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        my.rows("SELECT id, balance, opened, note FROM acct ORDER BY id"),
        ["1|10.50|2026-11-01|", "2|3.25||hello"]
    );
    // Omitted fields keep their values; --delete-when removes by key.
    let out = load(
        &["--mode", "upsert", "--key", "id", "--delete-when", "gone"],
        "{\"id\":1,\"note\":\"x\"}\n{\"id\":2,\"gone\":true}\n",
    );
    ok(&out, "upsert with deletes");
    assert_eq!(
        my.rows("SELECT id, balance, opened, note FROM acct ORDER BY id"),
        ["1|10.50|2026-11-01|x"]
    );
}

#[test]
fn a_float_at_its_maximum_and_the_year_zero_load_back_unchanged() {
    let Some(my) = MyDb::new("extremes") else {
        return;
    };
    let ddl = "(id INT PRIMARY KEY, f FLOAT, fu FLOAT UNSIGNED, fs FLOAT(7,4), y YEAR)";
    my.exec(&format!("CREATE TABLE src {ddl}"));
    my.exec(&format!("CREATE TABLE back {ddl}"));
    my.exec(
        "INSERT INTO src VALUES (1, 3.4028234663852886e38, 3.4028234663852886e38, 999.9999, 0), \
         (2, -3.4028234663852886e38, 0, -999.9999, 2155), (3, 1.17549435e-38, 0.1, 0.5, 1901), \
         (4, NULL, NULL, NULL, NULL)",
    );
    let dir = tempdir();
    let d = dir.path();
    let original = extract(d, &[&my.url, "--query", "SELECT * FROM src ORDER BY id"]);
    assert_eq!(original[0]["f"].to_string(), "3.4028235e+38");
    assert_eq!(original[0]["y"].to_string(), "0");
    let out = bash(
        &format!(
            "etl-extract -q '{url}' --table src | etl-load '{url}' --table back --rejects bad.ndjson",
            url = my.url
        ),
        d,
    );
    ok(&out, "MariaDB -> MariaDB");
    let back = extract(d, &[&my.url, "--query", "SELECT * FROM back ORDER BY id"]);
    assert_eq!(back, original, "the round trip changed a value");
    // The server agrees: the same bits, and the year 0000, not 2000.
    assert_eq!(
        my.rows(
            "SELECT COUNT(*) FROM src JOIN back USING (id) \
             WHERE src.f = back.f AND src.fu = back.fu AND src.fs = back.fs AND src.y = back.y"
        ),
        ["3"]
    );
    assert_eq!(
        my.rows("SELECT y + 0 FROM back ORDER BY id"),
        ["0", "2155", "1901", ""]
    );

    // What does not fit is a reject with its line, and the run goes on.
    let mut c = cmd(LOAD, d);
    c.arg(&my.url)
        .args(["--table", "back", "--rejects", "bad.ndjson"]);
    let out = run_with_input(
        c,
        b"{\"id\":10,\"f\":3.5e38}\n{\"id\":11,\"fu\":-1}\n{\"id\":12,\"fs\":1000}\n\
          {\"id\":13,\"y\":99}\n{\"id\":14,\"f\":3.4028235e38,\"y\":\"0000\"}\n",
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("etl-load: 5 rows read, 1 written, 4 rejected in "),
        "{}",
        stderr(&out)
    );
    let rejects = json_lines(&std::fs::read_to_string(d.join("bad.ndjson")).expect("rejects"));
    let reasons: Vec<(u64, String)> = rejects
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().expect("line"),
                r["reason"].as_str().expect("reason").to_string(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            (
                1,
                "column \"f\": number value 3.5e38 does not fit a float column".to_string()
            ),
            (
                2,
                "column \"fu\": integer value -1 does not fit a float unsigned column".to_string()
            ),
            (
                3,
                "column \"fs\": integer value 1000 does not fit a float(7,4) column".to_string()
            ),
            (
                4,
                "column \"y\": integer value 99 is not a year a year(4) column keeps (1901 to 2155, or 0)"
                    .to_string()
            ),
        ]
    );
    assert_eq!(
        my.rows("SELECT id, f = (SELECT f FROM src WHERE id = 1), y + 0 FROM back WHERE id > 4"),
        ["14|1|0"]
    );
}

#[test]
fn a_value_larger_than_max_allowed_packet_is_a_reject_and_statements_fit_the_packet() {
    let Some(my) = MyDb::new("packet") else {
        return;
    };
    let packet: usize = my.rows("SELECT @@max_allowed_packet")[0]
        .parse()
        .expect("a number");
    my.exec("CREATE TABLE big (id INT PRIMARY KEY, body LONGTEXT)");
    let dir = tempdir();
    let d = dir.path();
    // Row 2 fits a statement on its own but not with row 1 before it;
    // row 3 fits no statement at all.
    let sizes = [900_000, packet - 1_000_000, packet + 1000, 1];
    let mut input = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        input.extend_from_slice(
            format!("{{\"id\":{},\"body\":\"{}\"}}\n", i + 1, "x".repeat(*size)).as_bytes(),
        );
    }
    let file = write(d, "big.ndjson", &input);
    drop(input);
    // Without --rejects: the first such row fails the run, named, in plain words.
    let mut c = cmd(LOAD, d);
    c.arg(&my.url).args(["--table", "big"]).arg(&file);
    let out = run(c);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let expected = format!(
        "etl-load: error: nothing was loaded into {url} (table \"big\" is as it was): {file}:3: \
         column \"body\": a value of {n} bytes does not fit in one statement to the server \
         (its max_allowed_packet is {packet} bytes)\n",
        url = my.url,
        file = file.display(),
        // The value's own bytes, as LOAD DATA sends them.
        n = packet + 1000,
    );
    assert_eq!(stderr(&out), expected);
    assert!(my.exists("big"));
    assert_eq!(my.rows("SELECT COUNT(*) FROM big"), ["0"]);
    // With --rejects: that row is a reject, the others load.
    let mut c = cmd(LOAD, d);
    c.arg(&my.url)
        .args(["--table", "big", "--rejects", "bad.ndjson"])
        .arg(&file);
    let out = run(c);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(!stderr(&out).contains("Error {"), "{}", stderr(&out));
    assert_eq!(
        my.rows("SELECT id, LENGTH(body) FROM big ORDER BY id"),
        [
            "1|900000".to_string(),
            format!("2|{}", packet - 1_000_000),
            "4|1".to_string()
        ]
    );
    let rejects = std::fs::read_to_string(d.join("bad.ndjson")).expect("rejects");
    let reject = &json_lines(&rejects)[0];
    assert_eq!(reject["line"], 3);
    assert_eq!(reject["record"]["id"], 3);
    assert!(
        reject["reason"]
            .as_str()
            .is_some_and(|r| r.contains("max_allowed_packet")),
        "{reject}"
    );
}

#[test]
fn a_refused_connection_is_one_plain_line() {
    let dir = tempdir();
    // Nothing listens on port 1.
    let mut c = cmd(EXTRACT, dir.path());
    c.args(["mysql://etl:pw-9f3@127.0.0.1:1/test", "--table", "t"]);
    let out = run(c);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "etl-extract: error: cannot connect to mysql://etl@127.0.0.1:1/test: could not connect \
         to 127.0.0.1:1: Connection refused (os error 111)\n"
    );
    let mut c = cmd(LOAD, dir.path());
    c.args(["mysql://etl:pw-9f3@127.0.0.1:1/test", "--table", "t"]);
    let out = run_with_input(c, b"{\"a\":1}\n");
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).ends_with(
            "cannot connect to mysql://etl@127.0.0.1:1/test: could not connect to 127.0.0.1:1: \
             Connection refused (os error 111)\n"
        ),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("pw-9f3"));
}

/// MariaDB keeps a JSON document as it was written, newlines and all; on
/// the wire it is compact, one record a line, its numbers byte for byte,
/// and the stream loads.
#[test]
fn json_values_with_newlines_stay_on_one_line() {
    let Some(my) = MyDb::new("jsonlines") else {
        return;
    };
    my.exec("CREATE TABLE src (id INT PRIMARY KEY, doc JSON, note TEXT)");
    my.exec(
        "INSERT INTO src VALUES \
         (1, '{\n  \"a\": [1,\n    2.50],\n  \"big\": 12345678901234567890123\n}', 'line 1\nline 2'), \
         (2, '[\r\n]', NULL)",
    );
    let dir = tempdir();
    let d = dir.path();
    let mut c = cmd(EXTRACT, d);
    c.args(["-q", &my.url, "--query", "SELECT * FROM src ORDER BY id"]);
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let rows = stream_records(&text, 2);
    assert_eq!(rows[0]["doc"]["a"][1].to_string(), "2.50");
    assert_eq!(rows[0]["doc"]["big"].to_string(), "12345678901234567890123");
    assert_eq!(rows[0]["note"], "line 1\nline 2");
    assert_eq!(rows[1]["doc"], serde_json::json!([]));
    assert!(
        !text.lines().nth(1).expect("record").contains(": "),
        "{text}"
    );
    let out = bash(
        &format!(
            "etl-extract -q '{}' --table src | etl-load -q w.db --table t",
            my.url
        ),
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(count(&d.join("w.db"), "t"), Some(2));
}
