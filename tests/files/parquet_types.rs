//! Logical types (wire version 2) in Parquet: a file and a partitioned
//! dataset get DECIMAL, DATE, TIME, TIMESTAMP, UUID and binary columns,
//! etl-extract reads them back as the same types and values, DuckDB sees
//! the native types, a value that does not fit is a reject, and a
//! PostgreSQL table survives the trip through Parquet with its column
//! types.

use std::path::Path;

use crate::common::*;

const SCHEMA: &str = r#"{"id":"integer","amount":"decimal(12,2)","big":"decimal(38,10)","d":"date","t":"time","ts":"timestamp","tz":"timestamptz","u":"uuid","b":"bytes","j":"json","small":"decimal(4,1)","mid":"decimal(18,3)"}"#;

/// Rows with edge values, each written as a Parquet reader writes it back.
const ROWS: [&str; 4] = [
    r#"{"id":1,"amount":12.50,"big":1234567890123456789012345678.9012345678,"d":"0001-01-01","t":"00:00:00","ts":"0001-01-01T00:00:00","tz":"0001-01-01T00:00:00+00:00","u":"00000000-0000-0000-0000-000000000000","b":"","j":{"a":[1,2.50]},"small":-999.9,"mid":-999999999999999.999}"#,
    r#"{"id":2,"amount":0.10,"big":-9999999999999999999999999999.9999999999,"d":"9999-12-31","t":"23:59:59.999999","ts":"9999-12-31T23:59:59.999999","tz":"9999-12-31T23:59:59.999999+00:00","u":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","b":"AAEC/w==","j":null,"small":0.0,"mid":0.001}"#,
    r#"{"id":3,"amount":-0.01,"big":0.0000000001,"d":"2024-02-29","t":"13:04:05.000001","ts":"2024-02-29T13:04:05.5","tz":"2024-02-29T23:59:59.123456+00:00","u":"ffffffff-ffff-ffff-ffff-ffffffffffff","b":"3q2+7w==","j":[],"small":1.5,"mid":123.456}"#,
    r#"{"id":4,"amount":null,"big":null,"d":null,"t":null,"ts":null,"tz":null,"u":null,"b":null,"j":null,"small":null,"mid":null}"#,
];

fn stream() -> String {
    let mut s =
        format!("{{\"@etl\":\"begin\",\"version\":2,\"stream\":\"s\",\"schema\":{SCHEMA}}}\n");
    for r in ROWS {
        s.push_str(r);
        s.push('\n');
    }
    s.push_str(&format!("{{\"@etl\":\"end\",\"rows\":{}}}\n", ROWS.len()));
    s
}

/// etl-extract's begin line's schema and its record lines as written.
fn extract(dir: &Path, target: &str) -> (serde_json::Value, Vec<String>) {
    let mut c = cmd(EXTRACT, dir);
    c.args(["-q", target]);
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let begin = json_lines(&text)[0]["schema"].clone();
    let rows = text
        .lines()
        .filter(|l| !l.starts_with("{\"@etl\""))
        .map(str::to_string)
        .collect();
    (begin, rows)
}

fn load(dir: &Path, args: &[&str], input: &str) {
    let mut c = cmd(LOAD, dir);
    c.arg("-q").args(args);
    let out = run_with_input(c, input.as_bytes());
    assert_eq!(code(&out), 0, "etl-load {args:?}: {}", stderr(&out));
}

#[test]
fn every_type_round_trips_through_a_parquet_file_and_a_dataset() {
    let dir = tempdir();
    let d = dir.path();
    let declared: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();

    load(d, &["x.parquet"], &stream());
    let (schema, rows) = extract(d, "x.parquet");
    assert_eq!(schema, declared);
    assert_eq!(rows, ROWS, "values through a Parquet file");

    // A dataset partitioned by the day of an instant and of a date.
    load(
        d,
        &[
            "ds/",
            "--partition-by",
            "tz:day",
            "--partition-by",
            "d:year",
        ],
        &stream(),
    );
    assert!(d.join("ds/tz_day=2024-02-29/d_year=2024").is_dir());
    assert!(d.join("ds/tz_day=0001-01-01/d_year=0001").is_dir());
    let (schema, mut rows) = extract(d, "ds/");
    assert_eq!(schema, declared);
    rows.sort_by_key(|r| serde_json::from_str::<serde_json::Value>(r).unwrap()["id"].as_i64());
    assert_eq!(rows, ROWS, "values through a partitioned dataset");

    // An instant with another offset is stored in UTC.
    let input = "{\"@etl\":\"begin\",\"version\":2,\"stream\":\"s\",\"schema\":{\"tz\":\"timestamptz\"}}\n\
                 {\"tz\":\"2024-03-01T01:30:00.25+05:30\"}\n{\"tz\":\"2024-01-02T03:04:05Z\"}\n\
                 {\"@etl\":\"end\",\"rows\":2}\n";
    load(d, &["z.parquet"], input);
    let (_, rows) = extract(d, "z.parquet");
    assert_eq!(
        rows,
        [
            r#"{"tz":"2024-02-29T20:00:00.25+00:00"}"#,
            r#"{"tz":"2024-01-02T03:04:05+00:00"}"#
        ]
    );
}

#[test]
fn a_value_that_does_not_fit_its_parquet_type_is_a_reject() {
    let dir = tempdir();
    let d = dir.path();
    let input = format!(
        "{{\"@etl\":\"begin\",\"version\":2,\"stream\":\"s\",\"schema\":{SCHEMA}}}\n\
         {}\n\
         {{\"id\":5,\"amount\":12.505}}\n\
         {{\"id\":6,\"amount\":12345678901.5}}\n\
         {{\"id\":7,\"d\":\"2024-02-30\"}}\n\
         {{\"id\":8,\"tz\":\"2024-01-02T03:04:05\"}}\n\
         {{\"id\":9,\"u\":\"not-a-uuid\"}}\n\
         {{\"id\":10,\"b\":\"***\"}}\n\
         {{\"id\":11,\"t\":\"24:00:00\"}}\n\
         {{\"@etl\":\"end\",\"rows\":8}}\n",
        ROWS[0]
    );
    for (target, args) in [
        ("x.parquet", &[][..]),
        ("ds/", &["--partition-by", "d:year"][..]),
    ] {
        let mut c = cmd(LOAD, d);
        c.args([target, "--rejects", "r.ndjson"]).args(args);
        let out = run_with_input(c, input.as_bytes());
        assert_eq!(code(&out), 3, "{}", stderr(&out));
        let rejects = json_lines(&std::fs::read_to_string(d.join("r.ndjson")).unwrap());
        let reasons: Vec<(u64, String)> = rejects
            .iter()
            .map(|r| {
                (
                    r["line"].as_u64().unwrap(),
                    r["reason"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(reasons.len(), 7, "{target}: {reasons:?}");
        assert_eq!(
            reasons[0],
            (
                3,
                "column \"amount\": number value 12.505 does not fit a decimal(12,2) column: \
                 it has 3 digits after the point; decimal(12,2) keeps 2"
                    .to_string()
            )
        );
        assert!(
            reasons[1].1.contains("11 digits before the point"),
            "{reasons:?}"
        );
        assert!(reasons[2].1.contains("no day 30 in 2024-02"), "{reasons:?}");
        assert!(reasons[3].1.contains("no UTC offset"), "{reasons:?}");
        assert!(reasons[4].1.contains("not a uuid"), "{reasons:?}");
        assert!(reasons[5].1.contains("not base64"), "{reasons:?}");
        assert!(reasons[6].1.contains("no time 24:00:00"), "{reasons:?}");
        let (_, rows) = extract(d, target);
        assert_eq!(rows, [ROWS[0]], "{target}: only the row that fits");
        std::fs::remove_file(d.join("r.ndjson")).unwrap();
    }
}

#[test]
fn a_bare_decimal_takes_the_scale_of_its_sample_and_a_wide_one_is_text() {
    let dir = tempdir();
    let d = dir.path();
    let input = "{\"@etl\":\"begin\",\"version\":2,\"stream\":\"s\",\"schema\":{\"n\":\"decimal\",\"w\":\"decimal(50,2)\"}}\n\
                 {\"n\":1.5,\"w\":123456789012345678901234567890123456789012345678.12}\n\
                 {\"n\":-22.125,\"w\":null}\n\
                 {\"@etl\":\"end\",\"rows\":2}\n";
    load(d, &["x.parquet"], input);
    let (schema, rows) = extract(d, "x.parquet");
    assert_eq!(
        schema,
        serde_json::json!({"n": "decimal(38,3)", "w": "text"})
    );
    assert_eq!(
        rows,
        [
            r#"{"n":1.500,"w":"123456789012345678901234567890123456789012345678.12"}"#,
            r#"{"n":-22.125,"w":null}"#
        ]
    );
}

#[test]
fn duckdb_reads_native_types_and_sums_decimals_exactly() {
    let dir = tempdir();
    let d = dir.path();
    load(d, &["x.parquet"], &stream());
    load(d, &["ds/", "--partition-by", "tz:day"], &stream());
    let Some(python) = crate::lake::duckdb_python() else {
        return;
    };
    for from in [
        "'x.parquet'",
        "read_parquet('ds/**/*.parquet', hive_partitioning = true)",
    ] {
        let types = crate::lake::duckdb(
            &python,
            d,
            &format!(
                "SELECT typeof(amount), typeof(big), typeof(d), typeof(t), typeof(ts), \
                 typeof(tz), typeof(u), typeof(b), typeof(j) FROM {from} LIMIT 1"
            ),
        );
        assert_eq!(
            types,
            "DECIMAL(12,2)|DECIMAL(38,10)|DATE|TIME|TIMESTAMP|TIMESTAMP WITH TIME ZONE|UUID|BLOB|JSON",
            "{from}"
        );
        let sums = crate::lake::duckdb(
            &python,
            d,
            &format!(
                "SET TimeZone = 'UTC'; SELECT sum(amount)::VARCHAR, count(*), \
                 max(tz)::VARCHAR, min(d)::VARCHAR, max(u)::VARCHAR, octet_length(max(b)) \
                 FROM {from} WHERE id <= 2"
            ),
        );
        assert_eq!(
            sums,
            "12.60|2|9999-12-31 23:59:59.999999+00|0001-01-01|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|4",
            "{from}"
        );
    }
}

#[test]
fn a_file_duckdb_writes_reads_with_its_types() {
    let dir = tempdir();
    let d = dir.path();
    let Some(python) = crate::lake::duckdb_python() else {
        return;
    };
    // DuckDB writes DECIMAL(4,1) as INT32, (18,3) as INT64, (38,10) as
    // FIXED_LEN_BYTE_ARRAY.
    crate::lake::duckdb(
        &python,
        d,
        "COPY (SELECT i AS id, (i / 10)::DECIMAL(4,1) AS small, 12.5::DECIMAL(18,3) AS mid, \
         -1.25::DECIMAL(38,10) AS big, DATE '2024-02-29' AS d, TIME '13:04:05.123456' AS t, \
         TIMESTAMP '2024-01-02 03:04:05.5' AS ts, TIMESTAMPTZ '2024-01-02 03:04:05.5+00' AS tz, \
         '00000000-0000-0000-0000-000000000000'::UUID AS u, '\\xAA\\x00'::BLOB AS b \
         FROM range(2) r(i)) TO 'duck.parquet'; SELECT 1",
    );
    let (schema, rows) = extract(d, "duck.parquet");
    assert_eq!(
        schema,
        serde_json::json!({
            "id": "integer", "small": "decimal(4,1)", "mid": "decimal(18,3)",
            "big": "decimal(38,10)", "d": "date", "t": "time", "ts": "timestamp",
            "tz": "timestamptz", "u": "uuid", "b": "bytes"
        })
    );
    assert_eq!(
        rows[1],
        r#"{"id":1,"small":0.1,"mid":12.500,"big":-1.2500000000,"d":"2024-02-29","t":"13:04:05.123456","ts":"2024-01-02T03:04:05.5","tz":"2024-01-02T03:04:05.5+00:00","u":"00000000-0000-0000-0000-000000000000","b":"qgA="}"#
    );
    assert_eq!(rows.len(), 2);
}

#[test]
fn a_postgres_table_keeps_its_column_types_through_parquet() {
    let Some(pg) = PgSchema::new("parquet_types") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let (s, url) = (&pg.name, &pg.url);
    pg.client()
        .batch_execute(&format!(
            "CREATE TABLE {s}.src (id int, n numeric(12,2), ts timestamptz, d date, u uuid, b bytea,
                                   t time, plain timestamp, big numeric(38,10));
             INSERT INTO {s}.src VALUES
               (1, 12.50, '2024-01-02 03:04:05.123456+05:30', '2024-02-29',
                'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '\\xdeadbeef', '13:04:05.123456',
                '2024-01-02 03:04:05.123456', 1234567890123456789012345678.9012345678),
               (2, -0.10, '0001-01-01 00:00:00+00', '0001-01-01',
                '00000000-0000-0000-0000-000000000000', '', '00:00:00', '0001-01-01 00:00:00',
                -0.0000000001),
               (3, 9999999999.99, '9999-12-31 23:59:59.999999+00', '9999-12-31', NULL, NULL,
                '23:59:59.999999', '9999-12-31 23:59:59.999999', 0),
               (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
        ))
        .expect("setup");
    let out = bash(
        &format!(
            "etl-extract -q '{url}' --schema-name {s} --table src > direct.ndjson && \
             etl-load -q x.parquet < direct.ndjson && \
             etl-extract -q x.parquet > back.ndjson && \
             etl-load -q '{url}' --schema-name {s} -t c1 < back.ndjson && \
             etl-load -q ds/ --partition-by ts:day < direct.ndjson && \
             etl-extract -q ds/ | etl-load -q '{url}' --schema-name {s} -t c2"
        ),
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let direct = std::fs::read_to_string(d.join("direct.ndjson")).unwrap();
    let back = std::fs::read_to_string(d.join("back.ndjson")).unwrap();
    let direct = json_lines(&direct);
    let back = json_lines(&back);
    assert_eq!(back[0]["schema"], direct[0]["schema"]);
    let lines = |v: &[serde_json::Value]| -> Vec<String> {
        v.iter()
            .filter(|l| l.get("@etl").is_none())
            .map(|l| l.to_string())
            .collect()
    };
    assert_eq!(lines(&back), lines(&direct), "values through Parquet");

    let types = |table: &str| {
        pg.rows(&format!(
            "SELECT column_name::text, data_type::text, coalesce(numeric_precision::text, ''), \
             coalesce(numeric_scale::text, '') FROM information_schema.columns \
             WHERE table_schema = '{s}' AND table_name = '{table}' ORDER BY column_name"
        ))
    };
    let all = |table: &str| {
        pg.rows(&format!(
            "SELECT id, n, ts, d, u, encode(b, 'hex') AS bx, t AS tm, plain, big FROM {s}.{table} ORDER BY id"
        ))
    };
    for copy in ["c1", "c2"] {
        let mut want = types("src");
        // The copy's id is the wire's integer: a bigint.
        for t in &mut want {
            if t.starts_with("id|") {
                *t = "id|bigint|64|0".to_string();
            }
        }
        assert_eq!(types(copy), want, "{copy}");
        assert_eq!(all(copy), all("src"), "{copy}");
        assert_eq!(pg.count(copy), 4, "{copy}");
    }
}
