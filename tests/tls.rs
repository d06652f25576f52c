//! TLS to PostgreSQL and MariaDB, against real servers: the machine's own
//! PostgreSQL (ssl = on, with a certificate nothing here trusts) and the
//! TLS-only servers `scripts/tls-servers.sh start` makes beside it (a
//! private CA; PostgreSQL on 127.0.0.1:55432 with only `hostssl` lines,
//! MariaDB on 127.0.0.1:33306 with require_secure_transport; both with a
//! certificate for the name `localhost` only). Without those servers the
//! tests skip loudly, unless ETLKIT_REQUIRE_TLS is set, as in CI.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::common::expect::expect;
use crate::common::*;

const PG: &str = "localhost:55432";
const MY: &str = "localhost:33306";

/// The directory of the test CA's files (ca.crt, other-ca.crt,
/// client.crt, client.key), once the servers are up; `None` (with a loud
/// note) when they cannot be started, unless ETLKIT_REQUIRE_TLS is set.
fn servers() -> Option<PathBuf> {
    static STARTED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let started = STARTED.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/tls-servers.sh");
        let out = std::process::Command::new(&script)
            .arg("start")
            .output()
            .map_err(|e| format!("{}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} start failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let dir = std::process::Command::new(&script)
            .arg("dir")
            .output()
            .map_err(|e| e.to_string())?;
        let dir = PathBuf::from(String::from_utf8_lossy(&dir.stdout).trim()).join("ca");
        for port in [55432, 33306] {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .map_err(|e| format!("nothing listens on 127.0.0.1:{port}: {e}"))?;
        }
        Ok(dir)
    });
    match started {
        Ok(dir) => Some(dir.clone()),
        Err(e) if std::env::var_os("ETLKIT_REQUIRE_TLS").is_some() => {
            panic!("the TLS servers are required (ETLKIT_REQUIRE_TLS) but down: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: TLS test: the TLS servers are down ({e})");
            None
        }
    }
}

fn file(ca: &Path, name: &str) -> String {
    ca.join(name).display().to_string()
}

/// etl-extract's output for `url` and `query`, with `env` set.
fn extract(dir: &Path, url: &str, query: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut c = cmd(EXTRACT, dir);
    c.args(["-q", url, "--query", query])
        .envs(env.iter().copied());
    run(c)
}

/// The one record a query returns, as JSON text.
fn one_record(out: &std::process::Output, what: &str) -> String {
    assert_eq!(code(out), 0, "{what}: {}", stderr(out));
    let records = records(&stdout(out));
    assert_eq!(records.len(), 1, "{what}: {}", stdout(out));
    records[0].to_string()
}

const PG_SSL: &str =
    "SELECT ssl, current_user AS who FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

#[test]
fn postgres_require_encrypts_without_checking() {
    let Some(url) = pg_url() else { return };
    let dir = tempdir();
    let d = dir.path();
    let sep = if url.contains('?') { '&' } else { '?' };
    let query = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    let out = extract(d, &format!("{url}{sep}sslmode=require"), query, &[]);
    assert_eq!(one_record(&out, "require"), r#"{"ssl":true}"#);
    let out = extract(d, &url, query, &[("PGSSLMODE", "require")]);
    assert_eq!(one_record(&out, "PGSSLMODE"), r#"{"ssl":true}"#);
    // prefer, the default, encrypts when the server offers TLS.
    let out = extract(d, &url, query, &[]);
    assert_eq!(one_record(&out, "prefer"), r#"{"ssl":true}"#);
    let out = extract(d, &format!("{url}{sep}sslmode=disable"), query, &[]);
    assert_eq!(one_record(&out, "disable"), r#"{"ssl":false}"#);
}

#[test]
fn postgres_verify_full_loads_extracts_and_keeps_state() {
    let Some(ca) = servers() else { return };
    let dir = tempdir();
    let d = dir.path();
    let schema = format!("etl_t_tls_{}", std::process::id());
    let url = format!(
        "postgres://postgres@{PG}/test?sslmode=verify-full&sslrootcert={}&options=-csearch_path%3D{schema}",
        file(&ca, "ca.crt")
    );
    let mut client = etlkit::pg::conn::connect(&url).expect("connect over TLS");
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .expect("schema");
    let table = "orders";
    let orders = sample("orders.csv");
    let out = bash(
        &format!(
            "etl-extract -q {} --cursor ordered_at --state '{url}' \
             | etl-load -q '{url}' --table {table}",
            orders.display()
        ),
        d,
    );
    expect(&out, "verify-full load")
        .code(0)
        .stdout("")
        .stderr("");
    let out = extract(d, &url, &format!("SELECT count(*) AS n FROM {table}"), &[]);
    assert_eq!(one_record(&out, "count"), r#"{"n":12}"#);
    let out = extract(d, &url, PG_SSL, &[]);
    assert_eq!(
        one_record(&out, "encrypted"),
        r#"{"ssl":true,"who":"postgres"}"#
    );
    // The bookmark went to the TLS server too: a second run has nothing new.
    let out = bash(
        &format!(
            "etl-extract -q {} --cursor ordered_at --state '{url}' | grep -c '^{{\"order_id\"' || true",
            orders.display()
        ),
        d,
    );
    expect(&out, "second run").code(0).stdout("0\n").stderr("");
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .expect("clean up");
}

#[test]
fn postgres_certificate_failures_are_named() {
    let Some(ca) = servers() else { return };
    let dir = tempdir();
    let d = dir.path();
    let root = file(&ca, "ca.crt");
    let other = file(&ca, "other-ca.crt");
    let url =
        format!("postgres://postgres@127.0.0.1:55432/test?sslmode=verify-full&sslrootcert={root}");
    expect(&extract(d, &url, "SELECT 1", &[]), "name mismatch")
        .code(1)
        .stdout("")
        .stderr(&format!(
            "etl-extract: error: cannot connect to {url}: TLS with 127.0.0.1:55432 failed: the \
             server's certificate is not valid for the name 127.0.0.1 (it is for localhost)\n"
        ));
    let url = format!("postgres://postgres@{PG}/test?sslmode=verify-ca&sslrootcert={other}");
    expect(&extract(d, &url, "SELECT 1", &[]), "wrong CA")
        .code(1)
        .stdout("")
        .stderr(&format!(
            "etl-extract: error: cannot connect to {url}: TLS with {PG} failed: the server's \
             certificate is not signed by a trusted certificate authority (unknown issuer)\n"
        ));
    // sslrootcert=system: the public authorities, which did not sign it.
    let url = format!("postgres://postgres@{PG}/test?sslrootcert=system");
    expect(&extract(d, &url, "SELECT 1", &[]), "system roots")
        .code(1)
        .stderr(&format!(
            "etl-extract: error: cannot connect to {url}: TLS with {PG} failed: the server's \
             certificate is not signed by a trusted certificate authority (unknown issuer)\n"
        ));
    // The same from the variables: PGSSLMODE and PGSSLROOTCERT.
    let url = "postgres://postgres@127.0.0.1:55432/test";
    expect(
        &extract(
            d,
            url,
            "SELECT 1",
            &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &root)],
        ),
        "PGSSLMODE=verify-full",
    )
    .code(1)
    .stderr(&format!(
        "etl-extract: error: cannot connect to {url}: TLS with 127.0.0.1:55432 failed: the \
         server's certificate is not valid for the name 127.0.0.1 (it is for localhost)\n"
    ));
    let url = format!("postgres://postgres@{PG}/test");
    assert_eq!(
        one_record(
            &extract(
                d,
                &url,
                PG_SSL,
                &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &root)]
            ),
            "PGSSLROOTCERT"
        ),
        r#"{"ssl":true,"who":"postgres"}"#
    );
    // As libpq: require checks the chain when ~/.postgresql/root.crt exists.
    let home = d.join("home");
    std::fs::create_dir_all(home.join(".postgresql")).expect("mkdir");
    std::fs::copy(&other, home.join(".postgresql/root.crt")).expect("copy");
    let url = format!("postgres://postgres@{PG}/test?sslmode=require");
    let home_var = home.display().to_string();
    expect(
        &extract(d, &url, "SELECT 1", &[("HOME", &home_var)]),
        "require with root.crt",
    )
    .code(1)
    .stderr(&format!(
        "etl-extract: error: cannot connect to {url}: TLS with {PG} failed: the server's \
         certificate is not signed by a trusted certificate authority (unknown issuer)\n"
    ));
    // etl-load fails the same way, before reading anything.
    let mut c = cmd(LOAD, d);
    let url = format!("postgres://postgres@{PG}/test?sslmode=verify-ca&sslrootcert={other}");
    c.args(["-q", &url, "--table", "never"]);
    expect(&run_with_input(c, b"{\"id\":1}\n"), "load, wrong CA")
        .code(1)
        .stdout("")
        .stderr(&format!(
            "etl-load: error: cannot connect to {url}: TLS with {PG} failed: the server's \
             certificate is not signed by a trusted certificate authority (unknown issuer)\n"
        ));
}

/// verify-ca checks the certificate's authority, not its name: with the
/// right CA the certificate for `localhost` is taken at 127.0.0.1 too, from
/// the URL or from PGSSLMODE and PGSSLROOTCERT, and the session is
/// encrypted.
#[test]
fn postgres_verify_ca_trusts_the_authority_not_the_name() {
    let Some(ca) = servers() else { return };
    let dir = tempdir();
    let d = dir.path();
    let root = file(&ca, "ca.crt");
    for host in ["127.0.0.1:55432", PG] {
        let url = format!("postgres://postgres@{host}/test?sslmode=verify-ca&sslrootcert={root}");
        assert_eq!(
            one_record(&extract(d, &url, PG_SSL, &[]), &url),
            r#"{"ssl":true,"who":"postgres"}"#
        );
    }
    let env = [("PGSSLMODE", "verify-ca"), ("PGSSLROOTCERT", root.as_str())];
    let url = "postgres://postgres@127.0.0.1:55432/test";
    assert_eq!(
        one_record(&extract(d, url, PG_SSL, &env), "PGSSLMODE=verify-ca"),
        r#"{"ssl":true,"who":"postgres"}"#
    );
}

#[test]
fn postgres_tls_only_server_refuses_plain_text() {
    let Some(_) = servers() else { return };
    let dir = tempdir();
    let d = dir.path();
    let url = "postgres://postgres@127.0.0.1:55432/test?sslmode=disable";
    expect(&extract(d, url, "SELECT 1", &[]), "disable")
        .code(1)
        .stdout("")
        .stderr(&format!(
            "etl-extract: error: cannot connect to {url}: no pg_hba.conf entry for host \
             \"127.0.0.1\", user \"postgres\", database \"test\", no encryption\n"
        ));
    // allow: plain text first, then TLS when the server refuses it.
    let url = "postgres://postgres@127.0.0.1:55432/test?sslmode=allow";
    assert_eq!(
        one_record(&extract(d, url, PG_SSL, &[]), "allow"),
        r#"{"ssl":true,"who":"postgres"}"#
    );
    // A wrong password is the server's refusal, and never shown.
    let url = "postgres://etl_pw:Wr0ng-s3cret@localhost:55432/test?sslmode=require";
    expect(&extract(d, url, "SELECT 1", &[]), "wrong password")
        .code(1)
        .stderr(
            "etl-extract: error: cannot connect to \
             postgres://etl_pw@localhost:55432/test?sslmode=require: password authentication \
             failed for user \"etl_pw\"\n",
        );
    let url =
        "postgres://etl_pw:tls-s3cret@localhost:55432/test?sslmode=require&channel_binding=require";
    assert_eq!(
        one_record(&extract(d, url, PG_SSL, &[]), "scram over TLS"),
        r#"{"ssl":true,"who":"etl_pw"}"#
    );
}

#[test]
fn postgres_client_certificates() {
    let Some(ca) = servers() else { return };
    let dir = tempdir();
    let d = dir.path();
    let (root, cert, key) = (
        file(&ca, "ca.crt"),
        file(&ca, "client.crt"),
        file(&ca, "client.key"),
    );
    let url = format!(
        "postgres://etl_cert@{PG}/test?sslmode=verify-full&sslrootcert={root}&sslcert={cert}&sslkey={key}"
    );
    assert_eq!(
        one_record(&extract(d, &url, PG_SSL, &[]), "sslcert"),
        r#"{"ssl":true,"who":"etl_cert"}"#
    );
    let url = format!("postgres://etl_cert@{PG}/test?sslmode=verify-full&sslrootcert={root}");
    expect(&extract(d, &url, "SELECT 1", &[]), "no client certificate")
        .code(1)
        .stderr(&format!(
            "etl-extract: error: cannot connect to {url}: connection requires a valid client \
             certificate\n"
        ));
    assert_eq!(
        one_record(
            &extract(d, &url, PG_SSL, &[("PGSSLCERT", &cert), ("PGSSLKEY", &key)]),
            "PGSSLCERT"
        ),
        r#"{"ssl":true,"who":"etl_cert"}"#
    );
    // Where libpq looks: ~/.postgresql/root.crt, postgresql.crt, .key.
    let home = d.join("home");
    let pg_dir = home.join(".postgresql");
    std::fs::create_dir_all(&pg_dir).expect("mkdir");
    std::fs::copy(&root, pg_dir.join("root.crt")).expect("copy");
    std::fs::copy(&cert, pg_dir.join("postgresql.crt")).expect("copy");
    let home_key = pg_dir.join("postgresql.key");
    std::fs::copy(&key, &home_key).expect("copy");
    let home_var = home.display().to_string();
    let url = format!("postgres://etl_cert@{PG}/test?sslmode=verify-full");
    std::fs::set_permissions(
        &home_key,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("chmod");
    expect(
        &extract(d, &url, "SELECT 1", &[("HOME", &home_var)]),
        "key readable by others",
    )
    .code(2)
    .stderr(&format!(
        "etl-extract: error: cannot connect to {url}: client key {} has group or world access \
         (mode 644)\nhint: chmod 600 the key file (0640 at most when root owns it)\n",
        home_key.display()
    ));
    std::fs::set_permissions(
        &home_key,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    assert_eq!(
        one_record(
            &extract(d, &url, PG_SSL, &[("HOME", &home_var)]),
            "~/.postgresql"
        ),
        r#"{"ssl":true,"who":"etl_cert"}"#
    );
}

const MY_TLS: &str = "SELECT variable_value <> '' AS tls, current_user() AS who \
     FROM information_schema.session_status WHERE variable_name = 'Ssl_cipher'";

#[test]
fn mysql_modes_against_a_tls_only_server() {
    let Some(ca) = servers() else { return };
    let dir = tempdir();
    let d = dir.path();
    let root = file(&ca, "ca.crt");
    for url in [
        "mysql://etl@127.0.0.1:33306/test?ssl-mode=REQUIRED".to_string(),
        "mysql://etl@127.0.0.1:33306/test".to_string(),
        format!("mysql://etl@127.0.0.1:33306/test?ssl_mode=VERIFY_CA&ssl_ca={root}"),
        format!("mysql://etl@{MY}/test?ssl-mode=VERIFY_IDENTITY&ssl-ca={root}"),
    ] {
        assert_eq!(
            one_record(&extract(d, &url, MY_TLS, &[]), &url),
            r#"{"tls":1,"who":"etl@%"}"#,
            "{url}"
        );
    }
    let url = format!("mysql://etl@127.0.0.1:33306/test?ssl-mode=VERIFY_IDENTITY&ssl-ca={root}");
    expect(&extract(d, &url, "SELECT 1", &[]), "name mismatch")
        .code(1)
        .stdout("")
        .stderr(&format!(
            "etl-extract: error: cannot connect to {url}: TLS with 127.0.0.1:33306 failed: the \
             server's certificate is not valid for the name 127.0.0.1 (it is for localhost)\n"
        ));
    let other = file(&ca, "other-ca.crt");
    let url = format!("mysql://etl@{MY}/test?ssl-mode=VERIFY_CA&ssl-ca={other}");
    expect(&extract(d, &url, "SELECT 1", &[]), "wrong CA")
        .code(1)
        .stdout("")
        .stderr(&format!(
            "etl-extract: error: cannot connect to {url}: TLS with {MY} failed: the server's \
             certificate is not signed by a trusted certificate authority (unknown issuer)\n"
        ));
    // Plain text with the right credentials: MariaDB's
    // require_secure_transport answers "Access denied", so the hint names
    // the plain text.
    let plain_text_hint = "hint: with ssl-mode=DISABLED the login went in plain text, which a \
                           server requiring secure transport (MariaDB's \
                           require_secure_transport) refuses as access denied: drop \
                           ssl-mode=DISABLED, or check the user and password\n";
    let url = "mysql://etl@127.0.0.1:33306/test?ssl-mode=DISABLED";
    expect(&extract(d, url, "SELECT 1", &[]), "plain text")
        .code(1)
        .stdout("")
        .stderr(&format!(
            "etl-extract: error: cannot connect to {url}: Access denied for user \
             'etl'@'127.0.0.1' (using password: NO) (error 1045)\n{plain_text_hint}"
        ));
    let url = "mysql://etl_pw:Wr0ng-s3cret@127.0.0.1:33306/test?ssl-mode=DISABLED";
    expect(
        &extract(d, url, "SELECT 1", &[]),
        "plain text, wrong password",
    )
    .code(1)
    .stdout("")
    .stderr(&format!(
        "etl-extract: error: cannot connect to \
             mysql://etl_pw@127.0.0.1:33306/test?ssl-mode=DISABLED: Access denied for user \
             'etl_pw'@'127.0.0.1' (using password: YES) (error 1045)\n{plain_text_hint}"
    ));
    // The same wrong password over TLS is only the password.
    let url = "mysql://etl_pw:Wr0ng-s3cret@127.0.0.1:33306/test?ssl-mode=REQUIRED";
    expect(&extract(d, url, "SELECT 1", &[]), "wrong password over TLS")
        .code(1)
        .stdout("")
        .stderr(
            "etl-extract: error: cannot connect to \
             mysql://etl_pw@127.0.0.1:33306/test?ssl-mode=REQUIRED: Access denied for user \
             'etl_pw'@'127.0.0.1' (using password: YES) (error 1045)\n",
        );
    // A client certificate for the user that requires one.
    let (cert, key) = (file(&ca, "client.crt"), file(&ca, "client.key"));
    let url = format!(
        "mysql://etl_x509@{MY}/test?ssl-mode=VERIFY_IDENTITY&ssl-ca={root}&ssl-cert={cert}&ssl-key={key}"
    );
    assert_eq!(
        one_record(&extract(d, &url, MY_TLS, &[]), "x509"),
        r#"{"tls":1,"who":"etl_x509@%"}"#
    );
    let url = format!("mysql://etl@{MY}/test?ssl-cert={cert}");
    expect(&extract(d, &url, "SELECT 1", &[]), "cert without key")
        .code(2)
        .stderr(&format!(
            "etl-extract: error: {url}: ssl-cert needs ssl-key too\n"
        ));
}

#[test]
fn mysql_tls_from_the_option_file_and_a_load() {
    let Some(ca) = servers() else { return };
    let dir = tempdir();
    let d = dir.path();
    let home = d.join("home");
    std::fs::create_dir_all(&home).expect("mkdir");
    let home_var = home.display().to_string();
    let cnf = |ca_file: &str| {
        std::fs::write(
            home.join(".my.cnf"),
            format!("[client]\nssl-ca = {ca_file}\nssl-mode = VERIFY_IDENTITY\n"),
        )
        .expect("my.cnf");
    };
    cnf(&file(&ca, "ca.crt"));
    let url = format!("mysql://etl@{MY}/test");
    assert_eq!(
        one_record(&extract(d, &url, MY_TLS, &[("HOME", &home_var)]), "my.cnf"),
        r#"{"tls":1,"who":"etl@%"}"#
    );
    let table = format!("tls_orders_{}", std::process::id());
    let out = bash(
        &format!(
            "HOME='{home_var}' etl-extract -q {} | HOME='{home_var}' etl-load -q '{url}' --table {table} \
             && HOME='{home_var}' etl-extract -q '{url}' --query 'SELECT count(*) AS n FROM {table}' \
             | grep -v '\"@etl\"'; HOME='{home_var}' etl-extract -q '{url}' --query 'DROP TABLE {table}' >/dev/null",
            sample("orders.csv").display()
        ),
        d,
    );
    expect(&out, "load over TLS")
        .code(0)
        .stdout("{\"n\":12}\n")
        .stderr("");
    cnf(&file(&ca, "other-ca.crt"));
    expect(
        &extract(d, &url, "SELECT 1", &[("HOME", &home_var)]),
        "my.cnf, wrong CA",
    )
    .code(1)
    .stderr(&format!(
        "etl-extract: error: cannot connect to {url}: TLS with {MY} failed: the server's \
         certificate is not signed by a trusted certificate authority (unknown issuer)\n"
    ));
}

#[test]
fn passwords_stay_out_of_tls_messages() {
    let Some(ca) = servers() else { return };
    let dir = tempdir();
    let d = dir.path();
    let root = file(&ca, "ca.crt");
    let secret = "tls-s3cret";
    let pg_ok =
        format!("postgres://etl_pw:{secret}@{PG}/test?sslmode=verify-full&sslrootcert={root}");
    let pg_mismatch = format!(
        "postgres://etl_pw:{secret}@127.0.0.1:55432/test?sslmode=verify-full&sslrootcert={root}"
    );
    let my_ok = format!("mysql://etl_pw:{secret}@{MY}/test?ssl-mode=VERIFY_IDENTITY&ssl-ca={root}");
    let my_mismatch = format!(
        "mysql://etl_pw:{secret}@127.0.0.1:33306/test?ssl-mode=VERIFY_IDENTITY&ssl-ca={root}"
    );
    let table = format!("tls_secret_{}", std::process::id());
    let runs = [
        format!("etl-extract '{pg_mismatch}' --query 'SELECT 1 AS x'"),
        format!("etl-extract --log-json '{pg_mismatch}' --query 'SELECT 1 AS x'"),
        format!(
            "etl-extract 'postgres://etl_pw@{PG}/test?sslpassword={secret}' --query 'SELECT 1'"
        ),
        format!("etl-extract 'postgres://etl_pw:wrong-{secret}@{PG}/test' --query 'SELECT 1'"),
        format!(
            "echo '{{\"id\":1}}' | etl-load --log-json '{pg_ok}' --table {table} \
             && etl-extract -v '{pg_ok}' --query 'DROP TABLE {table}'"
        ),
        format!("echo '{{\"id\":1}}' | etl-load --log-json '{pg_mismatch}' --table {table}"),
        format!("etl-extract --log-json '{my_mismatch}' --query 'SELECT 1 AS x'"),
        format!("etl-extract 'mysql://etl_pw:wrong-{secret}@{MY}/test' --query 'SELECT 1'"),
        format!(
            "echo '{{\"id\":1}}' | etl-load -v --log-json '{my_ok}' --table {table} \
             && etl-extract -v '{my_ok}' --query 'DROP TABLE {table}'"
        ),
    ];
    for script in &runs {
        let out = bash(script, d);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            !all.contains(secret),
            "password leaked by `{script}`:\n{all}"
        );
        assert!(!all.is_empty(), "`{script}` said nothing");
    }
}
