"""Why the dev queries miss in a big index: stage 1's candidates, or stage 2's ranking.

    python3 bench/stage1_scale.py --home W/big [--cells 4096 8192 16384] [--bench ../shared/bench]

W/big: the index ``bench/scale.py --work W`` builds (the dev sets' scans among distractor pages). For each
number of top cells a query token asks of the vector index (``--cells``, and the engine's own rule, which grows
it with the index: ``SearchOptions.crowd_pages``, or asks token postings for ``listed_cells_per_token``), the
positive dev queries whose relevant page (either rendition) is among stage 1's candidate pages. Then each query
the engine answers wrongly is put in one class: stage 2 would rank the relevant page above the engine's first
page had stage 1 offered it (a stage-1 miss); stage 2 prefers the page it answered (a distractor or another dev
page); stage 2 answers none of the relevant pages. ``--within N``: stage 1 asked again among its own first N
pages only, as a small index would be (does crowding or the estimate's order lose the page?). ``--list``: the
queries whose relevant page is not among the candidates at the engine's rule, and nothing else. ``--depths N ...``:
at the engine's rule, the queries whose relevant page is among stage 1's first N pages (how many candidates stage 2
would have to score to be offered it), and nothing else.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def dev_pages(store) -> tuple[list[int], dict[int, tuple[str, int]]]:
    """Every page id of the index (sorted), and the (document, page) of each dev page (not the distractors)."""
    from adapters.common import parse_page_name

    ids, where = [], {}
    for d in store.documents(limit=store.stats().documents):
        for p in store.document_pages(d.id):
            ids.append(p.page_id)
            if not p.path.startswith("/distractors/"):
                doc, page = parse_page_name(p.path)
                where[p.page_id] = (doc, page or p.page_no)
    return sorted(ids), where


def positive_queries(
    bench: Path, where: dict[int, tuple[str, int]], queries: Path | None = None
) -> list[tuple[dict, set[int]]]:
    """The dev queries (``queries``: another set's file, e.g. real/data/queries.jsonl) with a relevant page, each
    with the ids of its relevant pages (either rendition)."""
    out = []
    for line in open(queries or bench / "data" / "queries.jsonl"):
        q = json.loads(line)
        if q.get("relevant"):
            want = {(r["doc"], r["page"]) for r in q["relevant"]}
            out.append((q, {pid for pid, key in where.items() if key in want}))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--cells", type=int, nargs="*", default=[4096, 8192, 16384])
    ap.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench")
    ap.add_argument(
        "--within",
        type=int,
        nargs="*",
        default=[256],
        help="also stage 1 again among the engine's first N pages only (as in an index of N pages: no crowding)",
    )
    ap.add_argument(
        "--list", action="store_true", help="only list the queries stage 1 misses at the engine's rule, then stop"
    )
    ap.add_argument(
        "--depths",
        type=int,
        nargs="*",
        help="only count, at the engine's rule, the queries whose relevant page is among stage 1's first N pages "
        "for each N (the candidates stage 2 would need to be offered it), then stop",
    )
    a = ap.parse_args()
    sys.path[:0] = [str(ROOT), str(a.bench)]
    from tokensearch.engine import Engine
    from tokensearch.settings import Settings

    eng = Engine(Settings(home=a.home))
    searcher = eng.searcher()
    store = searcher.store
    _, where = dev_pages(store)
    positives = positive_queries(a.bench, where)
    queries = [q for q, _ in positives]
    rel = {q["id"]: pages for q, pages in positives}
    base = searcher.opt
    if a.depths:
        # stage 1 ranked to the deepest N in one pass: its chaining stops only where the pages left cannot be
        # among the first N, so the first M < N of that ranking are the first M of asking for M
        deepest = max(a.depths)
        searcher.opt = replace(base, min_candidate_pages=deepest, max_candidate_pages=deepest)
        ranks = []
        for q in queries:
            found = searcher._candidates(searcher.plan(q["query"], 256), deepest)
            ranks.append(next((i for i, p in enumerate(found) if p in rel[q["id"]]), None))
        print(f"{len(queries)} positive queries, {store.stats().pages} pages; relevant page among stage 1's first N:")
        for n in sorted(a.depths):
            print(f"  N = {n}: {sum(r is not None and r < n for r in ranks)}")
        eng.close()
        return
    print(f"{len(queries)} positive queries, {store.stats().pages} pages; relevant page among stage 1's candidates:")
    for cells in [*a.cells, None]:
        fixed = {"cells_per_token": cells, "crowd_pages": sys.maxsize, "listed_cells_per_token": cells}
        searcher.opt = base if cells is None else replace(base, **fixed)
        missed = [
            q["query"]
            for q in queries
            if not rel[q["id"]] & set(searcher._candidates(searcher.plan(q["query"], 256), 30))
        ]
        label = f"{cells} cells a token" if cells else f"the engine's rule ({searcher._cells_per_token(None)})"
        print(f"  {label}: {len(queries) - len(missed)}")
    if a.list:
        print("  not among the candidates at the engine's rule:", sorted(missed))
        eng.close()
        return
    searcher.opt = base
    every = replace(base, min_candidate_pages=sys.maxsize, max_candidate_pages=sys.maxsize)
    for n in a.within:
        found = 0
        for q in queries:
            plan = searcher.plan(q["query"], 256)
            searcher.opt = every
            first = np.array(sorted(searcher._candidates(plan, 30)[:n]), dtype=np.int64)
            searcher.opt = base
            found += bool(rel[q["id"]] & set(searcher._candidates(plan, 30, first) if len(first) else []))
        print(f"  stage 1 again among its first {n} pages: {found}")

    def rank_key(per_unit, nq: int) -> tuple:
        own, joint = per_unit[:nq], [o for occ in per_unit[nq:] for o in occ]
        return (sum(bool(o) for o in own), bool(joint), sum(o[0].score if o else 0.0 for o in own) / nq)

    classes: Counter = Counter()
    for q in queries:
        hits = eng.search(q["query"], k=10).hits
        if hits and hits[0].page_id in rel[q["id"]]:
            classes["answered first"] += 1
            continue
        plan = searcher.plan(q["query"], 256)
        top = [hits[0].page_id] if hits else []
        scored = searcher.score_pages(plan, sorted(rel[q["id"]]) + top)
        nq = plan.n_query_units
        best = max((rank_key(scored[p], nq) for p in rel[q["id"]] if p in scored), default=(0, False, 0.0))
        first = rank_key(scored[top[0]], nq) if top and top[0] in scored else (0, False, 0.0)
        if best[0] == 0:
            classes["missed: stage 2 answers no relevant page"] += 1
        elif best > first:
            classes["missed: stage 2 would rank the relevant page first (stage 1)"] += 1
        else:
            kind = "a distractor" if top and top[0] not in where else "another dev page"
            classes[f"missed: stage 2 prefers {kind}"] += 1
    for label, n in classes.most_common():
        print(f"  {label}: {n}")
    eng.close()


if __name__ == "__main__":
    main()
