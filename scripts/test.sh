#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi

# Python peers for interop tests (pyiso8583), in the repo's own virtual environment.
if [ -f scripts/setup-python.sh ]; then
  bash scripts/setup-python.sh
fi

# Services the tests talk to are started by the machine; nothing else to start here.
cargo nextest run --workspace --no-fail-fast "$@"
