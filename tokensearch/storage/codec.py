"""The codec: the map from model space (dim D) to index space (dim d) applied to cells and queries alike.

Small models (D <= ``max_identity_dim``) are stored as they come (identity). Large ones (the official
TokenOCR, D = 2048/4096) are projected with an *uncentred* PCA matrix ``W`` (d x D, orthonormal rows)
fitted on the first cells written: ``x -> normalise(W x)``. Uncentred, because ranking uses inner
products: the top-d eigenvectors of the second-moment matrix keep most of every unit vector's energy,
so ``<Wq, Wx> ~ <q, x>``. The matrix is stored in the database (meta ``codec``) in the same
transaction as the first pages that use it.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

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

    @property
    def kind(self) -> str:
        return "identity" if self.matrix is None else "pca"

    def describe(self) -> str:
        name = "identity" if self.matrix is None else f"pca {self.in_dim}->{self.out_dim}"
        if self.column_cos is not None:
            name += f", column runs of <={self.column_len} cells at cos>={self.column_cos:g}"
        return name if self.merge_cos is None else f"{name}, runs merged at cos>={self.merge_cos:g}"

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(n, D) -> (n, d) float32 unit rows."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"expected vectors of dim {self.in_dim}, got shape {x.shape}")
        if self.matrix is not None:
            x = x @ self.matrix.T
        return l2_normalize(x).astype(np.float32, copy=False)

    def apply_cells(self, ys: np.ndarray, xs: np.ndarray, x: np.ndarray) -> np.ndarray:
        """A page's cells (grid rows, columns, (n, D) features) in index space, column runs merged."""
        x = self.apply(x)
        return x if self.column_cos is None else merge_columns(ys, xs, x, self.column_cos, self.column_len)

    # --- persistence (meta row: JSON value + blob) --------------------------------------------------
    def to_meta(self) -> tuple[dict, bytes | None]:
        value = {"kind": self.kind, "in_dim": self.in_dim, "out_dim": self.out_dim, "merge_cos": self.merge_cos}
        if self.column_cos is not None:  # (absent from indexes written before: they keep every cell's vector)
            value.update(column_cos=self.column_cos, column_len=self.column_len)
        if self.matrix is None:
            return value, None
        buf = io.BytesIO()
        np.save(buf, self.matrix.astype(np.float32), allow_pickle=False)
        blob = buf.getvalue()
        value["sha256"] = hashlib.sha256(blob).hexdigest()
        return value, blob

    @classmethod
    def from_meta(cls, value: dict, blob: bytes | None) -> Codec:
        matrix = None
        if value["kind"] == "pca":
            if blob is None or hashlib.sha256(blob).hexdigest() != value.get("sha256"):
                raise ValueError("the stored codec matrix is missing or corrupt")
            matrix = np.load(io.BytesIO(blob), allow_pickle=False)
        merge, column = value.get("merge_cos"), value.get("column_cos")
        return cls(
            int(value["in_dim"]),
            int(value["out_dim"]),
            matrix,
            None if merge is None else float(merge),
            None if column is None else float(column),
            int(value.get("column_len", 3)),
        )


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
