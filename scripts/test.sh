#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi

# Headless Chromium and chromedriver for the web portal's browser tests (crates/web), and a
# CJK font so screenshots show Chinese rather than boxes.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi "wenquanyi\|noto sans cjk"; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium chromium-driver fonts-wqy-microhei
fi

# Python peers for interop tests (pyiso8583), in the repo's own virtual environment.
if [ -f scripts/setup-python.sh ]; then
  bash scripts/setup-python.sh
fi

# Services the tests talk to are started by the machine; nothing else to start here.
cargo nextest run --workspace --no-fail-fast "$@"
