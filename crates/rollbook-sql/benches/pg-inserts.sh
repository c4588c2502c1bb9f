#!/usr/bin/env bash
# 10,000 single-row INSERTs in one transaction against the local PostgreSQL: rollbook's `sql`
# runner (one step, `transaction: true`, a rows_affected guard) against `psql -f` of the same
# file (BEGIN; ...; COMMIT;), in the same run, alternating, each from a fresh connection.
# Prints the median wall time of RUNS runs of each, and the ratios. Numbers go to
# docs/benchmarks.md; nothing asserts them.
#
#   crates/rollbook-sql/benches/pg-inserts.sh [RUNS]        (default 7)
#
# Uses ROLLBOOK_TEST_PG_URL (see scripts/test-servers), else postgres://postgres@127.0.0.1:5432/postgres,
# and makes (and drops) a database of its own there.
set -euo pipefail
cd "$(dirname "$0")/../../.."

runs=${1:-7}
rows=10000
url=${ROLLBOOK_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db="rb_bench_$$"
bench_url="${url%/*}/$db"

cargo build --release --quiet -p rollbook-sql --example pg_inserts
bin=target/release/examples/pg_inserts

work=$(mktemp -d)
cleanup() {
  psql -X -q "$url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
psql -X -q "$url" -c "CREATE DATABASE $db" >/dev/null
psql -X -q "$bench_url" -c "CREATE TABLE bench (id int PRIMARY KEY, name text NOT NULL, value float8 NOT NULL)" >/dev/null

file="$work/inserts.sql"
{
  echo "BEGIN;"
  awk -v n="$rows" 'BEGIN { for (i = 1; i <= n; i++) printf "INSERT INTO bench (id, name, value) VALUES (%d, '"'"'name-%d'"'"', %.1f);\n", i, i, i * 1.5 }'
  echo "COMMIT;"
} >"$file"

ms_now() { date +%s%N; }
fresh() { psql -X -q "$bench_url" -c "TRUNCATE bench" >/dev/null; }
count() { psql -X -Atq "$bench_url" -c "SELECT count(*) FROM bench"; }

: >"$work/psql" ; : >"$work/literal" ; : >"$work/bound"
for _ in $(seq 1 "$runs"); do
  fresh
  t0=$(ms_now)
  psql -X -q -v ON_ERROR_STOP=1 "$bench_url" -f "$file" >/dev/null
  t1=$(ms_now)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", (b - a) / 1000000 }' >>"$work/psql"
  [ "$(count)" = "$rows" ]
  for mode in literal bound; do
    fresh
    "$bin" "$bench_url" "$file" "$mode" >>"$work/$mode"
    [ "$(count)" = "$rows" ]
  done
done

median() { sort -n "$1" | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.1f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
p=$(median "$work/psql"); l=$(median "$work/literal"); b=$(median "$work/bound")
echo "$rows single-row INSERTs in one transaction, median of $runs runs (ms):"
printf '  %-44s %8s\n' "psql -f (same file)" "$p"
printf '  %-44s %8s   %sx psql\n' "rollbook sql runner, the file's statements" "$l" "$(awk -v a="$l" -v b="$p" 'BEGIN { printf "%.2f", a / b }')"
printf '  %-44s %8s   %sx psql\n' "rollbook sql runner, bound args (\$1,\$2,\$3)" "$b" "$(awk -v a="$b" -v b="$p" 'BEGIN { printf "%.2f", a / b }')"
echo "  all runs: psql $(tr '\n' ' ' <"$work/psql")| literal $(tr '\n' ' ' <"$work/literal")| bound $(tr '\n' ' ' <"$work/bound")"
