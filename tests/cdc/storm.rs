//! Change data capture under kills: transactions keep committing (inserts
//! of one to three rows, updates, deletes, some of them in one
//! transaction, some rolled back) while `etl-watch ... --exec 'etl-load
//! ... --mode append'` runs and is killed at seeded points, the watcher
//! alone or with its loader. At the end the appended change log holds
//! every committed change exactly once, in commit order (replayed, it is
//! the source table row for row), nothing of a rolled-back transaction,
//! and the reader's position is at or past the last change loaded.
//!
//! ETLKIT_CDC_TRANSACTIONS (default 20000) and ETLKIT_CDC_KILLS (default
//! 20) size it; ETLKIT_CRASH_SEED picks the kill points.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Binlog, Cdc};
use crate::common::*;
use crate::crash::{Rng, seed};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A table as the test keeps it: id -> (v, w).
type Rows = BTreeMap<i64, (i64, i64)>;

/// The statements of `n` transactions, each with the number of changes
/// it commits, and the table they leave.
fn transactions(n: usize, rng: &mut Rng) -> (Vec<(String, usize)>, Rows) {
    let mut live: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    let mut next_id = 1i64;
    let mut out = Vec::with_capacity(n);
    for w in 1..=n as i64 {
        let pick = |live: &BTreeMap<i64, (i64, i64)>, r: u64| -> Option<i64> {
            if live.is_empty() {
                None
            } else {
                live.keys().nth(r as usize % live.len()).copied()
            }
        };
        let kind = rng.next() % 10;
        let mut statements = Vec::new();
        let mut changes = 0;
        let mut after = live.clone();
        // Inserts (most), updates, deletes, a mix in one transaction.
        let inserts = match kind {
            0..=3 => 1 + (rng.next() % 3) as usize,
            7 => 1,
            _ => 0,
        };
        for _ in 0..inserts {
            statements.push(format!("INSERT INTO t VALUES ({next_id}, 0, {w})"));
            after.insert(next_id, (0, w));
            next_id += 1;
            changes += 1;
        }
        if matches!(kind, 4 | 5 | 7)
            && let Some(id) = pick(&after, rng.next())
        {
            let (v, _) = after[&id];
            statements.push(format!(
                "UPDATE t SET v = {}, w = {w} WHERE id = {id}",
                v + 1
            ));
            after.insert(id, (v + 1, w));
            changes += 1;
        }
        if matches!(kind, 6 | 7)
            && let Some(id) = pick(&after, rng.next())
        {
            statements.push(format!("DELETE FROM t WHERE id = {id}"));
            after.remove(&id);
            changes += 1;
        }
        if statements.is_empty() {
            continue;
        }
        // One in ten rolled back: none of it may arrive.
        if kind == 8 || rng.next().is_multiple_of(10) {
            out.push((format!("{}; ROLLBACK", statements.join("; ")), 0));
            continue;
        }
        live = after;
        out.push((format!("{}; COMMIT", statements.join("; ")), changes));
    }
    (out, live)
}

/// etl-watch in a process group of its own (so that a kill takes its
/// --exec too), its stderr in `log`.
fn spawn(dir: &Path, args: &[String], log: &str) -> Child {
    let err = std::fs::File::create(dir.join(log)).expect("log file");
    Command::new("setsid")
        .arg(bin_dir().join("etl-watch"))
        .args(args)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir().display()))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("etl-watch starts")
}

fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .status();
}

fn kill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

/// Runs the storm: `source` is etl-watch's URL and flags, `write` runs one
/// transaction's statements, `settle` the last clean run's extra check.
fn storm(
    dir: &Path,
    source: &[String],
    begin: &str,
    write: Box<dyn FnMut(&str) + Send>,
    seed: u64,
) -> BTreeMap<i64, (i64, i64)> {
    let n = setting("ETLKIT_CDC_TRANSACTIONS", 20_000);
    let kills = setting("ETLKIT_CDC_KILLS", 20);
    let mut rng = Rng(seed | 1);
    let (txs, expected) = transactions(n, &mut rng);
    let total: usize = txs.iter().map(|(_, c)| c).sum();
    let load = "sh -c 'echo $$ > loader.pid; exec etl-load -q wh.db --table log --mode append'";
    let mut args: Vec<String> = source.to_vec();
    args.extend(
        [
            "--checkpoint",
            "w.ckpt",
            "--batch-rows",
            "500",
            "--batch-interval",
            "0.2",
            "--max-retries",
            "8",
            "--exec",
            load,
        ]
        .map(String::from),
    );
    // The first run sets where reading starts (a binary log's end).
    let mut first = cmd(WATCH, dir);
    first.args(&args).arg("--once");
    let out = run(first);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let begin = begin.to_string();
    let mut write = write;
    let writer = std::thread::spawn(move || {
        for (sql, _) in &txs {
            write(&format!("{begin}; {sql}"));
        }
    });
    for round in 0..kills {
        let watcher = spawn(dir, &args, &format!("round{round}.log"));
        std::thread::sleep(Duration::from_millis(200 + rng.next() % 600));
        match rng.next() % 3 {
            // The loader alone, mid-batch if one runs: the watcher retries.
            0 => {
                if let Ok(pid) = std::fs::read_to_string(dir.join("loader.pid"))
                    && let Ok(pid) = pid.trim().parse()
                {
                    kill(pid);
                }
                std::thread::sleep(Duration::from_millis(rng.next() % 300));
                kill_group(watcher.id());
            }
            // Watcher and loader at once.
            1 => kill_group(watcher.id()),
            // The watcher alone: its loader finishes or dies on the pipe.
            _ => kill(watcher.id()),
        }
        let mut watcher = watcher;
        let _ = watcher.wait();
    }
    writer.join().expect("the writer");
    // The kills fell amid work: batches were loaded between them.
    assert!(
        count(&dir.join("wh.db"), "log").unwrap_or(0) > 0,
        "no batch was loaded before the clean run"
    );
    // A clean run to the end (a few, should one meet a loader still
    // finishing).
    let mut once = args.clone();
    once.push("--once".into());
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let mut c = cmd(WATCH, dir);
        c.args(&once);
        let out = run(c);
        if code(&out) == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the clean run fails: {}",
            stderr(&out)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The change log: every committed change once, none rolled back.
    let log = extract_records(
        dir,
        &[
            "wh.db",
            "--query",
            "SELECT id, v, w, _op, _position FROM log ORDER BY rowid",
        ],
    );
    let mut seen = std::collections::HashSet::new();
    for r in &log {
        let key = format!("{}|{}|{}|{}", r["_position"], r["id"], r["_op"], r["w"]);
        assert!(seen.insert(key.clone()), "a change was loaded twice: {key}");
    }
    assert_eq!(log.len(), total, "changes loaded (each once)");
    // Replayed in order, the log is the table.
    let mut replayed: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for r in &log {
        let id = r["id"].as_i64().expect("an id");
        if r["_op"] == "delete" {
            replayed.remove(&id);
        } else {
            replayed.insert(
                id,
                (r["v"].as_i64().unwrap_or(-1), r["w"].as_i64().unwrap_or(-1)),
            );
        }
    }
    assert!(
        replayed == expected,
        "the replayed log differs from the table"
    );
    // Nothing more to hand on.
    let mut again = args.clone();
    again.push("--once".into());
    let pos = again.iter().position(|a| a == "--exec").expect("--exec") + 1;
    again[pos] = "cat >> again.ndjson".into();
    let mut c = cmd(WATCH, dir);
    c.args(&again);
    let out = run(c);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        !dir.join("again.ndjson").exists(),
        "a run after the end handed on a batch"
    );
    expected
}

/// The last `_position` in the change log.
fn last_position(dir: &Path) -> String {
    let last = extract_records(
        dir,
        &[
            "wh.db",
            "--query",
            "SELECT _position FROM log ORDER BY rowid DESC LIMIT 1",
        ],
    );
    last[0]["_position"]
        .as_str()
        .expect("a position")
        .to_string()
}

fn lsn(text: &str) -> u64 {
    let (a, b) = text.split_once('/').expect("an LSN");
    (u64::from_str_radix(a, 16).expect("hex") << 32) | u64::from_str_radix(b, 16).expect("hex")
}

#[test]
fn a_postgres_slot_under_kills_hands_on_every_committed_change_once() {
    let Some(cdc) = Cdc::new("storm", "CREATE TABLE t (id int PRIMARY KEY, v int, w int)") else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let out = cdc.watch(d, &["--table", &cdc.table("t"), "--create-slot", "--once"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mut client = cdc.client();
    let schema = cdc.name.clone();
    let write = Box::new(move |sql: &str| {
        client
            .batch_execute(&format!("SET search_path = {schema}; {sql}"))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    });
    let source: Vec<String> = [&cdc.url, "--slot", &cdc.name, "--publication", &cdc.name]
        .map(String::from)
        .to_vec();
    storm(d, &source, "BEGIN", write, seed() ^ 0x7067);
    let confirmed = cdc.confirmed();
    assert!(
        lsn(&confirmed) >= lsn(&last_position(d)),
        "the slot ({confirmed}) is behind the last change loaded"
    );
}

#[test]
fn a_binlog_under_kills_hands_on_every_committed_change_once() {
    let Some(b) = Binlog::new("storm", "id int PRIMARY KEY, v int, w int") else {
        return;
    };
    // The statements name the table t.
    b.sql(&format!("DROP TABLE IF EXISTS t_{0}; ", b.table).replace("; ", ""));
    let dir = tempdir();
    let d = dir.path();
    let out = b.watch(d, &["--once"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let opts = mysql::Opts::from_url(&b.url).expect("a MySQL URL");
    let mut conn = mysql::Conn::new(opts).expect("connect");
    let table = b.table.clone();
    let write = Box::new(move |sql: &str| {
        let sql = sql.replace(" t ", &format!(" {table} "));
        mysql::prelude::Queryable::query_drop(&mut conn, &sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    });
    let source: Vec<String> = [&b.url, "--table", &b.table].map(String::from).to_vec();
    storm(d, &source, "START TRANSACTION", write, seed() ^ 0x6d79);
    let checkpoint: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("w.ckpt")).expect("checkpoint"))
            .expect("JSON");
    let at = checkpoint["state"]["position"]
        .as_str()
        .expect("a position")
        .to_string();
    let last = last_position(d);
    let order = |p: &str| {
        let (file, pos) = p.rsplit_once(':').expect("FILE:OFFSET");
        (file.to_string(), pos.parse::<u64>().expect("an offset"))
    };
    assert!(
        order(&at) >= order(&last),
        "the checkpoint ({at}) is behind the last change loaded ({last})"
    );
}

/// scripts/cdc-table.sh: `start` (position, full copy, catch up) while
/// transactions keep committing, then `follow`: the target is the source
/// table row for row, nothing written during the copy lost or doubled.
fn copy_then_follow(
    dir: &Path,
    url: &str,
    table: &str,
    begin: &str,
    write: Box<dyn FnMut(&str) + Send>,
    source_rows: &dyn Fn() -> Rows,
) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cdc-table.sh");
    let mut rng = Rng(seed() | 3);
    // Rows before the copy, then changes during it.
    let (mut before, _) = transactions(20_300, &mut rng);
    let during = before.split_off(300);
    let mut write = write;
    for (sql, _) in &before {
        write(&format!("{begin}; {sql}"));
    }
    // The writer goes on until the copy and its catching up are done.
    let begin = begin.to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut written = 0;
        for (sql, _) in &during {
            if stopped.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            write(&format!("{begin}; {sql}"));
            written += 1;
        }
        (written, during.len())
    });
    let run_step = |step: &str| {
        let out = bash(
            &format!("{} {step} '{url}' {table} wh.db id", script.display()),
            dir,
        );
        assert_eq!(code(&out), 0, "cdc-table.sh {step}: {}", stderr(&out));
    };
    run_step("start");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (written, planned) = writer.join().expect("the writer");
    assert!(
        written > 0 && written < planned,
        "the writer was not writing all through the copy ({written} of {planned})"
    );
    run_step("follow");
    let into = table.rsplit('.').next().expect("a table");
    let target = extract_records(
        dir,
        &[
            "wh.db",
            "--query",
            &format!("SELECT id, v, w FROM {into} ORDER BY id"),
        ],
    );
    let target: Rows = target
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_i64().unwrap_or(-1);
            (n("id"), (n("v"), n("w")))
        })
        .collect();
    let source = source_rows();
    assert_eq!(
        target.len(),
        source.len(),
        "rows in the target and the source"
    );
    assert!(target == source, "the target differs from the source");
}

#[test]
fn postgres_copy_then_changes_lose_and_double_nothing() {
    let Some(cdc) = Cdc::new("copy", "CREATE TABLE t (id int PRIMARY KEY, v int, w int)") else {
        return;
    };
    let dir = tempdir();
    let mut client = cdc.client();
    let schema = cdc.name.clone();
    let write = Box::new(move |sql: &str| {
        client
            .batch_execute(&format!("SET search_path = {schema}; {sql}"))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    });
    let rows = || -> Rows {
        cdc.client()
            .query(&format!("SELECT id, v, w FROM {}.t", cdc.name), &[])
            .expect("rows")
            .iter()
            .map(|r| {
                let (id, v, w): (i32, i32, i32) = (r.get(0), r.get(1), r.get(2));
                (i64::from(id), (i64::from(v), i64::from(w)))
            })
            .collect()
    };
    // The script names the slot and the publication after the table.
    let slot = format!("etl_{}_t", cdc.name);
    copy_then_follow(dir.path(), &cdc.url, &cdc.table("t"), "BEGIN", write, &rows);
    let mut c = cdc.client();
    let _ = c.execute("SELECT pg_drop_replication_slot($1)", &[&slot]);
    let _ = c.batch_execute(&format!("DROP PUBLICATION IF EXISTS {slot}"));
}

#[test]
fn mysql_copy_then_changes_lose_and_double_nothing() {
    let Some(b) = Binlog::new("copy", "id int PRIMARY KEY, v int, w int") else {
        return;
    };
    let dir = tempdir();
    let opts = mysql::Opts::from_url(&b.url).expect("a MySQL URL");
    let mut conn = mysql::Conn::new(opts.clone()).expect("connect");
    let table = b.table.clone();
    let write = Box::new(move |sql: &str| {
        let sql = sql.replace(" t ", &format!(" {table} "));
        mysql::prelude::Queryable::query_drop(&mut conn, &sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    });
    let rows = || -> Rows {
        let mut c = mysql::Conn::new(opts.clone()).expect("connect");
        let got: Vec<(i64, i64, i64)> =
            mysql::prelude::Queryable::query(&mut c, format!("SELECT id, v, w FROM {}", b.table))
                .expect("rows");
        got.into_iter().map(|(id, v, w)| (id, (v, w))).collect()
    };
    copy_then_follow(
        dir.path(),
        &b.url,
        &b.table,
        "START TRANSACTION",
        write,
        &rows,
    );
}
