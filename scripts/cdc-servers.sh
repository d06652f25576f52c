#!/usr/bin/env bash
# Servers for etlkit's change data capture tests, beside (never instead of)
# the machine's own servers, whose settings stay as they are:
#   - a PostgreSQL cluster on 127.0.0.1:55433 with wal_level = logical
#     (trust authentication on loopback), databases postgres and test;
#   - a MariaDB on 127.0.0.1:33307 writing a row-based binary log with
#     full row images and full row metadata (root without a password),
#     database test.
#
#   scripts/cdc-servers.sh start    make what is missing and start what is down
#   scripts/cdc-servers.sh stop     stop them
#   scripts/cdc-servers.sh url      print the PostgreSQL test database's URL
#   scripts/cdc-servers.sh mysql-url  print the MariaDB test database's URL
#
# Everything lives in $ETLKIT_CDC_DIR (default /tmp/etlkit-cdc). `start` is
# idempotent and safe to run from several test processes at once (a lock).
# PostgreSQL and MariaDB refuse to run as root: as root, they run as the
# postgres and mysql users.
set -euo pipefail

base="${ETLKIT_CDC_DIR:-/tmp/etlkit-cdc}"
pg_port="${ETLKIT_CDC_PG_PORT:-55433}"
pg_bin="${ETLKIT_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}"
my_port="${ETLKIT_CDC_MYSQL_PORT:-33307}"
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

pg_up() { "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" 2>/dev/null; }

start_pg() {
  if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
    echo "no PostgreSQL server binaries (initdb) under /usr/lib/postgresql" >&2
    return 1
  fi
  if [ ! -f "$pg/done" ]; then
    rm -rf "$pg"
    mkdir -p "$pg/sock"
    own postgres "$pg"
    as_user postgres "$pg_bin/initdb" -D "$pg/data" -U postgres --auth=trust -E UTF8 \
      --no-sync >"$pg/initdb.log" 2>&1
    cat >>"$pg/data/postgresql.conf" <<EOF
port = $pg_port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$pg/sock'
wal_level = logical
max_replication_slots = 64
max_wal_senders = 8
fsync = off
shared_buffers = 32MB
EOF
    own postgres "$pg/data"
  fi
  if ! pg_up; then
    as_user postgres "$pg_bin/pg_ctl" -D "$pg/data" -l "$pg/server.log" -w -t 60 start >/dev/null 9>&-
  fi
  if [ ! -f "$pg/done" ]; then
    as_user postgres "$pg_bin/psql" -h "$pg/sock" -p "$pg_port" -U postgres -d postgres -qAt \
      -c "CREATE DATABASE test" >/dev/null
    touch "$pg/done"
  fi
}

my_up() { mariadb-admin --no-defaults --socket="$my/sock" -uroot ping >/dev/null 2>&1; }

start_mariadb() {
  if [ ! -f "$my/done" ]; then
    rm -rf "$my"
    mkdir -p "$my"
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
      --server-id=1 --log-bin="$my/data/binlog" --binlog-format=ROW \
      --binlog-row-image=FULL --binlog-row-metadata=FULL </dev/null >/dev/null 2>&1 9>&- &)
    for _ in $(seq 60); do my_up && break; sleep 1; done
    my_up || { echo "MariaDB did not start; see $my/error.log" >&2; return 1; }
  fi
  if [ ! -f "$my/done" ]; then
    mariadb --no-defaults --socket="$my/sock" -uroot -e "
      CREATE DATABASE IF NOT EXISTS test;
      CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
      GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
    touch "$my/done"
  fi
}

stop() {
  if [ -f "$my/mariadbd.pid" ]; then
    kill "$(cat "$my/mariadbd.pid")" 2>/dev/null || true
  fi
  if [ -f "$pg/data/postmaster.pid" ]; then
    as_user postgres "$pg_bin/pg_ctl" -D "$pg/data" -m fast -w stop >/dev/null || true
  fi
}

case "${1:-}" in
  start)
    mkdir -p "$base"
    chmod 755 "$base"
    exec 9>"$base/lock"
    flock 9
    start_pg
    start_mariadb
    ;;
  stop) stop ;;
  url) echo "postgres://postgres@127.0.0.1:$pg_port/test" ;;
  mysql-url) echo "mysql://root@127.0.0.1:$my_port/test" ;;
  *)
    echo "usage: $0 start|stop|url|mysql-url" >&2
    exit 2
    ;;
esac
