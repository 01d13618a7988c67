"""Stage 1 from token postings: each indexed cell filed under its best vocabulary tokens, not as a vector.

A query is made of the model's tokens, and stage 1 only has to say which cells of which pages read like
each of them. Past the flat index's size, an IVF index answers that with a token's top cells over
compressed vectors, which a common piece ("ing", "0") fills with the pages that hold it most, so in a
big index the page holding a rare word loses its other pieces and falls out of the candidates; and it
keeps ~60 bytes a cell in memory. Postings file every cell under its ``best`` vocabulary tokens (the
model's vocabulary in index space, as the search's vocabulary check reads it) with the cell's cosine:
a token's cells are those that read as that token rather than as anything else, which a look-alike's
raw cosine does not crowd, and one token's list, kept best first, is read from its start. On the dev
queries at 2,500 pages this put the relevant page among stage 1's candidates more often than the IVF
index did (BENCHMARKS.md, "Index format and scale").

Layout: a *base* sorted by token, then score (best first), with each token's start (``starts``); pages
added since the base was built are *fresh* (sorted lazily at the first search after a change), pages
removed from the base are *dead* until the base is rebuilt (:meth:`compact`, at every snapshot). A
search reads a token's base list from its start, skipping dead pages, and merges the fresh list.

On disk (``<home>/vectors/``, the same commit protocol as :mod:`.vectors`)::

    index.json                        {"token", "generation", "spec", "ntotal", ...}  <- the commit point
    index-<token>.postings.npz        starts (V+1,) int64; page (N,) int32; cell (N, 2) int16; score (N,) float16
    index-<token>.pages.npy           (n, 3) int64: page id, cells of that page indexed, its postings

The arrays are memory-mapped when a snapshot is loaded: a search touches only the starts of its tokens'
lists, so a searcher's memory does not grow with the index.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import astuple, dataclass, field
from pathlib import Path

import numpy as np

from .vectors import _atomic_write, _fsync_file, _read_header, remove_stale_snapshots, save_npy, save_snapshot

BEST = 2  # tokens a cell is filed under
# filing a cell reads its cosine with every token: a vocabulary much larger than the mini model's 6,000 (an
# LLM's ~92k) would cost more than encoding the page, and its indexes take IVF instead
MAX_VOCAB = 16384
_EMPTY = (np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((0, 2), np.int64))
_PAGE_CHUNK = 128  # cells scored against the vocabulary at once: 128 x 6,000 float32 (3 MB) stay in cache
_MERGE_POSTINGS = 1 << 24  # postings a rebuild sorts at once (~0.5 GB with its sort keys)
_NO_POSTINGS = (np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros((0, 2), np.int16), np.zeros(0, np.float16))


def best_tokens(vecs: np.ndarray, vocab: np.ndarray, best: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, best) the vocabulary rows each of ``vecs`` reads most like, best first, and their cosines."""
    n = len(vecs)
    ids = np.zeros((n, best), np.int32)
    scores = np.zeros((n, best), np.float32)
    vt = np.ascontiguousarray(vocab.T, dtype=np.float32)
    for i in range(0, n, _PAGE_CHUNK):
        s = np.ascontiguousarray(vecs[i : i + _PAGE_CHUNK], dtype=np.float32) @ vt
        rows = np.arange(len(s))
        for b in range(best):  # ``best`` passes of argmax: cheaper than a partition of every row
            j = s.argmax(axis=1)
            ids[i : i + len(s), b] = j
            scores[i : i + len(s), b] = s[rows, j]
            s[rows, j] = -np.inf
    return ids, scores


def file_cells(
    vecs: np.ndarray, cells: np.ndarray, vocab: np.ndarray, spec: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A page's postings as ``spec`` files them: token, (n, 2) cell, score (float16).

    Each cell goes under its ``best`` tokens, those within ``margin`` of its best cosine only (None: all
    ``best``); with ``peaks``, a token filed at a cell whose left or right neighbour on the grid row files it
    with a higher score is dropped there. ``penalty`` files a token with its cosine less ``penalty`` times what
    it falls short of the cell's best token's, so stage 1 ranks a page by cells that read as the query's token
    rather than by a look-alike reading. A query token longer than the pieces its cells read best (" govern"
    over cells reading " g", "ov", "ern") is in no cell's best 2 and the page falls out of its list however
    far stage 1 reads: more tokens a cell reach it, and a token read over the 3-4 cells of one character or
    piece is one occurrence to a chain, so its row peaks alone find the same chains with fewer postings."""
    ids, scores = best_tokens(vecs, vocab, int(spec.get("best", BEST)))
    return select_postings(ids, scores, cells, spec)


def select_postings(
    ids: np.ndarray, scores: np.ndarray, cells: np.ndarray, spec: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`file_cells` from each cell's best tokens and cosines (``best_tokens``, at least ``best`` of them)."""
    n, best = len(ids), int(spec.get("best", BEST))
    ids, scores = ids[:, :best], scores[:, :best]
    margin = spec.get("margin")
    keep = np.ones(ids.shape, bool) if margin is None else scores >= scores[:, :1] - float(margin)
    penalty = float(spec.get("penalty", 0.0))
    if penalty:  # a token the cell reads as another counts less, as the vocabulary check weighs it in stage 2
        scores = scores - penalty * (scores[:, :1] - scores)
    tok, score = ids[keep], scores[keep].astype(np.float16)
    cell = np.repeat(np.asarray(cells, dtype=np.int16).reshape(n, 2), best, axis=0)[keep.reshape(-1)]
    if spec.get("peaks") and len(tok):
        key = (tok.astype(np.int64) << 32) | (cell[:, 0].astype(np.int64) << 16) | cell[:, 1].astype(np.int64)
        order = np.argsort(key)
        k, v = key[order], score[order].astype(np.float32)
        higher = np.zeros(len(k), bool)
        for side in (-1, 1):  # the same token on the same row, one column to the left / right
            at = np.clip(np.searchsorted(k, k + side), 0, len(k) - 1)
            higher |= (k[at] == k + side) & (v[at] > v)
        kept = np.sort(order[~higher])
        tok, cell, score = tok[kept], cell[kept], score[kept]
    return tok.astype(np.int32), cell, score


@dataclass
class _Lists:
    """Postings sorted by token, then score (best first); ``starts[t]:starts[t + 1]`` is token t's list."""

    starts: np.ndarray
    page: np.ndarray
    cell: np.ndarray
    score: np.ndarray

    @classmethod
    def build(cls, tok: np.ndarray, page: np.ndarray, cell: np.ndarray, score: np.ndarray, n_tokens: int) -> _Lists:
        """Sorted by one integer key (token, then score descending) with a stable sort: a rebuild hands it the
        sorted base followed by the few fresh postings, which it merges in about linear time (a lexsort of
        20M postings took 18 s)."""
        bits = np.asarray(score, np.float16).view(np.uint16).astype(np.int64)
        ordered = np.where(bits & 0x8000, 0xFFFF - bits, bits | 0x8000)  # float16 order as integers
        key = (np.asarray(tok, np.int64) << 16) | (0xFFFF - ordered)
        order = np.argsort(key, kind="stable")
        starts = np.searchsorted(key[order] >> 16, np.arange(n_tokens + 1)).astype(np.int64)
        return cls(starts, page[order], cell[order], np.asarray(score, np.float16)[order])

    @classmethod
    def empty(cls, n_tokens: int) -> _Lists:
        return cls(
            np.zeros(n_tokens + 1, np.int64), np.zeros(0, np.int32), np.zeros((0, 2), np.int16), np.zeros(0, np.float16)
        )

    def __len__(self) -> int:
        return len(self.page)

    def top(self, token: int, k: int, dead: np.ndarray | None, allowed: np.ndarray | None) -> tuple[np.ndarray, ...]:
        """Token's first ``k`` postings, skipping ``dead`` pages and keeping ``allowed`` ones only (sorted
        ids, or None), read from the list's start in growing spans."""
        s, e = int(self.starts[token]), int(self.starts[token + 1])
        if dead is None and allowed is None:
            e = min(e, s + k)
            return self.page[s:e], self.score[s:e], self.cell[s:e]
        parts: list[np.ndarray] = []
        have, span = 0, max(k, 1024)
        while s < e and have < k:
            stop = min(e, s + span)
            pg = self.page[s:stop]
            keep = np.ones(len(pg), bool)
            if dead is not None:
                keep &= ~np.isin(pg, dead, assume_unique=False)
            if allowed is not None:
                keep &= np.isin(pg, allowed)
            at = np.flatnonzero(keep) + s
            parts.append(at[: k - have])
            have += len(parts[-1])
            s, span = stop, span * 4
        at = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return self.page[at], self.score[at], self.cell[at]


@dataclass
class PostingsIndex:
    """Cells filed under their best vocabulary tokens; the same use as :class:`.vectors.VectorIndex`."""

    dim: int
    spec: dict
    vocab: np.ndarray  # (V, dim) the model's vocabulary in index space, unit rows
    page_cells: dict[int, int] = field(default_factory=dict)  # page id -> cells of it indexed
    page_postings: dict[int, int] = field(default_factory=dict)  # page id -> its postings (cells x tokens filed)
    generation: int = 0
    saved_generation: int = -1
    base: _Lists | None = None
    base_pages: set[int] = field(default_factory=set)  # pages whose postings are in ``base`` (dead or not)
    dead: set[int] = field(default_factory=set)  # pages removed since ``base`` was built
    # pages added since: page id -> (token, cell, score) of its postings
    fresh: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    _fresh_lists: _Lists | None = field(default=None, repr=False, compare=False)
    _dead_sorted: np.ndarray | None = field(default=None, repr=False, compare=False)

    @classmethod
    def empty(cls, dim: int, spec: dict, vocab: np.ndarray) -> PostingsIndex:
        if vocab.ndim != 2 or vocab.shape[1] != dim:
            raise ValueError(f"postings need the vocabulary in index space (V, {dim}), got {vocab.shape}")
        return cls(dim=dim, spec=dict(spec), vocab=np.ascontiguousarray(vocab, dtype=np.float32))

    @property
    def ntotal(self) -> int:
        return int(sum(self.page_cells.values()))

    # --- content -----------------------------------------------------------------------------------
    def add_page(self, page_id: int, vecs: np.ndarray, cells: np.ndarray | None = None) -> None:
        """File a page's cells under their best tokens; ``cells``: their (n, 2) grid cells (row, column),
        which postings need (a hit without its place cannot be chained)."""
        if page_id in self.page_cells:
            self.remove_pages([page_id])
        n = len(vecs)
        if n and cells is None:
            raise ValueError("postings need each cell's place on the grid")
        self.page_cells[page_id] = n
        self.page_postings[page_id] = 0
        if n:
            self.fresh[page_id] = file_cells(vecs, np.asarray(cells).reshape(n, 2), self.vocab, self.spec)
            self.page_postings[page_id] = len(self.fresh[page_id][0])
        self._fresh_lists = None

    def remove_pages(self, page_ids) -> None:
        for p in page_ids:
            p = int(p)
            if self.page_cells.pop(p, None) is None:
                continue
            self.page_postings.pop(p, None)
            if self.fresh.pop(p, None) is not None:
                self._fresh_lists = None
            if p in self.base_pages:
                self.dead.add(p)
                self._dead_sorted = None

    def compact(self) -> None:
        """Rebuild the base in memory from the live pages' postings (dead ones dropped, fresh ones filed)."""
        if not self.fresh and not self.dead:
            return
        n = self._live_postings()
        out = _Lists(
            np.zeros(len(self.vocab) + 1, np.int64),
            np.empty(n, np.int32),
            np.empty((n, 2), np.int16),
            np.empty(n, np.float16),
        )
        self._merge_into(out)
        self._rebuilt(out)

    def _live_postings(self) -> int:
        return int(sum(self.page_postings.values()))

    def _rebuilt(self, base: _Lists) -> None:
        self.base = base
        self.base_pages = set(self.page_cells)
        self.fresh, self.dead = {}, set()
        self._fresh_lists = self._dead_sorted = None

    def _merge_into(self, out: _Lists) -> None:
        """Write the live postings, sorted, into ``out`` (its arrays of the live length, ``starts`` filled here):
        the base (already sorted) and the fresh pages' postings merged one range of tokens at a time, so a
        rebuild holds ~``_MERGE_POSTINGS`` postings in memory, not the whole table (20 GB at 10^5 scanned
        pages), and ``out`` can be the memory-mapped files of the next snapshot."""
        V = len(self.vocab)
        dead = self._dead()
        f_tok, f_page, f_cell, f_score = self._fresh_parts() if self.fresh else _NO_POSTINGS
        f_order = np.argsort(f_tok, kind="stable")
        f_starts = np.searchsorted(f_tok[f_order], np.arange(V + 1))
        b = self.base
        b_starts = np.asarray(b.starts) if b is not None and len(b) else np.zeros(V + 1, np.int64)
        upto = b_starts + f_starts  # postings of the tokens before each token, base and fresh
        at, t0 = 0, 0
        while t0 < V:
            # the next range of tokens: ~_MERGE_POSTINGS postings, at least one token
            t1 = min(V, max(t0 + 1, int(np.searchsorted(upto, upto[t0] + _MERGE_POSTINGS, side="right")) - 1))
            parts: list[tuple[np.ndarray, ...]] = []
            if b is not None and b_starts[t1] > b_starts[t0]:
                s, e = int(b_starts[t0]), int(b_starts[t1])
                page = np.asarray(b.page[s:e])
                keep = ~np.isin(page, dead) if dead is not None else slice(None)
                tok = np.repeat(np.arange(t0, t1, dtype=np.int32), np.diff(b_starts[t0 : t1 + 1]))
                parts.append((tok[keep], page[keep], np.asarray(b.cell[s:e])[keep], np.asarray(b.score[s:e])[keep]))
            if f_starts[t1] > f_starts[t0]:
                sel = f_order[f_starts[t0] : f_starts[t1]]
                parts.append((f_tok[sel], f_page[sel], f_cell[sel], f_score[sel]))
            if parts:
                tok, page, cell, score = (np.concatenate(col) for col in zip(*parts))
                part = _Lists.build(tok - t0, page, cell, score, t1 - t0)
                m = len(part)
                out.page[at : at + m], out.cell[at : at + m], out.score[at : at + m] = part.page, part.cell, part.score
                out.starts[t0 : t1 + 1] = part.starts + at
                at += m
            else:
                out.starts[t0 : t1 + 1] = at
            t0 = t1
        if at != len(out.page):
            raise RuntimeError(f"postings rebuild wrote {at} postings, the live pages hold {len(out.page)}")

    # --- search ------------------------------------------------------------------------------------
    def tokens_of(self, q: np.ndarray) -> np.ndarray:
        """The vocabulary row each query row is (its nearest)."""
        return np.asarray((np.asarray(q, np.float32) @ self.vocab.T).argmax(axis=1), np.int64)

    def search(
        self, q: np.ndarray, k: int, pages: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per query row: page ids, cosines and (n, 2) grid cells of the ``k`` best cells filed under its
        token, among ``pages`` only if given (sorted ids)."""
        q = np.ascontiguousarray(q, dtype=np.float32)
        if not self.page_cells or len(q) == 0 or k <= 0 or (pages is not None and len(pages) == 0):
            return [_EMPTY for _ in q]
        allowed = None if pages is None else np.asarray(pages, np.int64)
        dead = self._dead()
        fresh = self._fresh()
        out = []
        for t in self.tokens_of(q).tolist():
            got = [lst.top(t, k, d, allowed) for lst, d in ((self.base, dead), (fresh, None)) if lst is not None]
            pg = np.concatenate([g[0] for g in got]).astype(np.int64)
            sc = np.concatenate([g[1] for g in got]).astype(np.float32)
            ce = np.concatenate([g[2] for g in got]).astype(np.int64).reshape(-1, 2)
            if len(got) > 1:  # the base's and the fresh pages' lists, each best first
                sel = np.argsort(-sc, kind="stable")[:k]
                pg, sc, ce = pg[sel], sc[sel], ce[sel]
            out.append((pg, sc, ce))
        return out

    def _dead(self) -> np.ndarray | None:
        if not self.dead:
            return None
        if self._dead_sorted is None:
            self._dead_sorted = np.sort(np.fromiter(self.dead, np.int64, len(self.dead)))
        return self._dead_sorted

    def _fresh(self) -> _Lists | None:
        if not self.fresh:
            return None
        if self._fresh_lists is None:
            self._fresh_lists = _Lists.build(*self._fresh_parts(), len(self.vocab))
        return self._fresh_lists

    def _fresh_parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The fresh pages' postings as four arrays: token, page, cell, score."""
        fresh = list(self.fresh.items())
        return (
            np.concatenate([t for _, (t, _, _) in fresh]),
            np.concatenate([np.full(len(t), p, np.int32) for p, (t, _, _) in fresh]),
            np.concatenate([c for _, (_, c, _) in fresh]),
            np.concatenate([sc for _, (_, _, sc) in fresh]),
        )

    # --- persistence -------------------------------------------------------------------------------
    def save(self, folder: Path) -> float:
        """Rebuild the base, write it as a snapshot and make that current atomically (:func:`.vectors.save_snapshot`);
        returns the seconds it took."""
        return save_snapshot(self, folder)

    def write_snapshot(self, folder: Path) -> None:
        """Rebuild the base straight into the snapshot's files and write its header (under the snapshot lock);
        the new base is then read from those files, memory-mapped."""
        token = f"{self.generation:012d}-{secrets.token_hex(4)}"
        path = {name: folder / f"index-{token}.{name}.npy" for name in ("starts", "page", "cell", "score")}
        if self.fresh or self.dead or self.base is None:
            n = self._live_postings()
            if n:  # the rebuild written into the files themselves (an empty file cannot be memory-mapped)
                out = _Lists(
                    np.zeros(len(self.vocab) + 1, np.int64),
                    np.lib.format.open_memmap(path["page"], "w+", np.int32, (n,)),
                    np.lib.format.open_memmap(path["cell"], "w+", np.int16, (n, 2)),
                    np.lib.format.open_memmap(path["score"], "w+", np.float16, (n,)),
                )
                self._merge_into(out)
                for name in ("page", "cell", "score"):
                    getattr(out, name).flush()
                    _fsync_file(path[name])
                save_npy(path["starts"], out.starts)
            else:
                for name, arr in zip(("starts", "page", "cell", "score"), astuple(_Lists.empty(len(self.vocab)))):
                    save_npy(path[name], arr)
        else:  # nothing changed since the base was built (an index saved again as it was loaded): copied as it is
            for name in ("starts", "page", "cell", "score"):
                save_npy(path[name], np.asarray(getattr(self.base, name)))
        pages = np.array(
            [(p, n, self.page_postings[p]) for p, n in sorted(self.page_cells.items())], dtype=np.int64
        ).reshape(-1, 3)
        save_npy(folder / f"index-{token}.pages.npy", pages)
        base = _load_lists(folder, token)
        header = {
            "token": token,
            "generation": self.generation,
            "spec": self.spec,
            "dim": self.dim,
            "ntotal": self.ntotal,
            "pages": len(pages),
            "postings": len(base),
            "faiss_bytes": int(sum(a.nbytes for a in (base.starts, base.page, base.cell, base.score, pages))),
        }
        _atomic_write(folder / "index.json", json.dumps(header).encode())
        self._rebuilt(base)
        self.saved_generation = self.generation
        remove_stale_snapshots(folder, keep=token)

    @classmethod
    def load(cls, folder: Path, vocab: np.ndarray) -> PostingsIndex | None:
        """The current snapshot, memory-mapped, or None if there is none (or it is not postings)."""
        for _ in range(3):  # a writer may swap snapshots between reading the header and the files
            header = _read_header(folder)
            if header is None or header.get("spec", {}).get("type") != "postings":
                return None
            token = header["token"]
            try:
                lists = _load_lists(folder, token)
                pages = np.load(folder / f"index-{token}.pages.npy", allow_pickle=False)
            except (FileNotFoundError, ValueError):
                time.sleep(0.05)
                continue
            if len(lists.starts) != len(vocab) + 1 or int(header["dim"]) != vocab.shape[1]:
                return None
            pi = cls.empty(int(header["dim"]), header["spec"], vocab)
            pi.base = lists
            pi.page_cells = {int(row[0]): int(row[1]) for row in pages}
            # (page, cells) in a snapshot written before the filing rule could vary: ``best`` postings a cell
            best = int(header["spec"].get("best", BEST))
            pi.page_postings = {int(row[0]): int(row[2]) if len(row) > 2 else best * int(row[1]) for row in pages}
            pi.base_pages = set(pi.page_cells)
            pi.generation = pi.saved_generation = int(header["generation"])
            if pi.ntotal != int(header["ntotal"]):
                return None
            return pi
        return None


def _load_lists(folder: Path, token: str) -> _Lists:
    """A snapshot's lists, memory-mapped."""
    parts = {
        name: np.load(folder / f"index-{token}.{name}.npy", mmap_mode="r", allow_pickle=False)
        for name in ("starts", "page", "cell", "score")
    }
    return _Lists(parts["starts"], parts["page"], parts["cell"], parts["score"])
