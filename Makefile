# Shortcuts for a newcomer; each target runs what CI or the benchmarks run, in the active Python environment
# (after `pip install -e '.[test,lint]'`), except `ci`, which builds its own virtualenv as CI does.
PYTHON ?= python3
BENCH ?= ../shared/bench

.PHONY: ci lint unit test bench

ci:  ## what .ci/run runs: a fresh virtualenv, the runtime smoke test, lint and the default suite
	bash scripts/test.sh

lint:  ## style and types, as CI checks them
	$(PYTHON) -m ruff check tokensearch tests
	$(PYTHON) -m ruff format --check tokensearch tests
	$(PYTHON) -m mypy

unit:  ## the fast tier (no model end to end, no servers, no PostgreSQL): about a minute
	$(PYTHON) -m pytest -q -m "not slow and not integration"

test:  ## the default suite (unit and integration; needs PostgreSQL on 127.0.0.1:5432)
	$(PYTHON) -m pytest -q -n 2 --dist loadfile

bench:  ## the dev benchmark beside Tesseract (BENCHMARKS.md, "Image-only pages beside Tesseract")
	TOKENSEARCH_BENCH=$(BENCH) bash bench/run_dev_bench.sh clean_150 degraded_150 real_dev
