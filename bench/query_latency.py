"""Median in-process latency of a few queries on an existing index, with the vocabulary check off and on.

    python3 bench/query_latency.py --home H --model mini:DIR [--repeat 5] [QUERY ...]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

DEFAULT_QUERIES = ["different", "of the and to in", '"States of America"',
                   "the quick brown fox jumps over the lazy dog again and again"]


def main() -> None:
    from tokensearch.engine import Engine
    from tokensearch.settings import Settings

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--model", default="mini")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("queries", nargs="*", default=DEFAULT_QUERIES)
    a = ap.parse_args()
    eng = Engine(Settings(home=a.home, model=a.model))
    eng.search("warm up")
    print(f"{'query':<62} {'verify':>6} {'hits':>5} {'median ms':>10}")
    for q in a.queries:
        for w in (0.0, None):  # None: the model's calibrated weight
            eng.settings = eng.settings.model_copy(update={"verify_weight": w})
            times, n = [], 0
            for _ in range(a.repeat):
                t = time.perf_counter()
                n = len(eng.search(q, k=10).hits)
                times.append((time.perf_counter() - t) * 1000)
            print(f"{q[:62]:<62} {eng.verify_weight():>6} {n:>5} {statistics.median(times):>10.0f}")
    eng.close()


if __name__ == "__main__":
    main()
