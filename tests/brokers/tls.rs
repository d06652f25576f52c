//! `etl-watch` over TLS and with authentication, against the servers
//! `scripts/broker-tls-servers.sh start` runs beside the plain ones (its
//! header lists them): Redis TLS with a client certificate and an ACL user,
//! NATS with TLS, users, an nkey user and a token, Kafka SSL (a TLS proxy
//! in front of tansu) and SASL (tansu --authentication). The certificates
//! are in ETLKIT_BROKER_TLS_DIR (default ~/.cache/etlkit/broker-tls).
//! Without the servers these tests skip loudly; with
//! ETLKIT_REQUIRE_BROKER_TLS set (as in CI) they fail instead.

use std::path::{Path, PathBuf};

use etlkit::client::nats::{Conn as NatsConn, NatsAuth};
use etlkit::client::nkey::Credentials;
use etlkit::client::redis::Resp;
use etlkit::client::tls::TlsOptions;
use etlkit::client::url::BrokerUrl;
use serde_json::json;

use super::{payloads, reachable, watch};
use crate::common::expect::expect;
use crate::common::kafka::Kafka;
use crate::common::*;

/// The public key of tests/fixtures/nats-user.nk, as the server's
/// configuration names it (scripts/broker-tls-servers.sh).
const NKEY_USER: &str = "UAMX62ZD4FWIKMWGVPEDR6WNL2TYTPQMO2ZJEAZUAON7VCZ5G2GWCXLM";

fn tls_dir() -> PathBuf {
    match std::env::var_os("ETLKIT_BROKER_TLS_DIR") {
        Some(dir) => dir.into(),
        None => {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/etlkit/broker-tls")
        }
    }
}

/// The file `name` of the test certificates, as an argument.
fn cert(name: &str) -> String {
    tls_dir().join(name).to_string_lossy().into_owned()
}

/// The CA, client certificate and key of the TLS servers, as etl-watch's
/// flags.
pub(super) fn client_flags() -> Vec<String> {
    vec![
        "--ca-cert".into(),
        cert("ca.crt"),
        "--client-cert".into(),
        cert("client.crt"),
        "--client-key".into(),
        cert("client.key"),
    ]
}

/// The same files, for the tests' own connections.
pub(super) fn client_options() -> TlsOptions {
    options("ca.crt", true)
}

/// Are the TLS server on `port` and the certificates there?
pub(super) fn up(port: u16, what: &str) -> bool {
    let require = "ETLKIT_REQUIRE_BROKER_TLS";
    if !tls_dir().join("ca.crt").exists() {
        if std::env::var_os(require).is_some() {
            panic!(
                "{what}: no certificates in {} ({require})",
                tls_dir().display()
            );
        }
        eprintln!(
            "SKIPPED: {what} test: no certificates in {} (scripts/broker-tls-servers.sh start)",
            tls_dir().display()
        );
        return false;
    }
    reachable(&format!("127.0.0.1:{port}"), what, require)
}

fn options(ca: &str, client: bool) -> TlsOptions {
    TlsOptions {
        ca_cert: Some(cert(ca).into()),
        client_cert: client.then(|| cert("client.crt").into()),
        client_key: client.then(|| cert("client.key").into()),
    }
}

fn watch_args(dir: &std::path::Path, url: &str, rest: &[&str]) -> std::process::Output {
    let mut args = vec![url];
    args.extend_from_slice(rest);
    watch(dir, &args)
}

#[test]
fn redis_over_tls_with_an_acl_user_reads_and_refuses_what_does_not_verify() {
    if !up(6380, "Redis TLS") {
        return;
    }
    let dir = tempdir();
    let key = unique("tls");
    let url = BrokerUrl::parse("rediss://etl:etl-secret@127.0.0.1:6380").expect("test set-up");
    let mut redis = Resp::connect(&url, &options("ca.crt", true)).expect("test set-up");
    for payload in payloads(0, 3) {
        redis
            .ok(&[b"XADD", key.as_bytes(), b"*", b"payload", &payload])
            .expect("test set-up");
    }
    let (ca, client_cert, client_key) = (cert("ca.crt"), cert("client.crt"), cert("client.key"));
    let tls = [
        "--ca-cert",
        ca.as_str(),
        "--client-cert",
        client_cert.as_str(),
        "--client-key",
        client_key.as_str(),
    ];
    let read = |url: &str, group: &str, extra: &[&str]| {
        let mut rest = vec!["--key", key.as_str(), "--group", group, "--once"];
        rest.extend_from_slice(&["--checkpoint", group]);
        rest.extend_from_slice(extra);
        watch_args(dir.path(), url, &rest)
    };
    // The ACL user, and the default user with its password.
    let out = read("rediss://etl:etl-secret@127.0.0.1:6380", "acl", &tls);
    expect(&out, "ACL user over TLS").code(0);
    assert_eq!(records(&stdout(&out)).len(), 3, "{}", stderr(&out));
    let out = read("rediss://:default-secret@localhost:6380", "default", &tls);
    expect(&out, "default user over TLS, by name").code(0);
    assert_eq!(records(&stdout(&out)).len(), 3, "{}", stderr(&out));

    let other = cert("other-ca.crt");
    let mut wrong_ca = tls;
    wrong_ca[1] = other.as_str();
    let out = read("rediss://etl:etl-secret@127.0.0.1:6380", "x1", &wrong_ca);
    expect(&out, "wrong CA").code(1).stdout("").stderr(
        "etl-watch: error: rediss://127.0.0.1:6380: TLS handshake failed: the server's \
         certificate is not signed by a trusted certificate authority (unknown issuer); hint: \
         --ca-cert FILE names the CA that signed it\n",
    );
    let out = read("rediss://etl:not-the-secret@127.0.0.1:6380", "x2", &tls);
    expect(&out, "wrong password").code(1).stdout("").stderr(
        "etl-watch: error: rediss://127.0.0.1:6380: authentication failed: WRONGPASS invalid \
         username-password pair or user is disabled.\n",
    );
    let out = read("rediss://etl:etl-secret@127.0.0.1:6380", "x3", &tls[..2]);
    expect(&out, "no client certificate")
        .code(1)
        .stdout("")
        .stderr(
            "etl-watch: error: rediss://127.0.0.1:6380: the server wants a client certificate; \
         hint: --client-cert FILE --client-key FILE\n",
        );
    let out = read("redis://etl:etl-secret@127.0.0.1:6380", "x4", &[]);
    expect(&out, "plain text to a TLS port").code(1).stdout("");
    assert!(
        stderr(&out).contains("(does it want TLS? hint: rediss://)"),
        "{}",
        stderr(&out)
    );
    let out = read("redis://127.0.0.1:6380", "x5", &tls[..2]);
    expect(&out, "TLS options on redis://").code(2).stderr(
        "etl-watch: error: --ca-cert, --client-cert and --client-key need TLS: write rediss:// \
         for redis://\n",
    );
}

/// Creates the JetStream stream `stream` on `subject.>` and publishes
/// three messages, over `url` with `auth`.
fn nats_setup(url: &str, auth: &NatsAuth, stream: &str, subject: &str) {
    let url = BrokerUrl::parse(url).expect("test set-up");
    let mut nats = NatsConn::connect(&url, auth).expect("test set-up");
    nats.request(
        &format!("$JS.API.STREAM.CREATE.{stream}"),
        &json!({ "name": stream, "subjects": [format!("{subject}.>")] }),
    )
    .expect("test set-up")
    .map_err(|e| e.description)
    .expect("test set-up");
    for i in 0..3 {
        nats.request(
            &format!("{subject}.x"),
            &json!({ "id": i, "item": format!("thing {i}") }),
        )
        .expect("test set-up")
        .map_err(|e| e.description)
        .expect("test set-up");
    }
}

fn nats_read(
    dir: &std::path::Path,
    url: &str,
    stream: &str,
    subject: &str,
    extra: &[&str],
) -> std::process::Output {
    let filter = format!("{subject}.>");
    // A consumer of its own: each read starts at the stream's start.
    let durable = unique("etl");
    let mut rest = vec![
        "--subject",
        filter.as_str(),
        "--durable",
        durable.as_str(),
        "--js-stream",
        stream,
        "--once",
        "--checkpoint",
    ];
    let checkpoint = unique("ckpt");
    rest.push(checkpoint.as_str());
    rest.extend_from_slice(extra);
    watch_args(dir, url, &rest)
}

#[test]
fn nats_over_tls_reads_with_tls_urls_and_a_servers_tls_required() {
    if !up(4223, "NATS TLS") {
        return;
    }
    let dir = tempdir();
    let stream = unique("TLS");
    let subject = unique("tls");
    let auth = NatsAuth {
        tls: options("ca.crt", false),
        creds: None,
    };
    nats_setup("tls://127.0.0.1:4223", &auth, &stream, &subject);
    let ca = cert("ca.crt");
    // tls://, and nats:// to a server that requires TLS (after its INFO).
    for url in ["tls://127.0.0.1:4223", "nats://localhost:4223"] {
        let out = nats_read(dir.path(), url, &stream, &subject, &["--ca-cert", &ca]);
        expect(&out, url).code(0);
        assert_eq!(records(&stdout(&out)).len(), 3, "{url}: {}", stderr(&out));
    }
    let other = cert("other-ca.crt");
    let out = nats_read(
        dir.path(),
        "nats://127.0.0.1:4223",
        &stream,
        &subject,
        &["--ca-cert", &other],
    );
    expect(&out, "wrong CA").code(1).stdout("").stderr(
        "etl-watch: error: nats://127.0.0.1:4223: TLS handshake failed: the server's \
         certificate is not signed by a trusted certificate authority (unknown issuer); hint: \
         --ca-cert FILE names the CA that signed it\n",
    );
    // The built-in roots do not know a private CA either.
    let out = nats_read(dir.path(), "tls://127.0.0.1:4223", &stream, &subject, &[]);
    expect(&out, "built-in roots").code(1);
    if reachable("127.0.0.1:4222", "NATS", "ETLKIT_REQUIRE_NATS") {
        let out = nats_read(
            dir.path(),
            "tls://127.0.0.1:4222",
            &stream,
            &subject,
            &["--ca-cert", &ca],
        );
        expect(&out, "TLS asked of a plain server")
            .code(1)
            .stdout("")
            .stderr("etl-watch: error: tls://127.0.0.1:4222: the server does not offer TLS\n");
    }
}

#[test]
fn nats_users_tokens_and_nkey_credentials_authenticate() {
    if !up(4224, "NATS users") || !up(4225, "NATS token") {
        return;
    }
    let dir = tempdir();
    let creds = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nats-user.nk");
    let seed = std::fs::read_to_string(&creds).expect("test set-up");
    assert_eq!(
        Credentials::read(&creds).expect("test set-up").public_key(),
        NKEY_USER,
        "the server's nkey user is the fixture seed's"
    );
    let user = NatsAuth::default();
    let stream = unique("AUTH");
    let subject = unique("auth");
    nats_setup(
        "nats://etl:etl-secret@127.0.0.1:4224",
        &user,
        &stream,
        &subject,
    );
    let out = nats_read(
        dir.path(),
        "nats://etl:etl-secret@127.0.0.1:4224",
        &stream,
        &subject,
        &[],
    );
    expect(&out, "user and password").code(0);
    assert_eq!(records(&stdout(&out)).len(), 3, "{}", stderr(&out));
    let creds_arg = creds.to_string_lossy().into_owned();
    let out = nats_read(
        dir.path(),
        "nats://127.0.0.1:4224",
        &stream,
        &subject,
        &["--creds", &creds_arg],
    );
    expect(&out, "nkey seed, nonce signed").code(0);
    assert_eq!(records(&stdout(&out)).len(), 3, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains(seed.trim()), "{err}");
    let out = nats_read(
        dir.path(),
        "nats://etl:not-the-secret@127.0.0.1:4224",
        &stream,
        &subject,
        &[],
    );
    expect(&out, "wrong password")
        .code(1)
        .stdout("")
        .stderr("etl-watch: error: nats://127.0.0.1:4224: Authorization Violation\n");

    let stream = unique("TOKEN");
    let subject = unique("token");
    nats_setup("nats://etl-token@127.0.0.1:4225", &user, &stream, &subject);
    let out = nats_read(
        dir.path(),
        "nats://etl-token@127.0.0.1:4225",
        &stream,
        &subject,
        &[],
    );
    expect(&out, "token").code(0);
    assert_eq!(records(&stdout(&out)).len(), 3, "{}", stderr(&out));
    let out = nats_read(
        dir.path(),
        "nats://not-the-token@127.0.0.1:4225",
        &stream,
        &subject,
        &[],
    );
    expect(&out, "wrong token")
        .code(1)
        .stdout("")
        .stderr("etl-watch: error: nats://127.0.0.1:4225: Authorization Violation\n");
}

#[test]
fn kafka_over_ssl_reads_and_refuses_a_wrong_ca() {
    if !up(9093, "Kafka SSL") {
        return;
    }
    let dir = tempdir();
    let topic = unique("tls");
    // Set up through the plain broker behind the TLS proxy.
    let mut kafka = Kafka::connect_to("127.0.0.1:19093");
    kafka.create_topic(&topic, 1);
    kafka.produce(&topic, 0, &payloads(0, 3));
    let config = write(
        dir.path(),
        "client.properties",
        format!(
            "bootstrap.servers=127.0.0.1:9093\nsecurity.protocol=SSL\nssl.ca.location={}\n",
            cert("ca.crt")
        )
        .as_bytes(),
    );
    let config = config.to_string_lossy().into_owned();
    let read = |group: &str, extra: &[&str]| {
        let mut rest = vec!["--topic", topic.as_str(), "--group", group, "--once"];
        rest.extend_from_slice(&["--checkpoint", group]);
        rest.extend_from_slice(extra);
        watch_args(dir.path(), "kafka://127.0.0.1:9093", &rest)
    };
    let out = read("g1", &["--kafka-config", &config]);
    expect(&out, "SSL from a properties file").code(0);
    assert_eq!(records(&stdout(&out)).len(), 3, "{}", stderr(&out));
    let other = cert("other-ca.crt");
    let out = read("g2", &["--kafka-config", &config, "--ca-cert", &other]);
    expect(&out, "wrong CA").code(1).stdout("").stderr(
        "etl-watch: error: kafka://127.0.0.1:9093: TLS handshake failed: the server's \
         certificate is not signed by a trusted certificate authority (unknown issuer); hint: \
         --ca-cert FILE names the CA that signed it\n",
    );
    let out = read("g3", &["--ca-cert", &other]);
    expect(&out, "TLS options without SSL").code(2).stderr(
        "etl-watch: error: --ca-cert, --client-cert, --client-key and ssl.* are for \
         security.protocol SSL or SASL_SSL\n",
    );
}

/// Plain text to the SSL listener fails at once, saying the broker may
/// want TLS and where security.protocol is set; nothing waits for an
/// answer that cannot come.
#[test]
fn kafka_plain_text_to_the_ssl_listener_is_refused_at_once() {
    if !up(9093, "Kafka SSL") {
        return;
    }
    let dir = tempdir();
    let topic = unique("tls_plain");
    let started = std::time::Instant::now();
    let out = watch_args(
        dir.path(),
        "kafka://127.0.0.1:9093",
        &[
            "--topic",
            &topic,
            "--group",
            "g",
            "--once",
            "--checkpoint",
            "c",
        ],
    );
    let took = started.elapsed();
    expect(&out, "plain text to the SSL listener")
        .code(1)
        .stdout("")
        .stderr(
            "etl-watch: error: kafka://127.0.0.1:9093: the broker closed the connection (does \
             it want TLS or SASL? hint: --security-protocol, or security.protocol in \
             --kafka-config)\n",
        );
    assert!(
        took < std::time::Duration::from_secs(10),
        "refused after {took:?}"
    );
}

/// etl-watch reading `topic` once from the SASL_PLAINTEXT broker (9094)
/// with SCRAM-SHA-256, signed in as `(user, password)` from the
/// environment; its checkpoint is named after `group`.
fn kafka_scram_256(
    dir: &std::path::Path,
    topic: &str,
    group: &str,
    (user, password): (&str, &str),
    extra: &[&str],
) -> std::process::Output {
    let mut c = cmd(WATCH, dir);
    c.args([
        "kafka://127.0.0.1:9094",
        "--topic",
        topic,
        "--group",
        group,
        "--once",
        "--checkpoint",
        group,
        "--security-protocol",
        "SASL_PLAINTEXT",
        "--sasl-mechanism",
        "SCRAM-SHA-256",
    ])
    .args(extra)
    .env("ETL_KAFKA_SASL_USERNAME", user)
    .env("ETL_KAFKA_SASL_PASSWORD", password);
    run(c)
}

/// SCRAM-SHA-256 and SCRAM-SHA-512 logins against a real broker (tansu 0.6,
/// whose SCRAM users live in its SQLite storage; it offers no PLAIN): a
/// topic is read over SASL_PLAINTEXT with the credentials from the
/// environment and over SASL_SSL from a properties file; a wrong password
/// and an unknown user are refused, named without the password.
#[test]
fn kafka_sasl_scram_logs_in_and_refuses_a_wrong_password_or_user() {
    if !up(9094, "Kafka SASL_PLAINTEXT") || !up(9095, "Kafka SASL_SSL") {
        return;
    }
    let dir = tempdir();
    let topic = unique("sasl");
    // Set up through the open broker that shares the SASL brokers' storage.
    let mut kafka = Kafka::connect_to("127.0.0.1:19094");
    kafka.create_topic(&topic, 1);
    kafka.produce(&topic, 0, &payloads(0, 3));
    let config = write(
        dir.path(),
        "client.properties",
        format!(
            "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n\
             sasl.username=etl\nsasl.password=etl-secret\nssl.ca.location={}\n",
            cert("ca.crt")
        )
        .as_bytes(),
    );
    let config = config.to_string_lossy().into_owned();
    let out = watch(
        dir.path(),
        &[
            "kafka://127.0.0.1:9095",
            "--topic",
            &topic,
            "--group",
            "g1",
            "--once",
            "--checkpoint",
            "c1",
            "--kafka-config",
            &config,
        ],
    );
    expect(&out, "SASL_SSL SCRAM-SHA-512").code(0);
    assert_eq!(records(&stdout(&out)).len(), 3, "{}", stderr(&out));
    let plain = |group: &str, user: &str, password: &str| {
        kafka_scram_256(dir.path(), &topic, group, (user, password), &[])
    };
    let out = plain("g2", "etl", "etl-secret");
    expect(&out, "SASL_PLAINTEXT SCRAM-SHA-256 from the environment").code(0);
    assert_eq!(records(&stdout(&out)).len(), 3, "{}", stderr(&out));
    let out = plain("g3", "etl", "hunter2secret");
    expect(&out, "a wrong password").code(1).stdout("").stderr(
        "etl-watch: error: kafka://127.0.0.1:9094: SASL SCRAM-SHA-256 authentication as \"etl\" \
         failed: the server refused: invalid-proof\n",
    );
    let out = plain("g4", "nobody", "hunter2secret");
    expect(&out, "an unknown user").code(1).stdout("").stderr(
        "etl-watch: error: kafka://127.0.0.1:9094: SASL SCRAM-SHA-256 authentication as \
         \"nobody\" failed: the server refused: unknown-user\n",
    );
}

/// Every file and output of a watch over TLS with passwords — stdout,
/// stderr with `--log-json`, the checkpoint, the rejects file, the loader's
/// run history and its own `--log-json` — holds none of the secrets: the
/// Redis ACL password, a NATS token, a Kafka SASL password.
#[test]
fn broker_secrets_stay_out_of_every_output_and_file() {
    if !up(6380, "Redis TLS") || !up(4225, "NATS token") || !up(9094, "Kafka SASL_PLAINTEXT") {
        return;
    }
    let dir = tempdir();
    let d = dir.path();
    let key = unique("secrets");
    let url = BrokerUrl::parse("rediss://etl:etl-secret@127.0.0.1:6380").expect("test set-up");
    let mut redis = Resp::connect(&url, &options("ca.crt", true)).expect("test set-up");
    for payload in payloads(0, 3)
        .into_iter()
        .chain([b"not json, etl-secret is not here".to_vec()])
    {
        redis
            .ok(&[b"XADD", key.as_bytes(), b"*", b"payload", &payload])
            .expect("test set-up");
    }
    let mut args = vec![
        "rediss://etl:etl-secret@127.0.0.1:6380",
        "--key",
        &key,
        "--group",
        "etl",
        "--once",
        "--log-json",
        "--checkpoint",
        "c.ckpt",
        "--rejects",
        "bad.ndjson",
        "--exec",
        "etl-load --log-json wh.db --table t 2>>load.log",
    ];
    let flags = super::tls::client_flags();
    args.extend(flags.iter().map(String::as_str));
    let redis_run = watch(d, &args);
    expect(&redis_run, "redis").code(3).stdout("");
    let bad = std::fs::read_to_string(d.join("bad.ndjson")).expect("rejects");
    assert_eq!(bad.lines().count(), 1, "{bad}");
    // The poison message itself names the password: the rejects file
    // keeps the raw message as it came, so it is taken out here.
    let bad = bad.replace("not json, etl-secret is not here", "");
    let stream = unique("SECRETS");
    let subject = unique("secrets");
    nats_setup(
        "nats://etl-token@127.0.0.1:4225",
        &NatsAuth::default(),
        &stream,
        &subject,
    );
    let nats_run = nats_read(
        d,
        "nats://etl-token@127.0.0.1:4225",
        &stream,
        &subject,
        &["--log-json"],
    );
    expect(&nats_run, "nats").code(0);
    let kafka_run = kafka_scram_256(d, "t", "g", ("etl", "hunter2secret"), &["--log-json"]);
    expect(&kafka_run, "kafka").code(1).stdout("");
    let runs = crate::common::dump(&d.join("wh.db"), "_etl_runs").join("\n");
    let mut seen = vec![
        ("rejects", bad),
        (
            "checkpoint",
            std::fs::read_to_string(d.join("c.ckpt")).expect("ckpt"),
        ),
        (
            "load log",
            std::fs::read_to_string(d.join("load.log")).expect("log"),
        ),
        ("run history", runs),
    ];
    for (what, out) in [
        ("redis", &redis_run),
        ("nats", &nats_run),
        ("kafka", &kafka_run),
    ] {
        seen.push((what, format!("{}{}", stdout(out), stderr(out))));
    }
    for (what, text) in &seen {
        assert!(!text.is_empty(), "{what} is empty");
        for secret in ["etl-secret", "etl-token", "hunter2secret"] {
            assert!(!text.contains(secret), "{what} holds {secret:?}: {text}");
        }
    }
}

#[test]
fn broker_security_options_are_checked_before_connecting() {
    let dir = tempdir();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "redis://h",
                "--key",
                "k",
                "--group",
                "g",
                "--checkpoint",
                "c",
                "--creds",
                "x",
            ],
            "etl-watch: error: --creds is for nats:// and tls://\n",
        ),
        (
            &[
                "nats://h",
                "--subject",
                "s",
                "--durable",
                "d",
                "--checkpoint",
                "c",
                "--sasl-username",
                "u",
            ],
            "etl-watch: error: --kafka-config, --security-protocol and --sasl-* are for kafka://\n",
        ),
        (
            &[
                "kafka://h",
                "--topic",
                "t",
                "--group",
                "g",
                "--checkpoint",
                "c",
                "--security-protocol",
                "SASL_SSL",
            ],
            "etl-watch: error: security.protocol SASL_* needs sasl.username and sasl.password \
             (--kafka-config, or ETL_KAFKA_SASL_USERNAME and ETL_KAFKA_SASL_PASSWORD)\n",
        ),
        (
            &[
                "kafka://h",
                "--topic",
                "t",
                "--group",
                "g",
                "--checkpoint",
                "c",
                "--security-protocol",
                "TLS",
            ],
            "etl-watch: error: security.protocol \"TLS\" is not one of PLAINTEXT, SSL, \
             SASL_PLAINTEXT, SASL_SSL\n",
        ),
        (
            &[
                "kafka://u:hunter2secret@h",
                "--topic",
                "t",
                "--group",
                "g",
                "--checkpoint",
                "c",
            ],
            "etl-watch: error: a kafka:// URL holds no user or password; hint: SASL is set with \
             security.protocol and sasl.* in --kafka-config FILE\n",
        ),
        (
            &["-", "--ca-cert", "x"],
            "etl-watch: error: the broker security options (--ca-cert, --client-cert, \
             --client-key, --creds, --kafka-config, --security-protocol, --sasl-*) need a \
             broker URL\n",
        ),
    ];
    for (args, message) in cases {
        let out = watch(dir.path(), args);
        expect(&out, format!("{args:?}"))
            .code(2)
            .stdout("")
            .stderr(message);
    }
}

/// A TLS proxy on a port of its own in front of the plain Redis, with a
/// certificate (signed by the test CA) for the name `localhost` only;
/// stopped when dropped.
struct NamedProxy {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl NamedProxy {
    fn start(target: u16) -> NamedProxy {
        let dir = tempdir();
        let d = dir.path();
        let run = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(d)
                .output()
                .expect("openssl runs");
            assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
        };
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "named.key",
            "-out",
            "named.csr",
            "-subj",
            "/CN=localhost",
        ]);
        std::fs::write(d.join("named.ext"), "subjectAltName=DNS:localhost\n").expect("ext");
        let (ca, ca_key) = (cert("ca.crt"), cert("ca.key"));
        run(&[
            "x509",
            "-req",
            "-in",
            "named.csr",
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-CAserial",
            "named.srl",
            "-days",
            "2",
            "-out",
            "named.crt",
            "-extfile",
            "named.ext",
        ]);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("address").port();
        drop(listener);
        let proxy = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls_proxy.py");
        let child = std::process::Command::new("python3")
            .arg(proxy)
            .args([port.to_string(), target.to_string()])
            .arg(d.join("named.crt"))
            .arg(d.join("named.key"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the TLS proxy did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        NamedProxy {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for NamedProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server whose certificate names another host is refused, naming the
/// names it holds, whatever CA signed it; the same server by its name is
/// read.
#[test]
fn a_broker_certificate_for_another_name_is_refused() {
    if !up(6380, "Redis TLS") || !reachable("127.0.0.1:6379", "Redis", "ETLKIT_REQUIRE_REDIS") {
        return;
    }
    let proxy = NamedProxy::start(6379);
    let dir = tempdir();
    let key = unique("named");
    let ca = cert("ca.crt");
    let read = |host: &str, group: &str| {
        let url = format!("rediss://{host}:{}", proxy.port);
        let rest = [
            "--key",
            key.as_str(),
            "--group",
            group,
            "--create-stream",
            "--once",
            "--checkpoint",
            group,
            "--ca-cert",
            ca.as_str(),
        ];
        watch_args(dir.path(), &url, &rest)
    };
    let out = read("127.0.0.1", "by-address");
    expect(&out, "a name the certificate lacks")
        .code(1)
        .stdout("")
        .stderr_like(&format!(
            "etl-watch: error: rediss://127.0.0.1:{}: TLS handshake failed: *localhost*\n",
            proxy.port
        ));
    assert!(stderr(&out).contains("127.0.0.1"), "{}", stderr(&out));
    let out = read("localhost", "by-name");
    expect(&out, "the name the certificate holds").code(0);
}

/// A managed NATS's shape: TLS required and a user with a password on one
/// server. Read with both; a wrong password over TLS is refused, and so is
/// the right one without the CA that signed the server.
#[test]
fn nats_over_tls_with_a_user_and_password_reads_and_refuses_a_wrong_one() {
    if !up(4226, "NATS TLS with users") {
        return;
    }
    let dir = tempdir();
    let stream = unique("TLSPW");
    let subject = unique("tlspw");
    let auth = NatsAuth {
        tls: options("ca.crt", false),
        creds: None,
    };
    nats_setup(
        "tls://etl:etl-secret@127.0.0.1:4226",
        &auth,
        &stream,
        &subject,
    );
    let ca = cert("ca.crt");
    for url in [
        "tls://etl:etl-secret@127.0.0.1:4226",
        "nats://etl:etl-secret@localhost:4226",
    ] {
        let out = nats_read(dir.path(), url, &stream, &subject, &["--ca-cert", &ca]);
        expect(&out, url).code(0);
        assert_eq!(records(&stdout(&out)).len(), 3, "{url}: {}", stderr(&out));
        assert!(!stderr(&out).contains("etl-secret"), "{}", stderr(&out));
    }
    let out = nats_read(
        dir.path(),
        "tls://etl:not-the-secret@127.0.0.1:4226",
        &stream,
        &subject,
        &["--ca-cert", &ca],
    );
    expect(&out, "wrong password over TLS").code(1).stdout("");
    let err = stderr(&out);
    assert!(err.contains("Authorization Violation"), "{err}");
    assert!(!err.contains("not-the-secret"), "{err}");
    let other = cert("other-ca.crt");
    let out = nats_read(
        dir.path(),
        "tls://etl:etl-secret@127.0.0.1:4226",
        &stream,
        &subject,
        &["--ca-cert", &other],
    );
    expect(&out, "wrong CA").code(1).stdout("").stderr(
        "etl-watch: error: tls://127.0.0.1:4226: TLS handshake failed: the server's \
         certificate is not signed by a trusted certificate authority (unknown issuer); hint: \
         --ca-cert FILE names the CA that signed it\n",
    );
}
