#!/usr/bin/env bash
# ISO 8583 codec benchmark: the criterion bench (Rust, one core) and pyiso8583 on the same
# frames in the same run, then a comparison table. Usage: scripts/iso8583/bench.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup-python.sh
VECTORS="$(pwd)/../shared/spec/vectors"
TARGET="${CARGO_TARGET_DIR:-$(pwd)/target}"
cargo bench -p iso8583 --bench codec -- --warm-up-time 2 --measurement-time 5 >/dev/null
.venv/bin/python scripts/iso8583/bench_py.py "$VECTORS" >"$TARGET/iso8583-bench-py.json"
.venv/bin/python - "$TARGET" <<'PY'
import json, os, sys
target = sys.argv[1]
py = json.load(open(os.path.join(target, "iso8583-bench-py.json")))
print(f"{'operation':<22} {'rust ns':>9} {'rust msg/s':>12} {'pyiso8583 ns':>13} {'ratio':>7}")
for op in ("decode", "encode"):
    for case in ("0200_purchase", "0210_purchase"):
        est = json.load(open(os.path.join(target, "criterion", "iso8583", f"{op}_{case}", "new", "estimates.json")))
        ns = est["median"]["point_estimate"]
        p = py[f"{op}/{case}"]
        print(f"{op + '/' + case:<22} {ns:>9.1f} {1e9 / ns:>12,.0f} {p:>13.1f} {p / ns:>6.0f}x")
PY
