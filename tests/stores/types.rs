//! The type round trip: one PostgreSQL table with every wire type and its
//! edge values (the largest and smallest 64-bit integers, 38 digits, the
//! leap day, years 1 and 9999, microseconds, an instant given with a
//! negative zero offset and one with +05:30, the nil uuid, empty bytes,
//! nulls) goes PostgreSQL -> MySQL/MariaDB -> SQLite -> a Parquet file ->
//! a partitioned dataset -> PostgreSQL, each hop `etl-extract | etl-load`
//! with the real binaries. Every hop declares the same types with the same
//! values, every store holds them in its native column type, and the last
//! table holds what the first did. Where a store has no type of its own
//! for a value (MySQL for instants and uuids, SQLite for any but integers,
//! floats and blobs) its row of the capability table says so (`instants`,
//! `uuid_type`), read here like every other exception of the suite, and
//! the store's extract still declares what the column holds.

use super::*;

/// Every wire type, and the edge values of each.
const SOURCE: &str = r#"CREATE TABLE {s}.src (id bigint, i bigint, f double precision,
    n numeric(12,2), big numeric(38,10), flag boolean, txt text, j json, jb jsonb, d date,
    t time, plain timestamp, ts timestamptz, u uuid, b bytea);
  INSERT INTO {s}.src VALUES
    (1, 9223372036854775807, 0.1, 12.50, 1234567890123456789012345678.9012345678, true,
     E'Caf\u00e9 \u2713 "q" \\ tab\there\nline', '{"a": [1, 2.50], "n": null}',
     '{"big": 12345678901234567890123, "s": "x"}', '2024-02-29', '13:04:05.123456',
     '2024-02-29 23:59:59.123456', '2024-03-01 01:30:00.25+05:30',
     'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '\xdeadbeef'),
    (2, -9223372036854775808, 100, -0.01, -9999999999999999999999999999.9999999999, false,
     '', '[]', '{}', '0001-01-01', '00:00:00', '0001-01-01 00:00:00',
     '0001-01-01 00:00:00-00:00', '00000000-0000-0000-0000-000000000000', ''),
    (3, 0, 1.7976931348623157e308, 9999999999.99, 0.0000000001, NULL, '00501', '"text"',
     '[1.50, true, {"k": []}]', '9999-12-31', '23:59:59.999999', '9999-12-31 23:59:59.999999',
     '9999-12-31 23:59:59.999999+00', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '\x00ff0a0d5c'),
    (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (5, 1, 5e-324, 0, 0, true, ' ', '1', '0.10', '1970-01-01', '00:00:00.000001',
     '1970-01-01 00:00:00.000001', '2024-01-02 03:04:05.000001Z',
     '01234567-89ab-cdef-0123-456789abcdef', '\x00')"#;

/// What PostgreSQL's begin line declares for `src`, and what every hop
/// after it must declare again.
fn declared() -> Value {
    json!({
        "id": "integer", "i": "integer", "f": "float", "n": "decimal(12,2)",
        "big": "decimal(38,10)", "flag": "boolean", "txt": "text", "j": "json", "jb": "json",
        "d": "date", "t": "time", "plain": "timestamp", "ts": "timestamptz", "u": "uuid",
        "b": "bytes"
    })
}

/// The stores between the first PostgreSQL table and the last, in order,
/// by their rows in the registry.
const CHAIN: [&str; 4] = ["MySQL/MariaDB", "SQLite", "Parquet", "dataset"];

/// A stream's begin line and its records ordered by `id`, each date and
/// time written the one way: sources spell the same value differently
/// (MySQL writes a DATETIME(6)'s six fraction digits, `.250000`, where
/// PostgreSQL writes `.25`; a UTC offset is `Z` from MySQL and `+00:00`
/// from PostgreSQL and Parquet).
fn stream(text: &str, hop: &str) -> (Value, Vec<Value>) {
    let lines = json_lines(text);
    assert_eq!(
        lines.first().map(|b| &b["@etl"]),
        Some(&json!("begin")),
        "{hop}"
    );
    let schema = lines[0]["schema"].clone();
    let times: Vec<String> = schema
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(_, t)| {
                    ["time", "timestamp", "timestamptz"].contains(&t.as_str().unwrap_or(""))
                })
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    let mut rows: Vec<Value> = records(text);
    for row in &mut rows {
        for k in &times {
            if let Some(Value::String(s)) = row.get_mut(k.as_str()) {
                *s = one_spelling(s);
            }
        }
    }
    rows.sort_by_key(|r| r["id"].as_i64());
    (schema, rows)
}

/// A time's text with `Z` for a UTC offset and no trailing zeros in its
/// fraction.
fn one_spelling(s: &str) -> String {
    let (body, zone) = match s.strip_suffix("+00:00").or_else(|| s.strip_suffix('Z')) {
        Some(body) => (body, "Z"),
        None => (s, ""),
    };
    let body = match body.split_once('.') {
        Some((whole, fraction)) => match fraction.trim_end_matches('0') {
            "" => whole.to_string(),
            kept => format!("{whole}.{kept}"),
        },
        None => body.to_string(),
    };
    format!("{body}{zone}")
}

fn ok(out: &Output, what: &str) {
    assert_eq!(code(out), 0, "{what}: {}", stderr(out));
}

/// A Parquet file's columns as Parquet's own schema text prints them
/// (`OPTIONAL INT64 n (DECIMAL(12,2));`).
fn parquet_columns(file: &Path) -> Vec<String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(file).expect("open"))
        .expect("a Parquet file");
    let mut text = Vec::new();
    parquet::schema::printer::print_schema(&mut text, reader.metadata().file_metadata().schema());
    String::from_utf8(text)
        .expect("UTF-8")
        .lines()
        .map(str::trim)
        .filter(|l| l.ends_with(';'))
        .map(str::to_string)
        .collect()
}

/// The first Parquet file under `dir`.
fn first_parquet(dir: &Path) -> PathBuf {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&d)
            .expect("read dir")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "parquet") {
                return p;
            }
        }
    }
    panic!("no Parquet file under {}", dir.display())
}

#[test]
fn every_type_survives_postgres_mysql_sqlite_parquet_dataset_and_back() {
    let stores = Store::all("types");
    let find = |name: &str| stores.iter().find(|s| s.row.name == name);
    for name in CHAIN {
        assert!(
            etlkit::registry::rows().any(|r| r.name == name),
            "{name} is no store of the registry"
        );
    }
    let (Some(pg), Some(my)) = (find("PostgreSQL"), find("MySQL/MariaDB")) else {
        return;
    };
    let (sqlite, parquet, lake) = (
        find("SQLite").expect("SQLite is a store"),
        find("Parquet").expect("Parquet is a store"),
        find("dataset").expect("datasets are a store"),
    );
    let pgs = pg.pg.as_ref().expect("a PostgreSQL store has a schema");
    let mys = my.my.as_ref().expect("a MySQL store has a database");
    let s = &pgs.name;
    pgs.client()
        .batch_execute(&SOURCE.replace("{s}", s))
        .expect("setup");

    let db = sqlite.d().join("w.db");
    let file = parquet.d().join("mid.parquet");
    let dataset = lake.d().join("mid");
    let pg_at = |table: &str| format!("'{}' --schema-name {s} --table {table}", pgs.url);
    let my_at = format!("'{}' --table mid", mys.url);
    let sqlite_at = format!("'{}' --table mid", db.display());
    let file_at = format!("'{}'", file.display());
    let dataset_at = format!("'{}'", dataset.display());
    let hops = [
        (pg_at("src"), my_at.clone()),
        (my_at.clone(), sqlite_at.clone()),
        (sqlite_at.clone(), file_at.clone()),
        (
            file_at.clone(),
            format!("{dataset_at} --partition-by ts:day --partition-by d:year"),
        ),
        (dataset_at.clone(), pg_at("back")),
    ];
    let dir = tempdir();
    let d = dir.path();
    for (n, (from, to)) in hops.iter().enumerate() {
        ok(
            &bash(
                &format!("etl-extract -q {from} | tee hop{n}.ndjson | etl-load -q {to}"),
                d,
            ),
            &format!("hop {n}: {from} -> {to}"),
        );
    }
    let read = |n: usize| std::fs::read_to_string(d.join(format!("hop{n}.ndjson"))).expect("hop");

    // What PostgreSQL declares, with its values as the wire writes them.
    let (schema, original) = stream(&read(0), "PostgreSQL");
    assert_eq!(schema, declared(), "PostgreSQL's begin line");
    assert_eq!(original.len(), 5);
    assert_eq!(original[0]["i"].to_string(), "9223372036854775807");
    assert_eq!(original[1]["i"].to_string(), "-9223372036854775808");
    assert_eq!(original[0]["n"].to_string(), "12.50");
    assert_eq!(
        original[0]["big"].to_string(),
        "1234567890123456789012345678.9012345678"
    );
    assert_eq!(original[0]["ts"], "2024-02-29T20:00:00.25Z");
    assert_eq!(original[1]["ts"], "0001-01-01T00:00:00Z");
    assert_eq!(original[0]["u"], "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    assert_eq!(original[1]["b"], "");
    assert_eq!(original[0]["j"].to_string(), r#"{"a":[1,2.50],"n":null}"#);

    // Each store's extract declares the same types with the same values.
    for (n, store) in CHAIN.iter().enumerate() {
        let (got_schema, got) = stream(&read(n + 1), store);
        assert_eq!(got_schema, declared(), "{store}'s begin line");
        assert_eq!(got.len(), original.len(), "{store}: rows");
        for (g, o) in got.iter().zip(&original) {
            for (k, v) in o.as_object().expect("records are objects") {
                // A float is its value (PostgreSQL writes 100 as `100`,
                // MySQL as `100.0`); anything else is its text, a
                // decimal's scale included.
                let (got, want) = if declared()[k] == "float" {
                    (json!(g[k].as_f64()), json!(v.as_f64()))
                } else {
                    (g[k].clone(), v.clone())
                };
                assert_eq!(
                    got.to_string(),
                    want.to_string(),
                    "{store}: record {}, field {k}",
                    o["id"]
                );
            }
        }
    }

    // Each store holds its native column type. Where MySQL has none (its
    // capability row), an instant is a DATETIME(6) holding UTC and a uuid
    // a CHAR(36), each with the comment etl-extract reads it back by.
    let my_ts = if my.lacks(Exception::UtcInstants) {
        "ts|datetime(6)|UTC"
    } else {
        "ts|timestamp(6)|"
    };
    let my_u = if my.lacks(Exception::NoUuidType) {
        "u|char(36)|uuid"
    } else {
        "u|uuid|"
    };
    let want_my = [
        "id|bigint(20)|",
        "i|bigint(20)|",
        "f|double|",
        "n|decimal(12,2)|",
        "big|decimal(38,10)|",
        "flag|bit(1)|",
        "txt|longtext|",
        // MariaDB's JSON is a LONGTEXT with a json_valid check.
        "j|longtext|",
        "jb|longtext|",
        "d|date|",
        "t|time(6)|",
        "plain|datetime(6)|",
        my_ts,
        my_u,
        "b|longblob|",
    ];
    assert_eq!(
        mys.rows(
            "SELECT COLUMN_NAME, COLUMN_TYPE, COLUMN_COMMENT FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'mid' ORDER BY ORDINAL_POSITION"
        ),
        want_my,
        "MySQL/MariaDB's columns"
    );
    // SQLite's declared types name what its text holds.
    assert!(sqlite.lacks(Exception::NoUuidType) && sqlite.row.instants == Instants::Text);
    let conn = rusqlite::Connection::open(&db).expect("open");
    let sqlite_types: Vec<String> = conn
        .prepare("SELECT name || '|' || type FROM pragma_table_info('mid')")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        sqlite_types,
        [
            "id|INTEGER",
            "i|INTEGER",
            "f|REAL",
            "n|DECIMAL(12,2)",
            "big|DECIMAL_TEXT(38,10)",
            "flag|BOOLEAN",
            "txt|TEXT",
            "j|JSON_TEXT",
            "jb|JSON_TEXT",
            "d|DATE",
            "t|TIME",
            "plain|DATETIME",
            "ts|TIMESTAMPTZ",
            "u|UUID",
            "b|BLOB",
        ],
        "SQLite's declared types"
    );
    let parquet_types = [
        "OPTIONAL INT64 id;",
        "OPTIONAL INT64 i;",
        "OPTIONAL DOUBLE f;",
        "OPTIONAL INT64 n (DECIMAL(12,2));",
        "OPTIONAL FIXED_LEN_BYTE_ARRAY (16) big (DECIMAL(38,10));",
        "OPTIONAL BOOLEAN flag;",
        "OPTIONAL BYTE_ARRAY txt (STRING);",
        "OPTIONAL BYTE_ARRAY j (JSON);",
        "OPTIONAL BYTE_ARRAY jb (JSON);",
        "OPTIONAL INT32 d (DATE);",
        "OPTIONAL INT64 t (TIME(MICROS,false));",
        "OPTIONAL INT64 plain (TIMESTAMP(MICROS,false));",
        "OPTIONAL INT64 ts (TIMESTAMP(MICROS,true));",
        "OPTIONAL FIXED_LEN_BYTE_ARRAY (16) u (UUID);",
        "OPTIONAL BYTE_ARRAY b;",
    ];
    assert_eq!(parquet_columns(&file), parquet_types, "the Parquet file");
    assert!(dataset.join("ts_day=2024-02-29/d_year=2024").is_dir());
    assert!(dataset.join("ts_day=0001-01-01/d_year=0001").is_dir());
    assert_eq!(
        parquet_columns(&first_parquet(&dataset)),
        parquet_types,
        "a dataset file"
    );
    let columns = |table: &str| {
        pgs.rows(&format!(
            "SELECT column_name::text, data_type::text, coalesce(numeric_precision::text, ''), \
             coalesce(numeric_scale::text, '') FROM information_schema.columns \
             WHERE table_schema = '{s}' AND table_name = '{table}' ORDER BY ordinal_position"
        ))
    };
    // The wire has one json type: PostgreSQL's json comes back jsonb.
    // known: a new PostgreSQL column for a `float` is `numeric`, not
    // `double precision` (pg/values.rs, `Kind::declared`): a CSV's `12.50`
    // is still inferred `float`, and numeric keeps its scale. It can be a
    // double once CSV inference declares such columns `decimal(p,s)`
    // (issue 30); until then `f` is left out here.
    let known = |c: &String| !c.starts_with("f|");
    let want: Vec<String> = columns("src")
        .into_iter()
        .filter(known)
        .map(|c| c.replace("|json|", "|jsonb|"))
        .collect();
    let got: Vec<String> = columns("back").into_iter().filter(known).collect();
    assert_eq!(got, want, "PostgreSQL's columns at the end");

    // The last table holds what the first did, compared as PostgreSQL
    // renders each value (the time of day is not aliased `t`: PgSchema::rows
    // names its subquery so).
    let text = "id, i::text AS i, f::float8::text AS f, n::text AS n, big::text AS big, \
                flag::text AS flag, txt, j::jsonb::text AS j, jb::text AS jb, d::text AS d, \
                t::text AS time_of_day, plain::text AS plain, ts::text AS ts, u::text AS u, \
                encode(b, 'hex') AS b";
    for (a, b) in [("src", "back"), ("back", "src")] {
        let sql =
            format!("SELECT {text} FROM {s}.{a} EXCEPT ALL SELECT {text} FROM {s}.{b} ORDER BY 1");
        assert_eq!(pgs.rows(&sql), Vec::<String>::new(), "{sql}");
    }
    assert_eq!(pgs.count("back"), 5);
}
