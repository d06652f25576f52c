//! Loads into an S3 dataset SIGKILLed at seeded points (half `append`,
//! half `replace-partitions`) while another thread reads the dataset with
//! `etl-extract` in a loop: every read is one committed state (its count
//! and sum per day), never part of a load; after each kill the next load
//! succeeds, and files no manifest lists are never read and are deleted
//! by a later load once older than `ETLKIT_LAKE_CLEAN_AFTER`.
//!
//! Deterministic by default (`ETLKIT_CRASH_SEED` picks other points);
//! `ETLKIT_S3_CRASH_KILLS` sets how many loads are killed: 10 by default
//! (about 40 s on a 2-core machine), 20 for the count (about 90 s).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::s3::Moto;
use crate::common::{EXTRACT, LOAD, cmd, code, records, run, stderr, stdout};
use crate::crash::{Rng, seed};

/// Count and sum of `amount` per day: what a read saw.
type State = BTreeMap<String, (u64, i64)>;

/// Seconds after which a load deletes a file no manifest lists (a load
/// must commit within half of it).
const CLEAN_AFTER: u64 = 6;

fn kills() -> u32 {
    std::env::var("ETLKIT_S3_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// `n` orders from id `first`, over `days` (a day each, round robin).
fn orders(first: u64, n: u64, days: &[u32]) -> (String, State) {
    let mut text = String::from("{\"@etl\":\"begin\",\"stream\":\"orders\"}\n");
    let mut state = State::new();
    for id in first..first + n {
        let day = days[(id % days.len() as u64) as usize];
        let amount = (id.wrapping_mul(2_654_435_761) % 9973) as i64 + 1;
        text.push_str(&format!(
            "{{\"id\":{id},\"ordered_at\":\"2026-11-{day:02}T10:00:00Z\",\"amount\":{amount},\"pad\":\"{}\"}}\n",
            "x".repeat(40)
        ));
        let e = state.entry(format!("2026-11-{day:02}")).or_default();
        e.0 += 1;
        e.1 += amount;
    }
    text.push_str(&format!(
        "{{\"@etl\":\"end\",\"stream\":\"orders\",\"rows\":{n}}}\n"
    ));
    (text, state)
}

/// The state after a load of `fresh` in `mode` on `before`.
fn after(before: &State, fresh: &State, mode: &str) -> State {
    let mut out = before.clone();
    for (day, (n, sum)) in fresh {
        let e = out.entry(day.clone()).or_default();
        if mode == "append" {
            e.0 += n;
            e.1 += sum;
        } else {
            *e = (*n, *sum);
        }
    }
    out
}

/// Reads the dataset: its state, or the failure's message.
fn read(moto: &Moto, dir: &std::path::Path, target: &str) -> Result<State, String> {
    let mut command = cmd(EXTRACT, dir);
    moto.env(&mut command).args(["-q", target]);
    let out = run(command);
    if code(&out) != 0 {
        return Err(stderr(&out));
    }
    let mut state = State::new();
    for row in records(&stdout(&out)) {
        let day = row["ordered_at"].as_str().unwrap_or_default()[..10].to_string();
        let e = state.entry(day).or_default();
        e.0 += 1;
        e.1 += row["amount"].as_i64().expect("amount");
    }
    Ok(state)
}

/// Parquet keys under the dataset (key, age in seconds by the server's
/// LastModified), the manifest's files and the files it names as dropped
/// (kept for the age after the commit that dropped them).
type Files = (BTreeMap<String, f64>, BTreeSet<String>, BTreeSet<String>);

fn files(moto: &Moto, bucket: &str) -> Files {
    let out = moto.boto(
        bucket,
        "import json, time\n\
         p = s3.get_paginator('list_objects_v2')\n\
         for page in p.paginate(Bucket=bucket, Prefix='lake/orders/'):\n    \
         for o in page.get('Contents', []):\n        \
         if o['Key'].endswith('.parquet'):\n            \
         print(o['Key'], time.time() - o['LastModified'].timestamp())\n\
         m = json.loads(s3.get_object(Bucket=bucket, Key='lake/orders/_etl_manifest.json')['Body'].read())\n\
         for f in m['files']:\n    print('listed', 'lake/orders/' + f['path'])\n\
         for f in m.get('dropped', []):\n    print('dropped', 'lake/orders/' + f['path'])",
        b"",
    );
    let mut present = BTreeMap::new();
    let mut listed = BTreeSet::new();
    let mut dropped = BTreeSet::new();
    for line in String::from_utf8_lossy(&out).lines() {
        let (a, b) = line.split_once(' ').expect("two words");
        if a == "listed" {
            listed.insert(b.to_string());
        } else if a == "dropped" {
            dropped.insert(b.to_string());
        } else {
            present.insert(a.to_string(), b.parse().expect("an age"));
        }
    }
    (present, listed, dropped)
}

#[test]
fn killed_s3_loads_never_show_a_partial_commit_to_a_reader() {
    let Some(moto) = Moto::connect("s3 dataset crash") else {
        return;
    };
    let moto = Arc::new(moto);
    let bucket = moto.bucket("lake-crash");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let target = format!("s3://{bucket}/lake/orders");
    let mut rng = Rng(seed());
    let mut next_id = 0u64;
    // Several files per partition (--file-size), so a load makes many uploads.
    let load = |input: &str, mode: &str| {
        let mut command = cmd(LOAD, &d);
        moto.env(&mut command)
            .env("ETLKIT_LAKE_CLEAN_AFTER", CLEAN_AFTER.to_string())
            .args([
                "-q",
                &target,
                "--partition-by",
                "ordered_at:day",
                "--row-group-size",
                "200",
                "--file-size",
                "8K",
                "--mode",
                mode,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("etl-load runs");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(input.as_bytes()).expect("write");
        }
        child
    };
    let finish = |child: std::process::Child, what: &str| {
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    // The first commit, timed: the kill points fall within that time.
    let (input, fresh) = orders(next_id, 3000, &[1, 2, 3, 4, 5, 6]);
    next_id += 3000;
    let started = Instant::now();
    finish(load(&input, "append"), "first load");
    let span = started.elapsed().as_millis() as u64;
    let mut current = fresh;
    let states = Arc::new(Mutex::new(vec![current.clone()]));

    // The reader: etl-extract in a loop until the loads are done.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (moto, stop, target, d) = (moto.clone(), stop.clone(), target.clone(), d.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                seen.push(read(&moto, &d, &target));
            }
            seen
        })
    };

    let (mut killed, mut leftovers, mut cleaned) = (0, 0usize, 0usize);
    let what = |i: u32, mode: &str| format!("kill {i} ({mode}), seed {}", seed());
    for i in 0..kills() {
        let mode = if i % 2 == 0 {
            "append"
        } else {
            "replace-partitions"
        };
        // Days 1-6, a different few each time, so replace-partitions keeps some.
        let days: Vec<u32> = (0..3)
            .map(|k| 1 + ((u32::from(i as u8) + 2 * k) % 6))
            .collect();
        let (input, fresh) = orders(next_id, 1500, &days);
        next_id += 1500;
        let complete = after(&current, &fresh, mode);
        states.lock().unwrap().push(complete.clone());
        let delay = Duration::from_millis(rng.next() % (span + span / 4 + 1));
        let mut child = load(&input, mode);
        std::thread::sleep(delay);
        let finished = child.try_wait().expect("wait").is_some();
        if !finished {
            child.kill().expect("SIGKILL");
            killed += 1;
        }
        let out = child.wait_with_output().expect("wait");
        assert!(
            !finished || out.status.success(),
            "{}: a load that was not killed failed: {}",
            what(i, mode),
            String::from_utf8_lossy(&out.stderr)
        );
        let now = read(&moto, &d, &target).unwrap_or_else(|e| panic!("{}: {e}", what(i, mode)));
        assert!(
            now == current || now == complete,
            "{}: after the kill the dataset is {now:?}, neither {current:?} nor {complete:?}",
            what(i, mode)
        );
        current = now;
        let (present, listed, dropped) = files(&moto, &bucket);
        leftovers += present
            .keys()
            .filter(|k| !listed.contains(*k) && !dropped.contains(*k))
            .count();

        // The next load succeeds, and deletes what no manifest lists and is
        // older than the age (never what is listed).
        let (input, fresh) = orders(next_id, 300, &[(i % 6) + 1]);
        next_id += 300;
        let complete = after(&current, &fresh, mode);
        states.lock().unwrap().push(complete.clone());
        let old: Vec<String> = present
            .iter()
            .filter(|(k, age)| {
                !listed.contains(*k) && !dropped.contains(*k) && **age > CLEAN_AFTER as f64 + 1.0
            })
            .map(|(k, _)| k.clone())
            .collect();
        finish(
            load(&input, mode),
            &format!("{}: the next load", what(i, mode)),
        );
        current = complete;
        let (present, listed, dropped) = files(&moto, &bucket);
        assert!(
            listed
                .iter()
                .chain(&dropped)
                .all(|k| present.contains_key(k)),
            "{}: a listed file, or one dropped less than {CLEAN_AFTER} s ago, is gone",
            what(i, mode)
        );
        for key in &old {
            assert!(
                !present.contains_key(key),
                "{}: {key} is unlisted and older than {CLEAN_AFTER} s, yet the load left it",
                what(i, mode)
            );
        }
        cleaned += old.len();
    }
    stop.store(true, Ordering::Relaxed);
    let seen = reader.join().expect("the reader");

    // Once every leftover is older than the age, a load deletes them all.
    std::thread::sleep(Duration::from_secs(CLEAN_AFTER + 1));
    let (input, fresh) = orders(next_id, 10, &[1]);
    finish(load(&input, "append"), "the last load");
    let (present, listed, _) = files(&moto, &bucket);
    let unlisted: Vec<&String> = present.keys().filter(|k| !listed.contains(*k)).collect();
    assert!(unlisted.is_empty(), "left behind: {unlisted:?}");
    assert_eq!(
        read(&moto, &d, &target).unwrap(),
        after(&current, &fresh, "append")
    );

    let states = states.lock().unwrap();
    let mut reads = 0;
    for (n, result) in seen.iter().enumerate() {
        match result {
            Ok(state) => {
                reads += 1;
                assert!(
                    states.contains(state),
                    "read {n} saw {state:?}, which no commit made (seed {})",
                    seed()
                );
            }
            Err(message) => panic!("read {n} failed: {message}"),
        }
    }
    eprintln!(
        "s3 crash: {killed} of {} loads killed mid-way, {reads} reads during the loads, {leftovers} unlisted files seen after kills, {cleaned} deleted by the next load (seed {})",
        kills(),
        seed()
    );
    assert!(killed > 0, "no load was killed mid-way");
    assert!(reads > 0, "no read ran during the loads");
}
