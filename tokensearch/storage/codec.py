"""The codec: the map from model space (dim D) to index space (dim d) applied to cells and queries alike.

Small models (D <= ``max_identity_dim``) are stored as they come (identity), or, where the model's vocabulary
spans fewer dimensions than D (:func:`vocabulary_subspace`), in that subspace. Large ones (the official
TokenOCR, D = 2048/4096) are projected with an *uncentred* PCA matrix ``W`` (d x D, orthonormal rows)
fitted on the first cells written: ``x -> normalise(W x)``. Uncentred, because ranking uses inner
products: the top-d eigenvectors of the second-moment matrix keep most of every unit vector's energy,
so ``<Wq, Wx> ~ <q, x>``. The matrix is stored in the database (meta ``codec``) in the same
transaction as the first pages that use it.

A codec may also carry a :class:`CellCode`, the product quantiser the feature store packs model-read
cells with (``m`` bytes a cell instead of ``d``). It comes with the model (fitted on its features of
training pages) and is recorded with the codec, so a home reads its pages with the codebook it wrote
them with whatever the model ships later.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import cast

import numpy as np
from threadpoolctl import threadpool_limits

from ..vectornorm import l2_normalize


@dataclass
class Codec:
    in_dim: int
    out_dim: int
    matrix: np.ndarray | None = None  # (d, D) float32 orthonormal rows; None = identity
    # cells of a grid row joining their left neighbour's run when cos >= merge_cos are not indexed
    # in FAISS (see vectors.index_vectors); None: only exact duplicates are left out
    merge_cos: float | None = None
    # cells stacked in a grid column (one text line is 2-4 cells tall, and those cells read alike: median
    # cos 0.94 with the cell above, against 0.3 with the one beside) stored as one vector per run of up
    # to ``column_len`` cells within ``column_cos`` of the run's top cell (see :func:`merge_columns`);
    # None: every cell keeps its own vector
    column_cos: float | None = None
    column_len: int = 3
    # model-read cells stored as product-quantised codes (None: int8, as indexes written before keep)
    cells: CellCode | None = None

    @property
    def kind(self) -> str:
        return "identity" if self.matrix is None else "pca"

    def describe(self) -> str:
        name = "identity" if self.matrix is None else f"pca {self.in_dim}->{self.out_dim}"
        if self.column_cos is not None:
            name += f", column runs of <={self.column_len} cells at cos>={self.column_cos:g}"
        if self.cells is not None:
            name += f", cells {self.cells.describe()}"
        return name if self.merge_cos is None else f"{name}, runs merged at cos>={self.merge_cos:g}"

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(n, D) -> (n, d) float32 unit rows."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"expected vectors of dim {self.in_dim}, got shape {x.shape}")
        if self.matrix is not None:
            x = x @ self.matrix.T
        return l2_normalize(x).astype(np.float32, copy=False)

    def lift(self, x: np.ndarray) -> np.ndarray:
        """(n, d) index space -> (n, D) model-space unit rows whose projection is ``x`` (what lies outside the
        projection's subspace is not stored, and does not come back): ``apply(lift(x))`` is ``x``."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.out_dim:
            raise ValueError(f"expected vectors of dim {self.out_dim}, got shape {x.shape}")
        return x if self.matrix is None else l2_normalize(x @ self.matrix).astype(np.float32, copy=False)

    def apply_cells(self, ys: np.ndarray, xs: np.ndarray, x: np.ndarray) -> np.ndarray:
        """A page's cells (grid rows, columns, (n, D) features) in index space, column runs merged."""
        x = self.apply(x)
        return x if self.column_cos is None else merge_columns(ys, xs, x, self.column_cos, self.column_len)

    # --- persistence (meta row: JSON value + blob) --------------------------------------------------
    def to_meta(self) -> tuple[dict, bytes | None]:
        value = {"kind": self.kind, "in_dim": self.in_dim, "out_dim": self.out_dim, "merge_cos": self.merge_cos}
        if self.column_cos is not None:  # (absent from indexes written before: they keep every cell's vector)
            value.update(column_cos=self.column_cos, column_len=self.column_len)
        if self.cells is not None:  # (absent from indexes written before: their cells are int8)
            value["cells"] = self.cells.describe()
        if self.matrix is None and self.cells is None:
            return value, None
        buf = io.BytesIO()
        if self.cells is None:  # the blob indexes written before hold: the matrix alone
            np.save(buf, cast(np.ndarray, self.matrix).astype(np.float32), allow_pickle=False)
        else:
            arrays = {f"pq_{k}": v for k, v in self.cells.arrays().items()}
            if self.matrix is not None:
                arrays["matrix"] = self.matrix.astype(np.float32)
            np.savez(buf, allow_pickle=False, **arrays)
        blob = buf.getvalue()
        value["sha256"] = hashlib.sha256(blob).hexdigest()
        return value, blob

    @classmethod
    def from_meta(cls, value: dict, blob: bytes | None) -> Codec:
        matrix, cells = None, None
        if value["kind"] == "pca" or "cells" in value:
            if blob is None or hashlib.sha256(blob).hexdigest() != value.get("sha256"):
                raise ValueError("the stored codec matrix is missing or corrupt")
            if "cells" in value:
                with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
                    cells = CellCode(**{k[3:]: arrays[k] for k in arrays.files if k.startswith("pq_")})
                    matrix = arrays["matrix"] if "matrix" in arrays.files else None
            else:
                matrix = np.load(io.BytesIO(blob), allow_pickle=False)
        merge, column = value.get("merge_cos"), value.get("column_cos")
        return cls(
            int(value["in_dim"]),
            int(value["out_dim"]),
            matrix,
            None if merge is None else float(merge),
            None if column is None else float(column),
            int(value.get("column_len", 3)),
            cells,
        )


LUT_BITS = 15  # grid points of a part in CellCode's encoding table: 2^15 (32 KiB a part)
_TABLES: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}  # codebook sha256 -> its tables


class CellCode:
    """Product quantisation of unit rows: each row turned by an orthonormal ``rotation``, cut into ``m``
    sub-vectors of ``d/m`` values, each stored as the index (one byte) of the nearest of 256 centroids of
    its part.

    Why: a scanned page keeps ~5,500 text cells, and at 96 int8 values a cell they are most of its bytes in
    the feature store; at 2 values a part (48 bytes a cell at d = 96) they take half. The rotation (the
    principal directions, dealt out so each part's variances multiply to about the same; Ge et al.,
    "Optimized product quantization", the non-parametric solution) spreads the rows' energy evenly over
    the parts: at 3 values a part a cell's cosine with what is stored goes from ~0.983 without it to ~0.996
    (BENCHMARKS.md, "Index format and scale").
    """

    def __init__(self, centroids: np.ndarray, rotation: np.ndarray | None = None):
        c = np.ascontiguousarray(centroids, dtype=np.float32)
        if c.ndim != 3 or c.shape[1] != 256:
            raise ValueError(f"a cell codebook is (m, 256, d/m) centroids, got shape {c.shape}")
        if c.shape[2] > 3:
            raise ValueError(f"a cell codebook's parts hold at most 3 values (its lookup table), got {c.shape[2]}")
        d = c.shape[0] * c.shape[2]
        if rotation is not None and np.shape(rotation) != (d, d):
            raise ValueError(f"a cell codebook's rotation is ({d}, {d}), got shape {np.shape(rotation)}")
        self.centroids = c
        self.rotation = None if rotation is None else np.ascontiguousarray(rotation, dtype=np.float32)
        # the centroids as one flat table of items of a part's values: decoding gathers a cell's m at once
        self._items = np.ascontiguousarray(c.reshape(-1, c.shape[2])).view(np.dtype((np.void, 4 * c.shape[2])))
        self._offsets = (np.arange(c.shape[0]) * 256).astype(np.intp)
        self._lut: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def m(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[0] * self.centroids.shape[2])

    def describe(self) -> str:
        return f"{'opq' if self.rotation is not None else 'pq'}{self.m}x8"

    def arrays(self) -> dict[str, np.ndarray]:
        """What to save (``CellCode(**arrays)`` reads it back)."""
        return {"centroids": self.centroids} | ({} if self.rotation is None else {"rotation": self.rotation})

    @classmethod
    def fit(cls, sample: np.ndarray, m: int, seed: int = 0, rotate: bool = True) -> CellCode:
        """k-means (FAISS's) of each part of ``sample``'s (n, d) unit rows into 256 centroids (n >= 256),
        after the balancing rotation if ``rotate``."""
        import faiss

        x = l2_normalize(np.asarray(sample, dtype=np.float32)).astype(np.float32, copy=False)
        n, d = x.shape
        if d % m or n < 256:
            raise ValueError(f"{m} parts of {d} values need d divisible by m and >= 256 rows, got {n} x {d}")
        sub = d // m
        rotation = balanced_rotation(x, m) if rotate else None
        if rotation is not None:
            x = x @ rotation
        parts = []
        for i in range(m):
            km = faiss.Clustering(sub, 256)
            km.niter, km.seed, km.max_points_per_centroid = 25, seed + i, n
            centroids = faiss.IndexFlatL2(sub)  # (training leaves the centroids in it)
            km.train(np.ascontiguousarray(x[:, i * sub : (i + 1) * sub]), centroids)
            # read back through the index: once PyMuPDF is loaded, its SWIG module owns std::vector<float>'s
            # Python type, and FAISS's own vector_to_array (faiss.Kmeans) fails on the clustering's vector
            parts.append(centroids.reconstruct_n(0, 256))
        return cls(np.stack(parts), rotation)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """(n, d) rows -> (n, m) uint8: each part's centroid, the nearest one to the part's point on a grid.

        The exact search of 256 centroids costs ~0.2 s of CPU for a scanned page's 5,500 cells on two busy
        cores, as much as the model's reading of the page. A table of the nearest centroid of every point
        of a grid over the centroids' range (``LUT_BITS`` bits a part, dealt to its values by their spread;
        built once, ~1 s) answers a cell with one lookup a part; where a point lies nearer another centroid
        than its grid point does, the one taken is a neighbour, a little farther away."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected rows of dim {self.dim}, got shape {x.shape}")
        if self.rotation is not None:
            x = x @ self.rotation
        lut, lo, step, levels = self._table()
        parts = x.reshape(len(x), self.m, -1)
        level = np.clip(((parts - lo) / step).astype(np.int64), 0, levels - 1)
        flat = level[..., 0]
        for j in range(1, parts.shape[2]):
            flat = flat * levels[..., j] + level[..., j]
        return np.take_along_axis(lut, flat.T, axis=1).T.copy()

    def _table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(m, 2^LUT_BITS) nearest centroids of the grid's points; the grid's low corner, step and number of
        steps per value (built once per codebook in a process: every store a process opens on one model
        shares it)."""
        if self._lut is None:
            key = hashlib.sha256(self.centroids.tobytes()).hexdigest()
            if key not in _TABLES:
                _TABLES[key] = self._build_table()
            self._lut = _TABLES[key]
        return self._lut

    def _build_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        c = self.centroids
        m, _, sub = c.shape
        lo, hi = c.min(axis=1), c.max(axis=1)  # (m, sub): values outside are clipped to the grid's edge
        span = np.maximum(hi - lo, 1e-6)
        # bits per value: an even share, plus log2 of how much wider than the part's typical value it spreads
        bits = np.empty((m, sub), dtype=np.int64)
        for i in range(m):
            want = LUT_BITS / sub + np.log2(span[i] / np.exp(np.log(span[i]).mean()))
            b = np.maximum(np.floor(want), 1).astype(np.int64)
            while b.sum() > LUT_BITS:
                b[np.argmax(b)] -= 1
            while b.sum() < LUT_BITS:
                b[np.argmax(want - b)] += 1
            bits[i] = b
        levels = (1 << bits).astype(np.int64)
        step = span / levels
        lut = np.empty((m, 1 << LUT_BITS), dtype=np.uint8)
        norms = np.einsum("mkd,mkd->mk", c, c)
        for i in range(m):
            grid = np.indices(tuple(levels[i])).reshape(sub, -1).T.astype(np.float32) + 0.5  # cell centres
            lut[i] = np.argmax(2.0 * (lo[i] + grid * step[i]) @ c[i].T - norms[i], axis=1)
        return lut, lo[None], step[None], levels[None]

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(n, m) uint8 -> (n, d) float32 unit rows (the centroids side by side, turned back)."""
        codes = np.asarray(codes)
        rows = np.take(self._items, codes.astype(np.intp) + self._offsets).view(np.float32).reshape(len(codes), -1)
        if self.rotation is not None:
            rows = rows @ self.rotation.T
        rows /= np.maximum(np.sqrt(np.einsum("nd,nd->n", rows, rows)), 1e-12)[:, None]
        return rows


def balanced_rotation(x: np.ndarray, m: int) -> np.ndarray:
    """(d, d) orthonormal: ``x``'s principal directions as columns, grouped into ``m`` parts so each part's
    variances multiply to about the same (largest first, each to the open part of smallest product)."""
    d = x.shape[1]
    with threadpool_limits(limits=1, user_api="blas"):
        evals, evecs = np.linalg.eigh(np.cov(np.asarray(x, dtype=np.float64), rowvar=False))
    order = np.argsort(evals)[::-1]
    sub = d // m
    parts: list[list[int]] = [[] for _ in range(m)]
    log_product = np.zeros(m)
    for j in order.tolist():  # (variances are < 1: an empty part, product 1, must be served first)
        open_parts = [i for i in range(m) if len(parts[i]) < sub]
        i = min(open_parts, key=lambda i: (len(parts[i]) > 0, log_product[i], i))
        parts[i].append(j)
        log_product[i] += np.log(max(float(evals[j]), 1e-12))
    return np.ascontiguousarray(evecs[:, [j for p in parts for j in p]], dtype=np.float32)


def merge_columns(ys: np.ndarray, xs: np.ndarray, feats: np.ndarray, min_cos: float, max_len: int) -> np.ndarray:
    """``feats`` with each run of vertically adjacent cells replaced by the run's unit mean.

    Top to bottom, a cell joins the run of the cell right above it while the run is shorter than
    ``max_len`` and the cell is within ``min_cos`` of the run's top cell; otherwise it starts a run. The
    cells keep their places (localisation is unchanged); a run's cells store one vector (the feature
    store keeps repeated rows once, as a palette), so a page costs about half the bytes and its vector
    index about half the vectors.
    """
    ys = np.asarray(ys, dtype=np.int64).reshape(-1)
    xs = np.asarray(xs, dtype=np.int64).reshape(-1)
    n = len(ys)
    if n < 2 or max_len < 2:
        return feats
    width = int(xs.max()) + 1
    order = np.lexsort((xs, ys))  # raster order: each grid row after the one above it
    key = ys[order] * width + xs[order]
    above = np.searchsorted(key, key - width)  # the cell right above, where there is one
    above = np.where((above < n) & (key[np.minimum(above, n - 1)] == key - width), above, -1)
    f = np.ascontiguousarray(feats[order], dtype=np.float32)
    top = np.arange(n)  # each cell's run top (positions in raster order)
    length = np.ones(n, dtype=np.int64)
    rows = np.flatnonzero(np.r_[True, ys[order][1:] != ys[order][:-1]])
    for start, end in zip(rows, np.r_[rows[1:], n]):  # one grid row at a time: runs grow downwards
        sl = np.arange(start, end)
        up = above[sl]
        cand = sl[up >= 0]
        if not len(cand):
            continue
        up = above[cand]
        t = top[up]
        ok = (length[up] < max_len) & (np.einsum("nd,nd->n", f[cand], f[t]) >= min_cos)
        top[cand[ok]] = t[ok]
        length[cand[ok]] = length[up[ok]] + 1
    sums = np.zeros_like(f)
    np.add.at(sums, top, f)
    merged = sums[top]
    merged /= np.maximum(np.linalg.norm(merged, axis=1, keepdims=True), 1e-12)
    out = np.empty_like(merged)
    out[order] = merged
    return out


def identity_codec(dim: int) -> Codec:
    return Codec(in_dim=dim, out_dim=dim)


SUBSPACE_MULTIPLE = 8  # a subspace's dimension is rounded up to this (whole SIMD lanes for the int8 scans)


def vocabulary_subspace(vocab: np.ndarray, max_energy: float, seed: int = 0) -> Codec | None:
    """The subspace the model's token vectors span, as a codec: None where it is the whole space.

    A query is made of vocabulary vectors, and the model is trained to put each cell next to the token written
    there, so a cell's part outside the vocabulary's span is noise no query can score: the mini model's 6,000
    token vectors (D = 96) hold all but 2e-4 of their energy in 48 directions, and its cells' scores with every
    token move by 0.0008 (std) stored in them, as int8 (BENCHMARKS.md, "Index format and scale"). The
    smallest ``d`` leaving at most ``max_energy`` of the vocabulary's energy out, rounded up to
    ``SUBSPACE_MULTIPLE``; the directions turned by a seeded rotation, so the variance is spread over the ``d``
    values and the int8 code's per-row scale is not set by the first principal direction alone."""
    with threadpool_limits(limits=1, user_api="blas"):
        v = np.asarray(vocab, dtype=np.float64)
        _, sv, vt = np.linalg.svd(v, full_matrices=False)
        energy = sv**2
        tail = np.concatenate([np.cumsum(energy[::-1])[::-1], [0.0]]) / max(float(energy.sum()), 1e-30)
        d = int(np.argmax(tail <= max_energy))  # tail[d]: the energy outside the first d directions
        d = -(-max(d, 1) // SUBSPACE_MULTIPLE) * SUBSPACE_MULTIPLE
    if d >= v.shape[1] or d > len(sv):
        return None
    return _rotated(vt, d, seed)


def subspace_codec(vocab: np.ndarray, d: int, seed: int = 0) -> Codec:
    """The codec of the vocabulary's first ``d`` principal directions, rotated as :func:`vocabulary_subspace`
    rotates them (``bench/subspace_fidelity.py`` measures each ``d``)."""
    with threadpool_limits(limits=1, user_api="blas"):
        _, _, vt = np.linalg.svd(np.asarray(vocab, dtype=np.float64), full_matrices=False)
    return _rotated(vt, d, seed)


def _rotated(vt: np.ndarray, d: int, seed: int) -> Codec:
    """The first ``d`` rows of ``vt`` turned by a seeded rotation (one BLAS thread, as the SVD: the same matrix
    whatever the machine's thread count)."""
    with threadpool_limits(limits=1, user_api="blas"):
        q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return Codec(in_dim=vt.shape[1], out_dim=d, matrix=np.ascontiguousarray(q @ vt[:d], dtype=np.float32))


def fit_pca(sample: np.ndarray, out_dim: int, seed: int = 0) -> Codec:
    """Uncentred PCA of ``sample`` (n, D) to ``out_dim`` orthonormal directions.

    With fewer independent cells than ``out_dim`` the basis is completed with random orthonormal
    directions (they carry no energy of the sample but keep W full-rank). Runs on one BLAS thread:
    on a busy 2-core machine threaded LAPACK was 10-40x slower (eigh 512: 0.2 s vs 1.4-8 s).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_pca(sample, out_dim, seed)


def _fit_pca(sample: np.ndarray, out_dim: int, seed: int) -> Codec:
    x = np.asarray(sample, dtype=np.float64)
    n, dim = x.shape
    if out_dim >= dim:
        return identity_codec(dim)
    if dim <= 1024:
        evals, evecs = np.linalg.eigh(x.T @ x / max(n, 1))  # second moment, ascending
        order = np.argsort(evals)[::-1][:out_dim]
        evals, basis = evals[order], evecs[:, order]  # (d,), (D, d)
    else:  # randomized range finder: the top-d directions without a D x D eigendecomposition
        rng = np.random.default_rng(seed)
        y = x.T @ (x @ rng.standard_normal((dim, out_dim + 16)))  # (D, d+16)
        for _ in range(2):  # power iterations sharpen the spectrum
            y, _ = np.linalg.qr(y)
            y = x.T @ (x @ y)
        q, _ = np.linalg.qr(y)  # (D, d+16)
        small = q.T @ (x.T @ (x @ q)) / max(n, 1)
        evals, evecs = np.linalg.eigh(small)
        order = np.argsort(evals)[::-1][:out_dim]
        evals, basis = evals[order], q @ evecs[:, order]
    rank = int(np.sum(evals > evals.max() * 1e-9)) if n and evals.max() > 0 else 0
    if rank < out_dim:
        rng = np.random.default_rng(seed)
        keep = basis[:, :rank]
        extra = rng.standard_normal((dim, out_dim - rank))
        extra -= keep @ (keep.T @ extra)
        q, _ = np.linalg.qr(np.concatenate([keep, extra], axis=1))
        basis = q[:, :out_dim]
    return Codec(in_dim=dim, out_dim=out_dim, matrix=np.ascontiguousarray(basis.T, dtype=np.float32))
