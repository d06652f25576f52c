//! The S3 test server (moto, started by scripts/s3-server.sh on
//! 127.0.0.1:5055 with signature checking on) and a bare client for
//! setting up and checking the object-storage tests: boto3 in the
//! server's virtualenv, so the checks do not go through etlkit's client.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The server's settings and the test user's keys.
pub struct Moto {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    python: PathBuf,
}

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
}

impl Moto {
    /// The running server, or `None` (a loud skip) when there is none;
    /// with ETLKIT_REQUIRE_S3 a missing server fails the test.
    pub fn connect(test: &str) -> Option<Moto> {
        let port = std::env::var("ETLKIT_S3_PORT").unwrap_or_else(|_| "5055".into());
        let dir = std::env::var("ETLKIT_S3_DIR").unwrap_or_else(|_| "/tmp/etlkit-s3".into());
        let python = std::env::var_os("ETLKIT_MOTO_VENV")
            .map_or_else(|| home().join(".cache/etlkit/venv-moto"), PathBuf::from)
            .join("bin/python");
        let keys = std::fs::read_to_string(format!("{dir}/credentials")).unwrap_or_default();
        let key = |name: &str| {
            keys.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .map(str::to_string)
        };
        let up = TcpStream::connect(format!("127.0.0.1:{port}")).is_ok();
        match (up, key("AWS_ACCESS_KEY_ID"), key("AWS_SECRET_ACCESS_KEY")) {
            (true, Some(access_key), Some(secret_key)) if python.exists() => Some(Moto {
                endpoint: format!("http://127.0.0.1:{port}"),
                access_key,
                secret_key,
                python,
            }),
            _ => {
                if std::env::var_os("ETLKIT_REQUIRE_S3").is_some() {
                    panic!(
                        "{test}: the S3 test server is required (ETLKIT_REQUIRE_S3) but not running: scripts/s3-server.sh start"
                    );
                }
                eprintln!("SKIPPED: {test}: no S3 test server (scripts/s3-server.sh start)");
                None
            }
        }
    }

    /// Gives `command` the variables that point etlkit at the server.
    pub fn env<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
    }

    /// Runs a boto3 snippet with `s3` (a client) and `bucket` defined;
    /// `data` is its stdin (bytes, as `data`); returns its stdout.
    pub fn boto(&self, bucket: &str, code: &str, data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let script = format!(
            "import sys, boto3\n\
             s3 = boto3.client('s3', endpoint_url={:?}, region_name='us-east-1', \
             aws_access_key_id={:?}, aws_secret_access_key={:?})\n\
             bucket = {bucket:?}\n\
             data = sys.stdin.buffer.read()\n{code}\n",
            self.endpoint, self.access_key, self.secret_key
        );
        let mut child = Command::new(&self.python)
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(data)
            .expect("write");
        let out = child.wait_with_output().expect("python runs");
        assert!(
            out.status.success(),
            "boto3: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A shell command that runs a boto3 snippet (as [`Moto::boto`] does,
    /// without stdin data), its script written into `dir` as `name`: for
    /// --exec.
    pub fn boto_command(
        &self,
        dir: &std::path::Path,
        name: &str,
        bucket: &str,
        code: &str,
    ) -> String {
        let script = format!(
            "import sys, boto3\n\
             s3 = boto3.client('s3', endpoint_url={:?}, region_name='us-east-1', \
             aws_access_key_id={:?}, aws_secret_access_key={:?})\n\
             bucket = {bucket:?}\n{code}\n",
            self.endpoint, self.access_key, self.secret_key
        );
        let path = dir.join(name);
        std::fs::write(&path, script).expect("write the script");
        format!("{} {}", self.python.display(), path.display())
    }

    /// Starts a boto3 snippet as [`Moto::boto`] does, without waiting for it.
    pub fn boto_child(&self, bucket: &str, code: &str) -> std::process::Child {
        let script = format!(
            "import sys, boto3\n\
             s3 = boto3.client('s3', endpoint_url={:?}, region_name='us-east-1', \
             aws_access_key_id={:?}, aws_secret_access_key={:?})\n\
             bucket = {bucket:?}\n{code}\n",
            self.endpoint, self.access_key, self.secret_key
        );
        Command::new(&self.python)
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python runs")
    }

    /// A new, empty bucket named for the test (emptied if it is there).
    pub fn bucket(&self, name: &str) -> String {
        // The process id keeps two test runs against one server apart.
        let bucket = format!("etl-test-{name}-{}", std::process::id());
        self.boto(
            &bucket,
            "try:\n    s3.create_bucket(Bucket=bucket)\nexcept s3.exceptions.BucketAlreadyOwnedByYou:\n    pass\n\
             for o in s3.list_objects_v2(Bucket=bucket).get('Contents', []):\n    s3.delete_object(Bucket=bucket, Key=o['Key'])",
            b"",
        );
        bucket
    }

    /// Writes `bytes` as `key`.
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        self.boto(
            bucket,
            &format!("s3.put_object(Bucket=bucket, Key={key:?}, Body=data)"),
            bytes,
        );
    }

    /// The object `key`, if there is one.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let out = self.boto(
            bucket,
            &format!(
                "try:\n    body = s3.get_object(Bucket=bucket, Key={key:?})['Body'].read()\n    sys.stdout.buffer.write(b'+' + body)\n\
                 except s3.exceptions.NoSuchKey:\n    sys.stdout.buffer.write(b'-')"
            ),
            b"",
        );
        (out.first() == Some(&b'+')).then(|| out[1..].to_vec())
    }

    /// How many multipart uploads are in progress in `bucket`.
    pub fn uploads(&self, bucket: &str) -> usize {
        let out = self.boto(
            bucket,
            "print(len(s3.list_multipart_uploads(Bucket=bucket).get('Uploads', [])))",
            b"",
        );
        String::from_utf8_lossy(&out)
            .trim()
            .parse()
            .expect("a count")
    }
}
