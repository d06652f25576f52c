#!/usr/bin/env bash
# Mirrors one table of PostgreSQL or MySQL/MariaDB into a target through
# change data capture, starting with a full copy, with no gap and no
# duplicate between the copy and the changes after it:
#
#   scripts/cdc-table.sh start  SOURCE TABLE TARGET KEY   # once: position, copy, catch up
#   scripts/cdc-table.sh follow SOURCE TABLE TARGET KEY   # from cron: apply what changed
#
#   scripts/cdc-table.sh start  postgres://etl@src/app public.orders wh.db id
#   scripts/cdc-table.sh follow postgres://etl@src/app public.orders wh.db id
#   scripts/cdc-table.sh start  mysql://etl@src/shop orders postgres://etl@wh/dw order_id
#
# How `start` avoids a gap and a duplicate:
#   1. the change log's position is taken first (PostgreSQL: a replication
#      slot and a publication are created; MySQL: the binary log's end is
#      kept in the checkpoint), and changes already there are applied;
#   2. the table is copied whole (etl-load --mode replace: readers of the
#      target see the old rows or the new ones);
#   3. the changes since step 1 are applied in commit order, by key
#      (upsert; a delete deletes). Those the copy already holds are applied
#      again, which leaves each row as the source has it; none is missing,
#      since the log's position was taken before the copy began.
# `follow` is step 3 alone; put it in crontab (scripts/crontab.example).
#
# The checkpoint is $STATE_DIR/cdc-NAME.json (default ./), the slot and the
# publication etl_NAME, NAME being TABLE with . as _ and lower-cased.
set -euo pipefail

usage() {
  echo "usage: cdc-table.sh start|follow SOURCE TABLE TARGET KEY" >&2
  exit 2
}
[ $# -eq 5 ] || usage
step=$1 source=$2 table=$3 target=$4 key=$5
name=$(printf '%s' "$table" | tr '.A-Z' '_a-z')
into=${table##*.}
state=${STATE_DIR:-.}
checkpoint="$state/cdc-$name.json"
load="etl-load -q $(printf '%q' "$target") --table $(printf '%q' "$into") --mode upsert --key $(printf '%q' "$key") --delete-when _deleted"

case "$source" in
  postgres://* | postgresql://*) from=(--slot "etl_$name" --publication "etl_$name") ;;
  mysql://* | mariadb://*) from=(--table "$table") ;;
  *) echo "cdc-table.sh: SOURCE is a postgres:// or mysql:// URL" >&2; exit 2 ;;
esac

# One run at a time: a cron `follow` waits while `start` copies (it would
# move the position past changes the copy then overwrites).
exec 9>"$state/cdc-$name.lock"
flock 9

follow() {
  etl-watch -q "$source" "${from[@]}" "$@" --checkpoint "$checkpoint" --once --exec "$load"
}

case "$step" in
  start)
    case "$source" in
      postgres://* | postgresql://*) follow --table "$table" --create-slot ;;
      *) follow ;;
    esac
    if [ "$into" != "$table" ]; then
      copy=(--schema-name "${table%.*}" --table "$into")
    else
      copy=(--table "$table")
    fi
    etl-extract -q "$source" "${copy[@]}" | etl-load -q "$target" --table "$into" --mode replace --allow-empty
    follow
    ;;
  follow) follow ;;
  *) usage ;;
esac
