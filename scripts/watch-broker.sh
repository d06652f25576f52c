#!/usr/bin/env bash
# Streams a message broker into a database table, exactly once, for as long
# as it runs: a Redis stream (consumer group), a NATS JetStream subject
# (durable pull consumer) or a Kafka topic (all partitions, offsets committed
# for the group). Run it under systemd (Restart=always) or in the
# `while true` loop at the bottom; a crash or a kill loses and repeats
# nothing: messages are acknowledged only after etl-load committed their
# batch, and a batch sent again after a restart keeps its id, which etl-load
# skips when it was committed already.
#
#   scripts/watch-broker.sh redis://127.0.0.1:6379 orders /srv/etl/warehouse.db
#   scripts/watch-broker.sh nats://127.0.0.1:4222 'orders.>' postgres://etl@db/wh
#   scripts/watch-broker.sh kafka://127.0.0.1:9092 orders /srv/etl/warehouse.db
#
# A systemd unit for it:
#   [Service]
#   ExecStart=/srv/etlkit/scripts/watch-broker.sh redis://127.0.0.1:6379 orders /srv/etl/warehouse.db
#   Restart=always
#   RestartSec=5
set -euo pipefail

url=${1:?usage: watch-broker.sh URL KEY|SUBJECT|TOPIC TARGET [TABLE]}
source=${2:?usage: watch-broker.sh URL KEY|SUBJECT|TOPIC TARGET [TABLE]}
target=${3:?usage: watch-broker.sh URL KEY|SUBJECT|TOPIC TARGET [TABLE]}
table=${4:-orders}
state=${STATE_DIR:-/var/lib/etlkit}
mkdir -p "$state"

case "$url" in
  redis://*) from=(--key "$source" --group "${GROUP:-etl}" --consumer "${CONSUMER:-$(hostname)}") ;;
  nats://*)  from=(--subject "$source" --durable "${DURABLE:-etl-$table}" --ack-wait "${ACK_WAIT:-60}") ;;
  kafka://*) from=(--topic "$source" --group "${GROUP:-etl-$table}") ;;
  *) echo "watch-broker.sh: URL must be redis://, nats:// or kafka://" >&2; exit 2 ;;
esac

# Batches of up to 5000 messages or 2 seconds, whichever comes first; bad
# payloads go aside (with their sequence numbers) instead of stopping the job.
# Without systemd: restart after any failure, 5 seconds apart.
while true; do
  etl-watch "$url" "${from[@]}" \
    --checkpoint "$state/$table.broker.ckpt" \
    --batch-rows 5000 --batch-interval 2 \
    --rejects "$state/$table.rejects.ndjson" \
    --exec "etl-load -q '$target' --table '$table' --mode append" \
    && break
  status=$?
  [ "$status" -eq 3 ] && break   # stopped with rejected messages set aside
  echo "watch-broker.sh: etl-watch exited $status; restarting in 5 s" >&2
  sleep 5
done
