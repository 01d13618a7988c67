#!/usr/bin/env bash
# The README's test command and CI's (.ci/run): in a fresh virtualenv, install tokensearch at the pinned
# versions of requirements/ci-constraints.txt (CPU torch 2.13.0 wheel), check what a user runs with the
# runtime dependencies alone (scripts/smoke_runtime.sh), then add the test, lint and milvus extras (milvus:
# pymilvus + milvus-lite, so the Milvus vector backend's tests run for real, in-process) and Debian's
# chromium for the browser test, check lint (ruff) and types (mypy), and run the default test suite (slow
# tests are behind the `slow` marker).
#   bash scripts/test.sh [pytest args]     (TOKENSEARCH_TEST_VENV: where the virtualenv goes)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${TOKENSEARCH_TEST_VENV:-"${TMPDIR:-/tmp}/tokensearch-test-venv"}
rm -rf "$VENV"
python3 -m venv "$VENV"
install() {  # (this machine's pip.conf names package folders that may not exist: their warnings are noise)
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c requirements/ci-constraints.txt "$@" \
    2> >(grep -v "^WARNING: Location '.*' is ignored" >&2)
}

install torch==2.13.0 -e .
bash scripts/smoke_runtime.sh "$VENV"

install -e '.[test,lint,milvus]'
# lint and format (ruff, on the package and the tests) and types (mypy, on the package), as pyproject.toml
# configures them: a violation fails the run before the tests start
"$VENV/bin/ruff" check --no-cache tokensearch tests
"$VENV/bin/ruff" format --check --no-cache tokensearch tests
"$VENV/bin/mypy" --cache-dir "$VENV/mypy-cache"
# Debian's chromium for the Playwright viewer test; docker-compose (v1) to check docker/compose.yaml;
# wamerican: the dictionary the training data and the threshold calibration draw words from
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
[ -f /usr/share/dict/words ] || missing="$missing wamerican"
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || missing="$missing docker-compose"
if [ -n "$missing" ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing) >/dev/null
fi
# CI=1: the PostgreSQL tests must run here (a plain `pytest` skips them, saying so, when no server answers);
# Hypothesis then takes its `ci` profile too (derandomised, no deadline, no example database)
export CI=1
# two workers (pytest-xdist), each test file in one of them: on two cores the suite takes about half the time it
# takes in one process (BENCHMARKS.md, "Test suite"); every PostgreSQL test takes a schema of its own, every
# server a free port. TOKENSEARCH_TEST_WORKERS=0: one process
PATH="$VENV/bin:$PATH" "$VENV/bin/python" -m pytest -q -p no:cacheprovider -n "${TOKENSEARCH_TEST_WORKERS:-2}" \
  --dist loadfile "$@"
