"""Token features of a born-digital page built from its text layer — exactly, without running the model.

Each word of the text layer is tokenised with the model's *query rule* (so a page word and the same
word typed as a query give the same BPE tokens), and each token's vector is painted onto the grid
cells its glyphs cover. The grid is the one the model would produce for the page raster, so these
pages and vision-encoded pages live in the same index and answer the same queries.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from ..tokenocr_model.interface import TokenEncoder
from .sources import TextChar


_EDGES = re.compile(r"^(?P<lead>[^\w]*)(?P<core>.*?)(?P<trail>[^\w]*)$", re.S)


class TextLayerPainter:
    """Paints token vectors of text-layer words onto a model's cell grid (caches tokenised words)."""

    def __init__(self, encoder: TokenEncoder, cache_words: int = 200_000) -> None:
        self.encoder = encoder
        self._embed = lru_cache(maxsize=cache_words)(self._embed_word)

    def _embed_word(self, word: str) -> tuple[tuple[tuple[int, int], ...], np.ndarray]:
        """Token spans and vectors of a page word, cut as a query would cut it.

        Edge punctuation is tokenised on its own ("(hello)," → "(", "hello", ")," ), so the core word gets
        exactly the tokens of the query "hello" (with the query rule's leading space).
        """
        spans: list[tuple[int, int]] = []
        vecs: list[np.ndarray] = []
        m = _EDGES.match(word)
        assert m is not None
        for part in ("lead", "core", "trail"):
            text, offset = m.group(part), m.start(part)
            if not text:
                continue
            q = self.encoder.embed_query(text)
            spans.extend((offset + t.start, offset + t.end) for t in q.tokens)
            vecs.append(np.asarray(q.vectors, dtype=np.float32))
        dim = self.encoder.info.dim
        return tuple(spans), (np.concatenate(vecs) if vecs else np.zeros((0, dim), np.float32))

    def paint(self, words: list[list[TextChar]], grid_h: int, grid_w: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (ys, xs, feats) of the cells covered by glyphs; feats are the tokens' unit vectors."""
        vectors: list[np.ndarray] = []
        boxes: list[tuple[float, float, float, float]] = []
        rows: list[int] = []
        lengths: list[int] = []
        for word in words:
            text = "".join(ch.c for ch in word)
            pos2char = [i for i, ch in enumerate(word) for _ in ch.c]  # string index -> char index
            spans, vecs = self._embed(text)
            for (start, end), vec in zip(spans, vecs):
                if end <= start or start >= len(pos2char):
                    continue
                row = len(vectors)
                vectors.append(vec)
                for ci in range(pos2char[start], pos2char[min(end, len(pos2char)) - 1] + 1):
                    boxes.append(word[ci].box)
                    rows.append(row)
                    lengths.append(end - start)
        if not vectors:
            empty = np.zeros(0, np.int32)
            return empty, empty, np.zeros((0, self.encoder.info.dim), dtype=np.float32)
        b = np.asarray(boxes, dtype=np.float64)
        x0, x1 = _cells(b[:, 0], b[:, 2], grid_w)
        y0, y1 = _cells(b[:, 1], b[:, 3], grid_h)
        owner = -np.ones((grid_h, grid_w), dtype=np.int64)  # cell -> row in `vectors`
        # longer tokens first: a one-character token ("/", "-") painted last keeps the cell it sits on
        # (numpy assigns repeated indices in order, so the last writer of a cell wins)
        order = np.argsort(-np.asarray(lengths), kind="stable")
        x0, x1, y0, y1, row = x0[order], x1[order], y0[order], y1[order], np.asarray(rows)[order]
        for dy in range(int((y1 - y0).max())):
            for dx in range(int((x1 - x0).max())):
                sel = (y1 - y0 > dy) & (x1 - x0 > dx)
                owner[y0[sel] + dy, x0[sel] + dx] = row[sel]
        _feed_starving(owner, row, x0, x1, y0, y1, len(vectors))
        ys, xs = np.nonzero(owner >= 0)
        feats = np.stack(vectors)[owner[ys, xs]]
        return ys.astype(np.int32), xs.astype(np.int32), feats.astype(np.float32)


def _cells(a: np.ndarray, b: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Cells [lo, hi) of an n-cell axis whose centres fall in [a, b) (at least the cell holding the middle)."""
    lo = np.ceil(a * n - 0.5).astype(np.int64)
    hi = np.floor(b * n - 0.5).astype(np.int64) + 1
    mid = np.clip(((a + b) / 2 * n).astype(np.int64), 0, n - 1)
    empty = hi <= lo
    lo = np.where(empty, mid, lo)
    hi = np.where(empty, mid + 1, hi)
    return np.clip(lo, 0, n), np.clip(hi, 0, n)


def _feed_starving(owner: np.ndarray, row: np.ndarray, x0: np.ndarray, x1: np.ndarray, y0: np.ndarray,
                   y1: np.ndarray, n_rows: int) -> None:
    """Give every token that lost all its cells to neighbours (narrow glyphs of small text) one cell back:
    its middle cell, or a neighbour, taken from a token that keeps at least one other cell. A query must
    find each of its tokens somewhere on the word."""
    counts = np.bincount(owner[owner >= 0], minlength=n_rows)
    starving = np.flatnonzero(counts == 0)
    if len(starving) == 0:
        return
    W = owner.shape[1]
    for r in starving.tolist():
        sel = np.flatnonzero(row == r)
        if len(sel) == 0:
            continue
        cy = int((y0[sel].min() + y1[sel].max() - 1) // 2)
        cx = int((x0[sel].min() + x1[sel].max() - 1) // 2)
        for x in (cx, cx + 1, cx - 1):
            if 0 <= x < W:
                prev = owner[cy, x]
                if prev < 0 or counts[prev] >= 2:
                    if prev >= 0:
                        counts[prev] -= 1
                    owner[cy, x] = r
                    counts[r] += 1
                    break
