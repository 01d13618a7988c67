"""What a smaller cell code would cost in R@1: the dev benchmark (bench/ts_inprocess.py) with each page's cell
vectors passed through a lossy code before the store writes them.

    python3 bench/format_variants.py --code int5 --set clean_150 --tag v_int5 [--bench DIR]
    python3 bench/format_variants.py --code int8 --columns 0.93:2 --set real_dev --tag v_col93

--code int8 (what the store writes today: 8 bits a value) | intB (B bits a value, each row scaled to its
largest value) | pca:D (uncentred PCA to D dims fitted on the first page's cells, as the store fits a
projection for large models, then int8) | pq:M (FAISS's product quantiser, no rotation: M sub-vectors of d/M
values, each replaced by the nearest of 256 centroids, M bytes a cell; the codebook fitted on the first page of
at least 2,000 cells written, as a home would fit one on its first pages).
The stored blob stays int8: the quality is the code's, the bytes
on disk are not (bytes a page = kept cells x bytes a cell + what the page's header, coordinates and the
database take). --columns COS:LEN merges column runs as the store's ``column_cos`` option does
(``codec.merge_columns``): that one is stored, so its bytes per page are measured on disk. --stage1-bits B codes
only what stage 1 searches (the vectors the FAISS index is given) in B bits a value, each dimension over the 0.1-99.9
percentile range of the first page's vectors (as FAISS's 4-bit scalar quantiser trains a range per dimension); the
feature store, which stage 2 scores, keeps int8.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tokensearch.storage.features as features  # noqa: E402
import tokensearch.storage.store as store_module  # noqa: E402
from tokensearch.storage.codec import merge_columns  # noqa: E402


def lossy_code(spec: str):
    """A function (n, d) float -> (n, d) float that applies the code ``spec`` and returns what it keeps."""
    basis: list[np.ndarray] = []
    pqs: list = []

    def code(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if spec.startswith("pq:"):
            import faiss

            if not pqs:
                if len(x) < 2000:
                    return x * 127  # pages before the codebook keep int8
                pqs.append(faiss.ProductQuantizer(x.shape[1], int(spec[3:]), 8))
                pqs[0].train(x)
            return pqs[0].decode(pqs[0].compute_codes(x))
        if spec.startswith("int"):
            top = 2 ** (int(spec[3:]) - 1) - 1
            return np.clip(np.rint(x * top / np.maximum(np.abs(x).max(1, keepdims=True), 1e-12)), -top, top)
        dim = int(spec.split(":")[1])
        if not basis:  # fitted once, on the first page written (a few thousand cells)
            _, vecs = np.linalg.eigh(x.T.astype(np.float64) @ x)
            basis.append(np.ascontiguousarray(vecs[:, ::-1][:, :dim], dtype=np.float32))
        p = x @ basis[0]
        q = np.clip(np.rint(p * 127 / np.maximum(np.abs(p).max(1, keepdims=True), 1e-12)), -127, 127)
        return q @ basis[0].T

    return code


def stage1_code(bits: int) -> None:
    """Pass the vectors the FAISS index is given through ``bits``-bit uniform codes per dimension."""
    import tokensearch.storage.vectors as vectors

    add_page = vectors.VectorIndex.add_page
    ranges: list[tuple[np.ndarray, np.ndarray]] = []
    top = 2**bits - 1

    def coded_add(self, page_id, vecs, cells=None):
        x = np.asarray(vecs, dtype=np.float32)
        if len(x):
            if not ranges:
                ranges.append((np.percentile(x, 0.1, axis=0), np.percentile(x, 99.9, axis=0)))
            lo, hi = ranges[0]
            x = lo + np.clip(np.rint((x - lo) / (hi - lo) * top), 0, top) * (hi - lo) / top
            x /= np.linalg.norm(x, axis=1, keepdims=True)
        return add_page(self, page_id, x, cells)

    vectors.VectorIndex.add_page = coded_add


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--code", default="int8")
    ap.add_argument("--columns", help="COS:LEN: merge column runs (codec.merge_columns) before the code")
    ap.add_argument("--stage1-bits", type=int, help="code stage 1's vectors alone in this many bits a value")
    a, rest = ap.parse_known_args()
    if a.stage1_bits:
        stage1_code(a.stage1_bits)
    code = lossy_code(a.code)
    quantize, encode_page = features.quantize, features.encode_page

    def coded(x: np.ndarray) -> np.ndarray:  # (for the image-only sets: a text-layer page would be coded too)
        return quantize(x) if len(x) < 50 or a.code == "int8" else quantize(code(x))

    def encoded(grid_h: int, grid_w: int, ys: np.ndarray, xs: np.ndarray, feats: np.ndarray, cells=None) -> bytes:
        if a.columns and len(feats) >= 50:
            cos, length = a.columns.split(":")
            feats = merge_columns(ys, xs, feats, float(cos), int(length))
        return encode_page(grid_h, grid_w, ys, xs, feats, cells)

    features.quantize = coded
    store_module.encode_page = encoded
    sys.argv = [str(ROOT / "bench" / "ts_inprocess.py")] + rest
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
