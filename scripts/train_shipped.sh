#!/usr/bin/env bash
# Reproduce the recipe of the shipped mini weights, CPU only, resumable (re-run the script after an
# interruption: each stage resumes from its checkpoint, finished stages are skipped).
#   bash scripts/train_shipped.sh [RUN_DIR]        (default RUN_DIR=runs/mini-shipped)
# Stages:
#   1. from scratch on synthetic documents        (tokensearch train,    8000 steps, ~2 h on 2 cores)
#   2. fine-tune on real born-digital PDFs, growing the net by 2 context blocks at 1/8 and 1 block at
#      1/4 (identity-initialised)                 (tokensearch finetune, 4500 steps, ~50-60 min)
#      PDFs: the documentation of three Debian TeX Live packages, none of them in ../shared/bench
#   3. threshold calibrated through the engine on 60 pages of the PDFs' held-out files
# The result is RUN_DIR/finetune (use it as --model mini:RUN_DIR/finetune, or copy its two files into
# tokensearch/tokenocr_model/weights/ to ship it).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/mini-shipped}
PDFS=$RUN/pdfs
mkdir -p "$RUN"

done_steps() {  # steps recorded in a run's checkpoint (0 if none)
  python3 -c "import sys,torch; print(torch.load(sys.argv[1], weights_only=False)['step'])" "$1/ckpt.pt" 2>/dev/null || echo 0
}

if [ "$(done_steps "$RUN/scratch")" -lt 8000 ]; then
  tokensearch train --out "$RUN/scratch" --steps 8000 --lr 2e-3 --resume
fi

if [ ! -d "$PDFS" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download texlive-latex-recommended-doc texlive-humanities-doc texlive-publishers-doc \
     && for d in *.deb; do dpkg-deb -x "$d" x; done)
  mkdir -p "$PDFS"
  # file names made unique by a hash of their path in the package
  find "$tmp/x" -name '*.pdf' -size +20k | while read -r f; do
    cp "$f" "$PDFS/$(echo "${f#"$tmp"/}" | md5sum | cut -c1-8)_$(basename "$f")"
  done
  rm -rf "$tmp"
fi

if [ "$(done_steps "$RUN/finetune")" -lt 4500 ]; then
  tokensearch finetune "$PDFS" --out "$RUN/finetune" --init "$RUN/scratch" --steps 4500 --lr 8e-4 \
    --blocks 6 --quarter-blocks 1 --val-every 500 --resume
fi

python3 -m tokensearch.training.calibrate --weights "$RUN/finetune" --pdf-dir "$PDFS" --pages 60 --queries 150 --write
