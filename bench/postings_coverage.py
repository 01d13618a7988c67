"""Do token postings list a page under the query's tokens where the page prints the query?

    python3 bench/postings_coverage.py --home H [--best 2 3 4] [--bench B]

H: a home of one dev set (e.g. ``bench/scale.py``'s ``own-clean_150``), searched as the engine does. For each
positive dev query answered first by a relevant page, the cells inside the first box of that hit are filed as
postings would file them (``postings.best_tokens``: each cell under its ``--best`` vocabulary tokens, raw
cosine), and the query counts as covered when every token of one of its spellings (not the glued ones, which
stage 1 does not search) is filed at some cell there. A token that is not filed at the page's occurrence leaves
the page out of that token's list however many cells stage 1 reads: in a big index the chain estimate then
counts it as missing there. Printed: the share covered at each ``--best``, and the queries not covered at the
first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--best", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench")
    a = ap.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(a.bench)]
    from stage1_scale import dev_pages, positive_queries

    from tokensearch.engine import Engine
    from tokensearch.settings import Settings
    from tokensearch.storage.postings import best_tokens

    with Engine(Settings(home=a.home)) as eng:
        competitors = eng._competitors()
        if competitors is None:
            sys.exit("the home's model offers no vocabulary: its index has no postings")
        vocab = competitors[0]
        searcher = eng.searcher()
        _, where = dev_pages(eng.store)
        covered: dict[int, list[str | None]] = {b: [] for b in a.best}
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
            spellings = [sp.ids for sp in searcher.plan(q["query"], 256).spellings if not sp.glued]
            for b in a.best:
                filed = set(best_tokens(pf.feats[inside], vocab, b)[0].reshape(-1).tolist())
                ok = any(all(t in filed for t in ids) for ids in spellings)
                covered[b].append(None if ok else q["query"])
        for b in a.best:
            n = len(covered[b])
            share = sum(x is None for x in covered[b]) / max(1, n)
            print(f"best {b}: every token of a spelling filed at the hit for {share:.3f} of {n} answered queries")
        print(f"not covered at best {a.best[0]}:", sorted(x for x in covered[a.best[0]] if x is not None))


if __name__ == "__main__":
    main()
