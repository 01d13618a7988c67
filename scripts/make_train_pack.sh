#!/usr/bin/env bash
# Build the data pack that scripts/train_gpu.sh trains from on a lent GPU machine (no network there, none
# of this machine's fonts, dictionary or Debian packages): one gitignored folder for the device tool's
# `carry` (docs/mini.md, "Training on a lent GPU").
#   bash scripts/make_train_pack.sh [--out runs/gpu-pack] [--pdf-dir DIR] [--pdf-mib 22] [--pages 6] [--no-wheels]
# The pack:
#   pdfs/          the PDFs, each cut to <= 6 usable pages, seeded random files until --pdf-mib
#                  (python -m tokensearch.training.datapack; the held-out split by file name kept)
#   assets.tar.xz  this machine's fonts as the synthetic generator finds them, the word list, prose lines
#   site.tar.xz    Python packages the device image lacks (PyMuPDF, the version installed here, for
#                  CPython 3.12 x86_64): the wheel's files, xz-compressed (18 MiB against its 26 MiB zip)
#   pack.json      what is inside (files, pages, held-out files, fonts, sources)
# Without --pdf-dir the PDFs are the shipped recipe's (scripts/train_shipped.sh, stage 0: the documentation
# of three Debian TeX Live packages, fetched with apt-get download into runs/mini-shipped/pdfs, same
# names) -- or --packages "pkg ..." for others (the held-out evaluation packages are refused).
# The working tree and the pack travel together and must stay under 64 MiB: the script checks it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUTDIR=runs/gpu-pack
PDF_DIR=
PDF_MIB=22
PAGES=6
WHEELS=1
PACKAGES="texlive-latex-recommended-doc texlive-humanities-doc texlive-publishers-doc"
HELD_OUT="auto-multiple-choice-doc-pdf octave-doc camlidl-doc r-cran-sandwich r-cran-zoo"
LIMIT_MIB=64
while [ $# -gt 0 ]; do
  case $1 in
    --out) OUTDIR=$2; shift 2 ;;
    --pdf-dir) PDF_DIR=$2; shift 2 ;;
    --pdf-mib) PDF_MIB=$2; shift 2 ;;
    --pages) PAGES=$2; shift 2 ;;
    --packages) PACKAGES=$2; shift 2 ;;
    --no-wheels) WHEELS=0; shift ;;
    *) echo "unknown option $1 (see the head of $0)" >&2; exit 2 ;;
  esac
done

if [ -z "$PDF_DIR" ]; then
  for p in $PACKAGES; do
    case " $HELD_OUT " in *" $p "*) echo "$p is held out for evaluation (issue 21): never train on it" >&2; exit 2 ;; esac
  done
  PDF_DIR=runs/mini-shipped/pdfs
  [ "$PACKAGES" = "texlive-latex-recommended-doc texlive-humanities-doc texlive-publishers-doc" ] \
    || PDF_DIR=runs/pdfs-$(echo "$PACKAGES" | md5sum | cut -c1-8)
  # shellcheck disable=SC2086
  bash scripts/fetch_doc_pdfs.sh "$PDF_DIR" $PACKAGES  # as scripts/train_shipped.sh stage 0 (same file names)
fi

if [ -d "$OUTDIR" ] && [ -n "$(ls -A "$OUTDIR")" ] && [ ! -f "$OUTDIR/pack.json" ]; then
  echo "$OUTDIR exists and is not a pack: choose another --out" >&2
  exit 2
fi
rm -rf "$OUTDIR"
"$PY" -m tokensearch.training.datapack --pdf-dir "$PDF_DIR" --out "$OUTDIR" --pdf-mib "$PDF_MIB" --pages "$PAGES"

if [ "$WHEELS" = 1 ]; then
  ver=$("$PY" -c "import pymupdf; print(pymupdf.__version__)")
  tmp=$(mktemp -d)
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$tmp/whl" "pymupdf==$ver"
  mkdir -p "$tmp/site"
  for w in "$tmp"/whl/*.whl; do "$PY" -m zipfile -e "$w" "$tmp/site"; done  # a wheel is its site-packages tree
  rm -rf "$tmp/site/pymupdf/mupdf-devel"  # C headers and import libraries: not needed to run
  XZ_OPT=-9 tar -C "$tmp/site" -cJf "$OUTDIR/site.tar.xz" .
  ls "$tmp/whl" > "$OUTDIR/site.txt"
  rm -rf "$tmp"
fi

# what travels to the device: the working tree (tracked and untracked files that git does not ignore) + the pack
tree=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | xargs -0 -r du -cb 2>/dev/null | awk '/\ttotal$/ {s += $1} END {print s + 0}')
pack=$(du -sb "$OUTDIR" | cut -f1)
echo "pack $OUTDIR: $((pack / 1024 / 1024)) MiB; with the working tree ($((tree / 1024 / 1024)) MiB): $(((pack + tree) / 1024 / 1024)) MiB of the $LIMIT_MIB MiB that may travel"
if [ $((pack + tree)) -gt $((LIMIT_MIB * 1024 * 1024)) ]; then
  echo "too large to travel: rebuild with a smaller --pdf-mib" >&2
  exit 1
fi
