#!/usr/bin/env bash
# Reconciliation end to end through the real commands: a generated scenario (about 1M platform
# records and 1M clearing rows for 2026-11-25, plus the D-1/D+1 files) is written as files,
# imported with `poslens import transactions` and `poslens import clearing`, and reconciled with
# `poslens reconcile`; each step timed with /usr/bin/time -v (wall time, peak RSS). Then the
# DuckDB yardstick on the clearing-bench files, for comparison.
#
# Usage: [POSLENS_BIN=path] scripts/recon/bench_e2e.sh [CASES] [OUT_DIR]    (defaults: 1000000, /tmp/recon-e2e)
set -euo pipefail
cd "$(dirname "$0")/../.."
CASES=${1:-1000000}
OUT=${2:-/tmp/recon-e2e}
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
# POSLENS_BIN=path: use that binary (and the scenario example already built) instead of building.
if [ -z "${POSLENS_BIN:-}" ]; then
  cargo build --release -p poslens --bin poslens --example recon-scenario-files
fi
BIN="${POSLENS_BIN:-$TARGET/release/poslens}"
rm -rf "$OUT"
mkdir -p "$OUT"
"$TARGET/release/examples/recon-scenario-files" "$OUT/files" "$CASES" 42
DATA="$OUT/data"

# Every timed step starts with its inputs in the page cache (this machine pages out what has not
# been touched for a few seconds): the store, and the file the step reads.
warm() { cat "$DATA"/poslens.db* "$@" >/dev/null 2>&1 || true; }

timed() { # NAME CMD...
  local name=$1; shift
  /usr/bin/time -v "$@" >"$OUT/$name.out" 2>"$OUT/$name.time" || { cat "$OUT/$name.out" "$OUT/$name.time"; exit 1; }
  local wall rss
  wall=$(grep 'Elapsed (wall clock)' "$OUT/$name.time" | awk '{print $NF}')
  rss=$(grep 'Maximum resident set size' "$OUT/$name.time" | awk '{print $NF}')
  printf '%-32s wall %-10s peak RSS %6d MiB   %s\n' "$name" "$wall" $((rss / 1024)) "$(tail -1 "$OUT/$name.out" | cut -c1-160)"
}

warm "$OUT/files/platform.jsonl"
timed import-transactions "$BIN" --data "$DATA" import transactions --create-missing "$OUT/files/platform.jsonl"
for f in "$OUT"/files/clearing-*.csv; do
  echo "$(basename "$f"): $(($(wc -l <"$f") - 1)) rows, $(du -m "$f" | cut -f1) MiB"
  warm "$f"
  timed "import-clearing-$(basename "$f" .csv)" "$BIN" --data "$DATA" import clearing "$f"
done
# POSLENS_RECON_TIMING: phase times (load per side, engine, items + save, free) on stderr.
export POSLENS_RECON_TIMING=1
warm
timed reconcile "$BIN" --data "$DATA" reconcile --date 2026-11-25 --json --items "$OUT/items.csv"
grep '^reconcile:' "$OUT/reconcile.time" | sed 's/^/    /'
warm
timed reconcile-dry-run "$BIN" --data "$DATA" reconcile --date 2026-11-25 --json --dry-run
grep '^reconcile:' "$OUT/reconcile-dry-run.time" | sed 's/^/    /'
warm
timed reconcile-recorded "$BIN" --data "$DATA" reconcile --date 2026-11-25 --json
grep '^reconcile:' "$OUT/reconcile-recorded.time" | sed 's/^/    /'
unset POSLENS_RECON_TIMING
secs() { grep 'Elapsed (wall clock)' "$1" | awk '{print $NF}' | awk -F: '{ if (NF == 3) print $1*3600+$2*60+$3; else print $1*60+$2 }'; }
total=0
for t in "$OUT"/import-clearing-*.time "$OUT/reconcile.time"; do total=$(echo "$total + $(secs "$t")" | bc -l); done
echo "import clearing (all files) + reconcile --items: ${total} s wall"
echo "expected: $(cat "$OUT/files/expected.json")"
echo "got:      $(cat "$OUT/reconcile.out")"

if [ -x .venv/bin/python ]; then
  YARD=/tmp/recon-bench
  if [ ! -f "$YARD/platform.csv" ]; then
    cargo run --release -q -p clearing --example clearing-bench -- "$CASES" "$YARD" >/dev/null
  fi
  cat "$YARD"/*.csv >/dev/null
  .venv/bin/python scripts/recon/duckdb_yardstick.py "$YARD"
fi
