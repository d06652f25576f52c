//! Object storage: etl-extract reading objects and globs over a bucket's
//! listing, etl-load writing an object whole or not at all, against the
//! S3 test server (moto, scripts/s3-server.sh). Without the server these
//! tests skip loudly; with ETLKIT_REQUIRE_S3 they fail.

use std::io::Write;

use crate::common::expect::expect;
use crate::common::s3::Moto;
use crate::common::{EXTRACT, LOAD, cmd, run, run_with_input};

fn gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).expect("gzip");
    gz.finish().expect("gzip")
}

#[test]
fn extract_reads_a_glob_over_the_listing_through_gzip() {
    let Some(moto) = Moto::connect("s3 extract glob") else {
        return;
    };
    let bucket = moto.bucket("glob");
    moto.put(
        &bucket,
        "in/2024-01.csv.gz",
        &gzip("id,item\n1,apple\n2,pear\n"),
    );
    moto.put(&bucket, "in/2024-02.csv.gz", &gzip("id,item\n3,fig\n"));
    moto.put(&bucket, "in/old/2023-12.csv.gz", &gzip("id,item\n9,no\n"));
    moto.put(&bucket, "in/notes.txt", b"not data");
    let dir = tempfile::tempdir().unwrap();
    let mut command = cmd(EXTRACT, dir.path());
    moto.env(&mut command)
        .arg(format!("s3://{bucket}/in/*.csv.gz"));
    let out = run(command);
    expect(&out, "extract s3 glob")
        .code(0)
        .stdout(&format!(
            "{{\"@etl\":\"begin\",\"version\":2,\"stream\":\"2024-01\",\"source\":\"s3://{bucket}/in/2024-01.csv.gz\",\"schema\":{{\"id\":\"integer\",\"item\":\"text\"}}}}\n\
             {{\"id\":1,\"item\":\"apple\"}}\n\
             {{\"id\":2,\"item\":\"pear\"}}\n\
             {{\"id\":3,\"item\":\"fig\"}}\n\
             {{\"@etl\":\"end\",\"stream\":\"2024-01\",\"rows\":3}}\n"
        ))
        .stderr_like("etl-extract: 3 rows read, 3 written, 0 rejected in * s (* rows/s)\n");

    let mut command = cmd(EXTRACT, dir.path());
    moto.env(&mut command)
        .arg(format!("s3://{bucket}/in/*.json"));
    expect(&run(command), "extract s3 glob matching nothing")
        .code(1)
        .stdout("")
        .stderr(&format!(
            "etl-extract: error: no object matches \"s3://{bucket}/in/*.json\"\n"
        ));
}

#[test]
fn a_load_then_an_extract_round_trips_with_state() {
    let Some(moto) = Moto::connect("s3 round trip") else {
        return;
    };
    let bucket = moto.bucket("round");
    let dir = tempfile::tempdir().unwrap();
    let input = "{\"@etl\":\"begin\",\"stream\":\"orders\"}\n\
                 {\"id\":1,\"zip\":\"00501\",\"amount\":\"12.50\"}\n\
                 {\"id\":2,\"zip\":\"10001\",\"amount\":\"7.00\"}\n\
                 {\"@etl\":\"end\",\"stream\":\"orders\",\"rows\":2,\"bookmark\":{\"column\":\"id\",\"value\":2}}\n";
    let target = format!("s3://{bucket}/out/orders.csv");
    let mut command = cmd(LOAD, dir.path());
    moto.env(&mut command)
        .args([&target, "--state", "state.json"]);
    let out = run_with_input(command, input.as_bytes());
    expect(&out, "load to s3")
        .code(0)
        .stdout("")
        .stderr_like("etl-load: 2 rows read, 2 written, 0 rejected in * s (* rows/s)\n");
    assert_eq!(
        String::from_utf8(moto.get(&bucket, "out/orders.csv").unwrap()).unwrap(),
        "id,zip,amount\n1,00501,12.50\n2,10001,7.00\n"
    );
    let state = std::fs::read_to_string(dir.path().join("state.json")).unwrap();
    assert!(state.contains("\"value\": 2"), "{state}");

    let mut command = cmd(EXTRACT, dir.path());
    moto.env(&mut command).args([&target, "--all-text"]);
    expect(&run(command), "extract the loaded object")
        .code(0)
        .stdout(&format!(
            "{{\"@etl\":\"begin\",\"version\":2,\"stream\":\"orders\",\"source\":\"{target}\",\"schema\":{{\"id\":\"text\",\"zip\":\"text\",\"amount\":\"text\"}}}}\n\
             {{\"id\":\"1\",\"zip\":\"00501\",\"amount\":\"12.50\"}}\n\
             {{\"id\":\"2\",\"zip\":\"10001\",\"amount\":\"7.00\"}}\n\
             {{\"@etl\":\"end\",\"stream\":\"orders\",\"rows\":2}}\n"
        ));

    // An object is never appended to: append (the default) refuses it.
    let mut command = cmd(LOAD, dir.path());
    moto.env(&mut command).arg(&target);
    expect(&run_with_input(command, input.as_bytes()), "append to an object")
        .code(2)
        .stdout("")
        .stderr(&format!(
            "etl-load: error: {target} exists and an object cannot be appended to\nhint: use --mode replace to write it anew\n"
        ));

    // Parquet: written whole, with the footer's magic at both ends.
    let mut command = cmd(LOAD, dir.path());
    moto.env(&mut command)
        .arg(format!("s3://{bucket}/out/orders.parquet"));
    expect(
        &run_with_input(command, input.as_bytes()),
        "load parquet to s3",
    )
    .code(0);
    let parquet = moto.get(&bucket, "out/orders.parquet").unwrap();
    assert!(parquet.starts_with(b"PAR1") && parquet.ends_with(b"PAR1"));
    // Read back by ranges (the footer, then its row group).
    let mut command = cmd(EXTRACT, dir.path());
    moto.env(&mut command)
        .arg(format!("s3://{bucket}/out/orders.parquet"));
    let out = run(command);
    expect(&out, "extract parquet from s3").code(0);
    assert_eq!(
        crate::common::records(&crate::common::stdout(&out)),
        [
            serde_json::json!({"id": 1, "zip": "00501", "amount": "12.50"}),
            serde_json::json!({"id": 2, "zip": "10001", "amount": "7.00"}),
        ]
    );
}

#[test]
fn a_cut_stream_leaves_no_object_and_an_old_one_unchanged() {
    let Some(moto) = Moto::connect("s3 cut stream") else {
        return;
    };
    let bucket = moto.bucket("cut");
    let dir = tempfile::tempdir().unwrap();
    // Past one 8 MiB part, so the multipart upload has begun when the
    // stream is found cut.
    let mut input = String::from("{\"@etl\":\"begin\",\"stream\":\"big\"}\n");
    for i in 0..120_000 {
        input.push_str(&format!(
            "{{\"id\":{i},\"text\":\"a line long enough to fill parts of the upload quickly\"}}\n"
        ));
    }
    let mut command = cmd(LOAD, dir.path());
    moto.env(&mut command)
        .arg(format!("s3://{bucket}/big.ndjson"));
    expect(&run_with_input(command, input.as_bytes()), "cut stream, new object")
        .code(1)
        .stdout("")
        .stderr(&format!(
            "etl-load: error: nothing was written to s3://{bucket}/big.ndjson (it is as it was): stdin: upstream ended early after 120000 rows: stream \"big\" (begun on line 1) has no end line\n"
        ));
    assert_eq!(moto.get(&bucket, "big.ndjson"), None);
    assert_eq!(moto.uploads(&bucket), 0, "the upload was aborted");

    moto.put(&bucket, "old.csv", b"id\n1\n");
    let mut command = cmd(LOAD, dir.path());
    moto.env(&mut command)
        .args([&format!("s3://{bucket}/old.csv"), "--mode", "replace"]);
    expect(
        &run_with_input(command, input.as_bytes()),
        "cut stream, old object",
    )
    .code(1)
    .stdout("");
    assert_eq!(
        moto.get(&bucket, "old.csv").as_deref(),
        Some(&b"id\n1\n"[..])
    );
    assert_eq!(moto.uploads(&bucket), 0);
}

#[test]
fn wrong_credentials_and_a_missing_bucket_are_named_without_the_secret() {
    let Some(moto) = Moto::connect("s3 errors") else {
        return;
    };
    let bucket = moto.bucket("errors");
    moto.put(&bucket, "a.csv", b"id\n1\n");
    let dir = tempfile::tempdir().unwrap();
    let secret = "not-the-secret-Zq9Xw7";
    let mut command = cmd(EXTRACT, dir.path());
    moto.env(&mut command)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .arg(format!("s3://{bucket}/a.csv"));
    let out = run(command);
    expect(&out, "wrong secret")
        .code(1)
        .stdout("")
        .stderr(&format!(
            "etl-extract: error: cannot list s3://{bucket}: HTTP 403 SignatureDoesNotMatch: The request signature we calculated does not match the signature you provided. Check your key and signing method.\n\
             hint: the request was signed with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; check them (and AWS_REGION)\n"
        ));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(secret));

    let mut command = cmd(LOAD, dir.path());
    moto.env(&mut command)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .args([&format!("s3://{bucket}/b.csv"), "--mode", "replace"]);
    let out = run_with_input(command, b"{\"id\":1}\n");
    expect(&out, "load with a wrong secret")
        .code(1)
        .stdout("")
        .stderr_like(&format!(
            "etl-load: error: nothing was written to s3://{bucket}/b.csv (it is as it was): cannot write s3://{bucket}/b.csv: HTTP 403 SignatureDoesNotMatch: *\n\
             hint: the request was signed with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; check them (and AWS_REGION)\n"
        ));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(secret));

    let mut command = cmd(EXTRACT, dir.path());
    moto.env(&mut command)
        .arg("s3://etl-no-such-bucket/in/*.csv");
    expect(&run(command), "missing bucket")
        .code(1)
        .stdout("")
        .stderr(
            "etl-extract: error: cannot list s3://etl-no-such-bucket/in/: HTTP 404 NoSuchBucket: The specified bucket does not exist\n\
             hint: bucket \"etl-no-such-bucket\" does not exist at http://127.0.0.1:5055\n",
        );
    let mut command = cmd(LOAD, dir.path());
    moto.env(&mut command)
        .args(["s3://etl-no-such-bucket/out.csv", "--mode", "replace"]);
    expect(&run_with_input(command, b"{\"id\":1}\n"), "load to a missing bucket")
        .code(1)
        .stdout("")
        .stderr(
            "etl-load: error: nothing was written to s3://etl-no-such-bucket/out.csv (it is as it was): cannot write s3://etl-no-such-bucket/out.csv: HTTP 404 NoSuchBucket: The specified bucket does not exist\n\
             hint: bucket \"etl-no-such-bucket\" does not exist at http://127.0.0.1:5055\n",
        );
}

mod crash;
mod duckdb;
mod kill;
mod lake;
mod secrets;
mod watch;

#[test]
fn a_parquet_object_of_many_row_groups_is_read_by_ranges() {
    let Some(moto) = Moto::connect("s3 parquet ranges") else {
        return;
    };
    let bucket = moto.bucket("ranges");
    let dir = tempfile::tempdir().unwrap();
    let mut input = String::from("{\"@etl\":\"begin\",\"stream\":\"big\"}\n");
    for i in 0..60_000u64 {
        input.push_str(&format!(
            "{{\"id\":{i},\"note\":\"row {i} {}\"}}\n",
            i.wrapping_mul(2_654_435_761) % 1_000_003
        ));
    }
    input.push_str("{\"@etl\":\"end\",\"stream\":\"big\",\"rows\":60000}\n");
    let target = format!("s3://{bucket}/big.parquet");
    let mut command = cmd(LOAD, dir.path());
    moto.env(&mut command)
        .args([&target, "--row-group-size", "7000"]);
    expect(&run_with_input(command, input.as_bytes()), "load").code(0);
    let size = moto.get(&bucket, "big.parquet").unwrap().len();
    assert!(
        size > 256 << 10,
        "{size} bytes: past the footer's first read"
    );
    let mut command = cmd(EXTRACT, dir.path());
    moto.env(&mut command).arg(&target);
    let out = run(command);
    expect(&out, "extract").code(0);
    let rows = crate::common::records(&crate::common::stdout(&out));
    assert_eq!(rows.len(), 60_000);
    let sum: u64 = rows.iter().map(|r| r["id"].as_u64().unwrap()).sum();
    assert_eq!(sum, 60_000 * 59_999 / 2);
    assert_eq!(
        rows[59_999]["note"],
        format!("row 59999 {}", 59_999u64 * 2_654_435_761 % 1_000_003)
    );
}
