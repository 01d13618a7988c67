"""Stage 1 from postings instead of top cells, on a big index: does a page holding the query stay a candidate?

    python3 bench/postings_stage1.py --home W/big [--best 2] [--bench ../shared/bench]

W/big: the index ``bench/scale.py --work W`` builds. Every stored cell of every page is read once and keeps
its ``--best`` vocabulary tokens (the verification's competitors: each token's vector in index space) with
their cosines: the postings a token-level inverted index would store. A query token's cells are then all
cells that list it, on every page, however many pages hold it, where the vector index returns a token's
top cells only, which a common piece fills with the pages that hold it most. Pages are ordered from those
cells as the engine orders them (``localize.chain_estimate``, units present, then their sum; a token
absent from a page counts ``--fill``), and the share of positive dev queries whose relevant page is among
the first 32 is printed beside the engine's own stage 1 and the two orders taken in turn, with the postings'
size.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--best", type=int, default=2, help="tokens kept a cell")
    ap.add_argument("--fill", type=float, default=0.5, help="score of a token a page has no posting of")
    ap.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench")
    a = ap.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(a.bench)]
    from stage1_scale import dev_pages, positive_queries

    from tokensearch.engine import Engine
    from tokensearch.search.localize import chain_estimate
    from tokensearch.settings import Settings

    eng = Engine(Settings(home=a.home))
    searcher = eng.searcher()
    store, vocab = searcher.store, searcher.opt.competitors
    assert vocab is not None, "the model's vocabulary (verification) is needed"
    page_ids, where = dev_pages(store)

    # the postings: (token, page, row, column, cosine) of each cell's best tokens
    t0 = time.perf_counter()
    tok, pg, ys, xs, sc = [], [], [], [], []
    for i in range(0, len(page_ids), 50):
        for pid, pf in store.page_features(page_ids[i : i + 50]).items():
            s = pf.rows @ vocab.T  # (m, V): palette rows or cells
            top = np.argpartition(-s, a.best, axis=1)[:, : a.best]
            top_s = np.take_along_axis(s, top, axis=1)
            if pf.index is not None:
                top, top_s = top[pf.index], top_s[pf.index]
            n = len(pf.ys)
            tok.append(top.reshape(-1).astype(np.int32))
            sc.append(top_s.reshape(-1).astype(np.float32))
            pg.append(np.full(n * a.best, pid, np.int64))
            ys.append(np.repeat(pf.ys, a.best).astype(np.int16))
            xs.append(np.repeat(pf.xs, a.best).astype(np.int16))
    tok_a, pg_a, ys_a, xs_a, sc_a = (np.concatenate(x) for x in (tok, pg, ys, xs, sc))
    order = np.argsort(tok_a, kind="stable")
    tok_a, pg_a, ys_a, xs_a, sc_a = tok_a[order], pg_a[order], ys_a[order], xs_a[order], sc_a[order]
    starts = np.searchsorted(tok_a, np.arange(len(vocab) + 1))
    print(
        f"{len(page_ids)} pages, {len(tok_a):,} postings ({len(tok_a) / len(page_ids):,.0f} a page, "
        f"~{len(tok_a) * 6 / len(page_ids) / 1024:.0f} KiB a page at 6 B each), "
        f"built in {time.perf_counter() - t0:.0f} s"
    )

    def posting(t: int):
        s, e = starts[t], starts[t + 1]
        return pg_a[s:e], sc_a[s:e], np.stack([ys_a[s:e], xs_a[s:e]], axis=1).astype(np.int64)

    queries = positive_queries(a.bench, where)
    thr, phrase = searcher._thresholds(False)
    found = {"postings": 0, "engine": 0, "both": 0}
    lat = []
    for q, rel in queries:
        plan = searcher.plan(q["query"], 256)
        cand = searcher._candidates(plan, 30)
        found["engine"] += bool(rel & set(cand))
        t = time.perf_counter()
        rows = {}
        for sp in plan.spellings:
            for r, tid in zip(sp.rows, sp.ids):
                if r not in rows:
                    p, s, c = posting(int(tid))
                    # a page without the token: counted at the fill, as the engine counts a cell not retrieved
                    rows[r] = (p, np.where(s > a.fill, s, a.fill).astype(np.float32), c)
        pages = np.unique(np.concatenate([rows[r][0] for r in rows])) if rows else np.zeros(0, np.int64)
        units = np.zeros((plan.n_query_units, len(pages)), np.float32)
        for sp in plan.spellings:
            if sp.unit < plan.n_query_units and len(pages):
                est = chain_estimate([rows[r] for r in sp.rows], sp.lens, pages)
                np.maximum(units[sp.unit], est, out=units[sp.unit])
        unit_thr = np.array([phrase if searcher._several(plan, u) else thr for u in range(plan.n_query_units)])
        present = units >= 0.8 * unit_thr[:, None]
        order = np.lexsort((pages, -np.where(present, units, 0).sum(axis=0), -present.sum(axis=0)))
        lat.append(time.perf_counter() - t)
        by_postings = pages[order[:32]].tolist()
        found["postings"] += bool(rel & set(by_postings))
        both: list[int] = []  # the two orders taken in turn, 32 distinct pages
        for i in range(max(len(by_postings), len(cand))):
            for lst in (by_postings, cand):
                if i < len(lst) and lst[i] not in both:
                    both.append(lst[i])
        found["both"] += bool(rel & set(both[:32]))
    print(
        f"relevant page among the first 32 candidates, of {len(queries)}: engine (top cells) {found['engine']}, "
        f"postings of each cell's best {a.best} {found['postings']} (ranking from postings: median "
        f"{1000 * float(np.median(lat)):.0f} ms, p95 {1000 * float(np.percentile(lat, 95)):.0f} ms), "
        f"the two orders in turn {found['both']}"
    )
    eng.close()


if __name__ == "__main__":
    main()
