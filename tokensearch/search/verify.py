"""Verification: does the model read the query's tokens at an occurrence, rather than other tokens?

A chain of cells can score high for a query it does not show: a near spelling ("formatted" for
"formatter"), or a token whose vector sits close to the one written there. The model was trained to
make a token's mask-pooled feature closest to that token's vector among the whole vocabulary, so the
test here is the same one: pool each token's cells (its grown box, cells still looking like it), and
compare the query token's cosine with the best cosine of any *other* vocabulary token. The margin
(own - best other, per token, capped at 0 and averaged over the unit) is added, weighted, to the
occurrence's score: only a token that reads better as something else costs.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .localize import GROW_RATIO, Occurrence


def cell_rows(grid_h: int, grid_w: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """(H, W) row of each kept cell in the page's feature rows, -1 where no cell was kept."""
    grid = np.full((grid_h, grid_w), -1, dtype=np.int64)
    grid[ys, xs] = np.arange(len(ys))
    return grid


def pooled_tokens(occ: Occurrence, maps: np.ndarray, rows: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """(T, d) unit mean features of each token's cells at the occurrence (as the training pooled masks)."""
    out = np.zeros((len(occ.cells), feats.shape[1]), dtype=np.float32)
    for j, ((cy, cx), (x0, y0, x1, y1)) in enumerate(zip(occ.cells, occ.token_boxes)):
        m = maps[j, y0:y1 + 1, x0:x1 + 1]
        r = rows[y0:y1 + 1, x0:x1 + 1]
        sel = r[(m >= GROW_RATIO * maps[j, cy, cx]) & (r >= 0)]
        if len(sel) == 0:
            sel = np.asarray([rows[cy, cx]]) if rows[cy, cx] >= 0 else sel
        if len(sel):
            v = feats[sel].mean(axis=0)
            out[j] = v / max(float(np.linalg.norm(v)), 1e-8)
    return out


def margins(pooled: np.ndarray, own: np.ndarray, own_ids: np.ndarray, competitors: np.ndarray) -> np.ndarray:
    """(N,) cos(pooled, own token) - max cos(pooled, any other vocabulary token)."""
    sims = pooled @ competitors.T  # (N, V)
    mine = np.einsum("nd,nd->n", pooled, own)
    sims[np.arange(len(own_ids)), own_ids] = -np.inf
    return mine - sims.max(axis=1)


def rescore(occs: list[Occurrence], maps: np.ndarray, rows: np.ndarray, feats: np.ndarray, own: np.ndarray,
            own_ids: np.ndarray, competitors: np.ndarray, weight: float) -> list[Occurrence]:
    """Occurrences of one spelling re-scored by ``weight`` x mean token margin (capped at 0)."""
    if not occs:
        return occs
    T = len(own_ids)
    pooled = np.concatenate([pooled_tokens(o, maps, rows, feats) for o in occs])
    m = margins(pooled, np.tile(own, (len(occs), 1)), np.tile(own_ids, len(occs)), competitors)
    m = np.minimum(m, 0.0).reshape(len(occs), T).mean(axis=1)
    return [replace(o, score=float(o.score + weight * mi)) for o, mi in zip(occs, m)]
