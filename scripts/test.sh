#!/usr/bin/env bash
# Installs tokensearch with its test extras (CPU torch 2.13.0 wheel, Debian chromium for the browser
# test) and runs the default test suite (slow tests are behind the `slow` marker).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -e '.[test]'
# Debian's chromium for the Playwright viewer test; docker-compose (v1) to check docker/compose.yaml
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || missing="$missing docker-compose"
if [ -n "$missing" ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing) >/dev/null
fi
python3 -m pytest -q -p no:cacheprovider "$@"
