"""Filing rules of token postings compared on one big index: postings a cell, stage 1's candidates, R@1.

    python3 bench/postings_filing.py --home W/big [--bench ../shared/bench] \
        --rules '{"best": 2}' '{"best": 3, "margin": 0.1, "peaks": true}' ...

W/big: the index ``bench/scale.py --work W`` builds (the dev sets' scans among distractor pages). Each page's
best ``--top`` vocabulary tokens are read once from the feature store (two processes); each rule
(``postings.select_postings``: ``best``, ``margin``, ``peaks``, ``penalty``) then files them into postings in
memory, which the index's searcher reads in place of its own. Per rule: postings a cell, the positive dev queries whose
relevant page (either rendition) is among stage 1's candidates, one JSON line each; then each set's R@1 / Loc@1 /
FP / latency on the big index (``bench/scale.py``'s ``evaluate``) under every rule, or with ``--eval-best`` under
the first and the one whose stage 1 finds most, a JSON line each again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
_worker: dict = {}


def _open(home: Path, top: int) -> None:
    from tokensearch.engine import Engine
    from tokensearch.settings import Settings

    eng = Engine(Settings(home=home))
    keeper = eng.store.vectors
    _worker.update(eng=eng, keeper=keeper, vocab=keeper.current().vocab, top=top)


def _best(rows: list[tuple]) -> list[tuple]:
    """Each page's kept cells' best tokens and cosines, as the index files them (``keeper._add_pages``)."""
    from tokensearch.storage.postings import best_tokens
    from tokensearch.storage.vectors import index_cells

    keeper = _worker["keeper"]
    merge_cos = keeper._known_codec().merge_cos
    out = []
    for row in rows:
        pf = keeper.read_page(*row)
        kept = index_cells(pf, merge_cos)
        ids, sc = best_tokens(pf.feats[kept], _worker["vocab"], _worker["top"])
        cells = np.stack([pf.ys[kept], pf.xs[kept]], 1).astype(np.int16)
        out.append((row[0], ids.astype(np.int16), sc.astype(np.float16), cells))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench")
    ap.add_argument("--rules", nargs="+", required=True, help="filing rules as JSON objects")
    ap.add_argument("--sets", nargs="+", default=["clean_150", "degraded_150"])
    ap.add_argument("--stage1-only", action="store_true", help="stage 1's candidates only, not the sets' R@1")
    ap.add_argument(
        "--eval-best", action="store_true", help="the sets' R@1 under the first rule and stage 1's best one only"
    )
    a = ap.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(a.bench)]
    from scale import evaluate
    from sqlalchemy import select
    from stage1_scale import dev_pages, positive_queries

    from tokensearch.engine import Engine
    from tokensearch.settings import Settings
    from tokensearch.storage.postings import PostingsIndex, select_postings
    from tokensearch.storage.schema import Page

    rules = [json.loads(r) for r in a.rules]
    top = max(int(r["best"]) for r in rules)
    eng = Engine(Settings(home=a.home))
    keeper = eng.store.vectors
    own = keeper.current()
    if not isinstance(own, PostingsIndex):
        sys.exit("the home's index is not token postings")
    with keeper._session() as s:
        rows = [tuple(r) for r in s.execute(select(Page.id, Page.segment, Page.offset, Page.nbytes)).all()]
    t = time.perf_counter()
    pages: dict[int, tuple] = {}
    with Pool(2, initializer=_open, initargs=(a.home, top)) as pool:
        for part in pool.imap_unordered(_best, [rows[i : i + 200] for i in range(0, len(rows), 200)]):
            pages.update((p[0], p[1:]) for p in part)
    print(f"best {top} tokens of {len(pages)} pages' cells in {time.perf_counter() - t:.0f} s", flush=True)
    _, where = dev_pages(eng.store)
    positives = positive_queries(a.bench, where)

    def install(rule: dict) -> PostingsIndex:
        """``rule``'s postings, in place of the home's own in its searcher."""
        vi = PostingsIndex.empty(own.dim, {"type": "postings", **rule}, own.vocab)
        for pid, (ids, sc, cells) in pages.items():
            vi.fresh[pid] = select_postings(ids.astype(np.int32), sc.astype(np.float32), cells, rule)
            vi.page_cells[pid], vi.page_postings[pid] = len(ids), len(vi.fresh[pid][0])
        vi.compact()
        vi.generation, vi.spec = own.generation, own.spec  # read as the home's own index: no rebuild
        keeper._vi = vi
        return vi

    def sets_r1(i: int) -> None:
        """The sets' queries on the big index under rule ``i`` (installed), into its report."""
        for s in a.sets:
            r = evaluate(eng, a.bench, s)
            reports[i][s] = {k: r[k] for k in ("R@1", "Loc@1", "FP_any", "lat_p50_ms", "lat_p95_ms")}

    reports: list[dict] = []
    for i, rule in enumerate(rules):
        vi = install(rule)
        searcher = eng.searcher()
        found = sum(bool(rel & set(searcher._candidates(searcher.plan(q["query"], 256), 30))) for q, rel in positives)
        reports.append(
            {
                "rule": rule,
                "postings_a_cell": round(len(vi.base) / max(1, sum(vi.page_cells.values())), 3),
                "stage1_found": found,
                "positives": len(positives),
            }
        )
        if not (a.stage1_only or a.eval_best):  # every rule's sets while its postings are in place
            sets_r1(i)
        print(json.dumps(reports[-1]), flush=True)
    if a.eval_best and not a.stage1_only:  # the first rule and the one stage 1 finds most with
        best = max(range(len(rules)), key=lambda i: reports[i]["stage1_found"])
        installed = len(rules) - 1  # the loop's last rule is in place
        for i in sorted({0, best}, key=lambda i: i != installed):  # the one in place first: filed once less
            if i != installed:
                install(rules[i])
                installed = i
            sets_r1(i)
            print(json.dumps(reports[i]), flush=True)
    eng.close()


if __name__ == "__main__":
    main()
