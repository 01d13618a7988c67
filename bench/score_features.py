"""Dump what the searcher knows about each candidate occurrence, to compare occurrence scores offline.

For every query of a dev-benchmark set, stage 1's candidate pages are scored the way stage 2 does
(``Searcher.score_pages``' chaining), at a low floor and without verification, and for the best few
occurrences of every unit spelling on every page the features a score could use are written out:
the chain's mean cosine, each token's chain-cell cosine, each token's pooled cosine with its own
vector and with the best other vocabulary token (verification's margin), the word-end/-start checks.
``bench/score_replay.py`` ranks pages from this dump under a chosen occurrence score and threshold and
scores them with the harness, so score rules are compared on the same pages without re-searching.

    python3 bench/score_features.py --bench ../shared/bench --set clean_150 --home /tmp/h_c150 --out F.pkl
"""

from __future__ import annotations

import argparse
import json
import pickle
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench")
    ap.add_argument("--set", default="clean_150")
    ap.add_argument("--model", default="mini")
    ap.add_argument("--home", type=Path, required=True, help="index directory (reused when present)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--floor", type=float, default=0.45)
    ap.add_argument("--pages", type=int, default=24, help="candidate pages scored per query")
    ap.add_argument("--occurrences", type=int, default=4, help="occurrences kept per spelling and page")
    a = ap.parse_args()

    bench = a.bench.resolve()
    sys.path[:0] = [str(ROOT), str(bench)]
    import run_eval
    from threadpoolctl import threadpool_limits

    from tokensearch.engine import Engine
    from tokensearch.search.localize import Frame, dense_maps, locate
    from tokensearch.search.verify import _excluded, cell_rows, pooled_tokens, word_continues
    from tokensearch.settings import Settings

    data = Path(run_eval.EXTERNAL_SETS.get(a.set, bench / "data"))
    queries = run_eval.load_jsonl(data / "queries.jsonl")
    engine = Engine(Settings(home=a.home, model=a.model, threshold=a.floor))
    if engine.store.stats().pages == 0:
        folder, tmp = run_eval.prepare_input(a.set, "png", None, str(data))
        try:
            engine.index(Path(folder))
            engine.store.persist()
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
    searcher = engine.searcher()
    comp, classes = searcher.opt.competitors, searcher.opt.token_classes
    assert comp is not None and classes is not None
    out = []
    t0 = time.time()
    with threadpool_limits(limits=1, user_api="blas"):
        for qi, q in enumerate(queries):
            plan = searcher.plan(q["query"], engine.settings.max_query_chars)
            rec = {
                "id": q["id"],
                "type": q["type"],
                "query": q["query"],
                "units": [(u.text, u.phrase) for u in plan.units],
                "nq": plan.n_query_units,
                "pages": [],
            }
            if plan.vectors is None:
                out.append(rec)
                continue
            cand = searcher._candidates(plan, a.pages)
            cache: dict = {}
            pages = searcher._pages(plan, cand, cache)
            for rank, pid in enumerate(cand):
                if pid not in pages:
                    continue
                pf, info, sims = pages[pid]
                frame = Frame.of_text(pf.grid_h, pf.grid_w, pf.ys, pf.xs)
                rows = cell_rows(frame.h, frame.w, pf.ys - frame.y0, pf.xs - frame.x0)
                occ_recs = []
                for sp in plan.spellings:
                    maps = dense_maps(frame, pf.ys, pf.xs, sims[:, sp.rows])
                    occs = locate(maps, sp.lens, a.floor, a.occurrences, frame)
                    if not occs:
                        continue
                    own = plan.vectors[sp.rows]
                    ids = np.asarray(sp.ids)
                    words = plan.units[sp.unit].text.split()
                    ends = word_continues(occs, rows, pf.feats, comp, classes, words[-1], "end")
                    starts = word_continues(occs, rows, pf.feats, comp, classes, words[0], "start")
                    for o, e, s in zip(occs, ends, starts):
                        pooled = pooled_tokens(o, maps, rows, pf.feats)
                        vs = pooled @ comp.T  # (T, V)
                        mine = np.einsum("td,td->t", pooled, own)
                        # as the searcher: the other cuts of the query's letters do not compete either
                        vs[_excluded(sp.alike or ids)] = -np.inf
                        other = vs.max(axis=1)
                        rank_own = (vs > mine[:, None]).sum(axis=1)
                        cell = np.array([maps[j, cy, cx] for j, (cy, cx) in enumerate(o.cells)], np.float32)
                        occ_recs.append(
                            {
                                "unit": sp.unit,
                                "text": sp.text,
                                "lens": sp.lens,
                                "chain": o.score,
                                "cell": cell,
                                "own": mine.astype(np.float32),
                                "other": other.astype(np.float32),
                                "rank": rank_own.astype(np.int32),
                                "end": bool(e),
                                "start": bool(s),
                                "box": o.box,
                            }
                        )
                rec["pages"].append(
                    {"page_id": pid, "path": info.path, "page": info.page_no, "rank": rank, "occ": occ_recs}
                )
            out.append(rec)
            if qi % 20 == 0:
                print(f"{qi}/{len(queries)} {time.time() - t0:.0f}s", flush=True)
    a.out.write_bytes(pickle.dumps({"set": a.set, "floor": a.floor, "queries": out}))
    print(json.dumps({"queries": len(out), "seconds": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
