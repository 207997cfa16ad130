#!/usr/bin/env bash
# Crash safety under real load: 200 terminals through `poslens terminal-sim`, the server killed
# with SIGKILL after AFTER approvals, restarted, and every approved reply checked against the
# database; then `poslens verify`.
#   scripts/pos/crash.sh [TERMINALS=200] [AFTER=20000]
set -euo pipefail
cd "$(dirname "$0")/../.."
TERMINALS=${1:-200}
AFTER=${2:-20000}
BIN=${POSLENS_BIN:-target/release/poslens}
[ -x "$BIN" ] || cargo build --release -p poslens
DATA=$(mktemp -d)
trap 'kill -9 "${SERVER:-0}" "${SIM:-0}" 2>/dev/null || true; rm -rf "$DATA"' EXIT
MID=898310048990001
"$BIN" --data "$DATA" merchant add --id $MID --name crash >/dev/null
for i in $(seq 1 "$TERMINALS"); do "$BIN" --data "$DATA" terminal add --id "$((50000000 + i))" --merchant $MID >/dev/null; done
printf 'http = "127.0.0.1:18081"\npos = "127.0.0.1:18584"\n' >"$DATA/crash.toml"
POSLENS_LOG=warn "$BIN" --data "$DATA" serve --config "$DATA/crash.toml" 2>"$DATA/serve.log" &
SERVER=$!
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/18584) 2>/dev/null && break; sleep 0.1; done
"$BIN" terminal-sim --addr 127.0.0.1:18584 --merchant $MID --terminals "50000001-$((50000000 + TERMINALS))" \
  --concurrency "$TERMINALS" --count 10000000 --mix purchase:90,void:5,refund:5 --reply-timeout-s 2 \
  --approved-log "$DATA/approved.log" >/dev/null 2>&1 &
SIM=$!
until [ "$(wc -l <"$DATA/approved.log" 2>/dev/null || echo 0)" -ge "$AFTER" ]; do sleep 0.05; done
kill -9 "$SERVER"; wait "$SERVER" 2>/dev/null || true
wait "$SIM" 2>/dev/null || true
APPROVED=$(wc -l <"$DATA/approved.log")
echo "killed the server after $APPROVED approvals"
POSLENS_LOG=warn "$BIN" --data "$DATA" serve --config "$DATA/crash.toml" 2>>"$DATA/serve.log" &
SERVER=$!
sleep 2
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
"$BIN" --data "$DATA" verify
python3 - "$DATA" <<'PY'
import sqlite3, sys
d = sys.argv[1]
stored = {r[0] for r in sqlite3.connect(f"{d}/poslens.db").execute("SELECT rrn FROM txn_records WHERE rrn IS NOT NULL")}
approved = [l.split(",")[3] for l in open(f"{d}/approved.log") if l.strip()]
missing = [r for r in approved if r not in stored]
print(f"{len(approved)} approved, {len(missing)} missing")
sys.exit(1 if missing else 0)
PY
