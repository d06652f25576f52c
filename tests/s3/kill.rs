//! A load into an S3 dataset SIGKILLed while it uploads its files: what it
//! left is never read, and a later load deletes it (and the killed load's
//! local spool).

use std::process::Stdio;

use serde_json::Value;

use super::lake::keys;
use crate::common::expect::expect;
use crate::common::s3::Moto;
use crate::common::{EXTRACT, LOAD, cmd, records, run, run_with_input, stderr, stdout};

fn load(moto: &Moto, dir: &std::path::Path, args: &[&str], input: &str) -> std::process::Output {
    let mut command = cmd(LOAD, dir);
    moto.env(&mut command).args(args);
    run_with_input(command, input.as_bytes())
}

fn extract(moto: &Moto, dir: &std::path::Path, target: &str) -> Vec<Value> {
    let mut command = cmd(EXTRACT, dir);
    moto.env(&mut command).arg(target);
    records(&stdout(&run(command)))
}

#[test]
fn a_load_killed_during_its_uploads_leaves_files_that_are_never_read() {
    let Some(moto) = Moto::connect("s3 dataset kill") else {
        return;
    };
    let bucket = moto.bucket("lake-kill");
    let dir = tempfile::tempdir().unwrap();
    let target = format!("s3://{bucket}/lake/parts");
    let rows = |ids: std::ops::Range<u32>| {
        let mut out = String::from("{\"@etl\":\"begin\",\"stream\":\"parts\"}\n");
        for id in ids.clone() {
            out.push_str(&format!("{{\"id\":{id},\"p\":\"p{id}\"}}\n"));
        }
        out.push_str(&format!(
            "{{\"@etl\":\"end\",\"stream\":\"parts\",\"rows\":{}}}\n",
            ids.len()
        ));
        out
    };
    expect(
        &load(
            &moto,
            dir.path(),
            &[&target, "--partition-by", "p"],
            &rows(0..2),
        ),
        "first load",
    )
    .code(0);
    // A load of 2000 partitions, killed once its first files are uploaded
    // (its commit comes after all 2000).
    let watcher = moto.boto_child(
        &bucket,
        "import time\n\
         for _ in range(3000):\n    \
         n = sum(1 for o in s3.list_objects_v2(Bucket=bucket, Prefix='lake/parts/').get('Contents', []) if o['Key'].endswith('.parquet'))\n    \
         if n > 2:\n        print(n); break\n    \
         time.sleep(0.005)",
    );
    let spools = tempfile::tempdir().unwrap();
    let mut command = cmd(LOAD, dir.path());
    moto.env(&mut command)
        .env("TMPDIR", spools.path())
        .arg(&target)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("etl-load runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(rows(100..2100).as_bytes()).unwrap();
    }
    let seen = watcher.wait_with_output().unwrap();
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the load finished before it was killed");
    assert!(!stdout(&seen).trim().is_empty(), "no upload was seen");
    let manifest: Value =
        serde_json::from_slice(&moto.get(&bucket, "lake/parts/_etl_manifest.json").unwrap())
            .unwrap();
    assert_eq!(manifest["commit"], 1, "the killed load committed");
    let unlisted = keys(&moto, &bucket, "lake/parts/")
        .iter()
        .filter(|k| k.ends_with(".parquet"))
        .count()
        - 2;
    assert!(unlisted > 0);

    // Never read: the dataset is as it was, and the reader says what it left out.
    let mut command = cmd(EXTRACT, dir.path());
    moto.env(&mut command).arg(&target);
    let out = run(command);
    expect(&out, "extract after the kill").code(0);
    assert_eq!(records(&stdout(&out)).len(), 2);
    assert!(
        stderr(&out).contains("Parquet file")
            && stderr(&out).contains("its manifest does not list"),
        "{}",
        stderr(&out)
    );
    // A later load, once they are old enough, deletes them.
    assert_eq!(std::fs::read_dir(spools.path()).unwrap().count(), 1);
    let mut command = cmd(LOAD, dir.path());
    moto.env(&mut command)
        .env("ETLKIT_LAKE_CLEAN_AFTER", "0")
        .env("TMPDIR", spools.path())
        .args(["-v", &target]);
    let out = run_with_input(command, rows(2..3).as_bytes());
    expect(&out, "load after the kill").code(0);
    // The killed load's local spool is gone too.
    assert_eq!(std::fs::read_dir(spools.path()).unwrap().count(), 0);
    assert!(
        stderr(&out).contains(&format!("{unlisted} replaced files removed")),
        "{unlisted}: {}",
        stderr(&out)
    );
    let parquet = keys(&moto, &bucket, "lake/parts/")
        .into_iter()
        .filter(|k| k.ends_with(".parquet"))
        .count();
    assert_eq!(parquet, 3);
    assert_eq!(extract(&moto, dir.path(), &target).len(), 3);
}
