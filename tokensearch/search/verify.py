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

from dataclasses import dataclass, replace

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
    return rescore_all([(occs, maps, own, own_ids)], rows, feats, competitors, weight)[0]


def rescore_all(groups: list[tuple[list[Occurrence], np.ndarray, np.ndarray, np.ndarray]], rows: np.ndarray,
                feats: np.ndarray, competitors: np.ndarray, weight: float) -> list[list[Occurrence]]:
    """:func:`rescore` for the spellings found on one page — (occurrences, maps, own vectors, own ids)
    each — with one product against the vocabulary for all of them (a long query's page holds dozens:
    one product per spelling cost 1 ms each)."""
    pooled, own, ids, sizes = [], [], [], []
    for occs, maps, vecs, tok_ids in groups:
        for o in occs:
            pooled.append(pooled_tokens(o, maps, rows, feats))
            own.append(vecs)
            ids.append(tok_ids)
            sizes.append(len(tok_ids))
    if not pooled:
        return [list(occs) for occs, *_ in groups]
    m = np.minimum(margins(np.concatenate(pooled), np.concatenate(own), np.concatenate(ids), competitors), 0.0)
    per_occ = iter(np.split(m, np.cumsum(sizes)[:-1]))
    return [[replace(o, score=float(o.score + weight * next(per_occ).mean())) for o in occs]
            for occs, *_ in groups]


# ------------------------------------------------------------------------------------------------------
# word end: is the matched word part of a longer one?
# ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TokenClasses:
    """What each vocabulary token says about word boundaries, from its text (a leading space = it starts a
    word): the word-end check reads the token the model sees right of a match."""

    starts_word: np.ndarray  # (V,) bool
    alnum: np.ndarray  # (V,) bool: letters and digits only (not punctuation, not a byte piece)
    bodies: tuple[str, ...]  # lower-case text without the leading space

    @classmethod
    def of(cls, texts: list[str]) -> TokenClasses:
        bodies = tuple(t.lstrip(" ").lower() for t in texts)
        return cls(np.array([t.startswith(" ") for t in texts], dtype=bool),
                   np.array([b.isalnum() for b in bodies], dtype=bool), bodies)


WORD_END_CELLS = 3  # cells right of the last token read before the word is taken to end there
# a cell belongs to the word's own tail if one of its best tokens (at most this many, within WORD_END_NEAR of
# the best cosine) is part of that tail
WORD_END_TOP = 3
WORD_END_NEAR = 0.1


def word_continues(occs: list[Occurrence], rows: np.ndarray, feats: np.ndarray, competitors: np.ndarray,
                   classes: TokenClasses, word: str) -> np.ndarray:
    """(N,) bool: right of each occurrence the model reads the *same* word going on — "correct" matched in
    "correctly", "click" in "clicking" — so the query word is not what is written there.

    The query's tokens chain into a longer word's first tokens exactly (" cor"+"rect" is the start of
    " cor"+"rect"+"ly"), and on the dev benchmark such prefixes were a third of the wrong first pages of
    single words. Cells right of the last token's box, one by one: a background cell (not kept), a
    token that starts a word, punctuation, or a change between letters and digits ends the word; a
    token that is part of the query word's own end (the box stopped short) moves on; any other
    letters/digits token continues it.
    """
    out = np.zeros(len(occs), dtype=bool)
    word = word.lower()
    H, W = rows.shape
    pending = list(range(len(occs)))
    for dx in range(1, WORD_END_CELLS + 1):
        idx, cell_rows_ = [], []
        for i in pending:
            (cy, _), x = occs[i].cells[-1], occs[i].token_boxes[-1][2] + dx
            if x < W and rows[cy, x] >= 0:
                idx.append(i)
                cell_rows_.append(rows[cy, x])
        if not idx:
            break
        sims = feats[np.asarray(cell_rows_)] @ competitors.T  # (n, V)
        top = np.argpartition(-sims, WORD_END_TOP, axis=1)[:, :WORD_END_TOP]
        top_sims = np.take_along_axis(sims, top, axis=1)
        best = top[np.arange(len(idx)), np.argmax(top_sims, axis=1)]
        pending = []
        for i, t1, tops, ts in zip(idx, best, top, top_sims):
            if classes.starts_word[t1] or not classes.alnum[t1]:
                continue
            near = tops[ts >= ts.max() - WORD_END_NEAR]
            if any(classes.bodies[t] and classes.bodies[t] in word[-(len(classes.bodies[t]) + 2):] for t in near):
                pending.append(i)  # still the query word's own last letters
                continue
            if word[-1:].isalpha() != classes.bodies[t1][:1].isalpha():
                continue
            out[i] = True
    return out
