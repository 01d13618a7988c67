#!/usr/bin/env bash
# The dev benchmark (../shared/bench) for tokensearch beside Tesseract, in ONE run on the same pages, so
# that speed is compared as a ratio measured on the same machine at the same time.
#   bash bench/run_dev_bench.sh [SETS...]      (default: clean_150 degraded_150; needs tesseract-ocr)
# Results: bench/results/*.json (copied) and bench/results/dev_bench_table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${TOKENSEARCH_BENCH:-../shared/bench}
SETS=${*:-clean_150 degraded_150}
[ -d "$BENCH/data/scans" ] || (cd "$BENCH" && python3 build_data.py)
mkdir -p bench/results
for set in $SETS; do
  echo "=== tesseract $set $(date +%T)"
  (cd "$BENCH" && python3 run_eval.py --system tesseract --set "$set" --tag devbench 2>&1 | grep -v -i warning | tail -3)
  cp "$BENCH/results/tesseract_${set}_devbench.json" bench/results/
  echo "=== tokensearch $set $(date +%T)"
  python3 bench/ts_inprocess.py --bench "$BENCH" --set "$set" --tag devbench 2>&1 | grep -v -i warning | tail -3
done
python3 bench/summarise.py bench/results/*_devbench.json > bench/results/dev_bench_table.md
cat bench/results/dev_bench_table.md
