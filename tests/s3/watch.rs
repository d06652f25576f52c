//! etl-watch on an S3 prefix: each object version (key and ETag) is
//! loaded exactly once, through restarts, deletes and SIGKILLs.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::expect::expect;
use crate::common::s3::Moto;
use crate::common::{WATCH, cmd, run, stderr};

const LOAD_T: &str = "etl-load -q wh.db --table t";

/// Writes many objects in one boto3 call: (key, body).
fn put_all(moto: &Moto, bucket: &str, objects: &[(String, String)]) {
    let data = serde_json::to_vec(objects).expect("objects as JSON");
    moto.boto(
        bucket,
        "import json\nfor k, b in json.loads(data):\n    s3.put_object(Bucket=bucket, Key=k, Body=b.encode())",
        &data,
    );
}

fn watch_once(moto: &Moto, dir: &Path, args: &[&str]) -> std::process::Output {
    let mut command = cmd(WATCH, dir);
    moto.env(&mut command).arg("--once").args(args);
    run(command)
}

/// The rows of t as `k/ver/n`, sorted.
fn loaded(db: &Path) -> Vec<String> {
    if !db.exists() {
        return Vec::new();
    }
    let conn = rusqlite::Connection::open(db).expect("open");
    // A killed watcher's etl-load may still be committing.
    conn.busy_timeout(Duration::from_secs(10)).expect("timeout");
    // No table yet: nothing was loaded.
    let Ok(mut stmt) = conn.prepare("SELECT k || '/' || ver || '/' || n FROM t ORDER BY 1") else {
        return Vec::new();
    };
    stmt.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// An object's body: `rows` records of key `k`, version `ver`.
fn body(k: &str, ver: u32, rows: u32) -> String {
    (0..rows)
        .map(|n| format!("{{\"k\":\"{k}\",\"ver\":{ver},\"n\":{n}}}\n"))
        .collect()
}

fn rows_of(k: &str, ver: u32, rows: u32) -> Vec<String> {
    (0..rows).map(|n| format!("{k}/{ver}/{n}")).collect()
}

#[test]
fn each_object_version_is_loaded_once() {
    let Some(moto) = Moto::connect("s3 watch once") else {
        return;
    };
    let bucket = moto.bucket("watch");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inbox = format!("s3://{bucket}/inbox/");
    // b and c back to back (the same second); one gzipped; one outside.
    put_all(
        &moto,
        &bucket,
        &[
            ("inbox/a.ndjson".into(), body("a", 1, 2)),
            ("inbox/b.ndjson".into(), body("b", 1, 1)),
            ("inbox/c.ndjson".into(), body("c", 1, 3)),
            ("other/x.ndjson".into(), body("x", 1, 1)),
        ],
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, body("g", 1, 2).as_bytes()).unwrap();
    moto.put(&bucket, "inbox/sub/g.ndjson.gz", &gz.finish().unwrap());
    let args = [
        &inbox,
        "--format",
        "ndjson",
        "--checkpoint",
        "ck.json",
        "--batch-rows",
        "3",
        "--exec",
        LOAD_T,
    ];
    let out = watch_once(&moto, d, &args);
    expect(&out, "first run")
        .code(0)
        .stdout("")
        .stderr_like("etl-watch: 8 rows read, 8 written, 0 rejected in * s (* rows/s)\n");
    let mut want: Vec<String> = [
        rows_of("a", 1, 2),
        rows_of("b", 1, 1),
        rows_of("c", 1, 3),
        rows_of("g", 1, 2),
    ]
    .concat();
    want.sort();
    assert_eq!(loaded(&d.join("wh.db")), want);

    let out = watch_once(&moto, d, &args);
    expect(&out, "nothing new")
        .code(0)
        .stderr_like("etl-watch: 0 rows read, 0 written, 0 rejected in * s (* rows/s)\n");
    assert_eq!(loaded(&d.join("wh.db")), want);

    // a written again with new content (the same size); d new.
    put_all(
        &moto,
        &bucket,
        &[
            ("inbox/a.ndjson".into(), body("a", 2, 2)),
            ("inbox/d.ndjson".into(), body("d", 1, 1)),
        ],
    );
    let out = watch_once(&moto, d, &args);
    expect(&out, "overwritten and new")
        .code(0)
        .stderr_like("etl-watch: 3 rows read, 3 written, 0 rejected in * s (* rows/s)\n");
    want.extend(rows_of("a", 2, 2));
    want.extend(rows_of("d", 1, 1));
    want.sort();
    assert_eq!(loaded(&d.join("wh.db")), want);
    let out = watch_once(&moto, d, &args);
    expect(&out, "nothing new again").code(0);
    assert_eq!(loaded(&d.join("wh.db")), want);

    // The checkpoint holds the versions still listed, and no secret.
    let checkpoint = std::fs::read_to_string(d.join("ck.json")).unwrap();
    assert_eq!(checkpoint.matches("\"etag\"").count(), 5, "{checkpoint}");
    assert!(!checkpoint.contains(&moto.secret_key));
    moto.boto(
        &bucket,
        "s3.delete_object(Bucket=bucket, Key='inbox/b.ndjson')",
        b"",
    );
    let out = watch_once(&moto, d, &args);
    expect(&out, "after a delete").code(0);
    let checkpoint = std::fs::read_to_string(d.join("ck.json")).unwrap();
    assert_eq!(checkpoint.matches("\"etag\"").count(), 4, "{checkpoint}");
    assert!(!checkpoint.contains("b.ndjson"), "{checkpoint}");

    // To stdout: the batch's begin line has an id, its end line the versions.
    put_all(
        &moto,
        &bucket,
        &[("inbox/e.ndjson".into(), body("e", 1, 1))],
    );
    let out = watch_once(
        &moto,
        d,
        &[&format!("s3://{bucket}/inbox/e*"), "-f", "ndjson"],
    );
    let text = crate::common::stdout(&out);
    let lines = crate::common::json_lines(&text);
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0]["batch"].is_string(), "{text}");
    assert_eq!(
        lines[2]["positions"][0]["object"],
        format!("s3://{bucket}/inbox/e.ndjson")
    );
    assert!(
        !crate::common::stderr(&out).contains(&moto.secret_key) && !text.contains(&moto.secret_key)
    );
}

#[test]
fn an_object_deleted_before_it_is_read_is_skipped() {
    let Some(moto) = Moto::connect("s3 watch deleted") else {
        return;
    };
    let bucket = moto.bucket("watch-deleted");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    put_all(
        &moto,
        &bucket,
        &[
            ("in/a.ndjson".into(), body("a", 1, 1)),
            ("in/b.ndjson".into(), body("b", 1, 1)),
            ("in/c.ndjson".into(), body("c", 1, 1)),
        ],
    );
    // The first batch's load deletes b, listed but not read yet.
    let delete = moto.boto_command(
        d,
        "delete.py",
        &bucket,
        "s3.delete_object(Bucket=bucket, Key='in/b.ndjson')",
    );
    let out = watch_once(
        &moto,
        d,
        &[
            &format!("s3://{bucket}/in/*.ndjson"),
            "--format",
            "ndjson",
            "--checkpoint",
            "ck.json",
            "--batch-rows",
            "1",
            "--exec",
            &format!("{LOAD_T} && {delete}"),
        ],
    );
    expect(&out, "b deleted mid-run").code(0).stderr_like(&format!(
        "etl-watch: warning: s3://{bucket}/in/b.ndjson was deleted before it was read; skipped\n\
         etl-watch: 2 rows read, 2 written, 0 rejected in * s (* rows/s)\n"
    ));
    assert_eq!(loaded(&d.join("wh.db")), ["a/1/0", "c/1/0"]);

    // An object whose read fails part way (a gzip cut short: its first
    // records decompress, then the read fails) hands on nothing of it;
    // the others go on, and the run says so.
    let gzip = |text: &str| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, text.as_bytes()).expect("gzip");
        gz.finish().expect("gzip")
    };
    let whole = gzip(&body("z", 1, 2000));
    moto.put(&bucket, "in/y.ndjson.gz", &whole[..whole.len() / 2]);
    moto.put(&bucket, "in/z.ndjson", body("z", 2, 1).as_bytes());
    let args = [
        &format!("s3://{bucket}/in/*"),
        "--format",
        "ndjson",
        "--checkpoint",
        "ck.json",
        "--exec",
        LOAD_T,
    ];
    let out = watch_once(&moto, d, &args);
    expect(&out, "a read that fails part way")
        .code(1)
        .stderr_like(&format!(
            "etl-watch: warning: cannot decompress s3://{bucket}/in/y.ndjson.gz: *; nothing more of it was handed on, it is read again later\n\
             etl-watch: error: 1 object could not be read (see above); the next run reads it\n"
        ));
    assert_eq!(loaded(&d.join("wh.db")), ["a/1/0", "c/1/0", "z/2/0"]);
    // Written again whole: the next run reads it.
    moto.put(&bucket, "in/y.ndjson.gz", &whole);
    let out = watch_once(&moto, d, &args);
    expect(&out, "the object whole").code(0);
    assert_eq!(loaded(&d.join("wh.db")).len(), 2003);
}

/// 1,000 objects (ETLKIT_S3_WATCH_OBJECTS) arrive in 10 rounds
/// (ETLKIT_S3_WATCH_KILLS), all in the same seconds; some already loaded
/// are written again with new content, some are deleted before any reader
/// saw them; each round's watcher is SIGKILLed at a seeded point, alone or
/// with its loader. At the end every object version is loaded exactly once.
#[test]
fn sigkill_at_seeded_points_loses_and_repeats_no_object_version() {
    let Some(moto) = Moto::connect("s3 watch kill") else {
        return;
    };
    let setting = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let rounds = setting("ETLKIT_S3_WATCH_KILLS", 10).max(1);
    let per_round = (setting("ETLKIT_S3_WATCH_OBJECTS", 1000) / rounds).max(1);
    let bucket = moto.bucket("watch-kill");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inbox = format!("s3://{bucket}/in/");
    let mut seed: u64 = std::env::var("ETLKIT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(11);
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut want = Vec::new();
    let mut versions = std::collections::HashMap::new();
    let mut deleted = 0;
    let mut loader_kills = 0;
    for round in 0..rounds {
        let mut objects = Vec::new();
        let mut fresh = Vec::new();
        for i in 0..per_round {
            let k = format!("r{round}-{i:03}");
            objects.push((format!("in/{k}.ndjson"), body(&k, 1, 3)));
            fresh.push(k);
        }
        // Objects already loaded written again with new content (one not
        // loaded yet would lose a version no reader could ever see).
        let done = loaded(&d.join("wh.db"));
        let mut keys: Vec<&String> = versions.keys().collect();
        keys.sort();
        let again: Vec<String> = keys
            .iter()
            .filter(|k| done.contains(&format!("{k}/{}/2", versions[**k])))
            .filter(|_| next() % 20 == 0)
            .map(|k| k.to_string())
            .collect();
        for k in &again {
            let ver = versions[k] + 1;
            versions.insert(k.clone(), ver);
            objects.push((format!("in/{k}.ndjson"), body(k, ver, 3)));
            want.extend(rows_of(k, ver, 3));
        }
        put_all(&moto, &bucket, &objects);
        // A few new ones deleted before any reader lists them.
        let gone: Vec<String> = fresh.iter().filter(|_| next() % 25 == 0).cloned().collect();
        if !gone.is_empty() {
            let keys: Vec<String> = gone.iter().map(|k| format!("in/{k}.ndjson")).collect();
            let data = serde_json::to_vec(&keys).expect("keys as JSON");
            moto.boto(
                &bucket,
                "import json\nfor k in json.loads(data):\n    s3.delete_object(Bucket=bucket, Key=k)",
                &data,
            );
            deleted += gone.len();
        }
        for k in fresh.into_iter().filter(|k| !gone.contains(k)) {
            want.extend(rows_of(&k, 1, 3));
            versions.insert(k, 1);
        }
        let mut command = cmd(WATCH, d);
        moto.env(&mut command)
            .args([
                &inbox,
                "--format",
                "ndjson",
                "--checkpoint",
                "ck.json",
                "--batch-rows",
                "40",
                "--poll-interval",
                "50",
                "--exec",
                LOAD_T,
            ])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = command.spawn().expect("etl-watch runs");
        std::thread::sleep(Duration::from_millis(300 + next() % 1200));
        if next() % 2 == 0 {
            // Watcher and loader at once: the whole process group.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            loader_kills += 1;
        } else {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
    // A killed watcher's --exec child may hold the lock a moment longer.
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let out = watch_once(
            &moto,
            d,
            &[
                &inbox,
                "-f",
                "ndjson",
                "--checkpoint",
                "ck.json",
                "--batch-rows",
                "40",
                "--exec",
                LOAD_T,
            ],
        );
        if stderr(&out).contains("its lock is held") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        break out;
    };
    assert_eq!(crate::common::code(&out), 0, "{}", stderr(&out));
    want.sort();
    let got = loaded(&d.join("wh.db"));
    if rounds >= 4 {
        assert!(
            deleted > 0 && loader_kills > 0,
            "the rounds deleted objects and killed loaders"
        );
    }
    assert_eq!(got.len(), want.len(), "every object version exactly once");
    assert_eq!(got, want);
}

#[test]
fn a_crash_between_the_commit_and_the_checkpoint_repeats_nothing() {
    let Some(moto) = Moto::connect("s3 watch crash") else {
        return;
    };
    let bucket = moto.bucket("watch-crash");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inbox = format!("s3://{bucket}/in/");
    put_all(
        &moto,
        &bucket,
        &[
            ("in/a.ndjson".into(), body("a", 1, 2)),
            ("in/b.ndjson".into(), body("b", 1, 1)),
        ],
    );
    // The load commits, then the watcher dies before it moves its checkpoint.
    let out = watch_once(
        &moto,
        d,
        &[
            &inbox,
            "-f",
            "ndjson",
            "--checkpoint",
            "ck.json",
            "--exec",
            &format!("{LOAD_T} && kill -9 $PPID"),
        ],
    );
    assert!(out.status.code().is_none(), "the watcher was killed");
    let checkpoint = std::fs::read_to_string(d.join("ck.json")).unwrap();
    assert!(checkpoint.contains("pending_objects"), "{checkpoint}");
    put_all(&moto, &bucket, &[("in/c.ndjson".into(), body("c", 1, 1))]);
    let out = watch_once(
        &moto,
        d,
        &[
            &inbox,
            "-f",
            "ndjson",
            "--checkpoint",
            "ck.json",
            "--exec",
            LOAD_T,
        ],
    );
    expect(&out, "after the crash").code(0);
    assert_eq!(
        loaded(&d.join("wh.db")),
        ["a/1/0", "a/1/1", "b/1/0", "c/1/0"],
        "append mode, yet nothing repeated"
    );
}

#[test]
fn a_bucket_is_watched_alone_and_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    for (args, message) in [
        (
            vec!["s3://bucket/in/", "app.log"],
            "etl-watch: error: an s3:// prefix is watched alone, not with files, brokers or other prefixes",
        ),
        (
            vec!["s3://bucket/in/", "--from-end"],
            "etl-watch: error: --from-end is for files and brokers: an s3:// prefix hands on every object not yet handed on",
        ),
    ] {
        let mut command = cmd(WATCH, dir.path());
        command.arg("--once").args(&args);
        let out = run(command);
        expect(&out, message)
            .code(2)
            .stdout("")
            .stderr(&format!("{message}\n"));
    }
}

#[test]
fn an_object_larger_than_a_batch_is_cut_and_resumed_after_a_crash() {
    let Some(moto) = Moto::connect("s3 watch split") else {
        return;
    };
    let bucket = moto.bucket("watch-split");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let inbox = format!("s3://{bucket}/in/");
    let mut csv = String::from("k,ver,n\n");
    for n in 0..10 {
        csv.push_str(&format!("big,1,{n}\n"));
    }
    // The last line without its newline: the object is complete.
    csv.push_str("big,1,10");
    moto.put(&bucket, "in/big.csv", csv.as_bytes());
    let args = |exec: &str| {
        vec![
            inbox.clone(),
            "-f".into(),
            "csv".into(),
            "--checkpoint".into(),
            "ck.json".into(),
            "--batch-rows".into(),
            "4".into(),
            "--exec".into(),
            exec.into(),
        ]
    };
    // The first batch (rows 0-3) commits, then the watcher dies.
    let killing = args(&format!("{LOAD_T} && kill -9 $PPID"));
    let killing: Vec<&str> = killing.iter().map(String::as_str).collect();
    let out = watch_once(&moto, d, &killing);
    assert!(out.status.code().is_none(), "the watcher was killed");
    assert_eq!(loaded(&d.join("wh.db")).len(), 4);
    let plain = args(LOAD_T);
    let plain: Vec<&str> = plain.iter().map(String::as_str).collect();
    let out = watch_once(&moto, d, &plain);
    expect(&out, "after the crash").code(0);
    let mut want = rows_of("big", 1, 11);
    want.sort();
    assert_eq!(loaded(&d.join("wh.db")), want, "each row once");
    let out = watch_once(&moto, d, &plain);
    expect(&out, "nothing new")
        .code(0)
        .stderr_like("etl-watch: 0 rows read, 0 written, 0 rejected in * s (* rows/s)\n");
    assert_eq!(loaded(&d.join("wh.db")), want);
}
