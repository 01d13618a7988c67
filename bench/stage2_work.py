"""Where stage 2's time goes: how many pages a query scores, how many of them end with no occurrence, and what
the work on those pages is spent on.

    python3 bench/stage2_work.py --home H --queries Q.jsonl [--limit N]

Stage 2 (``Searcher.score_pages``) reads each candidate page's features and locates every spelling of the
query on it from ``pooled_reach`` under the threshold, then re-scores the chains with their pooled cells
(``verify.rescore_all``: first a floor, the score without margins, then the margins against the whole
vocabulary) and the word-boundary checks. This script runs the queries twice:

1. as the engine does (pages scored in one batch): the median search, and stage 2's share of it;
2. page by page (the same scores; only the batching of page reads differs), to split stage 2's work, page
   reads excluded, between pages that end with an occurrence and pages that end empty, by function, and to
   count the occurrences located, left by the floor and left by the margins.

Single-threaded (the engine's search setting), in one process; nothing else should run meanwhile.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import time
from pathlib import Path

import tokensearch.search.searcher as searcher_mod
from tokensearch.engine import Engine
from tokensearch.settings import Settings

PARTS = ("locate", "dense_maps", "rescore_all", "_word_bounds")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--queries", type=Path, required=True, help="JSON lines with a 'query' field")
    ap.add_argument("--limit", type=int, default=0, help="the first N queries only")
    a = ap.parse_args()
    queries = [json.loads(line)["query"] for line in open(a.queries)]
    queries = queries[: a.limit] if a.limit else queries

    spent: collections.Counter = collections.Counter()
    counts: collections.Counter = collections.Counter()

    def timed_function(name: str) -> None:
        f = getattr(searcher_mod, name)

        def run(*args, **kw):
            t = time.perf_counter()
            out = f(*args, **kw)
            spent[name] += time.perf_counter() - t
            if name == "rescore_all":
                floors = kw.get("floors") or args[6]
                counts["located"] += sum(len(g[0]) for g in args[0])
                counts["left by the floor"] += sum(len(o) for o in out)
                counts["left by the margins"] += sum(x.score >= f_ for o, f_ in zip(out, floors) for x in o)
            return out

        setattr(searcher_mod, name, run)

    for name in ("locate", "dense_maps", "rescore_all"):
        timed_function(name)
    word_bounds = searcher_mod.Searcher._word_bounds

    def timed_word_bounds(self, *args, **kw):
        t = time.perf_counter()
        out = word_bounds(self, *args, **kw)
        spent["_word_bounds"] += time.perf_counter() - t
        return out

    searcher_mod.Searcher._word_bounds = timed_word_bounds  # type: ignore[method-assign]
    score_pages = searcher_mod.Searcher.score_pages
    batched: list[float] = []

    def batched_pages(self, plan, page_ids, units=None, cache=None):
        t = time.perf_counter()
        out = score_pages(self, plan, page_ids, units, cache)
        batched.append(time.perf_counter() - t)
        return out

    by_end: dict[bool, collections.Counter] = {True: collections.Counter(), False: collections.Counter()}
    pages_scored = collections.Counter()

    def page_by_page(self, plan, page_ids, units=None, cache=None):
        cache = {} if cache is None else cache
        self._pages(plan, page_ids, cache)  # the reads, batched as the engine batches them, not counted
        out = {}
        for pid in page_ids:
            before = spent.copy()
            t = time.perf_counter()
            one = score_pages(self, plan, [pid], units, cache)
            took = time.perf_counter() - t
            answered = any(occ for per_unit in one.values() for occ in per_unit)
            by_end[answered]["stage 2 without reads"] += took
            for name in PARTS:
                by_end[answered][name] += spent[name] - before[name]
            pages_scored[answered] += 1
            out.update(one)
        return out

    eng = Engine(Settings(home=a.home, threads=1))
    eng.search("warming up", k=1)
    searcher_mod.Searcher.score_pages = batched_pages  # type: ignore[method-assign]
    took = []
    for q in queries:
        n = len(batched)
        t = time.perf_counter()
        eng.search(q, k=10)
        took.append((time.perf_counter() - t, sum(batched[n:])))
    total = sum(t for t, _ in took)
    stage2 = sum(s for _, s in took)
    print(f"{len(queries)} queries on {a.home}")
    median = 1000 * statistics.median(t for t, _ in took)
    print(f"search median {median:.0f} ms; stage 2 {100 * stage2 / total:.0f} % of it")

    spent.clear()
    counts.clear()
    searcher_mod.Searcher.score_pages = page_by_page  # type: ignore[method-assign]
    for q in queries:
        eng.search(q, k=10)
    n_pages = sum(pages_scored.values())
    empty = 100 * pages_scored[False] / n_pages
    print(f"pages scored a query {n_pages / len(queries):.1f}; ending empty {empty:.0f} %")
    work = sum(c["stage 2 without reads"] for c in by_end.values())
    for answered in (True, False):
        c = by_end[answered]
        parts = ", ".join(f"{name} {100 * c[name] / work:.0f} %" for name in PARTS)
        label = "pages with an occurrence" if answered else "pages ending empty"
        print(f"{label}: {100 * c['stage 2 without reads'] / work:.0f} % of stage 2's work without reads ({parts})")
    print("occurrences: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    eng.close()


if __name__ == "__main__":
    main()
