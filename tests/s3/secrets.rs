//! The S3 secret key and session token appear in no output of a run
//! against S3: stdout, stderr (`-v` included), `--log-json` records, a
//! `--state` file, `--rejects` files, a watcher's checkpoint, the
//! dataset's manifest or any other object; for runs of etl-extract,
//! etl-load and etl-watch (over a bucket, and handing batches to a load
//! into one) that succeed and that fail (a wrong secret, a session token
//! the server refuses, a server that is not there). moto accepts no
//! session token with the test user's keys, so the token is only seen in
//! runs it refuses.

use std::process::Output;

use crate::common::s3::Moto;
use crate::common::{EXTRACT, LOAD, WATCH, cmd, code, run, run_with_input, stderr};

/// The forms a secret could be written in.
fn forms(secret: &str) -> Vec<String> {
    let encoded: String = secret
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let escaped = serde_json::to_string(secret).expect("a string serializes");
    vec![
        secret.to_string(),
        encoded,
        escaped.trim_matches('"').to_string(),
    ]
}

/// Keeps a failed run's output, checking that it failed.
fn failed(outputs: &mut Vec<(String, Output)>, what: &str, out: Output, ok: bool) {
    assert_eq!(
        code(&out) == 0,
        ok,
        "{what}: exit {}: {}",
        code(&out),
        stderr(&out)
    );
    assert!(!stderr(&out).is_empty(), "{what}: no message");
    outputs.push((what.to_string(), out));
}

#[test]
fn no_secret_key_or_session_token_in_any_output() {
    let Some(moto) = Moto::connect("s3 secrets") else {
        return;
    };
    let bucket = moto.bucket("secrets");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let token = "FwoGZXIvYXdzEXAMPLEsessionTOKEN/Zq9+Xw7==";
    let wrong = "wrong/Secret+Key0123456789abcdefEXAMPLE9";
    moto.put(
        &bucket,
        "in/a.ndjson",
        b"{\"id\":1,\"ordered_at\":\"2026-11-01T10:00:00Z\"}\n{\"id\":2,\"ordered_at\":\"2026-11-02T10:00:00Z\"}\n",
    );
    let lake = format!("s3://{bucket}/lake/orders");
    // One bad row: a reject, written to --rejects.
    let input = "{\"id\":1,\"ordered_at\":\"2026-11-01T10:00:00Z\"}\n\
                 {\"id\":2,\"ordered_at\":\"not a time\"}\n";
    let mut outputs: Vec<(String, Output)> = Vec::new();
    let inbox = d.join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    // Runs that succeed; with the session token set, for runs that fail
    // and ones whose token the server ignores or refuses.
    for with_token in [false, true] {
        let env = |command: &mut std::process::Command| {
            moto.env(command);
            if with_token {
                command.env("AWS_SESSION_TOKEN", token);
            }
        };
        let mut c = cmd(LOAD, d);
        env(&mut c);
        c.args([
            "-v",
            "--log-json",
            &lake,
            "--partition-by",
            "ordered_at:day",
            "--rejects",
            "load.rejects.ndjson",
            "--max-rejects",
            "5",
        ]);
        let out = run_with_input(c, input.as_bytes());
        let succeeded = code(&out) == 3;
        outputs.push((format!("dataset load (token {with_token})"), out));
        let mut c = cmd(EXTRACT, d);
        env(&mut c);
        c.args([
            "-v",
            "--log-json",
            "--cursor",
            "id",
            "--state",
            "extract.state.json",
            &format!("s3://{bucket}/in/*.ndjson"),
        ]);
        let out = run(c);
        assert_eq!(code(&out) == 0, succeeded, "{}", stderr(&out));
        outputs.push((format!("extract with --state (token {with_token})"), out));
        let mut c = cmd(EXTRACT, d);
        env(&mut c);
        c.args(["-v", "--log-json", &lake]);
        outputs.push((format!("dataset extract (token {with_token})"), run(c)));
        let mut c = cmd(LOAD, d);
        env(&mut c);
        c.args([
            "-v",
            "--log-json",
            "--mode",
            "replace",
            "--state",
            "load.state.json",
            &format!("s3://{bucket}/out/orders.csv"),
        ]);
        let out = run_with_input(
            c,
            b"{\"@etl\":\"begin\",\"stream\":\"o\"}\n{\"id\":1}\n{\"@etl\":\"end\",\"stream\":\"o\",\"rows\":1,\"bookmark\":{\"column\":\"id\",\"value\":1}}\n",
        );
        outputs.push((
            format!("object load with --state (token {with_token})"),
            out,
        ));
        // etl-watch handing a batch to a load into the bucket (the load's
        // stderr is the watcher's).
        std::fs::write(
            inbox.join(format!("{with_token}.ndjson")),
            format!(
                "{{\"id\":1,\"token\":{with_token},\"ordered_at\":\"2026-11-01T10:00:00Z\"}}\n"
            ),
        )
        .unwrap();
        let mut c = cmd(WATCH, d);
        env(&mut c);
        c.args([
            "-v",
            "--log-json",
            "inbox",
            "--format",
            "ndjson",
            "--once",
            "--checkpoint",
            "watch.ckpt",
            "--exec",
            &format!("etl-load -v --log-json {lake}"),
        ]);
        let out = run(c);
        assert_eq!(code(&out) == 0, succeeded, "{}", stderr(&out));
        outputs.push((format!("watch into a dataset (token {with_token})"), out));
        // etl-watch over the bucket itself.
        moto.put(
            &bucket,
            &format!("in/{with_token}.ndjson"),
            format!(
                "{{\"id\":3,\"token\":{with_token},\"ordered_at\":\"2026-11-03T10:00:00Z\"}}\n"
            )
            .as_bytes(),
        );
        let mut c = cmd(WATCH, d);
        env(&mut c);
        c.args([
            "-v",
            "--log-json",
            &format!("s3://{bucket}/in/"),
            "--once",
            "--checkpoint",
            "watch-s3.ckpt",
            "--exec",
            &format!("etl-load -v --log-json {lake}"),
        ]);
        let out = run(c);
        assert_eq!(code(&out) == 0, succeeded, "{}", stderr(&out));
        outputs.push((format!("watch of a bucket (token {with_token})"), out));
        if !with_token {
            assert!(succeeded, "the runs with the right keys succeed");
        }
    }

    // A wrong secret (signature refused) and a server that is not there.
    std::fs::write(
        inbox.join("b.ndjson"),
        "{\"id\":2,\"ordered_at\":\"2026-11-01T10:00:00Z\"}\n",
    )
    .unwrap();
    // (The token set with the wrong secret would be refused before the
    // signature is checked.)
    for (name, endpoint, secret, session) in [
        ("wrong secret", moto.endpoint.clone(), wrong, None),
        (
            "no server",
            "http://127.0.0.1:1".to_string(),
            moto.secret_key.as_str(),
            Some(token),
        ),
    ] {
        let env = |command: &mut std::process::Command| {
            moto.env(command)
                .env("AWS_ENDPOINT_URL", &endpoint)
                .env("AWS_SECRET_ACCESS_KEY", secret);
            if let Some(token) = session {
                command.env("AWS_SESSION_TOKEN", token);
            }
        };
        let mut c = cmd(EXTRACT, d);
        env(&mut c);
        c.args(["-v", "--log-json", &lake]);
        failed(
            &mut outputs,
            &format!("{name}: dataset extract"),
            run(c),
            false,
        );
        let mut c = cmd(EXTRACT, d);
        env(&mut c);
        c.args([
            "-v",
            "--log-json",
            "--cursor",
            "id",
            "--state",
            "extract.state.json",
            &format!("s3://{bucket}/in/*.ndjson"),
        ]);
        failed(
            &mut outputs,
            &format!("{name}: extract with --state"),
            run(c),
            false,
        );
        let mut c = cmd(LOAD, d);
        env(&mut c);
        c.args([
            "-v",
            "--log-json",
            &lake,
            "--rejects",
            "load.rejects.ndjson",
        ]);
        failed(
            &mut outputs,
            &format!("{name}: dataset load"),
            run_with_input(c, input.as_bytes()),
            false,
        );
        let mut c = cmd(LOAD, d);
        env(&mut c);
        c.args([
            "-v",
            "--log-json",
            "--mode",
            "replace",
            "--state",
            "load.state.json",
            &format!("s3://{bucket}/out/orders.csv"),
        ]);
        failed(
            &mut outputs,
            &format!("{name}: object load"),
            run_with_input(c, b"{\"id\":1}\n"),
            false,
        );
        let mut c = cmd(WATCH, d);
        env(&mut c);
        c.args([
            "-v",
            "--log-json",
            "inbox",
            "--format",
            "ndjson",
            "--once",
            "--checkpoint",
            "watch.ckpt",
            "--exec",
            &format!("etl-load -v --log-json {lake}"),
        ]);
        failed(
            &mut outputs,
            &format!("{name}: watch into a dataset"),
            run(c),
            false,
        );
        let mut c = cmd(WATCH, d);
        env(&mut c);
        c.args([
            "-v",
            "--log-json",
            &format!("s3://{bucket}/in/"),
            "--once",
            "--checkpoint",
            "watch-s3.ckpt",
            "--exec",
            &format!("etl-load -v --log-json {lake}"),
        ]);
        failed(
            &mut outputs,
            &format!("{name}: watch of a bucket"),
            run(c),
            false,
        );
    }

    // The failures are the ones meant, each named.
    for (what, out) in &outputs {
        let why = if what.starts_with("wrong secret") {
            "HTTP 403 SignatureDoesNotMatch"
        } else if what.starts_with("no server") {
            "cannot reach http://127.0.0.1:1"
        } else if what.contains("token true") {
            "InvalidToken"
        } else {
            continue;
        };
        assert!(stderr(out).contains(why), "{what}: {}", stderr(out));
    }
    let mut places: Vec<(String, Vec<u8>)> = Vec::new();
    for (what, out) in &outputs {
        places.push((format!("{what}: stdout"), out.stdout.clone()));
        places.push((format!("{what}: stderr"), out.stderr.clone()));
    }
    for entry in std::fs::read_dir(d).unwrap().flatten() {
        if entry.path().is_file() {
            places.push((
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read(entry.path()).unwrap(),
            ));
        }
    }
    for key in super::lake::keys(&moto, &bucket, "") {
        let body = moto.get(&bucket, &key).unwrap_or_default();
        places.push((format!("s3://{bucket}/{key}"), body));
    }
    for name in ["load.rejects.ndjson", "load.state.json", "watch.ckpt"] {
        assert!(d.join(name).exists(), "{name} was written");
    }
    assert!(
        places
            .iter()
            .any(|(p, _)| p.ends_with("_etl_manifest.json")),
        "the manifest was read"
    );
    for (place, bytes) in &places {
        let text = String::from_utf8_lossy(bytes);
        for secret in [moto.secret_key.as_str(), token, wrong] {
            for form in forms(secret) {
                assert!(!text.contains(&form), "{place} holds a secret: {text}");
            }
        }
    }
}
