"""Why a positive query returns no relevant page: is the word not read there, or read and then rejected?

    python3 bench/missed_pages.py --home H [--queries ../shared/bench/real/data/queries.jsonl] [--bench B]

H: the set indexed (``tokensearch index .../scans/real_dev/png --home H``). Each positive query is searched
as a user would (k = 10); where none of its relevant pages is among the hits, those pages are scored exactly
(``Searcher.score_pages``) three ways: without the vocabulary check (the chain of cosines alone), with it,
and with it and the word-start/end checks (the engine's search). Printed: each missed query's best score on
its relevant pages at each step, and the count of misses by the step that first drops them under the
threshold (the phrase threshold for several words; "kept" = still at or above it, yet the page is not
returned: stage 1 or the answer rule).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench")
    ap.add_argument("--queries", type=Path, help="the set's queries file (default: the dev benchmark's)")
    ap.add_argument("-k", type=int, default=10)
    a = ap.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(a.bench)]
    from stage1_scale import dev_pages, positive_queries

    from tokensearch.engine import Engine
    from tokensearch.settings import Settings

    eng = Engine(Settings(home=a.home))
    searcher = eng.searcher()
    _, where = dev_pages(searcher.store)
    shipped = searcher.opt
    steps = {
        "chain": replace(shipped, verify_weight=0.0, token_classes=None),
        "vocabulary check": replace(shipped, token_classes=None),
        "word bounds": shipped,
    }
    word_thr, phrase_thr = searcher._thresholds(exact=False)
    lost: Counter[str] = Counter()
    missed = 0
    queries = positive_queries(a.bench, where, a.queries)
    for q, rel in queries:
        hits = searcher.search(q["query"], a.k, 0, 256).hits
        if rel & {h.page_id for h in hits}:
            continue
        missed += 1
        best = {}
        for name, opt in steps.items():
            searcher.opt = opt
            plan = searcher.plan(q["query"], 256)
            scored = searcher.score_pages(plan, sorted(rel))
            best[name] = max((o.score for per in scored.values() for occ in per for o in occ), default=None)
        searcher.opt = shipped
        thr = phrase_thr if len(q["query"].split()) > 1 else word_thr  # several words count from the phrase one
        first_low = next((n for n, s in best.items() if s is None or s < thr), "kept")
        lost[first_low] += 1
        shown = "  ".join(f"{n} {'-' if s is None else f'{s:.3f}'}" for n, s in best.items())
        print(f"{q['type']:10s} {q['query']!r:24s} {shown}")
    print(
        f"{missed} of {len(queries)} positive queries return no relevant page (thresholds {word_thr} / "
        f"{phrase_thr}); under the threshold first at: " + ", ".join(f"{n} {lost[n]}" for n in [*steps, "kept"])
    )
    eng.close()


if __name__ == "__main__":
    main()
