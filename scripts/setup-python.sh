#!/usr/bin/env bash
# Creates <repo>/.venv with the Python packages the tests use as an independent peer
# (pyiso8583 for the ISO 8583 interop test and benchmark). Idempotent: does nothing when
# the pinned versions are already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
if [ ! -x "$PY" ]; then
    python3 -m venv .venv
fi
if ! "$PY" -c 'import importlib.metadata as m, sys; sys.exit(m.version("pyiso8583") != "4.0.1")' 2>/dev/null; then
    .venv/bin/pip install -q --disable-pip-version-check pyiso8583==4.0.1
fi
