//! HTTP JSON APIs as a source: real requests to a real server on
//! 127.0.0.1 (tests/common/http.rs), through etl-extract and etl-load.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::http::{Api, Reply, Server, order, stamp};
use crate::common::*;

/// The API token of these tests: it must show up nowhere.
const TOKEN: &str = "tok_9f8e7d6c5b4a3921_secret";

/// Runs a bash script (pipefail) in `dir` with the binaries on PATH and
/// API_TOKEN set, as a cron job would.
fn sh(script: &str, dir: &Path) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!("set -o pipefail\n{script}"))
        .env_clear()
        .env(
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin", bin_dir().display()),
        )
        .env("API_TOKEN", TOKEN)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("bash runs")
}

/// Runs etl-extract with API_TOKEN set.
fn extract(dir: &Path, args: &[&str]) -> Output {
    let mut c = cmd(EXTRACT, dir);
    c.env("API_TOKEN", TOKEN).args(args);
    run(c)
}

fn ids(records: &[Value]) -> Vec<i64> {
    records
        .iter()
        .map(|r| r["id"].as_i64().expect("id"))
        .collect()
}

fn last_line(text: &str) -> Value {
    serde_json::from_str(text.lines().last().expect("a line")).expect("JSON")
}

fn sqlite_i64(db: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("open");
    conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

/// Every value of every table of a SQLite file, as text.
fn whole_db(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).expect("open");
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .expect("tables")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("names");
    tables
        .iter()
        .map(|t| dump(db, t).join("\n"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The crontab line shown in the README, checked to be the one in
/// `etl-extract --help` (and so in the man page).
fn cron_line() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README");
    let line = readme
        .lines()
        .find(|l| l.starts_with("*/15") && l.contains("https://api.example.com"))
        .expect("README shows a cron line for an API")
        .to_string();
    let help = stdout(&run({
        let mut c = cmd(EXTRACT, Path::new("/"));
        c.env("COLUMNS", "1000").arg("--help");
        c
    }));
    assert!(
        help.lines().any(|l| l.trim() == line),
        "etl-extract --help shows the README's cron line:\n{line}"
    );
    line
}

#[test]
fn the_cron_job_loads_every_record_once_through_a_500_and_a_429() {
    let api = Api::orders(2500, Some(TOKEN));
    api.fault(3, Reply::status(500, "<html>oops</html>"));
    api.fault(
        5,
        Reply::status(429, r#"{"error":"slow down"}"#).with_header("Retry-After", "1"),
    );
    let dir = tempdir();
    let d = dir.path();
    write(
        d,
        "api.env",
        format!("export API_TOKEN={TOKEN}\n").as_bytes(),
    );
    let line = cron_line();
    let mut command = line.as_str();
    for _ in 0..5 {
        let field_end = command
            .trim_start()
            .find(' ')
            .expect("five schedule fields");
        command = &command.trim_start()[field_end..];
    }
    // The token comes from api.env, as in the crontab.
    let command = "unset API_TOKEN; ".to_string()
        + &command
            .trim_start()
            .replace("/srv/etl", &d.display().to_string())
            .replace("https://api.example.com", &api.server.base());
    let db = d.join("wh.db");
    let rows_of_last_run =
        || sqlite_i64(&db, "SELECT rows FROM _etl_state WHERE stream = 'orders'");

    let out = sh(&command, d);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(count(&db, "orders"), Some(2500));
    assert_eq!(
        sqlite_i64(&db, "SELECT count(DISTINCT id) FROM orders"),
        2500
    );
    assert_eq!(rows_of_last_run(), 2500);
    let seen = api.server.requests();
    // 25 pages, page 3 and page 5 asked for twice.
    assert_eq!(
        seen.len(),
        27,
        "{:?}",
        seen.iter().map(|r| &r.target).collect::<Vec<_>>()
    );
    assert!(seen.iter().all(|r| r.param("updated_since").is_none()));
    let page5: Vec<&Instant> = seen
        .iter()
        .filter(|r| r.param("offset") == Some("400"))
        .map(|r| &r.at)
        .collect();
    assert_eq!(page5.len(), 2);
    assert!(
        page5[1].duration_since(*page5[0]) >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    // -q: the retries stay quiet, and so does everything else.
    assert_eq!(stderr(&out), "");

    // A rerun sends the bookmark and loads nothing.
    let out = sh(&command, d);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let rerun = &api.server.requests()[27..];
    assert_eq!(rerun.len(), 1);
    assert_eq!(rerun[0].param("updated_since"), Some(stamp(2499).as_str()));
    assert_eq!(count(&db, "orders"), Some(2500));
    assert_eq!(rows_of_last_run(), 0);

    // Three new records: the next run loads exactly those.
    api.with(|s| s.records.extend((2500..2503).map(order)));
    let out = sh(&command, d);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(count(&db, "orders"), Some(2503));
    assert_eq!(rows_of_last_run(), 3);
    assert_eq!(
        sqlite_i64(&db, "SELECT max(id) FROM orders"),
        2503,
        "the new records landed"
    );
    assert!(!whole_db(&db).contains(TOKEN));
}

#[test]
fn every_pagination_style_reads_every_record_in_order() {
    let api = Api::orders(250, None);
    let styles: [&[&str]; 6] = [
        &[],
        &["--next", "next"],
        &["--next", "/next"],
        &[
            "--cursor-param",
            "cursor",
            "--cursor-path",
            "meta.next_cursor",
        ],
        &[
            "--offset-param",
            "offset",
            "--limit-param",
            "limit",
            "--page-size",
            "40",
        ],
        &[
            "--page-param",
            "page",
            "--limit-param",
            "limit",
            "--page-size",
            "40",
        ],
    ];
    let dir = tempdir();
    for flags in styles {
        let mut args = vec![api.url()];
        args.extend(flags.iter().map(|s| s.to_string()));
        args.push("-q".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = extract(dir.path(), &args);
        assert_eq!(code(&out), 0, "{flags:?}: {}", stderr(&out));
        let text = stdout(&out);
        let records = records(&text);
        assert_eq!(ids(&records), (1..=250).collect::<Vec<_>>(), "{flags:?}");
        assert_eq!(records[3], order(3), "values kept exactly: {flags:?}");
        assert_eq!(
            last_line(&text),
            json!({"@etl": "end", "stream": "orders", "rows": 250})
        );
    }
    let first = serde_json::from_str::<Value>(
        stdout(&extract(dir.path(), &[&api.url(), "-q"]))
            .lines()
            .next()
            .expect("begin"),
    )
    .expect("JSON");
    assert_eq!(first["source"], api.url());
    // Page size 40 means 7 pages, the last one empty, for offsets and page numbers.
    let asked: Vec<String> = api
        .server
        .requests()
        .iter()
        .filter(|r| r.param("page").is_some())
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(asked.len(), 8, "{asked:?}");
    assert_eq!(asked[0], "/v1/orders?limit=40&page=1");
}

#[test]
fn pagination_that_does_not_advance_fails_and_commits_nothing() {
    let dir = tempdir();
    let d = dir.path();
    let db = d.join("wh.db");
    for (flags, repeat_cursor, ignore_position) in [
        (
            "--cursor-param cursor --cursor-path meta.next_cursor",
            true,
            false,
        ),
        ("--next next", true, false),
        ("--offset-param offset", false, true),
        ("--page-param page", false, true),
    ] {
        let api = Api::orders(350, Some(TOKEN));
        api.with(|s| {
            s.repeat_cursor = repeat_cursor;
            s.ignore_position = ignore_position;
        });
        let out = sh(
            &format!(
                "etl-extract {} {flags} -H 'Authorization: Bearer $API_TOKEN' \
                 --cursor updated_at --state wh.db | etl-load wh.db --table orders",
                api.url()
            ),
            d,
        );
        assert_eq!(code(&out), 1, "{flags}");
        let err = stderr(&out);
        assert!(
            err.contains("etl-extract: error: ") && err.contains("pagination did not advance"),
            "{flags}: {err}"
        );
        assert!(err.contains("upstream ended early"), "{flags}: {err}");
        assert_eq!(count(&db, "orders"), None, "{flags}: nothing committed");
        assert_eq!(count(&db, "_etl_state"), None, "{flags}: no bookmark");
        assert!(api.server.requests().len() <= 3, "{flags}: stopped at once");
    }
}

#[test]
fn a_page_repeating_earlier_records_under_a_new_url_fails_and_commits_nothing() {
    let dir = tempdir();
    let d = dir.path();
    let db = d.join("wh.db");
    // Link headers: page 6 holds page 5's records; page numbers: page 7
    // holds page 5's. Each URL is new, so only the records show it.
    for (flags, repeated, first, expected) in [
        ("", 6, 5, "page 6 holds the same records as page 5"),
        (
            "--page-param page",
            7,
            5,
            "page 7 holds the same records as page 5 (does the API read the \"page\" parameter?)",
        ),
    ] {
        let api = Api::orders(2500, Some(TOKEN));
        api.with(|s| {
            s.repeat_pages.insert(repeated, first);
        });
        let out = sh(
            &format!(
                "etl-extract {} {flags} -H 'Authorization: Bearer $API_TOKEN' \
                 --cursor updated_at --state wh.db | tee wire.ndjson \
                 | etl-load wh.db --table orders",
                api.url()
            ),
            d,
        );
        assert_eq!(code(&out), 1, "{flags}: {}", stderr(&out));
        let err = stderr(&out);
        let url = match flags {
            "" => format!("{}?limit=100&offset={}", api.url(), (repeated - 1) * 100),
            _ => format!("{}?page={repeated}", api.url()),
        };
        assert!(
            err.starts_with(&format!(
                "etl-extract: error: {url}: pagination did not advance: {expected}\n"
            )),
            "{flags}: {err}"
        );
        let wire = std::fs::read_to_string(d.join("wire.ndjson")).expect("wire");
        assert!(!wire.contains(r#""@etl":"end""#), "{flags}: no end line");
        assert_eq!(
            records(&wire).len(),
            (repeated as usize - 1) * 100,
            "{flags}: no record of the repeated page was written"
        );
        assert_eq!(count(&db, "orders"), None, "{flags}: nothing committed");
        assert_eq!(api.server.requests().len() as u64, repeated, "{flags}");
    }
}

#[test]
fn params_are_sent_on_every_request_when_following_links() {
    let dir = tempdir();
    let api = Api::orders(250, None);
    for flags in [&[][..], &["--next", "next"][..]] {
        let mut args = vec![
            api.url(),
            "--param".into(),
            "status=open".into(),
            "-q".into(),
        ];
        args.extend(flags.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = extract(dir.path(), &args);
        assert_eq!(code(&out), 0, "{flags:?}: {}", stderr(&out));
        assert_eq!(ids(&records(&stdout(&out))), (1..=250).collect::<Vec<_>>());
    }
    let requests = api.server.requests();
    assert_eq!(requests.len(), 6);
    for request in requests {
        assert_eq!(request.param("status"), Some("open"), "{}", request.target);
    }
}

#[test]
fn a_page_over_max_page_bytes_fails_the_run() {
    let dir = tempdir();
    let api = Api::orders(250, None);
    // A page of 100 orders is about 14 KB.
    let out = extract(dir.path(), &[&api.url(), "--max-page-bytes", "8K"]);
    assert_eq!(code(&out), 1);
    assert_eq!(
        stderr(&out),
        format!(
            "etl-extract: error: page 1 ({}): the page is larger than 8K (--max-page-bytes); \
             ask the API for smaller pages (--page-size) or raise --max-page-bytes\n",
            api.url()
        )
    );
    assert!(!stdout(&out).contains(r#""@etl":"end""#));
    let out = extract(dir.path(), &[&api.url(), "--max-page-bytes", "64K", "-q"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = extract(dir.path(), &[&api.url(), "--max-page-bytes", "0"]);
    assert_eq!(code(&out), 2);
}

#[test]
fn a_server_that_dies_or_sends_no_json_mid_way_cuts_the_stream() {
    let dir = tempdir();
    let d = dir.path();
    let api = Api::orders(500, None);
    api.fault(3, Reply::Die);
    let out = extract(d, &[&api.url(), "--next", "next", "--retries", "1", "-q"]);
    assert_eq!(code(&out), 1);
    let text = stdout(&out);
    assert!(text.starts_with(r#"{"@etl":"begin""#));
    assert_eq!(records(&text).len(), 200);
    assert!(!text.contains(r#""@etl":"end""#), "no end line");
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "etl-extract: error: page 3 ({}?limit=100&offset=200): connection failed",
            api.url()
        )) && err.contains("gave up after 2 attempts"),
        "{err}"
    );

    let api = Api::orders(500, None);
    api.fault(
        2,
        Reply::Send(
            200,
            Vec::new(),
            b"<html><body>Maintenance</body></html>".to_vec(),
        ),
    );
    let out = sh(
        &format!(
            "etl-extract {} --next next | etl-load wh.db --table orders",
            api.url()
        ),
        d,
    );
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(
        err.contains("page 2 (")
            && err.contains("the response is not JSON")
            && err.contains("<html><body>Maintenance</body></html>"),
        "{err}"
    );
    assert!(err.contains("upstream ended early after 100 rows"), "{err}");
    assert_eq!(count(&d.join("wh.db"), "orders"), None);
}

#[test]
fn a_page_cut_off_mid_body_is_fetched_again_and_nothing_repeats() {
    let dir = tempdir();
    let api = Api::orders(300, None);
    let page_two = serde_json::to_vec(&json!({"data": [order(100), order(101)]})).expect("json");
    api.fault(2, Reply::Cut(page_two[..page_two.len() / 2].to_vec()));
    let out = extract(dir.path(), &[&api.url(), "--next", "next"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(ids(&records(&stdout(&out))), (1..=300).collect::<Vec<_>>());
    let err = stderr(&out);
    assert!(
        err.starts_with("etl-extract: warning: page 2: connection failed: ")
            && err.contains("; retry 1 of 5 in 1."),
        "{err}"
    );
}

#[test]
fn a_body_that_links_to_more_pages_is_not_read_as_one_page() {
    let dir = tempdir();
    let server = Server::start(|r| {
        Reply::json(&match r.param("cursor") {
            None => json!({"items": [{"id": 1}], "paging": {"nextPageToken": "p2"}}),
            Some(_) => json!({"items": [{"id": 2}], "paging": {"nextPageToken": null}}),
        })
    });
    let out = extract(dir.path(), &[&server.url("/v2/items")]);
    assert_eq!(code(&out), 1);
    assert!(!stdout(&out).contains(r#""@etl":"end""#));
    assert_eq!(
        stderr(&out),
        format!(
            "etl-extract: error: {}: page 1: the response has a next page (paging.nextPageToken \
             is \"p2\") but no pagination was chosen and no Link header came: follow it with \
             --cursor-param NAME --cursor-path paging.nextPageToken; without that only this page \
             would be read\n",
            server.url("/v2/items")
        )
    );
    let out = extract(
        dir.path(),
        &[
            &server.url("/v2/items"),
            "--cursor-param",
            "cursor",
            "--cursor-path",
            "paging.nextPageToken",
            "-q",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(ids(&records(&stdout(&out))), [1, 2]);
}

#[test]
fn the_token_shows_in_no_output_message_rejects_file_or_row() {
    let dir = tempdir();
    let d = dir.path();
    let api = Api::orders(150, Some(TOKEN));
    api.with(|s| {
        s.records.insert(5, json!(42));
        s.records.insert(7, json!({"id": 9999, "updated_at": null}));
    });
    let out = sh(
        &format!(
            "etl-extract {} -H 'Authorization: Bearer $API_TOKEN' --param 'api_key=${{API_TOKEN}}' \
             --cursor updated_at --state wh.db --rejects bad.ndjson -v --log-json \
             | tee wire.ndjson | etl-load wh.db --table orders --log-json",
            api.url()
        ),
        d,
    );
    // Two records were rejected by etl-extract: the pipeline says so.
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let wire = std::fs::read_to_string(d.join("wire.ndjson")).expect("wire");
    let rejects = std::fs::read_to_string(d.join("bad.ndjson")).expect("rejects");
    let err = stderr(&out);
    for (what, text) in [
        ("wire", wire.as_str()),
        ("rejects", &rejects),
        ("stderr", &err),
        ("database", &whole_db(&d.join("wh.db"))),
    ] {
        assert!(!text.contains(TOKEN), "the token is in the {what}:\n{text}");
    }
    // The masked URL shows where things went wrong.
    let masked = format!("{}?api_key=***", api.url());
    assert!(
        wire.lines().next().expect("begin").contains(&masked),
        "{wire}"
    );
    assert!(err.contains(&format!("GET {masked}")), "{err}");
    let rejected: Vec<Value> = json_lines(&rejects);
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["input"], masked.as_str());
    assert_eq!(rejected[0]["line"], 6);
    assert_eq!(rejected[0]["raw"], "42");
    assert_eq!(
        rejected[1]["reason"],
        "cursor column \"updated_at\" is null or missing"
    );
    assert_eq!(count(&d.join("wh.db"), "orders"), Some(150));

    // A failure names the page, masked, in the message and the run record.
    api.with(|s| {
        s.records
            .retain(|r| r.get("updated_at").is_some_and(|t| !t.is_null()))
    });
    api.fault(2, Reply::status(404, r#"{"error":"gone"}"#));
    let out = sh(
        &format!(
            "etl-extract {} --next next -H 'X-Api-Key: $API_TOKEN' \
             -H 'Authorization: Bearer $API_TOKEN' --param 'api_key=$API_TOKEN' --log-json",
            api.url()
        ),
        d,
    );
    assert_eq!(code(&out), 1);
    let record = last_line(&stderr(&out));
    assert_eq!(record["status"], "error");
    let error = record["error"].as_str().expect("error");
    assert!(
        error.starts_with("page 2 (")
            && error.ends_with(r#"): HTTP 404 Not Found: {"error":"gone"}"#),
        "{error}"
    );
    assert!(!stderr(&out).contains(TOKEN) && !stdout(&out).contains(TOKEN));
}

#[test]
fn a_token_echoed_by_the_api_is_masked_in_the_rejects_file_and_messages() {
    let dir = tempdir();
    let d = dir.path();
    let api = Api::orders(150, Some(TOKEN));
    api.with(|s| {
        // The API echoes the caller's credentials in records it returns.
        s.records.insert(
            3,
            json!({"id": 9998, "updated_at": null, "echo": format!("Bearer {TOKEN}")}),
        );
        s.records.insert(5, json!(format!("token={TOKEN}")));
        s.records.insert(
            7,
            json!({"id": 9999, "updated_at": null, TOKEN: [{"auth": TOKEN}]}),
        );
    });
    let out = sh(
        &format!(
            "etl-extract {} -H 'Authorization: Bearer $API_TOKEN' --cursor updated_at \
             --rejects bad.ndjson -v --log-json > wire.ndjson",
            api.url()
        ),
        d,
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let rejects = std::fs::read_to_string(d.join("bad.ndjson")).expect("rejects");
    assert!(!rejects.contains(TOKEN), "{rejects}");
    assert!(!stderr(&out).contains(TOKEN), "{}", stderr(&out));
    let rejected: Vec<Value> = json_lines(&rejects);
    assert_eq!(rejected.len(), 3, "{rejects}");
    let raw = |i: usize| -> Value {
        serde_json::from_str(rejected[i]["raw"].as_str().expect("raw")).expect("JSON")
    };
    // The whole header value is the secret: "Bearer <token>" goes at once.
    assert_eq!(raw(0)["echo"], "***");
    assert_eq!(
        rejected[0]["reason"],
        "cursor column \"updated_at\" is null or missing"
    );
    assert_eq!(rejected[1]["raw"], "\"token=***\"");
    assert_eq!(raw(2)["***"], json!([{"auth": "***"}]));
    // The data itself is the data: records pass as the API sent them.
    let wire = std::fs::read_to_string(d.join("wire.ndjson")).expect("wire");
    assert_eq!(records(&wire).len(), 150);

    // Without a rejects file the first such record fails the run: masked too.
    let out = sh(
        &format!(
            "etl-extract {} -H 'Authorization: Bearer $API_TOKEN' --cursor updated_at --log-json",
            api.url()
        ),
        d,
    );
    assert_eq!(code(&out), 1);
    assert!(!stderr(&out).contains(TOKEN), "{}", stderr(&out));
}

#[test]
fn credentials_written_in_the_url_query_are_masked_in_errors_and_log_json() {
    let dir = tempdir();
    let d = dir.path();
    let api = Api::orders(250, None);
    let credentials = [
        ("sig", "AzureSasSig0123"),
        ("X-Amz-Credential", "AKIAEXAMPLE0123%2F20261105"),
        ("X-Amz-Signature", "f00dfeedbeef0123"),
        ("X-Amz-Security-Token", "FwoGZXIvYXdzEXAMPLE"),
        ("jwt", "eyJhbGciOi.eyJzdWIi.c2lnbmF0"),
        ("pwd", "hunter2-pwd"),
        ("password", "hunter3-password"),
        ("token", "plain-token-0123"),
        ("access_token", "oauth-access-0123"),
        ("api_key", "key-0123456789"),
        ("code", "oauth-code-0123"),
    ];
    let query: Vec<String> = credentials
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    let url = format!("{}?status=open&{}", api.url(), query.join("&"));
    let masked: Vec<String> = credentials
        .iter()
        .map(|(n, _)| format!("{n}=***"))
        .collect();
    let shown = format!("{}?status=open&{}", api.url(), masked.join("&"));
    for log_json in [false, true] {
        api.fault(2, Reply::status(404, r#"{"error":"gone"}"#));
        let mut args = vec![url.as_str(), "--page-param", "page", "-v"];
        if log_json {
            args.push("--log-json");
        }
        let out = extract(d, &args);
        assert_eq!(code(&out), 1, "{}", stderr(&out));
        let all = format!("{}{}", stdout(&out), stderr(&out));
        for (name, value) in credentials {
            let decoded = value.replace("%2F", "/");
            assert!(
                !all.contains(value) && !all.contains(&decoded),
                "the {name} value shows:\n{all}"
            );
        }
        let begin = serde_json::from_str::<Value>(stdout(&out).lines().next().expect("begin"))
            .expect("JSON");
        assert_eq!(begin["source"], shown.as_str());
        let error = format!("page 2 ({shown}&page=2): HTTP 404 Not Found: {{\"error\":\"gone\"}}");
        if log_json {
            assert_eq!(last_line(&stderr(&out))["error"], error.as_str());
        } else {
            assert!(
                stderr(&out).contains(&format!("GET {shown}&page=1\n"))
                    && stderr(&out).ends_with(&format!("etl-extract: error: {error}\n")),
                "{}",
                stderr(&out)
            );
        }
    }
}

#[test]
fn retries_honour_retry_after_and_give_up_in_the_end() {
    let dir = tempdir();
    let api = Api::orders(10, None);
    for _ in 0..2 {
        api.fault(
            1,
            Reply::status(503, "busy").with_header("Retry-After", "1"),
        );
    }
    let started = Instant::now();
    let out = extract(dir.path(), &[&api.url(), "--retries", "1"]);
    assert_eq!(code(&out), 1);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(
        stderr(&out),
        format!(
            "etl-extract: warning: page 1: HTTP 503 Service Unavailable; retry 1 of 1 in 1.0 s\n\
             etl-extract: error: page 1 ({}): HTTP 503 Service Unavailable; gave up after 2 attempts\n",
            api.url()
        )
    );
    // The third time the page is there.
    let out = extract(dir.path(), &[&api.url(), "-q"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(records(&stdout(&out)).len(), 10);
}

#[test]
fn timeouts_page_limits_and_client_errors_end_the_run() {
    let dir = tempdir();
    let d = dir.path();
    let api = Api::orders(250, Some(TOKEN));
    api.fault(
        1,
        Reply::Slow(Duration::from_secs(3), Box::new(Reply::status(500, "late"))),
    );
    let auth = ["-H", "Authorization: Bearer $API_TOKEN"];
    let started = Instant::now();
    let out = extract(
        d,
        &[
            &[api.url().as_str(), "--timeout", "0.5", "--retries", "0"][..],
            &auth,
        ]
        .concat(),
    );
    assert_eq!(code(&out), 1);
    assert!(started.elapsed() < Duration::from_millis(2500));
    assert_eq!(
        stderr(&out),
        format!(
            "etl-extract: error: page 1 ({}): the request timed out (--timeout); \
             gave up after 1 attempt\n",
            api.url()
        )
    );

    let out = extract(
        d,
        &[&[api.url().as_str(), "--max-pages", "2"][..], &auth].concat(),
    );
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("error: more than 2 pages (--max-pages); the next one is"),
        "{}",
        stderr(&out)
    );
    assert!(!stdout(&out).contains(r#""@etl":"end""#));

    let before = api.server.requests().len();
    let out = extract(
        d,
        &[
            &api.server.url("/v1/nothing"),
            "-H",
            "Authorization: Bearer x",
        ],
    );
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains(r#"HTTP 404 Not Found: {"error":"no such resource"}"#));
    let out = extract(d, &[&api.url(), "-H", "Authorization: Bearer wrong-one"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("HTTP 401 Unauthorized (check the credentials in --header)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        api.server.requests().len(),
        before + 2,
        "4xx is not retried"
    );
}

#[test]
fn redirects_are_followed_on_the_same_server_only() {
    let dir = tempdir();
    let target = Server::start(|_| Reply::json(&json!([{"id": 1}])));
    let other = target.base().replace("127.0.0.1", "localhost");
    let server = Server::start(move |r| match r.path.as_str() {
        "/old" => Reply::status(301, "").with_header("Location", "/new"),
        "/away" => Reply::status(302, "").with_header("Location", &format!("{other}/x")),
        _ => Reply::json(&json!([{"id": 2}])),
    });
    let out = extract(dir.path(), &[&server.url("/old"), "-q"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(ids(&records(&stdout(&out))), [2]);
    let out = extract(
        dir.path(),
        &[&server.url("/away"), "-H", "X-Api-Key: $API_TOKEN"],
    );
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("redirects to another server"),
        "{}",
        stderr(&out)
    );
    assert!(target.requests().is_empty(), "no header went elsewhere");
}

#[test]
fn flags_are_checked_before_any_request() {
    let dir = tempdir();
    let d = dir.path();
    let server = Server::start(|_| Reply::json(&json!([])));
    let cases: [(&[&str], &str); 5] = [
        (
            &["-H", "Authorization: Bearer $NOT_SET"],
            "etl-extract: error: --header Authorization: environment variable NOT_SET is not set\n",
        ),
        (
            &["--table", "orders"],
            "etl-extract: error: --table does not apply to an http:// or https:// INPUT\n",
        ),
        (
            &["-H", "no colon here"],
            "etl-extract: error: --header \"no colon here\" is not of the form 'Name: value'\n",
        ),
        (
            &["--max-pages", "0"],
            "etl-extract: error: --max-pages must be at least 1\n",
        ),
        (
            &["--records", "a..b"],
            "etl-extract: error: --records: path \"a..b\" has an empty step; write a field with \
             dots in its name as a JSON pointer (/a.b/c)\n",
        ),
    ];
    for (flags, expected) in cases {
        let out = extract(d, &[&[server.url("/x").as_str()][..], flags].concat());
        assert_eq!(code(&out), 2, "{flags:?}");
        assert_eq!(stderr(&out), expected);
    }
    let out = extract(d, &["orders.csv", "--next", "next"]);
    assert_eq!(code(&out), 2);
    assert_eq!(
        stderr(&out),
        "etl-extract: error: --next applies to an http:// or https:// INPUT\n"
    );
    assert!(server.requests().is_empty());
}

/// Tools for the HTTPS test; `None` (skipped loudly) when missing, unless
/// ETLKIT_REQUIRE_HTTPS is set, as in CI.
fn https_tools() -> Option<()> {
    let ok = |tool: &str| {
        Command::new(tool)
            // openssl knows no --version, only the version command.
            .arg(if tool == "openssl" {
                "version"
            } else {
                "--version"
            })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let missing: Vec<&str> = ["openssl", "python3"]
        .into_iter()
        .filter(|t| !ok(t))
        .collect();
    if missing.is_empty() {
        return Some(());
    }
    if std::env::var_os("ETLKIT_REQUIRE_HTTPS").is_some() {
        panic!("the HTTPS test needs {missing:?} (ETLKIT_REQUIRE_HTTPS is set)");
    }
    eprintln!("SKIPPED: HTTPS test: {missing:?} not installed");
    None
}

const TLS_SERVER: &str = r#"
import http.server, json, ssl, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps([{"id": 1, "over": "tls"}]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("server.pem", "server.key")
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

#[test]
fn https_with_a_private_ca() {
    if https_tools().is_none() {
        return;
    }
    let dir = tempdir();
    let d = dir.path();
    write(
        d,
        "ext.cnf",
        b"subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
          keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(
            "set -e
             ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'
             openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2 -subj /CN=etlkit-test-ca
             openssl req $ec -keyout server.key -out server.csr -subj /CN=127.0.0.1
             openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
               -out server.pem -days 2 -extfile ext.cnf",
        )
        .current_dir(d)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "{}", stderr(&out));
    write(d, "server.py", TLS_SERVER.as_bytes());
    let mut server = Command::new("python3")
        .arg("server.py")
        .current_dir(d)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 starts");
    let mut port = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().expect("stdout")),
        &mut port,
    )
    .expect("port");
    let url = format!("https://127.0.0.1:{}/v1/things", port.trim());

    let trusted = extract(d, &[&url, "--ca-cert", "ca.pem", "-q"]);
    let untrusted = extract(d, &[&url, "--retries", "3"]);
    let not_pem = extract(d, &[&url, "--ca-cert", "ext.cnf"]);
    let _ = server.kill();
    let _ = server.wait();

    assert_eq!(code(&trusted), 0, "{}", stderr(&trusted));
    assert_eq!(
        records(&stdout(&trusted)),
        [json!({"id": 1, "over": "tls"})]
    );
    // Mozilla's roots do not know the private CA: refused at once, not retried.
    assert_eq!(code(&untrusted), 1);
    let err = stderr(&untrusted);
    assert!(
        err.starts_with(&format!("etl-extract: error: page 1 ({url}): "))
            && err.contains("UnknownIssuer"),
        "{err}"
    );
    assert!(!err.contains("retry"), "{err}");
    assert_eq!(code(&not_pem), 1);
    assert!(
        stderr(&not_pem).contains("no PEM certificate"),
        "{}",
        stderr(&not_pem)
    );
}
