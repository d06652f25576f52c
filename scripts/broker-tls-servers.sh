#!/usr/bin/env bash
# The broker servers etl-watch's TLS and authentication tests use, beside
# (never instead of) the plain ones, each on its own port on 127.0.0.1:
#
#   6380  Redis, TLS only, client certificate required, a password for the
#         default user (default-secret) and an ACL user etl (etl-secret)
#   4223  NATS with JetStream, TLS required
#   4224  NATS with JetStream, users: etl/etl-secret and an nkey user (the
#         seed in tests/fixtures/nats-user.nk)
#   4225  NATS with JetStream, token etl-token
#   4226  NATS with JetStream, TLS required and a user etl/etl-secret (the
#         shape of a managed NATS)
#   9093  Kafka SSL: a TLS proxy (tests/fixtures/tls_proxy.py) in front of
#         tansu on 19093 (tansu 0.6 takes --cert/--key but does not serve TLS)
#   9094  Kafka SASL_PLAINTEXT: tansu --authentication, its SCRAM users
#         (etl / etl-secret, SHA-256 and SHA-512) and topics in the SQLite
#         file tansu-sasl.db, made through an open broker on 19094 that
#         shares it (tansu built with its libsql storage; .ci/run does)
#   9095  Kafka SASL_SSL: the TLS proxy in front of tansu --authentication
#         on 19095
#
# A private CA, the servers' certificate (localhost, 127.0.0.1), a client
# certificate and a second CA that signed none of them are made with
# openssl in $ETLKIT_BROKER_TLS_DIR (default ~/.cache/etlkit/broker-tls).
# The secrets are test secrets. Each server is started only when its port
# is not answering, so running this twice is harmless.
#
# Usage: scripts/broker-tls-servers.sh start|stop
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${ETLKIT_BROKER_TLS_DIR:-$HOME/.cache/etlkit/broker-tls}"
tansu_bin="${ETLKIT_TANSU:-$HOME/.cache/etlkit/tansu-0.6.0-libsql/bin/tansu}"
# The public nkey of the seed in tests/fixtures/nats-user.nk; the tests
# check that etlkit derives the same one.
nkey_user=UAMX62ZD4FWIKMWGVPEDR6WNL2TYTPQMO2ZJEAZUAON7VCZ5G2GWCXLM

tcp_up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_up() {
  for _ in $(seq 60); do tcp_up "$1" && return 0; sleep 0.5; done
  echo "broker-tls-servers: nothing answers on 127.0.0.1:$1 (see $dir/*.log)" >&2
  return 1
}

certificates() {
  [ -s "$dir/client.crt" ] && return 0
  mkdir -p "$dir"
  local ssl=(openssl req -x509 -newkey rsa:2048 -nodes -days 3650)
  "${ssl[@]}" -keyout "$dir/ca.key" -out "$dir/ca.crt" -subj "/CN=etlkit test CA" 2>/dev/null
  "${ssl[@]}" -keyout "$dir/other-ca.key" -out "$dir/other-ca.crt" -subj "/CN=etlkit other CA" 2>/dev/null
  sign() { # name subject extensions
    openssl req -newkey rsa:2048 -nodes -keyout "$dir/$1.key" -out "$dir/$1.csr" -subj "$2" 2>/dev/null
    printf '%s\n' "$3" >"$dir/$1.ext"
    openssl x509 -req -in "$dir/$1.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
      -days 3650 -out "$dir/$1.crt" -extfile "$dir/$1.ext" 2>/dev/null
    rm -f "$dir/$1.csr" "$dir/$1.ext"
  }
  sign server "/CN=localhost" "subjectAltName=DNS:localhost,IP:127.0.0.1"
  sign client "/CN=etl-watch" "extendedKeyUsage=clientAuth"
  chmod 600 "$dir"/*.key
}

start_redis() {
  tcp_up 6380 && return 0
  redis-server --daemonize yes --bind 127.0.0.1 --port 0 --tls-port 6380 \
    --tls-cert-file "$dir/server.crt" --tls-key-file "$dir/server.key" \
    --tls-ca-cert-file "$dir/ca.crt" --tls-auth-clients yes \
    --requirepass default-secret --user etl on '>etl-secret' '~*' '&*' '+@all' \
    --save "" --appendonly no --dir "$dir" --logfile "$dir/redis-6380.log" \
    --pidfile "$dir/redis-6380.pid"
  wait_up 6380
}

start_nats() { # port, config lines
  local port=$1
  shift
  tcp_up "$port" && return 0
  mkdir -p "$dir/nats-$port"
  {
    echo "listen: 127.0.0.1:$port"
    echo "jetstream { store_dir: \"$dir/nats-$port\" }"
    printf '%s\n' "$@"
  } >"$dir/nats-$port.conf"
  nohup nats-server -c "$dir/nats-$port.conf" -l "$dir/nats-$port.log" >/dev/null 2>&1 &
  echo $! >"$dir/nats-$port.pid"
  wait_up "$port"
}

start_tansu() { # listen port, advertised port, storage, extra flags
  local port=$1 advertised=$2 storage=$3
  shift 3
  tcp_up "$port" && return 0
  # A sqlite:// storage path is taken relative to the working directory.
  (cd "$dir" && nohup "$tansu_bin" broker --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$advertised" \
    --storage-engine "$storage" "$@" >"$dir/tansu-$port.log" 2>&1 &
    echo $! >"$dir/tansu-$port.pid")
  wait_up "$port"
}

sasl_users() { # the SCRAM users of the SASL brokers, made through 19094
  local mechanism
  for mechanism in scram256 scram512; do
    "$tansu_bin" user create --broker tcp://127.0.0.1:19094 --mechanism "$mechanism" \
      etl etl-secret >>"$dir/tansu-users.log" 2>&1
  done
}

start_proxy() { # listen port, target port
  tcp_up "$1" && return 0
  nohup python3 tests/fixtures/tls_proxy.py "$1" "$2" "$dir/server.crt" "$dir/server.key" \
    >"$dir/proxy-$1.log" 2>&1 &
  echo $! >"$dir/proxy-$1.pid"
  wait_up "$1"
}

start() {
  certificates
  start_redis
  start_nats 4223 "tls { cert_file: \"$dir/server.crt\", key_file: \"$dir/server.key\", timeout: 5 }"
  start_nats 4224 "authorization { users = [ { user: etl, password: \"etl-secret\" }, { nkey: $nkey_user } ] }"
  start_nats 4225 "authorization { token: \"etl-token\" }"
  start_nats 4226 "tls { cert_file: \"$dir/server.crt\", key_file: \"$dir/server.key\", timeout: 5 }" \
    "authorization { users = [ { user: etl, password: \"etl-secret\" } ] }"
  if [ -x "$tansu_bin" ]; then
    start_tansu 19093 9093 memory://tansu/
    start_proxy 9093 19093
    if ! tcp_up 19094; then
      # The SASL brokers share one SQLite file with the admin broker: when
      # the admin broker is down they are all started afresh on a new file
      # (a pid file may name a process that is long gone; the users of an
      # old file would be made a second time).
      local p
      for p in 9094 19095; do
        if [ -e "$dir/tansu-$p.pid" ]; then
          kill "$(cat "$dir/tansu-$p.pid")" 2>/dev/null || true
        fi
        rm -f "$dir/tansu-$p.pid"
      done
      for _ in $(seq 50); do tcp_up 9094 || tcp_up 19095 || break; sleep 0.1; done
      rm -f "$dir"/tansu-sasl.db*
      start_tansu 19094 19094 sqlite://tansu-sasl.db
      sasl_users
    fi
    start_tansu 9094 9094 sqlite://tansu-sasl.db --authentication
    start_tansu 19095 9095 sqlite://tansu-sasl.db --authentication
    start_proxy 9095 19095
  else
    echo "broker-tls-servers: no tansu: the Kafka TLS and SASL servers are not started" >&2
  fi
  echo "broker TLS servers up (certificates in $dir)"
}

stop() {
  local pidfile
  for pidfile in "$dir"/*.pid; do
    [ -e "$pidfile" ] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
