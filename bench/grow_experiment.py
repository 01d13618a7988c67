"""Experiment, not shipped: pages with small text read enlarged (BENCHMARKS.md, "Tried and not kept").

``indexer/scale.py`` only shrinks: text far above the reference height goes down to 4/3 of it. These
rules also enlarge images whose text measures under ``below`` x the reference, to ``to`` x it (bicubic),
either as the page the index keeps (:func:`grow`: more cells, more bytes) or only for the model to read,
its features pooled back onto the image's own grid (:func:`read_grown`). ``bench/ts_inprocess.py
--grow-below B --grow-to T [--read-grown]`` runs the dev benchmark with them; the calibration with them:

    python3 bench/grow_experiment.py B T --pdf-dir PDFS --pages 60 --queries 250 --verify-weight 4 --pooled-share 0.5
"""

from __future__ import annotations

import sys

import numpy as np
from PIL import Image

import tokensearch.indexer.scale as scale
from tokensearch.tokenocr_model.interface import FeatureGrid


def _factor(text_height: float | None, dpi: float, below: float, to: float) -> float:
    ref = scale.CHAR_HEIGHT_AT_DPI * dpi
    return min(2.0, to * ref / text_height) if text_height is not None and text_height < below * ref else 1.0


def grow(below: float, to: float) -> None:
    """Every image read by the indexer from now on is enlarged where its text is small."""
    shipped_factor, shipped_resized = scale.factor_for, scale.resized

    def factor_for(size, text_height, dpi):
        f = _factor(text_height, dpi, below, to)
        return f if f > 1.0 else shipped_factor(size, text_height, dpi)

    def resized(image, f, full):
        if f <= 1.0:
            return shipped_resized(image, f, full)
        return image.resize((round(full[0] * f), round(full[1] * f)), Image.Resampling.BICUBIC)

    scale.factor_for, scale.resized = factor_for, resized


def overlap(n_small: int, n_big: int, f: float, stride: int) -> np.ndarray:
    """(n_small, n_big): the share of each cell of the image's grid covered by each cell of the enlarged
    image's grid (rows sum to 1)."""
    lo_s, hi_s = np.arange(n_small)[:, None] * stride, (np.arange(n_small)[:, None] + 1) * stride
    lo_b, hi_b = np.arange(n_big)[None, :] * stride / f, (np.arange(n_big)[None, :] + 1) * stride / f
    w = np.clip(np.minimum(hi_s, hi_b) - np.maximum(lo_s, lo_b), 0, None)
    return (w / np.maximum(w.sum(axis=1, keepdims=True), 1e-9)).astype(np.float32)


def read_grown(encoder, below: float, to: float) -> None:
    """``encoder`` (the mini model) reads small-text images enlarged, its features pooled back (area-weighted,
    re-normalised) onto the grid of the image as given, so the index keeps its cells."""
    shipped = encoder.encode_pages

    def encode_pages(images):
        out = []
        for im in images:
            f = _factor(scale.char_height(im), encoder.dpi, below, to)
            if f <= 1.0:
                out.extend(shipped([im]))
                continue
            g = shipped([im.resize((round(im.width * f), round(im.height * f)), Image.Resampling.BICUBIC)])[0]
            h, w = encoder.grid_shape(*im.size)
            ay = overlap(h, g.features.shape[0], f, encoder.cfg.stride)
            ax = overlap(w, g.features.shape[1], f, encoder.cfg.stride)
            feats = np.einsum("lk,ikd->ild", ax, np.einsum("ij,jkd->ikd", ay, g.features.astype(np.float32)))
            feats /= np.maximum(np.linalg.norm(feats, axis=2, keepdims=True), 1e-9)
            text = ay @ g.text.astype(np.float32) @ ax.T
            out.append(FeatureGrid(features=feats.astype(np.float32), text=text.astype(np.float32)))
        return out

    encoder.encode_pages = encode_pages


if __name__ == "__main__":
    grow(float(sys.argv[1]), float(sys.argv[2]))
    from tokensearch.training.calibrate import main

    main(sys.argv[3:])
