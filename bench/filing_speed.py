"""What filing a page's cells under their best tokens costs (``postings.best_tokens``), by how many cells are scored
against the vocabulary at once: the step that writing a page to a big index (token postings) adds to encoding it.

    python3 bench/filing_speed.py --home H [--pages 20] [--chunks 64 128 256 512] [--threads 1 2] [--out F.json]

H: a home whose stage 1 reads token postings (``bench/scale.py --work W`` makes W/big). Its first ``--pages``
model-read pages' cells (as the index files them: ``vectors.index_cells``) are scored against its postings'
vocabulary, every chunk size in turn, in interleaved rounds (these machines are noisy); per BLAS thread count, the
median over rounds of the milliseconds a page, each size's ratio to the first, and the share of cells whose best
tokens differ from the first size's (float rounding differs by the product's shape, as it does by thread count).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--pages", type=int, default=20)
    ap.add_argument("--chunks", type=int, nargs="+", default=[512, 128])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--best", type=int, default=3)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
    from cli_latency import cpu_name
    from threadpoolctl import threadpool_limits

    from tokensearch.engine import Engine
    from tokensearch.settings import Settings
    from tokensearch.storage import postings
    from tokensearch.storage.vectors import index_cells

    eng = Engine(Settings(home=a.home))
    keeper = eng.store.vectors
    index = keeper.current()
    vocab = getattr(index, "vocab", None)
    if vocab is None:
        sys.exit(f"{a.home} has no token postings (index {eng.store.stats().vector_index_type})")
    merge_cos = keeper._known_codec().merge_cos
    ids = [p.page_id for d in eng.store.documents(limit=a.pages) for p in eng.store.document_pages(d.id)]
    pages = []
    for pf in eng.store.page_features(ids).values():
        if len(pf.ys) and len(pages) < a.pages:
            pages.append(np.ascontiguousarray(pf.feats[index_cells(pf, merge_cos)], dtype=np.float32))
    report: dict = {"cpu": cpu_name(), "home": str(a.home), "pages": len(pages), "vocabulary": list(vocab.shape)}
    report["cells_a_page"] = round(statistics.mean(len(p) for p in pages))
    print(report, flush=True)
    for threads in a.threads:
        with threadpool_limits(threads):
            first: list[np.ndarray] = []  # the first size's best tokens, each page's
            differ = {}
            for chunk in a.chunks:
                postings._PAGE_CHUNK = chunk
                got = [postings.best_tokens(p, vocab, a.best)[0] for p in pages]
                first = first or got
                rows = sum(len(g) for g in got)
                differ[chunk] = sum(int((g != f).any(axis=1).sum()) for g, f in zip(got, first)) / rows
            ms: dict[int, list[float]] = {c: [] for c in a.chunks}
            for _ in range(a.rounds):
                for chunk in a.chunks:
                    postings._PAGE_CHUNK = chunk
                    t = time.perf_counter()
                    for p in pages:
                        postings.best_tokens(p, vocab, a.best)
                    ms[chunk].append((time.perf_counter() - t) * 1000 / len(pages))
            med = {c: statistics.median(v) for c, v in ms.items()}
            row = {
                str(c): {
                    "ms_a_page": round(med[c], 1),
                    "speedup_vs_first": round(med[a.chunks[0]] / med[c], 2),
                    "cells_with_other_best_tokens": round(differ[c], 5),
                }
                for c in a.chunks
            }
            report[f"threads_{threads}"] = row
            print(threads, "threads:", row, flush=True)
    if a.out:
        a.out.write_text(json.dumps(report, indent=1))
    eng.close()


if __name__ == "__main__":
    main()
