"""Token features of a born-digital page built from its text layer — exactly, without running the model.

Each word of the text layer is cut like a query (``textcut``: edge punctuation and every CJK character
on their own), each piece tokenised with the model's *query rule* (so a page word and the same word, or
any run of CJK characters of it, typed as a query give the same BPE tokens), and each token's vector is
painted onto the grid cells its glyphs cover. The grid is the one the model would produce for the page
raster, so these pages and vision-encoded pages live in the same index and answer the same queries.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import groupby

import numpy as np

from ..textcut import embed_cut
from ..tokenocr_model.interface import TokenEncoder
from .sources import TextChar


class TextLayerPainter:
    """Paints token vectors of text-layer words onto a model's cell grid (caches tokenised words)."""

    def __init__(self, encoder: TokenEncoder, cache_words: int = 200_000) -> None:
        self.encoder = encoder
        self._embed = lru_cache(maxsize=cache_words)(self._embed_word)

    def _embed_word(self, word: str) -> tuple[tuple[tuple[int, int], ...], np.ndarray]:
        """Token spans and vectors of a page word, cut as a query would cut it (``textcut.embed_cut``):
        "(hello)," gives "(", the tokens of the query "hello", ")," ; "发票总额" one character at a time."""
        q = embed_cut(self.encoder, word)
        return tuple((t.start, t.end) for t in q.tokens), q.vectors

    def paint(self, words: list[list[TextChar]], grid_h: int, grid_w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (ys, xs, feats) of the cells covered by glyphs; feats are the tokens' unit vectors."""
        vectors: list[np.ndarray] = []
        boxes: list[tuple[float, float, float, float]] = []
        rows: list[int] = []
        lengths: list[int] = []
        for word in words:
            text = "".join(ch.c for ch in word)
            pos2char = [i for i, ch in enumerate(word) for _ in ch.c]  # string index -> char index
            spans, vecs = self._embed(text)
            for (start, end), vec, (part, parts) in zip(spans, vecs, _shares(spans)):
                if end <= start or start >= len(pos2char):
                    continue
                r = len(vectors)
                vectors.append(vec)
                for ci in range(pos2char[start], pos2char[min(end, len(pos2char)) - 1] + 1):
                    bx0, by0, bx1, by1 = word[ci].box
                    if parts > 1:  # one of the byte pieces of a character: its slice of the glyph, in order
                        w = (bx1 - bx0) / parts
                        bx0, bx1 = bx0 + part * w, bx0 + (part + 1) * w
                    boxes.append((bx0, by0, bx1, by1))
                    rows.append(r)
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


def _shares(spans: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
    """(i, n) per token: the i-th of n consecutive tokens cut from the same span of text — the UTF-8 byte
    pieces of a character the vocabulary lacks (a rare CJK character: 3 pieces). They split the glyph's
    width left to right, so each gets cells of its own in the order a query chains them; (0, 1) else."""
    out: list[tuple[int, int]] = []
    for _, same in groupby(spans):
        n = len(list(same))
        out.extend((i, n) for i in range(n))
    return out


def _cells(a: np.ndarray, b: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Cells [lo, hi) of an n-cell axis whose centres fall in [a, b) (at least the cell holding the middle)."""
    lo = np.ceil(a * n - 0.5).astype(np.int64)
    hi = np.floor(b * n - 0.5).astype(np.int64) + 1
    mid = np.clip(((a + b) / 2 * n).astype(np.int64), 0, n - 1)
    empty = hi <= lo
    lo = np.where(empty, mid, lo)
    hi = np.where(empty, mid + 1, hi)
    return np.clip(lo, 0, n), np.clip(hi, 0, n)


def _feed_starving(
    owner: np.ndarray, row: np.ndarray, x0: np.ndarray, x1: np.ndarray, y0: np.ndarray, y1: np.ndarray, n_rows: int
) -> None:
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
