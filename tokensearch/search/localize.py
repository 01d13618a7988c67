"""Whole-query localisation on one page: token similarity maps → occurrences of a word/phrase → boxes.

A unit (a word, or a quoted phrase) is a sequence of BPE tokens. An occurrence is a chain of cells, one
per token, in reading order on one text line: token j lies right of token j-1 (dx in [1, gap_j] cells,
dy in [-1, 1]). The best chain ending at every cell is found by dynamic programming with a sliding
window maximum; its score is the mean cosine of the chain's cells. Boxes are grown from the chain's
cells over the neighbouring cells that still look like the same token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# step window between consecutive tokens of a unit, in cells per character of the two tokens: every cell of a
# token carries its vector, so neighbours in a word can always step from one cell to the next; a wider
# window (2.0 before) let a look-alike borrow its pieces from different words ("slonting": "Sl" of
# SlantFont, "ont" of Font); 1.0 cuts those false hits without losing right answers (BENCHMARKS.md, "Stage 1
# and candidate pages")
CELLS_PER_CHAR = 1.0
BOX_CELLS_PER_CHAR = 2.0  # generous box growth: 8 px cells hold ~0.8 char of 10 pt text, ~0.3 of 24 pt
GROW_RATIO = 0.75  # a neighbour cell belongs to the token if its cosine is >= this share of the peak


@dataclass
class Occurrence:
    score: float  # mean cosine of the chain's cells
    box: tuple[float, float, float, float]  # normalised page coords, origin top-left
    cells: list[tuple[int, int]]  # (y, x) of each token's chain cell, in the maps it was located on
    token_boxes: list[tuple[int, int, int, int]]  # each token's cell extent (x0, y0, x1, y1), inclusive, ditto
    text: str = ""  # the spelling located (set by the searcher)


@dataclass(frozen=True)
class Frame:
    """The part of a page's (grid_h, grid_w) cell grid that maps cover: the bounding box of its text cells,
    (y0, x0) its top-left cell. Margins and blank bands around the text cannot hold a chain, and skipping
    them makes chaining cheaper (it runs over every cell of the maps)."""

    y0: int
    x0: int
    h: int
    w: int
    grid_h: int
    grid_w: int

    @classmethod
    def of_text(cls, grid_h: int, grid_w: int, ys: np.ndarray, xs: np.ndarray) -> Frame:
        if len(ys) == 0:
            return cls.whole(grid_h, grid_w)
        y0, x0 = int(ys.min()), int(xs.min())
        return cls(y0, x0, int(ys.max()) - y0 + 1, int(xs.max()) - x0 + 1, grid_h, grid_w)

    @classmethod
    def whole(cls, grid_h: int, grid_w: int) -> Frame:
        return cls(0, 0, grid_h, grid_w, grid_h, grid_w)


def dense_maps(frame: Frame, ys: np.ndarray, xs: np.ndarray, sims: np.ndarray) -> np.ndarray:
    """(n, T) similarities at kept cells (page grid coordinates) → (T, h, w) maps over ``frame``, 0 where
    nothing is written."""
    T = sims.shape[1]
    maps = np.zeros((T, frame.h * frame.w), dtype=np.float32)
    # one flat index and one contiguous row per token: 3-4x faster than a (T, ys, xs) fancy assignment, and
    # this runs for every spelling of every page scored
    flat = (ys - frame.y0) * frame.w + (xs - frame.x0)
    cols = np.ascontiguousarray(sims.T, dtype=np.float32)
    for t in range(T):
        maps[t][flat] = cols[t]
    return maps.reshape(T, frame.h, frame.w)


def _window_max_left(c: np.ndarray, gap: int) -> np.ndarray:
    """P[y, x] = max of c over rows y-1..y+1 and columns x-gap..x-1 (cells strictly to the left), -1 where
    the window is empty."""
    rows = c.copy()  # the 3-row maximum first, then a sliding maximum along the row
    rows[1:] = np.maximum(rows[1:], c[:-1])
    rows[:-1] = np.maximum(rows[:-1], c[1:])
    # m[:, x] = max over columns x-span+1..x, the span doubling (log2(gap) steps, no scipy import on the
    # search path: scipy.ndimage costs 0.2 s of every CLI search's start-up)
    m = rows
    span = 1
    while 2 * span <= gap:
        shifted = np.full_like(m, -1.0)
        shifted[:, span:] = m[:, :-span]
        m = np.maximum(m, shifted)
        span *= 2
    if span < gap:  # two overlapping windows of `span` cover the last `gap` columns
        shifted = np.full_like(m, -1.0)
        shifted[:, gap - span :] = m[:, : span - gap]
        m = np.maximum(m, shifted)
    out = np.full_like(c, -1.0)  # the window of column x ends at x-1
    out[:, 1:] = m[:, :-1]
    return out


def chain_scores(maps: np.ndarray, gaps: list[int]) -> list[np.ndarray]:
    """Best chain sums ending at each cell for tokens 0..j (maps (T,H,W)), for every j; gaps[j-1] bounds
    the horizontal step from token j-1 to token j. The last array scores whole chains."""
    partial = [maps[0].copy()]
    for j in range(1, maps.shape[0]):
        partial.append(maps[j] + _window_max_left(partial[-1], gaps[j - 1]))
    return partial


def _backtrack(
    partial: list[np.ndarray], gaps: list[int], end: tuple[int, int], steps: dict | None = None
) -> list[tuple[int, int]]:
    """Chain cells ending at ``end``: each predecessor is the best cell of the previous partial chain
    inside the step window. ``steps``: predecessors found by earlier calls on the same chains (neighbouring
    ends share most of theirs), filled in as they are found."""
    cells = [end]
    y, x = end
    H, W = partial[0].shape
    steps = {} if steps is None else steps
    for j in range(len(partial) - 1, 0, -1):
        known = steps.get((j, y, x))
        if known is None:
            g = gaps[j - 1]
            y0, y1, x0, x1 = max(0, y - 1), min(H, y + 2), max(0, x - g), x
            if x1 <= x0:
                known = (y, x)
            else:  # the first best cell in raster order (divmod: np.unravel_index costs more than the argmax)
                dy, dx = divmod(int(partial[j - 1][y0:y1, x0:x1].argmax()), x1 - x0)
                known = (y0 + dy, x0 + dx)
            steps[(j, y, x)] = known
        y, x = known
        cells.append(known)
    return cells[::-1]


def _grow(m: np.ndarray, y: int, x: int, max_w: int) -> tuple[int, int, int, int]:
    """Cell extent (x0, y0, x1, y1 inclusive) of the token at (y, x): neighbours above GROW_RATIO·peak."""
    H, W = m.shape
    thr = GROW_RATIO * float(m[y, x])
    x0 = x
    while x0 - 1 >= 0 and x - (x0 - 1) < max_w and m[y, x0 - 1] >= thr:
        x0 -= 1
    x1 = x
    while x1 + 1 < W and (x1 + 1) - x < max_w and m[y, x1 + 1] >= thr:
        x1 += 1
    top = max(0, y - 3)  # the box grows at most 3 rows either way: only those rows are read
    row_band = m[top : y + 4, x0 : x1 + 1].max(axis=1)
    y0 = y
    while y0 - 1 >= 0 and y - (y0 - 1) <= 3 and row_band[y0 - 1 - top] >= thr:
        y0 -= 1
    y1 = y
    while y1 + 1 < H and (y1 + 1) - y <= 3 and row_band[y1 + 1 - top] >= thr:
        y1 += 1
    return x0, y0, x1, y1


def locate(
    maps: np.ndarray, piece_lens: list[int], threshold: float, max_occurrences: int = 20, frame: Frame | None = None
) -> list[Occurrence]:
    """Occurrences of one unit (maps (T,H,W) of its tokens in order, covering ``frame`` of the page: the
    whole page if None) scoring >= threshold, best first. Cells and token boxes are in the maps'
    coordinates, boxes normalised to the page."""
    T, H, W = maps.shape
    frame = frame or Frame.whole(H, W)
    gaps = [max(2, int(np.ceil(CELLS_PER_CHAR * (piece_lens[j] + piece_lens[j + 1] + 1)))) for j in range(T - 1)]
    partial = chain_scores(maps, gaps)
    score = partial[-1] / T
    cand = np.argwhere(score >= threshold)
    if len(cand) == 0:
        return []
    order = np.argsort(-score[cand[:, 0], cand[:, 1]], kind="stable")
    taken = np.zeros((H, W), dtype=bool)
    out: list[Occurrence] = []
    # chains ending side by side share cells: each predecessor and each token box is found once (located
    # from under the threshold, a page's candidate ends are many; BENCHMARKS.md, "The pooled share")
    steps: dict = {}
    grown: dict[tuple[int, int, int], tuple[int, int, int, int]] = {}
    # as Python ints: most ends lie inside an occurrence already taken, and are only looked up
    for y, x in cand[order].tolist():
        if taken[y, x]:
            continue
        cells = _backtrack(partial, gaps, (y, x), steps) if T > 1 else [(y, x)]
        boxes = []
        for j, (cy, cx) in enumerate(cells):
            box = grown.get((j, cy, cx))
            if box is None:
                box = grown[(j, cy, cx)] = _grow(maps[j], cy, cx, max_w=int(BOX_CELLS_PER_CHAR * piece_lens[j]) + 2)
            boxes.append(box)
        bx0 = min(b[0] for b in boxes)
        by0 = min(b[1] for b in boxes)
        bx1 = max(b[2] for b in boxes)
        by1 = max(b[3] for b in boxes)
        # chains ending inside an accepted occurrence (or sharing its cells) are the same occurrence
        if any(taken[cy, cx] for cy, cx in cells):
            taken[by0 : by1 + 1, bx0 : bx1 + 1] = True
            continue
        taken[max(0, by0 - 1) : by1 + 2, bx0 : bx1 + 1] = True
        fx, fy, gw, gh = frame.x0, frame.y0, frame.grid_w, frame.grid_h
        out.append(
            Occurrence(
                float(score[y, x]),
                ((bx0 + fx) / gw, (by0 + fy) / gh, (bx1 + 1 + fx) / gw, (by1 + 1 + fy) / gh),
                cells,
                boxes,
            )
        )
        if len(out) >= max_occurrences:
            break
    return out


def _span_maxima(v: np.ndarray, longest: int) -> np.ndarray:
    """(L, n) table: row j holds max(v[i : i + 2**j]) (cut at the end), for every 2**j <= ``longest``."""
    rows = [v]
    span = 1
    while 2 * span <= longest:
        nxt = rows[-1].copy()
        nxt[:-span] = np.maximum(rows[-1][:-span], rows[-1][span:])
        rows.append(nxt)
        span *= 2
    return np.stack(rows)


def chain_estimate(
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    piece_lens: list[int],
    pages: np.ndarray,
    fills: Sequence[float] | None = None,
) -> np.ndarray:
    """Stage 1's estimate of a unit on each of ``pages`` (sorted ids), from the vector index's top cells of
    its tokens (``rows[j]``: page ids, scores, (n, 2) grid cells of token j's retrieved cells): the best
    chain of retrieved cells in reading order, as :func:`locate` chains (token j right of token j-1 within
    its step window, at most a row apart), divided by the number of tokens. A token with no cell to
    continue the chain counts its row's lowest retrieved score (what any cell not retrieved scores at
    most) and the chain goes on from where it was. Unlike the mean of each token's best cell anywhere
    on the page, this does not let a dense page collect a rare word's common pieces from different lines.
    ``fills``: each row's lowest retrieved score, where ``rows`` hold only some pages' cells of what was retrieved.

    A token's term is a cell's score or the fill, so the estimate is at most the mean over tokens of the
    higher of the page's best retrieved cell and the fill (how ``Searcher._chain_units`` orders pages)."""
    P, T = len(pages), len(rows)
    off, wide = 128, 1 << 13  # cell keys: page index, row + off, column + off (rows, columns < 8000)

    def cells_of(j: int):
        ids, scores, cells = rows[j]
        fill = float(fills[j]) if fills is not None else float(scores.min()) if len(scores) else 0.0
        return (
            np.searchsorted(pages, ids),
            cells[:, 0].astype(np.int64),
            cells[:, 1].astype(np.int64),
            scores.astype(np.float32),
            fill,
        )

    pi, y, x, v, fill = cells_of(0)
    # every page starts with a virtual cell at the fill (a page without token 0's cells), real cells above
    sp = np.concatenate([pi, np.arange(P)])
    sy = np.concatenate([y, np.full(P, -99)])
    sx = np.concatenate([x, np.full(P, -99)])
    sv = np.concatenate([v, np.full(P, fill, np.float32)])
    for j in range(1, T):
        gap = max(2, int(np.ceil(CELLS_PER_CHAR * (piece_lens[j - 1] + piece_lens[j] + 1))))
        # the best chain so far on each page, and where it ends
        order = np.lexsort((-sv, sp))
        first = order[np.r_[True, sp[order][1:] != sp[order][:-1]]]
        bv, by, bx = np.full(P, -np.inf, np.float32), np.full(P, -99), np.full(P, -99)
        bv[sp[first]], by[sp[first]], bx[sp[first]] = sv[first], sy[first], sx[first]
        # chain ends by key, one value each (the highest)
        keys = sp * wide * wide + (sy + off) * wide + (sx + off)
        ko = np.lexsort((-sv, keys))
        keep = ko[np.r_[True, keys[ko][1:] != keys[ko][:-1]]]
        ks, vs = keys[keep], sv[keep]
        pj, yj, xj, vj, fj = cells_of(j)
        # the best chain end in each cell's step window: per row dy, the keys x-gap..x-1 are one run of the
        # sorted keys, whose maximum a table of maxima over power-of-two spans gives in two lookups
        # (the cells in key order: sorted lookups are ~2x faster)
        spans = _span_maxima(vs, gap)
        perm = np.argsort(pj * wide * wide + (yj + off) * wide + xj, kind="stable")
        py, px = pj[perm] * wide * wide + (yj[perm] + off) * wide, xj[perm] + off
        best = np.full(len(pj), -np.inf, np.float32)
        for dy in (-1, 0, 1):
            lo = np.searchsorted(ks, py + dy * wide + np.maximum(px - gap, 0))
            hi = np.searchsorted(ks, py + dy * wide + px)
            has = hi > lo
            lo, hi = lo[has], hi[has]
            level = np.frexp((hi - lo).astype(np.float64))[1] - 1  # floor(log2(run length))
            run_max = np.maximum(spans[level, lo], spans[level, hi - (1 << level)])
            best[has] = np.maximum(best[has], run_max)
        pred = np.empty_like(best)
        pred[perm] = best
        # a real cell continues a chain next to it, or takes the page's best chain with this token missing
        real = np.maximum(vj + pred, bv[pj] + fj)
        sp = np.concatenate([pj, np.arange(P)])
        sy = np.concatenate([yj, by])
        sx = np.concatenate([xj, bx])
        sv = np.concatenate([real, bv + fj]).astype(np.float32)
    est = np.full(P, -np.inf, np.float32)
    np.maximum.at(est, sp, sv)
    return est / T
