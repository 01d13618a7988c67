"""Bytes a born-digital page (issue 17: <= 16 KiB at 100,000 pages), without the rest of the scale run.

    python3 bench/born_digital_bytes.py --bench ../shared/bench --work W --out F

The dev benchmark's 12 PDFs indexed into two fresh homes (``bench/scale.py``'s ``born_digital_bytes``): one
whose vector index is token postings from the first page, as a home past 2M cells holds them (the figure the
target is about), one with the small home's exact flat index. Each page's bytes split into its feature blob,
its share of the vector index and of the SQL and the rest; what a home holds once whatever its pages (the query
side, the codec, the text layers' token rows) is reported apart.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, required=True, help="the dev benchmark (../shared/bench)")
    ap.add_argument("--work", type=Path, required=True, help="a folder for the two homes (emptied first)")
    ap.add_argument("--out", type=Path, required=True, help="JSON report")
    a = ap.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(a.bench.resolve())]
    from cli_latency import cpu_name
    from scale import born_digital_bytes

    for name in ("postings", "flat"):
        shutil.rmtree(a.work / f"born-digital-{name}", ignore_errors=True)
    report = born_digital_bytes(a.bench.resolve() / "corpus" / "pdf", a.work.resolve())
    report["commit"] = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    report["cpu"] = cpu_name()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=1))
    for name in ("postings", "flat"):
        r = report[name]
        print(
            f"{name}: born-digital {r.get('born-digital')} B a page {r.get('born-digital_split')}, "
            f"home fixed {r['home_fixed_bytes']} B"
        )


if __name__ == "__main__":
    main()
