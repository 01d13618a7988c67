"""The vector index over cells (FAISS), derived data that can always be rebuilt from the feature store.

Vector ids encode the page: ``id = page_id << CELL_BITS | cell``, so a hit maps to its page without a
lookup and a page's vectors are removed by id. The index type is chosen by size (see
:func:`choose_spec`): exhaustive inner product over int8 codes (``IndexIDMap(IndexScalarQuantizer
8bit_direct_signed)`` of the unit vectors times 127: a score off by ~0.002, which stage 2's exact scoring
on the stored features absorbs; a quarter of float32's bytes, and decoded ~6x faster than float16, which
indexes saved before still use) up to ``flat_max_vectors``,
then token postings (:mod:`.postings`) where the indexing model offers its vocabulary, else an IVF with 4-bit
scalar quantisation (8-bit up to the store's ``sq4_min_vectors``) trained on a sample of stored features,
re-chosen (more lists) each time the index has grown 8-fold. The flat index answers a query of
several token rows by one blocked scan of its codes for all rows (:func:`scan_top_k`), not FAISS's
pass per row. Exact duplicate cells of a page
are indexed once, and optionally runs of near-identical cells too (:func:`index_vectors`); the
feature store keeps every cell.

Every index type is saved: a process that searches loads the snapshot and adds only what was
committed since, instead of rebuilding the index from the feature store, which costs a CLI search several
times the load (rebuilding re-adds every page's vectors).

On disk (``<home>/vectors/``)::

    index.json                 {"token", "generation", "spec", "ntotal", ...}  <- the commit point
    index-<token>.faiss        faiss.write_index of the index at that generation
    index-<token>.pages.npy    (n, 2) int64: page id, vectors of that page
    index-<token>.cells.npy    (ntotal, 2) int16: each vector's grid cell (row, column), pages in the
                               order above (-1: not known); stage 1 of the search chains hits by them

A snapshot is written as new files, then ``index.json`` is replaced atomically (write temp, fsync,
os.replace); older files are deleted after; all under ``snapshot.lock`` (flock), and a snapshot older
than the current one is not written. A crash at any moment leaves ``index.json`` naming a complete
older snapshot (or none); the store re-adds/removes the pages that changed since its generation.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

import faiss
import numpy as np

from .records import PageFeatures

CELL_BITS = 20  # up to 1M vectors per page (TokenOCR's 12-tile page has 196,608 cells)
CELL_MASK = (1 << CELL_BITS) - 1
SCAN_BLOCK = 16384  # code rows decoded at once by the blocked scan (6 MB of float32 at d=96)
# int8 flat codes: a unit vector's components times INT8_SCALE, stored by FAISS as uint8 (value + 128)
INT8_SCALE = 127.0
# from this many query rows the blocked scan beats FAISS's one pass per row (`bench/query_latency.py --scan-ab`)
SCAN_MIN_QUERIES = 5
_KEEP_DECODED = False  # see keep_flat_decoded


def keep_flat_decoded(on: bool = True) -> None:
    """In this process, keep a float32 copy of a flat index's codes for the blocked scan.

    For a process that searches all day (the API's search workers): each search of 5+ token rows then
    skips decoding all n*d codes, about a quarter of its CPU time on the dev benchmark's 137 pages (762k
    vectors), for 4 more bytes a value of memory (290 MB there; at most 770 MB, at ``flat_max_vectors``
    2M and d 96). The copy is rebuilt at the first search after pages are added or removed."""
    global _KEEP_DECODED
    _KEEP_DECODED = on


def scan_top_k(codes: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` inner products of every row of ``q`` (nq, d) with the flat index's ``codes`` (n, d): int8
    (uint8 holding value + 128, scaled by ``INT8_SCALE``), float16, or float32 (decoded already); scores (nq, k)
    best first, and their row numbers in ``codes``.

    FAISS's flat scalar-quantiser search decodes every code once *per query row*; this decodes a block
    once for all rows and scores it with one matrix product (one BLAS call). A row's k-th best score so
    far is a floor for its final k-th best, so only scores at or above it are kept, and the floor is
    raised whenever some row holds 2k candidates.
    """
    n, d = codes.shape
    nq, k = len(q), min(k, len(codes))
    q = np.ascontiguousarray(q, dtype=np.float32)
    block = np.empty((min(n, max(SCAN_BLOCK, k)), d), dtype=np.float32)
    floor = np.full(nq, -np.inf, dtype=np.float32)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    held = np.zeros(nq, dtype=np.int64)
    by_torch = "torch" in sys.modules
    b0 = 0
    while b0 < n:
        f = block[: min(len(block), n - b0)]
        if codes.dtype == np.float32:  # already decoded (keep_flat_decoded)
            f = codes[b0 : b0 + len(f)]
        else:
            decode_codes(codes[b0 : b0 + len(f)], f, by_torch)
        s = f @ q.T  # (b, nq): in this orientation OpenBLAS is ~2x faster for few query rows
        if b0 == 0 and len(s) > k:
            floor = -np.partition(-s, k - 1, axis=0)[k - 1]
        # one flat index array, split by divmod: 2-D np.nonzero costs twice as much on a sparse mask
        at = np.flatnonzero(s >= floor)
        c, r = np.divmod(at, nq)
        parts.append((r, c + b0, s.ravel()[at]))
        held += np.bincount(r, minlength=nq)
        b0 += len(f)
        if b0 >= n or held.max() > 2 * k:
            parts, held = _keep_best(parts, nq, k, floor, final=b0 >= n)
    r, c, v = parts[0]
    return v.reshape(nq, k), c.reshape(nq, k)


def decode_codes(src: np.ndarray, out: np.ndarray, by_torch: bool = False) -> None:
    """``out[:] =`` the vectors ``src`` codes (int8 as FAISS stores it, or float16), as float32."""
    if src.dtype == np.uint8:
        np.subtract(src, 128, out=out, dtype=np.float32)
        out *= np.float32(1.0 / INT8_SCALE)
    else:
        _float16_to_32(src, out, by_torch)


def _float16_to_32(src: np.ndarray, out: np.ndarray, by_torch: bool) -> None:
    """``out[:] = src`` (float16 -> float32). torch's vectorised conversion beats numpy's on CPUs without
    fast half-precision conversion, but importing torch costs a CLI search 2-3 s, more than numpy's
    conversion of ~10^9 values: torch is used only when it is loaded anyway (a server, the indexer). It
    converts in pieces below its parallel grain (32768 values), so it stays on the calling thread like the
    rest of a search (which runs with one BLAS thread)."""
    if not by_torch:
        out[:] = src
        return
    import torch

    step = max(1, 32768 // src.shape[1])
    s, o = torch.from_numpy(src), torch.from_numpy(out)
    for i in range(0, len(src), step):
        o[i : i + step].copy_(s[i : i + step])


def _keep_best(parts: list, nq: int, k: int, floor: np.ndarray, final: bool = False) -> tuple[list, np.ndarray]:
    """Each row's best ``k`` candidates, grouped by row (and, if ``final``, best first, ties to the lower
    row number); raises ``floor`` (in place) to the k-th score of every row that has k."""
    r, c, v = (np.concatenate(x) for x in zip(*parts))
    order = np.argsort(r.astype(np.uint16) if nq < 1 << 16 else r, kind="stable")  # radix sort for few rows
    c, v = c[order], v[order]
    ends = np.cumsum(np.bincount(r, minlength=nq))
    cs, vs = [], []
    for i in range(nq):
        row = slice(ends[i - 1] if i else 0, ends[i])
        ci, vi = c[row], v[row]
        if len(vi) > k:
            sel = np.argpartition(-vi, k - 1)[:k]
            ci, vi = ci[sel], vi[sel]
        if len(vi) >= k:
            floor[i] = vi.min()
        if final:
            o = np.lexsort((ci, -vi))
            ci, vi = ci[o], vi[o]
        cs.append(ci)
        vs.append(vi)
    held = np.array([len(x) for x in vs], dtype=np.int64)
    return [(np.repeat(np.arange(nq), held), np.concatenate(cs), np.concatenate(vs))], held


# token postings of a new index: a cell under its 3 best tokens within 0.1 of its best cosine, a token at its row
# peaks only (6 % fewer postings than every cell's best 2, and stage 1 found more relevant pages), each filed with
# its cosine less twice what it falls short of the cell's best, so a cell that reads as another token counts less
# (more relevant pages among stage 1's candidates, as many negatives answered: BENCHMARKS.md, "Filing rule of
# token postings"). An index keeps the rule it was built with.
FILING = {"best": 3, "margin": 0.1, "peaks": True, "penalty": 2.0}


def choose_spec(n_vectors: int, flat_max_vectors: int, sq4_min_vectors: int = 0, postings: bool = False) -> dict:
    """The index type for ``n_vectors``: exact while affordable, then token postings where the model's
    vocabulary is known (``postings``; :mod:`.postings`), else IVF with 4-bit scalar quantisation (d/2
    bytes a vector: stage 1 only picks candidate pages, which stage 2 scores on the stored features; at 2,500
    pages the dev queries read as well as with 8-bit codes, BENCHMARKS.md "Index format and scale"), or 8-bit
    (d bytes) up to ``sq4_min_vectors``. (Not PQ: its training takes minutes on two cores where SQ trains in a
    second.)"""
    if n_vectors <= flat_max_vectors:
        return {"type": "flat"}
    if postings:  # the filing rule: ``postings.file_cells``
        return {"type": "postings", **FILING, "chosen_at": int(n_vectors)}
    # 2 sqrt(n) lists (not the usual 4-16 sqrt(n)): search asks for thousands of neighbours per token,
    # which fewer, larger lists serve as well, and training (k-means, ~n_lists^2) stays in seconds
    # (2.2M vectors: 2939 lists, ~15 s on one core; 4 sqrt(n) took 2 minutes)
    nlist = int(max(1, min(2 * math.sqrt(n_vectors), n_vectors // 39, 65536)))
    kind = "ivf-sq4" if n_vectors > sq4_min_vectors else "ivf-sq8"
    return {"type": kind, "nlist": nlist, "chosen_at": int(n_vectors)}


def describe_spec(spec: dict) -> str:
    if spec["type"] == "flat":
        return "flat-ip-int8"
    if spec["type"] == "postings":
        margin, peaks, penalty = spec.get("margin"), spec.get("peaks"), spec.get("penalty")
        return (
            f"postings{spec['best']}"
            + (f"-m{margin:g}" if margin is not None else "")
            + ("-peaks" if peaks else "")
            + (f"-p{penalty:g}" if penalty else "")
        )
    return f"ivf{spec['nlist']},{spec['type'].split('-')[1]}"


def distinct_rows(vecs: np.ndarray) -> np.ndarray:
    """The rows of a page worth indexing: exact duplicates dropped (pages painted from a PDF text layer
    repeat one token vector over all the cells of the token; one copy finds the page as well as all)."""
    return vecs[distinct_row_indices(vecs)] if len(vecs) >= 2 else vecs


def distinct_row_indices(vecs: np.ndarray) -> np.ndarray:
    """Indices of the first copy of each distinct row, in order (what :func:`distinct_rows` keeps)."""
    if len(vecs) < 2:
        return np.arange(len(vecs))
    # group rows by a random projection (equal rows -> equal keys), then confirm equality row by row
    key = vecs.astype(np.float64) @ np.random.default_rng(12345).standard_normal(vecs.shape[1])
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    keep = np.zeros(len(vecs), dtype=bool)
    keep[first] = True
    keep |= np.any(vecs != vecs[first[inverse]], axis=1)  # a (vanishingly unlikely) key collision
    return np.flatnonzero(keep)


def index_vectors(pf: PageFeatures, merge_cos: float | None = None) -> np.ndarray:
    """The vectors of a page that go into FAISS (the feature store keeps every cell for re-scoring).

    With ``merge_cos``, a cell whose left neighbour in its grid row is present and whose cosine with
    that run's first (indexed) cell is >= ``merge_cos`` is left out: inside a token the cells repeat
    nearly one vector. No drift: every left-out cell is within ``merge_cos`` of an indexed one, so a
    query's best cell score on the page drops by at most sqrt(2 - 2 merge_cos). Exact duplicates are
    then dropped (:func:`distinct_rows`)."""
    return pf.feats[index_cells(pf, merge_cos)]


def index_cells(pf: PageFeatures, merge_cos: float | None = None) -> np.ndarray:
    """Rows of ``pf`` that :func:`index_vectors` indexes, in index order (their grid cells are where
    the vector index's hits lie: ``pf.ys[rows]``, ``pf.xs[rows]``)."""
    rows = np.arange(len(pf.ys))
    if merge_cos is not None and len(rows) > 1:
        rows = rows[_row_run_heads(pf.ys, pf.xs, pf.feats, merge_cos)]
    return rows[distinct_row_indices(pf.feats[rows])]


def _row_run_heads(ys: np.ndarray, xs: np.ndarray, feats: np.ndarray, tau: float) -> np.ndarray:
    """Mask of the cells that start a run (vectorised over rows, one step per grid column)."""
    keep = np.ones(len(ys), dtype=bool)
    rows = int(ys.max()) + 1
    head = np.zeros((rows, feats.shape[1]), dtype=np.float32)  # current run's first vector, per row
    last_x = np.full(rows, -2, dtype=np.int64)  # column of the row's previous cell
    order = np.argsort(xs, kind="stable")
    cols, starts = np.unique(xs[order], return_index=True)
    for x, cells in zip(cols.tolist(), np.split(order, starts[1:])):
        y = ys[cells]
        joins = (last_x[y] == x - 1) & (np.einsum("ij,ij->i", feats[cells], head[y]) >= tau)
        keep[cells[joins]] = False
        new = cells[~joins]
        head[ys[new]] = feats[new]
        last_x[y] = x
    return keep


@dataclass
class VectorIndex:
    dim: int
    spec: dict
    index: faiss.Index
    page_cells: dict[int, int] = field(default_factory=dict)  # page id -> vectors it has in the index
    # page id -> (n, 2) int16 grid cell (row, column) of each of its vectors, in id order; pages of a
    # snapshot saved without them have none (their hits then have no position)
    positions: dict[int, np.ndarray] = field(default_factory=dict)
    generation: int = 0  # DB generation this content reflects
    saved_generation: int = -1  # generation of the snapshot on disk (-1: none)
    nprobe: int | None = None
    _decoded: np.ndarray | None = field(default=None, repr=False, compare=False)  # keep_flat_decoded's copy
    # flat index: its rows grouped by page (row numbers in page order, the pages, where each one starts)
    _by_page: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)
    # ``positions`` as arrays (pages with positions, sorted; where each starts in the table; its vectors; the
    # table): a search looks up every hit's cell at once, not page by page (thousands of pages a token)
    _cells: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = field(
        default=None, repr=False, compare=False
    )

    # --- construction ------------------------------------------------------------------------------
    @classmethod
    def empty(cls, dim: int, spec: dict, train_sample: np.ndarray | None = None, nprobe: int | None = None):
        index: faiss.Index
        if spec["type"] == "flat":
            sq = faiss.IndexScalarQuantizer(
                dim, faiss.ScalarQuantizer.QT_8bit_direct_signed, faiss.METRIC_INNER_PRODUCT
            )
            index = faiss.IndexIDMap(sq)
        elif spec["type"] in ("ivf-sq8", "ivf-sq4"):
            code = spec["type"].split("-")[1].upper()
            index = faiss.index_factory(dim, f"IVF{spec['nlist']},{code}", faiss.METRIC_INNER_PRODUCT)
            if train_sample is None or len(train_sample) == 0:
                raise ValueError("an IVF index needs a training sample")
            index.train(np.ascontiguousarray(train_sample, dtype=np.float32))
        else:
            raise ValueError(f"unknown vector index type {spec['type']!r}")
        vi = cls(dim=dim, spec=dict(spec), index=index, nprobe=nprobe)
        vi._set_nprobe()
        return vi

    def _set_nprobe(self) -> None:
        if self.spec["type"] != "flat":
            nlist = self.spec["nlist"]
            faiss.extract_index_ivf(self.index).nprobe = min(nlist, self.nprobe or max(16, nlist // 32))

    def describe(self) -> str:
        return describe_spec(self.spec)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    # --- content -----------------------------------------------------------------------------------
    def add_page(self, page_id: int, vecs: np.ndarray, cells: np.ndarray | None = None) -> None:
        """Index a page's vectors; ``cells``: their (n, 2) grid cells (row, column), if known."""
        if page_id in self.page_cells:
            self.remove_pages([page_id])
        self._decoded = self._by_page = self._cells = None
        n = len(vecs)
        if n:
            if n > CELL_MASK + 1:
                raise ValueError(f"a page may have at most {CELL_MASK + 1} indexed cells, got {n}")
            ids = (np.int64(page_id) << CELL_BITS) + np.arange(n, dtype=np.int64)
            x = np.ascontiguousarray(vecs, dtype=np.float32)
            if self._int8_flat():
                x = np.clip(np.rint(x * INT8_SCALE), -128, 127)
            self.index.add_with_ids(x, ids)
        self.page_cells[page_id] = n
        if cells is not None:
            self.positions[page_id] = np.asarray(cells, dtype=np.int16).reshape(n, 2)

    def remove_pages(self, page_ids) -> None:
        per_page = [
            (np.int64(p) << CELL_BITS) + np.arange(self.page_cells[p], dtype=np.int64)
            for p in page_ids
            if p in self.page_cells
        ]
        self._decoded = self._by_page = self._cells = None
        for p in page_ids:
            self.page_cells.pop(p, None)
            self.positions.pop(p, None)
        ids = np.concatenate(per_page) if per_page else np.zeros(0, np.int64)
        if len(ids):
            # faiss's stubs list only the IDSelector form; its Python wrapper also takes an id array
            self.index.remove_ids(ids)  # type: ignore[arg-type]

    def search(
        self, q: np.ndarray, k: int, pages: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per query row: page ids, scores and (n, 2) grid cells (row, column) of its top-``k`` vectors
        (cells -1 where the page's positions are not known). ``pages``: only these pages' vectors compete
        (a search filter's allowed pages, sorted): the flat index scans just their rows; an IVF index
        skips the others (``IDSelectorBatch``) and probes more lists (up to 4x) the fewer vectors they hold."""
        q = np.ascontiguousarray(q, dtype=np.float32)
        if self.ntotal == 0 or len(q) == 0 or k <= 0 or (pages is not None and len(pages) == 0):
            return [(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((0, 2), np.int64)) for _ in q]
        if pages is not None:
            scores, ids = self._search_pages(q, k, pages)
        else:
            # int8 codes are always scanned here: FAISS 1.15's search over 8bit_direct codes answers 0 for
            # every vector when d is a multiple of 32 (its AVX-512 path), and their decoding is cheap anyway
            many = len(q) >= SCAN_MIN_QUERIES or self._int8_flat()
            codes = self._flat_codes() if many else None
            if codes is not None and _KEEP_DECODED:
                codes = self._decoded_codes(codes)
            if codes is not None:
                scores, rows = scan_top_k(codes, q, k)
                ids = self._flat_ids()[rows]
            else:
                scores, ids = self.index.search(q, min(k, self.ntotal))
        known, starts, counts, table = self._cell_table()
        out = []
        for s, i in zip(scores, ids):
            ok = i >= 0
            pages, cell = i[ok] >> CELL_BITS, i[ok] & CELL_MASK
            where = np.full((len(pages), 2), -1, np.int64)
            if len(known):
                at = np.minimum(np.searchsorted(known, pages), len(known) - 1)
                placed = (known[at] == pages) & (cell < counts[at])
                where[placed] = table[starts[at[placed]] + cell[placed]]
            out.append((pages.astype(np.int64), s[ok].astype(np.float32), where))
        return out

    def _cell_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self._cells is None:
            known = np.sort(np.fromiter(self.positions.keys(), np.int64, len(self.positions)))
            parts = [self.positions[p] for p in known.tolist()]
            counts = np.array([len(a) for a in parts], dtype=np.int64)
            starts = np.cumsum(counts) - counts
            table = np.concatenate(parts) if parts else np.zeros((0, 2), np.int16)
            self._cells = (known, starts, counts, table)
        return self._cells

    def _decoded_codes(self, codes: np.ndarray) -> np.ndarray:
        if self._decoded is None or len(self._decoded) != len(codes):
            self._decoded = np.empty(codes.shape, dtype=np.float32)
            decode_codes(codes, self._decoded)
        return self._decoded

    def _search_pages(self, q: np.ndarray, k: int, pages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores and ids of the top-``k`` vectors of ``pages`` only, per row of ``q`` (-1 ids pad)."""
        pages = np.asarray(pages, dtype=np.int64)
        codes = self._flat_codes()
        if codes is not None:
            rows = self._page_rows(pages)
            if len(rows) == 0:
                return np.full((len(q), 0), -np.inf, np.float32), np.full((len(q), 0), -1, np.int64)
            if _KEEP_DECODED:
                codes = self._decoded_codes(codes)
            scores, sub = scan_top_k(codes[rows], q, k)
            return scores, self._flat_ids()[rows[sub]]
        counts = [self.page_cells.get(int(p), 0) for p in pages]
        n_allowed = int(sum(counts))
        if n_allowed == 0:
            return np.full((len(q), 0), -np.inf, np.float32), np.full((len(q), 0), -1, np.int64)
        ids = np.concatenate(
            [(np.int64(p) << CELL_BITS) + np.arange(n, dtype=np.int64) for p, n in zip(pages.tolist(), counts) if n]
        )
        # probe enough lists to hold about k/2 allowed vectors, at most 4x the usual: the lists nearest a token
        # hold its best allowed cells as they hold its best cells, and the selector skips the others without
        # scoring them, so a filter costs less than the unfiltered search (BENCHMARKS.md, "Filtered search
        # latency"; probing every list for a 1 % filter took 5x the unfiltered time)
        ivf = faiss.extract_index_ivf(self.index)
        want = int(math.ceil(min(k, n_allowed) * ivf.nlist / (2 * n_allowed)))
        nprobe = min(ivf.nlist, 4 * ivf.nprobe, max(ivf.nprobe, want))
        sel = faiss.IDSelectorBatch(ids)
        # faiss's stubs give SearchParametersIVF no arguments; its Python wrapper sets fields from keywords
        params = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)  # type: ignore[call-arg]
        scores, found = self.index.search(q, min(k, n_allowed), params=params)
        return scores, found

    def _page_rows(self, pages: np.ndarray) -> np.ndarray:
        """Row numbers of the flat index holding ``pages``' vectors (sorted page ids), in page order."""
        if self._by_page is None:
            of_row = self._flat_ids() >> CELL_BITS
            order = np.argsort(of_row, kind="stable")
            uniq, starts = np.unique(of_row[order], return_index=True)
            self._by_page = (order, uniq, np.append(starts, len(order)))
        order, uniq, bounds = self._by_page
        at = np.searchsorted(uniq, pages)
        at = at[(at < len(uniq)) & (uniq[np.minimum(at, len(uniq) - 1)] == pages)]
        if len(at) == 0:
            return np.zeros(0, np.int64)
        return np.concatenate([order[bounds[i] : bounds[i + 1]] for i in at.tolist()])

    def _flat_quantizer(self) -> faiss.IndexScalarQuantizer | None:
        if self.spec["type"] != "flat":
            return None
        # the flat type is IndexIDMap(IndexScalarQuantizer int8, or float16 in snapshots saved before)
        return cast(faiss.IndexScalarQuantizer, faiss.downcast_index(cast(faiss.IndexIDMap, self.index).index))

    def _int8_flat(self) -> bool:
        sq = self._flat_quantizer()
        return sq is not None and sq.code_size == self.dim

    def _flat_codes(self) -> np.ndarray | None:
        """The flat index's codes as an (n, d) array viewing FAISS's memory (uint8 for int8 codes, float16 in
        snapshots saved before; valid until the index changes; callers hold the keeper's lock); None for the
        IVF types."""
        sq = self._flat_quantizer()
        if sq is None or self.ntotal == 0:
            return None
        assert sq.code_size in (self.dim, 2 * self.dim), "flat index codes are int8 or float16"
        raw = faiss.rev_swig_ptr(sq.codes.data(), sq.ntotal * sq.code_size)
        dtype = np.uint8 if sq.code_size == self.dim else np.float16
        return np.frombuffer(raw, dtype=dtype).reshape(sq.ntotal, self.dim)

    def _flat_ids(self) -> np.ndarray:
        """Vector ids of the flat index's rows, in row order (a view of FAISS's id map)."""
        id_map = cast(faiss.IndexIDMap, self.index).id_map
        return faiss.rev_swig_ptr(id_map.data(), id_map.size()).view(np.int64)

    # --- persistence -------------------------------------------------------------------------------
    def save(self, folder: Path) -> float:
        """Write a snapshot and make it current atomically; returns the seconds it took."""
        return save_snapshot(self, folder)

    def write_snapshot(self, folder: Path) -> None:
        """Write this state's files and header (under the snapshot lock: :func:`save_snapshot`)."""
        token = f"{self.generation:012d}-{secrets.token_hex(4)}"
        faiss_path = folder / f"index-{token}.faiss"
        pages_path = folder / f"index-{token}.pages.npy"
        faiss.write_index(self.index, str(faiss_path))
        _fsync_file(faiss_path)
        pages = np.array(sorted(self.page_cells.items()), dtype=np.int64).reshape(-1, 2)
        # every vector's grid cell, pages in the order above (-1 rows: a page without known cells)
        cells = (
            np.concatenate([self.positions.get(int(p), np.full((int(n), 2), -1, np.int16)) for p, n in pages])
            if len(pages)
            else np.zeros((0, 2), np.int16)
        )
        for path, arr in ((pages_path, pages), (folder / f"index-{token}.cells.npy", cells.astype(np.int16))):
            save_npy(path, arr)
        header = {
            "token": token,
            "generation": self.generation,
            "spec": self.spec,
            "dim": self.dim,
            "ntotal": self.ntotal,
            "pages": len(pages),
            "faiss_bytes": faiss_path.stat().st_size,
        }
        _atomic_write(folder / "index.json", json.dumps(header).encode())
        self.saved_generation = self.generation
        remove_stale_snapshots(folder, keep=token)

    @classmethod
    def load(cls, folder: Path, nprobe: int | None = None) -> VectorIndex | None:
        """The current snapshot, or None if there is none (or it is unreadable)."""
        for _ in range(3):  # a writer may swap snapshots between reading the header and the files
            header = _read_header(folder)
            if header is None:
                return None
            token = header["token"]
            try:
                index = faiss.read_index(str(folder / f"index-{token}.faiss"))
                pages = np.load(folder / f"index-{token}.pages.npy", allow_pickle=False)
            except (FileNotFoundError, RuntimeError):
                time.sleep(0.05)
                continue
            try:
                cells = np.load(folder / f"index-{token}.cells.npy", allow_pickle=False)
            except (FileNotFoundError, ValueError):  # a snapshot from before positions were kept
                cells = None
            vi = cls(
                dim=int(header["dim"]),
                spec=header["spec"],
                index=index,
                page_cells={int(p): int(n) for p, n in pages},
                generation=int(header["generation"]),
                saved_generation=int(header["generation"]),
                nprobe=nprobe,
            )
            if vi.ntotal != int(header["ntotal"]) or sum(vi.page_cells.values()) != vi.ntotal:
                return None
            if cells is not None and len(cells) == vi.ntotal:
                ends = np.cumsum(pages[:, 1])
                for (p, n), end in zip(pages.tolist(), ends.tolist()):
                    if n and cells[end - n, 0] >= 0:
                        vi.positions[p] = cells[end - n : end]
            vi._set_nprobe()
            return vi
        return None


class Snapshotted(Protocol):
    """An index saved by :func:`save_snapshot` (:class:`VectorIndex`, :class:`.postings.PostingsIndex`)."""

    spec: dict
    generation: int
    saved_generation: int

    def write_snapshot(self, folder: Path) -> None: ...


def save_snapshot(index: Snapshotted, folder: Path) -> float:
    """Write ``index``'s snapshot and make it current atomically, unless one of the same type at its generation or
    a newer one is current already (another process saved it); returns the seconds it took."""
    t0 = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "snapshot.lock", "a+b") as lock:  # one process writes snapshots at a time
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        newest = _read_header(folder)
        newer = newest is not None and newest.get("generation", -1) >= index.generation
        if newer and newest is not None and newest.get("spec") == index.spec:
            index.saved_generation = index.generation  # another process saved this state (or a newer one)
        else:
            index.write_snapshot(folder)
    return time.perf_counter() - t0


def save_npy(path: Path, arr: np.ndarray) -> None:
    """``arr`` as a .npy file, on disk before the header that names it is written."""
    with open(path, "wb") as f:
        np.save(f, arr, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


def _read_header(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "index.json").read_text())
    except (OSError, ValueError):
        return None


def snapshot_bytes(folder: Path) -> int:
    """Size of the current snapshot's FAISS file (0 if none)."""
    return int((_read_header(folder) or {}).get("faiss_bytes", 0))


def remove_stale_snapshots(folder: Path, keep: str | None) -> None:
    """Delete snapshot files other than ``keep``'s and temp files (under the snapshot lock)."""
    for p in folder.glob("index-*"):
        if keep is None or keep not in p.name:
            try:
                p.unlink()
            except OSError:
                pass
    for p in folder.glob("*.tmp"):
        try:
            p.unlink()
        except OSError:
            pass


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
