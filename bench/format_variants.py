"""What a smaller cell code would cost in R@1: the dev benchmark (bench/ts_inprocess.py) with each page's cell
vectors passed through a lossy code before the store writes them.

    python3 bench/format_variants.py --code int5 --set clean_150 --tag v_int5 [--bench DIR]
    python3 bench/format_variants.py --code int8 --columns 0.93:2 --set real_dev --tag v_col93

--code int8 (what the store writes today: 8 bits a value) | intB (B bits a value, each row scaled to its
largest value) | pca:D (uncentred PCA to D dims fitted on the first page's cells, as the store fits a
projection for large models, then int8) | pq:M (product quantisation: M sub-vectors of d/M values, each
replaced by the nearest of 256 centroids, M bytes a cell; the codebooks fitted with FAISS on the first page
of at least 2,000 cells written, as a home would fit them on its first pages). The stored blob stays int8: the quality is the code's, the bytes
on disk are not (bytes a page = kept cells x bytes a cell + what the page's header, coordinates and the
database take). --columns COS:LEN merges column runs as the store's ``column_cos`` option does
(``codec.merge_columns``): that one is stored, so its bytes per page are measured on disk.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--code", default="int8")
    ap.add_argument("--columns", help="COS:LEN: merge column runs (codec.merge_columns) before the code")
    a, rest = ap.parse_known_args()
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
