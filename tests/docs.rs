//! Help, man pages and their examples stay true.
//!
//! Man pages and help snapshots are generated from the clap definitions;
//! after changing a flag, regenerate them with
//! `ETLKIT_BLESS=1 cargo test --test cli docs::` and commit the result.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::common::*;

fn commands() -> Vec<clap::Command> {
    vec![
        etlkit::cli::extract::ExtractArgs::command(),
        etlkit::cli::load::LoadArgs::command(),
        etlkit::cli::watch::WatchArgs::command(),
        etlkit::cli::transform::TransformArgs::command(),
    ]
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn check_or_bless(path: &Path, actual: &[u8]) {
    if std::env::var_os("ETLKIT_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, actual).expect("write");
        return;
    }
    let expected = std::fs::read(path).unwrap_or_default();
    assert!(
        expected == actual,
        "{} is stale; regenerate with ETLKIT_BLESS=1 cargo test --test cli docs::",
        path.display()
    );
}

fn roff_escape(line: &str) -> String {
    let escaped = line.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// A man page: clap_mangen's sections, then the long help's closing text
/// split into DETAILS, EXAMPLES and EXIT STATUS, with examples and the
/// exit-code table kept as written (no filling).
fn man_page(command: clap::Command) -> Vec<u8> {
    let after = command
        .get_after_long_help()
        .map(ToString::to_string)
        .unwrap_or_default();
    let man = clap_mangen::Man::new(command);
    let mut page = Vec::new();
    man.render_title(&mut page).expect("render");
    man.render_name_section(&mut page).expect("render");
    man.render_synopsis_section(&mut page).expect("render");
    man.render_description_section(&mut page).expect("render");
    man.render_options_section(&mut page).expect("render");
    let mut details = String::new();
    let mut verbatim = String::new();
    for paragraph in after.split("\n\n") {
        let mut lines = paragraph.lines();
        let heading = match lines.next().unwrap_or_default() {
            "Examples:" => Some("EXAMPLES"),
            "Exit codes:" => Some("EXIT STATUS"),
            _ => None,
        };
        if let Some(heading) = heading {
            verbatim.push_str(&format!(".SH \"{heading}\"\n.nf\n"));
            for line in lines {
                verbatim.push_str(&roff_escape(line.trim_start()));
                verbatim.push('\n');
            }
            verbatim.push_str(".fi\n");
        } else {
            details.push_str(".PP\n");
            for line in paragraph.lines() {
                details.push_str(&roff_escape(line));
                details.push('\n');
            }
        }
    }
    if !details.is_empty() {
        page.extend_from_slice(b".SH DETAILS\n");
        page.extend_from_slice(details.as_bytes());
    }
    page.extend_from_slice(verbatim.as_bytes());
    man.render_version_section(&mut page).expect("render");
    page
}

#[test]
fn man_pages_are_current() {
    for command in commands() {
        let name = command.get_name().to_string();
        let page = man_page(command);
        check_or_bless(&root().join("man").join(format!("{name}.1")), &page);
    }
}

#[test]
fn help_output_matches_snapshots() {
    for command in commands() {
        let name = command.get_name().to_string();
        let bin = match name.as_str() {
            "etl-extract" => EXTRACT,
            "etl-load" => LOAD,
            "etl-transform" => TRANSFORM,
            _ => WATCH,
        };
        let dir = tempdir();
        for flag in ["--help", "-h"] {
            let mut c = cmd(bin, dir.path());
            c.env("COLUMNS", "100").arg(flag);
            let out = run(c);
            assert_eq!(code(&out), 0);
            let file = format!("{name}{}.txt", if flag == "-h" { ".short" } else { "" });
            check_or_bless(&root().join("tests/snapshots").join(file), &out.stdout);
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

#[test]
fn help_examples_run() {
    let dir = tempdir();
    copy_dir(&root().join("sample-data"), &dir.path().join("sample-data"));
    let mut ran = 0;
    for (bin, command) in [
        (EXTRACT, "etl-extract"),
        (LOAD, "etl-load"),
        (WATCH, "etl-watch"),
    ] {
        let mut c = cmd(bin, dir.path());
        c.env("COLUMNS", "1000").arg("--help");
        let help = stdout(&run(c));
        let examples: Vec<&str> = help
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("$ "))
            .collect();
        assert!(
            examples.len() >= 2,
            "{command} --help has runnable examples"
        );
        for example in examples {
            if example.contains("postgres://") && pg_url().is_none() {
                continue;
            }
            if example.contains("nats://")
                || example.contains("redis://")
                || example.contains("kafka://")
            {
                // Run by brokers::help_examples_run, on names of their own.
                continue;
            }
            if example.contains("mysql://") && mysql_url().is_none() {
                continue;
            }
            // An API example runs against a local orders API wanting a token.
            let api = example
                .contains("https://api.example.com")
                .then(|| crate::common::http::Api::orders(250, Some("docs-example-token")));
            // An S3 example runs against the S3 test server, in a bucket of
            // its own holding one object.
            let s3 = if example.contains("s3://drops/") {
                let Some(moto) = crate::common::s3::Moto::connect("help example on S3") else {
                    continue;
                };
                let bucket = moto.bucket("help");
                moto.put(&bucket, "inbox/a.ndjson", b"{\"id\":1}\n");
                Some(format!(
                    "export AWS_ENDPOINT_URL={} AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={}\n{}",
                    moto.endpoint,
                    moto.access_key,
                    moto.secret_key,
                    example.replace("s3://drops/", &format!("s3://{bucket}/"))
                ))
            } else {
                None
            };
            let script = match (&api, s3) {
                (Some(api), _) => format!(
                    "export API_TOKEN=docs-example-token\n{}",
                    example.replace("https://api.example.com", &api.server.base())
                ),
                (None, Some(s3)) => s3,
                (None, None) => example.to_string(),
            };
            let out = bash(&script, dir.path());
            assert_eq!(code(&out), 0, "{example}\n{}", stderr(&out));
            if let Some(api) = api {
                assert_eq!(api.server.requests().len(), 3, "{example}: every page read");
            }
            ran += 1;
        }
    }
    assert!(ran >= 4);
    if let Some(url) = pg_url() {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        client
            .batch_execute("DROP TABLE IF EXISTS public.etl_example_orders")
            .expect("clean up the example's table");
    }
    if let Some(url) = mysql_url() {
        use mysql::prelude::Queryable;
        etlkit::mysql::conn::connect(&url)
            .and_then(|mut c| {
                c.query_drop("DROP TABLE IF EXISTS etl_example_orders")
                    .map_err(anyhow::Error::from)
            })
            .expect("clean up the MySQL example's table");
    }
}
