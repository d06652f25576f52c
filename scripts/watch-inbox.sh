#!/usr/bin/env bash
# Loads whatever has arrived in an inbox directory of NDJSON files into a
# SQLite table, then exits. Made for cron:
#   */5 * * * *  /srv/etlkit/scripts/watch-inbox.sh /srv/inbox /srv/etl/warehouse.db
#
# The checkpoint remembers how far each file was read (by device, inode and a
# fingerprint, so renamed files are not read twice); etl-load records each
# batch it commits, so a run killed between the load and the checkpoint write
# repeats nothing on the next run. A second run while one is still going
# exits with an error instead of reading the same files.
set -euo pipefail

inbox=${1:?usage: watch-inbox.sh INBOX_DIR DB [TABLE]}
db=${2:?usage: watch-inbox.sh INBOX_DIR DB [TABLE]}
table=${3:-events}
checkpoint=${CHECKPOINT:-$db.inbox-checkpoint.json}

etl-watch --once --format ndjson "$inbox" \
  --checkpoint "$checkpoint" \
  --batch-rows 50000 \
  --exec "etl-load -q '$db' --table '$table'"
