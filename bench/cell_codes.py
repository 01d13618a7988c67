"""How closely a cell code keeps an index's stored cells: product quantisers fitted as the shipped codebook is
(``tokensearch/training/codebook.py``: the training PDFs' pages and synthetic receipts), read on the cells of
other pages (BENCHMARKS.md, "Index format and scale").

    python3 bench/cell_codes.py --home H [--home H2 ...] --pdf-dir PDFS [--codes pq32 opq32 opq48]

H: homes indexed with int8 cells (``--model mini:DIR``, DIR holding the weights and tokenizer without a
codebook), e.g. the dev benchmark's clean_150 scans and the receipts; their stored cells are the reference.
For each code and home, on up to 40,000 cells: the cosine of a cell with what the code stores (mean, 1st
percentile), how far the cosine of the cell's best vocabulary token moves (mean, 95th percentile; a query
token's score on a page is such a cosine), how often the best token stays the same, and the CPU time to encode
and to decode a scanned page's 5,500 cells (one thread, median of 20).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def home_cells(home: Path, n: int = 40_000) -> np.ndarray:
    from tokensearch.storage import Store

    store = Store.open(home, None)
    try:
        if "cells" in store.stats().codec:
            raise SystemExit(f"{home}: its cells are product-quantised already (index it with --model mini:DIR)")
        pages = store.page_features(list(store.pages(range(1, 1_000_000)).keys()))
    finally:
        store.close()
    x = np.concatenate([p.feats for p in pages.values()])
    return x[np.random.default_rng(0).choice(len(x), min(n, len(x)), replace=False)]


def median_ms(f, repeat: int = 20) -> float:
    f()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, action="append", required=True)
    ap.add_argument("--pdf-dir", type=Path, required=True)
    ap.add_argument("--codes", nargs="+", default=["pq32", "opq32", "opq48"])
    a = ap.parse_args()

    from threadpoolctl import threadpool_limits

    from tokensearch.indexer.pipeline import IndexOptions
    from tokensearch.samples import calibration_pages
    from tokensearch.storage.codec import CellCode
    from tokensearch.tokenocr_model.mini_encoder import load_mini
    from tokensearch.training.codebook import sample_images, text_cells

    encoder = load_mini(None, dtype="auto", int8_pages=calibration_pages, codebook=False)
    images = sample_images(a.pdf_dir, encoder.tokenizer, encoder.dpi, 48, 24, 7)
    sample = text_cells(encoder, images, IndexOptions.text_threshold, 7)
    vocab = np.asarray(encoder.token_vectors(range(len(encoder.tokenizer.pieces()))), dtype=np.float32)
    homes = {h.name: home_cells(h) for h in a.home}
    page = next(iter(homes.values()))[:5500]

    print(
        "| code | bytes a cell | home | cos mean / p1 | best token's cosine moved, mean / p95 | best token kept | "
        "encode / decode ms a page |"
    )
    print("|---|---|---|---|---|---|---|")
    for spec in a.codes:
        rotate, parts = spec.startswith("opq"), int(spec.lstrip("opq"))
        code = CellCode.fit(sample, parts, seed=7, rotate=rotate)
        with threadpool_limits(limits=1):
            enc_ms = median_ms(lambda c=code: c.encode(page))
            codes = code.encode(page)
            dec_ms = median_ms(lambda c=code, k=codes: c.decode(k))
        for name, x in homes.items():
            back = code.decode(code.encode(x))
            cos = np.einsum("nd,nd->n", back, x)
            s, s2 = x @ vocab.T, back @ vocab.T
            best = np.argmax(s, axis=1)
            rows = np.arange(len(x))
            moved = np.abs(s2[rows, best] - s[rows, best])
            print(
                f"| {spec} | {parts} | {name} | {cos.mean():.4f} / {np.percentile(cos, 1):.4f} | "
                f"{moved.mean():.4f} / {np.percentile(moved, 95):.4f} | {(np.argmax(s2, axis=1) == best).mean():.3f} | "
                f"{enc_ms:.1f} / {dec_ms:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
