//! Partitioned datasets on S3 (`etl-load s3://bucket/lake/orders
//! --partition-by ...`, `etl-extract s3://bucket/lake/orders`): the
//! conditional manifest commit under racing loads, batch ids, cut streams
//! and files no manifest lists, against the S3 test server.

use std::collections::BTreeMap;
use std::process::{Output, Stdio};

use serde_json::Value;

use crate::common::expect::expect;
use crate::common::s3::Moto;
use crate::common::{EXTRACT, LOAD, cmd, code, records, run, run_with_input, stderr, stdout};

fn load(moto: &Moto, dir: &std::path::Path, args: &[&str], input: &str) -> Output {
    let mut command = cmd(LOAD, dir);
    moto.env(&mut command).args(args);
    run_with_input(command, input.as_bytes())
}

fn extract(moto: &Moto, dir: &std::path::Path, target: &str) -> Vec<Value> {
    let mut command = cmd(EXTRACT, dir);
    moto.env(&mut command).arg(target);
    let out = run(command);
    assert_eq!(code(&out), 0, "extract {target}: {}", stderr(&out));
    records(&stdout(&out))
}

/// Orders `ids`, one day each (`day(id)`), as one stream.
fn orders(
    stream: &str,
    ids: impl IntoIterator<Item = u32>,
    day: impl Fn(u32) -> u32,
    tag: &str,
) -> String {
    let mut out = format!("{{\"@etl\":\"begin\",\"stream\":\"{stream}\"}}\n");
    let mut n = 0;
    for id in ids {
        out.push_str(&format!(
            "{{\"id\":{id},\"ordered_at\":\"2026-11-{:02}T10:00:00Z\",\"tag\":\"{tag}\"}}\n",
            day(id)
        ));
        n += 1;
    }
    out.push_str(&format!(
        "{{\"@etl\":\"end\",\"stream\":\"{stream}\",\"rows\":{n}}}\n"
    ));
    out
}

/// id → tags seen (a doubled row shows twice).
fn by_id(rows: &[Value]) -> BTreeMap<i64, Vec<String>> {
    let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for row in rows {
        out.entry(row["id"].as_i64().expect("id"))
            .or_default()
            .push(row["tag"].as_str().unwrap_or_default().to_string());
    }
    out
}

/// The keys under `prefix`.
pub fn keys(moto: &Moto, bucket: &str, prefix: &str) -> Vec<String> {
    let out = moto.boto(
        bucket,
        &format!(
            "p = s3.get_paginator('list_objects_v2')\n\
             for page in p.paginate(Bucket=bucket, Prefix={prefix:?}):\n    \
             for o in page.get('Contents', []):\n        print(o['Key'])"
        ),
        b"",
    );
    String::from_utf8_lossy(&out)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn append_twice_then_replace_partitions_replaces_only_the_days_it_loads() {
    let Some(moto) = Moto::connect("s3 dataset append") else {
        return;
    };
    let bucket = moto.bucket("lake-append");
    let dir = tempfile::tempdir().unwrap();
    let target = format!("s3://{bucket}/lake/orders");
    let day = |id: u32| 1 + id % 3;
    // Row groups of one row: a file is read a row group per request.
    let out = load(
        &moto,
        dir.path(),
        &[
            &target,
            "--partition-by",
            "ordered_at:day",
            "--row-group-size",
            "1",
        ],
        &orders("orders", 0..6, day, "a"),
    );
    expect(&out, "first load").code(0).stdout("");
    // Appended again without --partition-by: the dataset's own.
    let out = load(
        &moto,
        dir.path(),
        &[&target],
        &orders("orders", 6..12, day, "b"),
    );
    expect(&out, "second load").code(0).stdout("");
    let rows = extract(&moto, dir.path(), &target);
    let seen = by_id(&rows);
    assert_eq!(seen.len(), 12, "{rows:?}");
    assert!(seen.values().all(|tags| tags.len() == 1), "{seen:?}");
    let listed = keys(&moto, &bucket, "lake/orders/");
    assert!(listed.contains(&"lake/orders/_etl_manifest.json".to_string()));
    assert!(
        listed
            .iter()
            .filter(|k| k.ends_with(".parquet"))
            .all(|k| k.starts_with("lake/orders/ordered_at_day=2026-11-0")),
        "{listed:?}"
    );

    // A cursor window opens only the partitions that can hold its rows.
    let mut command = cmd(EXTRACT, dir.path());
    moto.env(&mut command).args([
        "-v",
        &target,
        "--cursor",
        "ordered_at",
        "--since",
        "2026-11-03",
    ]);
    let out = run(command);
    expect(&out, "pruned read").code(0);
    assert!(
        stderr(&out).contains("4 files left unread"),
        "{}",
        stderr(&out)
    );
    let ids: Vec<i64> = by_id(&records(&stdout(&out))).into_keys().collect();
    assert_eq!(ids, [2, 5, 8, 11]);

    // A corrected 2026-11-02 (ids 1, 4, 7, 10 were that day): only it is replaced.
    let out = load(
        &moto,
        dir.path(),
        &[&target, "--mode", "replace-partitions"],
        &orders("orders", [100, 101], |_| 2, "c"),
    );
    expect(&out, "replace one day").code(0).stdout("");
    let seen = by_id(&extract(&moto, dir.path(), &target));
    let ids: Vec<i64> = seen.keys().copied().collect();
    assert_eq!(ids, [0, 2, 3, 5, 6, 8, 9, 11, 100, 101]);
    assert_eq!(seen[&100], ["c"]);
    assert_eq!(seen[&0], ["a"]);

    // The manifest is the local one's document.
    let manifest: Value =
        serde_json::from_slice(&moto.get(&bucket, "lake/orders/_etl_manifest.json").unwrap())
            .unwrap();
    assert_eq!(manifest["format"], "etlkit-lake");
    assert_eq!(manifest["commit"], 3);
    assert_eq!(
        manifest["partition_by"],
        serde_json::json!(["ordered_at:day"])
    );
}

#[test]
fn a_rerun_of_a_committed_batch_is_skipped() {
    let Some(moto) = Moto::connect("s3 dataset batch") else {
        return;
    };
    let bucket = moto.bucket("lake-batch");
    let dir = tempfile::tempdir().unwrap();
    let target = format!("s3://{bucket}/lake/events");
    let input = "{\"@etl\":\"begin\",\"stream\":\"events\",\"batch\":\"b-1\"}\n\
                 {\"id\":1,\"kind\":\"x\",\"tag\":\"a\"}\n{\"id\":2,\"kind\":\"y\",\"tag\":\"a\"}\n\
                 {\"@etl\":\"end\",\"stream\":\"events\",\"rows\":2}\n";
    let args = [target.as_str(), "--partition-by", "kind"];
    expect(&load(&moto, dir.path(), &args, input), "batch").code(0);
    let out = load(&moto, dir.path(), &args, input);
    expect(&out, "batch again").code(0);
    assert!(
        stderr(&out).contains("2 rows read, 0 written, 0 rejected, 2 skipped"),
        "{}",
        stderr(&out)
    );
    let rows = extract(&moto, dir.path(), &target);
    assert_eq!(rows.len(), 2, "{rows:?}");
}

#[test]
fn a_cut_stream_and_a_killed_load_s_files_change_nothing_read() {
    let Some(moto) = Moto::connect("s3 dataset cut") else {
        return;
    };
    let bucket = moto.bucket("lake-cut");
    let dir = tempfile::tempdir().unwrap();
    let target = format!("s3://{bucket}/lake/orders");
    let args = [target.as_str(), "--partition-by", "ordered_at:day"];
    expect(
        &load(
            &moto,
            dir.path(),
            &args,
            &orders("orders", 0..4, |id| 1 + id % 2, "a"),
        ),
        "load",
    )
    .code(0);
    // The manifest but its run history (a failed run is recorded there).
    let committed = || {
        let mut doc: Value =
            serde_json::from_slice(&moto.get(&bucket, "lake/orders/_etl_manifest.json").unwrap())
                .unwrap();
        doc.as_object_mut().unwrap().remove("runs");
        doc
    };
    let manifest = committed();
    let before = keys(&moto, &bucket, "lake/orders/");

    // No end line: nothing is uploaded or committed.
    let cut = orders("orders", 10..14, |_| 5, "cut");
    let cut = &cut[..cut.rfind("{\"@etl\":\"end\"").unwrap()];
    let out = load(&moto, dir.path(), &args, cut);
    expect(&out, "cut stream").code(1).stdout("");
    assert!(stderr(&out).contains("has no end line"), "{}", stderr(&out));
    assert_eq!(committed(), manifest);
    assert_eq!(extract(&moto, dir.path(), &target).len(), 4);
    assert_eq!(keys(&moto, &bucket, "lake/orders/"), before);

    // A load killed after its uploads, before its commit, leaves files no
    // manifest lists: they are never read (a warning names them) ...
    let listed = before.iter().find(|k| k.ends_with(".parquet")).unwrap();
    let body = moto.get(&bucket, listed).unwrap();
    let dead = "lake/orders/ordered_at_day=2026-11-01/part-00000000deadbeef-00000-00000000000dead0.parquet";
    moto.put(&bucket, dead, &body);
    let mut command = cmd(EXTRACT, dir.path());
    moto.env(&mut command).arg(&target);
    let out = run(command);
    expect(&out, "extract beside an unlisted file").code(0);
    assert_eq!(records(&stdout(&out)).len(), 4);
    assert!(
        stderr(&out).contains("holds 1 Parquet file its manifest does not list"),
        "{}",
        stderr(&out)
    );
    // ... kept by a load while younger than the age that makes them safe
    // to delete, deleted once older.
    expect(
        &load(
            &moto,
            dir.path(),
            &[&target],
            &orders("orders", 4..5, |_| 1, "b"),
        ),
        "load beside it",
    )
    .code(0);
    assert!(keys(&moto, &bucket, "lake/orders/").contains(&dead.to_string()));
    // Another tool's file is never deleted, however old.
    let foreign = "lake/orders/ordered_at_day=2026-11-01/other-tool.parquet";
    moto.put(&bucket, foreign, &body);
    let mut command = cmd(LOAD, dir.path());
    moto.env(&mut command)
        .env("ETLKIT_LAKE_CLEAN_AFTER", "0")
        .arg(&target);
    let out = run_with_input(command, orders("orders", 5..6, |_| 1, "b").as_bytes());
    expect(&out, "load that cleans").code(0);
    let after = keys(&moto, &bucket, "lake/orders/");
    assert!(!after.contains(&dead.to_string()));
    assert!(after.contains(&foreign.to_string()));
    assert_eq!(extract(&moto, dir.path(), &target).len(), 6);
}

/// Rounds of 8 racing loads: `ETLKIT_S3_RACE_ROUNDS`, 8 by default
/// (about 15 s here), 20 for the count.
fn race_rounds() -> u32 {
    std::env::var("ETLKIT_S3_RACE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

#[test]
fn racing_loads_each_commit_once_or_fail_clearly() {
    let Some(moto) = Moto::connect("s3 dataset race") else {
        return;
    };
    let bucket = moto.bucket("lake-race");
    let dir = tempfile::tempdir().unwrap();
    let target = format!("s3://{bucket}/lake/orders");
    let mut committed: BTreeMap<i64, String> = BTreeMap::new();
    for round in 0..race_rounds() {
        let mut children = Vec::new();
        for load in 0..8u32 {
            // Loads 0 and 1 of a round carry the same batch: at most one commits it.
            let (batch, first) = if load < 2 {
                (format!("round-{round}"), round * 1000)
            } else {
                (
                    format!("round-{round}-load-{load}"),
                    round * 1000 + load * 10,
                )
            };
            let tag = format!("r{round}l{load}");
            let mut input =
                format!("{{\"@etl\":\"begin\",\"stream\":\"orders\",\"batch\":\"{batch}\"}}\n");
            // Load 7 replaces the one day (the 9th) no other load writes.
            let day = |id: u32| if load == 7 { 9 } else { 1 + id % 4 };
            for id in first..first + 5 {
                input.push_str(&format!(
                    "{{\"id\":{id},\"ordered_at\":\"2026-11-{:02}T10:00:00Z\",\"tag\":\"{tag}\"}}\n",
                    day(id)
                ));
            }
            input.push_str("{\"@etl\":\"end\",\"stream\":\"orders\",\"rows\":5}\n");
            let mode = if load == 7 {
                "replace-partitions"
            } else {
                "append"
            };
            let mut command = cmd(LOAD, dir.path());
            moto.env(&mut command)
                .args([&target, "--partition-by", "ordered_at:day", "--mode", mode])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            children.push((
                load,
                first,
                tag,
                command.spawn().expect("etl-load runs"),
                input,
            ));
        }
        for (_, _, _, child, input) in &mut children {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(input.as_bytes()).unwrap();
        }
        let mut same_batch = 0;
        for (load, first, tag, child, _) in children {
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            if out.status.success() && !err.contains(" skipped") {
                if load < 2 {
                    same_batch += 1;
                }
                if load == 7 {
                    // The 9th's earlier rows are replaced.
                    committed.retain(|id, _| id % 1000 < 70);
                }
                for id in first..first + 5 {
                    committed.insert(i64::from(id), tag.clone());
                }
            } else if out.status.success() {
                assert!(load < 2, "load {load} skipped rows: {err}");
            } else {
                assert!(
                    load < 2
                        && err.contains("another load committed first, and it committed batch"),
                    "round {round} load {load} failed: {err}"
                );
            }
        }
        assert_eq!(
            same_batch, 1,
            "round {round}: the shared batch committed once"
        );
    }
    let seen = by_id(&extract(&moto, dir.path(), &target));
    let expected: BTreeMap<i64, Vec<String>> = committed
        .into_iter()
        .map(|(id, tag)| (id, vec![tag]))
        .collect();
    assert_eq!(seen, expected);
}

#[test]
fn an_incremental_job_reads_its_bookmark_from_the_dataset_s_manifest() {
    let Some(moto) = Moto::connect("s3 dataset bookmark") else {
        return;
    };
    let bucket = moto.bucket("lake-bookmark");
    let dir = tempfile::tempdir().unwrap();
    let target = format!("s3://{bucket}/lake/orders");
    let job = format!(
        "set -o pipefail\n\
         etl-extract -q src.ndjson --cursor id --stream orders --state {target} |\n\
         etl-load -q {target} --partition-by ordered_at:day"
    );
    let run_job = || {
        let mut command = cmd("bash", dir.path());
        moto.env(&mut command).arg("-c").arg(&job);
        let out = run(command);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    };
    let source = |ids: std::ops::Range<u32>| {
        let text: String = ids
            .map(|id| {
                format!(
                    "{{\"id\":{id},\"ordered_at\":\"2026-11-0{}T10:00:00Z\",\"tag\":\"a\"}}\n",
                    1 + id % 3
                )
            })
            .collect();
        std::fs::write(dir.path().join("src.ndjson"), text).unwrap();
    };
    source(0..5);
    run_job();
    source(0..8);
    run_job();
    run_job();
    let seen = by_id(&extract(&moto, dir.path(), &target));
    assert_eq!(seen.len(), 8, "{seen:?}");
    assert!(seen.values().all(|tags| tags.len() == 1), "{seen:?}");
    // An object is still no --state.
    let mut command = cmd(EXTRACT, dir.path());
    moto.env(&mut command)
        .args(["src.ndjson", "--cursor", "id", "--state"])
        .arg(format!("s3://{bucket}/state.json"));
    expect(&run(command), "an object as --state").code(2);
}

#[test]
fn two_incremental_loads_from_one_bookmark_race_and_exactly_one_commits() {
    let Some(moto) = Moto::connect("s3 dataset bookmark race") else {
        return;
    };
    let bucket = moto.bucket("lake-bookmark-race");
    let dir = tempfile::tempdir().unwrap();
    let target = format!("s3://{bucket}/lake/orders");
    let mut loaded = 0u32;
    let mut reasons = BTreeMap::new();
    for round in 0..6u32 {
        // New rows past the bookmark, then one extract: both loads start
        // from the bookmark it read.
        let upto = 10 * (round + 1);
        let text: String = (0..upto)
            .map(|id| {
                format!(
                    "{{\"id\":{id},\"ordered_at\":\"2026-11-0{}T10:00:00Z\",\"tag\":\"a\"}}\n",
                    1 + id % 3
                )
            })
            .collect();
        std::fs::write(dir.path().join("src.ndjson"), text).unwrap();
        let mut command = cmd(EXTRACT, dir.path());
        moto.env(&mut command).args([
            "-q",
            "src.ndjson",
            "--cursor",
            "id",
            "--stream",
            "orders",
            "--state",
            &target,
        ]);
        let out = run(command);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let stream = stdout(&out);
        assert_eq!(records(&stream).len() as u32, upto - loaded);
        let mut children = Vec::new();
        for _ in 0..2 {
            let mut command = cmd(LOAD, dir.path());
            moto.env(&mut command)
                .args([&target, "--partition-by", "ordered_at:day"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            children.push(command.spawn().expect("etl-load runs"));
        }
        for child in &mut children {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(stream.as_bytes())
                .unwrap();
        }
        let outs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let won = outs.iter().filter(|o| o.status.success()).count();
        assert_eq!(won, 1, "round {round}: {} loads committed", won);
        let lost = outs.iter().find(|o| !o.status.success()).unwrap();
        let err = stderr(lost);
        let reason = if err.contains("another load committed first, and it moved the bookmark of stream \"orders\", which this load started from; its commit stands") {
            "lost the commit"
        } else if err.contains("is not the one this extract started from") {
            "refused at the begin line"
        } else {
            panic!("round {round}: the loser's message: {err}")
        };
        assert!(err.contains("hint: run"), "{err}");
        *reasons.entry(reason).or_insert(0) += 1;
        loaded = upto;
        // The bookmark is the winner's; every row is there once.
        let manifest: Value =
            serde_json::from_slice(&moto.get(&bucket, "lake/orders/_etl_manifest.json").unwrap())
                .unwrap();
        assert_eq!(
            manifest["streams"]["orders"]["bookmark"]["value"],
            upto - 1,
            "round {round}: {manifest}"
        );
        let seen = by_id(&extract(&moto, dir.path(), &target));
        assert_eq!(seen.len() as u32, upto, "round {round}");
        assert!(
            seen.values().all(|t| t.len() == 1),
            "round {round}: {seen:?}"
        );
    }
    eprintln!("s3 bookmark race: the loser {reasons:?}");
}

#[test]
fn a_reader_that_read_the_manifest_before_a_replace_reads_the_replaced_files_whole() {
    let Some(moto) = Moto::connect("s3 dataset reader during replace") else {
        return;
    };
    let bucket = moto.bucket("lake-slow-reader");
    let dir = tempfile::tempdir().unwrap();
    let target = format!("s3://{bucket}/lake/events");
    let rows = |tag: &str| {
        let mut out = String::new();
        for id in 0..6000u64 {
            // Text that does not compress: the file is megabytes, read by
            // row groups.
            let pad: String = (1..30u64)
                .map(|k| {
                    format!(
                        "{:09}",
                        (id * 7919 + k).wrapping_mul(2_654_435_761) % 1_000_000_007
                    )
                })
                .collect();
            out.push_str(&format!(
                "{{\"id\":{id},\"p\":\"a\",\"tag\":\"{tag}\",\"pad\":\"{pad}\"}}\n"
            ));
        }
        out
    };
    let age = "2";
    let mut command = cmd(LOAD, dir.path());
    moto.env(&mut command)
        .env("ETLKIT_LAKE_CLEAN_AFTER", age)
        .args([&target, "--partition-by", "p", "--row-group-size", "50"]);
    expect(&run_with_input(command, rows("old").as_bytes()), "load").code(0);
    // The file is older than the age when the replace comes.
    std::thread::sleep(std::time::Duration::from_secs(3));
    // A reader that has read the manifest and the file's footer, and waits
    // on its stdout (500 KB of records, the pipe holds 64 KiB).
    let mut command = cmd(EXTRACT, dir.path());
    moto.env(&mut command)
        .arg(&target)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let reader = command.spawn().expect("etl-extract runs");
    std::thread::sleep(std::time::Duration::from_secs(1));
    let mut command = cmd(LOAD, dir.path());
    moto.env(&mut command)
        .env("ETLKIT_LAKE_CLEAN_AFTER", age)
        .args([&target, "--mode", "replace-partitions"]);
    expect(&run_with_input(command, rows("new").as_bytes()), "replace").code(0);
    let out = reader.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "the reader: {}", stderr(&out));
    let seen = by_id(&records(&stdout(&out)));
    assert_eq!(seen.len(), 6000);
    assert!(seen.values().all(|t| t == &["old"]));
    // The replaced file goes once it has been unlisted for the age.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let mut command = cmd(LOAD, dir.path());
    moto.env(&mut command)
        .env("ETLKIT_LAKE_CLEAN_AFTER", age)
        .arg(&target);
    expect(&run_with_input(command, b""), "an empty append").code(0);
    let parquet: Vec<String> = keys(&moto, &bucket, "lake/events/")
        .into_iter()
        .filter(|k| k.ends_with(".parquet"))
        .collect();
    assert_eq!(parquet.len(), 1, "{parquet:?}");
}
