#!/usr/bin/env bash
# etlkit benchmarks: each scenario times etlkit and the tool a user would
# otherwise reach for, on the same data in the same run, checks that both
# produced the same rows and sums, and prints median wall time, the ratio
# and peak memory. Needs the Rust toolchain and sqlite3; GNU time
# (/usr/bin/time) for memory figures. Peers that are missing are skipped
# with a note, unless --install-peers installs them first.
#
#   scripts/bench.sh [--rows N] [--runs K] [--big] [--dir DIR] [--install-peers]
#                    [--against REV | --baseline DIR] [--bin DIR] [--tolerance PCT]
#
#   --rows N          rows in the generated orders file (default 1000000)
#   --runs K          timed runs per tool; the median is reported (default 3)
#   --big             also extract a 10x file (about 1.1 GB per million rows)
#                     for the flat-memory check
#   --dir DIR         where data and databases go (default: a temp dir, removed)
#   --install-peers   install the reference tools first: DuckDB from PyPI into
#                     a virtualenv, xsv with cargo install (both under
#                     $ETLKIT_BENCH_PEERS, default ~/.cache/etlkit/bench-peers),
#                     Miller and GNU time from Debian's packages
#   --against REV     also time etlkit as built from git revision REV (commit,
#                     tag or branch), in the same run: REV is checked out in a
#                     worktree under $ETLKIT_BENCH_CACHE (default
#                     ~/.cache/etlkit/bench-against) and built there with its
#                     own target dir; the binaries are kept per commit, so the
#                     next run against the same commit does not build again
#   --baseline DIR    the same, with binaries already built: DIR holds
#                     etl-extract, etl-transform, etl-load and etl-watch (a
#                     target/release dir; its examples/wire-parse, when there,
#                     is timed for the wire reader row)
#   --bin DIR         time the binaries in DIR (etl-* and examples/gen-orders,
#                     e.g. a target/release dir) instead of building this
#                     checkout; --bin DIR --baseline DIR shows the noise
#   --tolerance PCT   with a baseline, flag rows where etlkit is more than PCT
#                     percent slower than the baseline (default 5)
#
# With --against or --baseline, each etlkit run of a scenario alternates with
# a run of the baseline (the side that goes first swaps every round, so
# machine noise hits both); the baseline's rows and sums are checked against
# the current ones like a peer's. A second table prints per row both medians,
# etlkit/baseline and a flag on rows more than PCT percent slower; the exit
# status is then 3 when a row is flagged. The peer table stays as it is.
#
#   scripts/bench.sh --install-peers --rows 1000000 --runs 5
#   scripts/bench.sh --runs 5 --against main
set -euo pipefail

rows=1000000
runs=3
big=0
dir=""
install_peers=0
against=""
baseline=""
cur_bin=""
tolerance=5
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --big) big=1; shift ;;
    --dir) dir=$2; shift 2 ;;
    --install-peers) install_peers=1; shift ;;
    --against) against=$2; shift 2 ;;
    --baseline) baseline=$2; shift 2 ;;
    --bin) cur_bin=$2; shift 2 ;;
    --tolerance) tolerance=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0"; exit 0 ;;
    *) echo "bench: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -n "$against" ] && [ -n "$baseline" ]; then
  echo "bench: --against and --baseline name the same thing; give one" >&2; exit 2
fi
if ! [[ $tolerance =~ ^[0-9]+([.][0-9]+)?$ ]]; then
  echo "bench: --tolerance takes a percentage, e.g. 5" >&2; exit 2
fi

root=$(cd "$(dirname "$0")/.." && pwd)

# The reference tools live here (xsv's build and DuckDB's virtualenv), so a
# second run does not install them again.
peers=${ETLKIT_BENCH_PEERS:-$HOME/.cache/etlkit/bench-peers}
if [ "$install_peers" = 1 ]; then
  echo "installing peers into $peers..." >&2
  mkdir -p "$peers"
  need=()
  command -v mlr >/dev/null || need+=(miller)
  /usr/bin/time -f %M true >/dev/null 2>&1 || need+=(time)
  command -v sqlite3 >/dev/null || need+=(sqlite3)
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  if ! "$peers/venv/bin/python" -c 'import duckdb' 2>/dev/null; then
    python3 -m venv "$peers/venv"
    "$peers/venv/bin/pip" install -q duckdb
  fi
  if [ ! -x "$peers/bin/xsv" ]; then
    CARGO_TARGET_DIR="$peers/target" cargo install -q --root "$peers" xsv
  fi
fi
export PATH="$PATH:$peers/bin"
duck_py=""
for py in "${ETLKIT_DUCKDB_PYTHON:-}" "$peers/venv/bin/python" "$HOME/.cache/etlkit/venv-duckdb/bin/python" python3; do
  if [ -n "$py" ] && "$py" -c 'import duckdb' 2>/dev/null; then duck_py=$py; break; fi
done
have_duck() { command -v duckdb >/dev/null || [ -n "$duck_py" ]; }
# duckq SQL (written into the work directory below): runs SQL in DuckDB, its
# CLI or else its Python module, printing each result row's columns
# separated by spaces.
write_duckq() {
  if command -v duckdb >/dev/null; then
    # shellcheck disable=SC2016 # $1 is the generated script's argument
    printf '#!/bin/sh\nexec duckdb -noheader -list -separator " " -c "$1"\n' > duckq
  else
    cat > duckq <<PY
#!$duck_py
import duckdb, sys
for row in duckdb.connect().execute(sys.argv[1]).fetchall():
    print(" ".join(str(c) for c in row))
PY
  fi
  chmod +x duckq
}
# The binaries timed: this checkout built for release (or --bin DIR) as
# $bin, first on PATH, and the baseline (--baseline DIR, --against REV) as
# $base, empty without one.
# shellcheck source=SCRIPTDIR/bench-builds.sh
. "$root/scripts/bench-builds.sh"

if [ -z "$dir" ]; then
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
fi
mkdir -p "$dir"
cd "$dir"
if have_duck; then write_duckq; fi

gnu_time=""
if /usr/bin/time -f %M true >/dev/null 2>&1; then gnu_time=/usr/bin/time; fi

echo "generating $rows rows..." >&2
"$bin/examples/gen-orders" "$rows" . >/dev/null
csv_mb=$(( $(stat -c %s orders.csv) / 1000000 ))
delta_rows=$(( rows / 10 + rows / 20 ))

results=()
notes=()

# How a scenario is timed, checked and put in a table, with or without a
# baseline: timed, bench, bench_etl, check, row and the baseline table.
# shellcheck source=SCRIPTDIR/bench-measure.sh
. "$root/scripts/bench-measure.sh"

sql_check="SELECT count(*) || ' ' || sum(quantity) || ' ' || printf('%.2f', sum(unit_price)) FROM orders"
typed_table="CREATE TABLE orders(order_id INTEGER, external_ref INTEGER, customer_id TEXT, zip TEXT,
  product TEXT, quantity INTEGER, unit_price REAL, ordered_at TEXT, shipped TEXT, note TEXT);"

# 1. CSV -> SQLite, full load
echo "1. CSV -> SQLite ($rows rows, $csv_mb MB)" >&2
bench_etl "CSV → SQLite, full load" "etlkit" "rm -f e{b}.db" "$(T x) etl-extract -q orders.csv | $(T l) etl-load -q e{b}.db --table orders"
e_time=$last_time; e_rss=$last_rss
expected=$(sqlite3 e.db "$sql_check")
check "etlkit row count" "$rows" "${expected%% *}"
if [ -n "$base" ]; then check "baseline SQLite load" "$expected" "$(sqlite3 e_b.db "$sql_check")"; fi
if command -v sqlite3 >/dev/null; then
  printf '%s\n.import --csv --skip 1 orders.csv orders\n' "$typed_table" > import.sql
  bench "sqlite3 .import" "rm -f r.db" "$(T s) sqlite3 r.db < import.sql"
  check "sqlite3 .import" "$expected" "$(sqlite3 r.db "$sql_check")"
  row "CSV → SQLite, full load" "${e_time}s (${e_rss} MB)" "sqlite3 .import: ${last_time}s" "$(ratio "$e_time" "$last_time")x" "≤ 1.0x"
  import_time=$last_time
  # --mode replace into a copy of the loaded database, against the same
  # .import into a new one.
  bench_etl "CSV → SQLite, --mode replace" "etlkit" "cp e{b}.db rp{b}.db" "$(T x) etl-extract -q orders.csv | $(T l) etl-load -q rp{b}.db --table orders --mode replace"
  check "etlkit SQLite replace" "$expected" "$(sqlite3 rp.db "$sql_check")"
  row "CSV → SQLite, --mode replace" "${last_time}s (${last_rss} MB)" "sqlite3 .import: ${import_time}s" "$(ratio "$last_time" "$import_time")x" "≤ 0.7x"
else
  row "CSV → SQLite, full load" "${e_time}s (${e_rss} MB)" "sqlite3 not installed" "–" "≤ 1.0x"
fi

# 2. Upsert of a delta (10% changed, 5% new) into the loaded table
echo "2. upsert of a $delta_rows-row delta" >&2
sqlite3 e.db "CREATE UNIQUE INDEX orders_key ON orders(order_id)"
if [ -n "$base" ]; then sqlite3 e_b.db "CREATE UNIQUE INDEX orders_key ON orders(order_id)"; fi
bench_etl "upsert delta ($delta_rows rows)" "etlkit" "cp e{b}.db u{b}.db" "$(T x) etl-extract -q delta.csv | $(T l) etl-load -q u{b}.db --table orders --mode upsert --key order_id"
u_time=$last_time; u_rss=$last_rss
expected=$(sqlite3 u.db "$sql_check")
check "etlkit upsert row count" "$(( rows + rows / 20 ))" "${expected%% *}"
if [ -n "$base" ]; then check "baseline upsert" "$expected" "$(sqlite3 u_b.db "$sql_check")"; fi
if command -v sqlite3 >/dev/null; then
  cat > upsert.sql <<SQL
CREATE TEMP TABLE staging(order_id INTEGER, external_ref INTEGER, customer_id TEXT, zip TEXT,
  product TEXT, quantity INTEGER, unit_price REAL, ordered_at TEXT, shipped TEXT, note TEXT);
.import --csv --skip 1 delta.csv staging
INSERT INTO orders SELECT * FROM staging WHERE true
  ON CONFLICT (order_id) DO UPDATE SET external_ref = excluded.external_ref,
  customer_id = excluded.customer_id, zip = excluded.zip, product = excluded.product,
  quantity = excluded.quantity, unit_price = excluded.unit_price,
  ordered_at = excluded.ordered_at, shipped = excluded.shipped, note = excluded.note;
SQL
  bench "sqlite3 staging + ON CONFLICT" "cp e.db v.db" "$(T s) sqlite3 v.db < upsert.sql"
  check "sqlite3 upsert" "$expected" "$(sqlite3 v.db "$sql_check")"
  row "upsert delta ($delta_rows rows)" "${u_time}s (${u_rss} MB)" "sqlite3 staging + ON CONFLICT: ${last_time}s" "$(ratio "$u_time" "$last_time")x" "≤ 1.5x"
fi

# 2b. Sync: the whole file again with 1.4% of its rows gone from the
# source, into the loaded table: exactly those rows are deleted, in the same
# transaction as the upserts; against sqlite3 with a staging table, ON
# CONFLICT and DELETE ... NOT IN.
gone=$(( rows * 14 / 1000 ))
if [ "$gone" -gt 0 ]; then
  echo "2b. sync, $gone rows gone from the source" >&2
  step=$(( rows / gone ))
  # Records, not lines: some notes hold line breaks.
  python3 -c '
import csv, sys
step, gone = int(sys.argv[1]), int(sys.argv[2])
rows = csv.reader(open("orders.csv", newline=""))
out = csv.writer(open("sync.csv", "w", newline=""), lineterminator="\n")
out.writerow(next(rows))
for n, row in enumerate(rows, 1):
    if n % step or n // step > gone:
        out.writerow(row)
' "$step" "$gone"
  # Not against a baseline: a build from before --mode sync lacks it.
  measure "etlkit" "cp e.db y.db" "$(T x) etl-extract -q sync.csv | $(T l) etl-load -q y.db --table orders --mode sync --key order_id" cur strict
  y_time=$last_time; y_rss=$last_rss
  expected=$(sqlite3 y.db "$sql_check")
  check "etlkit sync row count" "$(( rows - gone ))" "${expected%% *}"
  if command -v sqlite3 >/dev/null; then
    sed -e 's/delta.csv/sync.csv/' upsert.sql > sync.sql
    echo "DELETE FROM orders WHERE order_id NOT IN (SELECT order_id FROM staging);" >> sync.sql
    bench "sqlite3 staging + ON CONFLICT + DELETE" "cp e.db z.db" "$(T s) sqlite3 z.db < sync.sql"
    check "sqlite3 sync" "$expected" "$(sqlite3 z.db "$sql_check")"
    row "sync ($gone of $rows rows gone)" "${y_time}s (${y_rss} MB)" "sqlite3 staging + ON CONFLICT + DELETE: ${last_time}s" "$(ratio "$y_time" "$last_time")x" "≤ 1.5x"
  fi
fi

# 3. CSV -> PostgreSQL, into a typed table with a key
pg_url=${ETLKIT_BENCH_PG:-postgres://postgres@127.0.0.1:5432/test}
if command -v psql >/dev/null && psql -qAt "$pg_url" -c 'SELECT 1' >/dev/null 2>&1; then
  echo "3. CSV -> PostgreSQL" >&2
  pg_create() { echo "CREATE TABLE $1(order_id bigint PRIMARY KEY, external_ref bigint, customer_id text, zip text,
    product text, quantity bigint, unit_price double precision, ordered_at text, shipped boolean, note text)"; }
  pg_sums() { psql -qAt "$pg_url" -c "SELECT count(*) || ' ' || sum(quantity) || ' ' || sum(unit_price::numeric) FROM $1"; }
  fresh() { echo "psql -qAt '$pg_url' -c 'DROP TABLE IF EXISTS $1' -c \"$(pg_create "$1")\""; }
  bench_etl "CSV → PostgreSQL (typed, keyed)" "etlkit" "$(fresh 'etl_bench_e{b}')" "$(T x) etl-extract -q orders.csv | $(T l) etl-load -q '$pg_url' --table etl_bench_e{b}"
  p_time=$last_time; p_rss=$last_rss
  expected=$(pg_sums etl_bench_e)
  check "etlkit PostgreSQL row count" "$rows" "${expected%% *}"
  if [ -n "$base" ]; then
    check "baseline PostgreSQL load" "$expected" "$(pg_sums etl_bench_e_b)"
  fi
  bench "psql \\copy" "$(fresh etl_bench_r)" "psql -qAt '$pg_url' -c \"\\copy etl_bench_r FROM 'orders.csv' WITH (FORMAT csv, HEADER true)\""
  check "psql \\copy" "$expected" "$(pg_sums etl_bench_r)"
  copy_time=$last_time
  row "CSV → PostgreSQL (typed, keyed)" "${p_time}s (${p_rss} MB)" "psql \\copy: ${copy_time}s" "$(ratio "$p_time" "$copy_time")x" "≤ 0.9x"
  # --mode replace into the loaded table (its dead rows vacuumed
  # before each run, untimed), against the same \copy into a new table.
  echo "3. CSV -> PostgreSQL, --mode replace" >&2
  bench_etl "CSV → PostgreSQL, --mode replace" "etlkit" "psql -qAt '$pg_url' -c 'VACUUM etl_bench_e{b}'" "$(T x) etl-extract -q orders.csv | $(T l) etl-load -q '$pg_url' --table etl_bench_e{b} --mode replace"
  check "etlkit PostgreSQL replace" "$expected" "$(pg_sums etl_bench_e)"
  r_time=$last_time; r_rss=$last_rss
  # The same guarantee by hand (readers see the old rows until the
  # commit): DELETE and \copy in one transaction, into the table \copy
  # filled.
  cat > pg-replace.sql <<'SQL'
BEGIN;
DELETE FROM etl_bench_r;
\copy etl_bench_r FROM 'orders.csv' WITH (FORMAT csv, HEADER true)
COMMIT;
SQL
  bench "psql DELETE + \\copy" "psql -qAt '$pg_url' -c 'VACUUM etl_bench_r'" "psql -qAt '$pg_url' -f pg-replace.sql"
  check "psql DELETE + \\copy" "$expected" "$(pg_sums etl_bench_r)"
  row "CSV → PostgreSQL, --mode replace" "${r_time}s (${r_rss} MB)" "psql \\copy: ${copy_time}s; BEGIN, DELETE, \\copy, COMMIT: ${last_time}s ($(ratio "$r_time" "$last_time")x)" "$(ratio "$r_time" "$copy_time")x" "≤ 0.9x"
  # --mode upsert of the whole file over the loaded table, against
  # \copy into a stage plus INSERT ... ON CONFLICT DO UPDATE.
  echo "3. CSV -> PostgreSQL, --mode upsert" >&2
  bench_etl "CSV → PostgreSQL, --mode upsert" "etlkit" "psql -qAt '$pg_url' -c 'VACUUM etl_bench_e{b}'" "$(T x) etl-extract -q orders.csv | $(T l) etl-load -q '$pg_url' --table etl_bench_e{b} --mode upsert --key order_id"
  check "etlkit PostgreSQL upsert" "$expected" "$(pg_sums etl_bench_e)"
  u_etl=$last_time; u_rss=$last_rss
  cols="external_ref, customer_id, zip, product, quantity, unit_price, ordered_at, shipped, note"
  sets=$(echo "$cols" | tr -d ' ' | tr ',' '\n' | awk '{printf "%s%s = excluded.%s", (NR>1?", ":""), $1, $1}')
  cat > pg-upsert.sql <<SQL
BEGIN;
CREATE TEMP TABLE stage (LIKE etl_bench_r) ON COMMIT DROP;
\\copy stage FROM 'orders.csv' WITH (FORMAT csv, HEADER true)
INSERT INTO etl_bench_r SELECT * FROM stage ON CONFLICT (order_id) DO UPDATE SET $sets;
COMMIT;
SQL
  bench "psql \\copy + ON CONFLICT" "psql -qAt '$pg_url' -c 'VACUUM etl_bench_r'" "psql -qAt '$pg_url' -f pg-upsert.sql"
  check "psql upsert" "$expected" "$(pg_sums etl_bench_r)"
  row "CSV → PostgreSQL, --mode upsert" "${u_etl}s (${u_rss} MB)" "psql \\copy + ON CONFLICT: ${last_time}s" "$(ratio "$u_etl" "$last_time")x" "≤ 0.9x"
  psql -qAt "$pg_url" -c 'DROP TABLE etl_bench_e' -c 'DROP TABLE etl_bench_r'
  if [ -n "$base" ]; then psql -qAt "$pg_url" -c 'DROP TABLE IF EXISTS etl_bench_e_b'; fi
else
  row "CSV → PostgreSQL" "skipped" "psql \\copy" "–" "≤ 0.9x"
  notes+=("CSV → PostgreSQL: no psql, or no server at \$ETLKIT_BENCH_PG (default: the local test database).")
fi

# 3b. CSV -> MariaDB/MySQL, into a typed table with a key, against the
# mariadb client's LOAD DATA LOCAL INFILE (which skips every check etlkit makes)
my_url=${ETLKIT_BENCH_MYSQL:-mysql://root@127.0.0.1:3306/test}
my_client=$(command -v mariadb || command -v mysql || true)
my_args=(-uroot -h127.0.0.1 -P3306 test)
if [ -n "${ETLKIT_BENCH_MYSQL_ARGS:-}" ]; then read -r -a my_args <<< "$ETLKIT_BENCH_MYSQL_ARGS"; fi
if [ -n "$my_client" ] && "$my_client" "${my_args[@]}" -e 'SELECT 1' >/dev/null 2>&1; then
  echo "3b. CSV -> MariaDB" >&2
  my_create() { echo "CREATE TABLE $1(order_id BIGINT PRIMARY KEY, external_ref BIGINT, customer_id TEXT, zip TEXT,
    product TEXT, quantity BIGINT, unit_price DOUBLE, ordered_at TEXT, shipped VARCHAR(5), note TEXT)"; }
  my_sums() { myq "SELECT CONCAT(COUNT(*), ' ', SUM(quantity), ' ', ROUND(SUM(unit_price), 2)) FROM $1"; }
  myq() { "$my_client" "${my_args[@]}" -N -e "$1"; }
  myfresh() { echo "$my_client ${my_args[*]} -e 'DROP TABLE IF EXISTS $1; $(my_create "$1")'"; }
  bench_etl "CSV → MariaDB (typed, keyed)" "etlkit" "$(myfresh 'etl_bench_e{b}')" "$(T x) etl-extract -q orders.csv | $(T l) etl-load -q '$my_url' --table etl_bench_e{b}"
  m_time=$last_time; m_rss=$last_rss
  expected=$(my_sums etl_bench_e)
  check "etlkit MariaDB row count" "$rows" "${expected%% *}"
  if [ -n "$base" ]; then
    check "baseline MariaDB load" "$expected" "$(my_sums etl_bench_e_b)"
  fi
  cat > load.sql <<'SQL'
SET SESSION sql_mode='';
LOAD DATA LOCAL INFILE 'orders.csv' INTO TABLE etl_bench_r
  FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '"' IGNORE 1 LINES;
SQL
  bench "$(basename "$my_client") LOAD DATA" "$(myfresh etl_bench_r)" "$my_client --local-infile=1 ${my_args[*]} < load.sql"
  check "LOAD DATA" "$expected" "$(my_sums etl_bench_r)"
  load_time=$last_time
  row "CSV → MariaDB (typed, keyed)" "${m_time}s (${m_rss} MB)" "LOAD DATA LOCAL INFILE: ${load_time}s" "$(ratio "$m_time" "$load_time")x" "≤ 1.2x"
  # --mode replace into the loaded table, against the same LOAD DATA into
  # a new one.
  echo "3b. CSV -> MariaDB, --mode replace" >&2
  bench_etl "CSV → MariaDB, --mode replace" "etlkit" "true" "$(T x) etl-extract -q orders.csv | $(T l) etl-load -q '$my_url' --table etl_bench_e{b} --mode replace"
  check "etlkit MariaDB replace" "$expected" "$(my_sums etl_bench_e)"
  r_time=$last_time; r_rss=$last_rss
  # The same guarantee by hand: DELETE and LOAD DATA in one transaction,
  # into the table LOAD DATA filled.
  cat > replace-my.sql <<'SQL'
SET SESSION sql_mode='';
START TRANSACTION;
DELETE FROM etl_bench_r;
LOAD DATA LOCAL INFILE 'orders.csv' INTO TABLE etl_bench_r
  FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '"' IGNORE 1 LINES;
COMMIT;
SQL
  bench "DELETE + LOAD DATA" "true" "$my_client --local-infile=1 ${my_args[*]} < replace-my.sql"
  check "DELETE + LOAD DATA" "$expected" "$(my_sums etl_bench_r)"
  row "CSV → MariaDB, --mode replace" "${r_time}s (${r_rss} MB)" "LOAD DATA LOCAL INFILE: ${load_time}s; START TRANSACTION, DELETE, LOAD DATA, COMMIT: ${last_time}s ($(ratio "$r_time" "$last_time")x)" "$(ratio "$r_time" "$load_time")x" "≤ 1.2x"
  # --mode upsert of the whole file over the loaded table, against LOAD
  # DATA into a stage plus INSERT ... ON DUPLICATE KEY UPDATE.
  echo "3b. CSV -> MariaDB, --mode upsert" >&2
  bench_etl "CSV → MariaDB, --mode upsert" "etlkit" "true" "$(T x) etl-extract -q orders.csv | $(T l) etl-load -q '$my_url' --table etl_bench_e{b} --mode upsert --key order_id"
  check "etlkit MariaDB upsert" "$expected" "$(my_sums etl_bench_e)"
  mu_time=$last_time; mu_rss=$last_rss
  my_sets=$(echo "external_ref customer_id zip product quantity unit_price ordered_at shipped note" \
    | tr ' ' '\n' | awk '{printf "%s%s = VALUES(%s)", (NR>1?", ":""), $1, $1}')
  cat > upsert-my.sql <<SQL
SET SESSION sql_mode='';
CREATE TEMPORARY TABLE stage LIKE etl_bench_r;
LOAD DATA LOCAL INFILE 'orders.csv' INTO TABLE stage
  FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '"' IGNORE 1 LINES;
INSERT INTO etl_bench_r SELECT * FROM stage ON DUPLICATE KEY UPDATE $my_sets;
SQL
  bench "LOAD DATA + ON DUPLICATE KEY" "true" "$my_client --local-infile=1 ${my_args[*]} < upsert-my.sql"
  check "LOAD DATA upsert" "$expected" "$(my_sums etl_bench_r)"
  row "CSV → MariaDB, --mode upsert" "${mu_time}s (${mu_rss} MB)" "LOAD DATA + ON DUPLICATE KEY UPDATE: ${last_time}s" "$(ratio "$mu_time" "$last_time")x" "≤ 1.2x"
  myq 'DROP TABLE etl_bench_e; DROP TABLE etl_bench_r'
  if [ -n "$base" ]; then myq 'DROP TABLE IF EXISTS etl_bench_e_b'; fi
else
  row "CSV → MariaDB" "skipped" "LOAD DATA LOCAL INFILE" "–" "≤ 2.0x"
  notes+=("CSV → MariaDB: no mariadb/mysql client, or no server (\$ETLKIT_BENCH_MYSQL, \$ETLKIT_BENCH_MYSQL_ARGS).")
fi

# 4. filter + select through the pipe, against Miller and xsv/qsv
echo "4. filter + select" >&2
filter_expected=$(awk -F, 'NR > 1 && $6 ~ /^[0-9]+$/ && $6 > 10' orders.csv | wc -l)
bench_etl "filter + select (extract, transform)" "etlkit" "true" "$(T x) etl-extract -q orders.csv | $(T t) etl-transform -q --filter 'quantity > 10' --select order_id,customer_id,quantity > f{b}.out"
f_time=$last_time; f_rss=$last_rss
f_rows=$(grep -vc '^{\"@etl' f.out || true)
if [ -n "$base" ]; then
  check "baseline filter rows" "$f_rows" "$(grep -vc '^{\"@etl' f_b.out || true)"
  same_records "filter + select" f.out f_b.out
fi
refs=""
if command -v mlr >/dev/null; then
  bench "mlr" "true" "mlr --icsv --ojsonl filter '\$quantity > 10' then cut -o -f order_id,customer_id,quantity orders.csv > m.out"
  check "mlr filter" "$f_rows" "$(wc -l < m.out | tr -d ' ')"
  refs="mlr: ${last_time}s ($(ratio "$f_time" "$last_time")x)"
fi
for x in qsv xsv; do
  if command -v "$x" >/dev/null; then
    bench "$x" "true" "$(T x) $x search -s quantity '^([1-9][1-9]|[2-9][0-9]|[1-9][0-9][0-9]+)\$' orders.csv | $(T s) $x select order_id,customer_id,quantity > x.out"
    check "$x filter rows" "$f_rows" "$(( $(xsv count x.out 2>/dev/null || echo $(( $(wc -l < x.out) - 1 ))) ))"
    x_time=$last_time
    refs="$refs${refs:+; }$x: ${last_time}s ($(ratio "$f_time" "$last_time")x)"
    break
  fi
done
[ -n "$refs" ] || notes+=("filter + select: neither mlr nor xsv/qsv is installed; etlkit's figure is shown alone.")
echo "  filter kept $f_rows rows (awk says $filter_expected)" >&2
row "filter + select (extract, transform)" "${f_time}s (${f_rss} MB)" "${refs:-not installed}" "–" "≤ 2x xsv, < mlr"

# 4c. the same filter and columns as a --sql query: it builds only the
# three named columns, so it should stay near the row-wise path.
echo "4c. filter + select through --sql" >&2
sel_sql="SELECT order_id, customer_id, quantity FROM input WHERE quantity > 10"
bench_etl "SELECT … WHERE via --sql" "etlkit --sql" "true" "$(T x) etl-extract -q orders.csv | $(T t) etl-transform -q --sql '$sel_sql' > q{b}.out"
check "--sql filter rows" "$f_rows" "$(grep -vc '^{\"@etl' q.out || true)"
if [ -n "$base" ]; then
  check "baseline --sql filter rows" "$f_rows" "$(grep -vc '^{\"@etl' q_b.out || true)"
  same_records "SELECT … WHERE via --sql" q.out q_b.out
fi
q_refs="row-wise: ${f_time}s ($(ratio "$last_time" "$f_time")x)"
[ -z "${x_time:-}" ] || q_refs="$q_refs; xsv: ${x_time}s ($(ratio "$last_time" "$x_time")x)"
row "SELECT … WHERE via --sql" "${last_time}s (${last_rss} MB)" "$q_refs" "–" "≤ 1.5x row-wise"
rm -f q.out x.out m.out f.out q_b.out f_b.out

# 4b. --dedup over all-distinct keys: it holds a key hash and a spill-file
# offset per key, not the records (target: 200 MB at 2M keys, 100 bytes a
# key); Miller's last-record-per-key (tail -g) holds the records.
echo "4b. --dedup on $rows distinct keys" >&2
etl-extract -q orders.csv > d.ndjson
d_mb=$(( $(stat -c %s d.ndjson) / 1000000 ))
bench_etl "--dedup, $rows distinct keys" "etlkit" "true" "$(T t) etl-transform -q --dedup order_id d.ndjson > d{b}.out"
d_time=$last_time; d_rss=$last_rss
check "--dedup rows" "$rows" "$(grep -vc '^{\"@etl' d.out || true)"
if [ -n "$base" ]; then
  check "baseline --dedup rows" "$rows" "$(grep -vc '^{\"@etl' d_b.out || true)"
  same_records "--dedup" d.out d_b.out
fi
d_ref="not installed"
if command -v mlr >/dev/null; then
  bench "mlr tail -g" "true" "$(T m) mlr --ijsonl --ojsonl tail -n 1 -g order_id d.ndjson > md.out"
  check "mlr tail -g rows" "$rows" "$(wc -l < md.out | tr -d ' ')"
  d_ref="mlr tail -n 1 -g: ${last_time}s, ${last_rss} MB"
fi
d_per_key=$(awk -v m="$d_rss" -v n="$rows" 'BEGIN {printf "%d", m * 1048576 / n}')
row "--dedup, $rows distinct keys (input ${d_mb} MB NDJSON)" "${d_time}s, ${d_rss} MB (${d_per_key} bytes a key)" "$d_ref" "–" "≤ 100 bytes a key"
# 4c'. the wire reader that etl-transform and etl-load spend most of their
# time in, against serde_json reading the same lines into maps.
w_line=$("$bin/examples/wire-parse" d.ndjson 2>&1)
echo "  $w_line" >&2
w_ours=$(echo "$w_line" | sed -n 's/.*etlkit \([0-9]*\) MB\/s.*/\1/p')
w_theirs=$(echo "$w_line" | sed -n 's/.*serde_json maps \([0-9]*\) MB\/s.*/\1/p')
w_ratio=$(echo "$w_line" | sed -n 's/.*ratio \([0-9.]*\)x.*/\1/p')
row "wire reader, ${d_mb} MB NDJSON (no I/O)" "${w_ours} MB/s" "serde_json into maps: ${w_theirs} MB/s" "${w_ratio}x" "< 1.0x"
if [ -n "$base" ] && [ -x "$base/examples/wire-parse" ]; then
  # wire_time PROGRAM: the wire reader's best-of-three seconds over d.ndjson
  wire_time() { "$1" d.ndjson 2>&1 | sed -n 's/.*etlkit [0-9]* MB\/s (\([0-9.]*\) s).*/\1/p'; }
  w_cur=() w_base=()
  for i in $(seq "$runs"); do
    if [ $(( i % 2 )) = 1 ]; then w_cur+=("$(wire_time "$bin/examples/wire-parse")"); fi
    w_base+=("$(wire_time "$base/examples/wire-parse")")
    if [ $(( i % 2 )) = 0 ]; then w_cur+=("$(wire_time "$bin/examples/wire-parse")"); fi
  done
  if [ -n "${w_cur[0]}" ] && [ -n "${w_base[0]}" ]; then
    wc_s=$(median "${w_cur[@]}") wb_s=$(median "${w_base[@]}")
    mbps() { awk -v m="$d_mb" -v s="$1" 'BEGIN { if (s > 0) printf "%d", m / s; else print "?" }'; }
    compare "wire reader, ${d_mb} MB NDJSON (no I/O)" "$wc_s" "$wb_s" "${wc_s}s ($(mbps "$wc_s") MB/s)" "${wb_s}s ($(mbps "$wb_s") MB/s)"
  else
    notes+=("baseline: wire reader: examples/wire-parse printed no time in the form this script reads.")
  fi
elif [ -n "$base" ]; then
  notes+=("baseline: wire reader: $base has no examples/wire-parse, so that row is not compared.")
fi
rm -f d.ndjson d.out md.out d_b.out

# 5. group-by aggregate, against sqlite3 (and DuckDB when installed)
echo "5. group-by" >&2
group_sql="SELECT customer_id, SUM(quantity) AS items, COUNT(*) AS n FROM input GROUP BY customer_id"
bench_etl "group-by (extract, transform --sql)" "etlkit" "true" "$(T x) etl-extract -q orders.csv | $(T t) etl-transform -q --sql '$group_sql' > g{b}.out"
g_time=$last_time; g_rss=$last_rss
# groups_items FILE: the count of groups and the sum of their items
groups_items() { echo "$(grep -vc '^{\"@etl' "$1" || true) $(grep -v '^{\"@etl' "$1" | sed 's/.*"items":\([0-9]*\).*/\1/' | awk '{s+=$1} END {print s}')"; }
read -r g_groups g_items <<< "$(groups_items g.out)"
check "etlkit group-by total" "$(sqlite3 e.db 'SELECT sum(quantity) FROM orders')" "$g_items"
if [ -n "$base" ]; then check "baseline group-by groups and total" "$g_groups $g_items" "$(groups_items g_b.out)"; fi
refs=""
if command -v sqlite3 >/dev/null; then
  printf '%s\n.import --csv --skip 1 orders.csv orders\nSELECT count(*) FROM (SELECT customer_id, SUM(quantity), COUNT(*) FROM orders GROUP BY customer_id);\n' "$typed_table" > group.sql
  bench "sqlite3 (import + GROUP BY)" "true" "$(T s) sqlite3 :memory: < group.sql > s.out"
  check "sqlite3 group count" "$g_groups" "$(tail -n 1 s.out)"
  refs="sqlite3: ${last_time}s ($(ratio "$g_time" "$last_time")x)"
fi
if have_duck; then
  duck_group="SELECT count(*), sum(items) FROM (SELECT customer_id, SUM(quantity) AS items, COUNT(*) AS n FROM read_csv('orders.csv') GROUP BY customer_id)"
  bench "DuckDB" "true" "$(T d) ./duckq \"$duck_group\" > dg.out"
  check "DuckDB group-by" "$g_groups $g_items" "$(cat dg.out)"
  refs="$refs${refs:+; }DuckDB: ${last_time}s, ${last_rss} MB ($(ratio "$g_time" "$last_time")x)"
else
  notes+=("group-by: DuckDB is not installed (--install-peers installs it), so the ≤ 2x DuckDB target cannot be checked in this run.")
fi
row "group-by (extract, transform --sql)" "${g_time}s (${g_rss} MB)" "${refs:-not installed}" "–" "≤ 2x DuckDB"

# 5b. --sql memory: the records are held as typed columns, and only the
# columns the query names; SELECT * holds all ten.
echo "5b. --sql memory, all columns against two" >&2
etl-extract -q orders.csv > s.ndjson
s_mb=$(( $(stat -c %s s.ndjson) / 1000000 ))
bench_etl "--sql SELECT * over $rows records" "SELECT *" "true" "$(T t) etl-transform -q --sql 'SELECT * FROM input' s.ndjson > s{b}.out"
check "SELECT * rows" "$rows" "$(grep -vc '^{\"@etl' s.out || true)"
if [ -n "$base" ]; then
  check "baseline SELECT * rows" "$rows" "$(grep -vc '^{\"@etl' s_b.out || true)"
  same_records "--sql SELECT *" s.out s_b.out
fi
s_all="${last_time}s, ${last_rss} MB"
bench_etl "--sql two columns over $rows records" "two columns" "true" "$(T t) etl-transform -q --sql 'SELECT max(order_id) AS m, sum(quantity) AS q FROM input' s.ndjson > s{b}.out"
if [ -n "$base" ]; then check "baseline two-column --sql" "$(grep -v '^{\"@etl' s.out)" "$(grep -v '^{\"@etl' s_b.out)"; fi
s_two="${last_time}s, ${last_rss} MB"
row "--sql holding $rows records (input ${s_mb} MB NDJSON)" "SELECT *: ${s_all}; two columns: ${s_two}" "–" "–" "memory by the columns named"
rm -f s.ndjson s.out s_b.out

# 7. Incremental on a coarse cursor: every row shares one cursor value, so
# every row sits at the bookmark's boundary and is judged against it.
echo "7. incremental, one cursor value for every row" >&2
awk -v n="$rows" 'BEGIN { print "id,day"; for (i = 0; i < n; i++) print i ",2026-11-05" }' > coarse.csv
bench_etl "plain extract, $rows rows" "plain extract" "true" "$(T x) etl-extract -q coarse.csv > /dev/null"
c_plain=$last_time
rm -f inc.db inc_b.db
etl-extract -q coarse.csv --cursor day --state inc.db | etl-load -q inc.db --table c
check "incremental first run" "$rows" "$(sqlite3 inc.db 'SELECT count(*) FROM c')"
if [ -n "$base" ]; then
  PATH="$base:$PATH" bash -o pipefail -c 'etl-extract -q coarse.csv --cursor day --state inc_b.db | etl-load -q inc_b.db --table c'
  check "baseline incremental first run" "$rows" "$(sqlite3 inc_b.db 'SELECT count(*) FROM c')"
fi
bench_etl "incremental rerun, $rows rows on one cursor value" "incremental rerun" "true" "$(T x) etl-extract -q coarse.csv --cursor day --state inc{b}.db > inc{b}.out"
check "incremental rerun emits nothing" "0" "$(grep -vc '^{\"@etl' inc.out || true)"
if [ -n "$base" ]; then check "baseline incremental rerun emits nothing" "0" "$(grep -vc '^{\"@etl' inc_b.out || true)"; fi
bm_kb=$(sqlite3 inc.db 'SELECT length(bookmark) / 1024 FROM _etl_state')
row "incremental rerun, $rows rows on one cursor value" "${last_time}s (${last_rss} MB), bookmark ${bm_kb} KB" "plain extract: ${c_plain}s" "$(ratio "$last_time" "$c_plain")x" "linear in rows"

# 8. Redis stream -> SQLite: etl-watch (consumer group, acknowledged after
# each commit, exactly once) against a plain consumer written with the
# broker's own CLI (redis-cli XREADGROUP, no acknowledgement) piped into
# etl-load. NATS is not measured here: its CLI (nats) is not packaged for
# the machines this runs on.
redis_addr=${ETLKIT_BENCH_REDIS:-127.0.0.1:6379}
messages=$(( rows / 10 ))
if command -v redis-cli >/dev/null && redis-cli -u "redis://$redis_addr" PING >/dev/null 2>&1; then
  echo "8. Redis stream -> SQLite ($messages messages)" >&2
  rkey="etl_bench_$$"
  fill_redis() {
    redis-cli -u "redis://$redis_addr" DEL "$rkey" >/dev/null
    awk -v n="$messages" -v key="$rkey" 'BEGIN {
      for (i = 0; i < n; i++) {
        p = sprintf("{\"id\":%d,\"customer\":\"c%d\",\"amount\":%d.25,\"note\":\"order %d, \\\"rush\\\"\"}", i, i % 977, i % 500, i)
        printf "*5\r\n$4\r\nXADD\r\n$%d\r\n%s\r\n$1\r\n*\r\n$7\r\npayload\r\n$%d\r\n%s\r\n", length(key), key, length(p), p
      }
    }' | redis-cli -u "redis://$redis_addr" --pipe >/dev/null
  }
  bench_etl "Redis stream → SQLite, $messages messages" "etlkit" "rm -f m{b}.db m{b}.ckpt; $(declare -f fill_redis); rkey=${rkey}{b} messages=$messages redis_addr=$redis_addr fill_redis" \
    "$(T w) etl-watch -q redis://$redis_addr --key ${rkey}{b} --group bench --once --batch-rows 50000 --checkpoint m{b}.ckpt --exec 'etl-load -q m{b}.db --table msgs'"
  m_time=$last_time; m_rss=$last_rss
  check "etl-watch message count" "$messages" "$(sqlite3 m.db 'SELECT count(DISTINCT id) FROM msgs')"
  check "etl-watch acknowledgements" "0" "$(redis-cli -u "redis://$redis_addr" XPENDING "$rkey" bench | head -n 1)"
  if [ -n "$base" ]; then
    check "baseline etl-watch message count" "$messages" "$(sqlite3 m_b.db 'SELECT count(DISTINCT id) FROM msgs')"
    check "baseline etl-watch acknowledgements" "0" "$(redis-cli -u "redis://$redis_addr" XPENDING "${rkey}_b" bench | head -n 1)"
    redis-cli -u "redis://$redis_addr" DEL "${rkey}_b" >/dev/null
  fi
  bench "redis-cli | etl-load" "rm -f n.db; $(declare -f fill_redis); rkey=$rkey messages=$messages redis_addr=$redis_addr fill_redis; redis-cli -u redis://$redis_addr XGROUP CREATE $rkey plain 0 >/dev/null" \
    "redis-cli -u redis://$redis_addr --raw XREADGROUP GROUP plain c COUNT $messages STREAMS $rkey '>' | awk 'prev == \"payload\" {print} {prev = \$0}' | $(T l) etl-load -q n.db --table msgs"
  check "redis-cli message count" "$messages" "$(sqlite3 n.db 'SELECT count(DISTINCT id) FROM msgs')"
  redis-cli -u "redis://$redis_addr" DEL "$rkey" >/dev/null
  row "Redis stream → SQLite, $messages messages" "${m_time}s ($(awk -v n="$messages" -v t="$m_time" 'BEGIN {printf "%d", n / t}') msg/s, ${m_rss} MB)" "redis-cli XREADGROUP \| etl-load: ${last_time}s" "$(ratio "$m_time" "$last_time")x" "≤ 1.5x"
else
  row "Redis stream → SQLite" "skipped" "redis-cli | etl-load" "–" "≤ 1.5x"
  notes+=("Redis stream → SQLite: no redis-cli, or no server at \$ETLKIT_BENCH_REDIS (default 127.0.0.1:6379).")
fi
notes+=("NATS JetStream → SQLite: not measured; the nats CLI (the plain consumer to compare with) is not installed.")

# 9. Data lake: the orders into a dataset partitioned by day, read back by
# etl-extract (and DuckDB when its Python module or CLI is there): the same
# count and sums as the SQLite load of the same file.
echo "9. lake: $rows orders by day" >&2
bench_etl "CSV → lake by day, load" "etlkit load" "rm -rf lake{b}" "$(T x) etl-extract -q orders.csv | $(T l) etl-load -q lake{b}/orders --partition-by ordered_at:day"
k_time=$last_time; k_rss=$last_rss
# partitions DIR: the dataset's partition folders
partitions() { find "$1" -mindepth 1 -maxdepth 1 -type d -name 'ordered_at_day=*' | wc -l; }
k_parts=$(partitions lake/orders)
expected=$(sqlite3 e.db "$sql_check")
bench_etl "lake by day, read back by etl-extract" "etl-extract of the dataset" "rm -f k{b}.db" "$(T x) etl-extract -q lake{b}/orders | etl-load -q k{b}.db --table orders"
check "lake read back by etl-extract" "$expected" "$(sqlite3 k.db "$sql_check")"
if [ -n "$base" ]; then
  check "baseline lake partitions" "$k_parts" "$(partitions lake_b/orders)"
  check "baseline lake read back" "$expected" "$(sqlite3 k_b.db "$sql_check")"
fi
kr_time=$last_time
duck_q="SELECT count(*) || ' ' || sum(quantity) || ' ' || printf('%.2f', sum(unit_price)) FROM read_parquet('lake/orders/**/*.parquet', hive_partitioning = true)"
duck=""
if have_duck; then duck=$(./duckq "$duck_q"); fi
if [ -n "$duck" ]; then
  check "lake read by DuckDB" "$expected" "$duck"
  k_ref="DuckDB reads the same count and sums"
else
  k_ref="read back by etl-extract (DuckDB not installed)"
  notes+=("lake: DuckDB is not installed (CLI, or its Python module via ETLKIT_DUCKDB_PYTHON); read back by etl-extract only.")
fi
row "CSV → lake by day ($k_parts partitions), read back" "load ${k_time}s (${k_rss} MB), read ${kr_time}s" "$k_ref" "–" "same rows and sums"
rm -rf lake k.db lake_b k_b.db

# 9b. Data lake, unsorted: the rows spread over a year of daily partitions
# in an order that visits a different day at every row (day = row * 7919
# mod 365, deterministic), so every partition is open for the whole load.
# Against DuckDB's COPY ... (FORMAT parquet, PARTITION_BY ...) of the same
# CSV; both give one file per partition, and both datasets read back by
# DuckDB give the same count, sum and partitions.
echo "9b. lake: $rows rows over 365 days, unsorted" >&2
awk -v n="$rows" 'BEGIN {
  split("31 28 31 30 31 30 31 31 30 31 30 31", len, " ")
  for (d = 0; d < 365; d++) { m = 1; r = d; while (r >= len[m]) { r -= len[m]; m++ } day[d] = sprintf("2025-%02d-%02d", m, r + 1) }
  print "id,customer_id,quantity,unit_price,ordered_at"
  for (i = 0; i < n; i++)
    printf "%d,C%05d,%d,%d.%02d,%sT%02d:%02d:%02dZ\n", i, i % 50000, 1 + i % 20, i % 500, i % 100, day[(i * 7919) % 365], i % 24, i % 60, (i * 7) % 60
}' > year.csv
bench_etl "CSV → lake, $rows rows over 365 days, unsorted" "etlkit" "rm -rf ylake{b}" "$(T x) etl-extract -q year.csv | $(T l) etl-load -q ylake{b} --partition-by ordered_at:day"
y_time=$last_time; y_rss=$last_rss
# files_parts DIR: the dataset's parquet files and partitions
files_parts() { echo "$(find "$1" -name '*.parquet' | wc -l) $(partitions "$1")"; }
read -r y_files y_parts <<< "$(files_parts ylake)"
check "etlkit unsorted lake: one file per partition" "365 365" "$y_files $y_parts"
if [ -n "$base" ]; then check "baseline unsorted lake: one file per partition" "365 365" "$(files_parts ylake_b)"; fi
# lake_sums DIR: count, sum and partitions of a dataset, read by DuckDB
lake_sums() { ./duckq "SELECT count(*) || ' ' || sum(quantity) || ' ' || count(DISTINCT ordered_at_day) FROM read_parquet('$1/**/*.parquet', hive_partitioning = true)"; }
if have_duck; then
  check "etlkit unsorted lake read by DuckDB" "$rows $(awk -F, 'NR > 1 {s += $3} END {print s}' year.csv) 365" "$(lake_sums ylake)"
  if [ -n "$base" ]; then check "baseline unsorted lake read by DuckDB" "$(lake_sums ylake)" "$(lake_sums ylake_b)"; fi
  duck_copy="COPY (SELECT *, strftime(ordered_at, '%Y-%m-%d') AS ordered_at_day FROM read_csv('year.csv')) TO 'yduck' (FORMAT parquet, PARTITION_BY (ordered_at_day))"
  bench "DuckDB COPY ... PARTITION_BY" "rm -rf yduck" "$(T d) ./duckq \"$duck_copy\" > /dev/null"
  check "DuckDB unsorted lake" "$(lake_sums ylake)" "$(lake_sums yduck)"
  yd_files=$(find yduck -name '*.parquet' | wc -l)
  row "CSV → lake, $rows rows over 365 days, unsorted" "${y_time}s (${y_rss} MB), $y_files files" "DuckDB COPY … PARTITION_BY: ${last_time}s (${last_rss} MB), $yd_files files" "$(ratio "$y_time" "$last_time")x" "≤ 1.5x, one file per partition"
else
  row "CSV → lake, $rows rows over 365 days, unsorted" "${y_time}s (${y_rss} MB), $y_files files" "DuckDB not installed" "–" "≤ 1.5x, one file per partition"
  notes+=("lake, unsorted: DuckDB is not installed (--install-peers installs it), so the ≤ 1.5x DuckDB target cannot be checked in this run.")
fi
rm -rf ylake ylake_b yduck year.csv

# 9c. Data lake on S3: the orders into a dataset on an S3-compatible server
# (the moto test server of scripts/s3-server.sh, on this machine) and read
# back, against DuckDB's httpfs COPY ... TO 's3://...' (PARTITION_BY ...)
# into the same server. Needs the server (scripts/s3-server.sh start) and a
# Python with duckdb and duckdb_extension_httpfs ($ETLKIT_DUCKDB_HTTPFS_PYTHON,
# as .ci/run installs it); skipped with a note otherwise.
s3_dir=${ETLKIT_S3_DIR:-/tmp/etlkit-s3}
s3_port=${ETLKIT_S3_PORT:-5055}
httpfs_py=${ETLKIT_DUCKDB_HTTPFS_PYTHON:-$HOME/.cache/etlkit/venv-duckdb-httpfs/bin/python}
moto_py=${ETLKIT_MOTO_VENV:-$HOME/.cache/etlkit/venv-moto}/bin/python
if [ -s "$s3_dir/credentials" ] && (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null \
  && "$httpfs_py" -c 'import duckdb, duckdb_extension_httpfs' 2>/dev/null && [ -x "$moto_py" ]; then
  echo "9c. lake on S3: $rows orders by day" >&2
  set -a
  # shellcheck disable=SC1091 # written by scripts/s3-server.sh
  . "$s3_dir/credentials"
  set +a
  export AWS_ENDPOINT_URL="http://127.0.0.1:$s3_port" AWS_REGION=us-east-1
  bucket="bench-$$"
  "$moto_py" -c "import boto3, sys; boto3.client('s3', endpoint_url=sys.argv[1]).create_bucket(Bucket=sys.argv[2])" \
    "$AWS_ENDPOINT_URL" "$bucket"
  cat > duck-s3.py <<'PY'
import glob, os, sys, duckdb, duckdb_extension_httpfs
con = duckdb.connect()
ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_httpfs.__file__), 'extensions', '*', 'httpfs.duckdb_extension'))[0]
con.execute(f"LOAD '{ext}'")
endpoint = os.environ['AWS_ENDPOINT_URL'].removeprefix('http://')
con.execute(f"CREATE SECRET s (TYPE s3, KEY_ID '{os.environ['AWS_ACCESS_KEY_ID']}', "
            f"SECRET '{os.environ['AWS_SECRET_ACCESS_KEY']}', ENDPOINT '{endpoint}', "
            "URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')")
for statement in sys.argv[1:-1]:
    con.execute(statement)
print(' '.join(str(v) for v in con.execute(sys.argv[-1]).fetchone()))
PY
  # Empties a prefix before each timed run, so a reader of the files sees
  # only the last run's (a replace keeps the files it dropped for a while).
  cat > s3-rm.py <<'PY'
import os, sys, boto3
s3 = boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL'])
for page in s3.get_paginator('list_objects_v2').paginate(Bucket=sys.argv[1], Prefix=sys.argv[2]):
    for o in page.get('Contents', []):
        s3.delete_object(Bucket=sys.argv[1], Key=o['Key'])
PY
  s3_sums() { "$httpfs_py" duck-s3.py "SELECT count(*), sum(quantity), count(DISTINCT ordered_at_day) FROM read_parquet('$1/**/*.parquet', hive_partitioning = true)"; }
  # The CSV itself is on S3: both tools read it from there.
  "$moto_py" -c "import boto3, os, sys; boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL']).upload_file('orders.csv', sys.argv[1], 'in/orders.csv')" "$bucket"
  measure "etlkit" "$moto_py s3-rm.py $bucket lake/" "$(T x) etl-extract -q s3://$bucket/in/orders.csv | $(T l) etl-load -q s3://$bucket/lake/orders --partition-by ordered_at:day" cur strict
  s3_time=$last_time; s3_rss=$last_rss
  measure "etl-extract of the S3 dataset" "rm -f s3k.db" "$(T x) etl-extract -q s3://$bucket/lake/orders | etl-load -q s3k.db --table orders" cur strict
  s3r_time=$last_time
  check "S3 lake read back by etl-extract" "$rows" "$(sqlite3 s3k.db 'SELECT count(*) FROM orders')"
  s3_ours=$(s3_sums "s3://$bucket/lake/orders")
  check "S3 lake read by DuckDB: count" "$rows" "${s3_ours%% *}"
  bench "DuckDB COPY … TO s3 PARTITION_BY" "$moto_py s3-rm.py $bucket duck/" "$(T s) $httpfs_py duck-s3.py \"COPY (SELECT *, CAST(ordered_at AS DATE) AS ordered_at_day FROM read_csv('s3://$bucket/in/orders.csv')) TO 's3://$bucket/duck' (FORMAT parquet, PARTITION_BY (ordered_at_day), OVERWRITE_OR_IGNORE)\" 'SELECT 1'"
  check "DuckDB's S3 lake and etlkit's" "$s3_ours" "$(s3_sums "s3://$bucket/duck")"
  # The same rows into one Parquet object, read by DuckDB: same count and sum.
  etl-extract -q "s3://$bucket/in/orders.csv" | etl-load -q "s3://$bucket/one/orders.parquet"
  one=$("$httpfs_py" duck-s3.py "SELECT count(*), sum(quantity) FROM read_parquet('s3://$bucket/one/orders.parquet')")
  check "one Parquet object on S3 read by DuckDB" "$(echo "$s3_ours" | cut -d' ' -f1,2)" "$one"
  row "CSV → S3 lake by day, read back" "load ${s3_time}s (${s3_rss} MB), read ${s3r_time}s" "DuckDB COPY … TO s3 PARTITION_BY: ${last_time}s" "$(ratio "$s3_time" "$last_time")x" "≤ 1.5x, same rows and sums"
  rm -f s3k.db duck-s3.py s3-rm.py
else
  row "CSV → S3 lake by day" "skipped" "DuckDB COPY … TO s3" "–" "≤ 1.5x"
  notes+=("S3 lake: needs the S3 test server (scripts/s3-server.sh start) and DuckDB's httpfs (\$ETLKIT_DUCKDB_HTTPFS_PYTHON).")
fi

# 6. Memory of the streaming paths as input grows
echo "6. memory" >&2
if [ -n "$gnu_time" ]; then
  peaks() { # FILE: the peak RSS MB of extract, load and transform, on one line
    local x l t
    $gnu_time -f %M -o rss.x etl-extract -q "$1" > /dev/null
    x=$(( $(cat rss.x) / 1024 ))
    rm -f m.db
    $gnu_time -f %M -o rss.l etl-load -q m.db --table orders < <(etl-extract -q "$1")
    l=$(( $(cat rss.l) / 1024 ))
    rm -f m.db
    $gnu_time -f %M -o rss.t etl-transform -q --filter 'quantity > 10' --derive 'total=quantity * unit_price' < <(etl-extract -q "$1") > /dev/null
    t=$(( $(cat rss.t) / 1024 ))
    echo "$x $l $t"
  }
  mem_line() { # ROWS FILE
    local x l t bx bl bt
    read -r x l t <<< "$(peaks "$2")"
    echo "  $1 rows: extract ${x} MB, load ${l} MB, transform ${t} MB" >&2
    row "peak RSS, $1 rows" "extract ${x} MB, load ${l} MB, row-wise transform ${t} MB" "–" "–" "≤ 64 MB, flat"
    if [ -n "$base" ]; then
      read -r bx bl bt <<< "$(PATH="$base:$PATH" peaks "$2")"
      echo "  $1 rows, baseline: extract ${bx} MB, load ${bl} MB, transform ${bt} MB" >&2
      compared+=("| peak RSS, $1 rows (extract, load, transform) | $x, $l, $t MB | $bx, $bl, $bt MB | – | |")
    fi
  }
  mem_line "$rows" orders.csv
  mkdir -p x4
  "$bin/examples/gen-orders" $(( rows * 4 )) x4 >/dev/null
  mem_line $(( rows * 4 )) x4/orders.csv
  rm -rf x4
  if [ "$big" = 1 ]; then
    mkdir -p x10
    "$bin/examples/gen-orders" $(( rows * 10 )) x10 >/dev/null
    size=$(( $(stat -c %s x10/orders.csv) / 1000000 ))
    $gnu_time -f %M -o rss.x etl-extract -q x10/orders.csv > /dev/null
    row "peak RSS, extract of a $size MB CSV" "$(( $(cat rss.x) / 1024 )) MB" "–" "–" "< 100 MB"
    if [ -n "$base" ]; then
      x=$(( $(cat rss.x) / 1024 ))
      PATH="$base:$PATH" $gnu_time -f %M -o rss.x etl-extract -q x10/orders.csv > /dev/null
      compared+=("| peak RSS, extract of a $size MB CSV | $x MB | $(( $(cat rss.x) / 1024 )) MB | – | |")
    fi
    rm -rf x10
  fi
else
  notes+=("memory: GNU time (/usr/bin/time) is not installed, so no peak RSS figures.")
fi

echo
echo "etlkit benchmark: $rows rows ($csv_mb MB CSV), median of $runs runs"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "sqlite3 $(sqlite3 --version 2>/dev/null | cut -d' ' -f1); $(etl-load --version)"
echo
echo "| scenario | etlkit | reference | ratio | target |"
echo "| --- | --- | --- | --- | --- |"
printf '%s\n' "${results[@]}"
if [ -n "$base" ]; then baseline_table; fi
for n in "${notes[@]}"; do echo; echo "$n"; done
if [ "$slower" -gt 0 ]; then exit 3; fi
