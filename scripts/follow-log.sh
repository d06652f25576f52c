#!/usr/bin/env bash
# Follows an application log continuously (appends, rotation by rename and
# copytruncate) and loads its lines into SQLite in micro-batches: a batch
# closes every 1000 lines or 2 seconds, whichever comes first. Run it under
# a supervisor (systemd, runit); after a restart it resumes from its
# checkpoint, losing and repeating nothing.
#   scripts/follow-log.sh /var/log/app.log /srv/etl/logs.db
set -euo pipefail

log=${1:?usage: follow-log.sh LOGFILE DB [TABLE]}
db=${2:?usage: follow-log.sh LOGFILE DB [TABLE]}
table=${3:-app_log}

exec etl-watch "$log" \
  --checkpoint "$db.$(basename "$log").checkpoint.json" \
  --batch-rows 1000 --batch-interval 2 \
  --exec "etl-load -q '$db' --table '$table'"
