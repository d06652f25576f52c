//! Logical types (wire version 2) from PostgreSQL to PostgreSQL: a new
//! table gets native columns, values are identical, a version-1 stream
//! loads as before, and a value that does not fit its type is a reject.

use crate::common::*;

/// A table with every logical type and edge values: year 1 and 9999, the
/// leap day, microseconds, a negative zero offset, 38 digits, the nil
/// uuid, empty bytes.
const SOURCE: &str = "CREATE TABLE {s}.src (id int, ts timestamptz, d date, u uuid, n numeric(12,2),
       b bytea, t time, iv interval, arr int[], big numeric(38,10), bare numeric, plain timestamp);
     INSERT INTO {s}.src VALUES
       (1, '2024-01-02 03:04:05.123456+05:30', '2024-02-29', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
        12.50, '\\xdeadbeef', '13:04:05.123456', '1 day 02:03:04', '{1,2,3}',
        1234567890123456789012345678.9012345678, 1.50, '2024-01-02 03:04:05.123456'),
       (2, '0001-01-01 00:00:00-00:00', '0001-01-01', '00000000-0000-0000-0000-000000000000',
        -0.01, '', '00:00:00', '-3 hours', '{}', -9999999999999999999999999999.9999999999, 0,
        '0001-01-01 00:00:00'),
       (3, '9999-12-31 23:59:59.999999+00', '9999-12-31', 'ffffffff-ffff-ffff-ffff-ffffffffffff',
        9999999999.99, '\\x00ff0a0d5c', '23:59:59.999999', '1 year 2 mons', '{NULL,-1}', 0.0000000001,
        100000000000000000000000000000000000000000.5, '9999-12-31 23:59:59.999999'),
       (4, NULL, NULL, NULL, 'NaN', NULL, NULL, NULL, NULL, NULL, '-Infinity', NULL),
       (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'NaN', NULL, NULL)";

fn column_types(pg: &PgSchema, table: &str) -> Vec<String> {
    pg.rows(&format!(
        "SELECT column_name::text, data_type::text, coalesce(numeric_precision::text, ''), \
         coalesce(numeric_scale::text, '') FROM information_schema.columns \
         WHERE table_schema = '{}' AND table_name = '{table}' ORDER BY ordinal_position",
        pg.name
    ))
}

#[test]
fn logical_types_copy_to_native_columns() {
    let Some(pg) = PgSchema::new("logical") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let s = &pg.name;
    let url = &pg.url;
    pg.client()
        .batch_execute(&SOURCE.replace("{s}", s))
        .expect("setup");

    // The begin line declares every column with its type.
    let out = bash(
        &format!("etl-extract -q '{url}' --schema-name {s} --table src"),
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let begin = &json_lines(&text)[0];
    assert_eq!(begin["version"], 2);
    assert_eq!(
        begin["schema"],
        serde_json::json!({
            "id": "integer", "ts": "timestamptz", "d": "date", "u": "uuid",
            "n": "decimal(12,2)", "b": "bytes", "t": "time", "iv": "text", "arr": "json",
            "big": "decimal(38,10)", "bare": "decimal", "plain": "timestamp"
        })
    );
    let rows = stream_records(&text, 5);
    assert_eq!(rows[0]["ts"], "2024-01-01T21:34:05.123456+00:00");
    assert_eq!(rows[0]["u"], "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    assert_eq!(rows[0]["b"], "3q2+7w==");
    assert_eq!(rows[0]["n"].to_string(), "12.50");
    assert_eq!(rows[0]["plain"], "2024-01-02T03:04:05.123456");
    assert_eq!(rows[1]["ts"], "0001-01-01T00:00:00+00:00");
    assert_eq!(rows[1]["b"], "");
    assert_eq!(
        rows[1]["big"].to_string(),
        "-9999999999999999999999999999.9999999999"
    );
    assert_eq!(rows[2]["b"], "AP8KDVw=");

    let out = bash(
        &format!(
            "etl-extract -q '{url}' --schema-name {s} --table src | \
             etl-load -q '{url}' --schema-name {s} --table dst"
        ),
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mut expected = column_types(&pg, "src");
    // interval travels as text and arrays as json (see ARCHITECTURE.md).
    for row in &mut expected {
        if row.starts_with("iv|") {
            *row = "iv|text||".into();
        } else if row.starts_with("arr|") {
            *row = "arr|jsonb||".into();
        } else if row.starts_with("id|") {
            *row = "id|bigint|64|0".into();
        }
    }
    assert_eq!(column_types(&pg, "dst"), expected);

    // Identical values, both ways, and no row lost or repeated.
    let cols = "id, ts, d, u, n, b, t, iv::text, to_jsonb(arr), big, bare, plain";
    let dst_cols = "id, ts, d, u, n, b, t, iv, arr, big, bare, plain";
    for (a, b) in [
        (
            format!("SELECT {cols} FROM {s}.src"),
            format!("SELECT {dst_cols} FROM {s}.dst"),
        ),
        (
            format!("SELECT {dst_cols} FROM {s}.dst"),
            format!("SELECT {cols} FROM {s}.src"),
        ),
    ] {
        let sql = format!("SELECT count(*) FROM ({a} EXCEPT ALL {b}) AS x");
        let rows = pg.client().query_one(&sql, &[]);
        let differing: i64 = rows.unwrap_or_else(|e| panic!("{sql}: {e:?}")).get(0);
        assert_eq!(differing, 0, "{sql}");
    }
    assert_eq!(pg.count("dst"), 5);
    assert_eq!(
        pg.rows(&format!("SELECT count(DISTINCT id) FROM {s}.dst")),
        ["5"]
    );
    // Scales survive as written (12.50, not 12.5).
    assert_eq!(
        pg.rows(&format!(
            "SELECT n::text, big::text FROM {s}.dst WHERE id = 1"
        )),
        ["12.50|1234567890123456789012345678.9012345678"]
    );

    // Numbers alone go in COPY's binary form: NaN and infinities too.
    let out = bash(
        &format!(
            "etl-extract -q '{url}' --query 'SELECT id, n, bare FROM {s}.src' | \
             etl-load -q '{url}' --schema-name {s} --table nums"
        ),
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        pg.rows(&format!(
            "SELECT id, n::text, bare::text FROM {s}.nums ORDER BY id"
        )),
        [
            "1|12.50|1.50",
            "2|-0.01|0",
            "3|9999999999.99|100000000000000000000000000000000000000000.5",
            "4|NaN|-Infinity",
            "5||"
        ]
    );

    // A second copy into the existing table appends the same rows again:
    // the typed columns take what they made.
    let out = bash(
        &format!(
            "etl-extract -q '{url}' --schema-name {s} --table src | \
             etl-load -q '{url}' --schema-name {s} --table dst"
        ),
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(pg.count("dst"), 10);
    assert_eq!(
        pg.rows(&format!(
            "SELECT count(*) FROM (SELECT {dst_cols} FROM {s}.dst GROUP BY {dst_cols} \
             HAVING count(*) = 2) g"
        )),
        ["5"]
    );
}

#[test]
fn typed_values_into_text_columns_and_version_1_streams() {
    let Some(pg) = PgSchema::new("logical_v1") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let s = &pg.name;
    let url = &pg.url;
    pg.client()
        .batch_execute(&format!(
            "CREATE TABLE {s}.src (id int, ts timestamptz, b bytea, n numeric(12,2));
             INSERT INTO {s}.src VALUES (1, '2024-01-02 03:04:05+00', '\\xdeadbeef', 12.50);
             CREATE TABLE {s}.old (id bigint, ts text, b text, n numeric);
             CREATE TABLE {s}.bin (id bigint, b bytea, at timestamptz)"
        ))
        .expect("setup");
    // An older table with text columns keeps them, and gets the wire forms.
    let out = bash(
        &format!(
            "etl-extract -q '{url}' --schema-name {s} --table src | \
             etl-load -q '{url}' --schema-name {s} --table old"
        ),
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        pg.rows(&format!("SELECT id, ts, b, n::text FROM {s}.old")),
        ["1|2024-01-02T03:04:05+00:00|3q2+7w==|12.50"]
    );
    assert_eq!(
        column_types(&pg, "old"),
        ["id|bigint|64|0", "ts|text||", "b|text||", "n|numeric||"]
    );

    // A version-1 stream (and one without a begin line) loads as before:
    // bytea takes PostgreSQL's hex text, a timestamp without offset is
    // read in the session's zone, a new table gets text columns.
    let v1 = "{\"@etl\":\"begin\",\"version\":1,\"stream\":\"s\",\"schema\":{\"id\":\"integer\",\"at\":\"text\"}}\n\
              {\"id\":1,\"b\":\"\\\\xdeadbeef\",\"at\":\"2024-01-02 03:04:05\"}\n\
              {\"@etl\":\"end\",\"stream\":\"s\",\"rows\":1}\n";
    let mut c = cmd(LOAD, d);
    c.arg(url).args(["--schema-name", s, "--table", "bin"]);
    let out = run_with_input(c, v1.as_bytes());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mut c = cmd(LOAD, d);
    c.arg(url).args(["--schema-name", s, "--table", "fresh"]);
    let out = run_with_input(c, v1.as_bytes());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let bare = "{\"id\":2,\"b\":\"\\\\x00\",\"at\":\"2024-01-02T03:04:05+01:00\"}\n";
    let mut c = cmd(LOAD, d);
    c.arg(url).args(["--schema-name", s, "--table", "bin"]);
    let out = run_with_input(c, bare.as_bytes());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        pg.rows(&format!(
            "SELECT id, encode(b, 'hex'), at AT TIME ZONE 'UTC' FROM {s}.bin ORDER BY id"
        )),
        ["1|deadbeef|2024-01-02T03:04:05", "2|00|2024-01-02T02:04:05"]
    );
    assert_eq!(
        column_types(&pg, "fresh"),
        ["id|bigint|64|0", "at|text||", "b|text||"]
    );

    // A version-2 stream naming a type this version does not know.
    let future =
        "{\"@etl\":\"begin\",\"version\":3,\"stream\":\"s\",\"schema\":{\"p\":\"point\"}}\n";
    let mut c = cmd(LOAD, d);
    c.arg(url).args(["--schema-name", s, "--table", "never"]);
    let out = run_with_input(c, future.as_bytes());
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("column \"p\" with type \"point\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn values_that_do_not_fit_their_type_are_rejects() {
    let Some(pg) = PgSchema::new("logical_rejects") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let s = &pg.name;
    let begin = r#"{"@etl":"begin","version":2,"stream":"s","schema":{"id":"integer","d":"date","n":"decimal(5,2)","u":"uuid","b":"bytes","at":"timestamp"}}"#;
    let lines = [
        r#"{"id":1,"d":"2024-02-29","n":123.45,"u":"00000000-0000-0000-0000-000000000000","b":"","at":"2024-01-02T03:04:05"}"#,
        r#"{"id":2,"d":"2024-02-30"}"#,
        r#"{"id":3,"n":1234.5}"#,
        r#"{"id":4,"u":"not-a-uuid"}"#,
        r#"{"id":5,"b":"%%%"}"#,
        r#"{"id":6,"at":"2024-01-02T03:04:05+02:00"}"#,
        r#"{"id":7,"d":"2023-02-28","n":-1.5}"#,
    ];
    let mut input = format!("{begin}\n");
    for l in lines {
        input.push_str(l);
        input.push('\n');
    }
    input.push_str(&format!(
        "{{\"@etl\":\"end\",\"stream\":\"s\",\"rows\":{}}}\n",
        lines.len()
    ));
    // Without a rejects file the first bad row fails the load: nothing
    // is committed.
    let mut c = cmd(LOAD, d);
    c.arg(&pg.url).args(["--schema-name", s, "--table", "t"]);
    let out = run_with_input(c, input.as_bytes());
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("stdin:3: column \"d\": text value \"2024-02-30\" has no day 30 in 2024-02"),
        "{}",
        stderr(&out)
    );
    // With one, the good rows commit and each bad one is set aside.
    let mut c = cmd(LOAD, d);
    c.arg(&pg.url)
        .args(["--schema-name", s, "--table", "t", "--rejects", "r.ndjson"]);
    let out = run_with_input(c, input.as_bytes());
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(
        pg.rows(&format!("SELECT id, d, n::text FROM {s}.t ORDER BY id")),
        ["1|2024-02-29|123.45", "7|2023-02-28|-1.50"]
    );
    let rejects = json_lines(&std::fs::read_to_string(d.join("r.ndjson")).expect("rejects"));
    let reasons: Vec<String> = rejects
        .iter()
        .map(|r| r["reason"].as_str().expect("reason").to_string())
        .collect();
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    assert!(reasons[0].contains("has no day 30"), "{reasons:?}");
    assert!(reasons[1].contains("numeric(5,2)"), "{reasons:?}");
    assert!(reasons[2].contains("is not a uuid"), "{reasons:?}");
    assert!(reasons[3].contains("is not base64"), "{reasons:?}");
    assert!(reasons[4].contains("UTC offset"), "{reasons:?}");
}

#[test]
fn many_typed_rows_arrive_once_each_through_a_transform() {
    let Some(pg) = PgSchema::new("logical_many") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let s = &pg.name;
    let url = &pg.url;
    // More rows than one fetch (5,000) and one COPY chunk, every value
    // different, so a lost, repeated or shifted row shows.
    pg.client()
        .batch_execute(&format!(
            "CREATE TABLE {s}.src (id int PRIMARY KEY, ts timestamptz, d date, u uuid,
               n numeric(12,2), b bytea, t time);
             INSERT INTO {s}.src SELECT g,
               '2000-01-01 00:00:00+00'::timestamptz + g * interval '1 hour 1.000001 second',
               '2000-01-01'::date + g, md5(g::text)::uuid, g / 100.0, decode(md5(g::text), 'hex'),
               '00:00:00'::time + g * interval '1.5 second'
             FROM generate_series(1, 12345) g"
        ))
        .expect("setup");
    let out = bash(
        &format!(
            "etl-extract -q '{url}' --schema-name {s} --table src | etl-transform --rename t=at | \
             etl-load -q '{url}' --schema-name {s} --table dst"
        ),
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        column_types(&pg, "dst")[1..],
        [
            "ts|timestamp with time zone||",
            "d|date||",
            "u|uuid||",
            "n|numeric|12|2",
            "b|bytea||",
            "at|time without time zone||"
        ]
    );
    assert_eq!(
        pg.rows(&format!(
            "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM {s}.dst"
        )),
        ["12345|12345|1|12345"]
    );
    for (a, b) in [("src", "dst"), ("dst", "src")] {
        let sql = format!(
            "SELECT count(*) FROM (SELECT id, ts, d, u, n, b, {ta} FROM {s}.{a} \
             EXCEPT ALL SELECT id, ts, d, u, n, b, {tb} FROM {s}.{b}) AS x",
            ta = if a == "src" { "t" } else { "at" },
            tb = if b == "src" { "t" } else { "at" },
        );
        let differing: i64 = pg.client().query_one(&sql, &[]).expect("compare").get(0);
        assert_eq!(differing, 0, "{sql}");
    }
}

#[test]
fn a_schema_file_pins_logical_types_for_csv() {
    let Some(pg) = PgSchema::new("logical_pinned") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let s = &pg.name;
    let url = &pg.url;
    write(
        d,
        "pay.csv",
        b"id,day,amount,at,ref\n1,2024-02-29,12.50,2024-01-02T03:04:05Z,a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\n\
          2,2023-02-29,1.5,2024-01-02T03:04:05,nope\n",
    );
    write(
        d,
        "types.json",
        br#"{"day":"date","amount":"decimal(10,2)","at":"timestamptz","ref":"uuid"}"#,
    );
    let out = bash("etl-extract -q pay.csv --schema types.json", d);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines = json_lines(&stdout(&out));
    assert_eq!(
        lines[0]["schema"],
        serde_json::json!({"id": "integer", "day": "date", "amount": "decimal(10,2)",
                           "at": "timestamptz", "ref": "uuid"})
    );
    assert_eq!(lines[1]["amount"].to_string(), "12.50");
    // Row 2 does not fit: passed on as text, rejected by the typed load.
    let out = bash(
        &format!(
            "etl-extract -q pay.csv --schema types.json | \
             etl-load -q '{url}' --schema-name {s} --table pay --rejects r.ndjson"
        ),
        d,
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(
        column_types(&pg, "pay"),
        [
            "id|bigint|64|0",
            "day|date||",
            "amount|numeric|10|2",
            "at|timestamp with time zone||",
            "ref|uuid||"
        ]
    );
    assert_eq!(
        pg.rows(&format!("SELECT id, day, amount::text FROM {s}.pay")),
        ["1|2024-02-29|12.50"]
    );
    let rejects = std::fs::read_to_string(d.join("r.ndjson")).expect("rejects");
    assert!(rejects.contains("has no day 29 in 2023-02"), "{rejects}");

    let out = bash(
        "echo '{\"day\":\"week\"}' > bad.json; etl-extract pay.csv --schema bad.json",
        d,
    );
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("decimal(P,S), date, time"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn naive_timestamps_into_instant_columns_follow_the_policy() {
    let Some(pg) = PgSchema::new("logical_naive") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let s = &pg.name;
    pg.client()
        .batch_execute(&format!("CREATE TABLE {s}.ev (id bigint, at timestamptz)"))
        .expect("setup");
    let input = "{\"id\":1,\"at\":\"2024-01-02T03:04:05Z\"}\n\
                 {\"id\":2,\"at\":\"2024-01-02 03:04:05\"}\n\
                 {\"id\":3,\"at\":\"2024-01-02T03:04:05+05:30\"}\n\
                 {\"id\":4,\"at\":\"2024-01-02\"}\n";
    let load = |args: &[&str]| {
        let mut c = cmd(LOAD, d);
        c.arg(&pg.url)
            .args(["--schema-name", s, "--table", "ev"])
            .args(args);
        run_with_input(c, input.as_bytes())
    };
    // The default: the session's zone (UTC) reads a timestamp without offset.
    let out = load(&[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(pg.count("ev"), 4);
    // reject: only the rows with an offset go in.
    let out = load(&["--naive-timestamps", "reject", "--rejects", "r.ndjson"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(
        pg.rows(&format!(
            "SELECT id, count(*) FROM {s}.ev GROUP BY id ORDER BY id"
        )),
        ["1|2", "2|1", "3|2", "4|1"]
    );
    let rejects = json_lines(&std::fs::read_to_string(d.join("r.ndjson")).expect("rejects"));
    assert_eq!(rejects.len(), 2);
    assert_eq!(rejects[0]["line"], 2);
    assert!(
        rejects[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("has no UTC offset")),
        "{rejects:?}"
    );
    // Stores without instant columns refuse the flag.
    let mut c = cmd(LOAD, d);
    c.args(["t.db", "--table", "t", "--naive-timestamps", "reject"]);
    let out = run_with_input(c, input.as_bytes());
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("--naive-timestamps reject is for PostgreSQL"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn declared_dates_times_instants_and_uuids_go_in_binary_and_keep_their_values() {
    let Some(pg) = PgSchema::new("binlogical") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    // No column without a binary form (an interval, say): the whole COPY
    // is binary.
    let begin = r#"{"@etl":"begin","version":2,"stream":"s","schema":{"id":"integer","d":"date","t":"time","ts":"timestamp","tz":"timestamptz","u":"uuid","b":"bytes"}}"#;
    let rows = [
        r#"{"id":1,"d":"2024-02-29","t":"13:04:05.123456","ts":"2024-01-02T03:04:05.5","tz":"2024-01-02T03:04:05.123456+05:30","u":"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11","b":"3q2+7w=="}"#,
        r#"{"id":2,"d":"0001-01-01","t":"00:00:00","ts":"0001-01-01T00:00:00","tz":"0001-01-01T00:00:00-00:00","u":"00000000-0000-0000-0000-000000000000","b":""}"#,
        r#"{"id":3,"d":"9999-12-31","t":"23:59:59.999999","ts":"9999-12-31T23:59:59.999999","tz":"9999-12-31T23:59:59.999999Z","u":"ffffffff-ffff-ffff-ffff-ffffffffffff","b":"AP8KDVw="}"#,
        r#"{"id":4,"d":"1999-12-31","t":"12:00:00","ts":"2000-01-01 00:00:00","tz":"2024-06-30 23:00:00+02","u":null,"b":null}"#,
        r#"{"id":5,"d":null,"t":null,"ts":null,"tz":null,"u":null,"b":null}"#,
    ];
    let stream = format!(
        "{begin}\n{}\n{{\"@etl\":\"end\",\"stream\":\"s\",\"rows\":5}}\n",
        rows.join("\n")
    );
    let mut c = cmd(LOAD, d);
    c.arg(&pg.url)
        .args(["--schema-name", &pg.name, "-t", "t", "-q"]);
    let out = run_with_input(c, stream.as_bytes());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let s = &pg.name;
    assert_eq!(
        pg.rows(&format!(
            "SELECT id, d::text AS day, t::text AS tod, ts::text AS naive, \
             to_char(tz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') AS utc, u::text AS uu, \
             encode(b, 'hex') AS hex FROM {s}.t ORDER BY id"
        )),
        [
            "1|2024-02-29|13:04:05.123456|2024-01-02 03:04:05.5|2024-01-01 21:34:05.123456|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|deadbeef",
            "2|0001-01-01|00:00:00|0001-01-01 00:00:00|0001-01-01 00:00:00.000000|00000000-0000-0000-0000-000000000000|",
            "3|9999-12-31|23:59:59.999999|9999-12-31 23:59:59.999999|9999-12-31 23:59:59.999999|ffffffff-ffff-ffff-ffff-ffffffffffff|00ff0a0d5c",
            "4|1999-12-31|12:00:00|2000-01-01 00:00:00|2024-06-30 21:00:00.000000||",
            "5||||||",
        ]
    );
    // A declared date in another spelling is not a date the wire knows:
    // a reject with its line, never read by the server's DateStyle.
    let bad = format!(
        "{begin}\n{}\n{}\n{{\"@etl\":\"end\",\"stream\":\"s\",\"rows\":2}}\n",
        r#"{"id":6,"d":"2024-03-01"}"#, r#"{"id":7,"d":"03/04/2024"}"#
    );
    let mut c = cmd(LOAD, d);
    c.arg(&pg.url).args([
        "--schema-name",
        &pg.name,
        "-t",
        "t",
        "-q",
        "--rejects",
        "bad.ndjson",
    ]);
    let out = run_with_input(c, bad.as_bytes());
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let rejects = std::fs::read_to_string(d.join("bad.ndjson")).expect("rejects");
    assert!(
        rejects.contains("is not a date in ISO 8601 form"),
        "{rejects}"
    );
    assert_eq!(pg.count("t"), 6);
}
