#!/usr/bin/env bash
# TLS-only database servers for etlkit's TLS tests, beside (never instead
# of) the machine's own servers:
#   - a private CA, a second CA nobody trusts, a server certificate for the
#     name "localhost" only (so 127.0.0.1 is a name mismatch) and a client
#     certificate for the PostgreSQL user etl_cert, made with openssl;
#   - a PostgreSQL cluster on 127.0.0.1:55432 with ssl=on and only
#     `hostssl` lines in pg_hba.conf (etl_cert: client certificate;
#     etl_pw: scram password; everyone else: trust), database test;
#   - a MariaDB on 127.0.0.1:33306 with --require-secure-transport, users
#     etl (no password), etl_pw (password) and etl_x509 (REQUIRE X509),
#     database test.
#
#   scripts/tls-servers.sh start    make what is missing and start what is down
#   scripts/tls-servers.sh stop     stop both servers
#   scripts/tls-servers.sh dir      print the directory holding the files
#
# Everything lives in $ETLKIT_TLS_DIR (default /tmp/etlkit-tls): ca/ holds
# ca.crt, other-ca.crt, server.crt, client.crt and client.key. `start` is
# idempotent and safe to run from several test processes at once (a lock).
# PostgreSQL and MariaDB refuse to run as root: as root, the servers run as
# the postgres and mysql users.
set -euo pipefail

base="${ETLKIT_TLS_DIR:-/tmp/etlkit-tls}"
pg_port="${ETLKIT_TLS_PG_PORT:-55432}"
my_port="${ETLKIT_TLS_MYSQL_PORT:-33306}"
pg_bin="${ETLKIT_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}"
ca="$base/ca"
pg="$base/pg"
my="$base/mariadb"

as_user() { # USER COMMAND...: run as USER when root, else as ourselves
  local user="$1"
  shift
  if [ "$(id -u)" = 0 ]; then
    su "$user" -s /bin/sh -c "$(printf '%q ' "$@")"
  else
    "$@"
  fi
}

own() { # USER PATH...: hand PATHs to USER when root
  local user="$1"
  shift
  if [ "$(id -u)" = 0 ]; then chown -R "$user:" "$@"; fi
}

make_certs() {
  [ -f "$ca/done" ] && return 0
  mkdir -p "$ca"
  cd "$ca"
  local days=3650
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days "$days" \
    -subj "/CN=etlkit test CA" 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.crt \
    -days "$days" -subj "/CN=etlkit untrusted CA" 2>/dev/null
  printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >server.ext
  openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
    -subj "/CN=localhost" 2>/dev/null
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out server.crt -days "$days" -extfile server.ext 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >client.ext
  openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr \
    -subj "/CN=etl_cert" 2>/dev/null
  openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out client.crt -days "$days" -extfile client.ext 2>/dev/null
  chmod 600 ./*.key
  chmod 644 ./*.crt
  touch done
}

pg_up() { "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" 2>/dev/null; }

start_pg() {
  if [ ! -f "$pg/done" ]; then
    rm -rf "$pg"
    mkdir -p "$pg/sock"
    cp "$ca/server.crt" "$ca/server.key" "$ca/ca.crt" "$pg/"
    chmod 600 "$pg/server.key"
    own postgres "$pg"
    as_user postgres "$pg_bin/initdb" -D "$pg/data" -U postgres --auth=trust -E UTF8 \
      --no-sync >"$pg/initdb.log" 2>&1
    cat >>"$pg/data/postgresql.conf" <<EOF
port = $pg_port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$pg/sock'
ssl = on
ssl_cert_file = '$pg/server.crt'
ssl_key_file = '$pg/server.key'
ssl_ca_file = '$pg/ca.crt'
fsync = off
EOF
    cat >"$pg/data/pg_hba.conf" <<EOF
local   all all                  trust
hostssl all etl_cert 127.0.0.1/32 cert
hostssl all etl_pw   127.0.0.1/32 scram-sha-256
hostssl all all      127.0.0.1/32 trust
EOF
    own postgres "$pg/data"
  fi
  if ! pg_up; then
    as_user postgres "$pg_bin/pg_ctl" -D "$pg/data" -l "$pg/server.log" -w -t 60 start >/dev/null 9>&-
  fi
  if [ ! -f "$pg/done" ]; then
    as_user postgres "$pg_bin/psql" -h "$pg/sock" -p "$pg_port" -U postgres -d postgres -qAt \
      -c "CREATE DATABASE test" \
      -c "CREATE ROLE etl_cert LOGIN SUPERUSER" \
      -c "CREATE ROLE etl_pw LOGIN SUPERUSER PASSWORD 'tls-s3cret'" >/dev/null
    touch "$pg/done"
  fi
}

my_up() { mariadb-admin --no-defaults --socket="$my/sock" -uroot ping >/dev/null 2>&1; }

start_mariadb() {
  if [ ! -f "$my/done" ]; then
    rm -rf "$my"
    mkdir -p "$my"
    cp "$ca/server.crt" "$ca/server.key" "$ca/ca.crt" "$my/"
    chmod 600 "$my/server.key"
    own mysql "$my"
    as_user mysql mariadb-install-db --no-defaults --datadir="$my/data" \
      --auth-root-authentication-method=normal --skip-test-db >"$my/install.log" 2>&1
  fi
  if ! my_up; then
    local user=()
    [ "$(id -u)" = 0 ] && user=(--user=mysql)
    (mariadbd --no-defaults "${user[@]}" --datadir="$my/data" --socket="$my/sock" \
      --port="$my_port" --bind-address=127.0.0.1 --pid-file="$my/mariadbd.pid" \
      --log-error="$my/error.log" --skip-name-resolve --innodb-buffer-pool-size=32M \
      --ssl-ca="$my/ca.crt" --ssl-cert="$my/server.crt" --ssl-key="$my/server.key" \
      --require-secure-transport=ON </dev/null >/dev/null 2>&1 9>&- &)
    for _ in $(seq 60); do my_up && break; sleep 1; done
    my_up || { echo "MariaDB did not start; see $my/error.log" >&2; return 1; }
  fi
  if [ ! -f "$my/done" ]; then
    mariadb --no-defaults --socket="$my/sock" -uroot -e "
      CREATE DATABASE IF NOT EXISTS test;
      CREATE USER IF NOT EXISTS 'etl'@'%';
      GRANT ALL ON *.* TO 'etl'@'%';
      CREATE USER IF NOT EXISTS 'etl_pw'@'%' IDENTIFIED BY 'tls-s3cret';
      GRANT ALL ON *.* TO 'etl_pw'@'%';
      CREATE USER IF NOT EXISTS 'etl_x509'@'%' REQUIRE X509;
      GRANT ALL ON *.* TO 'etl_x509'@'%';"
    touch "$my/done"
  fi
}

stop() {
  if [ -f "$pg/data/postmaster.pid" ]; then
    as_user postgres "$pg_bin/pg_ctl" -D "$pg/data" -m fast -w stop >/dev/null || true
  fi
  if [ -f "$my/mariadbd.pid" ]; then
    kill "$(cat "$my/mariadbd.pid")" 2>/dev/null || true
  fi
}

case "${1:-}" in
  start)
    mkdir -p "$base"
    chmod 755 "$base"
    exec 9>"$base/lock"
    flock 9
    make_certs
    start_pg
    start_mariadb
    ;;
  stop) stop ;;
  dir) echo "$base" ;;
  *)
    echo "usage: $0 start|stop|dir" >&2
    exit 2
    ;;
esac
