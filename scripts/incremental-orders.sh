#!/usr/bin/env bash
# Incremental load of the sample orders into a SQLite warehouse, safe to run
# from cron as often as you like:
#   */15 * * * *  /srv/etlkit/scripts/incremental-orders.sh /srv/etl/warehouse.db
#
# etl-extract emits only orders whose ordered_at is past the bookmark stored
# in the warehouse; etl-load upserts them by order_id and stores the new
# bookmark in the same transaction. A run that fails anywhere leaves both
# unchanged, and the next run picks up exactly what was missed.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
db=${1:-warehouse.db}
source_file=${SOURCE:-$here/sample-data/orders.csv}

etl-extract -q "$source_file" --stream orders --cursor ordered_at --state "$db" \
  | etl-load -q "$db" --table orders --mode upsert --key order_id
