#!/usr/bin/env bash
# Loads the bundled sample data into a SQLite file and shows what landed.
# Usage: scripts/demo.sh [DB]     (default: ./etlkit-demo.db)
# Needs etl-extract and etl-load on PATH (cargo install --path .).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
data="$here/sample-data"
db=${1:-etlkit-demo.db}

for bin in etl-extract etl-transform etl-load; do
  command -v "$bin" >/dev/null || {
    echo "demo: $bin is not on PATH; run: cargo install --locked --path $here" >&2
    exit 2
  }
done

# The wire frames records with {"@etl":...} control lines; show records only.
records() { grep -v '^{"@etl"'; }

echo "== loading sample data into $db"
# replace: rerunning the demo refreshes the tables instead of doubling them.
etl-extract "$data/orders.csv" | etl-load "$db" --table orders --mode replace
etl-extract "$data/customers.csv" | etl-load "$db" --table customers --mode replace
etl-extract "$data/events.ndjson" | etl-load "$db" --table events --mode replace

echo
echo "== rows per table"
etl-extract -q "$db" --query "
  SELECT 'orders' AS tbl, count(*) AS rows FROM orders
  UNION ALL SELECT 'customers', count(*) FROM customers
  UNION ALL SELECT 'events', count(*) FROM events" | records

echo
echo "== values that round-trip: leading zeros, 19-digit ids, newlines, non-ASCII"
etl-extract -q "$db" --query "
  SELECT o.order_id, o.external_ref, o.zip, o.product, c.name AS customer, o.note
  FROM orders o JOIN customers c USING (customer_id)
  WHERE o.order_id IN (1001, 1004, 1005)
  ORDER BY o.order_id" | records

echo
echo "== items per country, joined in the pipe with etl-transform --sql"
etl-extract -q "$data/orders.csv" \
  | etl-transform -q --with "c=$data/customers.csv" \
      --sql 'SELECT c.country, SUM(o.quantity) AS items FROM input o JOIN c ON o.customer_id = c.customer_id GROUP BY c.country ORDER BY items DESC, c.country' \
  | records

echo
echo "== the demo database is $db; query it with: etl-extract $db --query 'SELECT ...'"
