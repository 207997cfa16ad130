#!/usr/bin/env bash
# POS front end throughput and latency, end to end and durable: the release `poslens serve`
# (SQLite, fsync, group commit) against `poslens terminal-sim` over loopback.
#   scripts/pos/bench.sh [TERMINALS=200] [COUNT=100000]  (a batch holds 999: COUNT / TERMINALS < 999)
# Prints the sim's summary for N concurrent terminal connections, then for one connection.
set -euo pipefail
cd "$(dirname "$0")/../.."
TERMINALS=${1:-200}
COUNT=${2:-100000}
BIN=${POSLENS_BIN:-target/release/poslens}
[ -x "$BIN" ] || cargo build --release -p poslens
DATA=$(mktemp -d)
trap 'kill "${SERVER:-0}" 2>/dev/null || true; rm -rf "$DATA"' EXIT
MID=898310048990001
"$BIN" --data "$DATA" merchant add --id $MID --name bench >/dev/null
for i in $(seq 1 "$TERMINALS"); do
  "$BIN" --data "$DATA" terminal add --id "$((50000000 + i))" --merchant $MID >/dev/null
done
printf 'http = "127.0.0.1:18080"\npos = "127.0.0.1:18583"\n' >"$DATA/bench.toml"
POSLENS_LOG=warn "$BIN" --data "$DATA" serve --config "$DATA/bench.toml" 2>"$DATA/serve.log" &
SERVER=$!
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/18583) 2>/dev/null && break; sleep 0.1; done
LAST=$((50000000 + TERMINALS))
echo "== $TERMINALS connections, $COUNT purchases"
"$BIN" terminal-sim --addr 127.0.0.1:18583 --merchant $MID --terminals "50000001-$LAST" \
  --concurrency "$TERMINALS" --count "$COUNT" --mix purchase:100 --settle
echo "== 1 connection, 900 purchases (a batch holds 999)"
"$BIN" terminal-sim --addr 127.0.0.1:18583 --merchant $MID --terminals 50000001 \
  --concurrency 1 --count 900 --mix purchase:100
echo "== 1 connection, mixed"
"$BIN" terminal-sim --addr 127.0.0.1:18583 --merchant $MID --terminals 50000002 \
  --concurrency 1 --count 1000 --settle
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
"$BIN" --data "$DATA" verify
