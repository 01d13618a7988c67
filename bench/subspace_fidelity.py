"""How far storing cells in the vocabulary's subspace moves the scores queries read.

    python3 bench/subspace_fidelity.py --home H [--cells 20000] [--dims 40 48 56 64]

H: a home indexed with the cells as they come (``Store(subspace_energy=None)``, or one built before 80be035). For
each dimension: the vocabulary's energy left out, and, over a sample of the home's cells, how much the cosine of
every cell with every vocabulary token moves when the cell and the tokens are projected (``codec.vocabulary_subspace``'s
rotation included) and the cell stored as int8, as a new index stores it; how much the cell's best token's cosine
moves; and how often the best token stays the best.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--cells", type=int, default=20000)
    ap.add_argument("--dims", type=int, nargs="+", default=[40, 48, 56, 64])
    a = ap.parse_args()

    from tokensearch.engine import Engine
    from tokensearch.settings import Settings
    from tokensearch.storage.codec import subspace_codec
    from tokensearch.storage.features import dequantize, quantize
    from tokensearch.storage.vectors import index_cells

    eng = Engine(Settings(home=a.home))
    if eng.store.stats().codec.split(",")[0] != "identity":
        raise SystemExit(f"{a.home} stores its cells as {eng.store.stats().codec}: index one as they come")
    vocab = np.asarray(eng.query_encoder.vocabulary(), np.float32)  # type: ignore[attr-defined]
    st = eng.store
    pids = [p.page_id for d in st.documents(limit=10**6) for p in st.document_pages(d.id)]
    cells = np.concatenate([pf.feats[index_cells(pf, None)] for pf in st.page_features(pids).values()])
    rng = np.random.default_rng(0)
    x = cells[rng.choice(len(cells), min(a.cells, len(cells)), replace=False)].astype(np.float32)
    before = x @ vocab.T
    best = before.argmax(axis=1)
    rows = np.arange(len(x))
    sv = np.linalg.svd(vocab.astype(np.float64), compute_uv=False)
    energy = sv**2 / np.sum(sv**2)
    out = []
    for d in a.dims:
        codec = subspace_codec(vocab, d)  # as a new index of d values would store cells and project queries
        after = dequantize(quantize(codec.apply(x))) @ codec.apply(vocab).T
        moved = after - before
        best_moved = after[rows, best] - before[rows, best]
        out.append(
            {
                "dims": d,
                "energy_left_out": float(energy[d:].sum()),
                "every_token_moved_mean": round(float(moved.mean()), 5),
                "every_token_moved_std": round(float(moved.std()), 5),
                "best_token_moved_mean": round(float(best_moved.mean()), 5),
                "best_token_moved_p95_abs": round(float(np.percentile(np.abs(best_moved), 95)), 5),
                "best_token_kept": round(float(np.mean(after.argmax(axis=1) == best)), 4),
            }
        )
        print(json.dumps(out[-1]), flush=True)
    print(json.dumps({"cells": len(x), "pages": len(pids), "singular_values": np.round(sv, 3).tolist()}))


if __name__ == "__main__":
    main()
