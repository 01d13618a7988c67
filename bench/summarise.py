"""Table of dev-benchmark result files, with tokensearch's indexing speed as a ratio to Tesseract's
from the same run (same set, same tag).

    python3 bench/summarise.py bench/results/*_devbench.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLS = ["R@1", "R@10", "MRR", "Loc@1", "FP_any"]


def main(paths: list[str]) -> None:
    runs = [json.loads(Path(p).read_text()) for p in paths]
    speed = {(r["system"], r["set"]): r["summary"]["index_s_per_page"] for r in runs}
    print(
        "| system | set | pages | "
        + " | ".join(COLS)
        + " | idx s/pg | pages/s | × Tesseract pages/s | query p50 ms | p95 ms | B/pg |"
    )
    print("|---" * (len(COLS) + 9) + "|")
    for r in sorted(runs, key=lambda r: (r["set"], r["system"])):
        s = r["summary"]
        vals = []
        for k in COLS:
            v = s.get(k)
            vals.append("-" if v is None else f"{v:.3f}")
        t = speed.get(("tesseract", r["set"]))
        ratio = f"{t / s['index_s_per_page']:.2f}" if t and r["system"] != "tesseract" else "-"
        print(
            f"| {r['system']} | {r['set']} | {r['n_pages']} | "
            + " | ".join(vals)
            + f" | {s['index_s_per_page']:.3f} | {1 / s['index_s_per_page']:.2f} | {ratio} | "
            + f"{s['lat_p50_ms']:.1f} | {s['lat_p95_ms']:.1f} | {s.get('index_bytes_per_page') or '-'} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
