#!/usr/bin/env bash
# The real born-digital PDFs the mini model trains on: every PDF over 20 kB in the named Debian packages,
# fetched with apt-get download, copied flat as <md5 of its path in the package>_<name>.pdf (the names
# the held-out split and docs/training-data.md count on). Does nothing if DEST exists.
#   bash scripts/fetch_doc_pdfs.sh DEST PACKAGE...
set -euo pipefail
DEST=$1
shift
[ -d "$DEST" ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download "$@" && for d in *.deb; do dpkg-deb -x "$d" x; done)
mkdir -p "$DEST.part"
find "$tmp/x" -name '*.pdf' -size +20k | while read -r f; do
  cp "$f" "$DEST.part/$(echo "${f#"$tmp"/}" | md5sum | cut -c1-8)_$(basename "$f")"
done
mv "$DEST.part" "$DEST"
