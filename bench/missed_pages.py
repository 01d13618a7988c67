"""Why a positive query returns no relevant page: is the word not read there, or read and then rejected?

    python3 bench/missed_pages.py --home H [--queries ../shared/bench/real/data/queries.jsonl] [--bench B]

H: the set indexed (``tokensearch index .../scans/real_dev/png --home H``). Each positive query is searched
as a user would (k = 10); where none of its relevant pages is among the hits, those pages are scored exactly
(``Searcher.score_pages``) three ways: without the vocabulary check (the chain of cosines alone), with it,
and with it and the word-start/end checks (the engine's search). Printed: each missed query's best score on
its relevant pages at each step, and the count of misses by the step that first drops them under the
threshold (the phrase threshold for several words; "kept" = still at or above it, yet the page is not
returned: stage 1 or the answer rule). With ``--rivals``, for each query the vocabulary check drops: the best chain
on its relevant page, and per token its pooled cells' cosine with its own vector beside the vocabulary tokens they
read most like (what the check compares), each token by its lower-cased text (a leading "_": it starts a word).
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
    ap.add_argument(
        "--rivals", action="store_true", help="what the model reads where the vocabulary check drops a query"
    )
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
        if a.rivals and first_low == "vocabulary check":
            print_rivals(searcher, q["query"], sorted(rel))
    print(
        f"{missed} of {len(queries)} positive queries return no relevant page (thresholds {word_thr} / "
        f"{phrase_thr}); under the threshold first at: " + ", ".join(f"{n} {lost[n]}" for n in [*steps, "kept"])
    )
    eng.close()


def print_rivals(searcher, query: str, pages: list[int]) -> None:
    """The best chain of ``query``'s spellings on each of ``pages`` (chain cosines alone), and per token what its
    pooled cells read: the cosine with the token itself and the 3 vocabulary tokens read best there."""
    import numpy as np

    from tokensearch.search.localize import Frame, dense_maps, locate
    from tokensearch.search.verify import cell_rows, pooled_tokens

    classes = searcher.opt.token_classes
    texts = [("_" if start else "") + body for start, body in zip(classes.starts_word, classes.bodies)]
    plan = searcher.plan(query, 256)
    for pid, (pf, _, sims) in searcher._pages(plan, pages, {}).items():
        frame = Frame.of_text(pf.grid_h, pf.grid_w, pf.ys, pf.xs)
        best = None
        for sp in plan.spellings:
            if sp.split:
                continue
            maps = dense_maps(frame, pf.ys, pf.xs, sims[:, sp.rows])
            for occ in locate(maps, sp.lens, 0.5, 1, frame):
                if best is None or occ.score > best[1].score:
                    best = (sp, occ, maps)
        if best is None:
            continue
        sp, occ, maps = best
        pooled = pooled_tokens(occ, maps, cell_rows(frame.h, frame.w, pf.ys - frame.y0, pf.xs - frame.x0), pf.feats)
        print(f"    page {pid}: {sp.text!r} chain {occ.score:.3f}")
        for j, row in enumerate(sp.rows):
            cos = searcher.opt.competitors @ pooled[j]
            top = np.argsort(-cos)[:3]
            own = float(pooled[j] @ plan.vectors[row])
            read = ", ".join(f"{texts[t]!r} {cos[t]:.3f}" for t in top)
            print(f"      {texts[sp.ids[j]]!r:14s} pooled {own:.3f}, read best as {read}")


if __name__ == "__main__":
    main()
