"""What stage 1's breadth buys on an indexed set: R@1, hits within k, negatives answered and query latency
with more top cells a query token (``cells_per_token``) and more pages scored exactly (``min_candidate_pages``).

    python3 bench/stage1_variants.py --home H [--queries B/real/data/queries.jsonl] [--variants 4096,32 16384,32]

H: the set indexed (``tokensearch index .../scans/SET/png --home H``). Each variant runs every query of the
file in-process, k = 10, as the engine answers them; R@1 counts the first hit on a relevant page (either
rendition), as the harness does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench")
    ap.add_argument("--queries", type=Path, help="the set's queries file (default: the dev benchmark's)")
    ap.add_argument("--variants", nargs="+", default=["4096,32", "16384,32", "4096,64", "16384,64"])
    a = ap.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(a.bench)]
    from stage1_scale import dev_pages, positive_queries

    from tokensearch.engine import Engine
    from tokensearch.settings import Settings

    searcher = Engine(Settings(home=a.home)).searcher()
    _, where = dev_pages(searcher.store)
    positives = [(q, rel) for q, rel in positive_queries(a.bench, where, a.queries) if rel]
    negatives = [
        q for q in map(json.loads, open(a.queries or a.bench / "data" / "queries.jsonl")) if not q.get("relevant")
    ]
    shipped = searcher.opt

    def pages_found(q: dict, lat: list[float]) -> list[int]:
        t0 = time.perf_counter()
        found = searcher.search(q["query"], 10, 0, 256).hits
        lat.append(time.perf_counter() - t0)
        return [h.page_id for h in found]

    for v in a.variants:
        cells, pages = (int(x) for x in v.split(","))
        searcher.opt = replace(shipped, cells_per_token=cells, min_candidate_pages=pages)
        lat: list[float] = []
        first, within = 0, 0
        by_type: dict[str, list[bool]] = {}
        for q, rel in positives:
            found = pages_found(q, lat)
            ok = bool(found) and found[0] in rel
            first += ok
            within += bool(rel & set(found))
            by_type.setdefault(q["type"], []).append(ok)
        answered = sum(bool(pages_found(q, lat)) for q in negatives)
        n = len(positives)
        lat.sort()
        print(
            f"cells {cells}, pages {pages}: R@1 {first / n:.3f}, relevant within 10 {within / n:.3f}, "
            f"negatives answered {answered}/{len(negatives)}, p50 {1000 * statistics.median(lat):.0f} ms, "
            f"p95 {1000 * lat[int(0.95 * (len(lat) - 1))]:.0f} ms | "
            + " ".join(f"{t} {sum(v) / len(v):.3f}" for t, v in by_type.items()),
            flush=True,
        )


if __name__ == "__main__":
    main()
