//! Operating from cron: the job wrapper (`scripts/etl-job`) and the
//! freshness check (`scripts/etl-check`), run as a crontab would run them.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::*;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// Runs a script with the binaries on PATH, in `dir`.
fn run_script(name: &str, args: &[&str], dir: &Path) -> Output {
    std::process::Command::new(script(name))
        .args(args)
        .env_clear()
        .env(
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin", bin_dir().display()),
        )
        .current_dir(dir)
        .output()
        .expect("script runs")
}

#[test]
fn etl_job_retries_runtime_failures_and_fires_the_hook_once() {
    let dir = tempdir();
    let d = dir.path();
    let lock_dir = d.display().to_string();
    // Fails twice with exit 1, then succeeds.
    let out = run_script(
        "etl-job",
        &[
            "--retries",
            "3",
            "--backoff",
            "0.05",
            "--lock-dir",
            &lock_dir,
            "--on-failure",
            "echo hook >> hooks",
            "flaky",
            "--",
            "echo try >> tries; [ $(wc -l < tries) -ge 3 ] || { echo 'etl-load: error: server away' >&2; exit 1; }",
        ],
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(d.join("tries"))
            .expect("tries")
            .lines()
            .count(),
        3
    );
    assert!(
        !d.join("hooks").exists(),
        "no hook for a job that succeeded"
    );

    // Always fails: 1 + 2 attempts, then the hook once with what happened.
    let out = run_script(
        "etl-job",
        &[
            "--retries",
            "2",
            "--backoff",
            "0.05",
            "--lock-dir",
            &lock_dir,
            "--on-failure",
            "echo \"$ETL_JOB_NAME|$ETL_JOB_EXIT|$ETL_JOB_ERROR\" >> hooks",
            "broken",
            "--",
            "echo go >> runs; echo 'stdin:7: etl-load: error: bad line' >&2; echo 'summary' >&2; exit 1",
        ],
        d,
    );
    assert_eq!(code(&out), 1);
    assert_eq!(
        std::fs::read_to_string(d.join("runs"))
            .expect("runs")
            .lines()
            .count(),
        3
    );
    assert_eq!(
        std::fs::read_to_string(d.join("hooks")).expect("hooks"),
        "broken|1|stdin:7: etl-load: error: bad line\n"
    );
}

#[test]
fn etl_job_does_not_retry_usage_errors_or_rejects() {
    let dir = tempdir();
    let d = dir.path();
    let lock_dir = d.display().to_string();
    for exit in ["2", "3"] {
        let out = run_script(
            "etl-job",
            &[
                "--retries",
                "3",
                "--backoff",
                "0.05",
                "--lock-dir",
                &lock_dir,
                "j",
                "--",
                &format!("echo x >> runs{exit}; exit {exit}"),
            ],
            d,
        );
        assert_eq!(code(&out).to_string(), exit);
        let runs = std::fs::read_to_string(d.join(format!("runs{exit}"))).expect("runs");
        assert_eq!(runs.lines().count(), 1, "exit {exit} is not retried");
    }
}

#[test]
fn etl_job_never_overlaps_a_running_job() {
    let dir = tempdir();
    let d = dir.path();
    let lock_dir = d.display().to_string();
    let mut first = std::process::Command::new(script("etl-job"))
        .args([
            "--lock-dir",
            &lock_dir,
            "nightly",
            "--",
            "touch started; sleep 2",
        ])
        .current_dir(d)
        .spawn()
        .expect("first run");
    while !d.join("started").exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = run_script(
        "etl-job",
        &["--lock-dir", &lock_dir, "nightly", "--", "touch second"],
        d,
    );
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("job nightly is already running"),
        "{}",
        stderr(&out)
    );
    assert!(!d.join("second").exists());
    assert!(first.wait().expect("first ends").success());
    // Once it is over, the next run goes ahead.
    let out = run_script(
        "etl-job",
        &["--lock-dir", &lock_dir, "nightly", "--", "touch second"],
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(d.join("second").exists());
}

#[test]
fn etl_job_runs_a_job_whose_name_holds_a_slash_under_its_own_lock() {
    let dir = tempdir();
    let d = dir.path();
    let lock_dir = d.join("locks").display().to_string();
    let out = run_script(
        "etl-job",
        &["--lock-dir", &lock_dir, "nightly/orders", "--", "touch ran"],
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    assert!(d.join("ran").exists());
    assert!(d.join("locks/etl-job.nightly%2Forders.lock").exists());
    // While it runs, a second run of that name waits its turn; a name
    // that only looks like its escaped form does not.
    let mut first = std::process::Command::new(script("etl-job"))
        .args([
            "--lock-dir",
            &lock_dir,
            "nightly/orders",
            "--",
            "touch started; sleep 2",
        ])
        .current_dir(d)
        .spawn()
        .expect("first run");
    while !d.join("started").exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = run_script(
        "etl-job",
        &[
            "--lock-dir",
            &lock_dir,
            "nightly/orders",
            "--",
            "touch second",
        ],
        d,
    );
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).starts_with("etl-job: error: job nightly/orders is already running"),
        "{}",
        stderr(&out)
    );
    assert!(!d.join("second").exists());
    let out = run_script(
        "etl-job",
        &[
            "--lock-dir",
            &lock_dir,
            "nightly%2Forders",
            "--",
            "touch other",
        ],
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(d.join("other").exists());
    assert!(first.wait().expect("first ends").success());
    // An empty name is a usage error.
    let out = run_script("etl-job", &["--lock-dir", &lock_dir, "", "--", "true"], d);
    assert_eq!(code(&out), 2);
    assert_eq!(stderr(&out), "etl-job: error: the job's NAME is empty\n");
}

#[test]
fn etl_job_stops_an_attempt_at_its_timeout() {
    let dir = tempdir();
    let d = dir.path();
    let lock_dir = d.display().to_string();
    let out = run_script(
        "etl-job",
        &[
            "--timeout",
            "1",
            "--retries",
            "0",
            "--lock-dir",
            &lock_dir,
            "slow",
            "--",
            "sleep 30",
        ],
        d,
    );
    assert_eq!(code(&out), 124, "{}", stderr(&out));
}

#[test]
fn etl_check_says_when_a_job_is_stale_or_brought_too_few_rows() {
    let dir = tempdir();
    let d = dir.path();
    let out = run_script(
        "etl-check",
        &["wh.db", "--job", "orders", "--max-age", "1h"],
        d,
    );
    assert_eq!(code(&out), 1, "no history yet: {}", stderr(&out));

    let load = bash(
        &format!(
            "etl-extract {} | etl-load -q wh.db --table orders",
            sample("orders.csv").display()
        ),
        d,
    );
    assert_eq!(code(&load), 0, "{}", stderr(&load));
    let out = run_script(
        "etl-check",
        &[
            "wh.db",
            "--job",
            "orders",
            "--max-age",
            "1h",
            "--min-rows",
            "12",
        ],
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("wrote 12 rows"), "{}", stdout(&out));

    let out = run_script(
        "etl-check",
        &["wh.db", "--job", "orders", "--min-rows", "13"],
        d,
    );
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("fewer than 13"), "{}", stderr(&out));

    // The last good run ended three hours ago.
    let conn = rusqlite::Connection::open(d.join("wh.db")).expect("open");
    conn.execute_batch(
        "UPDATE _etl_runs SET ended_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-3 hours')",
    )
    .expect("age the run");
    drop(conn);
    let out = run_script(
        "etl-check",
        &["wh.db", "--job", "orders", "--max-age", "2h"],
        d,
    );
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("is stale"), "{}", stderr(&out));
    let out = run_script(
        "etl-check",
        &["wh.db", "--job", "orders", "--max-age", "4h"],
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    let out = run_script("etl-check", &["wh.db", "--max-age", "4h"], d);
    assert_eq!(code(&out), 2, "--job is required");
}

#[test]
fn etl_check_parses_every_age_it_accepts_and_refuses_the_rest() {
    let dir = tempdir();
    let d = dir.path();
    let load = bash(
        &format!(
            "etl-extract {} | etl-load -q wh.db --table orders",
            sample("orders.csv").display()
        ),
        d,
    );
    assert_eq!(code(&load), 0, "{}", stderr(&load));
    // The last good run ended 89 minutes (5340 s) ago.
    let conn = rusqlite::Connection::open(d.join("wh.db")).expect("open");
    conn.execute_batch(
        "UPDATE _etl_runs SET ended_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-5340 seconds')",
    )
    .expect("age the run");
    drop(conn);
    let check = |age: &str| {
        run_script(
            "etl-check",
            &["wh.db", "--job", "orders", "--max-age", age],
            d,
        )
    };
    // Each accepted form, on both sides of 5340 s (a minute's margin).
    for (age, expected) in [
        ("5400", 0),
        ("5280", 1),
        ("5400s", 0),
        ("5280s", 1),
        ("90m", 0),
        ("88m", 1),
        ("90.5m", 0),
        ("87.5m", 1),
        ("1.5h", 0),
        ("1.45h", 1),
        ("1.475h", 1),
        ("08h", 0),
        ("0.063d", 0),
        ("0.061d", 1),
        ("1d", 0),
        ("0d", 1),
        ("5399.999", 0),
    ] {
        let out = check(age);
        assert_eq!(code(&out), expected, "--max-age {age}: {}", stderr(&out));
        if expected == 1 {
            assert!(
                stderr(&out).contains("is stale: its last successful run ended 53")
                    && stderr(&out).contains(&format!("more than {age}\n")),
                "--max-age {age}: {}",
                stderr(&out)
            );
        }
    }
    // Every other form is a usage error, before anything is read.
    for age in [
        "1.5x",
        "h",
        "-1h",
        "2x",
        "",
        "1.h",
        ".5h",
        "1.2345h",
        "1 h",
        "1e3",
        "1H",
        "2h30m",
        "1234567890h",
    ] {
        let out = check(age);
        assert_eq!(code(&out), 2, "--max-age {age:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out),
            format!(
                "etl-check: error: --max-age takes seconds, or a number with s, m, h or d \
                 (90, 90m, 1.5h, 2d; up to 3 decimals), not '{age}'\n"
            )
        );
        assert_eq!(stdout(&out), "");
    }
    for rows in ["", "x", "-1", "1.5"] {
        let out = run_script(
            "etl-check",
            &["wh.db", "--job", "orders", "--min-rows", rows],
            d,
        );
        assert_eq!(code(&out), 2, "--min-rows {rows:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out),
            format!("etl-check: error: --min-rows takes a whole number of rows, not '{rows}'\n")
        );
    }
}

#[test]
fn a_producer_that_wrote_nothing_leaves_an_empty_run_that_etl_check_sees() {
    let dir = tempdir();
    let d = dir.path();
    let load = bash(
        &format!(
            "etl-extract {} | etl-load -q wh.db --table orders --job orders",
            sample("orders.csv").display()
        ),
        d,
    );
    assert_eq!(code(&load), 0, "{}", stderr(&load));
    // The producer died before writing anything: etl-load commits nothing
    // and says so, and the run history records what happened.
    let out = bash("false | etl-load wh.db --table orders --job orders", d);
    assert_eq!(code(&out), 1, "pipefail: the producer's exit");
    assert!(
        stderr(&out).starts_with(
            "etl-load: warning: stdin: input has no lines at all (did the producer fail?); \
             the run is recorded with status empty\n"
        ),
        "{}",
        stderr(&out)
    );
    let conn = rusqlite::Connection::open(d.join("wh.db")).expect("open");
    let runs: Vec<String> = conn
        .prepare(
            "SELECT job || '|' || rows_written || '|' || status FROM _etl_runs ORDER BY run_id",
        )
        .expect("runs")
        .query_map([], |r| r.get(0))
        .expect("runs")
        .collect::<Result<_, _>>()
        .expect("runs");
    drop(conn);
    assert_eq!(runs, ["orders|12|ok", "orders|0|empty"]);
    // --min-rows sees the empty run; freshness counts from the last run
    // that had an input.
    let out = run_script(
        "etl-check",
        &["wh.db", "--job", "orders", "--min-rows", "1"],
        d,
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("with an empty input (no lines at all), wrote 0 rows"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains(
            "etl-check: error: job orders's last run read an empty input and wrote 0 rows, fewer than 1"
        ),
        "{}",
        stderr(&out)
    );
    let out = run_script(
        "etl-check",
        &["wh.db", "--job", "orders", "--max-age", "1h"],
        d,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("did its producer fail?"),
        "{}",
        stderr(&out)
    );
    let conn = rusqlite::Connection::open(d.join("wh.db")).expect("open");
    conn.execute_batch(
        "UPDATE _etl_runs SET ended_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-3 hours') \
         WHERE status = 'ok'",
    )
    .expect("age the run");
    drop(conn);
    let out = run_script(
        "etl-check",
        &["wh.db", "--job", "orders", "--max-age", "2h"],
        d,
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "etl-check: error: job orders is stale: its last successful run with an input ended 108"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn etl_check_reads_a_postgres_history() {
    let Some(pg) = PgSchema::new("check") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let load = bash(
        &format!(
            "etl-extract {} | etl-load -q '{}' --schema-name {} --table orders --job nightly",
            sample("orders.csv").display(),
            pg.url,
            pg.name
        ),
        d,
    );
    assert_eq!(code(&load), 0, "{}", stderr(&load));
    let args = [
        pg.url.as_str(),
        "--schema-name",
        pg.name.as_str(),
        "--job",
        "nightly",
        "--max-age",
        "10m",
        "--min-rows",
        "12",
    ];
    let out = run_script("etl-check", &args, d);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn completions_load_in_bash_for_every_program() {
    let dir = tempdir();
    for program in ["etl-extract", "etl-transform", "etl-load", "etl-watch"] {
        let out = bash(
            &format!("source <({program} --completions bash) && complete -p {program}"),
            dir.path(),
        );
        assert_eq!(code(&out), 0, "{program}: {}", stderr(&out));
        assert!(
            stdout(&out).contains(&format!("-F _{} {program}", program.replace('-', "__"))),
            "{program}: {}",
            stdout(&out)
        );
        // The script offers the program's own flags.
        let script = bash(&format!("{program} --completions bash"), dir.path());
        assert!(stdout(&script).contains("--completions"), "{program}");
    }
    let out = bash("etl-load --completions zsh", dir.path());
    assert!(
        stdout(&out).starts_with("#compdef etl-load"),
        "{}",
        stdout(&out)
    );
}
