"""How far a page's stored cells could shrink without another model: three measurements on an index's stored
features (issue 17, ``BENCHMARKS.md`` "Index format and scale").

    python3 bench/format_headroom.py --home H [--pages 20]

H: a home the mini model indexed (e.g. the dev benchmark's clean_150 scans). On its first ``--pages`` image
pages, against the model's vocabulary (the verification's competitors: every token's vector):

1. fewer cells: runs of horizontally adjacent cells within a cosine of the run's first cell, then column runs
   on top (``codec.merge_columns``): vectors left, how far each cell's cosine with its best token moves, and
   how often its best token changes;
2. a sparse code over the vocabulary (orthogonal matching pursuit: K tokens and K int8 coefficients a cell,
   3K bytes): the code's cosine with the cell, the error of the best token's cosine, best token kept;
3. an inverted index of token regions: tokens reading at or above a floor somewhere on the page, and the
   connected regions of cells where they do (what one posting a token occurrence would take).
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def row_runs(ys: np.ndarray, xs: np.ndarray, f: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Cells in raster order with each horizontal run's unit mean; the number of runs. Runs as the vector
    index's ``merge_cos`` cuts them (``vectors._row_run_heads``): a cell joins its left neighbour's run while its
    cosine with the run's first cell is at least ``tau``."""
    from tokensearch.storage.vectors import _row_run_heads

    order = np.lexsort((xs, ys))
    heads = _row_run_heads(ys, xs, f, tau)[order]
    run = np.cumsum(heads) - 1  # in raster order a run's cells follow its head
    f = f[order]
    sums = np.zeros((int(heads.sum()), f.shape[1]), dtype=np.float32)
    np.add.at(sums, run, f)
    merged = sums[run] / np.linalg.norm(sums[run], axis=1, keepdims=True)
    return order, merged, len(sums)


def omp(x: np.ndarray, vocab: np.ndarray, k: int) -> np.ndarray:
    """Unit reconstructions of ``x`` from ``k`` vocabulary rows each, coefficients int8-quantised."""
    n = len(x)
    sel = np.zeros((n, k), np.int64)
    resid = x.copy()
    coefs = np.zeros((n, 1), np.float32)
    for j in range(k):
        s = np.abs(resid @ vocab.T)
        if j:
            s[np.arange(n)[:, None], sel[:, :j]] = -np.inf
        sel[:, j] = np.argmax(s, axis=1)
        d = vocab[sel[:, : j + 1]]
        gram = np.einsum("nkd,njd->nkj", d, d) + 1e-6 * np.eye(j + 1)
        coefs = np.linalg.solve(gram, np.einsum("nkd,nd->nk", d, x)[..., None])[..., 0]
        resid = x - np.einsum("nk,nkd->nd", coefs, d)
    q = np.rint(coefs * 127 / np.abs(coefs).max(1, keepdims=True))
    y = np.einsum("nk,nkd->nd", q, vocab[sel])
    return y / np.linalg.norm(y, axis=1, keepdims=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--pages", type=int, default=20)
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from scipy import ndimage
    from sqlalchemy import text

    from tokensearch.engine import Engine
    from tokensearch.settings import Settings
    from tokensearch.storage.codec import merge_columns

    _, side = pickle.loads((a.home / "query_side.pkl").read_bytes())
    vocab = np.asarray(side.vocabulary(), dtype=np.float32)
    vocab /= np.linalg.norm(vocab, axis=1, keepdims=True)
    with Engine(Settings(home=a.home)) as eng:
        with eng.store.engine.connect() as c:
            ids = [r[0] for r in c.execute(text("select id from ts_pages where source = 'vision' order by id"))]
        pages = list(eng.store.page_features(ids[: a.pages]).values())
    print(f"{len(pages)} pages, {np.mean([len(p.ys) for p in pages]):.0f} cells a page, vocabulary {vocab.shape}")

    print("1. fewer cells (row runs at cos >= tau; then column runs of <= 4 at tau)")
    for tau in (0.95, 0.9, 0.85, 0.8):
        r = []
        for pf in pages:
            f = pf.feats.astype(np.float32)
            order, merged, n_runs = row_runs(pf.ys.astype(np.int64), pf.xs.astype(np.int64), f, tau)
            f = f[order]
            s = f @ vocab.T
            best = s.argmax(1)
            cols = merge_columns(pf.ys[order], pf.xs[order], merged, tau, 4)
            n_cols = len(np.unique(np.round(cols, 5), axis=0))
            row = []
            for m in (merged, cols):
                sm = m @ vocab.T
                row += [
                    np.abs(sm[np.arange(len(f)), best] - s[np.arange(len(f)), best]).mean(),
                    (sm.argmax(1) == best).mean(),
                ]
            r.append([len(f), n_runs, n_cols] + row)
        m = np.mean(r, axis=0)
        print(
            f"  tau {tau}: row runs {m[1]:.0f} of {m[0]:.0f} cells (best token's cos moves {m[3]:.4f},"
            f" kept {m[4]:.3f}); + column runs {m[2]:.0f} vectors (moves {m[5]:.4f}, kept {m[6]:.3f})"
        )

    print("2. a sparse code over the vocabulary (K tokens + K int8 coefficients a cell)")
    for k in (1, 2, 3, 4, 6):
        r = []
        for pf in pages:
            f = pf.feats.astype(np.float32)
            s = f @ vocab.T
            best = s.argmax(1)
            y = omp(f, vocab, k)
            sy = y @ vocab.T
            rows = np.arange(len(f))
            r.append(
                [
                    np.einsum("nd,nd->n", f, y).mean(),
                    np.abs(sy[rows, best] - s[rows, best]).mean(),
                    (sy.argmax(1) == best).mean(),
                ]
            )
        m = np.mean(r, axis=0)
        print(
            f"  K={k} ({3 * k} B): cos(code, cell) {m[0]:.3f}, best token's cos off by {m[1]:.4f},"
            f" best token kept {m[2]:.3f}"
        )

    print("3. token regions: tokens reading >= floor somewhere on a page, and connected regions of such cells")
    for floor in (0.5, 0.6, 0.7):
        r = []
        for pf in pages[:8]:
            s = pf.feats.astype(np.float32) @ vocab.T
            ci, ti = np.nonzero(s >= floor)
            order = np.argsort(ti, kind="stable")
            ti, ys, xs = ti[order], pf.ys[ci][order].astype(np.int64), pf.xs[ci][order].astype(np.int64)
            bounds = np.flatnonzero(np.r_[True, ti[1:] != ti[:-1], True])
            regions = 0
            for lo, hi in zip(bounds[:-1], bounds[1:]):
                grid = np.zeros((ys[lo:hi].max() - ys[lo:hi].min() + 1, xs[lo:hi].max() - xs[lo:hi].min() + 1), bool)
                grid[ys[lo:hi] - ys[lo:hi].min(), xs[lo:hi] - xs[lo:hi].min()] = True
                regions += ndimage.label(grid, structure=np.ones((3, 3)))[1]
            r.append([len(bounds) - 1, regions])
        m = np.mean(r, axis=0)
        print(f"  floor {floor}: {m[0]:.0f} tokens a page, {m[1]:.0f} regions a page")


if __name__ == "__main__":
    main()
