//! Hive-partitioned Parquet datasets: `etl-load DIR --partition-by ...`,
//! read back with `etl-extract DIR` and, for interoperability, with DuckDB
//! (skipped loudly when no Python with the duckdb module is found; set
//! ETLKIT_DUCKDB_PYTHON to one, and ETLKIT_REQUIRE_DUCKDB to make a missing
//! one a failure, as `.ci/run` does when it could install it).
//!
//! The crash test SIGKILLs partitioned loads at seeded points while a reader
//! reads the dataset over and over: every read and every state after a kill
//! is the dataset before the load or after it, never a mix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;
use crate::crash::{Rng, seed};

fn load(dir: &Path, args: &[&str], input: &str) -> std::process::Output {
    let mut c = cmd(LOAD, dir);
    c.args(args);
    run_with_input(c, input.as_bytes())
}

fn ok(out: &std::process::Output) {
    assert_eq!(code(out), 0, "{}", stderr(out));
}

/// Every file under `dir` (relative path → bytes), the manifest left out.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("list") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .expect("inside")
                    .to_string_lossy()
                    .into_owned();
                if rel != "_etl_manifest.json" {
                    out.insert(rel, std::fs::read(&path).expect("read"));
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("_etl_manifest.json")).expect("manifest"))
        .expect("manifest is JSON")
}

fn sorted_by(mut rows: Vec<Value>, key: &str) -> Vec<Value> {
    rows.sort_by_key(|r| r[key].as_i64().unwrap_or_default());
    rows
}

/// A Python with the duckdb module: ETLKIT_DUCKDB_PYTHON, else python3.
pub(crate) fn duckdb_python() -> Option<String> {
    let candidates: Vec<String> = std::env::var("ETLKIT_DUCKDB_PYTHON")
        .into_iter()
        .chain(["python3".to_string()])
        .collect();
    for python in candidates {
        let found = Command::new(&python)
            .args(["-c", "import duckdb"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if found {
            return Some(python);
        }
    }
    if std::env::var_os("ETLKIT_REQUIRE_DUCKDB").is_some() {
        panic!("DuckDB is required (ETLKIT_REQUIRE_DUCKDB) but no Python with duckdb was found");
    }
    eprintln!(
        "SKIPPED: DuckDB interoperability check: no Python with the duckdb module; set ETLKIT_DUCKDB_PYTHON"
    );
    None
}

/// Runs DuckDB statements in `dir` and returns the last one's first row as text.
pub(crate) fn duckdb(python: &str, dir: &Path, sql: &str) -> String {
    let script = "import duckdb, sys\n\
                  con = duckdb.connect()\n\
                  for s in sys.argv[1:-1]: con.execute(s)\n\
                  print('|'.join(str(v) for v in con.execute(sys.argv[-1]).fetchone()))";
    let statements: Vec<&str> = sql
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(&statements)
        .current_dir(dir)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Orders over `days` days of November 2026, `per_day` a day.
fn orders(days: std::ops::Range<u32>, per_day: u32, version: u32) -> String {
    let mut s = String::from(r#"{"@etl":"begin","stream":"orders"}"#);
    s.push('\n');
    let mut n = 0;
    for day in days {
        for i in 0..per_day {
            let id = day * 100_000 + i;
            s.push_str(
                &json!({
                    "id": id,
                    "qty": (id % 7) + version,
                    "price": 1.25,
                    "ordered_at": format!("2026-11-{day:02}T{:02}:{:02}:00Z", i % 24, i % 60),
                    "v": version,
                })
                .to_string(),
            );
            s.push('\n');
            n += 1;
        }
    }
    s.push_str(&format!(r#"{{"@etl":"end","stream":"orders","rows":{n}}}"#));
    s.push('\n');
    s
}

#[test]
fn sample_orders_by_day_read_back_by_etl_extract_and_duckdb() {
    let dir = tempdir();
    let d = dir.path();
    let src = sample("orders.csv");
    let src = src.to_str().expect("utf-8 path");
    let out = bash(
        &format!(
            "etl-extract -q {src} | etl-load -q lake/orders --format parquet --partition-by ordered_at:day"
        ),
        d,
    );
    ok(&out);
    let listed: Vec<String> = files(&d.join("lake/orders")).into_keys().collect();
    assert_eq!(listed.len(), 5, "{listed:?}");
    for (file, day) in listed.iter().zip(1..) {
        let prefix = format!("ordered_at_day=2026-11-{day:02}/part-");
        assert!(file.starts_with(&prefix), "{file}");
        assert!(file.ends_with("-00000.parquet"), "{file}");
    }
    let expected = sorted_by(extract_records(d, &[src]), "order_id");
    let got = sorted_by(extract_records(d, &["lake/orders"]), "order_id");
    assert_same_records(&got, &expected, "dataset read back");

    let Some(python) = duckdb_python() else {
        return;
    };
    let sums = duckdb(
        &python,
        d,
        "SELECT count(*), sum(quantity), round(sum(unit_price), 2), count(DISTINCT ordered_at_day), \
         max(external_ref) FROM read_parquet('lake/orders/**/*.parquet', hive_partitioning = true)",
    );
    assert_eq!(sums, "12|37|775.32|5|9007199254740993012");
    // A reader that wants exactly the committed files reads the manifest's list.
    let listed = duckdb(
        &python,
        d,
        "SET VARIABLE files = (SELECT list('lake/orders/' || f.path) \
         FROM (SELECT unnest(files) AS f FROM read_json('lake/orders/_etl_manifest.json'))); \
         SELECT count(*), sum(quantity) FROM read_parquet(getvariable('files'), hive_partitioning = true)",
    );
    assert_eq!(listed, "12|37");
}

#[test]
fn replace_partitions_twice_is_identical_and_a_corrected_day_replaces_only_that_day() {
    let dir = tempdir();
    let d = dir.path();
    let args = [
        "ds",
        "--partition-by",
        "ordered_at:day",
        "--mode",
        "replace-partitions",
    ];
    ok(&load(d, &args, &orders(1..5, 50, 0)));
    let first = files(&d.join("ds"));
    let first_manifest = manifest(&d.join("ds"));
    ok(&load(d, &args, &orders(1..5, 50, 0)));
    assert_eq!(
        files(&d.join("ds")),
        first,
        "the same input left other files"
    );
    assert_eq!(manifest(&d.join("ds"))["files"], first_manifest["files"]);

    // Day 3 corrected (version 1, fewer rows): only its partition changes.
    let out = load(d, &args, &orders(3..4, 20, 1));
    ok(&out);
    let after = files(&d.join("ds"));
    let day3 = |m: &BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        m.iter()
            .filter(|(k, _)| k.starts_with("ordered_at_day=2026-11-03/"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let others = |m: &BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        m.iter()
            .filter(|(k, _)| !k.starts_with("ordered_at_day=2026-11-03/"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    assert_eq!(others(&after), others(&first), "other days were touched");
    assert_ne!(day3(&after), day3(&first));
    assert_eq!(day3(&after).len(), 1);
    let rows = extract_records(d, &["ds"]);
    assert_eq!(rows.len(), 4 * 50 - 50 + 20);
    let day3_rows: Vec<&Value> = rows
        .iter()
        .filter(|r| {
            r["ordered_at"]
                .as_str()
                .is_some_and(|t| t.starts_with("2026-11-03"))
        })
        .collect();
    assert_eq!(day3_rows.len(), 20);
    assert!(day3_rows.iter().all(|r| r["v"] == 1));
}

#[test]
fn append_adds_files_and_replace_swaps_the_whole_dataset() {
    let dir = tempdir();
    let d = dir.path();
    let by_month = ["ds", "--partition-by", "ordered_at:month"];
    ok(&load(d, &by_month, &orders(1..3, 10, 0)));
    ok(&load(d, &by_month, &orders(1..3, 10, 0)));
    assert_eq!(
        extract_records(d, &["ds"]).len(),
        40,
        "append keeps both loads"
    );
    assert_eq!(files(&d.join("ds")).len(), 2);
    // Without --partition-by the dataset's own partitioning is kept.
    ok(&load(d, &["ds", "--mode", "replace"], &orders(5..6, 3, 2)));
    let rows = extract_records(d, &["ds"]);
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["v"] == 2));
    let names: Vec<String> = files(&d.join("ds")).into_keys().collect();
    assert_eq!(names.len(), 1);
    assert!(
        names[0].starts_with("ordered_at_month=2026-11/"),
        "{names:?}"
    );
    // Re-partitioning needs replace.
    let out = load(
        d,
        &["ds", "--partition-by", "ordered_at:year"],
        &orders(1..2, 1, 0),
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("is partitioned by ordered_at:month, not ordered_at:year"));
    let out = load(
        d,
        &[
            "ds",
            "--partition-by",
            "ordered_at:year,ordered_at:hour",
            "--mode",
            "replace",
        ],
        &orders(1..2, 2, 3),
    );
    ok(&out);
    let names: Vec<String> = files(&d.join("ds")).into_keys().collect();
    assert_eq!(
        names
            .iter()
            .map(|n| n.rsplit_once('/').expect("dir").0)
            .collect::<Vec<_>>(),
        [
            "ordered_at_year=2026/ordered_at_hour=2026-11-01T00",
            "ordered_at_year=2026/ordered_at_hour=2026-11-01T01"
        ]
    );
}

#[test]
fn plain_columns_move_into_escaped_paths_and_come_back_typed() {
    let dir = tempdir();
    let d = dir.path();
    // The path columns come back last, as Hive readers put them.
    let input = [
        json!({"id": 1, "x": "a", "region": "eu/west:1", "n": 5}),
        json!({"id": 2, "x": "b", "region": null, "n": 6}),
        json!({"id": 3, "x": "c", "region": "Zürich 100%", "n": -7}),
        json!({"id": 4, "x": "d", "region": "eu/west:1", "n": 5}),
    ];
    let text: String = input.iter().map(|r| format!("{r}\n")).collect();
    ok(&load(
        d,
        &["ds", "--partition-by", "region", "--partition-by", "n"],
        &text,
    ));
    let dirs: BTreeSet<String> = files(&d.join("ds"))
        .into_keys()
        .map(|k| k.rsplit_once('/').expect("dir").0.to_string())
        .collect();
    assert_eq!(
        dirs,
        BTreeSet::from([
            "region=Zürich 100%25/n=-7".to_string(),
            "region=__HIVE_DEFAULT_PARTITION__/n=6".to_string(),
            "region=eu%2Fwest%3A1/n=5".to_string(),
        ])
    );
    let got = sorted_by(extract_records(d, &["ds"]), "id");
    assert_same_records(&got, &input, "plain partition columns");

    // Values a Hive path cannot hold are rejects, with their reasons.
    let bad = [
        json!({"id": 5, "region": "", "n": 1}),
        json!({"id": 6, "region": "ok", "n": 1.5}),
        json!({"id": 7, "region": ["a"], "n": 1}),
    ];
    let text: String = bad.iter().map(|r| format!("{r}\n")).collect();
    let out = load(d, &["ds", "--rejects", "bad.ndjson"], &text);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let reasons = std::fs::read_to_string(d.join("bad.ndjson")).expect("rejects");
    assert!(
        reasons.contains("an empty text cannot be a partition value"),
        "{reasons}"
    );
    assert!(
        reasons.contains("does not fit a integer column"),
        "{reasons}"
    );
    assert!(reasons.contains("cannot be a partition value"), "{reasons}");
    assert_eq!(extract_records(d, &["ds"]).len(), 4);
}

#[test]
fn a_value_that_is_no_timestamp_is_a_reject_naming_its_line() {
    let dir = tempdir();
    let d = dir.path();
    let input = "{\"id\":1,\"at\":\"2026-11-03T10:00:00Z\"}\n{\"id\":2,\"at\":\"03/11/2026\"}\n";
    let out = load(d, &["ds", "--partition-by", "at:day"], input);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("stdin:2:")
            && stderr(&out).contains("text value \"03/11/2026\" is not an ISO 8601 date"),
        "{}",
        stderr(&out)
    );
    assert!(
        !d.join("ds").exists(),
        "a failed first load leaves no dataset"
    );
}

#[test]
fn a_new_field_evolves_the_schema_and_strict_refuses_it() {
    let dir = tempdir();
    let d = dir.path();
    ok(&load(
        d,
        &["ds", "--partition-by", "k"],
        "{\"id\":1,\"k\":\"a\"}\n",
    ));
    let out = load(
        d,
        &["ds", "--schema", "strict", "--rejects", "bad.ndjson"],
        "{\"id\":2,\"k\":\"a\",\"extra\":true}\n{\"id\":3,\"k\":\"b\"}\n",
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("2 rows read, 1 written, 1 rejected"),
        "{}",
        stderr(&out)
    );
    // A new field, first seen past the typing sample: new files carry it.
    let mut text = String::new();
    for id in 10..1200 {
        if id == 1100 {
            text.push_str(&format!("{{\"id\":{id},\"k\":\"c\",\"extra\":true}}\n"));
        } else {
            text.push_str(&format!("{{\"id\":{id},\"k\":\"c\"}}\n"));
        }
    }
    ok(&load(d, &["ds"], &text));
    let schema = manifest(&d.join("ds"))["schema"].clone();
    assert_eq!(
        schema,
        json!([{"name":"id","type":"integer"},{"name":"k","type":"text"},{"name":"extra","type":"boolean"}])
    );
    let rows = sorted_by(extract_records(d, &["ds"]), "id");
    assert_eq!(rows.len(), 2 + 1190);
    let with_extra: Vec<&Value> = rows.iter().filter(|r| r["extra"] == true).collect();
    assert_eq!(with_extra.len(), 1);
    assert_eq!(with_extra[0]["id"], 1100);
    // A value that does not fit the dataset's type is a reject.
    let out = load(d, &["ds"], "{\"id\":\"x\",\"k\":\"a\"}\n");
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("does not fit a integer column"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn row_groups_and_file_size_split_a_partition_into_files() {
    let dir = tempdir();
    let d = dir.path();
    let mut text = String::new();
    for id in 0..6000 {
        text.push_str(
            &json!({"id": id, "day": "2026-11-03", "pad": format!("{id:0>40}")}).to_string(),
        );
        text.push('\n');
    }
    let args = [
        "ds",
        "--partition-by",
        "day:day",
        "--row-group-size",
        "500",
        "--file-size",
        "8K",
    ];
    ok(&load(d, &args, &text));
    let m = manifest(&d.join("ds"));
    let listed = m["files"].as_array().expect("files");
    assert!(listed.len() >= 3, "{listed:?}");
    for (n, f) in listed.iter().enumerate() {
        assert!(
            f["path"]
                .as_str()
                .is_some_and(|p| p.ends_with(&format!("-{n:05}.parquet"))),
            "{f}"
        );
    }
    let total: u64 = listed.iter().map(|f| f["rows"].as_u64().unwrap_or(0)).sum();
    assert_eq!(total, 6000);
    assert_eq!(extract_records(d, &["ds"]).len(), 6000);
    for f in listed {
        let rows = f["rows"].as_u64().unwrap_or(0);
        assert!(rows % 500 == 0 || f == listed.last().expect("last"), "{f}");
    }
}

#[test]
fn leftovers_of_a_crashed_run_are_cleaned_and_never_read() {
    let dir = tempdir();
    let d = dir.path();
    ok(&load(
        d,
        &["ds", "--partition-by", "k"],
        "{\"id\":1,\"k\":\"a\"}\n",
    ));
    // What a killed run leaves: temporary files, and a part file renamed
    // into place before the manifest was replaced.
    let part_dir = d.join("ds/k=a");
    let committed: Vec<PathBuf> = std::fs::read_dir(&part_dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .collect();
    std::fs::write(part_dir.join(".etl-tmp-99999-1"), b"half a file").expect("write");
    std::fs::create_dir_all(d.join("ds/k=z")).expect("mkdir");
    std::fs::copy(
        &committed[0],
        d.join("ds/k=z/part-0123456789abcdef-00000.parquet"),
    )
    .expect("copy");
    // The pending record the killed load wrote before its renames names
    // that file: it is provably a leftover.
    std::fs::write(
        d.join("ds/_etl_pending.json"),
        json!({"format": "etlkit-lake-pending", "version": 1, "commit": 2,
               "adding": ["k=z/part-0123456789abcdef-00000.parquet"], "removing": []})
        .to_string(),
    )
    .expect("write");
    std::fs::write(d.join("ds/notes.txt"), b"the user's own file").expect("write");
    assert_eq!(
        extract_records(d, &["ds"]).len(),
        1,
        "an unlisted file was read"
    );
    ok(&load(d, &["ds"], "{\"id\":2,\"k\":\"b\"}\n"));
    let left: Vec<String> = files(&d.join("ds")).into_keys().collect();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(
        left.iter()
            .all(|f| f.starts_with("k=a/part-") || f.starts_with("k=b/part-") || f == "notes.txt")
    );
    assert!(!d.join("ds/k=z").exists());
    // A first load killed after its renames leaves no manifest, only files
    // its pending record names: the next load removes them.
    std::fs::create_dir_all(d.join("fresh/k=q")).expect("mkdir");
    std::fs::copy(
        &committed[0],
        d.join("fresh/k=q/part-0123456789abcdef-00000.parquet"),
    )
    .expect("copy");
    std::fs::write(d.join("fresh/.etl-tmp-99999-spill"), b"rows").expect("write");
    std::fs::write(
        d.join("fresh/_etl_pending.json"),
        json!({"format": "etlkit-lake-pending", "version": 1, "commit": 1,
               "adding": ["k=q/part-0123456789abcdef-00000.parquet"], "removing": []})
        .to_string(),
    )
    .expect("write");
    ok(&load(
        d,
        &["fresh", "--partition-by", "k"],
        "{\"id\":5,\"k\":\"r\"}\n",
    ));
    let left: Vec<String> = files(&d.join("fresh")).into_keys().collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with("k=r/part-"), "{left:?}");
    // A directory etl-load did not write is not taken over.
    std::fs::create_dir_all(d.join("spark")).expect("mkdir");
    std::fs::write(d.join("spark/_SUCCESS"), b"").expect("write");
    let out = load(
        d,
        &["spark", "--partition-by", "k"],
        "{\"id\":1,\"k\":\"a\"}\n",
    );
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("no _etl_manifest.json"),
        "{}",
        stderr(&out)
    );
}

/// `rows` records over `parts` partitions (key `k`), in an order that
/// visits the partitions unsorted and again and again.
fn shuffled(parts: u32, rows: u32) -> String {
    let mut text = String::new();
    for n in 0..rows {
        // 7919 is prime to `rows`: every id once, far from input order.
        let id = (u64::from(n) * 7919) % u64::from(rows);
        let k = format!("p{:03}", id % u64::from(parts));
        text.push_str(&json!({"id": id, "k": k, "pad": format!("{id:0>20}")}).to_string());
        text.push('\n');
    }
    text
}

#[test]
fn more_partitions_than_files_open_at_once_from_shuffled_rows_make_one_file_each() {
    let dir = tempdir();
    let d = dir.path();
    ok(&load(
        d,
        &["ds", "--partition-by", "k"],
        &shuffled(250, 2000),
    ));
    let m = manifest(&d.join("ds"));
    let listed = m["files"].as_array().expect("files");
    assert_eq!(listed.len(), 250, "one file per partition");
    let dirs: BTreeSet<&str> = listed
        .iter()
        .map(|f| {
            f["path"]
                .as_str()
                .expect("path")
                .split('/')
                .next()
                .unwrap_or("")
        })
        .collect();
    assert_eq!(dirs.len(), 250);
    assert!(listed.iter().all(|f| f["rows"] == 8), "{listed:?}");
    assert_eq!(files(&d.join("ds")).len(), 250, "files on disk");
    let ids: BTreeSet<i64> = extract_records(d, &["ds"])
        .iter()
        .map(|r| r["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, (0..2000).collect());
    // Appending more shuffled rows adds one file per partition again.
    ok(&load(d, &["ds"], &shuffled(250, 1000)));
    assert_eq!(
        manifest(&d.join("ds"))["files"].as_array().map(Vec::len),
        Some(500)
    );
    assert_eq!(extract_records(d, &["ds"]).len(), 3000);
}

/// Loads three partitions into `ds` and returns its files.
fn three_partitions(d: &Path) -> BTreeMap<String, Vec<u8>> {
    ok(&load(
        d,
        &["ds", "--partition-by", "k"],
        "{\"id\":1,\"k\":\"a\"}\n{\"id\":2,\"k\":\"b\"}\n{\"id\":3,\"k\":\"c\"}\n",
    ));
    files(&d.join("ds"))
}

#[test]
fn a_dataset_without_its_manifest_is_refused_not_cleaned() {
    let dir = tempdir();
    let d = dir.path();
    let before = three_partitions(d);
    std::fs::remove_file(d.join("ds/_etl_manifest.json")).expect("remove");
    let out = load(
        d,
        &["ds", "--partition-by", "k"],
        "{\"id\":4,\"k\":\"a\"}\n",
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let first = before.keys().next().expect("a file");
    assert_eq!(
        stderr(&out).lines().next().unwrap_or(""),
        format!(
            "etl-load: error: ds holds {first:?} and 2 other entries but no _etl_manifest.json: \
             it is not a dataset etl-load wrote (or its manifest is lost), and etl-load neither \
             adopts nor deletes files it cannot account for"
        )
    );
    assert_eq!(files(&d.join("ds")), before, "files were touched");
}

#[test]
fn files_the_manifest_does_not_list_are_refused_not_deleted() {
    let dir = tempdir();
    let d = dir.path();
    let before = three_partitions(d);
    let path = d.join("ds/_etl_manifest.json");
    let mut m = manifest(&d.join("ds"));
    let dropped = m["files"][1]["path"].as_str().expect("path").to_string();
    m["files"].as_array_mut().expect("files").remove(1);
    std::fs::write(&path, m.to_string()).expect("write");
    let out = load(d, &["ds"], "{\"id\":4,\"k\":\"a\"}\n");
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(
        stderr(&out).lines().next().unwrap_or(""),
        format!(
            "etl-load: error: ds holds {dropped:?}, which its _etl_manifest.json does not list \
             and no interrupted load wrote: etl-load neither adopts nor deletes files it cannot \
             account for; nothing was loaded"
        )
    );
    assert_eq!(files(&d.join("ds")), before, "files were touched");
}

#[test]
fn a_damaged_manifest_is_refused_naming_what_is_wrong() {
    let dir = tempdir();
    let d = dir.path();
    three_partitions(d);
    let path = d.join("ds/_etl_manifest.json");
    let good = manifest(&d.join("ds"));
    let first = good["files"][0]["path"].as_str().expect("path").to_string();
    let mut twice = good.clone();
    let entry = twice["files"][0].clone();
    twice["files"].as_array_mut().expect("files").push(entry);
    let mut newer = good.clone();
    newer["version"] = json!(2);
    let mut keys = good.clone();
    keys["partition_by"] = json!(["id"]);
    let cases = [
        (twice, format!("it lists {first:?} twice")),
        (
            newer,
            "its version 2 is not one this etlkit knows (1); a newer etlkit wrote it".to_string(),
        ),
        (
            keys,
            format!("file {first:?} has no value for partition key \"id\" of \"partition_by\""),
        ),
    ];
    for (doc, why) in cases {
        std::fs::write(&path, doc.to_string()).expect("write");
        let message =
            format!("ds/_etl_manifest.json is not a valid etlkit dataset manifest: {why}");
        let out = run({
            let mut c = cmd(EXTRACT, d);
            c.arg("ds");
            c
        });
        assert_eq!(code(&out), 1, "{why}: {}", stderr(&out));
        assert_eq!(
            stderr(&out).trim(),
            format!("etl-extract: error: {message}")
        );
        assert_eq!(stdout(&out), "", "{why}: rows were read");
        let out = load(d, &["ds"], "{\"id\":4,\"k\":\"a\"}\n");
        assert_eq!(code(&out), 1, "{why}: {}", stderr(&out));
        assert_eq!(stderr(&out).trim(), format!("etl-load: error: {message}"));
    }
    // Keys renamed consistently in partition_by but not in the files' places.
    let mut moved = good.clone();
    moved["partition_by"] = json!(["j"]);
    for f in moved["files"].as_array_mut().expect("files") {
        let v = f["partition"]["k"].clone();
        f["partition"] = json!({"j": v});
    }
    std::fs::write(&path, moved.to_string()).expect("write");
    let out = load(d, &["ds"], "{\"id\":4,\"j\":\"a\"}\n");
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "file {first:?} does not lie where \"partition_by\" [\"j\"] and its partition values put it"
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_directory_in_another_tool_s_hive_layout_is_refused_by_load_and_named_by_extract() {
    let dir = tempdir();
    let d = dir.path();
    // What DuckDB's COPY ... (PARTITION_BY k) writes: key=value/data_0.parquet.
    ok(&load(d, &["one.parquet"], "{\"id\":1}\n{\"id\":2}\n"));
    std::fs::create_dir_all(d.join("duck/k=a")).expect("mkdir");
    std::fs::copy(d.join("one.parquet"), d.join("duck/k=a/data_0.parquet")).expect("copy");
    let out = load(
        d,
        &["duck", "--partition-by", "k"],
        "{\"id\":3,\"k\":\"b\"}\n",
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with(
            "etl-load: error: duck holds \"k=a/data_0.parquet\" but no _etl_manifest.json"
        ),
        "{}",
        stderr(&out)
    );
    assert!(d.join("duck/k=a/data_0.parquet").exists());
    assert!(!d.join("duck/k=b").exists());
    let out = run({
        let mut c = cmd(EXTRACT, d);
        c.arg("duck");
        c
    });
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).starts_with(
            "etl-extract: error: duck has no _etl_manifest.json: it is not a dataset written by etl-load"
        ),
        "{}",
        stderr(&out)
    );
    // Such a file dropped into a dataset etl-load wrote: refused by a load,
    // and named by a read (which reads only the listed files).
    three_partitions(d);
    std::fs::copy(d.join("one.parquet"), d.join("ds/k=a/data_0.parquet")).expect("copy");
    let out = run({
        let mut c = cmd(EXTRACT, d);
        c.arg("ds");
        c
    });
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(records(&stdout(&out)).len(), 3);
    assert_eq!(
        stderr(&out).lines().next().unwrap_or(""),
        "etl-extract: warning: ds holds 1 Parquet file its manifest does not list \
         (\"k=a/data_0.parquet\"): it is not read"
    );
    let out = load(d, &["ds"], "{\"id\":4,\"k\":\"a\"}\n");
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("etl-load: error: ds holds \"k=a/data_0.parquet\", which its"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn pruning_reads_only_the_partitions_in_the_cursor_range() {
    let dir = tempdir();
    let d = dir.path();
    ok(&load(
        d,
        &["ds", "--partition-by", "ordered_at:day"],
        &orders(1..8, 30, 0),
    ));
    let window = [
        "--cursor",
        "ordered_at",
        "--since",
        "2026-11-03T12",
        "--until",
        "2026-11-05",
    ];
    let mut c = cmd(EXTRACT, d);
    c.arg("-v").arg("ds").args(window);
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("5 files left unread"),
        "{}",
        stderr(&out)
    );
    let got = sorted_by(records(&stdout(&out)), "id");
    // The same window over all the rows, unpruned.
    write(d, "all.ndjson", orders(1..8, 30, 0).as_bytes());
    let mut args = vec!["all.ndjson"];
    args.extend(window);
    let expected = sorted_by(extract_records(d, &args), "id");
    assert_eq!(got.len(), expected.len());
    assert_same_records(&got, &expected, "pruned read");
    assert!(!got.is_empty());
}

#[test]
fn incremental_state_lives_in_the_manifest() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "src.ndjson", orders(1..3, 5, 0).as_bytes());
    let job = "etl-extract -q src.ndjson --cursor ordered_at --state ds | etl-load -q ds --partition-by ordered_at:day";
    ok(&bash(job, d));
    assert_eq!(extract_records(d, &["ds"]).len(), 10);
    assert!(manifest(&d.join("ds"))["streams"]["src"]["bookmark"].is_object());
    // Nothing new: nothing loaded, and the rerun repeats nothing.
    ok(&bash(job, d));
    assert_eq!(extract_records(d, &["ds"]).len(), 10);
    write(d, "src.ndjson", orders(1..4, 5, 0).as_bytes());
    ok(&bash(job, d));
    assert_eq!(extract_records(d, &["ds"]).len(), 15);
    // The manifest itself is a state file too.
    let mut c = cmd(EXTRACT, d);
    c.args([
        "-q",
        "src.ndjson",
        "--cursor",
        "ordered_at",
        "--state",
        "ds/_etl_manifest.json",
    ]);
    assert!(records(&stdout(&run(c))).is_empty());
    // A stale extract (started before the bookmark moved) is refused.
    let stale = format!(
        "{}\n{{\"id\":1,\"ordered_at\":\"2026-11-01T00:00:00Z\"}}\n{{\"@etl\":\"end\",\"stream\":\"src\",\"rows\":1}}\n",
        r#"{"@etl":"begin","stream":"src","from":null}"#
    );
    let out = load(d, &["ds"], &stale);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("is not the one this extract started from"));
    assert_eq!(extract_records(d, &["ds"]).len(), 15);
}

#[test]
fn flags_that_do_not_fit_a_dataset_are_usage_errors() {
    let dir = tempdir();
    let d = dir.path();
    let cases: &[(&[&str], &str)] = &[
        (
            &["ds", "--partition-by", "k", "--format", "csv"],
            "--format csv cannot be partitioned",
        ),
        (
            &[
                "ds",
                "--partition-by",
                "k",
                "--mode",
                "upsert",
                "--key",
                "id",
            ],
            "upsert needs a database",
        ),
        (
            &["ds", "--partition-by", "k", "--state", "s.json"],
            "leave out --state",
        ),
        (
            &["ds", "--partition-by", "k", "--table", "t"],
            "--table names a table",
        ),
        (&["ds", "--partition-by", "k:week"], "unknown unit \"week\""),
        (&["ds", "--partition-by", "k,k"], "names \"k\" twice"),
        (
            &["w.db", "--table", "t", "--mode", "replace-partitions"],
            "needs a partitioned dataset",
        ),
        (
            &["out.csv", "--file-size", "1M"],
            "--file-size applies to datasets",
        ),
        (
            &["out.csv", "--row-group-size", "10"],
            "--row-group-size applies to Parquet",
        ),
        (&["-", "--partition-by", "k"], "TARGET is a directory"),
    ];
    for (args, message) in cases {
        let out = load(d, args, "{\"k\":1}\n");
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    assert!(!d.join("ds").exists());
}

// ---- crash suite --------------------------------------------------------

/// The rows of a dataset as sorted text, read with etl-extract (empty when
/// there is no dataset yet); `None` when the read failed.
fn snapshot(d: &Path) -> Option<Vec<String>> {
    if !d.join("ds/_etl_manifest.json").exists() {
        return Some(Vec::new());
    }
    let mut c = cmd(EXTRACT, d);
    c.args(["-q", "ds"]);
    let out = run(c);
    if code(&out) != 0 {
        eprintln!("read failed: {}", stderr(&out));
        return None;
    }
    let mut rows: Vec<String> = records(&stdout(&out))
        .iter()
        .map(|r| format!("{}|{}|{}", r["id"], r["v"], r["ordered_at"]))
        .collect();
    rows.sort();
    Some(rows)
}

fn crash_suite(iterations: u32) {
    let dir = tempdir();
    let d = dir.path();
    let mut rng = Rng(seed());
    let mut kills = 0;
    let mut reads = 0;
    for i in 0..iterations {
        for mode in ["append", "replace", "replace-partitions"] {
            let version = i % 3;
            // Versions cover different days, so replace-partitions keeps some.
            let days = [1..5, 3..7, 2..4][version as usize].clone();
            let input = orders(days.clone(), 4000, version);
            write(d, "src.ndjson", input.as_bytes());
            let before = snapshot(d).expect("a quiet dataset reads");
            let fresh: Vec<String> = {
                let mut rows: Vec<String> = records(&input)
                    .iter()
                    .map(|r| format!("{}|{}|{}", r["id"], r["v"], r["ordered_at"]))
                    .collect();
                rows.sort();
                rows
            };
            let fresh_days: BTreeSet<String> =
                fresh.iter().map(|r| day_of(r).to_string()).collect();
            let mut complete: Vec<String> = match mode {
                "append" => before
                    .iter()
                    .cloned()
                    .chain(fresh.iter().cloned())
                    .collect(),
                "replace" => fresh.clone(),
                _ => before
                    .iter()
                    .filter(|r| !fresh_days.contains(day_of(r)))
                    .cloned()
                    .chain(fresh.iter().cloned())
                    .collect(),
            };
            complete.sort();
            let script = format!(
                "set -o pipefail; etl-extract -q src.ndjson | etl-load -q ds --partition-by ordered_at:day --row-group-size 700 --file-size 30K --mode {mode}"
            );
            let mut child = Command::new("setsid")
                .args(["bash", "-c", &script])
                .env("PATH", format!("{}:/usr/bin:/bin", bin_dir().display()))
                .current_dir(d)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn");
            let deadline = Instant::now() + Duration::from_millis(10 + rng.next() % 1500);
            let what = format!("iteration {i}, {mode}, seed {}", seed());
            // Read while the load runs: each read is the old dataset or the new one.
            while Instant::now() < deadline {
                if child.try_wait().expect("wait").is_some() {
                    break;
                }
                if let Some(seen) = snapshot(d) {
                    reads += 1;
                    assert!(
                        seen == before || seen == complete,
                        "{what}: a reader saw {} rows (before {}, complete {})",
                        seen.len(),
                        before.len(),
                        complete.len()
                    );
                }
            }
            let finished = child.try_wait().expect("wait").is_some();
            if !finished {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                kills += 1;
            }
            let status = child.wait().expect("wait");
            let after = snapshot(d).expect("the dataset reads after a kill");
            if finished {
                assert!(status.success(), "{what}: the load failed");
                assert!(
                    after == complete,
                    "{what}: a finished load left {} rows, not {}",
                    after.len(),
                    complete.len()
                );
            } else {
                assert!(
                    after == before || after == complete,
                    "{what}: a killed load left {} rows (before {}, complete {})",
                    after.len(),
                    before.len(),
                    complete.len()
                );
            }
            if after.len() > 60_000 {
                ok(&load(d, &["ds", "--mode", "replace", "--allow-empty"], ""));
            }
        }
    }
    // A clean run removes whatever the kills left: only listed files remain.
    write(d, "src.ndjson", orders(1..3, 10, 9).as_bytes());
    ok(&bash(
        "etl-extract -q src.ndjson | etl-load -q ds --mode replace",
        d,
    ));
    let m = manifest(&d.join("ds"));
    let listed: BTreeSet<String> = m["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().expect("path").to_string())
        .collect();
    let present: BTreeSet<String> = files(&d.join("ds")).into_keys().collect();
    assert_eq!(present, listed, "files no manifest lists were left behind");
    assert!(kills > 0, "no load was killed mid-way");
    assert!(reads > 0, "no read ran during a load");
}

fn day_of(row: &str) -> &str {
    let at = row.rsplit('|').next().unwrap_or_default();
    at.get(1..11).unwrap_or_default()
}

#[test]
fn killed_partitioned_loads_never_show_a_partial_commit() {
    crash_suite(2);
}

#[test]
#[ignore = "long: run with --ignored and ETLKIT_CRASH_ITERATIONS"]
fn killed_partitioned_loads_long() {
    let n = std::env::var("ETLKIT_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    crash_suite(n);
}
