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
    from stage1_scale import dev_pages

    from tokensearch.engine import Engine
    from tokensearch.settings import Settings

    searcher = Engine(Settings(home=a.home)).searcher()
    _, where = dev_pages(searcher.store)
    queries = [json.loads(line) for line in open(a.queries or a.bench / "data" / "queries.jsonl")]
    shipped = searcher.opt
    for v in a.variants:
        cells, pages = (int(x) for x in v.split(","))
        searcher.opt = replace(shipped, cells_per_token=cells, min_candidate_pages=pages)
        first, within, answered, negatives = 0, 0, 0, 0
        lat: list[float] = []
        by_type: dict[str, list[bool]] = {}
        for q in queries:
            t0 = time.perf_counter()
            hits = searcher.search(q["query"], 10, 0, 256).hits
            lat.append(time.perf_counter() - t0)
            if not q.get("relevant"):
                negatives += 1
                answered += bool(hits)
                continue
            want = {(r["doc"], r["page"]) for r in q["relevant"]}
            rel = {pid for pid, key in where.items() if key in want}
            if not rel:
                continue
            ok = bool(hits) and hits[0].page_id in rel
            first += ok
            within += bool(rel & {h.page_id for h in hits})
            by_type.setdefault(q["type"], []).append(ok)
        n = sum(len(v) for v in by_type.values())
        lat.sort()
        print(
            f"cells {cells}, pages {pages}: R@1 {first / n:.3f}, relevant within 10 {within / n:.3f}, "
            f"negatives answered {answered}/{negatives}, p50 {1000 * statistics.median(lat):.0f} ms, "
            f"p95 {1000 * lat[int(0.95 * (len(lat) - 1))]:.0f} ms | "
            + " ".join(f"{t} {sum(v) / len(v):.3f}" for t, v in by_type.items()),
            flush=True,
        )


if __name__ == "__main__":
    main()
