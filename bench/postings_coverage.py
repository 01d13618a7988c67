"""Do token postings list a page under the query's tokens where the page prints the query?

    python3 bench/postings_coverage.py --home H [--best 2 3 4] [--bench B]

H: a home of one dev set (e.g. ``bench/scale.py``'s ``own-clean_150``), searched as the engine does. For each
positive dev query answered first by a relevant page, the cells inside the first box of that hit are filed as
postings would file them (``postings.best_tokens``: each cell under its ``--best`` vocabulary tokens, raw
cosine), and the query counts as covered when every token of one of its spellings (not the glued ones, which
stage 1 does not search) is filed at some cell there. A token that is not filed at the page's occurrence leaves
the page out of that token's list however many cells stage 1 reads: in a big index the chain estimate then
counts it as missing there. Printed: the share covered at each ``--best``, and the queries not covered at the
first. ``--rule '{"best": 3, "margin": 0.1, "peaks": true}'``: the cells filed by that rule (``postings.file_cells``,
the shipped one) instead, and the share where some cut of a query word's letters (with its leading space) into
vocabulary tokens is filed there: what a stage 1 that asked for other cuts could find.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--best", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench")
    ap.add_argument("--rule", help="a filing rule as JSON (postings.file_cells' spec); then cuts of the letters too")
    a = ap.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(a.bench)]
    from stage1_scale import dev_pages, positive_queries

    from tokensearch.engine import Engine
    from tokensearch.search.query import case_variants
    from tokensearch.settings import Settings
    from tokensearch.storage.postings import best_tokens, file_cells

    with Engine(Settings(home=a.home)) as eng:
        competitors = eng._competitors()
        if competitors is None:
            sys.exit("the home's model offers no vocabulary: its index has no postings")
        vocab = competitors[0]
        searcher = eng.searcher()
        _, where = dev_pages(eng.store)
        covered: dict[int, list[str | None]] = {b: [] for b in a.best}
        texts = eng.query_encoder.vocabulary_texts() if a.rule else []
        by_text: dict[str, set[int]] = {}
        for i, t in enumerate(texts):
            by_text.setdefault(t, set()).add(i)
        ruled: list[tuple[str, bool, list[str] | None]] = []
        for q, rel in positive_queries(a.bench, where):
            hits = eng.search(q["query"], k=1).hits
            if not hits or hits[0].page_id not in rel:
                continue
            pf = eng.store.page_features([hits[0].page_id])[hits[0].page_id]
            x0, y0, x1, y1 = hits[0].boxes[0]
            cy, cx = (pf.ys + 0.5) / pf.grid_h, (pf.xs + 0.5) / pf.grid_w
            inside = (cx >= x0) & (cx <= x1) & (cy >= y0) & (cy <= y1)
            if not inside.any():
                continue
            spellings = [sp.ids for sp in searcher.plan(q["query"], 256).spellings if not (sp.glued or sp.split)]
            for b in a.best:
                filed = set(best_tokens(pf.feats[inside], vocab, b)[0].reshape(-1).tolist())
                ok = any(all(t in filed for t in ids) for ids in spellings)
                covered[b].append(None if ok else q["query"])
            if a.rule:
                cells = np.stack([pf.ys[inside], pf.xs[inside]], axis=1)
                filed = set(file_cells(pf.feats[inside], cells, vocab, json.loads(a.rule))[0].tolist())
                ok = any(all(t in filed for t in ids) for ids in spellings)
                cut = (
                    None
                    if ok
                    else next(
                        (c for v in case_variants(q["query"]) if (c := _filed_cut(v, filed, by_text)) is not None), None
                    )
                )
                ruled.append((q["query"], ok, cut))
        for b in a.best:
            n = len(covered[b])
            share = sum(x is None for x in covered[b]) / max(1, n)
            print(f"best {b}: every token of a spelling filed at the hit for {share:.3f} of {n} answered queries")
        print(f"not covered at best {a.best[0]}:", sorted(x for x in covered[a.best[0]] if x is not None))
        if ruled:
            n = len(ruled)
            own = sum(ok for _, ok, _ in ruled) / n
            some = sum(ok or cut is not None for _, ok, cut in ruled) / n
            print(f"rule {a.rule}: a query cut filed for {own:.3f} of {n}, some cut of the letters for {some:.3f}")
            print("not covered by a query cut (the cut filed there):", [(q, cut) for q, ok, cut in ruled if not ok])


def _filed_cut(word: str, filed: set[int], by_text: dict[str, set[int]]) -> list[str] | None:
    """The fewest pieces of ``word`` (a leading space where it starts with a letter or digit: the query rule) that
    are vocabulary tokens filed among ``filed``, or None; one word only."""
    if " " in word.strip():
        return None
    s = (" " + word) if word[:1].isalnum() else word
    best: list[list[str] | None] = [None] * (len(s) + 1)
    best[0] = []
    for i in range(len(s)):
        here = best[i]
        if here is None:
            continue
        for j in range(i + 1, min(len(s), i + 16) + 1):
            there = best[j]
            if by_text.get(s[i:j], set()) & filed and (there is None or len(there) > len(here) + 1):
                best[j] = here + [s[i:j]]
    return best[-1]


if __name__ == "__main__":
    main()
