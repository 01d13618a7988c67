"""Median in-process latency of a few queries on an existing index: with the vocabulary check off and on,
or (``--scan-ab``) with the flat index's blocked scan against FAISS's own search.

    python3 bench/query_latency.py --home H [--model mini:DIR] [--repeat 5] [--scan-ab] [QUERY ...]

``--scan-ab``: for each query, ``Engine.search`` with the blocked scan (``storage/vectors.py``
``scan_top_k``, taken from SCAN_MIN_QUERIES query rows on) and with FAISS for any number of rows,
alternating so that machine noise falls on both; prints the query rows searched and whether the hits
(pages, scores to 4 decimals, boxes) are the same.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

DEFAULT_QUERIES = [
    "different",
    "of the and to in",
    '"States of America"',
    "the quick brown fox jumps over the lazy dog again and again",
]


def timed(eng, q: str) -> tuple[float, list]:
    t = time.perf_counter()
    hits = eng.search(q, k=10).hits
    return (time.perf_counter() - t) * 1000, [(h.path, h.page, round(h.score, 4), h.boxes) for h in hits]


def verify_on_off(eng, queries: list[str], repeat: int) -> None:
    print(f"{'query':<62} {'verify':>6} {'hits':>5} {'median ms':>10}")
    for q in queries:
        for w in (0.0, None):  # None: the model's calibrated weight
            eng.settings = eng.settings.model_copy(update={"verify_weight": w})
            runs = [timed(eng, q) for _ in range(repeat)]
            print(
                f"{q[:62]:<62} {eng.verify_weight():>6} {len(runs[-1][1]):>5} "
                f"{statistics.median(r[0] for r in runs):>10.0f}"
            )


def scan_ab(eng, queries: list[str], repeat: int) -> None:
    import tokensearch.storage.vectors as vectors

    on, real_search, rows = vectors.SCAN_MIN_QUERIES, vectors.VectorIndex.search, []

    def counting(self, q, k):
        rows.append(len(q))
        return real_search(self, q, k)

    vectors.VectorIndex.search = counting
    print(f"{'query':<60} {'rows':>4} {'faiss ms':>9} {'scan ms':>8} {'ratio':>6} same")
    for q in queries:
        times, hits = {"faiss": [], "scan": []}, {}
        for _ in range(repeat):
            for mode in times:
                vectors.SCAN_MIN_QUERIES = on if mode == "scan" else 10**9
                ms, hits[mode] = timed(eng, q)
                times[mode].append(ms)
        f, s = statistics.median(times["faiss"]), statistics.median(times["scan"])
        print(f"{q[:60]:<60} {rows[-1]:>4} {f:>9.0f} {s:>8.0f} {f / s:>6.2f} {hits['faiss'] == hits['scan']}")
    vectors.SCAN_MIN_QUERIES, vectors.VectorIndex.search = on, real_search


def main() -> None:
    from tokensearch.engine import Engine
    from tokensearch.settings import Settings

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--model", default="mini")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--scan-ab", action="store_true")
    ap.add_argument("queries", nargs="*", default=DEFAULT_QUERIES)
    a = ap.parse_args()
    eng = Engine(Settings(home=a.home, model=a.model))
    eng.search("warm up")
    (scan_ab if a.scan_ab else verify_on_off)(eng, a.queries, a.repeat)
    eng.close()


if __name__ == "__main__":
    main()
