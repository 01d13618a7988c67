"""In-process latency of filtered searches beside the unfiltered ones, on one index.

    python3 bench/filter_latency.py --home H [--folder DIR] [--queries Q.jsonl] [--limit N] [--k 10]
    python3 bench/filter_latency.py --synthetic-ivf [--pages 4400]
    python3 bench/filter_latency.py --synthetic-catalog [--pages 100000]

``--synthetic-catalog``: resolving filters alone (``Store.filter_pages``) on a SQLite catalogue of ``--pages``
one-page documents under one root (1 % of them in ``invoices/``, a third images, one mtime every 5 minutes).

``--synthetic-ivf``: stage 1 alone on an IVF index of the size where the store leaves the flat one
(``--pages`` x 500 clustered random vectors, d 96, 2.2M by default): the top 4096 vectors of 8 query rows
unfiltered and among 1 % / 10 % of the pages, and the filtered searches' recall of the exact top 100
among those pages (every list probed).

Indexes ``--folder`` into ``--home`` first if the home is empty. Each query of ``--queries`` (the dev
benchmark's JSONL: a "query" field per line) runs without a filter and with each path filter of
``--filter NAME=GLOB`` (default: the dev benchmark's 137 image-only pages, ~1 %, ~10 % and ~36 % of them),
in turn, so machine noise falls on all of them. Prints a Markdown table: pages the filter lets through,
median and p90 latency of ``Engine.search``, the median cost of resolving the filter alone
(``Store.filter_pages``, inside the search), and the mean hits returned.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

from tokensearch.engine import Engine
from tokensearch.filters import SearchFilter
from tokensearch.settings import Settings

DEV_FILTERS = ["~1 %=eu*", "~10 %=[dv]*", "~36 %=[gm]*"]  # europass-cv; duck-invoice+vcd-shadings; glpk+groff+mom


def synthetic_ivf(n_pages: int, per_page: int = 500, d: int = 96, k: int = 4096) -> None:
    import faiss
    import numpy as np

    from tokensearch.storage.vectors import CELL_BITS, VectorIndex, choose_spec

    faiss.omp_set_num_threads(1)
    centers = np.random.default_rng(0).normal(size=(2000, d)).astype(np.float32)

    def page_vecs(p: int) -> np.ndarray:
        r = np.random.default_rng(p)
        v = centers[r.integers(0, len(centers), per_page)] + 0.5 * r.normal(size=(per_page, d)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    spec = choose_spec(n_pages * per_page, 2_000_000)
    vi = VectorIndex.empty(d, spec, train_sample=np.concatenate([page_vecs(p) for p in range(1, n_pages + 1, 19)]))
    for p in range(1, n_pages + 1):
        vi.add_page(p, page_vecs(p), np.zeros((per_page, 2), np.int64))
    q = centers[:8] / np.linalg.norm(centers[:8], axis=1, keepdims=True)
    ivf = faiss.extract_index_ivf(vi.index)
    print(f"{vi.ntotal} vectors, {spec}, nprobe {ivf.nprobe}, 8 query rows, k={k}\n")
    print("| pages allowed | median ms | recall of the exact top 100 |")
    print("|---|---:|---:|")
    for share in (None, 0.01, 0.10):
        pages = None if share is None else np.arange(1, n_pages + 1, round(1 / share), dtype=np.int64)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            found = vi.search(q, k, pages)
            times.append((time.perf_counter() - t0) * 1000)
        recall = "-"
        if pages is not None:
            ids = np.concatenate([(np.int64(p) << CELL_BITS) + np.arange(per_page, dtype=np.int64) for p in pages])
            sel = faiss.IDSelectorBatch(ids)
            scores, _ = vi.index.search(q, 100, params=faiss.SearchParametersIVF(sel=sel, nprobe=ivf.nlist))
            recall = f"{np.mean([np.isin(s, f[1][: len(f[1])]).mean() for s, f in zip(scores, found)]):.3f}"
        label = "all" if pages is None else f"{len(pages)} ({100 * share:.0f} %)"
        print(f"| {label} | {statistics.median(times):.0f} | {recall} |")


def synthetic_catalog(n: int) -> None:
    import tempfile

    from sqlalchemy import insert

    from tokensearch.storage import Store
    from tokensearch.storage.schema import Document, DocPath, IndexRun, Page

    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp)) as st:
        with st.engine.begin() as c:
            c.execute(insert(IndexRun), [{"root": "/data", "status": "ok", "stats": {}}])
            c.execute(
                insert(Document),
                [
                    {
                        "id": i,
                        "sha256": f"{i:064x}",
                        "kind": "pdf" if i % 3 else "image",
                        "status": "ok",
                        "n_pages": 1,
                        "size": 1,
                    }
                    for i in range(1, n + 1)
                ],
            )
            c.execute(
                insert(DocPath),
                [
                    {
                        "path": f"/data/{'invoices' if i % 100 == 0 else 'misc'}/{i // 1000}/f{i}.pdf",
                        "doc_id": i,
                        "size": 1,
                        "mtime_ns": (1_700_000_000 + i * 300) * 10**9,
                    }
                    for i in range(1, n + 1)
                ],
            )
            c.execute(
                insert(Page),
                [
                    {
                        "id": i,
                        "doc_id": i,
                        "page_no": 1,
                        "width": 1,
                        "height": 1,
                        "source": "vision",
                        "grid_h": 1,
                        "grid_w": 1,
                        "n_cells": 1,
                        "n_vectors": 1,
                        "segment": 0,
                        "offset": 0,
                        "nbytes": 1,
                        "generation": 1,
                    }
                    for i in range(1, n + 1)
                ],
            )
        last = 1_700_000_000 + n * 300
        cases = [
            ("--path 'invoices/**'", SearchFilter(path="invoices/**")),
            ("--path '/data/invoices/*'", SearchFilter(path="/data/invoices/*")),
            ("--path '*.png'", SearchFilter(path="*.png")),
            ("--type image", SearchFilter(type="image")),
            (
                "--modified-after (last 10 %)",
                SearchFilter.of(modified_after=datetime.fromtimestamp(last - n * 30, timezone.utc).isoformat()),
            ),
            ("--doc", SearchFilter(doc=n // 2)),
        ]
        print(f"{n} one-page documents (SQLite)\n")
        print("| filter | pages allowed | median ms |")
        print("|---|---:|---:|")
        for name, f in cases:
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                allowed = st.filter_pages(f)
                times.append((time.perf_counter() - t0) * 1000)
            print(f"| {name} | {len(allowed)} | {statistics.median(times):.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--synthetic-ivf", action="store_true", help="stage 1 alone on a synthetic IVF index")
    ap.add_argument("--synthetic-catalog", action="store_true", help="filter resolution on a synthetic catalogue")
    ap.add_argument("--pages", type=int, help="synthetic pages (IVF: 4400 of 500 vectors; catalogue: 100000)")
    ap.add_argument("--home", type=Path)
    ap.add_argument("--folder", type=Path, help="index this folder first if the home is empty")
    ap.add_argument("--queries", type=Path, default=Path("/work/bench-rw/data/queries.jsonl"))
    ap.add_argument("--limit", type=int, default=0, help="first N queries only (0: all)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--filter", action="append", metavar="NAME=GLOB", help="path filters (repeatable)")
    args = ap.parse_args()
    if args.synthetic_ivf:
        synthetic_ivf(args.pages or 4400)
        return
    if args.synthetic_catalog:
        synthetic_catalog(args.pages or 100_000)
        return
    if args.home is None:
        ap.error("--home is required (or --synthetic-ivf)")

    eng = Engine(Settings(home=args.home))
    if eng.store.stats().pages == 0:
        if args.folder is None:
            raise SystemExit(f"{args.home} is empty: pass --folder to index one")
        eng.index(args.folder)
    queries = [json.loads(line)["query"] for line in args.queries.read_text().splitlines() if line.strip()]
    queries = queries[: args.limit] if args.limit else queries
    cases: list[tuple[str, SearchFilter | None]] = [("none", None)]
    for spec in args.filter or DEV_FILTERS:
        name, glob = spec.split("=", 1)
        cases.append((f"{name} (`--path '{glob}'`)", SearchFilter(path=glob)))
    n_pages = eng.store.stats().pages
    allowed = {name: (len(eng.store.filter_pages(f)) if f else n_pages) for name, f in cases}
    eng.search(queries[0], k=args.k)  # load the index, the model's query side, the vocabulary check
    times: dict[str, list[float]] = {name: [] for name, _ in cases}
    hits: dict[str, list[int]] = {name: [] for name, _ in cases}
    resolve: dict[str, list[float]] = {name: [] for name, _ in cases}
    for q in queries:
        for name, f in cases:
            t0 = time.perf_counter()
            res = eng.search(q, k=args.k, filter=f)
            times[name].append((time.perf_counter() - t0) * 1000)
            hits[name].append(len(res.hits))
            if f is not None:
                t0 = time.perf_counter()
                eng.store.filter_pages(f)
                resolve[name].append((time.perf_counter() - t0) * 1000)
    print(f"{len(queries)} queries, k={args.k}, {n_pages} pages\n")
    print("| filter | pages allowed | median ms | p90 ms | filter resolution ms (median) | mean hits |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, _ in cases:
        t = sorted(times[name])
        p90 = t[min(len(t) - 1, int(0.9 * len(t)))]
        res_ms = f"{statistics.median(resolve[name]):.1f}" if resolve[name] else "-"
        print(
            f"| {name} | {allowed[name]} ({100 * allowed[name] / n_pages:.0f} %) | {statistics.median(t):.0f} | "
            f"{p90:.0f} | {res_ms} | {statistics.mean(hits[name]):.2f} |"
        )
    eng.close()


if __name__ == "__main__":
    main()
