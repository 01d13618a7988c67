#!/usr/bin/env bash
# Installs tokensearch with its test extras (CPU torch 2.13.0 wheel, Debian chromium for the browser
# test) and runs the default test suite (slow tests are behind the `slow` marker).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -e '.[test]'
if ! command -v chromium >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
fi
python3 -m pytest -q -p no:cacheprovider "$@"
