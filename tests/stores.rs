//! The store conformance suite: the same cases, with the same input, run
//! against every store etl-load writes, and read back through etl-extract.
//! A store keeps a promise or is listed here as a named exception with its
//! reason (see `Exception`); nothing differs by accident. The stores are
//! the rows of `etlkit::registry`; each has one entry here, in
//! `Kind::of`, that says how to load it and read it back (a row without
//! one fails every case).
//!
//! Stores: SQLite, PostgreSQL (skipped loudly without a server, required
//! under ETLKIT_REQUIRE_POSTGRES), MariaDB/MySQL (the same, under
//! ETLKIT_REQUIRE_MYSQL), the file targets CSV, TSV, NDJSON and Parquet,
//! an NDJSON object on S3, and a Hive-partitioned Parquet dataset
//! (partitioned by `id`, so every case also goes through partition paths
//! and back).

use std::path::{Path, PathBuf};
use std::process::Output;

use etlkit::store::{Capabilities, Instants, NewField};
use serde_json::{Value, json};

use crate::common::expect::expect;
use crate::common::*;

mod types;

/// A store under test, with a place of its own.
struct Store {
    row: &'static Capabilities,
    kind: Kind,
    dir: tempfile::TempDir,
    pg: Option<PgSchema>,
    my: Option<MyDb>,
    /// The S3 test server and the store's bucket.
    s3: Option<(s3::Moto, String)>,
}

/// How the suite addresses a store: its TARGET and what reads it back.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// A table in `w.db`.
    Sqlite,
    /// A table in a schema of its own.
    Postgres,
    /// A table in a database of its own.
    Mysql,
    /// `TABLE.EXT`, read back by etl-extract as the extension says.
    File(&'static str),
    /// A dataset directory `TABLE`, partitioned by `id`.
    Lake,
    /// NDJSON objects on S3 (the moto test server).
    S3,
}

impl Kind {
    /// The suite's entry for each row of the registry's capability table;
    /// `None` for a row the suite leaves out, with the reason.
    fn of(row: &Capabilities) -> Option<Kind> {
        Some(match row.name {
            "SQLite" => Kind::Sqlite,
            "PostgreSQL" => Kind::Postgres,
            "MySQL/MariaDB" => Kind::Mysql,
            "CSV" => Kind::File("csv"),
            "TSV" => Kind::File("tsv"),
            "NDJSON" => Kind::File("ndjson"),
            "Parquet" => Kind::File("parquet"),
            "dataset" => Kind::Lake,
            "S3 object" => Kind::S3,
            other => panic!("{other}: a store with no entry in the conformance suite"),
        })
    }
}

/// Promises a store cannot keep, by design: each is a row of etl-load's
/// capability table (each store's `CAPABILITIES`, gathered by
/// `etlkit::registry` and printed by `etl-load --help`),
/// which this suite reads rather than keeping its own list.
#[derive(Debug, PartialEq)]
enum Exception {
    /// No keys: --mode upsert needs a database.
    NoUpsert,
    /// Written whole: no append to an existing file.
    NoParquetAppend,
    /// No column types: any value fits.
    Untyped,
    /// Columns fixed by the header: a new field is a reject.
    FixedColumns,
    /// No quoting: a value holding a tab or a line break is a reject.
    PlainText,
    /// No type for instants: a DATETIME holds them in UTC, commented so.
    UtcInstants,
    /// No type for uuids: they are text (commented or declared `uuid`).
    NoUuidType,
}

impl Store {
    /// Every store of the registry, each in a fresh place; PostgreSQL and
    /// MySQL only when reachable.
    fn all(test: &str) -> Vec<Store> {
        let mut stores = Vec::new();
        for row in etlkit::registry::rows() {
            let Some(kind) = Kind::of(row) else {
                continue;
            };
            let pg = if kind == Kind::Postgres {
                match PgSchema::new(&format!("st_{test}")) {
                    Some(pg) => Some(pg),
                    None => continue,
                }
            } else {
                None
            };
            let my = if kind == Kind::Mysql {
                match MyDb::new(&format!("st_{test}")) {
                    Some(my) => Some(my),
                    None => continue,
                }
            } else {
                None
            };
            let s3 = if kind == Kind::S3 {
                match s3::Moto::connect(&format!("stores {test}")) {
                    Some(moto) => {
                        let bucket = moto.bucket(&format!("st-{}", test.replace('_', "-")));
                        Some((moto, bucket))
                    }
                    None => continue,
                }
            } else {
                None
            };
            stores.push(Store {
                row,
                kind,
                dir: tempdir(),
                pg,
                my,
                s3,
            });
        }
        stores
    }

    fn d(&self) -> &Path {
        self.dir.path()
    }

    fn is_database(&self) -> bool {
        self.row.tables
    }

    /// Databases keep bookmarks and batch ids beside the data, and so does
    /// a dataset (in its manifest); other files need a --state file.
    fn keeps_own_state(&self) -> bool {
        self.row.own_state
    }

    /// CSV and TSV are read back as written, as text: types are the
    /// load's business.
    fn reads_as_text(&self) -> bool {
        matches!(self.kind, Kind::File("csv" | "tsv"))
    }

    fn lacks(&self, exception: Exception) -> bool {
        let c = self.capabilities();
        match exception {
            Exception::NoUpsert => !c.upsert,
            Exception::NoParquetAppend => !c.append_existing,
            Exception::Untyped => !c.typed_columns,
            Exception::FixedColumns => c.new_field == NewField::Rejected,
            Exception::PlainText => !c.any_text,
            Exception::UtcInstants => c.instants == Instants::Utc,
            Exception::NoUuidType => !c.uuid_type,
        }
    }

    /// The store's row of etl-load's capability table.
    fn capabilities(&self) -> Capabilities {
        *self.row
    }

    fn file(&self, table: &str) -> PathBuf {
        let ext = match self.kind {
            Kind::File(ext) => ext,
            Kind::Lake => return self.d().join(table),
            Kind::Sqlite | Kind::Postgres | Kind::Mysql => unreachable!("databases have tables"),
            Kind::S3 => unreachable!("objects are named by object()"),
        };
        self.d().join(format!("{table}.{ext}"))
    }

    /// etl-load's target arguments for `table`.
    fn target(&self, table: &str) -> Vec<String> {
        match self.kind {
            Kind::Sqlite => vec!["w.db".into(), "--table".into(), table.into()],
            Kind::Postgres => {
                let pg = self.pg.as_ref().expect("a PostgreSQL store has a schema");
                vec![
                    pg.url.clone(),
                    "--schema-name".into(),
                    pg.name.clone(),
                    "--table".into(),
                    table.into(),
                ]
            }
            Kind::Mysql => {
                let my = self.my.as_ref().expect("a MySQL store has a database");
                vec![my.url.clone(), "--table".into(), table.into()]
            }
            Kind::Lake => vec![
                self.file(table).display().to_string(),
                "--partition-by".into(),
                "id".into(),
            ],
            Kind::S3 => vec![self.object(table)],
            _ => vec![self.file(table).display().to_string()],
        }
    }

    /// The S3 store's object for `table`.
    fn object(&self, table: &str) -> String {
        let (_, bucket) = self.s3.as_ref().expect("an S3 store has a bucket");
        format!("s3://{bucket}/{table}.ndjson")
    }

    /// A command for `bin` in the store's directory (pointed at the S3
    /// test server for the S3 store).
    fn command(&self, bin: &str) -> std::process::Command {
        let mut c = cmd(bin, self.d());
        if let Some((moto, _)) = &self.s3 {
            moto.env(&mut c);
        }
        c
    }

    /// Runs etl-load into `table` with `args` and `input` on stdin.
    fn load(&self, table: &str, args: &[&str], input: &str) -> Output {
        let mut c = self.command(LOAD);
        c.args(self.target(table)).args(args);
        run_with_input(c, input.as_bytes())
    }

    /// Like `load`, with the store's own place for bookmarks: a database
    /// keeps them itself, a file target in `TABLE.state.json`.
    fn load_stateful(&self, table: &str, args: &[&str], input: &str) -> Output {
        let state = format!("{table}.state.json");
        let mut all: Vec<&str> = args.to_vec();
        if !self.keeps_own_state() {
            all.extend(["--state", &state]);
        }
        self.load(table, &all, input)
    }

    /// The table's records read back with etl-extract, ordered by `id`;
    /// `None` when the table or file does not exist.
    fn read(&self, table: &str) -> Option<Vec<Value>> {
        let args: Vec<String> = match self.kind {
            Kind::Sqlite => {
                count(&self.d().join("w.db"), table)?;
                vec!["w.db".into(), "--table".into(), table.into()]
            }
            Kind::Postgres => {
                let pg = self.pg.as_ref().expect("a PostgreSQL store has a schema");
                let exists: bool = pg
                    .client()
                    .query_one(
                        "SELECT to_regclass(quote_ident($1) || '.' || quote_ident($2)) IS NOT NULL",
                        &[&pg.name, &table],
                    )
                    .expect("regclass")
                    .get(0);
                if !exists {
                    return None;
                }
                vec![
                    pg.url.clone(),
                    "--schema-name".into(),
                    pg.name.clone(),
                    "--table".into(),
                    table.into(),
                ]
            }
            Kind::Mysql => {
                let my = self.my.as_ref().expect("a MySQL store has a database");
                if !my.exists(table) {
                    return None;
                }
                vec![my.url.clone(), "--table".into(), table.into()]
            }
            Kind::Lake => {
                let dir = self.file(table);
                if !dir.join("_etl_manifest.json").exists() {
                    return None;
                }
                vec![dir.display().to_string()]
            }
            Kind::S3 => {
                let (moto, bucket) = self.s3.as_ref().expect("an S3 store has a bucket");
                moto.get(bucket, &format!("{table}.ndjson"))?;
                let mut c = self.command(EXTRACT);
                c.arg("-q").arg(self.object(table));
                let out = run(c);
                assert_eq!(code(&out), 0, "etl-extract: {}", stderr(&out));
                let mut rows = records(&stdout(&out));
                rows.sort_by_key(|r| r.get("id").map(Value::to_string).unwrap_or_default());
                return Some(rows);
            }
            _ => {
                let file = self.file(table);
                if !file.exists() {
                    return None;
                }
                let mut args = vec![file.display().to_string()];
                if self.reads_as_text() {
                    args.push("--all-text".into());
                }
                args
            }
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut rows = extract_records(self.d(), &args);
        rows.sort_by_key(|r| r.get("id").map(Value::to_string).unwrap_or_default());
        Some(rows)
    }

    fn name(&self) -> String {
        self.row.name.to_string()
    }
}

fn framed(records: &[Value]) -> String {
    framed_with(r#"{"@etl":"begin","stream":"s"}"#, records, None)
}

fn framed_with(begin: &str, records: &[Value], bookmark: Option<Value>) -> String {
    let mut s = format!("{begin}\n");
    for r in records {
        s.push_str(&r.to_string());
        s.push('\n');
    }
    let mut end = json!({"@etl": "end", "stream": "s", "rows": records.len()});
    if let Some(b) = bookmark {
        end["bookmark"] = b;
    }
    s.push_str(&end.to_string());
    s.push('\n');
    s
}

/// Compares what a store holds with what it should, values by value. CSV
/// read back as text holds every value as text (or null).
fn assert_holds(store: &Store, table: &str, expected: &[Value]) {
    let got = store
        .read(table)
        .unwrap_or_else(|| panic!("{}: {table} does not exist", store.name()));
    let expected: Vec<Value> = if store.reads_as_text() {
        expected.iter().map(as_csv_text).collect()
    } else {
        expected.to_vec()
    };
    assert_eq!(
        got.len(),
        expected.len(),
        "{}: {table} holds {got:?}, expected {expected:?}",
        store.name()
    );
    for (g, e) in got.iter().zip(&expected) {
        let e_obj = e.as_object().expect("expected records are objects");
        for (k, v) in e_obj {
            let gv = g.get(k).unwrap_or(&Value::Null);
            assert!(
                same(gv, v),
                "{}: {table}: field {k}: got {gv}, expected {v} (record {g})",
                store.name()
            );
        }
    }
}

fn as_csv_text(record: &Value) -> Value {
    let obj = record.as_object().expect("object");
    Value::Object(
        obj.iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::Null => Value::Null,
                    Value::String(s) if s.is_empty() => Value::Null,
                    Value::String(s) => Value::String(s.clone()),
                    other => Value::String(other.to_string()),
                };
                (k.clone(), text)
            })
            .collect(),
    )
}

fn ok(store: &Store, out: &Output) {
    assert_eq!(code(out), 0, "{}: {}", store.name(), stderr(out));
}

#[test]
fn append_adds_and_replace_refills() {
    let first = [json!({"id": 1, "name": "a"}), json!({"id": 2, "name": "b"})];
    let second = [json!({"id": 3, "name": "c"})];
    for store in Store::all("modes") {
        ok(
            &store,
            &store.load("t", &["--mode", "replace"], &framed(&first)),
        );
        assert_holds(&store, "t", &first);
        let out = store.load("t", &[], &framed(&second));
        if store.lacks(Exception::NoParquetAppend) {
            assert_eq!(code(&out), 2, "{}", stderr(&out));
            assert_holds(&store, "t", &first);
        } else {
            ok(&store, &out);
            assert_holds(
                &store,
                "t",
                &[first[0].clone(), first[1].clone(), second[0].clone()],
            );
        }
        ok(
            &store,
            &store.load("t", &["--mode", "replace"], &framed(&second)),
        );
        assert_holds(&store, "t", &second);
    }
}

#[test]
fn upsert_of_whole_records_with_a_key_twice_in_one_run_keeps_the_last() {
    for store in Store::all("upsert_twice") {
        if store.lacks(Exception::NoUpsert) {
            continue;
        }
        let upsert = ["--mode", "upsert", "--key", "id"];
        ok(
            &store,
            &store.load("h", &upsert, &framed(&[json!({"id": 1, "a": "a1"})])),
        );
        // A stored key and a new one, each twice: the second of each wins.
        let twice = framed(&[
            json!({"id": 1, "a": "first"}),
            json!({"id": 3, "a": "first"}),
            json!({"id": 1, "a": "last"}),
            json!({"id": 3, "a": "last"}),
        ]);
        ok(&store, &store.load("h", &upsert, &twice));
        let expected = [json!({"id": 1, "a": "last"}), json!({"id": 3, "a": "last"})];
        assert_holds(&store, "h", &expected);
        // Once per key: merged as staged.
        let once = framed(&[json!({"id": 3, "a": "once"}), json!({"id": 4, "a": "new"})]);
        ok(&store, &store.load("h", &upsert, &once));
        let expected = [
            json!({"id": 1, "a": "last"}),
            json!({"id": 3, "a": "once"}),
            json!({"id": 4, "a": "new"}),
        ];
        assert_holds(&store, "h", &expected);
    }
}

#[test]
fn upsert_keeps_omitted_fields_and_the_last_record_wins() {
    for store in Store::all("upsert") {
        let out = store.load(
            "h",
            &["--mode", "upsert", "--key", "id"],
            &framed(&[json!({"id": 1, "a": "a1", "b": "b1"})]),
        );
        if store.lacks(Exception::NoUpsert) {
            assert_eq!(code(&out), 2, "{}: {}", store.name(), stderr(&out));
            continue;
        }
        ok(&store, &out);
        // Partial records: an omitted field keeps its stored value; two
        // records of one key in one run apply in order.
        let delta = framed(&[
            json!({"id": 1, "a": "A1"}),
            json!({"id": 2, "a": "A2", "b": "B2"}),
            json!({"id": 1, "b": "B1"}),
        ]);
        let expected = [
            json!({"id": 1, "a": "A1", "b": "B1"}),
            json!({"id": 2, "a": "A2", "b": "B2"}),
        ];
        for _ in 0..2 {
            ok(
                &store,
                &store.load("h", &["--mode", "upsert", "--key", "id"], &delta),
            );
            assert_holds(&store, "h", &expected);
        }
        // An explicit null is a value, unlike an omitted field.
        ok(
            &store,
            &store.load(
                "h",
                &["--mode", "upsert", "--key", "id"],
                &framed(&[json!({"id": 2, "b": null})]),
            ),
        );
        assert_holds(
            &store,
            "h",
            &[expected[0].clone(), json!({"id": 2, "a": "A2", "b": null})],
        );
    }
}

#[test]
fn a_cut_stream_and_an_empty_one_change_nothing() {
    let rows = [json!({"id": 1, "name": "kept"})];
    for store in Store::all("cut") {
        ok(
            &store,
            &store.load("t", &["--mode", "replace"], &framed(&rows)),
        );
        for mode in ["append", "replace"] {
            if mode == "append" && store.lacks(Exception::NoParquetAppend) {
                continue;
            }
            let cut = r#"{"@etl":"begin","stream":"s"}
{"id":2,"name":"lost"}
"#;
            let out = store.load("t", &["--mode", mode], cut);
            expect(&out, store.name()).code(1).stdout("").stderr_like(
                "etl-load: error: * as it was): stdin: upstream ended early after 1 rows: \
                 stream \"s\" (begun on line 1) has no end line\n",
            );
            assert_holds(&store, "t", &rows);
        }
        let out = store.load("t", &["--mode", "replace"], "");
        expect(&out, store.name())
            .code(1)
            .stdout("")
            .stderr_like(
                "etl-load: error: * as it was): stdin: input has no lines at all; refusing to replace * with nothing\n\
                 hint: if the source really is empty, add --allow-empty\n",
            )
            .stderr_contains("refusing to replace");
        assert_holds(&store, "t", &rows);
    }
}

#[test]
fn bookmarks_commit_with_the_data_and_a_stale_start_is_refused() {
    let rows = [json!({"id": 1, "t": 10})];
    let bookmark = json!({"cursor": "t", "value": 10, "at_value": []});
    for store in Store::all("state") {
        let first = framed_with(
            r#"{"@etl":"begin","stream":"s","from":null}"#,
            &rows,
            Some(bookmark.clone()),
        );
        ok(
            &store,
            &store.load_stateful("t", &["--mode", "replace"], &first),
        );
        // The same extract again (it started from no bookmark, but one is
        // stored now): refused, nothing written.
        let out = store.load_stateful(
            "t",
            &["--mode", "replace"],
            &framed_with(
                r#"{"@etl":"begin","stream":"s","from":null}"#,
                &[json!({"id": 2, "t": 5})],
                Some(json!({"cursor": "t", "value": 5, "at_value": []})),
            ),
        );
        assert_eq!(code(&out), 1, "{}: {}", store.name(), stderr(&out));
        assert!(
            stderr(&out).contains("is not the one this extract started from"),
            "{}: {}",
            store.name(),
            stderr(&out)
        );
        assert_holds(&store, "t", &rows);
        // A run that starts from the stored bookmark goes on.
        let next = framed_with(
            &json!({"@etl": "begin", "stream": "s", "from": bookmark}).to_string(),
            &[json!({"id": 2, "t": 20})],
            Some(json!({"cursor": "t", "value": 20, "at_value": []})),
        );
        ok(
            &store,
            &store.load_stateful("t", &["--mode", "replace"], &next),
        );
        assert_holds(&store, "t", &[json!({"id": 2, "t": 20})]);
    }
}

#[test]
fn batch_ids_are_skipped_when_replayed_and_scoped_to_their_table() {
    let begin = r#"{"@etl":"begin","stream":"app","batch":"b-1"}"#;
    let rows = [json!({"id": 1}), json!({"id": 2})];
    let batch = framed_with(begin, &rows, None);
    for store in Store::all("batches") {
        // A replayed batch in a replace run is loaded again: the same
        // content replaces the same content, never with nothing.
        for _ in 0..2 {
            ok(
                &store,
                &store.load_stateful("r", &["--mode", "replace"], &batch),
            );
            assert_holds(&store, "r", &rows);
        }
        if store.lacks(Exception::NoParquetAppend) {
            continue;
        }
        ok(&store, &store.load_stateful("t1", &[], &batch));
        // Replayed after a crash between commit and checkpoint: skipped.
        let out = store.load_stateful("t1", &[], &batch);
        ok(&store, &out);
        assert!(
            stderr(&out).contains("2 skipped"),
            "{}: {}",
            store.name(),
            stderr(&out)
        );
        assert_holds(&store, "t1", &rows);
        // The same batch into another table is that table's first time.
        ok(&store, &store.load_stateful("t2", &[], &batch));
        assert_holds(&store, "t2", &rows);
    }
}

#[test]
fn schema_evolves_by_default_and_strict_rejects_new_fields() {
    for store in Store::all("drift") {
        if store.lacks(Exception::NoParquetAppend) {
            continue;
        }
        ok(
            &store,
            &store.load(
                "t",
                &["--mode", "replace"],
                &framed(&[json!({"id": 1, "a": "x"})]),
            ),
        );
        let out = store.load(
            "t",
            &[
                "--schema",
                "strict",
                "--rejects",
                "bad.ndjson",
                "--max-rejects",
                "5",
            ],
            &framed(&[
                json!({"id": 2, "a": "y"}),
                json!({"id": 3, "a": "z", "extra": 1}),
            ]),
        );
        assert_eq!(code(&out), 3, "{}: {}", store.name(), stderr(&out));
        assert!(
            stderr(&out).contains("2 read, 1 written, 1 rejected")
                || stderr(&out).contains("2 rows read, 1 written, 1 rejected"),
            "{}: {}",
            store.name(),
            stderr(&out)
        );
        assert_holds(
            &store,
            "t",
            &[json!({"id": 1, "a": "x"}), json!({"id": 2, "a": "y"})],
        );
        let out = store.load("t", &[], &framed(&[json!({"id": 4, "a": "w", "extra": 1})]));
        if store.lacks(Exception::FixedColumns) {
            assert_eq!(code(&out), 1, "{}: {}", store.name(), stderr(&out));
            continue;
        }
        ok(&store, &out);
        let got = store.read("t").expect("table");
        assert_eq!(got.len(), 3, "{}", store.name());
        assert!(
            same(&got[2]["extra"], &json!(1)),
            "{}: {got:?}",
            store.name()
        );
    }
}

#[test]
fn a_value_that_does_not_fit_is_a_reject_and_every_row_is_accounted_for() {
    for store in Store::all("rejects") {
        if store.lacks(Exception::Untyped) || store.lacks(Exception::NoParquetAppend) {
            continue;
        }
        ok(
            &store,
            &store.load("t", &[], &framed(&[json!({"id": 1, "n": 5})])),
        );
        let input = framed(&[
            json!({"id": 2, "n": 6}),
            json!({"id": 3, "n": "six"}),
            json!({"id": 4, "n": 7}),
        ]);
        // Without --rejects the first bad row fails the run, naming it.
        let out = store.load("t", &[], &input);
        assert_eq!(code(&out), 1, "{}: {}", store.name(), stderr(&out));
        assert!(
            stderr(&out).contains("stdin:3:"),
            "{}: {}",
            store.name(),
            stderr(&out)
        );
        assert_holds(&store, "t", &[json!({"id": 1, "n": 5})]);
        let out = store.load(
            "t",
            &["--rejects", "bad.ndjson", "--max-rejects", "1"],
            &input,
        );
        assert_eq!(code(&out), 3, "{}: {}", store.name(), stderr(&out));
        assert!(
            stderr(&out).contains("3 rows read, 2 written, 1 rejected"),
            "{}: {}",
            store.name(),
            stderr(&out)
        );
        let bad = std::fs::read_to_string(store.d().join("bad.ndjson")).expect("rejects");
        assert!(bad.contains("six"), "{}: {bad}", store.name());
        assert_eq!(store.read("t").expect("table").len(), 3, "{}", store.name());
    }
}

#[test]
fn values_survive_the_round_trip() {
    let rows = [
        json!({
            "id": 1,
            "big": 9007199254740993i64,
            "zip": "00501",
            "price": 12.5,
            "at": "2026-11-01T09:15:00.5Z",
            "doc": {"a": [1, 2.5, null], "b": {"c": "東京"}},
            "text": "Café \"quoted\"\nsecond line",
            "flag": true,
            "none": null
        }),
        json!({"id": 2, "big": -9223372036854775807i64, "zip": "99950", "price": 0.1,
               "at": "2026-11-02T00:00:00Z", "doc": [], "text": "", "flag": false, "none": null}),
    ];
    for store in Store::all("values") {
        if store.lacks(Exception::PlainText) {
            // The line break in the first row's text cannot be written:
            // the run fails naming it, and no file appears.
            let out = store.load("v", &["--mode", "replace"], &framed(&rows));
            assert_eq!(code(&out), 1, "{}: {}", store.name(), stderr(&out));
            assert!(
                stderr(&out).contains("stdin:2:") && stderr(&out).contains("line break"),
                "{}: {}",
                store.name(),
                stderr(&out)
            );
            assert!(store.read("v").is_none(), "{}", store.name());
            let rows: Vec<Value> = rows
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    r["text"] = json!("Café \"quoted\" on one line");
                    r
                })
                .collect();
            ok(
                &store,
                &store.load("v", &["--mode", "replace"], &framed(&rows)),
            );
            assert_holds(&store, "v", &rows);
            continue;
        }
        ok(
            &store,
            &store.load("v", &["--mode", "replace"], &framed(&rows)),
        );
        let got = store.read("v").expect("table");
        assert_eq!(got.len(), 2, "{}", store.name());
        for (g, e) in got.iter().zip(&rows) {
            for key in ["id", "big", "zip", "at", "text", "price"] {
                let expected = if store.reads_as_text() {
                    as_csv_text(e)[key].clone()
                } else {
                    e[key].clone()
                };
                assert!(
                    same(&g[key], &expected),
                    "{}: {key}: got {}, expected {expected}",
                    store.name(),
                    g[key]
                );
            }
            if !store.reads_as_text() {
                assert!(
                    same(&g["doc"], &e["doc"]),
                    "{}: doc {}",
                    store.name(),
                    g["doc"]
                );
                assert_eq!(g["flag"], e["flag"], "{}", store.name());
            }
        }
    }
}

#[test]
fn hostile_and_long_names_are_kept_apart_or_refused() {
    let long_a = format!("{}_a", "c".repeat(70));
    let long_b = format!("{}_b", "c".repeat(70));
    let mut record = serde_json::Map::new();
    record.insert("id".into(), json!(1));
    record.insert("we\"ird; drop table x;--".into(), json!("q"));
    record.insert(long_a.clone(), json!("A"));
    record.insert(long_b.clone(), json!("B"));
    let rows = [Value::Object(record)];
    for store in Store::all("names") {
        let table = if store.is_database() {
            "tab \"le\"; --"
        } else {
            "t"
        };
        let out = store.load(table, &["--mode", "replace"], &framed(&rows));
        if code(&out) != 0 {
            // Refused: clearly, and nothing was written.
            assert!(
                stderr(&out).contains(&long_a[..20]) || stderr(&out).contains("63"),
                "{}: {}",
                store.name(),
                stderr(&out)
            );
            assert!(store.read(table).is_none(), "{}", store.name());
            continue;
        }
        let got = store.read(table).expect("table");
        assert_eq!(got[0]["we\"ird; drop table x;--"], "q", "{}", store.name());
        assert_eq!(got[0][long_a.as_str()], "A", "{}: {got:?}", store.name());
        assert_eq!(got[0][long_b.as_str()], "B", "{}: {got:?}", store.name());
    }
}

#[test]
fn two_loads_at_once_both_land() {
    for store in Store::all("concurrent") {
        if store.lacks(Exception::NoParquetAppend) {
            continue;
        }
        ok(
            &store,
            &store.load("t", &["--mode", "replace"], &framed(&[json!({"id": 0})])),
        );
        let records: Vec<Value> = (1..=2000).map(|i| json!({"id": i})).collect();
        let (a, b) = records.split_at(1000);
        let (a, b) = (framed(a), framed(b));
        let (out_a, out_b) = std::thread::scope(|s| {
            let ta = s.spawn(|| store.load("t", &["--wait", "30"], &a));
            let tb = s.spawn(|| store.load("t", &["--wait", "30"], &b));
            (ta.join().expect("a"), tb.join().expect("b"))
        });
        ok(&store, &out_a);
        ok(&store, &out_b);
        assert_eq!(
            store.read("t").expect("table").len(),
            2001,
            "{}",
            store.name()
        );
    }
}

/// The run history a store keeps: `_etl_runs` read back with etl-extract,
/// or the `runs` of a file target's state file.
fn runs(store: &Store, table: &str) -> Vec<Value> {
    match store.kind {
        Kind::Sqlite => extract_records(store.d(), &["w.db", "--table", "_etl_runs"]),
        Kind::Postgres => {
            let pg = store.pg.as_ref().expect("a PostgreSQL store has a schema");
            extract_records(
                store.d(),
                &[&pg.url, "--schema-name", &pg.name, "--table", "_etl_runs"],
            )
        }
        Kind::Mysql => {
            let my = store.my.as_ref().expect("a MySQL store has a database");
            extract_records(store.d(), &[&my.url, "--table", "_etl_runs"])
        }
        Kind::Lake => {
            let text = std::fs::read_to_string(store.file(table).join("_etl_manifest.json"))
                .expect("manifest");
            let doc: Value = serde_json::from_str(&text).expect("manifest JSON");
            let runs = doc
                .get("state")
                .map_or(&doc["runs"], |state| &state["runs"]);
            runs.as_array().cloned().unwrap_or_default()
        }
        _ => {
            let text = std::fs::read_to_string(store.d().join(format!("{table}.state.json")))
                .expect("state file");
            let doc: Value = serde_json::from_str(&text).expect("state JSON");
            doc["runs"].as_array().cloned().unwrap_or_default()
        }
    }
}

#[test]
fn every_run_is_recorded_with_its_counts_and_a_failure_with_its_place() {
    for store in Store::all("runs") {
        let good = framed_with(
            r#"{"@etl":"begin","stream":"s","from":null}"#,
            &[json!({"id": 1}), json!({"id": 2})],
            Some(json!({"cursor": "id", "value": 2, "at_value": []})),
        );
        ok(
            &store,
            &store.load_stateful("t", &["--mode", "replace", "--job", "nightly"], &good),
        );
        let second = framed_with(
            &json!({"@etl": "begin", "stream": "s",
                    "from": {"cursor": "id", "value": 2, "at_value": []}})
            .to_string(),
            &[json!({"id": 3})],
            Some(json!({"cursor": "id", "value": 3, "at_value": []})),
        );
        ok(
            &store,
            &store.load_stateful("t", &["--mode", "replace", "--job", "nightly"], &second),
        );
        let bad = "{\"id\":4}\n{\"id\":5\n";
        let out = store.load_stateful("t", &["--mode", "replace", "--job", "nightly"], bad);
        assert_eq!(code(&out), 1, "{}: {}", store.name(), stderr(&out));
        assert_holds(&store, "t", &[json!({"id": 3})]);

        let runs = runs(&store, "t");
        let status: Vec<&str> = runs
            .iter()
            .map(|r| r["status"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(status, ["ok", "ok", "failed"], "{}: {runs:?}", store.name());
        assert!(
            runs.iter().all(|r| r["job"] == "nightly"),
            "{}",
            store.name()
        );
        assert!(
            same(&runs[0]["rows_written"], &json!(2)),
            "{}: {runs:?}",
            store.name()
        );
        assert!(same(&runs[1]["rows_read"], &json!(1)), "{}", store.name());
        let after = &runs[1]["bookmark_after"];
        let after: Value = match after {
            Value::String(text) => serde_json::from_str(text).expect("JSON text"),
            other => other.clone(),
        };
        assert!(
            same(&after["s"]["value"], &json!(3)),
            "{}: {after}",
            store.name()
        );
        let error = runs[2]["error"].as_str().unwrap_or_default();
        assert!(error.contains("stdin:2:"), "{}: {error}", store.name());
    }
}

#[test]
fn a_killed_load_leaves_no_rows_and_no_ok_run() {
    use std::io::Write as _;
    use std::process::Stdio;
    for store in Store::all("killed") {
        if !store.is_database() {
            continue;
        }
        let mut c = cmd(LOAD, store.d());
        c.args(store.target("t"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c.spawn().expect("etl-load starts");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"{\"@etl\":\"begin\",\"stream\":\"s\"}\n")
            .expect("write");
        for i in 0..5000 {
            writeln!(stdin, "{{\"id\":{i}}}").expect("write");
        }
        stdin.flush().expect("flush");
        std::thread::sleep(std::time::Duration::from_millis(300));
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        drop(stdin);
        assert_eq!(
            store.read("t").map(|r| r.len()).unwrap_or(0),
            0,
            "{}",
            store.name()
        );
        let no_history = match &store.pg {
            Some(pg) => {
                pg.rows(&format!(
                    "SELECT to_regclass('{}._etl_runs') IS NULL",
                    pg.name
                )) == ["true"]
            }
            None => count(&store.d().join("w.db"), "_etl_runs").is_none(),
        };
        let ok_runs = if no_history {
            0
        } else {
            runs(&store, "t")
                .iter()
                .filter(|r| r["status"] == "ok")
                .count()
        };
        assert_eq!(ok_runs, 0, "{}", store.name());
    }
}

#[test]
fn a_dry_run_does_everything_then_changes_nothing() {
    let rows = [json!({"id": 1, "name": "kept"})];
    for store in Store::all("dry") {
        ok(
            &store,
            &store.load("t", &["--mode", "replace"], &framed(&rows)),
        );
        let input = framed(&[json!({"id": 2, "name": "new", "extra": 1.5})]);
        let out = store.load("t", &["--mode", "replace", "--dry-run"], &input);
        ok(&store, &out);
        let err = stderr(&out);
        assert!(
            err.contains("dry run: nothing was committed"),
            "{}: {err}",
            store.name()
        );
        assert!(
            err.contains("extra"),
            "{}: the new column is shown: {err}",
            store.name()
        );
        assert!(
            err.contains("1 rows read, 1 written"),
            "{}: {err}",
            store.name()
        );
        assert_holds(&store, "t", &rows);
        // Bad rows still fail a dry run, as they would fail the real one.
        let out = store.load("t", &["--mode", "replace", "--dry-run"], "{\"id\":3\n");
        assert_eq!(code(&out), 1, "{}: {}", store.name(), stderr(&out));
        // Segments that would each commit commit nothing in a dry run.
        if store.capabilities().segment_commits {
            let two = format!(
                "{}{}",
                framed(&[json!({"id": 4, "name": "a"})]),
                framed(&[json!({"id": 5, "name": "b", "more": 1})])
            );
            let out = store.load("t", &["--commit", "segment", "--dry-run"], &two);
            ok(&store, &out);
            assert_holds(&store, "t", &rows);
        }
    }
}

/// `--schema strict` into a table this load creates: its columns are the
/// first records' fields (the typing sample), and a later record with a new
/// field is a reject in every store, as it is into an existing table.
#[test]
fn strict_into_a_new_table_rejects_a_field_the_first_records_lacked() {
    let mut records: Vec<Value> = (1..=1000).map(|i| json!({"id": i, "a": "x"})).collect();
    records.push(json!({"id": 1001, "a": "y", "extra": 1}));
    for store in Store::all("strictnew") {
        let out = store.load(
            "t",
            &[
                "--schema",
                "strict",
                "--rejects",
                "bad.ndjson",
                "--max-rejects",
                "5",
            ],
            &framed(&records),
        );
        expect(&out, store.name())
            .code(3)
            .stdout("")
            .stderr_like("etl-load: 1001 rows read, 1000 written, 1 rejected in * s (* rows/s)\n");
        let got = store.read("t").expect("table");
        assert_eq!(got.len(), 1000, "{}", store.name());
        assert!(
            got.iter().all(|r| r.get("extra").is_none()),
            "{}: {:?}",
            store.name(),
            got.last()
        );
        let bad = std::fs::read_to_string(store.d().join("bad.ndjson")).expect("rejects");
        assert_eq!(bad.lines().count(), 1, "{}: {bad}", store.name());
        assert!(bad.contains("\"extra\""), "{}: {bad}", store.name());
    }
}

/// A record whose two fields differ only in case names one column twice:
/// a reject in every database (their column names are matched without
/// case), never a second column; files keep both fields as they are.
#[test]
fn a_record_naming_a_column_twice_in_two_cases_is_a_reject() {
    let records = [json!({"id": 1, "a": "x"}), json!({"id": 2, "Id": 3})];
    for store in Store::all("twocase") {
        let out = store.load(
            "t",
            &["--rejects", "bad.ndjson", "--max-rejects", "5"],
            &framed(&records),
        );
        if !store.capabilities().names_fold_case {
            continue;
        }
        expect(&out, store.name())
            .code(3)
            .stdout("")
            .stderr_like("etl-load: 2 rows read, 1 written, 1 rejected in * s (* rows/s)\n");
        let got = store.read("t").expect("table");
        assert_eq!(got, vec![json!({"id": 1, "a": "x"})], "{}", store.name());
        let bad = std::fs::read_to_string(store.d().join("bad.ndjson")).expect("rejects");
        assert!(
            bad.contains("names column \\\"id\\\" a second time (names are case-insensitive)"),
            "{}: {bad}",
            store.name()
        );
    }
}

/// The flag checks read the capability table: for every local store, each
/// flag the table says it cannot honour is a usage error (exit 2) before
/// any input is read, and each it can honour passes the check.
#[test]
fn flags_a_store_cannot_honour_are_refused_as_its_capability_row_says() {
    let d = tempdir();
    let targets: [(Capabilities, &[&str]); 6] = [
        (
            etlkit::sqlite::store::CAPABILITIES,
            &["w.db", "--table", "t"],
        ),
        (etlkit::files::store::CSV, &["t.csv"]),
        (etlkit::files::store::TSV, &["t.tsv"]),
        (etlkit::files::store::NDJSON, &["t.ndjson"]),
        (etlkit::files::store::PARQUET, &["t.parquet"]),
        (
            etlkit::lake::store::CAPABILITIES,
            &["lake", "--partition-by", "id"],
        ),
    ];
    let mut help = cmd(LOAD, d.path());
    help.arg("--help").env("COLUMNS", "80");
    let out = run(help);
    expect(&out, "etl-load --help").code(0).stderr("");
    assert!(
        stdout(&out).contains(&etlkit::registry::capability_table()),
        "{}",
        stdout(&out)
    );
    let input = framed(&[json!({"id": 1})]);
    for (c, target) in targets {
        let checks: [(&[&str], bool); 4] = [
            (&["--mode", "upsert", "--key", "id"], c.upsert),
            (&["--commit", "segment"], c.segment_commits),
            (&["--mode", "replace-partitions"], c.partitions),
            (&["--state", "s.json"], !c.own_state),
        ];
        for (flags, honoured) in checks {
            let mut command = cmd(LOAD, d.path());
            command.args(target).args(flags);
            let out = run_with_input(command, input.as_bytes());
            if honoured {
                assert_ne!(code(&out), 2, "{} {flags:?}: {}", c.name, stderr(&out));
            } else {
                expect(&out, format!("{} {flags:?}", c.name))
                    .code(2)
                    .stdout("")
                    .stderr_like("etl-load: error: *\n");
            }
        }
    }
}

/// A key field finds its column as any field does (`ID` finds `id`), and
/// a null key is a reject with the same reason, in every store with keys:
/// the binding rules are one for all databases.
#[test]
fn a_key_field_binds_like_any_field_and_a_null_key_is_a_reject() {
    for store in Store::all("keycase") {
        if store.lacks(Exception::NoUpsert) {
            continue;
        }
        let upsert = ["--mode", "upsert", "--key", "id"];
        ok(
            &store,
            &store.load("t", &upsert, &framed(&[json!({"id": 1, "v": "a"})])),
        );
        let mut args = upsert.to_vec();
        args.extend(["--rejects", "bad.ndjson", "--max-rejects", "1"]);
        let input = framed(&[json!({"ID": 1, "v": "b"}), json!({"id": null, "v": "c"})]);
        let out = store.load("t", &args, &input);
        assert_eq!(code(&out), 3, "{}: {}", store.name(), stderr(&out));
        assert_holds(&store, "t", &[json!({"id": 1, "v": "b"})]);
        let bad = std::fs::read_to_string(store.d().join("bad.ndjson")).expect("rejects");
        let bad = json_lines(&bad);
        assert_eq!(bad.len(), 1, "{}: {bad:?}", store.name());
        assert_eq!(
            bad[0]["reason"],
            json!("key field \"id\" is null or missing"),
            "{}",
            store.name()
        );
    }
}

/// `records` ordered as [`Store::read`] orders what it reads back.
fn by_id(records: &[Value]) -> Vec<Value> {
    let mut sorted = records.to_vec();
    sorted.sort_by_key(|r| r.get("id").map(Value::to_string).unwrap_or_default());
    sorted
}

#[test]
fn sync_deletes_exactly_what_the_source_lacks_and_every_guard_holds() {
    let start: Vec<Value> = (1..=10)
        .map(|i| json!({"id": i, "v": format!("v{i}")}))
        .collect();
    // The source now: 9 and 10 gone, 2 changed, 11 new.
    let mut now: Vec<Value> = start[..8].to_vec();
    now[1] = json!({"id": 2, "v": "changed"});
    now.push(json!({"id": 11, "v": "new"}));
    let sync = ["--mode", "sync", "--key", "id"];
    for store in Store::all("sync") {
        let out = store.load("t", &sync, &framed(&start));
        if store.lacks(Exception::NoUpsert) {
            expect(&out, store.name())
                .code(2)
                .stderr_contains("--mode sync needs a database");
            continue;
        }
        ok(&store, &out);
        assert_holds(&store, "t", &by_id(&start));
        let unchanged = |why: &str| {
            let held = store.read("t").expect("the table");
            assert_eq!(held.len(), 10, "{}: {why}: {held:?}", store.name());
            assert_holds(&store, "t", &by_id(&start));
        };
        // A cut stream commits nothing, so deletes nothing.
        let mut cut = framed(&now);
        cut.truncate(cut.rfind("{\"@etl\":\"end\"").expect("end line"));
        expect(&store.load("t", &sync, &cut), store.name())
            .code(1)
            .stderr_contains("has no end line");
        unchanged("cut");
        // An empty stream would delete everything: refused.
        expect(&store.load("t", &sync, &framed(&[])), store.name())
            .code(1)
            .stderr_contains("no records; --mode sync would delete every row")
            .stderr_contains("--allow-empty");
        unchanged("empty");
        // A null key, or any rejected record, fails the run: its row would
        // read as deleted.
        let mut null_key = now.clone();
        null_key[3] = json!({"id": null, "v": "x"});
        let out = store.load(
            "t",
            &["--mode", "sync", "--key", "id", "--rejects", "bad.ndjson"],
            &framed(&null_key),
        );
        expect(&out, store.name())
            .code(1)
            .stderr_contains("stdin:5:")
            .stderr_contains("--mode sync does not reject records");
        unchanged("null key");
        // More deletes than --max-deletes allows: refused before commit.
        for limit in ["1", "10%"] {
            let out = store.load(
                "t",
                &["--mode", "sync", "--key", "id", "--max-deletes", limit],
                &framed(&now),
            );
            expect(&out, store.name())
                .code(1)
                .stderr_contains("would remove 2 of the 10 rows")
                .stderr_contains("nothing was committed");
            unchanged(limit);
        }
        // Within the limit: exactly the two gone rows go, the rest upsert.
        let out = store.load(
            "t",
            &[
                "--mode",
                "sync",
                "--key",
                "id",
                "--max-deletes",
                "20%",
                "-v",
            ],
            &framed(&now),
        );
        expect(&out, store.name())
            .code(0)
            .stderr_contains("deleted 2 rows missing from the source");
        assert_holds(&store, "t", &by_id(&now));
        // The same source again: nothing more goes.
        let out = store.load("t", &["--mode", "sync", "--key", "id", "-v"], &framed(&now));
        expect(&out, store.name())
            .code(0)
            .stderr_contains("deleted 0 rows");
        assert_holds(&store, "t", &by_id(&now));
        // --allow-empty: an empty source really is empty.
        let out = store.load(
            "t",
            &["--mode", "sync", "--key", "id", "--allow-empty"],
            &framed(&[]),
        );
        ok(&store, &out);
        assert_eq!(
            store.read("t").map(|r| r.len()),
            Some(0),
            "{}",
            store.name()
        );
    }
}

#[test]
fn sync_with_soft_delete_marks_rows_and_clears_them_when_they_come_back() {
    let all: Vec<Value> = (1..=4).map(|i| json!({"id": i, "v": i * 10})).collect();
    let args = ["--mode", "sync", "--key", "id", "--soft-delete", "gone_at"];
    for store in Store::all("softsync") {
        if store.lacks(Exception::NoUpsert) {
            continue;
        }
        ok(&store, &store.load("t", &args, &framed(&all)));
        let marked = |expected: &[i64]| {
            let held = store.read("t").expect("the table");
            assert_eq!(held.len(), 4, "{}: rows are kept: {held:?}", store.name());
            let gone: Vec<i64> = held
                .iter()
                .filter(|r| !r["gone_at"].is_null())
                .filter_map(|r| r["id"].as_i64())
                .collect();
            assert_eq!(gone, expected, "{}: {held:?}", store.name());
        };
        marked(&[]);
        let out = store.load("t", &[&args[..], &["-v"]].concat(), &framed(&all[..2]));
        expect(&out, store.name())
            .code(0)
            .stderr_contains("marked 2 rows missing from the source (--soft-delete gone_at)");
        marked(&[3, 4]);
        // 4 comes back, 1 goes: a row already marked is not marked again.
        let back = [all[1].clone(), all[3].clone()];
        ok(&store, &store.load("t", &args, &framed(&back)));
        marked(&[1, 3]);
    }
}

#[test]
fn delete_missing_deletes_by_the_source_keys_and_changes_nothing_else() {
    let rows: Vec<Value> = (1..=5)
        .map(|i| json!({"id": i, "v": format!("v{i}")}))
        .collect();
    // The source's keys now: 2 and 4 are gone, 6 is new; a stray field
    // rides along.
    let keys = [
        json!({"id": 1}),
        json!({"id": 3, "other": "ignored"}),
        json!({"id": 5}),
        json!({"id": 6}),
    ];
    let args = ["--mode", "delete-missing", "--key", "id"];
    for store in Store::all("delmissing") {
        if store.lacks(Exception::NoUpsert) {
            let out = store.load("t", &args, &framed(&keys));
            expect(&out, store.name())
                .code(2)
                .stderr_contains("--mode delete-missing needs a database");
            continue;
        }
        // No table: nothing can be missing from it, and none is made.
        expect(&store.load("t", &args, &framed(&keys)), store.name())
            .code(1)
            .stderr_contains("does not exist, so nothing can be missing from it");
        assert!(store.read("t").is_none(), "{}", store.name());
        ok(&store, &store.load("t", &[], &framed(&rows)));
        expect(&store.load("t", &args, &framed(&[])), store.name())
            .code(1)
            .stderr_contains("--mode delete-missing would delete every row");
        expect(
            &store.load(
                "t",
                &[&args[..], &["--max-deletes", "1"]].concat(),
                &framed(&keys),
            ),
            store.name(),
        )
        .code(1)
        .stderr_contains("would remove 2 of the 5 rows");
        assert_holds(&store, "t", &by_id(&rows));
        let out = store.load("t", &[&args[..], &["-v"]].concat(), &framed(&keys));
        expect(&out, store.name())
            .code(0)
            .stderr_contains("deleted 2 rows missing from the source");
        // 2 and 4 gone; 6 not inserted; values and columns untouched.
        let held = store.read("t").expect("the table");
        assert_eq!(
            held,
            by_id(&[rows[0].clone(), rows[2].clone(), rows[4].clone()])
        );
    }
}

#[test]
fn sync_refuses_a_stream_that_is_only_part_of_its_source() {
    let rows = [json!({"id": 1, "v": "a"}), json!({"id": 2, "v": "b"})];
    for store in Store::all("syncpart") {
        if store.lacks(Exception::NoUpsert) || store.kind != Kind::Sqlite {
            continue;
        }
        ok(&store, &store.load("t", &[], &framed(&rows)));
        for (begin, what) in [
            (
                r#"{"@etl":"begin","stream":"s","batch":"b-1"}"#,
                "is an etl-watch batch",
            ),
            (
                r#"{"@etl":"begin","stream":"s","from":{"cursor":"id","value":1}}"#,
                "is an incremental read",
            ),
        ] {
            let part = framed_with(begin, &rows[1..], None);
            expect(
                &store.load("t", &["--mode", "sync", "--key", "id"], &part),
                store.name(),
            )
            .code(1)
            .stderr_contains(what)
            .stderr_contains("sync from a full read");
            assert_holds(&store, "t", &rows);
        }
    }
}
