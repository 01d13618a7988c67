"""Stage-1 recall: where the relevant page stands in stage 1's page order, for two page estimates.

    python3 bench/stage1_recall.py --home H [--bench ../shared/bench]

H: the dev benchmark's pages indexed with `tokensearch index .../png --home H` (mini model, no merging of
cells). Two estimates of how well a page holds a unit (a word or a phrase), both from the FAISS top-4096
cells of each query token:
- bag (the engine's before, still its fallback without cell positions): the mean over the unit's tokens
  of each token's best retrieved cell anywhere on the page;
- coloc (what the engine does since 2026-11-24 20:30 UTC, ``localize.chain_estimate``): the best chain
  of retrieved cells, token j right of token j-1 within the step window and at most one row apart, a
  token without a cell there counting its row's 4096th score.
Pages are ordered as the engine orders them (units present, then the sum of the unit estimates). Printed:
the share of positive queries, by type, whose relevant page is within the first 32 / 64.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

K = 4096  # cells per query token, as the engine asks (SearchOptions.cells_per_token)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--bench", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "bench")
    a = ap.parse_args()
    sys.path.insert(0, str(a.bench))
    from adapters.common import parse_page_name

    from tokensearch.engine import Engine
    from tokensearch.search.localize import chain_estimate
    from tokensearch.settings import Settings
    from tokensearch.storage.vectors import CELL_BITS

    eng = Engine(Settings(home=a.home, model="mini"))
    searcher, store = eng.searcher(), eng.store
    infos = store.pages(list(range(1, 100_000)))
    pids = sorted(infos)
    col = {p: i for i, p in enumerate(pids)}
    name = {p: parse_page_name(i.path) for p, i in infos.items()}
    index = store.vectors.current().index

    def retrieved(plan):
        uniq, inverse = np.unique(plan.vectors, axis=0, return_inverse=True)
        scores, ids = index.search(np.ascontiguousarray(uniq, dtype=np.float32), K)
        return [(scores[r], ids[r] >> CELL_BITS) for r in inverse.reshape(-1)]

    def bag(plan):
        best = np.zeros((len(plan.vectors), len(pids)), np.float32)
        for row, (sc, pg) in enumerate(retrieved(plan)):
            np.maximum.at(best[row], [col[p] for p in pg.tolist()], sc)
        out = np.zeros((len(plan.units), len(pids)), np.float32)
        for sp in plan.spellings:
            np.maximum(out[sp.unit], best[sp.rows].mean(axis=0), out=out[sp.unit])
        return out

    def coloc(plan):
        found = store.search_cells_at(plan.vectors, K)
        out = np.zeros((len(plan.units), len(pids)), np.float32)
        for sp in plan.spellings:
            est = chain_estimate([found[r] for r in sp.rows], sp.lens, np.array(pids))
            np.maximum(out[sp.unit], est, out=out[sp.unit])
        return out

    queries = [json.loads(line) for line in open(a.bench / "data" / "queries.jsonl")]
    thr = searcher.opt.threshold
    for label, estimate in (("bag", bag), ("coloc", coloc)):
        rank = defaultdict(list)
        for q in queries:
            if q["type"].startswith("neg"):
                continue
            rel = {(r["doc"], r["page"]) for r in q["relevant"]}
            plan = searcher.plan(q["query"], 256)
            u = estimate(plan)[: plan.n_query_units]
            present = u >= 0.8 * thr
            order = np.lexsort((np.array(pids), -np.where(present, u, 0).sum(axis=0), -present.sum(axis=0)))
            at = [i for i, o in enumerate(order) if name[pids[o]] in rel]
            rank[q["type"]].append(at[0] if at else len(pids))
        print(
            label,
            "relevant page within the first 32 / 64:",
            {
                t: (round(float(np.mean(np.array(v) < 32)), 3), round(float(np.mean(np.array(v) < 64)), 3))
                for t, v in rank.items()
            },
        )
    eng.close()


if __name__ == "__main__":
    main()
