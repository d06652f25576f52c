//! DuckDB reads an S3 dataset etl-load wrote, through its httpfs extension
//! (PyPI `duckdb-extension-httpfs`, loaded from the package's file), from
//! the manifest's list of files: the same count and sums as etl-extract.
//! Skipped loudly without a Python that has both duckdb and the extension
//! (ETLKIT_DUCKDB_HTTPFS_PYTHON, then ETLKIT_DUCKDB_PYTHON, are tried
//! first; .ci/run makes a virtualenv with both pinned);
//! ETLKIT_REQUIRE_DUCKDB_HTTPFS makes that a failure.

use std::process::{Command, Stdio};

use crate::common::expect::expect;
use crate::common::s3::Moto;
use crate::common::{EXTRACT, LOAD, cmd, records, run, run_with_input, stdout};

fn httpfs_python() -> Option<String> {
    let candidates = ["ETLKIT_DUCKDB_HTTPFS_PYTHON", "ETLKIT_DUCKDB_PYTHON"]
        .into_iter()
        .filter_map(|v| std::env::var(v).ok())
        .chain(["python3".to_string()]);
    for python in candidates {
        let found = Command::new(&python)
            .args(["-c", "import duckdb, duckdb_extension_httpfs"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if found {
            return Some(python);
        }
    }
    if std::env::var_os("ETLKIT_REQUIRE_DUCKDB_HTTPFS").is_some() {
        panic!(
            "DuckDB's httpfs is required (ETLKIT_REQUIRE_DUCKDB_HTTPFS) but no Python has duckdb and duckdb_extension_httpfs"
        );
    }
    eprintln!(
        "SKIPPED: DuckDB over S3: no Python with duckdb and duckdb_extension_httpfs; set ETLKIT_DUCKDB_HTTPFS_PYTHON"
    );
    None
}

#[test]
fn duckdb_reads_the_committed_files_of_an_s3_dataset() {
    let Some(moto) = Moto::connect("s3 dataset duckdb") else {
        return;
    };
    let Some(python) = httpfs_python() else {
        return;
    };
    let bucket = moto.bucket("lake-duckdb");
    let dir = tempfile::tempdir().unwrap();
    let target = format!("s3://{bucket}/lake/orders");
    let mut input = String::from("{\"@etl\":\"begin\",\"stream\":\"orders\"}\n");
    for id in 0..500u32 {
        input.push_str(&format!(
            "{{\"id\":{id},\"ordered_at\":\"2026-11-{:02}T10:00:00Z\",\"amount\":{}.25}}\n",
            1 + id % 7,
            id % 40
        ));
    }
    input.push_str("{\"@etl\":\"end\",\"stream\":\"orders\",\"rows\":500}\n");
    for mode in ["append", "replace-partitions"] {
        let mut command = cmd(LOAD, dir.path());
        moto.env(&mut command)
            .args([&target, "--partition-by", "ordered_at:day", "--mode", mode]);
        expect(&run_with_input(command, input.as_bytes()), mode).code(0);
    }
    let mut command = cmd(EXTRACT, dir.path());
    moto.env(&mut command).arg(&target);
    let rows = records(&stdout(&run(command)));
    let count = rows.len();
    let ids: u64 = rows.iter().map(|r| r["id"].as_u64().unwrap()).sum();
    let amount: f64 = rows.iter().map(|r| r["amount"].as_f64().unwrap()).sum();
    assert_eq!(count, 500);

    let script = format!(
        "import duckdb, duckdb_extension_httpfs, glob, json, os\n\
         ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_httpfs.__file__), 'extensions', '*', 'httpfs.duckdb_extension'))[0]\n\
         con = duckdb.connect(config={{'allow_unsigned_extensions': 'true'}})\n\
         con.execute(f\"LOAD '{{ext}}'\")\n\
         con.execute(\"CREATE SECRET (TYPE s3, KEY_ID '{}', SECRET '{}', ENDPOINT '{}', URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')\")\n\
         root = '{target}/'\n\
         m = json.loads(con.execute(\"SELECT content FROM read_text(?)\", [root + '_etl_manifest.json']).fetchone()[0])\n\
         files = [root + f['path'] for f in m['files']]\n\
         print('|'.join(str(v) for v in con.execute(\"SELECT count(*), sum(id), sum(amount) FROM read_parquet(?, hive_partitioning = true)\", [files]).fetchone()))",
        moto.access_key,
        moto.secret_key,
        moto.endpoint.trim_start_matches("http://"),
    );
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let got: Vec<&str> = text.split('|').collect();
    assert_eq!(got[0], count.to_string(), "{text}");
    assert_eq!(got[1], ids.to_string(), "{text}");
    let duck_amount: f64 = got[2].parse().unwrap();
    assert!((duck_amount - amount).abs() < 1e-6, "{text} vs {amount}");
}
