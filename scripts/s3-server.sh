#!/usr/bin/env bash
# An S3-compatible server for etlkit's object-storage tests: the moto server
# (PyPI `moto[server]`, in a virtualenv outside the clone) on its own
# loopback port, with signature checking on, so that wrong credentials are
# refused as AWS refuses them.
#
#   scripts/s3-server.sh start    install what is missing, start it if it is down
#   scripts/s3-server.sh stop     stop it
#   scripts/s3-server.sh env      print the endpoint and the test user's keys
#                                 (shell assignments, for `eval`)
#
# moto checks signatures once its first requests are spent
# (INITIAL_NO_AUTH_ACTION_COUNT): `start` spends them creating the IAM user
# etl with a policy allowing everything and an access key, written to
# $ETLKIT_S3_DIR/credentials (default /tmp/etlkit-s3). `start` is
# idempotent and safe to run from several test processes at once (a lock).
set -euo pipefail

base="${ETLKIT_S3_DIR:-/tmp/etlkit-s3}"
port="${ETLKIT_S3_PORT:-5055}"
venv="${ETLKIT_MOTO_VENV:-$HOME/.cache/etlkit/venv-moto}"
# The version checked for conditional writes (If-None-Match: * and If-Match
# on PutObject and CompleteMultipartUpload).
moto_version="5.2.6"

tcp_up() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

install() {
  if "$venv/bin/python" -c "import moto, boto3; assert moto.__version__ == '$moto_version'" 2>/dev/null; then
    return 0
  fi
  echo "== installing moto[server] $moto_version into $venv" >&2
  python3 -m venv "$venv"
  timeout 600 "$venv/bin/pip" install -q "moto[server]==$moto_version"
}

bootstrap() { # create the test user and its key; moto checks signatures after this
  "$venv/bin/python" - "http://127.0.0.1:$port" >"$base/credentials.tmp" <<'EOF'
import json, sys
import boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="etl")
iam.put_user_policy(UserName="etl", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17",
     "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="etl")["AccessKey"]
print(f"AWS_ACCESS_KEY_ID={key['AccessKeyId']}")
print(f"AWS_SECRET_ACCESS_KEY={key['SecretAccessKey']}")
EOF
  mv "$base/credentials.tmp" "$base/credentials"
}

start() {
  mkdir -p "$base"
  exec 9>"$base/lock"
  flock 9
  install
  if tcp_up && [ -s "$base/credentials" ] && [ -f "$base/pid" ] && kill -0 "$(cat "$base/pid")" 2>/dev/null; then
    return 0
  fi
  if tcp_up; then
    echo "something else listens on 127.0.0.1:$port (ETLKIT_S3_PORT)" >&2
    exit 1
  fi
  rm -f "$base/credentials"
  echo "== starting moto (S3) on 127.0.0.1:$port" >&2
  INITIAL_NO_AUTH_ACTION_COUNT=3 setsid "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" \
    >"$base/moto.log" 2>&1 </dev/null 9>&- &
  echo $! >"$base/pid"
  for _ in $(seq 60); do tcp_up && break; sleep 0.5; done
  tcp_up || { echo "moto did not start: see $base/moto.log" >&2; exit 1; }
  bootstrap
}

stop() {
  if [ -f "$base/pid" ]; then
    kill "$(cat "$base/pid")" 2>/dev/null || true
    rm -f "$base/pid" "$base/credentials"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env)
    echo "AWS_ENDPOINT_URL=http://127.0.0.1:$port"
    echo "AWS_REGION=us-east-1"
    cat "$base/credentials"
    ;;
  *)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
