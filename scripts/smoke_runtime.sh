#!/usr/bin/env bash
# What a user runs, in a virtualenv that holds only tokensearch's declared dependencies (no test extras):
# the README's main command on the embedded model, then index + search + heatmap with a tiny checkpoint in
# the official TokenOCR layout. A runtime dependency that only the test extras happen to install (as
# protobuf once was) fails here rather than on a user's machine.
#   bash scripts/smoke_runtime.sh VENV
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
VENV=$(cd "$1" && pwd)
PY=$VENV/bin/python
TS=$VENV/bin/tokensearch
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# no test tool may be importable here, or this check proves nothing
if "$PY" -c "import pytest" 2>/dev/null; then
  echo "smoke_runtime: $VENV has pytest installed; it must hold only the runtime dependencies" >&2
  exit 1
fi

check_hit() {  # $1: search --json output; $2: file name that must be among the hits
  "$PY" -c '
import json, sys
hits = json.loads(sys.argv[1])["hits"]
names = [h["path"].rsplit("/", 1)[-1] for h in hits]
assert sys.argv[2] in names and all(h["boxes"] for h in hits), (sys.argv[2], names)
' "$1" "$2"
}

cd "$WORK"
echo "== README main command (embedded model)"
"$TS" sample ./sample-docs >/dev/null
"$TS" index ./sample-docs
out=$("$TS" search "INV-2023-0042" --json)
check_hit "$out" page-1.png

echo "== official TokenOCR layout (tiny checkpoint): index, search, heatmap"
# big type: the tiny checkpoint's 56 px tiles make cells of ~50 px on a page, one glyph per cell
"$PY" - "$REPO/tests" "$WORK" <<'PYEOF'
import sys
from pathlib import Path

sys.path.insert(0, sys.argv[1])
from tokenocr_factory import make_tiny_checkpoint
from tokensearch.samples import born_digital_pdf, image_only_pdf, rasterise_pdf

work = Path(sys.argv[2])
make_tiny_checkpoint(work / "TokenOCR")
pdf, _ = born_digital_pdf([["INVOICE 42", "Total due"], ["harbour crane", "spare parts"]], fontsize=60)
(work / "docs").mkdir()
(work / "docs" / "born-digital.pdf").write_bytes(pdf)
(work / "docs" / "scanned.pdf").write_bytes(image_only_pdf(rasterise_pdf(pdf)))
PYEOF
MODEL="tokenocr:$WORK/TokenOCR"
"$TS" index ./docs --home ./home-tokenocr --model "$MODEL"
out=$("$TS" search "INVOICE" --json --home ./home-tokenocr --model "$MODEL")
check_hit "$out" born-digital.pdf
"$TS" heatmap ./docs/scanned.pdf "harbour crane" --page 2 -o ./maps --model "$MODEL"
n=$(ls ./maps/*.png | wc -l)
[ "$n" -ge 3 ] || { echo "smoke_runtime: heatmap wrote $n maps" >&2; exit 1; }
echo "smoke_runtime: ok"
